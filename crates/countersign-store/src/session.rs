//! The console's sessions and sign-in grants ([`Session`], [`Grant`]), found by the SHA-256
//! of their secrets like tokens: the cookie or link holds the secret, the database its hash.
//!
//! In the database rather than in a process so every replica on it shares them: a session
//! signed in on one is known to all, and a sign-out (the row deleted) ends it on all. What
//! a session may do, the clock and the cookie are the server's.

use sqlx::Row as _;

use crate::backend::{Conn, dispatch};
use crate::error::{Error, db};
use crate::store::Store;

/// A signed-in person's console session. `role` is a token role; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    pub role: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Signed in with this API token: the session lasts no longer than the token does.
    pub token_id: Option<String>,
    /// Signed in with OIDC: the issuer, subject and email that vouched.
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    /// For an agent's token bound to a person: that person.
    pub dispatched_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A single-use sign-in grant: a one-click link (`kind` `link`, with the principal and role
/// it signs in) or an OIDC sign-in under way (`kind` `oidc`, with its PKCE verifier and
/// nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: String,
    pub principal: Option<String>,
    pub role: Option<String>,
    pub verifier: Option<String>,
    pub nonce: Option<String>,
    /// The path to go to once signed in.
    pub next: Option<String>,
    pub expires_at: i64,
}

const SESSION_COLUMNS: &str = "principal, role, csrf, token_id, issuer, subject, email, dispatched_by, created_at, expires_at";

impl Conn<'_> {
    async fn insert_session(&mut self, secret_sha256: &str, s: &Session) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query(
            "INSERT INTO console_sessions (secret_sha256, principal, role, csrf, token_id, issuer, subject, email, dispatched_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(secret_sha256)
        .bind(&s.principal)
        .bind(&s.role)
        .bind(&s.csrf)
        .bind(s.token_id.as_deref())
        .bind(s.issuer.as_deref())
        .bind(s.subject.as_deref())
        .bind(s.email.as_deref())
        .bind(s.dispatched_by.as_deref())
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut **c)
        .await
        .map_err(db("inserting console session"))
        .map(|_| ())?);
        Ok(())
    }

    async fn session(&mut self, secret_sha256: &str) -> Result<Option<Session>, Error> {
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM console_sessions WHERE secret_sha256 = $1");
        Ok(dispatch!(self, c => {
            let row = sqlx::query(&sql)
                .bind(secret_sha256)
                .fetch_optional(&mut **c)
                .await
                .map_err(db("reading console session"))?;
            row.map(|row| Ok::<_, sqlx::Error>(Session {
                principal: row.try_get(0)?,
                role: row.try_get(1)?,
                csrf: row.try_get(2)?,
                token_id: row.try_get(3)?,
                issuer: row.try_get(4)?,
                subject: row.try_get(5)?,
                email: row.try_get(6)?,
                dispatched_by: row.try_get(7)?,
                created_at: row.try_get(8)?,
                expires_at: row.try_get(9)?,
            }))
            .transpose()
            .map_err(db("decoding console session"))?
        }))
    }

    async fn delete_session(&mut self, secret_sha256: &str) -> Result<bool, Error> {
        let done = dispatch!(self, c => sqlx::query("DELETE FROM console_sessions WHERE secret_sha256 = $1")
            .bind(secret_sha256)
            .execute(&mut **c)
            .await
            .map_err(db("deleting console session"))?
            .rows_affected());
        Ok(done > 0)
    }

    async fn delete_expired(&mut self, now: i64) -> Result<(), Error> {
        dispatch!(self, c => {
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **c)
                .await
                .map_err(db("pruning console sessions"))?;
            sqlx::query("DELETE FROM console_grants WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **c)
                .await
                .map_err(db("pruning console grants"))?;
        });
        Ok(())
    }

    async fn insert_grant(&mut self, secret_sha256: &str, g: &Grant) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query(
            "INSERT INTO console_grants (secret_sha256, kind, principal, role, verifier, nonce, next, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(secret_sha256)
        .bind(&g.kind)
        .bind(g.principal.as_deref())
        .bind(g.role.as_deref())
        .bind(g.verifier.as_deref())
        .bind(g.nonce.as_deref())
        .bind(g.next.as_deref())
        .bind(g.expires_at)
        .execute(&mut **c)
        .await
        .map_err(db("inserting console grant"))
        .map(|_| ())?);
        Ok(())
    }

    async fn take_grant(
        &mut self,
        secret_sha256: &str,
        kind: &str,
    ) -> Result<Option<Grant>, Error> {
        Ok(dispatch!(self, c => {
            let row = sqlx::query(
                "DELETE FROM console_grants WHERE secret_sha256 = $1 AND kind = $2 RETURNING kind, principal, role, verifier, nonce, next, expires_at",
            )
            .bind(secret_sha256)
            .bind(kind)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("taking console grant"))?;
            row.map(|row| Ok::<_, sqlx::Error>(Grant {
                kind: row.try_get(0)?,
                principal: row.try_get(1)?,
                role: row.try_get(2)?,
                verifier: row.try_get(3)?,
                nonce: row.try_get(4)?,
                next: row.try_get(5)?,
                expires_at: row.try_get(6)?,
            }))
            .transpose()
            .map_err(db("decoding console grant"))?
        }))
    }
}

impl Store {
    /// Stores `session` under the SHA-256 (lower-case hex) of its cookie's secret.
    pub async fn put_session(&self, secret_sha256: &str, session: &Session) -> Result<(), Error> {
        self.pooled()
            .await?
            .conn()
            .insert_session(secret_sha256, session)
            .await
    }

    /// The session whose secret hashes to `secret_sha256`, expired ones included.
    pub async fn session(&self, secret_sha256: &str) -> Result<Option<Session>, Error> {
        self.pooled().await?.conn().session(secret_sha256).await
    }

    /// Ends the session; `false` when there was none.
    pub async fn delete_session(&self, secret_sha256: &str) -> Result<bool, Error> {
        self.pooled()
            .await?
            .conn()
            .delete_session(secret_sha256)
            .await
    }

    /// Deletes the sessions and grants expired at `now`.
    pub async fn prune_sessions(&self, now: i64) -> Result<(), Error> {
        self.pooled().await?.conn().delete_expired(now).await
    }

    /// Stores a single-use grant under the SHA-256 of its secret.
    pub async fn put_grant(&self, secret_sha256: &str, grant: &Grant) -> Result<(), Error> {
        self.pooled()
            .await?
            .conn()
            .insert_grant(secret_sha256, grant)
            .await
    }

    /// Takes (deletes and returns) the grant of `kind` whose secret hashes to
    /// `secret_sha256`, expired or not: one caller gets it, whichever replica asks first.
    pub async fn take_grant(
        &self,
        secret_sha256: &str,
        kind: &str,
    ) -> Result<Option<Grant>, Error> {
        self.pooled()
            .await?
            .conn()
            .take_grant(secret_sha256, kind)
            .await
    }
}
