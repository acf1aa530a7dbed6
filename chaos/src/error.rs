//! The failures an event tells apart (`perseus_model::Failure`): a host that is not running,
//! a leader nobody agreed on, a fault this kernel cannot make. They travel inside the
//! `anyhow` chain like any error (with the same messages as before); [`failure_of`] finds
//! them when the event is recorded, and everything else is the engine's.

use perseus_model::Failure;

/// A failure worth a name of its own in the events file.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// `what` is `host a1` or a container's service (`p1`); `states` says what each is.
    #[error("{what} is not running ({states})")]
    NotRunning { what: String, states: String },
    #[error("{0}")]
    NoLeader(String),
    /// The kernel lacks what the fault needs (a qdisc's module).
    #[error("{0}")]
    Unsupported(String),
}

impl ChaosError {
    /// A host (`host a1`) or a container that is not running.
    pub fn not_running(what: impl std::fmt::Display, states: String) -> ChaosError {
        ChaosError::NotRunning {
            what: what.to_string(),
            states,
        }
    }
}

/// What kind of failure an error is, for the event.
pub fn failure_of(e: &anyhow::Error) -> Failure {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<ChaosError>())
        .map_or(Failure::Engine, |c| match c {
            ChaosError::NotRunning { .. } => Failure::NotRunning,
            ChaosError::NoLeader(_) => Failure::NoLeader,
            ChaosError::Unsupported(_) => Failure::Unsupported,
        })
}

/// The outcome an event records: the detail, or the failure and the whole error chain.
pub fn outcome(result: anyhow::Result<String>) -> Result<String, (Failure, String)> {
    result.map_err(|e| (failure_of(&e), format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn finds_the_failure_through_the_context() {
        let e: anyhow::Result<()> =
            Err(ChaosError::not_running("host a1", "a1=exited".into()).into());
        let e = e.context("killing a1").unwrap_err();
        assert_eq!(failure_of(&e), Failure::NotRunning);
        assert_eq!(
            format!("{e:#}"),
            "killing a1: host a1 is not running (a1=exited)"
        );
        assert_eq!(
            failure_of(&anyhow::anyhow!("bollard said no")),
            Failure::Engine
        );
        let r = outcome(Err(ChaosError::Unsupported("no netem".into()).into()));
        assert_eq!(r, Err((Failure::Unsupported, "no netem".into())));
    }
}
