//! TUN mode: the node's overlay interface as a kernel device, one per plane.
//!
//! What it promises: a plane's device (named [`default_name`], `jb-<plane>`, unless told
//! otherwise) carries exactly the node's own zone addresses of that plane from the plan, each
//! with its zone block's prefix length, and a route for the plane's supernet, so the host
//! reaches the rest of the plane through the overlay and nothing else. Packets the host sends
//! into the device go to the runtime's [`Interface::send`]; packets the overlay delivers
//! ([`Interface::received`]) are written to the device of their plane. The core filters
//! both directions; this module decides nothing.
//!
//! Devices are not persistent: closing them (stopping the [`Pump`], or the process ending)
//! removes them with their addresses and routes. Creating one needs root or
//! `CAP_NET_ADMIN`. Addresses and routes are set over rtnetlink with acknowledgements, so
//! every failure is reported with the device, the prefix and the kernel's reason.
//!
//! Linux only.

use std::io;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use topology::{NodeId, Plane, Zone};
use tun_rs::{AsyncDevice, DeviceBuilder};

use crate::model::Model;
use crate::runtime::Interface;

mod netlink;

/// The MTU of an overlay device: a 1500-byte underlay less WireGuard's 80 bytes of
/// worst-case (IPv6) overhead, as `wg-quick` sets it.
pub const MTU: u16 = 1420;

/// The longest interface name Linux takes (`IFNAMSIZ` less the terminator).
pub const MAX_NAME: usize = 15;

/// The device name of a plane in TUN mode: `jb-business`, `jb-office`, `jb-public`.
pub fn default_name(plane: Plane) -> String {
    format!("jb-{plane}")
}

/// Why TUN mode could not come up or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The plan gives the node no addresses on the plane.
    #[error("{node} has no addresses on the {plane} plane of the plan")]
    NotOnPlane {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
    },
    /// The plan has no supernet for the plane.
    #[error("the plan has no {0} plane")]
    NoSupernet(Plane),
    /// Not a usable interface name.
    #[error("`{name}` is not a usable interface name ({reason})")]
    Name {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The kernel refused a step.
    #[error("TUN device {name}: {step}: {error}{hint}", hint = hint(error))]
    Device {
        /// The device.
        name: String,
        /// What was being done: "create", "add address 10.32.64.1/27 (mgmt zone)", …
        step: String,
        /// The kernel's reason (in the message, so not also a `source`).
        error: io::Error,
    },
}

fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(1) | Some(13) => " (TUN mode needs root or CAP_NET_ADMIN)",
        Some(16) => " (is another agent running with the same device?)",
        Some(19) | Some(77) => " (was the device deleted?)",
        _ => "",
    }
}

/// What a plane's device is to carry: computed from the model alone, so it can be shown
/// and tested without creating anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The plane.
    pub plane: Plane,
    /// The interface name.
    pub name: String,
    /// The MTU.
    pub mtu: u16,
    /// The node's own address in each of its zones, with the zone block's prefix length,
    /// in the plan's zone order.
    pub addresses: Vec<(Zone, IpNet)>,
    /// Prefixes routed into the device: the plane's supernet.
    pub routes: Vec<IpNet>,
}

impl DeviceSpec {
    /// The device of `node` on `plane`, named `name`.
    pub fn plan(
        model: &Model,
        node: NodeId,
        plane: Plane,
        name: impl Into<String>,
    ) -> Result<DeviceSpec, TunError> {
        let name = name.into();
        check_name(&name)?;
        let not_on_plane = || TunError::NotOnPlane { node, plane };
        let ix = model.network.lookup(&node).ok_or_else(not_on_plane)?;
        let blocks = model.allocation.zones(plane, ix);
        if blocks.is_empty() {
            return Err(not_on_plane());
        }
        let own = model.allocation.overlay_addresses(plane, ix);
        let addresses = blocks
            .into_iter()
            .zip(own)
            .filter_map(|((zone, block), (_, address))| {
                Some((zone, IpNet::new(address, block.prefix_len()).ok()?))
            })
            .collect();
        let supernet = model
            .allocation
            .supernet(plane)
            .ok_or(TunError::NoSupernet(plane))?;
        Ok(DeviceSpec {
            plane,
            name,
            mtu: MTU,
            addresses,
            routes: vec![supernet],
        })
    }
}

