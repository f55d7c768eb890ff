//! Route group `wg_writes`: the WireGuard manager's write routes (`wireguard-manager.md`), each a
//! fleet action on a router, answered in the document's shape once the router reports. Admin key.
//!
//! - `POST /add-peer {name, router?, interface?, endpoint?, dns?}`: the collector generates the
//!   peer's key pair (the private key stays on the collector), the router adds the peer through
//!   UCI at the next free address of the interface's subnet and applies it; answer
//!   `{message, peer_name, ip_address, public_key, config_file, directory}` plus `router` and
//!   `action_id`. Router and interface default to `[wireguard] default_router` /
//!   `default_interface` of the collector config.
//! - `DELETE /peer/{name}?router=&interface=`: `{message}`; the router defaults to the one the
//!   peer was added to through this API.
//! - `POST /reload-wireguard {router?, interface?}`: `ifup <interface>` on the router; `{message}`.
//! - `GET /peer/{name}/qr`: the stored client configuration as an SVG QR code.
//!
//! Every write takes `?wait=<seconds>` (default 30, at most 60): `0` answers 202
//! `{message, action_id, state}` at once; a router that has not answered within the wait also
//! gets 202 (follow `GET /api/actions/{id}`). A router's failure is 400 (`peer already exists`,
//! as the document says) or 404 (`no peer named`), a refusal by the router's allow list 409, an
//! expired action 504; each with `{error, action_id}`. An `Idempotency-Key` header makes a retry
//! return the first action instead of adding a second peer.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use routerstats_shared::action::{check_peer_name, ActionDetail, ActionKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::actions::MAX_WAIT;
use super::fleet_action::{plain_not_done, submit, ActionAnswers};
use super::{require_role, ApiError, ApiState};
use crate::actions::wg_peers;
use crate::pki::tokens::Role;

/// Default wait of the write routes.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/add-peer", post(add_peer))
        .route("/peer/{name}", delete(delete_peer))
        .route("/peer/{name}/qr", get(peer_qr))
        .route("/reload-wireguard", post(reload_wireguard))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(add_peer, delete_peer, reload_wireguard, peer_qr),
    components(schemas(AddPeer, AddPeerAnswer, Target)),
    tags((name = "wireguard", description = "WireGuard peers of every router (VPN manager routes)"))
)]
pub struct Doc;

/// Body of `POST /add-peer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPeer {
    /// 1-32 of A-Z a-z 0-9 _ -.
    #[schema(schema_with = super::openapi::pattern::peer_name)]
    pub name: String,
    /// Router name or id (default: `[wireguard] default_router`).
    pub router: Option<String>,
    /// Default: `[wireguard] default_interface` (wg0).
    #[schema(schema_with = super::openapi::pattern::iface_or_null)]
    pub interface: Option<String>,
    /// `host` or `host:port` for the client's Endpoint.
    pub endpoint: Option<String>,
    /// `DNS =` of the client configuration.
    pub dns: Option<String>,
}

/// Answer of `POST /add-peer` (the document's fields plus `router` and `action_id`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddPeerAnswer {
    pub message: String,
    pub peer_name: String,
    /// The address the router gave the peer (no prefix).
    pub ip_address: String,
    /// The peer's public key.
    pub public_key: String,
    pub config_file: String,
    pub directory: String,
    pub router: String,
    pub action_id: i64,
}

/// Router and interface of `DELETE /peer/{name}` and `POST /reload-wireguard`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub router: Option<String>,
    #[param(schema_with = super::openapi::pattern::iface)]
    #[schema(schema_with = super::openapi::pattern::iface_or_null)]
    pub interface: Option<String>,
    /// Seconds to wait for the router (0-60, default 30).
    #[param(minimum = 0, maximum = 60)]
    #[schema(minimum = 0, maximum = 60)]
    #[serde(default, deserialize_with = "super::extract::opt_integer")]
    pub wait: Option<u64>,
}

/// `?wait=` of `POST /add-peer`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitParam {
    /// Seconds to wait for the router (0-60, default 30).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// A `?wait=` in seconds (default [`DEFAULT_WAIT`], at most 60).
