//! Asking a running node, for the check scripts: one request to its keys API (etcd v2),
//! answered as a typed [`KeyReply`] (`lab kv`), and its `/metrics` counters summed over
//! several nodes ([`metric_sums`], `lab metrics`). The scripts compare these fields instead
//! of reading the node's JSON or Prometheus text with grep and awk.
//!
//! HTTP/1.0 over a plain TCP connection, bounded in time: the scripts talk to the testbed's
//! published ports on loopback, one request at a time.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;

/// How long one request may take (connect, send, read).
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most read of one answer.
const MAX_ANSWER: u64 = 4 << 20;

/// What went wrong asking a node.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("node URL {0:?} is not http://HOST:PORT")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: not an HTTP answer: {head:.80}")]
    NotHttp { url: String, head: String },
}

/// The keys operation `lab kv` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyOp {
    /// GET the key.
    Get,
    /// PUT a value (creates or replaces).
    Put,
    /// PUT with prevExist=false: refused when the key exists.
    Create,
}

/// A node's answer to one keys request, as the scripts compare it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyReply {
    pub status: u16,
    /// The key's value (a successful GET or PUT).
    pub value: Option<String>,
    /// etcd's errorCode (100 not found, 105 exists, 301 not applied, 310 data loss, ...).
    pub error_code: Option<u32>,
    /// Why a 503 or 500 applied nothing or may have (`no quorum`, `data loss`, ...).
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The JSON body of an etcd v2 keys answer, success or error.
#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    node: Option<BodyNode>,
    #[serde(default, rename = "errorCode")]
    error_code: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct BodyNode {
    #[serde(default)]
    value: Option<String>,
}

impl KeyReply {
    /// Reads a status and a body; a body that is not etcd's JSON leaves the fields empty and
    /// becomes the message.
    pub fn parse(status: u16, body: &str) -> KeyReply {
        match serde_json::from_str::<Body>(body) {
            Ok(b) => KeyReply {
                status,
                value: b.node.and_then(|n| n.value),
                error_code: b.error_code,
                reason: b.reason,
                message: b.message,
            },
            Err(_) => KeyReply {
                status,
                message: Some(body.trim().to_string()).filter(|m| !m.is_empty()),
                ..KeyReply::default()
            },
        }
    }

    /// `STATUS VALUE ERRORCODE REASON MESSAGE`: the first four are one word each (`-` when
    /// absent, the reason's spaces as dashes), so that a script reads them with `read`.
    pub fn line(&self) -> String {
        let word = |s: Option<String>| s.unwrap_or_else(|| "-".into());
        format!(
            "{} {} {} {} {}",
            self.status,
            word(
                self.value
                    .as_ref()
                    .map(|v| v.replace(char::is_whitespace, "_"))
            ),
            word(self.error_code.map(|c| c.to_string())),
            word(self.reason.as_ref().map(|r| r.replace(' ', "-"))),
            self.message.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_string()
    }
}

/// `http://HOST:PORT` (a trailing slash allowed) → `HOST:PORT`.
fn authority(url: &str) -> Result<&str, AskError> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| AskError::BadUrl(url.to_string()))
}

/// Percent-encodes a form value or a key (what is not unreserved).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request; returns the status code and the body.
fn request(
    url: &str,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> Result<(u16, String), AskError> {
    let host = authority(url)?;
    let io = |source| AskError::Io {
        url: url.to_string(),
        source,
    };
    let addr = host
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| AskError::BadUrl(url.to_string()))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let body = form.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n");
    if form.is_some() {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    stream
        .take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .map_err(io)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| AskError::NotHttp {
            url: url.to_string(),
            head: head.to_string(),
        })?;
    Ok((status, body.to_string()))
}

