//! A router from a map of app labels to aliases.

use std::collections::BTreeMap;

use crate::registry::apps::ModelInfo;
use crate::registry::router::{DatabaseRouter, Hints, InstanceRef};

/// Routes every model of an app to one alias (Flask-SQLAlchemy's `__bind_key__`, uliorm's
/// `MODELS_CONFIG`); the `[apps]` table of the config file builds one.
///
/// For a mapped app: reads and writes go to its alias; its migrations are allowed on that
/// alias only. A relation between two mapped apps is allowed exactly when they share an alias.
/// For anything else the router has no opinion, so the rest of the chain decides (with an
/// otherwise empty chain: reads and writes to `"default"`, migrations everywhere).
///
/// ```
/// use diesel_multidb::{AppLabelRouter, DatabaseRouter, Hints, ModelInfo};
///
/// let router = AppLabelRouter::new().route("analytics", "warehouse");
/// let event = ModelInfo::new("analytics", "event");
/// assert_eq!(router.db_for_read(&event, &Hints::new()).as_deref(), Some("warehouse"));
/// assert_eq!(router.allow_migrate("default", "analytics", None, &Hints::new()), Some(false));
/// assert_eq!(router.allow_migrate("default", "blog", None, &Hints::new()), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppLabelRouter {
    apps: BTreeMap<String, String>,
}

impl AppLabelRouter {
    /// A router with no app mapped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `app_label` to `alias` (replacing an earlier mapping of the same app).
    pub fn route(mut self, app_label: impl Into<String>, alias: impl Into<String>) -> Self {
        self.apps.insert(app_label.into(), alias.into());
        self
    }

    /// A router from app label → alias pairs.
    pub fn from_map<I, A, B>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        pairs
            .into_iter()
            .fold(Self::new(), |r, (app, alias)| r.route(app, alias))
    }

    /// The alias `app_label` is mapped to.
    pub fn alias_of(&self, app_label: &str) -> Option<&str> {
        self.apps.get(app_label).map(String::as_str)
    }

    /// The mapped apps and their aliases, ordered by app label.
    pub fn apps(&self) -> impl Iterator<Item = (&str, &str)> {
        self.apps.iter().map(|(a, b)| (a.as_str(), b.as_str()))
    }
}

impl DatabaseRouter for AppLabelRouter {
    fn db_for_read(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
        self.alias_of(model.app_label()).map(str::to_owned)
    }

    fn db_for_write(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
        self.alias_of(model.app_label()).map(str::to_owned)
    }

    fn allow_relation(
        &self,
        a: &InstanceRef<'_>,
        b: &InstanceRef<'_>,
        _hints: &Hints,
    ) -> Option<bool> {
        let a = self.alias_of(a.model().app_label())?;
        let b = self.alias_of(b.model().app_label())?;
        Some(a == b)
    }

    fn allow_migrate(
        &self,
        db: &str,
        app_label: &str,
        _model: Option<&str>,
        _hints: &Hints,
    ) -> Option<bool> {
        self.alias_of(app_label).map(|alias| alias == db)
    }

    fn aliases(&self) -> Vec<String> {
        let mut v: Vec<String> = self.apps.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    fn name(&self) -> String {
        "AppLabelRouter".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_mapped_apps_only() {
        let r = AppLabelRouter::from_map([("blog", "default"), ("analytics", "warehouse")]);
        let h = Hints::new();
        let event = ModelInfo::new("analytics", "event");
        let other = ModelInfo::new("misc", "thing");
        assert_eq!(r.db_for_write(&event, &h).as_deref(), Some("warehouse"));
        assert_eq!(r.db_for_read(&other, &h), None);
        assert_eq!(
            r.allow_migrate("warehouse", "analytics", None, &h),
            Some(true)
        );
        assert_eq!(
            r.allow_migrate("default", "analytics", None, &h),
            Some(false)
        );
        assert_eq!(r.allow_migrate("default", "misc", None, &h), None);
        assert_eq!(
            r.aliases(),
            vec!["default".to_owned(), "warehouse".to_owned()]
        );
    }

    #[test]
    fn relations_between_mapped_apps_need_one_alias() {
        let r = AppLabelRouter::from_map([
            ("blog", "default"),
            ("auth", "default"),
            ("analytics", "warehouse"),
        ]);
        let h = Hints::new();
        let post = InstanceRef::new(ModelInfo::new("blog", "post"), Some("default"));
        let user = InstanceRef::new(ModelInfo::new("auth", "user"), Some("default"));
        let event = InstanceRef::new(ModelInfo::new("analytics", "event"), Some("warehouse"));
        let thing = InstanceRef::new(ModelInfo::new("misc", "thing"), Some("default"));
        assert_eq!(r.allow_relation(&post, &user, &h), Some(true));
        assert_eq!(r.allow_relation(&post, &event, &h), Some(false));
        assert_eq!(r.allow_relation(&post, &thing, &h), None);
    }
}
