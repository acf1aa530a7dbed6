//! The clients' history of one run, and the linearizability check of every key.
//!
//! A key's state is a `record::Record` whose `modified` index counts the writes and whose
//! `value` is a tag naming the client operation, and the call of its function, that wrote it
//! (unique per run: a change the proposer retries calls the function again, under a new tag).
//! Every call that produced a new state is recorded as an *attempt* (tag, key, index, the tag
//! of the state it was computed from), so even writes with an unknown outcome are known
//! exactly.
//!
//! The check, per key, against the final state read through a fresh proposer on a healed
//! network:
//! - the chosen history is one chain: walking back from the final state through the attempts
//!   must visit indexes N, N-1, ..., 1, each a value some client attempted for that key at
//!   that index;
//! - no two acknowledged writes share an index, and every acknowledged write is in the chain
//!   (no acknowledged write is lost); the final counter is at least the number of
//!   acknowledged writes and at most acknowledged + unknown-outcome attempts;
//! - everything a client observed (reads, refused CAS, the state an acknowledged write was
//!   computed from) is in the chain;
//! - real time: an operation that completed before another was invoked is ordered before it
//!   in the chain (a write must land above, a read must see at least, every index completed
//!   before it started; unknown-outcome writes that were chosen must land above everything
//!   completed before they started);
//! - client-visible answers: an operation answered "not applied" (`NoEffect`) or "refused"
//!   (a compare-and-swap whose earlier attempts were judged not applied, then refused) has none
//!   of its attempts in the chain, and no operation has two (a request applied twice).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use perseus_node::record::Record;

/// What one client operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged write at this index.
    Wrote { index: u64, tag: String },
    /// Observed this state (a read, or a CAS the function refused). `tag` is `None` at 0.
    Saw { index: u64, tag: Option<String> },
    /// The function was called but the change failed: the write may or may not be chosen.
    Unknown,
    /// Nothing can have happened (refused before the function was called).
    NoEffect,
}

#[derive(Clone, Debug)]
struct Op {
    client: usize,
    key: String,
    what: &'static str,
    proposer: usize,
    invoked: u64,
    completed: u64,
    /// The attempts this operation made (the function called and wrote), in order: a
    /// retried change makes several, at most one of which may be chosen.
    tags: Vec<String>,
    outcome: Outcome,
}

/// One call of a client's function that produced a new state.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub key: String,
    pub index: u64,
    /// The tag of the state the write was computed from (`None`: the key did not exist).
    pub before: Option<String>,
}

#[derive(Default)]
struct State {
    /// A logical clock: every invocation and completion takes the next tick.
    clock: u64,
    ops: Vec<Op>,
    attempts: HashMap<String, Attempt>,
}

/// The shared recorder (cheap to clone into clients and their functions).
#[derive(Clone, Default)]
pub struct History {
    state: Arc<Mutex<State>>,
}

/// An invoked operation, to be completed with [`History::complete`].
pub struct Pending {
    client: usize,
    key: String,
    what: &'static str,
    proposer: usize,
    invoked: u64,
}

/// Counters for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    pub ops: u64,
    pub acked_writes: u64,
    pub observations: u64,
    pub unknown: u64,
    pub no_effect: u64,
    pub chosen_writes: u64,
}

impl History {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn invoke(&self, client: usize, key: &str, what: &'static str, proposer: usize) -> Pending {
        let mut state = self.lock();
        state.clock += 1;
        Pending {
            client,
            key: key.to_string(),
            what,
            proposer,
            invoked: state.clock,
        }
    }

    /// Records that the proposer called the function of `pending`, which computed `after`
    /// from the state tagged `before`.
    pub fn attempt(&self, key: &str, after: &Record, before: Option<String>) {
        self.lock().attempts.insert(
            after.value.clone(),
            Attempt {
                key: key.to_string(),
                index: after.modified,
                before,
            },
        );
    }

    pub fn complete(&self, pending: Pending, tags: Vec<String>, outcome: Outcome) {
        let mut state = self.lock();
        state.clock += 1;
        let completed = state.clock;
        state.ops.push(Op {
            client: pending.client,
            key: pending.key,
            what: pending.what,
            proposer: pending.proposer,
            invoked: pending.invoked,
            completed,
            tags,
            outcome,
        });
    }

