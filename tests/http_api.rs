//! The HTTP API (Nailgun's paths) over the same services as the AMQP requests, on both
//! backends: a whole upgrade driven over HTTP, every error answer, health, readiness, metrics.

mod common;

use common::{load_fixture, release_id, Backend, Bridge};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

async fn call(
    http: &Client,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn an_upgrade_driven_over_http(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let http = Client::new();
    let base = bridge.http.clone();
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/patching-demo.json")).expect("fixture");

    let mut ids = Vec::new();
    for release in fixture["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .take(2)
    {
        let (status, created) = call(
            &http,
            Method::POST,
            format!("{base}/api/releases/"),
            Some(release.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_i64().expect("id"));
    }
    let (status, body) = call(
        &http,
        Method::POST,
        format!("{base}/api/releases/"),
        Some(fixture["releases"][0].clone()),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    let (status, listed) = call(&http, Method::GET, format!("{base}/api/releases/"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed[1]["versions"]["can_update_from"][0]["release_id"].as_i64(),
        Some(ids[0])
    );
    assert_eq!(
        listed[1]["versions"]["can_update_from"][0]["operation"],
        "upgrade"
    );

    let (status, cluster) = call(
        &http,
        Method::POST,
        format!("{base}/api/clusters/"),
        Some(json!({"name": "env-http", "release_id": ids[0], "mode": "multinode", "status": "operational"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cluster}");
    let cluster_id = cluster["id"].as_i64().expect("id");
    let (status, nodes) = call(
        &http,
        Method::POST,
        format!("{base}/api/clusters/{cluster_id}/nodes/"),
        Some(json!([{"name": "node-1", "fqdn": "node-1.domain.tld", "roles": ["controller"]},
                    {"name": "node-2", "fqdn": "node-2.domain.tld", "roles": ["compute", "mongo"]}])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{nodes}");
    assert_eq!(nodes.as_array().map(Vec::len), Some(2));

    let (status, pending) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster_id}/"),
        Some(json!({"pending_release_id": ids[1]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["pending_release_id"].as_i64(), Some(ids[1]));
    assert_eq!(
        pending["status"], "operational",
        "setting the pending release starts nothing"
    );

    let (status, verdict) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster_id}/update/?dry_run=true"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (verdict["allowed"].as_bool(), verdict["operation"].as_str()),
        (Some(true), Some("upgrade"))
    );
    assert_eq!(bridge.count("tasks").await, 0, "a dry run changes nothing");

    let (status, task) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster_id}/update/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    let cast = bridge.next_cast().await;
    assert_eq!(cast["args"]["task_uuid"], uuid.as_str());
    let mut expected = verdict["message"].clone();
    expected["args"]["task_uuid"] = json!(uuid);
    assert_eq!(cast, expected, "the dry run showed the exact cast");

    let (status, seen) = call(
        &http,
        Method::GET,
        format!("{base}/api/tasks/{uuid}/"),
        None,
    )
    .await;
    assert_eq!(
        (status, seen["status"].as_str()),
        (StatusCode::OK, Some("running"))
    );

    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    let done = bridge
        .cluster_until(cluster_id, "operational", |c| c["status"] == "operational")
        .await;
    assert_eq!(done["release_id"].as_i64(), Some(ids[1]));
    let (status, shown) = call(
        &http,
        Method::GET,
        format!("{base}/api/clusters/{cluster_id}/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["latest_task"]["status"], "ready");
    assert_eq!(shown["nodes"].as_array().map(Vec::len), Some(2));

    let (status, notes) = call(
        &http,
        Method::GET,
        format!("{base}/api/notifications/?cluster_id={cluster_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(notes[0]["topic"], "done");
    let note_id = notes[0]["id"].as_i64().expect("id");
    let (status, marked) = call(
        &http,
        Method::PUT,
        format!("{base}/api/notifications/{note_id}/"),
        Some(json!({"status": "read"})),
    )
    .await;
    assert_eq!(
        (status, marked["status"].as_str()),
        (StatusCode::OK, Some("read"))
    );
    let (_, unread) = call(
        &http,
        Method::GET,
        format!("{base}/api/notifications/?status=unread&cluster_id={cluster_id}"),
        None,
    )
    .await;
    assert_eq!(unread.as_array().map(Vec::len), Some(0));
    let (status, added) = call(
        &http,
        Method::POST,
        format!("{base}/api/notifications/"),
        Some(
            json!({"topic": "warning", "message": "maintenance tonight", "cluster_id": cluster_id}),
        ),
    )
    .await;
    assert_eq!(
        (status, added["status"].as_str()),
        (StatusCode::CREATED, Some("unread"))
    );

    // Pages: newest first, one at a time, each older than the last id of the one before.
    let (_, everything) = call(
        &http,
        Method::GET,
        format!("{base}/api/notifications/?cluster_id={cluster_id}"),
        None,
    )
    .await;
    let all_ids: Vec<i64> = ids_of(&everything);
    assert!(all_ids.len() >= 2, "{everything}");
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = call(
            &http,
            Method::GET,
            format!("{base}/api/notifications/?cluster_id={cluster_id}&limit=1{cursor}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page_ids = ids_of(&page);
        assert!(page_ids.len() <= 1, "{page}");
        let Some(last) = page_ids.last() else { break };
        cursor = format!("&before_id={last}");
        paged.extend(page_ids);
    }
    assert_eq!(
        paged, all_ids,
        "the pages hold every notification once, in order"
    );
    let (_, clusters_page) = call(
        &http,
        Method::GET,
        format!("{base}/api/clusters/?after_id={}&limit=5", cluster_id - 1),
        None,
    )
    .await;
    assert_eq!(
        ids_of(&clusters_page).first(),
        Some(&cluster_id),
        "{clusters_page}"
    );
    let (_, past_the_end) = call(
        &http,
        Method::GET,
        format!("{base}/api/clusters/?after_id={cluster_id}"),
        None,
    )
    .await;
    assert_eq!(ids_of(&past_the_end), Vec::<i64>::new());
    bridge.stop().await;
}

fn ids_of(page: &Value) -> Vec<i64> {
    page.as_array()
        .map(|rows| rows.iter().filter_map(|r| r["id"].as_i64()).collect())
        .unwrap_or_default()
}

async fn http_errors_carry_the_contract_codes(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    // A fresh connection per request: the server closes a connection whose request body it
    // refused unread (413), and a pooled client may send the next request on it as it closes.
    let http = Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client");
    let base = bridge.http.clone();
    let centos = release_id(&releases, "Icehouse on CentOS 6.5", "2014.1.1-5.0.2");
    let patch = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let unused = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.1");
    let tasks_before = bridge.count("tasks").await;

    let cases: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::GET,
            format!("{base}/api/clusters/999/"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("{base}/api/clusters/abc/"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/releases/999/"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("{base}/api/tasks/no-such-task/"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            format!("{base}/api/nowhere"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("{base}/api/releases/"),
            Some(json!({"name": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            format!("{base}/api/clusters/"),
            Some(json!({"name": "y", "release_id": 999, "mode": "multinode"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            format!("{base}/api/clusters/{cluster}/update/"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::PUT,
            format!("{base}/api/clusters/{cluster}/"),
            Some(json!({"pending_release_id": centos})),
            StatusCode::BAD_REQUEST,
            "incompatible_release",
        ),
        (
            Method::PUT,
            format!("{base}/api/clusters/{cluster}/rollback/"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_state",
        ),
        (
            Method::POST,
            format!("{base}/api/clusters/{cluster}/nodes/"),
            Some(json!([])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/notifications/?status=maybe"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::PUT,
            format!("{base}/api/notifications/999/"),
            Some(json!({"status": "read"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            format!("{base}/api/clusters/{cluster}/update/?dry_run=maybe"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/notifications/?cluster_id=one"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/notifications/?limit=0"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/clusters/?limit=1001"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/api/audit/?before_id=x"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::DELETE,
            format!("{base}/api/clusters/"),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
        (
            Method::PATCH,
            format!("{base}/api/clusters/{cluster}/update/"),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
        (
            Method::POST,
            format!("{base}/healthz"),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{base}/assets/nothing.js"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("{base}/api/releases/"),
            Some(json!({"name": "big", "description": "x".repeat(2 * 1024 * 1024)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
    ];
    for (method, url, body, status, code) in cases {
        let (got, answer) = call(&http, method.clone(), url.clone(), body).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{method} {url}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    for body in ["{oops", "", "[1, 2", "\u{0}"] {
        let not_json = http
            .post(format!("{base}/api/releases/"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(not_json.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let answer: Value = not_json.json().await.expect("a JSON error body");
        assert_eq!(error_code(&answer), "invalid_request", "{body:?}: {answer}");
    }
    let wrong_method = http
        .delete(format!("{base}/api/clusters/"))
        .send()
        .await
        .expect("send");
    let allow = wrong_method
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );

    // A dry run with no pending release is a verdict, not an error (contract section 6).
    let (status, verdict) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster}/update/?dry_run=true"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(
        (verdict["allowed"].as_bool(), verdict["code"].as_str()),
        (Some(false), Some("invalid_request")),
        "{verdict}"
    );
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("pending"),
        "{verdict}"
    );
    let (status, answer) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/999/update/?dry_run=true"),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        bridge.count("tasks").await,
        tasks_before,
        "no refusal changed anything"
    );

    let (status, _) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster}/"),
        Some(json!({"pending_release_id": patch})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster}/update/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, answer) = call(
        &http,
        Method::PUT,
        format!("{base}/api/clusters/{cluster}/update/"),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "conflict")
    );
    let (status, answer) = call(
        &http,
        Method::DELETE,
        format!("{base}/api/releases/{patch}/"),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "conflict"),
        "a pending release is in use"
    );
    let (status, _) = call(
        &http,
        Method::DELETE,
        format!("{base}/api/releases/{unused}/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &http,
        Method::GET,
        format!("{base}/api/releases/{unused}/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bridge.stop().await;
}

async fn health_readiness_and_metrics(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let http = Client::new();
    let base = bridge.http.clone();
    let (status, live) = call(&http, Method::GET, format!("{base}/healthz"), None).await;
    assert_eq!(
        (status, live["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, ready) = call(&http, Method::GET, format!("{base}/readyz"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ready,
        json!({"ready": true, "database": true, "broker": true, "relay": true,
               "requests": true, "replies": true, "watchdog": true, "not_ready": {}})
    );

    bridge.ok("list_releases", json!({})).await;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.expect("text");
    for name in [
        "astute_bridge_requests_total",
        "astute_bridge_outbox_backlog",
        "astute_bridge_broker_connected 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    bridge.stop().await;
}

on_both_backends!(
    an_upgrade_driven_over_http,
    http_errors_carry_the_contract_codes,
    health_readiness_and_metrics,
);
