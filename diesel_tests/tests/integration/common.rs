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
