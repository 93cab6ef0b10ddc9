//! Requests a web page on another site could make an operator's browser send. A page may send
//! a cross-site POST with a `text/plain` or form body without asking first, so a body must be
//! declared `application/json` (which a browser sends cross-site only after a CORS preflight the
//! bridge never grants). With no token configured, a page whose host name was re-pointed at
//! 127.0.0.1 (DNS rebinding) could call the API as its own origin, so the `Host` must then be
//! `localhost` or an IP address.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::error_response;
use crate::core::refusal::ErrorCode;

/// A refused request: its status, code and why.
#[derive(Debug)]
pub struct Refused(StatusCode, ErrorCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error_response(self.0, self.1, self.2)
    }
}

pub fn check(headers: &HeaderMap, anonymous: bool) -> Result<(), Refused> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if has_body && !json {
        return Err(Refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidRequest,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    if anonymous {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_local_name(host) {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "with no token configured the API answers only requests addressed to localhost or an IP address; configure [http] tokens to serve a host name",
            ));
        }
    }
    Ok(())
}

/// `localhost` or an IP literal, with or without a port.
fn is_local_name(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        for host in [
            "localhost",
            "LOCALHOST:8000",
            "127.0.0.1:8000",
            "10.0.0.1",
            "[::1]:8000",
        ] {
            assert!(is_local_name(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "[evil]:1",
        ] {
            assert!(!is_local_name(host), "{host}");
        }
    }
}
