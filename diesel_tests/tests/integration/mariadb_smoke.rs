//! Smoke tests of the MariaDB cluster harness itself, through the `mariadb` client
//! (`query_one`) and plain diesel `MysqlConnection`s (not the crate's wrapper).

use std::thread;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::common::{cluster_report, connect, exec, kill_cluster_child_and_wait};
use crate::reaper::{self, refuses};
use diesel_multidb_testkit::MariaDbCluster;

fn int(conn: &mut MysqlConnection, expr: &str) -> i64 {
    diesel::select(sql::<BigInt>(&format!("CAST(({expr}) AS SIGNED)")))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("SELECT {expr}: {e}"))
}

fn text(conn: &mut MysqlConnection, expr: &str) -> String {
    diesel::select(sql::<Text>(&format!("CAST(({expr}) AS CHAR)")))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("SELECT {expr}: {e}"))
}

/// `@@server_id`, `@@read_only` and `@@port` of a node, through the client.
fn identity(cluster: &MariaDbCluster, port: u16) -> (String, String, String) {
    (
        cluster.query_one(port, "SELECT @@server_id"),
        cluster.query_one(port, "SELECT @@read_only"),
        cluster.query_one(port, "SELECT @@port"),
    )
}

#[test]
fn mariadb_shared_topology_and_replicated_writes() {
    let cluster = MariaDbCluster::shared();
    let source = cluster.source_port();
    let replicas = cluster.replica_ports();
    assert_eq!(replicas.len(), 2);
    assert_eq!(cluster.current_source_port(), source);

    assert_eq!(
        identity(cluster, source),
        ("1".to_owned(), "0".to_owned(), source.to_string())
    );
    for (i, &port) in replicas.iter().enumerate() {
        assert_eq!(
            identity(cluster, port),
            ((i + 2).to_string(), "1".to_owned(), port.to_string()),
            "replica {port}"
        );
        assert_eq!(cluster.server_id(port), u32::try_from(i + 2).unwrap());
        let status: std::collections::HashMap<_, _> =
            cluster.slave_status(port).into_iter().collect();
        assert_eq!(status["Master_Port"], source.to_string());
        assert_eq!(status["Slave_IO_Running"], "Yes");
        assert_eq!(status["Slave_SQL_Running"], "Yes");
        assert_eq!(status["Using_Gtid"], "Slave_Pos");
    }
    assert!(cluster.slave_status(source).is_empty());
    for (var, value) in [
        ("@@log_bin", "1"),
        ("@@log_slave_updates", "1"),
        ("@@gtid_strict_mode", "1"),
        ("@@binlog_format", "ROW"),
        ("@@bind_address", "127.0.0.1"),
        ("@@character_set_server", "utf8mb4"),
    ] {
        for port in cluster.default_ports() {
            assert_eq!(cluster.query_one(port, &format!("SELECT {var}")), value);
        }
    }

    // A write on the source reaches both replicas.
    let table = format!("items_{}", std::process::id());
    cluster.query_one(
        source,
        &format!("CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(50))"),
    );
    cluster.query_one(
        source,
        &format!("INSERT INTO {table} VALUES (1, 'replicated')"),
    );
    cluster.wait_for_replication();
    let binlog_pos = cluster.query_one(source, "SELECT @@gtid_binlog_pos");
    for &port in &replicas {
        assert_eq!(
            cluster.query_one(port, &format!("SELECT name FROM {table} WHERE id = 1")),
            "replicated",
            "replica {port}"
        );
        assert_eq!(
            cluster.query_one(port, "SELECT @@gtid_slave_pos"),
            binlog_pos,
            "replica {port}"
        );
    }

    assert_eq!(
        cluster.default_url("ssl_mode=disabled"),
        format!(
            "mysql://app:app-secret@127.0.0.1:{source},127.0.0.1:{},127.0.0.1:{}/test?ssl_mode=disabled",
            replicas[0], replicas[1]
        )
    );
    assert_eq!(
        cluster.node_url(source),
        format!("mysql://app:app-secret@127.0.0.1:{source}/test")
    );

    // The shared cluster keeps its topology.
    let killed = std::panic::catch_unwind(|| cluster.kill(source));
    assert!(
        killed.is_err(),
        "kill() on the shared cluster did not panic"
    );
    assert!(!refuses(source));
    // query_one only talks to the cluster's own nodes.
    let foreign = std::panic::catch_unwind(|| cluster.query_one(3306, "SELECT 1"));
    assert!(foreign.is_err(), "query_one accepted a foreign port");
}

