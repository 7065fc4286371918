//! The standalone `diesel-multidb` command line (feature `cli`).
//!
//! Routes migrations by the config file's `[apps]` map and finds the apps in its
//! `migrations_dir`. An application with routers in code gets the same commands from its own
//! binary calling [`diesel_multidb::cli::run`].

fn main() -> std::process::ExitCode {
    diesel_multidb::cli::run(|databases| databases)
}
