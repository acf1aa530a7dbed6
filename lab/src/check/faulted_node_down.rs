//! `faulted-node-down`: a node a fault takes away serves nothing while it is away.

use perseus_model::Layer;
use serde::Deserialize;

use super::{node_name, Check, Context, Verdict};
use crate::analysis::{self, Fault};

/// In every whole second inside a fault that takes a node away (the fault table's
/// `takes_node_away`: kill, isolate, pause), that node had no success; each such fault lasted
/// at least `min_seconds` whole seconds.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultedNodeDown {
    #[serde(default)]
    pub min_seconds: usize,
}

impl Check for FaultedNodeDown {
    fn describe(&self) -> String {
        format!(
            "a faulted node serves nothing while it is down ({}+ whole seconds per fault)",
            self.min_seconds
        )
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let mut figures = Vec::new();
        let mut problems = Vec::new();
        // One of the acceptor alone leaves the node serving, and grey faults (loss, limit)
        // only slow it: not about this check.
        let takes_node_away =
            |f: &&Fault| f.kind.spec().takes_node_away && f.layer != Some(Layer::Acceptor);
        for f in cx.faults.iter().filter(takes_node_away) {
            let Some(i) = analysis::node_index(f.host) else {
                continue;
            };
            let inside: Vec<_> =
                analysis::seconds_within(run, f.start_ms, f.end_ms(cx.end_ms)).collect();
            figures.push(format!(
                "{}_{}_whole_seconds={}",
                f.kind,
                f.host,
                inside.len()
            ));
            if inside.len() < self.min_seconds {
                problems.push(format!(
                    "{} {} lasted {} whole seconds (want {})",
                    f.kind,
                    f.host,
                    inside.len(),
                    self.min_seconds
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
}
