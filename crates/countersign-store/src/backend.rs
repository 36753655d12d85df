//! The two database backends behind one connection type, and every SQL statement the store
//! runs.
//!
//! Why an enum over two typed pools rather than `sqlx::AnyPool`: the backends differ exactly
//! where the log's safety lives (SQLite serializes writers with `BEGIN IMMEDIATE`, PostgreSQL
//! with a `FOR UPDATE` row lock on `log_head`), the migrations are per dialect, and `Any`
//! narrows the types that cross the boundary and needs a runtime driver registry. With an
//! enum each statement is compiled against both drivers' real types (the [`dispatch`] macro
//! expands one body per backend) and the differences are a visible `match`. SQL text is
//! shared where it can be: sqlx's SQLite driver accepts PostgreSQL's `$N` placeholders.
//!
//! This module does not decide what to read or write; [`crate::Store`] and [`crate::Tx`]
//! do.

use std::collections::HashMap;
use std::fmt::Write as _;

use countersign_audit::merkle::{Hash, StoreError, TreeStore};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Row as _, Sqlite, SqliteConnection, SqlitePool};

use crate::decision::Decision;
use crate::error::{Error, db};
use crate::log::{Entry, NewEntry, StoredCheckpoint};

/// A store's connection pool, of one backend or the other.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The kinds of row a new log entry writes.
#[derive(Clone, Copy)]
enum Rows {
    Leaves,
    Subjects,
    Hashes,
}

/// The rows of new log entries, as [`Conn::insert_entries`] writes them.
pub(crate) struct EntryRows<'a, 'l> {
    entries: &'a [NewEntry<'l>],
    ints: Vec<i64>,
    hashes: Vec<(i64, &'a [u8])>,
}

impl<'a, 'l> EntryRows<'a, 'l> {
    pub(crate) fn new(entries: &'a [NewEntry<'l>]) -> Result<Self, Error> {
        let mut ints = Vec::with_capacity(entries.len());
        let mut hashes = Vec::new();
        for entry in entries {
            ints.push(int("leaf index", entry.index)?);
            let first = int("stored hash index", entry.first)?;
            for (offset, hash) in (0i64..).zip(&entry.hashes) {
                hashes.push((first + offset, &hash.0[..]));
            }
        }
        Ok(EntryRows {
            entries,
            ints,
            hashes,
        })
    }

    /// The SQL writing the rows with placeholders from `$1`, and the placeholders it uses.
    /// SQLite: three statements (one call runs them all); PostgreSQL: one statement whose
    /// `WITH` clauses insert the rows.
    pub(crate) fn sql(&self, postgres: bool) -> (String, usize) {
        if postgres {
            let (clauses, n) = self.with_clauses(None);
            // A `WITH` needs a main statement.
            return (format!("WITH {clauses} SELECT 1"), n);
        }
        let mut n = 0;
        let mut sql = String::from("INSERT INTO log_leaves (idx, leaf, leaf_hash) VALUES ");
        self.rows(&mut sql, &mut n, Rows::Leaves);
        sql.push_str("; INSERT INTO log_subjects (idx, subject) VALUES ");
        self.rows(&mut sql, &mut n, Rows::Subjects);
        if !self.hashes.is_empty() {
            sql.push_str("; INSERT INTO log_hashes (idx, hash) VALUES ");
            self.rows(&mut sql, &mut n, Rows::Hashes);
        }
        (sql, n)
    }

    /// PostgreSQL: the clauses of a `WITH` (without the keyword) inserting the rows
    /// (placeholders from `$1`), and the placeholders they use. With `only_if`, a condition,
    /// each inserts its rows only where the condition holds.
    pub(crate) fn with_clauses(&self, only_if: Option<&str>) -> (String, usize) {
        let mut n = 0;
        let mut sql = String::new();
        let mut clause = |sql: &mut String, name: &str, into: &str, rows: Rows| {
            if !sql.is_empty() {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{name} AS (INSERT INTO {into} ");
            match only_if {
                None => {
                    sql.push_str("VALUES ");
                    self.rows(sql, &mut n, rows);
                }
                Some(condition) => {
                    sql.push_str("SELECT * FROM (VALUES ");
                    self.rows(sql, &mut n, rows);
                    let _ = write!(sql, ") AS v WHERE {condition}");
                }
            }
            sql.push(')');
        };
        clause(
            &mut sql,
            "leaf",
            "log_leaves (idx, leaf, leaf_hash)",
            Rows::Leaves,
        );
        clause(
            &mut sql,
            "subject",
            "log_subjects (idx, subject)",
            Rows::Subjects,
        );
        if !self.hashes.is_empty() {
            clause(&mut sql, "hash", "log_hashes (idx, hash)", Rows::Hashes);
        }
        (sql, n)
    }

    /// The value lists of one kind of row, numbering placeholders on from `n`.
    fn rows(&self, sql: &mut String, n: &mut usize, rows: Rows) {
        let (count, width) = match rows {
            Rows::Leaves => (self.entries.len(), 3),
            Rows::Subjects => (self.entries.len(), 2),
            Rows::Hashes => (self.hashes.len(), 2),
        };
        for i in 0..count {
            sql.push_str(if i > 0 { ", (" } else { "(" });
            placeholders(sql, *n + 1, width);
            *n += width;
            sql.push(')');
        }
    }

    /// Binds the rows, in the order of [`EntryRows::sql`], to a query of either backend.
    pub(crate) fn bind<'q, DB>(
        &'q self,
        mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        for (index, entry) in self.ints.iter().zip(self.entries) {
            query = query
                .bind(*index)
                .bind(entry.bytes())
                .bind(&entry.leaf_hash().0[..]);
        }
        for (index, entry) in self.ints.iter().zip(self.entries) {
            query = query.bind(*index).bind(entry.subject());
        }
        for (index, hash) in &self.hashes {
            query = query.bind(*index).bind(*hash);
        }
        query
    }
}

