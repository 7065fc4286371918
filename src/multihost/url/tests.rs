use super::*;

type E = ConnectionStringError;

fn parse(s: &str) -> ConnectionString {
    match s.parse::<ConnectionString>() {
        Ok(cs) => cs,
        Err(e) => panic!("{s:?} did not parse: {e}"),
    }
}

fn err(s: &str) -> E {
    match s.parse::<ConnectionString>() {
        Ok(cs) => panic!("{s:?} parsed: {cs:?}"),
        Err(e) => e,
    }
}

fn hosts(cs: &ConnectionString) -> Vec<(&str, u16)> {
    cs.hosts().iter().map(|h| (h.host(), h.port())).collect()
}

fn params(cs: &ConnectionString) -> Vec<(&str, &str)> {
    cs.params().collect()
}

#[test]
fn both_schemes() {
    for scheme in ["postgres", "postgresql"] {
        let cs = parse(&format!("{scheme}://u:pw@h1:5433/db"));
        assert_eq!(hosts(&cs), [("h1", 5433)]);
        assert_eq!(cs.user(), Some("u"));
        assert!(cs.has_password());
        assert_eq!(cs.dbname(), Some("db"));
        assert_eq!(cs.password.as_deref(), Some("pw"));
    }
}

#[test]
fn unknown_scheme() {
    assert_eq!(
        err("oracle://u:pw@h/db"),
        E::UnknownScheme {
            scheme: "oracle".into()
        }
    );
    assert_eq!(
        err("postgre://"),
        E::UnknownScheme {
            scheme: "postgre".into()
        }
    );
    // The scheme is case-sensitive in libpq.
    assert_eq!(
        err("POSTGRES://h"),
        E::UnknownScheme {
            scheme: "POSTGRES".into()
        }
    );
    assert_eq!(
        err("oracle://u:pw@h/db").to_string(),
        "unknown scheme \"oracle://\" at byte 0 (expected \"postgres://\", \"postgresql://\" or \"mysql://\")"
    );
    // Not a scheme: read as key/value, where it lacks its "=".
    assert!(matches!(
        err(" postgres://h"),
        E::MissingEquals { position: 1, .. }
    ));
}

#[test]
fn user_and_password_percent_escapes() {
    let cs = parse("postgresql://us%40er:p%40ss%3Aw%2Fo%25rd@h/d%62");
    assert_eq!(cs.user(), Some("us@er"));
    assert_eq!(cs.password.as_deref(), Some("p@ss:w/o%rd"));
    assert_eq!(cs.dbname(), Some("db"));
    // A password may contain an unencoded ':' (only the first ':' ends the user).
    let cs = parse("postgresql://u:a:b@h");
    assert_eq!(cs.password.as_deref(), Some("a:b"));
    // Empty user or password are not stored (libpq).
    let cs = parse("postgresql://:@h");
    assert_eq!((cs.user(), cs.has_password()), (None, false));
    let cs = parse("postgres://@host");
    assert_eq!(hosts(&cs), [("host", 5432)]);
    assert_eq!(cs.user(), None);
    // Non-ASCII, percent-encoded.
    let cs = parse("postgresql://J%C3%BCrgen@h");
    assert_eq!(cs.user(), Some("Jürgen"));
}

#[test]
fn ipv6_hosts() {
    let cs = parse("postgresql://[::1]:12345/db");
    assert_eq!(hosts(&cs), [("::1", 12345)]);
    let cs = parse("postgresql://[2001:db8::1234]/");
    assert_eq!(hosts(&cs), [("2001:db8::1234", 5432)]);
    assert_eq!(cs.dbname(), None);
    let cs = parse("postgresql://[::1]");
    assert_eq!(hosts(&cs), [("::1", 5432)]);
    let cs = parse("postgresql://[::1]?sslmode=disable");
    assert_eq!(hosts(&cs), [("::1", 5432)]);
    let cs = parse("postgresql://h1,[::1]:5434,[fe80::1%25eth0]");
    assert_eq!(
        hosts(&cs),
        [("h1", 5432), ("::1", 5434), ("fe80::1%eth0", 5432)]
    );
    assert_eq!(cs.hosts()[1].to_string(), "[::1]:5434");
}

#[test]
fn per_host_ports_and_defaults() {
    let cs = parse("postgres://h1:5432,h2,[::1]:5434/db");
    assert_eq!(hosts(&cs), [("h1", 5432), ("h2", 5432), ("::1", 5434)]);
    let cs = parse("postgres://h1,h2:5433/db");
    assert_eq!(hosts(&cs), [("h1", 5432), ("h2", 5433)]);
    let cs = parse("postgres://host:/");
    assert_eq!(hosts(&cs), [("host", 5432)]);
    // No host at all: one default host.
    let cs = parse("postgres://");
    assert_eq!(hosts(&cs), [("", 5432)]);
    assert!(cs.hosts()[0].is_default());
    assert_eq!(cs.hosts()[0].to_string(), "<default>:5432");
    let cs = parse("postgres://:12345/");
    assert_eq!(hosts(&cs), [("", 12345)]);
    // Empty entries in a host list are libpq's default host.
    let cs = parse("postgres://a,,b:5433");
    assert_eq!(hosts(&cs), [("a", 5432), ("", 5432), ("b", 5433)]);
    let cs = parse("host=a,,b");
    assert_eq!(hosts(&cs), [("a", 5432), ("", 5432), ("b", 5432)]);
    assert!(cs.hosts()[1].is_default());
    assert!(!cs.hosts()[0].is_default());
    // Percent-encoded commas separate hosts too, as in libpq (it decodes, then splits).
    let cs = parse("postgres://a%2Cb/db");
    assert_eq!(hosts(&cs), [("a", 5432), ("b", 5432)]);
}

