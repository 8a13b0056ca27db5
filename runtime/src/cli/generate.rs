//! `edgeward generate`: man pages and shell completions made from the CLI's
//! own definition, so they never drift from it. Hidden: the package build
//! (packaging/build-deb.sh) is its user.

use anyhow::Context;
use clap_complete::Shell;
use std::path::Path;

/// `edgeward.1` and `edgeward-SUBCOMMAND.1` for every visible subcommand.
pub fn man(cli: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cli, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(())
}

/// The completion script for `shell`, named as that shell looks it up:
/// `edgeward.bash`, `_edgeward` (zsh), `edgeward.fish`.
pub fn completions(mut cli: clap::Command, shell: Shell, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = clap_complete::generate_to(shell, &mut cli, "edgeward", dir)
        .with_context(|| format!("writing {shell} completions into {}", dir.display()))?;
    eprintln!("{}", path.display());
    Ok(())
}
