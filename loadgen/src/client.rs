//! etcd-v2 keys API client for one logical client (one key, one TCP connection).
//!
//! Requests, as etcd's own v2 client sends them:
//! - read: `GET /v2/keys/KEY?quorum=true` (a linearizable read on etcd; accepted by the node);
//! - create: `PUT /v2/keys/KEY?prevExist=false` with form body `value=V`;
//! - compare-and-swap: `PUT /v2/keys/KEY?prevIndex=N` with form body `value=V`.
//!
//! The client speaks HTTP/1.1 itself over hyper's low-level client connection (no pool, no URL
//! parsing per request), because the load generator must cost far less than the system it
//! measures. The node URL is split once, in [`EtcdClient::new`], into the address to dial, the
//! `Host` header and the request targets; a request then only formats its query and form body
//! (`V` is a decimal integer, so the form needs no percent-encoding). A logical client holds at
//! most one TCP connection (TCP_NODELAY), opened lazily by the first request after
//! [`EtcdClient::reset`] or after an error: any transport error or timeout drops it, and the
//! caller resets after any other error too. Every request, connecting and reading the whole body
//! included, is bounded by the timeout.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Why a request did not produce an answer the loop can use (shared with the records).
pub use perseus_model::ErrorKind;

/// A failed request: its kind and a short detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub kind: ErrorKind,
    pub detail: String,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
    /// The store answered that it did not apply the operation (a refusal or a rollback, not a
    /// lost answer): the history records a write that failed so as `fail`, not unknown.
    pub not_applied: bool,
}

