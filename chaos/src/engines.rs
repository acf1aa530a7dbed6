//! Which Docker engine runs each host, when the hosts are spread over several machines (Docker
//! Swarm, docs/swarm.md): the hosts file maps a host to the engine chaos must talk to for
//! every fault on it, since `docker kill`, `docker exec iptables …` and `docker pause` only
//! reach containers of the engine they are sent to.
//!
//! One line per host, `#` comments: `HOST ENDPOINT [certs=DIR] [address=ADDR]
//! [machine=CONTAINER]`, e.g.
//!
//! ```text
//! a1 unix:///var/run/docker.sock
//! a2 tcp://192.168.1.12:2376 certs=/etc/perseus/certs/a2
//! a3 ssh://admin@192.168.1.13
//! ```
//!
//! ENDPOINT is what `docker -H` takes: a unix socket, tcp (with `certs=DIR` holding Docker's
//! `ca.pem`, `cert.pem` and `key.pem`: TLS with client certificates, as dockerd's
//! `--tlsverify` wants; without it plain HTTP, for a trusted network only) or ssh (the system
//! `ssh` forwards the remote engine's socket; keys and known_hosts as for `docker -H ssh://`).
//! `address` is where the machine's published ports are reached (default: the endpoint's host,
//! 127.0.0.1 for a unix socket). `machine` names the container of the local engine that runs
//! this engine (`make cluster-up`'s simulated machines), for the power cut `kill-machine`.
//! Hosts not in the file use the local engine (`DOCKER_HOST` or
//! /var/run/docker.sock). The file comes from `--hosts-file` or `CHAOS_HOSTS_FILE`; single
//! `CHAOS_ENGINE_A1=ENDPOINT` variables add or override entries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bollard::Docker;
use thiserror::Error;

use crate::docker;
use perseus_model::HostName;

/// A hosts file (or variable) that cannot be used: what is wrong and where.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HostsFileError {
    #[error(
        "line {line}: {text:?}: expected `HOST ENDPOINT [certs=DIR] [address=ADDR] [machine=CONTAINER]`"
    )]
    Shape { line: usize, text: String },
    #[error("line {line}: {reason}")]
    Host { line: usize, reason: String },
    #[error("line {line}: host {host} is listed twice")]
    Twice { line: usize, host: HostName },
    #[error("line {line}: endpoint {endpoint:?}: {reason}")]
    Endpoint {
        line: usize,
        endpoint: String,
        reason: &'static str,
    },
    #[error("line {line}: unknown option {option:?} (known: certs=DIR, address=ADDR, machine=CONTAINER)")]
    Option { line: usize, option: String },
}

/// How to reach one engine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// A unix socket on this machine.
    Unix(PathBuf),
    /// `host:port`, with TLS when `certs` names the directory of ca.pem, cert.pem, key.pem.
    Tcp {
        addr: String,
        certs: Option<PathBuf>,
    },
    /// `[user@]host[:port]`, the remote socket forwarded by the system `ssh`.
    Ssh { dest: String, port: Option<u16> },
}

impl Endpoint {
    /// Parses what `docker -H` takes (`certs` from the line's options).
    pub fn parse(text: &str, certs: Option<PathBuf>) -> Result<Endpoint, &'static str> {
        if let Some(path) = text.strip_prefix("unix://") {
            if certs.is_some() {
                return Err("certs= applies to tcp:// only");
            }
            if !path.starts_with('/') {
                return Err("a unix socket needs an absolute path (unix:///var/run/docker.sock)");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp://") {
            let addr = rest.trim_end_matches('/');
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err("tcp needs host:port (tcp://192.168.1.12:2376)");
            }
            return Ok(Endpoint::Tcp {
                addr: addr.to_string(),
                certs,
            });
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            if certs.is_some() {
                return Err("certs= applies to tcp:// only (ssh uses its own keys)");
            }
            let rest = rest.trim_end_matches('/');
            let (dest, port) = match rest.rsplit_once(':') {
                Some((d, p)) => (
                    d,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| "bad ssh port (ssh://user@host:22)")?,
                    ),
                ),
                None => (rest, None),
            };
            let host = dest.rsplit('@').next().unwrap_or_default();
            if host.is_empty() || dest.starts_with('-') {
                return Err("ssh needs [user@]host (ssh://admin@192.168.1.13)");
            }
            return Ok(Endpoint::Ssh {
                dest: dest.to_string(),
                port,
            });
        }
        Err("not unix://, tcp:// or ssh://")
    }

    /// The machine's address for its published ports: the endpoint's host name or address.
    pub fn machine(&self) -> String {
        match self {
            Endpoint::Unix(_) => "127.0.0.1".into(),
            Endpoint::Tcp { addr, .. } => addr
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .unwrap_or_else(|| addr.clone()),
            Endpoint::Ssh { dest, .. } => dest.rsplit('@').next().unwrap_or(dest).to_string(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { addr, certs: None } => write!(f, "tcp://{addr}"),
            Endpoint::Tcp {
                addr,
                certs: Some(_),
            } => write!(f, "tcp://{addr}+tls"),
            Endpoint::Ssh { dest, port: None } => write!(f, "ssh://{dest}"),
            Endpoint::Ssh {
                dest,
                port: Some(p),
            } => write!(f, "ssh://{dest}:{p}"),
        }
    }
}

