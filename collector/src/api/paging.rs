//! Paging of whole-fleet answers by router: `limit` routers per page (default
//! [`DEFAULT_LIMIT`], a larger `limit` is cut to [`MAX_LIMIT`]) after `cursor`, the opaque token a previous page
//! returned as its next cursor (today the last router id of that page, in router id order).
//! A page holds the routers with an id above the cursor, in id order, so a router enrolled
//! while a client pages through is seen on a later page and none is seen twice.
//!
//! One home for every paged route:
//! - [`Page::parse`] reads the `limit` and `cursor` query values; [`limit_schema`] and
//!   [`cursor_schema`] declare them in the OpenAPI document (`#[param(schema_with = ...)]`);
//! - [`bounds`] turns a page into the router id range it covers, counted over the `routers`
//!   table (every enrolled router, revoked or not), so the next cursor is known before the
//!   answer is computed and a cached answer keyed by the page needs no extra state; a route
//!   filters its rows with `r.id > after AND r.id <= last` and may show fewer entries than
//!   `limit` (revoked or offline routers, routers without the item);
//! - [`set_next_headers`] names the next page in the response headers (`Link: <...>;
//!   rel="next"` with the request's query and the new cursor, and `X-Next-Cursor`), for the
//!   routes whose documented JSON has no field for it (the seed tools' bare arrays and fixed
//!   objects); a route with its own document field (`/api/export`'s `next_cursor`) may set both.

use axum::http::{HeaderName, HeaderValue, Uri};
use axum::response::Response;
use rusqlite::{params, Connection};

/// Routers per page when `limit` is not given: keeps a whole-fleet answer at about 2 MB.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// Why `limit` or `cursor` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error(
        "limit must be a whole number of routers from 1 (at most {MAX_LIMIT} are sent), got {0:?}"
    )]
    Limit(String),
    #[error("cursor {0:?} is not a cursor this collector returned")]
    Cursor(String),
}

/// One page of routers: those with `id > after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub after: i64,
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            after: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Page {
    /// Parses the `limit` and `cursor` query values (missing or empty: the defaults).
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, PageError> {
        let limit = match limit.map(str::trim).filter(|v| !v.is_empty()) {
            None => DEFAULT_LIMIT,
            // Above the maximum is the maximum (a client asking for "everything" gets pages).
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
                _ => return Err(PageError::Limit(v.to_string())),
            },
        };
        let after = match cursor.map(str::trim).filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => match v.strip_prefix('r').and_then(|n| n.parse::<i64>().ok()) {
                Some(id) if id >= 0 => id,
                _ => return Err(PageError::Cursor(v.to_string())),
            },
        };
        Ok(Page { after, limit })
    }
}

/// The cursor naming the page after router `id`.
pub fn cursor_of(id: i64) -> String {
    format!("r{id}")
}

/// The router id range of one page: routers with `after < id <= last`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageBounds {
    pub after: i64,
    /// The last router id of the page (`i64::MAX` on the last page).
    pub last: i64,
    /// The cursor of the next page, `None` on the last one.
    pub next_cursor: Option<String>,
}

/// The id range [`Page`] covers in the `routers` table (an index range on its primary key,
/// `limit + 1` rows at most).
pub fn bounds(conn: &Connection, page: Page) -> rusqlite::Result<PageBounds> {
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
    let mut st =
        conn.prepare_cached("SELECT id FROM routers WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let ids = st
        .query_map(params![page.after, limit.saturating_add(1)], |r| {
            r.get::<_, i64>(0)
        })?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(match ids.get(page.limit.saturating_sub(1)) {
        Some(&last) if ids.len() > page.limit => PageBounds {
            after: page.after,
            last,
            next_cursor: Some(cursor_of(last)),
        },
        _ => PageBounds {
            after: page.after,
            last: i64::MAX,
            next_cursor: None,
        },
    })
}

/// The `X-Next-Cursor` header.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// Names the next page in `resp`'s headers: `Link: <path?query>; rel="next"` (the request's
/// query with `cursor` replaced) and `X-Next-Cursor`. Nothing on the last page.
pub fn set_next_headers(resp: &mut Response, uri: &Uri, next_cursor: Option<&str>) {
    let Some(cursor) = next_cursor else { return };
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("cursor"))
        .map(str::to_string)
        .collect();
    // Cursors are `r` and digits: nothing to percent-encode.
    query.push(format!("cursor={cursor}"));
    let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&link) {
        h.insert(axum::http::header::LINK, v);
    }
    if let Ok(v) = HeaderValue::from_str(cursor) {
        h.insert(NEXT_CURSOR, v);
    }
}

/// OpenAPI schema of `limit` as [`Page::parse`] takes it: blank, or a whole number from 1 (at
/// most 19 significant digits, so it fits a u64), trimmed.
pub fn limit_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    super::openapi::string_pattern(&format!("^[{ws}]*(\\+?0*[1-9][0-9]{{0,18}})?[{ws}]*$"))
}

/// OpenAPI schema of `cursor`: blank, or `r` and a router id (a previous page's next cursor),
/// trimmed.
pub fn cursor_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    super::openapi::string_pattern(&format!("^[{ws}]*(r\\+?[0-9]{{1,18}})?[{ws}]*$"))
}

