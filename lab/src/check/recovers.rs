//! `recovers`: a faulted node serves again soon after its fault is undone.

use perseus_model::Span;
use serde::Deserialize;

use super::{node_name, Check, Context, Verdict};
use crate::analysis::{self, Subject};

/// After each recovery (start, heal, resume) the faulted node served again within `within`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recovers {
    pub within: Span,
}

impl Check for Recovers {
    fn describe(&self) -> String {
        format!(
            "a faulted node serves again within {} ms of its recovery",
            self.within.ms()
        )
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let mut figures = Vec::new();
        let mut problems = Vec::new();
        for f in &cx.faults {
            let (Some(from), Some(i)) = (f.recover_ms, analysis::node_index(f.host)) else {
                continue;
            };
            if f.kind.is_instant() {
                continue;
            }
            match analysis::first_success_after_ms(run, Subject::Node(i), from) {
                Some(ms) => {
                    figures.push(format!("{}_{}_back_ms={ms:.0}", f.kind, f.host));
                    if ms > self.within.ms() as f64 {
                        problems.push(format!(
                            "{} served {ms:.0} ms after {} {} began (want <= {})",
                            node_name(i),
                            f.kind.undo().map_or("recovery".into(), |u| u.to_string()),
                            f.host,
                            self.within.ms()
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
}