/// One host's engine as the hosts file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    pub endpoint: Endpoint,
    /// Where the machine's published ports are reached.
    pub address: String,
    /// The container of the local engine this engine runs in (`machine=`, the simulated
    /// machines of `make cluster-up`): what `kill-machine` stops and `start-machine` starts.
    pub machine: Option<String>,
}

/// host → engine; hosts not listed use the local engine.
pub type HostsMap = BTreeMap<HostName, EngineSpec>;

/// Parses a hosts file.
pub fn parse(text: &str) -> Result<HostsMap, HostsFileError> {
    let mut out = HostsMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        let [host, endpoint, options @ ..] = words.as_slice() else {
            return Err(HostsFileError::Shape {
                line,
                text: content.to_string(),
            });
        };
        let host: HostName =
            host.parse()
                .map_err(|e: perseus_model::ParseHostError| HostsFileError::Host {
                    line,
                    reason: e.to_string(),
                })?;
        let (mut certs, mut address, mut machine) = (None, None, None);
        for option in options {
            match option.split_once('=') {
                Some(("certs", dir)) if !dir.is_empty() => certs = Some(PathBuf::from(dir)),
                Some(("address", a)) if !a.is_empty() => address = Some(a.to_string()),
                Some(("machine", m)) if container_name(m) => machine = Some(m.to_string()),
                _ => {
                    return Err(HostsFileError::Option {
                        line,
                        option: option.to_string(),
                    })
                }
            }
        }
        let endpoint =
            Endpoint::parse(endpoint, certs).map_err(|reason| HostsFileError::Endpoint {
                line,
                endpoint: endpoint.to_string(),
                reason,
            })?;
        if out.contains_key(&host) {
            return Err(HostsFileError::Twice { line, host });
        }
        let address = address.unwrap_or_else(|| endpoint.machine());
        out.insert(
            host,
            EngineSpec {
                endpoint,
                address,
                machine,
            },
        );
    }
    Ok(out)
}

/// Whether `name` is a container name Docker accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
fn container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The hosts file (if any) with the `CHAOS_ENGINE_<HOST>` variables on top.
pub fn load(file: Option<&Path>) -> Result<HostsMap> {
    let mut map = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the hosts file {}", path.display()))?;
            parse(&text).map_err(|e| anyhow!("hosts file {}: {e}", path.display()))?
        }
        None => HostsMap::new(),
    };
    for (key, value) in std::env::vars() {
        let Some(host) = key.strip_prefix("CHAOS_ENGINE_") else {
            continue;
        };
        let line = format!("{} {value}", host.to_lowercase());
        let one = parse(&line).map_err(|e| anyhow!("{key}: {e}"))?;
        map.extend(one);
    }
    Ok(map)
}

/// A connected engine; for ssh, the forwarding process lives as long as this value.
pub struct Engine {
    /// What `chaos status` shows: `local` or the endpoint.
    pub label: String,
    pub docker: Docker,
    /// Where the machine's published ports are reached.
    pub address: String,
    _tunnel: Option<SshTunnel>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Engine({})", self.label)
    }
}

impl Engine {
    /// The engine chaos runs next to (`DOCKER_HOST` unix socket or /var/run/docker.sock).
    pub async fn local() -> Result<Engine> {
        Ok(Engine {
            label: "local".into(),
            docker: docker::connect().await?,
            address: "127.0.0.1".into(),
            _tunnel: None,
        })
    }

