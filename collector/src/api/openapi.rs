//! Route group `openapi`: `GET /api/openapi.json` (open), the OpenAPI document of the whole API,
//! generated from the code: every route group's `Doc` fragment plus the routes of `api/mod.rs`
//! (`/health`, `POST /api/admin/tokens`), merged once, with the document info and the two API
//! key security schemes.
//!
//! Security: the document requires a key on every operation (`security` at the top level:
//! [`API_KEY_SCHEME`] *or* [`BEARER_SCHEME`]); open routes say so with an empty requirement
//! (`security(())` in their `#[utoipa::path]`), which overrides the default.
//!
//! Merging keeps the first definition of a schema name or path operation; [`build`] reports
//! the names defined differently by two groups and repeated operation ids (utoipa uses the
//! function name, so two `health` handlers clash unless one sets `operation_id`), so such
//! clashes are caught by tests instead of silently pointing `$ref`s at the wrong type.

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Components, InfoBuilder, OpenApi as Document, PathItem, Paths, RefOr, Response,
};
use utoipa::OpenApi;

use super::ApiState;

/// Name of the `X-API-Key` header scheme.
pub const API_KEY_SCHEME: &str = "api_key";
/// Name of the `Authorization: Bearer` scheme.
pub const BEARER_SCHEME: &str = "bearer";

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(openapi_json),
    tags((name = "openapi", description = "This document"))
)]
pub struct Doc;

/// The routes served by `api/mod.rs` itself.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(super::health, super::create_token_handler),
    tags((name = "collector", description = "Collector health and administration"))
)]
pub struct CoreDoc;

/// The OpenAPI document of the API (open).
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi_json",
    tag = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub async fn openapi_json() -> Json<&'static Document> {
    Json(document())
}

/// Every fragment with the group it comes from, in merge order.
pub fn fragments() -> Vec<(&'static str, Document)> {
    vec![
        ("core", CoreDoc::openapi()),
        ("openwrt", super::openwrt::Doc::openapi()),
        ("monitor", super::monitor::Doc::openapi()),
        ("gateway", super::gateway::Doc::openapi()),
        ("isp", super::isp::Doc::openapi()),
        ("wireguard", super::wireguard::Doc::openapi()),
        ("wg_writes", super::wg_writes::Doc::openapi()),
        ("actions", super::actions::Doc::openapi()),
        ("backups", super::backups::Doc::openapi()),
        ("device_status", super::device_status::Doc::openapi()),
        ("limits", super::limits::Doc::openapi()),
        ("prometheus", super::prometheus::Doc::openapi()),
        ("dashboard", super::dashboard::Doc::openapi()),
        ("alerts", super::alerts::Doc::openapi()),
        ("series", super::series::Doc::openapi()),
        ("openapi", Doc::openapi()),
    ]
}

/// The (method, operation present) pairs of a path item.
fn methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("get", item.get.is_some()),
        ("put", item.put.is_some()),
        ("post", item.post.is_some()),
        ("delete", item.delete.is_some()),
        ("options", item.options.is_some()),
        ("head", item.head.is_some()),
        ("patch", item.patch.is_some()),
        ("trace", item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, present)| present.then_some(m))
    .collect()
}

/// The operations of a path item.
fn operations(item: &PathItem) -> impl Iterator<Item = &utoipa::openapi::path::Operation> {
    [
        &item.get,
        &item.put,
        &item.post,
        &item.delete,
        &item.options,
        &item.head,
        &item.patch,
        &item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Every operation id of a document.
fn operation_ids(doc: &Document) -> Vec<&str> {
    doc.paths
        .paths
        .values()
        .flat_map(operations)
        .filter_map(|o| o.operation_id.as_deref())
        .collect()
}

/// Names `fragment` would define differently from `doc` (schemas with other content, path
/// operations already defined, operation ids already used).
fn clashes(doc: &Document, group: &str, fragment: &Document) -> Vec<String> {
    let mut out = Vec::new();
    let ids = operation_ids(doc);
    for id in operation_ids(fragment) {
        if ids.contains(&id) {
            out.push(format!("operationId {id} of group {group} is already used"));
        }
    }
    if let (Some(have), Some(new)) = (doc.components.as_ref(), fragment.components.as_ref()) {
        for (name, schema) in &new.schemas {
            if have.schemas.get(name).is_some_and(|s| s != schema) {
                out.push(format!(
                    "schema {name} of group {group} differs from an earlier definition"
                ));
            }
        }
    }
    for (path, item) in &fragment.paths.paths {
        if let Some(existing) = doc.paths.paths.get(path) {
            let taken = methods(existing);
            for m in methods(item).into_iter().filter(|m| taken.contains(m)) {
                out.push(format!(
                    "{} {path} of group {group} is already documented",
                    m.to_uppercase()
                ));
            }
        }
    }
    out
}

/// The operations of a path item, mutably.
pub(crate) fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Whether an operation takes a key (its own `security`, or the document's when it has none):
/// true unless every requirement it lists is the empty (open) one.
fn takes_a_key(op: &utoipa::openapi::path::Operation) -> bool {
    match &op.security {
        None => true,
        Some(reqs) => reqs.iter().any(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_object().map(|o| !o.is_empty()))
                .unwrap_or(true)
        }),
    }
}

/// Declares on every operation that takes a key the answers [`super::require_role`] gives:
/// 401 (missing or unknown key, invalid JWT) and 403 (too low a role, or a JWT without a known
/// role), where the route's own annotation did not already.
fn declare_auth_statuses(doc: &mut Document) {
    use utoipa::openapi::{RefOr, Response};
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            if !takes_a_key(op) {
                continue;
            }
            let r = &mut op.responses.responses;
            r.entry("401".into()).or_insert_with(|| {
                RefOr::T(Response::new(
                    "Missing or unknown API key, or an invalid, expired or unsigned JWT",
                ))
            });
            r.entry("403".into()).or_insert_with(|| {
                RefOr::T(Response::new(
                    "The key or token has too low a role, or the JWT names no known role",
                ))
            });
        }
    }
}

