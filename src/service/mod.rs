//! One function per operation, shared by the AMQP request consumer and the HTTP API. Each runs
//! inside a transaction its caller opened, so the caller decides when the change (and the
//! messages it queued in the outbox) commits.

pub mod audit;
pub mod clusters;
pub mod dispatch;
pub mod notifications;
pub mod page;
pub mod patching;
pub mod releases;
pub mod replies;
pub mod reply_batch;
pub mod tasks;

use sea_orm::DbErr;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::AmqpSettings;
use crate::core::access::AllowedUsers;
use crate::core::refusal::{ErrorCode, Refusal};
use crate::core::release_sources::Master;
use crate::core::source_allowlist::SourcePrefixes;

/// What every operation needs besides its transaction.
#[derive(Debug, Clone)]
pub struct Context {
    /// This master's Fuel version, checked against `compatible_fuel_versions`.
    pub fuel_version: String,
    /// Exchange and queue names, for the messages queued in the outbox.
    pub amqp: AmqpSettings,
    /// `astute-bridge.<hostname>`, the notification envelope's `publisher_id`.
    pub publisher_id: String,
    /// The master whose default sources stand in for a release's missing ones in a cast.
    pub master: Master,
    /// `[security] allowed_source_prefixes`: where a release's sources may point; `None`: anywhere.
    pub source_prefixes: Option<SourcePrefixes>,
    /// `[requests] allowed_users`: who may send AMQP requests; `None`: anyone.
    pub allowed_users: Option<AllowedUsers>,
}

impl Context {
    /// The context of a bridge run with `settings` (already validated by `Settings::load`).
    pub fn from_settings(settings: &crate::config::Settings, publisher_id: String) -> Context {
        Context {
            fuel_version: settings.fuel_version.clone(),
            amqp: settings.amqp.clone(),
            publisher_id,
            master: settings.master.master(),
            // Checked when the settings were loaded; a prefix list that no longer parses
            // allows nothing rather than everything.
            source_prefixes: settings
                .security
                .source_prefixes()
                .unwrap_or_else(|_| Some(SourcePrefixes::none())),
            allowed_users: settings.requests.allowed_users(),
        }
    }
}

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Refused: nothing changed, and the client is told why.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database failed; the caller rolls back and may retry.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl ServiceError {
    /// The refusal a client sees; database failures are `internal`.
    pub fn to_refusal(&self) -> Refusal {
        match self {
            ServiceError::Refused(refusal) => refusal.clone(),
            ServiceError::Database(_) => {
                Refusal::new(ErrorCode::Internal, "the database failed; try again later")
            }
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Parses a request's `args` into a typed value; wrong types, missing or unknown fields are
/// `invalid_request` with serde's own description.
pub fn parse_args<T: DeserializeOwned>(args: Map<String, Value>) -> Result<T, Refusal> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| Refusal::invalid_request(format!("invalid args: {e}")))
}

/// Refuses an empty or overlong text field.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    if value.trim().is_empty() {
        return Err(Refusal::invalid_request(format!(
            "{field} must not be empty"
        )));
    }
    if value.chars().count() > max {
        return Err(Refusal::invalid_request(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// The answer to an insert whose unique constraint may refuse it: the row, or `duplicate`.
pub(crate) fn inserted_or<T: serde::Serialize>(
    inserted: Result<T, DbErr>,
    duplicate: Refusal,
) -> ServiceResult<Value> {
    match inserted {
        Ok(model) => Ok(to_json(&model)),
        Err(err) if crate::store::is_unique_violation(&err) => Err(duplicate.into()),
        Err(err) => Err(err.into()),
    }
}

/// An operation's answer, serialized once (compact JSON) and carried as it is from there on.
pub type Answer = Box<serde_json::value::RawValue>;

/// Serialises an operation's result into its answer.
pub fn answer<T: serde::Serialize + ?Sized>(value: &T) -> ServiceResult<Answer> {
    crate::core::compact::to_string(value)
        .and_then(serde_json::value::RawValue::from_string)
        .map_err(|e| {
            Refusal::new(
                ErrorCode::Internal,
                format!("the answer could not be serialized: {e}"),
            )
            .into()
        })
}

/// Serialises a stored row for a response.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
