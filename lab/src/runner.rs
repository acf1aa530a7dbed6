//! Runs a scenario against a running testbed: starts a fresh load generator run, applies
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

use crate::scenario::Scenario;

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

    // Copy the per-second table to load.tsv and to our stdout; note when the run starts.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<Instant>();
    let tsv_path = dir.join("load.tsv");
    let copier = std::thread::spawn(move || -> Result<()> {
        let mut tsv = File::create(&tsv_path)?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line.starts_with("# start=") {
                let _ = started_tx.send(Instant::now());
            }
            writeln!(tsv, "{line}")?;
            println!("{line}");
        }
        Ok(())
    });
    let t0 = match started_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(t0) => t0,
        Err(_) => {
            let _ = loadgen.kill();
            bail!("the load generator did not start within 30 s");
        }
    };

    let mut steps = Vec::new();
    for step in &scenario.steps {
        let wait = (t0 + step.at).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        let (setup, dir, log, step) = (setup.clone(), dir.to_path_buf(), log.clone(), step.clone());
        steps.push(std::thread::spawn(move || {
            let argv = step.argv();
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
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

    // Leave the testbed whole whatever the scenario did: heal undoes every kind of fault
    // (rules, qdiscs, pauses, killed acceptors, killed hosts).
    chaos(setup, dir, &["heal"], &log);
    Ok(Outcome {
        loadgen_exit: status.code(),
        failed_steps,
    })
}

/// Whether the hosts' kernel can delay packets (netem): tries `chaos delay HOST 1ms` and heals
/// it. Ok(false) when chaos reports the missing sch_netem; other failures are errors.
pub fn kernel_has_netem(setup: &Setup, host: &str) -> Result<bool> {
    let run = |args: &[&str]| {
        let mut command = Command::new(&setup.chaos);
        if let Some(target) = &setup.target {
            command.arg("--target").arg(target);
        }
        command
            .args(args)
            .output()
            .with_context(|| format!("running {}", setup.chaos.display()))
    };
    let out = run(&["delay", host, "1ms"])?;
    if out.status.success() {
        let healed = run(&["heal", host])?;
        if !healed.status.success() {
            bail!(
                "chaos heal {host} after the netem probe failed: {}",
                String::from_utf8_lossy(&healed.stderr)
            );
        }
        return Ok(true);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("sch_netem") {
        return Ok(false);
    }
    bail!("probing netem with chaos delay {host} 1ms failed: {text}")
}
