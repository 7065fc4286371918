//! The identity of a model type: its app label and model name.

use std::fmt;

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
