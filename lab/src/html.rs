//! `report.html`: one run on one self-contained page (inline CSS, SVG and a few lines of
//! script; nothing fetched from the network), for a person to read at a glance: the run's
//! figures and the six measures per fault, iterations per second per node and for the cluster
//! with the faults shaded, the latency per second, a timeline of each node's requests around
//! every fault (successes, failures and the longest stretch without success, at the load
//! generator's bucket resolution), the chaos actions, the violations with the node's timeline
//! around each, and the settings of the load and the system.
//!
//! The charts are drawn here as SVG, so the page needs no script to show them; the script at
//! the end only checks that every chart has a size and says so in the page (`data-rendered`),
//! which the browser check reads (browser.rs).

use std::fmt::Write;

use perseus_model::load::Latency;

use crate::analysis::{self, FaultKind, Subject};
use crate::data::Run;
use crate::impact::{self, FaultReport};
use crate::spans::{self, Span};
use crate::{measures, report};

/// What the page shows besides the recorded data: the system's name and the sections the
/// caller has in text (a scenario's explanation, the checks' verdicts, the scenario).
pub struct Page<'a> {
    pub title: &'a str,
    pub system: &'a str,
    /// (heading, preformatted text), shown in this order after the measures.
    pub notes: Vec<(String, String)>,
}

/// Escapes text for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const NODE_COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
];

fn node_color(i: usize) -> &'static str {
    NODE_COLORS[i % NODE_COLORS.len()]
}

/// The shade of a fault span, by what the fault does to a host.
fn fault_fill(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill
        | FaultKind::Restart
        | FaultKind::Amnesia
        | FaultKind::Wipe
        | FaultKind::Rollback
        | FaultKind::Truncate(_) => "rgba(214,39,40,0.15)",
        FaultKind::Isolate
        | FaultKind::IsolateInbound
        | FaultKind::IsolateOutbound
        | FaultKind::CutClients
        | FaultKind::Partition(_) => "rgba(31,119,180,0.13)",
        FaultKind::Pause => "rgba(128,128,128,0.22)",
        FaultKind::Loss(_) | FaultKind::Limit(_) | FaultKind::Delay(..) => "rgba(255,165,0,0.18)",
        _ => "rgba(128,128,128,0.1)",
    }
}

