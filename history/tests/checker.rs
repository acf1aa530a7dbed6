//! The checker on hand-made histories: linearizable ones must pass, non-linearizable ones must
//! be caught with a small witness, unknown (`info`) operations may take effect at any later time
//! or never, and a search past its budget says "undecided".

use perseus_history::check::ViolationKind;
use perseus_history::{
    check, Algorithm, CheckOptions, Event, EventKind, Func, History, Report, Verdict,
};

/// Builds a history of one key from compact operations.
#[derive(Default)]
struct H {
    events: Vec<Event>,
}

/// What an operation does and returns.
#[derive(Clone, Copy)]
enum Do {
    /// read → value (None: missing), version
    Read(Option<i64>, Option<u64>),
    /// blind write of value, version made
    Write(i64, Option<u64>),
    /// cas (prev version, prev value) → value, version made
    Cas(u64, i64, i64, Option<u64>),
    /// create value, version made
    Create(i64, Option<u64>),
}

impl H {
    /// Operation of process `p` from `call` to `ret` (None: unknown outcome) with `outcome`.
    fn op(&mut self, p: u64, call: u64, ret: Option<u64>, ok: bool, d: Do) -> &mut Self {
        let f = match d {
            Do::Read(..) => Func::Read,
            Do::Write(..) => Func::Write,
            Do::Cas(..) => Func::Cas,
            Do::Create(..) => Func::Create,
        };
        let mut inv = Event::invoke(p, "k", f, call);
        let (value, version) = match d {
            Do::Read(v, ver) => (v, ver),
            Do::Write(v, ver) | Do::Create(v, ver) => (Some(v), ver),
            Do::Cas(pv, pval, v, ver) => {
                inv.prev_version = Some(pv);
                inv.prev_value = Some(pval);
                (Some(v), ver)
            }
        };
        if f != Func::Read {
            inv.value = value;
        }
        self.events.push(inv);
        if let Some(ret) = ret {
            let kind = if ok { EventKind::Ok } else { EventKind::Fail };
            let mut e = Event::complete(kind, p, "k", f, ret);
            if ok {
                e.value = value;
                e.version = version;
            }
            self.events.push(e);
        }
        self
    }

    fn check(&self, budget: u64) -> Report {
        let mut ev = self.events.clone();
        ev.sort_by_key(|e| (e.time, e.kind != EventKind::Invoke));
        let h = History::from_events(ev).unwrap();
        check(
            &h,
            CheckOptions {
                search_budget: budget,
                search_steps_per_op: 0,
                max_violations: 50,
            },
        )
    }
}

fn verdict(h: &H) -> Verdict {
    h.check(1_000_000).verdict
}

// ---------------------------------------------------------------- the version chain

#[test]
fn chain_linearizable_counter_loop() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Read(None, None))
        .op(1, 11, Some(20), true, Do::Create(0, Some(1)))
        .op(2, 12, Some(25), true, Do::Read(Some(0), Some(1)))
        .op(1, 21, Some(30), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 26, Some(35), false, Do::Cas(1, 0, 1, None))
        .op(2, 36, Some(40), true, Do::Read(Some(1), Some(2)));
    let r = h.check(10);
    assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", r.violations);
    assert_eq!(r.per_key[0].algorithm, Algorithm::VersionChain);
    assert_eq!((r.writes_ok, r.fail), (2, 1));
}

#[test]
fn chain_finds_a_stale_read_with_its_witness() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(20), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 30, Some(40), true, Do::Read(Some(0), Some(1)));
    let r = h.check(10);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let v = &r.violations[0];
    assert_eq!(v.kind, ViolationKind::StaleRead);
    // the write it should have seen, the read, and the write of what it saw
    assert_eq!(v.ops.len(), 3, "{v:#?}");
}

#[test]
fn chain_stale_read_concurrent_with_the_write_is_fine() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(40), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 20, Some(30), true, Do::Read(Some(0), Some(1)))
        .op(3, 25, Some(35), true, Do::Read(Some(1), Some(2)));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn chain_reads_going_back_are_caught() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(100), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 20, Some(30), true, Do::Read(Some(1), Some(2)))
        .op(3, 40, Some(50), true, Do::Read(Some(0), Some(1)));
    let r = h.check(10);
    assert_eq!(r.violations[0].kind, ViolationKind::StaleRead);
}

#[test]
fn chain_two_writes_on_one_version_is_a_lost_write() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(20), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 12, Some(22), true, Do::Cas(1, 0, 7, Some(3)));
    let r = h.check(10);
    assert_eq!(r.violations[0].kind, ViolationKind::LostWrite);
    assert_eq!(r.violations[0].ops.len(), 2);
}

