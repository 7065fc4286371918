//! The CLI, run as a process: the standalone binary (routing by the config's app map) and a
//! manage.py-style binary (routers in code), checking output and exit status.
//!
//! Cargo builds this package's binaries before its integration tests and passes their paths
//! as `CARGO_BIN_EXE_<name>`: `standalone` is the root package's `src/bin/diesel-multidb.rs`
//! built here under another name, `manage` is `diesel_tests/src/bin/manage.rs`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::Scratch;
use crate::pg;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir);
    for var in [
        "DATABASE_URL",
        "DATABASE_URL_ANALYTICS",
        "DATABASE_URL_REPLICA",
        "DIESEL_MULTIDB_CONFIG",
        "MANAGE_BLOG_MIGRATIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run the CLI");
    let r = Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    assert!(
        !r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"),
        "a password leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

fn standalone(dir: &Path, args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_standalone"), dir, args, &[])
}

fn ok(r: &Run) -> &str {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    &r.stdout
}

/// Runs of spaces squashed to one, for checking column-aligned output.
fn squash(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_config(s: &Scratch, text: &str) {
    std::fs::write(s.path().join("multidb.toml"), text).unwrap();
}

#[test]
fn standalone_check_plan_migrate_show_and_topology() {
    let s = Scratch::new();
    s.standard_migrations();
    let db = pg::fresh("cli_standalone");
    let default = pg::with_password(&db.primary_url, "hunter2");
    write_config(
        &s,
        &format!(
            r#"
migrations_dir = "migrations"

[databases.default]
url = "{default}"

[databases.replica]
url = "{standby}"
mirror_of = "default"

[databases.analytics]
url = "sqlite://analytics.sqlite3"

[apps]
blog = "default"
analytics = "analytics"
"#,
            standby = db.standby_urls[0]
        ),
    );

    let r = standalone(s.path(), &["check"]);
    let out = ok(&r);
    assert!(
        squash(out).contains("default postgres postgres://postgres:********@"),
        "{out}"
    );
    assert!(out.contains("(mirror of default)"), "{out}");
    assert!(out.contains("1. AppLabelRouter"), "{out}");
    assert!(squash(out).contains("blog -> default"), "{out}");
    assert!(squash(out).contains("analytics -> analytics"), "{out}");
    assert!(out.contains("System check identified no issues"), "{out}");
    ok(&standalone(s.path(), &["check", "--connect"]));

    let r = standalone(s.path(), &["migrate", "--all", "--plan"]);
    assert_eq!(
        ok(&r),
        "Planned operations:\n\
         \x20 default: apply blog.2024-01-01-000000_create_posts\n\
         \x20 default: apply blog.2024-01-02-000000_create_comments\n\
         \x20 analytics: apply analytics.2024-01-01-000000_create_page_views\n\
         \x20 replica: skipped (mirror of default)\n"
    );
    assert!(
        !s.sqlite_path("analytics").exists()
            || ok(&standalone(
                s.path(),
                &["showmigrations", "-d", "analytics"]
            ))
            .contains("[ ]")
    );

    let r = standalone(s.path(), &["migrate", "--all"]);
    let out = ok(&r);
    for line in [
        "Migrating default: 2 pending",
        "  Applying blog.2024-01-01-000000_create_posts on default... OK (",
        "  Applying blog.2024-01-02-000000_create_comments on default... OK (",
        "Migrating analytics: 1 pending",
        "  Applying analytics.2024-01-01-000000_create_page_views on analytics... OK (",
        "replica: skipped (mirror of default)",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let r = standalone(s.path(), &["migrate"]);
    assert_eq!(ok(&r), "Migrating default: 0 pending\n");

    let r = standalone(s.path(), &["showmigrations"]);
    assert_eq!(
        ok(&r),
        "default\n blog\n  [X] 2024-01-01-000000_create_posts\n  [X] 2024-01-02-000000_create_comments\n\
         analytics\n analytics\n  [X] 2024-01-01-000000_create_page_views\n\
         replica (mirror of default: not migrated)\n"
    );

    pg::wait_for_replay();
    let r = standalone(s.path(), &["topology"]);
    let out = ok(&r);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("default (postgres) postgres://postgres:********@"),
        "{out}"
    );
    assert!(lines[1].contains("reachable    primary"), "{out}");
    assert!(
        lines[2].starts_with("analytics (sqlite) sqlite://analytics.sqlite3"),
        "{out}"
    );
    assert!(
        lines[3].contains("embedded SQLite: analytics.sqlite3 (file exists)"),
        "{out}"
    );
    assert!(
        lines[4].starts_with("replica (postgres, mirror of default)"),
        "{out}"
    );
    assert!(lines[5].contains("reachable    standby  lag "), "{out}");
}

#[test]
fn failures_exit_non_zero_with_a_clear_message() {
    let s = Scratch::new();
    s.migration(
        "blog",
        "2024-01-01-000000_good",
        "CREATE TABLE good (x INTEGER);",
    );
    s.migration("blog", "2024-01-02-000000_bad", "NOT SQL AT ALL;");
    write_config(
        &s,
        "migrations_dir = \"migrations\"\n[databases.default]\nurl = \"sqlite://d.sqlite3\"\n",
    );
    let r = standalone(s.path(), &["migrate"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Applying blog.2024-01-01-000000_good on default... OK"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Applying blog.2024-01-02-000000_bad on default... FAILED"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.starts_with(
            "error: migration blog.2024-01-02-000000_bad failed on database `default`"
        ),
        "{}",
        r.stderr
    );
    let r = standalone(s.path(), &["showmigrations"]);
    let out = ok(&r);
    assert!(
        out.contains("[X] 2024-01-01-000000_good") && out.contains("[ ] 2024-01-02-000000_bad"),
        "{out}"
    );

    // An unknown key, named with its table; the password on another line never shows.
    write_config(
        &s,
        "[databases.default]\nurl = \"postgres://u:hunter2@127.0.0.1:1/x\"\n[databases.analytics]\nurl = \"sqlite://a\"\nmax_sise = 3\n",
    );
    let r = standalone(s.path(), &["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("line 5") && r.stderr.contains("in [databases.analytics]"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("unknown field `max_sise`"),
        "{}",
        r.stderr
    );

    // Validation at start-up: a mirror of an unknown alias; a bad URL.
    write_config(
        &s,
        "[databases.default]\nurl = \"sqlite://d\"\n[databases.replica]\nmirror_of = \"primary\"\n",
    );
    let r = standalone(s.path(), &["check"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: database `replica` is a mirror of `primary`, which is not declared\n"
        )
    );
    write_config(
        &s,
        "[databases.default]\nurl = \"postgres://u:hunter2@db:99999/x\"\n",
    );
    let r = standalone(s.path(), &["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "database `default` has a bad url: invalid PostgreSQL URL: invalid port \"99999\""
        ),
        "{}",
        r.stderr
    );

    // No default; an unknown alias; an unreachable database with --connect.
    write_config(&s, "[databases.other]\nurl = \"sqlite://o\"\n");
    assert!(standalone(s.path(), &["check"])
        .stderr
        .contains("no `default` database is declared"));
    write_config(&s, "[databases.default]\nurl = \"sqlite://d\"\n[databases.down]\nurl = \"postgres://u:hunter2@127.0.0.1:1/x\"\nconnection_timeout_secs = 1\n");
    let r = standalone(s.path(), &["migrate", "--database", "nope"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: no database `nope` is declared\n")
    );
    let r = standalone(s.path(), &["check", "--connect"]);
    assert_eq!(r.code, 1);
    assert!(
        squash(&r.stdout).contains("down FAILED: cannot get a connection to database `down`"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "error: 1 database(s) could not be reached\n");

    // Usage errors exit 2; no configuration at all exits 1.
    assert_eq!(
        standalone(s.path(), &["migrate", "--all", "--database", "x"]).code,
        2
    );
    let empty = Scratch::new();
    let r = standalone(empty.path(), &["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no configuration: multidb.toml does not exist here"),
        "{}",
        r.stderr
    );
}

#[test]
fn database_url_alone_and_an_explicit_config_path() {
    let s = Scratch::new();
    let url = s.sqlite_url("env");
    let r = run(
        env!("CARGO_BIN_EXE_standalone"),
        s.path(),
        &["check", "--connect"],
        &[("DATABASE_URL", &url)],
    );
    assert!(squash(ok(&r)).contains("default sqlite"), "{}", r.stdout);
    std::fs::create_dir_all(s.path().join("conf")).unwrap();
    std::fs::write(
        s.path().join("conf/app.toml"),
        "[databases.default]\nurl = \"sqlite://from-file.sqlite3\"\n",
    )
    .unwrap();
    let r = standalone(s.path(), &["--config", "conf/app.toml", "check"]);
    assert!(
        ok(&r).contains("sqlite://from-file.sqlite3"),
        "{}",
        r.stdout
    );
    let r = standalone(s.path(), &["check", "--config", "conf/missing.toml"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: cannot read config file conf/missing.toml"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_manage_binary_with_routers_in_code() {
    let s = Scratch::new();
    let root = s.standard_migrations();
    // The config has no [apps] map: the routers in code decide.
    write_config(
        &s,
        "[databases.default]\nurl = \"sqlite://default.sqlite3\"\n\
         [databases.replica]\nmirror_of = \"default\"\n\
         [databases.analytics]\nurl = \"sqlite://analytics.sqlite3\"\n",
    );
    let blog = root.join("blog");
    let manage = |args: &[&str]| {
        run(
            env!("CARGO_BIN_EXE_manage"),
            s.path(),
            args,
            &[("MANAGE_BLOG_MIGRATIONS", blog.to_str().unwrap())],
        )
    };
    let r = manage(&["check"]);
    let out = ok(&r);
    assert!(
        squash(out).contains("1. AnalyticsRouter\n2. PrimaryReplicaRouter"),
        "{out}"
    );
    assert!(
        squash(out).contains("analytics.page_views read -> analytics write -> analytics"),
        "{out}"
    );
    assert!(
        squash(out).contains("blog.posts read -> replica write -> default"),
        "{out}"
    );
    assert!(squash(out).contains("blog -> default"), "{out}");

    let r = manage(&["migrate", "--all"]);
    let out = ok(&r);
    assert!(out.contains("Migrating default: 2 pending"), "{out}");
    assert!(out.contains("Migrating analytics: 0 pending"), "{out}");
    assert!(
        out.contains("replica: skipped (mirror of default)"),
        "{out}"
    );
}

#[test]
fn misleading_failures_are_named() {
    let s = Scratch::new();
    s.standard_migrations();
    // Every host of `down` refuses; `default` is a SQLite file not created yet.
    write_config(
        &s,
        "migrations_dir = \"migrations\"\n\
         [databases.default]\nurl = \"sqlite://d.sqlite3\"\n\
         [databases.down]\nurl = \"postgres://u:hunter2@127.0.0.1:1,127.0.0.1:2/x\"\nconnection_timeout_secs = 1\n",
    );
    // topology: an unknown alias is named; an alias none of whose hosts answers exits 1.
    let r = standalone(s.path(), &["topology", "-d", "nope"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: no database `nope` is declared\n")
    );
    let r = standalone(s.path(), &["topology", "-d", "down"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("127.0.0.1:1") && r.stdout.contains("unreachable"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "error: no host of database `down` answers\n");
    ok(&standalone(s.path(), &["topology", "-d", "default"]));

    // migrate --plan creates no SQLite file.
    let r = standalone(s.path(), &["migrate", "--plan"]);
    assert!(ok(&r).contains("default: apply blog.2024-01-01-000000_create_posts"));
    assert!(
        !s.path().join("d.sqlite3").exists(),
        "the plan created the file"
    );

    // A connection failing before any migration: no lone FAILED, the alias and why.
    let r = standalone(s.path(), &["migrate", "-d", "down"]);
    assert_eq!(r.code, 1);
    assert!(!r.stdout.contains("FAILED"), "{}", r.stdout);
    assert!(
        r.stderr.starts_with(
            "error: cannot migrate: cannot get a connection to database `down` within "
        ) && r.stderr.contains("connection refused"),
        "{}",
        r.stderr
    );

    // check without routers says where the apps really migrate (as migrate --plan --all).
    let r = standalone(s.path(), &["check"]);
    let out = squash(ok(&r));
    assert!(
        out.contains("(none: every read and write goes to default; every app migrates on every database that is not a mirror)"),
        "{out}"
    );
    assert!(out.contains("blog -> default, down"), "{out}");
    assert!(out.contains("analytics -> default, down"), "{out}");

    // A DATABASE_URL_<NAME> for no declared alias is an error, with a suggestion.
    let r = run(
        env!("CARGO_BIN_EXE_standalone"),
        s.path(),
        &["check"],
        &[("DATABASE_URL_DONW", "sqlite://x")],
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: DATABASE_URL_DONW is set but no database it would override is declared (did you mean DATABASE_URL_DOWN?)\n"
        )
    );

    // A URL without a scheme is described, never echoed.
    write_config(
        &s,
        "[databases.default]\nurl = \"app:hunter2@127.0.0.1:5432/app\"\n",
    );
    let r = standalone(s.path(), &["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: database `default` has a bad url: not a database URL (no scheme;"),
        "{}",
        r.stderr
    );
}

#[test]
fn reverse_migrations_from_the_command_line() {
    let s = Scratch::new();
    let root = s.standard_migrations();
    std::fs::write(
        root.join("blog/2024-01-02-000000_create_comments/down.sql"),
        "DROP TABLE comments;",
    )
    .unwrap();
    write_config(
        &s,
        "migrations_dir = \"migrations\"\n[databases.default]\nurl = \"sqlite://d.sqlite3\"\n",
    );
    ok(&standalone(s.path(), &["migrate"]));
    let r = standalone(
        s.path(),
        &[
            "migrate",
            "--app",
            "blog",
            "--to",
            "2024-01-01-000000_create_posts",
            "--plan",
        ],
    );
    assert_eq!(
        ok(&r),
        "Planned operations:\n  default: revert blog.2024-01-02-000000_create_comments\n"
    );
    let r = standalone(
        s.path(),
        &[
            "migrate",
            "-d",
            "default",
            "--app",
            "blog",
            "--to",
            "2024-01-01-000000_create_posts",
        ],
    );
    assert!(
        ok(&r).contains("Reverting blog.2024-01-02-000000_create_comments on default... OK"),
        "{}",
        r.stdout
    );
    let r = standalone(s.path(), &["showmigrations"]);
    let out = ok(&r);
    assert!(
        out.contains("[X] 2024-01-01-000000_create_posts")
            && out.contains("[ ] 2024-01-02-000000_create_comments"),
        "{out}"
    );
    // `--app` alone applies the app's pending migrations; `--to` needs `--app`.
    assert!(ok(&standalone(s.path(), &["migrate", "--app", "blog"]))
        .contains("Applying blog.2024-01-02-000000_create_comments on default... OK"));
    assert_eq!(standalone(s.path(), &["migrate", "--to", "zero"]).code, 2);
}

#[test]
fn check_warns_when_a_router_captures_an_app_of_the_app_map() {
    let s = Scratch::new();
    let root = s.standard_migrations();
    // The manage binary's PrimaryReplicaRouter (only_apps blog) comes before the config's
    // [apps], which sends blog to analytics.
    write_config(
        &s,
        "[databases.default]\nurl = \"sqlite://default.sqlite3\"\n\
         [databases.replica]\nmirror_of = \"default\"\n\
         [databases.analytics]\nurl = \"sqlite://analytics.sqlite3\"\n\
         [apps]\nblog = \"analytics\"\n",
    );
    let r = run(
        env!("CARGO_BIN_EXE_manage"),
        s.path(),
        &["check"],
        &[(
            "MANAGE_BLOG_MIGRATIONS",
            root.join("blog").to_str().unwrap(),
        )],
    );
    let out = ok(&r);
    assert!(
        out.contains("3. AppLabelRouter (the config's [apps])"),
        "{out}"
    );
    assert!(
        out.contains("warning: router #1 (PrimaryReplicaRouter) sends writes of model blog.posts to `default`, but [apps] migrates app `blog` on `analytics`"),
        "{out}"
    );
    assert!(
        out.contains("warning: router #0 (AnalyticsRouter) forbids the migrations of app `blog` on `analytics`, but [apps] migrates it on `analytics`"),
        "{out}"
    );
}
