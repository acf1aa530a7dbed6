//! What lies on each system's data volume (its data directory and its log) and the scripts
//! the helper container runs on it. Pure: the scripts are text, tested here with the real
//! `sh` and coreutils, run by `storage` in the helper.

use anyhow::{bail, Result};

use crate::host::{HostName, System};

/// Where a host's volume is mounted, in its containers and in the helper.
pub(super) const DATA: &str = "/data";
/// Where the helper mounts the snapshot volume.
pub(super) const SNAPSHOT_MOUNT: &str = "/snapshot";

/// What a system's log is, on its data volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Redis 7's multi-part AOF: the newest `*.incr.aof` in `dir` (Perseus acceptors, the
    /// Redis of a Sentinel host). Repaired with `redis-check-aof --fix`, Redis's own advice
    /// for a damaged AOF (it drops the torn command at the end).
    RedisAof { dir: &'static str },
    /// etcd's write-ahead log: the newest `*.wal` in `dir`, preallocated (64 MB of zeros after
    /// the records). etcd repairs a torn last record itself when it starts (`wal.Repair`).
    EtcdWal { dir: &'static str },
    /// ZooKeeper's transaction log: the newest `log.*` in `dir`, preallocated. ZooKeeper
    /// reads up to the torn record and takes that as the end of the log.
    ZookeeperTxns { dir: &'static str },
    /// JetStream's message blocks: the newest `*.blk` of the key-value bucket's stream under
    /// `store`. The server checks the last block when it starts and drops a torn record.
    NatsBlocks { store: &'static str },
    /// PostgreSQL's write-ahead log in `pgdata/pg_wal`: segments are recycled, so the end is
    /// found with `pg_waldump` from the last checkpoint, and the tail before it is zeroed (a
    /// torn page); crash recovery stops at the first invalid record and takes it as the end.
    PostgresWal {
        pgdata: &'static str,
        bin: &'static str,
    },
    /// No log a file cut can reach (why).
    Unreachable { why: &'static str },
}

/// What lives on a system's data volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The data directory proper, inside the volume (the whole volume is wiped, copied and
    /// restored: configuration a system rewrites at run time lives there too).
    pub data: &'static str,
    pub log: Log,
}

/// Where each system keeps its data (compose/systems/*, docker-compose.yml).
pub fn layout(system: System) -> Layout {
    let at = |data, log| Layout { data, log };
    match system.cluster() {
        // Perseus's acceptors and Sentinel's Redis: the same Redis layout.
        System::Perseus | System::Sentinel => at(
            "/data",
            Log::RedisAof {
                dir: "/data/appendonlydir",
            },
        ),
        System::Etcd => at(
            "/data/etcd",
            Log::EtcdWal {
                dir: "/data/etcd/member/wal",
            },
        ),
        System::Zookeeper => at(
            "/data/zookeeper",
            Log::ZookeeperTxns {
                dir: "/data/zookeeper/version-2",
            },
        ),
        System::Nats => at(
            "/data/nats",
            Log::NatsBlocks {
                store: "/data/nats/jetstream",
            },
        ),
        System::Galera => at(
            "/data/mysql",
            Log::Unreachable {
                why: "InnoDB's redo log (ib_logfile0) is a fixed-size circular file whose end \
                      only InnoDB's own recovery can find, and Galera's write-set cache \
                      (galera.cache) is a ring buffer; a cut file would not be a torn tail. \
                      Use rollback (an older data directory) or wipe instead",
            },
        ),
        System::Postgres => at(
            "/data/pg",
            Log::PostgresWal {
                pgdata: "/data/pg",
                bin: "/usr/lib/postgresql/15/bin",
            },
        ),
        // A system not described here yet: wipe, snapshot and rollback take its whole volume
        // all the same; truncate says what is missing.
        _ => at(
            "/data",
            Log::Unreachable {
                why: "where this system's log lies is not known yet (its row in \
                      chaos/src/storage/disk.rs's layout)",
            },
        ),
    }
}

/// The snapshot volume of a host: `perseus_a1-snapshot`.
pub fn snapshot_volume(project: &str, host: HostName) -> String {
    format!("{project}_{host}-snapshot")
}

/// Shell functions the truncate scripts share: `data_end FILE` prints the offset after the
/// last non-zero byte (a preallocated log is zeros after its records; the search halves the
/// file with `cmp` against /dev/zero, so a 64 MB file costs ~26 reads), `cut FILE END BYTES`
/// shortens the file to END - BYTES (not below 0) and says so.
const SHELL_FUNCTIONS: &str = r#"data_end() {
  size=$(stat -c %s "$1"); lo=0; hi=$size
  while [ "$lo" -lt "$hi" ]; do
    mid=$(( (lo + hi) / 2 ))
    if cmp -s -i "$mid:0" -n "$((size - mid))" "$1" /dev/zero; then hi=$mid; else lo=$((mid + 1)); fi
  done
  echo "$hi"
}
cut_tail() {
  size=$(stat -c %s "$1"); new=$(( $2 > $3 ? $2 - $3 : 0 ))
  truncate -s "$new" "$1"
  echo "cut $(( $2 - new )) bytes off the end of the records of $1 (records ended at $2 of $size bytes; now $new bytes)"
}
newest() { f=$(ls -t $1 2>/dev/null | head -n 1); [ -n "$f" ] || { echo "no log file matches $1" >&2; exit 3; }; echo "$f"; }
"#;

/// The helper's script that cuts `bytes` off the tail of the log and repairs it; it prints
/// what it did. An error for a system whose log cannot be cut.
pub fn truncate_script(log: Log, bytes: u32) -> Result<String> {
    let body = match log {
        Log::RedisAof { dir } => format!(
            "f=$(ls {dir}/*.incr.aof 2>/dev/null | sort -t. -k3,3n | tail -n 1)\n\
             [ -n \"$f\" ] || {{ echo 'no *.incr.aof in {dir}' >&2; exit 3; }}\n\
             cut_tail \"$f\" \"$(stat -c %s \"$f\")\" {bytes}\n\
             echo \"redis-check-aof --fix: $(echo y | redis-check-aof --fix \"$f\" 2>&1 | \
             grep -E 'Successfully truncated|is valid|not valid|Truncated|shrink' | tr '\\n' ' ')\"\n"
        ),
        Log::EtcdWal { dir } => format!(
            "f=$(ls {dir}/*.wal 2>/dev/null | sort | tail -n 1)\n\
             [ -n \"$f\" ] || {{ echo 'no *.wal in {dir}' >&2; exit 3; }}\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'etcd repairs the torn last record when it starts (wal.Repair)'\n"
        ),
        Log::ZookeeperTxns { dir } => format!(
            "f=$(newest '{dir}/log.*')\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'ZooKeeper reads up to the torn record and takes it as the end of the log'\n"
        ),
        Log::NatsBlocks { store } => format!(
            "f=$(newest '{store}/*/streams/KV_*/msgs/*.blk')\n\
             cut_tail \"$f\" \"$(data_end \"$f\")\" {bytes}\n\
             echo 'JetStream checks the last block when it starts and drops a torn record'\n"
        ),
        Log::PostgresWal { pgdata, bin } => format!(
            "ctl=$({bin}/pg_controldata {pgdata})\n\
             redo=$(echo \"$ctl\" | sed -n \"s/^Latest checkpoint's REDO location: *//p\")\n\
             tli=$(echo \"$ctl\" | sed -n \"s/^Latest checkpoint's TimeLineID: *//p\")\n\
             seg=$(echo \"$ctl\" | sed -n 's/^Bytes per WAL segment: *//p')\n\
             last=$({bin}/pg_waldump -p {pgdata}/pg_wal -t \"$tli\" -s \"$redo\" 2>/dev/null | tail -n 1)\n\
             set -- $(echo \"$last\" | sed -n 's/.*len (rec\\/tot): *[0-9]*\\/ *\\([0-9]*\\),.*lsn: \\([0-9A-F]*\\)\\/\\([0-9A-F]*\\),.*/\\1 \\2 \\3/p')\n\
             [ $# = 3 ] || {{ echo \"cannot find the end of the WAL from $redo: $last\" >&2; exit 3; }}\n\
             end=$(( (0x$2 << 32) + 0x$3 + $1 ))\n\
             segno=$(( end / seg )); off=$(( end % seg ))\n\
             f=$(printf '{pgdata}/pg_wal/%08X%08X%08X' \"$tli\" $(( segno / (0x100000000 / seg) )) $(( segno % (0x100000000 / seg) )))\n\
             n=$(( off > {bytes} ? {bytes} : off ))\n\
             dd if=/dev/zero of=\"$f\" bs=1 seek=$(( off - n )) count=$n conv=notrunc 2>/dev/null\n\
             echo \"zeroed the last $n bytes of the WAL before its end ($f, offset $off; the last record began at $2/$3); recovery stops at the torn record\"\n"
        ),
        Log::Unreachable { why } => bail!("truncate: {why}"),
    };
    Ok(format!("set -eu\n{SHELL_FUNCTIONS}{body}"))
}

/// The helper's script that saves the data volume (mounted at /data) into the snapshot
/// volume and prints its size.
pub fn copy_out_script() -> String {
    format!(
        "set -eu; find {SNAPSHOT_MOUNT} -mindepth 1 -delete; cp -a {DATA}/. {SNAPSHOT_MOUNT}/; \
         echo \"$(du -sk {SNAPSHOT_MOUNT} | cut -f1) KiB\""
    )
}

/// The helper's script that replaces the data volume's content by the snapshot's.
pub fn copy_back_script() -> String {
    format!(
        "set -eu; find {DATA} -mindepth 1 -delete; cp -a {SNAPSHOT_MOUNT}/. {DATA}/; \
         echo \"$(du -sk {DATA} | cut -f1) KiB\""
    )
}

/// The helper's script that deletes everything inside each mount point (amnesia: every
/// volume of the host).
pub fn erase_all_script(destinations: &[String]) -> String {
    destinations
        .iter()
        .map(|d| format!("find '{d}' -mindepth 1 -delete"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The helper's script that empties the data volume.
pub fn erase_script() -> String {
    format!("set -eu; find {DATA} -mindepth 1 -delete; echo emptied")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_system_has_a_data_directory_on_its_volume() {
        for s in System::ALL {
            let l = layout(s);
            assert!(l.data.starts_with(DATA), "{s}: {}", l.data);
        }
        assert_eq!(layout(System::Etcd3), layout(System::Etcd));
        assert_eq!(
            snapshot_volume("perseus", HostName::perseus(1)),
            "perseus_a1-snapshot"
        );
    }

    #[test]
    fn amnesia_erases_inside_each_mount() {
        assert_eq!(
            erase_all_script(&["/data".into()]),
            "find '/data' -mindepth 1 -delete"
        );
    }

    #[test]
    fn truncate_scripts_name_the_log_and_its_repair() {
        let s = truncate_script(layout(System::Perseus).log, 4096).unwrap();
        assert!(s.starts_with("set -eu\n"), "{s}");
        assert!(
            s.contains("/data/appendonlydir/*.incr.aof") && s.contains("redis-check-aof --fix")
        );
        assert!(s.contains("cut_tail \"$f\" \"$(stat -c %s \"$f\")\" 4096"));
        let s = truncate_script(layout(System::Etcd).log, 100).unwrap();
        assert!(
            s.contains("/data/etcd/member/wal/*.wal") && s.contains("data_end"),
            "{s}"
        );
        let s = truncate_script(layout(System::Zookeeper).log, 100).unwrap();
        assert!(
            s.contains("newest '/data/zookeeper/version-2/log.*'"),
            "{s}"
        );
        let s = truncate_script(layout(System::Nats).log, 100).unwrap();
        assert!(s.contains("KV_*/msgs/*.blk"), "{s}");
        let s = truncate_script(layout(System::Postgres).log, 100).unwrap();
        assert!(
            s.contains("pg_waldump") && s.contains("conv=notrunc"),
            "{s}"
        );
        let err = truncate_script(layout(System::Galera).log, 100).unwrap_err();
        assert!(format!("{err}").contains("circular"), "{err}");
    }

    /// The shared shell functions, run by the real `sh` with the real coreutils and `cmp` on a
    /// preallocated file (records, then zeros) and on one without zeros.
    #[test]
    fn the_shell_finds_the_end_of_the_records_and_cuts_before_it() {
        let dir = std::env::temp_dir().join(format!("chaos-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let mut bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8 | 1).collect();
        bytes.extend(std::iter::repeat_n(0u8, 70_000));
        std::fs::write(&log, &bytes).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, b"abc").unwrap();
        let script = format!(
            "set -eu\n{SHELL_FUNCTIONS}data_end '{l}'; data_end '{p}'; cut_tail '{l}' \"$(data_end '{l}')\" 300; stat -c %s '{l}'; cut_tail '{p}' 3 4096",
            l = log.display(),
            p = plain.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1000", "{text}");
        assert_eq!(lines[1], "3", "{text}");
        assert!(
            lines[2].contains("cut 300 bytes") && lines[2].contains("ended at 1000 of 71000"),
            "{text}"
        );
        assert_eq!(lines[3], "700", "{text}");
        assert!(
            lines[4].contains("cut 3 bytes") && lines[4].contains("now 0 bytes"),
            "{text}"
        );
    }

    /// The AOF cut and `redis-check-aof --fix` against a real redis-server (AOF on, fsync
    /// always, as the acceptors run): after the cut Redis starts and holds fewer keys, every
    /// one of them intact.
    #[test]
    fn a_cut_aof_is_repaired_and_loads_with_its_tail_gone() {
        use std::process::Command;
        let dir = std::env::temp_dir().join(format!("chaos-aof-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("redis.sock");
        let server = |extra: &[&str]| {
            let mut c = Command::new("redis-server");
            c.args(["--port", "0", "--save", "", "--appendonly", "yes"])
                .args(["--appendfsync", "always", "--unixsocket"])
                .arg(&sock)
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(std::process::Stdio::null());
            c.spawn()
                .expect("redis-server (make test installs it: scripts/lib.sh need redis-server)")
        };
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .arg("-s")
                .arg(&sock)
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let wait_up = || {
            for _ in 0..100 {
                if cli(&["ping"]) == "PONG" {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("redis-server did not answer");
        };
        let mut redis = server(&[]);
        wait_up();
        for i in 0..300 {
            cli(&[
                "set",
                &format!("k{i}"),
                &format!("value-{i}-of-the-acceptor"),
            ]);
        }
        assert_eq!(cli(&["dbsize"]), "300");
        redis.kill().unwrap();
        redis.wait().unwrap();
        let aof: &'static str =
            Box::leak(format!("{}/appendonlydir", dir.display()).into_boxed_str());
        let script = truncate_script(Log::RedisAof { dir: aof }, 4096).unwrap();
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("cut 4096 bytes") && said.contains("Successfully truncated"),
            "{said}"
        );
        let mut redis = server(&[]);
        wait_up();
        let left: usize = cli(&["dbsize"]).parse().unwrap();
        let last = cli(&["get", &format!("k{}", left - 1)]);
        redis.kill().unwrap();
        redis.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!((200..300).contains(&left), "{left} keys left");
        assert_eq!(last, format!("value-{}-of-the-acceptor", left - 1));
    }

    #[test]
    fn copies_replace_everything_inside_the_mounts() {
        assert!(copy_out_script()
            .contains("find /snapshot -mindepth 1 -delete; cp -a /data/. /snapshot/"));
        assert!(
            copy_back_script().contains("find /data -mindepth 1 -delete; cp -a /snapshot/. /data/")
        );
        assert!(erase_script().contains("find /data -mindepth 1 -delete"));
    }
}