#[test]
fn chain_a_version_made_twice_is_caught() {
    // a failover that lost version 2 and made it again
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(20), true, Do::Cas(1, 0, 1, Some(2)))
        .op(1, 30, Some(40), true, Do::Cas(1, 0, 5, Some(2)));
    let r = h.check(10);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert!(r
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::DuplicateVersion));
}

#[test]
fn chain_unknown_write_seen_by_a_read_took_effect() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        // unknown: timed out, but a read shows it took effect
        .op(1, 11, None, true, Do::Cas(1, 0, 1, None))
        .op(2, 30, Some(40), true, Do::Read(Some(1), Some(2)))
        .op(3, 50, Some(60), true, Do::Cas(2, 1, 2, Some(3)));
    let r = h.check(10);
    assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", r.violations);
    assert_eq!(r.writes_info, 1);
}

#[test]
fn chain_a_version_no_write_made_is_a_phantom() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1))).op(
        2,
        30,
        Some(40),
        true,
        Do::Read(Some(9), Some(7)),
    );
    assert_eq!(h.check(10).violations[0].kind, ViolationKind::PhantomRead);
    // an unknown write invoked only after the read returned cannot explain it
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(2, 30, Some(40), true, Do::Read(Some(9), Some(7)))
        .op(1, 50, None, true, Do::Cas(1, 0, 9, None));
    assert_eq!(h.check(10).violations[0].kind, ViolationKind::PhantomRead);
}

#[test]
fn chain_unknown_write_may_never_take_effect() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, None, true, Do::Cas(1, 0, 1, None))
        .op(2, 30, Some(40), true, Do::Read(Some(0), Some(1)))
        .op(2, 41, Some(50), true, Do::Cas(1, 0, 1, Some(2)));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn chain_walks_back_through_unknown_writes_no_read_saw() {
    // the unknown cas made version 2 (the next cas replaced it, holding its value): placed,
    // so a read of version 1 after version 3 was acknowledged is stale
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, None, true, Do::Cas(1, 0, 1, None))
        .op(2, 30, Some(40), true, Do::Cas(2, 1, 2, Some(3)));
    let r = h.check(10);
    assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", r.violations);
    h.op(3, 50, Some(60), true, Do::Read(Some(0), Some(1)));
    let r = h.check(10);
    assert_eq!(r.violations[0].kind, ViolationKind::StaleRead, "{r:#?}");
}

#[test]
fn chain_a_write_from_a_state_nobody_made_is_caught() {
    // version 3 claims to replace version 2 holding 7, but version 2 holds 1
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1)))
        .op(1, 11, Some(20), true, Do::Cas(1, 0, 1, Some(2)))
        .op(2, 30, Some(40), true, Do::Cas(2, 7, 8, Some(3)));
    let r = h.check(10);
    assert_eq!(r.violations[0].kind, ViolationKind::LostWrite, "{r:#?}");
    // and from a version no write made at all
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Create(0, Some(1))).op(
        2,
        30,
        Some(40),
        true,
        Do::Cas(5, 7, 8, Some(6)),
    );
    let r = h.check(10);
    assert_eq!(r.violations[0].kind, ViolationKind::PhantomRead, "{r:#?}");
}

// ---------------------------------------------------------------- the search (blind writes)

#[test]
fn search_linearizable_concurrent_writes_and_reads() {
    let mut h = H::default();
    h.op(1, 0, Some(100), true, Do::Write(1, Some(1)))
        .op(2, 10, Some(20), true, Do::Write(2, Some(2)))
        .op(3, 30, Some(40), true, Do::Read(Some(2), Some(2)))
        .op(3, 50, Some(60), true, Do::Read(Some(1), Some(1)));
    let r = h.check(1000);
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.per_key[0].algorithm, Algorithm::Search);
}

#[test]
fn search_catches_a_read_that_goes_back() {
    // w2 finished before the reads; 1 then 2 cannot be explained: w1 is the last write
    let mut h = H::default();
    h.op(1, 0, Some(100), true, Do::Write(1, Some(1)))
        .op(2, 10, Some(20), true, Do::Write(2, Some(2)))
        .op(3, 30, Some(40), true, Do::Read(Some(1), Some(1)))
        .op(3, 50, Some(60), true, Do::Read(Some(2), Some(2)));
    let r = h.check(1000);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(r.violations[0].kind, ViolationKind::NotLinearizable);
}

