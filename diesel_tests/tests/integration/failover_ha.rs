//! Against a real HA manager (issue 6): a pg_auto_failover formation (monitor + 2 nodes,
//! `testkit/src/auto_failover.rs`) moves the primary under write load through the
//! multi-host URL of both nodes: a planned switchover, then an unplanned failover (the
//! primary's node is killed). Writes follow the manager's decision; no acknowledged write
//! is lost or applied twice; the demoted primary is never written to after the switch.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::failover_chaos::{
    count, counts_on, fmt_tally, join_all, pool, spawn_writers, Attempt, Tally,
};
use diesel_multidb_testkit::AutoFailover;

/// What the writers saw around one HA event.
struct Event {
    name: &'static str,
    old: u16,
    new: u16,
    /// The event was triggered.
    start: Instant,
    /// The harness saw the new primary accept writes.
    done: Instant,
    /// The next event started (or the load stopped).
    until: Instant,
}

/// Checks one event and returns its summary line.
fn check_event(ev: &Event, attempts: &[Attempt]) -> String {
    let in_window = |a: &&Attempt| a.end >= ev.start && a.start < ev.until;
    let ok_on = |a: &Attempt, port: u16| matches!(a.result, Ok((p, _)) if p == port);
    let first_new = attempts
        .iter()
        .filter(in_window)
        .filter(|a| ok_on(a, ev.new))
        .map(|a| a.end)
        .min()
        .unwrap_or_else(|| {
            panic!(
                "{}: no write succeeded on the new primary {} afterwards",
                ev.name, ev.new
            )
        });
    let last_old = attempts
        .iter()
        .filter(|a| ok_on(a, ev.old) && a.end <= first_new)
        .map(|a| a.end)
        .max();
    let unavailable = last_old.map(|t| first_new - t);
    let mut errors = Tally::new();
    for a in attempts
        .iter()
        .filter(|a| a.end >= ev.start && a.end <= first_new + Duration::from_secs(1))
    {
        if let Err(e) = &a.result {
            count(&mut errors, e.clone());
        }
    }
    // The demoted (or dead) primary is never written to once the new one took a write.
    let late_old: Vec<&Attempt> = attempts
        .iter()
        .filter(in_window)
        .filter(|a| a.start > first_new && ok_on(a, ev.old))
        .collect();
    assert!(
        late_old.is_empty(),
        "{}: writes acknowledged by the old primary {} after the new primary {} took one: {:?}",
        ev.name,
        ev.old,
        ev.new,
        &late_old[..late_old.len().min(5)]
    );
    // Writes follow the HA manager's decision.
    let elsewhere: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.start >= ev.done && a.start < ev.until)
        .filter(|a| matches!(a.result, Ok((p, _)) if p != ev.new))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "{}: writes started after the manager's new primary {} accepted writes ran elsewhere: {:?}",
        ev.name,
        ev.new,
        &elsewhere[..elsewhere.len().min(5)]
    );
    format!(
        "{}: {} -> {}, manager took {:.2?}; writes unavailable {} (last ack on the old primary \
         to first ack on the new one), first ack on the new primary {:.2?} after the event \
         started; errors surfaced: {}",
        ev.name,
        ev.old,
        ev.new,
        ev.done - ev.start,
        unavailable.map_or("n/a (no ack on the old primary)".to_owned(), |d| format!(
            "{d:.2?}"
        )),
        first_new.saturating_duration_since(ev.start),
        fmt_tally(&errors)
    )
}

#[test]
fn writes_follow_pg_auto_failover_through_a_switchover_and_a_failover() {
    let t0 = Instant::now();
    let ha = AutoFailover::start();
    let started = t0.elapsed();
    let [node1, node2] = ha.node_ports();
    assert_eq!(ha.primary_port(), node1);
    ha.query_one(
        node1,
        "CREATE TABLE ha_w (id bigint NOT NULL, writer int NOT NULL)",
    );

    let pool = Arc::new(pool(
        ha.default_url("failover_timeout=30&connect_timeout=2&monitor_interval=100ms"),
        4,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&pool, "ha_w", 2, &stop);
    thread::sleep(Duration::from_secs(1));

    // (a) Planned switchover.
    let a_start = Instant::now();
    let new_primary = ha.switchover();
    let a_done = Instant::now();
    assert_eq!(new_primary, node2);
    // The old primary rejoins as a secondary (needed for the failover below).
    ha.wait_healthy();
    assert_eq!(ha.secondary_port(), Some(node1));
    let topology_after_a = pool.get().map(|c| c.topology());
    thread::sleep(Duration::from_secs(1));

    // (b) Unplanned failover: the primary's node dies.
    let b_start = Instant::now();
    let killed = ha.kill_primary();
    assert_eq!(killed, node2);
    let promoted = ha.wait_for_promotion(killed);
    let b_done = Instant::now();
    assert_eq!(promoted, node1);
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let stop_at = Instant::now();
    let attempts: Vec<Attempt> = join_all(writers, Duration::from_secs(60), "writers")
        .into_iter()
        .flatten()
        .collect();

    let events = [
        Event {
            name: "switchover",
            old: node1,
            new: node2,
            start: a_start,
            done: a_done,
            until: b_start,
        },
        Event {
            name: "failover",
            old: node2,
            new: node1,
            start: b_start,
            done: b_done,
            until: stop_at,
        },
    ];
    let lines: Vec<String> = events.iter().map(|ev| check_event(ev, &attempts)).collect();

    // Verdicts on the survivor (node1), read directly.
    let counts = counts_on(&ha.node_url(node1), "ha_w", "id");
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_ok()).collect();
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
    let failed = attempts.len() - acked.len();
    let failed_present = attempts
        .iter()
        .filter(|a| a.result.is_err() && counts.contains_key(&a.id))
        .count();
    let wrong_route: Vec<&&Attempt> = acked
        .iter()
        .filter(|a| matches!(a.result, Ok((p, r)) if r != Some(p)))
        .collect();

    eprintln!(
        "ha: formation started in {started:.2?}; {} attempts, {} acknowledged, {failed} failed \
         ({failed_present} of them present); acknowledged but missing: {}; duplicated: {}",
        attempts.len(),
        acked.len(),
        missing.len(),
        duplicated.len()
    );
    for line in &lines {
        eprintln!("ha: {line}");
    }
    eprintln!("ha: a pooled connection's topology after the switchover: {topology_after_a:#?}");

    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the surviving node {node1}: {:?}",
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
}
