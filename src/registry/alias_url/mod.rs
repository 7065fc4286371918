//! What an alias URL names: the backend, what to connect to, and how the URL may be shown.
//!
//! # How the backend is recognised
//!
//! Surrounding whitespace is ignored, then, in order:
//!
//! 1. `postgres://` or `postgresql://`: PostgreSQL, a URI read by the
//!    [`ConnectionString`] grammar (one or several hosts);
//! 2. `sqlite:` (`sqlite://PATH`, `sqlite:PATH`, `sqlite://:memory:`) or `file:` (a SQLite
//!    URI): SQLite;
//! 3. any other `scheme://`: rejected, naming the scheme;
//! 4. text whose first word is a libpq parameter assignment (`name=` or `name =`, the name
//!    made of letters, digits and `_`): PostgreSQL, libpq's key/value form read by the
//!    [`ConnectionString`] grammar (`host=db1,db2 port=5432 dbname=app user=app password=...`);
//! 5. anything else is not a database URL, and is described without being quoted.
//!
//! Imports nothing of the registry.

use std::fmt;

use crate::redact::{Redacted, MASK};
use crate::{BackendKind, ConnectionString, ConnectionStringError};

/// What to connect to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Connect {
    /// A parsed PostgreSQL or MySQL connection string, one host or several (boxed: it is
    /// much larger than a path).
    MultiHost(Box<ConnectionString>),
    /// What `SqliteConnection::establish` gets: a path, `:memory:` or a `file:` URI.
    Sqlite(String),
}

/// A parsed alias URL: the backend, what to connect to, and how it may be shown.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: BackendKind,
    pub(crate) connect: Connect,
    /// The URL as it may be shown, and its secrets.
    pub(crate) url: Redacted,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish()
    }
}

impl Target {
    /// The target of a mirror alias: a PostgreSQL or MySQL URL without its own
    /// `target_session_attrs` connects with `prefer-standby` (a standby if one answers).
    pub(crate) fn for_mirror(mut self) -> Self {
        if let Connect::MultiHost(cs) = &mut self.connect {
            if !cs.target_session_attrs_given {
                cs.target_session_attrs = crate::TargetSessionAttrs::PreferStandby;
            }
        }
        self
    }

    /// Whether this is a SQLite database file that does not exist yet (opening it would
    /// create it).
    pub(crate) fn is_missing_sqlite_file(&self) -> bool {
        let Connect::Sqlite(path) = &self.connect else {
            return false;
        };
        let file = path.strip_prefix("file:").unwrap_or(path);
        let file = file.split('?').next().unwrap_or(file);
        file != ":memory:" && !file.is_empty() && !std::path::Path::new(file).exists()
    }

    /// The URL's `failover_timeout`, for a PostgreSQL or MySQL alias.
    pub(crate) fn failover_timeout(&self) -> Option<std::time::Duration> {
        match &self.connect {
            Connect::MultiHost(cs) => Some(cs.failover_timeout()),
            Connect::Sqlite(_) => None,
        }
    }
}

/// Why an alias URL is unusable. Never quotes the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError {
    /// What is wrong, e.g. `not a database URL (no scheme)`.
    pub(crate) reason: String,
    /// The grammar's error, for a PostgreSQL connection string it rejects.
    pub(crate) source: Option<ConnectionStringError>,
}

impl UrlError {
    fn new(reason: impl Into<String>) -> Self {
        UrlError {
            reason: reason.into(),
            source: None,
        }
    }
}

const EXPECTED: &str =
    "expected postgres://, postgresql://, mysql://, sqlite://, file: or libpq's key=value pairs";

/// Parses an alias URL, whatever backends are compiled in (see [`require_compiled`]).
pub(crate) fn parse(url: &str) -> Result<Target, UrlError> {
    let text = url.trim();
    if text.is_empty() {
        return Err(UrlError::new("the URL is empty"));
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        // The grammar, as libpq, wants the scheme in lower case, and says so.
        return multi_host(text, BackendKind::Postgres, "invalid PostgreSQL URL");
    }
    if lower.starts_with("mysql://") {
        return multi_host(text, BackendKind::Mysql, "invalid MySQL URL");
    }
    if lower.starts_with("sqlite:") || lower.starts_with("file:") {
        return sqlite(text, &lower);
    }
    if let Some(scheme) = leading_scheme(text) {
        return Err(UrlError::new(format!(
            "unsupported URL scheme `{scheme}` ({EXPECTED})"
        )));
    }
    if starts_with_assignment(text) {
        return multi_host(
            text,
            BackendKind::Postgres,
            "invalid PostgreSQL key/value connection string",
        );
    }
    let known_scheme_without_slashes = ["postgres:", "postgresql:", "mysql:"]
        .iter()
        .any(|s| lower.starts_with(s));
    Err(UrlError::new(if known_scheme_without_slashes {
        format!("not a database URL (the scheme must be followed by `//`; {EXPECTED})")
    } else {
        format!("not a database URL (no scheme; {EXPECTED})")
    }))
}

/// How `url` may be shown: the parsed URL with its secrets masked, or a description of why it
/// is not one.
pub(crate) fn shown(url: &str) -> Redacted {
    match parse(url) {
        Ok(target) => target.url,
        Err(e) => Redacted::opaque(url, e.reason),
    }
}

