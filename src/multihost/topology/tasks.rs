//! The async shell around the shared topology ([`Inner`]): Tokio tasks and [`Notify`].
//!
//! The same schedule as the sync shell ([`threads`](super::threads)), one task per host
//! instead of one thread: a worker keeps one session to its host, probes it when the state
//! says so, and opens sessions for connections that want one in the background. The tasks
//! run on the runtime of the connection that started them; when that runtime shuts down,
//! they are dropped with it, and the next connection (on any runtime) starts them again.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use super::shared::{self, Base, Monitor, PrimaryWait, Shell, WorkerStep, WAIT_SLICE};
use super::state::Observation;
use super::{DiscoveryError, HostFailure};
use crate::multihost::backend::sealed::AsyncWrapped;
use crate::multihost::url::ConnectionString;

/// A session opened for a connection in the background.
pub(crate) type SessionReply<C> = oneshot::Receiver<Result<C, HostFailure>>;

/// How a worker delivers a session it opened.
type SessionSender<C> = oneshot::Sender<Result<C, HostFailure>>;

/// The topology of one connection string, its worker tasks and its waiters.
pub(crate) type Shared<C> = Shell<C, SessionSender<C>, Notify>;

/// Marks a host's worker as stopped when its task is dropped without stopping by itself
/// (its runtime shut down), so that the next connection starts another.
struct WorkerGuard<C: AsyncWrapped> {
    shared: Arc<Shared<C>>,
    host: usize,
    armed: bool,
}

impl<C: AsyncWrapped> Drop for WorkerGuard<C> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().worker_stopped(self.host);
        }
    }
}

/// Counts a waiter for a primary for as long as it waits (also when its future is
/// dropped).
struct PrimaryWaiter<'a, C: AsyncWrapped>(&'a Shared<C>);

impl<'a, C: AsyncWrapped> PrimaryWaiter<'a, C> {
    fn new(shared: &'a Shared<C>) -> Self {
        shared.lock().waiting_for_primary += 1;
        PrimaryWaiter(shared)
    }
}

impl<C: AsyncWrapped> Drop for PrimaryWaiter<'_, C> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.waiting_for_primary = inner.waiting_for_primary.saturating_sub(1);
    }
}

/// Waits for `notify` (registered before the caller looked at the state) at most `limit`.
async fn wait_at_most(notified: impl Future<Output = ()>, limit: Duration) {
    let _ = tokio::time::timeout(limit, notified).await;
}

