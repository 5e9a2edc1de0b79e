//! The controller's durable store: nodes, enrollment tokens, issued certificates and their
//! revocations (the CRL state), config versions, settings documents, alert history, operators,
//! video-conference bookings, and the hash-chained change log — one SQLite file.
//!
//! # Promises
//!
//! - **Acknowledged means durable.** [`Store::write`] runs its closure in one `IMMEDIATE`
//!   transaction and returns `Ok` only after `COMMIT` has returned. The database is in WAL
//!   mode with `synchronous = FULL`, so a commit has been written to the write-ahead log and
//!   `fsync`ed before it returns: nothing acknowledged to a caller is lost when the
//!   controller is killed (`kill -9`) at any moment, nor on power loss. Anything not yet
//!   committed is rolled back whole; a write either happened completely or not at all.
//! - **Every change leaves a trace.** Each mutating [`Tx`] method appends its own entry to the
//!   change log in the same transaction: enrollment tokens, redemptions, enrollments,
//!   certificates and revocations, settings, operators, alert acknowledgements, conference
//!   bookings; changes with no table of their own (policy pushes…) go through
//!   [`Tx::append_change`]. The log is a hash chain that [`Store::verify_changes`] checks end to end, reporting the
//!   sequence number of the first entry that was altered, unlinked or deleted.
//! - **Secrets are not stored.** Of an enrollment token only the SHA-256 of its secret is
//!   kept; the token itself is shown once, in [`NewToken`].
//! - **Versioned schema.** `PRAGMA user_version` is the schema version; [`MIGRATIONS`] are
//!   applied in order, one transaction each, when the store is opened. A store written by a
//!   newer controller than this build is refused ([`StoreError::NewerSchema`]), never used.
//! - **No panics on what is read back.** A row that does not decode (a bad node id, a time out
//!   of range) is [`StoreError::Corrupt`], naming the table and the value.
//!
//! # Why SQLite (and not redb or files)
//!
//! WAL plus `synchronous = FULL` gives fsync-on-commit durability with one writer and
//! concurrent readers, and decades of crash testing behind it. Schema versioning is built in
//! (`user_version`), so migrations are plain SQL steps. Auditors and operators can inspect
//! and verify the store with the stock `sqlite3` command line without the controller, and
//! history questions (alerts of a link last week, certificates expiring this month) are
//! SQL queries rather than hand-written scans. redb would give durability too, but its files
//! are readable only through Rust code linked against the same redb version.
//!
//! # Time
//!
//! Times are stored as integer milliseconds since the Unix epoch (UTC), so sub-millisecond
//! parts are dropped; a time before 1970 or after 9999-12-31 is refused on the way in
//! ([`StoreError::Invalid`]) and reported as corrupt on the way out. In JSON (the records are
//! `Serialize`/`Deserialize` for the admin API) times are RFC 3339 UTC strings with
//! milliseconds, `2026-11-27T07:35:39.123Z`, which carry exactly the stored value.
//!
//! A change entry's `at` is the mutating method's own time argument where it has one (`now`,
//! `at`, `enrolled_at`); otherwise it is [`Tx::now`], the wall clock read once when
//! [`Store::write`] began (or the time given to [`Store::write_at`]).
//!
//! # The change log and its hash
//!
//! Table `changes(seq, at_ms, who, what, detail, prev_hash, hash)`. `seq` counts from 1 with
//! no gaps; `detail` is JSON text in canonical form (compact, object keys sorted by code
//! point, strings escaped only where JSON requires: `"`, `\`, and control characters, as
//! `\b \f \n \r \t` or lower-case `\u00xx`; non-ASCII left as UTF-8). `prev_hash` is the
//! `hash` of entry `seq - 1`, or 64 zeros (`"000…0"`) for entry 1. `hash` is the lower-case hex
//! SHA-256 of the UTF-8 bytes of the one-line JSON array
//!
//! ```text
//! [<seq>,<at_ms>,<who as a JSON string>,<what as a JSON string>,<detail>,<prev_hash as a JSON string>]
//! ```
//!
//! with no whitespace, `seq` and `at_ms` in decimal, strings escaped as in `detail` (the same
//! as Python's `json.dumps(s, ensure_ascii=False)`), and `<detail>` the `detail` column's
//! text byte for byte. For example entry 1 by `alice`, `setting policy`, detail
//! `{"key":"policy"}` at 2026-01-01T00:00:00Z hashes the bytes
//! `[1,1767225600000,"alice","setting policy",{"key":"policy"},"0000…0000"]` (64 zeros), whose
//! hash is `9d243699b86c0bd6fa3fa7a06c21ea427869e3959294f1505a9b7a6897f9ffc2`. The encoding is
//! unambiguous: the strings are JSON-escaped, so the fields before `<detail>` end where JSON
//! says, and `,"<64 hex>"]` closes every line. An auditor can recompute the chain with
//! `sqlite3` and any SHA-256 tool; in Python:
//!
//! ```text
//! import hashlib, json, sqlite3
//! s = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
//! prev = "0" * 64
//! for seq, at, who, what, detail, prev_hash, h in sqlite3.connect("controller.db").execute(
//!         "SELECT seq, at_ms, who, what, detail, prev_hash, hash FROM changes ORDER BY seq"):
//!     line = "[%d,%d,%s,%s,%s,%s]" % (seq, at, s(who), s(what), detail, s(prev_hash))
//!     assert prev_hash == prev and hashlib.sha256(line.encode()).hexdigest() == h, seq
//!     prev = h
//! ```
//!
//! A chain proves that no entry was changed, reordered or removed *behind* its head; to
//! detect truncation of the tail or a rewrite of the whole chain, record the head
//! ([`Tx::change_head`]) somewhere else from time to time (a ticket, a log shipper) and
//! compare.
//!
//! # What the change log says
//!
//! `what` is one of `create token`, `redeem token`, `enroll node`, `record certificate`,
//! `revoke certificate`, `setting <key>` (detail holds the SHA-256 of the new value, not the
//! value), `upsert operator`, `acknowledge alert`, or whatever a caller passes to
//! [`Tx::append_change`]. Config versions, bundles handed out and alert state changes other
//! than acknowledgements are operational records, not changes, and are not logged.
//!
//! # Threads
//!
//! [`Store`] is `Send + Sync`: one connection behind a mutex, so transactions run one at a
//! time. Calls block on disk I/O (a commit waits for `fsync`); async code should call them
//! from `spawn_blocking`. Writes that come in bursts from many callers at once (enrollments)
//! use [`Store::write_grouped`]: the writes waiting when the connection comes free share one
//! transaction and one `fsync`, each in its own savepoint, each acknowledged only after that
//! commit ([`Store::write_grouped`] says how).

