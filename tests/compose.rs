//! `docker-compose.yml`, read with a YAML parser (no Docker engine is needed): RabbitMQ,
//! PostgreSQL and the bridge, the simulator behind the `demo` profile, and only settings the
//! bridge knows.

use std::collections::BTreeMap;

use astute_bridge::config::Settings;
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml");
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
            // Unknown keys are refused by the loader: set each alone and load.
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
