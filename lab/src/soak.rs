//! The soak's random schedules: faults drawn (weighted, seeded) from the fault table itself
//! (`perseus_model::fault::KINDS`: each kind's default weight and its parameter examples),
//! each followed by the action that undoes it (`ChaosCall::undo`), built as an ordinary
//! [`Scenario`]. A new fault kind with a weight in the table is in the soak without a line
//! here. Like Maelstrom's nemesis packages: a fault, its generator, its final undo.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use perseus_model::fault::{Role, Spec, KINDS};
use perseus_model::{ChaosCall, FaultKind, HostArg, HostName, Layer, Scope, Shape, System};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::check::{Expect, FaultsUndone, NoViolations};
use crate::scenario::{Scenario, Step};

/// What one entry of the mix draws.
#[derive(Clone, Copy, Debug)]
pub enum Draw {
    /// A fault of this kind, on the whole host.
    Kind(&'static Spec),
    /// A layered kind (kill, pause, isolate) on only the acceptor or only the node.
    Layer,
}

impl Draw {
    pub fn name(self) -> &'static str {
        match self {
            Draw::Kind(spec) => spec.name,
            Draw::Layer => "layer",
        }
    }
}

impl PartialEq for Draw {
    fn eq(&self, other: &Draw) -> bool {
        self.name() == other.name()
    }
}

/// Kinds and their weights.
pub type Mix = Vec<(Draw, u32)>;

/// After a fault that restarts or replaces a Perseus acceptor's data (a kill of its Redis,
/// wipe, rollback, truncate, amnesia), the acceptor counts toward no quorum until its
/// catch-up pass has run (seconds with the soak's keys). Another such fault on another host
/// within that time would leave two acceptors unproven: the data-loss verdict, by design,
/// which needs the operator. So the next one on another host waits this long after the
/// acceptor came back; faults that restart nothing (pauses, cuts, loss) are not held back.
pub const ACCEPTOR_RECOVERY: Duration = Duration::from_secs(15);

/// Whether `call` on `host` restarts a Perseus acceptor or replaces its data.
fn restarts_acceptor(call: &ChaosCall, host: HostName) -> bool {
    host.system == System::Perseus
        && ((call.fault == FaultKind::Kill && call.layer != Layer::Node)
            || (call.fault.is_storage() && call.fault != FaultKind::Snapshot))
}

/// The weight of the layer draws in the default mix.
const LAYER_WEIGHT: u32 = 2;

/// The kinds a mix may name: the faults (not the undoing actions).
fn drawable() -> impl Iterator<Item = &'static Spec> {
    KINDS.iter().filter(|s| s.role != Role::Undoing)
}

/// The kinds a layer draw picks from: the lasting layered faults of the default mix.
fn layered() -> Vec<&'static Spec> {
    drawable()
        .filter(|s| s.layered() && s.soak > 0 && matches!(s.role, Role::Lasting(_)))
        .collect()
}

/// The default mix: every kind with its weight from the table (amnesia has none: it may lose
/// acknowledged writes by design, see docs/faults.md), and the layer draws.
pub fn default_mix() -> Mix {
    drawable()
        .filter(|s| s.soak > 0)
        .map(|s| (Draw::Kind(s), s.soak))
        .chain([(Draw::Layer, LAYER_WEIGHT)])
        .collect()
}