#[test]
fn query_hosts_and_ports() {
    let cs = parse("postgresql:///db?host=a,b&port=1,2");
    assert_eq!(hosts(&cs), [("a", 1), ("b", 2)]);
    let cs = parse("postgresql://host/db?user=uri-user&port=12345");
    assert_eq!(hosts(&cs), [("host", 12345)]);
    assert_eq!(cs.user(), Some("uri-user"));
    // Query values replace the authority's.
    let cs = parse("postgresql://x:1/db?host=a,b&port=7");
    assert_eq!(hosts(&cs), [("a", 7), ("b", 7)]);
    let cs = parse("postgresql://host/db?u%73er=someotheruser&dbname=other");
    assert_eq!(cs.user(), Some("someotheruser"));
    assert_eq!(cs.dbname(), Some("other"));
    // As in libpq: "a,b" leaves the port list "," (two empty ports), which cannot be
    // matched to the single host of ?host=c.
    assert_eq!(
        err("postgresql://a,b/db?host=c"),
        E::PortCountMismatch { ports: 2, hosts: 1 }
    );
    // `ssl=true` (JDBC) means sslmode=require; `ssl` alone is unknown.
    let cs = parse("postgresql://h?ssl=true");
    assert_eq!(params(&cs), [("sslmode", "require")]);
    assert!(matches!(
        err("postgresql://h?ssl=false"),
        E::UnknownParameter { .. }
    ));
    // A trailing '?' or '&' is fine.
    parse("postgresql://host?");
    parse("postgresql://host?sslmode=disable&");
}

#[test]
fn unix_socket_directories() {
    let cs = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
    assert_eq!(hosts(&cs), [("/var/run/postgresql", 5432)]);
    assert!(cs.hosts()[0].is_unix_socket());
    assert_eq!(cs.dbname(), Some("db"));
    let cs = parse("postgresql:///db?host=/var/run/postgresql");
    assert_eq!(hosts(&cs), [("/var/run/postgresql", 5432)]);
    assert!(cs.hosts()[0].is_unix_socket());
    let cs = parse("postgres://otheruser@:12345/db?host=/path/to/socket");
    assert_eq!(hosts(&cs), [("/path/to/socket", 12345)]);
    assert_eq!(cs.user(), Some("otheruser"));
    let cs = parse("postgres://otheruser@?host=/no/such/directory");
    assert_eq!(hosts(&cs), [("/no/such/directory", 5432)]);
    let cs = parse("host=@abstract");
    assert!(cs.hosts()[0].is_unix_socket());
    let cs = parse("host=h");
    assert!(!cs.hosts()[0].is_unix_socket());
}

#[test]
fn libpq_uri_regress_cases() {
    // From PostgreSQL's src/interfaces/libpq/t/001_uri.pl.
    let cs = parse("postgresql://uri-user:secret@host:12345/db");
    assert_eq!(
        (cs.user(), cs.dbname(), hosts(&cs)),
        (Some("uri-user"), Some("db"), vec![("host", 12345)])
    );
    let cs = parse("postgresql://uri-user@");
    assert_eq!(
        (cs.user(), hosts(&cs)),
        (Some("uri-user"), vec![("", 5432)])
    );
    let cs = parse("postgresql://host:12345");
    assert_eq!(hosts(&cs), [("host", 12345)]);
    let cs = parse("postgresql://?hostaddr=127.0.0.1");
    assert_eq!(cs.hosts()[0].hostaddr(), Some("127.0.0.1"));
    let cs = parse("postgresql://example.com?hostaddr=63.1.2.4");
    assert_eq!(cs.hosts()[0].host(), "example.com");
    assert_eq!(cs.hosts()[0].hostaddr(), Some("63.1.2.4"));
    let cs = parse("postgresql://%68ost/");
    assert_eq!(hosts(&cs), [("host", 5432)]);
    let cs = parse("postgres:///");
    assert_eq!((hosts(&cs), cs.dbname()), (vec![("", 5432)], None));
    let cs = parse("postgres:///db");
    assert_eq!(cs.dbname(), Some("db"));
    let cs = parse("postgres://uri-user@/db");
    assert_eq!((cs.user(), cs.dbname()), (Some("uri-user"), Some("db")));
    let cs = parse("postgresql://[200z:db8::1234]/");
    assert_eq!(hosts(&cs), [("200z:db8::1234", 5432)]);
    assert!(
        matches!(err("postgresql://host/db?u%7aer=x"), E::UnknownParameter { name, .. } if name == "uzer")
    );
    assert!(
        matches!(err("postgresql://host?uzer="), E::UnknownParameter { name, .. } if name == "uzer")
    );
    assert_eq!(
        err("postgres://[::1]z"),
        E::UnexpectedCharacter {
            character: 'z',
            position: 16
        }
    );
    assert_eq!(
        err("postgresql://host?zzz"),
        E::MissingEquals {
            name: "zzz".into(),
            position: 18
        }
    );
    assert_eq!(
        err("postgresql://host?value1&value2"),
        E::MissingEquals {
            name: "value1".into(),
            position: 18
        }
    );
    assert_eq!(
        err("postgresql://host?key=key=value"),
        E::ExtraEquals {
            name: "key".into(),
            position: 25
        }
    );
    assert_eq!(
        err("postgres://host?dbname=%XXfoo"),
        E::InvalidPercentEncoding {
            token: "%XX".into(),
            position: 23
        }
    );
}

#[test]
fn spaces_in_uri_parts_libpq_18() {
    let cs = parse("postgresql://host?  user = uri-user & port  = 12345 ");
    assert_eq!(cs.user(), Some("uri-user"));
    assert_eq!(hosts(&cs), [("host", 12345)]);
    assert_eq!(
        err("postgresql://host?  user user  =  uri  & port = 12345 12 "),
        E::UnexpectedSpace { position: 24 }
    );
    assert_eq!(
        err("postgresql://host?  user  =  uri-user  & port = 12345 12 "),
        E::UnexpectedSpace { position: 53 }
    );
    assert!(err("postgresql://h?application_name=a b")
        .to_string()
        .contains("unexpected space at byte 33"));
    let cs = parse("postgresql://h?application_name=a%20b");
    assert_eq!(params(&cs), [("application_name", "a b")]);
}

