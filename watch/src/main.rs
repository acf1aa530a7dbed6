//! `watch`: a live terminal view of a load run. It starts the load generator against the
//! running testbed, follows its records and chaos's events, draws per-node and cluster
//! throughput with every fault marked, and turns keys into chaos actions on a chosen host.
//! Every action goes through the chaos binary with the run's events file, so it lands in the
//! record like a scenario's fault. On quit it offers to undo the faults still in force, stops
//! the load and writes the report (`lab report`) into the run's folder.
//!
//! # Layout
//!
//! - This file: the command line, the loop, the load generator and chaos as processes.
//! - `feed`: follows the files the run writes; `state`: what the screen shows, built only from
//!   the records (pure); `ui`: draws it (pure); `keys`: which key does what (pure).

mod feed;
mod keys;
mod state;
mod ui;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use perseus_model::{
    ChaosCall, ChaosOptions, FaultKind, HostArg, HostName, LoadCall, System, Target,
};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;

use crate::feed::Feed;
use crate::keys::Command as Key;
use crate::state::State;

#[derive(Parser, Debug)]
#[command(name = "watch", version, about)]
struct Cli {
    /// The system under test: the load generator's client, and the defaults of --nodes,
    /// --hosts, --target and --system
    #[arg(long, env = "WATCH_STORE", default_value = "perseus")]
    store: System,
    /// Node URLs for the load generator, in column order (default: the store's hosts)
    #[arg(long, env = "WATCH_NODES")]
    nodes: Option<String>,
    /// Logical clients per node
    #[arg(long, default_value_t = 1)]
    connections: u32,
    /// How long the load runs at most (seconds); it stops earlier on quit
    #[arg(long, default_value_t = 3600)]
    duration: u64,
    /// The hosts the digit keys select, in order (default: the store's hosts)
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<HostName>,
    /// Results folder to create for this run
    #[arg(long)]
    out: PathBuf,
    /// Directory holding loadgen, chaos and lab (default: next to this program)
    #[arg(long, env = "WATCH_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// chaos's `--target` (which cluster `leader` means; default: the store, except for
    /// perseus, where chaos decides)
    #[arg(long)]
    target: Option<Target>,
    /// Name of the system under test, for the report (default: the store's title)
    #[arg(long)]
    system: Option<String>,
}

impl Cli {
    fn title(&self) -> String {
        self.system
            .clone()
            .unwrap_or_else(|| self.store.title().to_string())
    }

    fn hosts(&self) -> Vec<HostName> {
        if self.hosts.is_empty() {
            self.store.hosts().to_vec()
        } else {
            self.hosts.clone()
        }
    }
}

/// The tools and the run's folder.
struct Run {
    bin_dir: PathBuf,
    dir: PathBuf,
    /// chaos's options: the run's events file and the target.
    chaos: ChaosOptions,
}

impl Run {
    /// Runs one chaos action in the background; its outcome arrives on `done`.
    fn chaos(&self, call: ChaosCall, done: mpsc::Sender<String>) {
        let mut cmd = Command::new(self.bin_dir.join("chaos"));
        cmd.args(self.chaos.argv(&call));
        let what = format!(
            "{} {}",
            call.fault,
            call.host.map(|h| h.to_string()).unwrap_or_default()
        );
        std::thread::spawn(move || {
            let text = match cmd.stdin(Stdio::null()).output() {
                Ok(out) => {
                    let all = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let last = all.lines().last().unwrap_or("").to_string();
                    if out.status.success() {
                        format!("{what}: {last}")
                    } else {
                        format!("{what} FAILED: {last}")
                    }
                }
                Err(e) => format!("{what}: cannot run chaos: {e}"),
            };
            let _ = done.send(text);
        });
    }

    fn start_load(&self, cli: &Cli) -> Result<Child> {
        let tsv = File::create(self.dir.join("load.tsv"))?;
        let log = File::create(self.dir.join("loadgen.log"))?;
        let load = LoadCall {
            system: cli.store,
            nodes: cli.nodes.as_deref().map_or_else(
                || cli.store.nodes(),
                |n| n.split(',').map(str::to_string).collect(),
            ),
            connections: cli.connections,
            duration_secs: cli.duration,
            out: self.dir.join("load.jsonl"),
            allow_violations: true,
        };
        Command::new(self.bin_dir.join("loadgen"))
            .args(load.argv())
            .stdin(Stdio::null())
            .stdout(tsv)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin_dir.join("loadgen").display()))
    }
}

