//! The console (issue 19) in a real browser: headless Chromium over WebDriver against the
//! real `countersign serve`, signing in through a real OpenID Connect provider.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, OidcProvider, Tools};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_smoke() {
    let Some(tools) = Tools::or_skip() else {
        return;
    };
    let mut provider = OidcProvider::start(&tools);
    provider.configure(
        "countersign",
        "secret",
        "http://127.0.0.1:1/signin/oidc/callback",
        &[("alice", "alice@example.com")],
    );
    let browser = Browser::start(&tools).await;
    browser
        .client
        .goto(&format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .await
        .unwrap();
    let v = browser.axe(&tools.axe_source()).await;
    eprintln!("violations: {v:?}");
    eprintln!("errors: {:?}", browser.console_errors().await);
    browser
        .screenshot(std::path::Path::new("/tmp/shot.png"))
        .await;
    browser.close().await;
}
