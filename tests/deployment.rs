//! `docker-compose.yml` cannot be run here (no Docker engine), so it is checked for what
//! would break it: every windsock service runs a real subcommand, and its environment loads
//! into a valid configuration through the same loader the binary uses; the topology holds
//! (indexer replicas, partitions); and `docker compose config` accepts it where docker
//! with its compose plugin is installed.

use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use windsock_core::config::{BusKind, Config};

const SUBCOMMANDS: &[&str] = &["up", "collector", "indexer", "forecaster", "alerter", "ui"];

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml at the repository root");
    let mut value: Value = serde_norway::from_str(&text).expect("docker-compose.yml is YAML");
    value.apply_merge().expect("merge keys resolve");
    value
}

/// The variables a person running `docker compose up` must set (`${NAME:?message}`).
const REQUIRED: &[(&str, &str)] = &[("WINDSOCK_API_TOKEN", "compose-test-token")];

/// As compose interpolates with only `given` set: `${NAME:-default}` becomes `default` when
/// NAME is unset, `${NAME:?message}` NAME's value, or the error compose stops with.
fn interpolate(value: &str, given: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let inner = &rest[start + 2..end];
        let value = given
            .iter()
            .find(|(name, _)| inner.split([':', '-', '?']).next() == Some(name));
        match (inner.split_once(":-"), inner.split_once(":?"), value) {
            (_, _, Some((_, value))) if !value.is_empty() => out.push_str(value),
            (Some((_, default)), _, _) => out.push_str(default),
            (_, Some((name, message)), _) => return Err(format!("{name}: {message}")),
            _ => {}
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("unexpected environment value {other:?}"),
    }
}

#[test]
fn every_windsock_service_runs_a_real_subcommand_with_a_valid_configuration() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let names: Vec<String> = services
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut checked = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for dependency in service["depends_on"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            let dependency = dependency.as_str().unwrap();
            assert!(
                names.iter().any(|n| n == dependency),
                "{name} depends on unknown {dependency}"
            );
        }
        if service["image"].as_str() != Some("windsock:latest") {
            continue;
        }
        let command = service["command"][0].as_str().expect("a command");
        assert!(
            SUBCOMMANDS.contains(&command),
            "{name}: `{command}` is not a windsock subcommand"
        );
        let config = config_of(name, service);
        assert_eq!(config.bus.kind, BusKind::Kafka, "{name} talks over Kafka");
        assert_eq!(config.bus.brokers, "kafka:9092");
        assert_eq!(config.http.listen.to_string(), "0.0.0.0:8080");
        checked.insert(command);
    }
    assert_eq!(
        checked,
        BTreeSet::from(["alerter", "collector", "forecaster", "indexer", "ui"]),
        "every service runs"
    );
}

/// The environment `service` gets, as compose interpolates it with [`REQUIRED`] set.
fn environment(name: &str, service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| {
            let value =
                interpolate(&scalar(v), REQUIRED).unwrap_or_else(|err| panic!("{name}: {err}"));
            (k.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// The configuration `service` runs with, through the binary's own loader.
fn config_of(name: &str, service: &Value) -> Config {
    Config::load_with_env(None, environment(name, service))
        .unwrap_or_else(|err| panic!("service {name}: {err}"))
}

/// The windsock services running `command`, by name.
fn running<'a>(compose: &'a Value, command: &str) -> Vec<(&'a str, &'a Value)> {
    compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, service)| service["image"].as_str() == Some("windsock:latest"))
        .filter(|(_, service)| service["command"][0].as_str() == Some(command))
        .map(|(name, service)| (name.as_str().unwrap(), service))
        .collect()
}

