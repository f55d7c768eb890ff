//! Route group `limits`: the ISP middleware's bandwidth-limit and anti-sharing writes
//! (`../shared/api/isp-middleware.md`), each a fleet action on a router, answered in the
//! middleware's envelope once the router reports. Admin key.
//!
//! - `POST /api/mikrotik/users/queue/create`, `PUT /api/mikrotik/users/queue/update`
//!   `{username, package_info: {download_speed, upload_speed}, device_name?}` and
//!   `POST /api/mikrotik/users/queue/remove {username, device_name?}`: the user's package.
//! - `POST /api/bandwidth/management/throttle {username, download_speed, upload_speed,
//!   device_name?}` and `POST /api/bandwidth/management/remove-throttle {username,
//!   device_name?}`: a throttle over the package; removing it brings the package back.
//!
//!   Queues and throttles are ONE mechanism (action kinds `limit_set` / `limit_remove`, family
//!   `limits`): one UCI `limit` section and one tc HTB class per host, the throttle winning while
//!   set (agent `actions::limits`). Speeds are Mbit/s (numbers, or numeric strings), more than 0
//!   and at most 10000. The user is a DHCP lease hostname or a MAC (`resolve_user`); the host is
//!   its MAC and address on the router (`device_name`, default: the router holding the user's
//!   newest lease). The router checks its own leases again.
//! - `POST /api/mikrotik/anti-sharing/enable {interface, device_name?}`: TTL 1 on packets the
//!   router forwards out of `interface` (an OpenWrt device such as `br-lan`), kind
//!   `anti_sharing`, family `anti_sharing`; `device_name` may be left out in a one-router fleet.
//!
//! Answers: 200 `{success: true, message, data: {...,  action_id}, timestamp}`; 202
//! `{success: false, message, action_id, state, timestamp}` while the router has not answered
//! within `?wait=` (default 30 s, at most 60); errors `{success: false, error, timestamp}` (plus
//! `action_id` once an action exists): 400 bad input or a duplicate, 404 unknown user/device, a
//! host not on the router or nothing to remove, 409 refused by the router's allow list, 504 no
//! answer before the deadline.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use routerstats_shared::action::{
    check_device, check_user, ActionKind, LimitLayer, LimitMode, MAX_LIMIT_KBIT, MIN_LIMIT_KBIT,
};
use routerstats_shared::model::MacAddr;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::fleet_action::{isp_not_done, submit, IspActionAnswers};
use super::isp::{self, admin, IspError};
use super::times::iso_now;
use super::wg_writes::WaitParam;
use super::{ApiState, Caller};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/mikrotik/users/queue/create", post(queue_create))
        .route("/api/mikrotik/users/queue/update", put(queue_update))
        .route("/api/mikrotik/users/queue/remove", post(queue_remove))
        .route("/api/bandwidth/management/throttle", post(throttle))
        .route(
            "/api/bandwidth/management/remove-throttle",
            post(remove_throttle),
        )
        .route("/api/mikrotik/anti-sharing/enable", post(anti_sharing))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        queue_create,
        queue_update,
        queue_remove,
        throttle,
        remove_throttle,
        anti_sharing
    ),
    components(schemas(QueueBody, PackageInfo, ThrottleBody, UserBody, AntiSharingBody))
)]
pub struct Doc;

/// Largest accepted speed (Mbit/s).
pub const MAX_MBPS: f64 = MAX_LIMIT_KBIT as f64 / 1000.0;

/// `package_info` of the queue routes (speeds as numbers or numeric strings; the hotspot and
/// PPPoE routes' `package_info` is `isp::uci_writes::PackageInfo`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = QueuePackageInfo)]
pub struct PackageInfo {
    /// Mbit/s, more than 0, at most 10000.
    #[schema(value_type = f64, required = true, nullable = false, minimum = 0.008, maximum = 10000)]
    pub download_speed: Option<Value>,
    #[schema(value_type = f64, required = true, nullable = false, minimum = 0.008, maximum = 10000)]
    pub upload_speed: Option<Value>,
}

