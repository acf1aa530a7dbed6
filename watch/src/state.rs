//! What the screen shows, built only from the run's records: the load generator's seconds
//! and summary, and chaos's events. Nothing here reads a clock or a file, so a recorded run
//! replays into exactly the state the live run had (the rendering tests rely on it).

use std::collections::BTreeMap;

use perseus_model::load::{ErrorKind, Latency, Record, Second, Start, Summary};
use perseus_model::{ChaosEvent, FaultKind, HostArg, HostName};

/// A chaos action drawn on the time axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Seconds since the load began, when the action began.
    pub at_s: f64,
    pub label: String,
    pub ok: bool,
}

/// Everything the UI draws.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub start: Option<Start>,
    pub seconds: Vec<Second>,
    pub markers: Vec<Marker>,
    /// Faults in force, per host, with the wall-clock ms at which each began.
    pub active: BTreeMap<(HostName, String), (FaultKind, i64)>,
    pub violations: u64,
    pub summary: Option<Summary>,
    pub bad_lines: usize,
    /// Events seen before the load's start record (placed once it arrives).
    pending: Vec<ChaosEvent>,
}

impl State {
    pub fn apply_record(&mut self, record: Record) {
        match record {
            Record::Start(start) => {
                self.start = Some(start);
                for event in std::mem::take(&mut self.pending) {
                    self.apply_event(event);
                }
            }
            Record::Second(second) => {
                self.violations += second.violations;
                self.seconds.push(second);
            }
            Record::Summary(summary) => {
                self.violations = self.violations.max(summary.violations);
                self.summary = Some(summary);
            }
            _ => {}
        }
    }

    pub fn apply_event(&mut self, event: ChaosEvent) {
        let Some(start) = &self.start else {
            self.pending.push(event);
            return;
        };
        let at_s = (event.begin_unix_ms - start.unix_ms) as f64 / 1000.0;
        self.markers.push(Marker {
            at_s,
            label: format!("{} {}", event.command, event.host),
            ok: event.ok,
        });
        let (true, HostArg::Host(host)) = (event.ok, event.host) else {
            return;
        };
        let kind = event.command;
        if kind.undo().is_some() {
            self.active
                .insert((host, kind.name().to_string()), (kind, event.begin_unix_ms));
        } else {
            self.active
                .retain(|(h, _), (fault, _)| !(*h == host && kind.undoes(fault)));
            // A restart ends a kill of the same host.
            if kind == FaultKind::Restart {
                self.active
                    .retain(|(h, _), (fault, _)| !(*h == host && *fault == FaultKind::Kill));
            }
        }
    }

    /// Node count (columns), from the start record or the latest second.
    pub fn nodes(&self) -> usize {
        self.start
            .as_ref()
            .map(|s| s.nodes.len())
            .or_else(|| self.seconds.last().map(|s| s.nodes.len()))
            .unwrap_or(0)
    }

    pub fn last_second(&self) -> Option<&Second> {
        self.seconds.last()
    }

    /// (second, iterations) points of node `n` (0-based), or of the cluster when `None`,
    /// for the last `window` seconds; a point sits in the middle of its second.
    pub fn series(&self, node: Option<usize>, window: u64) -> Vec<(f64, f64)> {
        let last = self.seconds.last().map_or(0, |s| s.second);
        self.seconds
            .iter()
            .filter(|s| s.second + window > last)
            .map(|s| {
                let v = match node {
                    Some(n) => s.nodes.get(n).copied().unwrap_or(0),
                    None => s.cluster,
                };
                (s.second as f64 - 0.5, v as f64)
            })
            .collect()
    }

    /// Errors of the latest second for node `n`, as `kind=count` for the kinds that occurred.
    pub fn errors_text(&self, node: usize) -> String {
        let Some(second) = self.seconds.last() else {
            return String::new();
        };
        let Some(counts) = second.errors_by_node.get(node) else {
            return String::new();
        };
        ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                counts
                    .get(k)
                    .filter(|c| **c > 0)
                    .map(|c| format!("{k}={c}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn latency(&self) -> Latency {
        self.seconds
            .last()
            .map(|s| s.latency_us.clone())
            .unwrap_or_default()
    }

    /// Faults in force with their age in seconds at `now_ms`.
    pub fn active_faults(&self, now_ms: i64) -> Vec<(HostName, FaultKind, i64)> {
        self.active
            .iter()
            .map(|((host, _), (kind, since))| (*host, kind.clone(), (now_ms - since).max(0) / 1000))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_undoes_the_kill_and_a_heal_the_isolation() {
        let mut state = State::default();
        let t0 = 1_000_000;
        state.apply_record(Record::Start(Start {
            unix_ms: t0,
            nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            ..Default::default()
        }));
        let a1: HostName = "a1".parse().unwrap();
        let a2: HostName = "a2".parse().unwrap();
        let ev = |kind: FaultKind, host: HostName, ms: i64| ChaosEvent {
            time: chrono::Utc::now(),
            unix_ms: ms,
            begin_unix_ms: ms,
            command: kind,
            host: HostArg::Host(host),
            ok: true,
            detail: String::new(),
            layer: None,
            scope: None,
            failure: None,
        };
        state.apply_event(ev(FaultKind::Kill, a1, t0 + 10_000));
        state.apply_event(ev(FaultKind::Isolate, a2, t0 + 12_000));
        assert_eq!(state.active_faults(t0 + 15_000).len(), 2);
        state.apply_event(ev(FaultKind::Start, a1, t0 + 20_000));
        let left = state.active_faults(t0 + 22_000);
        assert_eq!(left, vec![(a2, FaultKind::Isolate, 10)]);
        state.apply_event(ev(FaultKind::Heal, a2, t0 + 30_000));
        assert!(state.active_faults(t0 + 31_000).is_empty());
        assert_eq!(state.markers.len(), 4);
        assert_eq!(state.markers[0].at_s, 10.0);
    }
}
