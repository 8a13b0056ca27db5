//! The MQTT uplink and the durable outbox against a real Mosquitto broker:
//! QoS 1 round trip, a broker restart and a gateway SIGKILL under load lose
//! nothing, and alarms keep flowing to the local broker while the uplink is down.

use crate::support::broker::{Broker, Subscriber, free_port};
use crate::support::{edgeward_command, fast_config, stderr, table};
use edgeward_formats::cose;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use toml::Table;

/// The medical profile for `hours` simulated hours at `speed`, uplink to `uplink_url`.
fn medical(
    dir: &Path,
    uplink_url: &str,
    hours: u64,
    speed: f64,
    extra: impl FnOnce(&mut Table),
) -> std::path::PathBuf {
    fast_config("medical.toml", dir, |c| {
        table(c, "sim").insert("duration-s".into(), ((hours * 3600) as i64).into());
        table(c, "sim").insert("speed".into(), speed.into());
        let mut uplink = Table::new();
        uplink.insert("type".into(), "mqtt".into());
        uplink.insert("url".into(), uplink_url.into());
        c.insert("uplink".into(), uplink.into());
        table(c, "outbox").insert("drain-timeout-s".into(), 10.0.into());
        extra(c);
    })
}

/// The sensor counters of received countersigned readings, in arrival order.
fn counters(messages: &[(String, Vec<u8>)]) -> Vec<u64> {
    messages
        .iter()
        .filter(|(topic, _)| topic.starts_with("medical/"))
        .map(|(_, body)| cose::parse_sign1(body).expect("a COSE_Sign1").seq().unwrap())
        .collect()
}

/// How many different readings arrived (duplicates are allowed).
fn unique(messages: &[(String, Vec<u8>)]) -> u64 {
    counters(messages).into_iter().collect::<std::collections::BTreeSet<_>>().len() as u64
}

/// Every counter from 1 to `n` arrived; duplicates allowed, order kept per sensor
/// (a resend after a reconnect starts again from the oldest unacknowledged).
fn assert_complete_and_ordered(seqs: &[u64], n: u64) {
    let unique: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique, (1..=n).collect(), "missing messages");
    let first_arrivals: Vec<u64> = {
        let mut seen = std::collections::HashSet::new();
        seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
    };
    assert!(first_arrivals.windows(2).all(|w| w[0] < w[1]), "first arrivals out of order");
}

/// Messages go out with QoS 1 in order, each exactly once on a healthy
/// link, and the retained status ends `offline` after a clean stop.
#[test]
fn uplink_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let sub = Subscriber::start(broker.port, "cloud", "#");
    let config = medical(dir.path(), &broker.url(), 2, 0.0, |_| {});
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = sub.collect(122, Duration::from_secs(10));
    let seqs = counters(&got);
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
    let status: Vec<&[u8]> =
        got.iter().filter(|(t, _)| t == "edgeward/ward-7-gw/status").map(|(_, p)| p.as_slice()).collect();
    assert_eq!(status.last().copied(), Some(&b"offline"[..]), "{status:?}");

    // `edgeward status` tells the same story.
    let out = crate::support::edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["running"], false);
    assert_eq!(status["counters"]["uplink_acked"], 120);
    assert_eq!(status["outbox"]["messages"], 0);
    // Each module of the profile, with its calls (120 messages plus ticks) and latency.
    let modules = status["modules"].as_array().unwrap();
    let names: Vec<&str> = modules.iter().map(|m| m["module"].as_str().unwrap()).collect();
    assert_eq!(names, ["vitals", "countersign"]);
    for m in modules {
        assert_eq!(m["profile"], "provenance");
        assert!(m["calls"].as_u64().unwrap() >= 120, "{m}");
        assert_eq!(m["faults"], 0);
        assert!(m["latency_sum_s"].as_f64().unwrap() > 0.0, "{m}");
        let buckets: u64 = m["latency_buckets"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).sum();
        assert_eq!(buckets, m["calls"].as_u64().unwrap(), "every call in one bucket");
    }
    // One latency sample per message committed to the outbox, quantiles in
    // order; alarms raised by messages have theirs (ticks' alarms have none).
    let to_outbox = &status["latency"]["to_outbox"];
    assert_eq!(to_outbox["count"], 120, "{to_outbox}");
    let quantiles: Vec<f64> =
        ["p50_ms", "p99_ms", "p999_ms"].iter().map(|q| to_outbox[q].as_f64().unwrap()).collect();
    assert!(quantiles[0] > 0.0 && quantiles.is_sorted(), "{to_outbox}");
    let to_alarm = status["latency"]["to_alarm"]["count"].as_u64().unwrap();
    assert!(to_alarm <= status["counters"]["alarms"].as_u64().unwrap(), "{status}");
}

