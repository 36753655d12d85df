//! The embedded demo: the Acme Shop monorepo and the changes `countersign demo` proposes on it.
//!
//! This module owns the demo's data and nothing else: [`BASE`], every file of the base commit
//! (embedded at build time from the crate's `demo/` directory, whose `README.md` describes the
//! company), and [`CHANGES`], each a small edit applied on top of the base commit on its own,
//! with the tier PRODUCT.md's table leads one to expect. It does no I/O: writing the files,
//! committing them and deriving the decisions belong to the caller, and the expected tiers are
//! a reader's expectation, never an input to a decision.
//!
//! Adding a file to `demo/` means adding a line to [`BASE`]; a test fails until one does.

/// One file of the demo repository at the base commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoFile {
    /// Repository-relative, `/`-separated.
    pub path: &'static str,
    pub contents: &'static str,
}

/// One edit of a change. A `Write` of a path the base lacks creates the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The file's full new contents.
    Write {
        path: &'static str,
        contents: &'static str,
    },
    Delete {
        path: &'static str,
    },
    /// Moves a file unchanged; countersign counts both paths as changed.
    Rename {
        from: &'static str,
        to: &'static str,
    },
}

/// A change proposed on top of the base commit (changes are independent, not stacked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoChange {
    /// Short slug, unique, usable as a branch name.
    pub id: &'static str,
    /// The commit's subject line.
    pub title: &'static str,
    /// `human:NAME` or `agent:NAME`.
    pub author: &'static str,
    /// A tier the author claims. countersign records it and ignores it.
    pub declared_tier: Option<&'static str>,
    pub edits: &'static [Edit],
    /// The tier PRODUCT.md's table gives, assuming full validation evidence.
    pub expect: &'static str,
}

/// Embeds one file of `demo/` under its repository path.
macro_rules! demo_file {
    ($path:literal) => {
        DemoFile {
            path: $path,
            contents: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/", $path)),
        }
    };
}

