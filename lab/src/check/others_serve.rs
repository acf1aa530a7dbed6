//! `others-serve`: the hosts no fault hit keep serving.

use serde::Deserialize;

use super::{node_name, zero, Check, Context, Verdict};
use crate::analysis;
use perseus_model::Span;

/// The hosts no fault hit served in every second from `from` on (with `last`, only in the
/// run's final `last`: "every column serves at the end"). A run with no such second fails: a
/// run cut short proves nothing.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OthersServe {
    #[serde(default = "zero")]
    pub from: Span,
    #[serde(default)]
    pub last: Option<Span>,
}

impl Check for OthersServe {
    fn describe(&self) -> String {
        match self.last {
            Some(last) => format!(
                "the hosts no fault hit serve in every second of the last {:.0} s",
                last.0.as_secs_f64()
            ),
            None => format!(
                "the hosts no fault hit serve in every second from {:.0} s",
                self.from.0.as_secs_f64()
            ),
        }
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let hit: Vec<usize> = cx
            .faults
            .iter()
            .filter_map(|f| analysis::node_index(f.host))
            .collect();
        let others: Vec<usize> = (0..run.node_count()).filter(|i| !hit.contains(i)).collect();
        let from = match self.last {
            Some(last) => (cx.end_ms - last.ms()).max(self.from.ms()),
            None => self.from.ms(),
        };
        let mut problems = Vec::new();
        let mut checked = 0;
        for s in analysis::seconds_within(run, from, cx.end_ms) {
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
        if checked == 0 {
            problems.push(format!(
                "no whole second of data from {:.0} s on",
                from as f64 / 1000.0
            ));
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
}
