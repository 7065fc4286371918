//! Statement classification for MySQL and MariaDB: may this SQL text run on a replica?
//!
//! [`classify`] answers the same questions as the PostgreSQL classifier (see the [parent
//! module](super) for what a [`Classification`] says and for the batch rules) in one pass
//! over the text, without allocating, with a tokenizer that follows MySQL's lexer:
//!
//! - `` `...` `` identifiers (` `` ` inside); `'...'` and `"..."` are string literals, both
//!   with backslash escapes and doubled quotes (the default `sql_mode`: neither
//!   `ANSI_QUOTES` nor `NO_BACKSLASH_ESCAPES`; a `"name"(` is still taken as a call, as it
//!   would be with `ANSI_QUOTES`);
//! - comments: `#` to the end of the line, `-- ` only when `--` is followed by whitespace, a
//!   control character or the end (`1--1` is an expression), `/* ... */` (not nesting);
//!   `/*+ ... */` optimizer hints are comments;
//! - executable comments `/*! ... */`, `/*!NNNNN ... */` (MySQL's 5-digit and MariaDB's
//!   6-digit versions) and MariaDB's `/*M! ... */`: their content is read as code, never
//!   skipped (`SELECT 1 /*! FOR UPDATE */` is a locking read);
//! - `$` in identifiers, identifiers starting with digits (`1a`), `0x..`/`0b..` numbers;
//!   `@name`, `@'name'`, `` @`name` `` user variables; `@@name`, `@@session.name`,
//!   `@@global.name` system variables; `:=`; `?` placeholders. No dollar quoting.
//!
//! Statements are split on `;` at parenthesis depth 0; a `;` inside parentheses is a syntax
//! error in MySQL, so such text is unreadable. A stored program definition (`CREATE` or
//! `ALTER` of a `PROCEDURE`, `FUNCTION`, `TRIGGER`, `EVENT` or `PACKAGE`, with any
//! `DEFINER`) whose body opens a compound statement (`BEGIN`, `LOOP`, `WHILE`, `CASE`, or
//! `IF`/`REPEAT` not followed by `(`) runs to the end of the text, and so does a top-level
//! compound statement (MariaDB's `BEGIN NOT ATOMIC ... END`, `IF ... END IF`, `CASE`,
//! `LOOP`, `WHILE`, `REPEAT`, `FOR`, `label: ...`): the body's own `;` never split it.
//! Statements written after such a definition in the same text are therefore not
//! classified on their own (the batch is not read-only anyway).
//!
//! # Read-only (may run on a replica)
//!
//! A statement is read-only only when it starts with `SELECT`, `WITH`, `VALUES`, `TABLE`
//! (also behind leading parentheses) or `SHOW`, or is `EXPLAIN`/`DESCRIBE`/`DESC`
//! `[EXTENDED|PARTITIONS|ANALYZE|FORMAT = x]` of such a query (or of a table:
//! `DESCRIBE t`), or MariaDB's `ANALYZE [FORMAT = x]` of such a query, and contains none of:
//!
//! - a locking read: `FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE` (the keyword `LOCK`),
//!   anywhere;
//! - `INTO` (`INTO @var`, `INTO OUTFILE`, `INTO DUMPFILE`, `INTO var`);
//! - the keywords `INSERT`, `UPDATE`, `DELETE`, `REPLACE`, unless right after `.` or `AS`
//!   (names) or, for `INSERT` and `REPLACE`, right before `(` (the string functions
//!   `INSERT(str, pos, len, new)` and `REPLACE(str, from, to)`);
//! - a user variable `@x` (its value lives in the primary's session) or `:=`;
//! - `SQL_CALC_FOUND_ROWS` (it feeds the session's `FOUND_ROWS()`);
//! - MariaDB sequences: `NEXT VALUE FOR s`, `PREVIOUS VALUE FOR s`, `s.nextval`,
//!   `s.currval`;
//! - a system variable that holds the session's history: `@@identity`,
//!   `@@last_insert_id`, `@@warning_count`, `@@error_count`, `@@last_gtid`,
//!   `@@pseudo_thread_id` (other system variables, such as `@@version`, are fine);
//! - a call of a function in [`MYSQL_WRITING_FUNCTIONS`] or in the caller's extra list. A
//!   call is a name followed by `(` (comments may sit in between); the name is the last
//!   component of a qualified name, or a `` `quoted` `` name. MySQL resolves function
//!   names case-insensitively even when quoted (`` `GET_LOCK`(...) `` calls `GET_LOCK`),
//!   so every comparison ignores ASCII case; an extra entry `db.f` also matches a call of
//!   `f`.
//!
//! `SHOW WARNINGS`, `SHOW ERRORS`, `SHOW COUNT(*) ...`, `SHOW PROFILE[S]` (they describe
//! the session's previous statement), `SHOW MASTER|BINARY|BINLOG ...` (the primary's own
//! binary log) and MariaDB's `SHOW EXPLAIN|ANALYZE FOR` (another connection's id) are not
//! read-only; `EXPLAIN FOR CONNECTION n` neither.
//!
//! Everything else is not read-only: DML, DDL, `CALL`, `DO`, `LOAD DATA`, `HANDLER`,
//! `EXECUTE`, session commands, transaction control, unknown statements, empty text, and
//! text the tokenizer cannot read (unterminated literal, comment, quoted identifier or
//! executable comment, unbalanced parentheses, `;` inside parentheses, a NUL byte outside
//! literals, an executable comment inside another one).
//!
//! ## Versioned executable comments
//!
//! A server skips `/*!NNNNN ... */` when its version is lower than `NNNNN` (MariaDB also
//! skips MySQL's `50700`-`99999`, MySQL skips `/*M! ... */`), so the classifier makes sure
//! a read is a read both ways: a statement is not read-only (and counts as a write that may
//! commit and pins the session) when such a comment holds its first token, or any of its
//! first tokens unless it starts with `SELECT`, `WITH`, `VALUES`, `TABLE` or `(`; keyword
//! pairs and calls are also checked across the comment (`FOR /*!99999 x */ SHARE`); and a
//! string, quoted name or line comment inside such a comment that holds `/*` or `*/`
//! (where the two readings end the comment at different places), like an optimizer hint
//! whose quotes do not pair up, makes the statement not read-only. The other properties
//! (the transaction effect in particular) are those of the comment read as code, as every
//! server at least that version reads it.
//!
//! # Session pinning
//!
//! `pins_session` is set for: `SET` (session and user variables, `SET NAMES`, `SET
//! CHARACTER SET`, `SET SESSION ...`, `SET autocommit`, `SET ROLE`, ...; but not `SET
//! TRANSACTION ...`, which applies to the next transaction only: `SET SESSION TRANSACTION`
//! does pin), `USE`, `LOCK TABLES`/`LOCK TABLE`/`LOCK INSTANCE`, MariaDB's `BACKUP LOCK`,
//! `FLUSH ... WITH READ LOCK`/`FOR EXPORT`, `PREPARE`, `HANDLER ... OPEN`, `CREATE [OR
//! REPLACE] TEMPORARY ...`, a top-level compound statement (it may do any of these), a
//! statement whose first keywords sit in a versioned comment (see above), and
//! anywhere in a statement: `:=` assignments, `INTO @var`, calls of the session lock
//! functions (`GET_LOCK`, `RELEASE_LOCK`, `RELEASE_ALL_LOCKS`, the locking service's and
//! version tokens' lock functions). The body of a stored program definition pins nothing
//! (it does not run). `CALL` does not pin (like PostgreSQL's); a procedure's user variables
//! are read back with `@x`, which goes to the primary anyway.
//!
//! # Transaction effect
//!
//! Only the first keywords of each top-level statement count, and the last
//! transaction-control statement of the batch decides:
//!
//! - [`TxEffect::Begin`]: `BEGIN`, `BEGIN WORK`, `START TRANSACTION ...`, `XA START|BEGIN`,
//!   `COMMIT|ROLLBACK [WORK] AND CHAIN`, `SET autocommit = 0|OFF|FALSE` (an implicit
//!   transaction starts with the next statement), and `SET autocommit = <anything else>`;
//! - [`TxEffect::Commit`]: `COMMIT [WORK] [AND NO CHAIN] [[NO] RELEASE]`, `XA COMMIT`,
//!   `SET autocommit = 1|ON|TRUE` (commits an open transaction);
//! - [`TxEffect::Rollback`]: `ROLLBACK [WORK] ...`, `XA ROLLBACK`;
//! - no effect: `SAVEPOINT`, `RELEASE SAVEPOINT`, `ROLLBACK [WORK] TO [SAVEPOINT]`, `XA
//!   END|PREPARE|RECOVER`, `SET GLOBAL autocommit`, `LOCK TABLES`, and DDL.
//!
//! MySQL commits implicitly before DDL (`CREATE`, `ALTER`, `DROP`, `RENAME`, `TRUNCATE`,
//! account management, `ANALYZE|OPTIMIZE|REPAIR|CHECK TABLE`, `FLUSH`, ...), `LOCK TABLES`
//! and `UNLOCK TABLES`. The classifier reports them with `tx = None` (DDL as a write): the
//! routing core then still believes an explicit transaction open and keeps everything on
//! the primary until its `COMMIT` or `ROLLBACK`, which is safe.
//!
//! MySQL runs a batch statement by statement: when one fails, those before it have run.
//! The classification describes the whole text, as for PostgreSQL (unreadable text gets no
//! transaction effect even though statements before the unreadable one may have run).
//!
//! # Atomic
//!
//! `atomic` is set for exactly one statement that cannot commit part of its work before it
//! fails: not `CALL` or `EXECUTE` (a procedure or prepared statement may commit), not a
//! compound statement, not DDL or another statement with an implicit commit (listed
//! above, also `START SLAVE|REPLICA`, `SET PASSWORD`, `SET DEFAULT ROLE`, MariaDB's `SET
//! STATEMENT ... FOR`), not `XA`, not transaction control. `DO expr` is atomic (an
//! expression cannot commit).
//!
//! # Writes
//!
//! `writes` is set for anything but reads, transaction control and session commands
//! (`SET` except `SET PASSWORD`/`SET DEFAULT ROLE`/`SET STATEMENT`, `USE`, `SHOW`,
//! `PREPARE`, `DEALLOCATE`/`DROP PREPARE`, `LOCK`/`UNLOCK`, `HANDLER`, `HELP`, `GET
//! DIAGNOSTICS`, `XA`, `EXPLAIN`/`DESCRIBE` of a read); a session command that calls a
//! listed function (`SET @id = LAST_INSERT_ID()`) counts as a write. `CALL`, `DO`,
//! `EXECUTE`, `LOAD DATA`, DML and DDL write.

