//! The registry: pools from config, typed access, transactions, mixed backends.

use diesel::prelude::*;
use diesel_multidb::{App, AppLabelRouter, BackendKind, Config, DatabaseConfig, Hints, PoolError};

use crate::common::analytics::page_views;
use crate::common::blog::posts;
use crate::common::Scratch;
use crate::pg;

/// A model of an app no router knows.
struct Unrouted;
diesel_multidb::models! { "misc" => [Unrouted = "unrouted"] }

#[test]
fn typed_access_routes_each_model_to_its_alias_sqlite() {
    let s = Scratch::new();
    let root = s.standard_migrations();
    let mut config = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .database("analytics", DatabaseConfig::new(s.sqlite_url("analytics")))
        .app("blog", "default")
        .app("analytics", "analytics");
    config.migrations_dir = Some(root);
    let dbs = config
        .builder()
        .app(App::new("blog").model::<posts::table>())
        .app(App::new("analytics").model::<page_views::table>())
        .build()
        .expect("registry");
    dbs.migrate_all().expect("migrate");

    let mut w = dbs.for_write::<posts::table>().unwrap();
    assert_eq!(w.alias(), "default");
    diesel::insert_into(posts::table)
        .values((posts::slug.eq("a"), posts::title.eq("A")))
        .execute(&mut *w)
        .unwrap();
    drop(w);
    let mut w = dbs.for_write::<page_views::table>().unwrap();
    assert_eq!(w.alias(), "analytics");
    diesel::insert_into(page_views::table)
        .values((page_views::id.eq(1), page_views::path.eq("/a")))
        .execute(&mut *w)
        .unwrap();
    drop(w);

    let mut r = dbs.for_read::<posts::table>().unwrap();
    assert_eq!(r.backend_kind(), BackendKind::Sqlite);
    assert_eq!(
        posts::table
            .select(posts::title)
            .load::<String>(&mut *r)
            .unwrap(),
        ["A"]
    );
    drop(r);
    // The tables live only where their app is routed.
    let mut other = dbs.using("analytics").unwrap();
    assert!(posts::table.count().get_result::<i64>(&mut *other).is_err());
    assert_eq!(
        page_views::table
            .count()
            .get_result::<i64>(&mut *other)
            .unwrap(),
        1
    );
    drop(other);
    assert!(s.sqlite_path("default").exists() && s.sqlite_path("analytics").exists());

    // Hints: a router's opinion beats the instance's alias; without one, the hint wins.
    let hints = Hints::new().instance_from("analytics");
    assert_eq!(
        dbs.for_read_hinted::<posts::table>(&hints).unwrap().alias(),
        "default"
    );
    assert_eq!(
        dbs.for_read_hinted::<Unrouted>(&hints).unwrap().alias(),
        "analytics"
    );
    assert_eq!(dbs.for_read::<Unrouted>().unwrap().alias(), "default");
}

#[test]
fn using_an_unknown_alias_is_a_clear_error() {
    let s = Scratch::new();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .build()
        .unwrap();
    let e = dbs.using("nope").unwrap_err();
    assert!(matches!(e, PoolError::UnknownAlias { .. }));
    assert_eq!(e.to_string(), "no database `nope` is declared");
}

#[test]
fn transactions_on_the_alias_that_writes_the_model() {
    let s = Scratch::new();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .database("analytics", DatabaseConfig::new(s.sqlite_url("analytics")))
        .builder()
        .router(AppLabelRouter::new().route("analytics", "analytics"))
        .build()
        .unwrap();
    dbs.using("analytics")
        .map(|mut c| {
            diesel::sql_query(
                "CREATE TABLE page_views (id INTEGER PRIMARY KEY, path TEXT NOT NULL)",
            )
            .execute(&mut *c)
        })
        .unwrap()
        .unwrap();

    type E = Box<dyn std::error::Error + Send + Sync>;
    dbs.transaction::<page_views::table, _, E, _>(|c| {
        diesel::insert_into(page_views::table)
            .values((page_views::id.eq(1), page_views::path.eq("/kept")))
            .execute(c)?;
        Ok(())
    })
    .unwrap();
    let failed = dbs.transaction::<page_views::table, (), E, _>(|c| {
        diesel::insert_into(page_views::table)
            .values((page_views::id.eq(2), page_views::path.eq("/gone")))
            .execute(c)?;
        Err("changed my mind".into())
    });
    assert_eq!(failed.unwrap_err().to_string(), "changed my mind");
    let mut c = dbs.for_read::<page_views::table>().unwrap();
    assert_eq!(c.alias(), "analytics");
    let paths: Vec<String> = page_views::table
        .select(page_views::path)
        .load(&mut *c)
        .unwrap();
    assert_eq!(paths, ["/kept"]);
}

