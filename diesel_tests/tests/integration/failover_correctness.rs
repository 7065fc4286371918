//! Failover correctness (issue 6): no torn transaction, no write applied twice, no session
//! state lost silently, reads and pools that carry on through a failover. Each defect of
//! the issue as a regression test, beside a plain `PgConnection` doing the same thing where
//! the issue asks for one. Every test owns its cluster when it changes the topology.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{Integer, Text};

use crate::multihost::*;
use diesel_multidb::StatementRoute;
use diesel_multidb_testkit::PgCluster;

/// Small timeouts and a fast monitor: each test takes a few seconds.
pub(crate) const FAST: &str = "connect_timeout=2&monitor_interval=100ms&failover_timeout=10s";

/// A cluster of its own with `standbys` standbys, table `fo (v int)` (no unique
/// constraint: a write applied twice shows as two rows) and `sql` run on the primary,
/// replicated everywhere.
pub(crate) fn cluster(standbys: usize, sql: &str) -> PgCluster {
    crate::trace();
    let cluster = PgCluster::start(standbys);
    let mut pg = plain(cluster.primary_port());
    pg.batch_execute(&format!("CREATE TABLE fo (v int NOT NULL); {sql}"))
        .unwrap_or_else(|e| panic!("creating the test schema: {e}"));
    cluster.wait_for_replay();
    cluster
}

/// A plain `PgConnection` to one node (the control).
fn plain(port: u16) -> PgConnection {
    PgConnection::establish(&url(&[port], "postgres", ""))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"))
}

fn insert<C: Connection<Backend = Pg>>(conn: &mut C, v: i32) -> QueryResult<usize> {
    diesel::sql_query(format!("INSERT INTO fo (v) VALUES ({v})")).execute(conn)
}

#[derive(Debug, QueryableByName)]
struct Port {
    #[diesel(sql_type = Integer)]
    port: i32,
}

/// Inserts `v` and returns the port of the server that took it.
fn insert_port(conn: &mut Conn, v: i32) -> QueryResult<u16> {
    diesel::sql_query(format!(
        "INSERT INTO fo (v) VALUES ({v}) RETURNING inet_server_port() AS port"
    ))
    .get_result::<Port>(conn)
    .map(|p| p.port as u16)
}

/// How many rows `fo` holds with `v` in `values`, asked on one node directly.
pub(crate) fn count(port: u16, values: &[i32]) -> i64 {
    let list: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    query_in(
        port,
        "postgres",
        &format!("SELECT count(*) FROM fo WHERE v IN ({})", list.join(",")),
    )
    .parse()
    .unwrap()
}

/// A text value and the port of the server that produced it.
#[derive(Debug, QueryableByName)]
struct TextPort {
    #[diesel(sql_type = Text)]
    v: String,
    #[diesel(sql_type = Integer)]
    port: i32,
}

fn read_text<C: Connection<Backend = Pg> + diesel::connection::LoadConnection>(
    conn: &mut C,
    sql: &str,
) -> QueryResult<TextPort> {
    diesel::sql_query(sql).get_result(conn)
}

pub(crate) fn is_closed(e: &Error) -> bool {
    matches!(
        e,
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
    )
}

pub(crate) fn describe(e: &Error) -> String {
    match e {
        Error::DatabaseError(kind, info) => format!(
            "DatabaseError({kind:?}): {}",
            info.message()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => format!("{other:?}"),
    }
}

/// What one statement returned, kept for the assertions after the threads are joined.
#[derive(Debug, Clone)]
struct Step {
    label: &'static str,
    ok: bool,
    closed: bool,
    not_in_transaction: bool,
    text: String,
}

impl Step {
    fn of<T>(label: &'static str, result: &QueryResult<T>) -> Step {
        match result {
            Ok(_) => Step {
                label,
                ok: true,
                closed: false,
                not_in_transaction: false,
                text: "Ok".into(),
            },
            Err(e) => Step {
                label,
                ok: false,
                closed: is_closed(e),
                not_in_transaction: matches!(e, Error::NotInTransaction),
                text: describe(e),
            },
        }
    }
}

fn show(who: &str, steps: &[Step]) {
    for s in steps {
        eprintln!("  {who:<22} {:<24} {}", s.label, s.text);
    }
}

fn find<'a>(steps: &'a [Step], label: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.label == label)
        .unwrap_or_else(|| panic!("no step {label} in {steps:#?}"))
}

/// Runs `failover` between the two waits of `barrier` (the workers' "before" and "after"),
/// passing the workers on even if it panics (then panics after them).
fn failover_between(barrier: &Barrier, failover: impl FnOnce()) {
    barrier.wait();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(failover));
    barrier.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Kills the current primary and promotes `to`.
pub(crate) fn kill_and_promote(cluster: &PgCluster, to: u16) {
    cluster.kill(cluster.current_primary_port());
    cluster.promote(to);
}

/// `conn.transaction(|c| { insert base+1; [failover]; insert base+2 (ignored); insert
/// base+3 (ignored); Ok(()) })`.
fn diesel_form<C: Connection<Backend = Pg>>(
    conn: &mut C,
    base: i32,
    barrier: &Barrier,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let result = conn.transaction::<(), Error, _>(|c| {
        steps.push(Step::of("insert 1", &insert(c, base + 1)));
        barrier.wait();
        barrier.wait();
        steps.push(Step::of("insert 2", &insert(c, base + 2)));
        steps.push(Step::of("insert 3", &insert(c, base + 3)));
        Ok(())
    });
    steps.push(Step::of("transaction()", &result));
    steps
}

