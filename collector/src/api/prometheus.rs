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
        (status = 400, description = "A `families` or `exclude` item is not a metric name prefix"),
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
    let filter = FamilyFilter::from_query(q.families.as_deref(), q.exclude.as_deref())
        .map_err(ApiError::bad_request)?;
    let key = super::cache::key("/metrics", &[("filter", &filter)]);
    super::cache::cached(&state, &key, CONTENT_TYPE, move |c| {
        let now_ms = crate::clock::unix_now().saturating_mul(1000);
        render_fleet_filtered(c, now_ms, &filter).map(Bytes::from)
    })
    .await
}

/// Query of `GET /metrics`: which metric families to write.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Comma-separated metric name prefixes to write (absent: every family), e.g.
    /// `routerstats_router_,routerstats_interface_`.
    #[param(schema_with = prefix_list_schema)]
    pub families: Option<String>,
    /// Comma-separated metric name prefixes to leave out, e.g. `routerstats_station_` (the
    /// per-station series: about half of them, 1 million at 10,000 routers).
    #[param(schema_with = prefix_list_schema)]
    pub exclude: Option<String>,
}

/// `families` / `exclude`: comma-separated items of `[A-Za-z0-9_:]`, each trimmed, empty ones
/// ignored ([`FamilyFilter::from_query`]).
fn prefix_list_schema() -> utoipa::openapi::Object {
    let ws = super::openapi::TRIMMED;
    let item = format!("[{ws}]*[A-Za-z0-9_:]*[{ws}]*");
    super::openapi::string_pattern(&format!("^{item}(,{item})*$"))
}

