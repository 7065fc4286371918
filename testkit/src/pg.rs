//! Test harness: real PostgreSQL clusters (one primary plus streaming
//! standbys) started from the PostgreSQL binaries installed on this machine.
//!
//! * Binaries: `$PG_BIN_DIR` if set, otherwise the highest
//!   `/usr/lib/postgresql/<version>/bin` that has `initdb`.
//! * `initdb`, `postgres`, `pg_ctl` and `pg_basebackup` refuse to run as
//!   root, so when the effective uid is 0 they are run as the OS user
//!   `$PG_OS_USER` (default `postgres`) through `runuser -u <user> --`;
//!   otherwise they run as the current user. `psql` runs as the current user.
//! * Everything lives under the shared per-process directory (see `procdir.rs`:
//!   `<base>/diesel-multidb-testkit-<pid>-<nonce>/`, where `<base>` is
//!   `$PG_HARNESS_DIR`, else `/dev/shm` if it is a world-writable tmpfs
//!   (much faster than disk), else the system temp directory). It holds
//!   `template/data` (one `initdb` per process, copied with `cp -a` for
//!   every new primary) and one `c<N>/` per cluster, which holds the
//!   cluster's unix sockets and one `n<i>/` per node: `n<i>/data` (the data
//!   directory) and `n<i>/server.log`. Standbys are made with
//!   `pg_basebackup -R -X stream -c fast`. `PgCluster::start(2)` takes about
//!   0.5 s on tmpfs (plus about 0.4 s for the template, once per process).
//! * Settings: 127.0.0.1 only, fsync/synchronous_commit/full_page_writes
//!   off, wal_level=replica, 16MB shared_buffers, wal_keep_size=256MB; the
//!   port, socket directory and `cluster_name` (`n<i>_<port>`, which is also
//!   the standby's `application_name` in `pg_stat_replication`) are in
//!   `data/node.conf`.
//! * Cleanup: the shared reaper (a `sh -c` in its own process group,
//!   ignoring HUP/INT/QUIT/TERM) reads a pipe whose write end only this
//!   process holds. When the process exits for any reason (normal exit,
//!   panic, abort, SIGKILL) the pipe closes, and the reaper stops every
//!   server under the process directory (SIGQUIT to each postmaster, as
//!   `pg_ctl stop -m immediate` does) and removes it. Dropping a
//!   [`PgCluster`] also stops its nodes and removes its directory right
//!   away. Directories left by dead processes (reaper itself killed) are
//!   cleaned when the next test process starts.
//! * Authentication (`pg_hba.conf`, first match wins):
//!   `host all app 127.0.0.1/32 scram-sha-256`, then trust for every other
//!   user over the unix socket and 127.0.0.1, and trust for replication.
//!   Role `app` (password [`APP_PASSWORD`], not a superuser) has CREATE on
//!   database `postgres`, on schema `public` (in `postgres` and in
//!   `template1`, so in every database created later) and on every database
//!   made by [`PgCluster::create_database`].
//!
//! * Network namespaces: [`PgCluster::start_with_netns`] runs chosen nodes
//!   each in a network namespace of its own, reachable at an address in
//!   198.18.0.0/15 and able to have its link cut silently ([`NetNs`], see
//!   `netns.rs` for how and why the drop is silent). `pg_hba.conf` also
//!   trusts 198.18.0.0/15 (scram-sha-256 for `app`), addresses that exist on
//!   this machine only inside namespaces the harness made. The shared
//!   reaper (`procdir.rs`) deletes a cluster's namespaces, veths and bridge
//!   too (listed in its `reap.netns`) if the process dies.
//!
//! Failover: [`PgCluster::promote`] re-points the other standbys (running or
//! stopped) at the promoted node by rewriting `primary_conninfo` and
//! reloading; with `recovery_target_timeline = 'latest'` (the default) a
//! standby that had not replayed past the promotion point follows the new
//! timeline. A standby that was ahead of the promoted node cannot follow and
//! stays behind; [`PgCluster::wait_for_replay`] then panics naming it. A
//! killed former primary restarted with [`PgCluster::restart`] comes back as
//! a second, independent primary (split brain, on the old timeline); use
//! [`PgCluster::rejoin_as_standby`] to bring it back as a standby instead.

use crate::common::{
    copy_template, database_name, first_field, in_parallel, multi_host_url, remove_dir_at_drop,
    replicated_node, start_failure, upsert_by_name, wait_refused, ClusterNode, Layout, NodeList,
    SharedCluster, Steps,
};
use crate::netns::{Lan, NetNs};
use crate::procdir::{
    append_file, encode_userinfo, file_len, find_runuser, log_tail_of, process_dir, read_from,
    ServerUser,
};
use crate::process::{lock, pick_port, run};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The password-authenticated role (`scram-sha-256` over 127.0.0.1).
pub const APP_USER: &str = "app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "app-secret";
/// The superuser every `*_url` helper connects as (trust auth).
pub const SUPERUSER: &str = "postgres";

