//! windsock's configuration: one TOML file with environment overrides.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config`, default
//! `windsock.toml`, optional), then `WINDSOCK_<SECTION>__<KEY>` environment variables
//! (`WINDSOCK_HTTP__LISTEN=127.0.0.1:9000`), then the named secret variables
//! (`OPENWEATHERMAP_API_KEY`, `WINDSOCK_SLACK_WEBHOOK_URL`, `WINDSOCK_API_TOKEN`).

mod alerter;
mod bus;
mod collector;
mod forecaster;
mod indexer;
mod regions;
mod ui;

pub use alerter::*;
pub use bus::*;
pub use collector::*;
pub use forecaster::*;
pub use indexer::*;
pub use regions::*;
pub use ui::*;

use crate::secret::Secret;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variables named `<ENV_PREFIX><SECTION><ENV_SPLIT><KEY>` override keys.
const ENV_PREFIX: &str = "WINDSOCK_";
const ENV_SPLIT: &str = "__";

/// `WINDSOCK_` variables that are not configuration keys: the config file's path (read by
/// the command line) and the secrets (which have their own rule).
const NOT_KEYS: &[&str] = &["WINDSOCK_CONFIG"];

/// Environment variables that carry secrets, and the config key each one sets.
pub const SECRET_ENV: &[(&str, &str)] = &[
    ("OPENWEATHERMAP_API_KEY", "collector.openweathermap.api_key"),
    ("WINDSOCK_SLACK_WEBHOOK_URL", "alerter.slack.webhook_url"),
    ("WINDSOCK_API_TOKEN", "http.api_token"),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where every service keeps its state (index, forecaster history, alert state).
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub bus: BusConfig,
    pub collector: CollectorConfig,
    pub indexer: IndexerConfig,
    pub forecaster: ForecasterConfig,
    pub alerter: AlerterConfig,
    pub ui: UiConfig,
    pub regions: Vec<Region>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            bus: BusConfig::default(),
            collector: CollectorConfig::default(),
            indexer: IndexerConfig::default(),
            forecaster: ForecasterConfig::default(),
            alerter: AlerterConfig::default(),
            ui: UiConfig::default(),
            regions: senegal_regions(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address the HTTP API, UI, `/healthz` and `/metrics` listen on.
    pub listen: SocketAddr,
    /// The URL people reach the UI at, used in links (such as those in Slack messages).
    /// Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Required as `Authorization: Bearer <token>` on changing requests when set.
    /// Set it with `WINDSOCK_API_TOKEN`.
    pub api_token: Option<Secret>,
    /// Listening on a non-loopback address without `api_token` is refused unless this is
    /// true: anyone who reaches the port could then create and delete silences.
    pub allow_anonymous_writes: bool,
    /// The largest request body accepted (a 413 beyond).
    pub max_body_bytes: usize,
    /// The longest request URI (path and query) accepted (a 414 beyond).
    pub max_uri_bytes: usize,
}

/// hyper refuses a longer request URI itself, with an empty 414, before any middleware runs
/// (`MAX_URI_LEN` in hyper's HTTP/1 parser; `axum::serve` does not let it be configured).
pub const HYPER_MAX_URI_BYTES: usize = 65_534;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().unwrap(),
            public_url: None,
            api_token: None,
            allow_anonymous_writes: false,
            // axum's own default for body extractors: `/predict`'s 20,000 rows fit.
            max_body_bytes: 2 * 1024 * 1024,
            // A search query of the longest allowed length (4 KiB) fully percent-encoded is
            // 12 KiB; this leaves room for the other parameters.
            max_uri_bytes: 16 * 1024,
        }
    }
}

