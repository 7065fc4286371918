//! Routers against real databases: primary/replica over a streaming-replication cluster,
//! mirrors in test mode, custom routers with hints.

use diesel::prelude::*;
use diesel_multidb::{
    App, Config, DatabaseConfig, DatabaseRouter, Databases, Hints, ModelInfo, PrimaryReplicaRouter,
    ReadStrategy,
};

use crate::common::blog::posts;
use crate::common::Scratch;
use crate::pg;

#[derive(QueryableByName)]
struct Recovery {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    standby: bool,
}

fn in_recovery(conn: &mut diesel_multidb::AnyConnection) -> bool {
    diesel::sql_query("SELECT pg_is_in_recovery() AS standby")
        .get_result::<Recovery>(conn)
        .unwrap()
        .standby
}

fn create_posts(dbs: &Databases) {
    diesel::sql_query("CREATE TABLE posts (slug TEXT PRIMARY KEY, title TEXT NOT NULL)")
        .execute(&mut *dbs.using("default").unwrap())
        .unwrap();
}

/// An alias that mirrors `default` at `url`.
fn mirror_of_default(url: String) -> DatabaseConfig {
    DatabaseConfig {
        mirror_of: Some("default".into()),
        ..DatabaseConfig::new(url)
    }
}

#[test]
fn writes_go_to_the_primary_and_reads_to_the_standbys() {
    let db = pg::fresh("routers_pr");
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(db.primary_url.clone()))
        .database("replica1", mirror_of_default(db.standby_urls[0].clone()))
        .database("replica2", mirror_of_default(db.standby_urls[1].clone()))
        .builder()
        .router(
            PrimaryReplicaRouter::new("default")
                .replica("replica1")
                .replica("replica2")
                .strategy(ReadStrategy::RoundRobin),
        )
        .app(App::new("blog").model::<posts::table>())
        .build()
        .unwrap();
    create_posts(&dbs);
    let mut w = dbs.for_write::<posts::table>().unwrap();
    assert_eq!(w.alias(), "default");
    assert!(!in_recovery(&mut w));
    diesel::insert_into(posts::table)
        .values((posts::slug.eq("r"), posts::title.eq("replicated")))
        .execute(&mut *w)
        .unwrap();
    drop(w);
    pg::wait_for_replay();
    let mut served = Vec::new();
    for _ in 0..4 {
        let mut r = dbs.for_read::<posts::table>().unwrap();
        assert!(in_recovery(&mut r), "reads must be served by a standby");
        assert_eq!(
            posts::table
                .select(posts::title)
                .first::<String>(&mut *r)
                .unwrap(),
            "replicated"
        );
        served.push(r.alias().to_owned());
    }
    // Round robin alternates (where it starts depends on the routing done at start-up).
    assert_ne!(served[0], served[1]);
    assert_eq!((&served[0], &served[1]), (&served[2], &served[3]));
    // Mirrors are skipped by migrations.
    assert!(
        dbs.migrate_all()
            .unwrap()
            .iter()
            .filter(|a| a.skipped())
            .count()
            == 2
    );
}

#[test]
fn test_mirrors_serve_the_mirror_from_its_primary() {
    let db = pg::fresh("routers_mirror");
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(db.primary_url.clone()))
        .database("replica", mirror_of_default(db.standby_urls[0].clone()))
        .builder()
        .router(PrimaryReplicaRouter::new("default").replica("replica"))
        .test_mirrors(true)
        .build()
        .unwrap();
    assert_eq!(dbs.alias("replica").unwrap().served_by(), "default");
    create_posts(&dbs);
    diesel::insert_into(posts::table)
        .values((posts::slug.eq("m"), posts::title.eq("mirrored")))
        .execute(&mut *dbs.for_write::<posts::table>().unwrap())
        .unwrap();
    // No waiting for replication: the mirror reads the primary itself.
    let mut r = dbs.for_read::<posts::table>().unwrap();
    assert_eq!(r.alias(), "replica");
    assert!(!in_recovery(&mut r));
    assert_eq!(
        posts::table
            .select(posts::title)
            .first::<String>(&mut *r)
            .unwrap(),
        "mirrored"
    );
}

#[test]
fn test_mirrors_on_sqlite() {
    let s = Scratch::new();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .database("replica", DatabaseConfig::mirror("default"))
        .builder()
        .router(PrimaryReplicaRouter::new("default").replica("replica"))
        .test_mirrors(true)
        .build()
        .unwrap();
    create_posts(&dbs);
    diesel::insert_into(posts::table)
        .values((posts::slug.eq("m"), posts::title.eq("mirrored")))
        .execute(&mut *dbs.for_write::<posts::table>().unwrap())
        .unwrap();
    let mut r = dbs.for_read::<posts::table>().unwrap();
    assert_eq!(r.alias(), "replica");
    assert_eq!(posts::table.count().get_result::<i64>(&mut *r).unwrap(), 1);
}

/// A tenant router: the `tenant` hint picks the alias, else no opinion.
struct TenantRouter;

impl DatabaseRouter for TenantRouter {
    fn db_for_read(&self, _: &ModelInfo, hints: &Hints) -> Option<String> {
        hints.get("tenant").map(|t| format!("tenant_{t}"))
    }
    fn db_for_write(&self, m: &ModelInfo, hints: &Hints) -> Option<String> {
        self.db_for_read(m, hints)
    }
    fn aliases(&self) -> Vec<String> {
        vec!["tenant_a".into(), "tenant_b".into()]
    }
}

#[test]
fn hints_route_to_tenant_databases() {
    let s = Scratch::new();
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .database("tenant_a", DatabaseConfig::new(s.sqlite_url("a")))
        .database("tenant_b", DatabaseConfig::new(s.sqlite_url("b")))
        .builder()
        .router(TenantRouter)
        .build()
        .unwrap();
    for (tenant, n) in [("a", 1), ("b", 2)] {
        let hints = Hints::new().with("tenant", tenant);
        let mut c = dbs.for_write_hinted::<posts::table>(&hints).unwrap();
        assert_eq!(c.alias(), format!("tenant_{tenant}"));
        diesel::sql_query("CREATE TABLE posts (slug TEXT PRIMARY KEY, title TEXT NOT NULL)")
            .execute(&mut *c)
            .unwrap();
        for i in 0..n {
            diesel::insert_into(posts::table)
                .values((posts::slug.eq(format!("{i}")), posts::title.eq("t")))
                .execute(&mut *c)
                .unwrap();
        }
    }
    let count = |t: &str| {
        posts::table
            .count()
            .get_result::<i64>(
                &mut *dbs
                    .for_read_hinted::<posts::table>(&Hints::new().with("tenant", t))
                    .unwrap(),
            )
            .unwrap()
    };
    assert_eq!((count("a"), count("b")), (1, 2));
    assert_eq!(dbs.for_read::<posts::table>().unwrap().alias(), "default");

    // A router naming an undeclared alias fails at start-up, not at the first query.
    let e = Config::new()
        .database("default", DatabaseConfig::new(s.sqlite_url("default")))
        .builder()
        .router(TenantRouter)
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("names database `tenant_a`, which is not declared"),
        "{e}"
    );
}
