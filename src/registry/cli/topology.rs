//! What is behind an alias URL: for a PostgreSQL alias, what the multi-host topology
//! monitor knows of each host (the same probe the connections use: role, timeline,
//! position, lag, why a host serves no reads); for SQLite, the file.
//!
//! Used by the CLI's `topology` command. One function, [`describe`], with a plain result.
// Without PostgreSQL support no host is ever probed.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use crate::registry::alias_url::{Connect, Target};
use crate::HostStatus;

/// What is behind one alias.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AliasServers {
    /// An embedded SQLite database: the path, and whether the file exists yet.
    Embedded { path: String, exists: bool },
    /// Server hosts, in the order of the URL, as the topology monitor sees them.
    Hosts(Vec<HostStatus>),
    /// The backend is not compiled in.
    #[cfg_attr(all(feature = "postgres", feature = "mysql"), allow(dead_code))]
    Unsupported(String),
}

impl AliasServers {
    /// Whether the alias has hosts and none answered.
    pub(crate) fn all_down(&self) -> bool {
        matches!(self, AliasServers::Hosts(hosts) if hosts.iter().all(|h| h.role.is_none()))
    }
}

/// Probes every host of the alias's connection string at once (through the process's
/// topology monitor) or describes the SQLite file.
pub(crate) fn describe(target: &Target) -> AliasServers {
    match &target.connect {
        Connect::Sqlite(path) => {
            let file = path.strip_prefix("file:").unwrap_or(path);
            let file = file.split('?').next().unwrap_or(file);
            let exists = file == ":memory:" || std::path::Path::new(file).exists();
            AliasServers::Embedded {
                path: path.clone(),
                exists,
            }
        }
        Connect::MultiHost(cs) => match cs.backend() {
            crate::BackendKind::Mysql => describe_mysql(cs),
            _ => describe_postgres(cs),
        },
    }
}

/// How long a probe waits: a host that accepts TCP and never answers is shown as such
/// after this long.
#[allow(dead_code)]
fn probe_wait(cs: &crate::ConnectionString) -> std::time::Duration {
    cs.connect_timeout().min(std::time::Duration::from_secs(10)) + std::time::Duration::from_secs(1)
}

#[cfg(feature = "postgres")]
fn describe_postgres(cs: &crate::ConnectionString) -> AliasServers {
    AliasServers::Hosts(crate::MultiHostConnection::<diesel::PgConnection>::probe(
        cs,
        probe_wait(cs),
    ))
}

#[cfg(not(feature = "postgres"))]
fn describe_postgres(_cs: &crate::ConnectionString) -> AliasServers {
    AliasServers::Unsupported("postgres support is not compiled in".into())
}

#[cfg(feature = "mysql")]
fn describe_mysql(cs: &crate::ConnectionString) -> AliasServers {
    AliasServers::Hosts(
        crate::MultiHostConnection::<diesel::MysqlConnection>::probe(cs, probe_wait(cs)),
    )
}

#[cfg(not(feature = "mysql"))]
fn describe_mysql(_cs: &crate::ConnectionString) -> AliasServers {
    AliasServers::Unsupported("mysql support is not compiled in".into())
}

/// One line per host: `host:port  state  details`.
pub(crate) fn host_line(h: &HostStatus) -> String {
    let address = h.host.to_string();
    let Some(role) = h.role else {
        let why = match (&h.failure, h.probing) {
            (Some(failure), _) => format!("unreachable  {failure}"),
            (None, true) => "not answering (probe still running)".to_owned(),
            (None, false) => "not probed".to_owned(),
        };
        return format!("  {address:<24} {why}");
    };
    let mut line = format!("  {address:<24} reachable    {role}");
    if h.is_current_primary && role.is_writable() {
        line.push_str(" (writes)");
    }
    if role.is_standby() {
        match (h.lag, h.last_replayed_commit) {
            (Some(lag), _) => line.push_str(&format!("  lag {:.3}s", lag.as_secs_f64())),
            // No primary in this URL to compare with: the age of the last replayed commit
            // (it grows while the primary is idle).
            (None, Some(at)) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                line.push_str(&format!(
                    "  lag unknown (last replayed commit {:.1}s ago)",
                    (now - at).max(0.0)
                ));
            }
            (None, None) => line.push_str("  lag unknown"),
        }
    }
    if let Some(timeline) = h.timeline {
        line.push_str(&format!("  timeline {timeline}"));
    }
    if let Some(position) = &h.position {
        line.push_str(&format!("  at {position}"));
    }
    if let Some(seen) = h.last_seen {
        line.push_str(&format!("  seen {:.1}s ago", seen.as_secs_f64()));
    }
    if let Some(excluded) = &h.excluded {
        if role.is_standby() {
            line.push_str(&format!("  no reads: {excluded}"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        crate::registry::alias_url::parse(url).unwrap()
    }

    #[test]
    fn sqlite_is_embedded() {
        assert_eq!(
            describe(&target("sqlite://:memory:")),
            AliasServers::Embedded {
                path: ":memory:".into(),
                exists: true
            }
        );
        let t = describe(&target("sqlite:///nonexistent/dir/x.sqlite3"));
        assert_eq!(
            t,
            AliasServers::Embedded {
                path: "/nonexistent/dir/x.sqlite3".into(),
                exists: false
            }
        );
        assert!(!t.all_down());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn an_unreachable_host_is_reported_not_fatal() {
        // Port 1 on loopback: nothing listens there.
        let t = describe(&target("postgres://u:secret@127.0.0.1:1/db"));
        assert!(t.all_down());
        let AliasServers::Hosts(hosts) = t else {
            panic!("hosts expected")
        };
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host.to_string(), "127.0.0.1:1");
        let line = host_line(&hosts[0]);
        assert!(line.contains("unreachable  connection refused"), "{line}");
        assert!(!line.contains("secret"), "{line}");
    }
}
