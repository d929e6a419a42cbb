//! Acknowledgements: "someone is on it". An open occurrence (pending or firing) can be
//! acknowledged by someone, with a comment; no reminders are sent while it is, and the
//! acknowledgement ends with the occurrence (it resolves, or fires again as a new one).
//!
//! Every acknowledgement and its withdrawal is a row of its own table, the alert's
//! acknowledgement log (shown on its page, oldest first). That log is what holds: an alert's
//! `acknowledged_by`/`acknowledged_at` are set from its latest row wherever the alert is read
//! back from the store (at a restart, by the API), so an evaluation's commit racing an
//! acknowledgement cannot lose it.

use crate::engine::Alert;
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;
use utoipa::ToSchema;

/// Created with the store's other tables (`Store::open`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS acknowledgements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS acknowledgements_alert ON acknowledgements(alert_id, seq);
";

/// What an entry of the acknowledgement log did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckAction {
    Acknowledged,
    /// The acknowledgement was withdrawn: reminders resume.
    Unacknowledged,
}

impl AckAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            AckAction::Acknowledged => "acknowledged",
            AckAction::Unacknowledged => "unacknowledged",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "acknowledged" {
            AckAction::Acknowledged
        } else {
            AckAction::Unacknowledged
        }
    }
}

/// One entry of an alert's acknowledgement log.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Acknowledgement {
    pub seq: i64,
    pub alert_id: String,
    pub at: DateTime<Utc>,
    pub action: AckAction,
    /// Who acknowledged it, or withdrew the acknowledgement (may be empty for a withdrawal).
    pub by: String,
    /// Why, what is being done (may be empty).
    pub comment: String,
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Sets every alert's acknowledgement from its latest log entry. An alert with no entry keeps
/// what its record says: nobody acknowledged it here, or it was acknowledged on another
/// instance and moved here with its region (its record carries the acknowledgement).
pub(crate) fn overlay(db: &Connection, alerts: &mut [Alert]) -> Result<(), StoreError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let mut statement = db.prepare(
        "SELECT action, by_whom, at FROM acknowledgements WHERE alert_id = ?1 ORDER BY seq DESC LIMIT 1",
    )?;
    for alert in alerts.iter_mut() {
        let latest = statement
            .query_map([&alert.id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?
            .next()
            .transpose()?;
        (alert.acknowledged_by, alert.acknowledged_at) = match latest {
            Some((action, by, at)) if AckAction::parse(&action) == AckAction::Acknowledged => {
                (Some(by), Some(time(at)))
            }
            Some(_) => (None, None),
            None => continue,
        };
    }
    Ok(())
}

/// Forgets the log of occurrences the store no longer holds (pruned past the retention).
pub(crate) fn prune(db: &Connection) -> Result<usize, StoreError> {
    Ok(db.execute(
        "DELETE FROM acknowledgements WHERE alert_id NOT IN (SELECT id FROM alerts)",
        [],
    )?)
}

impl Store {
    /// Appends an entry to an alert's acknowledgement log.
    pub fn record_acknowledgement(
        &self,
        alert_id: &str,
        action: AckAction,
        by: &str,
        comment: &str,
        at: DateTime<Utc>,
    ) -> Result<Acknowledgement, StoreError> {
        let db = self.connection();
        db.execute(
            "INSERT INTO acknowledgements (alert_id, at, action, by_whom, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![alert_id, at.timestamp_millis(), action.as_str(), by, comment],
        )?;
        Ok(Acknowledgement {
            seq: db.last_insert_rowid(),
            alert_id: alert_id.to_string(),
            at: time(at.timestamp_millis()),
            action,
            by: by.to_string(),
            comment: comment.to_string(),
        })
    }

    /// An alert's acknowledgement log, oldest first.
    pub fn acknowledgements(&self, alert_id: &str) -> Result<Vec<Acknowledgement>, StoreError> {
        let db = self.connection();
        let mut statement = db.prepare(
            "SELECT seq, alert_id, at, action, by_whom, comment FROM acknowledgements WHERE alert_id = ?1 ORDER BY seq",
        )?;
        let rows = statement
            .query_map([alert_id], |row| {
                Ok(Acknowledgement {
                    seq: row.get(0)?,
                    alert_id: row.get(1)?,
                    at: time(row.get(2)?),
                    action: AckAction::parse(&row.get::<_, String>(3)?),
                    by: row.get(4)?,
                    comment: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Sets each alert's acknowledgement from the log (see the module's notes).
    pub fn overlay_acknowledgements(&self, alerts: &mut [Alert]) -> Result<(), StoreError> {
        overlay(&self.connection(), alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windsock_core::config::Severity;
    use windsock_core::event::AlertState;

    fn alert(id: &str) -> Alert {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        Alert {
            id: id.into(),
            fingerprint: format!("f-{id}"),
            rule: "hot".into(),
            region: Some("Dakar".into()),
            subject: None,
            severity: Severity::Critical,
            state: AlertState::Firing,
            started_at: t,
            fired_at: Some(t),
            resolved_at: None,
            value: Some(46.0),
            expected: None,
            summary: "hot".into(),
            clear_since: None,
            silenced_by: None,
            inhibited_by: None,
            notified_firing: true,
            last_notified_at: Some(t),
            // A record written by a commit that raced the log: the log wins.
            acknowledged_by: Some("stale".into()),
            acknowledged_at: Some(t),
        }
    }

    #[test]
    fn the_latest_log_entry_is_the_acknowledgement_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 5, 0).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .record_acknowledgement("a1", AckAction::Acknowledged, "awa", "on it", at)
                .unwrap();
            store
                .record_acknowledgement("a2", AckAction::Acknowledged, "awa", "", at)
                .unwrap();
            store
                .record_acknowledgement("a2", AckAction::Unacknowledged, "moussa", "", at)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut alerts = vec![alert("a1"), alert("a2"), alert("a3")];
        store.overlay_acknowledgements(&mut alerts).unwrap();
        assert_eq!(alerts[0].acknowledged_by.as_deref(), Some("awa"));
        assert_eq!(alerts[0].acknowledged_at, Some(at));
        assert_eq!(alerts[1].acknowledged_by, None, "withdrawn");
        assert_eq!(
            alerts[2].acknowledged_by.as_deref(),
            Some("stale"),
            "no entry here: the record stands (a region moved from another instance)"
        );
        let log = store.acknowledgements("a2").unwrap();
        let actions: Vec<AckAction> = log.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            [AckAction::Acknowledged, AckAction::Unacknowledged]
        );
        assert_eq!(log[1].by, "moussa");
    }
}
