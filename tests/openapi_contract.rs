//! The one OpenAPI document, held to what the process really serves (issue 16).
//!
//! - The document `windsock up` serves at `/api/openapi.json` is valid OpenAPI 3.1 by a real
//!   validator (Python's `openapi-spec-validator`, which `scripts/test.sh` installs and points
//!   `OPENAPI_SPEC_VALIDATOR` at), and lists every route windsock has. `windsock ui` in
//!   front of the services serves the same routes; alone, only its own.
//! - Live answers validate against their documented schema: on a `windsock up` with three
//!   days of backfilled history (so forecasts exist) and a quick late-data rule (so alerts
//!   exist), every GET route of the document is called with real values in its path, and
//!   each answer is validated (the `jsonschema` crate) against the schema the document gives
//!   for that status; object schemas are read as closed, so a field served but not
//!   documented fails too. One 400 of each service validates against `ErrorBody`.

use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use windsock_testkit::WindsockProcess;

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every route windsock serves, by method and path as the document names them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/search"),
    ("get", "/api/events/{id}"),
    ("get", "/api/events/{id}/context"),
    ("get", "/api/regions"),
    ("get", "/api/aggregate"),
    ("get", "/api/daily"),
    ("get", "/api/export"),
    ("get", "/api/saved-searches"),
    ("post", "/api/saved-searches"),
    ("delete", "/api/saved-searches/{id}"),
    ("get", "/api/alerts"),
    ("get", "/api/alerts/{id}/history"),
    ("get", "/api/alerts/{id}"),
    ("post", "/api/alerts/{id}/acknowledge"),
    ("delete", "/api/alerts/{id}/acknowledge"),
    ("get", "/api/silences"),
    ("post", "/api/silences"),
    ("delete", "/api/silences/{id}"),
    ("get", "/api/rules"),
    ("post", "/api/rules"),
    ("put", "/api/rules/{name}"),
    ("delete", "/api/rules/{name}"),
    ("get", "/api/deliveries"),
    ("get", "/api/forecast/{region}"),
    ("get", "/api/forecast/{region}/backtest"),
    ("post", "/predict"),
    ("get", "/api/collector/status"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
];

/// Routes that change state, which need the bearer token when one is set.
const CHANGING: &[(&str, &str)] = &[
    ("post", "/api/silences"),
    ("delete", "/api/silences/{id}"),
    ("post", "/api/alerts/{id}/acknowledge"),
    ("delete", "/api/alerts/{id}/acknowledge"),
    ("post", "/api/saved-searches"),
    ("delete", "/api/saved-searches/{id}"),
    ("post", "/api/rules"),
    ("put", "/api/rules/{name}"),
    ("delete", "/api/rules/{name}"),
];

