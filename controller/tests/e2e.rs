//! The controller and five agents over 127.0.0.1, end to end: a real `jinbao-controller`
//! process (init, serve, node token, config policy, cert revoke), five agents in this
//! process (real keys, CSRs, enrollment, signed bundles, WireGuard, zone filters).
//!
//! 1. The ministry, Shanxi (14) and Hebei (13), Taiyuan (1401) and Shijiazhuang (1301)
//!    enroll with one-time tokens and form the tree; exchange traffic crosses it.
//! 2. A policy change (a new port on exchange-up) reaches every agent: the flow it opens
//!    was refused before and passes after.
//! 3. The controller is killed with SIGKILL: agents keep forwarding; a token acknowledged
//!    just before the kill still enrolls after the restart (nothing acknowledged is lost),
//!    and the agents resynchronise.
//! 4. Shijiazhuang's certificate is revoked: its province tears the tunnel down and its
//!    traffic stops.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use agent::control::ModelSources;
use agent::follow::{AgentDir, Listen};
use agent::model::Model;
use agent::node::Node;
use agent::runtime::Running;
use tokio::sync::watch;
use topology::{NodeId, Plane, Zone};

const PLANE: Plane = Plane::Business;
const NODES: [&str; 5] = ["dc:ministry", "dc:14", "dc:13", "dc:1401", "dc:1301"];

fn controller_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jinbao-controller")
}

