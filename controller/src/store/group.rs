//! Group commit: concurrent writes share one transaction and one `fsync`.
//!
//! Every commit waits for the disk (`synchronous = FULL`: a few milliseconds on the lab's
//! disk, more on a busy one), and the store has one connection, so writers that each commit
//! on their own queue behind each other's `fsync`: 400 agents enrolling at once spend most
//! of their time waiting for 400 syncs in a row. [`Store::write_grouped`] queues the write
//! instead. When no group is being committed, the caller takes everything queued — its own
//! write and whatever came before it — runs it in one `IMMEDIATE` transaction, each write
//! inside its own savepoint, and commits once; the writes queued meanwhile wait for that
//! commit to end and then make the next group. No thread of its own, nothing left behind:
//! every queued write's caller either hears its answer or commits the next group itself.
//!
//! The promises of [`Store::write`] hold for each write on its own:
//!
//! - **Acknowledged means durable.** A caller hears `Ok` only after the `COMMIT` that holds
//!   its write has returned. If the commit fails, every write of the group hears the error
//!   and none of them happened.
//! - **All or nothing, per write.** A write whose closure fails is rolled back to its
//!   savepoint: nothing of it is kept, and the other writes of the group go ahead. A write
//!   that panics is rolled back the same way and the panic resumes in its caller's thread.
//! - **One at a time.** The writes of a group run one after the other, in the order they
//!   were queued, each seeing everything the earlier ones wrote — as if each had its own
//!   transaction. A token redeemed by one write of a group is spent for the next.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{MutexGuard, mpsc};
use std::time::SystemTime;

use rusqlite::{Connection, TransactionBehavior};

use super::{Store, StoreError, Tx, sql};

/// The grouped writes waiting, and whether a group is being committed.
#[derive(Default)]
pub(super) struct Queue {
    pending: Vec<Pending>,
    committing: bool,
}

/// A write waiting for the next group commit.
pub(super) struct Pending {
    /// Runs the write in the group's transaction, in its own savepoint; returns how to
    /// answer its caller once the group's commit is known.
    run: Box<Run>,
    /// Answers the caller when its write never ran (the group's transaction did not begin).
    refuse: Box<dyn FnOnce(StoreError) + Send>,
}

/// A queued write: runs in the group's transaction, returns how to answer its caller.
type Run = dyn for<'a, 'b> FnOnce(&'b mut Tx<'a>) -> Result<Answer, StoreError> + Send;

/// Answers a caller: `Ok` if the group committed, else what went wrong.
type Answer = Box<dyn FnOnce(Result<(), &GroupFailure>) + Send>;

/// What a caller hears: its closure's result, or the panic it raised.
type Reply<T> = Result<Result<T, StoreError>, Box<dyn Any + Send>>;

/// Why a group was not committed (each caller gets its own copy as a [`StoreError`]).
pub(super) struct GroupFailure {
    doing: &'static str,
    source: rusqlite::Error,
}

impl GroupFailure {
    fn to_error(&self) -> StoreError {
        StoreError::Sqlite {
            doing: self.doing.to_owned(),
            source: duplicate(&self.source),
        }
    }
}

