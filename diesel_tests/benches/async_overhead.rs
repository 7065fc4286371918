//! The cost of the async `MultiHostConnection` over its own inner connection, for
//! PostgreSQL (`AsyncPgConnection`) and MariaDB (`AsyncMysqlConnection`) (issue 11 section 4;
//! the async counterpart of `overhead`).
//!
//! Starts its own primary + standby of each (the test harness), then runs the same
//! statements through the inner connection and through `MultiHostConnection` pinned to the
//! same primary: both sides use ONE server session (the wrapper's own inner connection,
//! `primary_connection().await`), so that only the wrapper differs. Statements:
//!
//! * `SELECT 1` through the query builder (`diesel::select(1.into_sql::<Integer>())`, a
//!   static query id);
//! * a point SELECT by primary key (static query id);
//! * the same point SELECT through `into_boxed()` (no static query id);
//! * a single-row INSERT.
//!
//! For information, the point SELECT also runs on a second, unpinned wrapper (on the
//! standby). The sides take turns statement by statement, the order alternating, in rounds;
//! the table shows the median of every sample of each side, their ratio, and the median and
//! range of the per-round ratios (each round's medians), next to the issue's target (at most
//! 3 % overhead). The statements run in a task on a multi-thread Tokio runtime (`WORKERS`
//! worker threads), as in a server; `WORKERS=0`: on a current-thread runtime (less
//! scheduling noise; the monitor's tasks then share the thread).
//!
//! ```text
//! cargo bench -p diesel_tests --bench async_overhead                # 20 rounds of 500
//! cargo bench -p diesel_tests --bench async_overhead -- --quick     # 5 rounds of 100
//! ROUNDS=40 PER_ROUND=1000 BACKENDS=pg cargo bench -p diesel_tests --bench async_overhead
//! ```
//!
//! | variable | meaning | default (`--quick`) |
//! |---|---|---|
//! | `ROUNDS` | rounds | 20 (5) |
//! | `PER_ROUND` | statements per side, kind and round | 500 (100) |
//! | `BACKENDS` | `pg`, `mysql` or `pg,mysql` | `pg,mysql` |
//! | `WORKERS` | Tokio worker threads (0: a current-thread runtime) | 2 |
//!
//! No assertion on speed: the figures are printed. Not run in CI.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, RunQueryDsl};
use diesel_multidb::MultiHostConnection;

use common::{cores, env_or, loadavg, quick, us, Spread};

diesel::table! {
    items (id) {
        id -> Integer,
        name -> Text,
    }
}

/// The statements compared.
#[derive(Clone, Copy, PartialEq)]
enum Stmt {
    One,
    Point,
    Boxed,
    Insert,
}

impl Stmt {
    const ALL: [Stmt; 4] = [Stmt::One, Stmt::Point, Stmt::Boxed, Stmt::Insert];

    fn label(self) -> &'static str {
        match self {
            Stmt::One => "SELECT 1 (query builder, static)",
            Stmt::Point => "point SELECT (static)",
            Stmt::Boxed => "point SELECT (into_boxed)",
            Stmt::Insert => "single-row INSERT",
        }
    }
}

/// A connection the statements run on. Implemented for the concrete types (the statements'
/// `LoadQuery` bounds, written generically, would be longer than the statements).
trait Side {
    async fn run(&mut self, stmt: Stmt);
}

/// A wrapper and its inner connection (`primary_connection` is inherent per inner type).
trait Wrapper: Side {
    type Inner: Side;

    async fn inner(&mut self) -> &mut Self::Inner;
    fn pin(&mut self);
    async fn standby(&mut self) -> bool;
    fn on_replica(&self) -> Option<bool>;
}

macro_rules! side {
    ($t:ty) => {
        impl Side for $t {
            async fn run(&mut self, stmt: Stmt) {
                match stmt {
                    Stmt::One => {
                        let v: i32 = diesel::select(1.into_sql::<Integer>())
                            .get_result(self)
                            .await
                            .expect("SELECT 1");
                        black_box(v);
                    }
                    Stmt::Point => {
                        let v: String = items::table
                            .find(1)
                            .select(items::name)
                            .first(self)
                            .await
                            .expect("point select");
                        black_box(v);
                    }
                    Stmt::Boxed => {
                        let v: String = items::table
                            .into_boxed()
                            .filter(items::id.eq(1))
                            .select(items::name)
                            .first(self)
                            .await
                            .expect("boxed point select");
                        black_box(v);
                    }
                    Stmt::Insert => {
                        let n = diesel::insert_into(items::table)
                            .values(items::name.eq("bench"))
                            .execute(self)
                            .await
                            .expect("insert");
                        black_box(n);
                    }
                }
            }
        }
    };
}

