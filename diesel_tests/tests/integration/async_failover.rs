//! Failover and cancellation of `MultiHostConnection<AsyncPgConnection>`: a transaction
//! torn by a failover fails with a connection error (never `NotInTransaction`) and commits
//! nothing; a write whose outcome is unknown is never re-sent; a future dropped
//! mid-statement (a request timeout) leaves a connection that knows where it is. As
//! `failover_correctness.rs` does for the sync connection; verdicts are rows counted on the
//! servers directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::result::Error;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::sync::Barrier;

use crate::async_routing::{
    aconnect, aconnect_ready, aready, assert_on_primary, assert_on_standby, awho, tx_depth, AConn,
    TextPort,
};
use crate::failover_correctness::{cluster, count, describe, is_closed, kill_and_promote, FAST};
use crate::multihost::{all_ports, fresh_db, query_in, url, users, NewUser};

/// Runs a blocking harness call (psql, pg_ctl) from the async test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

async fn insert(conn: &mut AConn, v: i32) -> QueryResult<usize> {
    diesel::sql_query(format!("INSERT INTO fo (v) VALUES ({v})"))
        .execute(conn)
        .await
}

#[derive(Debug, QueryableByName)]
struct Port {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    port: i32,
}

/// Inserts `v` into `fo`; the port of the server that took it.
async fn insert_port(conn: &mut AConn, v: i32) -> QueryResult<u16> {
    diesel::sql_query(format!(
        "INSERT INTO fo (v) VALUES ({v}) RETURNING inet_server_port() AS port"
    ))
    .get_result::<Port>(conn)
    .await
    .map(|p| p.port as u16)
}

/// What one statement returned.
#[derive(Debug)]
struct Step {
    label: &'static str,
    ok: bool,
    closed: bool,
    not_in_transaction: bool,
    text: String,
}

impl Step {
    fn of<T>(label: &'static str, result: &QueryResult<T>) -> Step {
        Step {
            label,
            ok: result.is_ok(),
            closed: result.as_ref().is_err_and(is_closed),
            not_in_transaction: matches!(result, Err(Error::NotInTransaction)),
            text: result.as_ref().map_or_else(describe, |_| "Ok".into()),
        }
    }
}

fn show(who: &str, steps: &[Step]) {
    for s in steps {
        eprintln!("  {who:<26} {:<22} {}", s.label, s.text);
    }
}

fn find<'a>(steps: &'a [Step], label: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.label == label)
        .unwrap_or_else(|| panic!("no step {label} in {steps:#?}"))
}

