//! The search's tests: small deterministic histories and random ones checked against brute
//! force (kept beside search.rs, which they test from inside).

use super::*;

/// A small deterministic generator.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A random history of `n` operations by `clients` clients on one register, each taking
/// effect at a random point of its interval (or, timed out, maybe never); then, with
/// `lie`, one read's or compare-and-set's value changed (often no longer linearizable).
fn random_history(rng: &mut Rng, n: usize, clients: u64, lie: bool) -> Vec<Op> {
    let mut clock: Vec<u64> = (0..clients).map(|_| rng.below(20)).collect();
    // (point, call, ret, process, f, value, timeout)
    let mut plan = Vec::new();
    for k in 0..n {
        let c = rng.below(clients) as usize;
        let call = clock[c];
        let point = call + 1 + rng.below(30);
        let ret = point + 1 + rng.below(30);
        clock[c] = ret + 1 + rng.below(10);
        let f = match rng.below(4) {
            0 => Func::Read,
            1 => Func::Write,
            2 => Func::Cas,
            _ => Func::Create,
        };
        plan.push((
            point,
            call,
            ret,
            c as u64,
            f,
            100 + k as i64,
            rng.below(6) == 0,
        ));
    }
    plan.sort_by_key(|p| p.0);
    let mut reg: Option<i64> = None;
    let mut ops = Vec::new();
    for (line, &(_, call, ret, process, f, fresh, timeout)) in plan.iter().enumerate() {
        let mut op = Op {
            process,
            f,
            outcome: Outcome::Ok,
            call,
            ret: Some(ret),
            value: Some(fresh),
            version: None,
            prev_version: None,
            prev_value: None,
            line: line as u64,
        };
        let applies = match f {
            Func::Read => {
                op.value = reg;
                false
            }
            Func::Write => true,
            Func::Cas => {
                // compare with the value held or a recent one
                let expect = if rng.below(2) == 0 {
                    reg
                } else {
                    Some(100 + rng.below(n as u64) as i64)
                };
                op.prev_value = expect;
                expect.is_some() && expect == reg
            }
            Func::Create => reg.is_none(),
        };
        let applies = applies && !(timeout && rng.below(2) == 0);
        if applies {
            reg = op.value;
        } else if f != Func::Read && !timeout {
            op.outcome = Outcome::Fail;
        }
        if timeout && f != Func::Read {
            op.outcome = Outcome::Info;
            op.ret = None;
        }
        ops.push(op);
    }
    if lie {
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].f == Func::Read || ops[i].f == Func::Cas)
            .collect();
        if !reads.is_empty() {
            let i = reads[rng.below(reads.len() as u64) as usize];
            let v = Some(100 + rng.below(n as u64) as i64);
            if ops[i].f == Func::Read {
                ops[i].value = v;
            } else if ops[i].outcome != Outcome::Fail {
                ops[i].prev_value = v;
            }
        }
    }
    ops.sort_by_key(|o| (o.call, o.line));
    ops
}

/// The register's semantics on raw values (`None` state: any), independent of `SOp`.
fn apply(o: &Op, s: Option<Option<i64>>) -> Option<Option<Option<i64>>> {
    match o.f {
        Func::Read => match s {
            None => Some(Some(o.value)),
            Some(x) if x == o.value => Some(s),
            _ => None,
        },
        Func::Write => Some(Some(o.value)),
        Func::Cas => match (s, o.prev_value) {
            (None, _) | (_, None) => Some(Some(o.value)),
            (Some(Some(x)), Some(y)) if x == y => Some(Some(o.value)),
            _ => None,
        },
        Func::Create => match s {
            None | Some(None) => Some(Some(o.value)),
            _ => None,
        },
    }
}

/// Every order by brute force: the operations (ok ones, and unknown writes that take
/// effect) in an order that respects real time.
fn brute(ops: &[Op], init: Option<Option<i64>>) -> bool {
    let ops: Vec<&Op> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok || (o.outcome == Outcome::Info && o.f.is_write()))
        .collect();
    fn go(ops: &[&Op], used: &mut Vec<bool>, s: Option<Option<i64>>) -> bool {
        // an ok operation not yet placed whose return precedes a candidate's call blocks it
        let min_ret = (0..ops.len())
            .filter(|&i| !used[i])
            .filter_map(|i| ops[i].ret)
            .min();
        if (0..ops.len()).all(|i| used[i] || ops[i].ret.is_none()) {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] || min_ret.is_some_and(|r| ops[i].call > r) {
                continue;
            }
            if let Some(next) = apply(ops[i], s) {
                used[i] = true;
                if go(ops, used, next) {
                    used[i] = false;
                    return true;
                }
                used[i] = false;
            }
            if ops[i].ret.is_none() {
                // an unknown write may never take effect
                used[i] = true;
                let r = go(ops, used, s);
                used[i] = false;
                if r {
                    return true;
                }
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], init)
}

#[test]
fn agrees_with_brute_force_on_random_histories() {
    let mut rng = Rng(0x9e37_79b9);
    let (mut yes, mut no) = (0, 0);
    for round in 0..20000 {
        let n = 2 + rng.below(9) as usize;
        let clients = 1 + rng.below(4);
        let ops = random_history(&mut rng, n, clients, round % 2 == 1);
        let expect = brute(&ops, Some(None));
        let mut steps = 0;
        let got = run(&ops, 0, u64::MAX, &[], u64::MAX, &mut steps);
        assert_eq!(
            got != Found::Linearizable,
            !expect,
            "round {round}: search says {got:?}, brute force {expect}: {ops:#?}"
        );
        assert_ne!(got, Found::Budget);
        if expect {
            yes += 1;
        } else {
            no += 1;
        }
        // a window from the middle, from any starting value
        let from = ops[ops.len() / 2].call;
        let inner: Vec<Op> = ops.iter().filter(|o| o.call >= from).cloned().collect();
        if ops[0].call < from
            && ops
                .iter()
                .all(|o| o.call >= from || o.ret.is_some_and(|r| r < from))
        {
            let expect = brute(&inner, None);
            let got = run(&ops, from, u64::MAX, &[], u64::MAX, &mut steps);
            assert_eq!(
                got != Found::Linearizable,
                !expect,
                "round {round} from {from}: search says {got:?}, brute force {expect}: {ops:#?}"
            );
        }
    }
    // both kinds were tried, in numbers
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}
