//! The on-call pages end to end, in real headless Chromium (the shared WebDriver harness)
//! against `windsock up` with the simulated source and a fake Slack on 127.0.0.1:
//!
//! - the overview lists a firing alert, critical first, with a link to its page;
//! - acknowledging from the alert page (with the token) shows who and when, and the API says so;
//! - the Slack message's buttons open that alert's page, and its silence form filled with the
//!   alert's rule and region, focused; submitting it creates a silence for that region;
//! - the alerts page filters by state and severity from its URL, sorts critical first, links
//!   every row to its page and shows no `null` among the rules' settings;
//! - region cards in trouble come first, flagged by severity; sparklines say their range;
//! - `/?q=...` (the links Slack messages already carry) opens that search at `/search`;
//! - at 390 px no page of these scrolls sideways.
//!
//! Screenshots land in `target/ui-artifacts/` (`oncall-*.png`). Needs `chromium` and
//! `chromium-driver` (Debian); without them the test says so and passes vacuously.

mod support;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::browser::{self, encode, eventually, get_json, Browser, CHROMEDRIVER, CHROMIUM};
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
const TOKEN: &str = "oncall-token-7d2e";
/// Silent from the start: its late_data alert (a warning) fires after 4 s.
const SILENT: &str = "Dakar";
/// Always above its threshold: a critical alert fires at the first observation, before the
/// late_data warning, so newest-first would list it second and only the order by severity
/// lists it first.
const HOT: &str = "Thiès";
/// Always above a threshold that must hold for an hour: pending for the whole test.
const PENDING: &str = "Saint-Louis";
const ONCALL: &str = "Aminata";

fn config() -> String {
    format!(
        r#"
[[regions]]
name = "{SILENT}"
lat = 14.6928
lon = -17.4467

[[regions]]
name = "{HOT}"
lat = 14.7910
lon = -16.9359

[[regions]]
name = "{PENDING}"
lat = 16.0179
lon = -16.4896

[[regions]]
name = "Ziguinchor"
lat = 12.5681
lon = -16.2719

[[regions]]
name = "Tambacounda"
lat = 13.7707
lon = -13.6673

[collector.simulated]
faults = [{{ kind = "silent", region = "{SILENT}", after = "0s", duration = "1h" }}]

[alerter]
evaluation_interval = "200ms"

[[alerter.rules]]
kind = "late_data"
name = "late_data"
severity = "warning"
late_after = "4s"
grace = "0s"

[[alerter.rules]]
kind = "threshold"
name = "heat"
severity = "critical"
metric = "temperature_c"
region = "{HOT}"
above = -50.0
for = "0s"

[[alerter.rules]]
kind = "threshold"
name = "slow_heat"
severity = "info"
metric = "temperature_c"
region = "{PENDING}"
above = -50.0
for = "1h"
"#
    )
}

/// What the fake Slack webhook received: every payload, in order.
#[derive(Default)]
struct Slack {
    payloads: Vec<Value>,
}

async fn webhook(State(slack): State<Arc<Mutex<Slack>>>, body: String) -> &'static str {
    if let Ok(payload) = serde_json::from_str(&body) {
        slack.lock().unwrap().payloads.push(payload);
    }
    "ok"
}

/// The URL of a button (by its `action_id`) in the `actions` blocks of a payload.
fn button_url(payload: &Value, action_id: &str) -> Option<String> {
    payload["blocks"]
        .as_array()?
        .iter()
        .filter(|block| block["type"] == "actions")
        .flat_map(|block| block["elements"].as_array().cloned().unwrap_or_default())
        .find(|element| element["type"] == "button" && element["action_id"] == action_id)
        .and_then(|element| element["url"].as_str().map(str::to_string))
}

