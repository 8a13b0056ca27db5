//! `edgeward new-rule NAME`: a ready crate for a new rule, from the template
//! files in sdk/template/.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../../../sdk/template/Cargo.toml.in");
const LIB_RS: &str = include_str!("../../../sdk/template/src/lib.rs");
const README: &str = include_str!("../../../sdk/template/README.md");

/// Where the generated crate gets `edgeward-sdk` from.
pub enum Sdk {
    /// A local checkout's `sdk/` folder.
    Path(PathBuf),
    /// A published version.
    Version(String),
}

impl Sdk {
    /// This repository's sdk/ when it is still where the binary was built
    /// from, else the version of edgeward-sdk matching this gateway.
    pub fn default_for_this_build() -> Sdk {
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        match local.join("Cargo.toml").is_file().then(|| local.canonicalize()) {
            Some(Ok(path)) => Sdk::Path(path),
            _ => Sdk::Version(env!("CARGO_PKG_VERSION").to_string()),
        }
    }

    fn dependency(&self) -> anyhow::Result<String> {
        Ok(match self {
            Sdk::Path(path) => {
                if !path.join("Cargo.toml").is_file() {
                    bail!("{} is not the edgeward-sdk crate (no Cargo.toml)", path.display());
                }
                let path = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
                format!("edgeward-sdk = {{ path = {} }}", quote(&path.display().to_string()))
            }
            Sdk::Version(version) => format!("edgeward-sdk = {}", quote(version)),
        })
    }
}

/// A TOML string literal.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Write the crate for rule `name` into `dir` (default: `./NAME`), which
/// must not exist unless `force` (then its generated files are overwritten
/// and any other file in it is left alone).
pub fn run(name: &str, dir: Option<&Path>, sdk: Sdk, force: bool) -> anyhow::Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "`{name}` cannot name a rule: use lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && !force {
        bail!(
            "{} already exists; not overwriting it (add --force to overwrite its Cargo.toml, src/lib.rs, README.md and .gitignore)",
            dir.display()
        );
    }
    if dir.exists() && !dir.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    let dependency = sdk.dependency()?;
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}/src", dir.display()))?;
    let absolute = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &dependency)
            .replace("{{dir}}", &absolute.display().to_string())
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created rule `{name}` in {}", dir.display());
    println!("  build: cd {} && cargo build --release --target wasm32-wasip2", dir.display());
    println!("  test:  cargo test");
    println!("  load:  see {}", dir.join("README.md").display());
    Ok(())
}
