//! The async registry (`AsyncDatabases`): the sync registry's config, routers and migration
//! planner over deadpool (and bb8) pools of `MultiHostConnection<AsyncPgConnection>`,
//! against the shared PostgreSQL cluster (a primary and two streaming standbys).
//!
//! Every assertion is on what the servers answered: rows found, tables present, the port
//! and recovery state of the server that ran a read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use diesel_multidb::{
    App, AsyncDatabases, BackendKind, BuildError, Config, DatabaseConfig, Hints, MigrateEvent,
    MigrateTo, PoolError, UnitOfWorkError,
};
use diesel_multidb_testkit::PgCluster;

use crate::common::analytics::page_views;
use crate::common::blog::posts;
use crate::common::Scratch;
use crate::multihost::{all_ports, url, Server, WHO};

type E = Box<dyn std::error::Error + Send + Sync>;

/// A model no router knows (falls back to `default`).
struct Loose;
diesel_multidb::models! { "loose" => [Loose = "loose"] }

/// The error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A slug no other cycle, test or run uses.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Two fresh databases on the shared cluster, `default` (app `blog`) and `analytics` (app
/// `analytics`), both multi-host aliases, with the standard migrations in a scratch
/// directory.
fn two_aliases(prefix: &str, s: &Scratch) -> Config {
    let cluster = PgCluster::shared();
    let ports = all_ports(cluster);
    let main = cluster.create_database(&format!("{prefix}_main"));
    let stats = cluster.create_database(&format!("{prefix}_stats"));
    let mut config = Config::new()
        .database("default", DatabaseConfig::new(url(&ports, &main, "")))
        .database("analytics", DatabaseConfig::new(url(&ports, &stats, "")))
        .app("blog", "default")
        .app("analytics", "analytics");
    config.migrations_dir = Some(s.standard_migrations());
    config
}

fn with_apps(config: Config) -> diesel_multidb::DatabasesBuilder {
    config
        .builder()
        .app(App::new("blog").model::<posts::table>())
        .app(App::new("analytics").model::<page_views::table>())
}

