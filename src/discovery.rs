//! Finding the primary (and the standbys) of a multi-host connection string.
//!
//! One [`Topology`] exists per connection string (and credentials) in the process, shared by
//! every [`MultiHostConnection`](crate::MultiHostConnection) built from it: an r2d2 pool of 20
//! connections probes the hosts once, and after a failure one thread rediscovers while the
//! others wait for its answer.

use std::collections::HashMap;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use diesel::result::ConnectionError;
use rand::seq::SliceRandom;

use crate::connection_string::{ConnectionString, Host, LoadBalanceHosts, TargetSessionAttrs};
use crate::host_connection::{HostConnection, ServerRole};

/// How long to sleep between two discovery rounds while waiting for a new primary.
const ROUND_INTERVAL: Duration = Duration::from_millis(200);

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
    /// Classifies a connection error by the client library's message.
    pub(crate) fn from_connection_error(error: &ConnectionError) -> HostFailure {
        let message = match error {
            ConnectionError::BadConnection(message) => message.as_str(),
            other => return HostFailure::Other(other.to_string()),
        };
        let lower = message.to_ascii_lowercase();
        if lower.contains("connection refused") || lower.contains("no such file or directory") {
            HostFailure::Refused
        } else if lower.contains("timeout expired") || lower.contains("timed out") {
            HostFailure::TimedOut
        } else if lower.contains("authentication failed")
            || lower.contains("no password supplied")
            || lower.contains("password authentication")
        {
            HostFailure::AuthenticationFailed
        } else {
            let line = message
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("connection failed");
            HostFailure::Other(line.to_string())
        }
    }

    fn mismatch(target: TargetSessionAttrs, role: ServerRole) -> HostFailure {
        match (target, role) {
            (TargetSessionAttrs::Standby, _) => HostFailure::NotStandby,
            (_, ServerRole::Standby) => HostFailure::InRecovery,
            (_, ServerRole::ReadOnlyPrimary) => HostFailure::ReadOnly,
            (_, ServerRole::Primary) => HostFailure::ReadWrite,
        }
    }
}

/// No host of a connection string matched its `target_session_attrs`.
///
/// Lists every host and why it was not used. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError {
    target: TargetSessionAttrs,
    hosts: Vec<(Host, HostFailure)>,
    waited: Option<Duration>,
}

impl DiscoveryError {
    /// Each host, with why it was not used, in the order of the connection string.
    pub fn hosts(&self) -> &[(Host, HostFailure)] {
        &self.hosts
    }
    /// The `target_session_attrs` no host matched.
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// Whether a server with `role` is acceptable as the session's primary.
fn matches(target: TargetSessionAttrs, role: ServerRole) -> bool {
    match target {
        TargetSessionAttrs::ReadWrite => role == ServerRole::Primary,
        TargetSessionAttrs::ReadOnly => role != ServerRole::Primary,
        TargetSessionAttrs::Primary => role != ServerRole::Standby,
        TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => {
            role == ServerRole::Standby
        }
        _ => true,
    }
}

/// What the process knows of one host.
#[derive(Debug, Clone, Default)]
struct HostState {
    role: Option<ServerRole>,
    /// A probe of this host is running.
    probing: bool,
    /// The host failed; leave it alone until then.
    down_until: Option<Instant>,
    last_failure: Option<HostFailure>,
}

#[derive(Debug)]
struct State {
    primary: Option<usize>,
    /// Bumped whenever the primary changes or is found gone.
    epoch: u64,
    ever_had_primary: bool,
    discovering: bool,
    /// Completed discoveries.
    generation: u64,
    last_failure: Option<DiscoveryError>,
    hosts: Vec<HostState>,
}

/// A connection to the primary, as handed out by [`Topology::connect_primary`].
pub(crate) struct Connected<C> {
    pub(crate) conn: C,
    pub(crate) host: usize,
    pub(crate) epoch: u64,
}

/// What one host looks like from here, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStatus {
    /// The host.
    pub host: Host,
    /// Its role when last seen, if known.
    pub role: Option<ServerRole>,
    /// Whether it is the primary in use.
    pub is_current_primary: bool,
    /// Why it last failed, if it is being left alone.
    pub failure: Option<HostFailure>,
    /// A probe of it is still running (a host that accepts TCP but does not answer stays
    /// here until its `connect_timeout`).
    pub probing: bool,
}

/// The shared discovery state of one connection string.
pub(crate) struct Topology {
    pub(crate) cs: ConnectionString,
    prober: Prober,
    state: Mutex<State>,
    changed: Condvar,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("cs", &self.cs)
            .field("state", &*self.lock())
            .finish()
    }
}

