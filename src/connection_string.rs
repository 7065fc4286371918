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
/// | `replica_retry_interval` | how long a standby whose connection failed is left alone: whole seconds, or a number with a unit `ms`, `s`, `min` or `h` (`500ms`, `10s`, `2min`) | `30s` |
/// | `failover_timeout` | how long to wait for a new primary after the primary is lost; same syntax | `30s` |
/// | `writing_functions` | comma-separated function names (trimmed, lower-cased) that the statement classifier must treat as writing, in addition to its built-in list | empty |
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
/// The password is never shown: [`Display`](fmt::Display) and [`Debug`](fmt::Debug) print
/// `********` in its place, and no [`ConnectionStringError`] contains it (a token that may be
/// part of it is shown as `********`).
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
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConnectionStringError as E;
        match self {
            E::UnknownScheme { scheme } => write!(
                f,
                "unknown scheme \"{scheme}://\" at byte 0 (expected \"postgres://\" or \"postgresql://\")"
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
            E::MissingEquals { name, position } => {
                write!(f, "missing \"=\" after \"{name}\" at byte {position}")
            }
            E::ExtraEquals { name, position } => write!(
                f,
                "extra key/value separator \"=\" in query parameter \"{name}\" at byte {position}"
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
        }
    }
}

impl std::error::Error for ConnectionStringError {}

/// The port libpq uses when none is given.
const DEFAULT_PORT: u16 = 5432;
/// What is shown instead of a password.
const REDACTED: &str = "********";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REPLICA_RETRY_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

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
];