/// A full outbox under `reject-new` refuses new messages and counts them;
/// what it holds stays.
#[test]
fn full_outbox_rejects_new_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let config = medical(dir.path(), &down, 2, 0.0, |c| {
        table(c, "outbox").insert("max-bytes".into(), 4000.into());
        table(c, "outbox").insert("drain-timeout-s".into(), 0.2.into());
    });
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("outbox full: new messages refused"), "{}", stderr(&out));
    let out = crate::support::edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = status["outbox"]["messages"].as_u64().unwrap();
    let rejected = status["counters"]["outbox_rejected"].as_u64().unwrap();
    assert!(kept > 0 && status["outbox"]["bytes"].as_u64().unwrap() <= 4000);
    assert_eq!(kept + rejected, 120, "every message is either kept or counted as refused");
}

/// The broker stopping and coming back mid-run loses nothing.
#[test]
fn broker_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("broker"));
    let sub = Subscriber::start(broker.port, "cloud", "medical/#");
    // Six simulated hours at 3600x: about six seconds of real traffic.
    let config = medical(dir.path(), &broker.url(), 6, 3600.0, |_| {});
    let gateway = edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let out = gateway.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let forwarded: u64 =
        log.split("forwarded=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // Whatever the drain time did not send waits in the outbox: not lost, but
    // not delivered yet either. Deliver it with a run that adds no readings.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("duration-s = 21600", "duration-s = 0"),
    )
    .unwrap();
    let again = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let seqs = counters(&sub.collect_until(|got| unique(got) >= forwarded, Duration::from_secs(15)));
    assert_complete_and_ordered(&seqs, forwarded);
}

/// A gateway killed with SIGKILL under load loses nothing it accepted:
/// after a restart the outbox delivers the rest.
#[test]
fn gateway_sigkill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    // No broker yet: everything accepted piles up in the outbox.
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let config = medical(dir.path(), &url, 6, 3600.0, |_| {});
    let mut gateway = edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    gateway.kill().unwrap(); // SIGKILL
    gateway.wait().unwrap();

    let accepted: u64 = {
        let db = rusqlite::Connection::open(dir.path().join("state/outbox.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    assert!(accepted > 0, "the run accepted something before the kill");

    let broker = Broker::start_on(&broker_dir, port);
    let sub = Subscriber::start(broker.port, "cloud", "medical/#");
    // Restart with no new readings: only the outbox speaks.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("duration-s = 21600", "duration-s = 0"),
    )
    .unwrap();
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming the outbox"), "{}", stderr(&out));
    let seqs = counters(&sub.collect_until(|got| unique(got) >= accepted, Duration::from_secs(15)));
    assert_complete_and_ordered(&seqs, accepted);
}

/// With the uplink broker down, alarms and heating commands still reach the local broker.
#[test]
fn alarms_flow_while_uplink_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let local = Broker::start(&dir.path().join("local"));
    let sub = Subscriber::start(local.port, "panel", "edgeward/#");
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let local_url = local.url();
    let config = fast_config("demo.toml", dir.path(), |c| {
        table(c, "outbox").insert("drain-timeout-s".into(), 0.5.into());
        let mut uplink = Table::new();
        uplink.insert("type".into(), "mqtt".into());
        uplink.insert("url".into(), down.into());
        c.insert("uplink".into(), uplink.into());
        for kind in ["alarm", "actuator"] {
            let mut sink = Table::new();
            sink.insert("type".into(), "mqtt".into());
            sink.insert("url".into(), local_url.clone().into());
            c.insert(kind.into(), sink.into());
        }
    });
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("messages wait in the outbox"), "{}", stderr(&out));
    let got = sub.collect(1000, Duration::from_secs(3));
    let alarms = got.iter().filter(|(t, _)| t.starts_with("edgeward/demo-gw/alarm/wearable-1/fever")).count();
    let commands = got.iter().filter(|(t, _)| t.starts_with("edgeward/demo-gw/actuator/heating/")).count();
    assert!(alarms >= 1, "no alarm arrived: {got:?}");
    assert!(commands >= 2, "no heating command arrived");
    // Each fever alarm came from a message, so each has its latency sample.
    let status = crate::support::edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let to_alarm = &status["latency"]["to_alarm"];
    assert!(to_alarm["count"].as_u64().unwrap() >= alarms as u64, "{to_alarm}");
    assert!(to_alarm["p99_ms"].as_f64().unwrap() > 0.0, "{to_alarm}");
}

