//! The multi-host connection-string grammar.
//!
//! [`ConnectionString`] reads the two forms libpq reads (a `postgres://` /
//! `postgresql://` URI and the `key=value` form), following libpq's own parser
//! (`conninfo_uri_parse_options`, `conninfo_uri_parse_params`,
//! `conninfo_uri_decode` and `conninfo_parse` in PostgreSQL's
//! `src/interfaces/libpq/fe-connect.c`, and the host/port list rules of
//! `connectOptions2`). The few places where it deliberately differs are listed
//! in the documentation of [`ConnectionString`].

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::BackendKind;

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

impl TargetSessionAttrs {
    /// The value as written in a connection string (`read-write`, `prefer-standby`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// libpq compares these values case-sensitively (`strcmp`), and so do we.
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return None,
        })
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

impl LoadBalanceHosts {
    /// The value as written in a connection string (`disable` or `random`).
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadBalanceHosts::Disable => "disable",
            LoadBalanceHosts::Random => "random",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "disable" => Some(LoadBalanceHosts::Disable),
            "random" => Some(LoadBalanceHosts::Random),
            _ => None,
        }
    }
}

impl fmt::Display for LoadBalanceHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a connection's reads see its own committed writes (`read_your_writes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadYourWrites {
    /// After a connection commits a write, its reads run on a standby only once that
    /// standby has replayed the write, else on the primary. The default.
    #[default]
    Connection,
    /// Reads go to any standby that may serve reads, even one that has not replayed this
    /// connection's writes yet.
    Off,
}

impl ReadYourWrites {
    /// The value as written in a connection string (`connection` or `off`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReadYourWrites::Connection => "connection",
            ReadYourWrites::Off => "off",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "connection" => Some(ReadYourWrites::Connection),
            "off" => Some(ReadYourWrites::Off),
            _ => None,
        }
    }
}

/// What to do when two hosts are writable at once (`split_brain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SplitBrainPolicy {
    /// Refuse writes (naming both hosts) until one of them is stopped or demoted; reads on
    /// standbys go on. The default.
    #[default]
    Refuse,
    /// Write to the host on the newer timeline (the one promoted last); refuse only when the
    /// timelines are equal or unknown. Opt-in: writes to the other host are lost when it
    /// comes back.
    HighestTimeline,
}

impl SplitBrainPolicy {
    /// The value as written in a connection string (`refuse` or `highest-timeline`).
    pub fn as_str(&self) -> &'static str {
        match self {
            SplitBrainPolicy::Refuse => "refuse",
            SplitBrainPolicy::HighestTimeline => "highest-timeline",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "refuse" => Some(SplitBrainPolicy::Refuse),
            "highest-timeline" => Some(SplitBrainPolicy::HighestTimeline),
            _ => None,
        }
    }
}

/// One server of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// libpq's `hostaddr` for this host (`None` when not given or given empty).
    pub(crate) hostaddr: Option<String>,
}

impl Host {
    /// The host name, IP address or Unix-socket directory.
    ///
    /// Empty when the connection string names no host for this slot (`postgresql:///db`,
    /// `host=a,,b`, or only a `hostaddr`): libpq then uses its default, the Unix-socket
    /// directory it was compiled with (`localhost` where it has none), or the
    /// [`hostaddr`](Host::hostaddr) if there is one.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port (5432 when none was given).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The numeric IP address given for this host with libpq's `hostaddr` parameter.
    ///
    /// When present, libpq connects to this address without resolving [`host`](Host::host)
    /// (which is then only used for authentication and TLS checks).
    pub fn hostaddr(&self) -> Option<&str> {
        self.hostaddr.as_deref()
    }
    /// Whether `host` is a Unix-socket directory (it starts with `/` or `@`) and no
    /// `hostaddr` overrides it.
    ///
    /// The default host ([`is_default`](Host::is_default)) is usually a socket directory too,
    /// but which one is decided by libpq, so this returns `false` for it.
    pub fn is_unix_socket(&self) -> bool {
        self.hostaddr.is_none() && (self.host.starts_with('/') || self.host.starts_with('@'))
    }
    /// Whether neither a host nor a `hostaddr` was given for this slot, so that libpq
    /// connects to its default (the Unix-socket directory it was compiled with, or
    /// `localhost` where it has none).
    pub fn is_default(&self) -> bool {
        self.host.is_empty() && self.hostaddr.is_none()
    }
}

impl fmt::Display for Host {
    /// `host:port`, `[ipv6]:port`, the `hostaddr` when no host name was given, or
    /// `<default>:port` for libpq's default host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if !self.host.is_empty() {
            self.host.as_str()
        } else if let Some(addr) = &self.hostaddr {
            addr.as_str()
        } else {
            "<default>"
        };
        if name.contains(':') && !name.starts_with('/') && !name.starts_with('@') {
            write!(f, "[{}]:{}", name, self.port)
        } else {
            write!(f, "{}:{}", name, self.port)
        }
    }
}

