//! etcd's v3 API for one key on one member through the member's JSON gateway (the gRPC
//! API's HTTP/1.1 mapping etcd serves on its client port), kept beside the gRPC client
//! ([`super::etcd3`]) to show what the gateway costs: `make bench SYSTEMS="etcd3
//! etcd3-gateway"` runs both against the same cluster (`LOADGEN_ETCD3_API=gateway`).
//! - read: `POST /v3/kv/range {"key": K}`: linearizable (no `serializable`), the key's value
//!   and `mod_revision`;
//! - create: `POST /v3/kv/txn` comparing `create_revision == 0` (the key does not exist), then
//!   a put;
//! - compare-and-set: the same txn comparing `mod_revision == prev`.
//!
//! A txn whose compare fails answers `succeeded` false (omitted from the JSON): a definite
//! conflict. The version of the key after a put is the txn's `header.revision`. Keys and values
//! travel base64-encoded, 64-bit numbers as JSON strings. One reqwest client with at most one
//! idle connection per logical client, dropped on [`Etcd3GatewayClient::reset`].

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{bounded, text, ClientError, ErrorKind, KeyNode, Store, WriteResult};

/// A client for one key on one etcd member.
pub struct Etcd3GatewayClient {
    base: String,
    endpoint: String,
    key_b64: String,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

/// A number etcd's gateway sends as a string (or, rarely, as a number).
#[derive(Deserialize, Debug, Clone, Copy, Default)]
#[serde(try_from = "serde_json::Value")]
struct Num(u64);

impl TryFrom<serde_json::Value> for Num {
    type Error = String;
    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        match &v {
            serde_json::Value::String(s) => s.parse().map(Num).map_err(|e| format!("{s:?}: {e}")),
            serde_json::Value::Number(n) => n.as_u64().map(Num).ok_or(format!("{n}")),
            _ => Err(format!("not a number: {v}")),
        }
    }
}

#[derive(Deserialize, Default)]
struct Header {
    #[serde(default)]
    revision: Num,
}

#[derive(Deserialize)]
struct Kv {
    #[serde(default)]
    value: String,
    mod_revision: Num,
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    succeeded: bool,
}

/// Parses a range answer: the key's value (decoded) and mod_revision, or None.
fn parse_range(body: &[u8]) -> Result<Option<KeyNode>, ClientError> {
    let r: RangeResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::new(ErrorKind::Body, format!("bad range JSON: {e}")))?;
    let Some(kv) = r.kvs.into_iter().next() else {
        return Ok(None);
    };
    let raw = B64
        .decode(kv.value.as_bytes())
        .map_err(|e| ClientError::new(ErrorKind::Body, format!("value not base64: {e}")))?;
    Ok(Some(KeyNode {
        value: text(&raw)?,
        modified_index: kv.mod_revision.0,
    }))
}

/// Parses a txn answer into an outcome for the value `value` that was put.
fn parse_txn(body: &[u8], value: i64) -> Result<WriteResult, ClientError> {
    let t: TxnResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::new(ErrorKind::Body, format!("bad txn JSON: {e}")))?;
    if !t.succeeded {
        return Ok(WriteResult::Rejected(None));
    }
    if t.header.revision.0 == 0 {
        return Err(ClientError::new(
            ErrorKind::Body,
            "txn answer without revision",
        ));
    }
    Ok(WriteResult::Applied(KeyNode {
        value: value.to_string(),
        modified_index: t.header.revision.0,
    }))
}

impl Etcd3GatewayClient {
    /// `base` is the member's client URL (`http://10.77.0.21:2379`).
    pub fn new(base: &str, key: &str, timeout: Duration) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Etcd3GatewayClient {
            endpoint: format!("{base}/v3 (gateway) key {key}"),
            base,
            key_b64: B64.encode(key.as_bytes()),
            timeout,
            http: None,
        }
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

