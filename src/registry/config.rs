//! The configuration as plain data: a TOML file plus environment overrides.
//!
//! Imports nothing of the registry but [`target`] (to show URLs redacted); turned into a
//! registry by the builder ([`Config::build`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::redact::without_values;
use crate::registry::alias_url;

/// The environment variable that overrides the URL of the `default` alias.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// The alias every unrouted read and write goes to, and the one `DATABASE_URL` sets (Django's
/// `DEFAULT_DB_ALIAS`).
pub const DEFAULT_ALIAS: &str = "default";

/// The whole configuration: the aliases, the app map and where the migrations live.
///
/// Plain data (every field public, `serde` both ways); [`build`](Self::build) or
/// [`builder`](Self::builder) validate it and turn it into a [`Databases`](crate::Databases)
/// registry.
///
/// The TOML form (unknown keys are rejected, naming the key):
///
/// ```toml
/// # Optional: one sub-directory per app, `<dir>/<app_label>/<version>_<name>/up.sql`.
/// # A relative path is taken from the directory of the config file.
/// migrations_dir = "migrations"
///
/// [databases.default]
/// url = "postgres://app:secret@db1:5432,db2:5432/app"
/// max_size = 16
///
/// [databases.replica]
/// url = "postgres://app:secret@db2:5432/app"
/// mirror_of = "default"        # a replica: never migrated; see `test_mirrors`
///
/// [databases.analytics]
/// url = "sqlite://var/analytics.sqlite3"
///
/// # The app map: every model of the app is read, written and migrated on that alias
/// # (an `AppLabelRouter`, consulted after the routers given in code).
/// [apps]
/// analytics = "analytics"
/// ```
///
/// Environment overrides ([`with_env_overrides`](Self::with_env_overrides)):
/// `DATABASE_URL` sets the URL of `default` (declaring it if the file does not), and
/// `DATABASE_URL_<ALIAS>` sets the URL of a declared alias, the alias upper-cased with every
/// character other than a letter or digit replaced by `_` (`read-replica` →
/// `DATABASE_URL_READ_REPLICA`); see [`env_var_for`](Self::env_var_for). A non-empty
/// `DATABASE_URL_<NAME>` that matches no declared alias (`DATABASE_URL_ANALYTCS`) is an
/// error when the registry is built, naming the variable and the closest declared one: a
/// typo must not leave an alias on its file URL silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The aliases, by name. `default` is required.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// App label → alias (see [`AppLabelRouter`](crate::AppLabelRouter)).
    #[serde(default)]
    pub apps: BTreeMap<String, String>,
    /// The directory holding one migrations directory per app. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations_dir: Option<PathBuf>,
    /// The directory relative paths are taken from (the config file's directory).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// `DATABASE_URL_<NAME>` variables seen by
    /// [`with_env_overrides`](Self::with_env_overrides) that name no declared alias; building
    /// fails on them ([`BuildError::UnknownEnvOverride`](crate::BuildError::UnknownEnvOverride)).
    #[serde(skip)]
    pub unmatched_env_overrides: Vec<String>,
}

/// One alias: its URL, pool settings and an optional primary it mirrors.
///
/// `Debug` and errors never show the URL's password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The connection URL: `postgres://` / `postgresql://` (one or several hosts) or
    /// `sqlite://PATH` (`sqlite://:memory:`, or a `file:` URI). A relative SQLite path is taken
    /// from the process's working directory, as Diesel does. Optional only for a mirror, which
    /// then uses its primary's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The alias this one is a replica of (Django's `TEST: MIRROR`). A mirror is never
    /// migrated; with [`test_mirrors`](crate::DatabasesBuilder::test_mirrors) it shares its
    /// primary's pool. Also accepted as `replica_of`. A PostgreSQL mirror whose URL does not
    /// set `target_session_attrs` connects with `prefer-standby` (a standby if one answers).
    #[serde(default, alias = "replica_of", skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<String>,
    /// The pool's maximum number of connections. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// Connections kept open while idle. Defaults to 0: connections open on first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_idle: Option<u32>,
    /// How long to wait for a connection before failing, in seconds. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout_secs: Option<u64>,
    /// Idle connections are closed after this many seconds (0: never). Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Connections are closed after this many seconds (0: never). Defaults to 1800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_secs: Option<u64>,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(alias_url::shown))
            .field("mirror_of", &self.mirror_of)
            .field("max_size", &self.max_size)
            .field("min_idle", &self.min_idle)
            .field("connection_timeout_secs", &self.connection_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish()
    }
}