use super::{
    is_listed, Batch, Classification, Kind, Malformed, NameFilter, StatementClass, Tok, TxEffect,
    HEAD_LEN,
};

/// The MySQL and MariaDB functions that make a `SELECT` unfit for a replica, sorted
/// (bytewise), lower-case. A call of any of them (or of a name in the connection's
/// `writing_functions`) sends the statement to the primary.
///
/// - Session locks: `get_lock`, `release_lock`, `release_all_locks` (they also pin the
///   session), and `is_free_lock`, `is_used_lock` (they only read, but the locks live on
///   the primary);
/// - the locking service and version tokens plugins: `service_get_read_locks`,
///   `service_get_write_locks`, `service_release_locks`, `version_tokens_lock_shared`,
///   `version_tokens_lock_exclusive`, `version_tokens_unlock` (session locks: they pin),
///   `version_tokens_set`, `version_tokens_edit`, `version_tokens_delete`;
/// - the session's history: `last_insert_id`, `found_rows`, `row_count` (they read what
///   the session's previous statements did), `connection_id`, `ps_current_thread_id` (the
///   primary session's id);
/// - MariaDB sequences: `nextval`, `setval`, and `lastval` (reads the session's last
///   value);
/// - waits for replication positions, which mean something only on a chosen server (use
///   causal tokens instead): `master_pos_wait`, `source_pos_wait`, `master_gtid_wait`,
///   `wait_for_executed_gtid_set`, `wait_until_sql_thread_after_gtids`, Galera's
///   `wsrep_sync_wait_upto_gtid`, `wsrep_last_written_gtid` (the session's last write) and
///   `wsrep_last_seen_gtid`;
/// - functions that change the server or the cluster: the common UDFs that run commands
///   (`sys_exec`, `sys_eval`), the keyring (`keyring_key_generate`, `keyring_key_store`,
///   `keyring_key_remove`), group replication's `group_replication_set_as_primary`,
///   `group_replication_switch_to_single_primary_mode`,
///   `group_replication_switch_to_multi_primary_mode`,
///   `group_replication_set_write_concurrency`,
///   `group_replication_set_communication_protocol`,
///   `group_replication_enable_member_action`, `group_replication_disable_member_action`,
///   `group_replication_reset_member_actions`.
///
/// Deliberately not listed (harmless on a replica): `sleep`, `benchmark`, `uuid`,
/// `uuid_short`, `rand`, `load_file` (reads a file of whichever server runs it),
/// `database`, `user`, `current_role`, `gtid_subset`, `gtid_subtract`, `binlog_gtid_pos`.
pub const MYSQL_WRITING_FUNCTIONS: &[&str] = &[
    "connection_id",
    "found_rows",
    "get_lock",
    "group_replication_disable_member_action",
    "group_replication_enable_member_action",
    "group_replication_reset_member_actions",
    "group_replication_set_as_primary",
    "group_replication_set_communication_protocol",
    "group_replication_set_write_concurrency",
    "group_replication_switch_to_multi_primary_mode",
    "group_replication_switch_to_single_primary_mode",
    "is_free_lock",
    "is_used_lock",
    "keyring_key_generate",
    "keyring_key_remove",
    "keyring_key_store",
    "last_insert_id",
    "lastval",
    "master_gtid_wait",
    "master_pos_wait",
    "nextval",
    "ps_current_thread_id",
    "release_all_locks",
    "release_lock",
    "row_count",
    "service_get_read_locks",
    "service_get_write_locks",
    "service_release_locks",
    "setval",
    "source_pos_wait",
    "sys_eval",
    "sys_exec",
    "version_tokens_delete",
    "version_tokens_edit",
    "version_tokens_lock_exclusive",
    "version_tokens_lock_shared",
    "version_tokens_set",
    "version_tokens_unlock",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    "wsrep_last_seen_gtid",
    "wsrep_last_written_gtid",
    "wsrep_sync_wait_upto_gtid",
];

