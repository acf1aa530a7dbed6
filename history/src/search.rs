//! The linearizability search for a register with blind writes, as Wing and Gong proposed it
//! and Lowe and Porcupine made it fast: the operations' calls and returns in time order in a
//! list; depth-first, linearize any operation whose call comes before the first pending
//! return and whose effect the register allows, backtrack at a return whose operation is not
//! yet linearized. A cache of (set of linearized operations, register state) already explored
//! prunes the search; a step budget bounds it ("undecided" past it, never "linearizable").
//!
//! The register: a value or "missing" (every run's keys start missing). Reads return it,
//! writes set it, a compare-and-set or create sets it when it holds what the caller read
//! (the load generator's values are unique, so comparing values is what comparing versions
//! was). Failed operations and reads of unknown outcome are left out (they changed nothing);
//! a write of unknown outcome may take effect at any time after its call, or never: the
//! search tries both.
//!
//! A violation's witness is the smallest window [S, T] of the key's history that is still not
//! linearizable: T the earliest completion time at which the history up to T fails, S the
//! latest start from which it still fails, with operations that straddle an edge turned into
//! unknown ones and an unknown starting value (each a weakening, so a failing window is a
//! genuine violation), then every read that is not needed left out.

use std::collections::HashSet;

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
}

impl SOp {
    /// The state after this operation from `s`, or `None` if it cannot take effect there.
    fn step(&self, s: State) -> Option<State> {
        let new = || self.value.map_or(State::Missing, State::Val);
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
                State::Val(_) => None,
            },
        }
    }
}

/// What one search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Linearizable,
    Not,
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
/// effect explains the same results (its state would only have been visible until the next
/// write, to operations that did not look). Without this every timeout would stay pending to
/// the end and the search would try each of them at every later point.
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
        });
    }
    out
}

const NIL: usize = usize::MAX;

/// Dancing-links list of call and return entries, in time order (calls before returns at
/// equal times: such operations count as concurrent, the weaker reading).
struct Entries {
    /// Per entry: the operation and whether it is the call.
    op: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per operation: its call and return entries.
    call_of: Vec<usize>,
    ret_of: Vec<usize>,
}