impl DatabaseConfig {
    /// An alias at `url` with default pool settings.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseConfig {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// A mirror of `primary` (it uses the primary's URL unless [`url`](Self::url) is set).
    pub fn mirror(primary: impl Into<String>) -> Self {
        DatabaseConfig {
            mirror_of: Some(primary.into()),
            ..Self::default()
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a valid configuration (bad TOML, an unknown key, a wrong type).
    ///
    /// The TOML parser's own error is not kept as a `source`: it quotes the offending line,
    /// which may hold a password. `message` is its message without the values it quotes.
    Parse {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// Line and column (from 1) where the problem is, when known.
        position: Option<(usize, usize)>,
        /// The TOML table the problem is in (e.g. `databases.analytics`), when known.
        table: Option<String>,
        /// What is wrong, e.g. ``unknown field `max_sise`, expected one of ...``.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, .. } => {
                write!(f, "cannot read config file {}", path.display())
            }
            ConfigError::Parse {
                path,
                position,
                table,
                message,
            } => {
                f.write_str("invalid config")?;
                if let Some(p) = path {
                    write!(f, " file {}", p.display())?;
                }
                if let Some((line, col)) = position {
                    write!(f, " at line {line}, column {col}")?;
                }
                if let Some(t) = table {
                    write!(f, " in [{t}]")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Parse { .. } => None,
        }
    }
}

impl Config {
    /// An empty configuration (no alias: add `default` before building).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an alias, builder style.
    pub fn database(mut self, alias: impl Into<String>, db: DatabaseConfig) -> Self {
        self.databases.insert(alias.into(), db);
        self
    }

    /// Maps an app label to an alias in the app map, builder style.
    pub fn app(mut self, app_label: impl Into<String>, alias: impl Into<String>) -> Self {
        self.apps.insert(app_label.into(), alias.into());
        self
    }

    /// Parses the TOML form.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for invalid TOML, an unknown key or a value of the wrong type,
    /// with the line, the table and the key.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        parse(text, None)
    }

    /// Reads and parses a TOML file; relative paths inside it are taken from its directory.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] as for
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = parse(&text, Some(path))?;
        config.base_dir = Some(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_owned),
        );
        Ok(config)
    }

    /// The environment variable overriding the URL of `alias`: `DATABASE_URL` for `default`,
    /// else `DATABASE_URL_` and the alias upper-cased, every character other than an ASCII
    /// letter or digit replaced by `_`.
    ///
    /// ```
    /// use diesel_multidb::Config;
    /// assert_eq!(Config::env_var_for("default"), "DATABASE_URL");
    /// assert_eq!(Config::env_var_for("read-replica"), "DATABASE_URL_READ_REPLICA");
    /// ```
    pub fn env_var_for(alias: &str) -> String {
        if alias == DEFAULT_ALIAS {
            return DATABASE_URL_ENV.to_owned();
        }
        let suffix: String = alias
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{DATABASE_URL_ENV}_{suffix}")
    }

    /// Applies the environment overrides from the process environment (see the type's docs),
    /// and records the `DATABASE_URL_<NAME>` variables that match no declared alias.
    pub fn with_env_overrides(self) -> Self {
        self.with_env_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// [`with_env_overrides`](Self::with_env_overrides) from a list of variables instead of
    /// the process environment (for tests, or another source of variables).
    pub fn with_env_vars(self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let prefix = format!("{DATABASE_URL_ENV}_");
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, v)| {
                !v.is_empty() && (k == DATABASE_URL_ENV || k.starts_with(prefix.as_str()))
            })
            .collect();
        let mut config = self.with_env_overrides_from(|k| vars.get(k).cloned());
        let expected: Vec<String> = config
            .databases
            .keys()
            .map(|a| Self::env_var_for(a))
            .collect();
        config.unmatched_env_overrides = vars
            .into_keys()
            .filter(|k| k != DATABASE_URL_ENV && !expected.contains(k))
            .collect();
        config
    }

    /// Applies the environment overrides read through `lookup`: only the variables of the
    /// declared aliases (and `DATABASE_URL`) are looked up, so a variable for an undeclared
    /// alias goes unnoticed (use [`with_env_vars`](Self::with_env_vars) to catch those). An
    /// empty value counts as unset.
    pub fn with_env_overrides_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let lookup = |k: &str| lookup(k).filter(|v| !v.is_empty());
        if let Some(url) = lookup(DATABASE_URL_ENV) {
            self.databases
                .entry(DEFAULT_ALIAS.to_owned())
                .or_default()
                .url = Some(url);
        }
        for (alias, db) in &mut self.databases {
            if alias != DEFAULT_ALIAS {
                if let Some(url) = lookup(&Self::env_var_for(alias)) {
                    db.url = Some(url);
                }
            }
        }
        self
    }

    /// The migrations directory with [`base_dir`](Self::base_dir) applied.
    pub fn resolved_migrations_dir(&self) -> Option<PathBuf> {
        let dir = self.migrations_dir.as_ref()?;
        Some(match &self.base_dir {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir.clone(),
        })
    }
}

fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| {
        let (position, table) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (None, None),
        };
        ConfigError::Parse {
            path: path.map(Path::to_owned),
            position,
            table,
            message: without_values(e.message().trim_end_matches(['.', '\n'])),
        }
    })
}

/// Line, column and enclosing `[table]` of a byte offset.
fn locate(text: &str, offset: usize) -> (Option<(usize, usize)>, Option<String>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let table = before.lines().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[[")).then(|| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
    });
    // A key on the header line itself (`[databases.x]`) has no enclosing table yet.
    let table = table.filter(|t| !t.is_empty());
    (Some((line, column)), table)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
migrations_dir = "migrations"

[databases.default]
url = "postgres://app:s3cret@db1:5432,db2:5432/app"
max_size = 16
min_idle = 2
connection_timeout_secs = 5
idle_timeout_secs = 0

[databases.replica]
replica_of = "default"

[databases.analytics]
url = "sqlite://var/analytics.sqlite3"

[apps]
analytics = "analytics"
"#;

    #[test]
    fn parses_the_full_form() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.databases.len(), 3);
        let d = &c.databases["default"];
        assert_eq!(d.max_size, Some(16));
        assert_eq!(d.connection_timeout_secs, Some(5));
        assert_eq!(d.idle_timeout_secs, Some(0));
        assert_eq!(c.databases["replica"].mirror_of.as_deref(), Some("default"));
        assert_eq!(c.databases["replica"].url, None);
        assert_eq!(c.apps["analytics"], "analytics");
        assert_eq!(c.migrations_dir.as_deref(), Some(Path::new("migrations")));
    }

    #[test]
    fn unknown_keys_are_named_with_their_table() {
        let text = "[databases.default]\nurl = \"sqlite://a\"\n\n[databases.analytics]\nurl = \"postgres://u:pw@h/d\"\nmax_sise = 3\n";
        let e = Config::from_toml_str(text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("unknown field `max_sise`"), "{msg}");
        assert!(msg.contains("in [databases.analytics]"), "{msg}");
        assert!(msg.contains("line 6"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");

        let e = Config::from_toml_str("databasez = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `databasez`"), "{e}");
    }

    #[test]
    fn parse_errors_never_show_a_password() {
        // A type error on the URL line: toml would quote the line.
        let text = "[databases.default]\nurl = \"postgres://u:topsecret@h/d\" x\n";
        let e = Config::from_toml_str(text).unwrap_err();
        let all = format!("{e} {e:?}");
        assert!(!all.contains("topsecret"), "{all}");
    }

    #[test]
    fn debug_never_shows_a_password() {
        let c = Config::from_toml_str(FULL).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("app:********@db1"), "{dbg}");
    }

    #[test]
    fn env_overrides() {
        let env = |k: &str| match k {
            "DATABASE_URL" => Some("sqlite://from-env".to_owned()),
            "DATABASE_URL_READ_REPLICA" => Some("postgres://r/d".to_owned()),
            "DATABASE_URL_ANALYTICS" => Some(String::new()),
            "DATABASE_URL_UNDECLARED" => Some("postgres://x/y".to_owned()),
            _ => None,
        };
        let c = Config::new()
            .database("read-replica", DatabaseConfig::mirror("default"))
            .database("analytics", DatabaseConfig::new("sqlite://a"))
            .with_env_overrides_from(env);
        assert_eq!(
            c.databases["default"].url.as_deref(),
            Some("sqlite://from-env")
        );
        assert_eq!(
            c.databases["read-replica"].url.as_deref(),
            Some("postgres://r/d")
        );
        assert_eq!(
            c.databases["read-replica"].mirror_of.as_deref(),
            Some("default")
        );
        assert_eq!(c.databases["analytics"].url.as_deref(), Some("sqlite://a"));
        assert_eq!(c.databases.len(), 3);
    }

    #[test]
    fn from_file_sets_the_base_dir() {
        let dir = std::env::temp_dir().join(format!("multidb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("multidb.toml");
        std::fs::write(&path, FULL).unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.resolved_migrations_dir(), Some(dir.join("migrations")));
        let missing = Config::from_file(dir.join("nope.toml")).unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read config file"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
