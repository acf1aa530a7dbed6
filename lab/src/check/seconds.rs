//! `seconds`: the run has enough data to judge.

use perseus_model::Span;
use serde::Deserialize;

use super::{zero, Check, Context, Verdict};
use crate::analysis;

/// At least `min` seconds of data from `from` on.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seconds {
    pub min: usize,
    #[serde(default = "zero")]
    pub from: Span,
}

impl Check for Seconds {
    fn describe(&self) -> String {
        format!(
            "at least {} seconds of data from {:.0} s",
            self.min,
            self.from.0.as_secs_f64()
        )
    }

    fn check(&self, cx: &Context) -> Verdict {
        let n = analysis::seconds_within(cx.run, self.from.ms(), cx.end_ms).count();
        let problems = if n >= self.min {
            vec![]
        } else {
            vec![format!("only {n} seconds of data (want {})", self.min)]
        };
        Verdict::of(vec![format!("seconds={n}")], problems)
    }
}
