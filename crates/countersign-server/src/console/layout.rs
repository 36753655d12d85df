//! The page shell every console page shares: the document, the skip link, the navigation,
//! who is signed in with the sign-out form, the flash message and the footer.

use maud::{DOCTYPE, Markup, html};

use super::Viewer;
use super::assets;

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Proposals,
    Runs,
    Findings,
    Schedules,
    Graph,
    Audit,
    Calibration,
    None,
}

const ENTRIES: &[(Nav, &str, &str)] = &[
    (Nav::Home, "/", "Home"),
    (Nav::Proposals, "/proposals", "Proposals"),
    (Nav::Runs, "/runs", "Runs"),
    (Nav::Findings, "/findings", "Findings"),
    (Nav::Schedules, "/schedules", "Schedules"),
    (Nav::Graph, "/graph", "Graph"),
    (Nav::Audit, "/audit", "Audit"),
    (Nav::Calibration, "/calibration", "Calibration"),
];

/// A message shown at the top of a page after an action (or a refusal).
pub(crate) struct Flash {
    pub error: bool,
    pub message: String,
}

impl Flash {
    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            error: true,
            message: message.into(),
        }
    }

    pub fn ok(message: impl Into<String>) -> Flash {
        Flash {
            error: false,
            message: message.into(),
        }
    }
}

/// A whole page: `title` names it (and the document, as "title · countersign").
pub(crate) fn page(
    viewer: Option<&Viewer>,
    current: Nav,
    title: &str,
    flash: Option<Flash>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · countersign" }
                link rel="icon" type="image/svg+xml" href=(assets::icon_href());
                link rel="stylesheet" href=(assets::css_href());
                script src=(assets::js_href()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "countersign" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            ul {
                                @for (nav, href, label) in ENTRIES {
                                    li {
                                        @if *nav == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span data-testid="signed-in-as" {
                                (viewer.caller.principal.to_string())
                                " (" (viewer.caller.role.as_str()) ")"
                            }
                            form method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" data-testid="signout-button" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    @if let Some(flash) = &flash {
                        div.flash.error[flash.error].ok[!flash.error] role=(if flash.error { "alert" } else { "status" }) data-testid="flash" {
                            (flash.message)
                        }
                    }
                    (body)
                }
                footer {
                    p { "countersign: agents propose, humans authorize, every decision is evidence." }
                }
            }
        }
    }
}

/// A tier as a labelled badge.
pub(crate) fn tier_badge(tier: &str) -> Markup {
    html! { span class={ "badge tier-" (tier) } { (tier.replace('_', " ")) } }
}

/// A state as a labelled badge.
pub(crate) fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge state-" (state) } { (state.replace('_', " ")) } }
}

/// A short commit id, the full one in its title.
pub(crate) fn commit(id: &str) -> Markup {
    let short: String = id.chars().take(12).collect();
    html! { code title=(id) { (short) } }
}

/// Links to the previous and next pages of a list.
pub(crate) fn pager(next: Option<String>) -> Markup {
    html! {
        @if let Some(next) = next {
            nav.pager aria-label="Pages" {
                a href=(next) rel="next" { "Older →" }
            }
        }
    }
}