/// How long any node-level wait (streaming, replay, promotion, shutdown)
/// may take before the harness panics.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one external command (initdb, pg_ctl, pg_basebackup, psql).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts to find a free port when a server start hits "Address already in use".
const PORT_ATTEMPTS: usize = 8;

// ---------------------------------------------------------------------------
// Process-wide environment: binaries, OS user, process directory, reaper,
// template data directory.
// ---------------------------------------------------------------------------

pub(crate) struct Env {
    pub(crate) bin_dir: PathBuf,
    /// `Some((runuser, user))` when we are root and must switch user.
    run_as: Option<(PathBuf, ServerUser)>,
    /// The shared process directory, see `procdir.rs`.
    root: PathBuf,
    /// `root/template/data`, made by initdb and configured; never started.
    pub(crate) template: PathBuf,
}

/// The process-wide environment (binaries, OS user, process directory,
/// reaper, template), set up on first use.
pub(crate) fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(Env::init)
}

impl Env {
    fn init() -> Env {
        let t0 = Instant::now();
        let bin_dir = find_bin_dir();
        let run_as = ServerUser::when_root("PG_OS_USER", "postgres", "PostgreSQL")
            .map(|user| (find_runuser(), user));
        let root = process_dir().root().to_path_buf();
        let env = Env {
            bin_dir,
            run_as,
            template: root.join("template").join("data"),
            root,
        };
        env.make_template();
        eprintln!(
            "cluster harness: PostgreSQL from {}, servers run as {}, template ready in {:.2?} ({})",
            env.bin_dir.display(),
            env.run_as
                .as_ref()
                .map_or("the current user", |(_, user)| user.name.as_str()),
            t0.elapsed(),
            env.root.display()
        );
        env
    }

    /// A command for a server-side PostgreSQL binary, run as the server's OS user.
    pub(crate) fn pg(&self, bin: &str) -> Command {
        self.pg_in(bin, None)
    }

    /// [`pg`](Self::pg), inside a network namespace when `netns` is given.
    pub(crate) fn pg_in(&self, bin: &str, netns: Option<&NetNs>) -> Command {
        self.as_server_user(self.bin_dir.join(bin), netns)
    }

    /// `program` run as the server's OS user (through runuser when we are
    /// root), inside `netns` if given, with the client `PG*` variables removed.
    pub(crate) fn as_server_user(&self, program: PathBuf, netns: Option<&NetNs>) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some((runuser, user)) = &self.run_as {
            argv.extend([
                runuser.clone().into_os_string(),
                "-u".into(),
                user.name.as_str().into(),
                "--".into(),
            ]);
        }
        argv.push(program.into_os_string());
        let mut cmd = match netns {
            Some(ns) => ns.command(&argv[0]),
            None => Command::new(&argv[0]),
        };
        cmd.args(&argv[1..]);
        clean_env(&mut cmd);
        cmd.current_dir(&self.root);
        cmd
    }

    /// `pg_ctl stop -m immediate -w` (SIGQUIT to the postmaster) for the server of `data`.
    pub(crate) fn stop_immediate(&self, data: &Path) -> Result<(), String> {
        let mut stop = self.pg("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "-w", "-t", "30"]);
        run(&mut stop, COMMAND_TIMEOUT).map(|_| ())
    }

    /// `psql` for one node on 127.0.0.1.
    pub(crate) fn psql(&self, port: u16, db: &str) -> Command {
        self.psql_at("127.0.0.1", port, db)
    }

    /// `psql` for one node at `host` (an address or a unix socket directory),
    /// run as the current user, quiet and unaligned.
    pub(crate) fn psql_at(&self, host: &str, port: u16, db: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("psql"));
        clean_env(&mut cmd);
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", "UTF8")
            .env("PGAPPNAME", "diesel-multidb-harness")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\x1f",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-h", host, "-U", SUPERUSER])
            .arg("-p")
            .arg(port.to_string())
            .arg("-d")
            .arg(db)
            .current_dir(&self.root);
        cmd
    }

    /// The server's OS user, when we are root.
    pub(crate) fn owner(&self) -> Option<&ServerUser> {
        self.run_as.as_ref().map(|(_, user)| user)
    }

    /// Creates `<process dir>/<prefix><n>` (n unique in the process), owned by the
    /// server's OS user.
    pub(crate) fn new_dir(&self, prefix: &str) -> PathBuf {
        process_dir().new_subdir(prefix, self.owner())
    }

    pub(crate) fn mkdir(&self, dir: &Path) {
        crate::procdir::mkdir(dir, self.owner());
    }

    /// Writes a file (replacing it) and gives it to the server's OS user.
    pub(crate) fn write_file(&self, path: &Path, contents: &str) {
        crate::procdir::write_file(path, contents, self.owner());
    }

    pub(crate) fn append_file(&self, path: &Path, contents: &str) {
        append_file(path, contents);
    }

    fn make_template(&self) {
        let dir = self.template.parent().expect("template has a parent");
        self.mkdir(dir);
        let mut initdb = self.pg("initdb");
        initdb.arg("-D").arg(&self.template).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]);
        if let Err(e) = run(&mut initdb, COMMAND_TIMEOUT) {
            panic!("cluster harness: creating the template data directory failed: {e}");
        }
        self.append_file(
            &self.template.join("postgresql.conf"),
            "\n# --- diesel-multidb test harness ---\n\
             listen_addresses = '127.0.0.1'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             wal_keep_size = '256MB'\n\
             hot_standby = on\n\
             wal_retrieve_retry_interval = '200ms'\n\
             shared_buffers = '16MB'\n\
             max_connections = 100\n\
             logging_collector = off\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n\
             password_encryption = 'scram-sha-256'\n\
             # port, unix_socket_directories, cluster_name: per node\n\
             include 'node.conf'\n",
        );
        self.write_file(
            &self.template.join("pg_hba.conf"),
            "# diesel-multidb test harness (first match wins)\n\
             # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
             host    all          app   127.0.0.1/32  scram-sha-256\n\
             local   all          all                 trust\n\
             host    all          all   127.0.0.1/32  trust\n\
             local   replication  all                 trust\n\
             host    replication  all   127.0.0.1/32  trust\n\
             # network namespaces made by the harness (netns.rs)\n\
             host    all          app   198.18.0.0/15 scram-sha-256\n\
             host    all          all   198.18.0.0/15 trust\n\
             host    replication  all   198.18.0.0/15 trust\n",
        );
    }
}

fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").is_file() {
            panic!(
                "cluster harness: PG_BIN_DIR={} has no initdb",
                dir.display()
            );
        }
        return dir;
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir(base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(|v| v.parse::<u32>().ok()) else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("initdb").is_file() && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    match best {
        Some((_, bin)) => bin,
        None => panic!(
            "cluster harness: no PostgreSQL server binaries found: /usr/lib/postgresql/<version>/bin/initdb \
             does not exist (install the Debian packages `postgresql` and `postgresql-client`) \
             and PG_BIN_DIR is not set"
        ),
    }
}

/// Removes the client-side `PG*` variables (PGHOST, PGPORT, PGUSER,
/// PGPASSWORD, PGSERVICE, ...) so the caller's environment cannot redirect
/// our commands, and pins the message language.
pub(crate) fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C");
}

// ---------------------------------------------------------------------------
// The cluster.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Standby,
    /// Was the primary until another node was promoted.
    FormerPrimary,
}

/// One server of the cluster, as the harness last left it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// `n0`, `n1`, ...
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    role: Role,
    running: bool,
    /// Index of the node's network namespace in the cluster's `Lan`.
    netns: Option<usize>,
}

replicated_node!(Node, Role::Primary, Role::Standby);

struct State {
    nodes: Vec<Node>,
    original: Layout,
}

/// A primary plus streaming standbys on 127.0.0.1. See the module docs.
pub struct PgCluster {
    dir: PathBuf,
    state: Mutex<State>,
    /// The process-wide [`PgCluster::shared`] cluster: topology changes panic.
    shared: bool,
    /// The bridge and namespaces, when some nodes run in a namespace.
    net: Option<Lan>,
}

pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Creates role [`APP_USER`] (password [`APP_PASSWORD`], not a superuser) with CREATE on
/// database `postgres` and on its schema `public`.
pub(crate) fn app_role_setup() -> [String; 3] {
    [
        format!(
            "CREATE ROLE {APP_USER} LOGIN NOSUPERUSER PASSWORD {}",
            quote_literal(APP_PASSWORD)
        ),
        format!("GRANT CREATE ON DATABASE postgres TO {APP_USER}"),
        format!("GRANT CREATE ON SCHEMA public TO {APP_USER}"),
    ]
}

fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

impl PgCluster {
    /// Starts a primary plus `standbys` streaming standbys on free 127.0.0.1
    /// ports in a fresh directory and waits until every standby streams.
    /// Panics with the failing step, command, its stderr and the server log
    /// tail if anything fails.
    pub fn start(standbys: usize) -> PgCluster {
        PgCluster::start_with_netns(standbys, &[])
    }

