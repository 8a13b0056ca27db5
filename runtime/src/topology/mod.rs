//! The running gateway: sources → router (decode) → one task per profile's
//! pipeline → sinks, built from a configuration, reloaded when it changes,
//! and run until the sources end or shutdown is requested.
//!
//! A reload builds the new configuration's pipelines beside the running
//! ones, off the message path, then swaps between two frames: the router
//! sends new messages to the new pipelines, which wait until the old ones
//! have handled everything queued for them (so each sensor's messages stay
//! in order and module state in the store is complete), then start. Sources
//! and sinks whose configuration did not change keep running; pipelines
//! whose modules and settings did not change keep their instances.
//!
//! Sources, the router and the pipelines run on a tokio runtime of their own
//! ([`MessagePath`]), where module calls and signature checks run in place.

pub mod admit;
mod build;
mod watch;

use admit::{Admission, Admitted};

pub use build::{BuildError, Built, ModuleSummary, ProfileRuntime, SensorEntry, build};
pub use watch::Trigger;

use crate::clock::{Clock, wall_ms};
use crate::config::{Config, Loaded, SensorFormat, SinkConfig, SourceKind};
use crate::decode::Frame;
use crate::pipeline::{Effects, Engine, Fate, Message};
use crate::sink::outbox::Outbox;
use crate::sink::{self, Record, SinkSet, mqtt};
use crate::source::ble::{self, BleSensor};
use crate::source::sim::{self, SimSensor, SimSigning};
use crate::state::StateStore;
use crate::telemetry::{Counters, ReloadOutcome, ReloadStatus, Status};
use crate::trust::keys::{self, Missing};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::{JoinHandle, block_in_place};
use tokio::time::Instant;

/// How many decoded messages may wait for a pipeline.
const PIPELINE_QUEUE: usize = 1024;
/// How many raw frames may wait for the router.
const FRAME_QUEUE: usize = 4096;

/// The gateway's clock for `loaded`: the simulator's when it simulates.
pub fn clock_for(loaded: &Loaded) -> Clock {
    let config = &loaded.config;
    let simulating = config.sensors.iter().any(|s| s.source == SourceKind::Sim);
    let start = config.sim.start.as_deref().and_then(crate::clock::parse_rfc3339_ms);
    match (simulating, config.sim.speed) {
        (false, _) => Clock::real(),
        (true, 0.0) => Clock::manual(start.unwrap_or_else(wall_ms)),
        (true, speed) if speed == 1.0 && start.is_none() => Clock::real(),
        (true, speed) => Clock::scaled(start.unwrap_or_else(wall_ms), speed),
    }
}

/// Run the gateway described by `loaded` until its sources end (a finite
/// simulation) or `shutdown` completes, reloading its configuration on
/// SIGHUP and when its files change. Returns the final counters.
pub async fn run(loaded: Loaded, shutdown: impl Future<Output = ()>) -> Result<Arc<Counters>, BuildError> {
    let mut triggers = watch::Triggers::new()
        .map_err(|source| BuildError::Io { what: "listening for SIGHUP".into(), source })?;
    let mut gateway = Gateway::start(loaded).await?;
    triggers.watch(&gateway.loaded);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = gateway.sources_finished() => {
                tracing::info!("all sources finished; draining");
                break;
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down; draining");
                crate::systemd::stopping();
                break;
            }
            trigger = triggers.next() => {
                gateway.reload(trigger).await;
                triggers.watch(&gateway.loaded);
            }
        }
    }
    Ok(gateway.stop().await)
}

/// A sink's task and the sender that feeds it.
struct SinkSlot {
    sender: mpsc::Sender<Record>,
    task: JoinHandle<()>,
}

impl SinkSlot {
    fn start(kind: &'static str, sink: Box<dyn sink::Sink>, counters: &Arc<Counters>) -> Self {
        let (sender, task) = sink::spawn(kind, sink, counters.clone());
        SinkSlot { sender, task }
    }

    /// Close it once its other senders are gone; wait until it has written
    /// everything.
    async fn finish(self) {
        drop(self.sender);
        let _ = self.task.await;
    }
}

/// The uplink: its sink and, for MQTT, the task publishing the outbox.
struct Uplink {
    sink: SinkSlot,
    publisher: Option<(Arc<Notify>, JoinHandle<()>)>,
}

