//! Route group `device_status`: `POST /api/mikrotik/devices/{name}/status` (the ISP middleware's
//! "detailed device status"), answered from a fresh look at the router: a `status` fleet action
//! that reads uptime, release, CPU and memory when it runs (not the last report). Admin key.
//!
//! The middleware's body carries RouterOS credentials (`username`, `password`, `host`, `port`);
//! routers here are reached over their own mTLS session, so the body is not needed, not read and
//! not stored. Answer: `{success: true, data: {device_name, connected: true, system_resources:
//! {uptime, version, cpu_load, free_memory, total_memory}, action_id}}` (RouterOS-style strings:
//! uptime like `2w3d4h15m10s`, CPU percent, memory in bytes), and beside them, from the router's
//! newest report (the fresh look reads only the system), `interface_stats` (the items of
//! `GET /api/mikrotik/interfaces?device=`), `active_users_count` and `active_users` (those of
//! `GET /api/mikrotik/users/active?device=`). A router that does not answer within `?wait=`
//! (default 30 s) gives 202, one whose allow list has no `status` 409.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use routerstats_shared::action::{ActionDetail, ActionKind};
use serde_json::json;

use super::backups::CreateQuery;
use super::fleet_action::{isp_not_done, submit, IspActionAnswers};
use super::{require_role, ApiError, ApiState};
use crate::pki::tokens::Role;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/mikrotik/devices/{name}/status", post(device_status))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(device_status))]
pub struct Doc;

/// A fresh status of one router (admin; the body is ignored).
#[utoipa::path(
    post,
    path = "/api/mikrotik/devices/{name}/status",
    tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Device (router) name"), ("wait" = Option<u64>, Query, description = "Seconds to wait for the router (0-60, default 30)", minimum = 0, maximum = 60)),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, data: {device_name, connected, system_resources, interface_stats, active_users_count, active_users, action_id}}`"),
        (status = 400, description = "Bad device name or `wait`, or a `device` parameter"),
        (status = 404, description = "Unknown device"),
        (status = 409, description = "The router's allow list has no `status`, or it is revoked"),
    )
)]
pub async fn device_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<CreateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let name = super::extract::path(name)?;
    let q = super::extract::query(q)?;
    if q.device.is_some() {
        return Err(ApiError::bad_request("the device is the path's {name}"));
    }
    let wait = super::wg_writes::wait_of(q.wait)?;
    let kind = ActionKind::Status {};
    let row = match submit(&state, &caller, &headers, name, kind, wait, isp_not_done).await? {
        Ok(row) => row,
        Err(answer) => return Ok(answer),
    };
    let detail: Option<ActionDetail> = row
        .result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let Some(ActionDetail::Status {
        uptime_s,
        release,
        cpu_permille,
        mem_total_kb,
        mem_available_kb,
    }) = detail
    else {
        return Err(ApiError::internal(
            "the router's status answer is incomplete",
        ));
    };
    let router_id = row.router_id;
    let now = crate::clock::now_ms();
    let (interfaces, users) = super::with_read(&state, move |c| {
        let facts = super::fleet::load_router_facts(c)
            .map_err(super::readpool::db_err)?
            .into_iter()
            .filter(|r| r.id == router_id)
            .collect::<Vec<_>>();
        let reported = |e: super::isp::IspError| ApiError::new(e.status, e.message);
        Ok((
            super::isp::devices::interfaces_of(c, &facts).map_err(reported)?,
            super::isp::devices::active_users_of(c, &facts, now).map_err(reported)?,
        ))
    })
    .await?;
    let data = json!({
        "device_name": row.router,
        "connected": true,
        "system_resources": {
            "uptime": uptime_s.map(super::times::routeros_uptime),
            "version": release,
            "cpu_load": cpu_permille.map(|p| ((u32::from(p) + 5) / 10).to_string()),
            "free_memory": mem_available_kb.map(|k| (k * 1024).to_string()),
            "total_memory": mem_total_kb.map(|k| (k * 1024).to_string()),
        },
        "interface_stats": interfaces.interfaces,
        "active_users_count": users.active_users_count,
        "active_users": users.active_users,
        "action_id": row.id,
    });
    Ok((StatusCode::OK, Json(json!({"success": true, "data": data}))).into_response())
}
