//! Overlay routing on the tree: longest-prefix match from a destination address to where the
//! packet goes — this node, a child's tunnel, the uplink, or nowhere.
//!
//! The table is one level per prefix length, searched longest first: a lookup costs one mask
//! and one probe per distinct length (a handful on any plan), not a scan of every prefix, so
//! a city data centre with thousands of street sites below it routes as fast as a site with
//! one uplink. A level with few prefixes is a short list compared in place; a large one is a
//! hash map with an unkeyed fast hash — safe here because the table is built from the bundle
//! and lookups never insert, so no sender can grow a collision chain.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::FixedState;
use ipnet::IpNet;

/// Up to this many prefixes a level is a list; beyond, a hash map.
const LIST_LIMIT: usize = 8;

/// Where a packet for an address goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// One of this node's own addresses: delivered to the local interface.
    Local,
    /// Through the tunnel of the peer at this index.
    Peer(usize),
    /// Inside this node's own subtree but routed to no child: dropped and counted.
    Unreachable,
}

/// A longest-prefix-match table.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// (prefix length, is IPv6) → masked network address → hop; longest lengths first.
    levels: Vec<Level>,
    /// The last lookup and its answer: a burst of one flow (what a receive batch mostly
    /// is) costs one comparison per packet after its first. Cleared by every insert.
    last: Cell<Option<(IpAddr, Option<Hop>)>>,
}

#[derive(Debug, Clone)]
struct Level {
    v6: bool,
    len: u8,
    entries: Entries,
}

#[derive(Debug, Clone)]
enum Entries {
    List(Vec<(u128, Hop)>),
    Map(HashMap<u128, Hop, FixedState>),
}

impl Entries {
    fn insert(&mut self, key: u128, hop: Hop) {
        match self {
            Entries::List(list) => {
                if let Some(entry) = list.iter_mut().find(|(k, _)| *k == key) {
                    entry.1 = hop;
                } else if list.len() < LIST_LIMIT {
                    list.push((key, hop));
                } else {
                    let mut map: HashMap<u128, Hop, FixedState> = list.drain(..).collect();
                    map.insert(key, hop);
                    *self = Entries::Map(map);
                }
            }
            Entries::Map(map) => {
                map.insert(key, hop);
            }
        }
    }

    #[inline]
    fn get(&self, key: u128) -> Option<Hop> {
        match self {
            Entries::List(list) => list.iter().find(|(k, _)| *k == key).map(|(_, hop)| *hop),
            Entries::Map(map) => map.get(&key).copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Entries::List(list) => list.len(),
            Entries::Map(map) => map.len(),
        }
    }
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds a route; a later route for the same prefix replaces the earlier one.
    pub fn insert(&mut self, prefix: IpNet, hop: Hop) {
        self.last.set(None);
        let (v6, len) = (prefix.addr().is_ipv6(), prefix.prefix_len());
        let key = masked(prefix.addr(), len);
        let at = self.levels.iter().position(|l| l.v6 == v6 && l.len == len);
        let level = match at {
            Some(at) => &mut self.levels[at],
            None => {
                self.levels.push(Level {
                    v6,
                    len,
                    entries: Entries::List(Vec::new()),
                });
                self.levels
                    .sort_by_key(|level| std::cmp::Reverse(level.len));
                let at = self
                    .levels
                    .iter()
                    .position(|l| l.v6 == v6 && l.len == len)
                    .unwrap_or_default();
                &mut self.levels[at]
            }
        };
        level.entries.insert(key, hop);
    }

    /// Where a packet for `addr` goes; `None` if no route covers it.
    pub fn lookup(&self, addr: IpAddr) -> Option<Hop> {
        if let Some((last, hop)) = self.last.get()
            && last == addr
        {
            return hop;
        }
        let v6 = addr.is_ipv6();
        let hop = self
            .levels
            .iter()
            .filter(|level| level.v6 == v6)
            .find_map(|level| level.entries.get(masked(addr, level.len)));
        self.last.set(Some((addr, hop)));
        hop
    }

