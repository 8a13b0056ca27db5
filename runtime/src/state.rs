//! `state.db`: the one SQLite file (WAL mode) that holds what must survive a
//! restart. For now that is each module's key-value state; the outbox and the
//! replay counters join it later. One file to back up or inspect.

use rusqlite::{Connection, OptionalExtension, params};
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
    /// behind a mutex is enough; the outbox will get its own writer task.
    conn: Mutex<Connection>,
}

impl StateStore {
    /// Open (or create) `DIR/state.db`, creating `DIR` private to this user.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        create_private_dir(dir)
            .map_err(|source| StateError::CreateDir { path: dir.to_path_buf(), source })?;
        let path = dir.join("state.db");
        let sqlite = |source| StateError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS module_kv (
                 namespace TEXT NOT NULL,
                 key       TEXT NOT NULL,
                 value     BLOB NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;",
        )
        .map_err(sqlite)?;
        Ok(StateStore { inner: Arc::new(Inner { path, conn: Mutex::new(conn) }) })
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
            let tx = conn.transaction()?;
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
