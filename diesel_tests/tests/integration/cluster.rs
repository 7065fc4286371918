//! Test harness: real PostgreSQL clusters (one primary plus streaming
//! standbys) started from the PostgreSQL binaries installed on this machine.
//!
//! * Binaries: `$PG_BIN_DIR` if set, otherwise the highest
//!   `/usr/lib/postgresql/<version>/bin` that has `initdb`.
//! * `initdb`, `postgres`, `pg_ctl` and `pg_basebackup` refuse to run as
//!   root, so when the effective uid is 0 they are run as the OS user
//!   `$PG_OS_USER` (default `postgres`) through `runuser -u <user> --`;
//!   otherwise they run as the current user. `psql` runs as the current user.
//! * Everything lives under one directory per test process,
//!   `<base>/diesel-multidb-pg-<pid>-<nonce>/`, where `<base>` is
//!   `$PG_HARNESS_DIR`, else `/dev/shm` if it is a world-writable tmpfs
//!   (much faster than disk), else the system temp directory. It holds
//!   `template/data` (one
//!   `initdb` per process, copied with `cp -a` for every new primary) and one
//!   `c<N>/` per cluster, holding the clusters' unix sockets and a
//!   `n<i>/` per node with `n<i>/data` (the data directory) and
//!   `n<i>/server.log`.
//! * Cleanup: a reaper (`sh -c`, in its own process group, ignoring
//!   HUP/INT/QUIT/TERM) reads a pipe whose write end only this process holds.
//!   When the process exits for any reason (normal exit, panic, abort,
//!   SIGKILL) the pipe closes, and the reaper stops every server under the
//!   process directory (`pg_ctl stop -m immediate`) and removes it. Dropping
//!   a [`PgCluster`] also stops its nodes and removes its directory right
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
//! Failover: [`PgCluster::promote`] re-points the other standbys (running or
//! stopped) at the promoted node by rewriting `primary_conninfo` and
//! reloading; with `recovery_target_timeline = 'latest'` (the default) a
//! standby that had not replayed past the promotion point follows the new
//! timeline. A standby that was ahead of the promoted node cannot follow and
//! stays behind; [`PgCluster::wait_for_replay`] then panics naming it. A
//! killed former primary restarted with [`PgCluster::restart`] comes back as
//! a second, independent primary (split brain, on the old timeline); use
//! [`PgCluster::rejoin_as_standby`] to bring it back as a standby instead.

// This module is shared by every integration-test module; not all of them
// use every helper.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The password-authenticated role (`scram-sha-256` over 127.0.0.1).
pub const APP_USER: &str = "app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "app-secret";
/// The superuser every `*_url` helper connects as (trust auth).
pub const SUPERUSER: &str = "postgres";

/// How long any node-level wait (streaming, replay, promotion, shutdown)
/// may take before the harness panics.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one external command (initdb, pg_ctl, pg_basebackup, psql).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts to find a free port when a server start hits "Address already in use".
const PORT_ATTEMPTS: usize = 8;
const PROCESS_DIR_PREFIX: &str = "diesel-multidb-pg-";

/// Stops every server under `$1/*/n*/data` and removes `$1`, once its stdin
/// reaches EOF. `$2...` is the command prefix that runs `pg_ctl`.
const REAPER_SCRIPT: &str = r#"
trap '' HUP INT QUIT TERM PIPE
root=$1
shift
echo $$ >"$root/reaper.pid"
cat >/dev/null 2>&1
for d in "$root"/*/n*/data; do
  [ -f "$d/postmaster.pid" ] || continue
  "$@" stop -D "$d" -m immediate -w -t 30 >/dev/null 2>&1 && continue
  pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null)
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
    kill -KILL "$pid" 2>/dev/null
  fi
done
rm -rf "$root"
"#;

// ---------------------------------------------------------------------------
// Process-wide environment: binaries, OS user, process directory, reaper,
// template data directory.
// ---------------------------------------------------------------------------

