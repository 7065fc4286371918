//! Sets `cfg(multidb_sync)` when a backend of the sync registry (`postgres`, `sqlite`,
//! `mysql`) is enabled: the r2d2 registry ([`Databases`]) and its `AnyConnection` exist
//! only then, while the async registry needs only `async`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(multidb_sync)");
    let sync = ["POSTGRES", "SQLITE", "MYSQL"]
        .iter()
        .any(|f| std::env::var_os(format!("CARGO_FEATURE_{f}")).is_some());
    if sync {
        println!("cargo::rustc-cfg=multidb_sync");
    }
}
