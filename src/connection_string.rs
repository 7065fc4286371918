//! The multi-host connection-string grammar (STUB: the contract; a helper writes the real parser).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which server a [`MultiHostConnection`](crate::MultiHostConnection) accepts as its primary
/// (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server that accepts a connection.
    Any,
    /// A server whose sessions accept writes (`transaction_read_only` is `off`). The default.
    #[default]
    ReadWrite,
    /// A server whose sessions are read-only (a standby, or a primary with
    /// `default_transaction_read_only = on`).
    ReadOnly,
    /// A server that is not in hot standby (`pg_is_in_recovery()` is false).
    Primary,
    /// A server in hot standby.
    Standby,
    /// A standby if one is reachable, else any server.
    PreferStandby,
}

/// Whether hosts are tried in the order given or in random order (libpq's `load_balance_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoadBalanceHosts {
    /// In the order given. The default.
    #[default]
    Disable,
    /// In random order (also spreads replica reads randomly).
    Random,
}

/// One server of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Host {
    /// The host name, IP address or Unix-socket directory.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port (5432 when none was given).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Whether `host` is a Unix-socket directory (it starts with `/` or `@`).
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/') || self.host.starts_with('@')
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') && !self.is_unix_socket() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed multi-host connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub(crate) hosts: Vec<Host>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) dbname: Option<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) target_session_attrs: TargetSessionAttrs,
    pub(crate) load_balance_hosts: LoadBalanceHosts,
    pub(crate) connect_timeout: Duration,
    pub(crate) replica_reads: bool,
    pub(crate) replica_retry_interval: Duration,
    pub(crate) failover_timeout: Duration,
    pub(crate) writing_functions: Vec<String>,
}

/// Why a connection string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// Stub.
    Invalid(String),
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionStringError::Invalid(s) => write!(f, "invalid connection string: {s}"),
        }
    }
}
impl std::error::Error for ConnectionStringError {}

impl ConnectionString {
    /// The servers, in the order given.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The user name.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// Whether a password was given (the password itself is never exposed).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
    /// The database name.
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }
    /// The remaining libpq parameters, in the order given.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// `target_session_attrs`.
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }
    /// `load_balance_hosts`.
    pub fn load_balance_hosts(&self) -> LoadBalanceHosts {
        self.load_balance_hosts
    }
    /// `connect_timeout`, per host.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// `replica_reads`.
    pub fn replica_reads(&self) -> bool {
        self.replica_reads
    }
    /// `replica_retry_interval`.
    pub fn replica_retry_interval(&self) -> Duration {
        self.replica_retry_interval
    }
    /// `failover_timeout`.
    pub fn failover_timeout(&self) -> Duration {
        self.failover_timeout
    }
    /// `writing_functions`.
    pub fn writing_functions(&self) -> &[String] {
        &self.writing_functions
    }
    /// The libpq key/value connection string for one host (contains the password).
    pub(crate) fn host_conninfo(&self, host: &Host) -> String {
        fn q(v: &str) -> String {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        let mut s = format!("host={} port={}", q(&host.host), host.port);
        if let Some(u) = &self.user {
            s += &format!(" user={}", q(u));
        }
        if let Some(p) = &self.password {
            s += &format!(" password={}", q(p));
        }
        if let Some(d) = &self.dbname {
            s += &format!(" dbname={}", q(d));
        }
        let secs = self.connect_timeout.as_secs().max(2);
        s += &format!(" connect_timeout={secs}");
        for (k, v) in &self.params {
            s += &format!(" {k}={}", q(v));
        }
        s
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // STUB: postgres://[user[:pw]@]h:p,h:p/db?key=value
        let rest = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
            .ok_or_else(|| ConnectionStringError::Invalid("scheme".into()))?;
        let (auth, rest) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(a.to_string()), None),
            },
            None => (None, None),
        };
        let (hostpart, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let (dbname, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hostpart
            .split(',')
            .map(|h| {
                let (h, p) = h.rsplit_once(':').unwrap_or((h, "5432"));
                Host {
                    host: h.to_string(),
                    port: p.parse().unwrap_or(5432),
                }
            })
            .collect();
        let mut cs = ConnectionString {
            hosts,
            user,
            password,
            dbname: (!dbname.is_empty()).then(|| dbname.to_string()),
            params: vec![],
            target_session_attrs: TargetSessionAttrs::ReadWrite,
            load_balance_hosts: LoadBalanceHosts::Disable,
            connect_timeout: Duration::from_secs(10),
            replica_reads: true,
            replica_retry_interval: Duration::from_secs(30),
            failover_timeout: Duration::from_secs(30),
            writing_functions: vec![],
        };
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "connect_timeout" => {
                    cs.connect_timeout = Duration::from_secs(v.parse().unwrap_or(10))
                }
                "failover_timeout" => {
                    cs.failover_timeout = Duration::from_secs(v.parse().unwrap_or(30))
                }
                "replica_retry_interval" => {
                    cs.replica_retry_interval = Duration::from_secs(v.parse().unwrap_or(30))
                }
                "replica_reads" => cs.replica_reads = v == "on",
                "target_session_attrs" => {
                    cs.target_session_attrs = match v {
                        "any" => TargetSessionAttrs::Any,
                        "primary" => TargetSessionAttrs::Primary,
                        "standby" => TargetSessionAttrs::Standby,
                        "read-only" => TargetSessionAttrs::ReadOnly,
                        "prefer-standby" => TargetSessionAttrs::PreferStandby,
                        _ => TargetSessionAttrs::ReadWrite,
                    }
                }
                "load_balance_hosts" => {
                    cs.load_balance_hosts = if v == "random" {
                        LoadBalanceHosts::Random
                    } else {
                        LoadBalanceHosts::Disable
                    }
                }
                "writing_functions" => {
                    cs.writing_functions = v.split(',').map(|s| s.to_string()).collect()
                }
                _ => cs.params.push((k.to_string(), v.to_string())),
            }
        }
        Ok(cs)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
            if self.password.is_some() {
                write!(f, ":********")?;
            }
            write!(f, "@")?;
        }
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        write!(
            f,
            "{}/{}",
            hosts.join(","),
            self.dbname.as_deref().unwrap_or("")
        )
    }
}