/// Body of `POST /users/queue/create` and `PUT /users/queue/update`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct QueueBody {
    #[schema(
        required = true,
        nullable = false,
        pattern = "^\\s*[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\\s*$"
    )]
    pub username: Option<String>,
    #[schema(required = true, nullable = false)]
    pub package_info: Option<PackageInfo>,
    pub device_name: Option<String>,
}

/// Body of `POST /management/throttle`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ThrottleBody {
    #[schema(
        required = true,
        nullable = false,
        pattern = "^\\s*[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\\s*$"
    )]
    pub username: Option<String>,
    #[schema(value_type = f64, required = true, nullable = false, minimum = 0.008, maximum = 10000)]
    pub download_speed: Option<Value>,
    #[schema(value_type = f64, required = true, nullable = false, minimum = 0.008, maximum = 10000)]
    pub upload_speed: Option<Value>,
    pub device_name: Option<String>,
}

/// Body of the remove routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserBody {
    #[schema(
        required = true,
        nullable = false,
        pattern = "^\\s*[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\\s*$"
    )]
    pub username: Option<String>,
    pub device_name: Option<String>,
}

/// Body of `POST /anti-sharing/enable`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AntiSharingBody {
    /// The OpenWrt device clients are on (`br-lan`).
    #[schema(
        required = true,
        nullable = false,
        pattern = "^\\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\\s*$"
    )]
    pub interface: Option<String>,
    pub device_name: Option<String>,
}

/// A speed in Mbit/s as kbit/s: a JSON number or numeric string, `0 < v <= 10000`.
pub fn speed_kbit(name: &str, v: Option<&Value>) -> Result<u32, IspError> {
    let bad = || {
        IspError::bad_request(format!(
            "{name} must be a number of Mbit/s greater than 0 and at most {MAX_MBPS}"
        ))
    };
    let n = match v {
        None | Some(Value::Null) => {
            return Err(IspError::bad_request(format!("{name} is required")))
        }
        Some(Value::Number(n)) => n.as_f64().ok_or_else(bad)?,
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    if !n.is_finite() || n <= 0.0 || n > MAX_MBPS {
        return Err(bad());
    }
    let kbit = (n * 1000.0).round() as u32;
    if kbit < MIN_LIMIT_KBIT {
        return Err(IspError::bad_request(format!(
            "{name} must be at least {} Mbit/s",
            MIN_LIMIT_KBIT as f64 / 1000.0
        )));
    }
    Ok(kbit)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, IspError> {
    b.map(|Json(b)| b)
        .map_err(|e| IspError::bad_request(format!("invalid JSON body: {}", e.body_text())))
}

fn username(u: Option<String>) -> Result<String, IspError> {
    let u = u
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IspError::bad_request("username is required"))?;
    check_user(&u).map_err(IspError::bad_request)?;
    Ok(u)
}

/// The host a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The stored user name (hostname, else MAC).
    pub user: String,
    pub device: String,
    pub mac: Option<String>,
    pub ip: Option<String>,
}

const USER_LEASES_SQL: &str =
    "SELECT router_id, ip, updated_ms FROM leases WHERE mac = ?1 ORDER BY updated_ms DESC";

