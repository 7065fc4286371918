//! The registry and the CLI with a MySQL multi-host alias beside a PostgreSQL multi-host
//! alias and a SQLite alias (issue 10, sections 1 and 3): routers, migrations per alias, a
//! unit of work across all three, typed access, and a MySQL migration that fails half-way.
//!
//! Everything is checked on the servers themselves: tables and rows read on the MariaDB
//! source and replicas (as root, through the harness's client) and on the PostgreSQL
//! primary directly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diesel::prelude::*;
use diesel_multidb::{
    AnyConnection, App, BackendKind, Config, DatabaseConfig, Databases, MigrateError, MigrateEvent,
};
use diesel_multidb_testkit::{MariaDbCluster, PgCluster};

use crate::common::analytics::page_views;
use crate::common::blog::posts;
use crate::common::Scratch;
use crate::mysql::count_on;

/// The `shop` app, on the MySQL alias.
pub(crate) mod shop {
    diesel::table! { orders (id) { id -> Integer, item -> Text, } }
}
use shop::orders;

diesel_multidb::models! { "shop" => [shop::orders::table] }

type E = Box<dyn std::error::Error + Send + Sync>;

/// The databases behind the three aliases: a fresh MariaDB database on the shared cluster
/// (multi-host URL: source and both replicas), a fresh PostgreSQL database on the shared
/// cluster (multi-host URL: primary and both standbys), and a SQLite file.
struct Three {
    scratch: Scratch,
    maria: &'static MariaDbCluster,
    my_db: String,
    my_url: String,
    pg: &'static PgCluster,
    pg_db: String,
    pg_url: String,
    lite_url: String,
}

impl Three {
    fn new(prefix: &str) -> Three {
        crate::trace();
        let scratch = Scratch::new();
        let maria = MariaDbCluster::shared();
        let my_db = maria.create_database(prefix);
        let my_url = maria.db_url(&my_db, &maria.default_ports(), "connect_timeout=2");
        let pg = PgCluster::shared();
        let pg_db = pg.create_database(prefix);
        let pg_url = crate::multihost::url(
            &crate::multihost::all_ports(pg),
            &pg_db,
            "connect_timeout=2",
        );
        let lite_url = scratch.sqlite_url("lite");
        Three {
            scratch,
            maria,
            my_db,
            my_url,
            pg,
            pg_db,
            pg_url,
            lite_url,
        }
    }

    /// `shop` (MySQL), `blog` (PostgreSQL: posts, comments), `analytics` (SQLite).
    fn migrations(&self) -> PathBuf {
        self.scratch.standard_migrations();
        self.scratch.migration(
            "shop",
            "2024-01-01-000000_create_orders",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item VARCHAR(100) NOT NULL) ENGINE = InnoDB;",
        )
    }

    /// The config: `default` is the MySQL alias, `pg` the PostgreSQL one, `lite` SQLite; the
    /// `[apps]` map sends each app to its alias.
    fn config(&self) -> Config {
        let mut config = Config::new()
            .database("default", DatabaseConfig::new(self.my_url.clone()))
            .database("pg", DatabaseConfig::new(self.pg_url.clone()))
            .database("lite", DatabaseConfig::new(self.lite_url.clone()))
            .app("shop", "default")
            .app("blog", "pg")
            .app("analytics", "lite");
        config.migrations_dir = Some(self.migrations());
        config
    }

    /// The same as a `multidb.toml` in the scratch directory, for the CLI.
    fn write_toml(&self) {
        self.migrations();
        let text = format!(
            "migrations_dir = \"migrations\"\n\n\
             [databases.default]\nurl = \"{}\"\n\n\
             [databases.pg]\nurl = \"{}\"\n\n\
             [databases.lite]\nurl = \"sqlite://lite.sqlite3\"\n\n\
             [apps]\nshop = \"default\"\nblog = \"pg\"\nanalytics = \"lite\"\n",
            self.my_url, self.pg_url
        );
        std::fs::write(self.scratch.path().join("multidb.toml"), text).unwrap();
    }

    /// The first column of `sql` on the MariaDB source, as a number.
    fn on_source(&self, sql: &str) -> i64 {
        count_on(self.maria, self.maria.source_port(), &self.my_db, sql)
    }

    fn my_table_exists(&self, port: u16, table: &str) -> bool {
        count_on(
            self.maria,
            port,
            &self.my_db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME = '{table}'",
                self.my_db
            ),
        ) == 1
    }

    /// The migration records on the MariaDB source, `app version` sorted.
    fn my_records(&self) -> Vec<String> {
        if !self.my_table_exists(self.maria.source_port(), "__diesel_multidb_migrations") {
            return Vec::new();
        }
        let text = self.maria.query_one_db(
            self.maria.source_port(),
            &self.my_db,
            "SELECT GROUP_CONCAT(CONCAT(app_label, ' ', version) ORDER BY app_label, version \
             SEPARATOR ',') FROM __diesel_multidb_migrations",
        );
        if text == "NULL" || text.is_empty() {
            Vec::new()
        } else {
            text.split(',').map(str::to_owned).collect()
        }
    }

    /// The first column of `sql` on the PostgreSQL primary.
    fn on_pg(&self, sql: &str) -> String {
        crate::multihost::query_in(self.pg.primary_port(), &self.pg_db, sql)
    }
}

