//! Route group `isp`: the routes of an ISP middleware (devices, VPN, bandwidth) served over the
//! fleet's data. A "device" is an enrolled router; a "user" is a client host, named by the
//! hostname of its DHCP lease, else by its MAC address.
//!
//! - [`devices`]: `/api/devices`, `/api/devices/status`, `/api/devices/{name}/currentstatus`,
//!   `/api/interfaces`, `/api/users/active`, `/api/users/{name}/stats`
//! - [`vpn`]: `/api/vpn/...` from the OpenVPN status files of every router
//! - [`vpn_manage`]: `/api/vpn/server/...`, `/api/vpn/client/template`, client create, config,
//!   revoke and disconnect: `openvpn` fleet actions on a router
//! - [`bandwidth`]: `/api/bandwidth/...` from the Wi-Fi station counters
//! - [`uci_writes`]: the hotspot, PPPoE and bridge writes (`POST /api/mikrotik/...`), each a
//!   fleet action on a router (admin key)
//!
//! Every answer uses the middleware's envelope: `{"success": true, "data": ..., "timestamp"}`,
//! or `{"success": false, "error": "...", "timestamp"}` with the status (400 bad input, 401/403
//! authentication, 404 unknown device/user/client, 500 database trouble). Health routes are open;
//! the others need a read key. docs/api/isp.md describes fields, sources and gaps.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use rusqlite::{params, Connection, OptionalExtension};

use routerstats_shared::model::MacAddr;

use super::envelope::{
    flat, isp_error, stamped, ErrorEnvelope, FlatEnvelope, RateLimitEnvelope, StampedEnvelope,
};
use super::fleet::{self, RouterFacts};
use super::paging::{self, Page, PageBounds};
use super::{readpool, require_role, with_read, ApiError, ApiState};
use crate::pki::tokens::Role;
use crate::store::{bucket_start, BUCKET_1H_MS};

pub mod bandwidth;
pub mod config;
pub mod devices;
pub mod uci_writes;
pub mod vpn;
pub mod vpn_manage;

#[cfg(test)]
mod tests;

/// Longest accepted text parameter (names, usernames), in characters.
pub const MAX_TEXT_CHARS: usize = 253;
/// Most device names accepted by `identities`.
pub const MAX_IDENTITIES: usize = 100;

/// Where the group's routes live: the document's three blueprints.
pub const PREFIXES: &[&str] = &["/api/mikrotik", "/api/vpn", "/api/bandwidth"];

/// Deprecated paths of earlier releases, each served by the very handler of the documented
/// path it names (`(old, documented)`), and marked deprecated in the OpenAPI document.
pub const ALIASES: &[(&str, &str)] = &[
    ("/api/devices", "/api/mikrotik/devices"),
    ("/api/devices/status", "/api/mikrotik/devices/status"),
    (
        "/api/devices/{name}/currentstatus",
        "/api/mikrotik/devices/{name}/currentstatus",
    ),
    ("/api/interfaces", "/api/mikrotik/interfaces"),
    ("/api/users/active", "/api/mikrotik/users/active"),
    (
        "/api/users/{name}/stats",
        "/api/mikrotik/users/{name}/stats",
    ),
];

/// True when `path` (a request path) belongs to this group: under one of [`PREFIXES`], or one
/// of the deprecated [`ALIASES`] (a `{..}` segment of a template matches any one segment).
pub fn is_group_path(path: &str) -> bool {
    let under = |p: &str| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    PREFIXES.iter().any(|p| under(p)) || ALIASES.iter().any(|(old, _)| template_matches(old, path))
}

