//! The store never stalls the async runtime: while SQLite waits (here on a lock another
//! connection holds, as it would on a slow disk's fsync), the alerter's API still answers.
//! The test runs on a single-threaded runtime, so a store call made on a runtime thread
//! would hold up everything, the API included, until SQLite returned.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

/// How long the other connection holds its write lock at most: under SQLite's busy timeout
/// (rusqlite's 5 s), so a commit stuck behind it would succeed once it is released.
const HOLD_AT_MOST: Duration = Duration::from_millis(4500);

#[tokio::test(flavor = "current_thread")]
async fn the_api_answers_while_a_commit_waits_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    h.advance(Duration::from_secs(1)).await;

    // Another connection takes the write lock and keeps it until told (or HOLD_AT_MOST).
    let path = dir.path().join("alerter").join("alerter.db");
    let released = Arc::new(AtomicBool::new(false));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let released = released.clone();
        std::thread::spawn(move || {
            let db = rusqlite::Connection::open(path).unwrap();
            db.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(HOLD_AT_MOST);
            released.store(true, Ordering::SeqCst);
            db.execute_batch("COMMIT").unwrap();
        })
    };
    locked_rx.recv().unwrap();

    // Dakar fires: the engine decides at once, and the commit of that decision waits.
    h.observe("Dakar", 42.0).await;
    h.clock.advance(chrono::Duration::seconds(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rules = h.get("/api/rules").await;
        if rules["rules"][0]["active"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rules}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Routes that do not read the store answer too (those that do wait for the store's
    // connection, on the blocking pool).
    let silences = h.get("/api/silences").await;
    assert_eq!(silences["silences"].as_array().unwrap().len(), 0);
    assert!(
        !released.load(Ordering::SeqCst),
        "the API answered only once the database lock was released"
    );

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let firing = h.get("/api/alerts?state=firing").await;
        if firing["alerts"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{firing}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.stop().await;
}
