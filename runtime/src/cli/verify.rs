//! `edgeward verify`: check the provenance of uplink messages offline.

use super::{Input, read_input};
use edgeward::trust::verify::{TrustStore, verify};
use serde_json::json;
use std::path::Path;

/// Verify every record of `input` against `trust`; true when all pass.
pub fn run(input: &Input<'_>, trust: &Path, as_json: bool) -> anyhow::Result<bool> {
    let trust = TrustStore::load(trust)?;
    let mut all_ok = true;
    let (mut passed, mut failed) = (0, 0);
    for record in read_input(input)? {
        let verdict = verify(&record.body, &trust);
        // A record read from a broker has no JSON `id`; the envelope carries it.
        let id = record.id.clone().or_else(|| edgeward_formats::cose::message_id(&record.body));
        all_ok &= verdict.ok;
        if verdict.ok {
            passed += 1
        } else {
            failed += 1
        }
        if as_json {
            println!("{}", json!({"origin": record.origin, "id": id, "verdict": verdict}));
        } else {
            let chain: Vec<String> = verdict
                .gateways
                .iter()
                .map(|g| format!("{} {}", g.kid, if g.valid { "ok" } else { "INVALID" }))
                .collect();
            let sensor = match (&verdict.sensor_kid, verdict.sensor_signature_valid) {
                (Some(kid), Some(true)) => format!("sensor {kid} #{} ok, ", verdict.seq.unwrap_or_default()),
                (Some(kid), _) => format!("sensor {kid} INVALID, "),
                _ => String::new(),
            };
            let status = if verdict.ok { "ok  " } else { "FAIL" };
            let id = id.map(|id| format!(" [{id}]")).unwrap_or_default();
            println!(
                "{status} {}{id} {}: {sensor}gateway {}",
                record.origin,
                verdict.provenance,
                chain.join(", ")
            );
            for problem in &verdict.problems {
                println!("     {problem}");
            }
        }
    }
    eprintln!("{passed} passed, {failed} failed");
    Ok(all_ok)
}
