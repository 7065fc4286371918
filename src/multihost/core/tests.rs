//! Every routing and failover rule of one connection, without a server: the topology is
//! fed observations, the session is asked where statements go and told what happened.

use std::time::{Duration, Instant};

use super::*;
use crate::multihost::classify::classify;
use crate::multihost::topology::state::{Observation, Settings};
use crate::multihost::url::{SplitBrainPolicy, TargetSessionAttrs};

const PRIMARY: usize = 0;
const S1: usize = 1;
const S2: usize = 2;

struct World {
    start: Instant,
    topo: TopologyState,
    session: Session,
}

fn obs(role: ServerRole, timeline: Option<u32>, lsn: u64) -> Observation {
    Observation {
        role,
        timeline,
        lsn: Some(lsn),
        receive_lsn: None,
        replay_timestamp: None,
    }
}

impl World {
    /// Host 0 primary at LSN 100, hosts 1 and 2 caught-up standbys; the session has a
    /// primary session and a standby session to host 1.
    fn new() -> World {
        World::with(true)
    }

    fn with(read_your_writes: bool) -> World {
        let settings = Settings {
            target: TargetSessionAttrs::ReadWrite,
            monitor_interval: Duration::from_secs(1),
            max_replica_lag: Some(Duration::from_secs(10)),
            replica_retry_interval: Duration::from_secs(30),
            failover_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            split_brain: SplitBrainPolicy::Refuse,
        };
        let mut w = World {
            start: Instant::now(),
            topo: TopologyState::new(3, settings),
            session: Session::new(true, read_your_writes, true),
        };
        w.primary_at(100);
        w.standby_at(S1, 100);
        w.standby_at(S2, 100);
        w.primary_at(100);
        let (host, epoch) = w.topo.primary().unwrap();
        w.session.primary_opened(host, epoch);
        w.session.standby_changed(Some(S1), &mut w.topo);
        w
    }

    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.clock_ms())
    }

    fn clock_ms(&self) -> u64 {
        // Every call moves the clock on by a millisecond, so that events are ordered.
        use std::sync::atomic::{AtomicU64, Ordering};
        static TICK: AtomicU64 = AtomicU64::new(0);
        TICK.fetch_add(1, Ordering::Relaxed)
    }

    fn observe(&mut self, host: usize, o: Observation) {
        let start = self.now();
        self.topo.probe_started(host, start);
        let end = self.now();
        self.topo.observed(host, start, o, end);
    }

    fn primary_at(&mut self, lsn: u64) {
        let host = self.topo.primary().map(|(h, _)| h).unwrap_or(PRIMARY);
        self.observe(host, obs(ServerRole::Primary, Some(1), lsn));
    }

    fn standby_at(&mut self, host: usize, lsn: u64) {
        self.observe(host, obs(ServerRole::Standby, None, lsn));
    }

    fn route(&mut self, st: &Statement) -> Route {
        let now = self.now();
        self.session.route(st, &mut self.topo, true, now)
    }

    fn outcome(&mut self, st: &Statement, route: Route, outcome: Outcome) -> Next {
        let now = self.now();
        self.session
            .outcome(st, route, outcome, false, &mut self.topo, now)
    }

    /// Routes `st`, reports `outcome`, returns the route.
    fn run(&mut self, st: &Statement, outcome: Outcome) -> (Route, Next) {
        let route = self.route(st);
        let next = self.outcome(st, route, outcome);
        (route, next)
    }
}

fn load(sql: &str) -> Statement {
    Statement {
        class: classify(sql, &[]),
        via: Via::Load,
        diesel_tx: DieselTx::None,
    }
}

fn exec(sql: &str) -> Statement {
    Statement {
        class: classify(sql, &[]),
        via: Via::Primary,
        diesel_tx: DieselTx::None,
    }
}

fn in_diesel_tx(mut st: Statement) -> Statement {
    st.diesel_tx = DieselTx::Open;
    st
}

