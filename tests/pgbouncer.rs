//! PostgreSQL behind PgBouncer in session pooling, and a primary switch behind it: the old
//! primary's connections drop and it refuses new ones, PgBouncer is pointed at the new address
//! and reloaded, and the bridge carries on where it was (docs/scaling.md, "PostgreSQL beyond one
//! server"). The two "primaries" are two TCP proxies to the local PostgreSQL.

mod common;

use std::path::Path;
use std::process::Command;

use common::proxy::{upstream_of, Proxy};
use common::{load_fixture, postgres_admin_url, release_id, Backend, Bridge};
use serde_json::json;

const INSTALL: &str = "apt-get install pgbouncer";

/// A PgBouncer of this test (scripts/pgbouncer with its own port and directory).
struct PgBouncer {
    port: u16,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    fn script(dir: &Path, port: u16, upstream: u16, args: &[&str]) -> bool {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pgbouncer"))
            .args(args)
            .env("PGBOUNCER_DIR", dir)
            .env("PGBOUNCER_PORT", port.to_string())
            .env("PGBOUNCER_UPSTREAM_PORT", upstream.to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn start(upstream: u16) -> PgBouncer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        assert!(
            Self::script(dir.path(), port, upstream, &["start", "session"]),
            "PgBouncer did not start; is it installed? {INSTALL}"
        );
        PgBouncer { port, dir }
    }

    /// Points PgBouncer at a new address, as after a primary switch.
    fn reload(&self, upstream: u16) {
        assert!(
            Self::script(
                self.dir.path(),
                self.port,
                upstream,
                &["reload", &upstream.to_string()]
            ),
            "PgBouncer reload"
        );
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        Self::script(self.dir.path(), self.port, 0, &["stop"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_switch_behind_pgbouncer_heals() {
    let postgres = upstream_of(&postgres_admin_url(), 5432);
    let old = Proxy::start(&postgres).await;
    let new = Proxy::start(&postgres).await;
    let pgbouncer = PgBouncer::start(old.port());
    let through_pgbouncer = format!("127.0.0.1:{}", pgbouncer.port);
    let mut bridge = Bridge::start_supervised(Backend::Postgres, |s| {
        s.database.url = s
            .database
            .url
            .expose()
            .replace(&postgres, &through_pgbouncer)
            .into();
        s.database.max_connections = 4;
    })
    .await;
    assert!(
        bridge
            .settings
            .database
            .url
            .expose()
            .contains(&through_pgbouncer),
        "the bridge goes through PgBouncer: {:?}",
        bridge.settings.database.url
    );

    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 30}))
        .await;
    bridge
        .cluster_until(cluster, "progress 30", |c| {
            c["latest_task"]["progress"] == 30
        })
        .await;
    assert!(old.connections() > 0, "PgBouncer used the old primary");
    let before_switch = new.connections();

    // The old primary is gone: its connections drop, new ones are refused. PgBouncer is
    // pointed at the new one.
    old.refuse();
    old.cut();
    pgbouncer.reload(new.port());

    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    let done = bridge
        .cluster_until(cluster, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(done["latest_task"]["progress"], 100);
    assert_eq!(done["release_id"].as_i64(), Some(to));
    assert!(
        new.connections() > before_switch,
        "the bridge reached the new primary through PgBouncer"
    );
    assert_eq!(
        bridge
            .rows_until(
                "SELECT COUNT(*) AS n FROM notifications WHERE topic = 'done'",
                "a done notification",
                |n| n >= 1
            )
            .await,
        1
    );
    let ready = reqwest::get(format!("{}/readyz", bridge.http))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "ready after the switch");

    bridge.stop().await;
    drop(pgbouncer);
}
