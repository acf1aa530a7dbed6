//! `leader` as a host name, one lookup per [`Leadership`] (the system says which). For a
//! leaderless system (Perseus) it is always the first host. For the others the faults that hit
//! (kill, restart, pause, isolate) ask every running host, and the leader is the one a majority
//! agrees on, so a stale leader cut off from the others is never chosen:
//! - etcd (v2 and v3 share the cluster): `GET /v2/stats/self` (curl inside the member's
//!   container, like the health checks); the member that says `StateLeader` and that a majority
//!   names in `leaderInfo.leader`;
//! - ZooKeeper: the four-letter word `srvr` on port 2181; the server in `Mode: leader`, while a
//!   majority of the servers serve (leader or follower);
//! - NATS: `GET /jsz?accounts=true&streams=true` on the monitoring port 8222; the leader of the
//!   key-value bucket's stream `KV_perseus` (every read and write of the load goes through it)
//!   that a majority names, or before the bucket exists the JetStream meta leader;
//! - PostgreSQL with Patroni: `GET /cluster` on Patroni's REST API (port 8008); the member with
//!   role `leader` that a majority names;
//! - Redis with Sentinel: `SENTINEL get-master-addr-by-name perseus` on each host's sentinel;
//!   the primary a majority of the sentinels names.
//!
//! The undoing commands (start, resume, heal) take `leader` to mean the
//! host(s) the fault left stopped, paused or isolated: whatever `kill leader` / `pause leader` /
//! `isolate leader` hit, without any state kept between runs of chaos.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Result};
use futures::future::join_all;
use serde_json::Value;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::error::ChaosError;
use crate::host::{Cluster, HostName, System};
use crate::probe;
use perseus_model::Leadership;

/// Patroni's REST API port on every PostgreSQL host.
pub const PATRONI_PORT: u16 = 8008;

/// The stream behind the load generator's key-value bucket (`perseus`).
pub const NATS_STREAM: &str = "KV_perseus";

/// What one etcd member says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfStats {
    pub id: String,
    pub is_leader: bool,
    /// The member it follows (its own id when it leads); None when it knows of no leader.
    pub leader: Option<String>,
}

/// Parses the body of etcd's `GET /v2/stats/self`.
pub fn parse_self_stats(body: &str) -> Result<SelfStats> {
    let v: Value = serde_json::from_str(body.trim())
        .map_err(|e| anyhow::anyhow!("/v2/stats/self is not JSON ({e}): {body:.200}"))?;
    let Some(id) = v["id"].as_str().filter(|s| !s.is_empty()) else {
        bail!("/v2/stats/self has no \"id\": {body:.200}");
    };
    let is_leader = v["state"].as_str() == Some("StateLeader");
    let leader = v["leaderInfo"]["leader"]
        .as_str()
        .filter(|s| !s.is_empty() && *s != "0")
        .map(String::from);
    Ok(SelfStats {
        id: id.to_string(),
        is_leader,
        leader,
    })
}

/// The leader among the members that answered: it says `StateLeader` and at least `quorum`
/// answers (its own included) name it. A stale leader cut off from the others is not chosen.
pub fn elect(answers: &[(HostName, SelfStats)], quorum: usize) -> Option<HostName> {
    answers
        .iter()
        .filter(|(_, s)| s.is_leader)
        .map(|(h, s)| {
            let votes = answers
                .iter()
                .filter(|(_, o)| o.leader.as_deref() == Some(s.id.as_str()))
                .count();
            (*h, votes)
        })
        .filter(|(_, votes)| *votes >= quorum)
        .max_by_key(|(_, votes)| *votes)
        .map(|(h, _)| h)
}

