//! Network-namespace hosts: a server runs in a network namespace of its own,
//! reachable from the root namespace at an address in 198.18.0.0/15 (the
//! benchmarking range), and its link can be made to drop every packet
//! silently.
//!
//! Layout, per [`PgCluster`](crate::PgCluster) that has namespaced nodes:
//!
//! * one Linux bridge in the root namespace (`dmb<pid hex>-<n>`), holding the
//!   gateway address `198.18.X.Y.1/24` of a /24 no other interface of the
//!   machine uses (chosen by adding the address, then checking that no other
//!   interface has an overlapping one, and retrying elsewhere if one does);
//! * per namespaced node one namespace `dmdb-<pid>-<cluster>-<node>` with `lo`
//!   up and one end (`eth0`) of a veth pair addressed `198.18.X.Y.(2+i)/24`;
//!   the other end (`dmv<pid hex>-<n>`) is a port of the bridge.
//!
//! Root-namespace processes reach a namespace host at its address (through
//! the bridge, as a local route); a namespace host reaches the root namespace
//! at the gateway address; two namespace hosts reach each other through the
//! bridge at layer 2, so the root namespace needs no IP forwarding. Nothing
//! is routed anywhere else.
//!
//! # The silent drop
//!
//! [`NetNs::cut`] loads, inside the namespace, an nftables table
//! `inet diesel_multidb_cut` whose `input` and `output` hooks (priority -300,
//! before anything else) drop every IPv4/IPv6 packet on any interface but
//! `lo`; [`NetNs::restore`] deletes the table. This is silent:
//!
//! * a dropped packet produces nothing: no RST (the packet never reaches the
//!   namespace's TCP stack, and the server's own packets are discarded before
//!   they leave), no ICMP (nftables `drop`, unlike `reject`, sends none);
//! * ARP is not IPv4 and does not pass the `inet` hooks, so the root side's
//!   neighbour entry for the namespace address stays `REACHABLE`: the kernel
//!   never reports a local "host unreachable" to the client's socket;
//! * the link stays up (no carrier change on the client's side).
//!
//! So the client's TCP connections stay `ESTABLISHED`, its writes are
//! retransmitted into the void, a read waits forever unless TCP keepalives
//! or ``TCP_USER_TIMEOUT`` abort it (`ETIMEDOUT`), and a new connection hangs
//! in `SYN-SENT` until the client's connect timeout.
//!
//! What was tried and is not silent, or not available here: `tc qdisc ...
//! netem loss 100%` (the kernel has no `sch_netem`: "Specified qdisc kind is
//! unknown"); setting the namespace end of the veth down (the client's
//! neighbour entry fails, so after about a second its socket gets
//! `EHOSTUNREACH` "No route to host", and new connections fail at once with
//! it instead of hanging).
//!
//! Measured here: a cluster with a namespaced primary and one standby starts
//! in about 0.65 s (the bridge and namespace take about 50 ms of it); a
//! statement on a connection with `keepalives_idle=1 keepalives_interval=1
//! keepalives_count=3 tcp_user_timeout=5000` fails about 5.7 s after the cut
//! ("could not receive data from server: Connection timed out"), while one
//! with `keepalives=0` is still waiting when the test gives up on it, and
//! goes through once the link is restored.
//!
//! Requirements: root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `ip`
//! (iproute2) and `nft` (Debian package `nftables`). Missing ones make the
//! harness panic saying so.
//!
//! Cleanup: dropping a cluster deletes its namespaces (after killing any
//! process left inside), veths and bridge. Every name is recorded for the
//! process-wide reaper (`procdir.rs`, the cluster's `reap.netns`) before it
//! is created, and the reaper deletes whatever is listed there if the test
//! process dies.

