//! The `deploy` cast to Astute (contract section 3): one entry per (node, role) with primary
//! roles, patching priorities, critical roles, the cobbler profile and the attribute overlay.

use std::collections::BTreeSet;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::compact;
use super::enums::{ClusterMode, OperatingSystem};

/// The cluster being deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterFacts {
    pub id: i32,
    pub mode: ClusterMode,
    pub fuel_version: String,
    /// Extra facts merged into every entry; the contract's keys always win over these.
    pub attributes: Map<String, Value>,
}

/// The release being deployed (the target T, or the current release R for a rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    pub version: String,
    pub operating_system: OperatingSystem,
    /// Repository name → URL.
    pub repo_metadata: Value,
    pub puppet_modules_source: String,
    pub puppet_manifests_source: String,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    pub id: i32,
    pub name: String,
    pub fqdn: String,
    pub roles: Vec<String>,
    pub online: bool,
}

/// Everything the cast is built from. Small (a few hundred bytes a node, where the cast takes
/// about a node's worth of the `nodes` list per entry), so this, not the cast, is what the outbox
/// keeps until the cast is published; its JSON renders the same cast again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployPlan {
    pub task_uuid: String,
    pub cluster: ClusterFacts,
    pub deployed: ReleaseFacts,
    /// `openstack_version_prev`: the version being left (for a rollback, the failed target's).
    pub previous_version: String,
    pub nodes: Vec<NodeFacts>,
}

/// Roles whose failure aborts a multinode deployment (Nailgun's `critical_roles`).
const MULTINODE_CRITICAL_ROLES: &[&str] = &["controller", "ceph-osd", "primary-mongo"];

/// Roles whose failure aborts an HA deployment: only the primaries matter there, since the other
/// controllers, mongos and swift proxies are redundant.
const HA_CRITICAL_ROLES: &[&str] = &[
    "primary-controller",
    "primary-mongo",
    "primary-swift-proxy",
    "ceph-osd",
];

/// Multinode patching order, as Nailgun 5.1's patching priority serializer; unlisted roles come
/// last.
const MULTINODE_PATCHING_ORDER: &[&str] =
    &["zabbix-server", "mongo", "primary-mongo", "controller"];

/// HA patching order, as Nailgun 5.1's: the swift proxies and storage join in ahead of the
/// databases, and the primary controller goes ahead of the others. Unlisted roles come last.
const HA_PATCHING_ORDER: &[&str] = &[
    "zabbix-server",
    "primary-swift-proxy",
    "swift-proxy",
    "storage",
    "mongo",
    "primary-mongo",
    "primary-controller",
    "controller",
];

/// Distance between consecutive priorities; Astute deploys one priority at a time, so every entry
/// gets its own and the nodes are patched strictly one by one.
const PRIORITY_STEP: u64 = 100;

/// Why a cast was not built.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    /// The cast would exceed the largest message the broker takes.
    #[error("the deploy cast would be {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// serde_json refused to write it (not expected: every key is a string).
    #[error("the deploy cast could not be serialized: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored plan that is not a plan (written by another version, or altered by hand).
    #[error("the stored deploy plan could not be read: {0}")]
    Plan(serde_json::Error),
}

/// The `deploy` cast for `plan`, exactly as Astute expects it (contract section 3), as compact
/// JSON with every object's keys in sorted order.
pub fn deploy_message(plan: &DeployPlan) -> Result<String, CastError> {
    deploy_message_within(plan, usize::MAX)
}

/// The `deploy` cast for `plan`, if it takes at most `limit` bytes. Its size is counted first,
/// without keeping anything, so a cast over the limit is refused without ever being held in
/// memory; one within it is then written once into a buffer of exactly its size.
pub fn deploy_message_within(plan: &DeployPlan, limit: usize) -> Result<String, CastError> {
    let cast = Cast::new(plan)?;
    let size = compact::size_of(&cast)?;
    if size > limit {
        return Err(CastError::TooLarge { size, limit });
    }
    Ok(compact::write_sized(&cast, size)?)
}

/// The `deploy` cast for a plan stored as JSON, if it takes at most `limit` bytes.
pub fn deploy_message_from_stored(plan: &str, limit: usize) -> Result<String, CastError> {
    let plan: DeployPlan = serde_json::from_str(plan).map_err(CastError::Plan)?;
    deploy_message_within(&plan, limit)
}

/// The `deploy` cast for `plan` whose size was counted already ([`deploy_message_size`]):
/// written once into a buffer of that size, without counting it again.
pub fn deploy_message_sized(plan: &DeployPlan, size: usize) -> Result<String, CastError> {
    Ok(compact::write_sized(&Cast::new(plan)?, size)?)
}

/// The size in bytes of the `deploy` cast for `plan`, refused over `limit`. Only counted: nothing
/// is kept.
pub fn deploy_message_size(plan: &DeployPlan, limit: usize) -> Result<usize, CastError> {
    let size = compact::size_of(&Cast::new(plan)?)?;
    if size > limit {
        return Err(CastError::TooLarge { size, limit });
    }
    Ok(size)
}

/// The cast, ready to serialize: entries with their priorities, and the cluster-wide `nodes`
/// list serialized once and shared by every entry.
struct Cast<'a> {
    plan: &'a DeployPlan,
    entries: Vec<Entry<'a>>,
    priorities: Vec<u64>,
    nodes: Box<RawValue>,
}

impl<'a> Cast<'a> {
    fn new(plan: &'a DeployPlan) -> Result<Self, serde_json::Error> {
        let mut entries = entries(&plan.nodes);
        assign_primary_roles(plan.cluster.mode, &mut entries);
        let priorities = assign_priorities(plan.cluster.mode, &entries);
        let summaries: Vec<Summary<'_>> = entries.iter().map(Entry::summary).collect();
        let nodes = serde_json::value::to_raw_value(&summaries)?;
        Ok(Cast {
            plan,
            entries,
            priorities,
            nodes,
        })
    }
}

