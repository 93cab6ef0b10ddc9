//! `[security] allowed_source_prefixes` over AMQP, on SQLite and PostgreSQL: a release naming a
//! server outside the list is refused when it is created, and one whose cast would name such a
//! server (its own sources, or the master's defaults) cannot be updated to or rolled back to.

mod common;

use common::{Backend, Bridge};
use serde_json::json;

/// The Fuel master's HTTP repositories only: the master's rsync defaults fall outside.
const REPOS_ONLY: &str = "http://10.20.0.2:8080/";
const PUPPET: &str = "rsync://10.20.0.2:/puppet/";

fn ubuntu(version: &str, from: &[&str], manifests: &str) -> serde_json::Value {
    json!({"name": "Icehouse on Ubuntu 12.04", "version": version, "operating_system": "Ubuntu",
           "can_update_from_versions": from,
           "repo_metadata": {"nailgun": format!("http://10.20.0.2:8080/{version}/ubuntu/x86_64 precise main")},
           "puppet_modules_source": format!("rsync://10.20.0.2:/puppet/{version}/modules/"),
           "puppet_manifests_source": manifests})
}

async fn a_release_outside_the_list_is_refused_naming_the_field(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.security.allowed_source_prefixes = vec![REPOS_ONLY.into(), PUPPET.into()];
    })
    .await;
    for (manifests, why) in [
        ("rsync://10.6.6.6:/puppet/manifests/", "another host"),
        (
            "rsync://10.20.0.2.evil.example/puppet/",
            "a look-alike host",
        ),
        ("rsync://10.20.0.2:/puppet/../root/", "a path climbing out"),
        ("rsync://10.20.0.2:/puppetry/", "a longer first segment"),
    ] {
        let (code, message) = bridge
            .refusal("create_release", ubuntu("2014.1-5.0", &[], manifests))
            .await;
        assert_eq!(code, "invalid_request", "{why}: {message}");
        assert!(
            message.contains("puppet_manifests_source"),
            "{why}: {message}"
        );
    }
    let mut evil_repo = ubuntu("2014.1-5.0", &[], "rsync://10.20.0.2:/puppet/m/");
    evil_repo["repo_metadata"]["extra"] =
        json!("http://10.20.0.2:8080@evil.example/u precise main");
    let (code, message) = bridge.refusal("create_release", evil_repo).await;
    assert_eq!(code, "invalid_request");
    assert!(message.contains("repo_metadata.extra"), "{message}");
    assert_eq!(bridge.count("releases").await, 0, "nothing was created");

    bridge
        .ok(
            "create_release",
            ubuntu(
                "2014.1-5.0",
                &[],
                "rsync://10.20.0.2:/puppet/2014.1-5.0/manifests/",
            ),
        )
        .await;
    assert_eq!(bridge.count("releases").await, 1);
    bridge.stop().await;
}

async fn an_update_or_rollback_casting_sources_outside_the_list_is_refused(backend: Backend) {
    // The master's rsync defaults are outside the list: a release relying on them can be
    // registered (its own sources are fine) but not cast.
    let mut bridge = Bridge::start_with(backend, |s| {
        s.security.allowed_source_prefixes = vec![REPOS_ONLY.into()];
    })
    .await;
    let old = bridge
        .ok(
            "create_release",
            json!({"name": "Icehouse on Ubuntu 12.04", "version": "2014.1-5.0", "operating_system": "Ubuntu"}),
        )
        .await["id"]
        .clone();
    let new = bridge
        .ok(
            "create_release",
            json!({"name": "Icehouse on Ubuntu 12.04", "version": "2014.1.1-5.1", "operating_system": "Ubuntu",
                   "can_update_from_versions": ["2014.1-5.0"]}),
        )
        .await["id"]
        .clone();
    let cluster = bridge
        .ok(
            "create_cluster",
            json!({"name": "env", "release_id": old, "mode": "multinode", "status": "operational"}),
        )
        .await["id"]
        .clone();
    bridge
        .ok(
            "add_nodes",
            json!({"cluster_id": cluster, "nodes": [
                {"name": "ctrl", "fqdn": "ctrl.domain.tld", "roles": ["controller"]}]}),
        )
        .await;

    let verdict = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["code"], "invalid_request", "{verdict}");
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("puppet_modules_source"),
        "{verdict}"
    );
    let (code, message) = bridge
        .refusal(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    assert_eq!(code, "invalid_request", "{message}");
    assert!(message.contains("allowed_source_prefixes"), "{message}");
    assert_eq!(bridge.count("tasks").await, 0, "no task was started");
    assert!(
        bridge
            .next_cast_within(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "no cast was sent"
    );

    // A failed upgrade, as left by an earlier bridge without the list: the rollback would cast
    // the old release with the master's defaults, and is refused too.
    bridge
        .execute(&format!(
            "UPDATE clusters SET status = 'upgrade_error', pending_release_id = {new} WHERE id = {cluster}"
        ))
        .await;
    let (code, message) = bridge
        .refusal("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(code, "invalid_request", "{message}");
    assert!(message.contains("puppet_modules_source"), "{message}");
    assert_eq!(bridge.count("tasks").await, 0);
    bridge.stop().await;
}

on_both_backends!(
    a_release_outside_the_list_is_refused_naming_the_field,
    an_update_or_rollback_casting_sources_outside_the_list_is_refused,
);
