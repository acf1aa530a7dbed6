//! The vocabulary the Perseus tools share, defined once.
//!
//! # Layout
//!
//! - [`fault`]: the fault kinds chaos acts out and lab schedules ([`FaultKind`]), with one
//!   table ([`fault::KINDS`]) of everything about each kind; [`params`] the typed values
//!   around them ([`Layer`], [`Scope`], [`Rate`]); [`partition`] the partition shapes and
//!   the grudges they lay over a system; [`span`] spans of time as people write them;
//!   [`timefault`] the parameters of the per-link delays and the clock faults.
//! - [`call`]: how lab and watch ask chaos ([`ChaosCall`]) and loadgen ([`LoadCall`]) to act.
//! - [`event`]: the record of one chaos action ([`ChaosEvent`], with a typed [`Failure`]).
//! - [`system`] and [`host`]: the systems under test and their hosts ([`System`],
//!   [`HostName`], [`HostArg`]).
//! - [`health`]: a node's `/health` body ([`Health`]); [`status`]: one host as `chaos status`
//!   sees it ([`HostStatus`]); [`load`]: the load generator's records
//!   ([`load::Record`]: start, second, bucket, violation, summary, and the per-operation
//!   record); [`time`]: instants as every record writes them.
//!
//! chaos and loadgen write these types, lab and watch read them back; nobody passes fault
//! names or JSON objects around as untyped strings. The serialized forms are the files the
//! tools have always written (JSON lines with a `type` field, the events file, the
//! `second cluster n1 n2 n3` table), so recorded runs keep parsing.

pub mod call;
pub mod control;
pub mod event;
pub mod fault;
pub mod health;
pub mod host;
pub mod load;
pub mod params;
pub mod partition;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod span;
pub mod status;
pub mod system;
pub mod time;
pub mod timefault;

pub use call::{ChaosCall, ChaosOptions, LoadCall, Target};
pub use control::{Control, ParseControlError};
pub use event::{ChaosEvent, Failure};
pub use fault::{FaultKind, ParseFaultError};
pub use health::{AcceptorState, Health, MembershipView, Verdict};
pub use host::{HostArg, HostName, ParseHostError, System};
pub use load::{ErrorKind, Op, Violation, ViolationKind};
pub use params::{Layer, Rate, Scope};
pub use partition::Shape;
pub use span::Span;
pub use status::{HostStatus, Netns};
pub use system::{Consistency, HealthCheck, Leadership, ParseSystemError};
pub use timefault::{ClockShift, Links};
