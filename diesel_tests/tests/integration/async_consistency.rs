//! Consistency of `MultiHostConnection<AsyncPgConnection>` under replication, as
//! `consistency.rs` does it for the sync connection: read-your-writes (and its control),
//! causal tokens across pools, lag-aware reads, the split-brain guard, and migrations
//! through `AsyncMigrationHarness` against standbys that do not replay.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use diesel_multidb::{CausalToken, Exclusion};
use diesel_multidb_testkit::PgCluster;

use crate::async_routing::{
    aconnect, aconnect_ready, aready, assert_on_standby, awho, tx_depth, AConn,
};
use crate::common::Cycles;
use crate::consistency::{
    names_split_brain, own_cluster, pause_replay, promote_a_second_primary, resume_replay, unique,
};
use crate::multihost::{all_ports, fresh_db, inet_server_port, query_in, url, users, NewUser};

/// Write-then-read cycles of the read-your-writes tests.
const CYCLES: usize = 300;
/// Cycles of the causal-token test.
const TOKEN_CYCLES: usize = 200;

/// Inserts a user named `name`; returns the port of the server that ran the INSERT.
async fn insert_named(conn: &mut AConn, name: &str) -> i32 {
    diesel::insert_into(users::table)
        .values(NewUser { name })
        .returning(inet_server_port())
        .get_result(conn)
        .await
        .unwrap_or_else(|e| panic!("inserting {name}: {e}"))
}

/// The port of the server that answered for each user named `name` (empty: a miss).
async fn read_named(conn: &mut AConn, name: &str) -> Vec<i32> {
    users::table
        .filter(users::name.eq(name))
        .select(inet_server_port())
        .load(conn)
        .await
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// `n` cycles on one connection: INSERT a unique row, at once SELECT it.
async fn write_then_read(cluster: &PgCluster, conn: &mut AConn, n: usize, prefix: &str) -> Cycles {
    let standbys = cluster.standby_ports();
    let mut seen = Cycles::default();
    for _ in 0..n {
        let name = unique(prefix);
        let wrote = insert_named(conn, &name).await;
        assert_eq!(wrote as u16, cluster.current_primary_port());
        let ports: Vec<u16> = read_named(conn, &name)
            .await
            .iter()
            .map(|&p| p as u16)
            .collect();
        let route = conn.last_route().map(|r| r.host().port());
        seen.count(&name, &ports, route, &standbys);
    }
    seen
}

/// Runs a blocking harness call (psql) from the async test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_read_your_writes_300_cycles_on_one_connection() {
    let (cluster, db) = fresh_db("aryw");
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;
    let started = Instant::now();
    let seen = write_then_read(cluster, &mut conn, CYCLES, "aryw").await;
    seen.assert_no_miss(
        "async read-your-writes (default parameters)",
        CYCLES,
        started.elapsed(),
        &conn.topology(),
    );
    // Once replayed, reads go back to the standbys.
    let waited = Instant::now();
    aready(&mut conn).await;
    eprintln!("standby ready for reads again after {:?}", waited.elapsed());
    let name = unique("aryw-last");
    insert_named(&mut conn, &name).await;
    aready(&mut conn).await;
    let ports = read_named(&mut conn, &name).await;
    assert_eq!(ports.len(), 1);
    assert_on_standby(cluster, &conn, ports[0]);
}

/// The control: `read_your_writes=off` reads right after writes on a standby and may miss
/// them. Only printed (replay may be fast enough for none); the test above had none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_control_read_your_writes_off() {
    let (cluster, db) = fresh_db("aryw_off");
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "read_your_writes=off")).await;
    let seen = write_then_read(cluster, &mut conn, CYCLES, "aoff").await;
    let mut on = seen.missed_on.clone();
    on.sort_unstable();
    on.dedup();
    eprintln!(
        "async read_your_writes=off (control): {} misses of {CYCLES} (on {on:?}), {} reads \
         found the row on a standby",
        seen.misses, seen.on_standby
    );
    for port in &seen.missed_on {
        assert!(
            cluster.standby_ports().contains(port),
            "a missed read ran on {port}, not a standby"
        );
    }
}

