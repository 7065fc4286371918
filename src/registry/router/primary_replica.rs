//! A router that writes to a primary alias and spreads reads over replica aliases.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::registry::apps::ModelInfo;
use crate::registry::router::{DatabaseRouter, Hints, InstanceRef};

/// How a [`PrimaryReplicaRouter`] picks the replica for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadStrategy {
    /// Uniformly at random (Django's documented example). The default.
    #[default]
    Random,
    /// Each replica in turn, in the order they were added.
    RoundRobin,
    /// At random, in proportion to each replica's weight.
    Weighted,
}

/// Writes go to one alias, reads to replica aliases (Django's "primary/replica" example).
///
/// - `db_for_write`: the primary;
/// - `db_for_read`: a replica chosen by the [`ReadStrategy`], or the primary when there is no
///   replica (or every weight is zero);
/// - `allow_relation`: `true` when both instances come from the primary or its replicas,
///   otherwise no opinion;
/// - `allow_migrate`: `false` on a replica alias (replicas receive the primary's schema by
///   replication), otherwise no opinion.
///
/// With [`only_apps`](Self::only_apps) it answers only for models of those apps.
///
/// ```
/// use diesel_multidb::{DatabaseRouter, Hints, ModelInfo, PrimaryReplicaRouter, ReadStrategy};
///
/// let router = PrimaryReplicaRouter::new("default")
///     .replica("replica1")
///     .replica("replica2")
///     .strategy(ReadStrategy::RoundRobin);
/// let post = ModelInfo::new("blog", "post");
/// let h = Hints::new();
/// assert_eq!(router.db_for_write(&post, &h).as_deref(), Some("default"));
/// assert_eq!(router.db_for_read(&post, &h).as_deref(), Some("replica1"));
/// assert_eq!(router.db_for_read(&post, &h).as_deref(), Some("replica2"));
/// assert_eq!(router.db_for_read(&post, &h).as_deref(), Some("replica1"));
/// ```
#[derive(Debug)]
pub struct PrimaryReplicaRouter {
    primary: String,
    replicas: Vec<(String, u32)>,
    strategy: ReadStrategy,
    apps: Option<BTreeSet<String>>,
    next: AtomicUsize,
}

impl PrimaryReplicaRouter {
    /// A router writing to `primary`, with no replica yet (reads go to the primary).
    pub fn new(primary: impl Into<String>) -> Self {
        PrimaryReplicaRouter {
            primary: primary.into(),
            replicas: Vec::new(),
            strategy: ReadStrategy::default(),
            apps: None,
            next: AtomicUsize::new(0),
        }
    }

    /// Adds a replica alias with weight 1.
    pub fn replica(self, alias: impl Into<String>) -> Self {
        self.weighted_replica(alias, 1)
    }

    /// Adds a replica alias with a weight (used by [`ReadStrategy::Weighted`]; a weight of 0
    /// never receives reads under that strategy).
    pub fn weighted_replica(mut self, alias: impl Into<String>, weight: u32) -> Self {
        self.replicas.push((alias.into(), weight));
        self
    }

    /// Sets how reads are spread. Defaults to [`ReadStrategy::Random`].
    pub fn strategy(mut self, strategy: ReadStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Restricts the router to models of these apps (others get no opinion). Defaults to
    /// every app.
    pub fn only_apps<I, S>(mut self, apps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apps = Some(apps.into_iter().map(Into::into).collect());
        self
    }

    /// The primary alias.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// The replica aliases and their weights, in the order added.
    pub fn replicas(&self) -> impl Iterator<Item = (&str, u32)> {
        self.replicas.iter().map(|(a, w)| (a.as_str(), *w))
    }

    fn concerns(&self, app_label: &str) -> bool {
        self.apps
            .as_ref()
            .is_none_or(|apps| apps.contains(app_label))
    }

    fn is_member(&self, alias: &str) -> bool {
        alias == self.primary || self.replicas.iter().any(|(a, _)| a == alias)
    }

    fn pick_replica(&self) -> &str {
        if self.replicas.is_empty() {
            return &self.primary;
        }
        let n = self.replicas.len();
        match self.strategy {
            ReadStrategy::RoundRobin => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
                &self.replicas[i].0
            }
            ReadStrategy::Random => &self.replicas[rand::rng().random_range(0..n)].0,
            ReadStrategy::Weighted => {
                let total: u64 = self.replicas.iter().map(|(_, w)| u64::from(*w)).sum();
                if total == 0 {
                    return &self.primary;
                }
                let mut ticket = rand::rng().random_range(0..total);
                for (alias, weight) in &self.replicas {
                    if ticket < u64::from(*weight) {
                        return alias;
                    }
                    ticket -= u64::from(*weight);
                }
                &self.primary // unreachable: the tickets cover exactly the weights
            }
        }
    }
}

