//! Group commit: the write transactions of one process share database transactions, so one
//! durable commit (one fsync) acknowledges many of them.
//!
//! Every [`crate::Tx`] is a *member* of a batch: a database transaction opened by the first
//! member (`BEGIN IMMEDIATE` on SQLite; on PostgreSQL the `log_head` row is locked first
//! thing, so batches of different processes always take their locks in the same order and
//! cannot deadlock), in which each member runs inside its own `SAVEPOINT`. Members run one
//! at a time (a fair async mutex), exactly the serial order SQLite's single writer imposed
//! anyway. A member that rolls back (or is dropped) undoes only its savepoint. When a member
//! finishes, the batch is committed at once if no other transaction is waiting to join (or
//! the batch is full); otherwise it stays open for the next member, and the finished members
//! wait for its commit.
//!
//! Nothing is acknowledged before it is durable: [`crate::Tx::commit`] returns only after the
//! database `COMMIT` of its batch succeeded, and if that commit fails every member of the
//! batch gets the error (none of them is written). Under load the batch naturally grows
//! with the requests that arrive during one commit's fsync; alone, a transaction commits
//! immediately, as before.
//!
//! Every round trip a member makes while it holds the batch is time every other writer of
//! the process waits. Opening a proposal (`Store::commit_decided`) is one round trip: on
//! SQLite its write carries the release of its savepoint ([`Member::release_sql`]); on
//! PostgreSQL it runs without a savepoint when it can ([`Group::join`] with `savepoint:
//! false`), its one statement written so that the expected refusal (a taken id) changes
//! nothing instead of failing. That keeps PostgreSQL's batches free of subtransactions: each
//! savepoint that writes takes a transaction id of its own, and past 64 of them in one
//! transaction every snapshot taken anywhere in the database has to look them up on disk.
//!
//! A member's failure never costs another member its write. Without a savepoint, any other
//! failure of that statement aborts the database transaction, so such a member only runs
//! where everything before it in the batch can be done again: it joins without a savepoint
//! only a batch whose members so far all joined without one (they are `commit_decided`
//! calls, which keep their inputs). When it fails, its batch is rolled back and every
//! earlier member is told [`Error::RolledBack`]: nothing of theirs was written, and they
//! write again, with a savepoint of their own (`Store::commit_decided`). A member after it
//! finds it released already: its one statement succeeded. On SQLite the batches also checkpoint the write-ahead log, after their
//! members were answered (see `checkpoint_if_due`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use countersign_audit::merkle::{Hash, stored_hash_index, stored_hashes_indexes};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::backend::{Backend, Conn};
use crate::error::{Error, db};
use crate::mirror::Mirror;

/// Members committed per database transaction at most, so a batch's locks are held for a
/// bounded time even under a steady stream of writers.
const MAX_MEMBERS: usize = 128;
const SAVEPOINT: &str = "SAVEPOINT countersign_member";
const RELEASE: &str = "RELEASE SAVEPOINT countersign_member";
/// Releases a member's savepoint and opens the next member's, in one round trip.
const RELEASE_AND_REOPEN: &str =
    "RELEASE SAVEPOINT countersign_member; SAVEPOINT countersign_member";
const UNDO: &str = "ROLLBACK TO SAVEPOINT countersign_member; RELEASE SAVEPOINT countersign_member";

/// The batching state of one [`crate::Store`] (shared by its clones).
#[derive(Default)]
pub(crate) struct Group {
    batch: Arc<Mutex<Option<Batch>>>,
    /// Transactions waiting for the mutex: while there are some, a finishing member leaves
    /// the batch open for them.
    waiting: Arc<AtomicUsize>,
    /// Committed stored hashes the next append needs (the right edge of the tree as this
    /// process last left it), so appends need not read them back. A stored hash never
    /// changes once committed, so an entry is never wrong, at worst no longer needed (when
    /// another process appended meanwhile): then the database is read as usual.
    frontier: Arc<std::sync::Mutex<HashMap<u64, Hash>>>,
    /// What was committed since the last checkpoint (see [`checkpoint_if_due`]).
    since_checkpoint: Arc<SinceCheckpoint>,
}