/// Request 1 writes on a connection of one deadpool pool and hands its token (as a string)
/// to request 2 on a connection of another pool (another URL: another topology, as in
/// another process), whose reads must see the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_causal_tokens_across_two_deadpool_pools_200_cycles() {
    let (cluster, db) = fresh_db("acausal");
    crate::trace();
    let ports = all_ports(cluster);
    let pool = |app: &str| {
        Pool::builder(AsyncDieselConnectionManager::<AConn>::new(url(
            &ports,
            &db,
            &format!("application_name={app}"),
        )))
        .max_size(3)
        .build()
        .expect("a deadpool pool")
    };
    let (writers, readers) = (pool("async_writer"), pool("async_reader"));
    {
        let mut b = readers.get().await.unwrap();
        aready(&mut b).await;
    }
    let standbys = cluster.standby_ports();
    let (mut misses, mut on_standby) = (0, 0);
    let mut texts = Vec::new();
    let started = Instant::now();
    for _ in 0..TOKEN_CYCLES {
        let name = unique("atoken");
        let text = {
            let mut a = writers.get().await.unwrap();
            let wrote = insert_named(&mut a, &name).await;
            assert_eq!(wrote as u16, cluster.primary_port());
            a.causal_token().await.expect("a causal token").to_string()
        };
        let token: CausalToken = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut b = readers.get().await.unwrap();
        b.read_after(&token);
        match read_named(&mut b, &name).await.as_slice() {
            [] => misses += 1,
            [port] if standbys.contains(&(*port as u16)) => on_standby += 1,
            _ => {}
        }
        texts.push(text);
    }
    eprintln!(
        "async causal tokens across two deadpool pools: {misses} misses of {TOKEN_CYCLES}, \
         {on_standby} reads on standbys, {:?}; tokens {} .. {}",
        started.elapsed(),
        texts[0],
        texts[texts.len() - 1]
    );
    assert_eq!(misses, 0, "reads after a token missed the write it covers");
    let first: CausalToken = texts[0].parse().unwrap();
    let last: CausalToken = texts[texts.len() - 1].parse().unwrap();
    assert!(first < last, "{first:?} is not before {last:?}");
}

