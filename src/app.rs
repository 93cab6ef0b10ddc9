//! The service as one value: `Application::build` connects and prepares everything, and
//! `run_until_stopped` runs the outbox relay, both consumers, the watchdog and the HTTP API
//! until the shutdown token fires. `main` (through `serve_until_stopped`) and the integration
//! tests use the same calls.

use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::amqp::{self, publisher::Publisher, relay::Relay, topology, within, AmqpError};
use crate::config::Settings;
use crate::http::{self, ApiState};
use crate::service::Context;
use crate::store;
use crate::telemetry;
use crate::watchdog::Watchdog;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("broker: {0}")]
    Broker(#[from] AmqpError),
    #[error("a component stopped unexpectedly: {0}")]
    Component(String),
    #[error(transparent)]
    SecondWriter(#[from] store::SingleWriterError),
    #[error("HTTP: cannot listen on {0}")]
    Http(String),
}

impl AppError {
    /// Whether starting again can help: a broker or database that is away can come back; a
    /// peer's inequivalent declaration cannot.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            AppError::Broker(AmqpError::Inequivalent(_))
                | AppError::SecondWriter(_)
                | AppError::Http(_)
        )
    }
}

/// Runs the bridge until `shutdown`, starting it again with a growing pause (1 s up to 30 s)
/// whenever the broker or the database goes away. Nothing is lost across a restart: every ack
/// follows its commit, and the outbox keeps what was not yet published.
pub async fn serve_until_stopped(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    const FIRST_PAUSE: Duration = Duration::from_secs(1);
    const LONGEST_PAUSE: Duration = Duration::from_secs(30);
    let mut pause = FIRST_PAUSE;
    loop {
        let started = std::time::Instant::now();
        let outcome = match Application::build(settings.clone()).await {
            Ok(app) => app.run_until_stopped(shutdown.clone()).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(err) if !err.is_retryable() || shutdown.is_cancelled() => return Err(err),
            Err(err) => {
                if started.elapsed() > LONGEST_PAUSE * 2 {
                    pause = FIRST_PAUSE; // it ran for a while: this is a new outage
                }
                tracing::error!(error = %err, retry_in_secs = pause.as_secs(), "astute-bridge lost the broker or the database; starting again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

pub struct Application {
    settings: Settings,
    db: DatabaseConnection,
    connection: Connection,
    ctx: Context,
    wake: Arc<Notify>,
    /// Held while this bridge serves a SQLite file.
    _sqlite_lock: Option<std::fs::File>,
    /// Bound at build, so the address is known (and taken) before the bridge runs.
    http: Option<tokio::net::TcpListener>,
}

impl Application {
    /// Opens the database (migrating it if configured), connects to the broker and declares
    /// the topology.
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        let sqlite_lock = store::single_writer_guard(&settings.database)?;
        telemetry::metrics_handle();
        let http = if settings.http.enabled {
            let listener = tokio::net::TcpListener::bind(&settings.http.bind)
                .await
                .map_err(|e| AppError::Http(format!("{}: {e}", settings.http.bind)))?;
            Some(listener)
        } else {
            None
        };
        let db = store::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            store::migrate(&db).await?;
        }
        let timeout = settings.amqp.timeout();
        let connection = amqp::connect(&settings.amqp.url, timeout).await?;
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        topology::declare(&channel, &settings.amqp).await?;
        let _ = within(
            timeout,
            "channel.close",
            channel.close(200, "topology declared".into()),
        )
        .await;
        let ctx = Context {
            fuel_version: settings.fuel_version.clone(),
            amqp: settings.amqp.clone(),
            publisher_id: format!(
                "astute-bridge.{}",
                gethostname::gethostname().to_string_lossy()
            ),
            master: settings.master.master(),
        };
        Ok(Application {
            settings,
            db,
            connection,
            ctx,
            wake: Arc::new(Notify::new()),
            _sqlite_lock: sqlite_lock,
            http,
        })
    }

    /// The address the HTTP API listens on, if enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The database pool (for tests and tools).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs until `shutdown` fires: then stops consuming, lets in-flight messages finish and
    /// ack, flushes the outbox and closes the connection. A component failing stops the others
    /// and is returned: `serve_until_stopped` starts the bridge again, and nothing is lost (acks
    /// follow commits, and the outbox keeps what was not yet published).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let Application {
            settings,
            db,
            connection,
            ctx,
            wake,
            _sqlite_lock,
            http,
        } = self;
        let timeout = settings.amqp.timeout();
        let consumers_stop = shutdown.child_token();
        let relay_stop = CancellationToken::new();

        let relay = Relay::new(
            db.clone(),
            Publisher::open(&connection, timeout).await?,
            settings.outbox.batch_size,
            Duration::from_millis(settings.outbox.poll_interval_ms),
            Arc::clone(&wake),
        );
        let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
        let replies = amqp::replies::run(
            &connection,
            db.clone(),
            ctx.clone(),
            Arc::clone(&wake),
            consumers_stop.clone(),
        );
        let requests = amqp::requests::run(
            &connection,
            db.clone(),
            ctx.clone(),
            Arc::clone(&wake),
            consumers_stop.clone(),
        );
        let http_task = http.map(|listener| {
            let addr = listener.local_addr().ok();
            tracing::info!(address = ?addr, "HTTP API listening");
            let state = ApiState {
                db: db.clone(),
                ctx: ctx.clone(),
                wake: Arc::clone(&wake),
                broker: connection.status().clone(),
            };
            tokio::spawn(http::serve(
                listener,
                state,
                consumers_stop.clone().cancelled_owned(),
            ))
        });
        let watchdog = Watchdog::new(
            db.clone(),
            ctx.clone(),
            Duration::from_secs(settings.watchdog.silence_secs),
            Duration::from_millis(settings.watchdog.check_interval_ms),
            Arc::clone(&wake),
        );
        let watchdog_task = tokio::spawn(watchdog.run(consumers_stop.clone()));
        tracing::info!(fuel_version = %ctx.fuel_version, "astute-bridge is running");

        // Both consumers run here; when either ends (shutdown or failure), stop the other.
        let (replies_result, requests_result) = tokio::join!(
            async {
                let r = replies.await;
                consumers_stop.cancel();
                r
            },
            async {
                let r = requests.await;
                consumers_stop.cancel();
                r
            }
        );
        let _ = watchdog_task.await;
        if let Some(task) = http_task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "the HTTP API stopped with an error"),
                Err(join) => tracing::warn!(error = %join, "the HTTP API panicked"),
            }
        }
        relay_stop.cancel();
        let relay_result = relay_task
            .await
            .map_err(|e| AppError::Component(format!("outbox relay panicked: {e}")))?;
        // Bounded: lapin's close now and then never resolves, and a stopping bridge must not
        // hang on it (everything is acked and flushed by now). It usually answers an error
        // about a channel already closing, which is harmless here.
        match within(
            timeout,
            "connection.close",
            connection.close(200, "astute-bridge stopping".into()),
        )
        .await
        {
            Ok(()) => {}
            Err(err @ AmqpError::Timeout(_)) => {
                tracing::warn!(error = %err, "the broker connection did not close in time")
            }
            Err(err) => tracing::debug!(error = %err, "closing the broker connection"),
        }
        db.close_by_ref().await.ok();
        replies_result?;
        requests_result?;
        relay_result?;
        tracing::info!("astute-bridge stopped");
        Ok(())
    }
}
