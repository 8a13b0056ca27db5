//! `edgeward decode`: one raw frame to JSON, through the gateway's own
//! decoders (the same code the daemon runs).

use anyhow::{Context, bail};
use edgeward::config::{SensorFormat, format_mac, parse_mac};
use edgeward::decode::{Frame, Payload, SensorRef, bthome, decode_frame};
use edgeward::trust::keys;
use edgeward_formats::cose;
use serde_json::json;

pub fn run(
    hex_bytes: &str,
    signed: bool,
    key: Option<&str>,
    kid: Option<&str>,
    bindkey: Option<&str>,
    mac: Option<&str>,
) -> anyhow::Result<()> {
    let bytes = hex::decode(hex_bytes.trim()).context("the frame is not hex")?;
    let mac = match mac {
        Some(text) => Some(parse_mac(text).with_context(|| format!("`{text}` is not AA:BB:CC:DD:EE:FF"))?),
        None => None,
    };
    let out =
        if signed { signed_reading(&bytes, key, kid, mac)? } else { bthome_packet(&bytes, bindkey, mac)? };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn bthome_packet(
    bytes: &[u8],
    bindkey: Option<&str>,
    mac: Option<[u8; 6]>,
) -> anyhow::Result<serde_json::Value> {
    let bindkey: Option<[u8; 16]> = match bindkey {
        Some(text) => Some(
            hex::decode(text)
                .ok()
                .and_then(|k| k.try_into().ok())
                .context("the bindkey is not 16 bytes of hex")?,
        ),
        None => None,
    };
    let packet = bthome::decode(bytes, bindkey.as_ref(), mac)?;
    Ok(json!({
        "format": "bthome",
        "encrypted": packet.encrypted,
        "trigger_based": packet.trigger_based,
        "packet_id": packet.packet_id,
        "counter": packet.counter,
        "measurements": packet.values.iter()
            .map(|v| json!({"name": v.name, "unit": v.unit, "value": v.value}))
            .collect::<Vec<_>>(),
    }))
}

fn signed_reading(
    bytes: &[u8],
    key: Option<&str>,
    kid: Option<&str>,
    mac: Option<[u8; 6]>,
) -> anyhow::Result<serde_json::Value> {
    let Some(key) = key else {
        // Structure only: say so, loudly.
        let sign1 = cose::parse_sign1(bytes)?;
        return Ok(json!({
            "format": "signed",
            "signature": "not checked (no --key)",
            "alg": sign1.alg(),
            "kid": String::from_utf8_lossy(sign1.kid()),
            "seq": sign1.seq(),
            "countersignatures": sign1.countersignatures().len(),
        }));
    };
    let key = keys::parse_verifying_key(key, "--key")?;
    let own_kid = cose::parse_sign1(bytes).map(|s| String::from_utf8_lossy(s.kid()).into_owned()).ok();
    let kid = match (kid, own_kid.as_deref()) {
        (Some(kid), _) => kid.to_string(),
        (None, Some(kid)) => kid.to_string(),
        (None, None) => bail!("not a COSE_Sign1"),
    };
    let address = format_mac(&mac.unwrap_or_default());
    let sensor = SensorRef {
        name: &kid,
        address: &address,
        format: SensorFormat::SignedGatt,
        kid: &kid,
        key: Some(&key),
        bindkey: None,
    };
    let frame = Frame {
        address: mac.unwrap_or_default(),
        rssi: None,
        received_ms: edgeward::clock::wall_ms(),
        entered: std::time::Instant::now(),
        payload: Payload::Notification { data: bytes.to_vec() },
    };
    let message = decode_frame(&frame, &sensor)?;
    let r = &message.reading;
    Ok(json!({
        "format": "signed",
        "signature": "valid",
        "kid": kid,
        "seq": r.seq,
        "sensor_time_ms": r.sensor_time_ms,
        "authenticity": r.authenticity.as_str(),
        "measurements": r.measurements.iter()
            .map(|m| json!({"name": m.name, "unit": m.unit, "value": m.value}))
            .collect::<Vec<_>>(),
    }))
}
