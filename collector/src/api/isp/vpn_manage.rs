//! The ISP middleware's OpenVPN server and client-management routes, each an `openvpn` fleet
//! action on one router (its allow list must name `openvpn`; see agent/src/actions/openvpn.rs):
//!
//! - `GET /api/vpn/server/logs?lines=` (1-1000, default 100), `GET /api/vpn/server/config`,
//!   `GET /api/vpn/server/ip`, `GET /api/vpn/client/template` (read key): the router reads its
//!   server config (inline keys redacted), makes a client template, and returns its newest
//!   OpenVPN log lines. `server/ip` is the template's `remote` (the router's
//!   `option openvpn_remote`), else the address the router connects to the collector from.
//! - `POST /api/vpn/clients/create {client_name, email?, device_name?}` (admin): the router's
//!   easy-rsa issues the client certificate; 201 with `{client_name, email, device_name, serial,
//!   expires_at, config_url, action_id}`. The `.ovpn` is kept in a 0600 file of the collector.
//! - `GET /api/vpn/clients/{name}/config?device=` (admin): that `.ovpn` (inline `<ca>`, `<cert>`,
//!   `<key>`, and the server's `<tls-crypt>`/`<tls-auth>`) as a file download.
//! - `POST /api/vpn/clients/{name}/revoke {device_name?}` (admin): `easyrsa revoke`, a new CRL
//!   where the server's `crl-verify` reads it, the client's sessions ended; the stored `.ovpn` goes.
//! - `POST /api/vpn/clients/{name}/disconnect {device_name?}` (admin): `kill <name>` on the
//!   server's management interface.
//!
//! The router is `device` (GET) or `device_name` (POST body), else the fleet's only router.
//! Every route takes `?wait=` (0-60 s, default 30): a router that has not answered by then gives
//! 202 with the action id. The four GET routes read the router now: a router that is not
//! connected gives 409 at once (nothing is queued). Errors use the middleware's shape `{success: false, error, timestamp}`
//! (plus `action_id` once an action exists): 400 bad input, a duplicate create or a router that
//! failed (no openvpn/easy-rsa, no `crl-verify`...), 404 unknown device, client or session, 409
//! the router's allow list has no `openvpn`, 504 no answer before the action's deadline.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use routerstats_shared::action::{check_client_name, ActionDetail, ActionKind, OvpnServerDetail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{isp_query, json_body, stamped, IspError, Params, RawQuery};
use crate::actions::ovpn_clients;
use crate::api::fleet_action::{not_done, submit, IspActionAnswers};
use crate::api::times::iso_now;
use crate::api::{require_role, ApiState, Caller};
use crate::pki::tokens::Role;
use crate::store::ActionRow;

/// Default `lines` of `/api/vpn/server/logs`.
pub const DEFAULT_LOG_LINES: i64 = 100;
/// Longest accepted e-mail address.
const MAX_EMAIL: usize = 254;

fn wait_param(p: &Params) -> Result<Duration, IspError> {
    Ok(Duration::from_secs(p.int("wait", 30, 0, 60)? as u64))
}

isp_query! {
    /// The query of `/api/vpn/server/logs`.
    LogsQuery {
        lines: i64 = |p: &Params| p.int("lines", DEFAULT_LOG_LINES, 1, i64::from(routerstats_shared::action::MAX_LOG_LINES)),
        device: Option<String> = |p: &Params| p.text("device"),
        wait: Duration = wait_param,
    }
}

isp_query! {
    /// The query of the other OpenVPN server routes and of a client's config.
    DeviceQuery {
        device: Option<String> = |p: &Params| p.text("device"),
        wait: Duration = wait_param,
    }
}

isp_query! {
    /// The query of the POST routes.
    WaitQuery {
        wait: Duration = wait_param,
    }
}

