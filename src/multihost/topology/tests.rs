//! The topology's rules, without a server: observations in, decisions out.

use std::time::{Duration, Instant};

use super::state::{Exclusion, NoPrimary, Observation, Settings, TopologyState};
use super::{HostFailure, ServerRole};
use crate::multihost::position::Position;
use crate::multihost::url::{SplitBrainPolicy, TargetSessionAttrs};

fn settings() -> Settings {
    Settings {
        target: TargetSessionAttrs::ReadWrite,
        monitor_interval: Duration::from_secs(1),
        max_replica_lag: Some(Duration::from_secs(10)),
        replica_retry_interval: Duration::from_secs(30),
        failover_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        split_brain: SplitBrainPolicy::Refuse,
    }
}

fn primary(timeline: u32, lsn: u64) -> Observation {
    Observation {
        role: ServerRole::Primary,
        timeline: Some(timeline),
        lsn: Some(lsn),
        receive_lsn: None,
        replay_timestamp: None,
    }
}

fn standby(lsn: u64) -> Observation {
    Observation {
        role: ServerRole::Standby,
        timeline: None,
        lsn: Some(lsn),
        receive_lsn: Some(lsn),
        replay_timestamp: None,
    }
}

/// A clock for the tests: `t(ms)` is that many milliseconds after the start.
struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }
    fn t(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// Reports an observation whose probe ran from `start` to `start + 1 ms`.
fn see(topo: &mut TopologyState, clock: &Clock, host: usize, start: u64, obs: Observation) {
    topo.observed(host, clock.t(start), obs, clock.t(start + 1));
}

/// Host 0 primary at `lsn`, hosts 1 and 2 standbys that replayed it, all readable.
fn healthy(clock: &Clock, lsn: u64) -> TopologyState {
    let mut topo = TopologyState::new(3, settings());
    see(&mut topo, clock, 0, 0, primary(1, lsn));
    see(&mut topo, clock, 1, 2, standby(lsn));
    see(&mut topo, clock, 2, 2, standby(lsn));
    see(&mut topo, clock, 0, 4, primary(1, lsn));
    assert_eq!(topo.readable_standbys(), &[1, 2]);
    topo
}

#[test]
fn a_writable_host_becomes_the_primary() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(3, settings());
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    see(&mut topo, &clock, 1, 0, standby(100));
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    see(&mut topo, &clock, 2, 0, primary(1, 100));
    assert_eq!(topo.primary(), Ok((2, 1)));
    assert_eq!(topo.primary_timeline(), Some(1));
    assert_eq!(
        topo.latest_position(),
        Some(Position {
            timeline: 1,
            lsn: 100
        })
    );
}

#[test]
fn a_standby_serves_reads_once_seen_within_the_primary_history() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(2, settings());
    see(&mut topo, &clock, 0, 0, primary(1, 100));
    // Seen before any primary position taken after it: not yet.
    see(&mut topo, &clock, 1, 2, standby(100));
    assert_eq!(
        topo.exclusion(1, clock.t(3)),
        Some(Exclusion::AwaitingReplay)
    );
    assert!(topo.readable_standbys().is_empty());
    // A primary position taken after the standby's answer, not behind it: it follows.
    see(&mut topo, &clock, 0, 4, primary(1, 100));
    assert_eq!(topo.exclusion(1, clock.t(5)), None);
    assert_eq!(topo.readable_standbys(), &[1]);
}

#[test]
fn a_standby_answer_overlapping_the_primary_answer_proves_nothing() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(2, settings());
    see(&mut topo, &clock, 0, 0, primary(1, 100));
    // The standby's probe ran 10..20 ms; the primary's started at 15 ms, when the standby
    // may already have replayed more than the primary had then: no verdict.
    topo.observed(1, clock.t(10), standby(150), clock.t(20));
    topo.observed(0, clock.t(15), primary(1, 120), clock.t(16));
    assert_eq!(
        topo.exclusion(1, clock.t(21)),
        Some(Exclusion::AwaitingReplay)
    );
    // A primary answer after the standby's: 150 past 120 would mean divergence, but the
    // primary has moved on to 160.
    topo.observed(0, clock.t(25), primary(1, 160), clock.t(26));
    assert_eq!(topo.exclusion(1, clock.t(27)), None);
}