/// Three transactions in flight on three connections when the primary is killed and the
/// standby promoted (between the two waits of a barrier): a Diesel `transaction()` that goes
/// on after the failover, one that only commits after it, and a manual `BEGIN` ... `COMMIT`
/// then `ROLLBACK`. Each fails with `ClosedConnection` (never `NotInTransaction`), nothing
/// of them is committed, and the next write of each connection runs on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_a_failover_inside_a_transaction_is_a_connection_error_and_commits_nothing() {
    let cluster = blocking(|| cluster(1, ""));
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    let barrier = Arc::new(Barrier::new(4));

    // (a) insert 1; [failover]; insert 2; insert 3; Ok(()).
    let a = {
        let (mut conn, b) = (aconnect(&url).await, Arc::clone(&barrier));
        tokio::spawn(async move {
            let mut steps = Vec::new();
            let r = conn
                .transaction::<(), Error, _>(async |c| {
                    steps.push(Step::of("insert 1", &insert(c, 1).await));
                    b.wait().await;
                    b.wait().await;
                    steps.push(Step::of("insert 2", &insert(c, 2).await));
                    steps.push(Step::of("insert 3", &insert(c, 3).await));
                    Ok(())
                })
                .await;
            steps.push(Step::of("transaction()", &r));
            (conn, steps)
        })
    };
    // (b) insert 21; [failover]; the closure returns Ok: the COMMIT meets the failure.
    let b = {
        let (mut conn, b) = (aconnect(&url).await, Arc::clone(&barrier));
        tokio::spawn(async move {
            let mut steps = Vec::new();
            let r = conn
                .transaction::<(), Error, _>(async |c| {
                    steps.push(Step::of("insert 21", &insert(c, 21).await));
                    b.wait().await;
                    b.wait().await;
                    Ok(())
                })
                .await;
            steps.push(Step::of("transaction()", &r));
            (conn, steps)
        })
    };
    // (c) BEGIN; insert 31; [failover]; insert 32; insert 33; COMMIT; ROLLBACK.
    let c = {
        let (mut conn, b) = (aconnect(&url).await, Arc::clone(&barrier));
        tokio::spawn(async move {
            let mut steps = vec![Step::of("BEGIN", &conn.batch_execute("BEGIN").await)];
            steps.push(Step::of("insert 31", &insert(&mut conn, 31).await));
            b.wait().await;
            b.wait().await;
            steps.push(Step::of("insert 32", &insert(&mut conn, 32).await));
            steps.push(Step::of("insert 33", &insert(&mut conn, 33).await));
            steps.push(Step::of("COMMIT", &conn.batch_execute("COMMIT").await));
            steps.push(Step::of("ROLLBACK", &conn.batch_execute("ROLLBACK").await));
            (conn, steps)
        })
    };

    barrier.wait().await;
    let failover = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        blocking(|| kill_and_promote(&cluster, new))
    }));
    let promoted_at = Instant::now();
    barrier.wait().await;
    if let Err(panic) = failover {
        std::panic::resume_unwind(panic);
    }
    let (mut conn_a, ra) = a.await.expect("task (a)");
    let (mut conn_b, rb) = b.await.expect("task (b)");
    let (mut conn_c, rc) = c.await.expect("task (c)");
    eprintln!("async: transactions torn by a failover ({old} killed, {new} promoted):");
    show("(a) transaction(), goes on", &ra);
    show("(b) transaction(), COMMIT", &rb);
    show("(c) manual BEGIN", &rc);

    let all: Vec<&Step> = ra.iter().chain(&rb).chain(&rc).collect();
    assert!(
        all.iter().all(|s| !s.not_in_transaction),
        "NotInTransaction surfaced: {all:#?}"
    );
    assert!(find(&ra, "insert 1").ok && find(&rb, "insert 21").ok && find(&rc, "insert 31").ok);
    assert!(!find(&ra, "insert 2").ok, "{ra:#?}");
    for (steps, label) in [
        (&ra, "insert 3"),
        (&ra, "transaction()"),
        (&rb, "transaction()"),
        (&rc, "insert 33"),
        (&rc, "COMMIT"),
    ] {
        let s = find(steps, label);
        assert!(
            !s.ok && s.closed,
            "{label} must fail with ClosedConnection: {s:?}"
        );
    }
    assert!(!find(&rc, "insert 32").ok, "{rc:#?}");
    assert!(
        find(&rc, "ROLLBACK").ok,
        "the ROLLBACK must succeed: {rc:#?}"
    );
    let torn = blocking(|| count(new, &[1, 2, 3, 21, 31, 32, 33]));
    assert_eq!(torn, 0, "rows of torn transactions were committed");

    let mut firsts = Vec::new();
    for (name, conn, v) in [
        ("a", &mut conn_a, 4),
        ("b", &mut conn_b, 24),
        ("c", &mut conn_c, 34),
    ] {
        assert_eq!(
            tx_depth(conn),
            Ok(0),
            "({name}) still believes in a transaction"
        );
        let port = insert_port(conn, v)
            .await
            .unwrap_or_else(|e| panic!("({name}) the next write: {}", describe(&e)));
        firsts.push(format!("({name}) {:?}", promoted_at.elapsed()));
        assert_eq!(port, new, "({name}) the next write ran on {port}");
    }
    eprintln!("async: next writes on the new primary, after the promotion: {firsts:?}");
    assert_eq!(blocking(|| count(new, &[4, 24, 34])), 3);
}

