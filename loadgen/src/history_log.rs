//! The run's operation history (`--history FILE`): every operation's invocation and completion
//! streamed to disk as it happens, one JSON line each ([`perseus_history::Event`]), so memory
//! stays flat however long the run. Times are monotonic nanoseconds since the run's start.
//!
//! Processes: each logical client starts as its own process; after an operation of unknown
//! outcome it continues as a new one (the old one may still have that operation in flight,
//! as Jepsen counts it), so a process never has two operations open.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use perseus_history::{Event, EventKind, Func, HistoryWriter};

use crate::client::ClientError;

/// Where the workers record their operations (a no-op without a file).
pub struct HistoryLog {
    start: Instant,
    out: Option<Mutex<HistoryWriter<BufWriter<File>>>>,
    next_process: AtomicU64,
}

impl HistoryLog {
    /// A log that records nothing (process numbers are still handed out).
    pub fn disabled(start: Instant) -> Self {
        HistoryLog {
            start,
            out: None,
            next_process: AtomicU64::new(0),
        }
    }

    /// A log written to `path` (created or truncated).
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Self> {
        let f = File::create(path)?;
        Ok(HistoryLog {
            start,
            out: Some(Mutex::new(HistoryWriter::new(BufWriter::with_capacity(
                1 << 16,
                f,
            )))),
            next_process: AtomicU64::new(0),
        })
    }

    /// A fresh process number.
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether events are written (a file was given).
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Monotonic nanoseconds since the run's start: an event's time.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Writes one event (nothing without a file).
    pub fn record(&self, e: &Event) {
        let Some(out) = &self.out else { return };
        let mut w = match out.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        if let Err(err) = w.write(e) {
            log::error!("cannot write the history: {err}");
        }
    }

    /// Records an invocation (its time is now); `fill` sets the arguments.
    pub fn invoke(&self, process: u64, key: &str, f: Func, fill: impl FnOnce(&mut Event)) {
        if self.out.is_none() {
            return;
        }
        let mut e = Event::invoke(process, key, f, self.now());
        fill(&mut e);
        self.record(&e);
    }

    /// Records a completion (its time is now).
    pub fn complete(
        &self,
        kind: EventKind,
        process: u64,
        key: &str,
        f: Func,
        fill: impl FnOnce(&mut Event),
    ) {
        if self.out.is_none() {
            return;
        }
        let mut e = Event::complete(kind, process, key, f, self.now());
        fill(&mut e);
        self.record(&e);
    }

    /// Records the completion of an operation that failed with `e`: a read as `fail` (it
    /// changed nothing), a write as `info` (it may still take effect) unless the store said it
    /// did not apply it.
    pub fn failed(&self, process: u64, key: &str, f: Func, e: &ClientError) {
        self.complete(Self::failed_kind(f, e), process, key, f, |ev| {
            ev.error = Some(short(e));
        });
    }

    /// How an operation that failed with `e` completes: a read `fail`, a write `fail` when the
    /// store said it did not apply it, else `info`.
    pub fn failed_kind(f: Func, e: &ClientError) -> EventKind {
        if f == Func::Read || e.not_applied {
            EventKind::Fail
        } else {
            EventKind::Info
        }
    }

    /// Flushes what is buffered (at the end of the run).
    pub fn flush(&self) {
        if let Some(out) = &self.out {
            let mut w = match out.lock() {
                Ok(w) => w,
                Err(p) => p.into_inner(),
            };
            if let Err(err) = w.flush() {
                log::error!("cannot write the history: {err}");
            }
        }
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        match &self.out {
            Some(out) => match out.lock() {
                Ok(w) => w.lines(),
                Err(p) => p.into_inner().lines(),
            },
            None => 0,
        }
    }
}

/// The error's kind and status, in a few words.
pub(crate) fn short(e: &ClientError) -> String {
    match e.status {
        Some(s) => format!("{} {s}", e.kind),
        None => e.kind.to_string(),
    }
}
