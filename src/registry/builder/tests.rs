use super::*;
use crate::registry::alias_url;
use crate::registry::apps::ModelInfo;
use crate::registry::router::PrimaryReplicaRouter;

fn sqlite(name: &str) -> DatabaseConfig {
    DatabaseConfig::new(format!(
        "sqlite://{}/never-opened-{name}.sqlite3",
        std::env::temp_dir().display()
    ))
}

fn err(builder: DatabasesBuilder) -> String {
    let e = builder.build().expect_err("the build must fail");
    let text = format!("{e} / {e:?}");
    assert!(!text.contains("hunter2"), "a password leaked: {text}");
    e.to_string()
}

#[test]
fn missing_default() {
    let c = Config::new().database("analytics", sqlite("a"));
    assert_eq!(
        err(c.builder()),
        "no `default` database is declared (add [databases.default] or set DATABASE_URL)"
    );
}

#[test]
fn bad_urls_name_the_alias_and_hide_the_password() {
    let c = Config::new().database("default", sqlite("d")).database(
        "warehouse",
        DatabaseConfig::new("postgres://bob:hunter2@db:54x2/w"),
    );
    let e = c.builder().build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "database `warehouse` has a bad url: invalid PostgreSQL URL"
    );
    // The grammar's error is kept, typed, as the source.
    let BuildError::BadUrl {
        source: Some(source),
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(matches!(
        **source,
        ConnectionStringError::InvalidPort { .. }
    ));
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "invalid port \"<hidden>\" at byte 26"
    );
    let c = Config::new().database("default", DatabaseConfig::new("oracle://bob:hunter2@db/w"));
    assert!(err(c.builder()).contains("unsupported URL scheme `oracle`"));
    let c = Config::new().database("default", DatabaseConfig::default());
    assert!(err(c.builder()).starts_with("database `default` has no url"));
}

#[test]
fn mirrors_must_name_a_declared_primary() {
    let base = || Config::new().database("default", sqlite("d"));
    let e = err(base()
        .database("replica", DatabaseConfig::mirror("primary"))
        .builder());
    assert_eq!(
        e,
        "database `replica` is a mirror of `primary`, which is not declared"
    );
    let e = err(base()
        .database("replica", DatabaseConfig::mirror("replica"))
        .builder());
    assert_eq!(e, "database `replica` is a mirror of `replica`, itself");
    let e = err(base()
        .database("r1", DatabaseConfig::mirror("default"))
        .database("r2", DatabaseConfig::mirror("r1"))
        .builder());
    assert_eq!(
        e,
        "database `r2` is a mirror of `r1`, which is itself a mirror"
    );
    // A mirror without a URL uses its primary's.
    let dbs = base()
        .database("replica", DatabaseConfig::mirror("default"))
        .build()
        .unwrap();
    let replica = dbs.alias("replica").unwrap();
    assert_eq!(
        replica.display_url(),
        dbs.alias("default").unwrap().display_url()
    );
    assert_eq!(replica.served_by(), "replica");
    let dbs = base()
        .database("replica", DatabaseConfig::mirror("default"))
        .builder()
        .test_mirrors(true)
        .build()
        .unwrap();
    assert_eq!(dbs.alias("replica").unwrap().served_by(), "default");
}

#[test]
fn pool_settings_are_checked() {
    let mut d = sqlite("d");
    d.max_size = Some(0);
    assert_eq!(
        err(Config::new().database("default", d.clone()).builder()),
        "databases.default.max_size: must be at least 1"
    );
    d.max_size = Some(2);
    d.min_idle = Some(3);
    assert_eq!(
        err(Config::new().database("default", d).builder()),
        "databases.default.min_idle: 3 is more than max_size (2)"
    );
}

#[test]
fn the_app_map_must_name_declared_aliases() {
    let c = Config::new()
        .database("default", sqlite("d"))
        .app("analytics", "warehouse");
    assert_eq!(
        err(c.builder()),
        "apps.analytics routes app `analytics` to database `warehouse`, which is not declared"
    );
}