/// Every file of the demo repository at the base commit, sorted by path.
pub const BASE: &[DemoFile] = &[
    demo_file!(".github/CODEOWNERS"),
    demo_file!(".github/dependabot.yml"),
    demo_file!(".github/workflows/ci.yml"),
    demo_file!(".github/workflows/deploy.yml"),
    demo_file!(".gitignore"),
    demo_file!("Cargo.lock"),
    demo_file!("Cargo.toml"),
    demo_file!("README.md"),
    demo_file!("apps/account-web/catalog-info.yaml"),
    demo_file!("apps/account-web/package.json"),
    demo_file!("apps/account-web/src/pages/sign-in.tsx"),
    demo_file!("apps/dashboards/catalog-info.yaml"),
    demo_file!("apps/dashboards/dashboards/daily-revenue.json"),
    demo_file!("apps/dashboards/dashboards/legacy-conversion.json"),
    demo_file!("apps/dashboards/package.json"),
    demo_file!("apps/dashboards/validate.mjs"),
    demo_file!("apps/storefront-web/catalog-info.yaml"),
    demo_file!("apps/storefront-web/package.json"),
    demo_file!("apps/storefront-web/src/pages/checkout.tsx"),
    demo_file!("apps/storefront-web/src/pages/index.tsx"),
    demo_file!("catalog-info.yaml"),
    demo_file!("ci/build.sh"),
    demo_file!("ci/catalog-info.yaml"),
    demo_file!("ci/deploy.sh"),
    demo_file!("countersign.toml"),
    demo_file!("data/dbt/catalog-info.yaml"),
    demo_file!("data/dbt/dbt_project.yml"),
    demo_file!("data/dbt/models/daily_revenue.sql"),
    demo_file!("docs/catalog-info.yaml"),
    demo_file!("docs/guides/deploying.md"),
    demo_file!("docs/guides/getting-started.md"),
    demo_file!("docs/runbooks/payments-incident.md"),
    demo_file!("infra/catalog-info.yaml"),
    demo_file!("infra/kafka/order-events.yaml"),
    demo_file!("infra/redis/cart-cache.conf"),
    demo_file!("infra/redis/session-cache.conf"),
    demo_file!("infra/s3/exports-bucket.tf"),
    demo_file!("infra/s3/invoices-bucket.tf"),
    demo_file!("infra/s3/product-images.tf"),
    demo_file!("infra/warehouse/dataset.tf"),
    demo_file!("jobs/analytics-etl/catalog-info.yaml"),
    demo_file!("jobs/analytics-etl/etl/load_orders.py"),
    demo_file!("jobs/analytics-etl/pyproject.toml"),
    demo_file!("jobs/data-export/catalog-info.yaml"),
    demo_file!("jobs/data-export/export/subject_access.py"),
    demo_file!("jobs/data-export/pyproject.toml"),
    demo_file!("jobs/invoice/Cargo.toml"),
    demo_file!("jobs/invoice/README.md"),
    demo_file!("jobs/invoice/catalog-info.yaml"),
    demo_file!("jobs/invoice/src/main.rs"),
    demo_file!("jobs/payout-reconciler/Cargo.toml"),
    demo_file!("jobs/payout-reconciler/README.md"),
    demo_file!("jobs/payout-reconciler/catalog-info.yaml"),
    demo_file!("jobs/payout-reconciler/src/main.rs"),
    demo_file!("libs/acme-config/Cargo.toml"),
    demo_file!("libs/acme-config/README.md"),
    demo_file!("libs/acme-config/src/lib.rs"),
    demo_file!("libs/acme-kafka/Cargo.toml"),
    demo_file!("libs/acme-kafka/README.md"),
    demo_file!("libs/acme-kafka/src/lib.rs"),
    demo_file!("libs/acme-money/Cargo.toml"),
    demo_file!("libs/acme-money/README.md"),
    demo_file!("libs/acme-money/src/lib.rs"),
    demo_file!("libs/acme-telemetry/Cargo.toml"),
    demo_file!("libs/acme-telemetry/README.md"),
    demo_file!("libs/acme-telemetry/src/lib.rs"),
    demo_file!("mkdocs.yml"),
    demo_file!("org/org.yaml"),
    demo_file!("org/teams.yaml"),
    demo_file!("org/users.yaml"),
    demo_file!("package.json"),
    demo_file!("packages/design-system/package.json"),
    demo_file!("packages/design-system/src/button.tsx"),
    demo_file!("packages/design-system/src/index.ts"),
    demo_file!("scripts/oneoff-backfill.sh"),
    demo_file!("services/api-gateway/Cargo.toml"),
    demo_file!("services/api-gateway/README.md"),
    demo_file!("services/api-gateway/catalog-info.yaml"),
    demo_file!("services/api-gateway/src/main.rs"),
    demo_file!("services/auth/Cargo.toml"),
    demo_file!("services/auth/README.md"),
    demo_file!("services/auth/api/openapi.yaml"),
    demo_file!("services/auth/catalog-info.yaml"),
    demo_file!("services/auth/migrations/0001_create_accounts.sql"),
    demo_file!("services/auth/src/main.rs"),
    demo_file!("services/auth/src/token.rs"),
    demo_file!("services/auth/tests/token_expiry.rs"),
    demo_file!("services/cart/Cargo.toml"),
    demo_file!("services/cart/README.md"),
    demo_file!("services/cart/api/openapi.yaml"),
    demo_file!("services/cart/catalog-info.yaml"),
    demo_file!("services/cart/src/main.rs"),
    demo_file!("services/checkout/Cargo.toml"),
    demo_file!("services/checkout/README.md"),
    demo_file!("services/checkout/api/openapi.yaml"),
    demo_file!("services/checkout/catalog-info.yaml"),
    demo_file!("services/checkout/migrations/0001_create_orders.sql"),
    demo_file!("services/checkout/migrations/0002_create_order_lines.sql"),
    demo_file!("services/checkout/src/main.rs"),
    demo_file!("services/checkout/src/order.rs"),
    demo_file!("services/checkout/tests/migrations.sh"),
    demo_file!("services/checkout/tests/order_total.rs"),
    demo_file!("services/consent/Cargo.toml"),
    demo_file!("services/consent/README.md"),
    demo_file!("services/consent/catalog-info.yaml"),
    demo_file!("services/consent/src/main.rs"),
    demo_file!("services/experiments/catalog-info.yaml"),
    demo_file!("services/experiments/experiments/assign.py"),
    demo_file!("services/experiments/openapi.yaml"),
    demo_file!("services/experiments/pyproject.toml"),
    demo_file!("services/feature-flags/Cargo.toml"),
    demo_file!("services/feature-flags/README.md"),
    demo_file!("services/feature-flags/catalog-info.yaml"),
    demo_file!("services/feature-flags/src/main.rs"),
    demo_file!("services/fraud-check/Cargo.toml"),
    demo_file!("services/fraud-check/README.md"),
    demo_file!("services/fraud-check/catalog-info.yaml"),
    demo_file!("services/fraud-check/proto/fraud.proto"),
    demo_file!("services/fraud-check/src/main.rs"),
    demo_file!("services/ledger/Cargo.toml"),
    demo_file!("services/ledger/README.md"),
    demo_file!("services/ledger/catalog-info.yaml"),
    demo_file!("services/ledger/migrations/0001_create_postings.sql"),
    demo_file!("services/ledger/proto/ledger.proto"),
    demo_file!("services/ledger/src/main.rs"),
    demo_file!("services/ledger/src/posting.rs"),
    demo_file!("services/mobile-bff/README.md"),
    demo_file!("services/mobile-bff/catalog-info.yaml"),
    demo_file!("services/mobile-bff/go.mod"),
    demo_file!("services/mobile-bff/main.go"),
    demo_file!("services/notification/Cargo.toml"),
    demo_file!("services/notification/README.md"),
    demo_file!("services/notification/catalog-info.yaml"),
    demo_file!("services/notification/src/main.rs"),
    demo_file!("services/notification/src/templates.rs"),
    demo_file!("services/payments/Cargo.toml"),
    demo_file!("services/payments/README.md"),
    demo_file!("services/payments/api/openapi.yaml"),
    demo_file!("services/payments/catalog-info.yaml"),
    demo_file!("services/payments/data/decline-codes.json"),
    demo_file!("services/payments/migrations/0001_create_payment_intents.sql"),
    demo_file!("services/payments/src/capture.rs"),
    demo_file!("services/payments/src/main.rs"),
    demo_file!("services/payments/tests/capture_limits.rs"),
    demo_file!("services/payments/tests/decline_codes.sh"),
    demo_file!("services/product-catalog/README.md"),
    demo_file!("services/product-catalog/api/openapi.yaml"),
    demo_file!("services/product-catalog/catalog-info.yaml"),
    demo_file!("services/product-catalog/cmd/catalog/main.go"),
    demo_file!("services/product-catalog/go.mod"),
    demo_file!("services/product-catalog/go.sum"),
    demo_file!("services/product-catalog/internal/products/products.go"),
    demo_file!("services/product-catalog/migrations/0001_create_products.sql"),
    demo_file!("services/product-catalog/migrations/0002_add_product_images.sql"),
    demo_file!("services/product-reviews/README.md"),
    demo_file!("services/product-reviews/api/openapi.yaml"),
    demo_file!("services/product-reviews/catalog-info.yaml"),
    demo_file!("services/product-reviews/migrations/0001_create_reviews.sql"),
    demo_file!("services/product-reviews/pyproject.toml"),
    demo_file!("services/product-reviews/reviews/app.py"),
    demo_file!("services/product-reviews/tests/test_app.py"),
    demo_file!("services/refund-worker/Cargo.toml"),
    demo_file!("services/refund-worker/README.md"),
    demo_file!("services/refund-worker/catalog-info.yaml"),
    demo_file!("services/refund-worker/src/main.rs"),
    demo_file!("services/search/README.md"),
    demo_file!("services/search/catalog-info.yaml"),
    demo_file!("services/search/pyproject.toml"),
    demo_file!("services/search/search/app.py"),
    demo_file!("services/user-profile/Cargo.toml"),
    demo_file!("services/user-profile/README.md"),
    demo_file!("services/user-profile/api/openapi.yaml"),
    demo_file!("services/user-profile/catalog-info.yaml"),
    demo_file!("services/user-profile/src/lookup.rs"),
    demo_file!("services/user-profile/src/main.rs"),
    demo_file!("tools/oncall-bot/bot.py"),
    demo_file!("tools/oncall-bot/catalog-info.yaml"),
    demo_file!("tools/oncall-bot/requirements.txt"),
    demo_file!("tools/release-notes/Cargo.toml"),
    demo_file!("tools/release-notes/README.md"),
    demo_file!("tools/release-notes/catalog-info.yaml"),
    demo_file!("tools/release-notes/data/currencies.json"),
    demo_file!("tools/release-notes/src/changelog.rs"),
    demo_file!("tools/release-notes/src/main.rs"),
];

