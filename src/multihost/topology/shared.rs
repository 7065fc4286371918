//! The shared state of one topology, whatever the shell: the knowledge
//! ([`TopologyState`]), the connections attached, the host workers running, the sessions
//! asked for; and each step a shell takes — a worker's next action, what a probe found, a
//! wait for a primary — as functions of that state. The sync shell
//! ([`threads`](super::threads)) runs them on threads with condition variables; an async
//! shell runs the same steps on tasks.
//!
//! One topology exists per connection string (and credentials) per process, shared by every
//! connection built from it ([`topologies`]). Its workers start with the first connection
//! and stop when the last one is dropped; the state itself is kept for `failover_timeout`
//! after that, so that a failover in progress is remembered by the next connection.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::state::{NoPrimary, Observation, Settings, TopologyState};
use super::{DiscoveryError, HostFailure, HostStatus};
use crate::multihost::metrics::{self, HostLabel};
use crate::multihost::position::Lsn;
use crate::multihost::url::ConnectionString;
use crate::BackendKind;

/// How often a waiter re-checks its deadline.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The topologies of the process, by shell type and connection string.
type Topologies = Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>;

/// The process-wide map of topologies (entries are pruned by [`find_or_insert`]).
fn topologies() -> &'static Topologies {
    static TOPOLOGIES: OnceLock<Topologies> = OnceLock::new();
    TOPOLOGIES.get_or_init(Default::default)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's topology of type `S` for `cs`, made by `make` the first time. Entries
/// `expired` says are no longer needed are dropped first.
pub(crate) fn find_or_insert<S: Any + Send + Sync>(
    cs: &ConnectionString,
    expired: impl Fn(&S, Instant) -> bool,
    make: impl FnOnce() -> S,
) -> Arc<S> {
    let key = format!("{}\u{0}{}", std::any::type_name::<S>(), cs.discovery_key());
    let mut map = lock(topologies());
    let now = Instant::now();
    map.retain(|_, entry| entry.downcast_ref::<S>().is_none_or(|s| !expired(s, now)));
    let existing = map
        .get(&key)
        .and_then(|entry| Arc::clone(entry).downcast::<S>().ok());
    match existing {
        Some(shared) => shared,
        None => {
            let shared = Arc::new(make());
            map.insert(key, shared.clone() as Arc<dyn Any + Send + Sync>);
            shared
        }
    }
}

/// The topology of one connection string in a shell: the [`Base`] with how the shell
/// signals state changes to waiters for a primary (`changed`) and work to its workers
/// (`work`): condition variables for threads, `Notify` for Tokio tasks.
/// (`pub` in a private module: the shells' topologies name sealed traits' associated types.)
#[allow(unreachable_pub)]
pub struct Shell<C, R, N> {
    pub(crate) base: Base<C, R>,
    /// Signalled whenever the state changes (waiters for a primary).
    pub(crate) changed: N,
    /// Signalled when the workers may have something to do.
    pub(crate) work: N,
}

impl<C, R, N> std::ops::Deref for Shell<C, R, N> {
    type Target = Base<C, R>;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl<C, R, N> std::fmt::Debug for Shell<C, R, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.base.fmt(f)
    }
}

/// What every shell's topology holds: the connection string, the hosts' metric labels and
/// the shared state under its lock. Each shell adds how it wakes its workers and waiters.
/// (`pub` in a private module: the shells' topologies name sealed traits' associated types.)
#[allow(unreachable_pub)]
pub struct Base<C, R> {
    pub(crate) cs: ConnectionString,
    /// Each host's `host:port`, for metrics labels.
    pub(crate) labels: Vec<HostLabel>,
    inner: Mutex<Inner<C, R>>,
}

