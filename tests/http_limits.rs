//! The HTTP API's limits and its description: a request that takes too long is answered 408, one
//! over the concurrency limit 503, both in the contract's error body; `/api/openapi.json` lists
//! every route of contract section 6 and every route it lists answers.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{Backend, Bridge, PATIENCE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the head of a POST whose body never comes, so the request stays in progress.
async fn stalled_post(base: &str, path: &str) -> TcpStream {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    stream
}

/// Reads one answer off a raw connection: its status and JSON body.
async fn read_answer(stream: &mut TcpStream) -> (u16, Value) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "closed before answering: {buffer:?}");
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().expect("length"))
            })
            .expect("content-length");
        if body.len() >= length {
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status");
            return (status, serde_json::from_str(&body[..length]).expect("JSON"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_extra_ones_are_turned_away() {
    let bridge = Bridge::start_with(Backend::Sqlite, |s| {
        s.http.request_timeout_secs = 1;
        s.http.max_concurrent_requests = 1;
    })
    .await;
    let http = Client::new();
    let base = bridge.http.clone();
    let started = Instant::now();
    let mut stalled = stalled_post(&base, "/api/releases/").await;

    // Once the stalled request holds the only permit, the next one is answered 503 at once.
    let deadline = Instant::now() + PATIENCE;
    let busy = loop {
        let response = http
            .get(format!("{base}/api/clusters/"))
            .send()
            .await
            .expect("send");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response.json::<Value>().await.expect("a JSON body");
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(Instant::now() < deadline, "the limit never applied");
    };
    assert_eq!(busy["error"]["code"], "internal", "{busy}");
    assert!(
        busy["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_concurrent_requests"),
        "{busy}"
    );
    // Probes are not counted.
    let probe = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("probe");
    assert_eq!(probe.status(), StatusCode::OK);

    // The stalled request ends at the timeout, in the contract's shape; nothing was created.
    let (status, body) = read_answer(&mut stalled).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (408, Some("internal")),
        "{body}"
    );
    assert!(
        started.elapsed().as_millis() >= 1000,
        "not before the timeout"
    );
    assert_eq!(bridge.count("releases").await, 0);

    // Its permit is back.
    let response = http
        .get(format!("{base}/api/clusters/"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    bridge.stop().await;
}

/// Contract section 6's routes (the page's `/` and `/assets/*` aside).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/releases/"),
    ("post", "/api/releases/"),
    ("get", "/api/releases/{id}/"),
    ("delete", "/api/releases/{id}/"),
    ("get", "/api/clusters/"),
    ("post", "/api/clusters/"),
    ("get", "/api/clusters/{id}/"),
    ("put", "/api/clusters/{id}/"),
    ("put", "/api/clusters/{id}/update/"),
    ("put", "/api/clusters/{id}/rollback/"),
    ("post", "/api/clusters/{id}/nodes/"),
    ("get", "/api/tasks/{uuid}/"),
    ("get", "/api/notifications/"),
    ("post", "/api/notifications/"),
    ("put", "/api/notifications/{id}/"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

/// Routes the bridge adds beyond the contract's.
const BRIDGE_ROUTES: &[(&str, &str)] = &[("get", "/api/audit/")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_every_listed_route_answers() {
    let bridge = Bridge::start(Backend::Sqlite).await;
    let http = Client::new();
    let base = bridge.http.clone();
    let doc: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        doc["openapi"].as_str().map(|v| &v[..2]),
        Some("3."),
        "{doc}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let contract: BTreeSet<(String, String)> = CONTRACT_ROUTES
        .iter()
        .chain(BRIDGE_ROUTES)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, contract,
        "the document is the contract's routes and the bridge's own"
    );
    assert_eq!(
        doc,
        json!(astute_bridge::http::openapi()),
        "served as generated"
    );

    for (method, path) in &documented {
        let url = format!(
            "{base}{}",
            path.replace("{id}", "1").replace("{uuid}", "no-such-task")
        );
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = http
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        let status = response.status();
        let text = response.text().await.expect("text");
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url}: {text}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && text.contains("no such path")),
            "{method} {url} is documented but not routed: {text}"
        );
        assert!(!status.is_server_error(), "{method} {url}: {text}");
    }
    bridge.stop().await;
}
