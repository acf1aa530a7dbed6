//! The loop of one logical client: read → create if missing → increment → CAS, on its own key,
//! through the system's client ([`crate::store::Store`]).
//!
//! One iteration succeeds when the CAS is acknowledged. Any error (connect, timeout, 5xx,
//! unexpected status, bad body, or a definite 412/404 rejection) ends the iteration: the
//! connection is dropped, the error is counted by kind, and after a short pause the next
//! iteration starts with a new connection. Every read and every write answer goes through the
//! key's [`KeyChecker`]; writes are announced to it before they are sent. Every operation is
//! also recorded in the run's history ([`HistoryLog`]) as an invocation and a completion.
//!
//! At the end of the run a client starts no new operation, but the one in flight completes
//! (each is bounded by the timeout) and is checked and recorded like any other: every
//! operation is accounted for, acknowledged, refused or of unknown outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::checker::{KeyChecker, State, Violation, WriteToken};
use crate::client::{ClientError, ErrorKind, KeyNode, WriteResult};
use crate::contention::{SharedToken, SharedView};
use crate::history_log::{self, HistoryLog};
use crate::stats::{Op, Recorder};
use crate::store::{AnyStore, Store};
use perseus_history::{Event, EventKind, Func};
use perseus_model::System;

/// Violations logged to stderr as they happen; the rest only count (and go to --out).
const MAX_LOGGED_VIOLATIONS: u64 = 100;

/// Outcome of the final read of a key after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalRead {
    /// Not attempted (disabled).
    Skipped,
    /// Read and checked (a violation, if any, was recorded).
    Checked,
    /// The node did not answer.
    Unreachable,
}

/// The checker a client reports to: its own key's, or its view of a shared key.
#[derive(Debug)]
pub enum Checker {
    Own(KeyChecker),
    Shared(SharedView),
    /// No online check (the register workload: its history is checked after the run).
    Unchecked(String),
}

/// A write announced to a [`Checker`].
#[derive(Debug, Clone, Copy)]
enum Token {
    Own(WriteToken),
    Shared(SharedToken),
}

impl Checker {
    pub fn key(&self) -> &str {
        match self {
            Checker::Own(c) => c.key(),
            Checker::Shared(c) => c.key(),
            Checker::Unchecked(k) => k,
        }
    }

    fn observe_read(&mut self, read: Option<State>) -> Result<(), Violation> {
        match self {
            Checker::Own(c) => c.observe_read(read),
            // a shared key's reads are judged with its history after the run
            Checker::Shared(_) | Checker::Unchecked(_) => Ok(()),
        }
    }

    fn observe_garbage(&mut self, raw: &str) -> Violation {
        match self {
            Checker::Own(c) => c.observe_garbage(raw),
            Checker::Shared(c) => c.observe_garbage(raw),
            Checker::Unchecked(k) => KeyChecker::new(k.clone()).observe_garbage(raw),
        }
    }

    fn begin_write(&mut self, prev: Option<u64>, value: i64) -> Option<Token> {
        match self {
            Checker::Own(c) => Some(Token::Own(c.begin_write(prev, value))),
            Checker::Shared(c) => Some(Token::Shared(c.begin_write(prev, value))),
            Checker::Unchecked(_) => None,
        }
    }

    fn write_rejected(&mut self, t: Option<Token>) {
        let Some(t) = t else { return };
        match (self, t) {
            (Checker::Own(c), Token::Own(t)) => c.write_rejected(t),
            (Checker::Shared(c), Token::Shared(t)) => c.write_rejected(t),
            _ => {}
        }
    }

    fn write_unknown(&mut self, t: Option<Token>) {
        let Some(t) = t else { return };
        match (self, t) {
            (Checker::Own(c), Token::Own(t)) => c.write_unknown(t),
            (Checker::Shared(c), Token::Shared(t)) => c.write_unknown(t),
            _ => {}
        }
    }

    fn write_acked(&mut self, t: Option<Token>, resp: State) -> Result<(), Violation> {
        let Some(t) = t else { return Ok(()) };
        match (self, t) {
            (Checker::Own(c), Token::Own(t)) => c.write_acked(t, resp),
            (Checker::Shared(c), Token::Shared(t)) => c.write_acked(t, resp),
            // a token always comes from the same checker
            _ => Ok(()),
        }
    }
}

/// What a worker hands back when it stops.
#[derive(Debug)]
pub struct WorkerReport {
    pub node: usize,
    pub key: String,
    pub checker: Checker,
    pub final_read: FinalRead,
}

/// One logical client.
pub struct Worker {
    node: usize,
    client: AnyStore,
    checker: Checker,
    recorder: Arc<Recorder>,
    error_pause: Duration,
    history: Arc<HistoryLog>,
    /// This client's process in the history (a new one after each unknown outcome).
    process: u64,
}

/// What a worker needs besides its node and checker.
#[derive(Clone)]
pub struct WorkerEnv {
    pub system: System,
    pub timeout: Duration,
    pub recorder: Arc<Recorder>,
    pub error_pause: Duration,
    pub history: Arc<HistoryLog>,
    /// Reads without a quorum where the system has both (etcd v2: the stale-reads control).
    pub local_reads: bool,
    /// etcd3 through its JSON gateway instead of gRPC.
    pub etcd3_gateway: bool,
}

