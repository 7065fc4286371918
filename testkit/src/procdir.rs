//! What every server harness of this crate shares: one directory per test process, the
//! reaper that stops every server under it when the process dies, the OS users servers run
//! as when we are root, and small file helpers.
//!
//! * The process directory is `<base>/diesel-multidb-testkit-<pid>-<nonce>/`, where
//!   `<base>` is `$PG_HARNESS_DIR` (the name predates the other harnesses), else `/dev/shm`
//!   if it is a world-writable tmpfs (much faster than disk), else the system temp
//!   directory. It belongs to the current user with mode 0711 when we are root (so that
//!   servers running as `postgres` or `mysql` can reach their own subdirectories) and 0700
//!   otherwise. Each harness puts its templates and clusters in subdirectories owned by its
//!   server's OS user: PostgreSQL nodes at `c<N>/n<i>/data`, MariaDB nodes at
//!   `m<N>/n<i>/`, pg_auto_failover formations at `ha<N>/{nmon,n1,n2}/data` (see the
//!   harness modules).
//! * The reaper (`sh -c`, in its own process group, ignoring HUP/INT/QUIT/TERM) reads a
//!   pipe whose write end only this process holds. When the process exits for any reason
//!   (normal exit, panic, abort, SIGKILL) the pipe closes and the reaper cleans up
//!   everything under the process directory, in this order, then removes it:
//!   1. Process groups listed in `*/reap.pgids` (`<pgid> <leader comm>` per line, see
//!      [`Reap::ProcessGroup`]; the `pg_autoctl run` supervisors of
//!      [`AutoFailover`](crate::AutoFailover)): SIGKILL to every member but the
//!      `postgres` ones (stopped in step 3), if the group leader is still the program
//!      recorded, so that no supervisor restarts a server stopped below.
//!   2. MariaDB (`*/n*/harness.pid`, written by the harness right after it spawns
//!      `mariadbd`): SIGKILL.
//!   3. PostgreSQL (`*/n*/data/postmaster.pid`, plain, namespaced and pg_auto_failover
//!      nodes alike): SIGQUIT to the postmaster, which is what `pg_ctl stop -m immediate`
//!      sends; waits up to 30 s for the pid file to go, then SIGKILL.
//!   4. Network namespaces and links listed in `*/reap.netns` (`ns <name>` or
//!      `link <name>` per line, see [`Reap::NetNs`] and [`Reap::Link`]; written by
//!      `netns.rs` before it creates them): SIGKILL to whatever still runs in a namespace,
//!      then `ip netns delete`, `ip link delete`.
//!
//!   Every pid is checked against `/proc/<pid>/comm` first, so a recycled pid is never
//!   signalled. Directories left by dead processes whose reaper was killed too are cleaned
//!   by the next test process that starts a harness.

use crate::process::run;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bound for one helper command (`id`, the synchronous stale-directory reaper).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const PROCESS_DIR_PREFIX: &str = "diesel-multidb-testkit-";
/// The prefix used before the process directory was shared by several harnesses;
/// stale directories with it are cleaned too.
const OLD_PROCESS_DIR_PREFIXES: &[&str] = &["diesel-multidb-pg-"];

/// Once its stdin reaches EOF, stops every process group, server, namespace and link
/// under `$1` (see the module docs) and removes `$1`.
const REAPER_SCRIPT: &str = r#"
trap '' HUP INT QUIT TERM PIPE
root=$1
echo $$ >"$root/reaper.pid"
cat >/dev/null 2>&1
PATH=$PATH:/usr/sbin:/sbin
# $1: pid file, $2...: accepted /proc/<pid>/comm values. Prints the pid if it is one of ours.
our_pid() {
  f=$1
  shift
  pid=$(head -n 1 "$f" 2>/dev/null)
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  for c in "$@"; do
    if [ "$comm" = "$c" ]; then echo "$pid"; return 0; fi
  done
  return 1
}
# kill_group PGID LEADER_COMM: SIGKILL every process of the group except the postgres
# servers (stopped below), if its leader is still LEADER_COMM.
kill_group() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 0
  for p in /proc/[0-9]*; do
    stat=$(cat "$p/stat" 2>/dev/null) || continue
    comm=${stat#*(}
    comm=${comm%)*}
    # After "(comm) ": state ppid pgrp ...
    set -- "$1" ${stat##*) }
    [ "$4" = "$1" ] && [ "$comm" != postgres ] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  return 0
}
for f in "$root"/*/reap.pgids; do
  [ -f "$f" ] || continue
  while read -r pgid comm; do
    case "$pgid" in ''|*[!0-9]*) continue ;; esac
    kill_group "$pgid" "$comm"
  done <"$f"
done
for f in "$root"/*/n*/harness.pid; do
  [ -f "$f" ] || continue
  pid=$(our_pid "$f" mariadbd mysqld) && kill -KILL "$pid" 2>/dev/null
