//! Health as the host's users see it: the system's health question ([`HealthCheck`]: an HTTP
//! `GET` such as `/health`, or ZooKeeper's `srvr`) sent to the host's address on the testbed
//! network (the load generator's view), by chaos itself, never from inside the host (a node left
//! in an orphaned namespace still answers its own loopback). Works the same from the chaos
//! container (on the network) and from the machine (which routes to it); a swarm host is asked
//! at the port its machine publishes. The body is read too: a Perseus node's carries its view of
//! every acceptor ([`perseus_model::Health`]), which `chaos status` shows. The leader lookups of
//! ZooKeeper and NATS ask the same way ([`exchange`], [`fetch`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use perseus_model::{Health, HealthCheck};

use crate::host::Host;

/// The most a probe reads of an answer (a `/jsz` with one stream is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

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

/// `GET path` on `addr`; returns the status code.
pub async fn get(addr: SocketAddr, path: &str) -> Result<u16> {
    Ok(fetch(addr, path).await?.0)
}

/// `GET path` on `addr` (HTTP/1.0, the server closes); returns the status code and the body.
pub async fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = exchange(addr, request.as_bytes()).await?;
    let code = status_code(&answer)
        .ok_or_else(|| anyhow!("not an HTTP answer from {addr}: {answer:.80}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Sends `request` to `addr` and reads the answer until the server closes (bounded in time
/// and size): ZooKeeper's four-letter words, HTTP/1.0.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Result<String> {
    talk(addr, request, |_| false).await
}

/// Sends `request` to `addr` and reads until the server closes, the answer is `complete`, or
/// it reaches [`MAX_ANSWER`]; all within [`PROBE_TIMEOUT`].
async fn talk(addr: SocketAddr, request: &[u8], complete: fn(&str) -> bool) -> Result<String> {
    let talk = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.write_all(request).await?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || buf.len() + n > MAX_ANSWER {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if complete(&String::from_utf8_lossy(&buf)) {
                break;
            }
        }
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    timeout(PROBE_TIMEOUT, talk)
        .await
        .map_err(|_| anyhow!("no answer from {addr} within {} s", PROBE_TIMEOUT.as_secs()))?
}

/// Whether `answer` holds one whole RESP reply of the kinds a sentinel sends: a status or
/// error line, or an array of bulk strings (`*-1` when empty).
pub fn resp_complete(answer: &str) -> bool {
    let lines = answer.matches("\r\n").count();
    match answer.as_bytes().first() {
        Some(b'+' | b'-' | b':') => lines >= 1,
        Some(b'*') => {
            let Some((head, _)) = answer.split_once("\r\n") else {
                return false;
            };
            match head[1..].parse::<i64>() {
                Ok(n) if n <= 0 => true,
                Ok(n) => lines as i64 > 2 * n,
                Err(_) => true,
            }
        }
        Some(_) => lines >= 1,
        None => false,
    }
}

/// Sends one Redis command (inline, `\r\n`-terminated) to `addr` and reads until its reply
/// is whole ([`resp_complete`]): a sentinel does not close the connection after answering.
pub async fn redis_command(addr: SocketAddr, request: &[u8]) -> Result<String> {
    talk(addr, request, resp_complete).await
}

/// The mode a ZooKeeper server's `srvr` answer names (`leader`, `follower`, `standalone`), or
/// None when it is not serving ("This ZooKeeper instance is not currently serving requests").
pub fn zookeeper_mode(srvr: &str) -> Option<&str> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// Host `host`'s address on the network with `port`.
pub fn address(host: &Host, port: u16) -> Result<SocketAddr> {
    let mut addrs: Vec<(String, String)> = host.addresses().into_iter().collect();
    addrs.sort();
    let Some((_, ip)) = addrs.first() else {
        bail!("{} has no address on any network", host.name);
    };
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| anyhow!("{} has a bad address {ip:?}", host.name))?;
    Ok(SocketAddr::new(ip, port))
}

/// The address the host's users reach it at: its address on the network, the client port; for
/// a swarm host the port published on its machine (the testbed network is an overlay that
/// only containers reach; the users stand outside, at the published ports).
pub fn user_address(host: &Host) -> Result<SocketAddr> {
    let port = host.name.system.client_port();
    if host.swarm() {
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
    address(host, port)
}

/// Whether the host answers its system's health question where its users stand; Err says
/// what went wrong.
pub async fn healthy(host: &Host) -> Result<()> {
    match host.name.system.health() {
        HealthCheck::Http { port, path } => {
            // A swarm host is reached at its published client port.
            let addr = if host.swarm() && port == host.name.system.client_port() {
                user_address(host)?
            } else {
                address(host, port)?
            };
            match get(addr, path).await? {
                200 => Ok(()),
                code => bail!("http://{addr}{path} answered {code}"),
            }
        }
        HealthCheck::ZookeeperSrvr { port } => {
            let addr = address(host, port)?;
            let answer = exchange(addr, b"srvr").await?;
            match zookeeper_mode(&answer) {
                Some(_) => Ok(()),
                None => bail!("srvr on {addr}: {:.100}", answer.trim()),
            }
        }
        HealthCheck::SentinelQuorum { port } => {
            let addr = address(host, port)?;
            let answer = redis_command(addr, b"SENTINEL CKQUORUM perseus\r\n").await?;
            if answer.starts_with("+OK") {
                Ok(())
            } else {
                bail!("SENTINEL CKQUORUM on {addr}: {:.100}", answer.trim())
            }
        }
    }
}

/// Whether the host answers its system's health question at all, healthy or not (its
/// processes are up and listening): what it said, in a few words (`503`, `Mode: follower`,
/// `not currently serving`, `-NOQUORUM …`). The storage faults wait for this after a start.
pub async fn answers(host: &Host) -> Result<String> {
    let said = match host.name.system.health() {
        HealthCheck::Http { port, path } => {
            let addr = if host.swarm() && port == host.name.system.client_port() {
                user_address(host)?
            } else {
                address(host, port)?
            };
            get(addr, path).await?.to_string()
        }
        HealthCheck::ZookeeperSrvr { port } => {
            let answer = exchange(address(host, port)?, b"srvr").await?;
            match zookeeper_mode(&answer) {
                Some(mode) => format!("Mode: {mode}"),
                None => answer.trim().to_string(),
            }
        }
        HealthCheck::SentinelQuorum { port } => {
            redis_command(address(host, port)?, b"SENTINEL CKQUORUM perseus\r\n")
                .await?
                .trim()
                .to_string()
        }
    };
    if said.is_empty() {
        bail!("{} closed the connection without an answer", host.name);
    }
    Ok(said.chars().take(60).collect())
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

    #[test]
    fn reads_zookeeper_modes() {
        let srvr =
            "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n";
        assert_eq!(zookeeper_mode(srvr), Some("leader"));
        assert_eq!(
            zookeeper_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
        assert_eq!(zookeeper_mode(""), None);
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

    #[test]
    fn whole_resp_replies() {
        assert!(resp_complete("+OK 3 usable Sentinels\r\n"));
        assert!(!resp_complete("+OK 3 usable"));
        assert!(resp_complete("*-1\r\n"));
        assert!(!resp_complete("*2\r\n$10\r\n10.77.0.82\r\n"));
        assert!(resp_complete("*2\r\n$10\r\n10.77.0.82\r\n$4\r\n6379\r\n"));
        assert!(!resp_complete(""));
    }
}
