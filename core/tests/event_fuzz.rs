//! The event decoder against whatever a bus may carry: arbitrary bytes and text, real events
//! of every kind with bytes flipped, inserted and deleted, values swapped for huge numbers or
//! other types, and nesting far past serde_json's recursion limit. It never panics: it
//! decodes (and then what it decoded survives the wire unchanged) or it says why not.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};
use windsock_core::event::{
    AlertEvent, AlertState, DeadLetter, Envelope, Event, Forecast, ForecastPoint, Level, LogEvent,
    Observation,
};

/// One real event of every kind, as windsock writes them.
fn events() -> Vec<Vec<u8>> {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let mut fields = Map::new();
    fields.insert("status".into(), 503.into());
    fields.insert(
        "nested".into(),
        serde_json::json!({"a": [1, 2.5, null, "x"]}),
    );
    let mut backtest_mae = Map::new();
    backtest_mae.insert("mstl_ets".into(), 0.8.into());
    [
        Event::Observation(Observation {
            region: "Dakar".into(),
            lat: 14.7167,
            lon: -17.4677,
            observed_at: at,
            fetched_at: at + chrono::Duration::seconds(3),
            source: "simulated".into(),
            temperature_c: 27.5,
            humidity_pct: Some(60.0),
            condition: Some("Clear".into()),
            ..Default::default()
        }),
        Event::Log(LogEvent {
            timestamp: at,
            service: "collector".into(),
            level: Level::Warn,
            message: "fetch failed".into(),
            region: Some("Thiès".into()),
            target: Some("windsock_collector::round".into()),
            fields,
        }),
        Event::Forecast(Forecast {
            region: "Dakar".into(),
            model: "mstl_ets".into(),
            generated_at: at,
            level: 0.95,
            points: vec![
                ForecastPoint {
                    timestamp: at,
                    temperature_c: 27.5,
                    lower: 25.0,
                    upper: 30.0,
                };
                3
            ],
            backtest_mae,
        }),
        Event::Alert(AlertEvent {
            fingerprint: "heat/Dakar".into(),
            rule: "heat".into(),
            region: Some("Dakar".into()),
            state: AlertState::Firing,
            severity: "critical".into(),
            at,
            started_at: at,
            value: Some(41.5),
            expected: Some("> 40".into()),
            message: "41.5 °C".into(),
        }),
        Event::DeadLetter(DeadLetter {
            at,
            topic: "observations".into(),
            partition: 1,
            offset: 7,
            key: Some("Dakar".into()),
            reason: "not json".into(),
            payload: "{\"\u{fffd}".into(),
            group: "windsock-indexer".into(),
        }),
    ]
    .into_iter()
    .map(|event| Envelope::new(event).to_json())
    .collect()
}

/// Decodes `bytes` as a consumer would: no panic, and what decodes round-trips.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = Envelope::from_json(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let from_text = Envelope::from_json_text(text);
        prop_assert_eq!(
            decoded.as_ref().ok(),
            from_text.as_ref().ok(),
            "the text variant decodes the same"
        );
    }
    if let Ok(envelope) = decoded {
        let again = Envelope::from_json(&envelope.to_json());
        prop_assert!(
            again.is_ok(),
            "{envelope:?} does not decode again: {again:?}"
        );
        let (before, after) = (
            serde_json::to_value(&envelope).unwrap(),
            serde_json::to_value(again.unwrap()).unwrap(),
        );
        prop_assert!(same(&before, &after), "{before} came back as {after}");
    }
    Ok(())
}

/// Equal, but for the last bit of a float: serde_json's default float parsing (without its
/// slower `float_roundtrip` feature) may read the shortest text of a large f64 one ulp off.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