/// A write outside a transaction in flight when its primary dies: its outcome is unknown,
/// so it fails and is never sent again (not to the old primary, not to the new one). The
/// statement sleeps before inserting, so the old primary never committed it: one row on
/// the new primary would be a re-send.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_a_write_whose_outcome_is_unknown_is_never_resent() {
    let cluster = blocking(|| cluster(1, ""));
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", FAST);
    let mut writer = aconnect(&url).await;
    let mut batcher = aconnect(&url).await;
    assert_eq!(insert_port(&mut writer, 1).await.unwrap(), old);
    assert_eq!(insert_port(&mut batcher, 2).await.unwrap(), old);

    let w = tokio::spawn(async move {
        let r = diesel::sql_query("INSERT INTO fo (v) SELECT 500 FROM pg_sleep(5)")
            .execute(&mut writer)
            .await;
        (writer, r)
    });
    let b = tokio::spawn(async move {
        let r = batcher
            .batch_execute("SELECT pg_sleep(5); INSERT INTO fo (v) VALUES (600)")
            .await;
        (batcher, r)
    });
    // Both statements are running on the old primary.
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocking(|| {
        cluster.query_one(
            old,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' \
             AND pid <> pg_backend_pid()",
        )
    }) != "2"
    {
        assert!(
            Instant::now() < deadline,
            "the sleeping writes never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    blocking(|| kill_and_promote(&cluster, new));
    let promoted_at = Instant::now();
    let (mut writer, wr) = w.await.expect("the writer task");
    let (mut batcher, br) = b.await.expect("the batch task");
    eprintln!(
        "async: writes in flight when the primary died: execute {}, batch_execute {} \
         (kill + promote took {:?})",
        wr.as_ref().map_or_else(describe, |n| format!("Ok({n})")),
        br.as_ref().map_or_else(describe, |()| "Ok".into()),
        promoted_at - killed_at
    );
    assert!(wr.is_err(), "a write to a killed primary succeeded");
    assert!(br.is_err(), "a batch to a killed primary succeeded");

    // Each connection writes to the new primary next; nothing was re-sent.
    for (name, conn, v) in [("execute", &mut writer, 501), ("batch", &mut batcher, 601)] {
        let port = insert_port(conn, v)
            .await
            .unwrap_or_else(|e| panic!("{name}: the next write: {}", describe(&e)));
        eprintln!(
            "async {name}: next write on {port}, {:?} after the promotion",
            promoted_at.elapsed()
        );
        assert_eq!(port, new);
    }
    let (resent, next) = blocking(|| (count(new, &[500, 600]), count(new, &[501, 601])));
    eprintln!("async: rows of the unknown-outcome writes on the new primary: {resent}");
    assert_eq!(
        resent, 0,
        "a write whose outcome was unknown was sent again"
    );
    assert_eq!(next, 2);
}

/// Waits until no statement containing `marker` runs on `port` (the dropped statements'
/// server sessions finish their sleep).
async fn wait_idle(port: u16, db: &str, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let running = blocking(|| {
            query_in(
                port,
                db,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
                     AND pid <> pg_backend_pid()"
                ),
            )
        });
        if running == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{running} statements with {marker} still run on {port} after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A read dropped mid-statement (`tokio::time::timeout`): the connection goes on, believes
/// in no transaction, and reads on a standby again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_cancellation_a_dropped_read_leaves_the_connection_usable() {
    let (cluster, db) = fresh_db("acancel_read");
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;
    let mut after = Vec::new();
    for round in 0..3 {
        let dropped = tokio::time::timeout(
            Duration::from_millis(200),
            diesel::sql_query(
                "SELECT pg_sleep(2)::text AS v, inet_server_port() AS port /* acancel_read */",
            )
            .get_result::<TextPort>(&mut conn),
        )
        .await;
        assert!(
            dropped.is_err(),
            "round {round}: the read finished: {dropped:?}"
        );
        assert_eq!(tx_depth(&mut conn), Ok(0));
        assert!(!conn.is_pinned(), "a dropped read pinned the connection");
        let started = Instant::now();
        let server = awho(&mut conn).await;
        after.push((server.port, started.elapsed()));
        aready(&mut conn).await;
        let server = awho(&mut conn).await;
        assert_on_standby(cluster, &conn, server.port);
    }
    eprintln!("async: first read after a dropped read (port, time): {after:?}");
    wait_idle(cluster.standby_ports()[0], &db, "acancel_read */").await;
}