    /// How many routes.
    pub fn len(&self) -> usize {
        self.levels.iter().map(|l| l.entries.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn masked(addr: IpAddr, len: u8) -> u128 {
    let (bits, width): (u128, u32) = match addr {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let len = u32::from(len).min(width);
    if len == 0 {
        0
    } else {
        let keep = width - len;
        (bits >> keep) << keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins() {
        let mut table = RouteTable::new();
        table.insert(net("10.0.0.0/8"), Hop::Peer(0));
        table.insert(net("10.32.0.0/12"), Hop::Unreachable);
        table.insert(net("10.32.64.0/20"), Hop::Peer(3));
        table.insert(net("10.32.0.0/27"), Hop::Local);
        table.insert(net("fd00::/8"), Hop::Peer(0));
        assert_eq!(table.lookup(ip("10.32.64.129")), Some(Hop::Peer(3)));
        assert_eq!(table.lookup(ip("10.32.0.1")), Some(Hop::Local));
        assert_eq!(table.lookup(ip("10.33.0.1")), Some(Hop::Unreachable));
        assert_eq!(table.lookup(ip("10.64.0.1")), Some(Hop::Peer(0)));
        assert_eq!(table.lookup(ip("11.0.0.1")), None);
        assert_eq!(table.lookup(ip("fd12::1")), Some(Hop::Peer(0)));
        assert_eq!(table.lookup(ip("fe80::1")), None);
        assert_eq!(table.len(), 5);
        table.insert(net("10.32.64.0/20"), Hop::Peer(4));
        assert_eq!(table.lookup(ip("10.32.64.1")), Some(Hop::Peer(4)));
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn a_remembered_answer_is_forgotten_when_a_route_is_added() {
        let mut table = RouteTable::new();
        table.insert(net("10.0.0.0/8"), Hop::Peer(0));
        assert_eq!(table.lookup(ip("10.32.0.1")), Some(Hop::Peer(0)));
        assert_eq!(table.lookup(ip("10.32.0.1")), Some(Hop::Peer(0)));
        table.insert(net("10.32.0.0/27"), Hop::Local);
        assert_eq!(table.lookup(ip("10.32.0.1")), Some(Hop::Local));
        assert_eq!(table.lookup(ip("11.0.0.1")), None);
        table.insert(net("0.0.0.0/0"), Hop::Unreachable);
        assert_eq!(table.lookup(ip("11.0.0.1")), Some(Hop::Unreachable));
    }

    #[test]
    fn a_crowded_level_becomes_a_map_and_still_answers() {
        let mut table = RouteTable::new();
        for i in 0..20u8 {
            table.insert(net(&format!("10.32.{i}.0/24")), Hop::Peer(usize::from(i)));
        }
        table.insert(net("10.32.7.0/24"), Hop::Unreachable);
        assert_eq!(table.len(), 20);
        assert_eq!(table.lookup(ip("10.32.19.9")), Some(Hop::Peer(19)));
        assert_eq!(table.lookup(ip("10.32.7.1")), Some(Hop::Unreachable));
        assert_eq!(table.lookup(ip("10.32.20.1")), None);
    }

    #[test]
    fn a_default_route_and_host_routes_work() {
        let mut table = RouteTable::new();
        table.insert(net("0.0.0.0/0"), Hop::Peer(1));
        table.insert(net("10.1.2.3/32"), Hop::Local);
        assert_eq!(table.lookup(ip("10.1.2.3")), Some(Hop::Local));
        assert_eq!(table.lookup(ip("10.1.2.4")), Some(Hop::Peer(1)));
        assert_eq!(table.lookup(ip("::1")), None);
    }

    proptest::proptest! {
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            prefixes in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32), 1..40),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..64),
        ) {
            let mut table = RouteTable::new();
            let mut all = Vec::new();
            for (i, (addr, len)) in prefixes.iter().enumerate() {
                let prefix = IpNet::new(IpAddr::from(addr.to_be_bytes()), *len).unwrap().trunc();
                table.insert(prefix, Hop::Peer(i));
                all.retain(|(p, _): &(IpNet, usize)| *p != prefix);
                all.push((prefix, i));
            }
            for probe in probes {
                let addr = IpAddr::from(probe.to_be_bytes());
                let best = all
                    .iter()
                    .filter(|(p, _)| p.contains(&addr))
                    .max_by_key(|(p, _)| p.prefix_len())
                    .map(|(_, i)| Hop::Peer(*i));
                proptest::prop_assert_eq!(table.lookup(addr), best);
                proptest::prop_assert_eq!(table.lookup(addr), best, "remembered");
            }
        }
    }
}
