//! What the cluster harnesses (`pg.rs`, `mariadb.rs`, `auto_failover.rs`) share beyond the
//! process directory and commands: the bookkeeping of a cluster's nodes (lookup by port,
//! labels for messages, log tails), the process-wide `shared()` cluster, connection URLs,
//! database names and a few small waits.

use crate::procdir::log_tail_of;
use std::path::Path;

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

/// A cluster that keeps its nodes in a list behind a lock; gives it the lookups every
/// cluster kind needs.
pub(crate) trait NodeList {
    /// The cluster's node type.
    type Node: ClusterNode + Clone;

    /// Runs `f` on the node list, under the cluster's lock.
    fn with_nodes<R>(&self, f: impl FnOnce(&mut Vec<Self::Node>) -> R) -> R;

    /// Whether `node` is a running replica (standby) of the current primary (source).
    fn is_running_replica(node: &Self::Node) -> bool;

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
                .filter(|n| Self::is_running_replica(n))
                .cloned()
                .collect()
        })
    }

    /// [`log_tails`] of every node.
    fn all_log_tails(&self, lines: usize) -> String {
        let nodes = self.with_nodes(|nodes| nodes.clone());
        log_tails(&nodes, lines)
    }
}