/// Body of `POST /api/vpn/clients/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = isp::VpnCreateClient)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// The certificate's common name: 1-64 of A-Z a-z 0-9 _ -.
    pub client_name: String,
    /// Echoed back; the certificate's subject is the common name only (easy-rsa `cn_only`).
    pub email: Option<String>,
    /// The router (default: the fleet's only router).
    pub device_name: Option<String>,
}

/// Body of the revoke and disconnect routes (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = isp::VpnClientTarget)]
#[serde(deny_unknown_fields)]
pub struct ClientTarget {
    pub device_name: Option<String>,
}

/// `data` of `POST /api/vpn/clients/create`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClientCreated)]
pub struct ClientCreated {
    pub message: String,
    pub client_name: String,
    pub email: Option<String>,
    pub device_name: String,
    /// easy-rsa's serial (hex).
    pub serial: Option<String>,
    /// The certificate's expiry, RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// Where an admin downloads the `.ovpn`.
    pub config_url: String,
    pub action_id: i64,
}

/// The answers of the four GET routes besides their 200 (OpenAPI).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the document, never built
enum ServerReadAnswers {
    #[response(
        status = 202,
        description = "Requested; the router has not answered yet"
    )]
    Pending,
    #[response(status = 400, description = "Bad parameter")]
    BadInput(ErrorEnvelope),
    #[response(status = 401, description = "Missing or unknown API key")]
    Unauthorized(ErrorEnvelope),
    #[response(status = 404, description = "Unknown device")]
    Unknown(ErrorEnvelope),
    #[response(
        status = 409,
        description = "The router's allow list has no `openvpn`, it is not connected, or it has no OpenVPN server config or easy-rsa"
    )]
    NotAllowed,
    #[response(status = 504, description = "The router did not answer in time")]
    Expired,
}

