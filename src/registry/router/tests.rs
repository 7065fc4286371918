//! The router chain's semantics, checked against Django's.

use super::*;

const POST: ModelInfo = ModelInfo::new("blog", "post");
const EVENT: ModelInfo = ModelInfo::new("analytics", "event");

/// Answers nothing at all (every default).
struct Silent;
impl DatabaseRouter for Silent {}

/// Answers with fixed values.
struct Fixed {
    read: Option<&'static str>,
    write: Option<&'static str>,
    relation: Option<bool>,
    migrate: Option<bool>,
}
impl DatabaseRouter for Fixed {
    fn db_for_read(&self, _: &ModelInfo, _: &Hints) -> Option<String> {
        self.read.map(str::to_owned)
    }
    fn db_for_write(&self, _: &ModelInfo, _: &Hints) -> Option<String> {
        self.write.map(str::to_owned)
    }
    fn allow_relation(&self, _: &InstanceRef<'_>, _: &InstanceRef<'_>, _: &Hints) -> Option<bool> {
        self.relation
    }
    fn allow_migrate(&self, _: &str, _: &str, _: Option<&str>, _: &Hints) -> Option<bool> {
        self.migrate
    }
    fn name(&self) -> String {
        "fixed".into()
    }
}
fn fixed(
    read: Option<&'static str>,
    write: Option<&'static str>,
    relation: Option<bool>,
    migrate: Option<bool>,
) -> Fixed {
    Fixed {
        read,
        write,
        relation,
        migrate,
    }
}

/// Routes only the analytics app, by looking at the model.
struct AnalyticsOnly;
impl DatabaseRouter for AnalyticsOnly {
    fn db_for_read(&self, m: &ModelInfo, _: &Hints) -> Option<String> {
        (m.app_label() == "analytics").then(|| "warehouse".into())
    }
    fn db_for_write(&self, m: &ModelInfo, h: &Hints) -> Option<String> {
        self.db_for_read(m, h)
    }
}

#[test]
fn empty_chain_reads_and_writes_default() {
    let chain = RouterChain::new();
    let h = Hints::new();
    assert_eq!(
        chain.route_read(&POST, &h),
        Route {
            alias: "default".into(),
            reason: RouteReason::Default
        }
    );
    assert_eq!(chain.db_for_write(&POST, &h), "default");
}

#[test]
fn without_opinion_the_hinted_instance_alias_wins() {
    let chain = RouterChain::new().with(Silent);
    let h = Hints::new().instance_from("other");
    assert_eq!(
        chain.route_read(&POST, &h),
        Route {
            alias: "other".into(),
            reason: RouteReason::Instance
        }
    );
    assert_eq!(chain.db_for_write(&POST, &h), "other");
    // An empty instance alias (an unsaved instance in Django) falls through to default.
    assert_eq!(
        chain.db_for_write(&POST, &Hints::new().instance_from("")),
        "default"
    );
}

#[test]
fn a_router_opinion_beats_the_instance_hint() {
    let chain = RouterChain::new().with(AnalyticsOnly);
    let h = Hints::new().instance_from("other");
    assert_eq!(chain.db_for_read(&EVENT, &h), "warehouse");
    assert_eq!(chain.db_for_read(&POST, &h), "other");
}

#[test]
fn the_first_router_with_an_opinion_wins() {
    let chain = RouterChain::new()
        .with(Silent)
        .with(fixed(None, Some("w1"), None, None))
        .with(fixed(Some("r2"), Some("w2"), None, None));
    let h = Hints::new();
    assert_eq!(
        chain.route_read(&POST, &h),
        Route {
            alias: "r2".into(),
            reason: RouteReason::Router {
                index: 2,
                name: "fixed".into()
            }
        }
    );
    assert_eq!(chain.route_write(&POST, &h).alias, "w1");
}

