//! An app module: its label, its models and its migrations.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use diesel::migration::MigrationSource;

use crate::any_connection::AnyBackend;
use crate::model::{Model, ModelInfo};

/// A source of migrations usable on every alias (`FileBasedMigrations`, `EmbeddedMigrations`,
/// or your own).
pub type AppMigrations = Arc<dyn MigrationSource<AnyBackend> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum MigrationsSpec {
    None,
    Dir(PathBuf),
    Source(AppMigrations),
}

/// An app module (Django's app): a label, the models declared in it and its migrations.
///
/// Models listed here are routed once when the registry is built, so a router naming an alias
/// that does not exist fails at start-up. Migrations run per alias where the routers allow
/// the app ([`Databases::migrate`](crate::Databases::migrate)).
///
/// ```
/// use diesel_multidb::{App, Model};
///
/// struct Post;
/// impl Model for Post {
///     const APP_LABEL: &'static str = "blog";
///     const MODEL_NAME: &'static str = "post";
/// }
///
/// // Migrations from `migrations/blog/<version>_<name>/up.sql` (read when the registry is
/// // built); `App::migrations` takes an `embed_migrations!` value instead.
/// let blog = App::new("blog").model::<Post>().migrations_dir("migrations/blog");
/// assert_eq!(blog.label(), "blog");
/// ```
#[derive(Clone)]
pub struct App {
    pub(crate) label: String,
    pub(crate) models: Vec<ModelInfo>,
    pub(crate) migrations: MigrationsSpec,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let migrations = match &self.migrations {
            MigrationsSpec::None => "none".to_owned(),
            MigrationsSpec::Dir(d) => d.display().to_string(),
            MigrationsSpec::Source(_) => "custom source".to_owned(),
        };
        f.debug_struct("App")
            .field("label", &self.label)
            .field("models", &self.models)
            .field("migrations", &migrations)
            .finish()
    }
}

impl App {
    /// An app with no model and no migrations yet.
    pub fn new(label: impl Into<String>) -> Self {
        App {
            label: label.into(),
            models: Vec::new(),
            migrations: MigrationsSpec::None,
        }
    }

    /// Declares the model type `M` (its [`Model::APP_LABEL`] must be this app's label, checked
    /// when the registry is built).
    pub fn model<M: Model>(mut self) -> Self {
        self.models.push(M::info());
        self
    }

    /// Declares a model by its runtime identity.
    pub fn model_info(mut self, model: ModelInfo) -> Self {
        self.models.push(model);
        self
    }

    /// Takes the migrations from a directory of `<version>_<name>/up.sql|down.sql`
    /// directories (Diesel's layout), read when the registry is built.
    pub fn migrations_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.migrations = MigrationsSpec::Dir(dir.into());
        self
    }

    /// Takes the migrations from a source, e.g. `embed_migrations!("migrations/blog")`.
    pub fn migrations(
        mut self,
        source: impl MigrationSource<AnyBackend> + Send + Sync + 'static,
    ) -> Self {
        self.migrations = MigrationsSpec::Source(Arc::new(source));
        self
    }

    /// The app label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The declared models.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Whether the app has migrations.
    pub fn has_migrations(&self) -> bool {
        !matches!(self.migrations, MigrationsSpec::None)
    }

    /// The source, once the registry resolved directories (`None` without migrations).
    pub(crate) fn source(&self) -> Option<&AppMigrations> {
        match &self.migrations {
            MigrationsSpec::Source(s) => Some(s),
            _ => None,
        }
    }
}
