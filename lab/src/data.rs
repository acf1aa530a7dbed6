//! Reading a run's recorded data: the loadgen's JSON lines and chaos's events file, as the
//! shared record types of `perseus_model`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use perseus_model::load::{self, Record};

pub use perseus_model::load::{Bucket, Second, Start, Summary, ViolationRecord};
pub use perseus_model::ChaosEvent as Event;

/// Everything recorded in one run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Wall-clock start of the load, Unix ms.
    pub start_unix_ms: i64,
    pub nodes: Vec<String>,
    /// The load's settings as its `start` record gave them (connections, timeout, keys).
    pub settings: Start,
    pub seconds: Vec<Second>,
    pub buckets: Vec<Bucket>,
    pub violations: Vec<ViolationRecord>,
    pub summary: Option<Summary>,
    pub events: Vec<Event>,
    /// What the system's reads promise, when the caller knows the system (`lab run`):
    /// `no-violations-beyond-promise` reads it.
    pub promise: Option<perseus_model::Consistency>,
    /// The history checker's verdict on the run (`history-check.json`), when it has one.
    pub history: Option<perseus_history::Report>,
    /// The control the run was of (`control.txt`), if any.
    pub control: Option<perseus_model::Control>,
}

impl Run {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// An event's instant as ms from the run start.
    pub fn offset_ms(&self, unix_ms: i64) -> i64 {
        unix_ms - self.start_unix_ms
    }

    /// The number of consistency violations: the loadgen's total, or the violation records
    /// when the run has no summary (it was cut short).
    pub fn violation_count(&self) -> u64 {
        self.summary
            .as_ref()
            .map_or(self.violations.len() as u64, |s| s.violations)
    }

    /// Parses the loadgen's JSON lines and the events (either may come from files).
    pub fn parse(load: &str, events: &str) -> Result<Run> {
        let mut run = Run::default();
        let mut started = false;
        let records: Vec<Record> = load::parse_lines(load).context("load data")?;
        for record in records {
            match record {
                Record::Start(start) => {
                    run.start_unix_ms = start.unix_ms;
                    run.nodes = start.nodes.clone();
                    run.settings = start;
                    started = true;
                }
                Record::Second(s) => run.seconds.push(s),
                Record::Bucket(b) => run.buckets.push(b),
                Record::Violation(v) => run.violations.push(v),
                Record::Summary(s) => run.summary = Some(s),
                Record::Op(_) | Record::Other => {}
            }
        }
        if !started {
            bail!("the load data has no start line");
        }
        if run.nodes.is_empty() {
            let width = run.seconds.first().map_or(0, |s| s.nodes.len());
            run.nodes = (1..=width).map(|i| format!("n{i}")).collect();
        }
        run.events = Event::parse_lines(events).context("events")?;
        Ok(run)
    }

    /// Reads `load.jsonl` and `events.jsonl` (optional) from a results folder.
    pub fn load(dir: &Path) -> Result<Run> {
        let load_path = dir.join("load.jsonl");
        let load = std::fs::read_to_string(&load_path)
            .with_context(|| format!("reading {}", load_path.display()))?;
        let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
        let mut run = Run::parse(&load, &events)?;
        run.history = crate::history::load_check(dir);
        run.control = crate::history::load_control(dir);
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_committed_run() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kill-and-isolate");
        let run = Run::load(&dir).unwrap();
        assert_eq!(run.nodes.len(), 3);
        assert_eq!(run.seconds.len(), 55);
        assert_eq!(run.buckets.len(), 550);
        assert_eq!(run.events.len(), 7);
        assert_eq!(run.violation_count(), 0);
        assert_eq!(run.summary.as_ref().map(|s| s.iterations), Some(40222));
    }

    #[test]
    fn bad_lines_are_named() {
        let err = Run::parse("{\"type\":\"start\"}\n", "").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
        let err = Run::parse("{\"type\":\"second\",\"second\":1}\n", "").unwrap_err();
        assert!(format!("{err:#}").contains("load data"), "{err:#}");
        assert!(Run::parse("", "").is_err());
    }
}
