//! `MultiHostConnection<MysqlConnection>` against real MariaDB servers (issue 10, section 3):
//! routing rules, read-your-writes, causal tokens across pools, lag, the 1290 retry, split
//! brain and failover.
//!
//! Every test asserts on what the servers answered: `@@port`, `@@server_id`, `@@read_only`
//! of the server that ran a statement, row counts read on one node directly (as root through
//! the harness's `mariadb` client), and statement counters of the replicas. Tests that stop
//! replication, change `read_only`, kill or promote own their cluster; the others use a fresh
//! database on the shared cluster.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::Cycles;
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_multidb::{CausalToken, Exclusion, MultiHostConnection, StatementRoute};
use diesel_multidb_testkit::MariaDbCluster;

pub(crate) type MyConn = MultiHostConnection<MysqlConnection>;

/// Small timeouts and a fast monitor: each test takes a few seconds.
const FAST: &str = "connect_timeout=2&monitor_interval=100ms&failover_timeout=10s";
/// Write-then-read cycles of the read-your-writes test.
const CYCLES: usize = 300;
/// Cycles of the causal-token test.
const TOKEN_CYCLES: usize = 200;

diesel::table! {
    items (id) {
        id -> Integer,
        v -> Integer,
        name -> Text,
    }
}

/// The test table: `v` for values counted on the nodes, `name` for unique rows.
pub(crate) const SCHEMA: &str =
    "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL DEFAULT 0, \
     name VARCHAR(200) NOT NULL DEFAULT '', KEY (v), KEY (name)) ENGINE = InnoDB; \
     INSERT INTO items (v, name) VALUES (1, 'one'), (2, 'two'), (3, 'three')";

/// The server's own answer to "who are you".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) server_id: u32,
    pub(crate) read_only: bool,
}

#[derive(QueryableByName)]
pub(crate) struct WhoRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) port: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) server_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) read_only: i64,
}

pub(crate) const WHO: &str = "SELECT CAST(@@port AS SIGNED) AS port, \
     CAST(@@server_id AS SIGNED) AS server_id, CAST(@@global.read_only AS SIGNED) AS read_only";

/// `@@port`, `@@server_id`, `@@read_only` of the server that ran the statement.
pub(crate) fn try_who<C>(conn: &mut C) -> QueryResult<Server>
where
    C: diesel::connection::LoadConnection<Backend = diesel::mysql::Mysql>,
{
    let row: WhoRow = diesel::sql_query(WHO).get_result(conn)?;
    Ok(Server {
        port: row.port as u16,
        server_id: row.server_id as u32,
        read_only: row.read_only != 0,
    })
}

pub(crate) fn who(conn: &mut MyConn) -> Server {
    try_who(conn).unwrap_or_else(|e| panic!("asking the server who it is: {e}"))
}

/// A value and the port of the server that computed it.
#[derive(Debug, QueryableByName)]
struct PortV {
    #[diesel(sql_type = BigInt)]
    port: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    v: Option<i64>,
}

/// Runs `SELECT CAST(@@port AS SIGNED) AS port, CAST((<expr>) AS SIGNED) AS v <rest>`.
fn port_v(conn: &mut MyConn, expr: &str, rest: &str) -> Result<(u16, Option<i64>), String> {
    let text =
        format!("SELECT CAST(@@port AS SIGNED) AS port, CAST(({expr}) AS SIGNED) AS v {rest}");
    diesel::sql_query(&text)
        .get_result::<PortV>(conn)
        .map(|r| (r.port as u16, r.v))
        .map_err(|e| format!("{text}: {e}"))
}

pub(crate) fn connect(url: &str) -> MyConn {
    crate::trace();
    MyConn::establish(url).unwrap_or_else(|e| panic!("establishing {url}: {e}"))
}

/// Waits until `conn`'s next read would run on a replica.
pub(crate) fn ready(conn: &mut MyConn) {
    assert!(
        conn.wait_for_standby(Duration::from_secs(10)),
        "no replica became ready for reads: {:#?}",
        conn.topology()
    );
}

pub(crate) fn connect_ready(url: &str) -> MyConn {
    let mut conn = connect(url);
    ready(&mut conn);
    conn
}

