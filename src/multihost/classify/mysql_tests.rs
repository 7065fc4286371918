use super::*;

use super::super::test_support::{
    assert_lowercase_names, assert_pinning_are_writing, assert_sorted_unique, long_select,
};

super::super::classification_assertions!(classify);

/// What unreadable text gets.
#[track_caller]
fn malformed(sql: &str) {
    let mut got = class(sql);
    // Whether transaction control ran before the unreadable part is asserted apart.
    got.tx_unsure = false;
    got.opens_tx = false;
    assert_eq!(
        got,
        Classification {
            read_only: false,
            pins_session: false,
            tx: TxEffect::None,
            atomic: false,
            writes: true,
            tx_unsure: false,
            opens_tx: false,
        },
        "expected unreadable: {sql:?}"
    );
}

// ---- function lists -------------------------------------------------------------

#[test]
fn lists_are_sorted_unique_lowercase() {
    for list in [
        MYSQL_WRITING_FUNCTIONS,
        SESSION_PINNING_FUNCTIONS,
        SESSION_HISTORY_VARIABLES,
        SESSION_SHOWS,
        QUIET,
        MAY_COMMIT,
        ROUTINES,
        NOT_TABLES,
    ] {
        assert_sorted_unique(list);
        assert_lowercase_names(list);
    }
    assert_pinning_are_writing(SESSION_PINNING_FUNCTIONS, MYSQL_WRITING_FUNCTIONS);
}

#[test]
fn required_functions_are_listed() {
    for f in [
        "get_lock",
        "release_lock",
        "release_all_locks",
        "is_used_lock",
        "is_free_lock",
        "last_insert_id",
        "found_rows",
        "row_count",
        "nextval",
        "setval",
        "lastval",
        "master_pos_wait",
        "master_gtid_wait",
        "source_pos_wait",
        "wait_for_executed_gtid_set",
        "sys_exec",
        "sys_eval",
    ] {
        assert!(is_listed(MYSQL_WRITING_FUNCTIONS, f, true), "{f}");
    }
    for f in ["get_lock", "release_lock", "release_all_locks"] {
        assert!(is_listed(SESSION_PINNING_FUNCTIONS, f, true), "{f}");
    }
    for f in ["is_used_lock", "is_free_lock", "last_insert_id"] {
        assert!(!is_listed(SESSION_PINNING_FUNCTIONS, f, true), "{f}");
    }
    // Harmless on a replica.
    for f in [
        "sleep",
        "benchmark",
        "uuid_short",
        "uuid",
        "load_file",
        "now",
        "count",
    ] {
        assert!(!is_listed(MYSQL_WRITING_FUNCTIONS, f, false), "{f}");
        read(&format!("SELECT {f}(1)"));
    }
}

#[test]
fn every_listed_function_makes_a_select_a_write() {
    for f in MYSQL_WRITING_FUNCTIONS {
        let pins = SESSION_PINNING_FUNCTIONS.contains(f);
        let upper = f.to_ascii_uppercase();
        for sql in [
            format!("SELECT {f}(1)"),
            format!("SELECT {upper}(1)"),
            format!("SELECT mydb.{f} (1)"),
            format!("SELECT `{f}`(1)"),
            format!("SELECT `{upper}`(1)"),
            format!("SELECT * FROM t WHERE x = {f} /* c */ (1)"),
            format!("SELECT * FROM t WHERE x = {f} # c\n (1)"),
            format!("DO {f}(1)"),
        ] {
            let c = class(&sql);
            assert!(!c.read_only, "{sql}");
            assert_eq!(c.pins_session, pins, "{sql}");
            assert!(c.writes, "{sql}");
            assert_eq!(c.tx, TxEffect::None, "{sql}");
        }
        read(&format!("SELECT {f} FROM t"));
        read(&format!("SELECT `{f}` FROM t"));
        if *f != "nextval" {
            // `s.nextval` is a sequence in MariaDB's Oracle mode.
            read(&format!("SELECT t.{f} FROM t"));
        }
        read(&format!("SELECT '{f}(1)'"));
        read(&format!("SELECT \"{f}(1)\""));
        read(&format!("SELECT 1 -- {f}(1)"));
        read(&format!("SELECT 1 /* {f}(1) */"));
    }
}

#[test]
fn the_quick_function_filter_lets_every_listed_name_through() {
    for name in MYSQL_WRITING_FUNCTIONS {
        assert!(FILTER.may_contain(name), "{name}");
        assert!(FILTER.may_contain(&name.to_uppercase()), "{name}");
    }
    assert!(!FILTER.may_contain("in"));
    assert!(!FILTER.may_contain("exists"));
    assert!(!FILTER.may_contain(""));
}

#[test]
fn session_locks() {
    for sql in [
        "SELECT GET_LOCK('a', 10)",
        "select get_lock('a', 10)",
        "SELECT RELEASE_LOCK('a')",
        "SELECT RELEASE_ALL_LOCKS()",
        "DO GET_LOCK('a', 1)",
        "SELECT `get_lock`(1)",
        "SELECT `GET_LOCK`(1)",
        "SELECT 1 FROM t WHERE GET_LOCK(CONCAT('x', id), 0) = 1",
    ] {
        write(sql);
        pin(sql);
    }
    for sql in ["SELECT IS_FREE_LOCK('a')", "SELECT IS_USED_LOCK('a')"] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
}

#[test]
fn session_history_functions() {
    for sql in [
        "SELECT LAST_INSERT_ID()",
        "SELECT last_insert_id()",
        "SELECT FOUND_ROWS()",
        "SELECT ROW_COUNT()",
        "SELECT CONNECTION_ID()",
        "SELECT * FROM t WHERE id = LAST_INSERT_ID()",
    ] {
        exactly(sql, false, false, TxEffect::None);
    }
    // The session's history in system variables.
    for sql in [
        "SELECT @@identity",
        "SELECT @@IDENTITY",
        "SELECT @@last_insert_id",
        "SELECT @@session.last_insert_id",
        "SELECT @@warning_count",
        "SELECT @@error_count",
        "SELECT @@last_gtid",
        "SELECT @@`identity`",
    ] {
        exactly(sql, false, false, TxEffect::None);
    }
}

