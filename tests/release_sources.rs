//! The package repositories and Puppet sources a cast carries (contract section 3), on SQLite and
//! on PostgreSQL: a release's own, else the master's defaults, else a refusal; what Astute 5.1
//! reads of them; and the validation of the sources a release is registered with.

mod common;

use common::{load_fixture, release_id, Backend, Bridge, TEST_MASTER_IP};
use reqwest::{Client, StatusCode};
use serde_json::{json, Map, Value};

const UBUNTU_502: (&str, &str) = ("Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
const CENTOS_502: (&str, &str) = ("Icehouse on CentOS 6.5", "2014.1.1-5.0.2");

/// Nailgun 5.1's defaults with the harness's master (`TEST_MASTER_IP`).
const DEFAULT_UBUNTU_REPO: &str = "http://10.20.0.2:8080/ubuntu/fuelweb/x86_64 precise main";
const DEFAULT_CENTOS_REPO: &str = "http://10.20.0.2:8080/centos/fuelweb/x86_64";
const DEFAULT_MODULES: &str = "rsync://10.20.0.2:/puppet/modules/";
const DEFAULT_MANIFESTS: &str = "rsync://10.20.0.2:/puppet/manifests/";

/// What Astute 5.1's `DeploymentEngine` does with a batch's sources (`lib/astute/
/// deployment_engine.rb`: `deploy`, `update_repo_sources`, `generate_repo_source`,
/// `upload_repo_source`, `target_os`, `sync_puppet_manifests`), reading only `part.first`, with
/// Ruby's truthiness: nil skips the repositories, but an empty object or string is present.
mod astute_5_1 {
    use serde_json::Value;

    /// The repository file Astute uploads (path, content), if it uploads one.
    pub type RepoFile = Option<(&'static str, String)>;

    /// What the batch whose first entry is `first` does on its nodes before Puppet runs: the
    /// repository file it writes and the rsync sources it syncs, or the error that fails the
    /// deploy.
    pub fn prepare(first: &Value) -> Result<(RepoFile, (String, String)), String> {
        let repo = match &first["repo_metadata"] {
            Value::Null => None,
            repos => Some(repo_file(first, repos)?),
        };
        Ok((repo, puppet_sources(first)?))
    }

    fn target_os(first: &Value) -> Result<&'static str, String> {
        match first["cobbler"]["profile"].as_str() {
            Some("centos-x86_64") => Ok("centos"),
            Some("ubuntu_1204_x86_64") => Ok("ubuntu"),
            other => Err(format!("Unknown system {other:?}")),
        }
    }

    fn repo_file(first: &Value, repos: &Value) -> Result<(&'static str, String), String> {
        let os = target_os(first)?;
        let repos = repos
            .as_object()
            .ok_or("undefined method `each' for repo_metadata")?;
        let mut lines = Vec::new();
        for (name, url) in repos {
            let url = url.as_str().ok_or("a repository URL is not a string")?;
            lines.push(match os {
                "ubuntu" => format!("deb {url}"),
                _ => format!(
                    "[{}]\nname={name}\nbaseurl={url}\ngpgcheck=0",
                    name.to_lowercase()
                ),
            });
        }
        let path = match os {
            "ubuntu" => "/etc/apt/sources.list",
            _ => "/etc/yum.repos.d/nailgun.repo",
        };
        Ok((path, lines.join("\n")))
    }

    /// `URI.parse(url).scheme`: the text before `:` when it is a scheme, else none.
    fn scheme(url: &str) -> String {
        match url.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                scheme.to_owned()
            }
            _ => String::new(),
        }
    }

    fn puppet_sources(first: &Value) -> Result<(String, String), String> {
        let master_ip = first["master_ip"].as_str().unwrap_or("");
        let source = |key: &str, default: String| match &first[key] {
            Value::Null => Ok(default),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("{key} is not a string: {other}")),
        };
        let modules = source(
            "puppet_modules_source",
            format!("rsync://{master_ip}:/puppet/modules/"),
        )?;
        let manifests = source(
            "puppet_manifests_source",
            format!("rsync://{master_ip}:/puppet/manifests/"),
        )?;
        let (a, b) = (scheme(&modules), scheme(&manifests));
        if a != b {
            return Err(format!(
                "Scheme for puppet_modules_source '{a}' and puppet_manifests_source '{b}' not equivalent!"
            ));
        }
        if a != "rsync" {
            return Err(format!("Unknown scheme '{a}' in {modules}"));
        }
        Ok((modules, manifests))
    }
}

