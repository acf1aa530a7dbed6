//! Checks of a recorded run against stated expectations, in the spirit of Jepsen's checkers:
//! each expectation is a checker `check(run) -> Verdict { valid, figures, problems }`, and a run
//! passes when every verdict is valid. Expectations are `[[expect]]` blocks in a scenario file
//! (checked by `lab run` after the run) or in a file of their own (`lab check DIR --expect
//! FILE`, used by the end-to-end test on the data it recorded):
//!
//! ```toml
//! [[expect]]
//! check = "faulted-node-down"   # whole seconds inside a kill/isolate/pause: that node at 0
//! min_seconds = 3               # ... and each such fault lasts at least 3 whole seconds
//! [[expect]]
//! check = "recovers"            # after start/heal/resume the node serves again within 5 s
//! within = "5s"
//! ```
//!
//! Every window comes from the analysis (`analysis::faults`); nothing here recomputes one.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer};

use crate::analysis::{self, Subject};
use crate::data::{Run, ViolationRecord};
use perseus_model::fault::Spec;
use perseus_model::load::ViolationKind;
use perseus_model::{Consistency, HostName, Layer, Span};

fn zero() -> Span {
    Span(Duration::ZERO)
}

/// One expectation.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Expect {
    /// The load generator found no consistency violation.
    NoViolations,
    /// No violation the system's promise forbids. A system whose replication is asynchronous
    /// (Redis with Sentinel: `Consistency::LinearizableUntilFailover`) may lose writes its old
    /// primary acknowledged when a fault makes it fail over: those lost writes are listed as
    /// findings (key, versions, second), not failures; any other violation, or a lost write
    /// before the first fault, still fails. For every other system this is `no-violations`.
    NoViolationsBeyondPromise,
    /// In every whole second inside a fault that takes a node away (kill, isolate, pause),
    /// that node had no success; each such fault lasted at least `min_seconds` whole seconds.
    FaultedNodeDown {
        #[serde(default)]
        min_seconds: usize,
    },
    /// The hosts no fault hit served in every second from `from` on.
    OthersServe {
        #[serde(default = "zero")]
        from: Span,
    },
    /// After each recovery (start, heal, resume) the faulted node served again within `within`.
    Recovers { within: Span },
    /// At least `min` seconds of data from `from` on.
    Seconds {
        min: usize,
        #[serde(default = "zero")]
        from: Span,
    },
    /// Every fault was undone during the run, on the host it hit.
    FaultsUndone,
    /// During every fault of kind `fault` (only those on `layer`, when given), `node`'s rate
    /// (iterations/s over the whole seconds inside the fault) relative to its rate in the 5 s
    /// before lies within `[min, max]`: `max = 0.0` says the node is cut off, `min = 0.7`
    /// that it is unaffected.
    RateDuring {
        /// A fault kind's name (`loss` picks every loss, whatever its percentage).
        fault: KindName,
        /// Only the faults of this host (a1, e2, ...).
        #[serde(default)]
        host: Option<HostName>,
        #[serde(default)]
        layer: Option<Layer>,
        node: String,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
}

/// A fault kind's name, checked against the fault table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindName(pub &'static str);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Spec::named(&text).map(|s| KindName(s.name)).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown fault {text:?} (one of {})",
                perseus_model::FaultKind::names().join(", ")
            ))
        })
    }
}

/// What one checker found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub valid: bool,
    /// Numbers worth printing, as `name=value`.
    pub figures: Vec<String>,
    /// What did not hold (empty when valid).
    pub problems: Vec<String>,
}

impl Verdict {
    fn of(figures: Vec<String>, problems: Vec<String>) -> Verdict {
        Verdict {
            valid: problems.is_empty(),
            figures,
            problems,
        }
    }
}

/// The `[[expect]]` blocks of a file (a scenario file or one holding only expectations).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Expectations {
    #[serde(default)]
    pub expect: Vec<Expect>,
}

