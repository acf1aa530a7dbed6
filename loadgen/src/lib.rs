//! Perseus load generator: the read → create-if-missing → increment → CAS loop of the original
//! Perseus, one logical client (key, TCP connection) per node and connection slot, one stdout
//! line per second aligned to the run start, and a consistency check of every value read.
//!
//! [`run`] drives a whole run; the binary (`main.rs`) only parses flags, installs the signal
//! handlers and maps the result to an exit code.

pub mod checker;
pub mod client;
pub mod config;
pub mod contention;
pub mod output;
pub mod stats;
pub mod worker;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::checker::{KeyChecker, State};
use crate::client::EtcdClient;
use crate::config::{Config, KeyMode};
use crate::contention::{SharedKey, SharedView};
use crate::output::{columns_line, start_line, Output, Summary};
use crate::stats::{Recorder, ViolationEvent};
use crate::worker::{Checker, FinalRead, Worker};

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

/// Reads each shared key once after the run (any node, up to 3 tries each) and checks the
/// final count; returns (checked, unreachable).
async fn final_read_shared(
    cfg: &Config,
    shared: &[Arc<SharedKey>],
    recorder: &Recorder,
) -> (usize, usize) {
    let (mut checked, mut unreachable) = (0, 0);
    for key in shared {
        let mut read = None;
        'tries: for attempt in 0..3 {
            for (n, url) in cfg.nodes.iter().enumerate() {
                let mut client = EtcdClient::new(url, key.key(), cfg.timeout);
                match client.get().await {
                    Ok(node) => {
                        read = Some((n, node));
                        break 'tries;
                    }
                    Err(e) => log::debug!("final read of {} via {url}: {e}", key.key()),
                }
            }
            if attempt < 2 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let Some((n, node)) = read else {
            unreachable += 1;
            continue;
        };
        checked += 1;
        let state = match node {
            None => None,
            Some(k) => match k.value.trim().parse::<i64>() {
                Ok(v) => Some(State::new(v, k.modified_index)),
                Err(_) => {
                    let v = SharedView::new(key.clone()).observe_garbage(&k.value);
                    log::error!("violation on node {}: {v}", n + 1);
                    recorder.violation(n, v);
                    continue;
                }
            },
        };
        if let Err(v) = key.check_final(state) {
            log::error!("violation on node {}: {v}", n + 1);
            recorder.violation(n, v);
        }
    }
    (checked, unreachable)
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
    let start_wall = chrono::Utc::now();
    let mut out = Output::new(stdout, cfg.out.as_deref(), start_wall).with_context(|| {
        format!(
            "cannot create the output file {}",
            cfg.out
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    })?;
    let nodes = cfg.nodes.len();
    out.line(&start_line(start_wall, &cfg.run_id));
    out.line(&columns_line(nodes));
    out.json(&serde_json::json!({
        "type": "start",
        "time": output::rfc3339_ms(start_wall),
        "unix_ms": start_wall.timestamp_millis(),
        "run_id": cfg.run_id,
        "nodes": cfg.nodes,
        "connections": cfg.connections,
        "duration_s": cfg.duration.as_secs_f64(),
        "timeout_ms": cfg.timeout.as_millis() as u64,
        "bucket_ms": cfg.bucket_ms,
        "keys": run_keys(&cfg),
        "key_mode": cfg.keys.as_string(),
    }));
    out.flush_json();

    let recorder = Arc::new(Recorder::new(start, nodes, cfg.bucket_ms));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared: Vec<Arc<SharedKey>> = match cfg.keys {
        KeyMode::Own => Vec::new(),
        KeyMode::Shared(_) => run_keys(&cfg).into_iter().map(SharedKey::new).collect(),
    };
    let mut workers = Vec::new();
    for (n, url) in cfg.nodes.iter().enumerate() {
        for c in 0..cfg.connections {
            // Shared keys: connection c of every node works on key c mod N, so each key is
            // raced on by all nodes. The final read is done once per key, below.
            let (checker, final_read) = match cfg.keys {
                KeyMode::Own => (
                    Checker::Own(KeyChecker::new(key_for(&cfg.run_id, n, c))),
                    cfg.final_read,
                ),
                KeyMode::Shared(_) => (
                    Checker::Shared(SharedView::new(shared[c as usize % shared.len()].clone())),
                    false,
                ),
            };
            let w = Worker::with_checker(
                n,
                url,
                checker,
                cfg.timeout,
                recorder.clone(),
                cfg.error_pause,
            );
            workers.push(tokio::spawn(w.run(stop_rx.clone(), final_read)));
        }
    }

    let t0 = tokio::time::Instant::from_std(start);
    let mut ticker = tokio::time::interval_at(
        t0 + Duration::from_secs(1) + REPORT_GRACE,
        Duration::from_secs(1),
    );
    let deadline = t0 + cfg.duration;
    let total_seconds = cfg.duration.as_secs();
    let mut reported = 0u64;
    let mut stopped_at: Option<Instant> = None;
    let mut stopped_by = "duration";
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
                stopped_by = "signal";
                let _ = stop_tx.send(true);
                break;
            }
        }
    }
    let stopped_at = stopped_at.unwrap_or_else(Instant::now);
    let _ = stop_tx.send(true);

    // Workers stop at once (an in-flight request is abandoned, its write stays pending in the
    // checker), then do their bounded final read.
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
    let count = |f: FinalRead| reports.iter().filter(|r| r.final_read == f).count();
    let (mut final_checked, mut final_unreachable, mut final_skipped) = (
        count(FinalRead::Checked),
        count(FinalRead::Unreachable),
        count(FinalRead::Skipped),
    );
    if !shared.is_empty() {
        // Every worker has stopped: the count each key reached can be checked once.
        if cfg.final_read {
            let (checked, unreachable) = final_read_shared(&cfg, &shared, &recorder).await;
            (final_checked, final_unreachable, final_skipped) = (checked, unreachable, 0);
        } else {
            (final_checked, final_unreachable, final_skipped) = (0, 0, shared.len());
        }
    }

    let rest = recorder.drain_violations();
    out.violations(&rest);
    keep_first(&mut first_violations, rest);
    let totals = recorder.totals();
    let summary = Summary {
        run_id: cfg.run_id.clone(),
        nodes: cfg.nodes.clone(),
        connections: cfg.connections,
        elapsed: stopped_at.saturating_duration_since(start),
        stopped_by,
        seconds_reported: reported,
        totals,
        final_checked,
        final_unreachable,
        final_skipped,
        first_violations,
        keys: cfg.keys.as_string(),
        contention: shared.iter().map(|k| k.figures()).collect(),
    };
    for l in summary.lines() {
        out.line(&l);
    }
    out.json(&summary.json());
    out.flush_json();
    let exit_code = if summary.total_violations() > 0 && !cfg.allow_violations {
        1
    } else {
        0
    };
    Ok(RunResult { summary, exit_code })
}
