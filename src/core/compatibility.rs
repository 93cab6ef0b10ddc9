//! The release compatibility rule (contract section 2): which operation, if any, moves a cluster
//! from its current release to a target release.

use super::enums::{OperatingSystem, Operation, ReleaseState};
use super::refusal::Refusal;

/// The facts of a release the rule looks at.
#[derive(Debug, Clone)]
pub struct ReleaseSummary {
    pub id: i32,
    pub name: String,
    pub version: String,
    pub operating_system: OperatingSystem,
    pub state: ReleaseState,
    pub can_update_from_versions: Vec<String>,
    /// Empty means any Fuel version.
    pub compatible_fuel_versions: Vec<String>,
}

impl ReleaseSummary {
    fn label(&self) -> String {
        format!("release {} ('{}' {})", self.id, self.name, self.version)
    }
}

/// Decides the operation that moves a cluster from `current` to `target` on a master running
/// `fuel_version`, or says which rule refuses it (always `incompatible_release`).
pub fn choose_operation(
    current: &ReleaseSummary,
    target: &ReleaseSummary,
    fuel_version: &str,
) -> Result<Operation, Refusal> {
    if target.state != ReleaseState::Available {
        return Err(Refusal::incompatible(format!(
            "{} is {}, not available",
            target.label(),
            target.state
        )));
    }
    if target.operating_system != current.operating_system {
        return Err(Refusal::incompatible(format!(
            "{} installs {}, but the cluster runs {}: an update never changes the operating system",
            target.label(),
            target.operating_system,
            current.operating_system
        )));
    }
    if !target.compatible_fuel_versions.is_empty()
        && !target
            .compatible_fuel_versions
            .iter()
            .any(|v| v == fuel_version)
    {
        return Err(Refusal::incompatible(format!(
            "{} is not compatible with Fuel {} (compatible_fuel_versions: {})",
            target.label(),
            fuel_version,
            target.compatible_fuel_versions.join(", ")
        )));
    }
    relation(current, target).ok_or_else(|| {
        Refusal::incompatible(format!(
            "{} cannot update {}: neither lists the other's version in can_update_from_versions",
            target.label(),
            current.label()
        ))
    })
}

/// The operation between two releases by their versions alone: the same release is a redeploy
/// (`update`), a target that can update from the current version is an `upgrade`, and a current
/// release that can update from the target's version is left by a `downgrade`.
pub fn relation(current: &ReleaseSummary, target: &ReleaseSummary) -> Option<Operation> {
    if current.id == target.id {
        Some(Operation::Update)
    } else if target.operating_system != current.operating_system {
        None
    } else if target.can_update_from_versions.contains(&current.version) {
        Some(Operation::Upgrade)
    } else if current.can_update_from_versions.contains(&target.version) {
        Some(Operation::Downgrade)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::refusal::ErrorCode;

    fn release(id: i32, version: &str, os: OperatingSystem, from: &[&str]) -> ReleaseSummary {
        ReleaseSummary {
            id,
            name: format!("Icehouse {id}"),
            version: version.into(),
            operating_system: os,
            state: ReleaseState::Available,
            can_update_from_versions: from.iter().map(|s| s.to_string()).collect(),
            compatible_fuel_versions: vec![],
        }
    }

    fn base() -> ReleaseSummary {
        release(1, "2014.1-5.0", OperatingSystem::Ubuntu, &[])
    }

    fn patch() -> ReleaseSummary {
        release(
            2,
            "2014.1.1-5.0.2",
            OperatingSystem::Ubuntu,
            &["2014.1-5.0", "2014.1.1-5.0.1"],
        )
    }

    #[test]
    fn same_release_is_an_update() {
        assert_eq!(
            choose_operation(&base(), &base(), "5.1"),
            Ok(Operation::Update)
        );
    }

    #[test]
    fn target_listing_current_version_is_an_upgrade() {
        assert_eq!(
            choose_operation(&base(), &patch(), "5.1"),
            Ok(Operation::Upgrade)
        );
    }

    #[test]
    fn current_listing_target_version_is_a_downgrade() {
        assert_eq!(
            choose_operation(&patch(), &base(), "5.1"),
            Ok(Operation::Downgrade)
        );
    }

    #[test]
    fn unrelated_versions_are_refused() {
        let other = release(3, "2014.1.1-5.1", OperatingSystem::Ubuntu, &[]);
        let refusal = choose_operation(&base(), &other, "5.1").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IncompatibleRelease);
        assert!(
            refusal.message.contains("can_update_from_versions"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn another_operating_system_is_refused_even_when_versions_match() {
        let centos = release(
            4,
            "2014.1.1-5.0.2",
            OperatingSystem::CentOS,
            &["2014.1-5.0"],
        );
        let refusal = choose_operation(&base(), &centos, "5.1").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IncompatibleRelease);
        assert!(
            refusal.message.contains("operating system"),
            "{}",
            refusal.message
        );
        assert_eq!(relation(&base(), &centos), None);
    }

    #[test]
    fn unavailable_target_is_refused_in_every_non_available_state() {
        for state in [
            ReleaseState::NotAvailable,
            ReleaseState::Downloading,
            ReleaseState::Error,
        ] {
            let mut target = patch();
            target.state = state;
            let refusal = choose_operation(&base(), &target, "5.1").unwrap_err();
            assert_eq!(refusal.code, ErrorCode::IncompatibleRelease);
            assert!(
                refusal.message.contains(state.as_str()),
                "{}",
                refusal.message
            );
        }
    }

    #[test]
    fn fuel_version_must_be_listed_unless_the_list_is_empty() {
        let mut target = patch();
        target.compatible_fuel_versions = vec!["5.0".into(), "5.0.1".into()];
        let refusal = choose_operation(&base(), &target, "5.1").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IncompatibleRelease);
        assert!(refusal.message.contains("Fuel 5.1"), "{}", refusal.message);
        assert_eq!(
            choose_operation(&base(), &target, "5.0.1"),
            Ok(Operation::Upgrade)
        );
        target.compatible_fuel_versions.clear();
        assert_eq!(
            choose_operation(&base(), &target, "5.1"),
            Ok(Operation::Upgrade)
        );
    }

    #[test]
    fn a_redeploy_still_needs_an_available_compatible_release() {
        let mut same = base();
        same.state = ReleaseState::Downloading;
        assert!(choose_operation(&same, &same, "5.1").is_err());
    }
}
