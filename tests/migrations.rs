//! The migrations, applied, exercised through the entities, rolled back and re-applied, on SQLite
//! and on PostgreSQL. PostgreSQL must be running: this test fails, never skips, without it.

use std::collections::BTreeSet;
use std::time::Duration;

use astute_bridge::store::entity::{
    audit, cluster, node, notification, outbox, processed_request, release, task,
};
use chrono::{DateTime, TimeZone, Utc};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbBackend, DbErr, EntityTrait, IntoActiveModel, ModelTrait, PaginatorTrait, SqlErr, Statement,
};
use serde_json::json;

/// `$model` as an active model whose auto-increment `id` is left to the database.
macro_rules! without_id {
    ($model:expr) => {{
        let mut active = $model.into_active_model();
        active.id = ActiveValue::NotSet;
        active
    }};
}

/// Inserts `$model` (module `$entity`) without its id, checks that the row comes back unchanged
/// (JSON and timestamps included) both from the insert and from a select by id, returns it.
macro_rules! insert {
    ($db:expr, $entity:ident, $model:expr) => {{
        let model: $entity::Model = $model;
        let stored = without_id!(model.clone())
            .insert($db)
            .await
            .unwrap_or_else(|e| panic!("insert {model:?}: {e}"));
        assert_eq!(
            $entity::Model {
                id: model.id,
                ..stored.clone()
            },
            model,
            "as inserted"
        );
        let found = $entity::Entity::find_by_id(stored.id)
            .one($db)
            .await
            .expect("select by id");
        assert_eq!(found.as_ref(), Some(&stored), "as read back");
        stored
    }};
}

const TABLES: [&str; 8] = [
    "releases",
    "clusters",
    "nodes",
    "tasks",
    "notifications",
    "outbox",
    "processed_requests",
    "audit",
];

const PARTIAL_INDEX: &str = "tasks_one_running_per_cluster";

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

const START_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

#[tokio::test]
async fn migrations_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ab.db").display());
    let db = connect(&url).await.expect("open the SQLite file");
    exercise(&db).await;
    db.close().await.expect("close SQLite");
}

#[tokio::test]
async fn migrations_on_postgres() {
    let admin_url =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let admin = connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin_url} ({e}); start it with `{START_POSTGRES}` \
             (or point TEST_POSTGRES_URL at a server)"
        )
    });

    let name = format!(
        "ab_mig_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));

    // Run in a task so that a failed assertion still reaches the DROP DATABASE below.
    let url = with_database(&admin_url, &name);
    let outcome = tokio::spawn(async move {
        let db = connect(&url).await.expect("connect to the fresh database");
        exercise(&db).await;
        // This server has lz4 (Debian's PostgreSQL 15): the casts' columns use it.
        assert_eq!(
            compression(&db).await,
            [
                ("outbox.body".to_owned(), "l".to_owned()),
                ("tasks.cache".to_owned(), "l".to_owned())
            ]
        );
        db.close().await.expect("close PostgreSQL");
    })
    .await;

    admin
        .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .await
        .unwrap_or_else(|e| panic!("DROP DATABASE {name}: {e}"));
    admin.close().await.expect("close the admin connection");

    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the PostgreSQL test task failed: {e}"),
    }
}

/// `attcompression` of the columns that hold casts (`l`: lz4, `p` or empty: pglz).
async fn compression(db: &DatabaseConnection) -> Vec<(String, String)> {
    db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT attrelid::regclass::text || '.' || attname AS col, attcompression::text AS method \
         FROM pg_attribute WHERE (attrelid = 'tasks'::regclass AND attname = 'cache') \
         OR (attrelid = 'outbox'::regclass AND attname = 'body') ORDER BY 1",
    ))
    .await
    .expect("pg_attribute")
    .iter()
    .map(|row| {
        (
            row.try_get::<String>("", "col").expect("col"),
            row.try_get::<String>("", "method").expect("method"),
        )
    })
    .collect()
}

