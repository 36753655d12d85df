//! The calls the integration makes to GitHub's REST API, and its credentials.
//!
//! As a GitHub App: an RS256 JWT (`iat` a minute in the past against clock drift, `exp`
//! nine minutes ahead, under GitHub's ten; `iss` the App) signed with the App's key buys an
//! installation token (`POST /app/installations/{id}/access_tokens`), cached per
//! installation until five minutes before the `expires_at` GitHub gives it, and dropped at
//! once when GitHub answers 401 with it. With a token: that token. Times come from the
//! caller (the state's clock), so tests move them.
//!
//! Reporting: check runs (`POST /repos/{owner}/{repo}/check-runs`, `PATCH
//! …/check-runs/{id}`) or commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`).
//! What a report says is `checks`'.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::config::{GithubAuth, GithubConfig};

/// The REST API version the integration is written against.
const API_VERSION: &str = "2022-11-28";

/// An installation token is used until this long before GitHub says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The largest answer read from GitHub.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a call to GitHub failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiFailure {
    /// GitHub answered with this status.
    #[error("HTTP {status} from {what}: {detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: {detail}")]
    Other { what: String, detail: String },
}

impl ApiFailure {
    fn status(&self) -> Option<u16> {
        match self {
            ApiFailure::Status { status, .. } => Some(*status),
            ApiFailure::Other { .. } => None,
        }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// GitHub's REST API for one configuration, with its cached installation tokens.
pub(crate) struct Api {
    client: reqwest::Client,
    api_url: String,
    auth: Option<GithubAuth>,
    /// Installation id → token and when to stop using it.
    tokens: Mutex<HashMap<u64, (String, SystemTime)>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Api {
    pub(crate) fn new(config: &GithubConfig) -> Result<Api, String> {
        let client = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            // A redirect would carry the credentials somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Api {
            client,
            api_url: config.api_url.as_str().trim_end_matches('/').to_owned(),
            auth: config.auth.clone(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the server can call GitHub at all.
    pub(crate) fn authenticated(&self) -> bool {
        self.auth.is_some()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.api_url)
    }

    /// The App's JWT, valid from a minute ago (clock drift) for nine minutes.
    fn app_jwt(
        id: &str,
        key: &jsonwebtoken::EncodingKey,
        now: SystemTime,
    ) -> Result<String, ApiFailure> {
        let now = unix(now);
        // The App id as a number, as GitHub documents it; a client id as the string it is.
        let iss = id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n));
        let claims = json!({ "iat": now - 60, "exp": now + 9 * 60, "iss": iss });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            key,
        )
        .map_err(|e| ApiFailure::Other {
            what: "signing the App's JWT".into(),
            detail: e.to_string(),
        })
    }

    /// The installation a report goes through: the configured one, else the delivery's.
    fn installation(&self, from_delivery: Option<u64>) -> Option<u64> {
        match &self.auth {
            Some(GithubAuth::App {
                installation: Some(fixed),
                ..
            }) => Some(*fixed),
            _ => from_delivery,
        }
    }

    /// The token for calls about a repository of `installation` (a delivery's, when the
    /// configuration names none) at time `now`; `None` without authentication.
    pub(crate) async fn token(
        &self,
        installation: Option<u64>,
        now: SystemTime,
    ) -> Result<Option<String>, ApiFailure> {
        match &self.auth {
            None => Ok(None),
            Some(GithubAuth::Token(token)) => Ok(Some(token.text().to_owned())),
            Some(GithubAuth::App { id, key, .. }) => {
                let installation =
                    self.installation(installation)
                        .ok_or_else(|| ApiFailure::Other {
                            what: "authenticating as the App".into(),
                            detail: "no installation: the deliveries name none and the \
                                     configuration sets no [app] installation_id"
                                .into(),
                        })?;
                if let Some((token, until)) = self
                    .tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&installation)
                    && now < *until
                {
                    return Ok(Some(token.clone()));
                }
                let jwt = Api::app_jwt(id, key, now)?;
                let what = format!("POST /app/installations/{installation}/access_tokens");
                let answer = self
                    .send(
                        self.client
                            .post(
                                self.url(&format!(
                                    "app/installations/{installation}/access_tokens"
                                )),
                            )
                            .bearer_auth(jwt),
                        &what,
                    )
                    .await?;
                let token = answer["token"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ApiFailure::Other {
                        what: what.clone(),
                        detail: "the answer has no token".into(),
                    })?
                    .to_owned();
                let expires = answer["expires_at"]
                    .as_str()
                    .and_then(|t| humantime::parse_rfc3339(t).ok())
                    .ok_or_else(|| ApiFailure::Other {
                        what: what.clone(),
                        detail: "the answer has no RFC 3339 expires_at".into(),
                    })?;
                let until = expires.checked_sub(TOKEN_MARGIN).unwrap_or(UNIX_EPOCH);
                self.tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(installation, (token.clone(), until));
                Ok(Some(token))
            }
        }
    }

