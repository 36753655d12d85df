//! Integrations with forges: how their events reach the proposal lifecycle and how the
//! server reports back. One module per forge; today GitHub's (`github`).

pub mod github;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(github::router())
}
