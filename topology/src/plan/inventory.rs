//! The IP registration check (IP地址备案): hand-assigned devices against the plan.
//!
//! Engineers register devices by name and address in a CSV (`name,address[,…]`) or TOML
//! (`[[devices]] name = … address = …`) file. The device name, written by the plan's naming
//! rule, says which node and zone the device belongs to; the check then finds duplicate
//! names and addresses, addresses outside the node's block or in the wrong zone block,
//! names that break the rule, and prefixes that overlap two nodes. Every finding names the
//! file and line; nothing in the file can make the check fail as a whole.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::block;
use super::{Allocation, Locator, Plan};
use crate::network::Network;
use crate::node::NodeId;
use crate::source::{Located, Location, SourceText};
use crate::vocabulary::{Plane, Zone};

/// One registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Where it was registered.
    pub location: Location,
    /// Its name.
    pub name: String,
    /// Its address, or the prefix registered for it.
    pub address: IpNet,
}

/// Something wrong with a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The row or entry could not be read at all.
    #[error("unreadable entry: {0}")]
    Unreadable(String),
    /// The address is not an address or prefix.
    #[error("{name}: `{given}` is not an address or prefix")]
    BadAddress {
        /// Device name.
        name: String,
        /// The text given.
        given: String,
    },
    /// The name does not follow the plan's naming rule.
    #[error("{name}: name does not match the naming rule `{rule}`")]
    NameRule {
        /// Device name.
        name: String,
        /// The plan's rule.
        rule: String,
    },
    /// The name places the device at a node that does not exist.
    #[error("{name}: names node {node}, which is not in the network")]
    UnknownNode {
        /// Device name.
        name: String,
        /// The node named.
        node: NodeId,
    },
    /// The same name registered twice.
    #[error("{name}: duplicate name, first registered on line {first_line}")]
    DuplicateName {
        /// Device name.
        name: String,
        /// Line of the first registration.
        first_line: usize,
    },
    /// The same address registered twice.
    #[error(
        "{name}: duplicate address {address}, already registered on line {first_line} as {first_name}"
    )]
    DuplicateAddress {
        /// Device name.
        name: String,
        /// The address.
        address: IpNet,
        /// Line of the first registration.
        first_line: usize,
        /// Name of the first registration.
        first_name: String,
    },
    /// The address is in no plane of the plan.
    #[error("{name}: {address} is outside every plane of the plan")]
    OutsidePlan {
        /// Device name.
        name: String,
        /// The address.
        address: IpNet,
    },
    /// The address lies outside the block of the node the name names.
    #[error("{name}: {address} is outside {node}'s blocks ({})", match .belongs { Some(other) => format!("it belongs to {other}"), None => "no node holds it".to_owned() })]
    OutsideNodeBlock {
        /// Device name.
        name: String,
        /// The address.
        address: IpNet,
        /// The node the name names.
        node: NodeId,
        /// The node that does own the address, if any.
        belongs: Option<NodeId>,
    },
    /// The address lies in the node's block but not in the zone the name says.
    #[error("{name}: {address} is in {node}'s {} block, not its {named} block", match .actual { Some(zone) => zone.as_str(), None => "unzoned" })]
    WrongZone {
        /// Device name.
        name: String,
        /// The address.
        address: IpNet,
        /// The node.
        node: NodeId,
        /// The zone the name says.
        named: Zone,
        /// The zone block the address is in, if any.
        actual: Option<Zone>,
    },
    /// The address lies on another plane than the name says.
    #[error("{name}: {address} is on the {actual} plane, not the {named} plane")]
    WrongPlane {
        /// Device name.
        name: String,
        /// The address.
        address: IpNet,
        /// The plane the name says.
        named: Plane,
        /// The plane the address is on.
        actual: Plane,
    },
    /// A registered prefix that covers blocks of more than one node.
    #[error("{name}: {address} overlaps the blocks of {}", .nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "))]
    SpansNodes {
        /// Device name.
        name: String,
        /// The prefix.
        address: IpNet,
        /// The nodes whose blocks it overlaps.
        nodes: Vec<NodeId>,
    },
    /// Two registrations for different nodes whose prefixes overlap.
    #[error(
        "{name}: {address} overlaps {other_address} registered on line {other_line} for {other_node}"
    )]
    OverlapsDevice {
        /// Device name.
        name: String,
        /// The prefix.
        address: IpNet,
        /// The other registration's prefix.
        other_address: IpNet,
        /// The other registration's line.
        other_line: usize,
        /// The node of the other registration.
        other_node: NodeId,
    },
}