mod alerts;
mod bookings;
mod certificates;
mod changes;
mod group;
mod migrations;
mod nodes;
mod operators;
mod settings;
mod time;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use alerts::AlertRecord;
pub use bookings::BookingRecord;
pub use certificates::{CertificateKind, CertificateRecord};
pub use changes::{BreakKind, ChainBreak, ChangeEntry, GENESIS_HASH};
pub use migrations::{MIGRATIONS, Migration, SCHEMA_VERSION};
pub use nodes::NodeRecord;
pub use operators::OperatorRecord;
pub use time::rfc3339;
pub use tokens::{NewToken, TokenRecord, TokenRefusal};

/// How long a statement waits for a lock held by another connection (an auditor's
/// `sqlite3` shell, a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA synchronous` level FULL: the write-ahead log is synced on every commit.
const SYNCHRONOUS_FULL: i64 = 2;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed; `doing` says what the store was doing.
    #[error("store: {doing}: {source}")]
    Sqlite {
        /// What was being done: "opening /var/lib/jinbao/controller.db", "reading nodes"…
        doing: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// An enrollment token was refused.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// The change log does not verify.
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    /// The store was written by a newer controller; it is not used.
    #[error(
        "the store has schema version {found} but this controller knows versions up to \
         {known}: it was written by a newer controller and is not used (run that version, \
         or restore a backup)"
    )]
    NewerSchema {
        /// The schema version of the file.
        found: u32,
        /// The newest schema version this build knows.
        known: u32,
    },
    /// A stored row does not decode.
    #[error("corrupt store: {what}")]
    Corrupt {
        /// Which table, row and value, and what is wrong with it.
        what: String,
    },
    /// The system's random number generator failed (an enrollment token needs it).
    #[error("the system random number generator failed")]
    Randomness,
    /// The caller asked for something the store does not accept (a malformed serial, a time
    /// out of range, an acknowledgement without a name…); nothing was written.
    #[error("refused by the store: {what}")]
    Invalid {
        /// What is wrong with the request.
        what: String,
    },
    /// A grouped write was dropped unanswered (the thread committing its group died before
    /// it could say); it may or may not be on disk.
    #[error("the group commit holding this write was abandoned: it may or may not be on disk")]
    Abandoned,
}