use crate::procdir::{is_root, reap_at_exit, Reap};
use crate::process::run;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bound for one `ip` / `nft` command.
const NET_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The nftables table [`NetNs::cut`] loads.
const CUT_TABLE: &str = "diesel_multidb_cut";
/// Name of the namespace end of every veth.
const NS_IF: &str = "eth0";
/// Number of /24s in 198.18.0.0/15.
const SUBNETS: usize = 512;

/// Looks for a system tool in the usual sbin/bin directories.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

fn ip_tool() -> PathBuf {
    find_tool("ip").unwrap_or_else(|| {
        panic!(
            "netns harness: `ip` (iproute2) not found in /usr/sbin, /sbin, /usr/bin or /bin; \
             install the Debian package iproute2"
        )
    })
}

fn nft_tool() -> PathBuf {
    find_tool("nft").unwrap_or_else(|| {
        panic!(
            "netns harness: `nft` not found in /usr/sbin, /sbin, /usr/bin or /bin; it drops the \
             packets of a cut link; install the Debian package nftables"
        )
    })
}

fn ip(args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(ip_tool());
    cmd.args(args);
    run(&mut cmd, NET_COMMAND_TIMEOUT).map(|out| out.stdout)
}

fn ip_or_panic(what: &str, args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| panic!("netns harness: {what} failed: {e}"))
}

fn subnet(index: usize) -> [u8; 3] {
    [198, 18 + (index / 256) as u8, (index % 256) as u8]
}

/// Parses the `inet A.B.C.D/len` entries of `ip -o -4 addr show`:
/// (interface, address, prefix length).
fn parse_ipv4_addrs(out: &str) -> Vec<(String, Ipv4Addr, u32)> {
    let mut addrs = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = fields.iter().position(|f| *f == "inet") else {
            continue;
        };
        let (Some(ifname), Some(cidr)) = (fields.get(1), fields.get(pos + 1)) else {
            continue;
        };
        let Some((addr, len)) = cidr.split_once('/') else {
            continue;
        };
        if let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) {
            addrs.push((ifname.trim_end_matches(':').to_owned(), addr, len.min(32)));
        }
    }
    addrs
}

fn overlaps(a: Ipv4Addr, a_len: u32, b: Ipv4Addr, b_len: u32) -> bool {
    let len = a_len.min(b_len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a) & mask) == (u32::from(b) & mask)
}

/// The bridge and namespaces of one cluster.
pub(crate) struct Lan {
    bridge: String,
    net: [u8; 3],
    /// The cluster directory, where the reaper finds what to delete.
    dir: PathBuf,
    hosts: Vec<NetNs>,
}

impl Lan {
    /// Creates the bridge with a free 198.18.0.0/15 /24. `dir` is the
    /// cluster's directory (directly under the process directory), where the
    /// names are recorded for the reaper.
    pub(crate) fn create(dir: &Path) -> Lan {
        static NEXT_LAN: AtomicUsize = AtomicUsize::new(0);
        if !is_root() {
            panic!(
                "netns harness: network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); \
                 this test process is not root"
            );
        }
        nft_tool();
        let pid = std::process::id();
        let seq = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        let bridge = format!("dmb{pid:x}-{seq:x}");
        reap_at_exit(dir, Reap::Link(&bridge));
        // A leftover of a dead process with the same pid: remove it.
        let _ = ip(&["link", "delete", &bridge]);
        ip_or_panic(
            "creating the bridge",
            &["link", "add", &bridge, "type", "bridge"],
        );
        let start = (pid as usize).wrapping_mul(31).wrapping_add(seq * 7) % SUBNETS;
        let mut chosen = None;
        for k in 0..SUBNETS {
            let net = subnet((start + k) % SUBNETS);
            let gateway = Ipv4Addr::new(net[0], net[1], net[2], 1);
            let cidr = format!("{gateway}/24");
            ip_or_panic(
                "adding the gateway address",
                &["addr", "add", &cidr, "dev", &bridge],
            );
            // Added first, checked second: of two processes racing for the
            // same /24, at least one sees the other and moves on.
            let all = ip_or_panic("listing addresses", &["-o", "-4", "addr", "show"]);
            let clash = parse_ipv4_addrs(&all)
                .into_iter()
                .any(|(ifname, addr, len)| ifname != bridge && overlaps(addr, len, gateway, 24));
            if !clash {
                chosen = Some(net);
                break;
            }
            ip_or_panic(
                "removing a clashing gateway address",
                &["addr", "del", &cidr, "dev", &bridge],
            );
        }
        let Some(net) = chosen else {
            let _ = ip(&["link", "delete", &bridge]);
            panic!("netns harness: every /24 of 198.18.0.0/15 is in use on this machine");
        };
        ip_or_panic("bringing the bridge up", &["link", "set", &bridge, "up"]);
        Lan {
            bridge,
            net,
            dir: dir.to_path_buf(),
            hosts: Vec::new(),
        }
    }

