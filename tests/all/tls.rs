//! The MQTT uplink over TLS (rustls) against a real Mosquitto with a TLS
//! listener and certificates made in the test: delivery with mutual TLS,
//! and the failures an operator meets (wrong name, unknown CA, no client
//! certificate) named in the log once, with the messages kept in the outbox.

use crate::support::broker::{Broker, BrokerTls, Subscriber};
use crate::support::{edgeward, fast_config, stderr, table};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Table;

/// PEM files of a test PKI, under one folder.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a broker certificate for `localhost`/127.0.0.1, one for another
    /// name, a gateway (client) certificate, and a second, unrelated CA.
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki { dir: dir.to_path_buf() };
        let ca = pki.ca("ca", "edgeward test CA");
        pki.leaf(&ca, "server", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        pki.leaf(&ca, "other-server", &["broker.example"], ExtendedKeyUsagePurpose::ServerAuth);
        pki.leaf(&ca, "client", &["ward-7-gw"], ExtendedKeyUsagePurpose::ClientAuth);
        pki.ca("stranger-ca", "someone else's CA");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ca(&self, name: &str, cn: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, cn);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), issuer.pem()).unwrap();
        issuer
    }

    fn leaf(
        &self,
        ca: &CertifiedIssuer<'static, KeyPair>,
        name: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        let key_path = self.path(&format!("{name}.key"));
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A broker listener presenting certificate `server` (`server.pem`, `server.key`).
    fn broker<'a>(
        &'a self,
        server: &str,
        paths: &'a mut Vec<PathBuf>,
        require_certificate: bool,
    ) -> BrokerTls<'a> {
        *paths = vec![
            self.path("ca.pem"),
            self.path(&format!("{server}.pem")),
            self.path(&format!("{server}.key")),
        ];
        BrokerTls { ca: &paths[0], cert: &paths[1], key: &paths[2], require_certificate }
    }
}

/// The medical profile for `hours` simulated hours, uplink over TLS to `url`
/// trusting `ca` and, when `client` is set, presenting the client certificate.
fn medical_tls(dir: &Path, url: &str, hours: u64, pki: &Pki, ca: &str, client: bool) -> PathBuf {
    fast_config("medical.toml", dir, |c: &mut Table| {
        table(c, "sim").insert("duration-s".into(), ((hours * 3600) as i64).into());
        let mut uplink = Table::new();
        uplink.insert("type".into(), "mqtt".into());
        uplink.insert("url".into(), url.into());
        uplink.insert("ca-file".into(), pki.path(&format!("{ca}.pem")).display().to_string().into());
        if client {
            uplink.insert("client-cert".into(), pki.path("client.pem").display().to_string().into());
            uplink.insert("client-key".into(), pki.path("client.key").display().to_string().into());
        }
        c.insert("uplink".into(), uplink.into());
        table(c, "outbox").insert("drain-timeout-s".into(), 1.0.into());
    })
}

/// `edgeward status --json` of the gateway configured by `config`.
fn status(config: &Path) -> serde_json::Value {
    let out = edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// With mutual TLS every message arrives, acknowledged, over an encrypted link.
#[test]
fn uplink_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut paths = Vec::new();
    let broker = Broker::start_tls(&dir.path().join("broker"), 0, &pki.broker("server", &mut paths, true));
    let sub = Subscriber::start(broker.client_port(), "cloud", "medical/#");
    let config = medical_tls(dir.path(), &broker.url(), 2, &pki, "ca", true);
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("uplink connected to {}", broker.url())), "{log}");
    let got = sub.collect(120, Duration::from_secs(10));
    assert_eq!(got.len(), 120, "{log}");
    let status = status(&config);
    assert_eq!(status["counters"]["uplink_acked"], 120);
    assert_eq!(status["outbox"]["messages"], 0);
}