impl Expectations {
    /// Reads the `[[expect]]` blocks of a TOML file; other tables (a scenario's steps) are
    /// left to the scenario parser.
    pub fn load(path: &std::path::Path) -> Result<Expectations> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading expectations {}", path.display()))?;
        Expectations::parse(&text).with_context(|| format!("expectations {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Expectations> {
        toml::from_str(text).context("not a file of [[expect]] blocks")
    }
}

/// The violations a system's promise allows: with `LinearizableUntilFailover`, the lost writes
/// found at or after the first fault began (a failover needs a fault); none otherwise.
fn promised_losses<'r>(run: &'r Run, faults: &[analysis::Fault]) -> Vec<&'r ViolationRecord> {
    if run.promise != Some(Consistency::LinearizableUntilFailover) {
        return Vec::new();
    }
    let Some(first_fault) = faults.iter().map(|f| f.begin_ms).min() else {
        return Vec::new();
    };
    run.violations
        .iter()
        .filter(|v| v.violation.kind == ViolationKind::LostWrite)
        .filter(|v| run.offset_ms(v.unix_ms) >= first_fault)
        .collect()
}

/// One allowed lost write as a figure: its key, what was acknowledged and what was read, when.
fn lost_write_figure(run: &Run, v: &ViolationRecord) -> String {
    format!(
        "lost[{}@{:.1}s:acked={},read={}]",
        v.violation.key,
        run.offset_ms(v.unix_ms) as f64 / 1000.0,
        v.violation.expected,
        v.violation.got
    )
}

fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}

impl Expect {
    /// A one-line description for the verdict lines.
    pub fn describe(&self) -> String {
        match self {
            Expect::NoViolations => "no consistency violation".into(),
            Expect::NoViolationsBeyondPromise => {
                "no consistency violation the system's promise forbids".into()
            }
            Expect::FaultedNodeDown { min_seconds } => format!(
                "a faulted node serves nothing while it is down ({min_seconds}+ whole seconds per fault)"
            ),
            Expect::OthersServe { from } => format!(
                "the hosts no fault hit serve in every second from {:.0} s",
                from.0.as_secs_f64()
            ),
            Expect::Recovers { within } => format!(
                "a faulted node serves again within {} ms of its recovery",
                within.ms()
            ),
            Expect::Seconds { min, from } => format!(
                "at least {min} seconds of data from {:.0} s",
                from.0.as_secs_f64()
            ),
            Expect::FaultsUndone => "every fault is undone on the host it hit".into(),
            Expect::RateDuring {
                fault,
                host,
                layer,
                node,
                min,
                max,
            } => {
                let bounds = match (min, max) {
                    (Some(lo), Some(hi)) => format!("between {lo} and {hi} of"),
                    (Some(lo), None) => format!("at least {lo} of"),
                    (None, Some(hi)) if *hi == 0.0 => "0, whatever".into(),
                    (None, Some(hi)) => format!("at most {hi} of"),
                    (None, None) => "anything relative to".into(),
                };
                let host = host.as_ref().map_or(String::new(), |h| format!(" {h}"));
                let on = layer
                    .as_ref()
                    .map_or(String::new(), |l| format!(" ({l} only)"));
                format!("during {}{host}{on}, {node} serves {bounds} its rate before", fault.0)
            }
        }
    }

