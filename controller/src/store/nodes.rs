//! Enrolled nodes (one row per node and plane), config versions, and the bundle each node was
//! last given.

use std::net::SocketAddr;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use topology::{NodeId, Plane};

use super::time::{from_ms, to_ms};
use super::{StoreError, Tx, canonical_serial, corrupt, invalid, sql};

/// A node enrolled on one plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node.
    pub node: NodeId,
    /// The plane this enrollment is for (each plane has its own keys and certificate).
    pub plane: Plane,
    /// The node's WireGuard public key on that plane (base64).
    #[serde(with = "super::serde_text")]
    pub wireguard_key: pki::WireGuardKey,
    /// Where the node listens on its primary underlay path.
    pub listen: SocketAddr,
    /// Where it listens on its backup underlay path, if it has one.
    pub backup_listen: Option<SocketAddr>,
    /// Its certificate for that plane (PEM).
    pub certificate_pem: String,
    /// That certificate's serial (lower-case hex).
    pub serial: String,
    /// When it enrolled (millisecond precision).
    #[serde(with = "super::time::serde_rfc3339")]
    pub enrolled_at: SystemTime,
}

impl Tx<'_> {
    /// Records an enrollment, replacing an earlier one of the same node and plane (a
    /// re-enrollment or renewal). The serial is stored in lower-case hex.
    pub fn enroll_node(&mut self, rec: &NodeRecord, who: &str) -> Result<(), StoreError> {
        let serial = canonical_serial(&rec.serial)?;
        let at_ms = to_ms(rec.enrolled_at)?;
        self.conn()
            .execute(
                "INSERT INTO nodes (node, plane, wireguard_key, listen, backup_listen,
                                    certificate_pem, serial, enrolled_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (node, plane) DO UPDATE SET
                    wireguard_key = excluded.wireguard_key,
                    listen = excluded.listen,
                    backup_listen = excluded.backup_listen,
                    certificate_pem = excluded.certificate_pem,
                    serial = excluded.serial,
                    enrolled_at_ms = excluded.enrolled_at_ms",
                params![
                    rec.node.to_string(),
                    rec.plane.as_str(),
                    rec.wireguard_key.to_string(),
                    rec.listen.to_string(),
                    rec.backup_listen.map(|a| a.to_string()),
                    rec.certificate_pem,
                    serial,
                    at_ms
                ],
            )
            .map_err(sql("recording an enrolled node"))?;
        self.append_change(
            who,
            "enroll node",
            &json!({
                "node": rec.node,
                "plane": rec.plane,
                "wireguard_key": rec.wireguard_key.to_string(),
                "listen": rec.listen,
                "backup_listen": rec.backup_listen,
                "serial": serial,
            }),
            rec.enrolled_at,
        )?;
        Ok(())
    }

    /// Every enrolled node and plane, ordered by node id text and plane.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let reading = "reading enrolled nodes";
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT node, plane, wireguard_key, listen, backup_listen, certificate_pem,
                        serial, enrolled_at_ms
                 FROM nodes ORDER BY node, plane",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(RawNode {
                    node: row.get(0)?,
                    plane: row.get(1)?,
                    wireguard_key: row.get(2)?,
                    listen: row.get(3)?,
                    backup_listen: row.get(4)?,
                    certificate_pem: row.get(5)?,
                    serial: row.get(6)?,
                    enrolled_at_ms: row.get(7)?,
                })
            })
            .map_err(sql(reading))?;
        let mut nodes = Vec::new();
        for row in rows {
            nodes.push(row.map_err(sql(reading))?.decode()?);
        }
        Ok(nodes)
    }

    /// The next config version: one more than any handed out before, across restarts.
    /// A version taken in a transaction that rolls back is taken again by the next one, so
    /// give it to agents only after the write is acknowledged.
    pub fn next_config_version(&mut self) -> Result<u64, StoreError> {
        let last: i64 = self
            .conn()
            .query_row(
                "UPDATE config_version SET last = last + 1 WHERE id = 1 RETURNING last",
                [],
                |row| row.get(0),
            )
            .map_err(sql("taking the next config version"))?;
        u64::try_from(last).map_err(|_| corrupt(format!("config version {last}")))
    }

    /// Records that `node` was given config bundle `version` (SHA-256 `sha256_hex`) at `at`.
    pub fn record_bundle(
        &mut self,
        node: &NodeId,
        version: u64,
        sha256_hex: &str,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        if sha256_hex.len() != 64 || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "a bundle digest is 64 hex digits, not `{sha256_hex}`"
            )));
        }
        let version_sql = i64::try_from(version)
            .map_err(|_| invalid(format!("config version {version} out of range")))?;
        self.conn()
            .execute(
                "INSERT INTO bundles (node, version, sha256, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (node) DO UPDATE SET
                    version = excluded.version, sha256 = excluded.sha256, at_ms = excluded.at_ms",
                params![
                    node.to_string(),
                    version_sql,
                    sha256_hex.to_ascii_lowercase(),
                    to_ms(at)?
                ],
            )
            .map_err(sql("recording a config bundle"))?;
        Ok(())
    }

    /// The version and SHA-256 (hex) of the bundle `node` was last given, if any.
    pub fn last_bundle(&self, node: &NodeId) -> Result<Option<(u64, String)>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT version, sha256 FROM bundles WHERE node = ?1",
                [node.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql("reading a node's last bundle"))?;
        row.map(|(version, sha256)| {
            u64::try_from(version)
                .map(|v| (v, sha256))
                .map_err(|_| corrupt(format!("bundle of {node}: version {version}")))
        })
        .transpose()
    }
}

/// A `nodes` row as stored.
struct RawNode {
    node: String,
    plane: String,
    wireguard_key: String,
    listen: String,
    backup_listen: Option<String>,
    certificate_pem: String,
    serial: String,
    enrolled_at_ms: i64,
}

impl RawNode {
    fn decode(self) -> Result<NodeRecord, StoreError> {
        let row = format!("nodes row ({}, {})", self.node, self.plane);
        let bad = |field: &str, e: &dyn std::fmt::Display| corrupt(format!("{row} {field}: {e}"));
        let address = |field: &str, text: &str| {
            text.parse::<SocketAddr>()
                .map_err(|e| bad(field, &format!("`{text}`: {e}")))
        };
        Ok(NodeRecord {
            node: self.node.parse().map_err(|e| bad("node", &e))?,
            plane: self.plane.parse().map_err(|e| bad("plane", &e))?,
            wireguard_key: self
                .wireguard_key
                .parse()
                .map_err(|e| bad("wireguard_key", &e))?,
            listen: address("listen", &self.listen)?,
            backup_listen: self
                .backup_listen
                .as_deref()
                .map(|text| address("backup_listen", text))
                .transpose()?,
            certificate_pem: self.certificate_pem,
            serial: self.serial,
            enrolled_at: from_ms(self.enrolled_at_ms, &format!("{row} enrolled_at"))?,
        })
    }
}
