//! The multi-alias unit of work: commit all, roll back all it can, and an honest account when
//! a COMMIT fails half-way.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_multidb::{CommitFailure, Config, DatabaseConfig, Databases, UnitOfWorkError};

use crate::common::Scratch;
use crate::pg;

diesel::table! { parents (id) { id -> Integer, } }
diesel::table! { children (id) { id -> Integer, parent_id -> Integer, } }

/// A foreign key checked only at COMMIT: inserting an orphan child succeeds, COMMIT fails.
const SCHEMA: &str = "CREATE TABLE parents (id INTEGER PRIMARY KEY); \
    CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL \
    REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);";

type E = Box<dyn std::error::Error + Send + Sync>;

fn registry(a: String, b: String) -> Databases {
    let dbs = Config::new()
        .database("default", DatabaseConfig::new(a))
        .database("other", DatabaseConfig::new(b))
        .build()
        .unwrap();
    for alias in ["default", "other"] {
        dbs.using(alias).unwrap().batch_execute(SCHEMA).unwrap();
    }
    dbs
}

fn sqlite_pair(s: &Scratch) -> Databases {
    registry(s.sqlite_url("a"), s.sqlite_url("b"))
}

fn parent_count(dbs: &Databases, alias: &str) -> i64 {
    parents::table
        .count()
        .get_result(&mut *dbs.using(alias).unwrap())
        .unwrap()
}

fn add_parent(conn: &mut diesel_multidb::AnyConnection, id: i32) -> QueryResult<usize> {
    diesel::insert_into(parents::table)
        .values(parents::id.eq(id))
        .execute(conn)
}

fn add_orphan(conn: &mut diesel_multidb::AnyConnection) -> QueryResult<usize> {
    diesel::insert_into(children::table)
        .values((children::id.eq(1), children::parent_id.eq(999)))
        .execute(conn)
}

#[test]
fn commits_every_alias() {
    let s = Scratch::new();
    let dbs = sqlite_pair(&s);
    let mut uow = dbs.unit_of_work();
    add_parent(uow.using("default").unwrap(), 1).unwrap();
    add_parent(uow.using("other").unwrap(), 2).unwrap();
    add_parent(uow.using("default").unwrap(), 3).unwrap();
    assert_eq!(uow.aliases().collect::<Vec<_>>(), ["default", "other"]);
    assert_eq!(uow.commit().unwrap(), ["default", "other"]);
    assert_eq!(parent_count(&dbs, "default"), 2);
    assert_eq!(parent_count(&dbs, "other"), 1);
}

#[test]
fn an_error_in_the_closure_rolls_back_every_alias() {
    let s = Scratch::new();
    let dbs = sqlite_pair(&s);
    let r: Result<(), E> = dbs.in_unit_of_work(|uow| {
        add_parent(uow.using("default")?, 1)?;
        add_parent(uow.using("other")?, 2)?;
        Err("abort".into())
    });
    assert_eq!(r.unwrap_err().to_string(), "abort");
    assert_eq!(parent_count(&dbs, "default"), 0);
    assert_eq!(parent_count(&dbs, "other"), 0);

    // Dropping without commit rolls back too.
    {
        let mut uow = dbs.unit_of_work();
        add_parent(uow.using("default").unwrap(), 1).unwrap();
    }
    assert_eq!(parent_count(&dbs, "default"), 0);
}

#[test]
fn a_failed_first_commit_rolls_back_the_rest() {
    let s = Scratch::new();
    let dbs = sqlite_pair(&s);
    let mut uow = dbs.unit_of_work();
    add_orphan(uow.using("default").unwrap()).unwrap();
    add_parent(uow.using("other").unwrap(), 1).unwrap();
    let e = uow.commit().unwrap_err();
    match &e {
        UnitOfWorkError::Commit(c) => {
            let CommitFailure {
                committed,
                failed,
                rolled_back,
                rollback_failed,
                ..
            } = &**c;
            assert!(committed.is_empty());
            assert_eq!(failed, "default");
            assert_eq!(rolled_back, &["other"]);
            assert!(rollback_failed.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("unit of work: commit failed on database `default`"),
        "{e}"
    );
    assert_eq!(parent_count(&dbs, "other"), 0);
    // The connections went back to their pools in a usable state.
    add_parent(&mut dbs.using("default").unwrap(), 5).unwrap();
    assert_eq!(parent_count(&dbs, "default"), 1);
}

#[test]
fn a_failed_later_commit_leaves_earlier_aliases_committed_and_says_so() {
    let s = Scratch::new();
    let dbs = sqlite_pair(&s);
    let r: Result<(), E> = dbs.in_unit_of_work(|uow| {
        add_parent(uow.using("default")?, 1)?;
        add_orphan(uow.using("other")?)?;
        Ok(())
    });
    let e = r.unwrap_err();
    let e = e
        .downcast_ref::<UnitOfWorkError>()
        .expect("a unit-of-work error");
    match e {
        UnitOfWorkError::Commit(c) => {
            let CommitFailure {
                committed,
                failed,
                rolled_back,
                ..
            } = &**c;
            assert_eq!(committed, &["default"]);
            assert_eq!(failed, "other");
            assert!(rolled_back.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        e.to_string().contains("already committed: `default`"),
        "{e}"
    );
    // Not two-phase commit: the first alias kept its write.
    assert_eq!(parent_count(&dbs, "default"), 1);
}

#[test]
fn postgres_and_sqlite_in_one_unit_of_work() {
    let s = Scratch::new();
    let db = pg::fresh("uow_mixed");
    let dbs = registry(db.primary_url.clone(), s.sqlite_url("other"));

    // Both commit.
    let r: Result<(), E> = dbs.in_unit_of_work(|uow| {
        add_parent(uow.using("default")?, 1)?;
        add_parent(uow.using("other")?, 1)?;
        Ok(())
    });
    r.unwrap();
    assert_eq!(parent_count(&dbs, "default"), 1);
    assert_eq!(parent_count(&dbs, "other"), 1);

    // PostgreSQL fails at COMMIT first: SQLite is rolled back.
    let mut uow = dbs.unit_of_work();
    add_orphan(uow.using("default").unwrap()).unwrap();
    add_parent(uow.using("other").unwrap(), 2).unwrap();
    match uow.commit().unwrap_err() {
        UnitOfWorkError::Commit(c) => {
            assert_eq!(c.failed, "default");
            assert_eq!(c.rolled_back, ["other"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(parent_count(&dbs, "other"), 1);
    assert_eq!(parent_count(&dbs, "default"), 1);
}
