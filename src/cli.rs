//! The `diesel-multidb` command line: `migrate`, `showmigrations`, `check`, `topology`
//! (feature `cli`).
//!
//! Two ways to use it:
//!
//! - the standalone binary, `cargo install diesel-multidb --features cli` (or
//!   `cargo run --features cli --bin diesel-multidb -- ...`), which routes migrations by the
//!   config file's `[apps]` map and finds the apps in its `migrations_dir`;
//! - your own small binary (Django's `manage.py`), which adds the routers and apps declared in
//!   code and gets the same commands:
//!
//! ```no_run
//! // src/bin/manage.rs
//! use diesel_multidb::{App, PrimaryReplicaRouter};
//!
//! fn main() -> std::process::ExitCode {
//!     diesel_multidb::cli::run(|databases| {
//!         databases
//!             .router(PrimaryReplicaRouter::new("default").replica("replica"))
//!             .app(App::new("blog").migrations_dir("migrations/blog"))
//!     })
//! }
//! ```
//!
//! The configuration comes from `--config PATH` (or `DIESEL_MULTIDB_CONFIG`), by default
//! `multidb.toml` in the working directory, with the environment overrides applied
//! (`DATABASE_URL`, `DATABASE_URL_<ALIAS>`); when the default file does not exist,
//! `DATABASE_URL` alone declares `default`.
//!
//! Exit status: 0 on success, 1 on a failure (bad configuration, failed migration, unreachable
//! database), 2 on a usage error. Errors go to standard error, prefixed `error:`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::builder::DatabasesBuilder;
use crate::config::{Config, DATABASE_URL_ENV};
use crate::migrate::MigrateEvent;
use crate::registry::Databases;
use crate::router::Hints;
use crate::topology_report::{describe, Topology};

/// The default configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "multidb.toml";
/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "DIESEL_MULTIDB_CONFIG";

#[derive(Debug, Parser)]
#[command(
    name = "diesel-multidb",
    version,
    about = "Migrations per database alias, routing checks and topology for diesel-multidb"
)]
struct Cli {
    /// The configuration file [default: multidb.toml]
    #[arg(long, short = 'c', global = true, env = CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pending migrations of every app the routers allow on an alias
    Migrate(MigrateArgs),
    /// List applied ([X]) and pending ([ ]) migrations per alias and app
    Showmigrations(SelectArgs),
    /// Validate the configuration and the routing (and, with --connect, reach every alias)
    Check(CheckArgs),
    /// Show each alias's hosts: reachable or not, primary or standby, replication lag
    Topology(SelectArgs),
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// The alias to migrate [default: default]
    #[arg(long, short = 'd', value_name = "ALIAS", conflicts_with = "all")]
    database: Option<String>,
    /// Migrate every alias (mirrors are skipped)
    #[arg(long)]
    all: bool,
    /// Show what would run where, without running it
    #[arg(long)]
    plan: bool,
}

#[derive(Debug, Args)]
struct SelectArgs {
    /// Only this alias [default: every alias]
    #[arg(long, short = 'd', value_name = "ALIAS")]
    database: Option<String>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Also open a connection to every alias
    #[arg(long)]
    connect: bool,
}

/// Runs the command line from the process arguments. `setup` adds the routers and apps
/// declared in code to the builder made from the configuration (the standalone binary passes
/// it through unchanged).
pub fn run(setup: impl FnOnce(DatabasesBuilder) -> DatabasesBuilder) -> ExitCode {
    run_from(std::env::args_os(), setup)
}

/// [`run`] with explicit arguments (the first is the program name).
pub fn run_from<I, T>(args: I, setup: impl FnOnce(DatabasesBuilder) -> DatabasesBuilder) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match execute(cli, setup, &mut out) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            let _ = out.flush();
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

type Out<'a> = &'a mut dyn Write;

fn load_config(path: Option<PathBuf>) -> Result<Config, String> {
    let config = match path {
        Some(p) => Config::from_file(&p).map_err(|e| error_chain(&e))?,
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            if p.exists() {
                Config::from_file(&p).map_err(|e| error_chain(&e))?
            } else if std::env::var_os(DATABASE_URL_ENV).is_some() {
                Config::new()
            } else {
                return Err(format!(
                    "no configuration: {DEFAULT_CONFIG_FILE} does not exist here, and neither --config, {CONFIG_ENV} nor {DATABASE_URL_ENV} is set"
                ));
            }
        }
    };
    Ok(config.with_env_overrides())
}

