//! Route group `backups`: configuration backups of routers (`sysupgrade -b`), made through a
//! fleet action, stored on the collector, listed and downloadable. Admin key.
//!
//! - `POST /api/mikrotik/backup/create?device=<router>&wait=<s>` and
//!   `POST /api/vpn/server/backup?device=<router>&wait=<s>` (the ISP middleware's two backup
//!   routes; both back up the router's whole configuration, OpenVPN's included): `device` may be
//!   left out when the fleet has exactly one router. 200
//!   `{success: true, message, backup: Backup}` once the router answered; 202
//!   `{success: false, message, action_id, state}` while it has not; 409 when its allow list has
//!   no `backup`; 400 when it failed (e.g. the archive is larger than 512 KiB).
//! - `GET /api/backups?router=` lists stored backups, newest first: `{backups: [Backup], count}`.
//! - `GET /api/backups/{id}` downloads one archive (`application/gzip`, attachment).
//!
//! A `Backup` is `{id, router, created_at, size, sha256, available, download}`; `available` is
//! false once retention (`backup_keep` per router) deleted the file.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use routerstats_shared::action::{ActionDetail, ActionKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::query;
use super::fleet_action::{not_done_isp, request_and_wait, IspActionAnswers};
use super::{require_role, ApiError, ApiState};
use crate::actions::backups;
use crate::pki::tokens::Role;
use crate::store::{ActionFilter, ActionRow};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/mikrotik/backup/create", post(create_backup))
        .route("/api/vpn/server/backup", post(create_vpn_backup))
        .route("/api/backups", get(list_backups))
        .route("/api/backups/{id}", get(download_backup))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_backup, create_vpn_backup, list_backups, download_backup),
    components(schemas(BackupView)),
    tags((name = "backups", description = "Router configuration backups (sysupgrade -b), admin"))
)]
pub struct Doc;

/// A stored backup.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupView {
    /// The action id.
    pub id: i64,
    pub router: String,
    /// Unix seconds.
    pub created_at: i64,
    pub size: u64,
    /// Lowercase hex SHA-256 of the archive.
    pub sha256: String,
    /// False once retention deleted the archive.
    pub available: bool,
    /// Where to download it.
    pub download: String,
}

/// Query of the create routes (ISP middleware paths: other parameters, like cache busters, are
/// ignored, as on the rest of that group).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Router name or id. Documented as required: it may be left out only when the fleet has
    /// exactly one router (400 otherwise).
    #[param(required = true)]
    pub device: Option<String>,
    /// Seconds to wait for the router (0-60, default 30).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// Query of `GET /api/backups`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub router: Option<String>,
}

fn view(state: &ApiState, r: &ActionRow) -> Option<BackupView> {
    let detail: ActionDetail = serde_json::from_value(r.result.clone()?).ok()?;
    let ActionDetail::Backup { size, sha256, .. } = detail else {
        return None;
    };
    let available = backups::file(&state.actions.settings().data_dir, r.router_id, r.id).exists();
    Some(BackupView {
        id: r.id,
        router: r.router.clone(),
        created_at: r.finished_at.unwrap_or(r.created_at),
        size,
        sha256,
        available,
        download: format!("/api/backups/{}", r.id),
    })
}

async fn create(state: ApiState, headers: HeaderMap, q: CreateQuery) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let wait = super::wg_writes::wait_of(q.wait)?;
    let router = match q.device {
        Some(d) => d,
        None => state.actions.only_router().await?.ok_or_else(|| {
            ApiError::bad_request(
                "device is required (the router's name) when the fleet has more than one router",
            )
        })?,
    };
    let row = request_and_wait(
        &state,
        &caller,
        &headers,
        router,
        ActionKind::Backup {},
        wait,
    )
    .await?;
    let (status, body) = match not_done_isp(&row) {
        Some(answer) => answer,
        None => match view(&state, &row) {
            Some(b) => (
                StatusCode::OK,
                json!(super::envelope::stamped(
                    json!({"message": format!("Backup of {} created", row.router), "backup": b})
                )),
            ),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"success": false, "error": "the backup's record is incomplete", "action_id": row.id, "timestamp": super::times::iso_now()}),
            ),
        },
    };
    Ok((status, Json(body)).into_response())
}

/// Backs up a router's configuration (admin).
#[utoipa::path(
    post,
    path = "/api/mikrotik/backup/create",
    tag = "backups",
    security(("api_key" = []), ("bearer" = [])),
    params(CreateQuery),
    responses(
        IspActionAnswers,
        (status = 200, description = "The ISP document's envelope: `{success: true, data: {message, backup: Backup}, timestamp}`"),
        (status = 400, description = "Bad parameters, or the router failed"),
        (status = 404, description = "Unknown router"),
        (status = 409, description = "The router's allow list has no `backup`, or it is revoked"),
    )
)]
pub async fn create_backup(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<CreateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    create(state, headers, query(q)?).await
}

/// Backs up a router's configuration, OpenVPN's included (admin; the VPN API's route).
#[utoipa::path(
    post,
    path = "/api/vpn/server/backup",
    tag = "backups",
    security(("api_key" = []), ("bearer" = [])),
    params(CreateQuery),
    responses(
        IspActionAnswers,
        (status = 200, description = "The ISP document's envelope: `{success: true, data: {message, backup: Backup}, timestamp}`"),
        (status = 400, description = "Bad parameters, or the router failed"),
        (status = 404, description = "Unknown router"),
        (status = 409, description = "The router's allow list has no `backup`, or it is revoked"),
    )
)]
pub async fn create_vpn_backup(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<CreateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    create(state, headers, query(q)?).await
}

/// Stored backups, newest first (admin).
#[utoipa::path(
    get,
    path = "/api/backups",
    tag = "backups",
    security(("api_key" = []), ("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "`{backups: [Backup], count}`"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "Unknown router"),
    )
)]
pub async fn list_backups(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let q = query(q)?;
    let router_id = match q.router {
        Some(r) => Some(state.actions.router_id(r).await?),
        None => None,
    };
    let filter = ActionFilter {
        router_id,
        state: Some("done".into()),
        kind: Some("backup".into()),
        before_id: None,
        limit: 500,
    };
    let rows = state.actions.list(filter).await?;
    let list: Vec<BackupView> = rows.iter().filter_map(|r| view(&state, r)).collect();
    Ok(Json(json!({"count": list.len(), "backups": list})).into_response())
}

/// Downloads a backup archive (admin).
#[utoipa::path(
    get,
    path = "/api/backups/{id}",
    tag = "backups",
    security(("api_key" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Backup (action) id")),
    responses(
        (status = 200, description = "The archive", content_type = "application/gzip"),
        (status = 400, description = "Bad id"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such backup"),
        (status = 410, description = "Deleted by retention"),
    )
)]
pub async fn download_backup(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let id: i64 = id
        .ok()
        .and_then(|Path(s)| s.parse().ok())
        .ok_or_else(|| ApiError::bad_request("backup id must be an integer"))?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no backup {id}"));
    let row = state
        .actions
        .get(id)
        .await?
        .filter(|r| r.kind == "backup" && r.state == "done")
        .ok_or_else(not_found)?;
    let path = backups::file(&state.actions.settings().data_dir, row.router_id, id);
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                StatusCode::GONE,
                format!("backup {id} was deleted by retention (backup_keep)"),
            ))
        }
        Err(e) => return Err(ApiError::internal(format!("cannot read backup {id}: {e}"))),
    };
    let disposition = format!("attachment; filename=\"{}-{id}.tar.gz\"", row.router);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        data,
    )
        .into_response())
}
