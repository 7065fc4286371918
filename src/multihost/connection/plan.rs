//! What a shell does to make a statement's place ready, decided without I/O.
//!
//! The core's [`Route`] says where a statement goes; getting there may take I/O: opening a
//! session, waiting for a primary, waiting for every host to be seen once. [`Plan`] turns
//! routes into [`Step`]s, counts connection attempts, and takes the shell's reports of what
//! the I/O gave. The sync shell and the async shell run the same plan, one blocking, one
//! awaiting: they differ only in how they do each step.

use std::time::Instant;

use diesel::result::{Error, QueryResult};

use super::{error, missing_session, Ctx, Ready, Slot};
use crate::multihost::backend::HostConnection;
use crate::multihost::core::{Next, Outcome, Route, Statement};
use crate::multihost::topology::shared::Monitor;
use crate::multihost::topology::{DiscoveryError, HostFailure};

/// Connection attempts to the primary (or, with no primary known, a standby) for one
/// statement before it gives up (after one last wait for a primary).
const CONNECTS: u32 = 3;

/// The next thing a shell does for a statement.
#[derive(Debug)]
pub(super) enum Step {
    /// The place is ready: run the statement there.
    Ready(Ready),
    /// Fail the statement with this error, sending nothing.
    Fail(Error),
    /// Open a session to this standby (a read while no primary is known), install it as
    /// the standby session, then report with [`Plan::standby_opened`] or
    /// [`Plan::open_failed`].
    OpenStandby(usize),
    /// Drop the primary session, open one to `host`, install it, then report with
    /// [`Plan::primary_opened`] or [`Plan::open_failed`].
    OpenPrimary { host: usize, epoch: u64 },
    /// Wait until every host was seen once, at most until then; then ask again.
    WaitAllHosts(Instant),
    /// Wait for a primary, at most until then; then report with [`Plan::waited`].
    WaitPrimary(Instant),
}

/// The steps of one statement (see the module's documentation).
#[derive(Debug, Default)]
pub(super) struct Plan {
    connects: u32,
    /// A step decided by a report, taken before asking the core again.
    queued: Option<Step>,
}

impl Plan {
    /// What to do next. `has_primary`: the shell holds a primary session;
    /// `standby_slot`: the shell can install a standby session for this statement.
    pub(super) fn next<C: HostConnection>(
        &mut self,
        ctx: &mut Ctx<C>,
        st: &Statement,
        standby_ok: bool,
        has_primary: bool,
        standby_slot: bool,
    ) -> Step {
        if let Some(step) = self.queued.take() {
            return step;
        }
        let now = Instant::now();
        let route = ctx
            .shared
            .with_state(|topo| ctx.session.route(st, topo, standby_ok, now));
        ctx.request_wanted_standby();
        match route {
            Route::Standby(host) => Step::Ready(Ready::Standby(host)),
            Route::ConnectStandby(host) if standby_slot => Step::OpenStandby(host),
            Route::ConnectStandby(_) => Step::Fail(Error::BrokenTransactionManager),
            Route::Absorb => Step::Ready(Ready::Absorbed),
            Route::Refuse(refusal) => Step::Fail(error::refusal(ctx.shared.cs(), refusal)),
            Route::Primary {
                host,
                connect: false,
            } if has_primary => Step::Ready(Ready::Primary(host)),
            Route::Primary { host, .. } => {
                self.connects += 1;
                ctx.session.primary_closed();
                let epoch = ctx
                    .shared
                    .with_state(|topo| topo.primary().map_or(0, |(_, e)| e));
                Step::OpenPrimary { host, epoch }
            }
            Route::WaitForAllHosts => Step::WaitAllHosts(now + ctx.shared.cs().connect_timeout()),
            Route::WaitForPrimary => Step::WaitPrimary(now + ctx.shared.cs().failover_timeout()),
        }
    }

    /// The standby session asked by [`Step::OpenStandby`] is installed.
    pub(super) fn standby_opened<C: HostConnection>(
        &mut self,
        ctx: &mut Ctx<C>,
        host: usize,
    ) -> Ready {
        ctx.standby_broken = false;
        if ctx
            .pending_standby
            .as_ref()
            .is_some_and(|(h, _)| *h == host)
        {
            ctx.pending_standby = None;
        }
        ctx.shared
            .with_state(|topo| ctx.session.standby_changed(Some(host), topo));
        tracing::debug!(target: "diesel_multidb::routing", host = %ctx.shared.cs().hosts()[host], "standby session opened for a read while no primary is known");
        Ready::Standby(host)
    }

    /// The primary session asked by [`Step::OpenPrimary`] (or handed over by
    /// [`Plan::waited`]) is installed.
    pub(super) fn primary_opened<C: HostConnection>(
        &mut self,
        ctx: &mut Ctx<C>,
        host: usize,
        epoch: u64,
    ) {
        ctx.session.primary_opened(host, epoch);
        tracing::debug!(target: "diesel_multidb::routing", host = %ctx.shared.cs().hosts()[host], "primary session opened");
    }