/// Finds the user, the router and the user's host on it. `need_host`: 404 when the user has no
/// lease (set routes); otherwise a user the lease book no longer knows is still named, so a
/// limit of a departed host can be removed (with `device_name`).
fn target(
    c: &Connection,
    name: &str,
    device: Option<&str>,
    need_host: bool,
) -> Result<Target, IspError> {
    let router = isp::device_filter(c, device)?;
    let user = match isp::resolve_user(c, name) {
        Ok(u) => u,
        Err(e) if need_host || router.is_none() || e.status != StatusCode::NOT_FOUND => {
            return Err(e)
        }
        Err(_) => {
            let mac = name.parse::<MacAddr>().ok().map(|m| m.to_string());
            return Ok(Target {
                user: mac.clone().unwrap_or_else(|| name.to_string()),
                device: router.map(|r| r.name.clone()).unwrap_or_default(),
                mac,
                ip: None,
            });
        }
    };
    // The newest lease of the user's MACs, on the router if one is named.
    let mut best: Option<(i64, String, String, i64)> = None;
    let mut st = c.prepare_cached(USER_LEASES_SQL).map_err(isp::db)?;
    for mac in &user.macs {
        let rows = st
            .query_map([mac], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(isp::db)?;
        for row in rows {
            let (rid, ip, updated) = row.map_err(isp::db)?;
            if router.as_ref().is_some_and(|r| r.id != rid) {
                continue;
            }
            if best.as_ref().is_none_or(|b| updated > b.3) {
                best = Some((rid, mac.clone(), ip, updated));
            }
            break;
        }
    }
    let routers = isp::all_routers(c)?;
    let Some((rid, mac, ip, _)) = best else {
        if need_host || router.is_none() {
            return Err(IspError::not_found(match &router {
                Some(r) => format!(
                    "user {} has no DHCP lease on device {}: the host is not on that router",
                    user.username, r.name
                ),
                None => format!(
                    "user {} has no DHCP lease on any router; name the device_name",
                    user.username
                ),
            }));
        }
        return Ok(Target {
            user: user.username,
            device: router.map(|r| r.name.clone()).unwrap_or_default(),
            mac: user.macs.first().cloned(),
            ip: None,
        });
    };
    let device = routers
        .iter()
        .find(|r| r.id == rid)
        .map(|r| r.name.clone())
        .ok_or_else(|| IspError::not_found("the user's router is no longer enrolled"))?;
    check_user(&user.username).map_err(|e| {
        IspError::bad_request(format!(
            "the user's lease hostname cannot name a limit ({e}); use the MAC as username"
        ))
    })?;
    Ok(Target {
        user: user.username,
        device,
        mac: Some(mac),
        ip: Some(ip),
    })
}

async fn find_target(
    state: &ApiState,
    name: String,
    device: Option<String>,
    need_host: bool,
) -> Result<Target, IspError> {
    isp::read(state, move |c| {
        target(c, &name, device.as_deref(), need_host)
    })
    .await
}

/// Sends the action and answers: `data` once it is done, else [`isp_not_done`].
async fn send(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    wait: Option<u64>,
    device: String,
    kind: ActionKind,
    (message, mut data): (String, Value),
) -> Result<Response, IspError> {
    let wait = super::wg_writes::wait_of(wait)?;
    let row = match submit(state, caller, headers, device, kind, wait, isp_not_done).await? {
        Ok(row) => row,
        Err(answer) => return Ok(answer),
    };
    data["action_id"] = json!(row.id);
    Ok(
        Json(json!({"success": true, "message": message, "data": data, "timestamp": iso_now()}))
            .into_response(),
    )
}

fn wait_param(q: Result<Query<WaitParam>, QueryRejection>) -> Result<Option<u64>, IspError> {
    // The router is the body's `device_name` (as the document writes these bodies).
    Ok(super::extract::query(q)?.wait)
}

async fn set_limit(
    state: ApiState,
    headers: HeaderMap,
    wait: Option<u64>,
    (name, device): (Option<String>, Option<String>),
    speeds: (Option<&Value>, Option<&Value>),
    layer: LimitLayer,
    mode: LimitMode,
) -> Result<Response, IspError> {
    let caller = admin(&state, &headers).await?;
    let name = username(name)?;
    let down = speed_kbit("download_speed", speeds.0)?;
    let up = speed_kbit("upload_speed", speeds.1)?;
    let t = find_target(&state, name, device, true).await?;
    let kind = ActionKind::LimitSet {
        user: t.user.clone(),
        mac: t.mac.clone(),
        ip: t.ip.clone(),
        layer,
        mode,
        download_kbit: down,
        upload_kbit: up,
    };
    let verb = match (layer, mode) {
        (LimitLayer::Queue, LimitMode::Create) => "created",
        (LimitLayer::Queue, _) => "updated",
        (LimitLayer::Throttle, _) => "throttled",
    };
    let message = match layer {
        LimitLayer::Queue => format!("Queue for {} {verb} on {}", t.user, t.device),
        LimitLayer::Throttle => format!("User {} {verb} on {}", t.user, t.device),
    };
    let data = json!({
        "username": t.user, "device_name": t.device, "mac_address": t.mac, "ip_address": t.ip,
        "download_speed": down as f64 / 1000.0, "upload_speed": up as f64 / 1000.0,
        "limit_type": layer.as_str(),
    });
    send(
        &state,
        &caller,
        &headers,
        wait,
        t.device,
        kind,
        (message, data),
    )
    .await
}

async fn remove_limit(
    state: ApiState,
    headers: HeaderMap,
    wait: Option<u64>,
    b: UserBody,
    layer: LimitLayer,
) -> Result<Response, IspError> {
    let caller = admin(&state, &headers).await?;
    let name = username(b.username)?;
    let t = find_target(&state, name, b.device_name, false).await?;
    let kind = ActionKind::LimitRemove {
        user: t.user.clone(),
        mac: t.mac.clone(),
        layer,
    };
    let message = match layer {
        LimitLayer::Queue => format!("Queue for {} removed from {}", t.user, t.device),
        LimitLayer::Throttle => format!("Throttle of {} removed on {}", t.user, t.device),
    };
    let data = json!({"username": t.user, "device_name": t.device, "limit_type": layer.as_str()});
    send(
        &state,
        &caller,
        &headers,
        wait,
        t.device,
        kind,
        (message, data),
    )
    .await
}

/// Creates a user's bandwidth queue (admin).
#[utoipa::path(post, path = "/api/mikrotik/users/queue/create", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = QueueBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data: {username, device_name, mac_address, ip_address, download_speed, upload_speed, limit_type, action_id}, timestamp}`"),
        (status = 400, description = "Bad body or speeds, or the user already has a queue"),
        (status = 404, description = "Unknown user or device, or the host is not on the router"),
        (status = 409, description = "The router's allow list has no `limits`"),
    ))]
