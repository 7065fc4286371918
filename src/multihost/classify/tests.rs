use super::*;

use super::test_support::{
    assert_lowercase_names, assert_pinning_are_writing, assert_sorted_unique, long_select,
};

classification_assertions!(classify);

// ---- function lists -------------------------------------------------------------

#[test]
fn writing_functions_sorted_unique_lowercase() {
    assert_sorted_unique(DEFAULT_WRITING_FUNCTIONS);
    assert_sorted_unique(SESSION_PINNING_FUNCTIONS);
    assert_lowercase_names(DEFAULT_WRITING_FUNCTIONS);
    assert_pinning_are_writing(SESSION_PINNING_FUNCTIONS, DEFAULT_WRITING_FUNCTIONS);
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
    read(r#"SELECT "users"."id", "users"."name" FROM "users" WHERE ("users"."id" = $1) LIMIT $2"#);
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
    exactly("COMMIT", false, false, TxEffect::Commit);
    exactly("ROLLBACK", false, false, TxEffect::Rollback);
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
        "PREPARE TRANSACTION 'tx-1'",
        "prepare transaction $$tx$$",
    ] {
        exactly(sql, false, false, TxEffect::Commit);
    }
    for sql in [
        "ROLLBACK",
        "ROLLBACK WORK",
        "ROLLBACK TRANSACTION AND NO CHAIN",
        "ABORT",
        "ABORT TRANSACTION",
    ] {
        exactly(sql, false, false, TxEffect::Rollback);
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
    tx("BEGIN; SELECT 1; COMMIT", TxEffect::Commit);
    tx(
        "BEGIN; INSERT INTO t VALUES (1); ROLLBACK;",
        TxEffect::Rollback,
    );
    tx("COMMIT; BEGIN", TxEffect::Begin);
    tx("BEGIN; SAVEPOINT a", TxEffect::Begin);
    tx(
        "BEGIN; SELECT 1; ROLLBACK TO SAVEPOINT a; RELEASE a",
        TxEffect::Begin,
    );
    tx("SELECT 1; ROLLBACK TO SAVEPOINT a", TxEffect::None);
    tx("COMMIT; SELECT 1", TxEffect::Commit);
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
        TxEffect::Commit,
    );
    exactly("BEGIN; SET x = 1; COMMIT", false, true, TxEffect::Commit);
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
        TxEffect::Commit,
    );
    exactly(
        "CREATE PROCEDURE p() BEGIN ATOMIC SELECT (CASE WHEN a THEN 1 END) FROM t; END; ROLLBACK",
        false,
        false,
        TxEffect::Rollback,
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
    exactly("PREPARE TRANSACTION 'x'", false, false, TxEffect::Commit);
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
    tx("COMMIT/*x*/;SELECT 1", TxEffect::Commit);
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
        "SELECT", " ", "'", "''", "E'", "\\", "$$", "$a$", "$1", "\"", "(", ")", ";", "--", "\n",
        "/*", "*/", "FOR", "UPDATE", "nextval", ".", "U&", "ä", "日", "BEGIN", "ATOMIC", "END",
        "CREATE", "FUNCTION", "EXPLAIN", "$", "e", "b", "&", "INTO", "TEMP", "WITH", "HOLD",
        "pg_temp", "x",
    ];
    let extra = vec!["x".to_owned()];
    fuzz_pieces(&pieces, &extra, 20_000);
}

#[test]
fn long_input_is_linear() {
    let (plain, locking) = long_select(|i| format!("\"c{i}\" + 'x''y' + $${i}$$ + "));
    read(&plain);
    write(&locking);
}

// ---- what a read-only error proves ---------------------------------------------------

#[test]
fn only_a_single_statement_that_cannot_commit_is_atomic() {
    atomic("INSERT INTO t VALUES (1)", true);
    atomic("SELECT nextval('s')", true);
    atomic("UPDATE t SET a = f(a) RETURNING a", true);
    atomic("EXECUTE p(1)", true);
    atomic("SELECT 1;", true);
    // A procedure or DO block may COMMIT before it fails.
    atomic("CALL p_dup(61)", false);
    atomic("call p()", false);
    atomic(
        "DO $$ BEGIN INSERT INTO t VALUES (1); COMMIT; END $$",
        false,
    );
    // Several statements: an earlier one may have committed.
    atomic("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", false);
    atomic(
        "INSERT INTO t VALUES (1); COMMIT; SET TRANSACTION READ ONLY; INSERT INTO t VALUES (2)",
        false,
    );
    // Transaction control.
    atomic("COMMIT", false);
    atomic("BEGIN", false);
    atomic("ROLLBACK", false);
    // Unreadable text is never atomic.
    atomic("INSERT INTO t VALUES ('x)", false);
}

#[test]
fn the_quick_function_filter_lets_every_listed_name_through() {
    for name in DEFAULT_WRITING_FUNCTIONS
        .iter()
        .chain(SESSION_PINNING_FUNCTIONS)
    {
        assert!(may_be_listed(name), "{name}");
        assert!(may_be_listed(&name.to_uppercase()), "{name}");
    }
    for name in [
        "where", "in", "count", "coalesce", "exists", "values", "any", "lower",
    ] {
        if may_be_listed(name) {
            assert!(!is_listed(DEFAULT_WRITING_FUNCTIONS, name, false), "{name}");
        }
    }
    assert!(!may_be_listed("where"));
    assert!(!may_be_listed("in"));
}

