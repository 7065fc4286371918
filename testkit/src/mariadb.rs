//! Test harness: real MariaDB clusters (one source plus GTID replicas) started from the
//! MariaDB binaries installed on this machine.
//!
//! * Binaries: `mariadbd` (or `mysqld`), `mariadb-install-db` (or `mysql_install_db`) and
//!   the `mariadb` (or `mysql`) client, looked up in `$MARIADB_BIN_DIR` if set, else in
//!   `/usr/sbin`, `/usr/bin`, `/usr/local/sbin`, `/usr/local/bin` and `$PATH`. On Debian
//!   they come with the packages `mariadb-server` and `mariadb-client`. A MariaDB service
//!   running on the machine is neither needed nor touched: the harness uses its own data
//!   directories, sockets and ports, starts `mariadbd` with `--defaults-file=<its own
//!   my.cnf>` and runs every other binary with `--no-defaults`, so nothing under
//!   `/etc/mysql` or `~/.my.cnf` is read, and it only ever connects to its own nodes over
//!   127.0.0.1.
//! * OS user: when the effective uid is 0, `mariadbd` is started as root with
//!   `user = $MARIADB_OS_USER` (default `mysql`) in its config, so the server itself
//!   switches to that user right after reading its config (and `mariadb-install-db` gets
//!   `--user` likewise). That is MariaDB's own mechanism (no `runuser` in between, so the
//!   harness holds the server's real pid) and avoids `--user=root`, which mariadbd only
//!   accepts as an explicit opt-in. Otherwise everything runs as the current user.
//! * Files live in the shared per-process directory (see `procdir.rs`):
//!   `mariadb-template/data` (one `mariadb-install-db` per process, about 0.6 s, copied
//!   with `cp -a` for every node) and one `m<N>/` per cluster with one `n<i>/` per node:
//!   `n<i>/data` (datadir, binary logs and relay logs included), `n<i>/my.cnf` (rewritten
//!   at every start), `n<i>/server.log` (error log), `n<i>/mysqld.sock`, `n<i>/tmp`, and
//!   `n<i>/harness.pid` (written by the harness the moment it spawns the server; the
//!   reaper reads it).
//! * Nodes: `n0` is the source, `n1`..`nN` the replicas, all started in parallel from the
//!   template. `server_id` is `i + 1` (a node remade by [`MariaDbCluster::rejoin_as_replica`]
//!   gets a new one). Every node has `log_bin`, `log_slave_updates`, `binlog_format=ROW`,
//!   `gtid_strict_mode=ON`, `gtid_domain_id=0` and `skip_slave_start` (the harness, not the
//!   server, decides when a replica replicates and from where). Replicas have
//!   `read_only=ON` and replicate with `CHANGE MASTER TO MASTER_HOST='127.0.0.1', ...,
//!   MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1`. Every node has the complete
//!   binary log since the template, so any node can serve any other (even a fresh one).
//! * Speed and size (throw-away data on tmpfs): `innodb_flush_log_at_trx_commit=2`,
//!   `sync_binlog=0`, no doublewrite, no native AIO, 16 MB buffer pool, 8 MB redo log, no
//!   performance schema. Start of a source plus two replicas: about 0.4-0.5 s on this
//!   2-core machine (plus the template once per process).
//! * Accounts: `root` without password over 127.0.0.1 (and the socket) for the harness
//!   ([`MariaDbCluster::SUPERUSER`]; `query_one` uses it); the application user
//!   [`MariaDbCluster::APP_USER`]@`%` with password [`MariaDbCluster::APP_PASSWORD`] and
//!   `ALL PRIVILEGES` on database `test` only (no SUPER, no global privilege: writes on a
//!   `read_only` node fail for it, and `SHOW SLAVE STATUS` is denied to it); and
//!   [`MariaDbCluster::REPLICATION_USER`]@`%` with `REPLICATION SLAVE`. All three are
//!   created on the source at start and reach the replicas through replication. `root`
//!   has `ALL PRIVILEGES`, which in MariaDB includes `READ ONLY ADMIN`: root can write on
//!   a `read_only` replica, the application user cannot (MariaDB has no
//!   `super_read_only`). Such a root write gets the replica's own GTID in domain 0 (say
//!   `0-2-8`), and under `gtid_strict_mode` the next transaction from the source
//!   (`0-1-8`) stops the replica's SQL thread ("out-of-order sequence number"): do not
//!   write on replicas as root. Character set `utf8mb4` (`utf8mb4_general_ci`), as
//!   Debian's packaged server is configured.
//! * GTID variables: `@@gtid_binlog_pos` is the last GTID per domain in a node's own
//!   binary log (with `log_slave_updates` a replica's equals what it applied);
//!   `@@gtid_slave_pos` is the last GTID applied by replication (empty on a node that
//!   never replicated; `RESET SLAVE ALL` does not clear it, so a promoted node keeps its
//!   old value while its `@@gtid_binlog_pos` moves on); `@@gtid_current_pos` is the newer
//!   of the two per domain; `@@last_gtid` is per session: the GTID of the session's last
//!   committed transaction, empty before it commits one.
//! * Cleanup: dropping a [`MariaDbCluster`] SIGKILLs its servers and removes its
//!   directory; when the process dies in any way (SIGKILL included) the shared reaper
//!   SIGKILLs every `mariadbd` whose pid is in a `harness.pid` under the process
//!   directory and removes it.
//!
//! Failover: [`MariaDbCluster::promote`] stops the replica's IO thread, lets a running SQL
//! thread apply what was already received, then runs `STOP SLAVE; RESET SLAVE ALL; SET
//! GLOBAL read_only=OFF` and re-points the other replicas at it (running ones at once,
//! stopped ones when restarted) with `MASTER_USE_GTID=slave_pos`. A replica that had
//! applied transactions the promoted node never got cannot follow it under
//! `gtid_strict_mode`; [`MariaDbCluster::wait_for_replication`] then panics naming it with
//! its replication error. A killed former source restarted with
//! [`MariaDbCluster::restart`] comes back writable and replicating from nobody (split
//! brain); [`MariaDbCluster::rejoin_as_replica`] brings it back as a replica instead.

