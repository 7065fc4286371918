//! Hiding connection passwords in everything the crate shows (errors, `Debug`, logs).

use std::sync::OnceLock;

use regex::Regex;

/// What a hidden password is replaced with.
pub(crate) const MASK: &str = "********";

/// `scheme://user:password@` in URLs, anywhere in a text.
fn url_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@]*)@")
            .expect("static regex")
    })
}

/// `password=...` in libpq key/value strings and URL query strings, anywhere in a text.
fn keyword_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?i)(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&'"]+)"#)
            .expect("static regex")
    })
}

/// Replaces every connection password found in `text` with `********`.
///
/// Covers the URL form (`postgres://user:secret@host/db`, also several URLs in one text, as
/// in a TOML snippet shown by a parse error) and the `password=secret` key/value form (libpq
/// connection strings and URL query parameters).
pub(crate) fn redact(text: &str) -> String {
    let once = url_password().replace_all(text, |c: &regex::Captures<'_>| {
        format!("{}{MASK}@", &c["pre"])
    });
    keyword_password()
        .replace_all(&once, |c: &regex::Captures<'_>| {
            format!("{}{MASK}", &c["pre"])
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            redact("postgres://alice:s3cr%40t@db1:5432,db2/app"),
            "postgres://alice:********@db1:5432,db2/app"
        );
        assert_eq!(
            redact("url = \"postgresql://u:p@h/d\" and mysql://x:y@z"),
            "url = \"postgresql://u:********@h/d\" and mysql://x:********@z"
        );
    }

    #[test]
    fn urls_without_password_are_unchanged() {
        for s in [
            "postgres://alice@db1/app",
            "postgres://db1:5432/app",
            "sqlite://./data/app.sqlite3",
            "/tmp/x.sqlite3",
            "http://[::1]:80/x",
        ] {
            assert_eq!(redact(s), s);
        }
    }

    #[test]
    fn keyword_passwords_are_masked() {
        assert_eq!(
            redact("host=h password='a b\\'c' dbname=d"),
            "host=h password=******** dbname=d"
        );
        assert_eq!(
            redact("postgres://h/d?password=xyz&sslmode=disable"),
            "postgres://h/d?password=********&sslmode=disable"
        );
        assert_eq!(redact("PASSWORD = hunter2"), "PASSWORD = ********");
    }
}
