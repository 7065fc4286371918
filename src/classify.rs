//! Statement classification for routing (STUB: the contract; a helper writes the real classifier).

/// What a batch of SQL does to the session's transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxEffect {
    /// No transaction-control statement (or the batch opens and closes one).
    None,
    /// After the batch a transaction is open (BEGIN, START TRANSACTION, COMMIT AND CHAIN).
    Begin,
    /// After the batch no transaction is open (COMMIT, ROLLBACK, END, ABORT, PREPARE TRANSACTION).
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

/// The functions that write (or take locks / change session state) even inside a SELECT.
pub const DEFAULT_WRITING_FUNCTIONS: &[&str] = &[
    "nextval",
    "setval",
    "pg_notify",
    "txid_current",
    "set_config",
];

/// Classify `sql`. `extra_writing_functions` are lower-case function names added by the user.
pub(crate) fn classify(sql: &str, extra_writing_functions: &[String]) -> Classification {
    let s = sql.trim_start().to_ascii_lowercase();
    let first = s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    let tx = match first {
        "begin" | "start" => TxEffect::Begin,
        "commit" | "rollback" | "end" | "abort" => TxEffect::End,
        _ => TxEffect::None,
    };
    let writes_fn = DEFAULT_WRITING_FUNCTIONS
        .iter()
        .copied()
        .chain(extra_writing_functions.iter().map(|s| s.as_str()))
        .any(|f| s.contains(&format!("{f}(")));
    let read_only = matches!(first, "select" | "with" | "values" | "table" | "show")
        && !s.contains(" for update")
        && !s.contains(" for share")
        && !s.contains(" for no key update")
        && !s.contains(" for key share")
        && !writes_fn;
    let pins_session = matches!(first, "set" | "listen" | "prepare" | "lock" | "declare")
        || s.contains("temporary")
        || s.contains("temp table")
        || s.contains("pg_advisory")
        || s.contains("set_config(");
    Classification {
        read_only,
        pins_session,
        tx,
    }
}