fn is_known_parameter(name: &str) -> bool {
    LIBPQ_PARAMS.contains(&name) || CRATE_PARAMS.contains(&name)
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
    /// Byte ranges that may hold (part of) the password: tokens found there are redacted
    /// in errors.
    suspect: Vec<(usize, usize)>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
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
            if key.text == "password" {
                // The value, and the next parameter (in case the password holds an `&`).
                let next_end = input[q..].find('&').map_or(n, |i| q + i);
                self.suspect.push((eq + 1, next_end.max(end)));
            }
            let value = self.decode_value(&Raw::from_input(input, eq + 1, end))?;
            let (key, value) = if key.text == "ssl" && value.text == "true" {
                // libpq: "Special keyword handling for improved JDBC compatibility."
                ("sslmode".to_string(), Value::synthetic("require", eq + 1))
            } else {
                (key.text, value)
            };
            if !is_known_parameter(&key) {
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
            if !is_known_parameter(name) {
                return Err(ConnectionStringError::UnknownParameter {
                    name: shown_name.to_string(),
                    position: name_start,
                });
            }
            after_password = name == "password";
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
            None => vec![DEFAULT_PORT; nhosts],
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
                    cs.replica_retry_interval = parse_duration(&value.text).ok_or_else(invalid)?;
                }
                "failover_timeout" => {
                    cs.failover_timeout = parse_duration(&value.text).ok_or_else(invalid)?;
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
            return Ok(DEFAULT_PORT);
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
        s
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
        let mut out = String::new();
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
            "tsa={};lbh={};ct={:?};rr={};rri={:?};ft={:?};wf={:?}",
            self.target_session_attrs,
            self.load_balance_hosts,
            self.connect_timeout,
            self.replica_reads,
            self.replica_retry_interval,
            self.failover_timeout,
            self.writing_functions,
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
        let mut parser = Parser::new(s);
        let opts = if let Some(rest) = ["postgresql://", "postgres://"]
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
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("dbname", &self.dbname)
            .field("params", &self.params)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("load_balance_hosts", &self.load_balance_hosts)
            .field("connect_timeout", &self.connect_timeout)
            .field("replica_reads", &self.replica_reads)
            .field("replica_retry_interval", &self.replica_retry_interval)
            .field("failover_timeout", &self.failover_timeout)
            .field("writing_functions", &self.writing_functions)
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
        f.write_str("postgres://")?;
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
        for (i, (k, v)) in query.iter().enumerate() {
            if i == 0 && self.dbname.as_deref().is_none_or(str::is_empty) {
                f.write_str("/")?;
            }
            write!(f, "{}{k}={}", if i == 0 { '?' } else { '&' }, enc(v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type E = ConnectionStringError;

    fn parse(s: &str) -> ConnectionString {
        match s.parse::<ConnectionString>() {
            Ok(cs) => cs,
            Err(e) => panic!("{s:?} did not parse: {e}"),
        }
    }

    fn err(s: &str) -> E {
        match s.parse::<ConnectionString>() {
            Ok(cs) => panic!("{s:?} parsed: {cs:?}"),
            Err(e) => e,
        }
    }

    fn hosts(cs: &ConnectionString) -> Vec<(&str, u16)> {
        cs.hosts().iter().map(|h| (h.host(), h.port())).collect()
    }

    fn params(cs: &ConnectionString) -> Vec<(&str, &str)> {
        cs.params().collect()
    }

    #[test]
    fn both_schemes() {
        for scheme in ["postgres", "postgresql"] {
            let cs = parse(&format!("{scheme}://u:pw@h1:5433/db"));
            assert_eq!(hosts(&cs), [("h1", 5433)]);
            assert_eq!(cs.user(), Some("u"));
            assert!(cs.has_password());
            assert_eq!(cs.dbname(), Some("db"));
            assert_eq!(cs.password.as_deref(), Some("pw"));
        }
    }

    #[test]
    fn unknown_scheme() {
        assert_eq!(
            err("mysql://u:pw@h/db"),
            E::UnknownScheme {
                scheme: "mysql".into()
            }
        );
        assert_eq!(
            err("postgre://"),
            E::UnknownScheme {
                scheme: "postgre".into()
            }
        );
        // The scheme is case-sensitive in libpq.
        assert_eq!(
            err("POSTGRES://h"),
            E::UnknownScheme {
                scheme: "POSTGRES".into()
            }
        );
        assert_eq!(
            err("mysql://u:pw@h/db").to_string(),
            "unknown scheme \"mysql://\" at byte 0 (expected \"postgres://\" or \"postgresql://\")"
        );
        // Not a scheme: read as key/value, where it lacks its "=".
        assert!(matches!(
            err(" postgres://h"),
            E::MissingEquals { position: 1, .. }
        ));
    }

    #[test]
    fn user_and_password_percent_escapes() {
        let cs = parse("postgresql://us%40er:p%40ss%3Aw%2Fo%25rd@h/d%62");
        assert_eq!(cs.user(), Some("us@er"));
        assert_eq!(cs.password.as_deref(), Some("p@ss:w/o%rd"));
        assert_eq!(cs.dbname(), Some("db"));
        // A password may contain an unencoded ':' (only the first ':' ends the user).
        let cs = parse("postgresql://u:a:b@h");
        assert_eq!(cs.password.as_deref(), Some("a:b"));
        // Empty user or password are not stored (libpq).
        let cs = parse("postgresql://:@h");
        assert_eq!((cs.user(), cs.has_password()), (None, false));
        let cs = parse("postgres://@host");
        assert_eq!(hosts(&cs), [("host", 5432)]);
        assert_eq!(cs.user(), None);
        // Non-ASCII, percent-encoded.
        let cs = parse("postgresql://J%C3%BCrgen@h");
        assert_eq!(cs.user(), Some("Jürgen"));
    }

    #[test]
    fn ipv6_hosts() {
        let cs = parse("postgresql://[::1]:12345/db");
        assert_eq!(hosts(&cs), [("::1", 12345)]);
        let cs = parse("postgresql://[2001:db8::1234]/");
        assert_eq!(hosts(&cs), [("2001:db8::1234", 5432)]);
        assert_eq!(cs.dbname(), None);
        let cs = parse("postgresql://[::1]");
        assert_eq!(hosts(&cs), [("::1", 5432)]);
        let cs = parse("postgresql://[::1]?sslmode=disable");
        assert_eq!(hosts(&cs), [("::1", 5432)]);
        let cs = parse("postgresql://h1,[::1]:5434,[fe80::1%25eth0]");
        assert_eq!(
            hosts(&cs),
            [("h1", 5432), ("::1", 5434), ("fe80::1%eth0", 5432)]
        );
        assert_eq!(cs.hosts()[1].to_string(), "[::1]:5434");
    }

    #[test]
    fn per_host_ports_and_defaults() {
        let cs = parse("postgres://h1:5432,h2,[::1]:5434/db");
        assert_eq!(hosts(&cs), [("h1", 5432), ("h2", 5432), ("::1", 5434)]);
        let cs = parse("postgres://h1,h2:5433/db");
        assert_eq!(hosts(&cs), [("h1", 5432), ("h2", 5433)]);
        let cs = parse("postgres://host:/");
        assert_eq!(hosts(&cs), [("host", 5432)]);
        // No host at all: one default host.
        let cs = parse("postgres://");
        assert_eq!(hosts(&cs), [("", 5432)]);
        assert!(cs.hosts()[0].is_default());
        assert_eq!(cs.hosts()[0].to_string(), "<default>:5432");
        let cs = parse("postgres://:12345/");
        assert_eq!(hosts(&cs), [("", 12345)]);
        // Empty entries in a host list are libpq's default host.
        let cs = parse("postgres://a,,b:5433");
        assert_eq!(hosts(&cs), [("a", 5432), ("", 5432), ("b", 5433)]);
        let cs = parse("host=a,,b");
        assert_eq!(hosts(&cs), [("a", 5432), ("", 5432), ("b", 5432)]);
        assert!(cs.hosts()[1].is_default());
        assert!(!cs.hosts()[0].is_default());
        // Percent-encoded commas separate hosts too, as in libpq (it decodes, then splits).
        let cs = parse("postgres://a%2Cb/db");
        assert_eq!(hosts(&cs), [("a", 5432), ("b", 5432)]);
    }

    #[test]
    fn query_hosts_and_ports() {
        let cs = parse("postgresql:///db?host=a,b&port=1,2");
        assert_eq!(hosts(&cs), [("a", 1), ("b", 2)]);
        let cs = parse("postgresql://host/db?user=uri-user&port=12345");
        assert_eq!(hosts(&cs), [("host", 12345)]);
        assert_eq!(cs.user(), Some("uri-user"));
        // Query values replace the authority's.
        let cs = parse("postgresql://x:1/db?host=a,b&port=7");
        assert_eq!(hosts(&cs), [("a", 7), ("b", 7)]);
        let cs = parse("postgresql://host/db?u%73er=someotheruser&dbname=other");
        assert_eq!(cs.user(), Some("someotheruser"));
        assert_eq!(cs.dbname(), Some("other"));
        // As in libpq: "a,b" leaves the port list "," (two empty ports), which cannot be
        // matched to the single host of ?host=c.
        assert_eq!(
            err("postgresql://a,b/db?host=c"),
            E::PortCountMismatch { ports: 2, hosts: 1 }
        );
        // `ssl=true` (JDBC) means sslmode=require; `ssl` alone is unknown.
        let cs = parse("postgresql://h?ssl=true");
        assert_eq!(params(&cs), [("sslmode", "require")]);
        assert!(matches!(
            err("postgresql://h?ssl=false"),
            E::UnknownParameter { .. }
        ));
        // A trailing '?' or '&' is fine.
        parse("postgresql://host?");
        parse("postgresql://host?sslmode=disable&");
    }

    #[test]
    fn unix_socket_directories() {
        let cs = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
        assert_eq!(hosts(&cs), [("/var/run/postgresql", 5432)]);
        assert!(cs.hosts()[0].is_unix_socket());
        assert_eq!(cs.dbname(), Some("db"));
        let cs = parse("postgresql:///db?host=/var/run/postgresql");
        assert_eq!(hosts(&cs), [("/var/run/postgresql", 5432)]);
        assert!(cs.hosts()[0].is_unix_socket());
        let cs = parse("postgres://otheruser@:12345/db?host=/path/to/socket");
        assert_eq!(hosts(&cs), [("/path/to/socket", 12345)]);
        assert_eq!(cs.user(), Some("otheruser"));
        let cs = parse("postgres://otheruser@?host=/no/such/directory");
        assert_eq!(hosts(&cs), [("/no/such/directory", 5432)]);
        let cs = parse("host=@abstract");
        assert!(cs.hosts()[0].is_unix_socket());
        let cs = parse("host=h");
        assert!(!cs.hosts()[0].is_unix_socket());
    }

    #[test]
    fn libpq_uri_regress_cases() {
        // From PostgreSQL's src/interfaces/libpq/t/001_uri.pl.
        let cs = parse("postgresql://uri-user:secret@host:12345/db");
        assert_eq!(
            (cs.user(), cs.dbname(), hosts(&cs)),
            (Some("uri-user"), Some("db"), vec![("host", 12345)])
        );
        let cs = parse("postgresql://uri-user@");
        assert_eq!(
            (cs.user(), hosts(&cs)),
            (Some("uri-user"), vec![("", 5432)])
        );
        let cs = parse("postgresql://host:12345");
        assert_eq!(hosts(&cs), [("host", 12345)]);
        let cs = parse("postgresql://?hostaddr=127.0.0.1");
        assert_eq!(cs.hosts()[0].hostaddr(), Some("127.0.0.1"));
        let cs = parse("postgresql://example.com?hostaddr=63.1.2.4");
        assert_eq!(cs.hosts()[0].host(), "example.com");
        assert_eq!(cs.hosts()[0].hostaddr(), Some("63.1.2.4"));
        let cs = parse("postgresql://%68ost/");
        assert_eq!(hosts(&cs), [("host", 5432)]);
        let cs = parse("postgres:///");
        assert_eq!((hosts(&cs), cs.dbname()), (vec![("", 5432)], None));
        let cs = parse("postgres:///db");
        assert_eq!(cs.dbname(), Some("db"));
        let cs = parse("postgres://uri-user@/db");
        assert_eq!((cs.user(), cs.dbname()), (Some("uri-user"), Some("db")));
        let cs = parse("postgresql://[200z:db8::1234]/");
        assert_eq!(hosts(&cs), [("200z:db8::1234", 5432)]);
        assert!(
            matches!(err("postgresql://host/db?u%7aer=x"), E::UnknownParameter { name, .. } if name == "uzer")
        );
        assert!(
            matches!(err("postgresql://host?uzer="), E::UnknownParameter { name, .. } if name == "uzer")
        );
        assert_eq!(
            err("postgres://[::1]z"),
            E::UnexpectedCharacter {
                character: 'z',
                position: 16
            }
        );
        assert_eq!(
            err("postgresql://host?zzz"),
            E::MissingEquals {
                name: "zzz".into(),
                position: 18
            }
        );
        assert_eq!(
            err("postgresql://host?value1&value2"),
            E::MissingEquals {
                name: "value1".into(),
                position: 18
            }
        );
        assert_eq!(
            err("postgresql://host?key=key=value"),
            E::ExtraEquals {
                name: "key".into(),
                position: 25
            }
        );
        assert_eq!(
            err("postgres://host?dbname=%XXfoo"),
            E::InvalidPercentEncoding {
                token: "%XX".into(),
                position: 23
            }
        );
    }

    #[test]
    fn spaces_in_uri_parts_libpq_18() {
        let cs = parse("postgresql://host?  user = uri-user & port  = 12345 ");
        assert_eq!(cs.user(), Some("uri-user"));
        assert_eq!(hosts(&cs), [("host", 12345)]);
        assert_eq!(
            err("postgresql://host?  user user  =  uri  & port = 12345 12 "),
            E::UnexpectedSpace { position: 24 }
        );
        assert_eq!(
            err("postgresql://host?  user  =  uri-user  & port = 12345 12 "),
            E::UnexpectedSpace { position: 53 }
        );
        assert!(err("postgresql://h?application_name=a b")
            .to_string()
            .contains("unexpected space at byte 33"));
        let cs = parse("postgresql://h?application_name=a%20b");
        assert_eq!(params(&cs), [("application_name", "a b")]);
    }

    #[test]
    fn percent_encoding_errors() {
        let e = err("postgresql://h/db?dbname=%zz");
        assert_eq!(
            e,
            E::InvalidPercentEncoding {
                token: "%zz".into(),
                position: 25
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid percent-encoded token \"%zz\" at byte 25"
        );
        assert_eq!(
            err("postgresql://%zz"),
            E::InvalidPercentEncoding {
                token: "%zz".into(),
                position: 13
            }
        );
        assert_eq!(
            err("postgresql://%1"),
            E::InvalidPercentEncoding {
                token: "%1".into(),
                position: 13
            }
        );
        assert_eq!(
            err("postgresql://%"),
            E::InvalidPercentEncoding {
                token: "%".into(),
                position: 13
            }
        );
        assert_eq!(
            err("postgresql://h/db?application_name=x%4"),
            E::InvalidPercentEncoding {
                token: "%4".into(),
                position: 36
            }
        );
        assert_eq!(
            err("postgresql://h/%4é"),
            E::InvalidPercentEncoding {
                token: "%4é".into(),
                position: 15
            }
        );
        let e = err("postgresql://a%00b");
        assert_eq!(e, E::PercentEncodedNul { position: 14 });
        assert_eq!(
            e.to_string(),
            "forbidden value \"%00\" in percent-encoded value at byte 14"
        );
        assert_eq!(err("postgresql://h/%ff"), E::InvalidUtf8 { position: 15 });
        // Keys are decoded too.
        assert!(matches!(
            err("postgresql://h?%zz=1"),
            E::InvalidPercentEncoding { position: 15, .. }
        ));
        // And ports.
        assert!(matches!(
            err("postgresql://h:%zz"),
            E::InvalidPercentEncoding { position: 15, .. }
        ));
    }

    #[test]
    fn ipv6_errors() {
        let e = err("postgres://[::1");
        assert_eq!(e, E::UnterminatedIpv6 { position: 11 });
        assert!(e
            .to_string()
            .starts_with("end of string reached when looking for matching \"]\""));
        let e = err("postgres://[]");
        assert_eq!(e, E::EmptyIpv6 { position: 11 });
        assert_eq!(e.to_string(), "empty IPv6 host address \"[]\" at byte 11");
        assert_eq!(err("postgres://h1,[]:5432"), E::EmptyIpv6 { position: 14 });
    }

    #[test]
    fn unknown_parameters() {
        let e = err("postgresql://h/db?foo=1");
        assert_eq!(
            e,
            E::UnknownParameter {
                name: "foo".into(),
                position: 18
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown connection parameter \"foo\" at byte 18"
        );
        assert_eq!(
            err("host=h foo=1"),
            E::UnknownParameter {
                name: "foo".into(),
                position: 7
            }
        );
        assert_eq!(
            err("=1"),
            E::UnknownParameter {
                name: "".into(),
                position: 0
            }
        );
        // libpq 18 options not in our list are rejected.
        assert!(matches!(err("servicefile=x"), E::UnknownParameter { .. }));
        // Every listed libpq parameter and every crate parameter is accepted.
        for name in LIBPQ_PARAMS.iter().chain(CRATE_PARAMS) {
            let value = match *name {
                "target_session_attrs" => "any",
                "load_balance_hosts" => "random",
                "connect_timeout" | "port" => "5",
                "replica_reads" => "off",
                "replica_retry_interval" | "failover_timeout" => "5s",
                _ => "x",
            };
            parse(&format!("{name}={value}"));
            parse(&format!("postgresql://?{name}={value}"));
        }
    }

    #[test]
    fn params_kept_in_order() {
        let cs = parse(
            "postgresql://h/db?sslmode=require&application_name=app&connect_timeout=5\
             &replica_reads=off&options=-c%20search_path%3Dx&keepalives=1",
        );
        assert_eq!(
            params(&cs),
            [
                ("sslmode", "require"),
                ("application_name", "app"),
                ("options", "-c search_path=x"),
                ("keepalives", "1")
            ]
        );
        // The last value wins, at the place of its last occurrence (this keeps libpq's
        // meaning for requiressl, an alias of sslmode).
        let cs = parse("requiressl=1 sslmode=disable requiressl=0 application_name=a");
        assert_eq!(
            params(&cs),
            [
                ("sslmode", "disable"),
                ("requiressl", "0"),
                ("application_name", "a")
            ]
        );
        let cs = parse("dbname=a dbname=b user=x user=y");
        assert_eq!((cs.dbname(), cs.user()), (Some("b"), Some("y")));
    }

    #[test]
    fn key_value_form() {
        let cs = parse("host=a,b port=5432,5433 dbname=app user=app password='it\\'s'");
        assert_eq!(hosts(&cs), [("a", 5432), ("b", 5433)]);
        assert_eq!(cs.dbname(), Some("app"));
        assert_eq!(cs.user(), Some("app"));
        assert_eq!(cs.password.as_deref(), Some("it's"));
        // Whitespace around '=' and between pairs.
        let cs = parse("  host = h \t port\n=\r5433   dbname =  'my db'  ");
        assert_eq!(hosts(&cs), [("h", 5433)]);
        assert_eq!(cs.dbname(), Some("my db"));
        // Backslash escapes, quoted and unquoted.
        let cs = parse(r"application_name='a\\b\'c' options=x\ y\\z");
        assert_eq!(
            params(&cs),
            [("application_name", r"a\b'c"), ("options", r"x y\z")]
        );
        // An empty value is ''; a quote inside an unquoted value is literal.
        let cs = parse("application_name='' options=it's");
        assert_eq!(params(&cs), [("application_name", ""), ("options", "it's")]);
        // As in libpq: nothing needs to separate a closing quote from the next name, and a
        // value may be empty at the very end.
        let cs = parse("dbname='a'user=b application_name=");
        assert_eq!((cs.dbname(), cs.user()), (Some("a"), Some("b")));
        assert_eq!(params(&cs), [("application_name", "")]);
        // As in libpq: after "host=" the next word is the value.
        let cs = parse("dbname= user=x");
        assert_eq!(cs.dbname(), Some("user=x"));
        // The empty string means all defaults.
        let cs = parse("");
        assert_eq!(hosts(&cs), [("", 5432)]);
        parse("   ");
        // IPv6 and socket directories need no brackets or encoding here.
        let cs = parse("host=::1,/tmp port=5434");
        assert_eq!(hosts(&cs), [("::1", 5434), ("/tmp", 5434)]);
    }

    #[test]
    fn key_value_errors() {
        let e = err("host=h x");
        assert_eq!(
            e,
            E::MissingEquals {
                name: "x".into(),
                position: 7
            }
        );
        assert_eq!(e.to_string(), "missing \"=\" after \"x\" at byte 7");
        assert_eq!(
            err("host"),
            E::MissingEquals {
                name: "host".into(),
                position: 0
            }
        );
        assert_eq!(
            err("host x=1"),
            E::MissingEquals {
                name: "host".into(),
                position: 0
            }
        );
        let e = err("host=h dbname='abc");
        assert_eq!(
            e,
            E::UnterminatedQuote {
                name: "dbname".into(),
                position: 14
            }
        );
        assert_eq!(
            e.to_string(),
            "unterminated quoted value for \"dbname\" starting at byte 14"
        );
        assert!(matches!(err(r"dbname='abc\'"), E::UnterminatedQuote { .. }));
        // libpq: '' is not an escaped quote; the value ends and "'s'" is a name without "=".
        // The name follows the password, so it is redacted.
        let e = err("host=a,b port=5432,5433 dbname=app user=app password='it''s'");
        assert_eq!(
            e,
            E::MissingEquals {
                name: REDACTED.into(),
                position: 57
            }
        );
        assert_eq!(
            err("dbname='it''s'"),
            E::MissingEquals {
                name: "'s'".into(),
                position: 11
            }
        );
    }

    #[test]
    fn port_rules() {
        let cs = parse("host=a,b,c port=5433");
        assert_eq!(hosts(&cs), [("a", 5433), ("b", 5433), ("c", 5433)]);
        let cs = parse("host=a,b,c port=1,,3");
        assert_eq!(hosts(&cs), [("a", 1), ("b", 5432), ("c", 3)]);
        let e = err("host=a,b,c port=1,2");
        assert_eq!(e, E::PortCountMismatch { ports: 2, hosts: 3 });
        assert_eq!(e.to_string(), "2 ports given for 3 hosts");
        assert_eq!(err("port=1,2"), E::PortCountMismatch { ports: 2, hosts: 1 });
        assert_eq!(
            err("postgresql:///?host=a&port=1,2,3"),
            E::PortCountMismatch { ports: 3, hosts: 1 }
        );
        // Port values, as libpq's pqParseIntParam reads them.
        assert_eq!(parse("port=' 5433 '").hosts()[0].port(), 5433);
        assert_eq!(parse("port=+5433").hosts()[0].port(), 5433);
        assert_eq!(parse("port=65535").hosts()[0].port(), 65535);
        for bad in ["abc", "0", "65536", "-1", "54x", "99999999999", "5 4"] {
            let e = err(&format!("host=h port='{bad}'"));
            assert_eq!(
                e,
                E::InvalidPort {
                    port: bad.into(),
                    position: 13
                },
                "{bad}"
            );
        }
        let e = err("postgresql://h1:5432,h2:abc/db");
        assert_eq!(
            e,
            E::InvalidPort {
                port: "abc".into(),
                position: 24
            }
        );
        assert_eq!(e.to_string(), "invalid port \"abc\" at byte 24");
        assert_eq!(
            err("postgresql://h:0"),
            E::InvalidPort {
                port: "0".into(),
                position: 15
            }
        );
        assert_eq!(
            err("postgresql://h:65536"),
            E::InvalidPort {
                port: "65536".into(),
                position: 15
            }
        );
        assert_eq!(
            err("postgresql://h:1:2"),
            E::InvalidPort {
                port: "1:2".into(),
                position: 15
            }
        );
    }

    #[test]
    fn hostaddr_rules() {
        let cs = parse("host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,2");
        assert_eq!(hosts(&cs), [("a", 1), ("b", 2)]);
        assert_eq!(cs.hosts()[1].hostaddr(), Some("10.0.0.2"));
        let cs = parse("hostaddr=10.0.0.1,10.0.0.2");
        assert_eq!(hosts(&cs), [("", 5432), ("", 5432)]);
        assert!(!cs.hosts()[0].is_default());
        assert_eq!(cs.hosts()[0].to_string(), "10.0.0.1:5432");
        let cs = parse("host=/tmp,b hostaddr=,10.0.0.2");
        assert_eq!(cs.hosts()[0].hostaddr(), None);
        assert!(cs.hosts()[0].is_unix_socket());
        assert!(!cs.hosts()[1].is_unix_socket());
        let e = err("host=a,b,c hostaddr=10.0.0.1,10.0.0.2");
        assert_eq!(
            e,
            E::HostaddrCountMismatch {
                hosts: 3,
                hostaddrs: 2
            }
        );
        assert_eq!(e.to_string(), "3 host names given for 2 hostaddr values");
        assert_eq!(
            err("host=a hostaddr=1.1.1.1,2.2.2.2"),
            E::HostaddrCountMismatch {
                hosts: 1,
                hostaddrs: 2
            }
        );
        assert_eq!(
            err("hostaddr=1.1.1.1,2.2.2.2 port=1,2,3"),
            E::PortCountMismatch { ports: 3, hosts: 2 }
        );
        // Not a param: hostaddr goes with its host.
        assert!(params(&cs).is_empty());
        let conninfo = cs.host_conninfo(&cs.hosts()[1]);
        assert!(
            conninfo.starts_with("host='b' hostaddr='10.0.0.2' port='5432'"),
            "{conninfo}"
        );
    }

    #[test]
    fn target_session_attrs_values() {
        assert_eq!(
            parse("").target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        for (v, want) in [
            ("any", TargetSessionAttrs::Any),
            ("read-write", TargetSessionAttrs::ReadWrite),
            ("read-only", TargetSessionAttrs::ReadOnly),
            ("primary", TargetSessionAttrs::Primary),
            ("standby", TargetSessionAttrs::Standby),
            ("prefer-standby", TargetSessionAttrs::PreferStandby),
        ] {
            let cs = parse(&format!("postgresql://h?target_session_attrs={v}"));
            assert_eq!(cs.target_session_attrs(), want);
            assert_eq!(want.to_string(), v);
            assert!(params(&cs).is_empty());
        }
        for bad in ["maybe", "READ-WRITE", ""] {
            let e = err(&format!("target_session_attrs='{bad}'"));
            assert_eq!(
                e,
                E::InvalidValue {
                    parameter: "target_session_attrs".into(),
                    value: bad.into()
                }
            );
        }
        assert_eq!(
            err("target_session_attrs=maybe").to_string(),
            "invalid value \"maybe\" for target_session_attrs"
        );
    }

    #[test]
    fn load_balance_hosts_values() {
        assert_eq!(parse("").load_balance_hosts(), LoadBalanceHosts::Disable);
        assert_eq!(
            parse("load_balance_hosts=random").load_balance_hosts(),
            LoadBalanceHosts::Random
        );
        assert_eq!(
            parse("load_balance_hosts=disable").load_balance_hosts(),
            LoadBalanceHosts::Disable
        );
        assert_eq!(
            err("load_balance_hosts=yes"),
            E::InvalidValue {
                parameter: "load_balance_hosts".into(),
                value: "yes".into()
            }
        );
        assert!(params(&parse("load_balance_hosts=random")).is_empty());
    }

    #[test]
    fn connect_timeout_values() {
        let secs = |s: &str| parse(s).connect_timeout();
        assert_eq!(secs(""), Duration::from_secs(10));
        assert_eq!(secs("connect_timeout=5"), Duration::from_secs(5));
        assert_eq!(secs("connect_timeout=' 7 '"), Duration::from_secs(7));
        assert_eq!(secs("connect_timeout=1"), Duration::from_secs(2));
        assert_eq!(
            secs("connect_timeout=0"),
            ConnectionString::UNLIMITED_CONNECT_TIMEOUT
        );
        assert_eq!(
            secs("connect_timeout=-3"),
            ConnectionString::UNLIMITED_CONNECT_TIMEOUT
        );
        assert!(std::time::Instant::now()
            .checked_add(ConnectionString::UNLIMITED_CONNECT_TIMEOUT)
            .is_some());
        for bad in ["", "abc", "1.5", "10s", "2147483648"] {
            assert_eq!(
                err(&format!("connect_timeout='{bad}'")),
                E::InvalidValue {
                    parameter: "connect_timeout".into(),
                    value: bad.into()
                }
            );
        }
        let cs = parse("host=h connect_timeout=1");
        assert!(params(&cs).is_empty());
        assert!(cs
            .host_conninfo(&cs.hosts()[0])
            .contains(" connect_timeout='2'"));
        let cs = parse("host=h");
        assert!(cs
            .host_conninfo(&cs.hosts()[0])
            .contains(" connect_timeout='10'"));
        let cs = parse("host=h connect_timeout=0");
        assert!(!cs.host_conninfo(&cs.hosts()[0]).contains("connect_timeout"));
    }

    #[test]
    fn replica_reads_values() {
        assert!(parse("").replica_reads());
        for v in ["on", "true", "1", "yes", "ON", "True"] {
            assert!(parse(&format!("replica_reads={v}")).replica_reads(), "{v}");
        }
        for v in ["off", "false", "0", "no", "OFF"] {
            assert!(!parse(&format!("replica_reads={v}")).replica_reads(), "{v}");
        }
        assert_eq!(
            err("replica_reads=maybe"),
            E::InvalidValue {
                parameter: "replica_reads".into(),
                value: "maybe".into()
            }
        );
    }

    #[test]
    fn duration_parameters() {
        for name in ["replica_retry_interval", "failover_timeout"] {
            let get = |s: &str| {
                let cs = parse(s);
                assert!(params(&cs).is_empty());
                if name == "failover_timeout" {
                    cs.failover_timeout()
                } else {
                    cs.replica_retry_interval()
                }
            };
            assert_eq!(get(""), Duration::from_secs(30));
            assert_eq!(get(&format!("{name}=10")), Duration::from_secs(10));
            assert_eq!(get(&format!("{name}=10s")), Duration::from_secs(10));
            assert_eq!(get(&format!("{name}=500ms")), Duration::from_millis(500));
            assert_eq!(get(&format!("{name}=2min")), Duration::from_secs(120));
            assert_eq!(get(&format!("{name}=1h")), Duration::from_secs(3600));
            assert_eq!(get(&format!("{name}=' 3 s '")), Duration::from_secs(3));
            assert_eq!(get(&format!("{name}=0")), Duration::ZERO);
            for bad in [
                "",
                "-1",
                "1.5s",
                "10x",
                "s",
                "10 sec",
                "99999999999999999999",
            ] {
                assert_eq!(
                    err(&format!("{name}='{bad}'")),
                    E::InvalidValue {
                        parameter: name.into(),
                        value: bad.into()
                    },
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn writing_functions_values() {
        assert!(parse("").writing_functions().is_empty());
        let cs = parse("postgresql://h?writing_functions=%20My_Func%20,audit.log_it,,MY_FUNC");
        assert_eq!(cs.writing_functions(), ["my_func", "audit.log_it"]);
        assert!(params(&cs).is_empty());
        assert!(parse("writing_functions=''").writing_functions().is_empty());
        for bad in ["f()", "a b", "'f'", ".f"] {
            assert_eq!(
                err(&format!(
                    "writing_functions={}",
                    quote(&format!("ok,{bad}"))
                )),
                E::InvalidValue {
                    parameter: "writing_functions".into(),
                    value: bad.into()
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn host_conninfo_quoting() {
        let cs = parse(
            "postgresql://us%27er:p%27a%5Css@h1:5433,h2/d%27b?application_name=a%5Cb\
             &replica_reads=off&target_session_attrs=any&load_balance_hosts=random\
             &failover_timeout=5&replica_retry_interval=5&writing_functions=f",
        );
        assert_eq!(cs.password.as_deref(), Some(r"p'a\ss"));
        assert_eq!(
            cs.host_conninfo(&cs.hosts()[0]),
            r"host='h1' port='5433' user='us\'er' password='p\'a\\ss' dbname='d\'b' connect_timeout='10' application_name='a\\b'"
        );
        let info = cs.host_conninfo(&cs.hosts()[1]);
        assert!(info.starts_with("host='h2' port='5432' "), "{info}");
        // None of the crate's parameters reach libpq.
        for name in CRATE_PARAMS
            .iter()
            .chain(&["target_session_attrs", "load_balance_hosts"])
        {
            assert!(!info.contains(name), "{name} in {info}");
        }
        // The generated string parses back (libpq's key/value quoting).
        let back = parse(&info);
        assert_eq!(back.password, cs.password);
        assert_eq!(back.user, cs.user);
        assert_eq!(back.dbname, cs.dbname);
        assert_eq!(back.params, cs.params);
        assert_eq!(hosts(&back), [("h2", 5432)]);
    }

    #[test]
    fn default_host_conninfo() {
        let cs = parse("postgresql:///db");
        assert_eq!(
            cs.host_conninfo(&cs.hosts()[0]),
            "host='' port='5432' dbname='db' connect_timeout='10'"
        );
    }

    #[test]
    fn display_and_debug_redact_the_password() {
        let cs = parse("postgresql://app:S3cr%40t@h1:5432,[::1]:5434,%2Ftmp/db?sslmode=require");
        let shown = cs.to_string();
        assert_eq!(
            shown,
            "postgres://app:********@h1:5432,[::1]:5434,%2Ftmp:5432/db?sslmode=require"
        );
        let debug = format!("{cs:?}");
        assert!(!debug.contains("S3cr@t"), "{debug}");
        assert!(debug.contains("********"), "{debug}");
        let debug = format!("{cs:#?}");
        assert!(!debug.contains("S3cr@t"));
        // A password without a user.
        let cs = parse("password=S3cr3t host=h");
        assert_eq!(cs.to_string(), "postgres://:********@h:5432");
        assert!(!format!("{cs:?}").contains("S3cr3t"));
        // The re-parsed value has "********" as its password.
        let back = parse(&cs.to_string());
        assert_eq!(back.password.as_deref(), Some(REDACTED));
    }

    #[test]
    fn display_round_trip() {
        let inputs = [
            "postgresql://us%40er@h1:5433,h2,[::1]:5434,%2Fvar%2Frun%2Fpostgresql/my%20db\
             ?sslmode=verify-full&application_name=a%26b%3Dc%20d&options=-c%20x%3Dy\
             &target_session_attrs=prefer-standby&load_balance_hosts=random&connect_timeout=1\
             &replica_reads=no&replica_retry_interval=1500ms&failover_timeout=2min\
             &writing_functions=Foo,bar.baz",
            "host=a,,b hostaddr=1.1.1.1,,2.2.2.2 port=1,2,3 user='' dbname=''",
            "hostaddr=1.1.1.1,2.2.2.2 connect_timeout=0",
            "postgresql://",
            "postgresql:///db?host=/tmp&port=5433",
            "host='h?x,y' dbname='a/b?c' user='u:v@w' application_name='é ü'",
            "host=@abstract port=1",
        ];
        for input in inputs {
            let cs = parse(input);
            let shown = cs.to_string();
            let back = parse(&shown);
            assert_eq!(back, cs, "{input} -> {shown}");
            assert_eq!(back.to_string(), shown);
        }
        let cs = parse(inputs[0]);
        assert_eq!(
            cs.to_string(),
            "postgres://us%40er@h1:5433,h2:5432,[::1]:5434,%2Fvar%2Frun%2Fpostgresql:5432/my%20db\
             ?sslmode=verify-full&application_name=a%26b%3Dc%20d&options=-c%20x%3Dy\
             &target_session_attrs=prefer-standby&load_balance_hosts=random&connect_timeout=2\
             &replica_reads=off&replica_retry_interval=1500ms&failover_timeout=120\
             &writing_functions=foo%2Cbar.baz"
        );
    }

    #[test]
    fn unexpected_at_in_host_list() {
        // libpq would take "ss@h" as a host name, showing the end of the password.
        let e = err("postgresql://u:p@ss@h/db");
        assert_eq!(e, E::UnexpectedAt { position: 19 });
        assert!(!e.to_string().contains("ss@h"));
        parse("postgresql://u:p%40ss@h/db");
    }

    #[test]
    fn errors_never_contain_the_password() {
        const PW: &str = "Sup3rS3cr3tPw";
        let cases = [
            format!("postgresql://u:{PW}%zz@h/db"),
            format!("postgresql://u:{PW}%4@h/db"),
            format!("postgresql://u:{PW}%00@h/db"),
            format!("postgresql://u:{PW}%ff@h/db"),
            format!("postgresql://u:{PW} x@h/db"),
            format!("postgresql://u:{PW}@h/db?a=b=c"),
            format!("postgresql://u:{PW}@h/db?foo=1"),
            format!("postgresql://u:{PW}@h/db?zzz"),
            format!("postgresql://u:{PW}@[::1/db"),
            format!("postgresql://u:{PW}@[]/db"),
            format!("postgresql://u:{PW}@[::1]x/db"),
            format!("postgresql://u:{PW}@h:0/db"),
            format!("postgresql://u:{PW}@h:abc/db"),
            format!("postgresql://u:{PW}@h:1,h2,h3/db?port=1,2"),
            format!("postgresql://u:{PW}@h/db?target_session_attrs=maybe"),
            format!("postgresql://u:{PW}@h/db?connect_timeout=x"),
            format!("postgresql://u:{PW}@h/db?replica_reads=maybe"),
            format!("postgresql://u:{PW}@h/db?failover_timeout=x"),
            format!("postgresql://u:{PW}@h/db?writing_functions=a%20b"),
            format!("postgresql://u:{PW}@h/db?load_balance_hosts=x"),
            format!("postgresql://u:{PW}@h/db?hostaddr=1.1.1.1,2.2.2.2"),
            format!("postgresql://u:{PW}@h/db?dbname=%zz"),
            // Unencoded '/' or '@' in the password.
            format!("postgresql://u:{PW}/x@h/db"),
            format!("postgresql://u:a/{PW}@h/db"),
            format!("postgresql://u:{PW}:x/y@h/db"),
            "postgresql://u:Sup3r@S3cr3tPw@h/db".to_string(),
            // The password as a query parameter.
            format!("postgresql://h/db?password={PW}%zz"),
            format!("postgresql://h/db?password={PW}%00"),
            format!("postgresql://h/db?password={PW} x"),
            "postgresql://h/db?password=Sup3r&S3cr3tPw".to_string(),
            "postgresql://h/db?password=Sup3r&S3cr3tPw=1".to_string(),
            "postgresql://h/db?password=a=Sup3rS3cr3tPw".to_string(),
            format!("mysql://u:{PW}@h/db"),
            // Key/value form.
            format!("password='{PW}"),
            format!("password={PW}x host"),
            "password=Sup3r S3cr3tPw".to_string(),
            "password=Sup3r S3cr3tPw=x".to_string(),
            "password='Sup3r'S3cr3tPw'".to_string(),
            "password='Sup3r''S3cr3tPw'".to_string(),
            format!("host=h password={PW} foo=1"),
            format!("host=h password={PW} port=0"),
            format!("host=a,b password={PW} port=1,2,3"),
            format!("host=a password={PW} connect_timeout=x"),
            format!("host=a password={PW} x"),
        ];
        for case in &cases {
            let e = err(case);
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(!shown.contains(PW), "{case:?} -> {shown}");
                assert!(!shown.contains("S3cr3tPw"), "{case:?} -> {shown}");
                assert!(!shown.contains("Sup3r"), "{case:?} -> {shown}");
            }
        }
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_punctuation() {
        let cases = [
            "mysql://h",
            "postgresql://%zz",
            "postgresql://%00",
            "postgresql://h/a b",
            "postgresql://h/%ff",
            "host",
            "postgresql://h?a=b=c",
            "foo=1",
            "postgresql://[",
            "postgresql://[]",
            "postgresql://[::1]x",
            "postgresql://u:a@b@c",
            "dbname='x",
            "port=0",
            "host=a,b,c port=1,2",
            "host=a,b hostaddr=1.1.1.1",
            "replica_reads=maybe",
            "host=\0",
        ];
        for case in cases {
            let e = err(case);
            let msg = e.to_string();
            let first = msg.chars().next().unwrap();
            assert!(first.is_lowercase() || first.is_ascii_digit(), "{msg}");
            assert!(!msg.ends_with(['.', '!', '\n']), "{msg}");
            let _: &dyn std::error::Error = &e;
        }
    }

    #[test]
    fn discovery_key_identifies_cluster_and_credentials() {
        let a = parse("postgresql://u:p1@h1,h2/db?sslmode=require");
        let b = parse("postgresql://u:p2@h1,h2/db?sslmode=require");
        let c = parse("host=h1,h2 user=u password=p1 dbname=db sslmode=require");
        let c_off =
            parse("host=h1,h2 user=u password=p1 dbname=db sslmode=require replica_reads=off");
        assert_ne!(c.discovery_key(), c_off.discovery_key());
        let d = parse("postgresql://u:p1@h1,h2:5433/db?sslmode=require");
        assert_ne!(a.discovery_key(), b.discovery_key());
        assert_eq!(a.discovery_key(), c.discovery_key());
        assert_ne!(a.discovery_key(), d.discovery_key());
        // Unambiguous even when values contain separators.
        let e = parse("user='a;b' dbname=c");
        let f = parse("user=a dbname='b;c'");
        assert_ne!(e.discovery_key(), f.discovery_key());
    }

    #[test]
    fn nul_characters_are_rejected() {
        assert_eq!(err("host=a\0b"), E::NulCharacter { position: 6 });
        assert_eq!(err("postgresql://h/d\0b"), E::NulCharacter { position: 16 });
        assert_eq!(
            err("host=a\0b").to_string(),
            "unexpected NUL character at byte 6"
        );
    }

    #[test]
    fn user_lookahead_quirk_matches_libpq() {
        // libpq looks for '@' up to the first '/', so an '@' in the query of a URI without
        // a path makes everything before it the user name.
        let cs = parse("postgresql://h?x@h2");
        assert_eq!(cs.user(), Some("h?x"));
        assert_eq!(hosts(&cs), [("h2", 5432)]);
    }
}