    /// Connects to the engine the hosts file names.
    pub async fn connect(spec: &EngineSpec) -> Result<Engine> {
        let label = spec.endpoint.to_string();
        let (docker, tunnel) = match &spec.endpoint {
            Endpoint::Unix(path) => (docker::connect_unix(&path.to_string_lossy()).await?, None),
            Endpoint::Tcp { addr, certs } => {
                let d = match certs {
                    None => Docker::connect_with_http(addr, 120, bollard::API_DEFAULT_VERSION)?,
                    Some(dir) => {
                        for f in ["key.pem", "cert.pem", "ca.pem"] {
                            if !dir.join(f).is_file() {
                                anyhow::bail!(
                                    "engine {label}: no {} (certs= names a directory with \
                                     ca.pem, cert.pem and key.pem)",
                                    dir.join(f).display()
                                );
                            }
                        }
                        Docker::connect_with_ssl(
                            addr,
                            &dir.join("key.pem"),
                            &dir.join("cert.pem"),
                            &dir.join("ca.pem"),
                            120,
                            bollard::API_DEFAULT_VERSION,
                        )?
                    }
                };
                (docker::negotiate(d, &label).await?, None)
            }
            Endpoint::Ssh { dest, port } => {
                let tunnel = SshTunnel::open(dest, *port).await?;
                let d = docker::connect_unix(&tunnel.socket.to_string_lossy()).await?;
                (d, Some(tunnel))
            }
        };
        Ok(Engine {
            label,
            docker,
            address: spec.address.clone(),
            _tunnel: tunnel,
        })
    }
}

/// `ssh -L LOCAL.sock:/var/run/docker.sock`: the remote engine's socket on this machine.
struct SshTunnel {
    socket: PathBuf,
    _child: tokio::process::Child,
}

impl SshTunnel {
    async fn open(dest: &str, port: Option<u16>) -> Result<SshTunnel> {
        let socket = std::env::temp_dir().join(format!(
            "perseus-chaos-{}-{}.sock",
            std::process::id(),
            dest.replace(['@', '/', ':'], "_")
        ));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args([
            "-nNT",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "BatchMode=yes",
        ]);
        if let Some(p) = port {
            cmd.args(["-p", &p.to_string()]);
        }
        cmd.arg("-L")
            .arg(format!("{}:/var/run/docker.sock", socket.display()))
            .arg("--")
            .arg(dest)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting ssh to {dest} (is the ssh client installed?)"))?;
        let begin = std::time::Instant::now();
        while !socket.exists() {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("ssh to {dest} ended ({status}) before forwarding the Docker socket");
            }
            if begin.elapsed() > Duration::from_secs(15) {
                anyhow::bail!("ssh to {dest}: no forwarded Docker socket after 15 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(SshTunnel {
            socket,
            _child: child,
        })
    }
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds_and_comments() {
        let map = parse(
            "# three machines\n\
             a1 unix:///var/run/docker.sock\n\
             a2 tcp://192.168.1.12:2376 certs=/etc/perseus/certs/a2  # TLS\n\
             \n\
             a3 ssh://admin@192.168.1.13:2222 address=10.1.0.3\n",
        )
        .unwrap();
        let a = |n| HostName::perseus(n);
        assert_eq!(
            map[&a(1)].endpoint,
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(map[&a(1)].address, "127.0.0.1");
        assert_eq!(
            map[&a(2)].endpoint.to_string(),
            "tcp://192.168.1.12:2376+tls"
        );
        assert_eq!(map[&a(2)].address, "192.168.1.12");
        assert_eq!(
            map[&a(3)].endpoint,
            Endpoint::Ssh {
                dest: "admin@192.168.1.13".into(),
                port: Some(2222)
            }
        );
        assert_eq!(map[&a(3)].address, "10.1.0.3");
        let e = parse("e2 tcp://m2:2375").unwrap();
        assert_eq!(e[&HostName::etcd(2)].address, "m2");
        assert_eq!(e[&HostName::etcd(2)].machine, None);
        let m = parse("a1 tcp://10.79.0.11:2375 machine=perseus-m1").unwrap();
        assert_eq!(m[&a(1)].machine.as_deref(), Some("perseus-m1"));
        assert!(parse("a1 tcp://10.79.0.11:2375 machine=-x").is_err());
    }

    #[test]
    fn refuses_bad_lines_with_their_line_number() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("a1").contains("line 1"));
        assert!(err("\na4 unix:///s").starts_with("line 2:"));
        assert!(err("a1 http://m:2375").contains("not unix://, tcp:// or ssh://"));
        assert!(err("a1 tcp://m").contains("host:port"));
        assert!(err("a1 unix://rel/sock").contains("absolute"));
        assert!(err("a1 ssh://-oProxyCommand=x").contains("[user@]host"));
        assert!(err("a1 ssh://m:port").contains("ssh port"));
        assert!(err("a1 ssh://m certs=/c").contains("tcp:// only"));
        assert!(err("a1 tcp://m:1 tls").contains("unknown option"));
        assert!(err("a1 unix:///s\na1 unix:///t").contains("listed twice"));
    }
}
