//! Deriving every node's block from the plan and the tree.
//!
//! Walks the tree from the ministry. Inside each data centre's block come, in order: its
//! own data-centre block, its disaster-recovery block, and then one block per child in the
//! network's child order, each aligned to its own size. Nothing here depends on anything but
//! the plan and the division codes, so the same inputs always give the same addresses.

use std::net::IpAddr;

use ipnet::IpNet;

use super::block;
use super::{Plan, PlaneLayout};
use crate::network::Network;
use crate::node::{NodeIx, NodeKind};
use crate::vocabulary::{Plane, Tier, Zone};

/// The blocks of one node on one plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeBlock {
    /// Everything routed to the node: its own block and all its children's.
    pub block: IpNet,
    /// The node's own block, which holds its zone blocks.
    pub own: IpNet,
}

/// Every node's blocks on every plane of a plan.
#[derive(Debug, Clone)]
pub struct Allocation {
    planes: Vec<PlaneBlocks>,
}

#[derive(Debug, Clone)]
struct PlaneBlocks {
    layout: PlaneLayout,
    /// Indexed by node; `None` where the plane does not reach the node's tier.
    blocks: Vec<Option<NodeBlock>>,
    /// Whether the node's own block is a site block (else a data-centre block).
    site: Vec<bool>,
}

/// A node whose children do not fit in its block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plane {plane}: {node} ({name}) has {children} {child_tier} blocks of /{child_len} to place, \
     but its block {block} holds only {room} after its own area; \
     shorten the {} prefix or lengthen the {child_tier} prefix", if *tier == Tier::Ministry { "supernet" } else { tier.as_str() }
)]
pub struct NoRoom {
    /// The plane.
    pub plane: Plane,
    /// The node's id, as text.
    pub node: String,
    /// The node's name.
    pub name: String,
    /// The node's tier.
    pub tier: Tier,
    /// The node's block.
    pub block: IpNet,
    /// The tier of the children.
    pub child_tier: Tier,
    /// How many children there are.
    pub children: usize,
    /// The prefix length of a child block.
    pub child_len: u8,
    /// How many child blocks fit.
    pub room: u128,
}

/// The plan cannot hold the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan cannot hold the network:\n{}", .0.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))]
pub struct AllocationError(pub Vec<NoRoom>);

impl Plan {
    /// Derives every node's blocks on every plane; fails naming each node whose children do
    /// not fit.
    pub fn allocate(&self, network: &Network) -> Result<Allocation, AllocationError> {
        let mut problems = Vec::new();
        let planes = self
            .layouts()
            .iter()
            .map(|layout| {
                let mut walk = Walk {
                    network,
                    layout,
                    blocks: vec![None; network.nodes().len()],
                    problems: &mut problems,
                };
                walk.place(network.ministry(), layout.supernet);
                let site = network
                    .nodes()
                    .iter()
                    .map(|n| !n.kind().holds_data_centre_block())
                    .collect();
                PlaneBlocks {
                    layout: layout.clone(),
                    blocks: walk.blocks,
                    site,
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(Allocation { planes })
        } else {
            Err(AllocationError(problems))
        }
    }
}

struct Walk<'a> {
    network: &'a Network,
    layout: &'a PlaneLayout,
    blocks: Vec<Option<NodeBlock>>,
    problems: &'a mut Vec<NoRoom>,
}

impl Walk<'_> {
    /// Places a node in `block` and, below it, its children.
    fn place(&mut self, ix: NodeIx, block: IpNet) {
        let node = self.network.node(ix);
        if !node.kind().holds_data_centre_block() {
            self.blocks[ix.index()] = Some(NodeBlock { block, own: block });
            return;
        }
        let bits = block::family_bits(&block);
        let own_len = self.layout.data_centre;
        let own = block::nth(&block, own_len, 0).unwrap_or(block);
        self.blocks[ix.index()] = Some(NodeBlock { block, own });
        let own_size = block::size(bits, own_len).unwrap_or(0);
        // The own area is two data-centre blocks: the data centre's and its DR site's.
        let mut cursor = 2 * own_size;
        let mut pending: Vec<(NodeIx, Tier, u8)> = Vec::new();
        for &child in self.network.children(ix) {
            let child_node = self.network.node(child);
            if child_node.kind() == NodeKind::DisasterRecovery {
                if let Some(dr) = block::nth(&block, own_len, 1) {
                    self.blocks[child.index()] = Some(NodeBlock { block: dr, own: dr });
                }
                continue;
            }
            let Some(len) = self.layout.prefix_for(child_node.tier) else {
                continue; // the plane does not reach this tier
            };
            pending.push((child, child_node.tier, len));
        }
        let mut overflow: Option<(Tier, u8, usize)> = None;
        for &(child, tier, len) in &pending {
            let size = block::size(bits, len).unwrap_or(u128::MAX);
            // Align up to the child's size; past the end of the address space is no room.
            cursor = cursor.div_ceil(size).saturating_mul(size);
            match block::block_at(&block, len, cursor) {
                Some(child_block) if overflow.is_none() => {
                    self.place(child, child_block);
                    cursor = cursor.saturating_add(size);
                }
                _ => {
                    let entry = overflow.get_or_insert((tier, len, 0));
                    entry.2 += 1;
                }
            }
        }
        if let Some((child_tier, child_len, _)) = overflow {
            let size = block::size(bits, child_len).unwrap_or(u128::MAX);
            let slots = 1u128
                .checked_shl(u32::from(child_len.saturating_sub(block.prefix_len())))
                .unwrap_or(u128::MAX);
            let first = (2 * own_size).div_ceil(size);
            self.problems.push(NoRoom {
                plane: self.layout.plane,
                node: node.id.to_string(),
                name: node.name.clone(),
                tier: node.tier,
                block,
                child_tier,
                children: pending.len(),
                child_len,
                room: slots.saturating_sub(first),
            });
        }
    }
}

