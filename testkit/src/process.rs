//! Running commands with a time limit, free loopback ports, and hosts that never answer:
//! what every server harness of this crate needs.

use std::collections::HashSet;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
// ---------------------------------------------------------------------------
// Running commands with a time limit and readable failures.
// ---------------------------------------------------------------------------

pub(crate) struct CmdOutput {
    pub(crate) stdout: String,
}

pub(crate) fn describe(cmd: &Command) -> String {
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

pub(crate) fn spawn_reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` (stdin closed), capturing its output. `Err` carries the
/// command line, the exit status, stderr and stdout.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput, String> {
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
        Ok(CmdOutput { stdout })
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
pub(crate) fn pick_port() -> u16 {
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

pub(crate) fn connect_refused(port: u16) -> bool {
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
    /// Starts listening on a free 127.0.0.1 port (see [`port`](Self::port)).
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

    /// The port it listens on.
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
