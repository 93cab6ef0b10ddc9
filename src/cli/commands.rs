//! The operator's commands over the request interface, after Fuel's `fuel` client: releases,
//! environments, nodes, notifications and tasks. Tables for people, `--json` for scripts.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use astute_bridge::client::Client;
use astute_bridge::config::Settings;

use super::table::{cell, render};
use super::watch::{follow, TaskEnd};
use super::{CliError, Done};

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Every release, with the versions it can be reached from.
    List,
    /// Add a release: its fields as JSON, or @file.json.
    Create { release: String },
    /// Remove a release no environment uses.
    Delete {
        #[arg(long)]
        release: i64,
    },
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Every environment.
    List,
    /// Register an environment.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        release: i64,
        #[arg(long, default_value = "multinode")]
        mode: String,
        /// `new` (never deployed), or `operational`, `stopped`, `error` for one already deployed.
        #[arg(long)]
        status: Option<String>,
    },
    /// An environment with its nodes and latest task.
    Show {
        #[arg(long)]
        env: i64,
    },
    /// Move an environment to another release (upgrade, downgrade, or redeploy the same one).
    Update {
        #[arg(long)]
        env: i64,
        #[arg(long)]
        release: i64,
        /// Only say whether it would be allowed, and show the cast it would send.
        #[arg(long)]
        dry_run: bool,
        /// Follow the update until it ends (exit 0 on success, 1 on failure).
        #[arg(long)]
        watch: bool,
    },
    /// Roll back a failed update, upgrade or downgrade.
    Rollback {
        #[arg(long)]
        env: i64,
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Add one node to an environment.
    Add {
        #[arg(long)]
        env: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        fqdn: String,
        /// Comma-separated, e.g. `controller` or `compute,cinder`.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
}

#[derive(Args)]
pub struct NotificationsArgs {
    /// Only this environment's.
    #[arg(long)]
    env: Option<i64>,
    /// Only the unread ones.
    #[arg(long)]
    unread: bool,
    /// Only those older than this id (the last id of the previous page).
    #[arg(long)]
    before: Option<i64>,
    /// At most this many (1 to 1000).
    #[arg(long)]
    limit: Option<u64>,
    /// Mark these notifications read (and list nothing).
    #[arg(long, num_args = 1..)]
    mark_read: Vec<i64>,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// A task by uuid.
    Show { uuid: String },
}

/// Output for people or for scripts.
#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", human(value));
        }
    }
}

pub async fn connect(settings: &Settings, wait: Duration) -> Result<Client, CliError> {
    Ok(Client::connect(&settings.amqp, wait).await?)
}

pub async fn release(
    client: &mut Client,
    out: Output,
    command: ReleaseCommand,
) -> Result<Done, CliError> {
    match command {
        ReleaseCommand::List => {
            let releases = client.call("list_releases", json!({})).await?;
            out.print(&releases, releases_table);
        }
        ReleaseCommand::Create { release } => {
            let fields = json_arg("release", &release)?;
            let created = client.call("create_release", fields).await?;
            out.print(&created, |r| {
                format!(
                    "release {} created: {} {}",
                    cell(&r["id"]),
                    cell(&r["name"]),
                    cell(&r["version"])
                )
            });
        }
        ReleaseCommand::Delete { release } => {
            let deleted = client
                .call("delete_release", json!({"release_id": release}))
                .await?;
            out.print(&deleted, |_| format!("release {release} deleted"));
        }
    }
    Ok(Done::Success)
}