pub async fn queue_create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<QueueBody>, JsonRejection>,
) -> Result<Response, IspError> {
    set_queue(state, headers, q, b, LimitMode::Create).await
}

/// The queue routes: the package's speeds, created or updated.
async fn set_queue(
    state: ApiState,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<QueueBody>, JsonRejection>,
    mode: LimitMode,
) -> Result<Response, IspError> {
    let wait = wait_param(q)?;
    let b = body(b)?;
    let p = b.package_info.as_ref();
    let speeds = (
        p.and_then(|p| p.download_speed.as_ref()),
        p.and_then(|p| p.upload_speed.as_ref()),
    );
    let who = (b.username, b.device_name);
    set_limit(state, headers, wait, who, speeds, LimitLayer::Queue, mode).await
}

/// Changes a user's bandwidth queue (admin).
#[utoipa::path(put, path = "/api/mikrotik/users/queue/update", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = QueueBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data, timestamp}`"),
        (status = 400, description = "Bad body or speeds"),
        (status = 404, description = "Unknown user or device, or the user has no queue"),
        (status = 409, description = "The router's allow list has no `limits`"),
    ))]
pub async fn queue_update(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<QueueBody>, JsonRejection>,
) -> Result<Response, IspError> {
    set_queue(state, headers, q, b, LimitMode::Update).await
}

/// Removes a user's bandwidth queue (admin).
#[utoipa::path(post, path = "/api/mikrotik/users/queue/remove", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = UserBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data, timestamp}`"),
        (status = 400, description = "Bad body"),
        (status = 404, description = "Unknown user or device, or the user has no queue"),
        (status = 409, description = "The router's allow list has no `limits`"),
    ))]
pub async fn queue_remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<UserBody>, JsonRejection>,
) -> Result<Response, IspError> {
    let wait = wait_param(q)?;
    remove_limit(state, headers, wait, body(b)?, LimitLayer::Queue).await
}

