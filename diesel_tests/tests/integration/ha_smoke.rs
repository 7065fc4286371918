//! Smoke tests of the pg_auto_failover harness (`testkit/src/auto_failover.rs`):
//! a real HA manager moving the primary around, observed through plain diesel
//! `PgConnection`s.

use std::io::{BufReader, ErrorKind, Read};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

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

fn refuses(port: u16) -> bool {
    matches!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
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
const HA_CHILD_ENV: &str = "DIESEL_MULTIDB_HA_CHILD_REPORT";

/// Helper process for `ha_reaper_cleans_up_after_sigkill`: starts a
/// formation, writes `<dir> <monitor port> <node1 port> <node2 port>` to the
/// file named by `$DIESEL_MULTIDB_HA_CHILD_REPORT`, and waits to be killed.
#[test]
#[ignore = "helper process run by ha_reaper_cleans_up_after_sigkill"]
fn ha_reaper_child() {
    let Some(report) = std::env::var_os(HA_CHILD_ENV) else {
        return;
    };
    let ha = AutoFailover::start();
    let [n1, n2] = ha.node_ports();
    let line = format!("{} {} {n1} {n2}\n", ha.dir().display(), ha.monitor_port());
    let tmp = PathBuf::from(&report).with_extension("tmp");
    std::fs::write(&tmp, line).expect("write the report");
    std::fs::rename(&tmp, &report).expect("publish the report");
    thread::sleep(Duration::from_secs(120));
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
    let scratch = tempfile::tempdir().expect("tempdir");
    let report = scratch.path().join("report");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "ha_smoke::ha_reaper_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(HA_CHILD_ENV, &report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the helper test process");
    let stderr = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let ready = loop {
        if let Ok(ready) = std::fs::read_to_string(&report) {
            break ready;
        }
        let exited = child.try_wait().expect("try_wait").is_some();
        if exited || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the helper process did not report a started formation:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let fields: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "report {ready:?}");
    let ha_dir = fields[0].to_owned();
    let process_dir = PathBuf::from(&ha_dir).parent().unwrap().to_path_buf();
    let ports: Vec<u16> = fields[1..].iter().map(|p| p.parse().unwrap()).collect();
    assert!(ports.iter().all(|&p| !refuses(p)), "servers not up");
    let running = autoctl_processes_under(&ha_dir);
    assert!(running.len() >= 3, "pg_autoctl processes: {running:?}");

    child.kill().expect("SIGKILL the helper");
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = autoctl_processes_under(&ha_dir);
        let refused: Vec<bool> = ports.iter().map(|&p| refuses(p)).collect();
        if left.is_empty() && refused.iter().all(|&r| r) && !process_dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30 s after SIGKILL of the test process: pg_autoctl processes left: {left:?}; \
             ports {ports:?} refuse: {refused:?}; {} exists: {}",
            process_dir.display(),
            process_dir.exists()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
