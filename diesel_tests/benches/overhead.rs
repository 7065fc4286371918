//! The cost of `MultiHostConnection` over its own inner connection, for PostgreSQL
//! (`PgConnection`) and MariaDB (`MysqlConnection`).
//!
//! Starts its own primary + standby of each (the test harness), then runs the same point
//! SELECT and single-row INSERT through the inner connection and through
//! `MultiHostConnection` pinned to the same primary (and, for information, unpinned: the
//! SELECT then runs on the standby). The sides take turns statement by statement, so that
//! drift hits them alike. Prints the median latency of each and their ratio.
//!
//! ```text
//! cargo bench -p diesel_tests --bench overhead            # 20 rounds of 500
//! ROUNDS=40 PER_ROUND=1000 cargo bench -p diesel_tests --bench overhead
//! ```

mod common;

use std::time::Duration;

use common::{env_or, mariadb_items, median, pg_items, time, us};

use diesel::prelude::*;
use diesel_multidb::MultiHostConnection;

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

/// The point SELECT, through any connection Diesel's query builder can load through.
fn select<'a, C>(conn: &'a mut C) -> impl FnMut() + 'a
where
    C: Connection,
    for<'q> diesel::dsl::Limit<diesel::dsl::Select<diesel::dsl::Find<items::table, i32>, items::name>>:
        diesel::query_dsl::LoadQuery<'q, C, String>,
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

/// The single-row INSERT.
fn insert<'a, C>(conn: &'a mut C) -> impl FnMut() + 'a
where
    C: Connection,
    diesel::query_builder::InsertStatement<
        items::table,
        <diesel::dsl::Eq<items::name, &'static str> as Insertable<items::table>>::Values,
    >: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    move || {
        let n = diesel::insert_into(items::table)
            .values(items::name.eq("bench"))
            .execute(conn)
            .expect("insert");
        std::hint::black_box(n);
    }
}

/// Median latencies through two wrappers on the multi-host `url`: point SELECT (inner, pinned
/// wrapper, unpinned wrapper), INSERT (inner, pinned wrapper). Both sides use the same server session: the wrapper pinned to the
/// primary, and its own inner connection (`primary_connection()`). With two cores, which core
/// a server backend lands on moves latency by more than the wrapper costs: two separate
/// connections would measure that, not the wrapper. Statement by statement the sides take
/// turns (the order alternates), so that the machine's drift hits both alike.
fn compare<C>(url: &str, statements: usize) -> [Duration; 5]
where
    C: diesel_multidb::SyncHostConnection,
    for<'q> diesel::dsl::Limit<diesel::dsl::Select<diesel::dsl::Find<items::table, i32>, items::name>>:
        diesel::query_dsl::LoadQuery<'q, C, String>
            + diesel::query_dsl::LoadQuery<'q, MultiHostConnection<C>, String>,
    diesel::query_builder::InsertStatement<
        items::table,
        <diesel::dsl::Eq<items::name, &'static str> as Insertable<items::table>>::Values,
    >: diesel::query_dsl::methods::ExecuteDsl<C>
        + diesel::query_dsl::methods::ExecuteDsl<MultiHostConnection<C>>,
{
    let wrapped = &mut MultiHostConnection::<C>::establish(url).expect("wrapped");
    let unpinned = &mut MultiHostConnection::<C>::establish(url).expect("unpinned");
    wrapped.pin_to_primary();
    for _ in 0..200 {
        select(wrapped.primary_connection().expect("inner"))();
        select(&mut *wrapped)();
        select(&mut *unpinned)();
        insert(wrapped.primary_connection().expect("inner"))();
        insert(&mut *wrapped)();
    }
    unpinned.wait_for_standby(Duration::from_secs(10));
    let mut results: [Vec<Duration>; 5] = Default::default();
    for i in 0..statements {
        let inner_first = i % 2 == 0;
        for k in 0..2 {
            if (k == 0) == inner_first {
                let inner = wrapped.primary_connection().expect("inner");
                results[0].push(time(&mut select(inner)));
                let inner = wrapped.primary_connection().expect("inner");
                results[3].push(time(&mut insert(inner)));
            } else {
                results[1].push(time(&mut select(&mut *wrapped)));
                results[4].push(time(&mut insert(&mut *wrapped)));
            }
        }
        results[2].push(time(&mut select(&mut *unpinned)));
    }
    assert!(wrapped.last_route().is_some_and(|r| !r.is_replica()));
    results.map(median)
}

fn print_rows(
    backend: &str,
    [sel_plain, sel_pinned, sel_unpinned, ins_plain, ins_pinned]: [Duration; 5],
) {
    println!(
        "| {backend:<8} | point SELECT (pinned, primary)   | {:>9.1} us | {:>16.1} us | {:>6.3} |",
        us(sel_plain),
        us(sel_pinned),
        us(sel_pinned) / us(sel_plain)
    );
    println!(
        "| {backend:<8} | single-row INSERT (primary)      | {:>9.1} us | {:>16.1} us | {:>6.3} |",
        us(ins_plain),
        us(ins_pinned),
        us(ins_pinned) / us(ins_plain)
    );
    println!(
        "| {backend:<8} | point SELECT (unpinned, standby) |            - | {:>16.1} us |      - |",
        us(sel_unpinned)
    );
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let rounds = env_or("ROUNDS", 20usize);
    let per_round = env_or("PER_ROUND", 500usize);
    let statements = rounds * per_round;

    eprintln!("starting a PostgreSQL primary and a standby ...");
    let cluster = diesel_multidb_testkit::PgCluster::start(1);
    let setup = pg_items(&cluster);
    let pg = compare::<PgConnection>(&cluster.default_url(""), statements);
    drop((setup, cluster));

    eprintln!("starting a MariaDB source and a replica ...");
    let maria = diesel_multidb_testkit::MariaDbCluster::start(1);
    let _setup = mariadb_items(&maria);
    let mysql = compare::<MysqlConnection>(&maria.default_url(""), statements);

    println!();
    println!("{statements} statements per side, interleaved; median latency per statement");
    println!("| backend  | statement                        | inner        | MultiHostConnection | ratio  |");
    println!("|----------|----------------------------------|--------------|---------------------|--------|");
    print_rows("Pg", pg);
    print_rows("Mysql", mysql);
    println!();
    println!("(inner = the wrapper's own inner connection, same server session.)");
}