/// Builds the merged document and the clashes found while merging.
pub fn build() -> (Document, Vec<String>) {
    let info = InfoBuilder::new()
        .title("routerstats")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The routerstats collector API over the fleet's data. Read routes need a read key, admin routes \
             an admin key, sent as `X-API-Key: <key>` or `Authorization: Bearer <key>` (or a JWT as the bearer \
             token when configured); health routes are open.",
        ))
        .build();
    let mut doc = Document::new(info, Paths::new());
    let mut found = Vec::new();
    for (group, fragment) in fragments() {
        found.extend(clashes(&doc, group, &fragment));
        doc.merge(fragment);
    }
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        API_KEY_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
    );
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("API key or JWT")
                .description(Some(
                    "An API key as a bearer token, or a JWT when the collector has a `[jwt]` key \
                     configured (HS256 secret or ES256/RS256 public key; role from the configured \
                     claim, caller from `sub`). An invalid, expired, unsigned or foreign-algorithm \
                     token is 401; a valid token without a known role is 403.",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![
        SecurityRequirement::new(API_KEY_SCHEME, Vec::<String>::new()),
        SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
    ]);
    declare_auth_statuses(&mut doc);
    super::isp::declare_group_answers(&mut doc);
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            add_common_responses(op);
        }
    }
    (doc, found)
}

/// Free text of at most 64 characters without control characters (`char::is_control`), as the
/// filters of several routes take it: trimmed first (Unicode white space, which includes a few
/// control characters such as tab), and blank is the same as absent.
pub const TEXT_64: &str = "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\u0000-\\u001f\\u007f-\\u009f]{0,64}[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$";
/// Like [`TEXT_64`], at most 256 characters.
pub const TEXT_256: &str = "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\u0000-\\u001f\\u007f-\\u009f]{0,256}[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$";
/// 1-256 characters without control characters once trimmed, the first not white space.
pub const NONBLANK_256: &str = "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]{0,255}[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$";
/// Like [`NONBLANK_256`], at most 64 characters: `dashboard::router_detail` writes it out (a
/// `params((...))` pattern must be a literal); the tests check the two are equal.
#[cfg(test)]
pub const NONBLANK_64: &str = "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]{0,63}[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$";

/// A router name as `crate::store::check_router_name` accepts it.
pub const ROUTER_NAME: &str = "^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
/// A `true`/`false` flag as the WireGuard routes parse it (any case, or `1`/`0`).
pub const FLAG: &str = "^\\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)\\s*$";

/// The characters `str::trim` removes (Unicode White_Space), as a regular-expression class body.
pub const TRIMMED: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A string schema with `pattern`.
pub fn string_pattern(pattern: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(pattern))
        .build()
}

/// Like [`string_pattern`], also allowing `null` (an optional body field).
pub fn nullable_pattern(pattern: &str) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(pattern))
        .build()
}

/// Schemas of the patterns above, for `#[param(schema_with = ...)]` and `#[schema(schema_with = ...)]`.
pub mod pattern {
    use utoipa::openapi::Object;

    pub fn text_64() -> Object {
        super::string_pattern(super::TEXT_64)
    }
    pub fn text_256() -> Object {
        super::string_pattern(super::TEXT_256)
    }
    pub fn nonblank_256() -> Object {
        super::string_pattern(super::NONBLANK_256)
    }
    pub fn router_name() -> Object {
        super::string_pattern(super::ROUTER_NAME)
    }
    pub fn flag() -> Object {
        super::string_pattern(super::FLAG)
    }
    pub fn peer_name() -> Object {
        super::string_pattern(routerstats_shared::action::PEER_NAME_PATTERN)
    }
    pub fn iface() -> Object {
        super::string_pattern(routerstats_shared::action::IFACE_PATTERN)
    }
    pub fn iface_or_null() -> Object {
        super::nullable_pattern(routerstats_shared::action::IFACE_PATTERN)
    }
    pub fn nonblank_256_or_null() -> Object {
        super::nullable_pattern(super::NONBLANK_256)
    }
}

