//! Smoke tests of the pg_auto_failover harness (`testkit/src/auto_failover.rs`):
//! a real HA manager moving the primary around, observed through plain diesel
//! `PgConnection`s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use crate::reaper::{self, refuses};
use diesel_multidb_testkit::{AutoFailover, APP_PASSWORD};

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

fn exec(conn: &mut PgConnection, statement: &str) {
    diesel::sql_query(statement)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn sum(conn: &mut PgConnection) -> i64 {
    diesel::select(sql::<BigInt>("(SELECT coalesce(sum(v), 0)::bigint FROM t)"))
        .get_result(conn)
        .expect("SELECT sum(v) FROM t")
}

fn in_recovery(conn: &mut PgConnection) -> bool {
    diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .get_result(conn)
        .expect("SELECT pg_is_in_recovery()")
}

/// Writes `v` on the primary as the password-authenticated role `app`.
fn write_as_app(ha: &AutoFailover, port: u16, v: i64) {
    let mut app = connect(&ha.app_url(port, APP_PASSWORD));
    assert!(!in_recovery(&mut app), "port {port} is in recovery");
    exec(&mut app, &format!("INSERT INTO t VALUES ({v})"));
}

#[test]
fn ha_switchover_and_failover() {
    let t0 = Instant::now();
    let ha = AutoFailover::start();
    let start_time = t0.elapsed();
    let [node1, node2] = ha.node_ports();
    assert_eq!(ha.primary_port(), node1);
    assert_eq!(ha.secondary_port(), Some(node2));
    let state = ha.state();
    assert_eq!(state.len(), 2);
    assert!(state.iter().all(|s| s.healthy), "{state:?}");

    // Superuser and password-authenticated non-superuser.
    let mut primary = connect(&ha.node_url(node1));
    exec(&mut primary, "CREATE TABLE t (v bigint)");
    exec(&mut primary, "GRANT INSERT, SELECT ON t TO app");
    drop(primary);
    write_as_app(&ha, node1, 1);
    assert!(
        PgConnection::establish(&ha.app_url(node1, "wrong-secret")).is_err(),
        "app connected with a wrong password"
    );
    let mut secondary = connect(&ha.node_url(node2));
    assert!(in_recovery(&mut secondary));
    drop(secondary);

    // Planned switchover.
    let started = Instant::now();
    let new_primary = ha.switchover();
    let switchover_time = started.elapsed();
    assert_eq!(new_primary, node2);
    assert_eq!(ha.primary_port(), node2);
    write_as_app(&ha, node2, 2);
    let mut conn = connect(&ha.node_url(node2));
    assert_eq!(sum(&mut conn), 3);
    drop(conn);
    // The old primary comes back as a secondary.
    let started = Instant::now();
    ha.wait_healthy();
    let rejoin_time = started.elapsed();
    assert_eq!(ha.secondary_port(), Some(node1));
    let mut old = connect(&ha.node_url(node1));
    assert!(in_recovery(&mut old));
    drop(old);

    // Unplanned failover: the primary's node dies. Row 2 was acknowledged
    // by the primary; pg_auto_failover's synchronous replication must carry
    // it over to the promoted node.
    let started = Instant::now();
    let killed = ha.kill_primary();
    assert_eq!(killed, node2);
    assert!(refuses(node2));
    let promoted = ha.wait_for_promotion(killed);
    let failover_time = started.elapsed();
    assert_eq!(promoted, node1);
    assert_eq!(ha.primary_port(), node1);
    write_as_app(&ha, node1, 4);
    assert_eq!(
        ha.query_one(node1, "SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,2,4"
    );

    eprintln!(
        "ha smoke: formation healthy in {start_time:.2?}; switchover {switchover_time:.2?} \
         (old primary back as secondary {rejoin_time:.2?} later); kill_primary to promoted and \
         writable {failover_time:.2?}; state after failover: {:?}",
        ha.state()
    );

    let dir = ha.dir().to_path_buf();
    let monitor = ha.monitor_port();
    drop(ha);
    assert!(
        refuses(node1) && refuses(monitor),
        "servers still up after drop"
    );
    assert!(!dir.exists(), "{} left after drop", dir.display());
}

/// Names the file through which the helper process reports its formation.
/// Helper process for `ha_reaper_cleans_up_after_sigkill`: starts a formation, reports
/// `<dir> <monitor port> <node1 port> <node2 port>` and waits to be killed.
#[test]
#[ignore = "helper process run by ha_reaper_cleans_up_after_sigkill"]
fn ha_reaper_child() {
    reaper::child(|| {
        let ha = AutoFailover::start();
        let [n1, n2] = ha.node_ports();
        let line = format!("{} {} {n1} {n2}", ha.dir().display(), ha.monitor_port());
        (ha, line)
    });
}

/// `pg_autoctl` processes whose command line mentions `dir`.
fn autoctl_processes_under(dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("pg_autoctl") && cmdline.contains(dir) {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn ha_reaper_cleans_up_after_sigkill() {
    reaper::kill_child_and_wait(
        "ha_smoke::ha_reaper_child",
        Duration::from_secs(90),
        |fields| {
            assert_eq!(fields.len(), 4, "report {fields:?}");
            let ha_dir = PathBuf::from(fields[0]);
            let ports: Vec<u16> = fields[1..].iter().map(|p| p.parse().unwrap()).collect();
            assert!(ports.iter().all(|&p| !refuses(p)), "servers not up");
            let running = autoctl_processes_under(fields[0]);
            assert!(running.len() >= 3, "pg_autoctl processes: {running:?}");
            move || {
                let mut left = reaper::dir_and_ports_left(&ha_dir, &ports);
                left.extend(autoctl_processes_under(&ha_dir.display().to_string()));
                left
            }
        },
    );
}
