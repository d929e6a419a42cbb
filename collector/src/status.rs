//! `GET /api/collector/status`: the source, the schedule, how the last round went, when
//! the next one is, and the scheduled instants missed.

use crate::{BackfillReport, Inner, RoundReport};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct StatusState {
    rounds: u64,
    last_round: Option<RoundReport>,
    backfill: Option<BackfillReport>,
    missed: MissedView,
}

/// Scheduled instants whose round did not start in time, since the start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MissedView {
    /// Instants missed in all.
    pub total: u64,
    pub last: Option<MissedTicks>,
}

/// One occurrence of missed instants: a late firing, a starved runtime, a suspended
/// process, or rounds overrunning every slot.
#[derive(Clone, Debug, Serialize)]
pub struct MissedTicks {
    /// When it was noticed: when the round after the missed instants started.
    pub noticed: DateTime<Utc>,
    /// Instants missed.
    pub count: u64,
    pub oldest: DateTime<Utc>,
    pub newest: DateTime<Utc>,
    /// How long ago the oldest missed instant was when it was noticed.
    pub late_seconds: f64,
    /// Missed instants fetched from the past.
    pub catching_up: usize,
    /// Why the others (or all) were not fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_fetched: Option<String>,
    /// How the catch-up went, once it has finished.
    pub catch_up: Option<BackfillReport>,
    #[serde(skip)]
    pub(crate) occurrence: u64,
}

impl StatusState {
    pub(crate) fn record_round(&mut self, report: RoundReport) {
        self.rounds += 1;
        // Overlapping rounds may finish out of order: keep the newest tick.
        if self
            .last_round
            .as_ref()
            .is_none_or(|last| last.tick <= report.tick)
        {
            self.last_round = Some(report);
        }
    }

    pub(crate) fn record_backfill(&mut self, report: BackfillReport) {
        self.backfill = Some(report);
    }

    /// Records missed instants; returns the occurrence's number, for its catch-up.
    pub(crate) fn record_missed(&mut self, mut missed: MissedTicks) -> u64 {
        self.missed.total += missed.count;
        missed.occurrence = self.missed.last.as_ref().map_or(1, |m| m.occurrence + 1);
        let occurrence = missed.occurrence;
        self.missed.last = Some(missed);
        occurrence
    }

    pub(crate) fn record_catch_up(&mut self, occurrence: u64, report: BackfillReport) {
        // A newer occurrence has replaced it: its own catch-up will be shown instead.
        if let Some(last) = self
            .missed
            .last
            .as_mut()
            .filter(|m| m.occurrence == occurrence)
        {
            last.catch_up = Some(report);
        }
    }
}

#[derive(Serialize)]
pub struct StatusView {
    pub source: &'static str,
    pub schedule: String,
    pub regions: usize,
    pub rounds_completed: u64,
    pub next_round: Option<DateTime<Utc>>,
    pub last_round: Option<LastRound>,
    pub backfill: Option<BackfillReport>,
    pub missed_ticks: MissedView,
}

#[derive(Serialize)]
pub struct LastRound {
    pub tick: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Regions by outcome: `{"ok": 13, "failed": 1}`.
    pub outcomes: BTreeMap<&'static str, usize>,
    pub regions: Vec<crate::RegionReport>,
}

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/collector/status", get(status))
        .with_state(inner)
}

async fn status(State(inner): State<Arc<Inner>>) -> Json<StatusView> {
    Json(view(&inner))
}

fn view(inner: &Inner) -> StatusView {
    let state = inner.status.lock();
    StatusView {
        source: inner.source.name(),
        schedule: inner.schedule.pattern().to_string(),
        regions: inner.config.regions.len(),
        rounds_completed: state.rounds,
        next_round: inner.schedule.next_after(inner.clock.now()),
        last_round: state.last_round.as_ref().map(|r| LastRound {
            tick: r.tick,
            started: r.started,
            finished: r.finished,
            outcomes: r.outcomes(),
            regions: r.regions.clone(),
        }),
        backfill: state.backfill.clone(),
        missed_ticks: state.missed.clone(),
    }
}
