//! `no-violations` and `no-violations-beyond-promise`: what the load generator's checker found,
//! judged plainly or against the system's promise.

use perseus_model::load::ViolationKind;
use perseus_model::Consistency;
use serde::Deserialize;

use super::{Check, Context, Verdict};
use crate::analysis::Fault;
use crate::data::{Run, ViolationRecord};

/// The load generator found no consistency violation.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoViolations {}

impl Check for NoViolations {
    fn describe(&self) -> String {
        "no consistency violation".into()
    }

    fn check(&self, cx: &Context) -> Verdict {
        let n = cx.run.violation_count();
        let problems = if n == 0 {
            vec![]
        } else {
            vec![format!("{n} consistency violations")]
        };
        Verdict::of(vec![format!("violations={n}")], problems)
    }
}

/// No violation the system's promise forbids. A system whose replication is asynchronous
/// (Redis with Sentinel: `Consistency::LinearizableUntilFailover`) may lose writes its old
/// primary acknowledged when a fault makes it fail over: those lost writes are listed as
/// findings (key, versions, second), not failures; any other violation, or a lost write
/// before the first fault, still fails. For every other system this is `no-violations`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BeyondPromise {}

impl Check for BeyondPromise {
    fn describe(&self) -> String {
        "no consistency violation the system's promise forbids".into()
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let n = run.violation_count();
        let allowed = promised_losses(run, &cx.faults);
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
}

/// The violations a system's promise allows: with `LinearizableUntilFailover`, the lost writes
/// found at or after the first fault began (a failover needs a fault); none otherwise.
fn promised_losses<'r>(run: &'r Run, faults: &[Fault]) -> Vec<&'r ViolationRecord> {
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
