//! The record of one chaos action: printed as a line
//! (`<RFC3339 ms UTC> <command> <host>: <detail>`) and, with `chaos --events FILE`, appended
//! to FILE as a JSON line so a report can line faults up with the load generator's seconds.
//! How the fault was applied beyond its kind (`layer`, `scope`) and why it failed
//! ([`Failure`]) are typed fields; files written before they were (a `params` map of text)
//! still read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fault::FaultKind;
use crate::host::HostArg;
use crate::params::{Layer, Scope};

/// Why an action failed, as far as a reader of the record needs to tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The host (or the part the fault needs) is not running.
    NotRunning,
    /// No leader was agreed on when resolving `leader`.
    NoLeader,
    /// This kernel cannot do it (no sch_netem for `delay`).
    Unsupported,
    /// The Docker engine or a command inside the host failed.
    Engine,
}

/// One action, successful or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "Written")]
pub struct ChaosEvent {
    /// When the action finished.
    #[serde(with = "crate::time::millis")]
    pub time: DateTime<Utc>,
    /// The same instant in Unix milliseconds.
    pub unix_ms: i64,
    /// When the action began (for `start`, before the wait for the health URL).
    pub begin_unix_ms: i64,
    pub command: FaultKind,
    /// The host acted on; `leader` only when resolving the leader failed.
    pub host: HostArg,
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
    /// The part of a Perseus host it hit (acceptor or node); none for the whole host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Which packets a loss dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Why it failed (none when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The record as files hold it, old (`params`) or new (typed fields).
#[derive(Deserialize)]
struct Written {
    #[serde(with = "crate::time::millis")]
    time: DateTime<Utc>,
    unix_ms: i64,
    begin_unix_ms: i64,
    command: FaultKind,
    host: HostArg,
    ok: bool,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    layer: Option<Layer>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    failure: Option<Failure>,
    /// Before the typed fields: `layer` and `scope` as text.
    #[serde(default)]
    params: BTreeMap<String, String>,
}

impl From<Written> for ChaosEvent {
    fn from(w: Written) -> Self {
        let old = |key: &str| w.params.get(key).map(String::as_str);
        ChaosEvent {
            layer: w
                .layer
                .or_else(|| old("layer").and_then(|v| v.parse().ok())),
            scope: w
                .scope
                .or_else(|| old("scope").and_then(|v| v.parse().ok())),
            time: w.time,
            unix_ms: w.unix_ms,
            begin_unix_ms: w.begin_unix_ms,
            command: w.command,
            host: w.host,
            ok: w.ok,
            detail: w.detail,
            failure: w.failure,
        }
    }
}

impl ChaosEvent {
    /// An action that began at `begin` and finishes now: done (`Ok(detail)`) or failed.
    pub fn new(
        command: FaultKind,
        host: HostArg,
        begin: DateTime<Utc>,
        outcome: Result<String, (Failure, String)>,
    ) -> Self {
        let now = Utc::now();
        let (ok, detail, failure) = match outcome {
            Ok(detail) => (true, detail, None),
            Err((failure, detail)) => (false, detail, Some(failure)),
        };
        ChaosEvent {
            time: now,
            unix_ms: now.timestamp_millis(),
            begin_unix_ms: begin.timestamp_millis(),
            command,
            host,
            ok,
            detail,
            layer: None,
            scope: None,
            failure,
        }
    }

    /// The same event with how the fault was applied: the layer when not the whole host,
    /// the scope when the kind has one.
    pub fn applied(mut self, layer: Layer, scope: Option<Scope>) -> Self {
        self.layer = (layer != Layer::Host).then_some(layer);
        self.scope = scope.filter(|_| self.command.spec().scoped);
        self
    }

    /// The human line.
    pub fn line(&self) -> String {
        let status = if self.ok { "" } else { "FAILED: " };
        format!(
            "{} {} {}: {}{}",
            crate::time::rfc3339_ms(self.time),
            self.command,
            self.host,
            status,
            self.detail
        )
    }

    /// Parses an events file (JSON lines; blank lines skipped); errors name the line.
    pub fn parse_lines(text: &str) -> Result<Vec<ChaosEvent>, crate::load::LineError> {
        crate::load::parse_lines(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostName;

    #[test]
    fn line_and_json() {
        let e = ChaosEvent::new(
            FaultKind::Kill,
            HostArg::Host(HostName::perseus(1)),
            Utc::now(),
            Ok("killed a1, p1".into()),
        );
        let line = e.line();
        assert!(line.ends_with(" kill a1: killed a1, p1"), "{line}");
        assert!(line.contains('T') && line.contains('Z'));
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains("\"command\":\"kill\",\"host\":\"a1\",\"ok\":true"),
            "{json}"
        );
        assert!(e.unix_ms >= e.begin_unix_ms);
    }

    #[test]
    fn reads_a_recorded_line_back_exactly() {
        let line = r#"{"time":"2026-11-24T16:26:59.650Z","unix_ms":1795537619650,"begin_unix_ms":1795537619416,"command":"kill","host":"a1","ok":true,"detail":"SIGKILL sent to a1, p1"}"#;
        let e: ChaosEvent = serde_json::from_str(line).unwrap();
        assert_eq!(e.command, FaultKind::Kill);
        assert_eq!(e.host, HostArg::Host(HostName::perseus(1)));
        assert_eq!(serde_json::to_string(&e).unwrap(), line);
    }

    #[test]
    fn typed_fields_and_the_old_params_map() {
        let old = r#"{"time":"2026-11-24T16:26:59.650Z","unix_ms":1,"begin_unix_ms":0,"command":"kill","host":"a1","ok":true,"detail":"","params":{"layer":"acceptor"}}"#;
        let e: ChaosEvent = serde_json::from_str(old).unwrap();
        assert_eq!(e.layer, Some(Layer::Acceptor));
        let e = ChaosEvent::new(
            FaultKind::Loss(30),
            HostArg::Host(HostName::perseus(2)),
            Utc::now(),
            Err((Failure::NotRunning, "host a2 is not running".into())),
        )
        .applied(Layer::Host, Some(Scope::All));
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.ends_with(r#""scope":"all","failure":"not-running"}"#),
            "{json}"
        );
        let back = serde_json::from_str::<ChaosEvent>(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let kill = ChaosEvent::new(
            FaultKind::Kill,
            HostArg::Leader,
            Utc::now(),
            Ok(String::new()),
        )
        .applied(Layer::Node, Some(Scope::Peers));
        assert_eq!((kill.layer, kill.scope), (Some(Layer::Node), None));
    }
}
