//! Reading a configuration file and checking what serde cannot: references
//! between tables, addresses, capabilities. Every error carries the file,
//! line and key, so a person can go straight to the mistake.

use super::{Config, SensorFormat, SourceKind};
use crate::builtin;
use crate::trust::keys::{self, KeyKind};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A configuration that loaded and validated, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file it was read from (or a label such as `<embedded demo>`).
    pub path: PathBuf,
    /// The folder relative paths in it are resolved against.
    pub base_dir: PathBuf,
    /// The files it was read from: the main file, then its `conf.d/*.toml`
    /// drop-ins in name order. Empty for a configuration given as text.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// `path` as written in the config, resolved against the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// The state directory, resolved.
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.config.gateway.state_dir)
    }

    /// The compiled-module cache directory, resolved; the environment
    /// variable `EDGEWARD_CACHE_DIR` overrides the config (systemd's
    /// `CacheDirectory=`, tests sharing one cache).
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = std::env::var_os("EDGEWARD_CACHE_DIR") {
            return PathBuf::from(dir);
        }
        match &self.config.gateway.cache_dir {
            Some(dir) => self.resolve(dir),
            None => self.state_dir().join("cache"),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TOML syntax or type error, or a semantic one, located in the file.
    #[error("{}", .0)]
    At(Box<Located>),
}

/// An error at a place in a configuration file.
#[derive(Debug)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The dotted key the error is about, e.g. `module.vitals.wasm`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Read, parse and validate the configuration at `path`, with the drop-in
/// files of the `conf.d/` folder beside it (`*.toml`, in name order).
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut parts = vec![(path.to_path_buf(), read(path)?)];
    for drop_in in drop_ins(&base_dir.join(DROP_IN_DIR))? {
        let text = read(&drop_in)?;
        parts.push((drop_in, text));
    }
    load_parts(&parts, &base_dir)
}

/// The state directory `path` names, read leniently: `edgeward status` must
/// find the daemon's status even while the file has an error in it (that is
/// when a person asks). Falls back to the default state directory.
pub fn state_dir_of(path: &Path) -> PathBuf {
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let named =
        std::fs::read_to_string(path).ok().and_then(|text| match toml::from_str::<toml::Table>(&text) {
            Ok(table) => Some(PathBuf::from(table.get("gateway")?.get("state-dir")?.as_str()?)),
            // A syntax error elsewhere: find the line itself.
            Err(_) => {
                let mut in_gateway = false;
                text.lines().map(str::trim).find_map(|line| {
                    if line.starts_with('[') {
                        in_gateway = line == "[gateway]";
                        return None;
                    }
                    let (key, value) = line.split_once('=')?;
                    let value = toml::from_str::<toml::Table>(&format!("v = {value}")).ok()?.remove("v")?;
                    if !(in_gateway && key.trim() == "state-dir") {
                        return None;
                    }
                    let value = toml::from_str::<toml::Table>(&format!("v = {value}")).ok()?.remove("v")?;
                    Some(PathBuf::from(value.as_str()?))
                })
            }
        });
    let dir = named.unwrap_or_else(super::GatewayConfig::default_state_dir);
    if dir.is_absolute() { dir } else { base_dir.join(dir) }
}

/// The folder of drop-in files beside the main configuration file.
pub const DROP_IN_DIR: &str = "conf.d";

/// Whether a file in the drop-in folder is configuration: `*.toml`, not
/// hidden (editors' backups and swap files are not).
pub fn is_drop_in(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The `*.toml` files in `dir`, in name order; none when it does not exist.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::Read { path: dir.to_path_buf(), source }),
    };
    let mut files: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| is_drop_in(p)).collect();
    files.sort();
    Ok(files)
}

/// Parse and validate configuration `text`; `path` labels errors and
/// `base_dir` anchors relative paths.
pub fn load_str(text: &str, path: &Path, base_dir: &Path) -> Result<Loaded, ConfigError> {
    let mut loaded = load_parts(&[(path.to_path_buf(), text.to_string())], base_dir)?;
    loaded.files.clear();
    Ok(loaded)
}

