//! `delayer`: delay, jitter and reordering of packets without netem. Serves netfilter queues
//! (iptables `-j NFQUEUE --queue-num N`): holds each packet and releases it after its queue's
//! DELAY ± JITTER (uniform), in arrival order unless `--reorder`.
//!
//! `delayer [--reorder] [--seed N] QUEUE=DELAY[,JITTER]...`, e.g. `delayer 7700=50ms,10ms
//! 7701=11ms`. chaos starts it in the delayed host's network namespace and sends that host's
//! packets to its queues (chaos/src/delay.rs, docs/faults.md). It runs until SIGTERM/SIGINT,
//! then releases what it holds at once and prints one line: packets released, the most held at
//! once, and its own CPU time per packet (what `make bench-delayer` reports).

mod queue;
mod schedule;

use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: delayer [--reorder] [--seed N] QUEUE=DELAY[,JITTER]... \
                     (e.g. delayer 7700=50ms,10ms 7701=11ms)";

struct Args {
    reorder: bool,
    seed: u64,
    queues: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        reorder: false,
        seed: 0,
        queues: Vec::new(),
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reorder" => args.reorder = true,
            "--seed" => {
                let v = it.next().ok_or("--seed needs a number")?;
                args.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: {v:?} is not a number"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}; {USAGE}")),
            s => args.queues.push(s.to_string()),
        }
    }
    if args.queues.is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("delayer: {e}");
            return ExitCode::from(2);
        }
    };
    let specs = match schedule::parse_queues(&args.queues) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("delayer: {e}");
            return ExitCode::from(2);
        }
    };
    let mut list: Vec<String> = specs
        .iter()
        .map(|(q, s)| format!("queue {q}: {:?} ± {:?}", s.delay, s.jitter))
        .collect();
    list.sort();
    // chaos waits for this line before it sends packets to the queues.
    let ready = move || {
        println!(
            "delayer: serving {} ({})",
            list.join(", "),
            if args.reorder {
                "packets may overtake"
            } else {
                "arrival order kept"
            }
        )
    };
    let begin = Instant::now();
    match queue::serve(specs, args.reorder, args.seed, ready) {
        Ok(c) => {
            let cpu = queue::cpu_time();
            let per = if c.released > 0 {
                cpu.as_secs_f64() * 1e6 / c.released as f64
            } else {
                0.0
            };
            println!(
                "delayer: released {} packets (most held at once {}), cpu {:.3} s = {per:.1} us/packet over {:.1} s",
                c.released,
                c.most_held,
                cpu.as_secs_f64(),
                begin.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("delayer: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let a = parse(&argv(&["--reorder", "--seed", "3", "1=5ms"])).unwrap();
        assert!(a.reorder);
        assert_eq!(a.seed, 3);
        assert_eq!(a.queues, vec!["1=5ms"]);
        assert!(parse(&argv(&[])).is_err());
        assert!(parse(&argv(&["--seed"])).is_err());
        assert!(parse(&argv(&["--fast", "1=5ms"])).is_err());
    }
}
