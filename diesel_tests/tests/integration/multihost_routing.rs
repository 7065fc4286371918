//! Routing rules of `MultiHostConnection`, proved by each server's own answer.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::pg::PgRowByRowLoadingMode;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::multihost::*;

#[test]
fn plain_reads_run_on_a_standby() {
    let (cluster, db) = fresh_db("reads");
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));

    let server = who(&mut conn);
    assert!(
        server.in_recovery,
        "a plain SELECT ran on a server not in recovery"
    );
    assert_on_standby(cluster, &conn, server.port);

    // Diesel's own query builder, with static query ids: the cached decision holds.
    for _ in 0..3 {
        let (port, names): (i32, Vec<String>) = (
            diesel::select(inet_server_port())
                .get_result(&mut conn)
                .unwrap(),
            users::table
                .select(users::name)
                .order(users::id)
                .load(&mut conn)
                .unwrap(),
        );
        assert_on_standby(cluster, &conn, port);
        assert_eq!(names, ["alice", "bob"]);
    }
}

#[test]
fn row_by_row_loading_mode_reads_on_a_standby() {
    let (cluster, db) = fresh_db("rowbyrow");
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));
    let ports: Vec<i32> = diesel::select(inet_server_port())
        .load_iter::<i32, PgRowByRowLoadingMode>(&mut conn)
        .unwrap()
        .collect::<QueryResult<_>>()
        .unwrap();
    assert_on_standby(cluster, &conn, ports[0]);
}

#[test]
fn writes_and_returning_run_on_the_primary() {
    let (cluster, db) = fresh_db("writes");
    let primary = cluster.primary_port();
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));

    // INSERT ... RETURNING goes through `load`: it must not be taken for a read.
    let (id, port): (i32, i32) = diesel::insert_into(users::table)
        .values(NewUser { name: "carol" })
        .returning((users::id, inet_server_port()))
        .get_result(&mut conn)
        .unwrap();
    assert_on_primary(&conn, primary, port);

    let port: i32 = diesel::update(users::table.find(id))
        .set(users::name.eq("caroline"))
        .returning(inet_server_port())
        .get_result(&mut conn)
        .unwrap();
    assert_on_primary(&conn, primary, port);

    let deleted = diesel::delete(users::table.filter(users::name.eq("bob")))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(deleted, 1);
    assert_routed_to_primary(&conn);
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT string_agg(name, ',' ORDER BY id) FROM users"
        ),
        "alice,caroline"
    );
}

#[test]
fn transactions_run_on_the_primary() {
    let (cluster, db) = fresh_db("tx");
    let primary = cluster.primary_port();
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));

    conn.transaction(|conn| {
        let server = who(conn);
        assert!(!server.in_recovery);
        assert_on_primary(conn, primary, server.port);
        // Nested: a savepoint.
        conn.transaction(|conn| {
            let port: i32 = diesel::select(inet_server_port()).get_result(conn)?;
            assert_on_primary(conn, primary, port);
            QueryResult::Ok(())
        })
    })
    .unwrap();

    // After COMMIT reads go back to a standby.
    let server = who(&mut conn);
    assert_on_standby(cluster, &conn, server.port);

    // A read-only transaction with PostgreSQL's options, via build_transaction.
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            let server = who(conn);
            assert_on_primary(conn, primary, server.port);
            QueryResult::Ok(())
        })
        .unwrap();
}

#[test]
fn a_manual_begin_pins_until_commit_or_rollback() {
    let (cluster, db) = fresh_db("manualtx");
    let primary = cluster.primary_port();
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));

    for (begin, end) in [
        ("BEGIN", "COMMIT"),
        ("begin isolation level serializable", "rollback"),
        ("START TRANSACTION READ WRITE", "END"),
        ("/* app */ BEGIN WORK", "ABORT"),
    ] {
        conn.batch_execute(begin).unwrap();
        let server = who(&mut conn);
        assert_on_primary(&conn, primary, server.port);
        // A write inside the manual transaction, then a read of it: same session.
        diesel::sql_query("INSERT INTO users (name) VALUES ('in-tx')")
            .execute(&mut conn)
            .unwrap();
        let count: i64 = users::table
            .filter(users::name.eq("in-tx"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert!(
            count >= 1,
            "{begin}: the transaction's own write is not visible"
        );
        conn.batch_execute(end).unwrap();
        // Reads leave the primary once a standby has replayed what the transaction wrote.
        ready(&mut conn);
        let server = who(&mut conn);
        assert_on_standby(cluster, &conn, server.port);
    }

    // BEGIN sent through sql_query().execute() counts too.
    diesel::sql_query("BEGIN").execute(&mut conn).unwrap();
    let server = who(&mut conn);
    assert_on_primary(&conn, primary, server.port);
    diesel::sql_query("COMMIT").execute(&mut conn).unwrap();
    ready(&mut conn);
    let server = who(&mut conn);
    assert_on_standby(cluster, &conn, server.port);
}

#[test]
fn locking_reads_and_writing_functions_run_on_the_primary() {
    let (cluster, db) = fresh_db("locks");
    let primary = cluster.primary_port();
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));

    conn.transaction(|conn| {
        let _: Vec<User> = users::table.for_update().load(conn)?;
        QueryResult::Ok(())
    })
    .unwrap();
    // Outside a transaction too (a locking SELECT is not a read).
    let rows: Vec<(i32, i32)> = users::table
        .select((users::id, inet_server_port()))
        .for_update()
        .load(&mut conn)
        .unwrap();
    assert_on_primary(&conn, primary, rows[0].1);
    let rows: Vec<(i32, i32)> = users::table
        .select((users::id, inet_server_port()))
        .for_key_share()
        .load(&mut conn)
        .unwrap();
    assert_on_primary(&conn, primary, rows[0].1);

    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        v: i64,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        port: i32,
    }
    let next: Next =
        diesel::sql_query("SELECT nextval('users_id_seq') AS v, inet_server_port() AS port")
            .get_result(&mut conn)
            .unwrap();
    assert!(next.v > 0);
    assert_on_primary(&conn, primary, next.port);

    // A data-modifying CTE.
    let port: Vec<Server> = diesel::sql_query(
        "WITH moved AS (UPDATE users SET name = name WHERE id = 1 RETURNING id)
         SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery FROM moved",
    )
    .load(&mut conn)
    .unwrap();
    assert_on_primary(&conn, primary, port[0].port);
}

