//! Secrets stay secret: the binary runs with a PostgreSQL URL carrying a real role's password,
//! API tokens, and (second run) a broker URL whose password the broker refuses; every output —
//! stdout, stderr at debug level, `/metrics`, `/readyz`, `/api/openapi.json` and the answers,
//! failing ones included — is searched for them.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use common::{amqp_url, fresh_prefix, postgres_admin_url, PATIENCE, START_POSTGRES};
use reqwest::{Client, Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");

fn secret(what: &str) -> String {
    format!("{what}{}", uuid::Uuid::new_v4().simple())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A PostgreSQL role with a password and a database it owns; dropped by `drop_role`.
async fn role_with_password(name: &str, password: &str) -> (DatabaseConnection, String) {
    let admin = Database::connect(postgres_admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable ({e}); start it with: {START_POSTGRES}")
        });
    admin
        .execute_unprepared(&format!(
            r#"CREATE ROLE "{name}" LOGIN PASSWORD '{password}'"#
        ))
        .await
        .expect("create the role");
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{name}" OWNER "{name}""#))
        .await
        .expect("create its database");
    let mut url = url::Url::parse(&postgres_admin_url()).expect("TEST_POSTGRES_URL");
    url.set_username(name).expect("user");
    url.set_password(Some(password)).expect("password");
    url.set_path(name);
    (admin, url.to_string())
}

async fn drop_role(admin: &DatabaseConnection, name: &str) {
    for sql in [
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
        format!(r#"DROP ROLE IF EXISTS "{name}""#),
    ] {
        admin.execute_unprepared(&sql).await.expect("clean up");
    }
}

/// `serve` with its stdout and stderr collected.
struct Serve {
    child: Child,
    readers: Vec<JoinHandle<()>>,
    output: Arc<Mutex<String>>,
    base: String,
}

impl Serve {
    fn start(prefix: &str, vars: &[(&str, String)]) -> Serve {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env("RUST_LOG", "debug")
            .env("ASTUTE_BRIDGE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in [
            "NAILY_EXCHANGE",
            "NAILY_QUEUE",
            "NAILY_SERVICE_EXCHANGE",
            "NAILGUN_EXCHANGE",
            "NAILGUN_QUEUE",
            "DEAD_LETTER_QUEUE",
            "REQUEST_EXCHANGE",
            "REQUEST_QUEUE",
            "NOTIFICATIONS_EXCHANGE",
        ] {
            command.env(
                format!("ASTUTE_BRIDGE__AMQP__{name}"),
                format!("{prefix}.{}", name.to_ascii_lowercase()),
            );
        }
        for (key, value) in vars {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start serve");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                output.lock().expect("output").push_str(&text);
            }));
        }
        Serve {
            child,
            readers,
            output,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// SIGTERM, then everything it wrote.
    fn stop(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        self.child.wait().expect("wait");
        for reader in self.readers.drain(..) {
            reader.join().expect("reader");
        }
        let output = self.output.lock().expect("output").clone();
        output
    }
}

/// Waits until `/readyz` answers with `status`; returns its body.
async fn readiness(http: &Client, base: &str, status: StatusCode) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await {
            if response.status() == status {
                return response.text().await.expect("readyz");
            }
        }
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn assert_hidden(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows a secret:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_appear_in_no_output() {
    let prefix = fresh_prefix('s');
    let pg_password = secret("pgpass");
    let (admin, database_url) = role_with_password(&prefix, &pg_password).await;
    let operator = secret("operatortoken");
    let reader = secret("readertoken");
    let http = Client::new();
    let mut seen = Vec::new();

    // A healthy bridge, driven through good and failing requests.
    let serve = Serve::start(
        &prefix,
        &[
            ("ASTUTE_BRIDGE__DATABASE__URL", database_url.clone()),
            ("ASTUTE_BRIDGE__AMQP__URL", amqp_url()),
            (
                "ASTUTE_BRIDGE__HTTP__TOKENS",
                format!("ops:operator:{operator},grafana:reader:{reader}"),
            ),
            ("ASTUTE_BRIDGE__LOG__FORMAT", "json".into()),
        ],
    );
    let base = serve.base.clone();
    seen.push(readiness(&http, &base, StatusCode::OK).await);
    let calls: Vec<(Method, &str, Option<&str>, &str)> = vec![
        (Method::GET, "/api/releases/", Some(&operator), ""),
        (Method::GET, "/api/releases/", None, ""),
        (
            Method::GET,
            "/api/releases/",
            Some("wrong-token-0123456789"),
            "",
        ),
        (Method::POST, "/api/releases/", Some(&reader), "{}"),
        (Method::POST, "/api/releases/", Some(&operator), "{oops"),
        (
            Method::POST,
            "/api/releases/",
            Some(&operator),
            r#"{"name": 1}"#,
        ),
        (Method::GET, "/api/clusters/999/", Some(&operator), ""),
        (
            Method::PUT,
            "/api/clusters/999/update/?dry_run=maybe",
            Some(&operator),
            "",
        ),
        (Method::DELETE, "/api/clusters/", Some(&operator), ""),
        (Method::GET, "/api/openapi.json", Some(&reader), ""),
        (Method::GET, "/metrics", None, ""),
        (Method::GET, "/readyz", None, ""),
        (Method::GET, "/healthz", None, ""),
        (Method::GET, "/", None, ""),
    ];
    for (method, path, token, body) in calls {
        let mut request = http
            .request(method.clone(), format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect(path);
        let status = response.status();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.expect("body");
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {text}"
        );
        seen.push(format!("{method} {path} {status} {headers} {text}"));
    }
    let output = serve.stop();
    assert!(
        output.contains("HTTP API listening"),
        "the bridge logged: {output}"
    );
    assert!(
        output
            .lines()
            .any(|l| l.contains("HTTP change") && l.contains(r#""caller":"ops""#)),
        "changes are logged with the token's name: {output}"
    );
    assert_hidden(
        "stdout and stderr",
        &output,
        &[&pg_password, &operator, &reader],
    );
    for answer in &seen {
        assert_hidden("an answer", answer, &[&pg_password, &operator, &reader]);
    }

    // A bridge whose broker refuses its password: the errors it logs and readiness's reasons
    // name the broker, never the password.
    let amqp_password = secret("amqppass");
    let mut refused = url::Url::parse(&amqp_url()).expect("TEST_AMQP_URL");
    refused
        .set_password(Some(&amqp_password))
        .expect("password");
    let serve = Serve::start(
        &prefix,
        &[
            ("ASTUTE_BRIDGE__DATABASE__URL", database_url.clone()),
            ("ASTUTE_BRIDGE__AMQP__URL", refused.to_string()),
            (
                "ASTUTE_BRIDGE__HTTP__TOKENS",
                format!("ops:operator:{operator}"),
            ),
        ],
    );
    let base = serve.base.clone();
    let deadline = Instant::now() + PATIENCE;
    let why = loop {
        let why = readiness(&http, &base, StatusCode::SERVICE_UNAVAILABLE).await;
        if why.contains("\"broker\":false") && why.contains("ACCESS_REFUSED") {
            break why;
        }
        assert!(Instant::now() < deadline, "the refusal never showed: {why}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let answer = http
        .get(format!("{base}/api/releases/"))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("api")
        .text()
        .await
        .expect("text");
    let output = serve.stop();
    assert!(
        output.contains("ACCESS_REFUSED") || output.contains("access refused"),
        "the refusal is logged: {output}"
    );
    for (what, text) in [
        ("readiness", &why),
        ("the 503 answer", &answer),
        ("the logs", &output),
    ] {
        assert_hidden(what, text, &[&amqp_password, &pg_password, &operator]);
    }
    drop_role(&admin, &prefix).await;
}

/// `sslmode=require` reaches PostgreSQL over TLS; `verify-full` refuses a server whose
/// certificate it cannot verify (the local server's is self-signed), and its error shows no
/// password.
#[tokio::test]
async fn postgres_sslmode_is_honoured() {
    let prefix = fresh_prefix('l');
    let password = secret("tlspass");
    let (admin, url) = role_with_password(&prefix, &password).await;
    let with_mode = |mode: &str| {
        let mut url = url::Url::parse(&url).expect("url");
        let query: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(query)
            .append_pair("sslmode", mode);
        let mut settings = astute_bridge::config::Settings::load(None)
            .expect("defaults")
            .database;
        settings.url = url.to_string().into();
        settings.connect_timeout_secs = 5;
        settings
    };
    let db = astute_bridge::store::connect(&with_mode("require"))
        .await
        .expect("sslmode=require connects");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .expect("pg_stat_ssl")
        .expect("a row");
    assert!(
        row.try_get::<bool>("", "ssl").expect("ssl"),
        "sslmode=require connected without TLS: is ssl = on in postgresql.conf?"
    );
    db.close().await.ok();

    let err = match astute_bridge::store::connect(&with_mode("verify-full")).await {
        Ok(_) => panic!("verify-full must refuse an unverifiable certificate"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.to_ascii_lowercase().contains("certificate")
            || err.to_ascii_lowercase().contains("tls"),
        "refused for its certificate: {err}"
    );
    assert!(!err.contains(&password), "{err}");
    drop_role(&admin, &prefix).await;
}