#[test]
fn mariadb_shared_app_user_password_auth() {
    let cluster = MariaDbCluster::shared();
    let source = cluster.source_port();
    let mut app = connect(&cluster.node_url(source));
    assert_eq!(text(&mut app, "CURRENT_USER()"), "app@%");
    assert_eq!(text(&mut app, "DATABASE()"), "test");
    assert_eq!(int(&mut app, "@@port"), i64::from(source));
    let table = format!("app_smoke_{}", std::process::id());
    exec(
        &mut app,
        &format!("CREATE TABLE {table} (id INT PRIMARY KEY)"),
    );
    exec(&mut app, &format!("INSERT INTO {table} VALUES (1), (2)"));
    assert_eq!(int(&mut app, &format!("SELECT SUM(id) FROM {table}")), 3);
    // Not a superuser: no global privileges.
    let grants = cluster.query_one(source, "SHOW GRANTS FOR 'app'@'%'");
    assert!(grants.starts_with("GRANT USAGE ON *.*"), "{grants}");
    let err = diesel::sql_query("SET GLOBAL read_only = ON")
        .execute(&mut app)
        .expect_err("app could SET GLOBAL");
    assert!(err.to_string().contains("Access denied"), "{err}");
    let err = diesel::sql_query("CREATE DATABASE app_may_not")
        .execute(&mut app)
        .expect_err("app could create a database");
    assert!(err.to_string().contains("Access denied"), "{err}");

    let err = MysqlConnection::establish(&cluster.app_url(source, "wrong-secret"))
        .err()
        .expect("app connected with a wrong password");
    assert!(
        err.to_string().contains("Access denied for user 'app'"),
        "unexpected error: {err}"
    );

    // The user and its password replicated; on a read-only replica app can read, not write.
    cluster.wait_for_replication();
    let replica = cluster.replica_ports()[0];
    let mut app = connect(&cluster.app_url(replica, MariaDbCluster::APP_PASSWORD));
    assert_eq!(int(&mut app, "@@read_only"), 1);
    assert_eq!(int(&mut app, &format!("SELECT SUM(id) FROM {table}")), 3);
    let err = diesel::sql_query(format!("INSERT INTO {table} VALUES (3)"))
        .execute(&mut app)
        .expect_err("app wrote on a read-only replica");
    assert!(err.to_string().contains("--read-only"), "{err}");
    assert!(MysqlConnection::establish(&cluster.app_url(replica, "nope")).is_err());

    // A database made by create_database is usable by app on every node.
    let db = cluster.create_database("mariadb smoke");
    let mut app: MysqlConnection = connect(&cluster.node_db_url(source, &db));
    exec(&mut app, "CREATE TABLE t (v INT)");
    cluster.wait_for_replication();
    assert_eq!(
        cluster.query_one_db(replica, &db, "SELECT COUNT(*) FROM t"),
        "0"
    );
}

