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
            http.delete(format!("{url}?prevIndex=x")),
            StatusCode::BAD_REQUEST,
            203,
        ),
        (
            http.delete(format!("{url}?prevValue=")),
            StatusCode::BAD_REQUEST,
            201,
        ),
        (
            http.delete(format!("{url}?dir=true")),
            StatusCode::BAD_REQUEST,
            209,
        ),
        (
            http.delete(format!("{}/v2/keys/", node.url)),
            StatusCode::BAD_REQUEST,
            107,
        ),
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
async fn health_says_whether_a_quorum_answers_now() {
    let mut redis = three_redis();
    let node = Node::start(settings(4, &redis, 300)).await;
    let http = client();
    let health = || async {
        json(
            http.get(format!("{}/health", node.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["health"], "true");
    assert_eq!(body["id"], 4);
    assert_eq!(body["quorum"], 2);
    assert_eq!(body["answering"], 3);

    // One acceptor gone: still a quorum. No request has touched the node since, so the
    // answer comes from the probe, not from a remembered connection state.
    redis[0].kill();
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["answering"], 2, "{body}");
    assert_eq!(body["acceptors"][0]["answers"], false, "{body}");

    // A frozen acceptor still holds its connection open, but does not answer the probe.
    redis[1].signal("STOP");
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["health"], "false", "{body}");
    assert_eq!(body["answering"], 1, "{body}");
    redis[1].signal("CONT");
    let (status, _) = health().await;
    assert_eq!(status, StatusCode::OK);

    // The killed acceptor comes back: with no client request in between, the probes alone
    // replace the dead connection and health counts it again.
    redis[0].restart();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = health().await;
        if body["answering"] == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let response = http
        .post(format!("{}/health", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
}

#[tokio::test]
async fn delete_and_compare_and_delete_as_etcd() {
    let redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();
    let url = node.key_url("d");
    let delete = |query: &'static [(&'static str, &'static str)]| {
        let request = http.delete(&url).query(query);
        async move { json(request.send().await.expect("node answers")).await }
    };

    // Missing key.
    let (status, body) = delete(&[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], 100);
    assert_eq!(body["cause"], "/d");

    let (status, _) = put(&http, &url, &[], "1").await;
    assert_eq!(status, StatusCode::CREATED);
    // Conditions that fail change nothing.
    let (status, body) = delete(&[("prevValue", "2")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["errorCode"], 101);
    assert_eq!(body["cause"], "[2 != 1]");
    assert_eq!(body["index"], 1);
    let (status, body) = delete(&[("prevIndex", "9")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["cause"], "[9 != 1]");

    // compareAndDelete.
    let response = http
        .delete(&url)
        .query(&[("prevValue", "1"), ("prevIndex", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-etcd-index"], "2");
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"], "compareAndDelete");
    assert_eq!(body["node"]["key"], "/d");
    assert_eq!(body["node"]["modifiedIndex"], 2);
    assert_eq!(body["node"]["createdIndex"], 1);
    assert!(body["node"].get("value").is_none(), "{body}");
    assert_eq!(body["prevNode"]["value"], "1");
    assert_eq!(body["prevNode"]["modifiedIndex"], 1);

    // Gone for reads and for writes that need it.
    let (status, body) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], 100);
    let (status, _) = put(&http, &url, &[("prevExist", "true")], "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = put(&http, &url, &[("prevIndex", "1")], "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Create after delete: the index goes on, a new createdIndex.
    let (status, body) = put(&http, &url, &[("prevExist", "false")], "2").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["node"]["modifiedIndex"], 3);
    assert_eq!(body["node"]["createdIndex"], 3);
    assert!(body.get("prevNode").is_none(), "{body}");

    // Plain delete.
    let (status, body) = delete(&[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["action"], "delete");
    assert_eq!(body["node"]["modifiedIndex"], 4);
    assert_eq!(body["prevNode"]["value"], "2");
    let (status, _) = delete(&[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn members_machines_version_and_the_index_header() {
    let redis = three_redis();
    let mut s = settings(2, &redis, 300);
    s.members = (1..=3)
        .map(|id| perseus_node::config::Member {
            id,
            name: None,
            client_urls: vec![format!("http://127.0.0.1:808{id}")],
        })
        .collect();
    let node = Node::start(s).await;
    let http = client();

    let (status, body) = json(
        http.get(format!("{}/v2/members", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let members = body["members"].as_array().expect("a list");
    assert_eq!(members.len(), 3, "{body}");
    assert_eq!(members[1]["id"], "2");
    assert_eq!(members[1]["name"], "p2");
    assert_eq!(members[1]["clientURLs"][0], "http://127.0.0.1:8082");
    assert!(members[1]["peerURLs"].is_array());

    let (status, body) = json(
        http.get(format!("{}/v2/members/leader", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "p2", "the node asked answers with itself");

    let response = http
        .get(format!("{}/v2/machines", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "http://127.0.0.1:8081, http://127.0.0.1:8082, http://127.0.0.1:8083"
    );

    let (status, body) = json(
        http.get(format!("{}/version", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["etcdserver"].is_string() && body["etcdcluster"].is_string());

    // X-Etcd-Index: the highest modifiedIndex the node has seen, on every reply.
    let index = |r: &reqwest::Response| {
        r.headers()["x-etcd-index"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let r = http
        .get(format!("{}/version", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(index(&r), 0);
    for value in ["a", "b", "c"] {
        put(&http, &node.key_url("x"), &[], value).await;
    }
    let r = http.get(node.key_url("other")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(index(&r), 3);
    let (_, body) = json(r).await;
    assert_eq!(body["index"], 3);
    let r = http
        .get(format!("{}/nowhere", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(index(&r), 3);
}

#[tokio::test]
async fn unknown_routes_methods_and_unparsable_requests_get_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let redis = three_redis();
    let node = Node::start(settings(1, &redis, 300)).await;
    let http = client();

    // etcd answers these without an errorCode (plain text there): same status and message.
    let (status, body) = json(
        http.get(format!("{}/nowhere", node.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "404 page not found");
    assert!(body.get("errorCode").is_none(), "{body}");
    for (method, path, allow) in [
        (reqwest::Method::PATCH, "/v2/keys/a", "GET, PUT, DELETE"),
        (reqwest::Method::POST, "/v2/keys/a", "GET, PUT, DELETE"),
        (reqwest::Method::PUT, "/v2/members", "GET"),
        (reqwest::Method::DELETE, "/version", "GET"),
    ] {
        let response = http
            .request(method.clone(), format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let (status, body) = json(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(body["message"], "Method Not Allowed");
    }

    // Requests hyper refuses before any route runs: raw bytes on a socket.
    let addr = node.url.trim_start_matches("http://").to_string();
    let raw = |request: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let (mut reader, mut writer) = socket.into_split();
            // The node may answer and close before it has read everything: write on the side
            // and keep whatever arrives.
            let writing = tokio::spawn(async move {
                let _ = writer.write_all(&request).await;
                writer
            });
            let mut reply = Vec::new();
            let mut chunk = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&chunk[..n]);
            }
            writing.abort();
            let reply = String::from_utf8_lossy(&reply).into_owned();
            let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
            (head.to_string(), body.to_string())
        }
    };
    // Far over hyper's limit on a request head (about 400 KB): with a head only a little over
    // it, a fast reader (a release build) may parse the whole head in the read that crosses
    // the limit, before the limit is checked, and answer the request.
    let long_header = format!(
        "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2_000_000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (
            "GET /v2/keys/\u{e9}t\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n"
                .as_bytes()
                .to_vec(),
            "400",
        ),
        (long_header.into_bytes(), "431"),
        (
            format!(
                "GET /v2/keys/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "k".repeat(70_000)
            )
            .into_bytes(),
            "414",
        ),
    ];
    for (i, (request, status)) in cases.into_iter().enumerate() {
        let (head, body) = raw(request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "case {i}: {head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("x-etcd-index: "),
            "case {i}: {head}"
        );
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("case {i}: not JSON ({e}): {head} {body:?}"));
        assert!(
            body["message"].as_str().unwrap().starts_with(status),
            "case {i}: {body}"
        );
    }

    // A good request on a connection after a good one still gets its normal reply.
    let (head, body) = raw(
        b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(body.contains("HTTP/1.1 200 "), "{body}");
}
