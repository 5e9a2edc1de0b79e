//! Prefix arithmetic shared by both address families: the n-th sub-block of a block, and
//! blocks as integer ranges for sorting and overlap checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The number of address bits of the family of `net`.
pub(crate) fn family_bits(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    }
}

/// An address as an integer (IPv4 addresses keep their 32-bit value).
pub(crate) fn addr_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The first and last address of a block as integers.
pub(crate) fn range(net: &IpNet) -> (u128, u128) {
    (addr_value(net.network()), addr_value(net.broadcast()))
}

/// The number of addresses in a block of prefix `len` in a family of `bits` bits, or `None`
/// when it does not fit in a `u128` (a whole IPv6 space).
pub(crate) fn size(bits: u8, len: u8) -> Option<u128> {
    1u128.checked_shl(u32::from(bits.checked_sub(len)?))
}

/// The block of prefix length `len` starting `offset` addresses into `parent`, if it is
/// aligned and lies wholly inside `parent`.
pub(crate) fn block_at(parent: &IpNet, len: u8, offset: u128) -> Option<IpNet> {
    let bits = family_bits(parent);
    let block_size = size(bits, len)?;
    if len < parent.prefix_len() || !offset.is_multiple_of(block_size) {
        return None;
    }
    let (start, end) = range(parent);
    let first = start.checked_add(offset)?;
    let last = first.checked_add(block_size - 1)?;
    if last > end {
        return None;
    }
    Some(match parent {
        IpNet::V4(_) => {
            let addr = Ipv4Addr::from(u32::try_from(first).ok()?);
            IpNet::V4(Ipv4Net::new(addr, len).ok()?)
        }
        IpNet::V6(_) => IpNet::V6(Ipv6Net::new(Ipv6Addr::from(first), len).ok()?),
    })
}

/// The `index`-th block of prefix length `len` inside `parent`.
pub(crate) fn nth(parent: &IpNet, len: u8, index: u128) -> Option<IpNet> {
    let block_size = size(family_bits(parent), len)?;
    block_at(parent, len, index.checked_mul(block_size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn sub_blocks_are_counted_from_the_start_of_the_parent() {
        assert_eq!(nth(&net("10.0.0.0/8"), 13, 1), Some(net("10.8.0.0/13")));
        assert_eq!(nth(&net("10.0.0.0/8"), 13, 31), Some(net("10.248.0.0/13")));
        assert_eq!(nth(&net("10.0.0.0/8"), 13, 32), None);
        assert_eq!(nth(&net("10.8.0.0/24"), 26, 3), Some(net("10.8.0.192/26")));
        assert_eq!(nth(&net("fd00::/8"), 16, 0x14), Some(net("fd14::/16")));
        assert_eq!(nth(&net("10.0.0.0/8"), 7, 0), None);
        assert_eq!(
            nth(&net("::/0"), 0, 0),
            None,
            "a whole IPv6 space has no u128 size"
        );
    }

    #[test]
    fn misaligned_offsets_are_refused() {
        assert_eq!(
            block_at(&net("10.0.0.0/24"), 26, 64),
            Some(net("10.0.0.64/26"))
        );
        assert_eq!(block_at(&net("10.0.0.0/24"), 26, 32), None);
    }
}