/// The subset of [`MYSQL_WRITING_FUNCTIONS`] that takes or releases session locks (sorted,
/// lower-case): a call pins the session to the primary.
const SESSION_PINNING_FUNCTIONS: &[&str] = &[
    "get_lock",
    "release_all_locks",
    "release_lock",
    "service_get_read_locks",
    "service_get_write_locks",
    "service_release_locks",
    "version_tokens_lock_exclusive",
    "version_tokens_lock_shared",
    "version_tokens_unlock",
];

/// System variables that hold the session's history (sorted, lower-case): reading one
/// (`SELECT @@identity`) needs the primary session.
const SESSION_HISTORY_VARIABLES: &[&str] = &[
    "error_count",
    "identity",
    "last_gtid",
    "last_insert_id",
    "pseudo_thread_id",
    "warning_count",
];

/// The quick filter of [`MYSQL_WRITING_FUNCTIONS`].
const FILTER: NameFilter = NameFilter::new(MYSQL_WRITING_FUNCTIONS);

/// First keywords of the statements that may be read-only.
const READS: &[&str] = &["select", "with", "values", "table"];

/// Stored program kinds whose definition may hold a compound body.
const ROUTINES: &[&str] = &["event", "function", "package", "procedure", "trigger"];

/// How many tokens of a `CREATE`/`ALTER` may precede the routine keyword (`CREATE OR
/// REPLACE DEFINER = 'user'@'host' AGGREGATE FUNCTION` and the like).
const ROUTINE_HEAD: usize = 24;

/// `SHOW` statements that describe the session's previous statement, the primary's own
/// binary log, or another connection (by the word after `SHOW`).
const SESSION_SHOWS: &[&str] = &[
    "analyze", "binary", "binlog", "count", "errors", "explain", "master", "profile", "profiles",
    "warnings",
];

/// Reserved words that start a statement: after `EXPLAIN`/`DESCRIBE` they are no table.
const NOT_TABLES: &[&str] = &[
    "call", "delete", "do", "for", "handler", "insert", "load", "lock", "replace", "set", "show",
    "update", "use",
];

/// Statements (by first keyword) that change no data: transaction control and session
/// commands (`SET`, `START`, `DROP` and `BACKUP` are decided with their second word).
const QUIET: &[&str] = &[
    "begin",
    "commit",
    "deallocate",
    "get",
    "handler",
    "help",
    "lock",
    "prepare",
    "release",
    "rollback",
    "savepoint",
    "show",
    "unlock",
    "use",
    "xa",
];

/// Statements (by first keyword) that may commit before they fail: procedures, prepared
/// statements, and statements with an implicit commit (`DROP`, `SET` and `START` are
/// decided with their second word).
const MAY_COMMIT: &[&str] = &[
    "alter",
    "cache",
    "call",
    "change",
    "check",
    "create",
    "execute",
    "flush",
    "grant",
    "install",
    "optimize",
    "rename",
    "repair",
    "reset",
    "revoke",
    "truncate",
    "uninstall",
    "xa",
];

/// Classify MySQL/MariaDB `sql`. `extra_writing_functions` are lower-case function names
/// added by the user.
///
/// See the [module documentation](self) for the rules.
pub(crate) fn classify(sql: &str, extra_writing_functions: &[String]) -> Classification {
    let mut lexer = Lexer {
        src: sql,
        pos: 0,
        exec: Exec::Outside,
        ambiguous: false,
    };
    let mut stmt = Statement::new();
    let mut batch = Batch::new();
    // The last token outside versioned comments, and whether the previous token was
    // inside one: what a server skipping the comment saw before the next token.
    let mut outside_prev = Tok::NONE;
    let mut was_inside = false;
    loop {
        let tok = match lexer.next_token() {
            Ok(Some(tok)) => tok,
            Ok(None) => break,
            Err(Malformed) => return batch.malformed(stmt.pins()),
        };
        let inside = lexer.exec == Exec::Versioned;
        stmt.ambiguous |= std::mem::take(&mut lexer.ambiguous);
        if tok.kind == Kind::Semicolon && !stmt.unsplit {
            if stmt.depth != 0 {
                return batch.malformed(stmt.pins());
            }
            batch.push(stmt.finish());
            stmt = Statement::new();
        } else {
            let alt = (was_inside && !inside).then_some(outside_prev);
            if stmt
                .feed(tok, inside, alt, extra_writing_functions)
                .is_err()
            {
                return batch.malformed(stmt.pins());
            }
        }
        if !inside {
            outside_prev = tok;
        }
        was_inside = inside;
    }
    stmt.ambiguous |= lexer.ambiguous;
    if stmt.depth != 0 {
        return batch.malformed(stmt.pins());
    }
    batch.push(stmt.finish());
    batch.finish()
}