/// Checks a cast the way Astute 5.1 uses it: whichever entry heads a batch, the repository
/// file is written with one usable repository per line and the Puppet sources sync over rsync.
/// Returns what the nodes get (path, content, modules, manifests).
fn astute_prepares(cast: &Value) -> (String, String, String, String) {
    let entries = cast["args"]["deployment_info"]
        .as_array()
        .expect("deployment_info");
    assert!(!entries.is_empty());
    let mut seen = None;
    for entry in entries {
        let (repo, (modules, manifests)) =
            astute_5_1::prepare(entry).unwrap_or_else(|e| panic!("Astute fails: {e}; {entry}"));
        let (path, content) = repo.expect("the cast lists repositories");
        assert!(!content.trim().is_empty(), "an empty {path}");
        for line in content.lines() {
            if path == "/etc/apt/sources.list" {
                let words: Vec<&str> = line.split_whitespace().collect();
                assert!(
                    words.len() >= 3 && words[0] == "deb",
                    "'{line}' is not a sources.list line"
                );
                assert!(
                    words[1].starts_with("http://") || words[1].starts_with("https://"),
                    "'{line}': APT cannot fetch that"
                );
            } else if let Some(url) = line.strip_prefix("baseurl=") {
                assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "{url}"
                );
                assert!(!url.contains(' '), "{url}");
            }
        }
        let prepared = (path.to_owned(), content, modules, manifests);
        // Any entry may head a batch: they must all say the same.
        if let Some(first) = &seen {
            assert_eq!(first, &prepared, "entries disagree on their sources");
        }
        seen = Some(prepared);
    }
    seen.expect("one entry at least")
}

fn entries(cast: &Value) -> Vec<Value> {
    cast["args"]["deployment_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// A release with only the fields given (no sources unless listed); returns its id.
async fn release(bridge: &mut Bridge, fields: Value) -> i64 {
    bridge.ok("create_release", fields).await["id"]
        .as_i64()
        .expect("release id")
}

/// An operational multinode environment on `release` with a controller and a compute node.
async fn environment(bridge: &mut Bridge, name: &str, release: i64) -> i64 {
    let cluster = bridge
        .ok(
            "create_cluster",
            json!({"name": name, "release_id": release, "mode": "multinode",
                   "status": "operational"}),
        )
        .await["id"]
        .as_i64()
        .expect("cluster id");
    bridge
        .ok(
            "add_nodes",
            json!({"cluster_id": cluster, "nodes": [
                {"name": format!("{name}-ctrl"), "fqdn": format!("{name}-ctrl.domain.tld"), "roles": ["controller"]},
                {"name": format!("{name}-comp"), "fqdn": format!("{name}-comp.domain.tld"), "roles": ["compute", "cinder"]}]}),
        )
        .await;
    cluster
}

/// The release as listed, to check it was not rewritten.
async fn listed(bridge: &mut Bridge, id: i64) -> Value {
    bridge
        .ok("list_releases", json!({}))
        .await
        .as_array()
        .expect("releases")
        .iter()
        .find(|r| r["id"].as_i64() == Some(id))
        .cloned()
        .expect("the release is listed")
}

async fn a_release_without_sources_is_cast_with_the_master_defaults(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    // As in the README: releases registered with no sources at all.
    let old = release(
        &mut bridge,
        json!({"name": "Icehouse on Ubuntu 12.04", "version": "2014.1-5.0", "operating_system": "Ubuntu"}),
    )
    .await;
    let new = release(
        &mut bridge,
        json!({"name": "Icehouse on Ubuntu 12.04.4", "version": "2014.1.1-5.0.2",
               "operating_system": "Ubuntu", "can_update_from_versions": ["2014.1-5.0"]}),
    )
    .await;
    let cluster = environment(&mut bridge, "env-1", old).await;
    assert!(DEFAULT_MODULES.contains(TEST_MASTER_IP));
    let expect_defaults = |cast: &Value| {
        assert_eq!(entries(cast).len(), 3);
        for e in entries(cast) {
            assert_eq!(
                e["repo_metadata"],
                json!({"nailgun": DEFAULT_UBUNTU_REPO}),
                "{e}"
            );
            assert_eq!(e["puppet_modules_source"], DEFAULT_MODULES);
            assert_eq!(e["puppet_manifests_source"], DEFAULT_MANIFESTS);
        }
        let (path, content, _, _) = astute_prepares(cast);
        assert_eq!(path, "/etc/apt/sources.list");
        assert_eq!(content, format!("deb {DEFAULT_UBUNTU_REPO}"));
    };

    // The dry run shows it, the update sends it.
    let verdict = bridge
        .ok(
            "check_update",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    expect_defaults(&verdict["message"]);
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], task["uuid"]);
    expect_defaults(&cast);
    let stored = bridge
        .stored_cast(task["uuid"].as_str().expect("uuid"))
        .await
        .expect("a cache");
    assert_eq!(
        serde_json::from_str::<Value>(&stored).expect("JSON"),
        cast,
        "the task keeps the cast as sent"
    );

    // The rollback of the failed upgrade redeploys the old release: with the defaults too.
    bridge
        .reply(json!({"task_uuid": task["uuid"], "status": "error", "error": "Puppet failed"}))
        .await;
    bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let rollback = bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], rollback["uuid"]);
    expect_defaults(&cast);
    assert_eq!(entries(&cast)[0]["openstack_version"], "2014.1-5.0");

    // The stored releases are not rewritten.
    for id in [old, new] {
        let stored = listed(&mut bridge, id).await;
        assert_eq!(stored["repo_metadata"], json!({}), "{stored}");
        assert_eq!(stored["puppet_modules_source"], "", "{stored}");
        assert_eq!(stored["puppet_manifests_source"], "", "{stored}");
    }
    bridge.stop().await;
}