#[test]
fn lag_is_the_age_of_the_oldest_primary_position_not_replayed() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    // The primary moves on; standby 1 stays at 100, standby 2 follows.
    for (i, lsn) in [(1u64, 200u64), (2, 300), (3, 400)] {
        see(&mut topo, &clock, 0, i * 1000, primary(1, lsn));
        see(&mut topo, &clock, 2, i * 1000 + 10, standby(lsn));
    }
    see(&mut topo, &clock, 1, 3_500, standby(100));
    let lag = topo.hosts[1].lag.expect("a lag");
    // It lacks what the primary had at 1000 ms; seen at 3500 ms.
    assert_eq!(lag, Duration::from_millis(2_500));
    assert_eq!(topo.hosts[2].lag, Some(Duration::ZERO));
    assert_eq!(topo.exclusion(1, clock.t(3_502)), None);
    // Still at 100 eleven seconds later: excluded.
    see(&mut topo, &clock, 1, 12_000, standby(100));
    assert!(matches!(
        topo.exclusion(1, clock.t(12_002)),
        Some(Exclusion::Lagging(lag)) if lag > Duration::from_secs(10)
    ));
    assert_eq!(topo.readable_standbys(), &[2]);
    // Caught up: back.
    see(&mut topo, &clock, 1, 12_100, standby(400));
    see(&mut topo, &clock, 0, 12_200, primary(1, 400));
    assert_eq!(topo.readable_standbys(), &[1, 2]);
}

#[test]
fn lag_stays_known_beyond_the_recent_samples() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 0);
    // A primary position every 10 ms for 20 s (2000 samples, past the recent window).
    for i in 1..=2_000u64 {
        see(&mut topo, &clock, 0, i * 10, primary(1, i));
    }
    see(&mut topo, &clock, 1, 20_001, standby(0));
    let lag = topo.hosts[1].lag.expect("a lag");
    assert!(lag >= Duration::from_secs(19), "{lag:?}");
    assert!(matches!(
        topo.exclusion(1, clock.t(20_003)),
        Some(Exclusion::Lagging(_))
    ));
}

#[test]
fn an_idle_cluster_has_no_lag() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    for i in 1..=30u64 {
        see(&mut topo, &clock, 0, i * 1000, primary(1, 100));
        see(&mut topo, &clock, 1, i * 1000 + 10, standby(100));
    }
    assert_eq!(topo.hosts[1].lag, Some(Duration::ZERO));
    assert_eq!(topo.exclusion(1, clock.t(30_020)), None);
}

#[test]
fn max_replica_lag_off_never_excludes() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(
        2,
        Settings {
            max_replica_lag: None,
            ..settings()
        },
    );
    see(&mut topo, &clock, 0, 0, primary(1, 100));
    see(&mut topo, &clock, 1, 2, standby(100));
    see(&mut topo, &clock, 0, 4, primary(1, 100));
    see(&mut topo, &clock, 0, 100_000, primary(1, 900));
    see(&mut topo, &clock, 1, 100_002, standby(100));
    assert_eq!(topo.exclusion(1, clock.t(100_004)), None);
}

#[test]
fn the_primary_is_lost_when_its_probe_fails_and_a_promoted_standby_takes_over() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let (_, epoch) = topo.primary().unwrap();
    topo.failed(0, clock.t(10), HostFailure::Refused);
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    assert!(topo.in_failover(clock.t(11)));
    assert!(
        !topo.in_failover(clock.t(10 + 31_000)),
        "remembered for failover_timeout"
    );
    // Standbys keep serving reads meanwhile.
    assert_eq!(topo.readable_standbys(), &[1, 2]);
    // Host 1 is promoted (new timeline).
    see(&mut topo, &clock, 1, 20, primary(2, 110));
    let (p, new_epoch) = topo.primary().unwrap();
    assert_eq!(p, 1);
    assert!(new_epoch > epoch);
    assert_eq!(topo.primary_timeline(), Some(2));
    // Host 2 must show it follows the new primary.
    assert_eq!(
        topo.exclusion(2, clock.t(21)),
        Some(Exclusion::AwaitingReplay)
    );
    see(&mut topo, &clock, 2, 30, standby(110));
    see(&mut topo, &clock, 1, 40, primary(2, 110));
    assert_eq!(topo.readable_standbys(), &[2]);
}

