//! The crate's main job on an embedded default: two SQLite databases, two app modules routed
//! by routers, migrations per alias, writes and reads through the registry, and an account of
//! which alias served each statement.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! No server is needed: the databases are SQLite files in a fresh temporary directory (set
//! `QUICKSTART_DIR` to keep them somewhere else; it is emptied of them first).

use std::error::Error;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_multidb::{
    models, App, AppLabelRouter, Config, DatabaseConfig, DatabaseRouter, Hints, MigrateEvent,
    ModelInfo,
};

/// The blog app's migrations (`migrations/blog/<version>_<name>/up.sql`).
const BLOG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/blog");
/// The analytics app's migrations.
const ANALYTICS_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/analytics");

/// The blog app module: posts and comments, on `default`.
mod blog {
    diesel::table! { posts (slug) { slug -> Text, title -> Text, body -> Text, } }
    diesel::table! { comments (id) { id -> Integer, post_slug -> Text, author -> Text, body -> Text, } }
    diesel::allow_tables_to_appear_in_same_query!(posts, comments);
}

/// The analytics app module: page views, on `analytics`.
mod analytics {
    diesel::table! { page_views (id) { id -> Integer, path -> Text, visitor -> Text, } }
}

use analytics::page_views;
use blog::{comments, posts};

// Each Diesel table is a model: app label + model name (the table name).
models! {
    "blog" => [posts::table, comments::table],
    "analytics" => [page_views::table],
}

/// A router of our own (Django's `DatabaseRouter` contract): everything of the `analytics`
/// app lives on the `analytics` alias and is migrated only there.
struct AnalyticsRouter;

