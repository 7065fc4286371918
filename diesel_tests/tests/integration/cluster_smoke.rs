//! Smoke tests of the cluster harness itself, through plain diesel
//! `PgConnection`s (not the crate's wrapper).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use crate::common::{cluster_report, connect, exec, kill_cluster_child_and_wait, pg_text};
use crate::reaper::{self, refuses};
use diesel_multidb_testkit::{dead_port, Blackhole, PgCluster, APP_PASSWORD};

fn in_recovery(conn: &mut PgConnection) -> bool {
    diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .get_result(conn)
        .expect("SELECT pg_is_in_recovery()")
}

fn count(conn: &mut PgConnection, query: &str) -> i64 {
    diesel::select(sql::<BigInt>(&format!("({query})")))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

#[test]
fn cluster_shared_topology() {
    let cluster = PgCluster::shared();
    let standbys = cluster.standby_ports();
    assert_eq!(standbys.len(), 2);

    let mut primary = connect(&cluster.node_url(cluster.primary_port()));
    assert!(!in_recovery(&mut primary), "the primary is in recovery");
    assert_eq!(
        count(
            &mut primary,
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        ),
        2
    );
    for port in standbys {
        let mut standby = connect(&cluster.node_url(port));
        assert!(
            in_recovery(&mut standby),
            "standby {port} is not in recovery"
        );
        assert_eq!(
            count(
                &mut standby,
                "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
            ),
            1,
            "standby {port} does not stream"
        );
        assert_eq!(
            pg_text(&mut standby, "current_setting('port')"),
            port.to_string()
        );
    }
    assert_eq!(
        cluster.default_url("connect_timeout=2"),
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/postgres?connect_timeout=2",
            cluster.primary_port(),
            cluster.standby_ports()[0],
            cluster.standby_ports()[1]
        )
    );
    assert_eq!(
        cluster.query_one(cluster.primary_port(), "SELECT 1 + 1"),
        "2"
    );
    let killed = std::panic::catch_unwind(|| cluster.kill(cluster.primary_port()));
    assert!(
        killed.is_err(),
        "kill() on the shared cluster did not panic"
    );
    assert!(!refuses(cluster.primary_port()));
}

#[test]
fn cluster_shared_replicates_writes() {
    let cluster = PgCluster::shared();
    let db = cluster.create_database("cluster smoke");
    let mut primary: PgConnection = connect(&cluster.node_db_url(cluster.primary_port(), &db));
    exec(
        &mut primary,
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
    );
    exec(&mut primary, "INSERT INTO items VALUES (1, 'replicated')");
    cluster.wait_for_replay();
    for port in cluster.standby_ports() {
        let mut standby = connect(&cluster.node_db_url(port, &db));
        assert_eq!(
            pg_text(&mut standby, "(SELECT name FROM items WHERE id = 1)"),
            "replicated",
            "standby {port}"
        );
        let err = diesel::sql_query("INSERT INTO items VALUES (2, 'x')")
            .execute(&mut standby)
            .expect_err("a standby accepted a write");
        assert!(
            err.to_string().contains("read-only transaction"),
            "unexpected error: {err}"
        );
    }
}

#[test]
fn cluster_app_role_password_auth() {
    let cluster = PgCluster::shared();
    let port = cluster.primary_port();
    let mut app = connect(&cluster.app_url(port, APP_PASSWORD));
    assert_eq!(pg_text(&mut app, "current_user::text"), "app");
    assert_eq!(
        pg_text(
            &mut app,
            "(SELECT rolsuper::text FROM pg_roles WHERE rolname = 'app')"
        ),
        "false"
    );
    let table = format!("app_smoke_{}", std::process::id());
    exec(&mut app, &format!("CREATE TABLE {table} (id int)"));
    exec(&mut app, &format!("DROP TABLE {table}"));
    exec(&mut app, &format!("CREATE SCHEMA {table}"));
    exec(&mut app, &format!("DROP SCHEMA {table}"));

    let err = PgConnection::establish(&cluster.app_url(port, "wrong-secret"))
        .err()
        .expect("app connected with a wrong password");
    assert!(
        err.to_string()
            .contains("password authentication failed for user \"app\""),
        "unexpected error: {err}"
    );
    // The password also holds on a standby.
    let standby = cluster.standby_ports()[0];
    let mut app = connect(&cluster.app_url(standby, APP_PASSWORD));
    assert!(in_recovery(&mut app));
    assert!(PgConnection::establish(&cluster.app_url(standby, "nope")).is_err());
}

