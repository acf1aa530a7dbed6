//! Consistency checker for one key with a single writer (pure logic, no I/O).
//!
//! Every logical client owns its key, so it knows what the key must hold. The checker keeps:
//! - `current`: the last state of the key known for sure (value and modifiedIndex, or missing),
//!   learned from a read or from an acknowledged write;
//! - `pending`: writes whose outcome is unknown (timeout, lost connection, 5xx). A pending write
//!   may take effect at any later time — even after a read that did not show it (a paused node
//!   can process a stale request after it resumes) — but only while the key's index still equals
//!   the index the write was conditioned on (`prev`, or "missing" for a create).
//!
//! Rules:
//! - a read is fine if it shows `current`, or the result of applying one pending write that
//!   applies to `current` (same value, strictly greater index); it then becomes `current`, and
//!   pending writes that can no longer apply are dropped;
//! - an acknowledged write must return the value written with an index greater than before;
//! - a definite rejection (412 compare failed / key exists, 404 on CAS) changes nothing;
//! - anything else is a [`Violation`]. modifiedIndex is only required to grow (etcd's index is
//!   cluster-wide, so it may jump by more than one).
//!
//! Violation kinds: the key vanished or a value below an acknowledged write came back
//! ([`ViolationKind::LostWrite`]); an older value than one already read, but not below any
//! acknowledged write ([`ViolationKind::StaleRead`]); an index lower than a known one with a value
//! that is not older ([`ViolationKind::IndexBackwards`]); a value or index nobody wrote
//! ([`ViolationKind::UnexpectedValue`]). After a violation the checker adopts what it read, so
//! one fault is reported once rather than on every following read.

/// A state of the key: its integer value and its modifiedIndex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub value: i64,
    pub index: u64,
}

impl State {
    pub fn new(value: i64, index: u64) -> Self {
        State { value, index }
    }
}

/// Renders an optional state the way violations report it.
pub fn describe(s: Option<State>) -> String {
    match s {
        Some(s) => format!("value={} index={}", s.value, s.index),
        None => "missing".to_string(),
    }
}

/// The kind of a consistency violation and the violation itself (shared with the records).
pub use perseus_model::{Violation, ViolationKind};

/// A write whose outcome is not known (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    /// `None` for a create (`prevExist=false`), `Some(i)` for a CAS on `prevIndex=i`.
    prev: Option<u64>,
    value: i64,
    /// How many identical writes are outstanding (a retry of the same state repeats them).
    count: u32,
}

impl Pending {
    fn applies_to(&self, cur: Option<State>) -> bool {
        match (self.prev, cur) {
            (None, None) => true,
            (Some(p), Some(c)) => p == c.index,
            _ => false,
        }
    }
}

/// Handle of a write announced with [`KeyChecker::begin_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteToken {
    prev: Option<u64>,
    value: i64,
}

/// The checker of one key.
#[derive(Debug, Clone)]
pub struct KeyChecker {
    key: String,
    current: Option<State>,
    /// The highest value of an acknowledged write (values only grow with a single writer).
    acked_value: Option<i64>,
    pending: Vec<Pending>,
    violations: u64,
}