/// The first address after a block's network address (the block itself if it holds one).
fn first_host(net: &IpNet) -> IpAddr {
    net.hosts()
        .find(|a| *a != net.network())
        .unwrap_or(net.network())
}

/// Which node (and zone) an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The plane whose supernet holds the address.
    pub plane: Plane,
    /// The node whose own block holds it.
    pub node: NodeIx,
    /// The zone block that holds it, if any.
    pub zone: Option<Zone>,
}

impl Allocation {
    /// The planes allocated, in plan order.
    pub fn planes(&self) -> impl Iterator<Item = Plane> + '_ {
        self.planes.iter().map(|p| p.layout.plane)
    }

    fn plane_blocks(&self, plane: Plane) -> Option<&PlaneBlocks> {
        self.planes.iter().find(|p| p.layout.plane == plane)
    }

    /// A node's blocks on a plane, or `None` where the plane does not reach it.
    pub fn node(&self, plane: Plane, ix: NodeIx) -> Option<NodeBlock> {
        self.plane_blocks(plane)?
            .blocks
            .get(ix.index())
            .copied()
            .flatten()
    }

    /// A node's zone blocks on a plane, in the plan's zone order.
    pub fn zones(&self, plane: Plane, ix: NodeIx) -> Vec<(Zone, IpNet)> {
        let Some(planes) = self.plane_blocks(plane) else {
            return Vec::new();
        };
        let Some(Some(blocks)) = planes.blocks.get(ix.index()) else {
            return Vec::new();
        };
        let zones = if planes.site[ix.index()] {
            &planes.layout.site_zones
        } else {
            &planes.layout.data_centre_zones
        };
        zones
            .iter()
            .filter_map(|z| {
                Some((
                    z.zone,
                    block::nth(&blocks.own, z.prefix, u128::from(z.index))?,
                ))
            })
            .collect()
    }

    /// The node's own address in each of its zones on a plane: the first address after the
    /// zone block's network address (`10.32.64.1` in `10.32.64.0/27`). These are the
    /// overlay addresses a node certificate binds and the agent answers on.
    pub fn overlay_addresses(&self, plane: Plane, ix: NodeIx) -> Vec<(Zone, IpAddr)> {
        self.zones(plane, ix)
            .into_iter()
            .map(|(zone, block)| (zone, first_host(&block)))
            .collect()
    }

    /// One zone block of a node on a plane.
    pub fn zone(&self, plane: Plane, ix: NodeIx, zone: Zone) -> Option<IpNet> {
        self.zones(plane, ix)
            .into_iter()
            .find_map(|(z, net)| (z == zone).then_some(net))
    }

    /// A plane's supernet, if the plan has the plane.
    pub fn supernet(&self, plane: Plane) -> Option<IpNet> {
        Some(self.plane_blocks(plane)?.layout.supernet)
    }

    /// Every node the plane reaches, with its blocks, in node order.
    pub(super) fn node_blocks(&self, plane: Plane) -> impl Iterator<Item = (NodeIx, NodeBlock)> {
        self.plane_blocks(plane)
            .into_iter()
            .flat_map(|p| p.blocks.iter().enumerate())
            .filter_map(|(i, b)| Some((NodeIx(u32::try_from(i).ok()?), (*b)?)))
    }

    /// An index from addresses to the nodes that own them.
    pub fn locator(&self) -> Locator<'_> {
        let planes = self
            .planes
            .iter()
            .map(|p| {
                let mut owned: Vec<OwnedRange> = p
                    .blocks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| {
                        let (start, end) = block::range(&b.as_ref()?.own);
                        Some((start, end, NodeIx(i as u32)))
                    })
                    .collect();
                owned.sort_unstable();
                (p.layout.plane, p.layout.supernet, owned)
            })
            .collect();
        Locator {
            allocation: self,
            planes,
        }
    }
}

/// The first and last address of a node's own block, and the node.
type OwnedRange = (u128, u128, NodeIx);

/// Finds the owners of addresses and prefixes; built once by [`Allocation::locator`].
#[derive(Debug)]
pub struct Locator<'a> {
    allocation: &'a Allocation,
    planes: Vec<(Plane, IpNet, Vec<OwnedRange>)>,
}

