//! The binary as an operator runs it: `migrate`, then `serve` answering a request sent with
//! `request`, then SIGTERM → a clean stop with exit status 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");
const START_RABBITMQ: &str = "rabbitmq-server -detached && rabbitmqctl await_startup";

/// Environment that gives this test its own database and broker names.
fn env(dir: &std::path::Path, prefix: &str) -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "ASTUTE_BRIDGE__DATABASE__URL".to_string(),
            format!("sqlite://{}?mode=rwc", dir.join("b.db").display()),
        ),
        ("RUST_LOG".to_string(), "warn".to_string()),
        // Its releases are registered without sources: the master's defaults stand in.
        (
            "ASTUTE_BRIDGE__MASTER__IP".to_string(),
            "10.20.0.2".to_string(),
        ),
        (
            "ASTUTE_BRIDGE__HTTP__BIND".to_string(),
            "127.0.0.1:0".to_string(),
        ),
    ];
    for (key, name) in [
        ("NAILY_EXCHANGE", "naily"),
        ("NAILY_QUEUE", "naily"),
        ("NAILY_SERVICE_EXCHANGE", "naily_service"),
        ("NAILGUN_EXCHANGE", "nailgun"),
        ("NAILGUN_QUEUE", "nailgun"),
        ("DEAD_LETTER_QUEUE", "nailgun.dead"),
        ("REQUEST_EXCHANGE", "astute_bridge"),
        ("REQUEST_QUEUE", "astute_bridge.requests"),
        ("NOTIFICATIONS_EXCHANGE", "notifications"),
    ] {
        vars.push((
            format!("ASTUTE_BRIDGE__AMQP__{key}"),
            format!("{prefix}.{name}"),
        ));
    }
    vars
}

#[test]
fn migrate_serve_request_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let vars = env(dir.path(), &prefix);

    let migrate = Command::new(BIN)
        .arg("migrate")
        .envs(vars.clone())
        .output()
        .expect("run migrate");
    assert!(
        migrate.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(
        dir.path().join("b.db").exists(),
        "migrate created the SQLite database"
    );

    let mut serve = Command::new(BIN)
        .arg("serve")
        .envs(vars.clone())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");

    // The first request is answered once the bridge consumes: that is the readiness signal.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let out = Command::new(BIN)
            .args([
                "request",
                "create_release",
                r#"{"name": "Icehouse", "version": "2014.1-5.0", "operating_system": "Ubuntu"}"#,
                "--timeout",
                "5",
            ])
            .envs(vars.clone())
            .output()
            .expect("run request");
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).to_string();
        }
        if let Ok(Some(status)) = serve.try_wait() {
            panic!("serve exited early with {status}; is RabbitMQ running? start it with: {START_RABBITMQ}");
        }
        assert!(
            Instant::now() < deadline,
            "no answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("the answer is JSON");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["result"]["version"], "2014.1-5.0");

    // A refused request exits 1 and prints the error.
    let refused = Command::new(BIN)
        .args(["request", "get_cluster", r#"{"cluster_id": 404}"#])
        .envs(vars.clone())
        .output()
        .expect("run request");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("not_found"));

    let killed = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = serve.wait().expect("wait for serve");
    assert_eq!(status.code(), Some(0), "serve stops cleanly on SIGTERM");

    // Leave the broker as we found it.
    for (key, name) in &vars {
        if key.ends_with("_QUEUE") {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_queue", name])
                .output();
        }
    }
}

/// kill -9 after the update committed but before its cast could be published: the cast waits in
/// the outbox and goes out when the bridge runs again — exactly once from the broker's view
/// here, since it was never published before the kill.
#[tokio::test]
async fn a_cast_committed_before_kill_9_is_published_after_restart() {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions};
    use lapin::types::FieldTable;

    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let vars = env(dir.path(), &prefix);
    let (naily_exchange, naily_queue) = (format!("{prefix}.naily"), format!("{prefix}.naily"));
    let request = |method: &str, args: &str| {
        let out = Command::new(BIN)
            .args(["request", method, args, "--timeout", "10"])
            .envs(vars.clone())
            .output()
            .expect("run request");
        assert!(
            out.status.success(),
            "{method} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON answer")["result"]
            .clone()
    };
    let start = || {
        Command::new(BIN)
            .arg("serve")
            .envs(vars.clone())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve")
    };
    let wait_ready = |serve: &mut std::process::Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(BIN)
                .args(["request", "list_releases", "{}", "--timeout", "5"])
                .envs(vars.clone())
                .output()
                .expect("run request");
            if out.status.success() {
                return;
            }
            if let Ok(Some(status)) = serve.try_wait() {
                panic!("serve exited early with {status}; is RabbitMQ running? start it with: {START_RABBITMQ}");
            }
            assert!(Instant::now() < deadline, "the bridge never answered");
        }
    };

    let mut serve = start();
    wait_ready(&mut serve);
    let r1 = request(
        "create_release",
        r#"{"name": "Icehouse", "version": "2014.1-5.0", "operating_system": "Ubuntu"}"#,
    );
    let r2 = request(
        "create_release",
        r#"{"name": "Icehouse", "version": "2014.1.1-5.0.2", "operating_system": "Ubuntu", "can_update_from_versions": ["2014.1-5.0"]}"#,
    );
    let cluster = request(
        "create_cluster",
        &format!(
            r#"{{"name": "env", "release_id": {}, "mode": "multinode", "status": "operational"}}"#,
            r1["id"]
        ),
    );
    request(
        "add_nodes",
        &format!(
            r#"{{"cluster_id": {}, "nodes": [{{"name": "node-1", "fqdn": "n1", "roles": ["controller"]}}]}}"#,
            cluster["id"]
        ),
    );

    // Astute's queue unbound: the committed cast cannot be published yet.
    let conn =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
            .await
            .expect("broker");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_unbind(
            naily_queue.as_str().into(),
            naily_exchange.as_str().into(),
            "naily".into(),
            FieldTable::default(),
        )
        .await
        .expect("unbind");
    let task = request(
        "update_cluster",
        &format!(
            r#"{{"cluster_id": {}, "release_id": {}}}"#,
            cluster["id"], r2["id"]
        ),
    );
    let uuid = task["uuid"].as_str().expect("uuid").to_string();

    let killed = Command::new("kill")
        .args(["-KILL", &serve.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    serve.wait().expect("reap");

    channel
        .queue_bind(
            naily_queue.as_str().into(),
            naily_exchange.as_str().into(),
            "naily".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut casts = channel
        .basic_consume(
            naily_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume naily");
    let mut serve = start();
    let delivery = tokio::time::timeout(Duration::from_secs(30), casts.next())
        .await
        .expect("the cast arrives after the restart")
        .expect("consumer open")
        .expect("delivery");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    let cast: serde_json::Value = serde_json::from_slice(&delivery.data).expect("JSON cast");
    assert_eq!(cast["method"], "deploy");
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some(uuid.as_str())
    );

    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    assert_eq!(serve.wait().expect("wait").code(), Some(0));
    for (key, name) in &vars {
        if key.ends_with("_QUEUE") {
            let _ = channel
                .queue_delete(name.as_str().into(), Default::default())
                .await;
        }
    }
}