#[test]
fn the_document_is_valid_openapi_3_1_lists_every_route_and_matches_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = WindsockProcess::new(BIN, &["up"], &dir.path().join("up"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "0 0 * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    up.start().unwrap();
    let upstream = up.base_url();
    let doc = document(&upstream);

    assert_eq!(doc["openapi"], "3.1.0", "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "windsock");
    let served = operations(&doc);
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(method, path)| !served.contains(&(method.to_string(), path.to_string())))
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");

    // The bearer scheme exists, changing routes name it, and no operation names another.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    for (method, path) in served.iter() {
        let operation = &doc["paths"][path][method];
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.get(name).is_some(),
                    "{method} {path} names the undefined security scheme `{name}`"
                );
            }
        }
    }
    for (method, path) in CHANGING {
        let security = &doc["paths"][path][method]["security"];
        assert!(
            security
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())),
            "{method} {path} does not document the bearer token: {security}"
        );
    }
    // Every tag an operation uses is described.
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (method, path) in served.iter() {
        for tag in doc["paths"][path][method]["tags"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                tags.contains(tag.as_str().unwrap()),
                "{method} {path}: tag {tag} is not in the document's tags {tags:?}"
            );
        }
    }

    // `windsock ui` in front of those services serves the same routes; alone, only its own
    // and the base routes (it answers nothing else).
    let mut front = WindsockProcess::new(BIN, &["ui"], &dir.path().join("front"))
        .env("WINDSOCK_INDEXER__URL", &upstream)
        .env("WINDSOCK_FORECASTER__URL", &upstream)
        .env("WINDSOCK_ALERTER__URL", &upstream)
        .env("WINDSOCK_UI__COLLECTOR_URL", &upstream);
    front.start().unwrap();
    assert_eq!(operations(&document(&front.base_url())), served);
    let mut alone = WindsockProcess::new(BIN, &["ui"], &dir.path().join("alone"));
    alone.start().unwrap();
    let own = operations(&document(&alone.base_url()));
    let expected: BTreeSet<(String, String)> = served
        .iter()
        .filter(|(_, path)| !path.starts_with("/api/") && path != "/predict")
        .chain(&[("get".to_string(), "/api/openapi.json".to_string())])
        .cloned()
        .collect();
    assert_eq!(own, expected);
    // A service alone: its routes and the base ones.
    let mut indexer = WindsockProcess::new(BIN, &["indexer"], &dir.path().join("indexer"));
    indexer.start().unwrap();
    let own = operations(&document(&indexer.base_url()));
    let expected: BTreeSet<(String, String)> = served
        .iter()
        .filter(|(_, path)| {
            [
                "/api/search",
                "/api/events/",
                "/api/regions",
                "/api/aggregate",
                "/api/daily",
                "/api/export",
                "/api/saved-searches",
                "/api/openapi.json",
            ]
            .iter()
            .any(|p| path.starts_with(p))
                || ["/healthz", "/metrics"].contains(&path.as_str())
        })
        .cloned()
        .collect();
    assert_eq!(own, expected);
    assert!(indexer.stop(Duration::from_secs(20)), "{}", indexer.logs());
    for process in [&mut alone, &mut front, &mut up] {
        assert!(process.stop(Duration::from_secs(20)), "{}", process.logs());
    }

    // Last, as it may be skipped: the real validator.
    let Some(validator) = validator() else {
        return;
    };
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(&validator)
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {validator}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openapi-spec-validator: {said}");
    assert!(said.contains("OK"), "{said}");
}