/// Search is redundant: at least two indexer replicas, each in a consumer group of its own
/// (replicas sharing one would each index a part) and on a volume of its own, the UI listing
/// every one; the topics have more than one partition, as many as Kafka gives the topics it
/// creates itself.
#[test]
fn indexer_replicas_each_have_their_own_group_and_volume_and_the_ui_lists_every_one() {
    let compose = compose();
    let indexers = running(&compose, "indexer");
    assert!(indexers.len() >= 2, "two indexer replicas at least");
    let mut groups = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    for (name, service) in &indexers {
        let config = config_of(name, service);
        assert!(
            groups.insert(format!(
                "{}{}",
                config.bus.group_prefix,
                config.indexer.group()
            )),
            "{name} shares its consumer group with another indexer"
        );
        assert_eq!(
            service["deploy"]["replicas"].as_u64().unwrap_or(1),
            1,
            "{name}: compose replicas of one service would share its group"
        );
        let data_dir = config.data_dir.display().to_string();
        let mounts: Vec<&str> = service["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} keeps its index on a volume"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let volume = mounts
            .iter()
            .find_map(|m| m.strip_suffix(&format!(":{data_dir}")))
            .unwrap_or_else(|| panic!("{name}: no volume at its data directory {data_dir}"));
        assert!(
            compose["volumes"].get(volume).is_some(),
            "{name}: {volume} is a named volume"
        );
        assert!(volumes.insert(volume), "{name} shares volume {volume}");
    }
    let [(ui_name, ui)] = running(&compose, "ui")[..] else {
        panic!("one ui");
    };
    let listed: BTreeSet<String> = config_of(ui_name, ui).indexer.url.into_iter().collect();
    let every: BTreeSet<String> = indexers
        .iter()
        .map(|(name, _)| format!("http://{name}:8080"))
        .collect();
    assert_eq!(listed, every, "the UI lists every indexer replica");

    let partitions = config_of(indexers[0].0, indexers[0].1).bus.partitions;
    assert!(partitions > 1, "more than one partition to share");
    assert_eq!(
        scalar(&compose["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]),
        partitions.to_string(),
        "topics Kafka creates itself have as many partitions as windsock's"
    );
}

/// `docker compose config` validates the file as compose itself reads it (interpolation,
/// merge keys, the schema). Where docker or its compose plugin is missing, it says so and
/// passes: the checks above still run.
#[test]
fn docker_compose_config_accepts_the_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose_works = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !compose_works {
        eprintln!(
            "skipping: `docker compose` is not available (docker or its compose plugin is missing)"
        );
        return;
    }
    let mut command = std::process::Command::new("docker");
    command
        .args(["compose", "-f"])
        .arg(root.join("docker-compose.yml"))
        .args(["config", "--quiet"]);
    for (name, value) in REQUIRED {
        command.env(name, value);
    }
    let out = command.output().expect("docker compose runs");
    assert!(
        out.status.success(),
        "docker compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And without the token, compose refuses, naming it.
    let out = std::process::Command::new("docker")
        .args(["compose", "-f"])
        .arg(root.join("docker-compose.yml"))
        .args(["config", "--quiet"])
        .env_remove("WINDSOCK_API_TOKEN")
        .output()
        .expect("docker compose runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WINDSOCK_API_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every service listens on the network, where windsock refuses to start without a token:
/// compose must refuse first, saying which variable to set.
#[test]
fn every_windsock_service_requires_the_api_token() {
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if service["image"].as_str() != Some("windsock:latest") {
            continue;
        }
        let name = name.as_str().unwrap();
        let token = scalar(&service["environment"]["WINDSOCK_API_TOKEN"]);
        let err = interpolate(&token, &[]).expect_err("compose stops without the token");
        assert!(
            err.starts_with("WINDSOCK_API_TOKEN: set WINDSOCK_API_TOKEN"),
            "{name}: {err}"
        );
        // Without it, the service's configuration would not be valid either.
        let mut env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let value = interpolate(&scalar(v), REQUIRED).unwrap();
                (k.as_str().unwrap().to_string(), value)
            })
            .collect();
        env.remove("WINDSOCK_API_TOKEN");
        let err = Config::load_with_env(None, env).expect_err(name);
        assert!(
            err.problems.iter().any(|p| p.key == "http.api_token"),
            "{err}"
        );
    }
}

#[test]
fn secrets_are_passed_from_the_environment_never_written_in_the_file() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
            .unwrap();
    for secret in [
        "OPENWEATHERMAP_API_KEY",
        "WINDSOCK_SLACK_WEBHOOK_URL",
        "WINDSOCK_API_TOKEN",
    ] {
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{secret}:")))
        {
            assert!(
                line.contains(&format!("${{{secret}:-}}"))
                    || line.contains(&format!("${{{secret}:?")),
                "{secret} must come from the environment: {line}"
            );
        }
    }
}

#[test]
fn the_documented_example_configuration_is_valid_and_states_the_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("windsock.example.toml");
    let documented = Config::load_with_env(Some(&example), Vec::new())
        .unwrap_or_else(|err| panic!("windsock.example.toml: {err}"));
    let defaults = Config::load_with_env(None, Vec::new()).unwrap();
    assert_eq!(
        toml::to_string(&documented).unwrap(),
        toml::to_string(&defaults).unwrap(),
        "windsock.example.toml must document the defaults as they are"
    );
}
