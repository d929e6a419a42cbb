//! Block Kit messages for alerts, kept within Slack's limits.
//!
//! Limits (api.slack.com/reference/block-kit): 50 blocks a message, 3000 characters a
//! section text, 2000 a section field, 10 fields a section, 150 a header. A payload over
//! them is refused with `invalid_blocks`, so every text is cut cleanly (on a character,
//! never inside an `&amp;` escape, with an ellipsis) before it is queued.

use crate::engine::{Alert, NoticeKind};
use crate::rules::PIPELINE_DOWN;
use crate::wording;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_HEADER: usize = 150;
/// A button's text, and its URL (a longer URL is refused: that button is left out).
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_BUTTON_URL: usize = 3000;
/// Elements of an `actions` block.
pub const MAX_ACTIONS: usize = 25;
/// The notification fallback `text`; Slack truncates longer ones itself.
pub const MAX_FALLBACK: usize = 4000;

/// The link to the UI search of that region around that time.
pub fn search_link(
    public_url: &str,
    region: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let query = region
        .map(|r| format!("region:\"{}\"", quoted(r)))
        .unwrap_or_default();
    link_to(public_url, &query, from, to)
}

/// The alert's page in the UI: `<public_url>/alerts/<id>`.
pub fn alert_link(public_url: &str, alert_id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(alert_id.as_bytes()).collect();
    format!("{}/alerts/{id}", public_url.trim_end_matches('/'))
}

/// The alert's page with its silence form open, filled with the alert's rule and region and
/// a default duration: `<public_url>/alerts/<id>?silence=1`.
pub fn silence_link(public_url: &str, alert_id: &str) -> String {
    format!("{}?silence=1", alert_link(public_url, alert_id))
}

/// The search for what surrounds an alert: its region's events (a service's logs for an
/// alert about a service), from an hour before it started to 15 minutes after `until`.
pub fn related_search_link(alert: &Alert, public_url: &str, until: DateTime<Utc>) -> String {
    let started = alert.fired_at.unwrap_or(alert.started_at);
    let from = started - chrono::Duration::hours(1);
    let to = until + chrono::Duration::minutes(15);
    // A query rule's alert links to the search it counts (in its group).
    if let Some(search) = crate::rules::query::search_of(
        &alert.rule,
        alert.region.as_deref(),
        alert.subject.as_deref(),
    ) {
        return link_to(public_url, &search, from, to);
    }
    match (&alert.region, &alert.subject) {
        (None, Some(service)) => link_to(
            public_url,
            &format!("service:\"{}\"", quoted(service)),
            from,
            to,
        ),
        _ => search_link(public_url, alert.region.as_deref(), from, to),
    }
}

/// A value inside a phrase of the search language.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn link_to(public_url: &str, query: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let params = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", query)
        .append_pair(
            "from",
            &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .append_pair("to", &to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .finish();
    format!("{}/?{params}", public_url.trim_end_matches('/'))
}

/// Escapes the three characters Slack's mrkdwn reserves.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `text` to at most `max` characters, ending in `…` when cut, never inside an escape.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    // Do not leave half an entity such as `&am`.
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') && cut.len() - amp < 6 {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
}

fn slack_date(t: DateTime<Utc>) -> String {
    // Shown in each reader's own time zone; the fallback is for clients that cannot.
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.timestamp(),
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn lasted(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    wording::since(to - from)
}

/// A link button of an `actions` block.
fn button(action_id: &str, text: &str, url: &str, primary: bool) -> Value {
    let mut button = json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": true},
        "url": url,
    });
    if primary {
        button["style"] = json!("primary");
    }
    button
}

/// The alert's value as people read it: seconds of silence for late data, else the value
/// in the unit its `expected` is written in.
fn value_field(alert: &Alert, value: f64) -> String {
    let late = alert.rule == PIPELINE_DOWN
        || alert
            .expected
            .as_deref()
            .is_some_and(|e| e.starts_with(wording::EVERY));
    if late {
        // `from_secs_f64` panics on NaN or a value out of range.
        let seconds = if value.is_finite() {
            value.clamp(0.0, 1e12)
        } else {
            0.0
        };
        let silent = std::time::Duration::from_secs_f64(seconds);
        return format!("*Silent for*\n{}", wording::duration(silent));
    }
    let unit = alert
        .expected
        .as_deref()
        .map(wording::unit_in)
        .unwrap_or("");
    format!("*Value*\n{}", escape(&wording::with_unit(value, unit)))
}

