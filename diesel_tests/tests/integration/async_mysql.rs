//! `MultiHostConnection<AsyncMysqlConnection>`: the async connection on MariaDB, with the
//! routing, read-your-writes and failover rules of the sync one.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_multidb::MultiHostConnection;
use diesel_multidb_testkit::MariaDbCluster;

use crate::mysql::{fresh_db, items, WhoRow, SCHEMA, WHO};

type AConn = MultiHostConnection<AsyncMysqlConnection>;

async fn who(conn: &mut AConn) -> QueryResult<(u16, bool)> {
    let row: WhoRow = diesel::sql_query(WHO).get_result(conn).await?;
    Ok((row.port as u16, row.read_only != 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_mysql_reads_on_replicas_writes_on_the_source_and_reads_its_own_writes() {
    let (cluster, db) = fresh_db("amy");
    let url = cluster.db_url(&db, &cluster.default_ports(), "");
    let mut conn = AConn::establish(&url).await.expect("establish");
    assert!(conn.wait_for_standby(Duration::from_secs(10)).await);
    let (port, read_only) = who(&mut conn).await.unwrap();
    assert!(read_only, "a plain read ran on the replica {port}");
    assert!(cluster.replica_ports().contains(&port));

    // Writes and transactions on the source.
    let source = cluster.source_port();
    let (port, read_only) = conn.transaction(async |c| who(c).await).await.unwrap();
    assert_eq!((port, read_only), (source, false));

    // Read-your-writes: every read right after a write sees it.
    let mut misses = 0;
    let mut on_replica = 0;
    for i in 0..100 {
        let name = format!("async-ryw-{i}");
        diesel::insert_into(items::table)
            .values((items::v.eq(i), items::name.eq(&name)))
            .execute(&mut conn)
            .await
            .unwrap();
        let found: i64 = items::table
            .filter(items::name.eq(&name))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        if found != 1 {
            misses += 1;
        }
        if conn.last_route().is_some_and(|r| r.is_replica()) {
            on_replica += 1;
        }
    }
    eprintln!("async MySQL read-your-writes: 100 cycles, {misses} misses, {on_replica} reads on a replica");
    assert_eq!(misses, 0);
    let token = conn.causal_token().await.unwrap();
    assert!(token.to_string().starts_with("gtid:"), "{token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_mysql_fails_over_to_a_promoted_replica() {
    crate::trace();
    let cluster = MariaDbCluster::start(1);
    let source = cluster.source_port();
    let replica = cluster.replica_ports()[0];
    cluster
        .try_query_one(source, Some(MariaDbCluster::DATABASE), SCHEMA)
        .unwrap_or_else(|e| panic!("creating the schema: {e}"));
    cluster.wait_for_replication();
    let url = cluster.url(
        &[source, replica],
        "failover_timeout=20&connect_timeout=2&monitor_interval=100ms",
    );
    let mut conn = AConn::establish(&url).await.expect("establish");
    diesel::insert_into(items::table)
        .values((items::v.eq(10), items::name.eq("before")))
        .execute(&mut conn)
        .await
        .unwrap();
    cluster.wait_for_replication();

    // A transaction open when the source dies is lost, and said so until rolled back.
    let lost: QueryResult<()> = conn
        .transaction(async |c| {
            diesel::insert_into(items::table)
                .values((items::v.eq(11), items::name.eq("in-tx")))
                .execute(c)
                .await?;
            cluster.kill(source);
            diesel::insert_into(items::table)
                .values((items::v.eq(12), items::name.eq("in-tx-2")))
                .execute(c)
                .await?;
            Ok(())
        })
        .await;
    let error = lost.expect_err("the transaction's source died");
    eprintln!("transaction lost: {error}");

    cluster.promote(replica);
    let promoted = Instant::now();
    diesel::insert_into(items::table)
        .values((items::v.eq(13), items::name.eq("after")))
        .execute(&mut conn)
        .await
        .expect("the first write after the promotion");
    eprintln!(
        "async MySQL: first write {:?} after the promotion",
        promoted.elapsed()
    );
    let (port, read_only) = conn.transaction(async |c| who(c).await).await.unwrap();
    assert_eq!((port, read_only), (replica, false));
    let rows = cluster.query_one_db(
        replica,
        MariaDbCluster::DATABASE,
        "SELECT COUNT(*) FROM items WHERE name IN ('before', 'after')",
    );
    assert_eq!(rows, "2");
    let torn = cluster.query_one_db(
        replica,
        MariaDbCluster::DATABASE,
        "SELECT COUNT(*) FROM items WHERE name LIKE 'in-tx%'",
    );
    assert_eq!(torn, "0", "nothing of the lost transaction was committed");
}
