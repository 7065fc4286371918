//! Apps and models: a model type's identity ([`Model`], [`ModelInfo`], [`models!`](crate::models))
//! and the app modules that group models and migrations ([`App`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

#[cfg(multidb_sync)]
use crate::registry::pool::AnyBackend;

/// A source of migrations usable on every alias.
pub type AppMigrations = Arc<dyn AppMigrationSource>;

/// The supertraits of [`AppMigrationSource`], one per registry compiled in (each is empty
/// when its registry is not).
mod bounds {
    #![allow(unreachable_pub)]
    use diesel::migration::MigrationSource;

    /// Migrations for the sync registry's [`AnyBackend`](crate::AnyBackend).
    #[cfg(multidb_sync)]
    pub trait ForSync: MigrationSource<super::AnyBackend> {}
    #[cfg(multidb_sync)]
    impl<S: MigrationSource<super::AnyBackend> + ?Sized> ForSync for S {}
    /// Nothing: no sync registry.
    #[cfg(not(multidb_sync))]
    pub trait ForSync {}
    #[cfg(not(multidb_sync))]
    impl<S: ?Sized> ForSync for S {}

    /// Migrations for the async registry's PostgreSQL aliases.
    #[cfg(feature = "async")]
    pub trait ForAsyncPg: MigrationSource<diesel::pg::Pg> {}
    #[cfg(feature = "async")]
    impl<S: MigrationSource<diesel::pg::Pg> + ?Sized> ForAsyncPg for S {}
    /// Nothing: no async registry.
    #[cfg(not(feature = "async"))]
    pub trait ForAsyncPg {}
    #[cfg(not(feature = "async"))]
    impl<S: ?Sized> ForAsyncPg for S {}

    /// Migrations for the async registry's MySQL aliases.
    #[cfg(feature = "async-mysql")]
    pub trait ForAsyncMysql: MigrationSource<diesel::mysql::Mysql> {}
    #[cfg(feature = "async-mysql")]
    impl<S: MigrationSource<diesel::mysql::Mysql> + ?Sized> ForAsyncMysql for S {}
    /// Nothing: no async MySQL registry.
    #[cfg(not(feature = "async-mysql"))]
    pub trait ForAsyncMysql {}
    #[cfg(not(feature = "async-mysql"))]
    impl<S: ?Sized> ForAsyncMysql for S {}
}

/// A source of an app's migrations for every registry compiled in: Diesel's
/// `MigrationSource` for the sync registry's [`AnyBackend`](crate::AnyBackend) (with a sync
/// backend feature), for `Pg` (feature `async`) and for `Mysql` (feature `async-mysql`).
///
/// Implemented for every such source: `FileBasedMigrations` and `EmbeddedMigrations`
/// (`embed_migrations!`) are sources for every backend.
pub trait AppMigrationSource:
    bounds::ForSync + bounds::ForAsyncPg + bounds::ForAsyncMysql + Send + Sync + 'static
{
}

impl<S> AppMigrationSource for S where
    S: bounds::ForSync + bounds::ForAsyncPg + bounds::ForAsyncMysql + Send + Sync + 'static
{
}

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

    /// Takes the migrations from a source, e.g. `embed_migrations!("migrations/blog")` (any
    /// [`AppMigrationSource`]: a source for every registry compiled in).
    pub fn migrations(mut self, source: impl AppMigrationSource) -> Self {
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

/// A model type's identity for routing and migrations (Django's `model._meta.app_label` and
/// `model._meta.model_name`).
///
/// Implement it for anything a query is "about": a Diesel table type (`posts::table`), a
/// `Queryable` struct, or a marker type. The [`models!`](crate::models) macro declares many at
/// once. Routers only ever see the runtime form, [`ModelInfo`], so that
/// [`DatabaseRouter`](crate::DatabaseRouter) stays object safe.
///
/// ```
/// use diesel_multidb::{Model, ModelInfo};
///
/// struct Post;
/// impl Model for Post {
///     const APP_LABEL: &'static str = "blog";
///     const MODEL_NAME: &'static str = "post";
/// }
/// assert_eq!(Post::info(), ModelInfo::new("blog", "post"));
/// ```
pub trait Model {
    /// The app (module) the model belongs to, e.g. `"blog"`. Migrations are organised by it.
    const APP_LABEL: &'static str;
    /// The model's name inside its app, e.g. `"post"`.
    const MODEL_NAME: &'static str;

    /// The runtime identity handed to routers.
    fn info() -> ModelInfo {
        ModelInfo::new(Self::APP_LABEL, Self::MODEL_NAME)
    }
}

/// The runtime identity of a model: app label and model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelInfo {
    app_label: &'static str,
    model_name: &'static str,
}

