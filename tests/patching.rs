//! The patching flow end to end: requests in, the cast Astute receives, Astute's replies, the
//! database and the operators' notifications — on SQLite and on PostgreSQL.

mod common;

use common::{load_fixture, release_id, Backend, Bridge};
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

    // What Astute receives, field by field.
    let cast = bridge.next_cast().await;
    assert_eq!(cast["api_version"], "1");
    assert_eq!(cast["method"], "deploy");
    assert_eq!(cast["respond_to"], "deploy_resp");
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    assert_eq!(task["cache"], cast, "the task keeps the exact cast");
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

on_both_backends!(upgrade_success);
