//! The errors the connection returns without asking a server.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

use crate::multihost::core::Refusal;
use crate::multihost::topology::{fmt_timeline, DiscoveryError};
use crate::multihost::url::ConnectionString;

/// A refusal or failure of the routing layer, shown through Diesel's
/// [`DatabaseErrorInformation`].
#[derive(Debug)]
struct RoutingError {
    message: String,
    hint: Option<&'static str>,
}

impl DatabaseErrorInformation for RoutingError {
    fn message(&self) -> &str {
        &self.message
    }
    fn details(&self) -> Option<&str> {
        None
    }
    fn hint(&self) -> Option<&str> {
        self.hint
    }
    fn table_name(&self) -> Option<&str> {
        None
    }
    fn column_name(&self) -> Option<&str> {
        None
    }
    fn constraint_name(&self) -> Option<&str> {
        None
    }
    fn statement_position(&self) -> Option<i32> {
        None
    }
}

/// The error a refused statement returns.
///
/// A lost transaction or session is [`DatabaseErrorKind::ClosedConnection`] (what a plain
/// connection whose server is gone returns); split brain is
/// [`DatabaseErrorKind::Unknown`].
pub(crate) fn refusal(cs: &ConnectionString, refusal: Refusal) -> Error {
    let host = |i: usize| cs.hosts()[i].to_string();
    let (kind, message, hint) = match refusal {
        Refusal::TransactionLost {
            host: h,
            committing: false,
        } => (
            DatabaseErrorKind::ClosedConnection,
            format!(
                "the connection to the primary {} was lost during this transaction, which was \
                 not committed",
                host(h)
            ),
            Some("roll the transaction back (or return an error from the transaction closure) and run it again"),
        ),
        Refusal::TransactionLost {
            host: h,
            committing: true,
        } => (
            DatabaseErrorKind::ClosedConnection,
            format!(
                "the connection to the primary {} was lost during COMMIT: the transaction's \
                 outcome is unknown",
                host(h)
            ),
            Some("check on the primary whether its writes are there before running it again"),
        ),
        Refusal::SessionLost { host: h } => (
            DatabaseErrorKind::ClosedConnection,
            format!(
                "the session state (SET, temporary tables, advisory locks, prepared statements) \
                 lived on {}, which was lost; the connection goes on in a new session without it",
                host(h)
            ),
            Some("set the session state again, or give per-session settings in the URL's `options`"),
        ),
        Refusal::SplitBrain((a, ta), (b, tb)) => (
            DatabaseErrorKind::Unknown,
            format!(
                "split brain: two writable hosts, {} ({}) and {} ({}); writes are refused until \
                 one is stopped or demoted",
                host(a),
                fmt_timeline(ta),
                host(b),
                fmt_timeline(tb)
            ),
            None,
        ),
    };
    Error::DatabaseError(kind, Box::new(RoutingError { message, hint }))
}

/// No primary could be found for a statement that needs one.
pub(crate) fn no_primary(error: DiscoveryError) -> Error {
    let kind = if error.is_split_brain() {
        DatabaseErrorKind::Unknown
    } else {
        DatabaseErrorKind::ClosedConnection
    };
    Error::DatabaseError(
        kind,
        Box::new(RoutingError {
            message: error.to_string(),
            hint: None,
        }),
    )
}
