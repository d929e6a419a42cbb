//! Shutdown is bounded on Kafka: with the broker gone, SIGTERM ends the process within
//! seconds (it used to log `shutting down` and hang until killed), with exit code 3, which says
//! the stop could not finish its work (messages not delivered, commits not confirmed); with
//! the broker there, a stop is clean (0).

mod support;

use std::time::Duration;
use support::{json, Windsock};
use windsock_testkit::tansu::Tansu;

/// The bound the process keeps is 10 s from the signal; this only stops a hang from hanging
/// the suite (it is not a performance assertion).
const EXIT_BOUND: Duration = Duration::from_secs(15);

fn on_kafka(broker: &str) -> [(&str, &str); 3] {
    [
        ("WINDSOCK_BUS__KIND", "kafka"),
        ("WINDSOCK_BUS__BROKERS", broker),
        // A round every second, so a publish is waiting on the broker when it goes.
        ("WINDSOCK_COLLECTOR__SCHEDULE", "* * * * * *"),
    ]
}

/// Waits until events went through the broker and were indexed.
fn wait_until_indexed(windsock: &mut Windsock) {
    windsock.wait_for(
        "/api/search?q=kind:observation&from=now-1h",
        |status, body| {
            status == 200
                && serde_json::from_str::<serde_json::Value>(body)
                    .is_ok_and(|a| a["total"].as_u64() > Some(0))
        },
    );
}

#[test]
fn with_the_broker_gone_sigterm_ends_every_service_within_the_bound_with_exit_code_3() {
    let mut broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap();
    let mut windsock = Windsock::start(&["up"], &dir.path().join("data"), &on_kafka(&bootstrap));
    let (status, body) = windsock.wait_for("/healthz", |status, _| status == 200);
    assert_eq!(json(&body)["status"], "ok", "{status}");
    wait_until_indexed(&mut windsock);

    broker.stop();
    // Let the next rounds publish into the void.
    std::thread::sleep(Duration::from_secs(2));
    let (status, logs) = windsock.terminate(EXIT_BOUND);
    assert_eq!(status.code(), Some(3), "{logs}");
    assert!(logs.contains("closed with work undone"), "{logs}");
    assert!(
        !logs.contains("shutdown did not finish"),
        "the deadlines, not the last-resort guard, ended it:\n{logs}"
    );
}

#[test]
fn the_ui_alone_with_the_broker_gone_stops_within_the_bound() {
    let mut broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap();
    let mut windsock = Windsock::start(&["ui"], &dir.path().join("data"), &on_kafka(&bootstrap));
    windsock.wait_for("/healthz", |status, _| status == 200);
    broker.stop();
    let (status, logs) = windsock.terminate(EXIT_BOUND);
    // Its own log records (`shutting down`, at least) could not reach the broker.
    assert_eq!(status.code(), Some(3), "{logs}");
}

#[test]
fn with_the_broker_there_a_stop_on_kafka_is_clean() {
    let _broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = _broker.bootstrap();
    let mut windsock = Windsock::start(&["up"], &dir.path().join("data"), &on_kafka(&bootstrap));
    windsock.wait_for("/healthz", |status, _| status == 200);
    wait_until_indexed(&mut windsock);
    let (status, logs) = windsock.terminate(EXIT_BOUND);
    assert_eq!(status.code(), Some(0), "{logs}");
}
