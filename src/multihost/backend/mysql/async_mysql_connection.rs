//! `AsyncMysqlConnection` (diesel-async over mysql_async, pure Rust) as a
//! [`HostConnection`].
//!
//! Queries are rendered once (SQL and bind values, no type lookups on MySQL) so that a read
//! that fails on a replica runs again on the source. Connection attempts are classified by
//! the server's error number and the operating system's error kind. diesel-async reports
//! client-side errors as text with mysql_async's own prefixes (`Input/output error`,
//! `Driver error`): those are taken as a lost connection (a write in flight is never
//! re-sent). mysql_async offers no way to tell a closed session before using it, and no
//! `tcp_user_timeout`: a silently dead peer is found by TCP keepalive (after 4 s idle,
//! then the operating system's probes).

use std::time::Duration;

use diesel::mysql::{Mysql, MysqlQueryBuilder};
use diesel::query_builder::{QueryBuilder, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error, QueryResult};
use diesel_async::{AsyncConnectionCore, AsyncMysqlConnection, RunQueryDsl};

use super::{observation, Variable, OBSERVE};
use crate::multihost::backend::rendered::{BindBuffer, Rendered};
use crate::multihost::backend::{drain_boxed, sealed, HostConnection};
use crate::multihost::connection::InnerSettings;
use crate::multihost::core::Outcome;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::{tasks, HostFailure};
use crate::multihost::url::{ConnectionString, Host};

/// A query rendered once (nothing to look up on MySQL).
type MysqlRendered = Rendered<Mysql>;

fn render_sql<T: QueryFragment<Mysql> + ?Sized>(source: &T) -> QueryResult<String> {
    let mut builder = MysqlQueryBuilder::default();
    source.to_sql(&mut builder, &Mysql)?;
    Ok(builder.finish())
}

/// Why a connection attempt failed: by the server's error number (1045: access denied) and
/// the operating system's error kind.
fn connect_failure(error: &mysql_async::Error) -> HostFailure {
    match error {
        mysql_async::Error::Server(e) if e.code == 1045 => HostFailure::AuthenticationFailed,
        mysql_async::Error::Server(e) => {
            HostFailure::Other(format!("{} (error {})", e.message, e.code))
        }
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                HostFailure::Refused
            }
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => HostFailure::TimedOut,
            kind => HostFailure::Other(format!("cannot connect: {kind}")),
        },
        other => HostFailure::Other(other.to_string()),
    }
}

impl HostConnection for AsyncMysqlConnection {}

#[allow(private_interfaces)]
impl sealed::Common for AsyncMysqlConnection {
    const BACKEND: crate::BackendKind = crate::BackendKind::Mysql;
    type Db = Mysql;
    type Monitor = tasks::Shared<Self>;
    type TxState = diesel_async::AnsiTransactionManager;
    type Extra = BindBuffer<Mysql>;

    fn render_sql<T: QueryFragment<Mysql>>(source: &T) -> QueryResult<String> {
        render_sql(source)
    }

    fn apply_settings(&mut self, settings: &InnerSettings) {
        settings.apply_async(self);
    }

    fn outcome_of(error: &Error) -> Outcome {
        match error {
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("Input/output error")
                    || info.message().starts_with("Driver error") =>
            {
                Outcome::ConnectionLost
            }
            _ => super::outcome_of(error),
        }
    }
}

#[allow(private_interfaces)]
impl sealed::AsyncWrapped for AsyncMysqlConnection {
    type Rendered = MysqlRendered;

    async fn connect_host(cs: &ConnectionString, host: &Host) -> Result<Self, HostFailure> {
        let opts = cs.host_mysql_async_opts(host).map_err(HostFailure::Other)?;
        let limit = if cs.connect_timeout() == ConnectionString::UNLIMITED_CONNECT_TIMEOUT {
            Duration::MAX
        } else {
            cs.connect_timeout().max(Duration::from_secs(2))
        };
        let attempt = async {
            let conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| connect_failure(&e))?;
            AsyncMysqlConnection::try_from(conn)
                .await
                .map_err(|e| HostFailure::Other(format!("the session setup failed: {e}")))
        };
        crate::multihost::backend::within(limit, attempt).await
    }

    fn check_host(cs: &ConnectionString, host: &Host) -> Result<(), String> {
        cs.host_mysql_async_opts(host).map(drop)
    }

    async fn observe(&mut self) -> QueryResult<Observation> {
        let vars: Vec<Variable> = diesel::sql_query(OBSERVE).load(self).await?;
        Ok(observation(&vars))
    }

    fn is_closed(&mut self) -> bool {
        false
    }

    fn render<T: QueryFragment<Mysql> + QueryId>(
        source: &T,
        sql: std::sync::Arc<str>,
        safe_to_cache: Option<bool>,
        buffer: &mut BindBuffer<Mysql>,
    ) -> QueryResult<MysqlRendered> {
        let mut binds = buffer.take();
        let collector =
            std::sync::Arc::get_mut(&mut binds).expect("a kept collector is not shared");
        if let Err(error) = source.collect_binds(collector, &mut (), &Mysql) {
            buffer.put(binds);
            return Err(error);
        }
        Rendered::new(source, sql, safe_to_cache, binds, ())
    }

    fn recycle(rendered: MysqlRendered, buffer: &mut BindBuffer<Mysql>) {
        buffer.put(rendered.into_binds());
    }

    fn drain<'conn, 'query>(
        rows: <Self as AsyncConnectionCore>::Stream<'conn, 'query>,
    ) -> impl std::future::Future<
        Output = QueryResult<<Self as AsyncConnectionCore>::Stream<'conn, 'query>>,
    > + Send {
        drain_boxed(rows)
    }

    fn needs_resolving(_rendered: &MysqlRendered) -> bool {
        false
    }

    async fn resolve<'a>(
        &'a mut self,
        _rendered: &'a mut MysqlRendered,
        _extra: &'a mut BindBuffer<Mysql>,
    ) -> QueryResult<()> {
        Ok(())
    }
}
