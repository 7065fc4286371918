//! Finding the primary: host order, dead and blackholed hosts, errors, target_session_attrs.

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::ConnectionError;
use diesel_multidb::HostFailure;

use crate::cluster::{dead_port, Blackhole, PgCluster, APP_PASSWORD};
use crate::multihost::*;

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
        assert_eq!(conn.primary_host().port(), primary, "order {ports:?}");
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
    assert_eq!(conn.primary_host().port(), cluster.primary_port());

    let status = conn.topology();
    let of = |port: u16| status.iter().find(|s| s.host.port() == port).unwrap();
    assert!(
        of(blackhole.port()).probing,
        "establish returned only after the blackholed host's probe ended: {status:?}"
    );
    assert_eq!(of(dead).failure, Some(HostFailure::Refused), "{status:?}");

    // Reads still reach a standby, never the blackholed or the dead host.
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
    let mut conn = connect(&right);
    assert_eq!(conn.primary_host().port(), cluster.primary_port());
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
        let host = conn.primary_host().port();
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
    assert_eq!(conn.primary_host().port(), primary);
    // any: whoever answers.
    let conn = connect(&url(&ports, "postgres", "target_session_attrs=any"));
    assert!(ports.contains(&conn.primary_host().port()));
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
        assert_eq!(conn.primary_host().port(), cluster.primary_port());
    }
    let active = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND backend_type = 'client backend'"
    );
    let on_primary: i64 = query_in(cluster.primary_port(), "postgres", &active)
        .parse()
        .unwrap();
    assert_eq!(
        on_primary, 20,
        "each pooled connection holds one primary session"
    );

    // Each standby counts the sessions it ever saw for this database: one shared discovery
    // probes it once; twenty separate discoveries would probe it twenty times.
    let sessions = format!("SELECT sessions FROM pg_stat_database WHERE datname = '{db}'");
    for &standby in &cluster.standby_ports() {
        let mut seen = 0;
        for _ in 0..50 {
            seen = query_in(standby, "postgres", &sessions)
                .parse::<i64>()
                .unwrap_or(0);
            if seen >= 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(seen >= 1, "standby {standby} was never probed");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let seen: i64 = query_in(standby, "postgres", &sessions).parse().unwrap();
        assert!(
            seen <= 2,
            "standby {standby} was probed {seen} times for a pool of 20"
        );
    }
}
