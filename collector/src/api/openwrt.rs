//! Route group `openwrt`: `GET /api/openwrt`, the answer of the OpenWrt CGI-script stats tool
//! this project replaces (its `info.cgi` / `dhcp.cgi` polling is what the agent does now).
//!
//! The shape is the tool's: one `"<router> uptime"` key per router (like `3d4h5m`), one key per
//! SSID (lowercase, spaces as `_`) holding its client count as `"[n]"`, `"total clients"`, and
//! `"clients"`: SSID key -> list of clients. Each client keeps the tool's `hostname`, `rx/tx`
//! and `uptime` strings and adds the raw values (`mac`, `interface`, `router`, `site`, `ip`,
//! `rx_bytes`, `tx_bytes`, `connected_time`).
//!
//! "Connected" means: a station in its router's latest report (revoked routers are left out).
//! Hostname and IP come from the DHCP leases of any router of the same site (routers without a
//! site form one group), preferring the station's own router, then a lease with a hostname, then
//! the latest expiry. Like the tool, `hostname` falls back to the IP, then to the MAC. Stations on
//! interfaces without an SSID (mesh points) are under `unknown_ssid`.
//!
//! The answer covers one page of routers (`limit`, `cursor`: see `super::paging`): the uptimes,
//! SSID counts, `total clients` and `clients` of that page; the next page is named in the
//! `Link` and `X-Next-Cursor` headers (the document's object has no field for it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::cache::{self, json_bytes};
use super::extract::bad_query;
use super::monitor::to_u64;
use super::paging::{bounds, set_next_headers, Page, PageBounds};
use super::readpool::db_err;
use super::{require_role, ApiError, ApiState};
use crate::pki::tokens::Role;

/// Key of the clients whose interface has no SSID.
pub const UNKNOWN_SSID: &str = "unknown_ssid";

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/openwrt", get(openwrt_stats))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(openwrt_stats))]
pub struct Doc;

/// Bytes as the tool printed them: `17.4 MB` (1024-based, one decimal).
pub fn format_bytes(v: Option<u64>) -> String {
    let Some(v) = v else { return "N/A".to_string() };
    let mut f = v as f64;
    for unit in ["Bytes", "KB", "MB", "GB", "TB"] {
        if f < 1024.0 {
            return format!("{f:.1} {unit}");
        }
        f /= 1024.0;
    }
    format!("{f:.1} PB")
}

/// Seconds as the tool printed them: `1d2h3m`, `0m` under a minute.
pub fn format_secs(s: Option<u64>) -> String {
    let Some(s) = s else { return "N/A".to_string() };
    let m = s / 60;
    let h = m / 60;
    let d = h / 24;
    let mut out = String::new();
    if d > 0 {
        out.push_str(&format!("{d}d"));
    }
    if h % 24 > 0 {
        out.push_str(&format!("{}h", h % 24));
    }
    if m % 60 > 0 {
        out.push_str(&format!("{}m", m % 60));
    }
    if out.is_empty() {
        "0m".to_string()
    } else {
        out
    }
}

/// The tool's SSID key: lowercase with spaces as `_`.
pub fn ssid_key(ssid: Option<&str>) -> String {
    match ssid {
        Some(s) if !s.is_empty() => s.replace(' ', "_").to_lowercase(),
        _ => UNKNOWN_SSID.to_string(),
    }
}

/// Names and uptimes of the non-revoked routers with `?1 < id <= ?2` (one page).
const ROUTERS_SQL: &str =
    "SELECT name, uptime_s FROM routers WHERE id > ?1 AND id <= ?2 AND revoked_at IS NULL";

/// SSIDs of the current wireless interfaces of the page's non-revoked routers (a current-state
/// table).
const SSIDS_SQL: &str =
    "SELECT w.ssid FROM routers r CROSS JOIN wireless_interfaces w ON w.router_id = r.id \
     WHERE r.id > ?1 AND r.id <= ?2 AND r.revoked_at IS NULL AND w.ssid IS NOT NULL";

/// Stations of the newest report of each of the page's non-revoked routers (primary-key range
/// per router).
const STATIONS_SQL: &str = "SELECT r.id, r.name, r.site, s.iface, s.mac, s.ssid, s.rx_bytes, s.tx_bytes, s.connected_s \
     FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 AND r.revoked_at IS NULL ORDER BY r.name, s.iface, s.mac";

