//! Consistency checker for keys shared by many clients (`--keys shared:N`): every connection of
//! every node races on the same few keys with read → create-if-missing → CAS increment.
//!
//! With many writers nobody knows what a key must hold at a given moment, so the single-writer
//! rules of [`crate::checker`] do not apply. Instead every operation on a shared key is
//! recorded as it happens, in the history's own events ([`perseus_history::Event`], the lines
//! of `history.jsonl`), and after the run, with the value read then as a last read after
//! everything, the key's history is judged by the testbed's linearizability checker
//! ([`perseus_history`]: every write here is a compare-and-set on a version, so its version
//! chain, in O(n log n)). What it finds on such a key:
//! - **a lost update**: two acknowledged writes from the same version, or a second
//!   acknowledged create ([`ViolationKind::LostWrite`]);
//! - **one value per version**: a read or a write's base that shows a value no write made at
//!   that version ([`ViolationKind::UnexpectedValue`]);
//! - **real time**: no operation sees (reads) or makes (writes) an older state than one an
//!   operation that had finished before it began saw or made — a client going back in time
//!   is one case ([`ViolationKind::StaleRead`], [`ViolationKind::IndexBackwards`] for writes);
//! - **the final count adds up**: the value read after the run lies in `[A, A + U]`, where `A`
//!   counts acknowledged increments and `U` increments whose outcome is unknown: below `A`
//!   the last read is older than an acknowledged write, above `A + U` it shows a version no
//!   write that may have taken effect made.
//!
//! `F - A` is the number of increments that took effect although their client was not told so
//! ("failed but applied"): the figure a store that resolves unknown outcomes drives to zero.
//! Memory: one compact operation per request (about 100 bytes), for the run's length.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use perseus_history::check::{OpView, ViolationKind as Anomaly};
use perseus_history::ops::Builder;
use perseus_history::{CheckOptions, Event, Func};
use perseus_model::Consistency;

use crate::checker::{describe, State, Violation, ViolationKind};

pub use perseus_model::load::KeyFigures;

#[derive(Default)]
struct Inner {
    /// The key's operations so far, paired from their events.
    history: Builder,
    lines: u64,
    /// Which node and logical client each process's operations went through (to attribute
    /// a violation, and to tell a session going back from one behind the others).
    node_of: HashMap<u64, (usize, usize)>,
    /// A history that could not be paired (a bug of the recording, not of the store).
    broken: Option<String>,
    increments_sent: u64,
    acknowledged: u64,
    rejected: u64,
    creates_acknowledged: u64,
    final_value: Option<i64>,
}

/// The shared record of one key, held by every client that races on it.
pub struct SharedKey {
    key: String,
    /// What the system promises its reads (ZooKeeper: sequential consistency).
    promise: Consistency,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey").field("key", &self.key).finish()
    }
}