/// The outcome of a registration check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How many devices were read.
    pub devices: usize,
    /// Every finding, in file order.
    pub findings: Vec<Located<Finding>>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        write!(
            f,
            "{} devices checked, {} findings",
            self.devices,
            self.findings.len()
        )
    }
}

/// Reads a device file: TOML when its name ends in `.toml`, CSV otherwise. Entries that
/// cannot be read become findings; the rest are returned.
pub fn read_devices(source: &SourceText<'_>) -> (Vec<Device>, Vec<Located<Finding>>) {
    if source.name().ends_with(".toml") {
        read_toml(source)
    } else {
        read_csv(source)
    }
}

fn parse_address(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn device_or_finding(
    location: Location,
    name: &str,
    address: &str,
) -> Result<Device, Located<Finding>> {
    match parse_address(address) {
        Some(address) => Ok(Device {
            location,
            name: name.trim().to_owned(),
            address,
        }),
        None => Err(Located {
            location,
            value: Finding::BadAddress {
                name: name.trim().to_owned(),
                given: address.to_owned(),
            },
        }),
    }
}

fn read_csv(source: &SourceText<'_>) -> (Vec<Device>, Vec<Located<Finding>>) {
    let mut devices = Vec::new();
    let mut findings = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(source.text().as_bytes());
    let columns = reader.headers().ok().and_then(|headers| {
        let at = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        Some((at("name")?, at("address")?))
    });
    let Some((name_at, address_at)) = columns else {
        findings.push(Located {
            location: source.at_line(1),
            value: Finding::Unreadable("the header must have `name` and `address` columns".into()),
        });
        return (devices, findings);
    };
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(1, |p| p.line() as usize);
                let location = source.at_line(line);
                match (record.get(name_at), record.get(address_at)) {
                    (Some(name), Some(address)) => {
                        match device_or_finding(location, name, address) {
                            Ok(device) => devices.push(device),
                            Err(finding) => findings.push(finding),
                        }
                    }
                    _ => findings.push(Located {
                        location,
                        value: Finding::Unreadable(format!(
                            "expected at least {} fields, found {}",
                            name_at.max(address_at) + 1,
                            record.len()
                        )),
                    }),
                }
            }
            Err(err) => findings.push(Located {
                location: source.at_line(err.position().map_or(1, |p| p.line() as usize)),
                value: Finding::Unreadable(err.to_string()),
            }),
        }
    }
    (devices, findings)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    #[serde(default)]
    devices: Vec<Spanned<DeviceEntry>>,
}

#[derive(Deserialize)]
struct DeviceEntry {
    name: String,
    address: String,
}

fn read_toml(source: &SourceText<'_>) -> (Vec<Device>, Vec<Located<Finding>>) {
    let file: DeviceFile = match source.parse_toml() {
        Ok(file) => file,
        Err(err) => return (Vec::new(), vec![err.map(Finding::Unreadable)]),
    };
    let mut devices = Vec::new();
    let mut findings = Vec::new();
    for entry in file.devices {
        let location = source.locate_span(&entry.span());
        let entry = entry.into_inner();
        match device_or_finding(location, &entry.name, &entry.address) {
            Ok(device) => devices.push(device),
            Err(finding) => findings.push(finding),
        }
    }
    (devices, findings)
}

/// Reads and checks a device file against the plan.
pub fn check_file(
    source: &SourceText<'_>,
    plan: &Plan,
    network: &Network,
    allocation: &Allocation,
) -> Report {
    let (devices, mut findings) = read_devices(source);
    findings.extend(check(&devices, plan, network, allocation));
    findings.sort_by(|a, b| a.location.cmp(&b.location));
    Report {
        devices: devices.len() + findings.iter().filter(|f| is_unread(&f.value)).count(),
        findings,
    }
}

fn is_unread(finding: &Finding) -> bool {
    matches!(finding, Finding::BadAddress { .. })
}

/// Checks registered devices against the plan.
pub fn check(
    devices: &[Device],
    plan: &Plan,
    network: &Network,
    allocation: &Allocation,
) -> Vec<Located<Finding>> {
    let locator = allocation.locator();
    let mut findings = duplicates(devices);
    let mut placed: Vec<(&Device, NodeId)> = Vec::new();
    for device in devices {
        let mut found = Vec::new();
        if let Some(node) = check_placement(device, plan, network, &locator, &mut found) {
            placed.push((device, node));
        }
        findings.extend(found.into_iter().map(|value| Located {
            location: device.location.clone(),
            value,
        }));
    }
    findings.extend(overlaps_between_nodes(&placed));
    findings
}