/// Throttles a user (admin): a limit over the user's queue until it is removed.
#[utoipa::path(post, path = "/api/bandwidth/management/throttle", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = ThrottleBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data, timestamp}`"),
        (status = 400, description = "Bad body or speeds"),
        (status = 404, description = "Unknown user or device, or the host is not on the router"),
        (status = 409, description = "The router's allow list has no `limits`"),
    ))]
pub async fn throttle(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<ThrottleBody>, JsonRejection>,
) -> Result<Response, IspError> {
    let wait = wait_param(q)?;
    let b = body(b)?;
    let speeds = (b.download_speed.as_ref(), b.upload_speed.as_ref());
    let who = (b.username, b.device_name);
    set_limit(
        state,
        headers,
        wait,
        who,
        speeds,
        LimitLayer::Throttle,
        LimitMode::Set,
    )
    .await
}

/// Removes a user's throttle (admin); the queue, if any, applies again.
#[utoipa::path(post, path = "/api/bandwidth/management/remove-throttle", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = UserBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data, timestamp}`"),
        (status = 400, description = "Bad body"),
        (status = 404, description = "Unknown user or device, or the user is not throttled"),
        (status = 409, description = "The router's allow list has no `limits`"),
    ))]
pub async fn remove_throttle(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<UserBody>, JsonRejection>,
) -> Result<Response, IspError> {
    let wait = wait_param(q)?;
    remove_limit(state, headers, wait, body(b)?, LimitLayer::Throttle).await
}

/// Turns on TTL-based anti-sharing on a router's client interface (admin).
#[utoipa::path(post, path = "/api/mikrotik/anti-sharing/enable", tag = "isp",
    security(("api_key" = []), ("bearer" = [])), request_body = AntiSharingBody, params(WaitParam),
    responses(
        IspActionAnswers,
        (status = 200, description = "`{success: true, message, data: {interface, device_name, ttl, action_id}, timestamp}`"),
        (status = 400, description = "Bad interface name, or already enabled"),
        (status = 404, description = "Unknown device, or no such interface on the router"),
        (status = 409, description = "The router's allow list has no `anti_sharing`"),
    ))]
pub async fn anti_sharing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    b: Result<Json<AntiSharingBody>, JsonRejection>,
) -> Result<Response, IspError> {
    let caller = admin(&state, &headers).await?;
    let wait = wait_param(q)?;
    let b = body(b)?;
    let interface = b
        .interface
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IspError::bad_request("interface is required"))?;
    check_device(&interface).map_err(IspError::bad_request)?;
    let device = match b.device_name {
        Some(d) => d,
        None => state
            .actions
            .only_router()
            .await
            .map_err(|e| IspError::from(super::ApiError::from(e)))?
            .ok_or_else(|| {
                IspError::bad_request(
                    "device_name is required when the fleet has more than one router",
                )
            })?,
    };
    let device = isp::read(&state, move |c| {
        Ok(isp::router_by_name(c, &device)?.name.clone())
    })
    .await?;
    let kind = ActionKind::AntiSharing {
        interface: interface.clone(),
        enable: true,
    };
    let message = format!("Anti-sharing enabled on {interface} of {device}");
    let data = json!({"interface": interface, "device_name": device, "ttl": 1});
    send(
        &state,
        &caller,
        &headers,
        wait,
        device,
        kind,
        (message, data),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_positive_bounded_numbers() {
        assert_eq!(speed_kbit("d", Some(&json!(5))).unwrap(), 5000);
        assert_eq!(speed_kbit("d", Some(&json!(2.5))).unwrap(), 2500);
        assert_eq!(speed_kbit("d", Some(&json!("10"))).unwrap(), 10_000);
        assert_eq!(speed_kbit("d", Some(&json!(10000))).unwrap(), 10_000_000);
        for bad in [
            json!(0),
            json!(-5),
            json!(10001),
            json!("fast"),
            json!(true),
            json!([1]),
            json!(0.001),
            json!(1e308),
        ] {
            let e = speed_kbit("download_speed", Some(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains("download_speed"), "{}", e.message);
        }
        assert!(speed_kbit("d", None)
            .unwrap_err()
            .message
            .contains("required"));
    }
}
