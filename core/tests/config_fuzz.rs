//! The configuration loader against generated files and environments: keys from the real
//! schema with values of any type, duplicated, truncated, with garbage bytes; secrets under
//! their keys, on broken lines and in the environment. It never panics, every problem names
//! a key or a position in the file, and a secret never appears in an error.

use proptest::prelude::*;
use std::io::Write;
use std::sync::OnceLock;
use windsock_core::config::{Config, SECRET_ENV};

/// Every key of the schema whose parents are all tables (array entries are leaves).
fn schema_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        fn walk(prefix: &str, table: &toml::Table, keys: &mut Vec<String>) {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if let toml::Value::Table(inner) = value {
                    walk(&path, inner, keys);
                }
                keys.push(path);
            }
        }
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut keys = Vec::new();
        walk("", &defaults, &mut keys);
        // Keys unset by default are not serialized.
        for (_, key) in SECRET_ENV {
            keys.push(key.to_string());
        }
        for key in ["http.public_url", "indexer.url", "ui.collector_url"] {
            keys.push(key.to_string());
        }
        keys.sort();
        keys.dedup();
        keys
    })
}

fn secret_keys() -> Vec<&'static str> {
    SECRET_ENV.iter().map(|(_, key)| *key).collect()
}

/// A TOML value of any type, valid or not, as it would be written after `key = `.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}".prop_map(|s| toml::Value::String(s).to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"5m\"".to_string()),
        Just("\"0.0.0.0:8080\"".to_string()),
        Just("[]".to_string()),
        Just("[1, \"two\", 3.0]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("[{ name = \"X\", lat = 1.0, lon = 2.0 }]".to_string()),
        // Broken syntax.
        "[ -~]{0,10}",
        Just("\"unterminated".to_string()),
        Just("[1,".to_string()),
        Just("{".to_string()),
    ]
}

/// The secret written under a secret key: as it should be, or in a shape that is an error.
fn secret_value(secret: &str) -> impl Strategy<Value = String> {
    let s = secret.to_string();
    prop_oneof![
        Just(format!("\"{s}\"")),
        Just(format!("'{s}'")),
        Just(format!("[\"{s}\"]")),
        Just(format!("{{ value = \"{s}\" }}")),
        Just(format!("\"{s}")),
        Just(format!("'{s}")),
        Just(s.clone()),
        Just(format!("\"{s}\" trailing")),
        Just(format!("\"\"\"{s}")),
    ]
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Garbage(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Damage::Garbage(at, bytes)),
    ]
}

/// A generated case: the file's bytes, the environment, and the secret in them.
#[derive(Debug)]
struct Case {
    file: Vec<u8>,
    env: Vec<(String, String)>,
    secret: String,
}

fn case() -> impl Strategy<Value = Case> {
    let keys = schema_keys().to_vec();
    let secret = "[a-z0-9]{12}".prop_map(|s| format!("sekrit-{s}"));
    secret.prop_flat_map(move |secret| {
        let entries =
            proptest::collection::vec((proptest::sample::select(keys.clone()), value()), 0..8);
        let secret_entries = proptest::collection::vec(
            (
                proptest::sample::select(secret_keys()),
                secret_value(&secret),
            ),
            0..3,
        );
        let env = proptest::collection::vec(
            (proptest::sample::select(keys.clone()), "[ -~]{0,16}"),
            0..4,
        );
        let secret_env = proptest::collection::vec(
            (
                proptest::sample::select(
                    SECRET_ENV
                        .iter()
                        .flat_map(|(var, key)| {
                            [
                                var.to_string(),
                                format!("WINDSOCK_{}", key.to_ascii_uppercase().replace('.', "__")),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
                prop_oneof![Just(""), Just("["), Just("{"), Just("\"")],
            ),
            0..3,
        );
        (
            Just(secret),
            entries,
            secret_entries,
            damage(),
            env,
            secret_env,
            any::<bool>(),
        )
            .prop_map(
                |(secret, entries, secret_entries, damage, env, secret_env, sections)| {
                    let mut text = String::new();
                    let secret_entries =
                        secret_entries.into_iter().map(|(k, v)| (k.to_string(), v));
                    for (key, value) in entries.into_iter().chain(secret_entries) {
                        match key.rsplit_once('.').filter(|_| sections) {
                            // As a table header and a key: repeated headers are errors too.
                            Some((section, name)) => {
                                text.push_str(&format!("[{section}]\n{name} = {value}\n"))
                            }
                            None => text.push_str(&format!("{key} = {value}\n")),
                        }
                    }
                    let mut file = text.into_bytes();
                    match damage {
                        Damage::None => {}
                        Damage::Truncate(at) => file.truncate(at % (file.len() + 1)),
                        Damage::Garbage(at, bytes) => {
                            let at = at % (file.len() + 1);
                            file.splice(at..at, bytes);
                        }
                    }
                    let mut vars: Vec<(String, String)> = env
                        .into_iter()
                        .map(|(key, value)| {
                            (
                                format!("WINDSOCK_{}", key.to_ascii_uppercase().replace('.', "__")),
                                value,
                            )
                        })
                        .collect();
                    for (var, shape) in secret_env {
                        vars.push((var, format!("{shape}{secret}")));
                    }
                    Case {
                        file,
                        env: vars,
                        secret,
                    }
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_loader_never_panics_names_every_problem_and_never_shows_a_secret(case in case()) {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(&case.file).unwrap();
        let path = file.path().display().to_string();
        let Err(err) = Config::load_with_env(Some(file.path()), case.env.clone()) else {
            return Ok(());
        };
        let printed = format!("{err}\n{err:?}");
        prop_assert!(!printed.contains(&case.secret), "the secret leaked: {}", printed);
        prop_assert!(!err.problems.is_empty());
        let sections: Vec<&str> = schema_keys().iter().map(|k| k.split('.').next().unwrap()).collect();
        for problem in &err.problems {
            let in_file = problem.key == path
                && (problem.message.starts_with("TOML syntax error at line ")
                    || problem.message.starts_with("is not UTF-8 text (invalid byte at line "));
            let section = problem.key.split(['.', '[']).next().unwrap_or("");
            // An unknown key is named by its own path (`Aforecaster`, `http.lisen`).
            let unknown_key_named = problem.message.starts_with("unknown field")
                && problem.message.contains(&format!("`{}`", problem.key.rsplit('.').next().unwrap_or("")));
            let names_a_key = sections.contains(&section)
                || unknown_key_named
                || (problem.key == "(root)" && problem.message.contains('`'));
            prop_assert!(in_file || names_a_key, "{}: {}", problem.key, problem.message);
            prop_assert!(!problem.message.is_empty());
        }
    }
}

#[test]
fn the_schema_is_walked() {
    let keys = schema_keys();
    for key in [
        "http.listen",
        "http.api_token",
        "alerter.slack.webhook_url",
        "regions",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
    }
}