/// The validator's path, from `OPENAPI_SPEC_VALIDATOR` (set by `scripts/test.sh`), else
/// the venv the script installs it in. Absent: a failure under CI, else a skip. (Not a
/// `WINDSOCK_` variable: windsock reads those as configuration, and refuses unknown ones.)
fn validator() -> Option<String> {
    let cache = std::env::var("XDG_CACHE_HOME")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cache")))
        .unwrap_or_default();
    let path = std::env::var("OPENAPI_SPEC_VALIDATOR")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("{cache}/windsock-tools/venv/bin/openapi-spec-validator"));
    if Path::new(&path).exists() {
        return Some(path);
    }
    let message = format!(
        "openapi-spec-validator not found at {path}: run ./scripts/test.sh (it installs it), \
         or set OPENAPI_SPEC_VALIDATOR"
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// A config for the live test: two regions (one with a name to encode), and a late-data
/// rule that fires within seconds once the backfilled history stops.
const LIVE_CONFIG: &str = r#"
[[regions]]
name = "Dakar"
lat = 14.6928
lon = -17.4467

[[regions]]
name = "Thiès"
lat = 14.7910
lon = -16.9359

[[alerter.rules]]
kind = "late_data"
name = "late_data"
late_after = "4s"
grace = "0s"
"#;

#[test]
fn every_get_route_answers_what_its_schema_documents() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("windsock.toml");
    std::fs::write(&config, LIVE_CONFIG).unwrap();
    let config = config.display().to_string();
    // Four days of history every 20 minutes (a forecast needs two, a 1-day backtest three), refits every
    // 2 s; no further round in the test's time, so every region goes late and alerts fire.
    let mut windsock =
        WindsockProcess::new(BIN, &["--config", &config, "up"], &dir.path().join("data"))
            .env("WINDSOCK_COLLECTOR__SCHEDULE", "0 */20 * * * *")
            .env("WINDSOCK_COLLECTOR__BACKFILL", "4d")
            .env("WINDSOCK_FORECASTER__SCHEDULE", "*/2 * * * * *");
    windsock.start().unwrap();
    let base = windsock.base_url();
    let doc = document(&base);
    let components = closed(&doc["components"]);

    for region in ["Dakar", "Thi%C3%A8s"] {
        eventually(&windsock, &format!("forecast for {region}"), || {
            let answer = get(&base, &format!("/api/forecast/{region}"));
            (answer.status == 200).then_some(())?;
            let points = answer.json()["points"].as_array().map_or(0, Vec::len);
            (points > 0).then_some(())
        });
    }
    let alert = eventually(&windsock, "an alert", || {
        let answer = get(&base, "/api/alerts?state=all");
        let alerts = answer.json()["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        alerts.first().map(|a| a["alert"].clone())
    });
    let event_id = {
        let answer = get(&base, "/api/search?q=kind:observation&from=now-4d&limit=1");
        answer.json()["hits"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no observation: {}", answer.body))
            .to_string()
    };

    // A silence, so the list of silences has one to validate; the POST answer too.
    let created = request(
        &base,
        "POST",
        "/api/silences",
        Some(
            json!({"region": "Dakar", "duration": "2h", "author": "contract",
                    "comment": "the contract test"}),
        ),
    );
    check(&doc, &components, "post", "/api/silences", &created);
    // A query rule through the API, created, replaced and deleted: each answer as documented.
    let mut rule = json!({"name": "contract_rule", "query": "level:error", "window": "1m",
                          "above": 100});
    let posted = request(&base, "POST", "/api/rules", Some(rule.clone()));
    assert_eq!(posted.status, 201, "{}", posted.body);
    check(&doc, &components, "post", "/api/rules", &posted);
    rule["group_by"] = json!("region");
    let put = request(&base, "PUT", "/api/rules/contract_rule", Some(rule));
    assert_eq!(put.status, 200, "{}", put.body);
    check(&doc, &components, "put", "/api/rules/{name}", &put);
    let deleted = request(&base, "DELETE", "/api/rules/contract_rule", None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    check(&doc, &components, "delete", "/api/rules/{name}", &deleted);
    // A saved search, so their list has one to validate; the POST answer too.
    let saved = request(
        &base,
        "POST",
        "/api/saved-searches",
        Some(json!({"name": "contract", "query": "region:Dakar", "columns": ["region"]})),
    );
    check(&doc, &components, "post", "/api/saved-searches", &saved);

    // Every GET operation of the document, with real values in its path.
    let mut checked = Vec::new();
    for (method, template) in operations(&doc) {
        if method != "get" {
            continue;
        }
        let mut path = String::new();
        for (i, segment) in template.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            let value = match (template.as_str(), segment) {
                (_, "{region}") => "Thi%C3%A8s".to_string(),
                (t, "{id}") if t.starts_with("/api/events/") => event_id.clone(),
                (t, "{id}") if t.starts_with("/api/alerts/") => {
                    alert["id"].as_str().unwrap().to_string()
                }
                (t, s) if s.starts_with('{') => {
                    panic!("{t}: no value for {s}: give this test one")
                }
                (_, s) => s.to_string(),
            };
            path.push_str(&value);
        }
        let required: Vec<String> = doc["paths"][&template]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert!(
            required.is_empty(),
            "{template} requires {required:?}: give this test values for them"
        );
        // The default backtest is 7 days, more than the history here.
        if template.ends_with("/backtest") {
            path.push_str("?days=1");
        }
        let answer = get(&base, &path);
        assert_eq!(answer.status / 100, 2, "GET {path}: {}", answer.body);
        check(&doc, &components, "get", &template, &answer);
        checked.push(template);
    }
    assert!(checked.len() >= 14, "{checked:?}");

    // Variants whose answers take other shapes: every kind of event among hits, a context,
    // the alert's history by fingerprint, a backtest, a shorter forecast, one state.
    let fingerprint = alert["fingerprint"].as_str().unwrap();
    for (template, path) in [
        (
            "/api/search",
            "/api/search?q=*&from=now-4d&limit=200".to_string(),
        ),
        (
            "/api/search",
            "/api/search?q=kind:alert&from=now-1h".to_string(),
        ),
        (
            "/api/search",
            "/api/search?q=kind:forecast&from=now-1h".to_string(),
        ),
        (
            "/api/search",
            "/api/search?q=kind:log&from=now-1h&sort=oldest".to_string(),
        ),
        (
            "/api/events/{id}/context",
            format!("/api/events/{event_id}/context?before=3&after=3"),
        ),
        (
            "/api/alerts/{id}/history",
            format!("/api/alerts/{fingerprint}/history"),
        ),
        (
            "/api/alerts",
            "/api/alerts?state=firing&region=Dakar".to_string(),
        ),
        (
            "/api/forecast/{region}",
            "/api/forecast/Dakar?horizon=6&level=0.8".to_string(),
        ),
        (
            "/api/forecast/{region}/backtest",
            "/api/forecast/Dakar/backtest?days=1&level=0.8".to_string(),
        ),
    ] {
        let answer = get(&base, &path);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        check(&doc, &components, "get", template, &answer);
    }

    // /predict, the one POST that reads: 60 hours of history.
    let start = chrono::Utc::now() - chrono::Duration::hours(60);
    let data: Vec<Value> = (0..60)
        .map(|h| {
            let ds = start + chrono::Duration::hours(h);
            json!({"ds": ds.format("%Y-%m-%d %H:00:00").to_string(),
                   "y": 25.0 + (h as f64 / 24.0 * std::f64::consts::TAU).sin() * 3.0})
        })
        .collect();
    let predicted = request(
        &base,
        "POST",
        "/predict",
        Some(json!({"latitude": 14.69, "longitude": -17.45, "data": data})),
    );
    assert_eq!(predicted.status, 200, "{}", predicted.body);
    check(&doc, &components, "post", "/predict", &predicted);

    // Expiring that silence answers it, as documented.
    let id = created.json()["id"].as_str().unwrap().to_string();
    let expired = request(&base, "DELETE", &format!("/api/silences/{id}"), None);
    assert_eq!(expired.status, 200, "{}", expired.body);
    check(&doc, &components, "delete", "/api/silences/{id}", &expired);

    // Acknowledging the alert and withdrawing that answer as documented: 200 while it is
    // open, 409 once it has resolved.
    let acknowledge = format!("/api/alerts/{}/acknowledge", alert["id"].as_str().unwrap());
    let template = "/api/alerts/{id}/acknowledge";
    let acked = request(
        &base,
        "POST",
        &acknowledge,
        Some(json!({"by": "contract", "comment": "the contract test"})),
    );
    assert!([200, 409].contains(&acked.status), "{}", acked.body);
    check(&doc, &components, "post", template, &acked);
    let withdrawn = request(&base, "DELETE", &acknowledge, None);
    assert!([200, 409].contains(&withdrawn.status), "{}", withdrawn.body);
    check(&doc, &components, "delete", template, &withdrawn);

    // One 400 from each service, validated against what its route documents for a 400.
    for (template, path) in [
        ("/api/search", "/api/search?q=temperature_c:%5B30%20TO"),
        ("/api/forecast/{region}", "/api/forecast/Dakar?horizon=abc"),
        ("/api/alerts", "/api/alerts?state=bogus"),
    ] {
        let answer = get(&base, path);
        assert_eq!(answer.status, 400, "GET {path}: {}", answer.body);
        let schema = &doc["paths"][template]["get"]["responses"]["400"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            schema["$ref"], "#/components/schemas/ErrorBody",
            "{template}: its 400 is not documented as ErrorBody"
        );
        check(&doc, &components, "get", template, &answer);
    }
    // The collector's and the UI's routes take no parameters, so nothing of theirs is a
    // 400: their 405 (answered by the hardening layer, in the same shape) stands in.
    for path in ["/api/collector/status", "/_ui/health"] {
        let answer = request(&base, "POST", path, None);
        assert_eq!(answer.status, 405, "POST {path}: {}", answer.body);
        let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
        let errors = validate(&error_body, &components, &answer.json());
        assert!(
            errors.is_empty(),
            "POST {path}: {errors:?}: {}",
            answer.body
        );
    }
    assert!(
        windsock.stop(Duration::from_secs(30)),
        "{}",
        windsock.logs()
    );
}

/// The errors of `instance` against `schema` (closed), whose refs point into `components`.
fn validate(schema: &Value, components: &Value, instance: &Value) -> Vec<String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [closed(schema)],
        "components": components,
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the documented schema does not compile: {e}: {schema}"));
    validator
        .iter_errors(instance)
        .take(10)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Checks `answer` to `method template` against the response `doc` documents for its
/// status: the status is documented, the content type is, and a JSON body validates.
fn check(doc: &Value, components: &Value, method: &str, template: &str, answer: &Answer) {
    let what = format!("{} {template} ({})", method.to_uppercase(), answer.status);
    let responses = &doc["paths"][template][method]["responses"];
    let Some(response) = responses.get(answer.status.to_string()) else {
        panic!(
            "{what}: status not documented (documented: {:?}): {}",
            responses.as_object().map(|r| r.keys().collect::<Vec<_>>()),
            answer.body
        );
    };
    let mime = answer
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let Some(content) = response["content"].as_object() else {
        assert!(answer.body.is_empty(), "{what}: a body, none documented");
        return;
    };
    let Some(media) = content.get(&mime) else {
        panic!(
            "{what}: content type `{mime}` is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        );
    };
    if mime != "application/json" {
        return;
    }
    let errors = validate(&media["schema"], components, &answer.json());
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match its documented schema:\n{}\nanswer: {}",
        errors.join("\n"),
        truncate(&answer.body)
    );
}

/// `schema` read as closed: every object schema listing its `properties` allows no others
/// (unless it says otherwise, or is a branch of an `allOf`, whose siblings add properties).
/// The document leaves objects open, as OpenAPI does; closed, a field the service sends but
/// the document does not name fails the validation.
fn closed(schema: &Value) -> Value {
    let mut schema = schema.clone();
    let mut in_all_of = BTreeSet::new();
    collect_all_of_refs(&schema, &mut in_all_of);
    close(&mut schema, false, &in_all_of);
    schema
}

fn collect_all_of_refs(schema: &Value, found: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(branches) = map.get("allOf").and_then(Value::as_array) {
                for branch in branches {
                    if let Some(target) = branch["$ref"].as_str() {
                        found.insert(target.rsplit('/').next().unwrap().to_string());
                    }
                }
            }
            map.values().for_each(|v| collect_all_of_refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_all_of_refs(v, found)),
        _ => {}
    }
}

fn close(schema: &mut Value, all_of_branch: bool, in_all_of: &BTreeSet<String>) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(|v| close(v, false, in_all_of));
        }
        return;
    };
    let open = all_of_branch || map.contains_key("additionalProperties");
    if map.contains_key("properties") && !open {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "allOf" => {
                for branch in value.as_array_mut().into_iter().flatten() {
                    close(branch, true, in_all_of);
                }
            }
            // Component schemas: by name, open where an allOf extends them.
            "schemas" if value.is_object() => {
                for (name, component) in value.as_object_mut().unwrap() {
                    close(component, in_all_of.contains(name), in_all_of);
                }
            }
            _ => close(value, false, in_all_of),
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(2000).collect()
}

