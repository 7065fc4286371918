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
//! database, `topology` finding an alias none of whose hosts answers), 2 on a usage error.
//! Errors go to standard error, prefixed `error:`, with their causes (`a: b: c`). No output
//! ever shows a password: URLs are shown in their redacted form, and every message is
//! scrubbed of the secrets of every configured URL.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use clap::{Args, Parser, Subcommand};

use crate::registry::alias_url;
use crate::registry::apps::ModelInfo;
use crate::registry::builder::DatabasesBuilder;
use crate::registry::config::{Config, DATABASE_URL_ENV};
use crate::registry::databases::Databases;
use crate::registry::migrate::{AliasMigrations, Direction, MigrateEvent, MigrateTo};
use crate::registry::router::{DatabaseRouter, Hints};

mod topology;

use topology::{describe, AliasServers};

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
    /// Run the pending migrations of every app the routers allow on an alias, or take one app
    /// to a version (backwards too)
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
    /// Only this app: with --to, to that version; without, every pending migration of it
    #[arg(long, short = 'a', value_name = "APP", conflicts_with = "all")]
    app: Option<String>,
    /// With --app: apply or revert the app's migrations so that VERSION is the last applied
    /// one (a version, a full name or the start of one); `zero` reverts them all
    #[arg(long, value_name = "VERSION", requires = "app")]
    to: Option<String>,
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
    let mut out = Scrubbed {
        inner: stdout.lock(),
        secrets: Vec::new(),
    };
    match execute(cli, setup, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = out.flush();
            eprintln!("error: {}", out.scrub(&message));
            ExitCode::FAILURE
        }
    }
}

/// Standard output, with every secret of the configured URLs masked (a last line of defence:
/// what is written is already built from redacted URLs).
struct Scrubbed<W: Write> {
    inner: W,
    secrets: Vec<String>,
}

impl<W: Write> Scrubbed<W> {
    fn scrub(&self, text: &str) -> String {
        crate::redact::scrub_all(text, self.secrets.iter().map(String::as_str))
    }
}

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = self.scrub(&text);
        self.inner.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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

/// The error and its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

