//! A real HA manager: a pg_auto_failover formation (a monitor plus a primary
//! and a secondary data node) on free 127.0.0.1 ports, for testing against
//! failovers nobody on this project scripted.
//!
//! * Software: `pg_autoctl` (Debian package `pg-auto-failover-cli`) and the
//!   monitor's extension for the PostgreSQL version in use (Debian package
//!   `postgresql-<major>-auto-failover`, e.g. `postgresql-15-auto-failover`).
//!   Missing ones make [`AutoFailover::start`] panic saying which.
//! * Layout: `<process dir>/ha<N>/` (see `procdir.rs` for the process
//!   directory and its reaper) holds `nmon/` (the monitor), `n1/`
//!   and `n2/` (the data nodes `node1` and `node2`), each with `data/` (its
//!   PGDATA), `autoctl.log` (`pg_autoctl run` and PostgreSQL's own log) and
//!   `xdg/` (pg_autoctl's configuration, state and pid files, through
//!   `XDG_CONFIG_HOME`, `XDG_DATA_HOME` and `XDG_RUNTIME_DIR`). Unix sockets
//!   are in `ha<N>/`. Every `pg_autoctl` runs as the server's OS user with a
//!   clean environment.
//! * The monitor and `node1` start from a copy of the harness's template data
//!   directory (so the same `pg_hba.conf`: role `app` with a password over
//!   127.0.0.1, trust for everyone else; `--skip-pg-hba` keeps pg_autoctl
//!   from editing it); `node2` is a base backup `pg_autoctl` takes itself.
//!   Everything listens on 127.0.0.1 only (`--listen 127.0.0.1` for the data
//!   nodes, `postgresql.listen_addresses` set in the monitor's pg_autoctl
//!   configuration before it runs; only while `pg_autoctl create monitor`
//!   itself runs, for well under a second, does the monitor listen on `*`).
//! * Timeouts (defaults in parentheses) so that a failover takes seconds:
//!   on the monitor `pgautofailover.health_check_period` 1000 ms (5000),
//!   `health_check_timeout` 1000 ms (5000), `health_check_max_retries` 1 (2),
//!   `health_check_retry_delay` 200 ms (2000),
//!   `node_considered_unhealthy_timeout` 2000 ms (20000),
//!   `startup_grace_period` 1000 ms (10000), `primary_demote_timeout` 3000 ms
//!   (30000); on the keepers `timeout.network_partition_timeout` 2 s (20,
//!   kept below `primary_demote_timeout` so that a primary cut off from the
//!   monitor and its standby demotes itself before the monitor gives up on
//!   it, as pg_auto_failover requires) and
//!   `timeout.prepare_promotion_walreceiver` 2 s (5). pg_auto_failover's
//!   memory-sized defaults are overridden in `postgresql.auto.conf`:
//!   `shared_buffers` 16MB (it computes gigabytes), `logging_collector` off
//!   (the server log goes to `autoctl.log`), `dynamic_shared_memory_type`
//!   mmap (nothing is left in /dev/shm when a server is SIGKILLed), and
//!   `synchronous_commit` back on: the harness template turns it off for
//!   speed, and pg_auto_failover's guarantee that an acknowledged commit
//!   survives a failover rests on it (with it off, a row written right after
//!   a switchover was missing on the node promoted by the next failover in 2
//!   of 6 runs).
//! * Failover: [`AutoFailover::kill_primary`] SIGKILLs the whole process
//!   group of the primary's node (its `pg_autoctl` supervisor and services,
//!   the postmaster and every backend), like a crashed host. Killing only
//!   PostgreSQL would not fail over: the node's keeper restarts it within a
//!   second and it carries on as the primary. The monitor then marks the
//!   node unhealthy (about 2 s), waits `primary_demote_timeout` for it to
//!   report, and has the secondary promoted; it serves writes in state
//!   `wait_primary` (no secondary left, synchronous replication off).
//! * Measured here (2 cores, tmpfs, other tests running): [`AutoFailover::start`]
//!   5.3-7 s to a healthy formation (up to 10 s with the whole suite running;
//!   monitor 0.8 s, node1 0.8 s, node2's base backup and catch-up 3-5 s);
//!   [`AutoFailover::switchover`] 2.2-5 s; [`AutoFailover::kill_primary`] to
//!   the other node promoted and writable 5.4-6.5 s (about 2 s to be declared unhealthy, 3 s of
//!   `primary_demote_timeout`, the rest state transitions at the keepers'
//!   1 s loop). Gotcha: `pg_autoctl create monitor` has no `--pghost`; it
//!   finds its server's unix socket through `PGHOST` (without it, it retries
//!   the Debian default socket directory for 3.5 s before falling back).
//! * Cleanup: each `pg_autoctl run` is its own process group, listed in
//!   `ha<N>/reap.pgids` for the shared reaper (`procdir.rs`). Dropping an
//!   [`AutoFailover`] kills the `pg_autoctl` processes, stops the servers with
//!   `pg_ctl stop -m immediate` and removes the directory; if the process
//!   dies, the reaper kills the `pg_autoctl` processes (if the group leader is
//!   still the program it recorded), sends the postmasters SIGQUIT (what
//!   `pg_ctl stop -m immediate` sends) and removes the directory. SysV shared
//!   memory left by SIGKILLed postmasters is removed on drop.

