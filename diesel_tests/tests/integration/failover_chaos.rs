//! Failover under load (issue 6, chaos): writers and mixed workloads through an r2d2 pool
//! of `MultiHostConnection`s while the primary is killed and a standby promoted. Each test
//! owns its cluster; the verdicts are row counts read on the new primary directly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::result::Error;
use diesel::sql_types::{BigInt, Integer};

use crate::multihost::*;
use diesel_multidb_testkit::PgCluster;

pub(crate) type MhPool = Pool<ConnectionManager<Conn>>;

/// A short, stable name for an error, for the tallies (digits masked so that ports and
/// pids do not split one kind into many).
pub(crate) fn error_kind(e: &Error) -> String {
    let first_line = |s: &str| -> String {
        let line = s.lines().next().unwrap_or("").trim();
        let masked: String = line
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        masked.chars().take(90).collect()
    };
    match e {
        Error::DatabaseError(kind, info) => {
            let msg = info.message();
            let tag = if msg.contains("outcome is unknown") {
                "transaction lost during COMMIT: outcome unknown".to_owned()
            } else if msg.contains("during this transaction") {
                "transaction lost with its primary".to_owned()
            } else if msg.contains("session state") {
                "session state lost".to_owned()
            } else if msg.contains("split brain") {
                "split brain".to_owned()
            } else {
                first_line(msg)
            };
            format!("{kind:?}: {tag}")
        }
        Error::NotInTransaction => "NotInTransaction".to_owned(),
        other => first_line(&other.to_string()),
    }
}

/// Error tallies by kind.
pub(crate) type Tally = BTreeMap<String, usize>;

pub(crate) fn count(tally: &mut Tally, kind: String) {
    *tally.entry(kind).or_default() += 1;
}

pub(crate) fn merge(into: &mut Tally, from: &Tally) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

pub(crate) fn fmt_tally(tally: &Tally) -> String {
    if tally.is_empty() {
        return "none".to_owned();
    }
    tally
        .iter()
        .map(|(k, v)| format!("{v} x {k}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(QueryableByName)]
pub(crate) struct PortRow {
    #[diesel(sql_type = Integer)]
    pub(crate) port: i32,
}

#[derive(QueryableByName)]
pub(crate) struct IdCount {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// `id -> number of rows` of `SELECT <id_col> AS id, count(*) AS n FROM <table> GROUP BY 1`
/// on one node, read directly (no routing).
pub(crate) fn counts_on(host_url: &str, table: &str, id_col: &str) -> HashMap<i64, i64> {
    let mut conn = PgConnection::establish(host_url)
        .unwrap_or_else(|e| panic!("connecting to {host_url}: {e}"));
    diesel::sql_query(format!(
        "SELECT {id_col}::bigint AS id, count(*)::bigint AS n FROM {table} GROUP BY 1"
    ))
    .load::<IdCount>(&mut conn)
    .unwrap_or_else(|e| panic!("counting {table} on {host_url}: {e}"))
    .into_iter()
    .map(|r| (r.id, r.n))
    .collect()
}

pub(crate) fn pool(url: String, size: u32) -> MhPool {
    crate::trace();
    Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(30))
        .build(ConnectionManager::<Conn>::new(url))
        .expect("building the r2d2 pool")
}

/// One INSERT attempt of a writer.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) id: i64,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// Ok: the port the server reported, and the port of the wrapper's `last_route()`.
    pub(crate) result: Result<(u16, Option<u16>), String>,
}

/// Inserts `id` into `table (id, writer)` through a pooled connection, returning the
/// server's port.
pub(crate) fn insert_one(pool: &MhPool, table: &str, id: i64, writer: i32) -> Attempt {
    let start = Instant::now();
    let result = match pool.get() {
        Err(e) => Err(format!("pool checkout: {e}")),
        Ok(mut conn) => diesel::sql_query(format!(
            "INSERT INTO {table} (id, writer) VALUES ($1, $2) RETURNING inet_server_port() AS port"
        ))
        .bind::<BigInt, _>(id)
        .bind::<Integer, _>(writer)
        .get_result::<PortRow>(&mut *conn)
        .map(|r| (r.port as u16, conn.last_route().map(|r| r.host().port())))
        .map_err(|e| error_kind(&e)),
    };
    Attempt {
        id,
        start,
        end: Instant::now(),
        result,
    }
}

/// Runs `writers` threads inserting client-unique ids into `table` until `stop` is set.
pub(crate) fn spawn_writers(
    pool: &Arc<MhPool>,
    table: &'static str,
    writers: i32,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Vec<Attempt>>> {
    (0..writers)
        .map(|w| {
            let pool = Arc::clone(pool);
            let stop = Arc::clone(stop);
            thread::spawn(move || {
                let mut attempts = Vec::new();
                let mut seq: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let id = (i64::from(w + 1) << 32) | seq;
                    let attempt = insert_one(&pool, table, id, w);
                    let failed = attempt.result.is_err();
                    attempts.push(attempt);
                    if failed {
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                attempts
            })
        })
        .collect()
}

/// Joins threads, failing if one does not finish within `bound` or panicked.
pub(crate) fn join_all<T: Send + 'static>(
    handles: Vec<thread::JoinHandle<T>>,
    bound: Duration,
    what: &str,
) -> Vec<T> {
    let deadline = Instant::now() + bound;
    while handles.iter().any(|h| !h.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {} threads still running {bound:?} after being told to stop",
            handles.iter().filter(|h| !h.is_finished()).count(),
            handles.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
    handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.join()
                .unwrap_or_else(|_| panic!("{what}: thread {i} panicked"))
        })
        .collect()
}

/// Per second, `n` events over `d`.
pub(crate) fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-3)
}