struct Env {
    bin_dir: PathBuf,
    /// `Some((runuser, user))` when we are root and must switch user.
    run_as: Option<(PathBuf, String)>,
    /// uid/gid to give the directories we create (when running as root).
    owner: Option<(u32, u32)>,
    /// `<base>/diesel-multidb-pg-<pid>-<nonce>`, see `base_dir`.
    root: PathBuf,
    /// `root/template/data`, made by initdb and configured; never started.
    template: PathBuf,
    /// The reaper. Its stdin (a pipe) stays open for the life of the process:
    /// it is never waited for, it outlives us by design.
    _reaper: Child,
    next_cluster: AtomicUsize,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(Env::init)
}

impl Env {
    fn init() -> Env {
        let t0 = Instant::now();
        let bin_dir = find_bin_dir();
        let run_as = if effective_uid() == 0 {
            let user = std::env::var("PG_OS_USER").unwrap_or_else(|_| "postgres".to_owned());
            Some((find_runuser(), user))
        } else {
            None
        };
        let owner = run_as.as_ref().map(|(_, user)| {
            let id = |flag: &str| -> u32 {
                let out = run(Command::new("id").arg(flag).arg(user), COMMAND_TIMEOUT)
                    .unwrap_or_else(|e| {
                        panic!(
                            "cluster harness: we run as root, so the PostgreSQL server must run \
                             as OS user {user:?} (set PG_OS_USER to change it), but looking it \
                             up failed: {e}"
                        )
                    });
                out.stdout.trim().parse().unwrap_or_else(|e| {
                    panic!(
                        "cluster harness: `id {flag} {user}` printed {:?}: {e}",
                        out.stdout
                    )
                })
            };
            (id("-u"), id("-g"))
        });

        let pg_ctl = bin_dir.join("pg_ctl");
        let mut pg_ctl_prefix: Vec<String> = Vec::new();
        if let Some((runuser, user)) = &run_as {
            pg_ctl_prefix.extend([
                runuser.display().to_string(),
                "-u".to_owned(),
                user.clone(),
                "--".to_owned(),
            ]);
        }
        pg_ctl_prefix.push(pg_ctl.display().to_string());

        let tmp = base_dir();
        reap_stale_process_dirs(&tmp, &pg_ctl_prefix);

        // The process directory.
        let root = loop {
            let nonce = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let candidate = tmp.join(format!(
                "{PROCESS_DIR_PREFIX}{}-{nonce:08x}",
                std::process::id()
            ));
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!(
                    "cluster harness: cannot create the test directory {}: {e}",
                    candidate.display()
                ),
            }
        };

        // The reaper, spawned before anything else can be left behind.
        let mut reaper = Command::new("sh");
        reaper
            .arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("diesel-multidb-pg-reaper")
            .arg(&root)
            .args(&pg_ctl_prefix)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C or a group kill aimed at the test
            // run must not take the reaper down with it.
            .process_group(0);
        let reaper = reaper.spawn().unwrap_or_else(|e| {
            let _ = fs::remove_dir_all(&root);
            panic!("cluster harness: cannot spawn the cleanup process `sh -c ...`: {e}")
        });

