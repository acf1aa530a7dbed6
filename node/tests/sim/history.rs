//! The clients' history of one run, and its check: the client-visible history judged by the
//! testbed's one linearizability checker (`perseus_history`, the same that judges the load
//! generator's runs), and what only the simulation can see — every call of a client's function
//! inside the proposer — checked against the chain the final state was built from.
//!
//! A key's state is a `record::Record` whose `modified` index counts the writes and whose
//! `value` is a tag naming the client operation, and the call of its function, that wrote it
//! (unique per run: a change the proposer retries calls the function again, under a new tag).
//! Every call that produced a new state is recorded as an *attempt* (tag, key, index, the tag
//! of the state it was computed from), so even writes with an unknown outcome are known
//! exactly.
//!
//! The history the clients saw, as `perseus_history` events on the logical clock (tags as
//! unique integers, the index as the version): an acknowledged write is a compare-and-set of
//! the state it was computed from (a create from none), a read or a refused compare-and-set a
//! read of what it saw, each attempt of an operation of unknown outcome an operation that may
//! take effect at any later time or never, and the final state (read through a fresh proposer
//! on a healed network) a read after everything. Its version-chain check finds lost or
//! duplicated acknowledged writes, states nobody wrote, and every real-time violation (a
//! write that must land above, a read that must see at least, everything completed before it
//! was invoked — unknown writes the chain shows were chosen included); a final state outside
//! [acknowledged, acknowledged + unknown] writes is one of those.
//!
//! What only the attempts show, per key, from the chain walked back from the final state:
//! - the chosen history is one chain: walking back from the final state through the attempts
//!   must visit indexes N, N-1, ..., 1, each a value some client attempted for that key at
//!   that index;
//! - client-visible answers: an operation answered "not applied" (`NoEffect`) or "refused"
//!   (a compare-and-swap whose earlier attempts were judged not applied, then refused) has none
//!   of its attempts in the chain, no acknowledged write has another of its attempts in it,
//!   and no operation has two (a request applied twice).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use perseus_history::{CheckOptions, Event, EventKind, Func, Verdict};
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
            let chain = check_attempts(key, last.as_ref(), &ops, &state.attempts, &mut v);
            stats.chosen_writes += chain.len() as u64;
            violations.extend(v.into_iter().map(|m| format!("key {key}: {m}")));
        }
        violations.extend(check_linearizable(&state, finals));
        (violations, stats)
    }
}

fn describe(op: &Op) -> String {
    format!(
        "client {} {} via proposer {} (invoked at t{}, completed at t{}): {:?}",
        op.client, op.what, op.proposer, op.invoked, op.completed, op.outcome
    )
}

/// Tags as the unique integers the history's values are, and back.
#[derive(Default)]
struct Tags<'a> {
    ids: HashMap<&'a str, i64>,
    names: Vec<&'a str>,
}

impl<'a> Tags<'a> {
    fn id(&mut self, tag: &'a str) -> i64 {
        if let Some(&id) = self.ids.get(tag) {
            return id;
        }
        self.names.push(tag);
        let id = self.names.len() as i64;
        self.ids.insert(tag, id);
        id
    }

    fn name(&self, id: Option<i64>) -> String {
        match id {
            None => "none".into(),
            Some(id) => usize::try_from(id - 1)
                .ok()
                .and_then(|i| self.names.get(i))
                .map_or(format!("#{id}"), |t| format!("{t:?}")),
        }
    }
}

/// Who a process of the converted history is: an operation (and which of its attempts), or
/// the final read of a key.
#[derive(Clone, Copy)]
enum Who {
    Op(usize),
    Final,
}

