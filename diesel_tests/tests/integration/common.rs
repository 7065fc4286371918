//! Shared helpers: scratch directories, SQLite URLs, the test models, migration files,
//! plain diesel connections and the reaper checks of the harness smoke tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sql_types::Text;
use diesel_multidb::models;

use crate::reaper::{self, refuses};

/// The `blog` app.
pub(crate) mod blog {
    diesel::table! { posts (slug) { slug -> Text, title -> Text, } }
    diesel::table! { comments (id) { id -> Integer, post_slug -> Text, body -> Text, } }
}

/// The `analytics` app.
pub(crate) mod analytics {
    diesel::table! { page_views (id) { id -> Integer, path -> Text, } }
}

models! {
    "blog" => [blog::posts::table, blog::comments::table],
    "analytics" => [analytics::page_views::table],
}

/// A temporary directory, removed when dropped.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("multidb-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sqlite://<dir>/<name>.sqlite3`
    pub(crate) fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.sqlite_path(name).display())
    }

    pub(crate) fn sqlite_path(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}.sqlite3"))
    }

    /// Writes `<dir>/migrations/<app>/<name>/up.sql` (and a down.sql) and returns
    /// `<dir>/migrations`.
    pub(crate) fn migration(&self, app: &str, name: &str, up: &str) -> PathBuf {
        let root = self.path().join("migrations");
        let dir = root.join(app).join(name);
        std::fs::create_dir_all(&dir).expect("migration dir");
        std::fs::write(dir.join("up.sql"), up).expect("up.sql");
        std::fs::write(dir.join("down.sql"), "SELECT 1;").expect("down.sql");
        root
    }

    /// The standard test migrations: blog (posts, comments) and analytics (page_views).
    pub(crate) fn standard_migrations(&self) -> PathBuf {
        self.migration(
            "blog",
            "2024-01-01-000000_create_posts",
            "CREATE TABLE posts (slug VARCHAR(100) PRIMARY KEY, title VARCHAR(100) NOT NULL);",
        );
        self.migration(
            "blog",
            "2024-01-02-000000_create_comments",
            "CREATE TABLE comments (id INTEGER PRIMARY KEY, post_slug VARCHAR(100) NOT NULL REFERENCES posts (slug), body TEXT NOT NULL);",
        );
        self.migration(
            "analytics",
            "2024-01-01-000000_create_page_views",
            "CREATE TABLE page_views (id INTEGER PRIMARY KEY, path VARCHAR(100) NOT NULL);",
        )
    }
}

/// What a series of write-then-read cycles on one connection saw (read-your-writes tests,
/// PostgreSQL and MariaDB, sync and async).
#[derive(Debug, Default)]
pub(crate) struct Cycles {
    /// Reads that did not find the row just written.
    pub(crate) misses: usize,
    /// Reads that found the row on a standby or replica (per the port the server reported).
    pub(crate) on_standby: usize,
    /// Reads that missed, by the port the connection says they ran on.
    pub(crate) missed_on: Vec<u16>,
}

impl Cycles {
    /// Counts one read of row `name`: the ports of the servers that returned it (`found`),
    /// where the connection says the read ran (`route_port`), the standbys' ports.
    pub(crate) fn count(
        &mut self,
        name: &str,
        found: &[u16],
        route_port: Option<u16>,
        standbys: &[u16],
    ) {
        match found {
            [] => {
                self.misses += 1;
                self.missed_on.push(route_port.unwrap_or_default());
            }
            [port] => {
                if standbys.contains(port) {
                    self.on_standby += 1;
                }
            }
            more => panic!("{name} found {} times: {more:?}", more.len()),
        }
    }

    /// Prints what `what` saw in `cycles` cycles and asserts that no read missed
    /// (`topology`: the connection's, shown when one did).
    #[track_caller]
    pub(crate) fn assert_no_miss(
        &self,
        what: &str,
        cycles: usize,
        elapsed: std::time::Duration,
        topology: &dyn std::fmt::Debug,
    ) {
        eprintln!(
            "{what}: {} misses of {cycles}, {} reads on standbys ({:.0} %), {elapsed:?}",
            self.misses,
            self.on_standby,
            100.0 * self.on_standby as f64 / cycles as f64,
        );
        assert_eq!(
            self.misses, 0,
            "reads missed the connection's own writes (ran on {:?}); topology: {topology:#?}",
            self.missed_on
        );
    }
}

// ---- the harness smoke tests (cluster_smoke, mariadb_smoke, netns_smoke) ---------------

/// A plain diesel connection to `url`; panics naming it.
pub(crate) fn connect<C: Connection>(url: &str) -> C {
    C::establish(url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// Runs `statement` on `conn`; panics naming it.
pub(crate) fn exec<C: Connection>(conn: &mut C, statement: &str)
where
    SqlQuery: ExecuteDsl<C>,
{
    diesel::sql_query(statement)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// `SELECT {expr}` on PostgreSQL, as text; panics naming it.
pub(crate) fn pg_text(conn: &mut PgConnection, expr: &str) -> String {
    diesel::select(sql::<Text>(expr))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("SELECT {expr}: {e}"))
}

/// The report line of a reaper helper process that started a cluster: `<cluster dir>
/// <port>,<port>,...`; [`kill_cluster_child_and_wait`] reads it.
pub(crate) fn cluster_report(dir: &Path, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{} {}", dir.display(), ports.join(","))
}

/// Kills the helper test `child_test` once it reported (see [`cluster_report`]) a cluster of
/// two running servers in an existing directory, and waits until the reaper removed both
/// the servers and the directory.
pub(crate) fn kill_cluster_child_and_wait(child_test: &str) {
    reaper::kill_child_and_wait(child_test, Duration::from_secs(60), |fields| {
        let cluster_dir = PathBuf::from(fields[0]);
        let ports: Vec<u16> = fields[1].split(',').map(|p| p.parse().unwrap()).collect();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|&p| !refuses(p)), "servers not up");
        assert!(cluster_dir.is_dir());
        move || reaper::dir_and_ports_left(&cluster_dir, &ports)
    });
}
