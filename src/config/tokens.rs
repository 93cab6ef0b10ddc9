//! API tokens (`[http] tokens`, `http.token_file`): who may call the HTTP API, and what they may
//! do. A token is held in a `SecretString`, so no `Debug` or log line ever shows it.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Shortest token accepted: a guessable token is no token.
pub const MIN_TOKEN_CHARS: usize = 16;

pub use crate::core::access::Role;

/// One named token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Who holds it, as logs and the audit trail name the caller.
    pub name: String,
    pub role: Role,
    pub token: SecretString,
}

/// `[http] tokens` as written: a TOML list of `{name, role, token}` tables, or one string of
/// `name:role:token` entries separated by commas or newlines (the form an environment
/// variable such as `ASTUTE_BRIDGE__HTTP__TOKENS` carries).
#[derive(Clone, Default)]
pub struct TokenList(pub Vec<ApiToken>);

impl std::fmt::Debug for TokenList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<'de> Deserialize<'de> for TokenList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            name: String,
            role: Role,
            token: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Tables(Vec<Table>),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Tables(tables) => Ok(TokenList(
                tables
                    .into_iter()
                    .map(|t| ApiToken {
                        name: t.name,
                        role: t.role,
                        token: t.token.into(),
                    })
                    .collect(),
            )),
            Written::Text(text) => parse_entries(&text)
                .map(TokenList)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `name:role:token` entries, one per line or separated by commas; blank lines and
/// lines starting with `#` are skipped. The error never quotes a token.
pub fn parse_entries(text: &str) -> Result<Vec<ApiToken>, String> {
    let mut tokens = Vec::new();
    for (index, entry) in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with('#'))
        .enumerate()
    {
        let mut parts = entry.splitn(3, ':');
        let (Some(name), Some(role), Some(token)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("token entry {} is not name:role:token", index + 1));
        };
        tokens.push(ApiToken {
            name: name.trim().to_owned(),
            role: Role::parse(role.trim())
                .map_err(|e| format!("token entry {}: {e}", index + 1))?,
            token: token.trim().to_owned().into(),
        });
    }
    Ok(tokens)
}

/// Checks names and tokens: names present and distinct, tokens long enough, printable and
/// distinct. The messages name the token's holder, never the token.
pub fn validate(tokens: &[ApiToken]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    let mut secrets = std::collections::HashSet::new();
    for t in tokens {
        if t.name.is_empty() || t.name.chars().any(|c| c.is_control() || c == ':') {
            return Err("every http token needs a name (no ':' or control characters)".into());
        }
        if !names.insert(t.name.as_str()) {
            return Err(format!("http token name '{}' is given twice", t.name));
        }
        let secret = t.token.expose_secret();
        if secret.chars().count() < MIN_TOKEN_CHARS {
            return Err(format!(
                "http token '{}' is shorter than {MIN_TOKEN_CHARS} characters",
                t.name
            ));
        }
        if !secret.chars().all(|c| c.is_ascii_graphic()) || secret.contains(',') {
            return Err(format!(
                "http token '{}' must be printable ASCII without spaces or commas",
                t.name
            ));
        }
        if !secrets.insert(secret) {
            return Err(format!(
                "http token '{}' is the same token as another one",
                t.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_by_line_or_comma_and_errors_hide_the_token() {
        let parsed = parse_entries(
            "# ops team\nops:operator:aaaaaaaaaaaaaaaa:with-colon\n\nwatch:reader:bbbbbbbbbbbbbbbb",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[0].token.expose_secret(),
            "aaaaaaaaaaaaaaaa:with-colon"
        );
        assert_eq!(parsed[1].role, Role::Reader);
        let comma =
            parse_entries("a:reader:cccccccccccccccc, b:operator:dddddddddddddddd").unwrap();
        assert_eq!(comma[1].name, "b");

        let err = parse_entries("ops:admin:eeeeeeeeeeeeeeee").unwrap_err();
        assert!(err.contains("admin") && !err.contains("eeee"), "{err}");
        assert!(
            !format!("{parsed:?}").contains("aaaa"),
            "Debug shows no token"
        );
    }

    #[test]
    fn short_repeated_or_unnamed_tokens_are_refused() {
        let short = parse_entries("ops:operator:tiny").unwrap();
        let err = validate(&short).unwrap_err();
        assert!(err.contains("ops") && !err.contains("tiny"), "{err}");
        let twice = parse_entries("a:reader:ffffffffffffffff,b:operator:ffffffffffffffff").unwrap();
        assert!(validate(&twice).is_err());
        let unnamed = parse_entries(":reader:gggggggggggggggg").unwrap();
        assert!(validate(&unnamed).is_err());
        let good = parse_entries("a:reader:gggggggggggggggg,b:operator:hhhhhhhhhhhhhhhh").unwrap();
        assert!(validate(&good).is_ok());
    }
}
