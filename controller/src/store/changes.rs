//! The hash-chained change log: appending, reading and verifying (the encoding is in the
//! [store docs](super#the-change-log-and-its-hash)).

use std::fmt::Write as _;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::time::{from_ms, to_ms};
use super::{StoreError, Tx, corrupt, invalid, sql};

/// The `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When the change was made (millisecond precision).
    #[serde(with = "super::time::serde_rfc3339")]
    pub at: SystemTime,
    /// Who made it: an operator login, a node id, `controller`…
    pub who: String,
    /// What kind of change: `enroll node`, `revoke certificate`, `setting policy`…
    pub what: String,
    /// The particulars.
    pub detail: Value,
    /// The hash of the entry before (64 zeros for the first).
    pub prev_hash: String,
    /// This entry's hash (lower-case hex SHA-256).
    pub hash: String,
}

/// How the change log fails to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakKind {
    /// The entry's content does not hash to its stored hash: a field was changed.
    Altered,
    /// The entry's `prev_hash` is not the hash of the entry before it.
    Unlinked,
    /// No entry with this sequence number: it was deleted (or the numbering changed).
    Missing,
}

/// Where and how the change log stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{}", self.describe())]
pub struct ChainBreak {
    /// The first sequence number that does not verify.
    pub seq: u64,
    /// How it fails.
    pub kind: BreakKind,
    /// What verification expected there: the recomputed hash ([`Altered`](BreakKind::Altered)),
    /// the previous entry's hash ([`Unlinked`](BreakKind::Unlinked)), or `seq` itself
    /// ([`Missing`](BreakKind::Missing)).
    pub expected: String,
    /// What the store holds there: the stored hash, the stored `prev_hash`, or the next
    /// sequence number present (`end of log` when none).
    pub found: String,
}

impl ChainBreak {
    fn describe(&self) -> String {
        let ChainBreak {
            seq,
            expected,
            found,
            ..
        } = self;
        match self.kind {
            BreakKind::Altered => format!(
                "change log entry {seq} was altered: its content hashes to {expected} but its \
                 stored hash is {found}"
            ),
            BreakKind::Unlinked => format!(
                "change log entry {seq} does not follow the entry before it: its previous hash \
                 should be {expected} but is {found}"
            ),
            BreakKind::Missing => format!(
                "change log entry {seq} is missing: expected entry {expected}, found {found}"
            ),
        }
    }
}

/// `hash` of an entry: lower-case hex SHA-256 of
/// `[seq,at_ms,"who","what",<detail text>,"prev_hash"]`.
pub(crate) fn entry_hash(
    seq: u64,
    at_ms: i64,
    who: &str,
    what: &str,
    detail_text: &str,
    prev_hash: &str,
) -> String {
    let line = format!(
        "[{seq},{at_ms},{},{},{detail_text},{}]",
        Value::from(who),
        Value::from(what),
        Value::from(prev_hash)
    );
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// `value` as canonical JSON: compact, object keys sorted by code point (the same order as
/// their UTF-8 bytes), scalars as serde_json writes them.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::from(key.as_str()));
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

impl Tx<'_> {
    /// Appends an entry to the change log, for changes that have no table of their own
    /// (policy, bookings…). The mutating methods of [`Tx`] log their own changes.
    pub fn append_change(
        &mut self,
        who: &str,
        what: &str,
        detail: &Value,
        at: SystemTime,
    ) -> Result<ChangeEntry, StoreError> {
        if who.is_empty() || what.is_empty() {
            return Err(invalid("a change names who made it and what it is"));
        }
        let at_ms = to_ms(at)?;
        let (last_seq, prev_hash) = self
            .change_head()?
            .unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
        let seq = last_seq + 1;
        let detail_text = canonical_json(detail);
        let hash = entry_hash(seq, at_ms, who, what, &detail_text, &prev_hash);
        let seq_sql = i64::try_from(seq).map_err(|_| corrupt("change log: sequence overflow"))?;
        self.conn()
            .execute(
                "INSERT INTO changes (seq, at_ms, who, what, detail, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![seq_sql, at_ms, who, what, detail_text, prev_hash, hash],
            )
            .map_err(sql("appending to the change log"))?;
        Ok(ChangeEntry {
            seq,
            at: from_ms(at_ms, "change time")?,
            who: who.to_owned(),
            what: what.to_owned(),
            detail: serde_json::from_str(&detail_text)
                .map_err(|e| corrupt(format!("change {seq}: canonical detail: {e}")))?,
            prev_hash,
            hash,
        })
    }

    /// The last entry's sequence number and hash, or `None` for an empty log. Record it
    /// outside the store now and then: it anchors everything before it.
    pub fn change_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        let head: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT seq, hash FROM changes ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql("reading the change log head"))?;
        head.map(|(seq, hash)| Ok((change_seq(seq)?, hash)))
            .transpose()
    }

    /// Up to `limit` entries with `seq > after_seq`, oldest first (page with the last `seq`).
    pub fn changes(&self, after_seq: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        let reading = "reading the change log";
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT seq, at_ms, who, what, detail, prev_hash, hash FROM changes
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map(params![after, limit], RawChange::from_row)
            .map_err(sql(reading))?;
        let mut entries = Vec::new();
        for row in rows {
            entries.push(row.map_err(sql(reading))?.decode()?);
        }
        Ok(entries)
    }
}

