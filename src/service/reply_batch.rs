//! A batch of Astute's `deploy_resp` replies applied inside one transaction with set-based
//! statements: the batch's tasks locked in one query, their nodes read in one (and summed up in
//! one), the rules of `core::reply` run in memory reply after reply, then the changes written at
//! once: one statement for every changed node, one for every changed task, one insert for every
//! notification and one for their outbox rows. The statement count no longer grows with the
//! replies (only an ended task's cluster costs one more).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    JoinType, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Statement, Value,
};

use super::notifications::{self, NewNotification};
use super::replies::{node_state, percent, ReplyOutcome};
use super::Context;
use crate::core::enums::{Operation, TaskStatus};
use crate::core::reply::{apply_reply, may_end_task, NodeState, OtherNodes, TaskChange, TaskState};
use crate::core::transitions::{ClusterAfterTask, ReleasePointers};
use crate::store::entity::{cluster, node, task};
use crate::wire::astute_reply::AstuteReply;

/// Most nodes written by one statement (six values each), well under both backends' limits on
/// bound values.
const NODES_PER_STATEMENT: usize = 1000;

/// A locked running task and what the batch has done to it so far.
struct Tracked {
    task: task::Model,
    state: TaskState,
    applied: bool,
    change: Option<TaskChange>,
    ended: Option<ClusterAfterTask>,
}

/// A cluster's nodes as the batch sees them: every node (`full`), or only those the replies
/// list, with the count and progress sum of all of them.
#[derive(Default)]
struct ClusterNodes {
    full: bool,
    nodes: BTreeMap<i32, NodeState>,
    count: i64,
    progress_sum: i64,
}

impl ClusterNodes {
    /// The nodes and summary the rules need for `reply`.
    fn for_reply(&self, reply: &AstuteReply) -> (Vec<NodeState>, OtherNodes) {
        if self.full {
            return (
                self.nodes.values().cloned().collect(),
                OtherNodes::default(),
            );
        }
        let listed: BTreeSet<i32> = reply.reply.nodes.iter().map(|n| n.uid).collect();
        let nodes: Vec<NodeState> = listed
            .iter()
            .filter_map(|id| self.nodes.get(id).cloned())
            .collect();
        let listed_sum: i64 = nodes.iter().map(|n| i64::from(n.progress)).sum();
        let others = OtherNodes {
            count: u32::try_from(self.count - nodes.len() as i64).unwrap_or(0),
            progress_sum: u32::try_from(self.progress_sum - listed_sum).unwrap_or(0),
        };
        (nodes, others)
    }

    fn record(&mut self, changed: &NodeState) {
        if let Some(old) = self.nodes.insert(changed.id, changed.clone()) {
            self.progress_sum += i64::from(changed.progress) - i64::from(old.progress);
        }
    }
}

/// Applies `replies` (sorted by task uuid, each task's in delivery order) inside the caller's
/// transaction; one outcome per reply, in order.
pub async fn deploy_resp_batch<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    replies: &[&AstuteReply],
) -> Result<Vec<ReplyOutcome>, DbErr> {
    let uuids: BTreeSet<&str> = replies.iter().map(|r| r.task_uuid.as_str()).collect();
    let (mut tracked, known) = lock_tasks(db, &uuids).await?;
    let mut clusters = load_nodes(db, &tracked, replies).await?;
    let loaded: HashMap<i32, NodeState> = clusters
        .values()
        .flat_map(|c| c.nodes.values().map(|n| (n.id, n.clone())))
        .collect();

    let mut outcomes = Vec::with_capacity(replies.len());
    let mut notes = Vec::new();
    for reply in replies {
        let Some(entry) = tracked.get_mut(reply.task_uuid.as_str()) else {
            outcomes.push(if known.contains(reply.task_uuid.as_str()) {
                ReplyOutcome::Unchanged
            } else {
                ReplyOutcome::UnknownTask
            });
            continue;
        };
        if entry.state.status != TaskStatus::Running {
            outcomes.push(ReplyOutcome::Unchanged);
            continue;
        }
        let nodes = clusters.entry(entry.task.cluster_id).or_default();
        let (node_states, others) = nodes.for_reply(reply);
        let effects = apply_reply(&entry.state, &node_states, others, &reply.reply);
        if effects.is_empty() && effects.notifications.is_empty() {
            outcomes.push(ReplyOutcome::Unchanged);
            continue;
        }
        entry.applied = true;
        for changed in &effects.nodes {
            nodes.record(changed);
        }
        if let Some(change) = &effects.task {
            entry.state.status = change.status;
            entry.state.progress = change.progress;
            let message = change
                .message
                .clone()
                .or_else(|| entry.change.as_ref().and_then(|c| c.message.clone()));
            entry.change = Some(TaskChange {
                message,
                ..change.clone()
            });
        }
        if let Some(after) = &effects.cluster {
            entry.state.releases = after.releases;
            entry.ended = Some(*after);
        }
        for n in effects.notifications {
            notes.push(NewNotification {
                topic: n.topic,
                message: n.message,
                cluster_id: Some(entry.task.cluster_id),
                node_id: n.node_id,
                task_id: Some(entry.task.id),
            });
        }
        let ended = effects.cluster.and(effects.task.map(|t| t.status));
        outcomes.push(ReplyOutcome::Applied { ended });
    }

    let changed: Vec<&NodeState> = clusters
        .values()
        .flat_map(|c| c.nodes.values())
        .filter(|n| loaded.get(&n.id) != Some(*n))
        .collect();
    update_nodes(db, &changed).await?;
    write_tasks(db, &tracked).await?;
    notifications::record_many(db, ctx, notes).await?;
    Ok(outcomes)
}

