//! People signing in with OIDC ID tokens: Ed25519 keys made here and tokens signed by hand
//! (so the server's decoder is checked against an independent encoder), plus RS256 with a
//! fixed RSA test key; the JWKS from a file and from a loopback URL. A valid token approves as the catalog User with that
//! profile email; every way a token can be wrong is a 401, a verified token naming nobody
//! the catalog knows as a person is a 403.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Db, NOW, Server, start_with};
use countersign_repo::RepoWriter;
use countersign_server::{JwksSource, OidcConfig};
use ed25519_dalek::{Signer as _, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "countersign";

/// A second configured repository holding only people: the users of the shop catalog with
/// their profile emails, and a bot account.
const PEOPLE: &str = r#"apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  profile:
    email: Bob@Example.com
  memberOf: []
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  profile:
    email: alice@example.com
  memberOf: []
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: renovate-bot
spec:
  profile:
    email: renovate@example.com
  memberOf: []
"#;

struct Key {
    kid: &'static str,
    signing: SigningKey,
}

impl Key {
    fn new(kid: &'static str, seed: u8) -> Key {
        Key {
            kid,
            signing: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
        })
    }

    /// A compact JWS over `header` and `claims`, signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid }),
            claims,
        )
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn jwks(keys: &[&Key]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

/// The claims of a good token for `email`, valid for an hour around the server's clock.
fn claims(email: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("sub-{email}"),
        "email": email, "email_verified": true,
        "iat": NOW - 10, "exp": NOW + 3600,
    })
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

/// The people repository, its writer kept so a test can move its HEAD.
fn people() -> (tempfile::TempDir, RepoWriter) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    writer
        .commit(
            [("catalog-info.yaml", Some(PEOPLE))],
            "people",
            common::ALICE,
            NOW as i64,
        )
        .unwrap();
    (dir, writer)
}

/// The server with `people` as its identity repository: the operator's one directory of
/// people, as `serve --oidc-identity-repo people` declares it.
async fn start_oidc(db: &Db, people: &std::path::Path, mut config: OidcConfig) -> Server {
    config.identity_repo = Some("people".to_owned());
    let people = people.to_owned();
    start_with(db, move |mut state| {
        let mut repos: BTreeMap<_, _> = state.repos.as_ref().clone();
        repos.insert("people".to_owned(), people);
        state.repos = Arc::new(repos);
        state.with_oidc(config)
    })
    .await
}

async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let value: Value = response.json().await.unwrap();
    if !status.is_success() {
        assert_eq!(content_type, "application/problem+json", "{value}");
    }
    (status, value)
}

/// A proposal waiting for approvals from the shop team.
async fn open_proposal(server: &Server) -> String {
    let (status, proposal) = server.propose("fixbot", &server.repo.shop).await;
    assert_eq!(status, 201, "{proposal}");
    assert_eq!(proposal["state"], "awaiting_approval", "{proposal}");
    proposal["id"].as_str().unwrap().to_owned()
}

async fn read(server: &Server, id: &str, bearer: &str) -> (StatusCode, String) {
    let (status, body) = call(
        server,
        reqwest::Method::GET,
        &format!("/v1/proposals/{id}"),
        bearer,
        None,
    )
    .await;
    (status, body["detail"].as_str().unwrap_or("").to_owned())
}