#[test]
fn user_extended_function_list() {
    let extra = vec!["audit_touch".to_owned(), "app.log_it".to_owned()];
    let c = |sql: &str| classify(sql, &extra);
    assert!(class("SELECT audit_touch(1)").read_only);
    assert!(!c("SELECT audit_touch(1)").read_only);
    assert!(!c("SELECT AUDIT_TOUCH (1)").read_only);
    assert!(!c("SELECT app.audit_touch(1)").read_only);
    assert!(!c("SELECT `audit_touch`(1)").read_only);
    assert!(!c("SELECT `AUDIT_TOUCH`(1)").read_only);
    assert!(!c("SELECT app.log_it(1)").read_only);
    assert!(!c("SELECT `app`.`log_it`(1)").read_only);
    assert!(!c("SELECT `app.log_it`(1)").read_only);
    assert!(c("SELECT audit_touch FROM t").read_only);
    assert!(c("SELECT audit_touched(1)").read_only);
    assert!(c("SELECT 'audit_touch(1)'").read_only);
    assert!(!c("SELECT audit_touch(1)").pins_session);
    assert!(c("SELECT audit_touch(1)").writes);
    // The built-in list still applies.
    assert!(!c("SELECT LAST_INSERT_ID()").read_only);
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
        "# hash comment",
        "/* block */",
        "/*+ hint */",
        "/*! */",
        "/*!40101 */;",
        "/* a */ -- b\n # c\n;",
    ] {
        exactly(sql, false, false, TxEffect::None);
        atomic(sql, false);
        writes(sql, false);
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
        "SELECT 1 FROM DUAL",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        "VALUES ROW(1, 2), ROW(3, 4)",
        "VALUES (1), (2)",
        "TABLE users",
        "TABLE users ORDER BY id LIMIT 1",
        "SHOW TABLES",
        "SHOW FULL PROCESSLIST",
        "SHOW VARIABLES LIKE 'read_only'",
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'gtid_executed')",
        "SHOW CREATE TABLE t",
        "SHOW SESSION STATUS",
        "show databases",
        "(SELECT 1) UNION (SELECT 2)",
        "((SELECT 1)) UNION ALL (((SELECT 2)))",
        "SELECT count(*) FROM t GROUP BY a HAVING count(*) > 1 ORDER BY 1 LIMIT 10 OFFSET 5",
        "SELECT HIGH_PRIORITY STRAIGHT_JOIN SQL_NO_CACHE SQL_BUFFER_RESULT a FROM t",
        "SELECT NOW(), VERSION(), DATABASE(), USER(), UUID(), SLEEP(0), BENCHMARK(1, 1)",
        "SELECT @@version",
        "SELECT @@VERSION, @@session.sql_mode, @@global.read_only, @@GLOBAL.gtid_executed",
        "SELECT @@read_only, @@innodb_read_only",
        "SELECT 1; SELECT 2;",
        "SELECT IF(a, 1, 2), CASE WHEN a THEN 1 ELSE 2 END FROM t",
        "SELECT CAST(a AS CHAR), CONVERT(b USING utf8mb4) FROM t",
        "SELECT JSON_EXTRACT(doc, '$.a') FROM t",
        "SELECT a FROM t WINDOW w AS (PARTITION BY b)",
        "SELECT a FROM t WHERE b IN (SELECT c FROM u) FOR SYSTEM_TIME ALL",
    ] {
        exactly(sql, true, false, TxEffect::None);
        writes(sql, false);
        atomic(sql, !sql.contains("; SELECT"));
    }
}

#[test]
fn diesel_shaped_sql() {
    read("SELECT `users`.`id`, `users`.`name` FROM `users` WHERE (`users`.`id` = ?)");
    read("SELECT `users`.`id`, `users`.`name` FROM `users` WHERE (`users`.`id` = ?) LIMIT ?");
    read("SELECT `users`.`id` FROM `users` LIMIT ? OFFSET ?");
    read("SELECT EXISTS (SELECT `users`.`id` FROM `users` WHERE (`users`.`name` = ?)) AS `exists`");
    read("SELECT COUNT(*) FROM `users`");
    read("SELECT `users`.`id` FROM `users` WHERE (`users`.`id` IN (?, ?, ?))");
    read("(SELECT `users`.`name` FROM `users`) UNION (SELECT `posts`.`title` FROM `posts`)");
    read(
        "SELECT `users`.`id` FROM (`users` INNER JOIN `posts` ON (`posts`.`user_id` = `users`.`id`)) ORDER BY `users`.`id` DESC",
    );
    read("SELECT `users`.`insert`, `users`.`update`, `users`.`delete` FROM `users`");
    for lock in [
        "FOR UPDATE",
        "FOR SHARE",
        "FOR UPDATE SKIP LOCKED",
        "FOR UPDATE NOWAIT",
        "FOR SHARE SKIP LOCKED",
        "LOCK IN SHARE MODE",
    ] {
        let sql = format!("SELECT `users`.`id` FROM `users` WHERE (`users`.`id` = ?) {lock}");
        exactly(&sql, false, false, TxEffect::None);
        writes(&sql, true);
        atomic(&sql, true);
    }
    for sql in [
        "INSERT INTO `users` (`name`) VALUES (?)",
        "INSERT INTO `users` (`name`) VALUES (?), (?)",
        "INSERT IGNORE INTO `users` (`name`) VALUES (?)",
        "REPLACE INTO `users` (`id`, `name`) VALUES (?, ?)",
        "INSERT INTO `users` (`name`) VALUES (?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)",
        "UPDATE `users` SET `name` = ? WHERE (`users`.`id` = ?)",
        "DELETE FROM `users` WHERE (`users`.`id` = ?)",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
        atomic(sql, true);
    }
}

#[test]
fn diesel_transaction_manager_sql() {
    exactly("BEGIN", false, false, TxEffect::Begin);
    exactly("COMMIT", false, false, TxEffect::Commit);
    exactly("ROLLBACK", false, false, TxEffect::Rollback);
    for sql in [
        "SAVEPOINT diesel_savepoint_1",
        "RELEASE SAVEPOINT diesel_savepoint_1",
        "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, false);
    }
}

// ---- locking reads ---------------------------------------------------------------

#[test]
fn locking_reads_anywhere() {
    for sql in [
        "SELECT * FROM t FOR UPDATE",
        "select * from t for update",
        "SELECT * FROM t FOR SHARE",
        "SELECT * FROM t FOR SHARE OF t NOWAIT",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)",
        "SELECT * FROM t WHERE a IN (SELECT a FROM u LOCK IN SHARE MODE)",
        "(SELECT * FROM t FOR UPDATE)",
        "WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE",
        "TABLE t FOR UPDATE",
        "SELECT * FROM t FOR /* c */ SHARE",
        "SELECT * FROM t FOR # c\n SHARE",
        "SELECT * FROM t FOR\nUPDATE",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
}

