//! What the checkers conclude, shared by the version chain ([`crate::chain`]), the search
//! ([`crate::search`]) and the history's verdict ([`crate::check`]): a key's verdict, its
//! violations with the operations that show them.

use serde::{Deserialize, Serialize};

use crate::event::Func;
use crate::ops::{Op, Outcome};

/// What a checker concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search ran out of its budget: neither shown linearizable nor shown not.
    Undecided,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not-linearizable",
            Verdict::Undecided => "undecided",
        }
    }

    /// The worse of two: a violation beats undecided beats linearizable.
    pub(crate) fn worst(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (NotLinearizable, _) | (_, NotLinearizable) => NotLinearizable,
            (Undecided, _) | (_, Undecided) => Undecided,
            _ => Linearizable,
        }
    }
}

/// What kind of anomaly a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// A read returned a state older than one an operation that had already finished saw or
    /// made.
    StaleRead,
    /// Two writes both succeeded on the same version: one of them is lost.
    LostWrite,
    /// Two acknowledged writes claim the same version with different values or bases.
    DuplicateVersion,
    /// A read returned a version or value that no write (acknowledged or unknown) made.
    PhantomRead,
    /// A write took effect before a state that an operation finished before it began saw.
    WriteOutOfOrder,
    /// The search found no order of these operations that explains them.
    NotLinearizable,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::StaleRead => "stale-read",
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::DuplicateVersion => "duplicate-version",
            ViolationKind::PhantomRead => "phantom-read",
            ViolationKind::WriteOutOfOrder => "write-out-of-order",
            ViolationKind::NotLinearizable => "not-linearizable",
        }
    }
}

/// One operation as a violation shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpView {
    pub process: u64,
    pub f: Func,
    /// ok, fail or info.
    pub outcome: String,
    /// Invocation and completion, ms since the start (completion absent: unknown).
    pub call_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_value: Option<i64>,
    /// The invocation's line in history.jsonl.
    pub line: u64,
}

impl OpView {
    pub fn of(op: &Op) -> OpView {
        let ms = |ns: u64| (ns as f64 / 1e6 * 1000.0).round() / 1000.0;
        OpView {
            process: op.process,
            f: op.f,
            outcome: match op.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Info => "info",
            }
            .into(),
            call_ms: ms(op.call),
            ret_ms: op.ret.map(ms),
            value: op.value,
            version: op.version,
            prev_version: op.prev_version,
            prev_value: op.prev_value,
            line: op.line,
        }
    }

    /// `p3 cas 12→17 @5 ok v9 [1.200, 3.400] ms`, for reports.
    pub fn describe(&self) -> String {
        let v = |x: Option<i64>| x.map_or("missing".to_string(), |x| x.to_string());
        let what = match self.f {
            Func::Read => format!("read → {}", v(self.value)),
            Func::Write => format!("write {}", v(self.value)),
            Func::Create => format!("create {}", v(self.value)),
            Func::Cas => format!(
                "cas {}@{}→{}",
                v(self.prev_value),
                self.prev_version.map_or("?".into(), |x| x.to_string()),
                v(self.value)
            ),
        };
        let version = self.version.map_or(String::new(), |x| format!(" v{x}"));
        let ret = self.ret_ms.map_or("…".to_string(), |r| format!("{r:.3}"));
        format!(
            "p{} {what} {}{version} [{:.3}, {ret}] ms (line {})",
            self.process, self.outcome, self.call_ms, self.line
        )
    }
}

/// One anomaly, with the smallest sub-history the checker found that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub key: String,
    pub kind: ViolationKind,
    /// What was expected and what happened, in one sentence.
    pub message: String,
    /// The operations that show it, in invocation order.
    pub ops: Vec<OpView>,
}

/// What one key's checker returns.
pub(crate) struct KeyResult {
    pub verdict: Verdict,
    /// The first few violations, each with its witness.
    pub violations: Vec<Violation>,
    /// All violations found on the key.
    pub count: usize,
    pub steps: u64,
}

/// Violations kept per key (the rest are counted).
pub(crate) const KEPT_PER_KEY: usize = 20;
