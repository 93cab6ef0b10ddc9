//! Start-to-ready time and idle memory of the `astute-bridge` binary as an operator runs it.
//!
//! Run: `cargo bench --bench startup` (RabbitMQ running). `migrate` first (not timed), then
//! `serve` on a fresh SQLite file: timed from the spawn to the first `GET /readyz` answering
//! 200 (polled every 5 ms), then left idle for 3 s and its resident memory (`VmRSS`) read.
//! `BENCH_STARTS` (5) runs; prints each and the worst.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_astute-bridge");

fn env_vars(dir: &std::path::Path, prefix: &str, port: u16) -> Vec<(String, String)> {
    let amqp = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut vars = vec![
        (
            "ASTUTE_BRIDGE__DATABASE__URL".to_string(),
            format!("sqlite://{}?mode=rwc", dir.join("b.db").display()),
        ),
        ("ASTUTE_BRIDGE__AMQP__URL".to_string(), amqp),
        ("RUST_LOG".to_string(), "warn".to_string()),
        (
            "ASTUTE_BRIDGE__HTTP__BIND".to_string(),
            format!("127.0.0.1:{port}"),
        ),
    ];
    for (key, name) in [
        ("NAILY_EXCHANGE", "naily"),
        ("NAILY_QUEUE", "naily"),
        ("NAILY_SERVICE_EXCHANGE", "naily_service"),
        ("NAILGUN_EXCHANGE", "nailgun"),
        ("NAILGUN_QUEUE", "nailgun"),
        ("DEAD_LETTER_QUEUE", "nailgun.dead"),
        ("REQUEST_EXCHANGE", "astute_bridge"),
        ("REQUEST_QUEUE", "astute_bridge.requests"),
        ("NOTIFICATIONS_EXCHANGE", "notifications"),
    ] {
        vars.push((
            format!("ASTUTE_BRIDGE__AMQP__{key}"),
            format!("{prefix}.{name}"),
        ));
    }
    vars
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::var("BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let http = reqwest::Client::new();
    let (mut worst_start, mut worst_rss) = (Duration::ZERO, 0);
    for run in 1..=runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = free_port();
        let vars = env_vars(dir.path(), &prefix, port);
        let migrate = Command::new(BIN)
            .arg("migrate")
            .envs(vars.clone())
            .output()
            .expect("run migrate");
        assert!(migrate.status.success(), "migrate failed");

        let started = Instant::now();
        let mut serve = Command::new(BIN)
            .arg("serve")
            .envs(vars)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(answer) = http.get(&url).send().await {
                if answer.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the bridge was not ready in 30 s (is RabbitMQ running? rabbitmq-server -detached)"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let to_ready = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(serve.id());
        serve.kill().expect("stop serve");
        serve.wait().expect("reap serve");
        println!(
            "startup run {run}: start to ready {:.0} ms, idle RSS {:.1} MiB",
            to_ready.as_secs_f64() * 1e3,
            rss as f64 / 1024.0
        );
        worst_start = worst_start.max(to_ready);
        worst_rss = worst_rss.max(rss);
    }
    println!(
        "startup worst of {runs}: start to ready {:.0} ms (target 1000), idle RSS {:.1} MiB (target 25)",
        worst_start.as_secs_f64() * 1e3,
        worst_rss as f64 / 1024.0
    );
}
