//! The running gateway: sources → router (decode) → one task per profile's
//! pipeline → sinks, built from a configuration and run until the sources
//! end or shutdown is requested.

mod build;

pub use build::{BuildError, Built, ModuleSummary, ProfileRuntime, SensorEntry, build};

use crate::clock::{Clock, wall_ms};
use crate::config::SinkConfig;
use crate::config::{Loaded, SensorFormat, SourceKind};
use crate::decode::{Frame, SensorRef, decode_frame};
use crate::pipeline::bindings::Authenticity;
use crate::pipeline::{Effects, Engine, Fate, Message};
use crate::sink::outbox::Outbox;
use crate::sink::{self, Record, SinkSet, mqtt};
use crate::source::ble::{self, BleSensor};
use crate::source::sim::{self, SimSensor, SimSigning};
use crate::state::StateStore;
use crate::telemetry::Counters;
use crate::trust::keys::{self, Missing};
use crate::trust::replay::CounterWidth;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;
use tokio::sync::mpsc;
use tokio::task::{JoinSet, block_in_place};
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
/// simulation) or `shutdown` completes. Returns the final counters.
pub async fn run(loaded: Loaded, shutdown: impl Future<Output = ()>) -> Result<Arc<Counters>, BuildError> {
    let config = &loaded.config;
    let clock = clock_for(&loaded);
    let state_dir = loaded.state_dir();
    let state = StateStore::open(&state_dir)?;
    let engine = Engine::new(Some(loaded.cache_dir()))?;
    let built = block_in_place(|| build(&loaded, &engine, &state, &clock, Missing::Generate))?;
    let counters = Arc::new(Counters::default());

    let (uplink, publisher) = uplink_sink(&loaded, &state_dir, counters.clone())?;
    let outbox = publisher.as_ref().map(|(_, _, outbox)| outbox.clone());
    let metrics = match config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
                BuildError::Sink(crate::sink::SinkError::Io {
                    sink: format!("metrics endpoint {addr}"),
                    source,
                })
            })?;
            tracing::info!(%addr, "serving Prometheus metrics at /metrics");
            Some(tokio::spawn(crate::metrics::serve(listener, counters.clone(), outbox.clone())))
        }
        None => None,
    };
    let status = tokio::spawn(write_status(
        state_dir.clone(),
        loaded.path.clone(),
        config.gateway.id.clone(),
        counters.clone(),
        outbox.clone(),
    ));
    let (sinks, sink_tasks) = SinkSet::start(
        uplink,
        sink::from_config(&config.alarm, &loaded, "alarm")?,
        sink::from_config(&config.actuator, &loaded, "actuator")?,
    );

    // One task per profile, fed by the router.
    let mut pipelines = JoinSet::new();
    let mut routes = HashMap::new();
    for (profile, runtime) in built.profiles {
        let (tx, rx) = mpsc::channel(PIPELINE_QUEUE);
        routes.insert(profile, tx);
        counters.register_modules(&runtime.pipeline);
        pipelines.spawn(run_pipeline(runtime, rx, sinks.clone(), counters.clone()));
    }
    drop(sinks);

    // Sources.
    let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
    let mut sources = JoinSet::new();
    let mut simulated = Vec::new();
    for s in config.sensors.iter().filter(|s| s.source == SourceKind::Sim) {
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
    if !simulated.is_empty() {
        clock.restart();
        let start = clock.now_ms();
        let end = config.sim.duration_s.map(|d| start + (d * 1000.0) as u64);
        sources.spawn(sim::run(simulated, config.sim.seed, clock.clone(), start, end, frames_tx.clone()));
    }
    let radio: Vec<BleSensor> = config
        .sensors
        .iter()
        .filter(|s| s.source == SourceKind::Ble)
        .map(|s| BleSensor {
            name: s.name.clone(),
            address: crate::config::parse_mac(s.address.get_ref()).expect("validated by the config loader"),
            format: s.format,
        })
        .collect();
    if !radio.is_empty() {
        sources.spawn(ble::run(config.ble.clone(), radio, clock.clone(), frames_tx.clone()));
    }
    drop(frames_tx);

    tracing::info!(
        gateway = %config.gateway.id,
        config = %loaded.path.display(),
        sensors = built.sensors.len(),
        profiles = routes.len(),
        "started"
    );
    let router = tokio::spawn(route(
        frames_rx,
        built.sensors,
        routes,
        state.clone(),
        config.gateway.id.clone(),
        counters.clone(),
    ));

    let sources_done = async { while sources.join_next().await.is_some() {} };
    tokio::select! {
        _ = sources_done => tracing::info!("all sources finished; draining"),
        _ = shutdown => {
            tracing::info!("shutting down; draining");
            sources.abort_all();
        }
    }
    // Closing the frame channel ends the router, which closes the pipelines'
    // channels, which drop the sink senders: everything in flight is delivered.
    let _ = router.await;
    while pipelines.join_next().await.is_some() {}
    for task in sink_tasks {
        let _ = task.await;
    }
    // Everything accepted is in the outbox now; send what the broker takes
    // within the drain time, the rest waits there for the next start.
    if let Some((stop, task, _)) = publisher {
        stop.notify_one();
        let _ = task.await;
    }
    status.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    crate::telemetry::Status::gather(&config.gateway.id, &loaded.path, &counters, outbox.as_deref(), false)
        .write(&state_dir);
    let summary: Vec<String> = counters.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let peak_rss = crate::telemetry::peak_rss_kib().map_or_else(|| "unknown".into(), |k| k.to_string());
    tracing::info!("stopped: {} peak_rss_kib={peak_rss}", summary.join(" "));
    Ok(counters)
}

