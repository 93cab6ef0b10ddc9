//! Who may call which request method (`[requests] allowed_users`). RabbitMQ checks a message's
//! `user_id` property against the user the publishing connection logged in as (a mismatch
//! closes the channel), so a request's `user_id` names its sender.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::refusal::{ErrorCode, Refusal};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read methods only (lists, gets and the `check_update` dry run).
    Reader,
    /// Every method.
    Operator,
}

/// The methods that change nothing: all a reader may call. `check_update` is a dry run.
pub const READ_METHODS: &[&str] = &[
    "list_releases",
    "list_clusters",
    "get_cluster",
    "get_task",
    "check_update",
    "list_notifications",
];

/// Whether `method` changes nothing.
pub fn is_read(method: &str) -> bool {
    READ_METHODS.contains(&method)
}

impl Role {
    /// Whether this role may call `method` (an unknown method is not a read one).
    pub fn may_call(self, method: &str) -> bool {
        match self {
            Role::Operator => true,
            Role::Reader => is_read(method),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Result<Role, String> {
        match raw {
            "reader" => Ok(Role::Reader),
            "operator" => Ok(Role::Operator),
            other => Err(format!("role must be reader or operator, not '{other}'")),
        }
    }
}

/// The broker users allowed to send requests, with their roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedUsers {
    users: BTreeMap<String, Role>,
}

impl AllowedUsers {
    pub fn new(users: BTreeMap<String, Role>) -> AllowedUsers {
        AllowedUsers { users }
    }

    /// The role of `user_id`; `forbidden` when it is missing or not listed.
    pub fn role_of(&self, user_id: Option<&str>) -> Result<Role, Refusal> {
        let Some(user) = user_id.filter(|u| !u.is_empty()) else {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "the request has no user_id property; set it to the broker user you publish as",
            ));
        };
        self.users.get(user).copied().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Forbidden,
                format!(
                    "user '{}' may not send requests (not in [requests] allowed_users)",
                    shorten(user)
                ),
            )
        })
    }

    /// Refuses (`forbidden`) a request without a `user_id`, from a user not listed, or from a
    /// reader calling a method that changes something.
    pub fn authorize(&self, user_id: Option<&str>, method: &str) -> Result<Role, Refusal> {
        let role = self.role_of(user_id)?;
        let user = user_id.unwrap_or_default();
        if !role.may_call(method) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!(
                    "user '{}' is a reader and may call only {}",
                    shorten(user),
                    READ_METHODS.join(", ")
                ),
            ));
        }
        Ok(role)
    }
}

/// A user name as a message quotes it: escaped, and cut short (a `user_id` is up to 255 bytes).
fn shorten(user: &str) -> String {
    user.chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> AllowedUsers {
        AllowedUsers::new(BTreeMap::from([
            ("ops".to_string(), Role::Operator),
            ("monitor".to_string(), Role::Reader),
        ]))
    }

    #[test]
    fn operators_may_call_anything_readers_only_read_methods() {
        let u = users();
        assert_eq!(
            u.authorize(Some("ops"), "update_cluster"),
            Ok(Role::Operator)
        );
        assert_eq!(
            u.authorize(Some("monitor"), "check_update"),
            Ok(Role::Reader)
        );
        assert_eq!(
            u.authorize(Some("monitor"), "list_clusters"),
            Ok(Role::Reader)
        );
        for method in [
            "update_cluster",
            "create_release",
            "mark_notification",
            "no_such",
        ] {
            let err = u.authorize(Some("monitor"), method).unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden, "{method}");
        }
    }

    #[test]
    fn a_missing_or_unlisted_user_is_forbidden() {
        let u = users();
        for user in [None, Some(""), Some("guest"), Some("OPS")] {
            let err = u.authorize(user, "list_clusters").unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden, "{user:?}");
        }
    }
}
