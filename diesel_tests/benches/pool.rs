//! What `MultiHostConnection` costs and gives in a pool, against the alternatives, on one
//! machine, in one run (issue 8, and the cost table of issue 7 section 6).
//!
//! Starts its own cluster (a primary and two streaming standbys, the test harness), creates
//! a database with a table `accounts` of 100,000 rows, then runs five measurements and
//! prints a table for each. Comparisons are ratios measured in the same run; variants take
//! turns (A, B, C, D, A, B, ...), and each row shows the median and the spread.
//!
//! 1. **Pool throughput.** 8 threads, each doing "transactions" the way a web handler
//!    does: check a connection out of an r2d2 pool (r2d2's defaults but `max_size`, so
//!    the checkout test is on), run one statement, give it back. A point read by primary
//!    key, or (10 % of the time in the 90/10 workload) an update by primary key.
//!    Workloads: 90/10 read/write and read-only. Variants, each pool of 8:
//!    * (a) `PgConnection` on the primary only;
//!    * (b) `MultiHostConnection<PgConnection>` with the multi-host URL and default
//!      settings;
//!    * (c) `PgConnection` to pgpool-II in front of the same three servers
//!      (streaming-replication mode, load balancing on, session-level, primary weight 0 so
//!      that reads go to the standbys as in (b) and (d)); started by the bench when the
//!      `pgpool` binary is installed (Debian package `pgpool2`), skipped with a note
//!      otherwise;
//!    * (d) hand-split pools: a `PgConnection` pool on the primary for the writes and one
//!      per standby for the reads; thread `i` reads from standby `i mod 2`
//!      (`SPLIT_READS=alternate`: every thread alternates between them);
//!    * (e) (b) with `read_your_writes=off` (90/10 only): what read-your-writes costs
//!      (issue 7 section 6), with the share of reads the standbys served (counted with
//!      `last_route()` after every read);
//!    * for information, (a') and (d'): (a) and (d) with r2d2's checkout test off. A plain
//!      pool's checkout test is a `SELECT 1` round trip per checkout, which the wrapper
//!      skips within 500 ms of a successful statement, so (b)/(a') and (b)/(d') show what
//!      the wrapper costs or gains without that difference.
//!
//!    Prints tx/s per variant, where the reads ran, and the ratios (b)/(a), (b)/(d),
//!    (b)/(c) (the median and range of the per-round ratios) next to issue 8's targets.
//! 2. **Per-statement overhead.** One `MultiHostConnection` pinned to the primary
//!    (`pin_to_primary()`) against its own inner `PgConnection` (`primary_connection()`):
//!    the same server session, statements alternating, so that only the wrapper differs.
//!    A static point SELECT, a short non-static one (`into_boxed()`), and `sql_query`
//!    SELECTs of 2 KB and 20 KB whose text is either the same every call (the
//!    classification cache's hit path) or different every call (a full classification).
//! 3. **Establish plus first read with a blackholed host.** A host that accepts TCP and
//!    never answers (`Blackhole`) is listed first in the URL (`connect_timeout=10`), before
//!    the primary and the standbys. Times `MultiHostConnection::establish` plus one point
//!    read, with a topology of its own per sample (`application_name=bench-fresh-<n>`:
//!    the process shares one topology per URL and credentials) and with the topology
//!    already warm (another connection to the same URL stays open), against
//!    `PgConnection::establish` on the primary plus one read. For information, a fresh
//!    topology without the blackhole: what discovery costs by itself.
//! 4. **Sessions per host** for r2d2 pools of 1 and of 20 connections (`min_idle` = size):
//!    client backends in `pg_stat_activity` per host once the background standby sessions
//!    have opened (their count stops changing).
//! 5. **Monitor cost.** Restarts the servers with `pg_stat_statements` loaded, then counts
//!    the statements each host runs in the bench's database while everything is idle: with
//!    nothing open (the baseline), with a pool of 1 and with a pool of 20 (default
//!    `monitor_interval=1s`). Statements per second per host, and the ones the monitor
//!    sends. (`pg_stat_statements` counts at the end of each statement; the cumulative
//!    statistics of `pg_stat_database` are flushed by idle sessions up to 10 s late.)
//!
//! It also prints the machine's core count and `/proc/loadavg` before and after: other
//! work on the machine moves every figure, the ratios less than the absolute ones.
//!
//! # Running it
//!
//! ```text
//! cargo bench -p diesel_tests --bench pool               # about 4 minutes
//! cargo bench -p diesel_tests --bench pool -- --quick    # about 1 minute
//! ROUNDS=10 SECS=3 SECTIONS=1 cargo bench -p diesel_tests --bench pool
//! ```
//!
//! Parameters (environment variables; `--quick` lowers the defaults marked q):
//!
//! | variable | meaning | default (q) |
//! |---|---|---|
//! | `SECTIONS` | which measurements, e.g. `1,3` | `1,2,3,4,5` |
//! | `ROUNDS` | rounds of section 1 (every variant once per round and workload) | 5 (2) |
//! | `SECS` | seconds per variant per round | 2 (0.7) |
//! | `THREADS` | client threads | 8 |
//! | `POOL_SIZE` | r2d2 `max_size` of each pool in section 1 | 8 |
//! | `ROWS` | rows in `accounts` | 100000 |
//! | `WRITE_PCT` | updates in the read/write workload, in percent | 10 |
//! | `SYNC_COMMIT` | `synchronous_commit` of the bench's database | `on` |
//! | `STMT_SAMPLES` | statements per side per kind in section 2 | 2000 (400) |
//! | `ESTABLISH_SAMPLES` | samples per variant in section 3 | 20 (6) |
//! | `SESSIONS_POOL` | the larger pool of sections 4 and 5 | 20 |
//! | `MONITOR_SECS` | length of each idle window in section 5 | 5 (3) |
//! | `SPLIT_READS` | how (d) picks a standby: `thread` or `alternate` | `thread` |
//! | `PGPOOL_BIN` | the pgpool binary (default: `pgpool` in `PATH` or `/usr/sbin`) | |
//! | `RUST_LOG` | e.g. `diesel_multidb=debug`: the library's tracing on stderr | |
//!
//! `SYNC_COMMIT`: the harness turns `synchronous_commit` off for speed. Then a commit's WAL
//! reaches the standbys only when the WAL writer flushes it (every 200 ms), so every
//! connection that wrote would read from the primary for ~200 ms with read-your-writes.
//! The bench sets PostgreSQL's default (`on`, which with the harness's `fsync=off` costs a
//! `write()`, not a disk flush) on its database, unless told otherwise.
//!
//! Not run in CI (no assertion on speed: the targets are printed next to the figures).