/// Parse the main file and its drop-ins as one document: the drop-ins are
/// appended to it, each starting at a table header of its own, so TOML's own
/// rules refuse a table defined twice, and every error maps back to the
/// file and line it came from.
fn load_parts(parts: &[(PathBuf, String)], base_dir: &Path) -> Result<Loaded, ConfigError> {
    let mut text = String::new();
    let mut segments = Vec::with_capacity(parts.len());
    for (path, part) in parts {
        segments.push(Segment { start: text.len(), path });
        text.push_str(part);
        text.push('\n');
    }
    let source = Source { text: &text, segments };
    for segment in &source.segments[1..] {
        if let Some(offset) = first_key_outside_table(&text[segment.start..]) {
            return Err(source.error(
                segment.start + offset..segment.start + offset,
                format!(
                    "a drop-in file starts with a [table] header; top-level keys belong in {}",
                    parts[0].0.display()
                ),
            ));
        }
    }
    let config: Config = toml::from_str(&text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        source.error(span, e.message().to_string())
    })?;
    let loaded = Loaded {
        config,
        path: parts[0].0.clone(),
        base_dir: base_dir.to_path_buf(),
        files: parts.iter().map(|(path, _)| path.clone()).collect(),
    };
    validate(&loaded, &source)?;
    Ok(loaded)
}

/// The offset of the first line of `text` that is neither blank, a comment,
/// nor a table header, if it comes before any header: appended to another
/// file, such a key would land in that file's last table.
fn first_key_outside_table(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            return None;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// The text being loaded, to turn byte spans into files, lines and keys.
struct Source<'a> {
    text: &'a str,
    /// Where each file's text starts, in order.
    segments: Vec<Segment<'a>>,
}

struct Segment<'a> {
    start: usize,
    path: &'a Path,
}

impl Source<'_> {
    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let offset = span.start.min(self.text.len());
        let segment = self.segments.iter().rev().find(|s| s.start <= offset).unwrap_or(&self.segments[0]);
        let text = &self.text[segment.start..];
        let start = offset - segment.start;
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ConfigError::At(Box::new(Located {
            path: segment.path.to_path_buf(),
            line,
            column,
            key: key_at(text, start),
            message,
        }))
    }

    fn at<T>(&self, spanned: &Spanned<T>, message: String) -> ConfigError {
        self.error(spanned.span(), message)
    }
}

/// The dotted key whose value starts at byte `offset`: the nearest table
/// header above it joined with the key on its line (`[sandbox]` +
/// `call-timeout-ms`), so wrong-type errors name the key and not only the line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim().to_string());
    let header = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[').then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    match (header, key) {
        (Some(h), Some(k)) if !k.starts_with('[') => Some(format!("{h}.{k}")),
        (None, Some(k)) => Some(k),
        (h, _) => h,
    }
}

/// Where the value of `key` in table `[section]` starts, or the header when
/// the key is not written there (a default). The sink tables are tagged
/// enums, which serde reads without spans, so they are found in the text.
fn value_of(text: &str, section: &str, key: &str) -> Range<usize> {
    let header = format!("[{section}]");
    let mut offset = 0;
    let mut in_section = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if in_section.is_some() {
                break;
            }
            if trimmed == header {
                in_section = Some(offset);
            }
        } else if in_section.is_some()
            && let Some((k, value)) = line.split_once('=')
            && k.trim() == key
        {
            let start = offset + k.len() + 1 + (value.len() - value.trim_start().len());
            return start..start;
        }
        offset += line.len();
    }
    let at = in_section.unwrap_or(0);
    at..at
}