#[test]
fn a_standby_past_the_new_primary_has_diverged() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    topo.failed(0, clock.t(10), HostFailure::Refused);
    // Host 1 is promoted at 110; host 2 had replayed the old primary to 150.
    see(&mut topo, &clock, 1, 20, primary(2, 110));
    see(&mut topo, &clock, 2, 30, standby(150));
    see(&mut topo, &clock, 1, 40, primary(2, 120));
    assert_eq!(topo.exclusion(2, clock.t(41)), Some(Exclusion::Diverged));
    // The new primary passes 150; the frozen standby stays out.
    see(&mut topo, &clock, 1, 50, primary(2, 200));
    see(&mut topo, &clock, 2, 60, standby(150));
    see(&mut topo, &clock, 1, 70, primary(2, 210));
    assert_eq!(topo.exclusion(2, clock.t(71)), Some(Exclusion::Diverged));
    // Rebuilt and replaying the new history: back.
    see(&mut topo, &clock, 2, 80, standby(210));
    see(&mut topo, &clock, 1, 90, primary(2, 210));
    assert_eq!(topo.exclusion(2, clock.t(91)), None);
}

#[test]
fn a_standby_on_another_timeline_serves_no_reads() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let mut obs = standby(100);
    obs.timeline = Some(7);
    see(&mut topo, &clock, 1, 10, obs);
    assert_eq!(
        topo.exclusion(1, clock.t(12)),
        Some(Exclusion::OtherTimeline {
            standby: 7,
            primary: 1
        })
    );
}

#[test]
fn two_writable_hosts_refuse_writes_until_one_is_gone() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    // Host 1 promoted while host 0 still runs.
    let followup = topo.observed(1, clock.t(10), primary(2, 105), clock.t(11));
    assert_eq!(followup.reprobe, vec![0, 1], "both are re-probed at once");
    assert_eq!(
        topo.primary(),
        Err(NoPrimary::SplitBrain((0, Some(1)), (1, Some(2))))
    );
    assert!(topo.in_failover(clock.t(12)));
    // Reads go on on the remaining standby.
    assert_eq!(topo.readable_standbys(), &[2]);
    assert_eq!(topo.exclusion(0, clock.t(12)), Some(Exclusion::SplitBrain));
    // The old primary is stopped: writes resume on the promoted one.
    topo.failed(0, clock.t(20), HostFailure::Refused);
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
}

#[test]
fn split_brain_resolves_when_one_host_turns_read_only() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    see(&mut topo, &clock, 1, 10, primary(2, 105));
    assert!(matches!(topo.primary(), Err(NoPrimary::SplitBrain(..))));
    let mut demoted = primary(1, 100);
    demoted.role = ServerRole::ReadOnlyPrimary;
    see(&mut topo, &clock, 0, 20, demoted);
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
}

#[test]
fn highest_timeline_is_opt_in() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(
        2,
        Settings {
            split_brain: SplitBrainPolicy::HighestTimeline,
            ..settings()
        },
    );
    see(&mut topo, &clock, 0, 0, primary(1, 100));
    see(&mut topo, &clock, 1, 10, primary(2, 105));
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
    // Equal timelines: refused all the same.
    let mut topo = TopologyState::new(
        2,
        Settings {
            split_brain: SplitBrainPolicy::HighestTimeline,
            ..settings()
        },
    );
    see(&mut topo, &clock, 0, 0, primary(3, 100));
    see(&mut topo, &clock, 1, 10, primary(3, 105));
    assert!(matches!(topo.primary(), Err(NoPrimary::SplitBrain(..))));
}

#[test]
fn a_primary_that_answers_read_only_is_forgotten() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let (_, epoch) = topo.primary().unwrap();
    topo.primary_demoted(epoch + 1, clock.t(10));
    assert!(
        topo.primary().is_ok(),
        "a report about an older epoch is ignored"
    );
    topo.primary_demoted(epoch, clock.t(10));
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    assert_eq!(
        topo.next_probe(0, clock.t(11)),
        clock.t(11),
        "probed again at once"
    );
}

#[test]
fn a_suspect_primary_stays_primary_until_its_probe_fails() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let (_, epoch) = topo.primary().unwrap();
    assert_eq!(topo.primary_suspect(epoch), Some(0));
    assert_eq!(topo.primary(), Ok((0, epoch)));
    assert_eq!(topo.next_probe(0, clock.t(5)), clock.t(5));
    see(&mut topo, &clock, 0, 6, primary(1, 100));
    assert_eq!(
        topo.primary(),
        Ok((0, epoch)),
        "it answered: nothing changes"
    );
}

