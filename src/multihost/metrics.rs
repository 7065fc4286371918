//! Counters of the multi-host connection through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`; without it every function here does nothing):
//!
//! | counter | labels | counts |
//! |---|---|---|
//! | `diesel_multidb_statements_total` | `host`, `role` (`primary`, `standby`) | statements that ran, by host |
//! | `diesel_multidb_reruns_total` | `host`, `reason` (`standby_error`, `not_sent`, `demoted`, `connection_lost`) | statements run a second time, by the host of the first attempt |
//! | `diesel_multidb_primary_changes_total` | `host` | primaries found (the first one, and one per failover), by the new primary |
//! | `diesel_multidb_lost_total` | `what` (`transaction`, `session`) | transactions and session states lost with their primary |
// Without the feature the arguments are unused.
#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::sync::Arc;

/// A host's label, shared rather than copied for each statement.
pub(crate) type HostLabel = Arc<str>;

#[cfg(feature = "metrics")]
fn label(host: &HostLabel) -> metrics::SharedString {
    metrics::SharedString::from_shared(Arc::clone(host))
}

/// A statement ran on `host`.
pub(crate) fn statement(host: &HostLabel, standby: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "diesel_multidb_statements_total",
        "host" => label(host),
        "role" => if standby { "standby" } else { "primary" }
    )
    .increment(1);
}

/// A statement first tried on `host` runs again.
pub(crate) fn rerun(host: &HostLabel, reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("diesel_multidb_reruns_total", "host" => label(host), "reason" => reason)
        .increment(1);
}

/// `host` became the primary.
pub(crate) fn primary_changed(host: &HostLabel) {
    #[cfg(feature = "metrics")]
    metrics::counter!("diesel_multidb_primary_changes_total", "host" => label(host)).increment(1);
}

/// A transaction or a session's state was lost with its primary.
pub(crate) fn lost(what: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("diesel_multidb_lost_total", "what" => what).increment(1);
}