impl DatabaseRouter for PrimaryReplicaRouter {
    fn db_for_read(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
        self.concerns(model.app_label())
            .then(|| self.pick_replica().to_owned())
    }

    fn db_for_write(&self, model: &ModelInfo, _hints: &Hints) -> Option<String> {
        self.concerns(model.app_label())
            .then(|| self.primary.clone())
    }

    fn allow_relation(
        &self,
        a: &InstanceRef<'_>,
        b: &InstanceRef<'_>,
        _hints: &Hints,
    ) -> Option<bool> {
        let member = |i: &InstanceRef<'_>| i.db().is_some_and(|db| self.is_member(db));
        (member(a) && member(b)).then_some(true)
    }

    fn allow_migrate(
        &self,
        db: &str,
        app_label: &str,
        _model: Option<&str>,
        _hints: &Hints,
    ) -> Option<bool> {
        let replica = self.replicas.iter().any(|(a, _)| a == db);
        (replica && self.concerns(app_label)).then_some(false)
    }

    fn aliases(&self) -> Vec<String> {
        std::iter::once(self.primary.clone())
            .chain(self.replicas.iter().map(|(a, _)| a.clone()))
            .collect()
    }

    fn name(&self) -> String {
        "PrimaryReplicaRouter".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const POST: ModelInfo = ModelInfo::new("blog", "post");

    fn counts(router: &PrimaryReplicaRouter, reads: usize) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for _ in 0..reads {
            *m.entry(router.db_for_read(&POST, &Hints::new()).unwrap())
                .or_default() += 1;
        }
        m
    }

    #[test]
    fn writes_go_to_the_primary_and_reads_without_replicas_too() {
        let r = PrimaryReplicaRouter::new("primary");
        assert_eq!(
            r.db_for_write(&POST, &Hints::new()).as_deref(),
            Some("primary")
        );
        assert_eq!(
            r.db_for_read(&POST, &Hints::new()).as_deref(),
            Some("primary")
        );
    }

    #[test]
    fn round_robin_cycles_in_order() {
        let r = PrimaryReplicaRouter::new("p")
            .replica("a")
            .replica("b")
            .replica("c")
            .strategy(ReadStrategy::RoundRobin);
        let seq: Vec<String> = (0..6)
            .map(|_| r.db_for_read(&POST, &Hints::new()).unwrap())
            .collect();
        assert_eq!(seq, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn random_reaches_every_replica_and_never_the_primary() {
        let r = PrimaryReplicaRouter::new("p").replica("a").replica("b");
        let c = counts(&r, 400);
        assert!(c["a"] > 100 && c["b"] > 100, "{c:?}");
        assert!(!c.contains_key("p"));
    }

    #[test]
    fn weighted_follows_the_weights() {
        let r = PrimaryReplicaRouter::new("p")
            .weighted_replica("light", 1)
            .weighted_replica("heavy", 3)
            .weighted_replica("never", 0)
            .strategy(ReadStrategy::Weighted);
        let c = counts(&r, 4000);
        assert!(!c.contains_key("never"), "{c:?}");
        // Expected 1000 / 3000; the bounds are many standard deviations wide.
        assert!((800..1200).contains(&c["light"]), "{c:?}");
        assert!((2800..3200).contains(&c["heavy"]), "{c:?}");
        let zero = PrimaryReplicaRouter::new("p")
            .weighted_replica("z", 0)
            .strategy(ReadStrategy::Weighted);
        assert_eq!(zero.db_for_read(&POST, &Hints::new()).as_deref(), Some("p"));
    }

    #[test]
    fn only_apps_limits_the_opinions() {
        let r = PrimaryReplicaRouter::new("p")
            .replica("a")
            .only_apps(["analytics"]);
        assert_eq!(r.db_for_read(&POST, &Hints::new()), None);
        assert_eq!(r.db_for_write(&POST, &Hints::new()), None);
        assert_eq!(r.allow_migrate("a", "blog", None, &Hints::new()), None);
        assert_eq!(
            r.allow_migrate("a", "analytics", None, &Hints::new()),
            Some(false)
        );
    }

    #[test]
    fn relations_inside_the_pool_and_migrations_off_replicas() {
        let r = PrimaryReplicaRouter::new("p").replica("a");
        let h = Hints::new();
        let on = |db| InstanceRef::new(POST, Some(db));
        assert_eq!(r.allow_relation(&on("p"), &on("a"), &h), Some(true));
        assert_eq!(r.allow_relation(&on("p"), &on("x"), &h), None);
        assert_eq!(r.allow_migrate("a", "blog", None, &h), Some(false));
        assert_eq!(r.allow_migrate("p", "blog", None, &h), None);
        assert_eq!(r.aliases(), ["p", "a"]);
    }
}
