//! Throw-away database clusters for tests and examples, started from the server binaries
//! installed on the machine, on free 127.0.0.1 ports, without Docker.
//!
//! [`PgCluster::start(2)`](PgCluster::start) gives a PostgreSQL primary with two streaming
//! standbys in about a second; dropping it (or the process dying in any way) stops the
//! servers and removes their files.
//!
//! Also: [`PgCluster::start_with_netns`] puts chosen nodes in network
//! namespaces whose link [`NetNs::cut`] makes drop every packet silently, and
//! [`AutoFailover`] runs a real HA manager (pg_auto_failover: monitor, primary,
//! secondary) whose switchovers and failovers the tests can trigger.
//!
//! ```no_run
//! use diesel_multidb_testkit::PgCluster;
//!
//! let cluster = PgCluster::start(2);
//! let url = cluster.url(&cluster.default_ports(), "");
//! // ... connect a MultiHostConnection<PgConnection> to `url` ...
//! cluster.kill(cluster.primary_port());
//! cluster.promote(cluster.standby_ports()[0]);
//! ```
//!
//! [`MariaDbCluster::start(2)`](MariaDbCluster::start) gives a MariaDB source with two GTID
//! replicas in about half a second (plus about half a second once per process for the
//! template data directory), with the same cleanup guarantees.
//!
//! ```no_run
//! use diesel_multidb_testkit::MariaDbCluster;
//!
//! let cluster = MariaDbCluster::start(2);
//! // mysql://app:app-secret@127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/test
//! let url = cluster.url(&cluster.default_ports(), "");
//! cluster.query_one(cluster.source_port(), "CREATE TABLE t (v INT)");
//! cluster.wait_for_replication();
//! cluster.kill(cluster.source_port());
//! cluster.promote(cluster.replica_ports()[0]);
//! ```

mod auto_failover;
mod common;
mod mariadb;
mod netns;
mod pg;
mod procdir;
mod process;

pub use auto_failover::{AfNodeState, AutoFailover};
pub use mariadb::MariaDbCluster;
pub use netns::NetNs;
pub use pg::*;
pub use process::{dead_port, Blackhole};