impl HttpConfig {
    fn validate(&self, problems: &mut Problems) {
        let anonymous = self.api_token.as_ref().is_none_or(Secret::is_empty);
        if !self.listen.ip().is_loopback() && anonymous && !self.allow_anonymous_writes {
            problems.push(
                "http.api_token",
                format!(
                    "listening on {} (not a loopback address) without an API token would let \
                     anyone who reaches it change state: set WINDSOCK_API_TOKEN (sent as \
                     `Authorization: Bearer <token>` by clients) or set \
                     http.allow_anonymous_writes = true to accept unauthenticated changes",
                    self.listen
                ),
            );
        }
        if let Some(url) = &self.public_url {
            match url::Url::parse(url) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => problems.push(
                    "http.public_url",
                    format!("`{}` is not an http(s) URL", crate::secret::redact_url(url)),
                ),
            }
        }
        if self.max_body_bytes < 1024 {
            problems.push("http.max_body_bytes", "must be at least 1024");
        }
        if !(256..=HYPER_MAX_URI_BYTES).contains(&self.max_uri_bytes) {
            problems.push(
                "http.max_uri_bytes",
                format!(
                    "must be between 256 and {HYPER_MAX_URI_BYTES} (longer URIs are refused by \
                     the HTTP parser itself)"
                ),
            );
        }
    }

    /// The host of `public_url`, lowercase (IPv6 in brackets), when one is configured.
    pub fn public_host(&self) -> Option<String> {
        let url = url::Url::parse(self.public_url.as_deref()?).ok()?;
        Some(url.host_str()?.to_ascii_lowercase())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The console log filter, in `RUST_LOG` syntax (`info`, `windsock_collector=debug`).
    pub level: String,
    /// Records at or above this level are also published as `LogEvent`s on the logs topic.
    pub publish_level: String,
    /// `text` or `json` on the console.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            publish_level: "info".into(),
            format: "text".into(),
        }
    }
}

/// One problem found in a configuration, with the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

/// Collects problems under a key prefix; each section's `validate` reports into one.
#[derive(Default)]
pub struct Problems(pub Vec<ConfigProblem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.into(),
            message: message.into(),
        });
    }
}

impl Config {
    /// Loads the configuration: defaults, then `path` if it exists (an explicitly named file
    /// must exist), then the environment of this process.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let secrets = SECRET_ENV.iter().filter_map(|(var, key)| {
            let value = std::env::var_os(var)?.to_string_lossy().into_owned();
            Some((*key, value))
        });
        Self::load_from(path, env_overrides(), secrets.collect())
    }

    /// As [`Config::load`], with the environment given instead of the process's (tests use
    /// this: tests running in parallel cannot each set the process environment).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let secrets = SECRET_ENV.iter().filter_map(|(var, key)| {
            let (_, value) = env.iter().find(|(k, v)| k == var && !v.is_empty())?;
            Some((*key, value.clone()))
        });
        let secrets = secrets.collect();
        Self::load_from(path, given_env(&env), secrets)
    }

    /// Defaults, the file, the `WINDSOCK_<SECTION>__<KEY>` overrides, then the secrets
    /// (config key, value).
    fn load_from(
        path: Option<&Path>,
        overrides: impl Provider,
        secrets: Vec<(&str, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError {
                    problems: vec![ConfigProblem {
                        key: "--config".into(),
                        message: format!("{} does not exist", p.display()),
                    }],
                })
            }
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("windsock.toml")).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &file {
            // Read and parsed here rather than by figment's `Toml::file`, whose syntax errors
            // quote the offending line: that line may hold a secret.
            let text = read_toml(file).map_err(|problem| ConfigError {
                problems: vec![problem],
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment.merge(overrides);
        for (key, value) in secrets.iter().filter(|(_, value)| !value.is_empty()) {
            figment = figment.merge(Serialized::default(key, value));
        }
        let config: Config = figment.extract().map_err(|err| ConfigError {
            problems: err
                .into_iter()
                .map(|e| ConfigProblem {
                    key: if e.path.is_empty() {
                        "(root)".into()
                    } else {
                        e.path.join(".")
                    },
                    message: describe(&e.path, &e.kind),
                })
                .collect(),
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Every semantic problem of a configuration that parsed.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Problems::default();
        if self.regions.is_empty() {
            problems.push("regions", "at least one region is needed");
        }
        validate_regions(&self.regions, &mut problems);
        for (key, filter) in [
            ("log.level", &self.log.level),
            ("log.publish_level", &self.log.publish_level),
        ] {
            if tracing_subscriber::EnvFilter::builder()
                .parse(filter)
                .is_err()
            {
                problems.push(
                    key,
                    format!("`{filter}` is not a log filter (try info, warn, debug)"),
                );
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            problems.push("log.format", "must be `text` or `json`");
        }
        self.http.validate(&mut problems);
        self.bus.validate(&mut problems);
        self.collector.validate(&mut problems);
        self.indexer.validate(&mut problems);
        self.forecaster.validate(&mut problems);
        self.alerter.validate(&mut problems);
        self.ui.validate(&mut problems);
        problems.0
    }

    /// The configured region of that name, if any.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
}

/// The text of a TOML file, or the problem with it: where the syntax breaks and how, never
/// the text itself.
fn read_toml(path: &Path) -> Result<String, ConfigProblem> {
    let problem = |message: String| ConfigProblem {
        key: path.display().to_string(),
        message,
    };
    let bytes =
        std::fs::read(path).map_err(|err| problem(format!("cannot be read: {}", err.kind())))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let (line, column) = position(&err.as_bytes()[..err.utf8_error().valid_up_to()]);
        problem(format!(
            "is not UTF-8 text (invalid byte at line {line}, column {column})"
        ))
    })?;
    if let Err(err) = text.parse::<toml::Table>() {
        let at = err.span().map_or(0, |span| span.start).min(text.len());
        let (line, column) = position(text.as_bytes().get(..at).unwrap_or_default());
        // toml's message names what the parser expected; only its first line is kept,
        // so nothing the parser may add after it can carry text from the file.
        let kind = err.message().lines().next().unwrap_or("").trim();
        return Err(problem(format!(
            "TOML syntax error at line {line}, column {column}: {}",
            if kind.is_empty() {
                "invalid TOML"
            } else {
                kind
            }
        )));
    }
    Ok(text)
}

/// The 1-based line and column (in characters) just after `before`.
fn position(before: &[u8]) -> (usize, usize) {
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// Whether `path` is a secret key, a section holding one, or inside one: a value found
/// there may be (or contain) the secret, so errors about it never show it.
fn near_secret(path: &[String]) -> bool {
    let path = path.join(".");
    let within = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    SECRET_ENV
        .iter()
        .any(|(_, key)| within(&path, key) || within(key, &path))
}

/// An extraction error in words; about a secret's place, without the value found there.
fn describe(path: &[String], kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    if path.is_empty() || !near_secret(path) {
        return kind.to_string();
    }
    let shape = |actual: &Actual| match actual {
        Actual::Bool(_) => "a bool",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another type",
    };
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected} (value not shown: it is a secret)",
                shape(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected} (value not shown: it is a secret)",
                shape(actual)
            )
        }
        Kind::UnknownField(..) | Kind::MissingField(_) | Kind::DuplicateField(_) => {
            kind.to_string()
        }
        _ => "invalid value (not shown: it is a secret)".to_string(),
    }
}