    /// Checks the run.
    pub fn check(&self, run: &Run) -> Verdict {
        let end = analysis::run_end_ms(run);
        let faults = analysis::faults(run);
        match self {
            Expect::NoViolations => {
                let n = run.violation_count();
                let problems = if n == 0 {
                    vec![]
                } else {
                    vec![format!("{n} consistency violations")]
                };
                Verdict::of(vec![format!("violations={n}")], problems)
            }
            Expect::NoViolationsBeyondPromise => {
                let n = run.violation_count();
                let allowed = promised_losses(run, &faults);
                let mut figures = vec![format!("violations={n}")];
                let mut problems = Vec::new();
                if !allowed.is_empty() {
                    figures.push(format!("lost_writes_on_failover={}", allowed.len()));
                    for v in &allowed {
                        figures.push(lost_write_figure(run, v));
                    }
                }
                let forbidden = n.saturating_sub(allowed.len() as u64);
                if forbidden > 0 {
                    problems.push(format!(
                        "{forbidden} consistency violations the system's promise ({}) forbids",
                        run.promise
                            .map_or("linearizable (system unknown)", |c| c.as_str())
                    ));
                }
                Verdict::of(figures, problems)
            }
            Expect::FaultedNodeDown { min_seconds } => {
                let mut figures = Vec::new();
                let mut problems = Vec::new();
                // The faults that take a node away; one of the acceptor alone leaves the node
                // serving, and grey faults (loss, limit) only slow it: not about this check.
                let takes_node_away = |f: &&analysis::Fault| {
                    f.kind.spec().takes_node_away && f.layer != Some(Layer::Acceptor)
                };
                for f in faults.iter().filter(takes_node_away) {
                    let Some(i) = analysis::node_index(f.host) else {
                        continue;
                    };
                    let inside: Vec<_> =
                        analysis::seconds_within(run, f.start_ms, f.end_ms(end)).collect();
                    figures.push(format!(
                        "{}_{}_whole_seconds={}",
                        f.kind,
                        f.host,
                        inside.len()
                    ));
                    if inside.len() < *min_seconds {
                        problems.push(format!(
                            "{} {} lasted {} whole seconds (want {min_seconds})",
                            f.kind,
                            f.host,
                            inside.len()
                        ));
                    }
                    for s in inside {
                        let n = s.nodes.get(i).copied().unwrap_or(0);
                        if n > 0 {
                            problems.push(format!(
                                "second {}: {} {} but {} served {n}",
                                s.second,
                                f.host,
                                f.kind.state(),
                                node_name(i)
                            ));
                        }
                    }
                }
                Verdict::of(figures, problems)
            }
            Expect::OthersServe { from } => {
                let hit: Vec<usize> = faults
                    .iter()
                    .filter_map(|f| analysis::node_index(f.host))
                    .collect();
                let others: Vec<usize> =
                    (0..run.node_count()).filter(|i| !hit.contains(i)).collect();
                let mut problems = Vec::new();
                let mut checked = 0;
                for s in analysis::seconds_within(run, from.ms(), end) {
                    checked += 1;
                    for &i in &others {
                        if s.nodes.get(i).copied().unwrap_or(0) == 0 {
                            problems.push(format!(
                                "second {}: {} served nothing",
                                s.second,
                                node_name(i)
                            ));
                        }
                    }
                }
                let names: Vec<String> = others.iter().map(|&i| node_name(i)).collect();
                Verdict::of(
                    vec![
                        format!("nodes={}", names.join(",")),
                        format!("seconds={checked}"),
                    ],
                    problems,
                )
            }
            Expect::Recovers { within } => {
                let mut figures = Vec::new();
                let mut problems = Vec::new();
                for f in &faults {
                    let (Some(from), Some(i)) = (f.recover_ms, analysis::node_index(f.host)) else {
                        continue;
                    };
                    if f.kind.is_instant() {
                        continue;
                    }
                    match analysis::first_success_after_ms(run, Subject::Node(i), from) {
                        Some(ms) => {
                            figures.push(format!("{}_{}_back_ms={ms:.0}", f.kind, f.host));
                            if ms > within.ms() as f64 {
                                problems.push(format!(
                                    "{} served {ms:.0} ms after {} {} began (want <= {})",
                                    node_name(i),
                                    f.kind.undo().map_or("recovery".into(), |u| u.to_string()),
                                    f.host,
                                    within.ms()
                                ));
                            }
                        }
                        None => problems.push(format!(
                            "{} never served after {} {} was undone",
                            node_name(i),
                            f.kind,
                            f.host
                        )),
                    }
                }
                Verdict::of(figures, problems)
            }
            Expect::Seconds { min, from } => {
                let n = analysis::seconds_within(run, from.ms(), end).count();
                let problems = if n >= *min {
                    vec![]
                } else {
                    vec![format!("only {n} seconds of data (want {min})")]
                };
                Verdict::of(vec![format!("seconds={n}")], problems)
            }
            Expect::FaultsUndone => {
                let problems: Vec<String> = faults
                    .iter()
                    .filter(|f| f.kind.undo().is_some() && f.recover_ms.is_none())
                    .map(|f| {
                        format!(
                            "{} {} at {:.1} s was never undone on {}",
                            f.kind,
                            f.host,
                            f.start_ms as f64 / 1000.0,
                            f.host
                        )
                    })
                    .collect();
                let figures = faults
                    .iter()
                    .map(|f| format!("{}={}", f.kind, f.host))
                    .collect();
                Verdict::of(figures, problems)
            }
            Expect::RateDuring {
                fault,
                host,
                layer,
                node,
                min,
                max,
            } => rate_during(
                run,
                &faults,
                end,
                (fault.0, *host, *layer),
                node,
                (*min, *max),
            ),
        }
    }
}

