//! `lab browser-check DIR`: opens `DIR/report.html` in a real browser (headless Chromium) and
//! checks what it rendered: the page's own script ran and found every chart drawn with a size
//! (`data-rendered="ok"` in the DOM the browser dumps), and the browser logged no script error
//! on its console. Keeps a screenshot of the page beside it (`report.png`).
//!
//! Every browser run has a deadline: a browser that hangs is killed and the check fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why the check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("no browser found (looked for $PERSEUS_BROWSER, {0}); apt-get install chromium")]
    NoBrowser(String),
    #[error("{0} is missing")]
    NoReport(PathBuf),
    #[error("running {browser}: {source}")]
    Spawn {
        browser: String,
        source: std::io::Error,
    },
    #[error("{browser} did not finish within {} s; killed", .after.as_secs())]
    Timeout { browser: String, after: Duration },
    #[error("{browser} exited with {code:?}: {stderr}")]
    Failed {
        browser: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("the page did not render: {0}")]
    NotRendered(String),
    #[error("the browser's console reported errors:\n{0}")]
    ConsoleErrors(String),
}

/// The browsers looked for, in order, on the PATH.
const BROWSERS: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// How long one browser run may take (a cold Chromium on a busy 2-core machine takes seconds).
const DEADLINE: Duration = Duration::from_secs(90);

/// The browser to use: `$PERSEUS_BROWSER`, else the first of [`BROWSERS`] on the PATH.
pub fn find() -> Result<PathBuf, BrowserError> {
    if let Some(path) = std::env::var_os("PERSEUS_BROWSER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    BROWSERS
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| BrowserError::NoBrowser(BROWSERS.join(", ")))
}

/// What the check found.
#[derive(Debug)]
pub struct Checked {
    pub charts: usize,
    pub screenshot: PathBuf,
}

/// Runs the browser with `args` and the page, under the deadline; (stdout, stderr).
fn run(browser: &Path, profile: &Path, args: &[String]) -> Result<(String, String), BrowserError> {
    let name = browser.display().to_string();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BrowserError::Spawn {
            browser: name.clone(),
            source,
        })?;
    // Read both pipes on their own threads so a chatty browser never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if began.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BrowserError::Timeout {
                    browser: name,
                    after: DEADLINE,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(source) => {
                return Err(BrowserError::Spawn {
                    browser: name,
                    source,
                })
            }
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(BrowserError::Failed {
            browser: name,
            code: status.code(),
            stderr: err.lines().rev().take(8).collect::<Vec<_>>().join("\n"),
        });
    }
    Ok((out, err))
}

/// The console messages that say a script failed (`Uncaught ...`; the page counts its own
/// `console.error` calls and errors in `data-errors`).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .filter(|l| l.contains("Uncaught"))
        .collect()
}

/// The value of `name="..."` on the dumped page's body.
fn body_attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let key = format!("{name}=\"");
    let at = body.find(&key)? + key.len();
    body[at..].split('"').next()
}

/// Opens `dir/report.html`, checks the rendered page and writes `dir/report.png`.
pub fn check(dir: &Path) -> Result<Checked, BrowserError> {
    let browser = find()?;
    let page = dir.join("report.html");
    if !page.is_file() {
        return Err(BrowserError::NoReport(page));
    }
    let page = std::fs::canonicalize(&page).map_err(|_| BrowserError::NoReport(page.clone()))?;
    let url = format!("file://{}", page.display());
    let profile = std::env::temp_dir().join(format!("perseus-browser-{}", std::process::id()));
    let result = (|| {
        let (dom, stderr) = run(
            &browser,
            &profile,
            &[
                "--virtual-time-budget=5000".to_string(),
                "--dump-dom".to_string(),
                url.clone(),
            ],
        )?;
        let errors = console_errors(&stderr);
        if !errors.is_empty() {
            return Err(BrowserError::ConsoleErrors(errors.join("\n")));
        }
        match body_attribute(&dom, "data-errors") {
            Some("0") => {}
            Some(n) => {
                return Err(BrowserError::ConsoleErrors(format!(
                    "the page counted {n} errors: {}",
                    body_attribute(&dom, "data-error-text").unwrap_or("")
                )))
            }
            None => {}
        }
        match body_attribute(&dom, "data-rendered") {
            Some("ok") => {}
            Some(other) => {
                return Err(BrowserError::NotRendered(format!(
                    "the page's check says {other:?}"
                )))
            }
            None => {
                return Err(BrowserError::NotRendered(
                    "the page's script did not run (no data-rendered on the body)".into(),
                ))
            }
        }
        let charts = body_attribute(&dom, "data-charts")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let screenshot = dir.join("report.png");
        run(
            &browser,
            &profile,
            &[
                "--hide-scrollbars".to_string(),
                "--window-size=1200,2400".to_string(),
                format!("--screenshot={}", screenshot.display()),
                url.clone(),
            ],
        )?;
        if !screenshot.is_file() {
            return Err(BrowserError::NotRendered(format!(
                "no screenshot at {}",
                screenshot.display()
            )));
        }
        Ok(Checked { charts, screenshot })
    })();
    let _ = std::fs::remove_dir_all(&profile);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_body_attributes() {
        let dom = "<html><head></head><body data-rendered=\"ok\" data-charts=\"9\"><p>x</p></body>";
        assert_eq!(body_attribute(dom, "data-rendered"), Some("ok"));
        assert_eq!(body_attribute(dom, "data-charts"), Some("9"));
        assert_eq!(body_attribute("<body>", "data-rendered"), None);
    }

    #[test]
    fn finds_script_errors_in_the_console_log() {
        let log =
            "[1:2:INFO:CONSOLE:3] \"Uncaught TypeError: x is null\", source: file:///r.html (3)\n\
                   [1:2:INFO:CONSOLE:4] \"hello\", source: file:///r.html (4)\n\
                   [1:2:ERROR:gpu_init.cc(1)] no GPU";
        assert_eq!(console_errors(log).len(), 1);
    }

    /// The recorded run's report.html in a real browser: it renders, its charts are drawn, the
    /// console is clean, and a screenshot is kept (under target/). Without a browser it says
    /// so loudly and passes, unless PERSEUS_REQUIRE_BROWSER=1 (make test sets it when it could
    /// install one).
    #[test]
    fn the_recorded_report_renders_in_a_browser() {
        if let Err(e) = find() {
            let required = std::env::var("PERSEUS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(!required, "PERSEUS_REQUIRE_BROWSER=1 but {e}");
            eprintln!(
                "\n######################################################################\n\
                 ### BROWSER CHECK OF report.html SKIPPED: {e}\n\
                 ######################################################################\n"
            );
            return;
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = manifest
            .join("../target/browser-check")
            .join("kill-and-isolate");
        std::fs::create_dir_all(&out).unwrap();
        let run = crate::data::Run::load(&manifest.join("tests/data/kill-and-isolate")).unwrap();
        let reports = crate::impact::analyse(&run);
        let html = crate::html::page(
            &crate::html::Page {
                title: "kill-and-isolate",
                system: "Perseus (Gryadka/CASPaxos)",
                notes: Vec::new(),
            },
            &run,
            &reports,
        );
        std::fs::write(out.join("report.html"), html).unwrap();
        let checked = check(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(checked.charts >= 7, "{checked:?}");
        let size = std::fs::metadata(&checked.screenshot).unwrap().len();
        assert!(size > 20_000, "screenshot of {size} bytes");
        eprintln!(
            "browser check: {} charts drawn, screenshot {}",
            checked.charts,
            checked.screenshot.display()
        );
    }
}
