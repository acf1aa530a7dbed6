//! Runs a scenario against a running testbed: starts a fresh load generator run, waits for its
//! `start` record (the first line of `load.jsonl`, which says when the load began), applies
//! the faults on time through the chaos command, undoes whatever is still broken at the end,
//! and leaves the data in the results folder (`load.jsonl`, `load.tsv`, `events.jsonl`,
//! `chaos.log`, `scenario.txt`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use perseus_model::load::{Record, Start};
use perseus_model::{FaultKind, HostArg};

use crate::scenario::Scenario;

/// How long the load generator may take to write its `start` record.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the tools are and what to load.
#[derive(Clone, Debug)]
pub struct Setup {
    pub loadgen: PathBuf,
    pub chaos: PathBuf,
    pub nodes: String,
    pub connections: u32,
    /// chaos's `--target` (which cluster `leader` means), when given.
    pub target: Option<String>,
}

/// What happened, for the exit code.
#[derive(Debug)]
pub struct Outcome {
    pub loadgen_exit: Option<i32>,
    pub failed_steps: Vec<String>,
}

fn chaos(setup: &Setup, dir: &Path, args: &[&str], log: &Mutex<File>) -> bool {
    let mut command = Command::new(&setup.chaos);
    command.arg("--events").arg(dir.join("events.jsonl"));
    if let Some(target) = &setup.target {
        command.arg("--target").arg(target);
    }
    let output = command.args(args).output();
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    match output {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            print!("# chaos {}: {text}", args.join(" "));
            let _ = write!(log, "$ chaos {}\n{text}", args.join(" "));
            out.status.success()
        }
        Err(e) => {
            println!(
                "# chaos {}: cannot run {}: {e}",
                args.join(" "),
                setup.chaos.display()
            );
            let _ = writeln!(log, "$ chaos {}\ncannot run: {e}", args.join(" "));
            false
        }
    }
}

/// Runs `scenario`, writing into `dir` (created).
pub fn run(setup: &Setup, scenario: &Scenario, dir: &Path) -> Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("scenario.txt"), format!("{scenario:#?}\n"))?;
    let log = Arc::new(Mutex::new(File::create(dir.join("chaos.log"))?));

    let mut loadgen = Command::new(&setup.loadgen)
        .arg("--nodes")
        .arg(&setup.nodes)
        .arg("--connections")
        .arg(setup.connections.to_string())
        .arg("--duration")
        .arg(scenario.duration.as_secs().max(1).to_string())
        .arg("--out")
        .arg(dir.join("load.jsonl"))
        .arg("--allow-violations")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", setup.loadgen.display()))?;
    let stdout = loadgen.stdout.take().context("loadgen stdout")?;

    // Copy the per-second table to load.tsv and to our stdout.
    let tsv_path = dir.join("load.tsv");
    let copier = std::thread::spawn(move || -> Result<()> {
        let mut tsv = File::create(&tsv_path)?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            writeln!(tsv, "{line}")?;
            println!("{line}");
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

    let mut steps = Vec::new();
    for step in &scenario.steps {
        let wait = (t0 + step.at).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        let (setup, dir, log, step) = (setup.clone(), dir.to_path_buf(), log.clone(), step.clone());
        steps.push(std::thread::spawn(move || {
            let mut args = vec![step.fault.to_string()];
            args.extend(step.host.map(|h| h.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ok = chaos(&setup, &dir, &args, &log);
            (ok, args.join(" "))
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

    // Leave the testbed whole whatever the scenario did: heal everything, then undo each
    // other fault still open.
    chaos(setup, dir, &[FaultKind::Heal.name()], &log);
    for (fault, host) in hosts_left_broken(scenario) {
        if let Some(undo) = fault.undo().filter(|u| *u != FaultKind::Heal) {
            chaos(setup, dir, &[&undo.to_string(), &host.to_string()], &log);
        }
    }
    Ok(Outcome {
        loadgen_exit: status.code(),
        failed_steps,
    })
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

/// Faults the scenario opened and did not undo, per host (a `restart` also brings a killed
/// host back).
fn hosts_left_broken(scenario: &Scenario) -> Vec<(FaultKind, HostArg)> {
    let mut broken: Vec<(FaultKind, HostArg)> = Vec::new();
    for step in &scenario.steps {
        let Some(host) = step.host else { continue };
        if step.fault.undo().is_some() {
            broken.push((step.fault.clone(), host));
        } else {
            broken.retain(|(f, h)| {
                let undone = step.fault.undoes(f)
                    || (step.fault == FaultKind::Restart && *f == FaultKind::Kill);
                !(undone && *h == host)
            });
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Step;

    #[test]
    fn finds_what_the_scenario_left_broken() {
        let step = |at: u64, fault: &str, host: &str| Step {
            at: Duration::from_secs(at),
            fault: fault.parse().unwrap(),
            host: Some(host.parse().unwrap()),
        };
        let scenario = Scenario {
            expect: vec![],
            duration: Duration::from_secs(60),
            steps: vec![
                step(1, "kill", "a1"),
                step(2, "start", "a1"),
                step(3, "pause", "a2"),
                step(4, "kill", "a3"),
            ],
        };
        let a = |n| HostArg::Host(perseus_model::HostName::perseus(n));
        assert_eq!(
            hosts_left_broken(&scenario),
            vec![(FaultKind::Pause, a(2)), (FaultKind::Kill, a(3))]
        );
    }
}