/// The `rate-during` checker (see [`Expect::RateDuring`]): the faults picked by kind, host
/// and layer; the node; the bounds of its rate relative to before.
fn rate_during(
    run: &Run,
    faults: &[analysis::Fault],
    end: i64,
    (kind, host, layer): (&str, Option<HostName>, Option<Layer>),
    node: &str,
    (min, max): (Option<f64>, Option<f64>),
) -> Verdict {
    let subject = match node {
        "cluster" => Some(Subject::Cluster),
        n => n
            .strip_prefix('n')
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| (1..=run.node_count()).contains(i))
            .map(|i| Subject::Node(i - 1)),
    };
    let Some(subject) = subject else {
        return Verdict::of(
            vec![],
            vec![format!(
                "no node {node:?} in this run (n1..n{} or cluster)",
                run.node_count()
            )],
        );
    };
    let mut figures = Vec::new();
    let mut problems = Vec::new();
    let chosen: Vec<&analysis::Fault> = faults
        .iter()
        .filter(|f| {
            f.kind.name() == kind
                && f.layer == layer
                && host.is_none_or(|h| f.host.host() == Some(h))
        })
        .collect();
    if chosen.is_empty() {
        problems.push(format!(
            "the run has no {kind}{}{} fault",
            host.map_or(String::new(), |h| format!(" {h}")),
            layer.map_or(String::new(), |l| format!(" ({l} only)"))
        ));
    }
    for f in chosen {
        let from = (f.start_ms - analysis::WINDOW_MS).max(analysis::WARM_UP_MS);
        let before = analysis::rate(run, subject, from, f.start_ms);
        let during = analysis::rate(run, subject, f.start_ms, f.end_ms(end));
        let label = f.label().replace(' ', "_").replace(['(', ')'], "");
        let (Some(before), Some(during)) = (before, during) else {
            problems.push(format!(
                "{}: not a whole second before or inside it to compare",
                f.label()
            ));
            continue;
        };
        let ratio = if before > 0.0 { during / before } else { 0.0 };
        figures.push(format!(
            "{label}:{node}={during:.0}/s_of_{before:.0}/s={ratio:.2}"
        ));
        if before <= 0.0 {
            problems.push(format!("{}: {node} served nothing before it", f.label()));
        }
        if min.is_some_and(|lo| ratio < lo) || max.is_some_and(|hi| ratio > hi) {
            problems.push(format!(
                "{}: {node} served {during:.1}/s, {ratio:.2} of its {before:.1}/s before",
                f.label()
            ));
        }
    }
    Verdict::of(figures, problems)
}

