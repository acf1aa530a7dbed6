//! lab's command line: the commands and the tools a run uses (the load generator, chaos,
//! the system under test), parsed by clap; main.rs carries each command out.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "lab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Tools {
    /// The system under test: the load generator's client, and the defaults of --nodes,
    /// --target and --system
    #[arg(long, env = "LAB_STORE", default_value = "perseus")]
    pub store: perseus_model::System,
    /// Node endpoints for the load generator (default: the store's three hosts)
    #[arg(long, env = "LAB_NODES")]
    pub nodes: Option<String>,
    /// Logical clients per node
    #[arg(long, env = "LAB_CONNECTIONS", default_value_t = 1)]
    pub connections: u32,
    /// Directory holding the loadgen and chaos binaries (default: next to this one)
    #[arg(long, env = "LAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Name of the system under test, for the report (default: the store's title)
    #[arg(long, env = "LAB_SYSTEM")]
    pub system: Option<String>,
    /// Which cluster chaos acts on (`leader`): auto or a system's name (default: the store,
    /// except for perseus, where chaos decides)
    #[arg(long, env = "LAB_TARGET")]
    pub target: Option<perseus_model::Target>,
    /// The load: counter (each client's own key) or register (reads, blind writes and
    /// compare-and-sets of many clients on a few shared keys)
    #[arg(long, env = "LAB_WORKLOAD", default_value = "counter")]
    pub workload: String,
    /// Run a control instead of the store as it is deployed: etcd-stale-reads,
    /// zookeeper-no-sync, sentinel-primary-cut (it sets the store; the run passes when the
    /// history checker catches it)
    #[arg(long, env = "LAB_CONTROL")]
    pub control: Option<perseus_model::Control>,
    /// Search steps per key of the history checker before it says "undecided"
    #[arg(long, env = "LAB_SEARCH_BUDGET", default_value_t = 2_000_000)]
    pub search_budget: u64,
    /// What the progress bar (on a terminal) calls this run (default: the system's name)
    #[arg(long, env = "LAB_PROGRESS_LABEL")]
    pub progress_label: Option<String>,
}

impl Tools {
    /// The report's name of the system.
    pub fn title(&self) -> String {
        let title = self
            .system
            .clone()
            .unwrap_or_else(|| self.store().title().to_string());
        match self.control {
            Some(c) => format!("{title}, control {}", c.name()),
            None => title,
        }
    }

    /// The store the load generator loads: the control's system when running a control.
    pub fn store(&self) -> perseus_model::System {
        self.control.map_or(self.store, |c| c.system())
    }