/// The answer of an action that did not end `done`, in the middleware's error shape (202 while
/// the router has not answered).
fn not_done_answer(row: &ActionRow) -> Option<Response> {
    let (mut status, mut body) = not_done(row)?;
    if row.state == "failed" {
        let out = row.output.as_deref().unwrap_or_default();
        status = if out.contains("no client named") || out.contains("is not connected") {
            StatusCode::NOT_FOUND
        } else if out.contains("no OpenVPN server config") || out.contains("is not installed") {
            // The router cannot do it as it stands (as the other families' "package not
            // installed"): the request itself was fine.
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
    }
    body["success"] = json!(false);
    body["timestamp"] = json!(iso_now());
    Some((status, Json(body)).into_response())
}

/// The router an action goes to: the given name, else the fleet's only router.
async fn router_of(state: &ApiState, given: Option<String>) -> Result<String, IspError> {
    if let Some(name) = given
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    {
        return Ok(name);
    }
    state
        .actions
        .only_router()
        .await
        .map_err(crate::api::ApiError::from)?
        .ok_or_else(|| {
            IspError::bad_request(
                "give the router as device (query) or device_name (body): the fleet does not have exactly one router",
            )
        })
}

fn detail_of(row: &ActionRow) -> Option<ActionDetail> {
    row.result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// What the router said about its server (the four GET routes).
struct ServerInfo {
    row: ActionRow,
    d: OvpnServerDetail,
}

async fn server_info(
    caller: &Caller,
    state: &ApiState,
    headers: &HeaderMap,
    device: Option<String>,
    log_lines: u32,
    wait: Duration,
) -> Result<Result<ServerInfo, Response>, IspError> {
    let router = router_of(state, device).await?;
    // A read is wanted now: an offline router's is not queued for later.
    let id = state
        .actions
        .router_id(router.clone())
        .await
        .map_err(crate::api::ApiError::from)?;
    if state.actions.peer_ip(id).is_none() {
        return Err(IspError::new(
            StatusCode::CONFLICT,
            format!("router {router} is not connected; its OpenVPN server cannot be read now"),
        ));
    }
    let kind = ActionKind::OvpnServerInfo { log_lines };
    let row = match submit(state, caller, headers, router, kind, wait, not_done_answer).await? {
        Ok(row) => row,
        Err(resp) => return Ok(Err(resp)),
    };
    match detail_of(&row) {
        Some(ActionDetail::OvpnServer(d)) => Ok(Ok(ServerInfo { row, d: *d })),
        _ => Err(IspError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the router's answer has no OpenVPN server details",
        )),
    }
}

fn stamped_json(status: StatusCode, data: serde_json::Value) -> Response {
    (status, Json(stamped(data))).into_response()
}

/// What the four GET routes read from their query: the router, the log lines wanted, the wait.
struct ServerRead {
    device: Option<String>,
    log_lines: u32,
    wait: Duration,
}

impl ServerRead {
    /// `/api/vpn/server/logs`' query ([`LogsQuery`]).
    fn logs(q: RawQuery) -> Result<ServerRead, IspError> {
        let q = LogsQuery::parse(q)?;
        Ok(ServerRead {
            device: q.device,
            log_lines: u32::try_from(q.lines).unwrap_or(0),
            wait: q.wait,
        })
    }

    /// The other GET routes' query ([`DeviceQuery`]): no log lines.
    fn device(q: RawQuery) -> Result<ServerRead, IspError> {
        let q = DeviceQuery::parse(q)?;
        Ok(ServerRead {
            device: q.device,
            log_lines: 0,
            wait: q.wait,
        })
    }
}

/// One of the four GET routes (read key): its query parsed by `parse`, the router's server
/// read, and `answer`'s JSON of it in the stamped envelope (or the pending/failed answer).
async fn server_read(
    state: &ApiState,
    headers: &HeaderMap,
    q: RawQuery,
    parse: fn(RawQuery) -> Result<ServerRead, IspError>,
    answer: impl FnOnce(&ApiState, ServerInfo) -> serde_json::Value,
) -> Result<Response, IspError> {
    let caller = require_role(state, headers, Role::Read).await?;
    let r = parse(q)?;
    let info = match server_info(&caller, state, headers, r.device, r.log_lines, r.wait).await? {
        Ok(i) => i,
        Err(resp) => return Ok(resp),
    };
    Ok(stamped_json(StatusCode::OK, answer(state, info)))
}

/// The router and wait of the OpenVPN server reads (for the document; the handlers parse them
/// with `DeviceQuery`/`LogsQuery`, which also take the ISP group's cache busters).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // a description for the document, never built
struct ServerReadQuery {
    /// Router name, 1 to 253 characters. Documented as required: it may be left out only when
    /// the fleet has exactly one router (400 otherwise)
    #[param(
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    device: String,
    /// Seconds to wait for the router (0-60, default 30)
    #[param(minimum = 0, maximum = 60)]
    wait: Option<i64>,
}

/// The newest OpenVPN log lines of a router (read key).
#[utoipa::path(get, path = "/api/vpn/server/logs", operation_id = "isp_vpn_server_logs", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(("lines" = Option<i64>, Query, description = "1-1000, default 100", minimum = 1, maximum = 1000),
           ServerReadQuery),
    responses(ServerReadAnswers, (status = 200, description = "`{device_name, lines, logs, source, log_error, action_id}`")))]
pub async fn server_logs(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    server_read(&state, &headers, q, ServerRead::logs, |_, info| {
        json!({
            "device_name": info.row.router,
            "lines": info.d.logs.len(),
            "logs": info.d.logs,
            "source": info.d.log_source,
            "log_error": info.d.log_error,
            "action_id": info.row.id,
        })
    })
    .await
}

/// A router's OpenVPN server configuration, inline keys redacted (read key).
#[utoipa::path(get, path = "/api/vpn/server/config", operation_id = "isp_vpn_server_config", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(ServerReadQuery),
    responses(ServerReadAnswers, (status = 200, description = "`{device_name, config_file, port, proto, config: [lines], action_id}`")))]
