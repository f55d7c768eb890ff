//! Route group `prometheus`: `GET /metrics`, the fleet in the Prometheus text exposition format
//! (version 0.0.4), written by hand from each router's newest report.
//!
//! Families (see docs/api/prometheus.md): per router (`routerstats_router_*`: up, last seen,
//! info, uptime, load, CPU, memory, disk, station/lease/peer/client counts, dropped reports),
//! per interface (`routerstats_interface_*_total` byte, packet, error and drop counters), per
//! station (signal gauges, byte counters), per WireGuard peer (byte counters, latest handshake)
//! and per OpenVPN client (byte counters, connection start). Every query drives from `routers`
//! and reads one primary-key range of the newest report per router; revoked routers are left out.
//!
//! The route needs a read key like every data route (it exposes MAC addresses and peer keys);
//! Prometheus sends one with `authorization: {credentials: <key>}` in its scrape config.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rusqlite::{Connection, Row};
use serde::Deserialize;

use super::extract::bad_query;
use super::readpool::db_err;
use super::{require_role, ApiError, ApiState};
use crate::pki::tokens::Role;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A router counts as up when it reported within this many seconds.
pub const UP_WITHIN_S: i64 = 300;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(metrics),
    tags((name = "prometheus", description = "Prometheus text exposition of the fleet"))
)]
pub struct Doc;

/// The fleet's newest samples for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "prometheus_metrics",
    tag = "prometheus",
    params(MetricsQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4. Served from the response cache \
         (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new reports a cached answer is \
         still served while one background task recomputes it",
         content_type = "text/plain; version=0.0.4", body = String),
        (status = 400, description = "A `families` or `exclude` item is not a metric name prefix, `stations` is not true or false, `shard` is not I/N, or a `router` item is not a router name"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(bad_query)?;
    let (filter, select) = q
        .resolve(state.metrics_stations)
        .map_err(ApiError::bad_request)?;
    let key = super::cache::key("/metrics", &[("filter", &filter), ("select", &select)]);
    super::cache::cached(&state, &key, CONTENT_TYPE, move |c| {
        let now_ms = crate::clock::unix_now().saturating_mul(1000);
        render_selected(c, now_ms, &filter, &select).map(Bytes::from)
    })
    .await
}

/// Query of `GET /metrics`: which metric families and which routers to write.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Comma-separated metric name prefixes to write (absent: every family), e.g.
    /// `routerstats_router_,routerstats_interface_`.
    #[param(schema_with = prefix_list_schema)]
    pub families: Option<String>,
    /// Comma-separated metric name prefixes to leave out, e.g. `routerstats_wireguard_`.
    #[param(schema_with = prefix_list_schema)]
    pub exclude: Option<String>,
    /// `true` writes the per-station families (`routerstats_station_*`, 5 series per associated
    /// station: 1 million at 10,000 routers of 20 stations), `false` leaves them out. Absent: the
    /// collector's `[metrics] stations` setting (default `false`), or `true` when a `families`
    /// item starts with `routerstats_station`.
    #[param(schema_with = bool_schema)]
    pub stations: Option<String>,
    /// `I/N` (`0 <= I < N <= 65536`): only the routers whose id modulo `N` is `I`, so `N` scrape
    /// jobs split the fleet (`routerstats_routers` then counts the shard's routers); `I >= N`
    /// selects no router.
    #[param(schema_with = shard_schema)]
    pub shard: Option<String>,
    /// Comma-separated router names: only these routers (unknown names select nothing).
    #[param(schema_with = router_list_schema)]
    pub router: Option<String>,
    /// Only the routers of this site (exact match after trimming; unknown sites select nothing).
    pub site: Option<String>,
}

impl MetricsQuery {
    /// The families and routers asked for; `stations_default` is the collector's setting.
    /// Errors name the parameter.
    pub fn resolve(
        &self,
        stations_default: bool,
    ) -> Result<(FamilyFilter, RouterSelector), String> {
        let mut filter =
            FamilyFilter::from_query(self.families.as_deref(), self.exclude.as_deref())?;
        let asked = filter
            .include
            .iter()
            .any(|p| p.starts_with(STATION_PREFIX.trim_end_matches('_')));
        filter.stations = match self.stations.as_deref().map(str::trim) {
            None | Some("") => stations_default || asked,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(v) => return Err(format!("stations: {v:?} is not true or false")),
        };
        let select = RouterSelector::from_query(
            self.shard.as_deref(),
            self.router.as_deref(),
            self.site.as_deref(),
        )?;
        Ok((filter, select))
    }
}

/// `families` / `exclude`: comma-separated items of `[A-Za-z0-9_:]`, each trimmed, empty ones
/// ignored ([`FamilyFilter::from_query`]).
fn prefix_list_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    let item = format!("[{ws}]*[A-Za-z0-9_:]*[{ws}]*");
    super::openapi::string_pattern(&format!("^{item}(,{item})*$"))
}

/// `stations`: `true`, `false`, `1`, `0` (trimmed) or empty (the default).
fn bool_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    super::openapi::string_pattern(&format!("^[{ws}]*(true|false|1|0)?[{ws}]*$"))
}

/// `shard`: `I/N` in decimal, `0 <= I < 65536`, `1 <= N <= 65536` (leading zeros allowed).
fn shard_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    let i = "0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})";
    let n =
        "0*(6553[0-6]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
    super::openapi::string_pattern(&format!("^[{ws}]*({i}/{n})?[{ws}]*$"))
}