/// The closed loop's story after the replay (`demo::fleet`): a regression lands on `stable`, the
/// platform team turns the fleet on, the nightly schedule catches the regression, an agent
/// fixes it and the fix is verified after the merge.
pub mod fleet {
    use super::Edit;

    /// A commit made straight on a branch (no proposal: before the fleet existed).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Landed {
        pub title: &'static str,
        /// `human:NAME` or `agent:NAME`.
        pub author: &'static str,
        pub edits: &'static [Edit],
    }

    /// The two runners of the fleet: (name, the suites its `[[runners]]` entry may attest).
    /// Each may attest one suite, so which runner leases which run is fixed, not a race.
    pub const RUNNERS: [(&str, &str); 2] =
        [("ci-linux", "checkout-unit"), ("ci-pci", "payments-unit")];

    /// The protected branch the loop runs on: what production deploys. Not `main`, so that
    /// `main` stays the base every `demo/<id>` change is decided against.
    pub const BRANCH: &str = "stable";

    /// The suite that catches the regression, and its failing test.
    pub const SUITE: &str = "payments-unit";
    pub const TEST: &str = "payments.decline_codes::hard_decline_is_never_retried";
    /// The schedule that runs it.
    pub const SCHEDULE: &str = "nightly";

    /// A payments engineer makes every decline retryable, hard declines included: the test
    /// that says not to exists, but nothing runs it yet.
    pub const REGRESSION: Landed = Landed {
        title: "payments: retry every decline once",
        author: "human:frank",
        edits: &[Edit::Write {
            path: "services/payments/data/decline-codes.json",
            contents: r#"{
  "05": { "meaning": "do not honour", "retry": true },
  "51": { "meaning": "insufficient funds", "retry": true },
  "91": { "meaning": "issuer unavailable", "retry": true }
}
"#,
        }],
    };

    /// What the platform team appends to `countersign.toml` to turn the fleet on, with each
    /// runner's public key (generated by the demo) in place of `{ci-linux}` and `{ci-pci}`.
    pub const FLEET_CONFIG: &str = r#"
# The fleet (docs/fleet.md): two runners, the suites they run, and the nightly regression run
# of what production deploys.
[[runners]]
name = "ci-linux"
public_key = "{ci-linux}"
suites = ["checkout-unit"]

