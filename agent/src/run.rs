//! `jinbao-agent run` and `show`: the binary's I/O around the library — reading the bundle
//! and keys, starting the runtime and the metrics endpoint, stopping cleanly on SIGTERM, and
//! asking a running agent for its status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use agent::control::{Bundle, Status};
use agent::identity::read_wireguard_secret;
use agent::model::Model;
use agent::node::Node;
use anyhow::{Context, Result, bail};

/// Runs the agent from `config` until SIGTERM or Ctrl-C.
pub(crate) fn run(config: &Path, metrics: SocketAddr) -> Result<()> {
    let name = config.display().to_string();
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {name}"))?;
    let bundle = Bundle::parse(&name, &text)?;
    let keys = bundle
        .planes
        .iter()
        .map(|plane| Ok((plane.plane, read_wireguard_secret(&plane.private_key)?)))
        .collect::<Result<Vec<_>>>()?;
    let model = Model::load(&bundle.model).with_context(|| format!("{name}: model"))?;
    #[allow(clippy::disallowed_methods)] // the binary reads the clock for the core
    let (now, wall) = (Instant::now(), SystemTime::now());
    let node = Node::new(&bundle, &keys, model, now, wall).with_context(|| name.clone())?;
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
        let running = agent::runtime::start(node, &[]).await?;
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
        shutdown_signal().await;
        eprintln!("stopping");
        let _ = stop_metrics.send(());
        let _ = endpoint.await;
        running.stop().await;
        Ok::<_, anyhow::Error>(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
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
