//! What the benchmark examples (`fleet`, `load`) share: the database each runs against (a
//! fresh SQLite file or PostgreSQL schema, dropped at the end) and how they report times.
//! Each example includes it as `mod bench;`; it is no example of its own (no `main.rs`).

use std::time::Duration;

pub enum Database {
    /// The directory is held for its `Drop`.
    #[allow(dead_code)]
    Sqlite(tempfile::TempDir, String),
    Postgres(countersign_testdb::PgSchema),
}

impl Database {
    /// `spec` is `sqlite` (a file named `NAME.db` in a temporary directory), `postgres`
    /// (`COUNTERSIGN_TEST_DATABASE_URL`, or the test default) or a `postgres://` URL; on
    /// PostgreSQL a fresh schema whose name starts with `name`.
    pub async fn open(spec: &str, name: &str) -> Database {
        if spec == "sqlite" {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{name}.db")).display()
            );
            return Database::Sqlite(dir, url);
        }
        let base = if spec == "postgres" {
            std::env::var("COUNTERSIGN_TEST_DATABASE_URL")
                .unwrap_or_else(|_| countersign_testdb::DEFAULT_URL.to_owned())
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            spec.to_owned()
        } else {
            panic!("--database {spec:?}: expected sqlite, postgres or a postgres:// URL");
        };
        let schema = countersign_testdb::PgSchema::create_on(&base, name)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
        Database::Postgres(schema)
    }

    pub fn url(&self) -> &str {
        match self {
            Database::Sqlite(_, url)
            | Database::Postgres(countersign_testdb::PgSchema { url, .. }) => url,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Database::Sqlite(..) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    pub async fn drop_schema(self) {
        if let Database::Postgres(schema) = self {
            schema.drop_schema().await;
        }
    }
}

/// The `p`th percentile of `sorted` by nearest rank (the smallest value with at least `p`%
/// of the samples at or below it); zero for no samples. One definition for every figure in
/// docs/benchmarks.md.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
