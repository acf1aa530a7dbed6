//! `watch`: a live terminal view of a load run. It starts the load generator against the
//! running testbed, follows its records and chaos's events, draws per-node and cluster
//! throughput with every fault marked, and turns keys into chaos actions on a chosen host.
//! Every action goes through the chaos binary with the run's events file, so it lands in the
//! record like a scenario's fault. On quit it offers to undo the faults still in force, stops
//! the load and writes the report (`lab report`) into the run's folder.

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
use perseus_model::{FaultKind, HostArg, HostName};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;

use crate::feed::Feed;
use crate::keys::Command as Key;
use crate::state::State;

#[derive(Parser, Debug)]
#[command(name = "watch", version, about)]
struct Cli {
    /// Node URLs for the load generator, in column order
    #[arg(
        long,
        env = "WATCH_NODES",
        default_value = "http://10.77.0.11:8080,http://10.77.0.12:8080,http://10.77.0.13:8080"
    )]
    nodes: String,
    /// Logical clients per node
    #[arg(long, default_value_t = 1)]
    connections: u32,
    /// How long the load runs at most (seconds); it stops earlier on quit
    #[arg(long, default_value_t = 3600)]
    duration: u64,
    /// The hosts the digit keys select, in order
    #[arg(long, value_delimiter = ',', default_value = "a1,a2,a3")]
    hosts: Vec<HostName>,
    /// Results folder to create for this run
    #[arg(long)]
    out: PathBuf,
    /// Directory holding loadgen, chaos and lab (default: next to this program)
    #[arg(long, env = "WATCH_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// chaos's `--target` (which cluster `leader` means)
    #[arg(long)]
    target: Option<String>,
    /// Name of the system under test, for the report
    #[arg(long, default_value = "Perseus (Gryadka/CASPaxos)")]
    system: String,
}

/// The tools and the run's folder.
struct Run {
    bin_dir: PathBuf,
    dir: PathBuf,
    target: Option<String>,
}

impl Run {
    /// Runs one chaos action in the background; its outcome arrives on `done`.
    fn chaos(&self, kind: &FaultKind, host: Option<HostArg>, done: mpsc::Sender<String>) {
        let mut cmd = Command::new(self.bin_dir.join("chaos"));
        cmd.arg("--events").arg(self.dir.join("events.jsonl"));
        if let Some(t) = &self.target {
            cmd.arg("--target").arg(t);
        }
        cmd.arg(kind.to_string());
        if let Some(h) = host {
            cmd.arg(h.to_string());
        }
        let what = format!("{kind} {}", host.map(|h| h.to_string()).unwrap_or_default());
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
        Command::new(self.bin_dir.join("loadgen"))
            .arg("--nodes")
            .arg(&cli.nodes)
            .arg("--connections")
            .arg(cli.connections.to_string())
            .arg("--duration")
            .arg(cli.duration.max(1).to_string())
            .arg("--out")
            .arg(self.dir.join("load.jsonl"))
            .arg("--allow-violations")
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
    let mut selected = cli
        .hosts
        .first()
        .map_or(HostArg::Leader, |h| HostArg::Host(*h));
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
        match keys::command(ch, &cli.hosts) {
            Key::Select(h) => {
                selected = h;
                message = format!("selected {h}");
            }
            Key::Fault(kind) => {
                message = format!("{kind} {selected} …");
                run.chaos(&kind, Some(selected), tx.clone());
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
            run.chaos(&undo, Some(HostArg::Host(host)), tx.clone());
        }
    }
    run.chaos(&FaultKind::Heal, None, tx.clone());
}

/// Stops the load (SIGTERM, so it writes its summary), waiting at most `grace`.
fn stop_load(loadgen: &mut Child, grace: Duration) {
    if matches!(loadgen.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(loadgen.id().to_string())
        .status();
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
    std::fs::write(cli.out.join("system.txt"), format!("{}\n", cli.system))?;
    let run = Run {
        bin_dir,
        dir: cli.out.clone(),
        target: cli.target.clone(),
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
        .arg(&cli.system)
        .status()
        .context("running lab report")?;
    println!("watch: the run is in {}", run.dir.display());
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