async fn each_missing_source_falls_back_on_its_own(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| {
        s.master.default_puppet.modules = "rsync://{master_ip}:/puppet/{version}/modules/".into();
    })
    .await;
    let own_repo = "http://mirror.domain.tld/centos/6.5/x86_64";
    let old = release(
        &mut bridge,
        json!({"name": "Icehouse on CentOS 6.5", "version": "2014.1-5.0", "operating_system": "CentOS"}),
    )
    .await;
    let new = release(
        &mut bridge,
        json!({"name": "Icehouse on CentOS 6.5", "version": "2014.1.1-5.0.2",
               "operating_system": "CentOS", "can_update_from_versions": ["2014.1-5.0"],
               "repo_metadata": {"updates": own_repo}}),
    )
    .await;
    let cluster = environment(&mut bridge, "env-centos", old).await;
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": new}),
        )
        .await;
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], task["uuid"]);
    for e in entries(&cast) {
        assert_eq!(e["repo_metadata"], json!({"updates": own_repo}), "its own");
        assert_eq!(
            e["puppet_modules_source"], "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/",
            "the master's template, with the deployed version"
        );
        assert_eq!(e["puppet_manifests_source"], DEFAULT_MANIFESTS);
    }
    let (path, content, _, _) = astute_prepares(&cast);
    assert_eq!(path, "/etc/yum.repos.d/nailgun.repo");
    assert_eq!(
        content,
        format!("[updates]\nname=updates\nbaseurl={own_repo}\ngpgcheck=0")
    );

    // CentOS's default repository, on the rollback to the release without any.
    bridge
        .reply(json!({"task_uuid": task["uuid"], "status": "error"}))
        .await;
    bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    bridge
        .ok("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    let cast = bridge.next_cast().await;
    for e in entries(&cast) {
        assert_eq!(e["repo_metadata"], json!({"nailgun": DEFAULT_CENTOS_REPO}));
        assert_eq!(
            e["puppet_modules_source"],
            "rsync://10.20.0.2:/puppet/2014.1-5.0/modules/"
        );
    }
    astute_prepares(&cast);
    bridge.stop().await;
}

async fn an_update_cast_gives_astute_5_1_what_it_reads(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let target = release_id(&releases, UBUNTU_502.0, UBUNTU_502.1);
    bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": target}),
        )
        .await;
    let cast = bridge.next_cast().await;
    let (path, content, modules, manifests) = astute_prepares(&cast);
    assert_eq!(path, "/etc/apt/sources.list");
    assert_eq!(
        content,
        "deb http://10.20.0.2:8080/2014.1.1-5.0.2/ubuntu/x86_64 precise main"
    );
    assert_eq!(modules, "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/");
    assert_eq!(
        manifests,
        "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/manifests/"
    );

    // The emulation is strict enough to catch the casts this rule forbids.
    let mut empty = entries(&cast)[0].clone();
    empty["repo_metadata"] = json!({});
    empty["puppet_modules_source"] = json!("");
    empty["puppet_manifests_source"] = json!("");
    let err = astute_5_1::prepare(&empty).unwrap_err();
    assert!(err.contains("Unknown scheme ''"), "{err}");
    let mut mixed = entries(&cast)[0].clone();
    mixed["puppet_manifests_source"] = json!("http://10.20.0.2/puppet/manifests/");
    assert!(astute_5_1::prepare(&mixed)
        .unwrap_err()
        .contains("not equivalent"));
    empty["puppet_modules_source"] = json!(DEFAULT_MODULES);
    empty["puppet_manifests_source"] = json!(DEFAULT_MANIFESTS);
    let (repo, _) = astute_5_1::prepare(&empty).expect("prepared");
    assert_eq!(
        repo,
        Some(("/etc/apt/sources.list", String::new())),
        "an empty object still writes the file, empty"
    );
    bridge.stop().await;
}

