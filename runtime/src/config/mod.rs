//! The gateway's configuration: one TOML file, read by [`load`], checked by
//! [`Config::validate`] so that every error names the file, the line and the
//! key. What the keys mean is documented on the fields below and, for users,
//! in the commented `configs/` files.

mod load;

pub use load::{
    ConfigError, DROP_IN_DIR, Loaded, Located, format_mac, is_drop_in, load, load_str, parse_bindkey,
    parse_mac, state_dir_of,
};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub gateway: GatewayConfig,
    /// The sensors this gateway listens to; anything else is ignored.
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<SensorConfig>,
    /// Deployment profiles: which rules a sensor's messages pass through.
    #[serde(default, rename = "profile")]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Rule modules (WebAssembly components) and what each may do.
    #[serde(default, rename = "module")]
    pub modules: BTreeMap<String, ModuleConfig>,
    /// Gateway signing keys, by the name a `sign:NAME` capability uses.
    #[serde(default, rename = "signer")]
    pub signers: BTreeMap<String, SignerConfig>,
    /// Recipient sets for end-to-end encryption, by the name a `seal:NAME` capability uses.
    #[serde(default)]
    pub recipients: BTreeMap<String, RecipientsConfig>,
    /// Sandbox limits applied to every module unless the module overrides them.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The simulator, for sensors with `source = "sim"`.
    #[serde(default)]
    pub sim: SimConfig,
    /// The Bluetooth LE source (BlueZ), for sensors with `source = "ble"`.
    #[serde(default)]
    pub ble: BleConfig,
    /// Where forwarded messages go.
    #[serde(default = "SinkConfig::stdout")]
    pub uplink: SinkConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The uplink's durable outbox (used when the uplink is MQTT).
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Where local alarms go.
    #[serde(default = "SinkConfig::stdout")]
    pub alarm: SinkConfig,
    /// Where actuator commands go.
    #[serde(default = "SinkConfig::stdout")]
    pub actuator: SinkConfig,
}

/// `[gateway]`: this gateway's identity and where it keeps state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatewayConfig {
    /// The gateway's id: used in topics and, later, as its signing `kid`.
    pub id: String,
    /// Where `state.db`, `outbox.db` and the compiled-module cache live. Relative paths
    /// are relative to the configuration file's folder.
    #[serde(default = "GatewayConfig::default_state_dir")]
    pub state_dir: PathBuf,
    /// Where compiled modules are cached, so a restart does not recompile
    /// them; default `STATE-DIR/cache`. Safe to delete.
    pub cache_dir: Option<PathBuf>,
}

impl GatewayConfig {
    pub(crate) fn default_state_dir() -> PathBuf {
        PathBuf::from("/var/lib/edgeward")
    }
}

/// `[[sensor]]`: one sensor the gateway accepts readings from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SensorConfig {
    /// A name unique in this file; it names the sensor in messages and alarms.
    pub name: String,
    /// Bluetooth address, `AA:BB:CC:DD:EE:FF`.
    pub address: Spanned<String>,
    /// What the sensor sends.
    #[serde(default)]
    pub format: SensorFormat,
    /// The profile (pipeline of rules) its messages go through.
    pub profile: Spanned<String>,
    /// Where its readings come from: a real radio or the simulator.
    #[serde(default)]
    pub source: SourceKind,
    /// With `source = "sim"`: what the simulator makes it send.
    pub sim: Option<SimSensorConfig>,
    /// `format = "signed-gatt"`: the sensor's Ed25519 production public key
    /// (`ed25519:…`), the trust anchor for its readings. A simulated sensor
    /// may leave it out: its public key then comes from `sim.key`.
    pub key: Option<Spanned<String>>,
    /// The key id the sensor puts in its signatures; default: its name.
    pub kid: Option<String>,
    /// `format = "bthome"` with encryption: the 16-byte bindkey in hex. The
    /// sensor's unencrypted advertisements are then refused (downgrade), and
    /// its counter goes through the replay guard.
    pub bindkey: Option<Spanned<String>>,
}

impl SensorConfig {
    /// The key id expected in this sensor's signatures.
    pub fn kid(&self) -> &str {
        self.kid.as_deref().unwrap_or(&self.name)
    }
}

/// The wire format a sensor speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SensorFormat {
    /// BTHome v2 advertisements (service data of UUID 0xFCD2).
    #[default]
    Bthome,
    /// COSE_Sign1 readings signed with the sensor's production key, sent as
    /// notifications of the edgeward sensor GATT service.
    SignedGatt,
}

/// Where a sensor's frames come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Bluetooth LE through BlueZ.
    #[default]
    Ble,
    /// The built-in simulator.
    Sim,
}

