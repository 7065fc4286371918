//! Statement classification for routing: may this SQL text run on a read-only standby?
//!
//! [`classify`] runs one pass over the text with a small hand-written PostgreSQL tokenizer
//! (no allocation, O(n)). It skips `--` and nested `/* */` comments, `'...'` (with `''`),
//! `E'...'` (backslash escapes), `U&'...'`, `B'...'`, `X'...'`, `N'...'`, dollar-quoted
//! `$tag$...$tag$` strings (`$1` is a parameter) and `"..."` identifiers, so keywords, `;`
//! and function names inside them never count. Statements are split on `;` outside
//! parentheses (and outside a `BEGIN ATOMIC ... END` body of `CREATE FUNCTION/PROCEDURE`).
//! Standard-conforming strings (the default since PostgreSQL 9.1) are assumed: a backslash
//! in a plain `'...'` literal is an ordinary character.
//!
//! # Read-only (may run on a standby)
//!
//! A statement is read-only only when it starts with `SELECT`, `WITH`, `VALUES`, `TABLE`
//! (also behind leading parentheses, e.g. Diesel's `(SELECT ...) UNION (SELECT ...)`) or
//! `SHOW`, or is `EXPLAIN [ANALYZE] [VERBOSE] [(options)]` of such a query (not of `SHOW`,
//! which cannot be explained), and contains none of:
//!
//! - a locking clause: `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`,
//!   at any depth;
//! - the keywords `INSERT`, `UPDATE`, `DELETE` or `MERGE` (data-modifying CTEs at any
//!   depth, `WITH ... INSERT ...`), unless directly after `.` or `AS` where they are names;
//! - `INTO` (`SELECT ... INTO` creates a table);
//! - a reference to the `pg_temp.` (or `pg_temp_N.`) schema (temporary objects exist only
//!   on the primary);
//! - a call of a function in [`DEFAULT_WRITING_FUNCTIONS`] or in the caller's extra list.
//!   A call is a name (unquoted: case-insensitive; `"quoted"`: exact; the last component
//!   of a schema-qualified name) followed by `(`; comments may sit in between. A
//!   `U&"..."` name with escapes followed by `(` counts as a writing call.
//!
//! Everything else is not read-only: DML (also with `RETURNING`), DDL, `CALL`, `DO`,
//! `COPY`, `LOCK`, `NOTIFY`, `EXECUTE`, `FETCH`, `DECLARE`, transaction control, unknown
//! statements, empty text, and text the tokenizer cannot read (unterminated literal,
//! comment or quoted identifier, unbalanced parentheses). A batch of several statements is
//! read-only only when every statement is. `EXPLAIN` of a write is never read-only, even
//! without `ANALYZE`.
//!
//! # Session pinning
//!
//! `pins_session` is set when a statement leaves state in the session, so later
//! statements of that connection must stay on the primary:
//!
//! - `SET ...` including `SET SESSION ...`, `SET SESSION CHARACTERISTICS AS TRANSACTION`,
//!   `SET ROLE` and `SET SESSION AUTHORIZATION`; but not `SET LOCAL`, `SET TRANSACTION`
//!   or `SET CONSTRAINTS` (they end with the transaction);
//! - `LISTEN`, `LOAD`, `LOCK`, `PREPARE name ...` (not `PREPARE TRANSACTION 'id'`);
//! - `DECLARE ... WITH HOLD` cursors (a plain `DECLARE` dies with its transaction, which
//!   already runs on the primary, so it does not pin);
//! - `CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY ...`, any `CREATE` mentioning
//!   `pg_temp.`, `SELECT ... INTO TEMP|TEMPORARY|LOCAL|GLOBAL|pg_temp.`;
//! - calls of the session-state functions: session advisory locks (`pg_advisory_lock`,
//!   `pg_advisory_lock_shared`, `pg_try_advisory_lock`, `pg_try_advisory_lock_shared`,
//!   not the `_xact_` ones), `set_config` (whatever its third argument), `setseed`,
//!   `dblink_connect`, `dblink_connect_u`, `pg_backup_start`, `pg_start_backup`,
//!   `pg_replication_origin_session_setup`; anywhere in any statement.
//!
//! `RESET`, `DISCARD`, `UNLISTEN`, `DEALLOCATE`, `currval`/`lastval` do not pin. `EXPLAIN`
//! pins when the explained statement would (it may be `EXPLAIN ANALYZE`).
//!
//! # Transaction effect
//!
//! Only the first keyword(s) of each top-level statement count (a `BEGIN` inside a `DO`
//! body or a function body is not transaction control), and the last transaction-control
//! statement of the batch decides:
//!
//! - [`TxEffect::Begin`]: `BEGIN ...`, `START TRANSACTION ...`, and `COMMIT`/`END`/
//!   `ROLLBACK`/`ABORT ... AND CHAIN` (a new transaction is open);
//! - [`TxEffect::Commit`]: `COMMIT`, `END` (with optional `WORK`/`TRANSACTION`, `AND NO
//!   CHAIN`), `PREPARE TRANSACTION 'id'`; so `BEGIN; ...; COMMIT` is `Commit`;
//! - [`TxEffect::Rollback`]: `ROLLBACK`, `ABORT` (same options);
//! - no effect: `SAVEPOINT`, `RELEASE [SAVEPOINT]`, `ROLLBACK [WORK|TRANSACTION] TO ...`,
//!   `COMMIT PREPARED`, `ROLLBACK PREPARED`, `EXPLAIN`, everything else.
//!
//! Text the tokenizer cannot read is rejected by the server before anything runs, so it
//! gets [`TxEffect::None`] (its `pins_session` is still reported, which is harmless).
//!
//! # Atomic
//!
//! `atomic` is set for exactly one statement that is not `CALL` or `DO` and not
//! transaction control. Such a statement runs in one implicit transaction outside an
//! explicit one, so when it fails (a 25006 from a primary that was demoted) nothing of it
//! was committed; a procedure, a `DO` block or a batch may have committed part of its work
//! before failing, so a failure of those proves nothing.
//!
//! # MySQL and MariaDB
//!
//! Text for a MySQL or MariaDB server is classified by [`mysql`] with that dialect's
//! lexical rules and statements ([`classify_for`] picks the dialect); a [`Classification`]
//! means the same for both. The batch rules above are shared.