async fn id_tokens_from_a_jwks_file(db: &Db) {
    let key = Key::new("k1", 7);
    let other = Key::new("k1", 8); // Same kid, another key: a forger's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let (people_dir, _people) = people();
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file));
    let server = start_oidc(db, people_dir.path(), config).await;
    let id = open_proposal(&server).await;
    let bob = claims("bob@example.com");

    // Every way a token is not good is a 401, with the reason.
    let unauthorized = [
        (
            key.token(&with(bob.clone(), "exp", json!(NOW - 61))),
            "expired",
        ),
        (
            key.token(&with(bob.clone(), "nbf", json!(NOW + 120))),
            "not valid yet",
        ),
        (
            key.token(&with(bob.clone(), "iss", json!("https://evil.example.com"))),
            "iss",
        ),
        (
            key.token(&with(bob.clone(), "aud", json!(["someone-else"]))),
            "aud",
        ),
        (
            key.token(&{
                let mut c = bob.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
            "no exp claim",
        ),
        (Key::new("k9", 9).token(&bob), "no key \"k9\""),
        (other.token(&bob), "signature"),
        (
            format!(
                "{}.{}.",
                b64(&json!({ "alg": "none", "kid": "k1" })),
                b64(&bob)
            ),
            "header",
        ),
        (
            // The signature of one payload on another.
            {
                let good = key.token(&bob);
                let sig = good.rsplit('.').next().unwrap().to_owned();
                let forged = with(bob.clone(), "email", json!("alice@example.com"));
                format!(
                    "{}.{}.{sig}",
                    b64(&json!({"alg": "EdDSA", "kid": "k1"})),
                    b64(&forged)
                )
            },
            "signature",
        ),
        (
            // HS256 keyed with the public key's bytes: the classic algorithm confusion.
            {
                let header = json!({ "alg": "HS256", "kid": "k1" });
                let secret = key.signing.verifying_key().to_bytes();
                jsonwebtoken::encode(
                    &serde_json::from_value(header).unwrap(),
                    &bob,
                    &jsonwebtoken::EncodingKey::from_secret(&secret),
                )
                .unwrap()
            },
            "verifies only EdDSA",
        ),
        ("not-a-jwt".to_owned(), "header"),
    ];
    for (token, why) in &unauthorized {
        let (status, detail) = read(&server, &id, token).await;
        assert_eq!(status, 401, "{why}: {detail}");
        assert!(detail.contains(why), "expected {why:?} in {detail:?}");
    }

    // Within the leeway an expired token still verifies.
    let late = key.token(&with(bob.clone(), "exp", json!(NOW - 30)));
    assert_eq!(read(&server, &id, &late).await.0, 200);

    // Verified tokens naming nobody the catalog knows as a person are 403.
    let forbidden = [
        (
            key.token(&with(bob.clone(), "email_verified", json!(false))),
            "not verified",
        ),
        (
            key.token(&{
                let mut c = bob.clone();
                c.as_object_mut().unwrap().remove("email_verified");
                c
            }),
            "not verified",
        ),
        (
            key.token(&claims("dave@example.com")),
            "not the profile email of any catalog User",
        ),
        (key.token(&claims("renovate@example.com")), "bot account"),
        (
            key.token(&{
                let mut c = bob.clone();
                c.as_object_mut().unwrap().remove("email");
                c
            }),
            "no email claim",
        ),
    ];
    for (token, why) in &forbidden {
        let (status, detail) = read(&server, &id, token).await;
        assert_eq!(status, 403, "{why}: {detail}");
        assert!(detail.contains(why), "expected {why:?} in {detail:?}");
    }

    // A person signed in this way is an approver by default: not a proposer.
    let body =
        json!({ "repo": "shop", "base": server.repo.base, "head": server.repo.docs, "title": "t" });
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/proposals",
        &key.token(&bob),
        Some(body),
    )
    .await;
    assert_eq!(status, 403);

    // The email is matched case-insensitively ("Bob@Example.com" in the catalog), and an
    // issuer writing email_verified as a string is understood.
    let token = key.token(&with(
        with(bob.clone(), "email", json!("BOB@example.com")),
        "email_verified",
        json!("true"),
    ));
    let verdict = json!({ "head": server.repo.shop, "verdict": "approve", "comment": "" });
    let (status, proposal) = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/proposals/{id}/approvals"),
        &token,
        Some(verdict),
    )
    .await;
    assert_eq!(status, 200, "{proposal}");
    assert_eq!(proposal["approvals_counted"], 1, "{proposal}");
    assert_eq!(
        proposal["approvals"][0]["approver"], "human:bob",
        "{proposal}"
    );
    // The verdict records who vouched for bob: the issuer and its subject.
    let approved = server
        .store
        .entries_about(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .find(|e| e.kind == countersign_audit::EventKind::Approved)
        .unwrap();
    assert_eq!(
        approved.data["identity"],
        json!({ "issuer": ISSUER, "subject": "sub-bob@example.com" })
    );
    server.stop().await;
}