/// A parsed multi-host connection string.
///
/// # Grammar
///
/// Two forms are accepted, exactly as libpq reads them:
///
/// ```text
/// postgres[ql]://[user[:password]@][host[:port]][,host[:port]...][/dbname][?key=value[&key=value...]]
/// key=value [key=value ...]
/// ```
///
/// URI form:
/// * the scheme is `postgres://` or `postgresql://` (case-sensitive); any other `scheme://`
///   is rejected;
/// * every part (user, password, hosts, ports, dbname, query keys and values) is
///   percent-decoded; `%` must be followed by two hex digits and `%00` is forbidden;
///   as in libpq 18, unencoded spaces around a part are ignored and spaces inside one are
///   an error (write `%20`);
/// * hosts are a comma-separated list, each with an optional `:port`; IPv6 addresses are
///   written in brackets (`[::1]:5434`); a host without a port gets 5432; a Unix-socket
///   directory is written percent-encoded (`postgresql://%2Fvar%2Frun%2Fpostgresql/db`)
///   or as a query parameter (`postgresql:///db?host=/var/run/postgresql`);
/// * query parameters may repeat the parts above (`?host=a,b&port=5432,5433&user=u`);
///   a later value replaces an earlier one; `ssl=true` means `sslmode=require` (JDBC
///   compatibility, as in libpq).
///
/// Key/value form:
/// * `key = value` pairs separated by whitespace; whitespace around `=` is allowed;
/// * a value may be single-quoted; inside or outside quotes a backslash escapes the next
///   character (`\'`, `\\`); an empty value is written `''`;
/// * `''` is **not** an escaped quote: as in libpq, `password='it''s'` is the quoted value
///   `it` directly followed by a new (invalid) parameter name `'s'`, which is an error;
///   write `password='it\'s'`.
///
/// In both forms:
/// * `host`, `hostaddr` and `port` are comma-separated lists; there are as many servers as
///   `hostaddr` entries if `hostaddr` is given, else as `host` entries, else one; `host` must
///   then have as many entries as `hostaddr`; `port` must have one entry (used for every
///   host) or one per host; an empty entry means the default (libpq's default host, which is
///   its compiled-in Unix-socket directory or `localhost`, see [`Host::host`]; port 5432);
/// * ports must be integers from 1 to 65535;
/// * parameter names must be libpq's (`host`, `hostaddr`, `port`, `dbname`, `user`,
///   `password`, `passfile`, `require_auth`, `channel_binding`, `connect_timeout`,
///   `client_encoding`, `options`, `application_name`, `fallback_application_name`,
///   `keepalives`, `keepalives_idle`, `keepalives_interval`, `keepalives_count`,
///   `tcp_user_timeout`, `replication`, `gssencmode`, `sslmode`, `requiressl`,
///   `sslnegotiation`, `sslcompression`, `sslcert`, `sslkey`, `sslpassword`, `sslcertmode`,
///   `sslrootcert`, `sslcrl`, `sslcrldir`, `sslsni`, `requirepeer`,
///   `ssl_min_protocol_version`, `ssl_max_protocol_version`, `krbsrvname`, `gsslib`,
///   `gssdelegation`, `service`, `target_session_attrs`, `load_balance_hosts`) or this
///   crate's (below); anything else is an error. The libpq parameters other than the
///   host/port/user/password/dbname ones and the ones consumed here are kept, in order, in
///   [`params`](ConnectionString::params) and passed on to libpq.
///
/// # Parameters handled by this crate
///
/// These are consumed here and never passed to libpq:
///
/// | parameter | values | default |
/// |---|---|---|
/// | `target_session_attrs` | `read-write`, `primary`, `any`, `read-only`, `standby`, `prefer-standby` (libpq's meanings) | `read-write` |
/// | `load_balance_hosts` | `disable` (hosts in the order given), `random` | `disable` |
/// | `connect_timeout` | whole seconds per host, as libpq: `0` or negative = no limit, `1` counts as `2` | `10` |
/// | `replica_reads` | `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`): whether provably read-only statements may go to standbys | `on` |
/// | `replica_retry_interval` | the longest a failed host is left alone before it is probed again (failed hosts are probed after 250 ms, then twice as long each time, up to this): whole seconds, or a number with a unit `ms`, `s`, `min` or `h` (`500ms`, `10s`, `2min`) | `30s` |
/// | `failover_timeout` | how long to wait for a new primary after the primary is lost; same syntax | `30s` |
/// | `writing_functions` | comma-separated function names (trimmed, lower-cased) that the statement classifier must treat as writing, in addition to its built-in list | empty |
/// | `read_your_writes` | `connection`: after a connection commits a write, its reads go to a standby only once that standby has replayed it (else to the primary); `off` | `connection` |
/// | `monitor_interval` | how often the topology monitor probes each host, from `10ms` to `1h`; same syntax | `1s` |
/// | `max_replica_lag` | a standby lagging more serves no reads until it catches up, at most `1h`; `off` for no limit; same syntax | `10s` |
/// | `split_brain` | `refuse` (writes refused while two hosts are writable) or `highest-timeline` (opt-in: the host on the newer timeline takes the writes) | `refuse` |
///
/// `replica_retry_interval` and `failover_timeout` are at most a day; a value out of range
/// is an error naming the parameter and the range.
///
/// libpq's TCP keepalive settings are given defaults on every session unless the URL sets
/// them, so that a peer that silently stops answering is detected in about 10 seconds:
/// `keepalives=1`, `keepalives_idle=4`, `keepalives_interval=2`, `keepalives_count=3`,
/// `tcp_user_timeout=10000` (milliseconds).
///
/// `connect_timeout` is also passed on to libpq in each host's connection string (at least
/// 2, omitted when there is no limit); "no limit" is represented by
/// [`UNLIMITED_CONNECT_TIMEOUT`](ConnectionString::UNLIMITED_CONNECT_TIMEOUT).
///
/// # Deliberate differences from libpq
///
/// * Percent-decoded values must be UTF-8 (libpq accepts any bytes).
/// * An unencoded `@` in the URI host list (as left over by an unencoded `@` in a
///   password: `postgresql://u:p@ss@host`) is rejected, so that the end of the password
///   never shows up as a host name; libpq takes `ss@host` as a host name.
/// * The environment (`PGHOST`, `PGPORT`, ...) and service files are not read: a slot
///   without a host is libpq's default host, a slot without a port is 5432.
/// * libpq's newest parameters not listed above (e.g. `servicefile`, `min_protocol_version`,
///   the `oauth_*` ones) are rejected.
///
/// # Secrets
///
/// The password and the `sslpassword` are never shown: [`Display`](fmt::Display) and
/// [`Debug`](fmt::Debug) print `********` in their place, and no [`ConnectionStringError`]
/// contains them (a token that may be part of one is shown as `********`, and the error then
/// says it follows a password).
///
/// # Example
///
/// ```
/// use diesel_multidb::{ConnectionString, TargetSessionAttrs};
/// use std::time::Duration;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let cs: ConnectionString = "postgres://app:s3cret@db1:5433,db2,[::1]:5434/shop\
///         ?sslmode=require&target_session_attrs=primary&replica_retry_interval=500ms"
///         .parse()?;
///     let hosts: Vec<(&str, u16)> = cs.hosts().iter().map(|h| (h.host(), h.port())).collect();
///     assert_eq!(hosts, [("db1", 5433), ("db2", 5432), ("::1", 5434)]);
///     assert_eq!(cs.user(), Some("app"));
///     assert_eq!(cs.dbname(), Some("shop"));
///     assert_eq!(cs.params().collect::<Vec<_>>(), [("sslmode", "require")]);
///     assert_eq!(cs.target_session_attrs(), TargetSessionAttrs::Primary);
///     assert_eq!(cs.replica_retry_interval(), Duration::from_millis(500));
///     assert_eq!(cs.connect_timeout(), Duration::from_secs(10));
///     assert!(!cs.to_string().contains("s3cret"));
///
///     let kv: ConnectionString = "host=a,b port=5432,5433 dbname=app password='it\\'s'".parse()?;
///     assert_eq!(kv.hosts()[1].port(), 5433);
///     Ok(())
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// PostgreSQL (libpq's grammar) or MySQL/MariaDB (`mysql://`).
    pub(crate) backend: BackendKind,
    pub(crate) hosts: Vec<Host>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) dbname: Option<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) target_session_attrs: TargetSessionAttrs,
    /// Whether `target_session_attrs` was written in the string (else it is the default).
    pub(crate) target_session_attrs_given: bool,
    pub(crate) load_balance_hosts: LoadBalanceHosts,
    pub(crate) connect_timeout: Duration,
    pub(crate) replica_reads: bool,
    pub(crate) replica_retry_interval: Duration,
    pub(crate) failover_timeout: Duration,
    pub(crate) writing_functions: Vec<String>,
    pub(crate) read_your_writes: ReadYourWrites,
    pub(crate) monitor_interval: Duration,
    pub(crate) max_replica_lag: Option<Duration>,
    pub(crate) split_brain: SplitBrainPolicy,
}

