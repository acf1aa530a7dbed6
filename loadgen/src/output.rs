//! What the run prints: the stdout table and the optional JSON-lines file (`--out`).
//!
//! stdout (the original Perseus format; comment lines start with `#`):
//! ```text
//! # start=2025-01-01T10:00:00.000Z unix_ms=1735725600000 run_id=20250101T100000Z-1a2b3c
//! # second<TAB>cluster<TAB>n1<TAB>n2<TAB>n3
//! 1<TAB>322<TAB>108<TAB>107<TAB>107
//! ...
//! # summary ... (every summary line starts with `#`)
//! ```
//! Second N counts the successful iterations in `[start + N-1 s, start + N s)`.
//!
//! JSON lines (`--out FILE`), one object per line, each with `"type"`; times are wall-clock
//! RFC 3339 with milliseconds (UTC) plus `unix_ms`; offsets from the run start in `t_ms`/`_us`:
//! - `start`: run id, nodes, settings;
//! - `second`: `second`, `time` (start of that second), `cluster`, `nodes` (per node counts),
//!   `errors` (by kind), `errors_by_node`, `latency_us` (p50/p90/p99/max of the iterations that
//!   ended in that second), `violations` and `violations_by_kind`;
//! - `bucket`: one per `bucket_ms` slice: `second`, `index`, `t_ms`, `time`, and per node arrays
//!   `ok`, `err`, `first_us`, `last_us` (offsets of the first/last success, null if none) and
//!   `max_gap_us` (longest gap between successes inside the bucket);
//! - `violation`: `t_us`, `node` (1-based), `key`, `kind`, `expected`, `got`;
//! - `summary`: the totals printed at the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::contention::KeyFigures;
use crate::stats::{
    error_pairs, sum_errors, violation_pairs, ErrorCounts, Op, SecondSlot, Totals, ViolationEvent,
};

/// RFC 3339 with milliseconds, UTC (`2025-01-01T10:00:00.000Z`).
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The first stdout line.
pub fn start_line(start: DateTime<Utc>, run_id: &str) -> String {
    format!(
        "# start={} unix_ms={} run_id={}",
        rfc3339_ms(start),
        start.timestamp_millis(),
        run_id
    )
}

/// The column header comment: `# second<TAB>cluster<TAB>n1...`.
pub fn columns_line(nodes: usize) -> String {
    let mut s = String::from("# second\tcluster");
    for i in 1..=nodes {
        s.push_str(&format!("\tn{i}"));
    }
    s
}

/// A data line: `second<TAB>cluster<TAB>n1<TAB>n2...`.
pub fn second_line(second: u64, per_node: &[u64]) -> String {
    let mut s = format!("{}\t{}", second, per_node.iter().sum::<u64>());
    for n in per_node {
        s.push('\t');
        s.push_str(&n.to_string());
    }
    s
}

