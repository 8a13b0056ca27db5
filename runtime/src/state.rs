//! `state.db`: the SQLite file (WAL mode) that holds what must survive a
//! restart: each module's key-value state, the replay windows, the topic
//! salt and the simulator's counters. The outbox has a file of its own
//! (`outbox.db`, see `sink::outbox`): its commits are fsync'd, and in one
//! file they held the write lock that rule state and the replay guard wait
//! for on the message path.

use crate::trust::replay::{self, CounterWidth, ReplayError, Window};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The gateway's persistent state, shared by all pipelines.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Writes are rare (rules write on state transitions), so one connection
    /// behind a mutex is enough; the outbox has a connection of its own.
    conn: Mutex<Connection>,
    /// Keeps the background checkpointer going (see [`checkpoint_in_background`]).
    _alive: Arc<()>,
}

impl StateStore {
    /// Open (or create) `DIR/state.db`, creating `DIR` private to this user.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let (path, conn) = connect(dir, STATE_FILE, Durability::Normal)?;
        let sqlite = |source| StateError::Sqlite { path: path.clone(), source };
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS module_kv (
                 namespace TEXT NOT NULL,
                 key       TEXT NOT NULL,
                 value     BLOB NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS replay (
                 sensor TEXT PRIMARY KEY,
                 high   INTEGER NOT NULL,
                 seen   INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (
                 key   TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS sim_counter (
                 sensor TEXT PRIMARY KEY,
                 next   INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )
        .map_err(sqlite)?;
        let alive = Arc::new(());
        checkpoint_in_background(&path, &alive);
        Ok(StateStore { inner: Arc::new(Inner { path, conn: Mutex::new(conn), _alive: alive }) })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite { path: self.inner.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent.
        self.inner.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value of `key` in `namespace`.
    pub fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.conn()
            .prepare_cached("SELECT value FROM module_kv WHERE namespace = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.query_row(params![namespace, key], |row| row.get(0)).optional())
            .map_err(|e| self.sqlite(e))
    }

    /// Apply a batch of writes (`None` deletes) to `namespace` in one transaction.
    pub fn kv_apply(
        &self,
        namespace: &str,
        writes: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, value) in writes {
                match value {
                    Some(value) => tx
                        .prepare_cached(
                            "INSERT INTO module_kv (namespace, key, value) VALUES (?1, ?2, ?3)
                             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute(params![namespace, key, value])?,
                    None => tx
                        .prepare_cached("DELETE FROM module_kv WHERE namespace = ?1 AND key = ?2")?
                        .execute(params![namespace, key])?,
                };
            }
            tx.commit()
        };
        apply(&mut conn).map_err(|e| self.sqlite(e))
    }
}

impl StateStore {
    /// Check `seq` of `sensor` against its persisted replay window and, when
    /// fresh, record it. The outer error is the store's; the inner one the verdict.
    pub fn replay_accept(
        &self,
        sensor: &str,
        seq: u64,
        width: CounterWidth,
    ) -> Result<Result<(), ReplayError>, StateError> {
        Ok(self.replay_accept_all(&[(sensor, seq, width)])?.remove(0))
    }

    /// [`replay_accept`](Self::replay_accept) for several counters in order,
    /// in one transaction: one commit for a batch of readings instead of one
    /// each. A verdict per counter; nothing is recorded if the store fails.
    pub fn replay_accept_all(
        &self,
        counters: &[(&str, u64, CounterWidth)],
    ) -> Result<Vec<Result<(), ReplayError>>, StateError> {
        let mut conn = self.conn();
        let check_all = |conn: &mut Connection| -> rusqlite::Result<Vec<Result<(), ReplayError>>> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut windows: HashMap<&str, Option<Window>> = HashMap::new();
            let mut verdicts = Vec::with_capacity(counters.len());
            for &(sensor, seq, width) in counters {
                let window = match windows.get(sensor) {
                    Some(window) => *window,
                    None => tx
                        .prepare_cached("SELECT high, seen FROM replay WHERE sensor = ?1")?
                        .query_row(params![sensor], |r| {
                            Ok(Window { high: r.get::<_, i64>(0)? as u64, seen: r.get::<_, i64>(1)? as u32 })
                        })
                        .optional()?,
                };
                verdicts.push(replay::check(window, seq, width).map(|updated| {
                    windows.insert(sensor, Some(updated));
                }));
                windows.entry(sensor).or_insert(window);
            }
            for (sensor, window) in &windows {
                let Some(window) = window else { continue };
                tx.prepare_cached(
                    "INSERT INTO replay (sensor, high, seen) VALUES (?1, ?2, ?3)
                     ON CONFLICT (sensor) DO UPDATE SET high = excluded.high, seen = excluded.seen",
                )?
                .execute(params![sensor, window.high as i64, i64::from(window.seen)])?;
            }
            tx.commit()?;
            Ok(verdicts)
        };
        check_all(&mut conn).map_err(|e| self.sqlite(e))
    }

    /// Forget `sensor`'s replay window (a deliberate re-key or a battery
    /// swap that reset its counter). True when there was one.
    pub fn replay_reset(&self, sensor: &str) -> Result<bool, StateError> {
        self.conn()
            .execute("DELETE FROM replay WHERE sensor = ?1", params![sensor])
            .map(|n| n > 0)
            .map_err(|e| self.sqlite(e))
    }

    /// This gateway's secret salt for opaque topic ids, made on first use.
    pub fn topic_salt(&self) -> Result<[u8; 32], StateError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).expect("the operating system's random number generator");
        let conn = self.conn();
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('topic-salt', ?1)", params![&fresh[..]])
            .and_then(|_| {
                conn.query_row("SELECT value FROM meta WHERE key = 'topic-salt'", [], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
            })
            .map(|v| v.try_into().unwrap_or(fresh))
            .map_err(|e| self.sqlite(e))
    }

    /// The next counter a simulated sensor sends (its "flash"), advanced by one.
    pub fn sim_next_counter(&self, sensor: &str) -> Result<u64, StateError> {
        let conn = self.conn();
        conn.query_row(
            "INSERT INTO sim_counter (sensor, next) VALUES (?1, 2)
             ON CONFLICT (sensor) DO UPDATE SET next = next + 1
             RETURNING next - 1",
            params![sensor],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(|e| self.sqlite(e))
    }
}

/// How hard a connection's commits hold on to the disk.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    /// WAL `synchronous = NORMAL`: survives a process crash, may lose the
    /// last commits on power loss (module state, replay windows).
    Normal,
    /// `synchronous = FULL`: every commit is fsync'd (the outbox: accepted
    /// means on disk).
    Full,
}

impl Durability {
    /// The `PRAGMA synchronous` value.
    pub fn synchronous(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "state.db";

/// Open a connection to `dir/file` (creating `dir` private to this user)
/// in WAL mode, waiting up to 5 s for a busy database.
pub fn connect(dir: &Path, file: &str, durability: Durability) -> Result<(PathBuf, Connection), StateError> {
    create_private_dir(dir).map_err(|source| StateError::CreateDir { path: dir.to_path_buf(), source })?;
    let path = dir.join(file);
    let sqlite = |source| StateError::Sqlite { path: path.clone(), source };
    let conn = Connection::open(&path).map_err(sqlite)?;
    let synchronous = durability.synchronous();
    // No automatic checkpoints: they would fsync in whichever commit
    // crosses the threshold, on the message path; see checkpoint_in_background.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;
         PRAGMA wal_autocheckpoint = 0;"
    ))
    .map_err(sqlite)?;
    Ok((path, conn))
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Checkpoint the database at `path` every second from a thread with its own
/// connection, while `alive` has other owners. A checkpoint writes the WAL
/// back into the database file and fsyncs it; SQLite would otherwise do that
/// inside whichever commit crossed its threshold (a rule's state write, an
/// outbox append), adding milliseconds to that message. Passive: it never
/// waits for, or blocks, the connections writing; at worst the WAL grows
/// until the next one, and closing the last connection checkpoints too.
pub fn checkpoint_in_background(path: &Path, alive: &Arc<()>) {
    let (file, alive) = (path.to_path_buf(), Arc::downgrade(alive));
    let spawned = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
        let path = file;
        let mut conn = None;
        loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            if alive.strong_count() == 0 {
                return;
            }
            let conn = match &conn {
                Some(conn) => conn,
                None => match Connection::open(&path) {
                    Ok(opened) => conn.insert(opened),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "checkpoint: {e}");
                        continue;
                    }
                },
            };
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(file = %path.display(), "checkpoint: {e}");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(file = %path.display(), "no background checkpoints: the log grows until the daemon stops: {e}");
    }
}

