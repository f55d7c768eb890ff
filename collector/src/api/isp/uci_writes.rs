//! The ISP middleware's hotspot, PPPoE and bridge routes (`../shared/api/isp-middleware.md`),
//! each a fleet action on an OpenWrt router, answered once the router reports. Admin key.
//!
//! | route | action | on the router |
//! |---|---|---|
//! | `POST /api/mikrotik/hotspot/authorize` | `hotspot_authorize` | `ndsctl auth <mac> "" <up> <down> "" "" <user>` |
//! | `POST /api/mikrotik/hotspot/deauthorize` | `hotspot_deauthorize` | `ndsctl deauth <mac>` |
//! | `POST /api/mikrotik/hotspot/server/configure` | `hotspot_configure` | UCI `opennds`, openNDS restart |
//! | `POST /api/mikrotik/pppoe/secret/create` | `pppoe_secret_create` | `/etc/ppp/chap-secrets`, `pap-secrets` |
//! | `POST /api/mikrotik/pppoe/secret/remove` | `pppoe_secret_remove` | the same files |
//! | `POST /api/mikrotik/pppoe/server/configure` | `pppoe_server_configure` | UCI `pppoe`, pppoe-server reload |
//! | `POST /api/mikrotik/bridge/create` | `bridge_create` | UCI `network` bridge device, network reload |
//! | `POST /api/mikrotik/bridge/add-port` | `bridge_add_port` | its `ports` list, network reload |
//! | `POST /api/mikrotik/network/setup` | `network_setup` | bridge + static interface + UCI `dhcp` pool |
//!
//! Bodies are the document's; fields that only make sense on MikroTik are accepted and ignored
//! (docs/api/isp.md lists them). A body without `device_name` goes to the router the request
//! implies (the one with the MAC for `authorize`, the one a user was authorized or created on
//! for `deauthorize` and `secret/remove`), else to the fleet's only router. Answers:
//! 200 `{success: true, data: {message, router, action_id, ...}, timestamp}`; 202
//! `{success: false, message, action_id, state, timestamp}` while the router has not answered
//! within `?wait=` (default 30 s); errors `{success: false, error, timestamp[, action_id]}`:
//! 400 bad input or a duplicate, 404 unknown router, user, MAC, bridge, pool or interface, 409
//! refused by the router (family not allowed, package not installed), 504 no answer in time.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use routerstats_shared::action::{check_mac, ActionKind};
use rusqlite::OptionalExtension;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{admin, json_body, IspError, MAX_TEXT_CHARS};
use crate::api::envelope::ErrorEnvelope;
use crate::api::fleet_action::{not_done_isp, submit, IspActionAnswers};
use crate::api::times::iso_now;
use crate::api::wg_writes::{wait_of, WaitParam};
use crate::api::{ApiState, Caller};
use crate::store::{ActionFilter, ActionRow};