/// What a batch of SQL does to the session's transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxEffect {
    /// No transaction-control statement that changes the state (none at all, or only
    /// savepoints, `COMMIT PREPARED` and the like).
    None,
    /// After the batch a transaction is open (BEGIN, START TRANSACTION, COMMIT AND CHAIN).
    Begin,
    /// After the batch no transaction is open, and the last one was committed (or
    /// prepared): COMMIT, END, PREPARE TRANSACTION; also `BEGIN; ...; COMMIT`.
    Commit,
    /// After the batch no transaction is open, and the last one was rolled back:
    /// ROLLBACK, ABORT.
    Rollback,
}

impl TxEffect {
    /// The batch ends the transaction (either way).
    pub(crate) fn ends(self) -> bool {
        matches!(self, TxEffect::Commit | TxEffect::Rollback)
    }
}

/// How one SQL text (one statement or a `;`-separated batch) may be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classification {
    /// Provably read-only: may run on a replica.
    pub(crate) read_only: bool,
    /// Sets session state (SET, LISTEN, PREPARE, temp tables, LOCK, advisory locks,
    /// set_config, DECLARE ... WITH HOLD): later statements must stay on the primary.
    pub(crate) pins_session: bool,
    /// Effect on the transaction state.
    pub(crate) tx: TxEffect,
    /// One statement that cannot commit anything before it fails: not a batch, not `CALL`
    /// or `DO` (procedures and `DO` blocks may `COMMIT` inside), no transaction control.
    /// Only for such a statement does a read-only error (25006) prove nothing was applied.
    pub(crate) atomic: bool,
    /// May change data when committed: anything but reads, transaction control
    /// (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, ...) and session commands (`SET`, `SHOW`,
    /// `LISTEN`, `PREPARE`, `DECLARE`, `FETCH`, `LOCK`, ...). A committed write raises the
    /// connection's read-your-writes floor.
    pub(crate) writes: bool,
    /// Transaction control among other statements of a batch: when the batch fails part
    /// way, whether a transaction is open afterwards is unknown (`BEGIN; <error>` leaves
    /// one open).
    pub(crate) tx_unsure: bool,
    /// Some statement of a batch of several opens a transaction: when the batch fails part
    /// way outside a transaction, one may be open afterwards. (Without one, a failed batch
    /// leaves none: PostgreSQL rolls back its implicit block, MySQL autocommits.)
    pub(crate) opens_tx: bool,
}

impl Classification {
    /// What the transaction manager's `BEGIN` is.
    pub(crate) const BEGIN: Classification = Classification {
        read_only: false,
        pins_session: false,
        tx: TxEffect::Begin,
        atomic: false,
        writes: false,
        tx_unsure: false,
        opens_tx: false,
    };
    /// What the transaction manager's `COMMIT` is.
    pub(crate) const COMMIT: Classification = Classification {
        read_only: false,
        pins_session: false,
        tx: TxEffect::Commit,
        atomic: false,
        writes: false,
        tx_unsure: false,
        opens_tx: false,
    };
    /// What the transaction manager's `ROLLBACK` is.
    pub(crate) const ROLLBACK: Classification = Classification {
        read_only: false,
        pins_session: false,
        tx: TxEffect::Rollback,
        atomic: false,
        writes: false,
        tx_unsure: false,
        opens_tx: false,
    };
    /// A read the crate itself sends to the primary (a causal token's position).
    pub(crate) const READ_ON_PRIMARY: Classification = Classification {
        read_only: true,
        pins_session: false,
        tx: TxEffect::None,
        atomic: true,
        writes: false,
        tx_unsure: false,
        opens_tx: false,
    };
    /// A write that is not to be re-sent whatever the server answers (migrations setup,
    /// `COPY FROM`).
    pub(crate) const WRITE: Classification = Classification {
        read_only: false,
        pins_session: false,
        tx: TxEffect::None,
        atomic: false,
        writes: true,
        tx_unsure: false,
        opens_tx: false,
    };
}

/// The functions that make a `SELECT` unfit for a standby, sorted (bytewise), lower-case.
///
/// They write (sequences, large objects, WAL, replication slots and origins, statistics,
/// BRIN/GIN maintenance, server files), take locks (advisory locks), change or depend on
/// session state (`set_config`, `setseed`, `currval`, `lastval`, `dblink_connect`,
/// `pg_backup_start`, replication-origin sessions), assign or expose the transaction id
/// (`txid_current`, `pg_current_xact_id`, `pg_export_snapshot`), signal or manage servers
/// (`pg_cancel_backend`, `pg_terminate_backend`, `pg_reload_conf`, `pg_promote`, ...), or
/// fail during recovery (`pg_current_wal_lsn`, `pg_walfile_name`, ...). A call of any of
/// them (or of a name in the connection's extra list) sends the statement to the primary.
pub const DEFAULT_WRITING_FUNCTIONS: &[&str] = &[
    "brin_desummarize_range",
    "brin_summarize_new_values",
    "brin_summarize_range",
    "currval",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_exec",
    "gin_clean_pending_list",
    "lastval",
    "lo_creat",
    "lo_create",
    "lo_export",
    "lo_from_bytea",
    "lo_import",
    "lo_open",
    "lo_put",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
    "lowrite",
    "nextval",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_all",
    "pg_advisory_unlock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_cancel_backend",
    "pg_clear_attribute_stats",
    "pg_clear_relation_stats",
    "pg_copy_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_restore_point",
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_current_xlog_flush_location",
    "pg_current_xlog_insert_location",
    "pg_current_xlog_location",
    "pg_drop_replication_slot",
    "pg_export_snapshot",
    "pg_file_rename",
    "pg_file_sync",
    "pg_file_unlink",
    "pg_file_write",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot",
    "pg_logical_emit_message",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_binary_changes",
    "pg_logical_slot_peek_changes",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_replication_origin_advance",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_replication_origin_session_reset",
    "pg_replication_origin_session_setup",
    "pg_replication_origin_xact_reset",
    "pg_replication_origin_xact_setup",
    "pg_replication_slot_advance",
    "pg_restore_attribute_stats",
    "pg_restore_relation_stats",
    "pg_rotate_logfile",
    "pg_start_backup",
    "pg_stat_reset",
    "pg_stat_reset_backend_stats",
    "pg_stat_reset_replication_slot",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_function_counters",
    "pg_stat_reset_single_table_counters",
    "pg_stat_reset_slru",
    "pg_stat_reset_subscription_stats",
    "pg_stat_statements_reset",
    "pg_stop_backup",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_sync_replication_slots",
    "pg_terminate_backend",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_walfile_name",
    "pg_walfile_name_offset",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
    "txid_current_if_assigned",
];

