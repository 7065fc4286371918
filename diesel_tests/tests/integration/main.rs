//! Integration tests against real servers.

mod cluster;
mod cluster_smoke;
mod multihost;
mod multihost_discovery;
mod multihost_failover;
mod multihost_routing;
