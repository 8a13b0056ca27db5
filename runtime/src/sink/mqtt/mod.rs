//! MQTT sinks (MQTT 3.1.1 or 5, plain or over TLS, with rumqttc and rustls).
//!
//! - The uplink: [`UplinkSink`] accepts messages into the durable
//!   [`Outbox`] (group commit), and [`publish_outbox`] sends them in outbox
//!   order with QoS 1, removing each only after its PUBACK. Disconnected, it
//!   retries with backoff and jitter and then sends again everything not yet
//!   acknowledged: at-least-once, in order. A retained status topic says
//!   `online`, and the broker publishes the last will `offline` when the
//!   gateway vanishes.
//! - Alarms and actuator commands: [`LocalSink`] publishes straight to a
//!   (usually local) broker of its own, so they keep flowing while the
//!   uplink is down.
//!
//! Files: `config.rs` (the keys and their checks), `tls.rs` (rustls set-up
//! and what handshake failures mean), `client.rs` (one face over the 3.1.1
//! and 5 clients).

mod client;
mod config;
mod tls;

pub use config::{Endpoint, MqttConfig, MqttError, Protocol};

use super::outbox::{NewEntry, Outbox};
use super::{Record, Sink, SinkError};
use crate::telemetry::Counters;
use client::{Client, Failure, Happened, Meta};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many accepted messages are committed in one transaction at most.
const GROUP_COMMIT: usize = 256;

/// A connection's health as the log tells it: a failure is logged when it
/// starts or changes, not on every retry; the recovery once.
struct Link {
    /// `uplink`, `alarm` or `actuator`.
    name: &'static str,
    url: String,
    host: String,
    /// The failure last logged while the link is down.
    failing: Option<String>,
    /// Failed attempts since the link was last up.
    attempts: u64,
    up: bool,
}

impl Link {
    fn new(name: &'static str, url: &str, host: &str) -> Self {
        Link { name, url: url.to_string(), host: host.to_string(), failing: None, attempts: 0, up: false }
    }

    fn connected(&mut self) {
        if self.attempts > 0 {
            tracing::info!(
                sink = self.name,
                url = %self.url,
                failed_attempts = self.attempts,
                "{} connected to {} after {} failed attempts",
                self.name,
                self.url,
                self.attempts
            );
        } else {
            tracing::info!(sink = self.name, url = %self.url, "{} connected to {}", self.name, self.url);
        }
        (self.up, self.failing, self.attempts) = (true, None, 0);
    }

    /// Log `error` if it is news. Returns whether the link had been up (a
    /// disconnection, rather than a failed attempt to connect).
    fn failed(&mut self, error: &Failure) -> bool {
        let mut text = error.to_string();
        if let Some(why) = tls::explain(error.as_ref(), &self.host) {
            text = format!("{why} ({text})");
        }
        let was_up = std::mem::replace(&mut self.up, false);
        if was_up {
            tracing::warn!(sink = self.name, url = %self.url, "{} disconnected from {}: {text}", self.name, self.url);
        } else {
            self.attempts += 1;
            if self.failing.as_deref() != Some(text.as_str()) {
                tracing::warn!(
                    sink = self.name,
                    url = %self.url,
                    "{} cannot connect to {}: {text}; retrying with backoff",
                    self.name,
                    self.url
                );
            } else {
                tracing::debug!(
                    sink = self.name,
                    url = %self.url,
                    attempt = self.attempts,
                    "still cannot connect: {text}"
                );
            }
        }
        self.failing = Some(text);
        was_up
    }
}

/// The uplink's accepting side: buffers what the pipelines forward and
/// commits it to the outbox in groups.
pub struct UplinkSink {
    outbox: Arc<Outbox>,
    pending: Vec<NewEntry>,
    /// When each pending message's frame entered the gateway.
    entered: Vec<Option<std::time::Instant>>,
    /// Wakes the publisher when something was committed.
    wake: Arc<Notify>,
    counters: Arc<Counters>,
    /// Messages refused since `outbox.db` stopped taking writes (disk full,
    /// I/O error); 0 while it takes them. The error is logged when it starts
    /// and the recovery when it ends, not for every refused batch.
    refusing: u64,
}