macro_rules! wrapper {
    ($inner:ty) => {
        side!($inner);
        side!(MultiHostConnection<$inner>);

        impl Wrapper for MultiHostConnection<$inner> {
            type Inner = $inner;

            async fn inner(&mut self) -> &mut $inner {
                self.primary_connection()
                    .await
                    .expect("the inner connection")
            }

            fn pin(&mut self) {
                self.pin_to_primary();
            }

            async fn standby(&mut self) -> bool {
                self.wait_for_standby(Duration::from_secs(10)).await
            }

            fn on_replica(&self) -> Option<bool> {
                self.last_route().map(|r| r.is_replica())
            }
        }
    };
}

wrapper!(AsyncPgConnection);
wrapper!(AsyncMysqlConnection);

/// Times one statement.
async fn time<S: Side>(side: &mut S, stmt: Stmt) -> f64 {
    let start = Instant::now();
    side.run(stmt).await;
    us(start.elapsed())
}

/// The samples of one statement kind: inner, wrapper (µs), and the per-round ratios of
/// their medians.
#[derive(Default)]
struct Samples {
    inner: Vec<f64>,
    wrapped: Vec<f64>,
    ratios: Vec<f64>,
}

/// What one backend measured.
struct Measured {
    kinds: Vec<(Stmt, Samples)>,
    unpinned: Vec<f64>,
    unpinned_on_standby: bool,
}

