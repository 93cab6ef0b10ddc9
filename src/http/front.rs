//! The HTTP front: one server for the life of the process. `/healthz`, `/readyz`, `/metrics`
//! and the operators' page (`/`) always answer; every other path goes to the API of the running session, or is
//! answered 503 while the bridge starts again (after losing its broker, its database or a part).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::error_response;
use super::{health, page, router, shape, Access, ApiState};
use crate::config::HttpSettings;
use crate::core::refusal::ErrorCode;
use crate::health::Health;

/// What the server forwards to.
#[derive(Clone)]
pub struct Front {
    health: Health,
    api: Arc<RwLock<Option<Router>>>,
    access: Access,
    /// One permit per API request in progress (`http.max_concurrent_requests`).
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// The probes: open to anyone, always.
fn probes() -> OpenApiRouter<Health> {
    OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
}

fn metrics() -> OpenApiRouter<Health> {
    OpenApiRouter::new().routes(routes!(health::metrics))
}

/// The front's own routes, for the OpenAPI document.
pub(super) fn documented_routes() -> OpenApiRouter<Health> {
    probes().merge(metrics())
}

impl Front {
    pub fn new(health: Health, settings: &HttpSettings) -> Self {
        Front {
            health,
            api: Arc::new(RwLock::new(None)),
            access: Access::new(settings),
            permits: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            timeout: settings.request_timeout(),
        }
    }

    /// Whether callers must present a token.
    pub fn requires_tokens(&self) -> bool {
        self.access.is_enforced()
    }

    /// Serves the API of a session that just started.
    pub fn open(&self, state: ApiState) {
        let api = router(state);
        if let Ok(mut slot) = self.api.write() {
            *slot = Some(api);
        }
    }

    /// The session ended: API calls answer 503 until the next one opens.
    pub fn close(&self) {
        if let Ok(mut slot) = self.api.write() {
            *slot = None;
        }
    }

    fn current(&self) -> Option<Router> {
        self.api.read().ok().and_then(|slot| slot.clone())
    }

    fn routes(self) -> Router {
        let health_state = self.health.clone();
        let (probes, _) = probes().split_for_parts();
        let (mut metrics, _) = metrics().split_for_parts();
        if self.access.metrics_require_token() {
            metrics = metrics.route_layer(middleware::from_fn_with_state(
                self.access.clone(),
                require_token,
            ));
        }
        let timeout = self.timeout;
        probes
            .merge(metrics)
            .route("/", get(page::index))
            .route("/assets/app.js", get(page::script))
            .route("/assets/style.css", get(page::style))
            .with_state(health_state)
            .fallback(forward)
            .with_state(self)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                timeout,
            ))
            .layer(middleware::from_fn(shape::json_errors))
    }
}

/// `/metrics` when it asks for a token: any valid one.
async fn require_token(State(access): State<Access>, request: Request, next: Next) -> Response {
    match access.authenticate(request.headers()) {
        Ok(_) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

/// The API: the caller and where the request may come from are checked first (before the body
/// is read), then a permit is taken.
async fn forward(State(front): State<Front>, mut request: Request) -> Response {
    let caller = match front.access.authorize(request.method(), request.headers()) {
        Ok(caller) => caller,
        Err(denied) => return denied.into_response(),
    };
    if let Err(refused) = super::origin::check(request.headers(), !front.access.is_enforced()) {
        return refused.into_response();
    }
    let caller_name = caller.name.clone();
    request.extensions_mut().insert(caller);
    let Ok(_permit) = front.permits.clone().try_acquire_owned() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "the bridge is serving as many requests as http.max_concurrent_requests allows; try again shortly",
        );
    };
    let changes = !(request.method() == Method::GET || request.method() == Method::HEAD);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match front.current() {
        Some(api) => match api.oneshot(request).await {
            Ok(response) => {
                // Who changed what: the token's name, never the token.
                if changes {
                    tracing::info!(caller = %caller_name, %method, path, status = response.status().as_u16(), "HTTP change");
                }
                response
            }
            Err(never) => match never {},
        },
        None => {
            let readiness = front.health.readiness().await;
            let why = readiness
                .not_ready
                .iter()
                .map(|(part, reason)| format!("{part}: {reason}"))
                .collect::<Vec<_>>()
                .join("; ");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                format!("the bridge is starting again ({why}); try again shortly"),
            )
        }
    }
}

/// Serves until `stop` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, front.routes())
        .with_graceful_shutdown(stop)
        .await
}
