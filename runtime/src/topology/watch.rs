//! What asks the gateway to reload: SIGHUP (`systemctl reload`), or a change
//! to a file its configuration is made of: the main file, the drop-ins in
//! `conf.d/`, and the module files in use.
//!
//! Editors save by writing a new file and renaming it over the old one, which
//! a watch on the file itself would lose; so the folders are watched and
//! events are matched by path. Changes are debounced: a save is several
//! events, and a reload should see the finished file.

use crate::config::{DROP_IN_DIR, Loaded};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// Quiet time after the last change before reloading.
const SETTLE: Duration = Duration::from_millis(50);
/// A file rewritten continuously still reloads this often.
const SETTLE_AT_MOST: Duration = Duration::from_secs(2);

/// Why a reload was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Hangup,
    Changed(BTreeSet<PathBuf>),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Hangup => f.write_str("SIGHUP"),
            Trigger::Changed(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "changed: {}", names.join(", "))
            }
        }
    }
}

/// The files a configuration is made of, and the folders to watch for them.
#[derive(Debug, Default, PartialEq, Eq)]
struct WatchSet {
    files: BTreeSet<PathBuf>,
    drop_in_dir: Option<PathBuf>,
    folders: BTreeSet<PathBuf>,
}

impl WatchSet {
    fn of(loaded: &Loaded) -> Self {
        let mut set = WatchSet::default();
        if loaded.files.is_empty() {
            return set; // an embedded configuration: nothing on disk to watch
        }
        set.files.extend(loaded.files.iter().cloned());
        for module in loaded.config.modules.values() {
            let wasm = module.wasm.get_ref();
            if !wasm.starts_with("builtin:") {
                set.files.insert(loaded.resolve(Path::new(wasm)));
            }
        }
        let drop_in_dir = loaded.base_dir.join(DROP_IN_DIR);
        set.folders = set.files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        // The main folder shows conf.d appearing; conf.d itself, files in it.
        set.folders.insert(loaded.base_dir.clone());
        if drop_in_dir.is_dir() {
            set.folders.insert(drop_in_dir.clone());
        }
        set.drop_in_dir = Some(drop_in_dir);
        set
    }

    fn concerns(&self, path: &Path) -> bool {
        if self.files.contains(path) {
            return true;
        }
        let Some(dir) = &self.drop_in_dir else { return false };
        path == dir || (path.parent() == Some(dir.as_path()) && crate::config::is_drop_in(path))
    }
}

/// SIGHUP and file changes, as reload requests.
pub struct Triggers {
    hangup: Signal,
    set: WatchSet,
    watcher: Option<RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<PathBuf>,
    events_tx: mpsc::UnboundedSender<PathBuf>,
}

impl Triggers {
    /// Listen for SIGHUP; watch nothing yet.
    pub fn new() -> std::io::Result<Self> {
        let (events_tx, events) = mpsc::unbounded_channel();
        Ok(Triggers {
            hangup: signal(SignalKind::hangup())?,
            set: WatchSet::default(),
            watcher: None,
            events,
            events_tx,
        })
    }

    /// Watch the files `loaded` is made of (again, if they changed).
    pub fn watch(&mut self, loaded: &Loaded) {
        let set = WatchSet::of(loaded);
        if set == self.set && (self.watcher.is_some() || set.folders.is_empty()) {
            return;
        }
        self.watcher = None;
        if !set.folders.is_empty() {
            match self.start_watcher(&set) {
                Ok(watcher) => self.watcher = Some(watcher),
                Err(e) => tracing::warn!("not watching the configuration files (SIGHUP still reloads): {e}"),
            }
        }
        // Events of the old set still queued are judged by the new one.
        self.set = set;
    }

    fn start_watcher(&self, set: &WatchSet) -> notify::Result<RecommendedWatcher> {
        let tx = self.events_tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                // Opening or reading a file changes nothing.
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
                Ok(event) => {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
                Err(e) => tracing::warn!("watching the configuration files: {e}"),
            })?;
        for folder in &set.folders {
            if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), "cannot watch for configuration changes: {e}");
            }
        }
        Ok(watcher)
    }

    /// The next reload request: a SIGHUP at once, file changes once they
    /// have settled.
    pub async fn next(&mut self) -> Trigger {
        let mut changed = BTreeSet::new();
        loop {
            tokio::select! {
                _ = self.hangup.recv() => return Trigger::Hangup,
                Some(path) = self.events.recv() => {
                    if self.set.concerns(&path) {
                        changed.insert(path);
                        break;
                    }
                }
            }
        }
        // Settle: wait until the files concerned have been quiet for a
        // moment. Other files in the same folders (a sink's output, say) do
        // not count; a SIGHUP meanwhile is answered by this reload.
        let deadline = tokio::time::Instant::now() + SETTLE_AT_MOST;
        let mut quiet_at = tokio::time::Instant::now() + SETTLE;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(quiet_at.min(deadline)) => break,
                _ = self.hangup.recv() => {}
                Some(path) = self.events.recv() => {
                    if self.set.concerns(&path) {
                        changed.insert(path);
                        quiet_at = tokio::time::Instant::now() + SETTLE;
                    }
                }
            }
        }
        Trigger::Changed(changed)
    }
}
