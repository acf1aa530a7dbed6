//! `rate-during`: how fast a node served during a fault, against the seconds before it.

use perseus_model::fault::Spec;
use perseus_model::{HostName, Layer};
use serde::{Deserialize, Deserializer};

use super::{Check, Context, Verdict};
use crate::analysis::{self, Fault, Subject};
use crate::impact;

/// During every fault of kind `fault` (only those on `layer`, when given), `node`'s rate
/// (iterations/s over the whole seconds inside the fault) relative to its rate in the 5 s
/// before lies within `[min, max]`: `max = 0.0` says the node is cut off, `min = 0.7` that it
/// is unaffected.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateDuring {
    /// A fault kind's name (`loss` picks every loss, whatever its percentage).
    pub fault: KindName,
    /// Only the faults of this host (a1, e2, ...).
    #[serde(default)]
    pub host: Option<HostName>,
    #[serde(default)]
    pub layer: Option<Layer>,
    /// `n1`, `n2`, ... or `cluster`.
    pub node: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
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

impl RateDuring {
    /// `n1` → node 0, `cluster` → the cluster; none for a node the run does not have.
    fn subject(&self, nodes: usize) -> Option<Subject> {
        match self.node.as_str() {
            "cluster" => Some(Subject::Cluster),
            n => n
                .strip_prefix('n')
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| (1..=nodes).contains(i))
                .map(|i| Subject::Node(i - 1)),
        }
    }

    fn picks(&self, f: &Fault) -> bool {
        f.kind.name() == self.fault.0
            && f.layer == self.layer
            && self.host.is_none_or(|h| f.host.host() == Some(h))
    }
}

impl Check for RateDuring {
    fn describe(&self) -> String {
        let bounds = match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("between {lo} and {hi} of"),
            (Some(lo), None) => format!("at least {lo} of"),
            (None, Some(0.0)) => "0, whatever".into(),
            (None, Some(hi)) => format!("at most {hi} of"),
            (None, None) => "anything relative to".into(),
        };
        let host = self.host.map_or(String::new(), |h| format!(" {h}"));
        let on = self.layer.map_or(String::new(), |l| format!(" ({l} only)"));
        format!(
            "during {}{host}{on}, {} serves {bounds} its rate before",
            self.fault.0, self.node
        )
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let node = &self.node;
        let Some(subject) = self.subject(run.node_count()) else {
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
        let chosen: Vec<&Fault> = cx.faults.iter().filter(|f| self.picks(f)).collect();
        if chosen.is_empty() {
            problems.push(format!(
                "the run has no {}{}{} fault",
                self.fault.0,
                self.host.map_or(String::new(), |h| format!(" {h}")),
                self.layer.map_or(String::new(), |l| format!(" ({l} only)"))
            ));
        }
        for f in chosen {
            let from = (f.start_ms - impact::WINDOW_MS).max(analysis::WARM_UP_MS);
            let before = analysis::rate(run, subject, from, f.start_ms);
            let during = analysis::rate(run, subject, f.start_ms, f.end_ms(cx.end_ms));
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
            if self.min.is_some_and(|lo| ratio < lo) || self.max.is_some_and(|hi| ratio > hi) {
                problems.push(format!(
                    "{}: {node} served {during:.1}/s, {ratio:.2} of its {before:.1}/s before",
                    f.label()
                ));
            }
        }
        Verdict::of(figures, problems)
    }
}
