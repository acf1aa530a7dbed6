//! `chaos`: the faults of the Perseus testbed through the Docker Engine API.
//!
//! `chaos [--project perseus] [--target auto|SYSTEM] [--events FILE] [--wait SECS]
//! [--layer host|acceptor|node] [--scope peers|all] COMMAND [HOST] [PARAMS]` with HOST a host
//! of any system (a1..a3, e1..e3, z1..z3, ...) or `leader` (all hosts of the target when
//! omitted), and COMMAND a fault kind (`chaos --help` lists them, from
//! `perseus_model::fault::KINDS`), `status`, `health` or `describe`. A Perseus host is the
//! Redis acceptor `aN` with the node `pN` in its network namespace (`--layer` picks one of
//! them), another system's host its server container; containers are found through their
//! Compose labels. `leader` is resolved before acting (see leader.rs) and events name the
//! resolved host. docs/faults.md describes every fault at the iptables/tc level.
//!
//! # Layout
//!
//! - `cli`: the command line, parsed into a `perseus_model::ChaosCall` or a look.
//! - `nemesis`: how each kind is done to a host (the kind × layer table), how it is seen and
//!   healed, the partition of a whole system, and the recording of one event per host.
//! - `status`: what each host is now (`perseus_model::HostStatus`), as the status table, JSON
//!   lines or one field.
//! - The mechanisms: `fault` (containers: kill, start, pause), `layer` (a Perseus host's
//!   acceptor alone), `isolate` and `netfault` (iptables chains and tc qdiscs in the host's
//!   namespace), `delay` (per-peer delays through a delayer on netfilter queues), `clock`
//!   (wall clocks shifted with libfaketime), `storage` (amnesia, wipe, snapshot, rollback and
//!   truncate of a host's data directory and log), `netns` (the shared namespace).
//! - Finding things: `engines` (which Docker engine runs each host), `host` (a host's
//!   containers), `docker` (the Engine API calls), `probe` (health from outside),
//!   `leader` (who leads, per system).
//! - `events` (the record) and `error` (the failures an event names).

mod cli;
mod clock;
mod delay;
mod docker;
mod engines;
mod error;
mod events;
mod fault;
mod host;
mod isolate;
mod layer;
mod leader;
mod machine;
mod nemesis;
mod netfault;
mod netns;
mod probe;
mod retask;
mod status;
mod storage;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;

use cli::{Args, Request};
use events::Recorder;
use host::{Cluster, HostArg, System, Target};

/// The exit code of a fault the kernel cannot make (a qdisc's module missing), so that a
/// script tells it from other failures without reading the message.
const EXIT_UNSUPPORTED: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let recorder = Recorder::new(args.events.as_deref());
    match run(&args, &recorder).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if recorder.only_unsupported() => ExitCode::from(EXIT_UNSUPPORTED),
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the request; Ok(false) if any action failed.
async fn run(args: &Args, recorder: &Recorder) -> Result<bool> {
    // Bad input changes nothing: check the operands before touching the engine.
    let (health, host) = match args.request()? {
        Request::Describe => {
            let system = match args.target {
                Target::System(s) => s,
                Target::Auto => System::Perseus,
            };
            print!("{}", perseus_model::system::describe(system));
            return Ok(true);
        }
        Request::Systems => {
            for system in System::ALL {
                println!("{system}");
            }
            return Ok(true);
        }
        Request::Fault(call) => {
            let cluster = connect(args).await?;
            return nemesis::run(&cluster, &call, &options(args), recorder).await;
        }
        Request::Status(host) => (false, host),
        Request::Health(host) => (true, host),
    };
    let cluster = connect(args).await?;
    let targets = match host {
        Some(HostArg::Host(h)) => vec![h],
        Some(HostArg::Leader) => bail!("status and health take a host, not leader"),
        None => nemesis::every_host(&cluster, args.target),
    };
    if targets.is_empty() {
        bail!(
            "project {:?} has no hosts of any system (for --target {})",
            args.project,
            args.target
        );
    }
    if health {
        nemesis::wait_healthy(&cluster, &targets, Duration::from_secs(args.wait)).await?;
        return Ok(true);
    }
    let output = match (&args.get, args.json) {
        (Some(field), _) => status::Output::Field(field.clone()),
        (None, true) => status::Output::Json,
        (None, false) => status::Output::Table,
    };
    status::status(&cluster, &targets, &output).await
}

/// The project's hosts on their engines.
async fn connect(args: &Args) -> Result<Cluster> {
    let engines = engines::load(args.hosts_file.as_deref())?;
    Cluster::load(&engines, &args.project).await
}

fn options(args: &Args) -> nemesis::Options {
    nemesis::Options {
        target: args.target,
        wait: Duration::from_secs(args.wait),
        leader_wait: Duration::from_secs(args.leader_wait),
    }
}
