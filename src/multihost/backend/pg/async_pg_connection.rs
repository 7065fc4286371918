//! `AsyncPgConnection` (diesel-async over tokio-postgres, no libpq) as a
//! [`HostConnection`], and the PostgreSQL-only parts of
//! `MultiHostConnection<AsyncPgConnection>`.
//!
//! # Queries sent more than once
//!
//! diesel-async's sessions consume a query when they start running it, and the futures
//! they return must be `Send` while a Diesel query need not be. A query is therefore
//! rendered once, synchronously, into its SQL and bind values ([`PgRendered`]), which any
//! session can run: a read that fails on a standby runs again on the primary from the same
//! rendering. Custom types (`#[diesel(postgres_type(name = ..))]`) need their OIDs, which
//! only a server can tell: a type the wrapper has not met yet is rendered with placeholder
//! OIDs (twice, with two sets, to find where they sit inside array and record values), and
//! the session the query runs on looks the real ones up first, once per connection.

use std::collections::{HashMap, HashSet};
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use diesel::pg::{Pg, PgMetadataLookup, PgTypeMetadata};
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error, QueryResult};
use diesel::sql_types::{Nullable, Oid, Text};
use diesel::QueryableByName;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncConnectionCore, AsyncPgConnection, RunQueryDsl};
use tokio_postgres::error::SqlState;

use super::{render_sql, ObserveRow, OBSERVE};
use crate::multihost::backend::rendered::{BindBuffer, Rendered};
use crate::multihost::backend::{drain_boxed, sealed, HostConnection};
use crate::multihost::connection::InnerSettings;
use crate::multihost::core::Outcome;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::{tasks, HostFailure};
use crate::multihost::url::{ConnectionString, Host};

/// The OIDs of the custom types a connection has met, by schema and name: `(type, array)`;
/// and the bind collector of the next statement.
#[derive(Debug, Default)]
#[allow(unreachable_pub)]
pub struct TypeOids(HashMap<TypeName, (u32, u32)>, BindBuffer<Pg>);

/// A query rendered once, with the custom types still to look up.
type PgRendered = Rendered<Pg, Option<Box<Unresolved>>>;

/// A type's schema (unless found by the search path) and name.
type TypeName = (Option<String>, String);

#[derive(Debug, Clone)]
#[allow(unreachable_pub)]
pub struct Unresolved {
    /// Each type not known yet, with its placeholder OIDs `(type, array)`.
    types: Vec<(TypeName, (u32, u32))>,
    /// `(bind, byte)`: a placeholder OID written inside a bind value (arrays, records).
    locations: Vec<(usize, usize)>,
}

type TypeMap = HashMap<TypeName, (u32, u32)>;

/// Answers type lookups from what the connection knows; an unknown type gets placeholder
/// OIDs: `(0, 0)`, or distinct ones counting up from `next`.
struct Lookup {
    known: TypeMap,
    missing: TypeMap,
    next: Option<u32>,
}

impl PgMetadataLookup for Lookup {
    fn lookup_type(&mut self, type_name: &str, schema: Option<&str>) -> PgTypeMetadata {
        let key = (schema.map(str::to_owned), type_name.to_owned());
        let oids = match self.known.get(&key) {
            Some(oids) => *oids,
            None => {
                let next = &mut self.next;
                *self.missing.entry(key).or_insert_with(|| match next {
                    Some(n) => {
                        *n += 2;
                        (*n, *n + 1)
                    }
                    None => (0, 0),
                })
            }
        };
        PgTypeMetadata::new(oids.0, oids.1)
    }
}

/// The first placeholder OID of the second rendering: far above the OIDs a database
/// hands out in practice, and never 0 (the first rendering's placeholder).
const PLACEHOLDER_BASE: u32 = 0xF000_0000;

/// Collects the binds of `source` (into the connection's kept collector); returns them with
/// the types `known` did not hold.
fn collect<T: QueryFragment<Pg> + ?Sized>(
    source: &T,
    known: &mut TypeOids,
    next: Option<u32>,
) -> QueryResult<(Arc<RawBytesBindCollector<Pg>>, TypeMap)> {
    let mut binds = known.1.take();
    let mut lookup = Lookup {
        known: std::mem::take(&mut known.0),
        missing: HashMap::new(),
        next,
    };
    let collector = Arc::get_mut(&mut binds).expect("a kept collector is not shared");
    let result = source.collect_binds(collector, &mut lookup, &Pg);
    known.0 = lookup.known;
    if let Err(error) = result {
        known.1.put(binds);
        return Err(error);
    }
    Ok((binds, lookup.missing))
}