/// True when `path` fits `template` segment by segment (`{x}` matches any non-empty segment).
pub fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// The routes of this group at the document's paths (one handler per route).
fn documented() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    vec![
        ("/api/mikrotik/devices", get(devices::list)),
        ("/api/mikrotik/devices/status", get(devices::status)),
        (
            "/api/mikrotik/devices/{name}/currentstatus",
            get(devices::current_status),
        ),
        (
            "/api/mikrotik/devices/{name}/config",
            get(config::device_config),
        ),
        ("/api/mikrotik/interfaces", get(devices::interfaces)),
        ("/api/mikrotik/users/active", get(devices::active_users)),
        ("/api/mikrotik/users/{name}/stats", get(devices::user_stats)),
        ("/api/mikrotik/health", get(devices::health)),
        ("/api/vpn/status", get(vpn::status)),
        ("/api/vpn/clients", get(vpn::clients)),
        ("/api/vpn/clients/connected", get(vpn::connected)),
        ("/api/vpn/clients/{name}/details", get(vpn::details)),
        ("/api/vpn/statistics/usage", get(vpn::usage)),
        ("/api/vpn/health", get(vpn::health)),
        ("/api/vpn/server/logs", get(vpn_manage::server_logs)),
        ("/api/vpn/server/config", get(vpn_manage::server_config)),
        ("/api/vpn/server/ip", get(vpn_manage::server_ip)),
        ("/api/vpn/client/template", get(vpn_manage::client_template)),
        ("/api/vpn/clients/create", post(vpn_manage::create_client)),
        (
            "/api/vpn/clients/{name}/config",
            get(vpn_manage::client_config),
        ),
        (
            "/api/vpn/clients/{name}/revoke",
            post(vpn_manage::revoke_client),
        ),
        (
            "/api/vpn/clients/{name}/disconnect",
            post(vpn_manage::disconnect_client),
        ),
        ("/api/bandwidth/usage/real-time", get(bandwidth::real_time)),
        ("/api/bandwidth/usage/peak", get(bandwidth::peak)),
        (
            "/api/bandwidth/monitoring/top-users",
            get(bandwidth::top_users),
        ),
        (
            "/api/bandwidth/monitoring/network-summary",
            get(bandwidth::network_summary),
        ),
        ("/api/bandwidth/monitoring/alerts", get(bandwidth::alerts)),
        ("/api/bandwidth/monitoring/quality", get(bandwidth::quality)),
        ("/api/bandwidth/health", get(bandwidth::health)),
        // Router configuration, each a fleet action (uci_writes).
        (
            "/api/mikrotik/hotspot/authorize",
            post(uci_writes::hotspot_authorize),
        ),
        (
            "/api/mikrotik/hotspot/deauthorize",
            post(uci_writes::hotspot_deauthorize),
        ),
        (
            "/api/mikrotik/hotspot/server/configure",
            post(uci_writes::hotspot_configure),
        ),
        (
            "/api/mikrotik/pppoe/secret/create",
            post(uci_writes::pppoe_secret_create),
        ),
        (
            "/api/mikrotik/pppoe/secret/remove",
            post(uci_writes::pppoe_secret_remove),
        ),
        (
            "/api/mikrotik/pppoe/server/configure",
            post(uci_writes::pppoe_server_configure),
        ),
        (
            "/api/mikrotik/bridge/create",
            post(uci_writes::bridge_create),
        ),
        (
            "/api/mikrotik/bridge/add-port",
            post(uci_writes::bridge_add_port),
        ),
        (
            "/api/mikrotik/network/setup",
            post(uci_writes::network_setup),
        ),
    ]
}

/// The routes of this group: the documented ones, then each alias of [`ALIASES`] bound to the
/// same method router as the path it stands for.
pub fn routes() -> Router<ApiState> {
    let table = documented();
    let mut router = Router::new();
    for (path, methods) in &table {
        router = router.route(path, methods.clone());
    }
    for (old, new) in ALIASES {
        if let Some((_, methods)) = table.iter().find(|(p, _)| p == new) {
            router = router.route(old, methods.clone());
        }
    }
    router
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        devices::list,
        devices::status,
        devices::current_status,
        config::device_config,
        devices::interfaces,
        devices::active_users,
        devices::user_stats,
        devices::health,
        vpn::status,
        vpn::clients,
        vpn::connected,
        vpn::details,
        vpn::usage,
        vpn::health,
        vpn_manage::server_logs,
        vpn_manage::server_config,
        vpn_manage::server_ip,
        vpn_manage::client_template,
        vpn_manage::create_client,
        vpn_manage::client_config,
        vpn_manage::revoke_client,
        vpn_manage::disconnect_client,
        bandwidth::real_time,
        bandwidth::peak,
        bandwidth::top_users,
        bandwidth::network_summary,
        bandwidth::alerts,
        bandwidth::quality,
        bandwidth::health,
        uci_writes::hotspot_authorize,
        uci_writes::hotspot_deauthorize,
        uci_writes::hotspot_configure,
        uci_writes::pppoe_secret_create,
        uci_writes::pppoe_secret_remove,
        uci_writes::pppoe_server_configure,
        uci_writes::bridge_create,
        uci_writes::bridge_add_port,
        uci_writes::network_setup,
    ),
    components(schemas(ErrorEnvelope, RateLimitEnvelope, bandwidth::SortBy, vpn_manage::CreateClient, vpn_manage::ClientTarget, vpn_manage::ClientCreated)),
    modifiers(&DeprecatedAliases),
    tags((name = "isp", description = "ISP middleware routes (`../shared/api/isp-middleware.md`): MikroTik blueprint (devices, users, interfaces), VPN, bandwidth"))
)]
pub struct Doc;

/// Adds each of [`ALIASES`] to the document: the documented path's operations, deprecated,
/// with `_deprecated_alias` appended to their operation ids.
struct DeprecatedAliases;

