//! Memory and time of a `deploy` cast for environments of 10, 100, 500 and 1000 nodes
//! (3 controllers, the others compute + cinder: one entry per node and role, each listing every
//! entry in `nodes`).
//!
//! Run: `cargo bench --bench cast_memory` (no broker or PostgreSQL needed: SQLite in a temporary
//! directory). `BENCH_NODES` (`10,100,500,1000`) picks the sizes. `BENCH_POSTGRES` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) runs it on PostgreSQL instead, each size in a
//! database of its own, dropped at the end.
//!
//! Each size runs in its own child process, so every figure starts from a fresh heap. The child
//! registers the environment through the service functions, then measures four phases, each
//! from its own resting RSS (the peak is reset by writing `5` to `/proc/self/clear_refs`):
//! - `build`: the cast built and serialized by the core alone, from in-memory facts;
//! - `dry run`: `check_update` on the database, its answer serialized as a request's answer;
//! - `update`: `update_cluster` in a write transaction (the cast's size counted, its plan queued
//!   in the outbox), committed;
//! - `relay`: what the outbox relay does with that row apart from publishing it: the row read, the
//!   cast rendered from its plan and stored in the task's `cache`, then the row deleted in a
//!   write transaction, committed. (Publishing adds lapin's frames of the cast; not counted here.)
//!
//! The limit (`amqp.max_message_bytes`) is raised to 1 GiB so that the large casts go through.

#[path = "shared/environment.rs"]
mod environment;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use astute_bridge::config::Settings;
use astute_bridge::core::deploy_message::{
    deploy_message, deploy_message_from_stored, ClusterFacts, DeployPlan, NodeFacts, ReleaseFacts,
};
use astute_bridge::core::enums::{ClusterMode, OperatingSystem};
use astute_bridge::service::dispatch::dispatch;
use astute_bridge::service::patching::{check_update, update_cluster, UpdateTarget};
use astute_bridge::service::{answer, Context};
use astute_bridge::store;
use astute_bridge::wire::request;
use sea_orm::ConnectionTrait;
use serde_json::{json, Map, Value};

use environment::{release, roles};

const CHILD: &str = "CAST_MEMORY_CHILD_NODES";

fn main() {
    if let Ok(nodes) = std::env::var(CHILD) {
        let nodes: usize = nodes.parse().expect("a node count");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(child(nodes));
        return;
    }
    let sizes = std::env::var("BENCH_NODES").unwrap_or_else(|_| "10,100,500,1000".into());
    println!(
        "{:>6} {:>8} {:>14} {:>9} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}",
        "nodes",
        "entries",
        "cast bytes",
        "build ms",
        "build peak",
        "× cast",
        "dry-run peak",
        "× cast",
        "update peak",
        "× cast",
        "relay peak",
        "× cast"
    );
    let me = std::env::current_exe().expect("this program");
    for size in sizes.split(',') {
        let status = Command::new(&me)
            .env(CHILD, size.trim())
            .status()
            .expect("child");
        assert!(status.success(), "the run for {size} nodes failed");
    }
}

/// `(VmRSS, VmHWM)` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("a memory field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak to the current RSS and returns it.
fn rest() -> u64 {
    std::fs::File::options()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .expect("reset VmHWM (/proc/self/clear_refs)");
    rss().0
}

