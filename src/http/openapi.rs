//! `/api/openapi.json`: the OpenAPI document, generated from the routes as they are declared
//! (`api_routes` and the front's), so it cannot drift from what the bridge serves.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::error::error_response;
use super::{api_routes, front};
use crate::core::refusal::ErrorCode;

/// Where the document is served.
pub const PATH: &str = "/api/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "astute-bridge",
        description = "Nailgun's patching API (contract section 6). Errors answer {\"error\": {\"code\", \"message\"}}."
    ),
    modifiers(&BearerTokens),
    security(("bearer" = []))
)]
struct Base;

/// Every call takes `Authorization: Bearer <token>` when tokens are configured.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/openapi.json`: the document, written once on the first call and shared by every
/// session after it (nothing of it is held until someone asks).
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<Option<Bytes>> = OnceLock::new();
    let written = DOCUMENT.get_or_init(|| match serde_json::to_vec(&openapi()) {
        Ok(json) => Some(Bytes::from(json)),
        Err(err) => {
            tracing::error!(error = %err, "the OpenAPI document could not be written");
            None
        }
    });
    match written {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        None => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the OpenAPI document could not be written; see the log",
        ),
    }
}

/// The whole document: the API's routes and the front's (health, readiness, metrics).
pub fn openapi() -> Document {
    let mut doc = Base::openapi();
    doc.merge(api_routes().into_openapi());
    doc.merge(front::documented_routes().into_openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