fn count_rows(conn: &mut AnyConnection, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .n
}

/// The MySQL variant of a registry connection.
fn mysql(conn: &mut AnyConnection) -> &mut crate::mysql::MyConn {
    match conn {
        AnyConnection::Mysql(c) => c,
        other => panic!("not a MySQL connection: {other:?}"),
    }
}

#[test]
fn a_registry_with_mysql_postgres_and_sqlite_aliases() {
    let t = Three::new("reg_three");
    let dbs: Databases = t
        .config()
        .builder()
        .app(App::new("shop").model::<orders::table>())
        .app(App::new("blog").model::<posts::table>())
        .app(App::new("analytics").model::<page_views::table>())
        .build()
        .expect("registry");
    for (alias, kind) in [
        ("default", BackendKind::Mysql),
        ("pg", BackendKind::Postgres),
        ("lite", BackendKind::Sqlite),
    ] {
        assert_eq!(dbs.alias(alias).unwrap().backend(), kind, "{alias}");
    }
    assert!(
        !format!("{dbs:?}").contains(MariaDbCluster::APP_PASSWORD),
        "the password shows in {dbs:?}"
    );

    // Migrations: each alias gets only its app's.
    let plan: Vec<(String, Vec<String>)> = dbs
        .plan_all()
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.alias,
                p.migrations
                    .iter()
                    .map(|m| format!("{}.{}", m.app, m.name))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        plan,
        [
            (
                "default".to_owned(),
                vec!["shop.2024-01-01-000000_create_orders".to_owned()]
            ),
            (
                "lite".to_owned(),
                vec!["analytics.2024-01-01-000000_create_page_views".to_owned()]
            ),
            (
                "pg".to_owned(),
                vec![
                    "blog.2024-01-01-000000_create_posts".to_owned(),
                    "blog.2024-01-02-000000_create_comments".to_owned()
                ]
            ),
        ]
    );
    let mut events = Vec::new();
    dbs.migrate_all_with(&mut |e| {
        events.push(match e {
            MigrateEvent::Start { alias, pending } => format!("start {alias} {pending}"),
            MigrateEvent::Applied(m, _) => format!("applied {m}"),
            _ => return,
        })
    })
    .expect("migrate_all");
    assert_eq!(
        events,
        [
            "start default 1",
            "applied shop.2024-01-01-000000_create_orders on default",
            "start lite 1",
            "applied analytics.2024-01-01-000000_create_page_views on lite",
            "start pg 2",
            "applied blog.2024-01-01-000000_create_posts on pg",
            "applied blog.2024-01-02-000000_create_comments on pg",
        ]
    );
    // Twice: nothing the second time.
    let again = dbs.migrate_all().expect("migrate_all again");
    assert!(
        again.iter().all(|a| a.migrations.is_empty()),
        "the second migrate_all ran {again:?}"
    );
    for (alias, app, names) in [
        ("default", "shop", vec!["2024-01-01-000000_create_orders"]),
        (
            "pg",
            "blog",
            vec![
                "2024-01-01-000000_create_posts",
                "2024-01-02-000000_create_comments",
            ],
        ),
        (
            "lite",
            "analytics",
            vec!["2024-01-01-000000_create_page_views"],
        ),
    ] {
        let status = dbs.show_migrations(alias).unwrap();
        assert_eq!(status.apps.len(), 1, "{alias}: {status:?}");
        assert_eq!(status.apps[0].app, app);
        let want: Vec<(String, bool)> = names.iter().map(|n| (n.to_string(), true)).collect();
        assert_eq!(status.apps[0].migrations, want, "{alias}");
    }
    // On the servers: the MySQL source has `orders` and the records of shop only; the
    // replicas have `orders` by replication; PostgreSQL has posts, not orders; MySQL has no
    // posts.
    let source = t.maria.source_port();
    assert!(t.my_table_exists(source, "orders"));
    assert!(!t.my_table_exists(source, "posts"));
    assert_eq!(t.my_records(), ["shop 20240101000000"]);
    t.maria.wait_for_replication();
    for port in t.maria.replica_ports() {
        assert!(
            t.my_table_exists(port, "orders"),
            "orders on replica {port}"
        );
    }
    assert_eq!(t.on_pg("to_regclass('posts') IS NOT NULL"), "true");
    assert_eq!(t.on_pg("to_regclass('orders') IS NULL"), "true");
    assert_eq!(
        t.on_pg("(SELECT string_agg(app_label || ' ' || version, ',' ORDER BY version) FROM __diesel_multidb_migrations)"),
        "blog 20240101000000,blog 20240102000000"
    );

    // Routers: each model's reads and writes go to its app's alias.
    for (alias, read, write) in [
        (
            "default",
            dbs.for_read::<orders::table>().unwrap().alias().to_owned(),
            dbs.for_write::<orders::table>().unwrap().alias().to_owned(),
        ),
        (
            "pg",
            dbs.for_read::<posts::table>().unwrap().alias().to_owned(),
            dbs.for_write::<posts::table>().unwrap().alias().to_owned(),
        ),
        (
            "lite",
            dbs.for_read::<page_views::table>()
                .unwrap()
                .alias()
                .to_owned(),
            dbs.for_write::<page_views::table>()
                .unwrap()
                .alias()
                .to_owned(),
        ),
    ] {
        assert_eq!((read.as_str(), write.as_str()), (alias, alias));
    }
    // Typed access on the MySQL alias: the write on the source, a read on a replica.
    {
        let mut w = dbs.for_write::<orders::table>().unwrap();
        assert_eq!(w.backend_kind(), BackendKind::Mysql);
        diesel::insert_into(orders::table)
            .values((orders::id.eq(1), orders::item.eq("typed")))
            .execute(&mut *w)
            .unwrap();
        let token = w
            .causal_token()
            .unwrap()
            .expect("a MySQL alias has causal tokens");
        assert!(token.to_string().starts_with("gtid:"), "{token}");
        drop(w);
        assert_eq!(
            t.on_source("SELECT COUNT(*) FROM orders WHERE item = 'typed'"),
            1
        );
        let mut r = dbs.for_read::<orders::table>().unwrap();
        r.read_after(&token);
        let items: Vec<String> = orders::table.select(orders::item).load(&mut *r).unwrap();
        assert_eq!(items, ["typed"]);
        let conn = mysql(&mut r);
        assert!(
            conn.wait_for_standby(Duration::from_secs(10)),
            "{:#?}",
            conn.topology()
        );
        let server = crate::mysql::who(conn);
        assert!(
            server.read_only && t.maria.replica_ports().contains(&server.port),
            "a read on the MySQL alias ran on {server:?}"
        );
    }
    // A transaction on the alias that writes orders: committed, then rolled back.
    dbs.transaction::<orders::table, _, E, _>(|c| {
        diesel::insert_into(orders::table)
            .values((orders::id.eq(2), orders::item.eq("kept")))
            .execute(c)?;
        Ok(())
    })
    .unwrap();
    let failed = dbs.transaction::<orders::table, (), E, _>(|c| {
        diesel::insert_into(orders::table)
            .values((orders::id.eq(3), orders::item.eq("gone")))
            .execute(c)?;
        Err("changed my mind".into())
    });
    assert_eq!(failed.unwrap_err().to_string(), "changed my mind");
    assert_eq!(t.on_source("SELECT COUNT(*) FROM orders WHERE id = 2"), 1);
    assert_eq!(t.on_source("SELECT COUNT(*) FROM orders WHERE id = 3"), 0);

    // A unit of work across the three aliases: committed on all three ...
    let r: Result<(), E> = dbs.in_unit_of_work(|uow| {
        diesel::insert_into(orders::table)
            .values((orders::id.eq(10), orders::item.eq("uow")))
            .execute(uow.for_write::<orders::table>()?)?;
        diesel::insert_into(posts::table)
            .values((posts::slug.eq("uow"), posts::title.eq("in a unit of work")))
            .execute(uow.for_write::<posts::table>()?)?;
        diesel::insert_into(page_views::table)
            .values((page_views::id.eq(10), page_views::path.eq("/uow")))
            .execute(uow.for_write::<page_views::table>()?)?;
        assert_eq!(uow.aliases().collect::<Vec<_>>(), ["default", "pg", "lite"]);
        Ok(())
    });
    r.expect("the unit of work commits");
    assert_eq!(t.on_source("SELECT COUNT(*) FROM orders WHERE id = 10"), 1);
    assert_eq!(
        t.on_pg("(SELECT count(*) FROM posts WHERE slug = 'uow')"),
        "1"
    );
    assert_eq!(count_rows(&mut dbs.using("lite").unwrap(), "page_views"), 1);
    // ... and an error rolls back all three.
    let r: Result<(), E> = dbs.in_unit_of_work(|uow| {
        diesel::insert_into(orders::table)
            .values((orders::id.eq(11), orders::item.eq("uow-abort")))
            .execute(uow.using("default")?)?;
        diesel::insert_into(posts::table)
            .values((posts::slug.eq("uow-abort"), posts::title.eq("no")))
            .execute(uow.using("pg")?)?;
        diesel::insert_into(page_views::table)
            .values((page_views::id.eq(11), page_views::path.eq("/abort")))
            .execute(uow.using("lite")?)?;
        Err("abort".into())
    });
    assert_eq!(r.unwrap_err().to_string(), "abort");
    assert_eq!(t.on_source("SELECT COUNT(*) FROM orders WHERE id = 11"), 0);
    assert_eq!(
        t.on_pg("(SELECT count(*) FROM posts WHERE slug = 'uow-abort')"),
        "0"
    );
    assert_eq!(count_rows(&mut dbs.using("lite").unwrap(), "page_views"), 1);
    t.maria.wait_for_replication();
    for port in t.maria.replica_ports() {
        assert_eq!(
            count_on(t.maria, port, &t.my_db, "SELECT COUNT(*) FROM orders"),
            3,
            "orders on replica {port} (typed, kept, uow)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn standalone(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_standalone"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("DATABASE_URL") || k == "DIESEL_MULTIDB_CONFIG")
        {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("run the CLI");
    let r = Run {
        code: out.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            panic!(
                "the CLI {args:?} was killed by signal {:?}; stderr:\n{}",
                out.status.signal(),
                String::from_utf8_lossy(&out.stderr)
            )
        }),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !r.stdout.contains(MariaDbCluster::APP_PASSWORD)
            && !r.stderr.contains(MariaDbCluster::APP_PASSWORD),
        "the password leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

fn ok(r: &Run) -> &str {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    &r.stdout
}

/// Runs of spaces squashed to one.
fn squash(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_cli_on_mysql_postgres_and_sqlite_aliases() {
    let t = Three::new("cli_three");
    t.write_toml();
    let dir = t.scratch.path();
    let source = t.maria.source_port();
    let replicas = t.maria.replica_ports();

    let r = standalone(dir, &["check"]);
    let out = squash(ok(&r));
    assert!(
        out.contains("default mysql mysql://app:********@127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("pg postgres postgres://postgres@127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("lite sqlite"), "{out}");
    for line in ["shop -> default", "blog -> pg", "analytics -> lite"] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(out.contains("System check identified no issues"), "{out}");
    ok(&standalone(dir, &["check", "--connect"]));

    let r = standalone(dir, &["migrate", "--all", "--plan"]);
    assert_eq!(
        ok(&r),
        "Planned operations:\n\
         \x20 default: apply shop.2024-01-01-000000_create_orders\n\
         \x20 lite: apply analytics.2024-01-01-000000_create_page_views\n\
         \x20 pg: apply blog.2024-01-01-000000_create_posts\n\
         \x20 pg: apply blog.2024-01-02-000000_create_comments\n"
    );
    let r = standalone(dir, &["migrate", "--all"]);
    let out = ok(&r);
    for line in [
        "Migrating default: 1 pending",
        "  Applying shop.2024-01-01-000000_create_orders on default... OK (",
        "Migrating pg: 2 pending",
        "  Applying blog.2024-01-01-000000_create_posts on pg... OK (",
        "  Applying blog.2024-01-02-000000_create_comments on pg... OK (",
        "Migrating lite: 1 pending",
        "  Applying analytics.2024-01-01-000000_create_page_views on lite... OK (",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let r = standalone(dir, &["migrate", "--all"]);
    assert_eq!(
        ok(&r),
        "Migrating default: 0 pending\nMigrating lite: 0 pending\nMigrating pg: 0 pending\n"
    );
    assert!(t.my_table_exists(source, "orders"));
    assert_eq!(t.my_records(), ["shop 20240101000000"]);
    assert_eq!(t.on_pg("to_regclass('posts') IS NOT NULL"), "true");

    let r = standalone(dir, &["showmigrations"]);
    assert_eq!(
        ok(&r),
        "default\n shop\n  [X] 2024-01-01-000000_create_orders\n\
         lite\n analytics\n  [X] 2024-01-01-000000_create_page_views\n\
         pg\n blog\n  [X] 2024-01-01-000000_create_posts\n  [X] 2024-01-02-000000_create_comments\n"
    );

    // topology: the MySQL hosts with their role (and lag for the replicas).
    t.maria.wait_for_replication();
    let r = standalone(dir, &["topology"]);
    let out = ok(&r);
    eprintln!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("default (mysql) mysql://app:********@127.0.0.1:"),
        "{out}"
    );
    let host_line = |port: u16| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("no line for 127.0.0.1:{port} in\n{out}"))
            .to_string()
    };
    let src = host_line(source);
    assert!(
        squash(&src).contains("reachable primary (writes)"),
        "the source's line: {src}\n{out}"
    );
    for &port in &replicas {
        let line = host_line(port);
        assert!(
            squash(&line).contains("reachable standby lag "),
            "replica {port}'s line: {line}\n{out}"
        );
    }
    assert!(out.contains("pg (postgres) postgres://postgres@"), "{out}");
    assert!(
        out.contains("embedded SQLite: lite.sqlite3 (file exists)"),
        "{out}"
    );
    let r = standalone(dir, &["topology", "-d", "default"]);
    ok(&r);
}

// ---------------------------------------------------------------------------------------
// A MySQL migration that fails half-way
// ---------------------------------------------------------------------------------------

/// Three `shop` migrations; the second creates a table, then fails.
fn half_failing(s: &Scratch) -> PathBuf {
    s.migration(
        "shop",
        "2024-01-01-000000_good",
        "CREATE TABLE good (x INT);",
    );
    s.migration(
        "shop",
        "2024-01-02-000000_bad",
        "CREATE TABLE half (x INT);\nTHIS IS NOT SQL;",
    );
    s.migration(
        "shop",
        "2024-01-03-000000_later",
        "CREATE TABLE later (x INT);",
    )
}

/// MySQL DDL is not transactional: a migration that fails after its first statement leaves
/// that statement's table (as the README says), is reported as failed naming alias, app and
/// migration, is never recorded as applied, and nothing after it runs. Through the library
/// and through the CLI.
#[test]
fn a_mysql_migration_failing_half_way_is_reported_and_never_recorded() {
    for via_cli in [false, true] {
        let t = Three::new(if via_cli { "half_cli" } else { "half_lib" });
        let root = half_failing(&t.scratch);
        let source = t.maria.source_port();
        if via_cli {
            std::fs::write(
                t.scratch.path().join("multidb.toml"),
                format!(
                    "migrations_dir = \"migrations\"\n[databases.default]\nurl = \"{}\"\n",
                    t.my_url
                ),
            )
            .unwrap();
            let r = standalone(t.scratch.path(), &["migrate"]);
            assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
            assert!(
                r.stdout
                    .contains("Applying shop.2024-01-01-000000_good on default... OK"),
                "{}",
                r.stdout
            );
            assert!(
                r.stdout
                    .contains("Applying shop.2024-01-02-000000_bad on default... FAILED"),
                "{}",
                r.stdout
            );
            assert!(
                !r.stdout.contains("2024-01-03-000000_later"),
                "{}",
                r.stdout
            );
            assert!(
                r.stderr.starts_with(
                    "error: migration shop.2024-01-02-000000_bad failed on database `default`"
                ),
                "{}",
                r.stderr
            );
            eprintln!("CLI: {}", r.stderr.trim_end());
            let r = standalone(t.scratch.path(), &["showmigrations"]);
            assert_eq!(
                ok(&r),
                "default\n shop\n  [X] 2024-01-01-000000_good\n  [ ] 2024-01-02-000000_bad\n  \
                 [ ] 2024-01-03-000000_later\n"
            );
        } else {
            let mut config =
                Config::new().database("default", DatabaseConfig::new(t.my_url.clone()));
            config.migrations_dir = Some(root);
            let dbs = config.build().unwrap();
            let e = dbs.migrate("default").unwrap_err();
            let msg = e.to_string();
            eprintln!("library: {msg}");
            match &e {
                MigrateError::Failed {
                    alias,
                    app,
                    migration,
                    ..
                } => assert_eq!(
                    (alias.as_str(), app.as_str(), migration.as_str()),
                    ("default", "shop", "2024-01-02-000000_bad")
                ),
                other => panic!("not a failed migration: {other:?}"),
            }
            assert!(
                msg.starts_with(
                    "migration shop.2024-01-02-000000_bad failed on database `default`"
                ),
                "{msg}"
            );
            assert_eq!(t.my_records(), ["shop 20240101000000"], "on the source");
            let status = dbs.show_migrations("default").unwrap();
            assert_eq!(
                status.apps[0].migrations,
                [
                    ("2024-01-01-000000_good".to_owned(), true),
                    ("2024-01-02-000000_bad".to_owned(), false),
                    ("2024-01-03-000000_later".to_owned(), false),
                ]
            );
            // Run again: the half-applied migration fails again (its table exists now) and
            // is still not recorded.
            let e = dbs.migrate("default").unwrap_err();
            assert!(
                e.to_string().starts_with(
                    "migration shop.2024-01-02-000000_bad failed on database `default`"
                ),
                "{e}"
            );
        }
        // On the source: the good migration's record only; its table; the failed
        // migration's first table (DDL is not transactional); nothing after it.
        assert_eq!(t.my_records(), ["shop 20240101000000"], "via_cli {via_cli}");
        assert!(t.my_table_exists(source, "good"));
        assert!(
            t.my_table_exists(source, "half"),
            "the README says the statements before the failure stay applied"
        );
        assert!(
            !t.my_table_exists(source, "later"),
            "nothing runs after a failure"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Migration records are read on the source
// ---------------------------------------------------------------------------------------

/// The migration records decide what runs: they must be read where they are written. With
/// the replicas' SQL threads stopped (lagging, but within the default `max_replica_lag` of
/// 10 s, so still serving reads), a second registry (fresh connections: no
/// read-your-writes floor of their own) must see every migration the first one applied, and
/// its `migrate` must run nothing.
#[test]
fn mysql_migration_records_are_read_on_the_source_while_replicas_lag() {
    crate::trace();
    let cluster = MariaDbCluster::start(2);
    let s = Scratch::new();
    let root = half_failing(&s);
    // Only the good migration.
    std::fs::remove_dir_all(root.join("shop/2024-01-02-000000_bad")).unwrap();
    std::fs::remove_dir_all(root.join("shop/2024-01-03-000000_later")).unwrap();
    let build = || {
        let mut config = Config::new().database(
            "default",
            DatabaseConfig::new(cluster.default_url("connect_timeout=2&monitor_interval=100ms")),
        );
        config.migrations_dir = Some(root.clone());
        config.build().unwrap()
    };
    // Warm the topology up so that the replicas serve reads.
    let first = build();
    {
        let mut conn = first.using("default").unwrap();
        let conn = mysql(&mut conn);
        assert!(conn.wait_for_standby(Duration::from_secs(10)));
    }
    for port in cluster.replica_ports() {
        cluster.stop_sql_thread(port);
    }
    let done = first.migrate("default").expect("the first migrate");
    assert_eq!(done.migrations.len(), 1);
    let source = cluster.source_port();
    assert_eq!(
        count_on(
            &cluster,
            source,
            MariaDbCluster::DATABASE,
            "SELECT COUNT(*) FROM __diesel_multidb_migrations"
        ),
        1,
        "the record is on the source"
    );
    let second = build();
    let mut problems = Vec::new();
    match second.show_migrations("default") {
        Ok(status)
            if status.apps[0].migrations == [("2024-01-01-000000_good".to_owned(), true)] => {}
        other => problems.push(format!(
            "show_migrations on a fresh registry does not show the applied migration (read on a \
             lagging replica?): {other:?}"
        )),
    }
    match second.plan("default") {
        Ok(plan) if plan.migrations.is_empty() => {}
        other => problems.push(format!("the plan of a fresh registry: {other:?}")),
    }
    match second.migrate("default") {
        Ok(done) if done.migrations.is_empty() => {}
        Ok(done) => problems.push(format!("migrate ran again: {done:?}")),
        Err(e) => problems.push(format!(
            "migrate ran the applied migration again and failed: {e}"
        )),
    }
    for port in cluster.replica_ports() {
        cluster.start_sql_thread(port);
    }
    cluster.wait_for_replication();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
