//! Runs a scenario against a running testbed: starts a fresh load generator run, waits for its
//! `start` record (the first line of `load.jsonl`, which says when the load began), applies
//! the faults on time through the chaos command, undoes whatever is still broken at the end,
//! and leaves the data in the results folder (`load.jsonl`, `load.tsv`, `events.jsonl`,
//! `chaos.log`, `scenario.txt`, and every operation in `history.jsonl`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use perseus_model::load::{Record, Start};
use perseus_model::{
    ChaosCall, ChaosEvent, ChaosOptions, Failure, FaultKind, HostArg, HostName, LoadCall, Span,
    System, Target,
};

use crate::progress::Progress;
use crate::scenario::Scenario;

/// How long the load generator may take to write its `start` record.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the tools are and what to load.
#[derive(Clone, Debug)]
pub struct Setup {
    pub loadgen: PathBuf,
    pub chaos: PathBuf,
    pub nodes: Vec<String>,
    /// The load generator's `--system` (which client it uses).
    pub store: System,
    pub connections: u32,
    /// chaos's `--target` (which cluster `leader` means), when given.
    pub target: Option<Target>,
    /// More load generator arguments (the workload, a control's variant).
    pub loadgen_args: Vec<String>,
    /// What the progress bar calls the run.
    pub label: String,
}

/// What happened, for the exit code.
#[derive(Debug)]
pub struct Outcome {
    pub loadgen_exit: Option<i32>,
    pub failed_steps: Vec<String>,
}

impl Setup {
    /// chaos's options for a run writing its events into `dir`.
    fn chaos_options(&self, events: Option<PathBuf>) -> ChaosOptions {
        ChaosOptions {
            events,
            target: self.target,
        }
    }
}

/// Runs one chaos action, printing and logging what it said; whether it succeeded.
fn chaos(
    setup: &Setup,
    dir: &Path,
    call: &ChaosCall,
    log: &Mutex<File>,
    progress: &Progress,
) -> bool {
    let argv = setup
        .chaos_options(Some(dir.join("events.jsonl")))
        .argv(call);
    let output = Command::new(&setup.chaos).args(&argv).output();
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    match output {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            progress.say(&format!("# chaos {call}: {}", text.trim_end()));
            let _ = write!(log, "$ chaos {call}\n{text}");
            out.status.success()
        }
        Err(e) => {
            progress.say(&format!(
                "# chaos {call}: cannot run {}: {e}",
                setup.chaos.display()
            ));
            let _ = writeln!(log, "$ chaos {call}\ncannot run: {e}");
            false
        }
    }
}

