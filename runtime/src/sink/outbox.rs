//! The durable outbox: uplink messages wait here, in `outbox.db` in the
//! state directory, until the broker acknowledged them (MQTT PUBACK). A message is *accepted* once its
//! transaction committed; it leaves only after the acknowledgement, so a
//! broker outage or a gateway crash loses nothing (at-least-once: a message
//! whose PUBACK was lost is sent again, with the same id).
//!
//! Appends are group-committed: the uplink sink buffers what arrives while a
//! commit is under way and commits it as one transaction, with
//! `synchronous = FULL`: a commit is on disk (fsync'd) before it counts, so
//! acceptance survives power loss, not only a process crash. Removing
//! acknowledged messages does not wait for the disk (`synchronous = NORMAL`
//! for that transaction): a power cut may undo a removal, and the message is
//! then sent again, which at-least-once allows (its id marks the repeat);
//! the next append's fsync makes earlier removals durable too. An fsync per
//! batch of acknowledgements held the lock appends wait on.
//!
//! The file is its own so that the appends' fsyncs never hold the write lock
//! that rule state and the replay guard (in `state.db`) take on the message
//! path; outboxes of earlier versions, a table in `state.db`, move here when
//! first opened.
//!
//! Bounded in bytes, with an explicit policy when full: `reject-new` refuses
//! new messages, `drop-oldest` evicts the oldest; either way it is counted.

use crate::state::{Durability, StateError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What to do with a new message when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Refuse the new message (keep the history intact).
    RejectNew,
    /// Evict the oldest messages to make room (keep the present).
    DropOldest,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The message's unique id, for consumers to deduplicate.
    pub id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    /// The envelope's media type (sent as the MQTT 5 content type).
    pub content_type: Option<String>,
    pub created_ms: u64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the outbox: sending follows it, so order is kept.
    pub seq: i64,
    pub id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub content_type: Option<String>,
}

/// What one append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub accepted: usize,
    /// Refused under `reject-new`.
    pub rejected: usize,
    /// Evicted under `drop-oldest`.
    pub evicted: usize,
}

/// Depth and age, for status and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub messages: u64,
    pub bytes: u64,
    pub oldest_created_ms: Option<u64>,
}

/// The outbox in `outbox.db`. Its write transactions take the write lock up
/// front (`BEGIN IMMEDIATE`), so a reader's snapshot never makes them fail.
pub struct Outbox {
    path: PathBuf,
    /// The connection, and the bytes stored (kept here: summing the table
    /// on every append would cost O(depth) just when an outage makes it deep).
    conn: Mutex<(Connection, u64)>,
    /// The bound in bytes and what to do at it; a reload may change them.
    limits: Mutex<(u64, Overflow)>,
    /// Keeps the background checkpointer going.
    _alive: Arc<()>,
}

/// Whether `error` says the disk (or the database's size limit) is full,
/// which retrying at once does not cure.
pub fn is_storage_full(error: &StateError) -> bool {
    matches!(
        error,
        StateError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
            if e.code == rusqlite::ErrorCode::DiskFull
    )
}

/// The outbox's file name in the state directory.
pub const OUTBOX_FILE: &str = "outbox.db";

/// Move the messages of an outbox kept in `state.db` (before version 0.2)
/// into `conn`'s, keeping their order and sequence numbers, then drop the
/// old table. Safe to repeat after a crash half way: a message already moved
/// keeps its sequence number and is not copied twice.
fn move_old_outbox(conn: &mut Connection, state_db: &Path) -> rusqlite::Result<()> {
    if !state_db.exists() {
        return Ok(());
    }
    conn.execute("ATTACH DATABASE ?1 AS old", params![state_db.to_string_lossy()])?;
    let moved = copy_and_drop_old(conn);
    conn.execute("DETACH DATABASE old", [])?;
    let moved = moved?;
    if moved > 0 {
        tracing::info!(moved, from = %state_db.display(), "outbox moved to its own file");
    }
    Ok(())
}

