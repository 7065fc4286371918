//! `MultiHostConnection<AsyncPgConnection>`: the routing rules of the sync connection
//! (`multihost_routing.rs`), proved the same way, by each server's own answer. Also the
//! helpers of the other async modules (`async_consistency`, `async_failover`,
//! `async_pools`).

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    TransactionManager,
};
use diesel_multidb::{MultiHostConnection, StatementRoute};
use diesel_multidb_testkit::PgCluster;

use crate::multihost::{
    all_ports, fresh_db, inet_server_port, query_in, url, users, NewUser, Server, User, WHO,
};

/// The async connection under test.
pub(crate) type AConn = MultiHostConnection<AsyncPgConnection>;

/// Establishes `url`, naming it on failure.
pub(crate) async fn aconnect(url: &str) -> AConn {
    crate::trace();
    AConn::establish(url)
        .await
        .unwrap_or_else(|e| panic!("establishing {url}: {e}"))
}

/// Waits until `conn`'s next read would run on a standby.
pub(crate) async fn aready(conn: &mut AConn) {
    assert!(
        conn.wait_for_standby(Duration::from_secs(10)).await,
        "no standby became ready for reads: {:#?}",
        conn.topology()
    );
}

/// [`aconnect`], then [`aready`].
pub(crate) async fn aconnect_ready(url: &str) -> AConn {
    let mut conn = aconnect(url).await;
    aready(&mut conn).await;
    conn
}

/// Runs `WHO` through `conn`.
pub(crate) async fn awho(conn: &mut AConn) -> Server {
    diesel::sql_query(WHO)
        .get_result(conn)
        .await
        .expect("asking the server who it is")
}

/// Asserts that the last statement ran on a standby of `cluster`, per the route and per the
/// port the server reported.
pub(crate) fn assert_on_standby(cluster: &PgCluster, conn: &AConn, server_port: i32) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        route.is_replica(),
        "expected a standby, ran on {route}; {conn:?} {:#?}",
        conn.topology()
    );
    assert!(
        cluster.standby_ports().contains(&(server_port as u16)),
        "server port {server_port} is not a standby of {:?}",
        cluster.standby_ports()
    );
    assert_eq!(route.host().port(), server_port as u16);
}

/// Asserts that the last statement ran on the primary at `primary_port`.
pub(crate) fn assert_on_primary(conn: &AConn, primary_port: u16, server_port: i32) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        matches!(route, StatementRoute::Primary(_)),
        "expected the primary, ran on {route}"
    );
    assert_eq!(server_port as u16, primary_port, "the server that answered");
    assert_eq!(route.host().port(), primary_port);
}

/// Asserts that the last statement was routed to the primary.
pub(crate) fn assert_routed_to_primary(conn: &AConn) {
    let route = conn.last_route().expect("a statement ran");
    assert!(
        matches!(route, StatementRoute::Primary(_)),
        "expected the primary, ran on {route}"
    );
}

/// The depth of the transaction the wrapper's transaction manager believes is open (0: none),
/// or its error (a broken manager).
pub(crate) fn tx_depth(conn: &mut AConn) -> Result<u32, String> {
    <AnsiTransactionManager as TransactionManager<AConn>>::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map(|d| d.map_or(0, |d| d.get()))
        .map_err(|e| e.to_string())
}

/// A text value and the port of the server that produced it.
#[derive(Debug, QueryableByName)]
pub(crate) struct TextPort {
    #[diesel(sql_type = Text)]
    pub(crate) v: String,
    #[diesel(sql_type = Integer)]
    pub(crate) port: i32,
}

