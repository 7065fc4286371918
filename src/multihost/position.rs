//! Positions in a cluster's history, and the causal tokens built from them.
//!
//! A [`Position`] says how far a server's history goes: on a PostgreSQL primary the WAL
//! insert position, on a standby the replay position, each with its timeline. A write
//! committed before a primary position was taken is covered by it; a standby that has
//! replayed up to it has that write. Positions are compared only within one timeline: a
//! position from an older timeline says nothing certain about a newer one (the history
//! forked), so the routing core re-bases it on the new primary (see
//! [`Session`](super::core::Session)).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A position in a PostgreSQL cluster's WAL: a timeline and a log sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Position {
    /// The timeline (1 for a cluster that never failed over; a promotion starts a new one).
    pub(crate) timeline: u32,
    /// The byte position in the WAL.
    pub(crate) lsn: u64,
}

/// PostgreSQL's text form of an LSN, `16/B374D848`.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
        return None;
    }
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

pub(crate) struct Lsn(pub(crate) u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.timeline, Lsn(self.lsn))
    }
}

/// A proof of what a connection has written, to carry to another connection (or process)
/// that must read it: a web request writes, puts the token in a cookie or header, and the
/// next request calls [`read_after`](crate::MultiHostConnection::read_after) with it.
///
/// The text form ([`Display`](fmt::Display) / [`FromStr`]) is short and safe in cookies,
/// headers and URLs: `pg:<timeline>:<LSN>`, for example `pg:1:0/3000148`. With the `serde`
/// derive it (de)serializes as that string. Two tokens merge into the later one
/// ([`CausalToken::merge`]); [`PartialOrd`] compares tokens of one timeline by position and
/// tokens of different timelines by timeline (a newer timeline is later).
///
/// # After a failover
///
/// A token names the timeline it was taken on. When the current primary is on a newer
/// timeline, the token predates a failover: the write it covers may or may not have
/// survived, and no standby position proves either. Reads after such a token are then held
/// to the new primary's position when the connection first used it (see
/// [`read_after`](crate::MultiHostConnection::read_after)), which every surviving write is
/// at or before: never a read older than the new primary.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CausalToken {
    pub(crate) position: Position,
}

impl CausalToken {
    /// The later of two tokens: the one on the newer timeline, or on one timeline the one
    /// further on.
    pub fn merge(self, other: CausalToken) -> CausalToken {
        if other > self {
            other
        } else {
            self
        }
    }
}

impl PartialOrd for CausalToken {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CausalToken {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.position.timeline, self.position.lsn)
            .cmp(&(other.position.timeline, other.position.lsn))
    }
}

/// The timeline of a MySQL/MariaDB position (GTIDs carry on across failovers; PostgreSQL
/// timelines start at 1).
const GTID_TIMELINE: u32 = 0;

impl fmt::Display for CausalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.position.timeline == GTID_TIMELINE {
            write!(f, "gtid:{}", self.position.lsn)
        } else {
            write!(f, "pg:{}", self.position)
        }
    }
}

impl fmt::Debug for CausalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CausalToken({self})")
    }
}

/// A causal token's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CausalTokenError {
    reason: &'static str,
}

impl fmt::Display for CausalTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid causal token: {} (expected pg:<timeline>:<LSN>, e.g. pg:1:0/3000148, or gtid:<count>)",
            self.reason
        )
    }
}

impl std::error::Error for CausalTokenError {}

impl FromStr for CausalToken {
    type Err = CausalTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CausalTokenError { reason };
        if let Some(count) = s.strip_prefix("gtid:") {
            let lsn = count
                .parse()
                .ok()
                .filter(|_| count.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(err("bad GTID count"))?;
            return Ok(CausalToken {
                position: Position {
                    timeline: GTID_TIMELINE,
                    lsn,
                },
            });
        }
        let rest = s.strip_prefix("pg:").ok_or(err("unknown kind"))?;
        let (timeline, lsn) = rest.split_once(':').ok_or(err("no timeline"))?;
        let timeline: u32 = timeline
            .parse()
            .ok()
            .filter(|t| *t > 0 && timeline.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(err("bad timeline"))?;
        let lsn = parse_lsn(lsn)
            .filter(|_| !lsn.contains(char::is_whitespace))
            .ok_or(err("bad LSN"))?;
        Ok(CausalToken {
            position: Position { timeline, lsn },
        })
    }
}

impl serde::Serialize for CausalToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CausalToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(timeline: u32, lsn: u64) -> CausalToken {
        CausalToken {
            position: Position { timeline, lsn },
        }
    }

    #[test]
    fn text_form_round_trips() {
        for (t, text) in [
            (token(1, 0x3000148), "pg:1:0/3000148"),
            (token(7, 0x16_B374D848), "pg:7:16/B374D848"),
            (token(u32::MAX, u64::MAX), "pg:4294967295:FFFFFFFF/FFFFFFFF"),
        ] {
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<CausalToken>().unwrap(), t);
        }
        assert_eq!(
            "pg:1:0/3000148".parse::<CausalToken>().unwrap(),
            token(1, 0x3000148)
        );
    }

    #[test]
    fn malformed_tokens_are_clear_errors() {
        for bad in [
            "",
            "pg",
            "pg:",
            "pg:1",
            "pg:0:0/1",
            "pg:-1:0/1",
            "pg:x:0/1",
            "pg:1:0",
            "pg:1:/1",
            "pg:1:0/",
            "pg:1:0/G",
            "pg:1:123456789/0",
            "pg:1: 0/1",
            "my:1:0/1",
            "pg:+1:0/1",
        ] {
            let error = bad.parse::<CausalToken>().unwrap_err();
            assert!(
                error.to_string().starts_with("invalid causal token: "),
                "{bad}"
            );
        }
    }

    #[test]
    fn tokens_merge_into_the_later_one() {
        assert_eq!(token(1, 10).merge(token(1, 20)), token(1, 20));
        assert_eq!(token(1, 20).merge(token(1, 10)), token(1, 20));
        assert_eq!(token(2, 5).merge(token(1, 20)), token(2, 5));
        assert!(token(1, 10) < token(1, 11));
        assert!(token(1, 99) < token(2, 1));
    }

    #[test]
    fn lsn_text() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x/0"), None);
        assert_eq!(Lsn(0x16_B374D848).to_string(), "16/B374D848");
    }
}
