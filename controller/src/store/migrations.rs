//! The schema's history: `PRAGMA user_version` is the number of [`MIGRATIONS`] applied.
//!
//! A migration is appended, never edited: a store at version `n` has had exactly the first
//! `n` steps applied, each in its own transaction together with the version bump, so a crash
//! mid-migration leaves the store at the last whole step. A store whose version is above
//! [`SCHEMA_VERSION`] was written by a newer controller and is refused.
//!
//! All tables are `STRICT` (SQLite checks column types). Times are `*_ms` integer columns,
//! milliseconds since the Unix epoch.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, sql};

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version after this step (steps are numbered from 1).
    pub version: u32,
    /// What the step does, for the log.
    pub name: &'static str,
    /// The SQL, run as one batch inside the step's transaction.
    pub sql: &'static str,
}

/// Every migration this build knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "nodes, tokens, certificates, config versions, settings, alerts, operators, \
               change log",
        sql: "
CREATE TABLE nodes (
    node            TEXT    NOT NULL,
    plane           TEXT    NOT NULL,
    wireguard_key   TEXT    NOT NULL,
    listen          TEXT    NOT NULL,
    backup_listen   TEXT,
    certificate_pem TEXT    NOT NULL,
    serial          TEXT    NOT NULL,
    enrolled_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (node, plane)
) STRICT;

CREATE TABLE enrollment_tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    node          TEXT    NOT NULL,
    secret_sha256 BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
) STRICT;

CREATE TABLE certificates (
    serial            TEXT    NOT NULL PRIMARY KEY,
    subject           TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    plane             TEXT,
    issuer            TEXT    NOT NULL,
    not_after_ms      INTEGER NOT NULL,
    pem               TEXT    NOT NULL,
    revoked_at_ms     INTEGER,
    revocation_reason TEXT,
    CHECK ((revoked_at_ms IS NULL) = (revocation_reason IS NULL))
) STRICT;

CREATE TABLE config_version (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL CHECK (last >= 0)
) STRICT;
INSERT INTO config_version (id, last) VALUES (1, 0);

CREATE TABLE bundles (
    node    TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    sha256  TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
    key           TEXT    NOT NULL PRIMARY KEY,
    value         TEXT    NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    updated_by    TEXT    NOT NULL
) STRICT;

CREATE TABLE alerts (
    id      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    key     TEXT    NOT NULL,
    rule    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL,
    detail  TEXT    NOT NULL,
    by      TEXT
) STRICT;

CREATE TABLE operators (
    login    TEXT NOT NULL PRIMARY KEY,
    name     TEXT NOT NULL,
    role     TEXT NOT NULL,
    province TEXT,
    serial   TEXT
) STRICT;

CREATE TABLE changes (
    seq       INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at_ms     INTEGER NOT NULL,
    who       TEXT    NOT NULL,
    what      TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;
",
    },
    Migration {
        version: 2,
        name: "indexes for history and expiry queries",
        sql: "
CREATE INDEX alerts_by_time ON alerts (at_ms);
CREATE INDEX alerts_by_key ON alerts (key, at_ms);
CREATE INDEX certificates_by_expiry ON certificates (not_after_ms);
CREATE INDEX changes_by_time ON changes (at_ms);
",
    },
    Migration {
        version: 3,
        name: "video-conference bookings and their recorded changes",
        sql: "
CREATE TABLE conference_bookings (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id >= 1),
    title     TEXT    NOT NULL,
    form_toml TEXT    NOT NULL,
    form_json TEXT    NOT NULL,
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER NOT NULL,
    CHECK (end_ms > start_ms)
) STRICT;
CREATE TABLE conference_changes (
    booking INTEGER NOT NULL REFERENCES conference_bookings (id),
    n       INTEGER NOT NULL CHECK (n >= 0),
    state   TEXT    NOT NULL,
    by      TEXT,
    at_ms   INTEGER NOT NULL,
    note    TEXT,
    PRIMARY KEY (booking, n)
) STRICT;
",
    },
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The store's `user_version`.
pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql("reading the schema version"))?;
    // SQLite keeps user_version as a signed 32-bit integer.
    u32::try_from(version).map_err(|_| StoreError::Corrupt {
        what: format!("schema version {version}"),
    })
}

/// Brings the store at `path` up to [`SCHEMA_VERSION`], one step per transaction, or refuses
/// a newer one. Each step re-reads the version inside its own `IMMEDIATE` transaction, so two
/// processes opening the same store at once do not apply a step twice.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("beginning a migration"))?;
        let found = user_version(&tx)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        let Some(step) = MIGRATIONS.get(found as usize) else {
            return Ok(());
        };
        let doing = format!(
            "migrating to schema version {} ({})",
            step.version, step.name
        );
        tx.execute_batch(step.sql).map_err(sql(&doing))?;
        tx.pragma_update(None, "user_version", step.version)
            .map_err(sql(&doing))?;
        tx.commit().map_err(sql(&doing))?;
        tracing::info!(
            store = %path.display(),
            version = step.version,
            step = step.name,
            "store schema migrated"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_in_order_from_one() {
        for (i, step) in MIGRATIONS.iter().enumerate() {
            assert_eq!(step.version as usize, i + 1, "{}", step.name);
        }
    }

    #[test]
    fn an_empty_database_migrates_to_the_current_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        // Idempotent.
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }
}