/// One keys request to the node at `url`.
pub fn key_request(
    url: &str,
    op: KeyOp,
    key: &str,
    value: Option<&str>,
) -> Result<KeyReply, AskError> {
    let segments: Vec<String> = key.split('/').map(encode).collect();
    let path = format!("/v2/keys/{}", segments.join("/"));
    let form = value.map(|v| format!("value={}", encode(v)));
    let (status, body) = match op {
        KeyOp::Get => request(url, "GET", &path, None)?,
        KeyOp::Put => request(url, "PUT", &path, Some(form.as_deref().unwrap_or("value=")))?,
        KeyOp::Create => request(
            url,
            "PUT",
            &format!("{path}?prevExist=false"),
            Some(form.as_deref().unwrap_or("value=")),
        )?,
    };
    Ok(KeyReply::parse(status, &body))
}

/// One sample of Prometheus text: `name{a="x",b="y"} value`.
fn sample(line: &str) -> Option<(&str, BTreeMap<&str, &str>, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k, v.trim_matches('"')))
        })
        .collect();
    Some((name, labels, value))
}

/// The samples of `name` in Prometheus `text`, summed per value of the label `by` (one sum
/// under `""` without it), added into `sums`.
pub fn add_samples(text: &str, name: &str, by: Option<&str>, sums: &mut BTreeMap<String, f64>) {
    for (series, labels, value) in text.lines().filter_map(sample) {
        if series != name {
            continue;
        }
        let group = by.map_or("", |label| labels.get(label).copied().unwrap_or("-"));
        *sums.entry(group.to_string()).or_default() += value;
    }
}

/// `name` summed over the `/metrics` of every node in `urls` (per value of the label `by`);
/// a node that does not answer counts nothing and is named in the second list.
pub fn metric_sums(
    urls: &[String],
    name: &str,
    by: Option<&str>,
) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut sums = BTreeMap::new();
    let mut silent = Vec::new();
    for url in urls {
        match request(url, "GET", "/metrics", None) {
            Ok((200, text)) => add_samples(&text, name, by, &mut sums),
            Ok((status, _)) => silent.push(format!("{url}: {status}")),
            Err(e) => silent.push(e.to_string()),
        }
    }
    (sums, silent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_fields() {
        let ok = KeyReply::parse(
            200,
            r#"{"action":"get","node":{"key":"/k","value":"v1","modifiedIndex":3}}"#,
        );
        assert_eq!(ok.line(), "200 v1 - -");
        let lost = KeyReply::parse(
            503,
            r#"{"errorCode":310,"message":"data loss: a1, a2","cause":"k","index":0,"reason":"data loss","outcome":"not applied"}"#,
        );
        assert_eq!(lost.error_code, Some(310));
        assert_eq!(lost.line(), "503 - 310 data-loss data loss: a1, a2");
        let plain = KeyReply::parse(404, "404 page not found\n");
        assert_eq!(plain.line(), "404 - - - 404 page not found");
    }

    #[test]
    fn samples_are_summed_per_label() {
        let text = "# HELP x\n# TYPE x counter\n\
                    perseus_outcome_resolutions_total{verdict=\"applied\"} 3\n\
                    perseus_outcome_resolutions_total{verdict=\"not-applied\"} 1\n\
                    perseus_other 9\n";
        let mut sums = BTreeMap::new();
        add_samples(
            text,
            "perseus_outcome_resolutions_total",
            Some("verdict"),
            &mut sums,
        );
        add_samples(
            text,
            "perseus_outcome_resolutions_total",
            Some("verdict"),
            &mut sums,
        );
        assert_eq!(sums["applied"], 6.0);
        assert_eq!(sums["not-applied"], 2.0);
        let mut total = BTreeMap::new();
        add_samples(text, "perseus_other", None, &mut total);
        assert_eq!(total[""], 9.0);
    }

    #[test]
    fn urls_and_keys() {
        assert_eq!(
            authority("http://127.0.0.1:8081/").unwrap(),
            "127.0.0.1:8081"
        );
        assert!(authority("127.0.0.1:8081").is_err());
        assert!(authority("http://h:1/v2").is_err());
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("v=1&x"), "v%3D1%26x");
    }
}