/// The subset of [`DEFAULT_WRITING_FUNCTIONS`] whose effect outlives the transaction in
/// the session (sorted, lower-case): a call pins the session to the primary.
const SESSION_PINNING_FUNCTIONS: &[&str] = &[
    "dblink_connect",
    "dblink_connect_u",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_backup_start",
    "pg_replication_origin_session_setup",
    "pg_start_backup",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "set_config",
    "setseed",
];

/// Classify `sql`. `extra_writing_functions` are lower-case function names added by the user.
///
/// See the [module documentation](self) for the rules.
pub(crate) fn classify(sql: &str, extra_writing_functions: &[String]) -> Classification {
    classify_skipping(sql, extra_writing_functions, true)
}

/// [`classify`], skipping runs of plain tokens past a statement's head (`skip`) or not
/// (the tests compare both).
fn classify_skipping(sql: &str, extra_writing_functions: &[String], skip: bool) -> Classification {
    let mut lexer = Lexer { src: sql, pos: 0 };
    let mut stmt = Statement::new();
    let mut batch = Batch::new();
    loop {
        if skip && stmt.past_head() && lexer.skip_plain() {
            stmt.plain_run();
        }
        let tok = match lexer.next_token() {
            Ok(Some(tok)) => tok,
            Ok(None) => break,
            Err(Malformed) => return batch.malformed(stmt.pins()),
        };
        if tok.kind == Kind::Semicolon && stmt.depth == 0 && stmt.atomic_depth == 0 {
            batch.push(stmt.finish());
            stmt = Statement::new();
        } else if stmt.feed(tok, extra_writing_functions).is_err() {
            return batch.malformed(stmt.pins());
        }
    }
    if stmt.depth != 0 {
        return batch.malformed(stmt.pins());
    }
    batch.push(stmt.finish());
    batch.finish()
}

/// The text cannot be tokenized the way the server would accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// Kind of a [`Tok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted identifier or keyword.
    Word,
    /// `"..."` identifier; the token text is the raw content between the quotes.
    QuotedIdent,
    /// `U&"..."` identifier; the token text is the raw content between the quotes.
    UnicodeIdent,
    /// Any string literal, dollar-quoted strings included.
    Str,
    /// Numeric literal.
    Number,
    /// `$n` bind parameter.
    Param,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `;`
    Semicolon,
    /// `.`
    Dot,
    /// Any other character (operators, `,`, `[`, ...), one byte at a time.
    Other,
    /// MySQL only: a user variable `@name` (or a lone `@` before a quoted name).
    UserVar,
    /// MySQL only: a system variable `@@name`, `@@session.name`, `@@global.name`, ...
    SysVar,
    /// MySQL only: the assignment operator `:=`.
    Assign,
}

/// One token: a kind and the slice of the input it covers (see [`Kind`] for quoted forms).
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    /// What the token is.
    kind: Kind,
    /// Its text.
    text: &'a str,
}

impl Tok<'_> {
    /// Placeholder for "no token".
    const NONE: Tok<'static> = Tok {
        kind: Kind::Other,
        text: "",
    };

    /// Is this the unquoted keyword `kw` (given in lower case)?
    fn is_kw(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    /// Is this one of the unquoted keywords `kws`?
    fn is_any_kw(&self, kws: &[&str]) -> bool {
        self.kind == Kind::Word && kws.iter().any(|kw| self.text.eq_ignore_ascii_case(kw))
    }

    /// Does this token name the session's temporary schema (`pg_temp` or `pg_temp_N`)?
    fn is_temp_schema(&self) -> bool {
        let b = self.text.as_bytes();
        let prefix = match self.kind {
            Kind::Word => b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"pg_temp"),
            Kind::QuotedIdent => b.starts_with(b"pg_temp"),
            _ => false,
        };
        prefix
            && (b.len() == 7
                || (b.len() > 8 && b[7] == b'_' && b[8..].iter().all(u8::is_ascii_digit)))
    }
}

/// PostgreSQL identifier start: letter, `_` or any non-ASCII byte.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// PostgreSQL identifier continuation: also digits and `$`.
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Dollar-quote tag continuation: like an identifier but without `$`.
fn is_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// Bytes that lex as whitespace or as tokens no rule looks at once a statement's head is
/// known (digits, `,`, most operator characters): runs of them are skipped in one go
/// (`PLAIN`), and `-` and `/` unless they open a comment (`PLAIN_UNLESS_COMMENT`). Not
/// included: what starts a word, a quoted token, a parameter or a statement boundary, and
/// `(`, `)`, `.`.
const PLAIN_BYTES: [u8; 256] = {
    let mut table = [NOT_PLAIN; 256];
    let plain = b" \t\n\r\x0b\x0c0123456789,+*<>=~!@#%^&|`?:[]{}\\";
    let mut i = 0;
    while i < plain.len() {
        table[plain[i] as usize] = PLAIN;
        i += 1;
    }
    table[b'-' as usize] = PLAIN_UNLESS_COMMENT;
    table[b'/' as usize] = PLAIN_UNLESS_COMMENT;
    table
};
const NOT_PLAIN: u8 = 0;
const PLAIN: u8 = 1;
const PLAIN_UNLESS_COMMENT: u8 = 2;