impl Store {
    /// [`write`](Self::write), committed together with whatever other grouped writes are
    /// waiting: one transaction and one `fsync` for the group, each write in a savepoint of
    /// its own. Each write keeps the promises of `write`: `Ok` only once the commit holding
    /// it has returned (if that commit fails, every write of the group hears the error);
    /// a write that fails or panics is rolled back alone (a panic resumes in its caller);
    /// the writes of a group run in the order they were queued, each seeing the ones
    /// before it. For writes that arrive in bursts — enrollments, the bundle versions that
    /// follow them. Blocks like `write`; call it from `spawn_blocking`.
    pub fn write_grouped<T: Send + 'static>(
        &self,
        f: impl for<'a, 'b> FnOnce(&'b mut Tx<'a>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The store is an I/O module: it reads the clock for [`Tx::now`].
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        let (reply, replied) = mpsc::sync_channel::<Reply<T>>(1);
        let refused = reply.clone();
        let pending = Pending {
            run: Box::new(move |tx: &mut Tx<'_>| {
                tx.now = now;
                let outcome = in_savepoint(tx, f)?;
                Ok(Box::new(move |group: Result<(), &GroupFailure>| {
                    let answer = match (outcome, group) {
                        (Ok(Ok(value)), Ok(())) => Ok(Ok(value)),
                        (Ok(Ok(_)), Err(failure)) => Ok(Err(failure.to_error())),
                        (Ok(Err(err)), _) => Ok(Err(err)),
                        (Err(panic), _) => Err(panic),
                    };
                    let _ = reply.send(answer);
                }) as Answer)
            }),
            refuse: Box::new(move |err| {
                let _ = refused.send(Ok(Err(err)));
            }),
        };
        let mut queue = self.queue();
        queue.pending.push(pending);
        loop {
            match replied.try_recv() {
                Ok(Ok(result)) => return result,
                Ok(Err(panic)) => resume_unwind(panic),
                // Dropped unanswered: the thread committing its group died.
                Err(mpsc::TryRecvError::Disconnected) => return Err(StoreError::Abandoned),
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if queue.committing {
                // Wait for the group being committed; this write is in it, or in the next.
                queue = self.wait_for_commit(queue);
                continue;
            }
            queue.committing = true;
            let group = std::mem::take(&mut queue.pending);
            drop(queue);
            let committer = Committer(self);
            commit_group(&mut self.lock(), group);
            drop(committer);
            queue = self.queue();
        }
    }
}

/// The group's committer: when it is done (or unwinds), the next group may begin.
struct Committer<'a>(&'a Store);

impl Drop for Committer<'_> {
    fn drop(&mut self) {
        self.0.queue().committing = false;
        self.0.committed.notify_all();
    }
}

impl Store {
    fn wait_for_commit<'a>(&self, queue: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.committed
            .wait(queue)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs `group` in one transaction and answers every caller.
fn commit_group(conn: &mut Connection, group: Vec<Pending>) {
    let size = group.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(source) => {
            let failure = GroupFailure {
                doing: "beginning a grouped write transaction",
                source,
            };
            for pending in group {
                (pending.refuse)(failure.to_error());
            }
            return;
        }
    };
    let mut tx = Tx {
        tx,
        #[allow(clippy::disallowed_methods)]
        now: SystemTime::now(),
    };
    let mut answers = Vec::with_capacity(size);
    let mut failure: Option<GroupFailure> = None;
    for pending in group {
        if let Some(failure) = &failure {
            (pending.refuse)(failure.to_error());
            continue;
        }
        match (pending.run)(&mut tx) {
            Ok(answer) => answers.push(answer),
            Err(err) => {
                // The savepoint itself failed: the transaction is not trusted any more.
                failure = Some(GroupFailure {
                    doing: "managing a savepoint of a grouped write",
                    source: match err {
                        StoreError::Sqlite { source, .. } => source,
                        other => generic(other.to_string()),
                    },
                });
            }
        }
    }
    let outcome = match failure {
        // Dropping the transaction rolls it back.
        Some(failure) => Err(failure),
        None => tx.tx.commit().map_err(|source| GroupFailure {
            doing: "committing a grouped write transaction",
            source,
        }),
    };
    if size > 1 {
        tracing::debug!(writes = size, ok = outcome.is_ok(), "group commit");
    }
    for answer in answers {
        answer(outcome.as_ref().map(|_| ()));
    }
}

/// Runs `f` inside a savepoint: released if it succeeds, rolled back to if it fails or
/// panics. The outer `Err` is a failure of the savepoint itself.
fn in_savepoint<T>(
    tx: &mut Tx<'_>,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Result<Reply<T>, StoreError> {
    tx.tx
        .execute_batch("SAVEPOINT grouped_write")
        .map_err(sql("opening a savepoint"))?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(tx)));
    let end = if matches!(outcome, Ok(Ok(_))) {
        "RELEASE grouped_write"
    } else {
        "ROLLBACK TO grouped_write; RELEASE grouped_write"
    };
    tx.tx
        .execute_batch(end)
        .map_err(sql("closing a savepoint"))?;
    Ok(outcome)
}

/// A copy of a SQLite error, for each caller of a failed group.
fn duplicate(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => generic(other.to_string()),
    }
}

fn generic(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(message),
    )
}
