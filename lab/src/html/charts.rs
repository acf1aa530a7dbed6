//! The charts of `report.html`, drawn as inline SVG: iterations per second (the cluster, then
//! each node) and latency per second with the fault spans shaded and labelled once each, and
//! the lanes of a timeline (one row per node, each bucket's successes and failures, the
//! longest stretch without success marked).

use std::fmt::Write;

use super::esc;
use perseus_model::load::Latency;

use crate::analysis;
use crate::data::Run;
use crate::palette::{self, Shade};
use crate::report;
use crate::spans::{self, Span};

/// The pixel box of a chart and its data ranges (x in seconds, y from 0).
pub(super) struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y1: f64,
}

impl Frame {
    fn new(width: f64, height: f64, x0: f64, x1: f64, y1: f64) -> Frame {
        Frame {
            width,
            height,
            left: 56.0,
            right: 12.0,
            top: 8.0,
            bottom: 22.0,
            x0,
            x1: if x1 > x0 { x1 } else { x0 + 1.0 },
            y1: if y1 > 0.0 { y1 } else { 1.0 },
        }
    }

    fn plot_width(&self) -> f64 {
        self.width - self.left - self.right
    }

    fn plot_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }

    fn x(&self, s: f64) -> f64 {
        self.left + (s.clamp(self.x0, self.x1) - self.x0) / (self.x1 - self.x0) * self.plot_width()
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.plot_height() * (1.0 - v.clamp(0.0, self.y1) / self.y1)
    }

    fn open(&self, out: &mut String, label: &str) {
        let _ = write!(
            out,
            r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#,
            esc(label),
            w = self.width,
            h = self.height
        );
    }

    /// The axes, a grid line at each tick and the tick labels.
    fn axes(&self, out: &mut String, y_unit: &str) {
        let (l, t, r, b) = (
            self.left,
            self.top,
            self.left + self.plot_width(),
            self.top + self.plot_height(),
        );
        let _ = write!(
            out,
            r#"<rect class="frame" x="{l}" y="{t}" width="{w}" height="{h}"/>"#,
            w = r - l,
            h = b - t
        );
        for tick in ticks(self.x0, self.x1, 12) {
            let x = self.x(tick);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{b}"/><text class="tick" x="{x:.1}" y="{ty}" text-anchor="middle">{}</text>"#,
                fmt_tick(tick),
                ty = b + 14.0
            );
        }
        for tick in ticks(0.0, self.y1, 4) {
            let y = self.y(tick);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{l}" y1="{y:.1}" x2="{r}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{}</text>"#,
                fmt_tick(tick),
                tx = l - 4.0,
                ty = y + 4.0
            );
        }
        let _ = write!(
            out,
            r#"<text class="unit" x="4" y="{}">{}</text>"#,
            t + 10.0,
            esc(y_unit)
        );
    }

    /// The fault spans shaded, with their labels placed so that none overlaps another when
    /// `labelled`.
    fn faults(&self, out: &mut String, spans: &[Span], labelled: bool) {
        for span in spans {
            let (x0, x1) = (
                self.x(span.from_ms as f64 / 1000.0),
                self.x(span.to_ms as f64 / 1000.0),
            );
            let _ = write!(
                out,
                r#"<rect class="fault" x="{x0:.1}" y="{}" width="{:.1}" height="{}" fill="{}"><title>{} from {:.1} s to {:.1} s</title></rect>"#,
                self.top,
                (x1 - x0).max(2.0),
                self.plot_height(),
                palette::fault(&span.kind).css(),
                esc(&span.label()),
                span.from_ms as f64 / 1000.0,
                span.to_ms as f64 / 1000.0
            );
        }
        if labelled {
            self.labels(
                out,
                &spans
                    .iter()
                    .map(|s| (s.from_ms as f64 / 1000.0, s.label()))
                    .collect::<Vec<_>>(),
            );
        }
    }

    /// Labels at their x (s), each on the first row where it overlaps no other.
    fn labels(&self, out: &mut String, labels: &[(f64, String)]) {
        let boxes: Vec<spans::Label> = labels
            .iter()
            .map(|(s, text)| spans::Label {
                x: self.x(*s) + 3.0,
                width: spans::text_width(text, LABEL_PX),
            })
            .collect();
        for ((label, placed), row) in labels.iter().zip(&boxes).zip(spans::rows(&boxes)) {
            let _ = write!(
                out,
                r#"<text class="label" x="{:.1}" y="{:.1}">{}</text>"#,
                placed.x,
                self.top + LABEL_PX + row as f64 * (LABEL_PX + 3.0),
                esc(&label.1)
            );
        }
    }

    /// A line through the points (s, value), broken where a value is missing.
    fn line(&self, out: &mut String, name: &str, color: &str, points: &[(f64, Option<f64>)]) {
        let mut d = String::new();
        let mut pen_down = false;
        for (s, v) in points {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if pen_down { " L" } else { " M" },
                        self.x(*s),
                        self.y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            out,
            r#"<path class="series" d="{}" stroke="{color}"><title>{}</title></path>"#,
            d.trim(),
            esc(name)
        );
    }
}

