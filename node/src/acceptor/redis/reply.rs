//! The scripts' replies, parsed: each reply of prepare.lua, read.lua, accept.lua, the batch
//! scripts and identity.lua turned into the acceptor's typed answer and standing, or a clear
//! [`AcceptorError::Protocol`] for anything else (nothing a Redis sends can panic the node).

use super::super::rules::{Identity, IdentityRefusal, Standing};
use super::super::{AcceptReply, AcceptorError, Inspection, PrepareReply, ReadReply};
use crate::ballot::Ballot;

fn parse_ballot(parts: &[String]) -> Result<Ballot, AcceptorError> {
    let number = |i: usize| -> Result<u64, AcceptorError> {
        parts
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| AcceptorError::Protocol(format!("bad ballot in reply: {parts:?}")))
    };
    Ok(Ballot::new(number(0)?, number(1)?, number(2)?))
}

fn parse_standing(text: &str) -> Result<Standing, AcceptorError> {
    Standing::parse(text)
        .ok_or_else(|| AcceptorError::Protocol(format!("unknown acceptor state {text:?}")))
}

/// The replies every script may give instead of an answer: the identity refusal (nothing
/// changed) and the refusal of a ballot beyond 2^53.
fn parse_refusal(reply: &[String]) -> AcceptorError {
    match reply.first().map(String::as_str) {
        Some("unmarked") if reply.get(1).map(String::as_str) == Some("missing") => {
            AcceptorError::Unmarked(IdentityRefusal::Missing)
        }
        Some("unmarked") if reply.len() == 4 => AcceptorError::Unmarked(IdentityRefusal::Foreign {
            cluster: reply[2].clone(),
            acceptor: reply[3].clone(),
        }),
        Some("invalid") => AcceptorError::Protocol("a ballot beyond 2^53 was refused".into()),
        _ => AcceptorError::Protocol(format!("unexpected reply {reply:?}")),
    }
}