impl utoipa::Modify for DeprecatedAliases {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Deprecated;
        for (old, new) in ALIASES {
            let Some(mut item) = doc.paths.paths.get(*new).cloned() else {
                continue;
            };
            for op in super::openapi::operations_mut(&mut item) {
                op.deprecated = Some(Deprecated::True);
                op.operation_id = op
                    .operation_id
                    .take()
                    .map(|id| format!("{id}_deprecated_alias"));
                op.summary = Some(format!("Deprecated alias of {new}"));
                op.description = Some(format!(
                    "Deprecated: the same handler as `{new}` (the middleware's path); kept for clients of earlier releases."
                ));
            }
            doc.paths.paths.insert((*old).to_string(), item);
        }
    }
}

/// Declares, on every operation of this group's paths in the merged document (whichever group
/// documents it), the answers every such route can give: 405 (another method) in the
/// [`ErrorEnvelope`], 429 in the [`RateLimitEnvelope`] with its `Retry-After` header; and the
/// [`ErrorEnvelope`] as the body of every 4xx declared without one (`envelope::shape_errors`
/// answers them so).
pub fn declare_group_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        header::HeaderBuilder, ContentBuilder, Ref, RefOr, ResponseBuilder, Type,
    };
    let json = |schema: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if !is_group_path(path) {
            continue;
        }
        for op in super::openapi::operations_mut(item) {
            let responses = &mut op.responses.responses;
            for (code, answer) in responses.iter_mut() {
                if let (true, RefOr::T(r)) = (code.starts_with('4'), answer) {
                    if r.content.is_empty() {
                        r.content
                            .insert("application/json".into(), json("isp.ErrorEnvelope"));
                    }
                }
            }
            responses.entry("405".into()).or_insert_with(|| {
                ResponseBuilder::new()
                    .description("Method not allowed (`Allow` lists the route's methods)")
                    .content("application/json", json("isp.ErrorEnvelope"))
                    .build()
                    .into()
            });
            responses.entry("429".into()).or_insert_with(|| {
                ResponseBuilder::new()
                    .description(
                        "Rate limit exceeded (the group's per-route limits, `isp_rate_limits` in the collector config)",
                    )
                    .content("application/json", json("isp.RateLimitEnvelope"))
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(Type::Integer)
                                    .minimum(Some(1)),
                            )
                            .description(Some("Seconds until a request is allowed again"))
                            .build(),
                    )
                    .build()
                    .into()
            });
        }
    }
}

/// An error of this group, answered in the error envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct IspError {
    pub status: StatusCode,
    pub message: String,
}

impl IspError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        IspError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for IspError {
    fn from(e: ApiError) -> Self {
        IspError {
            status: e.status,
            message: e.message,
        }
    }
}

impl IntoResponse for IspError {
    fn into_response(self) -> Response {
        isp_error(self.status, &self.message)
    }
}

/// What a handler of this group returns.
pub type IspResult<T> = Result<Json<StampedEnvelope<T>>, IspError>;

/// What a handler of a route whose document shows top-level fields returns.
pub type IspFlatResult<T> = Result<Json<FlatEnvelope<T>>, IspError>;

/// Wraps `data` in the success envelope.
pub fn ok<T>(data: T) -> IspResult<T> {
    Ok(Json(stamped(data)))
}

/// Answers `data`'s fields at the top level (`{"success": true, ..., "timestamp"}`).
pub fn ok_flat<T>(data: T) -> IspFlatResult<T> {
    Ok(Json(flat(data)))
}

/// Maps a query error to a 500 in the error envelope (details in the log only).
pub fn db(e: rusqlite::Error) -> IspError {
    readpool::db_err(e).into()
}

/// Runs the prepared statement `st` with `p` and appends its rows, mapped by `map`, to `out`.
pub fn push_rows<T, P, F>(
    st: &mut rusqlite::Statement<'_>,
    p: P,
    map: F,
    out: &mut Vec<T>,
) -> Result<(), IspError>
where
    P: rusqlite::Params,
    F: FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    for row in st.query_map(p, map).map_err(db)? {
        out.push(row.map_err(db)?);
    }
    Ok(())
}

/// Checks for a read key (401/403 in the error envelope).
pub async fn auth(state: &ApiState, headers: &HeaderMap) -> Result<(), IspError> {
    require_role(state, headers, Role::Read)
        .await
        .map(|_| ())
        .map_err(IspError::from)
}

/// Checks for an admin key (401/403 in the error envelope): the caller, whom a write's action
/// names.
pub async fn admin(state: &ApiState, headers: &HeaderMap) -> Result<super::Caller, IspError> {
    require_role(state, headers, Role::Admin)
        .await
        .map_err(IspError::from)
}

/// The JSON body of a write route, or 400 `bad body: ...`.
pub fn json_body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, IspError> {
    b.map(|Json(v)| v)
        .map_err(|e| IspError::bad_request(format!("bad body: {}", e.body_text())))
}

/// Runs a read-only query on a pooled connection, with this group's error type.
pub async fn read<T, F>(state: &ApiState, f: F) -> Result<T, IspError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, IspError> + Send + 'static,
{
    with_read(state, move |c| Ok(f(c))).await?
}

