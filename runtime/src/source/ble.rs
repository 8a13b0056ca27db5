//! The Bluetooth LE source: real sensors through BlueZ (bluetoothd) on the
//! system D-Bus, with [`bluer`].
//!
//! Sensors are matched by the address in the configuration; anything else
//! BlueZ reports is ignored after one map lookup. Two kinds:
//!
//! - **BTHome** (`format = "bthome"`): BlueZ reports every advertisement and
//!   not only changed ones (a monitor, or discovery with duplicate data; see
//!   below); the service data for 0xFCD2 of each becomes a
//!   [`Payload::ServiceData`] frame.
//! - **Signed GATT** (`format = "signed-gatt"`): the source connects to the
//!   sensor, subscribes to the reading characteristic of the edgeward sensor
//!   service ([`SENSOR_SERVICE_UUID`], [`READING_CHARACTERISTIC_UUID`]) and
//!   forwards each notification as a [`Payload::Notification`] frame. Failed
//!   and lost connections are retried with exponential backoff and jitter; at
//!   most `[ble] max-connections` are held at once.
//!
//! Frames carry the address bytes in written order, the RSSI when BlueZ knows
//! it, and the gateway clock's time. Decoding and verifying is the router's,
//! so a malformed advertisement becomes a frame the decoder rejects and counts.
//!
//! Hearing advertisements (`[ble] scan`): *passive* where BlueZ offers an
//! advertisement monitor (`org.bluez.AdvertisementMonitorManager1` with
//! `or_patterns`): the source registers one matching BTHome service data and
//! BlueZ reports matching devices without a discovery, so the adapter sends
//! no scan requests (which cost the sensors' batteries and airtime). BlueZ
//! connects only to devices it has found, and a signed sensor need not
//! advertise anything a pattern could match, so discovery still runs, in
//! passive mode, while a signed sensor is not connected. Elsewhere the
//! source runs *active* LE discovery with duplicate data.
//! Readings come from the devices' ServiceData property changes either way.
//!
//! Counters (advertisements, connections, notifications, adapter losses,
//! watchdog restarts, which scanning runs) go to the gateway's [`Counters`].
//!
//! Resilience: all BlueZ handles hang off one session and one adapter. When
//! the adapter is removed or powered off, or BlueZ goes away (its D-Bus name
//! vanishes, as in a restart), the source drops them, waits for the adapter
//! to be back and starts over, without a gateway restart. A watchdog restarts
//! discovery (and the monitor) when no advertisement at all arrived for `[ble] watchdog-s`
//! while sensors wait on advertisements: a stalled controller goes quiet
//! without reporting any error.

use crate::clock::Clock;
use crate::config::{BleConfig, ScanMode, SensorFormat, format_mac};
use crate::decode::{Frame, Payload, bthome};
use crate::telemetry::Counters;
use bluer::gatt::remote::Characteristic;
use bluer::monitor::{Monitor, MonitorEvent, MonitorHandle, MonitorManager, Pattern, RssiSamplingPeriod};
use bluer::{
    Adapter, AdapterEvent, Address, Device, DeviceEvent, DeviceProperty, DiscoveryFilter, DiscoveryTransport,
    ErrorKind, InternalErrorKind, Session, SessionEvent, Uuid,
};
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, sleep, timeout};

/// The edgeward sensor GATT service, which a signed sensor exposes while it
/// accepts connections. It holds one characteristic,
/// [`READING_CHARACTERISTIC_UUID`]. (Random v4 UUIDs, fixed for good: sensor
/// firmware carries them.)
pub const SENSOR_SERVICE_UUID: Uuid = Uuid::from_u128(0x163f8321_5b4c_4d7a_af76_9a284a3e0ea4);

/// The reading characteristic of the edgeward sensor service: notify (and
/// read); each notification carries exactly one reading, a COSE_Sign1 over
/// SenML-CBOR signed with the sensor's production key (see
/// [`crate::decode`]). A reading that does not fit one notification needs a
/// larger ATT MTU; it is never split.
pub const READING_CHARACTERISTIC_UUID: Uuid = Uuid::from_u128(0x3091d3be_0fb2_492a_838a_185d70526b81);

/// BTHome's 16-bit UUID 0xFCD2 in the Bluetooth base UUID, as BlueZ keys service data.
pub const BTHOME_UUID: Uuid = Uuid::from_u128(0x0000fcd2_0000_1000_8000_00805f9b34fb);

/// BlueZ's advertisement monitor interface on an adapter object.
const MONITOR_MANAGER: &str = "org.bluez.AdvertisementMonitorManager1";
/// AD type "Service Data - 16-bit UUID": the UUID little-endian, then the data.
const AD_SERVICE_DATA_16: u8 = 0x16;

