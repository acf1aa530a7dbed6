//! When each held packet leaves: the pure part of the delayer, no I/O.
//!
//! A packet that arrives at `now` on a queue whose spec is DELAY ± JITTER leaves at
//! `now + DELAY + u`, `u` drawn uniformly from [-JITTER, +JITTER] (never before `now`), the way
//! netem spreads its jitter. Without reordering a packet never leaves before the one that
//! arrived before it on the same queue (its time is at least the previous one's): TCP then sees
//! a delay that varies, not a shuffled stream. With reordering each packet keeps its own draw,
//! so a later packet may overtake an earlier one, as on a path whose routes change.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// How long one queue holds its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub delay: Duration,
    pub jitter: Duration,
}

/// A spec or a duration that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0:?} is not a time like 50ms, 1s, 200us or 0ms")]
    Time(String),
    #[error("{0:?} is not QUEUE=DELAY[,JITTER] (e.g. 7700=50ms,10ms)")]
    Form(String),
    #[error("queue {0:?} is not a number from 0 to 65535")]
    Queue(String),
    #[error("queue {0} is given twice")]
    Twice(u16),
    #[error("jitter {jitter:?} is larger than the delay {delay:?}")]
    JitterAboveDelay { delay: String, jitter: String },
}

/// Reads `50ms`, `1s`, `200us`, `0ms`, `1.5ms`.
pub fn parse_time(text: &str) -> Result<Duration, SpecError> {
    let bad = || SpecError::Time(text.to_string());
    let t = text.trim();
    let (digits, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let n: f64 = digits.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 || n * scale > 3600.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(n * scale))
}

/// Reads one `QUEUE=DELAY[,JITTER]` operand.
pub fn parse_queue(text: &str) -> Result<(u16, Spec), SpecError> {
    let (q, spec) = text
        .split_once('=')
        .ok_or_else(|| SpecError::Form(text.to_string()))?;
    let queue: u16 = q
        .trim()
        .parse()
        .map_err(|_| SpecError::Queue(q.to_string()))?;
    let (d, j) = match spec.split_once(',') {
        Some((d, j)) => (d, Some(j)),
        None => (spec, None),
    };
    let delay = parse_time(d)?;
    let jitter = j.map(parse_time).transpose()?.unwrap_or_default();
    if jitter > delay {
        return Err(SpecError::JitterAboveDelay {
            delay: d.to_string(),
            jitter: j.unwrap_or_default().to_string(),
        });
    }
    Ok((queue, Spec { delay, jitter }))
}

/// Reads every operand; a queue may appear once.
pub fn parse_queues(texts: &[String]) -> Result<HashMap<u16, Spec>, SpecError> {
    let mut out = HashMap::new();
    for t in texts {
        let (q, s) = parse_queue(t)?;
        if out.insert(q, s).is_some() {
            return Err(SpecError::Twice(q));
        }
    }
    Ok(out)
}

/// A small deterministic generator (SplitMix64): jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The packets held, in the order they leave. `T` is the packet (the queue's message in the
/// program, a number in tests).
pub struct Schedule<T> {
    specs: HashMap<u16, Spec>,
    reorder: bool,
    rng: Rng,
    /// Per queue, when its last packet leaves (FIFO mode).
    last: HashMap<u16, Instant>,
    /// (leave time, arrival number) → packet; the number keeps equal times in arrival order.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    held: HashMap<u64, T>,
    arrivals: u64,
}

impl<T> Schedule<T> {
    pub fn new(specs: HashMap<u16, Spec>, reorder: bool, seed: u64) -> Schedule<T> {
        Schedule {
            specs,
            reorder,
            rng: Rng::new(seed),
            last: HashMap::new(),
            heap: BinaryHeap::new(),
            held: HashMap::new(),
            arrivals: 0,
        }
    }

    /// When a packet arriving now on `queue` leaves (a queue without a spec: at once).
    pub fn leave_time(&mut self, queue: u16, now: Instant) -> Instant {
        let Some(spec) = self.specs.get(&queue).copied() else {
            return now;
        };
        let delay = if spec.jitter.is_zero() {
            spec.delay
        } else {
            let u = self.rng.unit() * 2.0 - 1.0;
            let d = spec.delay.as_secs_f64() + u * spec.jitter.as_secs_f64();
            Duration::from_secs_f64(d.max(0.0))
        };
        let mut at = now + delay;
        if !self.reorder {
            if let Some(prev) = self.last.get(&queue) {
                at = at.max(*prev);
            }
            self.last.insert(queue, at);
        }
        at
    }

