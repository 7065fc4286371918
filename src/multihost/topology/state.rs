//! What the process knows of every host of one connection string, and what follows from
//! it: which host is the primary, which standbys may serve reads, how far behind each is.
//!
//! Plain data and functions: no I/O, no threads, no clock (every call is given `now`).
//! The shells (the sync connection's host workers, later the async tasks) probe the hosts
//! and report here; connections ask here where a statement may go.
//!
//! # The rules
//!
//! - **Primary.** The host last observed writable (for `target_session_attrs=read-write`;
//!   other targets: the host last observed matching). It is lost when a probe of it fails,
//!   when it is observed read-only or in recovery, or when a connection reports that it
//!   answered 25006. Every change of primary (or its loss) bumps the *epoch*; a session
//!   opened under an older epoch is stale.
//! - **Split brain.** Two hosts observed writable, neither having failed or been observed
//!   otherwise since: writes are refused (naming both) until one of them is seen failing or
//!   read-only; both are re-probed at once. With `split_brain=highest-timeline` (opt-in) the
//!   one on the newer timeline is the primary instead.
//! - **Lag.** Each probe of the primary records a sample (when it was taken, the WAL insert
//!   position). A standby that has replayed the newest sample has no lag; otherwise its lag
//!   is the time since the oldest sample it has not replayed was taken (a lower bound of how
//!   old its data is, exact to one probe interval). A standby whose lag exceeds
//!   `max_replica_lag` serves no reads until it catches up.
//! - **Following the primary.** Whenever a primary is found (at start and after every
//!   failover) each standby serves reads only once it has been seen at or past the new
//!   primary's first position and not past a primary position taken after it. A standby
//!   seen *past* such a position (impossible for a standby of that primary) has diverged: it
//!   followed an old timeline too far, or belongs to another cluster; it serves no reads
//!   until it is seen elsewhere and within the primary's history again.
//! - **Backoff.** A host that fails is probed again after 250 ms, doubling up to
//!   `replica_retry_interval`, with ±25 % jitter; it serves nothing until a probe succeeds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{HostFailure, ServerRole};
use crate::multihost::position::Position;
use crate::multihost::url::{ConnectionString, SplitBrainPolicy, TargetSessionAttrs};

/// The first delay before re-probing a failed host; it doubles per failure.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// How often hosts are probed while a primary is awaited (a failover is in progress).
pub(crate) const FAILOVER_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often hosts are probed while some connection waits for a standby to catch up with
/// its writes (read-your-writes) or for a fresh primary position.
pub(crate) const CATCH_UP_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a demand for fast probing lasts without being renewed.
const DEMAND_TTL: Duration = Duration::from_secs(1);
/// Recent primary samples kept (every distinct position).
const RECENT_SAMPLES: usize = 256;
/// Older primary samples are kept one per this step ...
const COARSE_STEP: Duration = Duration::from_secs(1);
/// ... up to this many (an hour): lag is known exactly to one step up to an hour.
const COARSE_SAMPLES: usize = 3600;

/// What a probe of one host found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Observation {
    pub(crate) role: ServerRole,
    /// The timeline, when the server tells it (always for a primary; for a standby only
    /// when the role may read `pg_stat_wal_receiver`).
    pub(crate) timeline: Option<u32>,
    /// Primary: the WAL insert position. Standby: the replay position.
    pub(crate) lsn: Option<u64>,
    /// Standby: how far it has received.
    pub(crate) receive_lsn: Option<u64>,
    /// Standby: the commit time of the last replayed transaction (seconds since the Unix
    /// epoch), as the server reports it.
    pub(crate) replay_timestamp: Option<f64>,
}