/// What goes wrong in the BLE source. Nothing here ends it: the source logs
/// the error with its causes ([`chain`]), counts it, and starts the session
/// or the connection over.
#[derive(Debug, thiserror::Error)]
pub enum BleError {
    /// A BlueZ call failed.
    #[error("{doing}")]
    Bluez {
        doing: String,
        #[source]
        source: bluer::Error,
    },
    /// BlueZ (or a device through it) did not answer in time.
    #[error("{what} within {} s", .limit.as_secs())]
    Timeout { what: &'static str, limit: Duration },
    /// The adapter, or BlueZ itself, is missing or went away: `why` says which.
    #[error("{why}")]
    Gone { why: String },
    /// A D-Bus call that bluer does not offer failed.
    #[error("{doing}: {message}")]
    DBus { doing: &'static str, message: String },
    /// `scan = "passive"`, and BlueZ offers no advertisement monitor on the adapter.
    #[error("passive scanning is not available on {adapter}")]
    PassiveUnavailable { adapter: String },
    /// A connected device lacks the edgeward sensor service or its characteristic.
    #[error("{why}")]
    NotASensor { why: String },
}

type Result<T, E = BleError> = std::result::Result<T, E>;

/// Names what a failed BlueZ call was doing.
trait Doing<T> {
    fn doing(self, doing: impl Into<String>) -> Result<T>;
}

impl<T> Doing<T> for bluer::Result<T> {
    fn doing(self, doing: impl Into<String>) -> Result<T> {
        self.map_err(|source| BleError::Bluez { doing: doing.into(), source })
    }
}

/// An error with its causes, `outer: inner: innermost`, as the log shows it.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn gone(why: impl Into<String>) -> BleError {
    BleError::Gone { why: why.into() }
}

/// A sensor the source listens to.
#[derive(Debug, Clone)]
pub struct BleSensor {
    pub name: String,
    /// Its address, bytes in written order (`AA:BB:…` is `[0xAA, 0xBB, …]`).
    pub address: [u8; 6],
    pub format: SensorFormat,
}

/// First and longest wait between attempts to reach BlueZ and the adapter.
const SESSION_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// First and longest wait between connection attempts to one signed sensor.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// A session or connection that lasted this long was healthy: the next
/// failure starts the backoff from the beginning again.
const STABLE: Duration = Duration::from_secs(30);
/// How often the adapter's health is checked (and, while it is missing, its return).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How often a missing adapter is looked for (BlueZ also announces it, which wakes the wait early).
const ADAPTER_POLL: Duration = Duration::from_secs(2);
/// Longest a single BlueZ property read may take before BlueZ counts as stuck
/// (bluer's own method timeout is two minutes).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection attempt, and then the GATT service discovery, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a signed sensor BlueZ does not know yet is looked up again
/// (discovery finding it wakes the wait early).
const UNSEEN_RECHECK: Duration = Duration::from_secs(10);
/// A discovery that ends sooner than this after it started is restarted after
/// a pause rather than at once, so a misbehaving BlueZ cannot spin the source.
const DISCOVERY_MIN_RUN: Duration = Duration::from_secs(5);

/// Run the BLE source for `sensors` until the frame receiver is gone (or the
/// task is aborted at shutdown). Never returns early on BlueZ errors: it
/// logs them and retries.
pub async fn run(
    config: BleConfig,
    sensors: Vec<BleSensor>,
    clock: Clock,
    frames: mpsc::Sender<Frame>,
    counters: Arc<Counters>,
) {
    let ctx = Arc::new(Ctx::new(config, sensors, clock, frames, counters));
    let adapter = ctx.config.adapter.as_ref().map_or("(default)", |a| a.get_ref().as_str());
    tracing::info!(
        adapter,
        advertising = ctx.advertising.len(),
        signed = ctx.signed.len(),
        max_connections = ctx.config.max_connections,
        scan = ?ctx.config.scan,
        "BLE source starting"
    );
    let mut backoff = Backoff::new(SESSION_BACKOFF);
    loop {
        let started = Instant::now();
        match run_session(&ctx).await {
            Ok(()) => {
                tracing::info!("BLE source stopped: nothing takes frames any more");
                return;
            }
            Err(e) => {
                if started.elapsed() >= STABLE {
                    backoff.reset();
                }
                let delay = backoff.next();
                let restarts = ctx.counters.ble_session_restarts.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(restarts, "BLE: {}; starting over in {:.1} s", chain(&e), delay.as_secs_f64());
                sleep(delay).await;
            }
        }
    }
}

/// What the source's tasks share.
struct Ctx {
    config: BleConfig,
    /// Every configured sensor by address: their advertisements are watched
    /// (a signed sensor advertising BTHome data is a downgrade the decoder reports).
    advertising: HashMap<Address, Arc<str>>,
    /// The signed sensors, which are connected to.
    signed: Vec<(Address, Arc<str>)>,
    /// Signed sensors connected and subscribed right now.
    connected: AtomicUsize,
    clock: Clock,
    frames: mpsc::Sender<Frame>,
    /// When the last advertisement arrived, for the watchdog.
    heard: Mutex<Instant>,
    /// The gateway's counters, shared with the metrics endpoint and status.json.
    counters: Arc<Counters>,
}

impl Ctx {
    fn new(
        config: BleConfig,
        sensors: Vec<BleSensor>,
        clock: Clock,
        frames: mpsc::Sender<Frame>,
        counters: Arc<Counters>,
    ) -> Self {
        let mut advertising = HashMap::new();
        let mut signed = Vec::new();
        for sensor in sensors {
            let address = Address::new(sensor.address);
            let name: Arc<str> = sensor.name.into();
            advertising.insert(address, name.clone());
            if sensor.format == SensorFormat::SignedGatt {
                signed.push((address, name));
            }
        }
        Ctx {
            config,
            advertising,
            signed,
            connected: AtomicUsize::new(0),
            clock,
            frames,
            heard: Mutex::new(Instant::now()),
            counters,
        }
    }

