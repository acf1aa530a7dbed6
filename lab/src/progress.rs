//! Progress bars for the long runs (matrix, compare, bench, soak, experiments): elapsed time,
//! time left and what is running, drawn on standard error and only when it is a terminal
//! (piped into a file or CI, nothing is drawn and the output stays as it was).
//!
//! Two shapes: [`Progress::steps`] counts steps of a loop (runs of a matrix, turns of a
//! bench), with time left from the pace so far or, before the first step ends, from an
//! estimate per step; [`Progress::timed`] follows a run of known duration (a scenario, a
//! soak). Lines printed through [`Progress::say`] appear above the bar. A loop that lives in
//! a shell script feeds `lab progress` through a file instead (see [`follow_feed`]).

use std::io::{BufRead, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

/// A bar, or nothing at all when standard error is no terminal. Clones share the bar (threads
/// print through it); it goes away when the last clone is dropped or on [`Progress::finish`].
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    /// For a timed bar: the thread that moves it with the clock stops when the last clone is
    /// dropped.
    _ticker: Option<Arc<Ticker>>,
}

/// `1h02m`, `4m05s`, `12s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Time left after `done` of `total` steps in `elapsed`: the pace so far, or `per_step` each
/// before any step finished (less what the first has already taken).
pub fn left(
    done: u64,
    total: u64,
    elapsed: Duration,
    per_step: Option<Duration>,
) -> Option<Duration> {
    let remaining = total.saturating_sub(done);
    if done > 0 {
        let pace = elapsed.as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(pace * remaining as f64))
    } else {
        per_step.map(|p| (p * remaining as u32).saturating_sub(elapsed))
    }
}

fn target() -> ProgressDrawTarget {
    // indicatif hides a bar whose terminal is not attended (a pipe, a file).
    ProgressDrawTarget::stderr_with_hz(4)
}

impl Progress {
    /// A bar over `total` steps of a loop.
    pub fn steps(total: u64, label: &str, per_step: Option<Duration>) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), target())
            .with_finish(ProgressFinish::AndClear);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} · {spent} elapsed · {left} left · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "left",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let text = left(
                    state.pos(),
                    state.len().unwrap_or(0),
                    state.elapsed(),
                    per_step,
                )
                .map_or("?".to_string(), clock);
                let _ = w.write_str(&text);
            },
        )
        .with_key(
            "spent",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&clock(state.elapsed()));
            },
        )
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress { bar, _ticker: None }
    }

    /// A bar that follows the clock over `duration`.
    pub fn timed(duration: Duration, label: &str) -> Progress {
        let total = duration.as_secs().max(1);
        let bar = ProgressBar::with_draw_target(Some(total), target())
            .with_finish(ProgressFinish::AndClear);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {spent} of {whole} · {left} left · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "spent",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&clock(state.elapsed()));
            },
        )
        .with_key(
            "whole",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&clock(Duration::from_secs(total)));
            },
        )
        .with_key(
            "left",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&clock(
                    Duration::from_secs(total).saturating_sub(state.elapsed()),
                ));
            },
        )
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        let ticker = Ticker::start(bar.clone(), total);
        Progress {
            bar,
            _ticker: Some(Arc::new(ticker)),
        }
    }

    /// Prints a line on standard output above the bar.
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }

    /// What is running now, shown after the bar.
    pub fn now(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    /// One step done.
    pub fn step(&self) {
        self.bar.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Moves a timed bar once a second until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(bar: ProgressBar, total: u64) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let began = Instant::now();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                bar.set_position(began.elapsed().as_secs().min(total));
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One line of a feed file.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'a> {
    /// `done`: one more step finished.
    Done,
    /// `now TEXT`: what runs now.
    Now(&'a str),
    /// `end`: the loop is over.
    End,
    /// Anything else: a line to print above the bar.
    Say(&'a str),
}

pub fn parse_feed(line: &str) -> Feed<'_> {
    match line {
        "done" => Feed::Done,
        "end" => Feed::End,
        _ => match line.strip_prefix("now ") {
            Some(what) => Feed::Now(what),
            None => Feed::Say(line),
        },
    }
}

/// `lab progress`: a bar over `total` steps fed by a shell loop through `feed` (one line per
/// event, see [`Feed`]), until `end`, or the process that started it is gone (a script that
/// died does not leave it behind). Returns the steps counted.
pub fn follow_feed(
    feed: &Path,
    total: u64,
    label: &str,
    per_step: Option<Duration>,
) -> std::io::Result<u64> {
    let progress = Progress::steps(total, label, per_step);
    let parent = std::os::unix::process::parent_id();
    let mut offset = 0u64;
    let mut partial = String::new();
    let mut done = 0;
    loop {
        if let Ok(mut file) = std::fs::File::open(feed) {
            file.seek(SeekFrom::Start(offset))?;
            let mut reader = std::io::BufReader::new(file);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                offset += line.len() as u64;
                if !line.ends_with('\n') {
                    // A line still being written: wait for the rest.
                    partial.push_str(&line);
                    line.clear();
                    continue;
                }
                partial.push_str(line.trim_end_matches('\n'));
                match parse_feed(&partial) {
                    Feed::Done => {
                        done += 1;
                        progress.step();
                    }
                    Feed::Now(what) => progress.now(what),
                    Feed::End => {
                        progress.finish();
                        return Ok(done);
                    }
                    Feed::Say(text) => progress.say(text),
                }
                partial.clear();
                line.clear();
            }
        }
        if std::os::unix::process::parent_id() != parent {
            progress.finish();
            return Ok(done);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_from_the_pace_or_the_estimate() {
        let s = Duration::from_secs;
        assert_eq!(left(2, 10, s(100), None), Some(s(400)));
        assert_eq!(left(0, 10, s(30), Some(s(60))), Some(s(570)));
        assert_eq!(left(0, 10, s(30), None), None);
        assert_eq!(left(10, 10, s(30), None), Some(s(0)));
    }

    #[test]
    fn clocks() {
        assert_eq!(clock(Duration::from_secs(12)), "12s");
        assert_eq!(clock(Duration::from_secs(245)), "4m05s");
        assert_eq!(clock(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn feed_lines() {
        assert_eq!(parse_feed("done"), Feed::Done);
        assert_eq!(parse_feed("end"), Feed::End);
        assert_eq!(parse_feed("now etcd kill 3"), Feed::Now("etcd kill 3"));
        assert_eq!(parse_feed("=== matrix: x"), Feed::Say("=== matrix: x"));
    }

    /// A feed written by a "script" is followed to its end; with no terminal nothing is drawn
    /// and the lines still come out.
    #[test]
    fn follows_a_feed_to_its_end() {
        let dir = std::env::temp_dir().join(format!("perseus-feed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let feed = dir.join("feed");
        std::fs::write(&feed, "now a\ndone\nhello\ndone\nend\n").unwrap();
        assert_eq!(follow_feed(&feed, 3, "test", None).unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
