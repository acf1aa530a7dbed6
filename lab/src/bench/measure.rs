//! What `make bench` counts around each load level, read from the machine and the containers
//! (scripts/bench.sh calls `lab bench-counters` before a level and `lab bench-costs` after
//! it; it only takes turns and runs the load):
//!   - CPU: each container's cgroup CPU counter (cpuacct.usage, or cpu.stat on cgroup v2) for
//!     the nodes p1..p3, the Redis acceptors a1..a3, the etcd members e1..e3; the load
//!     generator's from its own last line, `# cpu ms=…` (its cgroup goes when it exits;
//!     sampling it while it ran cost a `docker inspect` every half second, 4 % of the machine
//!     under perf, taken from the system measured);
//!   - Perseus's Redis: script calls (EVALSHA/EVAL) and commands executed, those inside the
//!     scripts included (INFO commandstats, INFO itself left out), and AOF writes, each
//!     followed by an fsync under `appendfsync always`: the redis-server process's write
//!     system calls (/proc/PID/io syscw) minus its writes to clients (INFO stats
//!     total_writes_processed);
//!   - etcd: its WAL fsyncs (the etcd_disk_wal_fsync_duration_seconds_count metric);
//!   - the machine: CPU stolen by the hypervisor (/proc/stat's steal: it was 5-40 % here at
//!     times, and it slows every system).
//!
//! A counter that cannot be read (a container gone, a cgroup not found) is left out, and so
//! is its cost; the table then shows `–`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use perseus_model::System;
use serde::{Deserialize, Serialize};

/// Every counter read at one moment, by the names the costs use (`cpu_nodes_ns`, `steal_ns`,
/// `redis_scripts`, `redis_calls`, `fsyncs`, `cpu_etcd_ns`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters(pub BTreeMap<String, i64>);

/// How long one look at a container or a metrics page may take.
const TIMEOUT: Duration = Duration::from_secs(3);

impl Counters {
    /// Reads the counters of `system` (`etcd`, or a Perseus variant: `perseus`,
    /// `perseus-full-rounds`, ...) and of the machine, now.
    pub fn read(system: &str) -> Result<Counters> {
        let mut c = BTreeMap::new();
        if let Some(steal) = steal_ns()? {
            c.insert("steal_ns".to_string(), steal);
        }
        let mut put = |key: &str, v: Option<i64>| {
            if let Some(v) = v {
                c.insert(key.to_string(), v);
            }
        };
        if system.starts_with("etcd") {
            put("cpu_etcd_ns", group_cpu(&["e1", "e2", "e3"])?);
            put("fsyncs", etcd_fsyncs()?);
        } else {
            put("cpu_nodes_ns", group_cpu(&["p1", "p2", "p3"])?);
            put("cpu_redis_ns", group_cpu(&["a1", "a2", "a3"])?);
            let (mut scripts, mut calls, mut writes) = (0, 0, 0);
            for a in ["a1", "a2", "a3"] {
                let r = redis_counters(a).with_context(|| format!("{a}'s Redis counters"))?;
                scripts += r.0;
                calls += r.1;
                writes += r.2;
            }
            put("redis_scripts", Some(scripts));
            put("redis_calls", Some(calls));
            put("fsyncs", Some(writes));
        }
        Ok(Counters(c))
    }

    pub fn load(path: &Path) -> Result<Counters> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the counters {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("the counters {}", path.display()))
    }
}

/// The costs of one level as `NAME.costs` holds them (`key value` lines, read by
/// [`super::Costs::parse`]): the system, the cores, the wall time, the load generator's CPU
/// when its log says it, and every counter's growth from `before` to `after`.
pub fn costs(
    system: &str,
    before: &Counters,
    after: &Counters,
    wall_ns: u64,
    loadgen_log: Option<&str>,
) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!("system {system}\ncores {cores}\nwall_ns {wall_ns}\n");
    if let Some(ns) = loadgen_log.and_then(loadgen_cpu_ns) {
        out.push_str(&format!("cpu_loadgen_ns {ns}\n"));
    }
    for (key, b) in &before.0 {
        if let Some(a) = after.0.get(key) {
            out.push_str(&format!("{key} {}\n", a - b));
        }
    }
    out
}

/// The load generator's CPU in ns, from its log's `# cpu ms=N` line.
fn loadgen_cpu_ns(log: &str) -> Option<i64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("# cpu ms="))
        .filter_map(|ms| ms.trim().parse::<f64>().ok())
        .map(|ms| (ms * 1_000_000.0).round() as i64)
        .next_back()
}

/// CPU time the hypervisor gave to other guests while ours wanted it: /proc/stat's steal, in
/// USER_HZ ticks of 10 ms.
fn steal_ns() -> Result<Option<i64>> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(parse_steal_ns(&stat))
}

fn parse_steal_ns(stat: &str) -> Option<i64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: i64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks * 10_000_000)
}

