//! The durability harness: a writer process appends to the store and prints `ack SEQ` for
//! each append the store acknowledged; it is killed with SIGKILL again and again, and after
//! every kill each acknowledged change must be in the store, with the change log intact.
//!
//! The writer is a test of the same binary (run with `--exact NAME`), told where the store
//! is by an environment variable; it does nothing when the variable is not set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use controller::store::Store;

/// Runs `kills` rounds of: start the writer test `writer` on the store at `path` (through
/// `env`), read `acks_per_kill` acknowledgements, SIGKILL it, open the store, and assert
/// that nothing acknowledged is missing and the change log verifies. Returns every
/// acknowledged sequence number.
#[track_caller]
pub fn nothing_acknowledged_is_lost(
    writer: &str,
    env: &str,
    path: &Path,
    kills: usize,
    acks_per_kill: usize,
) -> BTreeSet<u64> {
    let mut acknowledged = BTreeSet::new();
    for round in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", writer, "--nocapture", "--test-threads=1"])
            .env(env, path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        while this_round < acks_per_kill {
            let Some(line) = lines.next() else {
                panic!("round {round}: the writer stopped after {this_round} acknowledgements");
            };
            if let Some(seq) = line.unwrap().strip_prefix("ack ") {
                acknowledged.insert(seq.parse::<u64>().unwrap());
                this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL, most likely in the middle of a commit
        child.wait().unwrap();
        // Acknowledgements already in the pipe count too.
        for line in lines {
            if let Some(seq) = line.unwrap().strip_prefix("ack ") {
                acknowledged.insert(seq.parse::<u64>().unwrap());
            }
        }
        let store = Store::open(path).unwrap();
        let present: BTreeSet<u64> = store
            .read(|tx| tx.changes(0, usize::MAX))
            .unwrap()
            .into_iter()
            .map(|c| c.seq)
            .collect();
        let lost: Vec<&u64> = acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged but lost: {lost:?}"
        );
        assert_eq!(store.verify_changes().unwrap(), present.len() as u64);
    }
    assert!(acknowledged.len() >= kills * acks_per_kill);
    acknowledged
}
