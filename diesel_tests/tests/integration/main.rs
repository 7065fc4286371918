//! Integration tests against real servers.

mod cluster;
