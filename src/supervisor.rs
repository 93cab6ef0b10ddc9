//! One owner for every long-running part of a running bridge: each part is spawned here under
//! its name, and the first one to end says which part it was and why. Who is running and who
//! died is read in one place.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

use crate::health::{Health, Part};

/// How a part ended.
pub struct Ended {
    pub part: Part,
    /// `Err` with the reason when it failed or panicked.
    pub result: Result<(), String>,
}

pub struct Supervisor {
    running: JoinSet<Result<(), String>>,
    names: HashMap<Id, Part>,
    health: Health,
}

impl Supervisor {
    pub fn new(health: Health) -> Self {
        Supervisor {
            running: JoinSet::new(),
            names: HashMap::new(),
            health,
        }
    }

    /// Runs `part` and marks it up.
    pub fn spawn<F, E>(&mut self, part: Part, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let handle = self
            .running
            .spawn(async move { work.await.map_err(|err| err.to_string()) });
        self.names.insert(handle.id(), part);
        self.health.up(part);
    }

    /// Whether `part` still runs.
    pub fn runs(&self, part: Part) -> bool {
        self.names.values().any(|p| *p == part)
    }

    /// Waits for the next part to end (`None` when none runs); a panic is reported as a
    /// failure. The part is marked down: `reason_if_ok` says why when it ended without error.
    pub async fn next_end(&mut self, reason_if_ok: &str) -> Option<Ended> {
        let joined = self.running.join_next_with_id().await?;
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(join) => (join.id(), Err(format!("panicked: {join}"))),
        };
        let part = self.names.remove(&id)?;
        let reason = match &result {
            Ok(()) => reason_if_ok.to_string(),
            Err(err) => err.clone(),
        };
        self.health.down(part, reason);
        Some(Ended { part, result })
    }
}
