//! Who is calling: bearer tokens checked in constant time, and what their role allows.
//! `401 unauthorized` without a valid token, `403 forbidden` for a reader changing something.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::{HttpSettings, Role};
use crate::core::refusal::{ErrorCode, Refusal};

/// The caller of a request, as handlers and the audit trail see it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` when no token is configured.
    pub name: String,
    pub role: Role,
}

struct Known {
    name: String,
    role: Role,
    /// SHA-256 of the token: comparing digests of equal length hides the token's length too.
    digest: [u8; 32],
}

/// The tokens the bridge accepts; none: every caller is an anonymous operator.
#[derive(Clone)]
pub struct Access {
    known: Arc<[Known]>,
    metrics_require_token: bool,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Access {
    pub fn new(settings: &HttpSettings) -> Self {
        Access {
            known: settings
                .tokens
                .0
                .iter()
                .map(|t| Known {
                    name: t.name.clone(),
                    role: t.role,
                    digest: digest(t.token.expose_secret().as_bytes()),
                })
                .collect(),
            metrics_require_token: settings.metrics_require_token,
        }
    }

    /// Whether any token is configured.
    pub fn is_enforced(&self) -> bool {
        !self.known.is_empty()
    }

    pub fn metrics_require_token(&self) -> bool {
        self.metrics_require_token && self.is_enforced()
    }

    /// The caller named by the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        if !self.is_enforced() {
            return Ok(Caller {
                name: "anonymous".into(),
                role: Role::Operator,
            });
        }
        let presented = bearer(headers).ok_or(Denied::Unauthorized(
            "a bearer token is required (Authorization: Bearer <token>)",
        ))?;
        let presented = digest(presented.as_bytes());
        // Every known token is compared, whichever matches.
        let mut found = None;
        for known in self.known.iter() {
            if bool::from(known.digest.ct_eq(&presented)) {
                found = Some(known);
            }
        }
        found
            .map(|k| Caller {
                name: k.name.clone(),
                role: k.role,
            })
            .ok_or(Denied::Unauthorized("the bearer token is not valid"))
    }

    /// The caller, if their role allows `method`.
    pub fn authorize(&self, method: &Method, headers: &HeaderMap) -> Result<Caller, Denied> {
        let caller = self.authenticate(headers)?;
        if caller.role == Role::Reader && !(method == Method::GET || method == Method::HEAD) {
            return Err(Denied::Forbidden(format!(
                "the token '{}' is a reader's: it may only read (GET)",
                caller.name
            )));
        }
        Ok(caller)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Why a request was turned away.
#[derive(Debug)]
pub enum Denied {
    Unauthorized(&'static str),
    Forbidden(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized(message) => {
                let mut response =
                    ApiError(Refusal::new(ErrorCode::Unauthorized, message)).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Denied::Forbidden(message) => {
                ApiError(Refusal::new(ErrorCode::Forbidden, message)).into_response()
            }
        }
    }
}
