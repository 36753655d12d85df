//! The console over HTTP, as a browser without JavaScript uses it (reqwest with a cookie
//! jar): sign-in and its cookie, the pages with data, approving through the form (the log
//! names the person), the stale-head refusal, CSRF, the auditor's and the agent's 403s,
//! sign-out ending the session on the server, a session shared by two servers on one
//! database, and the security headers. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Db, NOW, Server, start};
use countersign_policy::Principal;
use countersign_server::{AppState, Clock, Role};
use countersign_store::Store;
use reqwest::{Client, StatusCode, header};

/// A browser: a cookie jar, redirects not followed (each answer is looked at).
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the first `name="NAME" value="…"` input of `html`.
fn input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

async fn get(client: &Client, server: &Server, path: &str) -> (StatusCode, String) {
    let response = client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn post(
    client: &Client,
    server: &Server,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{}{path}", server.base))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs `client` in with the token named `who`; returns the `Set-Cookie` of the session.
async fn sign_in(client: &Client, server: &Server, who: &str) -> String {
    let (status, page) = get(client, server, "/signin").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = input(&page, "csrf").expect("the sign-in form carries a CSRF token");
    let response = post(
        client,
        server,
        "/signin",
        &[
            ("csrf", &csrf),
            ("token", &server.tokens[who]),
            ("next", "/"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{who}");
    assert_eq!(response.headers()[header::LOCATION], "/");
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("countersign_session="))
        .expect("a session cookie")
}

/// A proposal of the shop change by the agent: it waits for one of bob or carol.
async fn waiting(server: &Server) -> (String, String) {
    let (status, proposal) = server.propose("fixbot", &server.repo.shop).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["state"], "awaiting_approval", "{proposal}");
    (
        proposal["id"].as_str().unwrap().to_owned(),
        proposal["head"].as_str().unwrap().to_owned(),
    )
}

async fn state_of(server: &Server, id: &str) -> serde_json::Value {
    let (_, view) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    view
}

async fn sign_in_sets_a_session_cookie_and_the_headers(db: &Db) {
    let server = start(db).await;
    let client = browser();
    // Not signed in: every page sends to the sign-in page, which comes back after.
    let response = client
        .get(format!("{}/proposals", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signin?next=/proposals"
    );
    let response = client
        .get(format!("{}/signin", server.base))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let page = response.text().await.unwrap();
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    assert!(!page.contains("style="), "no inline style: {page}");

    let cookie = sign_in(&client, &server, "bob").await;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http without an https public URL: {cookie}"
    );
    // Only the hash of the secret is stored.
    let secret = cookie
        .trim_start_matches("countersign_session=")
        .split(';')
        .next()
        .unwrap();
    assert!(server.store.session(secret).await.unwrap().is_none());
    assert!(
        server
            .store
            .session(&countersign_server::token_hash(secret))
            .await
            .unwrap()
            .is_some()
    );
    let (status, home) = get(&client, &server, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("data-testid=\"signed-in-as\""), "{home}");
    assert!(home.contains("human:bob (approver)"), "{home}");

    // A wrong token is refused on the page; a form without the sign-in CSRF token, 403.
    let other = browser();
    let (_, page) = get(&other, &server, "/signin").await;
    let csrf = input(&page, "csrf").unwrap();
    let wrong = post(
        &other,
        &server,
        "/signin",
        &[("csrf", &csrf), ("token", "cst_nope")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let forged = post(
        &browser(),
        &server,
        "/signin",
        &[("csrf", &csrf), ("token", &server.tokens["bob"])],
    )
    .await;
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "login CSRF: no cookie"
    );
    // A runner's token does not sign in; an expired one neither.
    for who in ["expired"] {
        let c = browser();
        let (_, page) = get(&c, &server, "/signin").await;
        let csrf = input(&page, "csrf").unwrap();
        let r = post(
            &c,
            &server,
            "/signin",
            &[("csrf", &csrf), ("token", &server.tokens[who])],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{who}");
    }
    server.stop().await;
}

async fn pages_render_and_an_owner_approves_through_the_form(db: &Db) {
    let server = start(db).await;
    let (id, head) = waiting(&server).await;
    let client = browser();
    sign_in(&client, &server, "bob").await;

    let (status, home) = get(&client, &server, "/").await;
    assert_eq!(status, StatusCode::OK, "{home}");
    for testid in [
        "kpi-runs",
        "kpi-coverage",
        "kpi-active",
        "kpi-findings",
        "next-actions",
    ] {
        assert!(
            home.contains(&format!("data-testid=\"{testid}\"")),
            "{testid}: {home}"
        );
    }
    assert!(home.contains("data-testid=\"next-action\""), "{home}");
    assert!(home.contains(&format!("/proposals/{id}")), "{home}");

    let (status, list) = get(
        &client,
        &server,
        "/proposals?state=awaiting_approval&author=agent",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.contains(&id), "{list}");
    let (_, none) = get(&client, &server, "/proposals?author=human").await;
    assert!(!none.contains(&id), "{none}");
    // The team filter reads the owners the decision recorded.
    let (_, team) = get(&client, &server, "/proposals?team=team-shop").await;
    assert!(team.contains(&id), "{team}");
    let (_, other) = get(&client, &server, "/proposals?team=team-nobody").await;
    assert!(!other.contains(&id), "{other}");
    let (status, _) = get(&client, &server, "/proposals?state=bogus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for path in [
        "/runs",
        "/findings",
        "/schedules",
        "/graph",
        "/audit",
        "/calibration",
    ] {
        let (status, page) = get(&client, &server, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(page.contains("<main id=\"main\">"), "{path}");
    }
    let (status, graph) = get(&client, &server, "/graph").await;
    assert_eq!(status, StatusCode::OK);
    assert!(graph.contains("<svg"), "the graph is drawn: {graph}");

    let (status, page) = get(&client, &server, &format!("/proposals/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("data-testid=\"proposal-state\">awaiting_approval<"),
        "{page}"
    );
    assert!(page.contains("data-testid=\"proposal-tier\""), "{page}");
    assert!(page.contains("data-testid=\"approve-button\""), "{page}");
    assert!(page.contains("data-testid=\"reject-button\""), "{page}");
    assert!(page.contains("data-testid=\"log-entries\""), "{page}");
    assert!(page.contains("<svg"), "the blast radius is drawn: {page}");
    assert_eq!(input(&page, "head").as_deref(), Some(head.as_str()));
    // Not authorized yet: the plain reject, nothing about revoking.
    assert!(!page.contains("revoke-note"), "{page}");
    let csrf = input(&page, "csrf").unwrap();

    let response = post(
        &client,
        &server,
        &format!("/proposals/{id}/approve"),
        &[("csrf", &csrf), ("head", &head), ("comment", "looks right")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let view = state_of(&server, &id).await;
    // The change reaches payments (critical): two people must approve.
    assert_eq!(view["approvals_counted"], 1, "{view}");
    assert_eq!(view["approvals_required"], 2, "{view}");
    assert_eq!(view["state"], "awaiting_approval", "{view}");
    let (_, page) = get(&client, &server, &format!("/proposals/{id}?done=approved")).await;
    assert!(page.contains("data-testid=\"flash\""), "{page}");
    // Bob's standing approval: no next action for him any more, and Carol's makes two.
    let (_, home) = get(&client, &server, "/").await;
    assert!(!home.contains(&format!("/proposals/{id}\"")), "{home}");
    let carol = browser();
    sign_in(&carol, &server, "carol").await;
    let (_, page) = get(&carol, &server, &format!("/proposals/{id}")).await;
    let csrf = input(&page, "csrf").unwrap();
    let response = post(
        &carol,
        &server,
        &format!("/proposals/{id}/approve"),
        &[("csrf", &csrf), ("head", &head)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let view = state_of(&server, &id).await;
    assert_eq!(view["state"], "authorized", "{view}");
    let (_, page) = get(&client, &server, &format!("/proposals/{id}?done=approved")).await;
    assert!(page.contains("data-testid=\"flash\""), "{page}");
    assert!(
        page.contains("data-testid=\"proposal-state\">authorized<"),
        "{page}"
    );
    assert!(page.contains("You approved this head"), "{page}");
    // Authorized but not merged: an eligible person's rejection still revokes it, and the
    // form says so.
    assert!(
        page.contains("Reject and revoke the authorization"),
        "{page}"
    );
    assert!(page.contains("data-testid=\"revoke-note\""), "{page}");
    // The log names the person, as the API's approval would.
    let entries = server.store.entries_about(&id).await.unwrap();
    let approved = entries
        .iter()
        .filter_map(|e| e.event().ok())
        .find(|e| serde_json::to_value(e.kind).unwrap() == "approved")
        .expect("an approved event");
    assert_eq!(approved.actor, "human:bob");
    assert_eq!(approved.data["head"], head.as_str(), "{:?}", approved.data);
    assert!(page.contains("by human:bob"), "{page}");
    server.stop().await;
}

async fn a_stale_head_and_a_bad_csrf_token_are_refused(db: &Db) {
    let server = start(db).await;
    let (id, head) = waiting(&server).await;
    let client = browser();
    sign_in(&client, &server, "carol").await;
    let (_, page) = get(&client, &server, &format!("/proposals/{id}")).await;
    let csrf = input(&page, "csrf").unwrap();
    let path = format!("/proposals/{id}/approve");

    // The page was loaded at another head: refused, with the reason, nothing recorded.
    let stale = post(
        &client,
        &server,
        &path,
        &[("csrf", &csrf), ("head", &server.repo.docs)],
    )
    .await;
    // Post/Redirect/Get: back to the proposal, which says why (a reload resends nothing).
    assert_eq!(stale.status(), StatusCode::SEE_OTHER);
    let location = stale.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let judged = &server.repo.docs[..12];
    assert_eq!(
        location,
        format!("/proposals/{id}?refused=head-moved&judged={judged}")
    );
    let (status, text) = get(&client, &server, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("data-testid=\"flash\""), "{text}");
    assert!(
        text.contains(&format!(
            "The head moved since this page was loaded: you judged {judged}, but it is now at {}.",
            &head[..12]
        )),
        "{text}"
    );
    // The query is not an echo: only a hex commit id is shown, and only as a commit id.
    let (_, text) = get(
        &client,
        &server,
        &format!("/proposals/{id}?refused=head-moved&judged=%3Cscript%3E"),
    )
    .await;
    assert!(!text.contains("<script>"), "{text}");
    assert!(text.contains("it is now at"), "{text}");

    for (form, why) in [
        (vec![("head", head.as_str())], "no CSRF token"),
        (
            vec![("csrf", "0".repeat(64).as_str()), ("head", head.as_str())],
            "a wrong one",
        ),
        (vec![("csrf", ""), ("head", head.as_str())], "an empty one"),
    ] {
        let response = post(&client, &server, &path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{why}");
    }
    // Another session's token does not do either.
    let other = browser();
    sign_in(&other, &server, "bob").await;
    let (_, page) = get(&other, &server, &format!("/proposals/{id}")).await;
    let bobs = input(&page, "csrf").unwrap();
    assert_ne!(bobs, csrf);
    let crossed = post(&client, &server, &path, &[("csrf", &bobs), ("head", &head)]).await;
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);
    // No session at all: 403 too.
    let anonymous = post(
        &browser(),
        &server,
        &path,
        &[("csrf", &csrf), ("head", &head)],
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    assert_eq!(state_of(&server, &id).await["state"], "awaiting_approval");
    assert!(
        state_of(&server, &id).await["approvals"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

async fn auditors_and_agents_cannot_approve(db: &Db) {
    let server = start(db).await;
    let (id, head) = waiting(&server).await;
    let path = format!("/proposals/{id}/approve");
    // The auditor reads everything, sees no button, and a forged POST is 403.
    let auditor = browser();
    sign_in(&auditor, &server, "auditor").await;
    let (status, page) = get(&auditor, &server, &format!("/proposals/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("approve-button"), "{page}");
    assert!(!page.contains("reject-button"), "{page}");
    let csrf = input(&page, "csrf").unwrap();
    for route in [
        path.clone(),
        format!("/proposals/{id}/reject"),
        "/audit/verify".to_owned(),
    ] {
        let forged = post(
            &auditor,
            &server,
            &route,
            &[("csrf", &csrf), ("head", &head), ("comment", "x")],
        )
        .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{route}");
    }
    // The agent (a proposer) and the author with her proposer token: the API's refusal.
    for who in ["fixbot", "alice-proposer", "agent-approver"] {
        let client = browser();
        sign_in(&client, &server, who).await;
        let (_, page) = get(&client, &server, &format!("/proposals/{id}")).await;
        assert!(!page.contains("approve-button"), "{who}: {page}");
        let csrf = input(&page, "csrf").unwrap();
        let response = post(&client, &server, &path, &[("csrf", &csrf), ("head", &head)]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{who}");
    }
    // Dave is an approver but owns nothing here: the lifecycle refuses him.
    let dave = browser();
    sign_in(&dave, &server, "dave").await;
    let (_, page) = get(&dave, &server, &format!("/proposals/{id}")).await;
    assert!(!page.contains("approve-button"), "{page}");
    let csrf = input(&page, "csrf").unwrap();
    let response = post(&dave, &server, &path, &[("csrf", &csrf), ("head", &head)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let view = state_of(&server, &id).await;
    assert_eq!(view["state"], "awaiting_approval", "{view}");
    assert!(view["approvals"].as_array().unwrap().is_empty(), "{view}");
    server.stop().await;
}

async fn sign_out_ends_the_session_on_the_server(db: &Db) {
    let server = start(db).await;
    let client = browser();
    let cookie = sign_in(&client, &server, "bob").await;
    let (_, home) = get(&client, &server, "/").await;
    let csrf = input(&home, "csrf").unwrap();
    let secret = cookie
        .trim_start_matches("countersign_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Without the CSRF token, sign-out is refused.
    let refused = post(&client, &server, "/signout", &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let out = post(&client, &server, "/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        server
            .store
            .session(&countersign_server::token_hash(&secret))
            .await
            .unwrap()
            .is_none()
    );
    // The old cookie, replayed by someone who kept it, opens nothing.
    let replay = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = replay
        .get(format!("{}/", server.base))
        .header(header::COOKIE, format!("countersign_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // Revoking the token a session signed in with ends the session too.
    let client = browser();
    sign_in(&client, &server, "carol").await;
    let tokens = server.store.tokens().await.unwrap();
    let carol = tokens
        .iter()
        .find(|t| t.principal == "human:carol")
        .unwrap();
    server.store.revoke_token(&carol.id).await.unwrap();
    let (status, _) = get(&client, &server, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    server.stop().await;
}

async fn a_session_is_shared_by_two_servers_on_one_database(db: &Db) {
    let server = start(db).await;
    let (id, head) = waiting(&server).await;
    let client = browser();
    sign_in(&client, &server, "bob").await;
    // A second replica: another process's store on the same database.
    let store = Store::connect(db.url()).await.unwrap();
    let repos = BTreeMap::from([("shop".to_owned(), server.repo.path.clone())]);
    let state = AppState::new(store.clone(), repos, Clock::fixed(NOW)).with_schedule_tick(None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    let (_, page) = get(&client, &server, &format!("/proposals/{id}")).await;
    let csrf = input(&page, "csrf").unwrap();
    // The cookie jar is per host and port: a session signed in on the first server, its
    // cookie carried to the second by hand.
    let secret = sign_in(&browser(), &server, "bob")
        .await
        .trim_start_matches("countersign_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let replica = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = replica
        .get(format!("{other}/proposals/{id}"))
        .header(header::COOKIE, format!("countersign_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("human:bob (approver)"), "{page}");
    let csrf2 = input(&page, "csrf").unwrap();
    assert_ne!(csrf, csrf2, "each session its own CSRF token");
    // The approval through the replica is the same approval.
    let response = replica
        .post(format!("{other}/proposals/{id}/approve"))
        .header(header::COOKIE, format!("countersign_session={secret}"))
        .form(&[("csrf", csrf2.as_str()), ("head", head.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let view = state_of(&server, &id).await;
    assert_eq!(view["approvals_counted"], 1, "{view}");
    assert_eq!(view["approvals"][0]["approver"], "human:bob", "{view}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    store.close().await;
    server.stop().await;
}

async fn a_sign_in_link_works_once(db: &Db) {
    let server = start(db).await;
    let principal: Principal = "human:bob".parse().unwrap();
    let link = countersign_server::console::create_sign_in_link(
        &server.store,
        &principal,
        Role::Approver,
        NOW as i64 + 600,
        [7u8; 32],
    )
    .await
    .unwrap();
    assert!(link.starts_with("/signin/link?token="), "{link}");
    let client = browser();
    let response = client
        .get(format!("{}{link}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
    let (status, home) = get(&client, &server, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("human:bob (approver)"), "{home}");
    // Used: the second visit is refused.
    let again = browser()
        .get(format!("{}{link}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // Expired: refused too.
    let expired = countersign_server::console::create_sign_in_link(
        &server.store,
        &principal,
        Role::Approver,
        NOW as i64 - 1,
        [8u8; 32],
    )
    .await
    .unwrap();
    let response = browser()
        .get(format!("{}{expired}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

async fn the_api_is_untouched_and_assets_are_served(db: &Db) {
    let server = start(db).await;
    // The JSON API still answers problem+json for what it does not know.
    let (status, problem) = server
        .send(reqwest::Method::GET, "/v1/nothing", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let openapi = countersign_server::openapi();
    assert!(
        openapi.paths.paths.keys().all(|p| p.starts_with("/v1/")),
        "the console stays out of the OpenAPI document"
    );
    let client = browser();
    let (_, page) = get(&client, &server, "/signin").await;
    let css = page
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/console/assets/console.css?v="))
        .map(|s| s.split('"').next().unwrap().to_owned())
        .expect("a versioned stylesheet");
    assert_eq!(css.len(), 16);
    let response = client
        .get(format!(
            "{}/console/assets/console.css?v={css}",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let response = client
        .get(format!("{}/console/assets/console.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = get(&client, &server, "/console/assets/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The event stream wants a session.
    let (status, _) = get(&client, &server, "/console/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

/// Signs a checkpoint of the log as it is now (`GET /v1/log/checkpoint`).
async fn sign_checkpoint(server: &Server) {
    let response = server
        .client
        .get(format!("{}/v1/log/checkpoint", server.base))
        .bearer_auth(&server.tokens["auditor"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Runs `sql` on the server's database behind its back (what an attacker with the
/// database's credentials can do).
async fn tamper(db: &Db, sql: &str) {
    if db.url().starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn an_admins_log_check_is_recorded_and_shown_to_auditors(db: &Db) {
    let server = common::start_with(db, |s| s.with_log_signer(common::log_signer())).await;
    let auditor = browser();
    sign_in(&auditor, &server, "auditor").await;
    let (_, page) = get(&auditor, &server, "/audit").await;
    assert!(page.contains("never: an admin"), "{page}");
    assert!(!page.contains("verify-button"), "{page}");

    let admin = browser();
    sign_in(&admin, &server, "admin").await;
    let verify = async |expect: &str| {
        let (_, page) = get(&admin, &server, "/audit").await;
        let csrf = input(&page, "csrf").unwrap();
        let response = post(&admin, &server, "/audit/verify", &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.unwrap();
        assert!(page.contains(expect), "{expect}: {page}");
    };
    waiting(&server).await;
    sign_checkpoint(&server).await;
    verify("The log verifies").await;
    let (_, page) = get(&auditor, &server, "/audit").await;
    assert!(page.contains("data-testid=\"last-check\""), "{page}");
    assert!(page.contains("passed"), "{page}");
    assert!(page.contains("by human:root"), "{page}");
    assert!(page.contains("the first check"), "{page}");

    // The log grows and is checkpointed again: the next check compares the two checkpoints.
    let (status, docs) = server.propose("fixbot", &server.repo.docs).await;
    assert!(status.is_success(), "{docs}");
    sign_checkpoint(&server).await;
    verify("which extends the one of size").await;

    // Someone restores an older database: the newest checkpoint is gone, the log is back at
    // the previous size. The check says rollback, the auditor sees it failed.
    let size = server
        .store
        .latest_checkpoint()
        .await
        .unwrap()
        .unwrap()
        .size;
    tamper(db, &format!("DELETE FROM checkpoints WHERE size = {size}")).await;
    verify("The log does NOT verify: rollback").await;
    let (_, page) = get(&auditor, &server, "/audit").await;
    assert!(page.contains("FAILED"), "{page}");
    assert!(page.contains("rollback"), "{page}");
    // It keeps failing: the next check still compares with the last check that passed.
    verify("rollback").await;
    let checks = server.store.last_log_check(true).await.unwrap().unwrap();
    assert_eq!(checks.size, Some(size));
    let last = server.store.last_log_check(false).await.unwrap().unwrap();
    assert!(!last.ok);
    server.stop().await;
}

on_both_backends!(
    sign_in_sets_a_session_cookie_and_the_headers,
    pages_render_and_an_owner_approves_through_the_form,
    a_stale_head_and_a_bad_csrf_token_are_refused,
    auditors_and_agents_cannot_approve,
    sign_out_ends_the_session_on_the_server,
    a_session_is_shared_by_two_servers_on_one_database,
    a_sign_in_link_works_once,
    the_api_is_untouched_and_assets_are_served,
    an_admins_log_check_is_recorded_and_shown_to_auditors,
);