impl Locator<'_> {
    /// The node and zone an address belongs to; `None` outside every node's own block.
    pub fn owner(&self, addr: IpAddr) -> Option<Owner> {
        let net = IpNet::from(addr);
        self.owners(&net).into_iter().next()
    }

    /// Every node whose own block overlaps `net`, in address order.
    pub fn owners(&self, net: &IpNet) -> Vec<Owner> {
        let (start, end) = block::range(net);
        let mut found = Vec::new();
        for (plane, supernet, owned) in &self.planes {
            if block::family_bits(supernet) != block::family_bits(net) {
                continue;
            }
            let first = owned.partition_point(|&(_, e, _)| e < start);
            for &(s, _, node) in owned[first..].iter().take_while(|&&(s, _, _)| s <= end) {
                let _ = s;
                let zone =
                    self.allocation
                        .zones(*plane, node)
                        .into_iter()
                        .find_map(|(zone, block)| {
                            (block.contains(net) || net.contains(&block)).then_some(zone)
                        });
                found.push(Owner {
                    plane: *plane,
                    node,
                    zone,
                });
            }
        }
        found
    }

    /// The plane whose supernet holds `addr`.
    pub fn plane_of(&self, addr: IpAddr) -> Option<Plane> {
        self.planes
            .iter()
            .find_map(|(plane, supernet, _)| supernet.contains(&addr).then_some(*plane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;

    fn national() -> (Network, Allocation) {
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        (network, allocation)
    }

    fn block_of(
        network: &Network,
        allocation: &Allocation,
        plane: Plane,
        id: &str,
    ) -> Option<NodeBlock> {
        let ix = network.lookup(&id.parse::<NodeId>().unwrap()).unwrap();
        allocation.node(plane, ix)
    }

    #[test]
    fn the_national_plan_places_nodes_where_the_plan_says() {
        let (network, allocation) = national();
        let at = |plane, id| {
            block_of(&network, &allocation, plane, id)
                .map(|b| (b.block.to_string(), b.own.to_string()))
        };
        let expected = [
            (
                Plane::Business,
                "dc:ministry",
                Some(("10.0.0.0/8", "10.0.0.0/24")),
            ),
            (
                Plane::Business,
                "dr:ministry",
                Some(("10.0.1.0/24", "10.0.1.0/24")),
            ),
            // Provinces in code order after the ministry's own area: 11 first, 14 fourth.
            (
                Plane::Business,
                "dc:11",
                Some(("10.8.0.0/13", "10.8.0.0/24")),
            ),
            (
                Plane::Business,
                "dc:14",
                Some(("10.32.0.0/13", "10.32.0.0/24")),
            ),
            (
                Plane::Business,
                "dc:65",
                Some(("10.248.0.0/13", "10.248.0.0/24")),
            ),
            // Cities after the province's own area; Taiyuan is the first.
            (
                Plane::Business,
                "dc:1401",
                Some(("10.32.64.0/18", "10.32.64.0/24")),
            ),
            // Sites after the city's own area (two /24 = 16 site blocks of /27).
            (
                Plane::Business,
                "site:140105",
                Some(("10.32.66.0/27", "10.32.66.0/27")),
            ),
            (
                Plane::Office,
                "dc:1401",
                Some(("172.18.4.0/22", "172.18.4.0/24")),
            ),
            // The office plane does not reach sites.
            (Plane::Office, "site:140105", None),
        ];
        for (plane, id, blocks) in expected {
            let want = blocks.map(|(block, own)| (block.to_owned(), own.to_owned()));
            assert_eq!(at(plane, id), want, "{plane} {id}");
        }
        let taiyuan = network.lookup(&"dc:1401".parse().unwrap()).unwrap();
        assert_eq!(
            allocation
                .zone(Plane::Business, taiyuan, Zone::Production)
                .unwrap()
                .to_string(),
            "10.32.64.128/25"
        );
        assert_eq!(allocation.zone(Plane::Business, taiyuan, Zone::Dmz), None);
        let addresses: Vec<String> = allocation
            .overlay_addresses(Plane::Business, taiyuan)
            .iter()
            .map(|(zone, addr)| format!("{zone} {addr}"))
            .collect();
        assert_eq!(
            addresses,
            [
                "mgmt 10.32.64.1",
                "exchange 10.32.64.65",
                "production 10.32.64.129"
            ]
        );
    }

    #[test]
    fn the_locator_finds_node_and_zone_of_an_address() {
        let (network, allocation) = national();
        let locator = allocation.locator();
        let owner = locator.owner("10.32.64.130".parse().unwrap()).unwrap();
        assert_eq!(network.node(owner.node).id.to_string(), "dc:1401");
        assert_eq!(owner.zone, Some(Zone::Production));
        assert_eq!(owner.plane, Plane::Business);
        let owner = locator.owner("10.32.64.40".parse().unwrap()).unwrap();
        assert_eq!(owner.zone, None, ".32–.63 is between zone blocks");
        assert_eq!(
            locator.owner("10.32.65.1".parse().unwrap()),
            None,
            "spare own-area block"
        );
        assert_eq!(locator.owner("192.0.2.1".parse().unwrap()), None);
        let spanning = locator.owners(&"10.32.66.0/26".parse().unwrap());
        assert_eq!(spanning.len(), 2);
    }
}
