//! An owned, allocation-free index from addresses to the node and zone that own them.
//!
//! [`Locator`](super::Locator) borrows its allocation and builds a vector per lookup, which
//! suits the controller's one-off checks. An agent's zone filter asks "whose address is
//! this?" for the first packet of every flow, and keeps the index beside the allocation in a
//! model shared by every agent of a process, so it needs an index that owns its data, can be
//! shared between threads, and answers with a binary search and no allocation:
//! [`AddressIndex`], built once by [`Allocation::index`]. Its answers are the locator's.

use std::net::IpAddr;

use ipnet::IpNet;

use super::allocate::Owner;
use super::{Allocation, block};
use crate::node::NodeIx;
use crate::vocabulary::{Plane, Zone};

/// Finds the node and zone of an address; owns its data. See [`Allocation::index`].
#[derive(Debug, Clone)]
pub struct AddressIndex {
    planes: Vec<PlaneIndex>,
}

#[derive(Debug, Clone)]
struct PlaneIndex {
    plane: Plane,
    supernet: IpNet,
    /// Own blocks, sorted by first address; they do not overlap within a plane.
    owned: Vec<OwnedBlock>,
    /// The zone blocks of every node, `OwnedBlock::zones` indexes into it.
    zones: Vec<(u128, u128, Zone)>,
}

#[derive(Debug, Clone, Copy)]
struct OwnedBlock {
    start: u128,
    end: u128,
    node: NodeIx,
    /// The node's zone blocks: `zones[first..first + count]`.
    first: u32,
    count: u8,
}

impl Allocation {
    /// An owned index from addresses to the nodes and zones that own them: the answers of
    /// [`Allocation::locator`]'s `owner` without its borrow or per-lookup allocation.
    pub fn index(&self) -> AddressIndex {
        let planes = self
            .planes()
            .filter_map(|plane| {
                let supernet = self.supernet(plane)?;
                let mut owned = Vec::new();
                let mut zones = Vec::new();
                for (ix, blocks) in self.node_blocks(plane) {
                    let first = u32::try_from(zones.len()).unwrap_or(u32::MAX);
                    for (zone, net) in self.zones(plane, ix) {
                        let (start, end) = block::range(&net);
                        zones.push((start, end, zone));
                    }
                    let count = zones.len().saturating_sub(first as usize);
                    let (start, end) = block::range(&blocks.own);
                    owned.push(OwnedBlock {
                        start,
                        end,
                        node: ix,
                        first,
                        count: u8::try_from(count).unwrap_or(u8::MAX),
                    });
                }
                owned.sort_unstable_by_key(|b| (b.start, b.end, b.node));
                Some(PlaneIndex {
                    plane,
                    supernet,
                    owned,
                    zones,
                })
            })
            .collect();
        AddressIndex { planes }
    }
}

impl AddressIndex {
    /// The node and zone an address belongs to, on the first plane (in plan order) whose
    /// node blocks hold it; `None` outside every node's own block.
    pub fn owner(&self, addr: IpAddr) -> Option<Owner> {
        self.planes.iter().find_map(|p| p.owner(addr))
    }

    /// The node and zone an address belongs to on one plane.
    pub fn owner_on(&self, plane: Plane, addr: IpAddr) -> Option<Owner> {
        self.planes
            .iter()
            .find(|p| p.plane == plane)
            .and_then(|p| p.owner(addr))
    }

    /// The plane whose supernet holds `addr`.
    pub fn plane_of(&self, addr: IpAddr) -> Option<Plane> {
        self.planes
            .iter()
            .find_map(|p| p.supernet.contains(&addr).then_some(p.plane))
    }

    /// A plane's supernet, if the plan has the plane.
    pub fn supernet(&self, plane: Plane) -> Option<IpNet> {
        self.planes
            .iter()
            .find_map(|p| (p.plane == plane).then_some(p.supernet))
    }
}

impl PlaneIndex {
    fn owner(&self, addr: IpAddr) -> Option<Owner> {
        if block::family_bits(&self.supernet) != block::family_bits(&IpNet::from(addr)) {
            return None;
        }
        let value = block::addr_value(addr);
        // The last block starting at or before the address is the only one that can hold it.
        let after = self.owned.partition_point(|b| b.start <= value);
        let owned = self.owned.get(after.checked_sub(1)?)?;
        if value > owned.end {
            return None;
        }
        let first = owned.first as usize;
        let zones = self.zones.get(first..first + usize::from(owned.count))?;
        let zone = zones
            .iter()
            .find_map(|&(s, e, zone)| (s <= value && value <= e).then_some(zone));
        Some(Owner {
            plane: self.plane,
            node: owned.node,
            zone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use crate::plan::Plan;

    #[test]
    fn the_index_answers_what_the_locator_answers() {
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        let locator = allocation.locator();
        let index = allocation.index();
        // Every node's zone addresses, the addresses between them, and a stride across
        // each supernet (own blocks, child blocks, spare areas).
        let mut addresses: Vec<IpAddr> = Vec::new();
        for plane in allocation.planes() {
            for ix in network.indices().step_by(97) {
                for (_, net) in allocation.zones(plane, ix) {
                    addresses.extend([net.network(), net.broadcast()]);
                }
                if let Some(blocks) = allocation.node(plane, ix) {
                    addresses.extend([blocks.own.network(), blocks.own.broadcast()]);
                }
            }
            let supernet = index.supernet(plane).unwrap();
            let (start, end) = block::range(&supernet);
            let step = ((end - start) / 20_011).max(1);
            addresses.extend(
                (start..=end)
                    .step_by(usize::try_from(step).unwrap())
                    .map(|v| IpAddr::from(std::net::Ipv4Addr::from(u32::try_from(v).unwrap()))),
            );
        }
        addresses.push("192.0.2.1".parse().unwrap());
        addresses.push("2001:db8::1".parse().unwrap());
        assert!(addresses.len() > 50_000);
        for addr in addresses {
            let want = locator.owner(addr);
            assert_eq!(index.owner(addr), want, "{addr}");
            if let Some(owner) = want {
                assert_eq!(index.owner_on(owner.plane, addr), want, "{addr}");
            }
            assert_eq!(index.plane_of(addr), locator.plane_of(addr), "{addr}");
        }
    }

    #[test]
    fn the_index_finds_zone_addresses_of_taiyuan() {
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        let index = allocation.index();
        let taiyuan = network.lookup(&"dc:1401".parse().unwrap()).unwrap();
        let owner = index.owner("10.32.64.130".parse().unwrap()).unwrap();
        assert_eq!(
            (owner.plane, owner.node, owner.zone),
            (Plane::Business, taiyuan, Some(Zone::Production))
        );
        assert_eq!(
            index.owner_on(Plane::Office, "10.32.64.130".parse().unwrap()),
            None
        );
        assert_eq!(
            index
                .owner("10.32.64.40".parse().unwrap())
                .map(|o| (o.node, o.zone)),
            Some((taiyuan, None))
        );
        assert_eq!(index.owner("10.32.65.1".parse().unwrap()), None);
    }
}
