//! Alert rules over link health, agents' reporting and certificate expiry: each condition on
//! each subject is one alert, fired once and resolved once.
//!
//! The module exists so that the NOC is told about a link that went down or a certificate
//! about to expire, without being told again every time the controller looks. It is sans-IO:
//! [`AlertEngine::evaluate`] is handed the [`HealthState`], the certificates and `now`, and
//! returns the [`AlertChange`]s, which the caller persists (they are serde-serialisable) and
//! shows. After a restart [`AlertEngine::restore`] rebuilds the open alerts from them.
//!
//! # Rules
//!
//! | rule | subject | condition | severity |
//! | --- | --- | --- | --- |
//! | `link-down` | link | an end sees it down | critical |
//! | `link-loss` | link | up, loss above [`AlertRules::loss_above`] (5 %) | warning |
//! | `link-rtt` | link | up, round-trip time above [`AlertRules::rtt_above`] (150 ms) | warning |
//! | `certificate-expiring` | certificate subject | `notAfter` within [`AlertRules::certificate_within`] (30 days) | warning; critical once expired |
//! | `agent-silent` | node | no report for more than [`AlertRules::silent_after`] (30 s) | warning |
//!
//! A down or unknown link raises no loss or RTT alert: the down alert (or the silent agent)
//! already says it. Only agents that have reported once can fall silent.
//!
//! # One alert per condition
//!
//! An alert's key is `rule/subject`. While its condition holds it stays open and nothing new
//! is emitted; a new [`AlertId`] is taken only when the condition comes back after the
//! alert was resolved. Against flapping:
//! - loss and RTT must hold for [`AlertRules::quality_for`] (30 s) before they fire — one bad
//!   probe window is not news; a down link fires at once, because the agent already waits
//!   for three missed probes before it says down;
//! - link alerts resolve only after their condition has been clear for
//!   [`AlertRules::link_clear_for`] (30 s), so a link bouncing every few seconds is one alert,
//!   not a storm. Silent agents and certificates resolve at once: a report, or a renewed
//!   certificate, is proof.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use agent::control::PeerHealth;
use serde::{Deserialize, Serialize};

use crate::health::{HealthState, LinkState, LinkView, rfc3339};

/// Loss ratio above which a link alert fires unless configured otherwise.
pub const DEFAULT_LOSS_ABOVE: f64 = 0.05;
/// Round-trip time above which a link alert fires unless configured otherwise.
pub const DEFAULT_RTT_ABOVE: Duration = Duration::from_millis(150);
/// How far ahead certificate expiry is announced unless configured otherwise.
pub const DEFAULT_CERTIFICATE_WITHIN: Duration = Duration::from_secs(30 * 86_400);
/// How long an agent may stay quiet unless configured otherwise.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(30);
/// How long loss or RTT must stay high before the alert fires.
pub const DEFAULT_QUALITY_FOR: Duration = Duration::from_secs(30);
/// How long a link condition must stay clear before its alert resolves.
pub const DEFAULT_LINK_CLEAR_FOR: Duration = Duration::from_secs(30);
/// Changes kept in memory for the history view.
pub const DEFAULT_HISTORY: usize = 1_000;

/// Thresholds and durations of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// Loss ratio (0–1) above which `link-loss` fires.
    pub loss_above: f64,
    /// Round-trip time above which `link-rtt` fires.
    pub rtt_above: Duration,
    /// `certificate-expiring` fires this long before `notAfter`.
    pub certificate_within: Duration,
    /// `agent-silent` fires when an agent's last report is older than this.
    pub silent_after: Duration,
    /// Loss or RTT must stay high this long before the alert fires.
    pub quality_for: Duration,
    /// A link alert resolves once its condition has been clear this long.
    pub link_clear_for: Duration,
    /// Changes kept in memory ([`AlertEngine::history`]); 0 keeps none.
    pub history: usize,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            loss_above: DEFAULT_LOSS_ABOVE,
            rtt_above: DEFAULT_RTT_ABOVE,
            certificate_within: DEFAULT_CERTIFICATE_WITHIN,
            silent_after: DEFAULT_SILENT_AFTER,
            quality_for: DEFAULT_QUALITY_FOR,
            link_clear_for: DEFAULT_LINK_CLEAR_FOR,
            history: DEFAULT_HISTORY,
        }
    }
}

