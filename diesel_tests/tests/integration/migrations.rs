//! Migrations per alias: only the apps the routers allow, mirrors skipped, plans, status,
//! records keyed by (app, version), failures named and contained.

use diesel::prelude::*;
use diesel_multidb::{
    AppLabelRouter, Config, DatabaseConfig, Databases, MigrateError, MigrateEvent,
    PrimaryReplicaRouter, MIGRATIONS_TABLE,
};

use crate::common::Scratch;
use crate::pg;

fn with_dir(mut config: Config, root: std::path::PathBuf) -> Config {
    config.migrations_dir = Some(root);
    config
}

fn table_exists(dbs: &Databases, alias: &str, table: &str) -> bool {
    diesel::sql_query(format!("SELECT 1 FROM {table} WHERE 1 = 0"))
        .execute(&mut *dbs.using(alias).unwrap())
        .is_ok()
}

fn records(dbs: &Databases, alias: &str) -> Vec<(String, String)> {
    mod t {
        diesel::table! { __diesel_multidb_migrations (app_label, version) { app_label -> Text, version -> Text, } }
    }
    use t::__diesel_multidb_migrations::dsl::*;
    __diesel_multidb_migrations
        .select((app_label, version))
        .order((app_label, version))
        .load(&mut *dbs.using(alias).unwrap())
        .unwrap()
}

#[test]
fn each_alias_gets_only_the_apps_its_routers_allow() {
    let s = Scratch::new();
    let config = with_dir(
        Config::new()
            .database("default", DatabaseConfig::new(s.sqlite_url("default")))
            .database("analytics", DatabaseConfig::new(s.sqlite_url("analytics")))
            .database("replica", DatabaseConfig::mirror("default"))
            .app("blog", "default")
            .app("analytics", "analytics"),
        s.standard_migrations(),
    );
    let dbs = config.build().unwrap();

    // The plan, before anything ran: nothing is written.
    let plan = dbs.plan_all().unwrap();
    let summary: Vec<(String, Vec<String>)> = plan
        .iter()
        .map(|p| {
            (
                p.alias.clone(),
                p.migrations
                    .iter()
                    .map(|m| format!("{}.{}", m.app, m.name))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "default".to_owned(),
                vec![
                    "blog.2024-01-01-000000_create_posts".to_owned(),
                    "blog.2024-01-02-000000_create_comments".to_owned()
                ]
            ),
            (
                "analytics".to_owned(),
                vec!["analytics.2024-01-01-000000_create_page_views".to_owned()]
            ),
            ("replica".to_owned(), vec![]),
        ]
    );
    assert_eq!(plan[2].mirror_of.as_deref(), Some("default"));
    assert!(
        !table_exists(&dbs, "default", MIGRATIONS_TABLE),
        "a plan writes nothing"
    );

    let mut events = Vec::new();
    dbs.migrate_all_with(&mut |e| {
        events.push(match e {
            MigrateEvent::Skipped { alias, mirror_of } => format!("skip {alias} ({mirror_of})"),
            MigrateEvent::Start { alias, pending } => format!("start {alias} {pending}"),
            MigrateEvent::Applying(m) => format!("applying {m}"),
            MigrateEvent::Applied(m, _) => format!("applied {m}"),
            _ => "other".to_owned(),
        })
    })
    .unwrap();
    assert_eq!(
        events,
        [
            "start default 2",
            "applying blog.2024-01-01-000000_create_posts on default",
            "applied blog.2024-01-01-000000_create_posts on default",
            "applying blog.2024-01-02-000000_create_comments on default",
            "applied blog.2024-01-02-000000_create_comments on default",
            "start analytics 1",
            "applying analytics.2024-01-01-000000_create_page_views on analytics",
            "applied analytics.2024-01-01-000000_create_page_views on analytics",
            "skip replica (default)",
        ]
    );
    assert!(table_exists(&dbs, "default", "posts") && !table_exists(&dbs, "default", "page_views"));
    assert!(
        table_exists(&dbs, "analytics", "page_views") && !table_exists(&dbs, "analytics", "posts")
    );

    // Idempotent, and the status says everything is applied.
    assert!(dbs
        .migrate_all()
        .unwrap()
        .iter()
        .all(|a| a.migrations.is_empty()));
    let status = dbs.show_migrations("default").unwrap();
    assert_eq!(status.apps.len(), 1);
    assert_eq!(status.apps[0].app, "blog");
    assert!(status.apps[0]
        .migrations
        .iter()
        .all(|(_, applied)| *applied));
    assert_eq!(
        dbs.show_migrations("replica").unwrap().mirror_of.as_deref(),
        Some("default")
    );
}