/// Runs `scenario`, writing into `dir` (created).
pub fn run(setup: &Setup, scenario: &Scenario, dir: &Path) -> Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("scenario.txt"), format!("{scenario:#?}\n"))?;
    let log = Arc::new(Mutex::new(File::create(dir.join("chaos.log"))?));

    let load = LoadCall {
        system: setup.store,
        nodes: setup.nodes.clone(),
        connections: setup.connections,
        duration_secs: scenario.duration.as_secs(),
        out: dir.join("load.jsonl"),
        allow_violations: true,
    };
    let mut loadgen = Command::new(&setup.loadgen)
        .args(load.argv())
        .arg("--history")
        .arg(dir.join(crate::history::HISTORY_FILE))
        .args(&setup.loadgen_args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", setup.loadgen.display()))?;
    let stdout = loadgen.stdout.take().context("loadgen stdout")?;
    let progress = Progress::timed(scenario.duration, &setup.label);

    // Copy the per-second table to load.tsv and to our stdout (above the bar).
    let tsv_path = dir.join("load.tsv");
    let printer = progress.clone();
    let copier = std::thread::spawn(move || -> Result<()> {
        let mut tsv = File::create(&tsv_path)?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            writeln!(tsv, "{line}")?;
            printer.say(&line);
        }
        Ok(())
    });
    let t0 = match wait_for_start(&dir.join("load.jsonl"), &mut loadgen) {
        Ok(t0) => t0,
        Err(e) => {
            let _ = loadgen.kill();
            let _ = loadgen.wait();
            return Err(e);
        }
    };

    // Steps on different hosts run side by side (two hosts killed at once), but the commands
    // on one host run in their order: a heal that starts while the fault it undoes is still
    // being installed (chaos takes seconds on a busy machine) would race its rules. A step
    // without a host (heal of all, a partition) waits for every host.
    let locks = HostLocks::default();
    let mut steps = Vec::new();
    for step in &scenario.steps {
        let wait = (t0 + step.at).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        let (setup, dir, log, step) = (setup.clone(), dir.to_path_buf(), log.clone(), step.clone());
        let progress = progress.clone();
        let turn = locks.take(step.call.host.map(|h| h.to_string()));
        steps.push(std::thread::spawn(move || {
            let _turn = turn.wait();
            progress.now(&step.call.to_string());
            let ok = chaos(&setup, &dir, &step.call, &log, &progress);
            (ok, step.call.to_string())
        }));
    }
    let mut failed_steps = Vec::new();
    for handle in steps {
        match handle.join() {
            Ok((true, _)) => {}
            Ok((false, what)) => failed_steps.push(what),
            Err(_) => failed_steps.push("a chaos step thread panicked".into()),
        }
    }
    let status = loadgen.wait().context("waiting for the load generator")?;
    let _ = copier.join();

    // Leave the testbed whole whatever the scenario did: heal undoes every kind of fault
    // (rules, qdiscs, pauses, killed acceptors, killed hosts).
    chaos(
        setup,
        dir,
        &ChaosCall::new(FaultKind::Heal, None),
        &log,
        &progress,
    );
    progress.finish();
    Ok(Outcome {
        loadgen_exit: status.code(),
        failed_steps,
    })
}

/// Orders the chaos commands per host: each step takes its place in line when it is due
/// (in scenario order) and runs once every earlier step on the same host (or any earlier
/// step, for a step without a host) has finished.
#[derive(Default)]
struct HostLocks {
    /// The completion signal of the latest step per host ("" = the steps without a host).
    last: Mutex<std::collections::HashMap<String, Arc<Done>>>,
}

/// Set when a step finished.
#[derive(Default)]
struct Done {
    finished: Mutex<bool>,
    signal: std::sync::Condvar,
}