#[test]
fn locking_words_inside_literals_and_comments_do_not_count() {
    for sql in [
        "SELECT 'FOR UPDATE'",
        "SELECT \"FOR UPDATE\"",
        "SELECT 'LOCK IN SHARE MODE'",
        "SELECT 1 -- FOR UPDATE",
        "SELECT 1 --\tFOR UPDATE",
        "SELECT 1 --",
        "SELECT 1 # FOR UPDATE",
        "SELECT 1 # INSERT",
        "SELECT 1 #INSERT INTO t VALUES (1)",
        "SELECT 1 /* FOR UPDATE */",
        "SELECT 1 /*FOR SHARE*/",
        "SELECT `for update` FROM t",
        "SELECT a AS `lock` FROM t",
        "SELECT t.lock FROM t",
        "SELECT 'it''s FOR UPDATE'",
        "SELECT 'it\\'s FOR UPDATE'",
        "SELECT \"say \\\"FOR UPDATE\\\"\"",
        "SELECT \"say \"\"FOR UPDATE\"\"\"",
        "SELECT 'a\\\\' FROM t",
        "SELECT for_update, share FROM t",
    ] {
        exactly(sql, true, false, TxEffect::None);
    }
}

// ---- comments ---------------------------------------------------------------------

#[test]
fn dash_dash_needs_whitespace_or_a_control_character() {
    // `1--1` is 1 - (-1): no comment, the rest is code.
    read("SELECT 1--1");
    write("SELECT 1--1 FOR UPDATE");
    write("SELECT 1 --1 FOR UPDATE");
    write("SELECT 1 --x\nFOR UPDATE");
    // Whitespace or a control character after `--` starts a comment.
    read("SELECT 1 -- FOR UPDATE");
    read("SELECT 1 --\tFOR UPDATE");
    read("SELECT 1 --\x01FOR UPDATE");
    read("SELECT 1 --\r FOR UPDATE");
    // A line comment ends at `\n` only.
    write("SELECT 1 -- x\nFOR UPDATE");
    read("SELECT 1 -- x\r FOR UPDATE");
    write("SELECT 1 # x\n FOR UPDATE");
    read("SELECT 1 # x\r FOR UPDATE");
    exactly("SELECT 1 -- ; DELETE FROM t", true, false, TxEffect::None);
    exactly("SELECT 1 # ; DELETE FROM t", true, false, TxEffect::None);
    exactly(
        "SELECT 1 # x\n; DELETE FROM t",
        false,
        false,
        TxEffect::None,
    );
}

#[test]
fn block_comments_do_not_nest() {
    read("SELECT 1 /* a /* b */");
    // The first `*/` ends the comment: the rest is code.
    write("SELECT 1 /* a /* b */ FOR UPDATE /* c */");
    malformed("SELECT 1 /* never closed");
    read("SELECT 1 /* a /* b */ + 1");
}

#[test]
fn optimizer_hints_are_comments() {
    read("SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t");
    read("SELECT /*+ BKA(t1) NO_BKA(t2) */ * FROM t1, t2");
    read("SELECT /*+ SET_VAR(sql_mode = 'NO_ENGINE_SUBSTITUTION') */ * FROM t");
    read("SELECT /*+ QB_NAME(`qb1`) */ * FROM t");
    read("SELECT /*+ GET_LOCK(1) INSERT */ 1");
    write("INSERT /*+ SET_VAR(foreign_key_checks = OFF) */ INTO t VALUES (1)");
    // A hint whose quotes do not pair up may end elsewhere for the hint scanner.
    write("SELECT /*+ QB_NAME(`a*/ 1 /* `) */ FROM t");
    write("SELECT /*+ SET_VAR(x = 'a\\'b') */ 1");
    malformed("SELECT /*+ MAX_EXECUTION_TIME(1000) * FROM t");
}

#[test]
fn executable_comments_are_code() {
    for sql in [
        "SELECT 1 /*! FOR UPDATE */",
        "SELECT 1 /*!40101 FOR UPDATE */",
        "SELECT 1 /*!80000 FOR SHARE */",
        "SELECT 1 /*!100100 FOR UPDATE */",
        "SELECT 1 /*M!100100 FOR UPDATE */",
        "SELECT 1 /*M! FOR UPDATE */",
        "SELECT * FROM t /*!50000 LOCK IN SHARE MODE */",
        "SELECT 1 /*!INTO @x*/",
        "SELECT /*! GET_LOCK */ ('a', 1)",
        "SELECT 1 /*!50000 ; DELETE FROM t */",
        "SELECT 1 /*!50000FOR UPDATE*/",
    ] {
        write(sql);
    }
    // A versioned comment holding the first keyword: the kind is uncertain (pins).
    exactly(
        "/*!50000 INSERT */ INTO t VALUES (1)",
        false,
        true,
        TxEffect::None,
    );
    exactly(
        "/*! INSERT */ INTO t VALUES (1)",
        false,
        false,
        TxEffect::None,
    );
    // Read as code, a versioned comment of a read changes nothing.
    read("SELECT /*!40001 SQL_NO_CACHE */ * FROM t");
    read("SELECT /*!40001 SQL_NO_CACHE */ * FROM t /*!99999 WHERE 1 = 1 */");
    read("SELECT /*! STRAIGHT_JOIN */ a FROM t");
    read("/*! SELECT 1 */");
    read("SELECT 1 /*! + 1 */");
    read("SELECT 1 /*!+ 1 */");
    // Session commands in executable comments (mysqldump's headers).
    exactly("/*!40101 SET NAMES utf8mb4 */", false, true, TxEffect::None);
    exactly(
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;",
        false,
        true,
        TxEffect::None,
    );
    exactly("/*! SET autocommit = 0 */", false, true, TxEffect::Begin);
    exactly("/*! BEGIN */", false, false, TxEffect::Begin);
    // Unterminated or nested executable comments.
    malformed("SELECT 1 /*! FOR UPDATE");
    malformed("SELECT 1 /*!40101 FOR UPDATE");
    malformed("SELECT 1 /*! a /*! b */ */");
    // A plain comment nests in an executable one.
    read("SELECT 1 /*! + /* inner */ 1 */");
    write("SELECT 1 /*! + /* inner */ 1 */ FOR UPDATE");
    // `*/` outside an executable comment is just `*` and `/`.
    read("SELECT 2*/* x */3");
}