/// A write dropped mid-statement is never re-sent: its row exists at most once, whether
/// its server session committed it (it does not notice the client left until it answers)
/// or not. The connection goes on, on the primary for writes and a standby for reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_cancellation_a_dropped_write_is_never_resent() {
    let (cluster, db) = fresh_db("acancel_write");
    let primary = cluster.primary_port();
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;

    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        diesel::sql_query("INSERT INTO users (name) SELECT 'dropped-exec' FROM pg_sleep(2)")
            .execute(&mut conn),
    )
    .await;
    assert!(dropped.is_err(), "the write finished: {dropped:?}");
    assert_eq!(tx_depth(&mut conn), Ok(0));
    let port: i32 = diesel::insert_into(users::table)
        .values(NewUser { name: "after-exec" })
        .returning(crate::multihost::inet_server_port())
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the write after the dropped one: {e}"));
    assert_on_primary(&conn, primary, port);

    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        conn.batch_execute("INSERT INTO users (name) VALUES ('dropped-batch'); SELECT pg_sleep(2)"),
    )
    .await;
    assert!(dropped.is_err(), "the batch finished: {dropped:?}");
    assert_eq!(tx_depth(&mut conn), Ok(0));
    let server = awho(&mut conn).await;
    eprintln!(
        "async: the read after a dropped batch ran on {} ({})",
        server.port,
        conn.last_route().unwrap()
    );
    aready(&mut conn).await;
    let server = awho(&mut conn).await;
    assert_on_standby(cluster, &conn, server.port);

    wait_idle(primary, &db, "pg_sleep(2)").await;
    let rows = |name: &str| {
        blocking(|| {
            query_in(
                primary,
                &db,
                &format!("SELECT count(*) FROM users WHERE name = '{name}'"),
            )
        })
    };
    let (exec, batch, after) = (
        rows("dropped-exec"),
        rows("dropped-batch"),
        rows("after-exec"),
    );
    eprintln!(
        "async: rows of dropped writes once their sessions ended: execute {exec}, \
         batch_execute {batch} (0 or 1; 2 would be a re-send)"
    );
    assert!(exec == "0" || exec == "1", "dropped-exec: {exec} rows");
    assert!(batch == "0" || batch == "1", "dropped-batch: {batch} rows");
    assert_eq!(after, "1");
}