use crate::common::{
    copy_template, database_name, first_field, in_parallel, multi_host_url, remove_dir_at_drop,
    replicated_node, start_failure, upsert_by_name, wait_refused, ClusterNode, Layout, NodeList,
    SharedCluster, Steps,
};
use crate::procdir::{
    encode_userinfo, file_len, log_tail_of, mkdir, process_dir, read_from, write_file, ServerUser,
};
use crate::process::{describe, lock, pick_port, run};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long any node-level wait (replication, catch-up, shutdown) may take before the
/// harness panics.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `mariadbd` may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for one external command (mariadb-install-db, cp, the client).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts to find a free port when a server start hits "Address already in use".
const PORT_ATTEMPTS: usize = 8;

/// Server settings shared by the template (`mariadb-install-db`) and every node; the
/// storage ones must match between the two.
const COMMON_SETTINGS: &[(&str, &str)] = &[
    ("innodb_buffer_pool_size", "16M"),
    ("innodb_log_file_size", "8M"),
    ("innodb_log_buffer_size", "4M"),
    // No O_DIRECT/io_uring games on tmpfs; io_uring also needs locked memory that
    // containers may not grant.
    ("innodb_use_native_aio", "0"),
    ("innodb_doublewrite", "0"),
    ("character_set_server", "utf8mb4"),
    ("collation_server", "utf8mb4_general_ci"),
    ("skip_name_resolve", "ON"),
];

// ---------------------------------------------------------------------------
// Process-wide environment: binaries, OS user, template data directory.
// ---------------------------------------------------------------------------

struct Env {
    mariadbd: PathBuf,
    client: PathBuf,
    /// The OS user `mariadbd` switches to (when we are root).
    user: Option<ServerUser>,
    /// The shared process directory, see `procdir.rs`.
    root: PathBuf,
    /// `root/mariadb-template/data`, made by mariadb-install-db; never started.
    template: PathBuf,
    /// `mariadbd --version`.
    version: String,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(Env::init)
}

impl Env {
    fn init() -> Env {
        let t0 = Instant::now();
        let mariadbd = find_program(&["mariadbd", "mysqld"]);
        let install_db = find_program(&["mariadb-install-db", "mysql_install_db"]);
        let client = find_program(&["mariadb", "mysql"]);
        let user = ServerUser::when_root("MARIADB_OS_USER", "mysql", "MariaDB");
        let mut version = Command::new(&mariadbd);
        clean_env(&mut version);
        version.arg("--version");
        let version = run(&mut version, COMMAND_TIMEOUT)
            .map(|out| out.stdout.trim().to_owned())
            .unwrap_or_else(|e| panic!("cluster harness: `mariadbd --version` failed: {e}"));
        let root = process_dir().root().to_path_buf();
        let env = Env {
            mariadbd,
            client,
            user,
            template: root.join("mariadb-template").join("data"),
            root,
            version,
        };
        env.make_template(&install_db);
        eprintln!(
            "cluster harness: {}, servers run as {}, template ready in {:.2?} ({})",
            env.version,
            env.user
                .as_ref()
                .map_or("the current user", |user| user.name.as_str()),
            t0.elapsed(),
            env.root.display()
        );
        env
    }

    fn owner(&self) -> Option<&ServerUser> {
        self.user.as_ref()
    }

    fn make_template(&self, install_db: &Path) {
        let dir = self.template.parent().expect("template has a parent");
        mkdir(dir, self.owner());
        // Only the loopback root accounts stay (mariadb-install-db also makes one for the
        // host name, which skip_name_resolve would warn about at every start).
        let extra = dir.join("bootstrap.sql");
        write_file(
            &extra,
            "DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');\n\
             DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');\n",
            self.owner(),
        );
        let mut cmd = Command::new(install_db);
        clean_env(&mut cmd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.template.display()))
            .arg(format!("--extra-file={}", extra.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-log-bin",
                // Never look the host name up (CI machines may not resolve their own).
                "--skip-name-resolve",
                "--force",
            ])
            .current_dir(dir);
        if let Some(user) = self.owner() {
            cmd.arg(format!("--user={}", user.name));
        }
        for (key, value) in COMMON_SETTINGS {
            cmd.arg(format!("--{key}={value}"));
        }
        if let Err(e) = run(&mut cmd, COMMAND_TIMEOUT) {
            panic!("cluster harness: creating the MariaDB template data directory failed: {e}");
        }
    }

    /// The `mariadb` client for one node, as root over 127.0.0.1, batch mode, no column
    /// names, no option files.
    fn client(&self, port: u16, db: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.client);
        clean_env(&mut cmd);
        cmd.arg("--no-defaults")
            .args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--user={}", MariaDbCluster::SUPERUSER))
            .args([
                "--batch",
                "--skip-column-names",
                "--skip-ssl",
                "--connect-timeout=10",
                "--default-character-set=utf8mb4",
            ])
            .current_dir(&self.root);
        if let Some(db) = db {
            cmd.arg(format!("--database={db}"));
        }
        cmd
    }
}