/// Parses a mix like `kill=3,loss=1` (fault kinds' names, `layer`, and `one-way` for both
/// one-way cuts; unnamed kinds get weight 0).
pub fn parse_mix(text: &str) -> Result<Mix> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let name = name.trim();
        let weight: u32 = weight
            .trim()
            .parse()
            .with_context(|| format!("weight {weight:?} of {name} is not a whole number"))?;
        let draws: Vec<Draw> = match name {
            "layer" => vec![Draw::Layer],
            "one-way" => ["isolate-inbound", "isolate-outbound"]
                .iter()
                .filter_map(|n| Spec::named(n))
                .map(Draw::Kind)
                .collect(),
            _ => drawable()
                .filter(|s| s.name == name)
                .map(Draw::Kind)
                .collect(),
        };
        if draws.is_empty() {
            let names: Vec<&str> = drawable().map(|s| s.name).collect();
            bail!(
                "unknown fault kind {name:?} in the mix (one of {}, one-way, layer)",
                names.join(", ")
            );
        }
        mix.extend(draws.into_iter().map(|d| (d, weight)));
    }
    if mix.iter().all(|(_, w)| *w == 0) {
        bail!("the mix {text:?} has no fault with a weight above 0");
    }
    Ok(mix)
}

/// A random fault schedule over `duration` for `hosts`, drawn (seeded) from `mix`: one
/// fault at a time, each undone before the next (a fault that takes a node away hits two
/// hosts at once now and then, which stops the whole cluster), everything undone 10 s before
/// the end.
pub fn random(duration: Duration, hosts: &[HostName], seed: u64, mix: &[(Draw, u32)]) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let end = duration.as_secs_f64() - 10.0;
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut t = 5.0 + rng.random_range(0.0..3.0);
    // The last acceptor restarted (or whose data was replaced): its host and when it came
    // back (see ACCEPTOR_RECOVERY).
    let mut restarted: Option<(HostName, f64)> = None;
    while t + 3.0 < end && !hosts.is_empty() && total > 0 {
        let mut pick = rng.random_range(0..total);
        let Some(draw) = mix.iter().find_map(|(d, w)| {
            if pick < *w {
                Some(*d)
            } else {
                pick -= w;
                None
            }
        }) else {
            break;
        };
        let first = rng.random_range(0..hosts.len());
        let call = draw_call(draw, &mut rng, hosts, first);
        // One unproven acceptor at a time: a second acceptor restart on another host waits
        // until the first has had its catch-up time.
        if let (true, Some((host, back))) = (restarts_acceptor(&call, hosts[first]), restarted) {
            if host != hosts[first] {
                t = t.max(back + ACCEPTOR_RECOVERY.as_secs_f64());
            }
        }
        if t + 3.0 >= end {
            break;
        }
        let hold = rng.random_range(2.0..8.0_f64).min(end - t);
        let (at, until) = (
            Duration::from_secs_f64(t),
            Duration::from_secs_f64(t + hold),
        );
        let mut victims = vec![hosts[first]];
        // Two Perseus hosts killed at once restart two Redis acceptors: neither can be proven
        // as new as before (a restart may have loaded a truncated or older AOF), so the nodes
        // answer with the data-loss verdict until the operator runs `node accept-loss`, by
        // design (docs/design-acceptor-recovery.md). The soak checks what recovers by itself,
        // so it kills one Perseus host at a time; pauses and isolations still hit two.
        let restarts_acceptors =
            call.fault == FaultKind::Kill && hosts[first].system == System::Perseus;
        if call.fault.spec().takes_node_away
            && call.layer == Layer::Host
            && hosts.len() > 2
            && !restarts_acceptors
            && rng.random_bool(0.15)
        {
            let second = (first + rng.random_range(1..hosts.len())) % hosts.len();
            victims.push(hosts[second]);
        }
        if call.fault.takes_no_host() {
            victims.truncate(1);
        }
        for host in victims {
            let mut fault = call.clone();
            if !fault.fault.takes_no_host() {
                fault.host = Some(HostArg::Host(host));
            }
            // A storage fault hits the whole host or, on Perseus, half the time only the part
            // that keeps the data (the node keeps running and must notice).
            if fault.fault.is_storage()
                && host.system == System::Perseus
                && fault.fault.spec().layered()
                && rng.random_bool(0.5)
            {
                fault.layer = fault.fault.spec().layers[0];
            }
            if restarts_acceptor(&fault, host) {
                // It comes back when the fault is undone (a kill) or the action returns (the
                // storage faults restart it themselves; a rollback at the end of its hold).
                let back = if fault.fault.spec().after.is_some() || fault.undo().is_some() {
                    t + hold
                } else {
                    t
                };
                restarted = Some((host, back));
            }
            match fault.fault.spec().after.clone() {
                // What must come first (a snapshot before a rollback) at the start, the fault
                // itself at the end: the writes of the seconds between are what it loses.
                Some(first) => {
                    steps.push(Step::new(at, ChaosCall::new(first, fault.host)));
                    steps.push(Step::new(until, fault));
                }
                None => {
                    // An instant fault (amnesia) leaves nothing to undo: heal its host anyway.
                    let undo = fault
                        .undo()
                        .unwrap_or_else(|| ChaosCall::new(FaultKind::Heal, fault.host));
                    steps.push(Step::new(at, fault));
                    steps.push(Step::new(until, undo));
                }
            }
        }
        t += hold + rng.random_range(3.0..8.0);
    }
    steps.sort_by_key(|s| s.at);
    Scenario {
        duration,
        steps,
        expect: vec![
            Expect::NoViolations(NoViolations {}),
            Expect::FaultsUndone(FaultsUndone {}),
        ],
        explain: None,
    }
}