async fn without_a_master_a_release_without_sources_is_refused(backend: Backend) {
    let mut bridge = Bridge::start_with(backend, |s| s.master.ip = String::new()).await;
    let (fixture_cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let bare = release(
        &mut bridge,
        json!({"name": "Icehouse on Ubuntu 12.04.4", "version": "2014.1.1-5.0.3",
               "operating_system": "Ubuntu", "can_update_from_versions": ["2014.1-5.0"],
               "puppet_manifests_source": "rsync://10.20.0.2:/puppet/2014.1.1-5.0.3/manifests/"}),
    )
    .await;
    let update = json!({"cluster_id": fixture_cluster, "release_id": bare});
    let names_missing = |reason: &str| {
        assert!(reason.contains("repo_metadata"), "{reason}");
        assert!(reason.contains("puppet_modules_source"), "{reason}");
        assert!(
            !reason.contains("puppet_manifests_source"),
            "the release has that one: {reason}"
        );
        assert!(reason.contains("[master] ip"), "{reason}");
        assert!(reason.contains(&format!("release {bare}")), "{reason}");
    };

    let verdict = bridge.ok("check_update", update.clone()).await;
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["code"], "incompatible_release");
    assert_eq!(verdict["message"], Value::Null);
    names_missing(text(&verdict["reason"]));
    let (code, reason) = bridge.refusal("update_cluster", update).await;
    assert_eq!(code, "incompatible_release");
    names_missing(&reason);
    // Nor can it be made the pending release, since that update could never start.
    let http = Client::new();
    let response = http
        .put(format!("{}/api/clusters/{fixture_cluster}/", bridge.http))
        .json(&json!({"pending_release_id": bare}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "incompatible_release");
    let seen = bridge
        .ok("get_cluster", json!({"cluster_id": fixture_cluster}))
        .await;
    assert_eq!(seen["status"], "operational");
    assert_eq!(seen["pending_release_id"], Value::Null);
    assert_eq!(bridge.count("tasks").await, 0);

    // Releases with their own sources need no master.
    let target = release_id(&releases, UBUNTU_502.0, UBUNTU_502.1);
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": fixture_cluster, "release_id": target}),
        )
        .await;
    let cast = bridge.next_cast().await;
    assert_eq!(
        cast["args"]["task_uuid"], task["uuid"],
        "the first cast is this one: the refusals sent none"
    );
    astute_prepares(&cast);

    // A rollback to a release without sources is refused too, and changes nothing.
    let old = release(
        &mut bridge,
        json!({"name": "Bare", "version": "2014.1-5.0", "operating_system": "Ubuntu"}),
    )
    .await;
    let with_sources = release(
        &mut bridge,
        json!({"name": "Bare", "version": "2014.1.1-5.0.2", "operating_system": "Ubuntu",
               "can_update_from_versions": ["2014.1-5.0"],
               "repo_metadata": {"nailgun": "http://10.20.0.2:8080/2014.1.1-5.0.2/ubuntu/x86_64 precise main"},
               "puppet_modules_source": "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/",
               "puppet_manifests_source": "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/manifests/"}),
    )
    .await;
    let cluster = environment(&mut bridge, "env-bare", old).await;
    let failing = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": with_sources}),
        )
        .await;
    bridge.next_cast().await;
    bridge
        .reply(json!({"task_uuid": failing["uuid"], "status": "error"}))
        .await;
    let failed = bridge
        .cluster_until(cluster, "upgrade_error", |c| c["status"] == "upgrade_error")
        .await;
    let tasks = bridge.count("tasks").await;
    let (code, reason) = bridge
        .refusal("rollback_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(code, "incompatible_release");
    assert!(
        reason.contains(&format!("release {old}"))
            && reason.contains("repo_metadata, puppet_modules_source, puppet_manifests_source"),
        "{reason}"
    );
    assert_eq!(bridge.count("tasks").await, tasks, "no task was created");
    let after = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await;
    assert_eq!(after["status"], "upgrade_error");
    assert_eq!(after["nodes"], failed["nodes"], "the nodes are untouched");
    assert_eq!(after["latest_task"]["uuid"], failing["uuid"]);
    bridge.stop().await;
}