/// Why a connection string was rejected.
///
/// Positions are 0-based byte offsets into the connection string. A token that may be
/// part of the password is shown as `********`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// The string starts with `scheme://` for a scheme other than `postgres` and `postgresql`.
    UnknownScheme {
        /// The scheme, without `://`.
        scheme: String,
    },
    /// A `%` not followed by two hexadecimal digits.
    InvalidPercentEncoding {
        /// The `%` and the (up to) two characters after it.
        token: String,
        /// Where the `%` is.
        position: usize,
    },
    /// `%00` (libpq: "forbidden value %00 in percent-encoded value").
    PercentEncodedNul {
        /// Where the `%` is.
        position: usize,
    },
    /// A NUL character (which libpq, reading NUL-terminated strings, cannot receive).
    NulCharacter {
        /// Where it is.
        position: usize,
    },
    /// An unencoded space inside a URI part (libpq 18: "unexpected spaces found").
    UnexpectedSpace {
        /// Where the space is.
        position: usize,
    },
    /// Percent-decoding produced bytes that are not UTF-8.
    InvalidUtf8 {
        /// Where the first offending byte (or its `%xx` token) is.
        position: usize,
    },
    /// A parameter name not followed by `=` (key/value form, or a URI query parameter).
    MissingEquals {
        /// The name (as written).
        name: String,
        /// Where the name starts.
        position: usize,
    },
    /// A second `=` in a URI query parameter (`?a=b=c`).
    ExtraEquals {
        /// The parameter name (as written).
        name: String,
        /// Where the second `=` is.
        position: usize,
    },
    /// A parameter name that neither libpq nor this crate knows.
    UnknownParameter {
        /// The name (percent-decoded in a URI).
        name: String,
        /// Where the name starts.
        position: usize,
    },
    /// A `[` in the URI host list without its `]`.
    UnterminatedIpv6 {
        /// Where the `[` is.
        position: usize,
    },
    /// `[]` in the URI host list.
    EmptyIpv6 {
        /// Where the `[` is.
        position: usize,
    },
    /// Something other than `:`, `/`, `?`, `,` or the end after a bracketed IPv6 address.
    UnexpectedCharacter {
        /// The character.
        character: char,
        /// Where it is.
        position: usize,
    },
    /// An unencoded `@` in the URI host list (an `@` in a user name or password must be
    /// written `%40`).
    UnexpectedAt {
        /// Where the `@` is.
        position: usize,
    },
    /// A quoted value in key/value form without its closing quote.
    UnterminatedQuote {
        /// The parameter the value belongs to.
        name: String,
        /// Where the opening quote is.
        position: usize,
    },
    /// A port that is not an integer from 1 to 65535.
    InvalidPort {
        /// The port as written (decoded).
        port: String,
        /// Where it starts.
        position: usize,
    },
    /// Neither one port nor one port per host.
    PortCountMismatch {
        /// How many ports were given.
        ports: usize,
        /// How many hosts there are.
        hosts: usize,
    },
    /// `host` and `hostaddr` have different numbers of entries.
    HostaddrCountMismatch {
        /// How many host names were given.
        hosts: usize,
        /// How many `hostaddr` values were given.
        hostaddrs: usize,
    },
    /// A value this crate (or libpq) does not accept for the parameter.
    InvalidValue {
        /// The parameter.
        parameter: String,
        /// The value.
        value: String,
    },
    /// A duration outside the range the parameter accepts.
    OutOfRange {
        /// The parameter.
        parameter: String,
        /// The value.
        value: String,
        /// The smallest accepted value.
        min: String,
        /// The largest accepted value.
        max: String,
    },
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConnectionStringError as E;
        match self {
            E::UnknownScheme { scheme } => write!(
                f,
                "unknown scheme \"{scheme}://\" at byte 0 (expected \"postgres://\", \"postgresql://\" or \"mysql://\")"
            ),
            E::InvalidPercentEncoding { token, position } => {
                write!(f, "invalid percent-encoded token \"{token}\" at byte {position}")
            }
            E::PercentEncodedNul { position } => {
                write!(f, "forbidden value \"%00\" in percent-encoded value at byte {position}")
            }
            E::NulCharacter { position } => write!(f, "unexpected NUL character at byte {position}"),
            E::UnexpectedSpace { position } => write!(
                f,
                "unexpected space at byte {position} (use percent-encoded spaces, %20)"
            ),
            E::InvalidUtf8 { position } => {
                write!(f, "percent-decoded value at byte {position} is not valid UTF-8")
            }
            // A name shown as `********` may be the rest of a password: say so instead of
            // quoting the mask as if it were the name.
            E::MissingEquals { name, position } if name == REDACTED => write!(
                f,
                "missing \"=\" after the word at byte {position}, just after a password (quote a password holding spaces, or percent-encode \"&\" in one)"
            ),
            E::MissingEquals { name, position } => {
                write!(f, "missing \"=\" after \"{name}\" at byte {position}")
            }
            E::ExtraEquals { name, position } if name == REDACTED => write!(
                f,
                "extra key/value separator \"=\" at byte {position}, just after a password (percent-encode \"&\" and \"=\" in one)"
            ),
            E::ExtraEquals { name, position } => write!(
                f,
                "extra key/value separator \"=\" in query parameter \"{name}\" at byte {position}"
            ),
            E::UnknownParameter { name, position } if name == REDACTED => write!(
                f,
                "unknown connection parameter at byte {position}, just after a password (its name is not shown: it may be the rest of the password; quote a password holding spaces, or percent-encode \"&\" in one)"
            ),
            E::UnknownParameter { name, position } => {
                write!(f, "unknown connection parameter \"{name}\" at byte {position}")
            }
            E::UnterminatedIpv6 { position } => write!(
                f,
                "end of string reached when looking for matching \"]\" for the \"[\" at byte {position}"
            ),
            E::EmptyIpv6 { position } => {
                write!(f, "empty IPv6 host address \"[]\" at byte {position}")
            }
            E::UnexpectedCharacter { character, position } => write!(
                f,
                "unexpected character \"{character}\" at byte {position} (expected \":\", \"/\", \"?\" or \",\" after an IPv6 address)"
            ),
            E::UnexpectedAt { position } => write!(
                f,
                "unexpected \"@\" in host list at byte {position} (write \"@\" in user names and passwords as %40)"
            ),
            E::UnterminatedQuote { name, position } => write!(
                f,
                "unterminated quoted value for \"{name}\" starting at byte {position}"
            ),
            E::InvalidPort { port, position } => {
                write!(f, "invalid port \"{port}\" at byte {position}")
            }
            E::PortCountMismatch { ports, hosts } => {
                write!(f, "{ports} ports given for {hosts} hosts")
            }
            E::HostaddrCountMismatch { hosts, hostaddrs } => {
                write!(f, "{hosts} host names given for {hostaddrs} hostaddr values")
            }
            E::InvalidValue { parameter, value } => {
                write!(f, "invalid value \"{value}\" for {parameter}")
            }
            E::OutOfRange {
                parameter,
                value,
                min,
                max,
            } => write!(
                f,
                "{parameter}={value} is out of range (from {min} to {max})"
            ),
        }
    }
}

impl std::error::Error for ConnectionStringError {}

/// The port libpq uses when none is given.
const DEFAULT_PORT: u16 = 5432;
/// The port MySQL and MariaDB listen on by default.
const MYSQL_DEFAULT_PORT: u16 = 3306;
/// What is shown instead of a password.
const REDACTED: &str = "********";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REPLICA_RETRY_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_MAX_REPLICA_LAG: Duration = Duration::from_secs(10);
/// The longest `failover_timeout` and `replica_retry_interval`: a day.
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);
/// The range of `monitor_interval`.
const MONITOR_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(60 * 60));
/// The largest `max_replica_lag`: the lag history covers an hour.
const MAX_REPLICA_LAG: Duration = Duration::from_secs(60 * 60);

