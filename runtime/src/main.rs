//! The `edgeward` command: the daemon (`run`) and its tools. The only place
//! that knows about exit codes: 0 ok, 1 failure, 78 (EX_CONFIG) for a
//! configuration that cannot be used, so systemd does not restart-loop on it.

mod cli;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use edgeward::config::{self, Loaded};
use edgeward::pipeline::Engine;
use edgeward::state::StateStore;
use edgeward::topology::{self, BuildError};
use edgeward::trust::keys::{self, KeyKind};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for an unusable configuration (sysexits.h EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "edgeward",
    version,
    about = "A BLE gateway whose per-message policy runs in sandboxed WebAssembly rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until stopped (or until a finite simulation ends).
    Run {
        /// The configuration file.
        #[arg(short, long, env = "EDGEWARD_CONFIG", default_value = "/etc/edgeward/edgeward.toml")]
        config: PathBuf,
    },
    /// Create a key pair: the secret key file (mode 0600) and FILE.pub beside it.
    ///
    /// Ed25519 for a gateway's signing identity or a sensor's production key;
    /// X25519 for a tenant app that opens sealed messages. Prints the public
    /// key in the form a configuration quotes.
    Keygen {
        /// Where to write the secret key (never overwritten).
        out: PathBuf,
        /// The kind of key.
        #[arg(long, value_enum, default_value_t = KeyKindArg::Ed25519)]
        kind: KeyKindArg,
    },
    /// Decode one raw advertisement or notification (hex) to JSON, for
    /// debugging and bug reports: BTHome v2 service data by default, or a
    /// signed reading (COSE_Sign1) with `--signed`.
    Decode {
        /// The bytes, in hex (BTHome: the service data after the 0xFCD2 UUID).
        hex: String,
        /// The bytes are a signed reading (COSE_Sign1) rather than BTHome.
        #[arg(long)]
        signed: bool,
        /// The sensor's public key (`ed25519:…`) to verify a signed reading with.
        #[arg(long)]
        key: Option<String>,
        /// The key id the signed reading must carry (default: the one it has).
        #[arg(long)]
        kid: Option<String>,
        /// BTHome: the 16-byte bindkey (hex) of an encrypted advertisement.
        #[arg(long)]
        bindkey: Option<String>,
        /// The sender's Bluetooth address, AA:BB:CC:DD:EE:FF (BTHome encryption needs it).
        #[arg(long)]
        mac: Option<String>,
    },
    /// How the running gateway is doing: counters, uplink, outbox depth.
    Status {
        /// The configuration file (for the state directory).
        #[arg(short, long, env = "EDGEWARD_CONFIG", default_value = "/etc/edgeward/edgeward.toml")]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sensors' persisted state.
    Sensor {
        #[command(subcommand)]
        command: SensorCommand,
    },
    /// Verify the provenance of uplink messages offline: each sensor
    /// signature and gateway countersignature, against a trust store of
    /// public keys. Exits 1 when any message fails.
    Verify {
        /// JSON lines as a file uplink sink writes them (default: standard input).
        input: Option<PathBuf>,
        #[command(flatten)]
        broker: BrokerInput,
        /// The trust store: `[sensors]` and `[gateways]` tables of `kid = "ed25519:…"`.
        #[arg(long)]
        trust: PathBuf,
        /// One JSON verdict per line.
        #[arg(long)]
        json: bool,
    },
    /// Open sealed uplink messages as the tenants' app does: decrypt with the
    /// app's key, verify the provenance inside, aggregate per sensor and show
    /// the series (and optionally draw them as SVG). Exits 1 when any fails.
    Open {
        /// JSON lines as a file uplink sink writes them (default: standard input).
        input: Option<PathBuf>,
        #[command(flatten)]
        broker: BrokerInput,
        /// The app's X25519 secret key file.
        #[arg(long)]
        key: PathBuf,
        /// The app's key id, as in the gateway's `[recipients]`.
        #[arg(long)]
        kid: String,
        /// The trust store of sensor and gateway public keys.
        #[arg(long)]
        trust: PathBuf,
        /// Aggregation window in seconds.
        #[arg(long, default_value_t = 900)]
        window_s: u64,
        /// Also draw the series into this SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Print the aggregates as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List nearby Bluetooth LE devices live, with address, name, RSSI and
    /// decoded BTHome readings, to find a sensor's address for the configuration.
    Scan {
        /// The BlueZ adapter (default: BlueZ's default adapter).
        #[arg(long)]
        adapter: Option<String>,
        /// How long to scan; 0 scans until interrupted.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Rule components: what they need and offer.
    Module {
        #[command(subcommand)]
        command: ModuleCommand,
    },
    /// Create a ready crate for a new rule: Cargo.toml tuned for small
    /// guests, an example rule with a native unit test, and a README with
    /// the build command and the configuration to load it.
    NewRule {
        /// The rule's (crate's) name, e.g. `too-hot`.
        name: String,
        /// The crate's directory (default: ./NAME); it must not exist, unless --force.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Write into an existing directory, overwriting the generated files
        /// (Cargo.toml, src/lib.rs, README.md, .gitignore); others are left alone.
        #[arg(long)]
        force: bool,
        /// Depend on the edgeward-sdk crate in this folder (default: this
        /// build's repository sdk/ if present, else the matching version).
        #[arg(long, conflicts_with = "sdk_version")]
        sdk_path: Option<PathBuf>,
        /// Depend on this published version of edgeward-sdk.
        #[arg(long)]
        sdk_version: Option<String>,
    },
    /// Validate a configuration as `run` would, loading and initialising every module.
    Check {
        /// The configuration file.
        #[arg(short, long, env = "EDGEWARD_CONFIG", default_value = "/etc/edgeward/edgeward.toml")]
        config: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Packaging: write the man pages or a shell's completions.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// Man pages (section 1): `edgeward.1` and one per subcommand.
    Man {
        /// The folder to write them into (created if missing).
        dir: PathBuf,
    },
    /// The completion script for `shell`.
    Completions {
        shell: clap_complete::Shell,
        /// The folder to write it into (created if missing).
        dir: PathBuf,
    },
}

/// Reading uplink messages straight from a broker instead of a file.
#[derive(clap::Args)]
struct BrokerInput {
    /// The broker, `mqtt://HOST:PORT`.
    #[arg(long, requires = "topic")]
    mqtt: Option<String>,
    /// The topic filter to read, e.g. `medical/#`.
    #[arg(long)]
    topic: Option<String>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<usize>,
    /// Stop when no message arrived for this many seconds.
    #[arg(long, default_value_t = 5.0)]
    idle_s: f64,
}

impl BrokerInput {
    fn input<'a>(&'a self, file: Option<&'a std::path::Path>) -> cli::Input<'a> {
        match (&self.mqtt, &self.topic) {
            (Some(url), Some(filter)) => cli::Input::Mqtt {
                url,
                filter,
                count: self.count,
                idle: std::time::Duration::from_secs_f64(self.idle_s.max(0.1)),
            },
            _ => cli::Input::Lines(file),
        }
    }
}

#[derive(Subcommand)]
enum SensorCommand {
    /// Forget a sensor's replay counter, after a deliberate re-key or a
    /// battery swap that reset it; its next reading starts a new window.
    Reset {
        /// The sensor's name in the configuration.
        name: String,
        /// The configuration file (for the state directory).
        #[arg(short, long, env = "EDGEWARD_CONFIG", default_value = "/etc/edgeward/edgeward.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Show a rule component's size, SHA-256, contract version, the
    /// capabilities its imports need and whether it exports `init`,
    /// `process` and `tick`.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyKindArg {
    /// Signatures: a gateway or a sensor.
    Ed25519,
    /// Key agreement: an app that opens sealed messages.
    X25519,
}

fn main() -> ExitCode {
    edgeward::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config, json } => check(config, json),
        Command::Keygen { out, kind } => keygen(out, kind),
        Command::Status { config, json } => status(config, json),
        Command::Decode { hex, signed, key, kid, bindkey, mac } => {
            cli::decode::run(&hex, signed, key.as_deref(), kid.as_deref(), bindkey.as_deref(), mac.as_deref())
        }
        Command::Verify { input, broker, trust, json } => {
            cli::verify::run(&broker.input(input.as_deref()), &trust, json)
                .and_then(|ok| all_passed(ok, "verification"))
        }
        Command::Open { input, broker, key, kid, trust, window_s, svg, json } => {
            cli::open::run(cli::open::Options {
                input: broker.input(input.as_deref()),
                key: &key,
                kid: &kid,
                trust: &trust,
                window_s,
                svg: svg.as_deref(),
                as_json: json,
            })
            .and_then(|ok| all_passed(ok, "opening"))
        }
        Command::Sensor { command: SensorCommand::Reset { name, config } } => sensor_reset(config, name),
        Command::Scan { adapter, seconds, json } => cli::scan::run(adapter.as_deref(), seconds, json),
        Command::Module { command: ModuleCommand::Inspect { file, json } } => {
            cli::module::inspect(&file, json)
        }
        Command::NewRule { name, dir, force, sdk_path, sdk_version } => {
            let sdk = match (sdk_path, sdk_version) {
                (Some(path), _) => cli::new_rule::Sdk::Path(path),
                (None, Some(version)) => cli::new_rule::Sdk::Version(version),
                (None, None) => cli::new_rule::Sdk::default_for_this_build(),
            };
            cli::new_rule::run(&name, dir.as_deref(), sdk, force)
        }
        Command::Generate { command: GenerateCommand::Man { dir } } => {
            cli::generate::man(Cli::command(), &dir)
        }
        Command::Generate { command: GenerateCommand::Completions { shell, dir } } => {
            cli::generate::completions(Cli::command(), shell, &dir)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e.downcast_ref::<BuildError>().is_some_and(is_config_error)
                || e.downcast_ref::<config::ConfigError>().is_some();
            eprintln!("edgeward: {e:#}");
            ExitCode::from(if config_error { EXIT_CONFIG } else { 1 })
        }
    }
}

/// Errors that a change to the configuration (or its module files) fixes.
fn is_config_error(e: &BuildError) -> bool {
    matches!(e, BuildError::Config(_) | BuildError::Module(_) | BuildError::Key(_))
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let loaded = config::load(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Before anything can announce READY: a SIGTERM that arrives between
        // READY and the handler would otherwise kill the daemon undrained.
        let shutdown = shutdown_signal().context("installing the SIGTERM and SIGINT handlers")?;
        // Keep-alives stop if this runtime or the message path's wedges.
        let _watchdog = edgeward::systemd::spawn_watchdog();
        topology::run(loaded, shutdown).await?;
        Ok(())
    })
}

/// Installs the SIGTERM and SIGINT handlers now (tokio registers a handler
/// when the stream is made, not when it is first polled); the future
/// completes on either signal.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

fn check(path: PathBuf, as_json: bool) -> anyhow::Result<()> {
    let loaded = config::load(&path)?;
    let built = build_for_check(&loaded)?;
    if as_json {
        let modules: Vec<_> = built
            .modules
            .iter()
            .map(|m| json!({"name": m.name, "source": m.source, "sha256": m.hash, "bytes": m.size}))
            .collect();
        let out = json!({
            "ok": true,
            "config": path.display().to_string(),
            "sensors": built.sensors.len(),
            "profiles": built.profiles.keys().collect::<Vec<_>>(),
            "modules": modules,
        });
        println!("{out}");
    } else {
        println!(
            "{}: ok ({} sensors, {} profiles, {} modules)",
            path.display(),
            built.sensors.len(),
            built.profiles.len(),
            built.modules.len()
        );
        for m in &built.modules {
            println!("  module {:<12} {}  sha256:{}  {} bytes", m.name, m.source, &m.hash[..16], m.size);
        }
    }
    Ok(())
}

/// Build everything `run` would, with throwaway state so that checking never
/// touches the running gateway's state. The compiled-module cache is shared
/// when this user may write it (then a reload after a check starts faster).
fn build_for_check(loaded: &Loaded) -> anyhow::Result<topology::Built> {
    let scratch = tempfile::tempdir().context("creating a scratch state directory")?;
    let state = StateStore::open(scratch.path()).map_err(BuildError::from)?;
    let cache = loaded.cache_dir();
    let cache = edgeward::state::create_private_dir(&cache).is_ok().then_some(cache);
    let engine = Engine::new(cache).map_err(BuildError::from)?;
    let clock = topology::clock_for(loaded);
    Ok(topology::build(loaded, &engine, &state, &clock, keys::Missing::Ephemeral)?)
}

/// Turn "not everything passed" into the failure exit code.
fn all_passed(ok: bool, what: &str) -> anyhow::Result<()> {
    if ok { Ok(()) } else { anyhow::bail!("{what} failed for some messages") }
}

fn status(path: PathBuf, as_json: bool) -> anyhow::Result<()> {
    // A configuration with an error in it still names the state directory.
    let state_dir = match config::load(&path) {
        Ok(loaded) => loaded.state_dir(),
        Err(e) => {
            eprintln!("edgeward: warning: {e}");
            config::state_dir_of(&path)
        }
    };
    let file = state_dir.join("status.json");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!("no status at {} (has the gateway run with this config?)", file.display())
    })?;
    let mut status: edgeward::telemetry::Status =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    // A crashed daemon leaves `running: true` behind: believe the process table.
    status.running &= std::path::Path::new(&format!("/proc/{}", status.pid)).exists();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let state = if status.running { format!("running (pid {})", status.pid) } else { "not running".into() };
    println!("gateway {}: {state}, as of {}", status.gateway, status.updated);
    println!("config  {} (generation {})", status.config, status.reload.generation);
    if let Some(last) = &status.reload.last {
        println!("reload  {} at {} ({}), {:.0} ms", last.result, last.at, last.trigger, last.took_ms);
        if let Some(error) = &last.error {
            println!("        {error}");
        }
    }
    if let Some(outbox) = &status.outbox {
        let age = outbox.oldest_age_s.map_or_else(|| "empty".into(), |a| format!("oldest {a:.0} s"));
        println!("outbox  {} messages, {} bytes, {age}", outbox.messages, outbox.bytes);
    }
    let width = status.counters.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in &status.counters {
        println!("  {name:<width$} {value}");
    }
    for m in &status.modules {
        println!(
            "module  {}/{}: {} calls, {} faults, mean {:.1} µs",
            m.profile, m.module, m.calls, m.faults, m.latency_mean_us
        );
    }
    Ok(())
}

fn keygen(out: PathBuf, kind: KeyKindArg) -> anyhow::Result<()> {
    let kind = match kind {
        KeyKindArg::Ed25519 => KeyKind::Ed25519,
        KeyKindArg::X25519 => KeyKind::X25519,
    };
    let public = keys::generate(kind, &out)?;
    eprintln!(
        "secret key written to {} (mode 0600); public key in {}",
        out.display(),
        keys::public_path(&out).display()
    );
    println!("{public}");
    Ok(())
}

fn sensor_reset(path: PathBuf, name: String) -> anyhow::Result<()> {
    let loaded = config::load(&path)?;
    if !loaded.config.sensors.iter().any(|s| s.name == name) {
        anyhow::bail!("{}: no sensor named `{name}`", path.display());
    }
    let state = StateStore::open(&loaded.state_dir())?;
    if state.replay_reset(&name)? {
        println!("sensor `{name}`: replay counter forgotten; its next reading starts a new window");
    } else {
        println!("sensor `{name}`: had no replay counter yet");
    }
    Ok(())
}