type Registry = Mutex<HashMap<String, Weak<Topology>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Topology {
    /// The process-wide topology for `cs`, created on first use.
    pub(crate) fn shared<C: HostConnection>(cs: &ConnectionString) -> Arc<Topology> {
        let key = format!("{}\u{0}{}", std::any::type_name::<C>(), cs.discovery_key());
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let topology = Arc::new(Topology {
            cs: cs.clone(),
            prober: probe_role::<C>,
            state: Mutex::new(State {
                primary: None,
                epoch: 0,
                ever_had_primary: false,
                discovering: false,
                generation: 0,
                last_failure: None,
                hosts: vec![HostState::default(); cs.hosts().len()],
            }),
            changed: Condvar::new(),
        });
        map.insert(key, Arc::downgrade(&topology));
        topology
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn host(&self, index: usize) -> &Host {
        &self.cs.hosts()[index]
    }

    /// Whether a primary was known before and is now lost: establishing then waits up to
    /// `failover_timeout` for a new one.
    pub(crate) fn in_failover(&self) -> bool {
        let state = self.lock();
        state.ever_had_primary && state.primary.is_none()
    }

    /// Marks the primary of `epoch` as gone (once, whoever notices first).
    pub(crate) fn mark_primary_lost(&self, epoch: u64) {
        let mut state = self.lock();
        if state.epoch == epoch && state.primary.is_some() {
            tracing::warn!(
                target: "diesel_multidb::discovery",
                host = %self.cs.hosts()[state.primary.unwrap_or(0)],
                "primary lost; the next statement rediscovers"
            );
            if let Some(index) = state.primary.take() {
                state.hosts[index].role = None;
            }
            state.epoch += 1;
        }
    }

    /// Leaves a host alone for `replica_retry_interval`.
    pub(crate) fn mark_down(&self, index: usize, failure: HostFailure) {
        let mut state = self.lock();
        let host = &mut state.hosts[index];
        host.role = None;
        host.down_until = Some(Instant::now() + self.cs.replica_retry_interval());
        tracing::warn!(
            target: "diesel_multidb::discovery",
            host = %self.cs.hosts()[index],
            %failure,
            "host left alone for {:?}", self.cs.replica_retry_interval()
        );
        host.last_failure = Some(failure);
    }

    fn record(&self, index: usize, outcome: Result<ServerRole, &HostFailure>) {
        let mut state = self.lock();
        let host = &mut state.hosts[index];
        host.probing = false;
        match outcome {
            Ok(role) => {
                host.role = Some(role);
                host.down_until = None;
                host.last_failure = None;
            }
            Err(failure) => {
                host.role = None;
                host.down_until = Some(Instant::now() + self.cs.replica_retry_interval());
                host.last_failure = Some(failure.clone());
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Records the role seen on a freshly opened connection.
    pub(crate) fn record_role(&self, index: usize, role: ServerRole) {
        self.record(index, Ok(role));
    }

    /// What is known of every host.
    pub(crate) fn status(&self) -> Vec<HostStatus> {
        let state = self.lock();
        let now = Instant::now();
        self.cs
            .hosts()
            .iter()
            .zip(&state.hosts)
            .enumerate()
            .map(|(i, (host, s))| HostStatus {
                host: host.clone(),
                role: s.role,
                is_current_primary: state.primary == Some(i),
                failure: s
                    .down_until
                    .filter(|until| *until > now)
                    .and(s.last_failure.clone()),
                probing: s.probing,
            })
            .collect()
    }

    /// Opens a connection to the primary, discovering it first when it is not known.
    ///
    /// With `wait`, rounds of discovery are repeated until `failover_timeout` has passed
    /// (a standby may be being promoted); without, one round is made.
    pub(crate) fn connect_primary<C: HostConnection>(
        self: &Arc<Self>,
        wait: bool,
    ) -> Result<Connected<C>, DiscoveryError> {
        let target = self.cs.target_session_attrs();
        let deadline = wait.then(|| Instant::now() + self.cs.failover_timeout());
        loop {
            let mut state = self.lock();
            if let Some(index) = state.primary {
                let epoch = state.epoch;
                state.hosts[index].probing = true;
                drop(state);
                match probe::<C>(&self.cs, index) {
                    Ok((conn, role)) if matches(target, role) => {
                        self.record(index, Ok(role));
                        return Ok(Connected {
                            conn,
                            host: index,
                            epoch,
                        });
                    }
                    Ok((_, role)) => self.record(index, Ok(role)),
                    Err(failure) => self.record(index, Err(&failure)),
                }
                self.mark_primary_lost(epoch);
                continue;
            }
            if state.discovering {
                let generation = state.generation;
                while state.discovering {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.generation > generation && state.primary.is_none() {
                    if let Some(failure) = state.last_failure.clone() {
                        return Err(failure);
                    }
                }
                continue;
            }
            state.discovering = true;
            for host in state.hosts.iter_mut() {
                host.probing = true;
            }
            drop(state);

            let outcome = self.discover::<C>(deadline);

            let mut state = self.lock();
            state.discovering = false;
            state.generation += 1;
            let result = match outcome {
                Ok((index, conn)) => {
                    state.primary = Some(index);
                    state.epoch += 1;
                    state.ever_had_primary = true;
                    state.last_failure = None;
                    tracing::info!(
                        target: "diesel_multidb::discovery",
                        host = %self.cs.hosts()[index],
                        "primary found"
                    );
                    Ok(Connected {
                        conn,
                        host: index,
                        epoch: state.epoch,
                    })
                }
                Err(error) => {
                    state.last_failure = Some(error.clone());
                    Err(error)
                }
            };
            drop(state);
            self.changed.notify_all();
            return result;
        }
    }

    /// Probes every host concurrently, round after round until `deadline`, and returns the
    /// first host that matches `target_session_attrs`.
    fn discover<C: HostConnection>(
        self: &Arc<Self>,
        deadline: Option<Instant>,
    ) -> Result<(usize, C), DiscoveryError> {
        let started = Instant::now();
        loop {
            match self.probe_round::<C>() {
                Ok(found) => return Ok(found),
                Err(hosts) => {
                    let now = Instant::now();
                    if deadline.is_none_or(|d| now + ROUND_INTERVAL >= d) {
                        return Err(DiscoveryError {
                            target: self.cs.target_session_attrs(),
                            hosts,
                            waited: deadline.map(|_| now - started),
                        });
                    }
                    std::thread::sleep(ROUND_INTERVAL);
                    let mut state = self.lock();
                    for host in state.hosts.iter_mut() {
                        host.probing = true;
                    }
                }
            }
        }
    }

    fn probe_round<C: HostConnection>(
        self: &Arc<Self>,
    ) -> Result<(usize, C), Vec<(Host, HostFailure)>> {
        let target = self.cs.target_session_attrs();
        let count = self.cs.hosts().len();
        let (tx, rx) = mpsc::channel();
        for index in 0..count {
            let tx = tx.clone();
            let topology = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("diesel-multidb-probe-{index}"))
                .spawn(move || {
                    let outcome = probe::<C>(&topology.cs, index);
                    topology.record(index, outcome.as_ref().map(|(_, role)| *role));
                    // The receiver is gone once another host won: the connection is dropped.
                    let _ = tx.send((index, outcome));
                })
                .expect("spawning a probe thread");
        }
        drop(tx);
        let mut failures: Vec<Option<HostFailure>> = vec![None; count];
        let mut fallback = None;
        for (index, outcome) in rx {
            match outcome {
                Ok((conn, role)) if matches(target, role) => return Ok((index, conn)),
                Ok((conn, role)) => {
                    if target == TargetSessionAttrs::PreferStandby && fallback.is_none() {
                        fallback = Some((index, conn));
                    } else {
                        failures[index] = Some(HostFailure::mismatch(target, role));
                    }
                }
                Err(failure) => failures[index] = Some(failure),
            }
        }
        if let Some(found) = fallback {
            return Ok(found);
        }
        Err(self
            .cs
            .hosts()
            .iter()
            .cloned()
            .zip(failures)
            .map(|(host, f)| (host, f.unwrap_or(HostFailure::Other("not probed".into()))))
            .collect())
    }

    /// The hosts to try for a replica connection, best first: known standbys that are not
    /// being left alone. When none is known yet but probes are running, waits for them.
    pub(crate) fn replica_candidates(self: &Arc<Self>, primary: usize) -> Vec<usize> {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let healthy = |s: &HostState| s.down_until.is_none_or(|until| until <= now);
            let mut candidates: Vec<usize> = (0..state.hosts.len())
                .filter(|&i| i != primary)
                .filter(|&i| {
                    let s = &state.hosts[i];
                    s.role == Some(ServerRole::Standby) && healthy(s)
                })
                .collect();
            if !candidates.is_empty() {
                if self.cs.load_balance_hosts() == LoadBalanceHosts::Random {
                    candidates.shuffle(&mut rand::rng());
                }
                return candidates;
            }
            // Nothing known: hosts that were never probed (or whose pause is over) are
            // probed in the background, and running probes are waited for.
            let unknown: Vec<usize> = (0..state.hosts.len())
                .filter(|&i| i != primary)
                .filter(|&i| {
                    let s = &state.hosts[i];
                    s.role.is_none() && !s.probing && healthy(s)
                })
                .collect();
            for &i in &unknown {
                state.hosts[i].probing = true;
            }
            if !unknown.is_empty() {
                drop(state);
                for index in unknown {
                    self.spawn_role_probe(index);
                }
                state = self.lock();
            }
            let probing = state
                .hosts
                .iter()
                .enumerate()
                .any(|(i, s)| i != primary && s.probing);
            if !probing {
                return Vec::new();
            }
            state = self
                .changed
                .wait_timeout(
                    state,
                    self.cs.connect_timeout().min(Duration::from_secs(60)),
                )
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn spawn_role_probe(self: &Arc<Self>, index: usize) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("diesel-multidb-probe-{index}"))
            .spawn(move || {
                let outcome = (me.prober)(&me.cs, index);
                me.record(index, outcome.as_ref().copied());
            });
        if spawned.is_err() {
            self.record(
                index,
                Err(&HostFailure::Other("could not start a probe".into())),
            );
        }
    }
}

/// A backend's role probe with the connection type erased, for background probes.
type Prober = fn(&ConnectionString, usize) -> Result<ServerRole, HostFailure>;

fn probe_role<C: HostConnection>(
    cs: &ConnectionString,
    index: usize,
) -> Result<ServerRole, HostFailure> {
    probe::<C>(cs, index).map(|(_, role)| role)
}

/// Opens a connection to one host and asks its role.
pub(crate) fn probe<C: HostConnection>(
    cs: &ConnectionString,
    index: usize,
) -> Result<(C, ServerRole), HostFailure> {
    let host = &cs.hosts()[index];
    let mut conn = C::connect_host(cs, host).map_err(|e| HostFailure::from_connection_error(&e))?;
    let role = conn
        .probe_role()
        .map_err(|e| HostFailure::Other(format!("role probe failed: {e}")))?;
    Ok((conn, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(message: &str) -> ConnectionError {
        ConnectionError::BadConnection(message.to_string())
    }

    #[test]
    fn libpq_messages_are_classified() {
        let refused = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n";
        assert_eq!(
            HostFailure::from_connection_error(&bad(refused)),
            HostFailure::Refused
        );
        assert_eq!(
            HostFailure::from_connection_error(&bad("timeout expired\n")),
            HostFailure::TimedOut
        );
        assert_eq!(
            HostFailure::from_connection_error(&bad(
                "connection to server at \"h\" (1.2.3.4), port 5432 failed: FATAL:  password authentication failed for user \"app\"\n"
            )),
            HostFailure::AuthenticationFailed
        );
        assert_eq!(
            HostFailure::from_connection_error(&bad(
                "\n  FATAL:  database \"nope\" does not exist\n"
            )),
            HostFailure::Other("FATAL:  database \"nope\" does not exist".into())
        );
    }

    #[test]
    fn target_session_attrs_match_libpq() {
        use ServerRole::*;
        use TargetSessionAttrs as T;
        let table = [
            (T::Any, [true, true, true]),
            (T::ReadWrite, [true, false, false]),
            (T::Primary, [true, true, false]),
            (T::ReadOnly, [false, true, true]),
            (T::Standby, [false, false, true]),
            (T::PreferStandby, [false, false, true]),
        ];
        for (target, expected) in table {
            let got = [Primary, ReadOnlyPrimary, Standby].map(|role| matches(target, role));
            assert_eq!(got, expected, "{target}");
        }
        assert_eq!(
            HostFailure::mismatch(T::ReadWrite, Standby),
            HostFailure::InRecovery
        );
        assert_eq!(
            HostFailure::mismatch(T::ReadWrite, ReadOnlyPrimary),
            HostFailure::ReadOnly
        );
        assert_eq!(
            HostFailure::mismatch(T::Standby, Primary),
            HostFailure::NotStandby
        );
        assert_eq!(
            HostFailure::mismatch(T::ReadOnly, Primary),
            HostFailure::ReadWrite
        );
    }

    #[test]
    fn the_error_lists_every_host_without_the_password() {
        let cs: ConnectionString = "postgres://u:S3cret@a:1,b:2,[::1]:3/db".parse().unwrap();
        let error = DiscoveryError {
            target: cs.target_session_attrs(),
            hosts: cs
                .hosts()
                .iter()
                .cloned()
                .zip([
                    HostFailure::Refused,
                    HostFailure::TimedOut,
                    HostFailure::InRecovery,
                ])
                .collect(),
            waited: None,
        };
        assert_eq!(
            error.to_string(),
            "no host matched target_session_attrs=read-write: a:1 (connection refused), \
             b:2 (timed out), [::1]:3 (in recovery)"
        );
    }
}
