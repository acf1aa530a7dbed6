//! `lab`: Perseus experiments. Runs scenario files and random soaks against the running
//! testbed through the loadgen and chaos binaries, and turns the recorded data into a report
//! (`report.md`, and `report.html` for a browser) and plots (`throughput.png`, `latency.png`).
//!
//! # Layout
//!
//! - `cli`: the command line; this file carries each command out.
//! - Running: `scenario` (scenario files and their steps), `soak` (random faults, seeded),
//!   `plan` (a matrix's runs), `runner` (the load generator and chaos as processes),
//!   `progress` (the bar on a terminal).
//! - Reading a run: `data` (the recorded files), `analysis` (fault windows and stretches
//!   without successes), `measures` (the six measures), `impact` (what each fault did),
//!   `spans`, `history` (the history checker's verdict and exports).
//! - Judging it: `check` (the `[[expect]]` checkers, one file each).
//! - Writing it up: `report` (report.md), `html` (report.html), `plot` (the pictures),
//!   `palette` (their colours, one table for both),
//!   `browser` (report.html in headless Chromium).
//! - Asking a node, for the check scripts: `node_api` (`lab kv`, `lab metrics`).
//! - Several runs: `compare`, `matrix`, `storage` (the storage faults' table), `figures`
//!   (what their summaries carry), `results` (docs/results.md), `bench` (make bench's table
//!   and its counting).

mod analysis;
mod bench;
mod browser;
mod check;
mod cli;
mod compare;
mod data;
mod figures;
mod history;
mod html;
mod impact;
mod matrix;
mod measures;
mod node_api;
mod palette;
mod plan;
mod plot;
mod progress;
mod report;
mod results;
mod runner;
mod scenario;
mod soak;
mod spans;
mod storage;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Cmd, Tools};

/// The system's settings as `chaos describe` prints them, kept in a run's folder.
const SYSTEM_SETTINGS_FILE: &str = "system-settings.txt";

fn setup(tools: &Tools) -> Result<runner::Setup> {
    let bin_dir = match &tools.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("locating this program")?
            .parent()
            .map(Path::to_path_buf)
            .context("locating this program's directory")?,
    };
    let store = tools.store();
    let register = tools.workload.trim() == "register";
    let mut loadgen_args = vec!["--workload".to_string(), tools.workload.trim().to_string()];
    if let Some(c) = tools.control {
        loadgen_args.extend(c.loadgen_args().iter().map(|a| a.to_string()));
    }
    Ok(runner::Setup {
        loadgen: bin_dir.join("loadgen"),
        chaos: bin_dir.join("chaos"),
        nodes: tools.nodes.as_deref().map_or_else(
            || store.nodes(),
            |n| n.split(',').map(str::to_string).collect(),
        ),
        store,
        // the register workload races many clients on a few keys: 4 per node at least
        connections: if register {
            tools.connections.max(4)
        } else {
            tools.connections
        },
        target: tools.target.or_else(|| {
            (store != perseus_model::System::Perseus)
                .then_some(perseus_model::Target::System(store))
        }),
        loadgen_args,
        label: tools
            .progress_label
            .clone()
            .unwrap_or_else(|| tools.control.map_or(store.name(), |c| c.name()).to_string()),
    })
}