/// Inside a transaction, a statement dropped mid-flight makes every later statement fail
/// (`ClosedConnection`) until `ROLLBACK`, which succeeds; nothing of the transaction is
/// committed; then the connection goes on. Both a manual `BEGIN` and Diesel's
/// `transaction()` (whose closure drops a statement). Session state (`SET`) is reported
/// lost once, then the connection goes on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_cancellation_inside_a_transaction_fails_the_rest_until_rollback() {
    let (cluster, db) = fresh_db("acancel_tx");
    let primary = cluster.primary_port();
    let u = url(&all_ports(cluster), &db, "");
    let name_insert = |name: &str| format!("INSERT INTO users (name) VALUES ('{name}')");

    // Manual BEGIN.
    let mut conn = aconnect_ready(&u).await;
    let mut steps = vec![Step::of("BEGIN", &conn.batch_execute("BEGIN").await)];
    steps.push(Step::of(
        "insert tx-1",
        &diesel::sql_query(name_insert("tx-1"))
            .execute(&mut conn)
            .await,
    ));
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        diesel::sql_query("INSERT INTO users (name) SELECT 'tx-2' FROM pg_sleep(2)")
            .execute(&mut conn),
    )
    .await;
    assert!(dropped.is_err(), "the statement finished: {dropped:?}");
    steps.push(Step::of(
        "insert tx-3",
        &diesel::sql_query(name_insert("tx-3"))
            .execute(&mut conn)
            .await,
    ));
    steps.push(Step::of(
        "read",
        &diesel::sql_query(crate::multihost::WHO)
            .get_result::<crate::multihost::Server>(&mut conn)
            .await,
    ));
    steps.push(Step::of("COMMIT", &conn.batch_execute("COMMIT").await));
    steps.push(Step::of("ROLLBACK", &conn.batch_execute("ROLLBACK").await));
    let depth = tx_depth(&mut conn);
    steps.push(Step::of(
        "insert tx-after",
        &diesel::sql_query(name_insert("tx-after"))
            .execute(&mut conn)
            .await,
    ));
    eprintln!("async: a statement dropped inside a manual transaction:");
    show("manual BEGIN", &steps);
    assert!(
        find(&steps, "BEGIN").ok && find(&steps, "insert tx-1").ok,
        "{steps:#?}"
    );
    for label in ["insert tx-3", "read", "COMMIT"] {
        let s = find(&steps, label);
        assert!(
            !s.ok && s.closed,
            "{label} must fail with ClosedConnection: {s:?}"
        );
    }
    assert!(find(&steps, "ROLLBACK").ok, "{steps:#?}");
    assert_eq!(depth, Ok(0));
    assert!(find(&steps, "insert tx-after").ok, "{steps:#?}");

    // Diesel's transaction(): the closure drops a statement and goes on.
    let mut conn = aconnect_ready(&u).await;
    let mut steps = Vec::new();
    let r = conn
        .transaction::<(), Error, _>(async |c| {
            steps.push(Step::of(
                "insert dtx-1",
                &diesel::sql_query(name_insert("dtx-1")).execute(c).await,
            ));
            let dropped = tokio::time::timeout(
                Duration::from_millis(200),
                diesel::sql_query("INSERT INTO users (name) SELECT 'dtx-2' FROM pg_sleep(2)")
                    .execute(c),
            )
            .await;
            assert!(dropped.is_err(), "the statement finished: {dropped:?}");
            let later = diesel::sql_query(name_insert("dtx-3")).execute(c).await;
            steps.push(Step::of("insert dtx-3", &later));
            later?;
            Ok(())
        })
        .await;
    steps.push(Step::of("transaction()", &r));
    let depth = tx_depth(&mut conn);
    let port: i32 = diesel::insert_into(users::table)
        .values(NewUser { name: "dtx-after" })
        .returning(crate::multihost::inet_server_port())
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the write after the transaction: {e}"));
    assert_on_primary(&conn, primary, port);
    show("transaction()", &steps);
    assert!(find(&steps, "insert dtx-1").ok);
    for label in ["insert dtx-3", "transaction()"] {
        let s = find(&steps, label);
        assert!(
            !s.ok && s.closed && !s.not_in_transaction,
            "{label} must fail with ClosedConnection: {s:?}"
        );
    }
    assert_eq!(depth, Ok(0));

    // Session state: reported lost once.
    let mut conn = aconnect_ready(&u).await;
    conn.batch_execute("SET application_name = 'acancel'")
        .await
        .unwrap();
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        diesel::sql_query("SELECT pg_sleep(2)::text AS v, inet_server_port() AS port")
            .get_result::<TextPort>(&mut conn),
    )
    .await;
    assert!(dropped.is_err());
    let once: QueryResult<TextPort> = diesel::sql_query(
        "SELECT current_setting('application_name') AS v, inet_server_port() AS port",
    )
    .get_result(&mut conn)
    .await;
    let then: QueryResult<TextPort> = diesel::sql_query(
        "SELECT current_setting('application_name') AS v, inet_server_port() AS port",
    )
    .get_result(&mut conn)
    .await;
    eprintln!(
        "async: after a dropped statement of a session with SET: {} then {:?}",
        once.as_ref().map_or_else(describe, |t| format!("{t:?}")),
        then.as_ref().map(|t| (&t.v, t.port)).map_err(describe)
    );
    assert!(
        once.as_ref().is_err_and(is_closed),
        "the lost session state must be reported once: {once:?}"
    );
    let then = then.expect("the statement after the report");
    assert_ne!(then.v, "acancel", "the SET survived a closed session");

    wait_idle(primary, &db, "pg_sleep(2)").await;
    let n = blocking(|| {
        query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name IN ('tx-1','tx-2','tx-3','dtx-1','dtx-2','dtx-3')",
        )
    });
    assert_eq!(
        n, "0",
        "rows of transactions cut by a dropped statement were committed"
    );
    assert_eq!(
        blocking(|| query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name IN ('tx-after','dtx-after')"
        )),
        "2"
    );
}

