//! A query rendered once (SQL and bind values), for the async connections: diesel-async's
//! sessions consume a query when they start running it, and the futures they return must
//! be `Send` while a Diesel query need not be; a read that fails on a standby runs again on
//! the primary from the same rendering.

use diesel::backend::Backend;
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::{
    AstPass, MoveableBindCollector, Query, QueryBuilder, QueryFragment, QueryId,
};
use diesel::result::QueryResult;
use diesel::sql_types::{TypeMetadata, Untyped};

/// A rendered query; `X`: what the backend still has to complete before sending it (the
/// custom types PostgreSQL must look up), `()` when nothing.
#[allow(unreachable_pub)]
pub struct Rendered<DB: Backend + TypeMetadata, X = ()> {
    sql: String,
    safe_to_cache: bool,
    pub(crate) binds: RawBytesBindCollector<DB>,
    pub(crate) pending: X,
}

impl<DB: Backend + TypeMetadata, X> std::fmt::Debug for Rendered<DB, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("sql", &self.sql)
            .field("binds", &self.binds.binds.len())
            .finish_non_exhaustive()
    }
}

impl<DB, X> Rendered<DB, X>
where
    DB: Backend + TypeMetadata + Default,
    DB::QueryBuilder: Default,
{
    /// Renders `source`'s SQL, with the binds already collected (with the backend's type
    /// lookup) and what is pending.
    pub(crate) fn new<T: QueryFragment<DB> + ?Sized>(
        source: &T,
        binds: RawBytesBindCollector<DB>,
        pending: X,
    ) -> QueryResult<Self> {
        let mut builder = DB::QueryBuilder::default();
        source.to_sql(&mut builder, &DB::default())?;
        Ok(Rendered {
            sql: builder.finish(),
            safe_to_cache: source.is_safe_to_cache_prepared(&DB::default())?,
            binds,
            pending,
        })
    }
}

impl<DB, X: Clone> Clone for Rendered<DB, X>
where
    DB: Backend + TypeMetadata,
    DB::TypeMetadata: Clone,
{
    fn clone(&self) -> Self {
        let mut binds = RawBytesBindCollector::<DB>::new();
        binds.binds.clone_from(&self.binds.binds);
        binds.metadata.clone_from(&self.binds.metadata);
        Rendered {
            sql: self.sql.clone(),
            safe_to_cache: self.safe_to_cache,
            binds,
            pending: self.pending.clone(),
        }
    }
}

impl<DB, X> QueryFragment<DB> for Rendered<DB, X>
where
    DB: Backend + TypeMetadata,
    for<'bc> DB::BindCollector<'bc>:
        MoveableBindCollector<DB, BindData = RawBytesBindCollector<DB>>,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.safe_to_cache {
            pass.unsafe_to_cache_prepared();
        }
        pass.push_sql(&self.sql);
        pass.push_bind_collector_data::<RawBytesBindCollector<DB>>(&self.binds)
    }
}

impl<DB: Backend + TypeMetadata, X> QueryId for Rendered<DB, X> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend + TypeMetadata, X> Query for Rendered<DB, X> {
    type SqlType = Untyped;
}