/// The size of the labels in the charts, px.
pub(super) const LABEL_PX: f64 = 12.0;

/// Round tick positions from `from` to `to`, about `count` of them.
pub(super) fn ticks(from: f64, to: f64, count: usize) -> Vec<f64> {
    let span = to - from;
    if span <= 0.0 || count == 0 {
        return vec![from];
    }
    let raw = span / count as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut out = Vec::new();
    let mut t = (from / step).ceil() * step;
    while t <= to + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

pub(super) fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn ms(v: Option<f64>) -> String {
    report::opt_ms(v)
}

/// Width of the charts, px.
pub(super) const WIDTH: f64 = 1080.0;

/// Iterations per second: the cluster, then one chart per node on the same time axis.
pub(super) fn throughput(out: &mut String, run: &Run, spans: &[Span]) {
    let x1 = run.seconds.last().map_or(1.0, |s| s.second as f64);
    let at = |s: &crate::data::Second| s.second as f64 - 0.5;
    let cluster_max = run.seconds.iter().map(|s| s.cluster).max().unwrap_or(0) as f64;
    let label_rows = 1.0 + spans.len().min(4) as f64;
    let frame = Frame::new(
        WIDTH,
        150.0 + label_rows * LABEL_PX,
        0.0,
        x1,
        cluster_max * (1.12 + 0.1 * label_rows),
    );
    let _ = writeln!(out, "<h3>cluster</h3>");
    frame.open(out, "cluster iterations per second");
    frame.axes(out, "it/s");
    frame.faults(out, spans, true);
    let points: Vec<(f64, Option<f64>)> = run
        .seconds
        .iter()
        .map(|s| (at(s), Some(s.cluster as f64)))
        .collect();
    frame.line(out, "cluster", "#000", &points);
    out.push_str("</svg>\n");
    let node_max = run
        .seconds
        .iter()
        .flat_map(|s| s.nodes.iter().copied())
        .max()
        .unwrap_or(0) as f64;
    for i in 0..run.node_count() {
        let name = node_name(run, i);
        let frame = Frame::new(WIDTH, 110.0, 0.0, x1, node_max * 1.15);
        let _ = writeln!(out, "<h3>{}</h3>", esc(&name));
        frame.open(out, &format!("{name} iterations per second"));
        frame.axes(out, "it/s");
        frame.faults(out, spans, false);
        let points: Vec<(f64, Option<f64>)> = run
            .seconds
            .iter()
            .map(|s| (at(s), Some(s.nodes.get(i).copied().unwrap_or(0) as f64)))
            .collect();
        frame.line(out, &name, &palette::node(i).css(), &points);
        out.push_str("</svg>\n");
    }
}

/// `n1 (http://10.77.0.11:2379)`.
pub(super) fn node_name(run: &Run, i: usize) -> String {
    match run.nodes.get(i) {
        Some(url) if url != &format!("n{}", i + 1) => format!("n{} ({url})", i + 1),
        _ => format!("n{}", i + 1),
    }
}

/// p50, p90, p99 and max of the iterations that ended in each second, ms.
pub(super) fn latency(out: &mut String, run: &Run, spans: &[Span]) {
    let x1 = run.seconds.last().map_or(1.0, |s| s.second as f64);
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let top = run
        .seconds
        .iter()
        .filter_map(|s| ms(s.latency_us.p99))
        .fold(1.0, f64::max);
    let frame = Frame::new(WIDTH, 220.0, 0.0, x1, top * 1.15);
    frame.open(out, "iteration latency per second");
    frame.axes(out, "ms");
    frame.faults(out, spans, false);
    type Pick = fn(&Latency) -> Option<u64>;
    let pickers: [(&str, Shade, Pick); 4] = [
        ("p50", palette::P50, |l| l.p50),
        ("p90", palette::P90, |l| l.p90),
        ("p99", palette::P99, |l| l.p99),
        ("max (clipped at the top)", palette::MAX, |l| l.max),
    ];
    for (name, color, pick) in pickers {
        let points: Vec<(f64, Option<f64>)> = run
            .seconds
            .iter()
            .map(|s| (s.second as f64 - 0.5, ms(pick(&s.latency_us))))
            .collect();
        if points.iter().any(|(_, v)| v.is_some()) {
            frame.line(out, name, &color.css(), &points);
        }
    }
    out.push_str("</svg>\n<p class=\"legend\">");
    for (name, color, _) in pickers {
        let name = name.split(' ').next().unwrap_or(name);
        let _ = write!(
            out,
            r#"<span style="color:{}">━ {name}</span> "#,
            color.css()
        );
    }
    out.push_str("of the iterations that ended in each second</p>\n");
}

/// One lane per node over `[from_ms, to_ms]`: each bucket's successes as a green bar from its
/// first to its last success, its failed requests as a red bar under it, the violations as
/// black marks, and the longest stretch without success of each node labelled.
pub(super) fn lanes(
    out: &mut String,
    run: &Run,
    from_ms: i64,
    to_ms: i64,
    spans: &[Span],
    caption: &str,
) {
    let lane_h = 26.0;
    let rows = run.node_count() as f64;
    let mut frame = Frame::new(
        WIDTH,
        30.0 + rows * lane_h + 22.0,
        from_ms as f64 / 1000.0,
        to_ms as f64 / 1000.0,
        rows,
    );
    frame.top = 30.0;
    frame.open(out, caption);
    frame.axes_time_only(out);
    frame.faults(out, spans, false);
    let events: Vec<(f64, String)> = run
        .events
        .iter()
        .filter(|e| e.ok)
        .map(|e| (run.offset_ms(e.begin_unix_ms), e))
        .filter(|(t, _)| (from_ms..=to_ms).contains(t))
        .map(|(t, e)| (t as f64 / 1000.0, format!("{} {}", e.command, e.host)))
        .collect();
    for (s, _) in &events {
        let x = frame.x(*s);
        let _ = write!(
            out,
            r#"<line class="event" x1="{x:.1}" y1="14" x2="{x:.1}" y2="{}"/>"#,
            frame.top + frame.plot_height()
        );
    }
    // Event labels above the lanes, on rows of their own.
    let mut top = Frame::new(
        WIDTH,
        30.0,
        from_ms as f64 / 1000.0,
        to_ms as f64 / 1000.0,
        1.0,
    );
    top.top = 0.0;
    top.labels(out, &events);
    let (from_us, to_us) = (from_ms.max(0) as u64 * 1000, to_ms.max(0) as u64 * 1000);
    let s = |us: u64| us as f64 / 1e6;
    for i in 0..run.node_count() {
        let y = frame.top + i as f64 * lane_h;
        let _ = write!(
            out,
            r#"<text class="tick" x="{}" y="{:.1}" text-anchor="end">n{}</text>"#,
            frame.left - 4.0,
            y + lane_h / 2.0 + 4.0,
            i + 1
        );
        for b in &run.buckets {
            let (b_from, b_to) = (b.t_ms * 1000, (b.t_ms + b.ms) * 1000);
            if b_to < from_us || b_from > to_us {
                continue;
            }
            if let (Some(Some(first)), Some(Some(last))) = (b.first_us.get(i), b.last_us.get(i)) {
                let (x0, x1) = (frame.x(s(*first)), frame.x(s(*last)));
                let _ = write!(
                    out,
                    r#"<rect class="ok" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>n{}: {} successes in {:.1}–{:.1} s</title></rect>"#,
                    y + 3.0,
                    (x1 - x0).max(1.0),
                    lane_h * 0.5,
                    i + 1,
                    b.ok.get(i).copied().unwrap_or(0),
                    s(b_from),
                    s(b_to)
                );
            }
            let errors = b.err.get(i).copied().unwrap_or(0);
            if errors > 0 {
                let (x0, x1) = (frame.x(s(b_from)), frame.x(s(b_to)));
                let _ = write!(
                    out,
                    r#"<rect class="err" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>n{}: {errors} failed requests in {:.1}–{:.1} s</title></rect>"#,
                    y + 3.0 + lane_h * 0.5,
                    (x1 - x0).max(1.0),
                    lane_h * 0.3,
                    i + 1,
                    s(b_from),
                    s(b_to)
                );
            }
        }
        // The node's longest stretch without success inside the window.
        if let Some(gap) = analysis::stretches(run, &[i])
            .into_iter()
            .filter(|g| g.len_us == g.to_us - g.from_us && g.to_us > from_us && g.from_us < to_us)
            .max_by_key(|g| g.len_us)
            .filter(|g| g.len_us >= 50_000)
        {
            let (x0, x1) = (frame.x(s(gap.from_us)), frame.x(s(gap.to_us)));
            let _ = write!(
                out,
                r#"<line class="gap" x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}"/><text class="gaplabel" x="{:.1}" y="{:.1}" text-anchor="middle">{:.0} ms</text>"#,
                (x0 + x1) / 2.0,
                y + lane_h * 0.5 + 1.0,
                gap.len_us as f64 / 1000.0,
                y = y + lane_h * 0.3
            );
        }
        for v in run
            .violations
            .iter()
            .filter(|v| v.node == i + 1 && (from_us..=to_us).contains(&v.t_us))
        {
            let x = frame.x(s(v.t_us));
            let _ = write!(
                out,
                r#"<path class="violation" d="M{x:.1},{:.1} l5,7 l-5,7 l-5,-7 z"><title>{}</title></path>"#,
                y + 2.0,
                esc(&v.violation.to_string())
            );
        }
    }
    out.push_str("</svg>\n");
}

impl Frame {
    /// The time axis alone (for the lanes, whose rows are nodes).
    fn axes_time_only(&self, out: &mut String) {
        let (t, b) = (self.top, self.top + self.plot_height());
        let _ = write!(
            out,
            r#"<rect class="frame" x="{}" y="{t}" width="{}" height="{}"/>"#,
            self.left,
            self.plot_width(),
            b - t
        );
        for tick in ticks(self.x0, self.x1, 14) {
            let x = self.x(tick);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{b}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                b + 14.0,
                fmt_tick(tick)
            );
        }
    }
}
