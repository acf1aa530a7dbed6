//! `loadgen` binary: parses flags (clap, also from `LOADGEN_*` environment variables), stops on
//! SIGINT/SIGTERM, runs [`loadgen::run`] and exits 0, 1 (violations) or 2 (bad usage).

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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let cfg = match Config::try_from(cli) {
        Ok(c) => c,
        Err(msg) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit(),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let res = rt.block_on(loadgen::run(
        cfg,
        Box::new(std::io::stdout()),
        shutdown_signal(),
    ));
    match res {
        Ok(r) => ExitCode::from(r.exit_code as u8),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