/// The per-second table with the faults marked: a whole second inside a fault shows the
/// host's state (`killed a1`), a second in which a fault or its undo happened names it.
pub fn table(run: &Run) -> String {
    let end = analysis::run_end_ms(run);
    let faults = analysis::faults(run);
    let mut out = String::new();
    let mut header = String::from("   s\tcluster");
    for i in 0..run.node_count() {
        let _ = write!(header, "\t{:>6}", node_name(i));
    }
    let _ = writeln!(out, "{header}\tfault");
    for s in &run.seconds {
        let lo = (s.second as i64 - 1) * 1000;
        let hi = lo + 1000;
        let mut marks: Vec<String> = Vec::new();
        for f in &faults {
            if f.kind.undo().is_some() && lo >= f.start_ms && hi <= f.end_ms(end) {
                marks.push(format!("{} {}", f.kind.state(), f.host));
                continue;
            }
            if (lo..hi).contains(&f.start_ms) {
                marks.push(format!("{} {}", f.kind, f.host));
            }
            if let (Some(at), Some(undo)) = (f.recover_ms, f.kind.undo()) {
                if (lo..hi).contains(&at) {
                    marks.push(format!("{undo} {}", f.host));
                }
            }
        }
        let mut line = format!("{:4}\t{:6}", s.second, s.cluster);
        for n in &s.nodes {
            let _ = write!(line, "\t{n:6}");
        }
        let _ = writeln!(out, "{line}\t{}", marks.join(", "));
    }
    out
}