#[test]
fn on_call_pages_show_what_is_wrong_and_act_on_an_alert_in_a_real_browser() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install -y chromium chromium-driver)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let slack = Arc::new(Mutex::new(Slack::default()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let webhook_url = format!(
        "http://{}/services/T0001/B0002/oncall",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/services/{*path}", post(webhook))
        .with_state(slack.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("windsock.toml");
    std::fs::write(&config_path, config()).unwrap();
    let config_arg = config_path.display().to_string();
    let mut windsock = WindsockProcess::new(
        BIN,
        &["--config", &config_arg, "up"],
        &dir.path().join("data"),
    )
    .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/1 * * * * *")
    .env("WINDSOCK_COLLECTOR__BACKFILL", "0s")
    .env("WINDSOCK_API_TOKEN", TOKEN)
    .env("WINDSOCK_SLACK_WEBHOOK_URL", &webhook_url);
    windsock.start().unwrap();
    let base = windsock.base_url();

    // The silent region's alert fires and its message reaches Slack with its buttons.
    let alerts_url = format!("{base}/api/alerts?state=firing");
    let firing = eventually(Duration::from_secs(60), || {
        let answer = get_json(&alerts_url)?;
        let alerts = answer["alerts"].as_array()?;
        let late = alerts
            .iter()
            .find(|a| a["alert"]["region"] == SILENT && a["alert"]["rule"] == "late_data")?;
        let hot = alerts.iter().any(|a| a["alert"]["region"] == HOT);
        hot.then(|| late["alert"]["id"].as_str().unwrap().to_string())
    });
    let Some(alert_id) = firing else {
        panic!(
            "no late_data alert for {SILENT} and heat alert for {HOT} fired within 60 s (GET {alerts_url}: {:?}):\n{}",
            http_get(&alerts_url).ok(),
            windsock.logs()
        );
    };
    let payload = eventually(Duration::from_secs(30), || {
        slack
            .lock()
            .unwrap()
            .payloads
            .iter()
            .find(|p| button_url(p, "open_alert").is_some_and(|url| url.ends_with(&alert_id)))
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "Slack received no message with an Open alert button for {alert_id}: {:?}\n{}",
            slack.lock().unwrap().payloads,
            windsock.logs()
        )
    });

    browser::session(&runtime, &mut windsock, async |b| {
        drive(b, &base, &alert_id, &payload).await
    });
}

async fn drive(b: &Browser, base: &str, alert_id: &str, payload: &Value) {
    overview_links_the_firing_alert(b, base, alert_id).await;
    acknowledge_from_the_alert_page(b, base, alert_id).await;
    slack_buttons_open_the_alert_and_a_filled_silence_form(b, base, alert_id, payload).await;
    alerts_page_sorts_filters_and_links(b, base, alert_id).await;
    regions_in_trouble_first(b, base).await;
    old_search_links_open_the_search(b, base).await;
    phone_pages_do_not_scroll_sideways(b, base, alert_id).await;
}

async fn overview_links_the_firing_alert(b: &Browser, base: &str, alert_id: &str) {
    b.goto(&format!("{base}/")).await;
    let link = format!("/alerts/{}", encode(alert_id));
    b.wait(
        "the overview's link to the firing alert",
        &format!("return !!document.querySelector('.overview-alert-list a[href=\"{link}\"]')"),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('nav a[aria-current=page]').textContent")
            .await,
        json!("Overview")
    );
    // Critical first, pending listed too.
    let severities = b
        .js("return [...document.querySelectorAll('.overview-alert-list li')].map(li => li.dataset.severity)")
        .await;
    assert_eq!(
        severities[0],
        json!("critical"),
        "critical first: {severities}"
    );
    let states = b
        .js("return [...document.querySelectorAll('.overview-alert-list li')].map(li => li.dataset.state)")
        .await;
    assert!(
        states.as_array().unwrap().contains(&json!("pending")),
        "the pending alert is listed: {states}"
    );
    // The regions in trouble first, the silent one among them; a point per region on the map.
    b.wait(
        "the silent region flagged",
        &format!(
            "return !!document.querySelector('.overview-region-list li[data-region=\"{SILENT}\"]')"
        ),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('.region-map .point').length")
            .await,
        json!(5)
    );
    assert_eq!(
        b.js(&format!(
            "return document.querySelector('.region-map .point[data-region=\"{SILENT}\"]').getAttribute('class')"
        ))
        .await,
        json!("point trouble-warning")
    );
    // The pipeline in one line per service, with rates once a second reading is in.
    b.wait(
        "the pipeline's rates",
        "return [...document.querySelectorAll('.pipeline li')].some(li => /in \\d/.test(li.textContent))",
    )
    .await;
    b.screenshot("oncall-overview").await;
    // Dark, as the theme toggle leaves it: the map follows the theme.
    b.js("localStorage.setItem('windsock.theme', 'dark'); location.reload()")
        .await;
    b.wait(
        "the overview, dark",
        "return document.documentElement.dataset.theme === 'dark' && !!document.querySelector('.region-map .point')",
    )
    .await;
    assert_eq!(
        b.js("return getComputedStyle(document.querySelector('.region-map .sea')).fill")
            .await,
        json!("rgb(18, 33, 48)")
    );
    b.screenshot("oncall-overview-dark").await;
    b.js("localStorage.removeItem('windsock.theme'); location.reload()")
        .await;
    b.wait(
        "the overview, light again",
        "return !document.documentElement.dataset.theme && !!document.querySelector('.overview-alert-list a')",
    )
    .await;
    let element = b
        .find(&format!(".overview-alert-list a[href=\"{link}\"]"))
        .await;
    b.click(&element).await;
    b.wait(
        "the alert page",
        &format!("return location.pathname === '{link}' && document.querySelector('h1').textContent === 'late_data · {SILENT}'"),
    )
    .await;
}

async fn acknowledge_from_the_alert_page(b: &Browser, base: &str, alert_id: &str) {
    b.goto(&format!("{base}/alerts/{}", encode(alert_id))).await;
    b.wait(
        "the acknowledge form",
        "return !!document.querySelector('#ack-by')",
    )
    .await;
    // Without the token the API refuses, and the page says so in one line.
    let by = b.find("#ack-by").await;
    b.send_keys(&by, ONCALL).await;
    b.click(&b.find_by_text(".ack-form button", "Acknowledge").await)
        .await;
    let refused = b
        .wait(
            "the refusal without a token",
            "const e = document.querySelector('.notice.error[role=alert]'); return e && !e.hidden && e.textContent",
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("token"),
        "the refusal names the token: {refused}"
    );
    let input = b.find("#api-token").await;
    b.send_keys(&input, TOKEN).await;
    b.click(&b.find_by_text(".token button", "Use token").await)
        .await;
    b.click(&b.find_by_text(".ack-form button", "Acknowledge").await)
        .await;
    let shown = b
        .wait(
            "who acknowledged",
            "const p = document.querySelector('.acked'); return p && p.textContent",
        )
        .await;
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains(ONCALL) && shown.contains(" at "),
        "who and when: {shown}"
    );
    let detail = get_json(&format!("{base}/api/alerts/{}", encode(alert_id))).unwrap();
    assert_eq!(detail["alert"]["acknowledged_by"], json!(ONCALL));
    assert!(detail["alert"]["acknowledged_at"].is_string());
    b.wait(
        "the acknowledgement in the timeline",
        "return !!document.querySelector('.timeline li[data-kind=acknowledged]')",
    )
    .await;
    b.screenshot("oncall-alert").await;
    // Withdrawn, the form is back (with the name remembered), and so are the reminders.
    b.click(
        &b.find_by_text(".ack button", "Withdraw acknowledgement")
            .await,
    )
    .await;
    b.wait(
        "the acknowledge form again",
        &format!(
            "const by = document.getElementById('ack-by'); return by && by.value === '{ONCALL}'"
        ),
    )
    .await;
    let detail = get_json(&format!("{base}/api/alerts/{}", encode(alert_id))).unwrap();
    assert_eq!(detail["alert"]["acknowledged_by"], Value::Null);
    b.wait(
        "the withdrawal in the timeline",
        "return !!document.querySelector('.timeline li[data-kind=unacknowledged]')",
    )
    .await;
}

async fn slack_buttons_open_the_alert_and_a_filled_silence_form(
    b: &Browser,
    base: &str,
    alert_id: &str,
    payload: &Value,
) {
    let open = button_url(payload, "open_alert").unwrap();
    assert_eq!(open, format!("{base}/alerts/{}", encode(alert_id)));
    b.goto(&open).await;
    b.wait(
        "the alert page from Slack",
        &format!("return document.querySelector('h1').textContent === 'late_data · {SILENT}'"),
    )
    .await;
    let silence = button_url(payload, "silence").expect("a Silence button");
    b.goto(&silence).await;
    b.wait(
        "the silence form, open and focused",
        "const box = document.getElementById('alert-silence'); return box && !box.hidden && box.contains(document.activeElement)",
    )
    .await;
    let filled = b
        .js("return ['silence-rule', 'silence-region', 'silence-duration', 'silence-author'].map(id => document.getElementById(id).value)")
        .await;
    // The author is the name given to acknowledge, remembered.
    assert_eq!(filled, json!(["late_data", SILENT, "2h", ONCALL]));
    b.click(
        &b.find_by_text("#alert-silence button", "Create silence")
            .await,
    )
    .await;
    b.wait(
        "the silence created",
        "const p = document.querySelector('.alert-silence [role=status]'); return p && p.textContent.startsWith('Silence created')",
    )
    .await;
    let silences = get_json(&format!("{base}/api/silences")).unwrap();
    assert!(
        silences["silences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["region"] == SILENT && s["rule"] == "late_data" && s["author"] == ONCALL),
        "a silence for {SILENT}: {silences}"
    );
    // The related events: the search of the region around the alert.
    b.click(&b.find(".search-link").await).await;
    let query = b
        .wait(
            "the related search",
            "const q = document.getElementById('q'); return location.pathname === '/search' && q && q.value",
        )
        .await;
    assert!(
        query.as_str().unwrap().contains(SILENT),
        "the search names the region: {query}"
    );
}

async fn alerts_page_sorts_filters_and_links(b: &Browser, base: &str, alert_id: &str) {
    b.goto(&format!("{base}/alerts")).await;
    b.wait(
        "firing rows",
        "return document.querySelectorAll('#firing-h ~ div tr.alert-row').length >= 2",
    )
    .await;
    let severities = b
        .js("return [...document.querySelectorAll('#firing-h ~ div tr.alert-row')].map(r => r.dataset.severity)")
        .await;
    // A slow machine may make another region late too (a warning): the order is what counts.
    let rank = |s: &Value| ["critical", "warning", "info"].iter().position(|r| s == r);
    let ranks: Vec<_> = severities.as_array().unwrap().iter().map(rank).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]) && ranks.contains(&Some(1)),
        "critical first, the warning among them: {severities}"
    );
    assert_eq!(severities[0], json!("critical"), "{severities}");
    assert_eq!(
        b.js("return document.querySelector('#pending-h ~ div tr.alert-row').dataset.rule")
            .await,
        json!("slow_heat"),
        "the Pending section lists the pending alert"
    );
    let link = b
        .js(&format!("return document.querySelector('#firing-h ~ div tr.alert-row[data-id=\"{alert_id}\"] a.alert-link').getAttribute('href')"))
        .await;
    assert_eq!(link, json!(format!("/alerts/{}", encode(alert_id))));
    b.wait(
        "the rules",
        "return document.querySelectorAll('table[aria-label=Rules] tbody tr').length >= 3",
    )
    .await;
    let rules = b
        .js("return document.querySelector('table[aria-label=Rules]').innerText")
        .await;
    assert!(!rules.as_str().unwrap().contains("null"), "{rules}");
    // Filters from the URL: only firing, only warnings.
    b.goto(&format!("{base}/alerts?state=firing&severity=critical"))
        .await;
    b.wait(
        "the filtered alerts",
        "return document.querySelectorAll('#firing-h ~ div tr.alert-row').length === 1",
    )
    .await;
    assert_eq!(
        b.js("return [document.querySelector('#firing-h ~ div tr.alert-row').dataset.rule, document.getElementById('pending-h').closest('section').hidden, document.getElementById('filter-severity').value]")
            .await,
        json!(["heat", true, "critical"])
    );
    // A threshold alert's page draws the region's values against the rule's limit.
    let heat = b
        .js("return document.querySelector('#firing-h ~ div tr.alert-row a.alert-link').getAttribute('href')")
        .await;
    b.goto(&format!("{base}{}", heat.as_str().unwrap())).await;
    b.wait(
        "the value against the limit",
        "return !!document.querySelector('.value-chart .limit') && !!document.querySelector('.value-chart .series-observed')",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('.value-chart .limit text').textContent")
            .await,
        json!("limit -50 °C")
    );
    // Tall enough for the chart: this one illustrates the UI's README.
    b.window_size(1366, 1000).await;
    b.screenshot("oncall-alert-threshold").await;
    b.window_size(1366, 900).await;
    b.goto(&format!("{base}/alerts?state=firing&severity=critical"))
        .await;
    b.wait(
        "the filtered alerts again",
        "return document.querySelectorAll('#firing-h ~ div tr.alert-row').length === 1",
    )
    .await;
    // Changing a filter rewrites the URL.
    b.js("const s = document.getElementById('filter-state'); s.value = 'pending'; s.dispatchEvent(new Event('change'))")
        .await;
    assert_eq!(
        b.js("return location.search").await,
        json!("?state=pending&severity=critical")
    );
}

