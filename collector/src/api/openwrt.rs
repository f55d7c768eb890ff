//! Route group `openwrt` (being written).

use axum::Router;

use super::ApiState;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;
