//! `GET /metrics` against three real redis-server processes: the exposition is well formed
//! (every sample under its family's TYPE, no series twice, histograms cumulative) and its
//! values move as PromQL would see them across a known number of writes; every reply names
//! the cluster (`X-Etcd-Cluster-Id`), the same on every node.

use std::collections::{BTreeMap, HashSet};

use perseus_node::testing::{client, cluster};
use reqwest::StatusCode;

/// One sample: its name, its labels, its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format, checking what a Prometheus server would refuse.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "family {name} typed twice"
            );
            family = name.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                        (k.to_string(), v.expect("quoted label value").to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| typed.get(*b).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(&name);
        assert_eq!(base, family, "sample {name} outside its family's block");
        assert!(seen.insert(series.to_string()), "series {series} twice");
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// `sum(name{labels…})`: the samples whose labels include all of `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(http: &reqwest::Client, url: &str) -> Vec<Sample> {
    let response = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("node answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.expect("a body"))
}

#[tokio::test]
async fn metrics_count_requests_outcomes_and_acceptor_calls() {
    let (_redis, nodes) = cluster().await;
    let http = client();
    let node = &nodes[0];
    let before = scrape(&http, &node.url).await;

    const WRITES: usize = 20;
    let url = node.key_url("metered");
    for i in 0..WRITES {
        let response = http
            .put(&url)
            .form(&[("value", i.to_string())])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    // One refusal (the key exists) and one read.
    let refused = http
        .put(format!("{url}?prevExist=false"))
        .form(&[("value", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
    let read = http.get(&url).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    let after = scrape(&http, &node.url).await;
    let increase = |name: &str, labels: &[(&str, &str)]| {
        sum(&after, name, labels) - sum(&before, name, labels)
    };
    // increase(perseus_requests_total{op="put",outcome="applied"}) == WRITES, and so on.
    let applied = [("op", "put"), ("outcome", "applied")];
    assert_eq!(increase("perseus_requests_total", &applied), WRITES as f64);
    let put_refused = [("op", "put"), ("outcome", "refused")];
    assert_eq!(increase("perseus_requests_total", &put_refused), 1.0);
    let get_applied = [("op", "get"), ("outcome", "applied")];
    assert_eq!(increase("perseus_requests_total", &get_applied), 1.0);
    assert_eq!(
        increase("perseus_requests_total", &[("outcome", "unknown")]),
        0.0
    );
    // The latency histogram counted every put: _count, the +Inf bucket, a positive _sum.
    let put = [("op", "put")];
    assert_eq!(
        increase("perseus_request_seconds_count", &put),
        WRITES as f64 + 1.0
    );
    let inf = [("op", "put"), ("le", "+Inf")];
    assert_eq!(
        sum(&after, "perseus_request_seconds_bucket", &inf),
        sum(&after, "perseus_request_seconds_count", &put)
    );
    assert!(increase("perseus_request_seconds_sum", &put) > 0.0);

    // Each applied write is one accept round answered by at least a quorum (2 of 3).
    let accepts_ok = increase(
        "perseus_acceptor_calls_total",
        &[("call", "accept"), ("result", "ok")],
    );
    assert!(accepts_ok >= 2.0 * WRITES as f64, "{accepts_ok} accepts");
    assert_eq!(
        increase("perseus_acceptor_calls_total", &[("result", "error")]),
        0.0
    );
    // Calls and their latency histogram agree, per acceptor and call.
    for acceptor in &node.app.metrics.acceptors {
        let labels = [("acceptor", acceptor.name.as_str()), ("call", "accept")];
        assert_eq!(
            sum(&after, "perseus_acceptor_calls_total", &labels),
            sum(&after, "perseus_acceptor_call_seconds_count", &labels)
        );
        // Buckets are cumulative.
        let mut last = 0.0;
        for s in after.iter().filter(|s| {
            s.name == "perseus_acceptor_call_seconds_bucket"
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        }) {
            assert!(s.value >= last, "buckets not cumulative: {s:?}");
            last = s.value;
        }
        // The membership task sees every acceptor as a member.
        let member = [("acceptor", acceptor.name.as_str()), ("state", "member")];
        assert_eq!(sum(&after, "perseus_acceptor_state", &member), 1.0);
        assert_eq!(
            sum(
                &after,
                "perseus_acceptor_state",
                &[("acceptor", acceptor.name.as_str())]
            ),
            1.0
        );
    }
    // The proposer: every applied write ended in an accept that reached a quorum; after the
    // first, each write of the key took the cached ballot (one round trip); nothing raced.
    let accepted = [("phase", "accept"), ("result", "ok")];
    assert!(increase("perseus_proposer_rounds_total", &accepted) >= WRITES as f64);
    assert!(increase("perseus_proposer_one_round_trip_total", &[]) >= WRITES as f64 - 1.0);
    assert_eq!(increase("perseus_proposer_conflicts_total", &[]), 0.0);
    assert_eq!(increase("perseus_proposer_retries_total", &[]), 0.0);
    assert_eq!(
        increase("perseus_proposer_rounds_total", &[("result", "failed")]),
        0.0
    );

    let serving = [("verdict", "serving")];
    assert_eq!(sum(&after, "perseus_membership_verdict", &serving), 1.0);
    assert_eq!(sum(&after, "perseus_requests_in_flight", &[]), 0.0);
    assert!(sum(&after, "perseus_index", &[]) >= WRITES as f64);

    // Every reply, errors and /metrics included, names the cluster, the same on every node.
    let ids: Vec<String> = cluster_ids(
        &http,
        &nodes.iter().map(|n| n.url.clone()).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0].len(), 16, "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let missing = http.get(node.key_url("no-such-key")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["x-etcd-cluster-id"].to_str().unwrap(),
        ids[0]
    );
}

/// `X-Etcd-Cluster-Id` of a keys reply from each node.
async fn cluster_ids(http: &reqwest::Client, urls: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for url in urls {
        let response = http
            .get(format!("{url}/v2/keys/metered"))
            .send()
            .await
            .unwrap();
        let id = response
            .headers()
            .get("x-etcd-cluster-id")
            .expect("X-Etcd-Cluster-Id");
        ids.push(id.to_str().unwrap().to_string());
    }
    ids
}
