//! Which backend an alias URL names, checked when the registry is built.

use std::fmt;

/// The kind of server behind an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// PostgreSQL (`postgres://` or `postgresql://`, one or several hosts).
    Postgres,
    /// SQLite (`sqlite://PATH`, `sqlite://:memory:` or a `file:` URI).
    Sqlite,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Sqlite => "sqlite",
        })
    }
}

/// What to connect to: the backend and the string handed to its `establish`.
///
/// The string may hold a password: never print it (use [`crate::redact::redact`]).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: BackendKind,
    pub(crate) connect: String,
    /// The alias is a mirror (replica) of another: a PostgreSQL URL without its own
    /// `target_session_attrs` then connects with `prefer-standby`.
    pub(crate) mirror: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("connect", &crate::redact::redact(&self.connect))
            .field("mirror", &self.mirror)
            .finish()
    }
}

const EXPECTED: &str = "expected postgres://, postgresql://, sqlite:// or file:";

/// Parses an alias URL. The error is a reason that never quotes the URL.
pub(crate) fn parse(url: &str) -> Result<Target, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("the URL is empty".into());
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        check_postgres(url)?;
        return backend(BackendKind::Postgres, url.to_owned());
    }
    if let Some(rest) = strip_prefix_ci(url, "sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(
                "the SQLite URL has no path (write sqlite://PATH or sqlite://:memory:)".into(),
            );
        }
        return backend(BackendKind::Sqlite, path.to_owned());
    }
    if lower.starts_with("file:") {
        return backend(BackendKind::Sqlite, url.to_owned());
    }
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!("unsupported URL scheme `{scheme}` ({EXPECTED})"))
        }
        _ => Err(format!("not a database URL ({EXPECTED})")),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn backend(kind: BackendKind, connect: String) -> Result<Target, String> {
    let compiled = match kind {
        BackendKind::Postgres => cfg!(feature = "postgres"),
        BackendKind::Sqlite => cfg!(feature = "sqlite"),
    };
    if compiled {
        Ok(Target {
            kind,
            connect,
            mirror: false,
        })
    } else {
        Err(format!(
            "{kind} support is not compiled in (enable the `{kind}` feature of diesel-multidb)"
        ))
    }
}

/// Checks a PostgreSQL URL with the connection-string grammar, plus the ports.
/// A PostgreSQL URL is checked by the one grammar of the crate, whose errors name the token
/// and never contain the password.
fn check_postgres(url: &str) -> Result<(), String> {
    url.parse::<crate::ConnectionString>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls() {
        for u in [
            "postgres://u:p@h:5432/db",
            "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgres://[::1]:5432/db",
            "postgres:///db",
        ] {
            let t = parse(u).unwrap();
            assert_eq!(t.kind, BackendKind::Postgres);
            assert_eq!(t.connect, u);
        }
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            parse("sqlite://data/app.sqlite3").unwrap().connect,
            "data/app.sqlite3"
        );
        assert_eq!(parse("sqlite:///tmp/a.db").unwrap().connect, "/tmp/a.db");
        assert_eq!(parse("sqlite::memory:").unwrap().connect, ":memory:");
        assert_eq!(parse("sqlite://:memory:").unwrap().connect, ":memory:");
        assert_eq!(
            parse("file:a.db?mode=rwc").unwrap().kind,
            BackendKind::Sqlite
        );
    }

    #[test]
    fn bad_urls_are_explained_without_quoting_them() {
        let e = parse("mysql://u:secret@h/db").unwrap_err();
        assert!(e.contains("unsupported URL scheme `mysql`"), "{e}");
        assert!(!e.contains("secret"));
        let e = parse("postgres://u:secret@h:54x2/db").unwrap_err();
        assert!(e.contains("invalid port \"54x2\""), "{e}");
        assert!(!e.contains("secret"));
        assert!(parse("just words")
            .unwrap_err()
            .contains("not a database URL"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("sqlite://").unwrap_err().contains("no path"));
        assert!(parse("postgres://h:0/db").is_err());
    }
}