fn find_program(names: &[&str]) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("MARIADB_BIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.extend(
        ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
            .iter()
            .map(PathBuf::from),
    );
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for dir in &dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "cluster harness: none of {names:?} found in $MARIADB_BIN_DIR, /usr/sbin, /usr/bin, \
         /usr/local/sbin, /usr/local/bin or $PATH; install the Debian packages \
         `mariadb-server` and `mariadb-client` (no MariaDB service needs to run)"
    )
}

/// Removes the variables the MariaDB client and server read (`MYSQL_HOST`, `MYSQL_PWD`,
/// `MYSQL_TCP_PORT`, `MYSQL_UNIX_PORT`, `MYSQL_HOME`, `MARIADB_*`, ...) so the caller's
/// environment cannot redirect our commands, and pins the message language.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("MYSQL") || k.starts_with("MARIADB"))
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C");
}

// ---------------------------------------------------------------------------
// GTID positions.
// ---------------------------------------------------------------------------

/// A GTID position (`domain-server-seq,...`) as domain -> seq.
fn parse_gtid_pos(s: &str) -> Option<BTreeMap<u32, u64>> {
    let mut pos = BTreeMap::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.split('-');
        let domain = fields.next()?.parse().ok()?;
        let _server: u32 = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        pos.insert(domain, seq);
    }
    Some(pos)
}

/// Whether `pos` has reached `target` in every domain of `target`.
fn gtid_reached(pos: &BTreeMap<u32, u64>, target: &BTreeMap<u32, u64>) -> bool {
    target
        .iter()
        .all(|(domain, seq)| pos.get(domain).is_some_and(|s| s >= seq))
}

// ---------------------------------------------------------------------------
// The cluster.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Source,
    Replica,
    /// Was the source until another node was promoted.
    FormerSource,
}

/// One server of the cluster, as the harness last left it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// `n0`, `n1`, ...
    name: String,
    port: u16,
    server_id: u32,
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    role: Role,
    read_only: bool,
    running: bool,
}

replicated_node!(Node, Role::Source, Role::Replica);

impl Node {
    fn config(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }
}

struct State {
    nodes: Vec<Node>,
    /// The running servers, by node name.
    children: HashMap<String, Child>,
    original: Layout,
    next_server_id: u32,
}

/// A MariaDB source plus GTID replicas on 127.0.0.1. See the module docs.
pub struct MariaDbCluster {
    dir: PathBuf,
    state: Mutex<State>,
    /// The process-wide [`MariaDbCluster::shared`] cluster: topology changes panic.
    shared: bool,
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl MariaDbCluster {
    /// The harness's superuser (`root`, no password, over 127.0.0.1 and the socket).
    pub const SUPERUSER: &'static str = "root";
    /// The application user: `ALL PRIVILEGES` on [`DATABASE`](Self::DATABASE) only.
    pub const APP_USER: &'static str = "app";
    /// Password of [`APP_USER`](Self::APP_USER).
    pub const APP_PASSWORD: &'static str = "app-secret";
    /// The database created on the source at start (and replicated).
    pub const DATABASE: &'static str = "test";
    /// The user replicas connect to their source as (`REPLICATION SLAVE`).
    pub const REPLICATION_USER: &'static str = "repl";
    /// Password of [`REPLICATION_USER`](Self::REPLICATION_USER).
    pub const REPLICATION_PASSWORD: &'static str = "repl-secret";

    /// Starts a source plus `replicas` GTID replicas on free 127.0.0.1 ports in a fresh
    /// directory, creates the users and database `test` on the source, and waits until
    /// every replica has replicated them. Panics with the failing step, command, its
    /// stderr and the server log tail if anything fails.
    pub fn start(replicas: usize) -> MariaDbCluster {
        let env = env();
        let t0 = Instant::now();
        let mut steps = Steps::new();
        let dir = process_dir().new_subdir("m", env.owner());
        // From here on, a panic drops `cluster`, which stops whatever runs.
        let cluster = MariaDbCluster {
            dir,
            shared: false,
            state: Mutex::new(State {
                nodes: Vec::new(),
                children: HashMap::new(),
                original: Layout::default(),
                next_server_id: u32::try_from(replicas).unwrap_or(u32::MAX - 1) + 2,
            }),
        };

        // Every node is a copy of the template; all start in parallel.
        let what = "MariaDbCluster::start: setting up node";
        let ports = in_parallel(0..=replicas, what, |i| {
            let role = if i == 0 { Role::Source } else { Role::Replica };
            let mut node = cluster.new_node(i, role);
            copy_template(&env.template, &node.data)?;
            cluster.start_node(&mut node, true)?;
            Ok(node.port)
        });
        let source_port = ports[0];
        let replica_ports = ports[1..].to_vec();
        lock(&cluster.state).original = Layout {
            primary: source_port,
            replicas: replica_ports.clone(),
        };
        steps.mark("nodes");

        let setup = [
            format!(
                "CREATE USER {}@'%' IDENTIFIED BY {}",
                quote_literal(Self::REPLICATION_USER),
                quote_literal(Self::REPLICATION_PASSWORD)
            ),
            format!(
                "GRANT REPLICATION SLAVE ON *.* TO {}@'%'",
                quote_literal(Self::REPLICATION_USER)
            ),
            format!("CREATE DATABASE {}", quote_ident(Self::DATABASE)),
            format!(
                "CREATE USER {}@'%' IDENTIFIED BY {}",
                quote_literal(Self::APP_USER),
                quote_literal(Self::APP_PASSWORD)
            ),
            format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {}@'%'",
                quote_ident(Self::DATABASE),
                quote_literal(Self::APP_USER)
            ),
        ];
        if let Err(e) = cluster.try_query_one(source_port, None, &setup.join(";\n")) {
            panic!(
                "MariaDbCluster::start: creating the users and database on the source failed: \
                 {e}\n{}",
                cluster.all_log_tails(20)
            );
        }
        steps.mark("users");

        for &port in &replica_ports {
            if let Err(e) = cluster.configure_replica(port, source_port) {
                panic!("MariaDbCluster::start: {e}\n{}", cluster.all_log_tails(20));
            }
        }
        cluster.wait_for_replication();
        steps.mark("replicating");
        eprintln!(
            "MariaDbCluster::start({replicas}): source {source_port}, replicas \
             {replica_ports:?}, ready in {:.2?} ({})",
            t0.elapsed(),
            steps.summary()
        );
        cluster
    }