    /// Checks every key against its final state. Returns the violations found.
    pub fn check(&self, finals: &BTreeMap<String, Option<Record>>) -> (Vec<String>, HistoryStats) {
        let state = self.lock();
        let mut violations = Vec::new();
        let mut stats = HistoryStats::default();
        for op in &state.ops {
            stats.ops += 1;
            match op.outcome {
                Outcome::Wrote { .. } => stats.acked_writes += 1,
                Outcome::Saw { .. } => stats.observations += 1,
                Outcome::Unknown => stats.unknown += 1,
                Outcome::NoEffect => stats.no_effect += 1,
            }
        }
        for (key, last) in finals {
            let ops: Vec<&Op> = state.ops.iter().filter(|op| op.key == *key).collect();
            let mut v = Vec::new();
            let chain = check_key(key, last.as_ref(), &ops, &state.attempts, &mut v);
            stats.chosen_writes += chain.len() as u64;
            violations.extend(v.into_iter().map(|m| format!("key {key}: {m}")));
        }
        (violations, stats)
    }
}

fn describe(op: &Op) -> String {
    format!(
        "client {} {} via proposer {} (invoked at t{}, completed at t{}): {:?}",
        op.client, op.what, op.proposer, op.invoked, op.completed, op.outcome
    )
}

