//! An emulated BlueZ for the BLE tests, and the gateway as a child process
//! on its bus.
//!
//! [`Bluez::start`] starts a private D-Bus bus (dbus-daemon, configured as a
//! system bus) and python-dbusmock serving `tests/bluez/edgeward_bluez.py`
//! as `org.bluez`, with one adapter, `hci0`. The test drives the radio side
//! (advertisements, GATT notifications, failures, adapters) through the
//! emulator's `org.bluez.Mock` methods; the gateway talks to it through the
//! real bluer client, exactly as it talks to bluetoothd.
//!
//! The gateway runs as a child process ([`Gateway`]) because libdbus reads
//! `DBUS_SYSTEM_BUS_ADDRESS` once per process: so each test has its own bus
//! and its own gateway. Every helper process runs under a shell guard whose
//! standard input is a pipe from the test: when the test drops it (or dies),
//! the guard stops the process with SIGTERM, so nothing outlives the test
//! and cargo's output pipes close.

use super::{module_cache, repo_root};
use dbus::arg::{AppendAll, PropMap, ReadAll};
use dbus::blocking::Connection;
use dbus::channel::Channel;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The emulator's control interface (on `/`).
const MOCK: &str = "org.bluez.Mock";
/// The adapter the tests use.
pub const ADAPTER: &str = "hci0";
/// BTHome's service data UUID.
pub const BTHOME: &str = "0000fcd2-0000-1000-8000-00805f9b34fb";

/// Runs "$@" in the background (output to $GUARD_LOG), prints its pid, and
/// once standard input closes stops it with SIGTERM and prints its exit status.
const GUARD: &str = r#""$@" </dev/null >>"$GUARD_LOG" 2>&1 &
p=$!
echo "pid $p"
cat >/dev/null
kill -TERM "$p" 2>/dev/null
wait "$p"
echo "exit $?"
"#;

/// A private bus configured as the system bus: anyone may own and call anything.
const BUS_CONF: &str = r#"<busconfig>
  <type>system</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#;

/// A process under the guard.
pub struct Guarded {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pid: u32,
}

impl Guarded {
    /// Start `program args` with `env`, its output appended to `log`.
    pub fn spawn(what: &str, program: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Guarded {
        let mut command = Command::new("sh");
        command
            .args(["-c", GUARD, "guard", program])
            .args(args)
            .env("GUARD_LOG", log)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("a piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let pid = first.strip_prefix("pid ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("{what}: the guard did not report a pid ({first:?})");
        });
        Guarded { what: what.to_string(), child, stdin, lines, pid }
    }

