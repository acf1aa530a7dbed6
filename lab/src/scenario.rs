//! Scenario files: a load duration and timed fault steps, e.g.
//!
//! ```toml
//! duration = "50s"
//! [[step]]
//! at = "10s"
//! fault = "kill"
//! host = "a1"
//! layer = "acceptor"        # optional (kill/start/restart/pause/resume/isolate; acceptor also for
//!                           # wipe/rollback/truncate): host, acceptor, node
//! [[step]]
//! at = "20s"
//! fault = "loss:30"         # parameters after a colon: loss:PERCENT, limit:RATE, delay:D[,JITTER]
//! host = "a2"
//! scope = "all"             # optional, loss only: peers (default) or all
//! [[step]]
//! at = "30s"
//! fault = "partition:majorities-ring"   # no host: the shape names them
//! ```
//!
//! plus an optional `explain = """…"""` (what the scenario shows and why, printed into the
//! run's report.md with the violations found and the verdict of every expectation), and
//! optional `[[expect]]` blocks (what the run must show, see check.rs), and the random
//! schedules of the soak (weighted, seeded, every fault kind), built as the same structure.
//! Each step is one chaos command line (`Step::argv`).

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
    /// What the scenario shows and why, printed into the run's report.md.
    #[serde(default)]
    explain: Option<String>,
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
    #[serde(default)]
    layer: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// One timed chaos command.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub fault: FaultKind,
    /// `None` only for kinds that may act on every host (`heal`) and for `partition`.
    pub host: Option<HostArg>,
    /// chaos options before the command (`--layer acceptor`, `--scope all`).
    pub options: Vec<String>,
}

/// The kinds `layer` applies to.
const LAYERED: &[&str] = &[
    "kill", "start", "restart", "pause", "resume", "isolate", "wipe", "rollback", "truncate",
];

impl Step {
    /// A step without options.
    pub fn new(at: Duration, fault: FaultKind, host: Option<HostArg>) -> Step {
        Step {
            at,
            fault,
            host,
            options: Vec::new(),
        }
    }