/// PostgreSQL whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A tokenizer over PostgreSQL SQL text that skips whitespace and comments.
#[derive(Debug)]
struct Lexer<'a> {
    /// The whole input.
    src: &'a str,
    /// Byte offset of the next unread byte (always at a char boundary).
    pos: usize,
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

    /// The next token, `None` at the end of the input.
    fn next_token(&mut self) -> Result<Option<Tok<'a>>, Malformed> {
        let b = self.src.as_bytes();
        loop {
            let start = self.pos;
            let Some(&c) = b.get(start) else {
                return Ok(None);
            };
            let next = b.get(start + 1).copied();
            let tok = match c {
                c if is_space(c) => {
                    self.pos += 1;
                    continue;
                }
                b'-' if next == Some(b'-') => {
                    self.pos = memchr::memchr2(b'\n', b'\r', &b[start..])
                        .map_or(b.len(), |off| start + off);
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    self.skip_block_comment()?;
                    continue;
                }
                b'\'' => self.string(start, start, false)?,
                b'"' => self.quoted_ident(start, Kind::QuotedIdent)?,
                b'$' => self.dollar(start)?,
                b'(' => self.emit(Kind::LParen, start, start + 1),
                b')' => self.emit(Kind::RParen, start, start + 1),
                b';' => self.emit(Kind::Semicolon, start, start + 1),
                b'.' => self.emit(Kind::Dot, start, start + 1),
                b'0'..=b'9' => self.number(start),
                c if is_ident_start(c) => self.word(start)?,
                _ => self.emit(Kind::Other, start, start + 1),
            };
            return Ok(Some(tok));
        }
    }

    /// Skips a run of [`PLAIN`] bytes (which lex as whitespace, numbers and operator
    /// characters) at once; returns whether it skipped a token. Stops before a comment, and
    /// leaves a number that continues as something else (`1.5`, `1e5`, `0x1F`, `1_000`) to
    /// [`next_token`](Self::next_token).
    fn skip_plain(&mut self) -> bool {
        let b = self.src.as_bytes();
        let start = self.pos;
        let mut i = start;
        while let Some(&c) = b.get(i) {
            match PLAIN_BYTES[usize::from(c)] {
                PLAIN => i += 1,
                PLAIN_UNLESS_COMMENT
                    if b.get(i + 1) != Some(&if c == b'-' { b'-' } else { b'*' }) =>
                {
                    i += 1
                }
                _ => break,
            }
        }
        // A number that goes on as something else is left to `number`.
        if b.get(i).is_some_and(|&c| c == b'.' || is_ident_start(c)) {
            while i > start && b[i - 1].is_ascii_digit() {
                i -= 1;
            }
        }
        let tokens = b[start..i].iter().any(|&c| !is_space(c));
        self.pos = i;
        tokens
    }

    /// Skip a (nesting) `/* ... */` comment starting at `self.pos`.
    fn skip_block_comment(&mut self) -> Result<(), Malformed> {
        let b = self.src.as_bytes();
        let mut i = self.pos + 2;
        let mut depth = 1u32;
        while depth > 0 {
            // Only `*` and `/` can open or close a comment: jump to the next one.
            i += memchr::memchr2(b'*', b'/', b.get(i..).unwrap_or_default()).ok_or(Malformed)?;
            match (b[i], b.get(i + 1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.pos = i;
        Ok(())
    }

    /// A string literal whose token starts at `start` (a prefix such as `E` or `U&` may
    /// precede the opening quote at `quote`); `escapes`: backslash escapes (`E'...'`).
    fn string(&mut self, start: usize, quote: usize, escapes: bool) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = quote + 1;
        loop {
            // Only a quote (or a backslash in `E'...'`) can end the literal.
            let rest = b.get(i..).unwrap_or_default();
            let found = if escapes {
                memchr::memchr2(b'\'', b'\\', rest)
            } else {
                memchr::memchr(b'\'', rest)
            };
            i += found.ok_or(Malformed)?;
            match b.get(i) {
                None => return Err(Malformed),
                Some(b'\\') if escapes => i += 2,
                Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                Some(b'\'') => return Ok(self.emit(Kind::Str, start, i + 1)),
                Some(_) => i += 1,
            }
        }
    }

    /// A `"..."` identifier whose opening quote is at `quote`; the token text is the raw
    /// content between the quotes.
    fn quoted_ident(&mut self, quote: usize, kind: Kind) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = quote + 1;
        loop {
            i += memchr::memchr(b'"', b.get(i..).unwrap_or_default()).ok_or(Malformed)?;
            match b.get(i) {
                None => return Err(Malformed),
                Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                Some(b'"') => {
                    let tok = self.emit(kind, quote + 1, i);
                    self.pos = i + 1;
                    return Ok(tok);
                }
                Some(_) => i += 1,
            }
        }
    }

    /// `$n` parameter, `$tag$...$tag$` string, or a lone `$`.
    fn dollar(&mut self, start: usize) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        if b.get(i).is_some_and(u8::is_ascii_digit) {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            return Ok(self.emit(Kind::Param, start, i));
        }
        if b.get(i).copied().is_some_and(is_ident_start) {
            while b.get(i).copied().is_some_and(is_tag_cont) {
                i += 1;
            }
        }
        if b.get(i) != Some(&b'$') {
            return Ok(self.emit(Kind::Other, start, start + 1));
        }
        let tag = self.slice(start, i + 1);
        let body = i + 1;
        match self.src.get(body..).and_then(|rest| rest.find(tag)) {
            Some(off) => Ok(self.emit(Kind::Str, start, body + off + tag.len())),
            None => Err(Malformed),
        }
    }

    /// A numeric literal (decimal, with fraction/exponent/underscores, or `0x`/`0o`/`0b`).
    fn number(&mut self, start: usize) -> Tok<'a> {
        let b = self.src.as_bytes();
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let digits = |mut i: usize| {
            while at(i).is_ascii_digit() || at(i) == b'_' {
                i += 1;
            }
            i
        };
        let mut i = start + 1;
        if at(start) == b'0' && matches!(at(i), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
            i += 1;
            while at(i).is_ascii_hexdigit() || at(i) == b'_' {
                i += 1;
            }
            return self.emit(Kind::Number, start, i);
        }
        i = digits(i);
        if at(i) == b'.' && at(i + 1) != b'.' {
            i = digits(i + 1);
        }
        if matches!(at(i), b'e' | b'E') {
            if at(i + 1).is_ascii_digit() {
                i = digits(i + 1);
            } else if matches!(at(i + 1), b'+' | b'-') && at(i + 2).is_ascii_digit() {
                i = digits(i + 2);
            }
        }
        self.emit(Kind::Number, start, i)
    }

    /// An identifier or keyword, or a prefixed literal: `E'...'`, `B'...'`, `X'...'`,
    /// `N'...'`, `U&'...'`, `U&"..."`.
    fn word(&mut self, start: usize) -> Result<Tok<'a>, Malformed> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        while b.get(i).copied().is_some_and(is_ident_cont) {
            i += 1;
        }
        if i == start + 1 {
            let next = b.get(i).copied();
            match (b[start].to_ascii_lowercase(), next) {
                (b'e', Some(b'\'')) => return self.string(start, i, true),
                (b'b' | b'x' | b'n', Some(b'\'')) => return self.string(start, i, false),
                (b'u', Some(b'&')) => match b.get(i + 1) {
                    Some(b'\'') => return self.string(start, i + 1, false),
                    Some(b'"') => return self.quoted_ident(i + 1, Kind::UnicodeIdent),
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(self.emit(Kind::Word, start, i))
    }
}

/// Where the statement analysis is, for finding the statement's leading keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet, or only leading `(`.
    Start,
    /// After `EXPLAIN` (and its `ANALYZE`/`VERBOSE` keywords).
    ExplainOptions,
    /// After `EXPLAIN (`: an option list or a parenthesized query.
    ExplainParen,
    /// Inside `EXPLAIN ( options )`, at this nesting depth.
    ExplainParenOptions(u32),
    /// In the statement proper; its first tokens go to the head.
    Body,
}