#[test]
fn an_unreachable_server_names_the_alias_and_hides_the_password() {
    let s = Scratch::new();
    let mut broken = DatabaseConfig::new("postgres://postgres:hunter2@127.0.0.1:1/nope");
    broken.connection_timeout_secs = Some(1);
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .database("warehouse", broken)
        .build()
        .expect("building does not connect");
    let e = dbs.using("warehouse").unwrap_err();
    let text = format!("{e} {e:?} {dbs:?}");
    assert!(
        e.to_string()
            .starts_with("cannot get a connection to database `warehouse`"),
        "{e}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn env_overrides_reach_the_registry() {
    let s = Scratch::new();
    let (a, b) = (
        s.sqlite_url("from-env-default"),
        s.sqlite_url("from-env-analytics"),
    );
    let text = "[databases.default]\nurl = \"sqlite://unused-default\"\n[databases.analytics]\nurl = \"sqlite://unused\"\n";
    let config = Config::from_toml_str(text)
        .unwrap()
        .with_env_overrides_from(|k| match k {
            "DATABASE_URL" => Some(a.clone()),
            "DATABASE_URL_ANALYTICS" => Some(b.clone()),
            _ => None,
        });
    let dbs = config.build().unwrap();
    dbs.ping("default").unwrap();
    dbs.ping("analytics").unwrap();
    assert!(s.sqlite_path("from-env-default").exists());
    assert!(s.sqlite_path("from-env-analytics").exists());
}

#[test]
fn mixed_postgres_and_sqlite_in_one_registry() {
    let s = Scratch::new();
    let db = pg::fresh("registry_mixed");
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(db.primary_url.clone()))
        .database("analytics", DatabaseConfig::new(s.sqlite_url("analytics")))
        .builder()
        .router(
            AppLabelRouter::new()
                .route("analytics", "analytics")
                .route("blog", "default"),
        )
        .app(App::new("blog").model::<posts::table>())
        .app(App::new("analytics").model::<page_views::table>())
        .build()
        .unwrap();
    assert_eq!(
        dbs.alias("default").unwrap().backend(),
        BackendKind::Postgres
    );
    assert_eq!(
        dbs.alias("analytics").unwrap().backend(),
        BackendKind::Sqlite
    );
    for (alias, ddl) in [
        (
            "default",
            "CREATE TABLE posts (slug TEXT PRIMARY KEY, title TEXT NOT NULL)",
        ),
        (
            "analytics",
            "CREATE TABLE page_views (id INTEGER PRIMARY KEY, path TEXT NOT NULL)",
        ),
    ] {
        diesel::sql_query(ddl)
            .execute(&mut *dbs.using(alias).unwrap())
            .unwrap();
    }
    // The same Diesel query code runs on either backend.
    diesel::insert_into(posts::table)
        .values((posts::slug.eq("pg"), posts::title.eq("on postgres")))
        .execute(&mut *dbs.for_write::<posts::table>().unwrap())
        .unwrap();
    diesel::insert_into(page_views::table)
        .values((page_views::id.eq(7), page_views::path.eq("/on-sqlite")))
        .execute(&mut *dbs.for_write::<page_views::table>().unwrap())
        .unwrap();
    let mut pgc = dbs.for_read::<posts::table>().unwrap();
    assert_eq!(pgc.backend_kind(), BackendKind::Postgres);
    assert_eq!(
        posts::table
            .select(posts::title)
            .first::<String>(&mut *pgc)
            .unwrap(),
        "on postgres"
    );
    let mut lite = dbs.for_read::<page_views::table>().unwrap();
    assert_eq!(lite.backend_kind(), BackendKind::Sqlite);
    assert_eq!(
        page_views::table
            .select(page_views::path)
            .first::<String>(&mut *lite)
            .unwrap(),
        "/on-sqlite"
    );
}