        let env = Env {
            bin_dir,
            run_as,
            owner,
            root: root.clone(),
            template: root.join("template").join("data"),
            _reaper: reaper,
            next_cluster: AtomicUsize::new(0),
        };
        env.own_dir(&root, 0o700);
        if root.as_os_str().len() > 60 {
            // Unix socket paths are limited to 107 bytes: root/cN/.s.PGSQL.NNNNN
            panic!(
                "cluster harness: the test directory {} is too long for unix socket paths; \
                 set PG_HARNESS_DIR to a shorter directory",
                root.display()
            );
        }
        env.make_template();
        eprintln!(
            "cluster harness: PostgreSQL from {}, servers run as {}, template ready in {:.2?} ({})",
            env.bin_dir.display(),
            env.run_as
                .as_ref()
                .map_or("the current user", |(_, user)| user.as_str()),
            t0.elapsed(),
            env.root.display()
        );
        env
    }

    /// A command for a server-side PostgreSQL binary, run as the server's OS user.
    fn pg(&self, bin: &str) -> Command {
        let program = self.bin_dir.join(bin);
        let mut cmd = match &self.run_as {
            Some((runuser, user)) => {
                let mut cmd = Command::new(runuser);
                cmd.arg("-u").arg(user).arg("--").arg(program);
                cmd
            }
            None => Command::new(program),
        };
        clean_env(&mut cmd);
        cmd.current_dir(&self.root);
        cmd
    }

    /// `psql` for one node, run as the current user, quiet and unaligned.
    fn psql(&self, port: u16, db: &str) -> Command {
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
            .args(["-h", "127.0.0.1", "-U", SUPERUSER])
            .arg("-p")
            .arg(port.to_string())
            .arg("-d")
            .arg(db)
            .current_dir(&self.root);
        cmd
    }

    /// Makes `dir` accessible to the server's OS user only.
    fn own_dir(&self, dir: &Path, mode: u32) {
        if let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(mode)) {
            panic!("cluster harness: chmod {mode:o} {}: {e}", dir.display());
        }
        self.chown(dir);
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                panic!("cluster harness: chown {uid}:{gid} {}: {e}", path.display());
            }
        }
    }

    fn mkdir(&self, dir: &Path) {
        if let Err(e) = fs::create_dir(dir) {
            panic!("cluster harness: mkdir {}: {e}", dir.display());
        }
        self.own_dir(dir, 0o700);
    }

    /// Writes a file (replacing it) and gives it to the server's OS user.
    fn write_file(&self, path: &Path, contents: &str) {
        if let Err(e) = fs::write(path, contents) {
            panic!("cluster harness: cannot write {}: {e}", path.display());
        }
        self.chown(path);
    }

    fn append_file(&self, path: &Path, contents: &str) {
        let result = fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(contents.as_bytes()));
        if let Err(e) = result {
            panic!("cluster harness: cannot append to {}: {e}", path.display());
        }
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
             host    replication  all   127.0.0.1/32  trust\n",
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

fn find_runuser() -> PathBuf {
    for candidate in ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    // Let PATH find it; a failure will name the command.
    PathBuf::from("runuser")
}

/// The effective uid, from `/proc/self/status` (falls back to `id -u`).
fn effective_uid() -> u32 {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                if let Some(Ok(euid)) = rest.split_whitespace().nth(1).map(str::parse) {
                    return euid;
                }
            }
        }
    }
    let out = run(Command::new("id").arg("-u"), COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("cluster harness: cannot tell our uid: {e}"));
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("cluster harness: `id -u` printed {:?}: {e}", out.stdout))
}

/// Where the per-process directories go: `$PG_HARNESS_DIR` if set, else
/// `/dev/shm` when it is a writable tmpfs (data directories in memory: about
/// ten times faster than the disk here), else the system temp directory.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_HARNESS_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable =
        fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777);
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Runs the reaper synchronously on directories left by test processes that
/// no longer exist (only possible if their reaper was killed too).
fn reap_stale_process_dirs(tmp: &Path, pg_ctl_prefix: &[String]) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PROCESS_DIR_PREFIX))
        else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        let alive = |pid: &str| !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists();
        if pid == std::process::id() || alive(&pid.to_string()) {
            continue;
        }
        // The process is gone; is its reaper still at work?
        let reaper_pid = fs::read_to_string(entry.path().join("reaper.pid")).unwrap_or_default();
        if alive(reaper_pid.trim()) {
            continue;
        }
        eprintln!(
            "cluster harness: removing {} left by dead process {pid}",
            entry.path().display()
        );
        let mut reaper = Command::new("sh");
        reaper
            .arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("diesel-multidb-pg-reaper")
            .arg(entry.path())
            .args(pg_ctl_prefix)
            .current_dir("/");
        if let Err(e) = run(&mut reaper, COMMAND_TIMEOUT) {
            eprintln!("cluster harness: (ignored) cleaning a stale directory failed: {e}");
        }
    }
}