/// How many leading tokens of a statement are kept for recognizing its kind.
const HEAD_LEN: usize = 8;

/// What one finished statement does.
#[derive(Debug, Clone, Copy)]
struct StatementClass {
    /// May run on a standby.
    read_only: bool,
    /// Leaves session state behind.
    pins_session: bool,
    /// Transaction-control effect.
    tx: TxEffect,
    /// May commit part of its work before it fails (`CALL`, `DO`, ...).
    may_commit: bool,
    /// May change data.
    writes: bool,
}

/// Statements (by first keyword) that change no data: transaction control and session
/// commands.
/// (`COMMIT` and `END` write nothing of their own: what the transaction wrote counts.)
const NON_WRITING: &[&str] = &[
    "abort",
    "begin",
    "close",
    "commit",
    "deallocate",
    "declare",
    "discard",
    "end",
    "fetch",
    "listen",
    "load",
    "lock",
    "move",
    "prepare",
    "release",
    "reset",
    "rollback",
    "savepoint",
    "set",
    "show",
    "start",
    "unlisten",
];

/// Streaming analysis of one statement: fed token by token, finished at `;` or the end.
#[derive(Debug)]
struct Statement<'a> {
    /// Leading-keyword state.
    phase: Phase,
    /// The statement starts with `(` (a parenthesized query).
    lead_paren: bool,
    /// The statement is `EXPLAIN ...`; the head holds the explained statement.
    explain: bool,
    /// First tokens of the (explained) statement, after leading `(`.
    head: [Tok<'a>; HEAD_LEN],
    /// How many of `head` are filled.
    head_len: usize,
    /// Tokens seen (0: empty statement).
    tokens: usize,
    /// Parenthesis depth.
    depth: u32,
    /// The statement is `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    routine: bool,
    /// Nesting of `BEGIN ATOMIC` (and `CASE`) inside such a routine's body.
    atomic_depth: u32,
    /// The previous token.
    prev: Tok<'a>,
    /// `FOR UPDATE|SHARE|NO KEY UPDATE|KEY SHARE` seen.
    locking: bool,
    /// `INTO` seen.
    into: bool,
    /// `INTO TEMP|TEMPORARY|LOCAL|GLOBAL` seen.
    into_temp: bool,
    /// `INSERT|UPDATE|DELETE|MERGE` used as a keyword.
    dml: bool,
    /// A call of a writing function.
    writing_call: bool,
    /// A call of a session-pinning function.
    pinning_call: bool,
    /// `pg_temp.` seen.
    pg_temp: bool,
    /// `WITH HOLD` seen.
    with_hold: bool,
}

impl<'a> Statement<'a> {
    /// An empty statement.
    fn new() -> Self {
        Statement {
            phase: Phase::Start,
            lead_paren: false,
            explain: false,
            head: [Tok::NONE; HEAD_LEN],
            head_len: 0,
            tokens: 0,
            depth: 0,
            routine: false,
            atomic_depth: 0,
            prev: Tok::NONE,
            locking: false,
            into: false,
            into_temp: false,
            dml: false,
            writing_call: false,
            pinning_call: false,
            pg_temp: false,
            with_hold: false,
        }
    }