const ON_PRIMARY: Route = Route::Primary {
    host: PRIMARY,
    connect: false,
};

#[test]
fn reads_go_to_the_standby_writes_and_transactions_to_the_primary() {
    let mut w = World::new();
    assert_eq!(w.route(&load("SELECT * FROM t")), Route::Standby(S1));
    assert_eq!(w.route(&load("SELECT * FROM t FOR UPDATE")), ON_PRIMARY);
    assert_eq!(
        w.route(&load("INSERT INTO t VALUES (1) RETURNING id")),
        ON_PRIMARY
    );
    assert_eq!(
        w.route(&exec("SELECT 1")),
        ON_PRIMARY,
        "execute always on the primary"
    );
    assert_eq!(w.route(&in_diesel_tx(load("SELECT 1"))), ON_PRIMARY);
    // A manual BEGIN keeps reads on the primary until COMMIT.
    w.run(&exec("BEGIN"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    w.run(&exec("COMMIT"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // Pins.
    w.session.pin();
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    w.session.unpin();
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    w.run(&exec("SET search_path TO s2"), Outcome::Ok);
    assert!(w.session.is_pinned());
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
}

#[test]
fn replica_reads_off_keeps_everything_on_the_primary() {
    let mut w = World::new();
    w.session = Session::new(false, true, true);
    let (host, epoch) = w.topo.primary().unwrap();
    w.session.primary_opened(host, epoch);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
}

#[test]
fn a_read_after_a_write_waits_for_the_standby_to_replay_it() {
    let mut w = World::new();
    w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::Ok);
    // The write's position is not known yet: the primary, and the monitor is asked for a
    // primary position at once.
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    let now = w.now();
    assert!(w.topo.next_probe(PRIMARY, now) <= now);
    // The primary is at 150 now; the standby has not replayed it.
    w.primary_at(150);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    w.standby_at(S1, 140);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    // Caught up: back on the standby.
    w.standby_at(S1, 150);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // A read-only statement on the primary is not a write.
    w.session.pin();
    w.run(&load("SELECT 1"), Outcome::Ok);
    w.session.unpin();
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
}

#[test]
fn a_connection_that_never_wrote_pays_nothing() {
    let mut w = World::new();
    for _ in 0..3 {
        w.run(&load("SELECT 1"), Outcome::Ok);
    }
    // No floor: no demand on the monitor.
    let now = w.now();
    assert!(w.topo.next_probe(PRIMARY, now) > now);
}

#[test]
fn transactions_savepoints_and_reads_in_them_are_writes_only_when_they_write() {
    let mut w = World::new();
    for sql in [
        "BEGIN",
        "SAVEPOINT diesel_savepoint_1",
        "SELECT 1",
        "RELEASE SAVEPOINT diesel_savepoint_1",
    ] {
        w.run(&in_diesel_tx(exec(sql)), Outcome::Ok);
    }
    w.run(&in_diesel_tx(exec("COMMIT")), Outcome::Ok);
    assert_eq!(
        w.route(&load("SELECT 1")),
        Route::Standby(S1),
        "nothing was written"
    );
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&exec("UPDATE t SET a = 1"), Outcome::Ok);
    assert_eq!(
        w.route(&load("SELECT 1")),
        ON_PRIMARY,
        "still in the transaction"
    );
    w.run(&exec("COMMIT"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY, "committed a write");
    // A rolled back transaction wrote nothing that a read could miss.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&exec("UPDATE t SET a = 1"), Outcome::Ok);
    w.run(&exec("ROLLBACK"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
}

#[test]
fn read_your_writes_off_reads_from_the_standby_at_once() {
    let mut w = World::with(false);
    w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
}

#[test]
fn a_causal_token_holds_reads_until_a_standby_has_it() {
    let mut w = World::with(false);
    let token = CausalToken {
        position: Position {
            timeline: 1,
            lsn: 300,
        },
    };
    w.session.read_after(token);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    w.primary_at(300);
    w.standby_at(S1, 300);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // Forgotten when the connection goes back to its pool.
    w.session.read_after(CausalToken {
        position: Position {
            timeline: 1,
            lsn: 999,
        },
    });
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    assert!(!w.session.recycle(&w.topo));
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
}

#[test]
fn a_token_from_before_a_failover_is_held_to_the_new_primary() {
    let mut w = World::with(false);
    // A token from timeline 1 at 500: the write may have been lost in the failover.
    let token = CausalToken {
        position: Position {
            timeline: 1,
            lsn: 500,
        },
    };
    // Host 1 is promoted (timeline 2) at 400 and host 2 follows it.
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    w.observe(S1, obs(ServerRole::Primary, Some(2), 400));
    w.session.read_after(token);
    // Re-based on the new primary: its position when first seen after the token.
    assert_eq!(
        w.route(&load("SELECT 1")),
        Route::Primary {
            host: S1,
            connect: true
        }
    );
    w.observe(S1, obs(ServerRole::Primary, Some(2), 410));
    w.standby_at(S2, 410);
    w.observe(S1, obs(ServerRole::Primary, Some(2), 410));
    w.session.standby_changed(Some(S2), &mut w.topo);
    // Standby 2 has 410 on the new timeline: every surviving write, though < 500.
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S2));
}

#[test]
fn a_transaction_whose_primary_fails_is_lost_until_rolled_back() {
    let mut w = World::new();
    let begin = exec("BEGIN");
    w.run(&begin, Outcome::Ok);
    let insert = in_diesel_tx(exec("INSERT INTO t VALUES (2)"));
    let (_, next) = w.run(&insert, Outcome::ConnectionLost);
    assert_eq!(next, Next::Done, "never re-sent");
    assert!(w.session.is_broken());
    // Every later statement of the transaction fails without being sent...
    for sql in [
        "INSERT INTO t VALUES (3)",
        "SELECT 1",
        "SAVEPOINT s",
        "ROLLBACK TO SAVEPOINT s",
    ] {
        assert_eq!(
            w.route(&in_diesel_tx(exec(sql))),
            Route::Refuse(Refusal::TransactionLost {
                host: PRIMARY,
                committing: false
            }),
            "{sql}"
        );
    }
    // ... even when the process already knows a new primary.
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    w.observe(S1, obs(ServerRole::Primary, Some(2), 120));
    assert!(matches!(
        w.route(&in_diesel_tx(exec("INSERT INTO t VALUES (4)"))),
        Route::Refuse(_)
    ));
    // The ROLLBACK ends it without I/O; the connection moves on.
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), Route::Absorb);
    assert!(!w.session.is_broken());
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (5)")),
        Route::Primary {
            host: S1,
            connect: true
        }
    );
}

