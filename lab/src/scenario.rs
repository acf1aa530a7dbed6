//! Scenario files: a load duration and timed fault steps, e.g.
//!
//! ```toml
//! duration = "50s"
//! [[step]]
//! at = "10s"
//! fault = "kill"
//! host = "a1"
//! layer = "acceptor"      # optional: host (default), acceptor or node
//! [[step]]
//! at = "20s"
//! fault = "loss"
//! host = "a2"
//! args = ["30"]           # the fault's parameters: loss PERCENT, limit RATE, delay DELAY [JITTER]
//! scope = "all"           # optional, loss only: peers (default) or all
//! [[step]]
//! at = "30s"
//! fault = "partition"
//! shape = "majorities-ring"
//! ```
//!
//! and the random schedules of the soak (weighted, seeded, every fault kind), built as the
//! same structure. Each step becomes one chaos command line (`Step::argv`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// The chaos commands a step may run.
pub const FAULTS: &[&str] = &[
    "kill",
    "start",
    "restart",
    "pause",
    "resume",
    "isolate",
    "isolate-inbound",
    "isolate-outbound",
    "cut-clients",
    "loss",
    "limit",
    "delay",
    "partition",
    "amnesia",
    "heal",
];

/// How many parameters a fault takes after its host: (required, optional).
fn arity(fault: &str) -> (usize, usize) {
    match fault {
        "loss" | "limit" => (1, 0),
        "delay" => (1, 1),
        _ => (0, 0),
    }
}

/// The faults `--layer` applies to.
const LAYERED: &[&str] = &["kill", "start", "restart", "pause", "resume", "isolate"];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    duration: String,
    #[serde(default)]
    step: Vec<FileStep>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    at: String,
    fault: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    layer: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    shape: Option<String>,
}

/// One timed chaos command.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub fault: String,
    /// `None` only for `heal` (all hosts) and `partition`.
    pub host: Option<String>,
    /// Parameters after the host (for partition: the shape).
    pub args: Vec<String>,
    /// chaos options before the command (`--layer acceptor`, `--scope all`).
    pub options: Vec<String>,
}

impl Step {
    /// A step without parameters or options.
    pub fn simple(at: Duration, fault: &str, host: Option<&str>) -> Step {
        Step {
            at,
            fault: fault.to_string(),
            host: host.map(String::from),
            args: Vec::new(),
            options: Vec::new(),
        }
    }

