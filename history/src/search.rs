//! The linearizability check for a register with blind writes: Wing and Gong's question
//! (is there an order of the operations, each taking effect between its call and its return,
//! that explains what they returned?) answered in one pass over the history in time order, as
//! Lowe's just-in-time linearization does. The pass keeps the frontier: every configuration
//! (register state, which of the operations still running have already taken effect) that
//! some order of the history so far can reach. At a return, each configuration that has not
//! yet let the returning operation take effect is extended by letting operations still
//! running take effect, one at a time, until it has; configurations that cannot are dropped.
//! The history is linearizable when the pass ends with a configuration left, and not when the
//! frontier empties at a return — that return is where the violation shows. A step budget
//! bounds the work ("undecided" past it, never "linearizable").
//!
//! The register: a value or "missing" (every run's keys start missing). Reads return it,
//! writes set it, a compare-and-set or create sets it when it holds what the caller read
//! (the load generator's values are unique, so comparing values is what comparing versions
//! was). Failed operations and reads of unknown outcome are left out (they changed nothing);
//! a write of unknown outcome may take effect at any time after its call, or never.
//!
//! Unique values make three reductions sound, which keep the frontier small:
//! - a value no operation observes (no read returns it, no compare-and-set compares with it)
//!   is "dead": every such state is the same state, and a write of unknown outcome that makes
//!   one is left out (an order in which it never took effect explains the same results);
//! - a read whose value the register holds takes effect at once, and so does a write that
//!   makes a dead value when the register already holds one, and every such write still
//!   running takes effect right before a blind write (each choice leaves the same state and
//!   fewer obligations, so it loses no order);
//! - a write of unknown outcome that has not taken effect when the last operation observing
//!   its value has returned never takes effect (nothing could notice it any more).
//!
//! A violation's witness is the smallest window [S, T] of the key's history that is still not
//! linearizable: T the completion at which the frontier empties, S the latest start from
//! which the window still fails, with operations that straddle an edge turned into unknown
//! ones and an unknown starting value (each a weakening, so a failing window is a genuine
//! violation), then every read that is not needed left out.

use std::collections::{HashMap, HashSet};

use crate::event::Func;
use crate::ops::{Op, Outcome};
use crate::verdict::{KeyResult, OpView, Verdict, Violation, ViolationKind};

/// The register's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    /// Not known (a window that starts in the middle of the history).
    Any,
    Missing,
    Val(i64),
    /// A value no operation observes (all such states are alike).
    Dead,
}

/// An operation as the search sees it.
#[derive(Debug, Clone, Copy)]
struct SOp {
    f: Func,
    /// Write: the value written; read: the value returned.
    value: Option<i64>,
    /// Cas: the value compared with.
    expect: Option<i64>,
    call: u64,
    /// `None`: unknown outcome.
    ret: Option<u64>,
    /// Index in the key's operations.
    idx: usize,
    /// A write whose value no operation observes.
    dead: bool,
    /// Unknown outcome: when the last operation observing its value returns.
    deadline: Option<u64>,
}

impl SOp {
    /// The state after this operation from `s`, or `None` if it cannot take effect there.
    fn step(&self, s: State) -> Option<State> {
        let new = || {
            if self.dead {
                State::Dead
            } else {
                self.value.map_or(State::Missing, State::Val)
            }
        };
        match self.f {
            Func::Read => match (s, self.value) {
                (State::Any, _) => Some(new()),
                (State::Missing, None) => Some(State::Missing),
                (State::Val(x), Some(y)) if x == y => Some(s),
                _ => None,
            },
            Func::Write => Some(new()),
            Func::Cas => match (s, self.expect) {
                (State::Any, _) | (_, None) => Some(new()),
                (State::Val(x), Some(y)) if x == y => Some(new()),
                _ => None,
            },
            Func::Create => match s {
                State::Any | State::Missing => Some(new()),
                State::Val(_) | State::Dead => None,
            },
        }
    }

    /// A blind write that makes a dead value (it may take effect whenever the value is dead).
    fn dead_write(&self) -> bool {
        self.f == Func::Write && self.dead
    }
}

/// What one search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Linearizable,
    /// The frontier emptied at the return at this time (ns).
    Not(u64),
    Budget,
}

