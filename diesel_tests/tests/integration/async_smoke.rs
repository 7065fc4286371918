//! Scratch: the async connection end to end (to be replaced by the full async suite).

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_multidb::MultiHostConnection;

use crate::multihost::{all_ports, fresh_db, url, users, Server, User, WHO};

type AConn = MultiHostConnection<AsyncPgConnection>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_reads_go_to_standbys_and_writes_to_the_primary() {
    crate::trace();
    let (cluster, db) = fresh_db("asmoke");
    let u = url(&all_ports(cluster), &db, "");
    let mut conn = AConn::establish(&u).await.expect("establish");
    let s: Server = diesel::sql_query(WHO).get_result(&mut conn).await.unwrap();
    eprintln!("first read on {}", s.port);
    assert!(
        conn.wait_for_standby(std::time::Duration::from_secs(10))
            .await
    );
    let s: Server = diesel::sql_query(WHO).get_result(&mut conn).await.unwrap();
    assert!(s.in_recovery, "read on a standby");
    let n = diesel::insert_into(users::table)
        .values(users::name.eq("carol"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let all: Vec<User> = users::table.order(users::id).load(&mut conn).await.unwrap();
    assert_eq!(all.len(), 3, "read your writes");
    let r: QueryResult<()> = conn
        .transaction(async |c| {
            diesel::insert_into(users::table)
                .values(users::name.eq("dave"))
                .execute(c)
                .await?;
            let s: Server = diesel::sql_query(WHO).get_result(c).await?;
            assert!(!s.in_recovery);
            Ok(())
        })
        .await;
    r.unwrap();
    let token = conn.causal_token().await.unwrap();
    eprintln!("token {token}");
}
