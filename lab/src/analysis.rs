//! What a run's data says about each fault: unavailability windows in milliseconds,
//! throughput relative to the pre-fault baseline, recovery times and violations.
//!
//! Resolution: successes are recorded per node in buckets (100 ms by default) with the exact
//! offsets of the first and last success and the longest gap inside each bucket, so every
//! gap is exact to the microsecond for a single node; for the cluster (any node succeeding)
//! gaps that cross a bucket border are exact and gaps inside one bucket are not counted.

use perseus_model::{HostArg, Layer};

use crate::data::{Run, Second};

/// The kinds of fault a report distinguishes: those that open a window (see [`faults`]).
pub use perseus_model::FaultKind;

/// One fault of one host, as ms offsets from the run start.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub host: HostArg,
    /// The part of a Perseus host it hit (acceptor or node); None for the whole host.
    pub layer: Option<Layer>,
    /// When the command that applied the fault began (the nodes may feel it from then on).
    pub begin_ms: i64,
    /// When the fault was applied.
    pub start_ms: i64,
    /// When the recovery (start/heal/resume) began, if it did during the run.
    pub recover_ms: Option<i64>,
    /// When the recovery command finished (e.g. `start` saw the node healthy).
    pub recovered_ms: Option<i64>,
}

impl Fault {
    /// `kill a1`, or `kill a1 (acceptor only)` for a single-layer fault.
    pub fn label(&self) -> String {
        match self.layer {
            Some(layer) => format!("{} {} ({layer} only)", self.kind, self.host),
            None => format!("{} {}", self.kind, self.host),
        }
    }

    /// The end of the faulty period (the recovery, or the end of the run).
    pub fn end_ms(&self, run_end_ms: i64) -> i64 {
        self.recover_ms.unwrap_or(run_end_ms)
    }
}

/// The node index (0-based) a host stands for: `a1`/`e1` → 0; none for `leader`.
pub fn node_index(host: HostArg) -> Option<usize> {
    host.host().map(|h| h.node_index())
}

/// Pairs fault events with their recoveries. Failed chaos commands are ignored.
pub fn faults(run: &Run) -> Vec<Fault> {
    let mut faults: Vec<Fault> = Vec::new();
    for event in run.events.iter().filter(|e| e.ok) {
        let begin = run.offset_ms(event.begin_unix_ms);
        let end = run.offset_ms(event.unix_ms);
        let kind = &event.command;
        if kind.is_instant() {
            faults.push(Fault {
                kind: kind.clone(),
                host: event.host,
                layer: event.layer,
                begin_ms: begin,
                start_ms: begin,
                recover_ms: Some(begin),
                recovered_ms: Some(end),
            });
        } else if kind.undo().is_some() {
            faults.push(Fault {
                kind: kind.clone(),
                host: event.host,
                layer: event.layer,
                begin_ms: begin,
                start_ms: end,
                recover_ms: None,
                recovered_ms: None,
            });
        } else {
            for fault in faults
                .iter_mut()
                .filter(|f| f.recover_ms.is_none() && f.host == event.host && kind.undoes(&f.kind))
            {
                fault.recover_ms = Some(begin);
                fault.recovered_ms = Some(end);
            }
        }
    }
    faults
}

/// A stretch of successes of one node (or the cluster) inside one bucket.
#[derive(Clone, Copy, Debug)]
struct Island {
    first_us: u64,
    last_us: u64,
    max_gap_us: u64,
}

/// The run's length in ms (end of the last bucket).
pub fn run_end_ms(run: &Run) -> i64 {
    run.buckets
        .iter()
        .map(|b| (b.t_ms + b.ms) as i64)
        .max()
        .unwrap_or(0)
}

/// Who a window is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Node(usize),
    Cluster,
}

impl Subject {
    /// The nodes whose successes count for this subject.
    pub fn nodes(self, run: &Run) -> Vec<usize> {
        match self {
            Subject::Node(i) => vec![i],
            Subject::Cluster => (0..run.node_count()).collect(),
        }
    }
}

/// A stretch of time (µs from the run start) in which none of a set of nodes succeeded.
/// Between two islands of successes (and before the first and after the last success of
/// the run) it is located exactly and `len_us == to_us - from_us`; inside one bucket only its
/// length is known and `from_us..to_us` is the span it lies somewhere in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub from_us: u64,
    pub to_us: u64,
    pub len_us: u64,
}

impl Stretch {
    pub fn overlaps(&self, from_us: u64, to_us: u64) -> bool {
        self.from_us <= to_us && self.to_us >= from_us
    }

