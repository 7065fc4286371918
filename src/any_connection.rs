//! The registry's connection type: one enum over the backends compiled in.
//!
//! Diesel's `MultiConnection` derive ignores `#[cfg]` on variants, so the enum is declared
//! once per feature combination (both backends, PostgreSQL only, SQLite only).
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

use diesel::Connection;

/// The connection type of PostgreSQL aliases: a [`MultiHostConnection`](crate::MultiHostConnection),
/// so any alias may hold a multi-host URL (a single-host URL works as with `PgConnection`).
#[cfg(feature = "postgres")]
pub type PostgresConnection = crate::MultiHostConnection<diesel::PgConnection>;

/// A connection to any alias of the registry: PostgreSQL or SQLite, whatever the alias's URL
/// names (Diesel's [`MultiConnection`](diesel::MultiConnection) derive).
///
/// Queries written against [`AnyBackend`] run on both; match on the variants to use
/// backend-specific features.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[derive(diesel::MultiConnection)]
// A connection lives in its pool slot; boxing it would cost an allocation per checkout.
#[allow(clippy::large_enum_variant)]
pub enum AnyConnection {
    /// A PostgreSQL alias.
    Postgres(PostgresConnection),
    /// A SQLite alias.
    Sqlite(diesel::SqliteConnection),
}

/// A connection to any alias of the registry (PostgreSQL only in this build).
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL alias.
    Postgres(PostgresConnection),
}

/// A connection to any alias of the registry (SQLite only in this build).
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A SQLite alias.
    Sqlite(diesel::SqliteConnection),
}

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("diesel-multidb needs at least one of the features `postgres` and `sqlite`");

/// The backend of [`AnyConnection`]: queries generic over it run on every alias.
pub type AnyBackend = <AnyConnection as Connection>::Backend;

impl AnyConnection {
    /// The kind of server this connection talks to.
    pub fn backend_kind(&self) -> crate::BackendKind {
        match self {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(_) => crate::BackendKind::Postgres,
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => crate::BackendKind::Sqlite,
        }
    }
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyConnection({})", self.backend_kind())
    }
}