pub async fn server_config(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    server_read(&state, &headers, q, ServerRead::device, |_, info| {
        json!({
            "device_name": info.row.router,
            "config_file": info.d.config_file,
            "port": info.d.port,
            "proto": info.d.proto,
            "config": info.d.config,
            "action_id": info.row.id,
        })
    })
    .await
}

/// The address clients connect to (read key).
#[utoipa::path(get, path = "/api/vpn/server/ip", operation_id = "isp_vpn_server_ip", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(ServerReadQuery),
    responses(ServerReadAnswers, (status = 200, description = "`{device_name, server_ip, port, proto, source}`; source `template` (the router's openvpn_remote) or `collector` (the address it connects from)")))]
pub async fn server_ip(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    server_read(&state, &headers, q, ServerRead::device, |state, info| {
        let (ip, source) = match info.d.remote {
            Some(r) => (Some(r), "template"),
            None => (
                state
                    .actions
                    .peer_ip(info.row.router_id)
                    .map(|ip| ip.to_string()),
                "collector",
            ),
        };
        json!({
            "device_name": info.row.router,
            "server_ip": ip,
            "port": info.d.port,
            "proto": info.d.proto,
            "source": source,
            "action_id": info.row.id,
        })
    })
    .await
}

/// A client configuration template without certificates (read key).
#[utoipa::path(get, path = "/api/vpn/client/template", operation_id = "isp_vpn_client_template", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(ServerReadQuery),
    responses(ServerReadAnswers, (status = 200, description = "`{device_name, template, action_id}`")))]
pub async fn client_template(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    server_read(&state, &headers, q, ServerRead::device, |state, info| {
        let template = match (&info.d.remote, state.actions.peer_ip(info.row.router_id)) {
            (None, Some(ip)) => ovpn_clients::with_remote(
                &info.d.template,
                &ip.to_string(),
                info.d.port,
                &info.d.proto,
            ),
            _ => info.d.template,
        };
        json!({ "device_name": info.row.router, "template": template, "action_id": info.row.id })
    })
    .await
}

fn client_name(name: &str) -> Result<(), IspError> {
    check_client_name(name).map_err(IspError::bad_request)
}

/// The `{name}` of a client route, checked as it stands (no trimming), as the routes' OpenAPI pattern
/// declares it.
fn client_path(p: Result<Path<String>, PathRejection>) -> Result<String, IspError> {
    let Path(name) = p.map_err(|e| {
        IspError::bad_request(format!(
            "invalid client name in the path: {}",
            e.body_text()
        ))
    })?;
    client_name(&name)?;
    Ok(name)
}

fn check_email(e: &str) -> Result<(), IspError> {
    let ok = e.len() <= MAX_EMAIL
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@')
            .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(IspError::bad_request(format!(
            "email must be an address like client@example.com of at most {MAX_EMAIL} characters"
        )))
    }
}

/// `YYMMDDHHMMSSZ` (or `YYYYMMDDHHMMSSZ`) as RFC 3339.
pub fn x509_time(t: &str) -> Option<String> {
    let d = t.strip_suffix('Z')?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match d.len() {
        12 => {
            let yy: u32 = d[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &d[2..])
        }
        14 => (d[..4].parse().ok()?, &d[4..]),
        _ => return None,
    };
    Some(format!(
        "{year:04}-{}-{}T{}:{}:{}Z",
        &rest[0..2],
        &rest[2..4],
        &rest[4..6],
        &rest[6..8],
        &rest[8..10]
    ))
}

