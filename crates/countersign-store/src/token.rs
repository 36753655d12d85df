//! [`Token`]: an API token as stored, found by the SHA-256 of its secret.
//!
//! Only the hash of a secret is ever stored or compared, and nothing here reads it back: a
//! listing holds ids, principals, roles and expiry. What a role may do, reading the clock to
//! decide expiry, and the audit event of a revocation are the server's.

use sqlx::Row as _;

use crate::backend::{Conn, dispatch};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// An API token. `role` is one of `proposer`, `runner`, `approver`, `auditor`, `admin`
/// (the schema refuses others); `expires_at` is Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub expires_at: i64,
    pub revoked: bool,
    /// For an agent's token: the human who dispatches the agent (`human:alice`), an author
    /// of every proposal made with it.
    pub on_behalf_of: Option<String>,
}

impl Conn<'_> {
    async fn insert_token(&mut self, token: &Token, secret_sha256: &str) -> Result<(), Error> {
        let result = dispatch!(self, c => sqlx::query(
            "INSERT INTO tokens (id, secret_sha256, principal, role, expires_at, revoked, on_behalf_of) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(secret_sha256)
        .bind(&token.principal)
        .bind(&token.role)
        .bind(token.expires_at)
        .bind(token.revoked)
        .bind(token.on_behalf_of.as_deref())
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
                    table: "tokens",
                    key: token.id.clone(),
                })
            }
            Err(e) => Err(db("inserting token")(e)),
        }
    }

    async fn tokens(&mut self, id: Option<&str>) -> Result<Vec<Token>, Error> {
        Ok(dispatch!(self, c => {
            let rows = match id {
                Some(id) => sqlx::query("SELECT id, principal, role, expires_at, revoked, on_behalf_of FROM tokens WHERE id = $1")
                    .bind(id)
                    .fetch_all(&mut **c)
                    .await,
                None => sqlx::query("SELECT id, principal, role, expires_at, revoked, on_behalf_of FROM tokens ORDER BY id")
                    .fetch_all(&mut **c)
                    .await,
            }
            .map_err(db("reading tokens"))?;
            rows.into_iter()
                .map(|row| Ok::<_, sqlx::Error>(Token {
                    id: row.try_get(0)?,
                    principal: row.try_get(1)?,
                    role: row.try_get(2)?,
                    expires_at: row.try_get(3)?,
                    revoked: row.try_get(4)?,
                    on_behalf_of: row.try_get(5)?,
                }))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db("decoding token"))?
        }))
    }

    async fn token_by_secret(&mut self, secret_sha256: &str) -> Result<Option<Token>, Error> {
        Ok(dispatch!(self, c => {
            let row = sqlx::query("SELECT id, principal, role, expires_at, revoked, on_behalf_of FROM tokens WHERE secret_sha256 = $1")
                .bind(secret_sha256)
                .fetch_optional(&mut **c)
                .await
                .map_err(db("reading token"))?;
            row.map(|row| Ok::<_, sqlx::Error>(Token {
                id: row.try_get(0)?,
                principal: row.try_get(1)?,
                role: row.try_get(2)?,
                expires_at: row.try_get(3)?,
                revoked: row.try_get(4)?,
                on_behalf_of: row.try_get(5)?,
            }))
            .transpose()
            .map_err(db("decoding token"))?
        }))
    }

    async fn revoke_token(&mut self, id: &str) -> Result<bool, Error> {
        let done = dispatch!(self, c => sqlx::query("UPDATE tokens SET revoked = TRUE WHERE id = $1")
            .bind(id)
            .execute(&mut **c)
            .await
            .map_err(db("revoking token"))?
            .rows_affected());
        Ok(done == 1)
    }
}

impl Store {
    /// Stores `token` under the SHA-256 (lower-case hex) of its secret.
    pub async fn put_token(&self, token: &Token, secret_sha256: &str) -> Result<(), Error> {
        self.pooled()
            .await?
            .conn()
            .insert_token(token, secret_sha256)
            .await
    }

    /// The token whose secret hashes to `secret_sha256`, revoked or expired ones included.
    pub async fn token_by_secret(&self, secret_sha256: &str) -> Result<Option<Token>, Error> {
        self.pooled()
            .await?
            .conn()
            .token_by_secret(secret_sha256)
            .await
    }

    /// Token `id`, revoked or expired included; `None` when there is none.
    pub async fn token(&self, id: &str) -> Result<Option<Token>, Error> {
        Ok(self
            .pooled()
            .await?
            .conn()
            .tokens(Some(id))
            .await?
            .into_iter()
            .next())
    }

    /// Every token, revoked and expired ones included, by id. Secrets are not read.
    pub async fn tokens(&self) -> Result<Vec<Token>, Error> {
        self.pooled().await?.conn().tokens(None).await
    }

    /// Revokes token `id`; `false` when there is no such token. Prefer [`Tx::revoke_token`],
    /// which lets the caller log the revocation in the same transaction.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, Error> {
        self.pooled().await?.conn().revoke_token(id).await
    }
}

impl Tx {
    /// Revokes token `id` in this transaction; returns the token as it was before (so the
    /// caller can tell a fresh revocation from a repeated one and log it), `None` when there
    /// is no such token. The server reads the token row on every request, so once this
    /// commits no process sharing the database accepts the token.
    pub async fn revoke_token(&mut self, id: &str) -> Result<Option<Token>, Error> {
        let mut conn = self.conn();
        let Some(before) = conn.tokens(Some(id)).await?.into_iter().next() else {
            return Ok(None);
        };
        if !before.revoked {
            conn.revoke_token(id).await?;
        }
        Ok(Some(before))
    }
}