#[test]
fn a_writing_function_unknown_to_the_classifier_is_retried_on_the_primary() {
    let (cluster, db) = fresh_db("writingfn");
    let primary = cluster.primary_port();
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));

    // `add_audit` looks like a read; the standby answers 25006, nothing was applied there,
    // and the statement is re-run once on the primary.
    #[derive(QueryableByName)]
    struct Ran {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        port: i32,
    }
    let ran: Ran = diesel::sql_query("SELECT add_audit('one') AS port")
        .get_result(&mut conn)
        .unwrap();
    assert_on_primary(&conn, primary, ran.port);
    assert_eq!(
        query_in(primary, &db, "SELECT count(*) FROM audit"),
        "1",
        "the write must be applied exactly once"
    );

    // Declared in the URL, it goes to the primary straight away.
    let mut declared = connect(&url(
        &all_ports(cluster),
        &db,
        "writing_functions=add_audit",
    ));
    let ran: Ran = diesel::sql_query("SELECT add_audit('two') AS port")
        .get_result(&mut declared)
        .unwrap();
    assert_on_primary(&declared, primary, ran.port);
    assert_eq!(query_in(primary, &db, "SELECT count(*) FROM audit"), "2");
}

#[test]
fn session_state_pins_later_reads_to_the_primary() {
    let (cluster, db) = fresh_db("session");
    let primary = cluster.primary_port();

    // SET
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));
    conn.batch_execute("SET application_name = 'pinned-by-set'")
        .unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        port: i32,
    }
    let setting: Setting = diesel::sql_query(
        "SELECT current_setting('application_name') AS name, inet_server_port() AS port",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(setting.name, "pinned-by-set");
    assert_on_primary(&conn, primary, setting.port);
    assert!(conn.is_pinned());

    // A temporary table: a standby would not know it.
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));
    diesel::sql_query("CREATE TEMP TABLE scratch AS SELECT 41 + 1 AS answer")
        .execute(&mut conn)
        .unwrap();
    let rows: Vec<Server> = diesel::sql_query(
        "SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery FROM scratch",
    )
    .load(&mut conn)
    .unwrap();
    assert_on_primary(&conn, primary, rows[0].port);

    // A session advisory lock taken through a SELECT (which `load` runs).
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));
    let rows: Vec<Server> = diesel::sql_query(
        "SELECT inet_server_port() AS port, pg_advisory_lock(42) IS NOT NULL AS in_recovery",
    )
    .load(&mut conn)
    .unwrap();
    assert_on_primary(&conn, primary, rows[0].port);
    let server = who(&mut conn);
    assert_on_primary(&conn, primary, server.port);
}

#[test]
fn explicit_pinning_and_replica_reads_off() {
    let (cluster, db) = fresh_db("pin");
    let primary = cluster.primary_port();
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));

    conn.pin_to_primary();
    let server = who(&mut conn);
    assert_on_primary(&conn, primary, server.port);
    conn.unpin();
    // Reads never wait for a standby: under load (other tests write to the shared
    // cluster) the standby may lag for a moment, and the read then runs on the primary.
    ready(&mut conn);
    let server = who(&mut conn);
    assert_on_standby(cluster, &conn, server.port);

    let mut off = connect(&url(&all_ports(cluster), &db, "replica_reads=off"));
    let server = who(&mut off);
    assert_on_primary(&off, primary, server.port);
}

