//! Settings, layered with the `config` crate: compiled-in defaults (`config/default.toml`), an
//! optional file, then `ASTUTE_BRIDGE__SECTION__KEY` environment variables.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::core::access::AllowedUsers;
use crate::core::release_sources::{Master, SourceError, SourceTemplates};
use crate::core::source_allowlist::{PrefixError, SourcePrefixes};

pub mod secret_url;
pub mod tokens;

pub use secret_url::SecretUrl;
pub use tokens::{ApiToken, Role, TokenList};

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Every setting of the service. See `config/default.toml` for what each one means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub fuel_version: String,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub outbox: OutboxSettings,
    pub http: HttpSettings,
    pub watchdog: WatchdogSettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
    pub master: MasterSettings,
    pub security: SecuritySettings,
    pub requests: RequestsSettings,
}

/// Who may send requests over AMQP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsSettings {
    /// Broker user (the message's `user_id`) → role; empty: every request is accepted.
    #[serde(default)]
    pub allowed_users: BTreeMap<String, Role>,
}

impl RequestsSettings {
    /// The allow-list, or `None` when every request is accepted.
    pub fn allowed_users(&self) -> Option<AllowedUsers> {
        (!self.allowed_users.is_empty()).then(|| AllowedUsers::new(self.allowed_users.clone()))
    }
}

/// Limits on what requests may make Astute do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// URL prefixes a release's repositories and Puppet sources must be under; empty: any.
    #[serde(default)]
    pub allowed_source_prefixes: Vec<String>,
}

impl SecuritySettings {
    /// The allow-list, or `None` when every source is allowed.
    pub fn source_prefixes(&self) -> Result<Option<SourcePrefixes>, PrefixError> {
        if self.allowed_source_prefixes.is_empty() {
            return Ok(None);
        }
        SourcePrefixes::parse(&self.allowed_source_prefixes).map(Some)
    }
}

/// How long records that only grow are kept (0 keeps them forever).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub processed_requests_days: u32,
    pub task_cache_days: u32,
    /// Rows of the audit trail.
    pub audit_days: u32,
    pub interval_secs: u64,
}

/// The master node that serves the default package repositories and Puppet sources, for
/// releases registered without their own (Nailgun 5.1's `MASTER_IP`, `DEFAULT_REPO`,
/// `DEFAULT_PUPPET`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterSettings {
    /// Empty: no master configured.
    pub ip: String,
    pub default_repo: DefaultRepoSettings,
    pub default_puppet: DefaultPuppetSettings,
}

/// Default repository templates, per operating system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRepoSettings {
    pub ubuntu: String,
    pub centos: String,
}

/// Default Puppet source templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultPuppetSettings {
    pub modules: String,
    pub manifests: String,
}