/// Members and blob bytes committed since the last checkpoint; only the batch holder
/// touches them.
#[derive(Debug, Default)]
pub(crate) struct SinceCheckpoint {
    members: AtomicUsize,
    blob_bytes: AtomicUsize,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The result every member of a batch waits for: `None` until the batch ends.
type Done = Option<Result<(), Ended>>;

/// Why a batch ended without committing.
#[derive(Debug, Clone)]
struct Ended {
    reason: Arc<str>,
    /// Rolled back before its `COMMIT` was sent: nothing of any member was written.
    rolled_back: bool,
}

impl Ended {
    fn rolled_back(reason: impl Into<Arc<str>>) -> Ended {
        Ended {
            reason: reason.into(),
            rolled_back: true,
        }
    }
}

/// An open database transaction and the log state its members left.
pub(crate) struct Batch {
    inner: Inner,
    /// The log size after the members so far (the head is locked at the batch's start).
    pub(crate) head: u64,
    /// Whether `head` differs from the `log_head` row (written once, at commit).
    pub(crate) dirty: bool,
    /// Stored hashes written by the members so far, and the committed ones of the frontier.
    pub(crate) written: HashMap<u64, Hash>,
    /// The first stored hash index this batch writes: `written` below it is the frontier.
    first_new: u64,
    /// Whether a savepoint is already open for the next member (SQLite only: there a member
    /// releasing its savepoint opens the next one in the same round trip).
    savepoint_open: bool,
    members: usize,
    /// Whether every member so far joined without a savepoint (see [`Group::join`]): only
    /// then may another join without one.
    redoable: bool,
    frontier: Arc<std::sync::Mutex<HashMap<u64, Hash>>>,
    done: watch::Sender<Done>,
    mirror: Arc<Mirror>,
    /// Bytes of blobs the members stored (they may be large: evidence envelopes).
    pub(crate) blob_bytes: usize,
    /// The database, for the checkpoint after the commit.
    backend: Backend,
    since_checkpoint: Arc<SinceCheckpoint>,
}

/// Members committed since the last WAL checkpoint after which the batch that crosses the
/// mark checkpoints (SQLite). Opening a proposal writes about a dozen pages, so this is a
/// few MiB of WAL, about what SQLite's own automatic checkpoint lets accumulate.
const CHECKPOINT_AFTER: usize = 128;
/// The same mark in bytes of blobs, so a few large evidence envelopes checkpoint too.
const CHECKPOINT_AFTER_BLOB_BYTES: usize = 4 << 20;

enum Inner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Batch {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            Inner::Sqlite(tx) => Conn::Sqlite(tx),
            Inner::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    async fn begin(
        backend: &Backend,
        mirror: Arc<Mirror>,
        frontier: &Arc<std::sync::Mutex<HashMap<u64, Hash>>>,
        since_checkpoint: &Arc<SinceCheckpoint>,
    ) -> Result<Batch, Error> {
        let inner = match backend {
            Backend::Sqlite(pool) => Inner::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db("beginning transaction"))?,
            ),
            Backend::Postgres(pool) => {
                Inner::Postgres(pool.begin().await.map_err(db("beginning transaction"))?)
            }
        };
        let mut batch = Batch {
            inner,
            head: 0,
            dirty: false,
            written: HashMap::new(),
            first_new: 0,
            savepoint_open: false,
            members: 0,
            redoable: true,
            done: watch::channel(None).0,
            mirror,
            blob_bytes: 0,
            backend: backend.clone(),
            since_checkpoint: since_checkpoint.clone(),
            frontier: frontier.clone(),
        };
        batch.head = batch.conn().lock_head().await?;
        batch.first_new = stored_hash_index(0, batch.head);
        batch.written = frontier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(index, _)| **index < batch.first_new)
            .map(|(index, hash)| (*index, *hash))
            .collect();
        Ok(batch)
    }

    /// Runs `sql` (one or more statements without parameters) in one round trip.
    async fn execute(&mut self, sql: &'static str, what: &'static str) -> Result<(), Error> {
        use sqlx::Executor as _;
        // Boxed: spawned futures (a dropped member's undo) must be `Send` for every lifetime,
        // which sqlx's executor bounds do not let the compiler prove through an `async fn`.
        let done: std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + '_>> =
            match &mut self.inner {
                Inner::Sqlite(tx) => {
                    Box::pin(async move { tx.execute(sqlx::raw_sql(sql)).await.map(drop) })
                }
                Inner::Postgres(tx) => {
                    Box::pin(async move { tx.execute(sqlx::raw_sql(sql)).await.map(drop) })
                }
            };
        done.await.map_err(db(what))
    }

    /// Undoes the current member's savepoint. Tried twice: a member dropped with a statement
    /// in flight leaves that statement's answer on the connection, and the PostgreSQL driver
    /// reports it, if it was an error, to the next use of the connection, which is this
    /// one. Undoing cannot undo too much: a second attempt after a first that did roll back
    /// finds no savepoint, fails, and the batch is rolled back as a whole.
    async fn undo(&mut self) -> Result<(), Error> {
        match self.execute(UNDO, "rolling back a savepoint").await {
            Ok(()) => Ok(()),
            Err(_) => self.execute(UNDO, "rolling back a savepoint").await,
        }
    }

    /// Commits (or, with no member, rolls back) and tells every member.
    async fn end(mut self) {
        if self.members == 0 {
            // Nothing to keep: release the database's write lock. Nobody waits for this.
            let _ = match self.inner {
                Inner::Sqlite(tx) => tx.rollback().await,
                Inner::Postgres(tx) => tx.rollback().await,
            };
            return;
        }
        let mut result = Ok(());
        // PostgreSQL answers the `COMMIT` of a transaction that a failed statement aborted
        // with a rollback, not an error; writing `log_head` fails instead, so on PostgreSQL
        // it is written even unchanged: a member without a savepoint whose write failed
        // (see `Group::join`) can never leave its batch reported as committed.
        let postgres = matches!(self.inner, Inner::Postgres(_));
        if self.dirty || postgres {
            let head = self.head;
            result = self.conn().set_log_size(head).await;
        }
        if result.is_ok() {
            result = match self.inner {
                Inner::Sqlite(tx) => tx.commit().await,
                Inner::Postgres(tx) => tx.commit().await,
            }
            .map_err(db("committing transaction"));
        }
        let committed = result.is_ok();
        if committed {
            // Committed: keep what the next append will need.
            let needed = stored_hashes_indexes(self.head);
            let mut frontier = self.frontier.lock().unwrap_or_else(PoisonError::into_inner);
            *frontier = needed
                .iter()
                .filter_map(|index| Some((*index, *self.written.get(index)?)))
                .collect();
        }
        let first_new = self.first_new;
        self.written.retain(|index, _| *index >= first_new);
        if result.is_ok() && self.mirror.enabled() && !self.written.is_empty() {
            // Committed: what the batch wrote may now be served from the mirror.
            let mut written: Vec<(u64, Hash)> = self.written.into_iter().collect();
            written.sort_unstable_by_key(|(index, _)| *index);
            let first = written.first().map_or(0, |(index, _)| *index);
            let run: Vec<Hash> = written.into_iter().map(|(_, hash)| hash).collect();
            self.mirror.extend(first, &run);
        }
        // A failed `COMMIT` may or may not have been applied (the connection can fail after
        // the server committed): not `rolled_back`, so nobody writes again.
        let _ = self.done.send(Some(result.map_err(|e| Ended {
            reason: Arc::from(e.to_string()),
            rolled_back: false,
        })));
        if committed {
            checkpoint_if_due(
                &self.backend,
                &self.since_checkpoint,
                self.members,
                self.blob_bytes,
            )
            .await;
        }
    }
}

