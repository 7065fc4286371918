//! What the cluster harnesses (`pg.rs`, `mariadb.rs`, `auto_failover.rs`) share beyond the
//! process directory and commands: the bookkeeping of a cluster's nodes (lookup by port,
//! labels for messages, log tails), the process-wide `shared()` cluster, connection URLs,
//! database names and a few small waits.

use crate::procdir::log_tail_of;
use crate::process::{connect_refused, run};
use std::fs;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for one helper command (`cp -a` of a template).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A server node as the bookkeeping helpers see it.
pub(crate) trait ClusterNode {
    /// Its name in the cluster directory (`n0`, `n1`, ...; `monitor`, `node1`, ...).
    fn name(&self) -> &str;
    /// Its port on 127.0.0.1.
    fn port(&self) -> u16;
    /// Name, port (and role where there is one), for messages.
    fn label(&self) -> String;
    /// Its server log.
    fn log(&self) -> &Path;
}

/// `--- <label> <log path> ---` followed by the last `lines` lines of the log, for every
/// node in order: what failure messages print.
pub(crate) fn log_tails<'a, N: ClusterNode + 'a>(
    nodes: impl IntoIterator<Item = &'a N>,
    lines: usize,
) -> String {
    let mut out = String::new();
    for node in nodes {
        out.push_str(&format!(
            "--- {} {} ---\n{}\n",
            node.label(),
            node.log().display(),
            log_tail_of(node.log(), lines)
        ));
    }
    out
}

/// Replaces the node with the same name in `nodes`, or appends it if there is none.
pub(crate) fn upsert_by_name<N: ClusterNode + Clone>(nodes: &mut Vec<N>, node: &N) {
    match nodes.iter_mut().find(|n| n.name() == node.name()) {
        Some(existing) => *existing = node.clone(),
        None => nodes.push(node.clone()),
    }
}

/// A node of a replicated cluster (PostgreSQL standbys, MariaDB replicas).
pub(crate) trait ReplicatedNode: ClusterNode {
    /// Whether the harness believes it runs (started and not killed).
    fn running(&self) -> bool;
    /// Whether it is a replica (standby) of the current primary (source).
    fn is_replica(&self) -> bool;
    /// Whether it is the current primary (source).
    fn is_primary(&self) -> bool;
}

/// The nodes of a replicated cluster as it was started: the primary (source), then the
/// replicas (standbys).
#[derive(Default)]
pub(crate) struct Layout {
    /// The port of the node that was the primary at start.
    pub(crate) primary: u16,
    /// The ports of the replicas created at start, in order.
    pub(crate) replicas: Vec<u16>,
}

impl Layout {
    /// The original primary followed by the original replicas.
    pub(crate) fn ports(&self) -> Vec<u16> {
        let mut ports = vec![self.primary];
        ports.extend(&self.replicas);
        ports
    }

    /// The port of the current primary among `nodes`: the node most recently promoted, or
    /// the original one.
    pub(crate) fn current_primary<N: ReplicatedNode>(&self, nodes: &[N]) -> u16 {
        nodes
            .iter()
            .find(|n| n.is_primary())
            .map_or(self.primary, ClusterNode::port)
    }
}

/// Implements [`ClusterNode`] and [`ReplicatedNode`] for a node struct with the fields
/// `name: String`, `port: u16`, `log: PathBuf`, `role` (a `Debug` enum) and
/// `running: bool`; `$primary` is the role of the primary, `$replica` that of a replica.
/// The label is `<name> (port <port>, <role>)`.
macro_rules! replicated_node {
    ($node:ty, $primary:expr, $replica:expr) => {
        impl $crate::common::ClusterNode for $node {
            fn name(&self) -> &str {
                &self.name
            }

            fn port(&self) -> u16 {
                self.port
            }

            fn label(&self) -> String {
                format!("{} (port {}, {:?})", self.name, self.port, self.role)
            }

            fn log(&self) -> &std::path::Path {
                &self.log
            }
        }

        impl $crate::common::ReplicatedNode for $node {
            fn running(&self) -> bool {
                self.running
            }

            fn is_replica(&self) -> bool {
                self.role == $replica
            }

            fn is_primary(&self) -> bool {
                self.role == $primary
            }
        }
    };
}
pub(crate) use replicated_node;

/// A cluster that keeps its nodes in a list behind a lock; gives it the lookups and checks
/// every cluster kind needs.
pub(crate) trait NodeList {
    /// The cluster's node type.
    type Node: ReplicatedNode + Clone;
    /// The cluster type's name, for messages (`PgCluster`, ...).
    const KIND: &'static str;

