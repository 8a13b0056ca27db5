//! `edgeward module inspect FILE`: what a rule component needs and offers.

use anyhow::Context;
use edgeward::pipeline::ModuleError;
use edgeward::pipeline::bindings::{WIT_PACKAGE, WIT_VERSION};
use edgeward::pipeline::inspect::RULE_EXPORTS;
use std::path::Path;

/// Print what the component at `file` imports and exports.
pub fn inspect(file: &Path, as_json: bool) -> anyhow::Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let found = edgeward::pipeline::inspect(&wasm).map_err(|e| match e {
        ModuleError::Compile { reason, .. } => {
            anyhow::anyhow!("{} is not a WebAssembly component: {reason}", file.display())
        }
        ModuleError::CoreModule { .. } => anyhow::anyhow!(
            "{} is a core WebAssembly module, not a component: build the rule for wasm32-wasip2, or make a component of it with `wasm-tools component new`",
            file.display()
        ),
        other => anyhow::anyhow!("{}: {other}", file.display()),
    })?;
    if as_json {
        let mut value = serde_json::to_value(&found)?;
        value["file"] = file.display().to_string().into();
        value["rule"] = found.is_rule().into();
        println!("{value}");
        return Ok(());
    }
    println!("{}", file.display());
    println!("  size      {} bytes", found.bytes);
    println!("  sha256    {}", found.sha256);
    let contract = match &found.contract {
        Some(v) if v == WIT_VERSION => format!("{WIT_PACKAGE}@{v}"),
        Some(v) if found.contract_matches() => {
            format!(
                "{WIT_PACKAGE}@{v} (an earlier contract, still loaded; rebuilt with this SDK it gets {WIT_VERSION})"
            )
        }
        Some(v) => format!("{WIT_PACKAGE}@{v} (this gateway provides {WIT_VERSION}: it will be refused)"),
        None => format!("none (imports nothing of {WIT_PACKAGE})"),
    };
    println!("  contract  {contract}");
    let needs =
        if found.capabilities.is_empty() { "none".to_string() } else { found.capabilities.join(", ") };
    println!("  needs     {needs}  (log and clock are always granted)");
    for import in &found.imports {
        let how = match import.grant.as_str() {
            "always" => "always granted".to_string(),
            "wasi" => "linked with nothing granted".to_string(),
            "unknown" => "not provided by this gateway: it will be refused".to_string(),
            capability => format!("needs capability \"{capability}\""),
        };
        println!("  import    {:<36} {how}", import.name);
    }
    for name in RULE_EXPORTS {
        let state = if found.exports.iter().any(|e| e == name) { "yes" } else { "MISSING" };
        println!("  export    {name:<8} {state}");
    }
    for name in &found.other_exports {
        println!("  export    {name} (not part of the rule interface)");
    }
    if !found.is_rule() {
        println!(
            "  not a complete edgeward rule: it must export init, process and tick of {WIT_PACKAGE}@{WIT_VERSION}"
        );
    }
    Ok(())
}
