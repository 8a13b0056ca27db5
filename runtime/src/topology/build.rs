//! Building everything a configuration describes, off the message path:
//! compile and check each module once, start one instance per module per
//! profile (running its `init`), and index the sensors by address.
//! `edgeward check` runs exactly this, so what it accepts, `run` accepts.

use crate::clock::Clock;
use crate::config::{Config, Loaded, OnError, SensorFormat, SourceKind, parse_mac};
use crate::pipeline::{Engine, Grants, Instance, InstanceContext, Limits, ModuleError, Pipeline, Prepared};
use crate::state::StateStore;
use crate::trust::Keyring;
use crate::trust::keys::{self, Missing};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a topology could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Key(#[from] crate::trust::keys::KeyError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A configured sensor, found by its address.
#[derive(Debug, Clone)]
pub struct SensorEntry {
    pub name: String,
    /// The address as configured, `AA:BB:CC:DD:EE:FF`.
    pub address: String,
    pub format: SensorFormat,
    pub source: SourceKind,
    pub profile: String,
    /// The key id its signatures carry.
    pub kid: String,
    /// Its production public key (signed sensors).
    pub key: Option<VerifyingKey>,
    /// Its BTHome bindkey (encrypted advertisements).
    pub bindkey: Option<[u8; 16]>,
}

/// A profile's pipeline with its settings.
pub struct ProfileRuntime {
    pub pipeline: Pipeline,
    pub tick_interval: Duration,
    /// The uplink topic of each of the profile's sensors.
    pub topics: HashMap<String, String>,
    /// The profile's time: the gateway clock, or under a full-speed
    /// simulation the time of the last message it handled.
    pub clock: Clock,
    /// Everything the pipeline was built from (settings, module hashes and
    /// configs, keys named, topics): equal identities mean a reload can keep
    /// the running pipeline, with its instances' memory.
    pub identity: String,
}

/// What a loaded module is, for `check` and `status`.
#[derive(Debug, Clone)]
pub struct ModuleSummary {
    pub name: String,
    pub source: String,
    pub hash: String,
    pub size: usize,
}

/// Everything built from one configuration, ready to run.
pub struct Built {
    pub sensors: HashMap<[u8; 6], SensorEntry>,
    pub profiles: BTreeMap<String, ProfileRuntime>,
    pub modules: Vec<ModuleSummary>,
}

/// Build the pipelines and sensor table of `loaded`. Module state lives in
/// `state`; time comes from `clock`; absent keys marked `generate` are
/// handled per `missing_keys`.
pub fn build(
    loaded: &Loaded,
    engine: &Engine,
    state: &StateStore,
    clock: &Clock,
    missing_keys: Missing,
) -> Result<Built, BuildError> {
    let config = &loaded.config;
    let keyring = Arc::new(Keyring::load(loaded, missing_keys)?);
    let salt = state.topic_salt()?;

    let mut prepared: BTreeMap<&str, (Arc<Prepared>, Arc<str>)> = BTreeMap::new();
    let mut modules = Vec::new();
    for (name, module) in &config.modules {
        let (bytes, source) = module_bytes(loaded, name, module.wasm.get_ref())?;
        let grants = Grants::parse(module.capabilities.iter().map(|c| c.get_ref().as_str()))
            .map_err(|reason| ModuleError::Link { module: name.clone(), file: source.clone(), reason })?;
        let ready = engine.prepare(name, &source, &bytes, grants)?;
        let config_json = serde_json::to_string(&module.config).expect("a TOML table converts to JSON");
        modules.push(ModuleSummary {
            name: name.clone(),
            source,
            hash: hex::encode(ready.hash),
            size: bytes.len(),
        });
        prepared.insert(name, (Arc::new(ready), config_json.into()));
    }

    let sandbox = &config.sandbox;
    let mut profiles = BTreeMap::new();
    for (profile_name, profile) in &config.profiles {
        let profile_clock = clock.fork();
        let mut stages = Vec::with_capacity(profile.modules.len());
        for module_name in &profile.modules {
            let module_name = module_name.get_ref();
            let module = &config.modules[module_name];
            let (ready, config_json) = &prepared[module_name.as_str()];
            let limits = Limits {
                call_timeout: Duration::from_millis(
                    module.call_timeout_ms.unwrap_or(sandbox.call_timeout_ms),
                ),
                init_timeout: Duration::from_millis(sandbox.init_timeout_ms),
                memory_bytes: (module.memory_limit_mib.unwrap_or(sandbox.memory_limit_mib) as usize) << 20,
            };
            let ctx = InstanceContext {
                label: format!("{profile_name}/{module_name}").into(),
                config_json: config_json.clone(),
                limits,
                state: state.clone(),
                clock: profile_clock.clone(),
                keyring: keyring.clone(),
            };
            stages.push(Instance::start(ready.clone(), ctx)?);
        }
        let on_error: OnError = profile.on_error;
        let topics = topics(config, profile_name, &profile.topic, &salt);
        let identity = identity(config, profile_name, &topics, |module| hex::encode(prepared[module].0.hash));
        profiles.insert(
            profile_name.clone(),
            ProfileRuntime {
                pipeline: Pipeline::new(profile_name.clone(), on_error, stages),
                tick_interval: Duration::from_secs_f64(profile.tick_interval_s),
                topics,
                clock: profile_clock,
                identity,
            },
        );
    }

    let mut sensors = HashMap::new();
    for s in &config.sensors {
        let mac = parse_mac(s.address.get_ref()).expect("validated by the config loader");
        let key = match (&s.key, s.sim.as_ref().and_then(|sim| sim.key.as_ref())) {
            (Some(key), _) => {
                Some(keys::parse_verifying_key(key.get_ref(), &format!("sensor `{}`", s.name))?)
            }
            // A simulated sensor's key is generated on first use, like a factory would.
            (None, Some(path)) => {
                Some(keys::signing_key(&loaded.resolve(path), true, missing_keys)?.verifying_key())
            }
            (None, None) => None,
        };
        let entry = SensorEntry {
            name: s.name.clone(),
            address: s.address.get_ref().to_uppercase(),
            format: s.format,
            source: s.source,
            profile: s.profile.get_ref().clone(),
            kid: s.kid().to_string(),
            key,
            bindkey: s.bindkey.as_ref().and_then(|k| crate::config::parse_bindkey(k.get_ref())),
        };
        sensors.insert(mac, entry);
    }

    Ok(Built { sensors, profiles, modules })
}

/// What `profile`'s pipeline is built from, as text; spans (where in the
/// file a value sits) are left out, so moving lines changes nothing.
fn identity(
    config: &Config,
    profile: &str,
    topics: &HashMap<String, String>,
    hash: impl Fn(&str) -> String,
) -> String {
    let p = &config.profiles[profile];
    let mut text = format!(
        "on-error={:?} tick={} topics={:?} sandbox={:?}\n",
        p.on_error,
        p.tick_interval_s,
        topics.iter().collect::<BTreeMap<_, _>>(),
        config.sandbox
    );
    for name in &p.modules {
        let m = &config.modules[name.get_ref()];
        let capabilities: Vec<&String> = m.capabilities.iter().map(|c| c.get_ref()).collect();
        text += &format!(
            "module {} sha256={} capabilities={capabilities:?} timeout={:?} memory={:?} config={}\n",
            name.get_ref(),
            hash(name.get_ref()),
            m.call_timeout_ms,
            m.memory_limit_mib,
            m.config
        );
    }
    // Keys a module may use through its capabilities.
    text += &format!("signers={:?}\n", config.signers);
    for (name, set) in &config.recipients {
        let keys: Vec<(&String, &String)> = set.keys.iter().map(|k| (&k.kid, k.key.get_ref())).collect();
        text += &format!("recipients {name} pad-to={} keys={keys:?}\n", set.pad_to);
    }
    text
}

/// Each sensor's uplink topic in `profile`: the template with `{gateway}`,
/// `{profile}`, `{sensor}` and `{sensor-id}` replaced. `{sensor-id}` is an
/// opaque id (a salted hash of the name, the salt secret to this gateway), so
/// a privacy profile's topics tell a broker neither names nor kinds.
fn topics(config: &Config, profile: &str, template: &str, salt: &[u8; 32]) -> HashMap<String, String> {
    config
        .sensors
        .iter()
        .filter(|s| s.profile.get_ref() == profile)
        .map(|s| {
            let opaque = hex::encode(
                &Sha256::new().chain_update(salt).chain_update(s.name.as_bytes()).finalize()[..8],
            );
            let topic = template
                .replace("{gateway}", &config.gateway.id)
                .replace("{profile}", profile)
                .replace("{sensor}", &s.name)
                .replace("{sensor-id}", &opaque);
            (s.name.clone(), topic)
        })
        .collect()
}

/// The component bytes of a module, and where they came from.
fn module_bytes(loaded: &Loaded, name: &str, wasm: &str) -> Result<(Vec<u8>, String), ModuleError> {
    if let Some(builtin) = wasm.strip_prefix("builtin:") {
        let bytes = crate::builtin::module(builtin).ok_or_else(|| ModuleError::Read {
            module: name.to_string(),
            path: wasm.to_string(),
            reason: "no such built-in module".into(),
        })?;
        return Ok((bytes.to_vec(), wasm.to_string()));
    }
    let path = loaded.resolve(Path::new(wasm));
    let bytes = std::fs::read(&path).map_err(|e| ModuleError::Read {
        module: name.to_string(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((bytes, path.display().to_string()))
}
