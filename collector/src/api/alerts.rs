//! Route group `alerts`: the alert history and silences of [`crate::alerts`].
//!
//! - `GET /api/alerts` (read key): alerts, newest first, filtered by `state`, `router`, `site`,
//!   `rule`, `since` (started at or after; Unix seconds or RFC 3339), paged with `limit`
//!   (default 100, at most 1000) and `offset` -> `{alerts, total, limit, offset}`.
//! - `GET /api/alerts/silences` (read key): active silences (`expired=true`: all) -> `{silences}`.
//! - `POST /api/alerts/silences` (admin key) `{rule?, router?, site?, comment, duration? |
//!   expires_at?}` -> 201 with the silence. At least one matcher; `duration` like `"2h"` (default
//!   `"1h"`, at most 365 days) or `expires_at` in Unix seconds. Firing alerts it matches are
//!   marked silenced at once; their resolution is not sent.
//! - `DELETE /api/alerts/silences/{id}` (admin key) -> 204: the silence expires now (it stays
//!   listed with `expired=true`); 404 when unknown or already expired.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use rusqlite::{params, params_from_iter, OptionalExtension};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::readpool::db_err;
use super::{require_role, with_read, with_store, ApiError, ApiState};
use crate::alerts::now_ms;
use crate::alerts::rules::RULES;
use crate::alerts::state::{AlertRow, ALERT_COLUMNS};
use crate::duration::parse_duration;
use crate::pki::tokens::Role;

/// Largest page.
pub const MAX_LIMIT: u32 = 1000;
/// Longest silence.
const MAX_SILENCE_MS: i64 = 365 * 86_400_000;
/// Longest matcher or comment.
const MAX_TEXT: usize = 256;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route(
            "/api/alerts/silences",
            get(list_silences).post(create_silence),
        )
        .route("/api/alerts/silences/{id}", delete(delete_silence))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_alerts, list_silences, create_silence, delete_silence),
    components(schemas(AlertRow, AlertsPage, Silence, NewSilence, SilenceList)),
    tags((name = "alerts", description = "Alert history and silences (docs/alerts.md)"))
)]
pub struct Doc;

/// Query of `GET /api/alerts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// `firing` or `resolved`.
    #[param(schema_with = state_schema)]
    pub state: Option<String>,
    /// Router name (case-insensitive).
    #[param(schema_with = super::openapi::pattern::text_256)]
    pub router: Option<String>,
    /// Site (exact).
    #[param(schema_with = super::openapi::pattern::text_256)]
    pub site: Option<String>,
    /// Rule name (`offline`, `cpu`, ...).
    #[param(schema_with = rule_schema)]
    pub rule: Option<String>,
    /// Alerts that started at or after this time (Unix seconds or RFC 3339).
    #[param(schema_with = since_schema)]
    pub since: Option<String>,
    /// Page size (default 100; larger values are taken as 1000, 0 as 1).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
    /// Alerts skipped (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub offset: Option<u32>,
}

fn state_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(&["firing", "resolved"])
}

fn rule_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(RULES)
}

fn rule_or_null_schema() -> utoipa::openapi::Schema {
    serde_json::from_value(serde_json::json!({"oneOf": [{"type": "null"}, rule_schema()]}))
        .expect("a valid schema")
}

/// `since`: Unix seconds or an RFC 3339 time.
fn since_schema() -> utoipa::openapi::Schema {
    serde_json::from_value(serde_json::json!({"anyOf": [
        {"type": "string", "pattern": "^-?[0-9]{1,18}$"},
        {"type": "string", "pattern": "^\\s*$", "description": "blank: no filter"},
        {"type": "string", "format": "date-time"},
    ]}))
    .expect("a valid schema")
}

/// A page of alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsPage {
    pub alerts: Vec<AlertRow>,
    /// Alerts matching the filters (all pages).
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
}

/// A silence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Silence {
    pub id: i64,
    pub rule: Option<String>,
    pub router: Option<String>,
    pub site: Option<String>,
    pub comment: String,
    /// The API key id that created it.
    pub created_by: Option<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub starts_ms: i64,
    pub expires_ms: i64,
    /// Not expired yet.
    pub active: bool,
}

/// Silences.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
}

