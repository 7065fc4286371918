//! What the async `MultiHostConnection` gives in a pool (issue 11 section 4): the read-mostly
//! workload of the `pool` bench's section 1, in async form.
//!
//! Starts its own cluster (a primary and two streaming standbys, the test harness), creates
//! a database with a table `accounts` of 100,000 rows, then runs `TASKS` Tokio tasks, each
//! doing "transactions" the way an async web handler does: check a connection out of a
//! diesel-async deadpool pool (`diesel_async::pooled_connection::deadpool`), run one
//! statement, give it back. A point read by primary key or (10 % of the time in the 90/10
//! workload) an update by primary key. Workloads: 90/10 read/write and read-only.
//! Variants, each a pool of `POOL_SIZE`:
//!
//! * (a) `AsyncPgConnection` on the primary only, the manager's defaults
//!   (`RecyclingMethod::Verified`: a `SELECT 1` round trip per checkout);
//! * (a') (a) with `RecyclingMethod::Fast` (no check at checkout), for information: the
//!   wrapper's `Verified` check costs nothing within 500 ms of a successful statement, so
//!   (b)/(a') shows what the wrapper costs or gains without that difference;
//! * (b) `MultiHostConnection<AsyncPgConnection>` with the multi-host URL (primary, then the
//!   standbys), the manager's defaults and the wrapper's (read-your-writes on);
//! * (d) hand-split pools: an `AsyncPgConnection` pool on the primary for the writes and
//!   one per standby for the reads (task `i` reads from standby `i mod 2`), `Verified`.
//!
//! Variants take turns (a, a', b, d, a', b, d, a, ...), `ROUNDS` times per workload, `SECS`
//! seconds each. Prints tx/s per variant (median and range over the rounds), where the
//! reads ran (the wrapper's `last_route()` after each read), and the ratios (b)/(a),
//! (b)/(a'), (b)/(d) (median and range of the per-round ratios), next to the sync pool
//! bench's targets (issue 8).
//!
//! # Running it
//!
//! ```text
//! cargo bench -p diesel_tests --bench async_pool               # about 1.5 minutes
//! cargo bench -p diesel_tests --bench async_pool -- --quick    # about 30 s
//! ROUNDS=10 SECS=3 TASKS=16 cargo bench -p diesel_tests --bench async_pool
//! ```
//!
//! | variable | meaning | default (`--quick`) |
//! |---|---|---|
//! | `ROUNDS` | rounds (every variant once per round and workload) | 5 (2) |
//! | `SECS` | seconds per variant per round | 2 (0.7) |
//! | `TASKS` | client tasks | 8 |
//! | `POOL_SIZE` | deadpool `max_size` of each pool | 8 |
//! | `WORKERS` | Tokio worker threads | the core count |
//! | `ROWS` | rows in `accounts` | 100000 |
//! | `WRITE_PCT` | updates in the read/write workload, in percent | 10 |
//! | `SYNC_COMMIT` | `synchronous_commit` of the bench's database (see `pool`) | `on` |
//!
//! No assertion on speed: the targets are printed next to the figures. Not run in CI.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_multidb::MultiHostConnection;
use diesel_multidb_testkit::PgCluster;

use common::{accounts, cores, env_or, loadavg, sum_loads, workloads, LoadLoop, Runs, Tally};

type Multi = MultiHostConnection<AsyncPgConnection>;
type PgPool = Pool<AsyncPgConnection>;
type MultiPool = Pool<Multi>;

struct Config {
    rounds: usize,
    secs: f64,
    tasks: usize,
    pool_size: usize,
    workers: usize,
    rows: u64,
    write_pct: u64,
    sync_commit: String,
}

