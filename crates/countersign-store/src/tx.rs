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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use countersign_audit::Event;
use countersign_audit::merkle::{Hash, stored_hash_index, stored_hashes, stored_hashes_indexes};

use crate::backend::{Backend, Conn, Hashes};
use crate::decision::Decision;
use crate::error::Error;
use crate::group::{Group, Member};
use crate::log::{Entry, Leaf, NewEntry};
use crate::mirror::Mirror;

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
    /// Blobs committed before: not stored again.
    blobs: Arc<KnownBlobs>,
    /// Blobs this transaction stored: known once it commits.
    new_blobs: Vec<String>,
}

/// Digests of the blobs this process's transactions committed (shared by a store's clones).
/// Bounded: when full it forgets them all and relearns; storing a blob again is harmless.
#[derive(Debug, Default)]
pub(crate) struct KnownBlobs(Mutex<HashSet<String>>);

/// Distinct blobs remembered at most (about 100 bytes each).
const KNOWN_BLOBS: usize = 4096;

impl KnownBlobs {
    fn contains(&self, digest: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(digest)
    }

    fn extend(&self, digests: Vec<String>) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() + digests.len() > KNOWN_BLOBS {
            known.clear();
        }
        known.extend(digests);
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Tx {
    /// A transaction joining `group`'s batch (see `group::Group::join` for `savepoint`).
    pub(crate) async fn begin(
        group: &Group,
        backend: &Backend,
        mirror: &Arc<Mirror>,
        blobs: &Arc<KnownBlobs>,
        savepoint: bool,
    ) -> Result<Tx, Error> {
        let mut member = group.join(backend, mirror, savepoint).await?;
        let batch = member.batch();
        // The head was locked when the batch began; earlier members' appends are in it.
        let (head, written) = (Some(batch.head), batch.written.clone());
        Ok(Tx {
            member: Some(member),
            head,
            dirty: false,
            written,
            blobs: blobs.clone(),
            new_blobs: Vec::new(),
        })
    }

    /// This transaction's place in its batch.
    pub(crate) fn member(&self) -> &Member {
        self.member
            .as_ref()
            .expect("a Tx holds its batch until commit or rollback consumes it")
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
        let indexes = self.append(&[Leaf::new(event)?]).await?;
        indexes
            .first()
            .copied()
            .ok_or_else(|| Error::Batch("appending one leaf gave no index".to_owned()))
    }

    /// Appends `leaves` to the log in order, in one round trip; returns their indexes. The
    /// leaves are encoded (and checked) by [`Leaf::new`] beforehand, so callers can do that
    /// work before [`Store::begin`]: appenders are serialized, and only what happens
    /// between `begin` and `commit` is.
    pub async fn append(&mut self, leaves: &[Leaf]) -> Result<Vec<u64>, Error> {
        let entries = self.entries(leaves, None).await?;
        let written = self.conn().insert_entries(&entries).await;
        self.appended(&entries, written)
    }

    /// The entries `leaves` make at the end of the log as this transaction leaves it,
    /// with their stored hashes (remembered as written; see [`Tx::appended`]).
    ///
    /// `new_subject` names a subject this same write creates and that the database refuses
    /// to create twice (a new proposal: its row's primary key, written in the same
    /// statement, fails the write if the id exists, and no entry is about a proposal
    /// before its row): its first leaf here is the first entry about it, so the log is not
    /// asked. That lookup was a round trip inside the write order, which every other
    /// writer waits for.
    pub(crate) async fn entries<'l>(
        &mut self,
        leaves: &'l [Leaf],
        new_subject: Option<&str>,
    ) -> Result<Vec<NewEntry<'l>>, Error> {
        let mut index = match self.head {
            Some(head) => head,
            None => self.conn().lock_head().await?,
        };
        self.head = Some(index);
        // Each entry names the previous entry about its subject: appenders are serialized,
        // so the last entry about a subject read here is the last one in the log.
        let mut last: HashMap<&str, Option<u64>> = HashMap::new();
        let mut chained = Vec::with_capacity(leaves.len());
        for (offset, leaf) in (index..).zip(leaves) {
            let prev = match last.get(leaf.subject()) {
                Some(prev) => *prev,
                None if new_subject == Some(leaf.subject()) => None,
                None => self.conn().last_about(leaf.subject()).await?,
            };
            last.insert(leaf.subject(), Some(offset));
            chained.push(leaf.chained(prev)?);
        }
        let mut entries = Vec::with_capacity(leaves.len());
        for leaf in chained {
            let needed = stored_hashes_indexes(index);
            let missing: Vec<u64> = needed
                .iter()
                .copied()
                .filter(|i| !self.written.contains_key(i))
                .collect();
            let mut siblings = Hashes::default();
            if !missing.is_empty() {
                match self.conn().hashes(&missing).await {
                    Ok(read) => siblings = read,
                    Err(e) => {
                        self.forget(&entries);
                        return Err(e);
                    }
                }
            }
            for i in &needed {
                if let Some(h) = self.written.get(i) {
                    siblings.0.insert(*i, *h);
                }
            }
            let new = stored_hashes(index, leaf.hash, &siblings)?;
            let first = stored_hash_index(0, index);
            // Later leaves of this call read these as siblings.
            self.written.extend((first..).zip(new.iter().copied()));
            entries.push(NewEntry {
                index,
                leaf,
                first,
                hashes: new,
            });
            index += 1;
        }
        Ok(entries)
    }

    /// Settles entries from [`Tx::entries`] once their write ended: on success the log grows
    /// by them (their indexes are returned); on failure their hashes are forgotten.
    pub(crate) fn appended(
        &mut self,
        entries: &[NewEntry<'_>],
        written: Result<(), Error>,
    ) -> Result<Vec<u64>, Error> {
        if let Err(e) = written {
            self.forget(entries);
            return Err(e);
        }
        if let Some(last) = entries.last() {
            self.head = Some(last.index + 1);
            self.dirty = true;
        }
        Ok(entries.iter().map(|e| e.index).collect())
    }

    /// Forgets the stored hashes of entries that were not written.
    fn forget(&mut self, entries: &[NewEntry<'_>]) {
        for entry in entries {
            for i in (entry.first..).take(entry.hashes.len()) {
                self.written.remove(&i);
            }
        }
    }

    /// Stores `content` as a blob and returns its digest (lower-case hex SHA-256), the name
    /// events use to refer to it.
    pub async fn put_blob(&mut self, content: &[u8]) -> Result<String, Error> {
        let digest = countersign_audit::bundle::digest(content);
        self.put_blob_at(digest, content).await
    }

    /// [`Tx::put_blob`] for a [`Blob`](countersign_audit::bundle::Blob), hashed when it was
    /// made: not hashed again.
    pub async fn put_hashed_blob(
        &mut self,
        blob: &countersign_audit::bundle::Blob,
    ) -> Result<String, Error> {
        self.put_blob_at(blob.digest().to_owned(), blob.bytes())
            .await
    }

    async fn put_blob_at(&mut self, digest: String, content: &[u8]) -> Result<String, Error> {
        // Content-addressed and never deleted: a blob a committed transaction of this
        // process stored is there; the governed files most decisions record are.
        if !self.blobs.contains(&digest) {
            self.conn().insert_blob(&digest, content).await?;
            self.new_blobs.push(digest.clone());
            if let Some(member) = self.member.as_mut() {
                member.batch().blob_bytes += content.len();
            }
        }
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

    /// The entries about `subject` as this transaction sees them (those earlier members of
    /// its batch appended included), in log order.
    pub async fn entries_about(&mut self, subject: &str) -> Result<Vec<Entry>, Error> {
        self.conn().leaves_about(subject).await
    }

    /// Commits the appended events and everything else done in this transaction; returns
    /// once they are durable (the batch holding them committed).
    pub async fn commit(mut self) -> Result<(), Error> {
        let Some(member) = self.hand_over() else {
            return Ok(());
        };
        member.commit().await?;
        self.committed_blobs();
        Ok(())
    }

    /// Leaves this transaction's log state to its batch, and the batch to the caller, who
    /// ends the membership.
    pub(crate) fn hand_over(&mut self) -> Option<Member> {
        let mut member = self.member.take()?;
        let batch = member.batch();
        if let Some(head) = self.head {
            batch.head = head;
        }
        batch.dirty |= self.dirty;
        batch.written = std::mem::take(&mut self.written);
        Some(member)
    }

    /// Blobs this transaction stored, known to the store once it committed.
    pub(crate) fn committed_blobs(&mut self) {
        self.blobs.extend(std::mem::take(&mut self.new_blobs));
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
