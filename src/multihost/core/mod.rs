//! The routing core of one connection: where each statement goes, and what each outcome
//! means. No I/O, no threads, no clock: the shells (the sync [`MultiHostConnection`] and
//! the async one) ask [`Session::route`], run the statement where it says, and report with
//! [`Session::outcome`].
//!
//! [`MultiHostConnection`]: crate::MultiHostConnection
//!
//! # The rules
//!
//! **Where a statement goes.** Inside a transaction (Diesel's or a manual `BEGIN`), with
//! session state on the primary session, when pinned, or when it is not provably read-only,
//! a statement runs on the primary session. A read runs on this connection's standby when
//! that standby may serve reads (see [`TopologyState`]) and has replayed this connection's
//! *floor*; otherwise on the primary, at once: a read never waits for a probe.
//!
//! **Read-your-writes.** Each committed write (an autocommit write, a `COMMIT` of a
//! transaction that wrote, DDL, `COPY FROM`, a writing function re-run on the primary)
//! raises the floor to "the primary's position when the write was acknowledged"; the first
//! primary position probed after that moment resolves it (the topology's monitor probes the
//! primary at once when asked). [`read_after`](Session::read_after) raises it to a causal
//! token. A floor from an older timeline than the current primary's is re-based to the new
//! primary's position when it was first seen. A connection that never wrote has no floor
//! and its reads cost nothing extra.
//!
//! **When a statement is re-sent.** Only when the server provably applied nothing:
//! - a read that fails on a standby (any database error: a standby applies nothing) runs
//!   again on the primary;
//! - a statement that was never sent (the client could not send it) runs again, outside a
//!   transaction and without session state;
//! - a primary that answers read-only (25006) has been demoted: an [`atomic`] statement,
//!   outside a transaction and without session state, runs again on the new primary;
//! - a read whose primary connection failed runs again on the new primary, outside a
//!   transaction and without session state.
//!
//! Everything else returns its error to the caller.
//!
//! **Transactions die with their primary.** When the primary session fails inside a
//! transaction, every later statement of that transaction fails with
//! [`Refusal::TransactionLost`] until the transaction ends: a `ROLLBACK` (Diesel's, after
//! the closure returns an error) is answered without I/O; a `COMMIT` fails (the
//! transaction was not committed, or if the session failed during the `COMMIT` itself its
//! outcome is unknown).
//!
//! **Session state is never dropped silently.** When a session that holds state (`SET`,
//! temporary tables, advisory locks, ...) is lost, or the process learns its primary
//! moved, the next statement fails once with [`Refusal::SessionLost`]; the connection then
//! starts a fresh session.
//!
//! [`atomic`]: crate::multihost::classify::Classification::atomic
//! [`TopologyState`]: crate::multihost::topology::state::TopologyState

use std::time::{Duration, Instant};

use crate::multihost::classify::{Classification, TxEffect};
use crate::multihost::position::{CausalToken, Position};
use crate::multihost::topology::state::{NoPrimary, TopologyState};
use crate::multihost::topology::ServerRole;

/// A statement that ran successfully less than this long ago proves its session alive: a
/// pool's validity check then costs nothing (HikariCP's `aliveBypassWindowMs`).
pub(crate) const ALIVE_WINDOW: Duration = Duration::from_millis(500);

/// How a statement reached the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `load`: may go to a standby when read-only.
    Load,
    /// `execute_returning_count`, `batch_execute`, `COPY FROM`, migrations setup: always
    /// the primary.
    Primary,
}

/// The transaction state as Diesel's transaction manager of this connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DieselTx {
    None,
    Open,
    /// The manager is in error (a rollback failed): treated as an open transaction.
    Broken,
}

/// One statement, as the core needs to know it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement {
    pub(crate) class: Classification,
    pub(crate) via: Via,
    pub(crate) diesel_tx: DieselTx,
}