/// `package_info` of the hotspot and PPPoE bodies (speeds in Mbit/s).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct PackageInfo {
    /// Mbit/s, at least 0.008, at most 10000 (`limits::speed_kbit`).
    #[schema(minimum = 0.008, maximum = 10000)]
    pub download_speed: Option<f64>,
    #[schema(minimum = 0.008, maximum = 10000)]
    pub upload_speed: Option<f64>,
    /// Accepted, not applied on OpenWrt (docs/api/isp.md).
    #[allow(dead_code)]
    pub hotspot_profile: Option<String>,
    pub pppoe_profile: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Authorize {
    pub username: String,
    pub mac_address: String,
    pub ip_address: Option<String>,
    pub package_info: Option<PackageInfo>,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserOnly {
    pub username: String,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SecretCreate {
    pub username: String,
    pub password: String,
    pub package_info: Option<PackageInfo>,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BridgeCreate {
    pub bridge_name: String,
    pub auto_mac: Option<bool>,
    pub admin_mac: Option<String>,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AddPort {
    pub bridge_name: String,
    pub interface: String,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PppoeServer {
    pub interface: String,
    pub service_name: String,
    pub local_address: String,
    pub remote_address: String,
    /// Accepted, not applied on OpenWrt (docs/api/isp.md).
    #[allow(dead_code)]
    pub use_encryption: Option<bool>,
    pub authentication: Option<String>,
    pub keepalive_timeout: Option<u32>,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct HotspotServer {
    pub interface: String,
    pub hotspot_name: String,
    pub address_pool: String,
    /// Accepted, not applied on OpenWrt (docs/api/isp.md).
    #[allow(dead_code)]
    pub profile: Option<String>,
    /// Accepted, not applied on OpenWrt (docs/api/isp.md).
    #[allow(dead_code)]
    pub addresses_per_mac: Option<u32>,
    pub idle_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub device_name: Option<String>,
}

/// The body of `/network/setup`: `username`, `password`, `host` and `port` log in to a MikroTik
/// and are ignored (the router is `device_name`, else the fleet's only router).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NetworkSetup {
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub ip_pool_range: String,
    pub network_address: String,
    pub device_name: Option<String>,
}

/// What the document's `/network/setup` creates.
pub const SETUP_BRIDGE: &str = "f2net_bridge";
pub const SETUP_POOL: &str = "f2net_pool";

type Body<T> = Result<Json<T>, JsonRejection>;
type Wait = Result<Query<WaitParam>, QueryRejection>;

fn wait(q: Wait) -> Result<Duration, IspError> {
    let Query(q) =
        q.map_err(|e| IspError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    Ok(wait_of(q.wait)?)
}

/// `device_name`, else the fleet's only router.
async fn router_or_only(state: &ApiState, given: Option<String>) -> Result<String, IspError> {
    if let Some(d) = given.filter(|d| !d.trim().is_empty()) {
        return Ok(d);
    }
    state
        .actions
        .only_router()
        .await
        .map_err(|e| IspError::from(crate::api::ApiError::from(e)))?
        .ok_or_else(|| {
            IspError::bad_request("device_name is required when the fleet has more than one router")
        })
}

/// A speed of `package_info` in kbit/s (the limits routes' rule: more than 0 and at most
/// [`crate::api::limits::MAX_MBPS`] Mbit/s).
fn kbps(what: &str, v: Option<f64>) -> Result<u32, IspError> {
    crate::api::limits::speed_kbit(
        &format!("package_info.{what}"),
        v.map(serde_json::Value::from).as_ref(),
    )
}

/// A MikroTik duration (`none`, `30s`, `2m`, `1h`, `1d`, or bare seconds) in whole minutes,
/// rounded up; `none` is 0.
pub fn minutes(what: &str, v: Option<&str>) -> Result<u32, IspError> {
    let v = v.unwrap_or("none").trim();
    if v.eq_ignore_ascii_case("none") {
        return Ok(0);
    }
    let bad = || {
        IspError::bad_request(format!(
            "{what} must be none or a duration like 30s, 5m, 1h, 1d (got {v:?})"
        ))
    };
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    u32::try_from(secs.div_ceil(60)).map_err(|_| bad())
}

/// An admin's write request, checked: who asks, with its `?wait=`.
struct Write {
    state: ApiState,
    caller: Caller,
    headers: HeaderMap,
    wait: Duration,
}

/// Checks the admin key, then `?wait=`, then the body (in that order: the first error answers).
async fn begin<T>(
    state: ApiState,
    headers: HeaderMap,
    q: Wait,
    b: Body<T>,
) -> Result<(Write, T), IspError> {
    let caller = admin(&state, &headers).await?;
    let (wait, b) = (wait(q)?, json_body(b)?);
    let w = Write {
        state,
        caller,
        headers,
        wait,
    };
    Ok((w, b))
}

impl Write {
    /// Sends `kind` to `router` and answers in the document's shape (see the module doc).
    async fn act(
        &self,
        router: String,
        kind: ActionKind,
        (message, mut extra): (String, Value),
    ) -> Result<Response, IspError> {
        kind.validate().map_err(IspError::bad_request)?;
        let (state, caller, headers) = (&self.state, &self.caller, &self.headers);
        let row = match submit(
            state,
            caller,
            headers,
            router,
            kind,
            self.wait,
            not_done_answer,
        )
        .await?
        {
            Ok(row) => row,
            Err(answer) => return Ok(answer),
        };
        extra["message"] = json!(message);
        extra["router"] = json!(row.router);
        extra["action_id"] = json!(row.id);
        extra["output"] = json!(row.output.unwrap_or_default());
        Ok(Json(json!({"success": true, "data": extra, "timestamp": iso_now()})).into_response())
    }
}

/// [`not_done_isp`], but a failure is 404 when the router's last line says something "does not
/// exist" (with that line as the error), else 400 with the router's whole output.
fn not_done_answer(row: &ActionRow) -> Option<Response> {
    let (mut status, mut body) = not_done_isp(row)?;
    if !matches!(
        row.state.as_str(),
        "queued" | "sent" | "refused" | "expired"
    ) {
        let output = row.output.clone().unwrap_or_default();
        let last = output.lines().last().unwrap_or_default();
        (status, body["error"]) = if last.contains("does not exist") {
            (StatusCode::NOT_FOUND, json!(last))
        } else {
            (StatusCode::BAD_REQUEST, json!(output))
        };
    }
    Some((status, Json(body)).into_response())
}

const MAC_ROUTER_SQL: &str = "SELECT r.name, l.ip FROM leases l JOIN routers r ON r.id = l.router_id \
     WHERE l.mac = ?1 AND (?2 IS NULL OR r.name = ?2 COLLATE NOCASE) ORDER BY l.updated_ms DESC LIMIT 1";
const MAC_STATION_SQL: &str =
    "SELECT r.name FROM station_samples_all s JOIN routers r ON r.id = s.router_id \
     WHERE s.mac = ?1 AND (?2 IS NULL OR r.name = ?2 COLLATE NOCASE) ORDER BY s.ts_ms DESC LIMIT 1";

/// The router that has `mac` (a DHCP lease, else a Wi-Fi station), restricted to `device` when
/// given, with the lease's address. 404 when no router has it.
async fn router_of_mac(
    state: &ApiState,
    mac: String,
    device: Option<String>,
) -> Result<(String, Option<String>), IspError> {
    let (m, d) = (mac.clone(), device.clone());
    let found = super::read(state, move |c| {
        let lease: Option<(String, Option<String>)> = c
            .prepare_cached(MAC_ROUTER_SQL)
            .and_then(|mut st| {
                st.query_row(rusqlite::params![m, d], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(super::db)?;
        if lease.is_some() {
            return Ok(lease);
        }
        c.prepare_cached(MAC_STATION_SQL)
            .and_then(|mut st| {
                st.query_row(rusqlite::params![m, d], |r| r.get(0))
                    .optional()
            })
            .map(|r: Option<String>| r.map(|n| (n, None)))
            .map_err(super::db)
    })
    .await?;
    found.ok_or_else(|| {
        IspError::not_found(match device {
            Some(d) => {
                format!("mac_address {mac} is not on router {d} (no DHCP lease or Wi-Fi station)")
            }
            None => {
                format!("mac_address {mac} is not on any router (no DHCP lease or Wi-Fi station)")
            }
        })
    })
}

/// The newest done action of `kind` whose `username` is `user`.
async fn last_done(
    state: &ApiState,
    kind: &str,
    user: &str,
) -> Result<Option<ActionRow>, IspError> {
    let rows = state
        .actions
        .list(ActionFilter {
            router_id: None,
            state: Some("done".into()),
            kind: Some(kind.into()),
            before_id: None,
            limit: 500,
        })
        .await
        .map_err(|e| IspError::from(crate::api::ApiError::from(e)))?;
    Ok(rows
        .into_iter()
        .find(|r| r.params[kind]["username"] == user))
}

/// The answers of this group's routes besides [`IspActionAnswers`] (OpenAPI).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the document, never built
enum UciWriteAnswers {
    #[response(
        status = 200,
        description = "Done: `{success: true, data: {message, router, action_id, output, ...}, timestamp}`"
    )]
    Done,
    #[response(status = 400, description = "Bad input or a duplicate")]
    BadInput(ErrorEnvelope),
    #[response(
        status = 404,
        description = "Unknown router, user, MAC, bridge, pool or interface"
    )]
    Unknown(ErrorEnvelope),
    #[response(
        status = 409,
        description = "Refused by the router: family not allowed or package not installed"
    )]
    Refused(ErrorEnvelope),
}

fn check_len(what: &str, v: &str) -> Result<(), IspError> {
    if v.chars().count() > MAX_TEXT_CHARS {
        return Err(IspError::bad_request(format!("{what} is too long")));
    }
    Ok(())
}

/// Authorizes a client on the router's openNDS portal (admin).
#[utoipa::path(post, path = "/api/mikrotik/hotspot/authorize",
    operation_id = "isp_hotspot_authorize", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = Authorize,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn hotspot_authorize(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<Authorize>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    routerstats_shared::action::check_user(&b.username).map_err(IspError::bad_request)?;
    check_mac(&b.mac_address).map_err(IspError::bad_request)?;
    let mac = b.mac_address.to_ascii_lowercase();
    let pkg = b.package_info.unwrap_or_default();
    let (down, up) = (
        kbps("download_speed", pkg.download_speed)?,
        kbps("upload_speed", pkg.upload_speed)?,
    );
    let (router, lease_ip) = router_of_mac(&w.state, mac.clone(), b.device_name).await?;
    if let (Some(given), Some(leased)) = (&b.ip_address, &lease_ip) {
        if given != leased {
            return Err(IspError::bad_request(format!(
                "ip_address {given} is not the address of {mac} on router {router} (its lease has {leased})"
            )));
        }
    }
    let message = format!("User {} authorized on hotspot", b.username);
    let extra = json!({"username": b.username, "mac_address": mac, "download_kbps": down, "upload_kbps": up});
    let kind = ActionKind::HotspotAuthorize {
        username: b.username,
        mac,
        ip: b.ip_address,
        download_kbps: down,
        upload_kbps: up,
    };
    w.act(router, kind, (message, extra)).await
}

/// Sends a client authorized through this API back to the portal (admin).
#[utoipa::path(post, path = "/api/mikrotik/hotspot/deauthorize",
    operation_id = "isp_hotspot_deauthorize", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = UserOnly,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn hotspot_deauthorize(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<UserOnly>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    routerstats_shared::action::check_user(&b.username).map_err(IspError::bad_request)?;
    let row = last_done(&w.state, "hotspot_authorize", &b.username)
        .await?
        .filter(|r| {
            b.device_name
                .as_deref()
                .is_none_or(|d| r.router.eq_ignore_ascii_case(d))
        })
        .ok_or_else(|| {
            IspError::not_found(format!(
                "unknown user {}: not authorized on a hotspot through this API",
                b.username
            ))
        })?;
    let mac = row.params["hotspot_authorize"]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let message = format!("User {} deauthorized from hotspot", b.username);
    let extra = json!({"username": b.username, "mac_address": mac});
    let kind = ActionKind::HotspotDeauthorize {
        username: b.username,
        mac,
    };
    w.act(row.router, kind, (message, extra)).await
}

/// Sets openNDS's interface, name and idle timeout (admin).
#[utoipa::path(post, path = "/api/mikrotik/hotspot/server/configure",
    operation_id = "isp_hotspot_configure", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = HotspotServer,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn hotspot_configure(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<HotspotServer>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    let idle = minutes("idle_timeout", b.idle_timeout.as_deref())?;
    minutes("keepalive_timeout", b.keepalive_timeout.as_deref())?;
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!(
        "Hotspot server {} configured on {}",
        b.hotspot_name, b.interface
    );
    let extra = json!({"interface": b.interface, "hotspot_name": b.hotspot_name, "address_pool": b.address_pool});
    let kind = ActionKind::HotspotConfigure {
        interface: b.interface,
        name: b.hotspot_name,
        address_pool: b.address_pool,
        idle_timeout_min: idle,
    };
    w.act(router, kind, (message, extra)).await
}

/// Adds a PPPoE account to chap-secrets and pap-secrets (admin).
#[utoipa::path(post, path = "/api/mikrotik/pppoe/secret/create",
    operation_id = "isp_pppoe_secret_create", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = SecretCreate,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn pppoe_secret_create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<SecretCreate>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    if let Some(p) = &b.package_info {
        check_len(
            "package_info.pppoe_profile",
            p.pppoe_profile.as_deref().unwrap_or_default(),
        )?;
    }
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!("PPPoE secret {} created", b.username);
    let extra = json!({"username": b.username});
    let kind = ActionKind::PppoeSecretCreate {
        username: b.username,
        password: b.password,
    };
    w.act(router, kind, (message, extra)).await
}

/// Removes a PPPoE account (admin).
#[utoipa::path(post, path = "/api/mikrotik/pppoe/secret/remove",
    operation_id = "isp_pppoe_secret_remove", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = UserOnly,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn pppoe_secret_remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<UserOnly>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    routerstats_shared::action::check_user(&b.username).map_err(IspError::bad_request)?;
    let router = match b.device_name {
        Some(d) => d,
        None => match last_done(&w.state, "pppoe_secret_create", &b.username).await? {
            Some(r) => r.router,
            None => router_or_only(&w.state, None).await?,
        },
    };
    let message = format!("PPPoE secret {} removed", b.username);
    let extra = json!({"username": b.username});
    let kind = ActionKind::PppoeSecretRemove {
        username: b.username,
    };
    w.act(router, kind, (message, extra)).await
}

/// Sets rp-pppoe-server on an interface (admin).
#[utoipa::path(post, path = "/api/mikrotik/pppoe/server/configure",
    operation_id = "isp_pppoe_server_configure", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = PppoeServer,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn pppoe_server_configure(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<PppoeServer>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    if let Some(a) = &b.authentication {
        for m in a.split(',').map(str::trim) {
            if !["pap", "chap", "mschap1", "mschap2"].contains(&m) {
                return Err(IspError::bad_request(format!(
                    "authentication must list pap, chap, mschap1, mschap2 (got {m:?})"
                )));
            }
        }
    }
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!("PPPoE server configured on {}", b.interface);
    let extra = json!({"interface": b.interface, "service_name": b.service_name});
    let kind = ActionKind::PppoeServerConfigure {
        interface: b.interface,
        service_name: b.service_name,
        local_address: b.local_address,
        remote: b.remote_address,
        timeout_s: b.keepalive_timeout.unwrap_or(60),
    };
    w.act(router, kind, (message, extra)).await
}

/// Creates a bridge device in UCI network (admin).
#[utoipa::path(post, path = "/api/mikrotik/bridge/create",
    operation_id = "isp_bridge_create", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = BridgeCreate,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn bridge_create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<BridgeCreate>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    // auto_mac false with an admin MAC sets the bridge's MAC; the all-zero MAC means none.
    let mac = match (b.auto_mac, b.admin_mac) {
        (Some(false), Some(m)) if m != "00:00:00:00:00:00" => Some(m),
        _ => None,
    };
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!("Bridge {} created", b.bridge_name);
    let extra = json!({"bridge_name": b.bridge_name});
    let kind = ActionKind::BridgeCreate {
        name: b.bridge_name,
        mac,
    };
    w.act(router, kind, (message, extra)).await
}

