//! Scenario files: a load duration and timed fault steps, e.g.
//!
//! ```toml
//! duration = "50s"
//! [[step]]
//! at = "10s"
//! fault = "kill"
//! host = "a1"
//! layer = "acceptor"        # optional, for the layered kinds (kill, start, ...): host, acceptor, node
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
//! optional `[[expect]]` blocks (what the run must show, see check.rs). Each step is one
//! typed chaos action (`perseus_model::ChaosCall`); every field is parsed into its type here,
//! and [`Scenario::check_hosts`] lays the hosts and shapes over the system under test, so a
//! misspelt kind, shape, rate, layer or host is refused before any load starts, naming the
//! step and the field.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use perseus_model::fault::KINDS;
use perseus_model::span::parse_duration;
use perseus_model::{ChaosCall, FaultKind, HostArg, Layer, Scope, System};
use serde::Deserialize;

use crate::check::Expect;

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

/// One timed chaos action.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub call: ChaosCall,
}

impl Step {
    pub fn new(at: Duration, call: ChaosCall) -> Step {
        Step { at, call }
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

/// The names of the kinds a flag of the table applies to (`kill, start, ...`).
fn kinds_where(flag: impl Fn(&perseus_model::fault::Spec) -> bool) -> String {
    KINDS
        .iter()
        .filter(|s| flag(s))
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FileStep {
    /// The typed step; errors name the field.
    fn parse(self, duration: Duration) -> Result<Step> {
        let at = parse_duration(&self.at).context("field `at`")?;
        let fault: FaultKind = self.fault.parse().context("field `fault`")?;
        let spec = fault.spec();
        let host: Option<HostArg> = self
            .host
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("field `host`")?;
        if fault.takes_no_host() {
            if host.is_some() {
                bail!("{} names its hosts in its shape: no `host`", fault.name());
            }
        } else if host.is_none() && !fault.may_omit_host() {
            bail!("fault {:?} needs a host", self.fault);
        }
        let layer = match self.layer {
            None => Layer::Host,
            Some(_) if !spec.layered() => {
                bail!("`layer` applies to {} only", kinds_where(|s| s.layered()))
            }
            Some(text) => {
                let layer: Layer = text.parse().context("field `layer`")?;
                if !spec.takes(layer) {
                    bail!("field `layer`: {} takes no layer {layer}", spec.name);
                }
                layer
            }
        };
        let scope = match self.scope {
            None => None,
            Some(_) if !spec.scoped => {
                bail!("`scope` applies to {} only", kinds_where(|s| s.scoped))
            }
            Some(text) => Some(text.parse::<Scope>().context("field `scope`")?),
        };
        if at >= duration {
            bail!("at {:?} is not before the end ({:?})", at, duration);
        }
        Ok(Step {
            at,
            call: ChaosCall {
                fault,
                host,
                layer,
                scope,
            },
        })
    }
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario> {
        let file: File = toml::from_str(text).context("not a scenario file")?;
        let duration = parse_duration(&file.duration).context("field `duration`")?;
        let mut steps = Vec::new();
        for (i, step) in file.step.into_iter().enumerate() {
            steps.push(
                step.parse(duration)
                    .with_context(|| format!("step {}", i + 1))?,
            );
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

    /// Refuses hosts that are not `system`'s and shapes that do not fit its hosts, before any
    /// load starts (chaos would refuse them only when the step is due, mid-run).
    pub fn check_hosts(&self, system: System) -> Result<()> {
        let hosts = system.hosts();
        let names = || {
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        for step in &self.steps {
            let n = perseus_model::Span(step.at);
            if let Some(HostArg::Host(h)) = step.call.host {
                if !hosts.contains(&h) {
                    bail!(
                        "the step at {n}: field `host`: {h} is not a host of {system} ({})",
                        names()
                    );
                }
            }
            if let FaultKind::Partition(shape) = &step.call.fault {
                shape
                    .grudges(&hosts)
                    .with_context(|| format!("the step at {n}: field `fault`: on {system}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scenario the repository ships parses, with its expectations, and fits the
    /// system it is meant for; the ones that explain themselves carry the text into the
    /// report.
    #[test]
    fn shipped_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                let name = path.file_stem().unwrap().to_string_lossy().to_string();
                s.check_hosts(System::Perseus)
                    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
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
            .any(|s| s.call.argv() == ["--layer", "node", "kill", "a1"]));
    }

    #[test]
    fn parses_a_scenario_and_sorts_steps() {
        let s = Scenario::parse(
            "duration = \"30s\"\n[[step]]\nat = \"20s\"\nfault = \"start\"\nhost = \"a1\"\n\
             [[step]]\nat = \"10s\"\nfault = \"kill\"\nhost = \"a1\"\n[[step]]\nat = \"25s\"\nfault = \"heal\"\n",
        )
        .unwrap();
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.steps[0].call.fault, FaultKind::Kill);
        assert_eq!(s.steps[2].call.host, None);
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

    /// A misspelt shape, rate, layer or host fails the parse (or the check against the
    /// system), naming the step and the field.
    #[test]
    fn misspelt_values_are_refused_naming_the_field() {
        let step = |body: &str| format!("duration = \"30s\"\n[[step]]\nat = \"1s\"\n{body}");
        let err = |body: &str| format!("{:#}", Scenario::parse(&step(body)).unwrap_err());
        let e = err("fault = \"partition:majorities-rnig\"\n");
        assert!(
            e.contains("step 1: field `fault`") && e.contains("unknown partition"),
            "{e}"
        );
        let e = err("fault = \"partition:a1 | a4\"\n");
        assert!(
            e.contains("field `fault`") && e.contains("unknown host \"a4\""),
            "{e}"
        );
        let e = err("fault = \"limit:256kbti\"\nhost = \"a1\"\n");
        assert!(
            e.contains("field `fault`") && e.contains("unit must be"),
            "{e}"
        );
        let e = err("fault = \"kill\"\nhost = \"a1\"\nlayer = \"acceptr\"\n");
        assert!(
            e.contains("field `layer`") && e.contains("host, acceptor, node"),
            "{e}"
        );
        let e = err("fault = \"loss:3\"\nhost = \"a1\"\nscope = \"al\"\n");
        assert!(
            e.contains("field `scope`") && e.contains("peers, all"),
            "{e}"
        );
        let e = err("fault = \"kill\"\nhost = \"a7\"\n");
        assert!(
            e.contains("field `host`") && e.contains("unknown host"),
            "{e}"
        );
        let elsewhere = Scenario::parse(&step("fault = \"kill\"\nhost = \"e1\"\n")).unwrap();
        let e = format!("{:#}", elsewhere.check_hosts(System::Perseus).unwrap_err());
        assert!(
            e.contains("field `host`: e1 is not a host of perseus (a1 a2 a3)"),
            "{e}"
        );
        assert!(elsewhere.check_hosts(System::Etcd3).is_ok());
        let split = Scenario::parse(&step("fault = \"partition:e1 | e2 e3\"\n")).unwrap();
        let e = format!("{:#}", split.check_hosts(System::Perseus).unwrap_err());
        assert!(
            e.contains("field `fault`") && e.contains("not a host of this system"),
            "{e}"
        );
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
        let argv: Vec<String> = s.steps.iter().map(|st| st.call.to_string()).collect();
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
        .contains("`layer` applies to kill, start"));
        assert!(
            err(&step("fault = \"kill\"\nhost = \"a1\"\nscope = \"all\"\n")).contains("loss only")
        );
        let s = Scenario::parse(&step(
            "fault = \"rollback\"\nhost = \"a1\"\nlayer = \"acceptor\"\n",
        ))
        .unwrap();
        assert_eq!(
            s.steps[0].call.argv(),
            ["--layer", "acceptor", "rollback", "a1"]
        );
        let s = Scenario::parse(&step("fault = \"snapshot\"\n")).unwrap();
        assert_eq!(s.steps[0].call.argv(), ["snapshot"]);
        assert!(Scenario::parse(&step("fault = \"wipe\"\n")).is_err());
        assert!(
            err(&step("fault = \"wipe\"\nhost = \"a1\"\nlayer = \"node\"\n"))
                .contains("takes no layer node")
        );
    }
}
