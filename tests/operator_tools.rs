//! The operator's tools against a real bridge on the real broker: the simulated Astute in each
//! of its scenarios, the client commands with their exit codes, `--watch`/`watch` ending with
//! the task's outcome, and the demo from start to end.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use astute_bridge::amqp;
use astute_bridge::simulator::{Scenario, Simulator};
use common::{load_fixture, release_id, Backend, Bridge};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");

/// A simulated Astute answering the bridge's casts until the token is cancelled.
struct SimulatedAstute {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl SimulatedAstute {
    async fn start(bridge: &Bridge, scenario: Scenario) -> SimulatedAstute {
        let names = bridge.settings.amqp.clone();
        let connection = amqp::connect(names.url.expose(), names.timeout())
            .await
            .expect("the simulator connects");
        let stop = CancellationToken::new();
        let simulator = Simulator::new(names, scenario, 7, Duration::from_millis(5));
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            simulator
                .run(&connection, token)
                .await
                .expect("the simulator ran without error");
            let _ = connection.close(200, "done".into()).await;
        });
        SimulatedAstute { stop, handle }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.expect("simulator task");
    }
}

fn steps(scenario: Scenario) -> Scenario {
    Scenario {
        steps: 3,
        ..scenario
    }
}

/// A bridge whose casts go to a simulator, with the fixture's multinode environment loaded;
/// returns (cluster, old release, new release).
async fn bridge_for_the_simulator(backend: Backend) -> (Bridge, i64, i64, i64) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.watchdog.silence_secs = 1;
        s.watchdog.check_interval_ms = 100;
    })
    .await;
    bridge.leave_casts_to_astute().await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let old = release_id(&releases, "Icehouse on Ubuntu 12.04", "2014.1-5.0");
    let new = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    (bridge, cluster, old, new)
}

fn node<'a>(cluster: &'a Value, name: &str) -> &'a Value {
    cluster["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("node {name} in {cluster}"))
}

async fn simulated_success(backend: Backend) {
    let (mut bridge, cluster, _, new) = bridge_for_the_simulator(backend).await;
    let astute = SimulatedAstute::start(&bridge, steps(Scenario::default())).await;
    bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let done = bridge
        .cluster_until(cluster, "operational on the new release", |c| {
            c["status"] == "operational" && c["release_id"] == new
        })
        .await;
    for n in done["nodes"].as_array().expect("nodes") {
        assert_eq!(
            (&n["status"], &n["progress"]),
            (&json!("ready"), &json!(100)),
            "{n}"
        );
    }
    assert_eq!(done["latest_task"]["status"], "ready");
    assert_eq!(done["latest_task"]["progress"], 100);
    astute.stop().await;
    bridge.stop().await;
}

async fn simulated_node_failure_then_rollback(backend: Backend) {
    let (mut bridge, cluster, old, new) = bridge_for_the_simulator(backend).await;
    let failing = SimulatedAstute::start(
        &bridge,
        steps(Scenario {
            fail_node: Some("node-3".into()),
            ..Default::default()
        }),
    )
    .await;
    bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let failed = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    assert_eq!(node(&failed, "node-3")["status"], "error");
    assert_eq!(failed["release_id"], old, "a failure keeps the release");
    let message = failed["latest_task"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("Upgrade has failed. Some error occured on nodes"),
        "{message}"
    );
    failing.stop().await;

    let healthy = SimulatedAstute::start(&bridge, steps(Scenario::default())).await;
    bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    let back = bridge
        .cluster_until(cluster, "operational after the rollback", |c| {
            c["status"] == "operational"
        })
        .await;
    assert_eq!(back["release_id"], old);
    assert_eq!(back["latest_task"]["name"], "rollback");
    assert_eq!(node(&back, "node-3")["status"], "ready");
    healthy.stop().await;
    bridge.stop().await;
}

async fn simulated_offline_node(backend: Backend) {
    let (mut bridge, cluster, _, new) = bridge_for_the_simulator(backend).await;
    let astute = SimulatedAstute::start(
        &bridge,
        steps(Scenario {
            offline_node: Some("node-2".into()),
            ..Default::default()
        }),
    )
    .await;
    bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let failed = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let offline = node(&failed, "node-2");
    assert_eq!(offline["online"], false);
    assert_eq!(offline["error_msg"], "Node is offline");
    astute.stop().await;
    bridge.stop().await;
}