    fn heard_now(&self) {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn silent_for(&self) -> Duration {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    /// The watchdog period, while any sensor waits on advertisements: every
    /// BTHome sensor does; a signed one only while it is not connected (a
    /// connected peripheral usually stops advertising).
    fn watchdog(&self) -> Option<Duration> {
        let waiting = self.advertising.len() > self.signed.len()
            || self.connected.load(Ordering::Relaxed) < self.signed.len();
        (waiting && self.config.watchdog_s > 0.0).then(|| Duration::from_secs_f64(self.config.watchdog_s))
    }

    /// Whether a signed sensor is not connected: only a discovery makes
    /// BlueZ find a device whose advertisements no monitor pattern matches.
    fn needs_discovery(&self) -> bool {
        self.connected.load(Ordering::Relaxed) < self.signed.len()
    }

    /// Hand a frame to the router; false when the router is gone.
    async fn send(&self, address: Address, rssi: Option<i16>, payload: Payload) -> bool {
        let frame = Frame {
            address: address.0,
            rssi,
            received_ms: self.clock.now_ms(),
            entered: std::time::Instant::now(),
            payload,
        };
        self.frames.send(frame).await.is_ok()
    }
}

/// One BlueZ session: wait for the adapter, then run on it until it fails.
/// `Ok` only when the router is gone.
async fn run_session(ctx: &Arc<Ctx>) -> Result<()> {
    let session = Session::new().await.doing("cannot reach the system D-Bus")?;
    match wait_for_adapter(&session, ctx).await? {
        Some(adapter) => run_adapter(&session, &adapter, ctx).await,
        None => Ok(()),
    }
}

/// Why an adapter is not usable right now, when that is a state to wait out
/// (BlueZ not running, no such adapter, powered off) rather than an error
/// that calls for a new session.
fn absent(e: &bluer::Error, adapter: Option<&str>) -> Option<String> {
    let missing = || match adapter {
        Some(name) => format!("no Bluetooth adapter {name}"),
        None => "no Bluetooth adapter".to_string(),
    };
    match &e.kind {
        ErrorKind::NotFound | ErrorKind::DoesNotExist => Some(missing()),
        ErrorKind::Internal(InternalErrorKind::DBus(name)) => match name.as_str() {
            "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                Some("BlueZ (org.bluez) is not running".into())
            }
            // A removed object's path: libdbus answers UnknownObject or UnknownMethod.
            "org.freedesktop.DBus.Error.UnknownObject" | "org.freedesktop.DBus.Error.UnknownMethod" => {
                Some(missing())
            }
            _ => None,
        },
        _ => None,
    }
}

/// The adapter `name` (or the default one) and whether it is powered.
async fn find_adapter(session: &Session, name: Option<&str>) -> bluer::Result<(Adapter, bool)> {
    let adapter = match name {
        Some(name) => session.adapter(name)?,
        None => session.default_adapter().await?,
    };
    let powered = adapter.is_powered().await?;
    Ok((adapter, powered))
}

/// The configured (or default) adapter once it exists and is powered
/// (`None` if the router goes away meanwhile). Waiting is logged at WARN
/// when it starts (and when its reason changes); its end at INFO.
async fn wait_for_adapter(session: &Session, ctx: &Ctx) -> Result<Option<Adapter>> {
    let configured = ctx.config.adapter.as_ref().map(|a| a.get_ref().clone());
    // Adapter announcements end the wait early; polling covers BlueZ coming
    // back, whose start-up announcements may precede our subscription.
    let mut announcements = Some(Box::pin(session.events().await.doing("subscribing to BlueZ")?));
    let mut waiting_since: Option<(Instant, String)> = None;
    loop {
        let why = match timeout(CALL_TIMEOUT, find_adapter(session, configured.as_deref())).await {
            Err(_) => return Err(BleError::Timeout { what: "BlueZ did not answer", limit: CALL_TIMEOUT }),
            Ok(Ok((adapter, true))) => {
                if let Some((since, _)) = waiting_since {
                    Counters::add(&ctx.counters.ble_adapter_recovered, 1);
                    tracing::info!(
                        adapter = adapter.name(),
                        "Bluetooth adapter available again after {:.1} s",
                        since.elapsed().as_secs_f64()
                    );
                }
                return Ok(Some(adapter));
            }
            Ok(Ok((adapter, false))) => format!("Bluetooth adapter {} is powered off", adapter.name()),
            Ok(Err(e)) => match absent(&e, configured.as_deref()) {
                Some(why) => why,
                None => {
                    return Err(BleError::Bluez {
                        doing: "looking for the Bluetooth adapter".into(),
                        source: e,
                    });
                }
            },
        };
        if ctx.frames.is_closed() {
            return Ok(None);
        }
        match &waiting_since {
            Some((_, logged)) if *logged == why => {}
            _ => {
                if waiting_since.is_none() {
                    Counters::add(&ctx.counters.ble_adapter_lost, 1);
                }
                tracing::warn!("BLE: {why}; waiting for it");
                waiting_since = Some((waiting_since.map_or_else(Instant::now, |(t, _)| t), why));
            }
        }
        let announced = async {
            match announcements.as_mut() {
                Some(stream) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = announced => {
                if event.is_none() {
                    // The session lost its event stream; polling still works.
                    announcements = None;
                }
            }
            _ = sleep(ADAPTER_POLL) => {}
        }
    }
}

/// Why a listening run ended without an error.
enum ListenEnd {
    /// The watchdog saw silence.
    Watchdog,
    /// BlueZ ended the discovery while the adapter stayed powered.
    Stopped,
    /// BlueZ released the advertisement monitor.
    Released,
}

/// Set `adapter`'s discovery to LE with duplicate data, so every
/// advertisement arrives and not only the first of each device.
pub async fn hear_every_advertisement(adapter: &Adapter) -> Result<()> {
    adapter
        .set_discovery_filter(DiscoveryFilter {
            transport: DiscoveryTransport::Le,
            duplicate_data: true,
            ..Default::default()
        })
        .await
        .doing("setting the discovery filter")
}

/// The advertisement monitor pattern for BTHome: service data whose 16-bit
/// UUID is 0xFCD2 (`d2 fc` on air).
fn bthome_pattern() -> Pattern {
    Pattern::new(AD_SERVICE_DATA_16, 0, &bthome::SERVICE_UUID16.to_le_bytes())
}

/// Counts itself in a gauge for as long as it lives. Counted rather than
/// set, so a source being replaced (at a reload) and its successor overlap
/// without one zeroing the other's gauge.
struct Raised<'a>(&'a AtomicU64);

impl<'a> Raised<'a> {
    fn new(gauge: &'a AtomicU64) -> Self {
        Counters::add(gauge, 1);
        Raised(gauge)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running discovery (BlueZ stops it when this is dropped).
struct Discovery<'a> {
    events: Pin<Box<dyn Stream<Item = AdapterEvent> + Send>>,
    /// Devices BlueZ already knew, which it replays as discovery starts:
    /// not evidence that the radio hears anything.
    replayed: HashSet<Address>,
    _running: Raised<'a>,
}

impl<'a> Discovery<'a> {
    async fn start(adapter: &Adapter, counters: &'a Counters) -> Result<Discovery<'a>> {
        let replayed = adapter.device_addresses().await.doing("listing known devices")?.into_iter().collect();
        let events = adapter.discover_devices().await.doing("starting discovery")?;
        Ok(Discovery {
            events: Box::pin(events),
            replayed,
            _running: Raised::new(&counters.ble_active_discovery),
        })
    }
}

/// A registered advertisement monitor (unregistered when this is dropped).
struct Passive<'a> {
    events: MonitorHandle,
    _manager: MonitorManager,
    _running: Raised<'a>,
}

impl<'a> Passive<'a> {
    /// Register a monitor for BTHome service data on `adapter`: BlueZ then
    /// reports matching devices, and their advertisements, without a discovery.
    async fn start(adapter: &Adapter, counters: &'a Counters) -> Result<Passive<'a>> {
        let manager = timeout(CALL_TIMEOUT, adapter.monitor())
            .await
            .map_err(|_| BleError::Timeout {
                what: "BlueZ did not answer RegisterMonitor",
                limit: CALL_TIMEOUT,
            })?
            .doing("registering an advertisement monitor")?;
        let monitor = Monitor {
            patterns: Some(vec![bthome_pattern()]),
            // Every advertisement, not one per period: each BTHome one is a reading.
            rssi_sampling_period: Some(RssiSamplingPeriod::All),
            ..Default::default()
        };
        // bluer waits for BlueZ to activate the monitor, without a deadline of its own.
        let events = timeout(CALL_TIMEOUT, manager.register(monitor))
            .await
            .map_err(|_| BleError::Timeout {
                what: "BlueZ did not activate the advertisement monitor",
                limit: CALL_TIMEOUT,
            })?
            .doing("BlueZ refused the advertisement monitor")?;
        Ok(Passive { events, _manager: manager, _running: Raised::new(&counters.ble_passive_scan) })
    }
}

/// A second, blocking D-Bus connection for what bluer does not expose:
/// which advertisement monitors BlueZ offers, and who owns its bus name.
struct Probe(Arc<Mutex<dbus::blocking::Connection>>);

impl Probe {
    async fn open() -> Result<Probe> {
        let conn = tokio::task::spawn_blocking(dbus::blocking::Connection::new_system)
            .await
            .map_err(|e| BleError::DBus { doing: "opening a D-Bus connection", message: e.to_string() })?
            .map_err(|e| BleError::DBus { doing: "cannot reach the system D-Bus", message: e.to_string() })?;
        Ok(Probe(Arc::new(Mutex::new(conn))))
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dbus::blocking::Connection) -> Result<T, dbus::Error> + Send + 'static,
    ) -> Result<T, dbus::Error> {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .unwrap_or_else(|e| Err(dbus::Error::new_failed(&format!("D-Bus call task: {e}"))))
    }