impl SharedKey {
    pub fn new(key: impl Into<String>, promise: Consistency) -> Arc<Self> {
        Arc::new(SharedKey {
            key: key.into(),
            promise,
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

    /// Records one event of this key's history, of an operation of logical client `client`
    /// sent through `node`.
    pub fn record(&self, node: usize, client: usize, e: &Event) {
        let mut inner = self.lock();
        inner.lines += 1;
        let line = inner.lines;
        inner.node_of.insert(e.process, (node, client));
        if inner.broken.is_none() {
            if let Err(err) = inner.history.push(line, e.clone()) {
                inner.broken = Some(err.to_string());
            }
        }
    }

    /// The value read after the run (for the figures; the read itself is [`record`]ed).
    ///
    /// [`record`]: SharedKey::record
    pub fn set_final(&self, read: Option<State>) {
        if let Some(s) = read {
            let mut inner = self.lock();
            inner.final_value = Some(inner.final_value.map_or(s.value, |v| v.max(s.value)));
        }
    }

    /// Judges the key's history (once, after the run): each violation with the node of the
    /// last operation that shows it.
    pub fn check(&self) -> Vec<(usize, Violation)> {
        let (history, node_of, broken) = {
            let mut inner = self.lock();
            (
                std::mem::take(&mut inner.history).finish(),
                std::mem::take(&mut inner.node_of),
                inner.broken.take(),
            )
        };
        if let Some(err) = broken {
            log::error!("the history of {} could not be checked: {err}", self.key);
            return Vec::new();
        }
        let report = perseus_history::check(&history, CheckOptions::default());
        let client = |o: &OpView| node_of.get(&o.process).map(|&(_, c)| c);
        let mut allowed = 0;
        let found: Vec<(usize, Violation)> = report
            .violations
            .iter()
            .filter(|v| {
                // Sequential consistency lets a session read behind other sessions' writes,
                // never behind what it saw or wrote itself: the read and the newer state
                // finished before it must be the same client's to count.
                let behind_others = self.promise == Consistency::Sequential
                    && v.kind == Anomaly::StaleRead
                    && v.ops.len() >= 2
                    && {
                        // the witness: the read, the newer state's operation, and the
                        // write of the state the read returned (same version as the read)
                        let read = v.ops.iter().rfind(|o| o.f == Func::Read);
                        let newer = read.and_then(|r| {
                            v.ops
                                .iter()
                                .find(|o| o.line != r.line && o.version != r.version)
                        });
                        read.and_then(client) != newer.and_then(client)
                    };
                allowed += usize::from(behind_others);
                !behind_others
            })
            .map(|v| {
                let node = v
                    .ops
                    .iter()
                    .max_by_key(|o| o.line)
                    .and_then(|o| node_of.get(&o.process).map(|&(n, _)| n))
                    .unwrap_or(0);
                let kind = match v.kind {
                    Anomaly::StaleRead => ViolationKind::StaleRead,
                    Anomaly::LostWrite | Anomaly::DuplicateVersion => ViolationKind::LostWrite,
                    Anomaly::WriteOutOfOrder => ViolationKind::IndexBackwards,
                    Anomaly::PhantomRead | Anomaly::NotLinearizable => {
                        ViolationKind::UnexpectedValue
                    }
                };
                let got: Vec<String> = v.ops.iter().map(OpView::describe).collect();
                let violation = Violation {
                    key: self.key.clone(),
                    kind,
                    expected: v.message.clone(),
                    got: got.join("; "),
                };
                (node, violation)
            })
            .collect();
        if allowed > 0 {
            log::info!(
                "{}: {allowed} reads behind another session's write (allowed: the system promises \
                 sequential consistency)",
                self.key
            );
        }
        found
    }

    /// The figures so far (after [`SharedKey::set_final`], with the final value).
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

/// One client's handle on a shared key: it records the client's operations and counts its
/// increments; the key's history is judged after the run ([`SharedKey::check`]).
#[derive(Debug)]
pub struct SharedView {
    shared: Arc<SharedKey>,
    node: usize,
    client: usize,
}

impl SharedView {
    /// Logical client `client`'s handle, through `node`.
    pub fn new(shared: Arc<SharedKey>, node: usize, client: usize) -> Self {
        SharedView {
            shared,
            node,
            client,
        }
    }

    pub fn key(&self) -> &str {
        self.shared.key()
    }

    /// Records one event of this client's operations on the key.
    pub fn record(&self, e: &Event) {
        self.shared.record(self.node, self.client, e);
    }

    /// A read returned something that is not an integer value.
    pub fn observe_garbage(&mut self, raw: &str) -> Violation {
        Violation {
            key: self.shared.key.clone(),
            kind: ViolationKind::UnexpectedValue,
            expected: "an integer".into(),
            got: format!("unparsable value {raw:?}"),
        }
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

    /// The write was acknowledged with the state the store returned; an answer naming
    /// another value than the one written is wrong whatever the order of operations.
    pub fn write_acked(&mut self, t: SharedToken, resp: State) -> Result<(), Violation> {
        let mut inner = self.shared.lock();
        match t.prev {
            None => inner.creates_acknowledged += 1,
            Some(_) => inner.acknowledged += 1,
        }
        if resp.value != t.value {
            return Err(Violation {
                key: self.shared.key.clone(),
                kind: ViolationKind::UnexpectedValue,
                expected: format!("ack of value={}", t.value),
                got: describe(Some(resp)),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perseus_history::EventKind;

    /// Client operations on one shared key, on a clock that ticks per event.
    struct Clients {
        key: Arc<SharedKey>,
        t: u64,
    }

    impl Clients {
        fn new() -> Self {
            Clients {
                key: SharedKey::new("k", Consistency::Linearizable),
                t: 0,
            }
        }

        fn tick(&mut self) -> u64 {
            self.t += 10;
            self.t
        }

        /// Process `p` reads `seen` (value, version).
        fn read(&mut self, p: u64, seen: Option<(i64, u64)>) -> &mut Self {
            let t = self.tick();
            self.key
                .record(0, p as usize, &Event::invoke(p, "k", Func::Read, t));
            let t = self.tick();
            self.key.record(
                0,
                p as usize,
                &Event {
                    value: seen.map(|s| s.0),
                    version: seen.map(|s| s.1),
                    ..Event::complete(EventKind::Ok, p, "k", Func::Read, t)
                },
            );
            self
        }

        /// Process `p` writes `value` from `prev` (None: a create); `made`: the version
        /// acknowledged, or `Err(true)` refused, `Err(false)` unknown.
        fn write(
            &mut self,
            p: u64,
            prev: Option<(i64, u64)>,
            value: i64,
            made: Result<u64, bool>,
        ) -> &mut Self {
            let f = if prev.is_some() {
                Func::Cas
            } else {
                Func::Create
            };
            let t = self.tick();
            self.key.record(
                1,
                p as usize,
                &Event {
                    value: Some(value),
                    prev_value: prev.map(|s| s.0),
                    prev_version: prev.map(|s| s.1),
                    ..Event::invoke(p, "k", f, t)
                },
            );
            let t = self.tick();
            let done = match made {
                Ok(v) => Event {
                    value: Some(value),
                    version: Some(v),
                    ..Event::complete(EventKind::Ok, p, "k", f, t)
                },
                Err(true) => Event::complete(EventKind::Fail, p, "k", f, t),
                Err(false) => Event::complete(EventKind::Info, p, "k", f, t),
            };
            self.key.record(1, p as usize, &done);
            self
        }

        fn kinds(&self) -> Vec<ViolationKind> {
            self.key.check().into_iter().map(|(_, v)| v.kind).collect()
        }
    }

    #[test]
    fn racing_increments_one_wins_and_the_count_adds_up() {
        let mut c = Clients::new();
        c.read(1, None)
            .write(1, None, 0, Ok(1))
            .read(2, Some((0, 1)))
            .write(1, Some((0, 1)), 1, Ok(2))
            .write(2, Some((0, 1)), 1, Err(true))
            .read(2, Some((1, 2)))
            .write(2, Some((1, 2)), 2, Err(false))
            .read(3, Some((2, 3)));
        assert_eq!(c.kinds(), vec![]);
        let mut view = SharedView::new(c.key.clone(), 0, 0);
        let t = view.begin_write(Some(1), 1);
        view.write_acked(t, State::new(1, 2)).unwrap();
        let t = view.begin_write(Some(1), 1);
        view.write_rejected(t);
        let t = view.begin_write(Some(2), 2);
        view.write_unknown(t);
        c.key.set_final(Some(State::new(2, 3)));
        let f = c.key.figures();
        assert_eq!(
            (f.increments_sent, f.acknowledged, f.rejected, f.unknown),
            (3, 1, 1, 1)
        );
        assert_eq!((f.final_value, f.failed_but_applied), (Some(2), 1));
    }

    #[test]
    fn two_successes_from_one_version_are_a_lost_update() {
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Ok(2))
            .write(2, Some((0, 1)), 1, Ok(3));
        assert!(c.kinds().contains(&ViolationKind::LostWrite));
    }

    #[test]
    fn a_second_create_is_a_lost_write() {
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1)).write(2, None, 0, Ok(5));
        assert!(c.kinds().contains(&ViolationKind::LostWrite));
    }

    #[test]
    fn one_index_with_two_values_is_unexpected() {
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1)).read(2, Some((7, 1)));
        assert_eq!(c.kinds(), vec![ViolationKind::UnexpectedValue]);
    }

    #[test]
    fn going_back_in_time_is_a_stale_read() {
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Ok(2))
            .read(2, Some((0, 1)));
        assert_eq!(c.kinds(), vec![ViolationKind::StaleRead]);
        // the key missing after it was created
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1)).read(2, None);
        assert_eq!(c.kinds(), vec![ViolationKind::StaleRead]);
    }

    #[test]
    fn sequential_consistency_allows_reading_behind_others_not_behind_oneself() {
        let mut c = Clients::new();
        c.key = SharedKey::new("k", Consistency::Sequential);
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Ok(2))
            .read(2, Some((0, 1)));
        assert_eq!(c.kinds(), vec![]);
        let mut c = Clients::new();
        c.key = SharedKey::new("k", Consistency::Sequential);
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Ok(2))
            .read(1, Some((0, 1)));
        assert_eq!(c.kinds(), vec![ViolationKind::StaleRead]);
    }

    #[test]
    fn final_value_below_the_acknowledged_is_caught() {
        // the last read after everything shows version 1: the acknowledged increment is lost
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Ok(2))
            .read(9, Some((0, 1)));
        assert_eq!(c.kinds(), vec![ViolationKind::StaleRead]);
    }

    #[test]
    fn a_refused_write_that_took_effect_is_caught() {
        let mut c = Clients::new();
        c.write(1, None, 0, Ok(1))
            .write(1, Some((0, 1)), 1, Err(true))
            .read(9, Some((1, 2)));
        assert_eq!(c.kinds(), vec![ViolationKind::UnexpectedValue]);
    }

    #[test]
    fn an_ack_of_another_value_is_unexpected() {
        let key = SharedKey::new("k", Consistency::Linearizable);
        let mut view = SharedView::new(key, 0, 0);
        let t = view.begin_write(Some(1), 1);
        let v = view.write_acked(t, State::new(7, 2)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn untouched_key_may_be_missing_at_the_end() {
        let mut c = Clients::new();
        c.read(9, None);
        assert_eq!(c.kinds(), vec![]);
        assert_eq!(c.key.figures().final_value, None);
    }
}