#[test]
fn failed_hosts_back_off_with_jitter_up_to_the_retry_interval() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let mut previous = Duration::ZERO;
    for i in 0..12u64 {
        let at = clock.t(100 + i * 100_000);
        topo.probe_started(2, at);
        topo.failed(2, at, HostFailure::Refused);
        let delay = topo.next_probe(2, at) - at;
        assert!(delay <= Duration::from_secs_f64(30.0 * 1.25), "{delay:?}");
        if i < 5 {
            assert!(
                delay > previous.mul_f64(1.2),
                "{delay:?} after {previous:?}"
            );
        }
        previous = delay;
    }
    assert!(previous >= Duration::from_secs_f64(30.0 * 0.75));
    // While a primary is awaited every host is tried at the failover pace.
    topo.failed(0, clock.t(2_000_000), HostFailure::Refused);
    topo.want_primary(clock.t(2_000_000));
    let at = clock.t(2_000_000);
    topo.probe_started(2, at);
    topo.failed(2, at, HostFailure::Refused);
    assert!(topo.next_probe(2, at) - at <= Duration::from_millis(250));
}

#[test]
fn a_host_that_never_answers_is_excluded_after_connect_timeout() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    topo.probe_started(2, clock.t(10));
    assert_eq!(topo.exclusion(2, clock.t(5_000)), None);
    assert_eq!(
        topo.exclusion(2, clock.t(10_011)),
        Some(Exclusion::NotAnswering)
    );
    topo.tick(clock.t(10_011));
    assert_eq!(topo.readable_standbys(), &[1]);
}

#[test]
fn standbys_are_shared_evenly() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let mut counts = [0usize; 3];
    for _ in 0..20 {
        let host = topo.pick_standby(None, None).unwrap();
        topo.count_reader(host, false, true);
        counts[host] += 1;
    }
    assert_eq!(counts, [0, 10, 10]);
    // A floor only a caught-up standby has.
    see(&mut topo, &clock, 0, 100, primary(1, 200));
    see(&mut topo, &clock, 2, 110, standby(200));
    let floor = Position {
        timeline: 1,
        lsn: 200,
    };
    assert_eq!(topo.pick_standby(Some(floor), None), Some(2));
    assert!(!topo.has_replayed(1, floor));
    // Unbalanced: a connection on the busier one should move.
    topo.count_reader(2, false, false);
    topo.count_reader(2, false, false);
    assert!(topo.should_rebalance(1));
    assert!(!topo.should_rebalance(2));
}

#[test]
fn sessions_are_opened_to_standbys_seen_first_never_to_hosts_not_answering() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(4, settings());
    see(&mut topo, &clock, 2, 0, primary(1, 100));
    // Nothing seen but the primary: a host never probed will do.
    assert_eq!(topo.pick_session_standby(None, clock.t(2)), Some(0));
    topo.failed(0, clock.t(3), HostFailure::Refused);
    topo.probe_started(1, clock.t(3));
    see(&mut topo, &clock, 3, 4, standby(100));
    // A standby seen (even one not readable yet) before hosts never seen.
    assert_eq!(topo.pick_session_standby(None, clock.t(6)), Some(3));
    // Host 1 has not answered for longer than connect_timeout.
    assert_eq!(topo.pick_session_standby(Some(3), clock.t(20_000)), None);
}

#[test]
fn a_write_is_covered_by_the_first_primary_position_taken_after_it() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let acknowledged = clock.t(50);
    assert_eq!(topo.position_since(acknowledged), None);
    topo.want_sample(acknowledged);
    assert!(
        topo.next_probe(0, clock.t(51)) <= clock.t(51),
        "the primary is probed at once"
    );
    see(&mut topo, &clock, 0, 60, primary(1, 180));
    assert_eq!(
        topo.position_since(acknowledged),
        Some(Position {
            timeline: 1,
            lsn: 180
        })
    );
    // An idle primary: the same position confirmed later still covers a later write.
    see(&mut topo, &clock, 0, 90, primary(1, 180));
    assert!(topo.position_since(clock.t(80)).is_some());
}

#[test]
fn prefer_standby_falls_back_to_any_server_after_a_round() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(
        2,
        Settings {
            target: TargetSessionAttrs::PreferStandby,
            ..settings()
        },
    );
    topo.failed(0, clock.t(0), HostFailure::Refused);
    see(&mut topo, &clock, 1, 0, primary(1, 100));
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    assert!(topo.fall_back());
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
    // A standby matches at once.
    let mut topo = TopologyState::new(
        2,
        Settings {
            target: TargetSessionAttrs::PreferStandby,
            ..settings()
        },
    );
    see(&mut topo, &clock, 1, 0, standby(100));
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
}

