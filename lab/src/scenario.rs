//! Scenario files: a load duration and timed fault steps, e.g.
//!
//! ```toml
//! duration = "50s"
//! [[step]]
//! at = "10s"
//! fault = "kill"
//! host = "a1"
//! ```
//!
//! plus optional `[[expect]]` blocks (what the run must show, see check.rs), and the random
//! schedules of the soak, built as the same structure.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use perseus_model::{FaultKind, HostArg, HostName};

use crate::check::Expect;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    duration: String,
    #[serde(default)]
    step: Vec<FileStep>,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    at: String,
    fault: String,
    #[serde(default)]
    host: Option<String>,
}

/// One timed chaos command.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub fault: FaultKind,
    /// `None` only for kinds that may act on every host (`heal`).
    pub host: Option<HostArg>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub duration: Duration,
    pub steps: Vec<Step>,
    /// What the run must show (checked after it, see check.rs).
    pub expect: Vec<Expect>,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => bail!("{text:?}: unknown unit {unit:?} (ms, s or m)"),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        bail!("{text:?} is not a duration like 10s, 500ms or 2m");
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario> {
        let file: File = toml::from_str(text).context("not a scenario file")?;
        let duration = parse_duration(&file.duration).context("field `duration`")?;
        let mut steps = Vec::new();
        for (i, step) in file.step.into_iter().enumerate() {
            let n = i + 1;
            let at = parse_duration(&step.at).with_context(|| format!("step {n}: field `at`"))?;
            let fault: FaultKind = step
                .fault
                .parse()
                .with_context(|| format!("step {n}: field `fault`"))?;
            let host: Option<HostArg> = step
                .host
                .as_deref()
                .map(str::parse)
                .transpose()
                .with_context(|| format!("step {n}: field `host`"))?;
            if host.is_none() && !fault.may_omit_host() {
                bail!("step {n}: fault {:?} needs a host", step.fault);
            }
            if at >= duration {
                bail!(
                    "step {n}: at {:?} is not before the end ({:?})",
                    at,
                    duration
                );
            }
            steps.push(Step { at, fault, host });
        }
        steps.sort_by_key(|s| s.at);
        Ok(Scenario {
            duration,
            steps,
            expect: file.expect,
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// A random fault schedule over `duration` for `hosts`: one fault at a time (kill,
    /// pause or isolate of one host, sometimes of two hosts at once, which stops the whole
    /// cluster), each undone before the next, everything undone 10 s before the end.
    pub fn random(duration: Duration, hosts: &[HostName], seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut steps = Vec::new();
        let end = duration.as_secs_f64() - 10.0;
        let mut t = 5.0 + rng.random_range(0.0..3.0);
        while t + 3.0 < end && !hosts.is_empty() {
            let (fault, undo) = match rng.random_range(0..3) {
                0 => (FaultKind::Kill, FaultKind::Start),
                1 => (FaultKind::Pause, FaultKind::Resume),
                _ => (FaultKind::Isolate, FaultKind::Heal),
            };
            let first = rng.random_range(0..hosts.len());
            let mut victims = vec![hosts[first]];
            if hosts.len() > 2 && rng.random_bool(0.15) {
                let second = (first + rng.random_range(1..hosts.len())) % hosts.len();
                victims.push(hosts[second]);
            }
            let hold = rng.random_range(2.0..8.0_f64).min(end - t);
            for host in &victims {
                steps.push(Step {
                    at: Duration::from_secs_f64(t),
                    fault: fault.clone(),
                    host: Some(HostArg::Host(*host)),
                });
                steps.push(Step {
                    at: Duration::from_secs_f64(t + hold),
                    fault: undo.clone(),
                    host: Some(HostArg::Host(*host)),
                });
            }
            t += hold + rng.random_range(3.0..8.0);
        }
        steps.sort_by_key(|s| s.at);
        Scenario {
            duration,
            steps,
            expect: vec![Expect::NoViolations, Expect::FaultsUndone],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn parses_a_scenario_and_sorts_steps() {
        let s = Scenario::parse(
            "duration = \"30s\"\n[[step]]\nat = \"20s\"\nfault = \"start\"\nhost = \"a1\"\n\
             [[step]]\nat = \"10s\"\nfault = \"kill\"\nhost = \"a1\"\n[[step]]\nat = \"25s\"\nfault = \"heal\"\n",
        )
        .unwrap();
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.steps[0].fault, FaultKind::Kill);
        assert_eq!(s.steps[2].host, None);
    }

    #[test]
    fn rejects_bad_scenarios_with_the_reason() {
        let err = |text: &str| format!("{:#}", Scenario::parse(text).unwrap_err());
        assert!(err(
            "duration = \"30s\"\n[[step]]\nat = \"5s\"\nfault = \"explode\"\nhost = \"a1\"\n"
        )
        .contains("unknown fault"));
        assert!(
            err("duration = \"30s\"\n[[step]]\nat = \"5s\"\nfault = \"kill\"\n")
                .contains("needs a host")
        );
        assert!(err(
            "duration = \"30s\"\n[[step]]\nat = \"40s\"\nfault = \"kill\"\nhost = \"a1\"\n"
        )
        .contains("not before the end"));
        assert!(err("duration = \"30s\"\nspeed = 3\n").contains("speed"));
    }

    #[test]
    fn random_schedules_are_seeded_undo_every_fault_and_end_early() {
        let hosts = perseus_model::System::Perseus.hosts();
        let a = Scenario::random(Duration::from_secs(300), &hosts, 7);
        let b = Scenario::random(Duration::from_secs(300), &hosts, 7);
        assert_eq!(a, b);
        assert!(a.steps.len() >= 10);
        let last = a.steps.last().unwrap().at;
        assert!(last <= Duration::from_secs(290));
        let count = |f: FaultKind| a.steps.iter().filter(|s| s.fault == f).count();
        assert_eq!(count(FaultKind::Kill), count(FaultKind::Start));
        assert_eq!(count(FaultKind::Pause), count(FaultKind::Resume));
        assert_eq!(count(FaultKind::Isolate), count(FaultKind::Heal));
    }
}