    /// Holds a packet that arrived now on `queue`.
    pub fn hold(&mut self, queue: u16, now: Instant, packet: T) {
        let at = self.leave_time(queue, now);
        let n = self.arrivals;
        self.arrivals += 1;
        self.heap.push(Reverse((at, n)));
        self.held.insert(n, packet);
    }

    /// When the next packet is due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let Reverse((_, n)) = self.heap.pop()?;
                self.held.remove(&n)
            }
            _ => None,
        }
    }

    /// Takes every packet, in leaving order (on exit, to release them at once).
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.held.len());
        while let Some(Reverse((_, n))) = self.heap.pop() {
            if let Some(p) = self.held.remove(&n) {
                out.push(p);
            }
        }
        out
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_times_and_queues() {
        assert_eq!(parse_time("50ms").unwrap(), ms(50));
        assert_eq!(parse_time("1s").unwrap(), ms(1000));
        assert_eq!(parse_time("200us").unwrap(), Duration::from_micros(200));
        assert_eq!(parse_time("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse_time("1.5ms").unwrap(), Duration::from_micros(1500));
        for bad in ["50", "ms", "-1ms", "soon", "2h", "99999s", "NaNms"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_queue("7700=50ms,10ms").unwrap(),
            (
                7700,
                Spec {
                    delay: ms(50),
                    jitter: ms(10)
                }
            )
        );
        assert_eq!(parse_queue("1=11ms").unwrap().1.jitter, Duration::ZERO);
        assert!(matches!(
            parse_queue("1=5ms,10ms"),
            Err(SpecError::JitterAboveDelay { .. })
        ));
        assert!(matches!(parse_queue("x=5ms"), Err(SpecError::Queue(_))));
        assert!(matches!(parse_queue("5ms"), Err(SpecError::Form(_))));
        assert!(matches!(
            parse_queues(&["1=5ms".into(), "1=6ms".into()]),
            Err(SpecError::Twice(1))
        ));
    }

    fn spec(d: u64, j: u64) -> HashMap<u16, Spec> {
        [(
            0,
            Spec {
                delay: ms(d),
                jitter: ms(j),
            },
        )]
        .into()
    }

    #[test]
    fn holds_for_the_delay_and_releases_in_time_order() {
        let t0 = Instant::now();
        let mut s: Schedule<u32> = Schedule::new(spec(50, 0), false, 1);
        s.hold(0, t0, 1);
        s.hold(0, t0 + ms(10), 2);
        s.hold(9, t0 + ms(20), 3); // a queue without a spec: at once
        assert_eq!(s.next_due(), Some(t0 + ms(20)));
        assert_eq!(s.pop_due(t0 + ms(20)), Some(3));
        assert_eq!(s.pop_due(t0 + ms(49)), None);
        assert_eq!(s.pop_due(t0 + ms(50)), Some(1));
        assert_eq!(s.pop_due(t0 + ms(59)), None);
        assert_eq!(s.pop_due(t0 + ms(60)), Some(2));
        assert_eq!(s.held_count(), 0);
    }

    #[test]
    fn jitter_stays_in_its_band_and_fifo_keeps_the_order() {
        let t0 = Instant::now();
        let mut s: Schedule<u32> = Schedule::new(spec(50, 10), false, 7);
        let mut times = Vec::new();
        for i in 0..1000 {
            let now = t0 + Duration::from_micros(100 * i);
            let at = s.leave_time(0, now);
            let d = at - now;
            assert!(d <= ms(60), "{d:?}");
            times.push(at);
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "FIFO order kept");
        // The draws spread: the first packet's delay is not the mean of all.
        let mut r: Schedule<u32> = Schedule::new(spec(50, 10), true, 7);
        let mut overtaken = 0;
        let mut prev = t0;
        let mut sum = 0.0;
        for i in 0..1000 {
            let now = t0 + Duration::from_micros(100 * i);
            let at = r.leave_time(0, now);
            let d = (at - now).as_secs_f64();
            assert!((0.040..=0.060).contains(&d), "{d}");
            sum += d;
            if at < prev {
                overtaken += 1;
            }
            prev = at;
        }
        assert!(
            overtaken > 100,
            "reordering lets packets overtake ({overtaken})"
        );
        let mean = sum / 1000.0;
        assert!((0.049..0.051).contains(&mean), "mean {mean}");
    }

    #[test]
    fn drain_gives_every_packet() {
        let t0 = Instant::now();
        let mut s: Schedule<u32> = Schedule::new(spec(50, 0), false, 1);
        for i in 0..5 {
            s.hold(0, t0, i);
        }
        assert_eq!(s.held_count(), 5);
        assert_eq!(s.drain(), vec![0, 1, 2, 3, 4]);
        assert_eq!(s.next_due(), None);
    }
}