/// Where to run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// On this connection's standby session (host index).
    Standby(usize),
    /// On a standby this connection has no session to yet: open one now (no primary is
    /// known, so the read cannot run there meanwhile), then run it there.
    ConnectStandby(usize),
    /// On the primary session. `connect`: open one to this host first (dropping a stale
    /// one, which nothing was sent to).
    Primary { host: usize, connect: bool },
    /// Wait for the topology to know a primary (up to `failover_timeout`), then ask again.
    WaitForPrimary,
    /// Wait until every host has been probed once (up to `connect_timeout`), then ask
    /// again: a write must not reach a primary before a second writable host could be
    /// seen.
    WaitForAllHosts,
    /// Answer success without I/O (the `ROLLBACK` of a transaction whose primary is gone).
    Absorb,
    /// Fail without I/O.
    Refuse(Refusal),
}

/// Why a statement is refused without being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The primary of the open transaction was lost: `committing` if it was lost during
    /// the `COMMIT` itself (outcome unknown); otherwise the transaction was not committed.
    TransactionLost { host: usize, committing: bool },
    /// The session's state (SET, temporary tables, ...) lived on `host`, which was lost.
    SessionLost { host: usize },
    /// Two writable hosts: writes refused. `(host, timeline)` each.
    SplitBrain((usize, Option<u32>), (usize, Option<u32>)),
}

/// What happened to a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// The server refused it as read-only (SQLSTATE 25006).
    ReadOnly,
    /// The client could not send it: nothing reached the server.
    NotSent,
    /// The connection failed (closed, broken) with the statement in flight.
    ConnectionLost,
    /// Any other error from the server.
    Database,
    /// An error of the client side (serialization, deserialization, ...).
    Client,
    /// The caller gave the statement up while it ran (an async statement whose future was
    /// dropped): its outcome is unknown, and the shell closed its session. The server is
    /// not suspected of anything.
    Abandoned,
}

/// What to do after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Return the result to the caller.
    Done,
    /// Return this error instead of the server's (it says more).
    Fail(Refusal),
    /// Report success: the statement's effect is certain although the connection failed
    /// (a `ROLLBACK`: a server rolls back a transaction whose connection is gone).
    Succeed,
    /// Run the statement again, routed by `route` with the standby ruled out.
    RetryOnPrimary,
    /// Run the statement again after the topology knows a primary (maybe a new one).
    RetryOnNewPrimary,
}

/// Where the last statement ran, by what the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastRoute {
    Primary(usize),
    Standby(usize),
}

/// Where a statement that ran on `host` ran, by what the topology last saw the server as
/// (not by the session it used: a standby may have been promoted, a `target_session_attrs`
/// other than `read-write` may have made a standby the main session).
fn last_route(topology: &TopologyState, host: usize) -> LastRoute {
    match topology.hosts[host].seen {
        Some((_, obs)) if obs.role == ServerRole::Standby => LastRoute::Standby(host),
        Some(_) => LastRoute::Primary(host),
        None if topology.primary().is_ok_and(|(p, _)| p == host) => LastRoute::Primary(host),
        None => LastRoute::Standby(host),
    }
}

/// The floor below which this connection must not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    None,
    /// A write was acknowledged at this instant; its position is not known yet.
    Pending(Instant),
    At(Position),
}

impl Floor {
    fn raise(self, other: Floor) -> Floor {
        match (self, other) {
            (Floor::None, x) | (x, Floor::None) => x,
            (Floor::Pending(a), Floor::Pending(b)) => Floor::Pending(a.max(b)),
            // A pending write is newer than any position known before it.
            (Floor::Pending(a), Floor::At(_)) | (Floor::At(_), Floor::Pending(a)) => {
                Floor::Pending(a)
            }
            (Floor::At(a), Floor::At(b)) => {
                if (b.timeline, b.lsn) > (a.timeline, a.lsn) {
                    Floor::At(b)
                } else {
                    Floor::At(a)
                }
            }
        }
    }
}

/// The transaction, as the core tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    None,
    Open {
        wrote: bool,
    },
    /// Its primary session failed; see [`Refusal::TransactionLost`].
    Lost {
        host: usize,
        committing: bool,
    },
}

