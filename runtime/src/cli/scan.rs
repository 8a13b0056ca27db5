//! `edgeward scan`: nearby Bluetooth LE devices, live, with their BTHome
//! readings decoded by the gateway's own decoder, so that an installer can
//! find a sensor's address for the configuration.
//!
//! A device is printed when first heard and again whenever its name or
//! service data changes (an RSSI change alone is not news). Remembered
//! devices that are not in range (BlueZ reports no RSSI for them) are skipped.

use anyhow::{Context, bail};
use bluer::{AdapterEvent, Address, Device, Uuid};
use edgeward::decode::bthome::{self, BthomeError};
use edgeward::source::ble::{self, BTHOME_UUID, SENSOR_SERVICE_UUID};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Scan on `adapter` (default: BlueZ's default) for `seconds` (0: until
/// interrupted), printing a line per news, as JSON with `as_json`.
pub fn run(adapter: Option<&str>, seconds: u64, as_json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(scan(adapter, seconds, as_json))
}

/// What was last printed for a device.
#[derive(PartialEq)]
struct Sighting {
    name: Option<String>,
    service_data: BTreeMap<Uuid, Vec<u8>>,
}

async fn scan(adapter: Option<&str>, seconds: u64, as_json: bool) -> anyhow::Result<()> {
    let adapter = ble::open_adapter(adapter).await?;
    ble::hear_every_advertisement(&adapter).await?;
    let mut events = Box::pin(adapter.discover_devices_with_changes().await.context("starting discovery")?);
    if !as_json {
        let until = if seconds == 0 { "until interrupted".to_string() } else { format!("for {seconds} s") };
        eprintln!("scanning on {} {until}…", adapter.name());
    }
    let deadline = async {
        match seconds {
            0 => std::future::pending().await,
            s => tokio::time::sleep(Duration::from_secs(s)).await,
        }
    };
    tokio::pin!(deadline);
    let mut printed: HashMap<Address, Sighting> = HashMap::new();
    let mut bthome_devices = 0;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            event = events.next() => match event {
                Some(AdapterEvent::DeviceAdded(address)) => {
                    let device = adapter.device(address)?;
                    // A device can vanish between the event and the reads: skip it then.
                    let Ok(Some(rssi)) = device.rssi().await else { continue };
                    let Ok(sighting) = sighting(&device).await else { continue };
                    if printed.get(&address) == Some(&sighting) {
                        continue;
                    }
                    let signed = device.uuids().await.ok().flatten().is_some_and(|u| u.contains(&SENSOR_SERVICE_UUID));
                    if !printed.contains_key(&address) && sighting.service_data.contains_key(&BTHOME_UUID) {
                        bthome_devices += 1;
                    }
                    print(address, rssi, &sighting, signed, as_json);
                    printed.insert(address, sighting);
                }
                Some(_) => {}
                None => bail!("discovery ended: the adapter was removed or powered off"),
            },
        }
    }
    if !as_json {
        eprintln!("{} devices heard, {bthome_devices} with BTHome data", printed.len());
    }
    Ok(())
}

async fn sighting(device: &Device) -> bluer::Result<Sighting> {
    let name = device.name().await?;
    let service_data = device.service_data().await?.unwrap_or_default().into_iter().collect();
    Ok(Sighting { name, service_data })
}

/// The BTHome reading in `data`, as JSON, or why it cannot be read.
fn bthome_json(data: &[u8], address: Address) -> Result<Value, String> {
    match bthome::decode(data, None, Some(address.0)) {
        Ok(packet) => Ok(json!({
            "packet_id": packet.packet_id,
            "trigger_based": packet.trigger_based,
            "measurements": packet.values.iter()
                .map(|v| json!({"name": v.name, "unit": v.unit, "value": v.value}))
                .collect::<Vec<_>>(),
        })),
        Err(BthomeError::MissingKey { .. }) => Err("encrypted (needs the sensor's bindkey)".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn print(address: Address, rssi: i16, sighting: &Sighting, signed: bool, as_json: bool) {
    let bthome = sighting.service_data.get(&BTHOME_UUID).map(|data| bthome_json(data, address));
    if as_json {
        let line = json!({
            "address": ble::address_text(address),
            "name": sighting.name,
            "rssi": rssi,
            "service_data": sighting.service_data.iter()
                .map(|(uuid, data)| (uuid.to_string(), Value::from(hex::encode(data))))
                .collect::<serde_json::Map<_, _>>(),
            "bthome": bthome.as_ref().and_then(|b| b.as_ref().ok()),
            "bthome_error": bthome.as_ref().and_then(|b| b.as_ref().err()),
            "edgeward_signed_sensor": signed,
        });
        println!("{line}");
        return;
    }
    let mut line = format!(
        "{}  {rssi:>4} dBm  {:<20}",
        ble::address_text(address),
        sighting.name.as_deref().unwrap_or("-")
    );
    match &bthome {
        Some(Ok(packet)) => {
            line.push_str("  BTHome");
            for m in packet["measurements"].as_array().into_iter().flatten() {
                line.push_str(&format!(" {}={}", m["name"].as_str().unwrap_or("?"), m["value"]));
                if let Some(unit) = m["unit"].as_str().filter(|u| !u.is_empty()) {
                    line.push_str(&format!(" {unit}"));
                }
            }
        }
        Some(Err(why)) => line.push_str(&format!("  BTHome: {why}")),
        None => {}
    }
    for (uuid, data) in sighting.service_data.iter().filter(|(uuid, _)| **uuid != BTHOME_UUID) {
        line.push_str(&format!("  service data {uuid}: {}", hex::encode(data)));
    }
    if signed {
        line.push_str("  edgeward signed sensor (format = \"signed-gatt\")");
    }
    println!("{line}");
}