/// Asks every running etcd member; the hosts that could not answer are listed in the error.
async fn ask(cluster: &Cluster) -> Result<Vec<(HostName, SelfStats)>> {
    let argv: Vec<String> = [
        "curl",
        "-fsS",
        "-m",
        "2",
        "http://127.0.0.1:2379/v2/stats/self",
    ]
    .map(String::from)
    .to_vec();
    let mut hosts = Vec::new();
    for name in cluster.host_names(System::Etcd) {
        let host = cluster.host(name).await?;
        if host.running() {
            // Each member through its own engine.
            let engine = host.engine.clone();
            hosts.push((name, host.main().container.id.clone(), engine));
        }
    }
    let calls = hosts.iter().map(|(name, id, engine)| {
        let argv = argv.clone();
        async move {
            let out = docker::exec(&engine.docker, id, &argv).await?;
            if out.code != 0 {
                bail!("curl exit {}: {}", out.code, out.output);
            }
            Ok::<_, anyhow::Error>((*name, parse_self_stats(&out.output)?))
        }
    });
    Ok(join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect())
}

/// The current leader of `system`, asking again (every 250 ms, up to `wait`) while there is
/// none; the first host for a leaderless system.
pub async fn leader(cluster: &Cluster, system: System, wait: Duration) -> Result<HostName> {
    match system.leadership() {
        Leadership::Leaderless => Ok(system.hosts()[0]),
        Leadership::EtcdStats => etcd_leader(cluster, wait).await,
        Leadership::ZookeeperSrvr
        | Leadership::NatsStreamLeader
        | Leadership::PatroniLeader
        | Leadership::SentinelPrimary => named_leader(cluster, system, wait).await,
    }
}

/// What one host said about the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opinion {
    /// Whether it serves (in a quorum) at all.
    pub serving: bool,
    /// The host it names as leader (itself when it leads).
    pub leader: Option<HostName>,
}

/// The leader a quorum of opinions agrees on: named by at least `quorum` serving hosts, and
/// one of the hosts that answered (a dead or unreachable leader is no leader).
pub fn agree(opinions: &[(HostName, Opinion)], quorum: usize) -> Option<HostName> {
    let named: Vec<HostName> = opinions
        .iter()
        .filter(|(_, o)| o.serving)
        .filter_map(|(_, o)| o.leader)
        .collect();
    opinions
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| named.iter().filter(|n| *n == h).count() >= quorum)
        .max_by_key(|h| named.iter().filter(|n| *n == h).count())
}

/// A ZooKeeper server's opinion from its `srvr` answer: a follower names no host (ZooKeeper
/// does not say whom it follows), so every serving server counts for the one in leader mode.
fn zookeeper_opinion(me: HostName, srvr: &str) -> Opinion {
    match probe::zookeeper_mode(srvr) {
        Some("leader") => Opinion {
            serving: true,
            leader: Some(me),
        },
        Some(_) => Opinion {
            serving: true,
            leader: None,
        },
        None => Opinion {
            serving: false,
            leader: None,
        },
    }
}