#[test]
fn routers_must_name_declared_aliases() {
    let c = || {
        Config::new()
            .database("default", sqlite("d"))
            .database("replica1", sqlite("r1"))
    };
    let e = err(c().builder().router(
        PrimaryReplicaRouter::new("default")
            .replica("replica1")
            .replica("replica2"),
    ));
    assert_eq!(
        e,
        "router PrimaryReplicaRouter names database `replica2`, which is not declared"
    );

    struct ToNowhere;
    impl DatabaseRouter for ToNowhere {
        fn db_for_write(&self, m: &ModelInfo, _: &Hints) -> Option<String> {
            (m.app_label() == "blog").then(|| "nowhere".to_owned())
        }
        fn name(&self) -> String {
            "ToNowhere".into()
        }
    }
    // No declared model is routed there: fine.
    c().builder().router(ToNowhere).build().unwrap();
    let e = err(c()
        .builder()
        .router(ToNowhere)
        .app(App::new("blog").model_info(ModelInfo::new("blog", "post"))));
    assert_eq!(
        e,
        "router #0 (ToNowhere) routes writes of model blog.post to database `nowhere`, which is not declared"
    );
}

#[test]
fn apps_are_checked() {
    let c = || Config::new().database("default", sqlite("d"));
    assert_eq!(
        err(c().builder().app(App::new("a")).app(App::new("a"))),
        "app `a` is declared twice"
    );
    assert_eq!(
        err(c()
            .builder()
            .app(App::new("a").model_info(ModelInfo::new("b", "m")))),
        "model b.m is declared in app `a`"
    );
    let e = err(c()
        .builder()
        .app(App::new("a").migrations_dir("/nonexistent/migrations/a")));
    assert!(
        e.starts_with("cannot read the migrations of app `a` in /nonexistent/migrations/a"),
        "{e}"
    );
}

#[test]
fn routers_in_code_come_before_the_app_map() {
    let dbs = Config::new()
        .database("default", sqlite("d"))
        .database("other", sqlite("o"))
        .app("blog", "other")
        .builder()
        .router(crate::AppLabelRouter::new().route("blog", "default"))
        .build()
        .unwrap();
    let post = ModelInfo::new("blog", "post");
    assert_eq!(dbs.router().db_for_write(&post, &Hints::new()), "default");
    assert_eq!(
        format!("{:?}", dbs.router()),
        "[\"AppLabelRouter\", \"AppLabelRouter\"]"
    );
}

#[test]
fn an_env_override_for_an_undeclared_alias_is_an_error() {
    let vars = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let config = || {
        Config::new()
            .database("default", sqlite("d"))
            .database("analytics", sqlite("a"))
    };
    let c = config().with_env_vars(vars(&[
        ("DATABASE_URL_ANALYTCS", "sqlite://typo"),
        ("PATH", "/bin"),
    ]));
    assert_eq!(c.unmatched_env_overrides, ["DATABASE_URL_ANALYTCS"]);
    assert_eq!(
        err(c.builder()),
        "DATABASE_URL_ANALYTCS is set but no database it would override is declared (did you mean DATABASE_URL_ANALYTICS?)"
    );
    // Far from every declared alias: no suggestion. Empty values count as unset.
    let c = config().with_env_vars(vars(&[
        ("DATABASE_URL_SOMETHING_ELSE", "x"),
        ("DATABASE_URL_EMPTY", ""),
    ]));
    assert_eq!(
        err(c.builder()),
        "DATABASE_URL_SOMETHING_ELSE is set but no database it would override is declared"
    );
    // Declared aliases and DATABASE_URL itself are overrides.
    let c = config().with_env_vars(vars(&[
        ("DATABASE_URL", "sqlite://:memory:"),
        ("DATABASE_URL_ANALYTICS", "sqlite://:memory:"),
    ]));
    assert!(c.unmatched_env_overrides.is_empty());
    assert_eq!(
        c.databases["analytics"].url.as_deref(),
        Some("sqlite://:memory:")
    );
    c.build().unwrap();
}