/// `router`: comma-separated router names (`crate::store::check_router_name`), empty items
/// ignored.
fn router_list_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    // A name as `openapi::ROUTER_NAME` (not only digits, 1-64 characters), or an empty item.
    let item = format!("[{ws}]*((?![0-9]+[{ws}]*(,|$))[A-Za-z0-9][A-Za-z0-9._-]{{0,63}})?[{ws}]*");
    super::openapi::string_pattern(&format!("^{item}(,{item})*$"))
}

/// Name prefix of the per-station families, which `GET /metrics` leaves out by default.
pub const STATION_PREFIX: &str = "routerstats_station_";

/// Which metric families are written: name prefixes to keep (none: all) and to leave out, and
/// whether the per-station families are written at all. Shared by `GET /metrics` and the
/// remote-write output (`crate::remote_write`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FamilyFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Whether the `routerstats_station_*` families are written (checked with the prefixes).
    pub stations: bool,
}

impl Default for FamilyFilter {
    /// Every family, the per-station ones included.
    fn default() -> Self {
        FamilyFilter {
            include: Vec::new(),
            exclude: Vec::new(),
            stations: true,
        }
    }
}

impl FamilyFilter {
    /// Whether the family named `name` is written.
    pub fn keeps(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| name.starts_with(p.as_str())))
            && !self.exclude.iter().any(|p| name.starts_with(p.as_str()))
            && (self.stations || !name.starts_with(STATION_PREFIX))
    }

    /// From comma-separated prefix lists; a prefix holds only metric-name characters
    /// (`[a-zA-Z0-9_:]`); empty items are ignored. The per-station families are kept.
    pub fn from_query(
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<FamilyFilter, String> {
        let list = |v: Option<&str>, key: &str| -> Result<Vec<String>, String> {
            v.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    if p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    {
                        Ok(p.to_string())
                    } else {
                        Err(format!("{key}: {p:?} is not a metric name prefix"))
                    }
                })
                .collect()
        };
        Ok(FamilyFilter {
            include: list(include, "families")?,
            exclude: list(exclude, "exclude")?,
            stations: true,
        })
    }
}

/// Largest `N` of `shard=I/N`.
pub const MAX_SHARDS: u32 = 65_536;
/// Most names in one `router` list.
pub const MAX_ROUTER_NAMES: usize = 1_000;

/// Which routers are written: a shard of the fleet by router id, a list of names, a site (all
/// given ones must match; none given: the whole fleet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouterSelector {
    /// `(i, n)`: routers whose id modulo `n` is `i`.
    pub shard: Option<(u32, u32)>,
    /// Router names (empty: any).
    pub routers: Vec<String>,
    pub site: Option<String>,
}

impl RouterSelector {
    /// From the `shard`, `router` and `site` query parameters; errors name the parameter.
    pub fn from_query(
        shard: Option<&str>,
        routers: Option<&str>,
        site: Option<&str>,
    ) -> Result<RouterSelector, String> {
        let shard = match shard.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                let bad = || {
                    format!("shard: {v:?} is not I/N with 0 <= I < {MAX_SHARDS} and 1 <= N <= {MAX_SHARDS}")
                };
                let (i, n) = v.split_once('/').ok_or_else(bad)?;
                let (i, n): (u32, u32) = (
                    i.trim().parse().map_err(|_| bad())?,
                    n.trim().parse().map_err(|_| bad())?,
                );
                // `I >= N` selects no router (as Prometheus' `hashmod` keeps nothing for such a
                // shard); `N` out of range is an error.
                if n == 0 || n > MAX_SHARDS || i >= MAX_SHARDS {
                    return Err(bad());
                }
                Some((i, n))
            }
        };
        let routers: Vec<String> = routers
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| {
                crate::store::check_router_name(r)
                    .map(|_| r.to_string())
                    .map_err(|e| format!("router: {e}"))
            })
            .collect::<Result<_, _>>()?;
        if routers.len() > MAX_ROUTER_NAMES {
            return Err(format!(
                "router: {} names; at most {MAX_ROUTER_NAMES}",
                routers.len()
            ));
        }
        let site = site
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(RouterSelector {
            shard,
            routers,
            site,
        })
    }

    /// The SQL condition on `routers r` (starting with ` AND`, empty for the whole fleet) and
    /// its parameters.
    fn sql(&self) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let (mut cond, mut params) = (String::new(), Vec::new());
        if let Some((i, n)) = self.shard {
            cond.push_str(" AND r.id % ? = ?");
            params.push(Value::Integer(i64::from(n)));
            params.push(Value::Integer(i64::from(i)));
        }
        if !self.routers.is_empty() {
            cond.push_str(" AND r.name IN (");
            for (k, name) in self.routers.iter().enumerate() {
                cond.push_str(if k == 0 { "?" } else { ",?" });
                params.push(Value::Text(name.clone()));
            }
            cond.push(')');
        }
        if let Some(site) = &self.site {
            cond.push_str(" AND r.site = ?");
            params.push(Value::Text(site.clone()));
        }
        (cond, params)
    }
}

// ---------------------------------------------------------------------------------------------
// Exposition writer.

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric family: its HELP and TYPE lines and its sample lines.
#[derive(Debug, Clone)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    lines: String,
    /// Whether the family is written; samples added to a family left out are dropped.
    on: bool,
}

/// Escapes a label value: backslash, double quote and line feed.
#[cfg(test)]
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    push_label_value(&mut out, v);
    out
}