#[test]
fn versioned_comments_are_read_both_ways() {
    // A server older than the version skips the comment: pairs across it still count.
    write("SELECT * FROM t FOR /*!99999 x */ SHARE");
    write("SELECT * FROM t FOR /*!99999 ; SELECT 2 */ SHARE");
    write("SELECT GET_LOCK /*!99999 x */ ('a', 1)");
    write("SELECT NEXT /*!99999 x */ VALUE FOR s");
    write("SELECT 1 INTO /*!99999 x, */ @a");
    pin("SELECT 1 INTO /*!99999 x, */ @a");
    write("SELECT a /*!99999 . */ insert INTO t VALUES (1)");
    // Their content decides the first keywords only when the statement starts as a read.
    write("/*!99999 SELECT */ USE db");
    write("/*!99999 SELECT 1; */ SET NAMES utf8");
    write("SELECT 1 /*!99999 ; USE db */");
    write("DESCRIBE /*!99999 SELECT 1 */ t");
    write("SHOW /*!99999 TABLES */ WARNINGS");
    write("SHOW /*!50000 FULL */ TABLES");
    write("/*M! SELECT 1 */");
    writes("/*!99999 SELECT 1 */", true);
    pin("/*!99999 SELECT 1 */");
    pin("SET /*!99999 TRANSACTION */ @x = 1");
    no_pin("SELECT /*!40001 SQL_NO_CACHE */ * FROM t");
    atomic("/*!99999 SELECT 1 */", false);
    // Unversioned executable comments are code everywhere.
    read("/*! SELECT 1 */");
    // A literal or line comment holding `*/` or `/*` ends the comment elsewhere for a server
    // that skips it.
    write("SELECT 1 /*!99999 + '*/' */");
    write("SELECT 1 /*!99999 + `*/` */");
    write("SELECT 1 /*!99999 + '/*' */");
    write("SELECT 1 /*!99999 + 1 # */\n */");
    read("SELECT 1 /*! + '*/' */");
    read("SELECT 1 /*!99999 + 'x' */");
}

// ---- strings, identifiers, variables --------------------------------------------------

#[test]
fn backtick_identifiers() {
    read("SELECT `insert` FROM t");
    read("SELECT `update`, `delete`, `replace`, `into`, `lock` FROM `for update`");
    read("SELECT `a``b` FROM `t``;`");
    read("SELECT `@x` FROM t");
    read("SELECT `;` FROM t; SELECT 2");
    exactly("SELECT `a;b`; DELETE FROM t", false, false, TxEffect::None);
    malformed("SELECT `never closed FROM t");
    malformed("SELECT `a``");
}

#[test]
fn string_literals() {
    read("SELECT 'a', \"b\", 'c''d', \"e\"\"f\", 'g\\'h', \"i\\\"j\", 'k\\\\'");
    read("SELECT _utf8mb4'x', N'y', X'0A', B'01', x'0a', 0x0A, 0b01");
    read("SELECT 'a' 'b' 'c'");
    exactly(
        "SELECT 'a;b'; SELECT \";\" FROM t",
        true,
        false,
        TxEffect::None,
    );
    exactly(
        "SELECT 'a\\'; DELETE FROM t; -- '",
        true,
        false,
        TxEffect::None,
    );
    exactly(
        "SELECT 'a''; DELETE FROM t; -- '",
        true,
        false,
        TxEffect::None,
    );
    malformed("SELECT 'abc");
    malformed("SELECT \"abc");
    malformed("SELECT 'abc\\'");
    malformed("SELECT 'abc\\");
    // A `"name"(` is a call with ANSI_QUOTES.
    write("SELECT \"get_lock\"(1)");
    read("SELECT \"get_lock\"");
}