/// Why a host serves no reads (or no writes) right now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exclusion {
    /// Never probed successfully yet.
    Unknown,
    /// Its last probe (or a statement on it) failed.
    Down(HostFailure),
    /// Its probe has been running longer than `connect_timeout`.
    NotAnswering,
    /// It is not a standby.
    NotStandby,
    /// It lags more than `max_replica_lag`.
    Lagging(Duration),
    /// It was seen past the primary's position: it follows another history.
    Diverged,
    /// After a change of primary, it has not yet been seen replaying anything new.
    AwaitingReplay,
    /// It is on another timeline than the primary.
    OtherTimeline {
        /// The standby's timeline.
        standby: u32,
        /// The primary's timeline.
        primary: u32,
    },
    /// It is one of two writable hosts (split brain).
    SplitBrain,
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::Unknown => f.write_str("not probed yet"),
            Exclusion::Down(failure) => write!(f, "down ({failure})"),
            Exclusion::NotAnswering => f.write_str("not answering"),
            Exclusion::NotStandby => f.write_str("not a standby"),
            Exclusion::Lagging(lag) => write!(f, "lagging {:.1}s", lag.as_secs_f64()),
            Exclusion::Diverged => f.write_str("diverged from the primary"),
            Exclusion::AwaitingReplay => f.write_str("not yet replaying the new primary"),
            Exclusion::OtherTimeline { standby, primary } => {
                write!(f, "on timeline {standby}, the primary on {primary}")
            }
            Exclusion::SplitBrain => f.write_str("split brain"),
        }
    }
}

/// What the process knows of one host.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostState {
    /// The last successful observation and when its probe started.
    pub(crate) seen: Option<(Instant, Observation)>,
    /// When the probe of the last successful observation ended: the server's answer was
    /// taken between the start and this.
    seen_end: Option<Instant>,
    /// The last failure, if it is newer than the last observation.
    pub(crate) failure: Option<(Instant, HostFailure)>,
    /// Consecutive failures (for the backoff).
    failures: u32,
    /// Not to be probed (and not to be used) before then.
    retry_at: Option<Instant>,
    /// A probe started then and has not reported yet.
    pub(crate) probing_since: Option<Instant>,
    /// When the last probe started (successful or not).
    last_probe: Option<Instant>,
    /// Not yet seen within the current primary's history (see the module docs).
    awaiting: bool,
    /// Seen past a later primary position, at this replay position.
    diverged_at: Option<u64>,
    /// Its lag as of its last observation.
    pub(crate) lag: Option<Duration>,
    /// Connections of this process reading from it.
    pub(crate) readers: usize,
    /// Connections of this process opening a session to it to read from it.
    pub(crate) opening: usize,
}

impl HostState {
    fn role(&self) -> Option<ServerRole> {
        match (&self.seen, &self.failure) {
            (Some(_), Some(_)) | (None, _) => None,
            (Some((_, obs)), None) => Some(obs.role),
        }
    }
}

/// Two hosts that are both writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitBrain {
    pub(crate) hosts: (usize, usize),
}

/// Why a statement that needs the primary cannot have one now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoPrimary {
    /// No host is known to be the primary.
    Unknown,
    /// Two hosts are writable: `(host, timeline)` each.
    SplitBrain((usize, Option<u32>), (usize, Option<u32>)),
}

/// What the shell should do after reporting an observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Followup {
    /// Probe these hosts again at once.
    pub(crate) reprobe: Vec<usize>,
}

/// The settings of one connection string that the topology needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) target: TargetSessionAttrs,
    pub(crate) monitor_interval: Duration,
    pub(crate) max_replica_lag: Option<Duration>,
    pub(crate) replica_retry_interval: Duration,
    pub(crate) failover_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) split_brain: SplitBrainPolicy,
}

impl Settings {
    pub(crate) fn of(cs: &ConnectionString) -> Settings {
        Settings {
            target: cs.target_session_attrs(),
            monitor_interval: cs.monitor_interval(),
            max_replica_lag: cs.max_replica_lag(),
            replica_retry_interval: cs.replica_retry_interval(),
            failover_timeout: cs.failover_timeout(),
            connect_timeout: cs.connect_timeout(),
            split_brain: cs.split_brain(),
        }
    }
}

/// A primary position: when a probe first found the primary there, and when one last did.
#[derive(Debug, Clone, Copy)]
struct Sample {
    first: Instant,
    last: Instant,
    position: Position,
}

