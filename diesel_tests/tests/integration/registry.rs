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

#[test]
fn a_password_authenticated_alias_never_shows_its_password() {
    use crate::cluster::APP_PASSWORD;
    let s = Scratch::new();
    let db = pg::fresh("registry_password");
    let mut wrong = DatabaseConfig::new(db.app_primary_url("wrong-pass-xyz"));
    wrong.connection_timeout_secs = Some(2);
    let dbs = Config::new()
        .database(
            "default",
            DatabaseConfig::new(db.app_primary_url(APP_PASSWORD)),
        )
        .database("wrong", wrong)
        .database("lite", DatabaseConfig::new(s.sqlite_url("lite")))
        .build()
        .unwrap();
    dbs.ping("default").expect("app connects with its password");
    let e = dbs.using("wrong").unwrap_err();
    let text = format!(
        "{e} | {e:?} | {dbs:?} | {:?}",
        dbs.alias("default").unwrap()
    );
    assert!(
        e.to_string()
            .starts_with("cannot get a connection to database `wrong`"),
        "{e}"
    );
    assert!(e.to_string().contains("(authentication failed)"), "{e}");
    for secret in [APP_PASSWORD, "wrong-pass-xyz"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("app:********@127.0.0.1"), "{text}");
}
