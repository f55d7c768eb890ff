//! The steps every route that is one fleet action shares, whichever group it belongs to: request
//! the action for the caller, wait for the router, and turn an action that did not end `done`
//! into its answer (202 while the router has not answered, 409 refused, 504 expired, 404 or 400
//! failed), in the plain shape or the ISP middleware's; and the OpenAPI answers every ISP
//! fleet-action write route shares ([`IspActionAnswers`]).

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use routerstats_shared::action::{ActionKind, NOT_FOUND};
use serde_json::json;

use super::envelope::ErrorEnvelope;
use super::{ApiError, ApiState, Caller};
use crate::actions::Request;
use crate::store::ActionRow;

/// Who asked, as stored in `requested_by`: `key:<API key id>` or `jwt:<subject>`.
pub fn requested_by(caller: &Caller) -> String {
    caller.who()
}

/// The `Idempotency-Key` header, if any.
pub fn idempotency_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Requests an action for the caller and waits up to `wait` for it to be final.
pub async fn request_and_wait(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    router: String,
    kind: ActionKind,
    wait: Duration,
) -> Result<ActionRow, ApiError> {
    let req = Request {
        router,
        kind,
        idempotency_key: idempotency_header(headers),
        requested_by: requested_by(caller),
        ttl: None,
    };
    let (row, _) = state.actions.request(req).await?;
    if row.is_final() || wait.is_zero() {
        return Ok(row);
    }
    Ok(state.actions.wait(row.id, wait).await?.unwrap_or(row))
}

/// [`request_and_wait`], then the row when the action is done, else the answer `not_done`
/// makes of it ([`plain_not_done`], [`isp_not_done`], or a group's own reading of a failure).
pub async fn submit(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    router: String,
    kind: ActionKind,
    wait: Duration,
    not_done: fn(&ActionRow) -> Option<Response>,
) -> Result<Result<ActionRow, Response>, ApiError> {
    let row = request_and_wait(state, caller, headers, router, kind, wait).await?;
    Ok(match not_done(&row) {
        None => Ok(row),
        Some(answer) => Err(answer),
    })
}

/// The answer of an action that did not end `done` (None when it did): 202 `{message,
/// action_id, state}` while the router has not answered, else `{error, action_id}` with 409
/// (refused), 504 (expired), 404 (no such peer, or an output marked [`NOT_FOUND`]) or 400
/// (failed).
pub fn not_done(row: &ActionRow) -> Option<(StatusCode, serde_json::Value)> {
    let output = row.output.clone().unwrap_or_default();
    let err = |status, msg: String| Some((status, json!({ "error": msg, "action_id": row.id })));
    match row.state.as_str() {
        "done" => None,
        "queued" | "sent" => Some((
            StatusCode::ACCEPTED,
            json!({
                "message": format!("{} requested; router {} has not answered yet", row.kind, row.router),
                "action_id": row.id,
                "state": row.state,
            }),
        )),
        "refused" => err(
            StatusCode::CONFLICT,
            format!("refused by router {}: {output}", row.router),
        ),
        "expired" => err(
            StatusCode::GATEWAY_TIMEOUT,
            format!("router {} did not answer in time", row.router),
        ),
        _ if output.contains("no peer named") || output.contains("no WireGuard interface") => {
            err(StatusCode::NOT_FOUND, output)
        }
        // The agent marks its "no such thing" failures (a host, a limit, a device) this way.
        _ => match output.strip_prefix(NOT_FOUND) {
            Some(rest) => err(StatusCode::NOT_FOUND, rest.to_string()),
            None => err(StatusCode::BAD_REQUEST, output),
        },
    }
}

/// [`not_done`] for the ISP middleware's routes, whose answers carry `success: false` and a
/// `timestamp` (the document's error shape).
pub fn not_done_isp(row: &ActionRow) -> Option<(StatusCode, serde_json::Value)> {
    not_done(row).map(|(status, mut body)| {
        body["success"] = json!(false);
        body["timestamp"] = json!(super::times::iso_now());
        (status, body)
    })
}

/// [`not_done`] as a response.
pub fn plain_not_done(row: &ActionRow) -> Option<Response> {
    not_done(row).map(|(status, body)| (status, Json(body)).into_response())
}

/// [`not_done_isp`] as a response.
pub fn isp_not_done(row: &ActionRow) -> Option<Response> {
    not_done_isp(row).map(|(status, body)| (status, Json(body)).into_response())
}

/// The answers every ISP fleet-action write route shares in the OpenAPI document; a route lists
/// this first in `responses(...)` and then its own 200/201, 400, 404 and 409 (a tuple given after
/// it replaces the same status). The ISP group's 405 and 429 are added to every operation of its
/// paths by `isp::declare_group_answers`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the document, never built
pub enum IspActionAnswers {
    #[response(
        status = 202,
        description = "Requested; the router has not answered within `wait`: `{success: false, message, action_id, state, timestamp}`"
    )]
    Pending,
    #[response(status = 401, description = "Missing or unknown API key")]
    Unauthorized(ErrorEnvelope),
    #[response(status = 403, description = "Not an admin key")]
    NotAdmin(ErrorEnvelope),
    #[response(
        status = 504,
        description = "The router did not answer before the action's deadline: `{success: false, error, action_id, timestamp}`"
    )]
    Expired(ErrorEnvelope),
}

/// [`IspActionAnswers`] for the write routes outside the ISP group (the WireGuard manager's),
/// whose answers have the plain shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the document, never built
pub enum ActionAnswers {
    #[response(
        status = 202,
        description = "Requested; the router has not answered within `wait`: `{message, action_id, state}`"
    )]
    Pending,
    #[response(status = 401, description = "Missing or unknown API key")]
    Unauthorized,
    #[response(status = 403, description = "Not an admin key")]
    NotAdmin,
    #[response(
        status = 504,
        description = "The router did not answer before the action's deadline: `{error, action_id}`"
    )]
    Expired,
}