// ---- tokenizer -------------------------------------------------------------------------

/// Whether the tokenizer is inside an executable comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    /// Not in an executable comment.
    Outside,
    /// In `/*! ... */`: code on every server.
    Code,
    /// In `/*!NNNNN ... */` or `/*M! ... */`: code on some servers, a comment on others.
    Versioned,
}

/// MySQL identifier character: letters, digits, `_`, `$` and any non-ASCII byte.
fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Offset of the first `needle` (two bytes) in `hay`.
fn find2(hay: &[u8], needle: &[u8; 2]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Whether an optimizer hint's content ends where a comment would: MySQL's hint scanner
/// reads quoted names and strings, so a quote that does not pair up (or a backslash next
/// to quotes) may move the end of the hint past the first `*/`.
fn hint_quotes_agree(content: &[u8]) -> bool {
    let quotes = [b'\'', b'"', b'`'];
    if !content.iter().any(|c| quotes.contains(c)) {
        return true;
    }
    !content.contains(&b'\\')
        && quotes
            .iter()
            .all(|q| content.iter().filter(|&c| c == q).count() % 2 == 0)
}

/// A tokenizer over MySQL SQL text that skips whitespace and comments and reads
/// executable comments as code.
#[derive(Debug)]
struct Lexer<'a> {
    /// The whole input.
    src: &'a str,
    /// Byte offset of the next unread byte (always at a char boundary).
    pos: usize,
    /// Inside an executable comment?
    exec: Exec,
    /// Something since the last token reads differently when a versioned comment is
    /// skipped, or a hint may end elsewhere: the current statement is not read-only.
    ambiguous: bool,
}

impl<'a> Lexer<'a> {
    /// `src[start..end]`; the offsets are always char boundaries (they sit next to ASCII
    /// bytes), the fallback only guards against a logic error.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    /// Produce the token `[start, end)` and continue after it.
    fn emit(&mut self, kind: Kind, start: usize, end: usize) -> Tok<'a> {
        self.pos = end;
        Tok {
            kind,
            text: self.slice(start, end),
        }
    }

    /// In a versioned comment, a literal or line comment holding `/*` or `*/` ends the
    /// comment elsewhere for a server that skips it.
    fn check_versioned(&mut self, raw: &[u8]) {
        if self.exec == Exec::Versioned
            && (find2(raw, b"*/").is_some() || find2(raw, b"/*").is_some())
        {
            self.ambiguous = true;
        }
    }

    /// The next token, `None` at the end of the input.
    fn next_token(&mut self) -> Result<Option<Tok<'a>>, Malformed> {
        let b = self.src.as_bytes();
        loop {
            let start = self.pos;
            let Some(&c) = b.get(start) else {
                return match self.exec {
                    Exec::Outside => Ok(None),
                    _ => Err(Malformed),
                };
            };
            let next = b.get(start + 1).copied();
            let tok = match c {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                    self.pos += 1;
                    continue;
                }
                b'#' => {
                    self.line_comment(start)?;
                    continue;
                }
                b'-' if next == Some(b'-')
                    && b.get(start + 2).is_none_or(|&c| c <= b' ' || c == 0x7f) =>
                {
                    self.line_comment(start)?;
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    self.block_comment(start)?;
                    continue;
                }
                b'*' if next == Some(b'/') && self.exec != Exec::Outside => {
                    self.exec = Exec::Outside;
                    self.pos += 2;
                    continue;
                }
                b'\'' | b'"' => self.string(start, c)?,
                b'`' => self.backtick(start)?,
                b'@' => self.variable(start),
                b':' if next == Some(b'=') => self.emit(Kind::Assign, start, start + 2),
                b'?' => self.emit(Kind::Param, start, start + 1),
                b'(' => self.emit(Kind::LParen, start, start + 1),
                b')' => self.emit(Kind::RParen, start, start + 1),
                b';' => self.emit(Kind::Semicolon, start, start + 1),
                b'.' => self.emit(Kind::Dot, start, start + 1),
                b'0'..=b'9' => self.number(start),
                // The server's lexer takes a NUL byte for the end of the query.
                0 => return Err(Malformed),
                c if is_ident_char(c) => self.word(start),
                _ => self.emit(Kind::Other, start, start + 1),
            };
            return Ok(Some(tok));
        }
    }

    /// Skip a `#` or `-- ` comment up to the end of the line.
    fn line_comment(&mut self, start: usize) -> Result<(), Malformed> {
        let b = self.src.as_bytes();
        let end = memchr::memchr2(b'\n', 0, &b[start..]).map_or(b.len(), |off| start + off);
        if b.get(end) == Some(&0) {
            return Err(Malformed);
        }
        self.check_versioned(&b[start..end]);
        self.pos = end;
        Ok(())
    }

    /// A comment starting with `/*` at `start`: skip a plain comment or hint, or enter an
    /// executable comment.
    fn block_comment(&mut self, start: usize) -> Result<(), Malformed> {
        let b = self.src.as_bytes();
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let maria = at(start + 2) == b'M' && at(start + 3) == b'!';
        if at(start + 2) == b'!' || maria {
            if self.exec != Exec::Outside {
                return Err(Malformed);
            }
            let mut i = start + if maria { 4 } else { 3 };
            let digits = (0..6).take_while(|&k| at(i + k).is_ascii_digit()).count();
            if digits >= 5 {
                i += digits;
            }
            self.exec = if maria || digits >= 5 {
                Exec::Versioned
            } else {
                Exec::Code
            };
            self.pos = i;
            return Ok(());
        }
        let body = start + 2;
        let Some(off) = find2(&b[body..], b"*/") else {
            return Err(Malformed);
        };
        if at(body) == b'+' && !hint_quotes_agree(&b[body..body + off]) {
            self.ambiguous = true;
        }
        self.pos = body + off + 2;
        Ok(())
    }

    /// A `'...'` or `"..."` string literal (backslash escapes, doubled quotes).
    fn string(&mut self, start: usize, quote: u8) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            // Only the quote or a backslash can end the literal here.
            i += memchr::memchr2(quote, b'\\', b.get(i..).unwrap_or_default()).ok_or(Malformed)?;
            match b.get(i) {
                None => return Err(Malformed),
                Some(b'\\') => i += 2,
                Some(&c) if c == quote && b.get(i + 1) == Some(&quote) => i += 2,
                Some(&c) if c == quote => break,
                Some(_) => i += 1,
            }
        }
        self.check_versioned(&b[start..=i]);
        Ok(self.emit(Kind::Str, start, i + 1))
    }

    /// A `` `...` `` identifier; the token text is the raw content between the backticks.
    fn backtick(&mut self, start: usize) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            match b.get(i) {
                None => return Err(Malformed),
                Some(b'`') if b.get(i + 1) == Some(&b'`') => i += 2,
                Some(b'`') => break,
                Some(_) => i += 1,
            }
        }
        self.check_versioned(&b[start..=i]);
        let tok = self.emit(Kind::QuotedIdent, start + 1, i);
        self.pos = i + 1;
        Ok(tok)
    }

    /// `@name` (or a lone `@` before a quoted name) or `@@[scope.]name`.
    fn variable(&mut self, start: usize) -> Tok<'a> {
        let b = self.src.as_bytes();
        let system = b.get(start + 1) == Some(&b'@');
        let mut i = start + if system { 2 } else { 1 };
        while b.get(i).is_some_and(|&c| is_ident_char(c) || c == b'.') {
            i += 1;
        }
        let kind = if system { Kind::SysVar } else { Kind::UserVar };
        self.emit(kind, start, i)
    }

    /// A number (`12`, `1.5`, `1e-3`, `0x1F`, `0b01`), or an identifier that starts with
    /// digits (`1a`, `0xZ`), as MySQL's lexer reads them.
    fn number(&mut self, start: usize) -> Tok<'a> {
        let b = self.src.as_bytes();
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        if at(start) == b'0' && matches!(at(start + 1), b'x' | b'b') {
            let hex = at(start + 1) == b'x';
            let mut i = start + 2;
            while (hex && at(i).is_ascii_hexdigit()) || (!hex && matches!(at(i), b'0' | b'1')) {
                i += 1;
            }
            if i > start + 2 && !is_ident_char(at(i)) {
                return self.emit(Kind::Number, start, i);
            }
            return self.word(start);
        }
        // An exponent at `i` (`e5`, `E-3`): the offset after it, or `i` when there is none.
        let exponent = |i: usize| {
            let digits_from = if at(i + 1).is_ascii_digit() {
                i + 1
            } else if matches!(at(i + 1), b'+' | b'-') && at(i + 2).is_ascii_digit() {
                i + 2
            } else {
                return i;
            };
            let mut j = digits_from;
            while at(j).is_ascii_digit() {
                j += 1;
            }
            j
        };
        let mut i = start;
        while at(i).is_ascii_digit() {
            i += 1;
        }
        match at(i) {
            b'.' => {
                i += 1;
                while at(i).is_ascii_digit() {
                    i += 1;
                }
                if matches!(at(i), b'e' | b'E') {
                    i = exponent(i);
                }
                self.emit(Kind::Number, start, i)
            }
            c if !is_ident_char(c) => self.emit(Kind::Number, start, i),
            b'e' | b'E' if exponent(i) > i => {
                let end = exponent(i);
                self.emit(Kind::Number, start, end)
            }
            _ => self.word(start),
        }
    }

    /// An identifier or keyword.
    fn word(&mut self, start: usize) -> Tok<'a> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        while b.get(i).copied().is_some_and(is_ident_char) {
            i += 1;
        }
        self.emit(Kind::Word, start, i)
    }
}

