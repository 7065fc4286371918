//! A primary behind a network blackhole (issue 6): the primary runs in a network namespace
//! whose link is cut silently (`testkit/src/netns.rs`) while a statement is in flight on it.
//! The crate's default TCP keepalives must fail the statement within about 10 s, and after
//! a promotion the next write must succeed at once; a plain `PgConnection` without
//! keepalive settings is the control.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Integer;

use crate::failover_chaos::{error_kind, PortRow};
use crate::multihost::*;
use diesel_multidb_testkit::PgCluster;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// Polls `sql` (a count) on `port` through the harness until it is at least `n`.
fn wait_count(cluster: &PgCluster, port: u16, sql: &str, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = cluster.query_one(port, sql);
        if got.parse::<u32>().is_ok_and(|c| c >= n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} on {port} is {got:?} after 10 s, expected >= {n}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_statement_in_flight_on_a_blackholed_primary_fails_within_the_keepalive_bound() {
    let cluster = PgCluster::start_with_netns(1, &[0]);
    let (primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let ns = cluster.netns(primary);
    cluster.query_one(primary, "CREATE TABLE nb (v int NOT NULL)");
    cluster.wait_for_replay();

    // No keepalive parameters: the crate's defaults apply (keepalives_idle=4,
    // keepalives_interval=2, keepalives_count=3, tcp_user_timeout=10000).
    let mh_url = cluster.url(
        &cluster.default_ports(),
        "failover_timeout=30&connect_timeout=2&monitor_interval=100ms",
    );
    crate::trace();
    let mut conn =
        Conn::establish(&mh_url).unwrap_or_else(|e| panic!("establishing {mh_url}: {e}"));
    assert_eq!(write_port(&mut conn) as u16, primary);
    // The control: a plain connection, without keepalive settings.
    let mut plain = PgConnection::establish(&cluster.url(&[primary], ""))
        .expect("connecting the plain control to the primary");
    let plain_pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut plain)
        .expect("the plain connection's backend pid")
        .pid;

    // A write that sleeps first: it runs on the primary, and a write whose connection
    // failed is never re-sent (its outcome is unknown), so the failure comes back. (A read
    // such as `SELECT pg_sleep(30)` would be re-run on the next primary once the failure is
    // detected, and wait for the promotion.)
    let (mh_tx, mh_rx) = mpsc::channel();
    thread::spawn(move || {
        let result =
            diesel::sql_query("INSERT INTO nb (v) SELECT 2 FROM pg_sleep(30)").execute(&mut conn);
        let _ = mh_tx.send((
            result.map_err(|e| (error_kind(&e), e.to_string())),
            Instant::now(),
            conn,
        ));
    });
    let (plain_tx, plain_rx) = mpsc::channel();
    thread::spawn(move || {
        let result = diesel::sql_query("SELECT pg_sleep(60)").execute(&mut plain);
        let _ = plain_tx.send((result, Instant::now()));
    });
    wait_count(
        &cluster,
        primary,
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND query IN ('INSERT INTO nb (v) SELECT 2 FROM pg_sleep(30)', 'SELECT pg_sleep(60)')",
        2,
    );

    // Steady state: the topology monitor has probed the primary many times (on its kept
    // monitor session) before the link goes.
    thread::sleep(Duration::from_secs(1));
    ns.cut();
    let cut_at = Instant::now();
    let (result, failed_at, mut conn) =
        mh_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
            "the statement in flight on the blackholed primary neither failed nor returned \
             within 20 s of the cut (the crate's keepalive defaults should end it in ~10 s)"
        )
            });
    let detected = failed_at - cut_at;
    let (kind, message) = result.expect_err("the sleeping INSERT succeeded through a cut link");
    eprintln!("blackhole: the statement in flight failed {detected:.2?} after the cut: {message}");
    assert!(
        detected < Duration::from_secs(20),
        "detection took {detected:.2?}"
    );
    // The control is still waiting.
    assert!(
        matches!(plain_rx.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the plain PgConnection without keepalives returned during the cut"
    );

    cluster.promote(standby);
    let promoted_at = Instant::now();
    let write =
        diesel::sql_query("INSERT INTO nb (v) VALUES (1) RETURNING inet_server_port() AS port")
            .get_result::<PortRow>(&mut conn);
    let write_time = promoted_at.elapsed();
    let plain_still_waiting = matches!(plain_rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    let plain_waited = cut_at.elapsed();
    eprintln!(
        "blackhole: statement in flight failed {detected:.2?} after the cut ({kind}); first \
         write after the promotion: {:?} after {write_time:.2?}; plain PgConnection without \
         keepalives still waiting {plain_waited:.2?} after the cut: {plain_still_waiting}",
        write.as_ref().map(|r| r.port).map_err(|e| e.to_string()),
    );
    let port = write
        .unwrap_or_else(|e| {
            panic!(
                "the first write after the promotion failed: {e}; {conn:?} {:#?}",
                conn.topology()
            )
        })
        .port;
    assert_eq!(port as u16, standby, "the write ran on {port}");
    assert!(
        write_time < Duration::from_secs(1),
        "the first write after the promotion took {write_time:.2?} (expected < 1 s)"
    );
    assert_eq!(
        query_in(standby, "postgres", "SELECT count(*) FROM nb"),
        "1"
    );
    assert!(
        plain_still_waiting,
        "the control (a plain PgConnection without keepalive settings) returned during the cut"
    );

    // Cleanup: let the control finish (restore the link, end its backend).
    drop(conn);
    ns.restore();
    cluster.query_one(
        primary,
        &format!("SELECT pg_terminate_backend({plain_pid})"),
    );
    match plain_rx.recv_timeout(Duration::from_secs(30)) {
        Ok((result, _)) => eprintln!(
            "blackhole: the control ended after restore + pg_terminate_backend: {:?}",
            result.map_err(|e| e.to_string())
        ),
        Err(_) => {
            eprintln!("blackhole: the control did not end within 30 s of restore (left behind)")
        }
    }
}
