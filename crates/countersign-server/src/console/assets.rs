//! The console's own stylesheet and script, compiled into the binary and served under
//! `/console/assets/`, each named with a digest of its content (`?v=`) so a page always
//! loads the files it was rendered with and they can be cached for good.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
/// The tab icon: without one, browsers ask for `/favicon.ico`, a 404 in every page's
/// console.
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1f5fbf\"/>\
<path d=\"M4 8.5l2.5 2.5L12 5\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>";

fn version(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

static CSS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/console/assets/console.css?v={}", version(CSS)));
static JS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/console/assets/console.js?v={}", version(JS)));

pub(crate) fn css_href() -> &'static str {
    &CSS_HREF
}

pub(crate) fn js_href() -> &'static str {
    &JS_HREF
}

static ICON_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/console/assets/icon.svg?v={}", version(ICON)));

pub(crate) fn icon_href() -> &'static str {
    &ICON_HREF
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such asset\n",
            )
                .into_response();
        }
    };
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, kind)], body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