impl KeyChecker {
    pub fn new(key: impl Into<String>) -> Self {
        KeyChecker {
            key: key.into(),
            current: None,
            acked_value: None,
            pending: Vec::new(),
            violations: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The last state known for sure.
    pub fn current(&self) -> Option<State> {
        self.current
    }

    /// Number of distinct writes whose outcome is still open.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Violations found so far on this key.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    fn expected_desc(&self) -> String {
        let mut s = describe(self.current);
        let live: Vec<String> = self
            .pending
            .iter()
            .filter(|p| p.applies_to(self.current))
            .map(|p| match p.prev {
                None => format!("create value={}", p.value),
                Some(i) => format!("cas prevIndex={} value={}", i, p.value),
            })
            .collect();
        if !live.is_empty() {
            s.push_str(" or pending ");
            s.push_str(&live.join(" | "));
        }
        s
    }

    fn violation(&mut self, kind: ViolationKind, expected: String, got: String) -> Violation {
        self.violations += 1;
        Violation {
            key: self.key.clone(),
            kind,
            expected,
            got,
        }
    }

    fn set_current(&mut self, s: Option<State>) {
        self.current = s;
        let cur = self.current;
        self.pending.retain(|p| p.applies_to(cur));
    }

    /// Checks a successful read (`None` = key not found).
    pub fn observe_read(&mut self, read: Option<State>) -> Result<(), Violation> {
        let cur = self.current;
        if read == cur {
            self.set_current(read);
            return Ok(());
        }
        if let Some(r) = read {
            let via_pending = self.pending.iter().any(|p| {
                p.applies_to(cur) && p.value == r.value && cur.is_none_or(|c| r.index > c.index)
            });
            if via_pending {
                self.set_current(read);
                return Ok(());
            }
        }
        let kind = match (cur, read) {
            (Some(_), None) => ViolationKind::LostWrite,
            (None, Some(_)) => ViolationKind::UnexpectedValue,
            (Some(c), Some(r)) => {
                if r.value < c.value {
                    if self.acked_value.is_some_and(|a| r.value < a) {
                        ViolationKind::LostWrite
                    } else {
                        ViolationKind::StaleRead
                    }
                } else if r.index < c.index {
                    ViolationKind::IndexBackwards
                } else {
                    ViolationKind::UnexpectedValue
                }
            }
            (None, None) => unreachable!("equal states handled above"),
        };
        let v = self.violation(kind, self.expected_desc(), describe(read));
        self.set_current(read);
        Err(v)
    }

    /// A read returned something that is not an integer value.
    pub fn observe_garbage(&mut self, raw: &str) -> Violation {
        let expected = self.expected_desc();
        self.violation(
            ViolationKind::UnexpectedValue,
            expected,
            format!("unparsable value {raw:?}"),
        )
    }

    /// Announces a write before it is sent: from now on its effect is allowed, until it is
    /// acknowledged, rejected, or made impossible by a later state.
    /// `prev` is `None` for a create and the index read for a CAS.
    pub fn begin_write(&mut self, prev: Option<u64>, value: i64) -> WriteToken {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.prev == prev && p.value == value)
        {
            p.count += 1;
        } else {
            self.pending.push(Pending {
                prev,
                value,
                count: 1,
            });
        }
        WriteToken { prev, value }
    }

    /// The write was definitely not applied (412 compare failed / key exists, 404 on CAS).
    pub fn write_rejected(&mut self, t: WriteToken) {
        if let Some(pos) = self
            .pending
            .iter()
            .position(|p| p.prev == t.prev && p.value == t.value)
        {
            if self.pending[pos].count > 1 {
                self.pending[pos].count -= 1;
            } else {
                self.pending.remove(pos);
            }
        }
    }

    /// The outcome of the write is unknown: it stays pending (nothing to do, kept for clarity).
    pub fn write_unknown(&mut self, _t: WriteToken) {}

    /// The write was acknowledged with the state the store returned.
    pub fn write_acked(&mut self, t: WriteToken, resp: State) -> Result<(), Violation> {
        let cur = self.current;
        let result = if resp.value != t.value {
            let exp = format!("ack of value={}", t.value);
            Err(self.violation(ViolationKind::UnexpectedValue, exp, describe(Some(resp))))
        } else if let Some(c) = cur.filter(|c| resp.index <= c.index) {
            let exp = format!("ack with index > {}", c.index);
            Err(self.violation(ViolationKind::IndexBackwards, exp, describe(Some(resp))))
        } else if t.prev.is_none() && cur.is_some() {
            // A create succeeded although the key existed: the key had been lost.
            let exp = format!("create rejected, key holds {}", describe(cur));
            Err(self.violation(ViolationKind::LostWrite, exp, describe(Some(resp))))
        } else {
            Ok(())
        };
        self.acked_value = Some(self.acked_value.map_or(t.value, |a| a.max(t.value)));
        self.set_current(Some(resp));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: i64, i: u64) -> Option<State> {
        Some(State::new(v, i))
    }

