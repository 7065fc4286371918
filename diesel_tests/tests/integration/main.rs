//! Integration tests against real servers.

mod async_consistency;
mod async_failover;
mod async_mysql;
mod async_pools;
mod async_registry;
mod async_routing;
mod cluster_smoke;
mod consistency;
mod failover_chaos;
mod failover_correctness;
mod failover_ha;
mod failover_netns;
mod ha_smoke;
mod mariadb_smoke;
mod multihost;
mod multihost_discovery;
mod multihost_failover;
mod multihost_routing;
mod mysql;
mod netns_smoke;

mod common;
mod pg;
mod reaper;

mod cli;
mod migrations;
mod mysql_registry;
mod registry;
mod routers_db;
mod unit_of_work;

/// Shows the crate's tracing events when `RUST_LOG` is set
/// (`RUST_LOG=diesel_multidb=debug cargo test ...`), in the test's captured output.
pub(crate) fn trace() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}