/// Create `dir` (and parents) readable only by this user: it holds state and,
/// later, keys.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values persist across reopening and namespaces are separate.
    #[test]
    fn kv_persists_per_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let set = |ns: &str, v: &[u8]| store.kv_apply(ns, [("k".to_string(), Some(v.to_vec()))]).unwrap();
        set("home/alarm", b"one");
        set("home/alarm", b"two");
        set("home/heating", b"other");
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.kv_get("home/alarm", "k").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.kv_get("home/heating", "k").unwrap().as_deref(), Some(&b"other"[..]));
        store.kv_apply("home/alarm", [("k".to_string(), None)]).unwrap();
        assert_eq!(store.kv_get("home/alarm", "k").unwrap(), None);
    }

    /// The replay window persists: a replay after reopening is refused, and a reset forgets it.
    #[test]
    fn replay_window_persists_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.replay_accept("w", 7, CounterWidth::Bits64).unwrap(), Ok(()));
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.replay_accept("w", 7, CounterWidth::Bits64).unwrap().is_err());
        assert!(store.replay_accept("other", 7, CounterWidth::Bits64).unwrap().is_ok());
        assert!(store.replay_reset("w").unwrap());
        assert_eq!(store.replay_accept("w", 1, CounterWidth::Bits64).unwrap(), Ok(()));
    }

    /// Counters checked together see each other (a repeat within the batch
    /// is a replay) and are all recorded by the one commit.
    #[test]
    fn replay_batch_sees_its_own_counters() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let w = CounterWidth::Bits64;
        let verdicts =
            store.replay_accept_all(&[("w", 5, w), ("w", 5, w), ("x", 1, w), ("w", 6, w)]).unwrap();
        assert_eq!(verdicts.iter().map(Result::is_ok).collect::<Vec<_>>(), [true, false, true, true]);
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        let again = store.replay_accept_all(&[("w", 6, w), ("x", 1, w), ("w", 7, w)]).unwrap();
        assert_eq!(again.iter().map(Result::is_ok).collect::<Vec<_>>(), [false, false, true]);
    }

    /// Writes go to the WAL and the background checkpointer copies them into
    /// the database file (SQLite's own checkpoints are off).
    #[test]
    fn checkpoints_happen_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let db_size = || std::fs::metadata(dir.path().join("state.db")).unwrap().len();
        let empty = db_size();
        for i in 0..200 {
            store.kv_apply("ns", [(format!("k{i}"), Some(vec![7u8; 4096]))]).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while db_size() < empty + 200 * 4096 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(store.kv_get("ns", "k199").unwrap(), Some(vec![7u8; 4096]));
    }

    /// A simulated sensor's counter keeps counting across reopening.
    #[test]
    fn sim_counter_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.sim_next_counter("s").unwrap(), 1);
        assert_eq!(store.sim_next_counter("s").unwrap(), 2);
        drop(store);
        assert_eq!(StateStore::open(dir.path()).unwrap().sim_next_counter("s").unwrap(), 3);
    }

    /// The state directory is created private to its owner.
    #[test]
    fn state_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        StateStore::open(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
