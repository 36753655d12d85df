//! [`Store`]: opening a database (SQLite file or PostgreSQL), applying the embedded
//! migrations, and reading the log, its proofs, checkpoints and decisions.
//!
//! Every proof or tree head costs one stored-hash query of `O(log n)` rows: the audit crate names the indexes, this module fetches them, and the
//! audit crate's synchronous functions run over the fetched map.
//!
//! Writing the log is [`crate::Tx`]'s; whole-log verification is [`crate::verify()`]'s.

use std::ops::Range;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use countersign_audit::merkle::{
    self, ConsistencyProof, Hash, InclusionProof, consistency_indexes, inclusion_indexes,
    stored_hash_index, tree_hash_indexes,
};
use countersign_audit::{Checkpoint, SignedCheckpoint, Signer};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::backend::{Backend, Hashes, Pooled};
use crate::decision::Decision;
use crate::error::{Error, db};
use crate::group::Group;
use crate::log::{Entry, StoredCheckpoint};
use crate::mirror::Mirror;
use crate::tx::{KnownBlobs, Tx};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for another (another process, or another pooled
/// connection) before giving up with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Leaves read per query when streaming the whole log.
pub(crate) const LEAF_BATCH: u64 = 4096;

/// A handle on the database: a connection pool for one backend. Cheap to clone (the pool is
/// shared), safe to use from many tasks, and several processes may open the same database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Stored hashes already read, once [`Store::mirror_stored_hashes`] turned it on.
    pub(crate) mirror: Arc<Mirror>,
    /// The batch that write transactions join (see the `group` module).
    pub(crate) group: Arc<Group>,
    /// Blobs committed by this process's transactions (see `tx::KnownBlobs`).
    pub(crate) blobs: Arc<KnownBlobs>,
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// * `sqlite://PATH` (or with `?mode=rwc`) creates the file and its parent directories
    ///   (an explicit `mode=rw` or `mode=ro` opens an existing file only); the
    ///   connections use WAL, foreign keys, a 30 s busy timeout and `synchronous=FULL`
    ///   (an acknowledged commit survives power loss, not only a crash); they do not
    ///   checkpoint the WAL on their own, this store's write batches do (the `group`
    ///   module).
    /// * `postgres://…` (or `postgresql://…`); `?options=-c search_path=SCHEMA` selects a
    ///   schema.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let bad = |reason: String| Error::Url {
            url: url.to_owned(),
            reason,
        };
        if url.starts_with("sqlite:") {
            let mut options =
                SqliteConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            // A URL without a mode creates the database, as the default URLs (which say
            // `mode=rwc`) do: `sqlite:///path/cs.db` failing with "unable to open database
            // file" helped nobody.
            let query = url.split_once('?').map_or("", |(_, query)| query);
            if !query.split('&').any(|pair| pair.starts_with("mode=")) {
                options = options.create_if_missing(true);
            }
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(SqliteSynchronous::Full)
                // Statement journals and sorts in memory, not a temporary file created and
                // unlinked for each (which cost more than the statements themselves).
                .pragma("temp_store", "memory")
                // Checkpoints are the group commit's, after a batch was answered (see the
                // `group` module), not inside the commit that crosses SQLite's mark.
                .pragma("wal_autocheckpoint", "0");
            let path = options.get_filename();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .connect_with(options)
                .await
                .map_err(db("opening SQLite database"))?;
            // sqlx takes no lock around SQLite migrations, so two processes opening a new
            // file at once would both create the tables. Running the migrator inside an
            // IMMEDIATE transaction (its own transactions become savepoints) serializes them.
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db("locking database for migrations"))?;
            SQLITE_MIGRATIONS.run(&mut *tx).await?;
            tx.commit().await.map_err(db("committing migrations"))?;
            Ok(Store {
                backend: Backend::Sqlite(pool),
                mirror: Arc::default(),
                group: Arc::default(),
                blobs: Arc::default(),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .connect_with(options)
                .await
                .map_err(db("opening PostgreSQL database"))?;
            // sqlx holds an advisory lock while migrating PostgreSQL.
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Ok(Store {
                backend: Backend::Postgres(pool),
                mirror: Arc::default(),
                group: Arc::default(),
                blobs: Arc::default(),
            })
        } else {
            Err(bad(
                "expected sqlite://PATH?mode=rwc or postgres://…".to_owned()
            ))
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    pub(crate) async fn pooled(&self) -> Result<Pooled, Error> {
        Ok(match &self.backend {
            Backend::Sqlite(pool) => {
                Pooled::Sqlite(pool.acquire().await.map_err(db("acquiring connection"))?)
            }
            Backend::Postgres(pool) => {
                Pooled::Postgres(pool.acquire().await.map_err(db("acquiring connection"))?)
            }
        })
    }

    /// Keeps an in-process copy of the log's stored hashes from now on, so proofs and tree
    /// heads are served from memory (see the `mirror` module for why that is always
    /// correct); reads the committed ones now and returns how many there are. Worth it for a
    /// long-lived process serving many proofs; costs 32 bytes per stored hash.
    pub async fn mirror_stored_hashes(&self) -> Result<u64, Error> {
        self.mirror.enable();
        let mut pooled = self.pooled().await?;
        self.mirror.catch_up(&mut pooled.conn(), u64::MAX).await
    }

    /// Starts a write transaction; see [`Tx`].
    pub async fn begin(&self) -> Result<Tx, Error> {
        self.begin_in(true).await
    }

    /// A transaction whose member of the batch has a savepoint only if `savepoint` (see
    /// `group::Group::join`).
    pub(crate) async fn begin_in(&self, savepoint: bool) -> Result<Tx, Error> {
        Tx::begin(
            &self.group,
            &self.backend,
            &self.mirror,
            &self.blobs,
            savepoint,
        )
        .await
    }

    /// The number of log entries committed.
    pub async fn log_size(&self) -> Result<u64, Error> {
        self.pooled().await?.conn().log_size().await
    }

    /// Entry `index`.
    pub async fn entry(&self, index: u64) -> Result<Entry, Error> {
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        let end = index.checked_add(1).ok_or(Error::TooLarge {
            what: "entry index",
            value: index,
        })?;
        match conn.leaves(index, end, 1).await?.pop() {
            Some(entry) => Ok(entry),
            None => Err(Error::BeyondLog {
                what: "entry",
                requested: index,
                size: conn.log_size().await?,
            }),
        }
    }

    /// The entries in `range` that exist, in index order. Reads the whole range in one
    /// query: page through long ranges.
    pub async fn entries(&self, range: Range<u64>) -> Result<Vec<Entry>, Error> {
        let limit = range.end.saturating_sub(range.start);
        self.pooled()
            .await?
            .conn()
            .leaves(range.start, range.end, limit)
            .await
    }

    /// The root hash of the first `size` entries.
    pub async fn tree_hash(&self, size: u64) -> Result<Hash, Error> {
        let hashes = self.fetch_within_log(size, tree_hash_indexes(size)).await?;
        Ok(merkle::tree_hash(size, &hashes)?)
    }

    /// Proof that entry `index` is in the tree of the first `size` entries.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        let hashes = self
            .fetch_within_log(size, inclusion_indexes(index, size))
            .await?;
        Ok(merkle::prove_inclusion(index, size, &hashes)?)
    }

    /// Proof that the tree of `old` entries is a prefix of the tree of `new` entries.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        let hashes = self
            .fetch_within_log(new, consistency_indexes(old, new))
            .await?;
        Ok(merkle::prove_consistency(old, new, &hashes)?)
    }

    /// Stores a signed checkpoint for tree size `size`.
    ///
    /// The note's signatures are not checked (the store holds no keys), but its body must be a
    /// checkpoint for `size` whose root is this log's tree hash at `size`: a checkpoint that
    /// does not describe this log is refused rather than stored. Storing the same note twice
    /// is a no-op; a different note for a size already checkpointed is [`Error::Duplicate`].
    pub async fn put_checkpoint(&self, signed_note: &str, size: u64) -> Result<(), Error> {
        let mismatch = |reason: String| Error::CheckpointMismatch { size, reason };
        // The note text ends at the last blank line (C2SP signed-note).
        let body = signed_note
            .rfind("\n\n")
            .map(|split| &signed_note[..=split])
            .ok_or_else(|| mismatch("not a signed note: no blank line before signatures".into()))?;
        let checkpoint = Checkpoint::parse(body)?;
        if checkpoint.size() != size {
            return Err(mismatch(format!(
                "the note is for size {}",
                checkpoint.size()
            )));
        }
        let root = self.tree_hash(size).await?;
        if *checkpoint.root() != root {
            return Err(mismatch(format!(
                "the note's root {} is not the log's root {root}",
                checkpoint.root()
            )));
        }
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        if conn.insert_checkpoint(size, signed_note).await? {
            return Ok(());
        }
        match conn.checkpoint(Some(size)).await? {
            Some(existing) if existing.signed_note == signed_note => Ok(()),
            _ => Err(Error::Duplicate {
                table: "checkpoints",
                key: size.to_string(),
            }),
        }
    }

    /// Signs a checkpoint of the whole log with `signer` (whose name is the log's origin),
    /// stores it, and returns it.
    pub async fn sign_checkpoint(&self, signer: &Signer) -> Result<StoredCheckpoint, Error> {
        let size = self.log_size().await?;
        let checkpoint = Checkpoint::new(signer.name(), size, self.tree_hash(size).await?)?;
        let note = SignedCheckpoint::sign(&checkpoint, signer)?;
        self.put_checkpoint(&note, size).await?;
        self.pooled()
            .await?
            .conn()
            .checkpoint(Some(size))
            .await?
            .ok_or(Error::BeyondLog {
                what: "checkpoint",
                requested: size,
                size,
            })
    }

    /// The checkpoint with the largest tree size, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, Error> {
        self.pooled().await?.conn().checkpoint(None).await
    }

    /// A blob by digest.
    pub async fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, Error> {
        self.pooled().await?.conn().blob(digest).await
    }

    /// The entries about `subject` (a proposal id), in log order.
    pub async fn entries_about(&self, subject: &str) -> Result<Vec<Entry>, Error> {
        self.pooled().await?.conn().leaves_about(subject).await
    }

    /// The decision with this id, if recorded.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, Error> {
        self.pooled().await?.conn().decision(id).await
    }

    /// The decisions among `ids`, in one query (ids without one are left out).
    pub async fn decisions(&self, ids: &[&str]) -> Result<Vec<Decision>, Error> {
        self.pooled().await?.conn().decisions(ids).await
    }

    /// Fetches `indexes` for an operation on the tree of `size` leaves, in one query, refusing
    /// sizes past the committed log with a precise error instead of a missing hash.
    ///
    /// The check rides along in the same query: the leaf hash of entry `size - 1` is stored
    /// in the transaction that appends it, so it is present exactly when the log has `size`
    /// entries. Only when it is absent is the log size read, for the error message.
    ///
    /// With the mirror on, the hashes come from memory when it covers them (no connection is
    /// taken), after catching up with newer commits when it does not.
    async fn fetch_within_log(&self, size: u64, mut indexes: Vec<u64>) -> Result<Hashes, Error> {
        let Some(last) = size.checked_sub(1) else {
            return Ok(Hashes::default());
        };
        let witness = stored_hash_index(0, last);
        indexes.push(witness);
        if let Some(hashes) = self.mirror.get(&indexes) {
            return Ok(hashes);
        }
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        if self.mirror.enabled() {
            self.mirror.catch_up(&mut conn, witness + 1).await?;
            if let Some(hashes) = self.mirror.get(&indexes) {
                return Ok(hashes);
            }
            // Still not covered: the size is past the log (or the table has a gap); the
            // query below says which.
        }
        let hashes = conn.hashes(&indexes).await?;
        if !hashes.0.contains_key(&witness) {
            return Err(Error::BeyondLog {
                what: "tree size",
                requested: size,
                size: conn.log_size().await?,
            });
        }
        Ok(hashes)
    }
}