mod common;

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_multidb::MultiHostConnection;
use diesel_multidb_testkit::{Blackhole, PgCluster};

use common::pgpool::{Backend, Pgpool, PoolNode};
use common::{
    accounts, cores, env_or, latency_cells, loadavg, pct, sum_loads, us, workloads, LoadLoop, Rng,
    Runs, Spread, Tally,
};

type Multi = MultiHostConnection<PgConnection>;
type PgPool = Pool<ConnectionManager<PgConnection>>;
type MultiPool = Pool<ConnectionManager<Multi>>;

// ---------------------------------------------------------------------------------------
// Parameters and the bench's database.
// ---------------------------------------------------------------------------------------

struct Config {
    sections: Vec<u32>,
    rounds: usize,
    secs: f64,
    threads: usize,
    pool_size: u32,
    rows: u64,
    write_pct: u64,
    sync_commit: String,
    stmt_samples: usize,
    establish_samples: usize,
    sessions_pool: u32,
    monitor_secs: f64,
    split_alternate: bool,
}

impl Config {
    fn from_env(quick: bool) -> Config {
        let q = |full, short| if quick { short } else { full };
        let sections = std::env::var("SECTIONS")
            .ok()
            .map(|s| {
                s.split(',')
                    .filter_map(|n| n.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .unwrap_or_else(|| vec![1, 2, 3, 4, 5]);
        Config {
            sections,
            rounds: env_or("ROUNDS", q(5, 2)).max(1),
            secs: env_or("SECS", if quick { 0.7 } else { 2.0 }),
            threads: env_or("THREADS", 8usize).max(1),
            pool_size: env_or("POOL_SIZE", 8u32).max(1),
            rows: env_or("ROWS", 100_000u64).max(1),
            write_pct: env_or("WRITE_PCT", 10u64).min(100),
            sync_commit: env_or("SYNC_COMMIT", "on".to_owned()),
            stmt_samples: env_or("STMT_SAMPLES", q(2000, 400)).max(10),
            establish_samples: env_or("ESTABLISH_SAMPLES", q(20, 6)).max(1),
            sessions_pool: env_or("SESSIONS_POOL", 20u32).max(1),
            monitor_secs: env_or("MONITOR_SECS", if quick { 3.0 } else { 5.0 }),
            split_alternate: env_or("SPLIT_READS", "thread".to_owned()) == "alternate",
        }
    }

    fn runs(&self, section: u32) -> bool {
        self.sections.contains(&section)
    }
}

/// The cluster and the bench's database on it.
struct Bench<'a> {
    cluster: &'a PgCluster,
    db: String,
    primary: u16,
    standbys: Vec<u16>,
}

impl Bench<'_> {
    /// A URL to one node.
    fn node_url(&self, port: u16) -> String {
        self.cluster.node_db_url(port, &self.db)
    }

    /// The multi-host URL (primary, then the standbys) with `params`.
    fn multi_url(&self, params: &str) -> String {
        self.cluster
            .db_url(&self.db, &self.cluster.default_ports(), params)
    }

    /// Every node, primary first.
    fn ports(&self) -> Vec<u16> {
        let mut ports = vec![self.primary];
        ports.extend(&self.standbys);
        ports
    }

    /// `n0 (primary, 5432)` etc., for tables.
    fn label(&self, port: u16) -> String {
        if port == self.primary {
            format!("primary :{port}")
        } else {
            match self.standbys.iter().position(|&p| p == port) {
                Some(i) => format!("standby{} :{port}", i + 1),
                None => format!(":{port}"),
            }
        }
    }

    /// A number `sql` gives on `port` (as the superuser, in database `postgres`).
    fn number(&self, port: u16, sql: &str) -> i64 {
        let got = self.cluster.query_one(port, sql);
        got.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql} on port {port} gave {got:?}, not a number"))
    }
}

fn setup<'a>(cluster: &'a PgCluster, cfg: &Config) -> Bench<'a> {
    Bench {
        cluster,
        db: common::accounts_db(cluster, cfg.rows, &cfg.sync_commit),
        primary: cluster.primary_port(),
        standbys: cluster.standby_ports(),
    }
}

// ---------------------------------------------------------------------------------------
// Statements.
// ---------------------------------------------------------------------------------------

fn point_read<C: diesel::connection::LoadConnection<Backend = Pg>>(
    conn: &mut C,
    id: i32,
) -> QueryResult<i64> {
    accounts::table
        .find(id)
        .select(accounts::balance)
        .first(conn)
}

fn point_update<C: Connection<Backend = Pg>>(conn: &mut C, id: i32) -> QueryResult<usize> {
    diesel::update(accounts::table.find(id))
        .set(accounts::balance.eq(accounts::balance + 1))
        .execute(conn)
}

/// A point update (`write`) or a point read of row `id`.
fn read_or_update<C: diesel::connection::LoadConnection<Backend = Pg>>(
    conn: &mut C,
    id: i32,
    write: bool,
) -> QueryResult<()> {
    if write {
        point_update(conn, id).map(drop)
    } else {
        point_read(conn, id).map(drop)
    }
}