/// A change row as stored.
struct RawChange {
    seq: i64,
    at_ms: i64,
    who: String,
    what: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl RawChange {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawChange> {
        Ok(RawChange {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            who: row.get(2)?,
            what: row.get(3)?,
            detail: row.get(4)?,
            prev_hash: row.get(5)?,
            hash: row.get(6)?,
        })
    }

    fn decode(self) -> Result<ChangeEntry, StoreError> {
        let seq = change_seq(self.seq)?;
        Ok(ChangeEntry {
            seq,
            at: from_ms(self.at_ms, &format!("change {seq} time"))?,
            detail: serde_json::from_str(&self.detail)
                .map_err(|e| corrupt(format!("change {seq} detail is not JSON: {e}")))?,
            who: self.who,
            what: self.what,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

fn change_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| corrupt(format!("change log sequence number {seq}")))
}

/// Walks the whole log in order, checking numbering, links and hashes.
pub(crate) fn verify(tx: &Tx<'_>) -> Result<u64, StoreError> {
    let reading = "verifying the change log";
    let mut stmt = tx
        .conn()
        .prepare("SELECT seq, at_ms, who, what, detail, prev_hash, hash FROM changes ORDER BY seq")
        .map_err(sql(reading))?;
    let mut rows = stmt.query([]).map_err(sql(reading))?;
    let mut expected_seq: u64 = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    while let Some(row) = rows.next().map_err(sql(reading))? {
        let raw = RawChange::from_row(row).map_err(sql(reading))?;
        let seq = change_seq(raw.seq)?;
        if seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                kind: BreakKind::Missing,
                expected: expected_seq.to_string(),
                found: seq.to_string(),
            }
            .into());
        }
        if raw.prev_hash != prev_hash {
            return Err(ChainBreak {
                seq,
                kind: BreakKind::Unlinked,
                expected: prev_hash,
                found: raw.prev_hash,
            }
            .into());
        }
        let recomputed = entry_hash(
            seq,
            raw.at_ms,
            &raw.who,
            &raw.what,
            &raw.detail,
            &raw.prev_hash,
        );
        if recomputed != raw.hash {
            return Err(ChainBreak {
                seq,
                kind: BreakKind::Altered,
                expected: recomputed,
                found: raw.hash,
            }
            .into());
        }
        prev_hash = raw.hash;
        expected_seq += 1;
    }
    Ok(expected_seq - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A published test vector: the docs' example entry, hashed with Python's `hashlib`
    /// over the line the docs give.
    #[test]
    fn the_documented_example_hashes_to_the_published_vector() {
        let detail = canonical_json(&json!({"key": "policy"}));
        assert_eq!(detail, r#"{"key":"policy"}"#);
        let hash = entry_hash(
            1,
            1_767_225_600_000,
            "alice",
            "setting policy",
            &detail,
            GENESIS_HASH,
        );
        assert_eq!(hash, EXAMPLE_HASH);
    }

    const EXAMPLE_HASH: &str = "9d243699b86c0bd6fa3fa7a06c21ea427869e3959294f1505a9b7a6897f9ffc2";

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_spaces() {
        let value = json!({"b": 1, "a": {"z": [true, null, "x\"y\n"], "é": 2, "e": -3}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"e":-3,"z":[true,null,"x\"y\n"],"é":2},"b":1}"#
        );
        let reparsed: Value = serde_json::from_str(&canonical_json(&value)).unwrap();
        assert_eq!(canonical_json(&reparsed), canonical_json(&value));
    }

    #[test]
    fn who_and_what_cannot_leak_into_each_other() {
        let a = entry_hash(1, 0, "a\",\"b", "c", "{}", GENESIS_HASH);
        let b = entry_hash(1, 0, "a", "b\",\"c", "{}", GENESIS_HASH);
        assert_ne!(a, b);
    }
}