/// A string schema allowing only `values` (for `#[param(schema_with = ...)]`).
pub fn string_enum(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// Declares the answers the API's shared layers give on every route, where the route's own
/// annotation (or [`declare_auth_statuses`], [`super::isp::declare_group_answers`]) did not: 429
/// from the rate limiter (every route) and 400 from the query, path and body extractors (every
/// route that takes a parameter or a body: a repeated or malformed parameter).
fn add_common_responses(op: &mut Operation) {
    let takes_input =
        op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
    let responses = &mut op.responses.responses;
    let mut add = |code: &str, description: &str| {
        responses
            .entry(code.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    };
    add(
        "429",
        "Rate limit exceeded for this key or client address (`Retry-After` says when to retry)",
    );
    if takes_input {
        add(
            "400",
            "A parameter or the body is malformed or out of range",
        );
    }
}

/// The document, built on first use; clashes are logged.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let (doc, found) = build();
        for c in found {
            tracing::warn!(clash = %c, "OpenAPI fragments clash");
        }
        doc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_with_security_and_no_clashes() {
        let (doc, found) = build();
        assert!(found.is_empty(), "{found:?}");
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(json["info"]["title"], "routerstats");
        assert_eq!(json["info"]["version"], env!("CARGO_PKG_VERSION"));
        let schemes = &json["components"]["securitySchemes"];
        assert_eq!(schemes[API_KEY_SCHEME]["type"], "apiKey");
        assert_eq!(schemes[API_KEY_SCHEME]["in"], "header");
        assert_eq!(schemes[API_KEY_SCHEME]["name"], "X-API-Key");
        assert_eq!(schemes[BEARER_SCHEME]["scheme"], "bearer");
        for path in [
            "/health",
            "/api/admin/tokens",
            "/api/openapi.json",
            "/metrics",
            "/api/metrics/summary",
        ] {
            assert!(json["paths"].get(path).is_some(), "{path} missing");
        }
        // GET / (JSON status or the page) and the POST /api/health round trip.
        let root = &json["paths"]["/"]["get"]["responses"]["200"]["content"];
        assert!(
            root.get("application/json").is_some() && root.get("text/html").is_some(),
            "{root}"
        );
        let ping = &json["paths"]["/api/health"]["post"]["responses"];
        for status in ["200", "400", "401", "403", "404", "503", "504"] {
            assert!(ping.get(status).is_some(), "POST /api/health {status}");
        }
        assert_eq!(schemes[BEARER_SCHEME]["bearerFormat"], "API key or JWT");
        // Every keyed operation declares 401 and 403; open ones do not get them.
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let open = op["security"] == serde_json::json!([{}]);
                let r = &op["responses"];
                assert_eq!(
                    r.get("401").is_some() && r.get("403").is_some(),
                    !open,
                    "{method} {path}"
                );
            }
        }
        // Open routes override the document's security with an empty requirement.
        assert_eq!(
            json["paths"]["/health"]["get"]["security"],
            serde_json::json!([{}])
        );
    }

    #[test]
    fn every_operation_declares_the_shared_layers_answers() {
        let json = serde_json::to_value(build().0).unwrap();
        let mut seen = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let codes = op["responses"].as_object().unwrap();
                assert!(codes.contains_key("429"), "{method} {path}: no 429");
                let open = op["security"] == serde_json::json!([{}]);
                if !open {
                    assert!(codes.contains_key("401"), "{method} {path}: no 401");
                }
                let takes_input = op["parameters"].as_array().is_some_and(|p| !p.is_empty())
                    || op.get("requestBody").is_some();
                if takes_input {
                    assert!(codes.contains_key("400"), "{method} {path}: no 400");
                }
                seen += 1;
            }
        }
        assert!(seen > 50, "{seen} operations");
    }

    #[test]
    fn written_out_patterns_are_the_shared_ones() {
        // `params((...))` tuples take literal patterns only: they must equal the shared constants.
        let json = serde_json::to_value(build().0).unwrap();
        let param = |path: &str, method: &str, name: &str| {
            json["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} {name}"))["schema"]["pattern"]
                .clone()
        };
        let peer = routerstats_shared::action::PEER_NAME_PATTERN;
        assert_eq!(param("/peer/{name}", "delete", "name"), peer);
        assert_eq!(param("/peer/{name}/qr", "get", "name"), peer);
        assert_eq!(
            param("/peer/{name}", "delete", "interface"),
            routerstats_shared::action::IFACE_PATTERN
        );
        assert_eq!(
            json["paths"]["/api/routers/{id}"]["get"]["parameters"][0]["schema"]["pattern"],
            NONBLANK_64
        );
        let body = &json["components"]["schemas"]["AddPeer"]["properties"];
        assert_eq!(body["name"]["pattern"], peer);
        for (path, method) in [
            ("/api/vpn/clients/{name}/config", "get"),
            ("/api/vpn/clients/{name}/revoke", "post"),
            ("/api/vpn/clients/{name}/disconnect", "post"),
        ] {
            assert_eq!(
                param(path, method, "name"),
                routerstats_shared::action::CLIENT_NAME_PATTERN,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn patterns_match_what_the_checks_accept() {
        use routerstats_shared::action::{
            check_client_name, check_iface, check_peer_name, check_wg_key,
        };
        use routerstats_shared::action::{
            CLIENT_NAME_PATTERN, IFACE_PATTERN, PEER_NAME_PATTERN, WG_KEY_PATTERN,
        };
        type Check = fn(&str) -> Result<(), String>;
        let cases: [(&str, Check, &[&str]); 4] = [
            (
                CLIENT_NAME_PATTERN,
                check_client_name,
                &[
                    "new_client",
                    "0",
                    "_x",
                    "a b",
                    "",
                    "x".repeat(64).leak(),
                    "x".repeat(65).leak(),
                    "a.b",
                ],
            ),
            (
                IFACE_PATTERN,
                check_iface,
                &[
                    "wg0",
                    "",
                    "a_b",
                    "wg-0",
                    "abcdefghijklmno",
                    "abcdefghijklmnop",
                    "é",
                ],
            ),
            (
                PEER_NAME_PATTERN,
                check_peer_name,
                &[
                    "laptop",
                    "-x",
                    "a-b_c",
                    "",
                    "x".repeat(32).leak(),
                    "x".repeat(33).leak(),
                    "a b",
                ],
            ),
            (
                WG_KEY_PATTERN,
                check_wg_key,
                &[
                    "BlEJmBoZM4StM4bgBNJO2C6WNB5xEQs4+01sagkPbpE=",
                    "BlEJmBoZM4StM4bgBNJO2C6WNB5xEQs4+01sagkPbpF=",
                    "BlEJmBoZM4StM4bgBNJO2C6WNB5xEQs4+01sagkPbpE",
                    "short=",
                ],
            ),
        ];
        for (pattern, check, inputs) in cases {
            let re = regex::Regex::new(pattern).unwrap();
            for input in inputs {
                assert_eq!(
                    re.is_match(input),
                    check(input).is_ok(),
                    "{pattern} on {input:?}"
                );
            }
        }
    }

    #[test]
    fn text_patterns_match_trim_then_check() {
        // What the routes do: trim (Unicode white space), then at most N characters, none a
        // control character; the non-blank ones also need something left after the trim.
        let accepts = |s: &str, max: usize, nonblank: bool| {
            let t = s.trim();
            t.chars().count() <= max
                && !t.chars().any(char::is_control)
                && (!nonblank || !t.is_empty())
        };
        let long = format!("a{}b", " ".repeat(70));
        let padded = format!("{}a", " ".repeat(70));
        let inputs = [
            "",
            " ",
            "\t[Y",
            "a\tb",
            " ok ",
            "\u{85}x",
            "x\u{7f}",
            "\u{3000}y\u{3000}",
            "\u{1c}z",
            long.as_str(),
            padded.as_str(),
            "é日本",
        ];
        for (pattern, max, nonblank) in [(TEXT_64, 64, false), (NONBLANK_64, 64, true)] {
            let re = regex::Regex::new(pattern).unwrap();
            for input in inputs {
                assert_eq!(
                    re.is_match(input),
                    accepts(input, max, nonblank),
                    "{pattern} on {input:?}"
                );
            }
        }
    }

    #[test]
    fn clashes_are_reported() {
        let (doc, _) = build();
        let again = super::super::wireguard::Doc::openapi();
        let found = clashes(&doc, "again", &again);
        assert!(
            found.iter().any(|c| c.contains("GET /api/metrics/summary")),
            "{found:?}"
        );
        // Same schema content under the same name is no clash.
        assert!(!found.iter().any(|c| c.starts_with("schema")), "{found:?}");
        let mut other = Document::new(InfoBuilder::new().build(), Paths::new());
        let mut comps = Components::new();
        comps.schemas.insert(
            "WgSummary".into(),
            utoipa::openapi::RefOr::T(utoipa::openapi::Schema::default()),
        );
        other.components = Some(comps);
        assert!(clashes(&doc, "x", &other)
            .iter()
            .any(|c| c.contains("schema WgSummary")));
    }
}