impl<C, R> Base<C, R> {
    pub(crate) fn new(cs: &ConnectionString) -> Self {
        Base {
            cs: cs.clone(),
            labels: cs
                .hosts()
                .iter()
                .map(|h| HostLabel::from(h.to_string()))
                .collect(),
            inner: Mutex::new(Inner::new(cs)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<C, R>> {
        lock(&self.inner)
    }

    /// Whether no connection uses the topology and its failover memory has run out.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.lock().expired(self.cs.failover_timeout(), now)
    }

    /// What is known of every host.
    pub(crate) fn status(&self) -> Vec<HostStatus> {
        self.lock().status(&self.cs)
    }

    /// The primary now, without waiting (see [`Monitor::primary_now`]).
    pub(crate) fn primary_now(&self) -> Result<(usize, u64), DiscoveryError> {
        self.lock().primary_now(&self.cs, Instant::now())
    }
}

impl<C, R> std::fmt::Debug for Base<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("cs", &self.cs)
            .finish_non_exhaustive()
    }
}

/// The shared state of one topology (`R`: how the shell delivers a session it opened for a
/// connection).
pub(crate) struct Inner<C, R> {
    pub(crate) topo: TopologyState,
    connections: usize,
    released_at: Option<Instant>,
    workers: Vec<bool>,
    requests: Vec<VecDeque<R>>,
    /// A fresh session to the primary, opened by its probe, for a connection waiting for a
    /// primary (so discovery costs no second connection). With the epoch it belongs to.
    handoff: Vec<Option<(C, u64)>>,
    /// Connections waiting for a primary.
    pub(crate) waiting_for_primary: usize,
}

/// What a host's worker does next.
pub(crate) enum WorkerStep<R> {
    /// No connection is attached and nothing is asked: stop.
    Exit,
    /// Deliver a session to the host to a connection through `R`: the worker's own
    /// probe session when it holds one (it answered the last probe; the worker opens its
    /// next one when it next probes, off the connection's path), else a new one.
    Open(R),
    /// Nothing is due before this long (or a wake-up).
    Sleep(Duration),
    /// Probe the host now; when it turns out to be the primary, hand a fresh session over
    /// to a waiter (`hand_off`).
    Probe { started: Instant, hand_off: bool },
}

/// One step of waiting for a primary.
pub(crate) enum PrimaryWait<C> {
    /// The primary, its epoch, and a fresh session to it when a probe opened one.
    Ready(usize, u64, Option<C>),
    /// No primary (within the deadline), or two.
    Failed(DiscoveryError),
    /// Nothing yet: wait at most this long (or until the topology changes) and ask again.
    Wait(Duration),
}

impl<C, R> Inner<C, R> {
    pub(crate) fn new(cs: &ConnectionString) -> Self {
        let hosts = cs.hosts().len();
        Inner {
            topo: TopologyState::new(hosts, Settings::of(cs)),
            connections: 0,
            released_at: None,
            workers: vec![false; hosts],
            requests: (0..hosts).map(|_| VecDeque::new()).collect(),
            handoff: (0..hosts).map(|_| None).collect(),
            waiting_for_primary: 0,
        }
    }

    /// One more connection is attached.
    pub(crate) fn attach(&mut self) {
        self.connections += 1;
        self.released_at = None;
    }

    /// One connection is gone; with the last one, sessions handed to nobody are closed.
    pub(crate) fn detach(&mut self) {
        self.connections = self.connections.saturating_sub(1);
        if self.connections == 0 {
            self.released_at = Some(Instant::now());
            for slot in self.handoff.iter_mut() {
                *slot = None;
            }
        }
    }

    /// No connection uses the topology, and its failover memory has run out.
    pub(crate) fn expired(&self, failover_timeout: Duration, now: Instant) -> bool {
        self.connections == 0
            && self
                .released_at
                .is_some_and(|at| now.saturating_duration_since(at) > failover_timeout)
    }

    /// The hosts whose worker is not running: the shell starts one for each (and reports
    /// with [`worker_started`](Self::worker_started)).
    pub(crate) fn idle_workers(&self) -> Vec<usize> {
        (0..self.workers.len())
            .filter(|&h| !self.workers[h])
            .collect()
    }

