//! A real Mosquitto broker for tests, on a free loopback port, stopped on drop.

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `mosquitto`.
pub struct Broker {
    pub port: u16,
    /// With TLS: a second, plain listener for the test's own clients.
    pub plain_port: Option<u16>,
    dir: PathBuf,
    /// Configuration lines after the first `listener` (auth, TLS, more listeners).
    extra: String,
    child: Option<Child>,
}

/// A TLS listener's files (PEM).
pub struct BrokerTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Mutual TLS: clients must present a certificate signed by `ca`.
    pub require_certificate: bool,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// Start a broker on a free port, persisting sessions under `dir`.
    pub fn start(dir: &Path) -> Broker {
        Self::start_on(dir, free_port())
    }

    /// Start a broker on `port` (again, after a stop), persisting under `dir`.
    pub fn start_on(dir: &Path, port: u16) -> Broker {
        Self::start_with(dir, port, "allow_anonymous true\n")
    }

    /// A broker that only lets `user` in, with `password`.
    pub fn start_with_password(dir: &Path, user: &str, password: &str) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let passwords = dir.join("passwords");
        let made = Command::new("mosquitto_passwd")
            .args(["-c", "-b", passwords.to_str().unwrap(), user, password])
            .status()
            .expect("mosquitto_passwd");
        assert!(made.success());
        let auth = format!("allow_anonymous false\npassword_file {}\n", passwords.display());
        Self::start_with(dir, free_port(), &auth)
    }

    /// A broker whose main listener (`port`, 0 for a free one) speaks TLS
    /// only, with a plain listener beside it ([`Broker::plain_port`]) for
    /// the test's subscribers.
    pub fn start_tls(dir: &Path, port: u16, tls: &BrokerTls) -> Broker {
        let port = if port == 0 { free_port() } else { port };
        let plain = free_port();
        // `user root`: started as root, mosquitto otherwise switches to its
        // own user before reading the key, which it then may not read.
        let extra = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\nlistener {plain} 127.0.0.1\nallow_anonymous true\nuser root\n",
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display(),
            tls.require_certificate
        );
        let mut broker = Self::start_with(dir, port, &extra);
        broker.plain_port = Some(plain);
        broker
    }

    fn start_with(dir: &Path, port: u16, extra: &str) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{extra}persistence true\npersistence_location {}/\nmax_queued_messages 100000\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            port,
            plain_port: None,
            dir: dir.to_path_buf(),
            extra: extra.to_string(),
            child: Some(child),
        }
    }

    /// Stop the broker (SIGTERM, so it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Stop, then start again on the same port with the same sessions.
    pub fn restart(&mut self) {
        self.stop();
        let plain_port = self.plain_port;
        *self = Broker::start_with(&self.dir.clone(), self.port, &self.extra.clone());
        self.plain_port = plain_port;
    }

    /// The gateway's URL: `mqtt://127.0.0.1:PORT`, or with TLS
    /// `mqtts://localhost:PORT` (the name the test certificates carry).
    pub fn url(&self) -> String {
        match self.plain_port {
            Some(_) => format!("mqtts://localhost:{}", self.port),
            None => format!("mqtt://127.0.0.1:{}", self.port),
        }
    }

    /// The port the test's own (plain) clients use.
    pub fn client_port(&self) -> u16 {
        self.plain_port.unwrap_or(self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A QoS 1 subscriber with a persistent session: messages published while
/// it (or the broker) is away are delivered when it is back.
pub struct Subscriber {
    received: mpsc::Receiver<(String, Vec<u8>)>,
}

impl Subscriber {
    pub fn start(port: u16, client_id: &str, filter: &str) -> Subscriber {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 1000);
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker went away: keep trying, the session waits for us.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscribed");
        Subscriber { received: rx }
    }

    /// Everything received until `want` messages arrived or `patience` passed without a new one.
    pub fn collect(&self, want: usize, patience: Duration) -> Vec<(String, Vec<u8>)> {
        self.collect_until(|got| got.len() >= want, patience)
    }

    /// Everything received until `done` says so or `patience` passed without
    /// a new message (duplicates, which at-least-once allows, count as messages).
    pub fn collect_until(
        &self,
        done: impl Fn(&[(String, Vec<u8>)]) -> bool,
        patience: Duration,
    ) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !done(&out) {
            match self.received.recv_timeout(patience) {
                Ok(message) => out.push(message),
                Err(_) => break,
            }
        }
        out
    }
}