/// A profile's task; it hands its runtime back when its queue closes.
struct PipelineSlot {
    identity: String,
    task: JoinHandle<Option<ProfileRuntime>>,
}

/// What `edgeward status` is written from.
struct StatusInputs {
    gateway: String,
    config: PathBuf,
    outbox: Option<Arc<Outbox>>,
    reload: ReloadStatus,
}

impl StatusInputs {
    fn gather(&self, counters: &Counters, running: bool) -> Status {
        Status::gather(&self.gateway, &self.config, counters, self.outbox.as_deref(), &self.reload, running)
    }
}

/// The sensors and pipelines the router sends to.
struct RouteTable {
    sensors: HashMap<[u8; 6], SensorEntry>,
    routes: Routes,
}

/// Everything running, and what it was built from.
struct Gateway {
    loaded: Loaded,
    clock: Clock,
    state: StateStore,
    engine: Engine,
    counters: Arc<Counters>,
    status: Arc<Mutex<StatusInputs>>,
    status_task: JoinHandle<()>,
    metrics: Option<JoinHandle<()>>,
    /// When a finite simulation ends, in clock time.
    sim_end: Option<u64>,
    frames: mpsc::Sender<Frame>,
    tables: mpsc::Sender<RouteTable>,
    router: JoinHandle<()>,
    message_path: MessagePath,
    outbox: Option<Arc<Outbox>>,
    uplink: Uplink,
    alarm: SinkSlot,
    actuator: SinkSlot,
    pipelines: BTreeMap<String, PipelineSlot>,
    sim: Option<JoinHandle<()>>,
    ble: Option<JoinHandle<()>>,
}

