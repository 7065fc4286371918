//! A manage.py-style binary for the CLI tests: the routers live in code.
//!
//! The `analytics` app goes to the `analytics` alias by a router written here (not by the
//! config file), reads of `blog` go to `replica` (a mirror) through a `PrimaryReplicaRouter`,
//! and `MANAGE_BLOG_MIGRATIONS` names the blog app's migrations directory.

use diesel_multidb::{App, DatabaseRouter, Hints, ModelInfo, PrimaryReplicaRouter};

struct AnalyticsRouter;

impl DatabaseRouter for AnalyticsRouter {
    fn db_for_read(&self, model: &ModelInfo, _: &Hints) -> Option<String> {
        (model.app_label() == "analytics").then(|| "analytics".to_owned())
    }
    fn db_for_write(&self, model: &ModelInfo, h: &Hints) -> Option<String> {
        self.db_for_read(model, h)
    }
    fn allow_migrate(&self, db: &str, app: &str, _: Option<&str>, _: &Hints) -> Option<bool> {
        match (app, db) {
            ("analytics", db) => Some(db == "analytics"),
            (_, "analytics") => Some(false),
            _ => None,
        }
    }
    fn name(&self) -> String {
        "AnalyticsRouter".into()
    }
}

fn main() -> std::process::ExitCode {
    diesel_multidb::cli::run(|databases| {
        let mut databases = databases
            .router(AnalyticsRouter)
            .router(
                PrimaryReplicaRouter::new("default")
                    .replica("replica")
                    .only_apps(["blog"]),
            )
            .app(App::new("analytics").model_info(ModelInfo::new("analytics", "page_views")));
        if let Some(dir) = std::env::var_os("MANAGE_BLOG_MIGRATIONS") {
            databases = databases.app(
                App::new("blog")
                    .model_info(ModelInfo::new("blog", "posts"))
                    .migrations_dir(dir),
            );
        }
        databases
    })
}
