//! The steps of a connection's life that both shells take the same way, decided without
//! I/O: connecting first, validity checks and recycling for pools, waiting for a standby,
//! and cleaning up after a statement whose future was dropped.

use std::time::Instant;

use diesel::result::{DatabaseErrorKind, Error, QueryResult};

use super::{MultiHostConnection, Slot};
use crate::multihost::backend::HostConnection;
use crate::multihost::core::{DieselTx, Outcome};
use crate::multihost::topology::shared::Monitor;
use crate::multihost::topology::state::NoPrimary;
use crate::multihost::topology::{DiscoveryError, HostFailure};

/// Connection attempts to the primary when connecting, before giving up.
const FIRST_ATTEMPTS: u32 = 3;

/// The next step of connecting.
#[derive(Debug)]
pub(super) enum FirstStep {
    /// Connected (or serving reads from standbys while a failover goes on).
    Done,
    /// Connecting failed.
    Fail(DiscoveryError),
    /// Wait for a primary (up to the deadline; without one, until every host answered),
    /// then open a session to it (or install the one the probe opened).
    Wait(Option<Instant>),
    /// Open a session to the primary `host`, then report with
    /// [`MultiHostConnection::first_opened`] or [`MultiHostConnection::first_failed`].
    Open { host: usize, epoch: u64 },
}

/// The next step of a pool's validity check.
#[derive(Debug)]
pub(super) enum PingStep {
    /// The answer.
    Done(QueryResult<()>),
    /// Ping the standby session (to this host); report with
    /// [`MultiHostConnection::ping_standby_failed`] when it fails.
    Standby(usize),
    /// Ping the primary session; report with [`MultiHostConnection::ping_primary_done`].
    Primary,
}