/// Writes report.md and the plots; returns the number of violations and whether the
/// scenario's expectations (if one is given) all held. With a scenario, report.md also says
/// what the scenario shows and why (its `explain`), with the violations the checker found,
/// and ends with the verdict of every expectation, so the figures come from one report.
fn report(
    dir: &Path,
    system: &str,
    promise: Option<perseus_model::Consistency>,
    scenario: Option<&scenario::Scenario>,
) -> Result<(u64, bool)> {
    let mut run = data::Run::load(dir)?;
    run.promise = promise;
    let reports = impact::analyse(&run);
    let title = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".into());
    let mut text = report::markdown(&title, system, &run, &reports);
    let violations = run.violation_count();
    let mut held = true;
    let mut notes: Vec<(String, String)> = Vec::new();
    if let Some(explain) = scenario.and_then(|s| s.explain.as_deref()) {
        let found = match violations {
            0 => "no consistency violation (no lost write, stale read or unexpected value)"
                .to_string(),
            n => format!("{n} consistency violations (listed in load.jsonl, counted in load.tsv)"),
        };
        let section = format!(
            "## What this run shows\n\nThe load generator's checker found {found} on {system}.\n\n{explain}\n\n"
        );
        // Right under the title and the run's one-line summary.
        let at = text
            .match_indices("\n\n")
            .nth(1)
            .map_or(text.len(), |(i, _)| i + 2);
        text.insert_str(at, &section);
        notes.push((
            "What this run shows".into(),
            format!("The load generator's checker found {found} on {system}.\n\n{explain}"),
        ));
    }
    if let Some(s) = scenario.filter(|s| !s.expect.is_empty()) {
        let (ok, verdicts) = check::report(&run, &s.expect);
        held = ok;
        text.push_str(&format!("## Checks\n\n```\n{verdicts}```\n"));
        notes.push(("Checks".into(), verdicts));
    }
    if let Ok(settings) = std::fs::read_to_string(dir.join(SYSTEM_SETTINGS_FILE)) {
        notes.push(("The system".into(), settings));
    }
    if let Ok(steps) = std::fs::read_to_string(dir.join("scenario.txt")) {
        notes.push(("Scenario".into(), steps));
    }
    std::fs::write(dir.join("report.md"), &text)?;
    let page = html::Page {
        title: &title,
        system,
        notes,
    };
    std::fs::write(dir.join("report.html"), html::page(&page, &run, &reports))?;
    println!("{text}");
    // The numbers stand without the pictures: a missing font is a warning, not a failure.
    match plot::draw(dir, &title, &run) {
        Ok(()) => println!(
            "# wrote {0}/report.md, {0}/report.html, {0}/throughput.png, {0}/latency.png",
            dir.display()
        ),
        Err(e) => {
            eprintln!("lab: plots not drawn: {e:#}");
            println!(
                "# wrote {0}/report.md, {0}/report.html (no plots)",
                dir.display()
            );
        }
    }
    Ok((violations, held))
}

/// `lab check`: the table, then one verdict line per expectation.
/// `lab bench-costs`: the counters now, the costs since BEFORE into OUT, the level's figures.
fn bench_costs(
    system: &str,
    before: &Path,
    wall_ns: u64,
    loadgen_log: Option<&Path>,
    run: Option<&Path>,
    out: &Path,
) -> Result<bool> {
    let after = bench::Counters::read(system)?;
    let before = bench::Counters::load(before)?;
    let log = match loadgen_log {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let costs = bench::costs(system, &before, &after, wall_ns, log.as_deref());
    std::fs::write(out, costs).with_context(|| format!("writing {}", out.display()))?;
    if let Some(run) = run {
        let level = bench::Level::load(&run.to_path_buf())?;
        let s = &level.summary;
        let ms =
            |us: Option<u64>| us.map_or("–".into(), |us| format!("{:.2}", us as f64 / 1000.0));
        println!(
            "{system}, {} connection(s) per node: {} iterations ({:.0}/s), p50 {} ms, p99 {} ms, {} error(s), {} violation(s)",
            level.start.connections,
            s.iterations,
            s.mean_per_s,
            ms(s.latency_us.p50),
            ms(s.latency_us.p99),
            s.errors.values().sum::<u64>(),
            s.violations
        );
    }
    Ok(true)
}

/// `lab summary`: `LABEL sent=… answered_5xx=… share_5xx_pct=… errors=KIND:N,…|none
/// [keys=… acknowledged=… … unknown_pct=…] violations=…`.
fn summary_line(label: &str, s: &perseus_model::load::Summary) -> String {
    let r = &s.requests;
    let mut line = format!(
        "{label} sent={} answered_5xx={} share_5xx_pct={:.2}",
        r.sent, r.answered_5xx, r.share_5xx_pct
    );
    let errors: Vec<String> = s
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind}:{n}"))
        .collect();
    line.push_str(&format!(
        " errors={}",
        if errors.is_empty() {
            "none".to_string()
        } else {
            errors.join(",")
        }
    ));
    if let Some(c) = &s.contention {
        let t = &c.total;
        line.push_str(&format!(
            " keys={} increments_sent={} acknowledged={} rejected={} unknown={} \
             failed_but_applied={} final_value={} creates_acknowledged={}",
            s.keys,
            t.increments_sent,
            t.acknowledged,
            t.rejected,
            t.unknown,
            t.failed_but_applied,
            t.final_value.map_or("-".into(), |v| v.to_string()),
            t.creates_acknowledged
        ));
        if t.increments_sent > 0 {
            let share = 100.0 * t.unknown as f64 / t.increments_sent as f64;
            line.push_str(&format!(" unknown_pct={share:.3}"));
        }
    }
    line.push_str(&format!(" violations={}", s.violations));
    line.trim_start().to_string()
}

fn check_dir(dir: &Path, expect: &[String], no_table: bool) -> Result<bool> {
    // A misspelt expectation is refused before the run is read.
    let mut expectations = Vec::new();
    for arg in expect {
        expectations.extend(check::Expectations::from_arg(arg)?);
    }
    if expectations.is_empty() {
        expectations.push(check::Expect::NoViolations(check::NoViolations {}));
    }
    let run = data::Run::load(dir)?;
    if !no_table {
        print!("{}", check::table(&run));
    }
    let (ok, text) = check::report(&run, &expectations);
    print!("{text}");
    Ok(ok)
}

