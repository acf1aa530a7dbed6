//! The history in the formats of the tools that can re-check it, streamed (bounded memory:
//! only the operations still open are held):
//! - [`edn`]: Jepsen's history, one map per line, for Knossos' `cas-register` model split by
//!   `:key` (`{:type :invoke, :f :cas, :value [12 17], :process 3, :time 1200, :key "k"}`); a
//!   create is a cas from `nil`, a read of a missing key returns `nil`;
//! - [`porcupine`]: a JSON array of Porcupine's `Operation`s (`ClientId`, `Input`, `Call`,
//!   `Output`, `Return`) with the key beside them; an operation of unknown outcome returns at
//!   the largest time (it may take effect at any time after its call) with `"unknown": true`.
//!   Failed operations are left out (they changed nothing).

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

use serde_json::json;

use crate::event::{for_each_event, Event, EventKind, Func, HistoryError};

fn edn_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn edn_opt(v: Option<i64>) -> String {
    v.map_or("nil".into(), |v| v.to_string())
}

/// The Knossos value of an operation: what an invocation asks (or a read returns).
fn edn_value(inv: &Event, done: Option<&Event>) -> String {
    match inv.f {
        Func::Read => edn_opt(done.and_then(|d| match d.kind {
            EventKind::Ok => d.value,
            _ => None,
        })),
        Func::Write => edn_opt(inv.value),
        Func::Cas => format!("[{} {}]", edn_opt(inv.prev_value), edn_opt(inv.value)),
        Func::Create => format!("[nil {}]", edn_opt(inv.value)),
    }
}

fn edn_line(e: &Event, value: &str, index: u64) -> String {
    let f = match e.f {
        Func::Create => "cas",
        f => f.as_str(),
    };
    let mut line = format!(
        "{{:index {index}, :type :{}, :f :{f}, :value {value}, :process {}, :time {}, :key {}",
        e.kind.as_str(),
        e.process,
        e.time,
        edn_str(&e.key)
    );
    if let Some(v) = e.version {
        line.push_str(&format!(", :version {v}"));
    }
    if let Some(err) = &e.error {
        line.push_str(&format!(", :error {}", edn_str(err)));
    }
    line.push('}');
    line
}

/// Writes `input` (history.jsonl) as Jepsen EDN, one operation map per line.
pub fn edn(input: impl BufRead, mut out: impl Write) -> Result<(), HistoryError> {
    let mut open: HashMap<u64, Event> = HashMap::new();
    let mut index = 0u64;
    for_each_event(input, |_, e| {
        let value = if e.kind == EventKind::Invoke {
            let v = edn_value(&e, None);
            open.insert(e.process, e.clone());
            v
        } else {
            match open.remove(&e.process) {
                Some(inv) => edn_value(&inv, Some(&e)),
                None => edn_opt(e.value),
            }
        };
        writeln!(out, "{}", edn_line(&e, &value, index))?;
        index += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

fn porcupine_op(inv: &Event, done: Option<&Event>) -> serde_json::Value {
    let unknown = done.is_none_or(|d| d.kind == EventKind::Info);
    json!({
        "Key": inv.key,
        "ClientId": inv.process,
        "Input": {
            "op": inv.f.as_str(),
            "value": if inv.f == Func::Read { None } else { inv.value },
            "prev_version": inv.prev_version,
            "prev_value": inv.prev_value,
        },
        "Call": inv.time,
        "Output": {
            "ok": done.is_some_and(|d| d.kind == EventKind::Ok),
            "unknown": unknown,
            "value": done.and_then(|d| if inv.f == Func::Read { d.value } else { None }),
            "version": done.and_then(|d| d.version),
        },
        "Return": if unknown { i64::MAX as u64 } else { done.map_or(u64::MAX, |d| d.time) },
    })
}

/// Writes `input` (history.jsonl) as a JSON array of Porcupine operations, one per line.
pub fn porcupine(input: impl BufRead, mut out: impl Write) -> Result<(), HistoryError> {
    let mut open: HashMap<u64, Event> = HashMap::new();
    let mut first = true;
    let mut emit = |out: &mut dyn Write, v: serde_json::Value| -> io::Result<()> {
        out.write_all(if first { b"[\n" } else { b",\n" })?;
        first = false;
        serde_json::to_writer(&mut *out, &v)?;
        Ok(())
    };
    for_each_event(input, |_, e| {
        if e.kind == EventKind::Invoke {
            open.insert(e.process, e);
        } else if let Some(inv) = open.remove(&e.process) {
            if e.kind != EventKind::Fail {
                emit(&mut out, porcupine_op(&inv, Some(&e)))?;
            }
        }
        Ok(())
    })?;
    let mut rest: Vec<Event> = open.into_values().collect();
    rest.sort_by_key(|e| (e.time, e.process));
    for inv in rest {
        emit(&mut out, porcupine_op(&inv, None))?;
    }
    out.write_all(if first { b"[]\n" } else { b"\n]\n" })?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::HistoryWriter;

    fn sample() -> Vec<u8> {
        let mut w = HistoryWriter::new(Vec::new());
        for e in [
            Event {
                value: Some(5),
                ..Event::invoke(1, "k", Func::Create, 1)
            },
            Event::invoke(2, "k", Func::Read, 2),
            Event {
                value: Some(5),
                version: Some(1),
                ..Event::complete(EventKind::Ok, 1, "k", Func::Create, 3)
            },
            Event {
                value: Some(5),
                version: Some(1),
                ..Event::complete(EventKind::Ok, 2, "k", Func::Read, 4)
            },
            Event {
                value: Some(9),
                prev_version: Some(1),
                prev_value: Some(5),
                ..Event::invoke(2, "k", Func::Cas, 5)
            },
        ] {
            w.write(&e).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn edn_is_knossos_shaped() {
        let mut out = Vec::new();
        edn(&sample()[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{:index 0, :type :invoke, :f :cas, :value [nil 5], :process 1, :time 1, :key "k"}"#
        );
        assert_eq!(
            lines[3],
            r#"{:index 3, :type :ok, :f :read, :value 5, :process 2, :time 4, :key "k", :version 1}"#
        );
        assert_eq!(
            lines[4],
            r#"{:index 4, :type :invoke, :f :cas, :value [5 9], :process 2, :time 5, :key "k"}"#
        );
    }

    #[test]
    fn porcupine_pairs_operations_and_leaves_unknown_ones_open() {
        let mut out = Vec::new();
        porcupine(&sample()[..], &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let ops = v.as_array().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0]["Input"]["op"], "create");
        assert_eq!(ops[1]["Output"]["value"], 5);
        assert_eq!(ops[2]["Output"]["unknown"], true);
        assert_eq!(ops[2]["Return"], i64::MAX);
    }
}
