//! Starting an update (of any kind), its dry run, and a rollback (contract section 2). Each start
//! changes the cluster, creates the task, resets the nodes and queues the `deploy` cast in one
//! transaction, so the cast reaches Astute if and only if that transaction commits.

use chrono::Utc;
use sea_orm::{
    sea_query::Expr,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{clusters, releases, to_json, Context, ServiceError, ServiceResult};
use crate::core::compatibility::choose_operation;
use crate::core::deploy_message::{
    deploy_message_size, deploy_message_sized, CastError, ClusterFacts, DeployPlan, NodeFacts,
    ReleaseFacts,
};
use crate::core::enums::{
    ClusterMode, ClusterStatus, NodeStatus, OperatingSystem, Operation, TaskStatus,
};
use crate::core::refusal::{ErrorCode, Refusal};
use crate::core::release_sources::{self, SourceError, Sources, StoredSources};
use crate::core::transitions::{
    check_rollback_allowed, check_update_allowed, release_left_by_rollback, FailedTask,
};
use crate::store::entity::outbox::DEPLOY_PLAN;
use crate::store::entity::{cluster, node, release, task};
use crate::store::is_unique_violation;
use crate::store::outbox::{self, MessageProperties, OutgoingMessage};

/// `update_cluster` and `check_update` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    pub cluster_id: i32,
    /// The target release.
    pub release_id: i32,
}

/// A decided operation, ready to start.
struct Start {
    cluster: cluster::Model,
    operation: Operation,
    from_release_id: i32,
    to_release_id: i32,
    pending_release_id: Option<i32>,
    task_uuid: String,
    /// What the cast is rendered from; its cast is within `amqp.max_message_bytes`.
    plan: DeployPlan,
    /// The cast's size in bytes, counted.
    cast_size: usize,
}

/// The answer of `check_update`: the verdict, and the exact cast an allowed update would send
/// (written as it is, not parsed again).
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub code: Option<ErrorCode>,
    pub message: Option<Box<RawValue>>,
    pub operation: Option<Operation>,
    pub reason: Option<String>,
}

pub async fn update_cluster<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    args: UpdateTarget,
) -> ServiceResult<Value> {
    let start = plan_update(db, ctx, &args, true).await?;
    begin(db, ctx, start).await
}

/// The verdict `update_cluster` would reach, and the exact cast it would send; changes nothing.
/// A cast over `amqp.max_message_bytes` is refused (`message_too_large`) rather than shown.
pub async fn check_update<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    args: UpdateTarget,
) -> ServiceResult<Verdict> {
    clusters::find(db, args.cluster_id, false).await?;
    match plan_update(db, ctx, &args, false).await {
        Ok(start) => {
            let message = deploy_message_sized(&start.plan, start.cast_size)
                .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
            let message = RawValue::from_string(message).map_err(|e| {
                Refusal::new(
                    ErrorCode::Internal,
                    format!("the cast is not valid JSON: {e}"),
                )
            })?;
            Ok(Verdict {
                allowed: true,
                code: None,
                message: Some(message),
                operation: Some(start.operation),
                reason: None,
            })
        }
        Err(ServiceError::Refused(refusal)) if refusal.code != ErrorCode::MessageTooLarge => {
            Ok(Verdict {
                allowed: false,
                code: Some(refusal.code),
                message: None,
                operation: None,
                reason: Some(refusal.message),
            })
        }
        Err(err) => Err(err),
    }
}

pub async fn rollback_cluster<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    args: clusters::ClusterRef,
) -> ServiceResult<Value> {
    let cluster = clusters::find(db, args.cluster_id, true).await?;
    let running = clusters::has_running_task(db, cluster.id).await?;
    check_rollback_allowed(status_of(&cluster)?, running)?;
    let current = releases::find(db, cluster.release_id).await?;
    let left = release_left_by_rollback(
        failed_task(db, cluster.id).await?,
        cluster.pending_release_id,
        current.id,
    );
    let failed_target = releases::find(db, left).await?;
    let sources = sources_of(ctx, &current)?;
    let nodes = clusters::nodes_of(db, cluster.id).await?;
    let task_uuid = uuid::Uuid::new_v4().to_string();
    let (plan, cast_size) = plan_cast(
        ctx,
        &cluster,
        &current,
        &sources,
        &failed_target.version,
        &nodes,
        &task_uuid,
    )?;
    begin(
        db,
        ctx,
        Start {
            operation: Operation::Rollback,
            from_release_id: failed_target.id,
            to_release_id: current.id,
            pending_release_id: cluster.pending_release_id,
            cluster,
            task_uuid,
            plan,
            cast_size,
        },
    )
    .await
}

