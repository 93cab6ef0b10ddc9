//! `watch`: a live view of a running task — the task's progress, each node's status and
//! progress, and the notifications as they arrive — until the task ends. Progress comes from
//! the request interface (`get_task`, `get_cluster`), events from the `notifications` exchange;
//! nothing reads the database. Bars on a terminal, one plain line per change otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lapin::Consumer;
use serde_json::{json, Value};

use astute_bridge::client::{Client, ClientError};

/// How often progress is read.
const POLL: Duration = Duration::from_millis(300);

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub status: String,
    pub message: String,
}

impl TaskEnd {
    pub fn succeeded(&self) -> bool {
        self.status == "ready"
    }
}

/// Follows task `task_uuid` of cluster `cluster_id` until it is no longer running; `quiet`
/// shows nothing meanwhile (for `--json`, where only the end is printed).
pub async fn follow(
    client: &mut Client,
    mut notifications: Option<Consumer>,
    cluster_id: i64,
    task_uuid: &str,
    quiet: bool,
) -> Result<TaskEnd, ClientError> {
    let mut view = if quiet {
        View::Quiet
    } else {
        View::new(std::io::stdout().is_terminal())
    };
    loop {
        let task = client
            .call("get_task", json!({"task_uuid": task_uuid}))
            .await?;
        let cluster = client
            .call("get_cluster", json!({"cluster_id": cluster_id}))
            .await?;
        view.show(&task, &cluster);
        if task["status"] != "running" {
            view.finish();
            return Ok(TaskEnd {
                status: task["status"].as_str().unwrap_or_default().to_string(),
                message: task["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        let tick = tokio::time::sleep(POLL);
        tokio::pin!(tick);
        loop {
            let next = async {
                match notifications.as_mut() {
                    Some(consumer) => consumer.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut tick => break,
                delivery = next => match delivery {
                    Some(Ok(delivery)) => {
                        if let Ok(envelope) = serde_json::from_slice::<Value>(&delivery.data) {
                            let payload = &envelope["payload"];
                            if payload["cluster_id"].as_i64() == Some(cluster_id) {
                                view.note(&format!("[{}] {}", envelope["priority"].as_str().unwrap_or("INFO"), payload["message"].as_str().unwrap_or_default()));
                            }
                        }
                    }
                    // The notification feed is a nicety: progress goes on without it.
                    _ => notifications = None,
                },
            }
        }
    }
}

/// Bars on a terminal; lines elsewhere.
enum View {
    Bars {
        all: MultiProgress,
        task: Option<ProgressBar>,
        nodes: BTreeMap<i64, ProgressBar>,
    },
    Lines {
        last: BTreeMap<String, String>,
    },
    Quiet,
}

impl View {
    fn new(terminal: bool) -> View {
        if terminal {
            View::Bars {
                all: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                task: None,
                nodes: BTreeMap::new(),
            }
        } else {
            View::Lines {
                last: BTreeMap::new(),
            }
        }
    }

    fn show(&mut self, task: &Value, cluster: &Value) {
        let task_line = (
            format!(
                "{} {}",
                task["name"].as_str().unwrap_or("task"),
                short(task["uuid"].as_str().unwrap_or_default())
            ),
            task["progress"].as_u64().unwrap_or(0),
            task["status"].as_str().unwrap_or_default().to_string(),
        );
        let nodes: Vec<(i64, String, u64, String)> = cluster["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| {
                        let mut status = n["status"].as_str().unwrap_or_default().to_string();
                        if n["online"] == false {
                            status.push_str(" (offline)");
                        }
                        if let Some(error) = n["error_msg"].as_str() {
                            status = format!("{status}: {error}");
                        }
                        (
                            n["id"].as_i64().unwrap_or(0),
                            n["name"].as_str().unwrap_or_default().to_string(),
                            n["progress"].as_u64().unwrap_or(0),
                            status,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        match self {
            View::Bars {
                all,
                task,
                nodes: bars,
            } => {
                let style = ProgressStyle::with_template("{prefix:<22} [{bar:32}] {pos:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                let bar = task.get_or_insert_with(|| {
                    let bar = all.add(ProgressBar::new(100).with_style(style.clone()));
                    bar.set_prefix(task_line.0.clone());
                    bar
                });
                bar.set_position(task_line.1);
                bar.set_message(task_line.2);
                for (id, name, progress, status) in nodes {
                    let bar = bars.entry(id).or_insert_with(|| {
                        let bar = all.add(ProgressBar::new(100).with_style(style.clone()));
                        bar.set_prefix(format!("  {name}"));
                        bar
                    });
                    bar.set_position(progress);
                    bar.set_message(status);
                }
            }
            View::Quiet => {}
            View::Lines { last } => {
                let mut say = |key: String, line: String| {
                    if last.get(&key) != Some(&line) {
                        println!("{line}");
                        last.insert(key, line);
                    }
                };
                say(
                    "task".into(),
                    format!("{} {:>3}% {}", task_line.0, task_line.1, task_line.2),
                );
                for (id, name, progress, status) in nodes {
                    say(
                        format!("node {id}"),
                        format!("  {name} {progress:>3}% {status}"),
                    );
                }
            }
        }
    }

    fn note(&self, line: &str) {
        match self {
            View::Bars { all, .. } => {
                let _ = all.println(line);
            }
            View::Lines { .. } => println!("{line}"),
            View::Quiet => {}
        }
    }

    fn finish(&mut self) {
        if let View::Bars { task, nodes, .. } = self {
            for bar in task.iter().chain(nodes.values()) {
                bar.finish();
            }
        }
    }
}

/// The first block of a uuid: enough to tell tasks apart on screen.
fn short(uuid: &str) -> &str {
    uuid.split('-').next().unwrap_or(uuid)
}