impl ClientError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ClientError {
            kind,
            detail: detail.into(),
            status: None,
            not_applied: false,
        }
    }

    /// The same error, said by the store to have changed nothing.
    pub fn not_applied(self) -> Self {
        ClientError {
            not_applied: true,
            ..self
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
    /// Definitely not applied (412, 404 on CAS, or a 5xx the server marked not applied);
    /// carries the etcd errorCode if any.
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

/// A request that got no answer head (the connection broke or closed first, or the head was not
/// HTTP): a connect error, as reqwest reported it (the write may or may not have been applied).
fn lost(e: hyper::Error) -> ClientError {
    ClientError::new(ErrorKind::Connect, e.to_string())
}

/// What a request needs of the node URL and the key, built once per client.
struct Target {
    /// Host and port to dial (an IPv6 literal without its brackets).
    host: String,
    port: u16,
    host_header: HeaderValue,
    get_uri: Uri,
    /// `GET` without `quorum=true`: served by whichever member answers, from its own copy.
    local_get_uri: Uri,
    /// `PUT` without a condition: a blind write.
    set_uri: Uri,
    create_uri: Uri,
    /// `PATH?prevIndex=`: a CAS appends the index.
    cas_prefix: String,
}

impl Target {
    fn parse(base: &str, key: &str) -> Result<Target, String> {
        let uri: Uri = base.parse().map_err(|e| format!("{e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("not an http:// URL".into());
        }
        let authority = uri.authority().ok_or("no host")?;
        let port = authority.port_u16().unwrap_or(80);
        // the Host header as a browser would send it: no user info, the port when explicit
        let host_header = match authority.port() {
            Some(p) => format!("{}:{}", authority.host(), p.as_str()),
            None => authority.host().to_string(),
        };
        let path = format!("{}/v2/keys/{}", uri.path().trim_end_matches('/'), key);
        let target = |query: &str| -> Result<Uri, String> {
            format!("{path}?{query}")
                .parse()
                .map_err(|e| format!("key {key:?}: {e}"))
        };
        Ok(Target {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            host_header: HeaderValue::from_str(&host_header).map_err(|e| format!("{e}"))?,
            get_uri: target("quorum=true")?,
            local_get_uri: target("quorum=false")?,
            set_uri: path.parse().map_err(|e| format!("key {key:?}: {e}"))?,
            create_uri: target("prevExist=false")?,
            cas_prefix: format!("{path}?prevIndex="),
        })
    }
}

/// The open connection: hyper's request handle and the task that drives the socket.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // a request abandoned by a timeout may leave the driver waiting on the socket
        // forever; aborting it closes the socket now
        self.driver.abort();
    }
}

/// A client for one key on one node.
pub struct EtcdClient {
    url: String,
    timeout: Duration,
    /// The node URL split once; a URL that cannot be used fails every request as a connect
    /// error (it is validated before the run, so this is only a last resort).
    target: Result<Target, String>,
    conn: Option<Conn>,
    /// Reads without `quorum=true` (the stale-reads control); linearizable reads by default.
    local_reads: bool,
}

impl EtcdClient {
    /// `base` is the node URL (e.g. `http://127.0.0.1:8081`), `key` must be URL-safe.
    pub fn new(base: &str, key: &str, timeout: Duration) -> Self {
        let base = base.trim_end_matches('/');
        EtcdClient {
            url: format!("{base}/v2/keys/{key}"),
            timeout,
            target: Target::parse(base, key),
            conn: None,
            local_reads: false,
        }
    }

    /// Reads as etcd's command-line client does by default (`quorum=false`): the member
    /// answers from its own copy, which an isolated member keeps serving, stale.
    pub fn with_local_reads(mut self) -> Self {
        self.local_reads = true;
        self
    }

    /// The URL of the key.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the connection; the next request opens a new one.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn target(&self) -> Result<&Target, ClientError> {
        self.target.as_ref().map_err(|e| {
            ClientError::new(ErrorKind::Connect, format!("node URL {}: {e}", self.url))
        })
    }

    /// Sends a request and reads the whole body within the timeout; any failure drops the
    /// connection.
    /// Status, body, and whether the server said the request was not applied (a Perseus
    /// 5xx with `X-Perseus-Outcome: not-applied`: refused, nothing happened).
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes, bool), ClientError> {
        let res = match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::new(ErrorKind::Timeout, "request timed out")),
        };
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    async fn exchange(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes, bool), ClientError> {
        let sender = self.ready_sender().await?;
        let resp = sender.send_request(req).await.map_err(lost)?;
        let status = resp.status().as_u16();
        let not_applied = resp.status().is_server_error()
            && resp
                .headers()
                .get("x-perseus-outcome")
                .is_some_and(|v| v.as_bytes() == b"not-applied");
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::new(ErrorKind::Body, e.to_string()))?
            .to_bytes();
        Ok((status, body, not_applied))
    }

    /// The connection, ready for a request. One the server closed after its last answer
    /// (`Connection: close`, idle close) is replaced silently, as a pool would: only a
    /// connection that fails while carrying a request is an error.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        let reusable = match &mut self.conn {
            Some(c) if !c.sender.is_closed() => c.sender.ready().await.is_ok(),
            _ => false,
        };
        if !reusable {
            self.conn = None;
            self.conn = Some(self.connect().await?);
        }
        let Some(c) = &mut self.conn else {
            return Err(ClientError::new(ErrorKind::Connect, "no connection"));
        };
        c.sender.ready().await.map_err(lost)?;
        Ok(&mut c.sender)
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let t = self.target()?;
        let connect_err = |e: &dyn fmt::Display| {
            ClientError::new(ErrorKind::Connect, format!("{}:{}: {e}", t.host, t.port))
        };
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| connect_err(&e))?;
        stream.set_nodelay(true).map_err(|e| connect_err(&e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(&e))?;
        let driver = tokio::spawn(async move {
            // the request that was in flight reports the failure; this is only a trace
            if let Err(e) = connection.await {
                log::trace!("etcd connection: {e}");
            }
        });
        Ok(Conn { sender, driver })
    }

    fn request(
        &self,
        method: Method,
        uri: Uri,
        body: Option<i64>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let t = self.target()?;
        let mut req = Request::new(match body {
            Some(v) => Full::new(Bytes::from(format!("value={v}"))),
            None => Full::new(Bytes::new()),
        });
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.insert(HOST, t.host_header.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if body.is_some() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        Ok(req)
    }

    /// Reads the key: `Ok(None)` if it does not exist (404 errorCode 100).
    pub async fn get(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let t = self.target()?;
        let uri = if self.local_reads {
            t.local_get_uri.clone()
        } else {
            t.get_uri.clone()
        };
        let req = self.request(Method::GET, uri, None)?;
        let (status, body, _) = self.send(req).await?;
        match status {
            200 => parse_node(&body).map(Some),
            404 if error_code(&body) == Some(100) => Ok(None),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Creates the key with `value` if it does not exist (`prevExist=false`).
    pub async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let uri = self.target()?.create_uri.clone();
        let req = self.request(Method::PUT, uri, Some(value))?;
        let (status, body, not_applied) = self.send(req).await?;
        match status {
            200 | 201 => parse_node(&body).map(WriteResult::Applied),
            412 => Ok(WriteResult::Rejected(error_code(&body))),
            _ if not_applied => Ok(WriteResult::Rejected(error_code(&body))),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Sets the key to `value` unconditionally; the node after the write.
    pub async fn set(&mut self, value: i64) -> Result<KeyNode, ClientError> {
        let uri = self.target()?.set_uri.clone();
        let req = self.request(Method::PUT, uri, Some(value))?;
        let (status, body, _) = self.send(req).await?;
        match status {
            200 | 201 => parse_node(&body),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Sets the key to `value` if its modifiedIndex is `prev` (`prevIndex=N`).
    pub async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let t = self.target()?;
        let uri = Uri::try_from(format!("{}{prev}", t.cas_prefix))
            .map_err(|e| ClientError::new(ErrorKind::Connect, format!("request target: {e}")))?;
        let req = self.request(Method::PUT, uri, Some(value))?;
        let (status, body, not_applied) = self.send(req).await?;
        match status {
            200 | 201 => parse_node(&body).map(WriteResult::Applied),
            412 | 404 => Ok(WriteResult::Rejected(error_code(&body))),
            _ if not_applied => Ok(WriteResult::Rejected(error_code(&body))),
            _ => Err(status_error(status, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A scripted HTTP/1.1 server: answers the n-th request (over all connections) with
    /// `answers[n]` and closes the connection after it when the answer says so; records each
    /// request as `request line`, its headers sorted and lowercased, and its body.
    async fn scripted(answers: Vec<String>) -> (u16, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let (seen2, conns2) = (seen.clone(), conns.clone());
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            loop {
                let (s, _) = l.accept().await.unwrap();
                conns2.fetch_add(1, Ordering::SeqCst);
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap() == 0 {
                        break;
                    }
                    let mut headers = Vec::new();
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length: ") {
                            len = v.parse().unwrap();
                        }
                        headers.push(h);
                    }
                    headers.sort();
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    seen2.lock().unwrap().push(format!(
                        "{} | {} | {}",
                        line.trim_end(),
                        headers.join(", "),
                        String::from_utf8_lossy(&body)
                    ));
                    let a = answers.next().unwrap();
                    r.get_mut().write_all(a.as_bytes()).await.unwrap();
                    if a.contains("connection: close") {
                        break;
                    }
                }
            }
        });
        (port, seen, conns)
    }

    #[tokio::test]
    async fn requests_on_the_wire_and_answers() {
        // status line, close after it, body, and the content-length when it is not the body's
        let answer = |status: &str, close: bool, body: &str, len: Option<usize>| {
            let close = if close { "connection: close\r\n" } else { "" };
            let len = len.unwrap_or(body.len());
            format!("HTTP/1.1 {status}\r\n{close}content-length: {len}\r\n\r\n{body}")
        };
        let (port, seen, conns) = scripted(vec![
            answer("404 Not Found", false, r#"{"errorCode":100}"#, None),
            answer(
                "201 Created",
                false,
                r#"{"node":{"value":"-7","modifiedIndex":4}}"#,
                None,
            ),
            answer(
                "412 Precondition Failed",
                false,
                r#"{"errorCode":101}"#,
                None,
            ),
            answer(
                "200 OK",
                true,
                r#"{"node":{"value":"9","modifiedIndex":5}}"#,
                None,
            ),
            answer("503 Service Unavailable", false, "{}", None),
            answer("404 Not Found", false, r#"{"errorCode":101}"#, None),
            // the connection closes in the middle of the body
            answer("200 OK", true, r#"{"node":"#, Some(100)),
        ])
        .await;
        let mut c = EtcdClient::new(
            &format!("http://127.0.0.1:{port}/"),
            "k-1",
            Duration::from_secs(2),
        );
        assert_eq!(c.get().await, Ok(None));
        let applied = |v: &str, i| {
            Ok(WriteResult::Applied(KeyNode {
                value: v.into(),
                modified_index: i,
            }))
        };
        assert_eq!(c.create(-7).await, applied("-7", 4));
        assert_eq!(c.cas(4, 8).await, Ok(WriteResult::Rejected(Some(101))));
        assert_eq!(c.cas(4, 9).await, applied("9", 5));
        // the server closed after its answer: a new connection, no error
        let e = c.get().await.unwrap_err();
        assert_eq!((e.kind, e.status), (ErrorKind::Http5xx, Some(503)), "{e}");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        assert_eq!(c.cas(5, 10).await, Ok(WriteResult::Rejected(Some(101))));
        let e = c.get().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Body, "{e}");
        let host = format!("host: 127.0.0.1:{port}");
        let form = "content-type: application/x-www-form-urlencoded";
        let expected = [
            format!("GET /v2/keys/k-1?quorum=true HTTP/1.1 | accept: */*, {host} | "),
            format!("PUT /v2/keys/k-1?prevExist=false HTTP/1.1 | accept: */*, content-length: 8, {form}, {host} | value=-7"),
            format!("PUT /v2/keys/k-1?prevIndex=4 HTTP/1.1 | accept: */*, content-length: 7, {form}, {host} | value=8"),
            format!("PUT /v2/keys/k-1?prevIndex=4 HTTP/1.1 | accept: */*, content-length: 7, {form}, {host} | value=9"),
            format!("GET /v2/keys/k-1?quorum=true HTTP/1.1 | accept: */*, {host} | "),
            format!("PUT /v2/keys/k-1?prevIndex=5 HTTP/1.1 | accept: */*, content-length: 8, {form}, {host} | value=10"),
            format!("GET /v2/keys/k-1?quorum=true HTTP/1.1 | accept: */*, {host} | "),
        ];
        assert_eq!(*seen.lock().unwrap(), expected);
    }

    /// Perseus marks a 5xx whose write was not applied (and never will be): that is a
    /// refusal; a 5xx of unknown outcome, or one without the mark (etcd's), stays an error.
    #[tokio::test]
    async fn a_5xx_marked_not_applied_is_a_refusal() {
        let answer = |status: &str, outcome: Option<&str>, code: u32| {
            let body = format!(r#"{{"errorCode":{code}}}"#);
            let header = outcome.map_or(String::new(), |o| format!("x-perseus-outcome: {o}\r\n"));
            format!(
                "HTTP/1.1 {status}\r\n{header}content-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let (port, _, _) = scripted(vec![
            answer("503 Service Unavailable", Some("not-applied"), 301),
            answer("503 Service Unavailable", Some("not-applied"), 301),
            answer("500 Internal Server Error", Some("unknown"), 300),
            answer("503 Service Unavailable", None, 300),
        ])
        .await;
        let mut c = EtcdClient::new(
            &format!("http://127.0.0.1:{port}/"),
            "k-1",
            Duration::from_secs(2),
        );
        assert_eq!(c.cas(4, 5).await, Ok(WriteResult::Rejected(Some(301))));
        assert_eq!(c.create(1).await, Ok(WriteResult::Rejected(Some(301))));
        let e = c.cas(4, 5).await.unwrap_err();
        assert_eq!((e.kind, e.status), (ErrorKind::Http5xx, Some(500)), "{e}");
        let e = c.cas(4, 5).await.unwrap_err();
        assert_eq!((e.kind, e.status), (ErrorKind::Http5xx, Some(503)), "{e}");
    }

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
