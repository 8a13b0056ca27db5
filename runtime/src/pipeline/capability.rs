//! Capabilities: what a module may do beyond logging and reading the clock.
//! Deny by default: the config grants them per module, the loader refuses a
//! component that imports an interface it was not granted, and each host
//! call checks again (defence in depth, and per key for `sign`/`seal`).

use super::bindings::{WIT_PACKAGE, supports};
use std::collections::BTreeSet;

/// One grant from a module's `capabilities = [...]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// `kv`: persistent key-value state.
    Kv,
    /// `sign:KEY`: sign with the gateway key named KEY.
    Sign(String),
    /// `seal:NAME`: encrypt to the recipient set named NAME.
    Seal(String),
}

impl Capability {
    /// Parse a grant as written in the config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let named = |kind: &str, name: &str| {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
                Err(format!("`{kind}:` needs a name of letters, digits, `-` or `_`, as in `{kind}:gateway`"))
            } else {
                Ok(name.to_string())
            }
        };
        match text.split_once(':') {
            None if text == "kv" => Ok(Capability::Kv),
            Some(("sign", name)) => named("sign", name).map(Capability::Sign),
            Some(("seal", name)) => named("seal", name).map(Capability::Seal),
            _ => Err(format!(
                "unknown capability `{text}` (known: `kv`, `sign:KEY`, `seal:RECIPIENTS`; `log` and `clock` are always granted)"
            )),
        }
    }
}

/// Everything one module was granted.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    granted: BTreeSet<Capability>,
}

impl Grants {
    /// Grants from config strings (already validated by the config loader).
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let granted = items.into_iter().map(Capability::parse).collect::<Result<_, _>>()?;
        Ok(Grants { granted })
    }

    pub fn kv(&self) -> bool {
        self.granted.contains(&Capability::Kv)
    }

    pub fn sign(&self, key: &str) -> bool {
        self.granted.contains(&Capability::Sign(key.to_string()))
    }

    pub fn seal(&self, recipients: &str) -> bool {
        self.granted.contains(&Capability::Seal(recipients.to_string()))
    }

    /// May a component import `name` (a component import name such as
    /// `edgeward:policy/kv@0.2.0`)? `Err` says why not, in words for the
    /// rule's author.
    pub fn allow_import(&self, name: &str) -> Result<(), ImportRefusal> {
        if name.starts_with("wasi:") {
            // Linked with an empty WASI context: no files, sockets or environment.
            return Ok(());
        }
        let Some((package, rest)) = name.split_once('/') else {
            return Err(ImportRefusal::Unknown);
        };
        if package != WIT_PACKAGE {
            return Err(ImportRefusal::Unknown);
        }
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if !supports(version) {
            return Err(ImportRefusal::Version { found: version.to_string() });
        }
        let any_granted = |f: fn(&Capability) -> bool| self.granted.iter().any(f);
        let needed = match interface {
            "types" | "log" | "clock" => return Ok(()),
            "kv" if self.kv() => return Ok(()),
            "signer" if any_granted(|c| matches!(c, Capability::Sign(_))) => return Ok(()),
            "sealer" if any_granted(|c| matches!(c, Capability::Seal(_))) => return Ok(()),
            "kv" => "\"kv\"",
            "signer" => "\"sign:KEY\"",
            "sealer" => "\"seal:RECIPIENTS\"",
            _ => return Err(ImportRefusal::Unknown),
        };
        Err(ImportRefusal::NotGranted { capability: needed })
    }
}

/// Why an import was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRefusal {
    /// It needs a capability the module was not granted.
    NotGranted { capability: &'static str },
    /// It is from another version of the contract.
    Version { found: String },
    /// The gateway offers no such interface.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grants parse as written in configs and reject anything else.
    #[test]
    fn parse_grants() {
        assert_eq!(Capability::parse("kv"), Ok(Capability::Kv));
        assert_eq!(Capability::parse("sign:gateway"), Ok(Capability::Sign("gateway".into())));
        assert_eq!(Capability::parse("seal:tenants"), Ok(Capability::Seal("tenants".into())));
        assert!(Capability::parse("sign:").is_err());
        assert!(Capability::parse("sign:a b").is_err());
        assert!(Capability::parse("net").unwrap_err().contains("unknown capability `net`"));
    }

    /// Imports are allowed exactly when their capability was granted.
    #[test]
    fn imports_follow_grants() {
        let none = Grants::default();
        assert_eq!(none.allow_import("edgeward:policy/log@0.2.0"), Ok(()));
        assert_eq!(none.allow_import("wasi:cli/stdout@0.2.6"), Ok(()));
        assert_eq!(
            none.allow_import("edgeward:policy/kv@0.2.0"),
            Err(ImportRefusal::NotGranted { capability: "\"kv\"" })
        );
        let kv = Grants::parse(["kv", "sign:gateway"]).unwrap();
        assert_eq!(kv.allow_import("edgeward:policy/kv@0.2.0"), Ok(()));
        assert_eq!(kv.allow_import("edgeward:policy/signer@0.2.0"), Ok(()));
        assert_eq!(kv.allow_import("edgeward:policy/kv@0.1.0"), Ok(()), "0.1 rules still load");
        assert!(kv.sign("gateway") && !kv.sign("other"));
        assert_eq!(
            kv.allow_import("edgeward:policy/kv@0.3.0"),
            Err(ImportRefusal::Version { found: "0.3.0".into() })
        );
        assert_eq!(kv.allow_import("acme:net/http@1.0.0"), Err(ImportRefusal::Unknown));
    }
}