pub fn wait_of(w: Option<u64>) -> Result<Duration, ApiError> {
    let d = w.map(Duration::from_secs).unwrap_or(DEFAULT_WAIT);
    if d > MAX_WAIT {
        return Err(ApiError::bad_request(format!(
            "wait must be 0 to {} seconds",
            MAX_WAIT.as_secs()
        )));
    }
    Ok(d)
}

fn default_router(state: &ApiState, given: Option<String>) -> Result<String, ApiError> {
    given
        .or_else(|| state.actions.settings().wg.router.clone())
        .ok_or_else(|| {
            ApiError::bad_request(
                "no router given and no [wireguard] default_router in the collector config",
            )
        })
}

fn interface(state: &ApiState, given: Option<String>) -> String {
    given.unwrap_or_else(|| state.actions.settings().wg.interface.clone())
}

/// Adds a WireGuard peer on a router (admin).
#[utoipa::path(
    post,
    path = "/add-peer",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    request_body = AddPeer,
    params(WaitParam),
    responses(
        ActionAnswers,
        (status = 200, description = "Peer created", body = AddPeerAnswer),
        (status = 400, description = "Invalid parameters, or the peer already exists"),
        (status = 404, description = "Unknown router"),
        (status = 409, description = "The router's allow list refuses WireGuard actions, or it is revoked"),
    )
)]
pub async fn add_peer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<WaitParam>, QueryRejection>,
    body: Result<Json<AddPeer>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let q = super::extract::query(q)?;
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("bad body: {}", e.body_text())))?;
    check_peer_name(&body.name).map_err(ApiError::bad_request)?;
    let wait = wait_of(q.wait)?;
    let router = default_router(&state, body.router)?;
    let iface = interface(&state, body.interface);
    let router_id = state.actions.router_id(router.clone()).await?;
    let (private_key, public_key) = wg_peers::generate_keypair();
    let endpoint = body
        .endpoint
        .or_else(|| state.actions.settings().wg.endpoint.clone())
        .or_else(|| state.actions.peer_ip(router_id).map(|ip| ip.to_string()));
    let pending = wg_peers::PendingPeer {
        private_key,
        endpoint,
        dns: body.dns.or_else(|| state.actions.settings().wg.dns.clone()),
    };
    let data_dir = state.actions.settings().data_dir.clone();
    let (name, pk) = (body.name.clone(), public_key.clone());
    tokio::task::spawn_blocking(move || {
        wg_peers::save_pending(&data_dir, router_id, &name, &pk, &pending)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("cannot store the peer's key: {e}")))?;
    let kind = ActionKind::WgAddPeer {
        interface: iface,
        name: body.name.clone(),
        public_key: public_key.clone(),
    };
    let outcome = submit(
        &state,
        &caller,
        &headers,
        router_id.to_string(),
        kind,
        wait,
        plain_not_done,
    )
    .await;
    let row = match outcome {
        Ok(Ok(row)) => row,
        Ok(Err(resp)) => return Ok(resp),
        Err(e) => {
            let data_dir = state.actions.settings().data_dir.clone();
            wg_peers::drop_pending(&data_dir, router_id, &body.name, &public_key);
            return Err(e);
        }
    };
    // A repeated request (same idempotency key) answers with the first action's key.
    let public_key = match row.kind() {
        Some(ActionKind::WgAddPeer {
            public_key: first, ..
        }) if first != public_key => {
            wg_peers::drop_pending(
                &state.actions.settings().data_dir,
                router_id,
                &body.name,
                &public_key,
            );
            first
        }
        _ => public_key,
    };
    let detail: Option<ActionDetail> = row
        .result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let ip = match detail {
        Some(ActionDetail::WgPeer { address, .. }) => {
            address.split('/').next().unwrap_or_default().to_string()
        }
        _ => String::new(),
    };
    Ok(Json(AddPeerAnswer {
        message: format!("Peer {} created successfully", body.name),
        config_file: wg_peers::conf_file(&body.name),
        directory: body.name.clone(),
        peer_name: body.name,
        ip_address: ip,
        public_key,
        router: row.router,
        action_id: row.id,
    })
    .into_response())
}