/// The routing state of one connection.
#[derive(Debug)]
pub(crate) struct Session {
    replica_reads: bool,
    read_your_writes: bool,
    /// `target_session_attrs` asks for a writable primary (`read-write`, `primary`): only
    /// then does a read-only error mean the primary was demoted.
    writable_target: bool,
    pinned: bool,
    /// The primary session holds state (on its host).
    session_state: bool,
    /// The transaction, begun by Diesel's manager or by the application (`BEGIN` /
    /// `START TRANSACTION`), as seen in the statements.
    tx: Tx,
    /// A lost transaction was ended by a failed `COMMIT`: the `ROLLBACK` Diesel sends next
    /// is answered without I/O.
    absorb_rollback: bool,
    /// Reported by the next statement.
    lost_session: Option<usize>,
    write_floor: Floor,
    read_floor: Floor,
    /// The primary session: host and the topology epoch it was opened under.
    primary: Option<(usize, u64)>,
    /// The standby session's host.
    standby: Option<usize>,
    /// The standby this connection would rather read from (a session is being opened).
    wanted_standby: Option<usize>,
    last: Option<LastRoute>,
    last_ok: Option<Instant>,
}

impl Session {
    pub(crate) fn new(
        replica_reads: bool,
        read_your_writes: bool,
        writable_target: bool,
    ) -> Session {
        Session {
            replica_reads,
            read_your_writes,
            writable_target,
            pinned: false,
            session_state: false,
            tx: Tx::None,
            absorb_rollback: false,
            lost_session: None,
            write_floor: Floor::None,
            read_floor: Floor::None,
            primary: None,
            standby: None,
            wanted_standby: None,
            last: None,
            last_ok: None,
        }
    }

    // ---- the sessions the shell holds ------------------------------------------------

    /// The shell opened a primary session to `host` under `epoch`.
    pub(crate) fn primary_opened(&mut self, host: usize, epoch: u64) {
        self.primary = Some((host, epoch));
    }

    /// The shell dropped its primary session.
    pub(crate) fn primary_closed(&mut self) {
        self.primary = None;
    }

    pub(crate) fn primary_session(&self) -> Option<(usize, u64)> {
        self.primary
    }

    /// Changes the standby session and the wanted one, keeping the topology's reader
    /// counts true: a connection counts as a reader of its standby and of the standby it
    /// is opening a session to.
    fn reassign(
        &mut self,
        topology: &mut TopologyState,
        standby: Option<usize>,
        wanted: Option<usize>,
    ) {
        let wanted = wanted.filter(|w| Some(*w) != standby);
        if self.standby != standby {
            if let Some(old) = self.standby {
                topology.count_reader(old, false, false);
            }
            if let Some(new) = standby {
                topology.count_reader(new, false, true);
            }
        }
        if self.wanted_standby != wanted {
            if let Some(old) = self.wanted_standby {
                topology.count_reader(old, true, false);
            }
            if let Some(new) = wanted {
                topology.count_reader(new, true, true);
            }
        }
        self.standby = standby;
        self.wanted_standby = wanted;
    }

    /// The shell now reads from a session to `host` (`None`: no standby session).
    pub(crate) fn standby_changed(&mut self, host: Option<usize>, topology: &mut TopologyState) {
        let wanted = self.wanted_standby.filter(|w| Some(*w) != host);
        self.reassign(topology, host, wanted);
    }

    pub(crate) fn standby_session(&self) -> Option<usize> {
        self.standby
    }

    /// A standby this connection would read from if it had a session to it: the shell
    /// opens one in the background.
    pub(crate) fn wanted_standby(&self) -> Option<usize> {
        self.wanted_standby
    }

    /// The session to the wanted standby could not be opened.
    pub(crate) fn forget_wanted_standby(&mut self, topology: &mut TopologyState) {
        self.reassign(topology, self.standby, None);
    }

    fn want(&mut self, topology: &mut TopologyState, host: Option<usize>) {
        self.reassign(topology, self.standby, host);
    }

