//! Failover: each test owns its cluster, kills and promotes nodes.

use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};

use crate::multihost::*;
use diesel_multidb_testkit::PgCluster;

pub(crate) fn setup(cluster: &PgCluster) {
    let mut conn = PgConnection::establish(&url(&[cluster.primary_port()], "postgres", ""))
        .expect("connecting to the primary");
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);",
    )
    .unwrap();
    cluster.wait_for_replay();
}

/// A cluster of its own with one standby, and a connection (with `params`) whose first
/// write ran on the primary.
fn one_standby_cluster(params: &str) -> (PgCluster, Conn) {
    let cluster = PgCluster::start(1);
    setup(&cluster);
    let mut conn = connect(&url(&all_ports(&cluster), "postgres", params));
    assert_eq!(write_port(&mut conn) as u16, cluster.primary_port());
    (cluster, conn)
}

#[test]
fn after_the_primary_dies_and_a_standby_is_promoted_the_pool_writes_to_it() {
    let cluster = PgCluster::start(2);
    setup(&cluster);
    let old_primary = cluster.primary_port();
    let new_primary = cluster.standby_ports()[0];
    let manager = ConnectionManager::<Conn>::new(url(
        &all_ports(&cluster),
        "postgres",
        "failover_timeout=30&connect_timeout=2",
    ));
    let pool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(60))
        .build(manager)
        .unwrap();
    let mut held = pool.get().unwrap();
    let port = write_port(&mut held);
    assert_eq!(port as u16, old_primary);

    cluster.kill(old_primary);
    // A write on a connection whose primary just died fails: its outcome is unknown to
    // the client, so it is never re-sent.
    let failed = diesel::insert_into(users::table)
        .values(NewUser { name: "lost?" })
        .execute(&mut *held);
    assert!(failed.is_err(), "a write to a dead primary succeeded");
    drop(held);

    cluster.promote(new_primary);

    let mut conn = pool.get().unwrap();
    let (_, port): (i32, i32) = diesel::insert_into(users::table)
        .values(NewUser {
            name: "after failover",
        })
        .returning((users::id, inet_server_port()))
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(port as u16, new_primary, "the write ran on {port}");
    assert_eq!(
        conn.primary_host().expect("a primary is known").port(),
        new_primary
    );
    assert_eq!(
        query_in(
            new_primary,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'lost?'"
        ),
        "0",
        "the failed write must not have been re-sent"
    );
}

#[test]
fn a_statement_waits_for_the_promotion_of_a_standby() {
    let (cluster, mut conn) = one_standby_cluster("failover_timeout=60&connect_timeout=2");
    let (old_primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);

    cluster.kill(old_primary);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            cluster.promote(standby);
        });
        // A statement that reaches the dead primary fails (it may have been a write); one
        // sent once the process knows the primary is gone waits for the promotion instead
        // and runs on the new primary. Either way nothing is applied twice.
        let first = diesel::sql_query("INSERT INTO users (name) VALUES ('x')").execute(&mut conn);
        let port = write_port(&mut conn);
        assert_eq!(port as u16, standby);
        let rows = query_in(
            standby,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'x'",
        );
        assert_eq!(
            rows,
            if first.is_ok() { "1" } else { "0" },
            "first: {first:?}"
        );
    });
}

#[test]
fn a_demoted_primary_answering_25006_is_left_and_the_write_rerun_on_the_new_primary() {
    let (cluster, mut conn) = one_standby_cluster("failover_timeout=30");
    let (old_primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);

    // The old primary turns read-only (as a demoted primary does) and the standby is
    // promoted: the next write gets 25006 from the old one, which applied nothing.
    cluster.query_one(
        old_primary,
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    cluster.query_one(old_primary, "SELECT pg_reload_conf()::text");
    cluster.promote(standby);
    std::thread::sleep(Duration::from_millis(500));

    let (_, port): (i32, i32) = diesel::insert_into(users::table)
        .values(NewUser { name: "rerun" })
        .returning((users::id, inet_server_port()))
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(port as u16, standby, "the write ran on {port}");
    assert_eq!(
        query_in(
            standby,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'rerun'"
        ),
        "1"
    );
    assert_eq!(
        query_in(
            old_primary,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'rerun'"
        ),
        "0"
    );
    // execute() takes the same path.
    let n = diesel::insert_into(users::table)
        .values(NewUser { name: "rerun-2" })
        .execute(&mut conn)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        conn.primary_host().expect("a primary is known").port(),
        standby
    );
}

#[test]
fn a_dead_standby_is_left_alone_and_reads_go_elsewhere() {
    let cluster = PgCluster::start(2);
    setup(&cluster);
    let primary = cluster.primary_port();
    let url = url(
        &all_ports(&cluster),
        "postgres",
        "replica_retry_interval=60&connect_timeout=2",
    );
    let mut conn = connect_ready(&url);
    let server = who(&mut conn);
    assert!(server.in_recovery);
    let first = server.port as u16;
    cluster.kill(first);

    let other = *cluster
        .standby_ports()
        .iter()
        .find(|&&p| p != first)
        .unwrap();
    // The read that finds the standby dead (or that the monitor already knows is dead) is
    // served by the primary or the other standby, never the dead one ...
    let server = who(&mut conn);
    assert!(
        [primary, other].contains(&(server.port as u16)),
        "a read ran on {}",
        server.port
    );
    // ... and once the connection has its session to the other standby, reads go there.
    ready(&mut conn);
    for _ in 0..3 {
        let server = who(&mut conn);
        assert_eq!(server.port as u16, other);
        assert!(server.in_recovery);
    }
    // A fresh connection of the same URL knows the host is being left alone.
    let mut fresh = connect_ready(&url);
    let server = who(&mut fresh);
    assert_eq!(server.port as u16, other);
}