#[test]
fn a_commit_of_a_lost_transaction_fails_and_diesel_s_rollback_is_answered() {
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(
        &in_diesel_tx(exec("INSERT INTO t VALUES (1)")),
        Outcome::ConnectionLost,
    );
    assert_eq!(
        w.route(&in_diesel_tx(exec("COMMIT"))),
        Route::Refuse(Refusal::TransactionLost {
            host: PRIMARY,
            committing: false
        })
    );
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), Route::Absorb);
    // Only the ROLLBACK right after: a later one goes to the server.
    assert!(matches!(w.route(&exec("ROLLBACK")), Route::Primary { .. }));
}

#[test]
fn a_connection_lost_during_commit_leaves_the_outcome_unknown() {
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&in_diesel_tx(exec("INSERT INTO t VALUES (1)")), Outcome::Ok);
    let (_, next) = w.run(&in_diesel_tx(exec("COMMIT")), Outcome::ConnectionLost);
    assert_eq!(
        next,
        Next::Fail(Refusal::TransactionLost {
            host: PRIMARY,
            committing: true
        })
    );
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), Route::Absorb);
}

#[test]
fn a_commit_not_sent_because_the_session_is_closed_reports_the_lost_transaction() {
    for diesel in [true, false] {
        let mut w = World::new();
        let st = |sql: &str| {
            if diesel {
                in_diesel_tx(exec(sql))
            } else {
                exec(sql)
            }
        };
        w.run(&exec("BEGIN"), Outcome::Ok);
        w.run(&st("INSERT INTO t VALUES (1)"), Outcome::Ok);
        let (_, next) = w.run(&st("COMMIT"), Outcome::NotSent);
        assert_eq!(
            next,
            Next::Fail(Refusal::TransactionLost {
                host: PRIMARY,
                committing: false
            }),
            "diesel: {diesel}"
        );
        // Diesel's ROLLBACK after the failed COMMIT is answered; the transaction is over.
        assert_eq!(w.route(&st("ROLLBACK")), Route::Absorb, "diesel: {diesel}");
        assert!(!w.session.is_broken());
        assert!(matches!(
            w.route(&exec("INSERT INTO t VALUES (2)")),
            Route::Primary { .. } | Route::WaitForPrimary | Route::WaitForAllHosts
        ));
    }
}

