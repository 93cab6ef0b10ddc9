//! The closed vocabularies of the contract (section 1 and 2), parsed once at the edges.

use serde::{Deserialize, Serialize};

/// Declares a string enum whose wire spelling is given per variant, with `as_str`, `parse`,
/// `ALL` and serde support, so the database, the wire and the core share one spelling.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// How a cluster's controllers are laid out; decides primary roles and patching order.
    ClusterMode { Multinode => "multinode", HaCompact => "ha_compact", HaFull => "ha_full" }
);

impl ClusterMode {
    /// Both HA modes elect a primary controller and use the HA patching order.
    pub fn is_ha(self) -> bool {
        matches!(self, ClusterMode::HaCompact | ClusterMode::HaFull)
    }
}

wire_enum!(
    /// The operating system a release installs; an update never crosses it.
    OperatingSystem { Ubuntu => "Ubuntu", CentOS => "CentOS" }
);

wire_enum!(
    /// Whether a release can be deployed from this master.
    ReleaseState {
        NotAvailable => "not_available",
        Downloading => "downloading",
        Error => "error",
        Available => "available",
    }
);

wire_enum!(
    /// A cluster's status (contract section 2).
    ClusterStatus {
        New => "new",
        Deployment => "deployment",
        Operational => "operational",
        Error => "error",
        Stopped => "stopped",
        Remove => "remove",
        Update => "update",
        Upgrade => "upgrade",
        Downgrade => "downgrade",
        Rollback => "rollback",
        UpdateError => "update_error",
        UpgradeError => "upgrade_error",
        DowngradeError => "downgrade_error",
        RollbackError => "rollback_error",
    }
);

wire_enum!(
    /// A patching operation; also the name of its task and of the cluster status while it runs.
    Operation { Update => "update", Upgrade => "upgrade", Downgrade => "downgrade", Rollback => "rollback" }
);

impl Operation {
    /// The cluster status while this operation runs.
    pub fn running_status(self) -> ClusterStatus {
        match self {
            Operation::Update => ClusterStatus::Update,
            Operation::Upgrade => ClusterStatus::Upgrade,
            Operation::Downgrade => ClusterStatus::Downgrade,
            Operation::Rollback => ClusterStatus::Rollback,
        }
    }

    /// The cluster status after this operation failed.
    pub fn error_status(self) -> ClusterStatus {
        match self {
            Operation::Update => ClusterStatus::UpdateError,
            Operation::Upgrade => ClusterStatus::UpgradeError,
            Operation::Downgrade => ClusterStatus::DowngradeError,
            Operation::Rollback => ClusterStatus::RollbackError,
        }
    }

    /// The capitalised name used in task messages and notifications ("Upgrade has failed. …").
    pub fn title(self) -> &'static str {
        match self {
            Operation::Update => "Update",
            Operation::Upgrade => "Upgrade",
            Operation::Downgrade => "Downgrade",
            Operation::Rollback => "Rollback",
        }
    }

    /// Whether a successful end moves the cluster onto its pending release.
    pub fn switches_release(self) -> bool {
        !matches!(self, Operation::Rollback)
    }
}

wire_enum!(
    /// A task's status.
    TaskStatus { Running => "running", Ready => "ready", Error => "error" }
);

wire_enum!(
    /// A node's status. Ordered by rank: Astute never lowers a node's status within a deployment,
    /// so a reply that would is stale and is ignored (see `reply`).
    NodeStatus {
        Discover => "discover",
        Provisioning => "provisioning",
        Provisioned => "provisioned",
        Deploying => "deploying",
        Ready => "ready",
        Error => "error",
    }
);

impl NodeStatus {
    /// Astute's reporter rank (`offline` < discover < provisioning < provisioned < deploying <
    /// ready < error).
    pub fn rank(self) -> u8 {
        match self {
            NodeStatus::Discover => 1,
            NodeStatus::Provisioning => 2,
            NodeStatus::Provisioned => 3,
            NodeStatus::Deploying => 4,
            NodeStatus::Ready => 5,
            NodeStatus::Error => 6,
        }
    }
}

wire_enum!(
    /// Why a node failed.
    NodeErrorType { Deploy => "deploy", Provision => "provision", Deletion => "deletion" }
);

wire_enum!(
    /// A notification's topic.
    NotificationTopic { Discover => "discover", Done => "done", Error => "error", Warning => "warning" }
);

impl NotificationTopic {
    /// The oslo.messaging priority operators' listeners filter on.
    pub fn priority(self) -> &'static str {
        match self {
            NotificationTopic::Done | NotificationTopic::Discover => "INFO",
            NotificationTopic::Warning => "WARN",
            NotificationTopic::Error => "ERROR",
        }
    }
}

wire_enum!(
    /// Whether an operator has seen a notification.
    NotificationStatus { Unread => "unread", Read => "read" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for s in ClusterStatus::ALL {
            assert_eq!(ClusterStatus::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for s in NodeStatus::ALL {
            assert_eq!(NodeStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(ClusterMode::parse("ha"), None);
        assert_eq!(OperatingSystem::parse("ubuntu"), None, "spelling is exact");
    }

    #[test]
    fn operation_statuses_pair_up() {
        for op in Operation::ALL {
            assert_eq!(op.running_status().as_str(), op.as_str());
            assert_eq!(op.error_status().as_str(), format!("{}_error", op.as_str()));
        }
        assert!(!Operation::Rollback.switches_release());
        assert!(Operation::Upgrade.switches_release());
    }

    #[test]
    fn node_ranks_are_strictly_increasing_in_declaration_order() {
        let ranks: Vec<u8> = NodeStatus::ALL.iter().map(|s| s.rank()).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn priorities_follow_topics() {
        assert_eq!(NotificationTopic::Done.priority(), "INFO");
        assert_eq!(NotificationTopic::Discover.priority(), "INFO");
        assert_eq!(NotificationTopic::Warning.priority(), "WARN");
        assert_eq!(NotificationTopic::Error.priority(), "ERROR");
    }
}
