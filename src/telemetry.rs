//! Prometheus metrics. Each notable event increments one counter with bounded labels (never a
//! task uuid); gauges that describe stored state are read at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls reuse it.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// A reply from Astute was handled; `outcome` is `applied`, `unchanged`, `dead_lettered`,
/// `requeued`, or `node_dead_lettered` (a copy of its unreadable node entries dead-lettered; the
/// reply itself is also counted as applied or unchanged).
pub fn reply_handled(outcome: &'static str) {
    metrics::counter!("astute_bridge_replies_total", "outcome" => outcome).increment(1);
}

/// A request was answered; `outcome` is `ok`, `refused` or `requeued`.
pub fn request_handled(outcome: &'static str) {
    metrics::counter!("astute_bridge_requests_total", "outcome" => outcome).increment(1);
}

/// Outbox messages published (confirmed by the broker).
pub fn published(count: usize) {
    metrics::counter!("astute_bridge_outbox_published_total").increment(count as u64);
}

/// The number of messages waiting in the outbox, set at scrape time.
pub fn outbox_backlog(count: u64) {
    metrics::gauge!("astute_bridge_outbox_backlog").set(count as f64);
}

/// Whether the broker connection is up (1) or not (0), set at scrape time.
pub fn broker_connected(up: bool) {
    metrics::gauge!("astute_bridge_broker_connected").set(if up { 1.0 } else { 0.0 });
}

/// The bridge started its session again after `cause` (a part's name, `broker` or `database`)
/// ended it.
pub fn restarted(cause: &'static str) {
    metrics::counter!("astute_bridge_restarts_total", "cause" => cause).increment(1);
}

/// An outbox message was set aside (parked) after the broker refused it.
pub fn outbox_parked() {
    metrics::counter!("astute_bridge_outbox_parked_total").increment(1);
}

/// The number of parked outbox messages, set at scrape time.
pub fn outbox_parked_now(count: u64) {
    metrics::gauge!("astute_bridge_outbox_parked").set(count as f64);
}
