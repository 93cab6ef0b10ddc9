//! Errors as HTTP answers: the contract's codes in `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::core::refusal::{ErrorCode, Refusal};
use crate::service::ServiceError;

#[derive(Debug)]
pub struct ApiError(pub Refusal);

/// The body of every error answer (for the OpenAPI document; answers are built with `json!`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A code of contract section 4: invalid_request, not_found, conflict, unauthorized, …
    code: String,
    /// Human text.
    message: String,
}

/// An error answer with a status of its own (the codes' usual status aside, e.g. 503).
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, Json(body)).into_response()
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError(Refusal::invalid_request(message))
    }

    pub fn database(err: sea_orm::DbErr) -> Self {
        ServiceError::Database(err).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        if let ServiceError::Database(db) = &err {
            tracing::error!(error = %db, "database failure in an HTTP request");
        }
        ApiError(err.to_refusal())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError(refusal)
    }
}

/// The status of each code: refusals of the request itself are 400, missing things 404, a
/// clash with what is going on 409.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest
        | ErrorCode::UnknownMethod
        | ErrorCode::IncompatibleRelease
        | ErrorCode::InvalidState => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(status_of(self.0.code), self.0.code, self.0.message)
    }
}

/// Any path that is not a route.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError(Refusal::not_found(format!("no such path: {}", uri.path())))
}
