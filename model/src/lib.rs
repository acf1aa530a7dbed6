//! The vocabulary the Perseus tools share, defined once: the fault kinds chaos acts out and
//! lab schedules ([`FaultKind`]), a node's `/health` body ([`Health`]), the hosts and systems
//! of the testbed ([`HostName`], [`System`]), the chaos event record ([`ChaosEvent`]), and the load generator's records
//! ([`load::Record`]: start, second, bucket, violation, summary, and the per-operation record).
//! chaos and loadgen write these types, lab reads them back; nobody passes fault names or JSON
//! objects around as untyped strings.
//!
//! The serialized forms are the files the tools have always written (JSON lines with a
//! `type` field, the events file, the `second cluster n1 n2 n3` table), so recorded runs keep
//! parsing.

pub mod control;
pub mod event;
pub mod fault;
pub mod health;
pub mod host;
pub mod load;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod system;
pub mod time;

pub use control::{Control, ParseControlError};
pub use event::ChaosEvent;
pub use fault::{FaultKind, ParseFaultError};
pub use health::{AcceptorState, Health, MembershipView, Verdict};
pub use host::{HostArg, HostName, ParseHostError, System};
pub use load::{ErrorKind, Op, Violation, ViolationKind};
pub use system::{Consistency, HealthCheck, Leadership, ParseSystemError};
