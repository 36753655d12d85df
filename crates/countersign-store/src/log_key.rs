//! The log's key identity, stored with the log: the note verifier key its checkpoints and
//! statements are signed with. Recording it is first-come; comparing it with a server's key,
//! and refusing to start, are the caller's. No secret key is ever stored.

use crate::backend::{Conn, dispatch};
use crate::error::{Error, db};
use crate::store::Store;

impl Conn<'_> {
    async fn claim_log_key(&mut self, verifier: &str) -> Result<String, Error> {
        dispatch!(self, c => sqlx::query("INSERT INTO log_key (id, verifier) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(verifier)
            .execute(&mut **c)
            .await
            .map_err(db("recording the log key"))?
            .rows_affected());
        Ok(
            dispatch!(self, c => sqlx::query_scalar::<_, String>("SELECT verifier FROM log_key WHERE id = 1")
            .fetch_one(&mut **c)
            .await
            .map_err(db("reading the log key"))?),
        )
    }

    async fn recorded_log_key(&mut self) -> Result<Option<String>, Error> {
        Ok(
            dispatch!(self, c => sqlx::query_scalar::<_, String>("SELECT verifier FROM log_key WHERE id = 1")
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading the log key"))?),
        )
    }
}

impl Store {
    /// Records `verifier` (a C2SP note verifier key, `<origin>+<key id>+<key>`) as the log's
    /// key unless one is recorded already; returns the recorded one. Two processes claiming
    /// at once both get the one that was written first.
    pub async fn claim_log_key(&self, verifier: &str) -> Result<String, Error> {
        self.pooled().await?.conn().claim_log_key(verifier).await
    }

    /// The log's recorded verifier key, if a server recorded one.
    pub async fn log_key(&self) -> Result<Option<String>, Error> {
        self.pooled().await?.conn().recorded_log_key().await
    }
}
