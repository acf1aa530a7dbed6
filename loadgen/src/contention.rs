//! Consistency checker for keys shared by many clients (`--keys shared:N`): every connection of
//! every node races on the same few keys with read → create-if-missing → CAS increment.
//!
//! With many writers nobody knows what a key must hold at a given moment, so the single-writer
//! rules of [`crate::checker`] do not apply. What must still hold on a linearizable register
//! whose only writes are one create of 0 and compare-and-swap increments:
//! - **every successful increment is unique**: no two acknowledged CAS were conditioned on the
//!   same modifiedIndex, no two acknowledged CAS wrote the same value, and the key is created
//!   once (a second acknowledged create, or two increments from one version, is a lost update:
//!   [`ViolationKind::LostWrite`]);
//! - **one value per version**: every read or acknowledgement that names a modifiedIndex shows
//!   the same value for it ([`ViolationKind::UnexpectedValue`]);
//! - **a client never goes back in time**: a client's reads and acknowledgements never show an
//!   older modifiedIndex than it has already seen ([`ViolationKind::StaleRead`]), nor the key
//!   missing after it saw it ([`ViolationKind::LostWrite`]);
//! - **the final count adds up**: read after the run, the value `F` lies in `[A, A + U]`, where
//!   `A` counts acknowledged increments and `U` increments whose outcome is unknown (timeout,
//!   lost connection, 5xx, or cut off by the end of the run). Below `A` an acknowledged
//!   increment was lost ([`ViolationKind::LostWrite`]); above `A + U` a write that was reported
//!   as not applied (412/404) took effect ([`ViolationKind::UnexpectedValue`]).
//!
//! `F - A` is the number of increments that took effect although their client was not told so
//! ("failed but applied"): the figure a store that resolves unknown outcomes drives to zero.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::checker::{describe, State, Violation, ViolationKind};

pub use perseus_model::load::KeyFigures;

#[derive(Debug, Default)]
struct Inner {
    /// Acknowledged increments by the modifiedIndex they were conditioned on.
    acked_from: HashMap<u64, i64>,
    /// Values written by acknowledged increments.
    acked_values: HashSet<i64>,
    /// The value seen at each modifiedIndex (reads and acknowledgements).
    seen: HashMap<u64, i64>,
    increments_sent: u64,
    acknowledged: u64,
    rejected: u64,
    creates_acknowledged: u64,
    final_value: Option<i64>,
}

/// The shared record of one key, held by every client that races on it.
#[derive(Debug)]
pub struct SharedKey {
    key: String,
    inner: Mutex<Inner>,
}

