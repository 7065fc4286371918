//! The kinds of database server the crate talks to: one name for both halves.

use std::fmt;

/// The kind of server behind an alias or a connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// PostgreSQL (`postgres://`, `postgresql://` or libpq's key/value form; one or several
    /// hosts).
    Postgres,
    /// SQLite (`sqlite://PATH`, `sqlite://:memory:` or a `file:` URI).
    Sqlite,
    /// MySQL or MariaDB (`mysql://`; one or several hosts).
    Mysql,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Sqlite => "sqlite",
            BackendKind::Mysql => "mysql",
        })
    }
}
