//! Interoperability: what the real gateway signs and seals is verified and
//! opened by implementations nobody on the team wrote (pycose, pyhpke,
//! cryptography and cbor2, driven by the scripts in tests/interop/), and a
//! reading signed with pycose is accepted by the gateway.
//!
//! Needs `python3` with `venv` and access to PyPI: the packages pinned in
//! tests/interop/requirements.txt are installed once into
//! target/interop-venv and reused while that file is unchanged.

use crate::support::{edgeward, read_jsonl, repo_root, stderr};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use toml::Table;

/// The venv's python, with the pinned packages installed.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
        let venv = target.join("interop-venv");
        let requirements = repo_root().join("tests/interop/requirements.txt");
        let wanted = fs::read_to_string(&requirements).unwrap();
        // The OnceLock serialises this process's tests; the file lock other
        // test processes sharing target/.
        fs::create_dir_all(&target).unwrap();
        let lock = fs::File::create(target.join("interop-venv.lock")).unwrap();
        lock.lock().unwrap();
        // Written last, so a half-built venv is rebuilt rather than reused.
        let stamp = venv.join("installed-requirements.txt");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let mut venv_cmd = Command::new("python3");
            succeed(venv_cmd.args(["-m", "venv", "--clear"]).arg(&venv), "python3 -m venv");
            let mut pip = Command::new(venv.join("bin/python"));
            pip.args(["-m", "pip", "install", "--disable-pip-version-check", "-r"]).arg(&requirements);
            succeed(&mut pip, "pip install -r tests/interop/requirements.txt");
            fs::write(&stamp, wanted).unwrap();
        }
        venv.join("bin/python")
    })
}

/// Runs `command`, showing its output only if it fails.
fn succeed(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
}

/// Runs tests/interop/`script` with `args` in the venv.
fn script(script: &str, args: &[&Path]) -> Output {
    Command::new(python())
        .arg(repo_root().join("tests/interop").join(script))
        .args(args)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python")
}

/// The JSON summary a script prints on success; panics with its output otherwise.
fn passes(out: Output) -> Value {
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

/// `configs/NAME.toml` made self-contained and fast: state, keys and the
/// uplink file under the config's folder, two simulated hours as fast as
/// possible, alarms and actuators off, and as sensors a wearable that signs
/// its readings and a room sensor that does not, both in `profile`.
fn fast_config(name: &str, profile: &str) -> Table {
    let text = fs::read_to_string(repo_root().join(format!("configs/{name}.toml"))).unwrap();
    let mut config: Table = text.parse().unwrap();
    table(&mut config, "gateway").insert("state-dir".into(), "state".into());
    table(table(&mut config, "signer"), "gateway").insert("key".into(), "state/gateway.key".into());
    let sim = table(&mut config, "sim");
    sim.insert("speed".into(), 0.into());
    sim.insert("duration-s".into(), 7200.into());
    // Deadlines are wall-clock; a debug build on a loaded machine can miss a tight one.
    table(&mut config, "sandbox").insert("call-timeout-ms".into(), 5000.into());
    config.insert("uplink".into(), toml::toml! { type = "file" path = "uplink.jsonl" }.into());
    for sink in ["alarm", "actuator"] {
        config.insert(sink.into(), toml::toml! { type = "none" }.into());
    }
    let mut wearable = toml::toml! {
        name = "wearable-1"
        address = "C0:FF:EE:00:00:01"
        format = "signed-gatt"
        source = "sim"
        sim = { model = "wearable", interval-s = 60, key = "state/wearable-1.key" }
    };
    let mut room = toml::toml! {
        name = "living-room"
        address = "A4:C1:38:00:00:01"
        source = "sim"
        sim = { model = "room", interval-s = 300 }
    };
    wearable.insert("profile".into(), profile.into());
    room.insert("profile".into(), profile.into());
    config.insert("sensor".into(), vec![toml::Value::from(wearable), room.into()].into());
    config
}

/// The table at `key` (created when absent).
fn table<'a>(parent: &'a mut Table, key: &str) -> &'a mut Table {
    parent.entry(key).or_insert_with(|| Table::new().into()).as_table_mut().expect("a table")
}