    // ---- explicit controls -------------------------------------------------------------

    pub(crate) fn pin(&mut self) {
        self.pinned = true;
    }

    /// Unpins; session state set earlier keeps the connection on the primary.
    pub(crate) fn unpin(&mut self) {
        self.pinned = false;
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned || self.session_state
    }

    /// Whether reads may go to a standby session (as far as this connection goes).
    pub(crate) fn reads_from_standby(&self) -> bool {
        self.replica_reads && !self.pinned && !self.session_state
    }

    /// Whether the primary session may be dropped without losing anything: no
    /// transaction, no session state.
    pub(crate) fn can_drop_primary(&self) -> bool {
        self.tx == Tx::None && !self.session_state
    }

    pub(crate) fn last(&self) -> Option<LastRoute> {
        self.last
    }

    /// Later reads see at least what `token` covers.
    pub(crate) fn read_after(&mut self, token: CausalToken) {
        self.read_floor = self.read_floor.raise(Floor::At(token.position));
    }

    /// What a causal token of this connection must cover: `Ok` when it is known,
    /// `Err(instant)` when the primary's position at or after `instant` is needed.
    pub(crate) fn token_floor(
        &mut self,
        topology: &TopologyState,
        now: Instant,
    ) -> Result<Option<Position>, Instant> {
        self.resolve(topology, now);
        match self.write_floor {
            Floor::None => Ok(None),
            Floor::At(p) => Ok(Some(p)),
            Floor::Pending(since) => Err(since),
        }
    }

    /// The primary's position read at or after `since` (asked by the shell for a causal
    /// token) resolves a pending floor.
    pub(crate) fn position_read(&mut self, since: Instant, position: Position) {
        if let Floor::Pending(pending) = self.write_floor {
            if pending <= since {
                self.write_floor = Floor::At(position);
            }
        }
    }

    // ---- routing -----------------------------------------------------------------------

    fn in_transaction(&self, st: &Statement) -> bool {
        st.diesel_tx != DieselTx::None || matches!(self.tx, Tx::Open { .. })
    }

    /// Where `st` goes. `standby_ok`: false when re-running after a standby failed.
    pub(crate) fn route(
        &mut self,
        st: &Statement,
        topology: &mut TopologyState,
        standby_ok: bool,
        now: Instant,
    ) -> Route {
        // A transaction whose primary is gone: only its end gets through.
        if let Tx::Lost { host, committing } = self.tx {
            return match st.class.tx {
                TxEffect::Rollback => {
                    self.end_transaction();
                    Route::Absorb
                }
                TxEffect::Commit => {
                    self.end_transaction();
                    self.absorb_rollback = true;
                    Route::Refuse(Refusal::TransactionLost { host, committing })
                }
                _ => Route::Refuse(Refusal::TransactionLost { host, committing }),
            };
        }
        if std::mem::take(&mut self.absorb_rollback) && st.class.tx == TxEffect::Rollback {
            return Route::Absorb;
        }
        if let Some(host) = self.lost_session.take() {
            return Route::Refuse(Refusal::SessionLost { host });
        }
        let in_tx = self.in_transaction(st);
        let read = st.via == Via::Load
            && st.class.read_only
            && !in_tx
            && !self.pinned
            && !self.session_state
            && self.replica_reads
            && standby_ok;
        if read {
            if let Some(host) = self.pick_standby(topology, now) {
                return Route::Standby(host);
            }
            // No standby session ready, and no primary to read from meanwhile (a failover
            // in progress): a session to a readable standby now rather than waiting.
            if topology.primary().is_err() {
                if let Some(host) = self.readable_standby_for_floor(topology, now) {
                    return Route::ConnectStandby(host);
                }
            }
        }
        self.route_primary(st, in_tx, topology)
    }

    /// A readable standby that has replayed this connection's floor (a connection with a
    /// floor whose position is not known yet has none).
    fn readable_standby_for_floor(
        &mut self,
        topology: &TopologyState,
        now: Instant,
    ) -> Option<usize> {
        let floor = if self.read_your_writes || self.read_floor != Floor::None {
            self.resolve(topology, now);
            match self.effective_floor() {
                Floor::Pending(_) => return None,
                Floor::At(p) => Some(p),
                Floor::None => None,
            }
        } else {
            None
        };
        topology.readable_standby(floor)
    }