/// Body of `POST /api/alerts/silences`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Only this rule.
    #[schema(schema_with = rule_or_null_schema)]
    pub rule: Option<String>,
    /// Only this router (name, case-insensitive).
    #[schema(schema_with = super::openapi::pattern::nonblank_256_or_null)]
    pub router: Option<String>,
    /// Only this site.
    #[schema(schema_with = super::openapi::pattern::nonblank_256_or_null)]
    pub site: Option<String>,
    /// Why (required).
    #[schema(schema_with = super::openapi::pattern::nonblank_256)]
    pub comment: String,
    /// How long from now, like `"2h"` (default `"1h"`).
    pub duration: Option<String>,
    /// Or until this Unix time (seconds).
    #[serde(default, deserialize_with = "super::extract::opt_integer")]
    pub expires_at: Option<i64>,
}

/// Query of `GET /api/alerts/silences`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SilencesQuery {
    /// Also list expired silences (`true` or `false`).
    pub expired: Option<bool>,
}

fn text_arg(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {MAX_TEXT} characters without control characters"
        )));
    }
    Ok(Some(v))
}

fn rule_arg(v: Option<String>) -> Result<Option<String>, ApiError> {
    let v = text_arg("rule", v)?;
    if let Some(r) = &v {
        if !RULES.contains(&r.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown rule {r:?}; rules: {}",
                RULES.join(", ")
            )));
        }
    }
    Ok(v)
}

/// `since`: Unix seconds or RFC 3339, as Unix milliseconds.
fn since_arg(v: Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(v) = text_arg("since", v)? else {
        return Ok(None);
    };
    if let Ok(s) = v.parse::<i64>() {
        return Ok(Some(s.saturating_mul(1000)));
    }
    OffsetDateTime::parse(&v, &Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| ApiError::bad_request("since must be Unix seconds or an RFC 3339 time"))
}

/// Alert history, newest first.
#[utoipa::path(
    get,
    path = "/api/alerts",
    operation_id = "alerts_list",
    tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "A page of alerts, newest first", body = AlertsPage),
        (status = 400, description = "Bad filter"),
        (status = 401, description = "Missing or unknown API key")
    ),
    security(("api_key" = []))
)]
pub async fn list_alerts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<AlertsPage>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(super::extract::bad_query)?;
    let st = text_arg("state", q.state)?;
    if st
        .as_deref()
        .is_some_and(|s| s != "firing" && s != "resolved")
    {
        return Err(ApiError::bad_request("state must be firing or resolved"));
    }
    let router = text_arg("router", q.router)?;
    let site = text_arg("site", q.site)?;
    let rule = rule_arg(q.rule)?;
    let since = since_arg(q.since)?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let offset = q.offset.unwrap_or(0);
    with_read(&state, move |c| {
        let mut cond = vec!["1 = 1".to_string()];
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |sql: &str, v: rusqlite::types::Value| {
            args.push(v);
            cond.push(sql.replace('?', &format!("?{}", args.len())));
        };
        if let Some(s) = st {
            add("state = ?", s.into());
        }
        if let Some(r) = router {
            add("router = ? COLLATE NOCASE", r.into());
        }
        if let Some(s) = site {
            add("site = ?", s.into());
        }
        if let Some(r) = rule {
            add("rule = ?", r.into());
        }
        if let Some(s) = since {
            add("started_ms >= ?", s.into());
        }
        let filter = cond.join(" AND ");
        let total: i64 = c
            .query_row(&format!("SELECT count(*) FROM alerts WHERE {filter}"), params_from_iter(args.iter()), |r| r.get(0))
            .map_err(db_err)?;
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {filter} ORDER BY started_ms DESC, id DESC LIMIT {limit} OFFSET {offset}"
        );
        let mut stmt = c.prepare(&sql).map_err(db_err)?;
        let alerts = stmt
            .query_map(params_from_iter(args.iter()), AlertRow::from_row)
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        Ok(Json(AlertsPage { alerts, total, limit, offset }))
    })
    .await
}

fn silence_from_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<Silence> {
    let expires_ms: i64 = r.get(8)?;
    Ok(Silence {
        id: r.get(0)?,
        rule: r.get(1)?,
        router: r.get(2)?,
        site: r.get(3)?,
        comment: r.get(4)?,
        created_by: r.get(5)?,
        created_ms: r.get(6)?,
        starts_ms: r.get(7)?,
        expires_ms,
        active: expires_ms > now,
    })
}

const SILENCE_COLUMNS: &str =
    "id, rule, router, site, comment, created_by, created_ms, starts_ms, expires_ms";