/// Adds an interface to a bridge (admin).
#[utoipa::path(post, path = "/api/mikrotik/bridge/add-port",
    operation_id = "isp_bridge_add_port", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = AddPort,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn bridge_add_port(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<AddPort>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!(
        "Interface {} added to bridge {}",
        b.interface, b.bridge_name
    );
    let extra = json!({"bridge_name": b.bridge_name, "interface": b.interface});
    let kind = ActionKind::BridgeAddPort {
        bridge: b.bridge_name,
        port: b.interface,
    };
    w.act(router, kind, (message, extra)).await
}

/// Creates f2net_bridge with an address and the f2net_pool DHCP pool (admin).
#[utoipa::path(post, path = "/api/mikrotik/network/setup",
    operation_id = "isp_network_setup", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = NetworkSetup,
    params(WaitParam),
    responses(IspActionAnswers, UciWriteAnswers))]
pub async fn network_setup(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Wait,
    b: Body<NetworkSetup>,
) -> Result<Response, IspError> {
    let (w, b) = begin(state, headers, q, b).await?;
    let _ignored = (&b.username, &b.password, &b.host, b.port);
    let (start, end) = b
        .ip_pool_range
        .split_once('-')
        .map(|(a, z)| (a.trim().to_string(), z.trim().to_string()))
        .ok_or_else(|| {
            IspError::bad_request(
                "ip_pool_range must be FIRST-LAST, like 172.31.0.2-172.31.255.254",
            )
        })?;
    let router = router_or_only(&w.state, b.device_name).await?;
    let message = format!("Bridge {SETUP_BRIDGE} and address pool {SETUP_POOL} created");
    let extra = json!({"bridge_name": SETUP_BRIDGE, "pool_name": SETUP_POOL, "ip_pool_range": b.ip_pool_range, "network_address": b.network_address});
    let kind = ActionKind::NetworkSetup {
        bridge: SETUP_BRIDGE.into(),
        pool: SETUP_POOL.into(),
        address: b.network_address,
        start,
        end,
    };
    w.act(router, kind, (message, extra)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_minutes() {
        assert_eq!(minutes("t", Some("none")).unwrap(), 0);
        assert_eq!(minutes("t", None).unwrap(), 0);
        assert_eq!(minutes("t", Some("2m")).unwrap(), 2);
        assert_eq!(minutes("t", Some("90s")).unwrap(), 2);
        assert_eq!(minutes("t", Some("1h")).unwrap(), 60);
        for bad in ["", "x", "5w", "-1m", "99999999999999d"] {
            assert!(minutes("t", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn speeds_in_kbps() {
        assert_eq!(kbps("d", Some(10.0)).unwrap(), 10_000);
        assert_eq!(kbps("d", Some(0.5)).unwrap(), 500);
        for bad in [Some(0.0), Some(-1.0), Some(1e9), Some(f64::NAN), None] {
            assert!(kbps("d", bad).is_err(), "{bad:?}");
        }
    }
}