/// Peak RSS since `rest()` above the resting `base`.
fn peak_above(base: u64) -> u64 {
    rss().1.saturating_sub(base)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn plan(nodes: usize) -> DeployPlan {
    DeployPlan {
        task_uuid: uuid::Uuid::new_v4().to_string(),
        cluster: ClusterFacts {
            id: 1,
            mode: ClusterMode::HaCompact,
            fuel_version: "5.1".into(),
            attributes: Map::from_iter([("master_ip".into(), json!("10.20.0.2"))]),
        },
        deployed: ReleaseFacts {
            version: "2014.1.1-5.0.2".into(),
            operating_system: OperatingSystem::Ubuntu,
            repo_metadata: json!({"nailgun": "http://10.20.0.2:8080/2014.1.1-5.0.2/ubuntu/x86_64 precise main"}),
            puppet_modules_source: "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/".into(),
            puppet_manifests_source: "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/manifests/".into(),
        },
        previous_version: "2014.1-5.0".into(),
        nodes: (0..nodes)
            .map(|i| NodeFacts {
                id: i as i32 + 1,
                name: format!("node-{}", i + 1),
                fqdn: format!("node-{}.domain.tld", i + 1),
                roles: roles(i).into_iter().map(String::from).collect(),
                online: true,
            })
            .collect(),
    }
}

async fn call(db: &sea_orm::DatabaseConnection, ctx: &Context, method: &str, args: Value) -> Value {
    let txn = store::begin_write(db).await.expect("transaction");
    let args = match args {
        Value::Object(map) => map,
        _ => unreachable!("args are an object"),
    };
    let answer = dispatch(&txn, ctx, method, args)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    txn.commit().await.expect("commit");
    serde_json::from_str(answer.get()).expect("JSON answer")
}

async fn child(nodes: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut settings = Settings::load(None).expect("default settings");
    let postgres = std::env::var("BENCH_POSTGRES").ok();
    let scratch = format!("cast_memory_{}", uuid::Uuid::new_v4().simple());
    let url = match &postgres {
        Some(admin) => {
            let db = sea_orm::Database::connect(admin.as_str())
                .await
                .expect("PostgreSQL (BENCH_POSTGRES)");
            db.execute_unprepared(&format!(r#"CREATE DATABASE "{scratch}""#))
                .await
                .expect("create the bench database");
            db.close().await.ok();
            let cut = admin.rfind('/').expect("a database in BENCH_POSTGRES");
            format!("{}/{scratch}", &admin[..cut])
        }
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    };
    settings.database.url = url.into();
    settings.amqp.max_message_bytes = 1 << 30;
    let db = store::connect(&settings.database).await.expect("SQLite");
    store::migrate(&db).await.expect("migrations");
    let ctx = Context::from_settings(&settings, "astute-bridge.bench".into());
    let from = call(&db, &ctx, "create_release", release("2014.1-5.0", vec![])).await;
    let to = call(
        &db,
        &ctx,
        "create_release",
        release("2014.1.1-5.0.2", vec!["2014.1-5.0"]),
    )
    .await;
    let cluster = call(
        &db,
        &ctx,
        "create_cluster",
        environment::cluster("bench", &from["id"]),
    )
    .await;
    let all = environment::nodes(nodes);
    for chunk in all.chunks(1000) {
        call(
            &db,
            &ctx,
            "add_nodes",
            json!({"cluster_id": cluster["id"], "nodes": chunk}),
        )
        .await;
    }
    let target = || UpdateTarget {
        cluster_id: cluster["id"].as_i64().expect("cluster id") as i32,
        release_id: to["id"].as_i64().expect("release id") as i32,
    };

    // The core alone.
    let facts = plan(nodes);
    let base = rest();
    let started = Instant::now();
    let cast = deploy_message(&facts).expect("cast");
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let size = cast.len() as u64;
    let entries = nodes + nodes.saturating_sub(3);
    drop(cast);
    let build_peak = peak_above(base);

    // The dry run, answered as a request is.
    let base = rest();
    let verdict = check_update(&db, &ctx, target())
        .await
        .expect("check_update");
    let response = answer(&verdict).expect("answer");
    drop(verdict);
    let text = request::ok_response(&response, usize::MAX).expect("response");
    drop(response);
    assert!(text.len() as u64 > size);
    drop(text);
    let dry_peak = peak_above(base);

    // The update, committed.
    let base = rest();
    let txn = store::begin_write(&db).await.expect("transaction");
    let task = update_cluster(&txn, &ctx, target())
        .await
        .expect("update_cluster");
    txn.commit().await.expect("commit");
    let update_peak = peak_above(base);
    assert_eq!(task["status"], "running");

    // The relay's part, publishing aside.
    let base = rest();
    let rows = store::outbox::oldest(&db, 1, false).await.expect("outbox");
    let row = rows.into_iter().next().expect("the queued cast");
    let cast = deploy_message_from_stored(&row.body, settings.amqp.max_message_bytes)
        .expect("the cast rendered from its plan");
    assert_eq!(cast.len() as u64, size);
    let uuid = task["uuid"].as_str().expect("uuid");
    store::task_cache::store(&db, uuid, cast)
        .await
        .expect("cache");
    let txn = store::begin_write(&db).await.expect("transaction");
    store::outbox::remove(&txn, &[row.id])
        .await
        .expect("remove");
    txn.commit().await.expect("commit");
    drop(row);
    let relay_peak = peak_above(base);

    db.close().await.ok();
    if let Some(admin) = &postgres {
        let db = sea_orm::Database::connect(admin.as_str())
            .await
            .expect("PostgreSQL (BENCH_POSTGRES)");
        db.execute_unprepared(&format!(r#"DROP DATABASE "{scratch}" WITH (FORCE)"#))
            .await
            .expect("drop the bench database");
        db.close().await.ok();
    }

    let ratio = |peak: u64| format!("{:.2}", peak as f64 / size as f64);
    println!(
        "{:>6} {:>8} {:>14} {:>9.1} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}",
        nodes,
        entries,
        size,
        build_ms,
        mib(build_peak),
        ratio(build_peak),
        mib(dry_peak),
        ratio(dry_peak),
        mib(update_peak),
        ratio(update_peak),
        mib(relay_peak),
        ratio(relay_peak)
    );
}