    /// The chaos command line (after chaos's global options).
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.options.clone();
        v.push(self.fault.name().to_string());
        v.extend(self.host.map(|h| h.to_string()));
        v.extend(self.fault.cli_params());
        v
    }

    /// The value of option `--NAME`, if given.
    #[cfg(test)]
    pub fn option(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.options
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub duration: Duration,
    pub steps: Vec<Step>,
    /// What the run must show (checked after it, see check.rs).
    pub expect: Vec<Expect>,
    /// What the scenario shows and why (the file's `explain`), for report.md.
    pub explain: Option<String>,
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
            if fault.takes_no_host() {
                if host.is_some() {
                    bail!(
                        "step {n}: {} names its hosts in its shape: no `host`",
                        fault.name()
                    );
                }
            } else if host.is_none() && !fault.may_omit_host() {
                bail!("step {n}: fault {:?} needs a host", step.fault);
            }
            let mut options = Vec::new();
            if let Some(layer) = step.layer {
                if !LAYERED.contains(&fault.name()) {
                    bail!("step {n}: `layer` applies to {} only", LAYERED.join(", "));
                }
                if !["host", "acceptor", "node"].contains(&layer.as_str()) {
                    bail!("step {n}: layer {layer:?} is not host, acceptor or node");
                }
                options.extend(["--layer".to_string(), layer]);
            }
            if let Some(scope) = step.scope {
                if !matches!(fault, FaultKind::Loss(_)) {
                    bail!("step {n}: `scope` applies to loss only");
                }
                if !["peers", "all"].contains(&scope.as_str()) {
                    bail!("step {n}: scope {scope:?} is not peers or all");
                }
                options.extend(["--scope".to_string(), scope]);
            }
            if at >= duration {
                bail!(
                    "step {n}: at {:?} is not before the end ({:?})",
                    at,
                    duration
                );
            }
            steps.push(Step {
                at,
                fault,
                host,
                options,
            });
        }
        steps.sort_by_key(|s| s.at);
        Ok(Scenario {
            duration,
            steps,
            expect: file.expect,
            explain: file.explain.map(|e| e.trim().to_string()),
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// A random fault schedule over `duration` for `hosts`, drawn (seeded) from `mix`: one
    /// fault at a time, each undone before the next (kill, pause or isolate of two hosts at
    /// once now and then, which stops the whole cluster), everything undone 10 s before the end.
    pub fn random(
        duration: Duration,
        hosts: &[HostName],
        seed: u64,
        mix: &[(Kind, u32)],
    ) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut steps = Vec::new();
        let end = duration.as_secs_f64() - 10.0;
        let total: u32 = mix.iter().map(|(_, w)| w).sum();
        let mut t = 5.0 + rng.random_range(0.0..3.0);
        while t + 3.0 < end && !hosts.is_empty() && total > 0 {
            let mut pick = rng.random_range(0..total);
            let kind = mix
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(k, _)| *k)
                .unwrap_or(Kind::Kill);
            let first = rng.random_range(0..hosts.len());
            let mut victims = vec![hosts[first]];
            if kind.whole_host() && hosts.len() > 2 && rng.random_bool(0.15) {
                let second = (first + rng.random_range(1..hosts.len())) % hosts.len();
                victims.push(hosts[second]);
            }
            let hold = rng.random_range(2.0..8.0_f64).min(end - t);
            let (at, until) = (
                Duration::from_secs_f64(t),
                Duration::from_secs_f64(t + hold),
            );
            if kind == Kind::Partition {
                let shapes = ["halves", "bridge", "majorities-ring"];
                let mut shape = shapes[rng.random_range(0..shapes.len())].to_string();
                if hosts.len() == 3 && rng.random_bool(0.3) {
                    // An arbitrary two-sided cut: one host against the others.
                    let alone = hosts[first];
                    let rest: Vec<String> = hosts
                        .iter()
                        .filter(|h| **h != alone)
                        .map(|h| h.to_string())
                        .collect();
                    shape = format!("{alone} | {}", rest.join(" "));
                }
                steps.push(Step::new(at, FaultKind::Partition(shape), None));
                steps.push(Step::new(until, FaultKind::Heal, None));
            } else {
                for host in &victims {
                    let perseus = host.system == perseus_model::System::Perseus;
                    let (mut fault, mut undo) = kind.steps(&mut rng, perseus);
                    fault.at = at;
                    fault.host = Some(HostArg::Host(*host));
                    undo.at = until;
                    undo.host = Some(HostArg::Host(*host));
                    steps.push(fault);
                    steps.push(undo);
                }
            }
            t += hold + rng.random_range(3.0..8.0);
        }
        steps.sort_by_key(|s| s.at);
        Scenario {
            duration,
            steps,
            expect: vec![Expect::NoViolations, Expect::FaultsUndone],
            explain: None,
        }
    }
}

/// The kinds of fault a soak draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kill,
    Pause,
    Isolate,
    OneWay,
    CutClients,
    Loss,
    Limit,
    Delay,
    Partition,
    /// kill, pause or isolate of only the acceptor or only the node (Perseus).
    Layer,
    Amnesia,
    /// The storage faults (chaos's storage.rs): the host's data directory emptied,
    Wipe,
    /// a snapshot of it taken and put back a few seconds later (the disk went back in time),
    Rollback,
    /// or its log's tail cut and repaired. Each stops the whole host or, on Perseus, half
    /// the time only its acceptor.
    Truncate,
}

/// The soak's default mix: every kind but amnesia and the storage faults (which may lose
/// acknowledged writes by design, see docs/faults.md), weighted towards the classic faults.
pub const DEFAULT_MIX: &[(Kind, u32)] = &[
    (Kind::Kill, 3),
    (Kind::Pause, 2),
    (Kind::Isolate, 3),
    (Kind::OneWay, 2),
    (Kind::CutClients, 1),
    (Kind::Loss, 2),
    (Kind::Limit, 1),
    (Kind::Delay, 1),
    (Kind::Partition, 2),
    (Kind::Layer, 2),
];

