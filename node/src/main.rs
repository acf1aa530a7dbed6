//! The `node` binary: loads the configuration, connects to the acceptors and serves the
//! etcd-v2-style API until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use perseus_node::config::Settings;
use perseus_node::server;

const USAGE: &str =
    "usage: node [--config FILE]   (or PERSEUS_CONFIG=FILE; every key also as PERSEUS_<KEY>)";

fn config_path() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => Ok(std::env::var("PERSEUS_CONFIG").ok()),
        (Some("--config"), Some(path), None) => Ok(Some(path)),
        (Some("-h" | "--help"), None, None) => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        _ => Err(USAGE.to_string()),
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => log::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => log::info!("interrupted: shutting down"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let path = match config_path() {
        Ok(path) => path,
        Err(usage) => {
            eprintln!("node: {usage}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(path.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::from(2);
        }
    };
    let run = async {
        let app = server::app(&settings).map_err(|e| e.to_string())?;
        // Serve once a quorum of acceptors is connected (bounded: a node whose acceptors are
        // down still comes up and answers 503), so a restarted node does not greet its first
        // clients with "not connected".
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while app.proposer.reachable() < app.proposer.quorum()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let addr = settings
            .listen
            .parse()
            .map_err(|e| format!("bad configuration: field `listen`: {e}"))?;
        let (bound, server) =
            server::serve(app, addr, shutdown_signal()).map_err(|e| e.to_string())?;
        log::info!(
            "node {} listening on {bound}, acceptors {:?}, quorum {}, acceptor timeout {} ms",
            settings.id,
            settings.acceptors,
            settings.quorum(),
            settings.acceptor_timeout_ms
        );
        server.await;
        Ok::<_, String>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e}");
            ExitCode::FAILURE
        }
    }
}