/// `{"api_version", "args": {"deployment_info", "task_uuid"}, "method", "respond_to"}`, keys in
/// sorted order as every object of the cast.
impl Serialize for Cast<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut envelope = serializer.serialize_map(Some(4))?;
        envelope.serialize_entry("api_version", "1")?;
        envelope.serialize_entry("args", &Args(self))?;
        envelope.serialize_entry("method", "deploy")?;
        envelope.serialize_entry("respond_to", "deploy_resp")?;
        envelope.end()
    }
}

struct Args<'c, 'a>(&'c Cast<'a>);

impl Serialize for Args<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cast = self.0;
        let mut args = serializer.serialize_map(Some(2))?;
        args.serialize_entry("deployment_info", &DeploymentInfo(cast))?;
        args.serialize_entry("task_uuid", &cast.plan.task_uuid)?;
        args.end()
    }
}

/// One ENTRY per (node, role), in node id order then role order; each entry carries its
/// patching priority, so the list itself is not in deployment order.
struct DeploymentInfo<'c, 'a>(&'c Cast<'a>);

impl Serialize for DeploymentInfo<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cast = self.0;
        let mut list = serializer.serialize_seq(Some(cast.entries.len()))?;
        for (entry, priority) in cast.entries.iter().zip(&cast.priorities) {
            list.serialize_element(&EntryJson {
                plan: cast.plan,
                entry,
                priority: *priority,
                nodes: &cast.nodes,
            })?;
        }
        list.end()
    }
}

/// The keys of an ENTRY the contract sets, in sorted order; they always win over the cluster's
/// attributes of the same name.
const CONTRACT_KEYS: [&str; 18] = [
    "cobbler",
    "deployment_id",
    "deployment_mode",
    "fail_if_error",
    "fqdn",
    "fuel_version",
    "name",
    "nodes",
    "online",
    "openstack_version",
    "openstack_version_prev",
    "priority",
    "puppet_manifests_source",
    "puppet_modules_source",
    "repo_metadata",
    "role",
    "status",
    "uid",
];

/// One ENTRY: the cluster's attributes, overlaid by the contract's keys so an attribute can never
/// shadow them; the two sorted key lists are merged, so the entry's keys come out sorted.
struct EntryJson<'e> {
    plan: &'e DeployPlan,
    entry: &'e Entry<'e>,
    priority: u64,
    nodes: &'e RawValue,
}

impl EntryJson<'_> {
    fn contract_value<M: SerializeMap>(&self, map: &mut M, key: &str) -> Result<(), M::Error> {
        let cluster = &self.plan.cluster;
        let release = &self.plan.deployed;
        let node = self.entry.node;
        match key {
            "cobbler" => map.serialize_entry(
                key,
                &Cobbler {
                    profile: cobbler_profile(release.operating_system),
                },
            ),
            "deployment_id" => map.serialize_entry(key, &cluster.id),
            "deployment_mode" => map.serialize_entry(key, cluster.mode.as_str()),
            "fail_if_error" => {
                map.serialize_entry(key, &is_critical(cluster.mode, &self.entry.role))
            }
            "fqdn" => map.serialize_entry(key, &node.fqdn),
            "fuel_version" => map.serialize_entry(key, &cluster.fuel_version),
            "name" => map.serialize_entry(key, &node.name),
            "nodes" => map.serialize_entry(key, self.nodes),
            "online" => map.serialize_entry(key, &node.online),
            "openstack_version" => map.serialize_entry(key, &release.version),
            "openstack_version_prev" => map.serialize_entry(key, &self.plan.previous_version),
            "priority" => map.serialize_entry(key, &self.priority),
            "puppet_manifests_source" => map.serialize_entry(key, &release.puppet_manifests_source),
            "puppet_modules_source" => map.serialize_entry(key, &release.puppet_modules_source),
            "repo_metadata" => map.serialize_entry(key, &release.repo_metadata),
            "role" => map.serialize_entry(key, &self.entry.role),
            "status" => map.serialize_entry(key, "provisioned"),
            "uid" => map.serialize_entry(key, &node.id.to_string()),
            other => Err(serde::ser::Error::custom(format!(
                "'{other}' is not a contract key"
            ))),
        }
    }
}

impl Serialize for EntryJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let attributes = &self.plan.cluster.attributes;
        let shadowed = CONTRACT_KEYS
            .iter()
            .filter(|key| attributes.contains_key(**key))
            .count();
        let mut map =
            serializer.serialize_map(Some(attributes.len() + CONTRACT_KEYS.len() - shadowed))?;
        let mut own = CONTRACT_KEYS.iter().copied().peekable();
        for (key, value) in attributes {
            while let Some(next) = own.next_if(|next| *next < key.as_str()) {
                self.contract_value(&mut map, next)?;
            }
            if own.peek() == Some(&key.as_str()) {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
        for next in own {
            self.contract_value(&mut map, next)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Cobbler {
    profile: &'static str,
}

/// An entry as listed under `nodes`, so every node knows the whole cluster.
#[derive(Serialize)]
struct Summary<'a> {
    fqdn: &'a str,
    name: &'a str,
    role: &'a str,
    uid: String,
}

/// A (node, role) pair: the unit Astute deploys.
struct Entry<'a> {
    node: &'a NodeFacts,
    role: String,
}

impl Entry<'_> {
    fn summary(&self) -> Summary<'_> {
        Summary {
            fqdn: &self.node.fqdn,
            name: &self.node.name,
            role: &self.role,
            uid: self.node.id.to_string(),
        }
    }
}