/// A NATS server's opinion from its `/jsz?accounts=true&streams=true`: the leader of
/// [`NATS_STREAM`] it reports, else the meta leader; server names are the host names (`-n jN`).
pub fn nats_opinion(jsz: &str) -> Result<Opinion> {
    let v: Value = serde_json::from_str(jsz.trim())
        .map_err(|e| anyhow::anyhow!("/jsz is not JSON ({e}): {jsz:.200}"))?;
    let stream_leader = v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .find(|s| s["name"].as_str() == Some(NATS_STREAM))
        .and_then(|s| s["cluster"]["leader"].as_str());
    let name = stream_leader.or_else(|| v["meta_cluster"]["leader"].as_str());
    let leader = name.and_then(|n| n.parse::<HostName>().ok());
    Ok(Opinion {
        serving: v["meta_cluster"]["leader"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        leader,
    })
}

/// Asks every running host of a ZooKeeper or NATS cluster for its opinion.
async fn opinions(cluster: &Cluster, system: System) -> Result<Vec<(HostName, Opinion)>> {
    let mut hosts = Vec::new();
    for name in cluster.host_names(system) {
        let host = cluster.host(name).await?;
        if host.running() {
            hosts.push((name, host));
        }
    }
    let calls = hosts.iter().map(|(name, host)| async move {
        let opinion = match system.leadership() {
            Leadership::ZookeeperSrvr => {
                let addr = probe::address(host, system.client_port())?;
                zookeeper_opinion(*name, &probe::exchange(addr, b"srvr").await?)
            }
            Leadership::PatroniLeader => {
                let addr = probe::address(host, PATRONI_PORT)?;
                let (code, body) = probe::fetch(addr, "/cluster").await?;
                if code != 200 {
                    bail!("/cluster on {addr} answered {code}");
                }
                Opinion {
                    serving: true,
                    leader: patroni_leader(&body)?,
                }
            }
            Leadership::SentinelPrimary => {
                let addr = probe::address(host, system.client_port())?;
                let answer =
                    probe::redis_command(addr, b"SENTINEL get-master-addr-by-name perseus\r\n")
                        .await?;
                let primary = sentinel_primary(&answer);
                Opinion {
                    serving: primary.is_some(),
                    leader: primary.and_then(|ip| {
                        system
                            .hosts()
                            .into_iter()
                            .find(|h| system.address(h.n) == ip)
                    }),
                }
            }
            _ => {
                let addr = probe::address(host, 8222)?;
                let (code, body) = probe::fetch(addr, "/jsz?accounts=true&streams=true").await?;
                if code != 200 {
                    bail!("/jsz on {addr} answered {code}");
                }
                nats_opinion(&body)?
            }
        };
        Ok::<_, anyhow::Error>((*name, opinion))
    });
    Ok(join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect())
}

/// Asks `round` every 250 ms until `pick` finds a leader in its answers or `wait` passes;
/// then the error names each host's last answer (`describe`).
async fn until_agreed<A, F, Fut>(
    system: System,
    wait: Duration,
    mut round: F,
    pick: impl Fn(&[(HostName, A)]) -> Option<HostName>,
    describe: impl Fn(&A) -> String,
) -> Result<HostName>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(HostName, A)>>>,
{
    let begin = Instant::now();
    let last = loop {
        let answers = round().await?;
        if let Some(h) = pick(&answers) {
            return Ok(h);
        }
        if begin.elapsed() >= wait {
            break answers;
        }
        sleep(Duration::from_millis(250)).await;
    };
    let seen: Vec<String> = last
        .iter()
        .map(|(h, a)| format!("{h}: {}", describe(a)))
        .collect();
    Err(no_leader(system, wait, &seen))
}

/// The ZooKeeper or NATS leader, asking again while a quorum does not agree on one.
async fn named_leader(cluster: &Cluster, system: System, wait: Duration) -> Result<HostName> {
    let quorum = system.hosts().len() / 2 + 1;
    let pick = |answers: &[(HostName, Opinion)]| {
        // ZooKeeper followers name nobody: a leader counts when a quorum serves with it.
        if system.leadership() == Leadership::ZookeeperSrvr {
            let serving = answers.iter().filter(|(_, o)| o.serving).count();
            answers
                .iter()
                .find(|(_, o)| o.leader.is_some())
                .filter(|_| serving >= quorum)
                .map(|(h, _)| *h)
        } else {
            agree(answers, quorum)
        }
    };
    let describe = |o: &Opinion| {
        format!(
            "{}, leader {}",
            if o.serving { "serving" } else { "not serving" },
            o.leader.map(|l| l.to_string()).unwrap_or("none".into())
        )
    };
    until_agreed(system, wait, || opinions(cluster, system), pick, describe).await
}

/// The error when no leader was agreed on in `wait`, with each host's last answer.
fn no_leader(system: System, wait: Duration, seen: &[String]) -> anyhow::Error {
    ChaosError::NoLeader(format!(
        "no {system} leader agreed on by a quorum within {} s (answers: {})",
        wait.as_secs(),
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join("; ")
        }
    ))
    .into()
}