/// The values some operation saw: returned by a read, or compared with by a compare-and-set
/// that did not fail.
fn observed(ops: &[Op]) -> HashSet<i64> {
    let mut seen = HashSet::new();
    for o in ops {
        match (o.f, o.outcome) {
            (_, Outcome::Fail) => {}
            (Func::Read, Outcome::Ok) => seen.extend(o.value),
            (Func::Cas, _) => seen.extend(o.prev_value),
            _ => {}
        }
    }
    seen
}

/// The operations of the window [from, to] (ns): those inside as they are, writes that
/// straddle an edge as unknown, reads that straddle one left out; `skip` left out too.
///
/// A write of unknown outcome whose value nobody saw is left out as well: the values are
/// unique, so if it took effect no operation noticed, and an order in which it never took
/// effect explains the same results.
fn window(ops: &[Op], from: u64, to: u64, skip: &[usize]) -> Vec<SOp> {
    let seen = observed(ops);
    let mut out = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        if o.outcome == Outcome::Fail || o.call > to || skip.contains(&i) {
            continue;
        }
        if o.outcome == Outcome::Info && o.f == Func::Read {
            continue;
        }
        if o.outcome == Outcome::Info && !o.value.is_some_and(|v| seen.contains(&v)) {
            continue;
        }
        if o.ret.is_some_and(|r| r < from) {
            continue;
        }
        let inside = o.call >= from && o.ret.is_some_and(|r| r <= to);
        if !inside && o.f == Func::Read {
            continue;
        }
        out.push(SOp {
            f: o.f,
            value: o.value,
            expect: o.prev_value,
            call: o.call,
            ret: if inside { o.ret } else { None },
            idx: i,
            dead: false,
            deadline: None,
        });
    }
    out
}

