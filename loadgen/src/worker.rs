//! The loop of one logical client: read → create if missing → increment → CAS, on its own key,
//! through the system's client ([`crate::store::Store`]).
//!
//! One iteration succeeds when the CAS is acknowledged. Any error (connect, timeout, 5xx,
//! unexpected status, bad body, or a definite 412/404 rejection) ends the iteration: the
//! connection is dropped, the error is counted by kind, and after a short pause the next
//! iteration starts with a new connection. Every read and every write answer goes through the
//! key's [`KeyChecker`]; writes are announced to it before they are sent, so an iteration that is
//! cut off by the end of the run leaves its write pending, never unaccounted for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::checker::{KeyChecker, State, Violation, WriteToken};
use crate::client::{ClientError, ErrorKind, KeyNode, WriteResult};
use crate::contention::{SharedToken, SharedView};
use crate::stats::{Op, Recorder};
use crate::store::{AnyStore, Store};
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
        }
    }

    fn observe_read(&mut self, read: Option<State>) -> Result<(), Violation> {
        match self {
            Checker::Own(c) => c.observe_read(read),
            Checker::Shared(c) => c.observe_read(read),
        }
    }

    fn observe_garbage(&mut self, raw: &str) -> Violation {
        match self {
            Checker::Own(c) => c.observe_garbage(raw),
            Checker::Shared(c) => c.observe_garbage(raw),
        }
    }

    fn begin_write(&mut self, prev: Option<u64>, value: i64) -> Token {
        match self {
            Checker::Own(c) => Token::Own(c.begin_write(prev, value)),
            Checker::Shared(c) => Token::Shared(c.begin_write(prev, value)),
        }
    }

    fn write_rejected(&mut self, t: Token) {
        match (self, t) {
            (Checker::Own(c), Token::Own(t)) => c.write_rejected(t),
            (Checker::Shared(c), Token::Shared(t)) => c.write_rejected(t),
            _ => {}
        }
    }

    fn write_unknown(&mut self, t: Token) {
        match (self, t) {
            (Checker::Own(c), Token::Own(t)) => c.write_unknown(t),
            (Checker::Shared(c), Token::Shared(t)) => c.write_unknown(t),
            _ => {}
        }
    }

    fn write_acked(&mut self, t: Token, resp: State) -> Result<(), Violation> {
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
}

fn to_state(n: &KeyNode) -> Option<State> {
    n.value
        .trim()
        .parse::<i64>()
        .ok()
        .map(|v| State::new(v, n.modified_index))
}

impl Worker {
    /// A client of its own key.
    pub fn new(
        system: System,
        node: usize,
        base_url: &str,
        key: String,
        timeout: Duration,
        recorder: Arc<Recorder>,
        error_pause: Duration,
    ) -> Self {
        Self::with_checker(
            system,
            node,
            base_url,
            Checker::Own(KeyChecker::new(key)),
            timeout,
            recorder,
            error_pause,
        )
    }

    /// A client that reports to `checker` (own or shared key).
    pub fn with_checker(
        system: System,
        node: usize,
        base_url: &str,
        checker: Checker,
        timeout: Duration,
        recorder: Arc<Recorder>,
        error_pause: Duration,
    ) -> Self {
        Worker {
            node,
            client: AnyStore::new(system, base_url, checker.key(), timeout),
            checker,
            recorder,
            error_pause,
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

    /// A read through the checker; `Ok(None)` = key missing.
    async fn read(&mut self) -> Result<Option<State>, ClientError> {
        let t = Instant::now();
        let r = self.client.read().await;
        self.count_request(&r);
        if r.is_ok() {
            self.recorder.request(Op::Get, t.elapsed());
        }
        let state = match r? {
            None => None,
            Some(n) => match to_state(&n) {
                Some(s) => Some(s),
                None => {
                    let v = self.checker.observe_garbage(&n.value);
                    self.report_violation(v);
                    return Err(ClientError::new(
                        ErrorKind::Body,
                        format!("value is not an integer: {:?}", n.value),
                    ));
                }
            },
        };
        if let Err(v) = self.checker.observe_read(state) {
            self.report_violation(v);
        }
        Ok(state)
    }

    /// A create (`prev` = None) or CAS through the checker; `Ok(state)` when acknowledged.
    async fn write(&mut self, prev: Option<u64>, value: i64) -> Result<State, ClientError> {
        let token = self.checker.begin_write(prev, value);
        let t = Instant::now();
        let (r, op) = match prev {
            None => (self.client.create(value).await, Op::Create),
            Some(p) => (self.client.cas(p, value).await, Op::Cas),
        };
        self.count_request(&r);
        match r {
            Ok(WriteResult::Applied(n)) => {
                self.recorder.request(op, t.elapsed());
                let Some(s) = to_state(&n) else {
                    // acknowledged, but with a body we cannot check: outcome stays open
                    self.checker.write_unknown(token);
                    return Err(ClientError::new(
                        ErrorKind::Body,
                        format!("acknowledged value is not an integer: {:?}", n.value),
                    ));
                };
                if let Err(v) = self.checker.write_acked(token, s) {
                    self.report_violation(v);
                }
                Ok(s)
            }
            Ok(WriteResult::Rejected(code)) => {
                self.recorder.request(op, t.elapsed());
                self.checker.write_rejected(token);
                Err(ClientError::new(
                    ErrorKind::Conflict,
                    format!("{} rejected (errorCode {:?})", op.as_str(), code),
                ))
            }
            Err(e) => {
                self.checker.write_unknown(token);
                Err(e)
            }
        }
    }

    /// One full iteration.
    async fn iteration(&mut self) -> Result<(), ClientError> {
        let cur = match self.read().await? {
            Some(s) => s,
            None => self.write(None, 0).await?,
        };
        let next = cur
            .value
            .checked_add(1)
            .ok_or_else(|| ClientError::new(ErrorKind::Body, "value overflow"))?;
        self.write(Some(cur.index), next).await?;
        Ok(())
    }

    /// Runs iterations until `stop` turns true; then, if `final_read`, reads the key once more
    /// (up to 3 tries) and checks it.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, final_read: bool) -> WorkerReport {
        loop {
            if *stop.borrow() {
                break;
            }
            let t = Instant::now();
            let res = tokio::select! {
                r = self.iteration() => r,
                _ = stop.changed() => break,
            };
            match res {
                Ok(()) => self.recorder.success(self.node, t.elapsed()),
                Err(e) => {
                    log::debug!("node {} {}: {}", self.node + 1, self.client.endpoint(), e);
                    self.client.reset();
                    self.recorder.error(self.node, e.kind);
                    if !self.error_pause.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(self.error_pause) => {}
                            _ = stop.changed() => break,
                        }
                    }
                }
            }
        }
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
