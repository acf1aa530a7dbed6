//! The load generator's records. stdout carries the per-second table (the original Perseus
//! format, see [`tsv`]); `loadgen --out FILE` writes JSON lines, one [`Record`] each, tagged by
//! `"type"`:
//!
//! - `start` ([`Start`]): the run id, nodes and settings — written and flushed before the first
//!   request, so whoever waits for the load to begin reads this record;
//! - `second` ([`Second`]): successes per node, errors, latency and violations of one second;
//! - `bucket` ([`Bucket`]): one `bucket_ms` slice per node, with the offsets of the first and
//!   last success and the longest gap inside it (enough for millisecond unavailability);
//! - `violation` ([`ViolationRecord`]): one consistency violation;
//! - `op` ([`OpRecord`]): one request (written only when asked for);
//! - `summary` ([`Summary`]): the totals at the end.
//!
//! Times: wall clock as RFC 3339 with milliseconds (`time`) plus `unix_ms`; offsets from the
//! run start in `t_ms` / `*_us`. Second N covers `[start + N-1 s, start + N s)`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a request did not produce an answer the loop can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Could not connect, or the connection broke before a response arrived.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The server answered 5xx (e.g. 503 no quorum).
    #[serde(rename = "http-5xx")]
    Http5xx,
    /// A status the protocol does not expect here.
    HttpUnexpected,
    /// The response body could not be read or parsed.
    Body,
    /// A definite rejection: 412 compare failed / key exists, 404 on CAS.
    Conflict,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Http5xx,
        ErrorKind::HttpUnexpected,
        ErrorKind::Body,
        ErrorKind::Conflict,
    ];
    pub const COUNT: usize = ErrorKind::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http5xx => "http-5xx",
            ErrorKind::HttpUnexpected => "http-unexpected",
            ErrorKind::Body => "body",
            ErrorKind::Conflict => "conflict",
        }
    }

    /// The position in [`ErrorKind::ALL`] (and in counter arrays).
    pub fn idx(self) -> usize {
        self as usize
    }

    /// Counters indexed like [`ErrorKind::ALL`] as a map by kind.
    pub fn counts(counts: &[u64; ErrorKind::COUNT]) -> Counts<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .zip(counts.iter().copied())
            .collect()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of consistency violation the load generator's checker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// An acknowledged write is gone.
    LostWrite,
    /// A read returned an older state than one already seen.
    StaleRead,
    /// The store's index went backwards.
    IndexBackwards,
    /// A value nobody wrote (or not the one expected).
    UnexpectedValue,
    /// After the run, settled, one replica's own copy of a key differs from the others'.
    ReplicaDivergence,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 5] = [
        ViolationKind::LostWrite,
        ViolationKind::StaleRead,
        ViolationKind::IndexBackwards,
        ViolationKind::UnexpectedValue,
        ViolationKind::ReplicaDivergence,
    ];
    pub const COUNT: usize = ViolationKind::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::StaleRead => "stale-read",
            ViolationKind::IndexBackwards => "index-backwards",
            ViolationKind::UnexpectedValue => "unexpected-value",
            ViolationKind::ReplicaDivergence => "replica-divergence",
        }
    }

    /// The position in [`ViolationKind::ALL`] (and in counter arrays).
    pub fn idx(self) -> usize {
        self as usize
    }

    /// Counters indexed like [`ViolationKind::ALL`] as a map by kind.
    pub fn counts(counts: &[u64; ViolationKind::COUNT]) -> Counts<ViolationKind> {
        ViolationKind::ALL
            .into_iter()
            .zip(counts.iter().copied())
            .collect()
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters by kind (`{"connect": 0, "timeout": 2, ...}`).
pub type Counts<K> = BTreeMap<K, u64>;

/// Request kinds with their own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Create,
    Cas,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Get, Op::Create, Op::Cas];
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Create => "create",
            Op::Cas => "cas",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violation: which key, what the checker allowed, what the store answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub key: String,
    pub kind: ViolationKind,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key={} expected=[{}] got=[{}]",
            self.kind, self.key, self.expected, self.got
        )
    }
}

