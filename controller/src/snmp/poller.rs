//! The poll loop: every device of the inventory, every interval, all at once, into a shared
//! table the admin API and the metrics read.
//!
//! This is the I/O driver around [`RateTracker`]: it reads the clock (monotonic time for the
//! tracker, wall time for the table) and the network, and nothing else decides anything.
//! Each device is polled in its own task, so a slow, dead or misbehaving device delays no
//! other, and a task that panics (a bug, here or in `snmp2`) costs only that device's
//! baseline.
//!
//! The tasks run on a thread of the poller's own, with a [`POLL_THREAD_STACK`] stack and a
//! single-threaded tokio runtime, whatever runtime calls [`Poller::poll_once`]: an `snmp2`
//! session holds two 64 kB buffers, v3 builds two more per request, and unoptimised builds
//! copy them as they pass from function to function — one v3 poll was measured to need
//! between 2.5 and 3 MiB of stack in a debug build, more than tokio's 2 MiB worker threads
//! have.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::client::{PollError, SnmpClient};
use super::inventory::{Device, Inventory};
use super::rate::{
    InterfaceRate, Observation, RateTracker, Sample, TrackerConfig, UptimeStep, ticks_to_duration,
};

/// How often every device is polled unless configured otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// How long one request waits for its reply unless configured otherwise.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(3);

/// The shortest interval the poller accepts; shorter ones are raised to it.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The stack of the poller's thread: five times what one v3 poll needs in a debug build.
/// Only the pages used are ever committed.
pub const POLL_THREAD_STACK: usize = 16 << 20;

/// How the poller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerConfig {
    /// Time between the starts of two poll rounds.
    pub interval: Duration,
    /// How long each request waits for its reply.
    pub timeout: Duration,
    /// The rate tracker's tolerances. Its uptime slack is raised to twice `timeout` if
    /// lower, since a reading's timestamp can lag by up to a connect and a request.
    pub tracker: TrackerConfig,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            interval: DEFAULT_POLL_INTERVAL,
            timeout: DEFAULT_POLL_TIMEOUT,
            tracker: TrackerConfig::default(),
        }
    }
}

/// The latest known state of one device, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceState {
    /// The device's name in the inventory.
    pub name: String,
    /// The agent's address.
    pub address: SocketAddr,
    /// The tree link the device carries, if any.
    pub link: Option<String>,
    /// The last poll got an answer.
    pub reachable: bool,
    /// Why the last poll failed; `None` after a successful one.
    pub last_error: Option<String>,
    /// The kind of that failure ([`PollError::label`]), for filtering and metrics.
    pub last_error_kind: Option<&'static str>,
    /// sysUpTime (1/100 s) at the last successful poll.
    pub sys_uptime: Option<u32>,
    /// How sysUpTime moved at the last successful poll.
    pub uptime_step: Option<UptimeStep>,
    /// When the device last restarted, as far as the poller saw (wall time of the poll that
    /// noticed, minus the uptime then). Unset until a restart is seen.
    #[serde(serialize_with = "rfc3339")]
    pub restarted_at: Option<SystemTime>,
    /// Interfaces with their rates and status, from the last successful poll.
    pub interfaces: Vec<InterfaceRate>,
    /// When the last poll (successful or not) finished.
    #[serde(serialize_with = "rfc3339")]
    pub polled_at: Option<SystemTime>,
    /// When the last successful poll finished: the time `sys_uptime` and `interfaces` are
    /// from.
    #[serde(serialize_with = "rfc3339")]
    pub last_success_at: Option<SystemTime>,
}

impl DeviceState {
    /// A device not polled yet.
    pub fn unpolled(device: &Device) -> Self {
        DeviceState {
            name: device.name.clone(),
            address: device.address,
            link: device.link.clone(),
            reachable: false,
            last_error: None,
            last_error_kind: None,
            sys_uptime: None,
            uptime_step: None,
            restarted_at: None,
            interfaces: Vec::new(),
            polled_at: None,
            last_success_at: None,
        }
    }
}

fn rfc3339<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.collect_str(&humantime::format_rfc3339_millis(*time)),
        None => serializer.serialize_none(),
    }
}

/// The poller's table of device states by name, shared with its readers.
pub type DeviceStates = Arc<RwLock<BTreeMap<String, DeviceState>>>;

/// Reads a device's state from the shared table (a poisoned lock is still read: the table
/// is only ever replaced entry by entry).
pub fn device_state(states: &DeviceStates, name: &str) -> Option<DeviceState> {
    states
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
}