/// A decision as its `decisions` row binds it.
pub(crate) struct DecisionRow<'a> {
    decision: &'a Decision,
    record: String,
    log_index: i64,
}

impl<'a> DecisionRow<'a> {
    pub(crate) fn new(decision: &'a Decision) -> Result<Self, Error> {
        Ok(DecisionRow {
            decision,
            record: decision.record.to_string(),
            log_index: int("log index", decision.log_index)?,
        })
    }

    /// The placeholders of [`DecisionRow::insert`].
    pub(crate) const PLACEHOLDERS: usize = 5;

    /// The `INSERT`, its placeholders numbered after the first `used`; with `only_if`, a
    /// condition, it inserts the row only where the condition holds.
    pub(crate) fn insert(used: usize, only_if: Option<&str>) -> String {
        let mut sql = String::from("INSERT INTO decisions (id, subject, tier, record, log_index) ");
        sql.push_str(if only_if.is_some() {
            "SELECT "
        } else {
            "VALUES ("
        });
        placeholders(&mut sql, used + 1, Self::PLACEHOLDERS);
        match only_if {
            Some(condition) => {
                let _ = write!(sql, " WHERE {condition}");
            }
            None => sql.push(')'),
        }
        sql
    }

    /// Binds the row in the order of [`DecisionRow::insert`].
    pub(crate) fn bind<'q, DB>(
        &'q self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.decision.id.as_str())
            .bind(self.decision.subject.as_str())
            .bind(self.decision.tier.as_str())
            .bind(self.record.as_str())
            .bind(self.log_index)
    }
}

/// `(idx, leaf)` rows of either backend as entries, refusing a negative index.
fn entries_from<R: sqlx::Row>(rows: &[R]) -> Result<Vec<Entry>, Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            let (index, leaf) = (row.try_get::<i64, _>(0), row.try_get::<Vec<u8>, _>(1));
            let index = index.map_err(db("decoding log leaves"))?;
            Ok(Entry {
                index: uint("log_leaves", &index, "idx", index)?,
                leaf: leaf.map_err(db("decoding log leaves"))?,
            })
        })
        .collect()
}

