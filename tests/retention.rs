//! Bounded growth: idempotency records, audit rows and ended tasks' casts older than their retention are
//! pruned by the running bridge; fresh ones stay.

mod common;

use astute_bridge::store::entity::{audit, processed_request, task};
use chrono::Utc;
use common::{load_fixture, release_id, Backend, Bridge};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

async fn old_records_are_pruned(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.retention.processed_requests_days = 7;
        s.retention.task_cache_days = 1;
        s.retention.audit_days = 30;
        s.retention.interval_secs = 1;
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    bridge
        .request_with_id("list_releases", json!({}), "old-request")
        .await;
    bridge
        .request_with_id("list_releases", json!({}), "fresh-request")
        .await;
    let target = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let ended = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    bridge
        .reply(json!({"task_uuid": ended["uuid"], "status": "ready", "progress": 100}))
        .await;
    bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;

    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM tasks WHERE cache IS NOT NULL",
            "the ended task keeps its cast while young",
            |n| n == 1,
        )
        .await;

    // Age them: the request eight days, the ended task two.
    processed_request::Entity::update_many()
        .col_expr(
            processed_request::Column::CreatedAt,
            Expr::value(Utc::now() - chrono::Duration::days(8)),
        )
        .filter(processed_request::Column::MessageId.eq("old-request"))
        .exec(&bridge.db)
        .await
        .expect("age the request");
    task::Entity::update_many()
        .col_expr(
            task::Column::UpdatedAt,
            Expr::value(Utc::now() - chrono::Duration::days(2)),
        )
        .filter(task::Column::Uuid.eq(ended["uuid"].as_str().unwrap_or_default()))
        .exec(&bridge.db)
        .await
        .expect("age the task");

    let trail = bridge.count("audit").await;
    assert!(
        trail >= 4,
        "the fixture's requests are on the trail ({trail})"
    );
    audit::Entity::update_many()
        .col_expr(
            audit::Column::At,
            Expr::value(Utc::now() - chrono::Duration::days(31)),
        )
        .exec(&bridge.db)
        .await
        .expect("age the audit trail");

    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM audit",
            "the old audit rows pruned",
            |n| n == 0,
        )
        .await;
    bridge
        .ok(
            "add_notification",
            json!({"topic": "done", "message": "fresh"}),
        )
        .await;
    assert_eq!(bridge.count("audit").await, 1, "a fresh row stays");
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM processed_requests WHERE message_id = 'old-request'",
            "the old idempotency record pruned",
            |n| n == 0,
        )
        .await;
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM tasks WHERE cache IS NULL",
            "the ended task's cast pruned",
            |n| n == 1,
        )
        .await;
    let fresh = bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM processed_requests WHERE message_id = 'fresh-request'",
            "the fresh record kept",
            |n| n == 1,
        )
        .await;
    assert_eq!(fresh, 1);
    assert_eq!(bridge.count("tasks").await, 1, "the task itself stays");
    bridge.stop().await;
}

on_both_backends!(old_records_are_pruned);
