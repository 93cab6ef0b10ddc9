//! Astute's `deploy_resp`: one reply, one transaction. The pure rules in `core::reply` decide;
//! this file loads what they need in three queries and writes only what changed.

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ActiveValue::Unchanged, ColumnTrait, ConnectionTrait, DbErr,
    EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};

use super::notifications::{self, NewNotification};
use super::{clusters, Context};
use crate::core::enums::{NodeErrorType, NodeStatus, Operation, TaskStatus};
use crate::core::reply::{
    apply_reply, may_end_task, DeployReply, NodeState, OtherNodes, ReplyEffects, TaskState,
};
use crate::core::transitions::ReleasePointers;
use crate::store::entity::{cluster, node, task};
use crate::wire::astute_reply::AstuteReply;

/// What a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Changes were written; `ended` when the task ended with this reply.
    Applied { ended: Option<TaskStatus> },
    /// Nothing to change: a duplicate, a stale report, or a task that has already ended.
    Unchanged,
    /// No task has this uuid.
    UnknownTask,
}

/// Applies one `deploy_resp` inside the caller's transaction.
pub async fn deploy_resp<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    reply: &AstuteReply,
) -> Result<ReplyOutcome, DbErr> {
    let Some((task, cluster)) = lock_task(db, &reply.task_uuid).await? else {
        return Ok(ReplyOutcome::UnknownTask);
    };
    apply_to_locked(db, ctx, &task, &cluster, &reply.reply).await
}

/// Ends a running task that has had no word from Astute since before `silent_since`, as if
/// Astute had answered `error` with `reason`. Astute acks a cast before it works, so a cast
/// lost in an Astute crash would otherwise leave the task running forever. Re-checked under
/// the task's lock: a reply that arrived meanwhile wins.
pub async fn expire_if_silent<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    task_uuid: &str,
    silent_since: chrono::DateTime<Utc>,
    reason: &str,
) -> Result<ReplyOutcome, DbErr> {
    let Some((task, cluster)) = lock_task(db, task_uuid).await? else {
        return Ok(ReplyOutcome::UnknownTask);
    };
    if task.status != TaskStatus::Running.as_str() || task.updated_at >= silent_since {
        return Ok(ReplyOutcome::Unchanged);
    }
    let give_up = DeployReply {
        status: Some(TaskStatus::Error.as_str().into()),
        error: Some(reason.into()),
        ..Default::default()
    };
    apply_to_locked(db, ctx, &task, &cluster, &give_up).await
}

/// Ends a running task as failed with `reason`, as an `error` reply would: used when its cast
/// can never reach Astute (the broker refused it and it was set aside).
pub async fn fail_running_task<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    task_uuid: &str,
    reason: &str,
) -> Result<ReplyOutcome, DbErr> {
    let Some((task, cluster)) = lock_task(db, task_uuid).await? else {
        return Ok(ReplyOutcome::UnknownTask);
    };
    if task.status != TaskStatus::Running.as_str() {
        return Ok(ReplyOutcome::Unchanged);
    }
    let give_up = DeployReply {
        status: Some(TaskStatus::Error.as_str().into()),
        error: Some(reason.into()),
        ..Default::default()
    };
    apply_to_locked(db, ctx, &task, &cluster, &give_up).await
}