/// The leases held by non-revoked routers of the MACs of the page's stations, with each
/// router's site: one statement (`leases_mac` probes inside SQLite, once per distinct MAC).
const LEASES_SQL: &str =
    "SELECT lr.site, l.mac, l.router_id, l.ip, l.hostname, l.expires FROM leases l \
     CROSS JOIN routers lr ON lr.id = l.router_id WHERE lr.revoked_at IS NULL AND l.mac IN \
     (SELECT s.mac FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id \
      AND s.ts_ms = r.last_report_ms WHERE r.id > ?1 AND r.id <= ?2 AND r.revoked_at IS NULL)";

/// A lease found for a station.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lease {
    router_id: i64,
    ip: String,
    hostname: Option<String>,
    /// None or 0: infinite.
    expires: Option<i64>,
}

/// The best lease for a station of router `own`: its own router's, then one with a hostname,
/// then the latest expiry (infinite first), then the lowest IP.
fn best_lease(leases: &[Lease], own: i64) -> Option<&Lease> {
    let expiry = |l: &Lease| match l.expires {
        None | Some(0) => i64::MAX,
        Some(e) => e,
    };
    leases.iter().min_by(|a, b| {
        (b.router_id == own)
            .cmp(&(a.router_id == own))
            .then_with(|| b.hostname.is_some().cmp(&a.hostname.is_some()))
            .then_with(|| expiry(b).cmp(&expiry(a)))
            .then_with(|| a.ip.cmp(&b.ip))
    })
}

/// Leases by MAC, then site (None: routers without a site).
type LeaseIndex = HashMap<String, HashMap<Option<String>, Vec<Lease>>>;

/// The leases of the MACs of the page's stations (see [`LEASES_SQL`]).
fn load_leases(conn: &Connection, page: &PageBounds) -> Result<LeaseIndex, ApiError> {
    let mut st = conn.prepare_cached(LEASES_SQL).map_err(db_err)?;
    let mut rows = st.query(params![page.after, page.last]).map_err(db_err)?;
    let mut out: LeaseIndex = HashMap::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let site: Option<String> = r.get(0).map_err(db_err)?;
        let mac: String = r.get(1).map_err(db_err)?;
        let lease = Lease {
            router_id: r.get(2).map_err(db_err)?,
            ip: r.get(3).map_err(db_err)?,
            hostname: r.get(4).map_err(db_err)?,
            expires: r.get(5).map_err(db_err)?,
        };
        out.entry(mac)
            .or_default()
            .entry(site)
            .or_default()
            .push(lease);
    }
    Ok(out)
}

/// One client in the tool's shape plus the raw values. Fields are in alphabetical order, the
/// order the answer always had (it was built as a `serde_json::Map`).
#[derive(Debug, Serialize)]
struct Client {
    connected_time: Option<u64>,
    hostname: String,
    interface: String,
    ip: Option<String>,
    mac: String,
    router: String,
    #[serde(rename = "rx/tx")]
    rx_tx: String,
    rx_bytes: Option<u64>,
    site: Option<String>,
    tx_bytes: Option<u64>,
    uptime: String,
}

/// A top-level value: an uptime or `"[n]"` string, the total, or the clients by SSID.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Count(usize),
    Clients(BTreeMap<String, Vec<Client>>),
}