#[test]
fn the_error_lists_every_host_without_the_password() {
    let cs: crate::ConnectionString = "postgres://u:S3cret@a:1,b:2,[::1]:3/db".parse().unwrap();
    let error = super::DiscoveryError {
        target: cs.target_session_attrs(),
        hosts: cs
            .hosts()
            .iter()
            .cloned()
            .zip([
                HostFailure::Refused,
                HostFailure::TimedOut,
                HostFailure::InRecovery,
            ])
            .collect(),
        waited: None,
        split_brain: None,
    };
    assert_eq!(
        error.to_string(),
        "no host matched target_session_attrs=read-write: a:1 (connection refused), \
         b:2 (timed out), [::1]:3 (in recovery)"
    );
    let split = super::DiscoveryError {
        split_brain: Some(Box::new((
            (cs.hosts()[0].clone(), Some(1)),
            (cs.hosts()[1].clone(), Some(2)),
        ))),
        ..error
    };
    assert!(split.is_split_brain());
    assert_eq!(
        split.to_string(),
        "split brain: two writable hosts, a:1 (timeline 1) and b:2 (timeline 2); writes are \
         refused until one is stopped or demoted"
    );
}

#[test]
fn target_session_attrs_match_libpq() {
    use super::state::matches_target;
    use ServerRole::*;
    use TargetSessionAttrs as T;
    let table = [
        (T::Any, [true, true, true]),
        (T::ReadWrite, [true, false, false]),
        (T::Primary, [true, true, false]),
        (T::ReadOnly, [false, true, true]),
        (T::Standby, [false, false, true]),
        (T::PreferStandby, [false, false, true]),
    ];
    for (target, expected) in table {
        let got = [Primary, ReadOnlyPrimary, Standby].map(|role| matches_target(target, role));
        assert_eq!(got, expected, "{target}");
    }
    assert_eq!(
        HostFailure::mismatch(T::ReadWrite, Standby),
        HostFailure::InRecovery
    );
    assert_eq!(
        HostFailure::mismatch(T::ReadWrite, ReadOnlyPrimary),
        HostFailure::ReadOnly
    );
    assert_eq!(
        HostFailure::mismatch(T::Standby, Primary),
        HostFailure::NotStandby
    );
    assert_eq!(
        HostFailure::mismatch(T::ReadOnly, Primary),
        HostFailure::ReadWrite
    );
}

#[test]
fn a_primary_whose_probe_hangs_is_lost_after_connect_timeout() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    // The primary's network goes silent: its probe never returns.
    topo.probe_started(0, clock.t(100));
    topo.tick(clock.t(5_000));
    assert!(topo.primary().is_ok(), "not before connect_timeout");
    topo.tick(clock.t(10_200));
    assert_eq!(topo.primary(), Err(NoPrimary::Unknown));
    assert_eq!(
        topo.hosts[0].failure.as_ref().map(|(_, f)| f.clone()),
        Some(HostFailure::TimedOut)
    );
    // A promoted standby is then the primary, not a split brain with the silent one.
    see(&mut topo, &clock, 1, 10_300, primary(2, 120));
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
    // The hung probe ends late with the old answer: too old to count.
    topo.observed(0, clock.t(100), primary(1, 100), clock.t(11_000));
    assert_eq!(topo.primary().map(|(p, _)| p), Ok(1));
}

#[test]
fn writes_wait_until_every_host_was_seen_once() {
    let clock = Clock::new();
    let mut topo = TopologyState::new(3, settings());
    see(&mut topo, &clock, 0, 0, primary(1, 100));
    assert!(topo.primary().is_ok());
    assert!(!topo.all_seen_once());
    see(&mut topo, &clock, 1, 1, standby(100));
    topo.failed(2, clock.t(2), HostFailure::Refused);
    assert!(topo.all_seen_once());
}

#[test]
fn during_a_split_brain_a_standby_of_either_writable_host_serves_reads() {
    let clock = Clock::new();
    let mut topo = healthy(&clock, 100);
    let mut on_two = standby(105);
    on_two.timeline = Some(2);
    see(&mut topo, &clock, 1, 10, primary(2, 105));
    see(&mut topo, &clock, 2, 20, on_two);
    see(&mut topo, &clock, 0, 30, primary(1, 100));
    assert!(matches!(topo.primary(), Err(NoPrimary::SplitBrain(..))));
    assert_eq!(topo.exclusion(2, clock.t(31)), None);
}
