//! The `astute-bridge` binary: `serve`, `migrate`, and `request` (publish one request and print
//! its answer).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use astute_bridge::app::serve_until_stopped;
use astute_bridge::config::{LogFormat, Settings};
use astute_bridge::{amqp, store};

#[derive(Parser)]
#[command(
    version,
    about = "Nailgun's patching flow as a service: AMQP requests in, Astute casts out, replies tracked in a database."
)]
struct Cli {
    /// A TOML file overriding config/default.toml (environment variables ASTUTE_BRIDGE__… win over both).
    #[arg(long, global = true, env = "ASTUTE_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGTERM or SIGINT.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect or replay the dead-letter queue of Astute replies (`nailgun.dead`).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Publish one request to the bridge and print its answer, e.g.
    /// `astute-bridge request update_cluster '{"cluster_id": 1, "release_id": 2}'`.
    Request {
        method: String,
        /// The args object, as JSON.
        #[arg(default_value = "{}")]
        args: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Print the first dead letters with their reasons, as JSON; they stay in the queue.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Publish dead letters to Astute's reply exchange again, once their cause is fixed.
    Replay {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    init_logging(settings.log.format);
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let db = store::connect(&settings.database)
                .await
                .context("connecting to the database")?;
            store::migrate(&db).await.context("migrating")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Dlq { action } => dead_letters(settings, action).await,
        Command::Request {
            method,
            args,
            timeout,
        } => request(settings, &method, &args, timeout).await,
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: finishing in-flight messages");
        signal.cancel();
    });
    serve_until_stopped(settings, shutdown)
        .await
        .context("astute-bridge stopped")?;
    Ok(())
}

/// SIGTERM (containers, systemd) or SIGINT (a terminal).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn dead_letters(settings: Settings, action: DlqAction) -> anyhow::Result<()> {
    let connection = amqp::connect(&settings.amqp.url, settings.amqp.timeout()).await?;
    match action {
        DlqAction::List { limit } => {
            let shown = amqp::dead_letters::list(&connection, &settings.amqp, limit).await?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        DlqAction::Replay { limit } => {
            let replayed = amqp::dead_letters::replay(&connection, &settings.amqp, limit).await?;
            println!(
                "{replayed} message(s) published to '{}' again",
                settings.amqp.nailgun_exchange
            );
        }
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Publishes one request with a private reply queue and prints the answer.
async fn request(settings: Settings, method: &str, args: &str, timeout: u64) -> anyhow::Result<()> {
    let args: serde_json::Value =
        serde_json::from_str(args).context("args must be a JSON object")?;
    if !args.is_object() {
        bail!("args must be a JSON object");
    }
    let body = serde_json::json!({"method": method, "args": args}).to_string();
    let limit = settings.amqp.timeout();
    let connection = amqp::connect(&settings.amqp.url, limit).await?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut answers = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_correlation_id(correlation_id.as_str().into())
        .with_reply_to(queue.name().clone());
    channel
        .basic_publish(
            settings.amqp.request_exchange.as_str().into(),
            format!("request.{method}").into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await?
        .await?;
    let answer = tokio::time::timeout(Duration::from_secs(timeout), async {
        while let Some(delivery) = answers.next().await {
            let delivery = delivery?;
            if delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str())
                == Some(correlation_id.as_str())
            {
                return Ok::<_, anyhow::Error>(delivery.data);
            }
        }
        bail!("the broker closed the answer queue")
    })
    .await
    .context("no answer in time: is `astute-bridge serve` running against this broker?")??;
    let value: serde_json::Value = serde_json::from_slice(&answer)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    if value["ok"] != serde_json::Value::Bool(true) {
        std::process::exit(1);
    }
    Ok(())
}
