//! `each-node-serves`: no node is silent for the whole run.

use serde::Deserialize;

use super::{node_name, Check, Context, Verdict};

/// Every node served in at least one second of the run (a node that never answers a client
/// is a broken deployment, whatever the faults did).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EachNodeServes {}

impl Check for EachNodeServes {
    fn describe(&self) -> String {
        "every node serves in some second of the run".into()
    }

    fn check(&self, cx: &Context) -> Verdict {
        let run = cx.run;
        let silent: Vec<String> = (0..run.node_count())
            .filter(|&i| {
                !run.seconds
                    .iter()
                    .any(|s| s.nodes.get(i).copied().unwrap_or(0) > 0)
            })
            .map(node_name)
            .collect();
        let problems = silent
            .iter()
            .map(|n| format!("{n} served nothing in the whole run"))
            .collect();
        Verdict::of(vec![format!("nodes={}", run.node_count())], problems)
    }
}
