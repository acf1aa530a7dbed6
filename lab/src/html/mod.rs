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

mod charts;
mod sections;

use charts::{latency, ms, throughput};
use sections::{events, settings, six_measures, timelines, violations};

use std::fmt::Write;

use crate::analysis::{self, FaultKind};
use crate::data::Run;
use crate::impact::{self, FaultReport};
use crate::report;
use crate::spans;

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
    use super::charts::ticks;
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
