//! Route group `series`: the dashboard's interface chart, with gaps.
//!
//! - `GET /api/routers/{id}/interfaces/{name}/series?duration=15m|1h|1d|7d` (read key): the
//!   same [`POINTS`] intervals and byte sums as `/api/gateway/{id}/port/{port}/traffic`
//!   ([`super::gateway::port_traffic_series`]), plus, per interval, how many samples with a known delta
//!   (raw windows) or rollup buckets with a known rate (1d, 7d) it holds. An interval without
//!   any has `null` bytes and rates: nothing was measured there (the agent had not started, was
//!   offline or its counters restarted), which the chart draws as a gap, never as 0 bit/s.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{params, Connection};
use serde::Serialize;
use utoipa::ToSchema;

use super::gateway::{port_traffic_series, TrafficQuery};
use super::readpool::db_err;
use super::window::{Window, POINTS};
use super::{require_role, with_read, ApiError, ApiState};
use crate::alerts::now_ms;
use crate::pki::tokens::Role;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new().route(
        "/api/routers/{id}/interfaces/{name}/series",
        get(interface_series),
    )
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(interface_series),
    components(schemas(GapSeries, GapPoint)),
    tags((name = "series", description = "Chart series with gaps for missing samples"))
)]
pub struct Doc;

/// One interval; `null` bytes and rates when nothing was measured in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GapPoint {
    /// Unix seconds of the interval's start.
    pub timestamp: i64,
    /// Samples with a known delta (raw windows) or rollup buckets with a known rate in it.
    pub samples: u32,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    /// Average bits per second over the interval.
    pub rx_bps: Option<u64>,
    pub tx_bps: Option<u64>,
}

/// An interface's traffic over a window, with gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GapSeries {
    pub router_id: i64,
    pub router: String,
    pub interface: String,
    /// `15m`, `1h`, `1d` or `7d`.
    pub duration: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    /// Seconds per point.
    pub interval: i64,
    /// Window totals.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub points: Vec<GapPoint>,
}

const RAW_COUNT_SQL: &str = "SELECT ts_ms FROM interface_samples \
     WHERE router_id = ?1 AND name = ?2 AND ts_ms BETWEEN ?3 AND ?4 \
     AND (rx_delta IS NOT NULL OR tx_delta IS NOT NULL)";
const ROLLUP_COUNT_SQL: &str = "SELECT bucket_start_ms FROM {table} \
     WHERE router_id = ?1 AND name = ?2 AND bucket_start_ms BETWEEN ?3 AND ?4 \
     AND (max_rx_bps IS NOT NULL OR max_tx_bps IS NOT NULL)";

/// The series of `port` on router `id` over `window` ending at `now_ms`, with gaps.
pub fn gap_series(
    conn: &Connection,
    id: &str,
    port: &str,
    window: Window,
    now_ms: i64,
) -> Result<GapSeries, ApiError> {
    let s = port_traffic_series(conn, id, port, window, now_ms)?;
    let (start, end) = (s.start * 1000, s.end * 1000);
    let interval = (s.interval * 1000).max(1);
    let sql = match window {
        Window::M15 | Window::H1 => RAW_COUNT_SQL.to_string(),
        Window::D1 => ROLLUP_COUNT_SQL.replace("{table}", "interface_rollup_5m"),
        Window::D7 => ROLLUP_COUNT_SQL.replace("{table}", "interface_rollup_1h"),
    };
    let mut counts = [0u32; POINTS];
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = st
        .query_map(params![s.gateway_id, port, start, end], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(db_err)?;
    for ts in rows {
        let ts = ts.map_err(db_err)?;
        let i = usize::try_from((ts - start) / interval)
            .unwrap_or(0)
            .min(POINTS - 1);
        counts[i] = counts[i].saturating_add(1);
    }
    let points = s
        .points
        .iter()
        .zip(counts)
        .map(|(p, n)| {
            let known = n > 0;
            GapPoint {
                timestamp: p.timestamp,
                samples: n,
                rx_bytes: known.then_some(p.rx_bytes),
                tx_bytes: known.then_some(p.tx_bytes),
                rx_bps: known.then_some(p.rx_bps),
                tx_bps: known.then_some(p.tx_bps),
            }
        })
        .collect();
    Ok(GapSeries {
        router_id: s.gateway_id,
        router: s.gateway_name,
        interface: s.port_id,
        duration: window.as_str().to_string(),
        start: s.start,
        end: s.end,
        interval: s.interval,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        points,
    })
}

/// An interface's traffic as 20 intervals, `null` where nothing was measured.
#[utoipa::path(
    get,
    path = "/api/routers/{id}/interfaces/{name}/series",
    operation_id = "series_interface",
    tag = "series",
    params(
        ("id" = String, Path, description = "Router id or name", min_length = 1, max_length = 128),
        ("name" = String, Path, description = "Interface name", min_length = 1, max_length = 64),
        TrafficQuery
    ),
    responses(
        (status = 200, description = "The series", body = GapSeries),
        (status = 400, description = "Unknown duration or oversized id"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "Unknown router or interface")
    ),
    security(("api_key" = []))
)]
pub async fn interface_series(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<TrafficQuery>, QueryRejection>,
) -> Result<Json<GapSeries>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Path((id, port)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(q) = q.map_err(super::extract::bad_query)?;
    let window = match q.duration.as_deref() {
        Some(d) => Window::parse(d)?,
        None => Window::H1,
    };
    let now = now_ms();
    Ok(Json(
        with_read(&state, move |c| gap_series(c, &id, &port, window, now)).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};

    #[test]
    fn intervals_without_samples_are_null_not_zero() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let now: i64 = 1_700_000_000_000;
        // Two reports 60 s apart, 10 minutes ago: the first has no delta (no previous sample).
        for (seq, ts, c) in [(1u64, now - 600_000, 10u64), (2, now - 540_000, 20)] {
            let rep = rich_report([1; 16], seq, ts as u64, c);
            ingest_one(&mut store, r.id, ts, &rep);
        }
        let s = gap_series(store.connection(), "gw", "eth0", Window::H1, now).unwrap();
        assert_eq!(s.points.len(), POINTS);
        let known: Vec<&GapPoint> = s.points.iter().filter(|p| p.samples > 0).collect();
        assert_eq!(known.len(), 1, "{:?}", s.points);
        assert_eq!(known[0].rx_bytes, Some(10_000), "eth0 rx grows by 1000 x c");
        assert!(known[0].rx_bps.unwrap() > 0);
        for p in s.points.iter().filter(|p| p.samples == 0) {
            assert_eq!(
                (p.rx_bytes, p.tx_bytes, p.rx_bps, p.tx_bps),
                (None, None, None, None)
            );
        }
        assert_eq!(s.rx_bytes, 10_000);
        // Unknown interface: 404 as on the gateway route.
        let e = gap_series(store.connection(), "gw", "nope0", Window::H1, now).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
    }
}