const ALL_KINDS: [Kind; 14] = [
    Kind::Kill,
    Kind::Pause,
    Kind::Isolate,
    Kind::OneWay,
    Kind::CutClients,
    Kind::Loss,
    Kind::Limit,
    Kind::Delay,
    Kind::Partition,
    Kind::Layer,
    Kind::Amnesia,
    Kind::Wipe,
    Kind::Rollback,
    Kind::Truncate,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Isolate => "isolate",
            Kind::OneWay => "one-way",
            Kind::CutClients => "cut-clients",
            Kind::Loss => "loss",
            Kind::Limit => "limit",
            Kind::Delay => "delay",
            Kind::Partition => "partition",
            Kind::Layer => "layer",
            Kind::Amnesia => "amnesia",
            Kind::Wipe => "wipe",
            Kind::Rollback => "rollback",
            Kind::Truncate => "truncate",
        }
    }

    /// Whether the fault may hit two hosts at once.
    fn whole_host(self) -> bool {
        matches!(self, Kind::Kill | Kind::Pause | Kind::Isolate)
    }

    /// The fault's step and the step that undoes it (time and host filled in by the caller).
    fn steps(self, rng: &mut StdRng, perseus: bool) -> (Step, Step) {
        let step = |fault: FaultKind, options: &[&str]| Step {
            at: Duration::ZERO,
            fault,
            host: None,
            options: options.iter().map(|s| s.to_string()).collect(),
        };
        let heal = || step(FaultKind::Heal, &[]);
        match self {
            Kind::Kill => (step(FaultKind::Kill, &[]), step(FaultKind::Start, &[])),
            Kind::Pause => (step(FaultKind::Pause, &[]), step(FaultKind::Resume, &[])),
            Kind::Isolate => (step(FaultKind::Isolate, &[]), heal()),
            Kind::OneWay => {
                let f = if rng.random_bool(0.5) {
                    FaultKind::IsolateInbound
                } else {
                    FaultKind::IsolateOutbound
                };
                (step(f, &[]), heal())
            }
            Kind::CutClients => (step(FaultKind::CutClients, &[]), heal()),
            Kind::Loss => {
                let percent = [10, 30, 50][rng.random_range(0..3)];
                let scope = if rng.random_bool(0.25) {
                    "all"
                } else {
                    "peers"
                };
                (step(FaultKind::Loss(percent), &["--scope", scope]), heal())
            }
            Kind::Limit => {
                let rate = ["128kbit", "512kbit", "2mbit"][rng.random_range(0..3)];
                (step(FaultKind::Limit(rate.into()), &[]), heal())
            }
            Kind::Delay => {
                let d = ["20ms", "100ms"][rng.random_range(0..2)];
                (
                    step(FaultKind::Delay(d.into(), Some("10ms".into())), &[]),
                    heal(),
                )
            }
            Kind::Layer => {
                let layer = if rng.random_bool(0.5) {
                    "acceptor"
                } else {
                    "node"
                };
                let opts = ["--layer", layer];
                match rng.random_range(0..3) {
                    0 => (step(FaultKind::Kill, &opts), step(FaultKind::Start, &opts)),
                    1 => (step(FaultKind::Pause, &opts), step(FaultKind::Resume, &[])),
                    _ => (step(FaultKind::Isolate, &opts), heal()),
                }
            }
            Kind::Amnesia => (step(FaultKind::Amnesia, &[]), heal()),
            // Half the time only the acceptor (the node keeps running and must notice); the
            // layer applies to Perseus hosts only, so a soak of another system uses the host.
            Kind::Wipe | Kind::Rollback | Kind::Truncate => {
                let acceptor = perseus && rng.random_bool(0.5);
                let opts: &[&str] = if acceptor {
                    &["--layer", "acceptor"]
                } else {
                    &[]
                };
                match self {
                    Kind::Wipe => (step(FaultKind::Wipe, opts), heal()),
                    Kind::Truncate => (
                        step(
                            FaultKind::Truncate(perseus_model::fault::DEFAULT_TRUNCATE_BYTES),
                            opts,
                        ),
                        heal(),
                    ),
                    // The copy is taken when the fault "begins" and put back when it "ends":
                    // the writes of the seconds between are what the disk forgets.
                    _ => (
                        step(FaultKind::Snapshot, &[]),
                        step(FaultKind::Rollback, opts),
                    ),
                }
            }
            // Drawn by `random` itself (no host); kept total for the match.
            Kind::Partition => (step(FaultKind::Partition("halves".into()), &[]), heal()),
        }
    }
}