impl UplinkSink {
    pub fn new(outbox: Arc<Outbox>, wake: Arc<Notify>, counters: Arc<Counters>) -> Self {
        UplinkSink {
            outbox,
            pending: Vec::with_capacity(GROUP_COMMIT),
            entered: Vec::with_capacity(GROUP_COMMIT),
            wake,
            counters,
            refusing: 0,
        }
    }
}

impl Sink for UplinkSink {
    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        let Record::Uplink { id, topic, message, entered, .. } = record else {
            return Ok(());
        };
        self.entered.push(*entered);
        self.pending.push(NewEntry {
            id: id.clone(),
            topic: topic.clone(),
            payload: message.envelope.body.clone(),
            content_type: Some(message.envelope.content_type.clone()),
            created_ms: message.reading.received_ms,
        });
        if self.pending.len() >= GROUP_COMMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let entered = std::mem::take(&mut self.entered);
        // A busy or briefly failing disk is retried: these messages exist
        // nowhere else. A full one is not: space does not return in seconds,
        // and waiting would stall every pipeline behind this sink.
        let mut attempt = 0;
        let result = loop {
            match self.outbox.append(&batch) {
                Err(e) if attempt < 5 && !super::outbox::is_storage_full(&e) => {
                    attempt += 1;
                    tracing::warn!(attempt, "outbox append failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                other => break other,
            }
        };
        match result {
            Ok(report) => {
                for entered in entered.into_iter().flatten() {
                    self.counters.latency_to_outbox.record(entered.elapsed());
                }
                if self.refusing > 0 {
                    tracing::info!(
                        refused = self.refusing,
                        "the outbox accepts messages again ({} refused while the state file could not be written)",
                        self.refusing
                    );
                    self.refusing = 0;
                }
                Counters::add(&self.counters.outbox_rejected, report.rejected as u64);
                Counters::add(&self.counters.outbox_evicted, report.evicted as u64);
                if report.rejected > 0 {
                    tracing::error!(
                        rejected = report.rejected,
                        "outbox full: new messages refused (overflow = reject-new)"
                    );
                }
                if report.evicted > 0 {
                    tracing::error!(
                        evicted = report.evicted,
                        "outbox full: oldest messages dropped (overflow = drop-oldest)"
                    );
                }
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                // Never accepted, so nothing accepted is lost; counted, and
                // the gateway runs on: the next batch tries again.
                Counters::add(&self.counters.outbox_write_refused, batch.len() as u64);
                if self.refusing == 0 {
                    tracing::error!(
                        "{e}: uplink messages are refused (not accepted) until it can be written again; the gateway keeps running"
                    );
                } else {
                    tracing::debug!(refused = batch.len(), "outbox still cannot be written: {e}");
                }
                self.refusing += batch.len() as u64;
                Ok(())
            }
        }
    }
}

/// The outbox's sending side.
pub struct Publisher {
    pub outbox: Arc<Outbox>,
    /// With its file paths resolved ([`MqttConfig::resolved`]).
    pub config: MqttConfig,
    pub client_id: String,
    /// Retained `online`; the last will and a clean stop say `offline`.
    pub status_topic: String,
    /// Notified when new messages were committed.
    pub wake: Arc<Notify>,
    /// Notified when the gateway stops.
    pub stop: Arc<Notify>,
    /// After `stop`, how long to keep sending.
    pub drain: Duration,
    pub counters: Arc<Counters>,
}

/// Send the outbox to the broker until `stop` is notified and the outbox is
/// empty (or `drain` has passed since). Never returns early on broker errors:
/// it reconnects with backoff.
pub async fn publish_outbox(publisher: Publisher) {
    use std::sync::atomic::Ordering::Relaxed;
    let Publisher { outbox, config, client_id, status_topic, wake, stop, drain, counters } = publisher;
    let settings = match config.settings(client_id) {
        Ok(settings) => settings,
        Err(e) => {
            // The config loader checked this; a file changed since then.
            tracing::error!(url = %config.url(), "uplink disabled, messages wait in the outbox: {e}");
            stop.notified().await;
            return;
        }
    };
    let mut link = Link::new("uplink", &settings.url, &settings.endpoint.host);
    let mut backoff = Duration::from_millis(250);
    let mut stopping: Option<tokio::time::Instant> = None;
    let stop_signal = stop.notified();
    tokio::pin!(stop_signal);
    loop {
        let (client, mut events) =
            client::connect(&settings, Some((&status_topic, "offline")), config.max_inflight * 2 + 8);
        // Requests not yet turned into packets (None: the status message), in order.
        let mut requested: VecDeque<Option<i64>> = VecDeque::new();
        // Packet id → outbox seq, sent and awaiting PUBACK.
        let mut inflight: HashMap<u16, i64> = HashMap::new();
        let mut acked: Vec<i64> = Vec::new();
        let mut cursor: i64 = 0;
        let mut connected = false;
        // Whether the outbox may hold messages past the cursor: false after
        // a read came back short, true again when the sink commits more. It
        // saves a query per MQTT event when there is nothing to send.
        let mut more = true;
        loop {
            if connected && more {
                let room = config.max_inflight.saturating_sub(requested.len() + inflight.len());
                if room > 0 {
                    match outbox.after(cursor, room) {
                        Ok(entries) => {
                            more = entries.len() == room;
                            for entry in entries {
                                let meta = Meta {
                                    msg_id: Some(&entry.id),
                                    content_type: entry.content_type.as_deref(),
                                };
                                if client.try_publish(&entry.topic, entry.payload, false, meta).is_err() {
                                    more = true;
                                    break;
                                }
                                requested.push_back(Some(entry.seq));
                                cursor = entry.seq;
                            }
                        }
                        Err(e) => tracing::error!("reading the outbox: {e}"),
                    }
                }
            }
            if let Some(since) = stopping
                && (since.elapsed() >= drain
                    || (requested.is_empty()
                        && inflight.is_empty()
                        && outbox.depth().is_ok_and(|d| d.messages == 0)))
            {
                let _ = outbox.remove(&acked);
                if let Ok(depth) = outbox.depth()
                    && depth.messages > 0
                {
                    tracing::info!(
                        waiting = depth.messages,
                        "stopping; messages wait in the outbox for the next start"
                    );
                }
                // A clean exit sends no last will: say `offline` ourselves.
                if connected
                    && client.try_publish(&status_topic, b"offline".to_vec(), true, Meta::default()).is_ok()
                {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Ok(event) = events.poll().await {
                            if let Happened::Acked { .. } = event {
                                break;
                            }
                        }
                    })
                    .await;
                }
                return;
            }
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Happened::Connected) => {
                        link.connected();
                        connected = true;
                        Counters::add(&counters.uplink_connects, 1);
                        counters.uplink_connected.store(1, Relaxed);
                        backoff = Duration::from_millis(250);
                        if client.try_publish(&status_topic, b"online".to_vec(), true, Meta::default()).is_ok() {
                            requested.push_back(None);
                        }
                    }
                    Ok(Happened::Sent(pkid)) => {
                        if let Some(Some(seq)) = requested.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Happened::Acked { pkid, ok }) => {
                        if let Some(seq) = inflight.remove(&pkid) {
                            if ok {
                                acked.push(seq);
                                Counters::add(&counters.uplink_acked, 1);
                            } else {
                                // It stays in the outbox and goes again after the next reconnect.
                                Counters::add(&counters.uplink_refused, 1);
                                tracing::warn!(url = %settings.url, "the broker refused a message; it stays in the outbox");
                            }
                        }
                        if acked.len() >= GROUP_COMMIT {
                            remove_acked(&outbox, &mut acked);
                        }
                    }
                    Ok(Happened::Other) => {}
                    Err(e) => {
                        if link.failed(&e) {
                            Counters::add(&counters.uplink_disconnects, 1);
                        } else {
                            Counters::add(&counters.uplink_connect_failures, 1);
                        }
                        counters.uplink_connected.store(0, Relaxed);
                        break;
                    }
                },
                _ = wake.notified(), if connected => more = true,
                _ = tokio::time::sleep(Duration::from_millis(20)), if !acked.is_empty() => {
                    remove_acked(&outbox, &mut acked);
                }
                _ = &mut stop_signal, if stopping.is_none() => {
                    stopping = Some(tokio::time::Instant::now());
                }
                _ = tokio::time::sleep(Duration::from_millis(100)), if stopping.is_some() => {}
            }
        }
        remove_acked(&outbox, &mut acked);
        if stopping.is_some() {
            let waiting = outbox.depth().map(|d| d.messages).unwrap_or_default();
            tracing::info!(
                waiting,
                "uplink unreachable while stopping; messages wait in the outbox for the next start"
            );
            return;
        }
        // Full jitter: reconnecting gateways do not hit a recovering broker in step.
        let jitter = rand::random_range(0.5..1.0);
        let pause = tokio::time::sleep(backoff.mul_f64(jitter));
        tokio::select! {
            _ = pause => {}
            _ = &mut stop_signal, if stopping.is_none() => stopping = Some(tokio::time::Instant::now()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn remove_acked(outbox: &Outbox, acked: &mut Vec<i64>) {
    if let Err(e) = outbox.remove(acked) {
        // They stay and are sent again: a duplicate, never a loss.
        tracing::warn!("removing acknowledged messages from the outbox: {e}");
    }
    acked.clear();
}

/// Alarms or actuator commands to a broker of their own, QoS 1, as JSON.
pub struct LocalSink {
    client: Client,
    topic: String,
    gateway: String,
    kind: &'static str,
    /// Published and acknowledged counts, so a flush (at shutdown) can wait
    /// for the last alarms to reach the broker.
    published: u64,
    acked: Arc<std::sync::atomic::AtomicU64>,
}

impl LocalSink {
    /// Connect (in the background, reconnecting as needed) and return the
    /// sink. `config` has its file paths resolved.
    pub fn start(config: &MqttConfig, gateway: &str, kind: &'static str) -> Result<Self, MqttError> {
        let client_id = config.client_id.clone().unwrap_or_else(|| format!("{gateway}-{kind}"));
        let settings = config.settings(client_id)?;
        let (client, mut events) = client::connect(&settings, None, 1024);
        let mut link = Link::new(kind, &settings.url, &settings.endpoint.host);
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = acked.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match events.poll().await {
                    Ok(Happened::Connected) => {
                        link.connected();
                        backoff = Duration::from_millis(250);
                    }
                    Ok(Happened::Acked { .. }) => {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        link.failed(&e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        let default_topic = match kind {
            "alarm" => "edgeward/{gateway}/alarm/{sensor}/{code}",
            _ => "edgeward/{gateway}/actuator/{actuator}",
        };
        let topic = config.topic.clone().unwrap_or_else(|| default_topic.to_string());
        Ok(LocalSink { client, topic, gateway: gateway.to_string(), kind, published: 0, acked })
    }
}

impl Sink for LocalSink {
    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        let topic = match record {
            Record::Alarm { alarm, .. } => {
                self.topic.replace("{sensor}", &alarm.sensor).replace("{code}", &alarm.code)
            }
            Record::Command { command, .. } => self.topic.replace("{actuator}", &command.actuator),
            Record::Uplink { .. } => return Ok(()),
        }
        .replace("{gateway}", &self.gateway);
        let payload = match record {
            Record::Command { command, .. } => command.payload.clone().into_bytes(),
            _ => record.to_json().to_string().into_bytes(),
        };
        let meta = Meta { msg_id: None, content_type: Some("application/json") };
        self.client.try_publish(&topic, payload, false, meta).map_err(|e| SinkError::Io {
            sink: format!("{} broker", self.kind),
            source: std::io::Error::other(e),
        })?;
        self.published += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        // Give the broker a moment to acknowledge what is queued; a broker
        // that is down does not hold the gateway up for long.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.acked.load(std::sync::atomic::Ordering::Relaxed) < self.published
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}
