//! `lab matrix-plan`: the runs of a matrix (every system × every fault × N runs), planned in
//! one place and seeded: for each run its scenario (the fault on the leader at a random
//! offset, held for a while, then the action that undoes it, from `ChaosCall::undo`) and its
//! `matrix-run.json` (what `lab matrix` reads back). Any fault kind of the table works, with
//! its parameters (`loss:30`). scripts/matrix.sh only brings each system up and down around
//! the `lab run` of each planned folder, in the plan's order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use perseus_model::{ChaosCall, FaultKind, HostArg, Span, System};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::figures::Plan;

/// What the matrix is made of.
#[derive(Clone, Debug)]
pub struct Settings {
    pub systems: Vec<System>,
    pub faults: Vec<FaultKind>,
    pub runs: u32,
    pub seed: u64,
    /// How long the fault lasts.
    pub hold: Duration,
    /// Load after the recovery.
    pub after: Duration,
    /// The fault begins `at_min + [0, spread]` into the load.
    pub at_min: Duration,
    pub spread: Duration,
}

/// One planned run.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Under the matrix folder: `runs/<system>-<fault>-<NN>`.
    pub dir: PathBuf,
    pub plan: Plan,
    /// The scenario file's text.
    pub scenario: String,
}

/// Parses `kill isolate loss:30` (spaces between the faults); each must be a fault (not an
/// undoing action).
pub fn parse_faults(text: &str) -> Result<Vec<FaultKind>> {
    let mut faults = Vec::new();
    for word in text.split_whitespace() {
        let fault: FaultKind = word.parse().with_context(|| format!("FAULTS: {word:?}"))?;
        if fault.is_undo() {
            bail!("FAULTS: {word:?} undoes faults; name the fault it undoes");
        }
        faults.push(fault);
    }
    if faults.is_empty() {
        bail!("FAULTS is empty");
    }
    Ok(faults)
}

/// Parses `perseus etcd` (spaces between the systems).
pub fn parse_systems(text: &str) -> Result<Vec<System>> {
    let systems = text
        .split_whitespace()
        .map(|w| w.parse::<System>().context("SYSTEMS"))
        .collect::<Result<Vec<_>>>()?;
    if systems.is_empty() {
        bail!("SYSTEMS is empty");
    }
    Ok(systems)
}

/// A fault as a folder name (`loss:30` → `loss-30`).
fn slug(fault: &FaultKind) -> String {
    let text: String = fault
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    text.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Every run, round by round (run 1 of every combination, then run 2, ...), so that an
/// interrupted matrix still covers every combination.
pub fn plan(s: &Settings) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let spread_ms = s.spread.as_millis() as u64;
    let mut out = Vec::new();
    let total = s.runs as usize * s.systems.len() * s.faults.len();
    for round in 1..=s.runs {
        for &system in &s.systems {
            for fault in &s.faults {
                let at = s.at_min + Duration::from_millis(rng.random_range(0..=spread_ms));
                let host = (!fault.takes_no_host()).then_some(HostArg::Leader);
                let call = ChaosCall::new(fault.clone(), host);
                let until = at + s.hold;
                let duration =
                    Duration::from_secs(at.as_millis().div_ceil(1000) as u64) + s.hold + s.after;
                let mut text = String::new();
                let _ = writeln!(
                    text,
                    "# matrix run {} of {total}: {system}, {fault} of the leader at {} ms for {} s",
                    out.len() + 1,
                    at.as_millis(),
                    s.hold.as_secs()
                );
                let _ = writeln!(text, "duration = \"{}s\"", duration.as_secs());
                let mut step = |at: Duration, call: &ChaosCall| {
                    let _ = write!(
                        text,
                        "\n[[step]]\nat = \"{}\"\nfault = \"{}\"\n",
                        Span(at),
                        call.fault
                    );
                    if let Some(h) = call.host {
                        let _ = writeln!(text, "host = \"{h}\"");
                    }
                };
                step(at, &call);
                if let Some(undo) = call.undo() {
                    step(until, &undo);
                }
                out.push(Planned {
                    dir: PathBuf::from("runs").join(format!("{system}-{}-{round:02}", slug(fault))),
                    plan: Plan {
                        system: system.name().to_string(),
                        fault: fault.to_string(),
                        run: round,
                        seed: s.seed,
                        at_s: at.as_millis() as f64 / 1000.0,
                        hold_s: s.hold.as_secs_f64(),
                    },
                    scenario: text,
                });
            }
        }
    }
    out
}

/// Writes every run's scenario.toml and matrix-run.json under `dir`, and `plan.tsv` (one line
/// per run: folder, system, fault, offset in s) for the script's loop.
pub fn write(dir: &Path, planned: &[Planned]) -> Result<()> {
    let mut tsv = String::new();
    for p in planned {
        let run_dir = dir.join(&p.dir);
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        std::fs::write(run_dir.join("scenario.toml"), &p.scenario)?;
        std::fs::write(
            run_dir.join("matrix-run.json"),
            format!("{}\n", serde_json::to_string(&p.plan)?),
        )?;
        let _ = writeln!(
            tsv,
            "{}\t{}\t{}\t{}",
            run_dir.display(),
            p.plan.system,
            p.plan.fault,
            p.plan.at_s
        );
    }
    std::fs::write(dir.join("plan.tsv"), tsv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn settings(faults: &str) -> Settings {
        Settings {
            systems: parse_systems("perseus etcd").unwrap(),
            faults: parse_faults(faults).unwrap(),
            runs: 2,
            seed: 1,
            hold: Duration::from_secs(8),
            after: Duration::from_secs(15),
            at_min: Duration::from_millis(7000),
            spread: Duration::from_millis(3000),
        }
    }

    #[test]
    fn every_kind_plans_a_scenario_that_parses_and_undoes_it() {
        let s = settings(
            "kill pause isolate isolate-inbound cut-clients loss:30 limit:256kbit \
             partition:majorities-ring restart amnesia",
        );
        let planned = plan(&s);
        assert_eq!(planned.len(), 2 * 2 * 10);
        assert_eq!(planned, plan(&s), "seeded");
        for p in &planned {
            let scenario = Scenario::parse(&p.scenario).unwrap_or_else(|e| panic!("{e:#}"));
            let fault: FaultKind = p.plan.fault.parse().unwrap();
            assert_eq!(scenario.steps[0].call.fault, fault);
            let undone = scenario.steps.get(1).map(|s| s.call.fault.clone());
            assert_eq!(undone, fault.undo(), "{}", p.scenario);
            assert!((7.0..=10.0).contains(&p.plan.at_s));
        }
        assert_eq!(planned[0].dir, PathBuf::from("runs/perseus-kill-01"));
        assert!(planned
            .iter()
            .any(|p| p.dir == Path::new("runs/etcd-loss-30-02")));
        let kill = Scenario::parse(&planned[0].scenario).unwrap();
        assert_eq!(kill.steps[1].call.to_string(), "start leader");
        assert_eq!(kill.steps[1].at - kill.steps[0].at, Duration::from_secs(8));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(parse_faults("kill quake").is_err());
        assert!(parse_faults("start").is_err());
        assert!(parse_faults(" ").is_err());
        assert!(parse_systems("perseus consul").is_err());
    }
}