/// libpq's TCP settings the crate sets on every session unless the URL sets them: a peer
/// that silently stops answering (a cut network) is detected within about 10 seconds
/// instead of the operating system's two hours. Keepalive probes start after 4 s of
/// silence, every 2 s, 3 unanswered ones close the connection; data left unacknowledged
/// for 10 s closes it too (`tcp_user_timeout`, Linux).
pub(crate) const KEEPALIVE_DEFAULTS: &[(&str, &str)] = &[
    ("keepalives", "1"),
    ("keepalives_idle", "4"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

/// libpq's parameter names that this crate accepts.
const LIBPQ_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// This crate's own parameter names (never passed to libpq).
const CRATE_PARAMS: &[&str] = &[
    "replica_reads",
    "replica_retry_interval",
    "failover_timeout",
    "writing_functions",
    "read_your_writes",
    "monitor_interval",
    "max_replica_lag",
    "split_brain",
];

/// The parameters whose values are secrets: never shown, and a token right after one may be
/// part of it.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

fn is_secret_parameter(name: &str) -> bool {
    SECRET_PARAMS.contains(&name)
}

/// The per-host parameters of a `mysql://` URL that Diesel's `MysqlConnection` reads, plus
/// the URI parts also accepted as query parameters.
const MYSQL_PARAMS: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "connect_timeout",
    "ssl_mode",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "unix_socket",
    "target_session_attrs",
    "load_balance_hosts",
];

fn is_known_parameter(backend: BackendKind, name: &str) -> bool {
    let own = if backend == BackendKind::Mysql {
        MYSQL_PARAMS
    } else {
        LIBPQ_PARAMS
    };
    own.contains(&name) || CRATE_PARAMS.contains(&name)
}

/// The port a host without one gets.
fn default_port(backend: BackendKind) -> u16 {
    if backend == BackendKind::Mysql {
        MYSQL_DEFAULT_PORT
    } else {
        DEFAULT_PORT
    }
}

/// Characters left unencoded in URI parts: RFC 3986's unreserved characters.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Inside `[...]`, `:` is left as it is.
const URI_IPV6: &AsciiSet = &URI_COMPONENT.remove(b':');

/// C's `isspace` in the C locale, which libpq's key/value parser uses.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Bytes with, for each, the byte offset in the input it came from.
#[derive(Debug, Clone, Default)]
struct Raw {
    bytes: Vec<u8>,
    pos: Vec<usize>,
}

impl Raw {
    fn push(&mut self, b: u8, pos: usize) {
        self.bytes.push(b);
        self.pos.push(pos);
    }
    fn push_slice(&mut self, input: &str, start: usize, end: usize) {
        for (i, &b) in input.as_bytes()[start..end].iter().enumerate() {
            self.push(b, start + i);
        }
    }
    fn from_input(input: &str, start: usize, end: usize) -> Raw {
        let mut raw = Raw::default();
        raw.push_slice(input, start, end);
        raw
    }
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    fn into_value(self) -> Result<Value, ConnectionStringError> {
        match String::from_utf8(self.bytes) {
            Ok(text) => Ok(Value {
                text,
                pos: self.pos,
            }),
            Err(e) => Err(ConnectionStringError::InvalidUtf8 {
                position: self.pos[e.utf8_error().valid_up_to()],
            }),
        }
    }
}

/// A parameter value with the input offset of each of its bytes.
#[derive(Debug, Clone)]
struct Value {
    text: String,
    pos: Vec<usize>,
}

impl Value {
    fn synthetic(text: &str, pos: usize) -> Value {
        Value {
            text: text.to_string(),
            pos: vec![pos; text.len()],
        }
    }
    /// Where the value starts (`fallback` when it is empty).
    fn start(&self, fallback: usize) -> usize {
        self.pos.first().copied().unwrap_or(fallback)
    }
    /// Splits a comma-separated list (libpq's `parse_comma_separated_list`: no escaping,
    /// no trimming).
    fn split_commas(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = self.text.as_bytes();
        for i in 0..=bytes.len() {
            if i == bytes.len() || bytes[i] == b',' {
                out.push(Value {
                    text: self.text[start..i].to_string(),
                    pos: self.pos[start..i].to_vec(),
                });
                start = i + 1;
            }
        }
        out
    }
}

/// The parameters read so far, in the order of their last assignment.
#[derive(Debug, Default)]
struct Options {
    list: Vec<(String, Value)>,
}

impl Options {
    /// Stores a value; a later value replaces an earlier one (as in libpq) and moves to
    /// the end, so that the relative order of the last assignments is kept (this matters
    /// for aliases such as `requiressl`/`sslmode`, which libpq folds into one setting).
    fn set(&mut self, key: &str, value: Value) {
        self.list.retain(|(k, _)| k != key);
        self.list.push((key.to_string(), value));
    }
    fn take(&mut self, key: &str) -> Option<Value> {
        let i = self.list.iter().position(|(k, _)| k == key)?;
        Some(self.list.remove(i).1)
    }
}

struct Parser<'a> {
    input: &'a str,
    /// Whose parameters are accepted, and the default port.
    backend: BackendKind,
    /// Byte ranges that may hold (part of) the password: tokens found there are redacted
    /// in errors.
    suspect: Vec<(usize, usize)>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, backend: BackendKind) -> Self {
        Parser {
            input,
            backend,
            suspect: Vec::new(),
        }
    }

    fn is_suspect(&self, pos: usize) -> bool {
        self.suspect.iter().any(|&(a, b)| a <= pos && pos < b)
    }

    fn redact(&self, token: &str, pos: usize) -> String {
        if self.is_suspect(pos) {
            REDACTED.to_string()
        } else {
            token.to_string()
        }
    }

    /// libpq's `conninfo_uri_decode` (libpq 18): leading and trailing unencoded spaces are
    /// skipped, an unencoded space inside is an error, `%xx` is decoded, `%00` is forbidden.
    fn decode(&self, raw: &Raw) -> Result<Raw, ConnectionStringError> {
        let b = &raw.bytes;
        let n = b.len();
        let mut i = 0;
        while i < n && b[i] == b' ' {
            i += 1;
        }
        let mut out = Raw::default();
        while i < n {
            if b[i] == b'%' {
                let hi = b.get(i + 1).and_then(|&c| hex_value(c));
                let lo = b.get(i + 2).and_then(|&c| hex_value(c));
                let position = raw.pos[i];
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    let mut end = (i + 3).min(n);
                    while end < n && (b[end] & 0xC0) == 0x80 {
                        end += 1;
                    }
                    let token = String::from_utf8_lossy(&b[i..end]);
                    return Err(ConnectionStringError::InvalidPercentEncoding {
                        token: self.redact(&token, position),
                        position,
                    });
                };
                let c = (hi << 4) | lo;
                if c == 0 {
                    return Err(ConnectionStringError::PercentEncodedNul { position });
                }
                out.push(c, position);
                i += 3;
            } else if b[i] == b' ' {
                break;
            } else {
                out.push(b[i], raw.pos[i]);
                i += 1;
            }
        }
        let space = i;
        while i < n && b[i] == b' ' {
            i += 1;
        }
        if i < n {
            return Err(ConnectionStringError::UnexpectedSpace {
                position: raw.pos[space],
            });
        }
        Ok(out)
    }

    fn decode_value(&self, raw: &Raw) -> Result<Value, ConnectionStringError> {
        self.decode(raw)?.into_value()
    }

    /// libpq's `conninfo_uri_parse_options`; `start` is just after `://`.
    fn parse_uri(&mut self, start: usize) -> Result<Options, ConnectionStringError> {
        let input = self.input;
        let b = input.as_bytes();
        let n = b.len();
        let mut opts = Options::default();
        let at_byte = |p: usize| b.get(p).copied();

        // Look ahead for the user-credentials designator (libpq stops at the first `@` or `/`).
        let mut p = start;
        while p < n && b[p] != b'@' && b[p] != b'/' {
            p += 1;
        }
        // With credentials: `user_end` is the `:` or `@` that ends the user name (libpq).
        let userinfo = (p < n && b[p] == b'@').then(|| {
            let user_end = start
                + b[start..p]
                    .iter()
                    .position(|&c| c == b':')
                    .unwrap_or(p - start);
            (user_end, p)
        });

        // Whatever lies between the start of the password and the last `@` may be part of a
        // password (an unencoded `/` or `@` in a password shifts libpq's reading of it), so
        // tokens from there are redacted in errors.
        let secret_start = match userinfo {
            Some((user_end, at)) if user_end < at => user_end + 1,
            Some((_, at)) => at + 1,
            None => start,
        };
        if let Some(last_at) = input.rfind('@') {
            if last_at >= secret_start {
                self.suspect.push((secret_start, last_at));
            }
        }

        p = start;
        if let Some((user_end, at)) = userinfo {
            if user_end > start {
                let user = self.decode_value(&Raw::from_input(input, start, user_end))?;
                opts.set("user", user);
            }
            if user_end < at && at > user_end + 1 {
                let password = self.decode_value(&Raw::from_input(input, user_end + 1, at))?;
                opts.set("password", password);
            }
            p = at + 1;
        }

        // The host list: netloc[:port][,netloc[:port]...]
        let mut hostbuf = Raw::default();
        let mut portbuf = Raw::default();
        let mut prev: Option<u8>;
        loop {
            let (host_start, host_end);
            if at_byte(p) == Some(b'[') {
                let open = p;
                p += 1;
                host_start = p;
                while p < n && b[p] != b']' {
                    p += 1;
                }
                if p == n {
                    return Err(ConnectionStringError::UnterminatedIpv6 { position: open });
                }
                if p == host_start {
                    return Err(ConnectionStringError::EmptyIpv6 { position: open });
                }
                host_end = p;
                p += 1;
                if let Some(c) = at_byte(p) {
                    if !matches!(c, b':' | b'/' | b'?' | b',') {
                        let character = input[p..].chars().next().unwrap_or('\u{fffd}');
                        return Err(ConnectionStringError::UnexpectedCharacter {
                            character,
                            position: p,
                        });
                    }
                }
            } else {
                host_start = p;
                while p < n && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                    p += 1;
                }
                host_end = p;
            }
            check_no_at(b, host_start, host_end)?;
            hostbuf.push_slice(input, host_start, host_end);
            prev = at_byte(p);
            if prev == Some(b':') {
                p += 1;
                let port_start = p;
                while p < n && !matches!(b[p], b'/' | b'?' | b',') {
                    p += 1;
                }
                check_no_at(b, port_start, p)?;
                portbuf.push_slice(input, port_start, p);
                prev = at_byte(p);
            }
            if prev != Some(b',') {
                break;
            }
            hostbuf.push(b',', p);
            portbuf.push(b',', p);
            p += 1;
        }
        if !hostbuf.is_empty() {
            let hosts = self.decode_value(&hostbuf)?;
            opts.set("host", hosts);
        }
        if !portbuf.is_empty() {
            let ports = self.decode_value(&portbuf)?;
            opts.set("port", ports);
        }

        if prev == Some(b'/') {
            p += 1;
            let db_start = p;
            while p < n && b[p] != b'?' {
                p += 1;
            }
            // As libpq: an empty dbname is not stored at all.
            if p > db_start {
                let dbname = self.decode_value(&Raw::from_input(input, db_start, p))?;
                opts.set("dbname", dbname);
            }
            prev = at_byte(p);
        }
        if prev.is_some() {
            self.parse_query(p + 1, &mut opts)?;
        }
        Ok(opts)
    }

    /// libpq's `conninfo_uri_parse_params`.
    fn parse_query(
        &mut self,
        start: usize,
        opts: &mut Options,
    ) -> Result<(), ConnectionStringError> {
        let input = self.input;
        let b = input.as_bytes();
        let n = b.len();
        let mut q = start;
        while q < n {
            let key_start = q;
            let mut eq: Option<usize> = None;
            let end;
            loop {
                if q == n || b[q] == b'&' {
                    end = q;
                    if q < n {
                        q += 1;
                    }
                    break;
                }
                if b[q] == b'=' {
                    if let Some(first) = eq {
                        return Err(ConnectionStringError::ExtraEquals {
                            name: self.redact(&input[key_start..first], key_start),
                            position: q,
                        });
                    }
                    eq = Some(q);
                }
                q += 1;
            }
            let Some(eq) = eq else {
                return Err(ConnectionStringError::MissingEquals {
                    name: self.redact(&input[key_start..end], key_start),
                    position: key_start,
                });
            };
            let key = self.decode_value(&Raw::from_input(input, key_start, eq))?;
            if is_secret_parameter(&key.text) {
                // The value, and the next parameter (in case the password holds an `&`).
                let next_end = input[q..].find('&').map_or(n, |i| q + i);
                self.suspect.push((eq + 1, next_end.max(end)));
            }
            let value = self.decode_value(&Raw::from_input(input, eq + 1, end))?;
            let (key, value) = if self.backend == BackendKind::Postgres
                && key.text == "ssl"
                && value.text == "true"
            {
                // libpq: "Special keyword handling for improved JDBC compatibility."
                ("sslmode".to_string(), Value::synthetic("require", eq + 1))
            } else {
                (key.text, value)
            };
            if !is_known_parameter(self.backend, &key) {
                return Err(ConnectionStringError::UnknownParameter {
                    name: self.redact(&key, key_start),
                    position: key_start,
                });
            }
            opts.set(&key, value);
        }
        Ok(())
    }

    /// libpq's `conninfo_parse` (the key/value form).
    ///
    /// Quoting follows libpq exactly: a value starting with `'` runs to the next unescaped
    /// `'`; a backslash escapes the next character inside and outside quotes; nothing
    /// needs to separate a closing quote from the next name. In particular `''` inside a
    /// quoted value is *not* an escaped quote: `password='it''s'` is `password=it`
    /// followed by the name `'s'`, which has no `=`, so libpq (and we) reject it.
    fn parse_kv(&mut self) -> Result<Options, ConnectionStringError> {
        let input = self.input;
        let b = input.as_bytes();
        let n = b.len();
        let mut opts = Options::default();
        let mut i = 0;
        // Whether the previous parameter was the password: the next name may then be the
        // rest of a password containing a space or a quote, so it is redacted in errors.
        let mut after_password = false;
        while i < n {
            if is_c_space(b[i]) {
                i += 1;
                continue;
            }
            let name_start = i;
            while i < n && b[i] != b'=' && !is_c_space(b[i]) {
                i += 1;
            }
            let name_end = i;
            while i < n && is_c_space(b[i]) {
                i += 1;
            }
            let name = &input[name_start..name_end];
            let shown_name = if after_password { REDACTED } else { name };
            if i == n || b[i] != b'=' {
                return Err(ConnectionStringError::MissingEquals {
                    name: shown_name.to_string(),
                    position: name_start,
                });
            }
            i += 1;
            while i < n && is_c_space(b[i]) {
                i += 1;
            }
            let value_start = i;
            let mut value = Raw::default();
            if i < n && b[i] == b'\'' {
                i += 1;
                loop {
                    if i == n {
                        return Err(ConnectionStringError::UnterminatedQuote {
                            name: shown_name.to_string(),
                            position: value_start,
                        });
                    }
                    match b[i] {
                        b'\\' => {
                            i += 1;
                            if i < n {
                                value.push(b[i], i);
                                i += 1;
                            }
                        }
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        c => {
                            value.push(c, i);
                            i += 1;
                        }
                    }
                }
            } else {
                while i < n {
                    if is_c_space(b[i]) {
                        i += 1;
                        break;
                    }
                    if b[i] == b'\\' {
                        i += 1;
                        if i < n {
                            value.push(b[i], i);
                            i += 1;
                        }
                    } else {
                        value.push(b[i], i);
                        i += 1;
                    }
                }
            }
            if !is_known_parameter(self.backend, name) {
                return Err(ConnectionStringError::UnknownParameter {
                    name: shown_name.to_string(),
                    position: name_start,
                });
            }
            after_password = is_secret_parameter(name);
            if after_password {
                self.suspect.push((value_start, i));
            }
            // Only whole ASCII characters were removed from valid UTF-8, so this cannot fail.
            opts.set(name, value.into_value()?);
        }
        Ok(opts)
    }

    /// Turns the parsed parameters into a [`ConnectionString`] (libpq's `connectOptions2`
    /// rules for the host, hostaddr and port lists, plus this crate's parameters).
    fn build(&self, mut opts: Options) -> Result<ConnectionString, ConnectionStringError> {
        let host = opts.take("host").filter(|v| !v.text.is_empty());
        let hostaddr = opts.take("hostaddr").filter(|v| !v.text.is_empty());
        let port = opts.take("port").filter(|v| !v.text.is_empty());

        let hostaddrs = hostaddr.as_ref().map(Value::split_commas);
        let names = host.as_ref().map(Value::split_commas);
        let nhosts = match (&hostaddrs, &names) {
            (Some(addrs), _) => addrs.len(),
            (None, Some(names)) => names.len(),
            (None, None) => 1,
        };
        if let (Some(names), Some(addrs)) = (&names, &hostaddrs) {
            if names.len() != addrs.len() {
                return Err(ConnectionStringError::HostaddrCountMismatch {
                    hosts: names.len(),
                    hostaddrs: addrs.len(),
                });
            }
        }
        let ports: Vec<u16> = match &port {
            None => vec![default_port(self.backend); nhosts],
            Some(list) => {
                let entries = list.split_commas();
                if entries.len() != 1 && entries.len() != nhosts {
                    return Err(ConnectionStringError::PortCountMismatch {
                        ports: entries.len(),
                        hosts: nhosts,
                    });
                }
                let parsed = entries
                    .iter()
                    .map(|e| self.parse_port(e))
                    .collect::<Result<Vec<u16>, _>>()?;
                if parsed.len() == 1 {
                    vec![parsed[0]; nhosts]
                } else {
                    parsed
                }
            }
        };
        let hosts = (0..nhosts)
            .map(|i| Host {
                host: names
                    .as_ref()
                    .map(|v| v[i].text.clone())
                    .unwrap_or_default(),
                port: ports[i],
                hostaddr: hostaddrs
                    .as_ref()
                    .map(|v| v[i].text.clone())
                    .filter(|a| !a.is_empty()),
            })
            .collect();

        let user = opts.take("user").map(|v| v.text);
        let password = opts.take("password").map(|v| v.text);
        let dbname = opts.take("dbname").map(|v| v.text);

        let mut cs = ConnectionString {
            backend: self.backend,
            hosts,
            user,
            password,
            dbname,
            params: Vec::new(),
            target_session_attrs: TargetSessionAttrs::default(),
            target_session_attrs_given: false,
            load_balance_hosts: LoadBalanceHosts::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            replica_reads: true,
            replica_retry_interval: DEFAULT_REPLICA_RETRY_INTERVAL,
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
            writing_functions: Vec::new(),
            read_your_writes: ReadYourWrites::default(),
            monitor_interval: DEFAULT_MONITOR_INTERVAL,
            max_replica_lag: Some(DEFAULT_MAX_REPLICA_LAG),
            split_brain: SplitBrainPolicy::default(),
        };
        for (key, value) in opts.list {
            let invalid = || ConnectionStringError::InvalidValue {
                parameter: key.clone(),
                value: self.redact(&value.text, value.start(usize::MAX)),
            };
            match key.as_str() {
                "target_session_attrs" => {
                    cs.target_session_attrs =
                        TargetSessionAttrs::parse(&value.text).ok_or_else(invalid)?;
                    cs.target_session_attrs_given = true;
                }
                "load_balance_hosts" => {
                    cs.load_balance_hosts =
                        LoadBalanceHosts::parse(&value.text).ok_or_else(invalid)?;
                }
                "connect_timeout" => {
                    // libpq: an integer; <= 0 waits forever; 1 is raised to 2.
                    let secs = parse_c_int(&value.text).ok_or_else(invalid)?;
                    cs.connect_timeout = if secs <= 0 {
                        ConnectionString::UNLIMITED_CONNECT_TIMEOUT
                    } else {
                        Duration::from_secs(u64::from(secs.max(2).unsigned_abs()))
                    };
                }
                "replica_reads" => {
                    cs.replica_reads = parse_bool(&value.text).ok_or_else(invalid)?;
                }
                "replica_retry_interval" => {
                    let d = parse_duration(&value.text).ok_or_else(invalid)?;
                    cs.replica_retry_interval =
                        in_range(&key, &value.text, d, (Duration::ZERO, MAX_WAIT))?;
                }
                "failover_timeout" => {
                    let d = parse_duration(&value.text).ok_or_else(invalid)?;
                    cs.failover_timeout =
                        in_range(&key, &value.text, d, (Duration::ZERO, MAX_WAIT))?;
                }
                "monitor_interval" => {
                    let d = parse_duration(&value.text).ok_or_else(invalid)?;
                    cs.monitor_interval = in_range(&key, &value.text, d, MONITOR_INTERVAL_RANGE)?;
                }
                "max_replica_lag" => {
                    cs.max_replica_lag = if value.text.trim() == "off" {
                        None
                    } else {
                        let d = parse_duration(&value.text).ok_or_else(invalid)?;
                        Some(in_range(
                            &key,
                            &value.text,
                            d,
                            (Duration::ZERO, MAX_REPLICA_LAG),
                        )?)
                    };
                }
                "read_your_writes" => {
                    cs.read_your_writes =
                        ReadYourWrites::parse(value.text.trim()).ok_or_else(invalid)?;
                }
                "split_brain" => {
                    cs.split_brain =
                        SplitBrainPolicy::parse(value.text.trim()).ok_or_else(invalid)?;
                }
                "writing_functions" => {
                    cs.writing_functions = parse_function_list(&value.text).map_err(|entry| {
                        ConnectionStringError::InvalidValue {
                            parameter: key.clone(),
                            value: entry,
                        }
                    })?;
                }
                _ => cs.params.push((key, value.text)),
            }
        }
        Ok(cs)
    }

    /// A port entry: empty means 5432; otherwise an integer as libpq's `pqParseIntParam`
    /// reads it (surrounding whitespace and a sign allowed) from 1 to 65535.
    fn parse_port(&self, entry: &Value) -> Result<u16, ConnectionStringError> {
        if entry.text.is_empty() {
            return Ok(default_port(self.backend));
        }
        parse_c_int(&entry.text)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                let position = entry.start(0);
                ConnectionStringError::InvalidPort {
                    port: self.redact(&entry.text, position),
                    position,
                }
            })
    }
}

