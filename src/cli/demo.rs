//! `demo`: the whole flow in under a minute, on the local RabbitMQ, with nothing left behind.
//! A bridge (on a SQLite file in a temporary directory) and a simulated Astute run in this
//! process under names of their own, so a bridge already running on the same broker is not
//! disturbed; the demo talks to its bridge through the request interface, as any client would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use astute_bridge::amqp;
use astute_bridge::app::serve_until_stopped;
use astute_bridge::client::Client;
use astute_bridge::config::{AmqpSettings, Settings};
use astute_bridge::simulator::{Scenario, Simulator};

use super::commands::{ended, notifications_table, releases_table, Output};
use super::watch::follow;
use super::{CliError, Done};

const FIXTURE: &str = include_str!("../../tests/fixtures/patching-demo.json");
/// The node whose first deployment fails, in the second environment.
const FAILING_NODE: &str = "b-node-3";

pub async fn run(base: Settings) -> Result<Done, CliError> {
    let dir = tempfile::tempdir()
        .map_err(|e| CliError::Failed(format!("no temporary directory: {e}")))?;
    let settings = demo_settings(base, &dir.path().join("demo.db"));
    let timeout = settings.amqp.timeout();
    let broker = amqp::connect(settings.amqp.url.expose(), timeout).await.map_err(|e| {
        CliError::Failed(format!(
            "RabbitMQ is not reachable ({e}). Start it with: rabbitmq-server -detached && rabbitmqctl await_startup"
        ))
    })?;
    // Declared before anything runs, so the first request finds its exchange.
    let channel = broker
        .create_channel()
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    amqp::topology::declare(&channel, &settings.amqp)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let _ = channel.close(200, "declared".into()).await;
    let stop = CancellationToken::new();
    let bridge = tokio::spawn(serve_until_stopped(settings.clone(), stop.clone()));
    let failed_once = Arc::new(AtomicBool::new(false));
    let simulator = Simulator {
        names: settings.amqp.clone(),
        scenario_for: Arc::new(move |cast| {
            let fails = cast.node_names().values().any(|n| n == FAILING_NODE)
                && !failed_once.swap(true, Ordering::SeqCst);
            Scenario {
                fail_node: fails.then(|| FAILING_NODE.to_string()),
                steps: 4,
                ..Default::default()
            }
        }),
        seed: 1,
        step: Duration::from_millis(60),
    };
    let simulated = {
        let (stop, connection) = (
            stop.clone(),
            amqp::connect(settings.amqp.url.expose(), timeout)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?,
        );
        tokio::spawn(async move {
            let result = simulator.run(&connection, stop).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                connection.close(200, "demo done".into()),
            )
            .await;
            result
        })
    };

    let outcome = story(&settings).await;

    stop.cancel();
    let _ = simulated.await;
    let _ = bridge.await;
    remove_names(&broker, &settings.amqp).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        broker.close(200, "demo done".into()),
    )
    .await;
    outcome
}