    /// A worker was started for `host`, or could not be (`Err`).
    pub(crate) fn worker_started(&mut self, host: usize, started: Result<(), String>) {
        match started {
            Ok(()) => self.workers[host] = true,
            Err(error) => {
                tracing::error!(target: "diesel_multidb::topology", host, %error, "cannot start a host worker");
                self.topo.failed(
                    host,
                    Instant::now(),
                    HostFailure::Other("cannot start a worker".into()),
                );
            }
        }
    }

    /// The worker of `host` stopped without being told to (its task was dropped): the next
    /// [`idle_workers`](Self::idle_workers) lists it again.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn worker_stopped(&mut self, host: usize) {
        self.workers[host] = false;
    }

    /// A connection asks for a session to `host`, to be delivered through `reply`.
    pub(crate) fn request_session(&mut self, host: usize, reply: R) {
        self.requests[host].push_back(reply);
    }

    /// The next thing `host`'s worker does (the topology's schedule, the sessions asked).
    pub(crate) fn worker_step(&mut self, host: usize, now: Instant) -> WorkerStep<R> {
        if self.connections == 0 && self.requests[host].is_empty() {
            self.workers[host] = false;
            return WorkerStep::Exit;
        }
        if let Some(reply) = self.requests[host].pop_front() {
            return WorkerStep::Open(reply);
        }
        self.topo.tick(now);
        let due = self.topo.next_probe(host, now);
        if due > now {
            return WorkerStep::Sleep(due - now);
        }
        self.topo.probe_started(host, now);
        WorkerStep::Probe {
            started: now,
            hand_off: self.waiting_for_primary > 0,
        }
    }

    /// A session to `host` could not be opened for a connection.
    pub(crate) fn open_failed(&mut self, host: usize, failure: HostFailure) {
        self.topo.failed(host, Instant::now(), failure);
    }

    /// What a probe of `host` found. `session`: the worker's session (`fresh`: opened by
    /// this probe), handed over to a waiter for a primary when it is the primary's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn probe_finished(
        &mut self,
        host: usize,
        started: Instant,
        result: Result<Observation, HostFailure>,
        session: &mut Option<C>,
        fresh: bool,
        hand_off: bool,
        labels: &[HostLabel],
    ) {
        let end = Instant::now();
        tracing::trace!(target: "diesel_multidb::topology", host, ?result, took = ?(end - started), "probe");
        let primary_before = self.topo.primary().ok();
        match result {
            Ok(obs) => {
                let followup = self.topo.observed(host, started, obs, end);
                let is_primary = self.topo.primary().is_ok_and(|(p, _)| p == host);
                if hand_off && fresh && is_primary && self.handoff[host].is_none() {
                    let epoch = self.topo.epoch();
                    self.handoff[host] = session.take().map(|c| (c, epoch));
                }
                for other in followup.reprobe {
                    self.topo.reprobe(other);
                }
            }
            Err(failure) => {
                *session = None;
                self.topo.failed(host, end, failure);
            }
        }
        if let Ok((primary, epoch)) = self.topo.primary() {
            if primary_before.is_none_or(|(p, e)| p != primary || e != epoch) {
                metrics::primary_changed(&labels[primary]);
            }
        }
    }

    /// One step of waiting for a primary (see [`PrimaryWait`]). `deadline`: `None` waits
    /// until every host has answered (or failed) once since `start`.
    pub(crate) fn primary_wait_step(
        &mut self,
        cs: &ConnectionString,
        start: Instant,
        deadline: Option<Instant>,
        now: Instant,
    ) -> PrimaryWait<C> {
        loop {
            match self.topo.primary() {
                Ok((host, epoch)) => {
                    let session = self.handoff[host]
                        .take()
                        .filter(|(_, e)| *e == epoch)
                        .map(|(c, _)| c);
                    return PrimaryWait::Ready(host, epoch, session);
                }
                Err(NoPrimary::SplitBrain(..)) => {
                    return PrimaryWait::Failed(self.discovery_error(cs, None));
                }
                Err(NoPrimary::Unknown) => {}
            }
            self.topo.want_primary(now);
            let round_done = self.round_done_since(cs, start, now);
            if round_done && self.topo.fall_back() {
                continue;
            }
            let done = match deadline {
                Some(deadline) => now >= deadline,
                None => round_done,
            };
            if done {
                let waited = deadline.map(|_| now - start);
                return PrimaryWait::Failed(self.discovery_error(cs, waited));
            }
            return PrimaryWait::Wait(deadline.map_or(WAIT_SLICE, |d| (d - now).min(WAIT_SLICE)));
        }
    }

    /// The primary now, without waiting (see [`Monitor::primary_now`]).
    pub(crate) fn primary_now(
        &mut self,
        cs: &ConnectionString,
        now: Instant,
    ) -> Result<(usize, u64), DiscoveryError> {
        match self.primary_wait_step(cs, now, Some(now), now) {
            PrimaryWait::Ready(host, epoch, _) => Ok((host, epoch)),
            PrimaryWait::Failed(error) => Err(error),
            PrimaryWait::Wait(_) => Err(self.discovery_error(cs, None)),
        }
    }

    /// Every host has answered or failed since `start`, or is not answering.
    pub(crate) fn round_done_since(
        &self,
        cs: &ConnectionString,
        start: Instant,
        now: Instant,
    ) -> bool {
        self.topo.hosts.iter().all(|h| {
            h.seen.is_some_and(|(at, _)| at >= start)
                || h.failure.as_ref().is_some_and(|(at, _)| *at >= start)
                || h.probing_since.is_some_and(|since| {
                    now.saturating_duration_since(since) > cs.connect_timeout()
                })
        })
    }

    /// Starts a round: every host is probed again at once.
    pub(crate) fn reprobe_all(&mut self) {
        for host in 0..self.topo.hosts.len() {
            self.topo.reprobe(host);
        }
    }

    /// Whether every host was seen once; at `deadline` and after, hosts never probed count
    /// as timed out (so that the answer is then yes).
    pub(crate) fn all_seen_once_by(&mut self, now: Instant, deadline: Instant) -> bool {
        self.topo.tick(now);
        if self.topo.all_seen_once() {
            return true;
        }
        if now >= deadline {
            for host in 0..self.topo.hosts.len() {
                let h = &self.topo.hosts[host];
                if h.seen.is_none() && h.failure.is_none() {
                    self.topo.failed(host, now, HostFailure::TimedOut);
                }
            }
            return true;
        }
        false
    }

    fn discovery_error(&self, cs: &ConnectionString, waited: Option<Duration>) -> DiscoveryError {
        let target = cs.target_session_attrs();
        let now = Instant::now();
        let hosts = cs
            .hosts()
            .iter()
            .zip(&self.topo.hosts)
            .map(|(host, h)| {
                let failure = if let Some((_, failure)) = &h.failure {
                    failure.clone()
                } else if let Some((_, obs)) = h.seen {
                    HostFailure::mismatch(target, obs.role)
                } else if h.probing_since.is_some_and(|since| {
                    now.saturating_duration_since(since) > cs.connect_timeout()
                }) {
                    HostFailure::TimedOut
                } else if h.probing_since.is_some() {
                    HostFailure::Other("still being probed".into())
                } else {
                    HostFailure::Other("not probed".into())
                };
                (host.clone(), failure)
            })
            .collect();
        // MySQL positions have no timelines (GTIDs carry on across failovers).
        let timeline = |t: Option<u32>| t.filter(|_| cs.backend() != BackendKind::Mysql);
        let split_brain = match self.topo.primary() {
            Err(NoPrimary::SplitBrain((a, ta), (b, tb))) => Some(Box::new((
                (cs.hosts()[a].clone(), timeline(ta)),
                (cs.hosts()[b].clone(), timeline(tb)),
            ))),
            _ => None,
        };
        DiscoveryError {
            target,
            hosts,
            waited,
            split_brain,
        }
    }

    /// What is known of every host.
    pub(crate) fn status(&self, cs: &ConnectionString) -> Vec<HostStatus> {
        let now = Instant::now();
        let primary = self.topo.primary().ok().map(|(p, _)| p);
        // MySQL positions are GTID counts, with no timelines.
        let gtid = cs.backend() == BackendKind::Mysql;
        cs.hosts()
            .iter()
            .zip(&self.topo.hosts)
            .enumerate()
            .map(|(i, (host, h))| {
                let seen = h.failure.is_none().then_some(h.seen).flatten();
                HostStatus {
                    host: host.clone(),
                    role: seen.map(|(_, obs)| obs.role),
                    is_current_primary: primary == Some(i),
                    timeline: h
                        .seen
                        .and_then(|(_, obs)| obs.timeline)
                        .or_else(|| {
                            (primary == Some(i))
                                .then(|| self.topo.primary_timeline())
                                .flatten()
                        })
                        .filter(|_| !gtid),
                    position: h.seen.and_then(|(_, obs)| obs.lsn).map(|l| {
                        if gtid {
                            format!("gtid:{l}")
                        } else {
                            Lsn(l).to_string()
                        }
                    }),
                    lag: seen.and(h.lag),
                    last_replayed_commit: seen.and_then(|(_, obs)| obs.replay_timestamp),
                    last_seen: h.seen.map(|(at, _)| now.saturating_duration_since(at)),
                    failure: h.failure.as_ref().map(|(_, f)| f.clone()),
                    excluded: if primary == Some(i) {
                        None
                    } else {
                        self.topo.exclusion(i, now)
                    },
                    probing: h.probing_since.is_some(),
                    readers: h.readers,
                }
            })
            .collect()
    }
}