/// The list's head sentinel is entry 0.
impl Entries {
    fn new(ops: &[SOp]) -> Entries {
        let mut ev: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            ev.push((o.call, 0, i));
            if let Some(r) = o.ret {
                ev.push((r, 1, i));
            }
        }
        ev.sort_unstable();
        let n = ev.len() + 1;
        let mut e = Entries {
            op: Vec::with_capacity(n),
            next: Vec::with_capacity(n),
            prev: Vec::with_capacity(n),
            call_of: vec![NIL; ops.len()],
            ret_of: vec![NIL; ops.len()],
        };
        e.op.push((NIL, false));
        for (k, &(_, kind, i)) in ev.iter().enumerate() {
            let id = k + 1;
            e.op.push((i, kind == 0));
            if kind == 0 {
                e.call_of[i] = id;
            } else {
                e.ret_of[i] = id;
            }
        }
        for id in 0..n {
            e.next.push(if id + 1 < n { id + 1 } else { NIL });
            e.prev.push(if id == 0 { NIL } else { id - 1 });
        }
        e
    }

    fn unlink(&mut self, id: usize) {
        let (p, n) = (self.prev[id], self.next[id]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, id: usize) {
        let (p, n) = (self.prev[id], self.next[id]);
        self.next[p] = id;
        if n != NIL {
            self.prev[n] = id;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if self.ret_of[op] != NIL {
            self.unlink(self.ret_of[op]);
        }
    }

    fn unlift(&mut self, op: usize) {
        if self.ret_of[op] != NIL {
            self.relink(self.ret_of[op]);
        }
        self.relink(self.call_of[op]);
    }
}

/// The set of linearized operations (indexed in call order), kept with the lowest one not in
/// it, so a cache key only holds the few words above that.
struct Linearized {
    bits: Vec<u64>,
    low: usize,
    n: usize,
}

impl Linearized {
    fn new(n: usize) -> Self {
        Linearized {
            bits: vec![0; n.div_ceil(64)],
            low: 0,
            n,
        }
    }
    fn has(&self, i: usize) -> bool {
        (self.bits[i / 64] >> (i % 64)) & 1 == 1
    }
    fn set(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
        while self.low < self.n && self.has(self.low) {
            self.low += 1;
        }
    }
    fn unset(&mut self, i: usize) {
        self.bits[i / 64] &= !(1 << (i % 64));
        self.low = self.low.min(i);
    }
    /// `low`, then the words from `low`'s up to the last non-zero one.
    fn key(&self) -> Vec<u64> {
        let from = self.low / 64;
        let mut to = self.bits.len();
        while to > from && self.bits[to - 1] == 0 {
            to -= 1;
        }
        let mut k = Vec::with_capacity(1 + to.saturating_sub(from));
        k.push(self.low as u64);
        k.extend_from_slice(&self.bits[from..to.max(from)]);
        k
    }
}

/// Whether `ops` (sorted by call) are linearizable from `init`, within `budget` steps.
fn search(ops: &[SOp], init: State, budget: u64, steps: &mut u64) -> Found {
    let mut list = Entries::new(ops);
    let mut lin = Linearized::new(ops.len());
    let mut cache: HashSet<(State, Vec<u64>)> = HashSet::new();
    // (operation, state before it, whether it took effect)
    let mut stack: Vec<(usize, State, bool)> = Vec::new();
    let mut state = init;
    let mut entry = list.next[0];
    loop {
        if entry == NIL {
            // only calls of unknown operations are left: each may never take effect
            return Found::Linearizable;
        }
        *steps += 1;
        if *steps > budget {
            return Found::Budget;
        }
        let (i, is_call) = list.op[entry];
        if is_call {
            let mut advanced = false;
            if let Some(next) = ops[i].step(state) {
                lin.set(i);
                if cache.insert((next, lin.key())) {
                    stack.push((i, state, true));
                    state = next;
                    list.lift(i);
                    advanced = true;
                } else {
                    lin.unset(i);
                }
            }
            if !advanced && ops[i].ret.is_none() {
                lin.set(i);
                if cache.insert((state, lin.key())) {
                    stack.push((i, state, false));
                    list.lift(i);
                    advanced = true;
                } else {
                    lin.unset(i);
                }
            }
            entry = if advanced {
                list.next[0]
            } else {
                list.next[entry]
            };
            continue;
        }
        // a return whose operation is not linearized: undo the last choice
        let Some((j, before, took_effect)) = stack.pop() else {
            return Found::Not;
        };
        state = before;
        lin.unset(j);
        list.unlift(j);
        if took_effect && ops[j].ret.is_none() {
            // an unknown write: try it as never taking effect
            lin.set(j);
            if cache.insert((state, lin.key())) {
                stack.push((j, state, false));
                list.lift(j);
                entry = list.next[0];
                continue;
            }
            lin.unset(j);
        }
        entry = list.next[list.call_of[j]];
    }
}

fn run(ops: &[Op], from: u64, to: u64, skip: &[usize], budget: u64, steps: &mut u64) -> Found {
    let w = window(ops, from, to, skip);
    // a window that starts after the first call starts from a value it does not know
    let init = if ops.iter().any(|p| p.call < from) {
        State::Any
    } else {
        State::Missing
    };
    search(&w, init, budget, steps)
}

/// Checks one key's operations (in invocation order) within `budget` search steps.
pub(crate) fn check_key(key: &str, ops: &[Op], budget: u64) -> KeyResult {
    let mut steps = 0;
    let found = run(ops, 0, u64::MAX, &[], budget, &mut steps);
    let verdict = match found {
        Found::Linearizable => Verdict::Linearizable,
        Found::Budget => Verdict::Undecided,
        Found::Not => Verdict::NotLinearizable,
    };
    let violations = if found == Found::Not {
        vec![witness(key, ops, budget.min(WITNESS_BUDGET))]
    } else {
        Vec::new()
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
/// reported in seconds (each try is one search, and there are up to ~90 of them).
const WITNESS_BUDGET: u64 = 500_000;

/// Reads the witness tries to leave out, one try each (the latest first).
const WITNESS_READ_TRIES: usize = 50;

/// The smallest failing window, its reads thinned, as a violation.
fn witness(key: &str, ops: &[Op], budget: u64) -> Violation {
    let fails = |from: u64, to: u64, skip: &[usize]| {
        let mut steps = 0;
        run(ops, from, to, skip, budget, &mut steps) == Found::Not
    };
    // T: the earliest completion up to which the history already fails
    let mut rets: Vec<u64> = ops.iter().filter_map(|o| o.ret).collect();
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