    /// Forgets the cached token of `installation` (GitHub refused it).
    fn forget(&self, installation: Option<u64>) {
        if let Some(installation) = self.installation(installation) {
            self.tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&installation);
        }
    }

    /// Sends `request` with GitHub's headers; the JSON answer of a 2xx, else why not.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Value, ApiFailure> {
        let sent = request
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .send()
            .await;
        let mut response = sent.map_err(|e| ApiFailure::Other {
            what: what.to_owned(),
            detail: crate::webhooks::transport_error(e),
        })?;
        let status = response.status();
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(ApiFailure::Other {
                        what: what.to_owned(),
                        detail: crate::webhooks::transport_error(e),
                    });
                }
            }
        }
        if !status.is_success() {
            body.truncate(256);
            return Err(ApiFailure::Status {
                what: what.to_owned(),
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&body).trim().to_owned(),
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| ApiFailure::Other {
            what: what.to_owned(),
            detail: format!("the answer is not JSON: {e}"),
        })
    }

    /// `method path` with `body`, authenticated for `installation`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        installation: Option<u64>,
        now: SystemTime,
    ) -> Result<Value, ApiFailure> {
        let what = format!("{method} /{path}");
        let token = self
            .token(installation, now)
            .await?
            .ok_or_else(|| ApiFailure::Other {
                what: what.clone(),
                detail: "no [app] or [token] is configured".into(),
            })?;
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body);
        let answer = self.send(request, &what).await;
        if let Err(failure) = &answer
            && failure.status() == Some(401)
        {
            self.forget(installation);
        }
        answer
    }

    /// Creates a check run on `repository` (`owner/name`); returns its id.
    pub(crate) async fn create_check_run(
        &self,
        repository: &str,
        body: &Value,
        installation: Option<u64>,
        now: SystemTime,
    ) -> Result<u64, ApiFailure> {
        let path = format!("repos/{repository}/check-runs");
        let answer = self
            .call(reqwest::Method::POST, &path, body, installation, now)
            .await?;
        answer["id"].as_u64().ok_or_else(|| ApiFailure::Other {
            what: format!("POST /{path}"),
            detail: "the answer has no check run id".into(),
        })
    }

    /// Updates check run `id` of `repository`.
    pub(crate) async fn update_check_run(
        &self,
        repository: &str,
        id: u64,
        body: &Value,
        installation: Option<u64>,
        now: SystemTime,
    ) -> Result<(), ApiFailure> {
        let path = format!("repos/{repository}/check-runs/{id}");
        self.call(reqwest::Method::PATCH, &path, body, installation, now)
            .await
            .map(|_| ())
    }

    /// Sets the commit status of `sha` on `repository`.
    pub(crate) async fn create_status(
        &self,
        repository: &str,
        sha: &str,
        body: &Value,
        installation: Option<u64>,
        now: SystemTime,
    ) -> Result<(), ApiFailure> {
        let path = format!("repos/{repository}/statuses/{sha}");
        self.call(reqwest::Method::POST, &path, body, installation, now)
            .await
            .map(|_| ())
    }
}