/// Renders `source`: SQL and binds, with placeholder OIDs for the custom types `known`
/// does not hold, and where they sit.
fn render<T: QueryFragment<Pg> + ?Sized>(
    source: &T,
    sql: Arc<str>,
    safe_to_cache: Option<bool>,
    known: &mut TypeOids,
) -> QueryResult<PgRendered> {
    let (zero, missing) = collect(source, known, None)?;
    if missing.is_empty() {
        return Rendered::new(source, sql, safe_to_cache, zero, None);
    }
    // Again with distinct placeholders: a byte position holding 0 the first time and a
    // placeholder the second time is a placeholder OID inside a value.
    let (distinct, missing) = collect(source, known, Some(PLACEHOLDER_BASE))?;
    let placeholders: HashSet<u32> = missing.values().flat_map(|(t, a)| [*t, *a]).collect();
    let mut locations = Vec::new();
    for (bind, (a, b)) in zero.binds.iter().zip(&distinct.binds).enumerate() {
        let (Some(a), Some(b)) = (a, b) else { continue };
        if a.len() != b.len() {
            continue;
        }
        for (byte, (wa, wb)) in a.windows(4).zip(b.windows(4)).enumerate() {
            let value = u32::from_be_bytes([wb[0], wb[1], wb[2], wb[3]]);
            if wa == [0, 0, 0, 0] && placeholders.contains(&value) {
                locations.push((bind, byte));
            }
        }
    }
    let unresolved = Unresolved {
        types: missing.into_iter().collect(),
        locations,
    };
    known.1.put(zero);
    Rendered::new(
        source,
        sql,
        safe_to_cache,
        distinct,
        Some(Box::new(unresolved)),
    )
}

#[derive(QueryableByName)]
struct TypeRow {
    #[diesel(sql_type = Oid)]
    oid: u32,
    #[diesel(sql_type = Oid)]
    typarray: u32,
}

/// Looks up a custom type's OIDs on `conn` (diesel's own queries, by schema and name, or
/// by the search path).
async fn lookup_type(
    conn: &mut AsyncPgConnection,
    schema: Option<&str>,
    name: &str,
) -> QueryResult<(u32, u32)> {
    let row: TypeRow = match schema {
        Some(schema) => {
            diesel::sql_query(
                "SELECT pg_type.oid, pg_type.typarray FROM pg_type \
                 INNER JOIN pg_namespace ON pg_type.typnamespace = pg_namespace.oid \
                 WHERE pg_type.typname = $1 AND pg_namespace.nspname = $2 LIMIT 1",
            )
            .bind::<Text, _>(name)
            .bind::<Nullable<Text>, _>(Some(schema))
            .get_result(conn)
            .await?
        }
        None => {
            diesel::sql_query(
                "SELECT pg_type.oid, pg_type.typarray FROM pg_type \
                 WHERE pg_type.oid = quote_ident($1)::regtype::oid LIMIT 1",
            )
            .bind::<Text, _>(name)
            .get_result(conn)
            .await?
        }
    };
    Ok((row.oid, row.typarray))
}

/// Why a connection attempt failed: by SQLSTATE and by the operating system's error kind,
/// never by a message's words.
fn connect_failure(error: &tokio_postgres::Error) -> HostFailure {
    if let Some(code) = error.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return HostFailure::AuthenticationFailed;
        }
        let message = error
            .as_db_error()
            .map_or_else(|| error.to_string(), |db| db.message().to_string());
        return HostFailure::Other(format!("{message} (SQLSTATE {})", code.code()));
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                    HostFailure::Refused
                }
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    HostFailure::TimedOut
                }
                kind => HostFailure::Other(format!("cannot connect: {kind}")),
            };
        }
        source = cause.source();
    }
    HostFailure::Other(error.to_string())
}

impl HostConnection for AsyncPgConnection {}

#[allow(private_interfaces)]
impl sealed::Common for AsyncPgConnection {
    const BACKEND: crate::BackendKind = crate::BackendKind::Postgres;
    type Db = Pg;
    type Monitor = tasks::Shared<Self>;
    type TxState = diesel_async::AnsiTransactionManager;
    type Extra = TypeOids;

    fn render_sql<T: QueryFragment<Pg>>(source: &T) -> QueryResult<String> {
        render_sql(source)
    }

    fn apply_settings(&mut self, settings: &InnerSettings) {
        settings.apply_async(self);
    }