fn counts_obj(pairs: Vec<(&'static str, u64)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

/// p50/p90/p99/max of a histogram in µs (nulls if empty).
pub fn latency_obj(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0, "p50": null, "p90": null, "p99": null, "max": null});
    }
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "max": h.max(),
    })
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// `count=N p50=.. p90=.. p99=.. max=..` in milliseconds.
pub fn latency_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "count=0".to_string();
    }
    format!(
        "count={} p50={} p90={} p99={} max={}",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

fn pairs_text(pairs: &[(&'static str, u64)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How the run ended and what it found, for the summary.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_id: String,
    pub nodes: Vec<String>,
    pub connections: u32,
    pub elapsed: Duration,
    pub stopped_by: &'static str,
    pub seconds_reported: u64,
    pub totals: Totals,
    pub final_checked: usize,
    pub final_unreachable: usize,
    pub final_skipped: usize,
    /// The first violations (details).
    pub first_violations: Vec<ViolationEvent>,
    /// `own` or `shared:N`.
    pub keys: String,
    /// Per shared key (`--keys shared:N`; empty with `own`).
    pub contention: Vec<KeyFigures>,
}

/// The figures of all shared keys added up.
pub fn contention_total(keys: &[KeyFigures]) -> KeyFigures {
    let mut t = KeyFigures {
        key: format!("{} keys", keys.len()),
        ..KeyFigures::default()
    };
    for k in keys {
        t.increments_sent += k.increments_sent;
        t.acknowledged += k.acknowledged;
        t.rejected += k.rejected;
        t.unknown += k.unknown;
        t.creates_acknowledged += k.creates_acknowledged;
        t.failed_but_applied += k.failed_but_applied;
        if let Some(f) = k.final_value {
            t.final_value = Some(t.final_value.unwrap_or(0) + f);
        }
    }
    t
}

fn figures_text(f: &KeyFigures) -> String {
    format!(
        "increments_sent={} acknowledged={} rejected={} unknown={} failed_but_applied={} final={} creates_acknowledged={}",
        f.increments_sent,
        f.acknowledged,
        f.rejected,
        f.unknown,
        f.failed_but_applied,
        f.final_value.map_or("missing".to_string(), |v| v.to_string()),
        f.creates_acknowledged
    )
}

fn figures_json(f: &KeyFigures) -> Value {
    json!({
        "key": f.key,
        "increments_sent": f.increments_sent,
        "acknowledged": f.acknowledged,
        "rejected": f.rejected,
        "unknown": f.unknown,
        "failed_but_applied": f.failed_but_applied,
        "final_value": f.final_value,
        "creates_acknowledged": f.creates_acknowledged,
    })
}

/// Shared keys detailed one per line in the summary (beyond that, only the total).
const CONTENTION_KEY_LINES: usize = 10;

impl Summary {
    pub fn total_ok(&self) -> u64 {
        self.totals.ok.iter().sum()
    }
    pub fn total_violations(&self) -> u64 {
        self.totals.violations.iter().sum()
    }
    fn mean(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// The summary as stdout lines, each starting with `#`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.push(format!(
            "# summary run_id={} elapsed_s={:.3} stopped_by={} seconds={} nodes={} connections_per_node={}",
            self.run_id,
            self.elapsed.as_secs_f64(),
            self.stopped_by,
            self.seconds_reported,
            self.nodes.len(),
            self.connections
        ));
        let total = self.total_ok();
        out.push(format!(
            "# iterations total={} mean_per_s={:.1}",
            total,
            self.mean(total)
        ));
        for (i, url) in self.nodes.iter().enumerate() {
            let ok = self.totals.ok.get(i).copied().unwrap_or(0);
            let errs: u64 = self
                .totals
                .errors
                .get(i)
                .map(|e| e.iter().sum())
                .unwrap_or(0);
            out.push(format!(
                "# node n{} url={} iterations={} mean_per_s={:.1} errors={}",
                i + 1,
                url,
                ok,
                self.mean(ok),
                errs
            ));
        }
        out.push(format!(
            "# latency_ms iteration {}",
            latency_text(&self.totals.iteration)
        ));
        for (op, h) in Op::ALL.iter().zip(self.totals.requests.iter()) {
            out.push(format!("# latency_ms {} {}", op.as_str(), latency_text(h)));
        }
        let errs: ErrorCounts = sum_errors(&self.totals.errors);
        out.push(format!("# errors {}", pairs_text(&error_pairs(&errs))));
        out.push(format!(
            "# requests sent={} answered_5xx={} share_5xx_pct={:.2}",
            self.totals.sent,
            self.totals.answered_5xx,
            self.totals.share_5xx_percent()
        ));
        if !self.contention.is_empty() {
            out.push(format!(
                "# contention keys={} {}",
                self.keys,
                figures_text(&contention_total(&self.contention))
            ));
            for k in self.contention.iter().take(CONTENTION_KEY_LINES) {
                out.push(format!("# contention key={} {}", k.key, figures_text(k)));
            }
        }
        out.push(format!(
            "# violations total={} {}",
            self.total_violations(),
            pairs_text(&violation_pairs(&self.totals.violations))
        ));
        out.push(format!(
            "# final-read checked={} unreachable={} skipped={}",
            self.final_checked, self.final_unreachable, self.final_skipped
        ));
        for v in &self.first_violations {
            out.push(format!(
                "# violation t_ms={} node=n{} {}",
                v.at_us / 1000,
                v.node + 1,
                v.violation
            ));
        }
        if self.late_note() {
            out.push(format!(
                "# note: {} events were recorded after their second was printed (totals include them)",
                self.totals.late
            ));
        }
        out.push(format!(
            "# result {}",
            if self.total_violations() == 0 {
                "ok"
            } else {
                "VIOLATIONS"
            }
        ));
        out
    }

    fn late_note(&self) -> bool {
        self.totals.late > 0
    }

    /// The summary as a JSON object (`"type":"summary"`).
    pub fn json(&self) -> Value {
        let errs = sum_errors(&self.totals.errors);
        let mut req = Map::new();
        for (op, h) in Op::ALL.iter().zip(self.totals.requests.iter()) {
            req.insert(op.as_str().to_string(), latency_obj(h));
        }
        json!({
            "type": "summary",
            "time": rfc3339_ms(Utc::now()),
            "unix_ms": Utc::now().timestamp_millis(),
            "run_id": self.run_id,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "stopped_by": self.stopped_by,
            "seconds": self.seconds_reported,
            "iterations": self.total_ok(),
            "mean_per_s": self.mean(self.total_ok()),
            "nodes": self.totals.ok,
            "errors": counts_obj(error_pairs(&errs)),
            "errors_by_node": self.totals.errors.iter().map(|e| counts_obj(error_pairs(e))).collect::<Vec<_>>(),
            "latency_us": latency_obj(&self.totals.iteration),
            "request_latency_us": Value::Object(req),
            "violations": self.total_violations(),
            "violations_by_kind": counts_obj(violation_pairs(&self.totals.violations)),
            "final_read": {"checked": self.final_checked, "unreachable": self.final_unreachable, "skipped": self.final_skipped},
            "late_events": self.totals.late,
            "keys": self.keys,
            "requests": {
                "sent": self.totals.sent,
                "answered_5xx": self.totals.answered_5xx,
                "share_5xx_pct": self.totals.share_5xx_percent(),
            },
            "contention": if self.contention.is_empty() {
                Value::Null
            } else {
                json!({
                    "total": figures_json(&contention_total(&self.contention)),
                    "keys": self.contention.iter().map(figures_json).collect::<Vec<_>>(),
                })
            },
        })
    }
}

/// The `second` JSON object.
pub fn second_json(second: u64, start: DateTime<Utc>, slot: &SecondSlot) -> Value {
    let t = start + chrono::Duration::seconds(second as i64 - 1);
    json!({
        "type": "second",
        "second": second,
        "time": rfc3339_ms(t),
        "unix_ms": t.timestamp_millis(),
        "cluster": slot.total_ok(),
        "nodes": slot.ok,
        "errors": counts_obj(error_pairs(&slot.errors_by_kind())),
        "errors_by_node": slot.errors.iter().map(|e| counts_obj(error_pairs(e))).collect::<Vec<_>>(),
        "latency_us": latency_obj(&slot.latency),
        "violations": slot.total_violations(),
        "violations_by_kind": counts_obj(violation_pairs(&slot.violations)),
    })
}

/// The `bucket` JSON objects of one second.
pub fn bucket_jsons(
    second: u64,
    start: DateTime<Utc>,
    bucket_ms: u64,
    slot: &SecondSlot,
) -> Vec<Value> {
    slot.buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let t_ms = (second - 1) * 1000 + i as u64 * bucket_ms;
            let t = start + chrono::Duration::milliseconds(t_ms as i64);
            json!({
                "type": "bucket",
                "second": second,
                "index": i,
                "t_ms": t_ms,
                "ms": bucket_ms,
                "time": rfc3339_ms(t),
                "unix_ms": t.timestamp_millis(),
                "ok": b.iter().map(|n| n.ok).collect::<Vec<_>>(),
                "err": b.iter().map(|n| n.err).collect::<Vec<_>>(),
                "first_us": b.iter().map(|n| n.first_us).collect::<Vec<_>>(),
                "last_us": b.iter().map(|n| n.last_us).collect::<Vec<_>>(),
                "max_gap_us": b.iter().map(|n| n.max_gap_us).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The `violation` JSON object.
pub fn violation_json(start: DateTime<Utc>, v: &ViolationEvent) -> Value {
    let t = start + chrono::Duration::microseconds(v.at_us as i64);
    json!({
        "type": "violation",
        "time": rfc3339_ms(t),
        "unix_ms": t.timestamp_millis(),
        "t_us": v.at_us,
        "node": v.node + 1,
        "key": v.violation.key,
        "kind": v.violation.kind.as_str(),
        "expected": v.violation.expected,
        "got": v.violation.got,
    })
}

/// The two sinks. Write errors on stdout (e.g. a closed pipe) are ignored so the run goes on;
/// write errors on the JSON file are logged once.
pub struct Output {
    stdout: Box<dyn Write + Send>,
    json: Option<BufWriter<File>>,
    json_failed: bool,
    start: DateTime<Utc>,
}

impl Output {
    pub fn new(
        stdout: Box<dyn Write + Send>,
        json_path: Option<&Path>,
        start: DateTime<Utc>,
    ) -> std::io::Result<Self> {
        let json = match json_path {
            Some(p) => Some(BufWriter::new(File::create(p)?)),
            None => None,
        };
        Ok(Output {
            stdout,
            json,
            json_failed: false,
            start,
        })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// One stdout line, flushed.
    pub fn line(&mut self, s: &str) {
        let _ = writeln!(self.stdout, "{s}");
        let _ = self.stdout.flush();
    }

    /// One JSON line (buffered; see [`Output::flush_json`]).
    pub fn json(&mut self, v: &Value) {
        if let Some(w) = &mut self.json {
            if let Err(e) = writeln!(w, "{v}") {
                if !self.json_failed {
                    log::error!("writing the JSON output failed: {e}");
                    self.json_failed = true;
                }
            }
        }
    }

    pub fn flush_json(&mut self) {
        if let Some(w) = &mut self.json {
            if let Err(e) = w.flush() {
                if !self.json_failed {
                    log::error!("writing the JSON output failed: {e}");
                    self.json_failed = true;
                }
            }
        }
    }

    /// Prints and records second `n`.
    pub fn second(&mut self, n: u64, slot: &SecondSlot, bucket_ms: u64) {
        self.line(&second_line(n, &slot.ok));
        if self.json.is_some() {
            let s = second_json(n, self.start, slot);
            self.json(&s);
            for b in bucket_jsons(n, self.start, bucket_ms, slot) {
                self.json(&b);
            }
        }
    }

    pub fn violations(&mut self, evs: &[ViolationEvent]) {
        if self.json.is_some() {
            for v in evs {
                let j = violation_json(self.start, v);
                self.json(&j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, BucketNode};

    #[test]
    fn stdout_lines_have_the_original_shape() {
        assert_eq!(second_line(1, &[108, 107, 107]), "1\t322\t108\t107\t107");
        assert_eq!(second_line(185, &[0, 149, 147]), "185\t296\t0\t149\t147");
        assert_eq!(columns_line(3), "# second\tcluster\tn1\tn2\tn3");
        assert_eq!(columns_line(1), "# second\tcluster\tn1");
    }

    #[test]
    fn start_line_has_ms_and_unix_ms() {
        let t = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            start_line(t, "r1"),
            "# start=2025-01-02T03:04:05.678Z unix_ms=1735787045678 run_id=r1"
        );
    }

    #[test]
    fn bucket_and_second_json() {
        let start = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = new_histogram();
        crate::stats::record(&mut h, 1500);
        let slot = SecondSlot {
            ok: vec![3, 0],
            errors: vec![[0; 6], [0, 2, 0, 0, 0, 0]],
            latency: h,
            violations: [0; 4],
            buckets: vec![
                vec![
                    BucketNode {
                        ok: 3,
                        err: 0,
                        first_us: Some(2_000_100),
                        last_us: Some(2_050_000),
                        max_gap_us: 40_000,
                    },
                    BucketNode {
                        ok: 0,
                        err: 2,
                        ..Default::default()
                    },
                ];
                10
            ],
        };
        let s = second_json(3, start, &slot);
        assert_eq!(s["time"], "2025-01-02T03:04:07.000Z");
        assert_eq!(s["cluster"], 3);
        assert_eq!(s["nodes"], json!([3, 0]));
        assert_eq!(s["errors"]["timeout"], 2);
        assert_eq!(s["errors_by_node"][1]["timeout"], 2);
        assert_eq!(s["latency_us"]["count"], 1);
        let b = bucket_jsons(3, start, 100, &slot);
        assert_eq!(b.len(), 10);
        assert_eq!(b[4]["t_ms"], 2400);
        assert_eq!(b[4]["time"], "2025-01-02T03:04:07.400Z");
        assert_eq!(b[4]["first_us"], json!([2_000_100, null]));
        assert_eq!(b[4]["err"], json!([0, 2]));
    }
}