async fn regions_in_trouble_first(b: &Browser, base: &str) {
    b.goto(&format!("{base}/regions")).await;
    b.wait(
        "the region cards",
        "return document.querySelectorAll('.region-card').length === 5",
    )
    .await;
    let order = b
        .js("return [...document.querySelectorAll('.region-card')].map(c => [c.dataset.region, c.dataset.trouble])")
        .await;
    assert_eq!(order[0], json!([HOT, "critical"]), "{order}");
    // Worst first (another region made late by a slow machine would rank as a warning too).
    let trouble = ["critical", "warning", "late", "info", "ok"];
    let ranks: Vec<_> = order
        .as_array()
        .unwrap()
        .iter()
        .map(|card| trouble.iter().position(|t| card[1] == *t))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{order}");
    assert!(
        order
            .as_array()
            .unwrap()
            .contains(&json!([SILENT, "warning"])),
        "{order}"
    );
    let badges = b
        .js(&format!(
            "return [...document.querySelectorAll('.region-card[data-region=\"{HOT}\"] .flags .badge')].map(b => b.textContent)"
        ))
        .await;
    assert_eq!(badges, json!(["1 critical"]));
    let range = b
        .wait(
            "a sparkline's range",
            &format!("const r = document.querySelector('.region-card[data-region=\"{HOT}\"] .spark-range'); return r && r.textContent"),
        )
        .await;
    assert!(range.as_str().unwrap().contains("°C"), "{range}");
    b.screenshot("oncall-regions").await;
}

