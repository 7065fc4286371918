//! The sync shell around the shared topology ([`Inner`]): threads and condition variables.
//!
//! Each host has one worker thread (so the threads are bounded by the number of hosts,
//! whatever the pool size). A worker keeps one session to its host and probes it on the
//! schedule the state computes: every `monitor_interval`; every 100 ms while a connection
//! waits for a primary; every 10 ms while a connection waits for a standby to catch up with
//! its writes; with backoff after failures. It also opens sessions for connections that
//! want one in the background (their standby session). A host that never answers blocks
//! only its own worker; statements never wait for a probe.

use std::sync::mpsc;
use std::sync::{Arc, Condvar};
use std::time::{Duration, Instant};

use super::shared::{self, Base, Monitor, PrimaryWait, Shell, WorkerStep, WAIT_SLICE};
use super::state::Observation;
use super::{DiscoveryError, HostFailure, HostStatus};
use crate::multihost::backend::sealed::SyncWrapped;
use crate::multihost::url::ConnectionString;

/// A session opened for a connection in the background.
pub(crate) type SessionReply<C> = mpsc::Receiver<Result<C, HostFailure>>;

/// How a worker delivers a session it opened.
type SessionSender<C> = mpsc::Sender<Result<C, HostFailure>>;

/// The topology of one connection string, its worker threads and its waiters.
pub(crate) type Shared<C> = Shell<C, SessionSender<C>, Condvar>;