impl Gateway {
    async fn start(loaded: Loaded) -> Result<Self, BuildError> {
        let config = &loaded.config;
        let clock = clock_for(&loaded);
        let state_dir = loaded.state_dir();
        let state = StateStore::open(&state_dir)?;
        let engine = Engine::new(Some(loaded.cache_dir()))?;
        let built = block_in_place(|| build(&loaded, &engine, &state, &clock, Missing::Generate))?;
        let counters = Arc::new(Counters::default());

        let mut outbox = None;
        let (uplink_sink, publisher) = uplink_parts(&loaded, &mut outbox, &counters)?;
        let uplink = Uplink {
            sink: SinkSlot::start("uplink", uplink_sink, &counters),
            publisher: publisher.map(spawn_publisher),
        };
        let alarm = SinkSlot::start("alarm", sink::from_config(&config.alarm, &loaded, "alarm")?, &counters);
        let actuator =
            SinkSlot::start("actuator", sink::from_config(&config.actuator, &loaded, "actuator")?, &counters);
        let metrics = start_metrics(&loaded, &counters, &outbox).await?;
        let reload = ReloadStatus { generation: 1, files: file_names(&loaded), last: None };
        let status = Arc::new(Mutex::new(StatusInputs {
            gateway: config.gateway.id.clone(),
            config: loaded.path.clone(),
            outbox: outbox.clone(),
            reload,
        }));
        let status_task = tokio::spawn(write_status(state_dir, status.clone(), counters.clone()));

        let sinks = SinkSet {
            uplink: uplink.sink.sender.clone(),
            alarm: alarm.sender.clone(),
            actuator: actuator.sender.clone(),
        };
        let message_path = MessagePath::start()?;
        let (routes, pipelines, starts) = spawn_pipelines(&message_path, built.profiles, &sinks, &counters);
        counters.set_modules(starts.iter().map(|(_, _, runtime)| &runtime.pipeline));
        for (_, start, runtime) in starts {
            let _ = start.send(runtime);
        }
        let (frames, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (tables, tables_rx) = mpsc::channel(1);
        let table = RouteTable { sensors: built.sensors, routes };
        let router = message_path.spawn(route(
            frames_rx,
            table,
            tables_rx,
            state.clone(),
            config.gateway.id.clone(),
            counters.clone(),
        ));

        let mut gateway = Gateway {
            clock,
            state,
            engine,
            counters,
            status,
            status_task,
            metrics,
            sim_end: None,
            frames,
            tables,
            router,
            message_path,
            outbox,
            uplink,
            alarm,
            actuator,
            pipelines,
            sim: None,
            ble: None,
            loaded,
        };
        let simulated = sim_sensors(&gateway.loaded, &gateway.state)?;
        if !simulated.is_empty() {
            gateway.clock.restart();
            let start = gateway.clock.now_ms();
            gateway.sim_end = gateway.loaded.config.sim.duration_s.map(|d| start + (d * 1000.0) as u64);
        }
        gateway.sim = gateway.start_sim(simulated);
        gateway.ble = gateway.start_ble();
        tracing::info!(
            gateway = %gateway.loaded.config.gateway.id,
            config = %gateway.loaded.path.display(),
            sensors = gateway.loaded.config.sensors.len(),
            profiles = gateway.pipelines.len(),
            "started"
        );
        crate::systemd::ready();
        Ok(gateway)
    }

    fn start_sim(&self, simulated: Vec<SimSensor>) -> Option<JoinHandle<()>> {
        if simulated.is_empty() {
            return None;
        }
        let start = self.clock.now_ms();
        let seed = self.loaded.config.sim.seed;
        Some(self.message_path.spawn(sim::run(
            simulated,
            seed,
            self.clock.clone(),
            start,
            self.sim_end,
            self.frames.clone(),
        )))
    }

    fn start_ble(&self) -> Option<JoinHandle<()>> {
        let radio = ble_sensors(&self.loaded);
        if radio.is_empty() {
            return None;
        }
        let config = self.loaded.config.ble.clone();
        Some(self.message_path.spawn(ble::run(
            config,
            radio,
            self.clock.clone(),
            self.frames.clone(),
            self.counters.clone(),
        )))
    }

    /// Completes when every source has ended, which only a simulation with
    /// a duration does; never when there are no sources.
    async fn sources_finished(&mut self) {
        let mut any = false;
        for task in [&mut self.sim, &mut self.ble].into_iter().flatten() {
            any = true;
            if !task.is_finished() {
                let _ = task.await;
            }
        }
        if !any {
            std::future::pending::<()>().await;
        }
    }

    /// Reload the configuration: apply it if it builds, keep the running
    /// one otherwise; either way, say so in the log and the status.
    async fn reload(&mut self, trigger: Trigger) {
        let began = std::time::Instant::now();
        crate::systemd::reloading();
        let result = self.try_reload().await;
        crate::systemd::ready();
        let took_ms = began.elapsed().as_secs_f64() * 1000.0;
        let (result, error, changed) = match result {
            Ok(changed) if changed.is_empty() => {
                tracing::info!(%trigger, "configuration unchanged");
                ("unchanged", None, changed)
            }
            Ok(changed) => {
                let generation = self.status().reload.generation + 1;
                tracing::info!(%trigger, generation, changed = %changed.join(", "), took_ms, "configuration reloaded");
                ("applied", None, changed)
            }
            Err(e) => {
                tracing::error!(%trigger, "reload refused, the running configuration stays: {e}");
                ("refused", Some(e), Vec::new())
            }
        };
        let mut status = self.status();
        if result == "applied" {
            status.reload.generation += 1;
            status.reload.files = file_names(&self.loaded);
            status.outbox = self.outbox.clone();
        }
        status.reload.last = Some(ReloadOutcome {
            at: crate::clock::format_rfc3339_ms(wall_ms()),
            trigger: trigger.to_string(),
            result: result.into(),
            error,
            changed,
            took_ms,
        });
        drop(status);
        self.write_status(true);
    }

    fn status(&self) -> std::sync::MutexGuard<'_, StatusInputs> {
        self.status.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_status(&self, running: bool) {
        let status = self.status().gather(&self.counters, running);
        block_in_place(|| status.write(&self.loaded.state_dir()));
    }

    /// Build the configuration on disk beside the running one and swap it
    /// in; what changed, or why nothing did.
    async fn try_reload(&mut self) -> Result<Vec<String>, String> {
        let next = crate::config::load(&self.loaded.path).map_err(|e| e.to_string())?;
        needs_restart(&self.loaded.config, &next.config)?;
        let (now, new) = (&self.loaded.config, &next.config);

        // Everything that can fail, before anything running is touched.
        let built =
            block_in_place(|| build(&next, &self.engine, &self.state, &self.clock, Missing::Generate))
                .map_err(|e| e.to_string())?;
        let new_uplink = (new.uplink != now.uplink || new.outbox != now.outbox)
            .then(|| uplink_parts(&next, &mut self.outbox, &self.counters))
            .transpose()
            .map_err(|e| e.to_string())?;
        let new_alarm = (new.alarm != now.alarm)
            .then(|| sink::from_config(&new.alarm, &next, "alarm"))
            .transpose()
            .map_err(|e| e.to_string())?;
        let new_actuator = (new.actuator != now.actuator)
            .then(|| sink::from_config(&new.actuator, &next, "actuator"))
            .transpose()
            .map_err(|e| e.to_string())?;
        let sim_changed = sim_identity(now) != sim_identity(new);
        let simulated = match sim_changed {
            true => sim_sensors(&next, &self.state).map_err(|e| e.to_string())?,
            false => Vec::new(),
        };
        let mut changed = Vec::new();

        // The new generation's sinks: the running ones where unchanged.
        let new_uplink =
            new_uplink.map(|(sink, publisher)| (SinkSlot::start("uplink", sink, &self.counters), publisher));
        let new_alarm = new_alarm.map(|sink| SinkSlot::start("alarm", sink, &self.counters));
        let new_actuator = new_actuator.map(|sink| SinkSlot::start("actuator", sink, &self.counters));
        let sinks = SinkSet {
            uplink: new_uplink.as_ref().map_or(&self.uplink.sink, |(slot, _)| slot).sender.clone(),
            alarm: new_alarm.as_ref().unwrap_or(&self.alarm).sender.clone(),
            actuator: new_actuator.as_ref().unwrap_or(&self.actuator).sender.clone(),
        };

        // New pipelines wait for their runtime; the router feeds them from now.
        let (routes, pipelines, starts) =
            spawn_pipelines(&self.message_path, built.profiles, &sinks, &self.counters);
        drop(sinks);
        if self.tables.send(RouteTable { sensors: built.sensors, routes }).await.is_err() {
            return Err("the router has stopped".into());
        }
        // The old pipelines handle what was queued for them, then hand back
        // their runtimes: per sensor, every message is handled in order, and
        // module state in the store is complete before the new ones start.
        let old = std::mem::replace(&mut self.pipelines, pipelines);
        let mut previous = HashMap::new();
        for (name, slot) in old {
            if let Ok(Some(runtime)) = slot.task.await {
                previous.insert(name, (slot.identity, runtime));
            }
        }
        // Replaced sinks write what the old pipelines sent them, then close.
        if let Some(outbox) = &self.outbox {
            outbox.set_limits(new.outbox.max_bytes, new.outbox.overflow);
        }
        if let Some((slot, publisher)) = new_uplink {
            let old = std::mem::replace(
                &mut self.uplink,
                Uplink { sink: slot, publisher: publisher.map(spawn_publisher) },
            );
            // Stop the old publisher only once its sink has stored everything;
            // what it sent without an acknowledgement is sent again by the new one.
            old.sink.finish().await;
            if let Some((_, task)) = old.publisher {
                task.abort();
                let _ = task.await;
            }
            changed.push("uplink".to_string());
        }
        if let Some(slot) = new_alarm {
            std::mem::replace(&mut self.alarm, slot).finish().await;
            changed.push("alarm sink".to_string());
        }
        if let Some(slot) = new_actuator {
            std::mem::replace(&mut self.actuator, slot).finish().await;
            changed.push("actuator sink".to_string());
        }
        // Start the new pipelines, keeping a running one that did not change.
        let mut chosen = Vec::with_capacity(starts.len());
        for (name, start, runtime) in starts {
            let runtime = match previous.remove(&name) {
                Some((identity, old)) if identity == runtime.identity => old,
                _ => {
                    changed.push(format!("profile {name}"));
                    runtime
                }
            };
            chosen.push((start, runtime));
        }
        self.counters.set_modules(chosen.iter().map(|(_, runtime)| &runtime.pipeline));
        for (start, runtime) in chosen {
            let _ = start.send(runtime);
        }
        changed.extend(previous.into_keys().map(|name| format!("profile {name} (removed)")));
        if now.sensors != new.sensors {
            changed.push("sensors".into());
        }

        let old_loaded = std::mem::replace(&mut self.loaded, next);
        if sim_changed {
            if let Some(task) = self.sim.take() {
                task.abort();
            }
            self.sim = self.start_sim(simulated);
            changed.push("source sim".into());
        }
        if ble_identity(&old_loaded.config) != ble_identity(&self.loaded.config) {
            if let Some(task) = self.ble.take() {
                task.abort();
            }
            self.ble = self.start_ble();
            changed.push("source ble".into());
        }
        if old_loaded.config.metrics != self.loaded.config.metrics || changed.iter().any(|c| c == "uplink") {
            if let Some(task) = self.metrics.take() {
                task.abort();
                let _ = task.await;
            }
            match start_metrics(&self.loaded, &self.counters, &self.outbox).await {
                Ok(task) => self.metrics = task,
                // The rest is applied; say what is missing.
                Err(e) => tracing::error!("metrics endpoint not serving after the reload: {e}"),
            }
            if old_loaded.config.metrics != self.loaded.config.metrics {
                changed.push("metrics".into());
            }
        }
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// Stop the sources, deliver everything in flight, stop.
    async fn stop(self) -> Arc<Counters> {
        for task in [self.sim, self.ble].into_iter().flatten() {
            task.abort();
            // One that ended was awaited already; a JoinHandle is awaited once.
            if !task.is_finished() {
                let _ = task.await;
            }
        }
        // Closing the frame channel ends the router, which closes the
        // pipelines' channels, which drop the sink senders: everything in
        // flight is delivered.
        drop(self.frames);
        drop(self.tables);
        let _ = self.router.await;
        for (_, slot) in self.pipelines {
            let _ = slot.task.await;
        }
        self.uplink.sink.finish().await;
        self.alarm.finish().await;
        self.actuator.finish().await;
        // Everything accepted is in the outbox now; send what the broker
        // takes within the drain time, the rest waits there for the next start.
        if let Some((stop, task)) = self.uplink.publisher {
            stop.notify_one();
            let _ = task.await;
        }
        self.status_task.abort();
        if let Some(metrics) = self.metrics {
            metrics.abort();
        }
        let status =
            self.status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).gather(&self.counters, false);
        status.write(&self.loaded.state_dir());
        let summary: Vec<String> = self.counters.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let peak_rss = crate::telemetry::peak_rss_kib().map_or_else(|| "unknown".into(), |k| k.to_string());
        tracing::info!("stopped: {} peak_rss_kib={peak_rss}", summary.join(" "));
        self.counters
    }
}

/// Settings a running gateway cannot change: refused with the key to
/// change back, or to restart for.
fn needs_restart(now: &Config, new: &Config) -> Result<(), String> {
    let fixed = [
        ("gateway.id", now.gateway.id != new.gateway.id),
        ("gateway.state-dir", now.gateway.state_dir != new.gateway.state_dir),
        ("gateway.cache-dir", now.gateway.cache_dir != new.gateway.cache_dir),
        // The gateway's clock is made from these.
        ("sim.speed", now.sim.speed != new.sim.speed),
        ("sim.start", now.sim.start != new.sim.start),
        ("sim.duration-s", now.sim.duration_s != new.sim.duration_s),
    ];
    match fixed.iter().find(|(_, differs)| *differs) {
        Some((key, _)) => Err(format!("`{key}` changed: that takes effect on a restart, not a reload")),
        None => Ok(()),
    }
}

/// What the simulator source is started from.
fn sim_identity(config: &Config) -> (Vec<&crate::config::SensorConfig>, u64) {
    (config.sensors.iter().filter(|s| s.source == SourceKind::Sim).collect(), config.sim.seed)
}

/// What the BLE source is started from: which addresses to listen to and
/// how, not what the readings mean (keys and profiles live in the router).
fn ble_identity(config: &Config) -> (Vec<(&str, &str, SensorFormat)>, &crate::config::BleConfig) {
    let sensors = config
        .sensors
        .iter()
        .filter(|s| s.source == SourceKind::Ble)
        .map(|s| (s.name.as_str(), s.address.get_ref().as_str(), s.format))
        .collect();
    (sensors, &config.ble)
}

fn file_names(loaded: &Loaded) -> Vec<String> {
    loaded.files.iter().map(|f| f.display().to_string()).collect()
}

/// The simulated sensors of `loaded`, with their signing keys.
fn sim_sensors(loaded: &Loaded, state: &StateStore) -> Result<Vec<SimSensor>, BuildError> {
    let mut simulated = Vec::new();
    for s in loaded.config.sensors.iter().filter(|s| s.source == SourceKind::Sim) {
        let Some(sim) = &s.sim else { continue };
        let signing = match (&sim.key, s.format) {
            (Some(path), SensorFormat::SignedGatt) => Some(SimSigning {
                key: keys::signing_key(&loaded.resolve(path), true, Missing::Generate)?,
                kid: s.kid().to_string(),
                state: state.clone(),
            }),
            _ => None,
        };
        simulated.push(SimSensor {
            name: s.name.clone(),
            address: crate::config::parse_mac(s.address.get_ref()).expect("validated by the config loader"),
            model: sim.model,
            interval_ms: (sim.interval_s * 1000.0).max(1.0) as u64,
            signing,
        });
    }
    Ok(simulated)
}

fn ble_sensors(loaded: &Loaded) -> Vec<BleSensor> {
    loaded
        .config
        .sensors
        .iter()
        .filter(|s| s.source == SourceKind::Ble)
        .map(|s| BleSensor {
            name: s.name.clone(),
            address: crate::config::parse_mac(s.address.get_ref()).expect("validated by the config loader"),
            format: s.format,
        })
        .collect()
}

/// Where the router sends each profile's messages.
type Routes = HashMap<String, mpsc::Sender<Queued>>;
/// Each new pipeline's runtime, and the sender that starts it.
type Starts = Vec<(String, oneshot::Sender<ProfileRuntime>, ProfileRuntime)>;

/// One task per profile, each waiting for its runtime on the returned
/// sender before it handles a message.
fn spawn_pipelines(
    message_path: &MessagePath,
    profiles: BTreeMap<String, ProfileRuntime>,
    sinks: &SinkSet,
    counters: &Arc<Counters>,
) -> (Routes, BTreeMap<String, PipelineSlot>, Starts) {
    let (mut routes, mut slots, mut starts) = (HashMap::new(), BTreeMap::new(), Vec::new());
    for (name, runtime) in profiles {
        let (tx, rx) = mpsc::channel(PIPELINE_QUEUE);
        let (start, started) = oneshot::channel();
        let task = message_path.spawn(run_pipeline(started, rx, sinks.clone(), counters.clone()));
        routes.insert(name.clone(), tx);
        slots.insert(name.clone(), PipelineSlot { identity: runtime.identity.clone(), task });
        starts.push((name, start, runtime));
    }
    (routes, slots, starts)
}

/// The uplink sink `loaded` describes; for MQTT also its publisher, not yet
/// started. The outbox is opened on first use and then kept.
fn uplink_parts(
    loaded: &Loaded,
    outbox: &mut Option<Arc<Outbox>>,
    counters: &Arc<Counters>,
) -> Result<(Box<dyn sink::Sink>, Option<mqtt::Publisher>), BuildError> {
    let config = &loaded.config;
    let SinkConfig::Mqtt(mqtt) = &config.uplink else {
        if let Some(depth) = outbox.as_ref().and_then(|o| o.depth().ok()).filter(|d| d.messages > 0) {
            tracing::warn!(waiting = depth.messages, "the uplink is not MQTT: messages wait in the outbox");
        }
        return Ok((sink::from_config(&config.uplink, loaded, "uplink")?, None));
    };
    let outbox = match outbox {
        Some(outbox) => outbox.clone(),
        None => {
            let opened =
                Arc::new(Outbox::open(&loaded.state_dir(), config.outbox.max_bytes, config.outbox.overflow)?);
            if let Ok(depth) = opened.depth()
                && depth.messages > 0
            {
                tracing::info!(waiting = depth.messages, bytes = depth.bytes, "resuming the outbox");
            }
            outbox.insert(opened).clone()
        }
    };
    let (wake, stop) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let publisher = mqtt::Publisher {
        outbox: outbox.clone(),
        config: mqtt.resolved(|p| loaded.resolve(p)),
        client_id: mqtt.client_id.clone().unwrap_or_else(|| config.gateway.id.clone()),
        status_topic: config.outbox.status_topic.replace("{gateway}", &config.gateway.id),
        wake: wake.clone(),
        stop,
        drain: std::time::Duration::from_secs_f64(config.outbox.drain_timeout_s.max(0.0)),
        counters: counters.clone(),
    };
    Ok((Box::new(mqtt::UplinkSink::new(outbox, wake, counters.clone())), Some(publisher)))
}

fn spawn_publisher(publisher: mqtt::Publisher) -> (Arc<Notify>, JoinHandle<()>) {
    (publisher.stop.clone(), tokio::spawn(mqtt::publish_outbox(publisher)))
}

/// The Prometheus endpoint, when configured.
async fn start_metrics(
    loaded: &Loaded,
    counters: &Arc<Counters>,
    outbox: &Option<Arc<Outbox>>,
) -> Result<Option<JoinHandle<()>>, BuildError> {
    let Some(addr) = loaded.config.metrics.listen else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BuildError::Io { what: format!("metrics endpoint {addr}"), source })?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(Some(tokio::spawn(crate::metrics::serve(listener, counters.clone(), outbox.clone()))))
}