fn to_state(n: &KeyNode) -> Option<State> {
    n.value
        .trim()
        .parse::<i64>()
        .ok()
        .map(|v| State::new(v, n.modified_index))
}

impl Worker {
    /// A client that reports to `checker` (own or shared key).
    pub fn with_checker(node: usize, base_url: &str, checker: Checker, env: &WorkerEnv) -> Self {
        let mut client = AnyStore::new(env.system, base_url, checker.key(), env.timeout);
        if env.local_reads {
            client = client.with_local_reads();
        }
        if env.etcd3_gateway {
            client = client.through_etcd3_gateway();
        }
        Worker {
            node,
            client,
            checker,
            recorder: env.recorder.clone(),
            error_pause: env.error_pause,
            process: env.history.process(),
            history: env.history.clone(),
        }
    }

    /// Counts one request and whether the node answered it with a 5xx.
    fn count_request<T>(&self, r: &Result<T, ClientError>) {
        let unavailable = matches!(r, Err(e) if e.kind == ErrorKind::Http5xx);
        self.recorder.sent(unavailable);
    }

    fn report_violation(&self, v: Violation) {
        let text = v.to_string();
        let n = self.recorder.violation(self.node, v);
        if n <= MAX_LOGGED_VIOLATIONS {
            log::error!("violation on node {}: {}", self.node + 1, text);
        } else if n == MAX_LOGGED_VIOLATIONS + 1 {
            log::error!("more violations: not logged any more (see the summary and --out)");
        }
    }

    /// The next process after an operation of unknown outcome (the old one may still have it
    /// in flight).
    fn next_process(&mut self) {
        self.process = self.history.process();
    }

    /// Records an event of this client's current operation: into the run's history, and, on
    /// a shared key, into the key's own record that is judged after the run.
    fn log(&self, kind: EventKind, key: &str, f: Func, fill: impl FnOnce(&mut Event)) {
        let shared = match &self.checker {
            Checker::Shared(v) => Some(v),
            _ => None,
        };
        if !self.history.enabled() && shared.is_none() {
            return;
        }
        let mut e = Event::complete(kind, self.process, key, f, self.history.now());
        fill(&mut e);
        self.history.record(&e);
        if let Some(v) = shared {
            v.record(&e);
        }
    }

    /// Records the completion of an operation that failed with `err`: a read as `fail` (it
    /// changed nothing), a write as `info` (it may still take effect).
    fn log_failed(&self, key: &str, f: Func, err: &ClientError) {
        self.log(HistoryLog::failed_kind(f, err), key, f, |e| {
            e.error = Some(history_log::short(err));
        });
    }

    /// A read through the checker and into the history; `Ok(None)` = key missing.
    pub(crate) async fn read(&mut self) -> Result<Option<State>, ClientError> {
        let key = self.checker.key().to_string();
        self.log(EventKind::Invoke, &key, Func::Read, |_| {});
        let t = Instant::now();
        let r = self.client.read().await;
        self.count_request(&r);
        if r.is_ok() {
            self.recorder.request(Op::Get, t.elapsed());
        }
        let node = match r {
            Ok(n) => n,
            Err(e) => {
                self.log_failed(&key, Func::Read, &e);
                return Err(e);
            }
        };
        let state = match node {
            None => None,
            Some(n) => match to_state(&n) {
                Some(s) => Some(s),
                None => {
                    self.log(EventKind::Fail, &key, Func::Read, |e| {
                        e.error = Some(format!("value is not an integer: {:?}", n.value));
                    });
                    let v = self.checker.observe_garbage(&n.value);
                    self.report_violation(v);
                    return Err(ClientError::new(
                        ErrorKind::Body,
                        format!("value is not an integer: {:?}", n.value),
                    ));
                }
            },
        };
        self.log(EventKind::Ok, &key, Func::Read, |e| {
            e.value = state.map(|s| s.value);
            e.version = state.map(|s| s.index);
        });
        if let Err(v) = self.checker.observe_read(state) {
            self.report_violation(v);
        }
        Ok(state)
    }

