//! Route group `actions`: the audit API of fleet actions and a generic way to request one.
//! Every route needs an admin key.
//!
//! - `GET /api/actions?router=&state=&kind=&before=&limit=`: newest first, `limit` 1-500
//!   (default 50); `before` is the smallest id of the previous page. Answer
//!   `{actions: [...], count, next_before}`.
//! - `GET /api/actions/{id}?wait=<seconds>`: one action; with `wait` (at most 60) the answer
//!   comes when the action is final or the wait is over, whichever is first.
//! - `POST /api/actions` `{router, action: {"wg_reload": {"interface": "wg0"}}, ttl?,
//!   idempotency_key?}` (or the `Idempotency-Key` header): 201 with the stored action (200 with
//!   the first one when the idempotency key was used before by the same key), 400 for invalid
//!   parameters, 404 for an unknown router, 409 for a revoked router (stored `refused`).

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use routerstats_shared::action::ActionKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::fleet_action::{idempotency_header, requested_by};
use super::{require_role, ApiError, ApiState};
use crate::actions::{HubError, Request};
use crate::pki::tokens::Role;
use crate::store::{ActionFilter, ActionRow};

/// Longest `wait` of `GET /api/actions/{id}`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/actions", get(list_actions).post(create_action))
        .route("/api/actions/{id}", get(get_action))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_actions, get_action, create_action),
    components(schemas(ActionView, ActionList, CreateAction)),
    tags((name = "actions", description = "Fleet actions sent to the routers, and their results (admin)"))
)]
pub struct Doc;

/// One action as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    pub id: i64,
    pub router: String,
    pub router_id: i64,
    /// `wg_add_peer`, `wg_delete_peer`, `wg_reload`.
    pub kind: String,
    /// The typed parameters, e.g. `{"wg_reload": {"interface": "wg0"}}`.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `queued`, `sent`, `done`, `failed`, `expired` or `refused`.
    pub state: String,
    pub requested_by: String,
    pub idempotency_key: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub deadline: i64,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempts: i64,
    /// The router's output (bounded), or why the action was refused or expired.
    pub output: Option<String>,
    /// Typed facts from the router (e.g. the address a new peer got).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

impl From<ActionRow> for ActionView {
    fn from(r: ActionRow) -> Self {
        ActionView {
            id: r.id,
            router: r.router,
            router_id: r.router_id,
            params: redact(&r.kind, r.params),
            kind: r.kind,
            state: r.state,
            requested_by: r.requested_by,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
            deadline: r.deadline,
            sent_at: r.sent_at,
            finished_at: r.finished_at,
            attempts: r.attempts,
            output: r.output,
            result: r.result,
        }
    }
}

/// Parameters as shown: a PPPoE password reads as `********` (the store also forgets it once
/// the action is final).
fn redact(kind: &str, mut params: serde_json::Value) -> serde_json::Value {
    if let Some(p) = params.get_mut(kind).and_then(|p| p.get_mut("password")) {
        *p = json!(routerstats_shared::action::REDACTED);
    }
    params
}

/// `GET /api/actions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionList {
    pub actions: Vec<ActionView>,
    pub count: usize,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// Query of `GET /api/actions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Router name or id.
    pub router: Option<String>,
    #[param(schema_with = state_schema)]
    pub state: Option<String>,
    pub kind: Option<String>,
    /// Only actions with a smaller id.
    pub before: Option<i64>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The `action` of `POST /api/actions`: one object with a single key, the kind, whose value
/// holds the kind's parameters with the bounds [`ActionKind::validate`] checks.
fn action_schema() -> utoipa::openapi::Schema {
    use routerstats_shared::action::{IFACE_PATTERN, PEER_NAME_PATTERN, WG_KEY_PATTERN};
    let iface = json!({"type": "string", "pattern": IFACE_PATTERN});
    let name = json!({"type": "string", "pattern": PEER_NAME_PATTERN});
    let key = json!({"type": "string", "pattern": WG_KEY_PATTERN});
    let kind = |kind: &str, params: serde_json::Value| {
        let required: Vec<&String> = params
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        json!({
            "type": "object",
            "required": [kind],
            "additionalProperties": false,
            "properties": {kind: {
                "type": "object",
                "required": required,
                "additionalProperties": false,
                "properties": params,
            }},
        })
    };
    serde_json::from_value(json!({"oneOf": [
        kind("wg_add_peer", json!({"interface": iface, "name": name, "public_key": key})),
        kind("wg_delete_peer", json!({"interface": iface, "name": name})),
        kind("wg_reload", json!({"interface": iface})),
        kind("backup", json!({})),
        kind("status", json!({})),
    ]}))
    .expect("the action schema is a valid schema")
}

/// The `ttl`s documented: 1-99999 s, 1-9999 min, 1-168 h, 1-7 d or 1 w (all within
/// [`crate::actions::MAX_TTL`]); the server also takes sums like `1h30m`.
const TTL_PATTERN: &str =
    "^([1-9][0-9]{0,4}s|[1-9][0-9]{0,3}m|([1-9][0-9]?|1[0-5][0-9]|16[0-8])h|[1-7]d|1w)$";

