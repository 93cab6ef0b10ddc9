//! Where a cast's package repositories and Puppet sources come from (contract section 3): the
//! deployed release's own, else the master's defaults (Nailgun 5.1's `DEFAULT_REPO[os]` and
//! `DEFAULT_PUPPET`, formatted with the master's address), else a refusal naming what is missing.
//!
//! Astute 5.1 (`DeploymentEngine#deploy`) reads them from the first entry of each batch:
//! - `repo_metadata` (name → value), whenever it is present — an empty object counts as present in
//!   Ruby and would leave every node with an empty sources list. Each value becomes a line
//!   `deb <value>` of `/etc/apt/sources.list` on Ubuntu, so it is a URL followed by the suite and
//!   components; on CentOS it becomes the `baseurl=<value>` of a section `[<name>]` of
//!   `/etc/yum.repos.d/nailgun.repo`, so it is a URL alone.
//! - `puppet_modules_source` and `puppet_manifests_source`: `URI.parse(url).scheme` of both must
//!   be the same and `rsync` (any other scheme fails the deploy with "Unknown scheme").
//!
//! So a usable repository URL is `http://` or `https://` (what APT and yum fetch), and a usable
//! Puppet source is `rsync://`.

use serde_json::{Map, Value};

use super::enums::OperatingSystem;

/// The repository name Nailgun 5.1 gives the master's default repository.
pub const DEFAULT_REPO_NAME: &str = "nailgun";

/// Placeholder for the master's address in a template.
pub const MASTER_IP_PLACEHOLDER: &str = "{master_ip}";

/// Placeholder for the deployed release's version in a template.
pub const VERSION_PLACEHOLDER: &str = "{version}";

/// Most repositories a release may list.
pub const MAX_REPOSITORIES: usize = 100;

/// Longest repository name, URL or Puppet source accepted.
pub const MAX_SOURCE_CHARS: usize = 2048;

/// The schemes APT and yum fetch a repository from.
const REPO_SCHEMES: &[&str] = &["http", "https"];

/// The one scheme Astute 5.1 syncs Puppet modules and manifests with.
const PUPPET_SCHEMES: &[&str] = &["rsync"];

/// A source field of a release, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceField {
    RepoMetadata,
    PuppetModulesSource,
    PuppetManifestsSource,
}

impl SourceField {
    /// The field's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceField::RepoMetadata => "repo_metadata",
            SourceField::PuppetModulesSource => "puppet_modules_source",
            SourceField::PuppetManifestsSource => "puppet_manifests_source",
        }
    }
}

impl std::fmt::Display for SourceField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why sources cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// A value Astute could not use; `field` is the field (or `repo_metadata.<name>`).
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
    /// The release has none of these and no master is configured to supply defaults.
    #[error(
        "has no {}, and no master is configured to supply the defaults (set [master] ip)",
        list(.0)
    )]
    Missing(Vec<SourceField>),
}

fn list(fields: &[SourceField]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    names.join(", ")
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A release's sources as stored: an empty object or string means the release has none.
#[derive(Debug, Clone, Copy)]
pub struct StoredSources<'a> {
    pub repo_metadata: &'a Map<String, Value>,
    pub puppet_modules_source: &'a str,
    pub puppet_manifests_source: &'a str,
}

/// Sources Astute 5.1 can use, never empty: what a cast carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub repo_metadata: Map<String, Value>,
    pub puppet_modules_source: String,
    pub puppet_manifests_source: String,
}

/// The master's default sources as templates with `{master_ip}` and `{version}` placeholders
/// (Nailgun 5.1's `DEFAULT_REPO` and `DEFAULT_PUPPET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTemplates {
    /// The default repository of Ubuntu releases: a URL, the suite and components.
    pub repo_ubuntu: String,
    /// The default repository of CentOS releases: a URL.
    pub repo_centos: String,
    pub puppet_modules: String,
    pub puppet_manifests: String,
}

/// The master node that serves the default sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// Its address on the admin network, as the nodes reach it; `None`: no master configured,
    /// so releases without sources cannot be cast.
    pub ip: Option<String>,
    pub templates: SourceTemplates,
}

impl SourceTemplates {
    fn repo(&self, os: OperatingSystem) -> &str {
        match os {
            OperatingSystem::Ubuntu => &self.repo_ubuntu,
            OperatingSystem::CentOS => &self.repo_centos,
        }
    }

    /// Checks that every template has only known placeholders and, filled in with a sample
    /// address and version, gives sources Astute can use.
    pub fn validate(&self) -> Result<(), SourceError> {
        for (field, template) in self.named() {
            if let Some(unknown) = unknown_placeholder(template) {
                return Err(invalid(
                    field,
                    format!("has an unknown placeholder '{unknown}' (known: {MASTER_IP_PLACEHOLDER}, {VERSION_PLACEHOLDER})"),
                ));
            }
        }
        Master {
            ip: Some("192.0.2.1".into()),
            templates: self.clone(),
        }
        .validate_with("2014.1.1-5.1")
    }