    /// diesel-async reports every error without a SQLSTATE — a connection closed before the
    /// statement was written as much as one lost while it ran — as
    /// `UnableToSendCommand`: no proof that nothing reached the server. The shell proves
    /// "not sent" itself, by finding the session closed before giving it the statement.
    fn outcome_of(error: &Error) -> Outcome {
        match error {
            Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => Outcome::ReadOnly,
            Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                _,
            ) => Outcome::ConnectionLost,
            Error::DatabaseError(..) => Outcome::Database,
            _ => Outcome::Client,
        }
    }
}

#[allow(private_interfaces)]
impl sealed::AsyncWrapped for AsyncPgConnection {
    type Rendered = PgRendered;

    async fn connect_host(cs: &ConnectionString, host: &Host) -> Result<Self, HostFailure> {
        let config = cs.host_tokio_config(host).map_err(HostFailure::Other)?;
        // tokio-postgres bounds the TCP connection by `connect_timeout`, not the startup
        // and authentication after it: the whole attempt is bounded here.
        let limit = if cs.connect_timeout() == ConnectionString::UNLIMITED_CONNECT_TIMEOUT {
            Duration::MAX
        } else {
            cs.connect_timeout().max(Duration::from_secs(2))
        };
        let attempt = async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| connect_failure(&e))?;
            AsyncPgConnection::try_from_client_and_connection(client, connection)
                .await
                .map_err(|e| HostFailure::Other(format!("the session setup failed: {e}")))
        };
        crate::multihost::backend::within(limit, attempt).await
    }

    fn check_host(cs: &ConnectionString, host: &Host) -> Result<(), String> {
        cs.host_tokio_config(host).map(drop)
    }

    async fn observe(&mut self) -> QueryResult<Observation> {
        let row: ObserveRow = diesel::sql_query(OBSERVE).get_result(self).await?;
        Ok(row.observation())
    }

    fn is_closed(&mut self) -> bool {
        // The inner transaction manager is never used (the wrapper has its own): broken
        // means the client is closed.
        PoolableConnection::is_broken(self)
    }

    fn render<T: QueryFragment<Pg> + QueryId>(
        source: &T,
        sql: Arc<str>,
        safe_to_cache: Option<bool>,
        extra: &mut TypeOids,
    ) -> QueryResult<PgRendered> {
        render(source, sql, safe_to_cache, extra)
    }

    fn recycle(rendered: PgRendered, extra: &mut TypeOids) {
        extra.1.put(rendered.into_binds());
    }

    fn drain<'conn, 'query>(
        rows: <Self as AsyncConnectionCore>::Stream<'conn, 'query>,
    ) -> impl std::future::Future<
        Output = QueryResult<<Self as AsyncConnectionCore>::Stream<'conn, 'query>>,
    > + Send {
        drain_boxed(rows)
    }

    fn needs_resolving(rendered: &PgRendered) -> bool {
        rendered.pending.is_some()
    }

    async fn resolve<'a>(
        &'a mut self,
        rendered: &'a mut PgRendered,
        extra: &'a mut TypeOids,
    ) -> QueryResult<()> {
        let Some(unresolved) = rendered.pending.take() else {
            return Ok(());
        };
        let mut real = HashMap::new();
        for ((schema, name), (placeholder, placeholder_array)) in &unresolved.types {
            let key = (schema.clone(), name.clone());
            let oids = match extra.0.get(&key) {
                Some(oids) => *oids,
                None => {
                    let oids = lookup_type(self, schema.as_deref(), name).await?;
                    extra.0.insert(key, oids);
                    oids
                }
            };
            real.insert(*placeholder, oids.0);
            real.insert(*placeholder_array, oids.1);
        }
        let binds = rendered.binds_mut();
        for metadata in &mut binds.metadata {
            if let (Ok(oid), Ok(array)) = (metadata.oid(), metadata.array_oid()) {
                if real.contains_key(&oid) || real.contains_key(&array) {
                    *metadata = PgTypeMetadata::new(
                        real.get(&oid).copied().unwrap_or(oid),
                        real.get(&array).copied().unwrap_or(array),
                    );
                }
            }
        }
        for (bind, byte) in &unresolved.locations {
            if let Some(Some(bytes)) = binds.binds.get_mut(*bind) {
                if let Some(window) = bytes.get_mut(*byte..*byte + 4) {
                    let value = u32::from_be_bytes([window[0], window[1], window[2], window[3]]);
                    if let Some(oid) = real.get(&value) {
                        window.copy_from_slice(&oid.to_be_bytes());
                    }
                }
            }
        }
        Ok(())
    }
}