/// The story the demo tells, step by step.
async fn story(settings: &Settings) -> Result<Done, CliError> {
    let out = Output { json: false };
    let mut client = Client::connect(&settings.amqp, Duration::from_secs(30)).await?;
    let fixture: Value = serde_json::from_str(FIXTURE)
        .map_err(|e| CliError::Failed(format!("demo fixture: {e}")))?;
    let releases = fixture["releases"].as_array().cloned().unwrap_or_default();

    step("1. Two releases, from tests/fixtures/patching-demo.json");
    let old = client.call("create_release", releases[0].clone()).await?;
    let new = client.call("create_release", releases[1].clone()).await?;
    println!(
        "{}",
        releases_table(&client.call("list_releases", json!({})).await?)
    );

    step("2. Two environments deployed with the old release, four nodes each");
    let mut envs = Vec::new();
    for (name, prefix) in [("demo-env-a", "a"), ("demo-env-b", "b")] {
        let env = client
            .call("create_cluster", json!({"name": name, "release_id": old["id"], "mode": "multinode", "status": "operational"}))
            .await?;
        let nodes: Vec<Value> = [("controller", vec!["controller"]), ("compute", vec!["compute", "cinder"]), ("compute", vec!["compute"]), ("mongo", vec!["mongo"])]
            .iter()
            .enumerate()
            .map(|(i, (_, roles))| json!({"name": format!("{prefix}-node-{}", i + 1), "fqdn": format!("{prefix}-node-{}.domain.tld", i + 1), "roles": roles}))
            .collect();
        client
            .call(
                "add_nodes",
                json!({"cluster_id": env["id"], "nodes": nodes}),
            )
            .await?;
        println!(
            "environment {} '{name}': operational on release {}",
            env["id"], old["id"]
        );
        envs.push(env["id"].as_i64().unwrap_or_default());
    }

    step("3. Upgrade demo-env-a: the dry run first, then the update, followed live");
    let target = json!({"cluster_id": envs[0], "release_id": new["id"]});
    let verdict = client.call("check_update", target.clone()).await?;
    println!(
        "dry run: allowed = {}, operation = {}",
        verdict["allowed"], verdict["operation"]
    );
    let task = client.call("update_cluster", target).await?;
    let end = follow(
        &mut client,
        None,
        envs[0],
        task["uuid"].as_str().unwrap_or_default(),
        false,
    )
    .await?;
    ended(out, &end);

    step(&format!("4. Upgrade demo-env-b: node {FAILING_NODE} fails"));
    let task = client
        .call(
            "update_cluster",
            json!({"cluster_id": envs[1], "release_id": new["id"]}),
        )
        .await?;
    let end = follow(
        &mut client,
        None,
        envs[1],
        task["uuid"].as_str().unwrap_or_default(),
        false,
    )
    .await?;
    ended(out, &end);
    let env = client
        .call("get_cluster", json!({"cluster_id": envs[1]}))
        .await?;
    println!(
        "demo-env-b is now '{}', still on release {}",
        env["status"].as_str().unwrap_or_default(),
        env["release_id"]
    );

    step("5. Roll demo-env-b back to the release it ran before");
    let task = client
        .call("rollback_cluster", json!({"cluster_id": envs[1]}))
        .await?;
    let end = follow(
        &mut client,
        None,
        envs[1],
        task["uuid"].as_str().unwrap_or_default(),
        false,
    )
    .await?;
    ended(out, &end);
    let env = client
        .call("get_cluster", json!({"cluster_id": envs[1]}))
        .await?;
    println!(
        "demo-env-b is now '{}' on release {}",
        env["status"].as_str().unwrap_or_default(),
        env["release_id"]
    );

    step("6. The notifications operators saw");
    println!(
        "{}",
        notifications_table(&client.call("list_notifications", json!({})).await?)
    );

    step("Done. What to try next");
    println!(
        "  scripts/run                                   # the bridge, on ./astute-bridge.db\n  \
         astute-bridge simulate-astute --step-ms 300   # a stand-in for Astute, in another terminal\n  \
         astute-bridge release create @release.json; astute-bridge env create --name env-1 --release 1 --status operational\n  \
         astute-bridge node add --env 1 --name node-1 --fqdn node-1.domain.tld --roles controller\n  \
         astute-bridge env update --env 1 --release 2 --watch"
    );
    client.close().await;
    Ok(Done::Success)
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// The bridge's settings with the demo's own database and names.
fn demo_settings(mut settings: Settings, database: &std::path::Path) -> Settings {
    let prefix = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    settings.database.url = format!("sqlite://{}?mode=rwc", database.display()).into();
    settings.database.migrate_on_start = true;
    settings.http.enabled = false;
    settings.outbox.poll_interval_ms = 200;
    for name in names_mut(&mut settings.amqp) {
        *name = format!("{prefix}.{name}");
    }
    settings
}

fn names_mut(a: &mut AmqpSettings) -> [&mut String; 9] {
    [
        &mut a.naily_exchange,
        &mut a.naily_queue,
        &mut a.naily_service_exchange,
        &mut a.nailgun_exchange,
        &mut a.nailgun_queue,
        &mut a.dead_letter_queue,
        &mut a.request_exchange,
        &mut a.request_queue,
        &mut a.notifications_exchange,
    ]
}

/// Deletes the demo's queues and exchanges.
async fn remove_names(connection: &lapin::Connection, a: &AmqpSettings) {
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    for queue in [
        &a.naily_queue,
        &a.nailgun_queue,
        &a.dead_letter_queue,
        &a.request_queue,
    ] {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        &a.naily_exchange,
        &a.naily_service_exchange,
        &a.nailgun_exchange,
        &a.request_exchange,
        &a.notifications_exchange,
    ] {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}