/// The pixel box of a chart and its data ranges (x in seconds, y from 0).
struct Frame {
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
                fault_fill(&span.kind),
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
const LABEL_PX: f64 = 12.0;

/// Round tick positions from `from` to `to`, about `count` of them.
fn ticks(from: f64, to: f64, count: usize) -> Vec<f64> {
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

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ms(v: Option<f64>) -> String {
    report::opt_ms(v)
}

/// Width of the charts, px.
const WIDTH: f64 = 1080.0;

/// Iterations per second: the cluster, then one chart per node on the same time axis.
fn throughput(out: &mut String, run: &Run, spans: &[Span]) {
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
        frame.line(out, &name, node_color(i), &points);
        out.push_str("</svg>\n");
    }
}

/// `n1 (http://10.77.0.11:2379)`.
fn node_name(run: &Run, i: usize) -> String {
    match run.nodes.get(i) {
        Some(url) if url != &format!("n{}", i + 1) => format!("n{} ({url})", i + 1),
        _ => format!("n{}", i + 1),
    }
}

/// p50, p90, p99 and max of the iterations that ended in each second, ms.
fn latency(out: &mut String, run: &Run, spans: &[Span]) {
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
    let pickers: [(&str, &str, Pick); 4] = [
        ("p50", "#1f77b4", |l| l.p50),
        ("p90", "#2ca02c", |l| l.p90),
        ("p99", "#ff7f0e", |l| l.p99),
        ("max (clipped at the top)", "#d62728", |l| l.max),
    ];
    for (name, color, pick) in pickers {
        let points: Vec<(f64, Option<f64>)> = run
            .seconds
            .iter()
            .map(|s| (s.second as f64 - 0.5, ms(pick(&s.latency_us))))
            .collect();
        if points.iter().any(|(_, v)| v.is_some()) {
            frame.line(out, name, color, &points);
        }
    }
    out.push_str("</svg>\n");
    out.push_str(
        r##"<p class="legend"><span style="color:#1f77b4">━ p50</span> <span style="color:#2ca02c">━ p90</span> <span style="color:#ff7f0e">━ p99</span> <span style="color:#d62728">━ max</span> of the iterations that ended in each second</p>"##,
    );
}

/// One lane per node over `[from_ms, to_ms]`: each bucket's successes as a green bar from its
/// first to its last success, its failed requests as a red bar under it, the violations as
/// black marks, and the longest stretch without success of each node labelled.
fn lanes(out: &mut String, run: &Run, from_ms: i64, to_ms: i64, spans: &[Span], caption: &str) {
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

/// How far before a fault and after its recovery its timeline reaches, ms; and the longest a
/// timeline gets (a long fault shows its start and its end).
const TIMELINE_BEFORE_MS: i64 = 2000;
const TIMELINE_AFTER_MS: i64 = 3000;
const TIMELINE_MAX_MS: i64 = 24_000;

fn timelines(out: &mut String, run: &Run, reports: &[FaultReport], spans: &[Span]) {
    let end = analysis::run_end_ms(run);
    // One timeline per span (the hosts of one partition share it).
    for span in spans {
        let from = (span.from_ms - TIMELINE_BEFORE_MS).max(0);
        let to = (span.to_ms + TIMELINE_AFTER_MS).min(end);
        let _ = writeln!(
            out,
            "<h3>{} at {:.1} s</h3>",
            esc(&span.label()),
            span.from_ms as f64 / 1000.0
        );
        if to - from <= TIMELINE_MAX_MS {
            lanes(out, run, from, to, spans, &span.label());
        } else {
            let half = TIMELINE_MAX_MS / 2;
            lanes(
                out,
                run,
                from,
                from + half,
                spans,
                &format!("{}: its start", span.label()),
            );
            lanes(
                out,
                run,
                to - half,
                to,
                spans,
                &format!("{}: its end", span.label()),
            );
        }
        if let Some(r) = reports
            .iter()
            .find(|r| r.fault.start_ms == span.from_ms && r.fault.kind == span.kind)
        {
            impacts(out, r);
        }
    }
}

/// The unavailability and throughput of every node and the cluster during one fault.
fn impacts(out: &mut String, r: &FaultReport) {
    let pct = |v: Option<f64>, b: Option<f64>| match (v, b) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.0} %", 100.0 * v / b),
        _ => "–".into(),
    };
    out.push_str("<table class=\"impacts\"><tr><th></th><th>unavailable (ms)</th><th>before (it/s)</th><th>during</th><th>after</th></tr>\n");
    for i in &r.impacts {
        let who = match i.subject {
            Subject::Node(n) => format!("n{}", n + 1),
            Subject::Cluster => "cluster".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{who}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.unavailability_ms,
            i.baseline_per_s.map_or("–".into(), |v| format!("{v:.0}")),
            pct(i.during_per_s, i.baseline_per_s),
            pct(i.after_per_s, i.baseline_per_s)
        );
    }
    let _ = writeln!(
        out,
        "</table><p>The faulted node's first success after the recovery began: {}. Violations during the fault and the 5 s after: {}.</p>",
        r.recovery_ms.map_or("–".into(), |v| format!("{v:.0} ms")),
        r.violations
    );
}