/// The action of one draw (on no host yet), its parameters drawn from the kind's examples.
fn draw_call(draw: Draw, rng: &mut StdRng, hosts: &[HostName], first: usize) -> ChaosCall {
    let (spec, layer) = match draw {
        Draw::Kind(spec) => (spec, Layer::Host),
        Draw::Layer => {
            let kinds = layered();
            let spec = kinds[rng.random_range(0..kinds.len())];
            let layer = if rng.random_bool(0.5) {
                Layer::Acceptor
            } else {
                Layer::Node
            };
            (spec, layer)
        }
    };
    let mut fault = spec.examples[rng.random_range(0..spec.examples.len())].clone();
    if let FaultKind::Partition(_) = fault {
        if hosts.len() == 3 && rng.random_bool(0.3) {
            // An arbitrary two-sided cut: one host against the others.
            let alone = hosts[first];
            let rest: Vec<HostName> = hosts.iter().copied().filter(|h| *h != alone).collect();
            fault = FaultKind::Partition(Shape::Groups(vec![vec![alone], rest]));
        }
    }
    let scope = spec.scoped.then(|| {
        if rng.random_bool(0.25) {
            Scope::All
        } else {
            Scope::Peers
        }
    });
    ChaosCall {
        fault,
        host: None,
        layer,
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_soak_snapshots_before_each_rollback_of_the_same_host() {
        let hosts = System::Perseus.hosts();
        let mix = parse_mix("wipe=1,rollback=2,truncate=1").unwrap();
        let s = random(Duration::from_secs(600), &hosts, 5, &mix);
        let mut rollbacks = 0;
        for (i, st) in s.steps.iter().enumerate() {
            if st.call.fault == FaultKind::Rollback {
                rollbacks += 1;
                assert!(
                    s.steps[..i].iter().any(|p| p.call.fault == FaultKind::Snapshot
                        && p.call.host == st.call.host),
                    "rollback of {:?} without a snapshot before it",
                    st.call.host
                );
            }
        }
        assert!(rollbacks > 0);
        for f in ["wipe", "truncate", "snapshot"] {
            assert!(count(&s, f) > 0, "no {f}");
        }
        assert!(s.steps.iter().any(|st| st.call.layer == Layer::Acceptor));
        // Another system's hosts have no acceptor layer.
        let s = random(Duration::from_secs(600), &System::Etcd.hosts(), 5, &mix);
        assert!(s.steps.iter().all(|st| st.call.layer == Layer::Host));
    }

    #[test]
    fn acceptor_restarts_on_two_hosts_are_never_closer_than_a_catch_up() {
        let hosts = System::Perseus.hosts();
        let mix = parse_mix("kill=2,wipe=1,rollback=1,truncate=1,pause=1,partition=1").unwrap();
        for seed in 0..40 {
            let s = random(Duration::from_secs(600), &hosts, seed, &mix);
            // Every moment an acceptor comes back, and on which host.
            let mut back: Vec<(Duration, Option<HostArg>)> = Vec::new();
            for st in &s.steps {
                let restarts = match st.call.fault {
                    FaultKind::Start => st.call.layer != Layer::Node,
                    FaultKind::Wipe | FaultKind::Rollback | FaultKind::Truncate(_) => true,
                    _ => false,
                };
                if restarts {
                    back.push((st.at, st.call.host));
                }
            }
            for pair in back.windows(2) {
                let ((t0, h0), (t1, h1)) = (&pair[0], &pair[1]);
                assert!(
                    h0 == h1 || *t1 >= *t0 + ACCEPTOR_RECOVERY - Duration::from_secs(8),
                    "seed {seed}: {h0:?} back at {t0:?}, {h1:?} at {t1:?}"
                );
            }
            assert!(
                s.steps
                    .iter()
                    .filter(|st| st.call.fault == FaultKind::Kill)
                    .count()
                    > 0
            );
        }
    }

    fn count(s: &Scenario, name: &str) -> usize {
        s.steps
            .iter()
            .filter(|st| st.call.fault.name() == name)
            .count()
    }

    #[test]
    fn random_schedules_are_seeded_undo_every_fault_and_end_early() {
        let hosts = perseus_model::System::Perseus.hosts();
        let a = random(Duration::from_secs(300), &hosts, 7, &default_mix());
        let b = random(Duration::from_secs(300), &hosts, 7, &default_mix());
        assert_eq!(a, b);
        assert!(a.steps.len() >= 10);
        let last = a.steps.last().unwrap().at;
        assert!(last <= Duration::from_secs(290));
        assert_eq!(count(&a, "kill"), count(&a, "start"));
        assert_eq!(count(&a, "pause"), count(&a, "resume"));
        let healed: usize = KINDS
            .iter()
            .filter(|s| s.role == Role::Lasting(FaultKind::Heal))
            .map(|s| count(&a, s.name))
            .sum();
        assert_eq!(healed, count(&a, "heal"));
        assert_eq!(count(&a, "amnesia"), 0);
    }

    #[test]
    fn a_long_soak_draws_every_kind_of_the_mix() {
        let hosts = perseus_model::System::Perseus.hosts();
        let s = random(Duration::from_secs(3000), &hosts, 3, &default_mix());
        for spec in KINDS.iter().filter(|s| s.soak > 0) {
            assert!(count(&s, spec.name) > 0, "no {}", spec.name);
        }
        for layer in [Layer::Acceptor, Layer::Node] {
            assert!(s.steps.iter().any(|st| st.call.layer == layer));
        }
        // A killed acceptor is started as an acceptor.
        for st in s.steps.iter().filter(|st| st.call.fault == FaultKind::Kill) {
            assert!(s
                .steps
                .iter()
                .any(|u| u.at > st.at && Some(u.call.clone()) == st.call.undo()));
        }
        let only_loss = parse_mix("loss=1").unwrap();
        let s = random(Duration::from_secs(120), &hosts, 3, &only_loss);
        assert!(s
            .steps
            .iter()
            .all(|st| matches!(st.call.fault, FaultKind::Loss(_) | FaultKind::Heal)));
        assert_eq!(parse_mix("one-way=2").unwrap().len(), 2);
        let with_amnesia = parse_mix("amnesia=1").unwrap();
        let s = random(Duration::from_secs(60), &hosts, 3, &with_amnesia);
        assert_eq!(count(&s, "amnesia"), count(&s, "heal"));
        assert!(parse_mix("kill=2,quake=1").is_err());
        assert!(parse_mix("layer=1").is_ok());
        assert!(parse_mix("heal=1").is_err());
        assert!(parse_mix("kill=0").is_err());
        assert!(parse_mix("kill=x").is_err());
    }
}