    fn route_primary(
        &mut self,
        st: &Statement,
        in_tx: bool,
        topology: &mut TopologyState,
    ) -> Route {
        let current = topology.primary();
        if !in_tx && !st.class.read_only && current.is_ok() && !topology.all_seen_once() {
            return Route::WaitForAllHosts;
        }
        if in_tx {
            // The transaction stays on its session whatever the topology says: if the
            // server is gone the statement fails and the transaction is lost then.
            if let Err(NoPrimary::SplitBrain(a, b)) = current {
                if st.class.tx != TxEffect::Rollback {
                    return Route::Refuse(Refusal::SplitBrain(a, b));
                }
            }
            return match self.primary {
                Some((host, _)) => Route::Primary {
                    host,
                    connect: false,
                },
                // A transaction without a session (it was never opened, or Diesel's
                // manager thinks so after a failure): start on the current primary.
                None => match current {
                    Ok((host, _)) => Route::Primary {
                        host,
                        connect: true,
                    },
                    Err(NoPrimary::SplitBrain(a, b)) => Route::Refuse(Refusal::SplitBrain(a, b)),
                    Err(NoPrimary::Unknown) => Route::WaitForPrimary,
                },
            };
        }
        match current {
            Err(NoPrimary::SplitBrain(a, b)) => Route::Refuse(Refusal::SplitBrain(a, b)),
            Err(NoPrimary::Unknown) => {
                if self.session_state {
                    // Keep using the session: if its server is gone, the statement fails
                    // and the state is reported lost then.
                    if let Some((host, _)) = self.primary {
                        return Route::Primary {
                            host,
                            connect: false,
                        };
                    }
                }
                Route::WaitForPrimary
            }
            Ok((host, epoch)) => match self.primary {
                Some((mine, my_epoch)) if mine == host => {
                    if my_epoch != epoch && !self.session_state {
                        // The primary was lost and found again since this session was
                        // opened: it may be dead. Nothing was sent: reconnect.
                        Route::Primary {
                            host,
                            connect: true,
                        }
                    } else {
                        self.primary = Some((host, epoch));
                        Route::Primary {
                            host,
                            connect: false,
                        }
                    }
                }
                Some((mine, _)) if self.session_state => {
                    // The state lived on a server that is no longer the primary.
                    self.session_state = false;
                    self.primary = None;
                    Route::Refuse(Refusal::SessionLost { host: mine })
                }
                _ => Route::Primary {
                    host,
                    connect: true,
                },
            },
        }
    }

    /// The standby for a read, or `None` for the primary.
    fn pick_standby(&mut self, topology: &mut TopologyState, now: Instant) -> Option<usize> {
        let floor = if self.read_your_writes || self.read_floor != Floor::None {
            self.resolve(topology, now);
            match self.effective_floor() {
                Floor::Pending(since) => {
                    topology.want_sample(since);
                    topology.want_catch_up(now);
                    return None;
                }
                Floor::At(p) => Some(p),
                Floor::None => None,
            }
        } else {
            None
        };
        let readable = topology.readable_standbys();
        if let Some(s) = self.standby.filter(|s| readable.contains(s)) {
            if floor.is_none_or(|f| topology.has_replayed(s, f)) {
                if self.wanted_standby.is_none() && topology.should_rebalance(s) {
                    // Only to a standby that can serve this connection's reads as this one
                    // does: one behind its writes would send them to the primary.
                    let better = topology.pick_standby(floor, Some(s));
                    self.want(topology, better);
                }
                return Some(s);
            }
            // Behind this connection's writes: the primary now, this standby once it has
            // caught up (the monitor probes fast while someone waits).
            topology.want_catch_up(now);
            return None;
        }
        // No usable standby session: the primary now, a session to the least used standby
        // opened in the background.
        match self.wanted_standby {
            None => {
                // A standby that can serve this read now is worth moving to. A session to a
                // standby that only cannot yet (catching up, not yet seen to follow this
                // primary) is kept rather than traded for one to another standby in the
                // same state, which would trade it back: sessions opened and closed for
                // nothing, and reads on the primary meanwhile.
                let candidate = match topology.pick_standby(floor, self.standby) {
                    Some(ready) => Some(ready),
                    None if self
                        .standby
                        .is_some_and(|s| topology.may_serve_reads_later(s, now)) =>
                    {
                        self.standby
                    }
                    None => topology.pick_session_standby(self.standby, now),
                };
                self.want(topology, candidate);
            }
            // Waiting for a session to a host that cannot serve reads while another can.
            Some(w) if !readable.contains(&w) => {
                if let Some(better) = topology.pick_standby(None, self.standby) {
                    self.want(topology, Some(better));
                }
            }
            Some(_) => {}
        }
        None
    }

