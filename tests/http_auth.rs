//! Bearer tokens on the HTTP API: 401 without a valid token, 403 for a reader changing
//! something, both in the contract's JSON error body; open probes and page; `/metrics` behind a
//! token when asked; an open API on a non-loopback address refused at start.

mod common;

use astute_bridge::app::Server;
use astute_bridge::config::{ApiToken, Role, Settings, TokenList};
use common::{Backend, Bridge};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const OPERATOR: &str = "operator-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

fn tokens() -> TokenList {
    TokenList(vec![
        ApiToken {
            name: "ops".into(),
            role: Role::Operator,
            token: OPERATOR.to_owned().into(),
        },
        ApiToken {
            name: "grafana".into(),
            role: Role::Reader,
            token: READER.to_owned().into(),
        },
    ])
}

/// One call; the answer's status, `WWW-Authenticate` and JSON body (Null when not JSON).
async fn call(
    http: &Client,
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = http.request(method, url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_decide_who_may_read_and_change() {
    let bridge = Bridge::start_with(Backend::Sqlite, |s| {
        s.http.tokens = tokens();
        s.http.metrics_require_token = true;
    })
    .await;
    let http = Client::new();
    let base = bridge.http.clone();
    let releases = format!("{base}/api/releases/");
    let operator = format!("Bearer {OPERATOR}");
    let reader = format!("Bearer {READER}");
    let release =
        json!({"name": "Icehouse", "version": "2014.1.1-5.1", "operating_system": "Ubuntu"});

    // No token, a wrong one, one in another scheme, one with a byte changed, a prefix of a
    // real one: 401 with the challenge and the contract's body.
    let mut near_miss = OPERATOR.to_owned();
    near_miss.replace_range(..1, "O");
    for authorization in [
        None,
        Some("Bearer not-a-token-at-all-0000".to_owned()),
        Some(format!("Basic {OPERATOR}")),
        Some(format!("Bearer {near_miss}")),
        Some(format!("Bearer {}", &OPERATOR[..OPERATOR.len() - 1])),
        Some("Bearer ".to_owned()),
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, challenge, body) = call(
                &http,
                method.clone(),
                &releases,
                authorization.as_deref(),
                Some(release.clone()),
            )
            .await;
            assert_eq!(
                (status, code(&body), challenge.as_deref()),
                (StatusCode::UNAUTHORIZED, "unauthorized", Some("Bearer")),
                "{method} with {authorization:?}: {body}"
            );
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    }
    // An unknown path says nothing about what exists until the caller is known.
    let (status, _, body) = call(
        &http,
        Method::GET,
        &format!("{base}/api/nowhere/"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _, body) = call(
        &http,
        Method::GET,
        &format!("{base}/api/nowhere/"),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // A reader reads, and is refused every change with 403; nothing is created.
    let (status, _, body) = call(&http, Method::GET, &releases, Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (method, url) in [
        (Method::POST, releases.clone()),
        (Method::PUT, format!("{base}/api/clusters/1/update/")),
        (
            Method::PUT,
            format!("{base}/api/clusters/1/update/?dry_run=true"),
        ),
        (Method::DELETE, format!("{base}/api/releases/1/")),
        (Method::PATCH, releases.clone()),
    ] {
        let (status, _, body) = call(
            &http,
            method.clone(),
            &url,
            Some(&reader),
            Some(release.clone()),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {url}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("grafana"),
            "names the token's holder: {body}"
        );
    }
    assert_eq!(
        bridge.count("releases").await,
        0,
        "refused changes change nothing"
    );

    // The operator changes things (the scheme's case does not matter).
    let (status, _, body) = call(
        &http,
        Method::POST,
        &releases,
        Some(&format!("bearer {OPERATOR}")),
        Some(release.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = call(&http, Method::GET, &releases, Some(&operator), None).await;
    assert_eq!(
        (status, body[0]["name"].as_str()),
        (StatusCode::OK, Some("Icehouse"))
    );

    // The audit trail names the token's holder, not `anonymous`; a reader may read it.
    let (status, _, trail) = call(
        &http,
        Method::GET,
        &format!("{base}/api/audit/"),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let rows = trail.as_array().expect("audit rows");
    let created: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|row| row["method"] == "create_release")
        .map(|row| {
            (
                row["actor"].as_str().unwrap_or_default(),
                row["transport"].as_str().unwrap_or_default(),
                row["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(created, [("ops", "http", "ok")], "{trail}");

    // Probes and the page stay open; /metrics asks for any valid token here.
    for path in ["/healthz", "/readyz", "/", "/assets/app.js"] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let page = http.get(format!("{base}/")).send().await.expect("page");
    let policy = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"),
        "the page may not be framed by another site: {policy}"
    );
    let (status, _, body) = call(&http, Method::GET, &format!("{base}/metrics"), None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(READER)
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    bridge.stop().await;
}

fn public_settings(tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = Settings::load(None).expect("defaults");
    settings.http.bind = "0.0.0.0:0".into();
    tweak(&mut settings);
    settings
}

#[tokio::test]
async fn an_open_api_on_a_public_address_is_refused_at_start() {
    let err = match Server::bind(public_settings(|_| {})).await {
        Ok(_) => panic!("an open API on 0.0.0.0 must be refused"),
        Err(err) => err.to_string(),
    };
    for words in [
        "0.0.0.0",
        "without a token",
        "[http] tokens",
        "allow_anonymous",
    ] {
        assert!(err.contains(words), "{err}");
    }
    assert!(!err.is_empty());

    let with_tokens = Server::bind(public_settings(|s| s.http.tokens = tokens()))
        .await
        .expect("tokens make a public address fine");
    assert!(with_tokens.http_addr().is_some());
    let said_so = Server::bind(public_settings(|s| s.http.allow_anonymous = true))
        .await
        .expect("allow_anonymous says so explicitly");
    assert!(said_so.http_addr().is_some());
    let loopback = Server::bind(public_settings(|s| s.http.bind = "127.0.0.1:0".into()))
        .await
        .expect("loopback needs no token");
    assert!(loopback.http_addr().is_some());
}

/// What a page on another site could make a browser send to an open bridge on loopback: a
/// "simple" cross-site POST (text/plain or form body) and, after DNS rebinding, a request naming
/// the attacker's host. Both are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_to_an_open_bridge_are_refused() {
    let bridge = Bridge::start(Backend::Sqlite).await;
    let http = Client::new();
    let releases = format!("{}/api/releases/", bridge.http);
    let release = json!({"name": "Evil", "version": "1", "operating_system": "Ubuntu",
                         "puppet_manifests_source": "rsync://evil.example/m/"})
    .to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = http.post(&releases).body(release.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request"),
            "{content_type:?}: {body}"
        );
    }
    let rebound = http
        .post(&releases)
        .header("host", "evil.example:8000")
        .header("content-type", "application/json")
        .body(release.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert_eq!(bridge.count("releases").await, 0, "nothing was created");

    let allowed = http
        .post(&releases)
        .header("content-type", "application/json; charset=utf-8")
        .header("host", "localhost")
        .body(release)
        .send()
        .await
        .expect("send");
    assert_eq!(allowed.status(), StatusCode::CREATED);
    bridge.stop().await;
}
