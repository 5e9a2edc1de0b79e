//! Where a conference's streams run: which MCUs it cascades through, which links each
//! stream crosses and in which direction, and how many MCU ports it takes.
//!
//! The shape follows how the network runs conferences:
//!
//! - Every participating site's terminal connects to the nearest MCU above it inside the
//!   main venue's subtree: in a ministry–province conference a province's terminal
//!   connects to the ministry MCU; in a province–city conference a city's terminal
//!   connects to its province's MCU.
//! - An MCU that serves sites and is not the main venue's is *cascaded*: it connects to the
//!   nearest MCU above it over one cascade stream pair, however many sites hang below it.
//!   A three-level conference (ministry MCU, cities of several provinces) therefore puts
//!   one stream pair on each province's backbone link and one on each city's provincial
//!   link.
//! - A site with an MCU of its own that the conference cascades through joins on that MCU
//!   locally and adds no stream of its own.
//! - A stream pair is one stream down (the conference picture, MCU → site) and one up (the
//!   site's camera). Receive-only sites (收看会场) send nothing up; a cascade sends up only
//!   when something below it sends.
//!
//! Ports: the main venue's own room takes one port on its MCU; each terminal one port on
//! its MCU; each cascade one port on both MCUs it joins.
//!
//! Each stream reserves its [reserved rate](super::overhead) on every link of its path, in
//! the directions it flows; links are full duplex, so the two directions are separate
//! [resources](Resource) for admission.

use std::collections::BTreeMap;

use topology::{Kbps, LinkIx, Network, NodeId, NodeIx};

use super::config::SchedulerConfig;
use super::form::Site;

/// Which way a stream crosses a tree link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the upper node to the lower one: towards the sites.
    Down,
    /// From the lower node to the upper one: towards the MCU.
    Up,
}

impl Direction {
    /// Both directions, down first.
    pub const BOTH: [Direction; 2] = [Direction::Down, Direction::Up];

    /// The word for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Down => "down",
            Direction::Up => "up",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The directions a stream or a link use takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Directions {
    /// Down only.
    Down,
    /// Up only.
    Up,
    /// Down and up.
    Both,
}

impl Directions {
    /// The single directions this covers.
    pub fn each(self) -> &'static [Direction] {
        match self {
            Directions::Down => &[Direction::Down],
            Directions::Up => &[Direction::Up],
            Directions::Both => &Direction::BOTH,
        }
    }
}

/// Something admission control counts: one direction of a link (in kbit/s) or an MCU (in
/// ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// One direction of a tree link.
    Link {
        /// The link.
        link: LinkIx,
        /// The direction.
        direction: Direction,
    },
    /// The MCU at a node.
    Mcu(NodeIx),
}

/// What a stream connects an MCU to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// A participating site's terminal.
    Terminal,
    /// A cascaded MCU.
    Cascade,
}

/// One stream pair (or a lone down stream) between an MCU and what it serves below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    /// The MCU at the upper end.
    pub mcu: NodeIx,
    /// The terminal's site or the cascaded MCU, below `mcu`.
    pub to: NodeIx,
    /// Terminal or cascade.
    pub kind: StreamKind,
    /// Down only (nothing to send up) or both.
    pub directions: Directions,
}

/// What a conference takes on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkUse {
    /// The link.
    pub link: LinkIx,
    /// The directions taken; a link carrying more streams one way than the other has one
    /// entry per direction.
    pub directions: Directions,
    /// Streams crossing the link in each of those directions.
    pub streams: u32,
    /// The reserved rate in each of those directions.
    pub rate: Kbps,
}

/// What a conference takes on one MCU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McuUse {
    /// Where the MCU is.
    pub node: NodeIx,
    /// Ports taken.
    pub ports: u32,
    /// The MCU this one is cascaded from; `None` for the main venue's.
    pub cascaded_from: Option<NodeIx>,
}

/// Everything one conference reserves while it holds its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The main venue, whose MCU runs the conference.
    pub main_venue: NodeIx,
    /// The reserved rate of one stream: bitrate plus overhead.
    pub stream_rate: Kbps,
    /// Every stream, cascades first, in node order.
    pub streams: Vec<Stream>,
    /// Every link used, in link order.
    pub links: Vec<LinkUse>,
    /// Every MCU used, the main venue's first.
    pub mcus: Vec<McuUse>,
}

/// Why a conference cannot be laid out on the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A node the form names is not in the network.
    #[error("no node {0} in the network")]
    UnknownNode(NodeId),
    /// The main venue has no MCU to run the conference.
    #[error(
        "the main venue {0} has no MCU (the ministry and every province have one; others need mcu-ports configured)"
    )]
    NoMcu(NodeId),
    /// A site outside the main venue's subtree: no MCU of this conference can reach it
    /// along the tree.
    #[error(
        "{site} is not below the main venue {main_venue}; a conference reaches sites below its main venue only"
    )]
    NotBelowMainVenue {
        /// The site.
        site: NodeId,
        /// The main venue.
        main_venue: NodeId,
    },
    /// A bitrate whose reserved total does not fit in 64 bits.
    #[error("a bitrate of {0} is too high to reserve")]
    RateTooHigh(Kbps),
}

