//! Warnings at start about what is left open: settings whose absence lets anyone who reaches
//! the broker make Astute run code from anywhere.

use crate::config::Settings;

/// Logs one warning per open door in `settings`.
pub fn warn_about_open_settings(settings: &Settings) {
    if settings.security.allowed_source_prefixes.is_empty() {
        tracing::warn!(
            "[security] allowed_source_prefixes is not set: a release may name any repository \
             or Puppet source, and an update runs its manifests as root on every node"
        );
    }
    if settings.requests.allowed_users.is_empty() {
        tracing::warn!(
            "[requests] allowed_users is not set: every request on the request queue is \
             executed, whoever published it"
        );
    }
}
