//! The rule modules shipped inside the binary, named in configs as
//! `builtin:NAME`. runtime/build.rs compiles them from `modules/`.

/// (name, component bytes) of every built-in module.
const MODULES: &[(&str, &[u8])] = &[
    ("alarm", include_bytes!(concat!(env!("EDGEWARD_GUEST_DIR"), "/builtin-alarm.wasm"))),
    ("heating", include_bytes!(concat!(env!("EDGEWARD_GUEST_DIR"), "/builtin-heating.wasm"))),
    ("seal", include_bytes!(concat!(env!("EDGEWARD_GUEST_DIR"), "/builtin-seal.wasm"))),
    ("sign", include_bytes!(concat!(env!("EDGEWARD_GUEST_DIR"), "/builtin-sign.wasm"))),
];

/// The component of the built-in module `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// The names of all built-in modules.
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(name, _)| *name)
}