/// The client-visible history as `perseus_history` events (see the module's comment), with
/// who each process is.
fn events<'a>(
    state: &'a State,
    finals: &'a BTreeMap<String, Option<Record>>,
    tags: &mut Tags<'a>,
) -> (Vec<Event>, Vec<Who>) {
    let mut out = Vec::new();
    let mut who = Vec::new();
    // An attempt of operation `op` as a write: acknowledged (completion time, index) or of
    // unknown outcome.
    fn write<'a>(
        state: &'a State,
        tags: &mut Tags<'a>,
        (out, who): (&mut Vec<Event>, &mut Vec<Who>),
        op: usize,
        tag: &'a str,
        done: Option<(u64, u64)>,
    ) {
        let Some(a) = state.attempts.get(tag) else {
            return;
        };
        let p = who.len() as u64;
        who.push(Who::Op(op));
        let o = &state.ops[op];
        let f = if a.before.is_none() {
            Func::Create
        } else {
            Func::Cas
        };
        out.push(Event {
            value: Some(tags.id(tag)),
            prev_version: a.before.as_ref().map(|_| a.index.saturating_sub(1)),
            prev_value: a.before.as_deref().map(|b| tags.id(b)),
            ..Event::invoke(p, &o.key, f, o.invoked)
        });
        if let Some((ret, index)) = done {
            out.push(Event {
                value: Some(tags.id(tag)),
                version: Some(index),
                ..Event::complete(EventKind::Ok, p, &o.key, f, ret)
            });
        }
    }
    for (i, o) in state.ops.iter().enumerate() {
        match &o.outcome {
            Outcome::Wrote { index, tag } => write(
                state,
                tags,
                (&mut out, &mut who),
                i,
                tag,
                Some((o.completed, *index)),
            ),
            Outcome::Saw { index, tag } => {
                let p = who.len() as u64;
                who.push(Who::Op(i));
                out.push(Event::invoke(p, &o.key, Func::Read, o.invoked));
                out.push(Event {
                    value: tag.as_deref().map(|t| tags.id(t)),
                    version: tag.as_ref().map(|_| *index),
                    ..Event::complete(EventKind::Ok, p, &o.key, Func::Read, o.completed)
                });
            }
            // each attempt may have been chosen (at most one: the attempts check says so)
            Outcome::Unknown => {
                for tag in &o.tags {
                    write(state, tags, (&mut out, &mut who), i, tag, None);
                }
            }
            Outcome::NoEffect => {}
        }
    }
    let mut t = state.clock;
    for (key, last) in finals {
        let p = who.len() as u64;
        who.push(Who::Final);
        out.push(Event::invoke(p, key, Func::Read, t + 1));
        out.push(Event {
            value: last.as_ref().map(|r| tags.id(&r.value)),
            version: last.as_ref().map(|r| r.modified),
            ..Event::complete(EventKind::Ok, p, key, Func::Read, t + 2)
        });
        t += 2;
    }
    out.sort_by_key(|e| (e.time, e.kind != EventKind::Invoke));
    (out, who)
}

/// The client-visible history judged by the testbed's linearizability checker.
fn check_linearizable(state: &State, finals: &BTreeMap<String, Option<Record>>) -> Vec<String> {
    let mut tags = Tags::default();
    let (events, who) = events(state, finals, &mut tags);
    let history = match perseus_history::History::from_events(events) {
        Ok(h) => h,
        Err(e) => return vec![format!("the clients' history is not well-formed: {e}")],
    };
    let report = perseus_history::check(&history, CheckOptions::default());
    if report.verdict == Verdict::Linearizable {
        return Vec::new();
    }
    let mut out: Vec<String> = report
        .violations
        .iter()
        .map(|v| {
            let ops: Vec<String> = v
                .ops
                .iter()
                .map(|o| {
                    let whom = match who.get(o.process as usize) {
                        Some(Who::Op(i)) => describe(&state.ops[*i]),
                        _ => "the final read through a fresh proposer".into(),
                    };
                    format!(
                        "{} {} {}{} [{whom}]",
                        o.f.as_str(),
                        o.outcome,
                        tags.name(o.value),
                        o.version
                            .map_or(String::new(), |v| format!(" at index {v}"))
                    )
                })
                .collect();
            format!(
                "key {}: NOT LINEARIZABLE ({}): {} — {}",
                v.key,
                v.kind.as_str(),
                v.message,
                ops.join("; ")
            )
        })
        .collect();
    if report.verdict == Verdict::Undecided {
        out.push(format!(
            "the history check was undecided: {}",
            report.line()
        ));
    }
    out
}

/// The checks only the attempts allow, on one key; returns the chosen chain (index 1..=N ->
/// tag), walked back from the final state through the attempts.
fn check_attempts(
    key: &str,
    last: Option<&Record>,
    ops: &[&Op],
    attempts: &HashMap<String, Attempt>,
    v: &mut Vec<String>,
) -> BTreeMap<u64, String> {
    // 1. The chosen chain, walked back from the final state through the attempts.
    let mut chain = BTreeMap::new();
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

    // 2. Client-visible answers against the chosen attempts. A retried operation has several
    // attempts; at most one of them may be chosen (two would be one request applied twice).
    let chosen_tags: HashMap<&String, u64> = chain.iter().map(|(i, t)| (t, *i)).collect();
    for op in ops {
        let chosen: Vec<(u64, String)> = op
            .tags
            .iter()
            .filter_map(|t| chosen_tags.get(t).map(|i| (*i, t.clone())))
            .collect();
        if chosen.len() > 1 {
            v.push(format!(
                "ONE REQUEST APPLIED TWICE: [{}]; its attempts chosen at {chosen:?}",
                describe(op)
            ));
        }
        match &op.outcome {
            Outcome::Wrote { tag, .. } if chosen.iter().any(|(_, t)| t != tag) => v.push(format!(
                "acknowledged write [{}] has another attempt chosen: {chosen:?}",
                describe(op)
            )),
            // A compare-and-swap answered "refused" after earlier attempts (each judged not
            // applied) tells the client none of them took effect.
            Outcome::Saw { .. } if !chosen.is_empty() => v.push(format!(
                "A WRITE ANSWERED AS REFUSED WAS CHOSEN: [{}] at {chosen:?}",
                describe(op)
            )),
            Outcome::NoEffect if !chosen.is_empty() => v.push(format!(
                "A WRITE REPORTED NOT APPLIED WAS CHOSEN: [{}] at {chosen:?}",
                describe(op)
            )),
            _ => {}
        }
    }
    chain
}