// ---- statements ------------------------------------------------------------------------

/// Where the statement analysis is, for finding the statement's leading keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet, or only leading `(`.
    Start,
    /// After `EXPLAIN`/`DESCRIBE`/`DESC`/`ANALYZE` and its options; `value`: after `=`.
    ExplainOptions { value: bool },
    /// In the statement proper; its first tokens go to the head.
    Body,
}

/// Reading `SET ... autocommit = value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Autocommit {
    /// Not in an autocommit assignment.
    Idle,
    /// After the session's `autocommit` name.
    Name,
    /// After `=` or `:=`.
    Eq,
    /// After a value with this effect (unless more of the expression follows).
    Value(TxEffect),
}

/// Is `tok` the operator or punctuation `op`?
fn is_op(tok: Tok<'_>, op: &str) -> bool {
    tok.kind == Kind::Other && tok.text == op
}

/// `@@scope.name` → `(scope, name)`; `@@name` → `("", name)`.
fn sysvar_parts(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches('@');
    text.rsplit_once('.').unwrap_or(("", text))
}

/// Whether the system variable token `text` names one of the session's history (or no
/// name we can read, such as ``@@`identity` ``).
fn session_history_variable(text: &str) -> bool {
    let (_, name) = sysvar_parts(text);
    name.is_empty() || is_listed(SESSION_HISTORY_VARIABLES, name, false)
}

/// The transaction effect of `SET autocommit = tok`: off opens an implicit transaction,
/// on commits; a value we cannot read counts as off (the primary keeps everything).
fn autocommit_value(tok: Tok<'_>) -> TxEffect {
    let text = match tok.kind {
        Kind::Str => tok.text.get(1..tok.text.len() - 1).unwrap_or(""),
        Kind::Number | Kind::Word => tok.text,
        _ => return TxEffect::Begin,
    };
    if ["1", "on", "true"]
        .iter()
        .any(|v| text.eq_ignore_ascii_case(v))
    {
        TxEffect::Commit
    } else {
        TxEffect::Begin
    }
}

/// The function name a token names when `(` follows it: a word, a `` `quoted` `` name, or
/// a `"quoted"` one (a name with `ANSI_QUOTES`).
fn callee<'a>(tok: Tok<'a>) -> Option<&'a str> {
    match tok.kind {
        Kind::Word | Kind::QuotedIdent => Some(tok.text),
        Kind::Str if tok.text.starts_with('"') => tok.text.get(1..tok.text.len() - 1),
        _ => None,
    }
}

/// Does the user's entry (lower-case, maybe `db.f`) name the called function `name`?
fn extra_matches(entry: &str, name: &str) -> bool {
    entry.eq_ignore_ascii_case(name)
        || entry
            .rsplit_once('.')
            .is_some_and(|(_, last)| last.eq_ignore_ascii_case(name))
}

