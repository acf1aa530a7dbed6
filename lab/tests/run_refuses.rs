//! `lab run` with a misspelt scenario, through the real binary: a bad shape, rate, layer,
//! scope or host is refused before anything starts, with a message naming the step and the
//! field. "Before anything starts" is checked two ways: the results folder is never created
//! (the runner creates it first thing), and the tools folder is empty, so a run that got as
//! far as starting the load generator or chaos would fail with a different message.

use std::path::PathBuf;
use std::process::Command;

/// A scratch folder of this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("lab-run-refuses-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `lab run` on a scenario with one step whose body is `step`; returns its stderr.
fn refused(name: &str, step: &str, store: &str) -> String {
    let scratch = Scratch::new(name);
    let file = scratch.0.join("bad.toml");
    std::fs::write(
        &file,
        format!("duration = \"30s\"\n[[step]]\nat = \"5s\"\n{step}"),
    )
    .unwrap();
    let out = scratch.0.join("results");
    let run = Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--store", store, "--bin-dir"])
        .arg(scratch.0.join("bin"))
        .env_remove("LAB_NODES")
        .env_remove("LAB_TARGET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        !run.status.success(),
        "{name}: lab run accepted it: {stderr}"
    );
    assert!(
        !out.exists(),
        "{name}: the results folder was created: {stderr}"
    );
    stderr
}

#[test]
fn misspelt_fields_are_refused_before_the_load_starts() {
    let cases = [
        (
            "shape",
            "fault = \"partition:majorities-rnig\"\n",
            "perseus",
            "field `fault`",
        ),
        (
            "rate",
            "fault = \"limit:256kbti\"\nhost = \"a1\"\n",
            "perseus",
            "field `fault`",
        ),
        (
            "layer",
            "fault = \"kill\"\nhost = \"a1\"\nlayer = \"acceptr\"\n",
            "perseus",
            "field `layer`",
        ),
        (
            "scope",
            "fault = \"loss:30\"\nhost = \"a1\"\nscope = \"al\"\n",
            "perseus",
            "field `scope`",
        ),
        (
            "host",
            "fault = \"kill\"\nhost = \"a7\"\n",
            "perseus",
            "field `host`",
        ),
        (
            "other-system-host",
            "fault = \"kill\"\nhost = \"e1\"\n",
            "perseus",
            "field `host`",
        ),
        (
            "shape-host",
            "fault = \"partition:e1 | e2 e3\"\n",
            "perseus",
            "field `fault`",
        ),
        (
            "kind",
            "fault = \"kil\"\nhost = \"a1\"\n",
            "perseus",
            "field `fault`",
        ),
    ];
    for (name, step, store, field) in cases {
        let stderr = refused(name, step, store);
        assert!(
            stderr.contains("step") && stderr.contains(field),
            "{name}: the message does not name the step and {field}: {stderr}"
        );
    }
}