    /// The bridge's address: how namespace hosts reach the root namespace.
    pub(crate) fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 1)
    }

    /// Creates a namespace host named `dmdb-<pid>-<tag>` for node `node` and
    /// returns its index.
    pub(crate) fn add_host(&mut self, tag: &str, node: usize) -> usize {
        static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);
        let index = self.hosts.len();
        if index >= 250 {
            panic!("netns harness: at most 250 namespace hosts per cluster");
        }
        let pid = std::process::id();
        let name = format!("dmdb-{pid}-{tag}");
        let veth = format!("dmv{pid:x}-{:x}", NEXT_HOST.fetch_add(1, Ordering::Relaxed));
        let addr = Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 2 + index as u8);
        reap_at_exit(&self.dir, Reap::NetNs(&name));
        reap_at_exit(&self.dir, Reap::Link(&veth));
        // Leftovers of a dead process with the same pid.
        if ip(&["netns", "add", &name]).is_err() {
            delete_netns(&name);
            ip_or_panic("creating the namespace", &["netns", "add", &name]);
        }
        let _ = ip(&["link", "delete", &veth]);
        let host = NetNs {
            node,
            name: name.clone(),
            veth: veth.clone(),
            addr,
            gateway: self.gateway(),
            cut: AtomicBool::new(false),
        };
        // Registered before it is complete: a panic below still deletes it.
        self.hosts.push(host);
        let cidr = format!("{addr}/24");
        let steps: [(&str, Vec<&str>); 6] = [
            (
                "creating the veth pair",
                vec![
                    "link", "add", &veth, "type", "veth", "peer", "name", NS_IF, "netns", &name,
                ],
            ),
            (
                "attaching the veth to the bridge",
                vec!["link", "set", &veth, "master", &self.bridge],
            ),
            ("bringing the veth up", vec!["link", "set", &veth, "up"]),
            (
                "addressing the namespace end",
                vec!["-n", &name, "addr", "add", &cidr, "dev", NS_IF],
            ),
            (
                "bringing the namespace end up",
                vec!["-n", &name, "link", "set", NS_IF, "up"],
            ),
            (
                "bringing lo up in the namespace",
                vec!["-n", &name, "link", "set", "lo", "up"],
            ),
        ];
        for (what, args) in steps {
            ip_or_panic(what, &args);
        }
        index
    }

    pub(crate) fn host(&self, index: usize) -> &NetNs {
        &self.hosts[index]
    }

    /// The index of the host made for cluster node `node`, if any.
    pub(crate) fn host_for_node(&self, node: usize) -> Option<usize> {
        self.hosts.iter().position(|h| h.node == node)
    }
}

fn delete_netns(name: &str) {
    // A namespace lives as long as a process is inside it, whatever
    // `ip netns delete` says: kill them first.
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            let mut kill = Command::new("kill");
            kill.arg("-KILL").args(&pids);
            let _ = run(&mut kill, NET_COMMAND_TIMEOUT);
        }
    }
    let _ = ip(&["netns", "delete", name]);
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            // Deleting one end of a veth deletes both, at once (deleting the
            // namespace alone would leave it to the kernel's asynchronous
            // namespace cleanup).
            let _ = ip(&["link", "delete", &host.veth]);
            delete_netns(&host.name);
        }
        if let Err(e) = ip(&["link", "delete", &self.bridge]) {
            eprintln!(
                "netns harness: (ignored) deleting bridge {}: {e}",
                self.bridge
            );
        }
    }
}