fn run_and_report(tools: &Tools, scenario: &scenario::Scenario, out: &Path) -> Result<bool> {
    let outcome = runner::run(&setup(tools)?, scenario, out)?;
    std::fs::write(
        out.join(compare::SYSTEM_FILE),
        format!("{}\n", tools.title()),
    )?;
    // What the report shows of the system's settings: its hosts, image, services, endpoints
    // and what its reads promise.
    std::fs::write(
        out.join(SYSTEM_SETTINGS_FILE),
        perseus_model::system::describe(tools.store()),
    )?;
    if let Some(c) = tools.control {
        std::fs::write(out.join(history::CONTROL_FILE), format!("{}\n", c.name()))?;
    }
    let promise = tools.store().consistency();
    let history_ok = match history::check_and_export(out, tools.search_budget)? {
        Some((h, secs)) => {
            let (line, ok) = history::verdict_line(&h, tools.control, Some(promise));
            println!("# history ({secs:.1} s): {line}");
            ok
        }
        None => {
            eprintln!("lab: the run wrote no {}", history::HISTORY_FILE);
            false
        }
    };
    let (violations, held) = report(out, &tools.title(), Some(promise), Some(scenario))?;
    if tools.control.is_some() {
        // a control passes when the history checker catches it; the online checker's
        // violations are what it should find
        return Ok(history_ok && outcome.failed_steps.is_empty());
    }
    let mut ok = held && history_ok;
    // A scenario that judges violations against the system's promise (the smoke: Sentinel may
    // lose writes on a failover) has its verdict in `held`; every other run fails on any.
    let judged_by_promise = scenario
        .expect
        .contains(&check::Expect::NoViolationsBeyondPromise(
            check::BeyondPromise {},
        ));
    if violations > 0 {
        eprintln!(
            "lab: {violations} consistency violations (see {}/load.tsv{})",
            out.display(),
            if judged_by_promise {
                "; judged against the system's promise in the checks"
            } else {
                ""
            }
        );
        ok &= judged_by_promise;
    }
    if !outcome.failed_steps.is_empty() {
        eprintln!(
            "lab: chaos steps failed: {}",
            outcome.failed_steps.join(", ")
        );
        ok = false;
    }
    if outcome.loadgen_exit != Some(0) {
        eprintln!(
            "lab: the load generator exited with {:?}",
            outcome.loadgen_exit
        );
        ok = false;
    }
    Ok(ok)
}

/// The seeded random soak over the fault mix.
fn soak(
    duration: u64,
    seed: u64,
    hosts: &[perseus_model::HostName],
    mix: Option<&str>,
    out: &Path,
    tools: &Tools,
) -> Result<bool> {
    let aimed = tools.aimed().hosts();
    let hosts = if hosts.is_empty() { &aimed[..] } else { hosts };
    if let Some(h) = hosts.iter().find(|h| !aimed.contains(h)) {
        anyhow::bail!(
            "--hosts: {h} is not a host of {} (pick --store or --target)",
            tools.aimed()
        );
    }
    let mut mix = match mix {
        Some(text) => soak::parse_mix(text)?,
        None => soak::default_mix(),
    };
    let is_delay = |d: &soak::Draw| d.name() == "delay";
    let wants_delay = mix.iter().any(|(d, w)| is_delay(d) && *w > 0);
    if let (true, Some(&probe_host)) = (wants_delay, hosts.first()) {
        if !runner::kernel_has_netem(&setup(tools)?, probe_host)? {
            println!(
                "# soak: delay left out of the mix: this kernel has no sch_netem (docs/faults.md)"
            );
            mix.retain(|(d, _)| !is_delay(d));
        }
    }
    let scenario = soak::random(Duration::from_secs(duration), hosts, seed, &mix);
    let drawn: Vec<String> = mix
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(k, w)| format!("{}={w}", k.name()))
        .collect();
    println!(
        "# soak: {} s, seed {seed}, {} fault steps on {}, mix {}",
        duration,
        scenario.steps.len(),
        hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        drawn.join(",")
    );
    run_and_report(tools, &scenario, out)
}

