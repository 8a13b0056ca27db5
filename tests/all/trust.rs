//! The trust chain end to end through the real binary: provenance that
//! `edgeward verify` checks offline, and privacy that only the tenants' app
//! can open.

use crate::support::{edgeward, fast_config, read_jsonl, stderr, table, trust_store};
use toml::Table;

/// Two simulated hours of the medical profile into `dir`; returns the uplink file.
fn run_medical(dir: &std::path::Path) -> std::path::PathBuf {
    let config = fast_config("medical.toml", dir, |c| {
        table(c, "sim").insert("duration-s".into(), 7200.into());
    });
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("uplink.jsonl")
}

/// Every countersigned reading verifies offline with public keys only; a
/// tampered one, or one checked against the wrong gateway key, does not.
#[test]
fn provenance_verifies_offline_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let uplink = run_medical(dir.path());
    let trust = trust_store(dir.path(), &["wearable-1"], "ward-7-gw");

    let out = edgeward(&["verify", "--trust", trust.to_str().unwrap(), uplink.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("120 passed, 0 failed"), "{}", stderr(&out));

    let out = edgeward(&["verify", "--json", "--trust", trust.to_str().unwrap(), uplink.to_str().unwrap()]);
    let first: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let verdict = &first["verdict"];
    assert_eq!(verdict["provenance"], "sensor-signed");
    assert_eq!(verdict["gateways"][0]["kid"], "ward-7-gw");
    let modules: Vec<&str> = verdict["gateways"][0]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["vitals", "countersign"], "the countersignature names the code that handled it");

    // Flip one byte of one message's body.
    let mut records = read_jsonl(&uplink);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body = b64.decode(records[5]["body"].as_str().unwrap()).unwrap();
    let middle = body.len() / 2;
    body[middle] ^= 0x01;
    records[5]["body"] = b64.encode(body).into();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let out = edgeward(&["verify", "--trust", trust.to_str().unwrap(), tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("119 passed, 1 failed"), "{}", stderr(&out));

    // A verifier that trusts another gateway key refuses every countersignature.
    let text = std::fs::read_to_string(&trust).unwrap();
    let other = crate::support::edgeward(&["keygen", dir.path().join("other.key").to_str().unwrap()]);
    let other_key = String::from_utf8(other.stdout).unwrap();
    let wrong = dir.path().join("wrong-trust.toml");
    let gateway_line = text.lines().last().unwrap();
    std::fs::write(&wrong, text.replace(gateway_line, &format!("ward-7-gw = \"{}\"", other_key.trim())))
        .unwrap();
    let out = edgeward(&["verify", "--trust", wrong.to_str().unwrap(), uplink.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("countersignature does not verify"));
}

/// A restart continues the sensor's counter and replay window: nothing is
/// refused as a replay, and the second run's readings verify too.
#[test]
fn restart_keeps_counters_and_replay_state() {
    let dir = tempfile::tempdir().unwrap();
    run_medical(dir.path());
    let config = dir.path().join("edgeward.toml");
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("replays=0"), "{}", stderr(&out));
    assert!(stderr(&out).contains("forwarded=120"), "{}", stderr(&out));
    let out = edgeward(&["sensor", "reset", "wearable-1", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("replay counter forgotten"));
}

/// Sealed messages show the broker nothing: opaque topics, equal sizes, no
/// names or values; the tenants' app opens and verifies every one and draws
/// them; another key opens none.
#[test]
fn privacy_only_the_app_can_open() {
    let dir = tempfile::tempdir().unwrap();
    let app_key = dir.path().join("app.key");
    let out = edgeward(&["keygen", "--kind", "x25519", app_key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let app_public = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let config = fast_config("home.toml", dir.path(), |c| {
        table(c, "sim").insert("duration-s".into(), 21600.into());
        let mut recipient = Table::new();
        recipient.insert("kid".into(), "tenant-app".into());
        recipient.insert("key".into(), app_public.clone().into());
        table(table(c, "recipients"), "tenants")
            .insert("keys".into(), vec![toml::Value::from(recipient)].into());
    });
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let uplink = dir.path().join("uplink.jsonl");
    let mut records = read_jsonl(&uplink);
    for record in &mut records {
        use base64::Engine as _;
        let body =
            base64::engine::general_purpose::STANDARD.decode(record["body"].as_str().unwrap()).unwrap();
        // Ciphertext only: the readable words of the plaintext never appear.
        for secret in [&b"living-room"[..], b"bedroom", b"temperature"] {
            assert!(!body.windows(secret.len()).any(|w| w == secret), "a body leaks {secret:?}");
        }
        // Nor anywhere else in what the broker sees (the body aside: random
        // base64 may spell anything short).
        let mut metadata = record.clone();
        metadata.as_object_mut().unwrap().remove("body");
        let metadata = metadata.to_string();
        for secret in ["living-room", "bedroom", "temperature", "Cel"] {
            assert!(!metadata.contains(secret), "the uplink leaks `{secret}`: {metadata}");
        }
    }
    assert_eq!(records.len(), 2 * 72);
    let sizes: std::collections::BTreeSet<usize> =
        records.iter().map(|r| r["body"].as_str().unwrap().len()).collect();
    assert_eq!(sizes.len(), 1, "padding makes every sealed message the same size: {sizes:?}");
    let topics: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r["topic"].as_str().unwrap()).collect();
    assert_eq!(topics.len(), 2);
    assert!(topics.iter().all(|t| t.starts_with("home/") && t.len() == "home/".len() + 16));

    // The gateway's heating control kept working locally meanwhile.
    assert!(!read_jsonl(&dir.path().join("actuator.jsonl")).is_empty());

    let gw_pub = std::fs::read_to_string(dir.path().join("keys/gateway.key.pub")).unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, format!("[gateways]\nflat-12-gw = \"{}\"\n", gw_pub.trim())).unwrap();
    let svg = dir.path().join("chart.svg");
    let args = |key: &str, svg: Option<&str>| {
        let mut a = vec!["open", "--key", key, "--kid", "tenant-app", "--trust", trust.to_str().unwrap()];
        if let Some(svg) = svg {
            a.extend(["--svg", svg]);
        }
        a.push(uplink.to_str().unwrap());
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let a = args(app_key.to_str().unwrap(), Some(svg.to_str().unwrap()));
    let out = edgeward(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("144 opened and verified, 0 failed"), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("a4c138000001 temperature (Cel)"), "{shown}");
    assert!(
        std::fs::read_to_string(&svg).unwrap().starts_with("<svg")
            || std::fs::read_to_string(&svg).unwrap().starts_with("<?xml")
    );

    let stranger = dir.path().join("stranger.key");
    assert!(edgeward(&["keygen", "--kind", "x25519", stranger.to_str().unwrap()]).status.success());
    let a = args(stranger.to_str().unwrap(), None);
    let out = edgeward(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("0 opened and verified, 144 failed"), "{}", stderr(&out));
}
