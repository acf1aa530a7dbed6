//! The record of what chaos did: one printed line per action
//! (`<RFC3339 ms UTC> <command> <host>: <detail>`) and, with `--events FILE`, the same as a
//! JSON line appended to FILE so a report can line faults up with the loadgen's seconds.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// One action, successful or not.
#[derive(Debug, Serialize)]
pub struct Event {
    /// When the action finished, RFC 3339 with milliseconds, UTC.
    pub time: String,
    /// The same instant in Unix milliseconds.
    pub unix_ms: i64,
    /// When the action began (for `start`, before the wait for /health).
    pub begin_unix_ms: i64,
    pub command: String,
    pub host: String,
    pub ok: bool,
    pub detail: String,
    /// The fault's parameters (percent, rate, shape, layer...), when it has any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl Event {
    pub fn new(command: &str, host: &str, begin: DateTime<Utc>, ok: bool, detail: String) -> Self {
        let now = Utc::now();
        Event {
            time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            unix_ms: now.timestamp_millis(),
            begin_unix_ms: begin.timestamp_millis(),
            command: command.to_string(),
            host: host.to_string(),
            ok,
            detail,
            params: BTreeMap::new(),
        }
    }

    /// The same event with the fault's parameters.
    pub fn with_params(mut self, params: BTreeMap<String, String>) -> Self {
        self.params = params;
        self
    }

    /// The human line.
    pub fn line(&self) -> String {
        let status = if self.ok { "" } else { "FAILED: " };
        format!(
            "{} {} {}: {}{}",
            self.time, self.command, self.host, status, self.detail
        )
    }
}

/// Prints events and appends them to the events file.
pub struct Recorder {
    file: Option<PathBuf>,
}

impl Recorder {
    pub fn new(file: Option<&Path>) -> Self {
        Recorder {
            file: file.map(Path::to_path_buf),
        }
    }

    /// Prints the event (stdout if ok, stderr if not) and appends it to the file.
    pub fn record(&self, event: &Event) -> Result<()> {
        if event.ok {
            println!("{}", event.line());
        } else {
            eprintln!("{}", event.line());
        }
        if let Some(path) = &self.file {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening events file {}", path.display()))?;
            let json = serde_json::to_string(event)?;
            writeln!(f, "{json}")
                .with_context(|| format!("writing events file {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_json() {
        let e = Event::new("kill", "a1", Utc::now(), true, "killed a1, p1".into());
        let line = e.line();
        assert!(line.ends_with(" kill a1: killed a1, p1"), "{line}");
        assert!(line.contains('T') && line.contains('Z'));
        let json: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(json["command"], "kill");
        assert_eq!(json["ok"], true);
        assert!(json["unix_ms"].as_i64().unwrap() >= json["begin_unix_ms"].as_i64().unwrap());
    }
}
