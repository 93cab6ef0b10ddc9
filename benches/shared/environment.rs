//! The environment the cast benches deploy: `ha_compact`, the first 3 nodes controllers, every
//! other node compute + cinder, so one entry per (node, role) and every entry lists every entry.

/// The roles of the `index`-th node (from 0).
pub fn roles(index: usize) -> Vec<&'static str> {
    if index < 3 {
        vec!["controller"]
    } else {
        vec!["compute", "cinder"]
    }
}