/// Checks that the backend `target` names is compiled in.
#[cfg(multidb_sync)]
pub(crate) fn require_compiled(target: &Target) -> Result<(), UrlError> {
    let compiled = match target.kind {
        BackendKind::Postgres => cfg!(feature = "postgres"),
        BackendKind::Sqlite => cfg!(feature = "sqlite"),
        BackendKind::Mysql => cfg!(feature = "mysql"),
    };
    if compiled {
        Ok(())
    } else {
        let kind = target.kind;
        Err(UrlError::new(format!(
            "{kind} support is not compiled in (enable the `{kind}` feature of diesel-multidb)"
        )))
    }
}

/// What replaces a token of the grammar's error that may be a secret.
const HIDDEN: &str = "<hidden>";

/// The grammar's error with every token that may be a secret hidden.
///
/// The grammar already hides what lies where a password is; but in a broken URL a password
/// can sit elsewhere (`postgres://u:secret` without `@` makes `secret` a port). So a token
/// is shown only when it cannot be a secret: a port made of digits, a parameter name that is
/// a known libpq or crate parameter name or a plain identifier, a value of a named parameter
/// other than a password.
fn hide_tokens(e: ConnectionStringError) -> ConnectionStringError {
    use ConnectionStringError as E;
    let identifier = |s: &str| {
        !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    };
    match e {
        E::InvalidPort { port, position } if !port.trim().chars().all(|c| c.is_ascii_digit()) => {
            E::InvalidPort {
                port: HIDDEN.to_owned(),
                position,
            }
        }
        E::UnknownParameter { name, position } if !identifier(&name) && name != MASK => {
            E::UnknownParameter {
                name: HIDDEN.to_owned(),
                position,
            }
        }
        E::MissingEquals { name, position } if !identifier(&name) && name != MASK => {
            E::MissingEquals {
                name: HIDDEN.to_owned(),
                position,
            }
        }
        E::ExtraEquals { name, position } if !identifier(&name) && name != MASK => E::ExtraEquals {
            name: HIDDEN.to_owned(),
            position,
        },
        E::UnterminatedQuote { name, position } if !identifier(&name) && name != MASK => {
            E::UnterminatedQuote {
                name: HIDDEN.to_owned(),
                position,
            }
        }
        other => other,
    }
}

/// A PostgreSQL or MySQL URL, through the connection-string grammar (which wants the scheme
/// in lower case, and says so).
fn multi_host(text: &str, kind: BackendKind, what: &str) -> Result<Target, UrlError> {
    let cs: ConnectionString = text.parse().map_err(|e| UrlError {
        reason: what.to_owned(),
        source: Some(hide_tokens(e)),
    })?;
    let url = Redacted::new(
        cs.to_string(),
        cs.secrets().into_iter().map(str::to_owned).collect(),
    );
    Ok(Target {
        kind,
        connect: Connect::MultiHost(Box::new(cs)),
        url,
    })
}

/// The SQLite URI parameters SQLite itself reads; any other parameter is masked whole when
/// shown (it means something only to an extension, which may take a key there).
const SQLITE_URI_PARAMS: &[&str] = &["vfs", "mode", "cache", "psow", "nolock", "immutable"];

fn sqlite(text: &str, lower: &str) -> Result<Target, UrlError> {
    let (connect, shown) = if lower.starts_with("file:") {
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let mut shown = path.to_owned();
        let mut secrets = Vec::new();
        for (i, pair) in query.split('&').filter(|p| !p.is_empty()).enumerate() {
            shown.push(if i == 0 { '?' } else { '&' });
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if SQLITE_URI_PARAMS.contains(&key) {
                shown.push_str(pair);
            } else {
                // Name and value: an `&` inside an extension's key splits it into two pairs.
                shown.push_str(MASK);
                secrets.push(pair.to_owned());
                secrets.push(key.to_owned());
                secrets.push(value.to_owned());
            }
        }
        (text.to_owned(), Redacted::new(shown, secrets))
    } else {
        let rest = &text["sqlite:".len()..];
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(UrlError::new(
                "the SQLite URL has no path (write sqlite://PATH or sqlite://:memory:)",
            ));
        }
        // `sqlite://user:password@host/...` is a mistake, not a path: refuse it rather than
        // show it.
        let first_segment = path.split('/').next().unwrap_or("");
        if first_segment.contains('@') {
            return Err(UrlError::new(
                "a SQLite URL has no user name, password or host (write sqlite://PATH; a file name holding `@` is written sqlite://./NAME)",
            ));
        }
        (
            path.to_owned(),
            Redacted::new(format!("sqlite://{path}"), Vec::new()),
        )
    };
    Ok(Target {
        kind: BackendKind::Sqlite,
        connect: Connect::Sqlite(connect),
        url: shown,
    })
}

/// `scheme://` at the start (RFC 3986 scheme syntax).
fn leading_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Whether the text starts with `name=` or `name =` (libpq's key/value form).
fn starts_with_assignment(s: &str) -> bool {
    let name_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    name_len > 0 && s[name_len..].trim_start().starts_with('=')
}

#[cfg(test)]
mod tests;
