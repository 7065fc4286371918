//! PostgreSQL-only parts of `MultiHostConnection<PgConnection>`.

use diesel::associations::HasTable;
use diesel::connection::MultiConnectionHelper;
use diesel::expression::{is_aggregate, MixedAggregates, ValidGrouping};
use diesel::pg::{
    CopyFromQuery, GetPgMetadataCache, PgConnection, PgMetadataCache, PgMetadataLookup,
    TransactionBuilder,
};
use diesel::prelude::ExecuteCopyFromDsl;
use diesel::query_builder::{AsChangeset, IntoUpdateTarget};
use diesel::query_dsl::{LoadQuery, RunQueryDsl, UpdateAndFetchResults};
use diesel::result::{Error, QueryResult};
use diesel::sql_types::TypeMetadata;
use diesel::Table;

use crate::MultiHostConnection;

impl MultiHostConnection<PgConnection> {
    /// Builds a transaction with PostgreSQL's options (isolation level, read-only,
    /// deferrable), like [`PgConnection::build_transaction`]. It runs on the primary.
    pub fn build_transaction(&mut self) -> TransactionBuilder<'_, Self> {
        TransactionBuilder::new(self)
    }
}

impl GetPgMetadataCache for MultiHostConnection<PgConnection> {
    fn get_metadata_cache(&mut self) -> &mut PgMetadataCache {
        &mut self.pg_metadata
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
        let primary = conn.primary_for_copy()?;
        ExecuteCopyFromDsl::<PgConnection>::execute(self, primary)
    }
}