impl Plan {
    /// Lays out a conference run from `main_venue` with these sites at `bitrate`.
    ///
    /// A site equal to the main venue is its own room, which always takes part.
    pub fn compute(
        network: &Network,
        config: &SchedulerConfig,
        main_venue: NodeId,
        sites: &[Site],
        bitrate: Kbps,
    ) -> Result<Plan, PlanError> {
        let main = network
            .lookup(&main_venue)
            .ok_or(PlanError::UnknownNode(main_venue))?;
        if config.mcu_ports(network, main).is_none() {
            return Err(PlanError::NoMcu(main_venue));
        }
        let stream_rate = config
            .overhead
            .reserve(bitrate)
            .ok_or(PlanError::RateTooHigh(bitrate))?;
        let mut layout = Layout::new(network, config, main);
        for site in sites {
            let ix = network
                .lookup(&site.node)
                .ok_or(PlanError::UnknownNode(site.node))?;
            if !layout.join(ix, !site.receive_only) {
                return Err(PlanError::NotBelowMainVenue {
                    site: site.node,
                    main_venue,
                });
            }
        }
        layout
            .finish(stream_rate)
            .ok_or(PlanError::RateTooHigh(bitrate))
    }

    /// Every node problem of a conference at once: the main venue unknown or without an
    /// MCU, sites unknown or not below the main venue. Each comes with the node it is about.
    pub fn check_nodes(
        network: &Network,
        config: &SchedulerConfig,
        main_venue: NodeId,
        sites: impl IntoIterator<Item = NodeId>,
    ) -> Vec<(NodeId, PlanError)> {
        let mut problems = Vec::new();
        let main = match network.lookup(&main_venue) {
            None => Some(PlanError::UnknownNode(main_venue)),
            Some(main) if config.mcu_ports(network, main).is_none() => {
                Some(PlanError::NoMcu(main_venue))
            }
            Some(_) => None,
        };
        problems.extend(main.map(|problem| (main_venue, problem)));
        for site in sites {
            let problem = match (network.lookup(&site), network.lookup(&main_venue)) {
                (None, _) => PlanError::UnknownNode(site),
                (Some(ix), Some(main))
                    if ix != main && !network.ancestors(ix).any(|a| a == main) =>
                {
                    PlanError::NotBelowMainVenue { site, main_venue }
                }
                _ => continue,
            };
            problems.push((site, problem));
        }
        problems
    }

    /// What the plan reserves, per resource: kbit/s on link directions, ports on MCUs.
    pub fn demands(&self) -> impl Iterator<Item = (Resource, u64)> + '_ {
        let links = self.links.iter().flat_map(|usage| {
            usage.directions.each().iter().map(|&direction| {
                let resource = Resource::Link {
                    link: usage.link,
                    direction,
                };
                (resource, usage.rate.0)
            })
        });
        let mcus = self
            .mcus
            .iter()
            .map(|m| (Resource::Mcu(m.node), u64::from(m.ports)));
        links.chain(mcus)
    }

    /// The rate reserved on one direction of a link; 0 if the conference does not use it.
    pub fn rate_on(&self, link: LinkIx, direction: Direction) -> Kbps {
        self.links
            .iter()
            .find(|u| u.link == link && u.directions.each().contains(&direction))
            .map(|u| u.rate)
            .unwrap_or_default()
    }

    /// Ports taken on the MCU at `node`; 0 if the conference does not use it.
    pub fn ports_on(&self, node: NodeIx) -> u32 {
        self.mcus
            .iter()
            .find(|m| m.node == node)
            .map_or(0, |m| m.ports)
    }
}

/// A conference being laid out: who joins where.
struct Layout<'a> {
    network: &'a Network,
    config: &'a SchedulerConfig,
    main: NodeIx,
    /// Participating sites other than the main venue: site → sends up.
    sites: BTreeMap<NodeIx, bool>,
    /// MCUs in use → the MCU they are cascaded from (`None` for the main venue's).
    mcus: BTreeMap<NodeIx, Option<NodeIx>>,
}

impl<'a> Layout<'a> {
    fn new(network: &'a Network, config: &'a SchedulerConfig, main: NodeIx) -> Self {
        Layout {
            network,
            config,
            main,
            sites: BTreeMap::new(),
            mcus: BTreeMap::from([(main, None)]),
        }
    }