/// `INSERT ... RETURNING` through `get_result` on `conn`; how long until it was
/// acknowledged.
async fn timed_insert_returning<C>(conn: &mut C, v: i32) -> (QueryResult<i32>, Duration)
where
    C: diesel_async::AsyncConnection<Backend = diesel::pg::Pg>,
{
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        v: i32,
    }
    let started = Instant::now();
    let got = diesel::sql_query(format!("INSERT INTO acks (v) VALUES ({v}) RETURNING v"))
        .get_result::<V>(conn)
        .await
        .map(|r| r.v);
    (got, started.elapsed())
}

/// diesel-async's `get_result` takes the first row of `INSERT ... RETURNING` and drops the
/// rest of the answer. A primary that dies while the statement's commit waits (here for a
/// synchronous standby that is not there) flushes the row it had buffered on its way out:
/// the plain connection then takes the write for acknowledged, though it was never
/// committed anywhere that survives the failover. The wrapper reads a statement that may
/// write to its end, and reports the connection's loss instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_a_write_whose_commit_dies_waiting_is_not_acknowledged() {
    crate::trace();
    let cluster = cluster(1, "CREATE TABLE acks (v int NOT NULL)");
    let primary = cluster.primary_port();
    blocking(|| {
        cluster.query_one(
            primary,
            "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
        );
        cluster.query_one(primary, "ALTER SYSTEM SET synchronous_commit = on");
        cluster.query_one(primary, "SELECT pg_reload_conf()");
    });
    let conn = aconnect(&url(&all_ports(&cluster), "postgres", "")).await;
    let plain = diesel_async::AsyncPgConnection::establish(&url(&[primary], "postgres", ""))
        .await
        .unwrap();
    let wrapped = tokio::spawn(async move {
        let mut conn = conn;
        timed_insert_returning(&mut conn, 2).await
    });
    let control = tokio::spawn(async move {
        let mut plain = plain;
        timed_insert_returning(&mut plain, 1).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !wrapped.is_finished() && !control.is_finished(),
        "the commits should wait for the synchronous standby"
    );
    blocking(|| cluster.kill(primary));
    let (got, took) = wrapped.await.unwrap();
    let (control_got, _) = control.await.unwrap();
    eprintln!(
        "plain AsyncPgConnection, primary killed while its commit waited: {control_got:?}; \
         MultiHostConnection: {got:?} after {took:?}"
    );
    assert!(
        got.is_err(),
        "the wrapper acknowledged a write whose commit never completed: {got:?}"
    );
}
