//! The figures lab's summaries carry from the runs to the results page and the plots: one
//! system's comparison [`Row`], one matrix run's [`RunFigures`] (with the [`Plan`] it ran),
//! the [`Stats`] over runs and one system × fault [`Group`]. Plain data: the comparison and the
//! matrix compute them, results.rs and plot.rs read them.

use serde::{Deserialize, Serialize};

use crate::measures::Measures;

/// One system's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub system: String,
    /// Host the crash hit (resolved `leader`), and the windows in ms.
    pub crash_host: Option<String>,
    pub crash_cluster_ms: Option<f64>,
    pub crash_survivors_ms: Option<f64>,
    /// From the start of the crashed host until its node served again, ms.
    pub crash_back_ms: Option<f64>,
    pub isolate_host: Option<String>,
    pub isolate_cluster_ms: Option<f64>,
    pub isolate_survivors_ms: Option<f64>,
    /// From the heal of the isolated host until its node served again, ms.
    pub isolate_back_ms: Option<f64>,
    /// The first partition's shape (e.g. majorities-ring) and its windows in ms: the cluster's,
    /// and the worst node's (a partition hits every node).
    pub partition_shape: Option<String>,
    pub partition_cluster_ms: Option<f64>,
    pub partition_worst_node_ms: Option<f64>,
    /// Cluster iterations/s over the whole seconds after warm-up and before the first fault.
    pub baseline_per_s: Option<f64>,
    /// Median of the per-second p99 latencies over the same seconds, ms.
    pub baseline_p99_ms: Option<f64>,
    /// The p99 of every iteration of the run (loadgen summary), ms.
    pub run_p99_ms: Option<f64>,
    pub violations: u64,
    /// Of the violations, the acknowledged writes found lost.
    #[serde(default)]
    pub lost_writes: u64,
}

/// What the script records about a run before starting it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Plan {
    pub system: String,
    pub fault: String,
    pub run: u32,
    pub seed: u64,
    /// When the fault was scheduled and for how long, s.
    pub at_s: f64,
    pub hold_s: f64,
}

/// One finished run's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunFigures {
    #[serde(flatten)]
    pub plan: Plan,
    /// The results folder, relative to the matrix folder.
    pub dir: String,
    /// The host the fault hit (resolved `leader`), if the fault happened.
    pub host: Option<String>,
    /// `lab run`'s exit code as the script saw it.
    pub exit: Option<i32>,
    pub measures: Option<Measures>,
    /// The same downtime and partial downtime over the fault-free seconds before the fault's
    /// command began (measures::quiet_window): the floor the load itself leaves on this
    /// machine, to read the measures against.
    pub quiet_downtime_ms: Option<f64>,
    pub quiet_partial_downtime_ms: Option<f64>,
    /// Cluster iterations/s in the 5 s before the fault, during it, and in the 5 s after the
    /// recovery.
    pub baseline_per_s: Option<f64>,
    pub during_per_s: Option<f64>,
    pub after_per_s: Option<f64>,
    pub violations: u64,
}

/// Median, p95 (nearest rank) and max of some runs' values; `missing` runs had none.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub median: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
    pub missing: usize,
}

impl Stats {
    pub fn of(values: &[Option<f64>]) -> Stats {
        let mut present: Vec<f64> = values.iter().flatten().copied().collect();
        present.sort_by(f64::total_cmp);
        let n = present.len();
        let rank = |q: f64| -> Option<f64> {
            (n > 0).then(|| present[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        let median = (n > 0).then(|| {
            if n % 2 == 1 {
                present[n / 2]
            } else {
                (present[n / 2 - 1] + present[n / 2]) / 2.0
            }
        });
        Stats {
            n,
            median,
            p95: rank(0.95),
            max: present.last().copied(),
            missing: values.len() - n,
        }
    }
}

/// One system × fault over its runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub system: String,
    pub fault: String,
    pub runs: usize,
    /// Per measure, in the order of `measures::NAMES`.
    pub measures: Vec<(String, Stats)>,
    /// Cluster throughput during / after the fault relative to the baseline, %.
    pub during_pct: Stats,
    pub after_pct: Stats,
    /// The fault-free floor of the downtime and partial downtime (see RunFigures).
    pub quiet_downtime: Stats,
    pub quiet_partial_downtime: Stats,
    pub violations: u64,
    pub failed_runs: usize,
}