#[test]
fn hooks_must_name_declared_aliases() {
    #[derive(Debug)]
    struct Nothing;
    impl r2d2::CustomizeConnection<AnyConnection, ConnectError> for Nothing {}
    let e = err(Config::new()
        .database("default", sqlite("d"))
        .builder()
        .connection_customizer("defualt", Nothing));
    assert_eq!(
        e,
        "connection_customizer is given for database `defualt`, which is not declared"
    );
}

#[test]
fn postgres_key_value_aliases_are_accepted() {
    let dbs = Config::new()
        .database("default", sqlite("d"))
        .database(
            "pg",
            DatabaseConfig::new("host=127.0.0.1 port=1 dbname=app user=app password=hunter2"),
        )
        .build()
        .unwrap();
    let pg = dbs.alias("pg").unwrap();
    assert_eq!(pg.backend(), crate::BackendKind::Postgres);
    assert_eq!(pg.display_url(), "postgres://app:********@127.0.0.1:1/app");
    assert!(!format!("{dbs:?}").contains("hunter2"));
}

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SECRET: &str = "Zq7!Sekr3tPw";

/// The secret as it may be written in a URI part: raw, fully or partly percent-encoded.
fn uri_secret(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => SECRET.to_owned(),
        1 => SECRET.bytes().map(|b| format!("%{b:02X}")).collect(),
        _ => SECRET.replace('!', "%21").replace('k', "%6b"),
    }
}

/// A URL of one of the forms the crate accepts, with the secret as a password or an
/// `sslpassword`; then, half of the time, broken in one of the ways users break them.
fn random_url(rng: &mut Rng) -> String {
    let mut url = match rng.below(4) {
        0 | 1 => {
            let mut u = format!("{}://", rng.pick(&["postgres", "postgresql"]));
            let in_userinfo = rng.below(3) != 0;
            if in_userinfo {
                u.push_str(rng.pick(&["app", "", "u%40x"]));
                u.push(':');
                u.push_str(&uri_secret(rng));
                u.push('@');
            } else if rng.chance(2) {
                u.push_str("app@");
            }
            u.push_str(rng.pick(&["db1:5432", "db1,db2:5433", "[::1]:5434", "127.0.0.1", ""]));
            u.push_str(rng.pick(&["/app", "", "/my%20db"]));
            let mut params: Vec<String> = Vec::new();
            if !in_userinfo {
                let key = rng.pick(&["password", "pass%77ord", "sslpassword"]);
                params.push(format!("{key}={}", uri_secret(rng)));
            }
            if rng.chance(2) {
                params.push(format!("sslpassword={}", uri_secret(rng)));
            }
            for p in [
                "sslmode=require",
                "application_name=web",
                "target_session_attrs=any",
            ] {
                if rng.chance(3) {
                    params.push(p.to_owned());
                }
            }
            // Shuffle.
            for i in (1..params.len()).rev() {
                params.swap(i, rng.below(i + 1));
            }
            if !params.is_empty() {
                u.push('?');
                u.push_str(&params.join("&"));
            }
            u
        }
        2 => {
            let secret = match rng.below(3) {
                0 => SECRET.to_owned(),
                1 => format!("'{SECRET}'"),
                _ => format!("'{}'", SECRET.replace('k', "\\k")),
            };
            let mut parts = vec![
                "host=db1,db2".to_owned(),
                "dbname=app".to_owned(),
                format!("{}={secret}", rng.pick(&["password", "sslpassword"])),
            ];
            if rng.chance(2) {
                parts.push("user = app".to_owned());
            }
            if rng.chance(2) {
                parts.push("port=5432,5433".to_owned());
            }
            for i in (1..parts.len()).rev() {
                parts.swap(i, rng.below(i + 1));
            }
            // libpq's form must start with an assignment: keep one first.
            parts.join(rng.pick(&[" ", "  ", "\t"]))
        }
        _ => rng
            .pick(&[
                "sqlite://data/app.sqlite3",
                "sqlite::memory:",
                "file:x.db?mode=ro&key=Zq7!Sekr3tPw",
            ])
            .to_owned(),
    };
    if rng.chance(2) {
        url = break_url(rng, url);
    }
    url
}