    /// The system chaos aims at: the target when it names one, else the store's.
    pub fn aimed(&self) -> perseus_model::System {
        match self.target {
            Some(perseus_model::Target::System(s)) => s,
            _ => self.store(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a scenario file and write the results folder
    Run {
        /// The scenario (TOML)
        scenario: PathBuf,
        /// Results folder to create
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        tools: Tools,
    },
    /// Random faults (seeded) for a while, then everything healed; non-zero exit on violations
    Soak {
        #[arg(long, default_value_t = 300)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Hosts faults may hit (default: the hosts of the system chaos aims at)
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<perseus_model::HostName>,
        /// Fault kinds and weights, e.g. `kill=3,loss=1,amnesia=1` (default: every kind but
        /// amnesia; delay is left out, with a note, when the kernel has no netem)
        #[arg(long)]
        mix: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        tools: Tools,
    },
    /// Side by side: the summary table of several results folders (compare.md) and their
    /// throughput plots stacked in one picture (compare.png)
    Compare {
        /// Results folders of `lab run` (each with load.jsonl, events.jsonl, system.txt)
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write compare.md and compare.png (default: the first folder's parent)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// What each system made of a storage fault (wipe, rollback, truncate): one row per results
    /// folder of a storage scenario (refused / repaired / silently rejoined, every lost
    /// acknowledged write, stale reads, downtime), written as storage.md
    Storage {
        /// Results folders of `lab run` of compose/scenarios/storage-*.toml
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write storage.md (default: the first folder's parent)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The distributions of a matrix (scripts/matrix.sh): matrix.md, matrix.json and
    /// matrix.png from the finished runs under DIR/runs
    Matrix { dir: PathBuf },
    /// Plan a matrix into DIR: every system × fault × run, seeded (runs/*/scenario.toml,
    /// runs/*/matrix-run.json, and plan.tsv listing them in the order to run)
    MatrixPlan {
        dir: PathBuf,
        /// Systems, space-separated
        #[arg(long)]
        systems: String,
        /// Faults, space-separated (any fault kind, with its parameters: `kill loss:30`)
        #[arg(long)]
        faults: String,
        #[arg(long, default_value_t = 10)]
        runs: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long the fault lasts
        #[arg(long, default_value = "8s")]
        hold: perseus_model::Span,
        /// Load after the recovery
        #[arg(long, default_value = "15s")]
        after: perseus_model::Span,
        /// The fault begins AT_MIN + [0, SPREAD] into the load
        #[arg(long, default_value = "7s")]
        at_min: perseus_model::Span,
        #[arg(long, default_value = "3s")]
        spread: perseus_model::Span,
    },
    /// Check a results folder against expectations ([[expect]] blocks; default: no
    /// violations) and print the per-second table with the faults marked; exit 1 if one fails
    Check {
        dir: PathBuf,
        /// A file with [[expect]] blocks (a scenario file or one of its own), or one
        /// expectation inline: a check's name and key=value settings ("others-serve from=3s");
        /// repeat it for several
        #[arg(long)]
        expect: Vec<String>,
        /// Do not print the per-second table
        #[arg(long)]
        no_table: bool,
    },
    /// Wait until a loadgen `--out` file has its start record; print the load's start (Unix ms)
    WaitStart {
        file: PathBuf,
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
    /// The `make bench` table from loadgen `--out` files (one per load level, in order)
    Bench {
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// One line of a loadgen `--out` file's summary record, for scripts that print a row per
    /// run: requests and their 5xx share, errors by kind, the contention figures on shared
    /// keys with the unknown share of increments, violations
    Summary {
        file: PathBuf,
        /// Printed first (the run's name)
        #[arg(long, default_value = "")]
        label: String,
    },
    /// One request to a node's keys API (etcd v2), for scripts: prints `STATUS VALUE
    /// ERRORCODE REASON MESSAGE`, the first four one word each (`-` for what the answer
    /// lacks), so that `read` splits them; exit 1 when the node does not answer
    Kv {
        op: crate::node_api::KeyOp,
        /// The node, http://HOST:PORT
        node: String,
        key: String,
        /// The value to write (put, create)
        value: Option<String>,
    },
    /// A counter or gauge of the nodes' /metrics summed over them, for scripts: `LABEL=SUM`
    /// per value of the label --by, space-separated (nothing when no node has it), or the sum
    /// alone without --by; a node that does not answer is named on stderr and counts nothing
    Metrics {
        /// The metric's name (perseus_outcome_resolutions_total, ...)
        name: String,
        /// The nodes, http://HOST:PORT, comma-separated
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Sum per value of this label
        #[arg(long)]
        by: Option<String>,
    },
    /// What `make bench` counts before a load level, into a JSON file: the CPU of the
    /// system's containers (cgroups), the acceptors' Redis counters or etcd's WAL fsyncs, the
    /// CPU stolen from the machine
    BenchCounters {
        /// etcd, or a Perseus variant (perseus, perseus-full-rounds, ...)
        system: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// The costs of one load level, after it (NAME.costs, read by `lab bench`): every counter
    /// of `lab bench-counters` now minus BEFORE, the wall time and the load generator's CPU
    /// (from its log); with --run, one line of the level's figures
    BenchCosts {
        system: String,
        /// The counters `lab bench-counters` wrote before the level
        #[arg(long)]
        before: PathBuf,
        /// The level's wall time, ns
        #[arg(long)]
        wall_ns: u64,
        /// The load generator's output (its last line says its CPU)
        #[arg(long)]
        loadgen_log: Option<PathBuf>,
        /// The level's loadgen `--out` file, to print its figures
        #[arg(long)]
        run: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a results folder's history.jsonl (every operation of the run): the verdict in
    /// history-check.json, the history as history.edn (Jepsen) and history.porcupine.json
    /// (Porcupine); exit 1 if it is not linearizable (a control: if it is not caught)
    CheckHistory {
        dir: PathBuf,
        /// Search steps per key before "undecided"
        #[arg(long, default_value_t = 2_000_000)]
        budget: u64,
        /// Judge it as this control's run (default: the folder's control.txt)
        #[arg(long)]
        control: Option<perseus_model::Control>,
        /// Judge it against this system's promise (e.g. zookeeper: sequential)
        #[arg(long)]
        system: Option<perseus_model::System>,
    },
    /// Measure the history checker: a million counter-loop operations, then the register
    /// search at 10, 30 and 100 clients per key
    BenchChecker {
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        /// Where the generated histories go (default: a temporary folder, removed after)
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// (Re)write report.md and the plots of a results folder
    /// Regenerate the results page (docs/results.md) from the runs' summaries under RESULTS,
    /// kept in DATA (docs/results/*.json) with the hand-written sections there (*.md)
    Results {
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long, default_value = "docs/results")]
        data: PathBuf,
        #[arg(long, default_value = "docs/results.md")]
        out: PathBuf,
    },
    /// A progress bar (on a terminal; nothing otherwise) for a loop in a shell script, fed
    /// through FILE: a line `done` per finished step, `now TEXT` for what runs, `end` at the
    /// end, any other line printed above the bar
    Progress {
        #[arg(long)]
        feed: PathBuf,
        #[arg(long)]
        total: u64,
        #[arg(long, default_value = "")]
        label: String,
        /// The expected seconds per step, for the time left before the first step ends
        #[arg(long, value_name = "SECS")]
        per_step: Option<u64>,
    },
    /// Open DIR/report.html in headless Chromium: check that it renders (charts drawn, no
    /// script error on the console) and keep a screenshot (DIR/report.png)
    BrowserCheck { dir: PathBuf },
    /// (Re)write report.md, report.html and the plots of a results folder
    Report {
        dir: PathBuf,
        #[arg(long, default_value = "Perseus (Gryadka/CASPaxos)")]
        system: String,
    },
}
