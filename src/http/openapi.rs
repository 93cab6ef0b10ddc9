//! `/api/openapi.json`: the OpenAPI document, generated from the routes as they are declared
//! (`api_routes` and the front's), so it cannot drift from what the bridge serves.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::{api_routes, front};

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

/// The whole document: the API's routes and the front's (health, readiness, metrics).
pub fn openapi() -> Document {
    let mut doc = Base::openapi();
    doc.merge(api_routes().into_openapi());
    doc.merge(front::documented_routes().into_openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