fn validate(loaded: &Loaded, src: &Source) -> Result<(), ConfigError> {
    let config = &loaded.config;
    let first_line = |message: String| src.error(0..0, message);

    if config.gateway.id.trim().is_empty() {
        return Err(first_line("`gateway.id` must not be empty".into()));
    }

    let mut names = BTreeSet::new();
    for sensor in &config.sensors {
        if !names.insert(sensor.name.as_str()) {
            return Err(src.at(&sensor.address, format!("duplicate sensor name `{}`", sensor.name)));
        }
        if parse_mac(sensor.address.get_ref()).is_none() {
            return Err(src.at(
                &sensor.address,
                format!(
                    "sensor `{}`: `{}` is not a Bluetooth address like AA:BB:CC:DD:EE:FF",
                    sensor.name,
                    sensor.address.get_ref()
                ),
            ));
        }
        if !config.profiles.contains_key(sensor.profile.get_ref()) {
            return Err(src.at(
                &sensor.profile,
                format!(
                    "sensor `{}` uses profile `{}`, which is not defined (defined: {})",
                    sensor.name,
                    sensor.profile.get_ref(),
                    list(config.profiles.keys())
                ),
            ));
        }
        if sensor.source == SourceKind::Sim && sensor.sim.is_none() {
            return Err(src.at(
                &sensor.address,
                format!("sensor `{}` has source = \"sim\" but no `sim = {{ model = ... }}`", sensor.name),
            ));
        }
        if sensor.format == SensorFormat::SignedGatt {
            match &sensor.key {
                Some(key) => {
                    if let Err(e) =
                        keys::parse_verifying_key(key.get_ref(), &format!("sensor `{}`", sensor.name))
                    {
                        return Err(src.at(key, e.to_string()));
                    }
                }
                None if sensor.sim.as_ref().is_some_and(|s| s.key.is_some()) => {}
                None => {
                    return Err(src.at(
                        &sensor.address,
                        format!(
                            "sensor `{}` is signed-gatt but has no `key = \"ed25519:…\"` to verify its readings",
                            sensor.name
                        ),
                    ));
                }
            }
        }
        if let Some(bindkey) = &sensor.bindkey
            && (sensor.format != SensorFormat::Bthome || parse_bindkey(bindkey.get_ref()).is_none())
        {
            return Err(src.at(
                bindkey,
                format!("sensor `{}`: `bindkey` is 32 hex digits, for BTHome sensors", sensor.name),
            ));
        }
        if let Some(sim) = &sensor.sim
            && !positive(sim.interval_s)
        {
            return Err(src.at(
                &sensor.address,
                format!("sensor `{}`: sim.interval-s must be greater than 0", sensor.name),
            ));
        }
    }

    for (name, profile) in &config.profiles {
        for module in &profile.modules {
            if !config.modules.contains_key(module.get_ref()) {
                return Err(src.at(
                    module,
                    format!(
                        "profile `{name}` lists module `{}`, which is not defined (defined: {})",
                        module.get_ref(),
                        list(config.modules.keys())
                    ),
                ));
            }
        }
        let mut rest = profile.topic.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            let placeholder = &rest[open..close];
            if !["{gateway}", "{profile}", "{sensor}", "{sensor-id}"].contains(&placeholder) {
                return Err(first_line(format!(
                    "profile `{name}`: topic placeholder `{placeholder}` is not one of {{gateway}}, {{profile}}, {{sensor}}, {{sensor-id}}"
                )));
            }
            rest = &rest[close..];
        }
        if !positive(profile.tick_interval_s) {
            return Err(first_line(format!("profile `{name}`: tick-interval-s must be greater than 0")));
        }
    }

    for (name, module) in &config.modules {
        let wasm = module.wasm.get_ref();
        match wasm.strip_prefix("builtin:") {
            Some(builtin_name) => {
                if builtin::module(builtin_name).is_none() {
                    return Err(src.at(
                        &module.wasm,
                        format!(
                            "module `{name}`: there is no built-in module `{builtin_name}` (built in: {})",
                            list(builtin::names())
                        ),
                    ));
                }
            }
            None => {
                let path = loaded.resolve(Path::new(wasm));
                if !path.is_file() {
                    return Err(src.at(
                        &module.wasm,
                        format!("module `{name}`: module file {} does not exist", path.display()),
                    ));
                }
            }
        }
        for capability in &module.capabilities {
            use crate::pipeline::Capability;
            let missing = match Capability::parse(capability.get_ref()) {
                Err(why) => Some(why),
                Ok(Capability::Sign(key)) if !config.signers.contains_key(&key) => Some(format!(
                    "`sign:{key}` names no signing key; define [signer.{key}] (defined: {})",
                    list(config.signers.keys())
                )),
                Ok(Capability::Seal(set)) if !config.recipients.contains_key(&set) => Some(format!(
                    "`seal:{set}` names no recipient set; define [recipients.{set}] (defined: {})",
                    list(config.recipients.keys())
                )),
                Ok(_) => None,
            };
            if let Some(why) = missing {
                return Err(src.at(capability, format!("module `{name}`: {why}")));
            }
        }
    }

    for (name, set) in &config.recipients {
        if set.keys.is_empty() {
            return Err(first_line(format!("[recipients.{name}] lists no keys")));
        }
        if !(16..=65536).contains(&set.pad_to) {
            return Err(first_line(format!("[recipients.{name}] pad-to must be between 16 and 65536 bytes")));
        }
        for recipient in &set.keys {
            let what = format!("recipient `{}` of [recipients.{name}]", recipient.kid);
            if let Err(e) = keys::parse_public(KeyKind::X25519, recipient.key.get_ref(), &what) {
                return Err(src.at(&recipient.key, e.to_string()));
            }
        }
    }

    let ble = &config.ble;
    if let Some(adapter) = &ble.adapter {
        let name = adapter.get_ref();
        // It becomes a D-Bus object path element: /org/bluez/NAME.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(src.at(adapter, format!("`ble.adapter` = {name:?} is not an adapter name like hci0")));
        }
    }
    if ble.max_connections == 0 {
        return Err(first_line("`ble.max-connections` must be at least 1".into()));
    }
    if !(ble.watchdog_s >= 0.0 && ble.watchdog_s.is_finite()) {
        return Err(first_line("`ble.watchdog-s` must be 0 (off) or a number of seconds".into()));
    }

    for (section, sink) in
        [("uplink", &config.uplink), ("alarm", &config.alarm), ("actuator", &config.actuator)]
    {
        if let super::SinkConfig::Mqtt(mqtt) = sink {
            // Reads the TLS and password files, so a bad one fails `check`, not the first connection.
            mqtt.resolved(|p| loaded.resolve(p))
                .check()
                .map_err(|(e, key)| src.error(value_of(src.text, section, key), e.to_string()))?;
        }
    }

    let sim = &config.sim;
    if !(sim.speed >= 0.0 && sim.speed.is_finite()) {
        return Err(first_line("`sim.speed` must be 0 (as fast as possible) or positive".into()));
    }
    if let Some(start) = &sim.start
        && crate::clock::parse_rfc3339_ms(start).is_none()
    {
        return Err(first_line(format!(
            "`sim.start` = {start:?} is not an RFC 3339 UTC time like 2026-01-15T06:00:00Z"
        )));
    }
    Ok(())
}