/// `sim = { ... }` on a simulated sensor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimSensorConfig {
    /// The series it produces.
    pub model: SimModel,
    /// Seconds (of simulated time) between readings.
    #[serde(default = "SimSensorConfig::default_interval")]
    pub interval_s: f64,
    /// For a simulated signed sensor: its private key file, as if burnt in at
    /// the factory (generated when absent).
    pub key: Option<PathBuf>,
}

impl SimSensorConfig {
    fn default_interval() -> f64 {
        10.0
    }
}

/// The simulator's sensor models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimModel {
    /// Room temperature on a daily curve with noise, and relative humidity;
    /// the room cools while no heating command turned it on.
    Room,
    /// Body temperature and heart rate of a wearable, with occasional fever episodes.
    Wearable,
    /// A BTHome door sensor: at each reading the door has opened or closed
    /// (even odds), reported as the binary measurement `door`.
    Door,
}

/// `[signer.NAME]`: a gateway signing key, used by rules granted `sign:NAME`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignerConfig {
    /// The Ed25519 secret key file (mode 0600), as `edgeward keygen` writes it.
    pub key: PathBuf,
    /// The key id put in signatures; default: the gateway id.
    pub kid: Option<String>,
    /// Generate the key at start-up when the file does not exist.
    #[serde(default)]
    pub generate: bool,
}

/// `[recipients.NAME]`: who can open what rules granted `seal:NAME` seal.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecipientsConfig {
    /// The recipients' X25519 public keys.
    pub keys: Vec<RecipientKeyConfig>,
    /// Plaintexts are padded to a multiple of this many bytes before
    /// sealing, so the ciphertext's length says little about its content.
    #[serde(default = "RecipientsConfig::default_pad")]
    pub pad_to: usize,
}

impl RecipientsConfig {
    fn default_pad() -> usize {
        256
    }
}

/// One recipient of sealed messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecipientKeyConfig {
    /// The recipient's key id; its app opens messages with the same id.
    pub kid: String,
    /// Its X25519 public key, `x25519:…` as `edgeward keygen --kind x25519` prints it.
    pub key: Spanned<String>,
}

/// `[profile.NAME]`: a pipeline of rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileConfig {
    /// Module names, in the order messages pass through them.
    pub modules: Vec<Spanned<String>>,
    /// What happens to a message when a module fails (traps, times out or returns an error).
    #[serde(default)]
    pub on_error: OnError,
    /// Seconds between `tick` calls, which let rules act on silence.
    #[serde(default = "ProfileConfig::default_tick")]
    pub tick_interval_s: f64,
    /// The uplink topic; `{gateway}`, `{profile}`, `{sensor}` and
    /// `{sensor-id}` (an opaque per-sensor id, for privacy) are replaced.
    #[serde(default = "ProfileConfig::default_topic")]
    pub topic: String,
}

impl ProfileConfig {
    fn default_tick() -> f64 {
        1.0
    }
    fn default_topic() -> String {
        "edgeward/{gateway}/{profile}/{sensor}".to_string()
    }
}

/// A profile's answer to a failing module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Drop the message (fail closed).
    #[default]
    Drop,
    /// Skip the failed module and pass the message on unchanged (fail open).
    Pass,
}

/// `[module.NAME]`: one rule module and what it is granted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModuleConfig {
    /// `builtin:NAME` for a module shipped inside edgeward, else the path to
    /// a `.wasm` component (relative to the configuration file's folder).
    pub wasm: Spanned<String>,
    /// What the module may use beyond `log` and `clock`: `kv`, `sign:KEY`, `seal:RECIPIENTS`.
    #[serde(default)]
    pub capabilities: Vec<Spanned<String>>,
    /// Override of `[sandbox] call-timeout-ms` for this module.
    pub call_timeout_ms: Option<u64>,
    /// Override of `[sandbox] memory-limit-mib` for this module.
    pub memory_limit_mib: Option<u64>,
    /// The module's own configuration, handed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

/// `[sandbox]`: limits for every module instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxConfig {
    /// Longest a single `process` or `tick` call may run before it is stopped.
    #[serde(default = "SandboxConfig::default_call_timeout")]
    pub call_timeout_ms: u64,
    /// Longest `init` may run (it may build tables).
    #[serde(default = "SandboxConfig::default_init_timeout")]
    pub init_timeout_ms: u64,
    /// Most linear memory one instance may grow to.
    #[serde(default = "SandboxConfig::default_memory")]
    pub memory_limit_mib: u64,
}

impl SandboxConfig {
    fn default_call_timeout() -> u64 {
        // Generous next to the ~2 µs a call takes: it must only catch runaway
        // rules, never a busy machine's scheduling delay.
        50
    }
    fn default_init_timeout() -> u64 {
        1000
    }
    fn default_memory() -> u64 {
        16
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            call_timeout_ms: Self::default_call_timeout(),
            init_timeout_ms: Self::default_init_timeout(),
            memory_limit_mib: Self::default_memory(),
        }
    }
}