    /// Whether BlueZ offers advertisement monitors with `or_patterns` on `adapter`.
    async fn offers_or_patterns(&self, adapter: &str) -> Result<bool> {
        use dbus::blocking::stdintf::org_freedesktop_dbus::Properties as _;
        let path = format!("/org/bluez/{adapter}");
        let types = self
            .call(move |conn| {
                conn.with_proxy("org.bluez", path, CALL_TIMEOUT)
                    .get::<Vec<String>>(MONITOR_MANAGER, "SupportedMonitorTypes")
            })
            .await;
        match types {
            Ok(types) => Ok(types.iter().any(|t| t == "or_patterns")),
            // No such interface (or property) on the adapter: a BlueZ without monitors.
            Err(e)
                if matches!(
                    e.name(),
                    Some(
                        "org.freedesktop.DBus.Error.InvalidArgs"
                            | "org.freedesktop.DBus.Error.UnknownInterface"
                            | "org.freedesktop.DBus.Error.UnknownProperty"
                    )
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(BleError::DBus {
                doing: "asking BlueZ about advertisement monitors",
                message: e.to_string(),
            }),
        }
    }

    /// The unique bus name owning `org.bluez`: a new one means BlueZ restarted.
    async fn bluez_owner(&self) -> Result<String> {
        self.call(|conn| {
            let (owner,): (String,) = conn
                .with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", CALL_TIMEOUT)
                .method_call("org.freedesktop.DBus", "GetNameOwner", ("org.bluez",))?;
            Ok(owner)
        })
        .await
        .map_err(|e| BleError::DBus { doing: "looking up who serves org.bluez", message: e.to_string() })
    }
}

/// Whether to listen passively on adapter `name`, by `[ble] scan` and what
/// BlueZ offers (logged either way). Refused when `scan = "passive"` and
/// BlueZ offers no monitor: the operator asked for no scan requests, so
/// the source does not send them behind their back; it retries instead
/// (BlueZ may be upgraded, or restarted with its experimental features).
async fn choose_passive(name: &str, ctx: &Ctx, probe: &Probe) -> Result<bool> {
    let offered = probe.offers_or_patterns(name).await?;
    match (ctx.config.scan, offered) {
        (_, true) => {
            tracing::info!(adapter = %name, "BLE: passive scanning: BlueZ offers advertisement monitors");
            Ok(true)
        }
        (ScanMode::Passive, false) => {
            tracing::error!(
                adapter = %name,
                "BLE: scan = \"passive\" but BlueZ offers no advertisement monitor (or_patterns) on {name}; \
                 not scanning (set scan = \"auto\" to fall back to active discovery)"
            );
            Err(BleError::PassiveUnavailable { adapter: name.to_string() })
        }
        (_, false) => {
            tracing::info!(
                adapter = %name,
                "BLE: active discovery with duplicate data: BlueZ offers no advertisement monitor (or_patterns)"
            );
            Ok(false)
        }
    }
}

/// What an adapter run keeps per device: the signed sensors' connection
/// tasks and the BTHome watchers. Every task ends with it: dropping the set
/// aborts them.
struct Devices<'a> {
    adapter: &'a Adapter,
    ctx: &'a Arc<Ctx>,
    tasks: JoinSet<()>,
    sightings: HashMap<Address, Arc<Notify>>,
    watchers: HashMap<Address, AbortHandle>,
}

impl Devices<'_> {
    /// BlueZ reports `found`; `fresh` unless it is a discovery's replay of
    /// a device it knew already.
    fn found(&mut self, found: Address, fresh: bool) -> Result<()> {
        if fresh {
            self.ctx.heard_now();
        }
        if let Some(seen) = self.sightings.get(&found) {
            seen.notify_one();
        }
        match self.ctx.advertising.get(&found) {
            Some(sensor) if self.watchers.get(&found).is_none_or(AbortHandle::is_finished) => {
                let device = self.adapter.device(found).doing("a device handle")?;
                let handle = self.tasks.spawn(watch_advertisements(device, sensor.clone(), self.ctx.clone()));
                self.watchers.insert(found, handle);
            }
            // Watched already.
            Some(_) => {}
            None if fresh => Counters::add(&self.ctx.counters.ble_devices_ignored, 1),
            None => {}
        }
        Ok(())
    }
}

/// Listen on `adapter` (passively or by discovery) for the configured
/// sensors' advertisements and keep the signed sensors connected, until the
/// adapter fails. `Ok` only when the router is gone.
async fn run_adapter(session: &Session, adapter: &Adapter, ctx: &Arc<Ctx>) -> Result<()> {
    let name = adapter.name().to_string();
    let address = adapter.address().await.map(|a| a.to_string()).unwrap_or_default();
    hear_every_advertisement(adapter).await?;
    let mut removals = Box::pin(session.events().await.doing("subscribing to BlueZ")?);
    let probe = match ctx.config.scan {
        ScanMode::Active => {
            tracing::info!(adapter = %name, "BLE: active discovery with duplicate data (scan = \"active\")");
            None
        }
        ScanMode::Auto | ScanMode::Passive => Some(Probe::open().await?),
    };
    let mut passive = match &probe {
        Some(probe) => choose_passive(&name, ctx, probe).await?,
        None => false,
    };
    // Without a discovery of ours, nothing else tells that BlueZ restarted
    // and forgot the monitor: its bus name changing hands does.
    let owner = match &probe {
        Some(probe) if passive => Some(probe.bluez_owner().await?),
        _ => None,
    };

    let mut devices =
        Devices { adapter, ctx, tasks: JoinSet::new(), sightings: HashMap::new(), watchers: HashMap::new() };
    let slots = Arc::new(Semaphore::new(ctx.config.max_connections));
    for (address, sensor) in &ctx.signed {
        let seen = Arc::new(Notify::new());
        devices.sightings.insert(*address, seen.clone());
        devices.tasks.spawn(keep_connected(
            adapter.clone(),
            *address,
            sensor.clone(),
            seen,
            slots.clone(),
            ctx.clone(),
        ));
    }
    tracing::info!(adapter = %name, %address, "BLE: using adapter");

    let mut pause = Backoff::new((Duration::from_secs(1), DISCOVERY_MIN_RUN));
    loop {
        let mut monitor = None;
        if passive {
            match Passive::start(adapter, &ctx.counters).await {
                Ok(started) => monitor = Some(started),
                Err(e) if ctx.config.scan == ScanMode::Auto => {
                    tracing::warn!(adapter = %name, "BLE: {}; falling back to active discovery", chain(&e));
                    passive = false;
                }
                Err(e) => {
                    tracing::error!(adapter = %name, "BLE: passive scanning failed: {}", chain(&e));
                    return Err(e);
                }
            }
        }
        let mut discovery = None;
        if !passive || ctx.needs_discovery() {
            discovery = Some(Discovery::start(adapter, &ctx.counters).await?);
        }
        let started = Instant::now();
        ctx.heard_now();
        tracing::info!(adapter = %name, passive, discovering = discovery.is_some(), "BLE: listening");
        let check_every = ctx.watchdog().map_or(HEALTH_INTERVAL, |w| w.min(HEALTH_INTERVAL));
        let mut checks = tokio::time::interval_at(Instant::now() + check_every, check_every);
        let end = loop {
            // Both futures are dropped before a branch's handler runs.
            tokio::select! {
                event = async {
                    match discovery.as_mut() {
                        Some(d) => d.events.next().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(AdapterEvent::DeviceAdded(found)) => {
                        let fresh = discovery.as_mut().is_some_and(|d| !d.replayed.remove(&found));
                        devices.found(found, fresh)?;
                    }
                    Some(_) => {}
                    None => break ListenEnd::Stopped,
                },
                event = async {
                    match monitor.as_mut() {
                        Some(m) => m.events.next().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(MonitorEvent::DeviceFound(id)) => devices.found(id.device, true)?,
                    Some(_) => {}
                    None => break ListenEnd::Released,
                },
                event = removals.next() => match event {
                    Some(SessionEvent::AdapterRemoved(removed)) if removed == name => {
                        return Err(gone(format!("Bluetooth adapter {name} was removed")));
                    }
                    Some(_) => {}
                    None => return Err(gone("lost the BlueZ event stream")),
                },
                _ = checks.tick() => {
                    if ctx.frames.is_closed() {
                        return Ok(());
                    }
                    check_powered(adapter).await?;
                    // A BlueZ that restarted (or lost its state) forgets our
                    // discovery or monitor without a word; everything is
                    // started over, connections included, since they went with it.
                    if discovery.is_some()
                        && !matches!(timeout(CALL_TIMEOUT, adapter.is_discovering()).await, Ok(Ok(true)))
                    {
                        return Err(gone("BlueZ is no longer discovering for us (was it restarted?)"));
                    }
                    if let (Some(probe), Some(owner)) = (&probe, &owner)
                        && probe.bluez_owner().await.ok().as_ref() != Some(owner)
                    {
                        return Err(gone("BlueZ's D-Bus name changed hands (was it restarted?)"));
                    }
                    while let Some(done) = devices.tasks.try_join_next() {
                        if let Err(e) = done && e.is_panic() {
                            tracing::error!(adapter = %name, "BLE task panicked: {e}");
                        }
                    }
                    if passive {
                        // Discovery only while a signed sensor is not connected.
                        let wanted = ctx.needs_discovery();
                        if wanted && discovery.is_none() {
                            tracing::info!(adapter = %name, "BLE: discovering until every signed sensor is connected");
                            discovery = Some(Discovery::start(adapter, &ctx.counters).await?);
                        } else if !wanted && discovery.is_some() {
                            tracing::info!(adapter = %name, "BLE: every signed sensor is connected; discovery stopped");
                            discovery = None;
                        }
                    }
                    if let Some(period) = ctx.watchdog()
                        && ctx.silent_for() >= period
                    {
                        break ListenEnd::Watchdog;
                    }
                }
            }
        };
        // bluer stops the old discovery and unregisters the monitor
        // (asynchronously, but before it starts the next ones).
        drop(discovery);
        drop(monitor);
        match end {
            ListenEnd::Watchdog => {
                let restarts = ctx.counters.ble_watchdog_restarts.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    adapter = %name,
                    restarts,
                    "BLE watchdog: no advertisement for {:.0} s; restarting {}",
                    ctx.silent_for().as_secs_f64(),
                    if passive { "passive scanning" } else { "discovery" }
                );
            }
            ListenEnd::Stopped | ListenEnd::Released => {
                check_powered(adapter).await?;
                if started.elapsed() >= DISCOVERY_MIN_RUN {
                    pause.reset();
                }
                let delay = pause.next();
                let what = match end {
                    ListenEnd::Released => "released the advertisement monitor",
                    _ => "ended discovery",
                };
                tracing::warn!(
                    adapter = %name,
                    "BLE: BlueZ {what}; starting again in {:.1} s",
                    delay.as_secs_f64()
                );
                sleep(delay).await;
            }
        }
    }
}

/// Fail unless the adapter answers and is powered.
async fn check_powered(adapter: &Adapter) -> Result<()> {
    match timeout(CALL_TIMEOUT, adapter.is_powered()).await {
        Err(_) => Err(BleError::Timeout { what: "BlueZ did not answer", limit: CALL_TIMEOUT }),
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(gone(format!("Bluetooth adapter {} was powered off", adapter.name()))),
        Ok(Err(source)) => {
            Err(BleError::Bluez { doing: format!("Bluetooth adapter {} is gone", adapter.name()), source })
        }
    }
}

/// Forward `device`'s BTHome service data, one frame per advertisement,
/// until BlueZ forgets the device (discovery or the monitor then finds it again).
async fn watch_advertisements(device: Device, sensor: Arc<str>, ctx: Arc<Ctx>) {
    let address = device.address();
    // Subscribe before reading the current data, so nothing newer is missed.
    let events = match device.events().await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(sensor = %sensor, "BLE: cannot watch advertisements: {e}");
            return;
        }
    };
    let mut events = Box::pin(events);
    tracing::debug!(sensor = %sensor, address = %address, "BLE: watching advertisements");
    // The advertisement that made BlueZ report the device. A remembered
    // device that is out of range has no RSSI, and its data is old.
    let mut rssi = device.rssi().await.ok().flatten();
    if rssi.is_some()
        && let Ok(Some(data)) = device.service_data().await
        && let Some(data) = data.get(&BTHOME_UUID)
    {
        ctx.heard_now();
        Counters::add(&ctx.counters.ble_advertisements_matched, 1);
        if !ctx.send(address, rssi, service_data(data.clone())).await {
            return;
        }
    }
    while let Some(first) = events.next().await {
        // bluer splits one PropertiesChanged into one event per property; the
        // rest of the signal is ready at once. Taking it together pairs the
        // service data with the RSSI it arrived with, whatever their order.
        let mut batch = vec![first];
        while let Some(Some(more)) = events.next().now_or_never() {
            batch.push(more);
        }
        let mut data = None;
        let mut advertised = false;
        for DeviceEvent::PropertyChanged(property) in batch {
            match property {
                DeviceProperty::Rssi(value) => {
                    rssi = Some(value);
                    advertised = true;
                }
                DeviceProperty::ManufacturerData(_) => advertised = true,
                DeviceProperty::ServiceData(mut map) => {
                    // Two advertisements in one go (the second signal was
                    // ready too): the earlier one is a reading as well.
                    advertised = true;
                    if let Some(bytes) = map.remove(&BTHOME_UUID)
                        && let Some(earlier) = data.replace(bytes)
                    {
                        Counters::add(&ctx.counters.ble_advertisements_matched, 1);
                        if !ctx.send(address, rssi, service_data(earlier)).await {
                            return;
                        }
                    }
                }
                _ => {}
            }
        }
        // Connection state and the like are news too, but not of the radio hearing anything.
        if advertised {
            ctx.heard_now();
            Counters::add(&ctx.counters.ble_advertisements_matched, 1);
        }
        if let Some(bytes) = data
            && !ctx.send(address, rssi, service_data(bytes)).await
        {
            return;
        }
    }
    tracing::debug!(sensor = %sensor, "BLE: BlueZ removed the device; waiting for discovery to find it again");
}

fn service_data(data: Vec<u8>) -> Payload {
    Payload::ServiceData { uuid16: bthome::SERVICE_UUID16, data }
}

/// How one connection to a signed sensor ended, when it was not an error.
enum Ended {
    /// The link or the subscription went away.
    Lost(&'static str),
    /// Nothing takes frames any more.
    Closed,
}

/// Keep the signed sensor at `address` connected and subscribed, forever:
/// connect when BlueZ has seen it, hold one of the adapter's connection
/// slots while connected, reconnect with backoff after a failure or a loss.
async fn keep_connected(
    adapter: Adapter,
    address: Address,
    sensor: Arc<str>,
    seen: Arc<Notify>,
    slots: Arc<Semaphore>,
    ctx: Arc<Ctx>,
) {
    let device = match adapter.device(address) {
        Ok(device) => device,
        Err(e) => {
            tracing::error!(sensor = %sensor, "BLE: no device handle: {e}");
            return;
        }
    };
    let mut backoff = Backoff::new(CONNECT_BACKOFF);
    let mut attempted = false;
    loop {
        // BlueZ connects only to a device it knows, i.e. one discovery (or a monitor) found.
        if !matches!(timeout(CALL_TIMEOUT, device.address_type()).await, Ok(Ok(_))) {
            tracing::debug!(sensor = %sensor, "BLE: waiting for the sensor to advertise");
            let _ = timeout(UNSEEN_RECHECK, seen.notified()).await;
            continue;
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::info!(
                    sensor = %sensor,
                    "BLE: all {} connection slots are taken; waiting for one",
                    ctx.config.max_connections
                );
                match slots.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return,
                }
            }
        };
        if attempted {
            Counters::add(&ctx.counters.ble_reconnect_attempts, 1);
        }
        attempted = true;
        let started = Instant::now();
        let outcome = connection(&device, &sensor, &ctx).await;
        drop(slot);
        match outcome {
            Ok(Ended::Closed) => return,
            Ok(Ended::Lost(why)) => {
                Counters::add(&ctx.counters.ble_disconnects, 1);
                tracing::warn!(sensor = %sensor, address = %address, "BLE: connection lost: {why}");
            }
            Err(e) => {
                let failures = ctx.counters.ble_connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(sensor = %sensor, address = %address, failures, "BLE: connection failed: {}", chain(&e));
            }
        }
        // Leave no half-open link behind (say, a sensor without the service).
        if let Ok(Ok(true)) = timeout(CALL_TIMEOUT, device.is_connected()).await {
            let _ = timeout(CALL_TIMEOUT, device.disconnect()).await;
        }
        if started.elapsed() >= STABLE {
            backoff.reset();
        }
        let delay = backoff.next();
        tracing::info!(sensor = %sensor, "BLE: reconnecting in {:.1} s", delay.as_secs_f64());
        sleep(delay).await;
    }
}

