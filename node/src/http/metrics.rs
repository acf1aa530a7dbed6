//! `GET /metrics`: the node's counters in Prometheus's text exposition format (version
//! 0.0.4), for Prometheus, Grafana or `curl`. Counters and histograms come from
//! [`crate::metrics`]; gauges (membership, catch-up, in-flight requests, the cache) are read
//! from their owners now. Every family is listed in docs/api.md.

use std::fmt::Write as _;

use perseus_model::health::{AcceptorState, Verdict};
use warp::reply::{self, Response};
use warp::Reply;

use super::App;
use crate::metrics::{Call, CallResult, HistogramSnapshot, Op, Outcome};

/// Prometheus's text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The states a membership gauge lists (one series each, 1 for the current one).
const STATES: [AcceptorState; 9] = [
    AcceptorState::Member,
    AcceptorState::Recovering,
    AcceptorState::Suspect,
    AcceptorState::Initialising,
    AcceptorState::Unmarked,
    AcceptorState::Foreign,
    AcceptorState::OtherSet,
    AcceptorState::Unreachable,
    AcceptorState::RefusedNotDurable,
];
const VERDICTS: [Verdict; 4] = [
    Verdict::Serving,
    Verdict::Waiting,
    Verdict::DataLoss,
    Verdict::Misconfigured,
];

pub(super) fn answer(app: &App) -> Response {
    reply::with_header(render(app), "content-type", CONTENT_TYPE).into_response()
}

/// Writes one family after another; each family's samples follow its HELP and TYPE lines.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (le, n) in &h.buckets {
            let le = le.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", le.as_str()));
            self.sample(&bucket, &with_le, n);
        }
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        self.sample(&bucket, &inf, h.count);
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count);
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub(super) fn render(app: &App) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    let m = &app.metrics;
    let id = app.proposer.id().to_string();
    let incarnation = format!("{:x}", app.proposer.incarnation());

    out.family(
        "perseus_node_info",
        "gauge",
        "This node: its id, incarnation (new at every start) and version; always 1.",
    );
    out.sample(
        "perseus_node_info",
        &[
            ("id", id.as_str()),
            ("incarnation", incarnation.as_str()),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );

    out.family(
        "perseus_requests_total",
        "counter",
        "Keys requests by operation and outcome: applied (2xx), refused by the key's state \
         (404, 412), not_applied (503) and unknown (500), as X-Perseus-Outcome says, rejected \
         (any other error).",
    );
    for op in Op::ALL {
        for outcome in Outcome::ALL {
            let n = m.ops[op as usize].outcomes[outcome as usize].get();
            out.sample(
                "perseus_requests_total",
                &[("op", op.as_str()), ("outcome", outcome.as_str())],
                n,
            );
        }
    }
    out.family(
        "perseus_request_seconds",
        "histogram",
        "Keys requests' time in the node, from routing to the answer.",
    );
    for op in Op::ALL {
        let h = m.ops[op as usize].latency.snapshot();
        out.histogram("perseus_request_seconds", &[("op", op.as_str())], &h);
    }

    out.family(
        "perseus_requests_in_flight",
        "gauge",
        "Keys requests holding a turn now (at most perseus_requests_in_flight_max).",
    );
    let free = app.in_flight.available_permits();
    out.sample(
        "perseus_requests_in_flight",
        &[],
        app.max_in_flight.saturating_sub(free),
    );
    out.family(
        "perseus_requests_in_flight_max",
        "gauge",
        "The max_in_flight setting.",
    );
    out.sample("perseus_requests_in_flight_max", &[], app.max_in_flight);
    out.family(
        "perseus_index",
        "gauge",
        "X-Etcd-Index: the highest modifiedIndex this node has read or written.",
    );
    out.sample("perseus_index", &[], app.index());

    proposer(&mut out, app);
    acceptors(&mut out, app);
    membership(&mut out, app);
    out.0
}

