//! The version-chain check, for a key whose every write is a compare-and-set on a version
//! (the counter loop and the contention workload): O(n log n), flat in memory per operation.
//!
//! Every acknowledged write names the version it made and the version it replaced, so the
//! writes form a graph of versions rooted at "missing". On a linearizable store it is one
//! chain: each version has at most one successor (two writes that both succeeded on the same
//! version mean one of them was lost), no version is claimed twice, every version a read
//! returns or a write replaced was made by a write (acknowledged, or of unknown outcome — which
//! is then known to have taken effect), with the value that write wrote; walking back from
//! each version through the values the writers saw places unknown writes no read saw. Each operation then has a position
//! (its version's depth in the chain), and real time must agree with it: an operation that
//! began after another had finished must not see an older state (reads) and must make a newer
//! one (writes). One sweep over the operations sorted by invocation, with the completions
//! sorted by time, finds every pair that breaks it; each violation shows the pair (and the
//! write whose version the stale read returned): the smallest sub-history that shows it.

use std::collections::HashMap;

use crate::event::Func;
use crate::ops::{Op, Outcome};
use crate::verdict::{KeyResult, OpView, Verdict, Violation, ViolationKind, KEPT_PER_KEY};

/// A version in the chain: the value written, the version it replaced (`None`: the key did
/// not exist) and the value that version held as the writer saw it, and the operation that
/// wrote it.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: Option<i64>,
    prev: Option<u64>,
    prev_value: Option<i64>,
    op: usize,
}

impl Node {
    fn of(ops: &[Op], op: usize, value: Option<i64>) -> Node {
        Node {
            value,
            prev: base(&ops[op]),
            prev_value: ops[op].prev_value,
            op,
        }
    }
}

struct Found<'a> {
    key: &'a str,
    ops: &'a [Op],
    kept: Vec<Violation>,
    count: usize,
}

impl Found<'_> {
    fn add(&mut self, kind: ViolationKind, message: String, mut witness: Vec<usize>) {
        self.count += 1;
        if self.kept.len() >= KEPT_PER_KEY {
            return;
        }
        witness.sort_by_key(|&i| (self.ops[i].call, self.ops[i].line));
        witness.dedup();
        self.kept.push(Violation {
            key: self.key.to_string(),
            kind,
            message,
            ops: witness.iter().map(|&i| OpView::of(&self.ops[i])).collect(),
        });
    }
}

fn base(op: &Op) -> Option<u64> {
    match op.f {
        Func::Create => None,
        _ => op.prev_version,
    }
}

