//! The patching flow end to end: requests in, the cast Astute receives, Astute's replies, the
//! database and the operators' notifications — on SQLite and on PostgreSQL.

mod common;

use common::{dead_letter_reason, load_fixture, release_id, Backend, Bridge};
use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};

const UBUNTU_50: (&str, &str) = ("Icehouse on Ubuntu 12.04", "2014.1-5.0");
const UBUNTU_502: (&str, &str) = ("Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
const UBUNTU_51: (&str, &str) = ("Icehouse on Ubuntu 12.04.4", "2014.1.1-5.1");
const CENTOS_50: (&str, &str) = ("Icehouse on CentOS 6.5", "2014.1-5.0");
const CENTOS_502: (&str, &str) = ("Icehouse on CentOS 6.5", "2014.1.1-5.0.2");

fn id(releases: &[(String, String, i64)], r: (&str, &str)) -> i64 {
    release_id(releases, r.0, r.1)
}

fn entries(cast: &Value) -> Vec<Value> {
    cast["args"]["deployment_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// (name, role, priority, fail_if_error) of every entry, in the cast's order.
fn table(cast: &Value) -> Vec<(String, String, i64, bool)> {
    entries(cast)
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["role"].as_str().unwrap_or_default().to_string(),
                e["priority"].as_i64().unwrap_or_default(),
                e["fail_if_error"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

fn row(name: &str, role: &str, priority: i64, critical: bool) -> (String, String, i64, bool) {
    (name.to_string(), role.to_string(), priority, critical)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Starts `update_cluster` and takes the cast it sends; returns (task, task uuid, cast).
async fn start_update(bridge: &mut Bridge, cluster: i64, release: i64) -> (Value, String, Value) {
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": release}),
        )
        .await;
    let uuid = text(&task["uuid"]).to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(
        cast["args"]["task_uuid"],
        uuid.as_str(),
        "the next cast on naily is this task's"
    );
    // The relay marks the cast delivered (the task's updated_at) when the broker confirms it,
    // which may be after the test got it: wait, so later snapshots of the task are stable.
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox",
            "the cast's confirm recorded",
            |n| n == 0,
        )
        .await;
    (task, uuid, cast)
}

/// The cluster's nodes as (id, name), in id order.
async fn nodes_of(bridge: &mut Bridge, cluster: i64) -> Vec<(i64, String)> {
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    seen["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["id"].as_i64().expect("node id"),
                text(&n["name"]).to_string(),
            )
        })
        .collect()
}

fn node(cluster: &Value, id: i64) -> &Value {
    cluster["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"].as_i64() == Some(id)))
        .unwrap_or_else(|| panic!("no node {id} in {cluster}"))
}

/// Registers an already deployed environment with two nodes; returns its id.
async fn register(bridge: &mut Bridge, name: &str, release: i64, status: Option<&str>) -> i64 {
    let mut args = json!({"name": name, "release_id": release, "mode": "multinode",
                          "attributes": {"master_ip": "10.20.0.2"}});
    if let Some(status) = status {
        args["status"] = json!(status);
    }
    let cluster = bridge.ok("create_cluster", args).await;
    let id = cluster["id"].as_i64().expect("cluster id");
    bridge
        .ok(
            "add_nodes",
            json!({"cluster_id": id, "nodes": [
                {"name": format!("{name}-ctrl"), "fqdn": format!("{name}-ctrl.domain.tld"), "roles": ["controller"]},
                {"name": format!("{name}-comp"), "fqdn": format!("{name}-comp.domain.tld"), "roles": ["compute"]}]}),
        )
        .await;
    id
}

