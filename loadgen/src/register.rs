//! The register workload (`--workload register`): many clients on a few shared keys, each
//! operation drawn at random — a read (40 %), a blind write of a value no other operation
//! writes (30 %), or a compare-and-set from the state this client last saw to a fresh unique
//! value (30 %; a create when it last saw the key missing, a read when it has seen nothing
//! yet). Nothing is checked online: every operation goes into the history, which the history
//! checker judges after the run (unique values let it tell every write apart).

use std::time::Instant;

use tokio::sync::watch;

use crate::checker::State;
use crate::client::ErrorKind;
use crate::worker::{Worker, WorkerReport};

/// A small deterministic generator (xorshift64*): the mix of operations, not security.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100
    }
}

/// Values of client `index`: `(index + 1) × 10^12 + n`, unique across the run.
pub fn unique_value(index: u64, n: u64) -> i64 {
    ((index + 1) * 1_000_000_000_000 + n) as i64
}

/// Runs client `index` until `stop` (the operation in flight completes).
pub async fn run_client(
    mut w: Worker,
    index: u64,
    mut stop: watch::Receiver<bool>,
) -> WorkerReport {
    let mut dice = Dice::new(index + 1);
    // What this client last saw: None = nothing yet, Some(None) = the key missing.
    let mut last: Option<Option<State>> = None;
    let mut n = 0u64;
    while !*stop.borrow() {
        let t = Instant::now();
        let roll = dice.percent();
        let res = match (roll, last) {
            (0..40, _) | (70.., None) => w.read().await.map(|s| last = Some(s)),
            (40..70, _) => {
                n += 1;
                let v = unique_value(index, n);
                w.put(v).await.map(|version| {
                    last = version.map(|version| Some(State::new(v, version)));
                })
            }
            (_, Some(prev)) => {
                n += 1;
                match w.write(prev, unique_value(index, n)).await {
                    Ok(s) => {
                        last = Some(Some(s));
                        Ok(())
                    }
                    Err(e) => {
                        last = None;
                        Err(e)
                    }
                }
            }
        };
        match res {
            Ok(()) => w.success(t),
            // a refused compare-and-set is the workload working, not the store failing
            Err(e) if e.kind == ErrorKind::Conflict => w.success(t),
            Err(e) => {
                last = None;
                if !w.after_error(e, &mut stop).await {
                    break;
                }
            }
        }
    }
    w.finish(false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unique_per_client() {
        assert_ne!(unique_value(0, 1), unique_value(1, 1));
        assert_ne!(unique_value(0, 1), unique_value(0, 2));
        assert!(unique_value(30_000, 1_000_000) > 0);
    }

    #[test]
    fn the_mix_covers_every_operation() {
        let mut d = Dice::new(7);
        let rolls: Vec<u64> = (0..1000).map(|_| d.percent()).collect();
        assert!(rolls.iter().any(|&r| r < 40));
        assert!(rolls.iter().any(|&r| (40..70).contains(&r)));
        assert!(rolls.iter().any(|&r| r >= 70));
    }
}
