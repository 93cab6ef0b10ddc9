//! The hot paths read through indexes however much history the database holds. On a PostgreSQL
//! database seeded with thousands of environments (each with a running task), tens of thousands
//! of ended tasks and a hundred thousand notifications, a whole update, the lists and their
//! pages, the watchdog and retention make no sequential scan of a large table: PostgreSQL's own
//! counters (`pg_stat_user_tables`) say so. PostgreSQL must be running: this test fails, never
//! skips, without it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use astute_bridge::retention::Retention;
use astute_bridge::service::Context;
use astute_bridge::watchdog::Watchdog;
use common::seed::{seed, History};
use common::{
    fresh_prefix, load_fixture, postgres_admin_url, release_id, with_database, Backend, Bridge,
    PATIENCE, START_POSTGRES,
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};

/// Tables that grow with the master's history; small ones (releases, the outbox) are read
/// whole by design.
const LARGE_TABLES: [&str; 6] = [
    "clusters",
    "nodes",
    "tasks",
    "notifications",
    "audit",
    "processed_requests",
];

const HISTORY: History = History {
    clusters: 2_000,
    nodes_per_cluster: 3,
    ended_tasks: 20_000,
    notifications: 100_000,
    audit_rows: 20_000,
    processed_requests: 10_000,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_paths_read_through_indexes_on_a_large_database() {
    // A database of our own, migrated, seeded, its counters then reset.
    let name = fresh_prefix('q');
    let admin = Database::connect(postgres_admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable ({e}); start it with: {START_POSTGRES}")
        });
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
        .await
        .expect("create the database");
    let url = with_database(&postgres_admin_url(), &name);
    let mut options = ConnectOptions::new(url.clone());
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.expect("connect");
    Migrator::up(&db, None).await.expect("migrate");
    seed(&db, HISTORY).await;
    db.execute_unprepared("SELECT pg_stat_force_next_flush()")
        .await
        .expect("flush");
    db.execute_unprepared("SELECT pg_stat_reset()")
        .await
        .expect("reset the counters");

    // The bridge on it: a whole update, and every list with its filters and pages.
    let bridge_url = url.clone();
    let mut bridge = Bridge::start_with(Backend::Postgres, move |s| {
        s.database.url = bridge_url.into();
    })
    .await;
    drive_the_hot_paths(&mut bridge, &db).await;
    bridge.halt().await;
    every_session_gone(&db, &name).await;

    db.execute_unprepared("SELECT pg_stat_force_next_flush()")
        .await
        .expect("flush");
    let counters = scans(&db).await;
    for (table, seq_scan, idx_scan) in &counters {
        assert_eq!(
            *seq_scan, 0,
            "{table} was read by a sequential scan: {counters:?}"
        );
        assert!(
            *idx_scan > 0,
            "{table} was never read, so the test proves nothing: {counters:?}"
        );
    }
    bridge.stop().await;
    db.close().await.ok();
    admin
        .execute_unprepared(&format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#))
        .await
        .expect("drop the database");
}

async fn drive_the_hot_paths(bridge: &mut Bridge, db: &DatabaseConnection) {
    let (cluster, releases) = load_fixture(bridge, "env-multinode").await;
    let patch = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let unused = release_id(&releases, "Icehouse on CentOS 6.5", "2014.1.1-5.0.2");

    let verdict = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": patch}),
        )
        .await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": patch}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    let found = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    let node_ids: Vec<i64> = found["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_i64())
        .collect();
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 40,
                      "nodes": [{"uid": node_ids[0].to_string(), "status": "ready", "progress": 100}]}))
        .await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    bridge.ok("get_task", json!({"task_uuid": uuid})).await;
    bridge
        .ok("delete_release", json!({"release_id": unused}))
        .await;

    // Lists, one page after another.
    let first = bridge.ok("list_clusters", json!({"limit": 100})).await;
    let last = first.as_array().and_then(|p| p.last()).expect("a page")["id"].clone();
    let second = bridge
        .ok("list_clusters", json!({"after_id": last, "limit": 100}))
        .await;
    assert!(second[0]["id"].as_i64() > last.as_i64(), "{second}");
    // The seeding gives every 20th seeded environment unread notifications, the 101st too.
    let seeded_cluster = second[0]["id"].as_i64().expect("id");
    for filter in [
        json!({"limit": 100}),
        json!({"cluster_id": seeded_cluster, "limit": 20}),
        json!({"status": "unread", "limit": 100}),
        json!({"cluster_id": seeded_cluster, "status": "unread", "limit": 20}),
        json!({"cluster_id": cluster, "limit": 20}),
    ] {
        let page = bridge.ok("list_notifications", filter.clone()).await;
        let oldest = page.as_array().and_then(|p| p.last()).expect("a page")["id"].clone();
        let mut next = filter.clone();
        next["before_id"] = oldest.clone();
        let older = bridge.ok("list_notifications", next).await;
        if let Some(first_older) = older.as_array().and_then(|p| p.first()) {
            assert!(
                first_older["id"].as_i64() < oldest.as_i64(),
                "{filter}: {older}"
            );
        }
    }
    let audit: Value = reqwest::get(format!(
        "{}/api/audit/?cluster_id={seeded_cluster}&limit=5",
        bridge.http
    ))
    .await
    .expect("audit")
    .json()
    .await
    .expect("audit rows");
    assert_eq!(audit.as_array().map(Vec::len), Some(5), "{audit}");

    // The watchdog and retention, as their loops run them.
    let ctx = Context::from_settings(&bridge.settings, "astute-bridge.test".into());
    let watchdog = Watchdog::new(
        db.clone(),
        ctx,
        Duration::from_secs(600),
        Duration::from_secs(1),
        Arc::new(tokio::sync::Notify::new()),
    );
    assert_eq!(watchdog.sweep().await.expect("watchdog sweep"), 0);
    Retention::new(db.clone(), bridge.settings.retention.clone())
        .sweep()
        .await
        .expect("retention sweep");
}

/// Waits until only our own session is left on the database: the bridge's sessions have
/// ended, and with them their counters were written.
async fn every_session_gone(db: &DatabaseConnection, name: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let others = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT COUNT(*) AS n FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ),
            ))
            .await
            .expect("sessions")
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .unwrap_or(-1);
        if others == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge's sessions never ended ({others} left)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (table, sequential scans, index scans) of each large table.
async fn scans(db: &DatabaseConnection) -> Vec<(String, i64, i64)> {
    let tables = LARGE_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        format!(
            "SELECT relname, seq_scan, COALESCE(idx_scan, 0) AS idx_scan FROM pg_stat_user_tables \
             WHERE relname IN ({tables}) ORDER BY relname"
        ),
    ))
    .await
    .expect("counters")
    .iter()
    .map(|row| {
        (
            row.try_get::<String>("", "relname").expect("relname"),
            row.try_get::<i64>("", "seq_scan").expect("seq_scan"),
            row.try_get::<i64>("", "idx_scan").expect("idx_scan"),
        )
    })
    .collect()
}