    /// Whether a read (outside a transaction, unpinned) would run on this connection's
    /// standby now. Registers the same demands a read would (a session to open, standbys
    /// to catch up).
    pub(crate) fn standby_ready(&mut self, topology: &mut TopologyState, now: Instant) -> bool {
        self.reads_from_standby() && self.pick_standby(topology, now).is_some()
    }

    /// Asks for a standby session before the first read needs one.
    pub(crate) fn want_standby(&mut self, topology: &mut TopologyState, now: Instant) {
        if self.replica_reads && self.standby.is_none() && self.wanted_standby.is_none() {
            let candidate = topology.pick_session_standby(None, now);
            self.want(topology, candidate);
        }
    }

    /// Resolves pending floors from the topology's samples; re-bases floors from an older
    /// timeline.
    fn resolve(&mut self, topology: &TopologyState, now: Instant) {
        for floor in [&mut self.write_floor, &mut self.read_floor] {
            if let Floor::Pending(since) = *floor {
                if let Some(p) = topology.position_since(since) {
                    *floor = Floor::At(p);
                }
            }
            if let Floor::At(p) = *floor {
                if topology.primary_timeline().is_some_and(|t| t > p.timeline) {
                    // Taken before a failover: what survived is on the new primary,
                    // which is at or past it now.
                    *floor = match topology.position_since(now) {
                        Some(new) => Floor::At(new),
                        None => Floor::Pending(now),
                    };
                }
            }
        }
    }

    fn effective_floor(&self) -> Floor {
        self.write_floor.raise(self.read_floor)
    }

    // ---- outcomes ----------------------------------------------------------------------