fn check_name(name: &str) -> Result<(), TunError> {
    let bad = |reason| {
        Err(TunError::Name {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("empty");
    }
    if name.len() > MAX_NAME {
        return bad("longer than 15 bytes");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("no '/', ':' or whitespace");
    }
    Ok(())
}

/// An open TUN device, configured by its [`DeviceSpec`].
pub struct TunDevice {
    spec: DeviceSpec,
    device: AsyncDevice,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl TunDevice {
    /// Creates the device, assigns its addresses, brings it up and routes the plane into it.
    /// Must be called inside a tokio runtime. On error nothing is left behind: the device
    /// goes with its file descriptor.
    pub fn open(spec: DeviceSpec) -> Result<TunDevice, TunError> {
        let fail = |step: String| {
            let name = spec.name.clone();
            move |error| TunError::Device { name, step, error }
        };
        let device = DeviceBuilder::new()
            .name(&spec.name)
            .mtu(spec.mtu)
            .enable(false)
            .build_async()
            .map_err(fail("create".into()))?;
        let index = device.if_index().map_err(fail("interface index".into()))?;
        if spec.addresses.iter().all(|(_, a)| a.addr().is_ipv4()) {
            // A plane without IPv6 gets no link-local chatter (router solicitations, MLD)
            // sent into the overlay. Best effort: the core drops such packets anyway.
            let knob = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", spec.name);
            if let Err(err) = std::fs::write(&knob, "1") {
                tracing::debug!(device = %spec.name, %err, "could not disable IPv6");
            }
        }
        for (zone, address) in &spec.addresses {
            netlink::add_address(index, *address)
                .map_err(fail(format!("add address {address} ({zone} zone)")))?;
        }
        device.enabled(true).map_err(fail("bring up".into()))?;
        for route in &spec.routes {
            netlink::replace_route(index, *route).map_err(fail(format!("route {route}")))?;
        }
        Ok(TunDevice { spec, device })
    }

    /// What the device carries.
    pub fn spec(&self) -> &DeviceSpec {
        &self.spec
    }
}

/// Moves packets between the TUN devices and the runtime's interface: one reader task per
/// device, one writer for everything the overlay delivers.
#[derive(Debug)]
pub struct Pump {
    tasks: JoinSet<Result<(), TunError>>,
}

impl Pump {
    /// Starts pumping. Takes the interface: nothing else may read it. Must be called inside
    /// a tokio runtime.
    pub fn start(devices: Vec<TunDevice>, interface: Interface) -> Pump {
        let Interface { send, received } = interface;
        let mut tasks = JoinSet::new();
        let mut writers = Vec::new();
        for TunDevice { spec, device } in devices {
            let device = Arc::new(device);
            writers.push((spec.plane, spec.name.clone(), Arc::clone(&device)));
            tasks.spawn(read_device(spec.plane, spec.name, device, send.clone()));
        }
        tasks.spawn(write_devices(writers, received));
        Pump { tasks }
    }

    /// Resolves when a device fails (it was deleted, or reads error out): the plane's
    /// datapath is gone and the agent should stop. Never resolves while all is well.
    pub async fn failed(&mut self) -> TunError {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(Err(err))) => return err,
                // A task ends cleanly only when the runtime stops; a panicked one is a bug
                // the log already shows.
                Some(Ok(Ok(()))) | Some(Err(_)) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Stops pumping and closes the devices (the kernel removes them, their addresses and
    /// their routes).
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Host → overlay.
async fn read_device(
    plane: Plane,
    name: String,
    device: Arc<AsyncDevice>,
    send: mpsc::Sender<(Plane, Vec<u8>)>,
) -> Result<(), TunError> {
    let mut buffer = vec![0u8; 65_536];
    loop {
        match device.recv(&mut buffer).await {
            Ok(0) => continue,
            Ok(len) => {
                if send.send((plane, buffer[..len].to_vec())).await.is_err() {
                    return Ok(()); // the runtime stopped
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(TunError::Device {
                    name,
                    step: "read".into(),
                    error,
                });
            }
        }
    }
}

/// Overlay → host. A packet the kernel refuses is dropped (and logged at debug); the
/// writer only stops when the runtime does.
async fn write_devices(
    devices: Vec<(Plane, String, Arc<AsyncDevice>)>,
    mut received: mpsc::Receiver<(Plane, Vec<u8>)>,
) -> Result<(), TunError> {
    while let Some((plane, packet)) = received.recv().await {
        let Some((_, name, device)) = devices.iter().find(|(p, ..)| *p == plane) else {
            tracing::debug!(%plane, "no TUN device for this plane; packet dropped");
            continue;
        };
        if let Err(err) = device.send(&packet).await {
            tracing::debug!(%plane, device = %name, %err, "TUN write failed; packet dropped");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_city_device_carries_its_zone_addresses_and_the_plane_supernet() {
        let model = Model::national().unwrap();
        let node: NodeId = "dc:1401".parse().unwrap();
        let spec =
            DeviceSpec::plan(&model, node, Plane::Business, default_name(Plane::Business)).unwrap();
        assert_eq!(spec.name, "jb-business");
        assert_eq!(spec.mtu, MTU);
        let ix = model.network.lookup(&node).unwrap();
        let zones = model.allocation.zones(Plane::Business, ix);
        assert_eq!(spec.addresses.len(), zones.len());
        for ((zone, address), (block_zone, block)) in spec.addresses.iter().zip(&zones) {
            assert_eq!(zone, block_zone);
            assert_eq!(address.trunc(), *block, "{zone}: {address} not in {block}");
            assert_ne!(
                address.addr(),
                block.network(),
                "{zone}: the network address"
            );
        }
        let mgmt = spec.addresses.iter().find(|(z, _)| *z == Zone::Mgmt);
        assert_eq!(mgmt.unwrap().1, "10.32.64.1/27".parse::<IpNet>().unwrap());
        assert_eq!(spec.routes, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn a_site_device_has_the_site_zones() {
        let model = Model::national().unwrap();
        let node: NodeId = "site:140105:window-01".parse().unwrap();
        let spec = DeviceSpec::plan(&model, node, Plane::Business, "jb-business").unwrap();
        let zones: Vec<Zone> = spec.addresses.iter().map(|(z, _)| *z).collect();
        assert_eq!(zones, vec![Zone::Mgmt, Zone::Production]);
        assert!(spec.addresses.iter().all(|(_, a)| a.prefix_len() >= 28));
    }

    #[test]
    fn nodes_off_the_plane_and_bad_names_are_refused() {
        let model = Model::national().unwrap();
        // Sites are on the business plane only.
        let site: NodeId = "site:140105:window-01".parse().unwrap();
        let err = DeviceSpec::plan(&model, site, Plane::Office, "jb-office").unwrap_err();
        assert!(matches!(err, TunError::NotOnPlane { .. }), "{err}");
        let city: NodeId = "dc:1401".parse().unwrap();
        for name in ["", "jb-business-overlay", "jb/business", "jb business"] {
            let err = DeviceSpec::plan(&model, city, Plane::Business, name).unwrap_err();
            assert!(matches!(err, TunError::Name { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn permission_errors_say_what_tun_mode_needs() {
        let err = TunError::Device {
            name: "jb-business".into(),
            step: "create".into(),
            error: io::Error::from_raw_os_error(1),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("TUN device jb-business: create: "),
            "{text}"
        );
        assert!(
            text.ends_with("(TUN mode needs root or CAP_NET_ADMIN)"),
            "{text}"
        );
    }
}
