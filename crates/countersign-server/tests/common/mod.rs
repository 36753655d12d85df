//! The harness every server test file shares: a governed repository written with
//! `RepoWriter`, a database (a SQLite file, or a fresh PostgreSQL schema when one is
//! reachable: skipped with the reason printed, except under CI=true where it must run), and the
//! real server on 127.0.0.1:0 with one token per test persona.
#![allow(dead_code, clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::BTreeMap;

use countersign_policy::Principal;
use countersign_repo::RepoWriter;
use countersign_server::{AppState, Clock, Role, create_token};
use countersign_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const NOW: u64 = 1_767_603_600;
pub const ALICE: &str = "Alice <alice@example.com>";

pub const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-shop
spec:
  type: team
  children: []
  members: [alice, bob, carol]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: carol
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: docs
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /docs/**
spec:
  type: website
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: critical
    countersign.dev/surfaces: payments
    countersign.dev/paths: /payments/**
spec:
  type: service
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  annotations:
    countersign.dev/criticality: moderate
    countersign.dev/paths: /shop/**
spec:
  type: website
  lifecycle: production
  owner: team-shop
"#;

/// The governed repository and its commits.
pub struct Repo {
    pub _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub base: String,
    pub docs: String,
    pub payments: String,
    pub shop: String,
    /// A commit on branch `side`, off `base`: never in main's history, so no proposal may
    /// take it as its base.
    pub side: String,
}

pub fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RepoWriter::init(dir.path()).unwrap();
    w.commit(
        [
            ("catalog-info.yaml", Some(CATALOG)),
            ("docs/index.md", Some("# Docs\n")),
            ("payments/src/lib.rs", Some("pub fn charge() {}\n")),
            ("shop/index.html", Some("<html></html>\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap().as_str().to_owned();
    let docs = w
        .commit(
            [("docs/index.md", Some("# Documentation\n"))],
            "typo",
            ALICE,
            NOW as i64 + 1,
        )
        .unwrap();
    let payments = w
        .commit(
            [(
                "payments/src/lib.rs",
                Some("pub fn charge() { /* fixed */ }\n"),
            )],
            "fix",
            ALICE,
            NOW as i64 + 2,
        )
        .unwrap();
    let shop = w
        .commit(
            [("shop/index.html", Some("<html>shop</html>\n"))],
            "shop",
            ALICE,
            NOW as i64 + 3,
        )
        .unwrap();
    let side = w
        .commit_on(
            "refs/heads/side",
            &countersign_repo::CommitId::from_hex(&base).unwrap(),
            [("payments/src/lib.rs", Some("pub fn charge() { side(); }\n"))],
            "side",
            ALICE,
            NOW as i64 + 4,
        )
        .unwrap();
    Repo {
        side: side.as_str().to_owned(),
        path: dir.path().to_owned(),
        _dir: dir,
        base,
        docs: docs.as_str().to_owned(),
        payments: payments.as_str().to_owned(),
        shop: shop.as_str().to_owned(),
    }
}

pub enum Db {
    #[allow(dead_code)] // The directory is held for its Drop.
    Sqlite(tempfile::TempDir, String),
    Postgres(countersign_testdb::PgSchema),
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("countersign.db").display()
        );
        Db::Sqlite(dir, url)
    }

    pub async fn postgres() -> Option<Db> {
        countersign_testdb::PgSchema::create("srv")
            .await
            .map(Db::Postgres)
    }

    pub fn url(&self) -> &str {
        match self {
            Db::Sqlite(_, url) | Db::Postgres(countersign_testdb::PgSchema { url, .. }) => url,
        }
    }

    pub async fn cleanup(self) {
        if let Db::Postgres(schema) = self {
            schema.drop_schema().await;
        }
    }
}

/// A running server with its tokens.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub repo: Repo,
    pub tokens: BTreeMap<&'static str, String>,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The log key of test servers that sign (`start_with(db, |s| s.with_log_signer(log_signer()))`).
pub fn log_signer() -> countersign_audit::Signer {
    countersign_audit::Signer::from_seed("countersign.test/server", [0x5C; 32]).unwrap()
}

pub async fn start(db: &Db) -> Server {
    start_with(db, |state| state).await
}

/// [`start`] with the state changed before the server starts (an OIDC issuer, more
/// repositories).
pub async fn start_with(db: &Db, configure: impl FnOnce(AppState) -> AppState) -> Server {
    let store = Store::connect(db.url()).await.unwrap();
    let repo = repo();
    let mut tokens = BTreeMap::new();
    let expires = NOW as i64 + 3600;
    for (i, (name, principal, role, expires_at)) in [
        ("fixbot", "agent:fixbot", Role::Proposer, expires),
        ("alice-proposer", "human:alice", Role::Proposer, expires),
        ("alice", "human:alice", Role::Approver, expires),
        ("bob", "human:bob", Role::Approver, expires),
        ("carol", "human:carol", Role::Approver, expires),
        ("dave", "human:dave", Role::Approver, expires),
        ("agent-approver", "agent:fixbot", Role::Approver, expires),
        ("expired", "human:bob", Role::Approver, NOW as i64 - 1),
        ("auditor", "human:erin", Role::Auditor, expires),
        ("admin", "human:root", Role::Admin, expires),
    ]
    .into_iter()
    .enumerate()
    {
        let principal: Principal = principal.parse().unwrap();
        let mut secret = [0u8; 32];
        secret[0] = u8::try_from(i).unwrap();
        secret[1] = 0xA5;
        let (text, _) = create_token(&store, &principal, role, expires_at, secret)
            .await
            .unwrap();
        tokens.insert(name, text);
    }
    let repos = BTreeMap::from([("shop".to_owned(), repo.path.clone())]);
    let state = configure(AppState::new(store.clone(), repos, Clock::fixed(NOW)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        client: reqwest::Client::new(),
        store,
        repo,
        tokens,
        stop: Some(stop),
        task,
    }
}

impl Server {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.store.close().await;
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(&self.tokens[token]);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"));
        let text = response.text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            assert!(problem, "{status} is not problem+json: {value}");
            assert_eq!(value["status"], status.as_u16(), "{value}");
        }
        (status, value)
    }

    pub async fn propose(&self, token: &str, head: &str) -> (StatusCode, Value) {
        let body =
            json!({ "repo": "shop", "base": self.repo.base, "head": head, "title": "change" });
        self.send(
            reqwest::Method::POST,
            "/v1/proposals",
            Some(token),
            Some(body),
        )
        .await
    }

    pub async fn verdict(
        &self,
        token: &str,
        id: &str,
        head: &str,
        verdict: &str,
    ) -> (StatusCode, Value) {
        // Rejections need a comment; approvals may have one.
        let comment = if verdict == "reject" {
            "not like this"
        } else {
            ""
        };
        let body = json!({ "head": head, "verdict": verdict, "comment": comment });
        self.send(
            reqwest::Method::POST,
            &format!("/v1/proposals/{id}/approvals"),
            Some(token),
            Some(body),
        )
        .await
    }
}

pub mod catalog;

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::Db::sqlite();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}