/// Issues a client certificate on a router (admin).
#[utoipa::path(post, path = "/api/vpn/clients/create", operation_id = "isp_vpn_clients_create", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body = CreateClient,
    params(("wait" = Option<i64>, Query, description = "Seconds to wait (0-60, default 30)", minimum = 0, maximum = 60)),
    responses(IspActionAnswers, (status = 201, description = "Issued: `{client_name, email, device_name, serial, expires_at, config_url, action_id}`"),
        (status = 400, description = "Bad name or e-mail, the client exists, or the router cannot issue (no easy-rsa PKI...)", body = ErrorEnvelope),
        (status = 404, description = "Unknown device", body = ErrorEnvelope),
        (status = 409, description = "The router's allow list has no `openvpn`, or it has no OpenVPN server config or easy-rsa")))]
pub async fn create_client(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
    b: Result<Json<CreateClient>, JsonRejection>,
) -> Result<Response, IspError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let q = WaitQuery::parse(q)?;
    let b = json_body(b)?;
    client_name(&b.client_name)?;
    let email = b
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if let Some(e) = &email {
        check_email(e)?;
    }
    let router = router_of(&state, b.device_name).await?;
    let kind = ActionKind::OvpnCreateClient {
        name: b.client_name.clone(),
    };
    let row = match submit(
        &state,
        &caller,
        &headers,
        router,
        kind,
        q.wait,
        not_done_answer,
    )
    .await?
    {
        Ok(row) => row,
        Err(resp) => return Ok(resp),
    };
    let (serial, expires) = match detail_of(&row) {
        Some(ActionDetail::OvpnClient {
            serial, expires, ..
        }) => (serial, expires.as_deref().and_then(x509_time)),
        _ => (None, None),
    };
    let data = ClientCreated {
        message: format!("Client {} created successfully", b.client_name),
        config_url: format!(
            "/api/vpn/clients/{}/config?device={}",
            b.client_name, row.router
        ),
        client_name: b.client_name,
        email,
        device_name: row.router,
        serial,
        expires_at: expires,
        action_id: row.id,
    };
    Ok((StatusCode::CREATED, Json(stamped(data))).into_response())
}

/// A client's `.ovpn` as a file download (admin; never logged).
#[utoipa::path(get, path = "/api/vpn/clients/{name}/config", operation_id = "isp_vpn_clients_name_config", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Client name: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
           ("device" = Option<String>, Query, description = "Router (default: the one that issued it); at most 253 characters", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")),
    responses((status = 200, description = "The `.ovpn` with inline certificates and key", content_type = "application/x-openvpn-profile"),
        (status = 400, description = "Bad name, or several routers issued this name: give device", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 403, description = "Not an admin key", body = ErrorEnvelope),
        (status = 404, description = "No configuration of this client on the collector", body = ErrorEnvelope)))]
pub async fn client_config(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
) -> Result<Response, IspError> {
    require_role(&state, &headers, Role::Admin).await?;
    let name = client_path(name)?;
    let q = DeviceQuery::parse(q)?;
    let data_dir = state.actions.settings().data_dir.clone();
    let router_id = match q.device {
        Some(d) => Some(
            state
                .actions
                .router_id(d)
                .await
                .map_err(crate::api::ApiError::from)?,
        ),
        None => {
            let (dir, n) = (data_dir.clone(), name.clone());
            let ids = tokio::task::spawn_blocking(move || ovpn_clients::routers_with(&dir, &n))
                .await
                .unwrap_or_default();
            if ids.len() > 1 {
                return Err(IspError::bad_request(format!(
                    "{} routers issued a client named {name}: give device",
                    ids.len()
                )));
            }
            ids.first().copied()
        }
    };
    let n = name.clone();
    let text = match router_id {
        Some(id) => tokio::task::spawn_blocking(move || ovpn_clients::read(&data_dir, id, &n))
            .await
            .ok()
            .flatten(),
        None => None,
    }
    .ok_or_else(|| {
        IspError::not_found(format!(
            "no configuration of client {name} on the collector (create it with POST /api/vpn/clients/create)"
        ))
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-openvpn-profile".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.ovpn\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        text,
    )
        .into_response())
}

