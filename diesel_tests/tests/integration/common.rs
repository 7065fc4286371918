//! Shared helpers: scratch directories, SQLite URLs, the test models, migration files.

use std::path::{Path, PathBuf};

use diesel_multidb::models;

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
