//! The HTTP front: one server for the life of the process. `/healthz`, `/readyz`, `/metrics`
//! and the operators' page (`/`) always answer; every other path goes to the API of the running session, or is
//! answered 503 while the bridge starts again (after losing its broker, its database or a part).

use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{health, page, router, ApiState};
use crate::health::Health;

/// What the server forwards to.
#[derive(Clone)]
pub struct Front {
    health: Health,
    api: Arc<RwLock<Option<Router>>>,
}

impl Front {
    pub fn new(health: Health) -> Self {
        Front {
            health,
            api: Arc::new(RwLock::new(None)),
        }
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
        Router::new()
            .route("/healthz", get(health::live))
            .route("/readyz", get(health::ready))
            .route("/metrics", get(health::metrics))
            .route("/", get(page::index))
            .route("/assets/app.js", get(page::script))
            .route("/assets/style.css", get(page::style))
            .with_state(health_state)
            .fallback(forward)
            .with_state(self)
    }
}

async fn forward(State(front): State<Front>, request: Request) -> Response {
    match front.current() {
        Some(api) => match api.oneshot(request).await {
            Ok(response) => response,
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
            let body = json!({"error": {
                "code": "internal",
                "message": format!("the bridge is starting again ({why}); try again shortly"),
            }});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
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
