//! The server's own checks of its log ([`LogCheck`]): when, by whom, the checkpoint seen and
//! what was found, kept as history so the console shows the newest and the next check knows
//! the checkpoint the last passing one saw.
//!
//! This module only stores results: the checking (signatures, consistency, the whole-log
//! recomputation) is the server's, with [`crate::verify()`] and the audit crate.

use crate::backend::{Conn, dispatch};
use crate::error::{Error, db};
use crate::store::Store;

/// One check of the log, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Unix milliseconds, the server's clock.
    pub checked_at_ms: i64,
    /// The principal who asked for it.
    pub checked_by: String,
    /// The latest signed checkpoint when it ran: its tree size and note (none without one).
    pub size: Option<u64>,
    pub signed_note: Option<String>,
    /// The size of the previous passing check's checkpoint it was compared with.
    pub previous_size: Option<u64>,
    pub ok: bool,
    /// What was found, in a sentence: the reason when not `ok`.
    pub detail: String,
}

type Row = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    bool,
    String,
);

fn decode(
    (checked_at_ms, checked_by, size, signed_note, previous_size, ok, detail): Row,
) -> Result<LogCheck, Error> {
    let size_of = |column: &'static str, v: Option<i64>| {
        v.map(|v| crate::backend::uint("log_checks", &checked_at_ms, column, v))
            .transpose()
    };
    Ok(LogCheck {
        size: size_of("size", size)?,
        previous_size: size_of("previous_size", previous_size)?,
        checked_at_ms,
        checked_by,
        signed_note,
        ok,
        detail,
    })
}

impl Store {
    /// Records a check of the log.
    pub async fn record_log_check(&self, check: &LogCheck) -> Result<(), Error> {
        let size = check
            .size
            .map(|s| crate::backend::int("size", s))
            .transpose()?;
        let previous = check
            .previous_size
            .map(|s| crate::backend::int("previous size", s))
            .transpose()?;
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        dispatch!(&mut conn, c => sqlx::query(
            "INSERT INTO log_checks (checked_at, checked_by, size, signed_note, previous_size, ok, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(check.checked_at_ms)
        .bind(&check.checked_by)
        .bind(size)
        .bind(check.signed_note.as_deref())
        .bind(previous)
        .bind(check.ok)
        .bind(&check.detail)
        .execute(&mut **c)
        .await
        .map(|_| ())
        .map_err(db("recording a log check"))?);
        Ok(())
    }

    /// The newest check recorded, passing or not (`passing`: the newest passing one).
    pub async fn last_log_check(&self, passing: bool) -> Result<Option<LogCheck>, Error> {
        let sql = if passing {
            "SELECT checked_at, checked_by, size, signed_note, previous_size, ok, detail \
             FROM log_checks WHERE ok ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT checked_at, checked_by, size, signed_note, previous_size, ok, detail \
             FROM log_checks ORDER BY id DESC LIMIT 1"
        };
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        let row: Option<Row> = dispatch!(&mut conn, c => sqlx::query_as(sql)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading the last log check"))?);
        row.map(decode).transpose()
    }
}