    /// Its length inside `[from_us, to_us]` (exact for a located stretch, at most the
    /// overlap for one known only by its length).
    pub fn len_within(&self, from_us: u64, to_us: u64) -> u64 {
        let overlap = self
            .to_us
            .min(to_us)
            .saturating_sub(self.from_us.max(from_us));
        self.len_us.min(overlap)
    }
}

/// The islands of successes of any of `nodes`, bucket by bucket. Islands of several nodes
/// that overlap inside a bucket merge into one whose inner gap is unknown (counted as 0, a
/// lower bound); a lone node's island keeps its exact longest gap; islands that do not
/// overlap leave an exactly located stretch between them.
fn islands(run: &Run, nodes: &[usize]) -> Vec<Island> {
    let mut out = Vec::new();
    for b in &run.buckets {
        let mut spans: Vec<Island> = nodes
            .iter()
            .filter_map(
                |&i| match (b.first_us.get(i).copied().flatten(), b.last_us.get(i)) {
                    (Some(first), Some(Some(last))) => Some(Island {
                        first_us: first,
                        last_us: *last,
                        max_gap_us: b.max_gap_us.get(i).copied().unwrap_or(0),
                    }),
                    _ => None,
                },
            )
            .collect();
        spans.sort_by_key(|s| s.first_us);
        let mut merged: Vec<Island> = Vec::new();
        for span in spans {
            match merged.last_mut() {
                Some(m) if span.first_us <= m.last_us => {
                    m.last_us = m.last_us.max(span.last_us);
                    m.max_gap_us = 0;
                }
                _ => merged.push(span),
            }
        }
        out.extend(merged);
    }
    out
}

/// Every stretch without a success of any of `nodes`, in time order, from the run start to
/// the end of the last bucket.
pub fn stretches(run: &Run, nodes: &[usize]) -> Vec<Stretch> {
    let end_us = run_end_ms(run).max(0) as u64 * 1000;
    let mut out = Vec::new();
    let mut previous_last = 0u64;
    for island in islands(run, nodes) {
        out.push(Stretch {
            from_us: previous_last,
            to_us: island.first_us,
            len_us: island.first_us.saturating_sub(previous_last),
        });
        if island.max_gap_us > 0 {
            out.push(Stretch {
                from_us: island.first_us,
                to_us: island.last_us,
                len_us: island.max_gap_us,
            });
        }
        previous_last = island.last_us;
    }
    out.push(Stretch {
        from_us: previous_last,
        to_us: end_us.max(previous_last),
        len_us: end_us.saturating_sub(previous_last),
    });
    out
}

fn us(ms: i64) -> u64 {
    ms.max(0) as u64 * 1000
}

/// The longest stretch (ms) without a success of `subject` that overlaps `[from_ms, to_ms]`.
pub fn unavailability_ms(run: &Run, subject: Subject, from_ms: i64, to_ms: i64) -> f64 {
    let (from_us, to_us) = (us(from_ms), us(to_ms));
    stretches(run, &subject.nodes(run))
        .iter()
        .filter(|s| s.overlaps(from_us, to_us))
        .map(|s| s.len_us)
        .max()
        .unwrap_or(0) as f64
        / 1000.0
}

/// The longest part (ms) inside `[from_ms, to_ms]` of a stretch without a success of any of
/// `nodes` (what the six measures count: a stretch that began before the phase counts only
/// from the phase's start).
pub fn longest_within_ms(run: &Run, nodes: &[usize], from_ms: i64, to_ms: i64) -> f64 {
    let (from_us, to_us) = (us(from_ms), us(to_ms));
    stretches(run, nodes)
        .iter()
        .map(|s| s.len_within(from_us, to_us))
        .max()
        .unwrap_or(0) as f64
        / 1000.0
}

/// The first success of `subject` at or after `from_ms`, as ms after `from_ms`.
pub fn first_success_after_ms(run: &Run, subject: Subject, from_ms: i64) -> Option<f64> {
    let from_us = us(from_ms);
    islands(run, &subject.nodes(run))
        .iter()
        .find(|i| i.last_us >= from_us)
        .map(|i| i.first_us.max(from_us).saturating_sub(from_us) as f64 / 1000.0)
}