// ---------------------------------------------------------------------------------------------
// Shared by the paged routes of the WireGuard, gateway, dashboard and monitor groups.

/// `limit` and `cursor`: the whole query of a paged route without other parameters, and the
/// OpenAPI declaration of both for every paged route (`params(PageQuery, ...)`; a route whose
/// handler reads its query otherwise, like the ISP group's `isp_query!`, declares them with
/// this type and reads them with [`Page::parse`]: utoipa's `IntoParams` cannot flatten one
/// type into another).
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Routers per page (default 100; above 1000 means 1000).
    #[param(schema_with = limit_schema)]
    pub limit: Option<String>,
    /// The cursor of the next page, from the previous page's `X-Next-Cursor` header (or its
    /// `Link` rel="next"); absent: the first page.
    #[param(schema_with = cursor_schema)]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// [`Page::parse`], a bad value as a 400.
    pub fn page(&self) -> Result<Page, super::ApiError> {
        page_arg(self.limit.as_deref(), self.cursor.as_deref())
    }
}

/// [`Page::parse`], a bad value as a 400.
pub fn page_arg(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, super::ApiError> {
    Page::parse(limit, cursor).map_err(|e| super::ApiError::bad_request(e.to_string()))
}

/// A JSON answer for one page, the next page named in its headers ([`set_next_headers`]).
pub fn paged_json<T: serde::Serialize>(body: &T, uri: &Uri, next_cursor: Option<&str>) -> Response {
    use axum::response::IntoResponse;
    let mut resp = axum::Json(body).into_response();
    set_next_headers(&mut resp, uri, next_cursor);
    resp
}

/// The `(after, last)` id range covering `ids` (`after < id <= last`): the range a fleet-wide
/// statement reads when it serves these routers only (a page's routers, or one router).
/// `(0, 0)` (nothing) without ids.
pub fn id_span(ids: impl IntoIterator<Item = i64>) -> (i64, i64) {
    ids.into_iter()
        .fold(None, |acc: Option<(i64, i64)>, id| {
            Some(acc.map_or((id, id), |(lo, hi)| (lo.min(id), hi.max(id))))
        })
        .map_or((0, 0), |(lo, hi)| (lo.saturating_sub(1), hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_cursors() {
        assert_eq!(Page::parse(None, None).unwrap(), Page::default());
        assert_eq!(Page::parse(Some(""), Some("")).unwrap(), Page::default());
        assert_eq!(
            Page::parse(Some("3"), Some("r17")).unwrap(),
            Page {
                after: 17,
                limit: 3
            }
        );
        assert_eq!(Page::parse(Some("1000"), None).unwrap().limit, 1000);
        assert_eq!(Page::parse(Some("100000"), None).unwrap().limit, MAX_LIMIT);
        for bad in ["0", "-1", "1.5", "x", "99999999999999999999999"] {
            assert_eq!(
                Page::parse(Some(bad), None),
                Err(PageError::Limit(bad.into()))
            );
        }
        for bad in ["17", "r", "r-1", "rx", "%20"] {
            assert!(matches!(
                Page::parse(None, Some(bad)),
                Err(PageError::Cursor(_))
            ));
        }
    }

    #[test]
    fn bounds_count_every_router_and_name_the_next_page() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE routers (id INTEGER PRIMARY KEY); \
             INSERT INTO routers (id) VALUES (2), (3), (5), (8), (13);",
        )
        .unwrap();
        let b = bounds(&c, Page { after: 0, limit: 2 }).unwrap();
        assert_eq!(
            (b.after, b.last, b.next_cursor.as_deref()),
            (0, 3, Some("r3"))
        );
        let b = bounds(&c, Page { after: 3, limit: 3 }).unwrap();
        assert_eq!((b.after, b.last, b.next_cursor), (3, i64::MAX, None));
        let b = bounds(&c, Page { after: 3, limit: 2 }).unwrap();
        assert_eq!((b.last, b.next_cursor.as_deref()), (8, Some("r8")));
        let b = bounds(
            &c,
            Page {
                after: 13,
                limit: 2,
            },
        )
        .unwrap();
        assert_eq!((b.last, b.next_cursor), (i64::MAX, None));
    }

    #[test]
    fn next_headers_keep_the_query_and_replace_the_cursor() {
        let mut resp = Response::new(axum::body::Body::empty());
        let uri: Uri = "/api/users/active?limit=2&cursor=r3&x=1".parse().unwrap();
        set_next_headers(&mut resp, &uri, Some("r8"));
        assert_eq!(
            resp.headers()["link"],
            "</api/users/active?limit=2&x=1&cursor=r8>; rel=\"next\""
        );
        assert_eq!(resp.headers()["x-next-cursor"], "r8");
        let mut last = Response::new(axum::body::Body::empty());
        set_next_headers(&mut last, &uri, None);
        assert!(last.headers().get("link").is_none());
        assert!(last.headers().get("x-next-cursor").is_none());
    }
}

#[cfg(test)]
mod span_tests {
    use super::id_span;

    #[test]
    fn span_covers_exactly_the_ids() {
        assert_eq!(id_span([5, 2, 9]), (1, 9));
        assert_eq!(id_span([7]), (6, 7));
        assert_eq!(id_span([]), (0, 0));
    }
}
