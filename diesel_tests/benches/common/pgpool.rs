//! pgpool-II in front of a test cluster, for the `pool` bench.
//!
//! [`Pgpool::start`] writes a `pgpool.conf` for streaming-replication mode with load
//! balancing into a directory of its own (config, pid file, status file, unix sockets and
//! log all live there), runs `pgpool -n` (foreground) as a child process in its own process
//! group on a free 127.0.0.1 port, and waits until it accepts connections and knows every
//! backend's role. Dropping it stops pgpool (fast shutdown, then SIGKILL to its process
//! group).
//!
//! If the bench process dies without dropping it, the test harness's reaper kills it: its
//! process group is recorded in `<cluster dir>/reap.pgids`, the file the harness's reaper
//! reads for exactly this (see `testkit/src/procdir.rs`).
//!
//! pgpool-II does not need root. The backends' `pg_hba.conf` (the harness's) trusts every
//! role but `app` on 127.0.0.1, so pgpool connects as the client's role (`postgres`) without
//! a password, and runs its streaming-replication and health checks as `postgres` too.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long pgpool may take to accept connections and find its backends' roles.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One backend as pgpool sees it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub host: String,
    pub port: u16,
    /// `backend_weight`: the share of load-balanced reads (0: none).
    pub weight: u32,
}

/// A row of `SHOW pool_nodes` (the columns the bench uses).
#[derive(Debug, Clone)]
pub struct PoolNode {
    pub port: u16,
    /// `up`, `waiting` (up, no client yet), `down`, ...
    pub status: String,
    /// `primary` or `standby`, as pgpool determined it.
    pub role: String,
    /// SELECTs pgpool sent to this node by load balancing.
    pub selects: u64,
}

/// A running pgpool-II. See the module docs.
pub struct Pgpool {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Pgpool {
    /// The `pgpool` binary: `$PGPOOL_BIN`, else `pgpool` in `$PATH`, `/usr/sbin` or
    /// `/usr/bin`. `None` when it is not installed (Debian package `pgpool2`).
    pub fn binary() -> Option<PathBuf> {
        if let Some(bin) = std::env::var_os("PGPOOL_BIN") {
            return Some(PathBuf::from(bin)).filter(|p| p.is_file());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join("pgpool"))
            .find(|p| p.is_file())
    }

    /// `pgpool --version`, e.g. `pgpool-II version 4.3.5 (tamahomeboshi)`.
    pub fn version(bin: &Path) -> String {
        match Command::new(bin).arg("--version").output() {
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                text.lines().next().unwrap_or("").trim().to_owned()
            }
            Err(e) => format!("(pgpool --version failed: {e})"),
        }
    }

    /// Starts pgpool in `<cluster_dir>/pgpool` in front of `backends` (the primary first).
    /// `num_init_children` is the number of client sessions it accepts at once. Returns
    /// once `SHOW pool_nodes` lists every backend up with its role (node 0 `primary`, the
    /// others `standby`), or an error with pgpool's log.
    pub fn start(
        bin: &Path,
        cluster_dir: &Path,
        backends: &[Backend],
        num_init_children: usize,
    ) -> Result<Pgpool, String> {
        let dir = cluster_dir.join("pgpool");
        fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let port = free_port()?;
        let pcp_port = free_port()?;
        let conf = dir.join("pgpool.conf");
        let pcp = dir.join("pcp.conf");
        let hba = dir.join("pool_hba.conf");
        let log = dir.join("pgpool.log");
        write(
            &conf,
            &config(&dir, port, pcp_port, backends, num_init_children),
        )?;
        write(&pcp, "")?;
        write(&hba, "")?;
        let log_file =
            fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("cloning the log file handle: {e}"))?;

