//! Tools beside the daemon: `decode` for raw frames, and the cloud's and
//! the app's side of the trust chain, `verify` and `open`. The latter two read the uplink's JSON-lines records (what a `type = "file"` uplink
//! sink writes), from a file or standard input.

pub mod decode;
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
pub fn read_records(input: Option<&Path>) -> anyhow::Result<Vec<UplinkRecord>> {
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
