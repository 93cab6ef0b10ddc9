//! The bridge's own connections cut while messages flow. A TCP proxy sits between the bridge
//! and the broker (and PostgreSQL); the tests drop every connection through it and refuse new
//! ones for a while, as a lost broker or database would, without touching the shared servers.
//! The bridge runs as `serve` runs it, starting again after each loss. What must hold: effects
//! exactly once (one task per accepted request, one `done` notification per task), every
//! request answered (answers and casts are at-least-once: any repeat is an identical copy),
//! every task ended, and nothing left in the outbox.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::proxy::{through, upstream_of, Proxy};
use common::{amqp_url, postgres_admin_url, Backend, Bridge};
use serde_json::{json, Value};

/// Environments updated at once.
const ENVIRONMENTS: usize = 8;
/// How long each outage lasts: long enough that the bridge's first attempts to come back fail.
const OUTAGE: Duration = Duration::from_millis(1500);
/// Restarts back off (1 s, 2 s, 4 s …), so the end of a run with two outages takes a while.
const RECOVERY: Duration = Duration::from_secs(60);

struct Cuts {
    broker: Proxy,
    database: Option<Proxy>,
}

impl Cuts {
    /// Drops every connection of the bridge and refuses new ones for `OUTAGE`.
    async fn outage(&self) {
        self.broker.refuse();
        self.broker.cut();
        if let Some(db) = &self.database {
            db.refuse();
            db.cut();
        }
        tokio::time::sleep(OUTAGE).await;
        self.broker.accept();
        if let Some(db) = &self.database {
            db.accept();
        }
    }
}

async fn connections_cut_while_messages_flow(backend: Backend) {
    let cuts = Cuts {
        broker: Proxy::start(&upstream_of(&amqp_url(), 5672)).await,
        database: match backend {
            Backend::Postgres => {
                Some(Proxy::start(&upstream_of(&postgres_admin_url(), 5432)).await)
            }
            Backend::Sqlite => None,
        },
    };
    let mut bridge = Bridge::start_supervised(backend, |s| {
        s.amqp.url = through(s.amqp.url.expose(), &cuts.broker).into();
        if let Some(db) = &cuts.database {
            s.database.url = through(s.database.url.expose(), db).into();
        }
    })
    .await;

    // Two releases and the environments, before anything is cut.
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/patching-demo.json")).expect("fixture");
    let mut release_ids = Vec::new();
    for release in fixture["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .take(2)
    {
        release_ids.push(bridge.ok("create_release", release.clone()).await["id"].clone());
    }
    let (current, target) = (release_ids[0].clone(), release_ids[1].clone());
    let mut clusters = Vec::new();
    for i in 0..ENVIRONMENTS {
        let cluster = bridge
            .ok(
                "create_cluster",
                json!({"name": format!("env-{i}"), "release_id": current, "mode": "multinode", "status": "operational"}),
            )
            .await["id"]
            .clone();
        let nodes: Vec<Value> = (0..3)
            .map(|n| json!({"name": format!("env-{i}-node-{n}"), "fqdn": format!("env-{i}-node-{n}.domain.tld"), "roles": if n == 0 { json!(["controller"]) } else { json!(["compute"]) }}))
            .collect();
        bridge
            .ok("add_nodes", json!({"cluster_id": cluster, "nodes": nodes}))
            .await;
        clusters.push(cluster);
    }

    // Every update requested at once; the connections drop once some have started.
    let mut asked = HashMap::new();
    for cluster in &clusters {
        let message_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = bridge
            .send_request(
                "update_cluster",
                json!({"cluster_id": cluster, "release_id": target}),
                &message_id,
            )
            .await;
        asked.insert(correlation_id, cluster.clone());
    }
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM tasks",
            "some updates started",
            |n| n >= 2,
        )
        .await;
    cuts.outage().await;

    // Every request answered, and accepted: each environment was free to update. A repeat
    // (an answer published again after a cut) must be the same answer.
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut repeated_answers = 0;
    while answers.len() < asked.len() {
        let (answer, correlation_id) = tokio::time::timeout(RECOVERY, bridge.next_answer())
            .await
            .expect("every request is answered after the outage");
        let correlation_id = correlation_id.expect("answers carry the correlation id");
        assert!(
            asked.contains_key(&correlation_id),
            "an answer to one of our requests"
        );
        match answers.get(&correlation_id) {
            Some(first) => {
                assert_eq!(first, &answer, "a repeated answer is the same answer");
                repeated_answers += 1;
            }
            None => {
                assert_eq!(answer["ok"], true, "update accepted: {answer}");
                answers.insert(correlation_id, answer);
            }
        }
    }
    let tasks: HashSet<String> = answers
        .values()
        .map(|a| a["result"]["uuid"].as_str().expect("task uuid").to_string())
        .collect();
    assert_eq!(tasks.len(), ENVIRONMENTS, "one task per accepted request");
    assert_eq!(
        bridge.count("tasks").await,
        ENVIRONMENTS as i64,
        "no task was started twice"
    );

    // One cast per task reaches Astute (a repeat is an identical copy).
    let mut casts: HashMap<String, Value> = HashMap::new();
    while casts.len() < tasks.len() {
        let cast = tokio::time::timeout(RECOVERY, bridge.next_cast())
            .await
            .expect("every task's cast is published");
        let uuid = cast["args"]["task_uuid"]
            .as_str()
            .expect("task uuid")
            .to_string();
        assert!(tasks.contains(&uuid), "a cast for one of the tasks");
        if let Some(first) = casts.get(&uuid) {
            assert_eq!(first, &cast, "a repeated cast is the same cast");
        }
        casts.insert(uuid, cast);
    }

    // Astute answers every task: progress, then ready; the connections drop again midway.
    for (uuid, cast) in &casts {
        let uids: Vec<Value> = cast["args"]["deployment_info"]
            .as_array()
            .expect("deployment_info")
            .iter()
            .map(|entry| entry["uid"].clone())
            .collect();
        let nodes = |status: &str, progress: u8| -> Vec<Value> {
            uids.iter()
                .map(|uid| json!({"uid": uid, "status": status, "progress": progress}))
                .collect()
        };
        bridge
            .reply(json!({"task_uuid": uuid, "status": "running", "progress": 50, "nodes": nodes("deploying", 50)}))
            .await;
        bridge
            .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100, "nodes": nodes("ready", 100)}))
            .await;
    }
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM tasks WHERE status <> 'running'",
            "some tasks ended",
            |n| n >= 2,
        )
        .await;
    cuts.outage().await;

    // Every task ends once, with one `done` notification, and nothing waits in the outbox.
    bridge
        .rows_until_within(
            "SELECT COUNT(*) AS n FROM tasks WHERE status = 'ready'",
            "every task ended ready",
            |n| n == ENVIRONMENTS as i64,
            RECOVERY,
        )
        .await;
    let moved = bridge
        .rows_until_within(
            &format!(
                "SELECT COUNT(*) AS n FROM clusters WHERE status = 'operational' AND release_id = {target}"
            ),
            "every environment operational on the target release",
            |n| n == ENVIRONMENTS as i64,
            RECOVERY,
        )
        .await;
    assert_eq!(moved, ENVIRONMENTS as i64);
    let done = bridge
        .rows_until_within(
            "SELECT COUNT(*) AS n FROM notifications WHERE topic = 'done'",
            "one done notification per task",
            |n| n >= ENVIRONMENTS as i64,
            RECOVERY,
        )
        .await;
    assert_eq!(done, ENVIRONMENTS as i64, "one done notification per task");
    let doubled = bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM (SELECT task_id FROM notifications WHERE topic = 'done' \
             GROUP BY task_id HAVING COUNT(*) > 1) AS twice",
            "no task with two done notifications",
            |n| n == 0,
        )
        .await;
    assert_eq!(doubled, 0);
    bridge
        .rows_until_within(
            "SELECT COUNT(*) AS n FROM outbox",
            "an empty outbox",
            |n| n == 0,
            RECOVERY,
        )
        .await;
    assert!(
        cuts.broker.connections() > 1,
        "the bridge reconnected to the broker"
    );
    if let Some(db) = &cuts.database {
        assert!(
            db.connections() > 1,
            "the bridge reconnected to the database"
        );
    }
    // Reported, not judged: repeats are allowed (at-least-once), effects are not.
    let mut repeated_casts = 0;
    while let Some(cast) = bridge.next_cast_within(Duration::from_millis(300)).await {
        let uuid = cast["args"]["task_uuid"].as_str().unwrap_or_default();
        assert_eq!(
            casts.get(uuid),
            Some(&cast),
            "a late cast repeats a task's cast"
        );
        repeated_casts += 1;
    }
    eprintln!(
        "{backend:?}: {repeated_answers} repeated answers, {repeated_casts} repeated casts, {} broker connections",
        cuts.broker.connections()
    );
    bridge.stop().await;
}

