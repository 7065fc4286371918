//! Finding the primary: host order, dead and blackholed hosts, errors, target_session_attrs.

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::ConnectionError;
use diesel_multidb::HostFailure;

use crate::multihost::*;
use diesel_multidb_testkit::{dead_port, Blackhole, PgCluster, APP_PASSWORD};

#[test]
fn the_primary_is_found_wherever_it_is_listed() {
    let cluster = PgCluster::shared();
    let primary = cluster.primary_port();
    let standbys = cluster.standby_ports();
    let orders = [
        vec![primary, standbys[0], standbys[1]],
        vec![standbys[0], standbys[1], primary],
        vec![standbys[1], primary, standbys[0]],
    ];
    for ports in orders {
        let mut conn = connect(&url(&ports, "postgres", ""));
        assert_eq!(
            conn.primary_host().expect("a primary is known").port(),
            primary,
            "order {ports:?}"
        );
        let port = write_port(&mut conn);
        assert_eq!(port as u16, primary);
    }
}

#[test]
fn a_dead_and_a_blackholed_host_do_not_stop_or_delay_establish() {
    let cluster = PgCluster::shared();
    let blackhole = Blackhole::start();
    let dead = dead_port();
    let mut ports = vec![dead, blackhole.port()];
    ports.extend(all_ports(cluster));
    // The blackholed host would hold a probe for 30 s: establish must not wait for it.
    let mut conn = connect(&url(&ports, "postgres", "connect_timeout=30"));
    assert_eq!(
        conn.primary_host().expect("a primary is known").port(),
        cluster.primary_port()
    );

    let status = conn.topology();
    let of = |port: u16| status.iter().find(|s| s.host.port() == port).unwrap();
    assert!(
        of(blackhole.port()).probing,
        "establish returned only after the blackholed host's probe ended: {status:?}"
    );
    assert_eq!(of(dead).failure, Some(HostFailure::Refused), "{status:?}");

    // Reads still reach a standby, never the blackholed or the dead host.
    ready(&mut conn);
    let server = who(&mut conn);
    assert_on_standby(cluster, &conn, server.port);
}