/// Serves a JWKS document that the test can replace, counting the fetches.
struct JwksServer {
    url: String,
    document: Arc<std::sync::Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_server(document: String) -> JwksServer {
    let document = Arc::new(std::sync::Mutex::new(document));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (document.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (d, f) = (d.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                ([("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer {
        url,
        document,
        fetches,
    }
}

async fn id_tokens_from_a_jwks_url(db: &Db) {
    let (k1, k2) = (Key::new("k1", 1), Key::new("k2", 2));
    let issuer = jwks_server(jwks(&[&k1])).await;
    let (people_dir, mut people) = people();
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, issuer.url.parse().unwrap());
    // Reload on every unknown key id: the rate limit is the unit tests' (oidc.rs).
    config.min_refresh_interval = std::time::Duration::ZERO;
    let server = start_oidc(db, people_dir.path(), config).await;
    let id = open_proposal(&server).await;

    // Nothing is fetched before the first ID token; then the keys are cached.
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        assert_eq!(
            read(&server, &id, &k1.token(&claims("alice@example.com")))
                .await
                .0,
            200
        );
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates to k2: a token with the new key id reloads the set once.
    let carol = claims("carol@example.com");
    assert_eq!(read(&server, &id, &k2.token(&carol)).await.0, 401);
    *issuer.document.lock().unwrap() = jwks(&[&k2]);
    let (status, detail) = read(&server, &id, &k2.token(&carol)).await;
    // Carol has no profile email yet: verified, but nobody.
    assert_eq!(status, 403, "{detail}");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 3);
    // k1 was withdrawn: its tokens no longer verify (one more reload for the unknown kid).
    assert_eq!(
        read(&server, &id, &k1.token(&claims("alice@example.com")))
            .await
            .0,
        401
    );

    // The people catalog is read at HEAD, per commit: once carol's email is committed she
    // maps, and she is an eligible approver of the shop change.
    let carol_user = "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: carol\nspec:\n  profile:\n    email: carol@example.com\n  memberOf: []\n";
    people
        .commit(
            [("catalog-info.yaml", Some(format!("{PEOPLE}{carol_user}")))],
            "carol",
            common::ALICE,
            NOW as i64 + 10,
        )
        .unwrap();
    let verdict = json!({ "head": server.repo.shop, "verdict": "approve", "comment": "" });
    let (status, proposal) = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/proposals/{id}/approvals"),
        &k2.token(&carol),
        Some(verdict),
    )
    .await;
    assert_eq!(status, 200, "{proposal}");
    assert_eq!(
        proposal["approvals"][0]["approver"], "human:carol",
        "{proposal}"
    );
    server.stop().await;
}

async fn api_tokens_still_work_beside_oidc(db: &Db) {
    let key = Key::new("k1", 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let (people_dir, _people) = people();
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file));
    let server = start_oidc(db, people_dir.path(), config).await;
    let id = open_proposal(&server).await;
    let (status, _) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // A made-up cst_ token is an unknown API token, never tried as an ID token.
    let (status, detail) = read(&server, &id, "cst_0000").await;
    assert_eq!((status.as_u16(), detail.as_str()), (401, "unknown token"));
    server.stop().await;
}

/// A 2048-bit RSA test key (`openssl genrsa -traditional 2048`, PKCS#1 DER, base64): RS256 is
/// what most issuers sign with.
const RSA_PKCS1_DER: &str = concat!(
    "MIIEowIBAAKCAQEAqPPodHmCd33SqXmYesBkoXQpkuUjOgLne5ynHCBmzxA49iDz9sGqWmiQeYL6X1s8H9peAf5+",
    "DA74tfX7OYsMVFAPQxWZdlNybRVPutRy9IA+1dJel7Xs4yji2Tri/F8iIlXsrVH03pw44aL61oS50vtc9wwO8Ax8",
    "IlRQ29dyVVaqDS84WLEOJEeclg6Avkr2rsB/4Ak+NERJlKyJUgcxFRnf10pagarKhxtS+/GYByPzD0crXu5tOAYI",
    "+gWGYPWU8tlizC+B9BNwHhaijgm5qpP+X/Wc2u5sWGGfGUkqsRy1ezq6rlJyvAPU5IpgDQLjv3JXFv64i3tU6iyh",
    "UPHHoQIDAQABAoIBAEktV433QSCDMVaxMW9dXFinyQf0UgUi0+Mwzxp6GD1wH9PPIwvKBwBgkM7ogYwCprB/Mr93",
    "XF3ZsDSTxYu/Y4gzIuEh/lWHQCTqGZ3ovZ+T2mNfWhQoumELSPHgtQatJ8oqYDgTqtUuYd6s6is20ouEzte7885a",
    "AfwWe+00TDOUgNvVRqPtycWUyjYjUinPNf5Mcy2tg+vu9d1LtQuaFVJeVxw/MNKtmBTNAexfFn3opDTsdRco8RFY",
    "hAve79ZD4hdDWccb5n0q8CKNh58I7otvwcgku5CaKyiGP+b34gxak3RwiLwK1QuBhw01gykGi68/ASYfHDw70OUQ",
    "aMvKnmcCgYEA3JjSOizB+7mQykGmJTGUFBiCYRsrq8vvmds11tAq2Gr5o8uXIJ9Ogsz+fvsgCddL/hTHzHnsT8ao",
    "jvlx79CvxYI4jw8UMu0xkh8ZFHDAXKPGrS0/fd7oNGPET5LEEFHFxbmusGLiRs1/KzJORcNvvaxdX1cKRlap3q66",
    "svOUJD8CgYEAxBFL1uzJIOXE41uPJhcYAldzVvVzs1uXzQKmUUGGVfbBmgUIVuBAN1hyy/kgIvDxCEl0ZjnHdbza",
    "9q15VTZauLBhwlCg1qmwNkjbRgXee3BTtQt+Vqv+rl1al07JT6u1b6QS9U64aj9wEEy6liLehmjX6q0Ut14Xfs0R",
    "K71VnB8CgYEAnrhOOpFNmYLwzLXjh0te0f64gIn+KAP6B2eUG1V4HnMJ33Jy8IPvB2nbix3A9ZO1F8F36IWpI9U6",
    "HnUYJ4atkZyaeUROMj47tnktoGln3r/wCVZPIo+p31gRPXfKHjvX4uYw7LSZPnxJDZmKe+OcmIpWPGzx9Z4RZymt",
    "J2jepB0CgYAI+BmWDWLuBFTLacbUoT3R7ZozIitWyxvYnwRotyykBhO5Lf3Bq6SEY6Fsv0q/DnKYRHP0sTP0qN0D",
    "Z9AjG8dup3LxZqrU5xJOiWque1pAH1VU9N+kq12NMGwSe+ItqNc18jWDz0QUaC6CMGBgudugHm+yJpTKBp3giRT+",
    "AT1HVQKBgBPThp1xKGh1bVBwOaZqBa0R9oqOSIflNhzteSCMrGtbjLebiZ5reQ6f8rG2BJ7qVc8O8D5+Luwoon2Q",
    "uUFpaWfhOIPNDqtIj3ywkkOd3pzv5DkJJhTnudgUTIDmfQ6uDUNXxqJSsTVTjhF4brpN8uRlbgAe/cIYWmFJ8ZgF",
    "OLff",
);
/// Its modulus, base64url, as the issuer's JWKS publishes it.
const RSA_N: &str = concat!(
    "qPPodHmCd33SqXmYesBkoXQpkuUjOgLne5ynHCBmzxA49iDz9sGqWmiQeYL6X1s8H9peAf5-DA74tfX7OYsMVFAP",
    "QxWZdlNybRVPutRy9IA-1dJel7Xs4yji2Tri_F8iIlXsrVH03pw44aL61oS50vtc9wwO8Ax8IlRQ29dyVVaqDS84",
    "WLEOJEeclg6Avkr2rsB_4Ak-NERJlKyJUgcxFRnf10pagarKhxtS-_GYByPzD0crXu5tOAYI-gWGYPWU8tlizC-B",
    "9BNwHhaijgm5qpP-X_Wc2u5sWGGfGUkqsRy1ezq6rlJyvAPU5IpgDQLjv3JXFv64i3tU6iyhUPHHoQ",
);

async fn rs256_tokens_as_most_issuers_sign(db: &Db) {
    use base64::engine::general_purpose::STANDARD;
    let der = STANDARD.decode(RSA_PKCS1_DER).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    // No `alg` in the JWK, as some issuers publish it: RS256 follows from the key type.
    let jwks = json!({ "keys": [{ "kty": "RSA", "use": "sig", "kid": "rsa-1", "n": RSA_N, "e": "AQAB" }] });
    std::fs::write(&file, jwks.to_string()).unwrap();
    let (people_dir, _people) = people();
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file));
    let server = start_oidc(db, people_dir.path(), config).await;
    let id = open_proposal(&server).await;

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
    let token = jsonwebtoken::encode(&header, &claims("alice@example.com"), &key).unwrap();
    assert_eq!(read(&server, &id, &token).await.0, 200);

    // The same claims as HS256 keyed with the public modulus: refused, the key is RS256's.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let secret = jsonwebtoken::EncodingKey::from_secret(RSA_N.as_bytes());
    let forged = jsonwebtoken::encode(&header, &claims("alice@example.com"), &secret).unwrap();
    let (status, detail) = read(&server, &id, &forged).await;
    assert_eq!(status, 401, "{detail}");
    assert!(detail.contains("verifies only RS256"), "{detail}");
    server.stop().await;
}