/// A plain `MysqlConnection` as the application user to one node's database `db`.
pub(crate) fn plain(cluster: &MariaDbCluster, port: u16, db: &str) -> MysqlConnection {
    let url = cluster.node_db_url(port, db);
    MysqlConnection::establish(&url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// The first column of `SELECT <sql>` on one node's database `db`, as a number.
pub(crate) fn count_on(cluster: &MariaDbCluster, port: u16, db: &str, sql: &str) -> i64 {
    let text = cluster.query_one_db(port, db, sql);
    text.parse()
        .unwrap_or_else(|e| panic!("{sql} on {port}: {text:?} is not a number: {e}"))
}

/// How many rows of `items` have `v = value`, on one node.
fn rows_with(cluster: &MariaDbCluster, port: u16, db: &str, value: i32) -> i64 {
    count_on(
        cluster,
        port,
        db,
        &format!("SELECT COUNT(*) FROM items WHERE v = {value}"),
    )
}

/// A cluster of its own (source + `replicas`) with the test schema in database `test`.
fn own_cluster(replicas: usize) -> MariaDbCluster {
    crate::trace();
    let cluster = MariaDbCluster::start(replicas);
    plain(&cluster, cluster.source_port(), MariaDbCluster::DATABASE)
        .batch_execute(SCHEMA)
        .unwrap_or_else(|e| panic!("creating the test schema: {e}"));
    cluster.wait_for_replication();
    cluster
}

/// A fresh database with the test schema on the shared cluster.
pub(crate) fn fresh_db(prefix: &str) -> (&'static MariaDbCluster, String) {
    crate::trace();
    let cluster = MariaDbCluster::shared();
    let db = cluster.create_database(prefix);
    plain(cluster, cluster.source_port(), &db)
        .batch_execute(SCHEMA)
        .unwrap_or_else(|e| panic!("creating the test schema in {db}: {e}"));
    cluster.wait_for_replication();
    (cluster, db)
}

/// A name no other cycle, test or run uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn is_primary_route(conn: &MyConn, port: u16) -> Result<(), String> {
    match conn.last_route() {
        Some(StatementRoute::Primary(h)) if h.port() == port => Ok(()),
        other => Err(format!(
            "the wrapper says the statement ran on {other:?}, not the source {port}"
        )),
    }
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn show_err(e: &Error) -> String {
    match e {
        Error::DatabaseError(kind, info) => format!("DatabaseError({kind:?}): {}", info.message()),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// What the application sent to the replicas
// ---------------------------------------------------------------------------------------

/// The replicas' general query log (as a table), read as root: every statement the
/// application user sent them, refused ones included (a statement refused as read-only
/// and re-run on the source leaves no other trace on the replica). Only on clusters a test
/// owns.
pub(crate) struct ReplicaLog {
    sessions: Vec<(u16, MysqlConnection)>,
}

#[derive(QueryableByName)]
struct LogRow {
    #[diesel(sql_type = Text)]
    v: String,
}

impl ReplicaLog {
    pub(crate) fn new(cluster: &MariaDbCluster, replicas: &[u16]) -> Self {
        ReplicaLog {
            sessions: replicas
                .iter()
                .map(|&port| {
                    // Log tables are neither replicated nor binary-logged: no GTID of the
                    // replica's own.
                    cluster.query_one(
                        port,
                        "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON",
                    );
                    let url = cluster.superuser_url(port);
                    let conn = MysqlConnection::establish(&url)
                        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
                    (port, conn)
                })
                .collect(),
        }
    }

    /// Each replica's clock now.
    pub(crate) fn mark(&mut self) -> Vec<String> {
        self.sessions
            .iter_mut()
            .map(|(port, conn)| {
                diesel::sql_query("SELECT CAST(NOW(6) AS CHAR) AS v")
                    .get_result::<LogRow>(conn)
                    .unwrap_or_else(|e| panic!("NOW(6) on {port}: {e}"))
                    .v
            })
            .collect()
    }

    /// The application's statements on the replicas since `mark`, as `port: statement`
    /// (text-protocol queries and prepared statements, as prepared: also those the server
    /// refused to prepare), without the monitor's probes and the session setup every new connection runs.
    pub(crate) fn since(&mut self, mark: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for ((port, conn), at) in self.sessions.iter_mut().zip(mark) {
            let text = format!(
                "SELECT CAST(argument AS CHAR) AS v FROM mysql.general_log \
                 WHERE event_time > '{at}' AND user_host LIKE 'app[app]%' \
                 AND command_type IN ('Query', 'Prepare') \
                 AND argument NOT LIKE 'SHOW GLOBAL VARIABLES%' \
                 AND argument NOT LIKE 'SET time_zone%' \
                 AND argument NOT LIKE 'SET character_set_%' \
                 ORDER BY event_time"
            );
            let rows: Vec<LogRow> = diesel::sql_query(&text)
                .load(conn)
                .unwrap_or_else(|e| panic!("reading the general log of {port}: {e}"));
            out.extend(rows.into_iter().map(|r| format!("{port}: {}", r.v)));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// 1. Routing rules
// ---------------------------------------------------------------------------------------

/// Each routing rule on a fresh connection whose plain reads run on a replica: where each
/// statement ran per the server (`@@port`, values only the source's session has), that no
/// statement of the case reached a replica (the replicas' statement counters), and that
/// session state pins the later reads of the connection to the source. All rules are run and
/// every violation is reported at the end.
///
/// Not here: `FOR SHARE` (MySQL 8's spelling of `LOCK IN SHARE MODE`) is a syntax error on
/// MariaDB 10.11; `INSERT/DELETE ... RETURNING` cannot be loaded through Diesel's MySQL
/// connection ("No metadata exists"), so writes go through `execute` (which always runs on
/// the source) and `SELECT f()` (the 1290 test).
#[test]
fn mysql_routing_rules_reads_on_standbys_everything_else_on_the_source() {
    let cluster = own_cluster(2);
    let db = MariaDbCluster::DATABASE;
    let source = cluster.source_port();
    let replicas = cluster.replica_ports();
    // A second database for `USE`.
    let other_db = cluster.create_database("routing_other");
    let url = cluster.default_url(FAST);
    let mut log = ReplicaLog::new(&cluster, &replicas);
    let mut problems: Vec<String> = Vec::new();
    let mut on_standby = 0usize;

    // After a statement that raised the connection's read-your-writes floor, reads go to
    // the source until a replica has caught up; wait for that (a pinned connection never
    // gets there), so that a read that still runs on the source does so because of the
    // session state.
    let settle = |conn: &mut MyConn| {
        conn.wait_for_standby(Duration::from_millis(300));
    };
    // Pinned: the next plain read runs on the source, per the server.
    let pinned = |conn: &mut MyConn| -> Result<(), String> {
        settle(conn);
        let server = try_who(conn).map_err(|e| format!("a read after the state: {e}"))?;
        ensure(server.port == source && !server.read_only, || {
            format!(
                "session state did not pin later reads: a plain read ran on {} (read_only {})",
                server.port, server.read_only
            )
        })
    };
    // `(port, v)` from the source, with `v == want`.
    let from_source = |conn: &mut MyConn, expr: &str, rest: &str, want: Option<i64>| {
        let (port, v) = port_v(conn, expr, rest)?;
        ensure(port == source && v == want, || {
            format!("SELECT {expr} {rest}: ran on {port} giving {v:?}; want {want:?} from the source {source}")
        })
    };

    type Case<'a> = (
        &'static str,
        Box<dyn FnOnce(&mut MyConn) -> Result<(), String> + 'a>,
    );
    let cases: Vec<Case> = vec![
        (
            "plain SELECT and Diesel DSL select run on a replica",
            Box::new(|c: &mut MyConn| {
                ready(c);
                let server = try_who(c).map_err(|e| e.to_string())?;
                ensure(
                    replicas.contains(&server.port)
                        && server.read_only
                        && server.server_id == cluster.server_id(server.port),
                    || format!("a plain SELECT ran on {server:?}"),
                )?;
                ensure(
                    matches!(c.last_route(), Some(StatementRoute::Replica(h)) if h.port() == server.port),
                    || format!("the wrapper says {:?}", c.last_route()),
                )?;
                ready(c);
                let port: i64 = items::table
                    .select(sql::<BigInt>("CAST(@@port AS SIGNED)"))
                    .filter(items::id.eq(1))
                    .first(c)
                    .map_err(|e| e.to_string())?;
                ensure(replicas.contains(&(port as u16)), || {
                    format!("a Diesel DSL select ran on {port}")
                })
            }),
        ),
        (
            "INSERT / UPDATE / DELETE (and ROW_COUNT() after them)",
            Box::new(|c: &mut MyConn| {
                let n = diesel::insert_into(items::table)
                    .values((items::v.eq(101), items::name.eq("dml")))
                    .execute(c)
                    .map_err(|e| format!("INSERT: {e}"))?;
                ensure(n == 1, || format!("INSERT: {n} rows"))?;
                is_primary_route(c, source)?;
                ensure(rows_with(&cluster, source, db, 101) == 1, || {
                    "the INSERT's row is not on the source".into()
                })?;
                let n = diesel::update(items::table.filter(items::v.eq(101)))
                    .set(items::v.eq(102))
                    .execute(c)
                    .map_err(|e| format!("UPDATE: {e}"))?;
                ensure(n == 1, || format!("UPDATE: {n} rows"))?;
                is_primary_route(c, source)?;
                // ROW_COUNT() is the session's: only the source's session knows it is 1.
                c.wait_for_standby(Duration::from_secs(5));
                from_source(c, "ROW_COUNT()", "", Some(1))?;
                ensure(rows_with(&cluster, source, db, 102) == 1, || {
                    "the UPDATE did not change the source's row".into()
                })?;
                let n = diesel::sql_query("DELETE FROM items WHERE v = 102")
                    .execute(c)
                    .map_err(|e| format!("DELETE: {e}"))?;
                ensure(n == 1, || format!("DELETE: {n} rows"))?;
                is_primary_route(c, source)?;
                ensure(rows_with(&cluster, source, db, 102) == 0, || {
                    "the DELETE did not delete the source's row".into()
                })
            }),
        ),
        (
            "SELECT ... FOR UPDATE (SQL and Diesel's for_update)",
            Box::new(|c: &mut MyConn| {
                from_source(c, "id", "FROM items WHERE id = 1 FOR UPDATE", Some(1))?;
                let port: i64 = items::table
                    .select(sql::<BigInt>("CAST(@@port AS SIGNED)"))
                    .filter(items::id.eq(1))
                    .for_update()
                    .first(c)
                    .map_err(|e| e.to_string())?;
                ensure(port as u16 == source, || {
                    format!("Diesel's for_update() ran on {port}")
                })
            }),
        ),
        (
            "SELECT ... LOCK IN SHARE MODE",
            Box::new(|c: &mut MyConn| {
                from_source(
                    c,
                    "id",
                    "FROM items WHERE id = 1 LOCK IN SHARE MODE",
                    Some(1),
                )
            }),
        ),
        (
            "SELECT ... INTO @v, and SELECT @y := ...",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query("SELECT CAST(@@port AS SIGNED) INTO @v")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                settle(c);
                from_source(c, "@v", "", Some(source.into()))?;
                pinned(c)?;
                from_source(c, "@y := @@port", "", Some(source.into()))?;
                from_source(c, "@y", "", Some(source.into()))
            }),
        ),
        (
            "SELECT LAST_INSERT_ID() after an INSERT",
            Box::new(|c: &mut MyConn| {
                diesel::insert_into(items::table)
                    .values((items::v.eq(103), items::name.eq("last-insert-id")))
                    .execute(c)
                    .map_err(|e| format!("INSERT: {e}"))?;
                let id = count_on(
                    &cluster,
                    source,
                    db,
                    "SELECT id FROM items WHERE name = 'last-insert-id'",
                );
                // Once the replicas have the row, a read could run there (where
                // LAST_INSERT_ID() is 0).
                let ready = c.wait_for_standby(Duration::from_secs(5));
                eprintln!("  (LAST_INSERT_ID: a replica was ready for reads: {ready})");
                from_source(c, "LAST_INSERT_ID()", "", Some(id))
            }),
        ),
        (
            "FOUND_ROWS() after SELECT SQL_CALC_FOUND_ROWS",
            Box::new(|c: &mut MyConn| {
                let total = count_on(&cluster, source, db, "SELECT COUNT(*) FROM items");
                let text = "SELECT SQL_CALC_FOUND_ROWS CAST(@@port AS SIGNED) AS port, \
                            CAST(id AS SIGNED) AS v FROM items ORDER BY id LIMIT 1";
                let r = diesel::sql_query(text)
                    .get_result::<PortV>(c)
                    .map_err(|e| format!("{text}: {e}"))?;
                ensure(r.port as u16 == source, || {
                    format!("SELECT SQL_CALC_FOUND_ROWS ran on {}", r.port)
                })?;
                from_source(c, "FOUND_ROWS()", "", Some(total))
            }),
        ),
        (
            "GET_LOCK()",
            Box::new(|c: &mut MyConn| {
                from_source(c, "GET_LOCK('mh_routing', 0)", "", Some(1))?;
                let holder = "SELECT IS_USED_LOCK('mh_routing') IS NOT NULL";
                ensure(cluster.query_one(source, holder) == "1", || {
                    "the source does not show the lock as held".into()
                })?;
                for &r in &replicas {
                    ensure(cluster.query_one(r, holder) == "0", || {
                        format!("replica {r} shows the lock as held")
                    })?;
                }
                pinned(c)?;
                from_source(c, "RELEASE_LOCK('mh_routing')", "", Some(1))
            }),
        ),
        (
            "Diesel transaction",
            Box::new(|c: &mut MyConn| {
                c.transaction(|c| {
                    from_source(c, "@@in_transaction", "", Some(1))
                        .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))
                })
                .map_err(|e| e.to_string())
            }),
        ),
        (
            "manual START TRANSACTION .. COMMIT and BEGIN .. ROLLBACK",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query("START TRANSACTION")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                from_source(c, "@@in_transaction", "", Some(1))?;
                from_source(c, "COUNT(*)", "FROM items WHERE v = 3", Some(1))?;
                diesel::sql_query("COMMIT")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                c.batch_execute("BEGIN").map_err(|e| e.to_string())?;
                diesel::sql_query("INSERT INTO items (v) VALUES (104)")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                // Only the source's session sees its own uncommitted row.
                from_source(c, "COUNT(*)", "FROM items WHERE v = 104", Some(1))?;
                c.batch_execute("ROLLBACK").map_err(|e| e.to_string())?;
                ensure(rows_with(&cluster, source, db, 104) == 0, || {
                    "the ROLLBACK did not roll the INSERT back on the source".into()
                })
            }),
        ),
        (
            "LOCK TABLES",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query("LOCK TABLES items READ")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                is_primary_route(c, source)?;
                settle(c);
                let in_use =
                    cluster.query_one(source, "SHOW OPEN TABLES FROM test WHERE In_use > 0");
                let result = ensure(in_use == "test", || {
                    format!("the source shows no locked table ({in_use:?})")
                })
                .and_then(|()| from_source(c, "COUNT(*)", "FROM items WHERE v = 1", Some(1)))
                .and_then(|()| pinned(c));
                diesel::sql_query("UNLOCK TABLES")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                result
            }),
        ),
        (
            "user variables: SET @x := 5, then SELECT @x",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query("SET @x := 5")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                settle(c);
                from_source(c, "@x", "", Some(5))?;
                pinned(c)
            }),
        ),
        (
            "temporary table",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query("CREATE TEMPORARY TABLE tmp_routing (x INT)")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                diesel::sql_query("INSERT INTO tmp_routing VALUES (1), (2)")
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                settle(c);
                from_source(c, "COUNT(*)", "FROM tmp_routing", Some(2))?;
                pinned(c)
            }),
        ),
        (
            "PREPARE / EXECUTE",
            Box::new(|c: &mut MyConn| {
                // PREPARE and EXECUTE are not allowed in the prepared-statement protocol
                // Diesel's sql_query uses: batch_execute sends them as text.
                c.batch_execute("PREPARE routing_s FROM 'SELECT @@port INTO @p'")
                    .map_err(|e| e.to_string())?;
                pinned(c)?;
                c.batch_execute("EXECUTE routing_s")
                    .map_err(|e| e.to_string())?;
                settle(c);
                from_source(c, "@p", "", Some(source.into()))
            }),
        ),
        (
            "USE",
            Box::new(|c: &mut MyConn| {
                diesel::sql_query(format!("USE {other_db}"))
                    .execute(c)
                    .map_err(|e| e.to_string())?;
                settle(c);
                #[derive(QueryableByName)]
                struct Db {
                    #[diesel(sql_type = BigInt)]
                    port: i64,
                    #[diesel(sql_type = Nullable<Text>)]
                    db: Option<String>,
                }
                let got: Db =
                    diesel::sql_query("SELECT CAST(@@port AS SIGNED) AS port, DATABASE() AS db")
                        .get_result(c)
                        .map_err(|e| e.to_string())?;
                ensure(
                    got.port as u16 == source && got.db.as_deref() == Some(other_db.as_str()),
                    || format!("after USE: DATABASE() = {:?} on {}", got.db, got.port),
                )?;
                pinned(c)
            }),
        ),
    ];

    let total_cases = cases.len();
    for (name, case) in cases {
        let mut conn = connect_ready(&url);
        // The connection's plain reads run on a replica before the case.
        match try_who(&mut conn) {
            Ok(s) if replicas.contains(&s.port) && s.read_only => on_standby += 1,
            Ok(s) => problems.push(format!(
                "{name}: before the case, a plain SELECT ran on {s:?}, not a replica"
            )),
            Err(e) => problems.push(format!(
                "{name}: before the case, a plain SELECT failed: {e}"
            )),
        }
        let mark = log.mark();
        let result = case(&mut conn);
        let moved = log.since(&mark);
        // The positive case itself reads on a replica.
        let expect_reads_on_standby = name.starts_with("plain SELECT");
        let mut errors = Vec::new();
        if let Err(e) = result {
            errors.push(e);
        }
        if !moved.is_empty() && !expect_reads_on_standby {
            errors.push(format!(
                "statements reached a replica: {}",
                moved.join(" | ")
            ));
        }
        let status = if errors.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", errors.join("; "))
        };
        problems.extend(errors.into_iter().map(|e| format!("{name}: {e}")));
        eprintln!("routing: {name}: {status}");
    }
    eprintln!(
        "routing: {total_cases} cases, {} problems; the plain read before each case ran on a \
         replica {on_standby} of {total_cases} times",
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "routing rules violated:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 2. Read-your-writes
// ---------------------------------------------------------------------------------------

/// Inserts a row named `name` (the INSERT must run on the source `source`).
fn insert_named(conn: &mut MyConn, name: &str, source: u16) {
    let n = diesel::insert_into(items::table)
        .values(items::name.eq(name))
        .execute(conn)
        .unwrap_or_else(|e| panic!("inserting {name}: {e}"));
    assert_eq!(n, 1);
    if let Err(e) = is_primary_route(conn, source) {
        panic!("inserting {name}: {e}");
    }
}

/// Reads the rows named `name`: the `@@port` of the server that answered, per row found
/// (empty: the read missed the row).
fn read_named(conn: &mut MyConn, name: &str) -> Vec<u16> {
    items::table
        .filter(items::name.eq(name))
        .select(sql::<BigInt>("CAST(@@port AS SIGNED)"))
        .load::<i64>(conn)
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
        .into_iter()
        .map(|p| p as u16)
        .collect()
}

/// `n` cycles on one connection: INSERT a unique row, at once SELECT it.
fn write_then_read(cluster: &MariaDbCluster, conn: &mut MyConn, n: usize, prefix: &str) -> Cycles {
    let replicas = cluster.replica_ports();
    let source = cluster.current_source_port();
    let mut seen = Cycles::default();
    for _ in 0..n {
        let name = unique(prefix);
        insert_named(conn, &name, source);
        let found = read_named(conn, &name);
        let route = conn.last_route().map(|r| r.host().port());
        seen.count(&name, &found, route, &replicas);
    }
    seen
}

/// With the default parameters, a connection that inserts a row and at once reads it always
/// finds it; once the replicas have caught up its reads go to them again.
#[test]
fn mysql_read_your_writes_300_cycles_on_one_connection() {
    let (cluster, db) = fresh_db("my_ryw");
    let mut conn = connect_ready(&cluster.db_url(&db, &cluster.default_ports(), ""));
    let started = Instant::now();
    let seen = write_then_read(cluster, &mut conn, CYCLES, "ryw");
    seen.assert_no_miss(
        "MySQL read-your-writes (default parameters)",
        CYCLES,
        started.elapsed(),
        &conn.topology(),
    );
    // Once the replicas have applied the writes, reads run on a replica again.
    let name = unique("ryw-last");
    insert_named(&mut conn, &name, cluster.source_port());
    let waited = Instant::now();
    ready(&mut conn);
    eprintln!(
        "a replica was ready for reads again after {:?}",
        waited.elapsed()
    );
    let ports = read_named(&mut conn, &name);
    assert_eq!(ports.len(), 1, "the row is there");
    assert!(
        cluster.replica_ports().contains(&ports[0]),
        "the read ran on {}",
        ports[0]
    );
    let server = who(&mut conn);
    assert!(server.read_only && cluster.replica_ports().contains(&server.port));
    assert_eq!(server.server_id, cluster.server_id(server.port));
}

/// The control: the same cycles with `read_your_writes=off` miss (stale reads on a
/// replica), so the test above tests something. If replication is fast enough here for no
/// miss, the replicas' SQL threads are stopped to make the misses certain.
#[test]
fn mysql_control_read_your_writes_off_misses_own_writes() {
    let cluster = own_cluster(2);
    let mut conn = connect_ready(&cluster.default_url("read_your_writes=off"));
    let seen = write_then_read(&cluster, &mut conn, CYCLES, "off");
    let mut on: Vec<u16> = seen.missed_on.clone();
    on.sort_unstable();
    on.dedup();
    eprintln!(
        "MySQL read_your_writes=off: {} misses of {CYCLES} (on {on:?}), {} reads found the row \
         on a replica",
        seen.misses, seen.on_standby
    );
    for port in &seen.missed_on {
        assert!(
            cluster.replica_ports().contains(port),
            "a missed read ran on {port}, not a replica"
        );
    }
    let mut misses = seen.misses;
    if misses == 0 {
        for port in cluster.replica_ports() {
            cluster.stop_sql_thread(port);
        }
        let stopped = write_then_read(&cluster, &mut conn, 20, "off-stopped");
        eprintln!(
            "read_your_writes=off, replicas' SQL threads stopped: {} misses of 20",
            stopped.misses
        );
        misses += stopped.misses;
        for port in cluster.replica_ports() {
            cluster.start_sql_thread(port);
        }
    }
    assert!(
        misses > 0,
        "with read_your_writes=off, reads right after writes never missed, even with the \
         replicas' SQL threads stopped: the reads did not go to the replicas"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Causal tokens
// ---------------------------------------------------------------------------------------

/// Request 1 writes on a pooled connection of one pool; its token, carried as a string,
/// makes request 2's reads on a connection of another pool (another URL: the hosts in
/// another order, so another topology, as in another process) see the write.
#[test]
fn mysql_causal_tokens_across_pools_200_cycles() {
    let (cluster, db) = fresh_db("my_causal");
    let source = cluster.source_port();
    let ports = cluster.default_ports();
    let mut reversed = ports.clone();
    reversed.reverse();
    let pool = |ports: &[u16]| {
        Pool::builder()
            .max_size(3)
            .connection_timeout(Duration::from_secs(30))
            .build(ConnectionManager::<MyConn>::new(
                cluster.db_url(&db, ports, ""),
            ))
            .expect("pool")
    };
    let (pool_a, pool_b) = (pool(&ports), pool(&reversed));
    {
        let mut b = pool_b.get().unwrap();
        ready(&mut b);
    }
    let replicas = cluster.replica_ports();
    let (mut misses, mut on_standby) = (0, 0);
    let mut texts = Vec::new();
    let started = Instant::now();
    for _ in 0..TOKEN_CYCLES {
        let name = unique("token");
        let text = {
            let mut a = pool_a.get().unwrap();
            insert_named(&mut a, &name, source);
            a.causal_token().expect("a causal token").to_string()
        };
        assert!(text.starts_with("gtid:"), "{text}");
        let token: CausalToken = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(token.to_string(), text);
        let mut b = pool_b.get().unwrap();
        b.read_after(&token);
        match read_named(&mut b, &name).as_slice() {
            [] => misses += 1,
            [port] if replicas.contains(port) => on_standby += 1,
            _ => {}
        }
        texts.push(text);
    }
    eprintln!(
        "MySQL causal tokens across pools: {misses} misses of {TOKEN_CYCLES}, {on_standby} \
         reads on replicas ({:.0} %), {:?}; tokens {} .. {}",
        100.0 * on_standby as f64 / TOKEN_CYCLES as f64,
        started.elapsed(),
        texts[0],
        texts[texts.len() - 1]
    );
    assert_eq!(misses, 0, "reads after a token missed the write it covers");
    // Later writes give later tokens.
    let first: CausalToken = texts[0].parse().unwrap();
    let last: CausalToken = texts[texts.len() - 1].parse().unwrap();
    assert!(first < last, "{first:?} is not before {last:?}");
    assert_eq!(first.merge(last), last);
    // A token does not keep reads off the replicas once they have caught up with it.
    let mut b = pool_b.get().unwrap();
    b.read_after(&last);
    ready(&mut b);
    let server = who(&mut b);
    assert!(
        server.read_only && replicas.contains(&server.port),
        "after the replicas caught up with the token, a read ran on {server:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Lag
// ---------------------------------------------------------------------------------------

/// A replica whose SQL thread is stopped while the source keeps writing gets no reads once
/// it lags more than `max_replica_lag`, and reads again once its SQL thread runs again.
#[test]
fn mysql_a_lagging_replica_gets_no_reads_until_it_catches_up() {
    let cluster = own_cluster(2);
    let source = cluster.source_port();
    let url = cluster.default_url("max_replica_lag=1s&monitor_interval=100ms&connect_timeout=2");
    // Both replicas serve reads (probed, caught up) before the connections pick one.
    let first = connect_ready(&url);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first
        .topology()
        .iter()
        .filter(|h| cluster.replica_ports().contains(&h.host.port()))
        .all(|h| h.excluded.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "the replicas do not both serve reads: {:#?}",
            first.topology()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Connections spread over both replicas; keep opening until one reads on each.
    let mut conns: Vec<MyConn> = vec![first];
    let mut reads_on = BTreeSet::new();
    while reads_on.len() < 2 && conns.len() < 10 {
        let mut c = connect_ready(&url);
        let server = who(&mut c);
        assert!(server.read_only, "{server:?}");
        reads_on.insert(server.port);
        conns.push(c);
    }
    assert_eq!(
        reads_on.len(),
        2,
        "{} connections all read on {reads_on:?}; topology: {:#?}",
        conns.len(),
        conns[0].topology()
    );
    let lagging = cluster.replica_ports()[0];
    let healthy = cluster.replica_ports()[1];

    let stop = AtomicBool::new(false);
    let writes = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        // Writes go on on the source the whole time.
        scope.spawn(|| {
            let mut w = plain(&cluster, source, MariaDbCluster::DATABASE);
            while !stop.load(Ordering::SeqCst) {
                w.batch_execute("INSERT INTO items (name) VALUES ('lag-writer')")
                    .expect("the writer's INSERT");
                writes.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cluster.stop_sql_thread(lagging);
            let stopped_at = Instant::now();
            // The topology shows it excluded as lagging.
            let deadline = Instant::now() + Duration::from_secs(5);
            let status = loop {
                let status = conns[0]
                    .topology()
                    .into_iter()
                    .find(|h| h.host.port() == lagging)
                    .expect("the lagging host is listed");
                if matches!(status.excluded, Some(Exclusion::Lagging(_)))
                    || Instant::now() > deadline
                {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            eprintln!(
                "{:?} after STOP SLAVE SQL_THREAD: {} excluded: {:?}, lag {:?}, position {:?}",
                stopped_at.elapsed(),
                status.host,
                status.excluded,
                status.lag,
                status.position
            );
            assert!(
                matches!(status.excluded, Some(Exclusion::Lagging(lag)) if lag > Duration::from_secs(1)),
                "the stopped replica is not excluded as lagging: {status:#?}"
            );
            // No read reaches it: from the connections that were reading on it, from the
            // others, and from new ones.
            for _ in 0..2 {
                conns.push(connect(&url));
            }
            let mut on_healthy = 0;
            let rounds = 25;
            for round in 0..rounds {
                for (i, c) in conns.iter_mut().enumerate() {
                    let server = who(c);
                    assert_ne!(
                        server.port, lagging,
                        "round {round}: connection {i} read on the lagging replica"
                    );
                    if server.port == healthy {
                        on_healthy += 1;
                    }
                }
            }
            eprintln!(
                "{} reads while lagging: none on {lagging}, {on_healthy} on the other replica",
                rounds * conns.len()
            );
            assert!(on_healthy > 0, "no read ran on the healthy replica");

            // It catches up and gets reads again.
            cluster.start_sql_thread(lagging);
            let resumed = Instant::now();
            let deadline = resumed + Duration::from_secs(15);
            let mut fresh = 0;
            'found: loop {
                for c in conns.iter_mut() {
                    if who(c).port == lagging {
                        break 'found;
                    }
                }
                if Instant::now() > deadline {
                    panic!(
                        "15 s after START SLAVE SQL_THREAD no read reached {lagging}: {:#?}",
                        conns[0].topology()
                    );
                }
                if fresh < 10 {
                    let mut c = connect(&url);
                    c.wait_for_standby(Duration::from_secs(2));
                    conns.push(c);
                    fresh += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "reads reached {lagging} again {:?} after START SLAVE SQL_THREAD ({fresh} new \
                 connections)",
                resumed.elapsed()
            );
        }));
        stop.store(true, Ordering::SeqCst);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    eprintln!("the writer wrote {} rows", writes.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------
// 5. The 1290 retry
// ---------------------------------------------------------------------------------------

/// `f()` inserts a row into `items` (v = 55) and returns `@@port`: a write the classifier
/// cannot see (a read to it).
const WRITING_FUNCTION: &str = "CREATE FUNCTION f() RETURNS INT MODIFIES SQL DATA \
     BEGIN INSERT INTO items (v, name) VALUES (55, 'f'); RETURN @@port; END";

/// `SELECT f()` where `f` writes: the classifier sees a read, the replica refuses it as
/// read-only (1290: it applied nothing), the wrapper re-runs it once on the source, and the
/// row is there exactly once. With `writing_functions=f` it goes to the source at once.
#[test]
fn mysql_a_writing_function_refused_by_a_replica_runs_once_on_the_source() {
    let cluster = own_cluster(1);
    let (source, replica) = (cluster.source_port(), cluster.replica_ports()[0]);
    let db = MariaDbCluster::DATABASE;
    // The application user has no SUPER: with binary logging on, creating a function that
    // writes needs log_bin_trust_function_creators (a server setting; root sets it).
    for port in cluster.default_ports() {
        cluster.query_one(port, "SET GLOBAL log_bin_trust_function_creators = ON");
    }
    let url = cluster.default_url(FAST);
    let mut conn = connect(&url);
    conn.batch_execute(WRITING_FUNCTION)
        .unwrap_or_else(|e| panic!("creating f() through the wrapper: {e}"));
    cluster.wait_for_replication();
    assert_eq!(
        count_on(
            &cluster,
            replica,
            db,
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_NAME = 'f'"
        ),
        1,
        "f() was replicated"
    );
    // The control: on the replica itself, as the application user, f() is refused as
    // read-only and applies nothing.
    let refused = diesel::sql_query("SELECT f() AS v")
        .execute(&mut plain(&cluster, replica, db))
        .expect_err("f() on a read-only replica");
    assert!(
        show_err(&refused).contains("--read-only"),
        "the replica's refusal: {}",
        show_err(&refused)
    );
    assert_eq!(rows_with(&cluster, source, db, 55), 0);

    let mut log = ReplicaLog::new(&cluster, &[replica]);
    ready(&mut conn);
    let server = who(&mut conn);
    assert_eq!(server.port, replica, "a plain read ran on {server:?}");
    let calls = 5;
    let mut tried_on_standby = 0;
    for i in 1..=calls {
        ready(&mut conn);
        let mark = log.mark();
        let (port, v) = port_v(&mut conn, "f()", "").unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(port, source, "call {i}: SELECT f() ran on {port}");
        assert_eq!(v, Some(source.into()), "call {i}: f() ran on {v:?}");
        if let Err(e) = is_primary_route(&conn, source) {
            panic!("call {i}: {e}");
        }
        assert_eq!(
            rows_with(&cluster, source, db, 55),
            i,
            "call {i}: the row of f() must be on the source exactly once per call"
        );
        let sent = log.since(&mark);
        eprintln!("call {i}: sent to the replica: {sent:?}");
        if sent.iter().any(|s| s.contains("f()")) {
            tried_on_standby += 1;
        }
    }
    eprintln!(
        "SELECT f(): {calls} calls, each ran once on the source; {tried_on_standby} were first \
         refused by the replica (1290) and re-run"
    );
    assert_eq!(
        tried_on_standby, calls,
        "SELECT f() is a read to the classifier: each call should have gone to the replica \
         first (and been refused there)"
    );
    cluster.wait_for_replication();
    assert_eq!(rows_with(&cluster, replica, db, 55), calls);

    // Named in writing_functions, f() goes to the source at once.
    let mut named = connect_ready(&cluster.default_url(&format!("{FAST}&writing_functions=f")));
    let mark = log.mark();
    let (port, _) = port_v(&mut named, "f()", "").expect("SELECT f() with writing_functions=f");
    assert_eq!(port, source);
    let sent = log.since(&mark);
    assert!(
        !sent.iter().any(|s| s.contains("f()")),
        "with writing_functions=f, SELECT f() still reached the replica: {sent:?}"
    );
    assert_eq!(rows_with(&cluster, source, db, 55), calls + 1);
}

// ---------------------------------------------------------------------------------------
// 6. Split brain
// ---------------------------------------------------------------------------------------

/// The text of a write that must fail.
fn write_err(conn: &mut MyConn, v: i32) -> String {
    match diesel::insert_into(items::table)
        .values(items::v.eq(v))
        .execute(conn)
    {
        Ok(_) => format!(
            "the write of {v} succeeded (last route {:?})",
            conn.last_route()
        ),
        Err(e) => e.to_string(),
    }
}

/// A replica made writable while the source runs: two writable hosts. Writes and
/// `establish` are refused naming both; reads never run on a writable host; once the
/// replica is read-only again, writes resume on the source.
#[test]
fn mysql_split_brain_refuses_writes_until_one_writable_host_remains() {
    let cluster = own_cluster(2);
    let db = MariaDbCluster::DATABASE;
    let (source, rogue, other) = (
        cluster.source_port(),
        cluster.replica_ports()[0],
        cluster.replica_ports()[1],
    );
    let url = cluster.default_url(FAST);
    let mut conn = connect_ready(&url);
    insert_named(&mut conn, "before-split", source);
    let mut reader = connect_ready(&url);
    let names = |text: &str| {
        text.contains("split brain")
            && text.contains(&format!("127.0.0.1:{source}"))
            && text.contains(&format!("127.0.0.1:{rogue}"))
    };

    cluster.set_read_only(rogue, false);
    // Both are writable, per the servers.
    assert_eq!(cluster.query_one(source, "SELECT @@global.read_only"), "0");
    assert_eq!(cluster.query_one(rogue, "SELECT @@global.read_only"), "0");

    let split_at = Instant::now();
    let deadline = split_at + Duration::from_secs(5);
    let mut accepted = Vec::new();
    let refused = loop {
        let v = 1000 + accepted.len() as i32;
        match diesel::insert_into(items::table)
            .values(items::v.eq(v))
            .execute(&mut conn)
        {
            Ok(_) => {
                if let Err(e) = is_primary_route(&conn, source) {
                    panic!("a write accepted during the split brain: {e}");
                }
                accepted.push(v);
            }
            Err(e) => break e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the replica became writable writes are still accepted: {:#?}",
            conn.topology()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "MySQL split brain: writes refused {:?} after the replica became writable ({} accepted \
         before, all on the source): {refused}",
        split_at.elapsed(),
        accepted.len()
    );
    assert!(
        names(&refused),
        "the refusal does not name both hosts: {refused}"
    );
    let mut problems = Vec::new();
    let again = write_err(&mut conn, 1999);
    if !names(&again) {
        problems.push(format!("a second write: {again}"));
    }
    // `establish` of the same URL (its topology knows of the split brain), and of a URL
    // whose topology is new (as in another process), which must find it by itself.
    let other_url = cluster.default_url(&format!("{FAST}&replica_retry_interval=29"));
    for (what, u) in [("establish", &url), ("a fresh establish", &other_url)] {
        match MyConn::establish(u) {
            Ok(mut c) if u == &other_url => match write_err(&mut c, 1998) {
                e if names(&e) => eprintln!("{what}: succeeded; its first write was refused: {e}"),
                other => problems.push(format!(
                    "{what} succeeded during split brain and its first write was not refused \
                     naming both hosts: {other}"
                )),
            },
            Ok(c) => problems.push(format!(
                "{what} succeeded during split brain (primary_host {:?})",
                c.primary_host().map(|h| h.to_string())
            )),
            Err(e) if names(&e.to_string()) => eprintln!("{what}: refused: {e}"),
            Err(e) => problems.push(format!("{what} failed without naming both hosts: {e}")),
        }
    }
    // Reads go on, never on a writable host.
    let mut read_ports = Vec::new();
    for _ in 0..10 {
        match try_who(&mut reader) {
            Ok(server) => {
                if !server.read_only {
                    problems.push(format!("a read ran on a writable host: {server:?}"));
                }
                read_ports.push(server.port);
            }
            Err(e) => {
                problems.push(format!(
                    "a read failed during split brain: {e}; topology: {:#?}",
                    reader.topology()
                ));
                break;
            }
        }
    }
    eprintln!(
        "reads during the split brain ran on {read_ports:?} (the read-only replica is {other})"
    );
    for v in [1998, 1999] {
        for port in [source, rogue] {
            if rows_with(&cluster, port, db, v) != 0 {
                problems.push(format!("the refused write of {v} is on {port}"));
            }
        }
    }

    // The rogue replica is read-only again: writes resume on the source.
    cluster.set_read_only(rogue, true);
    let fixed_at = Instant::now();
    let deadline = fixed_at + Duration::from_secs(10);
    loop {
        match diesel::insert_into(items::table)
            .values(items::v.eq(2000))
            .execute(&mut conn)
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "10 s after the replica was made read-only again writes still fail: {e}; {:#?}",
                conn.topology()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "writes resumed {:?} after the replica was made read-only again",
        fixed_at.elapsed()
    );
    if let Err(e) = is_primary_route(&conn, source) {
        problems.push(format!("the write after the split brain: {e}"));
    }
    assert_eq!(rows_with(&cluster, source, db, 2000), 1);
    let mut fresh = connect(&url);
    insert_named(&mut fresh, "after-split", source);
    // Replication never broke: the rogue replica has every accepted write and nothing else.
    cluster.wait_for_replication();
    for port in [rogue, other] {
        assert_eq!(
            cluster.query_one(port, "SELECT @@gtid_binlog_pos"),
            cluster.query_one(source, "SELECT @@gtid_binlog_pos"),
            "replica {port} has transactions of its own"
        );
    }
    assert!(
        problems.is_empty(),
        "during split brain:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 7. Failover
// ---------------------------------------------------------------------------------------

fn is_closed(e: &Error) -> bool {
    matches!(
        e,
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
    )
}

fn insert_v(conn: &mut MyConn, v: i32) -> QueryResult<usize> {
    diesel::sql_query(format!("INSERT INTO items (v) VALUES ({v})")).execute(conn)
}

/// A write and the `@@port` of the server that took it, in one transaction.
fn insert_v_port(conn: &mut MyConn, v: i32) -> QueryResult<u16> {
    conn.transaction(|c| {
        insert_v(c, v)?;
        let (port, _) = port_v(c, "1", "").map_err(|e| Error::QueryBuilderError(e.into()))?;
        Ok(port)
    })
}

/// The source dies with a write in flight, a Diesel transaction and a manual transaction
/// open; a replica is promoted. The write in flight fails and is never re-sent; both
/// transactions fail (with ClosedConnection) until they are rolled back and commit nothing;
/// the next write of every connection lands on the promoted replica.
#[test]
fn mysql_failover_to_a_promoted_replica() {
    let cluster = own_cluster(2);
    let db = MariaDbCluster::DATABASE;
    let (old, new, other) = (
        cluster.source_port(),
        cluster.replica_ports()[0],
        cluster.replica_ports()[1],
    );
    let url = cluster.default_url(FAST);
    let mut idle = connect(&url);
    assert_eq!(insert_v_port(&mut idle, 5).expect("a write before"), old);
    let mut manual = connect(&url);
    let mut diesel_tx = connect(&url);
    let mut inflight = connect(&url);
    manual
        .batch_execute("START TRANSACTION")
        .expect("START TRANSACTION");
    insert_v(&mut manual, 11).expect("the manual transaction's first insert");

    let mut failed_over_at = None;
    let (tx_result, steps, inflight_result) = std::thread::scope(|scope| {
        // A write that is running on the source when it dies.
        let running = scope.spawn(|| {
            diesel::sql_query("INSERT INTO items (v) SELECT 77 FROM (SELECT SLEEP(5)) AS s")
                .execute(&mut inflight)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while cluster.query_one(
            old,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT%SLEEP(5)%'",
        ) != "1"
        {
            assert!(Instant::now() < deadline, "the slow INSERT never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut steps: Vec<(&str, QueryResult<usize>)> = Vec::new();
        let tx_result = diesel_tx.transaction::<(), Error, _>(|c| {
            steps.push(("insert 21", insert_v(c, 21)));
            cluster.kill(old);
            cluster.promote(new);
            failed_over_at = Some(Instant::now());
            steps.push(("insert 22", insert_v(c, 22)));
            steps.push(("insert 23", insert_v(c, 23)));
            Ok(())
        });
        (tx_result, steps, running.join().unwrap())
    });
    let failed_over_at = failed_over_at.expect("the failover ran");
    for (label, r) in &steps {
        eprintln!(
            "  Diesel transaction {label}: {:?}",
            r.as_ref().map_err(show_err)
        );
    }
    eprintln!(
        "  Diesel transaction(): {:?}",
        tx_result.as_ref().map_err(show_err)
    );
    eprintln!(
        "  write in flight: {:?}",
        inflight_result.as_ref().map_err(show_err)
    );

    let mut problems = Vec::new();
    // The write in flight fails and is not re-sent.
    if inflight_result.is_ok() {
        problems.push("the write in flight when the source died succeeded".to_owned());
    }
    // The Diesel transaction: the rest of it fails, and so does transaction(), with
    // ClosedConnection (never NotInTransaction).
    match &steps[..] {
        [(_, Ok(_)), (_, Err(_)), (_, Err(third))] if is_closed(third) => {}
        other => problems.push(format!(
            "Diesel transaction: want insert 21 ok, 22 failed, 23 ClosedConnection; got {:?}",
            other
                .iter()
                .map(|(l, r)| format!("{l}: {:?}", r.as_ref().map_err(show_err)))
                .collect::<Vec<_>>()
        )),
    }
    match &tx_result {
        Err(e) if is_closed(e) => {}
        other => problems.push(format!(
            "transaction() must fail with ClosedConnection: {:?}",
            other.as_ref().map_err(show_err)
        )),
    }
    // The manual transaction: its next statements fail until ROLLBACK.
    let insert_12 = insert_v(&mut manual, 12);
    let commit = manual.batch_execute("COMMIT");
    let rollback = manual.batch_execute("ROLLBACK");
    eprintln!(
        "  manual transaction: insert 12 {:?}, COMMIT {:?}, ROLLBACK {:?}",
        insert_12.as_ref().map_err(show_err),
        commit.as_ref().map_err(show_err),
        rollback.as_ref().map_err(show_err)
    );
    if insert_12.is_ok() {
        problems.push("manual transaction: an INSERT after the source died succeeded".into());
    }
    if !matches!(&commit, Err(e) if is_closed(e)) {
        problems.push(format!(
            "manual transaction: COMMIT must fail with ClosedConnection: {:?}",
            commit.as_ref().map_err(show_err)
        ));
    }
    if let Err(e) = &rollback {
        problems.push(format!(
            "manual transaction: ROLLBACK after the failed COMMIT must succeed: {}",
            show_err(e)
        ));
    }

    // The next write of the idle connection lands on the promoted replica.
    let resumed = loop {
        match insert_v_port(&mut idle, 6) {
            Ok(port) => break port,
            Err(e) => assert!(
                failed_over_at.elapsed() < Duration::from_secs(10),
                "10 s after the promotion writes still fail: {}; {:#?}",
                show_err(&e),
                idle.topology()
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "MySQL failover: the first write after the promotion succeeded {:?} after it, on {resumed}",
        failed_over_at.elapsed()
    );
    assert_eq!(
        resumed, new,
        "the write after the failover ran on {resumed}"
    );
    assert_eq!(idle.primary_host().expect("a primary is known").port(), new);
    // Every other connection writes there too.
    for (name, conn, v) in [
        ("manual", &mut manual, 13),
        ("Diesel transaction", &mut diesel_tx, 24),
        ("in flight", &mut inflight, 78),
    ] {
        match insert_v_port(conn, v) {
            Ok(port) if port == new => {}
            other => problems.push(format!(
                "{name}: the first write after the failover: {:?}",
                other.map_err(|e| show_err(&e))
            )),
        }
    }
    assert_eq!(cluster.query_one(new, "SELECT @@global.read_only"), "0");
    // Nothing of the torn transactions and the write in flight is on the new source, or on
    // the remaining replica (which follows it).
    cluster.wait_for_replication();
    for port in [new, other] {
        for v in [11, 12, 21, 22, 23, 77] {
            let n = rows_with(&cluster, port, db, v);
            if n != 0 {
                problems.push(format!("{n} row(s) with v = {v} on {port}"));
            }
        }
        for v in [5, 6, 13, 24, 78] {
            let n = rows_with(&cluster, port, db, v);
            if n != 1 {
                problems.push(format!("{n} row(s) with v = {v} on {port}, want 1"));
            }
        }
    }
    assert!(problems.is_empty(), "failover:\n{}", problems.join("\n"));
}
