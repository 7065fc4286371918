//! What the harness leaves behind when a test process is killed: one pattern for every kind
//! of cluster. A parent test runs an ignored child test of this binary as a process; the
//! child starts servers, publishes a one-line report and waits; the parent reads the
//! report, SIGKILLs the child and waits until the harness's reaper removed everything.

use std::io::{BufReader, ErrorKind, Read};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable naming the child's report file.
const REPORT_ENV: &str = "DIESEL_MULTIDB_REAPER_CHILD_REPORT";

/// Whether nothing listens on 127.0.0.1:`port` (the connection is refused).
pub(crate) fn refuses(port: u16) -> bool {
    matches!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// The child's side: unless this process was started by [`kill_child_and_wait`] (a plain
/// `--ignored` run), does nothing. Otherwise runs `start`, which starts servers and returns
/// them (kept alive) with the report line, publishes the line and waits to be killed.
pub(crate) fn child<T>(start: impl FnOnce() -> (T, String)) {
    let Some(report) = std::env::var_os(REPORT_ENV) else {
        return;
    };
    let (_servers, line) = start();
    let tmp = PathBuf::from(&report).with_extension("tmp");
    std::fs::write(&tmp, line + "\n").expect("write the report");
    std::fs::rename(&tmp, &report).expect("publish the report");
    thread::sleep(Duration::from_secs(120));
}

/// The parent's side: runs the ignored test `child_test` (`module::name`) as a process,
/// waits up to `start_within` for its report, passes the report's fields to `check`
/// (which asserts what runs and returns a function telling what is still left, empty when
/// nothing is), SIGKILLs the child and waits up to 30 s until nothing is left.
pub(crate) fn kill_child_and_wait<L>(
    child_test: &str,
    start_within: Duration,
    check: impl FnOnce(&[&str]) -> L,
) where
    L: Fn() -> Vec<String>,
{
    let scratch = tempfile::tempdir().expect("tempdir");
    let report = scratch.path().join("report");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([child_test, "--exact", "--ignored", "--test-threads=1"])
        .env(REPORT_ENV, &report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the helper test process");
    let stderr = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + start_within;
    let ready = loop {
        if let Ok(ready) = std::fs::read_to_string(&report) {
            break ready;
        }
        let exited = child.try_wait().expect("try_wait").is_some();
        if exited || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the helper process {child_test} did not report started servers:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let fields: Vec<&str> = ready.split_whitespace().collect();
    let left = check(&fields);

    child.kill().expect("SIGKILL the helper");
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let still = left();
        if still.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30 s after SIGKILL of the test process, still there: {}",
            still.join("; ")
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// What is left of a harness's process directory (the parent of `cluster_dir`) and of
/// servers on `ports`.
pub(crate) fn dir_and_ports_left(cluster_dir: &Path, ports: &[u16]) -> Vec<String> {
    let process_dir = cluster_dir.parent().unwrap();
    let mut left: Vec<String> = ports
        .iter()
        .filter(|&&p| !refuses(p))
        .map(|p| format!("a server on port {p}"))
        .collect();
    if process_dir.exists() {
        left.push(format!("{}", process_dir.display()));
    }
    left
}
