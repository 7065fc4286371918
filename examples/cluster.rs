//! The multi-host connection on a throw-away cluster: a PostgreSQL primary and two
//! streaming standbys started from the machine's server binaries on free loopback ports
//! (no Docker, no setup), where each statement runs, a registry alias on the same cluster,
//! a failover, and cleanup.
//!
//! ```text
//! cargo run --example cluster
//! ```
//!
//! Needs the PostgreSQL server binaries (`apt-get install postgresql`; found under
//! `/usr/lib/postgresql/*/bin` or `PG_BIN_DIR`). Run as root, the servers run as the
//! `postgres` user. Everything is removed when the example ends, however it ends.
//!
//! The cluster comes from `diesel-multidb-testkit`, the crate's test harness, which a user's
//! own tests can use the same way.

use std::error::Error;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use diesel_multidb::{models, Config, DatabaseConfig, MultiHostConnection};
use diesel_multidb_testkit::PgCluster;

diesel::table! {
    notes (id) {
        id -> Integer,
        body -> Text,
    }
}

models! { "notes" => [notes::table] }

/// The server's own answer to "who are you".
#[derive(QueryableByName)]
struct Server {
    #[diesel(sql_type = Integer)]
    port: i32,
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
}

fn who(conn: &mut MultiHostConnection<PgConnection>) -> QueryResult<String> {
    let s: Server =
        diesel::sql_query("SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery")
            .get_result(conn)?;
    let role = if s.in_recovery {
        "a standby"
    } else {
        "the primary"
    };
    Ok(format!("port {} ({role})", s.port))
}

/// Where the last statement ran, as the connection reports it.
fn route(conn: &MultiHostConnection<PgConnection>) -> String {
    conn.last_route()
        .map_or_else(|| "nowhere".to_string(), |r| r.to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("starting a primary and two standbys ...");
    let cluster = PgCluster::start(2);
    println!(
        "primary on 127.0.0.1:{}, standbys on {:?}\n",
        cluster.primary_port(),
        cluster.standby_ports()
    );
    let url = cluster.default_url("");

    // Swap the type: MultiHostConnection<PgConnection> where PgConnection was.
    let mut conn = MultiHostConnection::<PgConnection>::establish(&url)?;
    diesel::sql_query("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        .execute(&mut conn)?;
    println!("CREATE TABLE            -> {}", route(&conn));

    let id: i32 = diesel::insert_into(notes::table)
        .values(notes::body.eq("hello"))
        .returning(notes::id)
        .get_result(&mut conn)?;
    println!("INSERT ... RETURNING    -> {}", route(&conn));

    // Read-your-writes: this read sees the row, wherever it runs.
    let body: String = notes::table.find(id).select(notes::body).first(&mut conn)?;
    println!(
        "read of our own write   -> {} ({body:?}: on the primary until a standby has it)",
        route(&conn)
    );
    conn.wait_for_standby(Duration::from_secs(5));
    let server = who(&mut conn)?;
    println!(
        "a plain read            -> {} (the server says {server})",
        route(&conn)
    );

    conn.transaction(|conn| {
        println!("a read in a transaction -> {}", who(conn)?);
        QueryResult::Ok(())
    })?;

    // A token for another connection (or process) that must see our writes.
    let token = conn.causal_token()?;
    println!("causal token of our writes: {token}\n");

    println!("what the monitor knows:");
    for host in conn.topology() {
        let lag = host
            .lag
            .map(|l| format!("lag {:.3}s", l.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "  {:<16} {:<8} timeline {:?} at {} {lag} {}",
            host.host.to_string(),
            host.role.map_or("down".to_string(), |r| r.to_string()),
            host.timeline.unwrap_or(0),
            host.position.unwrap_or_default(),
            host.excluded
                .map(|e| format!("(no reads: {e})"))
                .unwrap_or_default()
        );
    }

    // The same cluster as an alias of the registry of named pools.
    let databases = Config::new()
        .database("default", DatabaseConfig::new(url.clone()))
        .build()?;
    let mut pooled = databases.for_read::<notes::table>()?;
    pooled.read_after(&token);
    let count: i64 = notes::table.count().get_result(&mut *pooled)?;
    println!("\nregistry: for_read::<notes>() after the token counts {count} note(s)");
    drop(pooled);

    // Failover: the primary dies, a standby is promoted, the next write lands there.
    let new_primary = cluster.standby_ports()[0];
    println!("\nkilling the primary, promoting 127.0.0.1:{new_primary} ...");
    cluster.kill(cluster.primary_port());
    cluster.promote(new_primary);
    let id: i32 = diesel::insert_into(notes::table)
        .values(notes::body.eq("after the failover"))
        .returning(notes::id)
        .get_result(&mut conn)?;
    let landed = route(&conn);
    println!(
        "the next INSERT (id {id}) -> {landed} (the server says {})",
        who(&mut conn)?
    );
    println!("\nstopping the cluster and removing its files");
    Ok(())
}