#[test]
fn an_empty_alias_is_no_opinion() {
    let chain = RouterChain::new()
        .with(fixed(Some(""), Some(""), None, None))
        .with(fixed(Some("r"), None, None, None));
    assert_eq!(chain.db_for_read(&POST, &Hints::new()), "r");
    assert_eq!(chain.db_for_write(&POST, &Hints::new()), "default");
}

#[test]
fn allow_relation_defaults_to_same_database() {
    let chain = RouterChain::new().with(Silent);
    let h = Hints::new();
    let a = InstanceRef::new(POST, Some("default"));
    let b = InstanceRef::new(EVENT, Some("default"));
    let c = InstanceRef::new(EVENT, Some("other"));
    let unsaved = InstanceRef::new(EVENT, None);
    assert!(chain.allow_relation(&a, &b, &h));
    assert!(!chain.allow_relation(&a, &c, &h));
    assert!(!chain.allow_relation(&a, &unsaved, &h));
    assert!(chain.allow_relation(&unsaved, &unsaved, &h));
}

#[test]
fn allow_relation_first_opinion_wins_even_false() {
    let a = InstanceRef::new(POST, Some("default"));
    let b = InstanceRef::new(EVENT, Some("default"));
    let c = InstanceRef::new(EVENT, Some("other"));
    let no = RouterChain::new()
        .with(Silent)
        .with(fixed(None, None, Some(false), None))
        .with(fixed(None, None, Some(true), None));
    assert!(!no.allow_relation(&a, &b, &Hints::new()));
    let yes = RouterChain::new().with(fixed(None, None, Some(true), None));
    assert!(yes.allow_relation(&a, &c, &Hints::new()));
}

#[test]
fn allow_migrate_defaults_to_true_and_first_opinion_wins() {
    let h = Hints::new();
    assert!(RouterChain::new().allow_migrate("any", "blog", None, &h));
    assert!(RouterChain::new()
        .with(Silent)
        .allow_migrate("any", "blog", Some("post"), &h));
    let chain = RouterChain::new()
        .with(Silent)
        .with(fixed(None, None, None, Some(false)))
        .with(fixed(None, None, None, Some(true)));
    assert!(!chain.allow_migrate("any", "blog", None, &h));
    assert!(!chain.allow_migrate_model("any", &POST));
}

#[test]
fn hints_reach_the_routers() {
    struct ByTenant;
    impl DatabaseRouter for ByTenant {
        fn db_for_read(&self, _: &ModelInfo, h: &Hints) -> Option<String> {
            h.get("tenant").map(|t| format!("tenant_{t}"))
        }
    }
    let chain = RouterChain::new().with(ByTenant);
    assert_eq!(
        chain.db_for_read(&POST, &Hints::new().with("tenant", "acme")),
        "tenant_acme"
    );
    assert_eq!(chain.db_for_read(&POST, &Hints::new()), "default");
}

#[test]
fn a_chain_is_a_router_and_object_safe() {
    let inner = RouterChain::new().with(AnalyticsOnly);
    let boxed: Box<dyn DatabaseRouter> = Box::new(inner);
    assert_eq!(
        boxed.db_for_read(&POST, &Hints::new()).as_deref(),
        Some("default")
    );
    assert_eq!(
        boxed.allow_migrate("x", "y", None, &Hints::new()),
        Some(true)
    );
    let outer = RouterChain::new().with(boxed_router(boxed));
    assert_eq!(outer.db_for_write(&EVENT, &Hints::new()), "warehouse");
}

fn boxed_router(b: Box<dyn DatabaseRouter>) -> impl DatabaseRouter {
    struct B(Box<dyn DatabaseRouter>);
    impl DatabaseRouter for B {
        fn db_for_write(&self, m: &ModelInfo, h: &Hints) -> Option<String> {
            self.0.db_for_write(m, h)
        }
    }
    B(b)
}

#[test]
fn debug_lists_router_names() {
    let chain = RouterChain::new().with(fixed(None, None, None, None));
    assert_eq!(format!("{chain:?}"), "[\"fixed\"]");
}