    /// A create (`prev` = None) or a CAS on `prev` (whose value was read as `prev_value`)
    /// through the checker and into the history; `Ok(state)` when acknowledged.
    pub(crate) async fn write(
        &mut self,
        prev: Option<State>,
        value: i64,
    ) -> Result<State, ClientError> {
        let key = self.checker.key().to_string();
        let f = if prev.is_some() {
            Func::Cas
        } else {
            Func::Create
        };
        self.log(EventKind::Invoke, &key, f, |e| {
            e.value = Some(value);
            e.prev_version = prev.map(|p| p.index);
            e.prev_value = prev.map(|p| p.value);
        });
        let token = self.checker.begin_write(prev.map(|p| p.index), value);
        let t = Instant::now();
        let (r, op) = match prev {
            None => (self.client.create(value).await, Op::Create),
            Some(p) => (self.client.cas(p.index, value).await, Op::Cas),
        };
        self.count_request(&r);
        match r {
            Ok(WriteResult::Applied(n)) => {
                self.recorder.request(op, t.elapsed());
                let Some(s) = to_state(&n) else {
                    // acknowledged, but with a body we cannot check: outcome stays open
                    self.checker.write_unknown(token);
                    self.log(EventKind::Info, &key, f, |e| {
                        e.error = Some("acknowledged with a value that is not an integer".into());
                    });
                    self.next_process();
                    return Err(ClientError::new(
                        ErrorKind::Body,
                        format!("acknowledged value is not an integer: {:?}", n.value),
                    ));
                };
                self.log(EventKind::Ok, &key, f, |e| {
                    e.value = Some(value);
                    e.version = Some(s.index);
                });
                if let Err(v) = self.checker.write_acked(token, s) {
                    self.report_violation(v);
                }
                Ok(s)
            }
            Ok(WriteResult::Rejected(code)) => {
                self.recorder.request(op, t.elapsed());
                self.checker.write_rejected(token);
                self.log(EventKind::Fail, &key, f, |e| {
                    e.error = Some(format!("rejected (errorCode {code:?})"));
                });
                Err(ClientError::new(
                    ErrorKind::Conflict,
                    format!("{} rejected (errorCode {:?})", op.as_str(), code),
                ))
            }
            Err(e) if e.not_applied => {
                // the store said so: the write is known not to have happened
                self.checker.write_rejected(token);
                self.log_failed(&key, f, &e);
                Err(e)
            }
            Err(e) => {
                self.checker.write_unknown(token);
                self.log_failed(&key, f, &e);
                self.next_process();
                Err(e)
            }
        }
    }

    /// A blind write of `value` into the history (the register workload); `Ok(version)`.
    pub(crate) async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        let key = self.checker.key().to_string();
        self.log(EventKind::Invoke, &key, Func::Write, |e| {
            e.value = Some(value);
        });
        let t = Instant::now();
        let r = self.client.put(value).await;
        self.count_request(&r);
        match r {
            Ok(version) => {
                self.recorder.request(Op::Cas, t.elapsed());
                self.log(EventKind::Ok, &key, Func::Write, |e| {
                    e.value = Some(value);
                    e.version = version;
                });
                Ok(version)
            }
            Err(e) => {
                self.log_failed(&key, Func::Write, &e);
                if !e.not_applied {
                    self.next_process();
                }
                Err(e)
            }
        }
    }

    /// One full iteration; `Ok(false)` when the run ended before it could (no operation is
    /// started after the stop, the one in flight completes).
    async fn iteration(&mut self, stop: &watch::Receiver<bool>) -> Result<bool, ClientError> {
        let cur = match self.read().await? {
            Some(s) => s,
            None => {
                if *stop.borrow() {
                    return Ok(false);
                }
                self.write(None, 0).await?
            }
        };
        let next = cur
            .value
            .checked_add(1)
            .ok_or_else(|| ClientError::new(ErrorKind::Body, "value overflow"))?;
        if *stop.borrow() {
            return Ok(false);
        }
        self.write(Some(cur), next).await?;
        Ok(true)
    }

    /// Counts a failed iteration and pauses (unless the run ends meanwhile); false: stop.
    pub(crate) async fn after_error(
        &mut self,
        e: ClientError,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        log::debug!("node {} {}: {}", self.node + 1, self.client.endpoint(), e);
        self.client.reset();
        self.recorder.error(self.node, e.kind);
        if !self.error_pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.error_pause) => {}
                _ = stop.changed() => return false,
            }
        }
        true
    }

    /// Runs iterations until `stop` turns true (the operation in flight then completes, bounded
    /// by the timeout); then, if `final_read`, reads the key once more (up to 3 tries) and
    /// checks it.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, final_read: bool) -> WorkerReport {
        while !*stop.borrow() {
            let t = Instant::now();
            match self.iteration(&stop).await {
                Ok(true) => self.recorder.success(self.node, t.elapsed()),
                Ok(false) => break,
                Err(e) => {
                    if !self.after_error(e, &mut stop).await {
                        break;
                    }
                }
            }
        }
        self.finish(final_read).await
    }

    /// The report, after the final read if asked.
    pub(crate) async fn finish(mut self, final_read: bool) -> WorkerReport {
        let final_read = if final_read {
            self.final_read().await
        } else {
            FinalRead::Skipped
        };
        WorkerReport {
            node: self.node,
            key: self.checker.key().to_string(),
            checker: self.checker,
            final_read,
        }
    }

    /// Counts one successful operation of the register workload.
    pub(crate) fn success(&self, t: Instant) {
        self.recorder.success(self.node, t.elapsed());
    }

    async fn final_read(&mut self) -> FinalRead {
        for _ in 0..3 {
            self.client.reset();
            match self.read().await {
                Ok(_) => return FinalRead::Checked,
                Err(e) if e.kind == ErrorKind::Body => return FinalRead::Checked,
                Err(e) => log::debug!("final read of {}: {}", self.client.endpoint(), e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        FinalRead::Unreachable
    }
}