#[test]
fn user_variables() {
    // A reference: the value lives in the primary's session.
    for sql in [
        "SELECT @x",
        "SELECT * FROM t WHERE id = @id",
        "SELECT @`x`",
        "SELECT @'x'",
        "SELECT @\"x\"",
        "SELECT @x.y",
        "SELECT @_x$",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
    // An assignment also pins the session.
    for sql in [
        "SELECT @x := 1",
        "SELECT @x:=1",
        "SELECT @rownum := @rownum + 1 AS n, t.* FROM t",
        "SELECT * FROM t WHERE (@x := id) > 0",
        "UPDATE t SET a = (@x := a + 1)",
    ] {
        exactly(sql, false, true, TxEffect::None);
    }
    // System variables are fine.
    read("SELECT @@version");
    read("SELECT @@session.time_zone");
    // `:` alone is no assignment.
    no_pin("SELECT a FROM t WHERE b = ':='");
}

#[test]
fn select_into() {
    for sql in [
        "SELECT a INTO @v FROM t",
        "SELECT a FROM t INTO @v",
        "SELECT a, b INTO @v, @w FROM t LIMIT 1",
        "SELECT 1 INTO @`v`",
        "SELECT 1 INTO /* c */ @v",
        "(SELECT 1 INTO @v)",
    ] {
        exactly(sql, false, true, TxEffect::None);
    }
    for sql in [
        "SELECT * FROM t INTO OUTFILE '/tmp/t.csv'",
        "SELECT * INTO OUTFILE '/tmp/t.csv' FIELDS TERMINATED BY ',' FROM t",
        "SELECT a FROM t INTO DUMPFILE '/tmp/a'",
        "SELECT a INTO v FROM t",
        "SELECT @x INTO OUTFILE '/tmp/x'",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
    read("SELECT 'INTO @v'");
    read("SELECT `into` FROM t");
}

#[test]
fn dml_keywords_and_lookalike_functions() {
    // The string functions REPLACE() and INSERT().
    read("SELECT REPLACE('a', 'b', 'c')");
    read("SELECT replace (name, 'a', 'b') FROM t");
    read("SELECT REPLACE /* c */ (name, 'a', 'b') FROM t");
    read("SELECT INSERT('Quadratic', 3, 4, 'What')");
    read("SELECT a FROM t WHERE b = REPLACE(c, 'x', 'y')");
    // The statements.
    for sql in [
        "REPLACE INTO t VALUES (1)",
        "REPLACE t VALUES (1)",
        "REPLACE INTO t SELECT * FROM u",
        "INSERT INTO t VALUES (1)",
        "INSERT t SET a = 1",
        "INSERT INTO t SELECT REPLACE(a, 'x', 'y') FROM u",
        "UPDATE t SET a = REPLACE(a, 'x', 'y')",
        "DELETE FROM t",
        "DELETE t1 FROM t1 JOIN t2 USING (id)",
        "WITH x AS (SELECT 1 AS id) UPDATE t JOIN x USING (id) SET t.a = 1",
        "WITH x AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM x)",
        "EXPLAIN ANALYZE UPDATE t SET a = 1",
        "SELECT 1; REPLACE INTO t VALUES (1)",
        "SELECT 1 UPDATE",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
    // Names after `.` or `AS`.
    read("SELECT t.insert, t.update, t.delete, t.replace FROM t");
    read("SELECT a AS replace FROM t");
    // A statement ending right after REPLACE/INSERT.
    write("SELECT a FROM t WHERE REPLACE");
}

#[test]
fn calc_found_rows_and_sequences() {
    for sql in [
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10",
        "SELECT sql_calc_found_rows a FROM t",
        "SELECT NEXT VALUE FOR s",
        "SELECT next value for s",
        "SELECT PREVIOUS VALUE FOR s",
        "SELECT NEXTVAL(s)",
        "SELECT LASTVAL(s)",
        "SELECT SETVAL(s, 10)",
        "SELECT s.nextval",
        "SELECT s.currval FROM dual",
        "SELECT * FROM t WHERE id = NEXT VALUE FOR s",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, true);
    }
    read("SELECT next_value, previous FROM t");
    read("SELECT `next` FROM t WHERE value = 1");
}

// ---- multiple statements ----------------------------------------------------------

#[test]
fn batches() {
    exactly("SELECT 1; SELECT 2", true, false, TxEffect::None);
    exactly(
        "SELECT 1; VALUES ROW(2); TABLE t; SHOW TABLES;",
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
    exactly("SELECT 1; SET @x = 1", false, true, TxEffect::None);
    exactly("SET NAMES utf8mb4; SELECT 1", false, true, TxEffect::None);
    exactly(
        "SELECT 1 /* ; DELETE FROM t; */",
        true,
        false,
        TxEffect::None,
    );
    exactly(
        "START TRANSACTION; UPDATE t SET a = 1; COMMIT",
        false,
        false,
        TxEffect::Commit,
    );
    exactly(
        "INSERT INTO t VALUES (1); BEGIN",
        false,
        false,
        TxEffect::Begin,
    );
    exactly("BEGIN; SELECT 1", false, false, TxEffect::Begin);
    exactly(
        "COMMIT; SELECT 1; SAVEPOINT a",
        false,
        false,
        TxEffect::Commit,
    );
    exactly(
        "BEGIN; ROLLBACK; SET autocommit = 0",
        false,
        true,
        TxEffect::Begin,
    );
    writes("SELECT 1; SELECT 2", false);
    writes("SELECT 1; DO 1", true);
}

#[test]
fn semicolons_inside_parentheses_are_unreadable() {
    malformed("SELECT (1; 2)");
    malformed("SELECT * FROM t WHERE a IN (SELECT 1; DELETE FROM t)");
}

#[test]
fn stored_program_bodies_are_one_statement() {
    let sql = "CREATE PROCEDURE p() BEGIN SELECT 1; INSERT INTO t VALUES (1); END";
    exactly(sql, false, false, TxEffect::None);
    writes(sql, true);
    atomic(sql, false);
    for sql in [
        "CREATE PROCEDURE p() BEGIN START TRANSACTION; UPDATE t SET a = 1; COMMIT; END",
        "create procedure p() begin start transaction; commit; end;",
        "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN COMMIT; END",
        "CREATE DEFINER = 'root'@'%' PROCEDURE p() BEGIN COMMIT; END",
        "CREATE DEFINER=root@localhost PROCEDURE p() BEGIN COMMIT; END",
        "CREATE DEFINER = CURRENT_USER() PROCEDURE p() BEGIN COMMIT; END",
        "CREATE OR REPLACE DEFINER=`u`@`%` PROCEDURE p() BEGIN COMMIT; END",
        "CREATE PROCEDURE IF NOT EXISTS p() BEGIN COMMIT; END",
        "CREATE FUNCTION f() RETURNS INT DETERMINISTIC BEGIN DECLARE x INT; SET x = 1; RETURN x; END",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; SET @x = 1; END",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM t; COMMIT; END",
        "ALTER EVENT e DO BEGIN DELETE FROM t; COMMIT; END",
        "CREATE PROCEDURE p() lbl: BEGIN LEAVE lbl; COMMIT; END lbl",
        "CREATE PROCEDURE p() LOOP COMMIT; END LOOP",
        "CREATE PROCEDURE p() WHILE 1 DO COMMIT; END WHILE",
        "CREATE PROCEDURE p() REPEAT COMMIT; UNTIL 1 END REPEAT",
        "CREATE PROCEDURE p() IF @x THEN COMMIT; END IF",
        "CREATE PROCEDURE p() CASE WHEN 1 THEN COMMIT; END CASE",
    ] {
        let c = class(sql);
        assert_eq!(
            (c.read_only, c.pins_session, c.tx, c.atomic, c.writes),
            (false, false, TxEffect::None, false, true),
            "{sql}"
        );
    }
    // mysqldump's form: versioned comments hold the first keywords (uncertain: pins).
    let c = class(
        "/*!50003 CREATE*/ /*!50020 DEFINER=`root`@`localhost`*/ /*!50003 PROCEDURE p() BEGIN COMMIT; END */",
    );
    assert_eq!(
        (c.read_only, c.pins_session, c.tx, c.atomic, c.writes),
        (false, true, TxEffect::None, false, true)
    );
    // A single-statement body ends at `;`.
    tx(
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1; COMMIT",
        TxEffect::Commit,
    );
    tx(
        "CREATE FUNCTION f(a INT) RETURNS INT RETURN IF(a > 0, 1, 0); COMMIT",
        TxEffect::Commit,
    );
    tx(
        "CREATE FUNCTION f(a INT) RETURNS TEXT RETURN REPEAT('x', a); COMMIT",
        TxEffect::Commit,
    );
    tx("CREATE PROCEDURE p() SELECT 1; COMMIT", TxEffect::Commit);
    // Tables and columns that happen to be named like routines or body keywords.
    tx("CREATE TABLE event (a INT); BEGIN", TxEffect::Begin);
    tx(
        "CREATE TABLE t (`begin` INT, `function` INT); BEGIN",
        TxEffect::Begin,
    );
    tx("DROP PROCEDURE p; BEGIN", TxEffect::Begin);
    // The body runs only when called: its `:=` and `INTO @v` pin nothing now.
    no_pin("CREATE PROCEDURE p() BEGIN SELECT 1 INTO @v; SELECT @x := 1; END");
}

#[test]
fn top_level_compound_statements() {
    for sql in [
        "BEGIN NOT ATOMIC SELECT 1; COMMIT; END",
        "begin not atomic insert into t values (1); end",
        "IF @x > 0 THEN SELECT 1; ELSE COMMIT; END IF",
        "CASE @x WHEN 1 THEN SELECT 1; END CASE",
        "WHILE @x < 3 DO SET @x = @x + 1; END WHILE",
        "REPEAT SET @x = @x + 1; UNTIL @x > 3 END REPEAT",
        "LOOP LEAVE; END LOOP",
        "FOR i IN 1..3 DO INSERT INTO t VALUES (i); END FOR",
        "lbl: BEGIN NOT ATOMIC SELECT 1; END",
    ] {
        let c = class(sql);
        assert_eq!(
            (c.read_only, c.pins_session, c.tx, c.atomic, c.writes),
            (false, true, TxEffect::None, false, true),
            "{sql}"
        );
    }
}

// ---- transaction control ----------------------------------------------------------

#[test]
fn transaction_begin() {
    for sql in [
        "BEGIN",
        "begin;",
        "BEGIN WORK",
        "START TRANSACTION",
        "start transaction read only",
        "START TRANSACTION READ WRITE",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        "XA START 'x'",
        "XA BEGIN 'x', 'b', 1",
        "COMMIT AND CHAIN",
        "COMMIT WORK AND CHAIN",
        "COMMIT AND CHAIN NO RELEASE",
        "ROLLBACK AND CHAIN",
        "ROLLBACK WORK AND CHAIN",
    ] {
        exactly(sql, false, false, TxEffect::Begin);
        writes(sql, false);
        atomic(sql, false);
    }
}

#[test]
fn transaction_end() {
    for sql in [
        "COMMIT",
        "commit work",
        "COMMIT AND NO CHAIN",
        "COMMIT RELEASE",
        "COMMIT WORK AND NO CHAIN NO RELEASE",
        "XA COMMIT 'x'",
        "XA COMMIT 'x' ONE PHASE",
    ] {
        exactly(sql, false, false, TxEffect::Commit);
        writes(sql, false);
    }
    for sql in [
        "ROLLBACK",
        "rollback work",
        "ROLLBACK AND NO CHAIN",
        "ROLLBACK RELEASE",
        "XA ROLLBACK 'x'",
    ] {
        exactly(sql, false, false, TxEffect::Rollback);
        writes(sql, false);
    }
}

#[test]
fn transaction_neutral() {
    for sql in [
        "SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "ROLLBACK TO a",
        "ROLLBACK TO SAVEPOINT a",
        "ROLLBACK WORK TO SAVEPOINT a",
        "XA END 'x'",
        "XA PREPARE 'x'",
        "XA RECOVER",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET TRANSACTION READ ONLY",
        "START SLAVE",
        "END",
    ] {
        exactly(sql, false, false, TxEffect::None);
    }
}

#[test]
fn autocommit() {
    for sql in [
        "SET autocommit = 0",
        "SET autocommit=0",
        "set AUTOCOMMIT = OFF",
        "SET autocommit = false",
        "SET autocommit = 'OFF'",
        "SET SESSION autocommit = 0",
        "SET LOCAL autocommit = 0",
        "SET @@autocommit = 0",
        "SET @@session.autocommit = 0",
        "SET @@SESSION.autocommit := 0",
        "SET autocommit = 1, autocommit = 0",
        "SET sql_mode = '', autocommit = 0",
        "SET autocommit = 0, sql_mode = ''",
        // Values that are not read: an implicit transaction may be open.
        "SET autocommit = @x",
        "SET autocommit = DEFAULT",
        "SET autocommit = 1 + 0",
        "SET autocommit = IF(@x, 1, 0)",
    ] {
        exactly(sql, false, true, TxEffect::Begin);
        writes(sql, false);
        atomic(sql, false);
    }
    for sql in [
        "SET autocommit = 1",
        "SET autocommit = ON",
        "set autocommit = true",
        "SET @@autocommit = 1",
        "SET autocommit = 0, autocommit = 1",
        "SET GLOBAL sql_mode = '', SESSION autocommit = 1",
    ] {
        exactly(sql, false, true, TxEffect::Commit);
    }
    // The global default changes no session.
    for sql in [
        "SET GLOBAL autocommit = 0",
        "SET @@global.autocommit = 0",
        "SET PERSIST autocommit = 0",
        "SET GLOBAL sql_mode = '', autocommit = 0",
        "SET @x = 'autocommit = 0'",
        "SET @autocommit = 0",
    ] {
        exactly(sql, false, true, TxEffect::None);
    }
    exactly(
        "/*!40101 SET autocommit = 0 */",
        false,
        true,
        TxEffect::Begin,
    );
}

#[test]
fn ddl_is_a_write_without_tx_effect() {
    for sql in [
        "CREATE TABLE t (a INT)",
        "CREATE TABLE t AS SELECT 1",
        "ALTER TABLE t ADD COLUMN b INT",
        "DROP TABLE t",
        "DROP TABLE IF EXISTS t",
        "RENAME TABLE a TO b",
        "TRUNCATE TABLE t",
        "TRUNCATE t",
        "CREATE INDEX i ON t (a)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE SEQUENCE s",
        "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
        "GRANT SELECT ON db.* TO 'u'@'%'",
        "REVOKE ALL ON db.* FROM u",
        "ANALYZE TABLE t",
        "ANALYZE NO_WRITE_TO_BINLOG TABLE t",
        "OPTIMIZE TABLE t",
        "REPAIR TABLE t",
        "FLUSH PRIVILEGES",
        "SET PASSWORD FOR 'u'@'%' = 'p'",
        "SET DEFAULT ROLE r TO u",
    ] {
        let c = class(sql);
        assert!(!c.read_only, "{sql}");
        assert_eq!(c.tx, TxEffect::None, "{sql}");
        assert!(c.writes, "{sql}");
        assert!(!c.atomic, "{sql}");
    }
    no_pin("CREATE TABLE t (a INT)");
    no_pin("DROP TEMPORARY TABLE t");
}

// ---- session pinning --------------------------------------------------------------

#[test]
fn session_commands_pin() {
    for sql in [
        "SET NAMES utf8mb4",
        "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'",
        "SET CHARACTER SET utf8",
        "SET CHARSET utf8",
        "SET @x = 1",
        "SET @x := 1",
        "SET sql_mode = 'ANSI'",
        "SET SESSION sql_mode = ''",
        "SET @@session.time_zone = '+00:00'",
        "SET time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET LOCAL TRANSACTION READ ONLY",
        "SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET ROLE ALL",
        "SET GLOBAL max_connections = 1000",
        "USE db",
        "use `db`",
        "LOCK TABLES t READ",
        "LOCK TABLE t WRITE, u READ",
        "LOCK INSTANCE FOR BACKUP",
        "BACKUP LOCK t",
        "FLUSH TABLES WITH READ LOCK",
        "FLUSH TABLES t FOR EXPORT",
        "PREPARE s FROM 'SELECT 1'",
        "HANDLER t OPEN",
        "HANDLER db.t OPEN AS h",
        "CREATE TEMPORARY TABLE t (a INT)",
        "create temporary table if not exists t select 1",
        "CREATE OR REPLACE TEMPORARY TABLE t (a INT)",
    ] {
        exactly(sql, false, true, TxEffect::None);
    }
    for sql in [
        "SET NAMES utf8mb4",
        "SET @x = 1",
        "USE db",
        "LOCK TABLES t READ",
        "PREPARE s FROM 'SELECT 1'",
        "HANDLER t OPEN",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    ] {
        writes(sql, false);
    }
    writes("CREATE TEMPORARY TABLE t (a INT)", true);
    writes("SET @id = LAST_INSERT_ID()", true);
    pin("SET @id = LAST_INSERT_ID()");
}

#[test]
fn statements_that_do_not_pin() {
    for sql in [
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "set transaction read only",
        "UNLOCK TABLES",
        "DEALLOCATE PREPARE s",
        "DROP PREPARE s",
        "EXECUTE s",
        "EXECUTE s USING @a, @b",
        "HANDLER t READ FIRST",
        "HANDLER t CLOSE",
        "BACKUP UNLOCK",
        "CALL p()",
        "CALL p(@out)",
        "SELECT @x",
        "FLUSH TABLES",
        "DROP TEMPORARY TABLE t",
        "SHOW WARNINGS",
        "START TRANSACTION",
        "XA START 'x'",
    ] {
        no_pin(sql);
        write(sql);
    }
    for sql in [
        "UNLOCK TABLES",
        "DEALLOCATE PREPARE s",
        "DROP PREPARE s",
        "HANDLER t READ FIRST",
        "SET TRANSACTION READ ONLY",
        "SHOW WARNINGS",
        "HELP 'contents'",
        "GET DIAGNOSTICS @n = NUMBER",
    ] {
        writes(sql, false);
    }
    for sql in [
        "EXECUTE s",
        "CALL p()",
        "DO 1",
        "LOAD DATA INFILE 'f' INTO TABLE t",
    ] {
        writes(sql, true);
    }
}

// ---- SHOW, EXPLAIN, DESCRIBE ------------------------------------------------------

#[test]
fn show_statements_about_the_session_go_to_the_primary() {
    for sql in [
        "SHOW WARNINGS",
        "SHOW WARNINGS LIMIT 10",
        "SHOW ERRORS",
        "SHOW COUNT(*) WARNINGS",
        "SHOW COUNT(*) ERRORS",
        "SHOW PROFILES",
        "SHOW PROFILE FOR QUERY 1",
        "SHOW MASTER STATUS",
        "SHOW BINARY LOG STATUS",
        "SHOW BINLOG EVENTS",
        "SHOW EXPLAIN FOR 12",
        "SHOW ANALYZE FOR 12",
    ] {
        exactly(sql, false, false, TxEffect::None);
        writes(sql, false);
    }
}

#[test]
fn explain_and_describe() {
    for sql in [
        "EXPLAIN SELECT 1",
        "explain select * from t",
        "EXPLAIN FORMAT=JSON SELECT * FROM t",
        "EXPLAIN FORMAT = TREE SELECT * FROM t",
        "EXPLAIN FORMAT=\"JSON\" SELECT * FROM t",
        "EXPLAIN ANALYZE SELECT * FROM t",
        "EXPLAIN EXTENDED SELECT 1",
        "EXPLAIN PARTITIONS SELECT 1",
        "EXPLAIN (SELECT 1) UNION (SELECT 2)",
        "EXPLAIN WITH x AS (SELECT 1) SELECT * FROM x",
        "EXPLAIN TABLE t",
        "DESCRIBE SELECT * FROM t",
        "DESC SELECT 1",
        "DESCRIBE t",
        "DESC t",
        "DESCRIBE db.t",
        "DESCRIBE `t` `a`",
        "EXPLAIN t",
        "EXPLAIN db.t a",
        "ANALYZE SELECT * FROM t",
        "ANALYZE FORMAT=JSON SELECT * FROM t",
    ] {
        exactly(sql, true, false, TxEffect::None);
        writes(sql, false);
    }
    for sql in [
        "EXPLAIN SELECT * FROM t FOR UPDATE",
        "EXPLAIN INSERT INTO t VALUES (1)",
        "EXPLAIN REPLACE INTO t VALUES (1)",
        "EXPLAIN UPDATE t SET a = 1",
        "EXPLAIN DELETE FROM t",
        "EXPLAIN ANALYZE DELETE FROM t",
        "ANALYZE UPDATE t SET a = 1",
        "ANALYZE DELETE FROM t",
        "EXPLAIN FOR CONNECTION 5",
        "EXPLAIN SELECT GET_LOCK('a', 1)",
        "EXPLAIN SHOW TABLES",
        "EXPLAIN FORMAT=JSON INTO @plan SELECT 1",
        "DESCRIBE FOR CONNECTION 5",
    ] {
        write(sql);
    }
    pin("EXPLAIN FORMAT=JSON INTO @plan SELECT 1");
    writes("EXPLAIN DELETE FROM t", true);
    no_pin("EXPLAIN SELECT * FROM t");
    tx("EXPLAIN SELECT 1", TxEffect::None);
}

// ---- atomic and writes --------------------------------------------------------------

#[test]
fn only_a_single_statement_that_cannot_commit_is_atomic() {
    atomic("INSERT INTO t VALUES (1)", true);
    atomic("UPDATE t SET a = 1", true);
    atomic("SELECT 1;", true);
    atomic("SELECT GET_LOCK('a', 1)", true);
    atomic("DO GET_LOCK('a', 1)", true);
    atomic("DO 1", true);
    atomic("LOAD DATA INFILE 'f' INTO TABLE t", true);
    atomic("SET NAMES utf8", true);
    // A procedure or prepared statement may COMMIT before it fails.
    atomic("CALL p()", false);
    atomic("call p(1, @out)", false);
    atomic("EXECUTE s", false);
    atomic("EXECUTE IMMEDIATE 'COMMIT'", false);
    // Implicit commits.
    atomic("CREATE TABLE t (a INT)", false);
    atomic("DROP TABLE t", false);
    atomic("START SLAVE", false);
    atomic(
        "SET STATEMENT max_statement_time = 1 FOR UPDATE t SET a = 1",
        false,
    );
    atomic("XA END 'x'", false);
    // Several statements.
    atomic("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", false);
    // Transaction control.
    atomic("COMMIT", false);
    atomic("BEGIN", false);
    atomic("START TRANSACTION", false);
    atomic("SET autocommit = 1", false);
    // Unreadable text.
    atomic("INSERT INTO t VALUES ('x)", false);
}

#[test]
fn what_counts_as_a_write_for_read_your_writes() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "CREATE TABLE t (a INT)",
        "SELECT NEXT VALUE FOR s",
        "SELECT * FROM t FOR UPDATE",
        "CALL p()",
        "DO 1",
        "LOAD DATA LOCAL INFILE 'f' INTO TABLE t",
        "LOAD XML INFILE 'f' INTO TABLE t",
        "EXECUTE s",
        "EXPLAIN ANALYZE DELETE FROM t",
        "SELECT 1; INSERT INTO t VALUES (1)",
        "SET @x = 1; INSERT INTO t VALUES (1)",
        "SET STATEMENT max_statement_time = 1 FOR INSERT INTO t VALUES (1)",
        "SELECT 'unterminated",
    ] {
        writes(sql, true);
    }
    for sql in [
        "SELECT 1",
        "SAVEPOINT s",
        "RELEASE SAVEPOINT s",
        "ROLLBACK TO SAVEPOINT s",
        "BEGIN",
        "START TRANSACTION READ ONLY",
        "COMMIT",
        "ROLLBACK",
        "XA START 'x'",
        "SET @x = 1",
        "SET NAMES utf8",
        "USE db",
        "SHOW TABLES",
        "PREPARE s FROM 'SELECT 1'",
        "DEALLOCATE PREPARE s",
        "LOCK TABLES t READ",
        "UNLOCK TABLES",
        "HANDLER t OPEN",
        "DESCRIBE t",
        "EXPLAIN SELECT 1",
    ] {
        writes(sql, false);
    }
}

// ---- lexical details ----------------------------------------------------------------

#[test]
fn numbers_and_identifiers() {
    read("SELECT 1, 1.5, .5, 1e5, 1E-5, 1.5e+3, 0x1F, 0b01, 1a FROM t");
    // An identifier may start with digits; a number may run into a word after it.
    read("SELECT 1insert FROM t");
    write("SELECT 1e5insert INTO t");
    read("SELECT 0x1Finsert, 0xZ, 0b2 FROM t");
    read("SELECT $a, a$b, `$` FROM t");
    read("SELECT 1+1, 2-1, 3*4, 8/2, 5%2, 1<<2, a||b, a&&b, a<=>b, a->'$.b', a->>'$.b' FROM t");
}

#[test]
fn tokens_without_whitespace_between() {
    write("SELECT*FROM t FOR UPDATE");
    write("SELECT(1)FOR UPDATE");
    read("SELECT`a`FROM`t`");
    write("SELECT@x");
    pin("SELECT@x:=1");
    write("SELECT'a'INTO@v");
    exactly("SELECT 1;DELETE FROM t", false, false, TxEffect::None);
}

#[test]
fn non_ascii_text() {
    read("SELECT 'ä日本', `名前`, ünïcode FROM tätä WHERE x = 'ö'");
    read("SELECT 名前 FROM t -- ünïcode FOR UPDATE");
    write("SELECT 名前 FROM t FOR UPDATE");
    read("SELECT 'é' /* é */ # é\n");
}

#[test]
fn malformed_text_goes_to_the_primary_without_tx_effect() {
    for sql in [
        "SELECT 'abc",
        "SELECT \"abc",
        "SELECT `abc",
        "SELECT /* x",
        "SELECT /*! x",
        "SELECT /*!50000 x",
        "SELECT /*+ x",
        "SELECT (1",
        "SELECT 1)",
        "SELECT 1); SELECT (2",
        "BEGIN; SELECT 'x",
        "COMMIT; SELECT 1)",
        "SELECT 1 \0",
        "SELECT 1 # \0 x\n",
        "SELECT (1;)",
        "CREATE PROCEDURE p() BEGIN SELECT (1; END",
    ] {
        malformed(sql);
    }
    // MySQL runs a batch statement by statement: transaction control before the unreadable
    // part may have run.
    assert!(class("BEGIN; SELECT 'x").tx_unsure);
    assert!(class("COMMIT; SELECT 1)").tx_unsure);
    assert!(!class("SELECT (1").tx_unsure);
    // A NUL byte inside a literal is data.
    read("SELECT 'a\0b'");
    // Pinning is reported as far as seen.
    let c = class("SET @x = 1; SELECT 'x");
    assert!(!c.read_only && c.pins_session && c.tx == TxEffect::None && !c.atomic && c.writes);
    pin("SET @x = 1, @y = 'x");
}

#[test]
fn fuzzed_input_never_panics() {
    let pieces = [
        "SELECT",
        " ",
        "'",
        "''",
        "\"",
        "\\",
        "`",
        "(",
        ")",
        ";",
        "-- ",
        "--",
        "#",
        "\n",
        "/*",
        "*/",
        "/*!",
        "/*!50000",
        "/*M!",
        "/*+",
        "FOR",
        "UPDATE",
        "SHARE",
        "get_lock",
        ".",
        "@",
        "@@",
        ":=",
        ":",
        "ä",
        "日",
        "BEGIN",
        "END",
        "CREATE",
        "PROCEDURE",
        "EXPLAIN",
        "$",
        "0x",
        "1",
        "e",
        "INTO",
        "REPLACE",
        "SET",
        "autocommit",
        "=",
        "0",
        ",",
        "?",
        "\0",
        "x",
    ];
    let extra = vec!["x".to_owned(), "a.x".to_owned()];
    fuzz_pieces(&pieces, &extra, 30_000);
}

#[test]
fn long_input_is_linear() {
    let (plain, locking) = long_select(|i| format!("`c{i}` + 'x''y' + \"z\" /* c */ + "));
    read(&plain);
    write(&locking);
}

#[test]
fn dispatch_by_backend() {
    use crate::BackendKind;
    let mysql = |sql: &str| super::super::classify_for(BackendKind::Mysql, sql, &[]);
    let pg = |sql: &str| super::super::classify_for(BackendKind::Postgres, sql, &[]);
    // `#` is a comment in MySQL only.
    assert!(mysql("SELECT 1 # x FOR UPDATE").read_only);
    assert!(!pg("SELECT 1 # x FOR UPDATE").read_only);
    assert!(mysql("SELECT `a` FROM t").read_only);
    assert!(!mysql("SELECT @x").read_only);
    assert!(!pg("SELECT nextval('s')").read_only);
    assert!(mysql("SELECT pg_advisory_lock(1)").read_only);
    assert!(!pg("SELECT pg_advisory_lock(1)").read_only);
}
