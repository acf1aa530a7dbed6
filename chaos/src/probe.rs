//! Health as the host's users see it: an HTTP `GET /health` to the host's address on the
//! testbed network (the load generator's view), sent by chaos itself, never from inside the
//! host (a node left in an orphaned namespace still answers its own loopback). Works the same
//! from the chaos container (on the network) and from the machine (which routes to it).
//! The body is read too: a Perseus node's carries its view of every acceptor
//! ([`perseus_model::Health`]), which `chaos status` shows.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use perseus_model::Health;

use crate::host::Host;

/// How long one probe may take (connect, send, read).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The status code in an HTTP response head (`HTTP/1.1 200 OK`).
pub fn status_code(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The largest answer read: a health body is well under 2 KiB.
const MAX_ANSWER: usize = 64 * 1024;

/// `GET path` on `addr`; returns the status code.
pub async fn get(addr: SocketAddr, path: &str) -> Result<u16> {
    Ok(fetch(addr, path).await?.0)
}

/// `GET path` on `addr` (HTTP/1.0, the server closes); returns the status code and the body.
pub async fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut buf)
            .await?;
        let text = String::from_utf8_lossy(&buf);
        let code = status_code(&text)
            .ok_or_else(|| anyhow!("not an HTTP answer from {addr}: {text:.80}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((code, body))
    };
    timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer from {addr} within {} s", PROBE_TIMEOUT.as_secs()))?
}

/// The address the host's users reach it at: its address on the network, the health port; for
/// a swarm host the port published on its machine (the testbed network is an overlay that
/// only containers reach; the users stand outside, at the published ports).
pub fn user_address(host: &Host) -> Result<SocketAddr> {
    if host.swarm() {
        let port = host.name.system.client_port();
        let published =
            crate::docker::published_port(&host.main().info, port).ok_or_else(|| {
                anyhow!(
                    "{} does not publish its port {port} on its machine",
                    host.name
                )
            })?;
        let at = format!("{}:{published}", host.engine.address);
        return std::net::ToSocketAddrs::to_socket_addrs(&at)
            .with_context(|| format!("resolving {at}"))?
            .next()
            .ok_or_else(|| anyhow!("{at} resolves to no address"));
    }
    let mut addrs: Vec<(String, String)> = host.addresses().into_iter().collect();
    addrs.sort();
    let Some((_, ip)) = addrs.first() else {
        bail!("{} has no address on any network", host.name);
    };
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| anyhow!("{} has a bad address {ip:?}", host.name))?;
    Ok(SocketAddr::new(ip, host.name.system.client_port()))
}

/// Whether the host answers `/health` with 200 where its users stand; Err says what went wrong.
pub async fn healthy(host: &Host) -> Result<()> {
    let addr = user_address(host)?;
    match get(addr, "/health").await? {
        200 => Ok(()),
        code => bail!("http://{addr}/health answered {code}"),
    }
}

/// The host's `/health` where its users stand: the status code and the body, parsed (None
/// when it is not the JSON both systems write).
pub async fn health(host: &Host) -> Result<(u16, Option<Health>)> {
    let addr = user_address(host)?;
    let (code, body) = fetch(addr, "/health").await?;
    Ok((code, serde_json::from_str(body.trim()).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(""), None);
        assert_eq!(status_code("HTTP/1.1 abc"), None);
    }

    #[tokio::test]
    async fn gets_from_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 112\r\n\r\n\
                  {\"health\":\"false\",\"membership\":null,\"acceptors\":\
                  [{\"name\":\"a2\",\"answers\":true,\"state\":\"recovering\"}]}",
            )
            .await
            .unwrap();
        });
        let (code, body) = fetch(addr, "/health").await.unwrap();
        assert_eq!(code, 503);
        let health: Health = serde_json::from_str(&body).unwrap();
        assert_eq!(
            health.acceptor_state("a2"),
            Some(perseus_model::AcceptorState::Recovering)
        );
        server.await.unwrap();
        // Nobody listens there any more: a clear error, not a hang.
        assert!(get(addr, "/health").await.is_err());
    }
}