/// Which metric families are written: name prefixes to keep (none: all) and to leave out.
/// Shared by `GET /metrics` and the remote-write output (`crate::remote_write`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FamilyFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl FamilyFilter {
    /// Whether the family named `name` is written.
    pub fn keeps(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| name.starts_with(p.as_str())))
            && !self.exclude.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// From comma-separated prefix lists; a prefix holds only metric-name characters
    /// (`[a-zA-Z0-9_:]`); empty items are ignored.
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
        })
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

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            lines: String::new(),
        }
    }

    fn start(&mut self, labels: &[(&str, &str)]) {
        self.lines.push_str(self.name);
        if !labels.is_empty() {
            self.lines.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.lines.push(',');
                }
                self.lines.push_str(k);
                self.lines.push_str("=\"");
                push_label_value(&mut self.lines, v);
                self.lines.push('"');
            }
            self.lines.push('}');
        }
        self.lines.push(' ');
    }

    /// Adds an integer sample.
    pub fn int(&mut self, labels: &[(&str, &str)], value: i64) {
        self.start(labels);
        let _ = writeln!(self.lines, "{value}");
    }

    /// Adds a float sample.
    pub fn float(&mut self, labels: &[(&str, &str)], value: f64) {
        self.start(labels);
        self.lines.push_str(&format_float(value));
        self.lines.push('\n');
    }

    /// Adds an integer sample when there is a value.
    pub fn opt_int(&mut self, labels: &[(&str, &str)], value: Option<i64>) {
        if let Some(v) = value {
            self.int(labels, v);
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
            fn new() -> Fleet {
                Fleet { $( $field: Family::new($name, $help, Kind::$kind), )* }
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

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn router_metrics(f: &mut Fleet, r: &Row<'_>, now_ms: i64) -> rusqlite::Result<i64> {
    let id: i64 = r.get(0)?;
    let name: String = r.get(1)?;
    let site: Option<String> = r.get(2)?;
    let last_seen_ms: Option<i64> = r.get(7)?;
    let n = name.as_str();
    let up = last_seen_ms.is_some_and(|t| now_ms.saturating_sub(t) <= UP_WITHIN_S * 1000);
    f.up.int(&[("router", n), ("site", s(&site))], i64::from(up));
    if let Some(t) = last_seen_ms {
        f.last_seen.float(&[("router", n)], t as f64 / 1000.0);
    }
    let (hostname, model, release, agent): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
    f.info.int(
        &[
            ("router", n),
            ("site", s(&site)),
            ("hostname", &hostname),
            ("model", s(&model)),
            ("release", s(&release)),
            ("agent_version", s(&agent)),
        ],
        1,
    );
    let has_report: Option<i64> = r.get(8)?;
    if has_report.is_none() {
        return Ok(id);
    }
    let l = [("router", n)];
    f.dropped.int(&l, r.get(9)?);
    f.uptime.opt_int(&l, r.get(10)?);
    for (fam, col) in [(&mut f.load1, 11), (&mut f.load5, 12), (&mut f.load15, 13)] {
        // Stored from f32: round away the conversion noise (0.41999998688697815 -> 0.42).
        if let Some(v) = r.get::<_, Option<f64>>(col)? {
            fam.float(&l, (v * 10_000.0).round() / 10_000.0);
        }
    }
    if let Some(p) = r.get::<_, Option<i64>>(14)? {
        f.cpu.float(&l, p as f64 / 1000.0);
    }
    f.mem_total.opt_int(
        &l,
        r.get::<_, Option<i64>>(15)?
            .map(|kb| kb.saturating_mul(1024)),
    );
    f.mem_avail.opt_int(
        &l,
        r.get::<_, Option<i64>>(16)?
            .map(|kb| kb.saturating_mul(1024)),
    );
    let mount: Option<String> = r.get(17)?;
    if let Some(m) = &mount {
        let dl = [("router", n), ("mount", m.as_str())];
        f.disk_used.opt_int(&dl, r.get(18)?);
        f.disk_total.opt_int(&dl, r.get(19)?);
    }
    f.stations.int(&l, r.get(20)?);
    f.leases.int(&l, r.get(21)?);
    f.wg_peers.int(&l, r.get(22)?);
    f.ovpn_clients.int(&l, r.get(23)?);
    Ok(id)
}

/// Runs `sql` (no parameters) and hands each row to `each`.
fn each_row(
    conn: &Connection,
    sql: &str,
    mut each: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<(), ApiError> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = st.query([]).map_err(db_err)?;
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
/// `filter` keeps (a group of families whose every member is left out is not even read).
/// `now_ms` decides `up`.
pub fn render_fleet_filtered(
    conn: &Connection,
    now_ms: i64,
    filter: &FamilyFilter,
) -> Result<String, ApiError> {
    let mut f = Fleet::new();
    let wants = |f: &Fleet, prefix: &str| {
        f.all()
            .iter()
            .any(|fam| fam.name.starts_with(prefix) && filter.keeps(fam.name))
    };
    let (ifaces, stations, wg, ovpn) = (
        wants(&f, "routerstats_interface_"),
        wants(&f, "routerstats_station_"),
        wants(&f, "routerstats_wireguard_"),
        wants(&f, "routerstats_openvpn_"),
    );
    let mut routers = 0i64;
    each_row(
        conn,
        "SELECT r.id, r.name, r.site, r.hostname, r.model, r.release, r.agent_version, r.last_seen_ms, \
         p.id, p.dropped_reports, p.uptime_s, p.load1, p.load5, p.load15, p.cpu_permille, p.mem_total_kb, \
         p.mem_available_kb, p.disk_mount, p.disk_used_bytes, p.disk_total_bytes, p.station_count, \
         p.lease_count, p.wg_peer_count, p.ovpn_client_count \
         FROM routers r LEFT JOIN reports p ON p.id = r.last_report_id WHERE r.revoked_at IS NULL ORDER BY r.id",
        |r| {
            routers += 1;
            router_metrics(&mut f, r, now_ms).map(|_| ())
        },
    )?;
    f.routers.int(&[], routers);

    if ifaces {
        each_row(
        conn,
        "SELECT r.name, i.name, i.kind, i.rx_bytes, i.tx_bytes, i.rx_packets, i.tx_packets, i.rx_errs, \
         i.tx_errs, i.rx_drop, i.tx_drop \
         FROM routers r CROSS JOIN interface_samples i ON i.router_id = r.id AND i.ts_ms = r.last_report_ms \
         WHERE r.revoked_at IS NULL ORDER BY r.id, i.name",
        |r| {
            let (router, iface, kind): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let l = [("router", router.as_str()), ("interface", iface.as_str()), ("kind", kind.as_str())];
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
                fam.int(&l, r.get(col)?);
            }
            Ok(())
        },
    )?;
    }

    if stations {
        each_row(
        conn,
        "SELECT r.name, s.iface, s.mac, s.ssid, s.signal_dbm, s.signal_avg_dbm, s.rx_bytes, s.tx_bytes, \
         s.connected_s \
         FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
         WHERE r.revoked_at IS NULL ORDER BY r.id, s.iface, s.mac",
        |r| {
            let (router, iface, mac, ssid): (String, String, String, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let l = [
                ("router", router.as_str()),
                ("interface", iface.as_str()),
                ("ssid", s(&ssid)),
                ("mac", mac.as_str()),
            ];
            f.sta_signal.opt_int(&l, r.get(4)?);
            f.sta_signal_avg.opt_int(&l, r.get(5)?);
            f.sta_rx.opt_int(&l, r.get(6)?);
            f.sta_tx.opt_int(&l, r.get(7)?);
            f.sta_conn.opt_int(&l, r.get(8)?);
            Ok(())
        },
    )?;
    }

    if wg {
        each_row(
        conn,
        "SELECT r.name, w.iface, w.public_key, w.name, w.rx_bytes, w.tx_bytes, w.latest_handshake, w.allowed_ips \
         FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms \
         WHERE r.revoked_at IS NULL ORDER BY r.id, w.iface, w.public_key",
        |r| {
            let (router, iface, key, name): (String, String, String, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let l = [
                ("router", router.as_str()),
                ("interface", iface.as_str()),
                ("public_key", key.as_str()),
                ("name", s(&name)),
            ];
            let (rx, tx): (i64, i64) = (r.get(4)?, r.get(5)?);
            let handshake = r.get::<_, Option<i64>>(6)?.unwrap_or(0);
            f.wg_rx.int(&l, rx);
            f.wg_tx.int(&l, tx);
            f.wg_hs.int(&l, handshake);
            // The exporter's label set: friendly_name only for named peers, as with its `-n`.
            let allowed: String = r.get(7)?;
            let mut e = vec![
                ("interface", iface.as_str()),
                ("public_key", key.as_str()),
                ("allowed_ips", allowed.as_str()),
            ];
            if let Some(n) = name.as_deref().filter(|n| !n.is_empty()) {
                e.push(("friendly_name", n));
            }
            e.push(("router", router.as_str()));
            f.wge_sent.int(&e, tx);
            f.wge_received.int(&e, rx);
            f.wge_handshake.int(&e, handshake);
            Ok(())
        },
    )?;
    }

    if ovpn {
        each_row(
        conn,
        "SELECT r.name, o.instance, o.common_name, o.real_address, o.rx_bytes, o.tx_bytes, o.connected_since \
         FROM routers r CROSS JOIN ovpn_client_samples o ON o.router_id = r.id AND o.ts_ms = r.last_report_ms \
         WHERE r.revoked_at IS NULL ORDER BY r.id, o.instance, o.common_name, o.real_address",
        |r| {
            let (router, inst, cn, real): (String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let l = [
                ("router", router.as_str()),
                ("instance", inst.as_str()),
                ("common_name", cn.as_str()),
                ("real_address", real.as_str()),
            ];
            f.ovpn_rx.int(&l, r.get(4)?);
            f.ovpn_tx.int(&l, r.get(5)?);
            f.ovpn_since.opt_int(&l, r.get(6)?);
            Ok(())
        },
    )?;
    }

    let kept: Vec<&Family> = f
        .all()
        .into_iter()
        .filter(|fam| filter.keeps(fam.name))
        .collect();
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
        let f = Fleet::new();
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