/// A standby whose replay is paused while the primary keeps writing gets no reads once it
/// lags more than `max_replica_lag`, and reads again once it has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_a_lagging_standby_gets_no_reads_until_it_catches_up() {
    let cluster = blocking(|| own_cluster(2));
    let primary = cluster.primary_port();
    let url = url(
        &all_ports(&cluster),
        "postgres",
        "max_replica_lag=1s&monitor_interval=100ms&connect_timeout=2",
    );
    // As in the sync test: connections opened while only one standby is known to follow
    // the primary start on it and move at a later read; read on all until both serve.
    let mut conns: Vec<AConn> = Vec::new();
    let mut reads_on = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reads_on.len() < 2 && Instant::now() < deadline {
        if conns.len() < 10 {
            conns.push(aconnect_ready(&url).await);
        }
        for c in conns.iter_mut() {
            let server = awho(c).await;
            assert!(server.in_recovery);
            reads_on.insert(server.port as u16);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        reads_on.len(),
        2,
        "{} connections all read on {reads_on:?}",
        conns.len()
    );
    let (lagging, healthy) = (cluster.standby_ports()[0], cluster.standby_ports()[1]);

    // Writes go on on the primary the whole time (a plain connection).
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, writes) = (Arc::clone(&stop), Arc::clone(&writes));
        let primary_url = crate::multihost::url(&[primary], "postgres", "");
        tokio::spawn(async move {
            let mut w = AsyncPgConnection::establish(&primary_url)
                .await
                .expect("the writer connects to the primary");
            while !AtomicBool::load(&stop, Ordering::SeqCst) {
                diesel::sql_query("INSERT INTO users (name) VALUES ('lag-writer')")
                    .execute(&mut w)
                    .await
                    .expect("the writer's INSERT");
                writes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    blocking(|| pause_replay(&cluster, lagging));
    let paused_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let st = conns[0]
            .topology()
            .into_iter()
            .find(|h| h.host.port() == lagging)
            .expect("the lagging host is listed");
        if matches!(st.excluded, Some(Exclusion::Lagging(_))) || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{:?} after the pause: {} excluded: {:?}, lag {:?}",
        paused_at.elapsed(),
        status.host,
        status.excluded,
        status.lag
    );
    assert!(
        matches!(status.excluded, Some(Exclusion::Lagging(lag)) if lag > Duration::from_secs(1)),
        "the paused standby is not excluded as lagging: {status:#?}"
    );
    for _ in 0..2 {
        conns.push(aconnect(&url).await);
    }
    let mut on_healthy = 0;
    for round in 0..25 {
        for (i, c) in conns.iter_mut().enumerate() {
            let server = awho(c).await;
            assert_ne!(
                server.port as u16, lagging,
                "round {round}: connection {i} read on the lagging standby"
            );
            if server.port as u16 == healthy {
                on_healthy += 1;
            }
        }
    }
    eprintln!(
        "{} async reads while lagging: none on {lagging}, {on_healthy} on the other standby",
        25 * conns.len()
    );
    assert!(on_healthy > 0, "no read ran on the healthy standby");

    blocking(|| resume_replay(&cluster, lagging));
    let resumed = Instant::now();
    let deadline = resumed + Duration::from_secs(15);
    let mut fresh = 0;
    'found: loop {
        for c in conns.iter_mut() {
            if awho(c).await.port as u16 == lagging {
                break 'found;
            }
        }
        assert!(
            Instant::now() < deadline,
            "15 s after pg_wal_replay_resume() no read reached {lagging}: {:#?}",
            conns[0].topology()
        );
        if fresh < 10 {
            let mut c = aconnect(&url).await;
            c.wait_for_standby(Duration::from_secs(2)).await;
            conns.push(c);
            fresh += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "async reads reached {lagging} again {:?} after the resume ({fresh} new connections)",
        resumed.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("the writer task");
    eprintln!(
        "the writer wrote {} rows",
        AtomicUsize::load(&writes, Ordering::SeqCst)
    );
}

/// A standby promoted while the old primary still runs: writes and `establish` are refused
/// naming both writable hosts; once the old primary is stopped, writes resume on the
/// promoted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_split_brain_refuses_writes_until_one_primary_remains() {
    let cluster = blocking(|| own_cluster(2));
    let (old, promoted, remaining) = (
        cluster.primary_port(),
        cluster.standby_ports()[0],
        cluster.standby_ports()[1],
    );
    let url = url(
        &all_ports(&cluster),
        "postgres",
        "monitor_interval=100ms&connect_timeout=2&failover_timeout=10",
    );
    let mut conn = aconnect_ready(&url).await;
    let first: i32 = diesel::insert_into(users::table)
        .values(NewUser { name: "before" })
        .returning(inet_server_port())
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(first as u16, old);
    let names = |text: &str| names_split_brain(text, old, promoted);
    blocking(|| promote_a_second_primary(&cluster, old, promoted, remaining));
    let promoted_at = Instant::now();
    let deadline = promoted_at + Duration::from_secs(5);
    let mut accepted = 0;
    let refused = loop {
        match diesel::insert_into(users::table)
            .values(NewUser { name: "split" })
            .returning(inet_server_port())
            .get_result::<i32>(&mut conn)
            .await
        {
            Ok(_) => accepted += 1,
            Err(e) => break e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the promotion writes are still accepted: {:#?}",
            conn.topology()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "async: writes refused {:?} after the promotion ({accepted} accepted before): {refused}",
        promoted_at.elapsed()
    );
    assert!(
        names(&refused),
        "the refusal does not name both hosts: {refused}"
    );
    assert_eq!(tx_depth(&mut conn), Ok(0));

    let mut problems = Vec::new();
    let again = diesel::sql_query("SELECT txid_current()")
        .execute(&mut conn)
        .await
        .expect_err("a write during split brain succeeded")
        .to_string();
    if !names(&again) {
        problems.push(format!("a second write: {again}"));
    }
    let other_url = format!("{url}&application_name=async_split_other");
    for (what, u) in [("establish", &url), ("a fresh establish", &other_url)] {
        match AConn::establish(u).await {
            Ok(mut c) if u == &other_url => {
                let write = diesel::insert_into(users::table)
                    .values(NewUser {
                        name: "split-establish",
                    })
                    .execute(&mut c)
                    .await
                    .map_err(|e| e.to_string());
                match write {
                    Err(e) if names(&e) => {}
                    other => problems.push(format!(
                        "{what} succeeded during split brain and its first write was not \
                         refused naming both hosts: {other:?}"
                    )),
                }
            }
            Ok(c) => problems.push(format!(
                "{what} succeeded during split brain (primary_host {:?})",
                c.primary_host().map(|h| h.to_string())
            )),
            Err(e) if names(&e.to_string()) => {}
            Err(e) => problems.push(format!("{what} failed without naming both hosts: {e}")),
        }
    }

    // The old primary goes: writes resume on the promoted one.
    blocking(|| cluster.kill(old));
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(10);
    let port = loop {
        match diesel::insert_into(users::table)
            .values(NewUser { name: "after" })
            .returning(inet_server_port())
            .get_result::<i32>(&mut conn)
            .await
        {
            Ok(port) => break port,
            Err(e) => assert!(
                Instant::now() < deadline,
                "10 s after the old primary was stopped writes still fail: {e}; {:#?}",
                conn.topology()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "async: writes resumed {:?} after the old primary was stopped",
        killed_at.elapsed()
    );
    assert_eq!(port as u16, promoted);
    assert_eq!(
        query_in(
            promoted,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'after'"
        ),
        "1"
    );
    assert_eq!(
        query_in(
            promoted,
            "postgres",
            "SELECT count(*) FROM users WHERE name = 'split'"
        ),
        "0",
        "a write refused during split brain reached the promoted host"
    );
    assert!(
        problems.is_empty(),
        "during split brain:\n{}",
        problems.join("\n")
    );
}

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/multihost");

/// `AsyncMigrationHarness` through the wrapper, with the standby's replay paused (and no lag
/// limit, so it keeps serving reads): the migrations run on the primary, and running them
/// again at once applies nothing (the records are read on the primary).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_migration_harness_runs_on_the_primary_and_twice_applies_nothing() {
    let cluster = blocking(|| PgCluster::start(1));
    let (primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let url = url(&all_ports(&cluster), "postgres", "max_replica_lag=off");
    let mut conn = aconnect_ready(&url).await;
    blocking(|| pause_replay(&cluster, standby));
    // The paused standby still serves this connection's reads.
    aready(&mut conn).await;
    let server = awho(&mut conn).await;
    assert_eq!(
        server.port as u16, standby,
        "reads run on the paused standby"
    );

    let (conn, first, second) = blocking(|| {
        let mut harness = AsyncMigrationHarness::new(conn);
        let first: Vec<String> = harness
            .run_pending_migrations(MIGRATIONS)
            .expect("the first run")
            .iter()
            .map(|v| v.to_string())
            .collect();
        let second: Vec<String> = harness
            .run_pending_migrations(MIGRATIONS)
            .unwrap_or_else(|e| panic!("the second run: {e}"))
            .iter()
            .map(|v| v.to_string())
            .collect();
        (harness.into_inner(), first, second)
    });
    eprintln!("async migrations: first run applied {first:?}, the second {second:?}");
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(second.is_empty(), "the second run applied {second:?} again");
    assert!(conn.is_pinned(), "the migrations table pins the connection");
    blocking(|| {
        assert_eq!(
            cluster.query_one(primary, "SELECT count(*) FROM __diesel_schema_migrations"),
            "2"
        );
        assert_eq!(
            cluster.query_one(primary, "SELECT count(*) FROM widgets"),
            "1"
        );
        assert_eq!(
            cluster.query_one(standby, "SELECT to_regclass('widgets') IS NULL"),
            "t",
            "the standby replayed while paused: the test tested nothing"
        );
        resume_replay(&cluster, standby);
        cluster.wait_for_replay();
        assert_eq!(
            cluster.query_one(standby, "SELECT count(*) FROM widgets"),
            "1"
        );
    });
    drop(conn);
}
