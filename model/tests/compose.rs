//! The compose files against the systems' table (`model/src/system.rs`): every host of every
//! system is a service of docker-compose.yml with the table's address, image and profile, the
//! inner services (Perseus's nodes) live in their host's network namespace, and no service
//! has a fixed address the table does not know; compose/swarm-stack.yml runs exactly the
//! Perseus hosts. A change on one side only (an address, a service, a profile) fails here.

use std::collections::BTreeSet;
use std::path::Path;

use perseus_model::System;
use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

/// A service's key, looking through `<<: *anchor` (the merge key compose resolves).
fn field<'a>(service: &'a Yaml, key: &str) -> &'a Yaml {
    match &service[key] {
        Yaml::BadValue => &service["<<"][key],
        own => own,
    }
}

fn services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    doc["services"]
        .as_hash()
        .expect("a services map")
        .iter()
        .map(|(k, v)| (k.as_str().expect("a service name").to_string(), v))
        .collect()
}

fn profiles(service: &Yaml) -> Vec<String> {
    field(service, "profiles")
        .as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The systems that have hosts of their own.
fn clusters() -> impl Iterator<Item = System> {
    System::ALL.into_iter().filter(|s| s.cluster() == *s)
}

/// What in docker-compose.yml (its text) disagrees with the table.
fn compose_problems(text: &str) -> Vec<String> {
    let docs = YamlLoader::load_from_str(text).expect("docker-compose.yml is YAML");
    let doc = &docs[0];
    let all = services(doc);
    let find = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    let mut problems = Vec::new();
    let mut known = BTreeSet::new();
    for system in clusters() {
        for host in system.hosts() {
            let names = host.services();
            for name in &names {
                known.insert(name.clone());
                let Some(service) = find(name) else {
                    problems.push(format!("no service {name} (host {host} of {system})"));
                    continue;
                };
                let image = field(service, "image").as_str();
                if image != Some(system.image()) {
                    problems.push(format!(
                        "{name}: image {image:?}, the table says {}",
                        system.image()
                    ));
                }
                let p = profiles(service);
                let fits = match system.profile() {
                    None => p.is_empty(),
                    Some(profile) => p.iter().any(|x| x == profile),
                };
                if !fits {
                    problems.push(format!(
                        "{name}: profiles {p:?}, the table says {:?}",
                        system.profile()
                    ));
                }
            }
            let Some(main) = find(&names[0]) else {
                continue;
            };
            let address = main["networks"]["perseus"]["ipv4_address"].as_str();
            let want = system.address(host.n).to_string();
            if address != Some(want.as_str()) {
                problems.push(format!(
                    "{}: address {address:?}, the table says {want}",
                    names[0]
                ));
            }
            for inner in &names[1..] {
                let mode = find(inner).and_then(|s| s["network_mode"].as_str());
                let want = format!("service:{}", names[0]);
                if mode != Some(want.as_str()) {
                    problems.push(format!("{inner}: network_mode {mode:?}, want {want}"));
                }
            }
        }
    }
    // Every other service with a fixed address or in a host's namespace is a tool, not a host
    // the table forgot.
    let tools = ["client", "chaos"];
    for (name, service) in &all {
        let hosted = !service["networks"]["perseus"]["ipv4_address"].is_badvalue()
            || !service["network_mode"].is_badvalue();
        if hosted && !tools.contains(&name.as_str()) && !known.contains(name) {
            problems.push(format!(
                "{name} runs in docker-compose.yml but no system's table names it"
            ));
        }
    }
    problems
}

fn compose_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    std::fs::read_to_string(path).expect("docker-compose.yml")
}

#[test]
fn docker_compose_runs_every_host_the_table_names() {
    let problems = compose_problems(&compose_text());
    assert!(
        problems.is_empty(),
        "docker-compose.yml drifted from model/src/system.rs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_profile_of_a_system_is_in_docker_compose() {
    let doc = load("docker-compose.yml");
    let used: BTreeSet<String> = services(&doc)
        .iter()
        .flat_map(|(_, s)| profiles(s))
        .collect();
    for system in System::ALL {
        if let Some(profile) = system.profile() {
            assert!(used.contains(profile), "no service has profile {profile}");
        }
    }
}

#[test]
fn the_swarm_stack_runs_the_perseus_hosts() {
    let doc = load("compose/swarm-stack.yml");
    let names: Vec<String> = services(&doc).into_iter().map(|(n, _)| n).collect();
    let hosts: Vec<String> = System::Perseus
        .hosts()
        .iter()
        .map(|h| h.to_string())
        .collect();
    assert_eq!(names, hosts, "compose/swarm-stack.yml's services");
    for (name, service) in services(&doc) {
        assert_eq!(
            service["environment"]["PERSEUS_HOST"].as_str(),
            Some(name.as_str())
        );
        let volumes: Vec<&str> = service["volumes"]
            .as_vec()
            .map(|v| v.iter().filter_map(Yaml::as_str).collect())
            .unwrap_or_default();
        assert!(
            volumes.contains(&format!("{name}-data:/data").as_str()),
            "{name}'s volumes {volumes:?}"
        );
    }
}

/// The check itself bites: one address, one service or one profile changed fails it.
#[test]
fn a_changed_address_service_or_profile_is_caught() {
    let text = compose_text();
    for (from, to) in [
        ("ipv4_address: 10.77.0.22", "ipv4_address: 10.77.0.29"),
        ("\n  z3:\n", "\n  z4:\n"),
        ("profiles: [\"nats\"]", "profiles: [\"jetstream\"]"),
        (
            "network_mode: \"service:a2\"",
            "network_mode: \"service:a1\"",
        ),
    ] {
        let changed = text.replacen(from, to, 1);
        assert_ne!(text, changed, "the file has {from:?}");
        assert!(
            !compose_problems(&changed).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
}