#[test]
fn status_shows_pending_and_applied() {
    let s = Scratch::new();
    let root = s.migration(
        "blog",
        "2024-01-01-000000_one",
        "CREATE TABLE one (x INTEGER);",
    );
    let config = with_dir(
        Config::new().database("default", DatabaseConfig::new(s.sqlite_url("d"))),
        root.clone(),
    );
    config.clone().build().unwrap().migrate("default").unwrap();
    s.migration(
        "blog",
        "2024-01-02-000000_two",
        "CREATE TABLE two (x INTEGER);",
    );
    let dbs = config.build().unwrap();
    let status = dbs.show_migrations("default").unwrap();
    assert_eq!(
        status.apps[0].migrations,
        [
            ("2024-01-01-000000_one".to_owned(), true),
            ("2024-01-02-000000_two".to_owned(), false)
        ]
    );
    assert_eq!(dbs.plan("default").unwrap().migrations.len(), 1);
}

#[test]
fn two_apps_with_the_same_version_on_one_alias_do_not_collide() {
    let s = Scratch::new();
    s.migration(
        "alpha",
        "2024-01-01-000000_init",
        "CREATE TABLE alpha_t (x INTEGER);",
    );
    let root = s.migration(
        "beta",
        "2024-01-01-000000_init",
        "CREATE TABLE beta_t (x INTEGER);",
    );
    let dbs = with_dir(
        Config::new().database("default", DatabaseConfig::new(s.sqlite_url("d"))),
        root,
    )
    .build()
    .unwrap();
    let done = dbs.migrate("default").unwrap();
    assert_eq!(done.apps, ["alpha", "beta"]);
    assert_eq!(done.migrations.len(), 2);
    assert_eq!(
        records(&dbs, "default"),
        [
            ("alpha".to_owned(), "20240101000000".to_owned()),
            ("beta".to_owned(), "20240101000000".to_owned())
        ]
    );
}