#[test]
fn a_failover_inside_a_diesel_transaction_fails_the_rest_of_it_and_commits_nothing() {
    let cluster = cluster(1, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let mut conn = connect(&url(&all_ports(&cluster), "postgres", FAST));
    let mut control = plain(old);
    let barrier = Barrier::new(3);
    let (wrapper, ctl) = std::thread::scope(|s| {
        let w = s.spawn(|| diesel_form(&mut conn, 0, &barrier));
        let c = s.spawn(|| diesel_form(&mut control, 100, &barrier));
        failover_between(&barrier, || kill_and_promote(&cluster, new));
        (w.join().unwrap(), c.join().unwrap())
    });
    eprintln!("torn transaction, Diesel form:");
    show("MultiHostConnection", &wrapper);
    show("PgConnection (control)", &ctl);

    // The control: every statement after the failure fails, and so does the transaction.
    assert!(find(&ctl, "insert 1").ok, "{ctl:#?}");
    assert!(!find(&ctl, "insert 2").ok, "{ctl:#?}");
    assert!(!find(&ctl, "insert 3").ok, "{ctl:#?}");
    assert!(!find(&ctl, "transaction()").ok, "{ctl:#?}");
    assert_eq!(count(new, &[101, 102, 103]), 0);

    // The wrapper does the same.
    assert!(find(&wrapper, "insert 1").ok, "{wrapper:#?}");
    assert!(!find(&wrapper, "insert 2").ok, "{wrapper:#?}");
    let third = find(&wrapper, "insert 3");
    assert!(
        !third.ok && third.closed,
        "insert 3 after the lost insert 2 must fail with ClosedConnection: {third:?}"
    );
    let tx = find(&wrapper, "transaction()");
    assert!(
        !tx.ok && tx.closed && !tx.not_in_transaction,
        "the transaction must fail with ClosedConnection (never NotInTransaction): {tx:?}"
    );
    assert_eq!(
        count(new, &[1, 2, 3]),
        0,
        "no row of the torn transaction may be committed on the new primary"
    );

    // After the closure returned, the connection works on the new primary.
    let port = insert_port(&mut conn, 4).expect("the first write after the transaction");
    assert_eq!(port, new, "the write after the transaction ran on {port}");
    assert_eq!(count(new, &[4]), 1);
    assert_routed_to_primary(&conn);
}

/// `BEGIN; insert base+1; [failover]; insert base+2; insert base+3; COMMIT; [ROLLBACK]`,
/// through `sql_query(..).execute` (`sql`) or `batch_execute`.
fn manual_form<C: Connection<Backend = Pg>>(
    conn: &mut C,
    base: i32,
    barrier: &Barrier,
    sql: bool,
    rollback: bool,
) -> Vec<Step> {
    let run = |c: &mut C, s: &str| run_via(c, s, sql);
    let mut steps = vec![Step::of("BEGIN", &run(conn, "BEGIN"))];
    steps.push(Step::of(
        "insert 1",
        &run(conn, &format!("INSERT INTO fo (v) VALUES ({})", base + 1)),
    ));
    barrier.wait();
    barrier.wait();
    steps.push(Step::of(
        "insert 2",
        &run(conn, &format!("INSERT INTO fo (v) VALUES ({})", base + 2)),
    ));
    steps.push(Step::of(
        "insert 3",
        &run(conn, &format!("INSERT INTO fo (v) VALUES ({})", base + 3)),
    ));
    steps.push(Step::of("COMMIT", &run(conn, "COMMIT")));
    if rollback {
        steps.push(Step::of("ROLLBACK", &run(conn, "ROLLBACK")));
    }
    steps
}

#[test]
fn a_failover_inside_a_manual_begin_fails_the_rest_and_the_commit() {
    let cluster = cluster(1, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    // `sql_query` forms then a ROLLBACK; `batch_execute` forms without a ROLLBACK.
    let mut with_rollback = connect(&url);
    let mut without = connect(&url);
    let mut control = plain(old);
    let barrier = Barrier::new(4);
    let (a, b, ctl) = std::thread::scope(|s| {
        let a = s.spawn(|| manual_form(&mut with_rollback, 10, &barrier, true, true));
        let b = s.spawn(|| manual_form(&mut without, 20, &barrier, false, false));
        let c = s.spawn(|| manual_form(&mut control, 110, &barrier, true, true));
        failover_between(&barrier, || kill_and_promote(&cluster, new));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    eprintln!("torn transaction, manual form:");
    show("wrapper, sql_query", &a);
    show("wrapper, batch_execute", &b);
    show("PgConnection (control)", &ctl);

    for label in ["insert 2", "insert 3", "COMMIT"] {
        assert!(!find(&ctl, label).ok, "control: {ctl:#?}");
    }
    assert_eq!(count(new, &[111, 112, 113]), 0);

    for (name, steps, base) in [("sql_query", &a, 10), ("batch_execute", &b, 20)] {
        assert!(find(steps, "BEGIN").ok, "{name}: {steps:#?}");
        assert!(find(steps, "insert 1").ok, "{name}: {steps:#?}");
        assert!(!find(steps, "insert 2").ok, "{name}: {steps:#?}");
        let third = find(steps, "insert 3");
        assert!(
            !third.ok && third.closed,
            "{name}: insert 3 must fail with ClosedConnection: {third:?}"
        );
        let commit = find(steps, "COMMIT");
        assert!(
            !commit.ok && commit.closed,
            "{name}: COMMIT of the torn transaction must fail with ClosedConnection: {commit:?}"
        );
        assert_eq!(
            count(new, &[base + 1, base + 2, base + 3]),
            0,
            "{name}: no row of the torn transaction may be committed"
        );
    }
    let rollback = find(&a, "ROLLBACK");
    assert!(
        rollback.ok,
        "a ROLLBACK after the failed COMMIT ends nothing more and must succeed: {rollback:?}"
    );

    for (name, conn, v) in [
        ("sql_query", &mut with_rollback, 14),
        ("batch", &mut without, 24),
    ] {
        let port = insert_port(conn, v)
            .unwrap_or_else(|e| panic!("{name}: the first write after the transaction: {e}"));
        assert_eq!(
            port, new,
            "{name}: the write after the transaction ran on {port}"
        );
        assert_eq!(count(new, &[v]), 1);
    }
}

fn dup_call(v: i32) -> String {
    format!("CALL p_dup({v})")
}

fn dup_batch(v: i32) -> String {
    format!(
        "INSERT INTO fo (v) VALUES ({v}); COMMIT; SET TRANSACTION READ ONLY; \
         INSERT INTO fo (v) VALUES ({v})"
    )
}

fn dup_do(v: i32) -> String {
    format!(
        "DO $$ BEGIN INSERT INTO fo (v) VALUES ({v}); COMMIT; SET TRANSACTION READ ONLY; \
         INSERT INTO fo (v) VALUES ({v}); END $$"
    )
}

fn run_via<C: Connection<Backend = Pg>>(
    conn: &mut C,
    sql: &str,
    sql_query: bool,
) -> QueryResult<()> {
    if sql_query {
        diesel::sql_query(sql).execute(conn).map(|_| ())
    } else {
        conn.batch_execute(sql)
    }
}

#[test]
fn a_write_that_committed_part_of_its_work_before_25006_is_never_rerun() {
    let cluster = cluster(
        1,
        "CREATE PROCEDURE p_dup(x int) LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO fo (v) VALUES (x);
             COMMIT;
             SET TRANSACTION READ ONLY;
             INSERT INTO fo (v) VALUES (x);
           END $$;
         CREATE PROCEDURE p_ins(x int) LANGUAGE sql AS $$ INSERT INTO fo (v) VALUES (x) $$;",
    );
    let (primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);
    // No periodic probe: the demotion below is learnt from the statements' 25006 alone.
    let slow = "connect_timeout=2&monitor_interval=1h&failover_timeout=10s";
    let mut conn = connect(&url(&all_ports(&cluster), "postgres", slow));
    // Another topology (the URL differs), for a single INSERT on the demoted primary.
    let mut single = connect(&url(
        &all_ports(&cluster),
        "postgres",
        &format!("{slow}&application_name=single"),
    ));
    assert_eq!(insert_port(&mut single, 1).unwrap(), primary);
    let mut control = plain(primary);
    type Case = (&'static str, i32, fn(i32) -> String, bool);
    let cases: [Case; 4] = [
        ("CALL p_dup (sql_query)", 61, dup_call, true),
        ("CALL p_dup (batch_execute)", 62, dup_call, false),
        (
            "batch INSERT; COMMIT; SET TRANSACTION READ ONLY; INSERT",
            63,
            dup_batch,
            false,
        ),
        ("DO block with COMMIT", 64, dup_do, false),
    ];
    for (name, v, make, via_sql_query) in cases {
        let started = Instant::now();
        let wrapped = run_via(&mut conn, &make(v), via_sql_query);
        let took = started.elapsed();
        let ctl = run_via(&mut control, &make(v + 100), via_sql_query);
        let (rows, ctl_rows) = (count(primary, &[v]), count(primary, &[v + 100]));
        eprintln!(
            "{name}: wrapper {rows} row(s) ({}, {took:?}); control {ctl_rows} row(s) ({})",
            Step::of("", &wrapped).text,
            Step::of("", &ctl).text
        );
        assert_eq!(ctl_rows, 1, "{name}: the control");
        assert!(
            matches!(
                wrapped,
                Err(Error::DatabaseError(
                    DatabaseErrorKind::ReadOnlyTransaction,
                    _
                ))
            ),
            "{name}: the server's 25006 must go back to the caller: {}",
            Step::of("", &wrapped).text
        );
        assert_eq!(
            rows, ctl_rows,
            "{name}: the write was applied {rows} times (a plain PgConnection: {ctl_rows})"
        );
        // The primary was not demoted: the next write runs on it.
        let started = Instant::now();
        let port = insert_port(&mut conn, v + 1000)
            .unwrap_or_else(|e| panic!("{name}: the next write failed: {}", describe(&e)));
        eprintln!("  next write on {port} after {:?}", started.elapsed());
        assert_eq!(port, primary);
    }

    // A primary that really was demoted: a CALL (which might have committed something
    // before its 25006) goes back to the caller, not re-run; a single INSERT is re-run on
    // the new primary, exactly once.
    cluster.query_one(
        primary,
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    cluster.query_one(primary, "SELECT pg_reload_conf()::text");
    cluster.promote(standby);
    std::thread::sleep(Duration::from_millis(200));
    let call = diesel::sql_query("CALL p_ins(71)").execute(&mut conn);
    let ctl_call = diesel::sql_query("CALL p_ins(171)").execute(&mut control);
    let ctl_insert = insert(&mut control, 172);
    eprintln!(
        "CALL on the demoted primary: wrapper {}, control {}; control INSERT {}",
        Step::of("", &call).text,
        Step::of("", &ctl_call).text,
        Step::of("", &ctl_insert).text,
    );
    assert!(
        ctl_call.is_err() && ctl_insert.is_err(),
        "the control on the demoted primary"
    );
    assert!(
        matches!(
            call,
            Err(Error::DatabaseError(
                DatabaseErrorKind::ReadOnlyTransaction,
                _
            ))
        ),
        "the CALL on the demoted primary: {}",
        Step::of("", &call).text
    );
    assert_eq!(
        (count(primary, &[71]), count(standby, &[71])),
        (0, 0),
        "a CALL that failed with 25006 must not be re-run"
    );
    let started = Instant::now();
    let port = insert_port(&mut conn, 72).expect("the write after the CALL's 25006");
    eprintln!(
        "the write after the CALL: on {port} after {:?}",
        started.elapsed()
    );
    assert_eq!(port, standby);
    assert_eq!((count(primary, &[72]), count(standby, &[72])), (0, 1));

    let started = Instant::now();
    let n = insert(&mut single, 73).unwrap_or_else(|e| {
        panic!(
            "a single INSERT answered 25006 by the demoted primary must be re-run: {}",
            describe(&e)
        )
    });
    eprintln!("single INSERT re-run: {n} row, {:?}", started.elapsed());
    assert_eq!(
        (count(primary, &[73]), count(standby, &[73])),
        (0, 1),
        "the single INSERT must be applied exactly once, on the new primary"
    );
    assert_routed_to_primary(&single);
    assert_eq!(
        single.primary_host().expect("a primary is known").port(),
        standby
    );
}

#[test]
fn session_state_on_a_lost_primary_is_never_dropped_silently() {
    let cluster = cluster(
        2,
        "CREATE ROLE r_lim NOLOGIN;
         CREATE SCHEMA s2;
         CREATE TABLE public.t (v text NOT NULL);
         CREATE TABLE s2.t (v text NOT NULL);
         INSERT INTO public.t VALUES ('public');
         INSERT INTO s2.t VALUES ('s2');
         GRANT USAGE ON SCHEMA s2 TO r_lim;
         GRANT SELECT ON public.t, s2.t TO r_lim;",
    );
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    const ROLE: &str = "SELECT current_user::text AS v, inet_server_port() AS port";
    const PATH: &str = "SELECT v, inet_server_port() AS port FROM t";
    struct Case {
        name: &'static str,
        set: &'static str,
        read: &'static str,
        with_state: &'static str,
        without: &'static str,
        during: bool,
    }
    let cases = [
        Case {
            name: "SET ROLE, read during the failover",
            set: "SET ROLE r_lim",
            read: ROLE,
            with_state: "r_lim",
            without: "postgres",
            during: true,
        },
        Case {
            name: "SET ROLE, read after the promotion",
            set: "SET ROLE r_lim",
            read: ROLE,
            with_state: "r_lim",
            without: "postgres",
            during: false,
        },
        Case {
            name: "SET search_path, read during the failover",
            set: "SET search_path TO s2",
            read: PATH,
            with_state: "s2",
            without: "public",
            during: true,
        },
        Case {
            name: "SET search_path, read after the promotion",
            set: "SET search_path TO s2",
            read: PATH,
            with_state: "s2",
            without: "public",
            during: false,
        },
    ];
    let mut conns: Vec<Conn> = cases.iter().map(|_| connect(&url)).collect();
    let mut controls: Vec<PgConnection> = cases.iter().map(|_| plain(old)).collect();
    for ((case, conn), control) in cases.iter().zip(&mut conns).zip(&mut controls) {
        conn.batch_execute(case.set).unwrap();
        control.batch_execute(case.set).unwrap();
        let got = read_text(conn, case.read).unwrap();
        assert_eq!((got.v.as_str(), got.port as u16), (case.with_state, old));
        assert_eq!(read_text(control, case.read).unwrap().v, case.with_state);
    }
    let mut seen: Vec<Vec<QueryResult<TextPort>>> = cases.iter().map(|_| Vec::new()).collect();
    let mut control_seen: Vec<Vec<QueryResult<TextPort>>> =
        cases.iter().map(|_| Vec::new()).collect();

    cluster.kill(old);
    for (i, case) in cases.iter().enumerate() {
        if case.during {
            seen[i].push(read_text(&mut conns[i], case.read));
            control_seen[i].push(read_text(&mut controls[i], case.read));
        }
    }
    cluster.promote(new);
    let promoted = Instant::now();
    // The process learns the new primary (another connection writes there).
    let mut probe = connect(&url);
    let port = insert_port(&mut probe, 1).expect("a write after the promotion");
    assert_eq!(port, new);
    eprintln!(
        "a new connection wrote on the new primary {:?} after the promotion",
        promoted.elapsed()
    );
    for (i, case) in cases.iter().enumerate() {
        // Until the first success (at most 3 statements).
        for _ in 0..3 {
            let result = read_text(&mut conns[i], case.read);
            let ok = result.is_ok();
            seen[i].push(result);
            if ok {
                break;
            }
        }
        control_seen[i].push(read_text(&mut controls[i], case.read));
    }

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let text: Vec<String> = seen[i]
            .iter()
            .map(|r| match r {
                Ok(tp) => format!("Ok({} on {})", tp.v, tp.port),
                Err(e) => describe(e),
            })
            .collect();
        eprintln!("{}:\n  wrapper: {text:#?}", case.name);
        let ctl: Vec<String> = control_seen[i]
            .iter()
            .map(|r| match r {
                Ok(tp) => format!("Ok({} on {})", tp.v, tp.port),
                Err(e) => describe(e),
            })
            .collect();
        eprintln!("  control: {ctl:?}");
        assert!(
            control_seen[i].iter().all(|r| r.is_err()),
            "{}: the control",
            case.name
        );

        let first_ok = seen[i].iter().position(|r| r.is_ok());
        let told = seen[i].iter().position(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| is_closed(e) && describe(e).contains("session state"))
        });
        let errors = seen[i].iter().filter(|r| r.is_err()).count();
        let problem = if told.is_none() {
            Some("no error said the session state was lost".to_string())
        } else if first_ok.is_none() {
            Some("the connection did not work again after the error".to_string())
        } else if first_ok < told {
            Some("a read succeeded before the loss of the session state was reported".into())
        } else if seen[i]
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| !is_closed(e)))
        {
            Some("an error was not ClosedConnection".into())
        } else if errors > if case.during { 2 } else { 1 } {
            Some(format!("{errors} errors instead of one"))
        } else {
            let got = seen[i][first_ok.unwrap()].as_ref().unwrap();
            if got.v != case.without || got.port as u16 == old {
                Some(format!(
                    "the read after the reset answered {} on {}",
                    got.v, got.port
                ))
            } else {
                None
            }
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}: {text:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_failover_in_a_transaction_is_a_connection_error_never_not_in_transaction() {
    let cluster = cluster(1, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    let barrier = Barrier::new(6);

    // (a) the failed statement's error propagated with `?`;
    fn propagated<C: Connection<Backend = Pg>>(c: &mut C, base: i32, b: &Barrier) -> Step {
        let r = c.transaction::<(), Error, _>(|c| {
            let first = insert(c, base + 1);
            b.wait();
            b.wait();
            first?;
            insert(c, base + 2)?;
            Ok(())
        });
        Step::of("(a) propagated", &r)
    }
    // (b) the connection fails at the COMMIT itself;
    fn at_commit<C: Connection<Backend = Pg>>(c: &mut C, base: i32, b: &Barrier) -> Step {
        let r = c.transaction::<(), Error, _>(|c| {
            let first = insert(c, base + 1);
            b.wait();
            b.wait();
            first.map(|_| ())
        });
        Step::of("(b) at COMMIT", &r)
    }
    // (d) a nested transaction (savepoint) fails, the outer one ignores that and goes on.
    fn nested(c: &mut Conn, base: i32, b: &Barrier) -> Vec<Step> {
        let mut steps = Vec::new();
        let r = c.transaction::<(), Error, _>(|c| {
            steps.push(Step::of("(d) insert 1", &insert(c, base + 1)));
            b.wait();
            b.wait();
            let inner = c.transaction::<(), Error, _>(|c| insert(c, base + 2).map(|_| ()));
            steps.push(Step::of("(d) inner transaction", &inner));
            steps.push(Step::of("(d) insert 3", &insert(c, base + 3)));
            Ok(())
        });
        steps.push(Step::of("(d) outer transaction", &r));
        steps
    }

    let mut a = connect(&url);
    let mut b = connect(&url);
    let mut c = connect(&url);
    let mut d = connect(&url);
    let mut ctl_a = plain(old);
    let mut ctl_b = plain(old);
    // (c) an idle connection whose primary dies begins a transaction after the failover.
    assert_eq!(insert_port(&mut c, 300).unwrap(), old);
    let (ra, rb, rd, rca, rcb) = std::thread::scope(|s| {
        let ra = s.spawn(|| propagated(&mut a, 100, &barrier));
        let rb = s.spawn(|| at_commit(&mut b, 200, &barrier));
        let rd = s.spawn(|| nested(&mut d, 400, &barrier));
        let rca = s.spawn(|| propagated(&mut ctl_a, 1100, &barrier));
        let rcb = s.spawn(|| at_commit(&mut ctl_b, 1200, &barrier));
        failover_between(&barrier, || kill_and_promote(&cluster, new));
        (
            ra.join().unwrap(),
            rb.join().unwrap(),
            rd.join().unwrap(),
            rca.join().unwrap(),
            rcb.join().unwrap(),
        )
    });
    let first_c = c.transaction::<(), Error, _>(|c| insert(c, 301).map(|_| ()));
    let rc = Step::of("(c) begun after", &first_c);
    let rc2 = if first_c.is_err() {
        Some(Step::of(
            "(c) again",
            &c.transaction::<(), Error, _>(|c| insert(c, 301).map(|_| ())),
        ))
    } else {
        None
    };

    eprintln!("transaction errors after a failover:");
    show("PgConnection (control)", &[rca.clone(), rcb.clone()]);
    let mut all = vec![ra.clone(), rb.clone(), rc.clone()];
    all.extend(rc2.clone());
    all.extend(rd.iter().cloned());
    show("MultiHostConnection", &all);
    let surfaced = all.iter().filter(|s| !s.ok).count();
    let not_in_tx = all.iter().filter(|s| s.not_in_transaction).count();
    eprintln!("errors surfaced: {surfaced}, of which NotInTransaction: {not_in_tx}");

    assert!(!rca.ok && !rcb.ok, "the control's transactions fail");
    assert!(
        all.iter().all(|s| !s.not_in_transaction),
        "NotInTransaction surfaced: {all:#?}"
    );
    for s in [&ra, &rb] {
        assert!(
            !s.ok && s.closed,
            "{}: must fail with ClosedConnection: {s:?}",
            s.label
        );
    }
    assert!(rc.ok || rc.closed, "(c): {rc:?}");
    if let Some(again) = &rc2 {
        assert!(
            again.ok,
            "(c) a second attempt must run on the new primary: {again:?}"
        );
    }
    assert_eq!(count(new, &[301]), 1, "(c) committed exactly once");
    let inner = find(&rd, "(d) inner transaction");
    let third = find(&rd, "(d) insert 3");
    let outer = find(&rd, "(d) outer transaction");
    assert!(!inner.ok && inner.closed, "(d) {inner:?}");
    assert!(!third.ok && third.closed, "(d) {third:?}");
    assert!(!outer.ok && outer.closed, "(d) {outer:?}");
    assert_eq!(
        count(new, &[101, 102, 201, 401, 402, 403, 1101, 1102, 1201]),
        0,
        "nothing of a torn transaction may be committed"
    );
    for (name, conn, v) in [("a", &mut a, 150), ("b", &mut b, 250), ("d", &mut d, 450)] {
        let port = insert_port(conn, v)
            .unwrap_or_else(|e| panic!("({name}) the next write: {}", describe(&e)));
        assert_eq!(port, new, "({name}) the next write ran on {port}");
    }
}

#[test]
fn establish_waits_for_a_failover_in_progress_when_no_connection_is_alive() {
    let cluster = cluster(2, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let reads = url(&all_ports(&cluster), "postgres", FAST);
    let writes_only = url(
        &all_ports(&cluster),
        "postgres",
        &format!("{FAST}&replica_reads=off"),
    );
    // The process knows the primary; then every connection is dropped.
    for url in [&reads, &writes_only] {
        let mut conn = connect(url);
        assert_eq!(insert_port(&mut conn, 1).unwrap(), old);
    }

    cluster.kill(old);
    let killed = Instant::now();
    std::thread::scope(|s| {
        let promoter = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            cluster.promote(new);
            Instant::now()
        });

        // Without replica reads, establish waits for the promotion.
        let started = Instant::now();
        let writer = Conn::establish(&writes_only);
        let establish_writes = started.elapsed();

        // With standbys to read from, establish and reads work.
        let started = Instant::now();
        let mut reader = Conn::establish(&reads);
        let establish_reads = started.elapsed();
        let read = reader.as_mut().map(who).map_err(|e| e.to_string());
        let promoted = promoter.join().unwrap();
        eprintln!(
            "establish while the primary was down (no connection alive): replica_reads=off \
             {establish_writes:?}, then with replica reads {establish_reads:?} (read: {:?}); \
             promotion done {:?} after the kill",
            read.as_ref().map(|s| (s.port, s.in_recovery)),
            promoted - killed
        );
        let mut reader = reader.unwrap_or_else(|e| panic!("establish (replica reads): {e}"));
        let read = read.unwrap();
        assert!(
            read.in_recovery || read.port as u16 == new,
            "the read ran on {read:?}"
        );
        let mut writer =
            writer.unwrap_or_else(|e| panic!("establish (replica_reads=off) failed: {e}"));

        for (name, conn, v) in [
            ("reads", &mut reader, 2),
            ("replica_reads=off", &mut writer, 3),
        ] {
            let started = Instant::now();
            let port = insert_port(conn, v)
                .unwrap_or_else(|e| panic!("{name}: the first write: {}", describe(&e)));
            eprintln!(
                "{name}: first write on {port} after {:?}",
                started.elapsed()
            );
            assert_eq!(port, new, "{name}: the first write ran on {port}");
        }
        assert_eq!(count(new, &[2, 3]), 2);
    });
}

/// Read-only load through `pool` until `stop`: (reads, read errors, checkout errors,
/// ports that answered).
struct Readers {
    reads: AtomicUsize,
    errors: Mutex<Vec<String>>,
    checkout_errors: Mutex<Vec<String>>,
    ports: Mutex<Vec<(Instant, u16)>>,
    stop: AtomicBool,
}

impl Readers {
    fn new() -> Arc<Readers> {
        Arc::new(Readers {
            reads: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
            checkout_errors: Mutex::new(Vec::new()),
            ports: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    fn spawn(
        self: &Arc<Readers>,
        pool: &Pool<ConnectionManager<Conn>>,
        threads: usize,
    ) -> Vec<std::thread::JoinHandle<()>> {
        (0..threads)
            .map(|_| {
                let (me, pool) = (Arc::clone(self), pool.clone());
                std::thread::spawn(move || {
                    while !me.stop.load(Ordering::Relaxed) {
                        match pool.get() {
                            Ok(mut conn) => {
                                match diesel::sql_query(WHO).get_result::<Server>(&mut *conn) {
                                    Ok(server) => {
                                        me.reads.fetch_add(1, Ordering::Relaxed);
                                        me.ports
                                            .lock()
                                            .unwrap()
                                            .push((Instant::now(), server.port as u16));
                                    }
                                    Err(e) => me.errors.lock().unwrap().push(describe(&e)),
                                }
                            }
                            Err(e) => me.checkout_errors.lock().unwrap().push(e.to_string()),
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect()
    }

    fn stop(&self, handles: Vec<std::thread::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
    }
}

#[test]
fn reads_keep_working_through_a_primary_failover() {
    let cluster = cluster(2, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    let pool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::<Conn>::new(url.clone()))
        .unwrap();
    {
        let mut warm: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
        for conn in &mut warm {
            ready(conn);
        }
    }
    let readers = Readers::new();
    let handles = readers.spawn(&pool, 4);
    std::thread::sleep(Duration::from_millis(300));

    cluster.kill(old);
    let killed = Instant::now();
    let before = readers.reads.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        // The promotion, 2 s after the kill, whatever the statements below do.
        let promoter = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            let promoting = Instant::now();
            cluster.promote(new);
            (promoting, Instant::now())
        });

        // A pooled connection established while the primary is down: establish returns at
        // once and reads run on a standby; its first write waits for the promotion.
        let started = Instant::now();
        let fresh_pool = Pool::builder()
            .max_size(1)
            .connection_timeout(Duration::from_secs(5))
            .build(ConnectionManager::<Conn>::new(url.clone()));
        let fresh_establish = started.elapsed();
        let (fresh_read, fresh_read_at, fresh_write, fresh_write_at) = match &fresh_pool {
            Ok(fresh_pool) => {
                let mut conn = fresh_pool
                    .get()
                    .expect("a checkout while the primary is down");
                let read = diesel::sql_query(WHO).get_result::<Server>(&mut *conn);
                let read_at = Instant::now();
                let write = insert_port(&mut conn, 1);
                (Some(read), read_at, Some(write), Instant::now())
            }
            Err(_) => (None, Instant::now(), None, Instant::now()),
        };
        let (promoting, promoted) = promoter.join().unwrap();

        // The first write through the pool after the promotion.
        let mut conn = pool.get().expect("a checkout after the promotion");
        let first = insert_port(&mut conn, 2);
        let first_at = Instant::now();
        drop(conn);
        std::thread::sleep(Duration::from_millis(300));
        readers.stop(handles);

        let reads_during = readers.reads.load(Ordering::Relaxed) - before;
        let errors = readers.errors.lock().unwrap().clone();
        let checkout_errors = readers.checkout_errors.lock().unwrap().clone();
        let at = |t: Instant| t.saturating_duration_since(killed);
        eprintln!(
            "reads through the failover: {reads_during} reads after the kill, {} read errors, \
             {} checkout errors; promotion from {:?} to {:?} after the kill; first pooled \
             write {:?} after the promotion ({:?})",
            errors.len(),
            checkout_errors.len(),
            at(promoting),
            at(promoted),
            first_at.saturating_duration_since(promoted),
            first.as_ref().map_err(describe),
        );
        eprintln!(
            "a pool built while the primary was down: built in {fresh_establish:?} ({:?}); \
             its first read done {:?} after the kill ({:?}); its first write done {:?} after \
             the kill ({:?})",
            fresh_pool.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            at(fresh_read_at),
            fresh_read.as_ref().map(|r| r
                .as_ref()
                .map(|s| (s.port, s.in_recovery))
                .map_err(describe)),
            at(fresh_write_at),
            fresh_write.as_ref().map(|w| w.as_ref().map_err(describe)),
        );
        assert!(errors.is_empty(), "read errors: {errors:#?}");
        assert!(
            checkout_errors.is_empty(),
            "checkout errors: {checkout_errors:#?}"
        );
        assert!(reads_during > 0, "no read ran after the kill");
        assert_eq!(
            first.expect("the first write after the promotion"),
            new,
            "the first write after the promotion"
        );

        let fresh_pool =
            fresh_pool.unwrap_or_else(|e| panic!("a pool built while the primary is down: {e}"));
        let server = fresh_read.unwrap().unwrap_or_else(|e| {
            panic!(
                "the first read of a connection made while the primary was down: {}",
                describe(&e)
            )
        });
        assert!(
            server.in_recovery && fresh_read_at < promoting,
            "the first read of a connection made while the primary was down must run on a \
             standby without waiting for the promotion: it ran on {} (in recovery: {}), done \
             {:?} after the kill, the promotion began {:?} after it",
            server.port,
            server.in_recovery,
            at(fresh_read_at),
            at(promoting)
        );
        assert_eq!(
            fresh_write
                .unwrap()
                .expect("the first write of the connection made during the failover"),
            new
        );
        assert_eq!(count(new, &[1, 2]), 2);
        drop(fresh_pool);
    });
}

#[test]
fn a_restarted_standby_gets_reads_again_within_replica_retry_interval() {
    let cluster = cluster(2, "");
    let (a, b) = (cluster.standby_ports()[0], cluster.standby_ports()[1]);
    let url = url(
        &all_ports(&cluster),
        "postgres",
        "connect_timeout=2&monitor_interval=100ms&replica_retry_interval=2s",
    );
    let pool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::<Conn>::new(url))
        .unwrap();
    {
        let mut warm: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
        for conn in &mut warm {
            ready(conn);
        }
    }
    let readers = Readers::new();
    let handles = readers.spawn(&pool, 4);
    std::thread::sleep(Duration::from_millis(500));
    let on = |port: u16, since: Instant| {
        readers
            .ports
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, p)| *p == port && *at >= since)
            .count()
    };
    let start = Instant::now() - Duration::from_secs(3600);
    eprintln!("before: {} reads on A, {} on B", on(a, start), on(b, start));

    cluster.kill(b);
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart(b);
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(10);
    let mut back = None;
    while Instant::now() < deadline {
        if on(b, restarted) > 0 {
            back = Some(restarted.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sessions_on_b = cluster.query_one(
        b,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
         AND pid <> pg_backend_pid()",
    );
    readers.stop(handles);
    let errors = readers.errors.lock().unwrap().clone();
    eprintln!(
        "restarted standby: first read on it {back:?} after the restart; {} reads on it, {} \
         on the other; client sessions on it: {sessions_on_b}; read errors {}, checkout \
         errors {}; topology: {:#?}",
        on(b, restarted),
        on(a, restarted),
        errors.len(),
        readers.checkout_errors.lock().unwrap().len(),
        pool.get().map(|c| c.topology()).ok()
    );
    assert!(
        back.is_some(),
        "no read reached the restarted standby within 10 s (replica_retry_interval=2s)"
    );
    assert!(errors.is_empty(), "read errors: {errors:#?}");
}

#[test]
fn a_pooled_connection_that_did_not_see_the_failover_writes_to_the_new_primary() {
    let cluster = cluster(1, "");
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    const N: usize = 4;
    let pool = Pool::builder()
        .max_size(N as u32)
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::<Conn>::new(url.clone()))
        .unwrap();
    {
        let mut all: Vec<_> = (0..N).map(|_| pool.get().unwrap()).collect();
        for (i, conn) in all.iter_mut().enumerate() {
            assert_eq!(insert_port(conn, i as i32).unwrap(), old);
        }
    }
    // The pool's connections sit idle while another connection sees the failover.
    let mut other = connect(&url);
    assert_eq!(insert_port(&mut other, 100).unwrap(), old);
    kill_and_promote(&cluster, new);
    let promoted = Instant::now();
    let mut other_errors = Vec::new();
    loop {
        match insert_port(&mut other, 101) {
            Ok(port) => {
                assert_eq!(port, new);
                break;
            }
            Err(e) if other_errors.len() < 3 => other_errors.push(describe(&e)),
            Err(e) => panic!("the other connection cannot write: {}", describe(&e)),
        }
    }
    eprintln!(
        "the connection that saw the failover: errors {other_errors:?}, wrote on the new \
         primary {:?} after the promotion",
        promoted.elapsed()
    );

    let mut conns: Vec<_> = (0..N).map(|_| pool.get().unwrap()).collect();
    let mut problems = Vec::new();
    for (i, conn) in conns.iter_mut().enumerate() {
        let named = conn.primary_host().map(|h| h.port());
        let written = insert_port(conn, 10 + i as i32);
        eprintln!(
            "pooled connection {i}: primary_host() {named:?}, write {:?}",
            written.as_ref().map_err(describe)
        );
        if named != Some(new) {
            problems.push(format!(
                "connection {i}: primary_host() named {named:?}, not the new primary {new}"
            ));
        }
        match written {
            Ok(port) if port == new => {}
            Ok(port) => problems.push(format!("connection {i}: the write ran on {port}")),
            Err(e) => problems.push(format!(
                "connection {i}: the write failed: {}",
                describe(&e)
            )),
        }
    }
    let rows = count(new, &(10..10 + N as i32).collect::<Vec<_>>());
    eprintln!(
        "{rows} of {N} writes on the new primary; {} errors",
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(rows, N as i64);
}

#[test]
fn pins_and_session_state_do_not_survive_the_return_to_the_pool() {
    let (cluster, db) = fresh_db("fo_pool_reset");
    let primary = cluster.primary_port();
    let pool = Pool::builder()
        .max_size(1)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::<Conn>::new(url(
            &all_ports(cluster),
            &db,
            "",
        )))
        .unwrap();

    {
        let mut conn = pool.get().unwrap();
        ready(&mut conn);
        conn.pin_to_primary();
        let server = who(&mut conn);
        assert_on_primary(&conn, primary, server.port);
    }
    {
        let mut conn = pool.get().unwrap();
        assert!(
            !conn.is_pinned(),
            "pin_to_primary() survived the return to the pool"
        );
        assert!(
            conn.wait_for_standby(Duration::from_secs(10)),
            "no standby for reads after the pin: {:#?}",
            conn.topology()
        );
        let server = who(&mut conn);
        assert_on_standby(cluster, &conn, server.port);
    }

    const SETTING: &str =
        "SELECT current_setting('statement_timeout') AS v, inet_server_port() AS port";
    {
        let mut conn = pool.get().unwrap();
        conn.batch_execute("SET statement_timeout = '4321s'")
            .unwrap();
        let got = read_text(&mut *conn, SETTING).unwrap();
        assert_eq!((got.v.as_str(), got.port as u16), ("4321s", primary));
    }
    {
        let mut conn = pool.get().unwrap();
        assert!(
            !conn.is_pinned(),
            "the session pin of SET survived the return to the pool"
        );
        // Look at the primary's session, where the SET ran.
        conn.pin_to_primary();
        let got = read_text(&mut *conn, SETTING).unwrap();
        assert_eq!(got.port as u16, primary);
        assert_eq!(
            got.v, "0",
            "a connection was handed out again with the SET of its last user"
        );
    }
}

#[test]
fn writing_side_effects_run_on_the_primary_and_standby_only_errors_are_rerun() {
    let (cluster, db) = fresh_db("fo_side_effects");
    let primary = cluster.primary_port();
    let mut pg = PgConnection::establish(&url(&[primary], &db, "")).unwrap();
    pg.batch_execute(
        "CREATE FUNCTION wal_pos() RETURNS text LANGUAGE sql AS \
         $$ SELECT pg_current_wal_lsn()::text $$;",
    )
    .unwrap();
    cluster.wait_for_replay();
    let url = url(&all_ports(cluster), &db, "");
    let nonce = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let in_standby_logs = |marker: &str| {
        cluster
            .standby_ports()
            .into_iter()
            .filter(|&p| {
                std::fs::read_to_string(cluster.log_path(p))
                    .map(|log| log.contains(marker))
                    .unwrap_or(false)
            })
            .collect::<Vec<_>>()
    };

    let cases = [
        (
            "pg_try_advisory_lock",
            "SELECT pg_try_advisory_lock(1)::text AS v, inet_server_port() AS port",
        ),
        (
            "pg_current_wal_lsn",
            "SELECT pg_current_wal_lsn()::text AS v, inet_server_port() AS port",
        ),
        (
            "set_config",
            "SELECT set_config('x.y', '1', false) AS v, inet_server_port() AS port",
        ),
    ];
    for (name, sql) in cases {
        let mut conn = connect_ready(&url);
        let server = who(&mut conn);
        assert_on_standby(cluster, &conn, server.port);
        ready(&mut conn);
        let marker = format!("fo_{name}_{nonce}");
        let got = read_text(&mut conn, &format!("/* {marker} */ {sql}"))
            .unwrap_or_else(|e| panic!("{name}: {}", describe(&e)));
        eprintln!("{name}: {} on {}", got.v, got.port);
        assert_on_primary(&conn, primary, got.port);
        assert!(
            in_standby_logs(&marker).is_empty(),
            "{name}: the statement failed on a standby first (it must go to the primary \
             straight away)"
        );
    }

    // A function the classifier cannot know writes: the standby's error ("recovery is in
    // progress", 55000) is one only a standby gives, so the read runs again on the primary.
    let mut conn = connect_ready(&url);
    let marker = format!("fo_wal_pos_{nonce}");
    let got = read_text(
        &mut conn,
        &format!("/* {marker} */ SELECT wal_pos() AS v, inet_server_port() AS port"),
    );
    let standbys_tried = in_standby_logs(&marker);
    eprintln!(
        "wal_pos(): {:?}; tried on standbys {standbys_tried:?}",
        got.as_ref().map(|g| (&g.v, g.port)).map_err(describe)
    );
    let got =
        got.unwrap_or_else(|e| panic!("wal_pos() must be re-run on the primary: {}", describe(&e)));
    assert_on_primary(&conn, primary, got.port);
    assert!(
        !standbys_tried.is_empty(),
        "wal_pos() did not run on a standby first: the test does not exercise the re-run"
    );
}

#[test]
fn last_route_is_none_after_a_failure_and_names_what_the_server_is() {
    let cluster = cluster(2, "");
    let old = cluster.primary_port();
    // The default monitor interval (1 s) leaves time to read on the promoted standby
    // before the monitor notices: `last_route` says what the topology last saw the server
    // as, so it may only be wrong until the monitor has seen the promotion.
    let url = url(
        &all_ports(&cluster),
        "postgres",
        "connect_timeout=2&failover_timeout=10s",
    );
    let mut conn = connect_ready(&url);
    let server = who(&mut conn);
    assert_on_standby(&cluster, &conn, server.port);

    let failed = diesel::sql_query("SELECT 1/0 AS port, true AS in_recovery")
        .get_result::<Server>(&mut conn);
    assert!(failed.is_err());
    assert_eq!(conn.last_route(), None, "after a failed read");
    who(&mut conn);
    assert!(conn.last_route().is_some());
    assert!(conn.batch_execute("SELEC 1").is_err());
    assert_eq!(conn.last_route(), None, "after a failed batch_execute");
    who(&mut conn);
    assert!(diesel::sql_query("INSERT INTO missing VALUES (1)")
        .execute(&mut conn)
        .is_err());
    assert_eq!(conn.last_route(), None, "after a failed execute");
    let port = insert_port(&mut conn, 1).unwrap();
    assert_eq!(port, old);
    assert!(matches!(
        conn.last_route(),
        Some(StatementRoute::Primary(_))
    ));
    drop(conn);

    // A connection that never wrote (its reads need no primary position) reads from a
    // standby ...
    let mut conn = connect_ready(&url);
    let server = who(&mut conn);
    assert_on_standby(&cluster, &conn, server.port);
    let mine = server.port as u16;

    // ... which becomes the primary.
    cluster.kill(old);
    cluster.promote(mine);
    let promoted = Instant::now();
    let mut wrong = Vec::new();
    let (mut as_primary, mut as_standby, mut failures) = (0, 0, 0);
    let mut before_monitor = 0;
    while promoted.elapsed() < Duration::from_secs(2) {
        // Whether the monitor had seen the promotion before the statement was sent.
        let seen = conn
            .topology()
            .iter()
            .any(|h| h.host.port() == mine && h.is_current_primary);
        match diesel::sql_query(WHO).get_result::<Server>(&mut conn) {
            Ok(server) => {
                let route = conn.last_route().expect("a statement ran");
                let is_primary = matches!(route, StatementRoute::Primary(_));
                if server.in_recovery {
                    as_standby += 1;
                } else {
                    as_primary += 1;
                }
                let misreported =
                    is_primary == server.in_recovery || route.host().port() != server.port as u16;
                if misreported && !seen {
                    before_monitor += 1;
                } else if misreported {
                    wrong.push(format!(
                        "{:?}: {route} for the server {} (in recovery: {})",
                        promoted.elapsed(),
                        server.port,
                        server.in_recovery
                    ));
                }
            }
            Err(e) => {
                failures += 1;
                assert_eq!(conn.last_route(), None, "after {}", describe(&e));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "after the promotion: {as_primary} reads answered by a primary, {as_standby} by a \
         standby, {failures} failed, {before_monitor} reported as before the monitor saw the \
         promotion, {} misreported after",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "last_route() misreported {} of {} reads; first and last: {:#?}",
        wrong.len(),
        as_primary + as_standby,
        [wrong.first(), wrong.last()]
    );
    let port = insert_port(&mut conn, 2).unwrap();
    assert_eq!(port, mine);
    assert_eq!(
        conn.last_route(),
        Some(StatementRoute::Primary(
            conn.primary_host().expect("a primary").clone()
        ))
    );
}
