//! The operators' page in a real browser (headless Chromium driven through chromedriver), on a
//! bridge that asks for tokens: a refused token, then a sign-in; an upgrade followed live, a node failure, its rollback, a refused update with the API's message
//! shown, and a notification marked read — judged by visible text and roles. Screenshots go to
//! `target/page-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`;
//! `.ci/run` installs them).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use astute_bridge::config::{ApiToken, Role, TokenList};
use common::{load_fixture, release_id, Backend, Bridge, PATIENCE};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const INSTALL: &str = "apt-get install chromium chromium-driver";
/// The operator's API token the bridge under test asks for.
const TOKEN: &str = "page-operator-token-0123456789";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

fn start_driver() -> Driver {
    let chromedriver = which("chromedriver")
        .unwrap_or_else(|| panic!("chromedriver is not installed; install it with: {INSTALL}"));
    which("chromium")
        .unwrap_or_else(|| panic!("chromium is not installed; install it with: {INSTALL}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    Driver { child, port }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": which("chromium").expect("chromium"),
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]}),
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => return client,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver never answered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits until the element's visible text satisfies `wanted`; returns that text.
async fn text_until(page: &Client, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    loop {
        if let Ok(element) = page.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if wanted(&text) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}; last text of {css}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types a token into the sign-in form and submits it.
async fn sign_in(page: &Client, token: &str) {
    let field = wait_for(page, "#token").await;
    field.send_keys(token).await.expect("type the token");
    button(page, "Sign in")
        .await
        .click()
        .await
        .expect("sign in");
}

/// The element, once it is displayed.
async fn wait_for(page: &Client, css: &str) -> Element {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(element) = page.find(Locator::Css(css)).await {
            if element.is_displayed().await.unwrap_or(false) {
                return element;
            }
        }
        assert!(Instant::now() < deadline, "{css} never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn button(page: &Client, name: &str) -> Element {
    page.find(Locator::XPath(&format!(
        "//button[normalize-space(.)='{name}' or @aria-label='{name}']"
    )))
    .await
    .unwrap_or_else(|e| panic!("no button named '{name}': {e}"))
}

async fn choose_target(page: &Client, release: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let option = page
            .find(Locator::Css(&format!("#target option[value='{release}']")))
            .await;
        if let Ok(option) = option {
            option.click().await.expect("choose the target release");
            return;
        }
        assert!(Instant::now() < deadline, "release {release} never offered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(page: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/page-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let png = page.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_upgrades_sees_a_failure_rolls_back_and_reads_notifications() {
    let driver = start_driver();
    let mut bridge = Bridge::start_with(Backend::Sqlite, |s| {
        s.http.tokens = TokenList(vec![ApiToken {
            name: "ops".into(),
            role: Role::Operator,
            token: TOKEN.to_owned().into(),
        }]);
    })
    .await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let upgrade_to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let first = release_id(&releases, "Icehouse on Ubuntu 12.04", "2014.1-5.0");
    let nodes = bridge
        .ok("get_cluster", json!({"cluster_id": cluster}))
        .await["nodes"]
        .clone();
    let node_ids: Vec<i64> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_i64())
        .collect();

    let page = browser(&driver).await;
    page.goto(&format!("{}/", bridge.http))
        .await
        .expect("open the page");
    text_until(&page, "#readiness", "the bridge ready", |t| {
        t == "Bridge ready"
    })
    .await;

    // The API asks for a token: the page asks for it, refuses a wrong one, and keeps the
    // right one for the tab.
    sign_in(&page, "not-the-token-0123456789").await;
    let refused = text_until(&page, "#sign-in-error", "the refused token", |t| {
        t.starts_with("The token was refused")
    })
    .await;
    assert!(refused.contains("not valid"), "{refused}");
    screenshot(&page, "0-sign-in-refused").await;
    sign_in(&page, TOKEN).await;
    text_until(&page, "#environments", "the environment", |t| {
        t.contains("env-multinode") && t.contains("operational")
    })
    .await;
    screenshot(&page, "1-environments").await;

    // An upgrade, started from the page, followed live.
    choose_target(&page, upgrade_to).await;
    button(&page, "Dry run")
        .await
        .click()
        .await
        .expect("dry run");
    text_until(&page, "#update-result", "the dry run's verdict", |t| {
        t.starts_with("Dry run: allowed, upgrade")
    })
    .await;
    button(&page, "Start update")
        .await
        .click()
        .await
        .expect("start the update");
    text_until(&page, "#update-result", "the task started", |t| {
        t.starts_with("upgrade started")
    })
    .await;
    let cast = bridge.next_cast().await;
    let uuid = cast["args"]["task_uuid"]
        .as_str()
        .expect("task uuid")
        .to_string();
    bridge
        .reply(json!({"task_uuid": uuid, "status": "running", "progress": 40,
                      "nodes": [{"uid": node_ids[0].to_string(), "status": "deploying", "progress": 60}]}))
        .await;
    text_until(&page, "#task-summary", "the upgrade at 40%", |t| {
        t == "upgrade: running, 40%"
    })
    .await;
    text_until(&page, "#nodes", "a node deploying at 60%", |t| {
        t.contains("deploying 60%")
    })
    .await;
    screenshot(&page, "2-upgrade-running").await;
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    text_until(&page, "#task-summary", "the upgrade done", |t| {
        t == "upgrade: ready, 100%"
    })
    .await;
    text_until(&page, "#facts", "the new release", |t| {
        t.contains("2014.1.1-5.0.2") && t.contains("operational")
    })
    .await;

    // A downgrade where one node fails, then its rollback.
    choose_target(&page, first).await;
    button(&page, "Start update")
        .await
        .click()
        .await
        .expect("start the downgrade");
    text_until(&page, "#update-result", "the downgrade started", |t| {
        t.starts_with("downgrade started")
    })
    .await;
    let cast = bridge.next_cast().await;
    let uuid = cast["args"]["task_uuid"]
        .as_str()
        .expect("task uuid")
        .to_string();

    // A second update while this one runs: refused, and the API's message is shown.
    button(&page, "Start update")
        .await
        .click()
        .await
        .expect("start again");
    let refusal = text_until(&page, "#update-error", "the refusal", |t| !t.is_empty()).await;
    assert!(
        refusal.contains("(conflict)"),
        "the API's own message and code: {refusal}"
    );
    let alert = page
        .find(Locator::Css("#update-error[role='alert']"))
        .await
        .expect("the refusal is an alert");
    assert_eq!(alert.text().await.expect("alert text"), refusal);
    screenshot(&page, "3-refused-update").await;

    bridge
        .reply(json!({"task_uuid": uuid, "status": "error",
                      "nodes": [{"uid": node_ids[1].to_string(), "status": "error", "error_type": "deploy",
                                 "error_msg": "Puppet run failed"}]}))
        .await;
    text_until(&page, "#facts", "downgrade_error", |t| {
        t.contains("downgrade_error")
    })
    .await;
    text_until(&page, "#task-message", "the failure", |t| {
        t.starts_with("Downgrade has failed.")
    })
    .await;
    text_until(&page, "#nodes", "the failed node", |t| {
        t.contains("Puppet run failed")
    })
    .await;
    screenshot(&page, "4-node-failure").await;
    let rollback = button(&page, "Roll back").await;
    assert!(
        rollback.is_enabled().await.expect("enabled?"),
        "rollback is offered after a failure"
    );
    rollback.click().await.expect("roll back");
    text_until(&page, "#rollback-result", "the rollback started", |t| {
        t.starts_with("rollback started")
    })
    .await;
    let cast = bridge.next_cast().await;
    let uuid = cast["args"]["task_uuid"]
        .as_str()
        .expect("task uuid")
        .to_string();
    bridge
        .reply(json!({"task_uuid": uuid, "status": "ready", "progress": 100}))
        .await;
    text_until(&page, "#facts", "operational after the rollback", |t| {
        t.contains("operational")
    })
    .await;
    text_until(&page, "#task-summary", "the rollback done", |t| {
        t == "rollback: ready, 100%"
    })
    .await;

    // The notifications, newest first; one marked read.
    let feed = text_until(
        &page,
        "#notifications",
        "the rollback's notification",
        |t| t.contains("Rollback of environment 'env-multinode' is done."),
    )
    .await;
    assert!(
        feed.find("Rollback of environment").unwrap_or(usize::MAX)
            < feed.find("Upgrade of environment").unwrap_or(0),
        "newest first: {feed}"
    );
    let unread_before = page
        .find_all(Locator::Css("#notifications li.unread"))
        .await
        .expect("unread items")
        .len();
    assert!(unread_before >= 3, "{unread_before} unread");
    screenshot(&page, "5-notifications").await;
    let newest: Value = bridge.ok("list_notifications", json!({})).await[0].clone();
    let id = newest["id"].as_i64().expect("id");
    button(&page, &format!("Mark notification {id} read"))
        .await
        .click()
        .await
        .expect("mark read");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let unread = page
            .find_all(Locator::Css("#notifications li.unread"))
            .await
            .expect("unread items")
            .len();
        if unread == unread_before - 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the notification never showed as read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = bridge
        .ok("list_notifications", json!({"status": "read"}))
        .await;
    assert_eq!(stored[0]["id"].as_i64(), Some(id));

    // A narrow window still shows the environment and its actions.
    page.set_window_size(480, 900).await.expect("narrow window");
    text_until(&page, "#environments", "the list in a narrow window", |t| {
        t.contains("env-multinode")
    })
    .await;
    assert!(button(&page, "Start update")
        .await
        .is_displayed()
        .await
        .expect("displayed?"));
    screenshot(&page, "6-narrow").await;

    // More environments than one page of the API: the page follows the pages and lists them all.
    bridge
        .execute(&format!(
            "INSERT INTO clusters (name, mode, status, release_id, fuel_version, attributes, created_at, updated_at) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             SELECT printf('env-bulk-%04d', i), 'multinode', 'new', {first}, '5.1', '{{}}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM n"
        ))
        .await;
    text_until(&page, "#environments", "the 1,001st environment", |t| {
        t.contains("env-bulk-1000") && t.contains("env-multinode")
    })
    .await;

    page.close().await.expect("close the browser");
    bridge.stop().await;
}