    fn named(&self) -> [(&'static str, &str); 4] {
        [
            ("default_repo.ubuntu", &self.repo_ubuntu),
            ("default_repo.centos", &self.repo_centos),
            ("default_puppet.modules", &self.puppet_modules),
            ("default_puppet.manifests", &self.puppet_manifests),
        ]
    }
}

impl Master {
    /// Checks that the templates filled in with this master's address (when there is one) give
    /// sources Astute can use; the error names the template.
    pub fn validate(&self) -> Result<(), SourceError> {
        self.templates.validate()?;
        if let Some(ip) = &self.ip {
            url::Host::parse(ip).map_err(|e| {
                invalid(
                    "ip",
                    format!("must be an IP address or a host name ('{ip}': {e})"),
                )
            })?;
        }
        self.validate_with("2014.1.1-5.1")
    }

    fn validate_with(&self, version: &str) -> Result<(), SourceError> {
        let Some(ip) = &self.ip else { return Ok(()) };
        let t = &self.templates;
        check_repo_value(
            OperatingSystem::Ubuntu,
            "default_repo.ubuntu",
            &render(&t.repo_ubuntu, ip, version),
        )?;
        check_repo_value(
            OperatingSystem::CentOS,
            "default_repo.centos",
            &render(&t.repo_centos, ip, version),
        )?;
        check_puppet_source(
            "default_puppet.modules",
            &render(&t.puppet_modules, ip, version),
        )?;
        check_puppet_source(
            "default_puppet.manifests",
            &render(&t.puppet_manifests, ip, version),
        )
    }
}

/// Fills in a template.
pub fn render(template: &str, master_ip: &str, version: &str) -> String {
    template
        .replace(MASTER_IP_PLACEHOLDER, master_ip)
        .replace(VERSION_PLACEHOLDER, version)
}

/// The first `{…}` of a template that is not a known placeholder (or a lone brace).
fn unknown_placeholder(template: &str) -> Option<String> {
    let rest = template
        .replace(MASTER_IP_PLACEHOLDER, "")
        .replace(VERSION_PLACEHOLDER, "");
    let start = rest.find(['{', '}'])?;
    let end = rest[start..]
        .find('}')
        .map_or(rest.len(), |offset| start + offset + 1);
    Some(rest[start..end].to_owned())
}

/// Checks the sources a release is registered with; absent (empty) ones are fine, since the
/// master's defaults stand in for them at cast time.
pub fn validate_stored(os: OperatingSystem, stored: StoredSources<'_>) -> Result<(), SourceError> {
    check_repo_metadata(os, stored.repo_metadata)?;
    for (field, value) in [
        (
            SourceField::PuppetModulesSource,
            stored.puppet_modules_source,
        ),
        (
            SourceField::PuppetManifestsSource,
            stored.puppet_manifests_source,
        ),
    ] {
        if !value.is_empty() {
            check_puppet_source(field.as_str(), value)?;
        }
    }
    Ok(())
}

/// The sources a cast of a release (`os`, `version`) carries: each field the release's own when
/// it has one, else the master's template filled in; refused when neither exists or the result
/// is not usable by Astute. The stored release itself is never changed.
pub fn resolve(
    os: OperatingSystem,
    version: &str,
    stored: StoredSources<'_>,
    master: &Master,
) -> Result<Sources, SourceError> {
    let missing: Vec<SourceField> = [
        (SourceField::RepoMetadata, stored.repo_metadata.is_empty()),
        (
            SourceField::PuppetModulesSource,
            stored.puppet_modules_source.is_empty(),
        ),
        (
            SourceField::PuppetManifestsSource,
            stored.puppet_manifests_source.is_empty(),
        ),
    ]
    .into_iter()
    .filter_map(|(field, absent)| absent.then_some(field))
    .collect();
    let ip = match &master.ip {
        Some(ip) => ip.as_str(),
        // Every field is the release's own: no template is filled in.
        None if missing.is_empty() => "",
        None => return Err(SourceError::Missing(missing)),
    };
    let templates = &master.templates;
    let fill = |field: &str, template: &str| {
        if template.contains(VERSION_PLACEHOLDER) && !fits_in_url(version) {
            return Err(invalid(
                field,
                format!(
                    "cannot be the master's default: version '{version}' does not fit in its URL"
                ),
            ));
        }
        Ok(render(template, ip, version))
    };
    let own_or = |field: SourceField, value: &str, template: &str| {
        if value.is_empty() {
            fill(field.as_str(), template)
        } else {
            Ok(value.to_owned())
        }
    };
    let repo_metadata = if stored.repo_metadata.is_empty() {
        let mut default = Map::new();
        let field = format!("{}.{DEFAULT_REPO_NAME}", SourceField::RepoMetadata);
        default.insert(
            DEFAULT_REPO_NAME.into(),
            Value::String(fill(&field, templates.repo(os))?),
        );
        default
    } else {
        stored.repo_metadata.clone()
    };
    let sources = Sources {
        repo_metadata,
        puppet_modules_source: own_or(
            SourceField::PuppetModulesSource,
            stored.puppet_modules_source,
            &templates.puppet_modules,
        )?,
        puppet_manifests_source: own_or(
            SourceField::PuppetManifestsSource,
            stored.puppet_manifests_source,
            &templates.puppet_manifests,
        )?,
    };
    // Stored values may predate validation, and `{version}` may not fit in a URL: check what
    // would actually be cast.
    validate_stored(
        os,
        StoredSources {
            repo_metadata: &sources.repo_metadata,
            puppet_modules_source: &sources.puppet_modules_source,
            puppet_manifests_source: &sources.puppet_manifests_source,
        },
    )?;
    Ok(sources)
}

/// Whether a version can stand in a URL path as it is (letters, digits and `.-_~+`).
fn fits_in_url(version: &str) -> bool {
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_~+".contains(c))
}

/// Checks `repo_metadata`: repository names mapped to values Astute writes as they are.
fn check_repo_metadata(os: OperatingSystem, repos: &Map<String, Value>) -> Result<(), SourceError> {
    let field = SourceField::RepoMetadata.as_str();
    if repos.len() > MAX_REPOSITORIES {
        return Err(invalid(
            field,
            format!("lists more than {MAX_REPOSITORIES} repositories"),
        ));
    }
    for (name, value) in repos {
        check_repo_name(name)?;
        let Some(value) = value.as_str() else {
            return Err(invalid(
                format!("{field}.{name}"),
                "must be a string (repository names map to URLs)",
            ));
        };
        check_repo_value(os, &format!("{field}.{name}"), value)?;
    }
    Ok(())
}

/// A repository name becomes a yum section name (`[name]`) on CentOS: one word.
fn check_repo_name(name: &str) -> Result<(), SourceError> {
    let field = SourceField::RepoMetadata.as_str();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid(
            field,
            "has a repository name that is empty or longer than 100 characters",
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '[' || c == ']')
    {
        return Err(invalid(
            field,
            format!(
                "has a repository name '{}' that is not one word without brackets",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A repository as Astute writes it: `deb <value>` on Ubuntu (URL, suite, components),
/// `baseurl=<value>` on CentOS (URL alone). A line break would inject lines into the file.
fn check_repo_value(os: OperatingSystem, field: &str, value: &str) -> Result<(), SourceError> {
    check_length(field, value)?;
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must be one line"));
    }
    let mut words = value.split_whitespace();
    let url = words.next().unwrap_or_default();
    check_url(field, url, REPO_SCHEMES)?;
    let rest = words.count();
    match os {
        OperatingSystem::Ubuntu if rest == 0 => Err(invalid(
            field,
            format!(
                "must be an APT source: the URL, then the suite and components (e.g. '{url} precise main')"
            ),
        )),
        OperatingSystem::CentOS if rest > 0 => Err(invalid(
            field,
            "must be a yum baseurl: one URL, with nothing after it",
        )),
        _ => Ok(()),
    }
}

/// A Puppet source Astute 5.1 can sync: an `rsync://` URL.
fn check_puppet_source(field: &str, value: &str) -> Result<(), SourceError> {
    check_length(field, value)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, "must be a URL without spaces"));
    }
    check_url(field, value, PUPPET_SCHEMES)
}

fn check_length(field: &str, value: &str) -> Result<(), SourceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be blank"));
    }
    if value.chars().count() > MAX_SOURCE_CHARS {
        return Err(invalid(
            field,
            format!("is longer than {MAX_SOURCE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A URL with one of `schemes` and a host.
fn check_url(field: &str, text: &str, schemes: &[&str]) -> Result<(), SourceError> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let url = url::Url::parse(text).map_err(|e| {
        invalid(
            field,
            format!("must be a URL starting with {expected}; '{text}' is not a URL ({e})"),
        )
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(
            field,
            format!(
                "must be a URL starting with {expected} (a scheme Astute can use), not '{}://'",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("must name a host: '{text}'")));
    }
    Ok(())
}

#[cfg(test)]
#[path = "release_sources_tests.rs"]
mod tests;