#[derive(QueryableByName)]
struct Balance {
    #[diesel(sql_type = BigInt)]
    balance: i64,
}

// ---------------------------------------------------------------------------------------
// Section 1: pool throughput.
// ---------------------------------------------------------------------------------------

/// What a variant's threads check connections out of.
enum Target {
    /// One pool of `PgConnection` (to the primary, or to pgpool).
    Plain(PgPool),
    /// One pool of `MultiHostConnection`.
    Multi(MultiPool),
    /// Writes to `primary`, reads to `standbys`: each thread keeps to one standby
    /// (`alternate` false) or takes them in turn.
    Split {
        primary: PgPool,
        standbys: Vec<PgPool>,
        alternate: bool,
    },
}

struct Variant {
    key: &'static str,
    label: String,
    target: Target,
    /// Runs in the read-only workload too.
    read_only_too: bool,
}

/// One transaction: a checkout, a read or an update, the checkin (the wrapper's standby reads
/// noted in `t`).
fn one(
    target: &Target,
    id: i32,
    write: bool,
    turn: &mut usize,
    t: &mut Tally,
) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    match target {
        Target::Plain(pool) => {
            let mut conn = pool.get().map_err(|e| s(&e))?;
            read_or_update(&mut *conn, id, write).map_err(|e| s(&e))?;
        }
        Target::Multi(pool) => {
            let mut conn = pool.get().map_err(|e| s(&e))?;
            read_or_update(&mut *conn, id, write).map_err(|e| s(&e))?;
            if !write {
                t.note_route(conn.last_route());
            }
        }
        Target::Split {
            primary,
            standbys,
            alternate,
        } => {
            let pool = if write {
                primary
            } else {
                if *alternate {
                    *turn += 1;
                }
                &standbys[*turn % standbys.len()]
            };
            let mut conn = pool.get().map_err(|e| s(&e))?;
            read_or_update(&mut *conn, id, write).map_err(|e| s(&e))?;
        }
    }
    Ok(())
}

/// Runs `threads` threads against `target` for `secs`; returns tx/s and what they did.
fn drive(target: &Target, cfg: &Config, secs: f64, write_pct: u64, seed: u64) -> (f64, Tally) {
    let barrier = Barrier::new(cfg.threads);
    let results: Vec<(f64, Tally)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|i| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut turn = i;
                    barrier.wait();
                    let mut load = LoadLoop::start(seed, i, cfg.rows, write_pct, secs);
                    while let Some((id, write)) = load.next() {
                        let outcome = one(target, id, write, &mut turn, load.tally());
                        load.done(write, outcome);
                    }
                    load.finish()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect()
    });
    sum_loads(results)
}

/// An r2d2 pool of `PgConnection`: r2d2's defaults but `max_size`, and optionally without
/// the checkout test (r2d2 then hands out a connection without running `SELECT 1` on it).
fn pg_pool(url: &str, size: u32, test_on_check_out: bool) -> PgPool {
    Pool::builder()
        .max_size(size)
        .test_on_check_out(test_on_check_out)
        .build(ConnectionManager::new(url))
        .unwrap_or_else(|e| panic!("building an r2d2 pool of PgConnection on {url}: {e}"))
}

fn multi_pool(url: &str, size: u32, min_idle: Option<u32>) -> MultiPool {
    Pool::builder()
        .max_size(size)
        .min_idle(min_idle)
        .build(ConnectionManager::new(url))
        .unwrap_or_else(|e| panic!("building an r2d2 pool of MultiHostConnection on {url}: {e}"))
}

