//! The simulator on the broker: consumes casts from `naily`, acks each before working on it (as
//! Astute does), and plays its replies to `nailgun` at a steady pace, one task after another
//! or side by side.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use lapin::{BasicProperties, Connection};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::script::{replies, Cast, Scenario};
use crate::amqp::publisher::Publisher;
use crate::amqp::settle::ack;
use crate::amqp::subscription::Subscription;
use crate::amqp::{topology, within, AmqpError};
use crate::config::AmqpSettings;

/// Picks the scenario of each cast (a fixed one from the command line; the demo varies it).
pub type ScenarioFor = Arc<dyn Fn(&Cast) -> Scenario + Send + Sync>;

/// A simulated Astute.
pub struct Simulator {
    pub names: AmqpSettings,
    pub scenario_for: ScenarioFor,
    /// Makes the progress jitter repeatable.
    pub seed: u64,
    /// Pause before each reply.
    pub step: Duration,
}

impl Simulator {
    /// One scenario for every cast.
    pub fn new(names: AmqpSettings, scenario: Scenario, seed: u64, step: Duration) -> Simulator {
        Simulator {
            names,
            scenario_for: Arc::new(move |_| scenario.clone()),
            seed,
            step,
        }
    }

    /// Answers casts until `stop`.
    pub async fn run(
        self,
        connection: &Connection,
        stop: CancellationToken,
    ) -> Result<(), AmqpError> {
        let timeout = self.names.timeout();
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        topology::declare_astute_side(&channel, &self.names).await?;
        let _ = within(
            timeout,
            "channel.close",
            channel.close(200, "declared".into()),
        )
        .await;
        let publisher = Arc::new(Publisher::open(connection, timeout).await?);
        let mut casts = Subscription::open(
            connection,
            &self.names.naily_queue,
            "casts (simulated Astute)",
            1,
            timeout,
        )
        .await?;
        let this = Arc::new(self);
        let mut playing = JoinSet::new();
        let ended = loop {
            tokio::select! {
                next = casts.next() => {
                    let delivery = match next {
                        Ok(delivery) => delivery,
                        Err(err) => break Err(err),
                    };
                    // Astute acks first, then works: a cast it crashes on is gone.
                    ack(&delivery, timeout).await?;
                    for message in messages(&delivery.data) {
                        match Cast::parse(&message) {
                            Ok(cast) => {
                                let respond_to = message["respond_to"].as_str().unwrap_or("deploy_resp").to_string();
                                let (this, publisher, stop) = (Arc::clone(&this), Arc::clone(&publisher), stop.clone());
                                playing.spawn(async move { this.play(cast, respond_to, &publisher, stop).await });
                            }
                            Err(err) => tracing::warn!(error = %err, "simulated Astute ignored a message"),
                        }
                    }
                }
                Some(done) = playing.join_next(), if !playing.is_empty() => {
                    if let Ok(Err(err)) = done {
                        break Err(err);
                    }
                }
                _ = stop.cancelled() => break Ok(()),
            }
        };
        casts.cancel().await;
        playing.shutdown().await;
        casts.close().await;
        if let Ok(publisher) = Arc::try_unwrap(publisher) {
            publisher.close().await;
        }
        ended
    }

    /// Sends one cast's replies, one per step, until done or `stop`.
    async fn play(
        &self,
        cast: Cast,
        respond_to: String,
        publisher: &Publisher,
        stop: CancellationToken,
    ) -> Result<(), AmqpError> {
        let scenario = (self.scenario_for)(&cast);
        let script = replies(&cast, &scenario, self.seed ^ stable_hash(&cast.task_uuid));
        tracing::info!(task_uuid = %cast.task_uuid, replies = script.len(), stall = scenario.stall, "simulated Astute took a cast");
        for args in script {
            tokio::select! {
                _ = tokio::time::sleep(self.step) => {}
                _ = stop.cancelled() => return Ok(()),
            }
            let body = json!({"method": respond_to, "args": args}).to_string();
            // As Astute's producer: JSON, not persistent.
            let properties =
                BasicProperties::default().with_content_type("application/json".into());
            publisher
                .publish_one(
                    &self.names.nailgun_exchange,
                    &self.names.nailgun_routing_key,
                    body.as_bytes(),
                    properties,
                    false,
                )
                .await?;
        }
        Ok(())
    }
}

/// Astute takes one message or a JSON array of them; anything else is only logged.
fn messages(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(many)) => many,
        Ok(one) => vec![one],
        Err(err) => {
            tracing::warn!(error = %err, "simulated Astute got a message that is not JSON");
            Vec::new()
        }
    }
}

fn stable_hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
