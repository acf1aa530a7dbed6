//! The verdict on a history: each key judged on its own (linearizability is local), by the
//! version chain when every write of the key is a compare-and-set on a version, else by the
//! search; the history's verdict is the worst of its keys'.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::event::{Func, HistoryError};
use crate::ops::{History, Op, Outcome};
pub use crate::verdict::{OpView, Verdict, Violation, ViolationKind};
use crate::{chain, search};

/// Which checker judged a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Every write a compare-and-set on a version: the version chain, O(n log n).
    VersionChain,
    /// Blind writes: the Wing–Gong–Lowe search with memoisation and a budget.
    Search,
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyVerdict {
    pub key: String,
    pub algorithm: Algorithm,
    pub verdict: Verdict,
    pub ops: usize,
    /// Search steps taken (0 for the version chain).
    pub steps: u64,
}

/// Limits of a check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Search steps per key before it says "undecided" (at least `search_steps_per_op` per
    /// operation of the key).
    pub search_budget: u64,
    /// Search steps a key may take per operation, whatever the budget: a linearizable history
    /// takes about ten per operation (a step per pending call passed over), so a long run is
    /// not left undecided by its length alone.
    pub search_steps_per_op: u64,
    /// Violations kept in the report (all are counted).
    pub max_violations: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            search_budget: 2_000_000,
            search_steps_per_op: 100,
            max_violations: 50,
        }
    }
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    pub operations: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Acknowledged writes (write, cas, create) and writes of unknown outcome: the store
    /// holds every acknowledged one and none but these (or the verdict is not linearizable).
    pub writes_ok: usize,
    pub writes_info: usize,
    pub keys: usize,
    pub keys_linearizable: usize,
    pub keys_not_linearizable: usize,
    pub keys_undecided: usize,
    pub violations_total: usize,
    pub violations: Vec<Violation>,
    /// Per key, the worst first (at most 100).
    pub per_key: Vec<KeyVerdict>,
}

impl Report {
    /// One line: `not-linearizable: 3 violations on 1 of 3 keys (5000 operations: …)`.
    pub fn line(&self) -> String {
        let what = match self.verdict {
            Verdict::Linearizable => format!("all {} keys linearizable", self.keys),
            Verdict::NotLinearizable => format!(
                "{} violations on {} of {} keys",
                self.violations_total, self.keys_not_linearizable, self.keys
            ),
            Verdict::Undecided => format!(
                "{} of {} keys undecided (search budget spent), none violated",
                self.keys_undecided, self.keys
            ),
        };
        format!(
            "{}: {what} ({} operations: {} ok, {} fail, {} unknown; writes {} acknowledged, {} unknown)",
            self.verdict.as_str(),
            self.operations,
            self.ok,
            self.fail,
            self.info,
            self.writes_ok,
            self.writes_info
        )
    }
}

/// Whether a key's history can be judged by its version chain: no blind writes, and every
/// acknowledged operation carries the version the store returned (or read "missing").
fn versioned(ops: &[Op]) -> bool {
    ops.iter().all(|o| {
        o.f != Func::Write
            && (o.outcome != Outcome::Ok || o.version.is_some() || o.f == Func::Read)
            && !(o.outcome == Outcome::Ok
                && o.f == Func::Read
                && o.value.is_some()
                && o.version.is_none())
    })
}

/// Judges every key of `history`.
pub fn check(history: &History, opts: CheckOptions) -> Report {
    let mut r = Report {
        verdict: Verdict::Linearizable,
        operations: 0,
        ok: 0,
        fail: 0,
        info: 0,
        writes_ok: 0,
        writes_info: 0,
        keys: history.keys.len(),
        keys_linearizable: 0,
        keys_not_linearizable: 0,
        keys_undecided: 0,
        violations_total: 0,
        violations: Vec::new(),
        per_key: Vec::new(),
    };
    for (key, ops) in history.keys.iter().zip(&history.ops) {
        for o in ops {
            r.operations += 1;
            match o.outcome {
                Outcome::Ok => r.ok += 1,
                Outcome::Fail => r.fail += 1,
                Outcome::Info => r.info += 1,
            }
            if o.f.is_write() {
                match o.outcome {
                    Outcome::Ok => r.writes_ok += 1,
                    Outcome::Info => r.writes_info += 1,
                    Outcome::Fail => {}
                }
            }
        }
        let (algorithm, res) = if versioned(ops) {
            (Algorithm::VersionChain, chain::check_key(key, ops))
        } else {
            (
                Algorithm::Search,
                search::check_key(
                    key,
                    ops,
                    opts.search_budget
                        .max(ops.len() as u64 * opts.search_steps_per_op),
                ),
            )
        };
        match res.verdict {
            Verdict::Linearizable => r.keys_linearizable += 1,
            Verdict::NotLinearizable => r.keys_not_linearizable += 1,
            Verdict::Undecided => r.keys_undecided += 1,
        }
        r.verdict = r.verdict.worst(res.verdict);
        r.violations_total += res.count;
        let room = opts.max_violations.saturating_sub(r.violations.len());
        r.violations.extend(res.violations.into_iter().take(room));
        r.per_key.push(KeyVerdict {
            key: key.clone(),
            algorithm,
            verdict: res.verdict,
            ops: ops.len(),
            steps: res.steps,
        });
    }
    let rank = |v: Verdict| match v {
        Verdict::NotLinearizable => 0,
        Verdict::Undecided => 1,
        Verdict::Linearizable => 2,
    };
    r.per_key.sort_by_key(|k| rank(k.verdict));
    r.per_key.truncate(100);
    r
}

/// Reads a `history.jsonl` file and judges it.
pub fn check_file(path: &Path, opts: CheckOptions) -> Result<Report, HistoryError> {
    let f = File::open(path)?;
    let h = History::read(BufReader::with_capacity(1 << 20, f))?;
    Ok(check(&h, opts))
}