use crate::common::{
    copy_template, first_field, log_tails, multi_host_url, remove_dir_at_drop, wait_refused,
    ClusterNode, Steps,
};
use crate::pg::{app_role_setup, env, quote_literal, Env, APP_USER, COMMAND_TIMEOUT, SUPERUSER};
use crate::procdir::{encode_userinfo, reap_at_exit, Reap};
use crate::process::{lock, pick_port, run};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How long start, switchover and failover may take before panicking.
const HA_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for the monitor.
const POLL: Duration = Duration::from_millis(50);
const FORMATION: &str = "default";

/// Monitor settings (`postgresql.auto.conf` of the monitor), see the module docs.
const MONITOR_SETTINGS: &str = "\
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 200
pgautofailover.node_considered_unhealthy_timeout = 2000
pgautofailover.startup_grace_period = 1000
pgautofailover.primary_demote_timeout = 3000
";

/// Keeper settings (`pg_autoctl config set`), see the module docs.
const KEEPER_SETTINGS: [(&str, &str); 2] = [
    ("timeout.network_partition_timeout", "2"),
    ("timeout.prepare_promotion_walreceiver", "2"),
];

/// Server settings of every node, monitor included (`postgresql.auto.conf`).
const SERVER_SETTINGS: &str = "\
# --- diesel-multidb test harness (auto_failover.rs) ---
shared_buffers = '16MB'
logging_collector = off
dynamic_shared_memory_type = mmap
synchronous_commit = on
";

/// One node of the formation as the monitor reports it
/// (`pg_autoctl show state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfNodeState {
    /// pg_auto_failover node name (`node1`, `node2`).
    pub name: String,
    /// PostgreSQL port on 127.0.0.1.
    pub port: u16,
    /// The state the node's keeper last reported (`primary`, `secondary`,
    /// `wait_primary`, `catchingup`, `demoted`, ...).
    pub reported: String,
    /// The state the monitor assigned to it.
    pub assigned: String,
    /// Whether the monitor's health checks reach it.
    pub healthy: bool,
}

impl AfNodeState {
    /// Reported and assigned state are both `primary` or both `wait_primary`
    /// (or `single`): the node serves writes as far as the monitor knows.
    pub fn is_serving_primary(&self) -> bool {
        self.reported == self.assigned
            && matches!(
                self.reported.as_str(),
                "primary" | "wait_primary" | "single"
            )
    }
}

struct AfNode {
    /// `monitor`, `node1`, `node2`.
    name: &'static str,
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// `pg_autoctl run` (through runuser when root): its own process group.
    run: Mutex<Option<Child>>,
}

/// A pg_auto_failover formation: monitor + two data nodes. See the module docs.
pub struct AutoFailover {
    dir: PathBuf,
    pg_autoctl: PathBuf,
    monitor: AfNode,
    nodes: [AfNode; 2],
    /// Postmasters killed with SIGKILL, whose SysV shared memory to remove.
    killed_postmasters: Mutex<Vec<u32>>,
}