/// One device and what the poller keeps for it between rounds.
struct Slot {
    device: Device,
    client: Option<SnmpClient>,
    tracker: RateTracker,
}

impl Slot {
    fn new(device: Device, tracker: TrackerConfig) -> Self {
        Slot {
            device,
            client: None,
            tracker: RateTracker::new(tracker),
        }
    }
}

/// What one poll of one device came to.
struct Outcome {
    finished: SystemTime,
    result: Result<(Sample, Observation), PollError>,
}

/// A poll of one device, run on the poll thread.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The poller's own thread and runtime; it ends when this is dropped.
struct PollThread {
    jobs: mpsc::UnboundedSender<Job>,
}

impl PollThread {
    fn start() -> io::Result<PollThread> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("snmp-poller".to_owned())
            .stack_size(POLL_THREAD_STACK)
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(PollThread { jobs })
    }
}

/// Polls every device of an inventory and keeps [`DeviceStates`] current.
pub struct Poller {
    config: PollerConfig,
    devices: Vec<Device>,
    slots: Vec<Slot>,
    states: DeviceStates,
    thread: Option<PollThread>,
}

impl Poller {
    /// A poller for `inventory`. Device names must be unique ([`super::parse_inventory`]
    /// checks it); a later device with a name already seen is skipped with a warning.
    pub fn new(inventory: Inventory, config: PollerConfig) -> Self {
        let mut config = config;
        config.interval = config.interval.max(MIN_POLL_INTERVAL);
        config.tracker.uptime_slack = config
            .tracker
            .uptime_slack
            .max(config.timeout.saturating_mul(2));
        let mut seen = HashSet::new();
        let mut slots = Vec::new();
        let mut devices = Vec::new();
        let mut table = BTreeMap::new();
        for device in inventory.devices {
            if !seen.insert(device.name.clone()) {
                tracing::warn!(device = %device.name, "SNMP device listed twice; polling the first only");
                continue;
            }
            table.insert(device.name.clone(), DeviceState::unpolled(&device));
            slots.push(Slot::new(device.clone(), config.tracker));
            devices.push(device);
        }
        Poller {
            config,
            devices,
            slots,
            states: Arc::new(RwLock::new(table)),
            thread: None,
        }
    }

    /// The shared table of device states, for readers (the admin API, metrics).
    pub fn states(&self) -> DeviceStates {
        Arc::clone(&self.states)
    }

