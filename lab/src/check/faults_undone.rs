//! `faults-undone`: nothing a run broke stays broken.

use serde::Deserialize;

use super::{Check, Context, Verdict};

/// Every fault was undone during the run, on the host it hit.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultsUndone {}

impl Check for FaultsUndone {
    fn describe(&self) -> String {
        "every fault is undone on the host it hit".into()
    }

    fn check(&self, cx: &Context) -> Verdict {
        let problems: Vec<String> = cx
            .faults
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
        let figures = cx
            .faults
            .iter()
            .map(|f| format!("{}={}", f.kind, f.host))
            .collect();
        Verdict::of(figures, problems)
    }
}
