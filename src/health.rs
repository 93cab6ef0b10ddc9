//! What is running and what is not: every long-running part of the bridge reports here, and
//! `/readyz` reads it. It outlives the bridge's restarts, so readiness tells the truth while the
//! bridge starts again after losing its broker, its database or one of its parts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lapin::ConnectionStatus;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;

/// A part of the bridge that must be up for it to be ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Database,
    Broker,
    /// The outbox relay: publishes casts, answers and notifications.
    Relay,
    /// The consumer of other services' requests.
    Requests,
    /// The consumer of Astute's replies and its lanes.
    Replies,
    /// The lost-orchestrator watchdog and the retention sweeps.
    Watchdog,
}

impl Part {
    pub const ALL: [Part; 6] = [
        Part::Database,
        Part::Broker,
        Part::Relay,
        Part::Requests,
        Part::Replies,
        Part::Watchdog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Database => "database",
            Part::Broker => "broker",
            Part::Relay => "relay",
            Part::Requests => "requests",
            Part::Replies => "replies",
            Part::Watchdog => "watchdog",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The connections of the running session, probed when readiness is asked for.
#[derive(Clone)]
pub struct Session {
    pub db: DatabaseConnection,
    pub broker: ConnectionStatus,
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// Parts that are not up, with why. A part absent from here is up.
    down: BTreeMap<Part, String>,
}

/// Shared by the supervisor (which writes) and the HTTP front (which reads).
#[derive(Clone)]
pub struct Health(Arc<Mutex<State>>);

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer to "is the bridge ready?".
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Each part, up or not.
    pub parts: BTreeMap<Part, bool>,
    /// Why each part that is not up is not.
    pub not_ready: BTreeMap<Part, String>,
}

/// How long a readiness probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Health {
    /// Nothing is up yet.
    pub fn new() -> Self {
        let down = Part::ALL
            .iter()
            .map(|part| (*part, "starting".to_string()))
            .collect();
        Health(Arc::new(Mutex::new(State {
            session: None,
            down,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-written; go on with it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn up(&self, part: Part) {
        self.state().down.remove(&part);
    }

    pub fn down(&self, part: Part, reason: impl Into<String>) {
        self.state().down.insert(part, reason.into());
    }

    /// Every part down for `reason`, except those already down for a reason of their own.
    pub fn all_down(&self, reason: &str) {
        let mut state = self.state();
        for part in Part::ALL {
            state.down.entry(part).or_insert_with(|| reason.to_string());
        }
    }

    /// A session connected its database and broker: they are probed from now on.
    pub fn attach(&self, session: Session) {
        let mut state = self.state();
        state.session = Some(session);
        state.down.remove(&Part::Database);
        state.down.remove(&Part::Broker);
    }

    /// The session ended: its connections are no longer probed.
    pub fn detach(&self) {
        self.state().session = None;
    }

    /// The running session's database, if there is one.
    pub fn database(&self) -> Option<DatabaseConnection> {
        self.state().session.as_ref().map(|s| s.db.clone())
    }

    /// Whether the broker connection of the running session is up.
    pub fn broker_connected(&self) -> bool {
        self.state()
            .session
            .as_ref()
            .is_some_and(|s| s.broker.connected())
    }

    /// Probes the session's database and broker, and reports every part.
    pub async fn readiness(&self) -> Readiness {
        let (session, mut not_ready) = {
            let state = self.state();
            (state.session.clone(), state.down.clone())
        };
        if let Some(session) = session {
            if !session.broker.connected() {
                not_ready
                    .entry(Part::Broker)
                    .or_insert_with(|| "the broker connection is closed".into());
            }
            let probe =
                tokio::time::timeout(PROBE_TIMEOUT, session.db.execute_unprepared("SELECT 1"))
                    .await;
            let failure = match probe {
                Ok(Ok(_)) => None,
                Ok(Err(err)) => Some(format!("the database does not answer: {err}")),
                Err(_) => Some(format!(
                    "the database did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                )),
            };
            if let Some(failure) = failure {
                not_ready.entry(Part::Database).or_insert(failure);
            }
        }
        let parts = Part::ALL
            .iter()
            .map(|part| (*part, !not_ready.contains_key(part)))
            .collect();
        Readiness {
            ready: not_ready.is_empty(),
            parts,
            not_ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_ready_before_a_session_starts() {
        let health = Health::new();
        let readiness = health.readiness().await;
        assert!(!readiness.ready);
        assert_eq!(readiness.not_ready.len(), Part::ALL.len());
        assert!(readiness.parts.values().all(|up| !up));
    }

    #[tokio::test]
    async fn a_part_down_names_itself_and_its_reason() {
        let health = Health::new();
        for part in Part::ALL {
            health.up(part);
        }
        health.down(Part::Relay, "channel closed");
        let readiness = health.readiness().await;
        assert!(!readiness.ready);
        assert_eq!(
            readiness.not_ready.get(&Part::Relay).map(String::as_str),
            Some("channel closed")
        );
        assert_eq!(readiness.parts.get(&Part::Requests), Some(&true));
        health.all_down("restarting");
        let readiness = health.readiness().await;
        assert_eq!(
            readiness.not_ready.get(&Part::Relay).map(String::as_str),
            Some("channel closed"),
            "a part's own reason is kept"
        );
        assert_eq!(
            readiness.not_ready.get(&Part::Replies).map(String::as_str),
            Some("restarting")
        );
    }
}
