//! MySQL and MariaDB: what the libmysqlclient (`MysqlConnection`) and Tokio
//! (`AsyncMysqlConnection`) backends share — how a server tells its role and position, what
//! an error says about a statement.
//!
//! # Roles and positions
//!
//! A host is writable when `read_only` (and MySQL's `super_read_only`) is off; the read-only
//! hosts are the replicas. A position is the number of transactions in the server's GTID
//! set: on MariaDB the sum of the sequence numbers of `@@gtid_current_pos` over its domains
//! (the source's binlog position, a replica's applied position), on MySQL the size of
//! `@@gtid_executed`. With one replication history (GTID replication, no transactions
//! written on replicas), a server whose set holds at least as many transactions holds every
//! transaction of the smaller set: the comparison the routing core makes on PostgreSQL's
//! WAL positions. GTIDs carry on across a failover (no timelines): causal tokens are
//! `gtid:<count>`.
//!
//! # What Diesel's MySQL connection does not tell
//!
//! Diesel reports most MySQL errors as [`DatabaseErrorKind::Unknown`] with the client
//! library's message, and gives no error number; only 1792 (a write in a read-only
//! transaction) has a kind of its own. A write refused by a read-only server (1290,
//! `--read-only`) and a lost connection (2006, 2013) are therefore recognised by their
//! messages (MariaDB Connector/C's client messages are English; a server with a localized
//! `lc_messages` makes 1290 look like any other error: the statement then returns its
//! error instead of being re-run). Diesel's `MysqlConnection` also sets no connect or read
//! timeout: a host that accepts TCP and never answers holds its monitor worker (never a
//! statement), and the topology counts it as timed out after `connect_timeout`.

use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::Text;
use diesel::QueryableByName;

use crate::multihost::core::Outcome;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::ServerRole;

#[cfg(feature = "async-mysql")]
mod async_mysql_connection;
#[cfg(feature = "mysql")]
mod mysql_connection;

/// The timeline a MySQL position is on: GTIDs carry on across failovers.
pub(crate) const GTID_TIMELINE: u32 = 0;

/// Every server variable the observation needs, in one round trip that works on MySQL and
/// MariaDB alike (a variable a server does not have is simply not returned).
pub(super) const OBSERVE: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
     ('read_only', 'super_read_only', 'gtid_current_pos', 'gtid_executed')";

#[derive(QueryableByName)]
pub(super) struct Variable {
    #[diesel(sql_type = Text, column_name = Variable_name)]
    name: String,
    #[diesel(sql_type = Text, column_name = Value)]
    value: String,
}

/// The number of transactions in a GTID set, in MariaDB's form (`0-1-123,1-2-45`: domain,
/// server, sequence number per domain) or MySQL's (`uuid:1-5:7-9,uuid2:1-3`). `None` when
/// the text is neither.
pub(crate) fn gtid_count(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let mut total: u64 = 0;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((_, intervals)) = part.split_once(':') {
            // MySQL: uuid[:tag]:a-b:c... ; intervals are numbers or ranges.
            for interval in intervals.split(':') {
                let count = match interval.split_once('-') {
                    Some((a, b)) => {
                        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                        b.checked_sub(a)?.checked_add(1)?
                    }
                    None => match interval.parse::<u64>() {
                        Ok(_) => 1,
                        // A tag (MySQL 8.4 `uuid:tag:1-5`) counts nothing itself.
                        Err(_) => 0,
                    },
                };
                total = total.checked_add(count)?;
            }
        } else {
            // MariaDB: domain-server-seq.
            let mut fields = part.split('-');
            let (_domain, _server, seq) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some() {
                return None;
            }
            total = total.checked_add(seq.parse().ok()?)?;
        }
    }
    Some(total)
}

/// What the variables say about the server.
pub(super) fn observation(vars: &[Variable]) -> Observation {
    let get = |name: &str| {
        vars.iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
            .map(|v| v.value.as_str())
    };
    let on = |value: Option<&str>| value.is_some_and(|v| v.eq_ignore_ascii_case("on") || v == "1");
    let read_only = on(get("read_only")) || on(get("super_read_only"));
    let gtids = get("gtid_current_pos").or(get("gtid_executed"));
    Observation {
        role: if read_only {
            ServerRole::Standby
        } else {
            ServerRole::Primary
        },
        timeline: Some(GTID_TIMELINE),
        lsn: gtids.and_then(gtid_count),
        receive_lsn: None,
        replay_timestamp: None,
    }
}

/// What a MySQL error says about the statement and the session.
pub(super) fn outcome_of(error: &Error) -> Outcome {
    match error {
        Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => Outcome::ReadOnly,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            // The client library's and the server's English texts (their case varies
            // between MySQL's and MariaDB's libraries).
            let message = info.message().to_ascii_lowercase();
            // 1290 ER_OPTION_PREVENTS_STATEMENT with --read-only (or super-read-only).
            if message.contains("--read-only") || message.contains("--super-read-only") {
                Outcome::ReadOnly
            } else if message.contains("server has gone away")
                || message.contains("lost connection to")
                || message.contains("can't connect to")
                || message.contains("server shutdown in progress")
            {
                Outcome::ConnectionLost
            } else {
                Outcome::Database
            }
        }
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => Outcome::ConnectionLost,
        Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => Outcome::NotSent,
        Error::DatabaseError(..) => Outcome::Database,
        _ => Outcome::Client,
    }
}

#[cfg(test)]
mod tests {
    use super::gtid_count;

    #[test]
    fn gtid_sets_are_counted() {
        assert_eq!(gtid_count(""), Some(0));
        assert_eq!(gtid_count("0-1-123"), Some(123));
        assert_eq!(gtid_count("0-1-123,1-2-45"), Some(168));
        assert_eq!(gtid_count(" 0-2-7 "), Some(7));
        assert_eq!(
            gtid_count("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"),
            Some(5)
        );
        assert_eq!(
            gtid_count("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7-9,\n2174B383-5441-11E8-B90A-C80AA9429562:1-3"),
            Some(11)
        );
        assert_eq!(gtid_count("aaaa:7"), Some(1));
        assert_eq!(gtid_count("aaaa:tag:1-3"), Some(3));
        for bad in ["0-1", "0-1-x", "0-1-2-3", "aaaa:5-1", "aaaa:x-3"] {
            assert_eq!(gtid_count(bad), None, "{bad}");
        }
    }
}
