//! Probing the servers behind an alias URL: each host, reachable or not, its role and lag.
//!
//! Used by the CLI's `topology` command. One function, [`describe`], with a plain result.
// Without PostgreSQL support no host is ever probed.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::fmt;
use std::time::Duration;

use crate::backend_url::{self, BackendKind};

/// The role a reachable PostgreSQL server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `pg_is_in_recovery()` is false.
    Primary,
    /// `pg_is_in_recovery()` is true (a hot standby).
    Standby,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        })
    }
}

/// What one host answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostReport {
    /// `host:port` (never a password).
    pub(crate) address: String,
    /// The role and the lag, or why the host could not be reached or asked.
    pub(crate) state: Result<HostState, String>,
}

/// A reachable host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HostState {
    pub(crate) role: Role,
    /// On a standby: `now() - pg_last_xact_replay_timestamp()`, the age of the last replayed
    /// transaction (it grows while the primary is idle; `None` before any replay).
    pub(crate) lag: Option<Duration>,
}

/// What is behind one alias URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Topology {
    /// An embedded SQLite database: the path, and whether the file exists yet.
    Embedded { path: String, exists: bool },
    /// Server hosts, in the order of the URL.
    Hosts(Vec<HostReport>),
    /// The URL itself is unusable (the reason never quotes it).
    Invalid(String),
}

/// Probes every host of `url` (each PostgreSQL host of the connection string in turn, with
/// its own connection) or describes the SQLite file.
pub(crate) fn describe(url: &str) -> Topology {
    let target = match backend_url::parse(url) {
        Ok(t) => t,
        Err(reason) => return Topology::Invalid(reason),
    };
    match target.kind {
        BackendKind::Sqlite => {
            let path = target.connect.clone();
            let file = path.strip_prefix("file:").unwrap_or(&path);
            let file = file.split('?').next().unwrap_or(file);
            let exists = file == ":memory:" || std::path::Path::new(file).exists();
            Topology::Embedded { path, exists }
        }
        BackendKind::Postgres => describe_postgres(&target.connect),
    }
}

#[cfg(feature = "postgres")]
fn describe_postgres(url: &str) -> Topology {
    use diesel::prelude::*;

    #[derive(QueryableByName)]
    struct Probe {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        standby: bool,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
        lag: Option<f64>,
    }

    let cs: crate::ConnectionString = match url.parse() {
        Ok(cs) => cs,
        Err(e) => return Topology::Invalid(crate::redact::redact(&e.to_string())),
    };
    let hosts = cs
        .hosts()
        .iter()
        .map(|host| {
            let state = diesel::PgConnection::establish(&cs.host_conninfo(host))
                .map_err(|e| crate::redact::redact(e.to_string().trim()))
                .and_then(|mut conn| {
                    diesel::sql_query(
                        "SELECT pg_is_in_recovery() AS standby, \
                         CASE WHEN pg_is_in_recovery() THEN \
                         EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))::float8 END AS lag",
                    )
                    .get_result::<Probe>(&mut conn)
                    .map_err(|e| e.to_string())
                })
                .map(|p| HostState {
                    role: if p.standby { Role::Standby } else { Role::Primary },
                    lag: p.lag.map(|s| Duration::from_secs_f64(s.max(0.0))),
                });
            HostReport {
                address: host.to_string(),
                state,
            }
        })
        .collect();
    Topology::Hosts(hosts)
}

#[cfg(not(feature = "postgres"))]
fn describe_postgres(_url: &str) -> Topology {
    Topology::Invalid("postgres support is not compiled in".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_embedded() {
        assert_eq!(
            describe("sqlite://:memory:"),
            Topology::Embedded {
                path: ":memory:".into(),
                exists: true
            }
        );
        let t = describe("sqlite:///nonexistent/dir/x.sqlite3");
        assert_eq!(
            t,
            Topology::Embedded {
                path: "/nonexistent/dir/x.sqlite3".into(),
                exists: false
            }
        );
    }

    #[test]
    fn an_unreachable_host_is_reported_not_fatal() {
        // Port 1 on loopback: nothing listens there.
        let Topology::Hosts(hosts) = describe("postgres://u:secret@127.0.0.1:1/db") else {
            panic!("hosts expected")
        };
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].address, "127.0.0.1:1");
        let err = hosts[0].state.clone().unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn invalid_urls() {
        assert!(matches!(describe("mysql://x/y"), Topology::Invalid(_)));
    }
}
