//! Cluster status transitions (contract section 2): when an update or a rollback may start, and
//! what the end of a task does to its cluster and nodes.

use super::enums::{ClusterStatus, NodeErrorType, NodeStatus, Operation};
use super::refusal::Refusal;

/// Statuses in which something is already happening to the cluster.
fn is_busy(status: ClusterStatus) -> bool {
    matches!(
        status,
        ClusterStatus::Update
            | ClusterStatus::Upgrade
            | ClusterStatus::Downgrade
            | ClusterStatus::Rollback
            | ClusterStatus::Deployment
            | ClusterStatus::Remove
    )
}

/// Statuses a failed patching operation leaves behind.
pub fn is_failed_operation(status: ClusterStatus) -> bool {
    matches!(
        status,
        ClusterStatus::UpdateError
            | ClusterStatus::UpgradeError
            | ClusterStatus::DowngradeError
            | ClusterStatus::RollbackError
    )
}

/// Whether an update (of any kind) may start on a cluster in `status`.
pub fn check_update_allowed(status: ClusterStatus, has_running_task: bool) -> Result<(), Refusal> {
    if has_running_task {
        return Err(Refusal::conflict("the cluster already has a running task"));
    }
    if is_busy(status) {
        return Err(Refusal::conflict(format!(
            "the cluster is in status '{status}'; wait until it ends"
        )));
    }
    match status {
        ClusterStatus::New => Err(Refusal::invalid_state(
            "the cluster was never deployed (status 'new'): there is nothing to update",
        )),
        ClusterStatus::Operational | ClusterStatus::Stopped | ClusterStatus::Error => Ok(()),
        failed if is_failed_operation(failed) => Ok(()),
        other => Err(Refusal::invalid_state(format!(
            "an update cannot start from status '{other}'"
        ))),
    }
}

/// Whether a rollback may start on a cluster in `status`: only after a failed operation (any
/// other status, running ones included, is `invalid_state`).
pub fn check_rollback_allowed(
    status: ClusterStatus,
    has_running_task: bool,
) -> Result<(), Refusal> {
    if !is_failed_operation(status) {
        return Err(Refusal::invalid_state(format!(
            "a rollback is only possible after a failed update, upgrade, downgrade or rollback; \
             the cluster is in status '{status}'"
        )));
    }
    if has_running_task {
        return Err(Refusal::conflict("the cluster already has a running task"));
    }
    Ok(())
}

/// The task of the operation that failed, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedTask {
    pub operation: Operation,
    pub from_release_id: Option<i32>,
    pub to_release_id: Option<i32>,
}

/// The release a rollback leaves (its `openstack_version_prev` and its task's `from_release_id`):
/// the release the failed operation tried to reach, as its task recorded it, whatever the
/// pending release was set to afterwards. A failed rollback tried to reach the current release,
/// so rolling it back still leaves what that rollback was leaving. Without a record (no failed
/// task, or its release since deleted): the pending release, else the current one.
pub fn release_left_by_rollback(
    failed: Option<FailedTask>,
    pending_release_id: Option<i32>,
    current_release_id: i32,
) -> i32 {
    let recorded = failed.and_then(|task| match task.operation {
        Operation::Rollback => task.from_release_id,
        _ => task.to_release_id,
    });
    recorded
        .or(pending_release_id)
        .unwrap_or(current_release_id)
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    Ready,
    Error,
}

/// The cluster's release pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasePointers {
    pub release_id: i32,
    pub pending_release_id: Option<i32>,
}

/// What a node still `deploying` becomes when its task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployingNodesBecome {
    pub status: NodeStatus,
    /// `Some` to set the progress, `None` to leave it.
    pub progress: Option<u8>,
    pub error_type: Option<NodeErrorType>,
}

/// Everything the end of a task does to its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterAfterTask {
    pub status: ClusterStatus,
    pub releases: ReleasePointers,
    pub deploying_nodes: DeployingNodesBecome,
}