/// One of the ways a URL gets broken, never cutting through the secret except where the
/// issue's cases do (`?password=S3cr&3tPw`), which the checks cover by halves.
fn break_url(rng: &mut Rng, url: String) -> String {
    let secret_at = url.find(SECRET);
    let outside = |rng: &mut Rng, url: &str| -> usize {
        // A char boundary not inside the (raw) secret nor right next to it.
        loop {
            let i = rng.below(url.len() + 1);
            if !url.is_char_boundary(i) {
                continue;
            }
            match secret_at {
                Some(s) if i + 1 >= s && i <= s + SECRET.len() + 1 => continue,
                _ => return i,
            }
        }
    };
    match rng.below(11) {
        0 => url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .unwrap_or(&url)
            .to_owned(),
        1 => url.replacen("://", ":/", 1),
        2 => format!(" {url}"),
        3 => format!("{url} "),
        4 => url.replacen('@', " @", 1),
        5 => url.replacen(SECRET, "Zq7!Sekr&3tPw", 1),
        6 => url.replacen("5432", "54x2", 1),
        7 => {
            if url.contains('?') {
                format!("{url}&bogus=1")
            } else {
                format!("{url} bogus=1")
            }
        }
        8 => url.replacen("postgres", rng.pick(&["oracle", "POSTGRES", "http"]), 1),
        9 => {
            let i = outside(rng, &url);
            let c = rng.pick(&[
                " ", "@", ":", "/", "?", "&", "=", "%", "'", "\\", ",", "[", "]",
            ]);
            format!("{}{c}{}", &url[..i], &url[i..])
        }
        _ => {
            let i = outside(rng, &url);
            url[..i].to_owned()
        }
    }
}

/// Everything the registry shows of a URL: the URL parser's outcome, `Debug` of the
/// configuration, the build error and its chain, `Debug` and `display_url` of the registry.
fn everything_shown(url: &str, build: bool) -> String {
    let mut all = String::new();
    let chain = |e: &dyn std::error::Error| {
        let mut s = format!("{e} | {e:?}");
        let mut source = e.source();
        while let Some(inner) = source {
            s.push_str(&format!(" | {inner} | {inner:?}"));
            source = inner.source();
        }
        s
    };
    all.push_str(alias_url::shown(url).shown());
    match alias_url::parse(url) {
        Ok(t) => all.push_str(&format!(" {t:?}")),
        Err(e) => {
            all.push_str(&format!(" {} {e:?}", e.reason));
            if let Some(source) = &e.source {
                all.push_str(&format!(" {source}"));
            }
        }
    }
    let config = Config::new()
        .database("default", sqlite("fuzz"))
        .database("other", DatabaseConfig::new(url));
    all.push_str(&format!(" {config:?}"));
    let builder = config.builder();
    all.push_str(&format!(" {builder:?}"));
    if build {
        match builder.build() {
            Ok(dbs) => {
                all.push_str(&format!(" {dbs:?}"));
                for a in dbs.aliases() {
                    all.push_str(&a.display_url());
                    all.push_str(&format!("{a:?}"));
                }
            }
            Err(e) => all.push_str(&chain(&e)),
        }
    }
    all
}

/// The fuzz: many random URLs in every accepted form and many broken ones, with a
/// known secret; nothing shown contains it (raw or percent-encoded, nor either half of it
/// where a broken URL cut it in two).
#[test]
fn no_output_ever_contains_the_secret() {
    let encoded: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
    let forbidden = [SECRET, encoded.as_str(), "Zq7!Sekr", "3tPw", "Sekr3t"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut postgres = 0;
    let mut rejected = 0;
    for i in 0..3000 {
        let url = random_url(&mut rng);
        match alias_url::parse(&url) {
            Ok(t) if t.kind == crate::BackendKind::Postgres => postgres += 1,
            Ok(_) => {}
            Err(_) => rejected += 1,
        }
        let shown = everything_shown(&url, i % 10 == 0);
        for secret in forbidden {
            assert!(
                !shown.contains(secret),
                "case {i}: {secret:?} leaked for {url:?}:\n{shown}"
            );
        }
    }
    // The generator reaches both sides.
    assert!(postgres > 500 && rejected > 300, "{postgres} {rejected}");
}
