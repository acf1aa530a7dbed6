//! The fault spans a chart shades and labels, and where their labels go so that none overlaps
//! another. One fault applied to several hosts at once (a partition records one event per
//! host) is one span with one label naming every host; labels that would still run into each
//! other take the next row down. Pure: the PNG plots and the HTML report both draw from it.

use crate::analysis::{self, Fault, FaultKind};
use crate::data::Run;

/// One shaded span of a chart: one fault, or one fault of several hosts at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub kind: FaultKind,
    /// The hosts it hit, in the order their events came.
    pub hosts: Vec<String>,
    /// The layer of a one-layer fault (`acceptor`, `node`), as in [`Fault::label`].
    pub layer: Option<perseus_model::Layer>,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Span {
    /// `kill a1`, `partition:majorities-ring a1 a2 a3`, `kill a1 (acceptor only)`.
    pub fn label(&self) -> String {
        let base = format!("{} {}", self.kind, self.hosts.join(" "));
        match &self.layer {
            Some(layer) => format!("{base} ({layer} only)"),
            None => base,
        }
    }
}

/// Faults of the same kind (and layer) applied within this long of each other, while the
/// first still holds, are one span: the commands of one partition run one after the other.
const SAME_FAULT_MS: i64 = 2000;

/// The run's faults as spans (sorted by start), with faults of one kind applied together
/// merged.
pub fn of_run(run: &Run) -> Vec<Span> {
    merge(&analysis::faults(run), analysis::run_end_ms(run))
}

/// Merges the faults of one kind and layer that began together into one span each.
pub fn merge(faults: &[Fault], run_end_ms: i64) -> Vec<Span> {
    let mut sorted: Vec<&Fault> = faults.iter().collect();
    sorted.sort_by_key(|f| f.start_ms);
    let mut spans: Vec<Span> = Vec::new();
    for fault in sorted {
        let to_ms = fault.end_ms(run_end_ms).max(fault.start_ms);
        let host = fault.host.to_string();
        let joins = spans.iter_mut().rev().find(|s| {
            s.kind == fault.kind
                && s.layer == fault.layer
                && fault.start_ms - s.from_ms <= SAME_FAULT_MS
                && fault.start_ms <= s.to_ms
        });
        match joins {
            Some(span) => {
                if !span.hosts.contains(&host) {
                    span.hosts.push(host);
                }
                span.to_ms = span.to_ms.max(to_ms);
            }
            None => spans.push(Span {
                kind: fault.kind.clone(),
                hosts: vec![host],
                layer: fault.layer,
                from_ms: fault.start_ms,
                to_ms,
            }),
        }
    }
    spans
}

/// A label to place: its left edge and its width, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Label {
    pub x: f64,
    pub width: f64,
}

/// The space kept between two labels on one row, px.
const GAP_PX: f64 = 6.0;

/// The row (0 = top) of each label so that no two labels on a row overlap: each takes the
/// first row whose last label ends (with a gap) before it begins. Labels keep their x.
pub fn rows(labels: &[Label]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| labels[a].x.total_cmp(&labels[b].x));
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = vec![0; labels.len()];
    for i in order {
        let label = labels[i];
        let row = match row_ends.iter().position(|&end| end + GAP_PX <= label.x) {
            Some(row) => row,
            None => {
                row_ends.push(f64::NEG_INFINITY);
                row_ends.len() - 1
            }
        };
        row_ends[row] = label.x + label.width;
        rows[i] = row;
    }
    rows
}

/// The rough width of a text in a sans-serif font of `size` px (about 0.6 em per character):
/// enough to keep labels apart.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{event, synthetic};

    #[test]
    fn a_partition_of_three_hosts_is_one_span_with_one_label() {
        let mut run = synthetic(20, 3, |_, _| false);
        run.events = vec![
            event(&run, "kill", "a1", 1000, 1100),
            event(&run, "start", "a1", 4000, 4200),
            event(&run, "partition:majorities-ring", "a1", 8000, 8100),
            event(&run, "partition:majorities-ring", "a2", 8100, 8300),
            event(&run, "partition:majorities-ring", "a3", 8300, 8600),
            event(&run, "heal", "a1", 14000, 14100),
            event(&run, "heal", "a2", 14000, 14100),
            event(&run, "heal", "a3", 14000, 14100),
        ];
        let spans = of_run(&run);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(spans[0].label(), "kill a1");
        assert_eq!(spans[1].label(), "partition:majorities-ring a1 a2 a3");
        assert_eq!((spans[1].from_ms, spans[1].to_ms), (8100, 14000));
    }

    #[test]
    fn the_same_fault_later_is_another_span() {
        let mut run = synthetic(30, 3, |_, _| false);
        run.events = vec![
            event(&run, "kill", "a1", 1000, 1100),
            event(&run, "start", "a1", 4000, 4200),
            event(&run, "kill", "a1", 10000, 10100),
            event(&run, "start", "a1", 14000, 14200),
        ];
        assert_eq!(of_run(&run).len(), 2);
    }

    #[test]
    fn labels_that_would_overlap_go_down_a_row() {
        let labels = [
            Label {
                x: 0.0,
                width: 100.0,
            },
            Label {
                x: 50.0,
                width: 100.0,
            },
            Label {
                x: 120.0,
                width: 10.0,
            },
            Label {
                x: 60.0,
                width: 10.0,
            },
            Label {
                x: 300.0,
                width: 10.0,
            },
        ];
        let rows = rows(&labels);
        assert_eq!(rows, vec![0, 1, 0, 2, 0]);
        // No two labels on one row overlap.
        for (i, a) in labels.iter().enumerate() {
            for (j, b) in labels.iter().enumerate() {
                if i != j && rows[i] == rows[j] {
                    assert!(a.x + a.width <= b.x || b.x + b.width <= a.x);
                }
            }
        }
    }
}