fn section_pool(bench: &Bench, cfg: &Config) {
    let t0 = Instant::now();
    let load_before = loadavg();
    println!();
    println!(
        "## 1. Pool throughput ({} threads, r2d2 pools of {}, {} rows, {} rounds x {:.1} s per \
         variant and workload, interleaved)",
        cfg.threads, cfg.pool_size, cfg.rows, cfg.rounds, cfg.secs
    );
    println!();

    // pgpool-II, when installed.
    let pgpool = match Pgpool::binary() {
        None => {
            println!(
                "(c) skipped: the `pgpool` binary is not installed (Debian package `pgpool2`, \
                 or set PGPOOL_BIN)."
            );
            None
        }
        Some(bin) => {
            let mut backends = vec![Backend {
                host: "127.0.0.1".into(),
                port: bench.primary,
                weight: 0,
            }];
            backends.extend(bench.standbys.iter().map(|&port| Backend {
                host: "127.0.0.1".into(),
                port,
                weight: 1,
            }));
            let children = (cfg.pool_size as usize + 8).max(16);
            match Pgpool::start(&bin, bench.cluster.dir(), &backends, children) {
                Ok(p) => {
                    println!(
                        "(c) {} on 127.0.0.1:{} (streaming_replication, load_balance_mode = on, \
                         session-level load balancing, backend weights primary 0 / standbys 1, \
                         num_init_children = {children}, max_pool = 1; config in {})",
                        Pgpool::version(&bin),
                        p.port(),
                        p.dir().display()
                    );
                    Some(p)
                }
                Err(e) => {
                    println!("(c) skipped: pgpool-II did not start: {e}");
                    None
                }
            }
        }
    };
    let pgpool_url = pgpool
        .as_ref()
        .map(|p| format!("postgres://postgres@127.0.0.1:{}/{}", p.port(), bench.db));

    eprintln!("building the pools ...");
    let size = cfg.pool_size;
    let mut variants = vec![
        Variant {
            key: "(a)",
            label: "PgConnection, primary only".into(),
            target: Target::Plain(pg_pool(&bench.node_url(bench.primary), size, true)),
            read_only_too: true,
        },
        Variant {
            key: "(a')",
            label: "(a) without r2d2's checkout test".into(),
            target: Target::Plain(pg_pool(&bench.node_url(bench.primary), size, false)),
            read_only_too: true,
        },
        Variant {
            key: "(b)",
            label: "MultiHostConnection, defaults".into(),
            target: Target::Multi(multi_pool(&bench.multi_url(""), size, None)),
            read_only_too: true,
        },
    ];
    if let Some(url) = &pgpool_url {
        variants.push(Variant {
            key: "(c)",
            label: "PgConnection via pgpool-II".into(),
            target: Target::Plain(pg_pool(url, size, true)),
            read_only_too: true,
        });
    }
    let split = |test_on_check_out: bool| Target::Split {
        primary: pg_pool(&bench.node_url(bench.primary), size, test_on_check_out),
        standbys: bench
            .standbys
            .iter()
            .map(|&p| pg_pool(&bench.node_url(p), size, test_on_check_out))
            .collect(),
        alternate: cfg.split_alternate,
    };
    variants.push(Variant {
        key: "(d)",
        label: "hand-split: primary pool + a pool per standby".into(),
        target: split(true),
        read_only_too: true,
    });
    variants.push(Variant {
        key: "(d')",
        label: "(d) without r2d2's checkout test".into(),
        target: split(false),
        read_only_too: true,
    });
    variants.push(Variant {
        key: "(e)",
        label: "(b) with read_your_writes=off".into(),
        target: Target::Multi(multi_pool(
            &bench.multi_url("read_your_writes=off"),
            size,
            None,
        )),
        read_only_too: false,
    });

    let workloads = workloads(cfg.write_pct);

    // Warm-up: fills the pools' sessions, the standby sessions, the plan caches.
    eprintln!("warming up ...");
    for v in &variants {
        if let Target::Multi(pool) = &v.target {
            let mut held: Vec<_> = (0..size).filter_map(|_| pool.get().ok()).collect();
            for conn in held.iter_mut() {
                conn.wait_for_standby(Duration::from_secs(10));
            }
        }
        drive(&v.target, cfg, (cfg.secs / 2.0).min(1.0), cfg.write_pct, 1);
    }

    // (workload, variant) -> tx/s per round, and what the runs did.
    let mut runs = Runs::default();
    let mut pgpool_selects: BTreeMap<usize, BTreeMap<u16, u64>> = BTreeMap::new();
    // pgpool's own count of the SELECTs it sent to each node, around each (c) run.
    let pool_nodes = |key: &str| -> Option<Vec<PoolNode>> {
        pgpool
            .as_ref()
            .filter(|_| key == "(c)")
            .and_then(|p| p.nodes().ok())
    };
    for round in 0..cfg.rounds {
        for (w, workload) in workloads.iter().enumerate() {
            let order: Vec<usize> = (0..variants.len())
                .map(|i| (i + round) % variants.len())
                .filter(|&i| workload.write_pct > 0 || variants[i].read_only_too)
                .collect();
            for i in order {
                let v = &variants[i];
                let before = pool_nodes(v.key);
                let seed = (round as u64) << 16 | (w as u64) << 8 | i as u64;
                let run = drive(&v.target, cfg, cfg.secs, workload.write_pct, seed);
                if let Some(before) = before {
                    if let Some(after) = pool_nodes(v.key) {
                        let split = pgpool_selects.entry(w).or_default();
                        for (b, a) in before.iter().zip(&after) {
                            *split.entry(a.port).or_default() +=
                                a.selects.saturating_sub(b.selects);
                        }
                    }
                }
                runs.record(round, (w, workload), v.key, run);
            }
        }
    }

    // Throughput table.
    Runs::print_throughput_head();
    for (w, workload) in workloads.iter().enumerate() {
        for v in &variants {
            let Some(t) = runs.tallies.get(&(w, v.key)) else {
                continue;
            };
            let where_ = match &v.target {
                _ if t.reads == 0 => "-".to_owned(),
                Target::Multi(_) => t.standby_share(&bench.standbys),
                Target::Split { alternate, .. } => format!(
                    "100 % (by construction: {})",
                    if *alternate {
                        "each thread alternates"
                    } else {
                        "thread i on standby i mod 2"
                    }
                ),
                Target::Plain(_) if v.key.starts_with("(a") => "0 % (by construction)".to_owned(),
                Target::Plain(_) => match pgpool_selects.get(&w) {
                    Some(split) => pgpool_share(bench, split),
                    None => "?".to_owned(),
                },
            };
            runs.print_throughput_row((w, workload), v.key, &v.label, &where_);
        }
    }
    runs.print_first_errors(&workloads);

    // Ratios, per round.
    Runs::print_ratio_head();
    for (w, workload) in workloads.iter().enumerate() {
        for (num, den, target) in [
            ("(b)", "(a)", "≥ 0.98"),
            ("(b)", "(d)", "≥ 1.0"),
            ("(b)", "(c)", "≥ 4"),
            (
                "(b)",
                "(a')",
                "(information: no checkout test on either side)",
            ),
            (
                "(b)",
                "(d')",
                "(information: no checkout test on either side)",
            ),
            (
                "(e)",
                "(b)",
                "(information, issue 7: read_your_writes off / default)",
            ),
        ] {
            if !runs.print_ratio_row((w, workload), num, den, target) && den == "(c)" {
                println!(
                    "| {} | {num}/{den} | - | - | {target} (pgpool-II not run) |",
                    workload.name
                );
            }
        }
    }

    // Issue 7, section 6.
    let w = 0;
    if let (Some(b), Some(e)) = (runs.rates.get(&(w, "(b)")), runs.rates.get(&(w, "(e)"))) {
        println!();
        println!(
            "Issue 7 section 6: read_your_writes on the {} workload ({}% updates), same pools \
             otherwise:",
            workloads[w].name, cfg.write_pct
        );
        println!();
        println!("| read_your_writes | tx/s median | tx/s min–max | reads on standbys |");
        println!("|---|---:|---:|---|");
        for (name, r, key) in [("connection (default)", b, "(b)"), ("off", e, "(e)")] {
            let s = Spread::of(r);
            println!(
                "| {name} | {:.0} | {} | {} |",
                s.median,
                s.range(0),
                runs.tallies[&(w, key)].standby_share(&bench.standbys)
            );
        }
        if let Some(s) = runs.ratio(w, "(b)", "(e)") {
            println!(
                "| ratio connection/off (per round) | {:.3} | {} | |",
                s.median,
                s.range(3)
            );
        }
    }
    drop(variants);
    drop(pgpool);
    println!();
    println!(
        "(section 1: {:.0?}; load average before {load_before}, after {})",
        t0.elapsed(),
        loadavg()
    );
}