/// Reads, writes, `RETURNING`, Diesel transactions (nested too) and a manual `BEGIN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_reads_on_a_standby_writes_and_transactions_on_the_primary() {
    let (cluster, db) = fresh_db("arouting");
    let primary = cluster.primary_port();
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;

    // Plain reads: raw SQL and the query builder (static query ids).
    let server = awho(&mut conn).await;
    assert!(server.in_recovery, "a plain SELECT ran on {server:?}");
    assert_on_standby(cluster, &conn, server.port);
    for _ in 0..3 {
        let port: i32 = diesel::select(inet_server_port())
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_on_standby(cluster, &conn, port);
        let names: Vec<String> = users::table
            .select(users::name)
            .order(users::id)
            .load(&mut conn)
            .await
            .unwrap();
        assert_eq!(names, ["alice", "bob"]);
        assert!(conn.last_route().unwrap().is_replica());
    }
    eprintln!(
        "async reads ran on standby {} (route {})",
        server.port,
        conn.last_route().unwrap()
    );

    // Writes: INSERT/UPDATE ... RETURNING go through `load` and must not count as reads.
    let (id, port): (i32, i32) = diesel::insert_into(users::table)
        .values(NewUser { name: "carol" })
        .returning((users::id, inet_server_port()))
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_on_primary(&conn, primary, port);
    let port: i32 = diesel::update(users::table.find(id))
        .set(users::name.eq("caroline"))
        .returning(inet_server_port())
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_on_primary(&conn, primary, port);
    let deleted = diesel::delete(users::table.filter(users::name.eq("bob")))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_routed_to_primary(&conn);
    // Read-your-writes: the next read sees all three, wherever it runs.
    let all: Vec<User> = users::table.order(users::id).load(&mut conn).await.unwrap();
    let names: Vec<&str> = all.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "caroline"]);
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT string_agg(name, ',' ORDER BY id) FROM users"
        ),
        "alice,caroline"
    );

    // A Diesel transaction, with a nested one (a savepoint): everything on the primary.
    let ports: (i32, i32, i32) = conn
        .transaction(async |c| {
            let first = awho(c).await;
            assert!(!first.in_recovery);
            assert_on_primary(c, primary, first.port);
            let inner = c
                .transaction(async |c| {
                    let port: i32 = diesel::select(inet_server_port()).get_result(c).await?;
                    assert_on_primary(c, primary, port);
                    QueryResult::Ok(port)
                })
                .await?;
            let written: i32 = diesel::insert_into(users::table)
                .values(NewUser { name: "dave" })
                .returning(inet_server_port())
                .get_result(c)
                .await?;
            QueryResult::Ok((first.port, inner, written))
        })
        .await
        .unwrap();
    assert_eq!(ports, (primary as i32, primary as i32, primary as i32));
    assert_eq!(tx_depth(&mut conn), Ok(0));

    // A read-only transaction with PostgreSQL's options (the async wrapper has no
    // `build_transaction()`: diesel-async's builder cannot be made for another connection
    // type; a manual BEGIN with the options is the way).
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let server = awho(&mut conn).await;
    assert_on_primary(&conn, primary, server.port);
    conn.batch_execute("COMMIT").await.unwrap();

    // After the COMMIT, reads go back to a standby once it has replayed the transaction.
    aready(&mut conn).await;
    let server = awho(&mut conn).await;
    assert_on_standby(cluster, &conn, server.port);

    // A manual BEGIN pins until COMMIT / ROLLBACK, through batch_execute and sql_query.
    for (begin, end, via_sql_query) in [
        ("BEGIN", "COMMIT", false),
        ("START TRANSACTION READ WRITE", "ROLLBACK", true),
    ] {
        if via_sql_query {
            diesel::sql_query(begin).execute(&mut conn).await.unwrap();
        } else {
            conn.batch_execute(begin).await.unwrap();
        }
        let server = awho(&mut conn).await;
        assert_on_primary(&conn, primary, server.port);
        diesel::sql_query("INSERT INTO users (name) VALUES ('in-tx')")
            .execute(&mut conn)
            .await
            .unwrap();
        let count: i64 = users::table
            .filter(users::name.eq("in-tx"))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        assert!(
            count >= 1,
            "{begin}: the transaction's own write is invisible"
        );
        assert_routed_to_primary(&conn);
        conn.batch_execute(end).await.unwrap();
        aready(&mut conn).await;
        let server = awho(&mut conn).await;
        assert_on_standby(cluster, &conn, server.port);
    }
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name = 'in-tx'"
        ),
        "1",
        "the COMMITted manual transaction wrote once, the rolled back one nothing"
    );
    let token = conn.causal_token().await.unwrap();
    eprintln!("async routing: token after the writes {token}");
}