    /// The chaos command line (after the global options).
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.options.clone();
        v.push(self.fault.clone());
        v.extend(self.host.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    /// The option value of `--NAME`, if given.
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
            if !FAULTS.contains(&step.fault.as_str()) {
                bail!(
                    "step {n}: unknown fault {:?} (one of {})",
                    step.fault,
                    FAULTS.join(", ")
                );
            }
            let mut args = step.args;
            let mut options = Vec::new();
            if step.fault == "partition" {
                let Some(shape) = step.shape else {
                    bail!("step {n}: partition needs a `shape` (\"a1 | a2 a3\", halves, bridge, majorities-ring)");
                };
                if step.host.is_some() || !args.is_empty() {
                    bail!("step {n}: partition takes a `shape`, no host or args");
                }
                args.push(shape);
            } else {
                if step.shape.is_some() {
                    bail!("step {n}: only partition takes a `shape`");
                }
                if step.host.is_none() && step.fault != "heal" {
                    bail!("step {n}: fault {:?} needs a host", step.fault);
                }
                let (required, optional) = arity(&step.fault);
                if args.len() < required || args.len() > required + optional {
                    bail!(
                        "step {n}: fault {:?} takes {required}{} value(s) in `args`, not {}",
                        step.fault,
                        if optional > 0 {
                            format!(" to {}", required + optional)
                        } else {
                            String::new()
                        },
                        args.len()
                    );
                }
            }
            if let Some(layer) = step.layer {
                if !LAYERED.contains(&step.fault.as_str()) {
                    bail!("step {n}: `layer` applies to {} only", LAYERED.join(", "));
                }
                if !["host", "acceptor", "node"].contains(&layer.as_str()) {
                    bail!("step {n}: layer {layer:?} is not host, acceptor or node");
                }
                options.extend(["--layer".to_string(), layer]);
            }
            if let Some(scope) = step.scope {
                if step.fault != "loss" {
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
                fault: step.fault,
                host: step.host,
                args,
                options,
            });
        }
        steps.sort_by_key(|s| s.at);
        Ok(Scenario { duration, steps })
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// A random fault schedule over `duration` for `hosts`, drawn (seeded) from `mix`: one
    /// fault at a time, each undone before the next (kill/pause of two hosts at once now and
    /// then, which stops the whole cluster), everything undone 10 s before the end.
    pub fn random(
        duration: Duration,
        hosts: &[String],
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
            let mut victims = vec![hosts[first].clone()];
            if kind.whole_host() && hosts.len() > 2 && rng.random_bool(0.15) {
                let second = (first + rng.random_range(1..hosts.len())) % hosts.len();
                victims.push(hosts[second].clone());
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
                    let alone = &hosts[first];
                    let rest: Vec<&str> = hosts
                        .iter()
                        .filter(|h| *h != alone)
                        .map(String::as_str)
                        .collect();
                    shape = format!("{alone} | {}", rest.join(" "));
                }
                let mut step = Step::simple(at, "partition", None);
                step.args.push(shape);
                steps.push(step);
                steps.push(Step::simple(until, "heal", None));
            } else {
                for host in &victims {
                    let (fault, mut step_undo) = kind.commands(&mut rng);
                    let mut step = Step::simple(at, fault.0, Some(host));
                    step.args = fault.1;
                    step.options = fault.2;
                    steps.push(step);
                    step_undo.at = until;
                    step_undo.host = Some(host.clone());
                    steps.push(step_undo);
                }
            }
            t += hold + rng.random_range(3.0..8.0);
        }
        steps.sort_by_key(|s| s.at);
        Scenario { duration, steps }
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
}

/// The soak's default mix: every kind but amnesia (which may lose acknowledged writes by
/// design, see docs/faults.md), weighted towards the classic faults.
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

/// (command, args, options) of a fault.
type Command = (&'static str, Vec<String>, Vec<String>);

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
        }
    }

    /// Whether the fault may hit two hosts at once.
    fn whole_host(self) -> bool {
        matches!(self, Kind::Kill | Kind::Pause | Kind::Isolate)
    }

    /// The fault's command and the step that undoes it (time and host filled in later).
    fn commands(self, rng: &mut StdRng) -> (Command, Step) {
        let undo = |fault: &str, options: Vec<String>| {
            let mut s = Step::simple(Duration::ZERO, fault, None);
            s.options = options;
            s
        };
        let none = Vec::new;
        match self {
            Kind::Kill => (("kill", none(), none()), undo("start", none())),
            Kind::Pause => (("pause", none(), none()), undo("resume", none())),
            Kind::Isolate => (("isolate", none(), none()), undo("heal", none())),
            Kind::OneWay => {
                let f = if rng.random_bool(0.5) {
                    "isolate-inbound"
                } else {
                    "isolate-outbound"
                };
                ((f, none(), none()), undo("heal", none()))
            }
            Kind::CutClients => (("cut-clients", none(), none()), undo("heal", none())),
            Kind::Loss => {
                let percent = [10, 30, 50][rng.random_range(0..3)].to_string();
                let scope = if rng.random_bool(0.25) {
                    "all"
                } else {
                    "peers"
                };
                let options = vec!["--scope".to_string(), scope.to_string()];
                (("loss", vec![percent], options), undo("heal", none()))
            }
            Kind::Limit => {
                let rate = ["128kbit", "512kbit", "2mbit"][rng.random_range(0..3)].to_string();
                (("limit", vec![rate], none()), undo("heal", none()))
            }
            Kind::Delay => {
                let d = ["20ms", "100ms"][rng.random_range(0..2)].to_string();
                (
                    ("delay", vec![d, "10ms".into()], none()),
                    undo("heal", none()),
                )
            }
            Kind::Layer => {
                let layer = if rng.random_bool(0.5) {
                    "acceptor"
                } else {
                    "node"
                };
                let options = vec!["--layer".to_string(), layer.to_string()];
                match rng.random_range(0..3) {
                    0 => (("kill", none(), options.clone()), undo("start", options)),
                    1 => (("pause", none(), options), undo("resume", none())),
                    _ => (("isolate", none(), options), undo("heal", none())),
                }
            }
            Kind::Amnesia => (("amnesia", none(), none()), undo("heal", none())),
            Kind::Partition => (("partition", none(), none()), undo("heal", none())),
        }
    }
}