/// The `{name}` of a path, or 400.
pub fn path_name(p: Result<Path<String>, PathRejection>, what: &str) -> Result<String, IspError> {
    let Path(name) = p.map_err(|e| {
        IspError::bad_request(format!("invalid {what} in the path: {}", e.body_text()))
    })?;
    // Length and control characters are checked before trimming, as the OpenAPI pattern
    // states them (U+0085 is both white space and a control character).
    if name.chars().count() > MAX_TEXT_CHARS || name.chars().any(char::is_control) {
        return Err(IspError::bad_request(format!(
            "the {what} must be at most {MAX_TEXT_CHARS} characters without control characters"
        )));
    }
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(IspError::bad_request(format!(
            "the {what} must not be empty"
        )));
    }
    Ok(name)
}

/// The query string of an ISP route as axum hands it over: every `(name, value)` pair, so that
/// [`Params::parse`] can answer repeated names with the middleware's own 400 and skip unknown ones.
pub type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query parameters of a request, checked against the names a route accepts.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// Declares the typed query of a route: a struct whose fields are the parameters the route
/// accepts (their names, in this order, are the only ones read: others are ignored, a name given
/// twice is a 400 from [`Params::parse`]), each read by its expression, in order. A route
/// without parameters declares a struct without fields.
macro_rules! isp_query {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty = $read:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl $name {
            /// The accepted parameter names.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Parses and checks the query string (400 in the error envelope).
            #[allow(unused_variables)]
            pub fn parse(q: $crate::api::isp::RawQuery) -> Result<Self, $crate::api::isp::IspError> {
                let p = $crate::api::isp::Params::parse(q, Self::NAMES)?;
                Ok(Self {
                    $($field: ($read)(&p)?,)*
                })
            }
        }
    };
}
pub(crate) use isp_query;

isp_query! {
    /// The query of a route that accepts no parameter.
    NoQuery {}
}

/// `limit` of a paged route's query (see [`Params::page`]).
pub fn page_limit(p: &Params) -> Result<usize, IspError> {
    p.page().map(|g| g.limit)
}

/// `cursor` of a paged route's query: the router id the page starts after.
pub fn page_after(p: &Params) -> Result<i64, IspError> {
    p.page().map(|g| g.after)
}

isp_query! {
    /// The query of a paged route without other parameters.
    PageQuery {
        limit: usize = page_limit,
        cursor: i64 = page_after,
    }
}

impl PageQuery {
    pub fn page(&self) -> Page {
        Page {
            after: self.cursor,
            limit: self.limit,
        }
    }
}

/// `resp` with the next page named in its headers (`paging::set_next_headers`).
pub fn with_next(resp: impl IntoResponse, uri: &Uri, next: Option<&str>) -> Response {
    let mut resp = resp.into_response();
    paging::set_next_headers(&mut resp, uri, next);
    resp
}

/// The page a route with a `device` parameter answers: none when a device is named (its one
/// router is the answer), else the router id range of `page`.
pub async fn device_page(
    state: &ApiState,
    device: &Option<String>,
    page: Page,
) -> Result<Option<PageBounds>, IspError> {
    match device {
        Some(_) => Ok(None),
        None => page_bounds(state, page).await.map(Some),
    }
}

/// The routers such a route answers: the named device, else the page's routers.
pub fn device_or_page(
    conn: &Connection,
    device: Option<&str>,
    page: Option<&PageBounds>,
) -> Result<Vec<RouterFacts>, IspError> {
    match (device_filter(conn, device)?, page) {
        (Some(r), _) => Ok(vec![r]),
        (None, Some(b)) => routers_in(conn, b),
        (None, None) => all_routers(conn),
    }
}

/// Cuts user input for echoing it in an error message.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

