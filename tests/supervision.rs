//! Accidents an operator makes under a running bridge: a part that dies is noticed at once,
//! `/readyz` names it while the bridge starts again, the HTTP front keeps answering, and the
//! bridge heals with nothing lost.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{through, upstream_of, Proxy};
use common::{amqp_url, Backend, Bridge, PATIENCE};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// `/readyz` polled until `wanted` holds for (status, body); returns the body that matched.
async fn readiness_until(
    http: &Client,
    base: &str,
    what: &str,
    wanted: impl Fn(StatusCode, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if wanted(status, &body) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "/readyz never showed {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn metrics(http: &Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics text")
}

async fn a_dead_consumer_is_named_and_the_bridge_heals(backend: Backend) {
    let mut bridge = Bridge::start_supervised(backend, |_| {}).await;
    let http = Client::new();
    let base = bridge.http.clone();
    readiness_until(&http, &base, "ready at start", |s, _| s == StatusCode::OK).await;
    bridge.ok("list_releases", json!({})).await;

    // The request queue deleted under the bridge: the broker cancels its consumer.
    let queue = bridge.settings.amqp.request_queue.clone();
    bridge
        .channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the request queue");
    let down = readiness_until(&http, &base, "the request consumer not ready", |s, body| {
        s == StatusCode::SERVICE_UNAVAILABLE && body["requests"] == json!(false)
    })
    .await;
    let why = down["not_ready"]["requests"].as_str().unwrap_or_default();
    assert!(
        why.contains("cancelled the consumer"),
        "readiness says why: {down}"
    );
    // The front answers throughout.
    let live = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("/healthz answers while the bridge starts again");
    assert_eq!(live.status(), StatusCode::OK);

    // Back on its feet: the queue declared again, requests answered.
    readiness_until(&http, &base, "ready again", |s, _| s == StatusCode::OK).await;
    let release = bridge
        .ok(
            "create_release",
            json!({"name": "after the restart", "version": "2014.1-5.1", "operating_system": "Ubuntu"}),
        )
        .await;
    assert_eq!(release["name"], "after the restart");
    let text = metrics(&http, &base).await;
    assert!(
        text.contains("astute_bridge_restarts_total{cause=\"requests\"}"),
        "the restart is counted by cause:\n{text}"
    );
    bridge.stop().await;
}

async fn a_deleted_notifications_exchange_stops_nothing(backend: Backend) {
    let mut bridge = Bridge::start_supervised(backend, |_| {}).await;
    let http = Client::new();
    let base = bridge.http.clone();
    readiness_until(&http, &base, "ready at start", |s, _| s == StatusCode::OK).await;

    let exchange = bridge.settings.amqp.notifications_exchange.clone();
    bridge
        .channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete the notifications exchange");
    // Its notification goes to an exchange that is gone: the answer still comes.
    let stored = bridge
        .ok(
            "add_notification",
            json!({"topic": "discover", "message": "hello"}),
        )
        .await;
    assert_eq!(stored["message"], "hello");
    bridge
        .rows_until(
            "SELECT COUNT(*) AS n FROM outbox",
            "the outbox drained",
            |n| n == 0,
        )
        .await;
    // And the bridge goes on answering and is ready.
    let listed = bridge.ok("list_notifications", json!({})).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    readiness_until(&http, &base, "ready at the end", |s, _| s == StatusCode::OK).await;
    bridge.stop().await;
}

/// The broker lost under a running bridge: the front keeps answering, `/readyz` says the
/// broker is not ready until it is back, then the bridge serves again.
async fn a_lost_broker_is_named_by_readiness(backend: Backend) {
    let broker = Proxy::start(&upstream_of(&amqp_url(), 5672)).await;
    let mut bridge = Bridge::start_supervised(backend, |s| {
        s.amqp.url = through(s.amqp.url.expose(), &broker).into()
    })
    .await;
    let http = Client::new();
    let base = bridge.http.clone();
    readiness_until(&http, &base, "ready at start", |s, _| s == StatusCode::OK).await;

    broker.refuse();
    broker.cut();
    let down = readiness_until(&http, &base, "the broker not ready", |s, body| {
        s == StatusCode::SERVICE_UNAVAILABLE && body["broker"] == json!(false)
    })
    .await;
    assert!(
        down["not_ready"]["broker"].is_string(),
        "readiness says why: {down}"
    );
    let live = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("/healthz answers without a broker");
    assert_eq!(live.status(), StatusCode::OK);
    // Between sessions the API answers 503 with the contract's error body.
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let api = http
            .get(format!("{base}/api/releases/"))
            .send()
            .await
            .expect("the API answers without a broker");
        if api.status() == StatusCode::SERVICE_UNAVAILABLE {
            break api.json::<Value>().await.expect("a JSON error");
        }
        assert!(
            Instant::now() < deadline,
            "the API never said it is starting again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("broker"),
        "{body}"
    );

    broker.accept();
    readiness_until(&http, &base, "ready again", |s, _| s == StatusCode::OK).await;
    bridge.ok("list_releases", json!({})).await;
    bridge.stop().await;
}

on_both_backends!(
    a_lost_broker_is_named_by_readiness,
    a_dead_consumer_is_named_and_the_bridge_heals,
    a_deleted_notifications_exchange_stops_nothing,
);