fn find_pg_autoctl(env: &Env) -> PathBuf {
    let candidates = [
        env.bin_dir.join("pg_autoctl"),
        PathBuf::from("/usr/bin/pg_autoctl"),
    ];
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    let Some(pg_autoctl) = found else {
        panic!(
            "AutoFailover: pg_autoctl not found ({} or /usr/bin/pg_autoctl); install the Debian \
             package pg-auto-failover-cli",
            env.bin_dir.join("pg_autoctl").display()
        )
    };
    let lib = env
        .bin_dir
        .parent()
        .map(|p| p.join("lib").join("pgautofailover.so"));
    if !lib.as_ref().is_some_and(|l| l.is_file()) {
        let version = env
            .bin_dir
            .parent()
            .and_then(Path::file_name)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| "<major>".to_owned());
        panic!(
            "AutoFailover: the pg_auto_failover extension for the PostgreSQL in {} is not \
             installed ({:?} missing); install the Debian package postgresql-{version}-auto-failover",
            env.bin_dir.display(),
            lib
        );
    }
    pg_autoctl
}

/// `(pid, comm)` of every process in process group `pgid`.
fn group_members(pgid: u32) -> Vec<(u32, String)> {
    let mut members = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return members;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        // After "(comm) ": state ppid pgrp ...
        let pgrp = stat[close + 1..]
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<u32>().ok());
        if pgrp == Some(pgid) {
            members.push((pid, comm));
        }
    }
    members
}

fn kill_pids(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let mut kill = Command::new("kill");
    kill.arg("-KILL").args(pids.iter().map(u32::to_string));
    // Some may have exited meanwhile: kill then fails for those only.
    let _ = run(&mut kill, COMMAND_TIMEOUT);
}

fn postmaster_pid(data: &Path) -> Option<u32> {
    fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Removes SysV shared memory segments created by `pids` that nobody is
/// attached to (PostgreSQL removes its own on any shutdown but SIGKILL).
fn remove_orphan_shm(pids: &[u32]) {
    let Ok(table) = fs::read_to_string("/proc/sysvipc/shm") else {
        return;
    };
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // key shmid perms size cpid lpid nattch ...
        let (Some(shmid), Some(cpid), Some(nattch)) = (f.get(1), f.get(4), f.get(6)) else {
            continue;
        };
        let cpid: u32 = cpid.parse().unwrap_or(0);
        if *nattch == "0" && pids.contains(&cpid) {
            let mut ipcrm = Command::new("ipcrm");
            ipcrm.args(["-m", shmid]);
            let _ = run(&mut ipcrm, COMMAND_TIMEOUT);
        }
    }
}

impl ClusterNode for AfNode {
    fn name(&self) -> &str {
        self.name
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn label(&self) -> String {
        format!("{} (port {})", self.name, self.port)
    }

    fn log(&self) -> &Path {
        &self.log
    }
}

impl AfNode {
    fn new(dir: &Path, sub: &str, name: &'static str) -> AfNode {
        let env = env();
        let node_dir = dir.join(sub);
        env.mkdir(&node_dir);
        let xdg = node_dir.join("xdg");
        env.mkdir(&xdg);
        for d in ["config", "data", "run"] {
            env.mkdir(&xdg.join(d));
        }
        AfNode {
            name,
            data: node_dir.join("data"),
            log: node_dir.join("autoctl.log"),
            dir: node_dir,
            port: pick_port(),
            run: Mutex::new(None),
        }
    }

    /// The process group of its `pg_autoctl run`, if running.
    fn pgid(&self) -> Option<u32> {
        lock(&self.run).as_ref().map(Child::id)
    }