/// Which rule an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// An end sees the link down.
    LinkDown,
    /// Probe loss above the threshold.
    LinkLoss,
    /// Round-trip time above the threshold.
    LinkRtt,
    /// A certificate expires soon, or has expired.
    CertificateExpiring,
    /// An agent stopped reporting.
    AgentSilent,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 5] = [
        Rule::LinkDown,
        Rule::LinkLoss,
        Rule::LinkRtt,
        Rule::CertificateExpiring,
        Rule::AgentSilent,
    ];

    /// The rule's name in keys, labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::LinkDown => "link-down",
            Rule::LinkLoss => "link-loss",
            Rule::LinkRtt => "link-rtt",
            Rule::CertificateExpiring => "certificate-expiring",
            Rule::AgentSilent => "agent-silent",
        }
    }

    fn is_link(self) -> bool {
        matches!(self, Rule::LinkDown | Rule::LinkLoss | Rule::LinkRtt)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Its condition holds and nobody has taken it.
    Firing,
    /// Its condition holds and an operator has taken it.
    Acknowledged,
    /// Its condition cleared.
    Resolved,
}

/// One firing of one condition; a condition that returns after resolving gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub u64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who took an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The operator.
    pub by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

/// An open alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// This firing.
    pub id: AlertId,
    /// `rule/subject`: the same for every firing of the condition.
    pub key: String,
    /// The rule.
    pub rule: Rule,
    /// What it is about: a link, a node or a certificate subject.
    pub subject: String,
    /// How urgent.
    pub severity: Severity,
    /// When it fired.
    #[serde(with = "rfc3339")]
    pub fired_at: SystemTime,
    /// What was seen when it fired.
    pub detail: String,
    /// Who took it, if anyone.
    pub acknowledged: Option<Acknowledgement>,
}

impl Alert {
    /// Firing or acknowledged.
    pub fn state(&self) -> AlertState {
        match self.acknowledged {
            Some(_) => AlertState::Acknowledged,
            None => AlertState::Firing,
        }
    }
}

/// A change of an alert's state: what the caller persists and shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    /// The firing it belongs to.
    pub id: AlertId,
    /// `rule/subject`.
    pub key: String,
    /// The rule.
    pub rule: Rule,
    /// What it is about.
    pub subject: String,
    /// How urgent.
    pub severity: Severity,
    /// The state entered.
    pub state: AlertState,
    /// When that state was entered.
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    /// When the alert fired.
    #[serde(with = "rfc3339")]
    pub fired_at: SystemTime,
    /// For a firing, what was seen; for an acknowledgement or resolution, what happened.
    pub detail: String,
    /// The operator, for an acknowledgement.
    pub by: Option<String>,
}

/// An acknowledgement that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// No open alert has this id (it never fired, or it resolved).
    #[error("no open alert {0}")]
    NotOpen(AlertId),
    /// Someone took it already.
    #[error("alert {id} was acknowledged by {by} at {}", rfc3339::format(*at))]
    AlreadyAcknowledged {
        /// The alert.
        id: AlertId,
        /// Who took it.
        by: String,
        /// When.
        at: SystemTime,
    },
}

/// A certificate to watch: its subject and `notAfter`, from the caller's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The subject as people know it (a node id, an operator, a CA).
    pub subject: String,
    /// The end of its validity.
    pub not_after: SystemTime,
}

/// A condition that holds now.
struct Condition {
    rule: Rule,
    subject: String,
    severity: Severity,
    detail: String,
}

/// The alert rules with their memory: open alerts, conditions waiting to fire or to clear,
/// and the latest changes.
#[derive(Debug, Clone, Default)]
pub struct AlertEngine {
    rules: AlertRules,
    open: BTreeMap<String, Alert>,
    /// Key → since when a not-yet-firing condition has held.
    pending: BTreeMap<String, SystemTime>,
    /// Key → since when an open alert's condition has been clear.
    clearing: BTreeMap<String, SystemTime>,
    history: VecDeque<AlertChange>,
    next_id: u64,
}

impl AlertEngine {
    /// An engine with no alerts.
    pub fn new(rules: AlertRules) -> AlertEngine {
        AlertEngine {
            rules,
            next_id: 1,
            ..AlertEngine::default()
        }
    }