/// Builds the `/api/openwrt` document of one page of routers, serialized (keys in alphabetical
/// order).
pub fn openwrt_body(conn: &Connection, page: &PageBounds) -> Result<Bytes, ApiError> {
    let range = params![page.after, page.last];
    let mut out: BTreeMap<String, Item> = BTreeMap::new();
    {
        let mut st = conn.prepare_cached(ROUTERS_SQL).map_err(db_err)?;
        let mut rows = st.query(range).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let name: String = r.get(0).map_err(db_err)?;
            let uptime: Option<i64> = r.get(1).map_err(db_err)?;
            out.insert(
                format!("{name} uptime"),
                Item::Text(format_secs(uptime.map(to_u64))),
            );
        }
    }
    let mut ssids: BTreeSet<String> = BTreeSet::new();
    {
        let mut st = conn.prepare_cached(SSIDS_SQL).map_err(db_err)?;
        let rows = st
            .query_map(range, |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        for s in rows {
            ssids.insert(ssid_key(Some(&s.map_err(db_err)?)));
        }
    }
    let leases = load_leases(conn, page)?;
    let mut by_ssid: BTreeMap<String, Vec<Client>> = BTreeMap::new();
    let mut total = 0usize;
    let mut st = conn.prepare_cached(STATIONS_SQL).map_err(db_err)?;
    let mut rows = st.query(range).map_err(db_err)?;
    while let Some(row) = rows.next().map_err(db_err)? {
        let rid: i64 = row.get(0).map_err(db_err)?;
        let router: String = row.get(1).map_err(db_err)?;
        let site: Option<String> = row.get(2).map_err(db_err)?;
        let iface: String = row.get(3).map_err(db_err)?;
        let mac: String = row.get(4).map_err(db_err)?;
        let ssid: Option<String> = row.get(5).map_err(db_err)?;
        let rx = row.get::<_, Option<i64>>(6).map_err(db_err)?.map(to_u64);
        let tx = row.get::<_, Option<i64>>(7).map_err(db_err)?.map(to_u64);
        let connected = row.get::<_, Option<i64>>(8).map_err(db_err)?.map(to_u64);
        let lease = leases
            .get(mac.as_str())
            .and_then(|m| m.get(&site))
            .and_then(|l| best_lease(l, rid));
        let ip = lease.map(|l| l.ip.clone());
        let hostname = lease
            .and_then(|l| l.hostname.clone())
            .or_else(|| ip.clone())
            .unwrap_or_else(|| mac.clone());
        let k = ssid_key(ssid.as_deref());
        by_ssid.entry(k).or_default().push(Client {
            connected_time: connected,
            hostname,
            interface: iface,
            ip,
            mac,
            router,
            rx_tx: format!("{} / {}", format_bytes(rx), format_bytes(tx)),
            rx_bytes: rx,
            site,
            tx_bytes: tx,
            uptime: format_secs(connected),
        });
        total += 1;
    }
    ssids.extend(by_ssid.keys().cloned());
    for k in &ssids {
        out.insert(
            k.clone(),
            Item::Text(format!("[{}]", by_ssid.get(k).map_or(0, Vec::len))),
        );
        by_ssid.entry(k.clone()).or_default();
    }
    out.insert("total clients".to_string(), Item::Count(total));
    // Like the tool, `clients` is inserted last and wins over an SSID named "clients".
    out.insert("clients".to_string(), Item::Clients(by_ssid));
    json_bytes(&out)
}

/// Query of `GET /api/openwrt`: one page of the fleet (see `super::paging`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenwrtQuery {
    /// Routers per page (default 100; above 1000 means 1000); pages are in router id order.
    #[param(schema_with = super::paging::limit_schema)]
    pub limit: Option<String>,
    /// The `X-Next-Cursor` of the previous page (absent: the first page).
    #[param(schema_with = super::paging::cursor_schema)]
    pub cursor: Option<String>,
}

