//! The run's operation history in lab: `lab check-history` (and every `lab run`) checks a
//! results folder's `history.jsonl`, writes the verdict (`history-check.json`) and the
//! exports for Jepsen (`history.edn`) and Porcupine (`history.porcupine.json`) beside it, and
//! says it in the report, with each control's verdict. `lab bench-checker` measures the
//! checker on generated histories.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use perseus_history::check::ViolationKind;
use perseus_history::{
    check_file, export, CheckOptions, Event, EventKind, Func, HistoryWriter, Report, Verdict,
};
use perseus_model::{Consistency, Control};

pub const HISTORY_FILE: &str = "history.jsonl";
pub const CHECK_FILE: &str = "history-check.json";
pub const EDN_FILE: &str = "history.edn";
pub const PORCUPINE_FILE: &str = "history.porcupine.json";

/// Checks `dir/history.jsonl`, writes the verdict and both exports; `None` without a history.
pub fn check_and_export(dir: &Path, budget: u64) -> Result<Option<(Report, f64)>> {
    let path = dir.join(HISTORY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let t = Instant::now();
    let opts = CheckOptions {
        search_budget: budget,
        ..CheckOptions::default()
    };
    let report = check_file(&path, opts).with_context(|| format!("checking {}", path.display()))?;
    let secs = t.elapsed().as_secs_f64();
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(dir.join(CHECK_FILE), json + "\n")?;
    for (name, edn) in [(EDN_FILE, true), (PORCUPINE_FILE, false)] {
        let input = BufReader::new(File::open(&path)?);
        let out = BufWriter::new(File::create(dir.join(name))?);
        if edn {
            export::edn(input, out)?;
        } else {
            export::porcupine(input, out)?;
        }
    }
    Ok(Some((report, secs)))
}

/// Reads a folder's `history-check.json`, if it has one.
pub fn load_check(dir: &Path) -> Option<Report> {
    let text = std::fs::read_to_string(dir.join(CHECK_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Reads the control a run was of (`control.txt`, written by `lab run --control`).
pub fn load_control(dir: &Path) -> Option<Control> {
    std::fs::read_to_string(dir.join(CONTROL_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub const CONTROL_FILE: &str = "control.txt";

/// The verdict in one line, judged against the control (it must be caught) or the system's
/// promise; and whether the run passes (a control passes when caught).
pub fn verdict_line(
    report: &Report,
    control: Option<Control>,
    promise: Option<Consistency>,
) -> (String, bool) {
    let found = report.line();
    if let Some(c) = control {
        let caught = report.verdict == Verdict::NotLinearizable;
        let tail = match (caught, c.allowed_by_promise()) {
            (true, true) => "caught: flagged not linearizable, and allowed under the system's \
                             own promise (sequential consistency)"
                .to_string(),
            (true, false) => "caught".to_string(),
            (false, _) => "NOT caught: no violation found in this run (did the fault produce \
                           the anomaly?)"
                .to_string(),
        };
        return (
            format!(
                "control {}: expected {}; found {found} → {tail}",
                c.name(),
                c.expectation()
            ),
            caught,
        );
    }
    match (report.verdict, promise) {
        (Verdict::Linearizable, _) => (format!("passed: {found}"), true),
        (Verdict::Undecided, _) => (format!("undecided (not passed): {found}"), true),
        (Verdict::NotLinearizable, Some(Consistency::Sequential)) => (
            format!("{found} — allowed under the system's promise (sequential consistency)"),
            true,
        ),
        (Verdict::NotLinearizable, Some(Consistency::LinearizableUntilFailover))
            if report
                .violations
                .iter()
                .all(|v| v.kind != ViolationKind::PhantomRead) =>
        {
            (
                format!("{found} — the loss a failover may cause under the system's promise"),
                true,
            )
        }
        (Verdict::NotLinearizable, _) => (format!("FAILED: {found}"), false),
    }
}

/// The report's section on the history.
pub fn markdown(report: &Report, control: Option<Control>, promise: Option<Consistency>) -> String {
    let (line, _) = verdict_line(report, control, promise);
    let mut out = format!(
        "## History check\n\n`{HISTORY_FILE}`: every operation's invocation and completion, \
         checked key by key (version chain where every write is a compare-and-set on a \
         version, the linearizability search where there are blind writes); exported for \
         Jepsen as `{EDN_FILE}` and for Porcupine as `{PORCUPINE_FILE}`; the verdict in \
         `{CHECK_FILE}`.\n\n**{line}**\n\n"
    );
    if !report.violations.is_empty() {
        out.push_str(&format!(
            "Violations ({} in all; the first {} with the smallest sub-history that shows each, \
             times in ms since the start):\n\n",
            report.violations_total,
            report.violations.len().min(10)
        ));
        for (i, v) in report.violations.iter().take(10).enumerate() {
            out.push_str(&format!(
                "{}. `{}` {}: {}\n",
                i + 1,
                v.key,
                v.kind.as_str(),
                v.message
            ));
            for op in v.ops.iter().take(12) {
                out.push_str(&format!("   - {}\n", op.describe()));
            }
            if v.ops.len() > 12 {
                out.push_str(&format!("   - … {} more\n", v.ops.len() - 12));
            }
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------- the benchmark

/// A small deterministic generator for the benchmark's histories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes a counter-loop history of `ops` operations: `clients` clients, each on its key,
/// read → compare-and-set, with a timeout (unknown outcome) every 1000th write.
fn counter_history(path: &Path, ops: u64, clients: u64) -> Result<()> {
    let mut w = HistoryWriter::new(BufWriter::with_capacity(1 << 20, File::create(path)?));
    let mut rng = Rng(0x5eed);
    // per client: (process, time, value, version)
    let mut state: Vec<(u64, u64, i64, u64)> = (0..clients).map(|c| (c, 0, 0, 0)).collect();
    let mut next_process = clients;
    let mut version = 0u64;
    let mut done = 0u64;
    while done < ops {
        for (c, s) in state.iter_mut().enumerate() {
            if done >= ops {
                break;
            }
            let key = format!("bench-n{}-c{}", c % 3 + 1, c / 3);
            let (p, t) = (s.0, s.1);
            // read
            w.write(&Event::invoke(p, &key, Func::Read, t))?;
            let t = t + 200_000 + rng.below(300_000);
            let (value, ver) = (s.2, s.3);
            w.write(&Event {
                value: (ver > 0).then_some(value),
                version: (ver > 0).then_some(ver),
                ..Event::complete(EventKind::Ok, p, &key, Func::Read, t)
            })?;
            // create or compare-and-set
            let f = if ver == 0 { Func::Create } else { Func::Cas };
            let t = t + 10_000;
            w.write(&Event {
                value: Some(value + 1),
                prev_version: (ver > 0).then_some(ver),
                prev_value: (ver > 0).then_some(value),
                ..Event::invoke(p, &key, f, t)
            })?;
            let t = t + 300_000 + rng.below(500_000);
            version += 1;
            if rng.below(1000) == 0 {
                // a timeout: it took effect, but the client never heard
                w.write(&Event::complete(EventKind::Info, p, &key, f, t))?;
                s.0 = next_process;
                next_process += 1;
            } else {
                w.write(&Event {
                    value: Some(value + 1),
                    version: Some(version),
                    ..Event::complete(EventKind::Ok, p, &key, f, t)
                })?;
            }
            *s = (s.0, t + 10_000, value + 1, version);
            done += 2;
        }
    }
    w.flush()?;
    Ok(())
}

/// Writes a linearizable register history: `keys` keys, `clients` clients per key, `ops`
/// operations per key (reads, blind writes, compare-and-sets), each taking effect at a random
/// instant between its call and its return; one write in 100 times out (then it takes effect
/// or not, at random).
fn register_history(path: &Path, keys: u64, clients: u64, ops: u64, seed: u64) -> Result<()> {
    let mut w = HistoryWriter::new(BufWriter::new(File::create(path)?));
    let mut rng = Rng(seed | 1);
    for k in 0..keys {
        let key = format!("bench-s{k}");
        // per client: the next call time and the value it last read
        let mut clock: Vec<u64> = (0..clients).map(|_| rng.below(1_000_000)).collect();
        let mut seen: Vec<Option<i64>> = vec![None; clients as usize];
        // (point, call, ret, client, f, value, expect)
        let mut planned = Vec::new();
        for i in 0..ops {
            let c = (i % clients) as usize;
            let call = clock[c];
            let point = call + 100_000 + rng.below(2_000_000);
            let ret = point + 100_000 + rng.below(2_000_000);
            clock[c] = ret + 10_000;
            let f = match rng.below(10) {
                0..=3 => Func::Read,
                4..=6 => Func::Write,
                _ => Func::Cas,
            };
            planned.push((point, call, ret, c, f, (k * ops + i + 1) as i64));
        }
        planned.sort_by_key(|p| p.0);
        let mut reg: Option<i64> = None;
        let mut events: Vec<Event> = Vec::with_capacity(planned.len() * 2);
        let mut process: Vec<u64> = (0..clients).map(|c| k * 1_000_000 + c).collect();
        for (_, call, ret, c, f, fresh) in planned {
            let p = process[c];
            let mut inv = Event::invoke(p, &key, f, call);
            let mut done = Event::complete(EventKind::Ok, p, &key, f, ret);
            match f {
                Func::Read => {
                    done.value = reg;
                    seen[c] = reg;
                }
                Func::Write => {
                    inv.value = Some(fresh);
                    let timeout = rng.below(100) == 0;
                    if !timeout || rng.below(2) == 0 {
                        reg = Some(fresh);
                    }
                    if timeout {
                        done.kind = EventKind::Info;
                        process[c] += 1000;
                    }
                }
                _ => {
                    let expect = seen[c];
                    inv.value = Some(fresh);
                    inv.prev_value = expect;
                    inv.prev_version = Some(0);
                    if reg == expect && expect.is_some() {
                        reg = Some(fresh);
                    } else {
                        done.kind = EventKind::Fail;
                    }
                }
            }
            events.push(inv);
            events.push(done);
        }
        events.sort_by_key(|e| (e.time, e.kind != EventKind::Invoke));
        for e in &events {
            w.write(e)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The process's peak resident memory in MB (VmHWM), where /proc says it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `lab bench-checker`: the counter loop's check of `ops` operations, then the register
/// search at 10, 30 and 100 clients per key; prints the figures.
pub fn bench(ops: u64, dir: Option<PathBuf>) -> Result<bool> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("perseus-bench-checker-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("counter.jsonl");
    let t = Instant::now();
    counter_history(&path, ops, 30)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "# counter loop: wrote {ops} operations of 30 clients ({:.0} MB) in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = check_file(&path, CheckOptions::default())?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "counter loop: {} operations checked in {secs:.2} s ({:.0} operations/s), peak memory {} MB: {}",
        r.operations,
        r.operations as f64 / secs,
        peak_rss_mb().map_or("?".into(), |m| format!("{m:.0}")),
        r.verdict.as_str()
    );
    let mut ok = r.verdict == Verdict::Linearizable;
    for (clients, keys, per_key) in [(10u64, 20u64, 2_000u64), (30, 10, 2_000), (100, 10, 2_000)] {
        let path = dir.join(format!("register-{clients}.jsonl"));
        register_history(&path, keys, clients, per_key, clients)?;
        let t = Instant::now();
        let r = check_file(&path, CheckOptions::default())?;
        let secs = t.elapsed().as_secs_f64();
        let steps: u64 = r.per_key.iter().map(|k| k.steps).sum();
        println!(
            "register search, {clients} clients per key: {} operations on {} keys checked in \
             {secs:.2} s ({:.0} operations/s, {steps} search steps); undecided {} of {} keys \
             ({:.0} %), not linearizable {}",
            r.operations,
            r.keys,
            r.operations as f64 / secs,
            r.keys_undecided,
            r.keys,
            100.0 * r.keys_undecided as f64 / r.keys.max(1) as f64,
            r.keys_not_linearizable
        );
        // the generated histories are linearizable: a violation is the checker's bug
        ok &= r.keys_not_linearizable == 0;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        eprintln!("lab: the checker flagged a generated linearizable history");
    }
    Ok(ok)
}

/// `lab check-history DIR`: check, export, print the verdict and the first violations.
pub fn check_cmd(
    dir: &Path,
    budget: u64,
    control: Option<Control>,
    promise: Option<Consistency>,
) -> Result<bool> {
    let Some((report, secs)) = check_and_export(dir, budget)? else {
        anyhow::bail!("{} has no {HISTORY_FILE}", dir.display());
    };
    let control = control.or_else(|| load_control(dir));
    let (line, ok) = verdict_line(&report, control, promise);
    println!("{line}");
    println!(
        "# checked in {secs:.2} s; wrote {CHECK_FILE}, {EDN_FILE}, {PORCUPINE_FILE} in {}",
        dir.display()
    );
    let mut out = std::io::stdout().lock();
    for v in report.violations.iter().take(10) {
        writeln!(out, "{} {}: {}", v.key, v.kind.as_str(), v.message)?;
        for op in &v.ops {
            writeln!(out, "  {}", op.describe())?;
        }
    }
    Ok(ok)
}