impl MasterSettings {
    /// The master as the core resolves sources with it; a blank `ip` is no master.
    pub fn master(&self) -> Master {
        let ip = self.ip.trim();
        Master {
            ip: (!ip.is_empty()).then(|| ip.to_owned()),
            templates: SourceTemplates {
                repo_ubuntu: self.default_repo.ubuntu.clone(),
                repo_centos: self.default_repo.centos.clone(),
                puppet_modules: self.default_puppet.modules.clone(),
                puppet_manifests: self.default_puppet.manifests.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSettings {
    pub silence_secs: u64,
    pub check_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub enabled: bool,
    pub bind: String,
    /// Bearer tokens; empty: the API is open (allowed on a loopback address only, unless
    /// `allow_anonymous`). `token_file`'s entries are added to these at load.
    pub tokens: TokenList,
    /// A file of `name:role:token` lines; empty: none.
    pub token_file: String,
    /// Serve without tokens on a non-loopback address.
    pub allow_anonymous: bool,
    /// `/metrics` asks for a token (any role) too.
    pub metrics_require_token: bool,
    /// Seconds a request may take, body included, before it is answered 408.
    pub request_timeout_secs: u64,
    /// API requests served at once; more are answered 503 at once.
    pub max_concurrent_requests: usize,
}

impl HttpSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Adds the entries of `token_file` to `tokens` and checks them all.
    fn load_tokens(&mut self) -> Result<(), SettingsError> {
        let path = self.token_file.trim();
        if !path.is_empty() {
            let text = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::Rule(format!("http.token_file {path} cannot be read: {e}"))
            })?;
            let more = tokens::parse_entries(&text)
                .map_err(|e| SettingsError::Rule(format!("http.token_file {path}: {e}")))?;
            self.tokens.0.extend(more);
        }
        tokens::validate(&self.tokens.0).map_err(SettingsError::Rule)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretUrl,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// One node, or several (`amqp://u:p@h1,u:p@h2/vhost`, or a TOML list of URLs).
    #[serde(deserialize_with = "one_or_many_nodes")]
    pub url: SecretUrl,
    pub timeout_secs: u64,
    /// Largest message the bridge publishes (casts, answers, notifications).
    pub max_message_bytes: usize,
    /// Largest reply from Astute read; larger ones are dead-lettered unread.
    pub max_reply_bytes: usize,
    pub prefetch: u16,
    pub reply_workers: usize,
    pub request_exchange: String,
    pub request_queue: String,
    pub request_binding: String,
    pub naily_exchange: String,
    pub naily_queue: String,
    pub naily_routing_key: String,
    pub naily_service_exchange: String,
    pub nailgun_exchange: String,
    pub nailgun_queue: String,
    pub nailgun_routing_key: String,
    pub dead_letter_queue: String,
    pub notifications_exchange: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    pub batch_size: u64,
    pub poll_interval_ms: u64,
    /// Refusals by the broker before a message is set aside (parked).
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

impl AmqpSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }
}

/// `amqp.url` as one string, or a list of node URLs folded into the one-string form: the nodes'
/// authorities joined by commas, with the path and query they must share.
fn one_or_many_nodes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretUrl, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => Ok(url.into()),
        OneOrMany::Many(urls) => fold_node_urls(&urls)
            .map(SecretUrl::from)
            .map_err(serde::de::Error::custom),
    }
}