/// Locks the batch's tasks and their clusters in one query, in uuid order (every bridge locks
/// in this order, so two batches never deadlock). Returns the running ones, by uuid, and the
/// uuids of every task found.
async fn lock_tasks<C: ConnectionTrait>(
    db: &C,
    uuids: &BTreeSet<&str>,
) -> Result<(HashMap<String, Tracked>, HashSet<String>), DbErr> {
    // An inner join: PostgreSQL locks no row on the nullable side of an outer join.
    let found = task::Entity::find()
        .filter(task::Column::Uuid.is_in(uuids.iter().copied()))
        .join(JoinType::InnerJoin, task::Relation::Cluster.def())
        .select_also(cluster::Entity)
        .order_by_asc(task::Column::Uuid)
        .lock_exclusive()
        .all(db)
        .await?;
    let mut tracked = HashMap::with_capacity(found.len());
    let mut known = HashSet::with_capacity(found.len());
    for (task, cluster) in found {
        let Some(cluster) = cluster else { continue };
        known.insert(task.uuid.clone());
        let (Some(status), Some(operation)) = (
            TaskStatus::parse(&task.status),
            Operation::parse(&task.name),
        ) else {
            continue;
        };
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
        tracked.insert(
            task.uuid.clone(),
            Tracked {
                task,
                state,
                applied: false,
                change: None,
                ended: None,
            },
        );
    }
    Ok((tracked, known))
}

/// The nodes the rules need, in two queries at most: every node of a cluster whose task a reply
/// may end, only the listed nodes of the others (a reply for a large cluster must not reload the
/// whole cluster), plus those others' node count and progress sum.
async fn load_nodes<C: ConnectionTrait>(
    db: &C,
    tracked: &HashMap<String, Tracked>,
    replies: &[&AstuteReply],
) -> Result<HashMap<i32, ClusterNodes>, DbErr> {
    let mut full = BTreeSet::new();
    let mut partial = BTreeSet::new();
    let mut listed = BTreeSet::new();
    for reply in replies {
        let Some(entry) = tracked.get(reply.task_uuid.as_str()) else {
            continue;
        };
        if entry.state.status != TaskStatus::Running {
            continue;
        }
        if may_end_task(&reply.reply) {
            full.insert(entry.task.cluster_id);
        } else if !reply.reply.nodes.is_empty() {
            partial.insert(entry.task.cluster_id);
            listed.extend(reply.reply.nodes.iter().map(|n| n.uid));
        }
    }
    partial.retain(|c| !full.contains(c));
    let mut clusters: HashMap<i32, ClusterNodes> = HashMap::new();
    if full.is_empty() && partial.is_empty() {
        return Ok(clusters);
    }
    // Only the sides that name something: an empty `IN ()` is written `1 = 2`, which a
    // generic plan cannot fold away.
    let mut wanted = Condition::any();
    if !full.is_empty() {
        wanted = wanted.add(node::Column::ClusterId.is_in(full.iter().copied()));
    }
    if !partial.is_empty() {
        wanted = wanted.add(
            Condition::all()
                .add(node::Column::ClusterId.is_in(partial.iter().copied()))
                .add(node::Column::Id.is_in(listed.iter().copied())),
        );
    }
    let nodes = node::Entity::find()
        .filter(wanted)
        .order_by_asc(node::Column::Id)
        .all(db)
        .await?;
    for model in &nodes {
        let entry = clusters.entry(model.cluster_id).or_default();
        entry.nodes.insert(model.id, node_state(model));
    }
    for id in &full {
        let entry = clusters.entry(*id).or_default();
        entry.full = true;
        entry.count = entry.nodes.len() as i64;
        entry.progress_sum = entry.nodes.values().map(|n| i64::from(n.progress)).sum();
    }
    if !partial.is_empty() {
        let sums: Vec<(i32, i64, Option<i64>)> = node::Entity::find()
            .select_only()
            .column(node::Column::ClusterId)
            .column_as(node::Column::Id.count(), "count")
            .column_as(node::Column::Progress.sum(), "sum")
            .filter(node::Column::ClusterId.is_in(partial.iter().copied()))
            .group_by(node::Column::ClusterId)
            .into_tuple()
            .all(db)
            .await?;
        for (id, count, sum) in sums {
            let entry = clusters.entry(id).or_default();
            entry.count = count;
            entry.progress_sum = sum.unwrap_or(0);
        }
    }
    Ok(clusters)
}