/// Parses a mix like `kill=3,loss=1` (names from `Kind::name`; missing kinds get weight 0).
pub fn parse_mix(text: &str) -> Result<Vec<(Kind, u32)>> {
    const ALL: [Kind; 11] = [
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
    ];
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let kind = ALL
            .iter()
            .find(|k| k.name() == name.trim())
            .copied()
            .with_context(|| {
                format!(
                    "unknown fault kind {name:?} in the mix (one of {})",
                    ALL.map(Kind::name).join(", ")
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

    #[test]
    fn parses_a_scenario_and_sorts_steps() {
        let s = Scenario::parse(
            "duration = \"30s\"\n[[step]]\nat = \"20s\"\nfault = \"start\"\nhost = \"a1\"\n\
             [[step]]\nat = \"10s\"\nfault = \"kill\"\nhost = \"a1\"\n[[step]]\nat = \"25s\"\nfault = \"heal\"\n",
        )
        .unwrap();
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.steps[0].fault, "kill");
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
        let hosts: Vec<String> = ["a1", "a2", "a3"].iter().map(|s| s.to_string()).collect();
        let a = Scenario::random(Duration::from_secs(300), &hosts, 7, DEFAULT_MIX);
        let b = Scenario::random(Duration::from_secs(300), &hosts, 7, DEFAULT_MIX);
        assert_eq!(a, b);
        assert!(a.steps.len() >= 10);
        let last = a.steps.last().unwrap().at;
        assert!(last <= Duration::from_secs(290));
        let count = |f: &str| a.steps.iter().filter(|s| s.fault == f).count();
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
        let hosts: Vec<String> = ["a1", "a2", "a3"].iter().map(|s| s.to_string()).collect();
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
            assert!(s.steps.iter().any(|st| st.fault == f), "no {f}");
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
            .all(|st| st.fault == "loss" || st.fault == "heal"));
        assert!(parse_mix("kill=2,quake=1").is_err());
        assert!(parse_mix("kill=0").is_err());
        assert!(parse_mix("kill=x").is_err());
    }

    #[test]
    fn every_fault_parses_into_a_chaos_command_line() {
        let s = Scenario::parse(
            "duration = \"60s\"\n\
             [[step]]\nat = \"1s\"\nfault = \"loss\"\nhost = \"a1\"\nargs = [\"30\"]\nscope = \"all\"\n\
             [[step]]\nat = \"2s\"\nfault = \"partition\"\nshape = \"a1 | a2 a3\"\n\
             [[step]]\nat = \"3s\"\nfault = \"kill\"\nhost = \"a1\"\nlayer = \"acceptor\"\n\
             [[step]]\nat = \"4s\"\nfault = \"delay\"\nhost = \"a1\"\nargs = [\"50ms\", \"10ms\"]\n\
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
        assert!(err(&step("fault = \"loss\"\nhost = \"a1\"\n")).contains("takes 1 value"));
        assert!(err(&step("fault = \"partition\"\n")).contains("needs a `shape`"));
        assert!(err(&step(
            "fault = \"loss\"\nhost = \"a1\"\nargs = [\"3\"]\nlayer = \"node\"\n"
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
