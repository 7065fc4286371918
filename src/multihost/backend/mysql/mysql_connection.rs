//! `MysqlConnection` (libmysqlclient) as a [`HostConnection`], and the MySQL-only parts of
//! `MultiHostConnection<MysqlConnection>`.
//!
//! Diesel's `MysqlConnection` sets no connect or read timeout: a host that accepts TCP and
//! never answers holds its monitor worker (never a statement), and the topology counts it
//! as timed out after `connect_timeout`.

use std::time::Duration;

use diesel::associations::HasTable;
use diesel::connection::MultiConnectionHelper;
use diesel::dsl::{Find, Update};
use diesel::expression::{is_aggregate, MixedAggregates, ValidGrouping};
use diesel::mysql::{Mysql, MysqlConnection, MysqlQueryBuilder};
use diesel::prelude::*;
use diesel::query_builder::{AsChangeset, IntoUpdateTarget, QueryBuilder, QueryFragment};
use diesel::query_dsl::methods::{ExecuteDsl, FindDsl};
use diesel::query_dsl::{LoadQuery, UpdateAndFetchResults};
use diesel::result::{ConnectionError, ConnectionResult, Error, QueryResult};
use diesel::sql_types::TypeMetadata;
use diesel::Table;

use super::{observation, outcome_of, Variable, OBSERVE};
use crate::multihost::backend::{sealed, tcp_failure, HostConnection};
use crate::multihost::connection::InnerSettings;
use crate::multihost::core::Outcome;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::threads;
use crate::multihost::topology::HostFailure;
use crate::multihost::url::{ConnectionString, Host};
use crate::MultiHostConnection;
use diesel::connection::AnsiTransactionManager;

impl HostConnection for MysqlConnection {}

#[allow(private_interfaces)]
impl sealed::Common for MysqlConnection {
    const BACKEND: crate::BackendKind = crate::BackendKind::Mysql;
    type Db = Mysql;
    type Monitor = threads::Shared<Self>;
    type TxState = AnsiTransactionManager;
    type Extra = ();

    fn render_sql<T: QueryFragment<Mysql>>(source: &T) -> QueryResult<String> {
        let mut builder = MysqlQueryBuilder::default();
        source.to_sql(&mut builder, &Mysql)?;
        Ok(builder.finish())
    }

    fn apply_settings(&mut self, settings: &InnerSettings) {
        settings.apply_sync(self);
    }

    fn outcome_of(error: &Error) -> Outcome {
        outcome_of(error)
    }
}

#[allow(private_interfaces)]
impl sealed::SyncWrapped for MysqlConnection {
    fn connect_host(cs: &ConnectionString, host: &Host) -> ConnectionResult<Self> {
        MysqlConnection::establish(&cs.host_mysql_url(host))
    }

    fn observe(&mut self) -> QueryResult<Observation> {
        let vars: Vec<Variable> = diesel::sql_query(OBSERVE).load(self)?;
        Ok(observation(&vars))
    }

    /// Refused and timed-out connections are told by the operating system's error kind of
    /// a TCP connection the crate opens itself; an authentication failure (server error
    /// 1045) by its message, which the client library prefixes with the server's text.
    fn connect_failure(
        cs: &ConnectionString,
        host: &Host,
        error: &ConnectionError,
        _elapsed: Duration,
    ) -> HostFailure {
        let message = match error {
            ConnectionError::BadConnection(message) => message.as_str(),
            other => return HostFailure::Other(other.to_string()),
        };
        let check = cs.connect_timeout().min(Duration::from_secs(2));
        if let Some(failure) = tcp_failure(host, check) {
            return failure;
        }
        if message.to_ascii_lowercase().contains("access denied") {
            return HostFailure::AuthenticationFailed;
        }
        crate::multihost::backend::other_failure(message)
    }
}

// ---- MySQL-only API of the wrapper ----------------------------------------------------

impl MultiConnectionHelper for MultiHostConnection<MysqlConnection> {
    fn to_any<'a>(
        lookup: &mut <Self::Backend as TypeMetadata>::MetadataLookup,
    ) -> &mut (dyn std::any::Any + 'a) {
        lookup
    }

    fn from_any(
        lookup: &mut dyn std::any::Any,
    ) -> Option<&mut <Self::Backend as TypeMetadata>::MetadataLookup> {
        lookup.downcast_mut()
    }
}

/// `save_changes`: the UPDATE and then the read of the row, both on the primary (MySQL has
/// no `RETURNING`; the read must see the update).
impl<'b, Changes, Output> UpdateAndFetchResults<Changes, Output>
    for MultiHostConnection<MysqlConnection>
where
    Changes: Copy + Identifiable,
    Changes: AsChangeset<Target = <Changes as HasTable>::Table> + IntoUpdateTarget,
    Changes::Table: FindDsl<Changes::Id>,
    Update<Changes, Changes>: ExecuteDsl<MultiHostConnection<MysqlConnection>>,
    Find<Changes::Table, Changes::Id>: LoadQuery<'b, MultiHostConnection<MysqlConnection>, Output>,
    <Changes::Table as Table>::AllColumns: ValidGrouping<()>,
    <<Changes::Table as Table>::AllColumns as ValidGrouping<()>>::IsAggregate:
        MixedAggregates<is_aggregate::No, Output = is_aggregate::No>,
{
    fn update_and_fetch(&mut self, changeset: Changes) -> QueryResult<Output> {
        diesel::update(changeset).set(changeset).execute(self)?;
        FindDsl::find(Changes::table(), changeset.id()).get_result(self)
    }
}
