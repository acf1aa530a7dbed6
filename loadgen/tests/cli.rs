//! Runs the `loadgen` binary itself: stdout format (integers, tab separated, one line a
//! second, comments starting with `#`), configuration from the environment, exit codes, SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{data_lines, start, Mode};

fn loadgen() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LOADGEN_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs a blocking child process on a blocking thread with a bound.
async fn output(mut c: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().expect("run loadgen"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_format_and_env_config() {
    let fake = start(3, Mode::Correct).await;
    let mut c = loadgen();
    c.env("LOADGEN_NODES", fake.urls.join(","))
        .env("LOADGEN_DURATION", "2")
        .env("LOADGEN_RUN_ID", "cli-format-test");
    let out = output(c).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    // `# start=2025-01-02T03:04:05.678Z unix_ms=1735787045678 run_id=cli-format-test`
    let first: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(first[0], "#");
    let t = first[1].strip_prefix("start=").expect("start=");
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    assert_eq!(t.len(), "2025-01-02T03:04:05.678Z".len(), "{t}");
    assert!(first[2]
        .strip_prefix("unix_ms=")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some());
    assert_eq!(first[3], "run_id=cli-format-test");
    assert_eq!(lines[1], "# second\tcluster\tn1\tn2\tn3");
    // exactly the data lines, in order, right after the header
    for (i, l) in lines[2..4].iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 5, "{l:?}");
        assert!(f
            .iter()
            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(f[0], (i + 1).to_string());
    }
    let data = data_lines(&stdout, 3);
    assert_eq!(data.len(), 2);
    assert!(lines[4..].iter().all(|l| l.starts_with('#')), "{stdout}");
    assert!(stdout.contains("\n# iterations total="));
    assert!(stdout.contains("\n# latency_ms iteration count="));
    assert!(stdout.contains("\n# errors connect=0 timeout=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2() {
    let mut c = loadgen();
    c.args(["--nodes", "ftp://x"]);
    assert_eq!(output(c).await.status.code(), Some(2));
    let mut c = loadgen();
    c.args(["--nodes", "http://127.0.0.1:1", "--bucket-ms", "7"]);
    assert_eq!(output(c).await.status.code(), Some(2));
    // Without --nodes the system's own hosts are used; an unknown system is bad usage.
    let mut c = loadgen();
    c.args(["--system", "cockroach"]);
    assert_eq!(output(c).await.status.code(), Some(2));
    let mut c = loadgen();
    c.args([
        "--nodes",
        "http://127.0.0.1:1",
        "--out",
        "/nonexistent-dir/x.jsonl",
    ]);
    assert_eq!(output(c).await.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_exit_1() {
    let fake = start(1, Mode::ForgetWrites(5)).await;
    let mut c = loadgen();
    c.args(["--nodes", &fake.urls[0], "--duration", "1"]);
    let out = output(c).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("violation"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_with_summary() {
    let fake = start(1, Mode::Correct).await;
    let mut c = loadgen();
    c.args(["--nodes", &fake.urls[0], "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("spawn");
    let pid = child.id().to_string();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("stopped_by=signal"), "{stdout}");
    assert_eq!(data_lines(&stdout, 1).len(), 1, "{stdout}");
}
