//! Integration tests against real servers.

mod cluster;
mod cluster_smoke;
