//! What the process knows of the hosts of a multi-host connection string.
//!
//! - [`state`]: the knowledge itself and the rules drawn from it (no I/O);
//! - [`shared`]: the sync shell: one topology per connection string per process, its host
//!   workers (discovery and the monitor), and waiting for a primary.

use std::fmt;
use std::time::Duration;

use crate::multihost::url::{Host, TargetSessionAttrs};

pub(crate) mod shared;
pub(crate) mod state;
#[cfg(feature = "async")]
pub(crate) mod tasks;
pub(crate) mod threads;

pub use state::Exclusion;

/// The role a server plays in its cluster, as seen by a session on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerRole {
    /// Not in recovery and its sessions accept writes.
    Primary,
    /// Not in recovery, but its sessions are read-only
    /// (`default_transaction_read_only = on`).
    ReadOnlyPrimary,
    /// In recovery (a hot standby).
    Standby,
}

impl ServerRole {
    /// Whether sessions on this server accept writes.
    pub fn is_writable(self) -> bool {
        self == ServerRole::Primary
    }
    /// Whether this server is in recovery.
    pub fn is_standby(self) -> bool {
        self == ServerRole::Standby
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerRole::Primary => "primary",
            ServerRole::ReadOnlyPrimary => "read-only primary",
            ServerRole::Standby => "standby",
        })
    }
}

/// Why one host was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostFailure {
    /// Nothing listens on the host's port.
    Refused,
    /// No answer within `connect_timeout`.
    TimedOut,
    /// The server rejected the credentials.
    AuthenticationFailed,
    /// The server is a standby, and a primary was required.
    InRecovery,
    /// The server's sessions are read-only (`default_transaction_read_only`), and a writable
    /// session was required.
    ReadOnly,
    /// The server accepts writes, and a read-only session was required.
    ReadWrite,
    /// The server is not a standby, and a standby was required.
    NotStandby,
    /// Any other error, as reported by the client library (it never contains the password).
    Other(String),
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFailure::Refused => f.write_str("connection refused"),
            HostFailure::TimedOut => f.write_str("timed out"),
            HostFailure::AuthenticationFailed => f.write_str("authentication failed"),
            HostFailure::InRecovery => f.write_str("in recovery"),
            HostFailure::ReadOnly => f.write_str("read-only"),
            HostFailure::ReadWrite => f.write_str("read-write"),
            HostFailure::NotStandby => f.write_str("not a standby"),
            HostFailure::Other(message) => f.write_str(message),
        }
    }
}

impl HostFailure {
    /// Why a server with `role` does not match `target`.
    pub(crate) fn mismatch(target: TargetSessionAttrs, role: ServerRole) -> HostFailure {
        match (target, role) {
            (TargetSessionAttrs::Standby, _) => HostFailure::NotStandby,
            (_, ServerRole::Standby) => HostFailure::InRecovery,
            (_, ServerRole::ReadOnlyPrimary) => HostFailure::ReadOnly,
            (_, ServerRole::Primary) => HostFailure::ReadWrite,
        }
    }
}

/// No host of a connection string can serve as its primary: none matched its
/// `target_session_attrs`, or two hosts are writable at once.
///
/// Lists every host and why it was not used. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError {
    pub(crate) target: TargetSessionAttrs,
    pub(crate) hosts: Vec<(Host, HostFailure)>,
    pub(crate) waited: Option<Duration>,
    /// Two writable hosts, with their timelines.
    pub(crate) split_brain: Option<Box<TwoWritable>>,
}

/// Two writable hosts (split brain), each with its timeline.
pub(crate) type TwoWritable = ((Host, Option<u32>), (Host, Option<u32>));

impl DiscoveryError {
    /// Each host, with why it was not used, in the order of the connection string.
    pub fn hosts(&self) -> &[(Host, HostFailure)] {
        &self.hosts
    }
    /// The `target_session_attrs` no host matched.
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target
    }
    /// Whether two hosts were writable at once (split brain): writes are refused until one
    /// of them is stopped or demoted.
    pub fn is_split_brain(&self) -> bool {
        self.split_brain.is_some()
    }
    /// Whether retrying cannot help: every host refused this client for a reason that does
    /// not go away by itself (authentication failed). A pool should report such an error at
    /// once instead of retrying until its timeout.
    pub fn is_permanent(&self) -> bool {
        !self.hosts.is_empty()
            && self
                .hosts
                .iter()
                .all(|(_, failure)| matches!(failure, HostFailure::AuthenticationFailed))
    }
}

pub(crate) fn fmt_timeline(timeline: Option<u32>) -> String {
    timeline.map_or_else(|| "timeline unknown".into(), |t| format!("timeline {t}"))
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pair) = &self.split_brain {
            let ((a, ta), (b, tb)) = &**pair;
            return write!(
                f,
                "split brain: two writable hosts, {a} ({}) and {b} ({}); writes are refused until one is stopped or demoted",
                fmt_timeline(*ta),
                fmt_timeline(*tb)
            );
        }
        write!(f, "no host matched target_session_attrs={}", self.target)?;
        if let Some(waited) = self.waited {
            write!(f, " within {:.1}s", waited.as_secs_f64())?;
        }
        f.write_str(": ")?;
        for (i, (host, failure)) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{host} ({failure})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DiscoveryError {}

/// What the process knows of one host, as [`MultiHostConnection::topology`] reports it.
///
/// [`MultiHostConnection::topology`]: crate::MultiHostConnection::topology
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HostStatus {
    /// The host.
    pub host: Host,
    /// Its role when last seen, if it answered its last probe.
    pub role: Option<ServerRole>,
    /// Whether it is the primary writes go to.
    pub is_current_primary: bool,
    /// Its timeline, when the server tells it (a standby tells it only to a role that may
    /// read `pg_stat_wal_receiver`, such as members of `pg_monitor`).
    pub timeline: Option<u32>,
    /// Its WAL position as the server writes it: the insert position of a primary, the
    /// replay position of a standby.
    pub position: Option<String>,
    /// A standby's lag behind the primary (see the crate docs for how it is measured).
    pub lag: Option<Duration>,
    /// A standby's last replayed commit, as the server reports it, in seconds since the Unix
    /// epoch.
    pub last_replayed_commit: Option<f64>,
    /// How long ago it answered a probe.
    pub last_seen: Option<Duration>,
    /// Why it last failed, if it has not answered since.
    pub failure: Option<HostFailure>,
    /// Why it serves no reads now, if it does not (`None` for a standby that does).
    pub excluded: Option<Exclusion>,
    /// A probe of it is running (a host that accepts TCP but does not answer stays here
    /// until its `connect_timeout`).
    pub probing: bool,
    /// Connections of this process that read from it.
    pub readers: usize,
}

#[cfg(test)]
mod tests;