    /// Head token `i`, or a placeholder.
    fn head(&self, i: usize) -> Tok<'a> {
        self.head[..self.head_len]
            .get(i)
            .copied()
            .unwrap_or(Tok::NONE)
    }

    /// Past the head: the next tokens only matter as words, parentheses, dots or quoted
    /// tokens, so runs of other tokens can be skipped (see [`Lexer::skip_plain`]).
    fn past_head(&self) -> bool {
        self.phase == Phase::Body && self.head_len == HEAD_LEN
    }

    /// A run of tokens skipped past the head: all the statement keeps of them is that the
    /// previous token is not a word.
    fn plain_run(&mut self) {
        self.prev = Tok::NONE;
        self.tokens += 1;
    }

    /// Whether the statement seen so far pins the session (for unreadable text).
    fn pins(&self) -> bool {
        self.finish().is_some_and(|c| c.pins_session)
    }

    /// Take one token (a `;` only when nested).
    fn feed(&mut self, tok: Tok<'a>, extra: &[String]) -> Result<(), Malformed> {
        match tok.kind {
            Kind::LParen => {
                self.check_call(extra);
                self.depth += 1;
            }
            Kind::RParen => self.depth = self.depth.checked_sub(1).ok_or(Malformed)?,
            Kind::Dot if self.prev.is_temp_schema() => self.pg_temp = true,
            Kind::Word => self.word(tok),
            _ => {}
        }
        self.advance_phase(tok);
        self.prev = tok;
        self.tokens += 1;
        Ok(())
    }

    /// Keyword pairs and routine bodies.
    fn word(&mut self, tok: Tok<'a>) {
        let prev = self.prev;
        if prev.is_kw("for") && tok.is_any_kw(&["update", "share", "no", "key"]) {
            self.locking = true;
        }
        if tok.is_kw("into") {
            self.into = true;
        } else if prev.is_kw("into") && tok.is_any_kw(&["temp", "temporary", "local", "global"]) {
            self.into_temp = true;
        }
        if tok.is_any_kw(&["insert", "update", "delete", "merge"])
            && prev.kind != Kind::Dot
            && !prev.is_kw("as")
        {
            self.dml = true;
        }
        if prev.is_kw("with") && tok.is_kw("hold") {
            self.with_hold = true;
        }
        if prev.kind == Kind::UnicodeIdent && tok.is_kw("uescape") {
            // A custom escape character: we do not decode the name, assume the worst.
            self.writing_call = true;
        }
        if self.routine && self.depth == 0 {
            let opens = (tok.is_kw("atomic") && prev.is_kw("begin"))
                || (tok.is_kw("case") && self.atomic_depth > 0);
            if opens {
                self.atomic_depth += 1;
            } else if tok.is_kw("end") && self.atomic_depth > 0 {
                self.atomic_depth -= 1;
            }
        }
    }

    /// At `(`: is the previous token the name of a listed function?
    fn check_call(&mut self, extra: &[String]) {
        let prev = self.prev;
        let exact = match prev.kind {
            Kind::Word => false,
            Kind::QuotedIdent => true,
            Kind::UnicodeIdent if prev.text.contains('\\') => {
                self.writing_call = true;
                return;
            }
            Kind::UnicodeIdent => true,
            _ => return,
        };
        let name = prev.text;
        let listed = may_be_listed(name);
        if (listed && is_listed(DEFAULT_WRITING_FUNCTIONS, name, exact))
            || extra.iter().any(|f| {
                if exact {
                    f == name
                } else {
                    f.eq_ignore_ascii_case(name)
                }
            })
        {
            self.writing_call = true;
        }
        if listed && is_listed(SESSION_PINNING_FUNCTIONS, name, exact) {
            self.pinning_call = true;
        }
    }

    /// Track `EXPLAIN` options and leading parentheses; fill the head.
    fn advance_phase(&mut self, tok: Tok<'a>) {
        match self.phase {
            Phase::Start => {
                if tok.kind == Kind::LParen {
                    self.lead_paren = true;
                } else if !self.lead_paren && !self.explain && tok.is_kw("explain") {
                    self.explain = true;
                    self.phase = Phase::ExplainOptions;
                } else {
                    self.phase = Phase::Body;
                    self.push_head(tok);
                }
            }
            Phase::ExplainOptions => {
                if tok.kind == Kind::LParen {
                    self.phase = Phase::ExplainParen;
                } else if !tok.is_any_kw(&["analyze", "analyse", "verbose"]) {
                    self.phase = Phase::Body;
                    self.push_head(tok);
                }
            }
            Phase::ExplainParen => {
                if tok.kind == Kind::LParen {
                    // `EXPLAIN ((SELECT ...))`: a parenthesized query.
                    self.lead_paren = true;
                    self.phase = Phase::Start;
                } else if tok.is_any_kw(&["select", "with", "values", "table"]) {
                    self.lead_paren = true;
                    self.phase = Phase::Body;
                    self.push_head(tok);
                } else if tok.kind == Kind::RParen {
                    self.phase = Phase::ExplainOptions;
                } else {
                    self.phase = Phase::ExplainParenOptions(1);
                }
            }
            Phase::ExplainParenOptions(depth) => {
                self.phase = match tok.kind {
                    Kind::LParen => Phase::ExplainParenOptions(depth + 1),
                    Kind::RParen if depth == 1 => Phase::ExplainOptions,
                    Kind::RParen => Phase::ExplainParenOptions(depth - 1),
                    _ => Phase::ExplainParenOptions(depth),
                };
            }
            Phase::Body => self.push_head(tok),
        }
    }

    /// Keep `tok` if the head has room; recognize `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    fn push_head(&mut self, tok: Tok<'a>) {
        if self.head_len == HEAD_LEN {
            return;
        }
        self.head[self.head_len] = tok;
        self.head_len += 1;
        if self.lead_paren || self.explain || !self.head(0).is_kw("create") {
            return;
        }
        let routine = ["function", "procedure"];
        self.routine |= match self.head_len {
            2 => self.head(1).is_any_kw(&routine),
            4 => {
                self.head(1).is_kw("or")
                    && self.head(2).is_kw("replace")
                    && self.head(3).is_any_kw(&routine)
            }
            _ => false,
        };
    }

    /// The statement's classification; `None` for an empty statement.
    fn finish(&self) -> Option<StatementClass> {
        if self.tokens == 0 {
            return None;
        }
        let first = self.head(0);
        let read_kind = first.is_any_kw(&["select", "with", "values", "table"])
            || (!self.lead_paren && !self.explain && first.is_kw("show"));
        let read_only = read_kind
            && !(self.locking || self.into || self.dml || self.writing_call || self.pg_temp);
        let pins_by_kind = if self.lead_paren {
            false
        } else if read_kind {
            self.into_temp || (self.into && self.pg_temp)
        } else if first.is_kw("set") {
            !self
                .head(1)
                .is_any_kw(&["local", "transaction", "constraints"])
        } else if first.is_any_kw(&["listen", "load", "lock"]) {
            true
        } else if first.is_kw("prepare") {
            !self.is_prepare_transaction()
        } else if first.is_kw("declare") {
            self.with_hold
        } else if first.is_kw("create") {
            self.pg_temp || self.creates_temp()
        } else {
            false
        };
        let tx = if self.explain || self.lead_paren {
            TxEffect::None
        } else {
            self.tx_effect()
        };
        let may_commit = !self.lead_paren && !self.explain && first.is_any_kw(&["call", "do"]);
        let quiet = !self.lead_paren
            && !self.explain
            && first.is_any_kw(NON_WRITING)
            && !self.is_prepare_transaction()
            && !self.writing_call;
        Some(StatementClass {
            read_only,
            pins_session: self.pinning_call || pins_by_kind,
            tx,
            may_commit,
            writes: !read_only && !quiet,
        })
    }

    /// `PREPARE TRANSACTION 'id'` (as opposed to preparing a statement).
    fn is_prepare_transaction(&self) -> bool {
        self.head(0).is_kw("prepare")
            && self.head(1).is_kw("transaction")
            && self.head(2).kind == Kind::Str
    }

    /// `CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY ...`.
    fn creates_temp(&self) -> bool {
        self.head[1..self.head_len]
            .iter()
            .find(|t| !t.is_any_kw(&["or", "replace", "global", "local"]))
            .is_some_and(|t| t.is_any_kw(&["temp", "temporary"]))
    }

    /// Transaction-control effect of this statement alone.
    fn tx_effect(&self) -> TxEffect {
        let first = self.head(0);
        if first.is_kw("begin") {
            return TxEffect::Begin;
        }
        if first.is_kw("start") {
            return if self.head(1).is_kw("transaction") {
                TxEffect::Begin
            } else {
                TxEffect::None
            };
        }
        if self.is_prepare_transaction() {
            return TxEffect::Commit;
        }
        if !first.is_any_kw(&["commit", "end", "rollback", "abort"]) {
            return TxEffect::None;
        }
        if first.is_any_kw(&["commit", "rollback"]) && self.head(1).is_kw("prepared") {
            return TxEffect::None;
        }
        let mut i = 1;
        if self.head(i).is_any_kw(&["work", "transaction"]) {
            i += 1;
        }
        if first.is_kw("rollback") && self.head(i).is_kw("to") {
            return TxEffect::None;
        }
        if self.head(i).is_kw("and") && self.head(i + 1).is_kw("chain") {
            TxEffect::Begin
        } else if first.is_any_kw(&["rollback", "abort"]) {
            TxEffect::Rollback
        } else {
            TxEffect::Commit
        }
    }
}

