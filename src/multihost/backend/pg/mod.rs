//! PostgreSQL: what the libpq (`PgConnection`) and Tokio (`AsyncPgConnection`) backends share —
//! how a server tells its role and position, how SQL is rendered for classification.

use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text};
use diesel::QueryableByName;

use crate::multihost::position::parse_lsn;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::ServerRole;

#[cfg(feature = "async")]
mod async_pg_connection;
#[cfg(feature = "postgres")]
mod pg_connection;

/// One round trip tells the role, the timeline and the WAL positions. Functions that fail
/// during recovery are only called on a primary (`CASE` evaluates one branch); a standby's
/// timeline comes from `pg_stat_wal_receiver`, which shows it only to roles that may read
/// it (superusers, `pg_read_all_stats`, `pg_monitor`), else `NULL`. The WAL block and
/// segment sizes let [`record_end`] compare a primary's insert position with a standby's
/// replay position.
pub(super) const OBSERVE: &str = "SELECT pg_is_in_recovery() AS in_recovery, \
     current_setting('transaction_read_only') AS read_only, \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text \
          ELSE pg_current_wal_insert_lsn()::text END AS lsn, \
     pg_last_wal_receive_lsn()::text AS receive_lsn, \
     CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1) \
          ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int \
     END AS timeline, \
     extract(epoch FROM pg_last_xact_replay_timestamp())::float8 AS replay_ts, \
     current_setting('wal_block_size')::int8 AS block_size, \
     pg_size_bytes(current_setting('wal_segment_size'))::int8 AS segment_size";

#[derive(QueryableByName)]
pub(super) struct ObserveRow {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
    #[diesel(sql_type = Text)]
    read_only: String,
    #[diesel(sql_type = Nullable<Text>)]
    lsn: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    receive_lsn: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    timeline: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    replay_ts: Option<f64>,
    #[diesel(sql_type = BigInt)]
    block_size: i64,
    #[diesel(sql_type = BigInt)]
    segment_size: i64,
}

/// A primary's insert position as the end of the last record inserted, comparable with a
/// standby's replay position (the end of the last record replayed). At the start of a WAL
/// page the insert position is reported past the page header (40 bytes on the first page
/// of a segment, 24 on the others), where no record ends: an idle primary would otherwise
/// look ahead of its caught-up standbys forever.
fn record_end(lsn: u64, block_size: u64, segment_size: u64) -> u64 {
    const LONG_HEADER: u64 = 40;
    const SHORT_HEADER: u64 = 24;
    if segment_size > 0 && lsn % segment_size == LONG_HEADER {
        lsn - LONG_HEADER
    } else if block_size > 0
        && lsn % block_size == SHORT_HEADER
        && lsn % segment_size.max(1) >= block_size
    {
        lsn - SHORT_HEADER
    } else {
        lsn
    }
}

impl ObserveRow {
    /// What the row says about the server.
    pub(super) fn observation(&self) -> Observation {
        let role = match (self.in_recovery, self.read_only.as_str()) {
            (true, _) => ServerRole::Standby,
            (false, "on") => ServerRole::ReadOnlyPrimary,
            (false, _) => ServerRole::Primary,
        };
        let mut lsn = self.lsn.as_deref().and_then(parse_lsn);
        if !self.in_recovery {
            let size = |n: i64| u64::try_from(n).unwrap_or(0);
            lsn = lsn.map(|l| record_end(l, size(self.block_size), size(self.segment_size)));
        }
        Observation {
            role,
            timeline: self.timeline.and_then(|t| u32::try_from(t).ok()),
            lsn,
            receive_lsn: self.receive_lsn.as_deref().and_then(parse_lsn),
            replay_timestamp: self.replay_ts,
        }
    }
}

/// A query's SQL text, for classification.
pub(super) fn render_sql<T: QueryFragment<Pg> + ?Sized>(source: &T) -> QueryResult<String> {
    let mut builder = PgQueryBuilder::default();
    source.to_sql(&mut builder, &Pg)?;
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::record_end;

    #[test]
    fn insert_positions_past_a_page_header_are_record_ends() {
        let (block, segment) = (8192, 16 << 20);
        // First page of a segment: long header.
        assert_eq!(record_end(0x5000028, block, segment), 0x5000000);
        // Another page: short header.
        assert_eq!(record_end(0x5002018, block, segment), 0x5002000);
        // Inside a page: as it is.
        assert_eq!(record_end(0x5000148, block, segment), 0x5000148);
        assert_eq!(record_end(0x5002000, block, segment), 0x5002000);
        // A short-header offset on a segment's first page is a record end.
        assert_eq!(record_end(0x5000018, block, segment), 0x5000018);
    }
}