/// The work of [`move_old_outbox`], with the old file attached as `old`.
fn copy_and_drop_old(conn: &mut Connection) -> rusqlite::Result<usize> {
    let exists = conn
        .prepare("SELECT 1 FROM old.sqlite_master WHERE type = 'table' AND name = 'outbox'")?
        .exists([])?;
    if !exists {
        return Ok(0);
    }
    // The oldest layout had no content type.
    let has_content_type = conn
        .prepare("SELECT 1 FROM pragma_table_info('outbox', 'old') WHERE name = 'content_type'")?
        .exists([])?;
    let content_type = if has_content_type { "content_type" } else { "NULL" };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let moved = tx.execute(
            &format!(
                "INSERT OR IGNORE INTO main.outbox (seq, id, topic, payload, bytes, created_ms, content_type)
                 SELECT seq, id, topic, payload, bytes, created_ms, {content_type} FROM old.outbox ORDER BY seq"
            ),
            [],
        )?;
    tx.execute_batch("DROP TABLE old.outbox")?;
    tx.commit()?;
    Ok(moved)
}

/// How the next transactions on `conn` commit. Every transaction sets its
/// own, so an append is fsync'd whatever ran on the connection before it.
fn set_durability(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", durability.synchronous())
}

/// Bytes a message counts for: its payload, topic and id.
fn size(topic: &str, id: &str, payload: &[u8]) -> u64 {
    (topic.len() + id.len() + payload.len()) as u64
}