/// The checks of one key; returns the chosen chain (index 1..=N -> tag).
fn check_key(
    key: &str,
    last: Option<&Record>,
    ops: &[&Op],
    attempts: &HashMap<String, Attempt>,
    v: &mut Vec<String>,
) -> BTreeMap<u64, String> {
    // 1. The chosen chain, walked back from the final state through the attempts.
    let mut chain = BTreeMap::new();
    let final_index = last.map_or(0, |r| r.modified);
    let mut cursor = last.map(|r| (r.modified, r.value.clone()));
    while let Some((index, tag)) = cursor {
        let Some(attempt) = attempts.get(&tag) else {
            v.push(format!(
                "chosen state at index {index} is {tag:?}, which no client wrote"
            ));
            break;
        };
        if attempt.key != key || attempt.index != index {
            v.push(format!(
                "chosen state at index {index} is {tag:?}, written for key {} at index {}",
                attempt.key, attempt.index
            ));
            break;
        }
        chain.insert(index, tag);
        cursor = match &attempt.before {
            Some(before) => Some((index - 1, before.clone())),
            None if index == 1 => None,
            None => {
                v.push(format!(
                    "index {index} was computed from an absent key: the chain does not reach 1"
                ));
                None
            }
        };
        if index == 1 && cursor.is_some() {
            v.push("index 1 was computed from an existing state".to_string());
            break;
        }
    }
    let tag_at = |index: u64| -> Option<Option<&String>> {
        if index == 0 {
            Some(None)
        } else {
            chain.get(&index).map(Some)
        }
    };

    // 2. Acknowledged writes: distinct indexes, all chosen, and the counter bounds. A retried
    // operation has several attempts; at most one of them may be chosen (two would be one
    // request applied twice).
    let chosen_tags: HashMap<&String, u64> = chain.iter().map(|(i, t)| (t, *i)).collect();
    let chosen_of = |op: &Op| -> Vec<(u64, String)> {
        op.tags
            .iter()
            .filter_map(|t| chosen_tags.get(t).map(|i| (*i, t.clone())))
            .collect()
    };
    let mut acked: BTreeMap<u64, &Op> = BTreeMap::new();
    let mut unknown_attempts = 0u64;
    for op in ops {
        let chosen = chosen_of(op);
        if chosen.len() > 1 {
            v.push(format!(
                "ONE REQUEST APPLIED TWICE: [{}]; its attempts chosen at {chosen:?}",
                describe(op)
            ));
        }
        match &op.outcome {
            Outcome::Wrote { index, tag } => {
                if chosen.iter().any(|(_, t)| t != tag) {
                    v.push(format!(
                        "acknowledged write [{}] has another attempt chosen: {chosen:?}",
                        describe(op)
                    ));
                }
                if let Some(other) = acked.insert(*index, op) {
                    v.push(format!(
                        "two acknowledged writes at index {index}: [{}] and [{}]",
                        describe(other),
                        describe(op)
                    ));
                }
                if tag_at(*index) != Some(Some(tag)) {
                    v.push(format!(
                        "ACKNOWLEDGED WRITE LOST: [{}]; the chosen state at index {index} is {:?} \
                         (final index {final_index})",
                        describe(op),
                        tag_at(*index)
                    ));
                }
                // The state it was computed from is an observation too.
                let before = attempts.get(tag).and_then(|a| a.before.as_ref());
                if *index == 0 || tag_at(index - 1) != Some(before) {
                    v.push(format!(
                        "acknowledged write [{}] was computed from {before:?} at index {}, \
                         but the chosen state there is {:?}",
                        describe(op),
                        index.saturating_sub(1),
                        tag_at(index.saturating_sub(1))
                    ));
                }
            }
            Outcome::Saw { index, tag } => {
                if tag_at(*index) != Some(tag.as_ref()) {
                    v.push(format!(
                        "observed a state outside the chosen chain: [{}]; the chosen state at \
                         index {index} is {:?} (final index {final_index})",
                        describe(op),
                        tag_at(*index)
                    ));
                }
                // A compare-and-swap answered "refused" after earlier attempts (each judged
                // not applied) tells the client none of them took effect.
                if !chosen.is_empty() {
                    v.push(format!(
                        "A WRITE ANSWERED AS REFUSED WAS CHOSEN: [{}] at {chosen:?}",
                        describe(op)
                    ));
                }
            }
            Outcome::Unknown => unknown_attempts += u64::from(!op.tags.is_empty()),
            Outcome::NoEffect => {
                if !chosen.is_empty() {
                    v.push(format!(
                        "A WRITE REPORTED NOT APPLIED WAS CHOSEN: [{}] at {chosen:?}",
                        describe(op)
                    ));
                }
            }
        }
    }
    let acked_count = acked.len() as u64;
    if final_index < acked_count || final_index > acked_count + unknown_attempts {
        v.push(format!(
            "final counter {final_index} outside [{acked_count} acknowledged, {} acknowledged + \
             unknown]",
            acked_count + unknown_attempts
        ));
    }

    // 3. Real-time order. Each operation's position in the chain: a write at index i sits at
    // i (strictly above everything before it), a read of index i sits at i (at or above).
    let position = |op: &Op| -> Option<(u64, bool)> {
        match &op.outcome {
            Outcome::Wrote { index, .. } => Some((*index, true)),
            Outcome::Saw { index, .. } => Some((*index, false)),
            // An unknown write that was chosen is a write at its chain index.
            Outcome::Unknown => chosen_of(op).first().map(|(index, _)| (*index, true)),
            Outcome::NoEffect => None,
        }
    };
    // Completed operations by completion time, with the running maximum position.
    let mut done: Vec<(u64, u64, &Op)> = ops
        .iter()
        .filter(|op| !matches!(op.outcome, Outcome::Unknown | Outcome::NoEffect))
        .filter_map(|op| position(op).map(|(p, _)| (op.completed, p, *op)))
        .collect();
    done.sort_by_key(|(completed, _, _)| *completed);
    let mut running: Vec<(u64, u64, &Op)> = Vec::with_capacity(done.len());
    for (completed, p, op) in done {
        match running.last() {
            Some((_, max, _)) if *max >= p => {
                let prev = running[running.len() - 1];
                running.push((completed, prev.1, prev.2));
            }
            _ => running.push((completed, p, op)),
        }
    }
    for op in ops {
        let Some((p, is_write)) = position(op) else {
            continue;
        };
        // The highest position completed strictly before `op` was invoked.
        let n = running.partition_point(|(completed, _, _)| *completed < op.invoked);
        if n == 0 {
            continue;
        }
        let (_, max, earlier) = running[n - 1];
        if (is_write && p <= max) || (!is_write && p < max) {
            v.push(format!(
                "NOT LINEARIZABLE: [{}] sits at index {p}, but [{}] at index {max} completed \
                 before it was invoked",
                describe(op),
                describe(earlier)
            ));
        }
    }
    chain
}
