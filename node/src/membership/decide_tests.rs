//! The decision table, in the manner of etcd-io/raft's quorum tests: each row is what the
//! inspections saw and what must follow.

use super::*;

const NAMES: [&str; 3] = ["a1", "a2", "a3"];

fn names() -> Vec<String> {
    NAMES.iter().map(|s| s.to_string()).collect()
}

fn set() -> String {
    acceptor_set(NAMES)
}

/// A shorthand per acceptor: `M` member (level), `S` suspect (member, other life), `R`
/// recovering, `I` initialising (level), `i` stale initialising, `U` unmarked empty, `D`
/// unmarked with data, `F` foreign, `Y` initialising (level) for another cluster, `y` the
/// same stale, `O` other set, `X` unreachable, `N` not durable.
fn seen(code: char, index: usize) -> Seen {
    let name = NAMES[index];
    let record = |standing: Standing, stamp: &str, set: String, cluster: &str| {
        Seen::Answered(Inspection {
            identity: Some(Identity {
                cluster: cluster.into(),
                acceptor: name.into(),
                standing,
                mark: "m".into(),
                set,
                stamp: stamp.into(),
            }),
            life: "L".into(),
            data_keys: 1,
            lease: None,
        })
    };
    let unmarked = |keys: u64| {
        Seen::Answered(Inspection {
            identity: None,
            life: "L".into(),
            data_keys: keys,
            lease: None,
        })
    };
    match code {
        'M' => record(Standing::Member, "L", set(), "c"),
        'S' => record(Standing::Member, "old", set(), "c"),
        'R' => record(Standing::Recovering, "L", set(), "c"),
        'I' => record(Standing::Initialising, "L", set(), "c"),
        'i' => record(Standing::Initialising, "old", set(), "c"),
        'U' => unmarked(0),
        'D' => unmarked(5),
        'F' => record(Standing::Member, "L", set(), "other"),
        'Y' => record(Standing::Initialising, "L", set(), "other"),
        'y' => record(Standing::Initialising, "old", set(), "other"),
        'O' => record(Standing::Member, "L", "a1 a2 a4".into(), "c"),
        'X' => Seen::Unreachable,
        'N' => Seen::NotDurable,
        _ => panic!("unknown code {code}"),
    }
}

fn run(known: Option<&str>, codes: &str) -> Decision {
    let seen: Vec<Seen> = codes.chars().enumerate().map(|(i, c)| seen(c, i)).collect();
    let names = names();
    decide(
        &Situation {
            known,
            names: &names,
            node: "me",
            quorum: 2,
            established: false,
            join_after_counted: false,
        },
        &seen,
    )
}