/// The effect of a task of `operation` ending with `outcome` on a cluster with `releases`.
/// Success moves the cluster onto its pending release (except a rollback, which redeployed the
/// current one) and clears the pending release; failure keeps both pointers so a rollback knows
/// where it came from.
pub fn after_task(
    operation: Operation,
    outcome: TaskOutcome,
    releases: ReleasePointers,
) -> ClusterAfterTask {
    match outcome {
        TaskOutcome::Ready => ClusterAfterTask {
            status: ClusterStatus::Operational,
            releases: ReleasePointers {
                release_id: match (operation.switches_release(), releases.pending_release_id) {
                    (true, Some(pending)) => pending,
                    _ => releases.release_id,
                },
                pending_release_id: None,
            },
            deploying_nodes: DeployingNodesBecome {
                status: NodeStatus::Ready,
                progress: Some(100),
                error_type: None,
            },
        },
        TaskOutcome::Error => ClusterAfterTask {
            status: operation.error_status(),
            releases,
            deploying_nodes: DeployingNodesBecome {
                status: NodeStatus::Error,
                progress: None,
                error_type: Some(NodeErrorType::Deploy),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rollback_leaves_what_the_failed_task_tried_to_reach() {
        let failed = |operation, from, to| {
            Some(FailedTask {
                operation,
                from_release_id: from,
                to_release_id: to,
            })
        };
        // The pending release was changed after the failure (to 9): the task decides.
        for operation in [Operation::Update, Operation::Upgrade, Operation::Downgrade] {
            assert_eq!(
                release_left_by_rollback(failed(operation, Some(1), Some(2)), Some(9), 1),
                2,
                "{operation}"
            );
        }
        // A failed rollback (2 → 1) is rolled back again: it still leaves 2.
        assert_eq!(
            release_left_by_rollback(failed(Operation::Rollback, Some(2), Some(1)), Some(9), 1),
            2
        );
        // The failed target was deleted since: the pending release, else the current one.
        assert_eq!(
            release_left_by_rollback(failed(Operation::Upgrade, Some(1), None), Some(9), 1),
            9
        );
        assert_eq!(release_left_by_rollback(None, Some(9), 1), 9);
        assert_eq!(release_left_by_rollback(None, None, 1), 1);
    }

    use super::*;
    use crate::core::refusal::ErrorCode;

    fn update_verdict(status: ClusterStatus) -> Result<(), ErrorCode> {
        check_update_allowed(status, false).map_err(|r| r.code)
    }

    fn rollback_verdict(status: ClusterStatus) -> Result<(), ErrorCode> {
        check_rollback_allowed(status, false).map_err(|r| r.code)
    }

    #[test]
    fn update_verdict_for_every_status() {
        use ClusterStatus::*;
        for status in ClusterStatus::ALL.iter().copied() {
            let expected = match status {
                Operational | Stopped | Error | UpdateError | UpgradeError | DowngradeError
                | RollbackError => Ok(()),
                Update | Upgrade | Downgrade | Rollback | Deployment | Remove => {
                    Err(ErrorCode::Conflict)
                }
                New => Err(ErrorCode::InvalidState),
            };
            assert_eq!(update_verdict(status), expected, "update from {status}");
        }
    }

    #[test]
    fn rollback_verdict_for_every_status() {
        use ClusterStatus::*;
        for status in ClusterStatus::ALL.iter().copied() {
            let expected = match status {
                UpdateError | UpgradeError | DowngradeError | RollbackError => Ok(()),
                _ => Err(ErrorCode::InvalidState),
            };
            assert_eq!(rollback_verdict(status), expected, "rollback from {status}");
        }
    }

    #[test]
    fn a_running_task_is_a_conflict() {
        for status in ClusterStatus::ALL.iter().copied() {
            assert_eq!(
                check_update_allowed(status, true).unwrap_err().code,
                ErrorCode::Conflict
            );
            let expected = if is_failed_operation(status) {
                ErrorCode::Conflict
            } else {
                ErrorCode::InvalidState
            };
            assert_eq!(
                check_rollback_allowed(status, true).unwrap_err().code,
                expected
            );
        }
    }

    const POINTERS: ReleasePointers = ReleasePointers {
        release_id: 1,
        pending_release_id: Some(2),
    };

    #[test]
    fn success_switches_release_for_every_operation_but_rollback() {
        for op in Operation::ALL.iter().copied() {
            let after = after_task(op, TaskOutcome::Ready, POINTERS);
            assert_eq!(after.status, ClusterStatus::Operational);
            assert_eq!(after.releases.pending_release_id, None);
            let expected = if op == Operation::Rollback { 1 } else { 2 };
            assert_eq!(after.releases.release_id, expected, "{op}");
            assert_eq!(after.deploying_nodes.status, NodeStatus::Ready);
            assert_eq!(after.deploying_nodes.progress, Some(100));
        }
    }

    #[test]
    fn failure_keeps_both_pointers_and_fails_deploying_nodes() {
        for op in Operation::ALL.iter().copied() {
            let after = after_task(op, TaskOutcome::Error, POINTERS);
            assert_eq!(after.status, op.error_status());
            assert_eq!(after.releases, POINTERS);
            assert_eq!(after.deploying_nodes.status, NodeStatus::Error);
            assert_eq!(
                after.deploying_nodes.error_type,
                Some(NodeErrorType::Deploy)
            );
        }
    }

    #[test]
    fn redeploy_without_pending_release_keeps_the_current_one() {
        let pointers = ReleasePointers {
            release_id: 1,
            pending_release_id: None,
        };
        let after = after_task(Operation::Update, TaskOutcome::Ready, pointers);
        assert_eq!(after.releases.release_id, 1);
    }
}
