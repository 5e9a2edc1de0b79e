//! What the agents enforce: each held booking's reservations, per link and direction, as the
//! sending agent's bundle carries them.
//!
//! A booking's [plan](super::plan) says which links its streams cross and in which
//! direction; the agent at the sending end of each link direction shapes and prioritises
//! what it sends to the peer at the other end, so the reservation for `Down` goes into the
//! upper node's bundle (peer: the lower node) and `Up` into the lower node's. Each carries
//! the booking's whole window (test start to end, which the agent checks against its own
//! clock, so enforcement holds while the controller is unreachable), the rate reserved on
//! that link direction, and the site pairs whose media it covers: every stream that crosses
//! the link, as its MCU's and its far end's exchange-zone prefixes (MCUs and terminals sit
//! in their site's exchange zone).
//!
//! Bookings are pushed from the moment they are placed until their end, so an agent that
//! has its bundle knows every window ahead of time.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use agent::control::Reservation;
use ipnet::IpNet;
use topology::{Allocation, NodeId, NodeIx, Plane, Zone};

use super::plan::{Direction, Plan};
use super::scheduler::Scheduler;

/// The plane conference media runs on.
pub const CONFERENCE_PLANE: Plane = Plane::Business;

/// Reservations by sending node and the peer it sends to, each list in booking order.
pub type LinkReservations = BTreeMap<(NodeId, NodeId), Vec<Reservation>>;

/// A link direction's capacity, by sending node and peer (kbit/s), for every link direction
/// with a reservation: what the agent shapes to during a window.
pub type LinkCapacities = BTreeMap<(NodeId, NodeId), u64>;

/// Every held booking that has not ended by `now`, as reservations per link direction, and
/// the capacities of the links they are on. `allocation` must be the plan of the
/// scheduler's network (the same model).
pub fn reservations(
    scheduler: &Scheduler,
    allocation: &Allocation,
    now: SystemTime,
) -> (LinkReservations, LinkCapacities) {
    let network = scheduler.network();
    let mut reserved = LinkReservations::new();
    let mut capacities = LinkCapacities::new();
    for booking in scheduler.bookings() {
        let (from, until) = booking.window();
        if !scheduler.is_held(booking.id) || until <= now {
            continue;
        }
        let Some(plan) = scheduler.plan(booking.id) else {
            continue;
        };
        for link_use in &plan.links {
            let link = network.link(link_use.link);
            for &direction in link_use.directions.each() {
                let (sender, receiver) = match direction {
                    Direction::Down => (link.upper, link.lower),
                    Direction::Up => (link.lower, link.upper),
                };
                let key = (network.node(sender).id, network.node(receiver).id);
                let flows = flows_across(plan, network, allocation, link.lower);
                reserved.entry(key).or_default().push(Reservation {
                    booking: booking.id.0,
                    from_unix_s: unix_seconds(from),
                    until_unix_s: unix_seconds(until).max(unix_seconds(from) + 1),
                    rate_kbps: link_use.rate.0,
                    flows,
                });
                capacities.insert(key, link.capacity.0);
            }
        }
    }
    (reserved, capacities)
}

/// The site pairs of the streams that cross the link above `lower`: those whose far end is
/// `lower` or below it while their MCU is above it.
fn flows_across(
    plan: &Plan,
    network: &topology::Network,
    allocation: &Allocation,
    lower: NodeIx,
) -> Vec<[IpNet; 2]> {
    let at_or_below = |node: NodeIx| node == lower || network.ancestors(node).any(|a| a == lower);
    let exchange = |node: NodeIx| allocation.zone(CONFERENCE_PLANE, node, Zone::Exchange);
    let mut flows: Vec<[IpNet; 2]> = plan
        .streams
        .iter()
        .filter(|s| at_or_below(s.to) && !at_or_below(s.mcu))
        .filter_map(|s| Some([exchange(s.mcu)?, exchange(s.to)?]))
        .collect();
    flows.sort();
    flows.dedup();
    flows
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
