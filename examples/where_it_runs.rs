//! Connects to a multi-host URL and prints where each statement ran.
//!
//! ```text
//! DATABASE_URL='postgres://postgres@127.0.0.1:5432,127.0.0.1:5433,127.0.0.1:5434/postgres' \
//!     cargo run --example where_it_runs
//! ```
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use diesel_multidb::MultiHostConnection;

#[derive(QueryableByName, Debug)]
struct Server {
    #[diesel(sql_type = Integer)]
    port: i32,
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL to a (multi-host) PostgreSQL URL")?;
    let mut conn = MultiHostConnection::<PgConnection>::establish(&url)?;
    if let Some(primary) = conn.primary_host() {
        println!("connected; primary is {primary}");
    }

    let server_query = "SELECT inet_server_port() AS port, pg_is_in_recovery() AS in_recovery";
    let server: Server = diesel::sql_query(server_query).get_result(&mut conn)?;
    println!(
        "a plain SELECT ran on {:?} (port {}, in recovery: {})",
        conn.last_route(),
        server.port,
        server.in_recovery
    );

    diesel::sql_query("CREATE TABLE IF NOT EXISTS where_it_runs (id serial PRIMARY KEY)")
        .execute(&mut conn)?;
    println!("CREATE TABLE ran on {:?}", conn.last_route());

    conn.transaction(|conn| {
        let server: Server = diesel::sql_query(server_query).get_result(conn)?;
        println!(
            "a SELECT inside a transaction ran on {:?}: {server:?}",
            conn.last_route()
        );
        diesel::sql_query("INSERT INTO where_it_runs DEFAULT VALUES").execute(conn)?;
        QueryResult::Ok(())
    })?;

    for status in conn.topology() {
        println!("{status:?}");
    }
    Ok(())
}