/// The summed CPU ns of these Compose services (none when any is not found).
fn group_cpu(services: &[&str]) -> Result<Option<i64>> {
    let mut total = 0;
    for s in services {
        let Some(id) = container(s)? else {
            return Ok(None);
        };
        match cpu_ns(&id) {
            Some(ns) => total += ns,
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}

/// A container's cumulative CPU ns from its cgroup (v1 or v2), none when it is not found.
fn cpu_ns(id: &str) -> Option<i64> {
    for f in [
        format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage"),
        format!("/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&f) {
            return text.trim().parse().ok();
        }
    }
    for f in [
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat"),
        format!("/sys/fs/cgroup/docker/{id}/cpu.stat"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&f) {
            return field(&text, "usage_usec", ' ').map(|us| us * 1000);
        }
    }
    None
}

/// The first `key<sep>value` line's value as a whole number.
fn field(text: &str, key: &str, sep: char) -> Option<i64> {
    text.lines()
        .filter_map(|l| l.trim().split_once(sep))
        .find(|(k, _)| k.trim() == key)
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}

/// The full id of a Compose service's container (running or not; `run` containers left
/// out), as scripts/lib.sh's `cid` finds it.
fn container(service: &str) -> Result<Option<String>> {
    let project = std::env::var("COMPOSE_PROJECT_NAME").unwrap_or_else(|_| "perseus".into());
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
        "--filter",
        "label=com.docker.compose.oneoff=False",
    ])?;
    Ok(out.lines().next().map(str::to_string))
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One acceptor's (script calls, commands executed, AOF writes).
fn redis_counters(service: &str) -> Result<(i64, i64, i64)> {
    let id = container(service)?.with_context(|| format!("no container for {service}"))?;
    let info = |section: &str| docker(&["exec", &id, "redis-cli", "info", section]);
    let (scripts, calls) = command_calls(&info("commandstats")?);
    let replies = field(&info("stats")?, "total_writes_processed", ':')
        .context("INFO stats has no total_writes_processed")?;
    let pid =
        field(&info("server")?, "process_id", ':').context("INFO server has no process_id")?;
    let io = docker(&["exec", &id, "cat", &format!("/proc/{pid}/io")])?;
    let syscw = field(&io, "syscw", ':').context("/proc/PID/io has no syscw")?;
    Ok((scripts, calls, syscw - replies))
}

/// From INFO commandstats: the script calls (EVAL, EVALSHA, ...) and every command executed,
/// INFO's own left out.
fn command_calls(stats: &str) -> (i64, i64) {
    let (mut scripts, mut calls) = (0, 0);
    for line in stats.lines().map(str::trim) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(cmd) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let n = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if cmd != "info" {
            calls += n;
        }
        if cmd.starts_with("eval") {
            scripts += n;
        }
    }
    (scripts, calls)
}

/// etcd's WAL fsyncs so far, summed over the members (none when one does not answer).
fn etcd_fsyncs() -> Result<Option<i64>> {
    let nodes = match std::env::var("ETCD_NODES") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(str::to_string).collect(),
        _ => System::Etcd.nodes(),
    };
    let mut total = 0;
    for url in nodes {
        let Ok(page) = http_get(&url, "/metrics") else {
            return Ok(None);
        };
        match field(&page, "etcd_disk_wal_fsync_duration_seconds_count", ' ') {
            Some(n) => total += n,
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}

/// The body of `GET path` at `http://host:port` (HTTP/1.0, one connection).
fn http_get(url: &str, path: &str) -> Result<String> {
    let authority = url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not http://HOST:PORT"))?;
    let addr = authority
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => bail!("{url}{path}: not a 200 answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_as_the_machine_writes_them() {
        let stat = "cpu  4705 356 584 3699 23 23 0 12 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_steal_ns(stat), Some(120_000_000));
        let stats = "# Commandstats\r\ncmdstat_evalsha:calls=120,usec=900,usec_per_call=7.5\r\n\
                     cmdstat_eval:calls=3,usec=9\r\ncmdstat_hset:calls=240,usec=1\r\n\
                     cmdstat_info:calls=7,usec=1\r\n";
        assert_eq!(command_calls(stats), (123, 363));
        assert_eq!(
            field(
                "total_writes_processed:42\r\n",
                "total_writes_processed",
                ':'
            ),
            Some(42)
        );
        assert_eq!(field("rchar: 1\nsyscw: 77\n", "syscw", ':'), Some(77));
        assert_eq!(
            field("usage_usec 1500\nuser_usec 1\n", "usage_usec", ' '),
            Some(1500)
        );
        let metrics = "# HELP x\netcd_disk_wal_fsync_duration_seconds_count 812\n";
        assert_eq!(
            field(metrics, "etcd_disk_wal_fsync_duration_seconds_count", ' '),
            Some(812)
        );
    }

    #[test]
    fn costs_are_the_growth_of_every_counter_both_ends_read() {
        let before = Counters(BTreeMap::from([
            ("steal_ns".to_string(), 100),
            ("fsyncs".to_string(), 10),
            ("cpu_nodes_ns".to_string(), 5),
        ]));
        let after = Counters(BTreeMap::from([
            ("steal_ns".to_string(), 300),
            ("fsyncs".to_string(), 70),
        ]));
        let log = "1\t10\t3\t3\t4\n# iterations 100\n# cpu ms=250\n";
        let text = costs("perseus", &before, &after, 1_000, Some(log));
        let parsed = super::super::Costs::parse(&text).unwrap();
        assert_eq!(parsed.system.as_deref(), Some("perseus"));
        assert_eq!(parsed.counters["wall_ns"], 1000.0);
        assert_eq!(parsed.counters["cpu_loadgen_ns"], 250_000_000.0);
        assert_eq!(parsed.counters["steal_ns"], 200.0);
        assert_eq!(parsed.counters["fsyncs"], 60.0);
        assert!(!parsed.counters.contains_key("cpu_nodes_ns"));
        let json = serde_json::to_string(&after).unwrap();
        assert_eq!(serde_json::from_str::<Counters>(&json).unwrap(), after);
    }
}