/// Keep `STATE/status.json` current for `edgeward status`.
async fn write_status(state_dir: PathBuf, inputs: Arc<Mutex<StatusInputs>>, counters: Arc<Counters>) {
    loop {
        let status = inputs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).gather(&counters, true);
        block_in_place(|| status.write(&state_dir));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The runtime the message path runs on (sources, router, pipelines), apart
/// from the one running sinks' publishers, status, metrics, signals and
/// reloads. The router's and pipelines' work between two waits is
/// synchronous (signature checks, SQLite, module calls up to their deadline)
/// and runs in place: a busy or stuck pipeline holds only this runtime's
/// workers. On the main runtime with `block_in_place`, every batch was a
/// thread hand-off; here a frame goes from source to router to pipeline as
/// task wake-ups, usually on one worker. Measured with the real daemon at
/// 1 000 readings/s on one core: alarm latency p99 1.7-1.9 ms before,
/// 1.0-1.15 ms after. The systemd watchdog's keep-alives depend on this
/// runtime running tasks too.
struct MessagePath {
    runtime: Option<tokio::runtime::Runtime>,
    watched: Option<crate::systemd::Watched>,
}

impl MessagePath {
    fn start() -> Result<Self, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("edgeward-msg")
            .enable_all()
            .build()
            .map_err(|source| BuildError::Io {
                what: "starting the message path's runtime".into(),
                source,
            })?;
        let watched = crate::systemd::watch_runtime(runtime.handle().clone());
        Ok(MessagePath { runtime: Some(runtime), watched: Some(watched) })
    }

    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> JoinHandle<T> {
        self.runtime.as_ref().expect("a runtime until dropped").spawn(task)
    }
}