/// Latency percentiles in µs (`None` when nothing was measured).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    #[serde(default)]
    pub count: u64,
    pub p50: Option<u64>,
    #[serde(default)]
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// The `start` record: the load begins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Start {
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    pub unix_ms: i64,
    pub run_id: String,
    /// The node URLs, in column order (`n1`, `n2`, ...).
    pub nodes: Vec<String>,
    /// Connections (logical clients) per node.
    pub connections: u32,
    pub duration_s: f64,
    pub timeout_ms: u64,
    pub bucket_ms: u64,
    /// Every key the run uses.
    #[serde(default)]
    pub keys: Vec<String>,
    /// `own` (one key per connection) or `shared:N` (all connections race on N keys).
    #[serde(default)]
    pub key_mode: String,
}

impl Start {
    /// The first stdout line: `# start=<time> unix_ms=<ms> run_id=<id>`.
    pub fn comment_line(&self) -> String {
        format!(
            "# start={} unix_ms={} run_id={}",
            crate::time::rfc3339_ms(self.time),
            self.unix_ms,
            self.run_id
        )
    }
}

/// The `second` record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// 1-based.
    pub second: u64,
    /// The start of the second.
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    pub unix_ms: i64,
    /// Successful iterations of all nodes.
    pub cluster: u64,
    /// Successful iterations per node.
    pub nodes: Vec<u64>,
    #[serde(default)]
    pub errors: Counts<ErrorKind>,
    #[serde(default)]
    pub errors_by_node: Vec<Counts<ErrorKind>>,
    /// Of the iterations that ended in this second.
    #[serde(default)]
    pub latency_us: Latency,
    #[serde(default)]
    pub violations: u64,
    #[serde(default)]
    pub violations_by_kind: Counts<ViolationKind>,
}

/// The `bucket` record: one `ms` slice, per node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub second: u64,
    /// Position inside the second.
    pub index: u64,
    /// Offset of the bucket from the run start.
    pub t_ms: u64,
    /// Width of the bucket.
    pub ms: u64,
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    pub unix_ms: i64,
    pub ok: Vec<u64>,
    pub err: Vec<u64>,
    /// Offset (µs from the run start) of the first success, per node.
    pub first_us: Vec<Option<u64>>,
    /// Offset (µs from the run start) of the last success, per node.
    pub last_us: Vec<Option<u64>>,
    /// Longest gap between two successes inside the bucket, per node.
    pub max_gap_us: Vec<u64>,
}

/// The `violation` record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViolationRecord {
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    pub unix_ms: i64,
    /// Offset from the run start.
    pub t_us: u64,
    /// 1-based.
    pub node: usize,
    #[serde(flatten)]
    pub violation: Violation,
}

/// The `op` record: one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// When the request was sent, µs from the run start.
    pub t_us: u64,
    pub latency_us: u64,
    /// 1-based.
    pub node: usize,
    pub op: Op,
    /// `None` when it succeeded.
    #[serde(default)]
    pub error: Option<ErrorKind>,
}

/// Why the run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// The configured duration passed.
    #[default]
    Duration,
    /// SIGINT or SIGTERM.
    Signal,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Signal => "signal",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the read of every key after the load found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    pub checked: u64,
    pub unreachable: u64,
    pub skipped: u64,
}