/// Marks dead writes and unknown operations' deadlines, and leaves out the unknown writes
/// nothing in `ops` observes (repeatedly: leaving one out may leave another unobserved).
fn prepare(mut ops: Vec<SOp>) -> Vec<SOp> {
    loop {
        // value → the operations observing it
        let mut observers: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            let v = match o.f {
                Func::Read => o.value,
                Func::Cas => o.expect,
                _ => None,
            };
            if let Some(v) = v {
                observers.entry(v).or_default().push(i);
            }
        }
        for o in ops.iter_mut() {
            o.dead = o.f != Func::Read && o.value.is_some_and(|v| !observers.contains_key(&v));
            o.deadline = o.ret;
        }
        // an unknown operation's deadline: its observers' returns (or theirs in turn);
        // chains are short, and one that does not settle keeps no deadline (left out)
        for _ in 0..ops.len().min(64) {
            let mut changed = false;
            for i in 0..ops.len() {
                if ops[i].ret.is_some() || ops[i].f == Func::Read {
                    continue;
                }
                let d = ops[i]
                    .value
                    .and_then(|v| observers.get(&v))
                    .into_iter()
                    .flatten()
                    .filter_map(|&o| ops[o].deadline)
                    .max();
                if d > ops[i].deadline {
                    ops[i].deadline = d;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let before = ops.len();
        ops.retain(|o| o.ret.is_some() || o.deadline.is_some());
        if ops.len() == before {
            return ops;
        }
    }
}

/// A configuration of the frontier: the register's state and the operations still running
/// that have taken effect (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Config {
    state: State,
    done: Vec<u32>,
}

impl Config {
    fn has(&self, i: usize) -> bool {
        self.done.binary_search(&(i as u32)).is_ok()
    }
    fn add(&mut self, i: usize) {
        if let Err(p) = self.done.binary_search(&(i as u32)) {
            self.done.insert(p, i as u32);
        }
    }
    /// Removes `i`; whether it was there.
    fn take(&mut self, i: usize) -> bool {
        match self.done.binary_search(&(i as u32)) {
            Ok(p) => {
                self.done.remove(p);
                true
            }
            Err(_) => false,
        }
    }
    /// Lets take effect what costs nothing: reads of the value held, dead writes when the
    /// value is dead.
    fn settle(&mut self, ops: &[SOp], running: &[usize]) {
        for &j in running {
            let free = match self.state {
                State::Any => false,
                State::Dead => ops[j].dead_write(),
                s => ops[j].f == Func::Read && ops[j].step(s) == Some(s),
            };
            if free {
                self.add(j);
            }
        }
    }
}

/// What each state must still serve: the operations of known outcome that observe a value (or
/// "missing"), and the operation that writes each value. Once the register leaves a state
/// that no later write can bring back (values are unique; nothing makes a key missing), an
/// observer of that state still to take effect never can: the configuration is dropped at
/// once instead of when that observer returns.
struct Needs {
    observers: HashMap<Option<i64>, Vec<usize>>,
    writer: HashMap<i64, usize>,
}

impl Needs {
    fn new(ops: &[SOp]) -> Needs {
        let mut n = Needs {
            observers: HashMap::new(),
            writer: HashMap::new(),
        };
        for (i, o) in ops.iter().enumerate() {
            if o.f != Func::Read {
                if let Some(v) = o.value {
                    n.writer.insert(v, i);
                }
            }
            if o.ret.is_none() {
                continue;
            }
            let seen = match o.f {
                Func::Read => Some(o.value),
                Func::Cas => o.expect.map(Some),
                Func::Create => Some(None),
                Func::Write => None,
            };
            if let Some(v) = seen {
                n.observers.entry(v).or_default().push(i);
            }
        }
        n
    }

    /// Whether configuration `c` may leave its state as `j` takes effect: the state can come
    /// back (its write has not taken effect yet), or every operation of known outcome that
    /// observes it has (`retired`: returned, or an unknown one past its deadline).
    fn may_leave(&self, c: &Config, j: usize, retired: &[bool]) -> bool {
        let key = match c.state {
            State::Val(v) => Some(v),
            State::Missing => None,
            State::Any | State::Dead => return true,
        };
        if let Some(&w) = key.and_then(|v| self.writer.get(&v)) {
            if !retired[w] && !c.has(w) {
                return true;
            }
        }
        self.observers
            .get(&key)
            .is_none_or(|obs| obs.iter().all(|&o| o == j || retired[o] || c.has(o)))
    }
}

/// Configurations a frontier may hold before the key is called undecided (memory bound).
const MAX_FRONTIER: usize = 200_000;

/// Whether `ops` (sorted by call) are linearizable from `init`, within `budget` steps.
fn search(ops: Vec<SOp>, init: State, budget: u64, steps: &mut u64) -> Found {
    let ops = prepare(ops);
    // (time, call 0 / return 1 / deadline 2, operation): calls before returns at equal
    // times (such operations count as concurrent, the weaker reading)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, 0, i));
        match (o.ret, o.deadline) {
            (Some(r), _) => events.push((r, 1, i)),
            (None, Some(d)) => events.push((d.max(o.call), 2, i)),
            (None, None) => {}
        }
    }
    events.sort_unstable();
    let needs = Needs::new(&ops);
    let mut retired = vec![false; ops.len()];
    let mut running: Vec<usize> = Vec::new();
    let mut frontier: HashSet<Config> = HashSet::new();
    frontier.insert(Config {
        state: init,
        done: Vec::new(),
    });
    for (t, kind, i) in events {
        *steps += 1;
        match kind {
            0 => {
                running.push(i);
                frontier = frontier
                    .into_iter()
                    .map(|mut c| {
                        c.settle(&ops, &running);
                        c
                    })
                    .collect();
            }
            2 => {
                retired[i] = true;
                running.retain(|&j| j != i);
                frontier = frontier
                    .into_iter()
                    .map(|mut c| {
                        c.take(i);
                        c
                    })
                    .collect();
            }
            _ => {
                let mut next: HashSet<Config> = HashSet::new();
                let mut seen: HashSet<Config> = HashSet::new();
                let mut stack: Vec<Config> = Vec::new();
                for mut c in frontier.drain() {
                    if c.take(i) {
                        next.insert(c);
                    } else if seen.insert(c.clone()) {
                        stack.push(c);
                    }
                }
                while let Some(x) = stack.pop() {
                    for &j in &running {
                        if x.has(j) {
                            continue;
                        }
                        *steps += 1;
                        if *steps > budget {
                            return Found::Budget;
                        }
                        let Some(state) = ops[j].step(x.state) else {
                            continue;
                        };
                        if state != x.state && !needs.may_leave(&x, j, &retired) {
                            continue;
                        }
                        let mut y = Config {
                            state,
                            done: x.done.clone(),
                        };
                        y.add(j);
                        if ops[j].f == Func::Write {
                            // dead writes still running go first: same state, fewer debts
                            for &k in &running {
                                if ops[k].dead_write() {
                                    y.add(k);
                                }
                            }
                        }
                        y.settle(&ops, &running);
                        if y.take(i) {
                            next.insert(y);
                        } else if seen.len() < MAX_FRONTIER && seen.insert(y.clone()) {
                            stack.push(y);
                        } else if seen.len() >= MAX_FRONTIER {
                            return Found::Budget;
                        }
                    }
                }
                retired[i] = true;
                running.retain(|&j| j != i);
                if next.is_empty() {
                    return Found::Not(t);
                }
                if next.len() > MAX_FRONTIER {
                    return Found::Budget;
                }
                frontier = next;
            }
        }
    }
    Found::Linearizable
}

