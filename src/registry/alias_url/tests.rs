use super::*;

fn pg(url: &str) -> ConnectionString {
    match parse(url).unwrap().connect {
        Connect::MultiHost(cs) => *cs,
        Connect::Sqlite(_) => panic!("postgres expected"),
    }
}

fn sqlite_path(url: &str) -> String {
    match parse(url).unwrap().connect {
        Connect::Sqlite(p) => p,
        Connect::MultiHost(_) => panic!("sqlite expected"),
    }
}

#[test]
fn postgres_uris() {
    for u in [
        "postgres://u:p@h:5432/db",
        "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgres://[::1]:5432/db",
        "postgres:///db",
        "  postgres://u@h/db  ",
    ] {
        assert_eq!(parse(u).unwrap().kind, BackendKind::Postgres, "{u}");
    }
    assert_eq!(pg("postgres://h1,h2:5433/db").hosts().len(), 2);
}

#[test]
fn libpq_key_value_form_is_postgres() {
    let cs = pg("host=db1,db2 port=5432 dbname=app user=app password='s3 cret'");
    assert_eq!(cs.hosts().len(), 2);
    assert_eq!(cs.dbname(), Some("app"));
    let t = parse("dbname = app host=h password=s3cret").unwrap();
    assert_eq!(t.kind, BackendKind::Postgres);
    assert_eq!(t.url.shown(), "postgres://:********@h:5432/app");
}

#[test]
fn sqlite_urls() {
    assert_eq!(sqlite_path("sqlite://data/app.sqlite3"), "data/app.sqlite3");
    assert_eq!(sqlite_path("sqlite:///tmp/a.db"), "/tmp/a.db");
    assert_eq!(sqlite_path("sqlite::memory:"), ":memory:");
    assert_eq!(sqlite_path("sqlite://:memory:"), ":memory:");
    assert_eq!(sqlite_path("sqlite://./a@b.db"), "./a@b.db");
    assert_eq!(sqlite_path("file:a.db?mode=rwc"), "file:a.db?mode=rwc");
    assert_eq!(
        parse("sqlite://data/app.sqlite3").unwrap().url.shown(),
        "sqlite://data/app.sqlite3"
    );
    // Parameters SQLite does not read itself are an extension's: they are hidden.
    assert_eq!(
        parse("file:a.db?mode=ro&key=s3cretkey")
            .unwrap()
            .url
            .shown(),
        "file:a.db?mode=ro&********"
    );
}

#[test]
fn shown_urls_hide_password_and_sslpassword() {
    let t = parse("postgres://app:S3cretPw!@h1,h2:5433/db?sslpassword=K3yPass&sslmode=require")
        .unwrap();
    let shown = t.url.shown().to_owned();
    assert_eq!(
        shown,
        "postgres://app:********@h1:5432,h2:5433/db?sslpassword=********&sslmode=require"
    );
    let dbg = format!("{t:?}");
    assert!(
        !dbg.contains("S3cretPw") && !dbg.contains("K3yPass"),
        "{dbg}"
    );
    // `pass%77ord` is `password` once decoded.
    let t = parse("postgres://u@h/d?pass%77ord=S3cretPw").unwrap();
    assert_eq!(t.url.shown(), "postgres://u:********@h:5432/d");
    // A space before `@` is ignored, as libpq 18 does.
    let t = parse("postgres://u:S3cretPw @h/d").unwrap();
    assert_eq!(t.url.shown(), "postgres://u:********@h:5432/d");
    let t = parse("host=h sslpassword=K3yPass").unwrap();
    assert!(!t.url.shown().contains("K3yPass"), "{}", t.url.shown());
}

/// The cases: text that is not a URL is described, never quoted.
#[test]
fn broken_urls_are_described_never_quoted() {
    for (url, reason) in [
        (
            "app:S3cretPw!@127.0.0.1:5432/app",
            "not a database URL (no scheme;",
        ),
        (
            "postgres:/app:S3cretPw!@127.0.0.1:5432/app",
            "not a database URL (the scheme must be followed by `//`;",
        ),
        (
            " app:S3cretPw!@127.0.0.1:5432/app",
            "not a database URL (no scheme;",
        ),
        (
            "oracle://u:S3cretPw!@h/db",
            "unsupported URL scheme `oracle`",
        ),
        (
            "sqlite://u:S3cretPw!@h/db",
            "a SQLite URL has no user name, password or host",
        ),
        ("postgres://u:S3cretPw!@h:54x2/db", "invalid PostgreSQL URL"),
        (
            "postgres://u@h/d?password=S3cr&3tPw",
            "invalid PostgreSQL URL",
        ),
        (
            "host=h password=S3cretPw! bogus=1",
            "invalid PostgreSQL key/value connection string",
        ),
        (
            "host=h password='S3cretPw!",
            "invalid PostgreSQL key/value connection string",
        ),
        ("", "the URL is empty"),
        ("sqlite://", "the SQLite URL has no path"),
    ] {
        let e = parse(url).unwrap_err();
        assert!(e.reason.starts_with(reason), "{url}: {}", e.reason);
        let all = format!(
            "{} {:?} {}",
            e.reason,
            e,
            e.source.as_ref().map(|s| s.to_string()).unwrap_or_default()
        );
        for secret in ["S3cretPw", "S3cr", "3tPw"] {
            assert!(!all.contains(secret), "{url}: {all}");
        }
        assert!(!shown(url).shown().contains("S3cr"));
    }
    // The grammar's error is kept, typed.
    let e = parse("postgres://u:p@h:54x2/db").unwrap_err();
    assert!(matches!(
        e.source,
        Some(ConnectionStringError::InvalidPort { .. })
    ));
}

/// An unknown parameter right after a password is not shown (it may be the password's rest),
/// and the message says why instead of quoting `********`.
#[test]
fn an_unknown_parameter_after_a_password_is_explained() {
    let e = parse("host=h password=S3cret Pw=1").unwrap_err();
    let text = e.source.unwrap().to_string();
    assert!(
        text.starts_with("unknown connection parameter at byte 23, just after a password"),
        "{text}"
    );
    assert!(!text.contains("********") && !text.contains("Pw"), "{text}");
    let e = parse("postgres://h/d?sslpassword=S3cr&3tPw").unwrap_err();
    let text = e.source.unwrap().to_string();
    assert!(text.contains("just after a password"), "{text}");
    assert!(!text.contains("3tPw"), "{text}");
}

#[test]
fn mirrors_prefer_standbys_unless_told_otherwise() {
    let t = parse("postgres://h/d").unwrap().for_mirror();
    let Connect::MultiHost(cs) = &t.connect else {
        panic!()
    };
    assert_eq!(
        cs.target_session_attrs(),
        crate::TargetSessionAttrs::PreferStandby
    );
    let t = parse("postgres://h/d?target_session_attrs=read-write")
        .unwrap()
        .for_mirror();
    let Connect::MultiHost(cs) = &t.connect else {
        panic!()
    };
    assert_eq!(
        cs.target_session_attrs(),
        crate::TargetSessionAttrs::ReadWrite
    );
}
