//! Tools beside the daemon: `decode` for raw frames, and the cloud's and
//! the app's side of the trust chain, `verify` and `open`. The latter two read the uplink's JSON-lines records (what a `type = "file"` uplink
//! sink writes), from a file or standard input.

pub mod decode;
pub mod generate;
pub mod module;
pub mod new_rule;
pub mod open;
pub mod scan;
pub mod verify;

use anyhow::Context;
use base64::Engine as _;
use std::io::BufRead;
use std::path::Path;

/// One uplink message as the verifier or app receives it.
pub struct UplinkRecord {
    /// Where it was read: `FILE:LINE`.
    pub origin: String,
    pub id: Option<String>,
    pub body: Vec<u8>,
}

/// Read uplink records from `input` (`-` or absent: standard input).
fn read_records(input: Option<&Path>) -> anyhow::Result<Vec<UplinkRecord>> {
    let (name, reader): (String, Box<dyn BufRead>) = match input {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            (path.display().to_string(), Box::new(std::io::BufReader::new(file)))
        }
        _ => ("<stdin>".into(), Box::new(std::io::stdin().lock())),
    };
    let mut records = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {name}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", n + 1);
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{origin}: not a JSON line"))?;
        let body = value["body"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .with_context(|| format!("{origin}: no base64 `body`"))?;
        records.push(UplinkRecord { origin, id: value["id"].as_str().map(str::to_string), body });
    }
    Ok(records)
}

/// Where `verify` and `open` read uplink messages from.
pub enum Input<'a> {
    /// JSON lines from a file (or standard input for `-` / none).
    Lines(Option<&'a Path>),
    /// Straight from a broker: everything retained or published on `filter`
    /// until `count` messages arrived or `idle` passed without one.
    Mqtt { url: &'a str, filter: &'a str, count: Option<usize>, idle: std::time::Duration },
}

/// Read uplink records from `input`.
pub fn read_input(input: &Input<'_>) -> anyhow::Result<Vec<UplinkRecord>> {
    match input {
        Input::Lines(path) => read_records(*path),
        Input::Mqtt { url, filter, count, idle } => read_mqtt(url, filter, *count, *idle),
    }
}

fn read_mqtt(
    url: &str,
    filter: &str,
    count: Option<usize>,
    idle: std::time::Duration,
) -> anyhow::Result<Vec<UplinkRecord>> {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let endpoint = edgeward::sink::mqtt::MqttConfig::for_url(url).endpoint()?;
    if endpoint.tls {
        anyhow::bail!("{url}: reading from a broker supports plain mqtt:// only");
    }
    let (host, port) = (endpoint.host, endpoint.port);
    let client_id = format!("edgeward-reader-{}", std::process::id());
    let (client, mut connection) = Client::new(MqttOptions::new(client_id, host, port), 256);
    client.subscribe(filter, QoS::AtLeastOnce)?;
    let mut records = Vec::new();
    while count.is_none_or(|n| records.len() < n) {
        match connection.recv_timeout(idle) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => eprintln!("reading {filter} from {url}"),
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => records.push(UplinkRecord {
                origin: format!("{url} {}", p.topic),
                id: None,
                body: p.payload.to_vec(),
            }),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("{url}: {e}"),
            Err(_) => break,
        }
    }
    Ok(records)
}
