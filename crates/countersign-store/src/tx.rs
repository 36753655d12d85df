//! [`Tx`]: a write transaction that appends audit events and records the state changes they
//! describe, committed or rolled back together.
//!
//! One appender at a time: on SQLite the database transaction begins `IMMEDIATE` (the
//! database's single write lock, taken up front so two writers never both read the same log
//! size); on PostgreSQL it locks the `log_head` row (`SELECT … FOR UPDATE`) first thing, until
//! it ends. Either way a second process appending to the same database waits, reads
//! the new size, and appends after: the log never forks. Dropping a `Tx` rolls it back.
//!
//! Within one process, transactions are group-committed (see the `group` module): each `Tx`
//! is a savepoint of a shared database transaction, and [`Tx::commit`] returns once that
//! transaction is durably committed, so one fsync acknowledges many writers.
//!
//! This module does not read the log for callers; [`crate::Store`] does.

use std::collections::HashMap;

use countersign_audit::merkle::{Hash, stored_hash_index, stored_hashes, stored_hashes_indexes};
use countersign_audit::{Event, leaf_bytes, leaf_hash};

use crate::backend::int;
use crate::backend::{Conn, Hashes};
use crate::decision::Decision;
use crate::error::{Error, db};
use crate::group::Member;
use crate::store::Store;

/// An open write transaction. See the module docs.
pub struct Tx {
    /// The batch this transaction is a savepoint of; `None` once finished. Dropping it
    /// unfinished undoes the savepoint (see `group::Member`).
    member: Option<Member>,
    /// The log size as this transaction will leave it, once the head is locked.
    head: Option<u64>,
    /// Whether `head` differs from the `log_head` row (written once, at commit).
    dirty: bool,
    /// Stored hashes written by this transaction: later appends read their siblings here
    /// instead of querying, which makes batch appends one round trip cheaper each.
    written: HashMap<u64, Hash>,
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
        let mut member = store.group.join(&store.backend, &store.mirror).await?;
        let batch = member.batch();
        // The head was locked when the batch began; earlier members' appends are in it.
        let (head, written) = (Some(batch.head), batch.written.clone());
        Ok(Tx {
            member: Some(member),
            head,
            dirty: false,
            written,
        })
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        self.member
            .as_mut()
            .expect("a Tx holds its batch until commit or rollback consumes it")
            .batch()
            .conn()
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
        match &mut conn {
            // One round trip instead of three: appends are serialized, so on a network
            // database their round trips are the log's throughput.
            Conn::Postgres(c) => {
                insert_entry_postgres(c, index, &leaf, &hash, &event.subject, first, &new).await?
            }
            Conn::Sqlite(_) => {
                conn.insert_leaf(index, &leaf, &hash).await?;
                conn.insert_subject(index, &event.subject).await?;
                conn.insert_hashes(first, &new).await?;
            }
        }
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

    /// The decision with this id as this transaction sees it. Read decisions a transaction
    /// depends on here, not through [`crate::Store`]: under group commit a proposal row this
    /// transaction locked may point at a decision an earlier member of the same batch wrote,
    /// which other connections do not see until the batch commits.
    pub async fn decision(&mut self, id: &str) -> Result<Option<Decision>, Error> {
        self.conn().decision(id).await
    }

    /// Commits the appended events and everything else done in this transaction; returns
    /// once they are durable (the batch holding them committed).
    pub async fn commit(mut self) -> Result<(), Error> {
        let Some(mut member) = self.member.take() else {
            return Ok(());
        };
        let batch = member.batch();
        if let Some(head) = self.head {
            batch.head = head;
        }
        batch.dirty |= self.dirty;
        batch.written = std::mem::take(&mut self.written);
        member.commit().await
    }

    /// Rolls back; the same as dropping the `Tx`, but waits for the database and reports
    /// errors.
    pub async fn rollback(mut self) -> Result<(), Error> {
        match self.member.take() {
            Some(member) => member.rollback().await,
            None => Ok(()),
        }
    }
}

/// The leaf, its subject and its stored hashes in one PostgreSQL statement (data-modifying
/// `WITH` clauses run in the same snapshot, all or nothing), as `insert_leaf`,
/// `insert_subject` and `insert_hashes` do in three.
async fn insert_entry_postgres(
    c: &mut sqlx::PgConnection,
    index: u64,
    leaf: &[u8],
    leaf_hash: &Hash,
    subject: &str,
    first: u64,
    hashes: &[Hash],
) -> Result<(), Error> {
    use std::fmt::Write as _;
    let index = int("leaf index", index)?;
    let first = int("stored hash index", first)?;
    let mut sql = String::from(
        "WITH leaf AS (INSERT INTO log_leaves (idx, leaf, leaf_hash) VALUES ($1, $2, $3)), \
         subject AS (INSERT INTO log_subjects (idx, subject) VALUES ($1, $4)) \
         INSERT INTO log_hashes (idx, hash) VALUES ",
    );
    for i in 0..hashes.len() {
        // Writing to a String cannot fail.
        let _ = write!(
            sql,
            "{}(${}, ${})",
            if i > 0 { ", " } else { "" },
            5 + 2 * i,
            6 + 2 * i
        );
    }
    let mut query = sqlx::query(&sql)
        .bind(index)
        .bind(leaf)
        .bind(&leaf_hash.0[..])
        .bind(subject);
    for (offset, hash) in (0i64..).zip(hashes) {
        query = query.bind(first + offset).bind(&hash.0[..]);
    }
    query
        .execute(&mut *c)
        .await
        .map_err(db("appending log entry"))?;
    Ok(())
}
