//! What the bench binaries share: parameters from the environment, timing, order
//! statistics, the machine's load, the `accounts` database of the pool benches, and (for
//! `pool`) a pgpool-II launcher.
//!
//! Each bench includes this module with `mod common;` and uses part of it.
#![allow(dead_code)]

pub mod pgpool;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use diesel_multidb_testkit::PgCluster;

/// `$name` parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Whether `--quick` is among the arguments (`cargo bench ... -- --quick`). Cargo also
/// passes `--bench`, which the benches ignore.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// Whether the binary was started by `cargo bench` (which passes `--bench`). `cargo test
/// --benches` / `--all-targets` runs a `harness = false` bench without it: the bench then
/// prints a line and returns at once instead of starting servers for minutes.
pub fn started_by_cargo_bench() -> bool {
    let yes = std::env::args().any(|a| a == "--bench");
    if !yes {
        println!(
            "not run: this is a bench (`cargo bench -p diesel_tests --bench <name>`); \
             started without --bench, as `cargo test --all-targets` does"
        );
    }
    yes
}

/// Creates a database on `cluster`'s primary with a table `accounts (id, balance, name)` of
/// `rows` rows (ids `1..=rows`), analyzed, with `synchronous_commit = sync_commit` as the
/// database's default, and waits until every standby has replayed it. Returns its name.
pub fn accounts_db(cluster: &PgCluster, rows: u64, sync_commit: &str) -> String {
    let db = cluster.create_database("bench");
    let t0 = Instant::now();
    let mut conn = PgConnection::establish(&cluster.node_db_url(cluster.primary_port(), &db))
        .unwrap_or_else(|e| panic!("connecting to the primary: {e}"));
    conn.batch_execute(&format!(
        "CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL, name text NOT NULL);
         INSERT INTO accounts SELECT g, 0, 'account ' || g FROM generate_series(1, {rows}) g;"
    ))
    .expect("creating and filling accounts");
    conn.batch_execute("VACUUM ANALYZE accounts")
        .expect("VACUUM ANALYZE accounts");
    conn.batch_execute(&format!(
        "ALTER DATABASE {db} SET synchronous_commit = {sync_commit}"
    ))
    .expect("setting synchronous_commit");
    drop(conn);
    cluster.wait_for_replay();
    eprintln!(
        "database {db} with {rows} rows in accounts, replicated, in {:.1?}",
        t0.elapsed()
    );
    db
}

/// Times one run of `op`.
pub fn time(op: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    op();
    start.elapsed()
}

/// The median of `samples`.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Order statistics of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
    pub n: usize,
}

impl Spread {
    /// The statistics of `samples` (which must not be empty; NaNs are not expected).
    pub fn of(samples: &[f64]) -> Spread {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        Spread {
            median: if s.len() % 2 == 1 {
                s[s.len() / 2]
            } else {
                (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
            },
            min: s[0],
            max: s[s.len() - 1],
            p10: at(0.1),
            p90: at(0.9),
            n: s.len(),
        }
    }

    /// `min–max` with `decimals` decimals.
    pub fn range(&self, decimals: usize) -> String {
        format!("{:.*}–{:.*}", decimals, self.min, decimals, self.max)
    }

    /// `p10–p90` with `decimals` decimals.
    pub fn p10_p90(&self, decimals: usize) -> String {
        format!("{:.*}–{:.*}", decimals, self.p10, decimals, self.p90)
    }
}

/// Microseconds of a duration, as a float.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minute load averages).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("(cannot read /proc/loadavg: {e})"))
}

/// The number of CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A small, fast, seedable pseudo-random generator (xorshift64*), so that the benches need
/// no extra dependency and every run draws the same sequences.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero: xorshift would stay there.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (the modulo bias is negligible for the ranges used here).
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next_u64() >> 11) % n
    }
}

/// What one thread or task of a pool bench (or one variant, summed) did.
#[derive(Default, Clone)]
pub struct Tally {
    pub reads: u64,
    pub writes: u64,
    /// Reads the wrapper reports it ran on a standby, by port (the wrapper's variants only).
    pub standby_reads: BTreeMap<u16, u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Adds `other`'s counts (and its first error when this has none).
    pub fn add(&mut self, other: &Tally) {
        self.reads += other.reads;
        self.writes += other.writes;
        for (port, n) in &other.standby_reads {
            *self.standby_reads.entry(*port).or_default() += n;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// Reads on any standby.
    pub fn standby_total(&self) -> u64 {
        self.standby_reads.values().sum()
    }
}

/// The progress line of one variant's run in a round of a pool bench, on stderr.
pub fn log_round(round: usize, workload: &str, key: &str, rate: f64, tally: &Tally) {
    eprintln!(
        "round {} {workload} {key}: {rate:.0} tx/s{}",
        round + 1,
        if tally.errors > 0 {
            format!(" ({} errors)", tally.errors)
        } else {
            String::new()
        }
    );
}

/// Starts a pool bench: `None` when not started by `cargo bench` (the bench then returns at
/// once); else the library's tracing on stderr when `RUST_LOG` is set (e.g.
/// `RUST_LOG=diesel_multidb=debug`), and `Some(quick)` (`--quick` given).
pub fn start_bench() -> Option<bool> {
    if !started_by_cargo_bench() {
        return None;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    Some(quick())
}

/// The per-round ratios of two variants' rates (`num[i] / den[i]`), as a spread.
pub fn per_round_ratio(num: &[f64], den: &[f64]) -> Spread {
    let per_round: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
    Spread::of(&per_round)
}