impl Params {
    /// Parses the query string; 400 for malformed encoding or a parameter of `allowed` given
    /// twice. Other names (cache busters like `_=123`) are ignored, as on the other groups.
    pub fn parse(q: RawQuery, allowed: &[&str]) -> Result<Params, IspError> {
        let Query(pairs) = q.map_err(|e| {
            IspError::bad_request(format!("invalid query string: {}", e.body_text()))
        })?;
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(k, _)| allowed.contains(&k.as_str()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs.iter().take(i).any(|(p, _)| p == k) {
                return Err(IspError::bad_request(format!(
                    "query parameter {k:?} is given more than once"
                )));
            }
        }
        Ok(Params(pairs))
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The page named by `limit` and `cursor` (see `paging`): 400 when either is bad.
    pub fn page(&self) -> Result<Page, IspError> {
        Page::parse(self.raw("limit"), self.raw("cursor"))
            .map_err(|e| IspError::bad_request(e.to_string()))
    }

    /// An integer parameter in `min..=max`, `default` when absent.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, IspError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        let n: i64 = v.trim().parse().map_err(|_| {
            IspError::bad_request(format!(
                "{name} must be an integer from {min} to {max}, got {:?}",
                echo(v)
            ))
        })?;
        if n < min || n > max {
            return Err(IspError::bad_request(format!(
                "{name} must be from {min} to {max}, got {n}"
            )));
        }
        Ok(n)
    }

    /// A number parameter with `0 < value <= max`, `default` when absent.
    pub fn positive_number(&self, name: &str, default: f64, max: f64) -> Result<f64, IspError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        let msg = || {
            format!(
                "{name} must be a number greater than 0 and at most {max}, got {:?}",
                echo(v)
            )
        };
        let n: f64 = v.trim().parse().map_err(|_| IspError::bad_request(msg()))?;
        if !n.is_finite() || n <= 0.0 || n > max {
            return Err(IspError::bad_request(msg()));
        }
        Ok(n)
    }

    /// A text parameter: trimmed, None when absent or empty, 400 when longer than
    /// [`MAX_TEXT_CHARS`].
    pub fn text(&self, name: &str) -> Result<Option<String>, IspError> {
        self.text_max(name, MAX_TEXT_CHARS)
    }

    /// A text parameter of at most `max` characters.
    pub fn text_max(&self, name: &str, max: usize) -> Result<Option<String>, IspError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        // Checked before trimming, as the OpenAPI pattern states it (U+0085 is both white
        // space and a control character).
        if v.chars().count() > max || v.chars().any(char::is_control) {
            return Err(IspError::bad_request(format!(
                "{name} must be at most {max} characters without control characters"
            )));
        }
        let v = v.trim();
        Ok((!v.is_empty()).then(|| v.to_string()))
    }

    /// One of `choices` (case-insensitive), `default` when absent or empty.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, IspError> {
        match self.raw(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => choices
                .iter()
                .copied()
                .find(|c| c.eq_ignore_ascii_case(v))
                .ok_or_else(|| {
                    IspError::bad_request(format!(
                        "{name} must be one of {}, got {:?}",
                        choices.join(", "),
                        echo(v)
                    ))
                }),
        }
    }
}

/// Bits per second to megabits per second, rounded to 3 decimals.
pub fn mbps(bps: f64) -> f64 {
    round(bps / 1_000_000.0, 3)
}

/// A kbit/s figure (station bitrates) in Mbit/s, rounded to 1 decimal.
pub fn kbps_to_mbps(v: Option<i64>) -> Option<f64> {
    v.map(|k| round(k as f64 / 1000.0, 1))
}

/// Rounds to `digits` decimals.
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Bytes to MiB, rounded to 2 decimals.
pub fn mib(bytes: i64) -> f64 {
    round(bytes as f64 / 1_048_576.0, 2)
}

/// Every enrolled router, by name.
pub fn all_routers(conn: &Connection) -> Result<Vec<RouterFacts>, IspError> {
    fleet::load_router_facts(conn).map_err(db)
}

/// The routers of one page (see `paging::bounds`), by name.
pub fn routers_in(conn: &Connection, b: &PageBounds) -> Result<Vec<RouterFacts>, IspError> {
    fleet::load_router_facts_in(conn, b.after, b.last).map_err(db)
}

/// The router id range `page` covers (read before a paged answer, so its cache key names it).
pub async fn page_bounds(state: &ApiState, page: Page) -> Result<PageBounds, IspError> {
    read(state, move |c| paging::bounds(c, page).map_err(db)).await
}

/// Routers looked up by id when first needed, each once: for routes about one user, client or
/// device that name a few routers (loading every router is O(fleet): 10,000 rows at 10,000
/// routers).
#[derive(Debug, Default)]
pub struct RouterCache(std::collections::HashMap<i64, Option<RouterFacts>>);

impl RouterCache {
    /// The router with this id (None: no such router).
    pub fn get(&mut self, conn: &Connection, id: i64) -> Result<Option<&RouterFacts>, IspError> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.0.entry(id) {
            e.insert(fleet::router_facts_by_id(conn, id).map_err(db)?);
        }
        Ok(self.0.get(&id).and_then(Option::as_ref))
    }

    /// The routers found so far, by id.
    pub fn into_found(self) -> std::collections::HashMap<i64, RouterFacts> {
        self.0
            .into_iter()
            .filter_map(|(id, f)| f.map(|f| (id, f)))
            .collect()
    }
}

/// The router called `name` (case-insensitive), or 404.
pub fn router_by_name(conn: &Connection, name: &str) -> Result<RouterFacts, IspError> {
    fleet::router_facts_by_name(conn, name)
        .map_err(db)?
        .ok_or_else(|| IspError::not_found(format!("unknown device {:?}", echo(name))))
}

/// The router named by an optional `device` parameter (None: all routers).
pub fn device_filter(
    conn: &Connection,
    device: Option<&str>,
) -> Result<Option<RouterFacts>, IspError> {
    device.map(|d| router_by_name(conn, d)).transpose()
}