/// The error and its sources, `a: b: c`, as error-chain printers show it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

#[test]
fn a_wrong_password_fails_at_once_naming_authentication_and_never_shows() {
    use diesel_multidb_testkit::APP_PASSWORD;
    let s = Scratch::new();
    let db = pg::fresh("registry_password");
    // The pool's connection_timeout stays at its default, 30 s: a wrong password is not
    // worth waiting for.
    let dbs = Config::new()
        .database(
            "default",
            DatabaseConfig::new(db.app_primary_url(APP_PASSWORD)),
        )
        .database(
            "wrong",
            DatabaseConfig::new(db.app_primary_url("wrong-pass-xyz")),
        )
        .database("lite", DatabaseConfig::new(s.sqlite_url("lite")))
        .build()
        .unwrap();
    dbs.ping("default").expect("app connects with its password");
    for attempt in 0..2 {
        let started = std::time::Instant::now();
        let e = dbs.using("wrong").unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "attempt {attempt} took {:?}",
            started.elapsed()
        );
        assert_eq!(e.to_string(), "cannot get a connection to database `wrong`");
        let full = chain(&e);
        assert!(
            full.starts_with(
                "cannot get a connection to database `wrong`: authentication failed: "
            ),
            "{full}"
        );
        assert!(full.contains("(authentication failed)"), "{full}");
        let PoolError::Checkout {
            source: Some(source),
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(source.is_permanent());
        let text = format!(
            "{full} | {e:?} | {dbs:?} | {:?}",
            dbs.alias("default").unwrap()
        );
        for secret in [APP_PASSWORD, "wrong-pass-xyz"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("app:********@127.0.0.1"), "{text}");
    }
}

#[test]
fn a_key_value_alias_connects_to_postgres() {
    let db = pg::fresh("registry_kv");
    let port = diesel_multidb_testkit::PgCluster::shared().primary_port();
    let kv = format!(
        "host=127.0.0.1 port={port} dbname={} user=app password='{}'",
        db.name,
        diesel_multidb_testkit::APP_PASSWORD
    );
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(kv))
        .build()
        .unwrap();
    let alias = dbs.alias("default").unwrap();
    assert_eq!(alias.backend(), BackendKind::Postgres);
    assert!(!alias
        .display_url()
        .contains(diesel_multidb_testkit::APP_PASSWORD));
    let mut conn = dbs.using("default").unwrap();
    assert_eq!(conn.backend_kind(), BackendKind::Postgres);
    diesel::sql_query("SELECT 1").execute(&mut *conn).unwrap();
}

#[test]
fn a_model_routed_to_an_undeclared_alias_names_the_router_and_the_model() {
    use diesel_multidb::{DatabaseRouter, ModelInfo};
    struct Tenant;
    impl DatabaseRouter for Tenant {
        fn db_for_read(&self, _: &ModelInfo, hints: &Hints) -> Option<String> {
            hints.get("tenant").map(str::to_owned)
        }
        fn name(&self) -> String {
            "TenantRouter".into()
        }
    }
    let s = Scratch::new();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .builder()
        .router(Tenant)
        .build()
        .unwrap();
    let e = dbs
        .for_read_hinted::<posts::table>(&Hints::new().with("tenant", "acme"))
        .unwrap_err();
    assert!(matches!(e, PoolError::RoutedToUnknownAlias { .. }));
    assert_eq!(
        e.to_string(),
        "router #0 (TenantRouter) routed the read of model blog.posts to database `acme`, which is not declared"
    );
}

