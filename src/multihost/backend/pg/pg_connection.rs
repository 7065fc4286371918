//! `PgConnection` (libpq) as a [`HostConnection`], and the PostgreSQL-only parts of
//! `MultiHostConnection<PgConnection>`.

use std::time::Duration;

use diesel::associations::HasTable;
use diesel::connection::{AnsiTransactionManager, MultiConnectionHelper};
use diesel::expression::{is_aggregate, MixedAggregates, ValidGrouping};
use diesel::pg::{
    CopyFromQuery, GetPgMetadataCache, Pg, PgConnection, PgMetadataCache, PgMetadataLookup,
    TransactionBuilder,
};
use diesel::prelude::*;
use diesel::query_builder::{AsChangeset, IntoUpdateTarget, QueryFragment};
use diesel::query_dsl::{LoadQuery, UpdateAndFetchResults};
use diesel::result::{ConnectionError, ConnectionResult, Error, QueryResult};
use diesel::sql_types::TypeMetadata;
use diesel::Table;

use super::{render_sql, ObserveRow, OBSERVE};
use crate::multihost::backend::{sealed, tcp_failure, HostConnection};
use crate::multihost::connection::InnerSettings;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::threads;
use crate::multihost::topology::HostFailure;
use crate::multihost::url::{ConnectionString, Host};
use crate::MultiHostConnection;

impl HostConnection for PgConnection {}

#[allow(private_interfaces)]
impl sealed::Common for PgConnection {
    const BACKEND: crate::BackendKind = crate::BackendKind::Postgres;
    type Db = Pg;
    type Monitor = threads::Shared<Self>;
    type TxState = AnsiTransactionManager;
    type Extra = PgMetadataCache;

    fn render_sql<T: QueryFragment<Pg>>(source: &T) -> QueryResult<String> {
        render_sql(source)
    }

    fn apply_settings(&mut self, settings: &InnerSettings) {
        settings.apply_sync(self);
    }
}

#[allow(private_interfaces)]
impl sealed::SyncWrapped for PgConnection {
    fn connect_host(cs: &ConnectionString, host: &Host) -> ConnectionResult<Self> {
        PgConnection::establish(&cs.host_conninfo(host))
    }

    fn observe(&mut self) -> QueryResult<Observation> {
        let row: ObserveRow = diesel::sql_query(OBSERVE).get_result(self)?;
        Ok(row.observation())
    }

    /// libpq does not tell a failed connection's SQLSTATE. The failure is classified by
    /// what does not depend on libpq's language: the time it took (at least
    /// `connect_timeout`: timed out) and the operating system's error kind of a TCP
    /// connection the crate opens itself (refused, timed out, unreachable). Only when TCP
    /// works is libpq's message read, for an authentication failure (libpq's messages are
    /// English unless the program calls `setlocale`; the server's part follows the server's
    /// `lc_messages`); anything else is reported with libpq's first line.
    fn connect_failure(
        cs: &ConnectionString,
        host: &Host,
        error: &ConnectionError,
        elapsed: Duration,
    ) -> HostFailure {
        let message = match error {
            ConnectionError::BadConnection(message) => message.as_str(),
            other => return HostFailure::Other(other.to_string()),
        };
        if cs.connect_timeout() != ConnectionString::UNLIMITED_CONNECT_TIMEOUT
            && elapsed + Duration::from_millis(50)
                >= cs.connect_timeout().max(Duration::from_secs(2))
        {
            return HostFailure::TimedOut;
        }
        let check = cs.connect_timeout().min(Duration::from_secs(2));
        if let Some(failure) = tcp_failure(host, check) {
            return failure;
        }
        let lower = message.to_ascii_lowercase();
        if lower.contains("authentication failed")
            || lower.contains("no password supplied")
            || lower.contains("password authentication")
        {
            return HostFailure::AuthenticationFailed;
        }
        if lower.contains("timeout expired") {
            return HostFailure::TimedOut;
        }
        if host.is_unix_socket()
            && (lower.contains("no such file or directory") || lower.contains("connection refused"))
        {
            return HostFailure::Refused;
        }
        crate::multihost::backend::other_failure(message)
    }
}

// ---- PostgreSQL-only API of the wrapper -------------------------------------------------

impl MultiHostConnection<PgConnection> {
    /// Builds a transaction with PostgreSQL's options (isolation level, read-only,
    /// deferrable), like [`PgConnection::build_transaction`]. It runs on the primary.
    pub fn build_transaction(&mut self) -> TransactionBuilder<'_, Self> {
        TransactionBuilder::new(self)
    }
}

impl GetPgMetadataCache for MultiHostConnection<PgConnection> {
    fn get_metadata_cache(&mut self) -> &mut PgMetadataCache {
        &mut self.extra
    }
}

impl MultiConnectionHelper for MultiHostConnection<PgConnection> {
    fn to_any<'a>(
        lookup: &mut <Self::Backend as TypeMetadata>::MetadataLookup,
    ) -> &mut (dyn std::any::Any + 'a) {
        lookup.as_any()
    }

    /// The lookup is the wrapper, or (when the inner connection collects the binds of a
    /// `MultiConnection` query) the inner `PgConnection`.
    fn from_any(
        lookup: &mut dyn std::any::Any,
    ) -> Option<&mut <Self::Backend as TypeMetadata>::MetadataLookup> {
        if lookup.is::<PgConnection>() {
            return lookup
                .downcast_mut::<PgConnection>()
                .map(|conn| conn as &mut dyn PgMetadataLookup);
        }
        lookup
            .downcast_mut::<Self>()
            .map(|conn| conn as &mut dyn PgMetadataLookup)
    }
}

impl<'b, Changes, Output> UpdateAndFetchResults<Changes, Output>
    for MultiHostConnection<PgConnection>
where
    Changes: Copy + AsChangeset<Target = <Changes as HasTable>::Table> + IntoUpdateTarget,
    diesel::dsl::Update<Changes, Changes>: LoadQuery<'b, Self, Output>,
    <Changes::Table as Table>::AllColumns: ValidGrouping<()>,
    <<Changes::Table as Table>::AllColumns as ValidGrouping<()>>::IsAggregate:
        MixedAggregates<is_aggregate::No, Output = is_aggregate::No>,
{
    fn update_and_fetch(&mut self, changeset: Changes) -> QueryResult<Output> {
        diesel::update(changeset).set(changeset).get_result(self)
    }
}

/// `COPY FROM` runs on the primary.
impl<T, A> ExecuteCopyFromDsl<MultiHostConnection<PgConnection>> for CopyFromQuery<T, A>
where
    CopyFromQuery<T, A>: ExecuteCopyFromDsl<PgConnection>,
    <CopyFromQuery<T, A> as ExecuteCopyFromDsl<PgConnection>>::Error: From<Error>,
{
    type Error = <CopyFromQuery<T, A> as ExecuteCopyFromDsl<PgConnection>>::Error;

    fn execute(
        self,
        conn: &mut MultiHostConnection<PgConnection>,
    ) -> Result<usize, <Self as ExecuteCopyFromDsl<MultiHostConnection<PgConnection>>>::Error> {
        conn.on_primary_raw(|primary| ExecuteCopyFromDsl::<PgConnection>::execute(self, primary))
    }
}