impl Outbox {
    /// Open the outbox in `dir/outbox.db`, moving in the messages of an
    /// earlier version's outbox in `dir/state.db`.
    pub fn open(dir: &Path, max_bytes: u64, overflow: Overflow) -> Result<Self, StateError> {
        let (path, mut conn) = crate::state::connect(dir, OUTBOX_FILE, Durability::Full)?;
        let sqlite = |source| StateError::Sqlite { path: path.clone(), source };
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (
                 seq          INTEGER PRIMARY KEY AUTOINCREMENT,
                 id           TEXT NOT NULL,
                 topic        TEXT NOT NULL,
                 payload      BLOB NOT NULL,
                 bytes        INTEGER NOT NULL,
                 created_ms   INTEGER NOT NULL,
                 content_type TEXT
             );",
        )
        .map_err(sqlite)?;
        move_old_outbox(&mut conn, &dir.join(crate::state::STATE_FILE)).map_err(sqlite)?;
        let used = conn
            .query_row("SELECT COALESCE(SUM(bytes), 0) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map_err(sqlite)? as u64;
        let alive = Arc::new(());
        crate::state::checkpoint_in_background(&path, &alive);
        Ok(Outbox {
            path,
            conn: Mutex::new((conn, used)),
            limits: Mutex::new((max_bytes, overflow)),
            _alive: alive,
        })
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite { path: self.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, (Connection, u64)> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bound it to `max_bytes` with `overflow` from the next append on
    /// (what it holds beyond a lowered bound stays until sent).
    pub fn set_limits(&self, max_bytes: u64, overflow: Overflow) {
        *self.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (max_bytes, overflow);
    }

    /// Append `batch` in one transaction, applying the overflow policy.
    pub fn append(&self, batch: &[NewEntry]) -> Result<Appended, StateError> {
        let (max_bytes, overflow) = *self.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut guard = self.conn();
        let (conn, stored) = &mut *guard;
        let run = |conn: &mut Connection, mut used: u64| -> rusqlite::Result<(Appended, u64)> {
            set_durability(conn, Durability::Full)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut report = Appended::default();
            for entry in batch {
                let bytes = size(&entry.topic, &entry.id, &entry.payload);
                if bytes > max_bytes {
                    report.rejected += 1;
                    continue;
                }
                while used + bytes > max_bytes {
                    match overflow {
                        Overflow::RejectNew => break,
                        Overflow::DropOldest => {
                            let freed: Option<i64> = tx
                                .query_row(
                                    "DELETE FROM outbox WHERE seq = (SELECT MIN(seq) FROM outbox) RETURNING bytes",
                                    [],
                                    |r| r.get(0),
                                )
                                .ok();
                            match freed {
                                Some(freed) => {
                                    used -= freed as u64;
                                    report.evicted += 1;
                                }
                                None => break,
                            }
                        }
                    }
                }
                if used + bytes > max_bytes {
                    report.rejected += 1;
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO outbox (id, topic, payload, bytes, created_ms, content_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    entry.id,
                    entry.topic,
                    entry.payload,
                    bytes as i64,
                    entry.created_ms as i64,
                    entry.content_type
                ])?;
                used += bytes;
                report.accepted += 1;
            }
            tx.commit()?;
            Ok((report, used))
        };
        let (report, used) = run(conn, *stored).map_err(|e| self.sqlite(e))?;
        *stored = used;
        Ok(report)
    }

    /// Up to `limit` messages after `after_seq`, oldest first.
    pub fn after(&self, after_seq: i64, limit: usize) -> Result<Vec<Entry>, StateError> {
        let guard = self.conn();
        let conn = &guard.0;
        let read = || -> rusqlite::Result<Vec<Entry>> {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, topic, payload, content_type FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
                Ok(Entry {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    topic: r.get(2)?,
                    payload: r.get(3)?,
                    content_type: r.get(4)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.sqlite(e))
    }

    /// Remove acknowledged messages.
    pub fn remove(&self, seqs: &[i64]) -> Result<(), StateError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut guard = self.conn();
        let (conn, stored) = &mut *guard;
        let run = |conn: &mut Connection| -> rusqlite::Result<u64> {
            // Undone by a power cut at worst: a duplicate, never a loss (module doc).
            set_durability(conn, Durability::Normal)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut freed = 0;
            for seq in seqs {
                let bytes: Option<i64> = tx
                    .prepare_cached("DELETE FROM outbox WHERE seq = ?1 RETURNING bytes")?
                    .query_row(params![seq], |r| r.get(0))
                    .optional()?;
                freed += bytes.unwrap_or(0) as u64;
            }
            tx.commit()?;
            Ok(freed)
        };
        let freed = run(conn).map_err(|e| self.sqlite(e))?;
        *stored = stored.saturating_sub(freed);
        Ok(())
    }

    /// How much waits, and since when.
    pub fn depth(&self) -> Result<Depth, StateError> {
        let guard = self.conn();
        // The oldest row holds the smallest created time in practice; MIN over
        // the rowid-ordered table would scan it all.
        guard
            .0
            .query_row(
                "SELECT COUNT(*), (SELECT created_ms FROM outbox ORDER BY seq LIMIT 1) FROM outbox",
                [],
                |r| {
                    Ok(Depth {
                        messages: r.get::<_, i64>(0)? as u64,
                        bytes: guard.1,
                        oldest_created_ms: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                    })
                },
            )
            .map_err(|e| self.sqlite(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize, payload_len: usize) -> NewEntry {
        NewEntry {
            id: format!("m{n}"),
            topic: "t".into(),
            payload: vec![7; payload_len],
            content_type: None,
            created_ms: n as u64,
        }
    }

    /// An outbox from an earlier version (a table in `state.db`, with or
    /// without the content type) moves to `outbox.db` with its order and
    /// sequence numbers, once.
    #[test]
    fn old_outbox_in_state_db_moves_over() {
        for with_content_type in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let old = Connection::open(dir.path().join("state.db")).unwrap();
            old.execute_batch(
                "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
                     topic TEXT NOT NULL, payload BLOB NOT NULL, bytes INTEGER NOT NULL,
                     created_ms INTEGER NOT NULL);
                 INSERT INTO outbox VALUES (7, 'a', 't', x'01', 3, 1), (9, 'b', 't', x'02', 3, 2);
                 CREATE TABLE module_kv (k TEXT);",
            )
            .unwrap();
            if with_content_type {
                old.execute_batch("ALTER TABLE outbox ADD COLUMN content_type TEXT").unwrap();
            }
            drop(old);
            for _ in 0..2 {
                let outbox = Outbox::open(dir.path(), 1 << 20, Overflow::RejectNew).unwrap();
                let all = outbox.after(0, 100).unwrap();
                let kept: Vec<_> = all.iter().map(|e| (e.seq, e.id.as_str())).collect();
                assert_eq!(kept, [(7, "a"), (9, "b")]);
                assert_eq!(outbox.depth().unwrap().bytes, 6);
            }
            let old = Connection::open(dir.path().join("state.db")).unwrap();
            let tables: Vec<String> = old
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(tables, ["module_kv"], "the old table is gone, the rest untouched");
            // New messages follow the moved ones.
            let outbox = Outbox::open(dir.path(), 1 << 20, Overflow::RejectNew).unwrap();
            outbox.append(&[entry(3, 1)]).unwrap();
            assert!(outbox.after(9, 10).unwrap()[0].seq > 9);
        }
    }

    /// Appended messages come back in order and survive reopening; removed ones are gone.
    #[test]
    fn order_persistence_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 1 << 20, Overflow::RejectNew).unwrap();
        let batch: Vec<_> = (0..5).map(|n| entry(n, 10)).collect();
        assert_eq!(outbox.append(&batch).unwrap().accepted, 5);
        drop(outbox);
        let outbox = Outbox::open(dir.path(), 1 << 20, Overflow::RejectNew).unwrap();
        let all = outbox.after(0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["m0", "m1", "m2", "m3", "m4"]);
        outbox.remove(&[all[0].seq, all[2].seq]).unwrap();
        let rest = outbox.after(0, 100).unwrap();
        assert_eq!(rest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["m1", "m3", "m4"]);
        assert_eq!(outbox.after(rest[1].seq, 100).unwrap().len(), 1);
        let depth = outbox.depth().unwrap();
        assert_eq!((depth.messages, depth.oldest_created_ms), (3, Some(1)));
        // Removal committed without an fsync; the next append has its fsync back.
        let synchronous = || outbox.conn().0.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0));
        assert_eq!(synchronous().unwrap(), 1, "NORMAL after a removal");
        outbox.append(&[entry(9, 10)]).unwrap();
        assert_eq!(synchronous().unwrap(), 2, "FULL for appends");
    }

    /// Full under reject-new: new messages are refused and counted, the old stay.
    #[test]
    fn reject_new_when_full() {
        let dir = tempfile::tempdir().unwrap();
        // Each entry counts 1 (topic) + 2 (id) + 97 = 100 bytes.
        let outbox = Outbox::open(dir.path(), 250, Overflow::RejectNew).unwrap();
        let report = outbox.append(&[entry(1, 97), entry(2, 97), entry(3, 97)]).unwrap();
        assert_eq!(report, Appended { accepted: 2, rejected: 1, evicted: 0 });
        let ids: Vec<_> = outbox.after(0, 10).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["m1", "m2"]);
    }

    /// Full under drop-oldest: the oldest are evicted and counted, the new kept.
    #[test]
    fn drop_oldest_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 250, Overflow::DropOldest).unwrap();
        let report = outbox.append(&[entry(1, 97), entry(2, 97), entry(3, 97), entry(4, 97)]).unwrap();
        assert_eq!(report, Appended { accepted: 4, rejected: 0, evicted: 2 });
        let ids: Vec<_> = outbox.after(0, 10).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["m3", "m4"]);
        assert_eq!(outbox.depth().unwrap().bytes, 200);
    }

    /// New limits (a reload) apply from the next append on.
    #[test]
    fn limits_change_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 250, Overflow::RejectNew).unwrap();
        assert_eq!(outbox.append(&[entry(1, 97), entry(2, 97), entry(3, 97)]).unwrap().rejected, 1);
        outbox.set_limits(1000, Overflow::RejectNew);
        assert_eq!(outbox.append(&[entry(4, 97)]).unwrap().accepted, 1);
        outbox.set_limits(300, Overflow::DropOldest);
        let report = outbox.append(&[entry(5, 97)]).unwrap();
        assert_eq!(report, Appended { accepted: 1, rejected: 0, evicted: 1 });
    }
}