/// Rejects an unencoded `@` in a URI host or port (see "Deliberate differences").
fn check_no_at(b: &[u8], start: usize, end: usize) -> Result<(), ConnectionStringError> {
    match b[start..end].iter().position(|&c| c == b'@') {
        Some(i) => Err(ConnectionStringError::UnexpectedAt {
            position: start + i,
        }),
        None => Ok(()),
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An integer as libpq's `pqParseIntParam` reads it: `strtol` in base 10 (leading
/// whitespace and a sign allowed), trailing whitespace allowed, and it must fit an `int`.
fn parse_c_int(s: &str) -> Option<i32> {
    let t = s.trim_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    i32::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Whole seconds, or a whole number followed by `ms`, `s`, `min` or `h` (whitespace
/// around the number and before the unit allowed).
fn parse_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = t[..digits_end].parse().ok()?;
    match t[digits_end..].trim_start() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// `d`, or the error naming the parameter and the accepted range.
fn in_range(
    parameter: &str,
    text: &str,
    d: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, ConnectionStringError> {
    if d < min || d > max {
        return Err(ConnectionStringError::OutOfRange {
            parameter: parameter.to_string(),
            value: text.trim().to_string(),
            min: format_duration(min),
            max: format_duration(max),
        });
    }
    Ok(d)
}

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Comma-separated function names, trimmed and lower-cased; empty entries are skipped and
/// duplicates dropped. An entry that is not a (possibly schema-qualified) identifier is
/// returned as the error.
fn parse_function_list(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for entry in s.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let valid = entry
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.'))
            && !entry.starts_with('.')
            && !entry.ends_with('.');
        if !valid {
            return Err(entry.to_string());
        }
        let name = entry.to_lowercase();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A value single-quoted for libpq's key/value form, with `\` and `'` backslash-escaped.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `scheme://` at the very start (RFC 3986 scheme syntax), for the unknown-scheme error.
fn leading_scheme(s: &str) -> Option<&str> {
    let end = s.find("://")?;
    let scheme = &s[..end];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

impl ConnectionString {
    /// The [`connect_timeout`](ConnectionString::connect_timeout) that stands for "no
    /// limit" (`connect_timeout=0` or negative): 100 years, large enough never to expire
    /// but small enough to add to an [`Instant`](std::time::Instant) or to sum over many
    /// hosts without overflowing.
    pub const UNLIMITED_CONNECT_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

    /// The kind of server: [`BackendKind::Postgres`] (libpq's grammar) or
    /// [`BackendKind::Mysql`] (a `mysql://` URL).
    pub fn backend(&self) -> BackendKind {
        self.backend
    }
    /// The servers, in the order given (at least one).
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
    /// The remaining libpq parameters, in the order given (for a parameter given more
    /// than once: its last value, at the place of its last occurrence).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// `target_session_attrs` (default `read-write`).
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }
    /// `load_balance_hosts` (default `disable`).
    pub fn load_balance_hosts(&self) -> LoadBalanceHosts {
        self.load_balance_hosts
    }
    /// `connect_timeout`, per host (default 10 seconds; at least 2 seconds;
    /// [`UNLIMITED_CONNECT_TIMEOUT`](ConnectionString::UNLIMITED_CONNECT_TIMEOUT) for no
    /// limit).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// `replica_reads` (default on): whether provably read-only statements may be sent to
    /// standbys.
    pub fn replica_reads(&self) -> bool {
        self.replica_reads
    }
    /// `replica_retry_interval` (default 30 seconds): how long a standby whose connection
    /// failed is left alone.
    pub fn replica_retry_interval(&self) -> Duration {
        self.replica_retry_interval
    }
    /// `failover_timeout` (default 30 seconds): how long to wait for a new primary after
    /// the primary is lost.
    pub fn failover_timeout(&self) -> Duration {
        self.failover_timeout
    }
    /// `writing_functions` (default empty): extra lower-case function names the statement
    /// classifier treats as writing.
    pub fn writing_functions(&self) -> &[String] {
        &self.writing_functions
    }
    /// `read_your_writes` (default `connection`): whether a connection's reads wait for
    /// standbys to replay its own committed writes.
    pub fn read_your_writes(&self) -> bool {
        self.read_your_writes == ReadYourWrites::Connection
    }
    /// `monitor_interval` (default 1 second, from 10 ms to 1 hour): how often the topology
    /// monitor probes each host.
    pub fn monitor_interval(&self) -> Duration {
        self.monitor_interval
    }
    /// `max_replica_lag` (default 10 seconds, at most 1 hour; `off` for no limit): a standby
    /// lagging more serves no reads until it catches up.
    pub fn max_replica_lag(&self) -> Option<Duration> {
        self.max_replica_lag
    }
    /// `split_brain` (default `refuse`): what to do when two hosts are writable.
    pub fn split_brain(&self) -> SplitBrainPolicy {
        self.split_brain
    }

    /// The secret values (`password`, `sslpassword`), for scrubbing text shown next to this
    /// connection string. Never to be shown.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.password
            .iter()
            .map(String::as_str)
            .chain(
                self.params
                    .iter()
                    .filter(|(k, _)| is_secret_parameter(k))
                    .map(|(_, v)| v.as_str()),
            )
            .collect()
    }

    /// The URL Diesel's `MysqlConnection::establish` reads, for one host (contains the
    /// password): `mysql://user:password@host:port/dbname?ssl_mode=...`, every part
    /// percent-encoded, an IPv6 address in brackets, the per-host parameters (`ssl_*`,
    /// `unix_socket`) after `?`. The crate's parameters and `connect_timeout` (which Diesel's
    /// MySQL connection does not read; the crate applies it itself) are never included.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn host_mysql_url(&self, host: &Host) -> String {
        let enc = |s: &str| utf8_percent_encode(s, URI_COMPONENT).to_string();
        let mut s = String::from("mysql://");
        if let Some(u) = &self.user {
            s.push_str(&enc(u));
            if let Some(p) = &self.password {
                let _ = write!(s, ":{}", enc(p));
            }
            s.push('@');
        }
        if host.host.contains(':') {
            let _ = write!(s, "[{}]", host.host);
        } else {
            s.push_str(&enc(&host.host));
        }
        let _ = write!(s, ":{}", host.port);
        if let Some(d) = &self.dbname {
            let _ = write!(s, "/{}", enc(d));
        }
        let mut sep = '?';
        for (k, v) in &self.params {
            if k == "connect_timeout" {
                continue;
            }
            let _ = write!(s, "{sep}{k}={}", enc(v));
            sep = '&';
        }
        s
    }

    /// The libpq key/value connection string for one host (contains the password).
    ///
    /// `host`, `hostaddr` (if any), `port`, `user`, `password`, `dbname`, `connect_timeout`
    /// (unless unlimited), then every remaining libpq parameter; every value single-quoted
    /// with `\` and `'` backslash-escaped. This crate's parameters are never included.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn host_conninfo(&self, host: &Host) -> String {
        let mut s = format!("host={}", quote(&host.host));
        if let Some(addr) = &host.hostaddr {
            let _ = write!(s, " hostaddr={}", quote(addr));
        }
        let _ = write!(s, " port={}", quote(&host.port.to_string()));
        if let Some(u) = &self.user {
            let _ = write!(s, " user={}", quote(u));
        }
        if let Some(p) = &self.password {
            let _ = write!(s, " password={}", quote(p));
        }
        if let Some(d) = &self.dbname {
            let _ = write!(s, " dbname={}", quote(d));
        }
        if self.connect_timeout != Self::UNLIMITED_CONNECT_TIMEOUT {
            let secs = self.connect_timeout.as_secs().max(2);
            let _ = write!(s, " connect_timeout={}", quote(&secs.to_string()));
        }
        for (k, v) in &self.params {
            let _ = write!(s, " {k}={}", quote(v));
        }
        for (k, v) in KEEPALIVE_DEFAULTS {
            if !self.params.iter().any(|(given, _)| given == k) {
                let _ = write!(s, " {k}={}", quote(v));
            }
        }
        s
    }

    /// The mysql_async options of one host (contain the password), for the async MySQL
    /// connection: host, port, user, password, database, TCP keepalive after 4 s idle, no
    /// switch to a Unix socket behind the application's back (`prefer_socket` off), a Unix
    /// socket when `unix_socket` is given. `ssl_mode` may be `DISABLED` or `PREFERRED`
    /// (which then connects without TLS).
    ///
    /// # Errors
    ///
    /// A message naming the parameter when one is given that the async MySQL connection
    /// cannot honour (TLS certificates, a required TLS mode).
    #[cfg(feature = "async-mysql")]
    pub(crate) fn host_mysql_async_opts(&self, host: &Host) -> Result<mysql_async::Opts, String> {
        let mut builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(if host.host.is_empty() {
                "localhost"
            } else {
                host.host.as_str()
            })
            .tcp_port(host.port)
            .user(self.user.clone())
            .pass(self.password.clone())
            .db_name(self.dbname.clone())
            .prefer_socket(false)
            .tcp_keepalive(Some(4000_u32));
        for (k, v) in &self.params {
            match k.as_str() {
                "ssl_mode" if v.eq_ignore_ascii_case("disabled") || v.eq_ignore_ascii_case("preferred") => {}
                "ssl_mode" => {
                    return Err(format!(
                        "ssl_mode={v}: the async MySQL connection does not support TLS"
                    ))
                }
                "unix_socket" => builder = builder.socket(Some(v.clone())),
                "connect_timeout" | "target_session_attrs" | "load_balance_hosts" => {}
                other => {
                    return Err(format!(
                        "parameter `{other}` is not supported by the async MySQL connection (mysql_async)"
                    ))
                }
            }
        }
        Ok(builder.into())
    }

    /// The tokio-postgres configuration of one host (contains the password), for the async
    /// connection: the host, `hostaddr`, port, user, password, database, `connect_timeout`,
    /// and the libpq parameters tokio-postgres supports (`application_name`,
    /// `fallback_application_name`, `options`, `keepalives*`, `tcp_user_timeout`, `sslmode`
    /// `disable`/`allow`/`prefer`, `channel_binding`, `client_encoding=UTF8`), with the same
    /// keepalive defaults as [`host_conninfo`](Self::host_conninfo).
    ///
    /// # Errors
    ///
    /// A message naming the parameter when one is given that the async connection cannot
    /// honour (TLS, GSSAPI, certificates, a password file, a service file, ...).
    #[cfg(feature = "async")]
    pub(crate) fn host_tokio_config(&self, host: &Host) -> Result<tokio_postgres::Config, String> {
        use tokio_postgres::config::{ChannelBinding, SslMode};
        let mut config = tokio_postgres::Config::new();
        if host.is_unix_socket() {
            #[cfg(unix)]
            config.host_path(&host.host);
            #[cfg(not(unix))]
            return Err(format!(
                "host `{}`: Unix sockets are not supported here",
                host.host
            ));
        } else {
            config.host(if host.host.is_empty() {
                "localhost"
            } else {
                &host.host
            });
        }
        if let Some(addr) = &host.hostaddr {
            let ip = addr
                .parse()
                .map_err(|_| format!("hostaddr `{addr}` is not an IP address"))?;
            config.hostaddr(ip);
        }
        config.port(host.port);
        if let Some(u) = &self.user {
            config.user(u);
        }
        if let Some(p) = &self.password {
            config.password(p);
        }
        if let Some(d) = &self.dbname {
            config.dbname(d);
        }
        if self.connect_timeout != Self::UNLIMITED_CONNECT_TIMEOUT {
            config.connect_timeout(self.connect_timeout.max(Duration::from_secs(2)));
        }
        let given = |k: &str| self.params.iter().any(|(name, _)| name == k);
        let defaults = KEEPALIVE_DEFAULTS
            .iter()
            .filter(|(k, _)| !given(k))
            .map(|(k, v)| (*k, *v));
        let params = self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in params.chain(defaults) {
            let number = |unit: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("parameter `{k}`: `{v}` is not a number of {unit}"))
            };
            match k {
                "application_name" => {
                    config.application_name(v);
                }
                "fallback_application_name" => {
                    if !given("application_name") {
                        config.application_name(v);
                    }
                }
                "options" => {
                    config.options(v);
                }
                "keepalives" => {
                    config.keepalives(number("flags")? != 0);
                }
                "keepalives_idle" => {
                    config.keepalives_idle(Duration::from_secs(number("seconds")?));
                }
                "keepalives_interval" => {
                    config.keepalives_interval(Duration::from_secs(number("seconds")?));
                }
                "keepalives_count" => {
                    let count = u32::try_from(number("probes")?)
                        .map_err(|_| format!("parameter `{k}`: `{v}` is too large"))?;
                    config.keepalives_retries(count);
                }
                "tcp_user_timeout" => {
                    config.tcp_user_timeout(Duration::from_millis(number("milliseconds")?));
                }
                "sslmode" => match v {
                    "disable" => {
                        config.ssl_mode(SslMode::Disable);
                    }
                    "allow" | "prefer" => {
                        config.ssl_mode(SslMode::Prefer);
                    }
                    _ => {
                        return Err(format!(
                            "sslmode={v}: the async connection does not support TLS"
                        ))
                    }
                },
                "channel_binding" => {
                    config.channel_binding(match v {
                        "disable" => ChannelBinding::Disable,
                        "prefer" => ChannelBinding::Prefer,
                        "require" => ChannelBinding::Require,
                        _ => return Err(format!("channel_binding: unknown value `{v}`")),
                    });
                }
                "client_encoding"
                    if v.eq_ignore_ascii_case("utf8") || v.eq_ignore_ascii_case("utf-8") => {}
                "connect_timeout" | "target_session_attrs" | "load_balance_hosts" => {}
                other => {
                    return Err(format!(
                    "parameter `{other}` is not supported by the async connection (tokio-postgres)"
                ))
                }
            }
        }
        Ok(config)
    }

    /// A canonical string identifying this cluster and these credentials (hosts, user,
    /// password, database, libpq parameters and the crate's own parameters), for sharing
    /// discovery state within the process. Contains the password: only for use as a map key,
    /// never to be printed.
    pub(crate) fn discovery_key(&self) -> String {
        fn field(out: &mut String, tag: &str, value: Option<&str>) {
            match value {
                Some(v) => {
                    let _ = write!(out, "{tag}={}:{v};", v.len());
                }
                None => {
                    let _ = write!(out, "{tag}-;");
                }
            }
        }
        let mut out = format!("{};", self.backend);
        for h in &self.hosts {
            field(&mut out, "host", Some(&h.host));
            field(&mut out, "hostaddr", h.hostaddr.as_deref());
            field(&mut out, "port", Some(&h.port.to_string()));
        }
        field(&mut out, "user", self.user.as_deref());
        field(&mut out, "password", self.password.as_deref());
        field(&mut out, "dbname", self.dbname.as_deref());
        for (k, v) in &self.params {
            field(&mut out, k, Some(v));
        }
        // The crate's own parameters too: connections that differ in how they pick their
        // primary or route their reads must not share one topology.
        let _ = write!(
            out,
            "tsa={};lbh={};ct={:?};rr={};rri={:?};ft={:?};wf={:?};ryw={:?};mi={:?};mrl={:?};sb={:?}",
            self.target_session_attrs,
            self.load_balance_hosts,
            self.connect_timeout,
            self.replica_reads,
            self.replica_retry_interval,
            self.failover_timeout,
            self.writing_functions,
            self.read_your_writes,
            self.monitor_interval,
            self.max_replica_lag,
            self.split_brain,
        );
        out
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    /// Parses either form (see [`ConnectionString`]). As in libpq, a string is a URI only if
    /// it starts exactly with `postgresql://` or `postgres://`; otherwise it is read as
    /// key/value pairs (so the empty string is valid and means all defaults).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // libpq reads NUL-terminated strings, so a NUL can never reach it.
        if let Some(position) = s.find('\0') {
            return Err(ConnectionStringError::NulCharacter { position });
        }
        let backend = if s.starts_with("mysql://") {
            BackendKind::Mysql
        } else {
            BackendKind::Postgres
        };
        let mut parser = Parser::new(s, backend);
        let opts = if let Some(rest) = ["postgresql://", "postgres://", "mysql://"]
            .iter()
            .find(|prefix| s.starts_with(**prefix))
        {
            parser.parse_uri(rest.len())?
        } else if let Some(scheme) = leading_scheme(s) {
            return Err(ConnectionStringError::UnknownScheme {
                scheme: scheme.to_string(),
            });
        } else {
            parser.parse_kv()?
        };
        parser.build(opts)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("backend", &self.backend)
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("dbname", &self.dbname)
            .field(
                "params",
                &self
                    .params
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            if is_secret_parameter(k) { REDACTED } else { v },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .field("target_session_attrs", &self.target_session_attrs)
            .field("load_balance_hosts", &self.load_balance_hosts)
            .field("connect_timeout", &self.connect_timeout)
            .field("replica_reads", &self.replica_reads)
            .field("replica_retry_interval", &self.replica_retry_interval)
            .field("failover_timeout", &self.failover_timeout)
            .field("writing_functions", &self.writing_functions)
            .field("read_your_writes", &self.read_your_writes)
            .field("monitor_interval", &self.monitor_interval)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("split_brain", &self.split_brain)
            .finish()
    }
}

impl fmt::Display for ConnectionString {
    /// A canonical URI: `postgres://[user[:********]@]host:port,...[/dbname][?key=value&...]`,
    /// percent-encoded where needed, with every port written out, the password replaced by
    /// `********` and this crate's parameters written only when they differ from their
    /// defaults. It parses back to an equal value (except for the password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| utf8_percent_encode(s, URI_COMPONENT).to_string();
        f.write_str(match self.backend {
            BackendKind::Mysql => "mysql://",
            _ => "postgres://",
        })?;
        let user = self.user.as_deref().filter(|u| !u.is_empty());
        if user.is_some() || self.password.is_some() {
            f.write_str(&enc(user.unwrap_or("")))?;
            if self.password.is_some() {
                write!(f, ":{REDACTED}")?;
            }
            f.write_str("@")?;
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let ipv6 = h.host.contains(':') && !h.host.starts_with('/') && !h.host.starts_with('@');
            if ipv6 {
                write!(f, "[{}]", utf8_percent_encode(&h.host, URI_IPV6))?;
            } else {
                f.write_str(&enc(&h.host))?;
            }
            write!(f, ":{}", h.port)?;
        }
        let mut query: Vec<(&str, String)> = Vec::new();
        match self.dbname.as_deref() {
            Some("") => query.push(("dbname", String::new())),
            Some(db) => write!(f, "/{}", enc(db))?,
            None => {}
        }
        if self.hosts.iter().any(|h| h.hostaddr.is_some()) {
            let addrs: Vec<&str> = self
                .hosts
                .iter()
                .map(|h| h.hostaddr.as_deref().unwrap_or(""))
                .collect();
            query.push(("hostaddr", addrs.join(",")));
        }
        if self.user.as_deref() == Some("") {
            query.push(("user", String::new()));
        }
        for (k, v) in &self.params {
            query.push((k, v.clone()));
        }
        if self.target_session_attrs != TargetSessionAttrs::default() {
            query.push((
                "target_session_attrs",
                self.target_session_attrs.as_str().into(),
            ));
        }
        if self.load_balance_hosts != LoadBalanceHosts::default() {
            query.push((
                "load_balance_hosts",
                self.load_balance_hosts.as_str().into(),
            ));
        }
        if self.connect_timeout != DEFAULT_CONNECT_TIMEOUT {
            let secs = if self.connect_timeout == Self::UNLIMITED_CONNECT_TIMEOUT {
                0
            } else {
                self.connect_timeout.as_secs()
            };
            query.push(("connect_timeout", secs.to_string()));
        }
        if !self.replica_reads {
            query.push(("replica_reads", "off".into()));
        }
        if self.replica_retry_interval != DEFAULT_REPLICA_RETRY_INTERVAL {
            query.push((
                "replica_retry_interval",
                format_duration(self.replica_retry_interval),
            ));
        }
        if self.failover_timeout != DEFAULT_FAILOVER_TIMEOUT {
            query.push(("failover_timeout", format_duration(self.failover_timeout)));
        }
        if !self.writing_functions.is_empty() {
            query.push(("writing_functions", self.writing_functions.join(",")));
        }
        if self.read_your_writes != ReadYourWrites::default() {
            query.push(("read_your_writes", self.read_your_writes.as_str().into()));
        }
        if self.monitor_interval != DEFAULT_MONITOR_INTERVAL {
            query.push(("monitor_interval", format_duration(self.monitor_interval)));
        }
        if self.max_replica_lag != Some(DEFAULT_MAX_REPLICA_LAG) {
            let lag = self.max_replica_lag.map_or("off".into(), format_duration);
            query.push(("max_replica_lag", lag));
        }
        if self.split_brain != SplitBrainPolicy::default() {
            query.push(("split_brain", self.split_brain.as_str().into()));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            if i == 0 && self.dbname.as_deref().is_none_or(str::is_empty) {
                f.write_str("/")?;
            }
            let value = if is_secret_parameter(k) {
                REDACTED.to_string()
            } else {
                enc(v)
            };
            write!(f, "{}{k}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