/// Writes the nodes' new values with one `UPDATE … FROM` a list of values per
/// `NODES_PER_STATEMENT` nodes.
async fn update_nodes<C: ConnectionTrait>(db: &C, changed: &[&NodeState]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in changed.chunks(NODES_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for n in chunk {
            let at = values.len();
            rows.push(match backend {
                // PostgreSQL types a VALUES list from its first row: say what each column is.
                DbBackend::Postgres => format!(
                    "(${}::int4, ${}::text, ${}::int4, ${}::text, ${}::text, ${}::bool)",
                    at + 1,
                    at + 2,
                    at + 3,
                    at + 4,
                    at + 5,
                    at + 6
                ),
                _ => "(?, ?, ?, ?, ?, ?)".to_string(),
            });
            values.extend([
                n.id.into(),
                n.status.as_str().into(),
                i32::from(n.progress).into(),
                n.error_type.map(|t| t.as_str().to_string()).into(),
                n.error_msg.clone().into(),
                n.online.into(),
            ]);
        }
        let sql = format!(
            "WITH v (id, status, progress, error_type, error_msg, online) AS (VALUES {}) \
             UPDATE nodes SET status = v.status, progress = v.progress, \
             error_type = v.error_type, error_msg = v.error_msg, online = v.online \
             FROM v WHERE nodes.id = v.id",
            rows.join(", ")
        );
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// One statement for every task a reply changed; then the cluster of each task that ended.
async fn write_tasks<C: ConnectionTrait>(
    db: &C,
    tracked: &HashMap<String, Tracked>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut applied: Vec<&Tracked> = tracked.values().filter(|t| t.applied).collect();
    if applied.is_empty() {
        return Ok(());
    }
    applied.sort_by(|a, b| a.task.uuid.cmp(&b.task.uuid));
    let backend = db.get_database_backend();
    let pg = backend == DbBackend::Postgres;
    let mut rows = Vec::with_capacity(applied.len());
    // The task's `updated_at` moves with every applied reply: it is what the watchdog reads as
    // the last word from Astute. A NULL leaves the column as it is.
    let mut values: Vec<Value> = vec![now.into()];
    for entry in &applied {
        let at = values.len();
        // Numbered on both backends: `updated_at`'s value comes first but is written last.
        rows.push(if pg {
            format!(
                "(${}::int4, ${}::text, ${}::int4, ${}::text)",
                at + 1,
                at + 2,
                at + 3,
                at + 4
            )
        } else {
            format!("(?{}, ?{}, ?{}, ?{})", at + 1, at + 2, at + 3, at + 4)
        });
        let change = entry.change.as_ref();
        values.extend([
            entry.task.id.into(),
            change.map(|c| c.status.as_str().to_string()).into(),
            change.map(|c| i32::from(c.progress)).into(),
            change.and_then(|c| c.message.clone()).into(),
        ]);
    }
    let sql = format!(
        "WITH v (id, status, progress, message) AS (VALUES {}) \
         UPDATE tasks SET updated_at = {}, status = COALESCE(v.status, tasks.status), \
         progress = COALESCE(v.progress, tasks.progress), \
         message = COALESCE(v.message, tasks.message) FROM v WHERE tasks.id = v.id",
        rows.join(", "),
        if pg { "$1::timestamptz" } else { "?1" }
    );
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    for entry in applied {
        if let Some(after) = &entry.ended {
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
                .filter(cluster::Column::Id.eq(entry.task.cluster_id))
                .exec(db)
                .await?;
            tracing::info!(
                task_uuid = %entry.task.uuid,
                cluster_id = entry.task.cluster_id,
                cluster_status = %after.status,
                release_id = after.releases.release_id,
                "task ended"
            );
        }
    }
    Ok(())
}