/// Without an identity repository, people are each repository's own: a second repository
/// declaring `kind: User, name: bob` with mallory's email does not let mallory approve as bob
/// in shop (refused and logged), and with the identity repository it names nobody at all.
/// A verdict records the identity provider's issuer and subject beside the principal.
async fn one_repository_cannot_claim_anothers_people(db: &Db) {
    let key = Key::new("k1", 7);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let attacker = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(attacker.path()).unwrap();
    writer
        .commit(
            [(
                "catalog-info.yaml",
                Some(
                    PEOPLE
                        .replace("Bob@Example.com", "mallory@example.com")
                        .as_str(),
                ),
            )],
            "people, one of them made up",
            common::ALICE,
            NOW as i64,
        )
        .unwrap();
    let people_path = attacker.path().to_owned();
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file.clone()));
    let server = start_with(db, move |mut state| {
        let mut repos: BTreeMap<_, _> = state.repos.as_ref().clone();
        repos.insert("people".to_owned(), people_path);
        state.repos = Arc::new(repos);
        state.with_oidc(config)
    })
    .await;
    let id = open_proposal(&server).await;
    let head = server.repo.shop.clone();
    let mallory = key.token(&claims("mallory@example.com"));
    let approve = json!({ "head": head, "verdict": "approve", "comment": "" });
    let path = format!("/v1/proposals/{id}/approvals");
    let (status, problem) = call(
        &server,
        reqwest::Method::POST,
        &path,
        &mallory,
        Some(approve.clone()),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not declare human:bob"),
        "{problem}"
    );
    server.stop().await;
}