/// Streaming analysis of one statement: fed token by token, finished at `;` or the end.
#[derive(Debug)]
struct Statement<'a> {
    /// Leading-keyword state.
    phase: Phase,
    /// The statement starts with `(` (a parenthesized query).
    lead_paren: bool,
    /// The statement is `EXPLAIN`/`DESCRIBE`/`DESC`/`ANALYZE ...`; the head holds the
    /// explained statement.
    explain: bool,
    /// The prefix is `ANALYZE` (MariaDB's `ANALYZE SELECT`, or `ANALYZE TABLE`).
    analyze: bool,
    /// The explain prefix had options (`FORMAT = ...`, `EXTENDED`, `INTO @v`, ...).
    explain_options: bool,
    /// First tokens of the (explained) statement, after leading `(`.
    head: [Tok<'a>; HEAD_LEN],
    /// How many of `head` are filled.
    head_len: usize,
    /// Tokens seen (0: empty statement).
    tokens: usize,
    /// Parenthesis depth.
    depth: u32,
    /// The previous token.
    prev: Tok<'a>,
    /// The first token is outside versioned comments and starts a query (`SELECT`, `WITH`,
    /// `VALUES`, `TABLE`, `(`): whether it is read-only depends on no other head token.
    read_head: bool,
    /// A versioned comment holds the first token, or one of the head of a statement that
    /// does not start as a query: its kind is uncertain (not read-only, a write that may
    /// commit, pins).
    versioned_head: bool,
    /// The text reads differently when a versioned comment is skipped (or a hint may end
    /// elsewhere).
    ambiguous: bool,
    /// `;` no longer splits: a compound statement or a stored program body runs to the
    /// end of the text.
    unsplit: bool,
    /// A top-level compound statement (MariaDB).
    compound: bool,
    /// `CREATE`/`ALTER` of a stored program.
    routine: bool,
    /// After `INSERT`/`REPLACE` (inside a versioned comment or not): a keyword unless `(`
    /// follows.
    pending_dml: Option<bool>,
    /// After `IF`/`REPEAT` in a stored program definition: a compound body unless `(`
    /// follows.
    pending_opener: bool,
    /// `FOR SHARE` or `LOCK` seen.
    locking: bool,
    /// `FOR EXPORT` seen.
    export: bool,
    /// `INTO` seen.
    into: bool,
    /// A user variable right after `INTO`.
    into_var: bool,
    /// `INSERT|UPDATE|DELETE|REPLACE` used as a keyword.
    dml: bool,
    /// A user variable `@x`.
    user_var: bool,
    /// `:=`.
    assign: bool,
    /// `SQL_CALC_FOUND_ROWS`.
    found_rows: bool,
    /// A MariaDB sequence operation.
    sequence: bool,
    /// A system variable holding the session's history.
    session_var: bool,
    /// A call of a writing function.
    writing_call: bool,
    /// A call of a session-pinning function.
    pinning_call: bool,
    /// `SET`: reading an autocommit assignment.
    autocommit: Autocommit,
    /// `SET`: the effect of the last finished autocommit assignment.
    autocommit_effect: Option<TxEffect>,
    /// `SET`: the current scope is `GLOBAL`/`PERSIST`/`PERSIST_ONLY`.
    global_scope: bool,
}

impl<'a> Statement<'a> {
    /// An empty statement.
    fn new() -> Self {
        Statement {
            phase: Phase::Start,
            lead_paren: false,
            explain: false,
            analyze: false,
            explain_options: false,
            head: [Tok::NONE; HEAD_LEN],
            head_len: 0,
            tokens: 0,
            depth: 0,
            prev: Tok::NONE,
            read_head: false,
            versioned_head: false,
            ambiguous: false,
            unsplit: false,
            compound: false,
            routine: false,
            pending_dml: None,
            pending_opener: false,
            locking: false,
            export: false,
            into: false,
            into_var: false,
            dml: false,
            user_var: false,
            assign: false,
            found_rows: false,
            sequence: false,
            session_var: false,
            writing_call: false,
            pinning_call: false,
            autocommit: Autocommit::Idle,
            autocommit_effect: None,
            global_scope: false,
        }
    }

