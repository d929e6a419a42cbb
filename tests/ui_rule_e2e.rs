//! "Alert on this search" end to end (issue 17), in real headless Chromium (the shared
//! WebDriver harness) against `windsock up` with an API token: the search page's button
//! opens a form filled with the search; without the token the alerter refuses and the form
//! says so; with it, the rule is created and `GET /api/rules` lists it with origin `api`,
//! counting the page's search.
//!
//! Needs `chromium` and `chromium-driver` (Debian); without them the test says so and passes
//! vacuously.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::browser::{self, eventually, get_json, Browser, CHROMEDRIVER, CHROMIUM};
use windsock_testkit::WindsockProcess;

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
const TOKEN: &str = "rule-token-5d21";

#[test]
fn the_search_page_creates_a_query_rule() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install -y chromium chromium-driver)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut windsock = WindsockProcess::new(BIN, &["up"], &dir.path().join("data"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/1 * * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s")
        .env("WINDSOCK_API_TOKEN", TOKEN);
    windsock.start().unwrap();
    let base = windsock.base_url();
    let indexed = eventually(Duration::from_secs(60), || {
        let answer = get_json(&format!(
            "{base}/api/search?q=kind:observation&from=now-5m&limit=0"
        ))?;
        (answer["total"].as_u64()? > 0).then_some(())
    });
    assert!(
        indexed.is_some(),
        "no observation indexed within 60 s:\n{}",
        windsock.logs()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    browser::session(&runtime, &mut windsock, async |b| drive(b, &base).await);
}

async fn drive(b: &Browser, base: &str) {
    b.window_size(1400, 1000).await;
    b.goto(&format!("{base}/search?q=kind:observation&from=now-5m"))
        .await;
    b.wait(
        "the search's hits",
        "return document.querySelectorAll('tr.hit').length > 0",
    )
    .await;
    b.js("sessionStorage.removeItem('windsock.apiToken')").await;
    b.js("document.getElementById('alert-on-search').click()")
        .await;
    let shown = b
        .wait(
            "the form, filled with the search",
            "const f = document.querySelector('.alert-rule-form'); return !f.hidden && document.querySelector('.alert-rule-query').textContent",
        )
        .await;
    assert_eq!(shown, json!("kind:observation"));
    let fill = "document.getElementById('rule-name').value = 'too_many_observations'; \
                document.getElementById('rule-count').value = '100000'; \
                const g = document.getElementById('rule-group-by'); g.value = 'region'; \
                document.querySelector('.alert-rule-form').requestSubmit()";
    b.js(fill).await;
    let refused = b
        .wait(
            "the refusal without a token",
            "const m = document.querySelector('.alert-rule-message').textContent; return m.includes('token') && m",
        )
        .await;
    assert!(refused.as_str().unwrap().contains("API token"), "{refused}");
    assert!(rule(base, "too_many_observations").is_none());

    b.js(&format!(
        "sessionStorage.setItem('windsock.apiToken', '{TOKEN}')"
    ))
    .await;
    b.js("document.querySelector('.alert-rule-form').requestSubmit()")
        .await;
    b.wait(
        "the rule created",
        "return document.querySelector('.alert-rule-message').textContent.includes('created')",
    )
    .await;
    let created = rule(base, "too_many_observations").expect("listed by GET /api/rules");
    assert_eq!(created["origin"], "api");
    assert_eq!(created["kind"], "query");
    assert_eq!(created["config"]["query"], "kind:observation");
    assert_eq!(created["config"]["above"], 100000);
    assert_eq!(created["config"]["group_by"], "region");
    assert_eq!(created["config"]["window"], "1m");
}

/// The rule `name` as `GET /api/rules` lists it.
fn rule(base: &str, name: &str) -> Option<Value> {
    let rules = get_json(&format!("{base}/api/rules"))?;
    rules["rules"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}