fn ttl_schema() -> utoipa::openapi::Object {
    super::openapi::nullable_pattern(TTL_PATTERN)
}

/// `state`: one of [`STATES`].
fn state_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(STATES)
}

/// Query of `GET /api/actions/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for a final state (0-60).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// Body of `POST /api/actions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAction {
    /// Router name or id.
    pub router: String,
    /// The action, e.g. `{"wg_add_peer": {"interface": "wg0", "name": "laptop", "public_key": "..."}}`.
    #[schema(schema_with = action_schema)]
    pub action: serde_json::Value,
    /// Like `30s`, `5m`, `2h`, `1d`: one number and unit, from 1 s to 7 days (default: the
    /// collector's `action_ttl`).
    #[schema(schema_with = ttl_schema)]
    pub ttl: Option<String>,
    /// 1-128 characters without control characters.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$", nullable)]
    pub idempotency_key: Option<String>,
}

const STATES: &[&str] = &["queued", "sent", "done", "failed", "expired", "refused"];

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Invalid(m) => ApiError::bad_request(m),
            HubError::NoRouter(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            HubError::Store(s) => s.into(),
            HubError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// Lists actions (admin).
#[utoipa::path(
    get,
    path = "/api/actions",
    tag = "actions",
    security(("api_key" = []), ("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Actions, newest first", body = ActionList),
        (status = 400, description = "Bad filter"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "Unknown router"),
    )
)]
pub async fn list_actions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ActionList>, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let q = super::extract::query(q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 500"));
    }
    if let Some(s) = &q.state {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "state must be one of {}",
                STATES.join(", ")
            )));
        }
    }
    let router_id = match q.router {
        Some(r) => Some(state.actions.router_id(r).await?),
        None => None,
    };
    let rows = state
        .actions
        .list(ActionFilter {
            router_id,
            state: q.state,
            kind: q.kind,
            before_id: q.before,
            limit,
        })
        .await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let actions: Vec<ActionView> = rows.into_iter().map(ActionView::from).collect();
    Ok(Json(ActionList {
        count: actions.len(),
        actions,
        next_before,
    }))
}

/// One action, optionally waiting for its result (admin).
#[utoipa::path(
    get,
    path = "/api/actions/{id}",
    tag = "actions",
    security(("api_key" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Action id"), WaitQuery),
    responses(
        (status = 200, description = "The action (final, or as it is when the wait ended)", body = ActionView),
        (status = 400, description = "Bad id or wait"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such action"),
    )
)]
pub async fn get_action(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<ActionView>, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let id: i64 = id
        .ok()
        .and_then(|Path(s)| s.parse().ok())
        .ok_or_else(|| ApiError::bad_request("action id must be an integer"))?;
    let q = super::extract::query(q)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0));
    if wait > MAX_WAIT {
        return Err(ApiError::bad_request(format!(
            "wait must be 0 to {} seconds",
            MAX_WAIT.as_secs()
        )));
    }
    let row = state.actions.wait(id, wait).await?;
    row.map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no action {id}")))
}

/// Requests an action for a router (admin).
#[utoipa::path(
    post,
    path = "/api/actions",
    tag = "actions",
    security(("api_key" = []), ("bearer" = [])),
    request_body = CreateAction,
    responses(
        (status = 201, description = "Stored (and sent if the router is connected)", body = ActionView),
        (status = 200, description = "The action this idempotency key created before", body = ActionView),
        (status = 400, description = "Unknown action kind or invalid parameters"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "Unknown router"),
        (status = 409, description = "The router is revoked (the action is stored as refused)"),
    )
)]
pub async fn create_action(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<CreateAction>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("bad body: {}", e.body_text())))?;
    let kind: ActionKind = serde_json::from_value(body.action)
        .map_err(|e| ApiError::bad_request(format!("unknown action or bad parameters: {e}")))?;
    let ttl = body
        .ttl
        .map(|t| {
            crate::duration::parse_duration(&t)
                .map_err(|e| ApiError::bad_request(format!("ttl: {e}")))
        })
        .transpose()?;
    let req = Request {
        router: body.router,
        kind,
        idempotency_key: body
            .idempotency_key
            .or_else(|| idempotency_header(&headers)),
        requested_by: requested_by(&caller),
        ttl,
    };
    let (row, fresh) = state.actions.request(req).await?;
    // Refused at creation: the router is revoked (a repeat returns the first action as it is now).
    let status = if fresh && row.state == "refused" {
        StatusCode::CONFLICT
    } else if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = ActionView::from(row);
    if status == StatusCode::CONFLICT {
        let msg = view.output.clone().unwrap_or_default();
        return Ok((status, Json(json!({ "error": msg, "action": view }))).into_response());
    }
    Ok((status, Json(view)).into_response())
}