#[test]
fn a_rollback_whose_connection_fails_succeeds() {
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    let (_, next) = w.run(&in_diesel_tx(exec("ROLLBACK")), Outcome::ConnectionLost);
    assert_eq!(next, Next::Succeed);
    assert!(!w.session.is_broken());
}

#[test]
fn lost_session_state_is_reported_once() {
    let mut w = World::new();
    w.run(&exec("SET ROLE r_lim"), Outcome::Ok);
    // A read runs on the primary (the session's state is there), and its connection fails.
    let (route, next) = w.run(&load("SELECT current_user"), Outcome::ConnectionLost);
    assert_eq!(route, ON_PRIMARY);
    assert_eq!(next, Next::Done, "not re-run without the session's state");
    assert_eq!(
        w.route(&load("SELECT current_user")),
        Route::Refuse(Refusal::SessionLost { host: PRIMARY })
    );
    // Once: then a fresh session, and reads may go to standbys again.
    assert_eq!(w.route(&load("SELECT current_user")), Route::Standby(S1));
}

#[test]
fn session_state_on_a_primary_that_moved_is_reported_before_anything_is_sent() {
    let mut w = World::new();
    w.run(&exec("SET search_path TO s2"), Outcome::Ok);
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    w.observe(S1, obs(ServerRole::Primary, Some(2), 120));
    assert_eq!(
        w.route(&load("SELECT v FROM t")),
        Route::Refuse(Refusal::SessionLost { host: PRIMARY })
    );
    // Without session state the connection simply moves (nothing was sent).
    let mut w = World::new();
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    w.observe(S1, obs(ServerRole::Primary, Some(2), 120));
    assert!(w.session.primary_is_stale(&w.topo));
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (1)")),
        Route::Primary {
            host: S1,
            connect: true
        }
    );
}

#[test]
fn a_read_only_error_from_the_primary_reruns_only_what_cannot_have_committed() {
    // One INSERT: nothing applied, re-run on the new primary.
    let mut w = World::new();
    let (_, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::ReadOnly);
    assert_eq!(next, Next::RetryOnNewPrimary);
    assert!(
        w.topo.primary().is_err(),
        "the demoted primary is forgotten"
    );
    // A procedure, a DO block, a batch: they may have committed work first.
    for sql in [
        "CALL p_dup(61)",
        "DO $$ BEGIN INSERT INTO t VALUES (1); COMMIT; END $$",
        "INSERT INTO t VALUES (1); COMMIT; SET TRANSACTION READ ONLY; INSERT INTO t VALUES (2)",
    ] {
        let mut w = World::new();
        let (_, next) = w.run(&exec(sql), Outcome::ReadOnly);
        assert_eq!(next, Next::Done, "{sql}");
    }
    // Inside a transaction, or with session state, the application may have asked for a
    // read-only transaction: not a demotion.
    let mut w = World::new();
    w.run(&exec("BEGIN READ ONLY"), Outcome::Ok);
    let (_, next) = w.run(
        &in_diesel_tx(exec("INSERT INTO t VALUES (1)")),
        Outcome::ReadOnly,
    );
    assert_eq!(next, Next::Done);
    assert!(w.topo.primary().is_ok());
    let mut w = World::new();
    w.run(&exec("SET default_transaction_read_only = on"), Outcome::Ok);
    let (_, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::ReadOnly);
    assert_eq!(next, Next::Done);
    assert!(w.topo.primary().is_ok());
    // A target that is not writable: 25006 is expected.
    let mut w = World::new();
    w.session = Session::new(true, true, false);
    w.session.primary_opened(PRIMARY, w.topo.epoch());
    let (_, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::ReadOnly);
    assert_eq!(next, Next::Done);
}

