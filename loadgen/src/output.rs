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
//! JSON lines (`--out FILE`): one `perseus_model::load::Record` per line (start, second,
//! bucket, violation, summary; the fields are described there). This module builds the records
//! from the run's counters and writes both sinks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use perseus_model::load::{self, Latency, Record, StopReason};
use perseus_model::{ErrorKind, ViolationKind};

use crate::contention::KeyFigures;
use crate::stats::{
    error_pairs, sum_errors, violation_pairs, ErrorCounts, Op, SecondSlot, Totals, ViolationEvent,
};

pub use perseus_model::load::tsv::{columns_line, second_line};
pub use perseus_model::time::rfc3339_ms;

/// p50/p90/p99/max of a histogram in µs (nulls if empty).
pub fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        p50: Some(h.value_at_quantile(0.5)),
        p90: Some(h.value_at_quantile(0.9)),
        p99: Some(h.value_at_quantile(0.99)),
        max: Some(h.max()),
    }
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
    pub stopped_by: StopReason,
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

    /// The `summary` record.
    pub fn record(&self) -> load::Summary {
        let errs = sum_errors(&self.totals.errors);
        let now = Utc::now();
        load::Summary {
            time: now,
            unix_ms: now.timestamp_millis(),
            run_id: self.run_id.clone(),
            elapsed_s: self.elapsed.as_secs_f64(),
            stopped_by: self.stopped_by,
            seconds: self.seconds_reported,
            iterations: self.total_ok(),
            mean_per_s: self.mean(self.total_ok()),
            nodes: self.totals.ok.clone(),
            errors: ErrorKind::counts(&errs),
            errors_by_node: self.totals.errors.iter().map(ErrorKind::counts).collect(),
            latency_us: latency(&self.totals.iteration),
            request_latency_us: Op::ALL
                .into_iter()
                .zip(self.totals.requests.iter().map(latency))
                .collect(),
            violations: self.total_violations(),
            violations_by_kind: ViolationKind::counts(&self.totals.violations),
            final_read: load::FinalRead {
                checked: self.final_checked as u64,
                unreachable: self.final_unreachable as u64,
                skipped: self.final_skipped as u64,
            },
            late_events: self.totals.late,
            keys: self.keys.clone(),
            requests: load::Requests {
                sent: self.totals.sent,
                answered_5xx: self.totals.answered_5xx,
                share_5xx_pct: self.totals.share_5xx_percent(),
            },
            contention: (!self.contention.is_empty()).then(|| {
                Box::new(load::Contention {
                    total: contention_total(&self.contention),
                    keys: self.contention.clone(),
                })
            }),
        }
    }
}

/// The `second` record.
pub fn second_record(second: u64, start: DateTime<Utc>, slot: &SecondSlot) -> load::Second {
    let t = start + chrono::Duration::seconds(second as i64 - 1);
    load::Second {
        second,
        time: t,
        unix_ms: t.timestamp_millis(),
        cluster: slot.total_ok(),
        nodes: slot.ok.clone(),
        errors: ErrorKind::counts(&slot.errors_by_kind()),
        errors_by_node: slot.errors.iter().map(ErrorKind::counts).collect(),
        latency_us: latency(&slot.latency),
        violations: slot.total_violations(),
        violations_by_kind: ViolationKind::counts(&slot.violations),
    }
}

/// The `bucket` records of one second.
pub fn bucket_records(
    second: u64,
    start: DateTime<Utc>,
    bucket_ms: u64,
    slot: &SecondSlot,
) -> Vec<load::Bucket> {
    slot.buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let t_ms = (second - 1) * 1000 + i as u64 * bucket_ms;
            let t = start + chrono::Duration::milliseconds(t_ms as i64);
            load::Bucket {
                second,
                index: i as u64,
                t_ms,
                ms: bucket_ms,
                time: t,
                unix_ms: t.timestamp_millis(),
                ok: b.iter().map(|n| n.ok).collect(),
                err: b.iter().map(|n| n.err).collect(),
                first_us: b.iter().map(|n| n.first_us).collect(),
                last_us: b.iter().map(|n| n.last_us).collect(),
                max_gap_us: b.iter().map(|n| n.max_gap_us).collect(),
            }
        })
        .collect()
}

/// The `violation` record.
pub fn violation_record(start: DateTime<Utc>, v: &ViolationEvent) -> load::ViolationRecord {
    let t = start + chrono::Duration::microseconds(v.at_us as i64);
    load::ViolationRecord {
        time: t,
        unix_ms: t.timestamp_millis(),
        t_us: v.at_us,
        node: v.node + 1,
        violation: v.violation.clone(),
    }
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
    pub fn record(&mut self, r: &Record) {
        if let Some(w) = &mut self.json {
            let written = serde_json::to_string(r)
                .map_err(std::io::Error::from)
                .and_then(|line| writeln!(w, "{line}"));
            if let Err(e) = written {
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
            self.record(&Record::Second(second_record(n, self.start, slot)));
            for b in bucket_records(n, self.start, bucket_ms, slot) {
                self.record(&Record::Bucket(b));
            }
        }
    }

    pub fn violations(&mut self, evs: &[ViolationEvent]) {
        if self.json.is_some() {
            for v in evs {
                self.record(&Record::Violation(violation_record(self.start, v)));
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
    fn bucket_and_second_records() {
        let start = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = new_histogram();
        crate::stats::record(&mut h, 1500);
        let slot = SecondSlot {
            ok: vec![3, 0],
            errors: vec![[0; 6], [0, 2, 0, 0, 0, 0]],
            latency: h,
            violations: [0; ViolationKind::COUNT],
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
        let s = second_record(3, start, &slot);
        assert_eq!(rfc3339_ms(s.time), "2025-01-02T03:04:07.000Z");
        assert_eq!(s.cluster, 3);
        assert_eq!(s.nodes, vec![3, 0]);
        assert_eq!(s.errors[&ErrorKind::Timeout], 2);
        assert_eq!(s.errors_by_node[1][&ErrorKind::Timeout], 2);
        assert_eq!(s.latency_us.count, 1);
        let json = serde_json::to_string(&Record::Second(s)).unwrap();
        assert!(
            json.starts_with(r#"{"type":"second","second":3,"time":"2025-01-02T03:04:07.000Z""#),
            "{json}"
        );
        let b = bucket_records(3, start, 100, &slot);
        assert_eq!(b.len(), 10);
        assert_eq!(b[4].t_ms, 2400);
        assert_eq!(rfc3339_ms(b[4].time), "2025-01-02T03:04:07.400Z");
        assert_eq!(b[4].first_us, vec![Some(2_000_100), None]);
        assert_eq!(b[4].err, vec![0, 2]);
        let json = serde_json::to_string(&Record::Bucket(b[4].clone())).unwrap();
        assert!(json.contains(r#""first_us":[2000100,null]"#), "{json}");
    }
}
