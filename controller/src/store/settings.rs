//! Settings: small named documents (`policy`, `probes`, `snmp-inventory`…), kept whole.

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::time::to_ms;
use super::{StoreError, Tx, invalid, sql};

/// The longest setting name.
const MAX_KEY_LEN: usize = 128;

impl Tx<'_> {
    /// The document stored under `key`, if any.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql("reading a setting"))
    }

    /// Stores `value` under `key`, replacing what was there. The change log records the
    /// SHA-256 and length of the value, not the value (it may be large).
    pub fn set_setting(&mut self, key: &str, value: &str, who: &str) -> Result<(), StoreError> {
        let key_ok =
            (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(invalid(format!(
                "bad setting name `{key}` (1–{MAX_KEY_LEN} printable ASCII characters, no spaces)"
            )));
        }
        let now = self.now();
        self.conn()
            .execute(
                "INSERT INTO settings (key, value, updated_at_ms, updated_by)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                    updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by",
                params![key, value, to_ms(now)?, who],
            )
            .map_err(sql("storing a setting"))?;
        self.append_change(
            who,
            &format!("setting {key}"),
            &json!({
                "key": key,
                "sha256": hex::encode(Sha256::digest(value.as_bytes())),
                "bytes": value.len(),
            }),
            now,
        )?;
        Ok(())
    }
}