impl<C: SyncWrapped> Shared<C> {
    /// The process-wide topology of `cs`, with one more connection attached (its workers
    /// running). Pair with [`detach`](Self::detach).
    pub(crate) fn attach(cs: &ConnectionString) -> Arc<Shared<C>> {
        let shared = shared::find_or_insert(
            cs,
            |s: &Shared<C>, now| s.expired(now),
            || Shell {
                base: Base::new(cs),
                changed: Condvar::new(),
                work: Condvar::new(),
            },
        );
        let mut inner = shared.lock();
        inner.attach();
        for host in inner.idle_workers() {
            let me = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("diesel-multidb-host-{host}"))
                .spawn(move || me.worker(host));
            inner.worker_started(host, spawned.map(drop).map_err(|e| e.to_string()));
        }
        drop(inner);
        shared
    }

    /// One connection is gone; the workers stop with the last one.
    pub(crate) fn detach(&self) {
        self.lock().detach();
        self.work.notify_all();
    }

    /// Wakes the workers (a demand was registered).
    pub(crate) fn wake(&self) {
        self.work.notify_all();
    }

    /// A host's worker: probes it on schedule and opens sessions to it on request.
    fn worker(self: Arc<Self>, host: usize) {
        let mut session: Option<C> = None;
        let mut inner = self.lock();
        loop {
            match inner.worker_step(host, Instant::now()) {
                WorkerStep::Exit => {
                    drop(inner);
                    drop(session);
                    return;
                }
                WorkerStep::Open(reply) => {
                    drop(inner);
                    let opened = session
                        .take()
                        .map_or_else(|| connect::<C>(&self.cs, host), Ok);
                    if let Err(failure) = &opened {
                        self.lock().open_failed(host, failure.clone());
                        self.changed.notify_all();
                    }
                    // The connection may be gone: the session is then dropped.
                    let _ = reply.send(opened);
                    inner = self.lock();
                }
                WorkerStep::Sleep(pause) => {
                    inner = self
                        .work
                        .wait_timeout(inner, pause)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                WorkerStep::Probe { started, hand_off } => {
                    drop(inner);
                    let fresh = session.is_none();
                    let result = probe::<C>(&self.cs, host, &mut session);
                    inner = self.lock();
                    inner.probe_finished(
                        host,
                        started,
                        result,
                        &mut session,
                        fresh,
                        hand_off,
                        &self.labels,
                    );
                    self.changed.notify_all();
                    self.work.notify_all();
                }
            }
        }
    }

    /// A session to `host` opened in the background by its worker.
    pub(crate) fn request_session(&self, host: usize) -> SessionReply<C> {
        let (tx, rx) = mpsc::channel();
        self.lock().request_session(host, tx);
        self.work.notify_all();
        rx
    }

    /// Waits until a primary is known, up to `deadline`; without a deadline, until every
    /// host has answered (or failed) once since the call. Returns the primary, its epoch,
    /// and a fresh session to it when a probe opened one.
    pub(crate) fn wait_for_primary(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(usize, u64, Option<C>), DiscoveryError> {
        let start = Instant::now();
        let mut inner = self.lock();
        inner.waiting_for_primary += 1;
        let result = loop {
            match inner.primary_wait_step(&self.cs, start, deadline, Instant::now()) {
                PrimaryWait::Ready(host, epoch, session) => break Ok((host, epoch, session)),
                PrimaryWait::Failed(error) => break Err(error),
                PrimaryWait::Wait(slice) => {
                    self.work.notify_all();
                    inner = self
                        .changed
                        .wait_timeout(inner, slice)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        inner.waiting_for_primary -= 1;
        result
    }

    /// Waits until every host has answered or failed a probe once, at most until
    /// `deadline`.
    pub(crate) fn wait_all_seen_once(&self, deadline: Instant) {
        let mut inner = self.lock();
        loop {
            let now = Instant::now();
            if inner.all_seen_once_by(now, deadline) {
                return;
            }
            self.work.notify_all();
            inner = self
                .changed
                .wait_timeout(inner, (deadline - now).min(WAIT_SLICE))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until every host has answered or failed a probe started after the call (or
    /// has not answered for `connect_timeout`), at most `timeout`.
    pub(crate) fn wait_round(&self, timeout: Duration) {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut inner = self.lock();
        inner.reprobe_all();
        self.work.notify_all();
        loop {
            let now = Instant::now();
            if inner.round_done_since(&self.cs, start, now) || now >= deadline {
                return;
            }
            inner = self
                .changed
                .wait_timeout(inner, (deadline - now).min(WAIT_SLICE))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// What is known of every host.
    pub(crate) fn status(&self) -> Vec<HostStatus> {
        self.lock().status(&self.cs)
    }
}

impl<C: SyncWrapped> Monitor<C> for Shared<C> {
    type Reply = SessionReply<C>;

    type Sender = SessionSender<C>;

    fn base(&self) -> &Base<C, SessionSender<C>> {
        &self.base
    }

    fn wake(&self) {
        Shared::wake(self);
    }

    fn detach(&self) {
        Shared::detach(self);
    }

    fn request_session(&self, host: usize) -> SessionReply<C> {
        Shared::request_session(self, host)
    }

    fn try_take(reply: &mut SessionReply<C>) -> Option<Result<C, HostFailure>> {
        match reply.try_recv() {
            Ok(result) => Some(result),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Some(Err(HostFailure::Other("the host worker stopped".into())))
            }
        }
    }

    fn open_session(
        &self,
        host: usize,
    ) -> impl std::future::Future<Output = Result<C, HostFailure>> + Send {
        std::future::ready(connect::<C>(&self.cs, host))
    }

    fn await_primary(
        &self,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<(usize, u64, Option<C>), DiscoveryError>> + Send
    {
        std::future::ready(self.wait_for_primary(deadline))
    }

    fn await_all_seen_once(
        &self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = ()> + Send {
        self.wait_all_seen_once(deadline);
        std::future::ready(())
    }
}

/// Opens a session to one host (no role query: the role is the topology's business).
pub(crate) fn connect<C: SyncWrapped>(
    cs: &ConnectionString,
    host: usize,
) -> Result<C, HostFailure> {
    let started = Instant::now();
    C::connect_host(cs, &cs.hosts()[host])
        .map_err(|error| C::connect_failure(cs, &cs.hosts()[host], &error, started.elapsed()))
}

/// Probes one host through `session` (opening it when there is none; a kept session that
/// fails is replaced once, so that a killed monitor session is not taken for a failed
/// host).
fn probe<C: SyncWrapped>(
    cs: &ConnectionString,
    host: usize,
    session: &mut Option<C>,
) -> Result<Observation, HostFailure> {
    if let Some(conn) = session.as_mut() {
        match conn.observe() {
            Ok(obs) => return Ok(obs),
            Err(_) => *session = None,
        }
    }
    let mut conn = connect::<C>(cs, host)?;
    let obs = conn
        .observe()
        .map_err(|e| HostFailure::Other(format!("probe failed: {e}")))?;
    *session = Some(conn);
    Ok(obs)
}
