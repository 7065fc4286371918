//! What the bench binaries share: parameters from the environment, timing, order
//! statistics, the machine's load, the `items` table of the overhead benches, the `accounts`
//! database, load loop and tables of the pool benches, and (for `pool`) a pgpool-II launcher.
//!
//! Each bench includes this module with `mod common;` and uses part of it.
#![allow(dead_code)]

pub mod pgpool;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, PgConnection};
use diesel_multidb::StatementRoute;
use diesel_multidb_testkit::{MariaDbCluster, PgCluster};

diesel::table! {
    /// The pool benches' table (`accounts_db`).
    accounts (id) {
        id -> Integer,
        balance -> BigInt,
        name -> Text,
    }
}

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

/// Creates the overhead benches' table `items (id, name)` with one row (`id` 1) on
/// `cluster`'s primary, waits until the standbys have it, and returns the connection that
/// made it.
pub fn pg_items(cluster: &PgCluster) -> PgConnection {
    let mut conn = PgConnection::establish(&cluster.node_url(cluster.primary_port()))
        .unwrap_or_else(|e| panic!("connecting to the primary: {e}"));
    conn.batch_execute(
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
         INSERT INTO items (name) VALUES ('first');",
    )
    .expect("schema");
    cluster.wait_for_replay();
    conn
}

/// `pg_items` for MariaDB: the table on `cluster`'s source, replicated.
pub fn mariadb_items(cluster: &MariaDbCluster) -> MysqlConnection {
    let mut conn = MysqlConnection::establish(&cluster.node_url(cluster.source_port()))
        .unwrap_or_else(|e| panic!("connecting to the source: {e}"));
    conn.batch_execute(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);
         INSERT INTO items (name) VALUES ('first');",
    )
    .expect("schema");
    cluster.wait_for_replication();
    conn
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

/// The cells `a.median (p10–p90) | b.median (p10–p90) | ratio | difference` of a table row
/// comparing the latencies `a` (the inner connection) and `b` (the wrapper), in µs.
pub fn latency_cells(a: &Spread, b: &Spread) -> String {
    format!(
        "{:.1} ({}) | {:.1} ({}) | {:.3} | {:+.1}",
        a.median,
        a.p10_p90(1),
        b.median,
        b.p10_p90(1),
        b.median / a.median,
        b.median - a.median
    )
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

    /// Counts a read the wrapper reports (`last_route()`) it ran on a standby.
    pub fn note_route(&mut self, route: Option<StatementRoute>) {
        if let Some(route) = route.filter(|r| r.is_replica()) {
            *self.standby_reads.entry(route.host().port()).or_default() += 1;
        }
    }

    /// `87.3 % (s1 50 % / s2 50 %; last_route)`: the share of the reads the wrapper ran on
    /// the `standbys`, and their split; `-` without reads.
    pub fn standby_share(&self, standbys: &[u16]) -> String {
        if self.reads == 0 {
            return "-".into();
        }
        let on = self.standby_total();
        let split: Vec<String> = standbys
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let n = self.standby_reads.get(p).copied().unwrap_or(0);
                format!("s{} {:.0} %", i + 1, pct(n, on))
            })
            .collect();
        format!(
            "{:.1} % ({}; last_route)",
            pct(on, self.reads),
            split.join(" / ")
        )
    }
}

/// `n` as a percentage of `of` (0 when `of` is 0).
pub fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// One thread's or task's share of a pool bench's load: random point reads and (`write_pct`
/// percent) updates of `accounts` until the deadline, counted.
pub struct LoadLoop {
    rng: Rng,
    rows: u64,
    write_pct: u64,
    ops: u64,
    tally: Tally,
    start: Instant,
    deadline: Instant,
}

impl LoadLoop {
    /// Worker `i`'s loop of `secs` seconds from now, its draws seeded from `seed` and `i`.
    pub fn start(seed: u64, i: usize, rows: u64, write_pct: u64, secs: f64) -> LoadLoop {
        let start = Instant::now();
        LoadLoop {
            rng: Rng::new(seed ^ ((i as u64 + 1) << 40)),
            rows,
            write_pct,
            ops: 0,
            tally: Tally::default(),
            start,
            deadline: start + Duration::from_secs_f64(secs),
        }
    }

