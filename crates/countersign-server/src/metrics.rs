//! [`Metrics`]: request counts and latencies by route, rendered as Prometheus text.
//!
//! Hand-rolled on purpose: a few counters behind one mutex need no exporter crate, and a
//! process-global recorder (what the `metrics` crate installs) would mix the numbers of the
//! several servers a test process starts. Besides requests, only webhook delivery attempts
//! are counted (by target and outcome), and GitHub deliveries refused for their signature
//! (by reason); no other business metrics yet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// Webhook delivery attempts by target and outcome (delivered, retry, dead).
    webhooks: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// GitHub deliveries refused for their signature, by reason (missing, malformed,
    /// mismatch): a closed set, whatever a caller sends.
    github_refused: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        // A poisoned lock only means another request panicked mid-update; counts stay usable.
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// Counts one webhook delivery attempt to `target` ending as `outcome`.
    pub fn observe_delivery(&self, target: &str, outcome: &'static str) {
        let mut counts = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((target.to_owned(), outcome)).or_default() += 1;
    }

    /// Counts one GitHub delivery refused for its signature (`reason` from a closed set).
    pub fn observe_github_refusal(&self, reason: &'static str) {
        let mut counts = self
            .github_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *counts.entry(reason).or_default() += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        out.push_str("# HELP countersign_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE countersign_http_requests_total counter\n");
        for ((method, route, status), s) in &series {
            let _ = writeln!(
                out,
                "countersign_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP countersign_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE countersign_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in &series {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "countersign_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "countersign_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\ncountersign_http_request_duration_seconds_sum{{{labels}}} {}\ncountersign_http_request_duration_seconds_count{{{labels}}} {}",
                s.count, s.sum, s.count
            );
        }
        let webhooks = self
            .webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !webhooks.is_empty() {
            out.push_str("# HELP countersign_webhook_deliveries_total Webhook delivery attempts by target and outcome.\n");
            out.push_str("# TYPE countersign_webhook_deliveries_total counter\n");
            for ((target, outcome), count) in &webhooks {
                let _ = writeln!(
                    out,
                    "countersign_webhook_deliveries_total{{target=\"{target}\",outcome=\"{outcome}\"}} {count}"
                );
            }
        }
        let refused = self
            .github_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !refused.is_empty() {
            out.push_str("# HELP countersign_github_deliveries_refused_total GitHub webhook deliveries refused for their signature, by reason.\n");
            out.push_str("# TYPE countersign_github_deliveries_refused_total counter\n");
            for (reason, count) in &refused {
                let _ = writeln!(
                    out,
                    "countersign_github_deliveries_refused_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        out
    }
}

/// The method as a label: one of the standard methods, or `other`. Clients choose the method
/// (`curl -X ANYTHING`), and every label value is a series kept for the process's life.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// Middleware: times each request and counts it under a closed set of labels: its route
/// template (never the raw path, so ids do not explode the series; `unmatched` for no
/// route), a known method or `other`, and the status.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