impl ModelInfo {
    /// A model identity from its app label and model name.
    pub const fn new(app_label: &'static str, model_name: &'static str) -> Self {
        ModelInfo {
            app_label,
            model_name,
        }
    }

    /// The identity of the model type `M`.
    pub fn of<M: Model + ?Sized>() -> Self {
        ModelInfo::new(M::APP_LABEL, M::MODEL_NAME)
    }

    /// The app label, e.g. `"blog"`.
    pub fn app_label(&self) -> &'static str {
        self.app_label
    }

    /// The model name, e.g. `"post"`.
    pub fn model_name(&self) -> &'static str {
        self.model_name
    }
}

/// Shown as `app_label.model_name`, as Django labels models.
impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}.{}", self.app_label, self.model_name))
    }
}

/// Declares [`Model`] for many types at once, grouped by app label.
///
/// Each entry is either a Diesel table's path ending in `module::table` (`posts::table`,
/// `crate::schema::posts::table`; the model name is the module name, i.e. the table name) or
/// any type followed by `= "model_name"`.
///
/// ```
/// use diesel_multidb::{models, Model};
///
/// diesel::table! { posts (id) { id -> Integer, title -> Text, } }
/// diesel::table! { comments (id) { id -> Integer, post_id -> Integer, } }
/// diesel::table! { page_views (id) { id -> Integer, path -> Text, } }
/// pub struct Post;
///
/// models! {
///     "blog" => [posts::table, comments::table, Post = "post"],
///     "analytics" => [page_views::table],
/// }
///
/// assert_eq!(<posts::table as Model>::APP_LABEL, "blog");
/// assert_eq!(<posts::table as Model>::MODEL_NAME, "posts");
/// assert_eq!(<Post as Model>::MODEL_NAME, "post");
/// assert_eq!(<page_views::table as Model>::APP_LABEL, "analytics");
/// ```
#[macro_export]
macro_rules! models {
    ($($app:literal => [$($body:tt)*]),* $(,)?) => {
        $( $crate::__models_app!($app; $($body)*); )*
    };
}

/// Implementation detail of [`models!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __models_app {
    ($app:literal; ) => {};
    ($app:literal; $($seg:ident)::+ $(, $($rest:tt)*)?) => {
        impl $crate::Model for $($seg)::+ {
            const APP_LABEL: &'static str = $app;
            const MODEL_NAME: &'static str = $crate::__model_name!($($seg)+);
        }
        $crate::__models_app!($app; $($($rest)*)?);
    };
    ($app:literal; $ty:ty = $name:literal $(, $($rest:tt)*)?) => {
        impl $crate::Model for $ty {
            const APP_LABEL: &'static str = $app;
            const MODEL_NAME: &'static str = $name;
        }
        $crate::__models_app!($app; $($($rest)*)?);
    };
}

/// Implementation detail of [`models!`]: the module name of a `path::to::module::table` path.
#[doc(hidden)]
#[macro_export]
macro_rules! __model_name {
    ($module:ident $table:ident) => {
        ::core::stringify!($module)
    };
    ($first:ident $($rest:ident)+) => {
        $crate::__model_name!($($rest)+)
    };
    ($single:ident) => {
        ::core::compile_error!(::core::concat!(
            "models!: write `", ::core::stringify!($single), " = \"model_name\"` (only `module::table` paths name themselves)"
        ))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Marker;
    mod things {
        #[allow(non_camel_case_types)]
        pub(crate) struct table;
    }
    mod schema {
        pub(crate) mod deep {
            #[allow(non_camel_case_types)]
            pub(crate) struct table;
        }
    }
    crate::models! {
        "app_a" => [things::table, Marker = "marker"],
        "app_b" => [self::schema::deep::table],
    }

    #[test]
    fn macro_declares_labels_and_names() {
        assert_eq!(things::table::info(), ModelInfo::new("app_a", "things"));
        assert_eq!(Marker::info().to_string(), "app_a.marker");
        assert_eq!(ModelInfo::of::<Marker>().model_name(), "marker");
        assert_eq!(schema::deep::table::info(), ModelInfo::new("app_b", "deep"));
    }
}