    /// The next transaction, `(id, write)`, or `None` past the deadline.
    pub fn next(&mut self) -> Option<(i32, bool)> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let id = 1 + self.rng.below(self.rows) as i32;
        Some((id, self.rng.below(100) < self.write_pct))
    }

    /// What this worker did so far, for `one` to note routes in.
    pub fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    /// Counts a transaction's outcome: a read or a write done, or an error.
    pub fn done(&mut self, write: bool, outcome: Result<(), String>) {
        match outcome {
            Ok(()) if write => self.tally.writes += 1,
            Ok(()) => self.tally.reads += 1,
            Err(e) => {
                self.tally.errors += 1;
                self.tally.first_error.get_or_insert(e);
                return;
            }
        }
        self.ops += 1;
    }

    /// Transactions per second and what the loop did.
    pub fn finish(self) -> (f64, Tally) {
        (
            self.ops as f64 / self.start.elapsed().as_secs_f64(),
            self.tally,
        )
    }
}

/// The workers' results summed: tx/s and what they did.
pub fn sum_loads(loads: impl IntoIterator<Item = (f64, Tally)>) -> (f64, Tally) {
    let mut total = Tally::default();
    let mut rate = 0.0;
    for (r, tally) in loads {
        rate += r;
        total.add(&tally);
    }
    (rate, total)
}

/// A workload of the pool benches: its name and the share of updates.
pub struct Workload {
    pub name: &'static str,
    pub write_pct: u64,
}

/// The pool benches' workloads: `90/10` (`write_pct` updates) and read-only.
pub fn workloads(write_pct: u64) -> [Workload; 2] {
    [
        Workload {
            name: "90/10",
            write_pct,
        },
        Workload {
            name: "read-only",
            write_pct: 0,
        },
    ]
}

/// What the rounds of a pool bench measured, per (workload index, variant key).
#[derive(Default)]
pub struct Runs {
    /// Tx/s, one per round.
    pub rates: BTreeMap<(usize, &'static str), Vec<f64>>,
    /// What the runs did, summed over the rounds.
    pub tallies: BTreeMap<(usize, &'static str), Tally>,
}

impl Runs {
    /// Logs and keeps one variant's run.
    pub fn record(
        &mut self,
        round: usize,
        (w, workload): (usize, &Workload),
        key: &'static str,
        (rate, tally): (f64, Tally),
    ) {
        log_round(round, workload.name, key, rate, &tally);
        self.rates.entry((w, key)).or_default().push(rate);
        self.tallies.entry((w, key)).or_default().add(&tally);
    }

    /// The per-round ratios of `num`'s rates to `den`'s in workload `w`, when both ran.
    pub fn ratio(&self, w: usize, num: &str, den: &str) -> Option<Spread> {
        let n = self.rates.get(&(w, num))?;
        let d = self.rates.get(&(w, den))?;
        Some(per_round_ratio(n, d))
    }

    /// The head of the throughput table.
    pub fn print_throughput_head() {
        println!();
        println!(
            "| workload | variant | tx/s median | tx/s min–max | reads on standbys | errors |"
        );
        println!("|---|---|---:|---:|---|---:|");
    }

    /// The throughput table's row of variant `key` (`label`) in workload `w`, with `where_`
    /// (where its reads ran), when it ran.
    pub fn print_throughput_row(
        &self,
        (w, workload): (usize, &Workload),
        key: &str,
        label: &str,
        where_: &str,
    ) {
        let Some(r) = self.rates.get(&(w, key)) else {
            return;
        };
        let s = Spread::of(r);
        println!(
            "| {} | {key} {label} | {:.0} | {} | {where_} | {} |",
            workload.name,
            s.median,
            s.range(0),
            self.tallies[&(w, key)].errors
        );
    }

    /// The first error of each variant and workload that had one.
    pub fn print_first_errors(&self, workloads: &[Workload]) {
        for ((w, key), t) in &self.tallies {
            if let Some(e) = &t.first_error {
                println!("first error of {key} in {}: {e}", workloads[*w].name);
            }
        }
    }

    /// The head of the ratio table.
    pub fn print_ratio_head() {
        println!();
        println!("| workload | ratio | median of per-round ratios | min–max | target |");
        println!("|---|---|---:|---:|---|");
    }

    /// The ratio table's row of `num`/`den` in `workload`; `false` (nothing printed) when
    /// either did not run.
    pub fn print_ratio_row(
        &self,
        (w, workload): (usize, &Workload),
        num: &str,
        den: &str,
        target: &str,
    ) -> bool {
        let Some(s) = self.ratio(w, num, den) else {
            return false;
        };
        println!(
            "| {} | {num}/{den} | {:.3} | {} | {target} |",
            workload.name,
            s.median,
            s.range(3)
        );
        true
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