    /// Kills every process of its `pg_autoctl run` group: all of them, or all
    /// but the `postgres` ones.
    fn kill_group(&self, including_postgres: bool) {
        let mut run = lock(&self.run);
        let Some(child) = run.as_mut() else {
            return;
        };
        let pgid = child.id();
        // Twice: a service forked while we looked is caught the second time.
        for _ in 0..2 {
            let pids: Vec<u32> = group_members(pgid)
                .into_iter()
                .filter(|(_, comm)| including_postgres || comm != "postgres")
                .map(|(pid, _)| pid)
                .collect();
            kill_pids(&pids);
        }
        let _ = child.kill();
        let _ = child.wait();
        *run = None;
    }
}

impl AutoFailover {
    /// Starts the monitor and the two data nodes, waits until `node1` is the
    /// primary and `node2` a streaming secondary, then creates role `app`
    /// (password [`APP_PASSWORD`]) on the primary and waits until the
    /// secondary has it. Takes about 5 s. Panics with the failing step and
    /// the logs if anything fails.
    pub fn start() -> AutoFailover {
        let env = env();
        let t0 = Instant::now();
        let pg_autoctl = find_pg_autoctl(env);
        let dir = env.new_dir("ha");
        // From here on, a panic drops `ha`, which stops whatever runs.
        let ha = AutoFailover {
            monitor: AfNode::new(&dir, "nmon", "monitor"),
            nodes: [
                AfNode::new(&dir, "n1", "node1"),
                AfNode::new(&dir, "n2", "node2"),
            ],
            dir,
            pg_autoctl,
            killed_postmasters: Mutex::new(Vec::new()),
        };
        let mut steps = Steps::new();

        // Monitor.
        ha.copy_template(&ha.monitor, &format!("{SERVER_SETTINGS}{MONITOR_SETTINGS}"));
        ha.autoctl_ok(
            &ha.monitor,
            "creating the monitor",
            &[
                "create",
                "monitor",
                "--pgport",
                &ha.monitor.port.to_string(),
                "--hostname",
                "127.0.0.1",
                "--skip-pg-hba",
                "--no-ssl",
            ],
        );
        steps.mark("mon-create");
        ha.autoctl_ok(
            &ha.monitor,
            "configuring the monitor",
            &["config", "set", "postgresql.listen_addresses", "127.0.0.1"],
        );
        steps.mark("mon-config");
        ha.spawn_run(&ha.monitor);
        ha.wait_until("the monitor accepts node registrations", |ha| {
            ha.try_query(
                ha.monitor.port,
                "pg_auto_failover",
                "SELECT count(*) FROM pgautofailover.formation",
            )
            .map(|_| true)
        });
        steps.mark("monitor");

        // node1: a copy of the template, becomes `single`.
        let [node1, node2] = &ha.nodes;
        ha.copy_template(node1, SERVER_SETTINGS);
        ha.create_data_node(node1);
        steps.mark("node1-create");
        ha.spawn_run(node1);
        ha.wait_until("node1 is registered and single", |ha| {
            Ok(ha
                .state_now()?
                .iter()
                .any(|s| s.name == "node1" && s.is_serving_primary()))
        });
        steps.mark("node1");

        // node2: base backup of node1, taken by pg_autoctl.
        ha.create_data_node(node2);
        steps.mark("node2-create");
        ha.spawn_run(node2);
        ha.wait_healthy();
        steps.mark("node2");

        // The password-authenticated role.
        let primary = ha.primary_port();
        for sql in &app_role_setup() {
            ha.query_one(primary, sql);
        }
        let secondary = ha
            .secondary_port()
            .expect("healthy formation has a secondary");
        ha.wait_until("role app has reached the secondary", |ha| {
            ha.try_query(
                secondary,
                "postgres",
                &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{APP_USER}'"),
            )
            .map(|n| n == "1")
        });
        steps.mark("role");
        eprintln!(
            "AutoFailover::start: monitor {}, node1 {}, node2 {}, healthy in {:.2?} ({})",
            ha.monitor.port,
            ha.nodes[0].port,
            ha.nodes[1].port,
            t0.elapsed(),
            steps.summary()
        );
        ha
    }

    /// The directory holding the formation.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The monitor's PostgreSQL port (database `pg_auto_failover`).
    pub fn monitor_port(&self) -> u16 {
        self.monitor.port
    }

    /// The ports of `node1` and `node2`.
    pub fn node_ports(&self) -> [u16; 2] {
        [self.nodes[0].port, self.nodes[1].port]
    }

    /// The formation as the monitor sees it now (what `pg_autoctl show
    /// state` prints: it reads the same `pgautofailover.current_state()`).
    /// Panics if the monitor cannot be queried.
    pub fn state(&self) -> Vec<AfNodeState> {
        self.state_now()
            .unwrap_or_else(|e| panic!("AutoFailover::state: asking the monitor failed: {e}"))
    }

    /// The port of the node the monitor says serves as primary now. Panics
    /// if there is none (e.g. during a failover), printing the state.
    pub fn primary_port(&self) -> u16 {
        let state = self.state();
        match state.iter().find(|s| s.is_serving_primary()) {
            Some(s) => s.port,
            None => panic!("AutoFailover::primary_port: no node serves as primary: {state:?}"),
        }
    }

