//! Tests only: a PostgreSQL schema of one test's own on the test server.
//!
//! The server is `COUNTERSIGN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable, [`PgSchema::create`]
//! prints why and returns `None`, so the test skips; under `CI=true` it panics instead,
//! because CI must never pass by skipping the PostgreSQL half of the suite.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The test server when `COUNTERSIGN_TEST_DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema, and a URL whose connections use it (`search_path`). Drop it with
/// [`PgSchema::drop_schema`] at the end of the test.
pub struct PgSchema {
    /// A connection pool to the server itself, for the test's own checks.
    pub admin: PgPool,
    pub schema: String,
    /// The server's URL with `options=-c search_path=<schema>`.
    pub url: String,
}

impl PgSchema {
    /// Creates a schema named `<prefix>_<unique hex>`; `None` (after printing why) when the
    /// server is unreachable, except under `CI=true`, where that panics.
    #[allow(clippy::panic, clippy::unwrap_used)] // A test helper: failing loudly is its job.
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let base = std::env::var("COUNTERSIGN_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_URL.to_owned());
        match PgSchema::create_on(&base, prefix).await {
            Ok(schema) => Some(schema),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL at {base} is unreachable and CI=true: {e}")
            }
            Err(e) => {
                eprintln!("skipping the PostgreSQL test: {base} is unreachable: {e}");
                None
            }
        }
    }

    /// A schema named `<prefix>_<unique hex>` on the server at `base`, whatever the
    /// environment says (the load generator's `--database postgres://…`).
    pub async fn create_on(base: &str, prefix: &str) -> Result<PgSchema, sqlx::Error> {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(base)
            .await?;
        let schema = format!("{prefix}_{}", unique_hex());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await?;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Ok(PgSchema { admin, schema, url })
    }

    /// Drops the schema and everything in it, and closes the admin pool.
    #[allow(clippy::unwrap_used)]
    pub async fn drop_schema(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await
            .unwrap();
        self.admin.close().await;
    }
}

/// 16 hex digits from the process id, the time and a random hash key: unique across the
/// test processes nextest runs at once.
fn unique_hex() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}