/// What the loop ended with.
struct Ending {
    heal: bool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The interactive loop: poll the files, draw, handle keys, until quit.
fn interact(
    terminal: &mut DefaultTerminal,
    cli: &Cli,
    run: &Run,
    loadgen: &mut Child,
    state: &mut State,
) -> Result<Ending> {
    let mut feed = Feed::new(&run.dir);
    let (tx, rx) = mpsc::channel::<String>();
    let hosts = cli.hosts();
    let mut selected = hosts.first().map_or(HostArg::Leader, |h| HostArg::Host(*h));
    let mut message = format!("load started into {}", run.dir.display());
    let mut asking = false;
    let mut load_done = false;
    let dir = run.dir.display().to_string();
    loop {
        let batch = feed.poll();
        state.bad_lines += batch.bad_lines;
        for r in batch.records {
            state.apply_record(r);
        }
        for e in batch.events {
            state.apply_event(e);
        }
        while let Ok(m) = rx.try_recv() {
            message = m;
        }
        if !load_done {
            if let Some(status) = loadgen.try_wait()? {
                load_done = true;
                message = format!("the load generator ended ({status}); q quits");
            }
        }
        let prompt =
            asking.then_some("Undo the faults still in force before quitting? y / n (Esc: stay)");
        terminal.draw(|f| {
            ui::draw(
                f,
                &ui::View {
                    state,
                    selected,
                    dir: &dir,
                    now_ms: now_ms(),
                    message: &message,
                    prompt,
                },
            )
        })?;
        if !event::poll(Duration::from_millis(200))? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let ch = match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => 'q',
            KeyCode::Char(c) => c,
            KeyCode::Esc => '\x1b',
            _ => continue,
        };
        if asking {
            match ch {
                'y' | 'Y' => return Ok(Ending { heal: true }),
                'n' | 'N' => return Ok(Ending { heal: false }),
                _ => asking = false,
            }
            continue;
        }
        match keys::command(ch, &hosts) {
            Key::Select(h) => {
                selected = h;
                message = format!("selected {h}");
            }
            Key::Fault(kind) => {
                message = format!("{kind} {selected} …");
                run.chaos(ChaosCall::new(kind, Some(selected)), tx.clone());
            }
            Key::HealAll => {
                message = "undoing every fault …".into();
                heal_all(run, state, &tx);
            }
            Key::Quit => {
                if state.active_faults(now_ms()).is_empty() {
                    return Ok(Ending { heal: false });
                }
                asking = true;
            }
            Key::None => {}
        }
    }
}

/// Undoes each fault in force (start a killed host, resume a paused one) and removes every
/// network rule.
fn heal_all(run: &Run, state: &State, tx: &mpsc::Sender<String>) {
    for (host, kind, _) in state.active_faults(now_ms()) {
        if let Some(undo) = kind.undo().filter(|u| *u != FaultKind::Heal) {
            run.chaos(ChaosCall::new(undo, Some(HostArg::Host(host))), tx.clone());
        }
    }
    run.chaos(ChaosCall::new(FaultKind::Heal, None), tx.clone());
}

/// Stops the load (SIGTERM, so it writes its summary), waiting at most `grace`.
fn stop_load(loadgen: &mut Child, grace: Duration) {
    if matches!(loadgen.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(loadgen.id()) {
        // SAFETY: kill(2) on the pid of our own child, which has not been waited for (so the
        // pid is still ours); it only sends a signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let begin = Instant::now();
    while begin.elapsed() < grace {
        if matches!(loadgen.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = loadgen.kill();
    let _ = loadgen.wait();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_result(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("watch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main_result(cli: &Cli) -> Result<ExitCode> {
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("locating this program")?
            .parent()
            .map(Path::to_path_buf)
            .context("locating this program's directory")?,
    };
    for tool in ["loadgen", "chaos", "lab"] {
        if !bin_dir.join(tool).is_file() {
            anyhow::bail!(
                "{} not found: build it (make binaries) or pass --bin-dir",
                bin_dir.join(tool).display()
            );
        }
    }
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    std::fs::write(cli.out.join("system.txt"), format!("{}\n", cli.title()))?;
    let run = Run {
        bin_dir,
        dir: cli.out.clone(),
        chaos: ChaosOptions {
            events: Some(cli.out.join("events.jsonl")),
            target: cli
                .target
                .or_else(|| (cli.store != System::Perseus).then_some(Target::System(cli.store))),
        },
    };
    let mut loadgen = run.start_load(cli)?;
    let mut state = State::default();
    let mut terminal = ratatui::init();
    let ending = interact(&mut terminal, cli, &run, &mut loadgen, &mut state);
    ratatui::restore();
    let ending = match ending {
        Ok(e) => e,
        Err(e) => {
            stop_load(&mut loadgen, Duration::from_secs(10));
            return Err(e);
        }
    };
    if ending.heal {
        println!("watch: undoing the faults still in force …");
        let (tx, rx) = mpsc::channel();
        heal_all(&run, &state, &tx);
        drop(tx);
        for line in rx {
            println!("  {line}");
        }
    }
    println!("watch: stopping the load …");
    stop_load(&mut loadgen, Duration::from_secs(15));
    let report = Command::new(run.bin_dir.join("lab"))
        .arg("report")
        .arg(&run.dir)
        .arg("--system")
        .arg(cli.title())
        .status()
        .context("running lab report")?;
    println!("watch: the run is in {}", run.dir.display());
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