[[runners]]
name = "ci-pci"
public_key = "{ci-pci}"
suites = ["payments-unit"]

[suites.payments-unit]
command = ["sh", "services/payments/tests/decline_codes.sh"]
timeout = "1m"
reports = { junit = ["target/junit/payments-unit.xml"] }

[suites.checkout-unit]
command = ["sh", "services/checkout/tests/migrations.sh"]
timeout = "1m"
reports = { junit = ["target/junit/checkout-unit.xml"] }

[schedules.nightly]
cron = "0 3 * * *"
branch = "stable"
suites = ["payments-unit", "checkout-unit"]
"#;

    pub const FLEET_TITLE: &str = "countersign: two runners and a nightly regression run";
    pub const FLEET_AUTHOR: &str = "human:judy";

    /// The agent's fix, proposed on this branch with `--fixes`.
    pub const FIX_BRANCH: &str = "demo/fix-hard-declines";
    pub const FIX: Landed = Landed {
        title: "payments: never retry a hard decline",
        author: "agent:fixbot",
        edits: &[Edit::Write {
            path: "services/payments/data/decline-codes.json",
            contents: r#"{
  "05": { "meaning": "do not honour", "retry": false },
  "51": { "meaning": "insufficient funds", "retry": true },
  "91": { "meaning": "issuer unavailable", "retry": true }
}
"#,
        }],
    };
}