/// Parses a mix like `kill=3,loss=1` (names from `Kind::name`; missing kinds get weight 0).
pub fn parse_mix(text: &str) -> Result<Vec<(Kind, u32)>> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let kind = ALL_KINDS
            .iter()
            .find(|k| k.name() == name.trim())
            .copied()
            .with_context(|| {
                format!(
                    "unknown fault kind {name:?} in the mix (one of {})",
                    ALL_KINDS.map(Kind::name).join(", ")
                )
            })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .with_context(|| format!("weight {weight:?} of {name} is not a whole number"))?;
        mix.push((kind, weight));
    }
    if mix.iter().all(|(_, w)| *w == 0) {
        bail!("the mix {text:?} has no fault with a weight above 0");
    }
    Ok(mix)
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

    /// Every scenario the repository ships parses, with its expectations; the ones that
    /// explain themselves carry the text into the report.
    #[test]
    fn shipped_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                let name = path.file_stem().unwrap().to_string_lossy().to_string();
                if name == "amnesia" || name == "single-layer" || name.starts_with("storage-") {
                    assert!(
                        s.explain.as_deref().is_some_and(|e| e.len() > 200),
                        "{name}"
                    );
                    assert!(!s.expect.is_empty(), "{name}");
                }
                names.push(name);
            }
        }
        for wanted in [
            "amnesia",
            "compare",
            "kill-and-isolate",
            "single-layer",
            "storage-wipe",
            "storage-rollback",
            "storage-truncate",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing: {names:?}"
            );
        }
        let single = Scenario::load(&dir.join("single-layer.toml")).unwrap();
        assert_eq!(single.expect.len(), 12);
        assert!(single
            .steps
            .iter()
            .any(|s| s.argv() == ["--layer", "node", "kill", "a1"]));
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
        let a = Scenario::random(Duration::from_secs(300), &hosts, 7, DEFAULT_MIX);
        let b = Scenario::random(Duration::from_secs(300), &hosts, 7, DEFAULT_MIX);
        assert_eq!(a, b);
        assert!(a.steps.len() >= 10);
        let last = a.steps.last().unwrap().at;
        assert!(last <= Duration::from_secs(290));
        let count = |name: &str| a.steps.iter().filter(|s| s.fault.name() == name).count();
        assert_eq!(count("kill"), count("start"));
        assert_eq!(count("pause"), count("resume"));
        let healed = [
            "isolate",
            "isolate-inbound",
            "isolate-outbound",
            "cut-clients",
            "loss",
            "limit",
            "delay",
            "partition",
        ];
        assert_eq!(
            healed.iter().map(|f| count(f)).sum::<usize>(),
            count("heal")
        );
        assert_eq!(count("amnesia"), 0);
    }

    #[test]
    fn a_long_soak_draws_every_kind_of_the_mix() {
        let hosts = perseus_model::System::Perseus.hosts();
        let s = Scenario::random(Duration::from_secs(3000), &hosts, 3, DEFAULT_MIX);
        for f in [
            "kill",
            "pause",
            "isolate",
            "cut-clients",
            "loss",
            "limit",
            "delay",
            "partition",
        ] {
            assert!(s.steps.iter().any(|st| st.fault.name() == f), "no {f}");
        }
        assert!(s
            .steps
            .iter()
            .any(|st| st.option("layer") == Some("acceptor")));
        assert!(s.steps.iter().any(|st| st.option("layer") == Some("node")));
        let only_loss = parse_mix("loss=1").unwrap();
        let s = Scenario::random(Duration::from_secs(120), &hosts, 3, &only_loss);
        assert!(s
            .steps
            .iter()
            .all(|st| matches!(st.fault, FaultKind::Loss(_) | FaultKind::Heal)));
        assert!(parse_mix("kill=2,quake=1").is_err());
        assert!(parse_mix("kill=0").is_err());
        assert!(parse_mix("kill=x").is_err());
    }

    #[test]
    fn a_storage_soak_snapshots_before_each_rollback_of_the_same_host() {
        let hosts = perseus_model::System::Perseus.hosts();
        let mix = parse_mix("wipe=1,rollback=2,truncate=1").unwrap();
        let s = Scenario::random(Duration::from_secs(600), &hosts, 5, &mix);
        let mut rollbacks = 0;
        for (i, st) in s.steps.iter().enumerate() {
            if st.fault == FaultKind::Rollback {
                rollbacks += 1;
                assert!(
                    s.steps[..i]
                        .iter()
                        .any(|p| p.fault == FaultKind::Snapshot && p.host == st.host),
                    "rollback of {:?} without a snapshot before it",
                    st.host
                );
            }
        }
        assert!(rollbacks > 0);
        for f in ["wipe", "truncate", "snapshot"] {
            assert!(s.steps.iter().any(|st| st.fault.name() == f), "no {f}");
        }
        assert!(s
            .steps
            .iter()
            .any(|st| st.option("layer") == Some("acceptor")));
        // Another system's hosts have no acceptor layer.
        let s = Scenario::random(
            Duration::from_secs(600),
            &perseus_model::System::Etcd.hosts(),
            5,
            &mix,
        );
        assert!(s.steps.iter().all(|st| st.option("layer").is_none()));
        let step = |body: &str| format!("duration = \"30s\"\n[[step]]\nat = \"1s\"\n{body}");
        let s = Scenario::parse(&step(
            "fault = \"rollback\"\nhost = \"a1\"\nlayer = \"acceptor\"\n",
        ))
        .unwrap();
        assert_eq!(s.steps[0].argv(), ["--layer", "acceptor", "rollback", "a1"]);
        let s = Scenario::parse(&step("fault = \"snapshot\"\n")).unwrap();
        assert_eq!(s.steps[0].argv(), ["snapshot"]);
        assert!(Scenario::parse(&step("fault = \"wipe\"\n")).is_err());
    }

    #[test]
    fn every_fault_parses_into_a_chaos_command_line() {
        let s = Scenario::parse(
            "duration = \"60s\"\n\
             [[step]]\nat = \"1s\"\nfault = \"loss:30\"\nhost = \"a1\"\nscope = \"all\"\n\
             [[step]]\nat = \"2s\"\nfault = \"partition:a1 | a2 a3\"\n\
             [[step]]\nat = \"3s\"\nfault = \"kill\"\nhost = \"a1\"\nlayer = \"acceptor\"\n\
             [[step]]\nat = \"4s\"\nfault = \"delay:50ms,10ms\"\nhost = \"a1\"\n\
             [[step]]\nat = \"5s\"\nfault = \"amnesia\"\nhost = \"a3\"\n",
        )
        .unwrap();
        let argv: Vec<String> = s.steps.iter().map(|st| st.argv().join(" ")).collect();
        assert_eq!(
            argv,
            vec![
                "--scope all loss a1 30",
                "partition a1 | a2 a3",
                "--layer acceptor kill a1",
                "delay a1 50ms 10ms",
                "amnesia a3",
            ]
        );
        let err = |text: &str| format!("{:#}", Scenario::parse(text).unwrap_err());
        let step = |body: &str| format!("duration = \"30s\"\n[[step]]\nat = \"1s\"\n{body}");
        assert!(err(&step("fault = \"loss\"\nhost = \"a1\"\n")).contains("needs a PERCENT"));
        assert!(err(&step("fault = \"partition:halves\"\nhost = \"a1\"\n")).contains("no `host`"));
        assert!(err(&step(
            "fault = \"loss:3\"\nhost = \"a1\"\nlayer = \"node\"\n"
        ))
        .contains("`layer` applies"));
        assert!(err(&step(
            "fault = \"kill\"\nhost = \"a1\"\nlayer = \"redis\"\n"
        ))
        .contains("not host, acceptor or node"));
        assert!(
            err(&step("fault = \"kill\"\nhost = \"a1\"\nscope = \"all\"\n")).contains("loss only")
        );
    }
}