/// A connection to either backend, borrowed from a pool or a transaction.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// A connection owned from a pool, for reads outside a transaction.
pub(crate) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// Expands `$body` once per backend with `$c` bound to that backend's `&mut &mut
/// Connection`, so one statement text is type-checked against both drivers.
macro_rules! dispatch {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use dispatch;

/// A database integer from a count or index. Indexes stay below `2⁶²` by the Merkle
/// module's bound, so this fails only for nonsense arguments.
pub(crate) fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

pub(crate) fn uint(
    table: &'static str,
    key: &dyn std::fmt::Display,
    column: &'static str,
    value: i64,
) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt {
        table,
        key: key.to_string(),
        column,
        reason: format!("{value} is negative"),
    })
}

fn hash(table: &'static str, key: u64, column: &'static str, bytes: &[u8]) -> Result<Hash, Error> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| Error::Corrupt {
        table,
        key: key.to_string(),
        column,
        reason: format!("{} bytes, a SHA-256 hash has 32", bytes.len()),
    })?;
    Ok(Hash(array))
}

/// `$first, $first+1, …` for `count` parameters.
pub(crate) fn placeholders(out: &mut String, first: usize, count: usize) {
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "${}", first + i);
    }
}

impl Conn<'_> {
    /// The number of leaves, from `log_head`.
    pub(crate) async fn log_size(&mut self) -> Result<u64, Error> {
        let size: i64 = dispatch!(self, c => sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
            .fetch_one(&mut **c)
            .await
            .map_err(db("reading log size"))?);
        uint("log_head", &1, "size", size)
    }

    /// The number of leaves, with the head locked against other appenders until the
    /// transaction ends. SQLite needs no row lock: the transaction began `IMMEDIATE`, so it
    /// already holds the database's only write lock.
    pub(crate) async fn lock_head(&mut self) -> Result<u64, Error> {
        let size: i64 = match self {
            Conn::Sqlite(c) => sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
                .fetch_one(&mut **c)
                .await
                .map_err(db("locking log head"))?,
            Conn::Postgres(c) => {
                sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut **c)
                    .await
                    .map_err(db("locking log head"))?
            }
        };
        uint("log_head", &1, "size", size)
    }

    pub(crate) async fn set_log_size(&mut self, size: u64) -> Result<(), Error> {
        let size = int("log size", size)?;
        dispatch!(self, c => sqlx::query("UPDATE log_head SET size = $1 WHERE id = 1")
            .bind(size)
            .execute(&mut **c)
            .await
            .map_err(db("writing log size"))?
            .rows_affected());
        Ok(())
    }

    /// The stored hashes at `indexes`, in one query. Absent rows are absent from the map.
    pub(crate) async fn hashes(&mut self, indexes: &[u64]) -> Result<Hashes, Error> {
        let mut map = HashMap::with_capacity(indexes.len());
        if indexes.is_empty() {
            return Ok(Hashes(map));
        }
        let mut sql = String::from("SELECT idx, hash FROM log_hashes WHERE idx IN (");
        placeholders(&mut sql, 1, indexes.len());
        sql.push(')');
        let rows = dispatch!(self, c => {
            let mut query = sqlx::query(&sql);
            for &index in indexes {
                query = query.bind(int("stored hash index", index)?);
            }
            let rows = query.fetch_all(&mut **c).await.map_err(db("reading stored hashes"))?;
            rows.iter()
                .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<Vec<u8>, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db("decoding stored hashes"))?
        });
        for (index, bytes) in rows {
            let index = uint("log_hashes", &index, "idx", index)?;
            map.insert(index, hash("log_hashes", index, "hash", &bytes)?);
        }
        Ok(Hashes(map))
    }

    /// The stored hashes from index `from` on, in index order, at most `limit` of them: how
    /// the in-process mirror catches up with what other connections committed.
    pub(crate) async fn hashes_from(&mut self, from: u64, limit: u64) -> Result<Vec<Hash>, Error> {
        let (first, limit) = (int("stored hash index", from)?, int("limit", limit)?);
        let rows = dispatch!(self, c => {
            let rows = sqlx::query("SELECT idx, hash FROM log_hashes WHERE idx >= $1 ORDER BY idx LIMIT $2")
                .bind(first)
                .bind(limit)
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading stored hashes"))?;
            rows.iter()
                .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<Vec<u8>, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db("decoding stored hashes"))?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (expected, (index, bytes)) in (from..).zip(rows) {
            let index = uint("log_hashes", &index, "idx", index)?;
            if index != expected {
                // A gap: committed stored hashes always form a prefix, so this table was
                // edited. Stop at the gap; the proof that needs it will name it missing.
                break;
            }
            out.push(hash("log_hashes", index, "hash", &bytes)?);
        }
        Ok(out)
    }

    /// Writes log entries (leaf, subject, stored hashes) in one round trip: three
    /// statements in one SQLite call, one statement with data-modifying `WITH` clauses on
    /// PostgreSQL (same snapshot, all or nothing). Appends are serialized, so their round
    /// trips are the log's throughput.
    pub(crate) async fn insert_entries(&mut self, entries: &[NewEntry<'_>]) -> Result<(), Error> {
        let rows = EntryRows::new(entries)?;
        let (sql, _) = rows.sql(matches!(self, Conn::Postgres(_)));
        dispatch!(self, c => rows
            .bind(sqlx::query(&sql))
            .execute(&mut **c)
            .await
            .map_err(db("appending log entries"))?
            .rows_affected());
        Ok(())
    }

    /// Stores a blob under its digest; storing the same content twice is a no-op.
    pub(crate) async fn insert_blob(&mut self, digest: &str, content: &[u8]) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query("INSERT INTO blobs (digest, content) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING")
            .bind(digest)
            .bind(content)
            .execute(&mut **c)
            .await
            .map_err(db("storing blob"))?
            .rows_affected());
        Ok(())
    }

    pub(crate) async fn blob(&mut self, digest: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(
            dispatch!(self, c => sqlx::query("SELECT content FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading blob"))?
            .map(|row| row.try_get::<Vec<u8>, _>(0))
            .transpose()
            .map_err(db("decoding blob"))?),
        )
    }

    /// The index of the last entry about `subject`, if any.
    pub(crate) async fn last_about(&mut self, subject: &str) -> Result<Option<u64>, Error> {
        let last: Option<i64> = dispatch!(self, c => sqlx::query_scalar::<_, Option<i64>>(
                "SELECT max(idx) FROM log_subjects WHERE subject = $1",
            )
            .bind(subject)
            .fetch_one(&mut **c)
            .await
            .map_err(db("reading the last entry about a subject"))?);
        last.map(|i| u64::try_from(i).map_err(|_| Error::Batch(format!("negative log index {i}"))))
            .transpose()
    }

    /// The entries about `subject`, in index order, in one query.
    pub(crate) async fn leaves_about(&mut self, subject: &str) -> Result<Vec<Entry>, Error> {
        let entries = dispatch!(self, c => {
            let rows = sqlx::query(
                "SELECT l.idx, l.leaf FROM log_subjects s JOIN log_leaves l ON l.idx = s.idx \
                 WHERE s.subject = $1 ORDER BY l.idx",
            )
            .bind(subject)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading the entries about a subject"))?;
            entries_from(&rows)?
        });
        Ok(entries)
    }

    /// Leaves with `start <= idx < end`, at most `limit`, in index order. The `idx` column
    /// is returned as stored, so callers can notice gaps.
    pub(crate) async fn leaves(
        &mut self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<Entry>, Error> {
        let (start, end, limit) = (
            int("entry index", start)?,
            int("entry index", end)?,
            int("limit", limit)?,
        );
        let entries = dispatch!(self, c => {
            let rows = sqlx::query("SELECT idx, leaf FROM log_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3")
                .bind(start)
                .bind(end)
                .bind(limit)
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading log leaves"))?;
            entries_from(&rows)?
        });
        Ok(entries)
    }

    /// Inserts a checkpoint row; `Ok(false)` when one exists for `size` already.
    pub(crate) async fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<bool, Error> {
        let size = int("checkpoint size", size)?;
        let done = dispatch!(self, c => sqlx::query(
            "INSERT INTO checkpoints (size, signed_note) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING",
        )
        .bind(size)
        .bind(note)
        .execute(&mut **c)
        .await
        .map_err(db("inserting checkpoint"))?
        .rows_affected());
        Ok(done == 1)
    }

    /// The checkpoint for `size`, or the largest one when `size` is `None`.
    pub(crate) async fn checkpoint(
        &mut self,
        size: Option<u64>,
    ) -> Result<Option<StoredCheckpoint>, Error> {
        let size = size.map(|s| int("checkpoint size", s)).transpose()?;
        let sql = if size.is_some() {
            "SELECT size, signed_note, created_at FROM checkpoints WHERE size = $1"
        } else {
            "SELECT size, signed_note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1"
        };
        let row = dispatch!(self, c => {
            let mut query = sqlx::query(sql);
            if let Some(size) = size {
                query = query.bind(size);
            }
            let row = query.fetch_optional(&mut **c).await.map_err(db("reading checkpoint"))?;
            row.map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?)))
                .transpose()
                .map_err(db("decoding checkpoint"))?
        });
        row.map(|(size, signed_note, created_at)| {
            Ok(StoredCheckpoint {
                size: uint("checkpoints", &size, "size", size)?,
                signed_note,
                created_at,
            })
        })
        .transpose()
    }

    pub(crate) async fn insert_decision(&mut self, decision: &Decision) -> Result<(), Error> {
        let row = DecisionRow::new(decision)?;
        let sql = DecisionRow::insert(0, None);
        let result = dispatch!(self, c => row.bind(sqlx::query(&sql))
        .execute(&mut **c)
        .await
        .map(|done| done.rows_affected()));
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(Error::Duplicate {
                    table: "decisions",
                    key: decision.id.clone(),
                })
            }
            Err(e) => Err(db("inserting decision")(e)),
        }
    }

    pub(crate) async fn decision(&mut self, id: &str) -> Result<Option<Decision>, Error> {
        Ok(self.decisions(&[id]).await?.pop())
    }

    /// The decisions among `ids`, in one query (ids without one are left out; order is the
    /// database's).
    pub(crate) async fn decisions(&mut self, ids: &[&str]) -> Result<Vec<Decision>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql =
            "SELECT id, subject, tier, record, log_index FROM decisions WHERE id IN (".to_owned();
        placeholders(&mut sql, 1, ids.len());
        sql.push(')');
        let rows = dispatch!(self, c => {
            let mut query = sqlx::query(&sql);
            for id in ids {
                query = query.bind(*id);
            }
            query
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading decisions"))?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>(0)?,
                        row.try_get::<String, _>(1)?,
                        row.try_get::<String, _>(2)?,
                        row.try_get::<String, _>(3)?,
                        row.try_get::<i64, _>(4)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db("decoding decision"))?
        });
        rows.into_iter()
            .map(|(id, subject, tier, record, log_index)| {
                let record = serde_json::from_str(&record).map_err(|source| Error::Record {
                    id: id.clone(),
                    source,
                })?;
                let log_index = uint("decisions", &id, "log_index", log_index)?;
                let tier =
                    tier.parse()
                        .map_err(|e: countersign_policy::TierError| Error::Corrupt {
                            table: "decisions",
                            key: id.clone(),
                            column: "tier",
                            reason: e.to_string(),
                        })?;
                Ok(Decision {
                    id,
                    subject,
                    tier,
                    record,
                    log_index,
                })
            })
            .collect()
    }
}

/// Stored hashes fetched ahead of a Merkle operation: the synchronous [`TreeStore`] the
/// audit crate's functions run over.
#[derive(Debug, Default)]
pub(crate) struct Hashes(pub(crate) HashMap<u64, Hash>);

#[derive(Debug, thiserror::Error)]
#[error("stored hash {0} is missing from the log_hashes table")]
struct MissingHash(u64);

impl TreeStore for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        indexes
            .iter()
            .map(|index| {
                self.0
                    .get(index)
                    .copied()
                    .ok_or_else(|| StoreError::new(MissingHash(*index)))
            })
            .collect()
    }
}