fn run(ops: &[Op], from: u64, to: u64, skip: &[usize], budget: u64, steps: &mut u64) -> Found {
    let w = window(ops, from, to, skip);
    // a window that starts after the first call starts from a value it does not know
    let init = if ops.iter().any(|p| p.call < from) {
        State::Any
    } else {
        State::Missing
    };
    search(w, init, budget, steps)
}

/// Checks one key's operations (in invocation order) within `budget` search steps.
pub(crate) fn check_key(key: &str, ops: &[Op], budget: u64) -> KeyResult {
    let mut steps = 0;
    let found = run(ops, 0, u64::MAX, &[], budget, &mut steps);
    let verdict = match found {
        Found::Linearizable => Verdict::Linearizable,
        Found::Budget => Verdict::Undecided,
        Found::Not(_) => Verdict::NotLinearizable,
    };
    let violations = match found {
        Found::Not(at) => vec![witness(key, ops, at, budget.min(WITNESS_BUDGET))],
        _ => Vec::new(),
    };
    KeyResult {
        verdict,
        count: violations.len(),
        violations,
        steps,
    }
}

/// Search steps of each try while shrinking a witness: a try that runs out counts as "does
/// not fail", so the witness stays larger, never wrong, and a long history's violation is
/// reported in seconds (each try is one pass, and there are up to ~70 of them).
const WITNESS_BUDGET: u64 = 500_000;

/// Reads the witness tries to leave out, one try each (the latest first).
const WITNESS_READ_TRIES: usize = 50;

/// The smallest failing window, its reads thinned, as a violation. `emptied`: when the
/// whole history's frontier emptied (no earlier prefix fails; a later one may be needed, as
/// the pass drops a configuration as soon as an observer it can no longer serve exists, even
/// before that observer is called).
fn witness(key: &str, ops: &[Op], emptied: u64, budget: u64) -> Violation {
    let fails = |from: u64, to: u64, skip: &[usize]| {
        let mut steps = 0;
        matches!(run(ops, from, to, skip, budget, &mut steps), Found::Not(_))
    };
    // T: the earliest completion up to which the history already fails
    let mut rets: Vec<u64> = ops
        .iter()
        .filter_map(|o| o.ret)
        .filter(|&r| r >= emptied)
        .collect();
    rets.sort_unstable();
    rets.dedup();
    let to = match rets.partition_point(|&t| !fails(0, t, &[])) {
        i if i < rets.len() => rets[i],
        _ => u64::MAX,
    };
    // S: the latest start from which the window still fails
    let mut calls: Vec<u64> = ops.iter().map(|o| o.call).filter(|&c| c <= to).collect();
    calls.sort_unstable();
    calls.dedup();
    let from = match calls.partition_point(|&s| fails(s, to, &[])) {
        0 => 0,
        i => calls[i - 1],
    };
    // leave out every read the window still fails without (up to WITNESS_READ_TRIES tries)
    let mut skip: Vec<usize> = Vec::new();
    let reads: Vec<usize> = window(ops, from, to, &[])
        .iter()
        .filter(|o| o.f == Func::Read)
        .map(|o| o.idx)
        .collect();
    for &r in reads.iter().rev().take(WITNESS_READ_TRIES) {
        skip.push(r);
        if !fails(from, to, &skip) {
            skip.pop();
        }
    }
    let shown: Vec<usize> = window(ops, from, to, &skip).iter().map(|o| o.idx).collect();
    let last = shown
        .iter()
        .copied()
        .rfind(|&i| ops[i].ret == Some(to))
        .or(shown.last().copied());
    let what = last.map_or(String::new(), |i| {
        format!("; the last to complete: {}", OpView::of(&ops[i]).describe())
    });
    Violation {
        key: key.to_string(),
        kind: ViolationKind::NotLinearizable,
        message: format!(
            "no order of these {} operations (each taking effect between its call and its \
             return, an unknown one at any time after its call or never{}) explains what they \
             returned{what}",
            shown.len(),
            if from > 0 {
                ", from any starting value"
            } else {
                ""
            }
        ),
        ops: shown
            .iter()
            .take(60)
            .map(|&i| OpView::of(&ops[i]))
            .collect(),
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