/// The six measures, one row per fault.
fn six_measures(out: &mut String, reports: &[FaultReport]) {
    if reports.is_empty() {
        out.push_str("<p>No fault in this run.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>fault</th>");
    for name in measures::NAMES {
        let _ = write!(out, "<th>{} (ms)</th>", esc(name));
    }
    out.push_str("<th>outage gap (ms)</th></tr>\n");
    for r in reports {
        let _ = write!(
            out,
            "<tr><td>{} at {:.1} s</td>",
            esc(&r.fault.label()),
            r.fault.start_ms as f64 / 1000.0
        );
        for v in r.measures.values() {
            let _ = write!(out, "<td>{}</td>", ms(v));
        }
        let _ = writeln!(out, "<td>{:.0}</td></tr>", r.measures.outage_gap_ms);
    }
    let _ = writeln!(
        out,
        "</table><p class=\"note\">Downtime: no node succeeding; partial downtime: at most one node \
         succeeding; disturbance: from the fault until all nodes but one are steady; the same two \
         downtimes after the recovery began; recovery time: from the recovery until every node is \
         steady (no gap over the outage gap for {} ms). –: no recovery in the run, or never steady \
         before it ended.</p>",
        measures::STEADY_HOLD_MS
    );
}

/// Every violation the checker found, with the node's timeline around the first ones.
fn violations(out: &mut String, run: &Run, spans: &[Span]) {
    let count = run.violation_count();
    if count == 0 {
        out.push_str("<p class=\"good\">None: no lost acknowledged write, stale read, index going backwards or value nobody wrote.</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<p class=\"bad\">{count} consistency violations.</p><table><tr><th>at (s)</th><th>node</th><th>kind</th><th>key</th><th>allowed / acknowledged</th><th>read</th></tr>"
    );
    for v in &run.violations {
        let _ = writeln!(
            out,
            "<tr><td>{:.3}</td><td>n{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.t_us as f64 / 1e6,
            v.node,
            esc(&v.violation.kind.to_string()),
            esc(&v.violation.key),
            esc(&v.violation.expected),
            esc(&v.violation.got)
        );
    }
    out.push_str("</table>\n");
    // The requests around the first few: what every node did in the 2 s before and 1 s after.
    for v in run.violations.iter().take(MAX_VIOLATION_TIMELINES) {
        let at_ms = (v.t_us / 1000) as i64;
        let _ = writeln!(
            out,
            "<h3>Around the {} on n{} at {:.3} s</h3>",
            esc(&v.violation.kind.to_string()),
            v.node,
            at_ms as f64 / 1000.0
        );
        lanes(
            out,
            run,
            (at_ms - 2000).max(0),
            at_ms + 1000,
            spans,
            "requests around a violation",
        );
    }
}

/// The violations drawn with a timeline of their own (all are in the table).
const MAX_VIOLATION_TIMELINES: usize = 5;

/// The chaos actions in order.
fn events(out: &mut String, run: &Run) {
    if run.events.is_empty() {
        out.push_str("<p>No chaos action recorded.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>began (s)</th><th>done (s)</th><th>action</th><th>host</th><th>ok</th><th>detail</th></tr>\n");
    for e in &run.events {
        let _ = writeln!(
            out,
            "<tr><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            run.offset_ms(e.begin_unix_ms) as f64 / 1000.0,
            run.offset_ms(e.unix_ms) as f64 / 1000.0,
            esc(&e.command.to_string()),
            esc(&e.host.to_string()),
            if e.ok { "yes" } else { "<b>failed</b>" },
            esc(&e.detail)
        );
    }
    out.push_str("</table>\n");
}

/// The load's settings and totals.
fn settings(out: &mut String, system: &str, run: &Run) {
    let s = &run.settings;
    let mut rows: Vec<(&str, String)> = vec![
        ("system", system.to_string()),
        (
            "load began",
            s.time.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        ),
        ("run id", s.run_id.clone()),
        ("nodes", run.nodes.join(", ")),
        ("connections per node", s.connections.to_string()),
        (
            "keys",
            if s.key_mode.is_empty() {
                "own".into()
            } else {
                s.key_mode.clone()
            },
        ),
        ("duration asked", format!("{} s", s.duration_s)),
        ("request timeout", format!("{} ms", s.timeout_ms)),
        ("bucket", format!("{} ms", s.bucket_ms)),
    ];
    if let Some(sum) = &run.summary {
        rows.push((
            "iterations",
            format!(
                "{} ({:.0}/s over {:.1} s)",
                sum.iterations, sum.mean_per_s, sum.elapsed_s
            ),
        ));
        let errors: Vec<String> = sum.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        rows.push((
            "failed requests",
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            },
        ));
        rows.push((
            "requests answered 5xx",
            format!(
                "{} of {} ({:.1} %)",
                sum.requests.answered_5xx, sum.requests.sent, sum.requests.share_5xx_pct
            ),
        ));
        let latency = |l: &Latency| {
            let f =
                |v: Option<u64>| v.map_or("–".into(), |us| format!("{:.1}", us as f64 / 1000.0));
            format!(
                "p50 {} / p90 {} / p99 {} / max {} ms",
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.max)
            )
        };
        rows.push(("iteration latency", latency(&sum.latency_us)));
        for (op, l) in &sum.request_latency_us {
            rows.push(("request latency", format!("{op}: {}", latency(l))));
        }
        rows.push(("stopped by", sum.stopped_by.to_string()));
    } else {
        rows.push(("summary", "none: the load was cut short".into()));
    }
    out.push_str("<table class=\"settings\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>\n");
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1120px; padding: 12px 20px 40px; color: #222; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 14px 0 2px; color: #444; }
nav a { margin-right: 14px; } table { border-collapse: collapse; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child, .settings td { text-align: left; }
.note, .legend { color: #555; font-size: 12px; } .good { color: #1a7f37; } .bad { color: #b42318; font-weight: bold; }
.headline { font-size: 16px; } .headline b { font-size: 18px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
svg.chart { display: block; margin: 2px 0 6px; }
svg .frame { fill: none; stroke: #999; } svg .grid { stroke: #eee; }
svg .tick, svg .unit { font-size: 11px; fill: #555; } svg .label { font-size: 12px; fill: #222; }
svg .series { fill: none; stroke-width: 1.6; } svg .ok { fill: #2ca02c; } svg .err { fill: #d62728; opacity: .7; }
svg .event { stroke: #444; stroke-dasharray: 3 3; } svg .gap { stroke: #b42318; stroke-width: 1.5; }
svg .gaplabel { font-size: 11px; fill: #b42318; font-weight: bold; } svg .violation { fill: #000; }
#rendered { color: #888; font-size: 11px; }
"#;

/// Counts the page's script errors and `console.error` calls, for the check at the end.
const CATCH: &str = r#"
window.perseusErrors = [];
window.addEventListener('error', function (e) { window.perseusErrors.push(String(e.message)); });
(function () { var original = console.error; console.error = function () {
  window.perseusErrors.push(Array.prototype.join.call(arguments, ' ')); original.apply(console, arguments); }; })();
"#;

/// Checks that every chart got a size and says so, for a person (the last line) and for the
/// browser check (`data-rendered` on the body).
const SCRIPT: &str = r#"
(function () {
  var charts = document.querySelectorAll('svg.chart');
  var series = document.querySelectorAll('svg.chart .series');
  var empty = 0;
  charts.forEach(function (c) { var b = c.getBBox(); if (!(b.width > 0 && b.height > 0)) { empty++; } });
  var ok = charts.length > 0 && series.length > 0 && empty === 0;
  document.body.setAttribute('data-rendered', ok ? 'ok' : 'failed');
  document.body.setAttribute('data-charts', String(charts.length));
  document.body.setAttribute('data-errors', String(window.perseusErrors.length));
  document.body.setAttribute('data-error-text', window.perseusErrors.join(' | ').replace(/"/g, "'"));
  document.getElementById('rendered').textContent =
    'Drawn in this browser: ' + charts.length + ' charts, ' + series.length + ' lines' +
    (empty ? ', ' + empty + ' charts without a size' : '') + '.';
})();
"#;

/// The whole page.
pub fn page(page: &Page, run: &Run, reports: &[FaultReport]) -> String {
    let spans = spans::of_run(run);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — {}</title><style>{STYLE}</style><script>{CATCH}</script></head>\n<body>\n",
        esc(page.title),
        esc(page.system)
    );
    let seconds = run.seconds.len();
    let total: u64 = run.seconds.iter().map(|s| s.cluster).sum();
    let found = run.violation_count();
    let _ = writeln!(
        out,
        "<h1>{}</h1><p>System: <b>{}</b>. {seconds} s of load on {} nodes, {total} iterations ({:.0}/s), {}.</p>",
        esc(page.title),
        esc(page.system),
        run.node_count(),
        if seconds > 0 { total as f64 / seconds as f64 } else { 0.0 },
        if found == 0 {
            "<span class=\"good\">no consistency violation</span>".to_string()
        } else {
            format!("<span class=\"bad\">{found} consistency violations</span>")
        }
    );
    out.push_str("<nav><a href=\"#measures\">measures</a><a href=\"#throughput\">throughput</a><a href=\"#latency\">latency</a><a href=\"#timelines\">timelines</a><a href=\"#violations\">violations</a><a href=\"#actions\">chaos actions</a><a href=\"#settings\">settings</a></nav>\n");

    // The answer first: how long the cluster and the survivors stopped for the first lone
    // crash and isolation.
    let end = analysis::run_end_ms(run);
    let crash = impact::first_lone(reports, FaultKind::Kill, end);
    let isolate = impact::first_lone(reports, FaultKind::Isolate, end);
    let cell = |r: Option<&FaultReport>, f: fn(&FaultReport) -> Option<f64>| ms(r.and_then(f));
    let _ = writeln!(
        out,
        "<h2 id=\"measures\">At a glance</h2><table class=\"headline\"><tr><th></th><th>crashed host</th><th>isolated host</th></tr>\
         <tr><td>cluster unavailable (ms)</td><td><b>{}</b></td><td><b>{}</b></td></tr>\
         <tr><td>worst surviving node unavailable (ms)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>faulted node back after start/heal (ms)</td><td>{}</td><td>{}</td></tr></table>\
         <p class=\"note\">The first kill and the first isolation of one host that overlap no other fault. \
         Unavailable: the longest stretch with no successful iteration overlapping the fault, exact to the ms.</p>",
        cell(crash, report::cluster_ms),
        cell(isolate, report::cluster_ms),
        cell(crash, report::survivors_worst_ms),
        cell(isolate, report::survivors_worst_ms),
        cell(crash, |r| r.recovery_ms),
        cell(isolate, |r| r.recovery_ms),
    );
    out.push_str("<h2>The six measures</h2>\n");
    six_measures(&mut out, reports);
    for (heading, text) in &page.notes {
        let _ = writeln!(out, "<h2>{}</h2><pre>{}</pre>", esc(heading), esc(text));
    }
    out.push_str("<h2 id=\"throughput\">Iterations per second</h2>\n");
    throughput(&mut out, run, &spans);
    out.push_str("<h2 id=\"latency\">Latency</h2>\n");
    latency(&mut out, run, &spans);
    out.push_str(
        "<h2 id=\"timelines\">Timelines around the faults</h2>\n<p class=\"note\">One lane per node: \
         green, its successful iterations (each bar from the first to the last success of one \
         load-generator bucket); red, failed requests; the red line, the node's longest stretch \
         without success; dashed, the chaos actions as they began; black marks, violations.</p>\n",
    );
    timelines(&mut out, run, reports, &spans);
    out.push_str("<h2 id=\"violations\">Violations</h2>\n");
    violations(&mut out, run, &spans);
    out.push_str("<h2 id=\"actions\">Chaos actions</h2>\n");
    events(&mut out, run);
    out.push_str("<h2 id=\"settings\">Settings</h2>\n");
    settings(&mut out, page.system, run);
    let _ = write!(
        out,
        "<p id=\"rendered\">Not checked: this browser ran no script.</p>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            ticks(0.0, 55.0, 12),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0]
        );
        assert_eq!(ticks(3.0, 3.0, 4), vec![3.0]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    /// The recorded run's page: self-contained (nothing fetched), with every section and a
    /// chart for the cluster and each node.
    #[test]
    fn the_recorded_run_gives_a_whole_page() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kill-and-isolate");
        let run = Run::load(&dir).unwrap();
        let reports = impact::analyse(&run);
        let html = page(
            &Page {
                title: "kill-and-isolate",
                system: "Perseus <CASPaxos>",
                notes: vec![("Checks".into(), "ok <all>".into())],
            },
            &run,
            &reports,
        );
        for needle in [
            "id=\"measures\"",
            "id=\"throughput\"",
            "id=\"latency\"",
            "id=\"timelines\"",
            "id=\"violations\"",
            "id=\"actions\"",
            "id=\"settings\"",
            "Perseus &lt;CASPaxos&gt;",
            "ok &lt;all&gt;",
            "kill a1 at",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        // cluster + 3 nodes + latency + a timeline per fault.
        assert!(html.matches("<svg class=\"chart\"").count() >= 7);
        for forbidden in ["http://cdn", "https://", "<link", "src=\"http"] {
            assert!(
                !html.contains(forbidden),
                "the page fetches something: {forbidden}"
            );
        }
    }
}
