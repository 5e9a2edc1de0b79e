//! The SNMP poller against a real net-snmp `snmpd` on 127.0.0.1.
//!
//! Each test starts its own agent on a free UDP port, in the foreground, with a config and a
//! persistent directory of its own (so v3 users, the engine ID and engineBoots live there,
//! and survive a restart as on a real device), and kills it when dropped, failed or not.
//!
//! The counters come from the agent's `pass_persist` extension: a small shell script
//! answers GETs of ifHCInOctets, ifHCOutOctets and ifOperStatus for ifIndex 1001, 1002…
//! from a file the test rewrites (atomically) between polls. snmpd still does all the SNMP:
//! BER encoding, communities, USM authentication and privacy. sysUpTime is snmpd's own, so
//! a restart is a real one: stop the agent, start it again on the same port.
//!
//! snmpd runs under a small bash watchdog whose stdin is a pipe from this process: when the
//! test drops the agent, or dies in a way that runs no destructor (an abort), the pipe
//! closes and the watchdog stops snmpd. Nothing outlives the test.
//!
//! Each test body runs on a thread with the poller's large stack (see
//! `controller::snmp::poller::POLL_THREAD_STACK`): the tests also use `SnmpClient`
//! directly, which in a debug build needs more stack than a test thread has.
//!
//! Without `snmpd`, the tests first run `scripts/setup.sh snmp`, and skip with a reason if
//! it is still missing.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::fs;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use controller::snmp::poller::POLL_THREAD_STACK;

use controller::snmp::{
    Absence, AuthProtocol, CounterRate, Credentials, Device, DeviceState, IfColumn, InterfaceRate,
    Inventory, OperStatus, PollError, Poller, PollerConfig, PrivProtocol, Sample, Secret,
    SnmpClient, UptimeStep, device_state,
};

const COMMUNITY: &str = "jinbao-ro-community";
const V3_USER: &str = "jinbao";
const AUTH_PASSWORD: &str = "auth-secret-0001";
const PRIV_PASSWORD: &str = "priv-secret-0001";
/// Per request. Generous: a loaded CI machine forks a shell per snmpd start.
const TIMEOUT: Duration = Duration::from_millis(2000);

// ---------------------------------------------------------------------------------------
// The agent under test.

/// Runs a test body on a thread with a large stack and a runtime of its own, and fails the
/// test if the body panicked.
fn run<F: Future<Output = ()>>(body: impl FnOnce() -> F + Send + 'static) {
    let outcome = std::thread::Builder::new()
        .stack_size(POLL_THREAD_STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body());
        })
        .unwrap()
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs snmpd ("$@") and stops it (SIGTERM) at the end of its stdin: when the test closes
/// the pipe, or the test process dies. Exits with snmpd's status, as soon as snmpd exits.
const WATCHDOG: &str = r#"
"$@" &
agent=$!
echo "$agent" > "$WATCHDOG_PIDFILE"
while kill -0 "$agent" 2>/dev/null; do
    read -r -t 0.2 _
    status=$?
    if [ "$status" -eq 0 ] || [ "$status" -gt 128 ]; then
        continue
    fi
    break
done
kill -TERM "$agent" 2>/dev/null
wait "$agent"
"#;

/// The real clock: these tests measure real time around real polls.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)]
fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// A scratch directory, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jinbao-snmp-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("conf")).unwrap();
        fs::create_dir_all(dir.join("persist")).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where `snmpd` is, if anywhere (it lives in sbin, which is not on every PATH).
fn find_snmpd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("snmpd"))
        .find(|candidate| candidate.is_file())
}

/// `snmpd`, installed by `scripts/setup.sh snmp` if need be; `None` (with the reason
/// printed) when it cannot be had.
fn snmpd_or_skip() -> Option<PathBuf> {
    if let Some(found) = find_snmpd() {
        return Some(found);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
    let status = Command::new("bash").arg(&script).arg("snmp").status();
    if let Some(found) = find_snmpd() {
        return Some(found);
    }
    eprintln!(
        "skipping: net-snmp's snmpd is not installed, and `{} snmp` could not install it ({status:?})",
        script.display()
    );
    None
}

/// The pass_persist script: answers `get` for the OIDs listed in the values file, one
/// `OID TYPE VALUE` per line; everything else has no such object.
fn counters_script(values: &Path) -> String {
    format!(
        r#"#!/bin/sh
# net-snmp pass_persist protocol (snmpd.conf(5)); values from {values}
while read -r command; do
    case "$command" in
        PING) echo PONG ;;
        get)
            read -r oid
            awk -v oid="$oid" '$1 == oid {{ print $1; print $2; print $3; found = 1; exit }}
                END {{ if (!found) print "NONE" }}' '{values}'
            ;;
        getnext) read -r oid; echo NONE ;;
        set) read -r oid; read -r value; echo not-writable ;;
        *) echo NONE ;;
    esac