#[test]
fn a_write_whose_connection_fails_is_never_re_sent() {
    let mut w = World::new();
    let (_, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::ConnectionLost);
    assert_eq!(next, Next::Done);
    // A read is.
    let mut w = World::new();
    w.session.pin();
    let (_, next) = w.run(&load("SELECT 1"), Outcome::ConnectionLost);
    assert_eq!(next, Next::RetryOnNewPrimary);
    // So is a lone BEGIN (a pooled connection's first transaction on a primary that died
    // unseen): it opened nothing that survives. Not `BEGIN; INSERT`, not `COMMIT AND CHAIN`.
    let mut w = World::new();
    let (_, next) = w.run(&exec("BEGIN"), Outcome::ConnectionLost);
    assert_eq!(next, Next::RetryOnNewPrimary);
    let mut w = World::new();
    let (_, next) = w.run(
        &exec("BEGIN; INSERT INTO t VALUES (1)"),
        Outcome::ConnectionLost,
    );
    assert_eq!(next, Next::Done);
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    let (_, next) = w.run(&exec("COMMIT AND CHAIN"), Outcome::ConnectionLost);
    assert_eq!(next, Next::Done);
    // So is anything that was never sent.
    let mut w = World::new();
    let (_, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::NotSent);
    assert_eq!(next, Next::RetryOnNewPrimary);
    // But only once.
    let mut w = World::new();
    let st = exec("INSERT INTO t VALUES (1)");
    let route = w.route(&st);
    let now = w.now();
    let next = w
        .session
        .outcome(&st, route, Outcome::NotSent, true, &mut w.topo, now);
    assert_eq!(next, Next::Done);
}

#[test]
fn a_read_that_fails_on_a_standby_runs_again_on_the_primary() {
    for outcome in [
        Outcome::ReadOnly,
        Outcome::Database,
        Outcome::ConnectionLost,
    ] {
        let mut w = World::new();
        let (route, next) = w.run(&load("SELECT f()"), outcome);
        assert_eq!(route, Route::Standby(S1));
        assert_eq!(next, Next::RetryOnPrimary, "{outcome:?}");
        assert_eq!(w.session.last(), None, "nothing stale after a failure");
    }
    // A lost standby connection marks the host down.
    let mut w = World::new();
    w.run(&load("SELECT 1"), Outcome::ConnectionLost);
    assert!(!w.topo.readable_standbys().contains(&S1));
    // A client-side error is the caller's.
    let mut w = World::new();
    let (_, next) = w.run(&load("SELECT 1"), Outcome::Client);
    assert_eq!(next, Next::Done);
}

#[test]
fn a_writing_function_re_run_on_the_primary_raises_the_floor() {
    let mut w = World::new();
    let st = load("SELECT add_audit('x')");
    w.run(&st, Outcome::ReadOnly);
    let now = w.now();
    let route = w.session.route(&st, &mut w.topo, false, now);
    assert_eq!(route, ON_PRIMARY);
    let now = w.now();
    w.session
        .outcome(&st, route, Outcome::Ok, true, &mut w.topo, now);
    assert_eq!(
        w.route(&load("SELECT 1")),
        ON_PRIMARY,
        "it wrote: read-your-writes"
    );
}