    /// The configuration in force (after the adjustments [`Poller::new`] makes).
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Polls every device once, concurrently, and records the results.
    ///
    /// Cancelling it (dropping the future) loses the sessions and baselines of the devices
    /// in flight, nothing else: the next round starts them afresh.
    pub async fn poll_once(&mut self) {
        let timeout = self.config.timeout;
        let tracker = self.config.tracker;
        if self.slots.len() < self.devices.len() {
            let present: HashSet<String> =
                self.slots.iter().map(|s| s.device.name.clone()).collect();
            for device in &self.devices {
                if !present.contains(&device.name) {
                    self.slots.push(Slot::new(device.clone(), tracker));
                }
            }
        }
        let jobs = match self.poll_thread() {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::error!(error = %err, "cannot start the SNMP poll thread");
                for slot in std::mem::take(&mut self.slots) {
                    let outcome = task_failed(&slot.device, format!("no poll thread: {err}"));
                    self.record(&slot.device, outcome);
                    self.slots.push(slot);
                }
                return;
            }
        };
        let mut running = Vec::with_capacity(self.slots.len());
        for slot in self.slots.drain(..) {
            let device = slot.device.clone();
            let (done, result) = oneshot::channel();
            let span = tracing::info_span!("snmp_poll", device = %device.name);
            let job: Job = Box::pin(
                async move {
                    // The receiver only goes away when the poller is dropped mid-round.
                    let _ = done.send(poll_device(slot, timeout).await);
                }
                .instrument(span),
            );
            // A send fails only if the thread is gone; the receiver then reports it.
            let _ = jobs.send(job);
            running.push((device, result));
        }
        for (device, result) in running {
            let (slot, outcome) = match result.await {
                Ok(done) => done,
                Err(_dropped) => {
                    // The task panicked (tokio drops its sender) or the thread ended.
                    tracing::error!(device = %device.name, "SNMP poll task failed");
                    let outcome =
                        task_failed(&device, "the poll task ended without a result".to_owned());
                    (Slot::new(device, tracker), outcome)
                }
            };
            self.record(&slot.device, outcome);
            self.slots.push(slot);
        }
    }

    /// The queue of the poll thread, started on first use and again if it ended.
    fn poll_thread(&mut self) -> io::Result<mpsc::UnboundedSender<Job>> {
        match &self.thread {
            Some(thread) if !thread.jobs.is_closed() => Ok(thread.jobs.clone()),
            _ => {
                let thread = PollThread::start()?;
                let jobs = thread.jobs.clone();
                self.thread = Some(thread);
                Ok(jobs)
            }
        }
    }

    /// Polls every `interval` until `shutdown` completes. A round that overruns the
    /// interval delays the next one rather than stacking rounds up.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(
            devices = self.slots.len(),
            interval = %humantime::format_duration(self.config.interval),
            "SNMP poller started"
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.poll_once() => {}
            }
        }
        tracing::info!("SNMP poller stopped");
    }

    fn record(&self, device: &Device, outcome: Outcome) {
        let mut table = self.states.write().unwrap_or_else(PoisonError::into_inner);
        let state = table
            .entry(device.name.clone())
            .or_insert_with(|| DeviceState::unpolled(device));
        state.polled_at = Some(outcome.finished);
        match outcome.result {
            Ok((sample, observation)) => {
                if state.last_error.is_some() {
                    tracing::info!(device = %device.name, "SNMP device answers again");
                }
                if observation.restarted() {
                    let restarted_at = outcome
                        .finished
                        .checked_sub(ticks_to_duration(u64::from(sample.sys_uptime)));
                    tracing::warn!(
                        device = %device.name,
                        uptime_s = sample.sys_uptime / 100,
                        "SNMP device restarted; rates resume from the next poll"
                    );
                    state.restarted_at = restarted_at.or(Some(outcome.finished));
                }
                tracing::debug!(device = %device.name, step = ?observation.uptime, "SNMP poll done");
                state.reachable = true;
                state.last_error = None;
                state.last_error_kind = None;
                state.sys_uptime = Some(sample.sys_uptime);
                state.uptime_step = Some(observation.uptime);
                state.interfaces = observation.interfaces;
                state.last_success_at = Some(outcome.finished);
            }
            Err(err) => {
                let message = err.to_string();
                if state.last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(device = %device.name, error = %message, "SNMP poll failed");
                } else {
                    tracing::debug!(device = %device.name, error = %message, "SNMP poll failed again");
                }
                state.reachable = false;
                state.last_error = Some(message);
                state.last_error_kind = Some(err.label());
            }
        }
    }
}

fn task_failed(device: &Device, detail: String) -> Outcome {
    Outcome {
        finished: wall_clock(),
        result: Err(PollError::TaskFailed {
            address: device.address,
            detail,
        }),
    }
}

// The poller is the I/O driver: the one place of this module that reads the clocks.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

#[allow(clippy::disallowed_methods)]
fn monotonic_clock() -> Instant {
    Instant::now()
}

/// Polls one device: reuses its session, or opens one; when a reused session fails in a way
/// a new session could cure, tries once more with a new one.
async fn poll_device(mut slot: Slot, timeout: Duration) -> (Slot, Outcome) {
    let reused = slot.client.is_some();
    let mut result = sample_device(&mut slot, timeout).await;
    if reused
        && result
            .as_ref()
            .is_err_and(PollError::calls_for_a_new_session)
    {
        tracing::debug!(device = %slot.device.name, "retrying with a new SNMP session");
        result = sample_device(&mut slot, timeout).await;
    }
    let result = result.map(|sample| {
        let observation = slot.tracker.handle_sample(monotonic_clock(), &sample);
        (sample, observation)
    });
    let outcome = Outcome {
        finished: wall_clock(),
        result,
    };
    (slot, outcome)
}

/// One reading; the session is kept only if it is still trustworthy afterwards.
async fn sample_device(slot: &mut Slot, timeout: Duration) -> Result<Sample, PollError> {
    let mut client = match slot.client.take() {
        Some(client) => client,
        None => SnmpClient::connect(slot.device.address, &slot.device.credentials, timeout).await?,
    };
    let result = client.sample(&slot.device.interfaces).await;
    if result.as_ref().is_ok() || result.as_ref().is_err_and(PollError::keeps_session) {
        slot.client = Some(client);
    }
    result
}
