//! Alert history: every firing, resolution and acknowledgement, newest first on reading.
//! Only acknowledgements are changes (someone decided something); the rest is what the
//! alert rules observed.

use std::time::SystemTime;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::time::{from_ms, to_ms};
use super::{StoreError, Tx, invalid, sql};

/// The states an alert record may carry.
const STATES: [&str; 3] = ["firing", "resolved", "acknowledged"];

/// One event in an alert's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The alert's identity (rule and subject), stable across its firings.
    pub key: String,
    /// The rule that raised it.
    pub rule: String,
    /// What it is about: a link, a node, a device.
    pub subject: String,
    /// `firing`, `resolved` or `acknowledged`.
    pub state: String,
    /// When (millisecond precision).
    #[serde(with = "super::time::serde_rfc3339")]
    pub at: SystemTime,
    /// Human-readable particulars.
    pub detail: String,
    /// Who acknowledged it: required when `state` is `acknowledged`, otherwise `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Tx<'_> {
    /// Appends an alert event. An acknowledgement also goes into the change log, as
    /// `acknowledge alert` by `alert.by`.
    pub fn record_alert(&mut self, alert: &AlertRecord) -> Result<(), StoreError> {
        if !STATES.contains(&alert.state.as_str()) {
            return Err(invalid(format!(
                "alert state `{}` is not one of {}",
                alert.state,
                STATES.join(", ")
            )));
        }
        let acknowledged_by = match (alert.state.as_str(), alert.by.as_deref()) {
            ("acknowledged", Some(by)) if !by.is_empty() => Some(by),
            ("acknowledged", _) => {
                return Err(invalid(
                    "an alert acknowledgement names who acknowledged it",
                ));
            }
            _ => None,
        };
        self.conn()
            .execute(
                "INSERT INTO alerts (key, rule, subject, state, at_ms, detail, by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    alert.key,
                    alert.rule,
                    alert.subject,
                    alert.state,
                    to_ms(alert.at)?,
                    alert.detail,
                    alert.by
                ],
            )
            .map_err(sql("recording an alert"))?;
        if let Some(by) = acknowledged_by {
            self.append_change(
                by,
                "acknowledge alert",
                &json!({ "key": alert.key, "rule": alert.rule, "subject": alert.subject }),
                alert.at,
            )?;
        }
        Ok(())
    }

    /// The `limit` most recent alert events, newest first.
    pub fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        let reading = "reading alert history";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, key, rule, subject, state, at_ms, detail, by FROM alerts
                 ORDER BY at_ms DESC, id DESC LIMIT ?1",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    AlertRecord {
                        key: row.get(1)?,
                        rule: row.get(2)?,
                        subject: row.get(3)?,
                        state: row.get(4)?,
                        at: SystemTime::UNIX_EPOCH,
                        detail: row.get(6)?,
                        by: row.get(7)?,
                    },
                    row.get::<_, i64>(5)?,
                ))
            })
            .map_err(sql(reading))?;
        let mut alerts = Vec::new();
        for row in rows {
            let (id, mut alert, at_ms) = row.map_err(sql(reading))?;
            alert.at = from_ms(at_ms, &format!("alert {id} time"))?;
            alerts.push(alert);
        }
        Ok(alerts)
    }
}