#[test]
fn no_usable_host_lists_every_host_and_why() {
    let blackhole = Blackhole::start();
    let (dead1, dead2) = (dead_port(), dead_port());
    let url = format!(
        "postgres://postgres:TopSecret@127.0.0.1:{dead1},127.0.0.1:{},127.0.0.1:{dead2}/postgres?connect_timeout=2",
        blackhole.port()
    );
    let error = match Conn::establish(&url) {
        Ok(_) => panic!("established with no server up"),
        Err(ConnectionError::BadConnection(message)) => message,
        Err(other) => panic!("unexpected error kind: {other:?}"),
    };
    assert!(error.contains("target_session_attrs=read-write"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{dead1} (connection refused)")),
        "{error}"
    );
    assert!(
        error.contains(&format!("127.0.0.1:{dead2} (connection refused)")),
        "{error}"
    );
    assert!(
        error.contains(&format!("127.0.0.1:{} (timed out)", blackhole.port())),
        "{error}"
    );
    assert!(!error.contains("TopSecret"), "the password leaked: {error}");
}

#[test]
fn only_standbys_or_bad_credentials_are_reported_as_such() {
    let cluster = PgCluster::shared();
    let standbys = cluster.standby_ports();
    let error = Conn::establish(&url(&standbys, "postgres", ""))
        .expect_err("no primary among the standbys")
        .to_string();
    for port in &standbys {
        assert!(
            error.contains(&format!("127.0.0.1:{port} (in recovery)")),
            "{error}"
        );
    }

    let wrong = format!(
        "postgres://app:not-{APP_PASSWORD}@127.0.0.1:{}/postgres",
        cluster.primary_port()
    );
    let error = Conn::establish(&wrong)
        .expect_err("wrong password")
        .to_string();
    assert!(error.contains("(authentication failed)"), "{error}");
    assert!(
        !error.contains(&format!("not-{APP_PASSWORD}")),
        "the password leaked: {error}"
    );

    let right = format!(
        "postgres://app:{APP_PASSWORD}@127.0.0.1:{},127.0.0.1:{}/postgres",
        standbys[0],
        cluster.primary_port()
    );
    let mut conn = connect_ready(&right);
    assert_eq!(
        conn.primary_host().expect("a primary is known").port(),
        cluster.primary_port()
    );
    let server = who(&mut conn);
    assert!(server.in_recovery);
}

#[test]
fn an_invalid_url_is_a_clear_error_without_the_password() {
    let error = Conn::establish("postgres://u:Hunter2@h1:5432,h2/db?target_session_attrs=maybe")
        .expect_err("an invalid URL");
    match &error {
        ConnectionError::InvalidConnectionUrl(message) => {
            assert!(message.contains("target_session_attrs"), "{message}");
            assert!(message.contains("maybe"), "{message}");
            assert!(!message.contains("Hunter2"), "{message}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[test]
fn target_session_attrs_choose_the_session_server() {
    let cluster = PgCluster::shared();
    let primary = cluster.primary_port();
    let standbys = cluster.standby_ports();
    let ports = all_ports(cluster);

    for (attrs, want_standby) in [
        ("read-write", false),
        ("primary", false),
        ("standby", true),
        ("read-only", true),
        ("prefer-standby", true),
    ] {
        let conn = connect(&url(
            &ports,
            "postgres",
            &format!("target_session_attrs={attrs}"),
        ));
        let host = conn.primary_host().expect("a primary is known").port();
        if want_standby {
            assert!(standbys.contains(&host), "{attrs}: session server {host}");
        } else {
            assert_eq!(host, primary, "{attrs}");
        }
    }
    // prefer-standby falls back to the primary when no standby is reachable.
    let conn = connect(&url(
        &[dead_port(), primary],
        "postgres",
        "target_session_attrs=prefer-standby",
    ));
    assert_eq!(
        conn.primary_host().expect("a primary is known").port(),
        primary
    );
    // any: whoever answers.
    let conn = connect(&url(&ports, "postgres", "target_session_attrs=any"));
    assert!(ports.contains(&conn.primary_host().expect("a primary is known").port()));
}

#[test]
fn a_pool_of_20_shares_one_discovery() {
    let (cluster, db) = fresh_db("pool20");
    let manager = ConnectionManager::<Conn>::new(url(&all_ports(cluster), &db, ""));
    let pool = Pool::builder()
        .max_size(20)
        .min_idle(Some(20))
        .build(manager)
        .unwrap();
    let mut conns: Vec<_> = (0..20).map(|_| pool.get().unwrap()).collect();
    for conn in &mut conns {
        assert_eq!(
            conn.primary_host().expect("a primary is known").port(),
            cluster.primary_port()
        );
    }
    let active = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND backend_type = 'client backend'"
    );
    let count = |port: u16| -> i64 { query_in(port, "postgres", &active).parse().unwrap() };
    // Each pooled connection holds one primary session; the process adds one monitor
    // session per host.
    let on_primary = count(cluster.primary_port());
    assert!(
        (20..=21).contains(&on_primary),
        "{on_primary} sessions on the primary for a pool of 20"
    );
    // Each pooled connection opens one standby session in the background, spread evenly.
    let standbys = cluster.standby_ports();
    let mut on_standbys = Vec::new();
    for _ in 0..100 {
        on_standbys = standbys.iter().map(|&p| count(p)).collect::<Vec<_>>();
        if on_standbys.iter().sum::<i64>() >= 20 + standbys.len() as i64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let total: i64 = on_standbys.iter().sum();
    assert_eq!(
        total,
        20 + standbys.len() as i64,
        "{on_standbys:?} sessions on the standbys"
    );
    let (min, max) = (
        on_standbys.iter().min().unwrap(),
        on_standbys.iter().max().unwrap(),
    );
    assert!(
        max - min <= 1,
        "uneven spread over the standbys: {on_standbys:?}"
    );

    // Each standby counts the sessions it ever saw for this database: the shared monitor
    // probes it over one session, whatever the pool size; no per-connection role queries.
    let sessions = format!("SELECT sessions FROM pg_stat_database WHERE datname = '{db}'");
    for &standby in &standbys {
        let seen: i64 = query_in(standby, "postgres", &sessions).parse().unwrap();
        assert!(
            seen <= 12,
            "standby {standby} saw {seen} sessions for a pool of 20"
        );
    }
}