impl Done {
    fn wait(&self) {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        while !*finished {
            finished = self
                .signal
                .wait(finished)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A step's place in line: what it waits for, and its own completion signal.
struct Turn {
    before: Vec<Arc<Done>>,
    mine: Arc<Done>,
}

/// Marks the step finished when dropped (also when its thread panics).
struct Finished(Arc<Done>);

impl Drop for Finished {
    fn drop(&mut self) {
        *self.0.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.signal.notify_all();
    }
}

impl Turn {
    fn wait(self) -> Finished {
        for d in &self.before {
            d.wait();
        }
        Finished(self.mine)
    }
}

impl HostLocks {
    fn take(&self, host: Option<String>) -> Turn {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mine = Arc::new(Done::default());
        let before: Vec<Arc<Done>> = match &host {
            // A host-less step waits for everything before it.
            None => last.values().cloned().collect(),
            // A host step waits for its host and for the last host-less step.
            Some(h) => [last.get(h).cloned(), last.get("").cloned()]
                .into_iter()
                .flatten()
                .collect(),
        };
        match host {
            None => {
                for v in last.values_mut() {
                    *v = mine.clone();
                }
                last.insert(String::new(), mine.clone());
            }
            Some(h) => {
                last.insert(h, mine.clone());
            }
        }
        Turn { before, mine }
    }
}

/// Waits for the `start` record the load generator writes (flushed) before its first
/// request; returns the instant the load began, from the record's wall-clock time.
fn wait_for_start(load_jsonl: &Path, loadgen: &mut std::process::Child) -> Result<Instant> {
    let start = wait_for_start_record(load_jsonl, START_TIMEOUT, || {
        match loadgen
            .try_wait()
            .context("waiting for the load generator")?
        {
            Some(status) => bail!("the load generator exited ({status}) before it started"),
            None => Ok(()),
        }
    })?;
    // How long ago the load began, by the wall clock (never in the future).
    let ago_ms = (chrono::Utc::now().timestamp_millis() - start.unix_ms).max(0);
    let ago = Duration::from_millis(ago_ms as u64);
    Ok(Instant::now().checked_sub(ago).unwrap_or_else(Instant::now))
}

/// Polls `load_jsonl` until its first line is a `start` record (or `timeout` passes, or
/// `alive` fails: the writer is gone).
pub fn wait_for_start_record(
    load_jsonl: &Path,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<Start> {
    let begin = Instant::now();
    while begin.elapsed() < timeout {
        let first = std::fs::read_to_string(load_jsonl)
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
            .and_then(|line| serde_json::from_str::<Record>(&line).ok());
        if let Some(Record::Start(start)) = first {
            return Ok(start);
        }
        alive()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!(
        "no start record in {} within {} s",
        load_jsonl.display(),
        timeout.as_secs()
    )
}

/// Whether the hosts' kernel can delay packets (netem): tries `chaos delay HOST 1ms` and heals
/// it. Ok(false) when chaos's event says the kernel cannot (`Failure::Unsupported`); other
/// failures are errors.
pub fn kernel_has_netem(setup: &Setup, host: HostName) -> Result<bool> {
    let events = std::env::temp_dir().join(format!("lab-netem-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&events);
    let run = |call: &ChaosCall, events: Option<PathBuf>| {
        Command::new(&setup.chaos)
            .args(setup.chaos_options(events).argv(call))
            .output()
            .with_context(|| format!("running {}", setup.chaos.display()))
    };
    let host = Some(HostArg::Host(host));
    let probe = ChaosCall::new(FaultKind::Delay(Span::from_millis(1), None), host);
    let out = run(&probe, Some(events.clone()))?;
    let recorded = std::fs::read_to_string(&events).unwrap_or_default();
    let _ = std::fs::remove_file(&events);
    if out.status.success() {
        let healed = run(&ChaosCall::new(FaultKind::Heal, host), None)?;
        if !healed.status.success() {
            bail!(
                "chaos heal after the netem probe failed: {}",
                String::from_utf8_lossy(&healed.stderr)
            );
        }
        return Ok(true);
    }
    let failures: Vec<Option<Failure>> = ChaosEvent::parse_lines(&recorded)
        .map(|events| events.iter().map(|e| e.failure).collect())
        .unwrap_or_default();
    if failures.contains(&Some(Failure::Unsupported)) {
        return Ok(false);
    }
    bail!(
        "probing netem with chaos {probe} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_on_one_host_run_in_order_and_hostless_steps_wait_for_all() {
        let locks = HostLocks::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let slow = locks.take(Some("a1".into()));
        let other = locks.take(Some("a2".into()));
        let after = locks.take(Some("a1".into()));
        let all = locks.take(None);
        let spawn = |turn: Turn, name: &'static str, ms: u64| {
            let order = order.clone();
            std::thread::spawn(move || {
                let _f = turn.wait();
                std::thread::sleep(Duration::from_millis(ms));
                order.lock().unwrap().push(name);
            })
        };
        let handles = vec![
            spawn(all, "heal all", 0),
            spawn(after, "heal a1", 0),
            spawn(slow, "loss a1", 150),
            spawn(other, "kill a2", 0),
        ];
        for h in handles {
            h.join().unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.last(), Some(&"heal all"));
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("loss a1") < pos("heal a1"));
        assert!(pos("kill a2") < pos("loss a1"), "{order:?}");
    }
}