/// The error and its sources, `a: b: c` (redacted).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = inner.source();
    }
    crate::redact::redact(&s)
}

fn execute(
    cli: Cli,
    setup: impl FnOnce(DatabasesBuilder) -> DatabasesBuilder,
    out: Out<'_>,
) -> Result<u8, String> {
    let config = load_config(cli.config)?;
    let databases = setup(config.builder())
        .build()
        .map_err(|e| error_chain(&e))?;
    let io = |e: std::io::Error| format!("cannot write the output: {e}");
    match cli.command {
        Command::Migrate(args) => migrate(&databases, args, out).map(|()| 0),
        Command::Showmigrations(args) => show(&databases, args.database, out).map(|()| 0),
        Command::Check(args) => check(&databases, args.connect, out),
        Command::Topology(args) => topology(&databases, args.database, out)
            .map(|()| 0)
            .map_err(io),
    }
}

fn selected(databases: &Databases, alias: Option<String>) -> Result<Vec<String>, String> {
    match alias {
        Some(a) => {
            databases
                .alias(&a)
                .ok_or_else(|| format!("no database `{a}` is declared"))?;
            Ok(vec![a])
        }
        None => Ok(databases.aliases().map(|a| a.name().to_owned()).collect()),
    }
}

fn migrate(databases: &Databases, args: MigrateArgs, out: Out<'_>) -> Result<(), String> {
    let aliases = if args.all {
        selected(databases, None)?
    } else {
        selected(
            databases,
            Some(
                args.database
                    .unwrap_or_else(|| crate::DEFAULT_ALIAS.to_owned()),
            ),
        )?
    };
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    if args.plan {
        w(out, "Planned operations:".into());
        let mut any = false;
        for alias in &aliases {
            let plan = databases.plan(alias).map_err(|e| error_chain(&e))?;
            if let Some(primary) = &plan.mirror_of {
                w(out, format!("  {alias}: skipped (mirror of {primary})"));
                continue;
            }
            for m in &plan.migrations {
                any = true;
                w(out, format!("  {alias}: apply {}.{}", m.app, m.name));
            }
            if plan.migrations.is_empty() {
                w(out, format!("  {alias}: no migrations to apply"));
            }
        }
        if !any {
            w(out, "Nothing to do.".into());
        }
        return Ok(());
    }
    for alias in &aliases {
        let mut progress = |event: MigrateEvent<'_>| match event {
            MigrateEvent::Skipped { alias, mirror_of } => {
                w(out, format!("{alias}: skipped (mirror of {mirror_of})"));
            }
            MigrateEvent::Start { alias, pending } => {
                w(out, format!("Migrating {alias}: {pending} pending"));
            }
            MigrateEvent::Applying(m) => {
                let _ = write!(out, "  Applying {}.{} on {}...", m.app, m.name, m.alias);
                let _ = out.flush();
            }
            MigrateEvent::Applied(_, took) => {
                w(out, format!(" OK ({:.1} ms)", took.as_secs_f64() * 1000.0))
            }
        };
        if let Err(e) = databases.migrate_with(alias, &mut progress) {
            w(out, " FAILED".into());
            return Err(error_chain(&e));
        }
    }
    Ok(())
}