#[test]
fn split_brain_refuses_writes_and_keeps_reads_on_standbys() {
    let mut w = World::new();
    w.observe(S2, obs(ServerRole::Primary, Some(2), 120));
    let refused = w.route(&exec("INSERT INTO t VALUES (1)"));
    assert_eq!(
        refused,
        Route::Refuse(Refusal::SplitBrain((PRIMARY, Some(1)), (S2, Some(2))))
    );
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // A transaction already open may still be rolled back.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.observe(S2, obs(ServerRole::Primary, Some(2), 120));
    assert!(matches!(
        w.route(&in_diesel_tx(exec("INSERT INTO t VALUES (1)"))),
        Route::Refuse(_)
    ));
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), ON_PRIMARY);
}

#[test]
fn with_no_primary_known_writes_wait_and_reads_go_on() {
    let mut w = World::new();
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (1)")),
        Route::WaitForPrimary
    );
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // A transaction in progress keeps its session: its next statement finds out.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    assert_eq!(
        w.route(&in_diesel_tx(exec("INSERT INTO t VALUES (1)"))),
        ON_PRIMARY
    );
}

#[test]
fn a_primary_lost_and_found_again_gets_a_new_session() {
    let mut w = World::new();
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    w.observe(PRIMARY, obs(ServerRole::Primary, Some(1), 100));
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (1)")),
        Route::Primary {
            host: PRIMARY,
            connect: true
        }
    );
}

#[test]
fn recycling_forgets_pins_and_drops_what_holds_state() {
    let mut w = World::new();
    w.session.pin();
    assert!(!w.session.recycle(&w.topo));
    assert!(!w.session.is_pinned());
    w.run(&exec("SET search_path TO s2"), Outcome::Ok);
    assert!(
        w.session.recycle(&w.topo),
        "a server session with state is dropped"
    );
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    assert!(w.session.recycle(&w.topo), "an open transaction");
    let mut w = World::new();
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    assert!(
        w.session.recycle(&w.topo),
        "the process knows its primary is gone"
    );
}

#[test]
fn readers_are_counted_for_the_standby_in_use_and_the_one_being_opened() {
    let mut w = World::new();
    assert_eq!(w.topo.hosts[S1].readers, 1);
    // The standby session fails; the next read wants another one.
    let now = w.now();
    w.topo
        .failed(S1, now, crate::multihost::topology::HostFailure::Refused);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    assert_eq!(w.session.wanted_standby(), Some(S2));
    assert_eq!((w.topo.hosts[S1].readers, w.topo.hosts[S2].opening), (1, 1));
    w.session.standby_changed(Some(S2), &mut w.topo);
    assert_eq!((w.topo.hosts[S1].readers, w.topo.hosts[S2].readers), (0, 1));
    assert_eq!(w.topo.hosts[S2].opening, 0);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S2));
    w.session.sessions_dropped(&mut w.topo);
    assert_eq!(w.topo.hosts[S2].readers, 0);
}

#[test]
fn validity_checks_cost_nothing_right_after_a_statement() {
    let mut w = World::new();
    let before = w.now();
    assert!(!w.session.recently_alive(before));
    w.run(&load("SELECT 1"), Outcome::Ok);
    let now = w.now();
    assert!(w.session.recently_alive(now));
    assert!(!w.session.recently_alive(now + ALIVE_WINDOW));
}

#[test]
fn with_no_primary_and_no_standby_session_a_read_opens_one_at_once() {
    let mut w = World::new();
    w.session.sessions_dropped(&mut w.topo);
    let now = w.now();
    w.topo.failed(
        PRIMARY,
        now,
        crate::multihost::topology::HostFailure::Refused,
    );
    // Readers are spread: S1 had this connection's reader, now none.
    let route = w.route(&load("SELECT 1"));
    assert!(matches!(route, Route::ConnectStandby(S1 | S2)), "{route:?}");
    // A write still waits for a primary.
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (1)")),
        Route::WaitForPrimary
    );
}