    /// A session asked by [`Step::OpenStandby`] or [`Step::OpenPrimary`] could not be
    /// opened. Returns the error to fail with, when the statement gives up.
    pub(super) fn open_failed<C: HostConnection>(
        &mut self,
        ctx: &mut Ctx<C>,
        host: usize,
        failure: HostFailure,
        standby: bool,
    ) -> Option<Error> {
        tracing::warn!(target: "diesel_multidb::routing", host = %ctx.shared.cs().hosts()[host], %failure, standby, "cannot open a session");
        ctx.shared
            .with_state(|topo| topo.failed(host, Instant::now(), failure.clone()));
        ctx.shared.wake();
        if standby {
            self.connects += 1;
        }
        let give_up = if standby {
            self.connects >= CONNECTS
        } else {
            // After the last wait for a primary, one more attempt.
            self.connects > CONNECTS
        };
        if give_up {
            let error = ctx
                .shared
                .primary_now()
                .err()
                .unwrap_or_else(|| DiscoveryError {
                    target: ctx.shared.cs().target_session_attrs(),
                    hosts: vec![(ctx.shared.cs().hosts()[host].clone(), failure)],
                    waited: None,
                    split_brain: None,
                });
            return Some(error::no_primary(error));
        }
        if !standby && self.connects == CONNECTS {
            // One last wait for another primary.
            self.queued = Some(Step::WaitPrimary(
                Instant::now() + ctx.shared.cs().failover_timeout(),
            ));
        }
        None
    }

    /// What a [`Step::WaitPrimary`] gave: an error to fail with, or a fresh session to the
    /// primary to install (then report with [`Plan::primary_opened`]) when the probe that
    /// found it opened one and this connection has no primary session.
    pub(super) fn waited<C: HostConnection>(
        &mut self,
        ctx: &Ctx<C>,
        result: Result<(usize, u64, Option<C>), DiscoveryError>,
    ) -> Result<Option<(C, usize, u64)>, Error> {
        match result {
            Ok((host, epoch, Some(conn))) if ctx.session.primary_session().is_none() => {
                Ok(Some((conn, host, epoch)))
            }
            Ok(_) => Ok(None),
            Err(error) => Err(error::no_primary(error)),
        }
    }
}

/// Makes the place the core picks for `st` ready: opens sessions, waits for a primary,
/// with the monitor's I/O. Touches only `ctx`, `primary` and `standby`, so that it can run
/// while a cursor borrows another session. `standby`: where to install a standby session
/// opened for this statement (only for reads).
///
/// The place is nearly always ready at once: that is decided here without awaiting; the
/// steps that take I/O run in a future of their own, boxed, so that the future of every
/// statement does not carry the (large) state of connecting and waiting.
pub(super) async fn prepare<C: HostConnection>(
    ctx: &mut Ctx<C>,
    primary: &mut Option<C>,
    standby: Option<&mut Option<C>>,
    st: &Statement,
    standby_ok: bool,
) -> Result<Ready, Error> {
    let mut plan = Plan::default();
    let step = plan.next(ctx, st, standby_ok, primary.is_some(), standby.is_some());
    match step {
        Step::Ready(ready) => Ok(ready),
        Step::Fail(error) => Err(error),
        step => {
            Box::pin(prepare_with_io(
                ctx, primary, standby, st, standby_ok, plan, step,
            ))
            .await
        }
    }
}

/// [`prepare`] from a step that takes I/O.
async fn prepare_with_io<C: HostConnection>(
    ctx: &mut Ctx<C>,
    primary: &mut Option<C>,
    mut standby: Option<&mut Option<C>>,
    st: &Statement,
    standby_ok: bool,
    mut plan: Plan,
    mut step: Step,
) -> Result<Ready, Error> {
    let shared = std::sync::Arc::clone(&ctx.shared);
    loop {
        match step {
            Step::Ready(ready) => return Ok(ready),
            Step::Fail(error) => return Err(error),
            Step::OpenStandby(host) => match shared.open_session(host).await {
                Ok(mut conn) => {
                    conn.apply_settings(&ctx.settings);
                    if let Some(slot) = standby.as_deref_mut() {
                        *slot = Some(conn);
                    }
                    return Ok(plan.standby_opened(ctx, host));
                }
                Err(failure) => {
                    if let Some(error) = plan.open_failed(ctx, host, failure, true) {
                        return Err(error);
                    }
                }
            },
            Step::OpenPrimary { host, epoch } => {
                *primary = None;
                match shared.open_session(host).await {
                    Ok(mut conn) => {
                        conn.apply_settings(&ctx.settings);
                        *primary = Some(conn);
                        plan.primary_opened(ctx, host, epoch);
                    }
                    Err(failure) => {
                        if let Some(error) = plan.open_failed(ctx, host, failure, false) {
                            return Err(error);
                        }
                    }
                }
            }
            Step::WaitAllHosts(deadline) => shared.await_all_seen_once(deadline).await,
            Step::WaitPrimary(deadline) => {
                let waited = shared.await_primary(Some(deadline)).await;
                if let Some((mut conn, host, epoch)) = plan.waited(ctx, waited)? {
                    conn.apply_settings(&ctx.settings);
                    *primary = Some(conn);
                    plan.primary_opened(ctx, host, epoch);
                }
            }
        }
        step = plan.next(ctx, st, standby_ok, primary.is_some(), standby.is_some());
    }
}

