//! Where a release's sources may point (`[security] allowed_source_prefixes`): an update makes
//! Astute run the release's Puppet manifests as root on every node, and install packages from
//! its repositories, so a release naming any other server is refused.
//!
//! A source is inside a prefix when, both parsed as URLs (so `..`, `%2e%2e`, `\`, case and
//! default ports are normalized as the fetching tools see them), they have the same scheme,
//! host, port and user, and the source's path is the prefix's path or below it, segment by
//! segment. A plain string comparison would let `http://10.20.0.2.evil.example/` or
//! `http://10.20.0.2:8080@evil.example/` through a prefix `http://10.20.0.2`.

use serde_json::{Map, Value};
use url::Url;

use super::release_sources::{SourceError, SourceField, StoredSources};

/// The allowed prefixes, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePrefixes {
    prefixes: Vec<(String, Url)>,
}

/// A prefix that is not a URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed source prefix '{prefix}' {problem}")]
pub struct PrefixError {
    pub prefix: String,
    pub problem: String,
}

impl SourcePrefixes {
    /// Parses the configured prefixes; each must be a URL with a host.
    pub fn parse(list: &[String]) -> Result<SourcePrefixes, PrefixError> {
        let prefixes = list
            .iter()
            .map(|text| {
                let fail = |problem: String| PrefixError {
                    prefix: text.clone(),
                    problem,
                };
                let url =
                    Url::parse(text.trim()).map_err(|e| fail(format!("is not a URL ({e})")))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(fail("names no host".into()));
                }
                Ok((text.clone(), url))
            })
            .collect::<Result<_, _>>()?;
        Ok(SourcePrefixes { prefixes })
    }

    /// An empty list: allows nothing.
    pub fn none() -> SourcePrefixes {
        SourcePrefixes {
            prefixes: Vec::new(),
        }
    }

    /// The prefixes as configured.
    pub fn as_strings(&self) -> Vec<&str> {
        self.prefixes
            .iter()
            .map(|(text, _)| text.as_str())
            .collect()
    }

    /// Whether `source` (a URL) is inside one of the prefixes.
    pub fn allows(&self, source: &str) -> bool {
        let Ok(url) = Url::parse(source.trim()) else {
            return false;
        };
        self.prefixes.iter().any(|(_, prefix)| inside(&url, prefix))
    }

    /// Checks every source a release has (absent ones are skipped): the repositories' URLs
    /// (the first word of an APT line) and both Puppet sources. The error names the field.
    pub fn check(&self, sources: StoredSources<'_>) -> Result<(), SourceError> {
        check_repos(self, sources.repo_metadata)?;
        for (field, value) in [
            (
                SourceField::PuppetModulesSource,
                sources.puppet_modules_source,
            ),
            (
                SourceField::PuppetManifestsSource,
                sources.puppet_manifests_source,
            ),
        ] {
            if !value.is_empty() && !self.allows(value) {
                return Err(self.outside(field.as_str(), value));
            }
        }
        Ok(())
    }

    fn outside(&self, field: &str, value: &str) -> SourceError {
        SourceError::Invalid {
            field: field.to_owned(),
            problem: format!(
                "'{}' is outside the allowed source prefixes ({}; setting [security] allowed_source_prefixes)",
                shorten(value),
                self.as_strings().join(", ")
            ),
        }
    }
}

fn check_repos(prefixes: &SourcePrefixes, repos: &Map<String, Value>) -> Result<(), SourceError> {
    for (name, value) in repos {
        let field = format!("{}.{name}", SourceField::RepoMetadata);
        let url = value
            .as_str()
            .and_then(|line| line.split_whitespace().next())
            .unwrap_or_default();
        if !prefixes.allows(url) {
            return Err(prefixes.outside(&field, url));
        }
    }
    Ok(())
}

/// Same scheme, host, port and user; the path the prefix's or below it.
fn inside(url: &Url, prefix: &Url) -> bool {
    if url.scheme() != prefix.scheme()
        || url.host() != prefix.host()
        || url.port_or_known_default() != prefix.port_or_known_default()
        || url.username() != prefix.username()
        || url.password() != prefix.password()
    {
        return false;
    }
    let (path, base) = (url.path(), prefix.path());
    match path.strip_prefix(base) {
        None => false,
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// A hostile value may be megabytes long; a message quotes its start.
fn shorten(value: &str) -> String {
    const KEEP: usize = 200;
    if value.chars().count() <= KEEP {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(KEEP).collect::<String>())
    }
}

#[cfg(test)]
#[path = "source_allowlist_tests.rs"]
mod tests;