/// SQLite: copies the WAL into the database file once [`CHECKPOINT_AFTER`] members (or
/// [`CHECKPOINT_AFTER_BLOB_BYTES`] of blobs) were committed since the last time. The connections do not checkpoint on their own
/// (`wal_autocheckpoint=0`, see `Store::connect`), because SQLite's automatic
/// checkpoint runs inside the `COMMIT` that crosses its mark, and every member of that
/// batch would wait for it. Here the members were answered already; the next batch
/// still waits, which is what keeps the WAL short: with every frame copied and no
/// writer in between, the next `BEGIN` starts the WAL over from its beginning (a
/// checkpoint running beside the writers never catches up with them, and the WAL grows
/// without bound). A failed checkpoint is logged and tried again at the next mark.
async fn checkpoint_if_due(
    backend: &Backend,
    since: &SinceCheckpoint,
    members: usize,
    blob_bytes: usize,
) {
    let Backend::Sqlite(pool) = backend else {
        return;
    };
    let members = since.members.fetch_add(members, Ordering::SeqCst) + members;
    let blob_bytes = since.blob_bytes.fetch_add(blob_bytes, Ordering::SeqCst) + blob_bytes;
    if members < CHECKPOINT_AFTER && blob_bytes < CHECKPOINT_AFTER_BLOB_BYTES {
        return;
    }
    since.members.store(0, Ordering::SeqCst);
    since.blob_bytes.store(0, Ordering::SeqCst);
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "checkpointing the SQLite write-ahead log");
    }
}