/// Each (method, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let empty = Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

fn document(base: &str) -> Value {
    let answer = get(base, "/api/openapi.json");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{}",
        answer.content_type
    );
    answer.json()
}

fn eventually<T>(
    windsock: &WindsockProcess,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    // A hang guard, not a performance bound.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within 120 s:\n{}",
            windsock.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", truncate(&self.body)))
    }
}

fn get(base: &str, path: &str) -> Answer {
    request(base, "GET", path, None)
}

/// A bare HTTP/1.1 request (the status, content type and body are all this test reads).
fn request(base: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let address = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let content = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_string()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{content}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not HTTP: {head}"));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Answer {
        status,
        content_type: header("content-type").unwrap_or_default(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

#[test]
fn a_schema_that_does_not_match_the_answer_fails_the_check() {
    // The check itself: a wrong field name, a wrong type, an undocumented field, an
    // undocumented status all fail; the right answer passes.
    let doc = json!({
        "paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Thing"}}}}}}}},
        "components": {"schemas": {"Thing": {
            "type": "object",
            "required": ["total"],
            "properties": {"total": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}},
        }}},
    });
    let components = closed(&doc["components"]);
    let answer = |status: u16, body: &str| Answer {
        status,
        content_type: "application/json".into(),
        body: body.into(),
    };
    let passes = |a: &Answer| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&doc, &components, "get", "/x", a)
        }))
        .is_ok()
    };
    assert!(passes(&answer(
        200,
        r#"{"total": 3, "at": "2026-12-01T00:00:00Z"}"#
    )));
    assert!(!passes(&answer(200, r#"{"total_hits": 3}"#)));
    assert!(!passes(&answer(200, r#"{"total": "3"}"#)));
    assert!(!passes(&answer(200, r#"{"total": 3, "extra": true}"#)));
    assert!(!passes(&answer(200, r#"{"total": 3, "at": "yesterday"}"#)));
    assert!(!passes(&answer(404, r#"{"total": 3}"#)));
}
