//! Why an operation was refused: the error codes of contract section 4, with a human message.

use serde::Serialize;

/// The error codes every client sees, over AMQP and HTTP alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    UnknownMethod,
    NotFound,
    Conflict,
    IncompatibleRelease,
    InvalidState,
    /// The `deploy` cast or the answer would exceed `amqp.max_message_bytes`.
    MessageTooLarge,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials, not allowed to do this.
    Forbidden,
    Internal,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IncompatibleRelease => "incompatible_release",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: nothing was changed, and this says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::Conflict, message)
    }

    pub fn incompatible(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::IncompatibleRelease, message)
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::InvalidState, message)
    }
}