#[test]
fn percent_encoding_errors() {
    let e = err("postgresql://h/db?dbname=%zz");
    assert_eq!(
        e,
        E::InvalidPercentEncoding {
            token: "%zz".into(),
            position: 25
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid percent-encoded token \"%zz\" at byte 25"
    );
    assert_eq!(
        err("postgresql://%zz"),
        E::InvalidPercentEncoding {
            token: "%zz".into(),
            position: 13
        }
    );
    assert_eq!(
        err("postgresql://%1"),
        E::InvalidPercentEncoding {
            token: "%1".into(),
            position: 13
        }
    );
    assert_eq!(
        err("postgresql://%"),
        E::InvalidPercentEncoding {
            token: "%".into(),
            position: 13
        }
    );
    assert_eq!(
        err("postgresql://h/db?application_name=x%4"),
        E::InvalidPercentEncoding {
            token: "%4".into(),
            position: 36
        }
    );
    assert_eq!(
        err("postgresql://h/%4é"),
        E::InvalidPercentEncoding {
            token: "%4é".into(),
            position: 15
        }
    );
    let e = err("postgresql://a%00b");
    assert_eq!(e, E::PercentEncodedNul { position: 14 });
    assert_eq!(
        e.to_string(),
        "forbidden value \"%00\" in percent-encoded value at byte 14"
    );
    assert_eq!(err("postgresql://h/%ff"), E::InvalidUtf8 { position: 15 });
    // Keys are decoded too.
    assert!(matches!(
        err("postgresql://h?%zz=1"),
        E::InvalidPercentEncoding { position: 15, .. }
    ));
    // And ports.
    assert!(matches!(
        err("postgresql://h:%zz"),
        E::InvalidPercentEncoding { position: 15, .. }
    ));
}

#[test]
fn ipv6_errors() {
    let e = err("postgres://[::1");
    assert_eq!(e, E::UnterminatedIpv6 { position: 11 });
    assert!(e
        .to_string()
        .starts_with("end of string reached when looking for matching \"]\""));
    let e = err("postgres://[]");
    assert_eq!(e, E::EmptyIpv6 { position: 11 });
    assert_eq!(e.to_string(), "empty IPv6 host address \"[]\" at byte 11");
    assert_eq!(err("postgres://h1,[]:5432"), E::EmptyIpv6 { position: 14 });
}

#[test]
fn unknown_parameters() {
    let e = err("postgresql://h/db?foo=1");
    assert_eq!(
        e,
        E::UnknownParameter {
            name: "foo".into(),
            position: 18
        }
    );
    assert_eq!(
        e.to_string(),
        "unknown connection parameter \"foo\" at byte 18"
    );
    assert_eq!(
        err("host=h foo=1"),
        E::UnknownParameter {
            name: "foo".into(),
            position: 7
        }
    );
    assert_eq!(
        err("=1"),
        E::UnknownParameter {
            name: "".into(),
            position: 0
        }
    );
    // libpq 18 options not in our list are rejected.
    assert!(matches!(err("servicefile=x"), E::UnknownParameter { .. }));
    // Every listed libpq parameter and every crate parameter is accepted.
    for name in LIBPQ_PARAMS.iter().chain(CRATE_PARAMS) {
        let value = match *name {
            "target_session_attrs" => "any",
            "load_balance_hosts" => "random",
            "connect_timeout" | "port" => "5",
            "replica_reads" => "off",
            "replica_retry_interval"
            | "failover_timeout"
            | "monitor_interval"
            | "max_replica_lag" => "5s",
            "read_your_writes" => "off",
            "split_brain" => "highest-timeline",
            _ => "x",
        };
        parse(&format!("{name}={value}"));
        parse(&format!("postgresql://?{name}={value}"));
    }
}

#[test]
fn params_kept_in_order() {
    let cs = parse(
        "postgresql://h/db?sslmode=require&application_name=app&connect_timeout=5\
         &replica_reads=off&options=-c%20search_path%3Dx&keepalives=1",
    );
    assert_eq!(
        params(&cs),
        [
            ("sslmode", "require"),
            ("application_name", "app"),
            ("options", "-c search_path=x"),
            ("keepalives", "1")
        ]
    );
    // The last value wins, at the place of its last occurrence (this keeps libpq's
    // meaning for requiressl, an alias of sslmode).
    let cs = parse("requiressl=1 sslmode=disable requiressl=0 application_name=a");
    assert_eq!(
        params(&cs),
        [
            ("sslmode", "disable"),
            ("requiressl", "0"),
            ("application_name", "a")
        ]
    );
    let cs = parse("dbname=a dbname=b user=x user=y");
    assert_eq!((cs.dbname(), cs.user()), (Some("b"), Some("y")));
}

#[test]
fn key_value_form() {
    let cs = parse("host=a,b port=5432,5433 dbname=app user=app password='it\\'s'");
    assert_eq!(hosts(&cs), [("a", 5432), ("b", 5433)]);
    assert_eq!(cs.dbname(), Some("app"));
    assert_eq!(cs.user(), Some("app"));
    assert_eq!(cs.password.as_deref(), Some("it's"));
    // Whitespace around '=' and between pairs.
    let cs = parse("  host = h \t port\n=\r5433   dbname =  'my db'  ");
    assert_eq!(hosts(&cs), [("h", 5433)]);
    assert_eq!(cs.dbname(), Some("my db"));
    // Backslash escapes, quoted and unquoted.
    let cs = parse(r"application_name='a\\b\'c' options=x\ y\\z");
    assert_eq!(
        params(&cs),
        [("application_name", r"a\b'c"), ("options", r"x y\z")]
    );
    // An empty value is ''; a quote inside an unquoted value is literal.
    let cs = parse("application_name='' options=it's");
    assert_eq!(params(&cs), [("application_name", ""), ("options", "it's")]);
    // As in libpq: nothing needs to separate a closing quote from the next name, and a
    // value may be empty at the very end.
    let cs = parse("dbname='a'user=b application_name=");
    assert_eq!((cs.dbname(), cs.user()), (Some("a"), Some("b")));
    assert_eq!(params(&cs), [("application_name", "")]);
    // As in libpq: after "host=" the next word is the value.
    let cs = parse("dbname= user=x");
    assert_eq!(cs.dbname(), Some("user=x"));
    // The empty string means all defaults.
    let cs = parse("");
    assert_eq!(hosts(&cs), [("", 5432)]);
    parse("   ");
    // IPv6 and socket directories need no brackets or encoding here.
    let cs = parse("host=::1,/tmp port=5434");
    assert_eq!(hosts(&cs), [("::1", 5434), ("/tmp", 5434)]);
}

#[test]
fn key_value_errors() {
    let e = err("host=h x");
    assert_eq!(
        e,
        E::MissingEquals {
            name: "x".into(),
            position: 7
        }
    );
    assert_eq!(e.to_string(), "missing \"=\" after \"x\" at byte 7");
    assert_eq!(
        err("host"),
        E::MissingEquals {
            name: "host".into(),
            position: 0
        }
    );
    assert_eq!(
        err("host x=1"),
        E::MissingEquals {
            name: "host".into(),
            position: 0
        }
    );
    let e = err("host=h dbname='abc");
    assert_eq!(
        e,
        E::UnterminatedQuote {
            name: "dbname".into(),
            position: 14
        }
    );
    assert_eq!(
        e.to_string(),
        "unterminated quoted value for \"dbname\" starting at byte 14"
    );
    assert!(matches!(err(r"dbname='abc\'"), E::UnterminatedQuote { .. }));
    // libpq: '' is not an escaped quote; the value ends and "'s'" is a name without "=".
    // The name follows the password, so it is redacted.
    let e = err("host=a,b port=5432,5433 dbname=app user=app password='it''s'");
    assert_eq!(
        e,
        E::MissingEquals {
            name: REDACTED.into(),
            position: 57
        }
    );
    assert_eq!(
        err("dbname='it''s'"),
        E::MissingEquals {
            name: "'s'".into(),
            position: 11
        }
    );
}

#[test]
fn port_rules() {
    let cs = parse("host=a,b,c port=5433");
    assert_eq!(hosts(&cs), [("a", 5433), ("b", 5433), ("c", 5433)]);
    let cs = parse("host=a,b,c port=1,,3");
    assert_eq!(hosts(&cs), [("a", 1), ("b", 5432), ("c", 3)]);
    let e = err("host=a,b,c port=1,2");
    assert_eq!(e, E::PortCountMismatch { ports: 2, hosts: 3 });
    assert_eq!(e.to_string(), "2 ports given for 3 hosts");
    assert_eq!(err("port=1,2"), E::PortCountMismatch { ports: 2, hosts: 1 });
    assert_eq!(
        err("postgresql:///?host=a&port=1,2,3"),
        E::PortCountMismatch { ports: 3, hosts: 1 }
    );
    // Port values, as libpq's pqParseIntParam reads them.
    assert_eq!(parse("port=' 5433 '").hosts()[0].port(), 5433);
    assert_eq!(parse("port=+5433").hosts()[0].port(), 5433);
    assert_eq!(parse("port=65535").hosts()[0].port(), 65535);
    for bad in ["abc", "0", "65536", "-1", "54x", "99999999999", "5 4"] {
        let e = err(&format!("host=h port='{bad}'"));
        assert_eq!(
            e,
            E::InvalidPort {
                port: bad.into(),
                position: 13
            },
            "{bad}"
        );
    }
    let e = err("postgresql://h1:5432,h2:abc/db");
    assert_eq!(
        e,
        E::InvalidPort {
            port: "abc".into(),
            position: 24
        }
    );
    assert_eq!(e.to_string(), "invalid port \"abc\" at byte 24");
    assert_eq!(
        err("postgresql://h:0"),
        E::InvalidPort {
            port: "0".into(),
            position: 15
        }
    );
    assert_eq!(
        err("postgresql://h:65536"),
        E::InvalidPort {
            port: "65536".into(),
            position: 15
        }
    );
    assert_eq!(
        err("postgresql://h:1:2"),
        E::InvalidPort {
            port: "1:2".into(),
            position: 15
        }
    );
}

#[test]
fn hostaddr_rules() {
    let cs = parse("host=a,b hostaddr=127.0.0.2,127.0.0.3 port=1,2");
    assert_eq!(hosts(&cs), [("a", 1), ("b", 2)]);
    assert_eq!(cs.hosts()[1].hostaddr(), Some("127.0.0.3"));
    let cs = parse("hostaddr=127.0.0.2,127.0.0.3");
    assert_eq!(hosts(&cs), [("", 5432), ("", 5432)]);
    assert!(!cs.hosts()[0].is_default());
    assert_eq!(cs.hosts()[0].to_string(), "127.0.0.2:5432");
    let cs = parse("host=/tmp,b hostaddr=,127.0.0.3");
    assert_eq!(cs.hosts()[0].hostaddr(), None);
    assert!(cs.hosts()[0].is_unix_socket());
    assert!(!cs.hosts()[1].is_unix_socket());
    let e = err("host=a,b,c hostaddr=127.0.0.2,127.0.0.3");
    assert_eq!(
        e,
        E::HostaddrCountMismatch {
            hosts: 3,
            hostaddrs: 2
        }
    );
    assert_eq!(e.to_string(), "3 host names given for 2 hostaddr values");
    assert_eq!(
        err("host=a hostaddr=1.1.1.1,2.2.2.2"),
        E::HostaddrCountMismatch {
            hosts: 1,
            hostaddrs: 2
        }
    );
    assert_eq!(
        err("hostaddr=1.1.1.1,2.2.2.2 port=1,2,3"),
        E::PortCountMismatch { ports: 3, hosts: 2 }
    );
    // Not a param: hostaddr goes with its host.
    assert!(params(&cs).is_empty());
    let conninfo = cs.host_conninfo(&cs.hosts()[1]);
    assert!(
        conninfo.starts_with("host='b' hostaddr='127.0.0.3' port='5432'"),
        "{conninfo}"
    );
}

#[test]
fn target_session_attrs_values() {
    assert_eq!(
        parse("").target_session_attrs(),
        TargetSessionAttrs::ReadWrite
    );
    for (v, want) in [
        ("any", TargetSessionAttrs::Any),
        ("read-write", TargetSessionAttrs::ReadWrite),
        ("read-only", TargetSessionAttrs::ReadOnly),
        ("primary", TargetSessionAttrs::Primary),
        ("standby", TargetSessionAttrs::Standby),
        ("prefer-standby", TargetSessionAttrs::PreferStandby),
    ] {
        let cs = parse(&format!("postgresql://h?target_session_attrs={v}"));
        assert_eq!(cs.target_session_attrs(), want);
        assert_eq!(want.to_string(), v);
        assert!(params(&cs).is_empty());
    }
    for bad in ["maybe", "READ-WRITE", ""] {
        let e = err(&format!("target_session_attrs='{bad}'"));
        assert_eq!(
            e,
            E::InvalidValue {
                parameter: "target_session_attrs".into(),
                value: bad.into()
            }
        );
    }
    assert_eq!(
        err("target_session_attrs=maybe").to_string(),
        "invalid value \"maybe\" for target_session_attrs"
    );
}

#[test]
fn load_balance_hosts_values() {
    assert_eq!(parse("").load_balance_hosts(), LoadBalanceHosts::Disable);
    assert_eq!(
        parse("load_balance_hosts=random").load_balance_hosts(),
        LoadBalanceHosts::Random
    );
    assert_eq!(
        parse("load_balance_hosts=disable").load_balance_hosts(),
        LoadBalanceHosts::Disable
    );
    assert_eq!(
        err("load_balance_hosts=yes"),
        E::InvalidValue {
            parameter: "load_balance_hosts".into(),
            value: "yes".into()
        }
    );
    assert!(params(&parse("load_balance_hosts=random")).is_empty());
}

#[test]
fn connect_timeout_values() {
    let secs = |s: &str| parse(s).connect_timeout();
    assert_eq!(secs(""), Duration::from_secs(10));
    assert_eq!(secs("connect_timeout=5"), Duration::from_secs(5));
    assert_eq!(secs("connect_timeout=' 7 '"), Duration::from_secs(7));
    assert_eq!(secs("connect_timeout=1"), Duration::from_secs(2));
    assert_eq!(
        secs("connect_timeout=0"),
        ConnectionString::UNLIMITED_CONNECT_TIMEOUT
    );
    assert_eq!(
        secs("connect_timeout=-3"),
        ConnectionString::UNLIMITED_CONNECT_TIMEOUT
    );
    assert!(std::time::Instant::now()
        .checked_add(ConnectionString::UNLIMITED_CONNECT_TIMEOUT)
        .is_some());
    for bad in ["", "abc", "1.5", "10s", "2147483648"] {
        assert_eq!(
            err(&format!("connect_timeout='{bad}'")),
            E::InvalidValue {
                parameter: "connect_timeout".into(),
                value: bad.into()
            }
        );
    }
    let cs = parse("host=h connect_timeout=1");
    assert!(params(&cs).is_empty());
    assert!(cs
        .host_conninfo(&cs.hosts()[0])
        .contains(" connect_timeout='2'"));
    let cs = parse("host=h");
    assert!(cs
        .host_conninfo(&cs.hosts()[0])
        .contains(" connect_timeout='10'"));
    let cs = parse("host=h connect_timeout=0");
    assert!(!cs.host_conninfo(&cs.hosts()[0]).contains("connect_timeout"));
}

#[test]
fn replica_reads_values() {
    assert!(parse("").replica_reads());
    for v in ["on", "true", "1", "yes", "ON", "True"] {
        assert!(parse(&format!("replica_reads={v}")).replica_reads(), "{v}");
    }
    for v in ["off", "false", "0", "no", "OFF"] {
        assert!(!parse(&format!("replica_reads={v}")).replica_reads(), "{v}");
    }
    assert_eq!(
        err("replica_reads=maybe"),
        E::InvalidValue {
            parameter: "replica_reads".into(),
            value: "maybe".into()
        }
    );
}

#[test]
fn duration_parameters() {
    for name in ["replica_retry_interval", "failover_timeout"] {
        let get = |s: &str| {
            let cs = parse(s);
            assert!(params(&cs).is_empty());
            if name == "failover_timeout" {
                cs.failover_timeout()
            } else {
                cs.replica_retry_interval()
            }
        };
        assert_eq!(get(""), Duration::from_secs(30));
        assert_eq!(get(&format!("{name}=10")), Duration::from_secs(10));
        assert_eq!(get(&format!("{name}=10s")), Duration::from_secs(10));
        assert_eq!(get(&format!("{name}=500ms")), Duration::from_millis(500));
        assert_eq!(get(&format!("{name}=2min")), Duration::from_secs(120));
        assert_eq!(get(&format!("{name}=1h")), Duration::from_secs(3600));
        assert_eq!(get(&format!("{name}=' 3 s '")), Duration::from_secs(3));
        assert_eq!(get(&format!("{name}=0")), Duration::ZERO);
        for bad in [
            "",
            "-1",
            "1.5s",
            "10x",
            "s",
            "10 sec",
            "99999999999999999999",
        ] {
            assert_eq!(
                err(&format!("{name}='{bad}'")),
                E::InvalidValue {
                    parameter: name.into(),
                    value: bad.into()
                },
                "{bad}"
            );
        }
    }
}

#[test]
fn writing_functions_values() {
    assert!(parse("").writing_functions().is_empty());
    let cs = parse("postgresql://h?writing_functions=%20My_Func%20,audit.log_it,,MY_FUNC");
    assert_eq!(cs.writing_functions(), ["my_func", "audit.log_it"]);
    assert!(params(&cs).is_empty());
    assert!(parse("writing_functions=''").writing_functions().is_empty());
    for bad in ["f()", "a b", "'f'", ".f"] {
        assert_eq!(
            err(&format!(
                "writing_functions={}",
                quote(&format!("ok,{bad}"))
            )),
            E::InvalidValue {
                parameter: "writing_functions".into(),
                value: bad.into()
            },
            "{bad}"
        );
    }
}

#[test]
fn host_conninfo_quoting() {
    let cs = parse(
        "postgresql://us%27er:p%27a%5Css@h1:5433,h2/d%27b?application_name=a%5Cb\
         &replica_reads=off&target_session_attrs=any&load_balance_hosts=random\
         &failover_timeout=5&replica_retry_interval=5&writing_functions=f",
    );
    assert_eq!(cs.password.as_deref(), Some(r"p'a\ss"));
    assert_eq!(
        cs.host_conninfo(&cs.hosts()[0]),
        r"host='h1' port='5433' user='us\'er' password='p\'a\\ss' dbname='d\'b' connect_timeout='10' application_name='a\\b'"
            .to_string()
            + " keepalives='1' keepalives_idle='4' keepalives_interval='2' keepalives_count='3' tcp_user_timeout='10000'"
    );
    let info = cs.host_conninfo(&cs.hosts()[1]);
    assert!(info.starts_with("host='h2' port='5432' "), "{info}");
    // None of the crate's parameters reach libpq.
    for name in CRATE_PARAMS
        .iter()
        .chain(&["target_session_attrs", "load_balance_hosts"])
    {
        assert!(!info.contains(name), "{name} in {info}");
    }
    // The generated string parses back (libpq's key/value quoting).
    let back = parse(&info);
    assert_eq!(back.password, cs.password);
    assert_eq!(back.user, cs.user);
    assert_eq!(back.dbname, cs.dbname);
    // The keepalive defaults were added after the URL's own parameters.
    assert_eq!(back.params[..cs.params.len()], cs.params[..]);
    assert_eq!(
        back.params.len(),
        cs.params.len() + KEEPALIVE_DEFAULTS.len()
    );
    assert_eq!(hosts(&back), [("h2", 5432)]);
}

#[test]
fn default_host_conninfo() {
    let cs = parse("postgresql:///db");
    assert_eq!(
        cs.host_conninfo(&cs.hosts()[0]),
        "host='' port='5432' dbname='db' connect_timeout='10' keepalives='1' keepalives_idle='4' keepalives_interval='2' keepalives_count='3' tcp_user_timeout='10000'"
    );
    // A keepalive setting given in the URL replaces the default.
    let cs = parse("postgresql:///db?keepalives_idle=30&tcp_user_timeout=0");
    let info = cs.host_conninfo(&cs.hosts()[0]);
    assert!(
        info.contains("keepalives_idle='30'") && !info.contains("keepalives_idle='4'"),
        "{info}"
    );
    assert!(
        info.contains("tcp_user_timeout='0'") && !info.contains("tcp_user_timeout='10000'"),
        "{info}"
    );
}

#[test]
fn display_and_debug_redact_the_password() {
    let cs = parse("postgresql://app:S3cr%40t@h1:5432,[::1]:5434,%2Ftmp/db?sslmode=require");
    let shown = cs.to_string();
    assert_eq!(
        shown,
        "postgres://app:********@h1:5432,[::1]:5434,%2Ftmp:5432/db?sslmode=require"
    );
    let debug = format!("{cs:?}");
    assert!(!debug.contains("S3cr@t"), "{debug}");
    assert!(debug.contains("********"), "{debug}");
    let debug = format!("{cs:#?}");
    assert!(!debug.contains("S3cr@t"));
    // A password without a user.
    let cs = parse("password=S3cr3t host=h");
    assert_eq!(cs.to_string(), "postgres://:********@h:5432");
    assert!(!format!("{cs:?}").contains("S3cr3t"));
    // The re-parsed value has "********" as its password.
    let back = parse(&cs.to_string());
    assert_eq!(back.password.as_deref(), Some(REDACTED));
}

#[test]
fn display_round_trip() {
    let inputs = [
        "postgresql://us%40er@h1:5433,h2,[::1]:5434,%2Fvar%2Frun%2Fpostgresql/my%20db\
         ?sslmode=verify-full&application_name=a%26b%3Dc%20d&options=-c%20x%3Dy\
         &target_session_attrs=prefer-standby&load_balance_hosts=random&connect_timeout=1\
         &replica_reads=no&replica_retry_interval=1500ms&failover_timeout=2min\
         &writing_functions=Foo,bar.baz",
        "host=a,,b hostaddr=1.1.1.1,,2.2.2.2 port=1,2,3 user='' dbname=''",
        "hostaddr=1.1.1.1,2.2.2.2 connect_timeout=0",
        "postgresql://",
        "postgresql:///db?host=/tmp&port=5433",
        "host='h?x,y' dbname='a/b?c' user='u:v@w' application_name='é ü'",
        "host=@abstract port=1",
    ];
    for input in inputs {
        let cs = parse(input);
        let shown = cs.to_string();
        let back = parse(&shown);
        assert_eq!(back, cs, "{input} -> {shown}");
        assert_eq!(back.to_string(), shown);
    }
    let cs = parse(inputs[0]);
    assert_eq!(
        cs.to_string(),
        "postgres://us%40er@h1:5433,h2:5432,[::1]:5434,%2Fvar%2Frun%2Fpostgresql:5432/my%20db\
         ?sslmode=verify-full&application_name=a%26b%3Dc%20d&options=-c%20x%3Dy\
         &target_session_attrs=prefer-standby&load_balance_hosts=random&connect_timeout=2\
         &replica_reads=off&replica_retry_interval=1500ms&failover_timeout=120\
         &writing_functions=foo%2Cbar.baz"
    );
}

#[test]
fn unexpected_at_in_host_list() {
    // libpq would take "ss@h" as a host name, showing the end of the password.
    let e = err("postgresql://u:p@ss@h/db");
    assert_eq!(e, E::UnexpectedAt { position: 19 });
    assert!(!e.to_string().contains("ss@h"));
    parse("postgresql://u:p%40ss@h/db");
}

#[test]
fn errors_never_contain_the_password() {
    const PW: &str = "Sup3rS3cr3tPw";
    let cases = [
        format!("postgresql://u:{PW}%zz@h/db"),
        format!("postgresql://u:{PW}%4@h/db"),
        format!("postgresql://u:{PW}%00@h/db"),
        format!("postgresql://u:{PW}%ff@h/db"),
        format!("postgresql://u:{PW} x@h/db"),
        format!("postgresql://u:{PW}@h/db?a=b=c"),
        format!("postgresql://u:{PW}@h/db?foo=1"),
        format!("postgresql://u:{PW}@h/db?zzz"),
        format!("postgresql://u:{PW}@[::1/db"),
        format!("postgresql://u:{PW}@[]/db"),
        format!("postgresql://u:{PW}@[::1]x/db"),
        format!("postgresql://u:{PW}@h:0/db"),
        format!("postgresql://u:{PW}@h:abc/db"),
        format!("postgresql://u:{PW}@h:1,h2,h3/db?port=1,2"),
        format!("postgresql://u:{PW}@h/db?target_session_attrs=maybe"),
        format!("postgresql://u:{PW}@h/db?connect_timeout=x"),
        format!("postgresql://u:{PW}@h/db?replica_reads=maybe"),
        format!("postgresql://u:{PW}@h/db?failover_timeout=x"),
        format!("postgresql://u:{PW}@h/db?writing_functions=a%20b"),
        format!("postgresql://u:{PW}@h/db?load_balance_hosts=x"),
        format!("postgresql://u:{PW}@h/db?hostaddr=1.1.1.1,2.2.2.2"),
        format!("postgresql://u:{PW}@h/db?dbname=%zz"),
        // Unencoded '/' or '@' in the password.
        format!("postgresql://u:{PW}/x@h/db"),
        format!("postgresql://u:a/{PW}@h/db"),
        format!("postgresql://u:{PW}:x/y@h/db"),
        "postgresql://u:Sup3r@S3cr3tPw@h/db".to_string(),
        // The password as a query parameter.
        format!("postgresql://h/db?password={PW}%zz"),
        format!("postgresql://h/db?password={PW}%00"),
        format!("postgresql://h/db?password={PW} x"),
        "postgresql://h/db?password=Sup3r&S3cr3tPw".to_string(),
        "postgresql://h/db?password=Sup3r&S3cr3tPw=1".to_string(),
        "postgresql://h/db?password=a=Sup3rS3cr3tPw".to_string(),
        format!("oracle://u:{PW}@h/db"),
        // Key/value form.
        format!("password='{PW}"),
        format!("password={PW}x host"),
        "password=Sup3r S3cr3tPw".to_string(),
        "password=Sup3r S3cr3tPw=x".to_string(),
        "password='Sup3r'S3cr3tPw'".to_string(),
        "password='Sup3r''S3cr3tPw'".to_string(),
        format!("host=h password={PW} foo=1"),
        format!("host=h password={PW} port=0"),
        format!("host=a,b password={PW} port=1,2,3"),
        format!("host=a password={PW} connect_timeout=x"),
        format!("host=a password={PW} x"),
    ];
    for case in &cases {
        let e = err(case);
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(PW), "{case:?} -> {shown}");
            assert!(!shown.contains("S3cr3tPw"), "{case:?} -> {shown}");
            assert!(!shown.contains("Sup3r"), "{case:?} -> {shown}");
        }
    }
}