/// The current primary's positions over time: every distinct one recently, one per
/// [`COARSE_STEP`] for the last hour.
#[derive(Debug, Default)]
struct Samples {
    recent: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
    first: Option<Position>,
}

impl Samples {
    fn clear(&mut self) {
        *self = Samples::default();
    }

    fn latest(&self) -> Option<&Sample> {
        self.recent.back()
    }

    fn push(&mut self, at: Instant, position: Position) {
        self.first.get_or_insert(position);
        if let Some(last) = self.recent.back_mut() {
            if at < last.last {
                return;
            }
            if last.position == position {
                last.last = at;
                return;
            }
        }
        let sample = Sample {
            first: at,
            last: at,
            position,
        };
        self.recent.push_back(sample);
        if self.recent.len() > RECENT_SAMPLES {
            self.recent.pop_front();
        }
        if self
            .coarse
            .back()
            .is_none_or(|c| c.first + COARSE_STEP <= at)
        {
            self.coarse.push_back(sample);
            if self.coarse.len() > COARSE_SAMPLES {
                self.coarse.pop_front();
            }
        }
    }

    /// When the primary first had WAL that a server replayed up to `lsn` lacks.
    fn oldest_missing(&self, lsn: u64) -> Option<Instant> {
        let find = |q: &VecDeque<Sample>| q.iter().find(|s| s.position.lsn > lsn).map(|s| s.first);
        match (find(&self.coarse), find(&self.recent)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The shared knowledge of one connection string's hosts.
#[derive(Debug)]
pub(crate) struct TopologyState {
    pub(crate) settings: Settings,
    pub(crate) hosts: Vec<HostState>,
    primary: Option<usize>,
    epoch: u64,
    split_brain: Option<SplitBrain>,
    /// When the last primary was lost (for "a failover is in progress").
    lost_at: Option<Instant>,
    ever_had_primary: bool,
    /// The current primary's positions.
    samples: Samples,
    /// Some connection waits for a primary sample taken at or after this instant.
    want_sample_after: Option<Instant>,
    /// Some connection waits for standbys to catch up (until then).
    want_catch_up_until: Option<Instant>,
    /// Some connection waits for a primary (until then).
    want_primary_until: Option<Instant>,
    /// Bumped whenever something that routing depends on changes (primary, epoch, split
    /// brain, the set of standbys that may serve reads): connections re-check only then.
    generation: u64,
    /// The standbys that may serve reads, as of the last change.
    eligible: Vec<usize>,
}

impl TopologyState {
    pub(crate) fn new(hosts: usize, settings: Settings) -> TopologyState {
        TopologyState {
            settings,
            hosts: vec![HostState::default(); hosts],
            primary: None,
            epoch: 0,
            split_brain: None,
            lost_at: None,
            ever_had_primary: false,
            samples: Samples::default(),
            want_sample_after: None,
            want_catch_up_until: None,
            want_primary_until: None,
            generation: 0,
            eligible: Vec::new(),
        }
    }

    // ---- what connections ask ----------------------------------------------------------

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current primary and its epoch, if one is known and writes may go to it.
    pub(crate) fn primary(&self) -> Result<(usize, u64), NoPrimary> {
        if let Some(SplitBrain { hosts: (a, b) }) = self.split_brain {
            return Err(NoPrimary::SplitBrain(
                (a, self.timeline_of(a)),
                (b, self.timeline_of(b)),
            ));
        }
        self.primary
            .map(|p| (p, self.epoch))
            .ok_or(NoPrimary::Unknown)
    }

    /// The primary's timeline, if known.
    pub(crate) fn primary_timeline(&self) -> Option<u32> {
        self.samples.latest().map(|s| s.position.timeline)
    }

    fn timeline_of(&self, host: usize) -> Option<u32> {
        self.hosts[host].seen.and_then(|(_, obs)| obs.timeline)
    }

    /// A primary was known and was lost less than `failover_timeout` ago (or two hosts are
    /// writable): a new one is expected.
    pub(crate) fn in_failover(&self, now: Instant) -> bool {
        if self.split_brain.is_some() {
            return true;
        }
        self.primary.is_none()
            && self.lost_at.is_some_and(|at| {
                now.saturating_duration_since(at) < self.settings.failover_timeout
            })
    }

    /// Why `host` may not serve reads now (`None`: it may).
    pub(crate) fn exclusion(&self, host: usize, now: Instant) -> Option<Exclusion> {
        let h = &self.hosts[host];
        if let Some(since) = h.probing_since {
            if now.saturating_duration_since(since) > self.settings.connect_timeout {
                return Some(Exclusion::NotAnswering);
            }
        }
        if let Some((_, failure)) = &h.failure {
            return Some(Exclusion::Down(failure.clone()));
        }
        let Some((_, obs)) = h.seen else {
            return Some(Exclusion::Unknown);
        };
        if obs.role != ServerRole::Standby {
            if let Some(SplitBrain { hosts: (a, b) }) = self.split_brain {
                if host == a || host == b {
                    return Some(Exclusion::SplitBrain);
                }
            }
            return Some(Exclusion::NotStandby);
        }
        if h.diverged_at.is_some() {
            return Some(Exclusion::Diverged);
        }
        if h.awaiting {
            return Some(Exclusion::AwaitingReplay);
        }
        if let (Some(standby), Some(primary)) = (obs.timeline, self.primary_timeline()) {
            // During a split brain a standby may follow either writable host.
            let follows_a_writable =
                self.split_brain
                    .is_some_and(|SplitBrain { hosts: (a, b) }| {
                        self.timeline_of(a) == Some(standby) || self.timeline_of(b) == Some(standby)
                    });
            if standby != primary && !follows_a_writable {
                return Some(Exclusion::OtherTimeline { standby, primary });
            }
        }
        if let (Some(max), Some(lag)) = (self.settings.max_replica_lag, h.lag) {
            if lag > max {
                return Some(Exclusion::Lagging(lag));
            }
        }
        None
    }

    /// The standbys that may serve reads now, in host order.
    pub(crate) fn readable_standbys(&self) -> &[usize] {
        &self.eligible
    }

    /// Whether `host` has replayed everything up to `floor`.
    pub(crate) fn has_replayed(&self, host: usize, floor: Position) -> bool {
        let Some((_, obs)) = self.hosts[host].seen else {
            return false;
        };
        let Some(lsn) = obs.lsn else {
            return false;
        };
        // A standby that does not tell its timeline is on the primary's (or it would be
        // excluded as diverged or awaiting replay); the floor must be on it too.
        let timeline = obs.timeline.or(self.primary_timeline());
        timeline == Some(floor.timeline) && lsn >= floor.lsn
    }

    /// A readable standby for a connection that has none (or leaves `current`): the one
    /// with the fewest readers of this process (first in host order on a tie), among those
    /// that have replayed `floor`.
    pub(crate) fn pick_standby(
        &self,
        floor: Option<Position>,
        avoid: Option<usize>,
    ) -> Option<usize> {
        self.eligible
            .iter()
            .copied()
            .filter(|&i| Some(i) != avoid)
            .filter(|&i| floor.is_none_or(|f| self.has_replayed(i, f)))
            .min_by_key(|&i| self.hosts[i].readers + self.hosts[i].opening)
    }

    /// A host to open a standby session to ahead of reads: a host seen as a standby (not
    /// down, not diverged) with the fewest readers; when none has been seen yet, a host
    /// never probed that is not the primary. It may not serve reads yet (it may be catching
    /// up): reads check that when they run. `avoid`: a session this connection already has
    /// and wants to leave.
    pub(crate) fn pick_session_standby(&self, avoid: Option<usize>, now: Instant) -> Option<usize> {
        let candidates = |seen: bool| {
            (0..self.hosts.len())
                .filter(move |&i| Some(i) != self.primary && Some(i) != avoid)
                .filter(move |&i| self.session_candidate(i, seen, now))
                .min_by_key(|&i| self.hosts[i].readers + self.hosts[i].opening)
        };
        candidates(true).or_else(|| candidates(false))
    }

    /// Whether `host`, which cannot serve reads now, is a standby that may once it has
    /// caught up or been seen to follow the primary: seen as a standby, answering, not down,
    /// not diverged.
    pub(crate) fn may_serve_reads_later(&self, host: usize, now: Instant) -> bool {
        Some(host) != self.primary && self.session_candidate(host, true, now)
    }

    /// Whether a session to `host` may be opened ahead of reads: answering, not down, not
    /// diverged, and seen as a standby (`seen`) or never seen (`!seen`).
    fn session_candidate(&self, host: usize, seen: bool, now: Instant) -> bool {
        let h = &self.hosts[host];
        let answering = h.probing_since.is_none_or(|since| {
            now.saturating_duration_since(since) <= self.settings.connect_timeout
        });
        h.failure.is_none()
            && h.diverged_at.is_none()
            && answering
            && match h.seen {
                Some((_, obs)) => seen && obs.role == ServerRole::Standby,
                None => !seen,
            }
    }

    /// Whether a connection reading from `current` should move to another standby to even
    /// out the readers: it has at least two more readers than a readable standby, counting
    /// the sessions being opened to it (so that connections already on their way there are
    /// not followed by more).
    pub(crate) fn should_rebalance(&self, current: usize) -> bool {
        let load = |i: usize| self.hosts[i].readers + self.hosts[i].opening;
        let mine = self.hosts[current].readers;
        self.eligible
            .iter()
            .any(|&i| i != current && load(i) + 1 < mine)
    }

    /// A connection of this process reads from `host` (`opening`: is opening a session to
    /// it), or stops (`add: false`).
    pub(crate) fn count_reader(&mut self, host: usize, opening: bool, add: bool) {
        let h = &mut self.hosts[host];
        let count = if opening {
            &mut h.opening
        } else {
            &mut h.readers
        };
        *count = if add {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
    }

    /// Whether the connection string has a host that may serve reads now (and, with
    /// `floor`, has replayed it).
    pub(crate) fn readable_standby(&self, floor: Option<Position>) -> Option<usize> {
        self.pick_standby(floor, None)
    }

    /// The position of the current primary from a probe that started at or after `since`:
    /// it covers every write acknowledged before `since`.
    pub(crate) fn position_since(&self, since: Instant) -> Option<Position> {
        self.samples
            .latest()
            .filter(|s| s.last >= since)
            .map(|s| s.position)
    }

    /// The newest primary position, if any.
    pub(crate) fn latest_position(&self) -> Option<Position> {
        self.samples.latest().map(|s| s.position)
    }

    /// `prefer-standby` with no standby after a full round: libpq then accepts any server.
    /// Takes the first host (in the connection string's order) that answered. Returns
    /// whether a main host was chosen.
    pub(crate) fn fall_back(&mut self) -> bool {
        if self.settings.target != TargetSessionAttrs::PreferStandby || self.primary.is_some() {
            return false;
        }
        match (0..self.hosts.len()).find(|&i| self.hosts[i].role().is_some()) {
            Some(host) => {
                self.set_primary(host);
                true
            }
            None => false,
        }
    }

    // ---- what connections ask for ------------------------------------------------------

    /// Some connection needs a primary position taken at or after `after`.
    pub(crate) fn want_sample(&mut self, after: Instant) {
        self.want_sample_after = Some(self.want_sample_after.map_or(after, |t| t.max(after)));
    }

    /// Some connection waits for the standbys to catch up with its writes.
    pub(crate) fn want_catch_up(&mut self, now: Instant) {
        self.want_catch_up_until = Some(now + DEMAND_TTL);
    }

    /// Some connection waits for a primary.
    pub(crate) fn want_primary(&mut self, now: Instant) {
        self.want_primary_until = Some(now + self.settings.failover_timeout);
    }

    // ---- the probe schedule ------------------------------------------------------------

    /// When `host` should be probed next (`now` or earlier: at once).
    pub(crate) fn next_probe(&self, host: usize, now: Instant) -> Instant {
        let h = &self.hosts[host];
        if h.probing_since.is_some() {
            // Running: the worker reports first.
            return now + self.settings.monitor_interval;
        }
        let Some(last) = h.last_probe else {
            return now;
        };
        let failover = self.want_primary_until.is_some_and(|t| t > now)
            && (self.primary.is_none() || self.split_brain.is_some());
        if let Some(retry_at) = h.retry_at {
            // While a primary is awaited, every host is tried at the failover pace (a
            // former primary may be back).
            return if failover {
                retry_at.min(last + FAILOVER_PROBE_INTERVAL)
            } else {
                retry_at
            };
        }
        let catch_up = self.want_catch_up_until.is_some_and(|t| t > now);
        let interval = if catch_up {
            CATCH_UP_PROBE_INTERVAL
        } else if failover {
            FAILOVER_PROBE_INTERVAL
        } else {
            self.settings.monitor_interval
        };
        let mut due = last + interval;
        if self.primary == Some(host) {
            if let Some(after) = self.want_sample_after {
                if last < after {
                    due = due.min(after);
                }
            }
        }
        due
    }

    /// A probe of `host` starts.
    pub(crate) fn probe_started(&mut self, host: usize, now: Instant) {
        let h = &mut self.hosts[host];
        h.probing_since = Some(now);
        h.last_probe = Some(now);
    }

    // ---- what probes and connections report --------------------------------------------

    /// A probe of `host` that started at `started` found `obs`; `now` is when it ended.
    pub(crate) fn observed(
        &mut self,
        host: usize,
        started: Instant,
        obs: Observation,
        now: Instant,
    ) -> Followup {
        let mut followup = Followup::default();
        {
            let h = &mut self.hosts[host];
            h.probing_since = None;
            h.failures = 0;
            h.retry_at = None;
            // A failure reported after this probe started is newer: keep it.
            if h.failure.as_ref().is_some_and(|(at, _)| *at > started) {
                return followup;
            }
            h.failure = None;
            h.seen = Some((started, obs));
            h.seen_end = Some(now);
        }
        let writable_target = matches!(
            self.settings.target,
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
        );
        let is_main = matches_target(self.settings.target, obs.role);
        if writable_target && obs.role == ServerRole::Primary {
            let other = (0..self.hosts.len())
                .find(|&i| i != host && self.hosts[i].role() == Some(ServerRole::Primary));
            match other {
                Some(other) => self.two_writable(host, other, &mut followup),
                None => {
                    self.split_brain = None;
                    self.set_primary(host);
                }
            }
            if self.primary == Some(host) {
                if let (Some(timeline), Some(lsn)) = (obs.timeline, obs.lsn) {
                    self.sample(started, Position { timeline, lsn });
                }
            }
        } else if is_main && !writable_target {
            if self.primary.is_none() {
                self.set_primary(host);
            }
        } else {
            if self.primary == Some(host) {
                self.lose_primary(started);
            }
            self.end_split_brain_without(host, started);
        }
        if obs.role == ServerRole::Standby {
            self.update_lag(host, started);
            // It is judged against a primary position taken after it: ask for one.
            if self.hosts[host].awaiting || self.hosts[host].diverged_at.is_some() {
                self.want_sample(started);
            }
        }
        self.refresh(now);
        followup
    }

    /// A probe of `host` (or a statement on it) failed.
    pub(crate) fn failed(&mut self, host: usize, at: Instant, failure: HostFailure) {
        let retry_cap = self.settings.replica_retry_interval.max(BACKOFF_BASE);
        {
            let h = &mut self.hosts[host];
            h.probing_since = None;
            h.failures = h.failures.saturating_add(1);
            let exp = h.failures.saturating_sub(1).min(16);
            let delay = BACKOFF_BASE.saturating_mul(1 << exp).min(retry_cap);
            h.retry_at = Some(at + jitter(delay, at, host));
            h.failure = Some((at, failure));
            // Whatever it follows when it comes back must be checked again.
            h.awaiting = true;
        }
        if self.primary == Some(host) {
            self.lose_primary(at);
        }
        self.end_split_brain_without(host, at);
        self.refresh(at);
    }

    /// Probe `host` at once (its state is in doubt).
    pub(crate) fn reprobe(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        h.retry_at = None;
        h.last_probe = None;
    }

    /// A connection's session on the primary of `epoch` failed as a lost connection does.
    /// The primary is probed again at once; it stays the primary unless that probe fails.
    pub(crate) fn primary_suspect(&mut self, epoch: u64) -> Option<usize> {
        if self.epoch != epoch {
            return None;
        }
        let host = self.primary?;
        self.reprobe(host);
        Some(host)
    }

    /// Whether every host has answered or failed a probe at least once. Until then a
    /// second writable host may still be unknown (discovery returns as soon as one
    /// writable host answers): writes wait for it, so a split brain is seen before the
    /// first write, not after. A host that does not answer within `connect_timeout` counts
    /// as failed.
    pub(crate) fn all_seen_once(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.seen.is_some() || h.failure.is_some())
    }

    /// The primary of `epoch` answered that its session is read-only (25006): it was
    /// demoted. It is forgotten as primary until a probe says otherwise.
    pub(crate) fn primary_demoted(&mut self, epoch: u64, at: Instant) {
        if self.epoch != epoch {
            return;
        }
        if let Some(host) = self.primary {
            if let Some((_, obs)) = &mut self.hosts[host].seen {
                obs.role = ServerRole::ReadOnlyPrimary;
            }
            self.hosts[host].last_probe = None;
            self.lose_primary(at);
            self.refresh(at);
        }
    }

    // ---- internals ---------------------------------------------------------------------

    fn two_writable(&mut self, host: usize, other: usize, followup: &mut Followup) {
        if self.settings.split_brain == SplitBrainPolicy::HighestTimeline {
            if let (Some(a), Some(b)) = (self.timeline_of(host), self.timeline_of(other)) {
                if a != b {
                    self.split_brain = None;
                    let winner = if a > b { host } else { other };
                    self.set_primary(winner);
                    return;
                }
            }
        }
        let pair = (host.min(other), host.max(other));
        if self.split_brain.map(|s| s.hosts) != Some(pair) {
            tracing::error!(
                target: "diesel_multidb::topology",
                a = pair.0,
                b = pair.1,
                "two writable hosts (split brain): writes refused"
            );
            self.split_brain = Some(SplitBrain { hosts: pair });
            self.epoch += 1;
            self.generation += 1;
            followup.reprobe = vec![pair.0, pair.1];
        }
    }

    fn end_split_brain_without(&mut self, host: usize, at: Instant) {
        if let Some(SplitBrain { hosts: (a, b) }) = self.split_brain {
            if host == a || host == b {
                let survivor = if host == a { b } else { a };
                self.split_brain = None;
                self.primary = None;
                if self.hosts[survivor].role() == Some(ServerRole::Primary) {
                    self.set_primary(survivor);
                } else {
                    self.lose_primary(at);
                }
                self.generation += 1;
            }
        }
    }

    fn set_primary(&mut self, host: usize) {
        if self.primary == Some(host) {
            return;
        }
        self.primary = Some(host);
        self.epoch += 1;
        self.generation += 1;
        self.ever_had_primary = true;
        self.lost_at = None;
        self.samples.clear();
        tracing::info!(target: "diesel_multidb::topology", host, epoch = self.epoch, "primary found");
        // Every standby must show it follows this primary before serving reads.
        for (i, h) in self.hosts.iter_mut().enumerate() {
            h.awaiting = i != host;
            if i == host {
                h.diverged_at = None;
            }
        }
    }

    fn lose_primary(&mut self, at: Instant) {
        if let Some(host) = self.primary.take() {
            tracing::warn!(target: "diesel_multidb::topology", host, "primary lost");
            self.epoch += 1;
            self.generation += 1;
            self.lost_at = Some(at);
            self.samples.clear();
        }
    }

    fn sample(&mut self, at: Instant, position: Position) {
        self.samples.push(at, position);
        if self.want_sample_after.is_some_and(|t| t <= at) {
            self.want_sample_after = None;
        }
        let first = self.samples.first.map_or(0, |p| p.lsn);
        for i in 0..self.hosts.len() {
            let h = &mut self.hosts[i];
            let (Some((_, obs)), Some(seen_end)) = (h.seen, h.seen_end) else {
                continue;
            };
            // Only a standby answer taken before this primary answer can be compared
            // with it: the standby's probe must have ended before the primary's started.
            if obs.role != ServerRole::Standby
                || seen_end > at
                || h.failure.is_some()
                || obs.timeline.is_some_and(|t| t != position.timeline)
            {
                continue;
            }
            let Some(lsn) = obs.lsn else {
                continue;
            };
            if lsn > position.lsn {
                // Past a primary position taken after it: not a standby of this primary.
                if h.diverged_at.is_none() {
                    tracing::warn!(target: "diesel_multidb::topology", host = i, "standby past the primary: diverged");
                }
                h.diverged_at = Some(lsn);
                h.awaiting = true;
            } else if lsn >= first && h.diverged_at != Some(lsn) {
                h.diverged_at = None;
                h.awaiting = false;
            }
        }
        for i in 0..self.hosts.len() {
            self.update_lag(i, at);
        }
    }

    fn update_lag(&mut self, host: usize, now: Instant) {
        let Some((_, obs)) = self.hosts[host].seen else {
            return;
        };
        if obs.role != ServerRole::Standby {
            self.hosts[host].lag = None;
            return;
        }
        let Some(lsn) = obs.lsn else {
            self.hosts[host].lag = None;
            return;
        };
        let lag = match self.samples.latest() {
            None => None,
            Some(latest) if lsn >= latest.position.lsn => Some(Duration::ZERO),
            // It lacks what the primary had at the oldest position it has not replayed.
            Some(_) => self
                .samples
                .oldest_missing(lsn)
                .map(|at| now.saturating_duration_since(at)),
        };
        self.hosts[host].lag = lag;
    }

    /// Recomputes the readable standbys; bumps the generation when the set changes.
    fn refresh(&mut self, now: Instant) {
        let eligible: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| Some(i) != self.primary && self.exclusion(i, now).is_none())
            .collect();
        if eligible != self.eligible {
            self.eligible = eligible;
            self.generation += 1;
        }
    }

    /// Re-evaluates what depends on time alone: a probe running longer than
    /// `connect_timeout` makes its host failed (timed out: a host that silently stopped
    /// answering must not stay the primary, nor count as writable, while its worker waits);
    /// demands expire.
    pub(crate) fn tick(&mut self, now: Instant) {
        let timeout = self.settings.connect_timeout;
        for host in 0..self.hosts.len() {
            let hung = self.hosts[host]
                .probing_since
                .is_some_and(|since| now.saturating_duration_since(since) > timeout);
            if hung {
                tracing::warn!(target: "diesel_multidb::topology", host, "probe not answered within connect_timeout");
                self.failed(host, now, HostFailure::TimedOut);
            }
        }
        if self.want_catch_up_until.is_some_and(|t| t <= now) {
            self.want_catch_up_until = None;
        }
        if self.want_primary_until.is_some_and(|t| t <= now) {
            self.want_primary_until = None;
        }
        self.refresh(now);
    }
}

/// Whether a server with `role` is acceptable as the main session (libpq's
/// `target_session_attrs`).
pub(crate) fn matches_target(target: TargetSessionAttrs, role: ServerRole) -> bool {
    match target {
        TargetSessionAttrs::ReadWrite => role == ServerRole::Primary,
        TargetSessionAttrs::ReadOnly => role != ServerRole::Primary,
        TargetSessionAttrs::Primary => role != ServerRole::Standby,
        TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => {
            role == ServerRole::Standby
        }
        _ => true,
    }
}

/// ±25 % of `delay`, spread by host and time (no random source needed in the core).
fn jitter(delay: Duration, at: Instant, host: usize) -> Duration {
    let seed = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        at.hash(&mut h);
        host.hash(&mut h);
        h.finish()
    };
    let factor = 0.75 + (seed % 1000) as f64 / 2000.0;
    delay.mul_f64(factor)
}