#[test]
fn cluster_blackhole_accepts_and_never_answers() {
    let hole = Blackhole::start();
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, hole.port())).expect("TCP connect");
    stream.write_all(b"hello?").expect("write");
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the blackhole answered: {other:?}"),
    }

    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=2",
        hole.port()
    );
    let started = Instant::now();
    let result = PgConnection::establish(&url);
    let elapsed = started.elapsed();
    assert!(result.is_err(), "connected to a blackhole");
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_millis(4500),
        "connect_timeout=2 to a blackhole took {elapsed:?}"
    );
    assert!(hole.accepted() >= 2, "accepted {}", hole.accepted());
}

#[test]
fn cluster_dead_port_refuses() {
    let port = dead_port();
    assert!(refuses(port), "port {port} does not refuse");
    let started = Instant::now();
    let result = PgConnection::establish(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"
    ));
    let err = result.err().expect("connected to a dead port");
    assert!(
        err.to_string().contains("Connection refused"),
        "unexpected error: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn cluster_own_kill_and_promote() {
    let cluster = PgCluster::start(1);
    let primary_port = cluster.primary_port();
    let standby_port = cluster.standby_ports()[0];
    let dir = cluster.dir().to_path_buf();

    let mut primary: PgConnection = connect(&cluster.node_url(primary_port));
    exec(&mut primary, "CREATE TABLE before_failover (v int)");
    exec(&mut primary, "INSERT INTO before_failover VALUES (42)");
    cluster.wait_for_replay();
    drop(primary);

    cluster.kill(primary_port);
    assert!(refuses(primary_port));
    assert!(!cluster.is_running(primary_port));
    assert!(PgConnection::establish(&cluster.node_url(primary_port)).is_err());

    cluster.promote(standby_port);
    assert_eq!(cluster.current_primary_port(), standby_port);
    let mut promoted = connect(&cluster.node_url(standby_port));
    assert!(!in_recovery(&mut promoted));
    assert_eq!(
        count(&mut promoted, "SELECT sum(v) FROM before_failover"),
        42
    );
    exec(&mut promoted, "CREATE TABLE after_failover (v int)");
    exec(&mut promoted, "INSERT INTO after_failover VALUES (7)");
    assert_eq!(count(&mut promoted, "SELECT sum(v) FROM after_failover"), 7);
    drop(promoted);

    // Dropping the cluster stops its servers and removes its directory.
    drop(cluster);
    assert!(
        refuses(standby_port),
        "port {standby_port} still open after drop"
    );
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn cluster_own_failover_other_standby_follows() {
    let cluster = PgCluster::start(2);
    let old_primary = cluster.primary_port();
    let [s1, s2] = cluster.standby_ports()[..] else {
        panic!("expected two standbys");
    };
    cluster.query_one(old_primary, "CREATE TABLE t (v int)");
    cluster.query_one(old_primary, "INSERT INTO t VALUES (1)");
    cluster.wait_for_replay();

    cluster.kill(old_primary);
    cluster.promote(s1);
    cluster.query_one(s1, "INSERT INTO t VALUES (2)");
    // s2 was re-pointed at s1 and follows its new timeline.
    cluster.wait_for_replay();
    assert_eq!(cluster.query_one(s2, "SELECT sum(v) FROM t"), "3");
    assert_eq!(cluster.query_one(s2, "SELECT pg_is_in_recovery()"), "t");

    // A standby restarted after a kill catches up again.
    cluster.kill(s2);
    cluster.query_one(s1, "INSERT INTO t VALUES (4)");
    cluster.restart(s2);
    cluster.wait_for_replay();
    assert_eq!(cluster.query_one(s2, "SELECT sum(v) FROM t"), "7");

    // The old primary comes back as a standby of the new one.
    cluster.rejoin_as_standby(old_primary);
    assert!(cluster.is_running(old_primary));
    cluster.query_one(s1, "INSERT INTO t VALUES (8)");
    cluster.wait_for_replay();
    assert_eq!(
        cluster.query_one(old_primary, "SELECT pg_is_in_recovery()"),
        "t"
    );
    assert_eq!(cluster.query_one(old_primary, "SELECT sum(v) FROM t"), "15");

    // create_database works after the failover too.
    let db = cluster.create_database("after_failover");
    assert_eq!(
        cluster.query_one_db(s2, &db, "SELECT current_database()"),
        db
    );
}

/// Helper process for `cluster_reaper_cleans_up_after_sigkill`: starts a cluster, reports
/// `<cluster dir> <port>,<port>` and waits to be killed.
#[test]
#[ignore = "helper process run by cluster_reaper_cleans_up_after_sigkill"]
fn cluster_reaper_child() {
    reaper::child(|| {
        let cluster = PgCluster::start(1);
        let line = cluster_report(cluster.dir(), &cluster.default_ports());
        (cluster, line)
    });
}

#[test]
fn cluster_reaper_cleans_up_after_sigkill() {
    kill_cluster_child_and_wait("cluster_smoke::cluster_reaper_child");
}