/// Checks one key's operations (in invocation order).
pub(crate) fn check_key(key: &str, ops: &[Op]) -> KeyResult {
    let mut found = Found {
        key,
        ops,
        kept: Vec::new(),
        count: 0,
    };
    let mut nodes: HashMap<u64, Node> = HashMap::new();
    // 1. the versions acknowledged writes made
    for (i, o) in ops.iter().enumerate() {
        if !(o.f.is_write() && o.outcome == Outcome::Ok) {
            continue;
        }
        let Some(v) = o.version else { continue };
        let node = Node::of(ops, i, o.value);
        match nodes.get(&v) {
            None => {
                nodes.insert(v, node);
            }
            Some(other) => found.add(
                ViolationKind::DuplicateVersion,
                format!(
                    "two acknowledged writes made version {v} (values {:?} and {:?}): one \
                     overwrote the other, so one acknowledged write is lost",
                    other.value, o.value
                ),
                vec![other.op, i],
            ),
        }
    }
    // 2. versions reads returned: an acknowledged write's (same value), or an unknown write's
    let mut unknown_by_value: HashMap<Option<i64>, Vec<usize>> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        if o.f.is_write() && o.outcome == Outcome::Info {
            unknown_by_value.entry(o.value).or_default().push(i);
        }
    }
    for list in unknown_by_value.values_mut() {
        list.reverse(); // pop() takes the earliest
    }
    for (i, o) in ops.iter().enumerate() {
        if !(o.f == Func::Read && o.outcome == Outcome::Ok) {
            continue;
        }
        let Some(v) = o.version else { continue };
        if o.value.is_none() {
            continue;
        }
        match nodes.get(&v) {
            Some(n) if n.value == o.value => {}
            Some(n) => found.add(
                ViolationKind::PhantomRead,
                format!(
                    "read value {:?} at version {v}, which was written with value {:?}",
                    o.value, n.value
                ),
                vec![n.op, i],
            ),
            None => {
                let ret = o.ret.unwrap_or(u64::MAX);
                let cand = unknown_by_value
                    .get_mut(&o.value)
                    .and_then(|l| match l.last() {
                        Some(&w) if ops[w].call <= ret => l.pop(),
                        _ => None,
                    });
                match cand {
                    Some(w) => {
                        nodes.insert(v, Node::of(ops, w, o.value));
                    }
                    None => found.add(
                        ViolationKind::PhantomRead,
                        format!(
                            "read value {:?} at version {v}, which no write (acknowledged or \
                             unknown) made",
                            o.value
                        ),
                        vec![i],
                    ),
                }
            }
        }
    }
    // 2b. the versions the chain's writes replaced: each write names the version it replaced
    // and the value it saw there, so that version was made by the write of that value — an
    // acknowledged one (same value), or one of unknown outcome (then known to have taken
    // effect, before the writer that saw it finished). This walks the chain back through
    // unknown writes that no read saw, so they are placed too.
    let mut todo: Vec<u64> = nodes.keys().copied().collect();
    todo.sort_unstable();
    while let Some(v) = todo.pop() {
        let Some(&n) = nodes.get(&v) else { continue };
        let Some(p) = n.prev else { continue };
        let (o, x) = (&ops[n.op], n.prev_value);
        match nodes.get(&p) {
            Some(m) if m.value == x || x.is_none() => {}
            Some(m) => found.add(
                ViolationKind::LostWrite,
                format!(
                    "version {v} was made from version {p} holding value {x:?}, but the write                      that made version {p} wrote {:?}: one of the two states at version {p}                      was overwritten",
                    m.value
                ),
                vec![m.op, n.op],
            ),
            None => {
                let ret = o.ret.unwrap_or(u64::MAX);
                let cand = unknown_by_value.get_mut(&x).and_then(|l| match l.last() {
                    Some(&w) if ops[w].call <= ret => l.pop(),
                    _ => None,
                });
                match cand {
                    Some(w) => {
                        nodes.insert(p, Node::of(ops, w, x));
                        todo.push(p);
                    }
                    None if x.is_none() => {}
                    None => found.add(
                        ViolationKind::PhantomRead,
                        format!(
                            "version {v} was made from version {p} holding value {x:?}, which                              no write (acknowledged or unknown) made"
                        ),
                        vec![n.op],
                    ),
                }
            }
        }
    }
    // 3. one successor per version
    let mut succ: HashMap<Option<u64>, (u64, usize)> = HashMap::new();
    let mut versions: Vec<(&u64, &Node)> = nodes.iter().collect();
    versions.sort_by_key(|(v, n)| (ops[n.op].call, **v));
    for (&v, n) in versions {
        match succ.get(&n.prev) {
            None => {
                succ.insert(n.prev, (v, n.op));
            }
            Some(&(w, other)) => found.add(
                ViolationKind::LostWrite,
                format!(
                    "versions {w} and {v} were both made from {}: each write replaced the same \
                     state, so one of them is lost",
                    n.prev
                        .map_or("the missing key".to_string(), |p| format!("version {p}"))
                ),
                vec![other, n.op],
            ),
        }
    }
    // 4. depths (position in the chain); unknown where the chain does not reach the root
    let mut depth: HashMap<u64, Option<u64>> = HashMap::with_capacity(nodes.len());
    for &start in nodes.keys() {
        let mut path = Vec::new();
        let mut cur = Some(start);
        let base_depth = loop {
            match cur {
                None => break Some(0),
                Some(v) => {
                    if let Some(&d) = depth.get(&v) {
                        break d;
                    }
                    if path.len() > nodes.len() {
                        break None; // a cycle
                    }
                    match nodes.get(&v) {
                        None => break None,
                        Some(n) => {
                            path.push(v);
                            cur = n.prev;
                        }
                    }
                }
            }
        };
        let mut d = base_depth;
        for v in path.into_iter().rev() {
            d = d.map(|d| d + 1);
            depth.insert(v, d);
        }
    }
    let pos = |o: &Op| -> Option<u64> {
        match (o.f, o.value, o.version) {
            (Func::Read, None, _) => Some(0),
            (_, _, Some(v)) => depth.get(&v).copied().flatten(),
            _ => None,
        }
    };
    // 5. real time against the chain
    struct Item {
        call: u64,
        ret: Option<u64>,
        depth: u64,
        write: bool,
        op: usize,
    }
    let mut items: Vec<Item> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        if o.outcome != Outcome::Ok {
            continue;
        }
        if let Some(d) = pos(o) {
            items.push(Item {
                call: o.call,
                ret: o.ret,
                depth: d,
                write: o.f.is_write(),
                op: i,
            });
        }
    }
    // unknown writes a read showed took effect: constrained by what finished before them
    for (v, n) in &nodes {
        let o = &ops[n.op];
        if o.outcome == Outcome::Info {
            if let Some(Some(d)) = depth.get(v) {
                items.push(Item {
                    call: o.call,
                    ret: None,
                    depth: *d,
                    write: true,
                    op: n.op,
                });
            }
        }
    }
    items.sort_by_key(|it| (it.call, ops[it.op].line));
    let mut done: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].ret.is_some())
        .collect();
    done.sort_by_key(|&i| items[i].ret);
    let mut j = 0;
    let mut best: Option<(u64, usize)> = None; // (depth, item) of the newest state finished
    for b in &items {
        while j < done.len() && items[done[j]].ret.is_some_and(|r| r < b.call) {
            let a = &items[done[j]];
            if best.is_none_or(|(d, _)| a.depth > d) {
                best = Some((a.depth, done[j]));
            }
            j += 1;
        }
        let Some((d, ai)) = best else { continue };
        let a = &items[ai];
        let bad = if b.write { b.depth <= d } else { b.depth < d };
        if !bad {
            continue;
        }
        let (oa, ob) = (&ops[a.op], &ops[b.op]);
        let mut witness = vec![a.op, b.op];
        if let Some(n) = ob.version.and_then(|v| nodes.get(&v)) {
            if !b.write {
                witness.push(n.op);
            }
        }
        let state = |o: &Op| match o.version {
            Some(v) => format!("version {v} (value {:?})", o.value),
            None => "the missing key".into(),
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        if b.write {
            found.add(
                ViolationKind::WriteOutOfOrder,
                format!(
                    "p{}'s {} made {} at position {} of the chain, but p{}'s {} had already \
                     {} {} (position {d}) when it began at {:.3} ms",
                    ob.process,
                    ob.f.as_str(),
                    state(ob),
                    b.depth,
                    oa.process,
                    oa.f.as_str(),
                    if a.write { "made" } else { "seen" },
                    state(oa),
                    ms(ob.call)
                ),
                witness,
            );
        } else {
            found.add(
                ViolationKind::StaleRead,
                format!(
                    "p{}'s read returned {} (position {} of the chain), older than {} that \
                     p{}'s {} had {} before the read began at {:.3} ms",
                    ob.process,
                    state(ob),
                    b.depth,
                    state(oa),
                    oa.process,
                    oa.f.as_str(),
                    if a.write { "written" } else { "read" },
                    ms(ob.call)
                ),
                witness,
            );
        }
    }
    KeyResult {
        verdict: if found.count == 0 {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        },
        violations: found.kept,
        count: found.count,
        steps: 0,
    }
}