async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// `admin_url` with its database name replaced by `name`, query string kept.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("://"))
        .unwrap_or((base, ""));
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

async fn exercise(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("migrate up");
    assert_eq!(
        Migrator::get_pending_migrations(db).await.unwrap().len(),
        0,
        "every migration is applied"
    );
    assert_schema_present(db).await;
    round_trip_every_table(db).await;

    // A cast waiting as its plan would go out as a plan without `body_format`: going down is
    // refused until it has been published, and nothing is rolled back.
    db.execute_unprepared(
        "INSERT INTO outbox (exchange, routing_key, body, properties, mandatory, attempts, \
         created_at, failures, body_format) \
         VALUES ('naily', 'naily', '{}', '{}', true, 0, CURRENT_TIMESTAMP, 0, 'deploy_plan')",
    )
    .await
    .expect("a waiting plan");
    let refused = Migrator::down(db, Some(1)).await.expect_err("down refused");
    assert!(
        refused
            .to_string()
            .contains("1 deploy cast(s) still wait in the outbox"),
        "{refused}"
    );
    assert_eq!(Migrator::get_pending_migrations(db).await.unwrap().len(), 0);
    db.execute_unprepared("DELETE FROM outbox")
        .await
        .expect("publish it");

    Migrator::down(db, None).await.expect("migrate down");
    assert_eq!(
        Migrator::get_applied_migrations(db).await.unwrap().len(),
        0,
        "every migration is rolled back"
    );
    let left: Vec<String> = table_names(db)
        .await
        .into_iter()
        .filter(|t| TABLES.contains(&t.as_str()))
        .collect();
    assert!(left.is_empty(), "tables left after down: {left:?}");
    assert!(
        !index_names(db).await.contains(PARTIAL_INDEX),
        "{PARTIAL_INDEX} left after down"
    );

    Migrator::up(db, None).await.expect("migrate up again");
    assert_schema_present(db).await;
    assert_eq!(release::Entity::find().count(db).await.unwrap(), 0);
    round_trip_every_table(db).await;
}

async fn assert_schema_present(db: &DatabaseConnection) {
    let tables = table_names(db).await;
    for table in TABLES {
        assert!(tables.contains(table), "table {table} missing: {tables:?}");
    }
    let indexes = index_names(db).await;
    for index in [
        "releases_name_version_key",
        "nodes_cluster_id_idx",
        "tasks_cluster_id_id_idx",
        "tasks_status_updated_at_idx",
        "tasks_cached_updated_at_idx",
        PARTIAL_INDEX,
        "notifications_cluster_id_id_idx",
        "notifications_status_id_idx",
        "notifications_cluster_id_status_id_idx",
        "clusters_release_id_idx",
        "clusters_pending_release_id_idx",
        "audit_cluster_id_id_idx",
        "audit_at_idx",
        "tasks_from_release_id_idx",
        "tasks_to_release_id_idx",
        "notifications_node_id_idx",
        "notifications_task_id_idx",
    ] {
        assert!(
            indexes.contains(index),
            "index {index} missing: {indexes:?}"
        );
    }
}

async fn names(db: &DatabaseConnection, sqlite: &str, postgres: &str) -> BTreeSet<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => sqlite,
        DbBackend::Postgres => postgres,
        other => panic!("unexpected backend {other:?}"),
    };
    db.query_all_raw(Statement::from_string(backend, sql))
        .await
        .expect(sql)
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a name"))
        .collect()
}

async fn table_names(db: &DatabaseConnection) -> BTreeSet<String> {
    names(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table'",
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema()",
    )
    .await
}

async fn index_names(db: &DatabaseConnection) -> BTreeSet<String> {
    names(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'index'",
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()",
    )
    .await
}

/// A timestamp PostgreSQL stores exactly (microseconds).
fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, second).unwrap()
        + chrono::Duration::microseconds(123_456)
}