/// Names and addresses registered more than once.
fn duplicates(devices: &[Device]) -> Vec<Located<Finding>> {
    let mut findings = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<IpNet, &Device> = HashMap::new();
    for device in devices {
        let mut found = |value| {
            findings.push(Located {
                location: device.location.clone(),
                value,
            })
        };
        if let Some(&first_line) = names.get(device.name.as_str()) {
            found(Finding::DuplicateName {
                name: device.name.clone(),
                first_line,
            });
        } else {
            names.insert(&device.name, device.location.line);
        }
        if let Some(first) = addresses.get(&device.address) {
            found(Finding::DuplicateAddress {
                name: device.name.clone(),
                address: device.address,
                first_line: first.location.line,
                first_name: first.name.clone(),
            });
        } else {
            addresses.insert(device.address, device);
        }
    }
    findings
}

/// Checks where one device's address lies against what its name says; returns the node
/// the name places it at, if the name can be read and the node exists.
fn check_placement(
    device: &Device,
    plan: &Plan,
    network: &Network,
    locator: &Locator<'_>,
    found: &mut Vec<Finding>,
) -> Option<NodeId> {
    let name = device.name.clone();
    let address = device.address;
    let owners = locator.owners(&address);
    let plane = locator.plane_of(address.network());
    match owners.as_slice() {
        [] if plane.is_none() => found.push(Finding::OutsidePlan {
            name: name.clone(),
            address,
        }),
        [_, _, ..] => found.push(Finding::SpansNodes {
            name: name.clone(),
            address,
            nodes: owners.iter().map(|o| network.node(o.node).id).collect(),
        }),
        _ => {}
    }
    let Some(read) = plan.naming.read(&device.name) else {
        found.push(Finding::NameRule {
            name,
            rule: plan.naming.template().to_owned(),
        });
        return None;
    };
    let Some(node) = network.lookup(&read.node) else {
        found.push(Finding::UnknownNode {
            name,
            node: read.node,
        });
        return None;
    };
    if let (Some(named), Some(actual)) = (read.plane, plane)
        && named != actual
    {
        found.push(Finding::WrongPlane {
            name: name.clone(),
            address,
            named,
            actual,
        });
    }
    match owners.as_slice() {
        [owner] if owner.node == node => match read.zone {
            Some(named) if owner.zone != Some(named) => found.push(Finding::WrongZone {
                name,
                address,
                node: read.node,
                named,
                actual: owner.zone,
            }),
            _ => {}
        },
        [owner] => found.push(Finding::OutsideNodeBlock {
            name,
            address,
            node: read.node,
            belongs: Some(network.node(owner.node).id),
        }),
        [] if plane.is_some() => found.push(Finding::OutsideNodeBlock {
            name,
            address,
            node: read.node,
            belongs: None,
        }),
        _ => {}
    }
    Some(read.node)
}

/// Registrations for different nodes whose prefixes overlap (a prefix and an address inside
/// it registered for the same node are fine: that is a segment and its hosts).
fn overlaps_between_nodes(placed: &[(&Device, NodeId)]) -> Vec<Located<Finding>> {
    let mut by_start: Vec<(u128, u128, &Device, NodeId)> = placed
        .iter()
        .map(|&(device, node)| {
            let (start, end) = block::range(&device.address);
            (start, end, device, node)
        })
        .collect();
    by_start.sort_by_key(|&(start, end, device, _)| {
        (
            block::family_bits(&device.address),
            start,
            std::cmp::Reverse(end),
        )
    });
    let mut findings = Vec::new();
    for (i, &(_, end, device, node)) in by_start.iter().enumerate() {
        for &(start, _, other, other_node) in &by_start[i + 1..] {
            let same_family =
                block::family_bits(&other.address) == block::family_bits(&device.address);
            if !same_family || start > end {
                break;
            }
            if other_node != node && other.address != device.address {
                let (later, earlier, earlier_node) = if other.location > device.location {
                    (other, device, node)
                } else {
                    (device, other, other_node)
                };
                findings.push(Located {
                    location: later.location.clone(),
                    value: Finding::OverlapsDevice {
                        name: later.name.clone(),
                        address: later.address,
                        other_address: earlier.address,
                        other_line: earlier.location.line,
                        other_node: earlier_node,
                    },
                });
            }
        }
    }
    findings
}