pub async fn env(
    client: &mut Client,
    settings: &Settings,
    out: Output,
    command: EnvCommand,
) -> Result<Done, CliError> {
    match command {
        EnvCommand::List => {
            // Every environment, a page at a time (the bridge answers at most 1000 a call).
            let mut all = Vec::new();
            let mut after: Option<Value> = None;
            loop {
                let mut args = json!({"limit": 1000});
                if let Some(id) = after.take() {
                    args["after_id"] = id;
                }
                let page = client.call("list_clusters", args).await?;
                let page = page.as_array().cloned().unwrap_or_default();
                let full = page.len() == 1000;
                after = page.last().map(|c| c["id"].clone());
                all.extend(page);
                if !full {
                    break;
                }
            }
            let clusters = Value::Array(all);
            out.print(&clusters, |all| {
                let rows = rows(all, |c| {
                    vec![
                        cell(&c["id"]),
                        cell(&c["name"]),
                        cell(&c["mode"]),
                        cell(&c["status"]),
                        cell(&c["release_id"]),
                        cell(&c["pending_release_id"]),
                    ]
                });
                render(
                    &["id", "name", "mode", "status", "release", "pending release"],
                    &rows,
                )
            });
        }
        EnvCommand::Create {
            name,
            release,
            mode,
            status,
        } => {
            let mut args = json!({"name": name, "release_id": release, "mode": mode});
            if let Some(status) = status {
                args["status"] = json!(status);
            }
            let created = client.call("create_cluster", args).await?;
            out.print(&created, |c| {
                format!(
                    "environment {} created: {} ({})",
                    cell(&c["id"]),
                    cell(&c["name"]),
                    cell(&c["status"])
                )
            });
        }
        EnvCommand::Show { env } => {
            let cluster = client
                .call("get_cluster", json!({"cluster_id": env}))
                .await?;
            out.print(&cluster, cluster_view);
        }
        EnvCommand::Update {
            env,
            release,
            dry_run,
            watch,
        } => {
            let args = json!({"cluster_id": env, "release_id": release});
            if dry_run {
                let verdict = client.call("check_update", args).await?;
                out.print(&verdict, verdict_view);
                return Ok(if verdict["allowed"] == true {
                    Done::Success
                } else {
                    Done::Refused
                });
            }
            let notifications = if watch {
                Some(
                    client
                        .notifications(&settings.amqp.notifications_exchange)
                        .await?,
                )
            } else {
                None
            };
            let task = client.call("update_cluster", args).await?;
            return started(client, out, notifications, env, task, watch).await;
        }
        EnvCommand::Rollback { env, watch } => {
            let notifications = if watch {
                Some(
                    client
                        .notifications(&settings.amqp.notifications_exchange)
                        .await?,
                )
            } else {
                None
            };
            let task = client
                .call("rollback_cluster", json!({"cluster_id": env}))
                .await?;
            return started(client, out, notifications, env, task, watch).await;
        }
    }
    Ok(Done::Success)
}

/// Reports a started task, and follows it with `watch`.
async fn started(
    client: &mut Client,
    out: Output,
    notifications: Option<lapin::Consumer>,
    env: i64,
    task: Value,
    watch: bool,
) -> Result<Done, CliError> {
    let uuid = task["uuid"].as_str().unwrap_or_default().to_string();
    if !out.json || !watch {
        out.print(&task, |t| {
            format!(
                "{} of environment {env} started: task {}",
                cell(&t["name"]),
                cell(&t["uuid"])
            )
        });
    }
    if !watch {
        return Ok(Done::Success);
    }
    let end = follow(client, notifications, env, &uuid, out.json).await?;
    Ok(ended(out, &end))
}

/// Says how a followed task ended; the exit code follows it.
pub fn ended(out: Output, end: &TaskEnd) -> Done {
    if out.json {
        println!("{}", json!({"status": end.status, "message": end.message}));
    } else {
        println!("task {}: {}", end.status, end.message);
    }
    if end.succeeded() {
        Done::Success
    } else {
        Done::Refused
    }
}

pub async fn node(
    client: &mut Client,
    out: Output,
    command: NodeCommand,
) -> Result<Done, CliError> {
    let NodeCommand::Add {
        env,
        name,
        fqdn,
        roles,
    } = command;
    let added = client
        .call(
            "add_nodes",
            json!({"cluster_id": env, "nodes": [{"name": name, "fqdn": fqdn, "roles": roles}]}),
        )
        .await?;
    out.print(&added, |nodes| {
        let rows = rows(nodes, |n| {
            vec![
                cell(&n["id"]),
                cell(&n["name"]),
                cell(&n["roles"]),
                cell(&n["status"]),
            ]
        });
        render(&["id", "name", "roles", "status"], &rows)
    });
    Ok(Done::Success)
}

pub async fn notifications(
    client: &mut Client,
    out: Output,
    args: NotificationsArgs,
) -> Result<Done, CliError> {
    if !args.mark_read.is_empty() {
        let mut marked = Vec::new();
        for id in args.mark_read {
            marked.push(
                client
                    .call(
                        "mark_notification",
                        json!({"notification_id": id, "status": "read"}),
                    )
                    .await?,
            );
        }
        out.print(&Value::Array(marked), |all| {
            format!(
                "{} notification(s) marked read",
                all.as_array().map_or(0, Vec::len)
            )
        });
        return Ok(Done::Success);
    }
    let mut filter = json!({});
    if let Some(env) = args.env {
        filter["cluster_id"] = json!(env);
    }
    if args.unread {
        filter["status"] = json!("unread");
    }
    if let Some(before) = args.before {
        filter["before_id"] = json!(before);
    }
    if let Some(limit) = args.limit {
        filter["limit"] = json!(limit);
    }
    let listed = client.call("list_notifications", filter).await?;
    out.print(&listed, notifications_table);
    Ok(Done::Success)
}

