//! Pools of the async connection through a failover: diesel-async's deadpool and bb8 pools
//! of `MultiHostConnection<AsyncPgConnection>` under many Tokio tasks while the primary is
//! killed and its synchronous standby promoted (no acknowledged write lost, none applied
//! twice); and the sync connection inside `deadpool-diesel`.

use std::collections::{BTreeMap, HashMap};
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::{bb8, deadpool};
use diesel_async::RunQueryDsl;
use diesel_multidb_testkit::PgCluster;

use crate::async_routing::AConn;
use crate::failover_chaos::{error_kind, wait_sync};
use crate::failover_correctness::{cluster, kill_and_promote, FAST};
use crate::multihost::{self as mh, all_ports, fresh_db, url};

/// Runs a blocking harness call (psql, pg_ctl) from the async test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// A cluster of its own with one synchronous standby (an acknowledged commit is on it, so
/// promoting it loses no acknowledged write) and table `fo (v int)` (no unique constraint:
/// a write applied twice shows as two rows).
fn sync_cluster() -> PgCluster {
    let cluster = cluster(1, "");
    let (primary, standby) = (cluster.primary_port(), cluster.standby_ports()[0]);
    // The standby's cluster_name, hence its application_name (see PgCluster's docs).
    let app = format!("n1_{standby}");
    cluster.query_one(
        primary,
        &format!("ALTER SYSTEM SET synchronous_standby_names = '{app}'"),
    );
    cluster.query_one(primary, "ALTER SYSTEM SET synchronous_commit = on");
    cluster.query_one(primary, "SELECT pg_reload_conf()");
    wait_sync(&cluster, primary, &app);
    cluster
}

/// Either pool, handing out a guard that derefs to the connection.
enum APool {
    Deadpool(deadpool::Pool<AConn>),
    Bb8(bb8::Pool<AConn>),
}

type Guard<'a> = Box<dyn DerefMut<Target = AConn> + Send + 'a>;