#[test]
fn error_messages_are_lowercase_without_trailing_punctuation() {
    let cases = [
        "oracle://h",
        "postgresql://%zz",
        "postgresql://%00",
        "postgresql://h/a b",
        "postgresql://h/%ff",
        "host",
        "postgresql://h?a=b=c",
        "foo=1",
        "postgresql://[",
        "postgresql://[]",
        "postgresql://[::1]x",
        "postgresql://u:a@b@c",
        "dbname='x",
        "port=0",
        "host=a,b,c port=1,2",
        "host=a,b hostaddr=1.1.1.1",
        "replica_reads=maybe",
        "host=\0",
    ];
    for case in cases {
        let e = err(case);
        let msg = e.to_string();
        let first = msg.chars().next().unwrap();
        assert!(first.is_lowercase() || first.is_ascii_digit(), "{msg}");
        assert!(!msg.ends_with(['.', '!', '\n']), "{msg}");
        let _: &dyn std::error::Error = &e;
    }
}

#[test]
fn discovery_key_identifies_cluster_and_credentials() {
    let a = parse("postgresql://u:p1@h1,h2/db?sslmode=require");
    let b = parse("postgresql://u:p2@h1,h2/db?sslmode=require");
    let c = parse("host=h1,h2 user=u password=p1 dbname=db sslmode=require");
    let c_off = parse("host=h1,h2 user=u password=p1 dbname=db sslmode=require replica_reads=off");
    assert_ne!(c.discovery_key(), c_off.discovery_key());
    let d = parse("postgresql://u:p1@h1,h2:5433/db?sslmode=require");
    assert_ne!(a.discovery_key(), b.discovery_key());
    assert_eq!(a.discovery_key(), c.discovery_key());
    assert_ne!(a.discovery_key(), d.discovery_key());
    // Unambiguous even when values contain separators.
    let e = parse("user='a;b' dbname=c");
    let f = parse("user=a dbname='b;c'");
    assert_ne!(e.discovery_key(), f.discovery_key());
}