/// What a connection asks of its topology's shell, sync or async (the waits are the
/// shell's own).
pub(crate) trait Monitor<C: 'static>: Send + Sync + 'static {
    /// How a session opened in the background is delivered.
    type Reply: Send;

    /// What the background workers send an opened session through.
    type Sender: 'static;

    /// The state every shell's topology holds.
    fn base(&self) -> &Base<C, Self::Sender>;

    /// The connection string of the topology.
    fn cs(&self) -> &ConnectionString {
        &self.base().cs
    }

    /// Each host's `host:port`, for metrics labels.
    fn labels(&self) -> &[HostLabel] {
        &self.base().labels
    }

    /// Runs `f` on the topology's state (under its lock).
    fn with_state<R>(&self, f: impl FnOnce(&mut TopologyState) -> R) -> R {
        f(&mut self.base().lock().topo)
    }

    /// What is known of every host.
    fn status(&self) -> Vec<HostStatus> {
        self.base().status()
    }

    /// Wakes the workers (a demand was registered, or a failure reported).
    fn wake(&self);

    /// One connection is gone.
    fn detach(&self);

    /// A session to `host`, opened in the background by its worker.
    fn request_session(&self, host: usize) -> Self::Reply;

    /// The session, when it has arrived: `Some(Ok)`, `Some(Err)` when it could not be
    /// opened (or the worker is gone), `None` while it is being opened.
    fn try_take(reply: &mut Self::Reply) -> Option<Result<C, HostFailure>>;

    /// The primary now, without waiting: the error lists every host when none is known.
    fn primary_now(&self) -> Result<(usize, u64), DiscoveryError> {
        self.base().primary_now()
    }

    /// Opens a session to `host` (no role query: the role is the topology's business).
    /// The sync shell's future is ready at once: it blocks inside.
    fn open_session(
        &self,
        host: usize,
    ) -> impl std::future::Future<Output = Result<C, HostFailure>> + Send;

    /// Waits until a primary is known, up to `deadline`; without a deadline, until every
    /// host has answered (or failed) once since the call. Returns the primary, its epoch,
    /// and a fresh session to it when a probe opened one.
    fn await_primary(
        &self,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<(usize, u64, Option<C>), DiscoveryError>> + Send;

    /// Waits until every host has answered or failed a probe once, at most until
    /// `deadline`.
    fn await_all_seen_once(
        &self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs a future whose awaits are all ready at once — the sync shell's, which block inside
/// their futures — to its end, on the calling thread.
pub(crate) fn run_now<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // Not reached with the sync shell's futures; yield rather than spin.
        std::thread::yield_now();
    }
}