/// The message for `notice` about `alert`, decided at `at`.
pub fn render(alert: &Alert, notice: NoticeKind, at: DateTime<Utc>, public_url: &str) -> Value {
    let (emoji, word) = match notice {
        NoticeKind::Firing => (":rotating_light:", "FIRING"),
        NoticeKind::Reminder => (":bell:", "STILL FIRING"),
        NoticeKind::Resolved => (":white_check_mark:", "RESOLVED"),
    };
    // An alert about a service (the pipeline alerting about itself) is about no region.
    let (place, place_label) = match (&alert.region, &alert.subject) {
        (Some(region), _) => (region.clone(), "Region"),
        (None, Some(service)) => (service.clone(), "Service"),
        (None, None) => ("all regions".to_string(), "Region"),
    };
    let header = format!("{emoji} {word}: {} — {place}", alert.rule);
    let started = alert.fired_at.unwrap_or(alert.started_at);
    let mut fields = vec![
        format!("*{place_label}*\n{}", escape(&place)),
        format!("*Severity*\n{}", alert.severity.as_str()),
    ];
    if let Some(value) = alert.value {
        fields.push(value_field(alert, value));
    }
    if let Some(expected) = &alert.expected {
        fields.push(format!("*Expected*\n{}", escape(expected)));
    }
    fields.push(format!("*Started*\n{}", slack_date(started)));
    if let Some(by) = &alert.acknowledged_by {
        fields.push(format!("*Acknowledged by*\n{}", escape(by)));
    }
    let until = match notice {
        NoticeKind::Resolved => {
            let end = alert.resolved_at.unwrap_or(at);
            fields.push(format!("*Lasted*\n{}", lasted(started, end)));
            end
        }
        _ => at,
    };
    let link = related_search_link(alert, public_url, until);
    let summary = match notice {
        NoticeKind::Resolved => format!(
            "Resolved after {}. {}",
            lasted(started, until),
            alert.summary
        ),
        _ => alert.summary.clone(),
    };
    // The notification text is mrkdwn too: escaped exactly like the blocks.
    let fallback = format!(
        "{word}: {} — {}: {}",
        escape(&alert.rule),
        escape(&place),
        escape(&summary)
    );
    let payload = json!({
        "text": fallback,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}},
            {"type": "section", "fields": fields.iter().map(|f| json!({"type": "mrkdwn", "text": f})).collect::<Vec<_>>()},
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(&summary)}},
            {"type": "actions", "elements": [
                button("open_alert", "Open alert", &alert_link(public_url, &alert.id), notice != NoticeKind::Resolved),
                button("silence", "Silence…", &silence_link(public_url, &alert.id), false),
                button("search", "Related events", &link, false),
            ]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{link}|Search {} around this time> · alert `{}`", escape(&place), alert.id)}
            ]},
        ],
    });
    fit(payload)
}