#[test]
fn a_first_write_waits_until_every_host_was_seen() {
    let mut w = World::new();
    // A fourth host never answered yet: a second writable host could still appear.
    let mut topo = TopologyState::new(4, w.topo.settings.clone());
    std::mem::swap(&mut w.topo, &mut topo);
    w.observe(PRIMARY, obs(ServerRole::Primary, Some(1), 100));
    w.session.primary_opened(PRIMARY, w.topo.epoch());
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (1)")),
        Route::WaitForAllHosts
    );
    assert_eq!(w.route(&exec("BEGIN")), Route::WaitForAllHosts);
    // Reads on the primary need not wait.
    w.session.pin();
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    let now = w.now();
    for host in 1..4 {
        w.topo
            .failed(host, now, crate::multihost::topology::HostFailure::Refused);
    }
    assert_eq!(w.route(&exec("INSERT INTO t VALUES (1)")), ON_PRIMARY);
}

#[test]
fn an_abandoned_statement_is_never_re_sent_and_suspects_no_server() {
    let mut w = World::new();
    let epoch = w.topo.epoch();
    // A write outside a transaction: unknown outcome, nothing re-run, the primary stays.
    let (route, next) = w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::Abandoned);
    assert_eq!(route, ON_PRIMARY);
    assert_eq!(next, Next::Done);
    assert!(!w.session.is_broken());
    assert_eq!(
        w.topo.primary(),
        Ok((PRIMARY, epoch)),
        "the server is not suspected"
    );
    assert_eq!(w.session.primary_session(), None, "the session was closed");
    assert_eq!(
        w.route(&exec("INSERT INTO t VALUES (2)")),
        Route::Primary {
            host: PRIMARY,
            connect: true
        }
    );
    // A read abandoned on a standby: the standby stays readable.
    let (route, next) = w.run(&load("SELECT 1"), Outcome::Abandoned);
    assert_eq!(route, Route::Standby(S1));
    assert_eq!(next, Next::Done);
    assert!(w.topo.readable_standbys().contains(&S1));
}

#[test]
fn an_abandoned_statement_loses_its_transaction_or_session_state() {
    // Inside a transaction: the transaction is lost until rolled back.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(
        &in_diesel_tx(exec("INSERT INTO t VALUES (1)")),
        Outcome::Abandoned,
    );
    assert!(w.session.is_broken());
    assert_eq!(
        w.route(&in_diesel_tx(exec("INSERT INTO t VALUES (2)"))),
        Route::Refuse(Refusal::TransactionLost {
            host: PRIMARY,
            committing: false
        })
    );
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), Route::Absorb);
    assert!(!w.session.is_broken());

    // During COMMIT: the outcome is unknown, and said so until the ROLLBACK.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&in_diesel_tx(exec("INSERT INTO t VALUES (1)")), Outcome::Ok);
    w.run(&in_diesel_tx(exec("COMMIT")), Outcome::Abandoned);
    assert_eq!(
        w.route(&in_diesel_tx(exec("SELECT 1"))),
        Route::Refuse(Refusal::TransactionLost {
            host: PRIMARY,
            committing: true
        })
    );
    assert_eq!(w.route(&in_diesel_tx(exec("ROLLBACK"))), Route::Absorb);

    // With session state: reported once.
    let mut w = World::new();
    w.run(&exec("SET search_path TO s2"), Outcome::Ok);
    w.run(&load("SELECT 1"), Outcome::Abandoned);
    assert_eq!(
        w.route(&load("SELECT 1")),
        Route::Refuse(Refusal::SessionLost { host: PRIMARY })
    );

    // A BEGIN abandoned: its session is closed, no transaction is open.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Abandoned);
    assert!(!w.session.is_broken());
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
}

