//! Test databases: a SQLite file in a temporary directory, or a fresh schema in the
//! PostgreSQL server named by COUNTERSIGN_TEST_DATABASE_URL; plus raw SQL for tampering.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, dead_code)]

use countersign_audit::{Event, EventKind, Signer};
use countersign_store::Store;
use sqlx::Connection as _;

pub enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres(countersign_testdb::PgSchema),
}

/// An event unique to `n`, so duplicates or losses show.
pub fn event(n: u64) -> Event {
    Event::new(
        EventKind::Decided,
        "2026-01-02T03:04:05Z",
        &format!("proposal-{n}"),
        "agent:fixbot",
        serde_json::json!({ "n": n, "tier": "single_approver" }),
    )
    .unwrap()
}

pub fn signer() -> Signer {
    Signer::from_seed("countersign.test/log", [7u8; 32]).unwrap()
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        // A nested directory that does not exist yet: connect creates it.
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state/countersign.db").display()
        );
        Db::Sqlite { _dir: dir, url }
    }

    /// The SQLite database file; `None` for PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Db::Sqlite { _dir: dir, .. } => Some(dir.path().join("state/countersign.db")),
            Db::Postgres(_) => None,
        }
    }

    /// `None` (after printing why) when the server is unreachable, except on CI.
    pub async fn postgres() -> Option<Db> {
        countersign_testdb::PgSchema::create("t")
            .await
            .map(Db::Postgres)
    }

    pub fn url(&self) -> &str {
        match self {
            Db::Sqlite { url, .. } | Db::Postgres(countersign_testdb::PgSchema { url, .. }) => url,
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(self.url()).await.unwrap()
    }

    /// Runs tampering SQL over a separate raw connection, after dropping the append-only
    /// triggers as an attacker with write access would.
    pub async fn tamper(&self, sqlite: &str, postgres: &str) {
        match self {
            Db::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                let sql = format!(
                    "DROP TRIGGER IF EXISTS log_leaves_append_only_update;
                     DROP TRIGGER IF EXISTS log_leaves_append_only_delete;
                     DROP TRIGGER IF EXISTS log_hashes_append_only_update;
                     DROP TRIGGER IF EXISTS log_hashes_append_only_delete;
                     {sqlite}"
                );
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Db::Postgres(countersign_testdb::PgSchema { url, .. }) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let sql = format!(
                    "DROP TRIGGER IF EXISTS log_leaves_append_only ON log_leaves;
                     DROP TRIGGER IF EXISTS log_hashes_append_only ON log_hashes; {postgres}"
                );
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Runs `sql` returning one text value, over a raw connection.
    pub async fn text(&self, sql: &str) -> String {
        match self {
            Db::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Db::Postgres(countersign_testdb::PgSchema { url, .. }) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Runs a statement the store must refuse; returns the database's error.
    pub async fn refused(&self, sql: &str) -> String {
        let result = match self {
            Db::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
            }
            Db::Postgres(countersign_testdb::PgSchema { url, .. }) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
            }
        };
        result.expect_err(sql).to_string()
    }

    pub async fn cleanup(self) {
        if let Db::Postgres(schema) = self {
            schema.drop_schema().await;
        }
    }
}