#[test]
fn nul_characters_are_rejected() {
    assert_eq!(err("host=a\0b"), E::NulCharacter { position: 6 });
    assert_eq!(err("postgresql://h/d\0b"), E::NulCharacter { position: 16 });
    assert_eq!(
        err("host=a\0b").to_string(),
        "unexpected NUL character at byte 6"
    );
}

#[test]
fn user_lookahead_quirk_matches_libpq() {
    // libpq looks for '@' up to the first '/', so an '@' in the query of a URI without
    // a path makes everything before it the user name.
    let cs = parse("postgresql://h?x@h2");
    assert_eq!(cs.user(), Some("h?x"));
    assert_eq!(hosts(&cs), [("h2", 5432)]);
}

#[test]
fn durations_are_bounded_at_parse_time() {
    for (url, parameter, max) in [
        (
            "failover_timeout=3000000000000000h",
            "failover_timeout",
            "86400",
        ),
        (
            "replica_retry_interval=25h",
            "replica_retry_interval",
            "86400",
        ),
        ("monitor_interval=2h", "monitor_interval", "3600"),
        ("max_replica_lag=61min", "max_replica_lag", "3600"),
    ] {
        let e = err(url);
        match &e {
            E::OutOfRange {
                parameter: p,
                max: m,
                ..
            } => {
                assert_eq!(p, parameter);
                assert_eq!(m, max);
            }
            other => panic!("{url}: {other:?}"),
        }
        assert!(e.to_string().starts_with(&format!("{parameter}=")), "{e}");
    }
    assert!(matches!(err("monitor_interval=5ms"), E::OutOfRange { .. }));
    assert_eq!(
        err("monitor_interval=5ms").to_string(),
        "monitor_interval=5ms is out of range (from 10ms to 3600)"
    );
    // The largest accepted values work, and so does a far-away deadline built from them.
    let cs = parse("failover_timeout=24h replica_retry_interval=86400 max_replica_lag=1h");
    let _ = std::time::Instant::now() + cs.failover_timeout() + cs.replica_retry_interval();
}