fn kinds(d: &Decision) -> String {
    d.actions
        .iter()
        .map(|a| match a {
            Action::Initialise => "init".to_string(),
            Action::Claim {
                acceptor,
                standing: Standing::Initialising,
            } => format!("claim-i{}", acceptor + 1),
            Action::Claim { acceptor, .. } => format!("claim-r{}", acceptor + 1),
            Action::Replace {
                acceptor,
                standing: Standing::Initialising,
                ..
            } => format!("replace-i{}", acceptor + 1),
            Action::Replace { acceptor, .. } => format!("replace-r{}", acceptor + 1),
            Action::Join { acceptor, .. } => format!("join{}", acceptor + 1),
            Action::Suspect { acceptor } => format!("suspect{}", acceptor + 1),
            Action::CatchUp { target, .. } => format!("catchup{}", target + 1),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn decision_table() {
    use Verdict::*;
    // (known cluster, what was seen, verdict, actions)
    let rows: &[(Option<&str>, &str, Verdict, &str)] = &[
        // A brand-new cluster, and one not yet reachable.
        (None, "UUU", Waiting, "init"),
        (None, "UUX", Waiting, ""),
        (None, "UDU", DataLoss, ""),
        // Healthy.
        (None, "MMM", Serving, ""),
        (Some("c"), "MMM", Serving, ""),
        (Some("c"), "MMX", Serving, ""),
        // One wiped: marked recovering; once recovering, caught up.
        (Some("c"), "MUM", Serving, "claim-r2"),
        (Some("c"), "MRM", Serving, "catchup2"),
        // The pass needs every other acceptor's keys.
        (Some("c"), "MRX", Serving, ""),
        // One restarted or restored: suspect, then the same road.
        (Some("c"), "SMM", Serving, "suspect1"),
        // Two restarted at once, or one restarted and one wiped: nothing proves the data.
        (Some("c"), "SSM", DataLoss, "suspect1 suspect2"),
        (Some("c"), "SUM", DataLoss, "suspect1 claim-r2"),
        // Two wiped while the third holds no data key (the review's F2): never
        // re-initialised, data loss; a node that knows the cluster marks the wiped ones with
        // its id (recovering: they count for nothing).
        (Some("c"), "UUM", DataLoss, "claim-r1 claim-r2"),
        (None, "UUM", DataLoss, ""),
        // Every acceptor wiped while the node runs: it knows the cluster, so data loss, and
        // its marks...
        (Some("c"), "UUU", DataLoss, "claim-r1 claim-r2 claim-r3"),
        // ...make a node that never learned the cluster find it instead of empty acceptors
        // (seeds 72286, 73271, 79206 of the simulation): data loss, never initialised; nor
        // joined when initialising records turn up beside a recovering one.
        (None, "RUU", DataLoss, ""),
        (None, "RRR", DataLoss, ""),
        (None, "RII", DataLoss, ""),
        (None, "SII", DataLoss, "suspect1"),
        (Some("c"), "RII", DataLoss, ""),
        // A node that knows the cluster saw it counted: initialising records without a member
        // beside them are late claims on wiped acceptors (data loss), never finished.
        (Some("c"), "IIU", DataLoss, "claim-r3"),
        (Some("c"), "III", DataLoss, ""),
        // A never-learned node finding a new initialisation's claims beside another cluster's
        // recovering mark sees that cluster: data loss, nothing joined (review, seed 805).
        (None, "YYR", DataLoss, ""),
        // A majority may still be there: unreachable ones may be members.
        (Some("c"), "MXX", Serving, ""),
        (Some("c"), "UXX", Serving, ""),
        (Some("c"), "UUX", DataLoss, "claim-r1 claim-r2"),
        (Some("c"), "MNU", Serving, ""),
        // A half-done initialisation: finished while at least a quorum is initialising.
        (None, "IIU", Serving, "join1 join2 claim-i3"),
        (None, "MIU", Serving, "join2"),
        (None, "III", Serving, "join1 join2 join3"),
        // ...but not when a quorum may have been members: a1 joined, then a1 and a3
        // (members?) were wiped; nor does a2 join alone (no quorum of this cluster's records).
        (None, "UIU", Waiting, ""),
        // One initialising acceptor seen, the others not answering yet: not joined (it may be
        // the losing id of two raced initialisations).
        (None, "IXX", Serving, ""),
        (Some("c"), "MIU", Serving, "join2"),
        // A quorum of members and an intact initialising record: possibly a late claim on a
        // wiped member (the review's interleaving): never joined, marked recovering.
        (Some("c"), "MIM", Serving, "suspect2"),
        (None, "MMI", Serving, "suspect3"),
        // A stale initialising record may have been a member since: suspect, once the others
        // are members (marked recovering sooner, it would stop them joining).
        (None, "iII", Serving, "join2 join3"),
        (None, "iMM", Serving, "suspect1"),
        // Foreign and other-set acceptors.
        (Some("c"), "FMM", Serving, ""),
        (Some("c"), "FFM", DataLoss, ""),
        (Some("c"), "MMO", Misconfigured, ""),
        // Every acceptor carries another cluster's id while this node knows (or remembers,
        // after a restart) its own: foreign, data loss, never initialised over.
        (Some("c"), "FFF", DataLoss, ""),
        // Two initialisations raced while a1 was wiped: a1 holds the other one's intact
        // initialising record. It never counted: claimed like an acceptor without a record.
        (None, "YII", Serving, "replace-i1 join2 join3"),
        (Some("c"), "YMM", Serving, "replace-r1"),
        (Some("c"), "YUM", DataLoss, "claim-r2"),
        // ...but not once restarted or restored since (it may have been a member there).
        (Some("c"), "yMM", Serving, ""),
    ];
    for (known, codes, verdict, actions) in rows {
        let d = run(*known, codes);
        assert_eq!(
            (d.verdict, kinds(&d).as_str()),
            (*verdict, *actions),
            "known {known:?}, seen {codes}: {}",
            d.message
        );
    }
}

/// A node that saw a quorum of members never joins initialising records again: one member left
/// beside two wiped acceptors that received late claims of the initialisation (a paused
/// initialiser's) is data loss, not a cluster to finish (the review's finding 1); a node
/// starting up beside a half-done initialisation still joins them.
#[test]
fn a_node_that_saw_a_quorum_never_joins_late_claims() {
    let seen: Vec<Seen> = "MII".chars().enumerate().map(|(i, c)| seen(c, i)).collect();
    let names = names();
    let situation = |established| Situation {
        known: Some("c"),
        names: &names,
        node: "me",
        quorum: 2,
        established,
        join_after_counted: false,
    };
    let d = decide(&situation(true), &seen);
    assert_eq!((d.verdict, kinds(&d).as_str()), (Verdict::DataLoss, ""));
    let d = decide(&situation(false), &seen);
    assert_eq!(
        (d.verdict, kinds(&d).as_str()),
        (Verdict::Serving, "join2 join3")
    );
}

#[test]
fn a_recovering_acceptor_leased_by_another_node_is_left_to_it() {
    let mut seen: Vec<Seen> = "MRM".chars().enumerate().map(|(i, c)| seen(c, i)).collect();
    if let Seen::Answered(i) = &mut seen[1] {
        i.lease = Some("other".into());
    }
    let names = names();
    let situation = Situation {
        known: Some("c"),
        names: &names,
        node: "me",
        quorum: 2,
        established: false,
        join_after_counted: false,
    };
    assert_eq!(kinds(&decide(&situation, &seen)), "");
    if let Seen::Answered(i) = &mut seen[1] {
        i.lease = Some("me".into());
    }
    assert_eq!(kinds(&decide(&situation, &seen)), "catchup2");
}

#[test]
fn the_operators_temporary_cluster_is_never_adopted() {
    let mut seen: Vec<Seen> = "MMM".chars().enumerate().map(|(i, c)| seen(c, i)).collect();
    for s in &mut seen {
        if let Seen::Answered(Inspection {
            identity: Some(id), ..
        }) = s
        {
            id.cluster = format!("{ACCEPT_LOSS_PREFIX}c");
        }
    }
    let names = names();
    let d = decide(
        &Situation {
            known: None,
            names: &names,
            node: "me",
            quorum: 2,
            established: false,
            join_after_counted: false,
        },
        &seen,
    );
    assert_eq!((d.verdict, d.cluster), (Verdict::Waiting, None));
}