    /// An engine whose open alerts and history are rebuilt from persisted changes, oldest
    /// first. New ids continue after the highest id seen.
    pub fn restore(rules: AlertRules, changes: impl IntoIterator<Item = AlertChange>) -> Self {
        let mut engine = AlertEngine::new(rules);
        for change in changes {
            engine.next_id = engine.next_id.max(change.id.0.saturating_add(1));
            match change.state {
                AlertState::Firing => {
                    engine.open.insert(change.key.clone(), alert_of(&change));
                }
                AlertState::Acknowledged => {
                    let alert = engine
                        .open
                        .entry(change.key.clone())
                        .or_insert_with(|| alert_of(&change));
                    alert.acknowledged = Some(Acknowledgement {
                        by: change.by.clone().unwrap_or_default(),
                        at: change.since,
                    });
                }
                AlertState::Resolved => {
                    engine.open.remove(&change.key);
                }
            }
            engine.remember(change);
        }
        engine
    }

    /// The rules in force.
    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// Checks every rule at `now` and returns what changed, in key order: alerts that fired
    /// and alerts that resolved. A condition that still holds returns nothing.
    pub fn evaluate(
        &mut self,
        health: &HealthState,
        certificates: &[CertificateExpiry],
        now: SystemTime,
    ) -> Vec<AlertChange> {
        let holding = self.conditions(health, certificates, now);
        let mut changes = Vec::new();

        self.pending.retain(|key, _| holding.contains_key(key));
        for (key, condition) in &holding {
            if self.open.contains_key(key) {
                self.clearing.remove(key);
                continue;
            }
            let since = *self.pending.entry(key.clone()).or_insert(now);
            let wait = match condition.rule {
                Rule::LinkLoss | Rule::LinkRtt => self.rules.quality_for,
                _ => Duration::ZERO,
            };
            if held(since, now) >= wait {
                self.pending.remove(key);
                changes.push(self.fire(key, condition, now));
            }
        }

        let cleared: Vec<String> = self
            .open
            .keys()
            .filter(|key| !holding.contains_key(*key))
            .cloned()
            .collect();
        for key in cleared {
            let Some(rule) = self.open.get(&key).map(|alert| alert.rule) else {
                continue;
            };
            let since = *self.clearing.entry(key.clone()).or_insert(now);
            let wait = if rule.is_link() {
                self.rules.link_clear_for
            } else {
                Duration::ZERO
            };
            if held(since, now) >= wait {
                self.clearing.remove(&key);
                if let Some(alert) = self.open.remove(&key) {
                    let change = change_of(&alert, AlertState::Resolved, now, "cleared".into());
                    changes.push(change);
                }
            }
        }

        changes.sort_by(|a, b| a.key.cmp(&b.key));
        for change in &changes {
            self.remember(change.clone());
        }
        changes
    }

    /// An operator takes an open alert. The change is returned for the caller to persist.
    pub fn acknowledge(
        &mut self,
        id: AlertId,
        by: &str,
        now: SystemTime,
    ) -> Result<AlertChange, AlertError> {
        let alert = self
            .open
            .values_mut()
            .find(|alert| alert.id == id)
            .ok_or(AlertError::NotOpen(id))?;
        if let Some(ack) = &alert.acknowledged {
            return Err(AlertError::AlreadyAcknowledged {
                id,
                by: ack.by.clone(),
                at: ack.at,
            });
        }
        alert.acknowledged = Some(Acknowledgement {
            by: by.to_owned(),
            at: now,
        });
        let detail = format!("acknowledged by {by}");
        let mut change = change_of(alert, AlertState::Acknowledged, now, detail);
        change.by = Some(by.to_owned());
        self.remember(change.clone());
        Ok(change)
    }

    /// The open alerts (firing or acknowledged), in key order.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Open alerts per rule, every rule listed.
    pub fn open_by_rule(&self) -> BTreeMap<Rule, usize> {
        let mut counts: BTreeMap<Rule, usize> = Rule::ALL.iter().map(|&r| (r, 0)).collect();
        for alert in self.open.values() {
            *counts.entry(alert.rule).or_default() += 1;
        }
        counts
    }