/// A reader that stops early (`lab matrix | head`) closes the pipe: end quietly, as other
/// command-line tools do, instead of panicking in `println!` on the write error. Rust starts
/// programs with SIGPIPE ignored; this puts back the default.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: called first in main, before any thread starts; setting a signal's disposition
    // to SIG_DFL has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run {
            scenario,
            out,
            tools,
        } => scenario::Scenario::load(&scenario)
            .and_then(|s| {
                s.check_hosts(tools.aimed())
                    .with_context(|| format!("scenario {}", scenario.display()))?;
                Ok(s)
            })
            .and_then(|s| run_and_report(&tools, &s, &out)),
        Cmd::Soak {
            duration,
            seed,
            hosts,
            mix,
            out,
            tools,
        } => soak(duration, seed, &hosts, mix.as_deref(), &out, &tools),
        Cmd::Report { dir, system } => report(&dir, &system, None, None).map(|(v, _)| v == 0),
        Cmd::CheckHistory {
            dir,
            budget,
            control,
            system,
        } => history::check_cmd(&dir, budget, control, system.map(|s| s.consistency())),
        Cmd::BenchChecker { ops, dir } => history::bench(ops, dir),
        Cmd::Check {
            dir,
            expect,
            no_table,
        } => check_dir(&dir, &expect, no_table),
        Cmd::WaitStart { file, timeout } => {
            runner::wait_for_start_record(&file, Duration::from_secs(timeout), || Ok(())).map(
                |start| {
                    println!("{}", start.unix_ms);
                    true
                },
            )
        }
        Cmd::Bench { files } => files
            .iter()
            .map(bench::Level::load)
            .collect::<Result<Vec<_>>>()
            .and_then(|levels| {
                print!("{}", bench::table(&levels));
                // The summary `lab results` reads, in the bench's folder.
                if let Some(dir) = files.first().and_then(|f| f.parent()) {
                    results::write_summary(dir, &results::Summary::Bench(bench::summary(&levels)))?;
                }
                Ok(true)
            }),
        Cmd::BenchCounters { system, out } => bench::Counters::read(&system).and_then(|c| {
            std::fs::write(&out, serde_json::to_string(&c)?)
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(true)
        }),
        Cmd::BenchCosts {
            system,
            before,
            wall_ns,
            loadgen_log,
            run,
            out,
        } => bench_costs(&system, &before, wall_ns, loadgen_log.as_deref(), run.as_deref(), &out),
        Cmd::Summary { file, label } => bench::Level::load(&file).map(|level| {
            println!("{}", summary_line(&label, &level.summary));
            true
        }),
        Cmd::Kv {
            op,
            node,
            key,
            value,
        } => node_api::key_request(&node, op, &key, value.as_deref())
            .map(|reply| {
                println!("{}", reply.line());
                true
            })
            .map_err(Into::into),
        Cmd::Metrics { name, nodes, by } => {
            let (sums, silent) = node_api::metric_sums(&nodes, &name, by.as_deref());
            for s in silent {
                eprintln!("lab metrics: {s}: counted nothing");
            }
            let number = |v: f64| if v.fract() == 0.0 { format!("{v:.0}") } else { v.to_string() };
            let line: Vec<String> = match by {
                Some(_) => sums.iter().map(|(k, v)| format!("{k}={}", number(*v))).collect(),
                None => vec![number(sums.values().sum())],
            };
            println!("{}", line.join(" "));
            Ok(true)
        }
        Cmd::Compare { dirs, out } => compare::run(&dirs, out.as_deref()),
        Cmd::Matrix { dir } => matrix::run(&dir),
        Cmd::Results {
            results: from,
            data,
            out,
        } => results::run(&from, &data, &out).map(|()| true),
        Cmd::Progress {
            feed,
            total,
            label,
            per_step,
        } => progress::follow_feed(&feed, total, &label, per_step.map(Duration::from_secs))
            .map(|_| true)
            .with_context(|| format!("following {}", feed.display())),
        Cmd::BrowserCheck { dir } => browser::check(&dir)
            .map(|checked| {
                println!(
                    "# browser check: {}/report.html renders ({} charts drawn, no console error); screenshot {}",
                    dir.display(),
                    checked.charts,
                    checked.screenshot.display()
                );
                true
            })
            .map_err(anyhow::Error::from),
        Cmd::Storage { dirs, out } => storage::run(&dirs, out.as_deref()).map(|()| true),
        Cmd::MatrixPlan {
            dir,
            systems,
            faults,
            runs,
            seed,
            hold,
            after,
            at_min,
            spread,
        } => (|| {
            if runs == 0 {
                anyhow::bail!("RUNS must be at least 1");
            }
            let settings = plan::Settings {
                systems: plan::parse_systems(&systems)?,
                faults: plan::parse_faults(&faults)?,
                runs,
                seed,
                hold: hold.0,
                after: after.0,
                at_min: at_min.0,
                spread: spread.0,
            };
            let planned = plan::plan(&settings);
            plan::write(&dir, &planned)?;
            println!("{}", dir.join("plan.tsv").display());
            Ok(true)
        })(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::from(2)
        }
    }
}
