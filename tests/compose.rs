//! `docker-compose.yml`, read with a YAML parser (no Docker engine is needed): RabbitMQ,
//! PostgreSQL and the bridge, the simulator behind the `demo` profile, and only settings the
//! bridge knows; ports on 127.0.0.1 only, every credential and token from `.env` (ignored by
//! git and docker, described by `.env.example` without a secret), never `guest`.

use std::collections::BTreeMap;

use astute_bridge::config::Settings;
use yaml_rust2::{Yaml, YamlLoader};

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn compose() -> Yaml {
    let text = read("docker-compose.yml");
    YamlLoader::load_from_str(&text)
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn environment(service: &Yaml) -> BTreeMap<String, String> {
    service["environment"]
        .as_hash()
        .map(|vars| {
            vars.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_brings_up_the_broker_the_database_the_bridge_and_a_simulator_on_demand() {
    let file = compose();
    let services = &file["services"];
    for name in ["rabbitmq", "postgres", "bridge"] {
        assert!(!services[name].is_badvalue(), "service {name}");
        assert!(
            services[name]["profiles"].is_badvalue(),
            "{name} runs without a profile"
        );
    }
    let bridge = &services["bridge"];
    assert_eq!(strings(&bridge["command"]), ["serve"]);
    for dependency in ["rabbitmq", "postgres"] {
        assert_eq!(
            bridge["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy"),
            "the bridge waits for {dependency}"
        );
    }
    assert!(environment(bridge)["ASTUTE_BRIDGE__DATABASE__URL"].starts_with("postgres://"));

    let simulator = &services["astute-simulator"];
    assert_eq!(strings(&simulator["profiles"]), ["demo"]);
    assert_eq!(strings(&simulator["command"])[0], "simulate-astute");
}

#[test]
fn every_setting_compose_gives_is_one_the_bridge_knows() {
    let file = compose();
    let services = file["services"].as_hash().expect("services");
    for (name, service) in services {
        for (key, value) in environment(service) {
            if !key.starts_with("ASTUTE_BRIDGE__") {
                continue;
            }
            // Unknown keys are refused by the loader: set each alone and load, with what
            // a filled-in .env would give.
            let value = interpolate(&value);
            temp_env(&key, &value, || {
                Settings::load(None).unwrap_or_else(|e| {
                    panic!("{name:?}: {key}={value} is not a valid setting: {e}")
                });
            });
        }
    }
}

/// Runs `f` with one environment variable set (this test binary's only test that reads it).
fn temp_env(key: &str, value: &str, f: impl FnOnce()) {
    // SAFETY: no other thread of this test reads or writes the environment meanwhile.
    unsafe { std::env::set_var(key, value) };
    f();
    unsafe { std::env::remove_var(key) };
}

/// The names of the `${NAME…}` references of a compose value.
fn references(value: &str) -> Vec<String> {
    value
        .split("${")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// The value with every `${…}` replaced as compose would from a filled-in .env.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        // A distinct value per variable, as a real .env has.
        let name = references(&rest[start..=end]).concat().to_ascii_lowercase();
        out.push_str(&format!("{name}0123456789abcdef"));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `.env.example`'s variables and values.
fn env_example() -> BTreeMap<String, String> {
    read(".env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn ports_are_local_and_credentials_come_from_dot_env_never_guest() {
    let text = read("docker-compose.yml");
    assert!(
        !text.contains("guest"),
        "compose never uses RabbitMQ's guest user"
    );
    let file = compose();
    let services = file["services"].as_hash().expect("services");
    for (name, service) in services {
        for port in strings(&service["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} beyond this host"
            );
        }
    }
    let services = &file["services"];
    let rabbitmq = environment(&services["rabbitmq"]);
    let postgres = environment(&services["postgres"]);
    let bridge = environment(&services["bridge"]);
    let simulator = environment(&services["astute-simulator"]);
    for (what, value, wanted) in [
        (
            "RabbitMQ's user",
            &rabbitmq["RABBITMQ_DEFAULT_USER"],
            "RABBITMQ_USER",
        ),
        (
            "RabbitMQ's password",
            &rabbitmq["RABBITMQ_DEFAULT_PASS"],
            "RABBITMQ_PASSWORD",
        ),
        (
            "PostgreSQL's user",
            &postgres["POSTGRES_USER"],
            "POSTGRES_USER",
        ),
        (
            "PostgreSQL's password",
            &postgres["POSTGRES_PASSWORD"],
            "POSTGRES_PASSWORD",
        ),
    ] {
        assert_eq!(
            references(value),
            [wanted],
            "{what} comes from .env: {value}"
        );
        assert!(
            value.contains(":?"),
            "{what}: compose refuses to start without it"
        );
    }
    for (url, names) in [
        (
            &bridge["ASTUTE_BRIDGE__DATABASE__URL"],
            ["POSTGRES_USER", "POSTGRES_PASSWORD"],
        ),
        (
            &bridge["ASTUTE_BRIDGE__AMQP__URL"],
            ["RABBITMQ_USER", "RABBITMQ_PASSWORD"],
        ),
        (
            &simulator["ASTUTE_BRIDGE__AMQP__URL"],
            ["RABBITMQ_USER", "RABBITMQ_PASSWORD"],
        ),
    ] {
        assert_eq!(references(url), names, "the URL is built from .env: {url}");
    }
    let tokens = &bridge["ASTUTE_BRIDGE__HTTP__TOKENS"];
    assert_eq!(
        references(tokens),
        ["BRIDGE_OPERATOR_TOKEN", "BRIDGE_READER_TOKEN"],
        "{tokens}"
    );

    // .env.example names every variable compose uses, with no secret filled in.
    let example = env_example();
    for service in file["services"].as_hash().expect("services").values() {
        for value in environment(service).values() {
            for name in references(value) {
                assert!(
                    example.contains_key(&name),
                    "{name} is missing from .env.example"
                );
            }
        }
    }
    for (name, value) in &example {
        if name.contains("PASSWORD") || name.contains("TOKEN") {
            assert!(value.is_empty(), ".env.example gives {name} a value");
        }
    }
}

#[test]
fn dot_env_stays_out_of_git_and_of_the_image() {
    let ignored = |file: &str| read(file).lines().any(|l| l.trim() == ".env");
    assert!(ignored(".gitignore"), ".gitignore lists .env");
    assert!(ignored(".dockerignore"), ".dockerignore lists .env");
    let docker = read(".dockerignore");
    for entry in [".git", "target", "*.db"] {
        assert!(
            docker.lines().any(|l| l.trim() == entry),
            ".dockerignore lists {entry}"
        );
    }
}