/// A `CustomizeConnection` that runs one statement on every new connection.
#[derive(Debug)]
struct RunOnConnect(&'static str);

impl r2d2::CustomizeConnection<diesel_multidb::AnyConnection, diesel_multidb::ConnectError>
    for RunOnConnect
{
    fn on_acquire(
        &self,
        conn: &mut diesel_multidb::AnyConnection,
    ) -> Result<(), diesel_multidb::ConnectError> {
        use diesel::connection::SimpleConnection;
        Ok(conn.batch_execute(self.0)?)
    }
}

/// Counts checkouts.
#[derive(Debug, Default, Clone)]
struct CountCheckouts(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl r2d2::HandleEvent for CountCheckouts {
    fn handle_checkout(&self, _: r2d2::event::CheckoutEvent) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn r2d2_hooks_per_alias_run_set_statements_and_see_events() {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        application_name: String,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        timeout: i32,
    }
    let s = Scratch::new();
    let db = pg::fresh("registry_hooks");
    let events = CountCheckouts::default();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(db.primary_url.clone()))
        .database("lite", DatabaseConfig::new(s.sqlite_url("lite")))
        .database("broken", DatabaseConfig::new(s.sqlite_url("broken")))
        .builder()
        .connection_customizer("default", RunOnConnect("SET application_name = 'hooked'"))
        .event_handler("default", events.clone())
        .connection_customizer("lite", RunOnConnect("PRAGMA busy_timeout = 1234"))
        .connection_customizer("broken", RunOnConnect("NOT SQL"))
        .build()
        .unwrap();
    let name: Name = diesel::sql_query("SHOW application_name")
        .get_result(&mut *dbs.using("default").unwrap())
        .unwrap();
    assert_eq!(name.application_name, "hooked");
    assert_eq!(events.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let t: Timeout = diesel::sql_query("PRAGMA busy_timeout")
        .get_result(&mut *dbs.using("lite").unwrap())
        .unwrap();
    assert_eq!(t.timeout, 1234);
    // A failing setup fails the same way every time: the checkout fails at once, with it.
    let started = std::time::Instant::now();
    let e = dbs.using("broken").unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        chain(&e).starts_with(
            "cannot get a connection to database `broken`: the per-connection setup failed: "
        ),
        "{}",
        chain(&e)
    );
}

/// During a failover a checkout waits for the new primary as long as the URL's
/// failover_timeout allows, not only the pool's (shorter) connection_timeout.
#[test]
fn a_checkout_during_a_failover_waits_for_the_new_primary() {
    use diesel_multidb_testkit::PgCluster;
    let cluster = PgCluster::start(1);
    let old_primary = cluster.primary_port();
    let standby = cluster.standby_ports()[0];
    let url = crate::multihost::url(
        &crate::multihost::all_ports(&cluster),
        "postgres",
        "failover_timeout=30&connect_timeout=2",
    );
    let mut alias = DatabaseConfig::new(url);
    alias.connection_timeout_secs = Some(1);
    alias.max_size = Some(2);
    let dbs = Config::new().database("default", alias).build().unwrap();
    assert_eq!(
        dbs.alias("default").unwrap().checkout_timeout(),
        std::time::Duration::from_secs(30)
    );
    // A connection the application holds through the failover (the multi-host connections of
    // one URL share what they know of the cluster while one of them lives).
    let mut held = dbs.using("default").unwrap();
    diesel::sql_query("SELECT 1").execute(&mut *held).unwrap();

    cluster.kill(old_primary);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(3));
            cluster.promote(standby);
        });
        // The checkout either opens a new connection (which waits for a primary) or hands
        // out the idle one (whose ping drops its dead primary session without failing);
        // either way the first transaction waits for the new primary instead of failing
        // after the pool's one-second connection_timeout.
        let started = std::time::Instant::now();
        let mut conn = dbs
            .using("default")
            .unwrap_or_else(|e| panic!("after {:?}: {}", started.elapsed(), chain(&e)));
        #[derive(QueryableByName)]
        struct Port {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            port: i32,
        }
        let p: Port = conn
            .transaction(|conn| {
                diesel::sql_query("SELECT inet_server_port() AS port").get_result(&mut *conn)
            })
            .unwrap_or_else(|e| panic!("after {:?}: {e}", started.elapsed()));
        assert!(started.elapsed() > std::time::Duration::from_secs(1));
        assert_eq!(p.port as u16, standby);
    });
    drop(held);
}
