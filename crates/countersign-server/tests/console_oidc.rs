//! The console's SSO: the authorization code flow with PKCE against an issuer the test runs
//! (discovery, a token endpoint that checks the code verifier, ID tokens signed with a test
//! key), through the real server. The ID token is verified and mapped as the API's; the
//! state must be the browser's, the nonce the sign-in's, and each flow is used once.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Db, NOW, Server, start_with};
use countersign_repo::RepoWriter;
use countersign_server::{JwksSource, OidcConfig};
use ed25519_dalek::{Signer as _, SigningKey};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const AUDIENCE: &str = "countersign";

const PEOPLE: &str = r#"apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  profile:
    email: bob@example.com
  memberOf: []
"#;

/// What the issuer remembers between the authorization request and the token request.
#[derive(Default)]
struct Issuer {
    base: String,
    challenge: String,
    nonce: String,
    /// Overrides the nonce the ID token carries (a replayed token's).
    forced_nonce: Option<String>,
    key: Option<SigningKey>,
}

type Shared = Arc<Mutex<Issuer>>;

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn discovery(State(issuer): State<Shared>) -> axum::Json<Value> {
    let base = issuer.lock().unwrap().base.clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
    }))
}

async fn token(
    State(issuer): State<Shared>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, (axum::http::StatusCode, String)> {
    let issuer = issuer.lock().unwrap();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != issuer.challenge || form.get("code").map(String::as_str) != Some("the-code") {
        return Err((
            axum::http::StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_grant" }).to_string(),
        ));
    }
    let claims = json!({
        "iss": issuer.base, "aud": AUDIENCE, "sub": "sub-bob",
        "email": "bob@example.com", "email_verified": true,
        "iat": NOW - 10, "exp": NOW + 3600,
        "nonce": issuer.forced_nonce.clone().unwrap_or_else(|| issuer.nonce.clone()),
    });
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": "k1" });
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = issuer.key.as_ref().unwrap().sign(input.as_bytes());
    let id_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    Ok(axum::Json(
        json!({ "id_token": id_token, "token_type": "Bearer" }),
    ))
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Setup {
    server: Server,
    issuer: Shared,
    _people: tempfile::TempDir,
    _jwks: tempfile::TempDir,
    idp: tokio::task::JoinHandle<()>,
}

async fn setup(db: &Db) -> Setup {
    let key = SigningKey::from_bytes(&[7; 32]);
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
    }] });
    let jwks_dir = tempfile::tempdir().unwrap();
    let file = jwks_dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let issuer: Shared = Arc::new(Mutex::new(Issuer {
        key: Some(key),
        ..Issuer::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    issuer.lock().unwrap().base = base.clone();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/token", post(token))
        .with_state(Arc::clone(&issuer));
    let idp = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let people = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(people.path()).unwrap();
    writer
        .commit(
            [("catalog-info.yaml", Some(PEOPLE))],
            "people",
            common::ALICE,
            NOW as i64,
        )
        .unwrap();
    let mut config = OidcConfig::new(base, AUDIENCE, JwksSource::File(file));
    config.identity_repo = Some("people".to_owned());
    let people_path = people.path().to_owned();
    let server = start_with(db, move |mut state| {
        let mut repos: BTreeMap<_, _> = state.repos.as_ref().clone();
        repos.insert("people".to_owned(), people_path);
        state.repos = Arc::new(repos);
        state.with_oidc(config)
    })
    .await;
    Setup {
        server,
        issuer,
        _people: people,
        _jwks: jwks_dir,
        idp,
    }
}

/// Starts a sign-in in `client`: the issuer learns the challenge and nonce from the
/// authorization URL; returns the state.
async fn start_flow(client: &Client, setup: &Setup, next: &str) -> String {
    let response = client
        .get(format!("{}/signin/oidc?next={next}", setup.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location: reqwest::Url = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let issuer_base = setup.issuer.lock().unwrap().base.clone();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{issuer_base}/authorize?")),
        "{location}"
    );
    let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], AUDIENCE);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/signin/oidc/callback", setup.server.base)
    );
    let mut issuer = setup.issuer.lock().unwrap();
    issuer.challenge = query["code_challenge"].clone();
    issuer.nonce = query["nonce"].clone();
    query["state"].clone()
}

async fn callback(client: &Client, setup: &Setup, state: &str) -> reqwest::Response {
    client
        .get(format!(
            "{}/signin/oidc/callback?code=the-code&state={state}",
            setup.server.base
        ))
        .send()
        .await
        .unwrap()
}

async fn sso_signs_a_person_in_with_pkce(db: &Db) {
    let setup = setup(db).await;
    let client = browser();
    let (_, page) = (
        (),
        client
            .get(format!("{}/signin", setup.server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(page.contains("Sign in with SSO"), "{page}");
    let state = start_flow(&client, &setup, "/proposals").await;
    let response = callback(&client, &setup, &state).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/proposals");
    let home = client
        .get(format!("{}/", setup.server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("human:bob (approver)"), "{home}");
    // The flow is used: the same callback again is refused.
    let again = callback(&client, &setup, &state).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    setup.idp.abort();
    setup.server.stop().await;
}

async fn sso_refuses_another_browsers_state_and_a_wrong_nonce(db: &Db) {
    let setup = setup(db).await;
    // A state started in another browser (login CSRF): this browser has no cookie for it.
    let attacker = browser();
    let state = start_flow(&attacker, &setup, "/").await;
    let victim = browser();
    let response = callback(&victim, &setup, &state).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(page.contains("not started in this browser"), "{page}");

    // An ID token whose nonce is not this sign-in's.
    let client = browser();
    let state = start_flow(&client, &setup, "/").await;
    setup.issuer.lock().unwrap().forced_nonce = Some("replayed".into());
    let response = callback(&client, &setup, &state).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let page = response.text().await.unwrap();
    assert!(page.contains("nonce"), "{page}");
    let home = client
        .get(format!("{}/", setup.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER, "no session");

    // A code verifier the issuer does not accept (the flow's record was taken): refused.
    setup.issuer.lock().unwrap().forced_nonce = None;
    let state = start_flow(&client, &setup, "/").await;
    setup.issuer.lock().unwrap().challenge = "not-the-challenge".into();
    let response = callback(&client, &setup, &state).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    setup.idp.abort();
    setup.server.stop().await;
}

on_both_backends!(
    sso_signs_a_person_in_with_pkce,
    sso_refuses_another_browsers_state_and_a_wrong_nonce,
);
