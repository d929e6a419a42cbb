//! `docker-compose.yml` cannot be run here (no Docker engine), so it is checked for what
//! would break it: every windsock service runs a real subcommand, and its environment loads
//! into a valid configuration through the same loader the binary uses.

use serde_norway::Value;
use std::collections::BTreeMap;
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
    let mut checked = 0;
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
        let env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .expect("environment as a map")
            .iter()
            .map(|(k, v)| {
                let value =
                    interpolate(&scalar(v), REQUIRED).unwrap_or_else(|err| panic!("{name}: {err}"));
                (k.as_str().unwrap().to_string(), value)
            })
            .collect();
        let config = Config::load_with_env(None, env.clone())
            .unwrap_or_else(|err| panic!("service {name}: {err}"));
        assert_eq!(config.bus.kind, BusKind::Kafka, "{name} talks over Kafka");
        assert_eq!(config.bus.brokers, "kafka:9092");
        assert_eq!(config.http.listen.to_string(), "0.0.0.0:8080");
        checked += 1;
    }
    assert_eq!(checked, 5, "collector, indexer, forecaster, alerter and ui");
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