impl APool {
    async fn get(&self) -> Result<Guard<'_>, String> {
        let checkout = async {
            match self {
                APool::Deadpool(p) => p
                    .get()
                    .await
                    .map(|c| Box::new(c) as Guard<'_>)
                    .map_err(|e| format!("deadpool: {e}")),
                APool::Bb8(p) => p
                    .get()
                    .await
                    .map(|c| Box::new(c) as Guard<'_>)
                    .map_err(|e| format!("bb8: {e}")),
            }
        };
        tokio::time::timeout(Duration::from_secs(30), checkout)
            .await
            .unwrap_or_else(|_| Err("checkout timed out after 30 s".into()))
    }
}

#[derive(QueryableByName)]
struct Port {
    #[diesel(sql_type = Integer)]
    port: i32,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What one task saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged writes: value, port, when.
    acked: Vec<(i32, u16, Instant)>,
    /// Failed writes: value and error kind.
    failed: Vec<(i32, String)>,
    checkout_errors: Vec<String>,
    reads: usize,
    reads_on_standby: usize,
    read_misses: usize,
    read_errors: Vec<String>,
}

/// One task: checkout, INSERT a unique value, read it back (read-your-writes), return the
/// connection; until `stop`.
async fn task(pool: Arc<APool>, t: i32, stop: Arc<AtomicBool>, standby: u16) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0;
    while !AtomicBool::load(&stop, Ordering::SeqCst) {
        let v = t * 100_000 + i;
        i += 1;
        let mut conn = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                seen.checkout_errors.push(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let wrote = diesel::sql_query(format!(
            "INSERT INTO fo (v) VALUES ({v}) RETURNING inet_server_port() AS port"
        ))
        .get_result::<Port>(&mut **conn)
        .await;
        match wrote {
            Ok(p) => seen.acked.push((v, p.port as u16, Instant::now())),
            Err(e) => {
                seen.failed.push((v, error_kind(&e)));
                drop(conn);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let read = diesel::sql_query(format!("SELECT count(*) AS n FROM fo WHERE v = {v}"))
            .get_result::<Count>(&mut **conn)
            .await;
        match read {
            Ok(c) => {
                seen.reads += 1;
                if c.n == 0 {
                    seen.read_misses += 1;
                }
                if conn
                    .last_route()
                    .is_some_and(|r| r.is_replica() && r.host().port() == standby)
                {
                    seen.reads_on_standby += 1;
                }
            }
            Err(e) => seen.read_errors.push(error_kind(&e)),
        }
    }
    seen
}

/// Runs `tasks` tasks on `pool` for `before`, kills the primary and promotes the standby,
/// runs for `after`, then checks every row on the new primary: every acknowledged write
/// there once, no value twice.
async fn through_a_failover(
    what: &str,
    cluster: &PgCluster,
    pool: APool,
    tasks: i32,
    before: Duration,
    after: Duration,
) {
    let (old, new) = (cluster.primary_port(), cluster.standby_ports()[0]);
    let pool = Arc::new(pool);
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(task(Arc::clone(&pool), t, Arc::clone(&stop), new)))
        .collect();
    tokio::time::sleep(before).await;
    let killed_at = Instant::now();
    let failover = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        blocking(|| kill_and_promote(cluster, new))
    }));
    let promoted_at = Instant::now();
    if failover.is_ok() {
        tokio::time::sleep(after).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for h in handles {
        all.push(
            tokio::time::timeout(Duration::from_secs(60), h)
                .await
                .unwrap_or_else(|_| panic!("{what}: a task did not stop within 60 s"))
                .expect("a task panicked"),
        );
    }
    if let Err(panic) = failover {
        std::panic::resume_unwind(panic);
    }

    let rows: Vec<(i32, i64)> = blocking(|| sync_side::counts(new));
    let counts: HashMap<i32, i64> = rows.into_iter().collect();
    let acked: Vec<&(i32, u16, Instant)> = all.iter().flat_map(|s| &s.acked).collect();
    let failed: Vec<&(i32, String)> = all.iter().flat_map(|s| &s.failed).collect();
    let lost: Vec<i32> = acked
        .iter()
        .filter(|(v, _, _)| !counts.contains_key(v))
        .map(|(v, _, _)| *v)
        .collect();
    let duplicated: Vec<(i32, i64)> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&v, &n)| (v, n))
        .collect();
    let failed_present = failed
        .iter()
        .filter(|(v, _)| counts.contains_key(v))
        .count();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for (_, kind) in &failed {
        *errors.entry(kind.clone()).or_default() += 1;
    }
    let mut checkout: BTreeMap<String, usize> = BTreeMap::new();
    for e in all.iter().flat_map(|s| &s.checkout_errors) {
        let masked: String = e
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *checkout
            .entry(masked.chars().take(100).collect())
            .or_default() += 1;
    }
    let mut read_errors: BTreeMap<String, usize> = BTreeMap::new();
    for e in all.iter().flat_map(|s| &s.read_errors) {
        *read_errors.entry(e.clone()).or_default() += 1;
    }
    let on_old = acked.iter().filter(|(_, p, _)| *p == old).count();
    let on_new = acked.iter().filter(|(_, p, _)| *p == new).count();
    let first_new = acked
        .iter()
        .filter(|(_, p, _)| *p == new)
        .map(|(_, _, at)| *at)
        .min();
    let (reads, on_standby, misses): (usize, usize, usize) = all.iter().fold((0, 0, 0), |a, s| {
        (a.0 + s.reads, a.1 + s.reads_on_standby, a.2 + s.read_misses)
    });
    eprintln!(
        "{what}: {tasks} tasks; kill + promote took {:?}\n  acknowledged writes {} ({on_old} on \
         the old primary, {on_new} on the new one), failed writes {} ({failed_present} of them \
         applied), lost {}, duplicated {}\n  first write on the new primary {} after the \
         promotion\n  reads {reads} ({on_standby} on the standby), misses {misses}, read errors \
         {read_errors:?}\n  write errors {errors:?}\n  checkout errors {checkout:?}",
        promoted_at - killed_at,
        acked.len(),
        failed.len(),
        lost.len(),
        duplicated.len(),
        first_new.map_or("never".into(), |t| if t >= promoted_at {
            format!("{} ms", (t - promoted_at).as_millis())
        } else {
            format!(
                "-{} ms (before promote() returned; {} ms after the kill)",
                (promoted_at - t).as_millis(),
                t.saturating_duration_since(killed_at).as_millis()
            )
        }),
    );
    if !lost.is_empty() {
        // When each was acknowledged, and what the old primary holds of them (restarted to
        // look: its WAL decides).
        let details: Vec<String> = acked
            .iter()
            .filter(|(v, _, _)| lost.contains(v))
            .map(|(v, port, at)| {
                let rel = if *at >= killed_at {
                    format!("+{} ms", (*at - killed_at).as_millis())
                } else {
                    format!("-{} ms", (killed_at - *at).as_millis())
                };
                format!("{v} acked by {port} at {rel} from the kill")
            })
            .collect();
        let list: Vec<String> = lost.iter().map(|v| v.to_string()).collect();
        let on_old = blocking(|| {
            cluster.restart(old);
            cluster.query_one(
                old,
                &format!("SELECT count(*) FROM fo WHERE v IN ({})", list.join(",")),
            )
        });
        panic!(
            "{what}: acknowledged writes lost: {details:?}; the restarted old primary holds \
             {on_old} of them"
        );
    }
    assert!(
        duplicated.is_empty(),
        "{what}: values written twice: {duplicated:?}"
    );
    assert_eq!(
        misses, 0,
        "{what}: reads missed the task's own acknowledged write"
    );
    assert!(on_old > 0, "{what}: no write before the failover");
    assert!(on_new > 0, "{what}: no write reached the new primary");
    let unexpected = counts.len() - acked.len() - failed_present;
    assert_eq!(unexpected, 0, "{what}: rows nobody wrote");
}