/// A transaction's place in a batch: the batch itself, held exclusively until the member
/// finishes. A member dropped unfinished (its `Tx` dropped, or a commit or rollback
/// cancelled mid-way) is undone and the batch settled by a spawned task.
pub(crate) struct Member {
    /// `None` once finished.
    guard: Option<OwnedMutexGuard<Option<Batch>>>,
    waiting: Arc<AtomicUsize>,
    /// Whether the member runs in a savepoint of its own (see [`Group::join`]).
    savepoint: bool,
}

/// Why the batch of a member without a savepoint was rolled back.
fn unprotected() -> Error {
    Error::Batch("a member without a savepoint of its own failed".to_owned())
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        if guard.is_none() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let waiting = self.waiting.clone();
                let savepoint = self.savepoint;
                runtime.spawn(async move {
                    let undone = match guard.as_mut() {
                        Some(batch) if savepoint => batch.undo().await,
                        Some(_) => Err(unprotected()),
                        None => Ok(()),
                    };
                    match undone {
                        Ok(()) => settle(&mut guard, &waiting).await,
                        Err(e) => abort(&mut guard, &e).await,
                    }
                });
            }
            // No runtime left to run SQL on: the connection goes with the batch and the
            // database rolls all of it back; its waiting members are told so.
            Err(_) => {
                if let Some(batch) = guard.take() {
                    let _ = batch
                        .done
                        .send(Some(Err(Ended::rolled_back("the batch was abandoned"))));
                }
            }
        }
    }
}

/// The batch cannot go on (a savepoint statement failed, or a member without a savepoint did
/// not finish): roll all of it back and fail every member that waits for it.
async fn abort(guard: &mut Option<Batch>, error: &Error) {
    if let Some(batch) = guard.take() {
        let _ = batch
            .done
            .send(Some(Err(Ended::rolled_back(error.to_string()))));
        let _ = match batch.inner {
            Inner::Sqlite(tx) => tx.rollback().await,
            Inner::Postgres(tx) => tx.rollback().await,
        };
    }
}

/// Counts a transaction as waiting for the batch mutex until dropped.
struct Waiting {
    count: Arc<AtomicUsize>,
    batch: Arc<Mutex<Option<Batch>>>,
    acquired: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        if !self.acquired {
            // Cancelled while waiting: a member may have left the batch open for us. Whoever
            // holds the mutex next settles it; make sure someone does.
            let (batch, count) = (self.batch.clone(), self.count.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut guard = batch.lock_owned().await;
                    settle(&mut guard, &count).await;
                });
            }
        }
    }
}

/// Runs `work` in a task of its own (inline without a runtime), so a caller dropped while
/// waiting cannot stop it half-way: what it does to a batch it finishes.
pub(crate) async fn uncancellable<T: Send + 'static>(
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn(work)
            .await
            .map_err(|e| Error::Batch(format!("the committing task failed: {e}")))?,
        Err(_) => work.await,
    }
}

/// Waits for the result of the batch a released member belongs to.
async fn committed(mut done: watch::Receiver<Done>) -> Result<(), Error> {
    let result = done
        .wait_for(Option::is_some)
        .await
        .map(|done| done.clone())
        .unwrap_or_else(|_| Some(Err(Ended::rolled_back("the batch was abandoned"))));
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(Ended {
            reason,
            rolled_back: true,
        })) => Err(Error::RolledBack(reason.to_string())),
        Some(Err(Ended { reason, .. })) => Err(Error::Batch(reason.to_string())),
        None => Err(Error::Batch("the batch ended without a result".to_owned())),
    }
}

/// Ends the batch unless other transactions wait to join it (and it has room).
async fn settle(guard: &mut Option<Batch>, waiting: &AtomicUsize) {
    let full = guard.as_ref().is_some_and(|b| b.members >= MAX_MEMBERS);
    if waiting.load(Ordering::SeqCst) > 0 && !full {
        return;
    }
    if let Some(batch) = guard.take() {
        batch.end().await;
    }
}