/// One connection: connect, find the reading characteristic, subscribe and
/// forward notifications until the link or the subscription goes away.
async fn connection(device: &Device, sensor: &str, ctx: &Ctx) -> Result<Ended> {
    // Subscribed before connecting, so a disconnect is never missed.
    let mut events = Box::pin(device.events().await.doing("watching the device")?);
    if !device.is_connected().await.doing("reading the connection state")? {
        tracing::info!(sensor, "BLE: connecting");
        match timeout(CONNECT_TIMEOUT, device.connect()).await {
            Err(_) => return Err(BleError::Timeout { what: "no connection", limit: CONNECT_TIMEOUT }),
            // Left connected by an earlier run of the gateway: use it.
            Ok(Err(e)) if e.kind == ErrorKind::AlreadyConnected => {}
            Ok(result) => result.doing("connecting")?,
        }
    }
    let characteristic = timeout(CONNECT_TIMEOUT, reading_characteristic(device))
        .await
        .map_err(|_| BleError::Timeout { what: "GATT services not resolved", limit: CONNECT_TIMEOUT })??;
    let notifications = characteristic.notify().await.doing("subscribing to readings")?;
    let mut notifications = Box::pin(notifications);
    let _connected = Connected::new(&ctx.connected);
    Counters::add(&ctx.counters.ble_connects, 1);
    tracing::info!(sensor, "BLE: connected; subscribed to signed readings");
    // Signals can be missed (BlueZ restarting says nothing): the link is checked now and then.
    let mut checks = tokio::time::interval_at(Instant::now() + HEALTH_INTERVAL, HEALTH_INTERVAL);
    loop {
        tokio::select! {
            value = notifications.next() => match value {
                Some(data) => {
                    Counters::add(&ctx.counters.ble_notifications, 1);
                    if !ctx.send(device.address(), None, Payload::Notification { data }).await {
                        return Ok(Ended::Closed);
                    }
                }
                // The characteristic's object goes with the link, often before the link's own news.
                None => return Ok(Ended::Lost(lost(device).await)),
            },
            event = events.next() => match event {
                Some(DeviceEvent::PropertyChanged(DeviceProperty::Connected(false))) => {
                    return Ok(Ended::Lost("disconnected"));
                }
                Some(_) => {}
                None => return Ok(Ended::Lost("BlueZ removed the device")),
            },
            _ = checks.tick() => {
                if !matches!(timeout(CALL_TIMEOUT, device.is_connected()).await, Ok(Ok(true))) {
                    return Ok(Ended::Lost("disconnected"));
                }
            }
        }
    }
}

