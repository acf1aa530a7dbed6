//! Checks of a recorded run against stated expectations, Jepsen's checker protocol: each
//! checker is a type implementing [`Check`] (`check(run) -> Verdict { valid, figures,
//! problems }`), one file each, and the `[[expect]]` blocks compose them by name
//! (`check = "recovers"`, Maelstrom's `checker/compose`); a run passes when every verdict is
//! valid. Expectations are `[[expect]]` blocks in a scenario file (checked by `lab run` after
//! the run) or in a file of their own (`lab check DIR --expect FILE`, used by the end-to-end
//! test on the data it recorded):
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
//! `lab check DIR --expect` also takes one expectation written inline, its check's name and
//! its settings as `key=value` words (`--expect "others-serve from=3s"`), so that a script
//! asks lab the question instead of reading the table itself.
//!
//! Every window comes from the analysis (`analysis::faults`); nothing here recomputes one.
//! Adding a check: a file here with its type and `impl Check`, and its variant in [`Expect`].

mod each_node_serves;
mod faulted_node_down;
mod faults_undone;
mod others_serve;
mod rate_during;
mod recovers;
mod seconds;
mod violations;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result};
use perseus_model::Span;
use serde::Deserialize;

use crate::analysis::{self, Fault};
use crate::data::Run;

pub use each_node_serves::EachNodeServes;
pub use faulted_node_down::FaultedNodeDown;
pub use faults_undone::FaultsUndone;
pub use others_serve::OthersServe;
pub use rate_during::RateDuring;
pub use recovers::Recovers;
pub use seconds::Seconds;
pub use violations::{BeyondPromise, NoViolations};

/// A checker: what it expects, in one line, and whether a recorded run meets it.
pub trait Check {
    fn describe(&self) -> String;
    fn check(&self, cx: &Context) -> Verdict;
}

/// What every checker reads: the run, its faults (from the analysis) and its end.
pub struct Context<'r> {
    pub run: &'r Run,
    pub faults: Vec<Fault>,
    pub end_ms: i64,
}

impl<'r> Context<'r> {
    pub fn of(run: &'r Run) -> Context<'r> {
        Context {
            run,
            faults: analysis::faults(run),
            end_ms: analysis::run_end_ms(run),
        }
    }
}

/// One expectation: a checker by its name (`check = "..."`) with its settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Expect {
    NoViolations(NoViolations),
    NoViolationsBeyondPromise(BeyondPromise),
    FaultedNodeDown(FaultedNodeDown),
    OthersServe(OthersServe),
    EachNodeServes(EachNodeServes),
    Recovers(Recovers),
    Seconds(Seconds),
    FaultsUndone(FaultsUndone),
    RateDuring(RateDuring),
}

impl Expect {
    /// The checker behind the name.
    fn checker(&self) -> &dyn Check {
        match self {
            Expect::NoViolations(c) => c,
            Expect::NoViolationsBeyondPromise(c) => c,
            Expect::FaultedNodeDown(c) => c,
            Expect::OthersServe(c) => c,
            Expect::EachNodeServes(c) => c,
            Expect::Recovers(c) => c,
            Expect::Seconds(c) => c,
            Expect::FaultsUndone(c) => c,
            Expect::RateDuring(c) => c,
        }
    }

    /// A one-line description for the verdict lines.
    pub fn describe(&self) -> String {
        self.checker().describe()
    }

    /// Checks the run.
    pub fn check(&self, run: &Run) -> Verdict {
        self.checker().check(&Context::of(run))
    }
}

fn zero() -> Span {
    Span(Duration::ZERO)
}

fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
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

    /// The expectations `--expect ARG` names: the `[[expect]]` blocks of the file ARG when it
    /// is one, else one expectation written inline (see [`Expect::inline`]).
    pub fn from_arg(arg: &str) -> Result<Vec<Expect>> {
        let path = std::path::Path::new(arg);
        if path.is_file() {
            Ok(Expectations::load(path)?.expect)
        } else {
            Ok(vec![Expect::inline(arg)?])
        }
    }
}

impl Expect {
    /// One expectation from its inline form: the check's name, then `key=value` words
    /// (`others-serve from=3s`, `seconds min=3`). A value that reads as a number or a boolean
    /// is one; any other is text (`3s`), as in an `[[expect]]` block.
    pub fn inline(text: &str) -> Result<Expect> {
        let mut words = text.split_whitespace();
        let name = words
            .next()
            .context("an empty expectation (want a check's name, e.g. others-serve)")?;
        let mut table = toml::Table::new();
        table.insert("check".into(), toml::Value::String(name.to_string()));
        for word in words {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("expectation {text:?}: {word:?} is not key=value"))?;
            let value = if let Ok(n) = value.parse::<i64>() {
                toml::Value::Integer(n)
            } else if let Ok(x) = value.parse::<f64>() {
                toml::Value::Float(x)
            } else if let Ok(b) = value.parse::<bool>() {
                toml::Value::Boolean(b)
            } else {
                toml::Value::String(value.to_string())
            };
            table.insert(key.to_string(), value);
        }
        toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("expectation {text:?}"))
    }
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
    use crate::data::ViolationRecord;
    use perseus_model::load::ViolationKind;
    use perseus_model::{Consistency, Layer};

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
    fn inline_expectations_read_as_blocks_do() {
        assert_eq!(
            Expect::inline("others-serve from=3s").unwrap(),
            expect("[[expect]]\ncheck = \"others-serve\"\nfrom = \"3s\"\n")[0]
        );
        assert_eq!(
            Expect::inline("seconds min=3").unwrap(),
            expect("[[expect]]\ncheck = \"seconds\"\nmin = 3\n")[0]
        );
        let err = |t: &str| format!("{:#}", Expect::inline(t).unwrap_err());
        assert!(
            err("others-serve form=3s").contains("form"),
            "{}",
            err("others-serve form=3s")
        );
        assert!(err("others-serve 3s").contains("not key=value"));
        assert!(err("every-column").contains("every-column"));
        assert!(err("").contains("empty"));
        // The end of the run: the killed n1 served in none of its seconds, the others in all.
        let run = e2e_like();
        let (ok, text) = report(&run, &[Expect::inline("others-serve last=2s").unwrap()]);
        assert!(ok, "{text}");
        assert!(
            text.contains("last 2 s") && text.contains("seconds=2"),
            "{text}"
        );
        let (ok, text) = report(&run, &[Expect::inline("each-node-serves").unwrap()]);
        assert!(ok, "{text}");
        let silent = synthetic(5, 3, |i, _| i == 1);
        let (ok, text) = report(&silent, &[Expect::inline("each-node-serves").unwrap()]);
        assert!(
            !ok && text.contains("n2 served nothing in the whole run"),
            "{text}"
        );
        let (ok, text) = report(&silent, &[Expect::inline("others-serve from=60s").unwrap()]);
        assert!(!ok && text.contains("no whole second"), "{text}");
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