/// The names of routers by id.
pub fn router_names(routers: &[RouterFacts]) -> std::collections::HashMap<i64, String> {
    routers.iter().map(|r| (r.id, r.name.clone())).collect()
}

/// What the DHCP leases say about a MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

const LEASE_SQL: &str = "SELECT ip, hostname FROM leases WHERE mac = ?1 \
     ORDER BY router_id IS ?2 DESC, hostname IS NULL, updated_ms DESC LIMIT 1";

/// The lease of `mac` (lowercase `aa:bb:..`): preferably on `router_id`, preferably with a
/// hostname, newest first. Default when no router has a lease for it.
pub fn lease_for_mac(
    conn: &Connection,
    mac: &str,
    router_id: Option<i64>,
) -> Result<LeaseInfo, IspError> {
    let mut st = conn.prepare_cached(LEASE_SQL).map_err(db)?;
    let row = st
        .query_row(params![mac, router_id], |r| {
            Ok(LeaseInfo {
                ip: r.get(0)?,
                hostname: r.get(1)?,
            })
        })
        .optional()
        .map_err(db)?;
    Ok(row.unwrap_or_default())
}

/// The leases of many MACs, loaded once for routes that look up many stations (the MACs of a
/// page's stations, with one statement, instead of a lookup per station).
#[derive(Debug, Default)]
pub struct LeaseBook {
    /// MAC -> (router id, lease, updated_ms)
    by_mac: std::collections::HashMap<String, Vec<(i64, LeaseInfo, i64)>>,
}

/// The leases of the MACs of the stations in the newest reports of the routers with
/// `?1 < id <= ?2` (one page), in one statement (`leases_mac` probes inside SQLite).
const PAGE_LEASES_SQL: &str =
    "SELECT router_id, ip, hostname, updated_ms, mac FROM leases WHERE mac IN \
     (SELECT s.mac FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id \
      AND s.ts_ms = r.last_report_ms WHERE r.id > ?1 AND r.id <= ?2)";

/// Every lease of MAC `?1`.
const MAC_LEASES_SQL: &str =
    "SELECT router_id, ip, hostname, updated_ms, mac FROM leases WHERE mac = ?1";

impl LeaseBook {
    /// The leases of every station MAC of the newest reports of the routers in the id range
    /// `span` (`paging::id_span`), read with one statement.
    pub fn for_page(conn: &Connection, span: (i64, i64)) -> Result<LeaseBook, IspError> {
        let mut st = conn.prepare_cached(PAGE_LEASES_SQL).map_err(db)?;
        let mut book = LeaseBook::default();
        book.add(st.query(params![span.0, span.1]).map_err(db)?)?;
        Ok(book)
    }

    /// Every lease of `macs`, read once: for a station seen on many routers (one lookup per
    /// router would read all its leases each time).
    pub fn for_macs(conn: &Connection, macs: &[String]) -> Result<LeaseBook, IspError> {
        let mut st = conn.prepare_cached(MAC_LEASES_SQL).map_err(db)?;
        let mut book = LeaseBook::default();
        for mac in macs {
            book.add(st.query([mac]).map_err(db)?)?;
        }
        Ok(book)
    }

    /// Adds rows of `router_id, ip, hostname, updated_ms, mac`.
    fn add(&mut self, mut rows: rusqlite::Rows<'_>) -> Result<(), IspError> {
        let book = self;
        while let Some(r) = rows.next().map_err(db)? {
            let lease = LeaseInfo {
                ip: r.get(1).map_err(db)?,
                hostname: r.get(2).map_err(db)?,
            };
            book.by_mac.entry(r.get(4).map_err(db)?).or_default().push((
                r.get(0).map_err(db)?,
                lease,
                r.get(3).map_err(db)?,
            ));
        }
        Ok(())
    }

    /// Like [`lease_for_mac`]: preferably on `router_id`, then with a hostname, then newest.
    pub fn get(&self, mac: &str, router_id: Option<i64>) -> LeaseInfo {
        let Some(list) = self.by_mac.get(mac) else {
            return LeaseInfo::default();
        };
        list.iter()
            .min_by_key(|(r, l, updated)| {
                (
                    Some(*r) != router_id,
                    l.hostname.is_none(),
                    std::cmp::Reverse(*updated),
                )
            })
            .map(|(_, l, _)| l.clone())
            .unwrap_or_default()
    }
}

/// A user: a hostname with the MACs leased under it, or one MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The hostname, else the MAC.
    pub username: String,
    pub hostname: Option<String>,
    /// Lowercase `aa:bb:cc:dd:ee:ff`, sorted.
    pub macs: Vec<String>,
    pub ip: Option<String>,
}

/// The display name of a station: its lease hostname, else its MAC.
pub fn username_of(mac: &str, lease: &LeaseInfo) -> String {
    lease.hostname.clone().unwrap_or_else(|| mac.to_string())
}

const MAC_SEEN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM station_samples_all WHERE mac = ?1) \
     OR EXISTS (SELECT 1 FROM leases WHERE mac = ?1)";