/// An edit of a serialized event.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// Replaces the `n`th value (after a `:`) up to its end with `with`.
    Value {
        n: usize,
        with: String,
    },
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e308".to_string()),
        Just("-1e309".to_string()),
        Just("1e999999999".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("4294967296".to_string()),
        Just("123456789012345678901234567890.5e-400".to_string()),
        Just("NaN".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("\"+275760-09-13T00:00:00Z\"".to_string()),
        Just("\"9999-12-31T23:59:59+23:59\"".to_string()),
        Just("\"0000-01-01T00:00:00-23:59\"".to_string()),
        Just("\"2026-11-25 12:00:00 +0000\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        (1..200usize).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        (1..200usize).prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d))),
        any::<i64>().prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| format!("{x:e}")),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (0..40usize, hostile_value()).prop_map(|(n, with)| Mutation::Value { n, with }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Flip { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), *byte),
        Mutation::Delete { at, len: n } if len > 0 => {
            let start = at % len;
            bytes.drain(start..(start + n).min(len));
        }
        Mutation::Value { n, with } => {
            let colons: Vec<usize> = bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b':')
                .map(|(i, _)| i)
                .collect();
            if colons.is_empty() {
                return;
            }
            let start = colons[n % colons.len()] + 1;
            // The value ends at the next `,` or `}` outside a string, roughly: good enough
            // to make hostile documents, valid or not.
            let end = bytes[start..]
                .iter()
                .position(|b| *b == b',' || *b == b'}')
                .map_or(len, |i| start + i);
            bytes.splice(start..end, with.bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,256}") {
        check(text.as_bytes())?;
    }

    #[test]
    fn mutated_events_decode_or_are_refused(
        kind in 0..5usize,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut bytes = events()[kind].clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check(&bytes)?;
    }

    #[test]
    fn reordered_events_decode_as_written(kind in 0..5usize, seed in any::<u64>()) {
        // The two-pass path: the same keys in another order.
        let bytes = events()[kind].clone();
        let Value::Object(map) = serde_json::from_slice::<Value>(&bytes).unwrap() else {
            unreachable!()
        };
        let mut entries: Vec<(String, Value)> = map.into_iter().collect();
        let n = entries.len();
        for i in (1..n).rev() {
            let j = (seed.rotate_left(i as u32) as usize) % (i + 1);
            entries.swap(i, j);
        }
        let text = format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect::<Vec<_>>()
                .join(",")
        );
        check(text.as_bytes())?;
        prop_assert_eq!(
            Envelope::from_json(text.as_bytes()).unwrap(),
            Envelope::from_json(&bytes).unwrap()
        );
    }
}

/// Depth far past serde_json's limit of 128, as a whole payload and inside an event. Kept
/// values (`fields`, read as a `Value`) stop at the limit with an error; unknown keys are
/// skipped by serde_json's iterative skipper, which needs no stack at all. A decoder without
/// the limit would overflow the stack and abort the process.
#[test]
fn nesting_ten_thousand_deep_is_an_error_or_skipped_never_a_stack_overflow() {
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let log = String::from_utf8(events()[1].clone()).unwrap();
    let observation = String::from_utf8(events()[0].clone()).unwrap();
    for deep in [&deep_array, &deep_object] {
        assert!(Envelope::from_json(deep.as_bytes()).is_err());
        assert!(Envelope::from_json_text(deep).is_err());

        let kept = log.replace(r#""status":503"#, &format!(r#""status":{deep}"#));
        assert!(kept.len() >= 20_000, "the nesting went in");
        let err = Envelope::from_json(kept.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
        assert!(Envelope::from_json_text(&kept).is_err());
        // The same in the two-pass path (the envelope's keys after the event's).
        let (envelope, event) = kept.split_at(kept.find(r#","kind""#).unwrap());
        let reordered = format!("{{{},{}", &event[1..event.len() - 1], &envelope[1..]) + "}";
        let err = Envelope::from_json(reordered.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );

        let skipped = observation.replace(r#""lat":"#, &format!(r#""extra":{deep},"lat":"#));
        assert!(skipped.len() >= 20_000, "the nesting went in");
        assert_eq!(
            Envelope::from_json(skipped.as_bytes()).unwrap(),
            Envelope::from_json(observation.as_bytes()).unwrap()
        );
        let first = format!(r#"{{"extra":{deep},{}"#, &observation[1..]);
        assert_eq!(
            Envelope::from_json(first.as_bytes()).unwrap(),
            Envelope::from_json(observation.as_bytes()).unwrap()
        );
    }
}

#[test]
fn huge_numbers_where_integers_go_are_refused() {
    let dead_letter = String::from_utf8(events()[4].clone()).unwrap();
    for huge in ["4294967296", "18446744073709551616", "1e308", "-1"] {
        let version = dead_letter.replace(
            r#""schema_version":1"#,
            &format!(r#""schema_version":{huge}"#),
        );
        assert!(Envelope::from_json(version.as_bytes()).is_err(), "{huge}");
    }
    for huge in ["2147483648", "9223372036854775808", "1e999"] {
        let partition = dead_letter.replace(r#""partition":1"#, &format!(r#""partition":{huge}"#));
        assert!(Envelope::from_json(partition.as_bytes()).is_err(), "{huge}");
    }
}