/// `SET`, temporary tables and session advisory locks pin later reads to the primary;
/// `pin_to_primary` / `unpin`; `replica_reads=off`; locking reads and writing functions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_session_state_and_explicit_pins_keep_reads_on_the_primary() {
    let (cluster, db) = fresh_db("asession");
    let primary = cluster.primary_port();
    let u = url(&all_ports(cluster), &db, "");

    // SET: the setting is read back on the session that has it.
    let mut conn = aconnect_ready(&u).await;
    conn.batch_execute("SET application_name = 'pinned-by-set'")
        .await
        .unwrap();
    assert!(conn.is_pinned(), "SET did not pin the connection");
    for _ in 0..3 {
        let got: TextPort = diesel::sql_query(
            "SELECT current_setting('application_name') AS v, inet_server_port() AS port",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        assert_eq!(got.v, "pinned-by-set");
        assert_on_primary(&conn, primary, got.port);
    }

    // A temporary table: a standby would not know it.
    let mut conn = aconnect_ready(&u).await;
    diesel::sql_query("CREATE TEMP TABLE scratch AS SELECT 41 + 1 AS answer")
        .execute(&mut conn)
        .await
        .unwrap();
    let rows: Vec<Server> = diesel::sql_query(
        "SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery FROM scratch",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_on_primary(&conn, primary, rows[0].port);

    // A session advisory lock taken by a SELECT.
    let mut conn = aconnect_ready(&u).await;
    let rows: Vec<Server> = diesel::sql_query(
        "SELECT inet_server_port() AS port, pg_advisory_lock(4242) IS NOT NULL AS in_recovery",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_on_primary(&conn, primary, rows[0].port);
    let server = awho(&mut conn).await;
    assert_on_primary(&conn, primary, server.port);

    // Explicit pins.
    let mut conn = aconnect_ready(&u).await;
    conn.pin_to_primary();
    let server = awho(&mut conn).await;
    assert_on_primary(&conn, primary, server.port);
    conn.unpin();
    aready(&mut conn).await;
    let server = awho(&mut conn).await;
    assert_on_standby(cluster, &conn, server.port);

    // Locking reads and writing functions, outside a transaction.
    let rows: Vec<(i32, i32)> = users::table
        .select((users::id, inet_server_port()))
        .for_update()
        .load(&mut conn)
        .await
        .unwrap();
    assert_on_primary(&conn, primary, rows[0].1);
    let got: TextPort =
        diesel::sql_query("SELECT nextval('users_id_seq')::text AS v, inet_server_port() AS port")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert_on_primary(&conn, primary, got.port);

    // replica_reads=off.
    let mut off = aconnect(&url(&all_ports(cluster), &db, "replica_reads=off")).await;
    let server = awho(&mut off).await;
    assert_on_primary(&off, primary, server.port);

    // primary_connection(): the inner AsyncPgConnection of the primary.
    let inner = conn.primary_connection().await.unwrap();
    let port: i32 = diesel::select(inet_server_port())
        .get_result(inner)
        .await
        .unwrap();
    assert_eq!(port as u16, primary);
    eprintln!("async session state: SET, temp table, advisory lock, pins all on {primary}");
}

/// A PostgreSQL enum type, known to Diesel by name only: its OID is looked up per session.
#[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(name = "mood"))]
struct MoodType;

#[derive(Debug, Clone, Copy, PartialEq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = MoodType)]
enum Mood {
    Happy,
    Sad,
}

impl diesel::serialize::ToSql<MoodType, diesel::pg::Pg> for Mood {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        use std::io::Write;
        out.write_all(match self {
            Mood::Happy => b"happy",
            Mood::Sad => b"sad",
        })?;
        Ok(diesel::serialize::IsNull::No)
    }
}

impl diesel::deserialize::FromSql<MoodType, diesel::pg::Pg> for Mood {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        match value.as_bytes() {
            b"happy" => Ok(Mood::Happy),
            b"sad" => Ok(Mood::Sad),
            other => Err(format!("not a mood: {other:?}").into()),
        }
    }
}