#[test]
fn a_batch_with_transaction_control_that_fails_part_way_may_leave_a_transaction_open() {
    let mut w = World::new();
    // `BEGIN` ran, the insert failed: the server's session is in a transaction.
    let (route, _) = w.run(&exec("BEGIN; INSERT INTO t VALUES (1)"), Outcome::Database);
    assert_eq!(route, ON_PRIMARY);
    // Reads stay on the primary (in that transaction), and a pool would not reuse it.
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
    assert!(w.session.recycle(&w.topo));
    // Its end frees the connection again.
    let mut w = World::new();
    w.run(&exec("BEGIN; INSERT INTO t VALUES (1)"), Outcome::Database);
    w.run(&exec("ROLLBACK"), Outcome::Ok);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // One failing statement, even a transaction-control one, leaves nothing unsure.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&in_diesel_tx(exec("COMMIT")), Outcome::Database);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // A batch that opens no transaction leaves none open outside one, even after a
    // 25006: a demoted primary is still suspected and the next write re-run.
    let mut w = World::new();
    w.run(
        &exec(
            "INSERT INTO t VALUES (1); COMMIT; SET TRANSACTION READ ONLY; INSERT INTO t VALUES (2)",
        ),
        Outcome::ReadOnly,
    );
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    assert!(!w.session.recycle(&w.topo));
    // Inside a transaction, `<error>; COMMIT` may not have reached its COMMIT.
    let mut w = World::new();
    w.run(&exec("BEGIN"), Outcome::Ok);
    w.run(&exec("INSERT INTO t VALUES (1); COMMIT"), Outcome::Database);
    assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
}

#[test]
fn a_standby_session_waiting_to_be_proven_is_kept_not_traded_for_another() {
    // A fresh topology: both standbys seen, neither yet seen to follow this primary.
    let mut w = World {
        start: Instant::now(),
        topo: TopologyState::new(3, World::new().topo.settings.clone()),
        session: Session::new(true, true, true),
    };
    w.primary_at(100);
    w.standby_at(S1, 100);
    w.standby_at(S2, 100);
    let (host, epoch) = w.topo.primary().unwrap();
    w.session.primary_opened(host, epoch);
    w.session.standby_changed(Some(S1), &mut w.topo);
    assert!(w.topo.readable_standbys().is_empty());
    // Reads go to the primary meanwhile, and no session to S2 is asked for (which would
    // then be traded back for one to S1, and so on).
    for _ in 0..3 {
        assert_eq!(w.route(&load("SELECT 1")), ON_PRIMARY);
        assert_eq!(w.session.wanted_standby, None);
        assert_eq!(w.session.standby, Some(S1));
    }
    // Once S1 is proven, reads run there.
    w.primary_at(100);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    // A standby that is down is left for one that may serve reads.
    let mut w = World::new();
    let now = w.now();
    w.topo
        .failed(S1, now, crate::multihost::topology::HostFailure::Refused);
    w.route(&load("SELECT 1"));
    assert_eq!(w.session.wanted_standby, Some(S2));
}

#[test]
fn reads_move_to_a_less_used_standby_only_once_it_has_the_connection_s_writes() {
    let mut w = World::new();
    // Three other connections of the process read from S1, none from S2: S2 is less used.
    for _ in 0..3 {
        w.topo.count_reader(S1, false, true);
    }
    w.run(&exec("INSERT INTO t VALUES (1)"), Outcome::Ok);
    w.primary_at(150);
    w.standby_at(S1, 150);
    w.standby_at(S2, 140);
    // S1 has the write, S2 not yet: the read stays on S1, no session to S2 is asked for.
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    assert_eq!(w.session.wanted_standby(), None);
    // Once S2 has it, the connection moves there (the read itself still runs on S1).
    w.standby_at(S2, 150);
    assert_eq!(w.route(&load("SELECT 1")), Route::Standby(S1));
    assert_eq!(w.session.wanted_standby(), Some(S2));
}
