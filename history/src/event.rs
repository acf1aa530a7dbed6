//! One line of a history: an invocation or a completion, as the load generator writes it to
//! `history.jsonl` and every checker and exporter reads it.
//!
//! ```text
//! {"type":"invoke","process":3,"key":"r-s0","f":"cas","value":17,"prev_version":5,"prev_value":12,"time":1200}
//! {"type":"ok","process":3,"key":"r-s0","f":"cas","value":17,"version":9,"time":3400}
//! ```
//!
//! `time` is monotonic nanoseconds since the run started. Operations (`f`):
//! - `read`: completes with `value` and `version`, both absent when the key does not exist;
//! - `write`: a blind write of `value`; completes with the `version` it made;
//! - `cas`: sets `value` if the key's version is still `prev_version` (whose value the caller
//!   read as `prev_value`); completes `ok` with the new `version`, or `fail` (a definite no);
//! - `create`: sets `value` if the key does not exist (a compare-and-set on "missing").

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// Whether a line is an invocation or which outcome it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Invoke,
    /// Acknowledged: it took effect (or, for a read, returned this).
    Ok,
    /// Definitely did not take effect (a compare that failed, a refused create).
    Fail,
    /// Unknown (timeout, lost connection, unavailable): it may take effect later, or never.
    Info,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Invoke => "invoke",
            EventKind::Ok => "ok",
            EventKind::Fail => "fail",
            EventKind::Info => "info",
        }
    }
}

/// The operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    Read,
    Write,
    Cas,
    Create,
}

impl Func {
    pub fn as_str(self) -> &'static str {
        match self {
            Func::Read => "read",
            Func::Write => "write",
            Func::Cas => "cas",
            Func::Create => "create",
        }
    }

    /// Whether it changes the key when it succeeds.
    pub fn is_write(self) -> bool {
        !matches!(self, Func::Read)
    }
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub process: u64,
    pub key: String,
    pub f: Func,
    /// Invocation of a write, cas or create: the value to write. Completion of a read: the
    /// value read (absent: the key does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// Completion: the key's version the store returned (read or write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Invocation of a cas: the version it compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_version: Option<u64>,
    /// Invocation of a cas: the value the caller read at `prev_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_value: Option<i64>,
    /// Monotonic nanoseconds since the run started.
    pub time: u64,
    /// `fail` and `info`: why, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// An invocation of `f` on `key` (fill in the arguments with the struct update syntax).
    pub fn invoke(process: u64, key: &str, f: Func, time: u64) -> Event {
        Event {
            kind: EventKind::Invoke,
            process,
            key: key.to_string(),
            f,
            value: None,
            version: None,
            prev_version: None,
            prev_value: None,
            time,
            error: None,
        }
    }

    /// A completion of `f` on `key`.
    pub fn complete(kind: EventKind, process: u64, key: &str, f: Func, time: u64) -> Event {
        Event {
            kind,
            ..Event::invoke(process, key, f, time)
        }
    }
}

/// A history that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("reading the history: {0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
}

/// Streams events to a writer, one JSON line each (bounded memory: nothing is kept).
pub struct HistoryWriter<W: Write> {
    out: W,
    lines: u64,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(out: W) -> Self {
        HistoryWriter { out, lines: 0 }
    }

    pub fn write(&mut self, e: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, e)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Calls `each` with every event of a JSON-lines history, in order, without keeping them.
/// Blank lines are skipped; a line that is not an event is an error naming it.
pub fn for_each_event(
    input: impl BufRead,
    mut each: impl FnMut(u64, Event) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let mut n = 0u64;
    for line in input.lines() {
        n += 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Event = serde_json::from_str(&line).map_err(|e| HistoryError::Line {
            line: n,
            message: format!("not a history event: {e}"),
        })?;
        each(n, e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut w = HistoryWriter::new(Vec::new());
        let inv = Event {
            value: Some(17),
            prev_version: Some(5),
            prev_value: Some(12),
            ..Event::invoke(3, "r-s0", Func::Cas, 1200)
        };
        let ok = Event {
            value: Some(17),
            version: Some(9),
            ..Event::complete(EventKind::Ok, 3, "r-s0", Func::Cas, 3400)
        };
        w.write(&inv).unwrap();
        w.write(&ok).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"type":"invoke","process":3,"key":"r-s0","f":"cas","value":17,"prev_version":5,"prev_value":12,"time":1200}"#
        );
        let mut back = Vec::new();
        for_each_event(text.as_bytes(), |_, e| {
            back.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, vec![inv, ok]);
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = "\n{\"type\":\"nope\"}\n";
        let err = for_each_event(text.as_bytes(), |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