/// Appends `v` escaped as a label value (the rules of `escape_label_value`) without allocating.
fn push_label_value(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes HELP text: backslash and line feed.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the format writes it (`NaN`, `+Inf`, `-Inf`, else the shortest exact decimal).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; label names may
/// not contain `:`, which none of ours do).
#[cfg(test)]
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Appends `{k="v",...}` (nothing for no labels), values escaped.
fn push_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_label_value(out, v);
        out.push('"');
    }
    out.push('}');
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            lines: String::new(),
            on: true,
        }
    }

    /// Adds an integer sample.
    pub fn int(&mut self, labels: &[(&str, &str)], value: i64) {
        if self.on {
            self.lines.push_str(self.name);
            push_labels(&mut self.lines, labels);
            self.value(value);
        }
    }

    /// Adds an integer sample whose labels are already written as `{...}` by [`push_labels`]
    /// (a row's label set is escaped once for all the families that share it).
    fn int_at(&mut self, labels: &str, value: i64) {
        if self.on {
            self.lines.push_str(self.name);
            self.lines.push_str(labels);
            self.value(value);
        }
    }

    /// [`Family::int_at`] when there is a value.
    fn opt_int_at(&mut self, labels: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.int_at(labels, v);
        }
    }

    fn value(&mut self, value: i64) {
        self.lines.push(' ');
        self.lines.push_str(itoa::Buffer::new().format(value));
        self.lines.push('\n');
    }

    /// Adds a float sample.
    pub fn float(&mut self, labels: &[(&str, &str)], value: f64) {
        if self.on {
            self.lines.push_str(self.name);
            push_labels(&mut self.lines, labels);
            self.lines.push(' ');
            self.lines.push_str(&format_float(value));
            self.lines.push('\n');
        }
    }

    /// Writes the family (HELP, TYPE, samples) to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        out.push_str(&self.lines);
    }
}

/// Renders families in order.
pub fn render(families: &[&Family]) -> String {
    let mut out = String::with_capacity(
        families
            .iter()
            .map(|f| f.lines.len() + f.help.len() + 2 * f.name.len() + 32)
            .sum(),
    );
    for f in families {
        f.render(&mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The fleet.

macro_rules! families {
    ($( $field:ident : $name:literal, $kind:ident, $help:literal; )*) => {
        /// Every family of the exposition.
        struct Fleet { $( $field: Family, )* }
        impl Fleet {
            /// Every family, those `filter` leaves out switched off.
            fn new(filter: &FamilyFilter) -> Fleet {
                let on = |mut f: Family| {
                    f.on = filter.keeps(f.name);
                    f
                };
                Fleet { $( $field: on(Family::new($name, $help, Kind::$kind)), )* }
            }
            fn all(&self) -> Vec<&Family> {
                vec![$( &self.$field, )*]
            }
        }
    };
}

families! {
    routers: "routerstats_routers", Gauge, "Enrolled routers that are not revoked.";
    up: "routerstats_router_up", Gauge, "1 when the router reported within the last 300 seconds, else 0.";
    last_seen: "routerstats_router_last_seen_timestamp_seconds", Gauge, "Unix time the collector last received a report from the router.";
    info: "routerstats_router_info", Gauge, "Router facts as labels; the value is always 1.";
    uptime: "routerstats_router_uptime_seconds", Gauge, "Router uptime in its newest report.";
    load1: "routerstats_router_load1", Gauge, "1-minute load average.";
    load5: "routerstats_router_load5", Gauge, "5-minute load average.";
    load15: "routerstats_router_load15", Gauge, "15-minute load average.";
    cpu: "routerstats_router_cpu_busy_ratio", Gauge, "Share of CPU time busy between the router's last two readings (0 to 1).";
    mem_total: "routerstats_router_memory_total_bytes", Gauge, "Total memory.";
    mem_avail: "routerstats_router_memory_available_bytes", Gauge, "Available memory.";
    disk_used: "routerstats_router_disk_used_bytes", Gauge, "Used bytes of the monitored filesystem.";
    disk_total: "routerstats_router_disk_total_bytes", Gauge, "Size of the monitored filesystem.";
    stations: "routerstats_router_stations", Gauge, "Wireless stations associated with the router.";
    leases: "routerstats_router_dhcp_leases", Gauge, "DHCP leases of the router.";
    wg_peers: "routerstats_router_wireguard_peers", Gauge, "WireGuard peers configured on the router.";
    ovpn_clients: "routerstats_router_openvpn_clients", Gauge, "OpenVPN clients connected to the router.";
    dropped: "routerstats_router_dropped_reports_total", Counter, "Reports the agent dropped since it started (spool full).";
    if_rx: "routerstats_interface_receive_bytes_total", Counter, "Bytes received by the interface.";
    if_tx: "routerstats_interface_transmit_bytes_total", Counter, "Bytes transmitted by the interface.";
    if_rx_pk: "routerstats_interface_receive_packets_total", Counter, "Packets received by the interface.";
    if_tx_pk: "routerstats_interface_transmit_packets_total", Counter, "Packets transmitted by the interface.";
    if_rx_err: "routerstats_interface_receive_errors_total", Counter, "Receive errors of the interface.";
    if_tx_err: "routerstats_interface_transmit_errors_total", Counter, "Transmit errors of the interface.";
    if_rx_drop: "routerstats_interface_receive_drop_total", Counter, "Received packets dropped by the interface.";
    if_tx_drop: "routerstats_interface_transmit_drop_total", Counter, "Transmitted packets dropped by the interface.";
    sta_signal: "routerstats_station_signal_dbm", Gauge, "Signal of the station's last frame, dBm.";
    sta_signal_avg: "routerstats_station_signal_avg_dbm", Gauge, "Average signal of the station, dBm.";
    sta_rx: "routerstats_station_receive_bytes_total", Counter, "Bytes the router received from the station.";
    sta_tx: "routerstats_station_transmit_bytes_total", Counter, "Bytes the router sent to the station.";
    sta_conn: "routerstats_station_connected_seconds", Gauge, "How long the station has been associated.";
    wg_rx: "routerstats_wireguard_peer_receive_bytes_total", Counter, "Bytes the router received from the WireGuard peer.";
    wg_tx: "routerstats_wireguard_peer_transmit_bytes_total", Counter, "Bytes the router sent to the WireGuard peer.";
    wg_hs: "routerstats_wireguard_peer_latest_handshake_seconds", Gauge, "Unix time of the peer's latest handshake; 0 when it never had one.";
    ovpn_rx: "routerstats_openvpn_client_receive_bytes_total", Counter, "Bytes the OpenVPN instance received from the client.";
    ovpn_tx: "routerstats_openvpn_client_transmit_bytes_total", Counter, "Bytes the OpenVPN instance sent to the client.";
    ovpn_since: "routerstats_openvpn_client_connected_since_seconds", Gauge, "Unix time the client connected.";
    // The names, types and labels of prometheus_wireguard_exporter (MindFlavor), which existing
    // Grafana dashboards query; the same samples as routerstats_wireguard_peer_*, plus `router`.
    wge_sent: "wireguard_sent_bytes_total", Counter, "Bytes sent to the peer";
    wge_received: "wireguard_received_bytes_total", Counter, "Bytes received from the peer";
    wge_handshake: "wireguard_latest_handshake_seconds", Gauge, "Seconds from the last handshake";
}

/// Text column `i` of `r` borrowed from the row (no allocation); NULL reads as "".
fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(rusqlite::Error::Utf8Error),
        ValueRef::Null => Ok(""),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            String::new(),
            other.data_type(),
        )),
    }
}