/// `[ble]`: the Bluetooth LE source, through BlueZ on the system D-Bus.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BleConfig {
    /// The BlueZ adapter, e.g. `hci0`; absent: BlueZ's default adapter
    /// (`hci0` when present, else the first by name).
    pub adapter: Option<Spanned<String>>,
    /// Most GATT connections (signed sensors) held at once on the adapter;
    /// others wait for a free one. Controllers manage only a few.
    #[serde(default = "BleConfig::default_max_connections")]
    pub max_connections: usize,
    /// Restart discovery when no advertisement at all arrived for this many
    /// seconds while sensors wait on advertisements (a stalled controller
    /// goes silent without an error); 0 turns the watchdog off.
    #[serde(default = "BleConfig::default_watchdog")]
    pub watchdog_s: f64,
    /// How advertisements are heard: `auto` (passive when the adapter
    /// offers advertisement monitors, else active), `passive` or `active`.
    #[serde(default)]
    pub scan: ScanMode,
}

/// `[ble] scan`: how the BLE source hears advertisements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// Passive when BlueZ offers an advertisement monitor with
    /// `or_patterns` on the adapter, active discovery otherwise.
    #[default]
    Auto,
    /// Only through an advertisement monitor (no scan requests to the
    /// sensors); refused, and retried, where BlueZ does not offer one.
    Passive,
    /// Active LE discovery with duplicate data (the adapter sends scan requests).
    Active,
}

impl BleConfig {
    fn default_max_connections() -> usize {
        4
    }
    fn default_watchdog() -> f64 {
        60.0
    }
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig {
            adapter: None,
            max_connections: Self::default_max_connections(),
            watchdog_s: Self::default_watchdog(),
            scan: ScanMode::default(),
        }
    }
}

/// `[sim]`: the simulator shared by all `source = "sim"` sensors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimConfig {
    /// Seed of the pseudo-random series: the same seed gives the same readings.
    #[serde(default = "SimConfig::default_seed")]
    pub seed: u64,
    /// Simulated seconds per real second; 0 runs as fast as the gateway can.
    #[serde(default = "SimConfig::default_speed")]
    pub speed: f64,
    /// Stop after this many simulated seconds (the gateway then drains and
    /// exits if nothing else feeds it); absent: run forever.
    pub duration_s: Option<f64>,
    /// Simulated start time, RFC 3339 (`2026-01-15T06:00:00Z`); absent: now.
    pub start: Option<String>,
}

impl SimConfig {
    fn default_seed() -> u64 {
        1
    }
    fn default_speed() -> f64 {
        1.0
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { seed: Self::default_seed(), speed: Self::default_speed(), duration_s: None, start: None }
    }
}

/// `[uplink]`, `[alarm]`, `[actuator]`: where one kind of output goes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Standard output, one record per line.
    Stdout {
        #[serde(default)]
        format: OutputFormat,
    },
    /// Append JSON lines to a file (relative to the configuration file's folder).
    File { path: PathBuf },
    /// MQTT. For the uplink, messages wait in the durable outbox until the
    /// broker acknowledged them.
    Mqtt(Box<crate::sink::mqtt::MqttConfig>),
    /// Discard.
    None {},
}

impl SinkConfig {
    fn stdout() -> Self {
        SinkConfig::Stdout { format: OutputFormat::default() }
    }
}

/// `[metrics]`: the Prometheus endpoint, off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` on, e.g. `127.0.0.1:9464`.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[outbox]`: where uplink messages wait for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutboxConfig {
    /// Most bytes (payloads, topics, ids) waiting at once.
    #[serde(default = "OutboxConfig::default_max_bytes")]
    pub max_bytes: u64,
    /// When full: `reject-new` or `drop-oldest`; either way counted and logged.
    #[serde(default = "OutboxConfig::default_overflow")]
    pub overflow: crate::sink::outbox::Overflow,
    /// At shutdown, how long to keep sending before leaving the rest for the next start.
    #[serde(default = "OutboxConfig::default_drain")]
    pub drain_timeout_s: f64,
    /// The uplink's retained status topic (`online`, or the last will `offline`).
    #[serde(default = "OutboxConfig::default_status_topic")]
    pub status_topic: String,
}

impl OutboxConfig {
    fn default_max_bytes() -> u64 {
        64 << 20
    }
    fn default_overflow() -> crate::sink::outbox::Overflow {
        crate::sink::outbox::Overflow::RejectNew
    }
    fn default_drain() -> f64 {
        5.0
    }
    fn default_status_topic() -> String {
        "edgeward/{gateway}/status".into()
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: Self::default_max_bytes(),
            overflow: Self::default_overflow(),
            drain_timeout_s: Self::default_drain(),
            status_topic: Self::default_status_topic(),
        }
    }
}

/// How a stdout sink renders records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// One short line for a person.
    Text,
}