/// The `summary` record: the run's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    pub unix_ms: i64,
    pub run_id: String,
    pub elapsed_s: f64,
    pub stopped_by: StopReason,
    /// Seconds reported.
    pub seconds: u64,
    /// Successful iterations of all nodes.
    pub iterations: u64,
    pub mean_per_s: f64,
    /// Successful iterations per node.
    pub nodes: Vec<u64>,
    #[serde(default)]
    pub errors: Counts<ErrorKind>,
    #[serde(default)]
    pub errors_by_node: Vec<Counts<ErrorKind>>,
    /// Of every successful iteration.
    #[serde(default)]
    pub latency_us: Latency,
    #[serde(default)]
    pub request_latency_us: BTreeMap<Op, Latency>,
    pub violations: u64,
    #[serde(default)]
    pub violations_by_kind: Counts<ViolationKind>,
    #[serde(default)]
    pub final_read: FinalRead,
    /// Events recorded after their second was printed (counted in the totals).
    #[serde(default)]
    pub late_events: u64,
    /// `own` or `shared:N`.
    #[serde(default)]
    pub keys: String,
    /// Every request sent, and how many the nodes answered with a 5xx.
    #[serde(default)]
    pub requests: Requests,
    /// With shared keys: the contention checker's figures.
    #[serde(default)]
    pub contention: Option<Box<Contention>>,
}

/// Requests of a run and their 5xx answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub sent: u64,
    pub answered_5xx: u64,
    pub share_5xx_pct: f64,
}

/// What the contention checker counted on shared keys: in total and per key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    pub total: KeyFigures,
    pub keys: Vec<KeyFigures>,
}

/// The figures of one shared key (or of all, added up).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFigures {
    pub key: String,
    /// Increments (CAS) sent.
    pub increments_sent: u64,
    /// Increments acknowledged (2xx).
    pub acknowledged: u64,
    /// Increments definitely refused (412 compare failed, 404).
    pub rejected: u64,
    /// Increments whose outcome the client never learned (timeout, 5xx, cut off by the end).
    pub unknown: u64,
    /// Increments that took effect although their client was not told so: the final value
    /// minus the acknowledged increments.
    pub failed_but_applied: u64,
    /// The value read after the run (`None`: not read, or the key missing).
    pub final_value: Option<i64>,
    /// Acknowledged creates (1 on a correct store).
    pub creates_acknowledged: u64,
}

/// One JSON line of `loadgen --out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Start(Start),
    Second(Second),
    Bucket(Bucket),
    Violation(ViolationRecord),
    Op(OpRecord),
    Summary(Summary),
    /// A record type this version does not know (skipped by readers).
    #[serde(other)]
    Other,
}

/// A JSON line that does not parse as the expected record.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    #[source]
    pub source: serde_json::Error,
}

/// Parses JSON lines (blank lines skipped) as `T`; the error names the line.
pub fn parse_lines<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, LineError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|source| LineError {
                line: n + 1,
                source,
            })
        })
        .collect()
}

/// The stdout table of the original Perseus: `second<TAB>cluster<TAB>n1<TAB>n2...`, comment
/// lines start with `#`.
pub mod tsv {
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