/// A finite number above zero (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn list<'a>(names: impl IntoIterator<Item = &'a (impl AsRef<str> + ?Sized + 'a)>) -> String {
    let names: Vec<&str> = names.into_iter().map(AsRef::as_ref).collect();
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

/// A BTHome bindkey: 16 bytes as 32 hex digits.
pub fn parse_bindkey(text: &str) -> Option<[u8; 16]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// `AA:BB:CC:DD:EE:FF` for six address bytes.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Parse `AA:BB:CC:DD:EE:FF` into its six bytes, most significant first.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gateway]
id = "gw-1"
state-dir = "state"

[[sensor]]
name = "living-room"
address = "A4:C1:38:00:00:01"
profile = "home"
source = "sim"
sim = { model = "room" }

[profile.home]
modules = ["thermostat"]

[module.thermostat]
wasm = "builtin:heating"
capabilities = ["kv"]
"#;

    fn load_text(text: &str) -> Result<Loaded, ConfigError> {
        load_str(text, Path::new("edgeward.toml"), Path::new("/etc/edgeward"))
    }

    fn error_of(text: &str) -> String {
        load_text(text).expect_err("the configuration should be refused").to_string()
    }

    /// A complete small configuration loads and resolves paths against its folder.
    #[test]
    fn good_config_loads() {
        let loaded = load_text(GOOD).unwrap();
        assert_eq!(loaded.config.sensors[0].name, "living-room");
        assert_eq!(loaded.state_dir(), Path::new("/etc/edgeward/state"));
    }

    /// Broken TOML syntax is reported with file and line.
    #[test]
    fn syntax_error_names_line() {
        let err = error_of("[gateway\nid = 1");
        assert!(err.starts_with("edgeward.toml:1:"), "{err}");
    }

    /// An unknown key is refused, naming the key and its line.
    #[test]
    fn unknown_key_is_refused() {
        let text = GOOD.replace("capabilities = [\"kv\"]", "capabilites = [\"kv\"]");
        let err = error_of(&text);
        assert!(err.contains("unknown field `capabilites`"), "{err}");
        assert!(err.starts_with("edgeward.toml:18:"), "{err}");
    }

    /// A value of the wrong type names the dotted key and line.
    #[test]
    fn wrong_type_names_key() {
        let text = format!("{GOOD}\n[sandbox]\ncall-timeout-ms = \"soon\"\n");
        let err = error_of(&text);
        assert!(err.contains("`sandbox.call-timeout-ms`"), "{err}");
        assert!(err.contains("edgeward.toml:21:"), "{err}");
    }

    /// A profile naming an undefined module is refused at that module's place.
    #[test]
    fn undefined_module_is_refused() {
        let text = GOOD.replace("modules = [\"thermostat\"]", "modules = [\"thermostat\", \"nope\"]");
        let err = error_of(&text);
        assert!(err.contains("lists module `nope`, which is not defined"), "{err}");
        assert!(err.starts_with("edgeward.toml:14:"), "{err}");
    }

    /// A missing module file is refused with its resolved path.
    #[test]
    fn missing_module_file_is_refused() {
        let text = GOOD.replace("builtin:heating", "rules/missing.wasm");
        let err = error_of(&text);
        assert!(err.contains("/etc/edgeward/rules/missing.wasm does not exist"), "{err}");
    }

    /// A malformed capability is refused.
    #[test]
    fn bad_capability_is_refused() {
        let err = error_of(&GOOD.replace("[\"kv\"]", "[\"network\"]"));
        assert!(err.contains("unknown capability `network`"), "{err}");
    }

    /// Sensor addresses must be Bluetooth addresses; profiles must exist.
    #[test]
    fn sensor_references_are_checked() {
        let err = error_of(&GOOD.replace("A4:C1:38:00:00:01", "A4:C1:38"));
        assert!(err.contains("not a Bluetooth address"), "{err}");
        let err = error_of(&GOOD.replace("profile = \"home\"", "profile = \"office\""));
        assert!(err.contains("profile `office`, which is not defined"), "{err}");
    }

    /// MQTT sink keys are refused where they are written: a bad URL, an
    /// unknown protocol version, TLS files on a plain URL, a missing CA file.
    #[test]
    fn mqtt_keys_are_checked() {
        let with = |keys: &str| format!("{GOOD}\n[uplink]\ntype = \"mqtt\"\n{keys}\n");
        let err = error_of(&with("url = \"tcp://broker\""));
        assert!(err.contains("`uplink.url`: `tcp://broker`: expected mqtt://"), "{err}");
        let err = error_of(&with("url = \"mqtts://broker\"\nprotocol = 4"));
        assert!(err.contains(":23:12: `uplink.protocol`: protocol = 4: only 3"), "{err}");
        let err = error_of(&with("url = \"mqtt://broker\"\nca-file = \"ca.pem\""));
        assert!(err.contains("`uplink.ca-file`: `ca-file` is only for mqtts:// URLs"), "{err}");
        let err = error_of(&with("url = \"mqtts://broker\"\nca-file = \"ca.pem\""));
        assert!(err.contains("`uplink.ca-file`: /etc/edgeward/ca.pem: cannot read"), "{err}");
        let err = error_of(&with("url = \"mqtts://broker\"\nclient-cert = \"gw.pem\""));
        assert!(err.contains("`uplink.client-cert`: `client-cert` and `client-key` go together"), "{err}");
    }

    /// A client key that group or others may read is refused at its key.
    #[test]
    fn readable_client_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gw".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("gw.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("gw.key"), key.serialize_pem()).unwrap();
        std::fs::set_permissions(dir.path().join("gw.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "{GOOD}\n[uplink]\ntype = \"mqtt\"\nurl = \"mqtts://broker\"\nca-file = \"ca.pem\"\nclient-cert = \"gw.pem\"\nclient-key = \"gw.key\"\n"
        );
        let err = load_str(&text, Path::new("edgeward.toml"), dir.path()).unwrap_err().to_string();
        assert!(err.contains("`uplink.client-key`: "), "{err}");
        assert!(err.contains("readable by group or others (mode 644)"), "{err}");
        std::fs::set_permissions(dir.path().join("gw.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        load_str(&text, Path::new("edgeward.toml"), dir.path()).unwrap();
    }

    /// MAC parsing accepts exactly six hex pairs.
    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("a4:C1:38:00:00:FF"), Some([0xa4, 0xc1, 0x38, 0, 0, 0xff]));
        assert_eq!(parse_mac("a4:C1:38:00:00"), None);
        assert_eq!(parse_mac("a4:C1:38:00:00:FF:00"), None);
        assert_eq!(parse_mac("a4:C1:38:00:00:GG"), None);
    }

    /// Writes `main` as edgeward.toml and each drop-in into conf.d/, then loads.
    fn load_with_drop_ins(
        main: &str,
        drop_ins: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Loaded, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("edgeward.toml"), main).unwrap();
        std::fs::create_dir(dir.path().join(DROP_IN_DIR)).unwrap();
        for (name, text) in drop_ins {
            std::fs::write(dir.path().join(DROP_IN_DIR).join(name), text).unwrap();
        }
        let loaded = load(&dir.path().join("edgeward.toml"));
        (dir, loaded)
    }

    const KITCHEN: &str = "# the kitchen\n[[sensor]]\nname = \"kitchen\"\naddress = \"A4:C1:38:00:00:02\"\nprofile = \"home\"\nsource = \"sim\"\nsim = { model = \"room\" }\n";

    /// Drop-ins add to the main file, in name order; other files are ignored.
    #[test]
    fn drop_ins_add_sensors() {
        let (dir, loaded) =
            load_with_drop_ins(GOOD, &[("20-kitchen.toml", KITCHEN), ("kitchen.toml~", "not toml [")]);
        let loaded = loaded.unwrap();
        let names: Vec<_> = loaded.config.sensors.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["living-room", "kitchen"]);
        assert_eq!(
            loaded.files,
            [dir.path().join("edgeward.toml"), dir.path().join("conf.d/20-kitchen.toml")]
        );
    }

    /// An error in a drop-in names the drop-in and the line in it.
    #[test]
    fn drop_in_errors_name_their_file() {
        let broken = KITCHEN.replace("A4:C1:38:00:00:02", "kitchen-mac");
        let (dir, loaded) = load_with_drop_ins(GOOD, &[("20-kitchen.toml", &broken)]);
        let error = loaded.unwrap_err().to_string();
        let expected = format!(
            "{}:4:11: `sensor.address`: sensor `kitchen`",
            dir.path().join("conf.d/20-kitchen.toml").display()
        );
        assert!(error.starts_with(&expected), "{error}");

        // A table the main file already defines.
        let (dir, loaded) = load_with_drop_ins(GOOD, &[("10-again.toml", "\n[gateway]\nid = \"other\"\n")]);
        let error = loaded.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:2:", dir.path().join("conf.d/10-again.toml").display())),
            "{error}"
        );
    }

    /// A drop-in's keys must sit under a table of its own.
    #[test]
    fn drop_in_top_level_keys_are_refused() {
        let (dir, loaded) = load_with_drop_ins(GOOD, &[("10-loose.toml", "# note\nwasm = \"x\"\n")]);
        let error = loaded.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:2:1:", dir.path().join("conf.d/10-loose.toml").display())),
            "{error}"
        );
        assert!(error.contains("top-level keys belong in"), "{error}");
    }

    /// `edgeward status` finds the state directory in a file with an error.
    #[test]
    fn state_dir_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgeward.toml");
        std::fs::write(&path, "[gateway]\nid = \"gw\"\nstate-dir = \"st\" # here\n[sim]\nspeed = = 2\n")
            .unwrap();
        assert_eq!(state_dir_of(&path), dir.path().join("st"));
        std::fs::write(&path, "[gateway]\nid = \"gw\"\n").unwrap();
        assert_eq!(state_dir_of(&path), PathBuf::from("/var/lib/edgeward"));
    }
}