impl Group {
    /// Joins (or opens) the current batch and starts this member's savepoint. Without
    /// `savepoint` (and none left open for it), the member cannot be undone alone: if it
    /// fails, is rolled back or dropped unfinished, its whole batch is rolled back and
    /// every member of it is told [`Error::RolledBack`]. So it gets a savepoint all the same
    /// unless every member before it joined without one too: only for a member that, told
    /// so, writes again (see `Store::commit_decided`).
    pub(crate) async fn join(
        &self,
        backend: &Backend,
        mirror: &Arc<Mirror>,
        savepoint: bool,
    ) -> Result<Member, Error> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut waiting = Waiting {
            count: self.waiting.clone(),
            batch: self.batch.clone(),
            acquired: false,
        };
        let mut guard = self.batch.clone().lock_owned().await;
        waiting.acquired = true;
        drop(waiting);
        if guard.is_none() {
            *guard = Some(
                Batch::begin(
                    backend,
                    mirror.clone(),
                    &self.frontier,
                    &self.since_checkpoint,
                )
                .await?,
            );
        }
        let mut member = Member {
            guard: Some(guard),
            waiting: self.waiting.clone(),
            savepoint: true,
        };
        let batch = member.batch();
        if std::mem::take(&mut batch.savepoint_open) {
            return Ok(member);
        }
        if !savepoint && batch.redoable {
            member.savepoint = false;
            return Ok(member);
        }
        if let Err(e) = batch.execute(SAVEPOINT, "starting a savepoint").await {
            member.abort_batch(&e).await;
            return Err(e);
        }
        Ok(member)
    }
}

impl Member {
    pub(crate) fn batch(&mut self) -> &mut Batch {
        self.guard
            .as_mut()
            .and_then(|guard| guard.as_mut())
            .expect("a member holds an open batch: only it ends the batch, when it finishes")
    }

    /// Keeps this member's work (already written into the batch's log state by the caller)
    /// and waits until the batch is durably committed.
    ///
    /// The release and settling run in their own task, so a caller cancelled mid-commit (a
    /// client gone) cannot leave the batch half-released: its work is committed with the
    /// batch and simply not answered.
    pub(crate) async fn commit(self) -> Result<(), Error> {
        let done = uncancellable(self.release()).await?;
        committed(done).await
    }

    /// The statements that release this member's savepoint into the batch (and, when
    /// another transaction waits to join, open its savepoint), and whether they reopen.
    /// A member may run them at the end of its last write (see [`Member::commit_released`]).
    pub(crate) fn release_sql(&self) -> (&'static str, bool) {
        // Someone waits to join: open their savepoint in the same round trip. Not on
        // PostgreSQL, where the next member most likely opens a proposal, which needs none.
        let sqlite = self
            .guard
            .as_ref()
            .and_then(|guard| guard.as_ref())
            .is_some_and(|batch| matches!(batch.inner, Inner::Sqlite(_)));
        let reopen = sqlite && self.waiting.load(Ordering::SeqCst) > 0;
        (if reopen { RELEASE_AND_REOPEN } else { RELEASE }, reopen)
    }

    /// Commits a member whose last write ran [`Member::release_sql`] successfully: its
    /// savepoint is released already; settles the batch and waits for its commit.
    ///
    /// The caller must not be cancellable between that write and this call (run both in a
    /// task of their own): a member released in the database but not here would leave its
    /// writes in the batch without the batch knowing of them.
    pub(crate) async fn commit_released(mut self, reopen: bool) -> Result<(), Error> {
        let done = self.released(reopen).await;
        committed(done).await
    }

    /// Releases the savepoint into the batch and settles it; returns where the batch's
    /// result will be announced.
    async fn release(mut self) -> Result<watch::Receiver<Done>, Error> {
        if !self.savepoint {
            return Ok(self.released(false).await);
        }
        let (sql, reopen) = self.release_sql();
        if let Err(e) = self.batch().execute(sql, "releasing a savepoint").await {
            self.abort_batch(&e).await;
            return Err(e);
        }
        Ok(self.released(reopen).await)
    }

    /// Counts this member (its savepoint released, the next one open if `reopen`) and
    /// settles the batch.
    async fn released(&mut self, reopen: bool) -> watch::Receiver<Done> {
        let savepoint = self.savepoint;
        let batch = self.batch();
        batch.savepoint_open = reopen;
        batch.members += 1;
        batch.redoable &= !savepoint;
        let done = batch.done.subscribe();
        if let Some(mut guard) = self.guard.take() {
            settle(&mut guard, &self.waiting).await;
        }
        done
    }

    /// Undoes this member's work only; the batch goes on. Without a savepoint, the whole
    /// batch is rolled back.
    pub(crate) async fn rollback(mut self) -> Result<(), Error> {
        if !self.savepoint {
            self.abort_batch(&unprotected()).await;
            return Ok(());
        }
        if let Err(e) = self.batch().undo().await {
            self.abort_batch(&e).await;
            return Err(e);
        }
        if let Some(mut guard) = self.guard.take() {
            settle(&mut guard, &self.waiting).await;
        }
        Ok(())
    }

    async fn abort_batch(&mut self, error: &Error) {
        if let Some(mut guard) = self.guard.take() {
            abort(&mut guard, error).await;
        }
    }
}
