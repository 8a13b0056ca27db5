//! Builds the guest components (the built-in rule modules, the test rules
//! and the example rules) for wasm32-wasip2 with a nested cargo, so that `cargo build`
//! alone yields a gateway with its built-in modules inside, and tests get
//! their fixtures. Outputs land in OUT_DIR; `EDGEWARD_GUEST_DIR` points there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in modules, shipped inside the binary: (crate directory, name in `builtin:NAME`).
const BUILTIN: &[&str] = &["alarm", "heating", "seal", "sign"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    for watched in ["sdk", "modules", "tests/rules", "examples/rules", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    // Pack the daemon's relative relocations (DT_RELR; glibc 2.36, Debian 12):
    // the 1.1 MB table the loader reads at every start, and keeps resident,
    // becomes a few KB.
    let target = |key: &str| std::env::var(format!("CARGO_CFG_TARGET_{key}")).unwrap_or_default();
    if target("OS") == "linux" && target("ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }

    let mut packages: Vec<(String, String)> =
        BUILTIN.iter().map(|name| (format!("edgeward-module-{name}"), format!("builtin-{name}"))).collect();
    for dir in subdirs(&root.join("tests/rules")) {
        packages.push((format!("edgeward-test-rule-{dir}"), format!("test-{dir}")));
    }
    // The examples are loaded by path like any rule an author writes, never as `builtin:`.
    for dir in subdirs(&root.join("examples/rules")) {
        packages.push((format!("edgeward-example-{dir}"), format!("example-{dir}")));
    }

    // A separate target dir: the outer cargo holds the lock on its own.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "guest", "--target-dir"])
        .arg(&target_dir);
    for (package, _) in &packages {
        cmd.args(["-p", package]);
    }
    // The outer build's flags (coverage, sanitizers) are not for the guests.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the guest modules");
    if !status.success() {
        panic!(
            "building the WebAssembly modules failed; if the error mentions a missing target, run `rustup target add wasm32-wasip2`"
        );
    }

    let built = target_dir.join("wasm32-wasip2/guest");
    for (package, name) in &packages {
        let file = built.join(format!("{}.wasm", package.replace('-', "_")));
        std::fs::copy(&file, out_dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
    }
    println!("cargo:rustc-env=EDGEWARD_GUEST_DIR={}", out_dir.display());
}

fn subdirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
