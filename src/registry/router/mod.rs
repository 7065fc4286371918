//! Django's database-router contract: [`DatabaseRouter`], [`Hints`] and the [`RouterChain`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

mod app_label;
mod primary_replica;

pub use app_label::AppLabelRouter;
pub use primary_replica::{PrimaryReplicaRouter, ReadStrategy};

use crate::registry::apps::{Model, ModelInfo};

use crate::registry::config::DEFAULT_ALIAS;

/// Extra information handed to routers with each question (Django's `**hints`).
///
/// Carries the alias an instance was loaded from or saved to (Django's
/// `hints["instance"]._state.db`), used by the chain's fallback rule, and free-form key/value
/// pairs for routers of your own.
///
/// ```
/// use diesel_multidb::Hints;
///
/// let hints = Hints::new().instance_from("analytics").with("tenant", "acme");
/// assert_eq!(hints.instance_db(), Some("analytics"));
/// assert_eq!(hints.get("tenant"), Some("acme"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    instance_db: Option<String>,
    values: BTreeMap<String, String>,
}

impl Hints {
    /// No hints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Says the instance the operation concerns came from (or was saved to) `alias`.
    pub fn instance_from(mut self, alias: impl Into<String>) -> Self {
        self.instance_db = Some(alias.into());
        self
    }

    /// Adds a free-form hint; a later value for the same key replaces the earlier one.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// The alias the hinted instance came from, if any.
    pub fn instance_db(&self) -> Option<&str> {
        self.instance_db.as_deref()
    }

    /// A free-form hint.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Every free-form hint, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One side of an [`allow_relation`](DatabaseRouter::allow_relation) question: an instance's
/// model and the alias it came from (`None` for an instance not loaded nor saved yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceRef<'a> {
    model: ModelInfo,
    db: Option<&'a str>,
}

impl<'a> InstanceRef<'a> {
    /// An instance of `model` that came from `db`.
    pub fn new(model: ModelInfo, db: Option<&'a str>) -> Self {
        InstanceRef { model, db }
    }

    /// An instance of the model type `M` that came from `db`.
    pub fn of<M: Model + ?Sized>(db: Option<&'a str>) -> Self {
        InstanceRef::new(M::info(), db)
    }

    /// The instance's model.
    pub fn model(&self) -> ModelInfo {
        self.model
    }

    /// The alias the instance came from (Django's `instance._state.db`).
    pub fn db(&self) -> Option<&'a str> {
        self.db
    }
}

/// A database router with Django's contract: every method may answer or say it has no
/// opinion (`None`, the default), and a [`RouterChain`] asks its routers in order.
///
/// The trait is object safe; routers are shared between threads, hence `Send + Sync`.
///
/// ```
/// use diesel_multidb::{DatabaseRouter, Hints, ModelInfo};
///
/// /// Everything of the `auth` app lives on the `users` alias.
/// struct AuthRouter;
///
/// impl DatabaseRouter for AuthRouter {
///     fn db_for_read(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
///         (model.app_label() == "auth").then(|| "users".to_owned())
///     }
///     fn db_for_write(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
///         self.db_for_read(model, hints)
///     }
///     fn allow_migrate(&self, db: &str, app_label: &str, _: Option<&str>, _: &Hints) -> Option<bool> {
///         (app_label == "auth").then(|| db == "users")
///     }
///     fn aliases(&self) -> Vec<String> {
///         vec!["users".to_owned()]
///     }
/// }
/// ```
pub trait DatabaseRouter: Send + Sync {
    /// The alias to read `model` from, or `None` for no opinion.
    ///
    /// An empty string counts as no opinion, as in Django.
    fn db_for_read(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
        let _ = (model, hints);
        None
    }

    /// The alias to write `model` to, or `None` for no opinion.
    ///
    /// An empty string counts as no opinion, as in Django.
    fn db_for_write(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
        let _ = (model, hints);
        None
    }

    /// Whether a relation (a foreign key, a join) between the instances `a` and `b` is
    /// allowed, or `None` for no opinion.
    fn allow_relation(
        &self,
        a: &InstanceRef<'_>,
        b: &InstanceRef<'_>,
        hints: &Hints,
    ) -> Option<bool> {
        let _ = (a, b, hints);
        None
    }