/// The uplink sink; for MQTT also the outbox publisher and the signal that
/// stops it.
#[allow(clippy::type_complexity)]
fn uplink_sink(
    loaded: &Loaded,
    state_dir: &std::path::Path,
    counters: Arc<Counters>,
) -> Result<(Box<dyn sink::Sink>, Option<(Arc<Notify>, tokio::task::JoinHandle<()>, Arc<Outbox>)>), BuildError>
{
    let config = &loaded.config;
    let SinkConfig::Mqtt(mqtt) = &config.uplink else {
        return Ok((sink::from_config(&config.uplink, loaded, "uplink")?, None));
    };
    let outbox = Arc::new(Outbox::open(state_dir, config.outbox.max_bytes, config.outbox.overflow)?);
    if let Ok(depth) = outbox.depth()
        && depth.messages > 0
    {
        tracing::info!(waiting = depth.messages, bytes = depth.bytes, "resuming the outbox");
    }
    let (wake, stop) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let client_id = mqtt.client_id.clone().unwrap_or_else(|| config.gateway.id.clone());
    let status_topic = config.outbox.status_topic.replace("{gateway}", &config.gateway.id);
    let drain = std::time::Duration::from_secs_f64(config.outbox.drain_timeout_s.max(0.0));
    let task = tokio::spawn(mqtt::publish_outbox(mqtt::Publisher {
        outbox: outbox.clone(),
        config: mqtt.resolved(|p| loaded.resolve(p)),
        client_id,
        status_topic,
        wake: wake.clone(),
        stop: stop.clone(),
        drain,
        counters: counters.clone(),
    }));
    Ok((Box::new(mqtt::UplinkSink::new(outbox.clone(), wake, counters)), Some((stop, task, outbox))))
}

