//! The rules for Astute's `deploy_resp` replies (contract section 3), as a pure function from the
//! task, its cluster and nodes, and one reply, to the changes to write.
//!
//! Replies may arrive twice or out of order, so every rule is written to be idempotent: a node's
//! status never goes down (Astute's own reporter ranks statuses the same way), a task's progress
//! never goes down, a notification is emitted only on a transition, and an ended task ignores
//! everything.

use super::enums::{NodeErrorType, NodeStatus, NotificationTopic, Operation, TaskStatus};
use super::transitions::{after_task, ClusterAfterTask, ReleasePointers, TaskOutcome};

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub id: i32,
    pub name: String,
    pub status: NodeStatus,
    pub progress: u8,
    pub error_type: Option<NodeErrorType>,
    pub error_msg: Option<String>,
    pub online: bool,
}

/// A task as stored, with its cluster's facts the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub operation: Operation,
    pub status: TaskStatus,
    pub progress: u8,
    pub cluster_name: String,
    pub releases: ReleasePointers,
}

/// One node entry of a reply; absent fields leave the node's value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    pub uid: i32,
    pub status: Option<NodeStatus>,
    pub progress: Option<u8>,
    pub error_type: Option<NodeErrorType>,
    pub error_msg: Option<String>,
    pub online: Option<bool>,
}

/// The `args` of a `deploy_resp`, parsed; every field but the task uuid may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployReply {
    pub status: Option<String>,
    pub progress: Option<u8>,
    pub error: Option<String>,
    pub nodes: Vec<NodeReport>,
}

/// A notification to store and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub topic: NotificationTopic,
    pub message: String,
    pub node_id: Option<i32>,
}

/// The task's new values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    pub status: TaskStatus,
    pub progress: u8,
    /// `Some` replaces the message.
    pub message: Option<String>,
}

/// The nodes of the cluster that a reply does not list, summed up: enough for the task's mean
/// progress without loading every node on every reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherNodes {
    pub count: u32,
    pub progress_sum: u32,
}

/// Whether a reply may end its task, in which case the rules need every node of the cluster
/// (to see failed nodes and to end the ones still deploying).
pub fn may_end_task(reply: &DeployReply) -> bool {
    matches!(reply.status.as_deref(), Some("ready") | Some("error"))
}

/// Everything one reply changes. Empty when the reply changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyEffects {
    /// Nodes whose stored values change, with their new values.
    pub nodes: Vec<NodeState>,
    /// `None` when the task is unchanged.
    pub task: Option<TaskChange>,
    /// `Some` when this reply ended the task.
    pub cluster: Option<ClusterAfterTask>,
    pub notifications: Vec<NewNotification>,
}

impl ReplyEffects {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.task.is_none() && self.cluster.is_none()
    }
}

/// Applies one reply to a task. `nodes` are the cluster's nodes the reply lists (at least), and
/// `others` sums up the rest; when `may_end_task(reply)`, `nodes` must be every node of the
/// cluster and `others` empty.
pub fn apply_reply(
    task: &TaskState,
    nodes: &[NodeState],
    others: OtherNodes,
    reply: &DeployReply,
) -> ReplyEffects {
    if task.status != TaskStatus::Running {
        return ReplyEffects::default();
    }
    let mut effects = ReplyEffects::default();
    let mut current: Vec<NodeState> = nodes.to_vec();

    for report in &reply.nodes {
        let Some(node) = current.iter_mut().find(|n| n.id == report.uid) else {
            continue; // not a node of this cluster: Nailgun skips it too
        };
        let Some(updated) = apply_node_report(node, report) else {
            continue;
        };
        if entered_failure(node, &updated) {
            effects.notifications.push(NewNotification {
                topic: NotificationTopic::Error,
                message: format!(
                    "Failed to deploy node '{}': {}",
                    updated.name,
                    updated.error_msg.as_deref().unwrap_or("Unknown error")
                ),
                node_id: Some(updated.id),
            });
        }
        if updated != *node {
            *node = updated.clone();
            upsert(&mut effects.nodes, updated);
        }
    }

    let progress = match reply.progress {
        Some(given) => given.max(task.progress),
        None if !reply.nodes.is_empty() && !current.is_empty() => {
            mean_progress(&current, others).max(task.progress)
        }
        None => task.progress,
    };

    let outcome = match reply.status.as_deref() {
        Some("error") => Some((
            TaskOutcome::Error,
            failure_message(task, reply.error.as_deref(), &current),
            progress,
        )),
        Some("ready") if current.iter().any(|n| n.status == NodeStatus::Error) => Some((
            TaskOutcome::Error,
            failure_message(task, None, &current),
            100,
        )),
        Some("ready") => Some((
            TaskOutcome::Ready,
            format!(
                "{} of environment '{}' is done.",
                task.operation.title(),
                task.cluster_name
            ),
            100,
        )),
        _ => None,
    };

    match outcome {
        Some((outcome, message, progress)) => {
            let after = after_task(task.operation, outcome, task.releases);
            for node in current.iter().filter(|n| n.status == NodeStatus::Deploying) {
                let mut ended = node.clone();
                ended.status = after.deploying_nodes.status;
                if let Some(p) = after.deploying_nodes.progress {
                    ended.progress = p;
                }
                if after.deploying_nodes.error_type.is_some() {
                    ended.error_type = after.deploying_nodes.error_type;
                }
                upsert(&mut effects.nodes, ended);
            }
            let (status, topic) = match outcome {
                TaskOutcome::Ready => (TaskStatus::Ready, NotificationTopic::Done),
                TaskOutcome::Error => (TaskStatus::Error, NotificationTopic::Error),
            };
            effects.notifications.push(NewNotification {
                topic,
                message: message.clone(),
                node_id: None,
            });
            effects.task = Some(TaskChange {
                status,
                progress,
                message: Some(message),
            });
            effects.cluster = Some(after);
        }
        None => {
            let message = reply.error.clone();
            if progress != task.progress || message.is_some() {
                effects.task = Some(TaskChange {
                    status: TaskStatus::Running,
                    progress,
                    message,
                });
            }
        }
    }
    effects
}

