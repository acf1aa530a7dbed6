//! One operation history for every workload and every system, and the checker that judges it.
//!
//! A history is a sequence of [`Event`]s, one JSON line each (`history.jsonl`): an `invoke`
//! when a client sends an operation, and an `ok`, `fail` or `info` when it knows the outcome
//! (`info`: unknown — the operation may take effect at any later time, or never). A process
//! has at most one operation in flight; after an `info` the load generator gives the client a
//! new process, as Jepsen does. An invocation without a completion at the end of the history
//! counts as `info`.
//!
//! [`check`] judges a history key by key: keys whose writes are all compare-and-set on a
//! version (the counter loop, the contention workload) by their version chain in O(n log n)
//! ([`chain`]); keys with blind writes (the register workload) by a Wing–Gong–Lowe search with
//! memoisation and a budget ([`search`]), which says "undecided" past its budget, never
//! "linearizable". [`export`] writes the same history for Jepsen (EDN) and Porcupine (JSON).
//! [`verdict`] holds what both checkers conclude (a key's verdict, its violations), so that
//! `check` sits above `chain` and `search` and neither imports it back.
//!
//! Pure: no I/O but the readers and writers it is handed.

pub mod chain;
pub mod check;
pub mod event;
pub mod export;
pub mod ops;
pub mod search;
pub mod verdict;

pub use check::{check, check_file, Algorithm, CheckOptions, KeyVerdict, Report, Verdict};
pub use event::{Event, EventKind, Func, HistoryError, HistoryWriter};
pub use ops::{History, Op, Outcome};
