//! The console (issue 19) in a real browser: Debian's headless Chromium over WebDriver
//! (chromedriver) against the real `countersign serve` (SQLite, 127.0.0.1:0), a person
//! signing in through a real OpenID Connect provider (the npm `oidc-provider`, run by node
//! from tests/console/oidc-provider.mjs) and every page checked with axe-core (npm).
//!
//! The scenario is the issue's acceptance: an owner signs in with SSO, sees the proposal
//! waiting for them among their next actions, opens it, has a stale approval refused after
//! the head moved under the open page, approves the current head and sees the state change
//! and the log entry; an auditor signed in with a token sees no buttons and a forged POST
//! with their session is refused 403. Every console page visited must have no serious or
//! critical axe-core violation and no SEVERE entry in the browser's console (errors, failed
//! loads, Content-Security-Policy violations). Each page is photographed (laptop width,
//! light; home at phone width; the proposal in dark): into docs/console/ when
//! `COUNTERSIGN_SCREENSHOTS=docs` (to refresh the README's pictures), else under the target
//! directory.
//!
//! Without chromium, chromedriver, node or the npm packages the test is skipped with the
//! reason printed, except under CI=true, where it fails (.ci/run installs them).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};

use browser::{Browser, LAPTOP, OidcProvider, PHONE, Reaped, Tools};
use common::*;
use countersign_repo::RepoWriter;
use fantoccini::Locator;
use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/shop";
const CLIENT_ID: &str = "countersign-console";
const CLIENT_SECRET: &str = "console-test-secret";