    /// Runs `f` on the node list, under the cluster's lock.
    fn with_nodes<R>(&self, f: impl FnOnce(&mut Vec<Self::Node>) -> R) -> R;

    /// Whether this is the process-wide `shared()` cluster, whose topology must not change.
    fn is_shared(&self) -> bool;

    /// The first column of the first row `sql` gives on the node on `port`, as the
    /// harness's client prints it; panics on error.
    fn harness_query(&self, port: u16, sql: &str) -> String;

    /// Panics if this is the shared cluster: `what` (`kill`, `promote`, ...) would change
    /// its topology under the other tests.
    fn forbid_on_shared(&self, what: &str) {
        if self.is_shared() {
            panic!(
                "{what}: {kind}::shared() is used by many tests at once and must keep its \
                 topology; start an own cluster with {kind}::start(n) instead",
                kind = Self::KIND
            );
        }
    }

    /// The node on `port` for `what` to change: panics if this is the shared cluster, or
    /// unless the node's `running()` is `running`.
    fn node_to_change(&self, port: u16, what: &str, running: bool) -> Self::Node {
        self.forbid_on_shared(what);
        let node = self.node(port);
        match (running, node.running()) {
            (true, false) => panic!("{what}: node {} is not running", node.label()),
            (false, true) => panic!("{what}: node {} is already running", node.label()),
            _ => node,
        }
    }

    /// A copy of the node on `port`. Panics if no node of this cluster has that port (the
    /// harness never connects anywhere else).
    fn node(&self, port: u16) -> Self::Node {
        self.with_nodes(|nodes| match nodes.iter().find(|n| n.port() == port) {
            Some(node) => node.clone(),
            None => panic!(
                "cluster harness: no node on port {port} in this cluster (nodes: {:?})",
                nodes.iter().map(ClusterNode::port).collect::<Vec<_>>()
            ),
        })
    }

    /// The label of the node on `port`, or `port <port>` if there is none.
    fn node_label_or_port(&self, port: u16) -> String {
        self.with_nodes(|nodes| {
            nodes
                .iter()
                .find(|n| n.port() == port)
                .map_or_else(|| format!("port {port}"), ClusterNode::label)
        })
    }

    /// Applies `f` to the node on `port`, if there is one.
    fn update(&self, port: u16, f: impl FnOnce(&mut Self::Node)) {
        self.with_nodes(|nodes| {
            if let Some(node) = nodes.iter_mut().find(|n| n.port() == port) {
                f(node);
            }
        });
    }

    /// Copies of the running replicas (standbys), in node order.
    fn running_replicas(&self) -> Vec<Self::Node> {
        self.with_nodes(|nodes| {
            nodes
                .iter()
                .filter(|n| n.running() && n.is_replica())
                .cloned()
                .collect()
        })
    }

    /// Panics unless `sql` gives `1` on every running replica; `failure` makes the message
    /// from the label of the first one where it does not.
    fn require_on_replicas(&self, sql: &str, failure: impl Fn(String) -> String) {
        for node in self.running_replicas() {
            if self.harness_query(node.port(), sql) != "1" {
                panic!("{}", failure(node.label()));
            }
        }
    }

    /// [`log_tails`] of every node.
    fn all_log_tails(&self, lines: usize) -> String {
        let nodes = self.with_nodes(|nodes| nodes.clone());
        log_tails(&nodes, lines)
    }
}

/// The process-wide cluster behind a `shared()` constructor: started on first use by the
/// first test that asks; if that start panics, every later call panics at once (naming
/// the earlier failure) instead of starting another cluster for every test.
pub(crate) struct SharedCluster<T> {
    cluster: OnceLock<T>,
    failed: AtomicBool,
}

impl<T> SharedCluster<T> {
    /// An empty holder, for a `static`.
    pub(crate) const fn new() -> Self {
        SharedCluster {
            cluster: OnceLock::new(),
            failed: AtomicBool::new(false),
        }
    }

    /// The cluster, started with `start` on first use. `what` (`PgCluster::shared`, ...)
    /// prefixes the panic message when an earlier start failed.
    pub(crate) fn get_or_start(&self, what: &str, start: impl FnOnce() -> T) -> &T {
        /// Sets the flag if dropped while panicking (the start failed).
        struct FlagOnPanic<'a>(&'a AtomicBool);
        impl Drop for FlagOnPanic<'_> {
            fn drop(&mut self) {
                if thread::panicking() {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
        }
        if let Some(cluster) = self.cluster.get() {
            return cluster;
        }
        self.cluster.get_or_init(|| {
            if self.failed.load(Ordering::SeqCst) {
                panic!(
                    "{what}: the shared cluster failed to start in an earlier test (see its \
                     failure message); not retrying"
                );
            }
            let _flag = FlagOnPanic(&self.failed);
            start()
        })
    }
}