#[test]
fn consistency_parameters() {
    let cs = parse("postgresql://h/db");
    assert!(cs.read_your_writes());
    assert_eq!(cs.monitor_interval(), Duration::from_secs(1));
    assert_eq!(cs.max_replica_lag(), Some(Duration::from_secs(10)));
    assert_eq!(cs.split_brain(), SplitBrainPolicy::Refuse);
    let cs = parse(
        "postgresql://h/db?read_your_writes=off&monitor_interval=250ms&max_replica_lag=off\
         &split_brain=highest-timeline",
    );
    assert!(!cs.read_your_writes());
    assert_eq!(cs.monitor_interval(), Duration::from_millis(250));
    assert_eq!(cs.max_replica_lag(), None);
    assert_eq!(cs.split_brain(), SplitBrainPolicy::HighestTimeline);
    // Written back only when not the default, and parsed back to the same.
    let text = cs.to_string();
    assert!(text.contains("read_your_writes=off"), "{text}");
    assert!(text.contains("max_replica_lag=off"), "{text}");
    assert_eq!(parse(&text), cs);
    assert!(!parse("postgresql://h/db").to_string().contains('?'));
    for bad in [
        "read_your_writes=yes",
        "split_brain=newest",
        "max_replica_lag=soon",
    ] {
        assert!(matches!(err(bad), E::InvalidValue { .. }), "{bad}");
    }
}

