//! The environment the cast benches deploy: `ha_compact`, the first 3 nodes controllers, every
//! other node compute + cinder, so one entry per (node, role) and every entry lists every entry.
//! Each function gives the arguments of the request that registers that part.

use serde_json::{json, Value};

/// The roles of the `index`-th node (from 0).
pub fn roles(index: usize) -> Vec<&'static str> {
    if index < 3 {
        vec!["controller"]
    } else {
        vec!["compute", "cinder"]
    }
}

/// `create_release` args: Ubuntu release `version`, updatable from `from`, with its own sources.
pub fn release(version: &str, from: Vec<&str>) -> Value {
    json!({"name": "Icehouse on Ubuntu 12.04", "version": version, "operating_system": "Ubuntu",
           "can_update_from_versions": from,
           "repo_metadata": {"nailgun": format!("http://10.20.0.2:8080/{version}/ubuntu/x86_64 precise main")},
           "puppet_modules_source": format!("rsync://10.20.0.2:/puppet/{version}/modules/"),
           "puppet_manifests_source": format!("rsync://10.20.0.2:/puppet/{version}/manifests/")})
}

/// `create_cluster` args: a deployed `ha_compact` environment `name` on `release_id`.
pub fn cluster(name: &str, release_id: &Value) -> Value {
    json!({"name": name, "release_id": release_id, "mode": "ha_compact",
           "status": "operational", "attributes": {"master_ip": "10.20.0.2"}})
}

/// The `nodes` of `add_nodes` for `count` nodes, `node-1` …
pub fn nodes(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"name": format!("node-{}", i + 1), "fqdn": format!("node-{}.domain.tld", i + 1),
                   "roles": roles(i)})
        })
        .collect()
}