/// `payments` is high criticality (one owner approves) with a suite the trusted runner `ci`
/// attests, so a proposal first awaits its evidence. alice and bob own it; carol is the
/// auditor. People carry the email the OIDC provider asserts for them.
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-shop
spec:
  type: team
  children: []
  members: [alice, bob]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  profile:
    email: alice@example.com
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  profile:
    email: bob@example.com
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: carol
spec:
  profile:
    email: carol@example.com
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /payments/**
    countersign.dev/suites: payments-unit
spec:
  type: service
  lifecycle: production
  owner: team-shop
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
"#;

const JUNIT_PASS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="payments" tests="2">
  <testcase classname="payments" name="captures" time="0.01"/>
  <testcase classname="payments" name="retries" time="0.02"/>
</testsuite></testsuites>
"#;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The governed repository, the runner's key and what the test needs to move heads.
struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    writer: std::cell::RefCell<RepoWriter>,
    ci_key: PathBuf,
    database: String,
}

impl Fixture {
    fn new() -> (Fixture, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let (ci_key, public) = keygen("ci", &dir.path().join("keys"));
        let config = format!(
            "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"payments-unit\"]\n\n[suites.payments-unit]\ncommand = [\"true\"]\n\n[schedules.nightly]\ncron = \"0 3 * * *\"\nbranch = \"main\"\nsuites = [\"payments-unit\"]\n"
        );
        let mut writer = RepoWriter::init(&repo).unwrap();
        let base = writer
            .commit(
                [
                    ("countersign.toml", Some(config.as_str())),
                    ("catalog-info.yaml", Some(CATALOG)),
                    ("payments/capture.rs", Some("pub fn capture() {}\n")),
                    ("docs/index.md", Some("# Shop\n")),
                ],
                "base",
                ALICE,
                TIME,
            )
            .unwrap();
        let database = format!("sqlite://{}?mode=rwc", dir.path().join("cs.db").display());
        (
            Fixture {
                ci_key,
                database,
                repo,
                writer: std::cell::RefCell::new(writer),
                dir,
            },
            base.as_str().to_owned(),
        )
    }

    /// A commit by the agent on `branch` off `parent` changing `file`.
    fn agent_commit(&self, branch: &str, parent: &str, file: &str, text: &str, at: i64) -> String {
        self.writer
            .borrow_mut()
            .commit_on(
                &format!("refs/heads/{branch}"),
                &countersign_repo::CommitId::from_hex(parent).unwrap(),
                [(file, Some(text))],
                &format!("{branch}: change"),
                "fixbot <fixbot@agents.example.com>",
                at,
            )
            .unwrap()
            .as_str()
            .to_owned()
    }

    /// A token made with `countersign token create` on the server's database.
    fn token(&self, principal: &str, role: &str) -> String {
        ok(countersign(&[
            "token",
            "create",
            "--principal",
            principal,
            "--role",
            role,
            "--database",
            &self.database,
        ]))
        .trim()
        .to_owned()
    }

    /// What the trusted runner signed about `commit`: a passing `payments-unit`.
    fn attest(&self, commit: &str) -> PathBuf {
        let junit = self.dir.path().join(format!("{commit}.xml"));
        std::fs::write(&junit, JUNIT_PASS).unwrap();
        let envelope = self.dir.path().join(format!("{commit}.dsse.json"));
        ok(countersign(&[
            "attest",
            "--repo",
            s(&self.repo),
            "--repository",
            REPOSITORY,
            "--key",
            s(&self.ci_key),
            "--commit",
            commit,
            "--suite",
            "payments-unit",
            "--junit",
            s(&junit),
            "--out",
            s(&envelope),
        ]));
        envelope
    }
}

/// `countersign serve` with the console's OIDC client, on a free port; its URL.
fn serve(fixture: &Fixture, issuer: &str) -> (Reaped, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &fixture.database,
            "--repo",
            &format!("shop={}", s(&fixture.repo)),
            "--oidc-issuer",
            issuer,
            "--oidc-audience",
            CLIENT_ID,
            "--oidc-client-secret",
            CLIENT_SECRET,
        ])
        .current_dir(fixture.dir.path())
        .env_remove("COUNTERSIGN_DATABASE")
        .env_remove("COUNTERSIGN_OIDC_CLIENT_ID")
        .env_remove("COUNTERSIGN_OIDC_CLIENT_SECRET")
        .env_remove("COUNTERSIGN_PUBLIC_URL")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Reaped(child);
    let url = browser::wait_for_line(stderr, "serve", |line| {
        line.strip_prefix("countersign serving on ")
            .map(str::to_owned)
    });
    (child, url)
}

/// Where the screenshots go: docs/console/ when asked to refresh them, else the target's
/// temporary directory (so an ordinary test run leaves the tree clean).
fn screenshot_dir() -> PathBuf {
    if std::env::var("COUNTERSIGN_SCREENSHOTS").as_deref() == Ok("docs") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    }
}

/// What the pages visited did wrong: every axe-core violation and console error, reported
/// together at the end so one run shows them all.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    /// Checks the page the browser shows (accessibility, console errors) and photographs it
    /// as `name`.png.
    async fn page(&mut self, browser: &Browser, axe: &str, name: &str) {
        let url = browser.client.current_url().await.unwrap();
        for violation in browser.axe(axe).await {
            self.0.push(format!("{name} ({url}): axe {violation}"));
        }
        for error in browser.console_errors().await {
            self.0.push(format!("{name} ({url}): console: {error}"));
        }
        browser
            .screenshot(&screenshot_dir().join(format!("{name}.png")))
            .await;
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "the console's pages have {} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

async fn text(browser: &Browser, testid: &str) -> String {
    match browser
        .client
        .find(Locator::Css(&format!("[data-testid={testid}]")))
        .await
    {
        Ok(element) => element.text().await.unwrap(),
        Err(e) => panic!(
            "no [data-testid={testid}] at {}: {e}\n{}",
            browser.client.current_url().await.unwrap(),
            body(browser).await
        ),
    }
}

async fn count(browser: &Browser, testid: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .unwrap()
        .len()
}

/// Clicks what navigates (a link, a submit button) and waits until the next document has
/// loaded: a marker set on the old document's window is gone and the new one is complete.
async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .execute("window.__beforeClick = true; return true;", vec![])
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let loaded = browser
            .client
            .execute(
                "return window.__beforeClick === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await;
        if matches!(loaded, Ok(Value::Bool(true))) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "clicking {css} loaded no new page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn fill(browser: &Browser, css: &str, value: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .send_keys(value)
        .await
        .unwrap();
}

/// The page's text, for failure messages.
async fn body(browser: &Browser) -> String {
    match browser.client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(e) => format!("(no body: {e})"),
    }
}

async fn path(browser: &Browser) -> String {
    browser
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .to_owned()
}

/// The proposal `id` as the API reports it (to the admin).
async fn api_proposal(url: &str, token: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/v1/proposals/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_approves_through_sso_and_an_auditor_cannot() {
    let Some(tools) = Tools::or_skip() else {
        return;
    };
    let axe = tools.axe_source();
    let (fixture, base) = Fixture::new();
    let head1 = fixture.agent_commit(
        "payments",
        &base,
        "payments/capture.rs",
        "pub fn capture() { retry(); }\n",
        TIME + 60,
    );
    let docs = fixture.agent_commit("docs", &base, "docs/index.md", "# The shop\n", TIME + 90);
    let other = fixture.agent_commit(
        "refunds",
        &base,
        "payments/refund.rs",
        "pub fn refund() {}\n",
        TIME + 100,
    );

    let mut provider = OidcProvider::start(&tools);
    let (_serve, url) = serve(&fixture, &provider.issuer);
    provider.configure(
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("{url}/signin/oidc/callback"),
        &[
            ("alice", "alice@example.com"),
            ("carol", "carol@example.com"),
        ],
    );
    let fixbot = fixture.token("agent:fixbot", "proposer");
    let relay = fixture.token("agent:fixbot", "runner");
    let admin = fixture.token("human:root", "admin");
    let auditor = fixture.token("human:carol", "auditor");

    // The agent proposes; the trusted runner's evidence makes it wait for an owner.
    let run = |token: &str, args: &[&str]| client(&url, Some(token), args);
    let proposed = json(&run(
        &fixbot,
        &[
            "propose",
            "--repo",
            "shop",
            "--base",
            "main",
            "--head",
            "payments",
            "--title",
            "payments: retry captures",
            "--format",
            "json",
        ],
    ));
    let id = proposed["id"].as_str().unwrap().to_owned();
    ok(run(
        &relay,
        &["evidence", "push", &id, s(&fixture.attest(&head1))],
    ));
    // A second one waiting (the auditor's forged approval aims at it) and an automatic one.
    let waiting = json(&run(
        &fixbot,
        &[
            "propose",
            "--repo",
            "shop",
            "--base",
            "main",
            "--head",
            "refunds",
            "--title",
            "payments: refunds",
            "--format",
            "json",
        ],
    ))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(run(
        &relay,
        &["evidence", "push", &waiting, s(&fixture.attest(&other))],
    ));
    let automatic = json(&run(
        &fixbot,
        &[
            "propose",
            "--repo",
            "shop",
            "--base",
            "main",
            "--head",
            "docs",
            "--title",
            "docs: name the shop",
            "--format",
            "json",
        ],
    ));
    assert_eq!(automatic["head"], docs.as_str(), "{automatic:#}");
    assert_eq!(
        api_proposal(&url, &admin, &id).await["state"],
        "awaiting_approval"
    );

    let browser = Browser::start(&tools).await;
    let mut findings = Findings::default();

    // Signing in: the page offers SSO; the provider's own forms are not the console's, so
    // its console entries (a web font it cannot fetch here) are drained, not judged.
    browser.client.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(
        path(&browser).await,
        "/signin",
        "home asks to sign in first"
    );
    findings.page(&browser, &axe, "signin").await;
    click(&browser, "[data-testid=signin-oidc]").await;
    fill(&browser, "input[name=login]", "alice").await;
    fill(&browser, "input[name=password]", "any password").await;
    click(&browser, "button[type=submit]").await;
    // The consent form.
    click(&browser, "button[type=submit]").await;
    browser.console_entries().await;
    assert_eq!(path(&browser).await, "/", "{}", body(&browser).await);
    assert!(
        text(&browser, "signed-in-as").await.contains("alice"),
        "{}",
        text(&browser, "signed-in-as").await
    );

    // Home: the proposal waits for alice.
    let actions = text(&browser, "next-actions").await;
    assert!(count(&browser, "next-action").await >= 1, "{actions}");
    assert!(actions.contains("payments: retry captures"), "{actions}");
    for kpi in ["kpi-runs", "kpi-coverage", "kpi-active", "kpi-findings"] {
        assert!(!text(&browser, kpi).await.is_empty(), "{kpi} is empty");
    }
    findings.page(&browser, &axe, "home").await;
    browser.viewport(PHONE).await;
    browser.client.refresh().await.unwrap();
    findings.page(&browser, &axe, "home-phone").await;
    browser.viewport(LAPTOP).await;

    // The proposal, from its next action.
    click(
        &browser,
        &format!("[data-testid=next-action] a[href$='/proposals/{id}']"),
    )
    .await;
    assert_eq!(path(&browser).await, format!("/proposals/{id}"));
    assert_eq!(text(&browser, "proposal-state").await, "awaiting_approval");
    assert!(!text(&browser, "proposal-tier").await.is_empty());
    assert_eq!(count(&browser, "approve-button").await, 1);
    assert_eq!(count(&browser, "reject-button").await, 1);
    findings.page(&browser, &axe, "proposal").await;
    browser.color_scheme(true).await;
    browser.client.refresh().await.unwrap();
    findings.page(&browser, &axe, "proposal-dark").await;
    browser.color_scheme(false).await;
    browser.client.refresh().await.unwrap();

    // The agent moves the head while alice reads: her form names the old head and is
    // refused with a message that says so, and nothing is counted.
    let head2 = fixture.agent_commit(
        "payments",
        &head1,
        "payments/capture.rs",
        "pub fn capture() { retry(3); }\n",
        TIME + 120,
    );
    ok(run(&fixbot, &["update", &id, "--head", "payments"]));
    ok(run(
        &relay,
        &["evidence", "push", &id, s(&fixture.attest(&head2))],
    ));
    fill(&browser, "#approve-comment", "looks right").await;
    click(&browser, "[data-testid=approve-button]").await;
    let flash = text(&browser, "flash").await;
    assert!(
        flash.contains("head") && (flash.contains(&head2[..12]) || flash.contains("moved")),
        "the stale approval's message: {flash}"
    );
    // The refusal redirects back to the proposal (Post/Redirect/Get): the browser is on the
    // proposal's page again, which loaded like any other, so nothing is logged.
    assert_eq!(
        browser.client.current_url().await.unwrap().path(),
        format!("/proposals/{id}")
    );
    let logged = browser.console_errors().await;
    assert!(logged.is_empty(), "{logged:?}");
    let stale = api_proposal(&url, &admin, &id).await;
    assert_eq!(stale["state"], "awaiting_approval", "{stale:#}");
    assert_eq!(stale["approvals_counted"], 0, "{stale:#}");
    findings.page(&browser, &axe, "proposal-stale").await;

    // At the current head the approval counts: the state changes and the log shows it.
    browser
        .client
        .goto(&format!("{url}/proposals/{id}"))
        .await
        .unwrap();
    let entries_before = count(&browser, "log-entry").await;
    fill(&browser, "#approve-comment", "retry bound checked").await;
    click(&browser, "[data-testid=approve-button]").await;
    assert_eq!(path(&browser).await, format!("/proposals/{id}"));
    assert_eq!(text(&browser, "proposal-state").await, "authorized");
    assert!(count(&browser, "log-entry").await > entries_before);
    let log = text(&browser, "log-entries").await;
    assert!(
        log.contains("approved") && log.contains("human:alice"),
        "{log}"
    );
    findings.page(&browser, &axe, "proposal-approved").await;
    let approved = api_proposal(&url, &admin, &id).await;
    assert_eq!(approved["state"], "authorized", "{approved:#}");
    assert_eq!(approved["approvals"][0]["approver"], "human:alice");

    // The other pages, as alice.
    for (name, page) in [
        ("proposals", "/proposals"),
        ("runs", "/runs"),
        ("findings", "/findings"),
        ("schedules", "/schedules"),
        ("graph", "/graph"),
        ("audit", "/audit"),
        ("calibration", "/calibration"),
    ] {
        browser.client.goto(&format!("{url}{page}")).await.unwrap();
        assert_eq!(path(&browser).await, page, "{name} redirected");
        findings.page(&browser, &axe, name).await;
    }
    browser.client.goto(&format!("{url}/runs")).await.unwrap();
    if let Ok(link) = browser
        .client
        .find(Locator::Css("main a[href^='/runs/']"))
        .await
    {
        link.click().await.unwrap();
        findings.page(&browser, &axe, "run").await;
    }

    // Sign out, then carol the auditor signs in with her token.
    click(&browser, "[data-testid=signout-button]").await;
    browser.client.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(path(&browser).await, "/signin");
    fill(&browser, "#token", &auditor).await;
    click(&browser, "[data-testid=signin-token]").await;
    assert!(text(&browser, "signed-in-as").await.contains("carol"));
    for target in [&id, &waiting] {
        browser
            .client
            .goto(&format!("{url}/proposals/{target}"))
            .await
            .unwrap();
        assert_eq!(count(&browser, "approve-button").await, 0, "{target}");
        assert_eq!(count(&browser, "reject-button").await, 0, "{target}");
    }
    findings.page(&browser, &axe, "proposal-auditor").await;

    // A forged approval with the auditor's own session and CSRF token: 403, nothing counted.
    let csrf = browser
        .client
        .find(Locator::Css("form input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let cookies = browser
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/proposals/{waiting}/approve"))
        .header("cookie", &cookies)
        .header("origin", &url)
        .form(&[("csrf", csrf.as_str()), ("head", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "{}", forged.text().await.unwrap());
    let after = api_proposal(&url, &admin, &waiting).await;
    assert_eq!(after["state"], "awaiting_approval", "{after:#}");
    assert_eq!(after["approvals"], serde_json::json!([]), "{after:#}");

    browser.close().await;
    findings.assert_none();
}