/// A network namespace holding one server of a cluster (see the module docs).
///
/// Obtained from [`PgCluster::netns`](crate::PgCluster::netns).
pub struct NetNs {
    /// The cluster node index (0 = primary) it was made for.
    node: usize,
    name: String,
    veth: String,
    addr: Ipv4Addr,
    gateway: Ipv4Addr,
    cut: AtomicBool,
}

impl NetNs {
    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's address (in 198.18.0.0/15), reachable from the root
    /// namespace.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The root namespace's address as seen from inside the namespace.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The root-namespace end of the namespace's veth pair.
    pub fn host_interface(&self) -> &str {
        &self.veth
    }

    /// A command that runs `program` inside the namespace
    /// (`ip netns exec <name> <program>`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(ip_tool());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Makes the namespace drop every packet it receives or sends on its
    /// link, in both directions, silently (no RST, no ICMP, ARP still
    /// answered: see the module docs). Established TCP connections stay
    /// established on both sides. Panics if it is already cut.
    pub fn cut(&self) {
        if self.cut.swap(true, Ordering::SeqCst) {
            panic!("NetNs::cut: {} is already cut", self.name);
        }
        let script = format!(
            "add table inet {CUT_TABLE} ; \
             add chain inet {CUT_TABLE} input {{ type filter hook input priority -300 ; policy accept ; }} ; \
             add rule inet {CUT_TABLE} input iifname != \"lo\" drop ; \
             add chain inet {CUT_TABLE} output {{ type filter hook output priority -300 ; policy accept ; }} ; \
             add rule inet {CUT_TABLE} output oifname != \"lo\" drop"
        );
        let mut nft = self.command(nft_tool());
        nft.arg(script);
        if let Err(e) = run(&mut nft, NET_COMMAND_TIMEOUT) {
            self.cut.store(false, Ordering::SeqCst);
            panic!(
                "NetNs::cut: loading the drop rules into {} failed: {e}",
                self.name
            );
        }
    }

    /// Undoes [`cut`](Self::cut): packets flow again, and connections that
    /// TCP has not given up on carry on. Panics if it is not cut.
    pub fn restore(&self) {
        if !self.cut.load(Ordering::SeqCst) {
            panic!("NetNs::restore: {} is not cut", self.name);
        }
        let mut nft = self.command(nft_tool());
        nft.args(["delete", "table", "inet", CUT_TABLE]);
        if let Err(e) = run(&mut nft, NET_COMMAND_TIMEOUT) {
            panic!(
                "NetNs::restore: deleting the drop rules of {} failed: {e}",
                self.name
            );
        }
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetNs")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("cut", &self.is_cut())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_parse() {
        let a: Ipv4Addr = "198.18.3.1".parse().unwrap();
        assert!(overlaps(a, 24, "198.18.3.77".parse().unwrap(), 30));
        assert!(overlaps(a, 24, "198.18.0.0".parse().unwrap(), 15));
        assert!(!overlaps(a, 24, "198.18.4.1".parse().unwrap(), 24));
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   7: dmb1-0    inet 198.18.3.1/24 scope global dmb1-0\\ ...\n";
        assert_eq!(
            parse_ipv4_addrs(out),
            vec![
                ("lo".to_owned(), Ipv4Addr::LOCALHOST, 8),
                ("dmb1-0".to_owned(), a, 24)
            ]
        );
        assert_eq!(subnet(0), [198, 18, 0]);
        assert_eq!(subnet(511), [198, 19, 255]);
    }
}