fn show(databases: &Databases, alias: Option<String>, out: Out<'_>) -> Result<(), String> {
    for alias in selected(databases, alias)? {
        let status = databases
            .show_migrations(&alias)
            .map_err(|e| error_chain(&e))?;
        let mut text = String::new();
        if let Some(primary) = &status.mirror_of {
            let _ = writeln!(text, "{alias} (mirror of {primary}: not migrated)");
        } else {
            let _ = writeln!(text, "{alias}");
            if status.apps.is_empty() {
                let _ = writeln!(text, " (no app migrates here)");
            }
            for app in &status.apps {
                let _ = writeln!(text, " {}", app.app);
                if app.migrations.is_empty() {
                    let _ = writeln!(text, "  (no migrations)");
                }
                for (name, applied) in &app.migrations {
                    let _ = writeln!(text, "  [{}] {name}", if *applied { "X" } else { " " });
                }
                for v in &app.unknown_applied {
                    let _ = writeln!(text, "  [X] {v} (applied, not among the app's migrations)");
                }
            }
        }
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn check(databases: &Databases, connect: bool, out: Out<'_>) -> Result<u8, String> {
    let mut t = String::new();
    let mut warnings = Vec::new();
    let _ = writeln!(t, "Databases:");
    for a in databases.aliases() {
        let mirror = a
            .mirror_of()
            .map(|p| format!(" (mirror of {p})"))
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "  {:<12} {:<8} {}{mirror}",
            a.name(),
            a.backend().to_string(),
            a.display_url()
        );
    }
    let _ = writeln!(t, "Routers (consulted in order):");
    if databases.router().is_empty() {
        let _ = writeln!(
            t,
            "  (none: everything reads, writes and migrates on default)"
        );
    }
    for (i, r) in databases.router().routers().enumerate() {
        let _ = writeln!(t, "  {}. {}", i + 1, r.name());
    }
    let models: Vec<_> = databases.models().collect();
    if !models.is_empty() {
        let _ = writeln!(t, "Models:");
        for m in &models {
            let read = databases.router().route_read(m, &Hints::new());
            let write = databases.router().route_write(m, &Hints::new());
            let _ = writeln!(
                t,
                "  {m:<28} read -> {:<12} write -> {}",
                read.alias, write.alias
            );
        }
    }
    let _ = writeln!(t, "Migrations allowed:");
    for app in databases.apps() {
        let on: Vec<&str> = databases
            .aliases()
            .filter(|a| a.mirror_of().is_none())
            .filter(|a| {
                databases
                    .router()
                    .allow_migrate(a.name(), app.label(), None, &Hints::new())
            })
            .map(|a| a.name())
            .collect();
        if on.is_empty() && app.has_migrations() {
            warnings.push(format!(
                "app `{}` has migrations but no database allows them",
                app.label()
            ));
        }
        let shown = if on.is_empty() {
            "(nowhere)".to_owned()
        } else {
            on.join(", ")
        };
        let _ = writeln!(t, "  {:<28} -> {shown}", app.label());
    }
    if databases.apps().is_empty() {
        let _ = writeln!(t, "  (no app declared)");
    }
    out.write_all(t.as_bytes()).map_err(|e| e.to_string())?;
    let mut failed = 0;
    if connect {
        let _ = writeln!(out, "Connections:");
        for a in databases.aliases() {
            match databases.ping(a.name()) {
                Ok(()) => {
                    let _ = writeln!(out, "  {:<12} ok", a.name());
                }
                Err(e) => {
                    failed += 1;
                    let _ = writeln!(out, "  {:<12} FAILED: {}", a.name(), error_chain(&*e));
                }
            }
        }
    }
    for w in &warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if failed > 0 {
        return Err(format!("{failed} database(s) could not be reached"));
    }
    let _ = writeln!(
        out,
        "System check identified no issues ({} warning(s)).",
        warnings.len()
    );
    Ok(0)
}

fn topology(databases: &Databases, alias: Option<String>, out: Out<'_>) -> std::io::Result<()> {
    let aliases = selected(databases, alias).map_err(std::io::Error::other)?;
    for name in aliases {
        let a = databases.alias(&name).expect("selected aliases exist");
        let mirror = a
            .mirror_of()
            .map(|p| format!(", mirror of {p}"))
            .unwrap_or_default();
        writeln!(out, "{name} ({}{mirror}) {}", a.backend(), a.display_url())?;
        match describe(&a.url) {
            Topology::Embedded { path, exists } => {
                let state = if exists {
                    "file exists"
                } else {
                    "file not created yet"
                };
                writeln!(out, "  embedded SQLite: {path} ({state})")?;
            }
            Topology::Invalid(reason) => writeln!(out, "  invalid URL: {reason}")?,
            Topology::Hosts(hosts) => {
                for h in hosts {
                    match h.state {
                        Ok(s) => {
                            let lag = match (s.role, s.lag) {
                                (crate::topology_report::Role::Standby, Some(l)) => {
                                    format!("  lag {:.3}s", l.as_secs_f64())
                                }
                                (crate::topology_report::Role::Standby, None) => {
                                    "  lag unknown".to_owned()
                                }
                                _ => String::new(),
                            };
                            writeln!(out, "  {:<24} reachable    {}{lag}", h.address, s.role)?;
                        }
                        Err(e) => writeln!(
                            out,
                            "  {:<24} unreachable  {}",
                            h.address,
                            e.replace('\n', " ")
                        )?,
                    }
                }
            }
        }
    }
    out.flush()
}