/// The split of pgpool's load-balanced SELECTs over the nodes (`SHOW pool_nodes`).
fn pgpool_share(bench: &Bench, split: &BTreeMap<u16, u64>) -> String {
    let total: u64 = split.values().sum();
    let parts: Vec<String> = bench
        .ports()
        .iter()
        .map(|p| {
            let name = if *p == bench.primary {
                "p".to_owned()
            } else {
                let i = bench.standbys.iter().position(|s| s == p).unwrap_or(0);
                format!("s{}", i + 1)
            };
            format!(
                "{name} {:.0} %",
                pct(split.get(p).copied().unwrap_or(0), total)
            )
        })
        .collect();
    format!(
        "SELECTs per node: {} (pool_nodes select_cnt, incl. r2d2's SELECT 1)",
        parts.join(" / ")
    )
}

// ---------------------------------------------------------------------------------------
// Section 2: per-statement overhead.
// ---------------------------------------------------------------------------------------

/// A statement of section 2.
#[derive(Clone, Copy)]
enum Stmt {
    /// `accounts.find(id).select(balance)`: a static query id.
    Static,
    /// The same through `into_boxed()`: no static query id, short SQL.
    Boxed,
    /// `sql_query` of about `len` bytes, the same text every call (`unique` false) or a
    /// different one, padded as `pad` says.
    Long { len: usize, unique: bool, pad: Pad },
}

/// How a long statement gets long.
#[derive(Clone, Copy, PartialEq)]
enum Pad {
    /// A big `NOT IN` list of numbers: realistic, and the server parses and plans it
    /// (milliseconds for 20 KB), which dilutes the wrapper's share.
    InList,
    /// A long comment before a short SELECT: the server skips it, so the wrapper's cost
    /// per byte shows undiluted.
    Comment,
}

impl Stmt {
    fn label(self) -> String {
        match self {
            Stmt::Static => "static point SELECT".into(),
            Stmt::Boxed => "into_boxed() point SELECT".into(),
            Stmt::Long { len, unique, pad } => format!(
                "{} KB sql_query ({}), {}",
                len / 1000,
                match pad {
                    Pad::InList => "NOT IN list",
                    Pad::Comment => "comment + SELECT",
                },
                if unique {
                    "new text every call"
                } else {
                    "same text every call"
                }
            ),
        }
    }

    fn target(self) -> &'static str {
        match self {
            Stmt::Static => "",
            Stmt::Boxed => "≤ 1.02",
            Stmt::Long {
                len, unique: false, ..
            } if len >= 20_000 => "≤ 1.01 (repeated 20 KB)",
            Stmt::Long { .. } => "≤ 1.02 (non-static)",
        }
    }

    /// The SQL text of a `Long` statement, about `len` bytes; `n` makes it unique.
    ///
    /// * `InList`: `SELECT balance FROM accounts WHERE id = $1 AND id NOT IN (-n, -100001,
    ///   -100002, ...)` (always true for the table's ids);
    /// * `Comment`: `/* call n: lorem ipsum ... */ SELECT balance FROM accounts WHERE id = $1`.
    fn sql(len: usize, pad: Pad, n: usize) -> String {
        match pad {
            Pad::InList => {
                let mut sql =
                    format!("SELECT balance FROM accounts WHERE id = $1 AND id NOT IN (-{n}");
                let mut k = 100_001u64;
                while sql.len() + 10 < len {
                    sql.push_str(&format!(", -{k}"));
                    k += 1;
                }
                sql.push(')');
                sql
            }
            Pad::Comment => {
                const TAIL: &str = " */ SELECT balance FROM accounts WHERE id = $1";
                const WORDS: &str = "lorem ipsum dolor sit amet, consectetur adipiscing \
                                     elit, sed do eiusmod tempor incididunt ut labore ";
                let mut sql = format!("/* call {n}: ");
                while sql.len() + TAIL.len() < len {
                    sql.push_str(WORDS);
                }
                sql.push_str(TAIL);
                sql
            }
        }
    }
}

/// Runs `stmt` once on `conn`; `sql` is the text for `Long` statements.
fn run_stmt<C: diesel::connection::LoadConnection<Backend = Pg>>(
    conn: &mut C,
    stmt: Stmt,
    id: i32,
    sql: String,
) -> i64 {
    let got = match stmt {
        Stmt::Static => point_read(conn, id),
        Stmt::Boxed => accounts::table
            .into_boxed()
            .filter(accounts::id.eq(id))
            .select(accounts::balance)
            .first(conn),
        Stmt::Long { .. } => diesel::sql_query(sql)
            .bind::<Integer, _>(id)
            .get_result::<Balance>(conn)
            .map(|b| b.balance),
    };
    got.unwrap_or_else(|e| panic!("{}: {e}", stmt.label()))
}