/// Silences (active ones unless `expired=true`).
#[utoipa::path(
    get,
    path = "/api/alerts/silences",
    operation_id = "alerts_silences_list",
    tag = "alerts",
    params(SilencesQuery),
    responses(
        (status = 200, description = "Silences, newest first", body = SilenceList),
        (status = 401, description = "Missing or unknown API key")
    ),
    security(("api_key" = []))
)]
pub async fn list_silences(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<SilencesQuery>, QueryRejection>,
) -> Result<Json<SilenceList>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(super::extract::bad_query)?;
    let now = now_ms();
    let since = if q.expired.unwrap_or(false) {
        i64::MIN
    } else {
        now
    };
    with_read(&state, move |c| {
        let mut st = c
            .prepare(&format!(
                "SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE expires_ms > ?1 ORDER BY id DESC LIMIT 1000"
            ))
            .map_err(db_err)?;
        let silences = st
            .query_map([since], |r| silence_from_row(r, now))
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        Ok(Json(SilenceList { silences }))
    })
    .await
}

/// Creates a silence (admin key).
#[utoipa::path(
    post,
    path = "/api/alerts/silences",
    operation_id = "alerts_silence_create",
    tag = "alerts",
    request_body = NewSilence,
    responses(
        (status = 201, description = "The silence", body = Silence),
        (status = 400, description = "No matcher, unknown rule, bad duration or comment"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key")
    ),
    security(("api_key" = []))
)]
pub async fn create_silence(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let Json(b) =
        body.map_err(|e| ApiError::bad_request(format!("invalid body: {}", e.body_text())))?;
    let rule = rule_arg(b.rule)?;
    let router = text_arg("router", b.router)?;
    let site = text_arg("site", b.site)?;
    let comment = text_arg("comment", Some(b.comment))?
        .ok_or_else(|| ApiError::bad_request("comment is required"))?;
    if rule.is_none() && router.is_none() && site.is_none() {
        return Err(ApiError::bad_request(
            "a silence needs at least one of rule, router, site",
        ));
    }
    let now = now_ms();
    let expires_ms = match (b.expires_at, b.duration) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give duration or expires_at, not both",
            ))
        }
        (Some(at), None) => at.saturating_mul(1000),
        (None, d) => {
            let d = parse_duration(d.as_deref().unwrap_or("1h"))
                .map_err(|e| ApiError::bad_request(format!("duration: {e}")))?;
            now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }
    };
    if expires_ms <= now || expires_ms - now > MAX_SILENCE_MS {
        return Err(ApiError::bad_request(
            "a silence must end in the future and within 365 days",
        ));
    }
    let created_by = caller.key;
    let silence = with_store(&state, move |s| {
        let c = s.connection();
        let tx = c.unchecked_transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO alert_silences (rule, router, site, comment, created_by, created_ms, starts_ms, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            params![rule, router, site, comment, created_by, now, expires_ms],
        )
        .map_err(db_err)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE alerts SET silenced = 1 WHERE state = 'firing' AND (?1 IS NULL OR rule = ?1) \
             AND (?2 IS NULL OR router = ?2 COLLATE NOCASE) AND (?3 IS NULL OR site = ?3)",
            params![rule, router, site],
        )
        .map_err(db_err)?;
        let row = tx
            .query_row(&format!("SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE id = ?1"), [id], |r| silence_from_row(r, now))
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(row)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(silence)).into_response())
}

/// Expires a silence now (admin key).
#[utoipa::path(
    delete,
    path = "/api/alerts/silences/{id}",
    operation_id = "alerts_silence_delete",
    tag = "alerts",
    params(("id" = i64, Path, description = "Silence id")),
    responses(
        (status = 204, description = "Expired now (still listed with `expired=true`)"),
        (status = 400, description = "Bad id"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 404, description = "No such active silence")
    ),
    security(("api_key" = []))
)]
pub async fn delete_silence(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    require_role(&state, &headers, Role::Admin).await?;
    let Path(id) = id.map_err(|_| ApiError::bad_request("the silence id must be an integer"))?;
    let now = now_ms();
    let gone = with_store(&state, move |s| {
        s.connection()
            .query_row(
                "UPDATE alert_silences SET expires_ms = ?2 WHERE id = ?1 AND expires_ms > ?2 RETURNING id",
                params![id, now],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(db_err)
    })
    .await?;
    match gone {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no silence {id}"),
        )),
    }
}
