//! `GET /console/events`: Server-Sent Events for the signed-in viewer. Every few seconds
//! (and at once) a `runs` event with the active runs, which the script shows in the home
//! page's sidebar. Without a session: 401, and the browser's EventSource stops. A stream
//! ends after half a minute and the browser opens another, so a server shutting down
//! gracefully is not held open by pages left open.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use countersign_store::{RunFilter, RunState};
use serde_json::json;

use crate::AppState;

/// How often active runs are read again for each open page.
const EVERY: Duration = Duration::from_secs(5);
/// Updates per connection: then the stream ends and the browser reconnects (after
/// `retry`), so no connection outlives a graceful shutdown by more than this many periods.
const UPDATES: u32 = 6;

pub(crate) async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match super::session::viewer(&state, &headers).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not signed in\n",
            )
                .into_response();
        }
        Err(error) => return super::error_page(None, &error),
    }
    let stream = futures_stream(state);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn active(state: &AppState) -> serde_json::Value {
    let mut runs = Vec::new();
    for wanted in [RunState::Running, RunState::Queued] {
        if let Ok(found) = state
            .store
            .runs(&RunFilter {
                state: Some(wanted),
                limit: 20,
                ..RunFilter::default()
            })
            .await
        {
            runs.extend(found.into_iter().map(|r| {
                json!({ "id": r.id, "suite": r.suite, "environment": r.environment, "state": r.state.as_str() })
            }));
        }
    }
    serde_json::Value::Array(runs)
}

fn futures_stream(
    state: AppState,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(1);
    tokio::spawn(async move {
        for update in 0..UPDATES {
            let data = active(&state).await.to_string();
            let mut event = Event::default().event("runs").data(data);
            if update == 0 {
                event = event.retry(Duration::from_secs(1));
            }
            if tx.send(event).await.is_err() {
                break; // the page went away
            }
            tokio::time::sleep(EVERY).await;
        }
    });
    Receiver(rx)
}

/// An mpsc receiver as a stream.
struct Receiver(tokio::sync::mpsc::Receiver<Event>);

impl futures_core::Stream for Receiver {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}