/// Whether a `WINDSOCK_` variable, named without the prefix (any case), sets a key: not
/// the config file's path, nor a secret (which has its own rule).
fn is_key(name: &str) -> bool {
    !NOT_KEYS
        .iter()
        .chain(SECRET_ENV.iter().map(|(var, _)| var))
        .filter_map(|var| var.strip_prefix(ENV_PREFIX))
        .any(|var| var.eq_ignore_ascii_case(name))
}

/// `WINDSOCK_<SECTION>__<KEY>` variables of the process as a provider: figment's `Env`, which
/// lowercases the key, makes each `__` a level of nesting (`WINDSOCK_HTTP__LISTEN` sets
/// `http.listen`), and parses values as figment does: `8` is a number, `true` a bool,
/// `[a, b]` an array, anything else a string (a duration is a string: `5m`).
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|name| is_key(name.as_str()))
        .split(ENV_SPLIT)
}

/// [`env_overrides`] over given variables instead of the process's: figment's `Env` reads
/// only `std::env`. Each variable goes as `Env::iter` takes it (the prefix in any case, the
/// key trimmed and lowercased, a key with an empty part skipped) into figment's own
/// nesting and value parsing; a test checks both agree.
fn given_env(env: &[(String, String)]) -> Figment {
    let mut figment = Figment::new();
    for (var, value) in env {
        let var = var.trim();
        let Some(name) = var
            .get(..ENV_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| &var[ENV_PREFIX.len()..])
        else {
            continue;
        };
        if !is_key(name) {
            continue;
        }
        let key = name.replace(ENV_SPLIT, ".").trim().to_ascii_lowercase();
        if key.split('.').any(str::is_empty) {
            continue;
        }
        let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(&key, value));
    }
    figment
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn no_file_at_all_gives_the_documented_defaults() {
        let config = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.regions.len(), 14);
        assert!(config.region("Dakar").is_some());
        assert_eq!(config.bus.kind, BusKind::Embedded);
        assert_eq!(config.collector.source, SourceKind::Simulated);
    }

    #[test]
    fn environment_overrides_the_file_by_one_rule() {
        let f = file("[http]\nlisten = \"127.0.0.1:7000\"\n[collector]\nconcurrency = 2\n");
        let config = Config::load_with_env(
            Some(f.path()),
            env(&[
                ("WINDSOCK_HTTP__LISTEN", "127.0.0.1:9000"),
                ("WINDSOCK_COLLECTOR__SOURCE", "open-meteo"),
                ("WINDSOCK_BUS__KIND", "kafka"),
                ("WINDSOCK_COLLECTOR__SCHEDULE", "*/5 * * * * *"),
                ("WINDSOCK_DATA_DIR", "/tmp/ws"),
                ("WINDSOCK_CONFIG", "/elsewhere/windsock.toml"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.collector.source, SourceKind::OpenMeteo);
        assert_eq!(
            config.collector.concurrency, 2,
            "file values stay where env is silent"
        );
        assert_eq!(config.bus.kind, BusKind::Kafka);
        assert_eq!(config.collector.schedule(), "*/5 * * * * *");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/ws"));
    }

    #[test]
    fn secrets_come_from_their_named_variables_and_never_print() {
        let config = Config::load_with_env(
            None,
            env(&[
                ("OPENWEATHERMAP_API_KEY", "owm-key-123"),
                (
                    "WINDSOCK_SLACK_WEBHOOK_URL",
                    "https://hooks.slack.com/services/T/B/secret",
                ),
                ("WINDSOCK_API_TOKEN", "token-456"),
                ("WINDSOCK_COLLECTOR__SOURCE", "openweathermap"),
            ]),
        )
        .unwrap();
        let key = config.collector.openweathermap.api_key.as_ref().unwrap();
        assert_eq!(key.expose(), "owm-key-123");
        assert_eq!(
            config.http.api_token.as_ref().unwrap().expose(),
            "token-456"
        );
        assert!(config.alerter.slack.webhook_url.is_some());
        let printed = format!(
            "{config:?} {}",
            toml::to_string(&config).unwrap_or_default()
        );
        for secret in ["owm-key-123", "token-456", "hooks.slack.com/services"] {
            assert!(!printed.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let f = file(
            r#"
[collector]
source = "openweathermap"
concurrency = 0
schedule = "every minute"

[[regions]]
name = "Dakar"
lat = 95.0
lon = -17.4

[[regions]]
name = "Dakar"
lat = 14.0
lon = -200.0
"#,
        );
        let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "collector.concurrency",
            "collector.schedule",
            "collector.openweathermap.api_key",
            "regions[0].lat",
            "regions[1].name",
            "regions[1].lon",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_key() {
        let f = file("[http]\nlisen = \"127.0.0.1:1\"\n");
        let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = Config::load_with_env(None, env(&[("WINDSOCK_COLLECTOR__CONCURRENCY", "many")]))
            .unwrap_err();
        assert_eq!(err.problems[0].key, "collector.concurrency", "{err}");
    }

    #[test]
    fn a_network_address_needs_a_token_or_the_explicit_opt_out() {
        let listen = ("WINDSOCK_HTTP__LISTEN", "0.0.0.0:8080");
        let err = Config::load_with_env(None, env(&[listen])).unwrap_err();
        let problem = err
            .problems
            .iter()
            .find(|p| p.key == "http.api_token")
            .unwrap_or_else(|| panic!("no http.api_token problem in {err}"));
        assert!(
            problem.message.contains("WINDSOCK_API_TOKEN")
                && problem
                    .message
                    .contains("http.allow_anonymous_writes = true"),
            "{problem}"
        );
        let err =
            Config::load_with_env(None, env(&[listen, ("WINDSOCK_API_TOKEN", " ")])).unwrap_err();
        assert_eq!(
            err.problems[0].key, "http.api_token",
            "a blank token is none"
        );

        Config::load_with_env(None, env(&[listen, ("WINDSOCK_API_TOKEN", "t0ken")])).unwrap();
        Config::load_with_env(
            None,
            env(&[listen, ("WINDSOCK_HTTP__ALLOW_ANONYMOUS_WRITES", "true")]),
        )
        .unwrap();
        for loopback in ["127.0.0.1:8080", "127.0.0.2:1", "[::1]:8080"] {
            Config::load_with_env(None, env(&[("WINDSOCK_HTTP__LISTEN", loopback)]))
                .unwrap_or_else(|err| panic!("{loopback}: {err}"));
        }
        let err = Config::load_with_env(None, env(&[("WINDSOCK_HTTP__LISTEN", "[::]:8080")]))
            .unwrap_err();
        assert_eq!(err.problems[0].key, "http.api_token", "{err}");
    }

    #[test]
    fn http_limits_and_public_url_are_checked() {
        let f = file(
            "[http]\nmax_body_bytes = 10\nmax_uri_bytes = 70000\npublic_url = \"windsock:8080\"\n",
        );
        let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.public_url",
                "http.max_body_bytes",
                "http.max_uri_bytes"
            ],
            "{err}"
        );
    }

    #[test]
    fn a_toml_syntax_error_gives_its_position_never_the_line() {
        for (text, line) in [
            ("[http]\napi_token = \"s3cret-token\n", 2),
            ("[http]\napi_token = s3cret-token\n", 2),
            (
                "data_dir = \"x\"\n[alerter.slack]\nwebhook_url = \"https://hooks.slack.com/services/s3cret-token\" x\n",
                3,
            ),
            ("[collector.openweathermap]\napi_key = 's3cret-token\n", 2),
            ("[http]\napi_token = \"\"\"s3cret-token", 2),
        ] {
            let f = file(text);
            let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
            let printed = format!("{err} {err:?}");
            assert!(!printed.contains("s3cret"), "{printed}");
            assert_eq!(err.problems.len(), 1, "{printed}");
            let problem = &err.problems[0];
            assert_eq!(problem.key, f.path().display().to_string());
            let at = format!("TOML syntax error at line {line}, column ");
            assert!(problem.message.starts_with(&at), "{text:?}: {printed}");
            assert!(problem.message.len() > at.len(), "the kind is named: {printed}");
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_is_reported_by_position() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(b"[http]\napi_token = \"s3cret\xff\"\n")
            .unwrap();
        let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("line 2, column 20"), "{err}");
    }

    #[test]
    fn a_wrong_type_under_a_secret_key_is_reported_without_the_value() {
        let values = [
            "123456789",
            "1234.5678",
            "[\"s3cret-token\"]",
            "{ value = \"s3cret-token\" }",
            "2026-01-01T00:00:00Z",
        ];
        for key in SECRET_ENV.iter().map(|(_, key)| *key) {
            let (section, name) = key.rsplit_once('.').unwrap();
            for value in values {
                let f = file(&format!("[{section}]\n{name} = {value}\n"));
                let err = Config::load_with_env(Some(f.path()), env(&[])).unwrap_err();
                let printed = format!("{err} {err:?}");
                for secret in ["s3cret", "123456789", "1234.5678", "2026-01-01"] {
                    assert!(!printed.contains(secret), "{key} = {value}: {printed}");
                }
                assert_eq!(err.problems[0].key, key, "{printed}");
            }
            // The same from an environment override.
            let var = format!("WINDSOCK_{}", key.to_ascii_uppercase().replace('.', "__"));
            let err = Config::load_with_env(None, vec![(var, "123456789".into())]).unwrap_err();
            assert!(!err.to_string().contains("123456789"), "{err}");
        }
        // A section that holds a secret, given a value instead of a table.
        let err =
            Config::load_with_env(None, env(&[("WINDSOCK_HTTP", "s3cret-token")])).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        // Elsewhere the value found still helps.
        let err = Config::load_with_env(None, env(&[("WINDSOCK_COLLECTOR__CONCURRENCY", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("many"), "{err}");
    }

    #[test]
    fn an_override_of_each_kind_goes_through_figment_s_parsing() {
        let config = Config::load_with_env(
            None,
            env(&[
                // A string three levels down.
                (
                    "WINDSOCK_COLLECTOR__OPEN_METEO__BASE_URL",
                    "http://meteo.test",
                ),
                ("WINDSOCK_COLLECTOR__SIMULATED__SEED", "7"),
                ("WINDSOCK_COLLECTOR__REPLAY__SPEED", "2.5"),
                ("WINDSOCK_INDEXER__COMMIT_INTERVAL", "250ms"),
                ("WINDSOCK_COLLECTOR__BACKFILL", "2h"),
                ("WINDSOCK_HTTP__ALLOW_ANONYMOUS_WRITES", "true"),
                (
                    "WINDSOCK_COLLECTOR__SIMULATED__FAULTS",
                    "[{kind=silent, region=Dakar, after=1m, duration=5m}]",
                ),
                ("WINDSOCK_REGIONS", "[{name=Thies, lat=14.79, lon=-16.93}]"),
                // The prefix in any case, as figment's `Env` takes it.
                ("windsock_log__level", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(config.collector.open_meteo.base_url, "http://meteo.test");
        assert_eq!(config.collector.simulated.seed, 7);
        assert_eq!(config.collector.replay.speed, 2.5);
        assert_eq!(config.indexer.commit_interval, Duration::from_millis(250));
        assert_eq!(config.collector.backfill, Duration::from_secs(2 * 3600));
        assert!(config.http.allow_anonymous_writes);
        assert!(matches!(
            config.collector.simulated.faults.as_slice(),
            [FaultConfig::Silent { region, after, duration }]
                if region == "Dakar" && *after == Duration::from_secs(60)
                    && *duration == Duration::from_secs(300)
        ));
        let names: Vec<&str> = config.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Thies"]);
        assert_eq!(config.log.level, "debug");
    }

    #[test]
    fn variables_that_are_not_keys_are_left_out_and_unknown_ones_named() {
        let config = Config::load_with_env(
            None,
            env(&[
                ("WINDSOCK_CONFIG", "/elsewhere.toml"),
                ("windsock_config", "/elsewhere.toml"),
                ("WINDSOCK_", "x"),
                ("WINDSOCK_HTTP__", "x"),
                ("WINDSOCK_API_TOKEN", "t0ken"),
                (
                    "WINDSOCK_SLACK_WEBHOOK_URL",
                    "https://hooks.slack.com/services/T/B/s3cret",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.http.api_token.unwrap().expose(), "t0ken");

        let err = Config::load_with_env(None, env(&[("WINDSOCK_HTTP__LISEN", "127.0.0.1:1")]))
            .unwrap_err();
        assert_eq!(err.problems[0].key, "http.lisen", "{err}");
        let err =
            Config::load_with_env(None, env(&[("WINDSOCK_INDEXER__COMMIT_INTERVAL", "soon")]))
                .unwrap_err();
        assert_eq!(err.problems[0].key, "indexer.commit_interval", "{err}");
    }

    /// The child of [`the_process_environment_is_read_as_given_pairs_are`]: loads from its own
    /// environment and prints the outcome.
    #[test]
    fn load_from_the_process_environment_when_asked() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        println!("{CHILD}<{}>", outcome(Config::load(None)));
    }

    const CHILD: &str = "CONFIG_ENV_CHILD";

    fn outcome(loaded: Result<Config, ConfigError>) -> String {
        match loaded {
            Ok(config) => format!(
                "{config:?} token={:?}",
                config.http.api_token.as_ref().map(Secret::expose)
            ),
            Err(err) => format!("{:?}", err.problems),
        }
    }

    /// `Config::load` reads the process environment through figment's `Env`; tests give pairs
    /// to `load_with_env`. Both must read the same variables the same way: a child process of
    /// this test binary, with only the given environment, loads from its own environment.
    #[test]
    fn the_process_environment_is_read_as_given_pairs_are() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[
                ("WINDSOCK_HTTP__LISTEN", "127.0.0.1:9000"),
                ("WINDSOCK_COLLECTOR__SIMULATED__SEED", "7"),
                ("WINDSOCK_INDEXER__COMMIT_INTERVAL", "250ms"),
                ("WINDSOCK_REGIONS", "[{name=Thies, lat=14.79, lon=-16.93}]"),
                ("windsock_Log__Level", "debug"),
                ("WINDSOCK_CONFIG", "/elsewhere.toml"),
                ("WINDSOCK_API_TOKEN", "t0ken"),
                ("WINDSOCK_HTTP__", "x"),
                ("UNRELATED", "x"),
            ],
            &[
                ("WINDSOCK_HTTP__LISEN", "127.0.0.1:1"),
                ("WINDSOCK_COLLECTOR__CONCURRENCY", "many"),
                ("WINDSOCK_HTTP__API_TOKEN", "123456789"),
            ],
        ];
        let me = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        for vars in cases {
            let given = outcome(Config::load_with_env(None, env(vars)));
            let child = std::process::Command::new(&me)
                .args(["--exact", "--nocapture", "--test-threads=1"])
                .arg("config::tests::load_from_the_process_environment_when_asked")
                .env_clear()
                .envs(vars.iter().copied())
                .env(CHILD, "1")
                .current_dir(dir.path())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&child.stdout);
            let read = stdout
                .lines()
                .find_map(|line| line.split_once(&format!("{CHILD}<"))?.1.strip_suffix('>'))
                .unwrap_or_else(|| {
                    panic!(
                        "no outcome from the child: {stdout}{}",
                        String::from_utf8_lossy(&child.stderr)
                    )
                });
            assert_eq!(read, given, "{vars:?}");
        }
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/windsock.toml")), env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