fn router_metrics(f: &mut Fleet, r: &Row<'_>, now_ms: i64) -> rusqlite::Result<()> {
    let n = text(r, 0)?;
    let site = text(r, 1)?;
    let last_seen_ms: Option<i64> = r.get(6)?;
    let up = last_seen_ms.is_some_and(|t| now_ms.saturating_sub(t) <= UP_WITHIN_S * 1000);
    f.up.int(&[("router", n), ("site", site)], i64::from(up));
    if let Some(t) = last_seen_ms {
        f.last_seen.float(&[("router", n)], t as f64 / 1000.0);
    }
    f.info.int(
        &[
            ("router", n),
            ("site", site),
            ("hostname", text(r, 2)?),
            ("model", text(r, 3)?),
            ("release", text(r, 4)?),
            ("agent_version", text(r, 5)?),
        ],
        1,
    );
    let has_report: Option<i64> = r.get(7)?;
    if has_report.is_none() {
        return Ok(());
    }
    let mut l = String::new();
    push_labels(&mut l, &[("router", n)]);
    f.dropped.int_at(&l, r.get(8)?);
    f.uptime.opt_int_at(&l, r.get(9)?);
    for (fam, col) in [(&mut f.load1, 10), (&mut f.load5, 11), (&mut f.load15, 12)] {
        // Stored from f32: round away the conversion noise (0.41999998688697815 -> 0.42).
        if let Some(v) = r.get::<_, Option<f64>>(col)? {
            fam.float(&[("router", n)], (v * 10_000.0).round() / 10_000.0);
        }
    }
    if let Some(p) = r.get::<_, Option<i64>>(13)? {
        f.cpu.float(&[("router", n)], p as f64 / 1000.0);
    }
    let kib = |v: Option<i64>| v.map(|kb| kb.saturating_mul(1024));
    f.mem_total.opt_int_at(&l, kib(r.get(14)?));
    f.mem_avail.opt_int_at(&l, kib(r.get(15)?));
    if r.get_ref(16)? != rusqlite::types::ValueRef::Null {
        let mut dl = String::new();
        push_labels(&mut dl, &[("router", n), ("mount", text(r, 16)?)]);
        f.disk_used.opt_int_at(&dl, r.get(17)?);
        f.disk_total.opt_int_at(&dl, r.get(18)?);
    }
    f.stations.int_at(&l, r.get(19)?);
    f.leases.int_at(&l, r.get(20)?);
    f.wg_peers.int_at(&l, r.get(21)?);
    f.ovpn_clients.int_at(&l, r.get(22)?);
    Ok(())
}

/// Runs `sql` with `params` and hands each row to `each`.
fn each_row(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
    mut each: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<(), ApiError> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = st
        .query(rusqlite::params_from_iter(params))
        .map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        each(r).map_err(db_err)?;
    }
    Ok(())
}

/// The newest samples of every unrevoked router as an exposition, every family (what the
/// tests compare with). `now_ms` decides `up`.
#[cfg(test)]
pub fn render_fleet(conn: &Connection, now_ms: i64) -> Result<String, ApiError> {
    render_fleet_filtered(conn, now_ms, &FamilyFilter::default())
}

/// The newest samples of every unrevoked router as an exposition with only the families
/// `filter` keeps. `now_ms` decides `up`.
pub fn render_fleet_filtered(
    conn: &Connection,
    now_ms: i64,
    filter: &FamilyFilter,
) -> Result<String, ApiError> {
    render_selected(conn, now_ms, filter, &RouterSelector::default())
}

