//! The daemon under a service manager: what systemd would read on
//! `NOTIFY_SOCKET` (Type=notify, WatchdogSec=) from start to SIGTERM.

use crate::support::{edgeward, edgeward_command, fast_config, repo_root, stderr, table};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A daemon under `NOTIFY_SOCKET` (and a 400 ms watchdog), running in real
/// time until told to stop, and what it has told the service manager.
struct Notifying {
    child: std::process::Child,
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifying {
    fn start(dir: &std::path::Path) -> Self {
        let config = fast_config("demo.toml", dir, |config| {
            let sim = table(config, "sim");
            sim.insert("speed".into(), 1.0.into());
            sim.remove("duration-s");
        });
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let child = edgeward_command(&["run", "-c", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Notifying { child, socket, seen: Vec::new() }
    }

    /// Wait for the next notification; fail if the daemon exits first.
    fn next(&mut self) {
        // Not a timing assertion: only how long to wait before calling it hung.
        let hung = std::time::Instant::now() + Duration::from_secs(120);
        let mut buf = [0u8; 512];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}) after {:?} without saying more", self.seen);
            }
            assert!(std::time::Instant::now() < hung, "no notification for 120 s after {:?}", self.seen);
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.seen.iter().filter(|m| m.starts_with(prefix)).count()
    }

    /// SIGTERM; notifications up to STOPPING=1; a clean exit.
    fn terminate(mut self) -> Vec<String> {
        // Straight from this thread: a `kill` process would give the daemon
        // milliseconds to finish starting.
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        while !self.seen.last().unwrap().starts_with("STOPPING=1") {
            self.next();
        }
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        self.seen
    }
}

/// READY=1 once running, WATCHDOG=1 keep-alives while running, STOPPING=1 on
/// SIGTERM, then a clean exit.
#[test]
fn notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Notifying::start(dir.path());
    while daemon.count("READY=1") == 0 || daemon.count("WATCHDOG=1") < 2 {
        daemon.next();
    }
    let seen = daemon.terminate();
    assert_eq!(seen.iter().filter(|m| m.starts_with("READY=1")).count(), 1, "{seen:?}");
}

/// READY=1 means SIGTERM is handled: a stop asked for the moment the daemon
/// says it is ready still drains and exits cleanly (systemd may stop a unit
/// at any point after READY).
#[test]
fn sigterm_right_after_ready_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Notifying::start(dir.path());
    while daemon.count("READY=1") == 0 {
        daemon.next();
    }
    daemon.terminate();
}

/// The configuration the Debian package installs as /etc/edgeward/edgeward.toml
/// passes `edgeward check` (its key is made by the package, so absent here).
#[test]
fn packaged_config_checks_clean() {
    let path = repo_root().join("packaging/edgeward.toml");
    let out = edgeward(&["check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 sensors, 1 profiles, 1 modules)"));
}
