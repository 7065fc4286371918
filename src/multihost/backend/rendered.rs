//! A query rendered once (SQL and bind values), for the async connections: diesel-async's
//! sessions consume a query when they start running it, and the futures they return must
//! be `Send` while a Diesel query need not be; a read that fails on a standby runs again on
//! the primary from the same rendering. The SQL and the binds are shared (`Arc`), so that
//! giving the rendering to a session costs no copy; the SQL of a query with a static query
//! id is rendered once per connection (see `begin_async` in `connection/async_impls.rs`).

use std::marker::PhantomData;
use std::sync::Arc;

use diesel::backend::Backend;
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::{AstPass, MoveableBindCollector, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{TypeMetadata, Untyped};

/// A rendered query; `X`: what the backend still has to complete before sending it (the
/// custom types PostgreSQL must look up), `()` when nothing.
#[allow(unreachable_pub)]
pub struct Rendered<DB: Backend + TypeMetadata, X = ()> {
    sql: Arc<str>,
    safe_to_cache: bool,
    binds: Arc<RawBytesBindCollector<DB>>,
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
{
    /// `source`'s rendering: its SQL (rendered by the caller), the binds already collected
    /// (with the backend's type lookup) and what is pending. `safe_to_cache`: whether
    /// `source` is safe to cache as a prepared statement, when the caller knows it.
    pub(crate) fn new<T: QueryFragment<DB> + ?Sized>(
        source: &T,
        sql: Arc<str>,
        safe_to_cache: Option<bool>,
        binds: Arc<RawBytesBindCollector<DB>>,
        pending: X,
    ) -> QueryResult<Self> {
        let safe_to_cache = match safe_to_cache {
            Some(safe) => safe,
            None => source.is_safe_to_cache_prepared(&DB::default())?,
        };
        Ok(Rendered {
            sql,
            safe_to_cache,
            binds,
            pending,
        })
    }

    /// The bind values, to be used again for another rendering (see [`BindBuffer`]).
    pub(crate) fn into_binds(self) -> Arc<RawBytesBindCollector<DB>> {
        self.binds
    }

    /// The bind values, to be changed (copied first when a clone shares them).
    pub(crate) fn binds_mut(&mut self) -> &mut RawBytesBindCollector<DB>
    where
        DB::TypeMetadata: Clone,
    {
        if Arc::get_mut(&mut self.binds).is_none() {
            self.binds = Arc::new(copy_binds(&self.binds));
        }
        Arc::get_mut(&mut self.binds).expect("the binds were just copied")
    }
}

/// The most bind values a kept [`BindBuffer`] has room for.
const KEPT_BINDS: usize = 64;

/// A bind collector kept from one statement to the next, so that collecting a statement's
/// binds does not allocate the collector and its lists each time (only the values).
#[allow(unreachable_pub)]
pub struct BindBuffer<DB: Backend + TypeMetadata>(Option<Arc<RawBytesBindCollector<DB>>>);

impl<DB: Backend + TypeMetadata> Default for BindBuffer<DB> {
    fn default() -> Self {
        BindBuffer(None)
    }
}

impl<DB: Backend + TypeMetadata> std::fmt::Debug for BindBuffer<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BindBuffer").finish_non_exhaustive()
    }
}

impl<DB: Backend + TypeMetadata> BindBuffer<DB> {
    /// An empty collector: the one kept, when there is one.
    pub(crate) fn take(&mut self) -> Arc<RawBytesBindCollector<DB>> {
        match self.0.take() {
            Some(binds) => binds,
            None => Arc::new(RawBytesBindCollector::new()),
        }
    }

    /// Keeps `binds` for the next statement, emptied, unless a rendering still shares them
    /// or they held many values (the memory is then given back).
    pub(crate) fn put(&mut self, mut binds: Arc<RawBytesBindCollector<DB>>) {
        if let Some(collector) = Arc::get_mut(&mut binds) {
            if collector.binds.capacity() > KEPT_BINDS {
                return;
            }
            collector.binds.clear();
            collector.metadata.clear();
            self.0 = Some(binds);
        }
    }
}

/// A copy of collected binds (the collector is not `Clone`).
fn copy_binds<DB>(binds: &RawBytesBindCollector<DB>) -> RawBytesBindCollector<DB>
where
    DB: Backend + TypeMetadata,
    DB::TypeMetadata: Clone,
{
    let mut copy = RawBytesBindCollector::<DB>::new();
    copy.binds.clone_from(&binds.binds);
    copy.metadata.clone_from(&binds.metadata);
    copy
}

impl<DB, X: Clone> Clone for Rendered<DB, X>
where
    DB: Backend + TypeMetadata,
{
    fn clone(&self) -> Self {
        Rendered {
            sql: Arc::clone(&self.sql),
            safe_to_cache: self.safe_to_cache,
            binds: Arc::clone(&self.binds),
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
        pass.push_bind_collector_data::<RawBytesBindCollector<DB>>(&*self.binds)
    }
}

impl<DB: Backend + TypeMetadata, X> QueryId for Rendered<DB, X> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend + TypeMetadata, X> Query for Rendered<DB, X> {
    type SqlType = Untyped;
}

/// A rendering `R` of a query whose static query id is `I` (its `QueryId::QueryId`), given
/// to a session under that id: the session then keys its prepared statement by the type,
/// as it does for the query itself, instead of hashing the SQL text. Built only for a query
/// with a static id, whose SQL is the same every time (Diesel's own rule).
#[allow(unreachable_pub)]
pub struct Keyed<R, I> {
    rendered: R,
    id: PhantomData<fn() -> I>,
}

impl<R, I> Keyed<R, I> {
    /// `rendered`, rendered from a query with a static id whose `QueryId` is `I`.
    pub(crate) fn new(rendered: R) -> Self {
        Keyed {
            rendered,
            id: PhantomData,
        }
    }
}

impl<DB: Backend, R: QueryFragment<DB>, I> QueryFragment<DB> for Keyed<R, I> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.rendered.walk_ast(pass)
    }
}

impl<R, I: 'static> QueryId for Keyed<R, I> {
    type QueryId = I;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<R: Query, I> Query for Keyed<R, I> {
    type SqlType = R::SqlType;
}