/// Tags a SQLite error with what the store was doing.
pub(crate) fn sql(doing: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        doing: doing.to_owned(),
        source,
    }
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { what: what.into() }
}

/// A [`StoreError::Invalid`].
pub(crate) fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid { what: what.into() }
}

/// The controller's durable store (see the [module docs](self)).
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Grouped writes waiting for the next group commit ([`Store::write_grouped`]).
    queue: Mutex<group::Queue>,
    /// Told whenever a group commit ends.
    committed: Condvar,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store at `path`, creating it if missing: WAL, `synchronous = FULL`, foreign
    /// keys on, a busy timeout, then the migrations this build knows. The directory must
    /// exist.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let opening = format!("opening {}", path.display());
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(&opening))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql(&opening))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql(&opening))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(invalid(format!(
                "{} cannot use write-ahead logging (journal mode stays `{mode}`)",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql(&opening))?;
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(sql(&opening))?;
        if synchronous < SYNCHRONOUS_FULL {
            return Err(invalid(format!(
                "{} refuses synchronous = FULL (it stays at level {synchronous})",
                path.display()
            )));
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql(&opening))?;
        migrations::migrate(&mut conn, path)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            queue: Mutex::new(group::Queue::default()),
            committed: Condvar::new(),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open store (after migrations: [`SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::user_version(&self.lock())
    }

    /// Runs `f` in one `IMMEDIATE` transaction and commits it. `Ok` is the acknowledgement:
    /// the change is on disk. If `f` fails, or the commit does, nothing of it is kept.
    ///
    /// [`Tx::now`] is the wall clock read once here; use [`write_at`](Self::write_at) to
    /// give the time instead.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The store is an I/O module: it may read the clock for change entries that have
        // no time of their own.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        self.write_at(now, f)
    }

    /// [`write`](Self::write) with [`Tx::now`] given (a virtual clock, a test).
    pub fn write_at<T>(
        &self,
        now: SystemTime,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("beginning a write transaction"))?;
        let mut tx = Tx { tx, now };
        // On error the transaction is dropped here, which rolls it back.
        let value = f(&mut tx)?;
        tx.tx
            .commit()
            .map_err(sql("committing a write transaction"))?;
        Ok(value)
    }

    /// Runs `f` over one consistent snapshot of the store; nothing is written.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(sql("beginning a read transaction"))?;
        let tx = Tx { tx, now };
        f(&tx)
        // Dropping the transaction ends it (a rollback, of nothing).
    }

    /// Recomputes the change log's hash chain from the first entry to the last and returns
    /// how many entries verified, or where the chain breaks ([`StoreError::Chain`]).
    pub fn verify_changes(&self) -> Result<u64, StoreError> {
        self.read(changes::verify)
    }

    /// The connection. A panic inside a transaction closure unwinds through the
    /// transaction's drop, which rolls it back, so a poisoned lock still guards a consistent
    /// connection and is taken over.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The grouped writes waiting. Nothing runs a write under this lock, so a write's panic
    /// never poisons it; taking it over is safe anyway.
    fn queue(&self) -> MutexGuard<'_, group::Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One transaction on the store: read-only when borrowed shared (from [`Store::read`]),
/// read-write when borrowed mutably (from [`Store::write`]).
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    now: SystemTime,
}

impl Tx<'_> {
    /// The time this transaction stamps on change entries that have no time argument of
    /// their own.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// The connection, for the table modules.
    pub(crate) fn conn(&self) -> &Connection {
        &self.tx
    }
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("now", &self.now).finish()
    }
}

/// A certificate serial in the one form the store keeps: lower-case hex, no separators.
pub(crate) fn canonical_serial(serial: &str) -> Result<String, StoreError> {
    serial
        .parse::<pki::Serial>()
        .map(|s| s.to_string())
        .map_err(invalid)
}

/// serde for types written as text (`Display` out, `FromStr` in): WireGuard keys, roles.
pub(crate) mod serde_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_store_is_shared_between_threads() {
        assert_send_sync::<Store>();
    }

    #[test]
    fn serials_are_kept_in_lower_case_hex() {
        assert_eq!(canonical_serial("0A:1b").ok().as_deref(), Some("0a1b"));
        assert!(matches!(
            canonical_serial("xyz"),
            Err(StoreError::Invalid { .. })
        ));
    }
}