    /// POSTs `body` to `/v3/<path>`; the body of a 200 answer.
    async fn post(&mut self, path: &str, body: serde_json::Value) -> Result<Vec<u8>, ClientError> {
        let http = self.http()?;
        let url = format!("{}/v3/{path}", self.base);
        bounded(self.timeout + Duration::from_millis(50), async move {
            let resp = http.post(url).json(&body).send().await.map_err(|e| {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Connect
                };
                ClientError::new(kind, e.to_string())
            })?;
            let status = resp.status().as_u16();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ClientError::new(ErrorKind::Body, e.to_string()))?;
            if status != 200 {
                let kind = if status >= 500 {
                    ErrorKind::Http5xx
                } else {
                    ErrorKind::HttpUnexpected
                };
                let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                return Err(ClientError {
                    status: Some(status),
                    ..ClientError::new(kind, format!("status {status}: {snippet}"))
                });
            }
            Ok(bytes.to_vec())
        })
        .await
    }

    async fn txn(
        &mut self,
        compare: serde_json::Value,
        value: i64,
    ) -> Result<WriteResult, ClientError> {
        let put =
            json!({"request_put": {"key": self.key_b64, "value": B64.encode(value.to_string())}});
        let body = json!({"compare": [compare], "success": [put]});
        let answer = self.post("kv/txn", body).await?;
        parse_txn(&answer, value)
    }
}

impl Store for Etcd3GatewayClient {
    async fn read(&mut self) -> Result<Option<KeyNode>, ClientError> {
        let body = json!({"key": self.key_b64});
        let answer = self.post("kv/range", body).await?;
        parse_range(&answer)
    }

    async fn create(&mut self, value: i64) -> Result<WriteResult, ClientError> {
        let compare = json!({"key": self.key_b64, "target": "CREATE", "result": "EQUAL", "create_revision": "0"});
        self.txn(compare, value).await
    }

    async fn cas(&mut self, prev: u64, value: i64) -> Result<WriteResult, ClientError> {
        let compare = json!({"key": self.key_b64, "target": "MOD", "result": "EQUAL", "mod_revision": prev.to_string()});
        self.txn(compare, value).await
    }

    async fn put(&mut self, value: i64) -> Result<Option<u64>, ClientError> {
        // a txn without a compare always succeeds; its header names the revision it made
        let put =
            json!({"request_put": {"key": self.key_b64, "value": B64.encode(value.to_string())}});
        let answer = self.post("kv/txn", json!({"success": [put]})).await?;
        match parse_txn(&answer, value)? {
            WriteResult::Applied(n) => Ok(Some(n.modified_index)),
            WriteResult::Rejected(_) => Err(ClientError::new(
                ErrorKind::Body,
                "a txn without a compare did not succeed",
            )),
        }
    }

    fn reset(&mut self) {
        self.http = None;
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        let found = br#"{"header":{"cluster_id":"1","revision":"9"},"kvs":[{"key":"aw==","create_revision":"5","mod_revision":"8","version":"3","value":"MTI="}],"count":"1"}"#;
        assert_eq!(
            parse_range(found).unwrap(),
            Some(KeyNode {
                value: "12".into(),
                modified_index: 8
            })
        );
        let missing = br#"{"header":{"revision":"9"}}"#;
        assert_eq!(parse_range(missing).unwrap(), None);
        assert_eq!(parse_range(b"<html>").unwrap_err().kind, ErrorKind::Body);
        let bad = br#"{"kvs":[{"value":"!!","mod_revision":"1"}]}"#;
        assert_eq!(parse_range(bad).unwrap_err().kind, ErrorKind::Body);
    }

    #[test]
    fn parses_txns() {
        let ok = br#"{"header":{"revision":"10"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"10"}}}]}"#;
        assert_eq!(
            parse_txn(ok, 3).unwrap(),
            WriteResult::Applied(KeyNode {
                value: "3".into(),
                modified_index: 10
            })
        );
        // a failed compare: `succeeded` false is left out of the JSON
        let conflict = br#"{"header":{"revision":"10"}}"#;
        assert_eq!(parse_txn(conflict, 3).unwrap(), WriteResult::Rejected(None));
        assert_eq!(parse_txn(b"", 3).unwrap_err().kind, ErrorKind::Body);
    }
}
