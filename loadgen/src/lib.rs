//! Perseus load generator: the read → create-if-missing → increment → CAS loop of the original
//! Perseus, one logical client (key, TCP connection) per node and connection slot, one stdout
//! line per second aligned to the run start, and a consistency check of every value read.
//!
//! [`run`] drives a whole run; the binary (`main.rs`) only parses flags, installs the signal
//! handlers and maps the result to an exit code.
//!
//! # Layout
//!
//! - [`config`]: the command line, checked into a `Config`.
//! - [`worker`]: one logical client's loop (the counter loop), [`register`] the register
//!   workload's; both talk to a system through [`store`] (one client per system behind the
//!   `Store` trait; [`client`] is etcd v2's, for Perseus and etcd).
//! - Checking as it goes: [`checker`] (a key with one writer), [`contention`] (keys shared by
//!   many); the whole history goes to disk through [`history_log`] for `perseus-history`.
//! - [`stats`]: the counters every worker adds to; [`output`] prints the table and writes
//!   the JSON-lines records (`perseus_model::load`).

pub mod checker;
pub mod client;
pub mod config;
pub mod contention;
pub mod history_log;
pub mod output;
pub mod register;
pub mod replicas;
pub mod stats;
pub mod store;
pub mod worker;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use perseus_model::load::{self, Record, StopReason};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checker::{KeyChecker, State};
use crate::config::{Config, KeyMode, Workload};
use crate::contention::{SharedKey, SharedView};
use crate::history_log::HistoryLog;
use crate::output::{columns_line, Output, Summary};
use crate::stats::{Recorder, ViolationEvent};
use crate::store::AnyStore;
use crate::worker::{Checker, FinalRead, Worker, WorkerEnv, WorkerReport};
use perseus_history::{Event, EventKind, Func};

/// A second is reported this long after it ends, so events of its last microseconds are in.
const REPORT_GRACE: Duration = Duration::from_millis(20);
/// Violations detailed in the summary.
const SUMMARY_VIOLATIONS: usize = 20;

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub summary: Summary,
    /// 0, or 1 if violations were found and not allowed.
    pub exit_code: i32,
}

fn keep_first(first: &mut Vec<ViolationEvent>, more: Vec<ViolationEvent>) {
    let room = SUMMARY_VIOLATIONS.saturating_sub(first.len());
    first.extend(more.into_iter().take(room));
}

/// Key of a logical client: `{run_id}-n{node}-c{conn}` (node 1-based, conn 0-based).
pub fn key_for(run_id: &str, node: usize, conn: u32) -> String {
    format!("{run_id}-n{}-c{conn}", node + 1)
}

/// Key `i` of `--keys shared:N`: `{run_id}-s{i}`.
pub fn shared_key_for(run_id: &str, i: u32) -> String {
    format!("{run_id}-s{i}")
}

/// The keys of the run: one per client (`own`), or the shared ones.
fn run_keys(cfg: &Config) -> Vec<String> {
    match cfg.keys {
        KeyMode::Own => (0..cfg.nodes.len())
            .flat_map(|n| (0..cfg.connections).map(move |c| (n, c)))
            .map(|(n, c)| key_for(&cfg.run_id, n, c))
            .collect(),
        KeyMode::Shared(k) => (0..k).map(|i| shared_key_for(&cfg.run_id, i)).collect(),
    }
}

