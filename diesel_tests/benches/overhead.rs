//! The cost of `MultiHostConnection` over a plain `PgConnection`.
//!
//! Starts its own primary + standby (the test harness), then runs the same point SELECT and
//! single-row INSERT through a plain `PgConnection` and through `MultiHostConnection` pinned
//! to the same primary (and, for information, unpinned: the SELECT then runs on the
//! standby). The sides take turns statement by statement, so that drift hits them alike. Prints the median
//! latency of each and their ratio.
//!
//! ```text
//! cargo bench -p diesel_tests --bench overhead            # 20 rounds of 500
//! ROUNDS=40 PER_ROUND=1000 cargo bench -p diesel_tests --bench overhead
//! ```

#[path = "../tests/integration/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_multidb::MultiHostConnection;

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Times one run of `op`.
fn time(op: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    op();
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn select<C>(conn: &mut C) -> impl FnMut() + '_
where
    C: diesel::connection::LoadConnection<Backend = diesel::pg::Pg>,
{
    move || {
        let name: String = items::table
            .find(1)
            .select(items::name)
            .first(conn)
            .expect("point select");
        std::hint::black_box(name);
    }
}

fn insert<C>(conn: &mut C) -> impl FnMut() + '_
where
    C: diesel::connection::LoadConnection<Backend = diesel::pg::Pg>,
{
    move || {
        let n = diesel::insert_into(items::table)
            .values(items::name.eq("bench"))
            .execute(conn)
            .expect("insert");
        std::hint::black_box(n);
    }
}

fn main() {
    let rounds = env_or("ROUNDS", 20);
    let per_round = env_or("PER_ROUND", 500);
    eprintln!("starting a primary and a standby ...");
    let cluster = cluster::PgCluster::start(1);
    let primary_url = cluster.node_url(cluster.primary_port());
    let multi_url = cluster.default_url("");

    let mut setup = PgConnection::establish(&primary_url).expect("plain connection");
    setup
        .batch_execute(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO items (name) VALUES ('first');",
        )
        .expect("schema");
    cluster.wait_for_replay();

    // Both sides use the same server session: the wrapper pinned to the primary, and its own
    // inner PgConnection (`primary_connection()`). With two cores, which core a server
    // backend lands on moves latency by more than the wrapper costs: two separate
    // connections would measure that, not the wrapper.
    let mut wrapped = MultiHostConnection::<PgConnection>::establish(&multi_url).expect("wrapped");
    wrapped.pin_to_primary();
    assert_eq!(wrapped.primary_host().port(), cluster.primary_port());
    let mut unpinned =
        MultiHostConnection::<PgConnection>::establish(&multi_url).expect("unpinned");

    for _ in 0..200 {
        select(wrapped.primary_connection().expect("inner"))();
        select(&mut wrapped)();
        select(&mut unpinned)();
        insert(wrapped.primary_connection().expect("inner"))();
        insert(&mut wrapped)();
    }

    // Statement by statement the sides take turns (the order alternates), so that the
    // machine's drift hits both alike.
    let mut results: [Vec<Duration>; 5] = Default::default();
    for i in 0..rounds * per_round {
        let inner_first = i % 2 == 0;
        for k in 0..2 {
            if (k == 0) == inner_first {
                let inner = wrapped.primary_connection().expect("inner");
                results[0].push(time(&mut select(inner)));
                let inner = wrapped.primary_connection().expect("inner");
                results[3].push(time(&mut insert(inner)));
            } else {
                results[1].push(time(&mut select(&mut wrapped)));
                results[4].push(time(&mut insert(&mut wrapped)));
            }
        }
        results[2].push(time(&mut select(&mut unpinned)));
    }
    assert!(wrapped.last_route().is_some_and(|r| !r.is_replica()));
    assert!(unpinned.last_route().is_some_and(|r| r.is_replica()));
    let [sel_plain, sel_pinned, sel_unpinned, ins_plain, ins_pinned] = results.map(median);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!(
        "{} statements per side, interleaved; median latency per statement",
        rounds * per_round
    );
    println!("| statement                      | PgConnection | MultiHostConnection | ratio  |");
    println!("|--------------------------------|--------------|---------------------|--------|");
    println!(
        "| point SELECT (pinned, primary) | {:>9.1} us | {:>16.1} us | {:>6.3} |",
        us(sel_plain),
        us(sel_pinned),
        us(sel_pinned) / us(sel_plain)
    );
    println!(
        "| single-row INSERT (primary)    | {:>9.1} us | {:>16.1} us | {:>6.3} |",
        us(ins_plain),
        us(ins_pinned),
        us(ins_pinned) / us(ins_plain)
    );
    println!(
        "| point SELECT (unpinned, standby)|            - | {:>16.1} us |      - |",
        us(sel_unpinned)
    );
    println!();
    println!("(PgConnection = the wrapper's own inner connection, same server session.)");
}