    /// Fresh key, created with 0 at index 10 and incremented to 1 at index 11 (all acked).
    fn at_one() -> KeyChecker {
        let mut c = KeyChecker::new("k");
        c.observe_read(None).unwrap();
        let t = c.begin_write(None, 0);
        c.write_acked(t, State::new(0, 10)).unwrap();
        let t = c.begin_write(Some(10), 1);
        c.write_acked(t, State::new(1, 11)).unwrap();
        c
    }

    #[test]
    fn normal_loop_has_no_violation() {
        let mut c = at_one();
        for k in 1..100i64 {
            let idx = 10 + k as u64;
            c.observe_read(s(k, idx)).unwrap();
            let t = c.begin_write(Some(idx), k + 1);
            c.write_acked(t, State::new(k + 1, idx + 1)).unwrap();
        }
        assert_eq!(c.violations(), 0);
        assert_eq!(c.pending_len(), 0);
    }

    #[test]
    fn index_may_jump_by_more_than_one() {
        let mut c = at_one();
        c.observe_read(s(1, 11)).unwrap();
        let t = c.begin_write(Some(11), 2);
        c.write_acked(t, State::new(2, 500)).unwrap();
        c.observe_read(s(2, 500)).unwrap();
    }

    #[test]
    fn lost_write_key_vanished() {
        let mut c = at_one();
        let v = c.observe_read(None).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
        assert_eq!(v.key, "k");
        assert_eq!(v.got, "missing");
        assert!(v.expected.contains("value=1 index=11"), "{}", v.expected);
    }