fn proposer(out: &mut Exposition, app: &App) {
    let c = app.proposer.counters();
    out.family(
        "perseus_proposer_rounds_total",
        "counter",
        "CASPaxos phases sent: ok (a quorum agreed) or failed (no quorum: refusals, errors, \
         timeouts).",
    );
    for (phase, sent, failed) in [
        ("prepare", &c.prepares, &c.prepares_failed),
        ("accept", &c.accepts, &c.accepts_failed),
    ] {
        let (sent, failed) = (sent.get(), failed.get());
        let ok = sent.saturating_sub(failed).to_string();
        let failed = failed.to_string();
        for (result, n) in [("ok", ok), ("failed", failed)] {
            out.sample(
                "perseus_proposer_rounds_total",
                &[("phase", phase), ("result", result)],
                n,
            );
        }
    }
    for (name, help, counter) in [
        (
            "perseus_proposer_one_round_trip_total",
            "Changes that skipped prepare with the cached ballot.",
            &c.one_round_trip,
        ),
        (
            "perseus_proposer_conflicts_total",
            "Failed phases that lost a ballot race (an acceptor had promised a higher ballot).",
            &c.conflicts,
        ),
        (
            "perseus_proposer_retries_total",
            "Changes run again within their deadline (after a lost race, or a write resolved \
             as not applied).",
            &c.retries,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[], counter.get());
    }
    out.family(
        "perseus_proposer_resolutions_total",
        "counter",
        "Accepts of unknown outcome settled by a follow-up read: applied, not_applied, or \
         unknown at the deadline.",
    );
    for (verdict, counter) in [
        ("applied", &c.resolved_applied),
        ("not_applied", &c.resolved_not_applied),
        ("unknown", &c.resolved_unknown),
    ] {
        out.sample(
            "perseus_proposer_resolutions_total",
            &[("verdict", verdict)],
            counter.get(),
        );
    }
    let (agreed, fell_back) = app.proposer.quorum_read_counts();
    out.family(
        "perseus_quorum_reads_total",
        "counter",
        "Quorum reads: answered by a quorum of agreeing acceptors, or fallen back to a full \
         round.",
    );
    out.sample(
        "perseus_quorum_reads_total",
        &[("result", "agreed")],
        agreed,
    );
    out.sample(
        "perseus_quorum_reads_total",
        &[("result", "fell_back")],
        fell_back,
    );
    let o = app.proposer.outcome_counts();
    out.family(
        "perseus_outcome_resolutions_total",
        "counter",
        "Writes whose accept had an unknown outcome, by what the follow-up read proved: \
         applied (the chosen state is the write, or was built upon it), not applied, or \
         unknown by cause (no state chosen before the deadline, the chosen state more writes \
         past it than its lineage names, states without lineage).",
    );
    for (verdict, n) in [
        ("applied", o.applied),
        ("applied_built_upon", o.applied_built_upon),
        ("not_applied", o.not_applied),
        ("unknown_no_chosen_state", o.unknown_no_chosen_state),
        ("unknown_past_lineage", o.unknown_past_lineage),
        ("unknown_no_lineage", o.unknown_no_lineage),
    ] {
        out.sample(
            "perseus_outcome_resolutions_total",
            &[("verdict", verdict)],
            n,
        );
    }
    out.family(
        "perseus_cache_bytes",
        "gauge",
        "Bytes the one-round-trip cache (ballots and states of keys last changed here) holds.",
    );
    out.sample("perseus_cache_bytes", &[], app.proposer.cache_bytes());
}

fn acceptors(out: &mut Exposition, app: &App) {
    out.family(
        "perseus_acceptor_connected",
        "gauge",
        "1 while the node's connection to the acceptor is up.",
    );
    for a in app.proposer.acceptors() {
        out.sample(
            "perseus_acceptor_connected",
            &[("acceptor", a.name())],
            u8::from(a.is_connected()),
        );
    }
    out.family(
        "perseus_acceptor_calls_total",
        "counter",
        "The proposer's calls to each acceptor by call and result: ok, conflict (refused for \
         a higher ballot), error (timeout, connection, refused identity, recovering).",
    );
    for a in &app.metrics.acceptors {
        for call in Call::ALL {
            for result in CallResult::ALL {
                let n = a.calls[call as usize].results[result as usize].get();
                out.sample(
                    "perseus_acceptor_calls_total",
                    &[
                        ("acceptor", a.name.as_str()),
                        ("call", call.as_str()),
                        ("result", result.as_str()),
                    ],
                    n,
                );
            }
        }
    }
    out.family(
        "perseus_acceptor_call_seconds",
        "histogram",
        "The time each acceptor call took, answered or not (a timeout counts its full wait).",
    );
    for a in &app.metrics.acceptors {
        for call in Call::ALL {
            let h = a.calls[call as usize].latency.snapshot();
            out.histogram(
                "perseus_acceptor_call_seconds",
                &[("acceptor", a.name.as_str()), ("call", call.as_str())],
                &h,
            );
        }
    }
}

fn membership(out: &mut Exposition, app: &App) {
    let Some(membership) = &app.membership else {
        return;
    };
    let view = membership.view();
    out.family(
        "perseus_membership_verdict",
        "gauge",
        "What the node concludes from its acceptors: 1 for the current verdict.",
    );
    for verdict in VERDICTS {
        out.sample(
            "perseus_membership_verdict",
            &[("verdict", verdict.as_str())],
            u8::from(view.verdict == verdict),
        );
    }
    out.family(
        "perseus_acceptor_state",
        "gauge",
        "Each acceptor's membership state as the node last inspected it (every second): 1 \
         for the current state; only members count toward quorums.",
    );
    for a in &view.acceptors {
        for state in STATES {
            out.sample(
                "perseus_acceptor_state",
                &[("acceptor", a.name.as_str()), ("state", state.as_str())],
                u8::from(a.state == state),
            );
        }
    }
    out.family(
        "perseus_acceptor_keys",
        "gauge",
        "Keys holding CASPaxos state on each reachable acceptor, at the last inspection.",
    );
    for a in &view.acceptors {
        if let Some(keys) = a.keys {
            out.sample(
                "perseus_acceptor_keys",
                &[("acceptor", a.name.as_str())],
                keys,
            );
        }
    }
    out.family(
        "perseus_catch_up_keys_done",
        "gauge",
        "Keys this node's catch-up pass has brought level on a recovering acceptor.",
    );
    for a in &view.acceptors {
        if let Some((done, _)) = a.catch_up {
            out.sample(
                "perseus_catch_up_keys_done",
                &[("acceptor", a.name.as_str())],
                done,
            );
        }
    }
    out.family(
        "perseus_catch_up_keys",
        "gauge",
        "Keys the running catch-up pass has to bring level on a recovering acceptor.",
    );
    for a in &view.acceptors {
        if let Some((_, total)) = a.catch_up {
            out.sample(
                "perseus_catch_up_keys",
                &[("acceptor", a.name.as_str())],
                total,
            );
        }
    }
}