async fn simulated_stall_ends_by_the_watchdog(backend: Backend) {
    let (mut bridge, cluster, _, new) = bridge_for_the_simulator(backend).await;
    let astute = SimulatedAstute::start(
        &bridge,
        steps(Scenario {
            stall: true,
            ..Default::default()
        }),
    )
    .await;
    bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let failed = bridge
        .cluster_until(cluster, "upgrade_error by the watchdog", |c| {
            c["status"] == "upgrade_error"
        })
        .await;
    let message = failed["latest_task"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("No word from Astute"), "{message}");
    astute.stop().await;
    bridge.stop().await;
}

/// Runs the binary with this bridge's names; returns its output.
async fn run(bridge: &Bridge, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).envs(bridge.binary_env());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run astute-bridge"))
        .await
        .expect("blocking task")
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_answer_with_tables_json_and_reliable_exit_codes() {
    let (mut bridge, cluster, _, new) = bridge_for_the_simulator(Backend::Sqlite).await;
    let id = cluster.to_string();
    let release = new.to_string();

    let listed = run(&bridge, &["release", "list", "--json"], &[]).await;
    assert_eq!(code(&listed), 0, "{}", text(&listed.stderr));
    let releases: Value = serde_json::from_slice(&listed.stdout).expect("--json prints JSON");
    assert_eq!(releases.as_array().map(Vec::len), Some(5));

    let envs = run(&bridge, &["env", "list", "--json"], &[]).await;
    assert_eq!(code(&envs), 0, "{}", text(&envs.stderr));
    let envs: Value = serde_json::from_slice(&envs.stdout).expect("--json prints JSON");
    let ids: Vec<i64> = envs
        .as_array()
        .map(|all| all.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [cluster], "{envs}");

    let table = run(&bridge, &["env", "show", "--env", &id], &[]).await;
    assert_eq!(code(&table), 0);
    let shown = text(&table.stdout);
    assert!(
        shown.contains("env-multinode") && shown.contains("node-4"),
        "{shown}"
    );

    let dry = run(
        &bridge,
        &[
            "env",
            "update",
            "--env",
            &id,
            "--release",
            &release,
            "--dry-run",
        ],
        &[],
    )
    .await;
    assert_eq!(code(&dry), 0);
    assert!(
        text(&dry.stdout).contains("allowed: upgrade"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(bridge.count("tasks").await, 0, "a dry run starts nothing");

    let refused = run(
        &bridge,
        &["env", "update", "--env", "9999", "--release", &release],
        &[],
    )
    .await;
    assert_eq!(code(&refused), 1, "refused is exit 1");
    assert!(
        text(&refused.stderr).contains("refused (not_found)"),
        "{}",
        text(&refused.stderr)
    );

    let usage = run(
        &bridge,
        &["request", "update_cluster", "not json"],
        &[("RUST_BACKTRACE", "1")],
    )
    .await;
    assert_eq!(code(&usage), 2, "a user's mistake is exit 2");
    let said = text(&usage.stderr);
    assert!(
        said.contains("args must be a JSON object") && !said.contains("backtrace"),
        "{said}"
    );

    let unknown_flag = run(&bridge, &["env", "update", "--env"], &[]).await;
    assert_eq!(code(&unknown_flag), 2);

    let unreachable = run(
        &bridge,
        &["release", "list"],
        &[
            (
                "ASTUTE_BRIDGE__AMQP__URL",
                "amqp://guest:guest@127.0.0.1:9/%2f",
            ),
            ("ASTUTE_BRIDGE__AMQP__TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    assert_eq!(
        code(&unreachable),
        3,
        "no broker is exit 3: {}",
        text(&unreachable.stderr)
    );
    assert!(text(&unreachable.stderr).contains("hint:"));

    let no_bridge = run(
        &bridge,
        &["release", "list"],
        &[(
            "ASTUTE_BRIDGE__AMQP__REQUEST_EXCHANGE",
            "nobody-declared-this",
        )],
    )
    .await;
    assert_eq!(
        code(&no_bridge),
        3,
        "no bridge is exit 3: {}",
        text(&no_bridge.stderr)
    );

    bridge
        .ok(
            "add_notification",
            json!({"topic": "warning", "message": "maintenance at noon", "cluster_id": cluster}),
        )
        .await;
    let unread = run(&bridge, &["notifications", "--unread", "--json"], &[]).await;
    let listed: Value = serde_json::from_slice(&unread.stdout).expect("JSON");
    let note = listed[0]["id"].as_i64().expect("a notification");
    let marked = run(
        &bridge,
        &["notifications", "--mark-read", &note.to_string()],
        &[],
    )
    .await;
    assert_eq!(code(&marked), 0);
    let status = bridge
        .ok("list_notifications", json!({"status": "unread"}))
        .await;
    assert_eq!(status.as_array().map(Vec::len), Some(0), "marked read");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_watch_and_watch_end_with_the_task_outcome() {
    let (mut bridge, cluster, _, new) = bridge_for_the_simulator(Backend::Sqlite).await;
    let astute = SimulatedAstute::start(&bridge, steps(Scenario::default())).await;
    let id = cluster.to_string();
    let watched = run(
        &bridge,
        &[
            "env",
            "update",
            "--env",
            &id,
            "--release",
            &new.to_string(),
            "--watch",
        ],
        &[],
    )
    .await;
    assert_eq!(code(&watched), 0, "{}", text(&watched.stderr));
    let shown = text(&watched.stdout);
    assert!(
        shown.contains("task ready") && shown.contains("node-1 100% ready"),
        "{shown}"
    );
    astute.stop().await;

    // A failure: --watch and watch both end with exit 1.
    let (_, releases) = (cluster, bridge.ok("list_releases", json!({})).await);
    let release = |name: &str, version: &str| {
        releases
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|r| r["name"] == name && r["version"] == version)
            })
            .map(|r| r["id"].clone())
            .expect("release")
    };
    let ha = bridge
        .ok("create_cluster", json!({"name": "env-ha-2", "release_id": release("Icehouse on CentOS 6.5", "2014.1-5.0"), "mode": "ha_compact", "status": "operational"}))
        .await["id"]
        .as_i64()
        .expect("id");
    bridge
        .ok("add_nodes", json!({"cluster_id": ha, "nodes": [{"name": "c-1", "fqdn": "c-1.domain.tld", "roles": ["controller"]}, {"name": "c-2", "fqdn": "c-2.domain.tld", "roles": ["compute"]}]}))
        .await;
    let failing = SimulatedAstute::start(
        &bridge,
        steps(Scenario {
            fail_node: Some("c-2".into()),
            ..Default::default()
        }),
    )
    .await;
    let target = release("Icehouse on CentOS 6.5", "2014.1.1-5.0.2").to_string();
    let watched = run(
        &bridge,
        &[
            "env",
            "update",
            "--env",
            &ha.to_string(),
            "--release",
            &target,
            "--watch",
        ],
        &[],
    )
    .await;
    assert_eq!(
        code(&watched),
        1,
        "a failed task is exit 1: {}",
        text(&watched.stdout)
    );
    assert!(
        text(&watched.stdout).contains("task error: Upgrade has failed."),
        "{}",
        text(&watched.stdout)
    );
    let again = run(&bridge, &["watch", "--env", &ha.to_string()], &[]).await;
    assert_eq!(code(&again), 1, "watch of an ended failed task is exit 1");
    let task = bridge.ok("get_cluster", json!({"cluster_id": ha})).await["latest_task"]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let by_task = run(&bridge, &["watch", "--task", &task, "--json"], &[]).await;
    assert_eq!(code(&by_task), 1);
    let end: Value =
        serde_json::from_slice(&by_task.stdout).expect("--json prints the end as JSON");
    assert_eq!(end["status"], "error");
    failing.stop().await;
    bridge.stop().await;
}

#[test]
fn the_demo_runs_to_its_end_and_says_what_to_try_next() {
    let output = Command::new(BIN)
        .arg("demo")
        .output()
        .expect("run the demo");
    let shown = text(&output.stdout);
    assert_eq!(code(&output), 0, "{shown}\n{}", text(&output.stderr));
    for expected in [
        "task ready: Upgrade of environment 'demo-env-a' is done.",
        "task error: Upgrade has failed.",
        "demo-env-b is now 'operational'",
        "What to try next",
    ] {
        assert!(
            shown.contains(expected),
            "the demo says {expected:?}:\n{shown}"
        );
    }
}

on_both_backends!(simulated_success);

mod sqlite_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simulated_node_failure_then_rollback() {
        super::simulated_node_failure_then_rollback(super::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simulated_offline_node() {
        super::simulated_offline_node(super::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simulated_stall_ends_by_the_watchdog() {
        super::simulated_stall_ends_by_the_watchdog(super::Backend::Sqlite).await
    }
}
