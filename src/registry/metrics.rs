//! Counters through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`; without
//! it every function here does nothing). Install any `metrics` recorder (Prometheus,
//! StatsD, ...) to collect them:
//!
//! | counter | labels | counts |
//! |---|---|---|
//! | `diesel_multidb_routed_total` | `alias`, `action` (`read`, `write`) | connections routed for reading or writing a model |
//! | `diesel_multidb_checkouts_total` | `alias`, `outcome` (`ok`, `timeout`, `failed`) | checkouts from an alias's pool |
//! | `diesel_multidb_checkouts_waited_total` | `alias` | checkouts that found no idle connection and waited |
//! | `diesel_multidb_connection_attempts_total` | `alias`, `outcome` (`ok`, `failed`) | new connections the pool tried to open |
//! | `diesel_multidb_migrations_total` | `alias`, `app`, `direction` (`forward`, `backward`) | migrations applied or reverted |
// Without the feature the arguments are unused.
#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

/// A model's connection was routed to `alias` for `action` (`read` or `write`).
pub(crate) fn routed(alias: &str, action: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("diesel_multidb_routed_total", "alias" => alias.to_owned(), "action" => action)
        .increment(1);
}

/// A checkout of `alias` ended with `outcome`, after waiting or not.
pub(crate) fn checkout(alias: &str, outcome: &'static str, waited: bool) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("diesel_multidb_checkouts_total", "alias" => alias.to_owned(), "outcome" => outcome)
            .increment(1);
        if waited {
            metrics::counter!("diesel_multidb_checkouts_waited_total", "alias" => alias.to_owned())
                .increment(1);
        }
    }
}

/// The pool of `alias` tried to open a connection.
pub(crate) fn connection_attempt(alias: &str, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "diesel_multidb_connection_attempts_total",
        "alias" => alias.to_owned(),
        "outcome" => if ok { "ok" } else { "failed" }
    )
    .increment(1);
}

/// A migration of `app` was applied (`forward`) or reverted (`backward`) on `alias`.
pub(crate) fn migration(alias: &str, app: &str, direction: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "diesel_multidb_migrations_total",
        "alias" => alias.to_owned(),
        "app" => app.to_owned(),
        "direction" => direction
    )
    .increment(1);
}
