//! The service: `Server` (what `serve` runs) keeps the HTTP front up for the life of the process
//! and runs sessions — the outbox relay, both consumers and the watchdog on one broker
//! connection and one database pool, under one supervisor — starting a new one after any loss.
//! `Application` is one session with its HTTP API, for tests and tools.

use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::amqp::{self, relay::Relay, topology, within, AmqpError};
use crate::config::Settings;
use crate::health::{Health, Part, Session as HealthSession};
use crate::http::{self, ApiState, Front};
use crate::retention::Retention;
use crate::service::Context;
use crate::store;
use crate::supervisor::Supervisor;
use crate::telemetry;
use crate::watchdog::Watchdog;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("broker: {0}")]
    Broker(#[from] AmqpError),
    #[error("the {part} stopped: {reason}")]
    Component { part: Part, reason: String },
    #[error(transparent)]
    SecondWriter(#[from] store::SingleWriterError),
    #[error("HTTP: {0}")]
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

    /// What ended the session, as the restart metric counts it.
    pub fn cause(&self) -> &'static str {
        match self {
            AppError::Database(_) | AppError::SecondWriter(_) => Part::Database.as_str(),
            AppError::Broker(_) => Part::Broker.as_str(),
            AppError::Component { part, .. } => part.as_str(),
            AppError::Http(_) => "http",
        }
    }
}

/// Runs the bridge until `shutdown` (what `serve` does): see `Server`.
pub async fn serve_until_stopped(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    Server::bind(settings).await?.run(shutdown).await
}

/// The bridge as `serve` runs it: an HTTP front bound once and serving for the life of the
/// process, and a session (broker, database and every part) started again with a growing pause
/// (1 s up to 30 s) whenever the broker, the database or a part goes away. Nothing is lost
/// across a restart: every ack follows its commit, and the outbox keeps what was not published.
pub struct Server {
    settings: Settings,
    health: Health,
    front: Front,
    listener: Option<TcpListener>,
}

impl Server {
    /// Binds the HTTP front (if enabled); connects nothing yet.
    pub async fn bind(settings: Settings) -> Result<Server, AppError> {
        telemetry::metrics_handle();
        crate::security::warn_about_open_settings(&settings);
        let health = Health::new();
        Ok(Server {
            listener: bind_http(&settings).await?,
            front: Front::new(health.clone(), &settings.http),
            health,
            settings,
        })
    }

    /// The address the HTTP front listens on, if enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let Server {
            settings,
            health,
            front,
            listener,
        } = self;
        let http = HttpTask::start(listener, front.clone());
        let result = run_sessions(&settings, &health, &front, &shutdown).await;
        http.stop().await;
        result
    }
}