/// Turns a prepare script reply into a [`PrepareReply`] and the acceptor's standing.
pub fn parse_prepare(reply: &[String]) -> Result<(PrepareReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 7 => Ok((
            PrepareReply::Promised {
                accepted: parse_ballot(&reply[2..5])?,
                value: (reply[5] == "1").then(|| reply[6].clone()),
            },
            parse_standing(&reply[1])?,
        )),
        // A refusal counts from anyone; its standing does not matter.
        Some("conflict") if reply.len() == 4 => Ok((
            PrepareReply::Conflict(parse_ballot(&reply[1..4])?),
            Standing::Member,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// Turns a read script reply into a [`ReadReply`] and the acceptor's standing.
pub fn parse_read(reply: &[String]) -> Result<(ReadReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 7 => Ok((
            ReadReply {
                accepted: parse_ballot(&reply[2..5])?,
                value: (reply[5] == "1").then(|| reply[6].clone()),
            },
            parse_standing(&reply[1])?,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// Turns an accept script reply into an [`AcceptReply`] and the acceptor's standing.
pub fn parse_accept(reply: &[String]) -> Result<(AcceptReply, Standing), AcceptorError> {
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() == 2 => Ok((AcceptReply::Accepted, parse_standing(&reply[1])?)),
        Some("conflict") if reply.len() == 4 => Ok((
            AcceptReply::Conflict(parse_ballot(&reply[1..4])?),
            Standing::Member,
        )),
        _ => Err(parse_refusal(reply)),
    }
}

/// The envelope both batch scripts answer with: "ok", the acceptor's standing, then `width`
/// fields per key, each turned into a reply by `one` (the `phase` names the call in errors).
fn parse_many<T>(
    reply: &[String],
    keys: usize,
    width: usize,
    phase: &str,
    one: impl Fn(&[String]) -> Result<T, AcceptorError>,
) -> Result<(Vec<T>, Standing), AcceptorError> {
    if reply.first().map(String::as_str) != Some("ok") {
        return Err(parse_refusal(reply));
    }
    if reply.len() != 2 + width * keys {
        return Err(AcceptorError::Protocol(format!(
            "{phase} of {keys} keys answered {} fields",
            reply.len()
        )));
    }
    let standing = parse_standing(&reply[1])?;
    let replies = reply[2..]
        .chunks(width)
        .map(one)
        .collect::<Result<_, _>>()?;
    Ok((replies, standing))
}

/// Turns a `prepare_many.lua` reply for `keys` keys into one [`PrepareReply`] per key and the
/// acceptor's standing.
pub fn parse_prepare_many(
    reply: &[String],
    keys: usize,
) -> Result<(Vec<PrepareReply>, Standing), AcceptorError> {
    parse_many(reply, keys, 6, "prepare", |one| match one[0].as_str() {
        "ok" => Ok(PrepareReply::Promised {
            accepted: parse_ballot(&one[1..4])?,
            value: (one[4] == "1").then(|| one[5].clone()),
        }),
        "conflict" => Ok(PrepareReply::Conflict(parse_ballot(&one[1..4])?)),
        other => Err(AcceptorError::Protocol(format!(
            "unexpected answer {other:?} in a prepare of many keys"
        ))),
    })
}

/// Turns an `accept_many.lua` reply for `keys` keys into one [`AcceptReply`] per key and the
/// acceptor's standing.
pub fn parse_accept_many(
    reply: &[String],
    keys: usize,
) -> Result<(Vec<AcceptReply>, Standing), AcceptorError> {
    parse_many(reply, keys, 4, "accept", |one| match one[0].as_str() {
        "ok" => Ok(AcceptReply::Accepted),
        "conflict" => Ok(AcceptReply::Conflict(parse_ballot(&one[1..4])?)),
        other => Err(AcceptorError::Protocol(format!(
            "unexpected answer {other:?} in an accept of many keys"
        ))),
    })
}

/// Turns an identity script reply into an [`Inspection`].
pub(super) fn parse_inspection(reply: &[String]) -> Result<Inspection, AcceptorError> {
    let [cluster, acceptor, state, mark, set, stamp, life, keys, lease] = reply else {
        return Err(AcceptorError::Protocol(format!(
            "unexpected identity reply {reply:?}"
        )));
    };
    let keys: u64 = keys
        .parse()
        .map_err(|_| AcceptorError::Protocol(format!("bad key count {keys:?}")))?;
    let lease = (!lease.is_empty()).then(|| lease.clone());
    if cluster.is_empty() {
        return Ok(Inspection {
            identity: None,
            life: life.clone(),
            data_keys: keys,
            lease,
        });
    }
    Ok(Inspection {
        identity: Some(Identity {
            cluster: cluster.clone(),
            acceptor: acceptor.clone(),
            standing: parse_standing(state)?,
            mark: mark.clone(),
            set: set.clone(),
            stamp: stamp.clone(),
        }),
        life: life.clone(),
        data_keys: keys.saturating_sub(1),
        lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_prepare_replies() {
        assert_eq!(
            parse_prepare(&strings(&["ok", "member", "3", "1", "9", "1", "v"])),
            Ok((
                PrepareReply::Promised {
                    accepted: Ballot::new(3, 1, 9),
                    value: Some("v".into())
                },
                Standing::Member
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["ok", "recovering", "0", "0", "0", "0", ""])),
            Ok((
                PrepareReply::Promised {
                    accepted: Ballot::ZERO,
                    value: None
                },
                Standing::Recovering
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["conflict", "7", "2", "1"])),
            Ok((
                PrepareReply::Conflict(Ballot::new(7, 2, 1)),
                Standing::Member
            ))
        );
        assert_eq!(
            parse_prepare(&strings(&["unmarked", "missing"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
        );
        assert!(parse_prepare(&strings(&["ok"])).is_err());
        assert!(parse_prepare(&strings(&["conflict", "x", "2", "1"])).is_err());
        assert!(parse_prepare(&strings(&["ok", "boss", "0", "0", "0", "0", ""])).is_err());
    }

    #[test]
    fn parses_read_replies() {
        assert_eq!(
            parse_read(&strings(&["ok", "member", "3", "1", "9", "1", "v"])),
            Ok((
                ReadReply {
                    accepted: Ballot::new(3, 1, 9),
                    value: Some("v".into())
                },
                Standing::Member
            ))
        );
        assert_eq!(
            parse_read(&strings(&["unmarked", "missing"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Missing))
        );
        assert!(parse_read(&strings(&["conflict", "7", "2", "1"])).is_err());
    }

    #[test]
    fn parses_accept_replies() {
        assert_eq!(
            parse_accept(&strings(&["ok", "member"])),
            Ok((AcceptReply::Accepted, Standing::Member))
        );
        assert_eq!(
            parse_accept(&strings(&["conflict", "1", "2", "3"])),
            Ok((
                AcceptReply::Conflict(Ballot::new(1, 2, 3)),
                Standing::Member
            ))
        );
        assert_eq!(
            parse_accept(&strings(&["unmarked", "foreign", "c9", "x:1"])),
            Err(AcceptorError::Unmarked(IdentityRefusal::Foreign {
                cluster: "c9".into(),
                acceptor: "x:1".into()
            }))
        );
        assert!(parse_accept(&strings(&[])).is_err());
    }
}