    /// Whether the migrations of `app_label` (and, when given, of the model `model_name`) may
    /// run on the alias `db`, or `None` for no opinion.
    fn allow_migrate(
        &self,
        db: &str,
        app_label: &str,
        model_name: Option<&str>,
        hints: &Hints,
    ) -> Option<bool> {
        let _ = (db, app_label, model_name, hints);
        None
    }

    /// The aliases this router may answer with, checked against the declared aliases when a
    /// [`Databases`](crate::Databases) is built.
    ///
    /// Routing every declared model is checked too, so this is only needed for answers that
    /// depend on the hints or on chance. Defaults to none.
    fn aliases(&self) -> Vec<String> {
        Vec::new()
    }

    /// A name for diagnostics (`check`, route explanations). Defaults to the type's name.
    fn name(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }
}

/// Why a [`RouterChain`] chose an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteReason {
    /// A router answered.
    Router {
        /// The router's position in the chain, from 0.
        index: usize,
        /// The router's [`name`](DatabaseRouter::name).
        name: String,
    },
    /// No router answered; the hinted instance came from this alias.
    Instance,
    /// No router answered and no instance was hinted: [`DEFAULT_ALIAS`].
    Default,
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteReason::Router { index, name } => write!(f, "router #{index} ({name})"),
            RouteReason::Instance => f.write_str("the hinted instance's database"),
            RouteReason::Default => f.write_str("the default alias"),
        }
    }
}

/// The outcome of routing a read or a write: the alias and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The chosen alias.
    pub alias: String,
    /// Why it was chosen.
    pub reason: RouteReason,
}

/// An ordered list of routers with Django's `ConnectionRouter` semantics.
///
/// - reads and writes: the first router whose answer is a non-empty alias wins; with none, the
///   alias the hinted instance came from ([`Hints::instance_from`]), else `"default"`;
/// - [`allow_relation`](Self::allow_relation): the first answer wins; with none, whether both
///   instances came from the same database;
/// - [`allow_migrate`](Self::allow_migrate): the first answer wins; with none, `true`.
///
/// ```
/// use diesel_multidb::{AppLabelRouter, Hints, ModelInfo, RouterChain};
///
/// let chain = RouterChain::new().with(AppLabelRouter::new().route("analytics", "warehouse"));
/// let event = ModelInfo::new("analytics", "event");
/// let post = ModelInfo::new("blog", "post");
/// assert_eq!(chain.db_for_write(&event, &Hints::new()), "warehouse");
/// assert_eq!(chain.db_for_read(&post, &Hints::new()), "default");
/// assert_eq!(chain.db_for_read(&post, &Hints::new().instance_from("other")), "other");
/// assert!(!chain.allow_migrate("default", "analytics", None, &Hints::new()));
/// assert!(chain.allow_migrate("default", "blog", None, &Hints::new()));
/// ```
#[derive(Clone, Default)]
pub struct RouterChain {
    routers: Vec<Arc<dyn DatabaseRouter>>,
}

impl fmt::Debug for RouterChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routers.iter().map(|r| r.name()))
            .finish()
    }
}

impl RouterChain {
    /// An empty chain: every read and write goes to `"default"` (or the hinted instance's
    /// alias), every relation between instances of one database and every migration is allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a router (consulted after the ones already there).
    pub fn push(&mut self, router: impl DatabaseRouter + 'static) {
        self.routers.push(Arc::new(router));
    }

    /// Appends a shared router.
    pub fn push_arc(&mut self, router: Arc<dyn DatabaseRouter>) {
        self.routers.push(router);
    }

    /// Appends a router, builder style.
    pub fn with(mut self, router: impl DatabaseRouter + 'static) -> Self {
        self.push(router);
        self
    }

    /// The routers, in the order they are consulted.
    pub fn routers(&self) -> impl Iterator<Item = &dyn DatabaseRouter> {
        self.routers.iter().map(|r| &**r)
    }

    /// Whether the chain has no router.
    pub fn is_empty(&self) -> bool {
        self.routers.is_empty()
    }