    /// The nearest MCU strictly above `node` that is the main venue's or below it; `None`
    /// when `node` is not below the main venue.
    fn serving_mcu(&self, node: NodeIx) -> Option<NodeIx> {
        let mut nearest = None;
        for above in self.network.ancestors(node) {
            if above == self.main {
                return Some(nearest.unwrap_or(self.main));
            }
            if nearest.is_none() && self.config.mcu_ports(self.network, above).is_some() {
                nearest = Some(above);
            }
        }
        None
    }

    /// Adds a site; `false` if it is not below the main venue.
    fn join(&mut self, site: NodeIx, sends: bool) -> bool {
        if site == self.main {
            return true;
        }
        let Some(mut mcu) = self.serving_mcu(site) else {
            return false;
        };
        let entry = self.sites.entry(site).or_insert(false);
        *entry |= sends;
        // Cascade every MCU between the site and the main venue.
        while mcu != self.main && !self.mcus.contains_key(&mcu) {
            let above = self.serving_mcu(mcu).unwrap_or(self.main);
            self.mcus.insert(mcu, Some(above));
            mcu = above;
        }
        true
    }

    /// The streams, their links and the ports; `None` if a total overflows.
    fn finish(self, stream_rate: Kbps) -> Option<Plan> {
        let mut ports: BTreeMap<NodeIx, u32> = BTreeMap::from([(self.main, 1)]);
        let mut sending: BTreeMap<NodeIx, bool> = BTreeMap::new();
        let mut terminals = Vec::new();
        for (&site, &sends) in &self.sites {
            if self.mcus.contains_key(&site) {
                // An MCU of this conference: the site's room joins it locally.
                *ports.entry(site).or_default() += 1;
                *sending.entry(site).or_default() |= sends;
                continue;
            }
            let mcu = self.serving_mcu(site)?;
            *ports.entry(mcu).or_default() += 1;
            *sending.entry(mcu).or_default() |= sends;
            terminals.push(Stream {
                mcu,
                to: site,
                kind: StreamKind::Terminal,
                directions: if sends {
                    Directions::Both
                } else {
                    Directions::Down
                },
            });
        }
        // Deepest MCU first, so whether a cascade sends up (something below it sends) is
        // known before the cascade above it is laid.
        let mut cascaded: Vec<(NodeIx, NodeIx)> = self
            .mcus
            .iter()
            .filter_map(|(&mcu, &above)| above.map(|above| (mcu, above)))
            .collect();
        cascaded.sort_by_key(|&(mcu, _)| std::cmp::Reverse(self.network.ancestors(mcu).count()));
        let mut streams = Vec::new();
        for &(mcu, above) in &cascaded {
            let sends = sending.get(&mcu).copied().unwrap_or(false);
            *sending.entry(above).or_default() |= sends;
            *ports.entry(mcu).or_default() += 1;
            *ports.entry(above).or_default() += 1;
            streams.push(Stream {
                mcu: above,
                to: mcu,
                kind: StreamKind::Cascade,
                directions: if sends {
                    Directions::Both
                } else {
                    Directions::Down
                },
            });
        }
        streams.sort_by_key(|s| s.to);
        terminals.sort_by_key(|s| s.to);
        streams.extend(terminals);
        let links = self.link_uses(&streams, stream_rate)?;
        let mcus = std::iter::once(self.main)
            .chain(self.mcus.keys().copied().filter(|&m| m != self.main))
            .map(|node| McuUse {
                node,
                ports: ports.get(&node).copied().unwrap_or(0),
                cascaded_from: self.mcus.get(&node).copied().flatten(),
            })
            .collect();
        Some(Plan {
            main_venue: self.main,
            stream_rate,
            streams,
            links,
            mcus,
        })
    }

    /// Counts the streams on every link of every stream's path, each way.
    fn link_uses(&self, streams: &[Stream], stream_rate: Kbps) -> Option<Vec<LinkUse>> {
        let mut counts: BTreeMap<LinkIx, (u32, u32)> = BTreeMap::new();
        for stream in streams {
            let up = stream.directions == Directions::Both;
            // The path from an MCU down to a node below it: the uplinks of every node from
            // the lower end up to (not including) the MCU.
            let mut node = stream.to;
            while node != stream.mcu {
                let link = self.network.uplink(node)?;
                let count = counts.entry(link).or_default();
                count.0 += 1;
                count.1 += u32::from(up);
                node = self.network.parent(node)?;
            }
        }
        let rate = |streams: u32| stream_rate.0.checked_mul(u64::from(streams)).map(Kbps);
        let mut uses = Vec::with_capacity(counts.len());
        for (link, (down, up)) in counts {
            let entries = if down == up {
                vec![(Directions::Both, down)]
            } else {
                vec![(Directions::Down, down), (Directions::Up, up)]
            };
            for (directions, streams) in entries.into_iter().filter(|&(_, n)| n > 0) {
                uses.push(LinkUse {
                    link,
                    directions,
                    streams,
                    rate: rate(streams)?,
                });
            }
        }
        Some(uses)
    }
}
