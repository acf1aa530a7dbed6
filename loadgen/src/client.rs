//! etcd-v2 keys API client for one logical client (one key, one TCP connection).
//!
//! Requests, as etcd's own v2 client sends them:
//! - read: `GET /v2/keys/KEY?quorum=true` (a linearizable read on etcd; accepted by the node);
//! - create: `PUT /v2/keys/KEY?prevExist=false` with form body `value=V`;
//! - compare-and-swap: `PUT /v2/keys/KEY?prevIndex=N` with form body `value=V`.
//!
//! The underlying `reqwest::Client` keeps at most one idle connection (keep-alive), so a logical
//! client uses one TCP connection; [`EtcdClient::reset`] drops it so that the next request opens
//! a new one (done after any error). Every request, body included, is bounded by the timeout.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Why a request did not produce an answer the loop can use (shared with the records).
pub use perseus_model::ErrorKind;

/// A failed request: its kind and a short detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub kind: ErrorKind,
    pub detail: String,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
}

impl ClientError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ClientError {
            kind,
            detail: detail.into(),
            status: None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for ClientError {}

/// The key's node as the server returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNode {
    pub value: String,
    pub modified_index: u64,
}

/// Outcome of a conditional write that got a definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// Applied; the node after the write.
    Applied(KeyNode),
    /// Definitely not applied (412, or 404 on CAS); carries the etcd errorCode if any.
    Rejected(Option<u64>),
}

#[derive(Deserialize)]
struct RespBody {
    node: RespNode,
}

#[derive(Deserialize)]
struct RespNode {
    value: Option<String>,
    #[serde(rename = "modifiedIndex")]
    modified_index: u64,
}

#[derive(Deserialize)]
struct ErrBody {
    #[serde(rename = "errorCode")]
    error_code: Option<u64>,
}

fn parse_node(body: &[u8]) -> Result<KeyNode, ClientError> {
    let r: RespBody = serde_json::from_slice(body)
        .map_err(|e| ClientError::new(ErrorKind::Body, format!("bad JSON: {e}")))?;
    let value = r
        .node
        .value
        .ok_or_else(|| ClientError::new(ErrorKind::Body, "node without value"))?;
    Ok(KeyNode {
        value,
        modified_index: r.node.modified_index,
    })
}

fn error_code(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<ErrBody>(body)
        .ok()
        .and_then(|b| b.error_code)
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else {
        // connect failures and connections lost before the response
        ErrorKind::Connect
    }
}

fn status_error(status: u16, body: &[u8]) -> ClientError {
    let kind = if (500..600).contains(&status) {
        ErrorKind::Http5xx
    } else {
        ErrorKind::HttpUnexpected
    };
    let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
    ClientError {
        status: Some(status),
        ..ClientError::new(kind, format!("status {status}: {snippet}"))
    }
}

/// A client for one key on one node.
pub struct EtcdClient {
    url: String,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

impl EtcdClient {
    /// `base` is the node URL (e.g. `http://127.0.0.1:8081`), `key` must be URL-safe.
    pub fn new(base: &str, key: &str, timeout: Duration) -> Self {
        EtcdClient {
            url: format!("{}/v2/keys/{}", base.trim_end_matches('/'), key),
            timeout,
            http: None,
        }
    }

    /// The URL of the key.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the connection; the next request opens a new one.
    pub fn reset(&mut self) {
        self.http = None;
    }

    fn http(&mut self) -> Result<reqwest::Client, ClientError> {
        if let Some(c) = &self.http {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::new(ErrorKind::Connect, format!("client: {e}")))?;
        self.http = Some(c.clone());
        Ok(c)
    }

    /// Sends a request and reads the whole body within the timeout.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ClientError> {
        let fut = async {
            let resp = req
                .send()
                .await
                .map_err(|e| ClientError::new(classify(&e), e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Body
                };
                ClientError::new(kind, e.to_string())
            })?;
            Ok((status, body.to_vec()))
        };
        // reqwest enforces the timeout too; this is a second, independent bound
        match tokio::time::timeout(self.timeout + Duration::from_millis(50), fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::new(ErrorKind::Timeout, "request timed out")),
        }
    }

    /// Reads the key: `Ok(None)` if it does not exist (404 errorCode 100).
    pub async fn get(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let http = self.http()?;
        let req = http.get(&self.url).query(&[("quorum", "true")]);
        let (status, body) = self.send(req).await?;
        match status {
            200 => parse_node(&body).map(Some),
            404 if error_code(&body) == Some(100) => Ok(None),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Creates the key with `value` if it does not exist (`prevExist=false`).
    pub async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let http = self.http()?;
        let v = value.to_string();
        let req = http
            .put(&self.url)
            .query(&[("prevExist", "false")])
            .form(&[("value", v.as_str())]);
        let (status, body) = self.send(req).await?;
        match status {
            200 | 201 => parse_node(&body).map(WriteResult::Applied),
            412 => Ok(WriteResult::Rejected(error_code(&body))),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Sets the key to `value` if its modifiedIndex is `prev` (`prevIndex=N`).
    pub async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let http = self.http()?;
        let v = value.to_string();
        let p = prev.to_string();
        let req = http
            .put(&self.url)
            .query(&[("prevIndex", p.as_str())])
            .form(&[("value", v.as_str())]);
        let (status, body) = self.send(req).await?;
        match status {
            200 | 201 => parse_node(&body).map(WriteResult::Applied),
            412 | 404 => Ok(WriteResult::Rejected(error_code(&body))),
            _ => Err(status_error(status, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_node() {
        let b = br#"{"action":"get","node":{"key":"/k","value":"5","modifiedIndex":12,"createdIndex":3}}"#;
        assert_eq!(
            parse_node(b).unwrap(),
            KeyNode {
                value: "5".into(),
                modified_index: 12
            }
        );
    }

    #[test]
    fn bad_body_is_body_error() {
        assert_eq!(parse_node(b"nope").unwrap_err().kind, ErrorKind::Body);
        assert_eq!(
            parse_node(br#"{"node":{"modifiedIndex":1}}"#)
                .unwrap_err()
                .kind,
            ErrorKind::Body
        );
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            error_code(
                br#"{"errorCode":105,"message":"Key already exists","cause":"/k","index":4}"#
            ),
            Some(105)
        );
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn status_errors_are_classified() {
        assert_eq!(status_error(503, b"{}").kind, ErrorKind::Http5xx);
        assert_eq!(status_error(503, b"{}").status, Some(503));
        assert_eq!(status_error(400, b"{}").kind, ErrorKind::HttpUnexpected);
    }

    #[test]
    fn url_has_no_double_slash() {
        let c = EtcdClient::new("http://127.0.0.1:1/", "r-n1-c0", Duration::from_secs(1));
        assert_eq!(c.url(), "http://127.0.0.1:1/v2/keys/r-n1-c0");
    }

    #[tokio::test]
    async fn connection_refused_is_connect_error() {
        // bind then drop a listener to get a port nobody listens on
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut c = EtcdClient::new(
            &format!("http://127.0.0.1:{port}"),
            "k",
            Duration::from_millis(500),
        );
        let e = c.get().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect, "{e}");
    }

    #[tokio::test]
    async fn silent_server_is_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        // accept and never answer
        let h = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        });
        let mut c = EtcdClient::new(
            &format!("http://127.0.0.1:{port}"),
            "k",
            Duration::from_millis(200),
        );
        let t0 = std::time::Instant::now();
        let e = c.get().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert!(t0.elapsed() < Duration::from_millis(1000));
        h.abort();
    }
}