fn section_statements(bench: &Bench, cfg: &Config) {
    let t0 = Instant::now();
    let load_before = loadavg();
    let mut wrapped = Multi::establish(&bench.multi_url("application_name=bench-statements"))
        .unwrap_or_else(|e| panic!("establishing the wrapper: {e}"));
    wrapped.pin_to_primary();
    let host = wrapped.primary_host().expect("a primary is known").port();
    assert_eq!(host, bench.primary, "the wrapper's primary");
    let n = cfg.stmt_samples;
    println!();
    println!(
        "## 2. Per-statement overhead ({n} statements per side and kind, alternating; \
         MultiHostConnection pinned to the primary vs its own inner PgConnection, one server \
         session)"
    );
    println!();
    println!(
        "| statement | PgConnection µs median (p10–p90) | MultiHostConnection µs median \
         (p10–p90) | ratio | difference µs | target |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let mut stmts = vec![Stmt::Static, Stmt::Boxed];
    for pad in [Pad::InList, Pad::Comment] {
        for len in [2_000, 20_000] {
            for unique in [false, true] {
                stmts.push(Stmt::Long { len, unique, pad });
            }
        }
    }
    let mut rng = Rng::new(2);
    let rows = cfg.rows.min(i32::MAX as u64);
    for stmt in stmts {
        let text = |i: usize| match stmt {
            Stmt::Long { len, unique, pad } => Stmt::sql(len, pad, if unique { i + 1 } else { 0 }),
            _ => String::new(),
        };
        // Warm-up (plan caches, the classification cache, the allocator).
        for i in 0..(n / 10).max(20) {
            let id = 1 + rng.below(rows) as i32;
            let inner = wrapped.primary_connection().expect("inner connection");
            run_stmt(inner, stmt, id, text(i));
            run_stmt(&mut wrapped, stmt, id, text(i));
        }
        let mut inner_t = Vec::with_capacity(n);
        let mut wrapped_t = Vec::with_capacity(n);
        for i in 0..n {
            let id = 1 + rng.below(rows) as i32;
            // Texts are built before the clock starts; unique ones differ per side too.
            let (sql_inner, sql_wrapped) = (text(2 * i + n), text(2 * i + n + 1));
            let inner_first = i % 2 == 0;
            for k in 0..2 {
                if (k == 0) == inner_first {
                    let inner = wrapped.primary_connection().expect("inner connection");
                    let sql = sql_inner.clone();
                    let start = Instant::now();
                    std::hint::black_box(run_stmt(inner, stmt, id, sql));
                    inner_t.push(us(start.elapsed()));
                } else {
                    let sql = sql_wrapped.clone();
                    let start = Instant::now();
                    std::hint::black_box(run_stmt(&mut wrapped, stmt, id, sql));
                    wrapped_t.push(us(start.elapsed()));
                }
            }
        }
        assert!(
            wrapped.last_route().is_some_and(|r| !r.is_replica()),
            "the pinned wrapper ran on the primary"
        );
        let (a, b) = (Spread::of(&inner_t), Spread::of(&wrapped_t));
        println!(
            "| {} | {} | {} |",
            stmt.label(),
            latency_cells(&a, &b),
            stmt.target()
        );
    }
    println!();
    println!(
        "(\"new text every call\": both sides get a text of their own, so neither the \
         wrapper's classification cache nor anything else can have seen it. Section 2: {:.0?}; \
         load average before {load_before}, after {})",
        t0.elapsed(),
        loadavg()
    );
}

// ---------------------------------------------------------------------------------------
// Section 3: establish + first read with a blackholed host.
// ---------------------------------------------------------------------------------------

/// The variants of section 3: how the connection is made before its first read.
#[derive(Clone, Copy, PartialEq)]
enum Establish {
    /// `PgConnection::establish` on the primary.
    Direct,
    /// `MultiHostConnection::establish`, blackhole first, a topology of its own.
    Fresh,
    /// The same with the process's topology for that URL already warm.
    Warm,
    /// A topology of its own, without the blackhole (what discovery itself costs).
    FreshNoHole,
}

impl Establish {
    const ALL: [Establish; 4] = [
        Establish::Direct,
        Establish::Fresh,
        Establish::Warm,
        Establish::FreshNoHole,
    ];

    fn label(self) -> &'static str {
        match self {
            Establish::Direct => "PgConnection::establish(primary) + read",
            Establish::Fresh => {
                "MultiHostConnection::establish, blackhole first, fresh topology + read"
            }
            Establish::Warm => {
                "MultiHostConnection::establish, blackhole first, warm topology + read"
            }
            Establish::FreshNoHole => {
                "(information) MultiHostConnection::establish, no blackhole, fresh topology + read"
            }
        }
    }
}

