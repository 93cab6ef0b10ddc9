//! Clusters and their nodes: register, add nodes, read.

use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::page::page_limit;
use super::{check_text, inserted_or, releases, to_json, ServiceResult};
use crate::core::enums::{ClusterMode, ClusterStatus, NodeStatus, TaskStatus};
use crate::core::refusal::Refusal;
use crate::store::entity::{cluster, node, task};

/// Most nodes one `add_nodes` call may add.
const MAX_NODES_PER_CALL: usize = 1000;
/// Most roles one node may carry.
const MAX_ROLES: usize = 32;

/// `create_cluster` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    pub name: String,
    pub release_id: i32,
    pub mode: ClusterMode,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// `new`, or `operational`/`stopped`/`error` to register an environment already deployed.
    #[serde(default)]
    pub status: Option<ClusterStatus>,
}

/// `cluster_id` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRef {
    pub cluster_id: i32,
}

/// One node of `add_nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    pub name: String,
    pub fqdn: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub status: Option<NodeStatus>,
    #[serde(default = "online_by_default")]
    pub online: bool,
}

fn online_by_default() -> bool {
    true
}

/// `add_nodes` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNodes {
    pub cluster_id: i32,
    pub nodes: Vec<NewNode>,
}

/// Loads a cluster or answers `not_found`; `lock` takes its row lock (PostgreSQL) so concurrent
/// operations on one cluster queue behind each other.
pub(crate) async fn find<C: ConnectionTrait>(
    db: &C,
    id: i32,
    lock: bool,
) -> ServiceResult<cluster::Model> {
    let mut query = cluster::Entity::find_by_id(id);
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(db)
        .await?
        .ok_or_else(|| Refusal::not_found(format!("cluster {id} does not exist")).into())
}

/// The cluster's nodes in id order.
pub(crate) async fn nodes_of<C: ConnectionTrait>(
    db: &C,
    cluster_id: i32,
) -> Result<Vec<node::Model>, DbErr> {
    node::Entity::find()
        .filter(node::Column::ClusterId.eq(cluster_id))
        .order_by_asc(node::Column::Id)
        .all(db)
        .await
}

/// Whether the cluster has a task still running.
pub(crate) async fn has_running_task<C: ConnectionTrait>(
    db: &C,
    cluster_id: i32,
) -> ServiceResult<bool> {
    Ok(task::Entity::find()
        .filter(task::Column::ClusterId.eq(cluster_id))
        .filter(task::Column::Status.eq(TaskStatus::Running.as_str()))
        .count(db)
        .await?
        > 0)
}

pub async fn create_cluster<C: ConnectionTrait>(
    db: &C,
    new: NewCluster,
    fuel_version: &str,
) -> ServiceResult<Value> {
    check_text("name", &new.name, 50)?;
    let status = new.status.unwrap_or(ClusterStatus::New);
    if !matches!(
        status,
        ClusterStatus::New
            | ClusterStatus::Operational
            | ClusterStatus::Stopped
            | ClusterStatus::Error
    ) {
        return Err(Refusal::invalid_request(format!(
            "a cluster is registered as new, operational, stopped or error, not '{status}'"
        ))
        .into());
    }
    releases::find(db, new.release_id).await?;
    let duplicate = Refusal::conflict(format!("a cluster named '{}' already exists", new.name));
    let taken = cluster::Entity::find()
        .filter(cluster::Column::Name.eq(new.name.as_str()))
        .count(db)
        .await?;
    if taken > 0 {
        return Err(duplicate.into());
    }
    let now = Utc::now();
    let inserted = cluster::Entity::insert(cluster::ActiveModel {
        id: NotSet,
        name: Set(new.name),
        mode: Set(new.mode.as_str().into()),
        status: Set(status.as_str().into()),
        release_id: Set(new.release_id),
        pending_release_id: Set(None),
        fuel_version: Set(fuel_version.into()),
        attributes: Set(Value::Object(new.attributes)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(db)
    .await;
    inserted_or(inserted, duplicate)
}

pub async fn add_nodes<C: ConnectionTrait>(db: &C, new: NewNodes) -> ServiceResult<Value> {
    if new.nodes.is_empty() || new.nodes.len() > MAX_NODES_PER_CALL {
        return Err(Refusal::invalid_request(format!(
            "nodes must list 1 to {MAX_NODES_PER_CALL} nodes"
        ))
        .into());
    }
    for n in &new.nodes {
        check_text("node name", &n.name, 100)?;
        check_text("node fqdn", &n.fqdn, 255)?;
        if n.roles.is_empty() || n.roles.len() > MAX_ROLES {
            return Err(Refusal::invalid_request(format!(
                "node '{}' must have 1 to {MAX_ROLES} roles",
                n.name
            ))
            .into());
        }
        for role in &n.roles {
            check_text("role", role, 50)?;
        }
    }
    let cluster = find(db, new.cluster_id, true).await?;
    if has_running_task(db, cluster.id).await? {
        return Err(Refusal::conflict(format!(
            "cluster {} has a running task; add nodes when it has ended",
            cluster.id
        ))
        .into());
    }
    let mut added = Vec::with_capacity(new.nodes.len());
    for n in new.nodes {
        let model = node::Entity::insert(node::ActiveModel {
            id: NotSet,
            cluster_id: Set(cluster.id),
            name: Set(n.name),
            fqdn: Set(n.fqdn),
            roles: Set(json!(n.roles)),
            status: Set(n.status.unwrap_or(NodeStatus::Ready).as_str().into()),
            progress: Set(0),
            error_type: Set(None),
            error_msg: Set(None),
            online: Set(n.online),
        })
        .exec_with_returning(db)
        .await?;
        added.push(to_json(&model));
    }
    Ok(Value::Array(added))
}

pub async fn get_cluster<C: ConnectionTrait>(db: &C, args: ClusterRef) -> ServiceResult<Value> {
    let cluster = find(db, args.cluster_id, false).await?;
    let nodes = nodes_of(db, cluster.id).await?;
    let latest_task = task::Entity::find()
        .filter(task::Column::ClusterId.eq(cluster.id))
        .order_by_desc(task::Column::Id)
        .limit(1)
        .one(db)
        .await?;
    let mut value = to_json(&cluster);
    if let Value::Object(fields) = &mut value {
        fields.insert("nodes".into(), to_json(&nodes));
        fields.insert("latest_task".into(), to_json(&latest_task));
    }
    Ok(value)
}

/// `list_clusters` args: a page of clusters in id order.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPage {
    /// Only those after this one: the last id of the previous page.
    #[serde(default)]
    pub after_id: Option<i32>,
    /// At most this many (1 to 1000, default 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Clusters a page holds when no limit is given.
pub const DEFAULT_PAGE: u64 = 1000;

pub async fn list_clusters<C: ConnectionTrait>(db: &C, page: ClusterPage) -> ServiceResult<Value> {
    let limit = page_limit(page.limit, DEFAULT_PAGE)?;
    let mut query = cluster::Entity::find();
    if let Some(after_id) = page.after_id {
        query = query.filter(cluster::Column::Id.gt(after_id));
    }
    let rows = query
        .order_by_asc(cluster::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(to_json(&rows))
}