/// The Prometheus endpoint serves the counters and the outbox depth while
/// the gateway runs (here with the uplink down, so the outbox grows).
#[test]
fn metrics_endpoint_serves_counters_and_outbox() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let port = free_port();
    let config = medical(dir.path(), &down, 6, 3600.0, |c| {
        table(c, "metrics").insert("listen".into(), format!("127.0.0.1:{port}").into());
        table(c, "outbox").insert("drain-timeout-s".into(), 0.2.into());
    });
    let mut gateway = edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let scrape = || -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let find = |text: &str, prefix: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.parse().ok())
    };
    // The broker is down, but messages are committed: one latency sample
    // each. A sample is recorded just after its commit, so one scrape may
    // fall in between; a later one must agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let settled = |t: &String| {
            let waiting = find(t, "edgeward_outbox_messages ").unwrap_or(0.0);
            let committed = find(t, r#"edgeward_latency_seconds_count{path="to_outbox"} "#).unwrap_or(0.0);
            waiting > 0.0 && committed >= waiting && !t.contains("edgeward_forwarded_total 0\n")
        };
        if let Some(text) = scrape().filter(settled) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics with traffic, every committed message sampled, within 30 s: {:?}",
            scrape()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("# TYPE edgeward_frames_total counter"), "{text}");
    assert!(text.contains("edgeward_uplink_connected 0"), "{text}");
    // Per module per profile: calls, faults and a latency histogram.
    let value =
        |prefix: &str| -> f64 { find(&text, prefix).unwrap_or_else(|| panic!("no {prefix}: {text}")) };
    let labels = r#"{profile="provenance",module="countersign"}"#;
    let calls = value(&format!("edgeward_module_calls_total{labels} "));
    assert!(calls > 0.0, "{text}");
    assert_eq!(value(&format!("edgeward_module_faults_total{labels} ")), 0.0);
    assert_eq!(value(&format!("edgeward_module_call_seconds_count{labels} ")), calls);
    let all =
        value(r#"edgeward_module_call_seconds_bucket{profile="provenance",module="countersign",le="+Inf"} "#);
    assert_eq!(all, calls, "the +Inf bucket counts every call");
    assert!(value(r#"edgeward_latency_seconds{path="to_outbox",quantile="0.99"} "#) > 0.0, "{text}");
}

/// `edgeward verify` reads straight from the broker and verifies what the
/// gateway publishes.
#[test]
fn verify_reads_from_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let config = medical(dir.path(), &broker.url(), 2, 0.0, |_| {});
    // A first, empty run creates the gateway's and the simulated sensor's keys.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("duration-s = 7200", "duration-s = 0")).unwrap();
    assert!(crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]).status.success());
    std::fs::write(&config, text).unwrap();
    let trust = crate::support::trust_store(dir.path(), &["wearable-1"], "ward-7-gw");

    let url = broker.url();
    let mut verifier = edgeward_command(&[
        "verify",
        "--mqtt",
        &url,
        "--topic",
        "medical/#",
        "--count",
        "120",
        "--idle-s",
        "20",
        "--trust",
        trust.to_str().unwrap(),
    ])
    // 120 short lines: the pipe holds them until the verifier is done.
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Start publishing only once the verifier says it is subscribed.
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(verifier.stderr.take().unwrap()).lines();
    let said = lines.next().expect("the verifier says where it reads").unwrap();
    assert!(said.starts_with("reading medical/# from"), "{said}");
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(verifier.wait().unwrap().success(), "{log:?}");
    assert!(log.iter().any(|l| l == "120 passed, 0 failed"), "{log:?}");
    // Each verdict names the message by the id its envelope carries.
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut verifier.stdout.take().unwrap(), &mut shown).unwrap();
    let ids = shown.lines().filter(|l| l.starts_with("ok ") && l.contains(" [ward-7-gw-")).count();
    assert_eq!(ids, 120, "{shown}");
}

