//! What a rule component needs and offers, read from its type alone (no
//! instantiation): `edgeward module inspect`.

use super::ModuleError;
use super::bindings::{WIT_PACKAGE, supports};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The functions a rule exports.
pub const RULE_EXPORTS: [&str; 3] = ["init", "process", "tick"];

/// One import of a component, and what it takes to grant it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// The import's name, e.g. `edgeward:policy/kv@0.2.0`.
    pub name: String,
    /// How the gateway treats it: `always` (`log`, `clock`, `types`), the
    /// capability to grant (`kv`, `sign:KEY`, `seal:RECIPIENTS`), `wasi`
    /// (linked with nothing granted) or `unknown` (refused at load time).
    pub grant: String,
}

/// What a component is, needs and offers.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub bytes: usize,
    /// SHA-256 of the component's bytes, hex.
    pub sha256: String,
    /// The `edgeward:policy` version it was built against (from its imports).
    pub contract: Option<String>,
    /// Capabilities the configuration must grant (`kv`, `sign:KEY`, `seal:RECIPIENTS`).
    pub capabilities: Vec<String>,
    pub imports: Vec<Import>,
    /// Which of `init`, `process`, `tick` it exports as functions.
    pub exports: Vec<String>,
    /// Exports other than the rule functions.
    pub other_exports: Vec<String>,
}

impl Inspection {
    /// Does it export the whole rule interface?
    pub fn is_rule(&self) -> bool {
        RULE_EXPORTS.iter().all(|e| self.exports.iter().any(|x| x == e))
    }

    /// Was it built against a contract version this gateway loads?
    pub fn contract_matches(&self) -> bool {
        self.contract.as_deref().is_none_or(supports)
    }
}

/// Is `wasm` a core WebAssembly module (binary version 1, layer 0) rather
/// than a component (layer 1)? The preamble says so before any parsing.
pub fn is_core_module(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm.starts_with(b"\0asm") && wasm[4..8] == [1, 0, 0, 0]
}

/// Read what `wasm` (a component's bytes) imports and exports.
pub fn inspect(wasm: &[u8]) -> Result<Inspection, ModuleError> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).map_err(|e| ModuleError::Engine(format!("{e:#}")))?;
    let (module, file) = ("(inspected)".to_string(), String::new());
    if is_core_module(wasm) {
        return Err(ModuleError::CoreModule { module, file });
    }
    let refused =
        |reason: String| ModuleError::Compile { module: module.clone(), file: file.clone(), reason };
    if !wasm.starts_with(b"\0asm") {
        return Err(refused("not WebAssembly at all (no `\\0asm` header)".into()));
    }
    let component = Component::new(&engine, wasm).map_err(|e| refused(format!("{e:#}")))?;
    Ok(describe(&engine, &component, wasm))
}

/// What the compiled `component` (made from `wasm`) imports and exports.
pub(crate) fn describe(engine: &wasmtime::Engine, component: &Component, wasm: &[u8]) -> Inspection {
    let ty = component.component_type();

    let mut contract = None;
    let mut capabilities = Vec::new();
    let mut imports = Vec::new();
    for (name, item) in ty.imports(engine) {
        // A type the world `use`s (the `message` resource) grants nothing.
        if matches!(item.ty, ComponentItem::Type(_) | ComponentItem::Resource(_)) {
            continue;
        }
        let grant = classify(name, &mut contract);
        if matches!(grant, "kv" | "sign:KEY" | "seal:RECIPIENTS") && !capabilities.iter().any(|c| c == grant)
        {
            capabilities.push(grant.to_string());
        }
        imports.push(Import { name: name.to_string(), grant: grant.to_string() });
    }
    capabilities.sort();

    let mut exports = Vec::new();
    let mut other_exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        let is_func = matches!(item.ty, ComponentItem::ComponentFunc(_));
        if is_func && RULE_EXPORTS.contains(&name) {
            exports.push(name.to_string());
        } else {
            other_exports.push(name.to_string());
        }
    }
    exports.sort_by_key(|e| RULE_EXPORTS.iter().position(|r| r == e));

    Inspection {
        bytes: wasm.len(),
        sha256: hex::encode(Sha256::digest(wasm)),
        contract,
        capabilities,
        imports,
        exports,
        other_exports,
    }
}

