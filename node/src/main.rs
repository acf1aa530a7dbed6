//! The `node` binary: loads the configuration, connects to the acceptors and serves the
//! etcd-v2-style API until SIGTERM or Ctrl-C. `node accept-loss` is the operator's command
//! for acceptors that lost their data beyond what recovery can repair (see
//! docs/design-acceptor-recovery.md).

use std::process::ExitCode;

use perseus_node::config::Settings;
use perseus_node::server;

const USAGE: &str = "usage: node [accept-loss] [--config FILE]   (or PERSEUS_CONFIG=FILE; every key also as PERSEUS_<KEY>)
  node                 serve the API
  node accept-loss     make every acceptor a member again, accepting that acknowledged writes
                       may be lost (when a majority of acceptors lost their data)";

/// What the command line asks for.
enum Command {
    Serve,
    AcceptLoss,
}

fn parse_args() -> Result<(Command, Option<String>), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        Some("accept-loss") => {
            args.remove(0);
            Command::AcceptLoss
        }
        _ => Command::Serve,
    };
    let path = match args.as_slice() {
        [] => std::env::var("PERSEUS_CONFIG").ok(),
        [flag, path] if flag == "--config" => Some(path.clone()),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        _ => return Err(USAGE.to_string()),
    };
    Ok((command, path))
}

/// `node accept-loss`: connects, rewrites the identity records, prints what it did.
async fn accept_loss(settings: &Settings) -> Result<(), String> {
    let acceptors = server::redis_acceptors(settings).map_err(|e| e.to_string())?;
    for acceptor in &acceptors {
        if !acceptor
            .wait_connected(std::time::Duration::from_secs(5))
            .await
        {
            return Err(format!(
                "acceptor {} is not reachable (or refused for durability: {}); every acceptor \
                 must be reachable",
                perseus_node::acceptor::Acceptor::name(acceptor.as_ref()),
                perseus_node::acceptor::AdminAcceptor::durability_problem(acceptor.as_ref())
                    .unwrap_or_else(|| "no".into())
            ));
        }
    }
    let acceptors: Vec<std::sync::Arc<dyn perseus_node::acceptor::AdminAcceptor>> = acceptors
        .into_iter()
        .map(|a| a as std::sync::Arc<dyn perseus_node::acceptor::AdminAcceptor>)
        .collect();
    // Catch-up ballots of their own: an incarnation no node uses.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let ballots = perseus_node::ballot::BallotSource::starting_at(
        settings.id,
        perseus_node::ballot::random_incarnation(),
        now,
    );
    let remembered = match &settings.cluster_file {
        Some(path) => perseus_node::membership::cluster_file::read(std::path::Path::new(path))
            .map_err(|e| e.to_string())?,
        None => None,
    };
    let lines = perseus_node::membership::accept_loss(
        &acceptors,
        settings.acceptor_timeout(),
        &ballots,
        remembered.as_deref(),
    )
    .await
    .map_err(|e| format!("accept-loss stopped ({e}); nothing counts meanwhile, run it again"))?;
    for line in lines {
        println!("{line}");
    }
    println!(
        "accepted the loss: every acceptor is a member and holds, for every key, the highest \
         value any of them held; nodes serve again within a second"
    );
    Ok(())
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

/// mimalloc instead of the system allocator: every request allocates (HTTP parsing, JSON,
/// acceptor replies), glibc's malloc and free were about 5 % of the node's CPU in a profile,
/// and with mimalloc the node served 1.09x the iterations at 1 connection per node and 1.16x
/// at 16 (alternating A/B, docs/results-log.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The runtime `TOKIO_WORKER_THREADS` asks for ([`perseus_model::runtime::from_env`]).
fn main() -> ExitCode {
    match perseus_model::runtime::from_env() {
        Ok(runtime) => runtime.block_on(node_main()),
        Err(e) => {
            eprintln!("node: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn node_main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (command, settings) = match parse_args().and_then(|(c, path)| {
        Ok((
            c,
            Settings::load(path.as_deref()).map_err(|e| e.to_string())?,
        ))
    }) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::AcceptLoss = command {
        return match accept_loss(&settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("node accept-loss: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let run = async {
        let app = server::app(&settings).map_err(|e| e.to_string())?;
        // Serve once a quorum of acceptors is connected (bounded: a node whose acceptors are
        // down still comes up and answers 503), so a restarted node does not greet its first
        // clients with "not connected".
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        let serving =
            |app: &perseus_node::http::App| app.membership.as_ref().is_none_or(|m| m.serving());
        while (app.proposer.reachable() < app.proposer.quorum() || !serving(&app))
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
