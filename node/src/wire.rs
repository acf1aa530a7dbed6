//! The replies hyper writes by itself, as etcd-style JSON.
//!
//! When a request cannot even be parsed (a garbage request line, a non-ASCII path, a URI or
//! headers too long), hyper 0.14 answers 400, 414 or 431 with an empty body and closes the
//! connection, before any warp route runs, and it offers no hook to change that reply. This
//! module wraps each accepted connection and rewrites exactly those replies on their way out:
//! it follows the responses written on the connection (head, then `content-length` bytes of
//! body), and a response that starts at a response boundary with one of those statuses and
//! `content-length: 0` is replaced by the same status with a JSON body. The routes never send
//! an empty 400/414/431 (every error of theirs has a JSON body), so nothing else is touched. A
//! response the tracker cannot follow (no content-length) stops the rewriting for that
//! connection; it never corrupts a reply.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::{ApiError, App};

/// Where the writer is inside the stream of responses.
#[derive(Debug)]
enum Position {
    /// At the start of a response, or inside its head (the bytes of the head seen so far).
    Head(Vec<u8>),
    /// Inside a body, with this many bytes left.
    Body(u64),
    /// A response without content-length went by: pass everything through.
    Lost,
}

/// Longest head the tracker buffers while following responses.
const MAX_HEAD: usize = 64 * 1024;

/// A connection whose hyper-made error replies are rewritten as JSON.
pub struct EtcdErrors<S> {
    inner: S,
    app: Arc<App>,
    position: Position,
    /// A replacement reply still to be written, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<S> EtcdErrors<S> {
    pub fn new(inner: S, app: Arc<App>) -> Self {
        EtcdErrors {
            inner,
            app,
            position: Position::Head(Vec::new()),
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// If `buf` starts with a complete response head of hyper's own error replies, the length of
/// that head and its status.
fn hyper_error(buf: &[u8]) -> Option<(usize, u16)> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let empty = head
        .split("\r\n")
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    empty.then_some((end, status))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The content-length of a complete head, if it has one.
fn content_length(head: &[u8]) -> Option<u64> {
    let head = std::str::from_utf8(head).ok()?;
    head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The JSON reply that replaces hyper's empty one.
fn replacement(status: u16, index: u64) -> Vec<u8> {
    let (reason, message) = match status {
        414 => ("URI Too Long", "414 URI Too Long: the request target is too long"),
        431 => (
            "Request Header Fields Too Large",
            "431 Request Header Fields Too Large",
        ),
        _ => (
            "Bad Request",
            "400 Bad Request: the request line or a header cannot be parsed (a path must be ASCII, percent-encoded)",
        ),
    };
    let status_code =
        warp::http::StatusCode::from_u16(status).unwrap_or(warp::http::StatusCode::BAD_REQUEST);
    let body = ApiError::without_code(status_code, message)
        .body()
        .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-etcd-index: {index}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<S: AsyncWrite + Unpin> EtcdErrors<S> {
    /// Writes what is left of a replacement reply.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.pending.len() {
            let n = match Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Follows `bytes` (just written) through the responses.
    fn track(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Lost => return,
                Position::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.position = Position::Head(Vec::new());
                    }
                }
                Position::Head(head) => {
                    let before = head.len();
                    head.extend_from_slice(bytes);
                    match find(head, b"\r\n\r\n") {
                        Some(at) => {
                            let end = at + 4;
                            let used = end - before;
                            self.position = match content_length(&head[..end]) {
                                Some(0) => Position::Head(Vec::new()),
                                Some(n) => Position::Body(n),
                                None => Position::Lost,
                            };
                            bytes = &bytes[used..];
                        }
                        None if head.len() > MAX_HEAD => self.position = Position::Lost,
                        None => return,
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EtcdErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EtcdErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let at_boundary = matches!(&this.position, Position::Head(h) if h.is_empty());
        if at_boundary {
            if let Some((head_len, status)) = hyper_error(buf) {
                this.pending = replacement(status, this.app.index());
                this.written = 0;
                // The replacement is written by this and the following calls (and by flush
                // and shutdown); hyper is told its own head went out.
                if let Poll::Ready(Err(e)) = this.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(head_len));
            }
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.track(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hyper_made_errors() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_error(hyper), Some((hyper.len(), 400)));
        assert_eq!(
            hyper_error(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            )
            .map(|(_, s)| s),
            Some(431)
        );
        // a JSON error of the routes
        assert_eq!(
            hyper_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\n\r\n{}"),
            None
        );
        assert_eq!(
            hyper_error(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        // an incomplete head
        assert_eq!(
            hyper_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"),
            None
        );
    }

    #[test]
    fn content_length_is_read_from_a_head() {
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Some(12)
        );
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn replacement_is_json_with_its_length() {
        let reply = String::from_utf8(replacement(414, 7)).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("x-etcd-index: 7"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["message"].as_str().unwrap().starts_with("414"));
    }
}