fn fold_node_urls(urls: &[String]) -> Result<String, String> {
    let mut scheme_and_tail: Option<(&str, &str)> = None;
    let mut authorities = Vec::new();
    for url in urls {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("each amqp.url node must be a URL like amqp://user:pass@host:5672/vhost")?;
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(cut);
        match scheme_and_tail {
            None => scheme_and_tail = Some((scheme, tail)),
            Some(first) if first == (scheme, tail) => {}
            Some(_) => {
                return Err(
                    "the amqp.url nodes must share the scheme, vhost and query (one cluster)"
                        .into(),
                )
            }
        }
        authorities.push(authority);
    }
    let (scheme, tail) = scheme_and_tail.ok_or("amqp.url lists no node")?;
    Ok(format!("{scheme}://{}{tail}", authorities.join(",")))
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let mut settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("ASTUTE_BRIDGE")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?
            .try_deserialize()?;
        settings.http.load_tokens()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(SettingsError::Rule(format!(
                "database.url must start with sqlite: or postgres:, not '{}'",
                url.split(':').next().unwrap_or_default()
            )));
        }
        crate::amqp::nodes::node_urls(self.amqp.url.expose())
            .map_err(|e| SettingsError::Rule(e.to_string()))?;
        if self.amqp.reply_workers == 0 || self.amqp.prefetch == 0 {
            return Err(SettingsError::Rule(
                "amqp.reply_workers and amqp.prefetch must be at least 1".into(),
            ));
        }
        if self.http.request_timeout_secs == 0 || self.http.max_concurrent_requests == 0 {
            return Err(SettingsError::Rule(
                "http.request_timeout_secs and http.max_concurrent_requests must be at least 1"
                    .into(),
            ));
        }
        if self.outbox.batch_size == 0 {
            return Err(SettingsError::Rule(
                "outbox.batch_size must be at least 1".into(),
            ));
        }
        self.master.master().validate().map_err(|err| match err {
            SourceError::Invalid { field, problem } => {
                SettingsError::Rule(format!("master.{field} {problem}"))
            }
            other => SettingsError::Rule(format!("master: {other}")),
        })?;
        self.security
            .source_prefixes()
            .map_err(|e| SettingsError::Rule(format!("security.{e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_name_the_contract_topology() {
        let s = Settings::load(None).expect("defaults are valid");
        assert_eq!(s.fuel_version, "5.1");
        assert!(s.database.is_sqlite());
        assert_eq!(
            (
                s.amqp.naily_exchange.as_str(),
                s.amqp.naily_queue.as_str(),
                s.amqp.nailgun_queue.as_str()
            ),
            ("naily", "naily", "nailgun")
        );
        assert_eq!(s.amqp.request_queue, "astute_bridge.requests");
        assert_eq!(s.amqp.dead_letter_queue, "nailgun.dead");
        assert_eq!(s.amqp.notifications_exchange, "notifications");
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "fuel_version = \"5.0.2\"\n[amqp]\nprefetch = 7\n").unwrap();
        let s = Settings::load(Some(&good)).unwrap();
        assert_eq!((s.fuel_version.as_str(), s.amqp.prefetch), ("5.0.2", 7));
        assert_eq!(
            s.amqp.naily_queue, "naily",
            "untouched keys keep their defaults"
        );

        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[amqp]\nprefech = 7\n").unwrap();
        let err = Settings::load(Some(&typo)).unwrap_err().to_string();
        assert!(err.contains("prefech"), "{err}");
    }

    #[test]
    fn the_master_defaults_are_nailgun_5_1_settings_and_no_master_is_configured() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.master.master().ip, None);
        let t = s.master.master().templates;
        assert_eq!(
            t.repo_ubuntu,
            "http://{master_ip}:8080/ubuntu/fuelweb/x86_64 precise main"
        );
        assert_eq!(
            t.repo_centos,
            "http://{master_ip}:8080/centos/fuelweb/x86_64"
        );
        assert_eq!(t.puppet_modules, "rsync://{master_ip}:/puppet/modules/");
        assert_eq!(t.puppet_manifests, "rsync://{master_ip}:/puppet/manifests/");
    }

    #[test]
    fn a_master_is_configured_by_its_ip_and_bad_templates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[master]\nip = \" 10.20.0.2 \"\n[master.default_puppet]\nmodules = \"rsync://{master_ip}:/puppet/{version}/modules/\"\n",
        )
        .unwrap();
        let master = Settings::load(Some(&good)).unwrap().master;
        assert_eq!(master.master().ip.as_deref(), Some("10.20.0.2"));
        assert_eq!(
            master.default_puppet.manifests, "rsync://{master_ip}:/puppet/manifests/",
            "untouched templates keep their defaults"
        );

        for (text, names) in [
            ("[master]\nip = \"10.20.0.2 x\"\n", "master.ip"),
            (
                "[master.default_repo]\nubuntu = \"http://{master_ip}/ubuntu\"\n",
                "master.default_repo.ubuntu",
            ),
            (
                "[master.default_puppet]\nmanifests = \"rsync://{master}/m/\"\n",
                "master.default_puppet.manifests",
            ),
        ] {
            let bad = dir.path().join("bad.toml");
            std::fs::write(&bad, text).unwrap();
            let err = Settings::load(Some(&bad)).unwrap_err().to_string();
            assert!(err.contains(names), "{text}: {err}");
        }
    }

    #[test]
    fn the_broker_may_be_several_nodes_as_one_url_or_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let listed = dir.path().join("listed.toml");
        std::fs::write(
            &listed,
            "[amqp]\nurl = [\"amqp://u:p@h1:5672/fuel?heartbeat=5\", \"amqp://u:p@h2:5672/fuel?heartbeat=5\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&listed)).unwrap();
        assert_eq!(
            s.amqp.url.expose(),
            "amqp://u:p@h1:5672,u:p@h2:5672/fuel?heartbeat=5"
        );

        let oslo = dir.path().join("oslo.toml");
        std::fs::write(&oslo, "[amqp]\nurl = \"amqp://u:p@h1,u:p@h2/fuel\"\n").unwrap();
        assert_eq!(
            Settings::load(Some(&oslo)).unwrap().amqp.url.expose(),
            "amqp://u:p@h1,u:p@h2/fuel"
        );

        let mixed = dir.path().join("mixed.toml");
        std::fs::write(&mixed, "[amqp]\nurl = [\"amqp://h1/a\", \"amqp://h2/b\"]\n").unwrap();
        let err = Settings::load(Some(&mixed)).unwrap_err().to_string();
        assert!(err.contains("share"), "{err}");

        let empty_node = dir.path().join("empty.toml");
        std::fs::write(&empty_node, "[amqp]\nurl = \"amqp://h1,,h2/\"\n").unwrap();
        assert!(Settings::load(Some(&empty_node)).is_err());
    }

    #[test]
    fn allowed_users_map_broker_users_to_roles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.toml");
        std::fs::write(
            &file,
            "[requests.allowed_users]\nnailgun = \"operator\"\nMonitor = \"reader\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        let users = s.requests.allowed_users().expect("a list");
        assert_eq!(
            users.authorize(Some("nailgun"), "update_cluster"),
            Ok(Role::Operator)
        );
        // RabbitMQ user names are case-sensitive; so is the list.
        assert_eq!(
            users.authorize(Some("Monitor"), "get_task"),
            Ok(Role::Reader)
        );
        assert!(Settings::load(None)
            .unwrap()
            .requests
            .allowed_users()
            .is_none());

        std::fs::write(&file, "[requests.allowed_users]\nx = \"admin\"\n").unwrap();
        assert!(
            Settings::load(Some(&file)).is_err(),
            "only reader and operator"
        );
    }

    #[test]
    fn tokens_come_from_the_file_the_token_file_and_one_string() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(
            &file,
            "# rotated monthly\nci:operator:cccccccccccccccccccc\n",
        )
        .unwrap();
        let settings = dir.path().join("s.toml");
        std::fs::write(
            &settings,
            format!(
                "[http]\ntoken_file = \"{}\"\ntokens = [{{ name = \"ops\", role = \"operator\", token = \"oooooooooooooooooooo\" }}]\n",
                file.display()
            ),
        )
        .unwrap();
        let s = Settings::load(Some(&settings)).unwrap();
        let names: Vec<_> = s.http.tokens.0.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ops", "ci"]);
        assert!(!format!("{s:?}").contains("oooo"), "Debug shows no token");

        // The environment's form: one string (what ASTUTE_BRIDGE__HTTP__TOKENS carries).
        let string = dir.path().join("string.toml");
        std::fs::write(
            &string,
            "[http]\ntokens = \"a:reader:rrrrrrrrrrrrrrrr,b:operator:pppppppppppppppp\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&string)).unwrap();
        assert_eq!(s.http.tokens.0[0].role, Role::Reader);

        let missing = dir.path().join("missing.toml");
        std::fs::write(&missing, "[http]\ntoken_file = \"/nonexistent/tokens\"\n").unwrap();
        let err = Settings::load(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("http.token_file"), "{err}");

        let short = dir.path().join("short.toml");
        std::fs::write(&short, "[http]\ntokens = \"a:operator:secret\"\n").unwrap();
        let err = Settings::load(Some(&short)).unwrap_err().to_string();
        assert!(err.contains("shorter") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_shows_no_password_of_any_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "[database]\nurl = \"postgres://bridge:dbpass1234@db/bridge?sslmode=verify-full\"\n[amqp]\nurl = [\"amqps://u:mqpass1234@h1:5671/fuel\", \"amqps://u:mqpass1234@h2:5671/fuel\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("dbpass1234") && !shown.contains("mqpass1234"),
            "{shown}"
        );
        assert!(shown.contains("postgres://bridge:***@db/bridge?sslmode=verify-full"));
        assert!(s.database.url.expose().contains("dbpass1234"));
    }

    #[test]
    fn a_bad_database_url_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[database]\nurl = \"mysql://x\"\n").unwrap();
        assert!(Settings::load(Some(&bad)).is_err());
    }
}