/// One attempt of a read on one session, as a shell does it (blocking or awaiting).
pub(super) trait LoadAttempt<C: HostConnection> {
    /// What a read gives: a cursor or a stream that may borrow its session.
    type Rows<'conn>
    where
        C: 'conn;

    /// Runs the read on `conn` (reached by `route`, held in `slot`) and tells its outcome.
    fn attempt<'conn>(
        &mut self,
        ctx: &mut Ctx<C>,
        conn: &'conn mut C,
        extra: &mut C::Extra,
        st: Statement,
        route: Route,
        slot: Slot,
    ) -> impl std::future::Future<Output = (QueryResult<Self::Rows<'conn>>, Outcome)>;
}

/// The outcome of a statement's result.
pub(super) fn outcome_of<C: HostConnection, T>(result: &QueryResult<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(error) => C::outcome_of(error),
    }
}

/// Runs a read for both shells: on a standby when the core says so, else (or when it fails
/// there) on the primary, and once more on a new primary when the primary's connection
/// failed. Each attempt uses a different session field, so that the rows, which may borrow
/// their session, can be returned from any of them.
#[allow(clippy::too_many_arguments)]
pub(super) async fn load_attempts<'conn, C: HostConnection, A: LoadAttempt<C>>(
    ctx: &mut Ctx<C>,
    primary: &'conn mut Option<C>,
    standby: &'conn mut Option<C>,
    spare: &'conn mut Option<C>,
    extra: &mut C::Extra,
    st: Statement,
    attempt: &mut A,
) -> QueryResult<A::Rows<'conn>> {
    // Attempt 1: wherever the core says.
    let mut retry = false;
    let first = prepare(ctx, primary, Some(standby), &st, true).await?;
    if let Ready::Standby(host) = first {
        let route = Route::Standby(host);
        let (result, outcome) = match standby.as_mut() {
            Some(conn) => {
                attempt
                    .attempt(ctx, conn, extra, st, route, Slot::Standby)
                    .await
            }
            None => (Err(missing_session()), Outcome::NotSent),
        };
        if let Err(error) = &result {
            tracing::debug!(target: "diesel_multidb::routing", host = %ctx.shared.cs().hosts()[host], %error, "a read failed on a standby");
        }
        match ctx.report_outcome(&st, route, outcome, false) {
            Next::RetryOnPrimary | Next::RetryOnNewPrimary => retry = true,
            Next::Fail(refusal) => return Err(error::refusal(ctx.shared.cs(), refusal)),
            Next::Done | Next::Succeed => return result,
        }
    }
    if first == Ready::Absorbed {
        return Err(Error::QueryBuilderError(
            "a transaction-ending statement was loaded after its transaction was lost".into(),
        ));
    }

    // Attempt 2: the primary session.
    let second = if let Ready::Primary(host) = first {
        Ready::Primary(host)
    } else {
        prepare(ctx, primary, None, &st, false).await?
    };
    let Ready::Primary(host) = second else {
        return Err(missing_session());
    };
    let route = Route::Primary {
        host,
        connect: false,
    };
    let Some(conn) = primary.as_mut() else {
        return Err(missing_session());
    };
    let (result, outcome) = attempt
        .attempt(ctx, conn, extra, st, route, Slot::Primary)
        .await;
    match ctx.report_outcome(&st, route, outcome, retry) {
        Next::Done | Next::Succeed => return result,
        Next::Fail(refusal) => return Err(error::refusal(ctx.shared.cs(), refusal)),
        Next::RetryOnPrimary | Next::RetryOnNewPrimary if retry => return result,
        Next::RetryOnPrimary | Next::RetryOnNewPrimary => {}
    }

    // Attempt 3: a new primary session (installed as the primary before the next
    // statement).
    tracing::info!(target: "diesel_multidb::routing", "re-running the read on the new primary");
    let third = prepare(ctx, spare, None, &st, false).await?;
    let Ready::Primary(host) = third else {
        return Err(missing_session());
    };
    ctx.spare_is_primary = true;
    let route = Route::Primary {
        host,
        connect: false,
    };
    let Some(conn) = spare.as_mut() else {
        return Err(missing_session());
    };
    let (result, outcome) = attempt
        .attempt(ctx, conn, extra, st, route, Slot::Spare)
        .await;
    match ctx.report_outcome(&st, route, outcome, true) {
        Next::Fail(refusal) => Err(error::refusal(ctx.shared.cs(), refusal)),
        _ => result,
    }
}
