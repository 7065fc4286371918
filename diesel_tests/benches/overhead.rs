//! The cost of `MultiHostConnection` over a plain `PgConnection`.
//!
//! Starts its own primary + standby (the test harness), then runs the same point SELECT and
//! single-row INSERT through a plain `PgConnection` and through `MultiHostConnection` pinned
//! to the same primary (and, for information, unpinned: the SELECT then runs on the
//! standby). Rounds are interleaved so that drift hits both sides alike. Prints the median
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

/// Runs `op` `n` times, returning each latency.
fn sample(n: usize, mut op: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed()
        })
        .collect()
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

    let mut plain = PgConnection::establish(&primary_url).expect("plain connection");
    plain
        .batch_execute(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO items (name) VALUES ('first');",
        )
        .expect("schema");
    cluster.wait_for_replay();
    let mut pinned = MultiHostConnection::<PgConnection>::establish(&multi_url).expect("pinned");
    pinned.pin_to_primary();
    let mut unpinned =
        MultiHostConnection::<PgConnection>::establish(&multi_url).expect("unpinned");
    assert_eq!(pinned.primary_host().port(), cluster.primary_port());

    // Warm up: prepared statement caches, replica connection.
    for _ in 0..100 {
        select(&mut plain)();
        select(&mut pinned)();
        select(&mut unpinned)();
        insert(&mut plain)();
        insert(&mut pinned)();
    }

    let mut results: [Vec<Duration>; 5] = Default::default();
    for _ in 0..rounds {
        results[0].extend(sample(per_round, select(&mut plain)));
        results[1].extend(sample(per_round, select(&mut pinned)));
        results[2].extend(sample(per_round, select(&mut unpinned)));
        results[3].extend(sample(per_round, insert(&mut plain)));
        results[4].extend(sample(per_round, insert(&mut pinned)));
    }
    let [sel_plain, sel_pinned, sel_unpinned, ins_plain, ins_pinned] = results.map(median);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!(
        "{} rounds x {} statements each; median latency per statement",
        rounds, per_round
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
        "| point SELECT (unpinned, standby)| {:>8.1} us | {:>16.1} us | {:>6.3} |",
        us(sel_plain),
        us(sel_unpinned),
        us(sel_unpinned) / us(sel_plain)
    );
}