/// Waits until `standby_app` (its application_name) is a synchronous standby of `primary`.
pub(crate) fn wait_sync(cluster: &PgCluster, primary: u16, standby_app: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = format!(
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby_app}'"
    );
    loop {
        let got = cluster.query_one(primary, &sql);
        if got == "sync" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{standby_app} is not a synchronous standby of {primary} after 30 s: {got:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn chaos_writers_through_a_pool_lose_and_duplicate_nothing_when_the_sync_standby_is_promoted() {
    let cluster = PgCluster::start(1);
    let (primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);
    // The standby's cluster_name, hence its application_name (see PgCluster's docs).
    let standby_app = format!("n1_{standby}");
    cluster.query_one(
        primary,
        &format!("ALTER SYSTEM SET synchronous_standby_names = '{standby_app}'"),
    );
    cluster.query_one(primary, "ALTER SYSTEM SET synchronous_commit = on");
    cluster.query_one(primary, "SELECT pg_reload_conf()");
    wait_sync(&cluster, primary, &standby_app);
    assert_eq!(cluster.query_one(primary, "SHOW synchronous_commit"), "on");
    cluster.query_one(
        primary,
        "CREATE TABLE chaos_w (id bigint NOT NULL, writer int NOT NULL)",
    );
    cluster.wait_for_replay();

    let pool = Arc::new(pool(
        url(
            &[primary, standby],
            "postgres",
            "failover_timeout=30&connect_timeout=2&monitor_interval=100ms",
        ),
        8,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let load_start = Instant::now();
    let writers = spawn_writers(&pool, "chaos_w", 4, &stop);

    thread::sleep(Duration::from_secs(2));
    let kill_at = Instant::now();
    cluster.kill(primary);
    thread::sleep(Duration::from_millis(500));
    let promote_called = Instant::now();
    cluster.promote(standby);
    let promoted_at = Instant::now();
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let stop_at = Instant::now();
    let attempts: Vec<Attempt> = join_all(writers, Duration::from_secs(60), "writers")
        .into_iter()
        .flatten()
        .collect();

    let counts = counts_on(&url(&[standby], "postgres", ""), "chaos_w", "id");
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_ok()).collect();
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_err()).collect();
    let missing: Vec<i64> = acked
        .iter()
        .filter(|a| !counts.contains_key(&a.id))
        .map(|a| a.id)
        .collect();
    let duplicated: Vec<(i64, i64)> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&id, &n)| (id, n))
        .collect();
    let attempted: HashSet<i64> = attempts.iter().map(|a| a.id).collect();
    let unknown: Vec<i64> = counts
        .keys()
        .filter(|id| !attempted.contains(id))
        .copied()
        .collect();
    let failed_present = failed.iter().filter(|a| counts.contains_key(&a.id)).count();
    let mut errors = Tally::new();
    for a in &failed {
        count(&mut errors, a.result.clone().unwrap_err());
    }
    let first_new = acked
        .iter()
        .filter(|a| matches!(a.result, Ok((p, _)) if p == standby))
        .map(|a| a.end)
        .min()
        .expect("no write succeeded on the promoted standby");
    let before = acked.iter().filter(|a| a.end < kill_at).count();
    let after = acked.iter().filter(|a| a.end >= first_new).count();
    let wrong_route: Vec<&&Attempt> = acked
        .iter()
        .filter(|a| matches!(a.result, Ok((p, r)) if r != Some(p)))
        .collect();
    // promote() returns once the harness sees pg_is_in_recovery() = false (polling), so the
    // promotion itself lies between these two instants.
    let promotion_to_first = format!(
        "{:.0?} after `pg_ctl promote` was called, {} promote() returned ({:.0?} later)",
        first_new.saturating_duration_since(promote_called),
        if first_new >= promoted_at {
            format!("{:.0?} after", first_new - promoted_at)
        } else {
            format!("{:.0?} before", promoted_at - first_new)
        },
        promoted_at - promote_called
    );
    eprintln!(
        "chaos writers: {} attempts, {} acknowledged, {} failed ({} of them present on the new \
         primary); acknowledged but missing: {}; duplicated ids: {}; errors surfaced: {}; \
         promotion to first successful write: {promotion_to_first}; writes/s before the kill \
         {:.0}, after the first write on the new primary {:.0}; writes unavailable from kill \
         to first new write: {:.0?}",
        attempts.len(),
        acked.len(),
        failed.len(),
        failed_present,
        missing.len(),
        duplicated.len(),
        fmt_tally(&errors),
        rate(before, kill_at - load_start),
        rate(after, stop_at.saturating_duration_since(first_new)),
        first_new.saturating_duration_since(kill_at),
    );

    assert!(before > 0, "no write succeeded before the kill");
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing on the promoted synchronous standby: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        duplicated.is_empty(),
        "ids applied more than once: {:?}",
        &duplicated[..duplicated.len().min(20)]
    );
    assert!(unknown.is_empty(), "rows nobody wrote: {unknown:?}");
    assert!(
        wrong_route.is_empty(),
        "last_route() named another host than the server that answered: {:?}",
        &wrong_route[..wrong_route.len().min(5)]
    );
    // Nothing was acknowledged by the dead primary after the promoted one took a write.
    let late_old: Vec<&&Attempt> = acked
        .iter()
        .filter(|a| a.start > first_new && matches!(a.result, Ok((p, _)) if p == primary))
        .collect();
    assert!(
        late_old.is_empty(),
        "acknowledged by the old primary: {late_old:?}"
    );
}