impl SharedKey {
    pub fn new(key: impl Into<String>) -> Arc<Self> {
        Arc::new(SharedKey {
            key: key.into(),
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // plain maps and counters: still usable after a panic elsewhere
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn violation(&self, kind: ViolationKind, expected: String, got: String) -> Violation {
        Violation {
            key: self.key.clone(),
            kind,
            expected,
            got,
        }
    }

    /// Records that `state` was seen; a different value at a known index is a violation.
    fn see(&self, inner: &mut Inner, state: State) -> Result<(), Violation> {
        match inner.seen.get(&state.index) {
            Some(v) if *v != state.value => Err(self.violation(
                ViolationKind::UnexpectedValue,
                format!("value={v} index={} (seen before)", state.index),
                describe(Some(state)),
            )),
            Some(_) => Ok(()),
            None => {
                inner.seen.insert(state.index, state.value);
                Ok(())
            }
        }
    }

    /// Checks the value read after the run against the acknowledged and unknown increments.
    pub fn check_final(&self, read: Option<State>) -> Result<(), Violation> {
        let mut inner = self.lock();
        let value = read.map_or(0, |s| s.value);
        if read.is_some() {
            inner.final_value = Some(inner.final_value.map_or(value, |v| v.max(value)));
        }
        if let Some(s) = read {
            self.see(&mut inner, s)?;
        }
        let acked = inner.acknowledged as i64;
        let unknown = inner
            .increments_sent
            .saturating_sub(inner.acknowledged + inner.rejected) as i64;
        let expected = format!("final value in [{acked}, {}]", acked + unknown);
        if read.is_none() && (inner.creates_acknowledged > 0 || acked > 0) {
            return Err(self.violation(ViolationKind::LostWrite, expected, describe(read)));
        }
        if value < acked {
            return Err(self.violation(ViolationKind::LostWrite, expected, describe(read)));
        }
        if value > acked + unknown {
            return Err(self.violation(ViolationKind::UnexpectedValue, expected, describe(read)));
        }
        Ok(())
    }

    /// The figures so far (after [`SharedKey::check_final`], with the final value).
    pub fn figures(&self) -> KeyFigures {
        let inner = self.lock();
        let unknown = inner
            .increments_sent
            .saturating_sub(inner.acknowledged + inner.rejected);
        let failed_but_applied = inner.final_value.map_or(0, |f| {
            u64::try_from(f)
                .unwrap_or(0)
                .saturating_sub(inner.acknowledged)
                .min(unknown)
        });
        KeyFigures {
            key: self.key.clone(),
            increments_sent: inner.increments_sent,
            acknowledged: inner.acknowledged,
            rejected: inner.rejected,
            unknown,
            creates_acknowledged: inner.creates_acknowledged,
            final_value: inner.final_value,
            failed_but_applied,
        }
    }
}

/// A write announced with [`SharedView::begin_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedToken {
    prev: Option<u64>,
    value: i64,
}

/// One client's view of a shared key: the shared record plus what this client has seen.
#[derive(Debug)]
pub struct SharedView {
    shared: Arc<SharedKey>,
    /// The newest state this client has seen (read or acknowledged).
    last: Option<State>,
}

impl SharedView {
    pub fn new(shared: Arc<SharedKey>) -> Self {
        SharedView { shared, last: None }
    }

    pub fn key(&self) -> &str {
        self.shared.key()
    }

    /// A client's own history must not go back: an older index, or the key missing again.
    fn advance(&mut self, state: Option<State>) -> Result<(), Violation> {
        let result = match (self.last, state) {
            (Some(last), None) => Err(self.shared.violation(
                ViolationKind::LostWrite,
                format!("at least {}", describe(Some(last))),
                describe(None),
            )),
            (Some(last), Some(s)) if s.index < last.index => Err(self.shared.violation(
                ViolationKind::StaleRead,
                format!("index >= {} (seen by this client)", last.index),
                describe(Some(s)),
            )),
            _ => Ok(()),
        };
        if state.is_some() {
            self.last = state;
        }
        result
    }

    /// Checks a successful read (`None` = key not found).
    pub fn observe_read(&mut self, read: Option<State>) -> Result<(), Violation> {
        if let Some(s) = read {
            let mut inner = self.shared.lock();
            self.shared.see(&mut inner, s)?;
        }
        self.advance(read)
    }

    /// A read returned something that is not an integer value.
    pub fn observe_garbage(&mut self, raw: &str) -> Violation {
        self.shared.violation(
            ViolationKind::UnexpectedValue,
            "an integer".into(),
            format!("unparsable value {raw:?}"),
        )
    }

    /// Announces a write before it is sent (`prev`: `None` for a create, the index for a CAS).
    pub fn begin_write(&mut self, prev: Option<u64>, value: i64) -> SharedToken {
        if prev.is_some() {
            self.shared.lock().increments_sent += 1;
        }
        SharedToken { prev, value }
    }

    /// The write was definitely not applied.
    pub fn write_rejected(&mut self, t: SharedToken) {
        if t.prev.is_some() {
            self.shared.lock().rejected += 1;
        }
    }

    /// The outcome is unknown: counted as such by [`SharedKey::figures`].
    pub fn write_unknown(&mut self, _t: SharedToken) {}

    /// The write was acknowledged with the state the store returned.
    pub fn write_acked(&mut self, t: SharedToken, resp: State) -> Result<(), Violation> {
        let first = {
            let mut inner = self.shared.lock();
            let mut first = Ok(());
            let mut note = |r: Result<(), Violation>| {
                if first.is_ok() {
                    first = r;
                }
            };
            if resp.value != t.value {
                note(Err(self.shared.violation(
                    ViolationKind::UnexpectedValue,
                    format!("ack of value={}", t.value),
                    describe(Some(resp)),
                )));
            }
            match t.prev {
                None => {
                    inner.creates_acknowledged += 1;
                    if inner.creates_acknowledged > 1 {
                        note(Err(self.shared.violation(
                            ViolationKind::LostWrite,
                            "one acknowledged create".into(),
                            format!("create number {}", inner.creates_acknowledged),
                        )));
                    }
                }
                Some(prev) => {
                    inner.acknowledged += 1;
                    if resp.index <= prev {
                        note(Err(self.shared.violation(
                            ViolationKind::IndexBackwards,
                            format!("ack with index > {prev}"),
                            describe(Some(resp)),
                        )));
                    }
                    if let Some(other) = inner.acked_from.insert(prev, t.value) {
                        note(Err(self.shared.violation(
                            ViolationKind::LostWrite,
                            format!("one acknowledged CAS from index {prev} (value={other})"),
                            format!("a second one, {}", describe(Some(resp))),
                        )));
                    }
                    if !inner.acked_values.insert(t.value) {
                        note(Err(self.shared.violation(
                            ViolationKind::LostWrite,
                            format!("value={} acknowledged once", t.value),
                            format!("acknowledged again, {}", describe(Some(resp))),
                        )));
                    }
                }
            }
            note(self.shared.see(&mut inner, resp));
            first
        };
        let own = self.advance(Some(resp));
        first.and(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: i64, i: u64) -> Option<State> {
        Some(State::new(v, i))
    }

    /// Two clients on one key: a creates 0@1, both read it.
    fn two_clients() -> (Arc<SharedKey>, SharedView, SharedView) {
        let key = SharedKey::new("k");
        let (mut a, mut b) = (SharedView::new(key.clone()), SharedView::new(key.clone()));
        a.observe_read(None).unwrap();
        let t = a.begin_write(None, 0);
        a.write_acked(t, State::new(0, 1)).unwrap();
        b.observe_read(s(0, 1)).unwrap();
        (key, a, b)
    }

    #[test]
    fn racing_increments_one_wins_and_the_count_adds_up() {
        let (key, mut a, mut b) = two_clients();
        let ta = a.begin_write(Some(1), 1);
        let tb = b.begin_write(Some(1), 1);
        a.write_acked(ta, State::new(1, 2)).unwrap();
        b.write_rejected(tb);
        b.observe_read(s(1, 2)).unwrap();
        let tb = b.begin_write(Some(2), 2);
        b.write_unknown(tb);
        key.check_final(s(2, 3)).unwrap();
        let f = key.figures();
        assert_eq!(
            (f.increments_sent, f.acknowledged, f.rejected, f.unknown),
            (3, 1, 1, 1)
        );
        assert_eq!(f.final_value, Some(2));
        assert_eq!(f.failed_but_applied, 1);
        assert_eq!(f.creates_acknowledged, 1);
    }

    #[test]
    fn two_successes_from_one_version_are_a_lost_update() {
        let (_, mut a, mut b) = two_clients();
        let ta = a.begin_write(Some(1), 1);
        let tb = b.begin_write(Some(1), 1);
        a.write_acked(ta, State::new(1, 2)).unwrap();
        let v = b.write_acked(tb, State::new(1, 3)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
        assert!(v.expected.contains("from index 1"), "{v}");
    }

    #[test]
    fn a_second_create_is_a_lost_write() {
        let (_, _, mut b) = two_clients();
        let t = b.begin_write(None, 0);
        let v = b.write_acked(t, State::new(0, 5)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
    }

    #[test]
    fn one_index_with_two_values_is_unexpected() {
        let (_, _, mut b) = two_clients();
        let v = b.observe_read(s(7, 1)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn a_client_going_back_is_a_stale_read() {
        let (_, mut a, _) = two_clients();
        let t = a.begin_write(Some(1), 1);
        a.write_acked(t, State::new(1, 2)).unwrap();
        let v = a.observe_read(s(0, 1)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::StaleRead);
        let v = a.observe_read(None).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
    }

    #[test]
    fn final_value_below_the_acknowledged_is_a_lost_write() {
        let (key, mut a, _) = two_clients();
        let t = a.begin_write(Some(1), 1);
        a.write_acked(t, State::new(1, 2)).unwrap();
        let v = key.check_final(s(0, 1)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
        assert!(v.expected.contains("[1, 1]"), "{v}");
        assert!(key.check_final(None).is_err());
    }

    #[test]
    fn final_value_above_acknowledged_plus_unknown_is_unexpected() {
        let (key, mut a, _) = two_clients();
        // refused, yet applied
        let t = a.begin_write(Some(1), 1);
        a.write_rejected(t);
        let v = key.check_final(s(1, 2)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn untouched_key_may_be_missing_at_the_end() {
        let key = SharedKey::new("k");
        key.check_final(None).unwrap();
        assert_eq!(key.figures().final_value, None);
    }
}