/// With one identity repository (here the shop), another repository's Users name nobody:
/// mallory's email, which only the other repository declares, signs in as no one.
async fn an_identity_repository_is_the_only_directory(db: &Db) {
    let key = Key::new("k1", 7);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let attacker = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(attacker.path()).unwrap();
    writer
        .commit(
            [(
                "catalog-info.yaml",
                Some(
                    PEOPLE
                        .replace("Bob@Example.com", "mallory@example.com")
                        .as_str(),
                ),
            )],
            "people, one of them made up",
            common::ALICE,
            NOW as i64,
        )
        .unwrap();
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file));
    config.identity_repo = Some("shop".to_owned());
    let attacker_path = attacker.path().to_owned();
    let server = start_with(db, move |mut state| {
        let mut repos: BTreeMap<_, _> = state.repos.as_ref().clone();
        repos.insert("people".to_owned(), attacker_path);
        state.repos = Arc::new(repos);
        state.with_oidc(config)
    })
    .await;
    let id = open_proposal(&server).await;
    let mallory = key.token(&claims("mallory@example.com"));
    let approve = json!({ "head": server.repo.shop, "verdict": "approve", "comment": "" });
    let path = format!("/v1/proposals/{id}/approvals");
    let (status, problem) = call(
        &server,
        reqwest::Method::POST,
        &path,
        &mallory,
        Some(approve),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not the profile email"),
        "{problem}"
    );
    server.stop().await;
}