/// Why a subscription ended: the link went, or only the characteristic.
async fn lost(device: &Device) -> &'static str {
    match timeout(CALL_TIMEOUT, device.is_connected()).await {
        Ok(Ok(true)) => "the reading characteristic went away",
        _ => "disconnected",
    }
}

/// The reading characteristic of the edgeward sensor service on a connected
/// device (waits for BlueZ to resolve the services).
async fn reading_characteristic(device: &Device) -> Result<Characteristic> {
    const READING: &str = "reading the GATT database";
    for service in device.services().await.doing("resolving GATT services")? {
        if service.uuid().await.doing(READING)? != SENSOR_SERVICE_UUID {
            continue;
        }
        for characteristic in service.characteristics().await.doing(READING)? {
            if characteristic.uuid().await.doing(READING)? == READING_CHARACTERISTIC_UUID {
                return Ok(characteristic);
            }
        }
        return Err(BleError::NotASensor {
            why: format!(
                "the edgeward sensor service has no reading characteristic {READING_CHARACTERISTIC_UUID}"
            ),
        });
    }
    Err(BleError::NotASensor {
        why: format!(
            "no edgeward sensor service {SENSOR_SERVICE_UUID}: not a signed sensor, or another firmware"
        ),
    })
}

/// Counts a live subscription for as long as it exists.
struct Connected<'a>(&'a AtomicUsize);