impl Config {
    fn from_env(quick: bool) -> Config {
        Config {
            rounds: env_or("ROUNDS", if quick { 2 } else { 5usize }).max(1),
            secs: env_or("SECS", if quick { 0.7 } else { 2.0 }),
            tasks: env_or("TASKS", 8usize).max(1),
            pool_size: env_or("POOL_SIZE", 8usize).max(1),
            workers: env_or("WORKERS", cores()).max(1),
            rows: env_or("ROWS", 100_000u64).clamp(1, i32::MAX as u64),
            write_pct: env_or("WRITE_PCT", 10u64).min(100),
            sync_commit: env_or("SYNC_COMMIT", "on".to_owned()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Statements (concrete per connection type: diesel-async's generic bounds would be longer).
// ---------------------------------------------------------------------------------------

macro_rules! point_read {
    ($conn:expr, $id:expr) => {
        accounts::table
            .find($id)
            .select(accounts::balance)
            .first::<i64>($conn)
            .await
            .map(drop)
    };
}

macro_rules! point_update {
    ($conn:expr, $id:expr) => {
        diesel::update(accounts::table.find($id))
            .set(accounts::balance.eq(accounts::balance + 1))
            .execute($conn)
            .await
            .map(drop)
    };
}

/// A point update (`$write`) or a point read of row `$id`.
macro_rules! read_or_update {
    ($conn:expr, $id:expr, $write:expr) => {
        if $write {
            point_update!($conn, $id)
        } else {
            point_read!($conn, $id)
        }
    };
}

// ---------------------------------------------------------------------------------------
// Variants and the load.
// ---------------------------------------------------------------------------------------

/// What a variant's tasks check connections out of.
enum Target {
    /// One pool of `AsyncPgConnection` on the primary.
    Plain(PgPool),
    /// One pool of `MultiHostConnection`.
    Multi(MultiPool),
    /// Writes to `primary`, reads to `standbys[task mod 2]`.
    Split {
        primary: PgPool,
        standbys: Vec<PgPool>,
    },
}

struct Variant {
    key: &'static str,
    label: &'static str,
    target: Arc<Target>,
}

/// One transaction: a checkout, a read or an update, the checkin (the wrapper's standby reads
/// noted in `t`).
async fn one(
    target: &Target,
    task: usize,
    id: i32,
    write: bool,
    t: &mut Tally,
) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    match target {
        Target::Plain(pool) => {
            let mut conn = pool.get().await.map_err(|e| s(&e))?;
            read_or_update!(&mut *conn, id, write).map_err(|e| s(&e))?;
        }
        Target::Multi(pool) => {
            let mut conn = pool.get().await.map_err(|e| s(&e))?;
            read_or_update!(&mut *conn, id, write).map_err(|e| s(&e))?;
            if !write {
                t.note_route(conn.last_route());
            }
        }
        Target::Split { primary, standbys } => {
            let pool = if write {
                primary
            } else {
                &standbys[task % standbys.len()]
            };
            let mut conn = pool.get().await.map_err(|e| s(&e))?;
            read_or_update!(&mut *conn, id, write).map_err(|e| s(&e))?;
        }
    }
    Ok(())
}

/// Runs `cfg.tasks` tasks against `target` for `secs`; returns tx/s and what they did.
async fn drive(
    target: &Arc<Target>,
    cfg: &Config,
    secs: f64,
    write_pct: u64,
    seed: u64,
) -> (f64, Tally) {
    let barrier = Arc::new(tokio::sync::Barrier::new(cfg.tasks));
    let rows = cfg.rows;
    let handles: Vec<_> = (0..cfg.tasks)
        .map(|i| {
            let barrier = barrier.clone();
            let target = target.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut load = LoadLoop::start(seed, i, rows, write_pct, secs);
                while let Some((id, write)) = load.next() {
                    let outcome = one(&target, i, id, write, load.tally()).await;
                    load.done(write, outcome);
                }
                load.finish()
            })
        })
        .collect();
    let mut loads = Vec::with_capacity(handles.len());
    for h in handles {
        loads.push(h.await.expect("a load task panicked"));
    }
    sum_loads(loads)
}

fn pg_pool(url: &str, size: usize, verified: bool) -> PgPool {
    let mut config = ManagerConfig::default();
    if !verified {
        config.recycling_method = RecyclingMethod::Fast;
    }
    Pool::builder(AsyncDieselConnectionManager::new_with_config(url, config))
        .max_size(size)
        .build()
        .unwrap_or_else(|e| panic!("building a deadpool of AsyncPgConnection on {url}: {e}"))
}

fn multi_pool(url: &str, size: usize) -> MultiPool {
    Pool::builder(AsyncDieselConnectionManager::<Multi>::new(url))
        .max_size(size)
        .build()
        .unwrap_or_else(|e| {
            panic!("building a deadpool of MultiHostConnection<AsyncPgConnection> on {url}: {e}")
        })
}

async fn run(cluster: &PgCluster, db: &str, cfg: &Config) {
    let primary = cluster.primary_port();
    let standbys = cluster.standby_ports();
    let node = |port| cluster.node_db_url(port, db);
    let multi_url = cluster.db_url(db, &cluster.default_ports(), "");
    let size = cfg.pool_size;
    let variants = [
        Variant {
            key: "(a)",
            label: "AsyncPgConnection, primary only",
            target: Arc::new(Target::Plain(pg_pool(&node(primary), size, true))),
        },
        Variant {
            key: "(a')",
            label: "(a) with RecyclingMethod::Fast",
            target: Arc::new(Target::Plain(pg_pool(&node(primary), size, false))),
        },
        Variant {
            key: "(b)",
            label: "MultiHostConnection<AsyncPgConnection>, defaults",
            target: Arc::new(Target::Multi(multi_pool(&multi_url, size))),
        },
        Variant {
            key: "(d)",
            label: "hand-split: primary pool + a pool per standby",
            target: Arc::new(Target::Split {
                primary: pg_pool(&node(primary), size, true),
                standbys: standbys
                    .iter()
                    .map(|&p| pg_pool(&node(p), size, true))
                    .collect(),
            }),
        },
    ];
    let workloads = workloads(cfg.write_pct);

    // Warm-up: fills the pools, the wrapper's standby sessions, the plan caches.
    eprintln!("warming up ...");
    for v in &variants {
        if let Target::Multi(pool) = &*v.target {
            let mut held = Vec::new();
            for _ in 0..size {
                held.push(pool.get().await.expect("a pooled MultiHostConnection"));
            }
            for conn in held.iter_mut() {
                conn.wait_for_standby(Duration::from_secs(10)).await;
            }
        }
        drive(&v.target, cfg, (cfg.secs / 2.0).min(1.0), cfg.write_pct, 1).await;
    }

    let mut runs = Runs::default();
    for round in 0..cfg.rounds {
        for (w, workload) in workloads.iter().enumerate() {
            for k in 0..variants.len() {
                let i = (k + round) % variants.len();
                let v = &variants[i];
                let seed = (round as u64) << 16 | (w as u64) << 8 | i as u64;
                let run = drive(&v.target, cfg, cfg.secs, workload.write_pct, seed).await;
                runs.record(round, (w, workload), v.key, run);
            }
        }
    }

    Runs::print_throughput_head();
    for (w, workload) in workloads.iter().enumerate() {
        for v in &variants {
            let t = &runs.tallies[&(w, v.key)];
            let where_ = match &*v.target {
                _ if t.reads == 0 => "-".to_owned(),
                Target::Plain(_) => "0 % (by construction)".to_owned(),
                Target::Split { .. } => "100 % (by construction: task i on standby i mod 2)".into(),
                Target::Multi(_) => t.standby_share(&standbys),
            };
            runs.print_throughput_row((w, workload), v.key, v.label, &where_);
        }
    }
    runs.print_first_errors(&workloads);

    Runs::print_ratio_head();
    for (w, workload) in workloads.iter().enumerate() {
        for (num, den, target) in [
            ("(b)", "(a)", "≥ 0.98 (the sync pool bench's, issue 8)"),
            (
                "(b)",
                "(a')",
                "(information: no checkout round trip on either side)",
            ),
            ("(b)", "(d)", "≥ 1.0 (the sync pool bench's, issue 8)"),
        ] {
            runs.print_ratio_row((w, workload), num, den, target);
        }
    }
}

fn main() {
    let Some(quick) = common::start_bench() else {
        return;
    };
    let cfg = Config::from_env(quick);
    let t0 = Instant::now();
    let load_start = loadavg();
    eprintln!("starting a primary and two standbys ...");
    let cluster = PgCluster::start(2);
    let db = common::accounts_db(&cluster, cfg.rows, &cfg.sync_commit);

    println!();
    println!(
        "# diesel-multidb async pool bench{}",
        if quick { " (--quick)" } else { "" }
    );
    println!();
    println!(
        "{} cores, {} Tokio workers; load average at start {load_start}; PostgreSQL primary \
         :{} + standbys {:?} on 127.0.0.1 (the harness's settings: fsync off, \
         full_page_writes off); synchronous_commit = {} on the bench's database",
        cores(),
        cfg.workers,
        cluster.primary_port(),
        cluster.standby_ports(),
        cfg.sync_commit
    );
    println!(
        "{} tasks, deadpool pools of {}, {} rows, {} % updates in 90/10, {} rounds x {:.1} s \
         per variant and workload, interleaved",
        cfg.tasks, cfg.pool_size, cfg.rows, cfg.write_pct, cfg.rounds, cfg.secs
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.workers)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(run(&cluster, &db, &cfg));
    // The pools (and the wrapper's monitor tasks) are gone with `run`; the runtime next.
    drop(rt);
    drop(cluster);
    println!();
    println!(
        "Total {:.0?}. Load average at start {load_start}, at the end {} ({} cores).",
        t0.elapsed(),
        loadavg(),
        cores()
    );
}
