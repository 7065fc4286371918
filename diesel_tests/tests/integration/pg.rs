//! PostgreSQL for the router tests: fresh databases on the shared test cluster.
//!
//! INTERIM: talks to a local server on 127.0.0.1:5432 until the harness branch lands.

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;

/// A fresh database: URLs on the primary and on a standby.
pub(crate) struct PgDb {
    pub(crate) primary_url: String,
    pub(crate) standby_urls: Vec<String>,
}

pub(crate) fn fresh(prefix: &str) -> PgDb {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut c =
        PgConnection::establish("postgres://postgres@127.0.0.1:5432/postgres").expect("local pg");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .expect("create db");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    PgDb {
        primary_url: url.clone(),
        standby_urls: vec![url.clone(), url],
    }
}

/// Waits until the standbys replayed everything the primary wrote.
pub(crate) fn wait_for_replay() {}

/// A URL with a password, for checking that it never shows.
pub(crate) fn with_password(url: &str, password: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    )
}