/// Migrates every alias twice: the first run applies each app's migrations on its alias
/// only, the second applies nothing, and a plan then has nothing pending.
async fn migrate_twice(dbs: &AsyncDatabases) {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let first = dbs
        .migrate_all_with(move |event| {
            if let MigrateEvent::Applied(m, _) = event {
                seen.lock()
                    .unwrap()
                    .push(format!("{}.{}", m.app, m.version));
            }
        })
        .await
        .expect("migrate");
    let ran = |i: usize| {
        first[i]
            .migrations
            .iter()
            .map(|m| format!("{}.{}", m.app, m.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(first[0].alias, "default");
    assert_eq!(ran(0), ["blog.20240101000000", "blog.20240102000000"]);
    assert_eq!(first[1].alias, "analytics");
    assert_eq!(ran(1), ["analytics.20240101000000"]);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "blog.20240101000000",
            "blog.20240102000000",
            "analytics.20240101000000"
        ],
        "progress reported each migration as it was applied"
    );
    let second = dbs.migrate_all().await.expect("migrate again");
    assert!(
        second.iter().all(|a| a.migrations.is_empty()),
        "a second run applied {second:?}"
    );
    for plan in dbs.plan_all().await.expect("plan") {
        assert!(
            plan.migrations.is_empty(),
            "pending after migrate: {plan:?}"
        );
    }
}

/// Routing per model, migrations per alias, the tables only where their app is routed.
async fn routes_and_migrates(dbs: AsyncDatabases) -> Result<(), E> {
    migrate_twice(&dbs).await;

    let mut w = dbs.for_write::<posts::table>().await?;
    assert_eq!(w.alias(), "default");
    let slug = unique("async-post");
    diesel::insert_into(posts::table)
        .values((posts::slug.eq(&slug), posts::title.eq("A")))
        .execute(&mut w)
        .await?;
    // Read your own write on the same connection.
    let title: String = posts::table
        .filter(posts::slug.eq(&slug))
        .select(posts::title)
        .get_result(&mut w)
        .await?;
    assert_eq!(title, "A");
    drop(w);

    let mut w = dbs.for_write::<page_views::table>().await?;
    assert_eq!(w.alias(), "analytics");
    diesel::insert_into(page_views::table)
        .values((page_views::id.eq(1), page_views::path.eq("/a")))
        .execute(&mut w)
        .await?;
    drop(w);

    PgCluster::shared().wait_for_replay();
    let mut r = dbs.for_read::<posts::table>().await?;
    assert_eq!(r.alias(), "default");
    let found: i64 = posts::table
        .filter(posts::slug.eq(&slug))
        .count()
        .get_result(&mut r)
        .await?;
    assert_eq!(found, 1);
    // The tables live only where their app is routed.
    assert!(page_views::table
        .count()
        .get_result::<i64>(&mut r)
        .await
        .is_err());
    drop(r);
    let mut a = dbs.using("analytics").await?;
    assert!(posts::table
        .count()
        .get_result::<i64>(&mut a)
        .await
        .is_err());
    assert_eq!(
        page_views::table.count().get_result::<i64>(&mut a).await?,
        1
    );
    drop(a);

    // A model no router knows goes to `default`; the route says who decided.
    assert_eq!(dbs.for_read::<Loose>().await?.alias(), "default");
    let route = dbs.route_write::<page_views::table>(&Hints::new());
    assert_eq!(route.alias, "analytics");
    assert!(
        route.reason.to_string().contains("AppLabelRouter"),
        "{}",
        route.reason
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_each_model_to_its_alias_and_migrates_each_alias_once() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_route", &s))
        .build_async()
        .await
        .expect("async registry");
    assert!(!dbs.uses_bb8());
    assert!(dbs.aliases().all(|a| a.backend() == BackendKind::Postgres));
    routes_and_migrates(dbs).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_pools_route_and_migrate_the_same() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_bb8", &s))
        .bb8_pools(true)
        .build_async()
        .await
        .expect("async registry on bb8");
    assert!(dbs.uses_bb8());
    routes_and_migrates(dbs).await.unwrap();
}

/// for_write, then a read of the row just written on the same connection: never missed,
/// while other reads still go to standbys.
async fn reads_own_writes(dbs: &AsyncDatabases, what: &str) {
    const CYCLES: usize = 100;
    dbs.migrate_all().await.expect("migrate");
    PgCluster::shared().wait_for_replay();
    // Warm one connection: its standby session opens in the background.
    {
        let mut c = dbs.for_write::<posts::table>().await.unwrap();
        assert!(
            c.wait_for_standby(Duration::from_secs(10)).await,
            "no standby became ready for reads"
        );
    }
    let standbys = PgCluster::shared().standby_ports();
    let (mut misses, mut on_standby) = (0, 0);
    for _ in 0..CYCLES {
        let slug = unique("ryw");
        let mut w = dbs.for_write::<posts::table>().await.unwrap();
        assert_eq!(w.alias(), "default");
        let n = diesel::insert_into(posts::table)
            .values((posts::slug.eq(&slug), posts::title.eq("t")))
            .execute(&mut w)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let count: i64 = posts::table
            .filter(posts::slug.eq(&slug))
            .count()
            .get_result(&mut w)
            .await
            .unwrap();
        if count == 0 {
            misses += 1;
        }
        // Where an unrelated read runs, per the server.
        let s: Server = diesel::sql_query(WHO).get_result(&mut w).await.unwrap();
        if standbys.contains(&(s.port as u16)) {
            assert!(s.in_recovery);
            on_standby += 1;
        }
    }
    eprintln!("async registry ({what}) for_write: {misses} misses of {CYCLES}, {on_standby} other reads on standbys");
    assert_eq!(misses, 0, "for_write connections missed their own rows");
    // Reads of a connection that wrote nothing go to a standby once one is ready.
    PgCluster::shared().wait_for_replay();
    let mut r = dbs.for_read::<posts::table>().await.unwrap();
    assert!(r.wait_for_standby(Duration::from_secs(10)).await);
    let s: Server = diesel::sql_query(WHO).get_result(&mut r).await.unwrap();
    assert!(
        s.in_recovery && standbys.contains(&(s.port as u16)),
        "{}",
        s.port
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_write_reads_its_own_writes_deadpool_and_bb8() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_ryw", &s))
        .build_async()
        .await
        .unwrap();
    reads_own_writes(&dbs, "deadpool").await;
    let s2 = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_ryw8", &s2))
        .bb8_pools(true)
        .build_async()
        .await
        .unwrap();
    reads_own_writes(&dbs, "bb8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_aliases_and_unservable_aliases_are_clear_errors() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_err", &s))
        .build_async()
        .await
        .unwrap();
    let e = dbs.using("nope").await.unwrap_err();
    assert!(matches!(&e, PoolError::UnknownAlias { alias } if alias == "nope"));
    assert_eq!(e.to_string(), "no database `nope` is declared");

    // A SQLite alias cannot be served by the async registry: the build names it.
    let cluster = PgCluster::shared();
    let db = cluster.create_database("areg_sqlite");
    let e = Config::new()
        .database(
            "default",
            DatabaseConfig::new(url(&all_ports(cluster), &db, "").replacen(
                "postgres@",
                "postgres:hunter2secret@",
                1,
            )),
        )
        .database("local", DatabaseConfig::new(s.sqlite_url("local")))
        .build_async::<diesel_multidb::MultiHostConnection<diesel_async::AsyncPgConnection>>()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BuildError::NotAsync { alias, .. } if alias == "local"),
        "{e:?}"
    );
    let text = format!("{e} {e:?}");
    assert!(text.contains("database `local`"), "{text}");
    assert!(text.contains("SQLite"), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");

    // A server that refuses: the checkout names the alias, never the password.
    let mut refused = DatabaseConfig::new("postgres://app:hunter2secret@127.0.0.1:1/x");
    refused.connection_timeout_secs = Some(1);
    let dbs: AsyncDatabases = Config::new()
        .database("default", refused)
        .build_async()
        .await
        .unwrap();
    let e = dbs.using("default").await.unwrap_err();
    let text = format!("{e} {e:?} {}", chain(&e));
    assert!(
        e.to_string()
            .starts_with("cannot get a connection to database `default`"),
        "{e}"
    );
    assert!(!text.contains("hunter2secret"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_on_the_write_alias() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_tx", &s))
        .build_async()
        .await
        .unwrap();
    dbs.migrate_all().await.unwrap();
    let kept = unique("kept");
    let dropped = unique("dropped");
    let port: i32 = dbs
        .transaction::<posts::table, _, E, _>(async |c| {
            diesel::insert_into(posts::table)
                .values((posts::slug.eq(&kept), posts::title.eq("k")))
                .execute(c)
                .await?;
            let s: Server = diesel::sql_query(WHO).get_result(c).await?;
            assert!(!s.in_recovery, "a read in a transaction ran on a standby");
            Ok(s.port)
        })
        .await
        .unwrap();
    assert_eq!(port as u16, PgCluster::shared().primary_port());
    let failed: Result<(), E> = dbs
        .transaction::<posts::table, _, E, _>(async |c| {
            diesel::insert_into(posts::table)
                .values((posts::slug.eq(&dropped), posts::title.eq("d")))
                .execute(c)
                .await?;
            Err("changed my mind".into())
        })
        .await;
    assert_eq!(failed.unwrap_err().to_string(), "changed my mind");
    let mut c = dbs.using("default").await.unwrap();
    c.pin_to_primary();
    let slugs: Vec<String> = posts::table
        .filter(posts::slug.eq_any([&kept, &dropped]))
        .select(posts::slug)
        .load(&mut c)
        .await
        .unwrap();
    assert_eq!(slugs, [kept]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_of_work_commits_on_every_alias_or_none() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_uow", &s))
        .build_async()
        .await
        .unwrap();
    dbs.migrate_all().await.unwrap();
    let slug = unique("uow");

    let mut uow = dbs.unit_of_work();
    let c = uow.for_write::<posts::table>().await.unwrap();
    diesel::insert_into(posts::table)
        .values((posts::slug.eq(&slug), posts::title.eq("u")))
        .execute(c)
        .await
        .unwrap();
    let c = uow.for_write::<page_views::table>().await.unwrap();
    diesel::insert_into(page_views::table)
        .values((page_views::id.eq(7), page_views::path.eq("/u")))
        .execute(c)
        .await
        .unwrap();
    assert_eq!(uow.aliases().collect::<Vec<_>>(), ["default", "analytics"]);
    assert_eq!(uow.commit().await.unwrap(), ["default", "analytics"]);

    // Rolled back on both.
    let mut uow = dbs.unit_of_work();
    diesel::insert_into(posts::table)
        .values((posts::slug.eq(unique("gone")), posts::title.eq("g")))
        .execute(uow.using("default").await.unwrap())
        .await
        .unwrap();
    diesel::insert_into(page_views::table)
        .values((page_views::id.eq(8), page_views::path.eq("/g")))
        .execute(uow.using("analytics").await.unwrap())
        .await
        .unwrap();
    uow.rollback().await.unwrap();

    // An unknown alias inside a unit of work names it.
    let mut uow = dbs.unit_of_work();
    let e = uow.using("nope").await.unwrap_err();
    assert!(matches!(
        e,
        UnitOfWorkError::Connect(PoolError::UnknownAlias { .. })
    ));
    uow.rollback().await.unwrap();

    let mut a = dbs.using("analytics").await.unwrap();
    a.pin_to_primary();
    let ids: Vec<i32> = page_views::table
        .select(page_views::id)
        .order(page_views::id)
        .load(&mut a)
        .await
        .unwrap();
    assert_eq!(ids, [7]);
    let mut d = dbs.using("default").await.unwrap();
    d.pin_to_primary();
    let n: i64 = posts::table.count().get_result(&mut d).await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_goes_back_to_zero_on_its_alias() {
    crate::trace();
    let s = Scratch::new();
    let dbs: AsyncDatabases = with_apps(two_aliases("areg_zero", &s))
        .build_async()
        .await
        .unwrap();
    dbs.migrate_all().await.unwrap();
    let plan = dbs
        .plan_app_to("default", "blog", &MigrateTo::Zero)
        .await
        .unwrap();
    assert_eq!(plan.migrations.len(), 2);
    let undone = dbs
        .migrate_app_to("default", "blog", &MigrateTo::Zero)
        .await
        .unwrap();
    assert_eq!(undone.migrations[0].version, "20240102000000");
    // The records say so: both are pending again (the test's down.sql changes nothing).
    let pending = dbs.plan("default").await.unwrap();
    assert_eq!(pending.migrations.len(), 2);
    // show_migrations tells the same per app: blog unapplied on default, analytics applied
    // on its alias.
    let shown = dbs.show_all_migrations().await.unwrap();
    let status = |alias: &str| {
        let a = shown
            .iter()
            .find(|a| a.alias == alias)
            .expect("alias shown");
        a.apps
            .iter()
            .map(|app| {
                let applied = app.migrations.iter().filter(|(_, on)| *on).count();
                (app.app.clone(), applied, app.migrations.len())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(status("default"), [("blog".to_string(), 0, 2)]);
    assert_eq!(status("analytics"), [("analytics".to_string(), 1, 1)]);
    assert_eq!(
        dbs.show_migrations("default").await.unwrap(),
        shown[0],
        "one alias as in the list"
    );
    // An app not allowed on an alias is refused there, naming both.
    let e = dbs
        .migrate_app_to("analytics", "blog", &MigrateTo::Latest)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the routers do not allow the migrations of app `blog` on database `analytics`"
    );
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The server process of the primary session of a connection of `default` (in a
/// transaction: on the primary).
async fn primary_pid(dbs: &AsyncDatabases) -> i32 {
    dbs.transaction_on::<_, E, _>("default", async |c| {
        let p: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(c)
            .await?;
        Ok(p.pid)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_pools_honour_the_lifetime_and_the_idle_timeout() {
    crate::trace();
    for (setting, name) in [
        ("max_lifetime_secs", "lifetime"),
        ("idle_timeout_secs", "idle"),
    ] {
        let s = Scratch::new();
        let mut config = two_aliases(&format!("areg_{name}"), &s);
        let db = config.databases.get_mut("default").expect("default");
        db.max_size = Some(1);
        match setting {
            "max_lifetime_secs" => db.max_lifetime_secs = Some(1),
            _ => db.idle_timeout_secs = Some(1),
        }
        let dbs: AsyncDatabases = with_apps(config).build_async().await.unwrap();
        let first = primary_pid(&dbs).await;
        // Checked out again at once: the same connection.
        assert_eq!(primary_pid(&dbs).await, first, "{setting}: reused at once");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        // Past the setting: the pool closed it and opened another.
        assert_ne!(
            primary_pid(&dbs).await,
            first,
            "{setting}: replaced after 1 s"
        );
    }
}