    /// The latest changes, oldest first, at most [`AlertRules::history`] of them.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &AlertChange> + ExactSizeIterator {
        self.history.iter()
    }

    fn fire(&mut self, key: &str, condition: &Condition, now: SystemTime) -> AlertChange {
        let alert = Alert {
            id: AlertId(self.next_id),
            key: key.to_owned(),
            rule: condition.rule,
            subject: condition.subject.clone(),
            severity: condition.severity,
            fired_at: now,
            detail: condition.detail.clone(),
            acknowledged: None,
        };
        self.next_id += 1;
        let change = change_of(&alert, AlertState::Firing, now, alert.detail.clone());
        self.open.insert(key.to_owned(), alert);
        change
    }

    fn remember(&mut self, change: AlertChange) {
        if self.rules.history == 0 {
            return;
        }
        while self.history.len() >= self.rules.history {
            self.history.pop_front();
        }
        self.history.push_back(change);
    }

    /// Every condition that holds at `now`, by key.
    fn conditions(
        &self,
        health: &HealthState,
        certificates: &[CertificateExpiry],
        now: SystemTime,
    ) -> BTreeMap<String, Condition> {
        let rules = &self.rules;
        let mut holding = BTreeMap::new();
        let mut add = |rule: Rule, subject: String, severity: Severity, detail: String| {
            let key = format!("{rule}/{subject}");
            let condition = Condition {
                rule,
                subject,
                severity,
                detail,
            };
            holding.entry(key).or_insert(condition);
        };
        for link in health.links(now) {
            let subject = link.key.to_string();
            match link.state {
                LinkState::Down => {
                    let detail = down_detail(&link, health.config().stale_after, now);
                    add(Rule::LinkDown, subject, Severity::Critical, detail);
                    continue;
                }
                LinkState::Unknown => continue,
                LinkState::Backup | LinkState::Degraded | LinkState::Up => {}
            }
            if link.loss > rules.loss_above {
                let detail = format!(
                    "loss {:.1} % above {:.1} %",
                    link.loss * 100.0,
                    rules.loss_above * 100.0
                );
                add(Rule::LinkLoss, subject.clone(), Severity::Warning, detail);
            }
            if let Some(rtt) = link.rtt.filter(|rtt| *rtt > rules.rtt_above) {
                let detail = format!(
                    "round-trip time {} ms above {} ms",
                    rtt.as_millis(),
                    rules.rtt_above.as_millis()
                );
                add(Rule::LinkRtt, subject, Severity::Warning, detail);
            }
        }
        // Earliest first, so a subject listed twice is judged by its earliest expiry.
        let mut certificates: Vec<&CertificateExpiry> = certificates.iter().collect();
        certificates.sort_by_key(|c| c.not_after);
        for cert in certificates {
            let when = rfc3339::format(cert.not_after);
            match cert.not_after.duration_since(now) {
                Err(ago) => {
                    let detail = format!("expired {when} ({} ago)", span(ago.duration()));
                    let subject = cert.subject.clone();
                    add(
                        Rule::CertificateExpiring,
                        subject,
                        Severity::Critical,
                        detail,
                    );
                }
                Ok(left) if left <= rules.certificate_within => {
                    let detail = format!("expires {when} (in {})", span(left));
                    let subject = cert.subject.clone();
                    add(
                        Rule::CertificateExpiring,
                        subject,
                        Severity::Warning,
                        detail,
                    );
                }
                Ok(_) => {}
            }
        }
        for (node, seen) in health.agents() {
            let quiet = held(seen.last_report, now);
            if quiet > rules.silent_after {
                let detail = format!(
                    "no report for {} (last {})",
                    span(quiet),
                    rfc3339::format(seen.last_report)
                );
                add(
                    Rule::AgentSilent,
                    node.to_string(),
                    Severity::Warning,
                    detail,
                );
            }
        }
        holding
    }
}

/// Which ends see a down link down: `down as seen by dc:1401 (child)`.
fn down_detail(link: &LinkView, stale_after: Duration, now: SystemTime) -> String {
    let ends = [
        (&link.parent_end, link.key.parent, "parent"),
        (&link.child_end, link.key.child, "child"),
    ];
    let by: Vec<String> = ends
        .into_iter()
        .filter(|(end, _, _)| {
            end.as_ref()
                .is_some_and(|e| e.health == PeerHealth::Down && held(e.at, now) <= stale_after)
        })
        .map(|(_, node, role)| format!("{node} ({role})"))
        .collect();
    format!("down as seen by {}", by.join(" and "))
}

