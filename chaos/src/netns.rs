//! Whether the containers of a host still share one network namespace.
//!
//! A host's later containers join the first one's namespace (`network_mode: service:a1`), but
//! only at the moment they start: when the first container is restarted on its own (a
//! `docker restart`, the engine restarting it, a user's tool) it gets a fresh namespace while
//! the others keep running in the old one, which has nothing left but loopback. Nothing inside
//! the old namespace notices (a health check run there still answers), so this module compares
//! what the engine and the kernel say: the member's `NetworkMode` must name the owner's
//! container id, and the namespace inode of its PID 1 (`readlink /proc/1/ns/net`, read through
//! docker exec so it works from inside the chaos container too) must be the owner's.
//! The repair is to restart the detached members: a start joins the owner's current namespace.

use anyhow::{bail, Result};
use bollard::Docker;

use crate::docker;
use crate::host::{Host, Member};

/// How one later container of a host stands towards the namespace owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// Same namespace as the owner.
    Shared,
    /// Runs in a namespace that is not the owner's current one.
    Detached {
        member: String,
        owner: String,
        /// Why, in the user's words (`a2 was restarted on its own`).
        cause: String,
    },
    /// Cannot be judged now (a container stopped or paused); not a fault in itself.
    Unknown { why: String },
}

impl Sharing {
    /// The sentence a user reads.
    pub fn describe(&self) -> String {
        match self {
            Sharing::Shared => "shares its host's network namespace".into(),
            Sharing::Detached {
                member,
                owner,
                cause,
            } => format!(
                "{member} runs in a network namespace that is no longer {owner}'s ({cause})"
            ),
            Sharing::Unknown { why } => why.clone(),
        }
    }
}

/// The container id a `NetworkMode` of `container:<id>` names.
pub fn joined_container(network_mode: &str) -> Option<&str> {
    network_mode.strip_prefix("container:")
}

/// Judges one member from the facts: the id its NetworkMode names, both namespace links
/// (`net:[4026532184]`), and both start times (RFC 3339, comparable as text in UTC).
pub fn judge(
    member: &str,
    owner: &str,
    owner_id: &str,
    joined: Option<&str>,
    netns: (&str, &str),
    started: (&str, &str),
) -> Sharing {
    let detached = |cause: String| Sharing::Detached {
        member: member.to_string(),
        owner: owner.to_string(),
        cause,
    };
    match joined {
        Some(id) if id == owner_id || owner_id.starts_with(id) => {}
        Some(id) => {
            return detached(format!(
                "it joined container {}, which is not {owner} any more: {owner} was recreated",
                id.chars().take(12).collect::<String>()
            ))
        }
        None => {
            return detached(format!("it does not join {owner}'s namespace at all"));
        }
    }
    let (owner_ns, member_ns) = netns;
    if owner_ns == member_ns {
        return Sharing::Shared;
    }
    let (owner_started, member_started) = started;
    let cause = if owner_started > member_started {
        format!("{owner} was restarted on its own")
    } else {
        format!("{owner}'s namespace changed after {member} started")
    };
    detached(cause)
}

async fn netns_link(docker: &Docker, m: &Member) -> Result<String> {
    let argv = ["readlink", "/proc/1/ns/net"].map(String::from);
    let out = docker::exec(docker, &m.container.id, &argv).await?;
    if out.code != 0 || !out.output.starts_with("net:") {
        bail!(
            "cannot read the network namespace of {} (exit {}: {})",
            m.container.name,
            out.code,
            out.output
        );
    }
    Ok(out.output)
}

fn started_at(m: &Member) -> String {
    m.info
        .state
        .as_ref()
        .and_then(|s| s.started_at.clone())
        .unwrap_or_default()
}

/// The sharing of every later member of the host (empty for one-container hosts).
pub async fn check(docker: &Docker, host: &Host) -> Vec<Sharing> {
    let owner = host.main();
    let mut out = Vec::new();
    for m in host.members.iter().skip(1) {
        out.push(check_member(docker, owner, m).await);
    }
    out
}

async fn check_member(docker: &Docker, owner: &Member, m: &Member) -> Sharing {
    let unknown = |why: String| Sharing::Unknown { why };
    for c in [owner, m] {
        if !docker::is_running(&c.info) {
            return unknown(format!(
                "{} is {}: namespace not checked",
                c.container.service,
                docker::state_of(&c.info)
            ));
        }
    }
    let mode = m
        .info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let (owner_ns, member_ns) = match (netns_link(docker, owner).await, netns_link(docker, m).await)
    {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return unknown(format!("{e:#}")),
    };
    judge(
        &m.container.service,
        &owner.container.service,
        &owner.container.id,
        joined_container(&mode),
        (&owner_ns, &member_ns),
        (&started_at(owner), &started_at(m)),
    )
}

/// The detached members among `sharing`.
pub fn detached(sharing: &[Sharing]) -> impl Iterator<Item = &Sharing> {
    sharing
        .iter()
        .filter(|s| matches!(s, Sharing::Detached { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "23560668c0f0f277f1dcfeaad5b2ab1021e289b5284e0db7cedf37754de14d7d";

    #[test]
    fn network_mode() {
        assert_eq!(joined_container(&format!("container:{ID}")), Some(ID));
        assert_eq!(joined_container("default"), None);
        assert_eq!(joined_container("perseus_perseus"), None);
    }

    #[test]
    fn same_namespace_is_shared() {
        let s = judge(
            "p2",
            "a2",
            ID,
            Some(ID),
            ("net:[1]", "net:[1]"),
            ("2026-11-25T16:00:00Z", "2026-11-25T16:00:01Z"),
        );
        assert_eq!(s, Sharing::Shared);
    }

    #[test]
    fn owner_restarted_alone_is_named() {
        let s = judge(
            "p2",
            "a2",
            ID,
            Some(ID),
            ("net:[2]", "net:[1]"),
            ("2026-11-25T16:05:00.1Z", "2026-11-25T16:00:01Z"),
        );
        assert_eq!(
            s.describe(),
            "p2 runs in a network namespace that is no longer a2's (a2 was restarted on its own)"
        );
        assert_eq!(detached(&[s, Sharing::Shared]).count(), 1);
    }

    #[test]
    fn recreated_owner_is_named() {
        let s = judge(
            "p2",
            "a2",
            ID,
            Some("ffff"),
            ("net:[1]", "net:[1]"),
            ("", ""),
        );
        assert!(
            s.describe().contains("a2 was recreated"),
            "{}",
            s.describe()
        );
        let s = judge("p2", "a2", ID, None, ("net:[1]", "net:[1]"), ("", ""));
        assert!(matches!(s, Sharing::Detached { .. }));
    }
}