#[test]
fn what_counts_as_a_write_for_read_your_writes() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "CREATE TABLE t (a int)",
        "SELECT nextval('s')",
        "SELECT * FROM t FOR UPDATE",
        "CALL p()",
        "DO $$ BEGIN END $$",
        "COPY t FROM STDIN",
        "EXPLAIN ANALYZE DELETE FROM t",
        "SELECT 1; INSERT INTO t VALUES (1)",
        "SET x = 1; INSERT INTO t VALUES (1)",
        "PREPARE TRANSACTION 'x'",
        "SELECT 'unterminated",
    ] {
        writes(sql, true);
    }
    for sql in [
        "SELECT 1",
        "SAVEPOINT diesel_savepoint_1",
        "RELEASE SAVEPOINT diesel_savepoint_1",
        "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
        "BEGIN",
        "START TRANSACTION READ ONLY",
        "SET search_path TO s2",
        "SET LOCAL statement_timeout = 5",
        "RESET ALL",
        "SHOW search_path",
        "LISTEN c",
        "PREPARE p AS SELECT 1",
        "DECLARE c CURSOR FOR SELECT 1",
        "FETCH 10 FROM c",
        "LOCK TABLE t",
        "DISCARD ALL",
        "EXPLAIN SELECT 1",
        "ROLLBACK",
    ] {
        writes(sql, false);
    }
}

#[test]
fn a_batch_with_transaction_control_is_unsure_when_it_fails() {
    assert!(class("BEGIN; INSERT INTO t VALUES (1)").tx_unsure);
    assert!(class("INSERT INTO t VALUES (1); COMMIT").tx_unsure);
    assert!(!class("BEGIN").tx_unsure);
    assert!(!class("COMMIT").tx_unsure);
    assert!(!class("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)").tx_unsure);
    // Only a batch with a statement that opens a transaction can leave one open when it
    // fails outside a transaction.
    assert!(class("BEGIN; INSERT INTO t VALUES (1)").opens_tx);
    assert!(class("BEGIN; SELECT 1; COMMIT").opens_tx);
    assert!(class("COMMIT AND CHAIN; SELECT 1").opens_tx);
    assert!(!class("INSERT INTO t VALUES (1); COMMIT; SET TRANSACTION READ ONLY").opens_tx);
    assert!(!class("BEGIN").opens_tx);
}

// ---- skipping plain tokens past the head -------------------------------------------

#[test]
fn skipping_plain_runs_changes_no_classification() {
    // The head (eight tokens) is full before each tail, so the tail's runs of numbers,
    // operators and whitespace are skipped in bulk: everything after them must still count.
    let heads = [
        "SELECT a FROM t WHERE id = $1 AND x IN (",
        "SELECT a FROM t WHERE id = 1 OR ",
        "UPDATE t SET a = 1, b = 2 WHERE ",
        "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1 + ",
    ];
    let tails = [
        "1, 2, 3)",
        "-1, -2, +3 * 4 / 5 % 6)",
        "1, 2) FOR UPDATE",
        "1, 2) FOR\n\tSHARE",
        "1, 2) FOR NO KEY UPDATE",
        "1, 2) -- FOR UPDATE\n",
        "1, 2) /* FOR UPDATE */ AND 3 = 3",
        "1, 2)--x\n FOR UPDATE",
        "1,2)/**/FOR/**/UPDATE",
        "1, 2, nextval('s'))",
        "1, 2, 3 + setval('s', 1))",
        "1.5, 1e5, 0x1F, 1_000, 2e-3, .5, 5.)",
        "1e'x', 2)",
        "1, 2) INTO TEMP x",
        "1, 2) INTO pg_temp.x",
        "1, 2, pg_temp.f())",
        "1, 2, 1.pg_temp)",
        "1, 2, \"nextval\"('s'))",
        "1, 2, U&\"nextval\"('s'))",
        "1, 2, $$ FOR UPDATE $$, $t$ ; $t$)",
        "1, 2, E'\\' FOR UPDATE', 'it''s')",
        "1, 2); INSERT INTO u VALUES (1)",
        "1, 2); SET search_path = x",
        "1, 2); COMMIT; BEGIN",
        "1, 2 ; 3",
        "1, 2) WITH HOLD",
        "1 , 2 ) ) ) ",
        "1, 2, (3, (4)))",
        "1; END; SELECT 2",
        "1 CASE WHEN 1 THEN 2 END; END; SELECT 3 FOR UPDATE",
        "1, 2)\u{b}\u{c}FOR UPDATE",
        "1 || 2 <> 3 != 4 >= 5 ~ 6 @ 7 # 8 ^ 9 & 10 | 11 ` 12 ? 13 : 14 [15] {16} \\ 17)",
        "'unterminated",
        "/* unterminated",
        "1, 2) FOR",
        "1, 2)) extra",
    ];
    for head in heads {
        for tail in tails {
            let sql = format!("{head}{tail}");
            assert_eq!(
                classify_skipping(&sql, &["f".into()], true),
                classify_skipping(&sql, &["f".into()], false),
                "skipping changed the classification of: {sql}"
            );
        }
    }
    // Tails that matter are seen.
    write("SELECT a FROM t WHERE id = $1 AND x IN (1, 2, 3) FOR UPDATE");
    write("SELECT a FROM t WHERE id = $1 AND x IN (1, 2, nextval('s'))");
    read("SELECT a FROM t WHERE id = $1 AND x IN (1, 2, 3) -- FOR UPDATE");
}
