//! `jinbao-agent run` and `show`: the binary's I/O around the library — reading the bundle
//! and keys, starting the runtime, the TUN devices (`--tun`) and the metrics endpoint,
//! stopping cleanly on SIGTERM, and asking a running agent for its status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agent::control::{Bundle, Status};
use agent::follow::{AgentDir, Listen};
use agent::identity::read_wireguard_secret;
use agent::model::Model;
use agent::node::Node;
use anyhow::{Context, Result, bail};
use topology::NodeId;

/// Runs the agent from `config` until SIGTERM or Ctrl-C (or, with `tun`, until a TUN device
/// fails).
pub(crate) fn run(
    dir: &Path,
    config: Option<&Path>,
    controller: Option<SocketAddr>,
    metrics: SocketAddr,
    tun: bool,
) -> Result<()> {
    let agent_dir = AgentDir::at(dir);
    let (name, bundle, keys) = match config {
        Some(config) => {
            let name = config.display().to_string();
            let text =
                std::fs::read_to_string(config).with_context(|| format!("cannot read {name}"))?;
            let bundle = Bundle::parse(&name, &text)?;
            let keys = bundle
                .planes
                .iter()
                .map(|plane| Ok((plane.plane, read_wireguard_secret(&plane.private_key)?)))
                .collect::<Result<Vec<_>>>()?;
            (name, bundle, keys)
        }
        None => {
            let name = agent_dir.bundle_path().display().to_string();
            let bundle = agent_dir.last_good().with_context(|| {
                format!("{name}: no usable bundle (enroll first: jinbao-agent enroll)")
            })?;
            let keys = agent_dir.wireguard_keys(&bundle)?;
            (name, bundle, keys)
        }
    };
    let model = Model::load(&bundle.model).with_context(|| format!("{name}: model"))?;
    #[allow(clippy::disallowed_methods)] // the binary reads the clock for the core
    let (now, wall) = (Instant::now(), SystemTime::now());
    let node =
        Node::new(&bundle, &keys, Arc::clone(&model), now, wall).with_context(|| name.clone())?;
    for plane in node.planes() {
        for (peer, reason) in plane.refused() {
            tracing::warn!(plane = %plane.plane(), %peer, %reason, "peer refused");
            eprintln!("{} plane: peer {peer} refused: {reason}", plane.plane());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        // Devices first: a node that cannot carry its host's traffic does not join.
        let devices = if tun {
            Some(tun_mode::open(&node, &model)?)
        } else {
            None
        };
        let mut running = agent::runtime::start(node, &[]).await?;
        let (stop_follower, follower_stopped) = tokio::sync::watch::channel(false);
        let follower = controller.map(|controller| {
            let control = running.control();
            let bundle = bundle.clone();
            eprintln!(
                "following the controller at {controller} (config version {})",
                bundle.version
            );
            tokio::spawn(async move {
                agent_dir
                    .follow(controller, bundle, &control, follower_stopped)
                    .await;
            })
        });
        let mut pump = devices.map(|devices| tun_mode::pump(devices, &mut running));
        let listener = tokio::net::TcpListener::bind(metrics)
            .await
            .with_context(|| format!("metrics endpoint {metrics}"))?;
        let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
        let endpoint = tokio::spawn(agent::metrics::serve(
            listener,
            running.status.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        for (plane, addr) in &running.listening {
            eprintln!("{plane} plane listening on {addr}");
        }
        eprintln!("metrics and status on http://{metrics}/metrics and /status");
        let failed = tokio::select! {
            _ = agent::runtime::shutdown_signal() => None,
            err = tun_mode::failed(pump.as_mut()) => Some(err),
        };
        eprintln!("stopping");
        let _ = stop_follower.send(true);
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        if let Some(pump) = pump {
            tun_mode::stop(pump).await;
        }
        let _ = stop_metrics.send(());
        let _ = endpoint.await;
        running.stop().await;
        match failed {
            Some(err) => Err(err),
            None => Ok(()),
        }
    })
}

/// Enrolls the node in `dir` with the controller.
pub(crate) fn enroll(
    dir: &Path,
    controller: SocketAddr,
    token: &str,
    node: NodeId,
    root: &Path,
    planes: &[Listen],
) -> Result<Bundle> {
    let root_pem =
        std::fs::read_to_string(root).with_context(|| format!("cannot read {}", root.display()))?;
    let model = Model::load(&agent::control::ModelSources::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let bundle = runtime
        .block_on(AgentDir::at(dir).enroll(controller, token, &root_pem, node, planes, &model))?;
    Ok(bundle)
}

/// `--tun`: one device per plane, pumped to the runtime's interface.
#[cfg(target_os = "linux")]
mod tun_mode {
    use agent::model::Model;
    use agent::node::Node;
    use agent::runtime::{Interface, Running};
    use agent::tun::{DeviceSpec, Pump, TunDevice, default_name};
    use anyhow::Result;

    pub(super) type Devices = Vec<TunDevice>;

    /// Creates and configures every plane's device; prints what each carries.
    pub(super) fn open(node: &Node, model: &Model) -> Result<Devices> {
        let mut devices = Vec::new();
        for instance in node.planes() {
            let plane = instance.plane();
            let spec = DeviceSpec::plan(model, node.id(), plane, default_name(plane))?;
            let device = TunDevice::open(spec)?;
            let spec = device.spec();
            let addresses: Vec<String> = spec
                .addresses
                .iter()
                .map(|(zone, address)| format!("{address} ({zone})"))
                .collect();
            let routes: Vec<String> = spec.routes.iter().map(ToString::to_string).collect();
            eprintln!(
                "{plane} plane on {}: {}; routes {}",
                spec.name,
                addresses.join(", "),
                routes.join(", ")
            );
            devices.push(device);
        }
        Ok(devices)
    }

    /// Hands the runtime's interface to the devices.
    pub(super) fn pump(devices: Devices, running: &mut Running) -> Pump {
        // The runtime keeps an idle receiver; the devices get the real one.
        let (_, idle) = tokio::sync::mpsc::channel(1);
        let interface = Interface {
            send: running.interface.send.clone(),
            received: std::mem::replace(&mut running.interface.received, idle),
        };
        Pump::start(devices, interface)
    }

    /// Resolves when a device fails; never without devices.
    pub(super) async fn failed(pump: Option<&mut Pump>) -> anyhow::Error {
        match pump {
            Some(pump) => pump.failed().await.into(),
            None => std::future::pending().await,
        }
    }

    pub(super) async fn stop(pump: Pump) {
        pump.stop().await;
    }
}

/// `--tun` elsewhere: refused.
#[cfg(not(target_os = "linux"))]
mod tun_mode {
    use agent::model::Model;
    use agent::node::Node;
    use agent::runtime::Running;
    use anyhow::{Result, bail};

    pub(super) enum Devices {}
    pub(super) enum Pump {}

    pub(super) fn open(_: &Node, _: &Model) -> Result<Devices> {
        bail!("--tun is supported on Linux only")
    }

    pub(super) fn pump(devices: Devices, _: &mut Running) -> Pump {
        match devices {}
    }

    pub(super) async fn failed(_: Option<&mut Pump>) -> anyhow::Error {
        std::future::pending().await
    }

    pub(super) async fn stop(pump: Pump) {
        match pump {}
    }
}

/// Asks the agent at `addr` for its status (`GET /status`).
pub(crate) fn fetch_status(addr: SocketAddr) -> Result<Status> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("no agent answers on {addr} (is `jinbao-agent run` running?)"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024 * 1024)
        .read_to_end(&mut response)
        .context("reading the status")?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{addr}: not an HTTP response");
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{addr}: {}", head.lines().next().unwrap_or_default());
    }
    serde_json::from_str(body).with_context(|| format!("{addr}: the status is not readable"))
}