#[derive(QueryableByName)]
struct VCount {
    #[diesel(sql_type = Integer)]
    v: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// 64 Tokio tasks on a deadpool pool of 8 through a kill-and-promote failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_64_tasks_on_a_deadpool_pool_of_8_through_a_failover() {
    let cluster = blocking(sync_cluster);
    let manager =
        AsyncDieselConnectionManager::<AConn>::new(url(&all_ports(&cluster), "postgres", FAST));
    let pool = deadpool::Pool::builder(manager)
        .max_size(8)
        .build()
        .expect("a deadpool pool");
    through_a_failover(
        "deadpool, pool of 8",
        &cluster,
        APool::Deadpool(pool),
        64,
        Duration::from_millis(1500),
        Duration::from_secs(3),
    )
    .await;
}

/// The same through bb8 (shorter: 16 tasks on a pool of 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_16_tasks_on_a_bb8_pool_of_4_through_a_failover() {
    let cluster = blocking(sync_cluster);
    let manager =
        AsyncDieselConnectionManager::<AConn>::new(url(&all_ports(&cluster), "postgres", FAST));
    let pool = bb8::Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .await
        .expect("a bb8 pool");
    through_a_failover(
        "bb8, pool of 4",
        &cluster,
        APool::Bb8(pool),
        16,
        Duration::from_secs(1),
        Duration::from_secs(2),
    )
    .await;
}

/// The sync connection inside `deadpool-diesel` (its `interact` runs the closure on a
/// blocking thread): reads on a standby, writes on the primary, from 8 tasks on a pool of
/// 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_connection_in_deadpool_diesel_reads_on_standbys_writes_on_the_primary() {
    let (cluster, db) = fresh_db("deadpool_diesel");
    let primary = cluster.primary_port();
    let manager = deadpool_diesel::Manager::<mh::Conn>::new(
        url(&all_ports(cluster), &db, ""),
        deadpool_diesel::Runtime::Tokio1,
    );
    let pool: deadpool_diesel::Pool<deadpool_diesel::Manager<mh::Conn>> =
        deadpool_diesel::Pool::builder(manager)
            .max_size(4)
            .build()
            .expect("a deadpool-diesel pool");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut on_standby = 0;
                for i in 0..10 {
                    let conn = pool.get().await.expect("a checkout");
                    on_standby += conn
                        .interact(move |c| sync_side::round(cluster, c, primary, t, i))
                        .await
                        .expect("interact");
                }
                on_standby
            })
        })
        .collect();
    let mut reads_after_writes_on_standby = 0;
    for h in handles {
        reads_after_writes_on_standby += h.await.expect("a task");
    }
    let status = pool.status();
    eprintln!(
        "deadpool-diesel with the sync connection: 80 reads on standbys, 80 writes on \
         {primary}; {reads_after_writes_on_standby} of 80 read-your-writes reads on a standby; \
         pool {status:?}"
    );
    assert_eq!(
        mh::query_in(
            primary,
            &db,
            "SELECT count(*) FROM users WHERE name LIKE 'dpd-%'"
        ),
        "80"
    );
}

/// The sync side (diesel's own `RunQueryDsl`).
mod sync_side {
    use diesel::prelude::*;
    use diesel_multidb_testkit::PgCluster;

    use super::VCount;
    use crate::multihost::{self as mh, url, users, NewUser};

    /// `v` and how many rows hold it, in `fo` on `port`.
    pub(super) fn counts(port: u16) -> Vec<(i32, i64)> {
        let mut pg = PgConnection::establish(&url(&[port], "postgres", ""))
            .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
        diesel::sql_query("SELECT v, count(*) AS n FROM fo GROUP BY v")
            .load::<VCount>(&mut pg)
            .expect("counting the rows")
            .into_iter()
            .map(|r| (r.v, r.n))
            .collect()
    }

    /// One round of a deadpool-diesel task: a read on a standby, a write on the primary,
    /// a read of it. Returns 1 when that last read ran on a standby.
    pub(super) fn round(
        cluster: &PgCluster,
        c: &mut mh::Conn,
        primary: u16,
        t: usize,
        i: usize,
    ) -> usize {
        mh::ready(c);
        let server = mh::who(c);
        mh::assert_on_standby(cluster, c, server.port);
        let name = format!("dpd-{t}-{i}");
        let port: i32 = diesel::insert_into(users::table)
            .values(NewUser { name: &name })
            .returning(mh::inet_server_port())
            .get_result(c)
            .expect("a write");
        mh::assert_on_primary(c, primary, port);
        let seen: i64 = users::table
            .filter(users::name.eq(&name))
            .count()
            .get_result(c)
            .expect("a read");
        assert_eq!(seen, 1, "the connection missed its own write {name}");
        usize::from(c.last_route().is_some_and(|r| r.is_replica()))
    }
}