done
"#,
        values = values.display()
    )
}

/// One interface as the agent will report it.
#[derive(Debug, Clone, Copy)]
struct Counters {
    index: u32,
    in_octets: u64,
    out_octets: u64,
    oper: OperStatus,
}

fn counters(index: u32, in_octets: u64, out_octets: u64, oper: OperStatus) -> Counters {
    Counters {
        index,
        in_octets,
        out_octets,
        oper,
    }
}

/// A running `snmpd` (under its watchdog), stopped when dropped.
struct Snmpd {
    binary: PathBuf,
    dir: ScratchDir,
    port: u16,
    child: Option<Child>,
}

impl Snmpd {
    /// Starts an agent, or `None` when snmpd is not to be had (the test then skips).
    async fn start(name: &str) -> Option<Snmpd> {
        let binary = snmpd_or_skip()?;
        let dir = ScratchDir::new(name);
        let values = dir.0.join("counters");
        let script = dir.0.join("counters.sh");
        fs::write(&script, counters_script(&values)).unwrap();
        let conf = format!(
            "rocommunity {COMMUNITY} 127.0.0.1\n\
             createUser {V3_USER} SHA-256 \"{AUTH_PASSWORD}\" AES \"{PRIV_PASSWORD}\"\n\
             rouser {V3_USER} priv\n\
             pass_persist .1.3.6.1.2.1.31.1.1.1 /bin/sh {script}\n\
             pass_persist .1.3.6.1.2.1.2.2.1.8 /bin/sh {script}\n",
            script = script.display()
        );
        fs::write(dir.0.join("conf/snmpd.conf"), conf).unwrap();
        let mut agent = Snmpd {
            binary,
            dir,
            port: 0,
            child: None,
        };
        agent.set(&[]);
        // A free port could be taken between our probe and snmpd's bind: try a few.
        for attempt in 1..=3 {
            agent.port = free_udp_port();
            match agent.launch().await {
                Ok(()) => return Some(agent),
                Err(err) if attempt < 3 => eprintln!("snmpd did not start ({err}); new port"),
                Err(err) => panic!("snmpd did not start: {err}\n{}", agent.log()),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.0.join("snmpd.log")).unwrap_or_default()
    }

    /// Runs snmpd in the foreground, reading only our config directory and our persistent
    /// directory (SNMPCONFPATH; not `-C`, which would also skip the persistent store and
    /// so forget engineBoots and the engine ID across a restart), without MIB files
    /// (numeric OIDs only), listening on 127.0.0.1:port only. Waits until it answers.
    async fn launch(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("snmpd.log"))
            .unwrap();
        let conf = self.dir.0.join("conf");
        let persist = self.dir.0.join("persist");
        let child = Command::new("bash")
            .args(["-c", WATCHDOG, "snmpd-watchdog"])
            .arg(&self.binary)
            .args(["-f", "-Lo", "-M", "/dev/null"])
            .arg(format!("udp:127.0.0.1:{}", self.port))
            .env(
                "SNMPCONFPATH",
                format!("{}:{}", conf.display(), persist.display()),
            )
            .env("SNMP_PERSISTENT_DIR", &persist)
            .env("WATCHDOG_PIDFILE", self.dir.0.join("snmpd.pid"))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|err| format!("cannot run bash for {}: {err}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("snmpd exited with {status}"));
            }
            let probe = async {
                let credentials = v2c();
                let mut client =
                    SnmpClient::connect(self.address(), &credentials, Duration::from_millis(200))
                        .await?;
                client.sample(&[]).await
            };
            if probe.await.is_ok() {
                return Ok(());
            }
            if now() > deadline {
                return Err("snmpd does not answer after 15 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops snmpd as an operator would: closing the watchdog's stdin makes it send
    /// SIGTERM, so snmpd saves its persistent state (engineBoots). If that does not work in
    /// time, kills both.
    fn stop(&mut self) {
        let Some(mut watchdog) = self.child.take() else {
            return;
        };
        drop(watchdog.stdin.take());
        let deadline = now() + Duration::from_secs(5);
        while now() < deadline {
            if let Ok(Some(_)) = watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        if let Ok(pid) = fs::read_to_string(self.dir.0.join("snmpd.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }

    /// Restarts the agent on the same port with the same persistent state.
    async fn restart(&mut self) {
        self.stop();
        if let Err(err) = self.launch().await {
            panic!("snmpd did not restart: {err}\n{}", self.log());
        }
    }

    /// What the agent reports from now on (the file is replaced in one rename).
    fn set(&self, interfaces: &[Counters]) {
        let mut text = String::new();
        for c in interfaces {
            text += &format!(
                ".1.3.6.1.2.1.31.1.1.1.6.{} counter64 {}\n",
                c.index, c.in_octets
            );
            text += &format!(
                ".1.3.6.1.2.1.31.1.1.1.10.{} counter64 {}\n",
                c.index, c.out_octets
            );
            text += &format!(
                ".1.3.6.1.2.1.2.2.1.8.{} integer {}\n",
                c.index,
                c.oper.to_mib()
            );
        }
        let staged = self.dir.0.join("counters.new");
        fs::write(&staged, text).unwrap();
        fs::rename(&staged, self.dir.0.join("counters")).unwrap();
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Devices, polls and expectations.

fn v2c() -> Credentials {
    Credentials::V2c {
        community: Secret::new(COMMUNITY),
    }
}

fn v3(auth_password: &str, privacy_password: &str) -> Credentials {
    Credentials::V3 {
        user: V3_USER.to_owned(),
        auth: AuthProtocol::Sha256,
        auth_password: Secret::new(auth_password),
        privacy: PrivProtocol::Aes128,
        privacy_password: Secret::new(privacy_password),
    }
}

fn device(name: &str, address: SocketAddr, interfaces: &[u32], credentials: Credentials) -> Device {
    Device {
        name: name.to_owned(),
        address,
        link: Some("dc:44-dc:4401".to_owned()),
        interfaces: interfaces.to_vec(),
        credentials,
    }
}

fn new_poller(devices: Vec<Device>) -> Poller {
    Poller::new(
        Inventory { devices },
        PollerConfig {
            timeout: TIMEOUT,
            ..PollerConfig::default()
        },
    )
}

/// Polls once and returns the states of `names`, with the real time the round took.
async fn poll(poller: &mut Poller, names: &[&str]) -> (Vec<DeviceState>, Instant, Instant) {
    let started = now();
    poller.poll_once().await;
    let finished = now();
    let states = names
        .iter()
        .map(|name| device_state(&poller.states(), name).unwrap())
        .collect();
    (states, started, finished)
}

fn interface(state: &DeviceState, index: u32) -> InterfaceRate {
    *state
        .interfaces
        .iter()
        .find(|i| i.index == index)
        .unwrap_or_else(|| panic!("no interface {index} in {state:#?}"))
}

fn assert_reachable(state: &DeviceState) {
    assert!(
        state.reachable && state.last_error.is_none(),
        "{} should be reachable: {:?}",
        state.name,
        state.last_error
    );
}

/// The interval the rates are over: the sysUpTime difference between the two polls.
fn uptime_interval(first: &DeviceState, second: &DeviceState) -> Duration {
    let ticks = second.sys_uptime.unwrap() - first.sys_uptime.unwrap();
    Duration::from_millis(u64::from(ticks) * 10)
}

/// A measured rate equal to `octets` over `interval` (up to float rounding).
fn assert_rate(rate: CounterRate, octets: u64, interval: Duration, wrapped: bool) {
    let expected = octets as f64 * 8.0 / interval.as_secs_f64();
    match rate {
        CounterRate::Measured {
            bps,
            wrapped: was_wrapped,
        } => {
            assert!(
                (bps - expected).abs() <= expected.abs() * 1e-9,
                "{bps} bit/s, expected {expected} ({octets} octets over {interval:?})"
            );
            assert_eq!(was_wrapped, wrapped, "wrapped flag of {rate:?}");
        }
        other => panic!("expected {expected} bit/s, got {other:?}"),
    }
}

/// The agent reads sysUpTime when it answers, somewhere within each poll: the interval
/// lies between (second start − first end) and (second end − first start), give or take
/// one 10 ms tick of truncation at each end.
fn assert_interval_is_real(
    interval: Duration,
    first: (Instant, Instant),
    second: (Instant, Instant),
) {
    let shortest = second
        .0
        .duration_since(first.1)
        .saturating_sub(Duration::from_millis(20));
    let longest = second.1.duration_since(first.0) + Duration::from_millis(20);
    assert!(
        shortest <= interval && interval <= longest,
        "sysUpTime interval {interval:?} outside the real {shortest:?}..={longest:?}"
    );
}

async fn one_sample(
    address: SocketAddr,
    credentials: &Credentials,
    interfaces: &[u32],
) -> Result<Sample, PollError> {
    let mut client = SnmpClient::connect(address, credentials, TIMEOUT).await?;
    client.sample(interfaces).await
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn v2c_rates_come_from_two_polls() {
    run(v2c_rates_come_from_two_polls_body);
}

async fn v2c_rates_come_from_two_polls_body() {
    let Some(agent) = Snmpd::start("v2c").await else {
        return;
    };
    agent.set(&[
        counters(1001, 1_000_000, 2_000_000, OperStatus::Up),
        counters(1002, 7, 0, OperStatus::Down),
    ]);
    let mut poller = new_poller(vec![device("core", agent.address(), &[1001, 1002], v2c())]);

    let (states, start1, end1) = poll(&mut poller, &["core"]).await;
    let first = &states[0];
    assert_reachable(first);
    assert_eq!(first.uptime_step, Some(UptimeStep::First));
    assert_eq!(first.link.as_deref(), Some("dc:44-dc:4401"));
    assert!(first.polled_at.is_some() && first.last_success_at.is_some());
    for index in [1001, 1002] {
        assert_eq!(interface(first, index).inbound, CounterRate::NoBaseline);
        assert_eq!(interface(first, index).outbound, CounterRate::NoBaseline);
    }
    assert_eq!(interface(first, 1001).oper, OperStatus::Up);
    assert_eq!(interface(first, 1002).oper, OperStatus::Down);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    agent.set(&[
        counters(
            1001,
            1_000_000 + 125_000,
            2_000_000 + 3_000_000,
            OperStatus::Up,
        ),
        counters(1002, 7, 0, OperStatus::LowerLayerDown),
    ]);
    let (states, start2, end2) = poll(&mut poller, &["core"]).await;
    let second = &states[0];
    assert_reachable(second);
    let interval = uptime_interval(first, second);
    assert_eq!(
        second.uptime_step,
        Some(UptimeStep::Continuous {
            interval,
            uptime_wrapped: false
        })
    );
    assert_interval_is_real(interval, (start1, end1), (start2, end2));
    assert_rate(interface(second, 1001).inbound, 125_000, interval, false);
    assert_rate(interface(second, 1001).outbound, 3_000_000, interval, false);
    assert_rate(interface(second, 1002).inbound, 0, interval, false);
    assert_rate(interface(second, 1002).outbound, 0, interval, false);
    assert_eq!(interface(second, 1002).oper, OperStatus::LowerLayerDown);
    assert_eq!(second.restarted_at, None);

    // As the admin API shows it: times in RFC 3339, rates tagged by state.
    let json = serde_json::to_value(second).unwrap();
    let polled_at = json["polled_at"].as_str().unwrap();
    assert!(
        polled_at.len() == 24 && polled_at.ends_with('Z'),
        "{polled_at}"
    );
    assert_eq!(json["restarted_at"], serde_json::Value::Null);
    assert_eq!(json["interfaces"][0]["inbound"]["state"], "measured");
    assert_eq!(json["interfaces"][0]["oper"], "up");
    assert_eq!(json["uptime_step"]["step"], "continuous");
}

#[test]
fn v3_auth_priv_polls_and_wrong_credentials_are_told_apart() {
    run(v3_auth_priv_polls_and_wrong_credentials_are_told_apart_body);
}

async fn v3_auth_priv_polls_and_wrong_credentials_are_told_apart_body() {
    let Some(agent) = Snmpd::start("v3").await else {
        return;
    };
    agent.set(&[counters(1001, 40_000, 1 << 40, OperStatus::Up)]);
    let right = v3(AUTH_PASSWORD, PRIV_PASSWORD);

    let sample = one_sample(agent.address(), &right, &[1001]).await.unwrap();
    assert_eq!(sample.interfaces.len(), 1);
    assert_eq!(sample.interfaces[0].in_octets, 40_000);
    assert_eq!(sample.interfaces[0].out_octets, 1 << 40);
    assert_eq!(sample.interfaces[0].oper, OperStatus::Up);

    // Through the poller: two polls, a rate.
    let mut poller = new_poller(vec![device("mcu", agent.address(), &[1001], right.clone())]);
    let (first, ..) = poll(&mut poller, &["mcu"]).await;
    assert_reachable(&first[0]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set(&[counters(
        1001,
        40_000 + 10_000,
        (1 << 40) + 1,
        OperStatus::Up,
    )]);
    let (second, ..) = poll(&mut poller, &["mcu"]).await;
    assert_reachable(&second[0]);
    let interval = uptime_interval(&first[0], &second[0]);
    assert_rate(interface(&second[0], 1001).inbound, 10_000, interval, false);
    assert_rate(interface(&second[0], 1001).outbound, 1, interval, false);

    // A wrong authentication password or user is refused by an (unauthenticated) Report:
    // an authentication error, well before the timeout.
    for (what, credentials) in [
        ("auth password", v3("wrong-auth-password", PRIV_PASSWORD)),
        (
            "user",
            Credentials::V3 {
                user: "nobody".to_owned(),
                auth: AuthProtocol::Sha256,
                auth_password: Secret::new(AUTH_PASSWORD),
                privacy: PrivProtocol::Aes128,
                privacy_password: Secret::new(PRIV_PASSWORD),
            },
        ),
    ] {
        let asked = now();
        let err = one_sample(agent.address(), &credentials, &[1001])
            .await
            .unwrap_err();
        assert!(matches!(err, PollError::Auth { .. }), "wrong {what}: {err}");
        assert!(
            now() - asked < TIMEOUT,
            "wrong {what} took the whole timeout"
        );
        assert_eq!(err.label(), "auth");
    }

    // A wrong privacy password or community: net-snmp drops the request without a word,
    // so it cannot be told from a dead device.
    let err = one_sample(
        agent.address(),
        &v3(AUTH_PASSWORD, "wrong-priv-password"),
        &[1001],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PollError::Timeout { .. }),
        "wrong privacy password: {err}"
    );
    let err = one_sample(
        agent.address(),
        &Credentials::V2c {
            community: Secret::new("not-the-community"),
        },
        &[1001],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PollError::Timeout { .. }),
        "wrong community: {err}"
    );

    // The poller records the failure by kind.
    let mut bad = new_poller(vec![device(
        "mcu",
        agent.address(),
        &[1001],
        v3("wrong-auth-password", PRIV_PASSWORD),
    )]);
    let (states, ..) = poll(&mut bad, &["mcu"]).await;
    assert!(!states[0].reachable);
    assert_eq!(states[0].last_error_kind, Some("auth"));
    assert!(
        states[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("authentication failed"),
        "{:?}",
        states[0].last_error
    );
}

#[test]
fn a_counter_wrap_gives_the_right_positive_rate() {
    run(a_counter_wrap_gives_the_right_positive_rate_body);
}

async fn a_counter_wrap_gives_the_right_positive_rate_body() {
    let Some(agent) = Snmpd::start("wrap").await else {
        return;
    };
    // ifHCInOctets 1000 below 2^64, ifHCOutOctets at 2^64 − 1.
    agent.set(&[counters(1001, u64::MAX - 999, u64::MAX, OperStatus::Up)]);
    let mut poller = new_poller(vec![device("core", agent.address(), &[1001], v2c())]);
    let (first, ..) = poll(&mut poller, &["core"]).await;
    assert_reachable(&first[0]);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set(&[counters(1001, 500, 1_000_000, OperStatus::Up)]);
    let (second, ..) = poll(&mut poller, &["core"]).await;
    assert_reachable(&second[0]);
    let interval = uptime_interval(&first[0], &second[0]);
    // 1000 octets to the wrap and 500 after; 1 to the wrap and 1 000 000 after.
    assert_rate(interface(&second[0], 1001).inbound, 1_500, interval, true);
    assert_rate(
        interface(&second[0], 1001).outbound,
        1_000_001,
        interval,
        true,
    );

    // Going back by a little is not a wrap (it would mean 2^64 − 100 octets in a second):
    // the counter was reset, and that interval gets no rate at all.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set(&[counters(1001, 400, 1_000_800, OperStatus::Up)]);
    let (third, ..) = poll(&mut poller, &["core"]).await;
    let interval = uptime_interval(&second[0], &third[0]);
    assert_eq!(
        interface(&third[0], 1001).inbound,
        CounterRate::Discontinuity
    );
    assert_rate(interface(&third[0], 1001).outbound, 800, interval, false);
}

#[test]
fn a_restart_is_reported_without_a_bogus_rate() {
    run(a_restart_is_reported_without_a_bogus_rate_body);
}

async fn a_restart_is_reported_without_a_bogus_rate_body() {
    let Some(mut agent) = Snmpd::start("restart").await else {
        return;
    };
    agent.set(&[counters(1001, 5_000_000_000, 9_000_000_000, OperStatus::Up)]);
    let mut poller = new_poller(vec![
        device("core", agent.address(), &[1001], v2c()),
        device(
            "mcu",
            agent.address(),
            &[1001],
            v3(AUTH_PASSWORD, PRIV_PASSWORD),
        ),
    ]);
    // Let the agent be up a while, so its uptime after the restart is clearly lower.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (before, ..) = poll(&mut poller, &["core", "mcu"]).await;
    for state in &before {
        assert_reachable(state);
        assert!(state.sys_uptime.unwrap() >= 250, "{state:?}");
    }

    // The device reboots, and its counters start again from almost nothing.
    agent.set(&[counters(1001, 1_000, 2_000, OperStatus::Up)]);
    let stopped = wall_now();
    agent.restart().await;
    let (after, ..) = poll(&mut poller, &["core", "mcu"]).await;
    let polled = wall_now();
    for (old, new) in before.iter().zip(&after) {
        assert_reachable(new);
        let (uptime_before, uptime_after) = (old.sys_uptime.unwrap(), new.sys_uptime.unwrap());
        assert!(uptime_after < uptime_before, "{new:?}");
        assert_eq!(
            new.uptime_step,
            Some(UptimeStep::Restarted {
                before: uptime_before,
                after: uptime_after
            }),
            "{}",
            new.name
        );
        // No rate from 5e9 to 1000: neither a wrap nor anything else.
        assert_eq!(
            interface(new, 1001).inbound,
            CounterRate::NoBaseline,
            "{}",
            new.name
        );
        assert_eq!(
            interface(new, 1001).outbound,
            CounterRate::NoBaseline,
            "{}",
            new.name
        );
        // The restart is dated between the stop and the poll that saw it.
        let restarted_at = new.restarted_at.unwrap();
        let slack = Duration::from_millis(100);
        assert!(
            restarted_at + slack >= stopped && restarted_at <= polled + slack,
            "{}: restarted at {restarted_at:?}, stopped at {stopped:?}, polled at {polled:?}",
            new.name
        );
    }

    // And the rates resume from the new baseline.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set(&[counters(
        1001,
        1_000 + 50_000,
        2_000 + 70_000,
        OperStatus::Up,
    )]);
    let (resumed, ..) = poll(&mut poller, &["core", "mcu"]).await;
    for (old, new) in after.iter().zip(&resumed) {
        assert_reachable(new);
        let interval = uptime_interval(old, new);
        assert!(
            matches!(new.uptime_step, Some(UptimeStep::Continuous { .. })),
            "{new:?}"
        );
        assert_rate(interface(new, 1001).inbound, 50_000, interval, false);
        assert_rate(interface(new, 1001).outbound, 70_000, interval, false);
        assert_eq!(
            new.restarted_at,
            after
                .iter()
                .find(|s| s.name == new.name)
                .unwrap()
                .restarted_at
        );
    }
}

#[test]
fn an_interface_the_agent_lacks_is_no_such_interface() {
    run(an_interface_the_agent_lacks_is_no_such_interface_body);
}

async fn an_interface_the_agent_lacks_is_no_such_interface_body() {
    let Some(agent) = Snmpd::start("nosuch").await else {
        return;
    };
    agent.set(&[counters(1001, 1, 2, OperStatus::Up)]);
    let err = one_sample(agent.address(), &v2c(), &[1001, 4242])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PollError::NoSuchInterface {
                if_index: 4242,
                column: IfColumn::HcInOctets,
                absence: Absence::NoSuchInstance,
                ..
            }
        ),
        "{err}"
    );

    let mut poller = new_poller(vec![device("core", agent.address(), &[4242], v2c())]);
    let (states, ..) = poll(&mut poller, &["core"]).await;
    assert!(!states[0].reachable);
    assert_eq!(states[0].last_error_kind, Some("no-such-interface"));
    assert!(
        states[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("interface 4242")
    );
}

/// A UDP port that takes requests and never answers: no snmpd needed.
#[test]
fn a_silent_agent_times_out() {
    run(a_silent_agent_times_out_body);
}

async fn a_silent_agent_times_out_body() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let asked = now();
    let mut client = SnmpClient::connect(address, &v2c(), timeout).await.unwrap();
    let err = client.sample(&[1]).await.unwrap_err();
    let waited = now() - asked;
    assert!(matches!(err, PollError::Timeout { .. }), "{err}");
    assert!(
        waited >= timeout && waited < timeout * 4,
        "waited {waited:?}"
    );

    // A v3 agent that never answers times out in engine discovery.
    let err = SnmpClient::connect(address, &v3(AUTH_PASSWORD, PRIV_PASSWORD), timeout)
        .await
        .unwrap_err();
    assert!(matches!(err, PollError::Timeout { .. }), "{err}");

    let mut poller = Poller::new(
        Inventory {
            devices: vec![device("dark", address, &[1], v2c())],
        },
        PollerConfig {
            timeout,
            ..PollerConfig::default()
        },
    );
    let (states, ..) = poll(&mut poller, &["dark"]).await;
    assert!(!states[0].reachable);
    assert_eq!(states[0].last_error_kind, Some("timeout"));
    assert!(states[0].polled_at.is_some());
    assert_eq!(states[0].last_success_at, None);
    drop(silent);
}

#[test]
fn many_interfaces_are_read_over_several_requests() {
    run(many_interfaces_are_read_over_several_requests_body);
}

async fn many_interfaces_are_read_over_several_requests_body() {
    let Some(agent) = Snmpd::start("many").await else {
        return;
    };
    // 25 interfaces: 76 varbinds, three GET requests of at most 30.
    let indexes: Vec<u32> = (2001..2026).collect();
    let served: Vec<Counters> = indexes
        .iter()
        .map(|&i| {
            let oper = if i % 2 == 0 {
                OperStatus::Up
            } else {
                OperStatus::Dormant
            };
            counters(i, u64::from(i) * 1_000, u64::from(i) << 40, oper)
        })
        .collect();
    agent.set(&served);
    // Asked in an order of our own, answered in that order.
    let mut asked = indexes.clone();
    asked.reverse();
    let sample = one_sample(agent.address(), &v2c(), &asked).await.unwrap();
    let got: Vec<(u32, u64, u64, OperStatus)> = sample
        .interfaces
        .iter()
        .map(|i| (i.index, i.in_octets, i.out_octets, i.oper))
        .collect();
    let expected: Vec<(u32, u64, u64, OperStatus)> = served
        .iter()
        .rev()
        .map(|c| (c.index, c.in_octets, c.out_octets, c.oper))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn the_poller_runs_every_interval_until_shut_down() {
    run(the_poller_runs_every_interval_until_shut_down_body);
}

async fn the_poller_runs_every_interval_until_shut_down_body() {
    let Some(agent) = Snmpd::start("run").await else {
        return;
    };
    agent.set(&[counters(1001, 0, 0, OperStatus::Up)]);
    let poller = Poller::new(
        Inventory {
            devices: vec![device("core", agent.address(), &[1001], v2c())],
        },
        PollerConfig {
            interval: Duration::from_millis(300),
            timeout: TIMEOUT,
            ..PollerConfig::default()
        },
    );
    let states = poller.states();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(poller.run(async {
        let _ = stopped.await;
    }));
    // Polls at 0, 0.3, 0.6… s: by 1.5 s the baseline is set and rates flow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let state = device_state(&states, "core").unwrap();
    assert_reachable(&state);
    assert!(
        matches!(state.uptime_step, Some(UptimeStep::Continuous { .. })),
        "{state:?}"
    );
    assert!(interface(&state, 1001).inbound.bps().is_some(), "{state:?}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the poller stops when told")
        .unwrap();
    let last = device_state(&states, "core").unwrap().polled_at;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        device_state(&states, "core").unwrap().polled_at,
        last,
        "no polls after shutdown"
    );
}