async fn run_sessions(
    settings: &Settings,
    health: &Health,
    front: &Front,
    shutdown: &CancellationToken,
) -> Result<(), AppError> {
    const FIRST_PAUSE: Duration = Duration::from_secs(1);
    const LONGEST_PAUSE: Duration = Duration::from_secs(30);
    let mut pause = FIRST_PAUSE;
    loop {
        let started = std::time::Instant::now();
        let outcome = match Session::open(settings, health).await {
            Ok(session) => session.run(shutdown.clone(), health, front).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(err) if !err.is_retryable() || shutdown.is_cancelled() => return Err(err),
            Err(err) => {
                if started.elapsed() > LONGEST_PAUSE * 2 {
                    pause = FIRST_PAUSE; // it ran for a while: this is a new outage
                }
                telemetry::restarted(err.cause());
                tracing::error!(cause = err.cause(), error = %err, retry_in_secs = pause.as_secs(), "astute-bridge starting again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// One bridge run on one connection to the broker and one database pool, for tests and tools
/// that want to hold it (`serve` uses `Server`, which starts sessions again after a loss).
pub struct Application {
    health: Health,
    front: Front,
    listener: Option<TcpListener>,
    session: Session,
}

impl Application {
    /// Binds the HTTP API (if enabled), opens the database (migrating it if configured),
    /// connects to the broker and declares the topology.
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        crate::security::warn_about_open_settings(&settings);
        let health = Health::new();
        let session = Session::open(&settings, &health).await?;
        telemetry::metrics_handle();
        Ok(Application {
            listener: bind_http(&settings).await?,
            front: Front::new(health.clone(), &settings.http),
            health,
            session,
        })
    }

    /// The address the HTTP API listens on, if enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The database pool (for tests and tools).
    pub fn db(&self) -> &DatabaseConnection {
        &self.session.db
    }

    /// Runs until `shutdown` fires or a part fails (see `Session::run`).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let http = HttpTask::start(self.listener, self.front.clone());
        let result = self.session.run(shutdown, &self.health, &self.front).await;
        http.stop().await;
        result
    }
}

async fn bind_http(settings: &Settings) -> Result<Option<TcpListener>, AppError> {
    let http = &settings.http;
    if !http.enabled {
        return Ok(None);
    }
    let listener = TcpListener::bind(&http.bind)
        .await
        .map_err(|e| AppError::Http(format!("cannot listen on {}: {e}", http.bind)))?;
    let address = listener
        .local_addr()
        .map_err(|e| AppError::Http(format!("cannot listen on {}: {e}", http.bind)))?;
    let open = http.tokens.0.is_empty();
    // Checked on the address actually bound, so a host name that resolves to a public
    // address is caught too.
    if open && !address.ip().is_loopback() && !http.allow_anonymous {
        return Err(AppError::Http(format!(
            "refusing to serve the HTTP API on {address} without a token: anyone who reaches it \
             could upgrade any environment. Configure [http] tokens (or http.token_file, or \
             ASTUTE_BRIDGE__HTTP__TOKENS), bind a loopback address such as 127.0.0.1:8000, or \
             set http.allow_anonymous = true to serve it open on purpose"
        )));
    }
    if open {
        tracing::warn!(%address, "the HTTP API asks for no token: configure [http] tokens");
    }
    tracing::info!(%address, tokens = http.tokens.0.len(), "HTTP API listening");
    Ok(Some(listener))
}

/// The HTTP front's server task.
struct HttpTask {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl HttpTask {
    fn start(listener: Option<TcpListener>, front: Front) -> Self {
        let stop = CancellationToken::new();
        let task = listener.map(|listener| {
            tokio::spawn(http::serve(listener, front, stop.clone().cancelled_owned()))
        });
        HttpTask { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        if let Some(task) = self.task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "the HTTP server stopped with an error")
                }
                Err(join) => tracing::warn!(error = %join, "the HTTP server panicked"),
            }
        }
    }
}

/// What one run of the bridge holds: its database pool and broker connection.
struct Session {
    settings: Settings,
    db: DatabaseConnection,
    connection: Connection,
    ctx: Context,
    /// Held while this bridge serves a SQLite file.
    _sqlite_lock: Option<std::fs::File>,
}

impl Session {
    /// Opens the database (migrating it if configured), connects to the broker and declares
    /// the topology; a failure marks the database or the broker down with why.
    async fn open(settings: &Settings, health: &Health) -> Result<Session, AppError> {
        let opened = Self::connect(settings).await;
        if let Err(err) = &opened {
            let part = match err {
                AppError::Broker(_) => Part::Broker,
                _ => Part::Database,
            };
            health.down(part, err.to_string());
        }
        opened
    }

    async fn connect(settings: &Settings) -> Result<Session, AppError> {
        let sqlite_lock = store::single_writer_guard(&settings.database)?;
        let db = store::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            store::migrate(&db).await?;
        }
        let timeout = settings.amqp.timeout();
        let connection = amqp::connect(settings.amqp.url.expose(), timeout).await?;
        let channel = within(timeout, "channel.open", connection.create_channel()).await?;
        topology::declare(&channel, &settings.amqp).await?;
        let _ = within(
            timeout,
            "channel.close",
            channel.close(200, "topology declared".into()),
        )
        .await;
        let ctx = Context::from_settings(
            settings,
            format!(
                "astute-bridge.{}",
                gethostname::gethostname().to_string_lossy()
            ),
        );
        Ok(Session {
            settings: settings.clone(),
            db,
            connection,
            ctx,
            _sqlite_lock: sqlite_lock,
        })
    }

    /// Runs every part under one supervisor until `shutdown` fires or a part ends. Then stops
    /// consuming, lets in-flight messages finish and ack, flushes the outbox and closes the
    /// connection. A part that ended on its own is returned as the error (naming the part, or
    /// the broker when the connection is gone), and the caller starts a new session.
    async fn run(
        self,
        shutdown: CancellationToken,
        health: &Health,
        front: &Front,
    ) -> Result<(), AppError> {
        let Session {
            settings,
            db,
            connection,
            ctx,
            _sqlite_lock,
        } = self;
        let connection = Arc::new(connection);
        let timeout = settings.amqp.timeout();
        let wake = Arc::new(Notify::new());
        let consumers_stop = CancellationToken::new();
        let relay_stop = CancellationToken::new();
        let mut parts = Supervisor::new(health.clone());

        let relay = Relay::open(
            db.clone(),
            Arc::clone(&connection),
            ctx.clone(),
            settings.outbox.clone(),
            Arc::clone(&wake),
        )
        .await?;
        parts.spawn(Part::Relay, relay.run(relay_stop.clone()));
        parts.spawn(Part::Replies, {
            let (connection, db, ctx, wake, stop) = (
                Arc::clone(&connection),
                db.clone(),
                ctx.clone(),
                Arc::clone(&wake),
                consumers_stop.clone(),
            );
            async move { amqp::replies::run(&connection, db, ctx, wake, stop).await }
        });
        parts.spawn(Part::Requests, {
            let (connection, db, ctx, wake, stop) = (
                Arc::clone(&connection),
                db.clone(),
                ctx.clone(),
                Arc::clone(&wake),
                consumers_stop.clone(),
            );
            async move { amqp::requests::run(&connection, db, ctx, wake, stop).await }
        });
        let watchdog = Watchdog::new(
            db.clone(),
            ctx.clone(),
            Duration::from_secs(settings.watchdog.silence_secs),
            Duration::from_millis(settings.watchdog.check_interval_ms),
            Arc::clone(&wake),
        );
        let retention = Retention::new(db.clone(), settings.retention.clone());
        parts.spawn(Part::Watchdog, {
            let stop = consumers_stop.clone();
            async move {
                tokio::join!(watchdog.run(stop.clone()), retention.run(stop));
                Ok::<(), std::convert::Infallible>(())
            }
        });
        health.attach(HealthSession {
            db: db.clone(),
            broker: connection.status().clone(),
        });
        front.open(ApiState {
            db: db.clone(),
            ctx: ctx.clone(),
            wake: Arc::clone(&wake),
        });
        tracing::info!(fuel_version = %ctx.fuel_version, "astute-bridge is running");

        let failure = tokio::select! {
            _ = shutdown.cancelled() => None,
            ended = parts.next_end("it ended without being asked to") => ended,
        };
        front.close();
        let failure = failure.map(|ended| {
            let reason = match ended.result {
                Ok(()) => "it ended without being asked to".to_string(),
                Err(reason) => reason,
            };
            tracing::error!(part = %ended.part, reason, "a part of the bridge stopped");
            // When the connection is gone every part fails with it: the broker is the cause.
            let part = if connection.status().connected() {
                ended.part
            } else {
                Part::Broker
            };
            AppError::Component { part, reason }
        });

        // Consumers and watchdog stop first; the relay flushes what they committed, last.
        consumers_stop.cancel();
        let mut stop_error = None;
        loop {
            if !(parts.runs(Part::Replies)
                || parts.runs(Part::Requests)
                || parts.runs(Part::Watchdog))
            {
                relay_stop.cancel();
            }
            let Some(ended) = parts.next_end("stopped").await else {
                break;
            };
            if let (Err(reason), None) = (ended.result, &stop_error) {
                stop_error = Some(AppError::Component {
                    part: ended.part,
                    reason,
                });
            }
        }
        health.detach();
        health.all_down(if shutdown.is_cancelled() {
            "stopping"
        } else {
            "starting again"
        });
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
        if let Some(err) = failure.or(stop_error) {
            return Err(err);
        }
        tracing::info!("astute-bridge stopped");
        Ok(())
    }
}