/// The demo's changes, cheapest route first. Each applies to the base commit on its own.
pub const CHANGES: &[DemoChange] = &[
    // docs-site is low criticality, nothing depends on it, no sensitive surface.
    DemoChange {
        id: "docs-typo",
        title: "docs: fix a typo in the getting-started guide",
        author: "agent:docsbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "docs/guides/getting-started.md",
            contents: r#"# Getting started

Welcome to the Acme Shop monorepo. You will need Rust 1.82 or later,
Node 22 and Python 3.12.

1. Clone the repository and run `./ci/build.sh` to build and test the Rust services.
2. Run `npm ci` at the root to install the web apps and the design system.
3. Ask in #platform for access to the staging cluster.

Every directory has an owning team: see `.github/CODEOWNERS` and the `catalog-info.yaml`
next to the code. Changes are routed for approval by countersign, which reads those files.
"#,
        }],
        expect: "auto_merge",
    },
    // An internal tool of low criticality with no dependents.
    DemoChange {
        id: "release-notes-refactor",
        title: "release-notes: build bullets with an iterator",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "tools/release-notes/src/changelog.rs",
            contents: r###"/// Renders one bullet per title, grouped under a heading.
pub fn render(titles: &[String]) -> String {
    let bullets: String = titles.iter().map(|t| format!("- {}\n", t.trim())).collect();
    format!("## Changes\n\n{bullets}")
}
"###,
        }],
        expect: "auto_merge",
    },
    // Deleting a dashboard definition of a low-criticality internal website.
    DemoChange {
        id: "dashboard-cleanup",
        title: "dashboards: remove the legacy conversion funnel",
        author: "human:nina",
        declared_tier: None,
        edits: &[Edit::Delete {
            path: "apps/dashboards/dashboards/legacy-conversion.json",
        }],
        expect: "auto_merge",
    },
    // Low-criticality internal tool.
    DemoChange {
        id: "oncall-identity-rotation",
        title: "oncall-bot: add the identity rotation",
        author: "human:liam",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "tools/oncall-bot/bot.py",
            contents: r#""""Answers "who is on call?" in chat."""

ROTATIONS = {
    "platform": ["judy", "ken", "liam"],
    "payments": ["dave", "erin", "frank"],
    "identity": ["grace", "heidi", "ivan"],
}


def on_call(team: str, week: int) -> str:
    rotation = ROTATIONS[team]
    return rotation[week % len(rotation)]
"#,
        }],
        expect: "auto_merge",
    },
    // A moderate service with no dependents: proceeds, the owning team is told.
    DemoChange {
        id: "notification-subject",
        title: "notification: friendlier order confirmation subject",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/notification/src/templates.rs",
            contents: r#"/// Subject line of the order confirmation email.
pub fn order_confirmation_subject(order_id: &str) -> String {
    format!("Thanks! Your Acme Shop order {order_id} is confirmed")
}

/// Subject line of the refund email.
pub fn refund_subject(order_id: &str) -> String {
    format!("Refund for order {order_id}")
}
"#,
        }],
        expect: "notify_and_proceed",
    },
    // Moderate criticality; its API has no consumers yet.
    DemoChange {
        id: "experiments-salt",
        title: "experiments: salt variant assignment per experiment version",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/experiments/experiments/assign.py",
            contents: r#"import hashlib


def variant(experiment: str, visitor_id: str, variants: list[str], version: int = 1) -> str:
    """Deterministic assignment: the same visitor always sees the same variant."""
    digest = hashlib.sha256(f"{experiment}:v{version}:{visitor_id}".encode()).digest()
    return variants[digest[0] % len(variants)]
"#,
        }],
        expect: "notify_and_proceed",
    },
    // The script maps to no entity (CODEOWNERS still owns it): unmapped files never auto-merge, and
    // nothing else forbids the next tier.
    DemoChange {
        id: "unmapped-script",
        title: "scripts: recompute totals instead of zeroing them",
        author: "human:oscar",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "scripts/oneoff-backfill.sh",
            contents: r#"#!/usr/bin/env bash
# One-off: backfill order totals for orders created before 2023-03 (INC-2291).
# Kept for reference; nobody owns this script.
set -euo pipefail
psql "$ORDERS_DB_URL" -c "UPDATE orders o SET total_minor = (SELECT sum(quantity * unit_price_minor) FROM order_lines l WHERE l.order_id = o.id) WHERE total_minor IS NULL"
"#,
        }],
        expect: "notify_and_proceed",
    },
    // A workspace library nobody annotated, but every Rust service depends on it: the blast radius
    // reaches checkout, payments and auth (critical, revenue path), so it is never automated.
    DemoChange {
        id: "telemetry-span-events",
        title: "acme-telemetry: log span close events",
        author: "human:ken",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "libs/acme-telemetry/src/lib.rs",
            contents: r#"//! Logging and tracing set-up shared by every Rust service.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs a JSON subscriber filtered by `RUST_LOG` (default `info`).
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .init();
    tracing::info!(service, "telemetry initialised");
}
"#,
        }],
        expect: "single_approver",
    },
    // acme-kafka is used by checkout (critical, revenue path), so even a routine bump is not
    // automated.
    DemoChange {
        id: "dependabot-rdkafka",
        title: "build(deps): bump rdkafka from 0.36.2 to 0.37.0",
        author: "agent:dependabot",
        declared_tier: None,
        edits: &[
            Edit::Write {
                path: "libs/acme-kafka/Cargo.toml",
                contents: r#"[package]
name = "acme-kafka"
description = "Typed producer and consumer for the order-events topic."
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
acme-telemetry = { path = "../acme-telemetry" }
acme-config = { path = "../acme-config" }
rdkafka = { version = "0.37.0", features = ["cmake-build"] }
serde = { workspace = true }
serde_json = { workspace = true }
"#,
            },
            Edit::Write {
                path: "Cargo.lock",
                contents: r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "acme-config"
version = "0.1.0"
dependencies = [
 "serde",
]

[[package]]
name = "acme-kafka"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-telemetry",
 "rdkafka",
 "serde",
 "serde_json",
]

[[package]]
name = "acme-money"
version = "0.1.0"
dependencies = [
 "serde",
]

[[package]]
name = "acme-telemetry"
version = "0.1.0"
dependencies = [
 "tracing",
 "tracing-subscriber",
]

[[package]]
name = "api-gateway"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-telemetry",
 "axum",
 "tokio",
 "tracing",
]

[[package]]
name = "auth-service"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "axum"
version = "0.7.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "46682d7494dac53fa417594b96566581f7103ce211e4d8095ccd292afd03b8ad"

[[package]]
name = "cart-service"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "checkout-service"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-kafka",
 "acme-money",
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "consent-service"
version = "0.1.0"
dependencies = [
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "feature-flags"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "fraud-check"
version = "0.1.0"
dependencies = [
 "acme-telemetry",
 "tokio",
 "tonic",
 "tracing",
]

[[package]]
name = "invoice-job"
version = "0.1.0"
dependencies = [
 "acme-money",
 "acme-telemetry",
 "tokio",
 "tracing",
]

[[package]]
name = "ledger-service"
version = "0.1.0"
dependencies = [
 "acme-money",
 "acme-telemetry",
 "serde",
 "tokio",
 "tonic",
 "tracing",
]

[[package]]
name = "notification-service"
version = "0.1.0"
dependencies = [
 "acme-kafka",
 "acme-telemetry",
 "tokio",
 "tracing",
]

[[package]]
name = "payments-service"
version = "0.1.0"
dependencies = [
 "acme-config",
 "acme-money",
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]

[[package]]
name = "payout-reconciler"
version = "0.1.0"
dependencies = [
 "acme-money",
 "acme-telemetry",
 "tokio",
 "tracing",
]

[[package]]
name = "rdkafka"
version = "0.37.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "8ccaaabefe31cc138c0bcb4ee11fe21304ab03b572ce487749d1e6d2b667eb66"

[[package]]
name = "refund-worker"
version = "0.1.0"
dependencies = [
 "acme-kafka",
 "acme-money",
 "acme-telemetry",
 "tokio",
 "tracing",
]

[[package]]
name = "release-notes-tool"
version = "0.1.0"
dependencies = [
 "serde",
 "serde_json",
]

[[package]]
name = "serde"
version = "1.0.210"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "8aa4f821de16b4e4618ded062e6dea326993184a2f5f533e1c640fe95292075e"

[[package]]
name = "serde_json"
version = "1.0.128"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "6955420d160d07b4ef1ccbeb8b565229c49239e22e831474dc5687b11b042c60"

[[package]]
name = "tokio"
version = "1.40.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "159369e4d6d3b6028ed0280bc3769a68e2918d9b736ea51127649b8d745572dd"

[[package]]
name = "tonic"
version = "0.12.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "2d7c40bc9ef1e9ab91d6803f16e2f756bf784ca2e25313508d840655c133f005"

[[package]]
name = "tracing"
version = "0.1.40"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "59eafdeb27f6b846cee9d98596b12027794c70f70962978a0940c4a72a891e80"

[[package]]
name = "tracing-subscriber"
version = "0.3.18"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "6453aa40a83a00c436f07b3233e51536dc0b0587d4103c73f2549c636ecd29ea"

[[package]]
name = "user-profile"
version = "0.1.0"
dependencies = [
 "acme-telemetry",
 "axum",
 "serde",
 "tokio",
 "tracing",
]
"#,
            },
        ],
        expect: "single_approver",
    },
    // A high-criticality, internet-facing service: one named owner approves.
    DemoChange {
        id: "mobile-bff-timeout",
        title: "mobile-bff: raise the upstream timeout to 3s",
        author: "human:bob",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/mobile-bff/main.go",
            contents: r#"package main

import (
	"log"
	"net/http"
	"time"
)

// upstreamTimeout bounds every call to checkout, catalog and auth.
const upstreamTimeout = 3 * time.Second

var client = &http.Client{Timeout: upstreamTimeout}

func main() {
	http.HandleFunc("/v1/home", homeHandler)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

func homeHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"sections":[]}`))
}
"#,
        }],
        expect: "single_approver",
    },
    // checkout-service is critical and on the revenue path, but carries no never-automate surface.
    DemoChange {
        id: "checkout-overflow",
        title: "checkout: checked multiplication for line totals",
        author: "human:alice",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/checkout/src/order.rs",
            contents: r#"use acme_money::Money;

pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
}

/// The order total; `None` when lines mix currencies or the sum overflows.
pub fn total(lines: &[Line]) -> Option<Money> {
    let mut sum = Money::eur(0);
    for line in lines {
        let minor = line.unit_price.minor.checked_mul(i64::from(line.quantity))?;
        let amount = Money { minor, ..line.unit_price };
        sum = sum.checked_add(amount)?;
    }
    Some(sum)
}
"#,
        }],
        expect: "single_approver",
    },
    // A data store is touched: at least one approver.
    DemoChange {
        id: "cart-cache-memory",
        title: "infra: give cart-cache 6 GB",
        author: "human:carol",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "infra/redis/cart-cache.conf",
            contents: r#"# Shopping carts. Losing an old cart is acceptable; running out of memory is not.
maxmemory 6gb
maxmemory-policy volatile-lru
appendonly no
"#,
        }],
        expect: "single_approver",
    },
    // The payments surface is on the never-automate list.
    DemoChange {
        id: "payments-retry",
        title: "payments: retry declined captures three times",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/payments/src/capture.rs",
            contents: r#"use acme_money::Money;

/// How many times a declined capture is retried before the order is failed.
pub const MAX_CAPTURE_ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub enum CaptureError {
    Declined { code: String },
    ProviderUnavailable,
}

/// Captures an authorised payment with the card provider.
pub async fn capture(payment_id: &str, amount: Money) -> Result<(), CaptureError> {
    tracing::info!(payment_id, minor = amount.minor, "capturing");
    Err(CaptureError::ProviderUnavailable)
}
"#,
        }],
        expect: "change_control",
    },
    // auth and authz are never-automate surfaces, whoever the author is.
    DemoChange {
        id: "auth-token-ttl",
        title: "auth: extend access tokens to 30 minutes",
        author: "human:grace",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/auth/src/token.rs",
            contents: r#"use std::time::Duration;

/// How long an access token is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a refresh token is valid.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether a token issued at `issued_at` (seconds) is still valid at `now`.
pub fn is_valid(issued_at: u64, now: u64) -> bool {
    now.saturating_sub(issued_at) < ACCESS_TOKEN_TTL.as_secs()
}
"#,
        }],
        expect: "change_control",
    },
    // A schema migration is irreversible; the catalog itself is only moderate.
    DemoChange {
        id: "catalog-badges-migration",
        title: "product-catalog: add product badges",
        author: "human:bob",
        declared_tier: None,
        edits: &[
            Edit::Write {
                path: "services/product-catalog/migrations/0003_add_product_badges.sql",
                contents: r#"ALTER TABLE products ADD COLUMN badge TEXT;
CREATE INDEX products_badge_idx ON products (badge) WHERE badge IS NOT NULL;
"#,
            },
            Edit::Write {
                path: "services/product-catalog/internal/products/products.go",
                contents: r#"package products

import (
	"encoding/json"
	"net/http"
	"strings"
)

type Product struct {
	SKU        string `json:"sku"`
	Title      string `json:"title"`
	PriceMinor int64  `json:"price_minor"`
	Currency   string `json:"currency"`
	Badge      string `json:"badge,omitempty"`
}

func Handler(w http.ResponseWriter, r *http.Request) {
	sku := strings.TrimPrefix(r.URL.Path, "/products/")
	json.NewEncoder(w).Encode(Product{SKU: sku, Title: "Sample", PriceMinor: 1999, Currency: "EUR"})
}
"#,
            },
        ],
        expect: "change_control",
    },
    // CI/CD definitions are on the never-automate list.
    DemoChange {
        id: "ci-rust-cache",
        title: "ci: cache cargo builds",
        author: "agent:ci-tuner",
        declared_tier: None,
        edits: &[Edit::Write {
            path: ".github/workflows/ci.yml",
            contents: r#"name: ci

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

jobs:
  rust:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: Swatinem/rust-cache@v2
      - run: ./ci/build.sh
  web:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 22
      - run: npm ci && npm test
"#,
        }],
        expect: "change_control",
    },
    // An agent editing the catalog edits the rules that judge it: governance. The graph is read
    // from the base commit, so the lowered criticality does not apply to this very change.
    DemoChange {
        id: "agent-lowers-criticality",
        title: "catalog: cart-service is not that critical",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "services/cart/catalog-info.yaml",
            contents: r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: cart-service
  title: Cart
  description: Shopping carts, kept in Redis for 30 days.
  tags: [rust]
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: catalog-info.yaml, src/**, Cargo.toml, README.md
    countersign.dev/suites: cart-unit, checkout-e2e
spec:
  type: service
  lifecycle: production
  owner: team-storefront
  system: shop
  providesApis: [cart-api]
  consumesApis: [catalog-api]
  dependsOn: [resource:cart-cache]
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: cart-api
  description: Add, remove and list cart items.
  annotations:
    countersign.dev/paths: api/**
spec:
  type: openapi
  lifecycle: production
  owner: team-storefront
  system: shop
  definition:
    $text: ./api/openapi.yaml
"#,
        }],
        expect: "change_control",
    },
    // countersign's own configuration is governance.
    DemoChange {
        id: "agent-disables-ci-rule",
        title: "countersign: workflows are reviewed in CI anyway",
        author: "agent:fixbot",
        declared_tier: None,
        edits: &[Edit::Write {
            path: "countersign.toml",
            contents: r#"# countersign configuration for the Acme Shop monorepo.
# Everything here has a default; this file only says what differs.

[graph]
# Start from the root descriptor: its Location lists every other catalog file,
# including the org/ files that are not named catalog-info.yaml.
catalog = ["catalog-info.yaml"]
# codeowners = ".github/CODEOWNERS"   # default: the locations GitHub reads, in order

[never_automate.paths]
# Files that carry a never-automate surface whatever the catalog says.
irreversible = ["**/migrations/**"]
ci-cd = []

# [policy]
# dir = ".countersign/policy"         # default; the embedded pack applies when absent
"#,
        }],
        expect: "change_control",
    },
    // The agent declares auto_merge; the declaration is recorded and ignored. The change touches
    // regulated data (it logs an email address).
    DemoChange {
        id: "profile-debug-logging",
        title: "user-profile: log the profile found, for debugging",
        author: "agent:fixbot",
        declared_tier: Some("auto_merge"),
        edits: &[Edit::Write {
            path: "services/user-profile/src/lookup.rs",
            contents: r#"pub struct Profile {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
}

/// Finds a profile by id. Never log the email: it is personal data.
pub fn find(profiles: &[Profile], user_id: &str) -> Option<&Profile> {
    let found = profiles.iter().find(|p| p.user_id == user_id);
    match found {
        Some(p) => tracing::debug!(user_id, email = %p.email, "profile found"),
        None => tracing::warn!(user_id, "profile not found"),
    }
    found
}
"#,
        }],
        expect: "change_control",
    },
    // A rename counts both paths: the file leaves a low tool and lands in payments-service.
    DemoChange {
        id: "move-currency-table",
        title: "payments owns the currency minor-units table",
        author: "human:erin",
        declared_tier: None,
        edits: &[Edit::Rename {
            from: "tools/release-notes/data/currencies.json",
            to: "services/payments/data/currencies.json",
        }],
        expect: "change_control",
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    const TIERS: [&str; 4] = [
        "auto_merge",
        "notify_and_proceed",
        "single_approver",
        "change_control",
    ];

    fn base(path: &str) -> Option<&'static str> {
        BASE.iter().find(|f| f.path == path).map(|f| f.contents)
    }

    /// Every Backstage document of the base commit. Split on `---` lines as text on purpose:
    /// this crate parses no YAML, and the graph crate's tests own descriptor parsing.
    fn documents() -> Vec<&'static str> {
        BASE.iter()
            .filter(|f| {
                f.path.ends_with(".yaml") && f.contents.contains("apiVersion: backstage.io/")
            })
            .flat_map(|f| f.contents.split("\n---\n"))
            .collect()
    }

    fn count(kind: &str, spec_type: Option<&str>) -> usize {
        documents()
            .into_iter()
            .filter(|d| d.lines().any(|l| l == format!("kind: {kind}")))
            .filter(|d| spec_type.is_none_or(|t| d.lines().any(|l| l == format!("  type: {t}"))))
            .count()
    }

    #[test]
    fn the_company_is_as_big_as_promised() {
        assert!(
            count("Component", None) >= 25,
            "components: {}",
            count("Component", None)
        );
        assert_eq!(count("Group", Some("team")), 5);
        assert_eq!(count("Group", Some("organization")), 1);
        assert!(count("User", None) >= 10);
        assert!(count("API", Some("openapi")) >= 1 && count("API", Some("grpc")) >= 1);
        assert!(count("Resource", Some("database")) >= 3);
        assert_eq!(count("Component", Some("pipeline")), 1);
        assert_eq!(count("Location", None), 1);
        assert!(count("System", None) >= 1 && count("Domain", None) == 1);
        assert!(CHANGES.len() >= 14);
    }

    #[test]
    fn base_paths_are_unique_sorted_and_relative() {
        let mut previous = "";
        for file in BASE {
            assert!(
                file.path > previous,
                "{} is out of order or repeated",
                file.path
            );
            assert!(
                !file.path.starts_with('/') && !file.path.contains('\\'),
                "{}",
                file.path
            );
            previous = file.path;
        }
    }

    #[test]
    fn base_lists_every_file_of_the_demo_directory() {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    out.insert(relative.to_str().unwrap().replace('\\', "/"));
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
        let mut on_disk = BTreeSet::new();
        walk(&root, &root, &mut on_disk);
        let listed: BTreeSet<String> = BASE.iter().map(|f| f.path.to_owned()).collect();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn every_edit_applies_to_the_base_commit() {
        for change in CHANGES {
            let mut touched = BTreeSet::new();
            for edit in change.edits {
                match *edit {
                    Edit::Write { path, contents } => {
                        assert!(touched.insert(path), "{}: {path} edited twice", change.id);
                        match base(path) {
                            Some(old) => {
                                assert_ne!(old, contents, "{}: {path} unchanged", change.id)
                            }
                            // A new file goes into a directory that exists, which catches typos.
                            None => {
                                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                                assert!(
                                    BASE.iter().any(|f| f.path.starts_with(&format!("{dir}/"))),
                                    "{}: new file {path} in a directory the base lacks",
                                    change.id
                                );
                            }
                        }
                    }
                    Edit::Delete { path } => {
                        assert!(touched.insert(path), "{}: {path} edited twice", change.id);
                        assert!(
                            base(path).is_some(),
                            "{}: deletes missing {path}",
                            change.id
                        );
                    }
                    Edit::Rename { from, to } => {
                        assert!(touched.insert(from) && touched.insert(to), "{}", change.id);
                        assert!(
                            base(from).is_some(),
                            "{}: renames missing {from}",
                            change.id
                        );
                        assert!(base(to).is_none(), "{}: rename overwrites {to}", change.id);
                    }
                }
            }
            assert!(!change.edits.is_empty(), "{} is empty", change.id);
        }
    }

    /// The demo's point is realistic changes: a modification rewrites a few lines, not a file.
    #[test]
    fn modifications_are_small_diffs() {
        for change in CHANGES {
            for edit in change.edits {
                let Edit::Write { path, contents } = *edit else {
                    continue;
                };
                let Some(old) = base(path) else { continue };
                let old_lines: Vec<&str> = old.lines().collect();
                let new_lines: Vec<&str> = contents.lines().collect();
                let removed = old_lines.iter().filter(|l| !new_lines.contains(l)).count();
                let added = new_lines.iter().filter(|l| !old_lines.contains(l)).count();
                assert!(
                    removed + added <= 12,
                    "{}: {path} changes {removed}+{added} lines",
                    change.id
                );
                assert!(
                    contents.ends_with('\n'),
                    "{}: {path} lost its final newline",
                    change.id
                );
            }
        }
    }

    #[test]
    fn changes_are_well_formed_and_cover_every_tier() {
        let ids: BTreeSet<&str> = CHANGES.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), CHANGES.len(), "change ids repeat");
        for change in CHANGES {
            assert!(
                TIERS.contains(&change.expect),
                "{}: {}",
                change.id,
                change.expect
            );
            assert!(
                change.declared_tier.is_none_or(|t| TIERS.contains(&t)),
                "{}",
                change.id
            );
            let (kind, name) = change.author.split_once(':').unwrap();
            assert!(
                matches!(kind, "human" | "agent") && !name.is_empty(),
                "{}",
                change.author
            );
            if kind == "human" {
                assert!(
                    documents()
                        .iter()
                        .any(|d| d.contains(&format!("  name: {name}\n"))),
                    "{name}"
                );
            }
        }
        for tier in TIERS {
            assert!(
                CHANGES.iter().any(|c| c.expect == tier),
                "no change expects {tier}"
            );
        }
        assert!(CHANGES.iter().any(|c| c.declared_tier.is_some()));
        assert!(CHANGES.iter().any(|c| c.author == "agent:dependabot"));
        assert!(
            CHANGES
                .iter()
                .any(|c| c.edits.iter().any(|e| matches!(e, Edit::Rename { .. })))
        );
        assert!(
            CHANGES
                .iter()
                .any(|c| c.edits.iter().any(|e| matches!(e, Edit::Delete { .. })))
        );
    }
}