/// The latest failed task of a cluster: the operation a rollback undoes.
async fn failed_task<C: ConnectionTrait>(
    db: &C,
    cluster_id: i32,
) -> ServiceResult<Option<FailedTask>> {
    let latest = task::Entity::find()
        .filter(task::Column::ClusterId.eq(cluster_id))
        .filter(task::Column::Status.eq(TaskStatus::Error.as_str()))
        .order_by_desc(task::Column::Id)
        .one(db)
        .await?;
    Ok(latest.and_then(|task| {
        Some(FailedTask {
            operation: Operation::parse(&task.name)?,
            from_release_id: task.from_release_id,
            to_release_id: task.to_release_id,
        })
    }))
}

/// An update every rule allows.
struct Decision {
    cluster: cluster::Model,
    current: release::Model,
    target: release::Model,
    /// The sources the target's cast carries.
    sources: Sources,
    operation: Operation,
}

/// Checks every rule of an update (section 2).
async fn decide_update<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    args: &UpdateTarget,
    lock: bool,
) -> ServiceResult<Decision> {
    let cluster = clusters::find(db, args.cluster_id, lock).await?;
    let (target, current) = releases::find_two(db, args.release_id, cluster.release_id).await?;
    let running = clusters::has_running_task(db, cluster.id).await?;
    check_update_allowed(status_of(&cluster)?, running)?;
    let operation = choose_operation(
        &releases::summary(&current),
        &releases::summary(&target),
        &ctx.fuel_version,
    )?;
    let sources = sources_of(ctx, &target)?;
    Ok(Decision {
        cluster,
        current,
        target,
        sources,
        operation,
    })
}

/// Checks every rule of an update and builds its cast.
async fn plan_update<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    args: &UpdateTarget,
    lock: bool,
) -> ServiceResult<Start> {
    let Decision {
        cluster,
        current,
        target,
        sources,
        operation,
    } = decide_update(db, ctx, args, lock).await?;
    let nodes = clusters::nodes_of(db, cluster.id).await?;
    let task_uuid = uuid::Uuid::new_v4().to_string();
    let (plan, cast_size) = plan_cast(
        ctx,
        &cluster,
        &target,
        &sources,
        &current.version,
        &nodes,
        &task_uuid,
    )?;
    Ok(Start {
        cluster,
        operation,
        from_release_id: current.id,
        to_release_id: target.id,
        pending_release_id: Some(target.id),
        task_uuid,
        plan,
        cast_size,
    })
}