async fn upgrade_success(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));

    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    assert_eq!(
        (
            task["name"].as_str(),
            task["status"].as_str(),
            task["progress"].as_i64()
        ),
        (Some("upgrade"), Some("running"), Some(0))
    );
    assert_eq!(
        (
            task["from_release_id"].as_i64(),
            task["to_release_id"].as_i64()
        ),
        (Some(from), Some(to))
    );
    let uuid = task["uuid"].as_str().expect("uuid").to_string();

    // What Astute receives, field by field; the task keeps it byte for byte, and no answer
    // carries it.
    let sent = bridge.next_cast_text().await;
    assert_eq!(
        bridge.stored_cast(&uuid).await.as_deref(),
        Some(sent.as_str()),
        "the task keeps the exact cast"
    );
    assert!(task.get("cache").is_none(), "{task}");
    let cast: Value = serde_json::from_str(&sent).expect("a JSON cast");
    assert_eq!(cast["api_version"], "1");
    assert_eq!(cast["method"], "deploy");
    assert_eq!(cast["respond_to"], "deploy_resp");
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    let info = entries(&cast);
    let roles: Vec<(&str, &str, i64, bool)> = info
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
                e["priority"].as_i64().unwrap(),
                e["fail_if_error"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("node-1", "controller", 200, true),
            ("node-2", "cinder", 300, false),
            ("node-2", "compute", 400, false),
            ("node-3", "compute", 500, false),
            ("node-4", "primary-mongo", 100, true),
        ]
    );
    for e in &info {
        assert_eq!(e["status"], "provisioned");
        assert_eq!(e["openstack_version"], "2014.1.1-5.0.2");
        assert_eq!(e["openstack_version_prev"], "2014.1-5.0");
        assert_eq!(e["deployment_id"].as_i64(), Some(cluster));
        assert_eq!(e["deployment_mode"], "multinode");
        assert_eq!(e["fuel_version"], "5.1");
        assert_eq!(e["cobbler"]["profile"], "ubuntu_1204_x86_64");
        assert_eq!(
            e["master_ip"], "10.20.0.2",
            "cluster attributes are merged in"
        );
        assert_eq!(
            e["repo_metadata"]["nailgun"],
            "http://10.20.0.2:8080/2014.1.1-5.0.2/ubuntu/x86_64 precise main"
        );
        assert_eq!(
            e["puppet_modules_source"],
            "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/"
        );
        assert_eq!(e["nodes"].as_array().map(Vec::len), Some(5));
        assert!(e["uid"].is_string());
    }

    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["status"], "upgrade");
    assert_eq!(seen["pending_release_id"].as_i64(), Some(to));
    assert!(seen["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "deploying" && n["progress"] == 0));

    let node_ids: Vec<i64> = seen["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    bridge.reply(json!({"task_uuid": uuid, "status": "running", "progress": 30,
                        "nodes": [{"uid": node_ids[0].to_string(), "status": "ready", "progress": 100}]})).await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;

    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(
        done["release_id"].as_i64(),
        Some(to),
        "the cluster now runs the target release"
    );
    assert_eq!(done["pending_release_id"], Value::Null);
    assert_eq!(done["latest_task"]["status"], "ready");
    assert_eq!(done["latest_task"]["progress"], 100);
    assert!(done["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "ready" && n["progress"] == 100));

    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.info");
    assert_eq!(note["event_type"], "notification.done");
    assert_eq!(note["priority"], "INFO");
    assert_eq!(
        note["payload"]["message"],
        "Upgrade of environment 'env-multinode' is done."
    );
    assert_eq!(note["payload"]["cluster_id"].as_i64(), Some(cluster));
    assert!(note["publisher_id"]
        .as_str()
        .unwrap()
        .starts_with("astute-bridge."));
    bridge.stop().await;
}

async fn downgrade_success(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (_, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_502), id(&releases, UBUNTU_50));
    // An environment already patched to 5.0.2, going back to 5.0.
    let cluster = register(&mut bridge, "env-patched", from, Some("operational")).await;

    let (task, _, cast) = start_update(&mut bridge, cluster, to).await;
    assert_eq!(task["name"], "downgrade");
    assert_eq!(task["status"], "running");
    assert_eq!(
        (
            task["from_release_id"].as_i64(),
            task["to_release_id"].as_i64()
        ),
        (Some(from), Some(to))
    );
    assert_eq!(
        table(&cast),
        vec![
            row("env-patched-ctrl", "controller", 100, true),
            row("env-patched-comp", "compute", 200, false),
        ]
    );
    for e in entries(&cast) {
        assert_eq!(e["openstack_version"], "2014.1-5.0");
        assert_eq!(e["openstack_version_prev"], "2014.1.1-5.0.2");
        assert_eq!(
            e["repo_metadata"]["nailgun"],
            "http://10.20.0.2:8080/2014.1-5.0/ubuntu/x86_64 precise main",
            "the release being deployed gives the repositories"
        );
    }
    let running = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(running["status"], "downgrade");
    assert_eq!(running["pending_release_id"].as_i64(), Some(to));

    bridge
        .reply(json!({"task_uuid": task["uuid"], "status": "ready", "progress": 100}))
        .await;
    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(done["release_id"].as_i64(), Some(to));
    assert_eq!(done["pending_release_id"], Value::Null);
    assert_eq!(done["latest_task"]["status"], "ready");
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.info");
    assert_eq!(note["payload"]["topic"], "done");
    assert_eq!(
        note["payload"]["message"],
        "Downgrade of environment 'env-patched' is done."
    );
    bridge.stop().await;
}

async fn same_release_update(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let current = id(&releases, UBUNTU_50);

    let (task, uuid, cast) = start_update(&mut bridge, cluster, current).await;
    assert_eq!(task["name"], "update", "the same release is redeployed");
    assert_eq!(
        (
            task["from_release_id"].as_i64(),
            task["to_release_id"].as_i64()
        ),
        (Some(current), Some(current))
    );
    for e in entries(&cast) {
        assert_eq!(e["openstack_version"], "2014.1-5.0");
        assert_eq!(e["openstack_version_prev"], "2014.1-5.0");
    }
    let running = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(running["status"], "update");
    assert_eq!(running["latest_task"]["status"], "running");

    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready"}))
        .await;
    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(done["release_id"].as_i64(), Some(current));
    assert_eq!(done["pending_release_id"], Value::Null);
    assert_eq!(done["latest_task"]["status"], "ready");
    assert_eq!(done["latest_task"]["progress"], 100);
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"],
        "Update of environment 'env-multinode' is done."
    );
    bridge.stop().await;
}

