//! The `deploy` cast to Astute (contract section 3): one entry per (node, role) with primary
//! roles, patching priorities, critical roles, the cobbler profile and the attribute overlay.

use serde_json::{Map, Value};

use super::enums::{ClusterMode, OperatingSystem};

/// The cluster being deployed.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub id: i32,
    pub mode: ClusterMode,
    pub fuel_version: String,
    /// Extra facts merged into every entry; the contract's keys always win over these.
    pub attributes: Map<String, Value>,
}

/// The release being deployed (the target T, or the current release R for a rollback).
#[derive(Debug, Clone)]
pub struct ReleaseFacts {
    pub version: String,
    pub operating_system: OperatingSystem,
    /// Repository name → URL.
    pub repo_metadata: Value,
    pub puppet_modules_source: String,
    pub puppet_manifests_source: String,
}

/// One node of the cluster.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub id: i32,
    pub name: String,
    pub fqdn: String,
    pub roles: Vec<String>,
    pub online: bool,
}

/// Everything the cast is built from.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub task_uuid: String,
    pub cluster: ClusterFacts,
    pub deployed: ReleaseFacts,
    /// `openstack_version_prev`: the version being left (for a rollback, the failed target's).
    pub previous_version: String,
    pub nodes: Vec<NodeFacts>,
}
