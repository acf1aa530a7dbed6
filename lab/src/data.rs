//! Reading a run's recorded data: the loadgen's JSON lines and chaos's events file.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One `bucket` line: per node, successes and the offsets (µs from the run start) of the
/// first and last success in the bucket, and the longest gap between successes inside it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Bucket {
    pub t_ms: u64,
    pub ms: u64,
    pub ok: Vec<u64>,
    pub err: Vec<u64>,
    pub first_us: Vec<Option<u64>>,
    pub last_us: Vec<Option<u64>>,
    pub max_gap_us: Vec<u64>,
}

/// One `second` line.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Second {
    pub second: u64,
    pub cluster: u64,
    pub nodes: Vec<u64>,
    #[serde(default)]
    pub latency_us: Latency,
    #[serde(default)]
    pub violations: u64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// One chaos event (see chaos/src/events.rs).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Event {
    pub unix_ms: i64,
    pub begin_unix_ms: i64,
    pub command: String,
    pub host: String,
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
}

/// Everything recorded in one run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Wall-clock start of the load, Unix ms.
    pub start_unix_ms: i64,
    pub nodes: Vec<String>,
    pub seconds: Vec<Second>,
    pub buckets: Vec<Bucket>,
    pub violations: Vec<Value>,
    pub summary: Option<Value>,
    pub events: Vec<Event>,
}

impl Run {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// An event's instant as ms from the run start.
    pub fn offset_ms(&self, unix_ms: i64) -> i64 {
        unix_ms - self.start_unix_ms
    }

    /// Parses the loadgen's JSON lines and the events (either may come from files).
    pub fn parse(load: &str, events: &str) -> Result<Run> {
        let mut run = Run::default();
        let mut started = false;
        for (n, line) in load.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("load data line {}: not JSON", n + 1))?;
            match value["type"].as_str() {
                Some("start") => {
                    run.start_unix_ms = value["unix_ms"]
                        .as_i64()
                        .context("the start line has no unix_ms")?;
                    run.nodes = value["nodes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|v| v.as_str().unwrap_or_default().to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    started = true;
                }
                Some("second") => run.seconds.push(
                    serde_json::from_value(value)
                        .with_context(|| format!("load data line {}", n + 1))?,
                ),
                Some("bucket") => run.buckets.push(
                    serde_json::from_value(value)
                        .with_context(|| format!("load data line {}", n + 1))?,
                ),
                Some("violation") => run.violations.push(value),
                Some("summary") => run.summary = Some(value),
                _ => {}
            }
        }
        if !started {
            bail!("the load data has no start line");
        }
        if run.nodes.is_empty() {
            let width = run.seconds.first().map_or(0, |s| s.nodes.len());
            run.nodes = (1..=width).map(|i| format!("n{i}")).collect();
        }
        for (n, line) in events.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            run.events.push(
                serde_json::from_str(line).with_context(|| format!("events line {}", n + 1))?,
            );
        }
        Ok(run)
    }

    /// Reads `load.jsonl` and `events.jsonl` (optional) from a results folder.
    pub fn load(dir: &Path) -> Result<Run> {
        let load_path = dir.join("load.jsonl");
        let load = std::fs::read_to_string(&load_path)
            .with_context(|| format!("reading {}", load_path.display()))?;
        let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
        Run::parse(&load, &events)
    }
}