/// Why a component cannot be a rule of this gateway, as read from its type
/// before linking: what a rule author has to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// It imports `import`, from contract version `found`.
    Version { import: String, found: String },
    /// It is some other component: nothing of the contract in or out.
    NotARule { exports: Vec<String> },
    /// It lacks these rule exports.
    MissingExports { missing: Vec<String> },
}

impl Inspection {
    /// What keeps this component from loading as a rule, if anything does
    /// (capability grants aside: those depend on the configuration).
    pub fn unfit(&self) -> Option<Unfit> {
        let other_version = self.imports.iter().find_map(|import| {
            let (package, rest) = import.name.split_once('/')?;
            let (_, version) = rest.split_once('@')?;
            (package == WIT_PACKAGE && !supports(version))
                .then(|| Unfit::Version { import: import.name.clone(), found: version.to_string() })
        });
        if other_version.is_some() {
            return other_version;
        }
        if self.contract.is_none() && self.exports.is_empty() {
            return Some(Unfit::NotARule { exports: self.other_exports.clone() });
        }
        let missing: Vec<String> = RULE_EXPORTS
            .iter()
            .filter(|e| !self.exports.iter().any(|x| x == *e))
            .map(|e| e.to_string())
            .collect();
        (!missing.is_empty()).then_some(Unfit::MissingExports { missing })
    }
}

/// How the gateway treats the import `name`; notes the contract version seen.
fn classify(name: &str, contract: &mut Option<String>) -> &'static str {
    if name.starts_with("wasi:") {
        return "wasi";
    }
    let Some((package, rest)) = name.split_once('/') else {
        return "unknown";
    };
    if package != WIT_PACKAGE {
        return "unknown";
    }
    let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
    if contract.is_none() && !version.is_empty() {
        *contract = Some(version.to_string());
    }
    match interface {
        "types" | "log" | "clock" => "always",
        "kv" => "kv",
        "signer" => "sign:KEY",
        "sealer" => "seal:RECIPIENTS",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Imports map to the capability that grants them.
    #[test]
    fn classify_imports() {
        let mut contract = None;
        assert_eq!(classify("wasi:cli/stdout@0.2.6", &mut contract), "wasi");
        assert_eq!(contract, None);
        assert_eq!(classify("edgeward:policy/sealer@0.2.0", &mut contract), "seal:RECIPIENTS");
        assert_eq!(contract.as_deref(), Some("0.2.0"));
        assert_eq!(classify("edgeward:policy/log@0.2.0", &mut contract), "always");
        assert_eq!(classify("acme:net/http@1.0.0", &mut contract), "unknown");
    }

    /// Bytes that are not a component are refused with a reason.
    #[test]
    fn refuses_non_components() {
        let error = inspect(b"hello").unwrap_err().to_string();
        assert!(error.contains("not WebAssembly at all"), "{error}");
        assert!(matches!(inspect(b"\0asm\x01\0\0\0"), Err(ModuleError::CoreModule { .. })));
    }

    fn inspection(imports: &[&str], exports: &[&str], other_exports: &[&str]) -> Inspection {
        let mut contract = None;
        let imports = imports
            .iter()
            .map(|name| Import { name: name.to_string(), grant: classify(name, &mut contract).to_string() })
            .collect();
        Inspection {
            bytes: 0,
            sha256: String::new(),
            contract,
            capabilities: Vec::new(),
            imports,
            exports: exports.iter().map(|e| e.to_string()).collect(),
            other_exports: other_exports.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// A component is unfit for the contract's version first, then for what it exports.
    #[test]
    fn unfit_components() {
        let all = ["init", "process", "tick"];
        let current = "edgeward:policy/types@0.2.0";
        assert_eq!(inspection(&[current], &all, &[]).unfit(), None);
        assert_eq!(
            inspection(&["wasi:cli/stdout@0.2.6", "edgeward:policy/log@0.3.0"], &["init"], &[]).unfit(),
            Some(Unfit::Version { import: "edgeward:policy/log@0.3.0".into(), found: "0.3.0".into() })
        );
        assert_eq!(
            inspection(&["wasi:cli/stdout@0.2.6"], &[], &["greet"]).unfit(),
            Some(Unfit::NotARule { exports: vec!["greet".into()] })
        );
        assert_eq!(
            inspection(&[current], &["init", "process"], &[]).unfit(),
            Some(Unfit::MissingExports { missing: vec!["tick".into()] })
        );
    }
}