    /// What `route` led to. `retry`: this was already a re-run.
    pub(crate) fn outcome(
        &mut self,
        st: &Statement,
        route: Route,
        outcome: Outcome,
        retry: bool,
        topology: &mut TopologyState,
        now: Instant,
    ) -> Next {
        let in_tx = self.in_transaction(st);
        match route {
            Route::Standby(host) | Route::ConnectStandby(host) => match outcome {
                Outcome::Ok => {
                    self.ran(last_route(topology, host), now);
                    Next::Done
                }
                Outcome::ConnectionLost | Outcome::NotSent => {
                    self.last = None;
                    let failure = super::topology::HostFailure::Other(
                        "the connection failed during a statement".into(),
                    );
                    topology.failed(host, now, failure);
                    Next::RetryOnPrimary
                }
                // A standby applies nothing: any error of its own may be one the primary
                // would not give (recovery conflicts, 25006 from a function that writes).
                Outcome::ReadOnly | Outcome::Database => {
                    self.last = None;
                    Next::RetryOnPrimary
                }
                Outcome::Client | Outcome::Abandoned => {
                    self.last = None;
                    Next::Done
                }
            },
            Route::Primary { host, .. } => {
                self.primary_outcome(st, host, outcome, in_tx, retry, topology, now)
            }
            Route::WaitForPrimary | Route::WaitForAllHosts | Route::Absorb | Route::Refuse(_) => {
                Next::Done
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn primary_outcome(
        &mut self,
        st: &Statement,
        host: usize,
        outcome: Outcome,
        in_tx: bool,
        retry: bool,
        topology: &mut TopologyState,
        now: Instant,
    ) -> Next {
        let class = st.class;
        if outcome == Outcome::Ok {
            self.ran(last_route(topology, host), now);
            if class.pins_session {
                self.session_state = true;
            }
            let wrote = class.writes || retry;
            match class.tx {
                TxEffect::Begin => self.tx = Tx::Open { wrote: false },
                TxEffect::Commit => {
                    let tx_wrote = matches!(self.tx, Tx::Open { wrote: true }) || wrote;
                    self.end_transaction();
                    if tx_wrote {
                        self.wrote(now);
                    }
                }
                TxEffect::Rollback => self.end_transaction(),
                TxEffect::None => {
                    if in_tx {
                        if wrote {
                            self.tx = Tx::Open { wrote: true };
                        }
                    } else if wrote {
                        self.wrote(now);
                    }
                }
            }
            return Next::Done;
        }
        self.last = None;
        if class.tx_unsure
            && (in_tx || class.opens_tx)
            && matches!(outcome, Outcome::Database | Outcome::ReadOnly)
        {
            // A batch with transaction control failed part way: a transaction may be open
            // (`BEGIN; <error>`, or `<error>; COMMIT` inside one), maybe with writes. Kept
            // on the primary, and the connection is not handed to another request, until
            // it ends. A batch that opens none leaves none open outside a transaction.
            self.tx = Tx::Open { wrote: true };
        } else if class.tx.ends() {
            // COMMIT and ROLLBACK end the transaction even when they fail.
            self.end_transaction();
        }
        let epoch = self.primary.map(|(_, e)| e).unwrap_or(topology.epoch());
        match outcome {
            Outcome::Ok => Next::Done,
            Outcome::Abandoned => {
                // The session is closed: whatever it held is gone, and nothing is re-sent.
                self.primary = None;
                match class.tx {
                    // A server rolls back the transaction of a session that is closed.
                    TxEffect::Rollback => {}
                    TxEffect::Commit => {
                        self.tx = Tx::Lost {
                            host,
                            committing: true,
                        }
                    }
                    _ if in_tx => {
                        self.tx = Tx::Lost {
                            host,
                            committing: false,
                        }
                    }
                    _ if self.session_state => {
                        self.session_state = false;
                        self.lost_session = Some(host);
                    }
                    _ => {}
                }
                Next::Done
            }
            Outcome::ConnectionLost | Outcome::NotSent => {
                topology.primary_suspect(epoch);
                self.primary = None;
                match class.tx {
                    // A server rolls back the transaction of a connection that is gone.
                    TxEffect::Rollback => return Next::Succeed,
                    TxEffect::Commit if outcome == Outcome::ConnectionLost => {
                        // Lost during the COMMIT: its outcome is unknown. Diesel follows a
                        // failed COMMIT with a ROLLBACK: answer that one.
                        self.absorb_rollback = true;
                        return Next::Fail(Refusal::TransactionLost {
                            host,
                            committing: true,
                        });
                    }
                    TxEffect::Commit if in_tx => {
                        // Not sent: the session is gone, its transaction with it, uncommitted.
                        // The same error as a COMMIT of a transaction known to be lost (never
                        // "not sent", which invites sending the COMMIT again).
                        self.absorb_rollback = true;
                        return Next::Fail(Refusal::TransactionLost {
                            host,
                            committing: false,
                        });
                    }
                    _ => {}
                }
                if in_tx {
                    self.tx = Tx::Lost {
                        host,
                        committing: false,
                    };
                    return Next::Done;
                }
                if self.session_state {
                    self.session_state = false;
                    self.lost_session = Some(host);
                    return Next::Done;
                }
                if retry {
                    return Next::Done;
                }
                // A lone BEGIN lost with its connection opened nothing that survives and
                // wrote nothing: like a read, it runs again on the (new) primary.
                let lone_begin = class.tx == TxEffect::Begin && !class.writes && !class.tx_unsure;
                if outcome == Outcome::NotSent || class.read_only || lone_begin {
                    Next::RetryOnNewPrimary
                } else {
                    // A write in flight: its outcome is unknown, it is never re-sent.
                    Next::Done
                }
            }
            Outcome::ReadOnly => {
                // A demoted primary answers 25006 to writes outside a transaction. Inside
                // one (or with session state such as `default_transaction_read_only`)
                // the application may have asked for it.
                if in_tx || self.session_state || !self.writable_target {
                    return Next::Done;
                }
                topology.primary_demoted(epoch, now);
                self.primary = None;
                if class.atomic && !retry {
                    Next::RetryOnNewPrimary
                } else {
                    Next::Done
                }
            }
            Outcome::Database | Outcome::Client => Next::Done,
        }
    }

    fn ran(&mut self, last: LastRoute, now: Instant) {
        self.last = Some(last);
        self.last_ok = Some(now);
    }

    fn wrote(&mut self, now: Instant) {
        if self.read_your_writes {
            self.write_floor = Floor::Pending(now);
        }
    }

    fn end_transaction(&mut self) {
        self.tx = Tx::None;
    }

    /// A COPY FROM or migration statement ran on the primary outside the classifier.
    pub(crate) fn wrote_outside(&mut self, host: usize, in_tx: bool, now: Instant) {
        self.ran(LastRoute::Primary(host), now);
        if in_tx {
            if let Tx::Open { .. } = self.tx {
                self.tx = Tx::Open { wrote: true };
            }
        } else {
            self.wrote(now);
        }
    }

    // ---- pools -------------------------------------------------------------------------

    /// What was lost with a primary and is still to be reported: `"transaction"` or
    /// `"session"`.
    pub(crate) fn loss(&self) -> Option<&'static str> {
        if matches!(self.tx, Tx::Lost { .. }) {
            Some("transaction")
        } else if self.lost_session.is_some() {
            Some("session")
        } else {
            None
        }
    }

    /// Whether the connection is unusable as it stands: a lost transaction, a lost session
    /// to report.
    pub(crate) fn is_broken(&self) -> bool {
        matches!(self.tx, Tx::Lost { .. }) || self.lost_session.is_some()
    }

    /// Whether a statement ran successfully within [`ALIVE_WINDOW`].
    pub(crate) fn recently_alive(&self, now: Instant) -> bool {
        self.last_ok
            .is_some_and(|at| now.saturating_duration_since(at) < ALIVE_WINDOW)
    }

    /// Whether the primary session was opened under an older epoch (the process knows its
    /// primary was lost since).
    pub(crate) fn primary_is_stale(&self, topology: &TopologyState) -> bool {
        match (self.primary, topology.primary()) {
            (Some((host, epoch)), Ok((p, e))) => host != p || epoch != e,
            (Some(_), Err(_)) => true,
            (None, _) => false,
        }
    }

    /// The connection goes back to its pool: explicit pins, causal tokens and its own
    /// read-your-writes floor are forgotten (the next checkout is another request). Returns whether it must be dropped instead: its server session holds
    /// state, a transaction is open or lost, a lost session is still to be reported, or the
    /// process knows its primary is gone.
    pub(crate) fn recycle(&mut self, topology: &TopologyState) -> bool {
        self.pinned = false;
        self.read_floor = Floor::None;
        // Read-your-writes holds while one request has the connection: the next checkout
        // is another request (causal tokens carry writes across requests).
        self.write_floor = Floor::None;
        self.absorb_rollback = false;
        self.session_state
            || self.tx != Tx::None
            || self.lost_session.is_some()
            || self.primary_is_stale(topology)
    }

    /// The shell dropped every session (the process knows they are stale): forget them.
    pub(crate) fn sessions_dropped(&mut self, topology: &mut TopologyState) {
        self.primary = None;
        self.reassign(topology, None, None);
    }
}

#[cfg(test)]
mod tests;