/// The cast of these running tasks reached the broker now: the watchdog's silence counts from
/// here, not from when the task was created (a cast may wait in the outbox for a queue).
pub async fn casts_delivered<C: ConnectionTrait>(
    db: &C,
    task_uuids: &[String],
) -> Result<(), DbErr> {
    if task_uuids.is_empty() {
        return Ok(());
    }
    task::Entity::update_many()
        .col_expr(task::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(task::Column::Uuid.is_in(task_uuids.iter().map(String::as_str)))
        .filter(task::Column::Status.eq(TaskStatus::Running.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// The uuids of running tasks last heard of before `cutoff` (through the index on status and
/// `updated_at`, however many tasks have ended).
pub async fn silent_running_tasks<C: ConnectionTrait>(
    db: &C,
    cutoff: chrono::DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    task::Entity::find()
        .select_only()
        .column(task::Column::Uuid)
        .filter(task::Column::Status.eq(TaskStatus::Running.as_str()))
        .filter(task::Column::UpdatedAt.lt(cutoff))
        .into_tuple()
        .all(db)
        .await
}

/// Loads a task by uuid with its cluster, in one query that locks both rows (PostgreSQL), so
/// concurrent replies to one task, from any bridge, apply one after another.
async fn lock_task<C: ConnectionTrait>(
    db: &C,
    uuid: &str,
) -> Result<Option<(task::Model, cluster::Model)>, DbErr> {
    // An inner join: PostgreSQL locks no row on the nullable side of an outer join.
    let found = task::Entity::find()
        .filter(task::Column::Uuid.eq(uuid))
        .join(JoinType::InnerJoin, task::Relation::Cluster.def())
        .select_also(cluster::Entity)
        .lock_exclusive()
        .one(db)
        .await?;
    Ok(match found {
        Some((task, Some(cluster))) => {
            tracing::Span::current().record("cluster_id", task.cluster_id);
            Some((task, cluster))
        }
        _ => None,
    })
}

async fn apply_to_locked<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    task: &task::Model,
    cluster: &cluster::Model,
    reply: &DeployReply,
) -> Result<ReplyOutcome, DbErr> {
    let (Some(status), Some(operation)) = (
        TaskStatus::parse(&task.status),
        Operation::parse(&task.name),
    ) else {
        return Ok(ReplyOutcome::Unchanged);
    };
    if status != TaskStatus::Running {
        return Ok(ReplyOutcome::Unchanged);
    }
    let (nodes, others) = nodes_for(db, cluster.id, reply).await?;
    let state = TaskState {
        operation,
        status,
        progress: percent(task.progress),
        cluster_name: cluster.name.clone(),
        releases: ReleasePointers {
            release_id: cluster.release_id,
            pending_release_id: cluster.pending_release_id,
        },
    };
    let node_states: Vec<NodeState> = nodes.iter().map(node_state).collect();
    let effects = apply_reply(&state, &node_states, others, reply);
    if effects.is_empty() && effects.notifications.is_empty() {
        return Ok(ReplyOutcome::Unchanged);
    }
    write(db, ctx, task, &effects).await?;
    let ended = effects.cluster.and(effects.task.as_ref().map(|t| t.status));
    Ok(ReplyOutcome::Applied { ended })
}

/// The nodes the rules need: every node when the reply may end the task; otherwise only the
/// listed ones, with the rest summed up in one aggregate query (a reply for a large cluster
/// must not reload the whole cluster).
async fn nodes_for<C: ConnectionTrait>(
    db: &C,
    cluster_id: i32,
    reply: &DeployReply,
) -> Result<(Vec<node::Model>, OtherNodes), DbErr> {
    if may_end_task(reply) {
        let all = clusters::nodes_of(db, cluster_id).await?;
        return Ok((all, OtherNodes::default()));
    }
    if reply.nodes.is_empty() {
        return Ok((Vec::new(), OtherNodes::default()));
    }
    let listed = node::Entity::find()
        .filter(node::Column::ClusterId.eq(cluster_id))
        .filter(node::Column::Id.is_in(reply.nodes.iter().map(|n| n.uid)))
        .order_by_asc(node::Column::Id)
        .all(db)
        .await?;
    let (count, sum): (i64, Option<i64>) = node::Entity::find()
        .select_only()
        .column_as(node::Column::Id.count(), "count")
        .column_as(node::Column::Progress.sum(), "sum")
        .filter(node::Column::ClusterId.eq(cluster_id))
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or((0, None));
    let listed_sum: i64 = listed.iter().map(|n| i64::from(n.progress)).sum();
    let others = OtherNodes {
        count: u32::try_from(count - listed.len() as i64).unwrap_or(0),
        progress_sum: u32::try_from(sum.unwrap_or(0) - listed_sum).unwrap_or(0),
    };
    Ok((listed, others))
}

async fn write<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    task: &task::Model,
    effects: &ReplyEffects,
) -> Result<(), DbErr> {
    let now = Utc::now();
    for n in &effects.nodes {
        node::Entity::update(node::ActiveModel {
            id: Unchanged(n.id),
            status: Set(n.status.as_str().into()),
            progress: Set(i32::from(n.progress)),
            error_type: Set(n.error_type.map(|t| t.as_str().to_string())),
            error_msg: Set(n.error_msg.clone()),
            online: Set(n.online),
            ..Default::default()
        })
        .exec(db)
        .await?;
    }
    // The task's `updated_at` moves with every applied reply: it is what the watchdog reads
    // as the last word from Astute.
    let mut update =
        task::Entity::update_many().col_expr(task::Column::UpdatedAt, Expr::value(now));
    if let Some(change) = &effects.task {
        update = update
            .col_expr(task::Column::Status, Expr::value(change.status.as_str()))
            .col_expr(
                task::Column::Progress,
                Expr::value(i32::from(change.progress)),
            );
        if let Some(message) = &change.message {
            update = update.col_expr(task::Column::Message, Expr::value(message.as_str()));
        }
    }
    update.filter(task::Column::Id.eq(task.id)).exec(db).await?;
    if let Some(after) = &effects.cluster {
        cluster::Entity::update_many()
            .col_expr(cluster::Column::Status, Expr::value(after.status.as_str()))
            .col_expr(
                cluster::Column::ReleaseId,
                Expr::value(after.releases.release_id),
            )
            .col_expr(
                cluster::Column::PendingReleaseId,
                Expr::value(after.releases.pending_release_id),
            )
            .col_expr(cluster::Column::UpdatedAt, Expr::value(now))
            .filter(cluster::Column::Id.eq(task.cluster_id))
            .exec(db)
            .await?;
        tracing::info!(
            task_uuid = %task.uuid,
            cluster_id = task.cluster_id,
            cluster_status = %after.status,
            release_id = after.releases.release_id,
            "task ended"
        );
    }
    for n in &effects.notifications {
        notifications::record(
            db,
            ctx,
            NewNotification {
                topic: n.topic,
                message: n.message.clone(),
                cluster_id: Some(task.cluster_id),
                node_id: n.node_id,
                task_id: Some(task.id),
            },
        )
        .await?;
    }
    Ok(())
}

pub(crate) fn node_state(model: &node::Model) -> NodeState {
    NodeState {
        id: model.id,
        name: model.name.clone(),
        // A status outside the contract's list ranks lowest, so any report may replace it.
        status: NodeStatus::parse(&model.status).unwrap_or(NodeStatus::Discover),
        progress: percent(model.progress),
        error_type: model.error_type.as_deref().and_then(NodeErrorType::parse),
        error_msg: model.error_msg.clone(),
        online: model.online,
    }
}

pub(crate) fn percent(value: i32) -> u8 {
    u8::try_from(value.clamp(0, 100)).unwrap_or(0)
}