fn run(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(controller_bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "jinbao-controller {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The controller process; killed (SIGKILL) when dropped.
struct Serving(Child);

impl Serving {
    fn start(dir: &Path, listen: SocketAddr, metrics: SocketAddr) -> Serving {
        let child = Command::new(controller_bin())
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--listen", &listen.to_string()])
            .args(["--metrics", &metrics.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(Instant::now() < deadline, "the controller did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serving(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Agent {
    node: NodeId,
    running: Running,
    stop: watch::Sender<bool>,
    follower: tokio::task::JoinHandle<()>,
}

fn token(dir: &Path, node: &str) -> String {
    run(dir, &["node", "token", node, "--ttl", "10m"])
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

async fn start_agent(
    dir: &Path,
    controller: SocketAddr,
    node: &str,
    token: &str,
    model: &Model,
) -> Agent {
    let node: NodeId = node.parse().unwrap();
    let agent_dir = AgentDir::at(&dir.join(node.tag()));
    let root = std::fs::read_to_string(dir.join("controller/ca/root.pem")).unwrap();
    let bundle = agent_dir
        .enroll(
            controller,
            token,
            &root,
            node,
            &[Listen {
                plane: PLANE,
                listen: free_udp(),
                backup: None,
            }],
            model,
        )
        .await
        .unwrap();
    let model = Model::load(&bundle.model).unwrap();
    let keys = agent_dir.wireguard_keys(&bundle).unwrap();
    let core = Node::new(&bundle, &keys, model, Instant::now(), SystemTime::now()).unwrap();
    let running = agent::runtime::start(core, &[]).await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let control = running.control();
    let follower = tokio::spawn(async move {
        agent_dir
            .follow(controller, bundle, &control, stopped)
            .await;
    });
    Agent {
        node,
        running,
        stop,
        follower,
    }
}

/// Restarts a node's agent from its directory alone (no controller).
async fn restart_from_disk(work: &Path, node: &str) -> Agent {
    let node: NodeId = node.parse().unwrap();
    let agent_dir = AgentDir::at(&work.join(node.tag()));
    let bundle = agent_dir.last_good().unwrap();
    let model = Model::load(&bundle.model).unwrap();
    let keys = agent_dir.wireguard_keys(&bundle).unwrap();
    let core = Node::new(&bundle, &keys, model, Instant::now(), SystemTime::now()).unwrap();
    // The old instance still holds the port: bind this one anywhere, and let the peers'
    // roaming find it (WireGuard answers where it last heard from).
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let running = agent::runtime::start(core, &[(PLANE, any)]).await.unwrap();
    let (stop, _) = watch::channel(false);
    Agent {
        node,
        running,
        stop,
        follower: tokio::spawn(async {}),
    }
}

/// Polls the controller's metrics until every line in `expected` is there.
async fn wait_for_metrics(metrics: SocketAddr, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = tokio::task::spawn_blocking(move || get_metrics(metrics))
            .await
            .unwrap();
        let missing: Vec<&&str> = expected.iter().filter(|l| !text.contains(**l)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the controller's metrics lack {missing:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn get_metrics(metrics: SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(metrics) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

fn address(model: &Model, node: &str, zone: Zone) -> IpAddr {
    let ix = model.network.lookup(&node.parse().unwrap()).unwrap();
    model
        .allocation
        .overlay_addresses(PLANE, ix)
        .into_iter()
        .find(|(z, _)| *z == zone)
        .unwrap()
        .1
}

/// An IPv4 TCP SYN.
fn syn(src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
    agent::probe::tcp_syn(src, dst, port)
}

/// Sends `packet` from `from` until `to` delivers it (true) or `limit` passes (false).
async fn crosses(from: &Agent, to: &mut Agent, packet: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        from.running
            .interface
            .send
            .send((PLANE, packet.to_vec()))
            .await
            .unwrap();
        if let Ok(Some((_, got))) = tokio::time::timeout(
            Duration::from_millis(200),
            to.running.interface.received.recv(),
        )
        .await
            && got == packet
        {
            return true;
        }
    }
    false
}

async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn version(agent: &Agent) -> u64 {
    agent.running.status.borrow().version
}

fn peer_up(agent: &Agent, peer: &str) -> bool {
    agent.running.status.borrow().planes.iter().any(|plane| {
        plane
            .peers
            .iter()
            .any(|p| p.node.to_string() == peer && p.handshake_age.is_some())
    })
}

fn refused(agent: &Agent, peer: &str) -> bool {
    agent
        .running
        .status
        .borrow()
        .planes
        .iter()
        .any(|plane| plane.refused.iter().any(|(n, _)| n.to_string() == peer))
}

fn serial_of(dir: &Path, node: &str) -> String {
    run(dir, &["node", "list"])
        .lines()
        .find(|line| line.starts_with(&format!("{node}\t")))
        .and_then(|line| line.split('\t').nth(3))
        .unwrap()
        .to_owned()
}

fn exchange_policy_with(port: u16) -> String {
    let policy = topology::policy::EMBEDDED_POLICY;
    let old = "ports = [443, 1414]         # HTTPS and MQ data exchange";
    assert!(policy.contains(old), "the embedded policy changed shape");
    policy.replacen(old, &format!("ports = [443, 1414, {port}]"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_agents_enroll_follow_survive_a_controller_kill_and_a_revocation() {
    let work = tempdir();
    let dir = work.join("controller");
    run(&dir, &["init"]);
    let (listen, metrics) = (free_tcp(), free_tcp());
    let serving = Serving::start(&dir, listen, metrics);
    let model = Model::load(&ModelSources::default()).unwrap();

    // 1. Enrollment with one-time tokens; the tree forms.
    let mut agents = Vec::new();
    for node in NODES {
        let token = token(&dir, node);
        agents.push(start_agent(&work, listen, node, &token, &model).await);
    }
    let [ministry, shanxi, hebei, taiyuan, shijiazhuang] = &mut agents[..] else {
        unreachable!()
    };
    wait_for(Duration::from_secs(20), "the tree's tunnels", || {
        peer_up(taiyuan, "dc:14")
            && peer_up(shanxi, "dc:ministry")
            && peer_up(shijiazhuang, "dc:13")
            && peer_up(hebei, "dc:ministry")
    })
    .await;
    let exchange = |node| address(&model, node, Zone::Exchange);
    let mq = syn(exchange("dc:1401"), exchange("dc:ministry"), 1414);
    assert!(
        crosses(taiyuan, ministry, &mq, Duration::from_secs(10)).await,
        "Taiyuan's exchange reaches the ministry's across the tree"
    );
    // The controller sees the links the agents report (its Prometheus exposition).
    wait_for_metrics(metrics, &[
        "jinbao_controller_agents_reporting 5",
        "jinbao_controller_link_up{child=\"dc:1401\",parent=\"dc:14\",plane=\"business\"} 1",
        "jinbao_controller_link_up{child=\"dc:13\",parent=\"dc:ministry\",plane=\"business\"} 1",
    ])
    .await;
    let new_port = syn(exchange("dc:1301"), exchange("dc:ministry"), 8080);
    assert!(
        !crosses(shijiazhuang, ministry, &new_port, Duration::from_secs(1)).await,
        "port 8080 is closed before the policy change"
    );

    // 2. A policy change reaches every agent.
    let before: Vec<u64> = agents.iter().map(version).collect();
    let policy = work.join("policy.toml");
    std::fs::write(&policy, exchange_policy_with(8080)).unwrap();
    run(&dir, &["config", "policy", policy.to_str().unwrap()]);
    wait_for(
        Duration::from_secs(20),
        "every agent on the new policy",
        || agents.iter().zip(&before).all(|(a, b)| version(a) > *b),
    )
    .await;
    let [ministry, _, _, taiyuan, shijiazhuang] = &mut agents[..] else {
        unreachable!()
    };
    assert!(
        crosses(shijiazhuang, ministry, &new_port, Duration::from_secs(10)).await,
        "port 8080 is open after the policy change"
    );

    // 3. SIGKILL: agents keep forwarding; what was acknowledged survives.
    let spare = token(&dir, "dc:1402");
    serving.kill();
    let mq2 = syn(exchange("dc:1401"), exchange("dc:ministry"), 443);
    assert!(
        crosses(taiyuan, ministry, &mq2, Duration::from_secs(5)).await,
        "traffic flows while the controller is down"
    );
    // An agent restarted while the controller is away comes up on its last good bundle.
    let taiyuan_again = restart_from_disk(&work, "dc:1401").await;
    let mq3 = syn(exchange("dc:1401"), exchange("dc:ministry"), 1414);
    assert!(
        crosses(&taiyuan_again, ministry, &mq3, Duration::from_secs(10)).await,
        "an agent restarted without its controller forwards on its last good bundle"
    );
    taiyuan_again.running.stop().await;
    let serving = Serving::start(&dir, listen, metrics);
    let nodes = run(&dir, &["node", "list"]);
    for node in NODES {
        assert!(
            nodes.contains(&format!("{node}\t")),
            "{node} survived the kill"
        );
    }
    let late = start_agent(&work, listen, "dc:1402", &spare, &model).await;
    assert_eq!(late.node.to_string(), "dc:1402");
    wait_for(Duration::from_secs(20), "the late city's tunnel", || {
        peer_up(&late, "dc:14")
    })
    .await;

    // 4. Revocation: Hebei tears Shijiazhuang down.
    // A kept connection (as health reports use) works before the revocation...
    let revoked_dir = AgentDir::at(&work.join("dc-1301"));
    let revoked_bundle = revoked_dir.last_good().unwrap();
    let mut session = revoked_dir.session(listen, &revoked_bundle).unwrap();
    let report = agents[4].running.status.borrow().clone();
    session.report(&report).await.unwrap();
    let serial = serial_of(&dir, "dc:1301");
    run(
        &dir,
        &["cert", "revoke", "--reason", "key-compromise", &serial],
    );
    // The revocation is in the store's records and its change log, which still verifies.
    let store = controller::store::Store::open(&dir.join("controller.db")).unwrap();
    let revoked = store
        .read(|tx| tx.certificates())
        .unwrap()
        .into_iter()
        .find(|c| c.serial == serial)
        .unwrap();
    assert!(
        revoked.revoked.is_some(),
        "the store knows {serial} is revoked"
    );
    let log = store.read(|tx| tx.changes(0, usize::MAX)).unwrap();
    assert!(
        log.iter()
            .any(|c| c.what.contains("revoke") && c.who.starts_with("local:")),
        "the revocation is in the change log: {:?}",
        log.iter().map(|c| &c.what).collect::<Vec<_>>()
    );
    assert!(store.verify_changes().unwrap() >= log.len() as u64);
    let hebei = &agents[2];
    wait_for(
        Duration::from_secs(20),
        "Hebei to refuse Shijiazhuang",
        || refused(hebei, "dc:1301"),
    )
    .await;
    // ...and is refused on its next request once the CRL is out, without a new handshake.
    match session.report(&report).await {
        Err(agent::client::ClientError::Refused {
            status: 401,
            message,
        }) => {
            assert!(message.contains("node certificate"), "{message}")
        }
        other => panic!("a revoked node still reports: {other:?}"),
    }
    let [ministry, _, _, _, shijiazhuang] = &mut agents[..] else {
        unreachable!()
    };
    let from_revoked = syn(exchange("dc:1301"), exchange("dc:ministry"), 1414);
    assert!(
        !crosses(
            shijiazhuang,
            ministry,
            &from_revoked,
            Duration::from_secs(2)
        )
        .await,
        "a revoked city is cut off"
    );

    for agent in agents.into_iter().chain(std::iter::once(late)) {
        let _ = agent.stop.send(true);
        agent.follower.abort();
        agent.running.stop().await;
    }
    drop(serving);
    let _ = std::fs::remove_dir_all(&work);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jinbao-e2e-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
