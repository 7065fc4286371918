//! PostgreSQL: what the libpq (`PgConnection`) and Tokio (`AsyncPgConnection`) backends share —
//! how a server tells its role and position, how SQL is rendered for classification.

use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::result::QueryResult;
use diesel::sql_types::{Bool, Double, Nullable, Text};
use diesel::QueryableByName;

use crate::multihost::position::parse_lsn;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::ServerRole;

#[cfg(feature = "async")]
mod async_pg_connection;
#[cfg(feature = "postgres")]
mod pg_connection;

/// One round trip tells the role, the timeline and the WAL positions. Functions that fail
/// during recovery are only called on a primary (`CASE` evaluates one branch). A standby's
/// timeline comes from `pg_stat_get_wal_receiver()` (what the `pg_stat_wal_receiver` view
/// shows), which tells it only to roles that may read it (superusers, `pg_read_all_stats`,
/// `pg_monitor`), else `NULL`; a primary's is the first eight hex digits of its current WAL
/// file name. The WAL block and segment sizes let [`record_end`] compare a primary's insert
/// position with a standby's replay position.
///
/// Every column but the first and the replay time is text, parsed here: a new server
/// session answers its first query in about half the time it takes with the casts, views
/// and output functions this would otherwise need (the first probe of a host is on the path
/// of the first connection's `establish`).
pub(super) const OBSERVE: &str = "SELECT pg_is_in_recovery() AS in_recovery, \
     current_setting('transaction_read_only') AS read_only, \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
          ELSE pg_current_wal_insert_lsn() END)::text AS lsn, \
     pg_last_wal_receive_lsn()::text AS receive_lsn, \
     CASE WHEN pg_is_in_recovery() \
          THEN (SELECT received_tli::text FROM pg_stat_get_wal_receiver()) \
          ELSE pg_walfile_name(pg_current_wal_insert_lsn()) END AS timeline, \
     extract(epoch FROM pg_last_xact_replay_timestamp())::float8 AS replay_ts, \
     current_setting('wal_block_size') AS block_size, \
     current_setting('wal_segment_size') AS segment_size";

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
    /// A standby's received timeline (decimal), or a primary's WAL file name.
    #[diesel(sql_type = Nullable<Text>)]
    timeline: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    replay_ts: Option<f64>,
    /// `wal_block_size`: bytes, without a unit (`8192`).
    #[diesel(sql_type = Text)]
    block_size: String,
    /// `wal_segment_size` with its unit (`16MB`).
    #[diesel(sql_type = Text)]
    segment_size: String,
}

/// The timeline in `timeline`: a decimal number on a standby, the first eight hex digits of
/// a WAL file name (`000000010000000000000003`) on a primary.
fn parse_timeline(in_recovery: bool, text: &str) -> Option<u32> {
    if in_recovery {
        text.parse().ok()
    } else {
        u32::from_str_radix(text.get(..8)?, 16).ok()
    }
}

/// A size setting as `current_setting` shows it: bytes, or a number with a unit (`B`,
/// `kB`, `MB`, `GB`, `TB`).
fn parse_size(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit)
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
            let size = |text: &str| parse_size(text).unwrap_or(0);
            lsn = lsn.map(|l| record_end(l, size(&self.block_size), size(&self.segment_size)));
        }
        Observation {
            role,
            timeline: self
                .timeline
                .as_deref()
                .and_then(|t| parse_timeline(self.in_recovery, t)),
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
    use super::{parse_size, parse_timeline, record_end};

    #[test]
    fn timelines_and_sizes_parse_as_the_server_shows_them() {
        assert_eq!(parse_timeline(false, "000000010000000000000003"), Some(1));
        assert_eq!(parse_timeline(false, "0000002A0000000100000003"), Some(42));
        assert_eq!(parse_timeline(true, "7"), Some(7));
        assert_eq!(parse_timeline(false, "0001"), None);
        assert_eq!(parse_timeline(true, "x"), None);
        assert_eq!(parse_size("8192"), Some(8192));
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("64kB"), Some(64 << 10));
        assert_eq!(parse_size("16 MB"), Some(16 << 20));
        assert_eq!(parse_size("16XB"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999TB"), None);
    }

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