/// The entries in contract order: nodes by ascending id (whatever order the caller gave), each
/// node's distinct roles alphabetically.
fn entries(nodes: &[NodeFacts]) -> Vec<Entry<'_>> {
    let mut nodes: Vec<&NodeFacts> = nodes.iter().collect();
    nodes.sort_by_key(|node| node.id);
    nodes
        .into_iter()
        .flat_map(|node| {
            let roles: BTreeSet<&str> = node.roles.iter().map(String::as_str).collect();
            roles.into_iter().map(move |role| Entry {
                node,
                role: role.to_owned(),
            })
        })
        .collect()
}

/// Elects the primaries that bootstrap a replicated service: a primary mongo in every mode, a
/// primary controller in HA (multinode has a single controller, nothing to elect).
fn assign_primary_roles(mode: ClusterMode, entries: &mut [Entry<'_>]) {
    promote_first(entries, "mongo", "primary-mongo");
    if mode.is_ha() {
        promote_first(entries, "controller", "primary-controller");
    }
}

/// Renames the lowest-id `role` entry to `primary`, in place. As in Nailgun, nothing is renamed if
/// an entry already holds `primary`, so a cluster never gets two.
fn promote_first(entries: &mut [Entry<'_>], role: &str, primary: &str) {
    if entries.iter().any(|entry| entry.role == primary) {
        return;
    }
    // Entries are in node id order, so the first match is the lowest id.
    if let Some(entry) = entries.iter_mut().find(|entry| entry.role == role) {
        entry.role = primary.to_owned();
    }
}

/// The patching order of `mode`; roles not in it share one last group.
fn patching_order(mode: ClusterMode) -> &'static [&'static str] {
    if mode.is_ha() {
        HA_PATCHING_ORDER
    } else {
        MULTINODE_PATCHING_ORDER
    }
}

/// Each entry's priority, indexed like `entries`: 100, 200, … handed out group by group in the
/// patching order, and in entry order within a group.
fn assign_priorities(mode: ClusterMode, entries: &[Entry<'_>]) -> Vec<u64> {
    let order = patching_order(mode);
    let group = |role: &str| {
        order
            .iter()
            .position(|listed| *listed == role)
            .unwrap_or(order.len())
    };
    let mut turns: Vec<usize> = (0..entries.len()).collect();
    // A stable sort, so entries of one group keep their (node id, role) order.
    turns.sort_by_key(|&index| group(&entries[index].role));
    let mut priorities = vec![0; entries.len()];
    let mut counter = 0;
    for index in turns {
        counter += PRIORITY_STEP;
        priorities[index] = counter;
    }
    priorities
}

/// Whether a failure of `role` must abort the whole deployment (`fail_if_error`).
fn is_critical(mode: ClusterMode, role: &str) -> bool {
    let critical = if mode.is_ha() {
        HA_CRITICAL_ROLES
    } else {
        MULTINODE_CRITICAL_ROLES
    };
    critical.contains(&role)
}

/// The cobbler profile Astute's pre-patching hook reads to pick the package tool (yum or aptitude).
fn cobbler_profile(os: OperatingSystem) -> &'static str {
    match os {
        OperatingSystem::Ubuntu => "ubuntu_1204_x86_64",
        OperatingSystem::CentOS => "centos-x86_64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The serializer the typed one replaced, building a `serde_json::Value` tree: the
    /// reference whose bytes the cast must match exactly.
    fn reference_message(plan: &DeployPlan) -> Value {
        let mut entries = entries(&plan.nodes);
        assign_primary_roles(plan.cluster.mode, &mut entries);
        let priorities = assign_priorities(plan.cluster.mode, &entries);
        let nodes = Value::Array(
            entries
                .iter()
                .map(|entry| {
                    json!({
                        "uid": entry.node.id.to_string(),
                        "name": entry.node.name,
                        "fqdn": entry.node.fqdn,
                        "role": entry.role,
                    })
                })
                .collect(),
        );
        let info: Vec<Value> = entries
            .iter()
            .zip(priorities)
            .map(|(entry, priority)| reference_entry(plan, entry, priority, &nodes))
            .collect();
        json!({
            "api_version": "1",
            "method": "deploy",
            "respond_to": "deploy_resp",
            "args": {
                "task_uuid": plan.task_uuid,
                "deployment_info": info,
            },
        })
    }

    /// The reference serializer's ENTRY.
    fn reference_entry(
        plan: &DeployPlan,
        entry: &Entry<'_>,
        priority: u64,
        nodes: &Value,
    ) -> Value {
        let cluster = &plan.cluster;
        let release = &plan.deployed;
        let overlay = [
            ("uid", Value::from(entry.node.id.to_string())),
            ("role", Value::from(entry.role.as_str())),
            ("name", Value::from(entry.node.name.as_str())),
            ("fqdn", Value::from(entry.node.fqdn.as_str())),
            ("status", Value::from("provisioned")),
            ("online", Value::from(entry.node.online)),
            ("priority", Value::from(priority)),
            (
                "fail_if_error",
                Value::from(is_critical(cluster.mode, &entry.role)),
            ),
            ("deployment_id", Value::from(cluster.id)),
            ("deployment_mode", Value::from(cluster.mode.as_str())),
            ("openstack_version", Value::from(release.version.as_str())),
            (
                "openstack_version_prev",
                Value::from(plan.previous_version.as_str()),
            ),
            ("fuel_version", Value::from(cluster.fuel_version.as_str())),
            ("repo_metadata", release.repo_metadata.clone()),
            (
                "puppet_modules_source",
                Value::from(release.puppet_modules_source.as_str()),
            ),
            (
                "puppet_manifests_source",
                Value::from(release.puppet_manifests_source.as_str()),
            ),
            (
                "cobbler",
                json!({ "profile": cobbler_profile(release.operating_system) }),
            ),
            ("nodes", nodes.clone()),
        ];
        let mut map = cluster.attributes.clone();
        map.extend(overlay.map(|(key, value)| (key.to_owned(), value)));
        Value::Object(map)
    }

    /// The cast as sent, parsed back.
    fn message_value(plan: &DeployPlan) -> Value {
        serde_json::from_str(&deploy_message(plan).unwrap()).unwrap()
    }

    /// The entries of the cast as sent, parsed back.
    fn deployment_info(plan: &DeployPlan) -> Vec<Value> {
        match message_value(plan)["args"]["deployment_info"].take() {
            Value::Array(entries) => entries,
            other => panic!("deployment_info is not a list: {other}"),
        }
    }

    const HA_MODES: [ClusterMode; 2] = [ClusterMode::HaCompact, ClusterMode::HaFull];

    fn node(id: i32, roles: &[&str]) -> NodeFacts {
        NodeFacts {
            id,
            name: format!("node-{id}"),
            fqdn: format!("node-{id}.domain.tld"),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            online: true,
        }
    }

    fn release(version: &str, os: OperatingSystem) -> ReleaseFacts {
        let repo = match os {
            OperatingSystem::Ubuntu => {
                format!("http://10.20.0.2:8080/{version}/ubuntu/x86_64 precise main")
            }
            OperatingSystem::CentOS => format!("http://10.20.0.2:8080/{version}/centos/x86_64"),
        };
        ReleaseFacts {
            version: version.to_owned(),
            operating_system: os,
            repo_metadata: json!({ "nailgun": repo }),
            puppet_modules_source: format!("rsync://10.20.0.2:/puppet/{version}/modules/"),
            puppet_manifests_source: format!("rsync://10.20.0.2:/puppet/{version}/manifests/"),
        }
    }

    fn plan(mode: ClusterMode, nodes: Vec<NodeFacts>) -> DeployPlan {
        DeployPlan {
            task_uuid: "5d8b1d7c-0d3e-4a55-9a6b-1f2e3d4c5b6a".to_owned(),
            cluster: ClusterFacts {
                id: 7,
                mode,
                fuel_version: "5.1".to_owned(),
                attributes: Map::new(),
            },
            deployed: release("2014.1.1-5.0.2", OperatingSystem::Ubuntu),
            previous_version: "2014.1-5.0".to_owned(),
            nodes,
        }
    }

    fn attributes(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// `(uid, role)` of every entry, in the returned order.
    fn roles(plan: &DeployPlan) -> Vec<(String, String)> {
        deployment_info(plan)
            .iter()
            .map(|entry| {
                (
                    entry["uid"].as_str().unwrap().to_owned(),
                    entry["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn expected_roles(expected: &[(i32, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(id, role)| (id.to_string(), role.to_string()))
            .collect()
    }

    /// Asserts every entry's `(uid, role, priority, fail_if_error)`, in the returned order.
    fn assert_table(plan: &DeployPlan, expected: &[(i32, &str, u64, bool)]) {
        let actual: Vec<(String, String, u64, bool)> = deployment_info(plan)
            .iter()
            .map(|entry| {
                (
                    entry["uid"].as_str().unwrap().to_owned(),
                    entry["role"].as_str().unwrap().to_owned(),
                    entry["priority"].as_u64().unwrap(),
                    entry["fail_if_error"].as_bool().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(String, String, u64, bool)> = expected
            .iter()
            .map(|(id, role, priority, fail)| (id.to_string(), role.to_string(), *priority, *fail))
            .collect();
        assert_eq!(actual, expected);
    }

    /// The `env-multinode` cluster of `fixtures/patching-demo.json`, upgraded from 2014.1-5.0 to
    /// 2014.1.1-5.0.2 on Ubuntu.
    fn fixture_env_multinode() -> DeployPlan {
        let mut node2 = node(2, &["compute", "cinder"]);
        node2.online = false;
        DeployPlan {
            task_uuid: "0b9c5c1e-7f0a-4c3a-9d2e-1a2b3c4d5e6f".to_owned(),
            cluster: ClusterFacts {
                id: 1,
                mode: ClusterMode::Multinode,
                fuel_version: "5.1".to_owned(),
                attributes: attributes(json!({
                    "master_ip": "10.20.0.2",
                    "debug": false,
                    "auto_assign_floating_ip": false,
                })),
            },
            deployed: release("2014.1.1-5.0.2", OperatingSystem::Ubuntu),
            previous_version: "2014.1-5.0".to_owned(),
            nodes: vec![
                node(1, &["controller"]),
                node2,
                node(3, &["compute"]),
                node(4, &["mongo"]),
            ],
        }
    }

    /// The `env-ha` cluster of `fixtures/patching-demo.json`, upgraded from 2014.1-5.0 to
    /// 2014.1.1-5.0.2 on CentOS.
    fn fixture_env_ha() -> DeployPlan {
        DeployPlan {
            task_uuid: "3f6e2a9d-8b1c-4e7f-a0d5-6c7b8a9f0e1d".to_owned(),
            cluster: ClusterFacts {
                id: 2,
                mode: ClusterMode::HaCompact,
                fuel_version: "5.1".to_owned(),
                attributes: attributes(json!({ "master_ip": "10.20.0.2", "debug": true })),
            },
            deployed: release("2014.1.1-5.0.2", OperatingSystem::CentOS),
            previous_version: "2014.1-5.0".to_owned(),
            nodes: vec![
                node(11, &["controller"]),
                node(12, &["controller"]),
                node(13, &["controller"]),
                node(14, &["compute", "ceph-osd"]),
                node(15, &["compute", "ceph-osd"]),
                node(16, &["mongo"]),
                node(17, &["zabbix-server"]),
            ],
        }
    }

    /// Plans covering every shape: both fixtures, every mode, attributes sorting before, between
    /// and after the contract keys (and shadowing some), text needing escapes, no nodes.
    fn every_shape() -> Vec<DeployPlan> {
        let mut plans = vec![fixture_env_multinode(), fixture_env_ha()];
        for mode in ClusterMode::ALL {
            plans.push(ha_cluster_with_every_group(*mode));
            plans.push(plan(*mode, vec![]));
        }
        let mut odd = plan(
            ClusterMode::HaFull,
            vec![
                node(3, &["controller", "mongo"]),
                node(1, &["compute", "cinder"]),
            ],
        );
        odd.cluster.attributes = attributes(json!({
            "a": 1, "cobbler": "x", "d": [1, {"z": 2, "a": null}], "fqdnx": "y", "nodes": [],
            "nodesx": {"b": 1.5, "a": -3}, "openstack_version_pre": true, "uid": 9,
            "uidz": "last", "Upper": "sorts first", "é": "ü\"\n\t\u{1}",
        }));
        odd.nodes[0].name = "n\"ode\\3 é".to_owned();
        odd.deployed.repo_metadata = json!({"z": "1", "a": "2"});
        plans.push(odd);
        plans
    }

    #[test]
    fn bytes_match_the_reference_serializer() {
        for plan in every_shape() {
            let sent = deploy_message(&plan).unwrap();
            let reference = serde_json::to_string(&reference_message(&plan)).unwrap();
            assert_eq!(sent, reference);
        }
    }

    #[test]
    fn a_cast_over_the_limit_is_refused_with_its_size() {
        for plan in every_shape() {
            let size = deploy_message(&plan).unwrap().len();
            assert_eq!(deploy_message_within(&plan, size).unwrap().len(), size);
            match deploy_message_within(&plan, size - 1) {
                Err(CastError::TooLarge {
                    size: counted,
                    limit,
                }) => {
                    assert_eq!((counted, limit), (size, size - 1));
                }
                other => panic!("not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn the_size_is_counted_without_building_and_refused_over_the_limit() {
        for plan in every_shape() {
            let cast = deploy_message(&plan).unwrap();
            let size = cast.len();
            assert_eq!(deploy_message_size(&plan, size).unwrap(), size);
            assert_eq!(deploy_message_sized(&plan, size).unwrap(), cast);
            assert!(matches!(
                deploy_message_size(&plan, size - 1),
                Err(CastError::TooLarge { size: counted, limit }) if counted == size && limit == size - 1
            ));
        }
    }

    /// The outbox keeps the plan's JSON and renders the cast from it at publishing time: the
    /// plan read back must be the same plan and render the same bytes.
    #[test]
    fn a_plan_read_back_from_json_renders_the_same_cast() {
        for plan in every_shape() {
            let stored = serde_json::to_string(&plan).unwrap();
            let read: DeployPlan = serde_json::from_str(&stored).unwrap();
            assert_eq!(read, plan);
            assert_eq!(
                deploy_message_from_stored(&stored, usize::MAX).unwrap(),
                deploy_message(&plan).unwrap()
            );
        }
    }

    #[test]
    fn a_stored_plan_that_is_not_a_plan_is_refused() {
        for stored in ["", "{}", "{\"task_uuid\": 3}", "[1]"] {
            assert!(matches!(
                deploy_message_from_stored(stored, usize::MAX),
                Err(CastError::Plan(_))
            ));
        }
    }

    #[test]
    fn contract_keys_are_sorted() {
        let mut sorted = CONTRACT_KEYS;
        sorted.sort_unstable();
        assert_eq!(sorted, CONTRACT_KEYS);
    }

    #[test]
    fn envelope_has_the_contract_shape() {
        let plan = fixture_env_multinode();
        let message = message_value(&plan);
        let envelope = message.as_object().unwrap();
        let keys: Vec<&str> = envelope.keys().map(String::as_str).collect();
        assert_eq!(keys, ["api_version", "args", "method", "respond_to"]);
        assert_eq!(message["api_version"], "1");
        assert_eq!(message["method"], "deploy");
        assert_eq!(message["respond_to"], "deploy_resp");
        let args = message["args"].as_object().unwrap();
        let keys: Vec<&str> = args.keys().map(String::as_str).collect();
        assert_eq!(keys, ["deployment_info", "task_uuid"]);
        assert_eq!(args["task_uuid"], "0b9c5c1e-7f0a-4c3a-9d2e-1a2b3c4d5e6f");
        assert_eq!(
            args["deployment_info"],
            Value::Array(deployment_info(&plan))
        );
    }

    #[test]
    fn entry_has_exactly_the_contract_keys_when_there_are_no_attributes() {
        let info = deployment_info(&plan(ClusterMode::Multinode, vec![node(1, &["compute"])]));
        let keys: BTreeSet<&str> = info[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "uid",
            "role",
            "name",
            "fqdn",
            "status",
            "online",
            "priority",
            "fail_if_error",
            "deployment_id",
            "deployment_mode",
            "openstack_version",
            "openstack_version_prev",
            "fuel_version",
            "repo_metadata",
            "puppet_modules_source",
            "puppet_manifests_source",
            "cobbler",
            "nodes",
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn one_entry_per_node_and_role_in_id_then_role_order_whatever_the_input_order() {
        let plan = plan(
            ClusterMode::Multinode,
            vec![
                node(10, &["compute"]),
                node(3, &["compute", "cinder", "ceph-osd"]),
                node(7, &[]),
                node(1, &["controller"]),
            ],
        );
        assert_eq!(
            roles(&plan),
            expected_roles(&[
                (1, "controller"),
                (3, "ceph-osd"),
                (3, "cinder"),
                (3, "compute"),
                (10, "compute"),
            ])
        );
    }

    #[test]
    fn duplicate_roles_on_a_node_count_once() {
        let plan = plan(
            ClusterMode::Multinode,
            vec![node(1, &["compute", "cinder", "compute", "cinder"])],
        );
        assert_eq!(
            roles(&plan),
            expected_roles(&[(1, "cinder"), (1, "compute")])
        );
    }

    #[test]
    fn empty_cluster_gives_empty_deployment_info() {
        let plan = plan(ClusterMode::HaCompact, vec![]);
        assert!(deployment_info(&plan).is_empty());
        assert_eq!(message_value(&plan)["args"]["deployment_info"], json!([]));
    }

    #[test]
    fn mongo_of_the_lowest_node_becomes_primary_in_every_mode() {
        for mode in ClusterMode::ALL {
            let plan = plan(
                *mode,
                vec![
                    node(9, &["mongo"]),
                    node(4, &["mongo", "cinder"]),
                    node(6, &["mongo"]),
                ],
            );
            assert_eq!(
                roles(&plan),
                expected_roles(&[
                    (4, "cinder"),
                    (4, "primary-mongo"),
                    (6, "mongo"),
                    (9, "mongo")
                ]),
                "{mode}"
            );
        }
    }

    #[test]
    fn controller_of_the_lowest_node_becomes_primary_only_in_ha() {
        let nodes = || {
            vec![
                node(8, &["controller"]),
                node(5, &["controller", "cinder"]),
                node(2, &["compute"]),
            ]
        };
        for mode in HA_MODES {
            assert_eq!(
                roles(&plan(mode, nodes())),
                expected_roles(&[
                    (2, "compute"),
                    (5, "cinder"),
                    (5, "primary-controller"),
                    (8, "controller"),
                ]),
                "{mode}"
            );
        }
        assert_eq!(
            roles(&plan(ClusterMode::Multinode, nodes())),
            expected_roles(&[
                (2, "compute"),
                (5, "cinder"),
                (5, "controller"),
                (8, "controller")
            ])
        );
    }

    #[test]
    fn renaming_keeps_the_entrys_position() {
        // "primary-mongo" sorts after "compute" and "controller" but the entry stays where "mongo" was.
        let plan = plan(
            ClusterMode::HaFull,
            vec![node(1, &["mongo", "controller", "ceph-osd"])],
        );
        assert_eq!(
            roles(&plan),
            expected_roles(&[
                (1, "ceph-osd"),
                (1, "primary-controller"),
                (1, "primary-mongo")
            ])
        );
    }

    #[test]
    fn a_primary_role_already_given_is_not_doubled() {
        let plan = plan(
            ClusterMode::HaCompact,
            vec![
                node(1, &["controller"]),
                node(2, &["primary-controller"]),
                node(3, &["mongo"]),
                node(4, &["primary-mongo"]),
            ],
        );
        assert_eq!(
            roles(&plan),
            expected_roles(&[
                (1, "controller"),
                (2, "primary-controller"),
                (3, "mongo"),
                (4, "primary-mongo"),
            ])
        );
    }

    #[test]
    fn multinode_priorities_follow_the_patching_order() {
        let plan = plan(
            ClusterMode::Multinode,
            vec![
                node(6, &["swift-proxy", "cinder"]),
                node(5, &["compute", "ceph-osd"]),
                node(4, &["zabbix-server"]),
                node(3, &["mongo"]),
                node(2, &["mongo", "controller"]),
                node(1, &["controller"]),
            ],
        );
        assert_table(
            &plan,
            &[
                (1, "controller", 400, true),
                (2, "controller", 500, true),
                (2, "primary-mongo", 300, true),
                (3, "mongo", 200, false),
                (4, "zabbix-server", 100, false),
                (5, "ceph-osd", 600, true),
                (5, "compute", 700, false),
                (6, "cinder", 800, false),
                (6, "swift-proxy", 900, false),
            ],
        );
    }

    /// Every HA group present. Nothing elects a primary swift proxy (the contract names only mongo
    /// and controller), so node 4 is given that role outright and it passes through.
    fn ha_cluster_with_every_group(mode: ClusterMode) -> DeployPlan {
        plan(
            mode,
            vec![
                node(11, &["compute", "ceph-osd"]),
                node(10, &["controller"]),
                node(9, &["controller", "cinder"]),
                node(8, &["controller"]),
                node(7, &["mongo"]),
                node(6, &["mongo"]),
                node(5, &["storage"]),
                node(4, &["primary-swift-proxy"]),
                node(3, &["swift-proxy"]),
                node(2, &["swift-proxy"]),
                node(1, &["zabbix-server"]),
            ],
        )
    }

    #[test]
    fn ha_priorities_follow_the_patching_order() {
        for mode in HA_MODES {
            assert_table(
                &ha_cluster_with_every_group(mode),
                &[
                    (1, "zabbix-server", 100, false),
                    (2, "swift-proxy", 300, false),
                    (3, "swift-proxy", 400, false),
                    (4, "primary-swift-proxy", 200, true),
                    (5, "storage", 500, false),
                    (6, "primary-mongo", 700, true),
                    (7, "mongo", 600, false),
                    (8, "primary-controller", 800, true),
                    (9, "cinder", 1100, false),
                    (9, "controller", 900, false),
                    (10, "controller", 1000, false),
                    (11, "ceph-osd", 1200, true),
                    (11, "compute", 1300, false),
                ],
            );
        }
    }

    #[test]
    fn ha_groups_are_plain_roles_in_multinode() {
        // swift-proxy, storage and primary-swift-proxy have no group of their own in multinode.
        assert_table(
            &ha_cluster_with_every_group(ClusterMode::Multinode),
            &[
                (1, "zabbix-server", 100, false),
                (2, "swift-proxy", 700, false),
                (3, "swift-proxy", 800, false),
                (4, "primary-swift-proxy", 900, false),
                (5, "storage", 1000, false),
                (6, "primary-mongo", 300, true),
                (7, "mongo", 200, false),
                (8, "controller", 400, true),
                (9, "cinder", 1100, false),
                (9, "controller", 500, true),
                (10, "controller", 600, true),
                (11, "ceph-osd", 1200, true),
                (11, "compute", 1300, false),
            ],
        );
    }

    #[test]
    fn priorities_are_unique_and_step_by_one_hundred() {
        for mode in ClusterMode::ALL {
            let mut priorities: Vec<u64> = deployment_info(&ha_cluster_with_every_group(*mode))
                .iter()
                .map(|entry| entry["priority"].as_u64().unwrap())
                .collect();
            priorities.sort_unstable();
            let expected: Vec<u64> = (1..=13).map(|turn| turn * 100).collect();
            assert_eq!(priorities, expected, "{mode}");
        }
    }

    #[test]
    fn critical_roles_per_mode() {
        for role in ["controller", "ceph-osd", "primary-mongo"] {
            assert!(
                is_critical(ClusterMode::Multinode, role),
                "multinode {role}"
            );
        }
        for role in [
            "mongo",
            "primary-controller",
            "primary-swift-proxy",
            "swift-proxy",
            "storage",
            "zabbix-server",
            "compute",
            "cinder",
        ] {
            assert!(
                !is_critical(ClusterMode::Multinode, role),
                "multinode {role}"
            );
        }
        for mode in HA_MODES {
            for role in [
                "primary-controller",
                "primary-mongo",
                "primary-swift-proxy",
                "ceph-osd",
            ] {
                assert!(is_critical(mode, role), "{mode} {role}");
            }
            for role in [
                "controller",
                "mongo",
                "swift-proxy",
                "storage",
                "zabbix-server",
                "compute",
                "cinder",
            ] {
                assert!(!is_critical(mode, role), "{mode} {role}");
            }
        }
    }

    #[test]
    fn fail_if_error_marks_critical_entries_in_multinode() {
        let plan = plan(
            ClusterMode::Multinode,
            vec![
                node(1, &["controller", "mongo"]),
                node(2, &["ceph-osd", "compute", "mongo"]),
            ],
        );
        assert_table(
            &plan,
            &[
                (1, "controller", 300, true),
                (1, "primary-mongo", 200, true),
                (2, "ceph-osd", 400, true),
                (2, "compute", 500, false),
                (2, "mongo", 100, false),
            ],
        );
    }

    #[test]
    fn fail_if_error_marks_only_primaries_and_ceph_in_ha() {
        for mode in HA_MODES {
            let plan = plan(
                mode,
                vec![
                    node(1, &["controller", "mongo"]),
                    node(2, &["controller", "ceph-osd", "mongo"]),
                    node(3, &["primary-swift-proxy", "swift-proxy", "compute"]),
                ],
            );
            assert_table(
                &plan,
                &[
                    (1, "primary-controller", 500, true),
                    (1, "primary-mongo", 400, true),
                    (2, "ceph-osd", 700, true),
                    (2, "controller", 600, false),
                    (2, "mongo", 300, false),
                    (3, "compute", 800, false),
                    (3, "primary-swift-proxy", 100, true),
                    (3, "swift-proxy", 200, false),
                ],
            );
        }
    }

    #[test]
    fn cobbler_profile_follows_the_operating_system() {
        assert_eq!(
            cobbler_profile(OperatingSystem::Ubuntu),
            "ubuntu_1204_x86_64"
        );
        assert_eq!(cobbler_profile(OperatingSystem::CentOS), "centos-x86_64");
        for (os, profile) in [
            (OperatingSystem::Ubuntu, "ubuntu_1204_x86_64"),
            (OperatingSystem::CentOS, "centos-x86_64"),
        ] {
            let mut plan = plan(
                ClusterMode::Multinode,
                vec![node(1, &["controller", "compute"])],
            );
            plan.deployed = release("2014.1.1-5.0.2", os);
            for entry in deployment_info(&plan) {
                assert_eq!(entry["cobbler"], json!({ "profile": profile }), "{os}");
            }
        }
    }

    #[test]
    fn contract_keys_override_attributes_and_other_attributes_are_copied() {
        let mut plan = plan(ClusterMode::HaCompact, vec![node(3, &["controller"])]);
        plan.cluster.attributes = attributes(json!({
            "uid": "999",
            "role": "impostor",
            "status": "ready",
            "online": false,
            "priority": 1,
            "fail_if_error": false,
            "fuel_version": "4.1",
            "deployment_id": 42,
            "deployment_mode": "multinode",
            "openstack_version": "2013.2",
            "openstack_version_prev": null,
            "cobbler": { "profile": "rhel-x86_64" },
            "nodes": [],
            "master_ip": "10.20.0.2",
            "debug": true,
            "storage": { "volumes_ceph": true },
        }));
        let entry = &deployment_info(&plan)[0];
        assert_eq!(entry["uid"], "3");
        assert_eq!(entry["role"], "primary-controller");
        assert_eq!(entry["status"], "provisioned");
        assert_eq!(entry["online"], true);
        assert_eq!(entry["priority"], 100);
        assert_eq!(entry["fail_if_error"], true);
        assert_eq!(entry["fuel_version"], "5.1");
        assert_eq!(entry["deployment_id"], 7);
        assert_eq!(entry["deployment_mode"], "ha_compact");
        assert_eq!(entry["openstack_version"], "2014.1.1-5.0.2");
        assert_eq!(entry["openstack_version_prev"], "2014.1-5.0");
        assert_eq!(entry["cobbler"], json!({ "profile": "ubuntu_1204_x86_64" }));
        assert_eq!(entry["nodes"].as_array().unwrap().len(), 1);
        assert_eq!(entry["master_ip"], "10.20.0.2");
        assert_eq!(entry["debug"], true);
        assert_eq!(entry["storage"], json!({ "volumes_ceph": true }));
    }

    #[test]
    fn node_and_release_facts_are_copied_into_every_entry() {
        let mut offline = node(2, &["compute", "cinder"]);
        offline.online = false;
        let mut plan = plan(ClusterMode::HaFull, vec![node(1, &["controller"]), offline]);
        plan.deployed = release("2014.1.1-5.0.2", OperatingSystem::CentOS);
        let info = deployment_info(&plan);
        assert_eq!(info.len(), 3);
        for entry in &info {
            assert_eq!(entry["status"], "provisioned");
            assert_eq!(entry["deployment_id"], json!(7));
            assert_eq!(entry["deployment_mode"], "ha_full");
            assert_eq!(entry["fuel_version"], "5.1");
            assert_eq!(
                entry["repo_metadata"],
                json!({ "nailgun": "http://10.20.0.2:8080/2014.1.1-5.0.2/centos/x86_64" })
            );
            assert_eq!(
                entry["puppet_modules_source"],
                "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/"
            );
            assert_eq!(
                entry["puppet_manifests_source"],
                "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/manifests/"
            );
        }
        assert_eq!(
            (&info[0]["name"], &info[0]["fqdn"], &info[0]["online"]),
            (&json!("node-1"), &json!("node-1.domain.tld"), &json!(true))
        );
        for entry in &info[1..] {
            assert_eq!(
                (
                    &entry["uid"],
                    &entry["name"],
                    &entry["fqdn"],
                    &entry["online"]
                ),
                (
                    &json!("2"),
                    &json!("node-2"),
                    &json!("node-2.domain.tld"),
                    &json!(false)
                )
            );
        }
    }

    #[test]
    fn versions_come_from_the_plan() {
        // A rollback: the current release is deployed again, leaving the failed target's version.
        let mut plan = plan(ClusterMode::Multinode, vec![node(1, &["controller"])]);
        plan.deployed = release("2014.1-5.0", OperatingSystem::Ubuntu);
        plan.previous_version = "2014.1.1-5.0.2".to_owned();
        let entry = &deployment_info(&plan)[0];
        assert_eq!(entry["openstack_version"], "2014.1-5.0");
        assert_eq!(entry["openstack_version_prev"], "2014.1.1-5.0.2");
    }

    #[test]
    fn nodes_lists_every_entry_of_the_cluster_in_entry_order() {
        let plan = plan(
            ClusterMode::HaCompact,
            vec![
                node(5, &["mongo"]),
                node(2, &["controller", "cinder"]),
                node(3, &["controller"]),
            ],
        );
        let expected = json!([
            { "uid": "2", "name": "node-2", "fqdn": "node-2.domain.tld", "role": "cinder" },
            { "uid": "2", "name": "node-2", "fqdn": "node-2.domain.tld", "role": "primary-controller" },
            { "uid": "3", "name": "node-3", "fqdn": "node-3.domain.tld", "role": "controller" },
            { "uid": "5", "name": "node-5", "fqdn": "node-5.domain.tld", "role": "primary-mongo" },
        ]);
        let info = deployment_info(&plan);
        assert_eq!(info.len(), 4);
        for entry in &info {
            assert_eq!(entry["nodes"], expected);
        }
    }

    #[test]
    fn fixture_env_multinode_deploys_as_expected() {
        let plan = fixture_env_multinode();
        assert_table(
            &plan,
            &[
                (1, "controller", 200, true),
                (2, "cinder", 300, false),
                (2, "compute", 400, false),
                (3, "compute", 500, false),
                (4, "primary-mongo", 100, true),
            ],
        );
        let info = deployment_info(&plan);
        for entry in &info {
            assert_eq!(entry["deployment_mode"], "multinode");
            assert_eq!(entry["deployment_id"], 1);
            assert_eq!(entry["cobbler"]["profile"], "ubuntu_1204_x86_64");
            assert_eq!(entry["openstack_version"], "2014.1.1-5.0.2");
            assert_eq!(entry["openstack_version_prev"], "2014.1-5.0");
            assert_eq!(entry["master_ip"], "10.20.0.2");
            assert_eq!(entry["debug"], false);
            assert_eq!(entry["auto_assign_floating_ip"], false);
        }
        assert_eq!(info[1]["online"], false);
        assert_eq!(info[0]["online"], true);
    }

    #[test]
    fn fixture_env_ha_deploys_as_expected() {
        let plan = fixture_env_ha();
        assert_table(
            &plan,
            &[
                (11, "primary-controller", 300, true),
                (12, "controller", 400, false),
                (13, "controller", 500, false),
                (14, "ceph-osd", 600, true),
                (14, "compute", 700, false),
                (15, "ceph-osd", 800, true),
                (15, "compute", 900, false),
                (16, "primary-mongo", 200, true),
                (17, "zabbix-server", 100, false),
            ],
        );
        for entry in deployment_info(&plan) {
            assert_eq!(entry["deployment_mode"], "ha_compact");
            assert_eq!(entry["cobbler"]["profile"], "centos-x86_64");
            assert_eq!(entry["master_ip"], "10.20.0.2");
            assert_eq!(entry["debug"], true);
            assert_eq!(entry["nodes"].as_array().unwrap().len(), 9);
        }
    }
}