impl<C: HostConnection> MultiHostConnection<C> {
    /// Connects a new connection: finds the primary (waiting for one as discovery allows)
    /// and opens a session to it, with the monitor's I/O (see [`plan`](super::plan) for how
    /// each shell runs it).
    pub(super) async fn connect_first(&mut self) -> Result<(), DiscoveryError> {
        let shared = std::sync::Arc::clone(&self.ctx.shared);
        let mut attempt = 0;
        loop {
            let (host, epoch, session) = match self.first_step() {
                FirstStep::Done => return Ok(()),
                FirstStep::Fail(error) => return Err(error),
                FirstStep::Open { host, epoch } => (host, epoch, None),
                FirstStep::Wait(deadline) => shared.await_primary(deadline).await?,
            };
            attempt += 1;
            let opened = match session {
                Some(conn) => Ok(conn),
                None => shared.open_session(host).await,
            };
            match opened {
                Ok(conn) => {
                    self.first_opened(conn, host, epoch);
                    return Ok(());
                }
                Err(failure) => {
                    if let Some(error) = self.first_failed(host, failure, attempt) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// What connecting does next.
    fn first_step(&mut self) -> FirstStep {
        let now = Instant::now();
        let shared = &self.ctx.shared;
        let cs = shared.cs();
        let (known, in_failover, standby_available) = shared.with_state(|topo| {
            (
                topo.primary(),
                topo.in_failover(now),
                !topo.readable_standbys().is_empty(),
            )
        });
        match known {
            Ok((host, epoch)) => FirstStep::Open { host, epoch },
            Err(NoPrimary::SplitBrain(..)) => FirstStep::Fail(
                shared
                    .primary_now()
                    .err()
                    .unwrap_or_else(|| DiscoveryError {
                        target: cs.target_session_attrs(),
                        hosts: Vec::new(),
                        waited: None,
                        split_brain: None,
                    }),
            ),
            Err(NoPrimary::Unknown) if in_failover && standby_available && cs.replica_reads() => {
                // Reads from the standbys now; the first write waits for the primary.
                self.want_standby();
                FirstStep::Done
            }
            Err(NoPrimary::Unknown) => {
                FirstStep::Wait(in_failover.then(|| now + cs.failover_timeout()))
            }
        }
    }

    /// The primary session is open: install it.
    fn first_opened(&mut self, mut conn: C, host: usize, epoch: u64) {
        conn.apply_settings(&self.ctx.settings);
        self.primary = Some(conn);
        self.ctx.session.primary_opened(host, epoch);
        self.want_standby();
    }

    /// The primary session could not be opened (attempt number `attempt`, from 1). Returns
    /// the error to fail with when connecting gives up.
    fn first_failed(
        &mut self,
        host: usize,
        failure: HostFailure,
        attempt: u32,
    ) -> Option<DiscoveryError> {
        let shared = &self.ctx.shared;
        shared.with_state(|topo| topo.failed(host, Instant::now(), failure.clone()));
        shared.wake();
        (attempt >= FIRST_ATTEMPTS).then(|| {
            shared.primary_now().err().unwrap_or(DiscoveryError {
                target: shared.cs().target_session_attrs(),
                hosts: vec![(shared.cs().hosts()[host].clone(), failure)],
                waited: None,
                split_brain: None,
            })
        })
    }

    /// One look at whether reads would run on a standby now (see `wait_for_standby`);
    /// asks for what is missing.
    pub(super) fn standby_poll(&mut self) -> bool {
        self.settle();
        let session = &mut self.ctx.session;
        let ready = self
            .ctx
            .shared
            .with_state(|topo| session.standby_ready(topo, Instant::now()));
        self.ctx.request_wanted_standby();
        self.ctx.shared.wake();
        ready
    }

    /// The start of a pool's validity check: costs nothing when a statement succeeded in
    /// the last 500 ms; otherwise pings the session the next read would use (the standby
    /// session when there is one), never requiring the primary. Sessions the process knows
    /// are stale are dropped first. Fails only when the connection carries something lost:
    /// a transaction or session state whose primary is gone. `diesel_tx`: the state of the
    /// wrapper's transaction manager.
    pub(super) fn ping_start(&mut self, diesel_tx: DieselTx) -> PingStep {
        self.settle();
        if self.ctx.session.is_broken() {
            return PingStep::Done(Err(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("the connection lost its transaction or session state".to_string()),
            )));
        }
        let session = &self.ctx.session;
        let stale = self
            .ctx
            .shared
            .with_state(|topo| session.primary_is_stale(topo));
        if stale && diesel_tx == DieselTx::None && self.ctx.session.can_drop_primary() {
            self.primary = None;
            self.ctx.session.primary_closed();
        }
        if self.ctx.session.recently_alive(Instant::now()) {
            return PingStep::Done(Ok(()));
        }
        if self.ctx.session.reads_from_standby() && self.standby.is_some() {
            if let Some(host) = self.ctx.session.standby_session() {
                return PingStep::Standby(host);
            }
        }
        self.ping_after_standby()
    }

    /// The step after the standby session's ping failed, or when there is none.
    pub(super) fn ping_after_standby(&mut self) -> PingStep {
        if self.primary.is_some() {
            PingStep::Primary
        } else {
            PingStep::Done(Ok(()))
        }
    }

    /// The standby session failed its ping: it is dropped before the next statement.
    pub(super) fn ping_standby_failed(&mut self, host: usize, error: &Error) -> PingStep {
        let shared = &self.ctx.shared;
        tracing::debug!(target: "diesel_multidb::routing", host = %shared.cs().hosts()[host], %error, "standby session failed its ping");
        self.ctx.standby_broken = true;
        let failure = HostFailure::Other("the session failed a ping".into());
        shared.with_state(|topo| topo.failed(host, Instant::now(), failure));
        shared.wake();
        self.ping_after_standby()
    }

    /// What the primary session's ping gave, as the validity check's answer: a primary
    /// session found dead is dropped (the next statement opens a new one) unless a
    /// transaction or session state needs it.
    pub(super) fn ping_primary_done(
        &mut self,
        result: QueryResult<()>,
        diesel_tx: DieselTx,
    ) -> QueryResult<()> {
        match result {
            Ok(()) => Ok(()),
            Err(error) if C::outcome_of(&error) == Outcome::ConnectionLost => {
                if let Some((_, epoch)) = self.ctx.session.primary_session() {
                    self.ctx
                        .shared
                        .with_state(|topo| topo.primary_suspect(epoch));
                    self.ctx.shared.wake();
                }
                if diesel_tx == DieselTx::None && self.ctx.session.can_drop_primary() {
                    self.primary = None;
                    self.ctx.session.primary_closed();
                    Ok(())
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    /// The connection goes back to its pool (or is checked out again): forgets explicit
    /// pins and causal tokens, and says whether it must be dropped instead — its server
    /// session holds state, a transaction is open or lost, or the process knows its
    /// primary is gone.
    pub(super) fn recycle(&mut self, diesel_tx: DieselTx) -> bool {
        self.settle();
        let session = &mut self.ctx.session;
        let drop_it = self.ctx.shared.with_state(|topo| session.recycle(topo));
        drop_it || diesel_tx != DieselTx::None
    }

    /// A statement whose future was dropped while it ran: its session is closed (whatever
    /// it was doing stops there), and the core learns that its outcome is unknown.
    pub(super) fn abandoned(&mut self) {
        let Some(flight) = self.ctx.in_flight.take() else {
            return;
        };
        tracing::warn!(target: "diesel_multidb::routing", route = ?flight.route, "a statement was given up while it ran (its future was dropped): its session is closed, its outcome unknown");
        match flight.slot {
            Slot::Primary => self.primary = None,
            Slot::Spare => self.spare = None,
            Slot::Standby => {
                self.standby = None;
                let session = &mut self.ctx.session;
                self.ctx
                    .shared
                    .with_state(|topo| session.standby_changed(None, topo));
            }
        }
        self.ctx
            .report_outcome(&flight.st, flight.route, Outcome::Abandoned, true);
    }
}