done
for f in "$root"/*/n*/data/postmaster.pid; do
  [ -f "$f" ] || continue
  pid=$(our_pid "$f" postgres) || continue
  kill -QUIT "$pid" 2>/dev/null || continue
  i=0
  while [ -f "$f" ] && [ -d "/proc/$pid" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if [ -f "$f" ] && our_pid "$f" postgres >/dev/null; then
    kill -KILL "$pid" 2>/dev/null
  fi
done
for f in "$root"/*/reap.netns; do
  [ -f "$f" ] || continue
  while read -r kind name; do
    case "$kind" in
      ns)
        pids=$(ip netns pids "$name" 2>/dev/null)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        ip netns delete "$name" >/dev/null 2>&1 ;;
      link) ip link delete "$name" >/dev/null 2>&1 ;;
    esac
  done <"$f"
done
rm -rf "$root"
"#;

/// What the reaper must clean up besides the servers it finds by their pid files. See
/// [`reap_at_exit`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reap<'a> {
    /// A process group (`reap.pgids`): SIGKILL to every member but the `postgres` ones, if
    /// its leader (`pgid`) still has `/proc/<pgid>/comm` = `leader_comm`.
    ProcessGroup { pgid: u32, leader_comm: &'a str },
    /// A network namespace (`reap.netns`): SIGKILL to the processes in it, then delete it.
    NetNs(&'a str),
    /// A network interface in the root namespace (`reap.netns`): delete it.
    Link(&'a str),
}

/// Records `what` for the reaper in `dir`, which must be a directory directly under the
/// process directory (the reaper reads `<root>/*/reap.*`). Call it before creating a
/// namespace or link, so that a death in between leaves nothing behind; a process group
/// can only be recorded right after its leader is spawned.
pub(crate) fn reap_at_exit(dir: &Path, what: Reap<'_>) {
    if dir.parent() != Some(process_dir().root()) {
        panic!(
            "cluster harness: {} is not directly under the process directory {}; the reaper \
             would not see {what:?}",
            dir.display(),
            process_dir().root().display()
        );
    }
    let (file, line) = match what {
        Reap::ProcessGroup { pgid, leader_comm } => {
            ("reap.pgids", format!("{pgid} {leader_comm}\n"))
        }
        Reap::NetNs(name) => ("reap.netns", format!("ns {name}\n")),
        Reap::Link(name) => ("reap.netns", format!("link {name}\n")),
    };
    // Read by the reaper, which runs as the current user: no chown.
    append_file_create(&dir.join(file), &line, None);
}

/// The process directory and its reaper, created on first use.
pub(crate) struct ProcessDir {
    root: PathBuf,
    /// The reaper. Its stdin (a pipe) stays open for the life of the process: it is never
    /// waited for, it outlives us by design.
    _reaper: Child,
    next_cluster: AtomicUsize,
}

/// The process directory (created, with its reaper, on first call).
pub(crate) fn process_dir() -> &'static ProcessDir {
    static DIR: OnceLock<ProcessDir> = OnceLock::new();
    DIR.get_or_init(ProcessDir::init)
}

impl ProcessDir {
    fn init() -> ProcessDir {
        let base = base_dir();
        reap_stale_process_dirs(&base);

        let root = loop {
            let nonce = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let candidate = base.join(format!(
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
        let mut reaper = reaper_command(&root);
        reaper
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C or a group kill aimed at the test run must not
            // take the reaper down with it.
            .process_group(0);
        let reaper = reaper.spawn().unwrap_or_else(|e| {
            let _ = fs::remove_dir_all(&root);
            panic!("cluster harness: cannot spawn the cleanup process `sh -c ...`: {e}")
        });

        let mode = if is_root() { 0o711 } else { 0o700 };
        if let Err(e) = fs::set_permissions(&root, fs::Permissions::from_mode(mode)) {
            panic!("cluster harness: chmod {mode:o} {}: {e}", root.display());
        }
        if root.as_os_str().len() > 60 {
            // Unix socket paths are limited to 107 bytes: root/cN/.s.PGSQL.NNNNN,
            // root/mN/nI/mysqld.sock.
            panic!(
                "cluster harness: the test directory {} is too long for unix socket paths; \
                 set PG_HARNESS_DIR to a shorter directory",
                root.display()
            );
        }
        ProcessDir {
            root,
            _reaper: reaper,
            next_cluster: AtomicUsize::new(0),
        }
    }

    /// `<base>/diesel-multidb-testkit-<pid>-<nonce>`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `<root>/<prefix><n>` (mode 0700, for `owner`), where `n` is a number no
    /// other directory made here has: one per cluster or formation.
    pub(crate) fn new_subdir(&self, prefix: &str, owner: Option<&ServerUser>) -> PathBuf {
        let n = self.next_cluster.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("{prefix}{n}"));
        mkdir(&dir, owner);
        dir
    }
}

fn reaper_command(root: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(REAPER_SCRIPT)
        .arg("diesel-multidb-testkit-reaper")
        .arg(root)
        .current_dir("/");
    cmd
}

/// Where the per-process directories go: `$PG_HARNESS_DIR` if set, else `/dev/shm` when it
/// is a writable tmpfs (data directories in memory: about ten times faster than the disk
/// here), else the system temp directory.
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

/// Runs the reaper synchronously on directories left by test processes that no longer
/// exist (only possible if their reaper was killed too).
fn reap_stale_process_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| {
            std::iter::once(PROCESS_DIR_PREFIX)
                .chain(OLD_PROCESS_DIR_PREFIXES.iter().copied())
                .find_map(|prefix| n.strip_prefix(prefix))
        }) else {
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
        if let Err(e) = run(&mut reaper_command(&entry.path()), COMMAND_TIMEOUT) {
            eprintln!("cluster harness: (ignored) cleaning a stale directory failed: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// OS users.
// ---------------------------------------------------------------------------

/// The OS user a server runs as when the test process is root.
#[derive(Clone, Debug)]
pub(crate) struct ServerUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl ServerUser {
    /// `None` when we are not root (servers then run as the current user). Otherwise the
    /// user named by `$env_var`, default `default`; panics if it does not exist.
    /// `server` names the server in the failure message.
    pub(crate) fn when_root(env_var: &str, default: &str, server: &str) -> Option<ServerUser> {
        if !is_root() {
            return None;
        }
        let name = std::env::var(env_var).unwrap_or_else(|_| default.to_owned());
        let id = |flag: &str| -> u32 {
            let out =
                run(Command::new("id").arg(flag).arg(&name), COMMAND_TIMEOUT).unwrap_or_else(|e| {
                    panic!(
                        "cluster harness: we run as root, so the {server} server must run as \
                         OS user {name:?} (set {env_var} to change it), but looking it up \
                         failed: {e}"
                    )
                });
            out.stdout.trim().parse().unwrap_or_else(|e| {
                panic!(
                    "cluster harness: `id {flag} {name}` printed {:?}: {e}",
                    out.stdout
                )
            })
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Some(ServerUser { name, uid, gid })
    }
}

pub(crate) fn find_runuser() -> PathBuf {
    for candidate in ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    // Let PATH find it; a failure will name the command.
    PathBuf::from("runuser")
}

/// Whether this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    effective_uid() == 0
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

// ---------------------------------------------------------------------------
// Files owned by a server's OS user.
// ---------------------------------------------------------------------------

/// Gives `path` to `owner` (no-op when `None`).
pub(crate) fn chown(path: &Path, owner: Option<&ServerUser>) {
    if let Some(user) = owner {
        if let Err(e) = std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)) {
            panic!(
                "cluster harness: chown {}:{} {}: {e}",
                user.uid,
                user.gid,
                path.display()
            );
        }
    }
}

/// Makes `dir` accessible to `owner` only (`mode`, then chown).
pub(crate) fn own_dir(dir: &Path, mode: u32, owner: Option<&ServerUser>) {
    if let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(mode)) {
        panic!("cluster harness: chmod {mode:o} {}: {e}", dir.display());
    }
    chown(dir, owner);
}

/// Creates `dir` (mode 0700) for `owner`.
pub(crate) fn mkdir(dir: &Path, owner: Option<&ServerUser>) {
    if let Err(e) = fs::create_dir(dir) {
        panic!("cluster harness: mkdir {}: {e}", dir.display());
    }
    own_dir(dir, 0o700, owner);
}

/// Writes a file (replacing it) and gives it to `owner`.
pub(crate) fn write_file(path: &Path, contents: &str, owner: Option<&ServerUser>) {
    if let Err(e) = fs::write(path, contents) {
        panic!("cluster harness: cannot write {}: {e}", path.display());
    }
    chown(path, owner);
}

/// Appends to an existing file.
pub(crate) fn append_file(path: &Path, contents: &str) {
    let result = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()));
    if let Err(e) = result {
        panic!("cluster harness: cannot append to {}: {e}", path.display());
    }
}

/// Appends to a file, creating it (and giving it to `owner`) if needed.
pub(crate) fn append_file_create(path: &Path, contents: &str, owner: Option<&ServerUser>) {
    let existed = path.exists();
    let result = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()));
    if let Err(e) = result {
        panic!("cluster harness: cannot append to {}: {e}", path.display());
    }
    if !existed {
        chown(path, owner);
    }
}

// ---------------------------------------------------------------------------
// Logs and URLs.
// ---------------------------------------------------------------------------

pub(crate) fn log_tail_of(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(_) => String::new(),
    }
}

/// Minimal percent-encoding for the userinfo part of a URL.
pub(crate) fn encode_userinfo(s: &str) -> String {
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