#[test]
fn a_failed_migration_names_alias_app_and_migration_and_keeps_earlier_records() {
    let s = Scratch::new();
    s.migration(
        "blog",
        "2024-01-01-000000_good",
        "CREATE TABLE good (x INTEGER);",
    );
    s.migration(
        "blog",
        "2024-01-02-000000_bad",
        "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;",
    );
    let root = s.migration(
        "blog",
        "2024-01-03-000000_later",
        "CREATE TABLE later (x INTEGER);",
    );
    let dbs = with_dir(
        Config::new().database("default", DatabaseConfig::new(s.sqlite_url("d"))),
        root,
    )
    .build()
    .unwrap();
    let e = dbs.migrate("default").unwrap_err();
    assert!(matches!(e, MigrateError::Failed { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with("migration blog.2024-01-02-000000_bad failed on database `default`"),
        "{msg}"
    );
    assert_eq!(
        records(&dbs, "default"),
        [("blog".to_owned(), "20240101000000".to_owned())]
    );
    assert!(table_exists(&dbs, "default", "good"));
    assert!(
        !table_exists(&dbs, "default", "half"),
        "the failed migration is rolled back"
    );
    assert!(
        !table_exists(&dbs, "default", "later"),
        "nothing runs after a failure"
    );
}

#[test]
fn routers_in_code_decide_on_postgres_and_sqlite() {
    let s = Scratch::new();
    let db = pg::fresh("migrate_routers");
    let dbs = with_dir(
        Config::new()
            .database("default", DatabaseConfig::new(db.primary_url.clone()))
            // Not a mirror: its URL says it accepts a standby (the default is read-write).
            .database(
                "replica",
                DatabaseConfig::new(format!(
                    "{}?target_session_attrs=standby",
                    db.standby_urls[0]
                )),
            )
            .database("analytics", DatabaseConfig::new(s.sqlite_url("analytics"))),
        s.standard_migrations(),
    )
    .builder()
    .router(AppLabelRouter::new().route("analytics", "analytics"))
    // `replica` is not declared a mirror: the router keeps migrations off it.
    .router(PrimaryReplicaRouter::new("default").replica("replica"))
    .build()
    .unwrap();
    let plan = dbs.plan_all().unwrap();
    let apps: Vec<(&str, Vec<String>)> = plan
        .iter()
        .map(|p| (p.alias.as_str(), p.apps.clone()))
        .collect();
    // The app map says analytics → analytics; blog has no mapping, so on `analytics` the
    // fallback (allow) applies too: Django's semantics.
    assert_eq!(
        apps,
        [
            ("default", vec!["blog".to_owned()]),
            ("analytics", vec!["analytics".to_owned(), "blog".to_owned()]),
            ("replica", vec![]),
        ]
    );
    dbs.migrate("default").unwrap();
    assert!(table_exists(&dbs, "default", "posts"));
    assert_eq!(records(&dbs, "default").len(), 2);
    pg::wait_for_replay();
    // The replica sees the primary's schema by replication, and was never migrated itself.
    assert!(table_exists(&dbs, "replica", "posts"));
    assert!(dbs.migrate("replica").unwrap().migrations.is_empty());
}

/// Three blog migrations with real down.sql files.
fn three_blog_migrations(s: &Scratch) -> std::path::PathBuf {
    let mut root = None;
    for (name, up, down) in [
        (
            "2024-01-01-000000_one",
            "CREATE TABLE one (x INTEGER);",
            "DROP TABLE one;",
        ),
        (
            "2024-01-02-000000_two",
            "CREATE TABLE two (x INTEGER);",
            "DROP TABLE two;",
        ),
        (
            "2024-01-03-000000_three",
            "CREATE TABLE three (x INTEGER);",
            "DROP TABLE three;",
        ),
    ] {
        let r = s.migration("blog", name, up);
        std::fs::write(r.join("blog").join(name).join("down.sql"), down).unwrap();
        root = Some(r);
    }
    root.unwrap()
}

fn reverse_migrations_on(dbs: &Databases) {
    use diesel_multidb::{Direction, MigrateTo};
    dbs.migrate("default").unwrap();
    assert_eq!(records(dbs, "default").len(), 3);

    // The plan shows the backward direction, newest first, and changes nothing.
    let to_one = MigrateTo::Version("2024-01-01-000000_one".into());
    let plan = dbs.plan_app_to("default", "blog", &to_one).unwrap();
    let steps: Vec<(String, Direction)> = plan
        .migrations
        .iter()
        .map(|m| (m.name.clone(), m.direction))
        .collect();
    assert_eq!(
        steps,
        [
            ("2024-01-03-000000_three".to_owned(), Direction::Backward),
            ("2024-01-02-000000_two".to_owned(), Direction::Backward),
        ]
    );
    assert!(table_exists(dbs, "default", "three"));

    let mut events = Vec::new();
    dbs.migrate_app_to_with("default", "blog", &to_one, &mut |e| {
        if let MigrateEvent::Reverted(m, _) = e {
            events.push(m.name.clone());
        }
    })
    .unwrap();
    assert_eq!(events, ["2024-01-03-000000_three", "2024-01-02-000000_two"]);
    assert!(table_exists(dbs, "default", "one"));
    assert!(!table_exists(dbs, "default", "two") && !table_exists(dbs, "default", "three"));
    assert_eq!(
        records(dbs, "default"),
        [("blog".to_owned(), "20240101000000".to_owned())]
    );

    // Forwards again to a version (a prefix of one name), then everything back to zero.
    let done = dbs
        .migrate_app_to("default", "blog", &MigrateTo::Version("2024-01-02".into()))
        .unwrap();
    assert_eq!(done.migrations.len(), 1);
    assert_eq!(done.migrations[0].direction, Direction::Forward);
    assert!(table_exists(dbs, "default", "two") && !table_exists(dbs, "default", "three"));
    let undone = dbs
        .migrate_app_to("default", "blog", &MigrateTo::Zero)
        .unwrap();
    assert_eq!(undone.migrations.len(), 2);
    assert!(records(dbs, "default").is_empty());
    assert!(!table_exists(dbs, "default", "one"));

    // Unknown app and version are named.
    assert_eq!(
        dbs.migrate_app_to("default", "nope", &MigrateTo::Zero)
            .unwrap_err()
            .to_string(),
        "no app `nope` is declared"
    );
    assert_eq!(
        dbs.migrate_app_to("default", "blog", &MigrateTo::Version("2023".into()))
            .unwrap_err()
            .to_string(),
        "app `blog` has no migration `2023`"
    );
}

#[test]
fn reverse_migrations_per_app_on_sqlite() {
    let s = Scratch::new();
    let root = three_blog_migrations(&s);
    let dbs = with_dir(
        Config::new().database("default", DatabaseConfig::new(s.sqlite_url("d"))),
        root,
    )
    .build()
    .unwrap();
    reverse_migrations_on(&dbs);
}

#[test]
fn reverse_migrations_per_app_on_postgres() {
    let s = Scratch::new();
    let root = three_blog_migrations(&s);
    let db = pg::fresh("migrate_reverse");
    let dbs = with_dir(
        Config::new().database("default", DatabaseConfig::new(db.primary_url.clone())),
        root,
    )
    .build()
    .unwrap();
    reverse_migrations_on(&dbs);
}

#[test]
fn a_plan_creates_no_sqlite_file() {
    let s = Scratch::new();
    let dbs = with_dir(
        Config::new().database("default", DatabaseConfig::new(s.sqlite_url("never"))),
        s.standard_migrations(),
    )
    .build()
    .unwrap();
    assert_eq!(dbs.plan("default").unwrap().migrations.len(), 3);
    assert!(dbs.show_migrations("default").unwrap().apps[0]
        .migrations
        .iter()
        .all(|(_, applied)| !applied));
    assert!(
        !s.sqlite_path("never").exists(),
        "planning created the database file"
    );
}
