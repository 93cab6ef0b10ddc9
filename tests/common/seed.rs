//! Fills a migrated database with the history a long-lived master has: many environments with a
//! running task each, many ended tasks, a large backlog of notifications, audit rows and
//! idempotency keys. One statement per table, on SQLite and PostgreSQL alike (a recursive
//! series), then vacuumed, analyzed (so the planner knows the sizes) and checkpointed. Shared by the tests and the benches.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// How much history to seed.
#[derive(Debug, Clone, Copy)]
pub struct History {
    /// Environments, each with `nodes_per_cluster` nodes and one running task.
    pub clusters: u32,
    pub nodes_per_cluster: u32,
    pub ended_tasks: u32,
    pub notifications: u32,
    pub audit_rows: u32,
    pub processed_requests: u32,
}

/// Seeds `history` into a migrated database that holds no cluster named `seed-…`; the seeded
/// environments refer to one release of their own.
pub async fn seed(db: &DatabaseConnection, history: History) {
    let backend = db.get_database_backend();
    run(
        db,
        "INSERT INTO releases (name, version, operating_system, description, state, \
         can_update_from_versions, compatible_fuel_versions, repo_metadata, \
         puppet_modules_source, puppet_manifests_source, created_at) \
         VALUES ('seed', 'seed-1', 'Ubuntu', '', 'available', '[]', '[]', '{}', '', '', :now)",
    )
    .await;
    let release = "(SELECT id FROM releases WHERE name = 'seed')";
    // The seeded clusters' ids are consecutive up to the largest.
    let base = "(SELECT MAX(id) FROM clusters)";
    let (no_attributes, roles) = match backend {
        DbBackend::Postgres => ("CAST('{}' AS json)", r#"CAST('["compute"]' AS json)"#),
        _ => ("'{}'", r#"'["compute"]'"#),
    };
    let clusters = history.clusters;
    let statements = [
        format!(
            "{} INSERT INTO clusters (name, mode, status, release_id, fuel_version, attributes, \
             created_at, updated_at) \
             SELECT 'seed-cluster-' || i, 'ha_compact', 'operational', {release}, '5.1', \
             {no_attributes}, \
             :now, :now FROM s",
            series(clusters)
        ),
        format!(
            "{} INSERT INTO nodes (cluster_id, name, fqdn, roles, status, progress, online) \
             SELECT {base} - {clusters} + 1 + i % {clusters}, 'seed-node-' || i, \
             'seed-node-' || i || '.domain.tld', {roles}, 'ready', 0, true FROM s",
            series(clusters * history.nodes_per_cluster)
        ),
        // One running task per environment, heard from just now (the watchdog leaves them).
        "INSERT INTO tasks (uuid, cluster_id, name, status, progress, from_release_id, \
         to_release_id, created_at, updated_at) \
         SELECT 'seed-running-' || id, id, 'update', 'running', 10, release_id, release_id, \
         :now, :now FROM clusters WHERE name LIKE 'seed-cluster-%'"
            .to_owned(),
        format!(
            "{} INSERT INTO tasks (uuid, cluster_id, name, status, progress, from_release_id, \
             to_release_id, created_at, updated_at) \
             SELECT 'seed-ended-' || i, {base} - {clusters} + 1 + i % {clusters}, 'update', \
             CASE WHEN i % 10 = 0 THEN 'error' ELSE 'ready' END, 100, NULL, NULL, :now, :now FROM s",
            series(history.ended_tasks)
        ),
        format!(
            "{} INSERT INTO notifications (cluster_id, topic, message, status, datetime) \
             SELECT {base} - {clusters} + 1 + i % {clusters}, \
             CASE WHEN i % 10 = 0 THEN 'error' ELSE 'done' END, 'seeded notification ' || i, \
             CASE WHEN i % 20 = 0 THEN 'unread' ELSE 'read' END, :now FROM s",
            series(history.notifications)
        ),
        format!(
            "{} INSERT INTO audit (at, actor, transport, method, cluster_id, outcome) \
             SELECT :now, 'seed', 'amqp', 'update_cluster', {base} - {clusters} + 1 + i % {clusters}, \
             'ok' FROM s",
            series(history.audit_rows)
        ),
        format!(
            "{} INSERT INTO processed_requests (message_id, method, response, created_at) \
             SELECT 'seed-request-' || i, 'get_cluster', '{{}}', :now FROM s",
            series(history.processed_requests)
        ),
    ];
    for statement in statements {
        run(db, &statement).await;
    }
    // At rest, as a long-lived database is: vacuumed and analyzed, its log checkpointed, so that
    // what runs next does not pay for the seeding.
    let settle: &[&str] = match backend {
        DbBackend::Postgres => &["VACUUM ANALYZE", "CHECKPOINT"],
        _ => &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"],
    };
    for statement in settle {
        run(db, statement).await;
    }
}

/// `WITH RECURSIVE s(i) AS (…)`: the integers 1 to `n`, as a prefix of an INSERT.
fn series(n: u32) -> String {
    format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})")
}

/// Runs one statement, `:now` bound to the current time (written as the driver writes
/// timestamps, so the bridge reads them back).
async fn run(db: &DatabaseConnection, sql: &str) {
    let backend = db.get_database_backend();
    let placeholder = match backend {
        DbBackend::Postgres => "$1",
        _ => "?1",
    };
    let uses_now = sql.contains(":now");
    let sql = sql.replace(":now", placeholder);
    let values = if uses_now {
        vec![Utc::now().into()]
    } else {
        Vec::new()
    };
    db.execute_raw(Statement::from_sql_and_values(backend, &sql, values))
        .await
        .unwrap_or_else(|e| panic!("seed: {e}\n{sql}"));
}