impl Drop for MessagePath {
    /// Dropping a runtime blocks, which async code may not do; its tasks have
    /// ended by now (or are abandoned with a gateway that failed to start).
    fn drop(&mut self) {
        // Unwatched first: a runtime shut down runs no task.
        self.watched.take();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Admit frames (see [`admit`]) and hand each message to its sensor's
/// profile. A new route table (after a reload) takes effect between two
/// batches of frames.
async fn route(
    mut frames: mpsc::Receiver<Frame>,
    mut table: RouteTable,
    mut tables: mpsc::Receiver<RouteTable>,
    state: StateStore,
    gateway: String,
    counters: Arc<Counters>,
) {
    let admission = Admission::new(state, &gateway, counters);
    let mut batch = Vec::with_capacity(admit::ADMIT_BATCH);
    loop {
        tokio::select! {
            biased;
            Some(next) = tables.recv() => {
                table = next;
                continue;
            }
            // Whatever has queued, up to a batch; waits only when nothing has.
            received = frames.recv_many(&mut batch, admit::ADMIT_BATCH) => if received == 0 {
                break;
            },
        }
        let admitted = admission.admit(&batch, &table.sensors);
        batch.clear();
        for Admitted { sensor, id, entered, message } in admitted {
            let queued = Queued { id, entered, message };
            if table.routes[&sensor.profile].send(queued).await.is_err() {
                tracing::error!(profile = %sensor.profile, "pipeline stopped; message lost");
            }
        }
    }
}

/// A message waiting for its profile's pipeline.
struct Queued {
    id: String,
    entered: std::time::Instant,
    message: Message,
}

/// One profile's loop: messages through the pipeline, ticks on the
/// gateway's clock, results to the sinks.
/// It starts once it is given its runtime, and gives it back when its
/// queue has closed and emptied.
async fn run_pipeline(
    start: oneshot::Receiver<ProfileRuntime>,
    mut messages: mpsc::Receiver<Queued>,
    sinks: SinkSet,
    counters: Arc<Counters>,
) -> Option<ProfileRuntime> {
    let mut runtime = start.await.ok()?;
    let profile = runtime.pipeline.profile().to_string();
    let tick_ms = runtime.tick_interval.as_millis().max(1) as u64;
    let mut next_tick = runtime.clock.now_ms() + tick_ms;
    let mut batch = Vec::with_capacity(PIPELINE_BATCH);
    loop {
        let wait = runtime.clock.real_wait_until(next_tick);
        tokio::select! {
            // What has queued, up to a batch: one hand-off to a blocking
            // thread for all of it under load, none of a wait when light.
            received = messages.recv_many(&mut batch, PIPELINE_BATCH) => if received == 0 {
                break;
            },
            _ = sleep_for(wait) => {}
        }
        if batch.is_empty() && runtime.clock.now_ms() < next_tick {
            continue;
        }
        // Module calls are synchronous and bounded by their deadline; they
        // run in place (see `MessagePath`).
        let outputs = {
            let mut outputs = Vec::new();
            for Queued { id, entered, message } in batch.drain(..) {
                Counters::add(&counters.messages, 1);
                let sensor = message.reading.sensor.clone();
                let at_ms = message.reading.received_ms;
                runtime.clock.advance_to(at_ms);
                let processed = runtime.pipeline.process(message);
                Counters::add(&counters.module_faults, processed.faults.len() as u64);
                outputs.push(Output::Effects { at_ms, entered: Some(entered), effects: processed.effects });
                match processed.fate {
                    Fate::Forwarded(message) => {
                        Counters::add(&counters.forwarded, 1);
                        let topic = runtime.topics.get(&sensor).cloned().unwrap_or_default();
                        let profile = profile.clone();
                        let record = Record::Uplink { id, topic, profile, entered: Some(entered), message };
                        outputs.push(Output::Uplink(Box::new(record)));
                    }
                    Fate::Dropped { module, reason } => {
                        Counters::add(&counters.dropped, 1);
                        tracing::debug!(msg_id = %id, %sensor, %module, %reason, "dropped");
                    }
                }
                tick_if_due(&mut runtime, &mut next_tick, tick_ms, &mut outputs, &counters);
            }
            tick_if_due(&mut runtime, &mut next_tick, tick_ms, &mut outputs, &counters);
            outputs
        };
        for output in outputs {
            match output {
                Output::Effects { at_ms, entered, effects } => {
                    deliver_effects(&sinks, &profile, at_ms, entered, effects, &counters).await
                }
                Output::Uplink(record) => {
                    let _ = sinks.uplink.send(*record).await;
                }
            }
        }
    }
    Some(runtime)
}

/// How many queued messages a pipeline takes at once.
const PIPELINE_BATCH: usize = 32;

/// What a pipeline's batch produced, in order.
enum Output {
    Effects { at_ms: u64, entered: Option<std::time::Instant>, effects: Effects },
    Uplink(Box<Record>),
}

/// Run the modules' `tick` when the profile's clock has reached `next_tick`.
fn tick_if_due(
    runtime: &mut ProfileRuntime,
    next_tick: &mut u64,
    tick_ms: u64,
    outputs: &mut Vec<Output>,
    counters: &Counters,
) {
    let now = runtime.clock.now_ms();
    if now >= *next_tick {
        let (effects, faults) = runtime.pipeline.tick(now);
        Counters::add(&counters.module_faults, faults.len() as u64);
        outputs.push(Output::Effects { at_ms: now, entered: None, effects });
        *next_tick = now + tick_ms;
    }
}

async fn sleep_for(wait: Option<std::time::Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep_until(Instant::now() + wait).await,
        // A manual clock moves only with messages: ticks follow them.
        None => std::future::pending().await,
    }
}

/// Send a message's (or a tick's) alarms and commands to their sinks;
/// `entered` is when the message's frame entered the gateway.
async fn deliver_effects(
    sinks: &SinkSet,
    profile: &str,
    at_ms: u64,
    entered: Option<std::time::Instant>,
    effects: Effects,
    counters: &Counters,
) {
    Counters::add(&counters.alarms, effects.alarms.len() as u64);
    Counters::add(&counters.commands, effects.commands.len() as u64);
    for alarm in effects.alarms {
        let _ = sinks.alarm.send(Record::Alarm { profile: profile.to_string(), at_ms, entered, alarm }).await;
    }
    for command in effects.commands {
        let _ = sinks.actuator.send(Record::Command { profile: profile.to_string(), at_ms, command }).await;
    }
}