/// Router uptimes and connected wireless clients grouped by SSID, with hostnames from DHCP; a
/// page of routers at a time.
#[utoipa::path(get, path = "/api/openwrt", tag = "openwrt", params(OpenwrtQuery),
    responses((status = 200, description = "One page of routers (`limit`, default 100, in router id order): their uptimes, \
        the SSID counts, `total clients` and `clients` of that page; the next page is named in the `Link` (rel=\"next\") \
        and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` \
        (default 10 s) old; after new reports a cached answer is still served while one background task recomputes it. `{\"<router> uptime\": \"3d4h5m\", \"<ssid>\": \"[n]\", \"total clients\": n, \
        \"clients\": {\"<ssid>\": [{hostname, \"rx/tx\", uptime, mac, ip, interface, router, site, rx_bytes, tx_bytes, connected_time}]}}`",
        body = Object),
              (status = 400, description = "Bad `limit` or `cursor`"),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn openwrt_stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<OpenwrtQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(bad_query)?;
    let page = Page::parse(q.limit.as_deref(), q.cursor.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let b = super::with_read(&state, move |c| bounds(c, page).map_err(db_err)).await?;
    let key = cache::key("/api/openwrt", &[("page", &b)]);
    let next = b.next_cursor.clone();
    let mut resp = cache::cached(&state, &key, "application/json", move |c| {
        openwrt_body(c, &b)
    })
    .await?;
    set_next_headers(&mut resp, &uri, next.as_deref());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::monitor::tests::{assert_no_big_scan, empty_db, plan};
    use serde_json::{json, Value};

    fn openwrt_document(c: &Connection) -> Result<Value, ApiError> {
        let body = openwrt_body(c, &bounds(c, Page::default()).unwrap())?;
        serde_json::from_slice(&body).map_err(|e| ApiError::internal(e.to_string()))
    }

    #[test]
    fn formats_like_the_tool() {
        assert_eq!(format_bytes(Some(0)), "0.0 Bytes");
        assert_eq!(format_bytes(Some(1023)), "1023.0 Bytes");
        assert_eq!(format_bytes(Some(18_234_567)), "17.4 MB");
        assert_eq!(format_bytes(Some(u64::MAX)), "16384.0 PB");
        assert_eq!(format_bytes(None), "N/A");
        assert_eq!(format_secs(Some(5123)), "1h25m");
        assert_eq!(format_secs(Some(86_012)), "23h53m");
        assert_eq!(format_secs(Some(90_061)), "1d1h1m");
        assert_eq!(format_secs(Some(59)), "0m");
        assert_eq!(format_secs(Some(86_400)), "1d");
        assert_eq!(format_secs(None), "N/A");
        assert_eq!(ssid_key(Some("Home Net 5G")), "home_net_5g");
        assert_eq!(ssid_key(None), UNKNOWN_SSID);
        assert_eq!(ssid_key(Some("")), UNKNOWN_SSID);
    }

    #[test]
    fn lease_preference() {
        let l = |router_id, ip: &str, hostname: Option<&str>, expires| Lease {
            router_id,
            ip: ip.into(),
            hostname: hostname.map(String::from),
            expires,
        };
        let own = best_lease(
            &[
                l(2, "10.0.0.2", Some("other"), Some(9)),
                l(1, "10.0.0.1", None, Some(5)),
            ],
            1,
        )
        .cloned()
        .unwrap();
        assert_eq!(own.ip, "10.0.0.1");
        let named = best_lease(
            &[
                l(2, "10.0.0.2", None, None),
                l(3, "10.0.0.3", Some("n"), Some(1)),
            ],
            1,
        )
        .cloned()
        .unwrap();
        assert_eq!(named.hostname.as_deref(), Some("n"));
        let infinite = best_lease(
            &[
                l(2, "10.0.0.2", Some("a"), Some(100)),
                l(3, "10.0.0.3", Some("b"), Some(0)),
            ],
            1,
        )
        .cloned()
        .unwrap();
        assert_eq!(infinite.ip, "10.0.0.3");
        assert_eq!(best_lease(&[], 1), None);
    }

    #[test]
    fn queries_use_indexes() {
        let c = empty_db();
        assert_no_big_scan(&plan(&c, STATIONS_SQL, 2));
        assert_no_big_scan(&plan(&c, SSIDS_SQL, 2));
        assert_no_big_scan(&plan(&c, ROUTERS_SQL, 2));
        // A MAC's leases by index, each joined to its router by primary key.
        let p = plan(&c, LEASES_SQL, 2);
        assert!(
            p.contains("USING INDEX leases_mac") || p.contains("USING COVERING INDEX leases_mac"),
            "{p}"
        );
        assert!(p.contains("USING INTEGER PRIMARY KEY"), "{p}");
    }

    #[test]
    fn site_scoped_resolution_and_shape() {
        let c = empty_db();
        c.execute_batch(
            "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at, last_report_ms, uptime_s) VALUES \
             (1, 'ap-a', 'home', 'a', 'f1', 0, 0, 100, 90061), (2, 'ap-b', 'home', 'b', 'f2', 0, 0, 100, 60), \
             (3, 'ap-c', 'office', 'c', 'f3', 0, 0, 100, NULL), (4, 'gone', 'home', 'g', 'f4', 0, 0, 100, 5);
             UPDATE routers SET revoked_at = 1 WHERE id = 4;
             INSERT INTO wireless_interfaces (router_id, name, type, ssid, updated_ms) VALUES
             (1, 'wlan0', 'AP', 'Home Net', 0), (2, 'wlan0', 'AP', 'Home Net', 0), (3, 'wlan0', 'AP', 'Office', 0), (4, 'wlan0', 'AP', 'Secret', 0);
             INSERT INTO leases (router_id, ip, mac, hostname, updated_ms) VALUES
             (1, '192.168.1.50', 'aa:aa:aa:aa:aa:01', 'tablet', 0), (4, '192.168.1.99', 'aa:aa:aa:aa:aa:02', 'stale', 0),
             (3, '10.1.1.7', 'aa:aa:aa:aa:aa:03', NULL, 0);
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, rx_bytes, tx_bytes, connected_s) VALUES
             (2, 100, 'wlan0', 'aa:aa:aa:aa:aa:01', 'Home Net', 18234567, 2048, 5123),
             (2, 99, 'wlan0', 'aa:aa:aa:aa:aa:09', 'Home Net', 1, 1, 1),
             (2, 100, 'mesh0', 'aa:aa:aa:aa:aa:02', NULL, NULL, NULL, NULL),
             (3, 100, 'wlan0', 'aa:aa:aa:aa:aa:01', 'Office', 1, 2, 3),
             (3, 100, 'wlan0', 'aa:aa:aa:aa:aa:03', 'Office', 1, 2, 3),
             (4, 100, 'wlan0', 'aa:aa:aa:aa:aa:04', 'Secret', 1, 2, 3);",
        )
        .unwrap();
        // Byte-exact shape (keys in the order the answer always had).
        let text = String::from_utf8(
            openwrt_body(&c, &bounds(&c, Page::default()).unwrap())
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(text.starts_with(r#"{"ap-a uptime":"1d1h1m","ap-b uptime":"1m","ap-c uptime":"N/A","clients":{"home_net":[{"connected_time":5123,"hostname":"tablet","interface":"wlan0","ip":"192.168.1.50","mac":"aa:aa:aa:aa:aa:01","router":"ap-b","rx/tx":"17.4 MB / 2.0 KB","rx_bytes":18234567,"site":"home","tx_bytes":2048,"uptime":"1h25m"}]"#), "{text}");
        let doc = openwrt_document(&c).unwrap();
        assert_eq!(doc["ap-a uptime"], "1d1h1m");
        assert_eq!(doc["ap-c uptime"], "N/A");
        assert!(doc.get("gone uptime").is_none());
        assert_eq!(doc["home_net"], "[1]");
        assert_eq!(doc["office"], "[2]");
        assert_eq!(doc[UNKNOWN_SSID], "[1]");
        assert!(doc.get("secret").is_none());
        // Only the newest report's stations count, revoked routers' not at all.
        assert_eq!(doc["total clients"], 4);
        // ap-b's station resolves through ap-a's lease (same site).
        let home = doc["clients"]["home_net"].as_array().unwrap();
        assert_eq!(home.len(), 1);
        let s = &home[0];
        assert_eq!(s["hostname"], "tablet");
        assert_eq!(s["ip"], "192.168.1.50");
        assert_eq!(s["rx/tx"], "17.4 MB / 2.0 KB");
        assert_eq!(s["uptime"], "1h25m");
        assert_eq!(
            (s["router"].as_str(), s["interface"].as_str()),
            (Some("ap-b"), Some("wlan0"))
        );
        assert_eq!(s["connected_time"], 5123);
        // The same MAC at the office site does not see the home lease; a lease without a
        // hostname gives the IP; no lease gives the MAC. The revoked router's lease is ignored.
        let office = doc["clients"]["office"].as_array().unwrap();
        let names: Vec<&str> = office
            .iter()
            .filter_map(|c| c["hostname"].as_str())
            .collect();
        assert_eq!(names, ["aa:aa:aa:aa:aa:01", "10.1.1.7"]);
        assert_eq!(office[0]["ip"], Value::Null);
        let mesh = &doc["clients"][UNKNOWN_SSID][0];
        assert_eq!(mesh["hostname"], "aa:aa:aa:aa:aa:02");
        assert_eq!(mesh["rx/tx"], "N/A / N/A");
    }

    #[test]
    fn empty_fleet() {
        let doc = openwrt_document(&empty_db()).unwrap();
        assert_eq!(doc, json!({ "total clients": 0, "clients": {} }));
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = <Doc as utoipa::OpenApi>::openapi();
        assert!(doc.paths.paths.contains_key("/api/openwrt"));
        assert!(serde_json::to_string(&doc).is_ok());
    }
}