#[derive(QueryableByName)]
struct MoodCount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_custom_types_resolve_on_the_session_that_runs_them() {
    use diesel::sql_types::Array;
    let (cluster, db) = fresh_db("amood");
    {
        let mut setup = aconnect(&url(&[cluster.primary_port()], &db, "")).await;
        setup
            .batch_execute(
                "CREATE TYPE mood AS ENUM ('happy', 'sad'); \
                 CREATE TABLE moods (id serial PRIMARY KEY, m mood NOT NULL)",
            )
            .await
            .unwrap();
    }
    let mut conn = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;
    // Twice: the first statement looks the type's OIDs up, the second knows them. A value
    // and an array (whose bytes hold the element type's OID).
    for round in 0..2 {
        diesel::sql_query("INSERT INTO moods (m) VALUES ($1), ($2)")
            .bind::<MoodType, _>(Mood::Happy)
            .bind::<MoodType, _>(Mood::Sad)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: insert: {e}"));
        let counted: MoodCount =
            diesel::sql_query("SELECT count(*) AS n FROM moods WHERE m = ANY($1)")
                .bind::<Array<MoodType>, _>(vec![Mood::Happy, Mood::Sad])
                .get_result(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("round {round}: count: {e}"));
        assert_eq!(counted.n, 2 * (round + 1), "round {round}");
        let sad: Vec<Mood> = diesel::sql_query("SELECT m FROM moods WHERE m = $1")
            .bind::<MoodType, _>(Mood::Sad)
            .load::<MoodRow>(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: load: {e}"))
            .into_iter()
            .map(|r| r.m)
            .collect();
        assert_eq!(sad, vec![Mood::Sad; round as usize + 1], "round {round}");
        // Through the query builder (a static query id: the session keys the prepared
        // statement by the query's type).
        let echoed: Mood = diesel::select(Mood::Sad.into_sql::<MoodType>())
            .get_result(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: select: {e}"));
        assert_eq!(echoed, Mood::Sad, "round {round}");
    }
    // On a standby too (read-your-writes waits for it to catch up, else runs on the
    // primary): the standby's OIDs are the primary's, the session looks them up itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reader = aconnect_ready(&url(&all_ports(cluster), &db, "")).await;
    let counted: MoodCount = diesel::sql_query("SELECT count(*) AS n FROM moods WHERE m = $1")
        .bind::<MoodType, _>(Mood::Happy)
        .get_result(&mut reader)
        .await
        .unwrap();
    assert_eq!(counted.n, 2);
    assert!(
        reader.last_route().is_some_and(|r| r.is_replica()),
        "the custom-type read ran on {:?}",
        reader.last_route()
    );
}

#[derive(QueryableByName)]
struct MoodRow {
    #[diesel(sql_type = MoodType)]
    m: Mood,
}

/// A query with a static query id is prepared once per server session, under its type, as
/// the inner connection would prepare the query itself: the same statement sent through the
/// wrapper and then straight through its inner connection is prepared once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_static_queries_are_prepared_by_type_as_the_inner_connection_does() {
    use diesel::connection::InstrumentationEvent;
    use std::sync::{Arc, Mutex};
    let (cluster, db) = fresh_db("akeyed");
    let mut conn = aconnect(&url(&[cluster.primary_port()], &db, "")).await;
    let prepared = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&prepared);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event {
            seen.lock().unwrap().push(sql.to_owned());
        }
    });
    macro_rules! name {
        ($conn:expr) => {
            users::table
                .find(2)
                .select(users::name)
                .get_result::<String>($conn)
                .await
                .unwrap()
        };
    }
    for _ in 0..3 {
        assert_eq!(name!(&mut conn), "bob");
    }
    let inner = conn.primary_connection().await.unwrap();
    assert_eq!(name!(inner), "bob");
    let once = prepared.lock().unwrap().clone();
    assert_eq!(once.len(), 1, "prepared once: {once:#?}");
    // A query without a static id is keyed by its text: prepared once too.
    for _ in 0..3 {
        let found: i32 = users::table
            .into_boxed()
            .filter(users::name.eq("bob"))
            .select(users::id)
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(found, 2);
    }
    let twice = prepared.lock().unwrap().clone();
    assert_eq!(twice.len(), 2, "each statement prepared once: {twice:#?}");
}
