//! `GET /api/collector/status`: the source, the schedule, how the last round went, when
//! the next one is, and the scheduled instants missed.

use crate::{BackfillReport, Inner, RoundReport};
use axum::extract::State;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) struct StatusState {
    rounds: u64,
    last_round: Option<RoundReport>,
    backfill: Option<BackfillReport>,
    pub(crate) backfill_progress: BackfillProgress,
    missed: MissedView,
}

/// Where the backfill on start is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackfillState {
    /// Not started yet.
    Pending,
    /// Fetching, beside the live rounds.
    Running,
    Finished,
    /// There was nothing to fetch, or the source cannot serve the past: `backfill.skipped`
    /// says why.
    Skipped,
}

/// How far the backfill on start has gone, while it runs and after.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BackfillProgress {
    pub state: BackfillState,
    /// Regions whose look-back has been fetched (or has failed for good).
    pub regions_done: usize,
    pub regions_total: usize,
    /// Scheduled instants of the look-back, per region.
    pub instants: usize,
    /// Observations fetched so far.
    pub observations: usize,
    /// Observations the bus accepted so far.
    pub published: usize,
    /// The requests per second the backfill is held to (`collector.backfill_rate` or the
    /// source's default); null for no limit.
    #[schema(required = true)]
    pub rate_per_second: Option<f64>,
}

impl StatusState {
    pub(crate) fn new(regions: usize, rate_per_second: Option<f64>) -> Self {
        Self {
            rounds: 0,
            last_round: None,
            backfill: None,
            backfill_progress: BackfillProgress {
                state: BackfillState::Pending,
                regions_done: 0,
                regions_total: regions,
                instants: 0,
                observations: 0,
                published: 0,
                rate_per_second,
            },
            missed: MissedView::default(),
        }
    }
}

/// Scheduled instants whose round did not start in time, since the start.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct MissedView {
    /// Instants missed in all.
    pub total: u64,
    /// The latest occurrence; null while none was missed.
    #[schema(required = true)]
    pub last: Option<MissedTicks>,
}

/// One occurrence of missed instants: a late firing, a starved runtime, a suspended
/// process, or rounds overrunning every slot.
#[derive(Clone, Debug, Serialize, ToSchema)]
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
    /// How the catch-up went, once it has finished (null until then, and when there is
    /// nothing to fetch).
    #[schema(required = true)]
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

/// The answer of `GET /api/collector/status`.
#[derive(Serialize, ToSchema)]
pub struct StatusView {
    /// The source fetched: `openweathermap`, `open-meteo`, `simulated` or `replay`.
    pub source: &'static str,
    /// The cron schedule of the rounds.
    pub schedule: String,
    /// Regions fetched each round.
    pub regions: usize,
    /// Rounds finished since the start (the backfill runs beside them: see
    /// `backfill_progress`).
    pub rounds_completed: u64,
    /// How far the backfill on start has gone.
    pub backfill_progress: BackfillProgress,
    /// When the next round is due; null when the schedule has no next instant.
    #[schema(required = true)]
    pub next_round: Option<DateTime<Utc>>,
    /// The newest round that finished; null before the first.
    #[schema(required = true)]
    pub last_round: Option<LastRound>,
    /// The look-back fetched on start; null until it has finished.
    #[schema(required = true)]
    pub backfill: Option<BackfillReport>,
    pub missed_ticks: MissedView,
}

/// How the newest finished round went.
#[derive(Serialize, ToSchema)]
pub struct LastRound {
    /// The scheduled instant the round was for.
    pub tick: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Regions by outcome (`ok`, `no_data`, `failed`): `{"ok": 13, "failed": 1}`.
    #[schema(value_type = BTreeMap<String, usize>)]
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Each region's fetch.
    pub regions: Vec<crate::RegionReport>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "windsock collector",
        description = "The collector's schedule, its last round, its backfill and the \
                       scheduled instants it missed."
    ),
    tags((name = "collector", description = "Weather collection on a schedule."))
)]
struct CollectorApi;

/// The collector's routes with their description, without state.
fn router() -> OpenApiRouter<Arc<Inner>> {
    OpenApiRouter::with_openapi(CollectorApi::openapi()).routes(routes!(status))
}

/// The OpenAPI document of the collector's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().into_openapi()
}

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    let (router, _) = router().split_for_parts();
    router.with_state(inner)
}

/// The collector's status: its source and schedule, how the last round went, when the next
/// one is due, the backfill, and the scheduled instants missed.
#[utoipa::path(
    get,
    path = "/api/collector/status",
    tag = "collector",
    responses((status = 200, description = "The collector's status", body = StatusView))
)]
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
        backfill_progress: state.backfill_progress.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_document_lists_the_status_route_with_its_200_schema() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/api/collector/status"]);
        let get = &doc["paths"]["/api/collector/status"]["get"];
        assert_eq!(get["tags"][0], "collector");
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/StatusView");
        let status = &doc["components"]["schemas"]["StatusView"];
        let required: Vec<&str> = status["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        // Always in the answer, null until there is something to say.
        for field in [
            "next_round",
            "last_round",
            "backfill",
            "backfill_progress",
            "missed_ticks",
        ] {
            assert!(required.contains(&field), "{field}: {status}");
        }
        // Every reference resolves: the report types (round, backfill) are in the document.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let name = reference
                .split('"')
                .next()
                .unwrap()
                .trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling reference to {name}"
            );
        }
        let outcome = &doc["components"]["schemas"]["Outcome"]["enum"];
        assert_eq!(outcome, &Value::from(vec!["ok", "no_data", "failed"]));
    }
}