/// Wrong credentials: the broker refuses, the gateway says why, keeps
/// running and keeps everything in the outbox; with the right ones it all goes out.
#[test]
fn bad_credentials_keep_messages_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with_password(&dir.path().join("broker"), "gw", "right");
    let credentials = |password: &'static str| {
        move |c: &mut Table| {
            let uplink = table(c, "uplink");
            uplink.insert("username".into(), "gw".into());
            uplink.insert("password".into(), password.into());
            table(c, "outbox").insert("drain-timeout-s".into(), 1.0.into());
        }
    };
    let config = medical(dir.path(), &broker.url(), 2, 0.0, credentials("wrong"));
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("uplink cannot connect to") && log.contains("NotAuthorized"), "{log}");
    assert_eq!(log.matches("uplink cannot connect").count(), 1, "logged once, not per retry: {log}");
    assert!(log.contains("messages wait in the outbox"), "{log}");
    let config = medical(dir.path(), &broker.url(), 0, 0.0, credentials("right"));
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = crate::support::edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["outbox"]["messages"], 0, "the backlog went out with the right password");
    assert_eq!(status["counters"]["uplink_acked"], 120);
}

/// Each uplink message carries a unique id inside its envelope (the COSE
/// unprotected header), fixed when it was accepted: messages that waited in
/// the outbox through a gateway restart go out with the ids stored for them,
/// so a consumer can recognise a resend as a duplicate.
#[test]
fn message_ids_are_unique_and_survive_a_resend() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No broker yet: everything waits in the outbox.
    let config = medical(dir.path(), &format!("mqtt://127.0.0.1:{port}"), 1, 0.0, |c| {
        table(c, "outbox").insert("drain-timeout-s".into(), 0.2.into());
    });
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored: Vec<(String, Vec<u8>)> = {
        let db = rusqlite::Connection::open(dir.path().join("state/outbox.db")).unwrap();
        let mut stmt = db.prepare("SELECT id, payload FROM outbox ORDER BY seq").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(stored.len(), 60);
    let ids: std::collections::BTreeSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 60, "every message has its own id");
    for (id, payload) in &stored {
        assert_eq!(cose::message_id(payload).as_deref(), Some(id.as_str()), "the envelope carries the id");
    }

    // A second gateway run, now with a broker, sends the stored messages.
    let broker = Broker::start_on(&dir.path().join("broker"), port);
    let sub = Subscriber::start(broker.port, "cloud", "medical/#");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("duration-s = 3600", "duration-s = 0"),
    )
    .unwrap();
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = sub.collect_until(|got| got.len() >= 60, Duration::from_secs(10));
    let received: Vec<String> = got.iter().map(|(_, body)| cose::message_id(body).expect("an id")).collect();
    let expected: Vec<String> = stored.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(received, expected, "the same ids, in order");
    // The signatures still verify with the id added (checked by `edgeward verify` elsewhere);
    // here: the sensor signature's payload and counter are intact.
    assert_eq!(counters(&got), (1..=60).collect::<Vec<_>>());
}

/// One message as a v5 subscriber sees it: topic, payload, the `msg-id`
/// user property and the content type.
type V5Message = (String, Vec<u8>, Option<String>, Option<String>);