/// Checks every expectation, printing one line each; returns whether all hold.
pub fn report(run: &Run, expectations: &[Expect]) -> (bool, String) {
    let mut out = String::new();
    let mut all = true;
    for e in expectations {
        let v = e.check(run);
        all &= v.valid;
        let _ = writeln!(
            out,
            "{} {} [{}]",
            if v.valid {
                "check ok:  "
            } else {
                "check FAIL:"
            },
            e.describe(),
            v.figures.join(" ")
        );
        for p in &v.problems {
            let _ = writeln!(out, "    {p}");
        }
    }
    (all, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{event, synthetic};

    /// n1 killed 3.0–6.5 s (start at 6.0 s), isolated 8.0–11.0 s (heal at 11.0 s).
    fn e2e_like() -> Run {
        let mut run = synthetic(14, 3, |i, t| {
            i == 0 && ((3000..6500).contains(&t) || (8000..11200).contains(&t))
        });
        run.events = vec![
            event(&run, "kill", "a1", 2990, 3000),
            event(&run, "start", "a1", 6000, 6400),
            event(&run, "isolate", "a1", 7990, 8000),
            event(&run, "heal", "a1", 11000, 11050),
        ];
        run
    }

    fn expect(text: &str) -> Vec<Expect> {
        Expectations::parse(text).unwrap().expect
    }

    #[test]
    fn an_end_to_end_run_passes_its_checks() {
        let run = e2e_like();
        let checks = expect(
            "[[expect]]\ncheck = \"no-violations\"\n\
             [[expect]]\ncheck = \"faulted-node-down\"\nmin_seconds = 2\n\
             [[expect]]\ncheck = \"others-serve\"\nfrom = \"1s\"\n\
             [[expect]]\ncheck = \"recovers\"\nwithin = \"1s\"\n\
             [[expect]]\ncheck = \"seconds\"\nmin = 12\nfrom = \"2s\"\n\
             [[expect]]\ncheck = \"faults-undone\"\n",
        );
        assert_eq!(checks.len(), 6);
        let (ok, text) = report(&run, &checks);
        assert!(ok, "{text}");
        assert!(text.contains("kill_a1_back_ms=505"), "{text}");
        assert!(text.contains("kill_a1_whole_seconds=3"), "{text}");
        assert!(text.contains("nodes=n2,n3"), "{text}");
        let table = table(&run);
        assert!(table.contains("killed a1"), "{table}");
        assert!(table.contains("isolated a1"), "{table}");
        assert!(table.contains("start a1"), "{table}");
    }

    /// A violation record of `kind` on key k1, `at_ms` into the run.
    fn violation(run: &Run, kind: ViolationKind, at_ms: i64) -> ViolationRecord {
        ViolationRecord {
            time: chrono::DateTime::default(),
            unix_ms: run.start_unix_ms + at_ms,
            t_us: (at_ms * 1000) as u64,
            node: 1,
            violation: perseus_model::load::Violation {
                key: "k1".into(),
                kind,
                expected: "41".into(),
                got: "40".into(),
            },
        }
    }

    #[test]
    fn a_promise_allows_only_the_losses_it_states() {
        let checks = expect("[[expect]]\ncheck = \"no-violations-beyond-promise\"\n");
        let with = |promise, violations: Vec<ViolationRecord>| {
            let mut run = e2e_like();
            run.promise = promise;
            run.violations = violations;
            checks[0].check(&run)
        };
        let run = e2e_like();
        let lost_after_kill = || vec![violation(&run, ViolationKind::LostWrite, 4000)];
        // Sentinel: a write lost after the kill is a finding, listed with its key and second.
        let v = with(
            Some(Consistency::LinearizableUntilFailover),
            lost_after_kill(),
        );
        assert!(v.valid, "{v:?}");
        assert!(
            v.figures.contains(&"lost_writes_on_failover=1".to_string()),
            "{v:?}"
        );
        assert!(
            v.figures.iter().any(|f| f.starts_with("lost[k1@4.0s")),
            "{v:?}"
        );
        // The same loss on a linearizable store, or with the system unknown, fails.
        assert!(!with(Some(Consistency::Linearizable), lost_after_kill()).valid);
        assert!(!with(None, lost_after_kill()).valid);
        // Sentinel: a loss before any fault, or a stale read, is not what it promises.
        let before = vec![violation(&run, ViolationKind::LostWrite, 1000)];
        assert!(!with(Some(Consistency::LinearizableUntilFailover), before).valid);
        let stale = vec![violation(&run, ViolationKind::StaleRead, 4000)];
        assert!(!with(Some(Consistency::LinearizableUntilFailover), stale).valid);
        // No violation: valid for every promise.
        assert!(with(None, vec![]).valid);
    }

    #[test]
    fn each_checker_catches_what_it_is_about() {
        // n1 serves during the kill window, n2 stops for a second, n1 is slow to come back.
        let mut run = synthetic(14, 3, |i, t| {
            (i == 0 && (8000..13000).contains(&t)) || (i == 1 && (12000..13000).contains(&t))
        });
        run.events = vec![
            event(&run, "kill", "a1", 2990, 3000),
            event(&run, "start", "a1", 6000, 6400),
            event(&run, "isolate", "a1", 7990, 8000),
            event(&run, "heal", "a1", 9000, 9050),
            event(&run, "pause", "a3", 9990, 10000),
        ];
        let fails_on = |run: &Run, text: &str| {
            let checks = expect(text);
            let v = checks[0].check(run);
            assert!(!v.valid, "{text} passed: {v:?}");
            v.problems.join("; ")
        };
        let fails = |text: &str| fails_on(&run, text);
        assert!(fails("[[expect]]\ncheck = \"faulted-node-down\"\n").contains("n1 served"));
        assert!(
            fails("[[expect]]\ncheck = \"faulted-node-down\"\nmin_seconds = 2\n")
                .contains("isolate a1 lasted 1 whole seconds")
        );
        assert!(fails("[[expect]]\ncheck = \"others-serve\"\n").contains("n2 served nothing"));
        assert!(fails("[[expect]]\ncheck = \"recovers\"\nwithin = \"2s\"\n")
            .contains("n1 served 4005 ms after heal a1"));
        assert!(fails("[[expect]]\ncheck = \"faults-undone\"\n").contains("pause a3"));
        assert!(fails("[[expect]]\ncheck = \"seconds\"\nmin = 20\n").contains("only 14"));
        run.summary = Some(crate::data::Summary {
            violations: 2,
            ..Default::default()
        });
        assert!(fails_on(&run, "[[expect]]\ncheck = \"no-violations\"\n").contains("2 consistency"));
    }

    #[test]
    fn rate_during_compares_a_fault_with_the_seconds_before() {
        // n1 loses every other 100 ms bucket while a1 has packet loss (5.0–9.0 s); a cut of
        // a2's clients (10.0–12.0 s) takes n2 to 0; an acceptor-only kill of a3 changes nothing.
        let mut run = synthetic(16, 3, |i, t| {
            (i == 0 && (5000..9000).contains(&t) && (t / 100) % 2 == 0)
                || (i == 1 && (10000..12000).contains(&t))
        });
        let mut kill = event(&run, "kill", "a3", 12990, 13000);
        kill.layer = Some(Layer::Acceptor);
        let mut start = event(&run, "start", "a3", 15000, 15100);
        start.layer = Some(Layer::Acceptor);
        run.events = vec![
            event(&run, "loss:30", "a1", 4990, 5000),
            event(&run, "heal", "a1", 9000, 9050),
            event(&run, "cut-clients", "a2", 9990, 10000),
            event(&run, "heal", "a2", 12000, 12050),
            kill,
            start,
        ];
        let checks = expect(
            "[[expect]]\ncheck = \"rate-during\"\nfault = \"loss\"\nnode = \"n1\"\nmin = 0.3\nmax = 0.7\n\
             [[expect]]\ncheck = \"rate-during\"\nfault = \"loss\"\nnode = \"n2\"\nmin = 0.9\n\
             [[expect]]\ncheck = \"rate-during\"\nfault = \"cut-clients\"\nnode = \"n2\"\nmax = 0.0\n\
             [[expect]]\ncheck = \"rate-during\"\nfault = \"kill\"\nlayer = \"acceptor\"\nnode = \"n3\"\nmin = 0.9\n\
             [[expect]]\ncheck = \"faulted-node-down\"\n",
        );
        let (ok, text) = report(&run, &checks);
        assert!(ok, "{text}");
        assert!(text.contains("loss:30_a1:n1=50/s_of_100/s=0.50"), "{text}");
        assert!(
            text.contains("kill_a3_acceptor_only:n3=100/s_of_100/s=1.00"),
            "{text}"
        );
        // The same run does not pass stricter bounds, nor a fault it does not have.
        let fails = |text: &str| {
            let v = expect(text)[0].check(&run);
            assert!(!v.valid, "{text} passed: {v:?}");
            v.problems.join("; ")
        };
        assert!(fails(
            "[[expect]]\ncheck = \"rate-during\"\nfault = \"loss\"\nnode = \"n1\"\nmax = 0.0\n"
        )
        .contains("n1 served 50.0/s, 0.50 of its 100.0/s before"));
        assert!(fails(
            "[[expect]]\ncheck = \"rate-during\"\nfault = \"kill\"\nlayer = \"node\"\nnode = \"n1\"\nmax = 0.0\n"
        )
        .contains("no kill (node only) fault"));
        assert!(
            fails("[[expect]]\ncheck = \"rate-during\"\nfault = \"loss\"\nnode = \"n7\"\n")
                .contains("no node \"n7\"")
        );
    }

    #[test]
    fn bad_expectations_are_refused() {
        assert!(Expectations::parse("[[expect]]\ncheck = \"fast\"\n").is_err());
        assert!(Expectations::parse("[[expect]]\ncheck = \"recovers\"\n").is_err());
        assert!(
            Expectations::parse("[[expect]]\ncheck = \"recovers\"\nwithin = \"soon\"\n").is_err()
        );
    }
}