fn peer_name(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let name = super::extract::path(p)?;
    check_peer_name(&name).map_err(ApiError::bad_request)?;
    Ok(name)
}

/// Deletes a WireGuard peer (admin).
#[utoipa::path(
    delete,
    path = "/peer/{name}",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Peer name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"), Target),
    responses(
        ActionAnswers,
        (status = 200, description = "`{message}`"),
        (status = 400, description = "Bad name"),
        (status = 404, description = "Unknown router, or no such peer on it"),
        (status = 409, description = "Refused by the router"),
    )
)]
pub async fn delete_peer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<Target>, QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let name = peer_name(name)?;
    let q = super::extract::query(q)?;
    let wait = wait_of(q.wait)?;
    // Where this API added the peer, unless the caller says otherwise.
    let added = state.actions.peer_added(name.clone()).await?;
    let (added_router, added_iface) =
        match added.as_ref().and_then(|r| Some((r.router_id, r.kind()?))) {
            Some((rid, ActionKind::WgAddPeer { interface, .. })) => {
                (Some(rid.to_string()), Some(interface))
            }
            _ => (None, None),
        };
    let router = default_router(&state, q.router.or(added_router))?;
    let iface = interface(&state, q.interface.or(added_iface));
    let kind = ActionKind::WgDeletePeer {
        interface: iface,
        name: name.clone(),
    };
    Ok(
        match submit(
            &state,
            &caller,
            &headers,
            router,
            kind,
            wait,
            plain_not_done,
        )
        .await?
        {
            Ok(_) => Json(json!({ "message": format!("Peer {name} deleted successfully") }))
                .into_response(),
            Err(resp) => resp,
        },
    )
}

/// Restarts the WireGuard interface of a router (admin).
#[utoipa::path(
    post,
    path = "/reload-wireguard",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(Target),
    responses(
        ActionAnswers,
        (status = 200, description = "`{message}`"),
        (status = 400, description = "Bad parameters, or the router failed (`{error}`)"),
        (status = 404, description = "Unknown router"),
        (status = 409, description = "Refused by the router"),
    )
)]
pub async fn reload_wireguard(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<Target>, QueryRejection>,
    body: Result<Option<Json<Target>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let q = super::extract::query(q)?;
    let b = body
        .map_err(|e| ApiError::bad_request(format!("bad body: {}", e.body_text())))?
        .map(|Json(b)| b)
        .unwrap_or_default();
    let wait = wait_of(q.wait.or(b.wait))?;
    let router = default_router(&state, q.router.or(b.router))?;
    let iface = interface(&state, q.interface.or(b.interface));
    let kind = ActionKind::WgReload {
        interface: iface.clone(),
    };
    Ok(match submit(&state, &caller, &headers, router, kind, wait, plain_not_done).await? {
        Ok(row) => Json(json!({ "message": format!("WireGuard interface {iface} reloaded on {}", row.router) })).into_response(),
        Err(resp) => resp,
    })
}

/// The stored client configuration of a peer added through this API, for admin callers.
pub async fn stored_config(state: &ApiState, headers: &HeaderMap, name: &str) -> Option<String> {
    check_peer_name(name).ok()?;
    require_role(state, headers, Role::Admin).await.ok()?;
    let row = state.actions.peer_added(name.to_string()).await.ok()??;
    let data_dir = state.actions.settings().data_dir.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || wg_peers::read_conf(&data_dir, row.router_id, &name))
        .await
        .ok()?
}

/// The client configuration of a peer as an SVG QR code (admin).
#[utoipa::path(
    get,
    path = "/peer/{name}/qr",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Peer name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 400, description = "Bad name"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No stored configuration for this peer"),
    )
)]
pub async fn peer_qr(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let name = peer_name(name)?;
    let conf = stored_config(&state, &headers, &name)
        .await
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no stored configuration for peer {name}"),
            )
        })?;
    let svg = wg_peers::qr_svg(&conf)
        .ok_or_else(|| ApiError::internal("the configuration does not fit a QR code"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}