async fn compare<W: Wrapper>(
    wrapped: &mut W,
    unpinned: &mut W,
    rounds: usize,
    per_round: usize,
) -> Measured {
    wrapped.pin();
    // Warm-up: plan and statement caches, the classification cache, the allocator.
    for _ in 0..200 {
        for stmt in Stmt::ALL {
            wrapped.inner().await.run(stmt).await;
            wrapped.run(stmt).await;
        }
        unpinned.run(Stmt::Point).await;
    }
    let unpinned_on_standby = unpinned.standby().await;
    let mut kinds: Vec<(Stmt, Samples)> =
        Stmt::ALL.iter().map(|&s| (s, Samples::default())).collect();
    let mut unpinned_t = Vec::with_capacity(rounds * per_round);
    for round in 0..rounds {
        let mut this: Vec<(Vec<f64>, Vec<f64>)> =
            vec![(Vec::with_capacity(per_round), Vec::with_capacity(per_round)); kinds.len()];
        for i in 0..per_round {
            let inner_first = (i + round) % 2 == 0;
            for (k, stmt) in Stmt::ALL.into_iter().enumerate() {
                for turn in 0..2 {
                    if (turn == 0) == inner_first {
                        let inner = wrapped.inner().await;
                        this[k].0.push(time(inner, stmt).await);
                    } else {
                        this[k].1.push(time(wrapped, stmt).await);
                    }
                }
            }
            unpinned_t.push(time(unpinned, Stmt::Point).await);
        }
        for ((_, samples), (inner, wrapper)) in kinds.iter_mut().zip(this) {
            samples
                .ratios
                .push(Spread::of(&wrapper).median / Spread::of(&inner).median);
            samples.inner.extend(inner);
            samples.wrapped.extend(wrapper);
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    assert_eq!(
        wrapped.on_replica(),
        Some(false),
        "the pinned wrapper ran on the primary"
    );
    Measured {
        kinds,
        unpinned: unpinned_t,
        unpinned_on_standby: unpinned_on_standby && unpinned.on_replica() == Some(true),
    }
}

fn print_rows(backend: &str, m: &Measured) {
    for (stmt, s) in &m.kinds {
        let (a, b, r) = (
            Spread::of(&s.inner),
            Spread::of(&s.wrapped),
            Spread::of(&s.ratios),
        );
        println!(
            "| {backend} | {} | {:.1} ({}) | {:.1} ({}) | {:.3} | {:+.1} | {:.3} ({}) | ≤ 1.03 |",
            stmt.label(),
            a.median,
            a.p10_p90(1),
            b.median,
            b.p10_p90(1),
            b.median / a.median,
            b.median - a.median,
            r.median,
            r.range(3),
        );
    }
    let u = Spread::of(&m.unpinned);
    println!(
        "| {backend} | point SELECT, unpinned wrapper ({}) | - | {:.1} ({}) | - | - | - | (information) |",
        if m.unpinned_on_standby {
            "on the standby"
        } else {
            "NOT on the standby"
        },
        u.median,
        u.p10_p90(1),
    );
}

async fn bench_pg(rounds: usize, per_round: usize) -> Measured {
    eprintln!("starting a PostgreSQL primary and a standby ...");
    let cluster = diesel_multidb_testkit::PgCluster::start(1);
    let mut setup = diesel::PgConnection::establish(&cluster.node_url(cluster.primary_port()))
        .unwrap_or_else(|e| panic!("connecting to the primary: {e}"));
    setup
        .batch_execute(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO items (name) VALUES ('first');",
        )
        .expect("schema");
    cluster.wait_for_replay();
    let url = cluster.default_url("");
    type W = MultiHostConnection<AsyncPgConnection>;
    let mut wrapped = W::establish(&url)
        .await
        .unwrap_or_else(|e| panic!("establishing the wrapper: {e}"));
    let mut unpinned = W::establish(&url)
        .await
        .unwrap_or_else(|e| panic!("establishing the unpinned wrapper: {e}"));
    let m = compare(&mut wrapped, &mut unpinned, rounds, per_round).await;
    drop((wrapped, unpinned, setup));
    // The harness stops the servers here (blocking; nothing else runs on the runtime).
    drop(cluster);
    m
}

async fn bench_mysql(rounds: usize, per_round: usize) -> Measured {
    eprintln!("starting a MariaDB source and a replica ...");
    let maria = diesel_multidb_testkit::MariaDbCluster::start(1);
    let mut setup = diesel::MysqlConnection::establish(&maria.node_url(maria.source_port()))
        .unwrap_or_else(|e| panic!("connecting to the source: {e}"));
    setup
        .batch_execute(
            "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);
             INSERT INTO items (name) VALUES ('first');",
        )
        .expect("schema");
    maria.wait_for_replication();
    let url = maria.default_url("");
    type W = MultiHostConnection<AsyncMysqlConnection>;
    let mut wrapped = W::establish(&url)
        .await
        .unwrap_or_else(|e| panic!("establishing the wrapper: {e}"));
    let mut unpinned = W::establish(&url)
        .await
        .unwrap_or_else(|e| panic!("establishing the unpinned wrapper: {e}"));
    let m = compare(&mut wrapped, &mut unpinned, rounds, per_round).await;
    drop((wrapped, unpinned, setup));
    drop(maria);
    m
}

fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let quick = quick();
    let rounds = env_or("ROUNDS", if quick { 5 } else { 20usize }).max(1);
    let per_round = env_or("PER_ROUND", if quick { 100 } else { 500usize }).max(1);
    let workers = env_or("WORKERS", 2usize);
    let backends = env_or("BACKENDS", "pg,mysql".to_owned());
    let (pg, mysql) = (backends.contains("pg"), backends.contains("mysql"));
    let load_start = loadavg();
    let t0 = Instant::now();

    let rt = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    }
    .enable_all()
    .build()
    .expect("a Tokio runtime");
    let (pg_m, mysql_m) = rt.block_on(async move {
        // A task, so that the statements run on a worker thread as in a server.
        tokio::spawn(async move {
            let pg_m = if pg {
                Some(bench_pg(rounds, per_round).await)
            } else {
                None
            };
            let mysql_m = if mysql {
                Some(bench_mysql(rounds, per_round).await)
            } else {
                None
            };
            (pg_m, mysql_m)
        })
        .await
        .expect("the bench task panicked")
    });

    println!();
    println!(
        "# diesel-multidb async overhead bench{}",
        if quick { " (--quick)" } else { "" }
    );
    println!();
    println!(
        "{} cores, {}; {rounds} rounds x {per_round} statements per side \
         and kind, interleaved statement by statement; MultiHostConnection pinned to the primary \
         vs its own inner connection (one server session); latency in µs",
        cores(),
        if workers == 0 {
            "a current-thread Tokio runtime".to_owned()
        } else {
            format!("{workers} Tokio workers")
        }
    );
    println!();
    println!(
        "| backend | statement | inner µs median (p10–p90) | MultiHostConnection µs median \
         (p10–p90) | ratio | difference µs | per-round ratio median (min–max) | target |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    if let Some(m) = &pg_m {
        print_rows("Pg", m);
    }
    if let Some(m) = &mysql_m {
        print_rows("MariaDB", m);
    }
    println!();
    println!(
        "(inner = AsyncPgConnection / AsyncMysqlConnection, the wrapper's own; total {:.0?}; \
         load average at start {load_start}, at the end {})",
        t0.elapsed(),
        loadavg()
    );
}