/// Brings a Block Kit payload within Slack's limits, cutting texts cleanly and dropping
/// blocks past the 50th (the last kept one says how many were left out).
pub fn fit(mut payload: Value) -> Value {
    if let Some(text) = payload.get_mut("text") {
        if let Some(s) = text.as_str() {
            *text = Value::String(truncate(s, MAX_FALLBACK));
        }
    }
    let Some(blocks) = payload.get_mut("blocks").and_then(Value::as_array_mut) else {
        return payload;
    };
    if blocks.len() > MAX_BLOCKS {
        let left_out = blocks.len() - (MAX_BLOCKS - 1);
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("… {left_out} more block(s) left out (Slack shows at most {MAX_BLOCKS})")}
        ]}));
    }
    for block in blocks.iter_mut() {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let text_limit = if kind == "header" {
            MAX_HEADER
        } else {
            MAX_SECTION_TEXT
        };
        if let Some(text) = block.pointer_mut("/text/text") {
            if let Some(s) = text.as_str() {
                *text = Value::String(truncate(s, text_limit));
            }
        }
        if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
            fields.truncate(MAX_FIELDS);
            for field in fields {
                if let Some(text) = field.get_mut("text") {
                    if let Some(s) = text.as_str() {
                        *text = Value::String(truncate(s, MAX_FIELD_TEXT));
                    }
                }
            }
        }
        if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
            if kind == "actions" {
                // A URL cannot be cut: a button whose URL is too long is left out.
                elements.retain(|e| {
                    e.get("url")
                        .and_then(Value::as_str)
                        .is_none_or(|url| url.len() <= MAX_BUTTON_URL)
                });
                elements.truncate(MAX_ACTIONS);
                for element in elements.iter_mut() {
                    if let Some(text) = element.pointer_mut("/text/text") {
                        if let Some(s) = text.as_str() {
                            *text = Value::String(truncate(s, MAX_BUTTON_TEXT));
                        }
                    }
                }
                continue;
            }
            for element in elements {
                if let Some(text) = element.get_mut("text") {
                    if let Some(s) = text.as_str() {
                        *text = Value::String(truncate(s, MAX_SECTION_TEXT));
                    }
                }
            }
        }
    }
    // An `actions` block without elements is refused.
    blocks.retain(|b| {
        b["type"] != "actions" || b["elements"].as_array().is_some_and(|e| !e.is_empty())
    });
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use windsock_core::config::Severity;
    use windsock_core::event::AlertState;

    fn alert() -> Alert {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        Alert {
            id: "a1".into(),
            fingerprint: "f1".into(),
            rule: "extreme_heat".into(),
            region: Some("Kédougou".into()),
            subject: None,
            severity: Severity::Critical,
            state: AlertState::Resolved,
            started_at: t,
            fired_at: Some(t),
            resolved_at: Some(t + chrono::Duration::minutes(42)),
            value: Some(46.25),
            expected: Some("≤ 45 °C".into()),
            summary: "Temperature in Kédougou is 46.25 °C, above the limit of 45 °C".into(),
            clear_since: None,
            silenced_by: None,
            inhibited_by: None,
            notified_firing: true,
            last_notified_at: None,
            acknowledged_by: None,
            acknowledged_at: None,
        }
    }

    #[test]
    fn a_resolved_message_has_everything_people_need() {
        let a = alert();
        let payload = render(
            &a,
            NoticeKind::Resolved,
            a.resolved_at.unwrap(),
            "http://ws.example:8080/",
        );
        let text = payload.to_string();
        let header = payload["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            header.contains("RESOLVED")
                && header.contains("extreme_heat")
                && header.contains("Kédougou"),
            "{header}"
        );
        assert!(
            text.contains("*Value*\\n46.25 °C") && text.contains("*Expected*\\n≤ 45 °C"),
            "{text}"
        );
        assert!(text.contains("*Lasted*\\n42 min"), "{text}");
        assert!(text.contains("Resolved after 42 min."), "{text}");
        assert!(text.contains("<!date^1795608000^"), "{text}");
        let link = search_link(
            "http://ws.example:8080",
            Some("Kédougou"),
            a.started_at,
            a.started_at,
        );
        assert!(link.starts_with("http://ws.example:8080/?q=region%3A%22K%C3%A9dougou%22&from=2026-11-25T12%3A00%3A00Z&to="), "{link}");
        assert!(text.contains("http://ws.example:8080/?q=region%3A%22K%C3%A9dougou%22&from=2026-11-25T11%3A00%3A00Z"), "{text}");
    }

    /// The buttons of a message: (action_id, url).
    fn buttons(payload: &Value) -> Vec<(String, String)> {
        payload["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap().clone())
            .map(|e| {
                assert_eq!(e["type"], "button", "{e}");
                (
                    e["action_id"].as_str().unwrap().to_string(),
                    e["url"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn every_message_has_buttons_to_the_alert_its_silence_and_related_events() {
        let a = alert();
        for notice in [
            NoticeKind::Firing,
            NoticeKind::Reminder,
            NoticeKind::Resolved,
        ] {
            let payload = render(&a, notice, a.started_at, "http://ws.example:8080/");
            let buttons = buttons(&payload);
            let ids: Vec<&str> = buttons.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(ids, ["open_alert", "silence", "search"], "{payload}");
            assert_eq!(buttons[0].1, "http://ws.example:8080/alerts/a1");
            assert_eq!(buttons[1].1, "http://ws.example:8080/alerts/a1?silence=1");
            assert!(
                buttons[2]
                    .1
                    .starts_with("http://ws.example:8080/?q=region%3A%22K%C3%A9dougou%22&from="),
                "{}",
                buttons[2].1
            );
            // The search link stays in the context line too.
            assert!(payload["blocks"][4]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("|Search Kédougou around this time>"));
        }
        assert_eq!(alert_link("http://h", "a b/c"), "http://h/alerts/a+b%2Fc");
        assert_eq!(
            silence_link("http://h/", "a1"),
            "http://h/alerts/a1?silence=1"
        );
    }

    #[test]
    fn a_button_whose_url_is_too_long_is_left_out_and_texts_are_cut() {
        let long = format!("http://h/{}", "x".repeat(MAX_BUTTON_URL));
        let payload = fit(json!({"text": "t", "blocks": [
            {"type": "actions", "elements": [
                button("a", &"y".repeat(200), "http://h/a", false),
                button("b", "b", &long, false),
            ]},
            {"type": "actions", "elements": [button("c", "c", &long, false)]},
        ]}));
        let blocks = payload["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.len(),
            1,
            "an empty actions block is dropped: {payload}"
        );
        let elements = blocks[0]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 1);
        assert_eq!(
            elements[0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_BUTTON_TEXT
        );
    }

    #[test]
    fn late_data_reads_as_silence_with_a_human_duration() {
        let mut a = alert();
        a.rule = "late_data".into();
        a.state = AlertState::Firing;
        a.value = Some(178.874);
        a.expected = Some(format!("{}10 s (late after 50 s)", wording::EVERY));
        a.summary = "Kédougou has been silent for 2 min 58 s, expected every 10 s".into();
        let payload = render(&a, NoticeKind::Firing, a.started_at, "http://h");
        let text = payload.to_string();
        assert!(text.contains("*Silent for*\\n2 min 58 s"), "{text}");
        assert!(!text.contains("178.874"), "{text}");
        assert!(
            text.contains("a report every 10 s (late after 50 s)"),
            "{text}"
        );
        a.acknowledged_by = Some("awa".into());
        let text = render(&a, NoticeKind::Resolved, a.started_at, "http://h").to_string();
        assert!(text.contains("*Acknowledged by*\\nawa"), "{text}");
    }

    #[test]
    fn oversized_payloads_are_cut_to_slacks_limits() {
        let mut a = alert();
        a.rule = "r".repeat(400);
        a.summary = "x & y ".repeat(2000);
        let payload = render(&a, NoticeKind::Firing, a.started_at, "http://h");
        let header = payload["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), MAX_HEADER);
        assert!(header.ends_with('…'));
        let section = payload["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= MAX_SECTION_TEXT);
        assert!(!section.trim_end_matches('…').ends_with("&am") && section.ends_with('…'));

        let blocks: Vec<Value> = (0..70)
            .map(|i| json!({"type": "section", "text": {"type": "mrkdwn", "text": i.to_string()}}))
            .collect();
        let fitted = fit(json!({"text": "t", "blocks": blocks}));
        let blocks = fitted["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert!(blocks[49].to_string().contains("21 more block(s)"));
    }

    #[test]
    fn the_notification_text_is_escaped_like_the_blocks() {
        let mut a = alert();
        a.region = Some("<Dakar> & <!channel>".into());
        a.rule = "heat<&>".into();
        a.summary = "value <b> & <@U123>".into();
        for notice in [NoticeKind::Firing, NoticeKind::Resolved] {
            let payload = render(&a, notice, a.started_at, "http://h");
            let text = payload["text"].as_str().unwrap();
            assert!(!text.contains('<') && !text.contains('>'), "{text}");
            assert!(
                text.contains("heat&lt;&amp;&gt; — &lt;Dakar&gt; &amp; &lt;!channel&gt;: "),
                "{text}"
            );
            assert!(
                text.contains("value &lt;b&gt; &amp; &lt;@U123&gt;"),
                "{text}"
            );
            let section = payload["blocks"][2]["text"]["text"].as_str().unwrap();
            assert!(
                section.contains("value &lt;b&gt; &amp; &lt;@U123&gt;"),
                "{section}"
            );
        }
    }

    #[test]
    fn an_alert_about_a_service_names_the_service_and_links_its_logs() {
        let mut a = alert();
        a.rule = "disk_full".into();
        a.region = None;
        a.subject = Some("indexer".into());
        a.value = None;
        a.expected = None;
        a.summary = "indexer cannot write: the disk is full (No space left on device)".into();
        let payload = render(&a, NoticeKind::Firing, a.started_at, "http://h");
        let header = payload["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.contains("FIRING: disk_full — indexer"), "{header}");
        let text = payload.to_string();
        assert!(text.contains("*Service*\\nindexer"), "{text}");
        assert!(text.contains("q=service%3A%22indexer%22"), "{text}");
        assert!(payload["text"].as_str().unwrap().contains("No space left"));
    }

    #[test]
    fn truncation_never_splits_an_entity_or_a_character() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ab&amp;cd", 5), "ab…");
        assert_eq!(truncate("éééé", 3), "éé…");
    }
}
