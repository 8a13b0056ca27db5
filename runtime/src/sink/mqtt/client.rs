//! One face over rumqttc's MQTT 3.1.1 and MQTT 5 clients, so the uplink
//! publisher and the local sinks are written once: connect, publish QoS 1
//! (with the message id and content type as MQTT 5 properties), and the few
//! events they act on.

use super::config::{Protocol, Settings};
use rumqttc::v5::mqttbytes::v5 as v5p;
use rumqttc::{Outgoing, TlsConfiguration, Transport};

/// A client handle: queues requests for its [`Events`].
#[derive(Clone)]
pub(crate) enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The connection's event loop; polling it drives the network.
pub(crate) enum Events {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What a publish carries besides topic and payload (MQTT 5 only).
#[derive(Default)]
pub(crate) struct Meta<'a> {
    /// The message's unique id: user property `msg-id`.
    pub msg_id: Option<&'a str>,
    /// Content-type property.
    pub content_type: Option<&'a str>,
}

/// The events the sinks act on.
pub(crate) enum Happened {
    /// The broker accepted the connection (CONNACK).
    Connected,
    /// A publish left, with this packet id.
    Sent(u16),
    /// The broker acknowledged packet `pkid`; `ok` is false when an MQTT 5
    /// broker refused the message (a reason code of 0x80 or above).
    Acked { pkid: u16, ok: bool },
    /// Anything else (pings, our own acknowledgements...).
    Other,
}

/// A connection failure, with the underlying error for explanations.
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A client and its event loop for `settings`, with an optional retained
/// last will (`topic`, `payload`).
pub(crate) fn connect(settings: &Settings, will: Option<(&str, &str)>, cap: usize) -> (Client, Events) {
    let host = settings.endpoint.host.clone();
    let port = settings.endpoint.port;
    let transport = settings.tls.as_ref().map(|tls| Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
    match settings.protocol {
        Protocol::V311 => {
            let mut options = rumqttc::MqttOptions::new(settings.client_id.clone(), host, port);
            options.set_keep_alive(settings.keep_alive);
            // Our outbox, not the client library, is the record of what is unacknowledged.
            options.set_clean_session(true);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user.clone(), password.clone());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            if let Some((topic, payload)) = will {
                options.set_last_will(rumqttc::LastWill::new(
                    topic,
                    payload,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            }
            let (client, events) = rumqttc::AsyncClient::new(options, cap);
            (Client::V311(client), Events::V311(Box::new(events)))
        }
        Protocol::V5 => {
            let mut options = rumqttc::v5::MqttOptions::new(settings.client_id.clone(), host, port);
            options.set_keep_alive(settings.keep_alive);
            options.set_clean_start(true);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user.clone(), password.clone());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            if let Some((topic, payload)) = will {
                options.set_last_will(v5p::LastWill::new(
                    topic,
                    payload,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ));
            }
            let (client, events) = rumqttc::v5::AsyncClient::new(options, cap);
            (Client::V5(client), Events::V5(Box::new(events)))
        }
    }
}

impl Client {
    /// Queue a QoS 1 publish without waiting; an error means the request
    /// queue is full (or the event loop is gone).
    pub fn try_publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        meta: Meta<'_>,
    ) -> Result<(), String> {
        match self {
            Client::V311(client) => client
                .try_publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(client) => {
                let properties = v5p::PublishProperties {
                    user_properties: meta
                        .msg_id
                        .map(|id| vec![("msg-id".to_string(), id.to_string())])
                        .unwrap_or_default(),
                    content_type: meta.content_type.map(str::to_string),
                    ..Default::default()
                };
                client
                    .try_publish_with_properties(
                        topic,
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        retain,
                        payload,
                        properties,
                    )
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl Events {
    /// The next event; an error means the connection is down (the next
    /// poll tries to connect again).
    pub async fn poll(&mut self) -> Result<Happened, Failure> {
        match self {
            Events::V311(events) => {
                use rumqttc::{Event, Packet};
                Ok(match events.poll().await? {
                    Event::Incoming(Packet::ConnAck(_)) => Happened::Connected,
                    Event::Incoming(Packet::PubAck(ack)) => Happened::Acked { pkid: ack.pkid, ok: true },
                    Event::Outgoing(Outgoing::Publish(pkid)) => Happened::Sent(pkid),
                    _ => Happened::Other,
                })
            }
            Events::V5(events) => {
                use rumqttc::v5::Event;
                use v5p::{Packet, PubAckReason};
                Ok(match events.poll().await? {
                    Event::Incoming(Packet::ConnAck(_)) => Happened::Connected,
                    Event::Incoming(Packet::PubAck(ack)) => Happened::Acked {
                        pkid: ack.pkid,
                        ok: matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers),
                    },
                    Event::Outgoing(Outgoing::Publish(pkid)) => Happened::Sent(pkid),
                    _ => Happened::Other,
                })
            }
        }
    }
}