#[test]
fn mysql_urls() {
    let cs = parse(
        "mysql://app:p%40ss@127.0.0.1:3307,db2,[::1]:3308/shop?ssl_mode=required\
         &read_your_writes=off&connect_timeout=3",
    );
    assert_eq!(cs.backend(), BackendKind::Mysql);
    assert_eq!(
        hosts(&cs),
        [("127.0.0.1", 3307), ("db2", 3306), ("::1", 3308)]
    );
    assert!(!cs.read_your_writes());
    assert_eq!(cs.connect_timeout(), Duration::from_secs(3));
    // Each host's URL for Diesel: percent-encoded, the per-host parameters only.
    assert_eq!(
        cs.host_mysql_url(&cs.hosts()[0]),
        "mysql://app:p%40ss@127.0.0.1:3307/shop?ssl_mode=required"
    );
    assert_eq!(
        cs.host_mysql_url(&cs.hosts()[2]),
        "mysql://app:p%40ss@[::1]:3308/shop?ssl_mode=required"
    );
    // Shown without the password, parsed back to the same.
    let text = cs.to_string();
    assert!(text.starts_with("mysql://app:********@127.0.0.1:3307,db2:3306,[::1]:3308/shop?"));
    assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");
    // libpq's parameters are not MySQL's, and the other way round.
    assert!(matches!(
        err("mysql://h/db?sslmode=require"),
        E::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("postgres://h/db?ssl_mode=required"),
        E::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("mysql://h/db?max_replica_lag=2h"),
        E::OutOfRange { .. }
    ));
    assert_ne!(
        parse("mysql://h/db").discovery_key(),
        parse("postgres://h:3306/db").discovery_key()
    );
}
