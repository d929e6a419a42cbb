//! Rules created through the API (`POST /api/rules`), kept in the alerter's SQLite beside its
//! alerts so they survive a restart. The configuration file's rules are never written here:
//! they stay the file's.
//!
//! Each call works on SQLite: from async code, run it through `Store::blocking`.

use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use windsock_core::config::RuleConfig;

/// The most rules the API may hold (each is evaluated on every log).
pub const MAX_API_RULES: usize = 100;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_rules (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
";

impl Store {
    /// The rules created through the API, oldest first.
    pub fn api_rules(&self) -> Result<Vec<RuleConfig>, StoreError> {
        let db = self.connection();
        let mut statement = db.prepare("SELECT body FROM api_rules ORDER BY created_at, name")?;
        let bodies = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let mut rules = Vec::with_capacity(bodies.len());
        for body in bodies {
            rules.push(serde_json::from_str(&body)?);
        }
        Ok(rules)
    }

    /// Creates or replaces the API rule of `rule`'s name; a replaced rule's memory is dropped
    /// (it counted another search).
    pub fn put_api_rule(&self, rule: &RuleConfig, now: DateTime<Utc>) -> Result<(), StoreError> {
        let body = serde_json::to_string(rule)?;
        let at = now.timestamp_millis();
        let mut db = self.connection();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO api_rules (name, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            rusqlite::params![rule.name(), body, at],
        )?;
        tx.execute("DELETE FROM rule_memory WHERE rule = ?1", [rule.name()])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the API rule `name` and its memory; whether there was one.
    pub fn delete_api_rule(&self, name: &str) -> Result<bool, StoreError> {
        let mut db = self.connection();
        let tx = db.transaction()?;
        let deleted = tx.execute("DELETE FROM api_rules WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM rule_memory WHERE rule = ?1", [name])?;
        tx.commit()?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use windsock_core::config::Severity;

    fn rule(name: &str, query: &str) -> RuleConfig {
        RuleConfig::Query {
            name: name.into(),
            severity: Severity::Warning,
            query: query.into(),
            window: Duration::from_secs(60),
            above: Some(3),
            below: None,
            group_by: Some("region".into()),
            pending_for: Duration::ZERO,
        }
    }

    #[test]
    fn api_rules_survive_reopening_the_store_and_are_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_api_rule(&rule("a", "level:error"), now).unwrap();
            store
                .put_api_rule(&rule("b", "service:collector"), now)
                .unwrap();
            store.put_api_rule(&rule("a", "level:warn"), now).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let json = |rules: &[RuleConfig]| serde_json::to_value(rules).unwrap();
        assert_eq!(
            json(&store.api_rules().unwrap()),
            json(&[rule("a", "level:warn"), rule("b", "service:collector")])
        );
        assert!(store.delete_api_rule("a").unwrap());
        assert!(!store.delete_api_rule("a").unwrap(), "already gone");
        assert_eq!(
            json(&store.api_rules().unwrap()),
            json(&[rule("b", "service:collector")])
        );
    }
}
