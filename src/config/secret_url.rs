//! A URL that may carry a password (`amqp.url`, `database.url`): held in a `SecretString`, shown
//! by `Debug` and `redacted()` with every password replaced by `***`, and handed over in full
//! only by `expose()`, where the bridge connects.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// The URL with its password, for the one call that connects with it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with every password (each node's, and a `password=` query parameter) replaced
    /// by `***`.
    pub fn redacted(&self) -> String {
        redact(self.expose())
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        SecretUrl(url.into())
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        SecretUrl(url.to_owned().into())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// `scheme://user:***@host,user:***@host2/path?password=***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authorities, tail) = rest.split_at(cut);
    let authorities: Vec<String> = authorities
        .split(',')
        .map(|authority| match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        })
        .collect();
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{}{path}", authorities.join(","));
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_a_url_carries_them() {
        for (url, shown) in [
            (
                "amqp://bridge:s3cr3t@h1:5672,other:s3cr3t@h2/fuel?heartbeat=10",
                "amqp://bridge:***@h1:5672,other:***@h2/fuel?heartbeat=10",
            ),
            (
                "postgres://bridge:s3cr3t@db/bridge?sslmode=verify-full",
                "postgres://bridge:***@db/bridge?sslmode=verify-full",
            ),
            (
                "postgres://db/bridge?user=bridge&password=s3cr3t",
                "postgres://db/bridge?user=bridge&password=***",
            ),
            (
                "postgres://bridge:p%40ss@db/x",
                "postgres://bridge:***@db/x",
            ),
            ("postgres://b:p@ss@db/x", "postgres://b:***@db/x"),
            ("sqlite://bridge.db?mode=rwc", "sqlite://bridge.db?mode=rwc"),
            ("not a url s3cr3t", "***"),
        ] {
            let secret = SecretUrl::from(url);
            assert_eq!(secret.redacted(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            assert_eq!(secret.expose(), url);
        }
    }
}