pub async fn task(
    client: &mut Client,
    out: Output,
    command: TaskCommand,
) -> Result<Done, CliError> {
    let TaskCommand::Show { uuid } = command;
    let task = client.call("get_task", json!({"task_uuid": uuid})).await?;
    out.print(&task, |t| {
        let mut fields = vec![
            ("uuid", &t["uuid"]),
            ("name", &t["name"]),
            ("status", &t["status"]),
            ("progress", &t["progress"]),
            ("environment", &t["cluster_id"]),
            ("from release", &t["from_release_id"]),
            ("to release", &t["to_release_id"]),
            ("message", &t["message"]),
        ];
        fields.retain(|(_, v)| !v.is_null());
        render(
            &["field", "value"],
            &fields
                .into_iter()
                .map(|(k, v)| vec![k.to_string(), cell(v)])
                .collect::<Vec<_>>(),
        )
    });
    Ok(Done::Success)
}

/// An argument given as JSON text or `@file`.
fn json_arg(what: &str, text: &str) -> Result<Value, CliError> {
    let raw = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {what} file {path}: {e}")))?,
        None => text.to_string(),
    };
    let value: Value = serde_json::from_str(&raw).map_err(|e| CliError::Usage(format!("the {what} must be a JSON object ({e}); e.g. '{{\"name\": \"…\", \"version\": \"…\", \"operating_system\": \"Ubuntu\"}}' or @release.json")))?;
    if !value.is_object() {
        return Err(CliError::Usage(format!("the {what} must be a JSON object")));
    }
    Ok(value)
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

pub fn releases_table(all: &Value) -> String {
    let rows = rows(all, |r| {
        let from: Vec<String> = r["versions"]["can_update_from"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|v| format!("{} ({})", cell(&v["release_id"]), cell(&v["operation"])))
                    .collect()
            })
            .unwrap_or_default();
        vec![
            cell(&r["id"]),
            cell(&r["name"]),
            cell(&r["version"]),
            cell(&r["operating_system"]),
            cell(&r["state"]),
            from.join(", "),
        ]
    });
    render(
        &["id", "name", "version", "os", "state", "reachable from"],
        &rows,
    )
}

pub fn notifications_table(all: &Value) -> String {
    let rows = rows(all, |n| {
        let unread = if n["status"] == "unread" { "*" } else { "" };
        vec![
            format!("{}{unread}", cell(&n["id"])),
            cell(&n["topic"]),
            cell(&n["cluster_id"]),
            cell(&n["datetime"]),
            cell(&n["message"]),
        ]
    });
    render(&["id (*unread)", "topic", "env", "when", "message"], &rows)
}

fn cluster_view(c: &Value) -> String {
    let mut text = format!(
        "environment {} '{}': {} ({}), release {}{}\n\n",
        cell(&c["id"]),
        cell(&c["name"]),
        cell(&c["status"]),
        cell(&c["mode"]),
        cell(&c["release_id"]),
        if c["pending_release_id"].is_null() {
            String::new()
        } else {
            format!(", pending release {}", cell(&c["pending_release_id"]))
        }
    );
    let nodes = rows(&c["nodes"], |n| {
        vec![
            cell(&n["id"]),
            cell(&n["name"]),
            cell(&n["roles"]),
            cell(&n["status"]),
            cell(&n["progress"]),
            if n["online"] == false {
                "no".into()
            } else {
                "yes".into()
            },
            cell(&n["error_msg"]),
        ]
    });
    text.push_str(&render(
        &[
            "id", "name", "roles", "status", "progress", "online", "error",
        ],
        &nodes,
    ));
    let t = &c["latest_task"];
    if !t.is_null() {
        text.push_str(&format!(
            "\n\nlatest task {} {}: {} {}%{}",
            cell(&t["name"]),
            cell(&t["uuid"]),
            cell(&t["status"]),
            cell(&t["progress"]),
            if t["message"].is_null() {
                String::new()
            } else {
                format!(" — {}", cell(&t["message"]))
            }
        ));
    }
    text
}

fn verdict_view(v: &Value) -> String {
    if v["allowed"] == true {
        let entries = v["message"]["args"]["deployment_info"]
            .as_array()
            .map_or(0, Vec::len);
        format!(
            "allowed: {} ({entries} deployment entries would be cast)",
            cell(&v["operation"])
        )
    } else {
        format!("refused ({}): {}", cell(&v["code"]), cell(&v["reason"]))
    }
}
