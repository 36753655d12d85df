//! [`Tx`]: a write transaction that appends audit events and records the state changes they
//! describe, committed or rolled back together.
//!
//! One appender at a time: on SQLite the transaction begins `IMMEDIATE` (the database's
//! single write lock, taken up front so two writers never both read the same log size); on
//! PostgreSQL the first append locks the `log_head` row (`SELECT … FOR UPDATE`) until the
//! transaction ends. Either way a second process appending to the same database waits, reads
//! the new size, and appends after: the log never forks. Dropping a `Tx` rolls it back.
//!
//! This module does not read the log for callers; [`crate::Store`] does.

use std::collections::HashMap;

use countersign_audit::merkle::{Hash, stored_hash_index, stored_hashes, stored_hashes_indexes};
use countersign_audit::{Event, leaf_bytes, leaf_hash};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::backend::{Conn, Hashes};
use crate::decision::Decision;
use crate::error::{Error, db};
use crate::store::{Backend, Store};

/// An open write transaction. See the module docs.
pub struct Tx {
    inner: Inner,
    /// The log size as this transaction will leave it, once the head is locked.
    head: Option<u64>,
    /// Whether `head` differs from the `log_head` row (written once, at commit).
    dirty: bool,
    /// Stored hashes written by this transaction: later appends read their siblings here
    /// instead of querying, which makes batch appends one round trip cheaper each.
    written: HashMap<u64, Hash>,
}

enum Inner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Tx {
    pub(crate) async fn begin(store: &Store) -> Result<Tx, Error> {
        let inner = match &store.backend {
            Backend::Sqlite(pool) => Inner::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db("beginning transaction"))?,
            ),
            Backend::Postgres(pool) => {
                Inner::Postgres(pool.begin().await.map_err(db("beginning transaction"))?)
            }
        };
        Ok(Tx {
            inner,
            head: None,
            dirty: false,
            written: HashMap::new(),
        })
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            Inner::Sqlite(tx) => Conn::Sqlite(tx),
            Inner::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Appends `event` to the log; returns its index. Visible to others only after
    /// [`Tx::commit`].
    pub async fn append_event(&mut self, event: &Event) -> Result<u64, Error> {
        let leaf = leaf_bytes(event)?;
        // Refuse now what could not be read back: an event with invalid fields.
        Event::from_leaf(&leaf)?;
        let index = match self.head {
            Some(head) => head,
            None => self.conn().lock_head().await?,
        };
        let hash = leaf_hash(&leaf);

        let needed = stored_hashes_indexes(index);
        let mut siblings = Hashes::default();
        let missing: Vec<u64> = needed
            .iter()
            .copied()
            .filter(|i| !self.written.contains_key(i))
            .collect();
        if !missing.is_empty() {
            siblings = self.conn().hashes(&missing).await?;
        }
        for i in &needed {
            if let Some(h) = self.written.get(i) {
                siblings.0.insert(*i, *h);
            }
        }
        let new = stored_hashes(index, hash, &siblings)?;

        let first = stored_hash_index(0, index);
        let mut conn = self.conn();
        conn.insert_leaf(index, &leaf, &hash).await?;
        conn.insert_subject(index, &event.subject).await?;
        conn.insert_hashes(first, &new).await?;
        self.written.extend((first..).zip(new));
        self.head = Some(index + 1);
        self.dirty = true;
        Ok(index)
    }

    /// Stores `content` as a blob and returns its digest (lower-case hex SHA-256), the name
    /// events use to refer to it.
    pub async fn put_blob(&mut self, content: &[u8]) -> Result<String, Error> {
        let digest = countersign_audit::bundle::digest(content);
        self.conn().insert_blob(&digest, content).await?;
        Ok(digest)
    }

    /// Records `decision`. Its `log_index` must name an existing entry, typically the one
    /// [`Tx::append_event`] just returned.
    pub async fn put_decision(&mut self, decision: &Decision) -> Result<(), Error> {
        self.conn().insert_decision(decision).await
    }

    /// Commits the appended events and everything else done in this transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        if let (true, Some(head)) = (self.dirty, self.head) {
            self.conn().set_log_size(head).await?;
        }
        match self.inner {
            Inner::Sqlite(tx) => tx.commit().await,
            Inner::Postgres(tx) => tx.commit().await,
        }
        .map_err(db("committing transaction"))
    }

    /// Rolls back; the same as dropping the `Tx`, but waits for the database and reports
    /// errors.
    pub async fn rollback(self) -> Result<(), Error> {
        match self.inner {
            Inner::Sqlite(tx) => tx.rollback().await,
            Inner::Postgres(tx) => tx.rollback().await,
        }
        .map_err(db("rolling back transaction"))
    }
}