/// A fresh database name made from `prefix`: lowercased, every character but `[a-z0-9_]`
/// replaced by `_`, at most 40 of them, `d` in front if it is empty or starts with a
/// digit, then `_<n>` with `n` unique in the process.
pub(crate) fn database_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut base: String = prefix
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, 'd');
    }
    format!("{base}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `<scheme_and_user>@<host1>,<host2>,.../<db>[?<params>]`; `params` may start with `?`.
pub(crate) fn multi_host_url(
    scheme_and_user: &str,
    hosts: impl IntoIterator<Item = String>,
    db: &str,
    params: &str,
) -> String {
    let hosts: Vec<String> = hosts.into_iter().collect();
    let params = params.strip_prefix('?').unwrap_or(params);
    let mut url = format!("{scheme_and_user}@{}/{db}", hosts.join(","));
    if !params.is_empty() {
        url.push('?');
        url.push_str(params);
    }
    url
}

/// The first field of the first line of a client's output (`sep` separates fields): what
/// the `query_one` helpers return.
pub(crate) fn first_field(stdout: &str, sep: char) -> String {
    let first_line = stdout.lines().next().unwrap_or("");
    first_line.split(sep).next().unwrap_or("").to_owned()
}

/// `cp -a <template> <data>`: a new node's data directory from the harness's template.
pub(crate) fn copy_template(template: &Path, data: &Path) -> Result<(), String> {
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(template).arg(data);
    run(&mut cp, COMMAND_TIMEOUT)
        .map(|_| ())
        .map_err(|e| format!("copying the template data directory failed: {e}"))
}

/// Polls until 127.0.0.1:`port` refuses connections; `false` if it still accepts them
/// after `timeout`.
pub(crate) fn wait_refused(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !connect_refused(port) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Runs `setup(i)` for every node index `i` in `indexes`, each in a thread of its own, and
/// returns the results in order. When all are done, panics with `<what> n<i> failed: <error>`
/// for the first that failed (`what`: `PgCluster::start: setting up standby`, ...).
pub(crate) fn in_parallel<T: Send>(
    indexes: RangeInclusive<usize>,
    what: &str,
    setup: impl Fn(usize) -> Result<T, String> + Sync,
) -> Vec<T> {
    let results: Vec<(usize, Result<T, String>)> = thread::scope(|scope| {
        let handles: Vec<_> = indexes
            .map(|i| {
                let setup = &setup;
                (i, scope.spawn(move || setup(i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, h)| {
                let result = h
                    .join()
                    .unwrap_or_else(|_| Err("the setup thread panicked".to_owned()));
                (i, result)
            })
            .collect()
    });
    results
        .into_iter()
        .map(|(i, result)| result.unwrap_or_else(|e| panic!("{what} n{i} failed: {e}")))
        .collect()
}

/// Removes a cluster's directory when it is dropped; on failure only says so (`what`:
/// `PgCluster::drop`, ...): the reaper removes it when the process exits.
pub(crate) fn remove_dir_at_drop(what: &str, dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!(
            "{what}: removing {} failed (the reaper will retry at exit): {e}",
            dir.display()
        );
    }
}

/// The error of a server start that failed: `failure`, then the part of the node's log
/// this start wrote.
pub(crate) fn start_failure(node: &impl ClusterNode, failure: &str, log: &str) -> String {
    format!(
        "starting {} on port {} failed: {failure}\n--- {} (this start) ---\n{}",
        node.name(),
        node.port(),
        node.log().display(),
        log.trim_end()
    )
}

/// How long each step of a cluster start took, for the start's summary line.
pub(crate) struct Steps {
    done: Vec<String>,
    lap: Instant,
}

impl Steps {
    /// Starts timing the first step.
    pub(crate) fn new() -> Steps {
        Steps {
            done: Vec::new(),
            lap: Instant::now(),
        }
    }

    /// Ends the current step (named `step`) and starts timing the next.
    pub(crate) fn mark(&mut self, step: &str) {
        self.done.push(format!("{step} {:.0?}", self.lap.elapsed()));
        self.lap = Instant::now();
    }

    /// `step1 12ms, step2 3ms, ...`.
    pub(crate) fn summary(&self) -> String {
        self.done.join(", ")
    }
}