        let mut cmd = Command::new(bin);
        cmd.arg("-n") // foreground: the child is pgpool's main process
            .arg("-D") // discard any pgpool_status (the directory is fresh anyway)
            .arg("-f")
            .arg(&conf)
            .arg("-F")
            .arg(&pcp)
            .arg("-a")
            .arg(&hba)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            // Its own process group: the reaper and `Drop` signal the whole group.
            .process_group(0);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("PG")) {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let pgid = child.id();
        // The reaper kills the group if this process dies without dropping us.
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cluster_dir.join("reap.pgids"))
        {
            let comm = bin
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pgpool".into());
            let _ = writeln!(f, "{pgid} {comm}");
        }
        let mut pgpool = Pgpool {
            child,
            port,
            dir,
            log,
        };
        pgpool.wait_ready(backends)?;
        Ok(pgpool)
    }

    /// The 127.0.0.1 port pgpool listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding pgpool's config, log, pid file and sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `SHOW pool_nodes`, through `psql`: pgpool answers its own `SHOW` commands only in
    /// the simple query protocol, and Diesel's `sql_query` uses the extended one (pgpool then
    /// passes the statement to a backend, which knows no `pool_nodes`).
    pub fn nodes(&self) -> Result<Vec<PoolNode>, String> {
        let out = Command::new(psql())
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-A", "-F", "\x1f", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "SHOW pool_nodes"])
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "psql SHOW pool_nodes: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split('\x1f').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| format!("SHOW pool_nodes has no column {name}: {header:?}"))
        };
        let (port, status, role, selects) = (
            col("port")?,
            col("status")?,
            col("role")?,
            col("select_cnt")?,
        );
        Ok(lines
            .map(|l| l.split('\x1f').collect::<Vec<_>>())
            .filter(|f| f.len() == header.len())
            .map(|f| PoolNode {
                port: f[port].trim().parse().unwrap_or(0),
                status: f[status].trim().to_owned(),
                role: f[role].trim().to_owned(),
                selects: f[selects].trim().parse().unwrap_or(0),
            })
            .collect())
    }

    /// The last lines of pgpool's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_ready(&mut self, backends: &[Backend]) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "pgpool exited ({status}) before accepting connections\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            let last = match self.nodes() {
                Ok(nodes) => {
                    let ready = nodes.len() == backends.len()
                        && nodes.iter().enumerate().all(|(i, n)| {
                            let role = if i == 0 { "primary" } else { "standby" };
                            matches!(n.status.as_str(), "up" | "waiting")
                                && n.role == role
                                && n.port == backends[i].port
                        });
                    if ready {
                        return Ok(());
                    }
                    format!("SHOW pool_nodes: {nodes:?}")
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "pgpool on port {} not ready after {START_TIMEOUT:?}: {last}\n--- {} ---\n{}",
                    self.port,
                    self.log.display(),
                    self.log_tail(30)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pgpool {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // SIGINT: fast shutdown (the children disconnect their clients and exit).
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (nothing, normally).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// The `pgpool.conf`: streaming-replication mode, load balancing on, every file in `dir`.
fn config(
    dir: &Path,
    port: u16,
    pcp_port: u16,
    backends: &[Backend],
    num_init_children: usize,
) -> String {
    let d = dir.display();
    let mut conf = format!(
        "# Written by the diesel_tests `pool` bench.\n\
         backend_clustering_mode = 'streaming_replication'\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         socket_dir = '{d}'\n\
         pcp_listen_addresses = ''\n\
         pcp_port = {pcp_port}\n\
         pcp_socket_dir = '{d}'\n\
         wd_ipc_socket_dir = '{d}'\n\
         pid_file_name = '{d}/pgpool.pid'\n\
         logdir = '{d}'\n\
         log_destination = 'stderr'\n\
         logging_collector = off\n\
         log_min_messages = warning\n\
         enable_pool_hba = off\n\
         pool_passwd = ''\n\
         num_init_children = {num_init_children}\n\
         max_pool = 1\n\
         connection_cache = on\n\
         load_balance_mode = on\n\
         statement_level_load_balance = off\n\
         sr_check_period = 1\n\
         sr_check_user = 'postgres'\n\
         sr_check_password = ''\n\
         sr_check_database = 'postgres'\n\
         delay_threshold = 0\n\
         health_check_period = 5\n\
         health_check_user = 'postgres'\n\
         health_check_password = ''\n\
         health_check_database = 'postgres'\n\
         failover_on_backend_error = off\n\
         failover_command = ''\n\
         use_watchdog = off\n\
         memory_cache_enabled = off\n"
    );
    for (i, b) in backends.iter().enumerate() {
        conf.push_str(&format!(
            "backend_hostname{i} = '{}'\n\
             backend_port{i} = {}\n\
             backend_weight{i} = {}\n\
             backend_flag{i} = 'DISALLOW_TO_FAILOVER'\n",
            b.host, b.port, b.weight
        ));
    }
    conf
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// `psql`: `$PG_BIN_DIR/psql`, else the highest `/usr/lib/postgresql/<version>/bin/psql`
/// (the harness's rule), else `psql` from `PATH`.
fn psql() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Path::new(&dir).join("psql");
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        let version = entry
            .file_name()
            .to_str()
            .and_then(|v| v.parse::<u32>().ok());
        let bin = entry.path().join("bin").join("psql");
        if let Some(v) = version.filter(|_| bin.is_file()) {
            if best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, bin));
            }
        }
    }
    best.map_or_else(|| PathBuf::from("psql"), |(_, p)| p)
}