#[test]
fn mariadb_own_replica_lag_then_catch_up() {
    let cluster = MariaDbCluster::start(2);
    let source = cluster.source_port();
    let [lagging, live] = cluster.replica_ports()[..] else {
        panic!("expected two replicas");
    };
    cluster.query_one(source, "CREATE TABLE t (v INT)");
    cluster.wait_for_replication();

    cluster.stop_sql_thread(lagging);
    cluster.query_one(source, "INSERT INTO t VALUES (1), (2)");
    cluster.query_one(source, "INSERT INTO t VALUES (4)");
    cluster.wait_for_replica(live);
    assert_eq!(cluster.query_one(live, "SELECT SUM(v) FROM t"), "7");
    // The lagging replica received the transactions but applied none of them.
    let source_pos = cluster.query_one(source, "SELECT @@gtid_binlog_pos");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: std::collections::HashMap<_, _> =
            cluster.slave_status(lagging).into_iter().collect();
        assert_eq!(status["Slave_SQL_Running"], "No");
        if status["Gtid_IO_Pos"] == source_pos {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lagging replica did not receive {source_pos}: {status:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cluster.query_one(lagging, "SELECT COUNT(*) FROM t"), "0");
    assert_ne!(
        cluster.query_one(lagging, "SELECT @@gtid_slave_pos"),
        source_pos
    );

    cluster.start_sql_thread(lagging);
    cluster.wait_for_replication();
    assert_eq!(cluster.query_one(lagging, "SELECT SUM(v) FROM t"), "7");
    assert_eq!(
        cluster.query_one(lagging, "SELECT @@gtid_slave_pos"),
        source_pos
    );
}

#[test]
fn mariadb_own_kill_and_promote() {
    let cluster = MariaDbCluster::start(2);
    let old_source = cluster.source_port();
    let [promoted, follower] = cluster.replica_ports()[..] else {
        panic!("expected two replicas");
    };
    let dir = cluster.dir().to_path_buf();
    let mut app: MysqlConnection = connect(&cluster.node_url(old_source));
    exec(&mut app, "CREATE TABLE t (v INT)");
    exec(&mut app, "INSERT INTO t VALUES (1)");
    drop(app);
    cluster.wait_for_replication();

    cluster.kill(old_source);
    assert!(refuses(old_source));
    assert!(!cluster.is_running(old_source));
    assert!(MysqlConnection::establish(&cluster.node_url(old_source)).is_err());

    cluster.promote(promoted);
    assert_eq!(cluster.current_source_port(), promoted);
    assert_eq!(cluster.query_one(promoted, "SELECT @@read_only"), "0");
    assert!(cluster.slave_status(promoted).is_empty());
    let mut app = connect(&cluster.node_url(promoted));
    assert_eq!(int(&mut app, "@@read_only"), 0);
    exec(&mut app, "INSERT INTO t VALUES (2)");
    assert_eq!(int(&mut app, "SELECT SUM(v) FROM t"), 3);
    // The write got a GTID of the promoted node's server_id in domain 0.
    let last_gtid = text(&mut app, "@@last_gtid");
    assert!(last_gtid.starts_with("0-2-"), "@@last_gtid = {last_gtid}");
    drop(app);

    // The other replica was re-pointed and follows.
    cluster.wait_for_replication();
    assert_eq!(cluster.query_one(follower, "SELECT SUM(v) FROM t"), "3");
    assert_eq!(cluster.query_one(follower, "SELECT @@read_only"), "1");
    let status: std::collections::HashMap<_, _> =
        cluster.slave_status(follower).into_iter().collect();
    assert_eq!(status["Master_Port"], promoted.to_string());

    // A replica killed and restarted catches up from where it was.
    cluster.kill(follower);
    cluster.query_one(promoted, "INSERT INTO t VALUES (4)");
    cluster.restart(follower);
    cluster.wait_for_replication();
    assert_eq!(cluster.query_one(follower, "SELECT SUM(v) FROM t"), "7");

    // The old source restarted is a writable source of its own (split brain)...
    cluster.restart(old_source);
    assert_eq!(cluster.query_one(old_source, "SELECT @@read_only"), "0");
    assert_eq!(cluster.query_one(old_source, "SELECT SUM(v) FROM t"), "1");
    // ... until it rejoins as a replica of the new source, with a new server_id.
    cluster.rejoin_as_replica(old_source);
    cluster.wait_for_replication();
    assert_eq!(
        identity(&cluster, old_source),
        ("4".to_owned(), "1".to_owned(), old_source.to_string())
    );
    assert_eq!(cluster.query_one(old_source, "SELECT SUM(v) FROM t"), "7");

    // set_read_only toggles and survives a restart.
    cluster.set_read_only(follower, false);
    assert_eq!(cluster.query_one(follower, "SELECT @@read_only"), "0");
    cluster.kill(follower);
    cluster.restart(follower);
    assert_eq!(cluster.query_one(follower, "SELECT @@read_only"), "0");

    // Dropping the cluster stops its servers and removes its directory.
    let ports = cluster.default_ports();
    drop(cluster);
    for port in ports {
        assert!(refuses(port), "port {port} still open after drop");
    }
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

/// Names the file through which the helper process reports its cluster.
/// Helper process for `mariadb_reaper_cleans_up_after_sigkill`: starts a source and a
/// replica, reports `<cluster dir> <port>,<port>` and waits to be killed.
#[test]
#[ignore = "helper process run by mariadb_reaper_cleans_up_after_sigkill"]
fn mariadb_reaper_child() {
    reaper::child(|| {
        let cluster = MariaDbCluster::start(1);
        let line = cluster_report(cluster.dir(), &cluster.default_ports());
        (cluster, line)
    });
}

#[test]
fn mariadb_reaper_cleans_up_after_sigkill() {
    kill_cluster_child_and_wait("mariadb_smoke::mariadb_reaper_child");
}