fn assert_violation(result: Result<impl std::fmt::Debug, DbErr>, what: &str, unique: bool) {
    let err = match result {
        Ok(v) => panic!("{what} was accepted: {v:?}"),
        Err(e) => e,
    };
    let recognised = match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => unique,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => !unique,
        // SQLite reports an ON DELETE RESTRICT violation as SQLITE_CONSTRAINT_TRIGGER (1811),
        // not SQLITE_CONSTRAINT_FOREIGNKEY (787), so `sql_err()` does not classify it.
        _ => !unique && err.to_string().contains("FOREIGN KEY constraint failed"),
    };
    assert!(recognised, "{what}: unexpected error {err:?}");
}

/// Inserts one row per table through the entities, reads it back, and checks the constraints.
async fn round_trip_every_table(db: &DatabaseConnection) {
    let release = release::Model {
        id: 0,
        name: "Mitaka on Ubuntu 14.04".into(),
        version: "mitaka-9.0".into(),
        operating_system: "Ubuntu".into(),
        description: "OpenStack Mitaka".into(),
        state: "available".into(),
        can_update_from_versions: json!(["liberty-8.0"]),
        compatible_fuel_versions: json!(["9.0", "9.1"]),
        repo_metadata: json!({"nailgun": "http://mirror/ubuntu/9.0", "nested": {"n": 1, "ok": true}}),
        puppet_modules_source: "rsync://fuel/puppet/modules/".into(),
        puppet_manifests_source: "rsync://fuel/puppet/manifests/".into(),
        created_at: at(1),
    };
    let release = insert!(db, release, release);
    let target = insert!(
        db,
        release,
        release::Model {
            version: "mitaka-9.2".into(),
            created_at: at(2),
            ..release.clone()
        }
    );
    assert_violation(
        release::Entity::insert(without_id!(release.clone()))
            .exec(db)
            .await,
        "a duplicate (name, version) release",
        true,
    );

    let cluster = insert!(
        db,
        cluster,
        cluster::Model {
            id: 0,
            name: "env-1".into(),
            mode: "ha_compact".into(),
            status: "operational".into(),
            release_id: release.id,
            pending_release_id: Some(target.id),
            fuel_version: "9.0".into(),
            attributes: json!({"editable": {"common": {"debug": false}}}),
            created_at: at(3),
            updated_at: at(4),
        }
    );
    let other_cluster = insert!(
        db,
        cluster,
        cluster::Model {
            name: "env-2".into(),
            pending_release_id: None,
            ..cluster.clone()
        }
    );
    assert_violation(
        cluster::Entity::insert(without_id!(cluster.clone()))
            .exec(db)
            .await,
        "a second cluster named env-1",
        true,
    );

    let node = insert!(
        db,
        node,
        node::Model {
            id: 0,
            cluster_id: cluster.id,
            name: "node-1".into(),
            fqdn: "node-1.domain.tld".into(),
            roles: json!(["controller", "mongo"]),
            status: "ready".into(),
            progress: 100,
            error_type: None,
            error_msg: None,
            online: true,
        }
    );
    insert!(
        db,
        node,
        node::Model {
            name: "node-2".into(),
            error_type: Some("deploy".into()),
            error_msg: Some("puppet failed".into()),
            online: false,
            ..node.clone()
        }
    );
    assert_eq!(
        cluster
            .find_related(node::Entity)
            .all(db)
            .await
            .unwrap()
            .len(),
        2
    );

    let running = task::Model {
        id: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        cluster_id: cluster.id,
        name: "deployment".into(),
        status: "running".into(),
        progress: 0,
        message: None,
        from_release_id: Some(release.id),
        to_release_id: Some(target.id),
        created_at: at(5),
        updated_at: at(6),
    };
    let running = insert!(db, task, running);
    let fresh = |status: &str, cluster_id: i32| task::Model {
        id: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        cluster_id,
        status: status.into(),
        message: Some("done".into()),
        ..running.clone()
    };
    assert_violation(
        task::Entity::insert(without_id!(fresh("running", cluster.id)))
            .exec(db)
            .await,
        "a second running task on the same cluster",
        true,
    );
    let ready = insert!(db, task, fresh("ready", cluster.id));
    insert!(db, task, fresh("ready", cluster.id));
    insert!(db, task, fresh("running", other_cluster.id));
    assert_violation(
        task::Entity::insert(without_id!(task::Model {
            uuid: ready.uuid.clone(),
            ..fresh("error", cluster.id)
        }))
        .exec(db)
        .await,
        "a duplicate task uuid",
        true,
    );

    let note = insert!(
        db,
        notification,
        notification::Model {
            id: 0,
            cluster_id: Some(cluster.id),
            node_id: Some(node.id),
            task_id: Some(running.id),
            topic: "done".into(),
            message: "Deployment has completed".into(),
            status: "unread".into(),
            datetime: at(7),
        }
    );

    insert!(
        db,
        outbox,
        outbox::Model {
            id: 0,
            exchange: "naily".into(),
            routing_key: "naily".into(),
            body: r#"{"method":"deploy"}"#.into(),
            properties: json!({
                "content_type": "application/json",
                "correlation_id": "c-1",
                "message_id": "m-1",
                "headers": {"x-retry": 0}
            }),
            mandatory: true,
            attempts: 0,
            created_at: at(8),
            failures: 2,
            last_error: Some("NOT_FOUND - no exchange 'naily'".into()),
            next_attempt_at: Some(at(9)),
            parked_at: None,
            body_format: Some(outbox::DEPLOY_PLAN.into()),
            published_at: Some(at(9)),
        }
    );

    let request = processed_request::Model {
        message_id: format!("msg-{}", uuid::Uuid::new_v4()),
        method: "upgrade_cluster".into(),
        response: None,
        created_at: at(9),
    };
    let stored = processed_request::Entity::insert(request.clone().into_active_model())
        .exec_with_returning(db)
        .await
        .expect("insert processed_request");
    assert_eq!(stored, request);
    assert_eq!(
        processed_request::Entity::find_by_id(request.message_id.clone())
            .one(db)
            .await
            .unwrap(),
        Some(request.clone())
    );
    assert_violation(
        processed_request::Entity::insert(request.clone().into_active_model())
            .exec(db)
            .await,
        "a duplicate message_id",
        true,
    );

    // The audit trail names clusters and releases without holding them.
    let entry = insert!(
        db,
        audit,
        audit::Model {
            id: 0,
            at: at(9),
            actor: "nailgun".into(),
            transport: "amqp".into(),
            method: "update_cluster".into(),
            cluster_id: Some(cluster.id),
            release_id: Some(target.id),
            node_ids: Some("[1,2]".into()),
            outcome: "ok".into(),
        }
    );

    // Foreign keys: RESTRICT on releases, CASCADE to nodes and tasks, SET NULL on notifications.
    assert_violation(
        release::Entity::delete_by_id(target.id).exec(db).await,
        "deleting a release a cluster is pending on",
        false,
    );
    cluster::Entity::delete_by_id(cluster.id)
        .exec(db)
        .await
        .expect("delete cluster");
    assert_eq!(
        cluster.find_related(node::Entity).count(db).await.unwrap(),
        0
    );
    assert_eq!(
        cluster.find_related(task::Entity).count(db).await.unwrap(),
        0
    );
    let note = notification::Entity::find_by_id(note.id)
        .one(db)
        .await
        .unwrap()
        .expect("the notification outlives its cluster");
    assert_eq!(
        (note.cluster_id, note.node_id, note.task_id),
        (None, None, None)
    );
    let entry = audit::Entity::find_by_id(entry.id)
        .one(db)
        .await
        .unwrap()
        .expect("the audit trail outlives its cluster");
    assert_eq!(entry.cluster_id, Some(cluster.id));

    // Leave the database empty for the next round.
    for table in TABLES.iter().rev() {
        db.execute_unprepared(&format!(r#"DELETE FROM "{table}""#))
            .await
            .unwrap_or_else(|e| panic!("empty {table}: {e}"));
    }
}