    /// The port of the node the monitor reports as `secondary` (reported and
    /// assigned), if any.
    pub fn secondary_port(&self) -> Option<u16> {
        self.state()
            .into_iter()
            .find(|s| s.reported == "secondary" && s.assigned == "secondary")
            .map(|s| s.port)
    }

    /// Blocks until the monitor reports one `primary` and one `secondary`
    /// (both healthy) and the primary's `pg_stat_replication` shows the
    /// secondary streaming. Panics after 60 s.
    pub fn wait_healthy(&self) {
        self.wait_until("primary + streaming secondary", |ha| {
            let state = ha.state_now()?;
            let primary = state
                .iter()
                .find(|s| s.reported == "primary" && s.assigned == "primary" && s.healthy);
            let secondary = state
                .iter()
                .any(|s| s.reported == "secondary" && s.assigned == "secondary" && s.healthy);
            let Some(primary) = primary.filter(|_| secondary) else {
                return Ok(false);
            };
            ha.try_query(
                primary.port,
                "postgres",
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .map(|n| n == "1")
        });
    }

    /// Planned switchover: `pg_autoctl perform switchover`, then waits until
    /// the monitor reports the other node as serving primary and it accepts
    /// writes. Returns the new primary's port.
    pub fn switchover(&self) -> u16 {
        let old = self.primary_port();
        self.autoctl_ok(
            &self.monitor,
            "pg_autoctl perform switchover",
            &[
                "perform",
                "switchover",
                "--formation",
                FORMATION,
                "--group",
                "0",
                "--wait",
                "60",
            ],
        );
        self.wait_for_promotion(old)
    }

    /// Unplanned failover: SIGKILLs the current primary's node (its
    /// `pg_autoctl` and every PostgreSQL process, like a crashed host; see
    /// the module docs) and waits until its port refuses connections.
    /// Returns the killed port. The node stays down.
    pub fn kill_primary(&self) -> u16 {
        let port = self.primary_port();
        let node = self.node(port);
        if let Some(pid) = postmaster_pid(&node.data) {
            lock(&self.killed_postmasters).push(pid);
        }
        node.kill_group(true);
        if !wait_refused(port, HA_TIMEOUT) {
            panic!(
                "AutoFailover::kill_primary: port {port} still accepts connections after \
                 SIGKILL of {}",
                node.label()
            );
        }
        port
    }

    /// Blocks until the monitor reports a node other than `old_primary` as
    /// serving primary (`primary` or `wait_primary`, reported and assigned)
    /// and that node answers `pg_is_in_recovery() = false` and is not
    /// read-only. Returns its port. Panics after 60 s with the monitor's
    /// state and the logs.
    pub fn wait_for_promotion(&self, old_primary: u16) -> u16 {
        let mut new_port = 0;
        self.wait_until("another node serves as primary", |ha| {
            let state = ha.state_now()?;
            let Some(s) = state
                .iter()
                .find(|s| s.port != old_primary && s.is_serving_primary())
            else {
                return Ok(false);
            };
            let writable = ha.try_query(
                s.port,
                "postgres",
                "SELECT (NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off')::text",
            )?;
            new_port = s.port;
            Ok(writable == "true")
        });
        new_port
    }

    /// `postgres://postgres@127.0.0.1:p1,127.0.0.1:p2/postgres[?params]`.
    pub fn url(&self, ports: &[u16], params: &str) -> String {
        let hosts = ports.iter().map(|p| format!("127.0.0.1:{p}"));
        multi_host_url(
            &format!("postgres://{SUPERUSER}"),
            hosts,
            "postgres",
            params,
        )
    }

    /// [`url`](Self::url) for both data nodes, `node1` first.
    pub fn default_url(&self, params: &str) -> String {
        self.url(&self.node_ports(), params)
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn node_url(&self, port: u16) -> String {
        self.url(&[port], "")
    }

    /// `postgres://app:{password}@127.0.0.1:{port}/postgres` (password
    /// percent-encoded).
    pub fn app_url(&self, port: u16, password: &str) -> String {
        format!(
            "postgres://{APP_USER}:{}@127.0.0.1:{port}/postgres",
            encode_userinfo(password)
        )
    }

    /// Runs `sql` with psql (as `postgres`) on database `postgres` of the
    /// server on `port` and returns the first column of the first row as
    /// psql prints it. Panics with psql's stderr on error.
    pub fn query_one(&self, port: u16, sql: &str) -> String {
        self.try_query(port, "postgres", sql)
            .unwrap_or_else(|e| panic!("AutoFailover::query_one on port {port}: {e}"))
    }

    /// [`query_one`](Self::query_one) on database `db`, returning psql's
    /// failure instead of panicking.
    pub fn try_query_one(&self, port: u16, db: &str, sql: &str) -> Result<String, String> {
        self.try_query(port, db, sql)
    }

    /// The `pg_autoctl run` log (with PostgreSQL's log) of the node on `port`
    /// (data node or monitor).
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.node(port).log.clone()
    }

    /// The last `lines` lines of every node's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        log_tails([&self.monitor, &self.nodes[0], &self.nodes[1]], lines)
    }