/// A quick test that rejects most names (column names, keywords before `(`) without a
/// search of a sorted function list: the shortest and longest names of the list, and a bit
/// per ASCII letter that starts one of them, computed at compile time.
#[derive(Debug, Clone, Copy)]
struct NameFilter {
    /// Length of the shortest listed name.
    min: usize,
    /// Length of the longest listed name.
    max: usize,
    /// Bit `c - 'a'` is set when some listed name starts with the letter `c`.
    letters: u32,
}

impl NameFilter {
    /// The filter of `list` (lower-case names, each starting with a letter).
    const fn new(list: &[&str]) -> NameFilter {
        let mut min = usize::MAX;
        let mut max = 0;
        let mut letters = 0u32;
        let mut i = 0;
        while i < list.len() {
            let name = list[i].as_bytes();
            if name.len() < min {
                min = name.len();
            }
            if name.len() > max {
                max = name.len();
            }
            letters |= 1 << (name[0] - b'a');
            i += 1;
        }
        NameFilter { min, max, letters }
    }

    /// Whether some listed name could be `name` (in any case): its length is in the list's
    /// range and its first letter starts some listed name.
    fn may_contain(&self, name: &str) -> bool {
        let Some(&first) = name.as_bytes().first() else {
            return false;
        };
        let first = first.to_ascii_lowercase();
        (self.min..=self.max).contains(&name.len())
            && first.is_ascii_lowercase()
            && self.letters & (1 << (first - b'a')) != 0
    }
}

/// The quick filter of [`DEFAULT_WRITING_FUNCTIONS`].
const FILTER: NameFilter = NameFilter::new(DEFAULT_WRITING_FUNCTIONS);

/// Whether some name of [`DEFAULT_WRITING_FUNCTIONS`] could be `name` (see [`NameFilter`]).
fn may_be_listed(name: &str) -> bool {
    FILTER.may_contain(name)
}

/// Is `name` in the sorted lower-case `list`? Unquoted names compare case-insensitively.
fn is_listed(list: &[&str], name: &str, exact: bool) -> bool {
    list.binary_search_by(|listed| {
        if exact {
            listed.as_bytes().cmp(name.as_bytes())
        } else {
            listed
                .bytes()
                .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
        }
    })
    .is_ok()
}