    /// [`start`](Self::start), with the nodes listed in `in_netns` (0 is the
    /// primary, `i` the i-th standby) each running in a network namespace of
    /// its own (see [`NetNs`]): such a node listens on its namespace address
    /// (198.18.0.0/15) and on its own 127.0.0.1, and the other nodes listen
    /// on 127.0.0.1 and on the gateway address, so replication works in every
    /// direction. [`url`](Self::url) and friends use the namespace address
    /// for such a node; the harness's own commands ([`query_one`](Self::query_one),
    /// [`wait_for_replay`](Self::wait_for_replay), ...) reach it through its
    /// unix socket, so they keep working while its link is
    /// [cut](NetNs::cut). Needs root, `ip` and `nft`; panics saying what is
    /// missing.
    pub fn start_with_netns(standbys: usize, in_netns: &[usize]) -> PgCluster {
        if let Some(bad) = in_netns.iter().find(|&&i| i > standbys) {
            panic!("PgCluster::start_with_netns: node index {bad} > {standbys} standbys");
        }
        let env = env();
        let t0 = Instant::now();
        let mut steps = Steps::new();
        let dir = env.new_dir("c");
        // From here on, a panic drops `cluster`, which stops whatever runs.
        let mut cluster = PgCluster {
            dir,
            shared: false,
            state: Mutex::new(State {
                nodes: Vec::new(),
                original: Layout::default(),
            }),
            net: None,
        };
        if !in_netns.is_empty() {
            let cluster_name = cluster
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Owned by the cluster before the hosts exist: a panic half-way
            // still deletes them.
            let lan = cluster.net.insert(Lan::create(&cluster.dir));
            for &i in in_netns {
                lan.add_host(&format!("{cluster_name}-n{i}"), i);
            }
            steps.mark("netns");
        }
        let cluster = cluster;

        // Primary: a copy of the template.
        let mut primary = cluster.new_node(0, Role::Primary);
        if let Err(e) = copy_template(&env.template, &primary.data) {
            panic!("PgCluster::start: {e}");
        }
        steps.mark("copy");
        if let Err(e) = cluster.start_node(&mut primary, true) {
            panic!("PgCluster::start: starting the primary failed: {e}");
        }
        let primary_port = primary.port;
        lock(&cluster.state).original.primary = primary_port;
        steps.mark("primary");

        let mut setup = app_role_setup().to_vec();
        setup.extend([
            "\\c template1".to_owned(),
            format!("GRANT CREATE ON SCHEMA public TO {APP_USER}"),
        ]);
        let mut psql = cluster.harness_psql(primary_port, "postgres");
        for sql in &setup {
            psql.arg("-c").arg(sql);
        }
        if let Err(e) = run(&mut psql, COMMAND_TIMEOUT) {
            panic!(
                "PgCluster::start: creating role {APP_USER} on the primary failed: {e}\n\
                 --- {} ---\n{}",
                primary.log.display(),
                log_tail_of(&primary.log, 30)
            );
        }
        steps.mark("role");

        // Standbys: base backups and starts in parallel.
        let what = "PgCluster::start: setting up standby";
        let standby_ports = in_parallel(1..=standbys, what, |i| {
            let mut node = cluster.new_node(i, Role::Standby);
            cluster.base_backup(&node, primary_port)?;
            cluster.start_node(&mut node, true)?;
            Ok(node.port)
        });
        lock(&cluster.state).original.replicas = standby_ports.clone();
        steps.mark("standbys");

        // Wait until every standby streams.
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        loop {
            let got = cluster.try_query_one(primary_port, "postgres", sql);
            if got.as_deref() == Ok(standbys.to_string().as_str()) {
                break;
            }
            if Instant::now() >= deadline {
                let detail = cluster
                    .try_query_one(
                        primary_port,
                        "postgres",
                        "SELECT string_agg(application_name || '=' || state, ', ') \
                         FROM pg_stat_replication",
                    )
                    .unwrap_or_else(|e| e);
                panic!(
                    "PgCluster::start: after {WAIT_TIMEOUT:?}, {sql} on the primary (port \
                     {primary_port}) gives {got:?}, expected {standbys}; pg_stat_replication: \
                     {detail}\n{}",
                    cluster.all_log_tails(20)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        steps.mark("streaming");
        eprintln!(
            "PgCluster::start({standbys}): primary {primary_port}, standbys {standby_ports:?}, \
             in network namespaces: nodes {in_netns:?}, ready in {:.2?} ({})",
            t0.elapsed(),
            steps.summary()
        );
        cluster
    }

    /// A process-wide cluster (primary + 2 standbys), started on first use.
    /// Tests using it must not change its topology: `kill`, `promote`,
    /// `restart` and `rejoin_as_standby` panic on it.
    pub fn shared() -> &'static PgCluster {
        static SHARED: SharedCluster<PgCluster> = SharedCluster::new();
        SHARED.get_or_start("PgCluster::shared", || {
            let mut cluster = PgCluster::start(2);
            cluster.shared = true;
            cluster
        })
    }

    /// The directory holding this cluster's nodes and unix sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port of the node that was the primary at start.
    pub fn primary_port(&self) -> u16 {
        lock(&self.state).original.primary
    }

    /// The ports of the standbys created at start, in order.
    pub fn standby_ports(&self) -> Vec<u16> {
        lock(&self.state).original.replicas.clone()
    }

    /// The port of the current primary: the original one, or the node most
    /// recently promoted.
    pub fn current_primary_port(&self) -> u16 {
        let state = lock(&self.state);
        state.original.current_primary(&state.nodes)
    }

    /// Whether the harness believes the node is running (not killed).
    pub fn is_running(&self, port: u16) -> bool {
        self.node(port).running
    }

    /// `postgres://postgres@127.0.0.1:p1,127.0.0.1:p2/postgres[?params]`.
    pub fn url(&self, ports: &[u16], params: &str) -> String {
        self.db_url("postgres", ports, params)
    }

    /// Same as [`url`](Self::url) with database `db`.
    pub fn db_url(&self, db: &str, ports: &[u16], params: &str) -> String {
        let hosts = ports.iter().map(|&p| self.host_port_of(p));
        multi_host_url(&format!("postgres://{SUPERUSER}"), hosts, db, params)
    }

    /// [`url`](Self::url) for the original primary followed by the original standbys.
    pub fn default_url(&self, params: &str) -> String {
        self.url(&self.default_ports(), params)
    }

    /// The original primary followed by the original standbys.
    pub fn default_ports(&self) -> Vec<u16> {
        lock(&self.state).original.ports()
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn node_url(&self, port: u16) -> String {
        self.node_db_url(port, "postgres")
    }

    /// `postgres://postgres@127.0.0.1:{port}/{db}`.
    pub fn node_db_url(&self, port: u16, db: &str) -> String {
        self.db_url(db, &[port], "")
    }

    /// `postgres://app:{password}@127.0.0.1:{port}/postgres` (password percent-encoded).
    pub fn app_url(&self, port: u16, password: &str) -> String {
        format!(
            "postgres://{APP_USER}:{}@{}/postgres",
            encode_userinfo(password),
            self.host_port_of(port)
        )
    }

    /// `host:port` of a node as seen from the root namespace:
    /// `127.0.0.1:port`, or `<namespace address>:port` for a node started in
    /// a network namespace by [`start_with_netns`](Self::start_with_netns).
    pub fn host_port(&self, port: u16) -> String {
        self.host_port_of(port)
    }

    /// The network namespace node `port` runs in. Panics if it runs in the
    /// root namespace.
    pub fn netns(&self, port: u16) -> &NetNs {
        let node = self.node(port);
        self.ns_of(&node).unwrap_or_else(|| {
            panic!(
                "PgCluster::netns: node {} runs in the root network namespace",
                node.label()
            )
        })
    }

    /// Runs `sql` with psql on database `postgres` of the node and returns the
    /// first column of the first row as psql prints it (`t`/`f` for booleans,
    /// empty for NULL, no rows or a statement without a result). Panics with
    /// psql's stderr on error.
    pub fn query_one(&self, port: u16, sql: &str) -> String {
        self.query_one_db(port, "postgres", sql)
    }

    /// [`query_one`](Self::query_one) on database `db`.
    pub fn query_one_db(&self, port: u16, db: &str, sql: &str) -> String {
        self.try_query_one(port, db, sql)
            .unwrap_or_else(|e| panic!("query_one on {}: {e}", self.node_label_or_port(port)))
    }

    /// [`query_one_db`](Self::query_one_db) returning psql's failure instead of panicking.
    pub fn try_query_one(&self, port: u16, db: &str, sql: &str) -> Result<String, String> {
        let mut psql = self.harness_psql(port, db);
        psql.arg("-c").arg(sql);
        let out = run(&mut psql, COMMAND_TIMEOUT)?;
        Ok(first_field(&out.stdout, '\x1f'))
    }

    /// Blocks until every running standby has replayed everything committed
    /// on the current primary before the call. Panics after 30 s naming the
    /// lagging node.
    ///
    /// The target is `pg_current_wal_insert_lsn()` on the current primary
    /// (not `pg_current_wal_lsn()`, which with `synchronous_commit = off` can
    /// lag behind commits still in WAL buffers), followed by one transaction
    /// committed with `synchronous_commit = on`, which flushes the WAL up to
    /// and past the target so the standbys receive it.
    pub fn wait_for_replay(&self) {
        let primary = lock(&self.state)
            .nodes
            .iter()
            .find(|n| n.role == Role::Primary)
            .cloned()
            .unwrap_or_else(|| panic!("wait_for_replay: this cluster has no primary"));
        let standbys = self.running_replicas();
        if !primary.running {
            panic!(
                "wait_for_replay: the current primary {} is not running",
                primary.label()
            );
        }
        let mut psql = self.harness_psql(primary.port, "postgres");
        psql.args([
            "-c",
            "SELECT pg_current_wal_insert_lsn()",
            "-c",
            "SET synchronous_commit = on",
            "-c",
            "SELECT pg_current_xact_id()",
        ]);
        let out = run(&mut psql, COMMAND_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "wait_for_replay: reading the WAL position of the primary {} failed: {e}",
                primary.label()
            )
        });
        let first = out.stdout.lines().next().unwrap_or("");
        let target = parse_lsn(first).unwrap_or_else(|| {
            panic!(
                "wait_for_replay: unexpected pg_current_wal_insert_lsn() output {:?} from {}",
                out.stdout,
                primary.label()
            )
        });

        let deadline = Instant::now() + WAIT_TIMEOUT;
        for standby in &standbys {
            loop {
                let last = match self.try_query_one(
                    standby.port,
                    "postgres",
                    "SELECT pg_last_wal_replay_lsn()",
                ) {
                    Ok(lsn) => match parse_lsn(&lsn) {
                        Some(replayed) if replayed >= target => break,
                        Some(replayed) => format!("replayed up to {}", fmt_lsn(replayed)),
                        None => format!("pg_last_wal_replay_lsn() = {lsn:?}"),
                    },
                    Err(e) => format!("query failed: {e}"),
                };
                if Instant::now() >= deadline {
                    panic!(
                        "wait_for_replay: standby {} has not replayed the primary {}'s WAL \
                         position {} after {WAIT_TIMEOUT:?}: {last}\n--- {} ---\n{}\n--- {} ---\n{}",
                        standby.label(),
                        primary.label(),
                        fmt_lsn(target),
                        standby.log.display(),
                        log_tail_of(&standby.log, 20),
                        primary.log.display(),
                        log_tail_of(&primary.log, 10),
                    );
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills a node hard (`pg_ctl stop -m immediate`) and waits until its port
    /// refuses connections.
    pub fn kill(&self, port: u16) {
        let node = self.node_to_change(port, "kill", true);
        if let Err(e) = env().stop_immediate(&node.data) {
            panic!(
                "kill: stopping {} failed: {e}\n--- {} ---\n{}",
                node.label(),
                node.log.display(),
                log_tail_of(&node.log, 20)
            );
        }
        self.update(port, |n| n.running = false);
        if node.netns.is_some() {
            // pg_ctl -w waited for postmaster.pid to go, which happens after
            // the sockets closed; the namespace address may be cut.
            return;
        }
        if !wait_refused(port, WAIT_TIMEOUT) {
            panic!(
                "kill: port {port} of {} still accepts connections {WAIT_TIMEOUT:?} after \
                 pg_ctl stop",
                node.label()
            );
        }
    }

    /// Promotes a standby (`pg_ctl promote -w`), waits until
    /// `pg_is_in_recovery()` is false on it, and re-points the other standbys
    /// at it (see the module docs for when they can follow).
    pub fn promote(&self, port: u16) {
        self.forbid_on_shared("promote");
        let node = self.node(port);
        if node.role != Role::Standby || !node.running {
            panic!("promote: node {} is not a running standby", node.label());
        }
        let mut promote = env().pg("pg_ctl");
        promote
            .arg("promote")
            .arg("-D")
            .arg(&node.data)
            .args(["-w", "-t", "60"]);
        if let Err(e) = run(&mut promote, COMMAND_TIMEOUT) {
            panic!(
                "promote: promoting {} failed: {e}\n--- {} ---\n{}",
                node.label(),
                node.log.display(),
                log_tail_of(&node.log, 20)
            );
        }
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let got = self.try_query_one(port, "postgres", "SELECT pg_is_in_recovery()");
            if got.as_deref() == Ok("f") {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "promote: {} still reports pg_is_in_recovery() = {got:?} after {WAIT_TIMEOUT:?}\n\
                     --- {} ---\n{}",
                    node.label(),
                    node.log.display(),
                    log_tail_of(&node.log, 20)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }

        let others: Vec<Node> = {
            let mut state = lock(&self.state);
            for n in state.nodes.iter_mut() {
                if n.port == port {
                    n.role = Role::Primary;
                } else if n.role == Role::Primary {
                    n.role = Role::FormerPrimary;
                }
            }
            state
                .nodes
                .iter()
                .filter(|n| n.role == Role::Standby)
                .cloned()
                .collect()
        };
        let promoted = self.node(port);
        for other in others {
            // Later lines of postgresql.auto.conf win; primary_conninfo is
            // reloadable (PostgreSQL >= 13).
            let host = self.addr_between(&other, &promoted);
            env().append_file(
                &other.data.join("postgresql.auto.conf"),
                &format!("primary_conninfo = 'host={host} port={port} user={SUPERUSER}'\n"),
            );
            if other.running {
                if let Err(e) =
                    self.try_query_one(other.port, "postgres", "SELECT pg_reload_conf()")
                {
                    panic!(
                        "promote: reloading {} to follow the new primary failed: {e}",
                        other.label()
                    );
                }
            }
        }
    }

    /// Restarts a stopped node with the same data directory and port.
    pub fn restart(&self, port: u16) {
        let mut node = self.node_to_change(port, "restart", false);
        if let Err(e) = self.start_node(&mut node, false) {
            panic!("restart: {e}");
        }
    }

    /// Turns a node (typically a killed former primary) back into a standby
    /// of the current primary: stops it if running, replaces its data
    /// directory with a fresh base backup, and starts it on the same port.
    pub fn rejoin_as_standby(&self, port: u16) {
        self.forbid_on_shared("rejoin_as_standby");
        let mut node = self.node(port);
        let primary = self.current_primary_port();
        if port == primary {
            panic!(
                "rejoin_as_standby: node {} is the current primary",
                node.label()
            );
        }
        if node.running {
            self.kill(port);
        }
        if let Err(e) = fs::remove_dir_all(&node.data) {
            panic!("rejoin_as_standby: rm -rf {}: {e}", node.data.display());
        }
        if let Err(e) = self.base_backup(&node, primary) {
            panic!("rejoin_as_standby: {e}");
        }
        self.update(port, |n| n.role = Role::Standby);
        node.role = Role::Standby;
        if let Err(e) = self.start_node(&mut node, false) {
            panic!("rejoin_as_standby: {e}");
        }
    }

    /// Creates a fresh database on the current primary, grants CREATE on it
    /// to `app`, and waits until it exists on every running standby. Returns
    /// its name (`prefix` lowercased, non `[a-z0-9_]` replaced by `_`, plus
    /// a unique suffix).
    pub fn create_database(&self, prefix: &str) -> String {
        let name = database_name(prefix);
        let primary = self.current_primary_port();
        self.query_one(primary, &format!("CREATE DATABASE {}", quote_ident(&name)));
        self.query_one(
            primary,
            &format!(
                "GRANT CREATE ON DATABASE {} TO {APP_USER}",
                quote_ident(&name)
            ),
        );
        self.wait_for_replay();
        let check = format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            quote_literal(&name)
        );
        self.require_on_replicas(&check, |label| {
            format!("create_database: {name} does not exist on standby {label} after replay")
        });
        name
    }

    /// The server log of a node.
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.node(port).log
    }

    /// The last `lines` lines of a node's server log (for failure messages).
    pub fn log_tail(&self, port: u16, lines: usize) -> String {
        log_tail_of(&self.node(port).log, lines)
    }

    // --- internals -----------------------------------------------------------

    /// Creates `n{i}/` (not its data directory).
    fn new_node(&self, i: usize, role: Role) -> Node {
        let name = format!("n{i}");
        let dir = self.dir.join(&name);
        env().mkdir(&dir);
        Node {
            name,
            port: 0,
            data: dir.join("data"),
            log: dir.join("server.log"),
            role,
            running: false,
            netns: self.net.as_ref().and_then(|lan| lan.host_for_node(i)),
        }
    }

    fn ns_of(&self, node: &Node) -> Option<&NetNs> {
        let lan = self.net.as_ref()?;
        node.netns.map(|i| lan.host(i))
    }

    /// The address clients in the root namespace use for `node`.
    fn addr_of(&self, node: &Node) -> Ipv4Addr {
        self.ns_of(node).map_or(Ipv4Addr::LOCALHOST, NetNs::addr)
    }

    /// The address `from` uses to reach `to`.
    fn addr_between(&self, from: &Node, to: &Node) -> Ipv4Addr {
        match (self.ns_of(from), self.ns_of(to)) {
            (_, Some(to)) => to.addr(),
            (Some(from), None) => from.gateway(),
            (None, None) => Ipv4Addr::LOCALHOST,
        }
    }

    /// `host:port` of a node as clients in the root namespace reach it;
    /// `127.0.0.1:port` for a port that is no node of this cluster.
    fn host_port_of(&self, port: u16) -> String {
        let state = lock(&self.state);
        let addr = state
            .nodes
            .iter()
            .find(|n| n.port == port)
            .map_or(Ipv4Addr::LOCALHOST, |n| self.addr_of(n));
        format!("{addr}:{port}")
    }

    /// psql for the harness's own use: 127.0.0.1 for root-namespace nodes,
    /// the unix socket for namespaced ones (works while their link is cut).
    fn harness_psql(&self, port: u16, db: &str) -> Command {
        let in_netns = {
            let state = lock(&self.state);
            state
                .nodes
                .iter()
                .any(|n| n.port == port && n.netns.is_some())
        };
        if in_netns {
            env().psql_at(&self.dir.display().to_string(), port, db)
        } else {
            env().psql(port, db)
        }
    }

    fn base_backup(&self, node: &Node, primary_port: u16) -> Result<(), String> {
        // primary_conninfo (-R) gets this host: the address the standby
        // reaches the primary at from where it runs.
        let host = self
            .addr_between(node, &self.node(primary_port))
            .to_string();
        let mut backup = env().pg("pg_basebackup");
        backup
            .args(["-h", &host, "-U", SUPERUSER])
            .arg("-p")
            .arg(primary_port.to_string())
            .arg("-D")
            .arg(&node.data)
            .args(["-R", "-X", "stream", "-c", "fast", "-N"]);
        run(&mut backup, COMMAND_TIMEOUT)
            .map(|_| ())
            .map_err(|e| format!("base backup for {} failed: {e}", node.name))
    }

    /// Starts a node with `pg_ctl start -w`. With `new_port`, picks a free
    /// port and retries on "Address already in use"; otherwise reuses
    /// `node.port`. Registers the node (running) on success.
    fn start_node(&self, node: &mut Node, new_port: bool) -> Result<(), String> {
        let env = env();
        for attempt in 1..=PORT_ATTEMPTS {
            if new_port {
                node.port = pick_port();
            }
            let mut conf = format!(
                "port = {}\nunix_socket_directories = {}\ncluster_name = '{}_{}'\n",
                node.port,
                quote_literal(&self.dir.display().to_string()),
                node.name,
                node.port
            );
            if let Some(lan) = &self.net {
                let own = self.ns_of(node).map_or(lan.gateway(), NetNs::addr);
                conf.push_str(&format!("listen_addresses = '127.0.0.1,{own}'\n"));
            }
            env.write_file(&node.data.join("node.conf"), &conf);
            let offset = file_len(&node.log);
            let mut start = env.pg_in("pg_ctl", self.ns_of(node));
            start
                .arg("start")
                .arg("-D")
                .arg(&node.data)
                .arg("-l")
                .arg(&node.log)
                .args(["-w", "-t", "60"]);
            match run(&mut start, COMMAND_TIMEOUT) {
                Ok(_) => {
                    let mut state = lock(&self.state);
                    node.running = true;
                    upsert_by_name(&mut state.nodes, node);
                    return Ok(());
                }
                Err(e) => {
                    let log = read_from(&node.log, offset);
                    if new_port && attempt < PORT_ATTEMPTS && log.contains("Address already in use")
                    {
                        continue;
                    }
                    return Err(start_failure(node, &e, &log));
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

impl NodeList for PgCluster {
    type Node = Node;
    const KIND: &'static str = "PgCluster";

    fn with_nodes<R>(&self, f: impl FnOnce(&mut Vec<Node>) -> R) -> R {
        f(&mut lock(&self.state).nodes)
    }

    fn is_shared(&self) -> bool {
        self.shared
    }

    fn harness_query(&self, port: u16, sql: &str) -> String {
        self.query_one(port, sql)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Look at the directory rather than at `state`, so that a server
        // whose start timed out half-way is stopped too.
        let mut all_stopped = true;
        let entries = fs::read_dir(&self.dir).map(|e| e.flatten().collect::<Vec<_>>());
        for entry in entries.unwrap_or_default() {
            let data = entry.path().join("data");
            if !data.join("postmaster.pid").exists() {
                continue;
            }
            if let Err(e) = env().stop_immediate(&data) {
                all_stopped = false;
                eprintln!(
                    "PgCluster::drop: stopping {} failed (the reaper will retry at exit): {e}",
                    data.display()
                );
            }
        }
        // Namespaces, veths, bridge (killing whatever still runs inside).
        drop(self.net.take());
        if !all_stopped {
            return;
        }
        remove_dir_at_drop("PgCluster::drop", &self.dir);
    }
}