impl<'a> Connected<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Connected(count)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Exponential backoff with jitter: each wait doubles up to a cap, and is
/// drawn between half and all of its nominal value, so that sensors that
/// dropped together (an adapter reset) do not retry in lockstep.
struct Backoff {
    first: Duration,
    cap: Duration,
    nominal: Duration,
}

impl Backoff {
    fn new((first, cap): (Duration, Duration)) -> Self {
        Backoff { first, cap, nominal: first }
    }

    fn next(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (self.nominal * 2).min(self.cap);
        // Entropy failing only loses the jitter.
        let unit = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
        nominal.mul_f64(0.5 + 0.5 * unit)
    }

    fn reset(&mut self) {
        self.nominal = self.first;
    }
}

/// The adapter named `name`, or BlueZ's default one, for a one-off tool
/// (`edgeward scan`); an error that says what is missing when it is absent
/// or powered off.
pub async fn open_adapter(name: Option<&str>) -> Result<Adapter> {
    let session = Session::new().await.doing("cannot reach the system D-Bus")?;
    match timeout(CALL_TIMEOUT, find_adapter(&session, name)).await {
        Err(_) => Err(BleError::Timeout { what: "BlueZ did not answer", limit: CALL_TIMEOUT }),
        Ok(Ok((adapter, true))) => Ok(adapter),
        Ok(Ok((adapter, false))) => Err(gone(format!("Bluetooth adapter {} is powered off", adapter.name()))),
        Ok(Err(e)) => match absent(&e, name) {
            Some(why) => Err(gone(why)),
            None => Err(BleError::Bluez { doing: "looking for the Bluetooth adapter".into(), source: e }),
        },
    }
}

