//! Group commit ([`Store::write_grouped`]): writes queued while another transaction holds
//! the store share one transaction and one fsync, yet each keeps the promises of a write of
//! its own — rolled back alone when it fails or panics, seeing the writes before it (a token
//! redeemed earlier in the group is spent), and acknowledged only once on disk, which the
//! kill -9 test checks the way `store.rs` checks plain writes.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use controller::store::{Store, StoreError, TokenRefusal};
use serde_json::json;
use topology::NodeId;

/// 2026-01-01T00:00:00Z plus `secs`.
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("group-commit-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("controller.db")
}

fn changes(store: &Store) -> Vec<(String, String)> {
    store
        .read(|tx| tx.changes(0, usize::MAX))
        .unwrap()
        .into_iter()
        .map(|c| (c.who, c.what))
        .collect()
}

/// A write one thread of [`grouped`] makes.
type Write<T> = Box<dyn FnOnce(&Store) -> T + Send>;

/// Runs `writes` on their own threads while a plain write holds the store, so that they
/// queue and (all but certainly) commit as one group; returns their results in order.
fn grouped<T: Send + 'static>(
    store: &Arc<Store>,
    writes: Vec<Write<T>>,
) -> Vec<std::thread::Result<T>> {
    let ready = Arc::new(Barrier::new(writes.len() + 1));
    let holder = {
        let (store, ready) = (Arc::clone(store), Arc::clone(&ready));
        std::thread::spawn(move || {
            store
                .write(|_| {
                    ready.wait();
                    // Long enough for every writer to queue behind this transaction.
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .unwrap();
        })
    };
    let threads: Vec<_> = writes
        .into_iter()
        .enumerate()
        .map(|(i, write)| {
            let (store, ready) = (Arc::clone(store), Arc::clone(&ready));
            std::thread::spawn(move || {
                ready.wait();
                // Queue in order.
                std::thread::sleep(Duration::from_millis(20 * i as u64 + 20));
                write(&store)
            })
        })
        .collect();
    holder.join().unwrap();
    threads.into_iter().map(|t| t.join()).collect()
}

#[test]
fn grouped_writes_from_many_threads_are_all_kept_in_one_chain() {
    let store = Arc::new(Store::open(&scratch("many")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..25 {
                    store
                        .write_grouped(move |tx| {
                            tx.append_change(
                                &format!("writer {t}"),
                                "tick",
                                &json!({ "n": n }),
                                at(n),
                            )
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(changes(&store).len(), 200);
    assert_eq!(store.verify_changes().unwrap(), 200);
}

#[test]
fn a_write_that_fails_in_a_group_is_rolled_back_alone() {
    let store = Arc::new(Store::open(&scratch("fails")).unwrap());
    let node: NodeId = "dc:1401".parse().unwrap();
    let token = store
        .write(|tx| tx.create_token(&node, Duration::from_secs(3600), at(0), "alice"))
        .unwrap()
        .token;
    let (first, second) = (token.clone(), token);
    let results = grouped(
        &store,
        vec![
            Box::new(|store: &Store| {
                store.write_grouped(|tx| {
                    tx.append_change("a", "kept", &json!({}), at(1))?;
                    Ok(())
                })
            }),
            Box::new(|store: &Store| {
                store.write_grouped(|tx| {
                    tx.append_change("b", "rolled back", &json!({}), at(2))?;
                    Err(StoreError::Invalid {
                        what: "refused on purpose".into(),
                    })
                })
            }),
            Box::new(move |store: &Store| {
                store.write_grouped(move |tx| tx.redeem_token(&first, at(3)).map(|_| ()))
            }),
            Box::new(move |store: &Store| {
                store.write_grouped(move |tx| tx.redeem_token(&second, at(4)).map(|_| ()))
            }),
        ],
    );
    let results: Vec<Result<(), StoreError>> = results.into_iter().map(|r| r.unwrap()).collect();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(StoreError::Invalid { .. })));
    assert!(results[2].is_ok(), "{:?}", results[2]);
    // Redeemed by the write before it in the same group: spent.
    assert!(
        matches!(
            results[3],
            Err(StoreError::Token(TokenRefusal::Used { .. }))
        ),
        "{:?}",
        results[3]
    );
    let whats: Vec<String> = changes(&store).into_iter().map(|(_, what)| what).collect();
    assert_eq!(whats, ["create token", "kept", "redeem token"]);
    store.verify_changes().unwrap();
}

#[test]
fn a_write_that_panics_in_a_group_panics_its_own_caller_only() {
    let store = Arc::new(Store::open(&scratch("panics")).unwrap());
    let results = grouped(
        &store,
        vec![
            Box::new(|store: &Store| {
                store.write_grouped(|tx| {
                    tx.append_change("a", "before", &json!({}), at(1))?;
                    Ok(())
                })
            }),
            Box::new(|store: &Store| {
                store.write_grouped(|tx| {
                    tx.append_change("b", "never", &json!({}), at(2))?;
                    panic!("a bug in a write");
                })
            }),
            Box::new(|store: &Store| {
                store.write_grouped(|tx| {
                    tx.append_change("c", "after", &json!({}), at(3))?;
                    Ok(())
                })
            }),
        ],
    );
    assert!(matches!(results[0], Ok(Ok(()))));
    assert!(results[1].is_err(), "the panicking write's caller panics");
    assert!(matches!(results[2], Ok(Ok(()))));
    let whats: Vec<String> = changes(&store).into_iter().map(|(_, what)| what).collect();
    assert_eq!(whats, ["before", "after"]);
    store.verify_changes().unwrap();
    // The store is still good for plain writes.
    store
        .write(|tx| tx.append_change("d", "later", &json!({}), at(4)))
        .unwrap();
}

// --- durability under kill -9 -----------------------------------------------------------

/// Set in the child process: the store the writers append to.
const WRITER_ENV: &str = "JINBAO_GROUP_COMMIT_TEST_WRITER";
/// Writer threads in the child: enough that their writes are grouped.
const WRITERS: usize = 8;
/// Acknowledgements the parent waits for before each kill.
const ACKS_PER_KILL: usize = 400;
/// Kills per test run.
const KILLS: usize = 3;

/// Not a test on its own: the child process of
/// [`nothing_acknowledged_by_a_group_commit_is_lost_when_killed`]. Threads append through
/// group commits forever, each printing a sequence number once `write_grouped` returned it.
#[test]
fn group_commit_writer() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = Arc::new(Store::open(Path::new(&path)).unwrap());
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let entry = store
                        .write_grouped(move |tx| {
                            tx.append_change(
                                &format!("writer {t}"),
                                "tick",
                                &json!({ "n": n }),
                                at(n),
                            )
                        })
                        .unwrap();
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "ack {}", entry.seq).unwrap();
                    stdout.flush().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

#[test]
fn nothing_acknowledged_by_a_group_commit_is_lost_when_killed() {
    let path = scratch("kill-9");
    common::kill_9::nothing_acknowledged_is_lost(
        "group_commit_writer",
        WRITER_ENV,
        &path,
        KILLS,
        ACKS_PER_KILL,
    );
}