/// A per-task agent token names its dispatcher with the person's own ID token
/// (`X-Countersign-Dispatcher-Token`): verified like a sign-in, the person becomes an author
/// of the proposal and the `dispatched_by` of its decision. A header that does not verify,
/// names no person, comes from a person's own token or contradicts a token's binding is
/// refused, never ignored.
async fn an_id_token_proves_who_dispatched_the_agent(db: &Db) {
    let key = Key::new("k1", 7);
    let forger = Key::new("k1", 8);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let (people_dir, _people) = people();
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file));
    let server = start_oidc(db, people_dir.path(), config).await;
    let propose = |bearer: &'static str, dispatcher: String| {
        let request = server
            .client
            .post(format!("{}/v1/proposals", server.base))
            .bearer_auth(&server.tokens[bearer])
            .header("X-Countersign-Dispatcher-Token", dispatcher)
            .json(&json!({
                "repo": "shop", "base": server.repo.base, "head": server.repo.shop, "title": "t"
            }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };

    // Refused, each with its reason: a forged, an expired, a nobody's ID token; a person
    // sending a dispatcher for themselves.
    for (bearer, dispatcher, status, why) in [
        (
            "fixbot",
            forger.token(&claims("bob@example.com")),
            StatusCode::UNAUTHORIZED,
            "signature",
        ),
        (
            "fixbot",
            key.token(&with(claims("bob@example.com"), "exp", json!(NOW - 61))),
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            "fixbot",
            key.token(&claims("mallory@example.com")),
            StatusCode::FORBIDDEN,
            "mallory@example.com",
        ),
        (
            "alice-proposer",
            key.token(&claims("bob@example.com")),
            StatusCode::FORBIDDEN,
            "only an agent is dispatched",
        ),
        ("fixbot", " ".to_owned(), StatusCode::UNAUTHORIZED, "empty"),
    ] {
        let (got, problem) = propose(bearer, dispatcher).await;
        assert_eq!(got, status, "{why}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("x-countersign-dispatcher-token: ") && detail.contains(why),
            "{why}: {detail}"
        );
    }

    // bob's ID token: bob dispatched the agent, so he is an author and cannot approve.
    let (status, proposal) = propose("fixbot", key.token(&claims("bob@example.com"))).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["author"], "agent:fixbot");
    assert_eq!(
        proposal["decision"]["dispatched_by"], "human:bob",
        "{proposal:#}"
    );
    assert!(
        proposal["authors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "human:bob"),
        "{proposal:#}"
    );
    let id = proposal["id"].as_str().unwrap();
    let (status, problem) = server
        .verdict("bob", id, &server.repo.shop, "approve")
        .await;
    assert!(status.is_client_error(), "{status} {problem}");
    server.stop().await;
}

/// Without an OIDC issuer, a dispatcher header cannot be checked: refused, not ignored.
async fn a_dispatcher_header_without_an_issuer_is_refused(db: &Db) {
    let server = common::start(db).await;
    let response = server
        .client
        .post(format!("{}/v1/proposals", server.base))
        .bearer_auth(&server.tokens["fixbot"])
        .header("X-Countersign-Dispatcher-Token", "eyJ.e30.x")
        .json(&json!({
            "repo": "shop", "base": server.repo.base, "head": server.repo.shop, "title": "t"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no OIDC issuer is configured"),
        "{problem}"
    );
    server.stop().await;
}

on_both_backends!(
    one_repository_cannot_claim_anothers_people,
    an_id_token_proves_who_dispatched_the_agent,
    a_dispatcher_header_without_an_issuer_is_refused,
    an_identity_repository_is_the_only_directory,
    id_tokens_from_a_jwks_file,
    id_tokens_from_a_jwks_url,
    api_tokens_still_work_beside_oidc,
    rs256_tokens_as_most_issuers_sign,
);