#[test]
fn search_stale_read_after_a_finished_write() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Write(1, Some(1)))
        .op(1, 20, Some(30), true, Do::Write(2, Some(2)))
        .op(2, 40, Some(50), true, Do::Read(Some(1), Some(1)));
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn search_witness_is_small_after_a_long_good_prefix() {
    let mut h = H::default();
    let mut t = 0;
    for i in 0..300 {
        h.op(1, t, Some(t + 5), true, Do::Write(i, None));
        h.op(2, t + 1, Some(t + 8), true, Do::Read(Some(i), None));
        t += 10;
    }
    h.op(1, t, Some(t + 5), true, Do::Write(1000, None));
    h.op(2, t + 10, Some(t + 15), true, Do::Read(Some(299), None));
    for i in 0..100 {
        t += 20;
        h.op(1, t, Some(t + 5), true, Do::Write(2000 + i, None));
    }
    let r = h.check(1_000_000);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let w = &r.violations[0];
    assert!(w.ops.len() <= 3, "witness of {} ops: {w:#?}", w.ops.len());
    assert!(w.ops.iter().any(|o| o.value == Some(1000)));
}

#[test]
fn search_unknown_write_may_take_effect_later() {
    let mut h = H::default();
    h.op(1, 0, None, true, Do::Write(5, None))
        .op(2, 10, Some(20), true, Do::Read(None, None))
        .op(2, 30, Some(40), true, Do::Read(Some(5), None));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn search_unknown_write_may_never_take_effect() {
    let mut h = H::default();
    h.op(1, 0, Some(5), true, Do::Write(1, None))
        .op(1, 6, None, true, Do::Write(5, None))
        .op(2, 10, Some(20), true, Do::Read(Some(1), None))
        .op(2, 30, Some(40), true, Do::Read(Some(1), None));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn search_unknown_write_cannot_act_before_its_call() {
    let mut h = H::default();
    h.op(2, 10, Some(20), true, Do::Read(Some(5), None))
        .op(1, 30, None, true, Do::Write(5, None));
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn search_unknown_write_takes_effect_once() {
    // the unknown write of 5 explains the first read of 5, not a second after 7 was written
    let mut h = H::default();
    h.op(1, 0, None, true, Do::Write(5, None))
        .op(2, 10, Some(20), true, Do::Read(Some(5), None))
        .op(2, 30, Some(40), true, Do::Write(7, None))
        .op(2, 50, Some(60), true, Do::Read(Some(5), None));
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
}

#[test]
fn search_cas_compares_values() {
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Write(1, None))
        .op(1, 11, Some(20), true, Do::Cas(1, 1, 2, None))
        .op(2, 21, Some(30), true, Do::Read(Some(2), None));
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // a cas that succeeded on a value already overwritten before it began
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Write(1, None))
        .op(1, 11, Some(20), true, Do::Write(2, None))
        .op(2, 21, Some(30), true, Do::Cas(1, 1, 3, None));
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
    // failed operations change nothing
    let mut h = H::default();
    h.op(1, 0, Some(10), true, Do::Write(1, None))
        .op(2, 21, Some(30), false, Do::Cas(1, 9, 3, None))
        .op(2, 31, Some(40), true, Do::Read(Some(1), None));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn search_leaves_out_unknown_writes_nobody_saw() {
    // 200 timeouts whose values no one ever read, then a long linearizable tail: with them
    // pending the search would pass over all 200 at every step
    let mut h = H::default();
    for p in 0..200u64 {
        h.op(100 + p, p, None, true, Do::Write(10_000 + p as i64, None));
    }
    let mut t = 1000;
    for i in 0..100 {
        h.op(1, t, Some(t + 5), true, Do::Write(i, None));
        h.op(2, t + 6, Some(t + 8), true, Do::Read(Some(i), None));
        t += 10;
    }
    assert_eq!(h.check(10_000).verdict, Verdict::Linearizable);
    // one of them read: it is kept, and explains the read
    h.op(3, t, Some(t + 5), true, Do::Read(Some(10_007), None));
    assert_eq!(h.check(100_000).verdict, Verdict::Linearizable);
}

#[test]
fn search_past_its_budget_is_undecided_never_linearizable() {
    let mut h = H::default();
    // many overlapping writes, each read by a read that overlaps them all: more orders than
    // 50 steps can try
    for p in 0..12u64 {
        h.op(p, p, Some(1000 + p), true, Do::Write(p as i64, None));
        h.op(
            20 + p,
            500 + p,
            Some(1500 + p),
            true,
            Do::Read(Some(p as i64), None),
        );
    }
    let r = h.check(50);
    assert_eq!(r.verdict, Verdict::Undecided);
    assert_eq!(r.keys_undecided, 1);
    assert_eq!(h.check(1_000_000).verdict, Verdict::Linearizable);
}

#[test]
fn open_invocations_count_as_unknown() {
    // a write invoked and never completed (the run ended) may have taken effect
    let h = History::from_events(vec![
        Event {
            value: Some(4),
            ..Event::invoke(1, "k", Func::Write, 0)
        },
        Event::invoke(2, "k", Func::Read, 10),
        Event {
            value: Some(4),
            ..Event::complete(EventKind::Ok, 2, "k", Func::Read, 20)
        },
    ])
    .unwrap();
    let r = check(&h, CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.info, 1);
}