async fn ha_cast_has_primary_controller_and_ha_priorities(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-ha").await;

    let (task, _, cast) = start_update(&mut bridge, cluster, id(&releases, CENTOS_502)).await;
    assert_eq!(task["name"], "upgrade");
    assert_eq!(
        task["from_release_id"].as_i64(),
        Some(id(&releases, CENTOS_50))
    );
    // Entries by node id, then role; priorities in the HA patching order.
    assert_eq!(
        table(&cast),
        vec![
            row("node-11", "primary-controller", 300, true),
            row("node-12", "controller", 400, false),
            row("node-13", "controller", 500, false),
            row("node-14", "ceph-osd", 600, true),
            row("node-14", "compute", 700, false),
            row("node-15", "ceph-osd", 800, true),
            row("node-15", "compute", 900, false),
            row("node-16", "primary-mongo", 200, true),
            row("node-17", "zabbix-server", 100, false),
        ]
    );
    let info = entries(&cast);
    let everyone: Vec<Value> = info
        .iter()
        .map(|e| json!({"uid": e["uid"], "name": e["name"], "fqdn": e["fqdn"], "role": e["role"]}))
        .collect();
    for e in &info {
        assert_eq!(e["cobbler"]["profile"], "centos-x86_64");
        assert_eq!(e["deployment_mode"], "ha_compact");
        assert_eq!(e["openstack_version"], "2014.1.1-5.0.2");
        assert_eq!(e["openstack_version_prev"], "2014.1-5.0");
        assert_eq!(e["debug"], true, "cluster attributes are merged in");
        assert_eq!(
            e["repo_metadata"]["nailgun"],
            "http://10.20.0.2:8080/2014.1.1-5.0.2/centos/x86_64"
        );
        assert_eq!(
            e["nodes"],
            Value::Array(everyone.clone()),
            "every entry lists the whole cluster, primary roles included"
        );
    }
    bridge.stop().await;
}

async fn node_failure_then_task_error_then_rollback_success(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));
    let (task, uuid, _) = start_update(&mut bridge, cluster, to).await;
    let task_id = task["id"].as_i64().expect("task id");
    let nodes = nodes_of(&mut bridge, cluster).await;
    let (failed, failed_name) = nodes[0].clone();

    // Astute reports one node broken.
    bridge
        .reply(
            json!({"task_uuid": uuid, "nodes": [{"uid": failed.to_string(), "status": "error",
                        "error_type": "deploy", "error_msg": "Puppet failed"}]}),
        )
        .await;
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.error");
    assert_eq!(note["priority"], "ERROR");
    assert_eq!(note["event_type"], "notification.error");
    assert_eq!(
        note["payload"]["message"],
        format!("Failed to deploy node '{failed_name}': Puppet failed")
    );
    assert_eq!(note["payload"]["node_id"].as_i64(), Some(failed));
    assert_eq!(note["payload"]["cluster_id"].as_i64(), Some(cluster));
    assert_eq!(note["payload"]["task_id"].as_i64(), Some(task_id));

    // Then the whole task fails, with no text of its own.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error"}))
        .await;
    let broken = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let expected = format!("Upgrade has failed. Check these nodes:\n'{failed_name}'");
    assert_eq!(broken["latest_task"]["status"], "error");
    assert_eq!(broken["latest_task"]["message"], expected.as_str());
    assert_eq!(
        broken["release_id"].as_i64(),
        Some(from),
        "a failure never switches the release"
    );
    assert_eq!(broken["pending_release_id"].as_i64(), Some(to));
    for n in broken["nodes"].as_array().unwrap() {
        assert_eq!(n["status"], "error", "{n}");
        assert_eq!(n["error_type"], "deploy", "{n}");
    }
    assert_eq!(node(&broken, failed)["error_msg"], "Puppet failed");
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.error");
    assert_eq!(note["payload"]["message"], expected.as_str());
    assert_eq!(note["payload"]["node_id"], Value::Null);

    // Rollback: the current release again, leaving the failed target.
    let rollback = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(rollback["name"], "rollback");
    assert_eq!(rollback["status"], "running");
    let rollback_uuid = text(&rollback["uuid"]).to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], rollback_uuid.as_str());
    let stored = bridge.stored_cast(&rollback_uuid).await.expect("a cache");
    assert_eq!(
        serde_json::from_str::<Value>(&stored).expect("JSON"),
        cast,
        "the task keeps the cast"
    );
    assert_eq!(entries(&cast).len(), 5);
    for e in entries(&cast) {
        assert_eq!(e["openstack_version"], "2014.1-5.0");
        assert_eq!(e["openstack_version_prev"], "2014.1.1-5.0.2");
        assert_eq!(
            e["repo_metadata"]["nailgun"],
            "http://10.20.0.2:8080/2014.1-5.0/ubuntu/x86_64 precise main"
        );
    }
    let rolling = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(rolling["status"], "rollback");
    assert!(rolling["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "deploying" && n["error_type"].is_null()));

    bridge
        .reply(json!({"task_uuid": rollback_uuid, "status": "ready", "progress": 100}))
        .await;
    let back = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(back["release_id"].as_i64(), Some(from));
    assert_eq!(back["pending_release_id"], Value::Null);
    assert_eq!(back["latest_task"]["name"], "rollback");
    assert_eq!(back["latest_task"]["status"], "ready");
    assert!(back["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "ready"));
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"],
        "Rollback of environment 'env-multinode' is done."
    );
    bridge.stop().await;
}

async fn rollback_failure_then_retry(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));
    let (_, uuid, _) = start_update(&mut bridge, cluster, to).await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Puppet failed"}))
        .await;
    let failed = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    assert_eq!(
        failed["latest_task"]["message"],
        "Upgrade has failed. Puppet failed"
    );

    let first = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    let first_uuid = text(&first["uuid"]).to_string();
    assert_eq!(
        bridge.next_cast().await["args"]["task_uuid"],
        first_uuid.as_str()
    );
    bridge
        .reply(json!({"task_uuid": first_uuid, "status": "error",
                      "error": "Timeout of deployment is exceeded."}))
        .await;
    let stuck = bridge
        .cluster_until(cluster, "rollback_error", |c| {
            c["status"] == "rollback_error"
        })
        .await;
    assert_eq!(stuck["latest_task"]["status"], "error");
    assert_eq!(
        stuck["latest_task"]["message"],
        "Rollback has failed. Timeout of deployment is exceeded."
    );
    assert_eq!(stuck["release_id"].as_i64(), Some(from));
    assert_eq!(stuck["pending_release_id"].as_i64(), Some(to));

    // A failed rollback may be rolled back again; it still leaves the failed target.
    let second = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(second["name"], "rollback");
    let second_uuid = text(&second["uuid"]).to_string();
    assert_ne!(second_uuid, first_uuid);
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], second_uuid.as_str());
    for e in entries(&cast) {
        assert_eq!(e["openstack_version"], "2014.1-5.0");
        assert_eq!(e["openstack_version_prev"], "2014.1.1-5.0.2");
    }
    bridge
        .reply(json!({"task_uuid": second_uuid, "status": "ready"}))
        .await;
    let back = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(back["release_id"].as_i64(), Some(from));
    assert_eq!(back["pending_release_id"], Value::Null);
    assert_eq!(back["latest_task"]["uuid"], second_uuid.as_str());
    assert_eq!(back["latest_task"]["status"], "ready");
    bridge.stop().await;
}