impl DatabaseRouter for AnalyticsRouter {
    fn db_for_read(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
        (model.app_label() == "analytics").then(|| "analytics".to_owned())
    }
    fn db_for_write(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
        self.db_for_read(model, hints)
    }
    fn allow_migrate(&self, db: &str, app_label: &str, _: Option<&str>, _: &Hints) -> Option<bool> {
        if app_label == "analytics" {
            Some(db == "analytics")
        } else if db == "analytics" {
            Some(false) // nothing else belongs there
        } else {
            None
        }
    }
    fn aliases(&self) -> Vec<String> {
        vec!["analytics".to_owned()]
    }
    fn name(&self) -> String {
        "AnalyticsRouter".to_owned()
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = match std::env::var_os("QUICKSTART_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            std::env::temp_dir().join(format!("diesel-multidb-quickstart-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir)?;
    for f in ["default.sqlite3", "analytics.sqlite3"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    println!(
        "== diesel-multidb quickstart: SQLite files in {}\n",
        dir.display()
    );

    // 1. Declare the aliases (a TOML file and DATABASE_URL* variables work the same way:
    //    `Config::from_file("multidb.toml")?.with_env_overrides()`).
    let config = Config::new()
        .database(
            "default",
            DatabaseConfig::new(format!(
                "sqlite://{}",
                dir.join("default.sqlite3").display()
            )),
        )
        .database(
            "analytics",
            DatabaseConfig::new(format!(
                "sqlite://{}",
                dir.join("analytics.sqlite3").display()
            )),
        );

    // 2. Routers and apps in code; every statement is reported with the alias that ran it.
    let log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = log.clone();
    let databases = config
        .builder()
        .router(AnalyticsRouter)
        .router(AppLabelRouter::new().route("blog", "default"))
        .app(
            App::new("blog")
                .model::<posts::table>()
                .model::<comments::table>()
                .migrations(BLOG_MIGRATIONS),
        )
        .app(
            App::new("analytics")
                .model::<page_views::table>()
                .migrations(ANALYTICS_MIGRATIONS),
        )
        .on_statement(move |alias, sql| {
            let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("    [{alias:>9}] {sql}");
            sink.lock().expect("log lock").push((alias.to_owned(), sql));
        })
        .build()?;

    println!("-- routing");
    for model in databases.models() {
        let read = databases.router().route_read(&model, &Hints::new());
        let write = databases.router().route_write(&model, &Hints::new());
        println!(
            "  {model:<20} read -> {} ({}), write -> {}",
            read.alias, read.reason, write.alias
        );
    }

    // 3. Migrations per alias: each app only where the routers allow it.
    println!("\n-- plan (dry run)");
    for plan in databases.plan_all()? {
        println!("  {}: apps {:?}", plan.alias, plan.apps);
        for m in &plan.migrations {
            println!("    would apply {}.{}", m.app, m.name);
        }
    }
    println!("\n-- migrate");
    databases.migrate_all_with(&mut |event| match event {
        MigrateEvent::Applying(m) => println!("  applying {}.{} on {}", m.app, m.name, m.alias),
        MigrateEvent::Applied(m, took) => println!(
            "  applied  {}.{} on {} ({took:.1?})",
            m.app, m.name, m.alias
        ),
        _ => {}
    })?;

    // 4. Writes: a transaction on the alias that writes `posts`, then a unit of work that
    //    writes to both aliases and commits both.
    println!("\n-- write a post and its comment in one transaction (alias writing blog.posts)");
    databases.transaction::<posts::table, _, Box<dyn Error>, _>(|conn| {
        diesel::insert_into(posts::table)
            .values((
                posts::slug.eq("hello"),
                posts::title.eq("Hello, routers"),
                posts::body.eq("First post."),
            ))
            .execute(conn)?;
        diesel::insert_into(comments::table)
            .values((
                comments::id.eq(1),
                comments::post_slug.eq("hello"),
                comments::author.eq("ada"),
                comments::body.eq("Nice!"),
            ))
            .execute(conn)?;
        Ok(())
    })?;

    println!("\n-- a unit of work across both aliases (commit all, or roll back all it can)");
    databases.in_unit_of_work(|uow| -> Result<(), Box<dyn Error>> {
        diesel::insert_into(posts::table)
            .values((
                posts::slug.eq("second"),
                posts::title.eq("Second post"),
                posts::body.eq("More."),
            ))
            .execute(uow.for_write::<posts::table>()?)?;
        // (Diesel's multi-backend connection has no multi-row INSERT: one row per statement.)
        for (id, path, visitor) in [(1, "/hello", "ada"), (2, "/second", "alan")] {
            diesel::insert_into(page_views::table)
                .values((
                    page_views::id.eq(id),
                    page_views::path.eq(path),
                    page_views::visitor.eq(visitor),
                ))
                .execute(uow.for_write::<page_views::table>()?)?;
        }
        Ok(())
    })?;

    // 5. Reads, each on the alias its model is routed to.
    println!("\n-- read back");
    let mut conn = databases.for_read::<posts::table>()?;
    let titles: Vec<String> = posts::table
        .select(posts::title)
        .order(posts::slug)
        .load(&mut *conn)?;
    println!("  posts on {}: {titles:?}", conn.alias());
    drop(conn);
    let mut conn = databases.for_read::<page_views::table>()?;
    let views: i64 = page_views::table.count().get_result(&mut *conn)?;
    println!("  page views on {}: {views}", conn.alias());
    drop(conn);

    println!("\n-- which alias served each statement");
    let log = log.lock().expect("log lock");
    for alias in databases.aliases().map(|a| a.name()) {
        let n = log.iter().filter(|(a, _)| a == alias).count();
        println!("  {alias:>9}: {n} statements");
    }
    let tables_on =
        |alias: &str, table: &str| log.iter().any(|(a, sql)| a == alias && sql.contains(table));
    assert!(tables_on("default", "`posts`") && !tables_on("analytics", "`posts`"));
    assert!(tables_on("analytics", "`page_views`") && !tables_on("default", "`page_views`"));
    println!("\nposts and comments went to `default` only, page views to `analytics` only.");

    drop(databases);
    if std::env::var_os("QUICKSTART_DIR").is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