/// An MQTT 5 subscriber (rumqttc's v5 client), subscribed when `start` returns.
fn v5_subscriber(port: u16, filter: &str) -> std::sync::mpsc::Receiver<V5Message> {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{Client, Event, MqttOptions};
    let (client, mut connection) = Client::new(MqttOptions::new("cloud-v5", "127.0.0.1", port), 256);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let properties = p.properties.unwrap_or_default();
                    let id = properties
                        .user_properties
                        .iter()
                        .find(|(k, _)| k == "msg-id")
                        .map(|(_, v)| v.clone());
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    if tx.send((topic, p.payload.to_vec(), id, properties.content_type)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscribed");
    rx
}

/// With `protocol = 5` the uplink speaks MQTT 5: a v5 subscriber sees each
/// message's id as the user property `msg-id` (the same as in the envelope)
/// and the envelope's content type.
#[test]
fn mqtt5_uplink_sends_msg_id_property() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let config = medical(dir.path(), &broker.url(), 1, 0.0, |c| {
        table(c, "uplink").insert("protocol".into(), 5.into());
    });
    let sub = v5_subscriber(broker.port, "medical/#");
    let out = crate::support::edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<V5Message> = (0..60).map_while(|_| sub.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert_eq!(got.len(), 60, "{}", stderr(&out));
    let mut ids = std::collections::BTreeSet::new();
    for (topic, body, id, content_type) in &got {
        let id = id.as_deref().unwrap_or_else(|| panic!("no msg-id on {topic}"));
        assert_eq!(cose::message_id(body).as_deref(), Some(id), "property and envelope agree");
        assert_eq!(content_type.as_deref(), Some("application/cose; cose-type=\"cose-sign1\""));
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 60, "ids differ");
}

/// Unmounts a test's tmpfs when dropped (lazily: a process may still hold it).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the state file: the gateway runs on, names the file
/// and the cause once, counts the messages it refuses (never accepted, so
/// nothing accepted is lost) and accepts again when space returns. The state
/// directory is a small tmpfs, which only root may mount: elsewhere the test
/// says so and passes without checking anything.
#[test]
fn full_disk_refuses_counts_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "edgeward-test", state.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("full_disk_refuses_counts_and_recovers skipped: mounting a tmpfs needs root");
        return;
    }
    let _unmount = Mounted(state.clone());
    // One unsigned room sensor, no rules: nothing but the outbox writes to the disk.
    let config = dir.path().join("edgeward.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
id = "disk-gw"
state-dir = "state"

[[sensor]]
name = "room-1"
address = "A4:C1:38:00:00:01"
profile = "plain"
source = "sim"
sim = {{ model = "room", interval-s = 60 }}

[profile.plain]
modules = []

[sim]
speed = 3000
duration-s = 864000

[uplink]
type = "mqtt"
url = "mqtt://127.0.0.1:{}"

[outbox]
drain-timeout-s = 0.2

[alarm]
type = "none"

[actuator]
type = "none"
"#,
            free_port()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("gateway.log");
    let mut gateway = edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains(what) {
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "no `{what}` within 60 s: {log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let log = wait_for("disk is full");
    let db = state.join("outbox.db");
    assert!(log.contains(&format!("state store {}: database or disk is full", db.display())), "{log}");
    assert!(log.contains("the gateway keeps running"), "{log}");

    // Space returns: the same gateway accepts again.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=16m", state.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(grown.success());
    let log = wait_for("the outbox accepts messages again");
    assert_eq!(log.matches("disk is full").count(), 1, "logged once, not per refused batch: {log}");
    assert!(log.matches("cannot write").count() <= 1, "status.json failures logged once: {log}");
    let _ = std::process::Command::new("kill").arg(gateway.id().to_string()).status();
    assert!(gateway.wait().unwrap().success());

    let status: serde_json::Value = {
        let out = crate::support::edgeward(&["status", "--json", "-c", config.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let refused = status["counters"]["outbox_write_refused"].as_u64().unwrap();
    let forwarded = status["counters"]["forwarded"].as_u64().unwrap();
    let kept = status["outbox"]["messages"].as_u64().unwrap();
    assert!(refused > 0, "{status}");
    assert_eq!(kept + refused, forwarded, "every forwarded message is either kept or counted as refused");
}
