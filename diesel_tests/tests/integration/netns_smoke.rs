//! Smoke tests of the network-namespace harness: a primary in its own network
//! namespace whose link can be cut silently (see `testkit/src/netns.rs`),
//! through plain diesel `PgConnection`s (libpq).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::common::{connect, exec, pg_text};
use crate::reaper;
use diesel_multidb_testkit::{PgCluster, APP_PASSWORD};

fn select_sum(conn: &mut PgConnection) -> QueryResult<i64> {
    diesel::select(sql::<BigInt>("(SELECT coalesce(sum(v), 0)::bigint FROM t)")).get_result(conn)
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn in_benchmark_range(addr: Ipv4Addr) -> bool {
    let [a, b, ..] = addr.octets();
    a == 198 && (b == 18 || b == 19)
}

/// Runs `f` on its own thread and returns a receiver for (result, elapsed).
fn spawn_timed<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> mpsc::Receiver<(T, Duration)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        let result = f();
        let _ = tx.send((result, started.elapsed()));
    });
    rx
}

#[test]
fn netns_primary_silent_drop() {
    let t0 = Instant::now();
    let cluster = PgCluster::start_with_netns(1, &[0]);
    let start_time = t0.elapsed();
    let primary = cluster.primary_port();
    let standby = cluster.standby_ports()[0];
    let ns = cluster.netns(primary);
    let ns_name = ns.name().to_owned();
    let veth = ns.host_interface().to_owned();
    assert!(in_benchmark_range(ns.addr()), "{:?}", ns.addr());
    assert!(in_benchmark_range(ns.gateway()), "{:?}", ns.gateway());
    assert!(netns_exists(&ns_name), "namespace {ns_name} missing");
    assert_eq!(
        cluster.host_port(primary),
        format!("{}:{primary}", ns.addr())
    );
    assert_eq!(cluster.host_port(standby), format!("127.0.0.1:{standby}"));
    assert_eq!(
        cluster.node_url(primary),
        format!("postgres://postgres@{}:{primary}/postgres", ns.addr())
    );

    // Writes go through the namespace address; the root-namespace standby
    // streams from it.
    let mut conn = connect(&cluster.node_url(primary));
    assert_eq!(
        pg_text(&mut conn, "host(inet_server_addr())"),
        ns.addr().to_string()
    );
    assert_eq!(
        pg_text(&mut conn, "host(inet_client_addr())"),
        ns.gateway().to_string()
    );
    exec(&mut conn, "CREATE TABLE t (v int)");
    exec(&mut conn, "INSERT INTO t VALUES (1)");
    cluster.wait_for_replay();
    let mut on_standby = connect(&cluster.node_url(standby));
    assert_eq!(select_sum(&mut on_standby).unwrap(), 1);
    assert_eq!(
        pg_text(
            &mut on_standby,
            "(SELECT sender_host || ' ' || status FROM pg_stat_wal_receiver)"
        ),
        format!("{} streaming", ns.addr())
    );
    drop(on_standby);
    // Password authentication through the namespace too.
    let mut app = connect(&cluster.app_url(primary, APP_PASSWORD));
    assert_eq!(pg_text(&mut app, "current_user::text"), "app");
    drop(app);
    // Nothing listens on the namespace's port in the root namespace.
    assert!(
        std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, primary)).is_err(),
        "the namespaced primary's port answers on the root namespace's 127.0.0.1"
    );

    // Two idle connections: one without keepalives, one with keepalives and
    // tcp_user_timeout.
    let mut plain = connect(&cluster.url(&[primary], "keepalives=0"));
    let mut guarded = connect(&cluster.url(
        &[primary],
        "keepalives_idle=1&keepalives_interval=1&keepalives_count=3&tcp_user_timeout=5000",
    ));
    assert_eq!(select_sum(&mut plain).unwrap(), 1);
    assert_eq!(select_sum(&mut guarded).unwrap(), 1);

    ns.cut();
    assert!(ns.is_cut());
    let cut_at = Instant::now();
    let plain_rx = spawn_timed(move || {
        let result = select_sum(&mut plain);
        (result, plain)
    });
    let guarded_rx = spawn_timed(move || select_sum(&mut guarded).map_err(|e| e.to_string()));

    // The server itself is fine: the harness reaches it over its unix socket.
    assert_eq!(cluster.query_one(primary, "SELECT count(*) FROM t"), "1");
    // A new connection is neither refused nor reset: it hangs until the
    // client's connect timeout.
    let started = Instant::now();
    let err = PgConnection::establish(&cluster.url(&[primary], "connect_timeout=2"))
        .err()
        .expect("connected through a cut link");
    let connect_time = started.elapsed();
    assert!(
        connect_time >= Duration::from_millis(1500) && connect_time < Duration::from_secs(5),
        "connect_timeout=2 through a cut link took {connect_time:?}: {err}"
    );
    assert!(err.to_string().contains("timeout expired"), "{err}");

    // With keepalives + tcp_user_timeout the statement fails within ~10 s.
    let (guarded_result, guarded_time) = guarded_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the statement with tcp_user_timeout=5000 neither failed nor returned in 20 s");
    let guarded_err = guarded_result.expect_err("a statement succeeded through a cut link");
    assert!(
        guarded_time < Duration::from_secs(10),
        "tcp_user_timeout=5000: the statement failed only after {guarded_time:?}: {guarded_err}"
    );
    // Without keepalives the statement is still waiting (a client-side
    // timeout expires rather than the statement failing).
    assert!(
        matches!(
            plain_rx.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ),
        "the statement without keepalives returned during the cut"
    );
    let plain_waited = cut_at.elapsed();

    // restore(): the hung statement goes through on TCP's next retransmission
    // and new connections work again.
    ns.restore();
    assert!(!ns.is_cut());
    let restored_at = Instant::now();
    let ((plain_result, mut plain), _) = plain_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the statement without keepalives did not complete within 60 s of restore()");
    assert_eq!(plain_result.expect("statement after restore"), 1);
    let plain_resumed = restored_at.elapsed();
    assert_eq!(select_sum(&mut plain).unwrap(), 1);
    let mut fresh: PgConnection = connect(&cluster.url(&[primary], "connect_timeout=5"));
    exec(&mut fresh, "INSERT INTO t VALUES (2)");
    cluster.wait_for_replay();
    assert_eq!(cluster.query_one(standby, "SELECT sum(v) FROM t"), "3");

    // A partitioned primary: cut it again and promote the standby, which
    // then takes writes.
    ns.cut();
    let started = Instant::now();
    cluster.promote(standby);
    let promote_time = started.elapsed();
    assert_eq!(cluster.current_primary_port(), standby);
    let mut promoted = connect(&cluster.node_url(standby));
    exec(&mut promoted, "INSERT INTO t VALUES (4)");
    assert_eq!(select_sum(&mut promoted).unwrap(), 7);
    // The old primary, unreachable, still thinks it is a primary.
    assert_eq!(
        cluster.query_one(primary, "SELECT pg_is_in_recovery()"),
        "f"
    );

    eprintln!(
        "netns smoke: cluster with namespaced primary started in {start_time:.2?}; \
         connect_timeout=2 through the cut took {connect_time:.2?}; the statement with \
         tcp_user_timeout=5000 failed after {guarded_time:.2?} ({guarded_err}); the one without \
         keepalives was still waiting after {plain_waited:.2?} and completed {plain_resumed:.2?} \
         after restore(); promote took {promote_time:.2?}"
    );

    drop(plain);
    drop(fresh);
    drop(promoted);
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(
        !netns_exists(&ns_name),
        "namespace {ns_name} left after drop"
    );
    assert!(!link_exists(&veth), "veth {veth} left after drop");
    assert!(!dir.exists(), "{} left after drop", dir.display());
}