/// Removes the client-side `PG*` variables (PGHOST, PGPORT, PGUSER,
/// PGPASSWORD, PGSERVICE, ...) so the caller's environment cannot redirect
/// our commands, and pins the message language.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C");
}

// ---------------------------------------------------------------------------
// Running commands with a time limit and readable failures.
// ---------------------------------------------------------------------------

struct CmdOutput {
    stdout: String,
    stderr: String,
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy().replace('\x1f', "\\x1f");
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$;&|<>()*".contains(c))
        {
            s.push_str(&format!(" '{}'", arg.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&arg);
        }
    }
    s
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` (stdin closed), capturing its output. `Err` carries the
/// command line, the exit status, stderr and stdout.
fn run(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput, String> {
    let desc = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run `{desc}`: {e}"))?;
    let stdout = spawn_reader(child.stdout.take().expect("stdout is piped"));
    let stderr = spawn_reader(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers may block on grandchildren; do not join them.
                return Err(format!(
                    "`{desc}` did not finish within {timeout:?}; killed it"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(3)),
            Err(e) => return Err(format!("waiting for `{desc}` failed: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        Ok(CmdOutput { stdout, stderr })
    } else {
        Err(format!(
            "`{desc}` failed ({status})\n--- stderr ---\n{}\n--- stdout ---\n{}",
            stderr.trim_end(),
            stdout.trim_end()
        ))
    }
}

// ---------------------------------------------------------------------------
// Ports.
// ---------------------------------------------------------------------------

/// A port that was free a moment ago and that this process has not handed
/// out before.
fn pick_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cluster harness: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cluster harness: local_addr of 127.0.0.1:0: {e}"))
            .port();
        drop(listener);
        let mut set = lock(&HANDED_OUT);
        if set.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn connect_refused(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
    )
}

/// A 127.0.0.1 port with nothing listening (connection refused). The harness
/// never starts a server on it.
pub fn dead_port() -> u16 {
    for _ in 0..100 {
        let port = pick_port();
        if connect_refused(port) {
            return port;
        }
    }
    panic!("cluster harness: could not find a 127.0.0.1 port that refuses connections")
}

/// A TCP listener on 127.0.0.1 that accepts connections and never answers
/// (never reads, never writes, never closes them). Lives until dropped.
pub struct Blackhole {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("Blackhole: cannot bind 127.0.0.1:0: {e}"));
        let port = listener.local_addr().expect("Blackhole: local_addr").port();
        listener
            .set_nonblocking(true)
            .expect("Blackhole: set_nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            thread::Builder::new()
                .name(format!("blackhole-{port}"))
                .spawn(move || {
                    let mut held = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                                held.push(stream);
                            }
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
                .expect("Blackhole: spawn thread")
        };
        Blackhole {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

#[derive(Clone, Debug)]
struct Node {
    /// `n0`, `n1`, ...
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    role: Role,
    running: bool,
}

impl Node {
    fn label(&self) -> String {
        format!("{} (port {}, {:?})", self.name, self.port, self.role)
    }
}

struct State {
    nodes: Vec<Node>,
    original_primary: u16,
    original_standbys: Vec<u16>,
}

/// A primary plus streaming standbys on 127.0.0.1. See the module docs.
pub struct PgCluster {
    dir: PathBuf,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn log_tail_of(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_from(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(_) => String::new(),
    }
}

/// Minimal percent-encoding for the userinfo part of a URL.
fn encode_userinfo(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl PgCluster {
    /// Starts a primary plus `standbys` streaming standbys on free 127.0.0.1
    /// ports in a fresh directory and waits until every standby streams.
    /// Panics with the failing step, command, its stderr and the server log
    /// tail if anything fails.
    pub fn start(standbys: usize) -> PgCluster {
        let env = env();
        let t0 = Instant::now();
        let mut steps: Vec<String> = Vec::new();
        let mut lap = Instant::now();
        let mut mark = |step: &str| {
            steps.push(format!("{step} {:.0?}", lap.elapsed()));
            lap = Instant::now();
        };
        let n = env.next_cluster.fetch_add(1, Ordering::Relaxed);
        let dir = env.root.join(format!("c{n}"));
        env.mkdir(&dir);
        // From here on, a panic drops `cluster`, which stops whatever runs.
        let cluster = PgCluster {
            dir,
            state: Mutex::new(State {
                nodes: Vec::new(),
                original_primary: 0,
                original_standbys: Vec::new(),
            }),
        };

        // Primary: a copy of the template.
        let mut primary = cluster.new_node(0, Role::Primary);
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&env.template).arg(&primary.data);
        if let Err(e) = run(&mut cp, COMMAND_TIMEOUT) {
            panic!("PgCluster::start: copying the template data directory failed: {e}");
        }
        mark("copy");
        if let Err(e) = cluster.start_node(&mut primary, true) {
            panic!("PgCluster::start: starting the primary failed: {e}");
        }
        let primary_port = primary.port;
        lock(&cluster.state).original_primary = primary_port;
        mark("primary");

        let setup = [
            format!(
                "CREATE ROLE {APP_USER} LOGIN NOSUPERUSER PASSWORD {}",
                quote_literal(APP_PASSWORD)
            ),
            format!("GRANT CREATE ON DATABASE postgres TO {APP_USER}"),
            format!("GRANT CREATE ON SCHEMA public TO {APP_USER}"),
            "\\c template1".to_owned(),
            format!("GRANT CREATE ON SCHEMA public TO {APP_USER}"),
        ];
        let mut psql = env.psql(primary_port, "postgres");
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
        mark("role");

        // Standbys: base backups and starts in parallel.
        let results: Vec<Result<u16, String>> = thread::scope(|scope| {
            let handles: Vec<_> = (1..=standbys)
                .map(|i| {
                    let cluster = &cluster;
                    scope.spawn(move || {
                        let mut node = cluster.new_node(i, Role::Standby);
                        cluster.base_backup(&node, primary_port)?;
                        cluster.start_node(&mut node, true)?;
                        Ok(node.port)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the standby setup thread panicked".to_owned()))
                })
                .collect()
        });
        let mut standby_ports = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(port) => standby_ports.push(port),
                Err(e) => panic!(
                    "PgCluster::start: setting up standby n{} failed: {e}",
                    i + 1
                ),
            }
        }
        lock(&cluster.state).original_standbys = standby_ports.clone();
        mark("standbys");

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
        mark("streaming");
        eprintln!(
            "PgCluster::start({standbys}): primary {primary_port}, standbys {standby_ports:?}, \
             ready in {:.2?} ({})",
            t0.elapsed(),
            steps.join(", ")
        );
        cluster
    }

    /// A process-wide cluster (primary + 2 standbys), started on first use.
    /// Tests using it must not change its topology (no kill/promote/restart).
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        static FAILED: AtomicBool = AtomicBool::new(false);
        struct FlagOnPanic;
        impl Drop for FlagOnPanic {
            fn drop(&mut self) {
                if thread::panicking() {
                    FAILED.store(true, Ordering::SeqCst);
                }
            }
        }
        if let Some(cluster) = SHARED.get() {
            return cluster;
        }
        SHARED.get_or_init(|| {
            if FAILED.load(Ordering::SeqCst) {
                panic!(
                    "PgCluster::shared: the shared cluster failed to start in an earlier test \
                     (see its failure message); not retrying"
                );
            }
            let _flag = FlagOnPanic;
            PgCluster::start(2)
        })
    }

    /// The directory holding this cluster's nodes and unix sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port of the node that was the primary at start.
    pub fn primary_port(&self) -> u16 {
        lock(&self.state).original_primary
    }

    /// The ports of the standbys created at start, in order.
    pub fn standby_ports(&self) -> Vec<u16> {
        lock(&self.state).original_standbys.clone()
    }

    /// The port of the current primary: the original one, or the node most
    /// recently promoted.
    pub fn current_primary_port(&self) -> u16 {
        let state = lock(&self.state);
        state
            .nodes
            .iter()
            .find(|n| n.role == Role::Primary)
            .map_or(state.original_primary, |n| n.port)
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
        let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let params = params.strip_prefix('?').unwrap_or(params);
        let mut url = format!("postgres://{SUPERUSER}@{}/{db}", hosts.join(","));
        if !params.is_empty() {
            url.push('?');
            url.push_str(params);
        }
        url
    }

    /// [`url`](Self::url) for the original primary followed by the original standbys.
    pub fn default_url(&self, params: &str) -> String {
        self.url(&self.default_ports(), params)
    }

    /// The original primary followed by the original standbys.
    pub fn default_ports(&self) -> Vec<u16> {
        let state = lock(&self.state);
        let mut ports = vec![state.original_primary];
        ports.extend(&state.original_standbys);
        ports
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
            "postgres://{APP_USER}:{}@127.0.0.1:{port}/postgres",
            encode_userinfo(password)
        )
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
        let mut psql = env().psql(port, db);
        psql.arg("-c").arg(sql);
        let out = run(&mut psql, COMMAND_TIMEOUT)?;
        let first_line = out.stdout.lines().next().unwrap_or("");
        Ok(first_line.split('\x1f').next().unwrap_or("").to_owned())
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
        let (primary, standbys) = {
            let state = lock(&self.state);
            let primary = state
                .nodes
                .iter()
                .find(|n| n.role == Role::Primary)
                .cloned()
                .unwrap_or_else(|| panic!("wait_for_replay: this cluster has no primary"));
            let standbys: Vec<Node> = state
                .nodes
                .iter()
                .filter(|n| n.role == Role::Standby && n.running)
                .cloned()
                .collect();
            (primary, standbys)
        };
        if !primary.running {
            panic!(
                "wait_for_replay: the current primary {} is not running",
                primary.label()
            );
        }
        let mut psql = env().psql(primary.port, "postgres");
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
        let node = self.node(port);
        if !node.running {
            panic!("kill: node {} is not running", node.label());
        }
        let mut stop = env().pg("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(&node.data)
            .args(["-m", "immediate", "-w", "-t", "30"]);
        if let Err(e) = run(&mut stop, COMMAND_TIMEOUT) {
            panic!(
                "kill: stopping {} failed: {e}\n--- {} ---\n{}",
                node.label(),
                node.log.display(),
                log_tail_of(&node.log, 20)
            );
        }
        self.update(port, |n| n.running = false);
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !connect_refused(port) {
            if Instant::now() >= deadline {
                panic!(
                    "kill: port {port} of {} still accepts connections {WAIT_TIMEOUT:?} after \
                     pg_ctl stop",
                    node.label()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Promotes a standby (`pg_ctl promote -w`), waits until
    /// `pg_is_in_recovery()` is false on it, and re-points the other standbys
    /// at it (see the module docs for when they can follow).
    pub fn promote(&self, port: u16) {
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
        for other in others {
            // Later lines of postgresql.auto.conf win; primary_conninfo is
            // reloadable (PostgreSQL >= 13).
            env().append_file(
                &other.data.join("postgresql.auto.conf"),
                &format!("primary_conninfo = 'host=127.0.0.1 port={port} user={SUPERUSER}'\n"),
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
        let mut node = self.node(port);
        if node.running {
            panic!("restart: node {} is already running", node.label());
        }
        if let Err(e) = self.start_node(&mut node, false) {
            panic!("restart: {e}");
        }
    }

    /// Turns a node (typically a killed former primary) back into a standby
    /// of the current primary: stops it if running, replaces its data
    /// directory with a fresh base backup, and starts it on the same port.
    pub fn rejoin_as_standby(&self, port: u16) {
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
        let name = format!("{base}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
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
        for node in self.running_standbys() {
            let got = self.query_one(node.port, &check);
            if got != "1" {
                panic!(
                    "create_database: {name} does not exist on standby {} after replay",
                    node.label()
                );
            }
        }
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

    fn node(&self, port: u16) -> Node {
        let state = lock(&self.state);
        match state.nodes.iter().find(|n| n.port == port) {
            Some(node) => node.clone(),
            None => panic!(
                "cluster harness: no node on port {port} in this cluster (nodes: {:?})",
                state.nodes.iter().map(|n| n.port).collect::<Vec<_>>()
            ),
        }
    }

    fn node_label_or_port(&self, port: u16) -> String {
        let state = lock(&self.state);
        state
            .nodes
            .iter()
            .find(|n| n.port == port)
            .map_or_else(|| format!("port {port}"), Node::label)
    }

    fn update(&self, port: u16, f: impl FnOnce(&mut Node)) {
        let mut state = lock(&self.state);
        if let Some(node) = state.nodes.iter_mut().find(|n| n.port == port) {
            f(node);
        }
    }

    fn running_standbys(&self) -> Vec<Node> {
        lock(&self.state)
            .nodes
            .iter()
            .filter(|n| n.role == Role::Standby && n.running)
            .cloned()
            .collect()
    }

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
        }
    }

    fn base_backup(&self, node: &Node, primary_port: u16) -> Result<(), String> {
        let mut backup = env().pg("pg_basebackup");
        backup
            .args(["-h", "127.0.0.1", "-U", SUPERUSER])
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
            env.write_file(
                &node.data.join("node.conf"),
                &format!(
                    "port = {}\nunix_socket_directories = {}\ncluster_name = '{}_{}'\n",
                    node.port,
                    quote_literal(&self.dir.display().to_string()),
                    node.name,
                    node.port
                ),
            );
            let offset = file_len(&node.log);
            let mut start = env.pg("pg_ctl");
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
                    match state.nodes.iter_mut().find(|n| n.name == node.name) {
                        Some(existing) => *existing = node.clone(),
                        None => state.nodes.push(node.clone()),
                    }
                    return Ok(());
                }
                Err(e) => {
                    let log = read_from(&node.log, offset);
                    if new_port && attempt < PORT_ATTEMPTS && log.contains("Address already in use")
                    {
                        continue;
                    }
                    return Err(format!(
                        "starting {} on port {} failed: {e}\n--- {} (this start) ---\n{}",
                        node.name,
                        node.port,
                        node.log.display(),
                        log.trim_end()
                    ));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn all_log_tails(&self, lines: usize) -> String {
        let nodes = lock(&self.state).nodes.clone();
        let mut out = String::new();
        for node in nodes {
            out.push_str(&format!(
                "--- {} {} ---\n{}\n",
                node.label(),
                node.log.display(),
                log_tail_of(&node.log, lines)
            ));
        }
        out
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
            let mut stop = env().pg("pg_ctl");
            stop.arg("stop")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", "30"]);
            if let Err(e) = run(&mut stop, COMMAND_TIMEOUT) {
                all_stopped = false;
                eprintln!(
                    "PgCluster::drop: stopping {} failed (the reaper will retry at exit): {e}",
                    data.display()
                );
            }
        }
        if !all_stopped {
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!(
                "PgCluster::drop: removing {} failed (the reaper will retry at exit): {e}",
                self.dir.display()
            );
        }
    }
}