on_both_backends!(connections_cut_while_messages_flow);

/// A broker of two nodes (two proxies to the one local broker): when the node the bridge is on
/// is lost and stays down, the bridge moves to the other node and goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_moves_to_the_next_broker_node_when_its_node_is_lost() {
    let upstream = upstream_of(&amqp_url(), 5672);
    let (first, second) = (Proxy::start(&upstream).await, Proxy::start(&upstream).await);
    let mut bridge = Bridge::start_supervised(Backend::Sqlite, |s| {
        let one = through(s.amqp.url.expose(), &first);
        let other = through(s.amqp.url.expose(), &second);
        let other_authority = other
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .expect("authority")
            .to_string();
        // oslo.messaging's form: amqp://u:p@h1:p1,u:p@h2:p2/vhost
        let (head, tail) = one.split_at(one.find("/%2f").expect("vhost"));
        s.amqp.url = format!("{head},{other_authority}{tail}").into();
    })
    .await;
    let release =
        json!({"name": "Icehouse", "version": "2014.1-5.0", "operating_system": "Ubuntu"});
    bridge.ok("create_release", release).await;
    assert!(
        first.connections() >= 1,
        "the bridge started on the first node"
    );
    let on_second_before = second.connections();

    // The first node is lost for good.
    first.refuse();
    first.cut();
    // Answers are at-least-once: the first request's answer may come again (its confirm was
    // lost in the cut), so the answer is picked by its correlation id.
    let asked = bridge
        .send_request(
            "list_releases",
            json!({}),
            &uuid::Uuid::new_v4().to_string(),
        )
        .await;
    let listed = loop {
        let (answer, correlation_id) = tokio::time::timeout(RECOVERY, bridge.next_answer())
            .await
            .expect("answered through the second node");
        if correlation_id.as_deref() == Some(asked.as_str()) {
            break answer;
        }
    };
    assert_eq!(
        listed["result"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert!(
        second.connections() > on_second_before,
        "the bridge moved to the second node"
    );
    bridge.stop().await;
}
