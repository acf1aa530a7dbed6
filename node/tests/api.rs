//! The node's HTTP API against three real redis-server processes: the etcd v2 operations,
//! every error code, and bad input.

use perseus_node::testing::{client, settings, three_redis, Node};
use reqwest::StatusCode;
use serde_json::Value;

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// `PUT url?query` with the form `value=…`; the status and the JSON body.
async fn put(
    http: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
    value: &str,
) -> (StatusCode, Value) {
    json(
        http.put(url)
            .query(query)
            .form(&[("value", value)])
            .send()
            .await
            .expect("node answers"),
    )
    .await
}

#[tokio::test]
async fn create_read_cas_overwrite_and_their_errors() {
    let redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("counter");

    // Missing key.
    let (status, body) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], 100);
    assert_eq!(body["cause"], "/counter");

    // Create.
    let (status, body) = put(&http, &url, &[("prevExist", "false")], "0").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["action"], "create");
    assert_eq!(body["node"]["key"], "/counter");
    assert_eq!(body["node"]["value"], "0");
    assert_eq!(body["node"]["modifiedIndex"], 1);
    assert_eq!(body["node"]["createdIndex"], 1);

    // Create again: exists.
    let (status, body) = put(&http, &url, &[("prevExist", "false")], "9").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["errorCode"], 105);

    // Read, as etcdctl sends it.
    let (status, body) = json(
        http.get(format!("{url}?quorum=false&recursive=false&sorted=false"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"], "get");
    assert_eq!(body["node"]["value"], "0");

    // CAS on the index just read.
    let (status, body) = put(&http, &url, &[("prevIndex", "1")], "1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"], "compareAndSwap");
    assert_eq!(body["node"]["value"], "1");
    assert_eq!(body["node"]["modifiedIndex"], 2);
    assert_eq!(body["prevNode"]["modifiedIndex"], 1);

    // CAS on a stale index.
    let (status, body) = put(&http, &url, &[("prevIndex", "1")], "7").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["errorCode"], 101);
    assert_eq!(body["index"], 2);

    // CAS on a missing key.
    let (status, body) = json(
        http.put(node.key_url("nothing"))
            .query(&[("prevIndex", "1")])
            .form(&[("value", "7")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], 100);

    // Update needs the key; overwrite does not.
    let (status, _) = json(
        http.put(node.key_url("fresh"))
            .query(&[("prevExist", "true")])
            .form(&[("value", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = json(
        http.put(&url)
            .form(&[("value", "hello world")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"], "set");
    assert_eq!(body["node"]["value"], "hello world");
    assert_eq!(body["node"]["modifiedIndex"], 3);
    assert_eq!(body["node"]["createdIndex"], 1);

    // Failed writes changed nothing.
    let (_, body) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(body["node"]["value"], "hello world");
    assert_eq!(body["node"]["modifiedIndex"], 3);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_changes_nothing() {
    let redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("k");
    let put = http
        .put(&url)
        .query(&[("prevExist", "false")])
        .form(&[("value", "0")]);
    assert_eq!(put.send().await.unwrap().status(), StatusCode::CREATED);

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, i64)> = vec![
        (http.put(&url), StatusCode::BAD_REQUEST, 200),
        (
            http.put(&url).form(&[("other", "1")]),
            StatusCode::BAD_REQUEST,
            200,
        ),
        (
            http.put(&url)
                .query(&[("prevIndex", "abc")])
                .form(&[("value", "1")]),
            StatusCode::BAD_REQUEST,
            203,
        ),
        (
            http.put(&url)
                .query(&[("prevExist", "maybe")])
                .form(&[("value", "1")]),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.put(&url)
                .query(&[("ttl", "5")])
                .form(&[("value", "1")]),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.put(&url)
                .header("content-type", "application/json")
                .body("{\"value\":\"1\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            210,
        ),
        (
            http.put(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("value=%zz"),
            StatusCode::BAD_REQUEST,
            210,
        ),
        (
            http.put(&url).form(&[("value", "x".repeat(1025))]),
            StatusCode::PAYLOAD_TOO_LARGE,
            209,
        ),
        (
            http.put(&url).form(&[("value", "x".repeat(10_000))]),
            StatusCode::PAYLOAD_TOO_LARGE,
            209,
        ),
        (
            http.get(node.key_url(&"k".repeat(600))),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.get(format!("{url}?quorum=perhaps")),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.get(format!("{url}?wait=true")),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.get(format!("{}/v2/keys/", node.url)),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.get(format!("{}/nowhere", node.url)),
            StatusCode::NOT_FOUND,
            209,
        ),
        (http.delete(&url), StatusCode::METHOD_NOT_ALLOWED, 209),
    ];
    for (i, (request, status, code)) in cases.into_iter().enumerate() {
        let (got, body) = json(request.send().await.unwrap()).await;
        assert_eq!(got, status, "case {i}: {body}");
        assert_eq!(body["errorCode"], code, "case {i}: {body}");
        assert!(body["message"].is_string(), "case {i}: {body}");
    }

    let (_, body) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(body["node"]["value"], "0");
    assert_eq!(body["node"]["modifiedIndex"], 1);
}

#[tokio::test]
async fn health_reports_reachable_acceptors() {
    let mut redis = three_redis();
    let node = Node::start(settings(4, &redis, 300)).await;
    let http = client();
    let (status, body) = json(
        http.get(format!("{}/health", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], 4);
    assert_eq!(body["acceptors"], 3);
    assert_eq!(body["reachable"], 3);
    assert_eq!(body["quorum"], 2);

    redis[0].kill();
    // A write notices the dead acceptor and drops its connection.
    let _ = http
        .put(node.key_url("h"))
        .form(&[("value", "1")])
        .send()
        .await
        .unwrap();
    let (_, body) = json(
        http.get(format!("{}/health", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["reachable"], 2);
    assert_eq!(body["quorum_reachable"], true);
}