async fn a_rollback_leaves_what_the_failed_operation_tried_to_reach(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));
    let (failed, uuid, _) = start_update(&mut bridge, cluster, to).await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Puppet failed"}))
        .await;
    bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;

    // After the failure, the pending release is pointed elsewhere (a redeploy of the current one).
    let response = reqwest::Client::new()
        .put(format!("{}/api/clusters/{cluster}/", bridge.http))
        .json(&json!({"pending_release_id": from}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let repointed = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(repointed["pending_release_id"].as_i64(), Some(from));
    assert_eq!(repointed["status"], "upgrade_error");

    // The rollback still leaves what the upgrade tried to reach, as its task recorded.
    assert_eq!(failed["to_release_id"].as_i64(), Some(to));
    let rollback = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(rollback["from_release_id"].as_i64(), Some(to));
    assert_eq!(rollback["to_release_id"].as_i64(), Some(from));
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], rollback["uuid"]);
    assert!(!entries(&cast).is_empty());
    for e in entries(&cast) {
        assert_eq!(e["openstack_version"], "2014.1-5.0");
        assert_eq!(e["openstack_version_prev"], "2014.1.1-5.0.2", "{e}");
    }

    // It fails too; its own rollback still leaves the upgrade's target.
    bridge
        .reply(json!({"task_uuid": rollback["uuid"], "status": "error"}))
        .await;
    bridge
        .cluster_until(cluster, "rollback_error", |c| {
            c["status"] == "rollback_error"
        })
        .await;
    let again = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(again["from_release_id"].as_i64(), Some(to));
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], again["uuid"]);
    for e in entries(&cast) {
        assert_eq!(e["openstack_version_prev"], "2014.1.1-5.0.2", "{e}");
    }
    bridge.stop().await;
}

/// Asserts a refused request left the cluster and the task table as they were.
async fn assert_untouched(bridge: &mut Bridge, cluster: i64, status: &str, tasks: i64) {
    assert_eq!(bridge.count("tasks").await, tasks, "no task was created");
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["status"], status, "the cluster status is unchanged");
}