    /// Stop it with SIGTERM and wait up to `wait` for its exit status;
    /// `None` when it had to be killed (or was stopped already).
    pub fn stop(&mut self, wait: Duration) -> Option<i32> {
        self.stdin.as_ref()?;
        drop(self.stdin.take());
        let deadline = Instant::now() + wait;
        let mut status = None;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(code) = line.strip_prefix("exit ") {
                status = code.trim().parse().ok();
                break;
            }
        }
        if status.is_none() {
            eprintln!("{} did not stop within {wait:?} of SIGTERM; killing it", self.what);
            // The shell's own kill: a minimal image may lack procps.
            let _ = Command::new("sh").args(["-c", &format!("kill -KILL {}", self.pid)]).status();
        }
        let _ = self.child.wait();
        status
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Poll `probe` every 100 ms until it returns `Some` or `limit` passes;
/// on timeout, panic naming `what` with `context()` (say, a log).
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    context: impl FnOnce() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The complete JSON lines of a file a sink is appending to (a line being
/// written is skipped).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The emulated BlueZ on its private bus.
pub struct Bluez {
    // Dropped in this order: our connection, the emulator, the bus, then
    // the folder holding the bus's socket and the logs.
    conn: Connection,
    mock: Option<Guarded>,
    /// Whether `hci0` offers advertisement monitors, kept across a restart.
    monitors: std::cell::Cell<bool>,
    _bus: Guarded,
    dir: tempfile::TempDir,
    address: String,
}

impl Bluez {
    /// A private bus with the emulated BlueZ and adapter `hci0` (powered, not discovering).
    pub fn start() -> Bluez {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus.sock");
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, BUS_CONF.replace("SOCKET", socket.to_str().unwrap())).unwrap();
        let conf_arg = format!("--config-file={}", conf.display());
        let bus = Guarded::spawn(
            "dbus-daemon",
            "dbus-daemon",
            &[&conf_arg, "--nofork", "--nopidfile"],
            &[],
            &dir.path().join("dbus-daemon.log"),
        );
        let address = format!("unix:path={}", socket.display());
        let conn = wait_for("the private bus", Duration::from_secs(10), String::new, || {
            let mut channel = Channel::open_private(&address).ok()?;
            channel.register().ok()?;
            Some(Connection::from(channel))
        });
        let mut bluez = Bluez { conn, mock: None, monitors: false.into(), _bus: bus, dir, address };
        bluez.start_emulator();
        bluez.add_adapter(ADAPTER);
        bluez
    }

    fn start_emulator(&mut self) {
        let template = repo_root().join("tests/bluez/edgeward_bluez.py");
        self.mock = Some(Guarded::spawn(
            "the BlueZ emulator",
            "/usr/bin/python3",
            &["-m", "dbusmock", "--template", template.to_str().unwrap()],
            &[("DBUS_SYSTEM_BUS_ADDRESS", &self.address)],
            &self.dir.path().join("bluez.log"),
        ));
        wait_for(
            "the BlueZ emulator",
            Duration::from_secs(20),
            || self.log(),
            || self.try_call::<(u32,), _>("DiscoveryStarts", ("none",)).ok(),
        );
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// What the emulator logged (every call and signal).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bluez.log")).unwrap_or_default()
    }

    fn try_call<R: ReadAll, A: AppendAll>(&self, method: &str, args: A) -> Result<R, dbus::Error> {
        self.conn.with_proxy("org.bluez", "/", Duration::from_secs(10)).method_call(MOCK, method, args)
    }

    fn call<R: ReadAll, A: AppendAll>(&self, method: &str, args: A) -> R {
        self.try_call(method, args).unwrap_or_else(|e| panic!("BlueZ emulator {method}: {e}"))
    }

    /// BlueZ restarts: the emulator leaves the bus (its name vanishes) and a
    /// fresh one takes `org.bluez`, with adapter `hci0` again (offering
    /// advertisement monitors if it did), but no discovery or monitor of any client.
    pub fn restart(&mut self) {
        if let Some(mut mock) = self.mock.take() {
            mock.stop(Duration::from_secs(10));
        }
        self.start_emulator();
        if self.monitors.get() {
            self.set_monitor_support(true);
        }
        self.add_adapter(ADAPTER);
    }

    /// An adapter is plugged in (powered).
    pub fn add_adapter(&self, name: &str) {
        let _: (String,) = self.call("AddAdapter", (name,));
    }

    /// An adapter is unplugged: its devices and then itself vanish.
    pub fn remove_adapter(&self, name: &str) {
        let _: () = self.call("RemoveAdapter", (name,));
    }

    /// Power `hci0` on or off.
    pub fn set_powered(&self, on: bool) {
        let _: () = self.call("SetPowered", (ADAPTER, on));
    }

    /// One advertisement from `address` on `hci0` with `service_data`
    /// (UUID, bytes); true when the adapter was discovering and heard it.
    pub fn advertise(&self, address: &str, name: &str, rssi: i16, service_data: &[(&str, &[u8])]) -> bool {
        let data: HashMap<String, Vec<u8>> =
            service_data.iter().map(|(uuid, bytes)| (uuid.to_string(), bytes.to_vec())).collect();
        let (heard,): (bool,) = self.call("Advertise", (ADAPTER, address, name, rssi, data));
        heard
    }

    /// The sensor at `address` offers `service` with `characteristics` once connected.
    pub fn add_gatt_service(&self, address: &str, service: &str, characteristics: &[&str]) {
        let chars: Vec<String> = characteristics.iter().map(|c| c.to_string()).collect();
        let _: () = self.call("AddGattService", (address, service, chars));
    }

    /// The next `count` connection attempts to `address` fail.
    pub fn fail_connects(&self, address: &str, count: u32) {
        let _: () = self.call("FailConnects", (address, count));
    }

    /// Connection attempts to `address` so far, failed ones included.
    pub fn connect_attempts(&self, address: &str) -> u32 {
        let (n,): (u32,) = self.call("ConnectAttempts", (address,));
        n
    }

    /// The sensor notifies `value` on `characteristic`; true when a client
    /// had subscribed over a live link.
    pub fn notify(&self, address: &str, characteristic: &str, value: &[u8]) -> bool {
        let (delivered,): (bool,) = self.call("Notify", (ADAPTER, address, characteristic, value.to_vec()));
        delivered
    }

    /// The link to `address` is lost; true when it was up.
    pub fn drop_connection(&self, address: &str) -> bool {
        let (dropped,): (bool,) = self.call("DropConnection", (ADAPTER, address));
        dropped
    }

    /// How often discovery on `hci0` went from off to on.
    pub fn discovery_starts(&self) -> u32 {
        let (n,): (u32,) = self.call("DiscoveryStarts", (ADAPTER,));
        n
    }

    /// Whether `hci0` is discovering (for a client).
    pub fn discovering(&self) -> bool {
        use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
        let path = format!("/org/bluez/{ADAPTER}");
        self.conn
            .with_proxy("org.bluez", path, Duration::from_secs(10))
            .get::<bool>("org.bluez.Adapter1", "Discovering")
            .unwrap_or(false)
    }

    /// Whether `hci0` offers advertisement monitors (passive scanning),
    /// now and when plugged in again; off unless a test turns it on.
    pub fn set_monitor_support(&self, on: bool) {
        self.monitors.set(on);
        let _: () = self.call("SetMonitorSupport", (ADAPTER, on));
    }

    /// Advertisement monitors registered and activated on `hci0`.
    pub fn active_monitors(&self) -> u32 {
        let (n,): (u32,) = self.call("ActiveMonitors", (ADAPTER,));
        n
    }

    /// The discovery filter a client last set on `hci0`.
    pub fn discovery_filter(&self) -> PropMap {
        let (filter,): (PropMap,) = self.call("DiscoveryFilter", (ADAPTER,));
        filter
    }
}

/// The gateway (`edgeward run`) as a child process on the emulator's bus.
pub struct Gateway {
    process: Guarded,
    log: PathBuf,
}

impl Gateway {
    /// Start `edgeward run -c config` on `bluez`'s bus; its log goes beside the config.
    pub fn start(bluez: &Bluez, config: &Path) -> Gateway {
        let log = config.with_file_name("gateway.log");
        let cache = module_cache();
        let process = Guarded::spawn(
            "the gateway",
            env!("CARGO_BIN_EXE_edgeward"),
            &["run", "-c", config.to_str().unwrap()],
            &[
                ("DBUS_SYSTEM_BUS_ADDRESS", bluez.address()),
                ("EDGEWARD_LOG", "info"),
                ("EDGEWARD_CACHE_DIR", cache.to_str().unwrap()),
            ],
            &log,
        );
        Gateway { process, log }
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// [`wait_for`], showing the gateway's log on timeout.
    pub fn wait_for<T>(&self, what: &str, limit: Duration, probe: impl FnMut() -> Option<T>) -> T {
        wait_for(what, limit, || format!("gateway log:\n{}", self.log()), probe)
    }

    /// The counter `name` in the status.json the gateway with state
    /// folder `state` writes every few seconds, once written.
    pub fn counter(state: &Path, name: &str) -> Option<u64> {
        let text = std::fs::read_to_string(state.join("status.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["counters"][name].as_u64()
    }

    /// Wait until status.json in `state` shows the counter `name` at `at_least` or more.
    pub fn wait_for_counter(&self, state: &Path, name: &str, at_least: u64) -> u64 {
        self.wait_for(&format!("status.json {name} >= {at_least}"), Duration::from_secs(60), || {
            Self::counter(state, name).filter(|n| *n >= at_least)
        })
    }

    /// Wait until the gateway logged `text`.
    pub fn wait_for_log(&self, text: &str, limit: Duration) {
        self.wait_for(&format!("the gateway to log {text:?}"), limit, || {
            self.log().contains(text).then_some(())
        });
    }

    /// Stop it with SIGTERM (it drains and exits); its exit status.
    pub fn stop(mut self) -> i32 {
        let status = self.process.stop(Duration::from_secs(30));
        status.unwrap_or_else(|| panic!("the gateway did not stop on SIGTERM\n{}", self.log()))
    }
}