    /// A data line back as (second, per node); `None` for comments and other text.
    pub fn parse_second_line(line: &str) -> Option<(u64, Vec<u64>)> {
        if line.starts_with('#') {
            return None;
        }
        let fields: Vec<u64> = line
            .split('\t')
            .map(|f| f.trim().parse().ok())
            .collect::<Option<_>>()?;
        match fields.as_slice() {
            [second, cluster, nodes @ ..] if nodes.iter().sum::<u64>() == *cluster => {
                Some((*second, nodes.to_vec()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: &str = r#"{"cluster":851,"errors":{"body":0,"conflict":0,"connect":0,"http-5xx":0,"http-unexpected":0,"timeout":0},"errors_by_node":[{"body":0,"conflict":0,"connect":0,"http-5xx":0,"http-unexpected":0,"timeout":0}],"latency_us":{"count":851,"max":7935,"p50":3407,"p90":4467,"p99":6899},"nodes":[281,284,286],"second":1,"time":"2026-11-24T16:26:49.383Z","type":"second","unix_ms":1795537609383,"violations":0,"violations_by_kind":{"index-backwards":0,"lost-write":0,"stale-read":0,"unexpected-value":0}}"#;
    const SUMMARY: &str = r#"{"elapsed_s":55.001245864,"errors":{"body":0,"conflict":0,"connect":12,"http-5xx":745,"http-unexpected":0,"timeout":11},"errors_by_node":[],"final_read":{"checked":3,"skipped":0,"unreachable":0},"iterations":40222,"late_events":0,"latency_us":{"count":40222,"max":90047,"p50":2969,"p90":5859,"p99":15895},"mean_per_s":731.2925256176158,"nodes":[9046,15630,15546],"request_latency_us":{"cas":{"count":40222,"max":80255,"p50":1381,"p90":2937,"p99":8023},"create":{"count":3,"max":1685,"p50":1584,"p90":1685,"p99":1685},"get":{"count":40229,"max":42591,"p50":1340,"p90":2839,"p99":8003}},"run_id":"20261124T162649Z-8cedd4","seconds":55,"stopped_by":"duration","time":"2026-11-24T16:27:44.405Z","type":"summary","unix_ms":1795537664405,"violations":0,"violations_by_kind":{"index-backwards":0,"lost-write":0,"stale-read":0,"unexpected-value":0}}"#;

    #[test]
    fn reads_recorded_lines() {
        let Record::Second(s) = serde_json::from_str(SECOND).unwrap() else {
            panic!("not a second")
        };
        assert_eq!((s.second, s.cluster), (1, 851));
        assert_eq!(s.errors[&ErrorKind::Http5xx], 0);
        assert_eq!(s.latency_us.p99, Some(6899));
        let Record::Summary(s) = serde_json::from_str(SUMMARY).unwrap() else {
            panic!("not a summary")
        };
        assert_eq!(s.errors[&ErrorKind::Http5xx], 745);
        assert_eq!(s.request_latency_us[&Op::Cas].p50, Some(1381));
        assert_eq!(s.stopped_by, StopReason::Duration);
        assert_eq!(s.final_read.checked, 3);
        assert_eq!(
            serde_json::from_str::<Record>(r#"{"type":"hello","x":1}"#).unwrap(),
            Record::Other
        );
    }

    #[test]
    fn records_round_trip() {
        let v = Record::Violation(ViolationRecord {
            time: DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678Z")
                .unwrap()
                .with_timezone(&Utc),
            unix_ms: 1735787045678,
            t_us: 12,
            node: 2,
            violation: Violation {
                key: "k".into(),
                kind: ViolationKind::LostWrite,
                expected: "1".into(),
                got: "0".into(),
            },
        });
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.starts_with(r#"{"type":"violation","time":"2025-01-02T03:04:05.678Z""#));
        assert!(json.contains(r#""kind":"lost-write""#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), v);
        let op = Record::Op(OpRecord {
            t_us: 5,
            latency_us: 900,
            node: 1,
            op: Op::Cas,
            error: Some(ErrorKind::Http5xx),
        });
        let json = serde_json::to_string(&op).unwrap();
        assert!(json.contains(r#""error":"http-5xx""#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), op);
    }

    #[test]
    fn counts_by_kind() {
        let c = ErrorKind::counts(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(c[&ErrorKind::Conflict], 6);
        let json = serde_json::to_string(&ViolationKind::counts(&[0, 1, 0, 0, 2])).unwrap();
        assert_eq!(
            json,
            r#"{"lost-write":0,"stale-read":1,"index-backwards":0,"unexpected-value":0,"replica-divergence":2}"#
        );
    }

    #[test]
    fn bad_lines_name_their_number() {
        let err = parse_lines::<Record>("\n{\"type\":\"second\"}\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn tsv_lines_have_the_original_shape() {
        assert_eq!(
            tsv::second_line(1, &[108, 107, 107]),
            "1\t322\t108\t107\t107"
        );
        assert_eq!(tsv::columns_line(3), "# second\tcluster\tn1\tn2\tn3");
        assert_eq!(
            tsv::parse_second_line("185\t296\t0\t149\t147"),
            Some((185, vec![0, 149, 147]))
        );
        assert_eq!(tsv::parse_second_line("# second\tcluster"), None);
        assert_eq!(tsv::parse_second_line("1\t5\t1\t1"), None);
    }
}