/// Writes the start of an operation and queues its cast. What the outbox keeps is the cast's
/// plan, a few hundred bytes a node: the relay renders the cast from it when it publishes, and
/// stores the cast in the task's `cache` once the broker has it, so tens of MB of cast never
/// stand between the request and Astute.
async fn begin<C: ConnectionTrait>(db: &C, ctx: &Context, start: Start) -> ServiceResult<Value> {
    let now = Utc::now();
    let cluster_id = start.cluster.id;
    cluster::Entity::update_many()
        .col_expr(
            cluster::Column::Status,
            Expr::value(start.operation.running_status().as_str()),
        )
        .col_expr(
            cluster::Column::PendingReleaseId,
            Expr::value(start.pending_release_id),
        )
        .col_expr(cluster::Column::UpdatedAt, Expr::value(now))
        .filter(cluster::Column::Id.eq(cluster_id))
        .exec(db)
        .await?;
    let inserted = task::Entity::insert(task::ActiveModel {
        id: NotSet,
        uuid: Set(start.task_uuid.clone()),
        cluster_id: Set(cluster_id),
        name: Set(start.operation.as_str().into()),
        status: Set(TaskStatus::Running.as_str().into()),
        progress: Set(0),
        message: Set(None),
        from_release_id: Set(Some(start.from_release_id)),
        to_release_id: Set(Some(start.to_release_id)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(db)
    .await;
    let task = match inserted {
        Ok(task) => task,
        // The partial unique index: another bridge started a task on this cluster meanwhile.
        Err(err) if is_unique_violation(&err) => {
            return Err(Refusal::conflict("the cluster already has a running task").into())
        }
        Err(err) => return Err(err.into()),
    };
    node::Entity::update_many()
        .col_expr(
            node::Column::Status,
            Expr::value(NodeStatus::Deploying.as_str()),
        )
        .col_expr(node::Column::Progress, Expr::value(0))
        .col_expr(node::Column::ErrorType, Expr::value(Option::<String>::None))
        .col_expr(node::Column::ErrorMsg, Expr::value(Option::<String>::None))
        .filter(node::Column::ClusterId.eq(cluster_id))
        .exec(db)
        .await?;
    let Start {
        operation,
        from_release_id,
        to_release_id,
        plan,
        ..
    } = start;
    queue_cast(db, ctx, &task, &plan).await?;
    let span = tracing::Span::current();
    span.record("task_uuid", task.uuid.as_str());
    span.record("cluster_id", cluster_id);
    tracing::info!(
        task_uuid = %task.uuid,
        cluster_id,
        operation = %operation,
        from_release_id,
        to_release_id,
        "task started; deploy cast queued"
    );
    Ok(to_json(&task))
}

/// The sources a cast of `release` carries: its own, else the master's defaults; refused
/// (`incompatible_release`) when it has none and no master is configured, or when they are not
/// usable by Astute. The stored release is left as it is.
fn sources_of(ctx: &Context, release: &release::Model) -> Result<Sources, Refusal> {
    let no_repos = Map::new();
    let stored = StoredSources {
        repo_metadata: release.repo_metadata.as_object().unwrap_or(&no_repos),
        puppet_modules_source: &release.puppet_modules_source,
        puppet_manifests_source: &release.puppet_manifests_source,
    };
    let label = || {
        format!(
            "release {} ('{}' {})",
            release.id, release.name, release.version
        )
    };
    let sources = release_sources::resolve(
        operating_system_of(release)?,
        &release.version,
        stored,
        &ctx.master,
    )
    .map_err(|err| {
        Refusal::incompatible(match err {
            SourceError::Missing(_) => format!("{} {err}", label()),
            SourceError::Invalid { .. } => format!("{}: {err}", label()),
        })
    })?;
    // What would be cast, the master's defaults included, is checked: a release registered
    // before the list was set is refused here too.
    if let Some(prefixes) = &ctx.source_prefixes {
        prefixes
            .check(StoredSources {
                repo_metadata: &sources.repo_metadata,
                puppet_modules_source: &sources.puppet_modules_source,
                puppet_manifests_source: &sources.puppet_manifests_source,
            })
            .map_err(|err| Refusal::invalid_request(format!("{}: {err}", label())))?;
    }
    Ok(sources)
}

fn operating_system_of(release: &release::Model) -> Result<OperatingSystem, Refusal> {
    OperatingSystem::parse(&release.operating_system).ok_or_else(|| {
        Refusal::invalid_state(format!(
            "operating system '{}' is unknown",
            release.operating_system
        ))
    })
}

/// The plan of the `deploy` cast for `cluster`, deploying `deployed` with `sources` and leaving
/// `previous_version`; refused (`message_too_large`) when its cast would be over
/// `amqp.max_message_bytes`, before anything is written; with the cast's size, counted, not
/// kept.
fn plan_cast(
    ctx: &Context,
    cluster: &cluster::Model,
    deployed: &release::Model,
    sources: &Sources,
    previous_version: &str,
    nodes: &[node::Model],
    task_uuid: &str,
) -> ServiceResult<(DeployPlan, usize)> {
    let mode = ClusterMode::parse(&cluster.mode).ok_or_else(|| {
        Refusal::invalid_state(format!("cluster mode '{}' is unknown", cluster.mode))
    })?;
    let operating_system = operating_system_of(deployed)?;
    let plan = DeployPlan {
        task_uuid: task_uuid.into(),
        cluster: ClusterFacts {
            id: cluster.id,
            mode,
            fuel_version: cluster.fuel_version.clone(),
            attributes: cluster
                .attributes
                .as_object()
                .cloned()
                .unwrap_or_else(Map::new),
        },
        deployed: ReleaseFacts {
            version: deployed.version.clone(),
            operating_system,
            repo_metadata: Value::Object(sources.repo_metadata.clone()),
            puppet_modules_source: sources.puppet_modules_source.clone(),
            puppet_manifests_source: sources.puppet_manifests_source.clone(),
        },
        previous_version: previous_version.into(),
        nodes: nodes
            .iter()
            .map(|n| NodeFacts {
                id: n.id,
                name: n.name.clone(),
                fqdn: n.fqdn.clone(),
                roles: releases::string_list(&n.roles),
                online: n.online,
            })
            .collect(),
    };
    let size = deploy_message_size(&plan, ctx.amqp.max_message_bytes).map_err(|err| {
        ServiceError::from(match err {
            CastError::TooLarge { .. } => Refusal::new(
                ErrorCode::MessageTooLarge,
                format!("{err} (amqp.max_message_bytes); nothing changed"),
            ),
            CastError::Json(_) | CastError::Plan(_) => {
                Refusal::new(ErrorCode::Internal, err.to_string())
            }
        })
    })?;
    Ok((plan, size))
}

fn status_of(cluster: &cluster::Model) -> Result<ClusterStatus, Refusal> {
    ClusterStatus::parse(&cluster.status).ok_or_else(|| {
        Refusal::invalid_state(format!("cluster status '{}' is unknown", cluster.status))
    })
}

/// Queues a started task's cast to Astute as its plan, rendered by the relay when it publishes;
/// `mandatory` because an unroutable cast must be retried, never dropped.
async fn queue_cast<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    task: &task::Model,
    plan: &DeployPlan,
) -> ServiceResult<()> {
    let body = serde_json::to_string(plan)
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("deploy plan: {e}")))?;
    outbox::enqueue(
        db,
        OutgoingMessage {
            exchange: ctx.amqp.naily_exchange.clone(),
            routing_key: ctx.amqp.naily_routing_key.clone(),
            body,
            properties: MessageProperties {
                correlation_id: None,
                message_id: Some(task.uuid.clone()),
            },
            mandatory: true,
            body_format: Some(DEPLOY_PLAN),
        },
    )
    .await?;
    Ok(())
}

