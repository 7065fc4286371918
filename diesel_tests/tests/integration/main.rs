//! Integration tests against real servers.

mod cluster;
mod cluster_smoke;
mod multihost;
mod multihost_discovery;
mod multihost_failover;
mod multihost_routing;

mod common;
mod pg;

mod cli;
mod migrations;
mod registry;
mod routers_db;
mod unit_of_work;