fn section_establish(bench: &Bench, cfg: &Config) {
    let t0 = Instant::now();
    let load_before = loadavg();
    let hole = Blackhole::start();
    let with_hole: Vec<u16> = std::iter::once(hole.port()).chain(bench.ports()).collect();
    let url = |ports: &[u16], app: &str| {
        bench.cluster.db_url(
            &bench.db,
            ports,
            &format!("connect_timeout=10&application_name={app}"),
        )
    };
    let direct_url = bench.node_url(bench.primary);
    let rows = cfg.rows.min(i32::MAX as u64);
    let mut rng = Rng::new(3);

    // The warm topology: one connection kept open, so the monitor knows every host.
    let warm_url = url(&with_hole, "bench-warm");
    let mut keep = Multi::establish(&warm_url).unwrap_or_else(|e| panic!("warm establish: {e}"));
    keep.wait_for_standby(Duration::from_secs(10));
    point_read(&mut keep, 1).expect("warm read");

    let n = cfg.establish_samples;
    let variants = Establish::ALL;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut on_standby = vec![0usize; variants.len()];
    let accepted_before = hole.accepted();
    for i in 0..n {
        for k in 0..variants.len() {
            let which = (k + i) % variants.len();
            let id = 1 + rng.below(rows) as i32;
            // Every fresh sample has an application_name of its own: a topology of its own.
            let u = match variants[which] {
                Establish::Direct => direct_url.clone(),
                Establish::Fresh => url(&with_hole, &format!("bench-fresh-{i}")),
                Establish::Warm => warm_url.clone(),
                Establish::FreshNoHole => url(&bench.ports(), &format!("bench-fresh-nohole-{i}")),
            };
            let start = Instant::now();
            let standby = if variants[which] == Establish::Direct {
                let mut c =
                    PgConnection::establish(&u).unwrap_or_else(|e| panic!("establish {u}: {e}"));
                point_read(&mut c, id).expect("direct read");
                false
            } else {
                let mut c = Multi::establish(&u).unwrap_or_else(|e| panic!("establish {u}: {e}"));
                point_read(&mut c, id).expect("first read");
                c.last_route().is_some_and(|r| r.is_replica())
            };
            times[which].push(start.elapsed().as_secs_f64() * 1e3);
            on_standby[which] += standby as usize;
        }
    }
    let fresh_probes = hole.accepted() - accepted_before;
    println!();
    println!(
        "## 3. Establish + first point read, a blackholed host listed first \
         (connect_timeout=10; {n} samples each, interleaved)"
    );
    println!();
    println!(
        "| variant | ms median | ms p10–p90 | first read on a standby | ratio to direct \
         (medians) | target |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let direct = Spread::of(&times[0]);
    for (which, v) in variants.iter().enumerate() {
        let s = Spread::of(&times[which]);
        println!(
            "| {} | {:.2} | {} | {} | {:.2} | {} |",
            v.label(),
            s.median,
            s.p10_p90(2),
            if *v == Establish::Direct {
                "-".to_owned()
            } else {
                format!("{} of {n}", on_standby[which])
            },
            s.median / direct.median,
            match v {
                Establish::Fresh | Establish::Warm => "≤ 1.2",
                _ => "",
            }
        );
    }
    println!();
    println!(
        "(The blackhole accepted {fresh_probes} connections during the samples, one per fresh \
         topology with it: each of those samples discovered from scratch. Section 3: {:.0?}; \
         load average before {load_before}, after {})",
        t0.elapsed(),
        loadavg()
    );
    drop(keep);
    // `hole` outlives the connections; the probes stuck on it give up after connect_timeout.
}

// ---------------------------------------------------------------------------------------
// Section 4: sessions per host.
// ---------------------------------------------------------------------------------------

/// Client backends of application `app` in the bench's database on each node.
fn sessions(bench: &Bench, app: &str) -> Vec<i64> {
    bench
        .ports()
        .iter()
        .map(|&port| {
            bench.number(
                port,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                     AND datname = '{}' AND application_name = '{app}'",
                    bench.db
                ),
            )
        })
        .collect()
}

/// Waits until the session counts stop changing (2 s the same, at most 20 s).
fn settled_sessions(bench: &Bench, app: &str) -> (Vec<i64>, Duration) {
    let start = Instant::now();
    let mut last = sessions(bench, app);
    let mut same_since = Instant::now();
    while same_since.elapsed() < Duration::from_secs(2) && start.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(200));
        let now = sessions(bench, app);
        if now != last {
            last = now;
            same_since = Instant::now();
        }
    }
    (last, start.elapsed())
}

#[derive(QueryableByName)]
struct LastStatement {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    query: String,
}

/// `19 × SET CLIENT_ENCODING ..., 2 × SELECT pg_is_in_recovery() ...`: the sessions of `app`
/// on `port` grouped by the last statement they ran (which tells the monitor's and the
/// discovery probes' sessions from the ones a connection opened and has not used since).
fn last_statements(bench: &Bench, port: u16, app: &str) -> String {
    let got = PgConnection::establish(&bench.cluster.node_url(port)).and_then(|mut c| {
        diesel::sql_query(format!(
            "SELECT count(*) AS n, left(regexp_replace(query, '\\s+', ' ', 'g'), 48) AS query \
             FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = '{}' \
             AND application_name = '{app}' GROUP BY 2 ORDER BY 1 DESC",
            bench.db
        ))
        .load::<LastStatement>(&mut c)
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
    });
    match got {
        Ok(rows) => rows
            .iter()
            .map(|r| format!("{} × `{}`", r.n, r.query))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("(pg_stat_activity: {e})"),
    }
}

fn section_sessions(bench: &Bench, cfg: &Config) {
    let t0 = Instant::now();
    let load_before = loadavg();
    println!();
    println!(
        "## 4. Sessions per host for an r2d2 pool of MultiHostConnection (max_size = min_idle \
         = N, default settings, idle)"
    );
    println!();
    let hosts: Vec<String> = bench.ports().iter().map(|&p| bench.label(p)).collect();
    println!("| N | {} | standbys total | expected |", hosts.join(" | "));
    println!("|---:|{}---:|---|", "---:|".repeat(hosts.len()));
    let mut notes = Vec::new();
    for n in [1, cfg.sessions_pool] {
        let app = format!("bench-sessions-{n}");
        let pool = multi_pool(
            &bench.multi_url(&format!("application_name={app}")),
            n,
            Some(n),
        );
        let (counts, waited) = settled_sessions(bench, &app);
        let standbys: i64 = counts[1..].iter().sum();
        println!(
            "| {n} | {} | {standbys} | primary ≤ {} (N + 1 monitor); standbys ≈ {n} + 1 monitor \
             each, evenly (settled after {:.1?}) |",
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
            n + 1,
            waited
        );
        notes.push(format!(
            "N = {n}, the primary's sessions by last statement: {}",
            last_statements(bench, bench.primary, &app)
        ));
        drop(pool);
    }
    println!();
    for note in notes {
        println!("{note}");
    }
    println!();
    println!(
        "(client backends in pg_stat_activity with the pool's own application_name. Section 4: \
         {:.0?}; load average before {load_before}, after {})",
        t0.elapsed(),
        loadavg()
    );
}