#[test]
fn save_changes_and_copy_from_run_on_the_primary() {
    let (cluster, db) = fresh_db("savecopy");
    let primary = cluster.primary_port();
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));

    let mut alice: User = users::table.find(1).first(&mut conn).unwrap();
    alice.name = "alice-2".into();
    let saved: User = alice.save_changes(&mut conn).unwrap();
    assert_eq!(saved.name, "alice-2");
    assert_routed_to_primary(&conn);

    let rows = vec![
        CopyUser {
            name: "copy-1".into(),
        },
        CopyUser {
            name: "copy-2".into(),
        },
    ];
    let copied = diesel::copy_from(users::table)
        .from_insertable(&rows)
        .execute(&mut conn)
        .unwrap();
    assert_eq!(copied, 2);
    assert_routed_to_primary(&conn);
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name LIKE 'copy-%'"
        ),
        "2"
    );
    assert_eq!(
        query_in(primary, &db, "SELECT name FROM users WHERE id = 1"),
        "alice-2"
    );
}

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/multihost");

#[test]
fn run_pending_migrations_through_the_wrapper() {
    let (cluster, db) = fresh_db("migrate");
    let primary = cluster.primary_port();
    let mut conn = connect(&url(&all_ports(cluster), &db, ""));

    let applied = conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert_eq!(applied.len(), 2);
    assert!(conn.is_pinned(), "setup pins the connection to the primary");
    // Immediately again: `applied_migrations()` must read the primary, not a standby that
    // may not have replayed the records yet.
    let again = conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert!(again.is_empty(), "re-ran {again:?}");
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT count(*) FROM __diesel_schema_migrations"
        ),
        "2"
    );
    assert_eq!(query_in(primary, &db, "SELECT count(*) FROM widgets"), "1");
}

#[test]
fn an_r2d2_pool_of_8_under_8_threads() {
    let (cluster, db) = fresh_db("pool");
    let primary = cluster.primary_port();
    let manager = ConnectionManager::<Conn>::new(url(&all_ports(cluster), &db, ""));
    let pool = Arc::new(Pool::builder().max_size(8).build(manager).unwrap());

    // Each thread writes a row and at once counts it: read-your-writes (the default) must
    // never miss it, wherever the read runs.
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let mut standby_reads = 0;
                for i in 0..20 {
                    let mut conn = pool.get().unwrap();
                    let name = format!("t{t}-{i}");
                    let (_, port): (i32, i32) = diesel::insert_into(users::table)
                        .values(NewUser { name: &name })
                        .returning((users::id, inet_server_port()))
                        .get_result(&mut *conn)
                        .unwrap();
                    assert_eq!(port as u16, primary, "a write ran on {port}");
                    let seen: i64 = users::table
                        .filter(users::name.eq(&name))
                        .count()
                        .get_result(&mut *conn)
                        .unwrap();
                    assert_eq!(seen, 1, "the connection missed its own write {name}");
                    if conn.last_route().unwrap().is_replica() {
                        standby_reads += 1;
                    }
                }
                standby_reads
            })
        })
        .collect();
    let standby_reads: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    eprintln!("read-your-writes through a pool of 8: {standby_reads} of 160 reads on standbys");
    assert_eq!(
        query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name LIKE 't%-%'"
        ),
        "160"
    );

    // Reads of connections that do not write all go to the standbys once warm.
    let manager = ConnectionManager::<Conn>::new(url(&all_ports(cluster), &db, ""));
    let readers = Arc::new(Pool::builder().max_size(8).build(manager).unwrap());
    {
        let mut warm: Vec<_> = (0..8).map(|_| readers.get().unwrap()).collect();
        for conn in &mut warm {
            ready(conn);
        }
    }
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let readers = Arc::clone(&readers);
            std::thread::spawn(move || {
                (0..20)
                    .filter(|_| {
                        let mut conn = readers.get().unwrap();
                        let server = who(&mut conn);
                        server.in_recovery && conn.last_route().unwrap().is_replica()
                    })
                    .count()
            })
        })
        .collect();
    let standby_reads: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        standby_reads, 160,
        "every plain read should have run on a standby"
    );
}

/// `BEGIN; <error>` in one batch leaves the server's session in a (failed) transaction:
/// later statements stay on that session, where the server says so, as it would to a plain
/// `PgConnection`, instead of running on a standby outside it; the connection is freed when
/// the transaction ends.
#[test]
fn a_batch_that_begins_and_fails_keeps_the_connection_on_its_transaction() {
    let (cluster, db) = fresh_db("batchfail");
    let mut conn = connect_ready(&url(&all_ports(cluster), &db, ""));
    conn.batch_execute("BEGIN; SELECT 1/0")
        .expect_err("division by zero");
    let read = diesel::sql_query(WHO).get_result::<Server>(&mut conn);
    assert!(
        read.is_err(),
        "a read after the failed batch runs in its aborted transaction (on the primary), not on a standby: {read:?}"
    );
    conn.batch_execute("ROLLBACK").unwrap();
    ready(&mut conn);
    let server = who(&mut conn);
    assert_on_standby(cluster, &conn, server.port);
}