    /// Head token `i`, or a placeholder.
    fn head(&self, i: usize) -> Tok<'a> {
        self.head[..self.head_len]
            .get(i)
            .copied()
            .unwrap_or(Tok::NONE)
    }

    /// Whether the statement seen so far pins the session (for unreadable text).
    fn pins(&self) -> bool {
        self.finish().is_some_and(|c| c.pins_session)
    }

    /// Does the previous token satisfy `f`, in either reading of a versioned comment
    /// (`alt`: the token before it)?
    fn follows(&self, alt: Option<Tok<'a>>, f: impl Fn(Tok<'a>) -> bool) -> bool {
        f(self.prev) || alt.is_some_and(&f)
    }

    /// Does the previous token satisfy `f` in both readings?
    fn follows_always(&self, alt: Option<Tok<'a>>, f: impl Fn(Tok<'a>) -> bool) -> bool {
        f(self.prev) && alt.is_none_or(&f)
    }

    /// The first tokens start as a plain statement (no leading `(`, no `EXPLAIN`).
    fn plain(&self) -> bool {
        !self.lead_paren && !self.explain
    }

    /// Take one token (a `;` only when the statement is not split). `inside`: the token
    /// is inside a versioned comment; `alt`: the previous token for a server that skipped
    /// the versioned comment just closed.
    fn feed(
        &mut self,
        tok: Tok<'a>,
        inside: bool,
        alt: Option<Tok<'a>>,
        extra: &[String],
    ) -> Result<(), Malformed> {
        if self.tokens == 0 {
            self.read_head = !inside && (tok.kind == Kind::LParen || tok.is_any_kw(READS));
        }
        if inside && (self.tokens == 0 || (!self.read_head && self.head_len < HEAD_LEN)) {
            self.versioned_head = true;
        }
        if let Some(name_inside) = self.pending_dml.take() {
            if tok.kind != Kind::LParen || inside != name_inside {
                self.dml = true;
            }
        }
        if std::mem::take(&mut self.pending_opener) && tok.kind != Kind::LParen {
            self.unsplit = true;
        }
        match tok.kind {
            Kind::LParen => {
                self.check_call(alt, extra);
                self.depth += 1;
            }
            Kind::RParen => self.depth = self.depth.checked_sub(1).ok_or(Malformed)?,
            Kind::Word => self.word(tok, inside, alt),
            Kind::UserVar => {
                self.user_var = true;
                if self.follows(alt, |t| t.is_kw("into")) {
                    self.into_var = true;
                }
            }
            Kind::SysVar => self.session_var |= session_history_variable(tok.text),
            Kind::Assign => self.assign = true,
            _ => {}
        }
        self.advance_phase(tok);
        if self.plain() && self.depth == 0 && self.head(0).is_kw("set") {
            self.track_autocommit(tok);
        }
        self.prev = tok;
        self.tokens += 1;
        Ok(())
    }

    /// Keywords anywhere, and stored program bodies.
    fn word(&mut self, tok: Tok<'a>, inside: bool, alt: Option<Tok<'a>>) {
        let after_dot = self.follows_always(alt, |t| t.kind == Kind::Dot);
        let named = self.follows_always(alt, |t| t.kind == Kind::Dot || t.is_kw("as"));
        let after_for = self.follows(alt, |t| t.is_kw("for"));
        if (tok.is_kw("share") && after_for) || (tok.is_kw("lock") && !after_dot) {
            self.locking = true;
        }
        if tok.is_kw("export") && after_for {
            self.export = true;
        }
        if tok.is_kw("into") {
            self.into = true;
        }
        if !named {
            if tok.is_any_kw(&["update", "delete"]) {
                self.dml = true;
            } else if tok.is_any_kw(&["insert", "replace"]) {
                self.pending_dml = Some(inside);
            }
        }
        if tok.is_kw("sql_calc_found_rows") {
            self.found_rows = true;
        }
        if (tok.is_kw("value") && self.follows(alt, |t| t.is_any_kw(&["next", "previous"])))
            || (tok.is_any_kw(&["nextval", "currval"])
                && self.follows(alt, |t| t.kind == Kind::Dot))
        {
            self.sequence = true;
        }
        if self.depth == 0
            && !self.unsplit
            && self.plain()
            && self.head(0).is_any_kw(&["create", "alter"])
        {
            if self.routine {
                if tok.is_any_kw(&["begin", "loop", "while", "case"]) {
                    self.unsplit = true;
                } else if tok.is_kw("repeat")
                    || (tok.is_kw("if") && !self.follows(alt, |t| t.is_any_kw(ROUTINES)))
                {
                    self.pending_opener = true;
                }
            } else if self.tokens < ROUTINE_HEAD && !after_dot && tok.is_any_kw(ROUTINES) {
                self.routine = true;
            }
        }
    }

    /// At `(`: is the previous token (in either reading) the name of a listed function?
    fn check_call(&mut self, alt: Option<Tok<'a>>, extra: &[String]) {
        for name in [Some(self.prev), alt]
            .into_iter()
            .flatten()
            .filter_map(callee)
        {
            let listed =
                FILTER.may_contain(name) && is_listed(MYSQL_WRITING_FUNCTIONS, name, false);
            if listed || extra.iter().any(|entry| extra_matches(entry, name)) {
                self.writing_call = true;
            }
            if listed && is_listed(SESSION_PINNING_FUNCTIONS, name, false) {
                self.pinning_call = true;
            }
        }
    }

    /// Track leading parentheses and the `EXPLAIN` prefix; fill the head.
    fn advance_phase(&mut self, tok: Tok<'a>) {
        match self.phase {
            Phase::Start => {
                if tok.kind == Kind::LParen {
                    self.lead_paren = true;
                } else if self.plain() && tok.is_any_kw(&["explain", "describe", "desc", "analyze"])
                {
                    self.explain = true;
                    self.analyze = tok.is_kw("analyze");
                    self.phase = Phase::ExplainOptions { value: false };
                } else {
                    self.phase = Phase::Body;
                    self.push_head(tok);
                }
            }
            Phase::ExplainOptions { value } => {
                if value {
                    self.phase = Phase::ExplainOptions { value: false };
                } else if is_op(tok, "=") {
                    self.phase = Phase::ExplainOptions { value: true };
                } else if tok.kind == Kind::LParen {
                    self.lead_paren = true;
                    self.phase = Phase::Start;
                    return;
                } else if !(tok.kind == Kind::UserVar
                    || tok.is_any_kw(&["extended", "partitions", "analyze", "format", "into"]))
                {
                    self.phase = Phase::Body;
                    self.push_head(tok);
                    return;
                }
                self.explain_options = true;
            }
            Phase::Body => self.push_head(tok),
        }
    }

    /// Keep `tok` if the head has room; recognize top-level compound statements.
    fn push_head(&mut self, tok: Tok<'a>) {
        if self.head_len == HEAD_LEN {
            return;
        }
        self.head[self.head_len] = tok;
        self.head_len += 1;
        if !self.plain() {
            return;
        }
        let compound = match self.head_len {
            1 => tok.is_any_kw(&["if", "case", "loop", "while", "repeat", "for"]),
            2 => {
                (self.head(0).is_kw("begin") && tok.is_kw("not"))
                    || (self.head(0).kind == Kind::Word && is_op(tok, ":"))
            }
            _ => false,
        };
        if compound {
            self.compound = true;
            self.unsplit = true;
        }
    }

    /// In a `SET` statement at depth 0: follow assignments of the session's `autocommit`.
    fn track_autocommit(&mut self, tok: Tok<'a>) {
        match std::mem::replace(&mut self.autocommit, Autocommit::Idle) {
            Autocommit::Name if tok.kind == Kind::Assign || is_op(tok, "=") => {
                self.autocommit = Autocommit::Eq;
                return;
            }
            Autocommit::Name => self.autocommit_effect = Some(TxEffect::Begin),
            Autocommit::Eq => {
                self.autocommit = Autocommit::Value(autocommit_value(tok));
                return;
            }
            Autocommit::Value(effect) => {
                // `SET autocommit = 1 + x`: an expression we do not evaluate.
                self.autocommit_effect = Some(if is_op(tok, ",") {
                    effect
                } else {
                    TxEffect::Begin
                });
            }
            Autocommit::Idle => {}
        }
        if tok.is_any_kw(&["global", "persist", "persist_only"]) {
            self.global_scope = true;
        } else if tok.is_any_kw(&["session", "local"]) {
            self.global_scope = false;
        } else if tok.is_kw("autocommit") && !self.global_scope && self.prev.kind != Kind::Dot {
            self.autocommit = Autocommit::Name;
        } else if tok.kind == Kind::SysVar {
            let (scope, name) = sysvar_parts(tok.text);
            if name.eq_ignore_ascii_case("autocommit")
                && !["global", "persist", "persist_only"]
                    .iter()
                    .any(|s| scope.eq_ignore_ascii_case(s))
            {
                self.autocommit = Autocommit::Name;
            }
        }
    }

    /// The statement's classification; `None` for an empty statement.
    fn finish(&self) -> Option<StatementClass> {
        if self.tokens == 0 {
            return None;
        }
        let plain = self.plain();
        let first = self.head(0);
        let read_kind = if self.explain {
            self.explains_a_read()
        } else {
            first.is_any_kw(READS)
                || (plain && first.is_kw("show") && !self.head(1).is_any_kw(SESSION_SHOWS))
        };
        let read_only = read_kind
            && !(self.locking
                || self.into
                || self.dml
                || self.pending_dml.is_some()
                || self.user_var
                || self.assign
                || self.found_rows
                || self.sequence
                || self.session_var
                || self.writing_call
                || self.versioned_head
                || self.ambiguous
                || self.compound);
        let token_pins = !self.routine && (self.assign || self.into_var || self.pinning_call);
        let pins_session =
            token_pins || self.compound || self.versioned_head || (plain && self.pins_by_kind());
        let tx = if plain && !self.compound {
            self.tx_effect()
        } else {
            TxEffect::None
        };
        let may_commit = self.compound
            || self.versioned_head
            || (plain && self.may_commit_by_kind())
            || (self.analyze && !read_kind);
        let quiet = plain
            && !self.compound
            && !self.versioned_head
            && !self.writing_call
            && self.quiet_by_kind();
        Some(StatementClass {
            read_only,
            pins_session,
            tx,
            may_commit,
            writes: !read_only && !quiet,
        })
    }

    /// `EXPLAIN`/`DESCRIBE`/`ANALYZE` of a query that may be read-only, or `DESCRIBE t`.
    fn explains_a_read(&self) -> bool {
        let first = self.head(0);
        if self.lead_paren || first.is_any_kw(&["select", "with", "values"]) {
            return true;
        }
        if self.analyze {
            // `ANALYZE TABLE t`, `ANALYZE NO_WRITE_TO_BINLOG TABLE t`.
            return false;
        }
        if first.is_kw("table") {
            return true;
        }
        // `DESCRIBE [db.]t [column]`.
        !self.explain_options
            && self.head_len <= 4
            && (first.kind == Kind::QuotedIdent
                || (first.kind == Kind::Word && !first.is_any_kw(NOT_TABLES)))
    }

    /// Session state left by the statement's kind.
    fn pins_by_kind(&self) -> bool {
        let first = self.head(0);
        if first.is_kw("set") {
            // `SET TRANSACTION ...` applies to the next transaction only.
            return !self.head(1).is_kw("transaction");
        }
        if first.is_any_kw(&["use", "lock", "prepare"]) {
            return true;
        }
        if first.is_kw("backup") {
            return self.head(1).is_kw("lock");
        }
        if first.is_kw("handler") {
            return self.head[..self.head_len].iter().any(|t| t.is_kw("open"));
        }
        if first.is_kw("flush") {
            // `FLUSH TABLES ... WITH READ LOCK`, `FLUSH TABLES t FOR EXPORT`.
            return self.locking || self.export;
        }
        if first.is_kw("create") {
            return self.head[1..self.head_len]
                .iter()
                .find(|t| !t.is_any_kw(&["or", "replace"]))
                .is_some_and(|t| t.is_kw("temporary"));
        }
        false
    }

    /// Transaction control, session commands and other statements that change no data.
    fn quiet_by_kind(&self) -> bool {
        let (first, second) = (self.head(0), self.head(1));
        if first.is_kw("set") {
            return !(second.is_any_kw(&["password", "statement"])
                || (second.is_kw("default") && self.head(2).is_kw("role")));
        }
        if first.is_kw("start") {
            return second.is_kw("transaction");
        }
        if first.is_kw("drop") {
            return second.is_kw("prepare");
        }
        if first.is_kw("backup") {
            return second.is_any_kw(&["lock", "unlock"]);
        }
        first.is_any_kw(QUIET)
    }

    /// Procedures, prepared statements and implicit commits.
    fn may_commit_by_kind(&self) -> bool {
        let (first, second) = (self.head(0), self.head(1));
        if first.is_kw("drop") {
            return !second.is_kw("prepare");
        }
        if first.is_kw("set") {
            return !self.quiet_by_kind();
        }
        if first.is_kw("start") {
            // `START SLAVE|REPLICA|GROUP_REPLICATION`.
            return !second.is_kw("transaction");
        }
        first.is_any_kw(MAY_COMMIT)
    }

    /// Transaction-control effect of this statement alone.
    fn tx_effect(&self) -> TxEffect {
        let (first, second) = (self.head(0), self.head(1));
        if first.is_kw("begin") {
            return TxEffect::Begin;
        }
        if first.is_kw("start") {
            return if second.is_kw("transaction") {
                TxEffect::Begin
            } else {
                TxEffect::None
            };
        }
        if first.is_kw("xa") {
            return if second.is_any_kw(&["start", "begin"]) {
                TxEffect::Begin
            } else if second.is_kw("commit") {
                TxEffect::Commit
            } else if second.is_kw("rollback") {
                TxEffect::Rollback
            } else {
                TxEffect::None
            };
        }
        if first.is_kw("set") {
            let effect = match self.autocommit {
                Autocommit::Idle => self.autocommit_effect,
                Autocommit::Value(effect) => Some(effect),
                Autocommit::Name | Autocommit::Eq => Some(TxEffect::Begin),
            };
            return effect.unwrap_or(TxEffect::None);
        }
        if !first.is_any_kw(&["commit", "rollback"]) {
            return TxEffect::None;
        }
        let mut i = 1;
        if self.head(i).is_kw("work") {
            i += 1;
        }
        if first.is_kw("rollback") && self.head(i).is_kw("to") {
            return TxEffect::None;
        }
        if self.head(i).is_kw("and") && self.head(i + 1).is_kw("chain") {
            TxEffect::Begin
        } else if first.is_kw("rollback") {
            TxEffect::Rollback
        } else {
            TxEffect::Commit
        }
    }
}

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;
