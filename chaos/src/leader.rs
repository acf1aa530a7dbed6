//! `leader` as a host name. For Perseus, which has no leader, it is always `a1`. For etcd,
//! the faults that hit (kill, restart, pause, isolate) ask the cluster: every running member
//! is asked for `GET /v2/stats/self` (curl inside its container, like the health checks), and
//! the leader is the member that says `StateLeader` and that a majority of the members name in
//! `leaderInfo.leader`. The undoing commands (start, resume, heal) take `leader` to mean the
//! host(s) the fault left stopped, paused or isolated: whatever `kill leader` / `pause leader` /
//! `isolate leader` hit, without any state kept between runs of chaos.

use std::time::Duration;

use anyhow::{bail, Result};
use futures::future::join_all;
use serde_json::Value;
use tokio::time::{sleep, Instant};

use crate::docker;
use crate::host::{Cluster, HostName, System};

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

/// The current etcd leader, asking again (every 250 ms, up to `wait`) while there is none,
/// e.g. during an election.
pub async fn etcd_leader(cluster: &Cluster, wait: Duration) -> Result<HostName> {
    let begin = Instant::now();
    let quorum = System::Etcd.hosts().len() / 2 + 1;
    let last = loop {
        let answers = ask(cluster).await?;
        if let Some(h) = elect(&answers, quorum) {
            return Ok(h);
        }
        if begin.elapsed() >= wait {
            break answers;
        }
        sleep(Duration::from_millis(250)).await;
    };
    let seen: Vec<String> = last
        .iter()
        .map(|(h, s)| {
            format!(
                "{h}: id {} {} leader {}",
                s.id,
                if s.is_leader { "leads," } else { "follows," },
                s.leader.as_deref().unwrap_or("none")
            )
        })
        .collect();
    bail!(
        "no etcd leader agreed on by a quorum within {} s (answers: {})",
        wait.as_secs(),
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join("; ")
        }
    )
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
}