const HOSTNAME_SQL: &str =
    "SELECT mac, hostname, ip FROM leases WHERE hostname = ?1 COLLATE NOCASE \
     AND mac IS NOT NULL ORDER BY updated_ms DESC";

/// Finds the user called `name`: a MAC address seen as a station or in a lease, or a DHCP lease
/// hostname (case-insensitive; every MAC leased under that hostname). 404 when nothing matches.
pub fn resolve_user(conn: &Connection, name: &str) -> Result<User, IspError> {
    if let Ok(mac) = name.parse::<MacAddr>() {
        let mac = mac.to_string();
        let seen: bool = conn
            .prepare_cached(MAC_SEEN_SQL)
            .and_then(|mut st| st.query_row([&mac], |r| r.get(0)))
            .map_err(db)?;
        if !seen {
            return Err(IspError::not_found(format!(
                "unknown user {mac}: no station or DHCP lease has this MAC"
            )));
        }
        let lease = lease_for_mac(conn, &mac, None)?;
        return Ok(User {
            username: username_of(&mac, &lease),
            hostname: lease.hostname,
            macs: vec![mac],
            ip: lease.ip,
        });
    }
    let mut st = conn.prepare_cached(HOSTNAME_SQL).map_err(db)?;
    let rows: Vec<(String, String, String)> = st
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let Some((_, hostname, ip)) = rows.first().cloned() else {
        return Err(IspError::not_found(format!(
            "unknown user {:?}: no DHCP lease hostname or station MAC matches",
            echo(name)
        )));
    };
    let mut macs: Vec<String> = rows.into_iter().map(|(m, _, _)| m).collect();
    macs.sort_unstable();
    macs.dedup();
    Ok(User {
        username: hostname.clone(),
        hostname: Some(hostname),
        macs,
        ip: Some(ip),
    })
}

/// Which stations a station query covers.
// Fleet and Router are read by the plan checks; the routes use Macs.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every router.
    Fleet,
    /// One router.
    Router(i64),
    /// Some MACs, optionally on one router only.
    Macs(&'a [String], Option<i64>),
}

/// Traffic of one station (MAC on a router) over a window. Download is the station's tx (AP ->
/// station), upload its rx.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationTotal {
    pub router_id: i64,
    pub mac: String,
    pub upload_bytes: i64,
    pub download_bytes: i64,
    pub max_upload_bps: Option<i64>,
    pub max_download_bps: Option<i64>,
    pub samples: i64,
}

/// Splits the window `[start, now]` into a raw part `[start, boundary)` (at most one hour, read
/// from `station_samples`) and whole hour buckets from `boundary` on (read from
/// `station_rollup_1h`; the current hour's bucket holds exactly the samples so far).
pub fn split_window(start_ms: i64, now_ms: i64) -> (i64, i64) {
    let boundary = bucket_start(start_ms.saturating_add(BUCKET_1H_MS - 1), BUCKET_1H_MS);
    (boundary.min(now_ms.saturating_add(1)), boundary)
}

/// The queries of this module, for plan checks.
#[cfg(test)]
pub(crate) fn queries() -> Vec<(&'static str, String)> {
    let macs = Vec::new();
    vec![
        (
            "routers",
            format!("{} ORDER BY r.name", fleet::ROUTER_FACTS_SQL),
        ),
        (
            "router_by_name",
            format!("{} WHERE r.name = ?1", fleet::ROUTER_FACTS_SQL),
        ),
        (
            "router_by_id",
            format!("{} WHERE r.id = ?1", fleet::ROUTER_FACTS_SQL),
        ),
        ("lease", LEASE_SQL.to_string()),
        ("page_leases", PAGE_LEASES_SQL.to_string()),
        ("mac_leases", MAC_LEASES_SQL.to_string()),
        ("mac_seen", MAC_SEEN_SQL.to_string()),
        ("hostname", HOSTNAME_SQL.to_string()),
        ("totals_fleet", totals_sql(&Scope::Fleet)),
        ("totals_router", totals_sql(&Scope::Router(1))),
        ("totals_macs", totals_sql(&Scope::Macs(&macs, None))),
    ]
}