async fn old_search_links_open_the_search(b: &Browser, base: &str) {
    b.goto(&format!("{base}/?q=kind%3Alog&from=now-1h&to=now"))
        .await;
    b.wait(
        "the search from an old link",
        "const q = document.getElementById('q'); return location.pathname === '/search' && q && q.value === 'kind:log'",
    )
    .await;
    assert_eq!(
        b.js("return new URLSearchParams(location.search).get('from')")
            .await,
        json!("now-1h")
    );
}

async fn phone_pages_do_not_scroll_sideways(b: &Browser, base: &str, alert_id: &str) {
    b.window_size(390, 844).await;
    let pages = [
        ("overview", "/".to_string(), ".region-map"),
        (
            "alert",
            format!("/alerts/{}", encode(alert_id)),
            ".timeline li",
        ),
        ("alerts", "/alerts".to_string(), "tr.alert-row"),
        ("regions", "/regions".to_string(), ".region-card"),
        (
            "region",
            format!("/regions/{}", encode(HOT)),
            "table[aria-label=\"Alerts of this region\"] a",
        ),
    ];
    for (name, path, ready) in pages {
        b.goto(&format!("{base}{path}")).await;
        b.wait(
            &format!("{name} at 390 px"),
            &format!("return !!document.querySelector('{ready}')"),
        )
        .await;
        let widths = b
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        assert!(
            widths[0].as_i64() <= widths[1].as_i64(),
            "{name} scrolls sideways at 390 px: scrollWidth, innerWidth = {widths}"
        );
        b.screenshot(&format!("oncall-phone-{name}")).await;
    }
    // Alert rows keep their region on a phone.
    b.goto(&format!("{base}/alerts")).await;
    b.wait(
        "alert rows",
        "return !!document.querySelector('tr.alert-row')",
    )
    .await;
    let region = b
        .js("const td = document.querySelector('tr.alert-row td[data-label=Region]'); return td.getBoundingClientRect().width > 0 && td.textContent")
        .await;
    assert!(region.is_string(), "the region shows on a phone: {region}");
    b.window_size(1366, 900).await;
}