// ---------------------------------------------------------------------------
// Mixed workload across kill / promote / rejoin cycles.
// ---------------------------------------------------------------------------

/// What the mixed workload did, per thread.
#[derive(Default)]
struct MixedStats {
    reads_ok: usize,
    reads_on_standby: usize,
    singles_ok: Vec<i64>,
    singles_failed: Vec<i64>,
    /// (tx id, rows, style) of transactions whose every statement and COMMIT returned Ok.
    tx_ok: Vec<(i64, i32, TxStyle)>,
    tx_failed: Vec<(i64, i32, TxStyle)>,
    /// Transactions that went on after a failed statement and whose COMMIT returned Ok:
    /// what a plain connection never does when its server is gone.
    commit_ok_after_failure: Vec<(i64, TxStyle, String)>,
    errors: BTreeMap<&'static str, Tally>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxStyle {
    /// `conn.transaction(|c| { insert?; insert?; ... })`.
    Diesel,
    /// `conn.transaction(|c| { let _ = insert; ...; Ok(()) })`: errors ignored inside.
    DieselIgnoring,
    /// `BEGIN; INSERT ...; COMMIT` by hand, errors ignored until COMMIT.
    Manual,
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn tx_insert(conn: &mut Conn, tx: i64, n: i32, k: i32) -> QueryResult<usize> {
    diesel::sql_query("INSERT INTO mixed_tx (tx, n, k) VALUES ($1, $2, $3)")
        .bind::<BigInt, _>(tx)
        .bind::<Integer, _>(n)
        .bind::<Integer, _>(k)
        .execute(conn)
}

/// One thread of the mixed workload; `current` tells the watchdog what it is doing.
fn mixed_thread(
    t: usize,
    pool: &MhPool,
    stop: &AtomicBool,
    current: &Mutex<(String, Instant)>,
) -> MixedStats {
    let mut stats = MixedStats::default();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678_9ABC));
    let mut seq: i64 = 0;
    let set = |what: String| *current.lock().unwrap() = (what, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let id = ((t as i64 + 1) << 32) | seq;
        let op = rng.next() % 10;
        set(format!("checkout for op {op} id {id}"));
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                count(
                    stats.errors.entry("checkout").or_default(),
                    format!("r2d2: {e}"),
                );
                continue;
            }
        };
        match op {
            0..=3 => {
                set(format!("read {id}"));
                match diesel::sql_query(WHO).get_result::<Server>(&mut *conn) {
                    Ok(server) => {
                        stats.reads_ok += 1;
                        if server.in_recovery {
                            stats.reads_on_standby += 1;
                        }
                    }
                    Err(e) => count(stats.errors.entry("read").or_default(), error_kind(&e)),
                }
            }
            4..=6 => {
                set(format!("single write {id}"));
                match diesel::sql_query("INSERT INTO mixed_single (id) VALUES ($1)")
                    .bind::<BigInt, _>(id)
                    .execute(&mut *conn)
                {
                    Ok(_) => stats.singles_ok.push(id),
                    Err(e) => {
                        stats.singles_failed.push(id);
                        count(stats.errors.entry("write").or_default(), error_kind(&e));
                    }
                }
            }
            _ => {
                let n = 2 + (rng.next() % 4) as i32;
                let style = match rng.next() % 3 {
                    0 => TxStyle::Diesel,
                    1 => TxStyle::DieselIgnoring,
                    _ => TxStyle::Manual,
                };
                set(format!("{style:?} transaction {id} of {n} rows"));
                let mut first_failure: Option<String> = None;
                let result: QueryResult<()> = match style {
                    TxStyle::Diesel => conn.transaction(|c| {
                        for k in 0..n {
                            tx_insert(c, id, n, k)?;
                        }
                        Ok(())
                    }),
                    TxStyle::DieselIgnoring => conn.transaction(|c| {
                        for k in 0..n {
                            if let Err(e) = tx_insert(c, id, n, k) {
                                first_failure.get_or_insert_with(|| error_kind(&e));
                            }
                        }
                        Ok(())
                    }),
                    TxStyle::Manual => {
                        let begun = diesel::sql_query("BEGIN").execute(&mut *conn);
                        match begun {
                            Err(e) => Err(e),
                            Ok(_) => {
                                for k in 0..n {
                                    if let Err(e) = tx_insert(&mut conn, id, n, k) {
                                        first_failure.get_or_insert_with(|| error_kind(&e));
                                    }
                                }
                                let committed =
                                    diesel::sql_query("COMMIT").execute(&mut *conn).map(|_| ());
                                if committed.is_err() {
                                    let _ = diesel::sql_query("ROLLBACK").execute(&mut *conn);
                                }
                                committed
                            }
                        }
                    }
                };
                match (result, first_failure) {
                    (Ok(()), None) => stats.tx_ok.push((id, n, style)),
                    (Ok(()), Some(failure)) => {
                        stats
                            .commit_ok_after_failure
                            .push((id, style, failure.clone()));
                        stats.tx_failed.push((id, n, style));
                        count(stats.errors.entry("transaction").or_default(), failure);
                    }
                    (Err(e), failure) => {
                        stats.tx_failed.push((id, n, style));
                        let kind = error_kind(&e);
                        let kind = match failure {
                            Some(f) if f != kind => format!("{f} (then at the end: {kind})"),
                            _ => kind,
                        };
                        count(stats.errors.entry("transaction").or_default(), kind);
                    }
                }
            }
        }
        drop(conn);
        set("idle".to_owned());
        thread::sleep(Duration::from_millis(2));
    }
    stats
}