/// The current etcd leader, asking again (every 250 ms, up to `wait`) while there is none,
/// e.g. during an election.
pub async fn etcd_leader(cluster: &Cluster, wait: Duration) -> Result<HostName> {
    let quorum = System::Etcd.hosts().len() / 2 + 1;
    let describe = |s: &SelfStats| {
        format!(
            "id {} {} leader {}",
            s.id,
            if s.is_leader { "leads," } else { "follows," },
            s.leader.as_deref().unwrap_or("none")
        )
    };
    until_agreed(
        System::Etcd,
        wait,
        || ask(cluster),
        |answers| elect(answers, quorum),
        describe,
    )
    .await
}

/// The address a sentinel's `SENTINEL get-master-addr-by-name` names, from its RESP answer
/// (`*2\r\n$10\r\n10.77.0.81\r\n$4\r\n6379\r\n`); None
/// when it knows no primary (`*-1`) or the answer is not that.
pub fn sentinel_primary(answer: &str) -> Option<Ipv4Addr> {
    let mut lines = answer.split("\r\n");
    if lines.next()? != "*2" {
        return None;
    }
    lines.next()?.strip_prefix('$')?;
    lines.next()?.parse().ok()
}

/// The member Patroni's `GET /cluster` names with role `leader` (its name is the host name).
pub fn patroni_leader(cluster: &str) -> Result<Option<HostName>> {
    let v: Value = serde_json::from_str(cluster.trim())
        .map_err(|e| anyhow::anyhow!("/cluster is not JSON ({e}): {cluster:.200}"))?;
    Ok(v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"].as_str() == Some("leader"))
        .find_map(|m| m["name"].as_str().and_then(|n| n.parse::<HostName>().ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = r#"{"name":"e2","id":"aaa","state":"StateLeader","startTime":"2026-11-24T16:00:00Z","leaderInfo":{"leader":"aaa","uptime":"1m","startTime":"2026-11-24T16:00:00Z"},"recvAppendRequestCnt":0}"#;
    const FOLLOWER: &str = r#"{"name":"e1","id":"bbb","state":"StateFollower","leaderInfo":{"leader":"aaa","uptime":"1m","startTime":"x"}}"#;

    fn stats(id: &str, is_leader: bool, leader: Option<&str>) -> SelfStats {
        SelfStats {
            id: id.into(),
            is_leader,
            leader: leader.map(String::from),
        }
    }

    #[test]
    fn parses_self_stats() {
        assert_eq!(
            parse_self_stats(LEADER).unwrap(),
            stats("aaa", true, Some("aaa"))
        );
        assert_eq!(
            parse_self_stats(FOLLOWER).unwrap(),
            stats("bbb", false, Some("aaa"))
        );
        let candidate = r#"{"id":"ccc","state":"StateCandidate","leaderInfo":{"leader":""}}"#;
        assert_eq!(
            parse_self_stats(candidate).unwrap(),
            stats("ccc", false, None)
        );
        assert!(parse_self_stats("").is_err());
        assert!(parse_self_stats("<html>").is_err());
        assert!(parse_self_stats(r#"{"state":"StateLeader"}"#).is_err());
        assert!(parse_self_stats(r#"[1,2]"#).is_err());
    }

    #[test]
    fn nats_names_the_stream_leader() {
        let jsz = r#"{"server_id":"X","meta_cluster":{"name":"perseus","leader":"j1","cluster_size":3},
          "account_details":[{"name":"$G","stream_detail":[{"name":"KV_perseus","cluster":{"name":"perseus","leader":"j3"}}]}]}"#;
        let o = nats_opinion(jsz).unwrap();
        assert_eq!(o.leader, Some("j3".parse().unwrap()));
        assert!(o.serving);
        let meta_only = r#"{"meta_cluster":{"leader":"j2"}}"#;
        assert_eq!(
            nats_opinion(meta_only).unwrap().leader,
            Some("j2".parse().unwrap())
        );
        let none = r#"{"meta_cluster":{"cluster_size":3}}"#;
        assert_eq!(
            nats_opinion(none).unwrap(),
            Opinion {
                serving: false,
                leader: None
            }
        );
        assert!(nats_opinion("<html>").is_err());
    }

    #[test]
    fn a_quorum_must_agree() {
        let j = |n: usize| {
            "j1 j2 j3"
                .split(' ')
                .nth(n - 1)
                .unwrap()
                .parse::<HostName>()
                .unwrap()
        };
        let says = |l: Option<HostName>| Opinion {
            serving: true,
            leader: l,
        };
        let all = vec![
            (j(1), says(Some(j(2)))),
            (j(2), says(Some(j(2)))),
            (j(3), says(Some(j(2)))),
        ];
        assert_eq!(agree(&all, 2), Some(j(2)));
        // the leader itself did not answer (dead): no leader
        assert_eq!(agree(&[all[0].clone(), all[2].clone()], 2), None);
        // a split: nobody has a quorum
        let split = vec![(j(1), says(Some(j(1)))), (j(3), says(Some(j(3))))];
        assert_eq!(agree(&split, 2), None);
        let z1: HostName = "z1".parse().unwrap();
        assert_eq!(zookeeper_opinion(z1, "Mode: leader\n").leader, Some(z1));
        assert!(zookeeper_opinion(z1, "Mode: follower\n").serving);
        assert!(!zookeeper_opinion(z1, "not currently serving").serving);
    }

    #[test]
    fn elects_the_leader_a_quorum_follows() {
        let e = HostName::etcd;
        let answers = vec![
            (e(1), stats("bbb", false, Some("aaa"))),
            (e(2), stats("aaa", true, Some("aaa"))),
            (e(3), stats("ccc", false, Some("aaa"))),
        ];
        assert_eq!(elect(&answers, 2), Some(e(2)));
        // The leader is dead: followers still name it, but it cannot answer.
        assert_eq!(elect(&answers[..1], 2), None);
        assert_eq!(elect(&[answers[0].clone(), answers[2].clone()], 2), None);
        // An isolated old leader still believes it leads; the others elected e3.
        let split = vec![
            (e(1), stats("bbb", false, Some("ccc"))),
            (e(2), stats("aaa", true, Some("aaa"))),
            (e(3), stats("ccc", true, Some("ccc"))),
        ];
        assert_eq!(elect(&split, 2), Some(e(3)));
        // Mid-election: nobody leads.
        let none = vec![
            (e(1), stats("bbb", false, None)),
            (e(3), stats("ccc", false, None)),
        ];
        assert_eq!(elect(&none, 2), None);
        assert_eq!(elect(&[], 2), None);
    }

    #[test]
    fn reads_a_sentinels_primary() {
        let answer = "*2\r\n$10\r\n10.77.0.82\r\n$4\r\n6379\r\n+OK\r\n";
        assert_eq!(sentinel_primary(answer), Some(Ipv4Addr::new(10, 77, 0, 82)));
        assert_eq!(sentinel_primary("*-1\r\n+OK\r\n"), None);
        assert_eq!(sentinel_primary("-ERR no such master\r\n"), None);
        assert_eq!(sentinel_primary(""), None);
    }

    #[test]
    fn reads_patronis_leader() {
        let cluster = r#"{"members": [{"name": "q1", "role": "sync_standby", "state": "running"}, {"name": "q2", "role": "leader", "state": "running"}, {"name": "q3", "role": "replica"}]}"#;
        assert_eq!(
            patroni_leader(cluster).unwrap(),
            Some("q2".parse::<HostName>().unwrap())
        );
        assert_eq!(patroni_leader(r#"{"members": []}"#).unwrap(), None);
        assert!(patroni_leader("<html>").is_err());
    }
}