/// Keep `STATE/status.json` current for `edgeward status`.
async fn write_status(
    state_dir: std::path::PathBuf,
    config: std::path::PathBuf,
    gateway: String,
    counters: Arc<Counters>,
    outbox: Option<Arc<Outbox>>,
) {
    loop {
        let status = crate::telemetry::Status::gather(&gateway, &config, &counters, outbox.as_deref(), true);
        block_in_place(|| status.write(&state_dir));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Decode frames and hand each message to its sensor's profile.
async fn route(
    mut frames: mpsc::Receiver<Frame>,
    sensors: HashMap<[u8; 6], SensorEntry>,
    routes: HashMap<String, mpsc::Sender<(String, Message)>>,
    state: StateStore,
    gateway: String,
    counters: Arc<Counters>,
) {
    let ids = MessageIds::new(&gateway);
    while let Some(frame) = frames.recv().await {
        Counters::add(&counters.frames, 1);
        let Some(sensor) = sensors.get(&frame.address) else {
            Counters::add(&counters.unknown_sender, 1);
            continue;
        };
        let sensor_ref = SensorRef {
            name: &sensor.name,
            address: &sensor.address,
            format: sensor.format,
            kid: &sensor.kid,
            key: sensor.key.as_ref(),
            bindkey: sensor.bindkey.as_ref(),
        };
        let message = match decode_frame(&frame, &sensor_ref) {
            Ok(message) => message,
            Err(e) => {
                Counters::add(&counters.decode_errors, 1);
                tracing::warn!(sensor = %sensor.name, reason = e.kind(), "frame rejected: {e}");
                continue;
            }
        };
        let counter = match (message.reading.authenticity, message.reading.seq) {
            (Authenticity::SensorSigned, Some(seq)) => Some((seq, CounterWidth::Bits64)),
            (Authenticity::MicVerified, Some(seq)) => Some((seq, CounterWidth::Bits32)),
            _ => None,
        };
        if let Some((seq, width)) = counter {
            match block_in_place(|| state.replay_accept(&sensor.name, seq, width)) {
                Ok(Ok(())) => {}
                Ok(Err(replay)) => {
                    Counters::add(&counters.replays, 1);
                    tracing::warn!(sensor = %sensor.name, reason = "replay", "frame rejected: {replay}");
                    continue;
                }
                Err(e) => {
                    tracing::error!(sensor = %sensor.name, "replay guard unavailable, frame rejected: {e}");
                    continue;
                }
            }
        }
        let route = &routes[&sensor.profile];
        if route.send((ids.next(), message)).await.is_err() {
            tracing::error!(profile = %sensor.profile, "pipeline stopped; message lost");
        }
    }
}

/// Unique message ids, `GATEWAY-BOOT-N`, so consumers can deduplicate.
struct MessageIds {
    prefix: String,
    next: AtomicU64,
}

impl MessageIds {
    fn new(gateway: &str) -> Self {
        // Distinguishes restarts without persisting a counter.
        let boot = (wall_ms() ^ (u64::from(std::process::id()) << 40)) & 0xffff_ffff_ffff;
        MessageIds { prefix: format!("{gateway}-{boot:012x}"), next: AtomicU64::new(1) }
    }

    fn next(&self) -> String {
        // Fixed width: the id travels in sealed envelopes, whose sizes must not vary.
        format!("{}-{:010}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// One profile's loop: messages through the pipeline, ticks on the
/// gateway's clock, results to the sinks.
async fn run_pipeline(
    mut runtime: ProfileRuntime,
    mut messages: mpsc::Receiver<(String, Message)>,
    sinks: SinkSet,
    counters: Arc<Counters>,
) {
    let clock = runtime.clock.clone();
    let profile = runtime.pipeline.profile().to_string();
    let tick_ms = runtime.tick_interval.as_millis().max(1) as u64;
    let mut next_tick = clock.now_ms() + tick_ms;
    loop {
        let wait = clock.real_wait_until(next_tick);
        tokio::select! {
            received = messages.recv() => {
                let Some((id, message)) = received else { break };
                Counters::add(&counters.messages, 1);
                let sensor = message.reading.sensor.clone();
                let at_ms = message.reading.received_ms;
                clock.advance_to(at_ms);
                // Module calls are synchronous and bounded by their deadline.
                let processed = block_in_place(|| runtime.pipeline.process(message));
                Counters::add(&counters.module_faults, processed.faults.len() as u64);
                deliver_effects(&sinks, &profile, at_ms, processed.effects, &counters).await;
                match processed.fate {
                    Fate::Forwarded(message) => {
                        Counters::add(&counters.forwarded, 1);
                        let topic = runtime.topics.get(&sensor).cloned().unwrap_or_default();
                        let _ = sinks.uplink.send(Record::Uplink { id, topic, profile: profile.clone(), message }).await;
                    }
                    Fate::Dropped { module, reason } => {
                        Counters::add(&counters.dropped, 1);
                        tracing::debug!(msg_id = %id, %sensor, %module, %reason, "dropped");
                    }
                }
            }
            _ = sleep_for(wait) => {}
        }
        let now = clock.now_ms();
        if now >= next_tick {
            let (effects, faults) = block_in_place(|| runtime.pipeline.tick(now));
            Counters::add(&counters.module_faults, faults.len() as u64);
            deliver_effects(&sinks, &profile, now, effects, &counters).await;
            next_tick = now + tick_ms;
        }
    }
}

async fn sleep_for(wait: Option<std::time::Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep_until(Instant::now() + wait).await,
        // A manual clock moves only with messages: ticks follow them.
        None => std::future::pending().await,
    }
}

async fn deliver_effects(sinks: &SinkSet, profile: &str, at_ms: u64, effects: Effects, counters: &Counters) {
    Counters::add(&counters.alarms, effects.alarms.len() as u64);
    Counters::add(&counters.commands, effects.commands.len() as u64);
    for alarm in effects.alarms {
        let _ = sinks.alarm.send(Record::Alarm { profile: profile.to_string(), at_ms, alarm }).await;
    }
    for command in effects.commands {
        let _ = sinks.actuator.send(Record::Command { profile: profile.to_string(), at_ms, command }).await;
    }
}