/// Helper process for `netns_reaper_removes_namespaces_after_sigkill`: starts a cluster
/// whose primary and standby both run in namespaces, reports `<cluster dir> <namespace>
/// <veth> <namespace> <veth>`, cuts one link and waits to be killed.
#[test]
#[ignore = "helper process run by netns_reaper_removes_namespaces_after_sigkill"]
fn netns_reaper_child() {
    reaper::child(|| {
        let cluster = PgCluster::start_with_netns(1, &[0, 1]);
        let mut line = cluster.dir().display().to_string();
        for port in cluster.default_ports() {
            let ns = cluster.netns(port);
            line.push_str(&format!(" {} {}", ns.name(), ns.host_interface()));
        }
        // The standby replicates from the primary across two namespaces.
        cluster.query_one(cluster.primary_port(), "CREATE TABLE r (v int)");
        cluster.query_one(cluster.primary_port(), "INSERT INTO r VALUES (5)");
        cluster.wait_for_replay();
        assert_eq!(
            cluster.query_one(cluster.standby_ports()[0], "SELECT sum(v) FROM r"),
            "5"
        );
        cluster.netns(cluster.primary_port()).cut();
        (cluster, line)
    });
}

#[test]
fn netns_reaper_removes_namespaces_after_sigkill() {
    reaper::kill_child_and_wait(
        "netns_smoke::netns_reaper_child",
        Duration::from_secs(60),
        |fields| {
            assert_eq!(fields.len(), 5, "report {fields:?}");
            let cluster_dir = PathBuf::from(fields[0]);
            let names: Vec<(String, String)> = vec![
                (fields[1].to_owned(), fields[2].to_owned()),
                (fields[3].to_owned(), fields[4].to_owned()),
            ];
            for (ns, veth) in &names {
                assert!(netns_exists(ns), "namespace {ns} missing");
                assert!(link_exists(veth), "veth {veth} missing");
            }
            move || {
                let mut left = reaper::dir_and_ports_left(&cluster_dir, &[]);
                for (ns, veth) in &names {
                    if netns_exists(ns) {
                        left.push(format!("namespace {ns}"));
                    }
                    if link_exists(veth) {
                        left.push(format!("veth {veth}"));
                    }
                }
                left
            }
        },
    );
}
