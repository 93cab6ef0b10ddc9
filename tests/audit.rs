//! The audit trail on SQLite and PostgreSQL: every state-changing request over AMQP and HTTP,
//! refused ones included, with who sent it, its targets and its outcome; reads are not on it;
//! `GET /api/audit/` and `astute-bridge audit` show it.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use astute_bridge::core::access::Role;
use common::broker_user::BrokerUser;
use common::{Backend, Bridge};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");

async fn trail(bridge: &Bridge, query: &str) -> Vec<Value> {
    let response = Client::new()
        .get(format!("{}/api/audit/{query}", bridge.http))
        .send()
        .await
        .expect("GET /api/audit/");
    assert_eq!(response.status(), StatusCode::OK);
    let rows: Value = response.json().await.expect("JSON");
    rows.as_array().cloned().expect("an array")
}

/// What matters of a row: (actor, transport, method, cluster, release, nodes, outcome).
fn fact(row: &Value) -> (String, String, String, Value, Value, Value, String) {
    let s = |key: &str| row[key].as_str().unwrap_or_default().to_string();
    (
        s("actor"),
        s("transport"),
        s("method"),
        row["cluster_id"].clone(),
        row["release_id"].clone(),
        row["node_ids"].clone(),
        s("outcome"),
    )
}

async fn every_change_and_refusal_is_on_the_trail(backend: Backend) {
    let operator = BrokerUser::create("auditor-ops");
    let mut bridge = Bridge::start_with(backend, |s| {
        s.requests.allowed_users = BTreeMap::from([(operator.name.clone(), Role::Operator)]);
    })
    .await;
    let exchange = bridge.settings.amqp.request_exchange.clone();
    let mut ops = operator.connect(&exchange).await;
    let me = Some(operator.name.as_str());
    let id = || uuid::Uuid::new_v4().to_string();

    let release = ops
        .request(
            "create_release",
            json!({"name": "Icehouse", "version": "2014.1-5.0", "operating_system": "Ubuntu"}),
            me,
            &id(),
        )
        .await["result"]["id"]
        .clone();
    let cluster = ops
        .request(
            "create_cluster",
            json!({"name": "env", "release_id": release, "mode": "multinode", "status": "operational"}),
            me,
            &id(),
        )
        .await["result"]["id"]
        .clone();
    let nodes = ops
        .request(
            "add_nodes",
            json!({"cluster_id": cluster, "nodes": [
                {"name": "a", "fqdn": "a.tld", "roles": ["controller"]},
                {"name": "b", "fqdn": "b.tld", "roles": ["compute"]}]}),
            me,
            &id(),
        )
        .await["result"]
        .clone();
    let node_ids: Vec<Value> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    // Refused (no such release): the refusal is on the trail, the change is not made.
    let refused = ops
        .request(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": 9999}),
            me,
            &id(),
        )
        .await;
    let refused_code = refused["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!refused_code.is_empty(), "{refused}");
    // Reads are not on the trail.
    ops.request("get_cluster", json!({"cluster_id": cluster}), me, &id())
        .await;
    // Nobody in particular: no user_id, refused `forbidden`.
    let forbidden = bridge
        .request("delete_release", json!({"release_id": release}))
        .await;
    assert_eq!(forbidden["error"]["code"], "forbidden");

    let user = operator.name.clone();
    let amqp = |method: &str, cluster: Value, release: Value, nodes: Value, outcome: &str| {
        (
            user.clone(),
            "amqp".to_string(),
            method.to_string(),
            cluster,
            release,
            nodes,
            outcome.to_string(),
        )
    };
    let rows = trail(&bridge, "").await;
    let facts: Vec<_> = rows.iter().map(fact).collect();
    assert_eq!(
        facts,
        vec![
            (
                "anonymous".to_string(),
                "amqp".to_string(),
                "delete_release".to_string(),
                Value::Null,
                release.clone(),
                json!([]),
                "forbidden".to_string()
            ),
            amqp(
                "update_cluster",
                cluster.clone(),
                json!(9999),
                json!([]),
                &refused_code
            ),
            amqp(
                "add_nodes",
                cluster.clone(),
                Value::Null,
                Value::Array(node_ids),
                "ok"
            ),
            amqp(
                "create_cluster",
                cluster.clone(),
                release.clone(),
                json!([]),
                "ok"
            ),
            amqp(
                "create_release",
                Value::Null,
                release.clone(),
                json!([]),
                "ok"
            ),
        ],
        "newest first"
    );
    assert!(rows.iter().all(|r| r["at"].is_string()), "{rows:?}");

    // Over HTTP (no caller identification yet: anonymous), a change and a refusal.
    let http = Client::new();
    let created = http
        .post(format!("{}/api/releases/", bridge.http))
        .json(
            &json!({"name": "Juno", "version": "2014.2-6.0", "operating_system": "Ubuntu",
                      "puppet_manifests_source": "ftp://nowhere/"}),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::BAD_REQUEST);
    let rollback = http
        .put(format!("{}/api/clusters/{cluster}/rollback/", bridge.http))
        .send()
        .await
        .expect("PUT");
    assert_eq!(rollback.status(), StatusCode::BAD_REQUEST);
    let rows = trail(&bridge, &format!("?cluster_id={cluster}&limit=2")).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        fact(&rows[0]),
        (
            "anonymous".to_string(),
            "http".to_string(),
            "rollback_cluster".to_string(),
            cluster.clone(),
            Value::Null,
            json!([]),
            "invalid_state".to_string()
        )
    );
    assert_eq!(
        rows[1]["method"], "update_cluster",
        "only this cluster's rows"
    );
    let all = trail(&bridge, "?limit=1").await;
    assert_eq!(all[0]["method"], "rollback_cluster");
    assert_eq!(bridge.count("tasks").await, 0, "no refused change was made");
    assert_eq!(bridge.count("releases").await, 1);
    // The POST refused at validation is on the trail too (a service refusal).
    let releases_rows = trail(&bridge, "?limit=3").await;
    assert!(
        releases_rows
            .iter()
            .any(|r| r["method"] == "create_release" && r["outcome"] == "invalid_request"),
        "{releases_rows:?}"
    );
    let bad = http
        .get(format!("{}/api/audit/?limit=100000", bridge.http))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The command shows the same rows.
    let mut command = Command::new(BIN);
    command
        .args(["audit", "--cluster", &cluster.to_string(), "--limit", "10"])
        .envs(bridge.binary_env())
        .env("ASTUTE_BRIDGE__DATABASE__URL", database_url(&bridge));
    let output = tokio::task::spawn_blocking(move || command.output().expect("run"))
        .await
        .expect("blocking");
    assert!(output.status.success(), "{output:?}");
    let shown: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let shown = shown.as_array().cloned().expect("an array");
    assert_eq!(
        shown.iter().map(fact).collect::<Vec<_>>(),
        trail(&bridge, &format!("?cluster_id={cluster}"))
            .await
            .iter()
            .map(fact)
            .collect::<Vec<_>>()
    );
    assert_eq!(shown.len(), 4, "{shown:?}");
    bridge.stop().await;
}

fn database_url(bridge: &Bridge) -> String {
    bridge.settings.database.url.expose().to_string()
}

on_both_backends!(every_change_and_refusal_is_on_the_trail);
