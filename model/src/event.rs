//! The record of one chaos action: printed as a line
//! (`<RFC3339 ms UTC> <command> <host>: <detail>`) and, with `chaos --events FILE`, appended
//! to FILE as a JSON line so a report can line faults up with the load generator's seconds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fault::FaultKind;
use crate::host::HostArg;

/// One action, successful or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

impl ChaosEvent {
    /// An action that began at `begin` and finishes now.
    pub fn new(
        command: FaultKind,
        host: HostArg,
        begin: DateTime<Utc>,
        ok: bool,
        detail: String,
    ) -> Self {
        let now = Utc::now();
        ChaosEvent {
            time: now,
            unix_ms: now.timestamp_millis(),
            begin_unix_ms: begin.timestamp_millis(),
            command,
            host,
            ok,
            detail,
        }
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
            true,
            "killed a1, p1".into(),
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
}