/// The newest samples of the unrevoked routers `select` picks, with only the families `filter`
/// keeps (a group of families whose every member is left out is not even read). `now_ms`
/// decides `up`.
pub fn render_selected(
    conn: &Connection,
    now_ms: i64,
    filter: &FamilyFilter,
    select: &RouterSelector,
) -> Result<String, ApiError> {
    let mut f = Fleet::new(filter);
    let wants = |f: &Fleet, prefixes: &[&str]| {
        f.all()
            .iter()
            .any(|fam| fam.on && prefixes.iter().any(|p| fam.name.starts_with(p)))
    };
    let (ifaces, stations, wg, ovpn) = (
        wants(&f, &["routerstats_interface_"]),
        wants(&f, &[STATION_PREFIX]),
        wants(&f, &["routerstats_wireguard_", "wireguard_"]),
        wants(&f, &["routerstats_openvpn_"]),
    );
    let (cond, params) = select.sql();
    let mut routers = 0i64;
    each_row(
        conn,
        &format!(
            "SELECT r.name, r.site, r.hostname, r.model, r.release, r.agent_version, r.last_seen_ms, \
             p.id, p.dropped_reports, p.uptime_s, p.load1, p.load5, p.load15, p.cpu_permille, p.mem_total_kb, \
             p.mem_available_kb, p.disk_mount, p.disk_used_bytes, p.disk_total_bytes, p.station_count, \
             p.lease_count, p.wg_peer_count, p.ovpn_client_count \
             FROM routers r LEFT JOIN reports p ON p.id = r.last_report_id WHERE r.revoked_at IS NULL{cond} ORDER BY r.id"
        ),
        &params,
        |r| {
            routers += 1;
            router_metrics(&mut f, r, now_ms)
        },
    )?;
    f.routers.int(&[], routers);

    // One label block per row, escaped once and shared by the families of that row.
    let mut l = String::new();
    if ifaces {
        each_row(
            conn,
            &format!(
                "SELECT r.name, i.name, i.kind, i.rx_bytes, i.tx_bytes, i.rx_packets, i.tx_packets, i.rx_errs, \
                 i.tx_errs, i.rx_drop, i.tx_drop \
                 FROM routers r CROSS JOIN interface_samples i ON i.router_id = r.id AND i.ts_ms = r.last_report_ms \
                 WHERE r.revoked_at IS NULL{cond} ORDER BY r.id, i.name"
            ),
            &params,
            |r| {
                l.clear();
                push_labels(
                    &mut l,
                    &[("router", text(r, 0)?), ("interface", text(r, 1)?), ("kind", text(r, 2)?)],
                );
                for (fam, col) in [
                    (&mut f.if_rx, 3),
                    (&mut f.if_tx, 4),
                    (&mut f.if_rx_pk, 5),
                    (&mut f.if_tx_pk, 6),
                    (&mut f.if_rx_err, 7),
                    (&mut f.if_tx_err, 8),
                    (&mut f.if_rx_drop, 9),
                    (&mut f.if_tx_drop, 10),
                ] {
                    fam.int_at(&l, r.get(col)?);
                }
                Ok(())
            },
        )?;
    }

    if stations {
        each_row(
            conn,
            &format!(
                "SELECT r.name, s.iface, s.mac, s.ssid, s.signal_dbm, s.signal_avg_dbm, s.rx_bytes, s.tx_bytes, \
                 s.connected_s \
                 FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
                 WHERE r.revoked_at IS NULL{cond} ORDER BY r.id, s.iface, s.mac"
            ),
            &params,
            |r| {
                l.clear();
                push_labels(
                    &mut l,
                    &[
                        ("router", text(r, 0)?),
                        ("interface", text(r, 1)?),
                        ("ssid", text(r, 3)?),
                        ("mac", text(r, 2)?),
                    ],
                );
                f.sta_signal.opt_int_at(&l, r.get(4)?);
                f.sta_signal_avg.opt_int_at(&l, r.get(5)?);
                f.sta_rx.opt_int_at(&l, r.get(6)?);
                f.sta_tx.opt_int_at(&l, r.get(7)?);
                f.sta_conn.opt_int_at(&l, r.get(8)?);
                Ok(())
            },
        )?;
    }

    if wg {
        let mut e = String::new();
        each_row(
            conn,
            &format!(
                "SELECT r.name, w.iface, w.public_key, w.name, w.rx_bytes, w.tx_bytes, w.latest_handshake, w.allowed_ips \
                 FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms \
                 WHERE r.revoked_at IS NULL{cond} ORDER BY r.id, w.iface, w.public_key"
            ),
            &params,
            |r| {
                let (router, iface, key, name) = (text(r, 0)?, text(r, 1)?, text(r, 2)?, text(r, 3)?);
                l.clear();
                push_labels(
                    &mut l,
                    &[("router", router), ("interface", iface), ("public_key", key), ("name", name)],
                );
                let (rx, tx): (i64, i64) = (r.get(4)?, r.get(5)?);
                let handshake = r.get::<_, Option<i64>>(6)?.unwrap_or(0);
                f.wg_rx.int_at(&l, rx);
                f.wg_tx.int_at(&l, tx);
                f.wg_hs.int_at(&l, handshake);
                // The exporter's label set: friendly_name only for named peers, as with its `-n`.
                e.clear();
                let allowed = text(r, 7)?;
                let mut labels = vec![("interface", iface), ("public_key", key), ("allowed_ips", allowed)];
                if !name.is_empty() {
                    labels.push(("friendly_name", name));
                }
                labels.push(("router", router));
                push_labels(&mut e, &labels);
                f.wge_sent.int_at(&e, tx);
                f.wge_received.int_at(&e, rx);
                f.wge_handshake.int_at(&e, handshake);
                Ok(())
            },
        )?;
    }

    if ovpn {
        each_row(
            conn,
            &format!(
                "SELECT r.name, o.instance, o.common_name, o.real_address, o.rx_bytes, o.tx_bytes, o.connected_since \
                 FROM routers r CROSS JOIN ovpn_client_samples o ON o.router_id = r.id AND o.ts_ms = r.last_report_ms \
                 WHERE r.revoked_at IS NULL{cond} ORDER BY r.id, o.instance, o.common_name, o.real_address"
            ),
            &params,
            |r| {
                l.clear();
                push_labels(
                    &mut l,
                    &[
                        ("router", text(r, 0)?),
                        ("instance", text(r, 1)?),
                        ("common_name", text(r, 2)?),
                        ("real_address", text(r, 3)?),
                    ],
                );
                f.ovpn_rx.int_at(&l, r.get(4)?);
                f.ovpn_tx.int_at(&l, r.get(5)?);
                f.ovpn_since.opt_int_at(&l, r.get(6)?);
                Ok(())
            },
        )?;
    }

    let kept: Vec<&Family> = f.all().into_iter().filter(|fam| fam.on).collect();
    Ok(render(&kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed sample: name, unescaped labels in order, value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// A small checker of the text format: every line is a HELP/TYPE comment or
    /// `name{labels} value`.
    fn parse(text: &str) -> Result<Vec<Sample>, String> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
            if let Some(rest) = line.strip_prefix("# ") {
                let mut w = rest.splitn(3, ' ');
                let (k, n) = (w.next(), w.next());
                if !matches!(k, Some("HELP" | "TYPE")) || !n.is_some_and(valid_name) {
                    return Err(err("bad comment"));
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
            let name = line.get(..name_end).unwrap_or_default();
            if !valid_name(name) {
                return Err(err("bad name"));
            }
            let mut rest = line.get(name_end..).unwrap_or_default();
            let mut labels = Vec::new();
            if let Some(body) = rest.strip_prefix('{') {
                let mut chars = body.char_indices().peekable();
                loop {
                    let start = chars
                        .peek()
                        .map(|(j, _)| *j)
                        .ok_or_else(|| err("open labels"))?;
                    if body.get(start..).is_some_and(|b| b.starts_with('}')) {
                        rest = body.get(start + 1..).unwrap_or_default();
                        break;
                    }
                    let eq = body
                        .get(start..)
                        .and_then(|b| b.find("=\""))
                        .ok_or_else(|| err("label"))?;
                    let lname = body.get(start..start + eq).unwrap_or_default();
                    if !valid_name(lname) {
                        return Err(err("bad label name"));
                    }
                    for _ in 0..eq + 2 {
                        chars.next();
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                Some('n') => value.push('\n'),
                                _ => return Err(err("bad escape")),
                            },
                            Some('"') => break,
                            Some('\n') | None => return Err(err("unterminated value")),
                            Some(c) => value.push(c),
                        }
                    }
                    labels.push((lname.to_string(), value));
                    if let Some((_, ',')) = chars.peek() {
                        chars.next();
                    }
                }
            }
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value"))?;
            let v = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse::<f64>().map_err(|_| err("bad value"))?,
            };
            out.push((name.to_string(), labels, v));
        }
        Ok(out)
    }

    #[test]
    fn label_values_are_escaped_and_read_back() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_label_value("plain ü"), "plain ü");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
        let tricky = [
            "Bob's \"phone\"",
            "back\\slash\\",
            "two\nlines",
            "",
            "}{,= \" ",
        ];
        let mut fam = Family::new(
            "routerstats_test_bytes_total",
            "Help with \\ and\nnewline.",
            Kind::Counter,
        );
        for (i, v) in tricky.iter().enumerate() {
            fam.int(&[("name", v), ("idx", &i.to_string())], i as i64);
        }
        fam.float(&[], 0.5);
        let text = render(&[&fam]);
        assert!(
            text.starts_with("# HELP routerstats_test_bytes_total Help with \\\\ and\\nnewline.\n")
        );
        assert!(text.contains("# TYPE routerstats_test_bytes_total counter\n"));
        let samples = parse(&text).unwrap();
        assert_eq!(samples.len(), tricky.len() + 1);
        for (i, v) in tricky.iter().enumerate() {
            let (name, labels, value) = &samples[i];
            assert_eq!(name, "routerstats_test_bytes_total");
            assert_eq!(labels[0], ("name".to_string(), v.to_string()));
            assert_eq!(labels[1], ("idx".to_string(), i.to_string()));
            assert_eq!(*value, i as f64);
        }
        assert!(samples[tricky.len()].1.is_empty());
        assert_eq!(samples[tricky.len()].2, 0.5);
    }

    #[test]
    fn checker_rejects_broken_lines() {
        for bad in [
            "9bad 1",
            "name{a=\"x} 1",
            "name{a=\"x\"}1",
            "name",
            "name{a=\"\\q\"} 1",
            "# FOO x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn floats_and_names() {
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert!(
            valid_name("routerstats_up")
                && valid_name("a:b_c1")
                && !valid_name("1a")
                && !valid_name("a-b")
        );
        assert!(!valid_name(""));
    }

    #[test]
    fn every_family_follows_the_naming_rules() {
        let f = Fleet::new(&FamilyFilter::default());
        let all = f.all();
        let mut seen = std::collections::HashSet::new();
        for fam in &all {
            assert!(valid_name(fam.name), "{}", fam.name);
            // Our own names, or prometheus_wireguard_exporter's three.
            assert!(
                fam.name.starts_with("routerstats_")
                    || [
                        "wireguard_sent_bytes_total",
                        "wireguard_received_bytes_total",
                        "wireguard_latest_handshake_seconds"
                    ]
                    .contains(&fam.name),
                "{}",
                fam.name
            );
            assert!(seen.insert(fam.name), "duplicate {}", fam.name);
            assert_eq!(
                fam.kind == Kind::Counter,
                fam.name.ends_with("_total"),
                "{}",
                fam.name
            );
        }
    }

    #[test]
    fn empty_database_renders_zero_routers() {
        let conn = Connection::open_in_memory().unwrap();
        // `reports_all` and the other `<table>_all` virtual tables, as every collector
        // connection has them.
        crate::store::sealed::register(&conn).unwrap();
        for m in crate::store::schema::MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        let text = render_fleet(&conn, 0).unwrap();
        let samples = parse(&text).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].0, "routerstats_routers");
        assert_eq!(samples[0].2, 0.0);
        assert!(text.contains("# TYPE routerstats_wireguard_peer_receive_bytes_total counter"));
    }

    /// A store with routers `ap-1`..`ap-{n}` (site `site-a`, `ap-3` in `site-b`), each with
    /// two rich reports (stations, interfaces, peers, clients).
    fn fleet(n: usize) -> (tempfile::TempDir, crate::store::Store) {
        use crate::store::testutil::{enrolled_router, open_temp, rich_report};
        let (dir, mut store) = open_temp();
        for k in 1..=n {
            let id = enrolled_router(&mut store, &format!("ap-{k}")).id;
            for seq in 1..=2 {
                let r = rich_report(
                    [k as u8; 16],
                    seq,
                    1_700_000_000_000 + seq * 30_000,
                    seq * 10,
                );
                store
                    .ingest(&[crate::store::IngestItem {
                        router_id: id,
                        received_at_ms: 0,
                        report: &r,
                    }])
                    .unwrap();
            }
        }
        store
            .connection()
            .execute("UPDATE routers SET site = 'site-b' WHERE name = 'ap-3'", [])
            .unwrap();
        (dir, store)
    }

    fn query(pairs: &[(&str, &str)]) -> MetricsQuery {
        let get = |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string());
        MetricsQuery {
            families: get("families"),
            exclude: get("exclude"),
            stations: get("stations"),
            shard: get("shard"),
            router: get("router"),
            site: get("site"),
        }
    }

    /// `GET /metrics` as the route computes it for `pairs`, with the collector default
    /// `stations_default`.
    fn scrape(c: &Connection, pairs: &[(&str, &str)], stations_default: bool) -> String {
        let (filter, select) = query(pairs).resolve(stations_default).unwrap();
        render_selected(c, 0, &filter, &select).unwrap()
    }

    /// The default answer carries no per-station series (and does not announce their
    /// families); `stations=true`, a `families` item naming them, or the collector setting
    /// bring back exactly the lines of the full exposition; `stations=false` wins over the
    /// setting.
    #[test]
    fn station_series_are_off_by_default_and_come_back_on_request() {
        let (_dir, store) = fleet(2);
        let c = store.connection();
        let all = render_fleet(c, 0).unwrap();
        assert_eq!(
            all.lines()
                .filter(|l| l.starts_with("routerstats_station_"))
                .count(),
            2 * 2 * 5,
            "2 routers x 2 stations x 5 families: {all}"
        );
        let default = scrape(c, &[], false);
        assert!(!default.contains("routerstats_station_"), "{default}");
        let expected: Vec<&str> = all
            .lines()
            .filter(|l| !l.contains("routerstats_station_"))
            .collect();
        assert_eq!(default.lines().collect::<Vec<_>>(), expected);
        for on in [
            scrape(c, &[("stations", "true")], false),
            scrape(c, &[("stations", " 1 ")], false),
            scrape(c, &[], true),
        ] {
            assert_eq!(on, all);
        }
        assert_eq!(scrape(c, &[("stations", "false")], true), default);
        let only = scrape(c, &[("families", "routerstats_station_signal")], false);
        let names: std::collections::BTreeSet<String> =
            parse(&only).unwrap().into_iter().map(|s| s.0).collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "routerstats_station_signal_avg_dbm",
                "routerstats_station_signal_dbm"
            ]
        );
        // `stations=false` with a station family asked for: nothing of theirs, no error.
        let none = scrape(
            c,
            &[("families", "routerstats_station_"), ("stations", "false")],
            false,
        );
        assert!(parse(&none).unwrap().is_empty(), "{none}");
    }

    /// Shards are disjoint and together give the whole fleet; `router` and `site` select by
    /// name and site; the exporter-compatible `wireguard_*` families can be asked for alone.
    #[test]
    fn router_selectors_split_the_fleet() {
        let (_dir, store) = fleet(5);
        let c = store.connection();
        let series = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("routerstats_routers "))
                .map(str::to_string)
                .collect()
        };
        let routers_of = |text: &str| -> std::collections::BTreeSet<String> {
            parse(text)
                .unwrap()
                .into_iter()
                .filter_map(|s| s.1.into_iter().find(|l| l.0 == "router").map(|l| l.1))
                .collect()
        };
        let all = scrape(c, &[("stations", "true")], false);
        let mut union = Vec::new();
        let mut counted = 0.0;
        for i in 0..3 {
            let shard = format!("{i}/3");
            let part = scrape(c, &[("stations", "true"), ("shard", &shard)], false);
            let p = parse(&part).unwrap();
            counted += p.iter().find(|s| s.0 == "routerstats_routers").unwrap().2;
            union.extend(series(&part));
        }
        assert_eq!(counted, 5.0);
        let mut whole = series(&all);
        whole.sort();
        union.sort();
        assert_eq!(union, whole, "shards are disjoint and cover the fleet");
        let two = scrape(c, &[("router", "ap-2, ap-4,nosuch")], false);
        assert_eq!(
            routers_of(&two).into_iter().collect::<Vec<_>>(),
            ["ap-2", "ap-4"]
        );
        assert!(two.contains("routerstats_routers 2\n"));
        let b = scrape(c, &[("site", "site-b")], false);
        assert_eq!(routers_of(&b).into_iter().collect::<Vec<_>>(), ["ap-3"]);
        let nobody = scrape(c, &[("site", "nowhere")], false);
        assert_eq!(series(&nobody), Vec::<String>::new());
        assert!(nobody.contains("routerstats_routers 0\n"));
        // A shard I >= N holds no router (Prometheus' hashmod semantics), not an error.
        let beyond = scrape(c, &[("shard", "3/3")], false);
        assert_eq!(series(&beyond), Vec::<String>::new());
        assert!(beyond.contains("routerstats_routers 0\n"));
        let combined = scrape(c, &[("site", "site-a"), ("router", "ap-3,ap-5")], false);
        assert_eq!(
            routers_of(&combined).into_iter().collect::<Vec<_>>(),
            ["ap-5"]
        );
        let wge = scrape(c, &[("families", "wireguard_")], false);
        let wge_lines = series(&wge);
        assert!(!wge_lines.is_empty());
        assert_eq!(
            wge_lines,
            series(&all)
                .into_iter()
                .filter(|l| l.starts_with("wireguard_"))
                .collect::<Vec<_>>()
        );
    }

    /// Bad selector and option values are errors that name the parameter, never a panic.
    #[test]
    fn bad_selector_values_are_errors() {
        for (k, v) in [
            ("stations", "yes"),
            ("stations", "2"),
            ("shard", "1"),
            ("shard", "1/0"),
            ("shard", "-1/2"),
            ("shard", "a/b"),
            ("shard", "0/65537"),
            ("shard", "1/2/3"),
            ("shard", "99999999999/2"),
            ("router", "ap 1"),
            ("router", "ap-1,-x"),
            ("router", "1234"),
            ("families", "a b"),
        ] {
            let e = query(&[(k, v)]).resolve(false).unwrap_err();
            assert!(e.starts_with(k), "{k}={v}: {e}");
        }
        let many: Vec<String> = (0..=MAX_ROUTER_NAMES).map(|i| format!("r{i}")).collect();
        let e = query(&[("router", &many.join(","))])
            .resolve(false)
            .unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let (_, sel) = query(&[("shard", " 2 / 4 "), ("router", ",ap-1,")])
            .resolve(false)
            .unwrap();
        assert_eq!(sel.shard, Some((2, 4)));
        assert_eq!(sel.routers, ["ap-1"]);
        let (f, sel) = query(&[("shard", ""), ("site", ""), ("stations", "")])
            .resolve(false)
            .unwrap();
        assert_eq!(sel, RouterSelector::default());
        assert!(!f.stations);
    }

    /// A filter leaves out exactly the families it names and nothing else; bad prefixes are
    /// errors.
    #[test]
    fn family_filter_keeps_and_leaves_out() {
        use crate::store::testutil::{enrolled_router, open_temp, rich_report};
        let (_dir, mut store) = open_temp();
        let id = enrolled_router(&mut store, "ap-1").id;
        for seq in 1..=2 {
            let r = rich_report([1; 16], seq, 1_700_000_000_000 + seq * 30_000, seq * 10);
            store
                .ingest(&[crate::store::IngestItem {
                    router_id: id,
                    received_at_ms: 0,
                    report: &r,
                }])
                .unwrap();
        }
        let c = store.connection();
        let all = render_fleet(c, 0).unwrap();
        assert!(all.contains("routerstats_station_receive_bytes_total{"));
        let no_sta = FamilyFilter::from_query(None, Some("routerstats_station_")).unwrap();
        let cut = render_fleet_filtered(c, 0, &no_sta).unwrap();
        let expected: Vec<&str> = all
            .lines()
            .filter(|l| !l.contains("routerstats_station_"))
            .collect();
        assert_eq!(cut.lines().collect::<Vec<_>>(), expected);
        let only =
            FamilyFilter::from_query(Some("routerstats_router_up, routerstats_routers"), None)
                .unwrap();
        let few = parse(&render_fleet_filtered(c, 0, &only).unwrap()).unwrap();
        let names: Vec<&str> = few.iter().map(|s| s.0.as_str()).collect();
        // Prefixes: `routerstats_router_up` also keeps `routerstats_router_uptime_seconds`.
        assert_eq!(
            names,
            vec![
                "routerstats_routers",
                "routerstats_router_up",
                "routerstats_router_uptime_seconds"
            ]
        );
        assert_eq!(
            FamilyFilter::from_query(Some(""), Some(",")).unwrap(),
            FamilyFilter::default()
        );
        for bad in ["a b", "x{", "-1", "1.5", "é"] {
            assert!(FamilyFilter::from_query(Some(bad), None).is_err(), "{bad}");
            assert!(FamilyFilter::from_query(None, Some(bad)).is_err(), "{bad}");
        }
    }
}