// ---------------------------------------------------------------------------------------
// Section 5: monitor cost.
// ---------------------------------------------------------------------------------------

#[derive(QueryableByName)]
struct TopStatement {
    #[diesel(sql_type = BigInt)]
    calls: i64,
    #[diesel(sql_type = Text)]
    query: String,
}

/// Restarts every node with `pg_stat_statements` loaded and creates the extension.
fn load_pg_stat_statements(bench: &Bench) {
    let t0 = Instant::now();
    for &port in &bench.ports() {
        bench.cluster.query_one(
            port,
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
        );
    }
    // Standbys first, so that they reconnect to a primary that is already back.
    let mut order = bench.standbys.clone();
    order.push(bench.primary);
    for port in order {
        bench.cluster.kill(port);
        bench.cluster.restart(port);
    }
    // In `postgres`, where the bench reads it (it shows every database's statements).
    bench.cluster.query_one(
        bench.primary,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    );
    bench.cluster.wait_for_replay();
    eprintln!(
        "restarted the nodes with pg_stat_statements in {:.1?}",
        t0.elapsed()
    );
}

/// Statements run in the bench's database on `port` so far.
fn statements_run(bench: &Bench, port: u16) -> i64 {
    bench.number(
        port,
        &format!(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{}'",
            bench.db
        ),
    )
}

fn section_monitor(bench: &Bench, cfg: &Config) {
    let t0 = Instant::now();
    let load_before = loadavg();
    load_pg_stat_statements(bench);
    let secs = cfg.monitor_secs;
    println!();
    println!(
        "## 5. Monitor cost: statements per second per host in the bench's database, idle, \
         {secs:.0} s windows (pg_stat_statements; default monitor_interval=1s)"
    );
    println!();
    let hosts: Vec<String> = bench.ports().iter().map(|&p| bench.label(p)).collect();
    println!("| open | {} |", hosts.join(" | "));
    println!("|---|{}", "---:|".repeat(hosts.len()));
    let window = || -> Vec<f64> {
        let before: Vec<i64> = bench
            .ports()
            .iter()
            .map(|&p| statements_run(bench, p))
            .collect();
        thread::sleep(Duration::from_secs_f64(secs));
        let after: Vec<i64> = bench
            .ports()
            .iter()
            .map(|&p| statements_run(bench, p))
            .collect();
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a - b) as f64 / secs)
            .collect()
    };
    let row = |name: &str, rates: &[f64]| {
        println!(
            "| {name} | {} |",
            rates
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    };
    row("nothing (baseline)", &window());
    for n in [1, cfg.sessions_pool] {
        let app = format!("bench-monitor-{n}");
        let pool = multi_pool(
            &bench.multi_url(&format!("application_name={app}")),
            n,
            Some(n),
        );
        // Let the background standby sessions open and the first probes pass.
        settled_sessions(bench, &app);
        row(&format!("r2d2 pool of {n}"), &window());
        if n == cfg.sessions_pool {
            // What the monitor sends, on the first standby.
            let port = bench.standbys[0];
            let top = PgConnection::establish(&bench.cluster.node_url(port))
                .and_then(|mut c| {
                    diesel::sql_query(format!(
                        "SELECT s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 140) AS query \
                         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                         WHERE d.datname = '{}' ORDER BY s.calls DESC LIMIT 5",
                        bench.db
                    ))
                    .load::<TopStatement>(&mut c)
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
                });
            drop(pool);
            println!();
            println!(
                "Most frequent statements in the bench's database on {} since the restart:",
                bench.label(port)
            );
            match top {
                Ok(rows) => {
                    for r in rows {
                        println!("    {:>6}  {}", r.calls, r.query);
                    }
                }
                Err(e) => println!("    (could not read pg_stat_statements: {e})"),
            }
        } else {
            drop(pool);
        }
    }
    println!();
    println!(
        "(Section 5: {:.0?}; load average before {load_before}, after {})",
        t0.elapsed(),
        loadavg()
    );
}

// ---------------------------------------------------------------------------------------

fn main() {
    let Some(quick) = common::start_bench() else {
        return;
    };
    let cfg = Config::from_env(quick);
    let t0 = Instant::now();
    let load_start = loadavg();
    eprintln!("starting a primary and two standbys ...");
    let cluster = PgCluster::start(2);
    let bench = setup(&cluster, &cfg);

    println!();
    println!(
        "# diesel-multidb pool bench{}",
        if quick { " (--quick)" } else { "" }
    );
    println!();
    println!(
        "{} cores; load average at start {load_start}; PostgreSQL primary :{} + standbys {:?} \
         on 127.0.0.1 (the harness's settings: fsync off, full_page_writes off); \
         synchronous_commit = {} on the bench's database",
        cores(),
        bench.primary,
        bench.standbys,
        cfg.sync_commit
    );
    println!(
        "sections {:?}, rounds {}, {:.1} s per run, {} threads, pool size {}, {} rows, {} % \
         updates",
        cfg.sections, cfg.rounds, cfg.secs, cfg.threads, cfg.pool_size, cfg.rows, cfg.write_pct
    );

    if cfg.runs(1) {
        section_pool(&bench, &cfg);
    }
    if cfg.runs(2) {
        section_statements(&bench, &cfg);
    }
    if cfg.runs(3) {
        section_establish(&bench, &cfg);
    }
    if cfg.runs(4) {
        section_sessions(&bench, &cfg);
    }
    if cfg.runs(5) {
        section_monitor(&bench, &cfg);
    }
    println!();
    println!(
        "Total {:.0?}. Load average at start {load_start}, at the end {} ({} cores).",
        t0.elapsed(),
        loadavg(),
        cores()
    );
}
