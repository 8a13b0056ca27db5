//! MQTT sinks (MQTT 3.1.1 over TCP, with rumqttc).
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

use super::outbox::{NewEntry, Outbox};
use super::{Record, Sink, SinkError};
use crate::telemetry::Counters;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many accepted messages are committed in one transaction at most.
const GROUP_COMMIT: usize = 256;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttConfig {
    /// `mqtt://HOST:PORT` (port 1883 when absent).
    pub url: String,
    /// Default: the gateway id (plus `-alarm` / `-actuator` for the local sinks).
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Seconds between keep-alive pings.
    #[serde(default = "MqttConfig::default_keep_alive")]
    pub keep_alive_s: u64,
    /// Uplink: messages sent but not yet acknowledged, at most.
    #[serde(default = "MqttConfig::default_inflight")]
    pub max_inflight: usize,
    /// Alarm and actuator sinks: the topic; `{gateway}`, `{sensor}`,
    /// `{code}` (alarms) and `{actuator}` (commands) are replaced.
    pub topic: Option<String>,
}

impl MqttConfig {
    /// Defaults for everything but the broker's address.
    pub fn for_url(url: &str) -> Self {
        MqttConfig {
            url: url.to_string(),
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: Self::default_keep_alive(),
            max_inflight: Self::default_inflight(),
            topic: None,
        }
    }

    fn default_keep_alive() -> u64 {
        30
    }
    fn default_inflight() -> usize {
        64
    }

    /// Host and port from `url`.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let rest = self
            .url
            .strip_prefix("mqtt://")
            .ok_or_else(|| format!("`{}`: only mqtt://HOST:PORT is supported", self.url))?;
        let rest = rest.trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse().map_err(|_| format!("`{}`: bad port `{port}`", self.url))?;
                Ok((host.to_string(), port))
            }
            None => Ok((rest.to_string(), 1883)),
        }
    }

    fn options(&self, client_id: String) -> Result<MqttOptions, String> {
        let (host, port) = self.host_port()?;
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(self.keep_alive_s.max(5)));
        // Our outbox, not the client library, is the record of what is unacknowledged.
        options.set_clean_session(true);
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            options.set_credentials(user.clone(), password.clone());
        }
        Ok(options)
    }
}

/// The uplink's accepting side: buffers what the pipelines forward and
/// commits it to the outbox in groups.
pub struct UplinkSink {
    outbox: Arc<Outbox>,
    pending: Vec<NewEntry>,
    /// Wakes the publisher when something was committed.
    wake: Arc<Notify>,
    counters: Arc<Counters>,
}

impl UplinkSink {
    pub fn new(outbox: Arc<Outbox>, wake: Arc<Notify>, counters: Arc<Counters>) -> Self {
        UplinkSink { outbox, pending: Vec::with_capacity(GROUP_COMMIT), wake, counters }
    }
}

impl Sink for UplinkSink {
    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        let Record::Uplink { id, topic, message, .. } = record else {
            return Ok(());
        };
        self.pending.push(NewEntry {
            id: id.clone(),
            topic: topic.clone(),
            payload: message.envelope.body.clone(),
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
        // A busy or briefly failing disk is retried: these messages exist nowhere else.
        let mut attempt = 0;
        let result = loop {
            match self.outbox.append(&batch) {
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(attempt, "outbox append failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                other => break other,
            }
        };
        match result {
            Ok(report) => {
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
            Err(e) => Err(SinkError::Io {
                sink: "outbox".into(),
                source: std::io::Error::other(format!("{} messages not accepted: {e}", batch.len())),
            }),
        }
    }
}

/// The outbox's sending side.
pub struct Publisher {
    pub outbox: Arc<Outbox>,
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
    let Publisher { outbox, config, client_id, status_topic, wake, stop, drain, counters } = publisher;
    let mut options = match config.options(client_id) {
        Ok(options) => options,
        Err(e) => {
            tracing::error!("uplink disabled: {e}");
            return;
        }
    };
    options.set_last_will(LastWill::new(&status_topic, "offline", QoS::AtLeastOnce, true));
    let mut backoff = Duration::from_millis(250);
    let mut stopping: Option<tokio::time::Instant> = None;
    let stop_signal = stop.notified();
    tokio::pin!(stop_signal);
    loop {
        let (client, mut events) = AsyncClient::new(options.clone(), config.max_inflight * 2 + 8);
        // Requests not yet turned into packets (None: the status message), in order.
        let mut requested: VecDeque<Option<i64>> = VecDeque::new();
        // Packet id → outbox seq, sent and awaiting PUBACK.
        let mut inflight: HashMap<u16, i64> = HashMap::new();
        let mut acked: Vec<i64> = Vec::new();
        let mut cursor: i64 = 0;
        let mut connected = false;
        loop {
            if connected {
                let room = config.max_inflight.saturating_sub(requested.len() + inflight.len());
                if room > 0 {
                    match outbox.after(cursor, room) {
                        Ok(entries) => {
                            for entry in entries {
                                if client
                                    .try_publish(&entry.topic, QoS::AtLeastOnce, false, entry.payload)
                                    .is_err()
                                {
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
                if connected && client.try_publish(&status_topic, QoS::AtLeastOnce, true, "offline").is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Ok(event) = events.poll().await {
                            if let Event::Incoming(Packet::PubAck(_)) = event {
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
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(url = %config.url, "uplink connected");
                        connected = true;
                        counters.uplink_connected.store(1, std::sync::atomic::Ordering::Relaxed);
                        backoff = Duration::from_millis(250);
                        if client.try_publish(&status_topic, QoS::AtLeastOnce, true, "online").is_ok() {
                            requested.push_back(None);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(seq)) = requested.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = inflight.remove(&ack.pkid) {
                            acked.push(seq);
                            Counters::add(&counters.uplink_acked, 1);
                        }
                        if acked.len() >= GROUP_COMMIT {
                            remove_acked(&outbox, &mut acked);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(url = %config.url, "uplink disconnected: {e}");
                        if connected {
                            Counters::add(&counters.uplink_disconnects, 1);
                        }
                        counters.uplink_connected.store(0, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                },
                _ = wake.notified(), if connected => {}
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
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
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
    client: AsyncClient,
    topic: String,
    gateway: String,
    kind: &'static str,
    /// Published and acknowledged counts, so a flush (at shutdown) can wait
    /// for the last alarms to reach the broker.
    published: u64,
    acked: Arc<std::sync::atomic::AtomicU64>,
}

impl LocalSink {
    /// Connect (in the background, reconnecting as needed) and return the sink.
    pub fn start(config: &MqttConfig, gateway: &str, kind: &'static str) -> Result<Self, String> {
        let client_id = config.client_id.clone().unwrap_or_else(|| format!("{gateway}-{kind}"));
        let options = config.options(client_id)?;
        let (client, mut events) = AsyncClient::new(options, 1024);
        let url = config.url.clone();
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = acked.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(sink = kind, %url, "connected");
                        backoff = Duration::from_millis(250);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(sink = kind, %url, "disconnected: {e}");
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
        self.client.try_publish(topic, QoS::AtLeastOnce, false, payload).map_err(|e| SinkError::Io {
            sink: format!("{} broker", self.kind),
            source: std::io::Error::other(e.to_string()),
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
