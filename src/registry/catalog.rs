//! What the sync and the async registry share: the aliases, the router chain and the apps,
//! and the routing of a model to a declared alias. The registries add their pools.

use std::collections::BTreeMap;
use std::fmt;

use crate::registry::alias::{Alias, PoolError};
use crate::registry::apps::{App, ModelInfo};
use crate::registry::metrics;
use crate::registry::router::{Hints, Route, RouterChain};

/// The read-only accessors both registries offer over their [`Catalog`] (field `catalog`):
/// aliases, apps, models and routing decisions.
macro_rules! catalog_accessors {
    () => {
        /// The aliases: `default` first, then by name.
        pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
            self.catalog.aliases.iter()
        }

        /// One alias.
        pub fn alias(&self, name: &str) -> Option<&Alias> {
            self.catalog.alias(name)
        }

        /// The router chain (routers given in code, then the config's app map).
        pub fn router(&self) -> &RouterChain {
            &self.catalog.router
        }

        /// The apps (declared in code and found in the config's `migrations_dir`).
        pub fn apps(&self) -> &[App] {
            &self.catalog.apps
        }

        /// Every declared model.
        pub fn models(&self) -> impl Iterator<Item = ModelInfo> + '_ {
            self.catalog.models()
        }

        /// The apps whose migrations the routers allow on `alias`
        /// (`allow_migrate(alias, app_label, None, {})`), in declaration order.
        pub fn apps_allowed_on(&self, alias: &str) -> Vec<&App> {
            self.catalog.apps_allowed_on(alias)
        }

        /// Where a read of `M` goes, and which router decided.
        pub fn route_read<M: Model + ?Sized>(&self, hints: &Hints) -> Route {
            self.catalog.router.route_read(&M::info(), hints)
        }

        /// Where a write of `M` goes, and which router decided.
        pub fn route_write<M: Model + ?Sized>(&self, hints: &Hints) -> Route {
            self.catalog.router.route_write(&M::info(), hints)
        }
    };
}
pub(crate) use catalog_accessors;

/// The aliases (`default` first, then by name), the router chain and the apps of a registry.
pub(crate) struct Catalog {
    pub(crate) aliases: Vec<Alias>,
    pub(crate) router: RouterChain,
    pub(crate) apps: Vec<App>,
    /// The config's `[apps]` map (the last router of the chain when not empty).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) app_map: BTreeMap<String, String>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("aliases", &self.aliases)
            .field("router", &self.router)
            .field("apps", &self.apps)
            .finish()
    }
}

impl Catalog {
    /// `text` with the secrets of every alias URL masked.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn scrub(&self, text: &str) -> String {
        crate::redact::scrub_all(
            text,
            self.aliases.iter().flat_map(|a| a.target.url.secrets()),
        )
    }

    /// The position of an alias.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.aliases.iter().position(|a| a.name == name)
    }

    /// One alias.
    pub(crate) fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// One alias, or [`PoolError::UnknownAlias`].
    pub(crate) fn require(&self, alias: &str) -> Result<&Alias, PoolError> {
        self.alias(alias).ok_or_else(|| PoolError::UnknownAlias {
            alias: alias.to_owned(),
        })
    }

    /// Every declared model.
    pub(crate) fn models(&self) -> impl Iterator<Item = ModelInfo> + '_ {
        self.apps.iter().flat_map(|a| a.models.iter().copied())
    }

    /// Where `action` (`"read"` or `"write"`) of `model` goes: the router chain's choice,
    /// checked to be a declared alias (counted and traced).
    pub(crate) fn routed(
        &self,
        model: ModelInfo,
        action: &'static str,
        hints: &Hints,
    ) -> Result<String, PoolError> {
        let route: Route = if action == "read" {
            self.router.route_read(&model, hints)
        } else {
            self.router.route_write(&model, hints)
        };
        let _entered = tracing::debug_span!(
            "route",
            %model,
            action,
            alias = %route.alias,
            decided_by = %route.reason,
        )
        .entered();
        if self.alias(&route.alias).is_none() {
            return Err(PoolError::RoutedToUnknownAlias {
                alias: route.alias,
                model,
                action,
                decided_by: route.reason,
            });
        }
        metrics::routed(&route.alias, action);
        Ok(route.alias)
    }

    /// The apps whose migrations the routers allow on `alias`
    /// (`allow_migrate(alias, app_label, None, {})`), in declaration order.
    pub(crate) fn apps_allowed_on(&self, alias: &str) -> Vec<&App> {
        self.apps
            .iter()
            .filter(|a| {
                self.router
                    .allow_migrate(alias, &a.label, None, &Hints::new())
            })
            .collect()
    }
}