    fn route(&self, hints: &Hints, ask: impl Fn(&dyn DatabaseRouter) -> Option<String>) -> Route {
        for (index, router) in self.routers.iter().enumerate() {
            if let Some(alias) = ask(&**router).filter(|a| !a.is_empty()) {
                return Route {
                    alias,
                    reason: RouteReason::Router {
                        index,
                        name: router.name(),
                    },
                };
            }
        }
        match hints.instance_db().filter(|a| !a.is_empty()) {
            Some(alias) => Route {
                alias: alias.to_owned(),
                reason: RouteReason::Instance,
            },
            None => Route {
                alias: DEFAULT_ALIAS.to_owned(),
                reason: RouteReason::Default,
            },
        }
    }

    /// Where to read `model` from, and why.
    pub fn route_read(&self, model: &ModelInfo, hints: &Hints) -> Route {
        self.route(hints, |r| r.db_for_read(model, hints))
    }

    /// Where to write `model` to, and why.
    pub fn route_write(&self, model: &ModelInfo, hints: &Hints) -> Route {
        self.route(hints, |r| r.db_for_write(model, hints))
    }

    /// The alias to read `model` from.
    pub fn db_for_read(&self, model: &ModelInfo, hints: &Hints) -> String {
        self.route_read(model, hints).alias
    }

    /// The alias to write `model` to.
    pub fn db_for_write(&self, model: &ModelInfo, hints: &Hints) -> String {
        self.route_write(model, hints).alias
    }

    /// Whether a relation between `a` and `b` is allowed.
    pub fn allow_relation(&self, a: &InstanceRef<'_>, b: &InstanceRef<'_>, hints: &Hints) -> bool {
        self.routers
            .iter()
            .find_map(|r| r.allow_relation(a, b, hints))
            .unwrap_or_else(|| a.db() == b.db())
    }

    /// Whether the migrations of `app_label` (and `model_name`) may run on `db`.
    pub fn allow_migrate(
        &self,
        db: &str,
        app_label: &str,
        model_name: Option<&str>,
        hints: &Hints,
    ) -> bool {
        self.routers
            .iter()
            .find_map(|r| r.allow_migrate(db, app_label, model_name, hints))
            .unwrap_or(true)
    }

    /// Whether the migrations of `model` may run on `db` (Django's `allow_migrate_model`).
    pub fn allow_migrate_model(&self, db: &str, model: &ModelInfo) -> bool {
        self.allow_migrate(
            db,
            model.app_label(),
            Some(model.model_name()),
            &Hints::new(),
        )
    }

    /// Every alias the routers declare through [`DatabaseRouter::aliases`], with the router's
    /// name.
    pub(crate) fn declared_aliases(&self) -> Vec<(String, String)> {
        self.routers
            .iter()
            .flat_map(|r| {
                let name = r.name();
                r.aliases().into_iter().map(move |a| (name.clone(), a))
            })
            .collect()
    }
}

/// A chain is itself a router, so chains can be nested; as a router it answers every question
/// (its fallbacks included), so routers after it are never consulted.
impl DatabaseRouter for RouterChain {
    fn db_for_read(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
        Some(RouterChain::db_for_read(self, model, hints))
    }
    fn db_for_write(&self, model: &ModelInfo, hints: &Hints) -> Option<String> {
        Some(RouterChain::db_for_write(self, model, hints))
    }
    fn allow_relation(
        &self,
        a: &InstanceRef<'_>,
        b: &InstanceRef<'_>,
        hints: &Hints,
    ) -> Option<bool> {
        Some(RouterChain::allow_relation(self, a, b, hints))
    }
    fn allow_migrate(
        &self,
        db: &str,
        app: &str,
        model: Option<&str>,
        hints: &Hints,
    ) -> Option<bool> {
        Some(RouterChain::allow_migrate(self, db, app, model, hints))
    }
    fn aliases(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .declared_aliases()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        v.push(DEFAULT_ALIAS.to_owned());
        v
    }
    fn name(&self) -> String {
        format!("{self:?}")
    }
}

#[cfg(test)]
mod tests;