async fn every_refusal_has_its_code(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (current, patch) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));
    let update = |release: i64| json!({"cluster_id": cluster, "release_id": release});

    // Nothing to update, or nothing to update to.
    let (code, _) = bridge
        .refusal(
            "update_cluster",
            json!({"cluster_id": 999_999, "release_id": patch}),
        )
        .await;
    assert_eq!(code, "not_found");
    let (code, _) = bridge.refusal("update_cluster", update(999_999)).await;
    assert_eq!(code, "not_found");
    assert_untouched(&mut bridge, cluster, "operational", 0).await;

    // Each compatibility rule on its own. CentOS 5.0.2 lists 2014.1-5.0: only the OS differs.
    let (code, reason) = bridge
        .refusal("update_cluster", update(id(&releases, CENTOS_502)))
        .await;
    assert_eq!(code, "incompatible_release");
    assert!(reason.contains("operating system"), "{reason}");
    let (code, reason) = bridge
        .refusal("update_cluster", update(id(&releases, UBUNTU_51)))
        .await;
    assert_eq!(code, "incompatible_release");
    assert!(reason.contains("can_update_from_versions"), "{reason}");
    let reachable = |name: &str, extra: Value| {
        let mut release = json!({"name": name, "version": "2014.1.1-5.0.3", "operating_system": "Ubuntu",
                                 "can_update_from_versions": ["2014.1-5.0"]});
        for (k, v) in extra.as_object().unwrap() {
            release[k] = v.clone();
        }
        release
    };
    let downloading = bridge
        .ok(
            "create_release",
            reachable("Still downloading", json!({"state": "downloading"})),
        )
        .await;
    let (code, reason) = bridge
        .refusal(
            "update_cluster",
            update(downloading["id"].as_i64().unwrap()),
        )
        .await;
    assert_eq!(code, "incompatible_release");
    assert!(reason.contains("downloading"), "{reason}");
    let old_fuel = bridge
        .ok(
            "create_release",
            reachable(
                "For Fuel 5.0 only",
                json!({"compatible_fuel_versions": ["5.0"]}),
            ),
        )
        .await;
    let (code, reason) = bridge
        .refusal("update_cluster", update(old_fuel["id"].as_i64().unwrap()))
        .await;
    assert_eq!(code, "incompatible_release");
    assert!(
        reason.contains("Fuel") && reason.contains("5.1"),
        "{reason}"
    );
    assert_untouched(&mut bridge, cluster, "operational", 0).await;

    // Never deployed: nothing to update.
    let fresh = register(&mut bridge, "env-new", current, None).await;
    let (code, _) = bridge
        .refusal(
            "update_cluster",
            json!({"cluster_id": fresh, "release_id": patch}),
        )
        .await;
    assert_eq!(code, "invalid_state");
    assert_untouched(&mut bridge, fresh, "new", 0).await;
    // Nothing failed: nothing to roll back.
    let (code, _) = bridge
        .refusal("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(code, "invalid_state");
    assert_untouched(&mut bridge, cluster, "operational", 0).await;

    // One operation at a time. The first cast ever sent is this upgrade's: no refusal cast.
    let (_, uuid, _) = start_update(&mut bridge, cluster, patch).await;
    let (code, _) = bridge.refusal("update_cluster", update(current)).await;
    assert_eq!(code, "conflict");
    assert_untouched(&mut bridge, cluster, "upgrade", 1).await;
    let running = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(running["latest_task"]["uuid"], uuid.as_str());
    assert_eq!(running["pending_release_id"].as_i64(), Some(patch));

    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready"}))
        .await;
    bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    let (code, _) = bridge
        .refusal("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(code, "invalid_state");
    assert_untouched(&mut bridge, cluster, "operational", 1).await;
    // The next cast after the conflict and the last refusal is the next accepted update's.
    start_update(&mut bridge, cluster, patch).await;
    assert_eq!(bridge.count("tasks").await, 2);
    bridge.stop().await;
}

async fn duplicated_and_out_of_order_replies(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (_, uuid, _) = start_update(&mut bridge, cluster, id(&releases, UBUNTU_502)).await;
    let nodes = nodes_of(&mut bridge, cluster).await;
    let ((broken, broken_name), (done, _)) = (nodes[0].clone(), nodes[1].clone());

    // A late progress report does not take the task back.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 60}))
        .await;
    bridge
        .cluster_until(cluster, "task progress 60", |c| {
            c["latest_task"]["progress"] == 60
        })
        .await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 30}))
        .await;
    // Replies of one task are applied in order: once this later one shows, the late one was seen.
    bridge
        .reply(json!({"task_uuid": uuid, "nodes": [{"uid": done, "status": "ready", "progress": 100}]}))
        .await;
    let seen = bridge
        .cluster_until(cluster, "a node ready", |c| {
            node(c, done)["status"] == "ready"
        })
        .await;
    assert_eq!(
        seen["latest_task"]["progress"], 60,
        "progress never goes down"
    );

    // A stale report does not lower a node that is already ready.
    bridge
        .reply(json!({"task_uuid": uuid, "nodes": [{"uid": done.to_string(), "status": "deploying", "progress": 50}]}))
        .await;
    let failure = json!({"task_uuid": uuid, "nodes": [{"uid": broken.to_string(), "status": "error",
                         "error_type": "deploy", "error_msg": "Puppet failed"}]});
    bridge.reply(failure.clone()).await;
    let seen = bridge
        .cluster_until(cluster, "a node in error", |c| {
            node(c, broken)["status"] == "error"
        })
        .await;
    assert_eq!(node(&seen, done)["status"], "ready");
    assert_eq!(node(&seen, done)["progress"], 100);
    assert_eq!(seen["latest_task"]["progress"], 60);
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"],
        format!("Failed to deploy node '{broken_name}': Puppet failed")
    );

    // The same failure again, then the end of the task: the next notification is the end.
    bridge.reply(failure).await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Deployment failed"}))
        .await;
    bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let (_, note) = bridge.next_notification().await;
    assert_eq!(
        note["payload"]["message"], "Upgrade has failed. Deployment failed",
        "a duplicated node failure gives no second notification"
    );
    assert_eq!(bridge.count("notifications").await, 2);
    bridge.stop().await;
}

async fn reply_for_an_ended_task_changes_nothing(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (_, uuid, _) = start_update(&mut bridge, cluster, id(&releases, UBUNTU_502)).await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    let ended = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    let (_, note) = bridge.next_notification().await;
    assert_eq!(note["payload"]["topic"], "done");
    let notifications = bridge.count("notifications").await;
    let node_id = ended["nodes"][0]["id"].as_i64().unwrap();

    // Astute, late: a failure for a task that has ended.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "error", "error": "Too late"}))
        .await;
    bridge
        .reply(
            json!({"task_uuid": uuid, "nodes": [{"uid": node_id, "status": "error",
                      "error_type": "deploy", "error_msg": "Too late"}]}),
        )
        .await;
    // A poison reply of the same task comes after them; it must be the first dead letter, so
    // the late replies were acked, not dead-lettered.
    let marker = json!({"method": "provision_resp", "args": {"task_uuid": uuid}}).to_string();
    bridge.reply_raw(marker.as_bytes()).await;
    let dead = bridge.next_dead_letter().await;
    assert_eq!(
        String::from_utf8_lossy(&dead.delivery.data),
        marker,
        "the late replies were not dead-lettered"
    );

    let after = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(after, ended, "nothing changed");
    assert_eq!(after["latest_task"]["status"], "ready");
    assert_eq!(bridge.count("notifications").await, notifications);
    bridge.stop().await;
}