    // --- internals -----------------------------------------------------------

    fn node(&self, port: u16) -> &AfNode {
        [&self.monitor, &self.nodes[0], &self.nodes[1]]
            .into_iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| {
                panic!(
                    "AutoFailover: no node on port {port} (monitor {}, nodes {:?})",
                    self.monitor.port,
                    self.node_ports()
                )
            })
    }

    fn try_query(&self, port: u16, db: &str, sql: &str) -> Result<String, String> {
        let mut psql = env().psql(port, db);
        psql.env("PGCONNECT_TIMEOUT", "3").arg("-c").arg(sql);
        let out = run(&mut psql, COMMAND_TIMEOUT)?;
        Ok(first_field(&out.stdout, '\x1f'))
    }

    fn state_now(&self) -> Result<Vec<AfNodeState>, String> {
        let mut psql = env().psql(self.monitor.port, "pg_auto_failover");
        psql.env("PGCONNECT_TIMEOUT", "3").arg("-c").arg(format!(
            "SELECT nodename, nodeport, current_group_state, assigned_group_state, health \
             FROM pgautofailover.current_state({}) ORDER BY node_id",
            quote_literal(FORMATION)
        ));
        let out = run(&mut psql, COMMAND_TIMEOUT)?;
        out.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\x1f').collect();
                match f[..] {
                    [name, port, reported, assigned, health] => Ok(AfNodeState {
                        name: name.to_owned(),
                        port: port
                            .parse()
                            .map_err(|e| format!("monitor state line {line:?}: {e}"))?,
                        reported: reported.to_owned(),
                        assigned: assigned.to_owned(),
                        healthy: health == "1",
                    }),
                    _ => Err(format!("unexpected monitor state line {line:?}")),
                }
            })
            .collect()
    }

    /// Polls `check` until it returns `Ok(true)`; panics after [`HA_TIMEOUT`]
    /// with its last result, the monitor's state and the logs.
    fn wait_until(&self, what: &str, mut check: impl FnMut(&Self) -> Result<bool, String>) {
        let deadline = Instant::now() + HA_TIMEOUT;
        loop {
            let last = check(self);
            if let Ok(true) = last {
                return;
            }
            if Instant::now() >= deadline {
                let state = self.state_now();
                panic!(
                    "AutoFailover: waited {HA_TIMEOUT:?} for {what}; last check: {last:?}; \
                     monitor state: {state:?}\n{}",
                    self.log_tails(25)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// `pg_autoctl <args> --pgdata <node data>` run as the server's OS user
    /// with the node's XDG directories and nothing else in its environment.
    fn autoctl(&self, node: &AfNode, args: &[&str]) -> Command {
        let env = env();
        let xdg = node.dir.join("xdg");
        let mut cmd = env.as_server_user(PathBuf::from("/usr/bin/env"), None);
        cmd.arg("-i")
            .arg(format!("PATH={}:/usr/bin:/bin", env.bin_dir.display()))
            .arg(format!("HOME={}", node.dir.display()))
            .arg("LC_ALL=C")
            // Where pg_autoctl looks for its local server's unix socket
            // (`create monitor` has no --pghost).
            .arg(format!("PGHOST={}", self.dir.display()))
            .arg(format!("XDG_CONFIG_HOME={}", xdg.join("config").display()))
            .arg(format!("XDG_DATA_HOME={}", xdg.join("data").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", xdg.join("run").display()))
            .arg(&self.pg_autoctl)
            .args(args)
            .arg("--pgdata")
            .arg(&node.data)
            .current_dir(&node.dir);
        cmd
    }

    fn autoctl_ok(&self, node: &AfNode, what: &str, args: &[&str]) {
        let mut cmd = self.autoctl(node, args);
        if let Err(e) = run(&mut cmd, COMMAND_TIMEOUT) {
            panic!(
                "AutoFailover: {what} ({}) failed: {e}\n{}",
                node.label(),
                self.log_tails(25)
            );
        }
    }

    /// Copies the template data directory to the node and configures it.
    fn copy_template(&self, node: &AfNode, settings: &str) {
        let env = env();
        if let Err(e) = copy_template(&env.template, &node.data) {
            panic!("AutoFailover: {e}");
        }
        // The template includes node.conf; pg_autoctl passes -p and -h on
        // postgres's command line, which win over it.
        env.write_file(
            &node.data.join("node.conf"),
            &format!(
                "port = {}\nunix_socket_directories = {}\ncluster_name = 'ha_{}'\n",
                node.port,
                quote_literal(&self.dir.display().to_string()),
                node.name
            ),
        );
        env.append_file(&node.data.join("postgresql.auto.conf"), settings);
    }

    fn create_data_node(&self, node: &AfNode) {
        let monitor = format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor.port
        );
        let socket_dir = self.dir.display().to_string();
        let bin = env().bin_dir.join("pg_ctl").display().to_string();
        self.autoctl_ok(
            node,
            &format!("creating {}", node.name),
            &[
                "create",
                "postgres",
                "--pgctl",
                &bin,
                "--pgport",
                &node.port.to_string(),
                "--pghost",
                &socket_dir,
                "--listen",
                "127.0.0.1",
                "--hostname",
                "127.0.0.1",
                "--name",
                node.name,
                "--username",
                SUPERUSER,
                "--dbname",
                "postgres",
                "--monitor",
                &monitor,
                "--skip-pg-hba",
                "--no-ssl",
            ],
        );
        for (key, value) in KEEPER_SETTINGS {
            self.autoctl_ok(
                node,
                &format!("setting {key} on {}", node.name),
                &["config", "set", key, value],
            );
        }
    }

    /// Starts `pg_autoctl run` for the node in its own process group and
    /// registers the group with the reaper.
    fn spawn_run(&self, node: &AfNode) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap_or_else(|e| panic!("AutoFailover: cannot open {}: {e}", node.log.display()));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("AutoFailover: dup {}: {e}", node.log.display()));
        let mut cmd = self.autoctl(node, &["run"]);
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "AutoFailover: cannot run `pg_autoctl run` for {}: {e}",
                node.label()
            )
        });
        // The reaper kills this group if its leader is still this program:
        // runuser when we are root, else `env`, which has exec'd pg_autoctl.
        let leader_comm = if env().owner().is_some() {
            "runuser"
        } else {
            "pg_autoctl"
        };
        reap_at_exit(
            &self.dir,
            Reap::ProcessGroup {
                pgid: child.id(),
                leader_comm,
            },
        );
        *lock(&node.run) = Some(child);
    }
}

impl Drop for AutoFailover {
    fn drop(&mut self) {
        // The keepers first, so that nobody restarts a server stopped below.
        for node in [&self.nodes[0], &self.nodes[1], &self.monitor] {
            if node.pgid().is_some() {
                node.kill_group(false);
            }
        }
        let mut all_stopped = true;
        for node in [&self.nodes[0], &self.nodes[1], &self.monitor] {
            if !node.data.join("postmaster.pid").exists() {
                continue;
            }
            if let Err(e) = env().stop_immediate(&node.data) {
                // A SIGKILLed server leaves its postmaster.pid behind.
                if postmaster_pid(&node.data).is_some_and(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "postgres")
                }) {
                    all_stopped = false;
                    eprintln!(
                        "AutoFailover::drop: stopping {} failed (the reaper will retry at exit): {e}",
                        node.label()
                    );
                }
            }
        }
        remove_orphan_shm(&lock(&self.killed_postmasters));
        if !all_stopped {
            return;
        }
        remove_dir_at_drop("AutoFailover::drop", &self.dir);
    }
}
