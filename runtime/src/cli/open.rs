//! `edgeward open`: the tenant app's side. Decrypt sealed uplink messages
//! with the app's private key, verify the provenance inside, aggregate the
//! readings per sensor and window, and show them.

use super::{Input, read_input};
use anyhow::Context;
use edgeward::report::{self, Point};
use edgeward::trust::keys::{self, KeyKind};
use edgeward::trust::seal;
use edgeward::trust::verify::{TrustStore, verify};
use std::path::Path;

/// What to open and how to show it.
pub struct Options<'a> {
    pub input: Input<'a>,
    pub key: &'a Path,
    pub kid: &'a str,
    pub trust: &'a Path,
    pub window_s: u64,
    pub svg: Option<&'a Path>,
    pub as_json: bool,
}

/// Open every record; true when all decrypted and verified.
pub fn run(opts: Options<'_>) -> anyhow::Result<bool> {
    let secret = keys::read_secret(KeyKind::X25519, opts.key)?;
    let trust = TrustStore::load(opts.trust)?;
    let mut points = Vec::new();
    let (mut opened, mut failed) = (0, 0);
    for record in read_input(&opts.input)? {
        let inner = match seal::open(&secret, opts.kid.as_bytes(), b"", &record.body) {
            Ok(inner) => inner,
            Err(e) => {
                failed += 1;
                eprintln!("{}: cannot open: {e}", record.origin);
                continue;
            }
        };
        let verdict = verify(&inner, &trust);
        if !verdict.ok {
            failed += 1;
            eprintln!("{}: opened, but provenance fails: {}", record.origin, verdict.problems.join("; "));
            continue;
        }
        opened += 1;
        let Some(pack) = verdict.reading else { continue };
        let sensor = verdict.sensor_kid.clone().unwrap_or_else(|| sensor_label(pack.base_name.as_deref()));
        let t_ms = pack.base_time_ms.unwrap_or_default();
        for m in pack.measurements {
            let series = if m.unit.is_empty() {
                format!("{sensor} {}", m.name)
            } else {
                format!("{sensor} {} ({})", m.name, m.unit)
            };
            points.push(Point { series, t_ms, value: m.value });
        }
    }
    let aggregated = report::aggregate(&points, opts.window_s.max(1) * 1000);
    if opts.as_json {
        println!("{}", serde_json::to_string(&aggregated)?);
    } else {
        print!("{}", report::render_text(&aggregated, 60));
    }
    if let Some(path) = opts.svg {
        let title = format!("Readings opened by {}", opts.kid);
        std::fs::write(path, report::render_svg(&aggregated, &title))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    eprintln!("{opened} opened and verified, {failed} failed");
    Ok(failed == 0)
}

/// A readable sensor label from a SenML base name (`urn:dev:mac:a4c138000001:`).
fn sensor_label(base_name: Option<&str>) -> String {
    let name = base_name.unwrap_or("unknown");
    let name = name.strip_prefix("urn:dev:mac:").unwrap_or(name).trim_end_matches(':');
    name.to_string()
}