async fn malformed_replies_go_to_the_dead_letter_queue(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (_, uuid, _) = start_update(&mut bridge, cluster, id(&releases, UBUNTU_502)).await;
    // The relay records the cast's delivery (the task's `updated_at`) in the transaction that
    // removes its outbox row, after the cast reached the queue: wait for it.
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox",
            "the cast's delivery recorded",
            |n| n == 0,
        )
        .await;
    let before = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;

    let unknown = uuid::Uuid::new_v4().to_string();
    let poison: Vec<(Vec<u8>, &str)> = vec![
        (b"{this is not JSON".to_vec(), "JSON"),
        (
            json!({"method": "deploy_resp", "args": {"status": "ready"}})
                .to_string()
                .into_bytes(),
            "task_uuid",
        ),
        (
            json!({"method": "deploy_resp", "args": {"task_uuid": unknown, "status": "ready"}})
                .to_string()
                .into_bytes(),
            "unknown task",
        ),
        (
            json!({"method": "provision_resp", "args": {"task_uuid": uuid, "status": "ready"}})
                .to_string()
                .into_bytes(),
            "unknown method",
        ),
    ];
    for (body, reason) in poison {
        bridge.reply_raw(&body).await;
        let dead = bridge.next_dead_letter().await;
        assert_eq!(dead.delivery.data, body, "the body is kept as it came");
        let header = dead_letter_reason(&dead).expect("an x-bridge-reason header");
        assert!(
            header.contains(reason),
            "reason {header:?} should name {reason:?}"
        );
    }
    let after = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(bridge.count("notifications").await, 0);

    // The consumer goes on with good replies.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 10}))
        .await;
    bridge
        .cluster_until(cluster, "progress 10", |c| {
            c["latest_task"]["progress"] == 10
        })
        .await;
    bridge.stop().await;
}

async fn a_duplicate_request_is_answered_with_the_first_result(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let args = json!({"cluster_id": cluster, "release_id": id(&releases, UBUNTU_502)});

    let first = bridge
        .request_with_id("update_cluster", args.clone(), "update-once")
        .await;
    let again = bridge
        .request_with_id("update_cluster", args, "update-once")
        .await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(again, first, "the same answer, the same task uuid");
    assert_eq!(bridge.count("tasks").await, 1);
    let uuid = text(&first["result"]["uuid"]).to_string();
    assert_eq!(bridge.next_cast().await["args"]["task_uuid"], uuid.as_str());

    // One cast only: after this task ends, the next cast is the next task's.
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready"}))
        .await;
    bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    start_update(&mut bridge, cluster, id(&releases, UBUNTU_502)).await;

    let releases_before = bridge.count("releases").await;
    let release = json!({"name": "Icehouse on Ubuntu 12.04.4", "version": "2014.1.1-5.0.3",
                         "operating_system": "Ubuntu", "can_update_from_versions": ["2014.1.1-5.0.2"]});
    let first = bridge
        .request_with_id("create_release", release.clone(), "release-once")
        .await;
    let again = bridge
        .request_with_id("create_release", release, "release-once")
        .await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(again, first);
    assert_eq!(bridge.count("releases").await, releases_before + 1);
    bridge.stop().await;
}

async fn bad_requests_are_refused_and_change_nothing(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let patch = id(&releases, UBUNTU_502);
    let tables = ["releases", "clusters", "nodes", "tasks", "notifications"];
    let mut before = Vec::new();
    for t in tables {
        before.push(bridge.count(t).await);
    }
    let code = |answer: Value| {
        assert_eq!(answer["ok"], false, "{answer}");
        text(&answer["error"]["code"]).to_string()
    };

    let answer = bridge
        .request_raw(
            b"{\"method\": \"update_cluster\", ",
            "update_cluster",
            "not-json",
        )
        .await;
    assert_eq!(code(answer), "invalid_request");
    let no_args = json!({"method": "update_cluster"}).to_string();
    let answer = bridge
        .request_raw(no_args.as_bytes(), "update_cluster", "no-args")
        .await;
    assert_eq!(code(answer), "invalid_request");
    for args in [
        json!({"cluster_id": cluster}),
        json!({"cluster_id": cluster.to_string(), "release_id": patch}),
        json!({"cluster_id": cluster, "release_id": patch, "force": true}),
    ] {
        let (code, _) = bridge.refusal("update_cluster", args).await;
        assert_eq!(code, "invalid_request");
    }
    let (code, _) = bridge
        .refusal("explode_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(code, "unknown_method");
    let (code, reason) = bridge
        .refusal(
            "create_release",
            json!({"name": "x".repeat(101), "version": "2014.1.1-5.0.3", "operating_system": "Ubuntu"}),
        )
        .await;
    assert_eq!(code, "invalid_request");
    assert!(reason.contains("name"), "{reason}");
    let (code, _) = bridge
        .refusal("add_nodes", json!({"cluster_id": cluster, "nodes": []}))
        .await;
    assert_eq!(code, "invalid_request");

    // A hostile size is refused unread.
    let huge = json!({"method": "create_release", "args": {"name": "x", "version": "y",
        "operating_system": "Ubuntu", "description": "z".repeat(1_100_000)}})
    .to_string();
    let answer = bridge
        .request_raw(huge.as_bytes(), "create_release", "huge")
        .await;
    assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");

    for (t, n) in tables.iter().zip(&before) {
        assert_eq!(bridge.count(t).await, *n, "{t} unchanged");
    }
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["status"], "operational");
    // No cast either: the first one is the next accepted update's.
    start_update(&mut bridge, cluster, patch).await;
    // The limit is the contract's: 100 characters are fine.
    bridge
        .ok(
            "create_release",
            json!({"name": "x".repeat(100), "version": "2014.1.1-5.0.3", "operating_system": "Ubuntu"}),
        )
        .await;
    bridge.stop().await;
}