/// Whether node `port` streams from `primary` within `within`.
fn streams_from(cluster: &PgCluster, primary: u16, port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let sql = format!(
        "SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE '%\\_{port}' \
         AND state = 'streaming'"
    );
    loop {
        if cluster.try_query_one(primary, "postgres", &sql).as_deref() == Ok("1") {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chaos_mixed_load_through_three_kill_promote_rejoin_cycles_tears_and_duplicates_nothing() {
    const THREADS: usize = 16;
    const CYCLES: usize = 3;
    let cluster = PgCluster::start(2);
    cluster.query_one(
        cluster.primary_port(),
        "CREATE TABLE mixed_single (id bigint NOT NULL); \
         CREATE TABLE mixed_tx (tx bigint NOT NULL, n int NOT NULL, k int NOT NULL)",
    );
    cluster.wait_for_replay();
    let ports = cluster.default_ports();
    let pool = Arc::new(pool(
        url(
            &ports,
            "postgres",
            "failover_timeout=30&connect_timeout=2&monitor_interval=100ms&replica_retry_interval=2s&read_your_writes=off",
        ),
        8,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let currents: Arc<Vec<Mutex<(String, Instant)>>> = Arc::new(
        (0..THREADS)
            .map(|_| Mutex::new(("starting".to_owned(), Instant::now())))
            .collect(),
    );
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..THREADS {
        let (pool, stop, currents, done_tx) = (
            Arc::clone(&pool),
            Arc::clone(&stop),
            Arc::clone(&currents),
            done_tx.clone(),
        );
        thread::spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                mixed_thread(t, &pool, &stop, &currents[t])
            }));
            let _ = done_tx.send((t, result));
        });
    }
    drop(done_tx);

    let mut cycle_notes = Vec::new();
    let mut third_rejoined = 0;
    for cycle in 0..CYCLES {
        thread::sleep(Duration::from_millis(1500));
        let old = cluster.current_primary_port();
        let standbys: Vec<u16> = ports.iter().copied().filter(|&p| p != old).collect();
        let (promoted, third) = (standbys[cycle % 2], standbys[(cycle + 1) % 2]);
        let t0 = Instant::now();
        cluster.kill(old);
        thread::sleep(Duration::from_millis(300));
        cluster.promote(promoted);
        let promote_done = t0.elapsed();
        cluster.rejoin_as_standby(old);
        // A standby that had received more WAL than the promoted one cannot follow it:
        // rebuild it too (a harness necessity, not part of what is tested).
        let rebuilt = !streams_from(&cluster, promoted, third, Duration::from_secs(5));
        if rebuilt {
            third_rejoined += 1;
            cluster.rejoin_as_standby(third);
        }
        cycle_notes.push(format!(
            "cycle {cycle}: killed {old}, promoted {promoted} ({promote_done:.1?} after the \
             kill), {old} rejoined{}",
            if rebuilt {
                format!(", {third} rebuilt (could not follow)")
            } else {
                String::new()
            }
        ));
    }
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);

    // Watchdog: every thread finishes within a generous bound.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut results: Vec<Option<MixedStats>> = (0..THREADS).map(|_| None).collect();
    let mut panics = Vec::new();
    let mut finished = 0;
    while finished < THREADS {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok((t, Ok(stats))) => {
                results[t] = Some(stats);
                finished += 1;
            }
            Ok((t, Err(panic))) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panics.push(format!("thread {t}: {msg}"));
                finished += 1;
            }
            Err(_) => {
                let stuck: Vec<String> = (0..THREADS)
                    .filter(|&t| results[t].is_none())
                    .map(|t| {
                        let (what, since) = currents[t].lock().unwrap().clone();
                        format!("thread {t}: {what} for {:.1?}", since.elapsed())
                    })
                    .collect();
                panic!("threads stuck 90 s after stop: {stuck:#?}");
            }
        }
    }
    assert!(panics.is_empty(), "worker threads panicked: {panics:#?}");

    let mut total = MixedStats::default();
    for stats in results.into_iter().flatten() {
        total.reads_ok += stats.reads_ok;
        total.reads_on_standby += stats.reads_on_standby;
        total.singles_ok.extend(stats.singles_ok);
        total.singles_failed.extend(stats.singles_failed);
        total.tx_ok.extend(stats.tx_ok);
        total.tx_failed.extend(stats.tx_failed);
        total
            .commit_ok_after_failure
            .extend(stats.commit_ok_after_failure);
        for (op, tally) in &stats.errors {
            merge(total.errors.entry(op).or_default(), tally);
        }
    }

    // The pool writes to the latest primary, through every connection it hands out.
    let latest = cluster.current_primary_port();
    let mut held = Vec::new();
    while let Ok(conn) = pool.get_timeout(Duration::from_secs(1)) {
        held.push(conn);
        if held.len() == 8 {
            break;
        }
    }
    assert!(!held.is_empty(), "the pool hands out no connection");
    let final_writes: Vec<Result<i32, String>> = held
        .iter_mut()
        .map(|conn| {
            diesel::sql_query(
                "INSERT INTO mixed_single (id) VALUES (0) RETURNING inet_server_port() AS port",
            )
            .get_result::<PortRow>(&mut **conn)
            .map(|r| r.port)
            .map_err(|e| error_kind(&e))
        })
        .collect();
    let held_count = held.len();
    drop(held);

    let primary_url = url(&[latest], "postgres", "");
    let singles = counts_on(&primary_url, "mixed_single", "id");
    let tx_rows = counts_on(&primary_url, "mixed_tx", "tx");
    let tx_dup_rows = {
        let mut conn = PgConnection::establish(&primary_url).unwrap();
        diesel::sql_query(
            "SELECT tx AS id, count(*)::bigint AS n FROM mixed_tx GROUP BY tx, k HAVING count(*) > 1",
        )
        .load::<IdCount>(&mut conn)
        .unwrap()
    };
    let tx_sizes: HashMap<i64, i32> = total
        .tx_ok
        .iter()
        .chain(&total.tx_failed)
        .map(|&(id, n, _)| (id, n))
        .collect();
    let torn: Vec<(i64, i64, i32)> = tx_rows
        .iter()
        .filter_map(|(&tx, &rows)| {
            let n = *tx_sizes.get(&tx).unwrap_or(&-1);
            (rows != i64::from(n)).then_some((tx, rows, n))
        })
        .collect();
    let duplicated_singles: Vec<(i64, i64)> = singles
        .iter()
        .filter(|(&id, &n)| id != 0 && n > 1)
        .map(|(&id, &n)| (id, n))
        .collect();
    let lost_singles = total
        .singles_ok
        .iter()
        .filter(|id| !singles.contains_key(id))
        .count();
    let lost_tx = total
        .tx_ok
        .iter()
        .filter(|(id, _, _)| !tx_rows.contains_key(id))
        .count();
    let failed_singles_present = total
        .singles_failed
        .iter()
        .filter(|id| singles.contains_key(id))
        .count();
    let failed_tx_present = total
        .tx_failed
        .iter()
        .filter(|(id, _, _)| tx_rows.contains_key(id))
        .count();

    eprintln!(
        "chaos mixed: {}; {} of 3 times the other standby had to be rebuilt",
        cycle_notes.join("; "),
        third_rejoined
    );
    eprintln!(
        "chaos mixed: reads ok {} ({} on a standby); single writes ok {} / failed {} ({} failed \
         ones present); transactions ok {} / failed {} ({} failed ones committed); \
         acknowledged but missing (asynchronous standbys, informational): {} single writes, {} \
         transactions; torn: {}; duplicated singles: {}; duplicated tx rows: {}; COMMIT Ok \
         after a failed statement: {}",
        total.reads_ok,
        total.reads_on_standby,
        total.singles_ok.len(),
        total.singles_failed.len(),
        failed_singles_present,
        total.tx_ok.len(),
        total.tx_failed.len(),
        failed_tx_present,
        lost_singles,
        lost_tx,
        torn.len(),
        duplicated_singles.len(),
        tx_dup_rows.len(),
        total.commit_ok_after_failure.len(),
    );
    for (op, tally) in &total.errors {
        eprintln!("chaos mixed: {op} errors: {}", fmt_tally(tally));
    }
    eprintln!("chaos mixed: final writes through {held_count} pooled connections: {final_writes:?} (latest primary {latest})");

    assert!(
        total.singles_ok.len() + total.tx_ok.len() > 0,
        "nothing was written"
    );
    assert!(
        torn.is_empty(),
        "torn transactions (tx, rows present, rows written): {:?}",
        &torn[..torn.len().min(20)]
    );
    assert!(
        duplicated_singles.is_empty(),
        "single writes applied more than once: {duplicated_singles:?}"
    );
    assert!(
        tx_dup_rows.is_empty(),
        "transaction rows applied more than once (tx ids): {:?}",
        tx_dup_rows.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert!(
        total.commit_ok_after_failure.is_empty(),
        "COMMIT returned Ok after a statement of the same transaction failed: {:?}",
        &total.commit_ok_after_failure[..total.commit_ok_after_failure.len().min(10)]
    );
    let not_in_tx: usize = total
        .errors
        .values()
        .filter_map(|t| t.get("NotInTransaction"))
        .sum();
    assert_eq!(
        not_in_tx, 0,
        "a failover inside a transaction surfaced NotInTransaction instead of the connection error"
    );
    for (i, w) in final_writes.iter().enumerate() {
        assert_eq!(
            w.as_ref().map(|&p| p as u16),
            Ok(latest),
            "pooled connection {i}: the final write did not run on the latest primary {latest}"
        );
    }
}