impl<C: AsyncWrapped> Shared<C> {
    /// The process-wide topology of `cs`, with one more connection attached (its workers
    /// running on the current Tokio runtime). Pair with [`detach`](Self::detach).
    ///
    /// # Errors
    ///
    /// When called outside a Tokio runtime.
    pub(crate) fn attach(cs: &ConnectionString) -> Result<Arc<Shared<C>>, DiscoveryError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(DiscoveryError {
                target: cs.target_session_attrs(),
                hosts: cs
                    .hosts()
                    .iter()
                    .map(|h| {
                        (
                            h.clone(),
                            HostFailure::Other("not probed: no Tokio runtime is running".into()),
                        )
                    })
                    .collect(),
                waited: None,
                split_brain: None,
            });
        };
        let shared = shared::find_or_insert(
            cs,
            |s: &Shared<C>, now| s.expired(now),
            || Shell {
                base: Base::new(cs),
                changed: Notify::new(),
                work: Notify::new(),
            },
        );
        let mut inner = shared.lock();
        inner.attach();
        for host in inner.idle_workers() {
            let guard = WorkerGuard {
                shared: Arc::clone(&shared),
                host,
                armed: true,
            };
            runtime.spawn(Self::worker(guard));
            inner.worker_started(host, Ok(()));
        }
        drop(inner);
        Ok(shared)
    }

    /// One connection is gone; the workers stop with the last one.
    pub(crate) fn detach(&self) {
        self.lock().detach();
        self.work.notify_waiters();
    }

    /// Wakes the workers (a demand was registered).
    pub(crate) fn wake(&self) {
        self.work.notify_waiters();
    }

    /// A host's worker: probes it on schedule and opens sessions to it on request.
    async fn worker(mut guard: WorkerGuard<C>) {
        let me = Arc::clone(&guard.shared);
        let host = guard.host;
        let mut session: Option<C> = None;
        loop {
            let mut notified = pin!(me.work.notified());
            notified.as_mut().enable();
            let step = me.lock().worker_step(host, Instant::now());
            match step {
                WorkerStep::Exit => {
                    guard.armed = false;
                    return;
                }
                WorkerStep::Open(reply) => {
                    let opened = match session.take() {
                        Some(conn) => Ok(conn),
                        None => connect::<C>(&me.cs, host).await,
                    };
                    if let Err(failure) = &opened {
                        me.lock().open_failed(host, failure.clone());
                        me.changed.notify_waiters();
                    }
                    // The connection may be gone: the session is then dropped.
                    let _ = reply.send(opened);
                }
                WorkerStep::Sleep(pause) => wait_at_most(notified, pause).await,
                WorkerStep::Probe { started, hand_off } => {
                    let fresh = session.is_none();
                    let result = probe::<C>(&me.cs, host, &mut session).await;
                    me.lock().probe_finished(
                        host,
                        started,
                        result,
                        &mut session,
                        fresh,
                        hand_off,
                        &me.labels,
                    );
                    me.changed.notify_waiters();
                    me.work.notify_waiters();
                }
            }
        }
    }

    /// A session to `host` opened in the background by its worker.
    pub(crate) fn request_session(&self, host: usize) -> SessionReply<C> {
        let (tx, rx) = oneshot::channel();
        self.lock().request_session(host, tx);
        self.work.notify_waiters();
        rx
    }

    /// Waits until a primary is known, up to `deadline` (see the sync shell's
    /// `wait_for_primary`).
    pub(crate) async fn wait_for_primary(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(usize, u64, Option<C>), DiscoveryError> {
        let start = Instant::now();
        let _waiter = PrimaryWaiter::new(self);
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            let step = self
                .lock()
                .primary_wait_step(&self.cs, start, deadline, Instant::now());
            match step {
                PrimaryWait::Ready(host, epoch, session) => return Ok((host, epoch, session)),
                PrimaryWait::Failed(error) => return Err(error),
                PrimaryWait::Wait(slice) => {
                    self.work.notify_waiters();
                    wait_at_most(notified, slice).await;
                }
            }
        }
    }

    /// Waits until every host has answered or failed a probe once, at most until
    /// `deadline`.
    pub(crate) async fn wait_all_seen_once(&self, deadline: Instant) {
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            let now = Instant::now();
            if self.lock().all_seen_once_by(now, deadline) {
                return;
            }
            self.work.notify_waiters();
            wait_at_most(notified, (deadline - now).min(WAIT_SLICE)).await;
        }
    }

    /// Waits until every host has answered or failed a probe started after the call (or
    /// has not answered for `connect_timeout`), at most `timeout`.
    pub(crate) async fn wait_round(&self, timeout: Duration) {
        let start = Instant::now();
        let deadline = start + timeout;
        self.lock().reprobe_all();
        self.work.notify_waiters();
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            let now = Instant::now();
            if self.lock().round_done_since(&self.cs, start, now) || now >= deadline {
                return;
            }
            wait_at_most(notified, (deadline - now).min(WAIT_SLICE)).await;
        }
    }
}

impl<C: AsyncWrapped> Monitor<C> for Shared<C> {
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
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => {
                Some(Err(HostFailure::Other("the host worker stopped".into())))
            }
        }
    }

    async fn open_session(&self, host: usize) -> Result<C, HostFailure> {
        connect::<C>(&self.cs, host).await
    }

    async fn await_primary(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(usize, u64, Option<C>), DiscoveryError> {
        self.wait_for_primary(deadline).await
    }

    async fn await_all_seen_once(&self, deadline: Instant) {
        self.wait_all_seen_once(deadline).await
    }
}

/// Opens a session to one host (no role query: the role is the topology's business).
pub(crate) async fn connect<C: AsyncWrapped>(
    cs: &ConnectionString,
    host: usize,
) -> Result<C, HostFailure> {
    C::connect_host(cs, &cs.hosts()[host]).await
}

/// Probes one host through `session` (opening it when there is none; a kept session that
/// fails is replaced once, so that a killed monitor session is not taken for a failed
/// host).
async fn probe<C: AsyncWrapped>(
    cs: &ConnectionString,
    host: usize,
    session: &mut Option<C>,
) -> Result<Observation, HostFailure> {
    if let Some(conn) = session.as_mut() {
        match conn.observe().await {
            Ok(obs) => return Ok(obs),
            Err(_) => *session = None,
        }
    }
    let mut conn = connect::<C>(cs, host).await?;
    let obs = conn
        .observe()
        .await
        .map_err(|e| HostFailure::Other(format!("probe failed: {e}")))?;
    *session = Some(conn);
    Ok(obs)
}