/// Writes `config` into `dir` and runs the gateway on it; returns the uplink file.
fn run_gateway(dir: &Path, config: &Table) -> PathBuf {
    let path = dir.join("edgeward.toml");
    fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    let out = edgeward(&["run", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("uplink.jsonl")
}

/// A copy of `uplink` at `to` whose first sensor-signed record has one bit
/// flipped in the first occurrence of `needle` in its body.
fn tamper(uplink: &Path, needle: &[u8], to: &Path) {
    let mut records = read_jsonl(uplink);
    let record = records.iter_mut().find(|r| r["authenticity"] == "sensor-signed").unwrap();
    let mut body = BASE64.decode(record["body"].as_str().unwrap()).unwrap();
    let at = body.windows(needle.len()).position(|w| w == needle).expect("the needle is in the body");
    body[at] ^= 1;
    record["body"] = BASE64.encode(body).into();
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    fs::write(to, lines.join("\n") + "\n").unwrap();
}

/// pycose verifies every sensor signature and gateway attestation, and an
/// RFC 9338 checker of our own every countersignature; one flipped bit fails.
#[test]
fn signed_uplink_verifies_with_pycose_and_rfc9338() {
    let dir = tempfile::tempdir().unwrap();
    let uplink = run_gateway(dir.path(), &fast_config("medical", "provenance"));
    let sensor = dir.path().join("state/wearable-1.key.pub");
    let gateway = dir.path().join("state/gateway.key.pub");

    let summary = passes(script("check_signed.py", &[&uplink, &sensor, &gateway]));
    assert_eq!(summary["verified"], read_jsonl(&uplink).len());
    assert!(summary["countersigned"].as_u64() > Some(0), "{summary}");
    assert!(summary["gateway-attested"].as_u64() > Some(0), "{summary}");

    // "temperature" is only in the payload (covered by the sensor's
    // signature), "vitals" only in the countersignature's module list.
    for (needle, why) in [(&b"temperature"[..], "sensor COSE_Sign1"), (b"vitals", "countersignature")] {
        let tampered = dir.path().join("tampered.jsonl");
        tamper(&uplink, needle, &tampered);
        let out = script("check_signed.py", &[&tampered, &sensor, &gateway]);
        assert!(!out.status.success(), "a flipped bit in {why} went unnoticed");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
}

/// pyhpke and cryptography open every record sealed to one app
/// (COSE_Encrypt0) or two (COSE_Encrypt) and verify what is inside; a wrong
/// key opens nothing.
#[test]
fn sealed_uplink_opens_with_pyhpke() {
    let dir = tempfile::tempdir().unwrap();
    let apps: Vec<(&str, PathBuf, String)> = ["app-1", "app-2"]
        .into_iter()
        .map(|kid| {
            let secret = dir.path().join(format!("{kid}.key"));
            let out = edgeward(&["keygen", "--kind", "x25519", secret.to_str().unwrap()]);
            assert!(out.status.success(), "{}", stderr(&out));
            let public = fs::read_to_string(secret.with_extension("key.pub")).unwrap();
            (kid, secret, public.trim().to_string())
        })
        .collect();

    for (count, cose_type) in [(1, "cose-encrypt0"), (2, "cose-encrypt")] {
        let run = dir.path().join(format!("{count}-recipients"));
        fs::create_dir(&run).unwrap();
        let mut config = fast_config("home", "privacy");
        let keys: Vec<toml::Value> = apps[..count]
            .iter()
            .map(|(kid, _, public)| {
                let mut key = Table::new();
                key.insert("kid".into(), (*kid).into());
                key.insert("key".into(), public.as_str().into());
                key.into()
            })
            .collect();
        table(table(&mut config, "recipients"), "tenants").insert("keys".into(), keys.into());
        let uplink = run_gateway(&run, &config);
        let records = read_jsonl(&uplink);
        let content_type = format!("application/cose; cose-type=\"{cose_type}\"");
        assert!(records.iter().all(|r| r["content_type"] == content_type.as_str()), "{}", records[0]);

        let sensor = run.join("state/wearable-1.key.pub");
        let gateway = run.join("state/gateway.key.pub");
        for (kid, secret, _) in &apps[..count] {
            let summary =
                passes(script("open_sealed.py", &[&uplink, secret, Path::new(kid), &sensor, &gateway]));
            assert_eq!(summary["opened"], records.len());
            assert!(summary["countersigned"].as_u64() > Some(0), "{summary}");
            assert!(summary["gateway-attested"].as_u64() > Some(0), "{summary}");
            // home.toml's pad-to: every plaintext is padded to the same size.
            assert_eq!(summary["padded_sizes"], serde_json::json!([512]));
        }
        // The last recipient's kid with another app's key.
        let (kid, _, _) = &apps[count - 1];
        let wrong = &apps[count % 2].1;
        let out = script("open_sealed.py", &[&uplink, wrong, Path::new(kid), &sensor, &gateway]);
        assert!(!out.status.success(), "{count} recipient(s): opened with the wrong key");
        assert!(stderr(&out).contains("OpenError"), "{}", stderr(&out));
    }
}

/// The gateway accepts a reading signed by pycose, with its counter and
/// temperature, and refuses it with one signature byte flipped.
#[test]
fn gateway_accepts_a_reading_signed_by_pycose() {
    let made = passes(script("make_sign1.py", &[]));
    let key = made["key"].as_str().unwrap();

    let out = edgeward(&["decode", "--signed", made["hex"].as_str().unwrap(), "--key", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let decoded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decoded["signature"], "valid");
    assert_eq!(decoded["kid"], "py-sensor");
    assert_eq!(decoded["seq"], 42);
    let temperature = &decoded["measurements"][0];
    assert_eq!(temperature["name"], "temperature");
    assert_eq!(temperature["unit"], "Cel");
    assert_eq!(temperature["value"], made["temperature"]);

    let out = edgeward(&["decode", "--signed", made["forged"].as_str().unwrap(), "--key", key]);
    assert!(!out.status.success(), "a forged signature was accepted");
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
}