/// Runs the load until `cfg.duration` passes or `shutdown` completes, writing the table to
/// `stdout` (and JSON lines to `cfg.out`), then prints the summary.
pub async fn run<F>(
    cfg: Config,
    stdout: Box<dyn Write + Send>,
    shutdown: F,
) -> anyhow::Result<RunResult>
where
    F: Future<Output = ()>,
{
    let start = Instant::now();
    let mut out = open_output(&cfg, stdout)?;
    announce_start(&cfg, &mut out);
    let recorder = Arc::new(Recorder::new(start, cfg.nodes.len(), cfg.bucket_ms));
    let history = Arc::new(match &cfg.history {
        Some(path) => HistoryLog::create(path, start)
            .with_context(|| format!("cannot create the history file {}", path.display()))?,
        None => HistoryLog::disabled(start),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared: Vec<Arc<SharedKey>> = match cfg.keys {
        KeyMode::Own => Vec::new(),
        KeyMode::Shared(_) => run_keys(&cfg)
            .into_iter()
            .map(|k| SharedKey::new(k, cfg.system.consistency()))
            .collect(),
    };
    let env = WorkerEnv {
        system: cfg.system,
        timeout: cfg.timeout,
        recorder: recorder.clone(),
        error_pause: cfg.error_pause,
        history: history.clone(),
        local_reads: cfg.local_reads,
        etcd3_gateway: cfg.etcd3_gateway,
    };
    let workers = spawn_workers(&cfg, &env, stop_rx, &shared);
    let ending = report_seconds(&cfg, start, &recorder, &mut out, &stop_tx, shutdown).await;
    let _ = stop_tx.send(true);
    let reports = collect_workers(workers, &cfg).await;
    let shared_reads = final_read_shared(&cfg, &shared, &recorder, &history).await;
    if cfg.final_read {
        compare_replicas(&cfg, &recorder, &mut out).await;
    }
    history.flush();
    if let Some(path) = &cfg.history {
        check_history(path, history.lines(), &mut out);
    }
    let summary = summarize(
        &cfg,
        start,
        &recorder,
        &mut out,
        ending,
        &reports,
        (&shared, shared_reads),
    );
    let exit_code = if summary.total_violations() > 0 && !cfg.allow_violations {
        1
    } else {
        0
    };
    Ok(RunResult { summary, exit_code })
}

/// Opens stdout and the JSON-lines file; the wall-clock start of the run is now.
fn open_output(cfg: &Config, stdout: Box<dyn Write + Send>) -> anyhow::Result<Output> {
    Output::new(stdout, cfg.out.as_deref(), chrono::Utc::now()).with_context(|| {
        format!(
            "cannot create the output file {}",
            cfg.out
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    })
}

/// Prints the start and column lines and writes (flushed) the `start` record, which tells
/// whoever waits for the load (lab) that it has begun and when.
fn announce_start(cfg: &Config, out: &mut Output) {
    let start_wall = out.start();
    let record = load::Start {
        time: start_wall,
        unix_ms: start_wall.timestamp_millis(),
        run_id: cfg.run_id.clone(),
        nodes: cfg.nodes.clone(),
        connections: cfg.connections,
        duration_s: cfg.duration.as_secs_f64(),
        timeout_ms: cfg.timeout.as_millis() as u64,
        bucket_ms: cfg.bucket_ms,
        keys: run_keys(cfg),
        key_mode: cfg.keys.as_string(),
    };
    out.line(&record.comment_line());
    out.line(&columns_line(cfg.nodes.len()));
    out.record(&Record::Start(record));
    out.flush_json();
}

/// Checks the run's history once it is written and prints the verdict as a `#` line (the
/// counter loop's is checked in O(n log n); the register search within its budget).
fn check_history(path: &std::path::Path, lines: u64, out: &mut Output) {
    let t = Instant::now();
    match perseus_history::check_file(path, perseus_history::CheckOptions::default()) {
        Ok(r) => {
            out.line(&format!(
                "# history: {} lines in {}; {} (checked in {:.1} s)",
                lines,
                path.display(),
                r.line(),
                t.elapsed().as_secs_f64()
            ));
            for v in r.violations.iter().take(5) {
                out.line(&format!(
                    "# history violation on {}: {} {}",
                    v.key,
                    v.kind.as_str(),
                    v.message
                ));
            }
        }
        Err(e) => out.line(&format!("# history: cannot check {}: {e}", path.display())),
    }
}

/// One task per node and connection slot, each a logical client with its own key, or
/// (`shared`) on shared key `c mod N`, so that each shared key is raced on by every node; in
/// the register workload client `i` (over all nodes) works on shared key `i mod N`.
fn spawn_workers(
    cfg: &Config,
    env: &WorkerEnv,
    stop: watch::Receiver<bool>,
    shared: &[Arc<SharedKey>],
) -> Vec<JoinHandle<WorkerReport>> {
    let mut workers = Vec::new();
    if cfg.workload == Workload::Register {
        let mut index = 0u64;
        for (n, url) in cfg.nodes.iter().enumerate() {
            for _ in 0..cfg.connections {
                let key = shared[index as usize % shared.len()].key().to_string();
                let w = Worker::with_checker(n, url, Checker::Unchecked(key), env);
                workers.push(tokio::spawn(register::run_client(w, index, stop.clone())));
                index += 1;
            }
        }
        return workers;
    }
    for (n, url) in cfg.nodes.iter().enumerate() {
        for c in 0..cfg.connections {
            // Shared keys are read once per key after the run, not once per client.
            let (checker, final_read) = if shared.is_empty() {
                (
                    Checker::Own(KeyChecker::new(key_for(&cfg.run_id, n, c))),
                    cfg.final_read,
                )
            } else {
                let key = shared[c as usize % shared.len()].clone();
                {
                    let client = n * cfg.connections as usize + c as usize;
                    (Checker::Shared(SharedView::new(key, n, client)), false)
                }
            };
            let w = Worker::with_checker(n, url, checker, env);
            workers.push(tokio::spawn(w.run(stop.clone(), final_read)));
        }
    }
    workers
}

/// `--compare-replicas-only`: no load, only the replica comparison of the run's keys, printed
/// as a run prints it; the number of divergences (`None`: no per-replica read for the system).
pub async fn compare_replicas_only(cfg: &Config, out: &mut dyn Write) -> Option<usize> {
    let r = replicas::compare(cfg.system, &cfg.nodes, &run_keys(cfg), cfg.timeout).await;
    for line in replica_lines(cfg, &r) {
        let _ = writeln!(out, "{line}");
    }
    r.compared.then_some(r.divergences.len())
}

/// The comparison's `#` lines.
fn replica_lines(cfg: &Config, r: &replicas::Outcome) -> Vec<String> {
    if !r.compared {
        return vec![format!(
            "# replicas: not compared (no per-replica read for {} here yet)",
            cfg.system
        )];
    }
    let mut lines = vec![format!(
        "# replicas: {} keys read from each of {} replicas' own copies ({} rounds, {} reads unanswered): {} divergences",
        r.keys,
        cfg.nodes.len(),
        r.rounds,
        r.unanswered,
        r.divergences.len()
    )];
    for (n, v) in &r.divergences {
        lines.push(format!("# replica divergence on node {}: {v}", n + 1));
    }
    lines
}

/// After the final reads: every key of the run from every replica's own copy, each divergence
/// still there once settled a violation on the replica's node (see [`replicas`]).
async fn compare_replicas(cfg: &Config, recorder: &Recorder, out: &mut Output) {
    let keys = run_keys(cfg);
    let r = replicas::compare(cfg.system, &cfg.nodes, &keys, cfg.timeout).await;
    for line in replica_lines(cfg, &r) {
        out.line(&line);
    }
    for (n, v) in r.divergences {
        log::error!("violation on node {}: {v}", n + 1);
        recorder.violation(n, v);
    }
}

/// After every worker has stopped: reads each shared key once (any node, up to 3 rounds), as
/// the last operation of its history, then (the counter loop) judges each key's history.
/// Returns (read, unreachable); nothing with own keys.
async fn final_read_shared(
    cfg: &Config,
    shared: &[Arc<SharedKey>],
    recorder: &Recorder,
    history: &HistoryLog,
) -> (usize, usize) {
    let (mut checked, mut unreachable) = (0, 0);
    for key in shared {
        if cfg.final_read {
            match final_read_one(cfg, key, history).await {
                Some((n, Err(raw))) => {
                    let v = SharedView::new(key.clone(), n, usize::MAX).observe_garbage(&raw);
                    log::error!("violation on node {}: {v}", n + 1);
                    recorder.violation(n, v);
                    checked += 1;
                }
                Some((_, Ok(state))) => {
                    key.set_final(state);
                    checked += 1;
                }
                None => unreachable += 1,
            }
        }
        if cfg.workload == Workload::Counter {
            for (n, v) in key.check() {
                log::error!("violation on node {}: {v}", n + 1);
                recorder.violation(n, v);
            }
        }
    }
    (checked, unreachable)
}

/// Reads one shared key through any node (up to 3 rounds), recorded in the run's history and
/// the key's: `(node, state)`, `(node, Err(raw))` for a value that is not an integer, `None`
/// when no node answered.
async fn final_read_one(
    cfg: &Config,
    key: &SharedKey,
    history: &HistoryLog,
) -> Option<(usize, Result<Option<State>, String>)> {
    let log = |n: usize, e: Event| {
        history.record(&e);
        // the final read is nobody's session
        key.record(n, usize::MAX, &e);
    };
    for round in 0..3 {
        for (n, url) in cfg.nodes.iter().enumerate() {
            let mut client = AnyStore::new(cfg.system, url, key.key(), cfg.timeout);
            let p = history.process();
            log(n, Event::invoke(p, key.key(), Func::Read, history.now()));
            let done = |kind| Event::complete(kind, p, key.key(), Func::Read, history.now());
            match client.read_latest().await {
                Ok(None) => {
                    log(n, done(EventKind::Ok));
                    return Some((n, Ok(None)));
                }
                Ok(Some(k)) => match k.value.trim().parse::<i64>() {
                    Ok(v) => {
                        log(
                            n,
                            Event {
                                value: Some(v),
                                version: Some(k.modified_index),
                                ..done(EventKind::Ok)
                            },
                        );
                        return Some((n, Ok(Some(State::new(v, k.modified_index)))));
                    }
                    Err(_) => {
                        log(
                            n,
                            Event {
                                error: Some("value is not an integer".into()),
                                ..done(EventKind::Fail)
                            },
                        );
                        return Some((n, Err(k.value)));
                    }
                },
                Err(e) => {
                    log(
                        n,
                        Event {
                            error: Some(history_log::short(&e)),
                            ..done(EventKind::Fail)
                        },
                    );
                    log::debug!("final read of {} via {url}: {e}", key.key())
                }
            }
        }
        if round < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    None
}

/// How the reporting loop ended.
struct Ending {
    reported: u64,
    stopped_at: Instant,
    stopped_by: StopReason,
    first_violations: Vec<ViolationEvent>,
}

/// Reports each second once it is over, until the duration has passed and its last second
/// is reported, or until `shutdown` (then at once). Tells the workers to stop at the deadline.
async fn report_seconds<F>(
    cfg: &Config,
    start: Instant,
    recorder: &Recorder,
    out: &mut Output,
    stop_tx: &watch::Sender<bool>,
    shutdown: F,
) -> Ending
where
    F: Future<Output = ()>,
{
    let t0 = tokio::time::Instant::from_std(start);
    let mut ticker = tokio::time::interval_at(
        t0 + Duration::from_secs(1) + REPORT_GRACE,
        Duration::from_secs(1),
    );
    let deadline = t0 + cfg.duration;
    let total_seconds = cfg.duration.as_secs();
    let mut reported = 0u64;
    let mut stopped_at: Option<Instant> = None;
    let mut stopped_by = StopReason::Duration;
    let mut first_violations = Vec::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                reported += 1;
                let slot = recorder.take_second(reported);
                out.second(reported, &slot, cfg.bucket_ms);
                let v = recorder.drain_violations();
                out.violations(&v);
                keep_first(&mut first_violations, v);
                out.flush_json();
                if reported >= total_seconds {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                let _ = stop_tx.send(true);
            }
            _ = &mut shutdown, if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                stopped_by = StopReason::Signal;
                let _ = stop_tx.send(true);
                break;
            }
        }
    }
    Ending {
        reported,
        stopped_at: stopped_at.unwrap_or_else(Instant::now),
        stopped_by,
        first_violations,
    }
}

/// Waits (bounded) for the workers: they start no new operation, the one in flight completes
/// within the timeout, then they do their bounded final read. A worker past the bound is
/// aborted: its open operation stays open in the history (counted as unknown).
async fn collect_workers(
    workers: Vec<JoinHandle<WorkerReport>>,
    cfg: &Config,
) -> Vec<WorkerReport> {
    let bound = cfg.timeout * 4 + Duration::from_secs(5);
    let mut reports = Vec::new();
    for h in workers {
        let abort = h.abort_handle();
        match tokio::time::timeout(bound, h).await {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => log::error!("a worker failed: {e}"),
            Err(_) => {
                abort.abort();
                log::error!("a worker did not stop in time");
            }
        }
    }
    reports
}

/// Records the last violations, then prints and writes the summary.
fn summarize(
    cfg: &Config,
    start: Instant,
    recorder: &Recorder,
    out: &mut Output,
    ending: Ending,
    reports: &[WorkerReport],
    (shared, (shared_checked, shared_unreachable)): (&[Arc<SharedKey>], (usize, usize)),
) -> Summary {
    let count = |f: FinalRead| reports.iter().filter(|r| r.final_read == f).count();
    // With shared keys the final reads are per key (see final_read_shared).
    let (final_checked, final_unreachable, final_skipped) = if shared.is_empty() {
        (
            count(FinalRead::Checked),
            count(FinalRead::Unreachable),
            count(FinalRead::Skipped),
        )
    } else if cfg.final_read {
        (shared_checked, shared_unreachable, 0)
    } else {
        (0, 0, shared.len())
    };
    let mut first_violations = ending.first_violations;
    let rest = recorder.drain_violations();
    out.violations(&rest);
    keep_first(&mut first_violations, rest);
    let summary = Summary {
        run_id: cfg.run_id.clone(),
        nodes: cfg.nodes.clone(),
        connections: cfg.connections,
        elapsed: ending.stopped_at.saturating_duration_since(start),
        stopped_by: ending.stopped_by,
        seconds_reported: ending.reported,
        totals: recorder.totals(),
        final_checked,
        final_unreachable,
        final_skipped,
        first_violations,
        keys: cfg.keys.as_string(),
        // the register workload's keys are judged from the history, not counted
        contention: match cfg.workload {
            Workload::Register => Vec::new(),
            Workload::Counter => shared.iter().map(|k| k.figures()).collect(),
        },
    };
    for l in summary.lines() {
        out.line(&l);
    }
    out.record(&Record::Summary(summary.record()));
    out.flush_json();
    summary
}