async fn check_update_is_a_dry_run(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let patch = id(&releases, UBUNTU_502);

    let verdict = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": patch}),
        )
        .await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    assert_eq!(verdict["operation"], "upgrade");
    let refused = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": id(&releases, UBUNTU_51)}),
        )
        .await;
    assert_eq!(refused["allowed"], false, "{refused}");
    assert_eq!(refused["code"], "incompatible_release");
    assert!(!text(&refused["reason"]).is_empty(), "{refused}");
    assert_eq!(bridge.count("tasks").await, 0, "a dry run creates no task");
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(seen["status"], "operational");
    assert_eq!(seen["pending_release_id"], Value::Null);

    // The real update sends what the dry run showed, but for the task uuid; and it is the
    // first cast: the dry runs sent none.
    let (_, _, cast) = start_update(&mut bridge, cluster, patch).await;
    let mut shown = verdict["message"].clone();
    let mut sent = cast.clone();
    shown["args"]["task_uuid"] = Value::Null;
    sent["args"]["task_uuid"] = Value::Null;
    assert_eq!(shown, sent);

    let busy = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": patch}),
        )
        .await;
    assert_eq!(busy["allowed"], false);
    assert_eq!(busy["code"], "conflict");
    assert_eq!(bridge.count("tasks").await, 1);
    bridge.stop().await;
}

/// Adds a notification; returns its id.
async fn add_notification(bridge: &mut Bridge, args: Value) -> i64 {
    let added = bridge.ok("add_notification", args).await;
    added["id"].as_i64().expect("notification id")
}

async fn notifications_can_be_added_and_listed(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, _) = load_fixture(&mut bridge, "env-multinode").await;

    let warning = add_notification(
        &mut bridge,
        json!({"topic": "warning", "message": "Disk almost full on node-1", "cluster_id": cluster}),
    )
    .await;
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.warn");
    assert_eq!(note["priority"], "WARN");
    assert_eq!(note["event_type"], "notification.warning");
    assert_eq!(note["payload"]["id"].as_i64(), Some(warning));
    assert_eq!(note["payload"]["message"], "Disk almost full on node-1");
    assert_eq!(note["payload"]["cluster_id"].as_i64(), Some(cluster));
    assert_eq!(note["payload"]["status"], "unread");
    let global = add_notification(
        &mut bridge,
        json!({"topic": "done", "message": "Backup finished"}),
    )
    .await;
    assert_eq!(bridge.next_notification().await.0, "notifications.info");
    let error = add_notification(
        &mut bridge,
        json!({"topic": "error", "message": "Node node-2 is offline", "cluster_id": cluster}),
    )
    .await;
    assert_eq!(bridge.next_notification().await.0, "notifications.error");

    let ids = |list: Value| -> Vec<i64> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|n| n["id"].as_i64().expect("id"))
            .collect()
    };
    let all = bridge.ok("list_notifications", json!({})).await;
    assert_eq!(ids(all), vec![error, global, warning], "newest first");
    let of_cluster = bridge
        .ok("list_notifications", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(ids(of_cluster), vec![error, warning]);
    // An operator read the warning (HTTP only); the status filter sees it.
    bridge
        .execute(&format!(
            "UPDATE notifications SET status = 'read' WHERE id = {warning}"
        ))
        .await;
    let read = bridge
        .ok("list_notifications", json!({"status": "read"}))
        .await;
    assert_eq!(ids(read), vec![warning]);
    let unread = bridge
        .ok("list_notifications", json!({"status": "unread"}))
        .await;
    assert_eq!(ids(unread), vec![error, global]);
    let both = bridge
        .ok(
            "list_notifications",
            json!({"cluster_id": cluster, "status": "unread"}),
        )
        .await;
    assert_eq!(ids(both), vec![error]);

    let (code, _) = bridge
        .refusal(
            "add_notification",
            json!({"topic": "warning", "message": "Lost", "cluster_id": 999_999}),
        )
        .await;
    assert_eq!(code, "not_found");
    let (code, _) = bridge
        .refusal(
            "add_notification",
            json!({"topic": "urgent", "message": "Lost"}),
        )
        .await;
    assert_eq!(code, "invalid_request");
    assert_eq!(bridge.count("notifications").await, 3);
    // Neither refusal was published: the next notification is the next one added.
    let last = add_notification(
        &mut bridge,
        json!({"topic": "discover", "message": "New node found"}),
    )
    .await;
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.info");
    assert_eq!(note["payload"]["id"].as_i64(), Some(last));
    bridge.stop().await;
}