/// The query of [`station_totals`]: `?1` window start, `?2` end of the raw part, `?3` first
/// rollup bucket, `?4` now, `?5` router id, `?6` MAC.
pub fn totals_sql(scope: &Scope<'_>) -> String {
    let cols_raw = "s.router_id AS router_id, s.mac AS mac, coalesce(s.rx_delta, 0) AS rx, coalesce(s.tx_delta, 0) AS tx, \
                    s.rx_bps AS mrx, s.tx_bps AS mtx, 1 AS n";
    let cols_rollup =
        "u.router_id, u.mac, u.rx_bytes, u.tx_bytes, u.max_rx_bps, u.max_tx_bps, u.samples";
    let (raw, rollup) = match scope {
        Scope::Fleet => (
            format!(
                "SELECT {cols_raw} FROM routers r CROSS JOIN station_samples_all s ON s.router_id = r.id \
                 AND s.ts_ms >= ?1 AND s.ts_ms < ?2"
            ),
            format!("SELECT {cols_rollup} FROM station_rollup_1h u WHERE u.bucket_start_ms >= ?3 AND u.bucket_start_ms <= ?4"),
        ),
        Scope::Router(_) => (
            format!("SELECT {cols_raw} FROM station_samples_all s WHERE s.router_id = ?5 AND s.ts_ms >= ?1 AND s.ts_ms < ?2"),
            format!(
                "SELECT {cols_rollup} FROM station_rollup_1h u WHERE u.bucket_start_ms >= ?3 AND u.bucket_start_ms <= ?4 \
                 AND u.router_id = ?5"
            ),
        ),
        Scope::Macs(..) => (
            format!(
                "SELECT {cols_raw} FROM station_samples_all s WHERE s.mac = ?6 AND s.ts_ms >= ?1 AND s.ts_ms < ?2 \
                 AND (?5 IS NULL OR s.router_id = ?5)"
            ),
            format!(
                "SELECT {cols_rollup} FROM station_rollup_1h u WHERE u.mac = ?6 AND u.bucket_start_ms >= ?3 \
                 AND u.bucket_start_ms <= ?4 AND (?5 IS NULL OR u.router_id = ?5)"
            ),
        ),
    };
    format!(
        "SELECT router_id, mac, sum(rx), sum(tx), max(mrx), max(mtx), sum(n) FROM \
         ({raw} UNION ALL {rollup}) GROUP BY router_id, mac"
    )
}

/// Per-station traffic over `[start_ms, now_ms]`: raw deltas for the first partial hour, hourly
/// rollups for the rest.
pub fn station_totals(
    conn: &Connection,
    scope: Scope<'_>,
    start_ms: i64,
    now_ms: i64,
) -> Result<Vec<StationTotal>, IspError> {
    let (raw_end, boundary) = split_window(start_ms, now_ms);
    let sql = totals_sql(&scope);
    let mut st = conn.prepare_cached(&sql).map_err(db)?;
    let map = |r: &rusqlite::Row<'_>| {
        Ok(StationTotal {
            router_id: r.get(0)?,
            mac: r.get(1)?,
            upload_bytes: r.get(2)?,
            download_bytes: r.get(3)?,
            max_upload_bps: r.get(4)?,
            max_download_bps: r.get(5)?,
            samples: r.get(6)?,
        })
    };
    let bounds = (start_ms, raw_end, boundary, now_ms);
    let mut out = Vec::new();
    match scope {
        Scope::Fleet => push_rows(
            &mut st,
            params![bounds.0, bounds.1, bounds.2, bounds.3],
            map,
            &mut out,
        )?,
        Scope::Router(id) => push_rows(
            &mut st,
            params![bounds.0, bounds.1, bounds.2, bounds.3, id],
            map,
            &mut out,
        )?,
        Scope::Macs(macs, router) => {
            for mac in macs {
                push_rows(
                    &mut st,
                    params![bounds.0, bounds.1, bounds.2, bounds.3, router, mac],
                    map,
                    &mut out,
                )?;
            }
        }
    }
    Ok(out)
}

/// An ISP-group answer (`{"success": true, "data", "timestamp"}`) through the cache; `data`
/// runs when the cache needs a new body, and `timestamp` is when that body was made.
pub async fn cached_envelope<T, F>(
    state: &ApiState,
    key: &str,
    data: F,
) -> Result<Response, IspError>
where
    T: serde::Serialize + 'static,
    F: Fn(&rusqlite::Connection) -> Result<T, IspError> + Clone + Send + Sync + 'static,
{
    cached_with(state, key, data, stamped).await
}

/// Like [`cached_envelope`], with `data`'s fields at the top level ([`FlatEnvelope`]).
pub async fn cached_flat<T, F>(state: &ApiState, key: &str, data: F) -> Result<Response, IspError>
where
    T: serde::Serialize + 'static,
    F: Fn(&rusqlite::Connection) -> Result<T, IspError> + Clone + Send + Sync + 'static,
{
    cached_with(state, key, data, flat).await
}

/// An answer through the cache: `wrap` stamps the body `data` makes when the cache needs one.
async fn cached_with<T, E, F>(
    state: &ApiState,
    key: &str,
    data: F,
    wrap: fn(T) -> E,
) -> Result<Response, IspError>
where
    T: 'static,
    E: serde::Serialize + 'static,
    F: Fn(&rusqlite::Connection) -> Result<T, IspError> + Clone + Send + Sync + 'static,
{
    super::cache::cached_json(state, key, move |c| {
        Ok(wrap(
            data(c).map_err(|e| ApiError::new(e.status, e.message))?,
        ))
    })
    .await
    .map_err(IspError::from)
}