/// How long since `since`, zero if `since` is in the future.
fn held(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

fn change_of(alert: &Alert, state: AlertState, now: SystemTime, detail: String) -> AlertChange {
    AlertChange {
        id: alert.id,
        key: alert.key.clone(),
        rule: alert.rule,
        subject: alert.subject.clone(),
        severity: alert.severity,
        state,
        since: now,
        fired_at: alert.fired_at,
        detail,
        by: None,
    }
}

fn alert_of(change: &AlertChange) -> Alert {
    Alert {
        id: change.id,
        key: change.key.clone(),
        rule: change.rule,
        subject: change.subject.clone(),
        severity: change.severity,
        fired_at: change.fired_at,
        detail: change.detail.clone(),
        acknowledged: None,
    }
}

/// A span in its largest unit or two: `29d 23h`, `5h 02m`, `1m 01s`, `42s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        86_400.. => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        3600.. => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        60.. => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::{at, node, peer, status};
    use agent::control::PeerRole;

    fn health_with(child_health: PeerHealth, loss: f64, now: SystemTime) -> HealthState {
        let mut health = HealthState::default();
        let mut view = peer("dc:1401", PeerRole::Child, child_health);
        view.loss = loss;
        let report = status("dc:14", vec![view]);
        health.ingest(node("dc:14"), &report, now).unwrap();
        health
    }

    fn report(health: &mut HealthState, child_health: PeerHealth, loss: f64, now: SystemTime) {
        let mut view = peer("dc:1401", PeerRole::Child, child_health);
        view.loss = loss;
        health
            .ingest(node("dc:14"), &status("dc:14", vec![view]), now)
            .unwrap();
    }

    fn states(changes: &[AlertChange]) -> Vec<(Rule, AlertState)> {
        changes.iter().map(|c| (c.rule, c.state)).collect()
    }

    const DOWN_KEY: &str = "link-down/business dc:14 — dc:1401";

    #[test]
    fn a_condition_that_stays_true_fires_once_and_resolves_once() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let mut health = health_with(PeerHealth::Down, 1.0, at(0));
        let fired = engine.evaluate(&health, &[], at(0));
        assert_eq!(states(&fired), [(Rule::LinkDown, AlertState::Firing)]);
        assert_eq!(fired[0].key, DOWN_KEY);
        assert_eq!(fired[0].severity, Severity::Critical);
        assert_eq!(fired[0].detail, "down as seen by dc:14 (parent)");
        for t in 1..=20 {
            report(&mut health, PeerHealth::Down, 1.0, at(t));
            assert!(
                engine.evaluate(&health, &[], at(t)).is_empty(),
                "re-fired at {t}"
            );
        }
        assert_eq!(engine.open().count(), 1);

        report(&mut health, PeerHealth::Up, 0.0, at(21));
        assert!(
            engine.evaluate(&health, &[], at(21)).is_empty(),
            "clear-for not yet over"
        );
        assert!(engine.evaluate(&health, &[], at(50)).is_empty());
        report(&mut health, PeerHealth::Up, 0.0, at(51));
        let resolved = engine.evaluate(&health, &[], at(51));
        assert_eq!(states(&resolved), [(Rule::LinkDown, AlertState::Resolved)]);
        assert_eq!(resolved[0].id, fired[0].id);
        assert_eq!(resolved[0].fired_at, at(0));
        assert!(
            engine.evaluate(&health, &[], at(52)).is_empty(),
            "resolved once"
        );
        assert_eq!(engine.open().count(), 0);
        assert_eq!(engine.history().count(), 2);
    }

    #[test]
    fn a_bouncing_link_stays_one_alert_and_a_new_episode_gets_a_new_id() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let mut health = health_with(PeerHealth::Down, 1.0, at(0));
        let first = engine.evaluate(&health, &[], at(0));
        for t in 1..10 {
            let h = if t % 2 == 0 {
                PeerHealth::Down
            } else {
                PeerHealth::Up
            };
            report(&mut health, h, 0.0, at(t * 5));
            assert!(
                engine.evaluate(&health, &[], at(t * 5)).is_empty(),
                "flap at {t}"
            );
        }
        // Up since 45: still open at 70, resolved at 75.
        report(&mut health, PeerHealth::Up, 0.0, at(70));
        assert_eq!(engine.evaluate(&health, &[], at(70)).len(), 0);
        report(&mut health, PeerHealth::Up, 0.0, at(75));
        assert_eq!(engine.evaluate(&health, &[], at(75)).len(), 1);
        report(&mut health, PeerHealth::Down, 1.0, at(110));
        let again = engine.evaluate(&health, &[], at(110));
        assert_eq!(states(&again), [(Rule::LinkDown, AlertState::Firing)]);
        assert_ne!(again[0].id, first[0].id);
        assert_eq!(again[0].key, first[0].key);
    }

    #[test]
    fn loss_must_hold_for_a_while_and_a_down_link_raises_no_loss_alert() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let mut health = health_with(PeerHealth::Up, 0.2, at(0));
        assert!(engine.evaluate(&health, &[], at(0)).is_empty());
        report(&mut health, PeerHealth::Up, 0.2, at(29));
        assert!(
            engine.evaluate(&health, &[], at(29)).is_empty(),
            "fired before 30 s"
        );
        report(&mut health, PeerHealth::Up, 0.2, at(30));
        let fired = engine.evaluate(&health, &[], at(30));
        assert_eq!(states(&fired), [(Rule::LinkLoss, AlertState::Firing)]);
        assert_eq!(fired[0].detail, "loss 20.0 % above 5.0 %");

        let down = health_with(PeerHealth::Down, 1.0, at(0));
        let rules = AlertRules {
            quality_for: Duration::ZERO,
            ..AlertRules::default()
        };
        let changes = AlertEngine::new(rules).evaluate(&down, &[], at(0));
        assert_eq!(states(&changes), [(Rule::LinkDown, AlertState::Firing)]);
    }

    #[test]
    fn a_loss_blip_shorter_than_the_wait_never_fires() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let mut health = health_with(PeerHealth::Up, 0.2, at(0));
        assert!(engine.evaluate(&health, &[], at(0)).is_empty());
        report(&mut health, PeerHealth::Up, 0.0, at(10));
        assert!(engine.evaluate(&health, &[], at(10)).is_empty());
        report(&mut health, PeerHealth::Up, 0.2, at(20));
        assert!(engine.evaluate(&health, &[], at(20)).is_empty());
        report(&mut health, PeerHealth::Up, 0.2, at(45));
        assert!(
            engine.evaluate(&health, &[], at(45)).is_empty(),
            "the wait restarted"
        );
    }

    #[test]
    fn rtt_above_the_threshold_fires_after_the_wait() {
        let rules = AlertRules {
            quality_for: Duration::ZERO,
            ..AlertRules::default()
        };
        let mut engine = AlertEngine::new(rules);
        let mut health = HealthState::default();
        let mut view = peer("dc:1401", PeerRole::Child, PeerHealth::Up);
        view.rtt = Some(Duration::from_millis(151));
        health
            .ingest(node("dc:14"), &status("dc:14", vec![view]), at(0))
            .unwrap();
        let fired = engine.evaluate(&health, &[], at(0));
        assert_eq!(states(&fired), [(Rule::LinkRtt, AlertState::Firing)]);
        assert_eq!(fired[0].detail, "round-trip time 151 ms above 150 ms");
    }

    #[test]
    fn a_silent_agent_fires_after_the_limit_and_not_before() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let mut health = health_with(PeerHealth::Up, 0.0, at(0));
        assert!(
            engine.evaluate(&health, &[], at(30)).is_empty(),
            "30 s is not more than 30 s"
        );
        let fired = engine.evaluate(&health, &[], at(31));
        assert_eq!(states(&fired), [(Rule::AgentSilent, AlertState::Firing)]);
        assert_eq!(fired[0].subject, "dc:14");
        assert!(
            fired[0].detail.starts_with("no report for 31s"),
            "{}",
            fired[0].detail
        );
        assert!(engine.evaluate(&health, &[], at(40)).is_empty());
        report(&mut health, PeerHealth::Up, 0.0, at(41));
        let resolved = engine.evaluate(&health, &[], at(41));
        assert_eq!(
            states(&resolved),
            [(Rule::AgentSilent, AlertState::Resolved)]
        );
    }

    #[test]
    fn certificates_warn_ahead_and_turn_critical_once_expired() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let health = HealthState::default();
        let day = 86_400;
        let certs = [
            CertificateExpiry {
                subject: "dc:1401".into(),
                not_after: at(31 * day + 10),
            },
            CertificateExpiry {
                subject: "operator:li.wei".into(),
                not_after: at(0),
            },
        ];
        let fired = engine.evaluate(&health, &certs, at(day + 1));
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].subject, "operator:li.wei");
        assert_eq!(fired[0].severity, Severity::Critical);
        assert!(fired[0].detail.contains("1d 0h ago"), "{}", fired[0].detail);
        let later = engine.evaluate(&health, &certs, at(day + 10));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].subject, "dc:1401");
        assert_eq!(later[0].severity, Severity::Warning);
        // Renewed: resolved at once.
        let renewed = [CertificateExpiry {
            subject: "dc:1401".into(),
            not_after: at(400 * day),
        }];
        let changes = engine.evaluate(&health, &renewed, at(day + 11));
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.state == AlertState::Resolved));
    }

    #[test]
    fn acknowledging_is_recorded_once_and_needs_an_open_alert() {
        let mut engine = AlertEngine::new(AlertRules::default());
        let health = health_with(PeerHealth::Down, 1.0, at(0));
        let id = engine.evaluate(&health, &[], at(0))[0].id;
        let ack = engine.acknowledge(id, "zhang.min", at(5)).unwrap();
        assert_eq!(ack.state, AlertState::Acknowledged);
        assert_eq!(ack.by.as_deref(), Some("zhang.min"));
        assert_eq!(ack.since, at(5));
        assert_eq!(
            engine.open().next().unwrap().state(),
            AlertState::Acknowledged
        );
        let again = engine.acknowledge(id, "wang.fang", at(6)).unwrap_err();
        assert!(
            again.to_string().contains("acknowledged by zhang.min"),
            "{again}"
        );
        let missing = engine
            .acknowledge(AlertId(99), "wang.fang", at(6))
            .unwrap_err();
        assert_eq!(missing, AlertError::NotOpen(AlertId(99)));
        assert!(
            engine.evaluate(&health, &[], at(7)).is_empty(),
            "an ack is not a change"
        );
    }

    #[test]
    fn history_is_bounded_and_changes_restore_the_open_alerts() {
        let rules = AlertRules {
            history: 2,
            ..AlertRules::default()
        };
        let mut engine = AlertEngine::new(rules.clone());
        let health = health_with(PeerHealth::Down, 1.0, at(0));
        let mut persisted = engine.evaluate(&health, &[], at(0));
        let id = persisted[0].id;
        persisted.push(engine.acknowledge(id, "zhang.min", at(1)).unwrap());
        persisted.extend(engine.evaluate(&health, &[], at(35)));
        assert_eq!(persisted.len(), 3, "{persisted:?}");
        assert_eq!(engine.history().count(), 2);
        assert_eq!(
            engine.history().next().unwrap().state,
            AlertState::Acknowledged
        );

        let json = serde_json::to_string(&persisted).unwrap();
        assert!(json.contains("\"rule\":\"link-down\""), "{json}");
        assert!(json.contains("\"state\":\"acknowledged\""), "{json}");
        let read: Vec<AlertChange> = serde_json::from_str(&json).unwrap();
        assert_eq!(read, persisted);

        let restored = AlertEngine::restore(rules.clone(), read.clone());
        let open: Vec<&Alert> = restored.open().collect();
        assert_eq!(open.len(), 2, "link-down and agent-silent");
        let down = open.iter().find(|a| a.key == DOWN_KEY).unwrap();
        assert_eq!(down.state(), AlertState::Acknowledged);
        assert_eq!(down.id, id);
        let mut restored = restored;
        let next = restored.evaluate(&HealthState::default(), &[], at(100));
        assert!(next.iter().all(|c| c.state == AlertState::Resolved));
        let fresh = restored.evaluate(&health, &[], at(101));
        assert!(fresh.iter().all(|c| c.id.0 > 2), "ids continue: {fresh:?}");
        assert_eq!(restored.open_by_rule()[&Rule::LinkDown], 1);
    }
}
