//! Integration tests against real servers.

mod cluster;
mod cluster_smoke;

mod common;
mod pg;

mod cli;
mod migrations;
mod registry;
mod routers_db;
mod unit_of_work;
