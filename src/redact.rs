//! The one redaction mechanism of the crate: how a database URL, or a text that may hold one,
//! is shown.
//!
//! - A URL is parsed once (by the registry's URL rules, `registry::target`, which use the
//!   [`ConnectionString`](crate::ConnectionString) grammar for PostgreSQL) into a
//!   [`Redacted`]: what may be shown of it, built from the parsed parts with every secret
//!   replaced by [`MASK`], and the secrets themselves (`password`, `sslpassword`, and the
//!   values it cannot tell are harmless). Nothing is found by pattern matching.
//! - A text that is not a parseable URL is never echoed, only described
//!   (`not a database URL (no scheme)`): [`Redacted::opaque`] keeps the whole text as the
//!   secret.
//! - Text from elsewhere that is shown next to a URL (a driver's message, an error chain) is
//!   passed through [`Redacted::scrub`], which replaces every known secret of the URL.
//! - The TOML parser's messages quote the values of the file; [`without_values`] drops them.

use std::fmt;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// What a hidden secret is replaced with.
pub(crate) const MASK: &str = "********";

/// Secrets shorter than this are not scrubbed from foreign text (a two-letter password would
/// mask every occurrence of two ordinary letters); the structured rendering of a URL never
/// shows a secret of any length.
const MIN_SCRUBBED_LEN: usize = 4;

/// Something that may hold secrets (a database URL): what may be shown of it, and the secrets.
///
/// `Display` and `Debug` show only [`shown`](Self::shown).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Redacted {
    shown: String,
    secrets: Vec<String>,
}

impl Redacted {
    /// A value shown as `shown` holding `secrets`. Should `shown` contain one of them anyway
    /// (a user name equal to the password, say), it is scrubbed.
    pub(crate) fn new(shown: String, secrets: Vec<String>) -> Self {
        let mut r = Redacted {
            shown: String::new(),
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        };
        r.shown = r.scrub_all(&shown);
        r
    }

    /// A text that is not shown at all: `description` says what it is (never quoting it), and
    /// the whole text counts as a secret.
    pub(crate) fn opaque(text: &str, description: impl Into<String>) -> Self {
        let mut secrets = vec![text.to_owned()];
        let trimmed = text.trim();
        if trimmed != text {
            secrets.push(trimmed.to_owned());
        }
        Redacted {
            shown: description.into(),
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// What may be shown.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// `text` with every secret of this value (as written, and percent-encoded) replaced by
    /// [`MASK`]. For text that did not come from the URL itself: a driver's message, an error
    /// chain.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets.iter().filter(|s| s.len() >= MIN_SCRUBBED_LEN) {
            out = replace_secret(&out, secret);
        }
        out
    }

    /// As [`scrub`](Self::scrub), for secrets of any length (for the value's own rendering).
    fn scrub_all(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = replace_secret(&out, secret);
        }
        out
    }

    /// The secrets, for scrubbing text shown next to several URLs at once.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }
}

fn replace_secret(text: &str, secret: &str) -> String {
    let mut out = text.replace(secret, MASK);
    let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    if encoded != secret {
        out = out.replace(&encoded, MASK);
    }
    out
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown, f)
    }
}

/// `text` with every secret of `secrets` replaced by [`MASK`] (see [`Redacted::scrub`]).
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn scrub_all<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= MIN_SCRUBBED_LEN {
            out = replace_secret(&out, secret);
        }
    }
    out
}

/// A parser's message without the values it quotes: serde quotes a string value as Rust's
/// `{:?}` (`invalid type: string "postgres://u:pw@h", expected u32`), which is dropped; a
/// back-quoted name (`` unknown field `max_sise` ``) is kept when it is a bare TOML key and
/// dropped otherwise.
pub(crate) fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[i] as char;
        let body = &rest[i + 1..];
        let end = if quote == '"' {
            closing_debug_quote(body)
        } else {
            body.find('`')
        };
        let Some(end) = end else {
            // An unbalanced quote: nothing after it is shown.
            out.push_str(&rest[..i]);
            out.push_str("...");
            return out;
        };
        let inner = &body[..end];
        if quote == '`'
            && !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            out.push_str(&rest[..i]);
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else {
            // Drop the quoted value and the space before it.
            out.push_str(rest[..i].strip_suffix(' ').unwrap_or(&rest[..i]));
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The index of the `"` closing a Rust `{:?}` string whose opening quote was just before `s`.
fn closing_debug_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_never_holds_a_secret() {
        let r = Redacted::new("postgres://s3cret:********@h".into(), vec!["s3cret".into()]);
        assert_eq!(r.shown(), "postgres://********:********@h");
        assert_eq!(format!("{r} {r:?}"), format!("{0} \"{0}\"", r.shown()));
    }

    #[test]
    fn opaque_text_is_only_described() {
        let r = Redacted::opaque(
            " app:S3cretPw!@127.0.0.1:5432/app",
            "not a database URL (no scheme)",
        );
        assert_eq!(r.shown(), "not a database URL (no scheme)");
        assert_eq!(
            r.scrub("x app:S3cretPw!@127.0.0.1:5432/app y"),
            "x******** y"
        );
    }

    #[test]
    fn scrub_replaces_plain_and_percent_encoded_secrets() {
        let r = Redacted::new("postgres://u:********@h".into(), vec!["p@ss w0rd".into()]);
        assert_eq!(
            r.scrub("a p@ss w0rd b p%40ss%20w0rd c"),
            "a ******** b ******** c"
        );
        // Short secrets are left alone in foreign text.
        let r = Redacted::new("x".into(), vec!["ab".into()]);
        assert_eq!(r.scrub("about"), "about");
    }

    #[test]
    fn parser_messages_lose_their_values() {
        assert_eq!(
            without_values("invalid type: string \"postgres://u:pw@h\", expected u32"),
            "invalid type: string, expected u32"
        );
        assert_eq!(
            without_values("invalid type: string \"a\\\"b\", expected u32"),
            "invalid type: string, expected u32"
        );
        assert_eq!(
            without_values("unknown field `max_sise`, expected one of `url`, `max_size`"),
            "unknown field `max_sise`, expected one of `url`, `max_size`"
        );
        assert_eq!(
            without_values("unknown field `postgres://u:pw@h`, expected `url`"),
            "unknown field, expected `url`"
        );
        assert_eq!(without_values("bad \"unterminated pw"), "bad ...");
    }
}
