//! `GET /api/collector/status`: the source, the schedule, how the last round went and when
//! the next one is.

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
    }
}