/// `AA:BB:CC:DD:EE:FF` for a BlueZ address, as the configuration writes it.
pub fn address_text(address: Address) -> String {
    format_mac(&address.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backoff doubles up to its cap, stays within its jitter band, and starts over on reset.
    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new((Duration::from_secs(1), Duration::from_secs(60)));
        let mut nominal = Duration::from_secs(1);
        for _ in 0..10 {
            let wait = backoff.next();
            assert!(wait >= nominal / 2 && wait <= nominal, "{wait:?} outside {nominal:?}/2..{nominal:?}");
            nominal = (nominal * 2).min(Duration::from_secs(60));
        }
        assert!(backoff.next() >= Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next() <= Duration::from_secs(1));
    }

    /// The monitor pattern matches BTHome service data as it is on air: AD
    /// type 0x16, then the UUID 0xFCD2 little-endian.
    #[test]
    fn bthome_pattern_is_service_data_d2_fc() {
        assert_eq!(bthome_pattern(), Pattern::new(0x16, 0, &[0xd2, 0xfc]));
    }

    /// The UUIDs are the documented ones, and BTHome's is 0xFCD2 in the base UUID.
    #[test]
    fn uuids_are_the_documented_ones() {
        assert_eq!(SENSOR_SERVICE_UUID.to_string(), "163f8321-5b4c-4d7a-af76-9a284a3e0ea4");
        assert_eq!(READING_CHARACTERISTIC_UUID.to_string(), "3091d3be-0fb2-492a-838a-185d70526b81");
        assert_eq!(BTHOME_UUID.to_string(), "0000fcd2-0000-1000-8000-00805f9b34fb");
        assert_eq!(BTHOME_UUID.as_u128() >> 96, u128::from(bthome::SERVICE_UUID16));
    }

    /// A frame carries the address bytes in written order, the RSSI, the gateway's time and the data.
    #[tokio::test]
    async fn frames_carry_address_in_written_order() {
        let (tx, mut rx) = mpsc::channel(1);
        let sensor = BleSensor {
            name: "kitchen".into(),
            address: crate::config::parse_mac("A4:C1:38:0D:0E:0F").unwrap(),
            format: SensorFormat::Bthome,
        };
        let ctx = Ctx::new(BleConfig::default(), vec![sensor], Clock::manual(1234), tx, Arc::default());
        let address: Address = "A4:C1:38:0D:0E:0F".parse().unwrap();
        assert!(ctx.advertising.contains_key(&address));
        assert!(ctx.send(address, Some(-61), service_data(vec![0x40, 0x02, 0xca, 0x09])).await);
        let frame = rx.recv().await.unwrap();
        assert_eq!(frame.address, [0xa4, 0xc1, 0x38, 0x0d, 0x0e, 0x0f]);
        assert_eq!((frame.rssi, frame.received_ms), (Some(-61), 1234));
        assert!(
            matches!(frame.payload, Payload::ServiceData { uuid16: 0xfcd2, ref data } if data[0] == 0x40)
        );
        assert_eq!(address_text(address), "A4:C1:38:0D:0E:0F");
    }

    /// The watchdog is armed for BTHome sensors, and for signed ones only while unconnected.
    #[test]
    fn watchdog_arms_while_sensors_wait_on_advertisements() {
        let sensor = |name: &str, last: u8, format| BleSensor {
            name: name.into(),
            address: [1, 2, 3, 4, 5, last],
            format,
        };
        let (tx, _rx) = mpsc::channel(1);
        let signed_only = Ctx::new(
            BleConfig::default(),
            vec![sensor("w", 1, SensorFormat::SignedGatt)],
            Clock::real(),
            tx.clone(),
            Arc::default(),
        );
        assert_eq!(signed_only.watchdog(), Some(Duration::from_secs(60)));
        assert!(signed_only.needs_discovery());
        let _connected = Connected::new(&signed_only.connected);
        assert_eq!(signed_only.watchdog(), None);
        assert!(!signed_only.needs_discovery(), "every signed sensor is connected");

        let mixed = Ctx::new(
            BleConfig { watchdog_s: 0.0, ..BleConfig::default() },
            vec![sensor("t", 2, SensorFormat::Bthome)],
            Clock::real(),
            tx,
            Arc::default(),
        );
        assert_eq!(mixed.watchdog(), None, "0 turns it off");
    }

    /// `[ble]` loads with its defaults, and bad values are refused naming the key.
    #[test]
    fn ble_section_is_validated() {
        let base = "[gateway]\nid = \"gw\"\n";
        let load = |extra: &str| {
            crate::config::load_str(&format!("{base}{extra}"), "t.toml".as_ref(), "/tmp".as_ref())
        };
        let loaded = load("").unwrap();
        assert_eq!(loaded.config.ble.max_connections, 4);
        assert_eq!(loaded.config.ble.watchdog_s, 60.0);
        assert!(loaded.config.ble.adapter.is_none());
        assert_eq!(loaded.config.ble.scan, ScanMode::Auto);
        let loaded =
            load("[ble]\nadapter = \"hci1\"\nmax-connections = 2\nwatchdog-s = 0\nscan = \"passive\"\n")
                .unwrap();
        assert_eq!(loaded.config.ble.scan, ScanMode::Passive);
        assert_eq!(loaded.config.ble.adapter.unwrap().into_inner(), "hci1");
        for (bad, key) in [
            ("adapter = \"hci0/x\"", "ble.adapter"),
            ("max-connections = 0", "ble.max-connections"),
            ("watchdog-s = -1", "ble.watchdog-s"),
            ("scan = true", "ble.scan"),
            ("scan = \"sometimes\"", "ble.scan"),
        ] {
            let err = load(&format!("[ble]\n{bad}\n")).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }
}