fn execute<W: Write>(
    cli: Cli,
    setup: impl FnOnce(DatabasesBuilder) -> DatabasesBuilder,
    out: &mut Scrubbed<W>,
) -> Result<(), String> {
    let config = load_config(cli.config)?;
    out.secrets = config
        .databases
        .values()
        .filter_map(|d| d.url.as_deref())
        .flat_map(|u| {
            alias_url::shown(u)
                .secrets()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let databases = setup(config.builder())
        .build()
        .map_err(|e| error_chain(&e))?;
    match cli.command {
        Command::Migrate(args) => migrate(&databases, args, out),
        Command::Showmigrations(args) => show(&databases, args.database, out),
        Command::Check(args) => check(&databases, args.connect, out),
        Command::Topology(args) => topology(&databases, args.database, out),
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

fn line(out: Out<'_>, text: &str) {
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
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
    let to: Option<MigrateTo> = args.app.as_ref().map(|_| {
        args.to.as_deref().map_or(MigrateTo::Latest, |v| {
            v.parse().unwrap_or(MigrateTo::Latest)
        })
    });
    let app = args.app.as_deref();
    if args.plan {
        line(out, "Planned operations:");
        let mut any = false;
        for alias in &aliases {
            let plan: AliasMigrations = match (app, &to) {
                (Some(app), Some(to)) => databases.plan_app_to(alias, app, to),
                _ => databases.plan(alias),
            }
            .map_err(|e| error_chain(&e))?;
            if let Some(primary) = &plan.mirror_of {
                line(out, &format!("  {alias}: skipped (mirror of {primary})"));
                continue;
            }
            for m in &plan.migrations {
                any = true;
                let verb = match m.direction {
                    Direction::Backward => "revert",
                    _ => "apply",
                };
                line(out, &format!("  {alias}: {verb} {}.{}", m.app, m.name));
            }
            if plan.migrations.is_empty() {
                line(out, &format!("  {alias}: no migrations to apply"));
            }
        }
        if !any {
            line(out, "Nothing to do.");
        }
        return Ok(());
    }
    for alias in &aliases {
        // Whether an "Applying ..." line waits for its outcome.
        let mut open = false;
        let mut progress = |event: MigrateEvent<'_>| match event {
            MigrateEvent::Skipped { alias, mirror_of } => {
                line(out, &format!("{alias}: skipped (mirror of {mirror_of})"));
            }
            MigrateEvent::Start { alias, pending } => {
                line(out, &format!("Migrating {alias}: {pending} pending"));
            }
            MigrateEvent::Applying(m) | MigrateEvent::Reverting(m) => {
                let verb = match m.direction {
                    Direction::Backward => "Reverting",
                    _ => "Applying",
                };
                let _ = write!(out, "  {verb} {}.{} on {}...", m.app, m.name, m.alias);
                let _ = out.flush();
                open = true;
            }
            MigrateEvent::Applied(_, took) | MigrateEvent::Reverted(_, took) => {
                open = false;
                line(out, &format!(" OK ({:.1} ms)", took.as_secs_f64() * 1000.0));
            }
        };
        let result = match (app, &to) {
            (Some(app), Some(to)) => databases.migrate_app_to_with(alias, app, to, &mut progress),
            _ => databases.migrate_with(alias, &mut progress),
        };
        if let Err(e) = result {
            if open {
                line(out, " FAILED");
            }
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

/// A model standing for "any model of `app`", for asking routers about an app that declares
/// no model. Labels are interned once per process.
fn probe_model(app: &str) -> ModelInfo {
    static LABELS: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut labels = LABELS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let label = match labels.get(app) {
        Some(l) => *l,
        None => {
            let l: &'static str = Box::leak(app.to_owned().into_boxed_str());
            labels.insert(l);
            l
        }
    };
    ModelInfo::new(label, "*")
}

/// Routers consulted before the config's `[apps]` map that decide, for an app the map names,
/// something other than the map: where its models are read or written, or where it
/// migrates. Its tables then are not where its queries go.
fn capture_warnings(databases: &Databases) -> Vec<String> {
    let chain = databases.router();
    let routers: Vec<&dyn DatabaseRouter> = chain.routers().collect();
    if databases.catalog.app_map.is_empty() || routers.is_empty() {
        return Vec::new();
    }
    let map_index = routers.len() - 1;
    let hints = Hints::new();
    let mut warnings = Vec::new();
    for (app, mapped) in &databases.catalog.app_map {
        let declared: Vec<ModelInfo> = databases
            .models()
            .filter(|m| m.app_label() == app)
            .collect();
        let models = if declared.is_empty() {
            vec![probe_model(app)]
        } else {
            declared
        };
        for model in &models {
            let shown = if model.model_name() == "*" {
                format!("app `{app}`")
            } else {
                format!("model {model}")
            };
            for (action, route) in [
                ("reads", chain.route_read(model, &hints)),
                ("writes", chain.route_write(model, &hints)),
            ] {
                if let crate::RouteReason::Router { index, name } = &route.reason {
                    if *index < map_index && route.alias != *mapped {
                        warnings.push(format!(
                            "router #{index} ({name}) sends {action} of {shown} to `{}`, but [apps] migrates app `{app}` on `{mapped}`",
                            route.alias
                        ));
                    }
                }
            }
        }
        for alias in databases.aliases().filter(|a| a.mirror_of().is_none()) {
            let by_map = alias.name() == mapped;
            let first = routers[..map_index].iter().enumerate().find_map(|(i, r)| {
                r.allow_migrate(alias.name(), app, None, &hints)
                    .map(|v| (i, r, v))
            });
            if let Some((i, r, allowed)) = first {
                if allowed != by_map {
                    warnings.push(format!(
                        "router #{i} ({}) {} the migrations of app `{app}` on `{}`, but [apps] migrates it on `{mapped}`",
                        r.name(),
                        if allowed { "allows" } else { "forbids" },
                        alias.name()
                    ));
                }
            }
        }
    }
    warnings
}

fn check(databases: &Databases, connect: bool, out: Out<'_>) -> Result<(), String> {
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
    let router_count = databases.router().routers().count();
    if router_count == 0 {
        let _ = writeln!(
            t,
            "  (none: every read and write goes to default; every app migrates on every database that is not a mirror)"
        );
    }
    for (i, r) in databases.router().routers().enumerate() {
        let from_config = !databases.catalog.app_map.is_empty() && i + 1 == router_count;
        let _ = writeln!(
            t,
            "  {}. {}{}",
            i + 1,
            r.name(),
            if from_config {
                " (the config's [apps])"
            } else {
                ""
            }
        );
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
    // The same rule as `migrate --plan --all`: every alias that is not a mirror and where
    // `allow_migrate` is true.
    let _ = writeln!(t, "Migrations allowed:");
    for app in databases.apps() {
        let on: Vec<&str> = databases
            .aliases()
            .filter(|a| a.mirror_of().is_none())
            .filter(|a| {
                databases
                    .apps_allowed_on(a.name())
                    .iter()
                    .any(|x| x.label() == app.label())
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
    warnings.extend(capture_warnings(databases));
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
    Ok(())
}

fn topology(databases: &Databases, alias: Option<String>, out: Out<'_>) -> Result<(), String> {
    let aliases = selected(databases, alias)?;
    let io = |e: std::io::Error| format!("cannot write the output: {e}");
    let mut down = Vec::new();
    for name in aliases {
        let a = databases.alias(&name).expect("selected aliases exist");
        let mirror = a
            .mirror_of()
            .map(|p| format!(", mirror of {p}"))
            .unwrap_or_default();
        writeln!(out, "{name} ({}{mirror}) {}", a.backend(), a.display_url()).map_err(io)?;
        let servers = describe(&a.target);
        if servers.all_down() {
            down.push(format!("`{name}`"));
        }
        match servers {
            AliasServers::Embedded { path, exists } => {
                let state = if exists {
                    "file exists"
                } else {
                    "file not created yet"
                };
                writeln!(out, "  embedded SQLite: {path} ({state})").map_err(io)?;
            }
            AliasServers::Unsupported(reason) => writeln!(out, "  {reason}").map_err(io)?,
            AliasServers::Hosts(hosts) => {
                for h in &hosts {
                    writeln!(out, "{}", databases.scrub(&topology::host_line(h))).map_err(io)?;
                }
            }
        }
    }
    out.flush().map_err(io)?;
    if down.is_empty() {
        Ok(())
    } else {
        Err(format!("no host of database {} answers", down.join(", ")))
    }
}
