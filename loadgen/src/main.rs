//! `loadgen` binary: parses flags (clap, also from `LOADGEN_*` environment variables), stops on
//! SIGINT/SIGTERM, runs [`loadgen::run`] and exits 0, 1 (violations) or 2 (bad usage). Its last
//! line, `# cpu ms=…`, is the CPU the process used (`make bench` reads it: the client's
//! container is gone when it exits, and sampling its cgroup while it ran cost CPU itself).

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use loadgen::config::{Cli, Config};

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                log::warn!("cannot listen for SIGINT: {e}");
                std::future::pending::<()>().await
            }
        }
        _ = term => {}
    }
}

/// mimalloc instead of the system allocator, as for the node: every request allocates, and
/// the load generator's CPU is taken from the same two cores as the system it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The CPU time this process has used so far (user + system, all threads), from
/// `/proc/self/stat`; `None` where that file is unreadable (not Linux).
fn cpu_used() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing ')' are
    // state (3), ..., utime (14), stime (15), in clock ticks.
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc reports ticks of USER_HZ, 100 per second on Linux whatever the kernel's HZ.
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let cfg = match Config::try_from(cli) {
        Ok(c) => c,
        Err(msg) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit(),
    };
    // The same runtime as the nodes' for the same TOKIO_WORKER_THREADS.
    let rt = match perseus_model::runtime::from_env() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.compare_replicas_only {
        return match rt.block_on(loadgen::compare_replicas_only(&cfg, &mut std::io::stdout())) {
            Some(0) => ExitCode::SUCCESS,
            Some(_) => ExitCode::from(1),
            None => ExitCode::from(2),
        };
    }
    let res = rt.block_on(loadgen::run(
        cfg,
        Box::new(std::io::stdout()),
        shutdown_signal(),
    ));
    if let Some(cpu) = cpu_used() {
        println!("# cpu ms={}", cpu.as_millis());
    }
    match res {
        Ok(r) => ExitCode::from(r.exit_code as u8),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