/// A node's values after one report, or `None` when the report is stale: it would lower the
/// node's status, or its progress at the same status.
fn apply_node_report(node: &NodeState, report: &NodeReport) -> Option<NodeState> {
    let status = report.status.unwrap_or(node.status);
    if status.rank() < node.status.rank() {
        return None;
    }
    if status == node.status && report.progress.is_some_and(|p| p < node.progress) {
        return None;
    }
    let mut next = node.clone();
    next.status = status;
    if let Some(progress) = report.progress {
        next.progress = progress.min(100);
    }
    if let Some(error_type) = report.error_type {
        next.error_type = Some(error_type);
    }
    if let Some(error_msg) = &report.error_msg {
        next.error_msg = Some(error_msg.clone());
    }
    if let Some(online) = report.online {
        next.online = online;
    }
    if next.status == NodeStatus::Ready {
        next.progress = 100;
    }
    if next.status == NodeStatus::Error || report.online == Some(false) {
        next.progress = 100;
    }
    if report.online == Some(false) && report.error_msg.is_none() {
        next.error_msg = Some("Node is offline".to_string());
    }
    Some(next)
}

/// A node fails visibly when it newly enters `error` or newly goes offline.
fn entered_failure(before: &NodeState, after: &NodeState) -> bool {
    let newly_error = after.status == NodeStatus::Error && before.status != NodeStatus::Error;
    let newly_offline = !after.online && before.online;
    newly_error || newly_offline
}

fn mean_progress(nodes: &[NodeState], others: OtherNodes) -> u8 {
    let sum: u64 =
        nodes.iter().map(|n| u64::from(n.progress)).sum::<u64>() + u64::from(others.progress_sum);
    let count = (nodes.len() as u64 + u64::from(others.count)).max(1);
    u8::try_from(sum / count).unwrap_or(100)
}

/// "<Operation> has failed. <error>", or the failed nodes' names when Astute gave no text.
fn failure_message(task: &TaskState, error: Option<&str>, nodes: &[NodeState]) -> String {
    let title = task.operation.title();
    match error {
        Some(text) if !text.is_empty() => format!("{title} has failed. {text}"),
        _ => {
            let failed: Vec<String> = nodes
                .iter()
                .filter(|n| n.status == NodeStatus::Error || !n.online)
                .map(|n| format!("'{}'", n.name))
                .collect();
            let names = if failed.is_empty() {
                "Unknown error".to_string()
            } else {
                failed.join(", ")
            };
            format!("{title} has failed. Check these nodes:\n{names}")
        }
    }
}