/// `PUT /api/clusters/{id}/` body: the release the next update moves to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingRelease {
    pub pending_release_id: i32,
}

/// Sets the cluster's pending release after checking every rule an update would check, so
/// that `PUT …/update/` can start it. Nothing else changes.
pub async fn set_pending_release<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    cluster_id: i32,
    pending: PendingRelease,
) -> ServiceResult<Value> {
    let target = UpdateTarget {
        cluster_id,
        release_id: pending.pending_release_id,
    };
    decide_update(db, ctx, &target, true).await?;
    cluster::Entity::update_many()
        .col_expr(
            cluster::Column::PendingReleaseId,
            Expr::value(Some(target.release_id)),
        )
        .col_expr(cluster::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(cluster::Column::Id.eq(cluster_id))
        .exec(db)
        .await?;
    Ok(to_json(&clusters::find(db, cluster_id, false).await?))
}

/// The target of `PUT /api/clusters/{id}/update/`: the pending release set before.
pub async fn pending_target<C: ConnectionTrait>(
    db: &C,
    cluster_id: i32,
) -> ServiceResult<UpdateTarget> {
    let cluster = clusters::find(db, cluster_id, false).await?;
    let release_id = cluster.pending_release_id.ok_or_else(|| {
        Refusal::invalid_request(format!(
            "cluster {cluster_id} has no pending release: set pending_release_id first (PUT /api/clusters/{cluster_id}/)"
        ))
    })?;
    Ok(UpdateTarget {
        cluster_id,
        release_id,
    })
}