async fn create_release_validates_the_sources_it_is_given(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let base = |os: &str, extra: Value| {
        let mut fields: Map<String, Value> =
            json!({"name": "Checked", "version": "1", "operating_system": os})
                .as_object()
                .cloned()
                .unwrap_or_default();
        fields.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(fields)
    };
    let refused = [
        (
            "Ubuntu",
            json!({"puppet_modules_source": "http://10.20.0.2/puppet/modules/"}),
            "puppet_modules_source",
        ),
        (
            "Ubuntu",
            json!({"puppet_manifests_source": "ftp://10.20.0.2/puppet/manifests/"}),
            "puppet_manifests_source",
        ),
        (
            "Ubuntu",
            json!({"puppet_manifests_source": "/etc/puppet/manifests"}),
            "puppet_manifests_source",
        ),
        (
            "Ubuntu",
            json!({"puppet_modules_source": "   "}),
            "puppet_modules_source",
        ),
        (
            "Ubuntu",
            json!({"repo_metadata": {"nailgun": "rsync://10.20.0.2:/repo precise main"}}),
            "repo_metadata.nailgun",
        ),
        (
            "Ubuntu",
            json!({"repo_metadata": {"nailgun": "http://10.20.0.2:8080/ubuntu"}}),
            "repo_metadata.nailgun",
        ),
        (
            "Ubuntu",
            json!({"repo_metadata": {"nailgun": 7}}),
            "repo_metadata.nailgun",
        ),
        (
            "Ubuntu",
            json!({"repo_metadata": {"my repo": DEFAULT_UBUNTU_REPO}}),
            "repo_metadata",
        ),
        (
            "CentOS",
            json!({"repo_metadata": {"nailgun": DEFAULT_UBUNTU_REPO}}),
            "repo_metadata.nailgun",
        ),
        (
            "CentOS",
            json!({"repo_metadata": {"nailgun": "file:///srv/centos"}}),
            "repo_metadata.nailgun",
        ),
    ];
    for (os, extra, field) in refused {
        let args = base(os, extra);
        let (code, message) = bridge.refusal("create_release", args.clone()).await;
        assert_eq!(code, "invalid_request", "{args}");
        assert!(message.starts_with(field), "{args}: {message}");
    }
    let (code, _) = bridge
        .refusal(
            "create_release",
            base(
                "Ubuntu",
                json!({"repo_metadata": ["http://10.20.0.2/ubuntu precise main"]}),
            ),
        )
        .await;
    assert_eq!(code, "invalid_request", "repo_metadata must be an object");
    assert_eq!(bridge.count("releases").await, 0, "nothing was stored");

    // Over HTTP alike.
    let response = Client::new()
        .post(format!("{}/api/releases/", bridge.http))
        .json(&base(
            "Ubuntu",
            json!({"puppet_modules_source": "https://10.20.0.2/modules/"}),
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(text(&body["error"]["message"]).contains("puppet_modules_source"));
    assert_eq!(bridge.count("releases").await, 0);

    // Usable sources, and none (empty values mean none), are accepted as given.
    let (_, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let centos = listed(
        &mut bridge,
        release_id(&releases, CENTOS_502.0, CENTOS_502.1),
    )
    .await;
    assert_eq!(
        centos["repo_metadata"]["nailgun"],
        "http://10.20.0.2:8080/2014.1.1-5.0.2/centos/x86_64"
    );
    let empty = release(
        &mut bridge,
        base("Ubuntu", json!({"repo_metadata": {}, "puppet_modules_source": "", "puppet_manifests_source": ""})),
    )
    .await;
    assert_eq!(
        listed(&mut bridge, empty).await["puppet_modules_source"],
        ""
    );
    release(
        &mut bridge,
        json!({"name": "Mirrors", "version": "1", "operating_system": "Ubuntu",
               "repo_metadata": {"nailgun": DEFAULT_UBUNTU_REPO,
                                 "security": "https://mirror.domain.tld/ubuntu precise-security main universe"},
               "puppet_modules_source": DEFAULT_MODULES}),
    )
    .await;
    bridge.stop().await;
}

on_both_backends!(
    a_release_without_sources_is_cast_with_the_master_defaults,
    each_missing_source_falls_back_on_its_own,
    an_update_cast_gives_astute_5_1_what_it_reads,
    without_a_master_a_release_without_sources_is_refused,
    create_release_validates_the_sources_it_is_given,
);
