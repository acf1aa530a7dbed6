//! Events paired into operations, grouped by key: what the checkers work on.
//!
//! An invocation is closed by the next completion of the same process. At the end of the
//! history, an invocation still open counts as `info` (unknown), as Jepsen counts it. A
//! completion with no open invocation, or a second invocation while one is open, is an error:
//! the history was not written by one client per process.

use std::collections::HashMap;
use std::io::BufRead;

use crate::event::{for_each_event, Event, EventKind, Func, HistoryError};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// Unknown: it may take effect at any time after its call, or never.
    Info,
}

/// One operation, compactly (a million of them fit in well under 100 MB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub process: u64,
    pub f: Func,
    pub outcome: Outcome,
    /// Invocation time (ns since the start).
    pub call: u64,
    /// Completion time; `None` for `info` (it may take effect at any later time).
    pub ret: Option<u64>,
    /// Write, cas, create: the value written. Read: the value read (`None`: missing).
    pub value: Option<i64>,
    /// The version the store returned with an `ok`.
    pub version: Option<u64>,
    /// Cas: the version compared with and the value read at it.
    pub prev_version: Option<u64>,
    pub prev_value: Option<i64>,
    /// The history line of the invocation (1-based), to find it again.
    pub line: u64,
}

/// The operations of a history, per key, each key's in invocation order.
#[derive(Debug, Default)]
pub struct History {
    pub keys: Vec<String>,
    pub ops: Vec<Vec<Op>>,
}

/// Pairs events into operations.
#[derive(Default)]
pub struct Builder {
    keys: HashMap<String, usize>,
    history: History,
    /// Per process: (key index, the invocation's operation).
    open: HashMap<u64, (usize, Op)>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    fn key_index(&mut self, key: &str) -> usize {
        if let Some(&k) = self.keys.get(key) {
            return k;
        }
        let k = self.history.keys.len();
        self.keys.insert(key.to_string(), k);
        self.history.keys.push(key.to_string());
        self.history.ops.push(Vec::new());
        k
    }

    /// Takes the next event (`line` is its line number, for errors).
    pub fn push(&mut self, line: u64, e: Event) -> Result<(), HistoryError> {
        let err = |message: String| HistoryError::Line { line, message };
        match e.kind {
            EventKind::Invoke => {
                if self.open.contains_key(&e.process) {
                    return Err(err(format!(
                        "process {} invokes while its last operation is still open",
                        e.process
                    )));
                }
                let k = self.key_index(&e.key);
                let op = Op {
                    process: e.process,
                    f: e.f,
                    outcome: Outcome::Info,
                    call: e.time,
                    ret: None,
                    value: if e.f.is_write() { e.value } else { None },
                    version: None,
                    prev_version: e.prev_version,
                    prev_value: e.prev_value,
                    line,
                };
                self.open.insert(e.process, (k, op));
            }
            kind => {
                let Some((k, mut op)) = self.open.remove(&e.process) else {
                    return Err(err(format!(
                        "process {} completes an operation it never invoked",
                        e.process
                    )));
                };
                if op.f != e.f || self.history.keys[k] != e.key {
                    return Err(err(format!(
                        "process {} completes {} on {:?} but invoked {} on {:?}",
                        e.process,
                        e.f.as_str(),
                        e.key,
                        op.f.as_str(),
                        self.history.keys[k]
                    )));
                }
                if e.time < op.call {
                    return Err(err("completes before its invocation".into()));
                }
                match kind {
                    EventKind::Ok => {
                        op.outcome = Outcome::Ok;
                        op.ret = Some(e.time);
                        op.version = e.version;
                        if op.f == Func::Read {
                            op.value = e.value;
                        }
                    }
                    EventKind::Fail => {
                        op.outcome = Outcome::Fail;
                        op.ret = Some(e.time);
                    }
                    _ => {}
                }
                self.history.ops[k].push(op);
            }
        }
        Ok(())
    }

    /// The history; operations still open become `info`.
    pub fn finish(mut self) -> History {
        let mut open: Vec<(usize, Op)> = self.open.drain().map(|(_, v)| v).collect();
        open.sort_by_key(|(_, op)| op.line);
        for (k, op) in open {
            self.history.ops[k].push(op);
        }
        for ops in &mut self.history.ops {
            ops.sort_by_key(|o| (o.call, o.line));
        }
        self.history
    }
}

impl History {
    /// Reads a JSON-lines history.
    pub fn read(input: impl BufRead) -> Result<History, HistoryError> {
        let mut b = Builder::new();
        for_each_event(input, |n, e| b.push(n, e))?;
        Ok(b.finish())
    }

    /// From events in memory.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Result<History, HistoryError> {
        let mut b = Builder::new();
        for (i, e) in events.into_iter().enumerate() {
            b.push(i as u64 + 1, e)?;
        }
        Ok(b.finish())
    }

    /// Operations over all keys.
    pub fn len(&self) -> usize {
        self.ops.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_leaves_open_ones_unknown() {
        let events = vec![
            Event::invoke(1, "k", Func::Read, 10),
            Event {
                value: Some(4),
                ..Event::invoke(2, "k", Func::Write, 11)
            },
            Event {
                value: Some(3),
                version: Some(7),
                ..Event::complete(EventKind::Ok, 1, "k", Func::Read, 20)
            },
        ];
        let h = History::from_events(events).unwrap();
        assert_eq!(h.keys, vec!["k"]);
        let ops = &h.ops[0];
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].outcome, ops[0].value, ops[0].ret),
            (Outcome::Ok, Some(3), Some(20))
        );
        assert_eq!((ops[1].outcome, ops[1].value), (Outcome::Info, Some(4)));
    }

    #[test]
    fn unmatched_completion_is_an_error() {
        let e = History::from_events(vec![Event::complete(EventKind::Ok, 1, "k", Func::Read, 1)])
            .unwrap_err();
        assert!(e.to_string().contains("never invoked"), "{e}");
        let e = History::from_events(vec![
            Event::invoke(1, "k", Func::Read, 1),
            Event::invoke(1, "k", Func::Read, 2),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("still open"), "{e}");
    }
}
