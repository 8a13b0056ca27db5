//! The daemon under a service manager: what systemd would read on
//! `NOTIFY_SOCKET` (Type=notify, WatchdogSec=) from start to SIGTERM.

use crate::support::{edgeward, edgeward_command, fast_config, repo_root, stderr, table};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// READY=1 once running, WATCHDOG=1 keep-alives while running, STOPPING=1 on
/// SIGTERM, then a clean exit.
#[test]
fn notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // Real time and no end: the daemon runs until it is told to stop.
    let config = fast_config("demo.toml", dir.path(), |config| {
        let sim = table(config, "sim");
        sim.insert("speed".into(), 1.0.into());
        sim.remove("duration-s");
    });
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    // Not a timing assertion: only how long to wait before calling it hung.
    socket.set_read_timeout(Some(Duration::from_secs(120))).unwrap();

    let child = edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification from the daemon");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    while !(seen.iter().any(|m: &String| m.starts_with("READY=1"))
        && seen.iter().filter(|m| *m == "WATCHDOG=1\n").count() >= 2)
    {
        seen.push(next());
    }

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    while !seen.last().unwrap().starts_with("STOPPING=1") {
        seen.push(next());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(seen.iter().filter(|m| m.starts_with("READY=1")).count(), 1, "{seen:?}");
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