/// Revoke or disconnect: the client name, its router, the answer.
async fn client_action(
    state: &ApiState,
    headers: &HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
    b: Option<Json<Option<ClientTarget>>>,
    make: fn(String) -> ActionKind,
    done: &str,
) -> Result<Response, IspError> {
    let caller = require_role(state, headers, Role::Admin).await?;
    let name = client_path(name)?;
    let q = WaitQuery::parse(q)?;
    let b = b.and_then(|Json(b)| b).unwrap_or_default();
    let router = router_of(state, b.device_name).await?;
    let row = match submit(
        state,
        &caller,
        headers,
        router,
        make(name.clone()),
        q.wait,
        not_done_answer,
    )
    .await?
    {
        Ok(row) => row,
        Err(resp) => return Ok(resp),
    };
    Ok(stamped_json(
        StatusCode::OK,
        json!({
            "message": format!("Client {name} {done} successfully"),
            "client_name": name,
            "device_name": row.router,
            "detail": row.output,
            "action_id": row.id,
        }),
    ))
}

/// Revokes a client's certificate and reloads the CRL (admin).
#[utoipa::path(post, path = "/api/vpn/clients/{name}/revoke", operation_id = "isp_vpn_clients_name_revoke", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body(content = Option<ClientTarget>, description = "Optional `{device_name}`"),
    params(("name" = String, Path, description = "Client name: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
           ("wait" = Option<i64>, Query, description = "Seconds to wait (0-60, default 30)", minimum = 0, maximum = 60)),
    responses(IspActionAnswers, (status = 200, description = "`{message, client_name, device_name, detail, action_id}`"),
        (status = 400, description = "Bad name, or the router cannot revoke (no crl-verify...)", body = ErrorEnvelope),
        (status = 404, description = "Unknown device, or no valid certificate of this name"),
        (status = 409, description = "The router's allow list has no `openvpn`, or it has no OpenVPN server config or easy-rsa")))]
pub async fn revoke_client(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
    b: Option<Json<Option<ClientTarget>>>,
) -> Result<Response, IspError> {
    let make = |name| ActionKind::OvpnRevokeClient { name };
    client_action(&state, &headers, name, q, b, make, "revoked").await
}

/// Ends a client's sessions through the management interface (admin).
#[utoipa::path(post, path = "/api/vpn/clients/{name}/disconnect", operation_id = "isp_vpn_clients_name_disconnect", tag = "isp",
    security(("api_key" = []), ("bearer" = [])),
    request_body(content = Option<ClientTarget>, description = "Optional `{device_name}`"),
    params(("name" = String, Path, description = "Client name: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
           ("wait" = Option<i64>, Query, description = "Seconds to wait (0-60, default 30)", minimum = 0, maximum = 60)),
    responses(IspActionAnswers, (status = 200, description = "`{message, client_name, device_name, detail, action_id}`"),
        (status = 400, description = "Bad name, or the server has no management interface", body = ErrorEnvelope),
        (status = 404, description = "Unknown device, or the client is not connected"),
        (status = 409, description = "The router's allow list has no `openvpn`, or it has no OpenVPN server config or easy-rsa")))]
pub async fn disconnect_client(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
    b: Option<Json<Option<ClientTarget>>>,
) -> Result<Response, IspError> {
    let make = |name| ActionKind::OvpnDisconnectClient { name };
    client_action(&state, &headers, name, q, b, make, "disconnected").await
}

use super::ErrorEnvelope;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x509_times_and_emails() {
        assert_eq!(x509_time("270306151400Z").unwrap(), "2027-03-06T15:14:00Z");
        assert_eq!(
            x509_time("20510101000000Z").unwrap(),
            "2051-01-01T00:00:00Z"
        );
        assert!(x509_time("garbage").is_none());
        assert!(check_email("client@example.com").is_ok());
        for bad in ["", "x", "a b@c.d", "@c.d", "a@b", "a@b@c.d", "a@b.c\n"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