    #[test]
    fn lost_write_value_went_back_below_ack() {
        let mut c = at_one();
        // acked 1@11, the store shows the previous state 0@10 again
        let v = c.observe_read(s(0, 10)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
        assert_eq!(v.got, "value=0 index=10");
        // reported once: the checker resynchronises on what it read
        c.observe_read(s(0, 10)).unwrap();
        assert_eq!(c.violations(), 1);
    }

    #[test]
    fn lost_write_value_back_at_new_index() {
        let mut c = at_one();
        let v = c.observe_read(s(0, 12)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
    }

    #[test]
    fn stale_read_after_read_revealed_newer_state() {
        let mut c = at_one();
        // CAS 1@11 -> 2 times out; a read shows it applied at 12
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        c.observe_read(s(2, 12)).unwrap();
        // then a read goes back to 1@11: older than a read, not below an ack
        let v = c.observe_read(s(1, 11)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::StaleRead);
    }

    #[test]
    fn stale_read_when_only_reads_saw_newer_state() {
        // writes all indeterminate, resolved by reads; then a read goes back
        let mut c = KeyChecker::new("k");
        let t = c.begin_write(None, 0);
        c.write_unknown(t);
        c.observe_read(s(0, 3)).unwrap();
        let t = c.begin_write(Some(3), 1);
        c.write_unknown(t);
        c.observe_read(s(1, 4)).unwrap();
        let v = c.observe_read(s(0, 3)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::StaleRead);
    }

    #[test]
    fn indeterminate_write_resolved_as_applied() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        c.observe_read(s(2, 14)).unwrap();
        assert_eq!(c.current(), s(2, 14));
        assert_eq!(c.pending_len(), 0);
    }

    #[test]
    fn indeterminate_write_resolved_as_not_applied() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        c.observe_read(s(1, 11)).unwrap();
        // the next iteration writes the same increment again and it is acked
        let t = c.begin_write(Some(11), 2);
        c.write_acked(t, State::new(2, 12)).unwrap();
        assert_eq!(c.pending_len(), 0);
        c.observe_read(s(2, 12)).unwrap();
        // the old pending write can no longer show up
        let v = c.observe_read(s(2, 13)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn indeterminate_write_resolved_late_after_intervening_read() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        // a read does not show it yet (the request is stuck in a paused node)
        c.observe_read(s(1, 11)).unwrap();
        assert_eq!(c.pending_len(), 1);
        // the retry is rejected: the stuck write got applied in between
        let t2 = c.begin_write(Some(11), 2);
        c.write_rejected(t2);
        assert_eq!(c.pending_len(), 1, "the first write is still pending");
        // later it shows up
        c.observe_read(s(2, 15)).unwrap();
        assert_eq!(c.violations(), 0);
    }

    #[test]
    fn pending_write_cannot_apply_after_index_moved() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        c.observe_read(s(1, 11)).unwrap();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        c.observe_read(s(2, 12)).unwrap();
        let t = c.begin_write(Some(12), 3);
        c.write_acked(t, State::new(3, 13)).unwrap();
        // a value 2 reappearing now (late application of an old write) is impossible
        let v = c.observe_read(s(2, 14)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
    }

    #[test]
    fn pending_with_wrong_value_is_unexpected() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        let v = c.observe_read(s(7, 12)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
        assert!(v.expected.contains("pending cas prevIndex=11 value=2"));
    }

    #[test]
    fn pending_value_at_same_index_is_a_violation() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_unknown(t);
        let v = c.observe_read(s(2, 11)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn index_going_backwards_on_read() {
        let mut c = at_one();
        c.observe_read(s(1, 11)).unwrap();
        let v = c.observe_read(s(1, 9)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::IndexBackwards);
        assert_eq!(v.got, "value=1 index=9");
    }

    #[test]
    fn index_going_backwards_on_ack() {
        let mut c = at_one();
        c.observe_read(s(1, 11)).unwrap();
        let t = c.begin_write(Some(11), 2);
        let v = c.write_acked(t, State::new(2, 11)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::IndexBackwards);
        let t = c.begin_write(Some(11), 3);
        let v = c.write_acked(t, State::new(3, 5)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::IndexBackwards);
    }

    #[test]
    fn ack_with_other_value_is_unexpected() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        let v = c.write_acked(t, State::new(3, 12)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
    }

    #[test]
    fn value_from_nowhere_on_fresh_key() {
        let mut c = KeyChecker::new("k");
        let v = c.observe_read(s(42, 1)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
        assert_eq!(v.expected, "missing");
    }

    #[test]
    fn first_create_racing_with_retry() {
        let mut c = KeyChecker::new("k");
        c.observe_read(None).unwrap();
        // create times out
        let t = c.begin_write(None, 0);
        c.write_unknown(t);
        // read shows nothing yet
        c.observe_read(None).unwrap();
        // create again -> 412 key exists (the first one landed meanwhile)
        let t = c.begin_write(None, 0);
        c.write_rejected(t);
        // read shows 0
        c.observe_read(s(0, 7)).unwrap();
        assert_eq!(c.violations(), 0);
        assert_eq!(c.pending_len(), 0);
        // and the loop goes on
        let t = c.begin_write(Some(7), 1);
        c.write_acked(t, State::new(1, 8)).unwrap();
    }

    #[test]
    fn create_acked_when_key_existed_is_lost_write() {
        let mut c = at_one();
        // the store reports the key missing (violation) ...
        assert!(c.observe_read(None).is_err());
        // ... and after resync a create is fine again
        let t = c.begin_write(None, 0);
        c.write_acked(t, State::new(0, 20)).unwrap();
        assert_eq!(c.violations(), 1);
    }

    #[test]
    fn acked_create_over_known_key_is_violation() {
        let mut c = at_one();
        let t = c.begin_write(None, 0);
        let v = c.write_acked(t, State::new(0, 30)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::LostWrite);
    }

    #[test]
    fn garbage_value_is_unexpected() {
        let mut c = at_one();
        let v = c.observe_garbage("abc");
        assert_eq!(v.kind, ViolationKind::UnexpectedValue);
        assert!(v.got.contains("abc"));
        assert_eq!(c.violations(), 1);
    }

    #[test]
    fn rejected_write_is_no_op() {
        let mut c = at_one();
        let t = c.begin_write(Some(11), 2);
        c.write_rejected(t);
        assert_eq!(c.pending_len(), 0);
        // so its value may not show up
        assert!(c.observe_read(s(2, 12)).is_err());
    }

    #[test]
    fn violation_display_names_key_and_states() {
        let mut c = at_one();
        let v = c.observe_read(None).unwrap_err();
        assert_eq!(
            v.to_string(),
            "lost-write key=k expected=[value=1 index=11] got=[missing]"
        );
    }
}