/// The seconds that lie wholly inside `[from_ms, to_ms)` (second N covers N-1 s to N s).
pub fn seconds_within(run: &Run, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Second> {
    run.seconds.iter().filter(move |s| {
        let begin = (s.second as i64 - 1) * 1000;
        begin >= from_ms && begin + 1000 <= to_ms
    })
}

/// Mean successes per second of `subject` over the whole seconds inside `[from_ms, to_ms)`.
pub fn rate(run: &Run, subject: Subject, from_ms: i64, to_ms: i64) -> Option<f64> {
    let counts: Vec<u64> = seconds_within(run, from_ms, to_ms)
        .map(|s| match subject {
            Subject::Node(i) => s.nodes.get(i).copied().unwrap_or(0),
            Subject::Cluster => s.cluster,
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum::<u64>() as f64 / counts.len() as f64)
}

/// The first seconds of a run are warm-up, not baseline.
pub const WARM_UP_MS: i64 = 2000;

/// Synthetic runs for the tests of the analysis, the report and the comparison.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::data::{Bucket, Second};
    use perseus_model::load::Latency;

    /// A successful chaos event that began `begin_ms` and ended `end_ms` after the run's start.
    pub fn event(
        run: &Run,
        command: &str,
        host: &str,
        begin_ms: i64,
        end_ms: i64,
    ) -> crate::data::Event {
        crate::data::Event {
            time: chrono::DateTime::default(),
            unix_ms: run.start_unix_ms + end_ms,
            begin_unix_ms: run.start_unix_ms + begin_ms,
            command: command.parse().unwrap(),
            host: host.parse().unwrap(),
            ok: true,
            detail: String::new(),
            layer: None,
            scope: None,
            failure: None,
        }
    }

    /// A run of `secs` seconds with 100 ms buckets where node `i` succeeds every 10 ms except
    /// while `down(i, t_ms)` is true.
    pub fn synthetic(secs: u64, nodes: usize, down: impl Fn(usize, u64) -> bool) -> Run {
        let mut run = Run {
            start_unix_ms: 1_000_000,
            nodes: (1..=nodes).map(|i| format!("n{i}")).collect(),
            ..Default::default()
        };
        for b in 0..secs * 10 {
            let t_ms = b * 100;
            let mut bucket = Bucket {
                t_ms,
                ms: 100,
                ok: vec![0; nodes],
                err: vec![0; nodes],
                first_us: vec![None; nodes],
                last_us: vec![None; nodes],
                max_gap_us: vec![0; nodes],
                ..Default::default()
            };
            for i in 0..nodes {
                let mut last: Option<u64> = None;
                for step in 0..10 {
                    let t = t_ms + step * 10 + 5;
                    if down(i, t) {
                        continue;
                    }
                    let us = t * 1000;
                    bucket.ok[i] += 1;
                    bucket.first_us[i].get_or_insert(us);
                    if let Some(l) = last {
                        bucket.max_gap_us[i] = bucket.max_gap_us[i].max(us - l);
                    }
                    last = Some(us);
                }
                bucket.last_us[i] = last;
            }
            run.buckets.push(bucket);
        }
        for s in 1..=secs {
            let nodes_ok: Vec<u64> = (0..nodes)
                .map(|i| {
                    run.buckets[((s - 1) * 10) as usize..(s * 10) as usize]
                        .iter()
                        .map(|b| b.ok[i])
                        .sum()
                })
                .collect();
            run.seconds.push(Second {
                second: s,
                cluster: nodes_ok.iter().sum(),
                nodes: nodes_ok,
                latency_us: Latency {
                    p50: Some(1000),
                    p99: Some(1000 * s),
                    max: Some(50_000),
                    ..Default::default()
                },
                ..Default::default()
            });
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{event, synthetic};
    use super::*;

    #[test]
    fn node_index_from_host_names() {
        assert_eq!(node_index("a1".parse().unwrap()), Some(0));
        assert_eq!(node_index("e3".parse().unwrap()), Some(2));
        assert_eq!(node_index(HostArg::Leader), None);
    }

    #[test]
    fn cluster_window_counts_only_when_every_node_is_down() {
        let run = synthetic(6, 3, |_, t| (2000..2600).contains(&t));
        assert_eq!(unavailability_ms(&run, Subject::Cluster, 1900, 2700), 610.0);
        assert_eq!(unavailability_ms(&run, Subject::Cluster, 4000, 5000), 10.0);
    }

    #[test]
    fn failed_chaos_commands_are_not_faults() {
        let mut run = synthetic(3, 3, |_, _| false);
        let mut failed = event(&run, "kill", "a1", 1000, 1001);
        failed.ok = false;
        run.events = vec![failed];
        assert!(faults(&run).is_empty());
    }
}