    /// A process-wide cluster (source + 2 replicas), started on first use. Tests using it
    /// must not change its topology or replication: `kill`, `promote`, `restart`,
    /// `rejoin_as_replica`, `stop_sql_thread`, `start_sql_thread` and `set_read_only`
    /// panic on it.
    pub fn shared() -> &'static MariaDbCluster {
        static SHARED: SharedCluster<MariaDbCluster> = SharedCluster::new();
        SHARED.get_or_start("MariaDbCluster::shared", || {
            let mut cluster = MariaDbCluster::start(2);
            cluster.shared = true;
            cluster
        })
    }

    /// `mariadbd --version` of the binary the harness runs.
    pub fn server_version() -> &'static str {
        &env().version
    }

    /// The directory holding this cluster's nodes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port of the node that was the source at start.
    pub fn source_port(&self) -> u16 {
        lock(&self.state).original.primary
    }

    /// The ports of the replicas created at start, in order.
    pub fn replica_ports(&self) -> Vec<u16> {
        lock(&self.state).original.replicas.clone()
    }

    /// The port of the current source: the original one, or the node most recently
    /// promoted.
    pub fn current_source_port(&self) -> u16 {
        let state = lock(&self.state);
        state.original.current_primary(&state.nodes)
    }

    /// The original source followed by the original replicas.
    pub fn default_ports(&self) -> Vec<u16> {
        lock(&self.state).original.ports()
    }

    /// Whether the harness believes the node is running (not killed).
    pub fn is_running(&self, port: u16) -> bool {
        self.node(port).running
    }

    /// The `server_id` of a node.
    pub fn server_id(&self, port: u16) -> u32 {
        self.node(port).server_id
    }

    /// `mysql://app:app-secret@127.0.0.1:p1,127.0.0.1:p2/test[?params]`.
    pub fn url(&self, ports: &[u16], params: &str) -> String {
        self.db_url(Self::DATABASE, ports, params)
    }

    /// Same as [`url`](Self::url) with database `db`.
    pub fn db_url(&self, db: &str, ports: &[u16], params: &str) -> String {
        let user = format!(
            "mysql://{}:{}",
            Self::APP_USER,
            encode_userinfo(Self::APP_PASSWORD)
        );
        let hosts = ports.iter().map(|p| format!("127.0.0.1:{p}"));
        multi_host_url(&user, hosts, db, params)
    }

    /// [`url`](Self::url) for the original source followed by the original replicas.
    pub fn default_url(&self, params: &str) -> String {
        self.url(&self.default_ports(), params)
    }

    /// `mysql://app:app-secret@127.0.0.1:{port}/test`, for `MysqlConnection::establish`.
    pub fn node_url(&self, port: u16) -> String {
        self.node_db_url(port, Self::DATABASE)
    }

    /// `mysql://app:app-secret@127.0.0.1:{port}/{db}`.
    pub fn node_db_url(&self, port: u16, db: &str) -> String {
        self.db_url(db, &[port], "")
    }

    /// `mysql://app:{password}@127.0.0.1:{port}/test` (password percent-encoded).
    pub fn app_url(&self, port: u16, password: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{port}/{}",
            Self::APP_USER,
            encode_userinfo(password),
            Self::DATABASE
        )
    }

    /// `mysql://root@127.0.0.1:{port}/test`: the superuser, which may write on read-only
    /// replicas.
    pub fn superuser_url(&self, port: u16) -> String {
        format!(
            "mysql://{}@127.0.0.1:{port}/{}",
            Self::SUPERUSER,
            Self::DATABASE
        )
    }

    /// Runs `sql` (one or more `;`-separated statements) as root with the `mariadb` client
    /// in database `test` of the node and returns the first column of the first row it
    /// prints (batch mode: `NULL` for NULL, `\t`, `\n` and `\\` escaped; empty for no rows
    /// or statements without a result). Panics with the client's stderr on error.
    pub fn query_one(&self, port: u16, sql: &str) -> String {
        self.query_one_db(port, Self::DATABASE, sql)
    }

    /// [`query_one`](Self::query_one) in database `db`.
    pub fn query_one_db(&self, port: u16, db: &str, sql: &str) -> String {
        self.try_query_one(port, Some(db), sql)
            .unwrap_or_else(|e| panic!("query_one on {}: {e}", self.node_label_or_port(port)))
    }

    /// [`query_one_db`](Self::query_one_db) returning the client's failure instead of
    /// panicking (`db: None`: no default database). Still panics if `port` is not a node
    /// of this cluster: the harness never connects anywhere else.
    pub fn try_query_one(&self, port: u16, db: Option<&str>, sql: &str) -> Result<String, String> {
        // Never let a stray port number reach another server (such as the machine's own
        // MariaDB on 3306).
        self.node(port);
        let mut client = env().client(port, db);
        client.arg("--execute").arg(sql);
        let out = run(&mut client, COMMAND_TIMEOUT)?;
        Ok(first_field(&out.stdout, '\t'))
    }

    /// `SHOW SLAVE STATUS` of a node as (column, value) pairs; empty if it has no
    /// replication configured.
    pub fn slave_status(&self, port: u16) -> Vec<(String, String)> {
        self.try_slave_status(port)
            .unwrap_or_else(|e| panic!("slave_status on {}: {e}", self.node_label_or_port(port)))
    }

    /// Blocks until every running replica's `@@gtid_slave_pos` has reached the current
    /// source's `@@gtid_binlog_pos` as read at the call (every transaction committed on
    /// the source before the call is applied on every replica). Panics after 30 s naming
    /// the lagging replica, with its replication status and log.
    pub fn wait_for_replication(&self) {
        let replicas: Vec<u16> = self.running_replicas().iter().map(|n| n.port).collect();
        self.wait_for(&replicas, "wait_for_replication");
    }

    /// [`wait_for_replication`](Self::wait_for_replication) for one replica only.
    pub fn wait_for_replica(&self, port: u16) {
        self.require_running_replica(port, "wait_for_replica");
        self.wait_for(&[port], "wait_for_replica");
    }

    /// SIGKILLs a node and waits until its port refuses connections.
    pub fn kill(&self, port: u16) {
        let node = self.node_to_change(port, "kill", true);
        let child = {
            let mut state = lock(&self.state);
            if let Some(n) = state.nodes.iter_mut().find(|n| n.port == port) {
                n.running = false;
            }
            state.children.remove(&node.name)
        };
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !wait_refused(port, WAIT_TIMEOUT) {
            panic!(
                "kill: port {port} of {} still accepts connections {WAIT_TIMEOUT:?} after \
                 SIGKILL",
                node.label()
            );
        }
    }

    /// `STOP SLAVE SQL_THREAD` on a replica: it keeps receiving the source's binary log but
    /// applies nothing, so it lags.
    pub fn stop_sql_thread(&self, port: u16) {
        self.forbid_on_shared("stop_sql_thread");
        self.require_running_replica(port, "stop_sql_thread");
        self.query_one(port, "STOP SLAVE SQL_THREAD");
    }

    /// `START SLAVE SQL_THREAD` on a replica: it applies what it received meanwhile.
    pub fn start_sql_thread(&self, port: u16) {
        self.forbid_on_shared("start_sql_thread");
        self.require_running_replica(port, "start_sql_thread");
        self.query_one(port, "START SLAVE SQL_THREAD");
    }

    /// Makes a replica the source: stops its IO thread, lets a running SQL thread apply
    /// what was already received (transactions received but not applied are discarded if
    /// the SQL thread is stopped), runs `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL
    /// read_only=OFF`, and re-points the other replicas at it with
    /// `MASTER_USE_GTID=slave_pos` (stopped ones when they are restarted).
    pub fn promote(&self, port: u16) {
        self.forbid_on_shared("promote");
        let node = self.require_running_replica(port, "promote");
        self.query_one(port, "STOP SLAVE IO_THREAD");
        let status: HashMap<String, String> = self.slave_status(port).into_iter().collect();
        let field = |name: &str| status.get(name).cloned().unwrap_or_default();
        if field("Slave_SQL_Running") == "Yes" {
            let received = field("Gtid_IO_Pos");
            let waited = self.query_one(
                port,
                &format!(
                    "SELECT MASTER_GTID_WAIT({}, {})",
                    quote_literal(&received),
                    WAIT_TIMEOUT.as_secs()
                ),
            );
            if waited != "0" {
                panic!(
                    "promote: {} did not apply the received GTID position {received:?} within \
                     {WAIT_TIMEOUT:?} (MASTER_GTID_WAIT = {waited})\n--- {} ---\n{}",
                    node.label(),
                    node.log.display(),
                    log_tail_of(&node.log, 20)
                );
            }
        }
        self.query_one(
            port,
            "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF",
        );

        let others: Vec<Node> = {
            let mut state = lock(&self.state);
            for n in state.nodes.iter_mut() {
                if n.port == port {
                    n.role = Role::Source;
                    n.read_only = false;
                } else if n.role == Role::Source {
                    n.role = Role::FormerSource;
                }
            }
            state
                .nodes
                .iter()
                .filter(|n| n.role == Role::Replica && n.running)
                .cloned()
                .collect()
        };
        for other in others {
            if let Err(e) = self.configure_replica(other.port, port) {
                panic!("promote: {e}");
            }
        }
    }

    /// `SET GLOBAL read_only = ON|OFF` on a node (kept across [`restart`](Self::restart)).
    pub fn set_read_only(&self, port: u16, read_only: bool) {
        self.node_to_change(port, "set_read_only", true);
        let value = if read_only { "ON" } else { "OFF" };
        self.query_one(port, &format!("SET GLOBAL read_only = {value}"));
        self.update(port, |n| n.read_only = read_only);
    }

    /// Restarts a stopped node with the same data directory, port and settings. A replica
    /// then replicates from the current source again; a former source comes back
    /// writable and replicating from nobody (see the module docs).
    pub fn restart(&self, port: u16) {
        let mut node = self.node_to_change(port, "restart", false);
        if let Err(e) = self.start_node(&mut node, false) {
            panic!("restart: {e}");
        }
        if node.role == Role::Replica {
            if let Err(e) = self.configure_replica(port, self.current_source_port()) {
                panic!("restart: {e}");
            }
        }
    }

    /// Turns a node (typically a killed former source) into a replica of the current
    /// source: stops it if running, replaces its data directory with a fresh copy of the
    /// template, gives it a new `server_id` (a replica skips events carrying its own
    /// server_id, which would drop its own old transactions), starts it on the same port
    /// read-only and lets it replicate the current source's whole binary log. Does not
    /// wait for it to catch up.
    pub fn rejoin_as_replica(&self, port: u16) {
        self.forbid_on_shared("rejoin_as_replica");
        let source = self.current_source_port();
        let node = self.node(port);
        if port == source {
            panic!(
                "rejoin_as_replica: node {} is the current source",
                node.label()
            );
        }
        if node.running {
            self.kill(port);
        }
        if let Err(e) = fs::remove_dir_all(&node.data) {
            panic!("rejoin_as_replica: rm -rf {}: {e}", node.data.display());
        }
        if let Err(e) = copy_template(&env().template, &node.data) {
            panic!("rejoin_as_replica: {e}");
        }
        let mut node = {
            let mut state = lock(&self.state);
            let server_id = state.next_server_id;
            state.next_server_id += 1;
            let n = state
                .nodes
                .iter_mut()
                .find(|n| n.port == port)
                .expect("the node exists");
            n.role = Role::Replica;
            n.read_only = true;
            n.server_id = server_id;
            n.clone()
        };
        if let Err(e) = self.start_node(&mut node, false) {
            panic!("rejoin_as_replica: {e}");
        }
        if let Err(e) = self.configure_replica(port, source) {
            panic!("rejoin_as_replica: {e}");
        }
    }

    /// Creates a fresh database on the current source, grants `ALL PRIVILEGES` on it to
    /// `app`, and waits until it exists on every running replica. Returns its name
    /// (`prefix` lowercased, non `[a-z0-9_]` replaced by `_`, plus a unique suffix).
    pub fn create_database(&self, prefix: &str) -> String {
        let name = database_name(prefix);
        let source = self.current_source_port();
        self.query_one(
            source,
            &format!(
                "CREATE DATABASE {0}; GRANT ALL PRIVILEGES ON {0}.* TO {1}@'%'",
                quote_ident(&name),
                quote_literal(Self::APP_USER)
            ),
        );
        self.wait_for_replication();
        let check = format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            quote_literal(&name)
        );
        self.require_on_replicas(&check, |label| {
            format!("create_database: {name} does not exist on replica {label} after replication")
        });
        name
    }

    /// The error log of a node.
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.node(port).log
    }

    /// The last `lines` lines of a node's error log (for failure messages).
    pub fn log_tail(&self, port: u16, lines: usize) -> String {
        log_tail_of(&self.node(port).log, lines)
    }

    // --- internals -----------------------------------------------------------

    fn require_running_replica(&self, port: u16, what: &str) -> Node {
        let node = self.node(port);
        if node.role != Role::Replica || !node.running {
            panic!("{what}: node {} is not a running replica", node.label());
        }
        node
    }

    /// Creates `n{i}/` and `n{i}/tmp` (not the data directory).
    fn new_node(&self, i: usize, role: Role) -> Node {
        let owner = env().owner();
        let name = format!("n{i}");
        let dir = self.dir.join(&name);
        mkdir(&dir, owner);
        mkdir(&dir.join("tmp"), owner);
        Node {
            name,
            port: 0,
            server_id: u32::try_from(i).unwrap_or(u32::MAX - 1) + 1,
            data: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            role,
            read_only: role == Role::Replica,
            running: false,
        }
    }

    fn write_config(&self, node: &Node) {
        let env = env();
        let mut cnf = format!(
            "# diesel-multidb test harness: node {} of {} ({:?}).\n\
             # Rewritten by the harness at every start; mariadbd reads only this file.\n\
             [mariadbd]\n",
            node.name,
            self.dir.display(),
            node.role
        );
        if let Some(user) = env.owner() {
            cnf.push_str(&format!("user = {}\n", user.name));
        }
        let dir = |name: &str| node.dir.join(name).display().to_string();
        let read_only = if node.read_only { "ON" } else { "OFF" };
        cnf.push_str(&format!(
            "datadir = {}\n\
             tmpdir = {}\n\
             socket = {}\n\
             pid_file = {}\n\
             log_error = {}\n\
             port = {port}\n\
             bind_address = 127.0.0.1\n\
             report_host = 127.0.0.1\n\
             report_port = {port}\n\
             server_id = {}\n\
             read_only = {read_only}\n\
             # Replication: GTID, row events, every node a potential source.\n\
             log_bin = binlog\n\
             relay_log = relay-bin\n\
             log_slave_updates = ON\n\
             binlog_format = ROW\n\
             gtid_domain_id = 0\n\
             gtid_strict_mode = ON\n\
             skip_slave_start = ON\n\
             slave_net_timeout = 10\n\
             # Throw-away data on tmpfs: durability off, small and fast.\n\
             innodb_flush_log_at_trx_commit = 2\n\
             sync_binlog = 0\n\
             performance_schema = OFF\n\
             max_connections = 200\n\
             table_open_cache = 400\n\
             key_buffer_size = 1M\n\
             aria_pagecache_buffer_size = 8M\n",
            node.data.display(),
            dir("tmp"),
            dir("mysqld.sock"),
            dir("mariadbd.pid"),
            node.log.display(),
            node.server_id,
            port = node.port,
        ));
        for (key, value) in COMMON_SETTINGS {
            cnf.push_str(&format!("{key} = {value}\n"));
        }
        write_file(&node.config(), &cnf, env.owner());
    }

    /// Starts a node. With `new_port`, picks a free port and retries on "Address already
    /// in use"; otherwise reuses `node.port`. Registers the node (running) and its child
    /// process on success; on failure the server is killed.
    fn start_node(&self, node: &mut Node, new_port: bool) -> Result<(), String> {
        let env = env();
        if !node.log.exists() {
            write_file(&node.log, "", env.owner());
        }
        for attempt in 1..=PORT_ATTEMPTS {
            if new_port {
                node.port = pick_port();
            }
            self.write_config(node);
            let offset = file_len(&node.log);
            let log_for = |what: &str| {
                fs::OpenOptions::new()
                    .append(true)
                    .open(&node.log)
                    .map_err(|e| format!("opening {} for {what}: {e}", node.log.display()))
            };
            let mut cmd = Command::new(&env.mariadbd);
            clean_env(&mut cmd);
            cmd.arg(format!("--defaults-file={}", node.config().display()))
                .current_dir(&node.dir)
                .stdin(Stdio::null())
                .stdout(log_for("stdout")?)
                .stderr(log_for("stderr")?)
                // Own process group: a Ctrl-C aimed at the test run must not reach it (the
                // reaper or the drop stops it).
                .process_group(0);
            let desc = describe(&cmd);
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("could not run `{desc}`: {e}"))?;
            let pid_file = node.dir.join("harness.pid");
            if let Err(e) = fs::write(&pid_file, format!("{}\n", child.id())) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot write {}: {e}", pid_file.display()));
            }
            let deadline = Instant::now() + START_TIMEOUT;
            let failure = loop {
                let log = read_from(&node.log, offset);
                if log.contains("ready for connections") {
                    break None;
                }
                match child.try_wait() {
                    Ok(Some(status)) => break Some(format!("`{desc}` exited ({status})")),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Some(format!(
                            "`{desc}` was not ready for connections after {START_TIMEOUT:?}; \
                             killed it"
                        ));
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(10)),
                    Err(e) => break Some(format!("waiting for `{desc}` failed: {e}")),
                }
            };
            let failure = failure.or_else(|| {
                let got = self.client_query(node.port, "SELECT @@port");
                match got {
                    Ok(port) if port == node.port.to_string() => None,
                    Ok(port) => Some(format!(
                        "127.0.0.1:{} answers with @@port = {port}: not our server",
                        node.port
                    )),
                    Err(e) => Some(format!("the new server does not answer: {e}")),
                }
            });
            let Some(failure) = failure else {
                let mut state = lock(&self.state);
                node.running = true;
                upsert_by_name(&mut state.nodes, node);
                state.children.insert(node.name.clone(), child);
                return Ok(());
            };
            let _ = child.kill();
            let _ = child.wait();
            let log = read_from(&node.log, offset);
            if new_port && attempt < PORT_ATTEMPTS && log.contains("Address already in use") {
                continue;
            }
            return Err(start_failure(node, &failure, &log));
        }
        unreachable!("the last attempt returns")
    }

    /// The first column of the first row, without the cluster membership check of
    /// `try_query_one` (for a node being started).
    fn client_query(&self, port: u16, sql: &str) -> Result<String, String> {
        let mut client = env().client(port, None);
        client.arg("--execute").arg(sql);
        let out = run(&mut client, COMMAND_TIMEOUT)?;
        Ok(first_field(&out.stdout, '\t'))
    }

    fn try_slave_status(&self, port: u16) -> Result<Vec<(String, String)>, String> {
        self.node(port);
        let mut client = env().client(port, None);
        // --vertical prints `Column: value` lines; the column names are needed here.
        client
            .args(["--vertical", "--column-names", "--execute"])
            .arg("SHOW SLAVE STATUS");
        let out = run(&mut client, COMMAND_TIMEOUT)?;
        Ok(out
            .stdout
            .lines()
            .filter(|line| !line.starts_with('*'))
            .filter_map(|line| line.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
            .collect())
    }

    /// A one-line summary of a replica's replication state, for failure messages.
    fn replication_summary(&self, port: u16) -> String {
        match self.try_slave_status(port) {
            Ok(status) if status.is_empty() => "no replication configured".to_owned(),
            Ok(status) => {
                let keep = [
                    "Master_Port",
                    "Slave_IO_Running",
                    "Slave_SQL_Running",
                    "Gtid_IO_Pos",
                    "Last_IO_Error",
                    "Last_SQL_Error",
                    "Seconds_Behind_Master",
                ];
                status
                    .into_iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Err(e) => format!("SHOW SLAVE STATUS failed: {e}"),
        }
    }

    /// `STOP SLAVE; CHANGE MASTER TO <source>; START SLAVE` on a running replica.
    fn configure_replica(&self, port: u16, source_port: u16) -> Result<(), String> {
        let sql = format!(
            "STOP SLAVE; \
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {source_port}, \
             MASTER_USER = {}, MASTER_PASSWORD = {}, MASTER_USE_GTID = slave_pos, \
             MASTER_CONNECT_RETRY = 1; \
             START SLAVE",
            quote_literal(Self::REPLICATION_USER),
            quote_literal(Self::REPLICATION_PASSWORD)
        );
        self.try_query_one(port, None, &sql)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "pointing {} at the source on port {source_port} failed: {e}",
                    self.node_label_or_port(port)
                )
            })
    }

    fn wait_for(&self, replicas: &[u16], what: &str) {
        let source = {
            let state = lock(&self.state);
            state
                .nodes
                .iter()
                .find(|n| n.role == Role::Source)
                .cloned()
                .unwrap_or_else(|| panic!("{what}: this cluster has no source"))
        };
        if !source.running {
            panic!(
                "{what}: the current source {} is not running",
                source.label()
            );
        }
        let target_text = self
            .try_query_one(source.port, None, "SELECT @@gtid_binlog_pos")
            .unwrap_or_else(|e| {
                panic!(
                    "{what}: reading @@gtid_binlog_pos of the source {} failed: {e}",
                    source.label()
                )
            });
        let target = parse_gtid_pos(&target_text).unwrap_or_else(|| {
            panic!(
                "{what}: unexpected @@gtid_binlog_pos {target_text:?} from {}",
                source.label()
            )
        });
        let deadline = Instant::now() + WAIT_TIMEOUT;
        for &port in replicas {
            loop {
                let last = match self.try_query_one(port, None, "SELECT @@gtid_slave_pos") {
                    Ok(text) => match parse_gtid_pos(&text) {
                        Some(pos) if gtid_reached(&pos, &target) => break,
                        Some(_) => format!("@@gtid_slave_pos = {text:?}"),
                        None => format!("unexpected @@gtid_slave_pos {text:?}"),
                    },
                    Err(e) => format!("query failed: {e}"),
                };
                if Instant::now() >= deadline {
                    let node = self.node(port);
                    panic!(
                        "{what}: replica {} has not applied the source {}'s @@gtid_binlog_pos \
                         {target_text:?} after {WAIT_TIMEOUT:?}: {last}; {}\n--- {} ---\n{}\n\
                         --- {} ---\n{}",
                        node.label(),
                        source.label(),
                        self.replication_summary(port),
                        node.log.display(),
                        log_tail_of(&node.log, 20),
                        source.log.display(),
                        log_tail_of(&source.log, 10),
                    );
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl NodeList for MariaDbCluster {
    type Node = Node;
    const KIND: &'static str = "MariaDbCluster";

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

impl Drop for MariaDbCluster {
    fn drop(&mut self) {
        let children: Vec<Child> = {
            let mut state = lock(&self.state);
            for node in state.nodes.iter_mut() {
                node.running = false;
            }
            state.children.drain().map(|(_, child)| child).collect()
        };
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_dir_at_drop("MariaDbCluster::drop", &self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions() {
        let target = parse_gtid_pos("0-1-5,1-2-3").unwrap();
        assert_eq!(target, BTreeMap::from([(0, 5), (1, 3)]));
        assert!(gtid_reached(
            &parse_gtid_pos("0-2-5,1-2-4").unwrap(),
            &target
        ));
        assert!(!gtid_reached(&parse_gtid_pos("0-1-5").unwrap(), &target));
        assert!(!gtid_reached(
            &parse_gtid_pos("0-1-4,1-2-3").unwrap(),
            &target
        ));
        assert!(gtid_reached(&BTreeMap::new(), &parse_gtid_pos("").unwrap()));
        assert_eq!(parse_gtid_pos("0-1"), None);
        assert_eq!(parse_gtid_pos("x-1-2"), None);
    }
}