/// Astute's queue unbound: the cast is unroutable, so it stays in the outbox and is published
/// as soon as a queue is bound again; it is never dropped.
async fn an_unroutable_cast_waits_in_the_outbox(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let naily = bridge.settings.amqp.clone();
    bridge
        .channel
        .queue_unbind(
            naily.naily_queue.as_str().into(),
            naily.naily_exchange.as_str().into(),
            naily.naily_routing_key.as_str().into(),
            FieldTable::default(),
        )
        .await
        .expect("unbind naily");

    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": id(&releases, UBUNTU_502)}),
        )
        .await;
    let uuid = text(&task["uuid"]).to_string();
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox WHERE attempts > 0",
            "the cast was tried and kept",
            |n| n == 1,
        )
        .await;

    bridge
        .channel
        .queue_bind(
            naily.naily_queue.as_str().into(),
            naily.naily_exchange.as_str().into(),
            naily.naily_routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind naily again");
    let cast = bridge.next_cast().await;
    assert_eq!(
        cast["args"]["task_uuid"],
        uuid.as_str(),
        "the kept cast is published once a queue listens"
    );
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox",
            "the outbox is empty again",
            |n| n == 0,
        )
        .await;
    bridge.stop().await;
}

/// Astute took the cast and never answered (it acks before it works): the watchdog ends the
/// task as failed after the configured silence, like an `error` reply would, so the
/// environment can be rolled back.
async fn a_silent_astute_fails_the_task_after_the_watchdog_deadline(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.watchdog.silence_secs = 1;
        s.watchdog.check_interval_ms = 100;
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let (from, to) = (id(&releases, UBUNTU_50), id(&releases, UBUNTU_502));
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    bridge.next_cast().await; // taken, and never answered

    let failed = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    assert_eq!(failed["latest_task"]["uuid"], task["uuid"]);
    assert_eq!(failed["latest_task"]["status"], "error");
    let message = text(&failed["latest_task"]["message"]).to_string();
    assert!(
        message.starts_with("Upgrade has failed. No word from Astute for 1 s"),
        "{message}"
    );
    assert_eq!(failed["release_id"].as_i64(), Some(from));
    assert_eq!(failed["pending_release_id"].as_i64(), Some(to));
    assert!(failed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "error"));
    let (key, note) = bridge.next_notification().await;
    assert_eq!(key, "notifications.error");
    assert_eq!(note["payload"]["message"], message.as_str());

    // The operator can roll back as after any failure.
    let rollback = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(rollback["name"], "rollback");
    bridge.stop().await;
}

/// The watchdog's clock starts when the broker confirms the cast: a cast waiting in the outbox
/// for a queue does not expire, however long it waits; once out, silence counts from then.
async fn a_cast_waiting_in_the_outbox_does_not_expire(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.watchdog.silence_secs = 1;
        s.watchdog.check_interval_ms = 100;
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let naily = bridge.settings.amqp.clone();
    bridge
        .channel
        .queue_unbind(
            naily.naily_queue.as_str().into(),
            naily.naily_exchange.as_str().into(),
            naily.naily_routing_key.as_str().into(),
            FieldTable::default(),
        )
        .await
        .expect("unbind naily");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": id(&releases, UBUNTU_502)}),
        )
        .await;
    // Relay rounds are 200 ms apart: 15 tries span three times the silence allowed.
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox WHERE attempts >= 15",
            "the cast tried for 3 s",
            |n| n == 1,
        )
        .await;
    let waiting = bridge
        .ok("get_task", json!({"task_uuid": task["uuid"]}))
        .await;
    assert_eq!(waiting["status"], "running", "{waiting}");

    bridge
        .channel
        .queue_bind(
            naily.naily_queue.as_str().into(),
            naily.naily_exchange.as_str().into(),
            naily.naily_routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind naily again");
    bridge.next_cast().await; // taken, and never answered
    let failed = bridge
        .cluster_until(cluster, "upgrade_error by the watchdog", |c| {
            c["status"] == "upgrade_error"
        })
        .await;
    assert!(
        text(&failed["latest_task"]["message"])
            .starts_with("Upgrade has failed. No word from Astute"),
        "{failed}"
    );
    bridge.stop().await;
}

on_both_backends!(
    a_cast_waiting_in_the_outbox_does_not_expire,
    a_silent_astute_fails_the_task_after_the_watchdog_deadline,
    an_unroutable_cast_waits_in_the_outbox,
    upgrade_success,
    downgrade_success,
    same_release_update,
    ha_cast_has_primary_controller_and_ha_priorities,
    node_failure_then_task_error_then_rollback_success,
    rollback_failure_then_retry,
    a_rollback_leaves_what_the_failed_operation_tried_to_reach,
    every_refusal_has_its_code,
    duplicated_and_out_of_order_replies,
    reply_for_an_ended_task_changes_nothing,
    malformed_replies_go_to_the_dead_letter_queue,
    a_duplicate_request_is_answered_with_the_first_result,
    bad_requests_are_refused_and_change_nothing,
    check_update_is_a_dry_run,
    notifications_can_be_added_and_listed,
);
