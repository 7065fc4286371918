//! PostgreSQL for the router tests: a fresh database per test on the shared test cluster
//! (a primary and two streaming standbys started by [`crate::cluster`]; a test fails if the
//! cluster cannot start, it never skips).

use diesel_multidb_testkit::PgCluster;

/// A fresh database: URLs on the primary and on each standby (superuser, trust auth).
pub(crate) struct PgDb {
    pub(crate) name: String,
    pub(crate) primary_url: String,
    pub(crate) standby_urls: Vec<String>,
}

impl PgDb {
    /// The primary URL as the password-authenticated role `app` (scram-sha-256).
    pub(crate) fn app_primary_url(&self, password: &str) -> String {
        let c = PgCluster::shared();
        let url = c.app_url(c.primary_port(), password);
        let base = url
            .strip_suffix("/postgres")
            .expect("app_url ends with /postgres");
        format!("{base}/{}", self.name)
    }
}

pub(crate) fn fresh(prefix: &str) -> PgDb {
    let c = PgCluster::shared();
    let name = c.create_database(prefix);
    PgDb {
        primary_url: c.node_db_url(c.primary_port(), &name),
        standby_urls: c
            .standby_ports()
            .iter()
            .map(|p| c.node_db_url(*p, &name))
            .collect(),
        name,
    }
}

/// Waits until the standbys replayed everything the primary wrote.
pub(crate) fn wait_for_replay() {
    PgCluster::shared().wait_for_replay();
}

/// The superuser URL with a (trust-ignored) password, for checking that it never shows.
pub(crate) fn with_password(url: &str, password: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    )
}