/// A broker certificate for another name is refused: the log names the
/// broker and the name problem once, the gateway runs on, the messages wait
/// in the outbox and go out once the broker presents the right certificate.
#[test]
fn wrong_server_name_keeps_messages_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut paths = Vec::new();
    let mut broker =
        Broker::start_tls(&dir.path().join("broker"), 0, &pki.broker("other-server", &mut paths, false));
    let config = medical_tls(dir.path(), &broker.url(), 2, &pki, "ca", false);
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let complaint = format!("uplink cannot connect to {}", broker.url());
    assert!(log.contains(&complaint), "{log}");
    assert!(log.contains("not valid for the name `localhost`"), "{log}");
    assert_eq!(log.matches(&complaint).count(), 1, "logged once, not per retry: {log}");
    let before = status(&config);
    assert_eq!(before["counters"]["forwarded"], 120, "the gateway kept working");
    assert_eq!(before["outbox"]["messages"], 120, "everything waits in the outbox");
    assert!(before["counters"]["uplink_connect_failures"].as_u64().unwrap() >= 1);
    assert_eq!(before["counters"]["uplink_acked"], 0);

    // The broker gets the right certificate; a run without new readings delivers the backlog.
    let port = broker.port;
    broker.stop();
    drop(broker);
    let broker =
        Broker::start_tls(&dir.path().join("broker"), port, &pki.broker("server", &mut paths, false));
    let sub = Subscriber::start(broker.client_port(), "cloud", "medical/#");
    let config = medical_tls(dir.path(), &broker.url(), 0, &pki, "ca", false);
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = status(&config);
    assert_eq!(after["outbox"]["messages"], 0, "{}", stderr(&out));
    assert_eq!(after["counters"]["uplink_acked"], 120);
    assert_eq!(sub.collect(120, Duration::from_secs(10)).len(), 120);
}

/// A broker certificate from a CA the gateway does not trust is refused, named as such.
#[test]
fn unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut paths = Vec::new();
    let broker = Broker::start_tls(&dir.path().join("broker"), 0, &pki.broker("server", &mut paths, false));
    let config = medical_tls(dir.path(), &broker.url(), 1, &pki, "stranger-ca", false);
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("uplink cannot connect to {}", broker.url())), "{log}");
    assert!(log.contains("not signed by a CA this gateway trusts"), "{log}");
    assert_eq!(status(&config)["outbox"]["messages"], 60);
}

/// A broker that requires a client certificate refuses a gateway without
/// one, and the log says what is missing.
#[test]
fn missing_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut paths = Vec::new();
    let broker = Broker::start_tls(&dir.path().join("broker"), 0, &pki.broker("server", &mut paths, true));
    let config = medical_tls(dir.path(), &broker.url(), 1, &pki, "ca", false);
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("uplink cannot connect to {}", broker.url())), "{log}");
    assert!(log.contains("client certificate"), "{log}");
    let status = status(&config);
    assert_eq!(status["outbox"]["messages"], 60);
    assert_eq!(status["counters"]["uplink_acked"], 0);
}

/// Alarms and actuator commands reach their local broker over mutual TLS too.
#[test]
fn local_sinks_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut paths = Vec::new();
    let broker = Broker::start_tls(&dir.path().join("broker"), 0, &pki.broker("server", &mut paths, true));
    let sub = Subscriber::start(broker.client_port(), "panel", "edgeward/#");
    let url = broker.url();
    let config = fast_config("demo.toml", dir.path(), |c: &mut Table| {
        for kind in ["alarm", "actuator"] {
            let mut sink = Table::new();
            sink.insert("type".into(), "mqtt".into());
            sink.insert("url".into(), url.clone().into());
            sink.insert("protocol".into(), 5.into());
            sink.insert("ca-file".into(), pki.path("ca.pem").display().to_string().into());
            sink.insert("client-cert".into(), pki.path("client.pem").display().to_string().into());
            sink.insert("client-key".into(), pki.path("client.key").display().to_string().into());
            c.insert(kind.into(), sink.into());
        }
    });
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("alarm connected to {url}")), "{log}");
    let got = sub.collect(1000, Duration::from_secs(3));
    assert!(
        got.iter().any(|(t, _)| t.starts_with("edgeward/demo-gw/alarm/wearable-1/fever")),
        "no alarm: {log}"
    );
    assert!(
        got.iter().any(|(t, _)| t.starts_with("edgeward/demo-gw/actuator/heating/")),
        "no command: {log}"
    );
}
