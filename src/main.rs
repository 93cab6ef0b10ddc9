//! The `astute-bridge` binary: `serve`, `migrate`, the dead-letter tools, `request` (publish one
//! request and print its answer), the operator's client commands, `watch`, `simulate-astute` and
//! `demo`.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
    /// Print JSON instead of tables (client commands).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each answer of the bridge (client commands).
    #[arg(long, global = true, default_value_t = 30)]
    wait: u64,
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
    /// Inspect or retry outbox messages the broker refused and the relay set aside.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Print the audit trail (who asked for each change), newest first, as JSON.
    Audit {
        /// Only the rows naming this cluster.
        #[arg(long)]
        cluster: Option<i32>,
        /// Only rows older than this id (the last id of the previous page).
        #[arg(long)]
        before: Option<i32>,
        /// Most rows shown (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
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
    /// Releases: list, create, delete.
    Release {
        #[command(subcommand)]
        action: cli::commands::ReleaseCommand,
    },
    /// Environments: list, create, show, update, rollback.
    Env {
        #[command(subcommand)]
        action: cli::commands::EnvCommand,
    },
    /// Nodes of an environment.
    Node {
        #[command(subcommand)]
        action: cli::commands::NodeCommand,
    },
    /// Notifications, newest first; or mark some read.
    Notifications(cli::commands::NotificationsArgs),
    /// Tasks.
    Task {
        #[command(subcommand)]
        action: cli::commands::TaskCommand,
    },
    /// Follow a running task live until it ends (exit 0 on success, 1 on failure).
    Watch {
        /// The environment whose latest task to follow.
        #[arg(long, conflicts_with = "task", required_unless_present = "task")]
        env: Option<i64>,
        /// The task to follow.
        #[arg(long)]
        task: Option<String>,
    },
    /// A SIMULATOR standing in for Astute: answers deploy casts on the broker as Astute's
    /// reporter would, without touching any node.
    SimulateAstute(SimulateArgs),
    /// The whole flow in under a minute on the local RabbitMQ: upgrade, failure, rollback.
    Demo,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// This node (by name) fails to deploy.
    #[arg(long)]
    fail_node: Option<String>,
    /// This node (by name) goes offline while it deploys.
    #[arg(long)]
    offline_node: Option<String>,
    /// The whole deployment fails with this error after its first group.
    #[arg(long)]
    error: Option<String>,
    /// Take casts and never answer (to rehearse the watchdog).
    #[arg(long)]
    stall: bool,
    /// Milliseconds between replies.
    #[arg(long, default_value_t = 500)]
    step_ms: u64,
    /// Progress reports per role.
    #[arg(long, default_value_t = 4)]
    steps: u8,
    /// Seed of the progress jitter: the same seed gives the same replies.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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

#[derive(Subcommand)]
enum OutboxAction {
    /// Print the parked messages with their reasons, as JSON.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Put parked messages back in line (all, or those given with --id), once the cause is
    /// fixed.
    Retry {
        #[arg(long = "id")]
        ids: Vec<i32>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let out = cli::commands::Output { json: cli.json };
    let wait = Duration::from_secs(cli.wait);
    match cli.command {
        Command::Serve => {
            init_logging(settings.log.format, "info", false);
            edge(serve(settings).await)
        }
        Command::Migrate => {
            init_logging(settings.log.format, "info", false);
            edge(migrate(settings).await)
        }
        Command::Dlq { action } => {
            init_logging(settings.log.format, "warn,lapin=off", true);
            edge(dead_letters(settings, action).await)
        }
        Command::Outbox { action } => {
            init_logging(settings.log.format, "warn", true);
            edge(parked_messages(settings, action).await)
        }
        Command::Audit {
            cluster,
            before,
            limit,
        } => {
            init_logging(settings.log.format, "warn", true);
            edge(audit_trail(settings, cluster, before, limit).await)
        }
        Command::Request {
            method,
            args,
            timeout,
        } => {
            init_logging(settings.log.format, "warn,lapin=off", true);
            cli::exit_code(request(settings, &method, &args, timeout).await)
        }
        Command::SimulateAstute(args) => {
            init_logging(settings.log.format, "info", false);
            edge(simulate(settings, args).await)
        }
        Command::Demo => {
            init_logging(settings.log.format, "warn,lapin=off", true);
            cli::exit_code(cli::demo::run(settings).await)
        }
        command => {
            init_logging(settings.log.format, "warn,lapin=off", true);
            cli::exit_code(client_command(settings, out, wait, command).await)
        }
    }
}

/// The client commands, on one connection.
async fn client_command(
    settings: Settings,
    out: cli::commands::Output,
    wait: Duration,
    command: Command,
) -> Result<cli::Done, cli::CliError> {
    use cli::commands;
    let mut client = commands::connect(&settings, wait).await?;
    let done = match command {
        Command::Release { action } => commands::release(&mut client, out, action).await,
        Command::Env { action } => commands::env(&mut client, &settings, out, action).await,
        Command::Node { action } => commands::node(&mut client, out, action).await,
        Command::Notifications(args) => commands::notifications(&mut client, out, args).await,
        Command::Task { action } => commands::task(&mut client, out, action).await,
        Command::Watch { env, task } => watch(&mut client, &settings, out, env, task).await,
        _ => Err(cli::CliError::Usage("not a client command".into())),
    };
    client.close().await;
    done
}

/// Follows the given task, or the environment's latest one.
async fn watch(
    client: &mut astute_bridge::client::Client,
    settings: &Settings,
    out: cli::commands::Output,
    env: Option<i64>,
    task: Option<String>,
) -> Result<cli::Done, cli::CliError> {
    let notifications = client
        .notifications(&settings.amqp.notifications_exchange)
        .await?;
    let (cluster_id, uuid) = match (env, task) {
        (_, Some(uuid)) => {
            let task = client
                .call("get_task", serde_json::json!({"task_uuid": uuid}))
                .await?;
            (task["cluster_id"].as_i64().unwrap_or_default(), uuid)
        }
        (Some(env), None) => {
            let cluster = client
                .call("get_cluster", serde_json::json!({"cluster_id": env}))
                .await?;
            let uuid = cluster["latest_task"]["uuid"]
                .as_str()
                .ok_or_else(|| {
                    cli::CliError::Usage(format!(
                        "environment {env} has no task yet: start one with `astute-bridge env update --env {env} --release ID`"
                    ))
                })?
                .to_string();
            (env, uuid)
        }
        (None, None) => return Err(cli::CliError::Usage("give --env ID or --task UUID".into())),
    };
    let end = cli::watch::follow(client, Some(notifications), cluster_id, &uuid, out.json).await?;
    Ok(cli::commands::ended(out, &end))
}

/// Runs the simulator until SIGTERM/SIGINT.
async fn simulate(settings: Settings, args: SimulateArgs) -> anyhow::Result<()> {
    use astute_bridge::simulator::{Scenario, Simulator};
    let connection = amqp::connect(settings.amqp.url.expose(), settings.amqp.timeout())
        .await
        .context("connecting to RabbitMQ (start it with `rabbitmq-server -detached`)")?;
    let scenario = Scenario {
        fail_node: args.fail_node,
        offline_node: args.offline_node,
        error: args.error,
        stall: args.stall,
        steps: args.steps,
    };
    tracing::warn!(
        ?scenario,
        "this is a SIMULATOR of Astute: it answers deploy casts without deploying anything"
    );
    let simulator = Simulator::new(
        settings.amqp.clone(),
        scenario,
        args.seed,
        Duration::from_millis(args.step_ms),
    );
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    simulator.run(&connection, stop).await?;
    let _ =
        tokio::time::timeout(Duration::from_secs(2), connection.close(200, "done".into())).await;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = store::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    store::migrate(&db).await.context("migrating")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// The service commands' edge: an error is one line (with its causes), never a backtrace.
fn edge(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs at `default_level` unless RUST_LOG says otherwise; client commands log to stderr so
/// their output stays clean for scripts.
fn init_logging(format: LogFormat, default_level: &str, to_stderr: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (format, to_stderr) {
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
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
    let connection = amqp::connect(settings.amqp.url.expose(), settings.amqp.timeout()).await?;
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

async fn audit_trail(
    settings: Settings,
    cluster: Option<i32>,
    before: Option<i32>,
    limit: u64,
) -> anyhow::Result<()> {
    let rows = cli::audit::list(&settings, cluster, before, limit).await?;
    println!("{}", serde_json::to_string_pretty(&rows)?);
    Ok(())
}

async fn parked_messages(settings: Settings, action: OutboxAction) -> anyhow::Result<()> {
    match action {
        OutboxAction::List { limit } => {
            let shown = cli::outbox::list(&settings, limit).await?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        OutboxAction::Retry { ids } => println!("{}", cli::outbox::retry(&settings, &ids).await?),
    }
    Ok(())
}

/// Publishes one request with a private reply queue and prints the whole answer.
async fn request(
    settings: Settings,
    method: &str,
    args: &str,
    timeout: u64,
) -> Result<cli::Done, cli::CliError> {
    let args: serde_json::Value = serde_json::from_str(args).map_err(|e| {
        cli::CliError::Usage(format!(
            "args must be a JSON object, e.g. '{{\"cluster_id\": 1}}' ({e})"
        ))
    })?;
    if !args.is_object() {
        return Err(cli::CliError::Usage(
            "args must be a JSON object, e.g. '{\"cluster_id\": 1}'".into(),
        ));
    }
    let mut client = cli::commands::connect(&settings, Duration::from_secs(timeout)).await?;
    let answer = client.call_raw(method, args).await;
    client.close().await;
    let answer = answer?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    Ok(if answer["ok"] == true {
        cli::Done::Success
    } else {
        cli::Done::Refused
    })
}
