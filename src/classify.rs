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
//! - [`TxEffect::End`]: `COMMIT`, `END`, `ROLLBACK`, `ABORT` (with optional `WORK`/
//!   `TRANSACTION`, `AND NO CHAIN`), `PREPARE TRANSACTION 'id'`; so `BEGIN; ...; COMMIT`
//!   is `End`;
//! - no effect: `SAVEPOINT`, `RELEASE [SAVEPOINT]`, `ROLLBACK [WORK|TRANSACTION] TO ...`,
//!   `COMMIT PREPARED`, `ROLLBACK PREPARED`, `EXPLAIN`, everything else.
//!
//! Text the tokenizer cannot read is rejected by the server before anything runs, so it
//! gets [`TxEffect::None`] (its `pins_session` is still reported, which is harmless).

/// What a batch of SQL does to the session's transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxEffect {
    /// No transaction-control statement that changes the state (none at all, or only
    /// savepoints, `COMMIT PREPARED` and the like).
    None,
    /// After the batch a transaction is open (BEGIN, START TRANSACTION, COMMIT AND CHAIN).
    Begin,
    /// After the batch no transaction is open (COMMIT, ROLLBACK, END, ABORT, PREPARE
    /// TRANSACTION; also `BEGIN; ...; COMMIT`).
    End,
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
    let mut lexer = Lexer { src: sql, pos: 0 };
    let mut stmt = Statement::new();
    let mut batch = Batch {
        statements: false,
        all_read_only: true,
        pins_session: false,
        tx: TxEffect::None,
    };
    loop {
        let tok = match lexer.next_token() {
            Ok(Some(tok)) => tok,
            Ok(None) => break,
            Err(Malformed) => return batch.malformed(stmt),
        };
        if tok.kind == Kind::Semicolon && stmt.depth == 0 && stmt.atomic_depth == 0 {
            batch.push(stmt.finish());
            stmt = Statement::new();
        } else if stmt.feed(tok, extra_writing_functions).is_err() {
            return batch.malformed(stmt);
        }
    }
    if stmt.depth != 0 {
        return batch.malformed(stmt);
    }
    batch.push(stmt.finish());
    Classification {
        read_only: batch.statements && batch.all_read_only,
        pins_session: batch.pins_session,
        tx: batch.tx,
    }
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
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                    self.pos += 1;
                    continue;
                }
                b'-' if next == Some(b'-') => {
                    self.pos = b[start..]
                        .iter()
                        .position(|&c| c == b'\n' || c == b'\r')
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

    /// Skip a (nesting) `/* ... */` comment starting at `self.pos`.
    fn skip_block_comment(&mut self) -> Result<(), Malformed> {
        let b = self.src.as_bytes();
        let mut i = self.pos + 2;
        let mut depth = 1u32;
        while depth > 0 {
            match (b.get(i), b.get(i + 1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                }
                (Some(_), _) => i += 1,
                (None, _) => return Err(Malformed),
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
}

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
        if is_listed(DEFAULT_WRITING_FUNCTIONS, name, exact)
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
        if is_listed(SESSION_PINNING_FUNCTIONS, name, exact) {
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
        Some(StatementClass {
            read_only,
            pins_session: self.pinning_call || pins_by_kind,
            tx,
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
            return TxEffect::End;
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
        } else {
            TxEffect::End
        }
    }
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

/// The statements seen so far.
#[derive(Debug)]
struct Batch {
    /// At least one non-empty statement.
    statements: bool,
    /// Every statement so far is read-only.
    all_read_only: bool,
    /// Some statement pins the session.
    pins_session: bool,
    /// The last transaction-control effect.
    tx: TxEffect,
}

impl Batch {
    /// Add a finished statement.
    fn push(&mut self, class: Option<StatementClass>) {
        let Some(class) = class else { return };
        self.statements = true;
        self.all_read_only &= class.read_only;
        self.pins_session |= class.pins_session;
        if class.tx != TxEffect::None {
            self.tx = class.tx;
        }
    }

    /// The text cannot be read: primary, no transaction effect (the server rejects the
    /// whole text before running any of it), pinning as far as seen.
    fn malformed(self, stmt: Statement<'_>) -> Classification {
        let stmt_pins = stmt.finish().is_some_and(|c| c.pins_session);
        Classification {
            read_only: false,
            pins_session: self.pins_session || stmt_pins,
            tx: TxEffect::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(sql: &str) -> Classification {
        classify(sql, &[])
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
    fn exactly(sql: &str, read_only: bool, pins_session: bool, tx: TxEffect) {
        assert_eq!(
            class(sql),
            Classification {
                read_only,
                pins_session,
                tx
            },
            "classification of: {sql}"
        );
    }

    // ---- function lists -------------------------------------------------------------

    #[test]
    fn writing_functions_sorted_unique_lowercase() {
        for pair in DEFAULT_WRITING_FUNCTIONS.windows(2) {
            assert!(pair[0] < pair[1], "not sorted/unique: {pair:?}");
        }
        for pair in SESSION_PINNING_FUNCTIONS.windows(2) {
            assert!(pair[0] < pair[1], "not sorted/unique: {pair:?}");
        }
        for f in DEFAULT_WRITING_FUNCTIONS {
            assert!(
                f.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{f}"
            );
        }
        for f in SESSION_PINNING_FUNCTIONS {
            assert!(
                DEFAULT_WRITING_FUNCTIONS.contains(f),
                "{f} must also be writing"
            );
        }
    }

    #[test]
    fn required_functions_are_listed() {
        for f in [
            "nextval",
            "setval",
            "currval",
            "lastval",
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
            "pg_advisory_xact_lock",
            "pg_advisory_xact_lock_shared",
            "pg_try_advisory_xact_lock",
            "pg_try_advisory_xact_lock_shared",
            "pg_advisory_unlock",
            "pg_advisory_unlock_shared",
            "pg_advisory_unlock_all",
            "pg_notify",
            "txid_current",
            "pg_current_xact_id",
            "txid_current_if_assigned",
            "pg_current_xact_id_if_assigned",
            "set_config",
            "lo_create",
            "lo_creat",
            "lo_import",
            "lo_unlink",
            "lo_put",
            "lo_from_bytea",
            "lo_truncate",
            "pg_create_restore_point",
            "pg_switch_wal",
            "pg_create_logical_replication_slot",
            "pg_create_physical_replication_slot",
            "pg_drop_replication_slot",
            "pg_logical_slot_get_changes",
            "pg_replication_origin_create",
            "dblink_exec",
            "pg_stat_reset",
            "pg_stat_reset_shared",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
        ] {
            assert!(is_listed(DEFAULT_WRITING_FUNCTIONS, f, true), "{f}");
        }
    }

    #[test]
    fn every_listed_function_makes_a_select_a_write() {
        for f in DEFAULT_WRITING_FUNCTIONS {
            let pins = SESSION_PINNING_FUNCTIONS.contains(f);
            for sql in [
                format!("SELECT {f}(1)"),
                format!("SELECT {}(1)", f.to_ascii_uppercase()),
                format!("SELECT pg_catalog.{f} (1)"),
                format!("SELECT \"pg_catalog\".\"{f}\"(1)"),
                format!("SELECT * FROM t WHERE x = {f} /* c */ (1)"),
            ] {
                exactly(&sql, false, pins, TxEffect::None);
            }
            read(&format!("SELECT {f} FROM t"));
            read(&format!("SELECT \"{f}\" FROM t"));
            read(&format!("SELECT '{f}(1)'"));
            read(&format!("SELECT \"{}\"(1)", f.to_ascii_uppercase()));
        }
    }

    // ---- empty input ------------------------------------------------------------------

    #[test]
    fn empty_and_comment_only_text() {
        for sql in [
            "",
            "   \n\t",
            ";",
            " ; ;; ",
            "-- just a comment",
            "/* block */",
            "/* nested /* block */ still */ -- and a line\n;",
        ] {
            exactly(sql, false, false, TxEffect::None);
        }
    }

    // ---- reads ------------------------------------------------------------------------

    #[test]
    fn plain_reads() {
        for sql in [
            "SELECT 1",
            "select 1;",
            "  SeLeCt 1  ; ",
            "SELECT * FROM users WHERE id = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1), (2)",
            "TABLE users",
            "SHOW search_path",
            "show transaction isolation level",
            "SHOW ALL",
            "(SELECT 1) UNION (SELECT 2)",
            "((SELECT 1)) EXCEPT (((SELECT 2)))",
            "(VALUES (1)) UNION ALL (TABLE t)",
            "SELECT count(*) FROM t GROUP BY a HAVING count(*) > 1 ORDER BY 1 LIMIT 10 OFFSET 5",
            "SELECT substring(name FROM 1 FOR 3) FROM users",
            "SELECT overlay('abc' placing 'x' from 2 for 1)",
            "SELECT * FROM generate_series(1, 10) WITH ORDINALITY",
            "SELECT now(), current_setting('search_path'), pg_is_in_recovery()",
            "SELECT 1; SELECT 2;",
        ] {
            exactly(sql, true, false, TxEffect::None);
        }
    }

    #[test]
    fn diesel_shaped_sql() {
        read(
            r#"SELECT "users"."id", "users"."name" FROM "users" WHERE ("users"."id" = $1) LIMIT $2"#,
        );
        read(
            r#"SELECT EXISTS (SELECT "users"."id" FROM "users" WHERE ("users"."name" = $1)) AS "exists""#,
        );
        read(r#"SELECT COUNT(*) FROM "users""#);
        read(r#"SELECT "users"."id" FROM "users" WHERE ("users"."id" = ANY($1))"#);
        read(r#"(SELECT "users"."name" FROM "users") UNION (SELECT "posts"."title" FROM "posts")"#);
        read(
            r#"SELECT "users"."id" FROM ("users" INNER JOIN "posts" ON ("posts"."user_id" = "users"."id")) ORDER BY "users"."id" DESC"#,
        );
        read(
            r#"WITH "recent" AS (SELECT "posts"."id" FROM "posts" WHERE ("posts"."created_at" > $1)) SELECT COUNT(*) FROM "recent""#,
        );
        for lock in [
            "FOR UPDATE",
            "FOR NO KEY UPDATE",
            "FOR SHARE",
            "FOR KEY SHARE",
            "FOR UPDATE NOWAIT",
            "FOR UPDATE SKIP LOCKED",
            r#"FOR NO KEY UPDATE OF "users" SKIP LOCKED"#,
            r#"FOR KEY SHARE OF "users", "posts" NOWAIT"#,
            "FOR UPDATE OF t FOR SHARE OF u",
        ] {
            exactly(
                &format!(
                    r#"SELECT "users"."id", "users"."name" FROM "users" WHERE ("users"."id" = $1) LIMIT $2 {lock}"#
                ),
                false,
                false,
                TxEffect::None,
            );
        }
        exactly(
            r#"INSERT INTO "users" ("name") VALUES ($1) RETURNING "users"."id", "users"."name""#,
            false,
            false,
            TxEffect::None,
        );
        write(
            r#"INSERT INTO "users" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name""#,
        );
        write(r#"INSERT INTO "users" ("name") VALUES ($1) ON CONFLICT DO NOTHING"#);
        write(r#"UPDATE "users" SET "name" = $1 WHERE ("users"."id" = $2) RETURNING "users"."id""#);
        write(r#"DELETE FROM "users" WHERE ("users"."id" = $1)"#);
        write(r#"SELECT nextval('"users_id_seq"')"#);
    }

    #[test]
    fn diesel_transaction_manager_sql() {
        exactly("BEGIN", false, false, TxEffect::Begin);
        exactly(
            "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
            false,
            false,
            TxEffect::Begin,
        );
        exactly("COMMIT", false, false, TxEffect::End);
        exactly("ROLLBACK", false, false, TxEffect::End);
        exactly("SAVEPOINT diesel_savepoint_1", false, false, TxEffect::None);
        exactly(
            "RELEASE SAVEPOINT diesel_savepoint_1",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
            false,
            false,
            TxEffect::None,
        );
    }

    // ---- locking clauses --------------------------------------------------------------

    #[test]
    fn locking_clause_anywhere_is_a_write() {
        write("SELECT * FROM (SELECT * FROM t FOR UPDATE) s");
        write("SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)");
        write("WITH x AS (SELECT * FROM t FOR NO KEY UPDATE) SELECT * FROM x");
        write("WITH x AS MATERIALIZED (SELECT * FROM t FOR KEY SHARE) SELECT * FROM x");
        write("(SELECT * FROM t FOR UPDATE) UNION ALL (SELECT * FROM u)");
        write("select * from t for update");
        write("SELECT * FROM t\nFOR\n\tUPDATE");
        write("SELECT * FROM t FOR /* comment */ UPDATE");
        write("SELECT * FROM t FOR -- comment\n SHARE");
        write("SELECT 1for update");
    }

    #[test]
    fn locking_words_inside_literals_and_comments_do_not_count() {
        read("SELECT 'FOR UPDATE'");
        read("SELECT 'x FOR UPDATE y' FROM t");
        read("SELECT * FROM t -- FOR UPDATE");
        read("SELECT * FROM t /* FOR UPDATE */");
        read("SELECT * FROM t /* outer /* inner */ FOR UPDATE */");
        read("SELECT $$ FOR UPDATE $$");
        read("SELECT $tag$ FOR SHARE $tag$ FROM t");
        read("SELECT $a$ $b$ FOR UPDATE $b$ $a$");
        read(r#"SELECT "FOR UPDATE" FROM t"#);
        read(r#"SELECT "for", "update" FROM t"#);
        read("SELECT E'\\' FOR UPDATE' FROM t");
        read("SELECT U&'FOR UPDATE'");
    }

    // ---- data-modifying statements and CTEs ------------------------------------------

    #[test]
    fn data_modifying_ctes_are_writes() {
        for sql in [
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i",
            "WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT count(*) FROM u",
            "WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT * FROM m",
            "WITH RECURSIVE r AS (SELECT 1), d AS (DELETE FROM t) SELECT * FROM r",
            "WITH d AS MATERIALIZED (DELETE FROM t RETURNING *) SELECT * FROM d",
            "WITH d AS NOT MATERIALIZED (delete from t returning *) SELECT * FROM d",
            "WITH d(a, b) AS (INSERT INTO t SELECT 1, 2 RETURNING a, b) SELECT * FROM d",
            "WITH a AS (WITH b AS (UPDATE t SET x = 1 RETURNING x) SELECT * FROM b) SELECT * FROM a",
            "SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "WITH x AS (SELECT 1) UPDATE t SET a = 1",
            "WITH x AS (SELECT 1) DELETE FROM t",
            "WITH x AS (SELECT 1) MERGE INTO t USING x ON true WHEN MATCHED THEN DO NOTHING",
        ] {
            exactly(sql, false, false, TxEffect::None);
        }
    }

    #[test]
    fn plain_ctes_and_lookalike_names_are_reads() {
        read("WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 100) SELECT sum(n) FROM t");
        read("WITH a AS MATERIALIZED (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM a, b");
        read("WITH RECURSIVE x AS (SELECT 1) SEARCH DEPTH FIRST BY a SET o SELECT * FROM x");
        read(r#"SELECT "update", "delete", "insert", "merge" FROM t"#);
        read("SELECT t.update, t.delete FROM t");
        read("SELECT 1 AS update, 2 AS delete");
        read("SELECT * FROM update_log WHERE deleted_at IS NULL AND inserted > 0");
        read("SELECT 'INSERT INTO t VALUES (1)'");
        read("SELECT $$DELETE FROM t$$");
    }

    #[test]
    fn unquoted_dml_keyword_as_a_name_is_conservatively_a_write() {
        write("SELECT update FROM t");
    }

    #[test]
    fn dml_and_other_statements_are_writes() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (1) RETURNING *",
            "UPDATE t SET a = 1 RETURNING a",
            "DELETE FROM t RETURNING id",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
            "CREATE TABLE t (id int)",
            "CREATE UNLOGGED TABLE t (id int)",
            "CREATE TABLE t AS SELECT 1",
            "CREATE MATERIALIZED VIEW v AS SELECT 1",
            "CREATE INDEX ON t (a)",
            "ALTER TABLE t ADD COLUMN b int",
            "DROP TABLE t",
            "TRUNCATE t",
            "CALL p(1)",
            "DO $$ BEGIN PERFORM 1; END $$",
            "COPY t TO STDOUT",
            "COPY (SELECT 1) TO STDOUT",
            "VACUUM t",
            "ANALYZE t",
            "CLUSTER t",
            "REINDEX TABLE t",
            "REFRESH MATERIALIZED VIEW v",
            "NOTIFY ch, 'x'",
            "GRANT SELECT ON t TO r",
            "REVOKE SELECT ON t FROM r",
            "COMMENT ON TABLE t IS 'x'",
            "SECURITY LABEL ON TABLE t IS 'x'",
            "CHECKPOINT",
            "EXECUTE p(1)",
            "FETCH 10 FROM c",
            "MOVE NEXT IN c",
            "CLOSE c",
            "DEALLOCATE p",
            "DEALLOCATE ALL",
            "UNLISTEN *",
            "RESET ALL",
            "DISCARD ALL",
            "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
            "frobnicate the database",
            "$1",
            "'SELECT 1'",
            "\"select\" 1",
        ] {
            exactly(sql, false, false, TxEffect::None);
        }
    }

    // ---- SELECT INTO -------------------------------------------------------------------

    #[test]
    fn select_into() {
        exactly("SELECT * INTO new_t FROM t", false, false, TxEffect::None);
        exactly(
            "SELECT * INTO TABLE new_t FROM t",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT * INTO UNLOGGED new_t FROM t",
            false,
            false,
            TxEffect::None,
        );
        exactly("SELECT * INTO TEMP t2 FROM t", false, true, TxEffect::None);
        exactly(
            "SELECT * INTO TEMPORARY TABLE t2 FROM t",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "select * into local temp t2 from t",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT * INTO GLOBAL TEMPORARY t2 FROM t",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT * INTO pg_temp.t2 FROM t",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "WITH x AS (SELECT 1 AS a) SELECT a INTO TEMP t2 FROM x",
            false,
            true,
            TxEffect::None,
        );
        exactly("(SELECT 1 INTO t2)", false, false, TxEffect::None);
        read("SELECT 'INTO TEMP' FROM t");
        read(r#"SELECT "into" FROM t"#);
        no_pin("INSERT INTO temp VALUES (1)");
        no_pin("INSERT INTO TEMP SELECT 1");
    }

    // ---- writing functions -------------------------------------------------------------

    #[test]
    fn writing_function_calls() {
        exactly("SELECT nextval('s')", false, false, TxEffect::None);
        write("SELECT NEXTVAL ('s')");
        write("SELECT NextVal\n(\n's')");
        write("SELECT nextval -- comment\n ('s')");
        write("SELECT pg_catalog.nextval('s')");
        write("SELECT pg_catalog . nextval ('s')");
        write(r#"SELECT "pg_catalog"."nextval"('s')"#);
        write(r#"SELECT "nextval"('s')"#);
        write("SELECT id, nextval('s') FROM t");
        write("SELECT * FROM t WHERE id = (SELECT max(nextval('s')))");
        write("VALUES (nextval('s'))");
        write("SELECT * FROM nextval('s')");
        write("SELECT setval('s', 1)");
        exactly("SELECT currval('s')", false, false, TxEffect::None);
        exactly("SELECT lastval()", false, false, TxEffect::None);
        write("SELECT pg_notify('ch', 'x')");
        write("SELECT txid_current()");
        write("SELECT pg_current_xact_id()");
        write("SELECT txid_current_if_assigned()");
        write("SELECT lo_create(0)");
        write("SELECT lo_from_bytea(0, 'x')");
        write("SELECT pg_stat_reset()");
        write("SELECT dblink_exec('conn', 'DELETE FROM t')");
        write("SELECT pg_terminate_backend(pid) FROM pg_stat_activity");
        write("SELECT pg_switch_wal()");
        write("SHOW x; SELECT nextval('s')");
    }

    #[test]
    fn function_names_in_other_positions_are_fine() {
        read(r#"SELECT "nextval" FROM t"#);
        read("SELECT nextval FROM t");
        read("SELECT t.nextval FROM t");
        read(r#"SELECT "NEXTVAL"('s')"#);
        read("SELECT 'nextval(' || x FROM t");
        read("SELECT $$nextval('s')$$");
        read("SELECT 1 /* nextval('s') */");
        read("SELECT 1 -- nextval('s')");
        read("SELECT nextvalue('s'), my_nextval('s'), nextval_x('s')");
        read("SELECT pg_advisory_lock_status(1)");
        read("SELECT * FROM pg_locks WHERE locktype = 'advisory'");
    }

    #[test]
    fn session_pinning_function_calls() {
        exactly("SELECT pg_advisory_lock(1)", false, true, TxEffect::None);
        exactly(
            "SELECT pg_advisory_lock_shared(1)",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT pg_try_advisory_lock(1, 2)",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT pg_try_advisory_lock_shared(1)",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT PG_CATALOG.PG_ADVISORY_LOCK(1)",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT pg_advisory_xact_lock(1)",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT pg_advisory_xact_lock_shared(1)",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT pg_try_advisory_xact_lock(1)",
            false,
            false,
            TxEffect::None,
        );
        exactly("SELECT pg_advisory_unlock(1)", false, false, TxEffect::None);
        exactly(
            "SELECT pg_advisory_unlock_all()",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT set_config('a.b', 'c', false)",
            false,
            true,
            TxEffect::None,
        );
        exactly(
            "SELECT set_config('a.b', 'c', true)",
            false,
            true,
            TxEffect::None,
        );
        exactly("SELECT setseed(0.5)", false, true, TxEffect::None);
        exactly(
            "SELECT dblink_connect('c', 'dbname=x')",
            false,
            true,
            TxEffect::None,
        );
        // Anywhere in any statement.
        pin("UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)");
        pin("INSERT INTO t SELECT set_config('x.y', '1', false)");
        no_pin("SELECT 'pg_advisory_lock(1)'");
    }

    #[test]
    fn user_extended_function_list() {
        let extra = vec!["audit_touch".to_owned(), "my.weird".to_owned()];
        let c = |sql: &str| classify(sql, &extra);
        assert!(class("SELECT audit_touch(1)").read_only);
        assert!(!c("SELECT audit_touch(1)").read_only);
        assert!(!c("SELECT AUDIT_TOUCH (1)").read_only);
        assert!(!c("SELECT app.audit_touch(1)").read_only);
        assert!(!c(r#"SELECT "audit_touch"(1)"#).read_only);
        assert!(c(r#"SELECT "AUDIT_TOUCH"(1)"#).read_only);
        assert!(c("SELECT audit_touch FROM t").read_only);
        assert!(c("SELECT audit_touched(1)").read_only);
        assert!(!c(r#"SELECT "my.weird"(1)"#).read_only);
        assert!(!c("SELECT audit_touch(1)").pins_session);
        // The defaults still apply.
        assert!(!c("SELECT nextval('s')").read_only);
    }

    #[test]
    fn unicode_escaped_identifiers() {
        read(r#"SELECT U&"col" FROM t"#);
        write(r#"SELECT U&"nextval"('s')"#);
        write(r#"SELECT U&"\006Eextval"('s')"#);
        write(r#"SELECT u&"!006Eextval" UESCAPE '!' ('s')"#);
        read(r#"SELECT U&"harmless"(1)"#);
        read(r#"SELECT U&'\0041' UESCAPE '\'"#.replace("'\\'", "'!'").as_str());
    }

    // ---- multiple statements ----------------------------------------------------------

    #[test]
    fn batches() {
        exactly("SELECT 1; SELECT 2", true, false, TxEffect::None);
        exactly(
            "SELECT 1; VALUES (2); TABLE t; SHOW x;",
            true,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT 1; INSERT INTO t VALUES (1)",
            false,
            false,
            TxEffect::None,
        );
        exactly("DELETE FROM t; SELECT 1", false, false, TxEffect::None);
        exactly("SELECT 1; SET x = 1", false, true, TxEffect::None);
        exactly("SELECT ';'; SELECT 2", true, false, TxEffect::None);
        exactly(
            "SELECT 'a;b'; SELECT \";\" FROM t",
            true,
            false,
            TxEffect::None,
        );
        exactly("SELECT $$;$$; SELECT 1", true, false, TxEffect::None);
        exactly(
            "SELECT 1 /* ; DELETE FROM t; */",
            true,
            false,
            TxEffect::None,
        );
        exactly("SELECT 1 -- ; DELETE FROM t", true, false, TxEffect::None);
        exactly(
            "SELECT 1 -- x\r; DELETE FROM t",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT 'a\\'; DELETE FROM t; --'",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "SELECT E'a\\'; DELETE FROM t; '",
            true,
            false,
            TxEffect::None,
        );
    }

    #[test]
    fn semicolons_inside_parentheses_do_not_split() {
        exactly(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); BEGIN)",
            false,
            false,
            TxEffect::None,
        );
    }

    // ---- transaction control ----------------------------------------------------------

    #[test]
    fn transaction_begin() {
        for sql in [
            "BEGIN",
            "begin;",
            "Begin Work",
            "BEGIN TRANSACTION",
            "BEGIN ISOLATION LEVEL REPEATABLE READ",
            "BEGIN READ ONLY",
            "START TRANSACTION",
            "start transaction read write",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            "COMMIT AND CHAIN",
            "COMMIT WORK AND CHAIN",
            "COMMIT TRANSACTION AND CHAIN",
            "END AND CHAIN",
            "ROLLBACK AND CHAIN",
            "ROLLBACK WORK AND CHAIN",
            "ABORT AND CHAIN",
        ] {
            exactly(sql, false, false, TxEffect::Begin);
        }
    }

    #[test]
    fn transaction_end() {
        for sql in [
            "COMMIT",
            "commit work",
            "COMMIT TRANSACTION",
            "COMMIT AND NO CHAIN",
            "END",
            "END WORK",
            "END TRANSACTION",
            "ROLLBACK",
            "ROLLBACK WORK",
            "ROLLBACK TRANSACTION AND NO CHAIN",
            "ABORT",
            "ABORT TRANSACTION",
            "PREPARE TRANSACTION 'tx-1'",
            "prepare transaction $$tx$$",
        ] {
            exactly(sql, false, false, TxEffect::End);
        }
    }

    #[test]
    fn transaction_neutral() {
        for sql in [
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "RELEASE a",
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK TO a",
            "ROLLBACK WORK TO SAVEPOINT a",
            "ROLLBACK TRANSACTION TO a",
            "COMMIT PREPARED 'tx-1'",
            "ROLLBACK PREPARED 'tx-1'",
            "SELECT 'BEGIN'",
            "SELECT 1 -- BEGIN",
            "START",
        ] {
            assert_eq!(class(sql).tx, TxEffect::None, "{sql}");
        }
    }

    #[test]
    fn last_transaction_statement_decides() {
        tx("BEGIN; SELECT 1; COMMIT", TxEffect::End);
        tx("BEGIN; INSERT INTO t VALUES (1); COMMIT;", TxEffect::End);
        tx("COMMIT; BEGIN", TxEffect::Begin);
        tx("BEGIN; SAVEPOINT a", TxEffect::Begin);
        tx(
            "BEGIN; SELECT 1; ROLLBACK TO SAVEPOINT a; RELEASE a",
            TxEffect::Begin,
        );
        tx("SELECT 1; ROLLBACK TO SAVEPOINT a", TxEffect::None);
        tx("COMMIT; SELECT 1", TxEffect::End);
        tx("BEGIN; COMMIT AND CHAIN", TxEffect::Begin);
        tx("BEGIN; COMMIT PREPARED 'x'", TxEffect::Begin);
        tx(
            "SELECT 'COMMIT'; BEGIN /* COMMIT */ -- COMMIT",
            TxEffect::Begin,
        );
        exactly("BEGIN; SELECT 1", false, false, TxEffect::Begin);
        exactly(
            "BEGIN; SET LOCAL x = 1; COMMIT",
            false,
            false,
            TxEffect::End,
        );
        exactly("BEGIN; SET x = 1; COMMIT", false, true, TxEffect::End);
    }

    #[test]
    fn begin_inside_bodies_is_not_transaction_control() {
        exactly(
            "DO $$ BEGIN PERFORM 1; END $$",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "DO $body$ BEGIN COMMIT; END $body$",
            false,
            false,
            TxEffect::None,
        );
        exactly("DO 'BEGIN NULL; END'", false, false, TxEffect::None);
        exactly(
            "DO LANGUAGE plpgsql $$BEGIN ROLLBACK; END;$$",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "CREATE FUNCTION f() RETURNS void AS $$ BEGIN UPDATE t SET a = 1; END; $$ LANGUAGE plpgsql",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $f$\nBEGIN\n  COMMIT;\nEND;\n$f$; SELECT 1",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            false,
            false,
            TxEffect::None,
        );
        exactly(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; BEGIN",
            false,
            false,
            TxEffect::Begin,
        );
        exactly(
            "create or replace procedure p() language sql begin atomic \
             insert into t values (1); \
             select case when true then 1 else 2 end; \
             end; commit",
            false,
            false,
            TxEffect::End,
        );
        exactly(
            "CREATE PROCEDURE p() BEGIN ATOMIC SELECT (CASE WHEN a THEN 1 END) FROM t; END; ROLLBACK",
            false,
            false,
            TxEffect::End,
        );
        // Outside a routine, `BEGIN` later in a statement never matters.
        exactly("SELECT begin FROM t; SELECT 1", true, false, TxEffect::None);
    }

    // ---- session pinning ---------------------------------------------------------------

    #[test]
    fn set_and_friends() {
        for sql in [
            "SET search_path = a, b",
            "set statement_timeout to 0",
            "SET SESSION statement_timeout = 0",
            "SET TIME ZONE 'UTC'",
            "SET ROLE admin",
            "SET SESSION ROLE admin",
            "SET SESSION AUTHORIZATION bob",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET x.y = 'z'",
            "LISTEN ch",
            "LOAD 'auto_explain'",
            "LOCK TABLE t",
            "LOCK t IN ACCESS EXCLUSIVE MODE",
            "PREPARE p AS SELECT 1",
            "PREPARE p (int) AS SELECT $1",
            "PREPARE transaction AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "DECLARE c BINARY INSENSITIVE SCROLL CURSOR WITH HOLD FOR SELECT * FROM t",
            "CREATE TEMP TABLE t (id int)",
            "CREATE TEMPORARY TABLE t AS SELECT 1",
            "CREATE GLOBAL TEMPORARY TABLE t (id int)",
            "CREATE LOCAL TEMP TABLE t (id int)",
            "create temp view v as select 1",
            "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
            "CREATE TEMPORARY RECURSIVE VIEW v(n) AS VALUES (1)",
            "CREATE TEMP SEQUENCE s",
            "CREATE TABLE pg_temp.t (id int)",
            r#"CREATE TABLE "pg_temp"."t" (id int)"#,
            "CREATE FUNCTION pg_temp.f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
            "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
        ] {
            let c = class(sql);
            assert!(c.pins_session && !c.read_only, "{sql}: {c:?}");
            assert_eq!(c.tx, TxEffect::None, "{sql}");
        }
    }

    #[test]
    fn statements_that_do_not_pin() {
        for sql in [
            "SET LOCAL search_path = a",
            "SET LOCAL ROLE admin",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
            "SET CONSTRAINTS ALL DEFERRED",
            "RESET search_path",
            "RESET ALL",
            "DISCARD ALL",
            "DISCARD TEMP",
            "UNLISTEN ch",
            "DEALLOCATE p",
            "DECLARE c CURSOR FOR SELECT 1",
            "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
            "CREATE TABLE t (id int)",
            "CREATE TABLE temp (id int)",
            "CREATE UNLOGGED TABLE t (id int)",
            "CREATE VIEW v AS SELECT 'TEMP'",
            "SELECT currval('s')",
            "SELECT lastval()",
            "ALTER TABLE t SET (fillfactor = 50)",
            "UPDATE t SET a = 1",
            "SELECT 'SET x = 1'",
            "EXECUTE p",
        ] {
            no_pin(sql);
        }
        exactly("PREPARE TRANSACTION 'x'", false, false, TxEffect::End);
    }

    #[test]
    fn pg_temp_references_stay_on_the_primary() {
        exactly("SELECT * FROM pg_temp.t", false, false, TxEffect::None);
        exactly(r#"SELECT * FROM "pg_temp".t"#, false, false, TxEffect::None);
        exactly("SELECT * FROM PG_TEMP_3.t", false, false, TxEffect::None);
        exactly(
            "CREATE TABLE pg_temp_12.t (a int)",
            false,
            true,
            TxEffect::None,
        );
        read("SELECT * FROM pg_temp_x.t");
        read("SELECT * FROM pg_temp_.t");
        read("SELECT * FROM pg_temporary.t");
        read(r#"SELECT * FROM "PG_TEMP".t"#);
        read("SELECT 'pg_temp.t'");
        read("SELECT pg_temp FROM t");
    }

    // ---- EXPLAIN -----------------------------------------------------------------------

    #[test]
    fn explain() {
        for sql in [
            "EXPLAIN SELECT 1",
            "explain analyze select * from t",
            "EXPLAIN ANALYSE VERBOSE SELECT 1",
            "EXPLAIN VERBOSE SELECT 1",
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1",
            "EXPLAIN (ANALYZE true, BUFFERS, COSTS off, SETTINGS on, FORMAT YAML) WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN (COSTS OFF) (SELECT 1) UNION (SELECT 2)",
            "EXPLAIN (SELECT 1)",
            "EXPLAIN ((SELECT 1))",
            "EXPLAIN () SELECT 1",
            "EXPLAIN VALUES (1)",
            "EXPLAIN TABLE t",
        ] {
            exactly(sql, true, false, TxEffect::None);
        }
        for sql in [
            "EXPLAIN INSERT INTO t VALUES (1)",
            "EXPLAIN ANALYZE DELETE FROM t",
            "EXPLAIN (ANALYZE) UPDATE t SET a = 1",
            "EXPLAIN (ANALYZE, BUFFERS) MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
            "EXPLAIN SELECT nextval('s')",
            "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE",
            "EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "EXPLAIN EXECUTE p",
            "EXPLAIN CREATE TABLE t AS SELECT 1",
            "EXPLAIN",
            "EXPLAIN ANALYZE",
            "EXPLAIN EXPLAIN SELECT 1",
            "EXPLAIN SHOW x",
            "EXPLAIN BEGIN",
        ] {
            exactly(sql, false, false, TxEffect::None);
        }
        pin("EXPLAIN ANALYZE SELECT pg_advisory_lock(1)");
    }

    // ---- tokenizer -----------------------------------------------------------------------

    #[test]
    fn string_literal_forms() {
        read("SELECT 'it''s; BEGIN; FOR UPDATE'");
        read("SELECT E'it\\'s; FOR UPDATE'");
        read("SELECT e'\\\\'");
        read("SELECT E'a''b; nextval(''s'')'");
        read("SELECT U&'d\\0061t\\+000061; FOR UPDATE'");
        read("SELECT u&'x''y; FOR UPDATE'");
        read("SELECT B'1010', b'1', X'1F', x'ff', N'national; FOR UPDATE'");
        read("SELECT 'a' 'b'");
        read("SELECT 'multi\nline\r\n; FOR UPDATE'");
        read("SELECT 'back\\slash'");
        // `be` is an identifier, then a plain string.
        read("SELECT be'x'");
        // A standard string ends at the first lone quote: the backslash is literal.
        write("SELECT 'a\\' FOR UPDATE");
    }

    #[test]
    fn dollar_quotes_and_parameters() {
        read("SELECT $$it's; FOR UPDATE$$");
        read("SELECT $x$ $$ ; nextval('s') $$ $x$");
        read("SELECT $_$ BEGIN $_$, $a1$ x $a1$");
        read("SELECT $1, $2::int, $10 FROM t WHERE a = $3");
        write("SELECT $1 FOR UPDATE");
        write("SELECT * FROM t WHERE a = $1 FOR SHARE");
        read("SELECT a$b, c$$d FROM t");
        read("SELECT $ä$ FOR UPDATE $ä$");
        read("SELECT 1$$x$$");
    }

    #[test]
    fn quoted_identifiers() {
        read(r#"SELECT "a""b; FOR UPDATE" FROM "t""; DELETE""#);
        read(r#"SELECT "it's" FROM t"#);
        read(r#"SELECT "select" FROM "from""#);
        read(r#"SELECT "'" FROM t WHERE x = '"'"#);
    }

    #[test]
    fn comments() {
        read("/* leading */ SELECT 1");
        read("-- leading\nSELECT 1");
        read("SELECT /* a /* nested */ b ; FOR UPDATE */ 1");
        read("SELECT 1 /* ' */ + 2 /* \" */");
        read("SELECT 1 -- ' unbalanced quote in comment");
        read("SELECT 2 -- /* not a block comment\n");
        read("SELECT 1 /*/ still a comment */");
        read("SELECT 4 */ 2");
        tx("/* a /* b */ c */ BEGIN", TxEffect::Begin);
        read("SELECT 1 --\n--\n");
    }

    #[test]
    fn tokens_without_whitespace_between() {
        write("SELECT * FROM t WHERE a = 'x'FOR UPDATE");
        write(r#"SELECT"nextval"('s')"#);
        write("SELECT(nextval('s'))");
        write("SELECT 1;INSERT INTO t VALUES(1)");
        read("SELECT/**/1");
        read("SELECT $$x$$FROM t");
        // `$` continues an identifier, as in PostgreSQL: this is one (unknown) word.
        write("SELECT$$x$$FROM t");
        read("WITH x AS(SELECT 1)TABLE x");
        tx("SELECT 1;BEGIN", TxEffect::Begin);
        tx("COMMIT/*x*/;SELECT 1", TxEffect::End);
    }

    #[test]
    fn numbers_and_operators() {
        read("SELECT 1.5e-3, 1e10, 0x1F, 0o17, 0b101, 1_000_000, .5, 5., 1::int");
        read("SELECT a[1:2], b->>'k', c @> '{}', d <-> e, f || g FROM t");
        read("SELECT 1 - -1, 2--3\n");
    }

    #[test]
    fn non_ascii_text() {
        read("SELECT 'ä; FOR UPDATE' FROM täble WHERE ñ = 'é'");
        read(r#"SELECT "ünïcödé" FROM "日本""#);
        read("SELECT ünïcode_ident FROM t");
        write("SELECT 1 FROM t WHERE name = 'é' FOR UPDATE");
        write("\u{feff}SELECT 1");
    }

    #[test]
    fn malformed_text_goes_to_the_primary_without_tx_effect() {
        for sql in [
            "SELECT 'abc",
            "SELECT E'abc\\'",
            "SELECT /* x",
            "SELECT /* x /* y */",
            r#"SELECT "x"#,
            "SELECT $$x",
            "SELECT $a$ x $b$",
            "SELECT (1",
            "SELECT 1)",
            "SELECT 1); SELECT (2",
            "BEGIN; SELECT 'x",
            "COMMIT; SELECT 1)",
        ] {
            exactly(sql, false, false, TxEffect::None);
        }
        exactly("SET x = 1; SELECT 'x", false, true, TxEffect::None);
    }

    #[test]
    fn fuzzed_input_never_panics() {
        let pieces = [
            "SELECT", " ", "'", "''", "E'", "\\", "$$", "$a$", "$1", "\"", "(", ")", ";", "--",
            "\n", "/*", "*/", "FOR", "UPDATE", "nextval", ".", "U&", "ä", "日", "BEGIN", "ATOMIC",
            "END", "CREATE", "FUNCTION", "EXPLAIN", "$", "e", "b", "&", "INTO", "TEMP", "WITH",
            "HOLD", "pg_temp", "x",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let extra = vec!["x".to_owned()];
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let mut sql = String::new();
            for _ in 0..len {
                sql.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let c = classify(&sql, &extra);
            // Whatever the text, a read-only verdict implies no session effects.
            if c.read_only {
                assert_eq!(c.tx, TxEffect::None, "{sql:?}");
                assert!(!c.pins_session, "{sql:?}");
            }
        }
    }

    #[test]
    fn long_input_is_linear() {
        let mut sql = String::from("SELECT ");
        for i in 0..50_000 {
            sql.push_str(&format!("\"c{i}\" + 'x''y' + $${i}$$ + "));
        }
        sql.push('1');
        read(&sql);
        sql.push_str(" FOR UPDATE");
        write(&sql);
    }
}