fn upsert(nodes: &mut Vec<NodeState>, node: NodeState) {
    match nodes.iter_mut().find(|n| n.id == node.id) {
        Some(existing) => *existing = node,
        None => nodes.push(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::enums::ClusterStatus;

    fn task(operation: Operation) -> TaskState {
        TaskState {
            operation,
            status: TaskStatus::Running,
            progress: 0,
            cluster_name: "env-multinode".into(),
            releases: ReleasePointers {
                release_id: 1,
                pending_release_id: Some(2),
            },
        }
    }

    fn node(id: i32, status: NodeStatus, progress: u8) -> NodeState {
        NodeState {
            id,
            name: format!("node-{id}"),
            status,
            progress,
            error_type: None,
            error_msg: None,
            online: true,
        }
    }

    fn deploying(ids: &[i32]) -> Vec<NodeState> {
        ids.iter()
            .map(|&id| node(id, NodeStatus::Deploying, 0))
            .collect()
    }

    fn report(uid: i32, status: NodeStatus, progress: u8) -> NodeReport {
        NodeReport {
            uid,
            status: Some(status),
            progress: Some(progress),
            ..Default::default()
        }
    }

    fn reply(status: Option<&str>, progress: Option<u8>, nodes: Vec<NodeReport>) -> DeployReply {
        DeployReply {
            status: status.map(String::from),
            progress,
            error: None,
            nodes,
        }
    }

    #[test]
    fn running_progress_is_taken_and_never_lowered() {
        let mut t = task(Operation::Upgrade);
        let fx = apply_reply(
            &t,
            &deploying(&[1]),
            OtherNodes::default(),
            &reply(Some("running"), Some(40), vec![]),
        );
        assert_eq!(
            fx.task,
            Some(TaskChange {
                status: TaskStatus::Running,
                progress: 40,
                message: None
            })
        );
        assert!(fx.cluster.is_none() && fx.notifications.is_empty());

        t.progress = 60;
        let fx = apply_reply(
            &t,
            &deploying(&[1]),
            OtherNodes::default(),
            &reply(Some("running"), Some(30), vec![]),
        );
        assert!(fx.is_empty(), "a lower progress changes nothing: {fx:?}");
    }

    #[test]
    fn nodes_without_overall_progress_give_the_mean_of_all_cluster_nodes() {
        let t = task(Operation::Upgrade);
        let nodes = deploying(&[1, 2, 3, 4]);
        let fx = apply_reply(
            &t,
            &nodes,
            OtherNodes::default(),
            &reply(
                None,
                None,
                vec![
                    report(1, NodeStatus::Deploying, 50),
                    report(2, NodeStatus::Deploying, 30),
                ],
            ),
        );
        assert_eq!(fx.task.unwrap().progress, 20, "(50 + 30 + 0 + 0) / 4");
        assert_eq!(fx.nodes.len(), 2);
    }

    #[test]
    fn unlisted_nodes_count_through_their_aggregate() {
        let t = task(Operation::Upgrade);
        let others = OtherNodes {
            count: 3,
            progress_sum: 30,
        };
        let r = reply(None, None, vec![report(1, NodeStatus::Deploying, 50)]);
        let fx = apply_reply(&t, &deploying(&[1]), others, &r);
        assert_eq!(fx.task.unwrap().progress, 20, "(50 + 30) / 4");
    }

    #[test]
    fn only_terminal_statuses_may_end_a_task() {
        assert!(may_end_task(&reply(Some("ready"), None, vec![])));
        assert!(may_end_task(&reply(Some("error"), None, vec![])));
        assert!(!may_end_task(&reply(Some("running"), None, vec![])));
        assert!(!may_end_task(&reply(None, Some(5), vec![])));
    }

    #[test]
    fn unknown_status_keeps_the_task_running() {
        let t = task(Operation::Update);
        let fx = apply_reply(
            &t,
            &deploying(&[1]),
            OtherNodes::default(),
            &reply(Some("deploying"), Some(10), vec![]),
        );
        assert_eq!(fx.task.unwrap().status, TaskStatus::Running);
        assert!(fx.cluster.is_none());
    }

    #[test]
    fn node_error_notifies_once_and_sets_progress_100() {
        let t = task(Operation::Upgrade);
        let nodes = deploying(&[1, 2]);
        let mut failing = report(2, NodeStatus::Error, 40);
        failing.error_type = Some(NodeErrorType::Deploy);
        failing.error_msg = Some("Puppet run failed".into());
        let r = reply(None, None, vec![failing]);
        let fx = apply_reply(&t, &nodes, OtherNodes::default(), &r);
        assert_eq!(
            fx.notifications,
            vec![NewNotification {
                topic: NotificationTopic::Error,
                message: "Failed to deploy node 'node-2': Puppet run failed".into(),
                node_id: Some(2),
            }]
        );
        let failed = &fx.nodes[0];
        assert_eq!((failed.status, failed.progress), (NodeStatus::Error, 100));
        assert_eq!(failed.error_type, Some(NodeErrorType::Deploy));

        // The same reply again, against the stored result: nothing new.
        let stored = vec![nodes[0].clone(), failed.clone()];
        let again = apply_reply(
            &TaskState {
                progress: fx.task.unwrap().progress,
                ..t
            },
            &stored,
            OtherNodes::default(),
            &r,
        );
        assert!(
            again.is_empty() && again.notifications.is_empty(),
            "{again:?}"
        );
    }

    #[test]
    fn node_error_without_message_says_unknown_error() {
        let fx = apply_reply(
            &task(Operation::Upgrade),
            &deploying(&[3]),
            OtherNodes::default(),
            &reply(
                None,
                None,
                vec![NodeReport {
                    uid: 3,
                    status: Some(NodeStatus::Error),
                    ..Default::default()
                }],
            ),
        );
        assert_eq!(
            fx.notifications[0].message,
            "Failed to deploy node 'node-3': Unknown error"
        );
    }

    #[test]
    fn offline_node_gets_progress_100_a_message_and_one_notification() {
        let t = task(Operation::Upgrade);
        let r = reply(
            None,
            None,
            vec![NodeReport {
                uid: 1,
                online: Some(false),
                ..Default::default()
            }],
        );
        let fx = apply_reply(&t, &deploying(&[1]), OtherNodes::default(), &r);
        let n = &fx.nodes[0];
        assert!(!n.online);
        assert_eq!(n.progress, 100);
        assert_eq!(n.error_msg.as_deref(), Some("Node is offline"));
        assert_eq!(
            fx.notifications[0].message,
            "Failed to deploy node 'node-1': Node is offline"
        );
        let again = apply_reply(
            &TaskState {
                progress: fx.task.unwrap().progress,
                ..t
            },
            &fx.nodes,
            OtherNodes::default(),
            &r,
        );
        assert!(again.notifications.is_empty());
    }

    #[test]
    fn stale_node_reports_are_ignored() {
        let t = task(Operation::Upgrade);
        let ready = vec![node(1, NodeStatus::Ready, 100)];
        let fx = apply_reply(
            &t,
            &ready,
            OtherNodes::default(),
            &reply(None, None, vec![report(1, NodeStatus::Deploying, 50)]),
        );
        assert!(fx.nodes.is_empty(), "lower status ignored");
        let halfway = vec![node(1, NodeStatus::Deploying, 60)];
        let fx = apply_reply(
            &t,
            &halfway,
            OtherNodes::default(),
            &reply(None, None, vec![report(1, NodeStatus::Deploying, 20)]),
        );
        assert!(
            fx.nodes.is_empty(),
            "lower progress at the same status ignored"
        );
        let failed = vec![node(1, NodeStatus::Error, 100)];
        let fx = apply_reply(
            &t,
            &failed,
            OtherNodes::default(),
            &reply(None, None, vec![report(1, NodeStatus::Ready, 100)]),
        );
        assert!(fx.nodes.is_empty(), "error outranks ready");
    }

    #[test]
    fn unknown_node_ids_are_skipped() {
        let fx = apply_reply(
            &task(Operation::Upgrade),
            &deploying(&[1]),
            OtherNodes::default(),
            &reply(None, None, vec![report(99, NodeStatus::Error, 100)]),
        );
        assert!(fx.nodes.is_empty() && fx.notifications.is_empty());
    }

    #[test]
    fn ready_ends_the_task_and_switches_the_release() {
        let t = task(Operation::Upgrade);
        let nodes = vec![
            node(1, NodeStatus::Ready, 100),
            node(2, NodeStatus::Deploying, 70),
        ];
        let fx = apply_reply(
            &t,
            &nodes,
            OtherNodes::default(),
            &reply(Some("ready"), Some(100), vec![]),
        );
        assert_eq!(
            fx.task,
            Some(TaskChange {
                status: TaskStatus::Ready,
                progress: 100,
                message: Some("Upgrade of environment 'env-multinode' is done.".into()),
            })
        );
        let cluster = fx.cluster.unwrap();
        assert_eq!(cluster.status, ClusterStatus::Operational);
        assert_eq!(
            cluster.releases,
            ReleasePointers {
                release_id: 2,
                pending_release_id: None
            }
        );
        assert_eq!(
            fx.nodes,
            vec![node(2, NodeStatus::Ready, 100)],
            "deploying nodes become ready"
        );
        assert_eq!(fx.notifications.len(), 1);
        assert_eq!(fx.notifications[0].topic, NotificationTopic::Done);
    }

    #[test]
    fn ready_with_a_failed_node_ends_as_error() {
        let t = task(Operation::Downgrade);
        let nodes = vec![
            node(1, NodeStatus::Error, 100),
            node(2, NodeStatus::Ready, 100),
        ];
        let fx = apply_reply(
            &t,
            &nodes,
            OtherNodes::default(),
            &reply(Some("ready"), Some(100), vec![]),
        );
        let change = fx.task.unwrap();
        assert_eq!(change.status, TaskStatus::Error);
        assert_eq!(
            change.message.as_deref(),
            Some("Downgrade has failed. Check these nodes:\n'node-1'")
        );
        assert_eq!(fx.cluster.unwrap().status, ClusterStatus::DowngradeError);
        assert_eq!(fx.notifications[0].topic, NotificationTopic::Error);
    }

    #[test]
    fn error_with_text_and_without() {
        let t = task(Operation::Rollback);
        let mut r = reply(Some("error"), None, vec![]);
        r.error = Some("Timeout of deployment is exceeded.".into());
        let fx = apply_reply(&t, &deploying(&[1]), OtherNodes::default(), &r);
        assert_eq!(
            fx.task.as_ref().unwrap().message.as_deref(),
            Some("Rollback has failed. Timeout of deployment is exceeded.")
        );
        assert_eq!(fx.cluster.unwrap().status, ClusterStatus::RollbackError);
        let failed = &fx.nodes[0];
        assert_eq!(
            (failed.status, failed.error_type),
            (NodeStatus::Error, Some(NodeErrorType::Deploy))
        );

        let fx = apply_reply(
            &t,
            &[
                node(1, NodeStatus::Error, 100),
                node(2, NodeStatus::Error, 100),
            ],
            OtherNodes::default(),
            &reply(Some("error"), None, vec![]),
        );
        assert_eq!(
            fx.task.unwrap().message.as_deref(),
            Some("Rollback has failed. Check these nodes:\n'node-1', 'node-2'")
        );
        let fx = apply_reply(
            &t,
            &[],
            OtherNodes::default(),
            &reply(Some("error"), None, vec![]),
        );
        assert_eq!(
            fx.task.unwrap().message.as_deref(),
            Some("Rollback has failed. Check these nodes:\nUnknown error")
        );
    }

    #[test]
    fn error_keeps_release_pointers() {
        let fx = apply_reply(
            &task(Operation::Upgrade),
            &deploying(&[1]),
            OtherNodes::default(),
            &reply(Some("error"), Some(50), vec![]),
        );
        let cluster = fx.cluster.unwrap();
        assert_eq!(
            cluster.releases,
            ReleasePointers {
                release_id: 1,
                pending_release_id: Some(2)
            }
        );
        assert_eq!(fx.task.unwrap().progress, 50);
    }

    #[test]
    fn ended_task_ignores_every_reply() {
        for status in [TaskStatus::Ready, TaskStatus::Error] {
            let t = TaskState {
                status,
                ..task(Operation::Upgrade)
            };
            for r in [
                reply(Some("error"), None, vec![report(1, NodeStatus::Error, 100)]),
                reply(Some("ready"), Some(100), vec![]),
                reply(Some("running"), Some(99), vec![]),
            ] {
                let fx = apply_reply(&t, &deploying(&[1]), OtherNodes::default(), &r);
                assert!(fx.is_empty() && fx.notifications.is_empty());
            }
        }
    }

    #[test]
    fn node_error_and_task_error_in_one_reply_give_two_notifications() {
        let r = reply(Some("error"), None, vec![report(1, NodeStatus::Error, 100)]);
        let fx = apply_reply(
            &task(Operation::Upgrade),
            &deploying(&[1, 2]),
            OtherNodes::default(),
            &r,
        );
        assert_eq!(fx.notifications.len(), 2);
        assert_eq!(
            fx.notifications[1].message,
            "Upgrade has failed. Check these nodes:\n'node-1'"
        );
        // node 2 was still deploying: it fails with the task, without a notification of its own
        let n2 = fx.nodes.iter().find(|n| n.id == 2).unwrap();
        assert_eq!(n2.status, NodeStatus::Error);
    }
}