/// The statements seen so far (the batch rules, shared by both dialects).
#[derive(Debug)]
struct Batch {
    /// Non-empty statements.
    statements: usize,
    /// Every statement so far is read-only.
    all_read_only: bool,
    /// Some statement pins the session.
    pins_session: bool,
    /// The last transaction-control effect.
    tx: TxEffect,
    /// Some statement may commit part of its work before it fails (`CALL`, `DO` on
    /// PostgreSQL; see each dialect).
    may_commit: bool,
    /// Some statement may change data.
    writes: bool,
    /// Some statement is transaction control.
    tx_control: bool,
    /// Some statement opens a transaction (`BEGIN`, `START TRANSACTION`, `COMMIT AND
    /// CHAIN`).
    opens_tx: bool,
}

impl Batch {
    /// No statement yet.
    fn new() -> Batch {
        Batch {
            statements: 0,
            all_read_only: true,
            pins_session: false,
            tx: TxEffect::None,
            may_commit: false,
            writes: false,
            tx_control: false,
            opens_tx: false,
        }
    }

    /// Add a finished statement.
    fn push(&mut self, class: Option<StatementClass>) {
        let Some(class) = class else { return };
        self.statements += 1;
        self.may_commit |= class.may_commit;
        self.writes |= class.writes;
        self.all_read_only &= class.read_only;
        self.pins_session |= class.pins_session;
        if class.tx != TxEffect::None {
            self.tx = class.tx;
            self.tx_control = true;
            self.opens_tx |= class.tx == TxEffect::Begin;
        }
    }

    /// The classification of the whole text: read-only when every (and at least one)
    /// statement is; the last transaction-control statement decides `tx`; atomic for
    /// exactly one statement that cannot commit and is no transaction control.
    fn finish(self) -> Classification {
        Classification {
            read_only: self.statements > 0 && self.all_read_only,
            pins_session: self.pins_session,
            tx: self.tx,
            atomic: self.statements == 1 && !self.may_commit && self.tx == TxEffect::None,
            writes: self.writes,
            tx_unsure: self.statements > 1 && self.tx_control,
            opens_tx: self.statements > 1 && self.opens_tx,
        }
    }

    /// The text cannot be read: primary, no transaction effect (the server rejects the
    /// text before running it), pinning as far as seen (`stmt_pins`: the unfinished
    /// statement pins).
    fn malformed(self, stmt_pins: bool) -> Classification {
        Classification {
            read_only: false,
            pins_session: self.pins_session || stmt_pins,
            tx: TxEffect::None,
            atomic: false,
            writes: true,
            tx_unsure: self.tx_control,
            opens_tx: self.opens_tx,
        }
    }
}

pub(crate) mod cache;
pub(crate) mod mysql;

/// Classifies `sql` with the rules of `backend` (PostgreSQL's unless MySQL).
pub(crate) fn classify_for(
    backend: crate::BackendKind,
    sql: &str,
    extra_writing_functions: &[String],
) -> Classification {
    match backend {
        crate::BackendKind::Mysql => mysql::classify(sql, extra_writing_functions),
        _ => classify(sql, extra_writing_functions),
    }
}

/// The assertions both classifiers' tests use, over `$classify` (`classify(sql, extra)`):
/// `class`, `read`, `write`, `pin`, `no_pin`, `tx`, `atomic`, `writes`, `exactly`,
/// `fuzz_pieces`.
#[cfg(test)]
macro_rules! classification_assertions {
    ($classify:path) => {
        fn class(sql: &str) -> Classification {
            $classify(sql, &[])
        }

        #[track_caller]
        fn read(sql: &str) {
            assert!(class(sql).read_only, "expected read-only: {sql}");
        }

        #[track_caller]
        fn write(sql: &str) {
            assert!(!class(sql).read_only, "expected not read-only: {sql}");
        }

        #[track_caller]
        fn pin(sql: &str) {
            assert!(class(sql).pins_session, "expected a pin: {sql}");
        }

        #[track_caller]
        fn no_pin(sql: &str) {
            assert!(!class(sql).pins_session, "expected no pin: {sql}");
        }

        #[track_caller]
        fn tx(sql: &str, expected: TxEffect) {
            assert_eq!(class(sql).tx, expected, "tx effect of: {sql}");
        }

        #[track_caller]
        fn atomic(sql: &str, expected: bool) {
            assert_eq!(class(sql).atomic, expected, "atomicity of: {sql}");
        }

        #[track_caller]
        fn writes(sql: &str, expected: bool) {
            assert_eq!(class(sql).writes, expected, "writes of: {sql}");
        }

        /// `iterations` texts of up to 23 random `pieces` (a fixed xorshift sequence):
        /// none panics, and a read-only verdict never comes with session effects or a
        /// write.
        fn fuzz_pieces(pieces: &[&str], extra: &[String], iterations: usize) {
            let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            for _ in 0..iterations {
                let len = (next() % 24) as usize;
                let mut sql = String::new();
                for _ in 0..len {
                    sql.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                }
                let c = $classify(&sql, extra);
                if c.read_only {
                    assert_eq!(c.tx, TxEffect::None, "{sql:?}");
                    assert!(!c.pins_session, "{sql:?}");
                    assert!(!c.writes, "{sql:?}");
                }
            }
        }

        #[track_caller]
        fn exactly(sql: &str, read_only: bool, pins_session: bool, tx: TxEffect) {
            let got = class(sql);
            assert_eq!(
                (got.read_only, got.pins_session, got.tx),
                (read_only, pins_session, tx),
                "classification of: {sql}"
            );
        }
    };
}
#[cfg(test)]
pub(crate) use classification_assertions;

/// What both classifiers' tests check of their function lists, and long inputs.
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
