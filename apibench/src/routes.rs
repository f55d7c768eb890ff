//! The API benchmark's GET route mix: every read route of the five replaced tools and the
//! collector's own, with the ids of one router filled in, and the group (API family) each route
//! belongs to. `routerstats-apibench` fills the ids from its generated fleet, `bench-ingest`
//! from what its simulated agents send.

use crate::client::pct_encode;

/// The ids the parameterised routes use (raw values; the WireGuard key is percent-encoded here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteIds {
    /// A router's name and its numeric id.
    pub router: String,
    pub router_id: i64,
    /// That router's site.
    pub site: String,
    /// One of its interfaces (the gateway port route).
    pub wan_port: String,
    /// Router names for the multi-device status route.
    pub identities: Vec<String>,
    /// A wireless client's DHCP hostname and MAC.
    pub station_host: String,
    pub station_mac: String,
    /// A WireGuard peer's public key and name.
    pub wg_key: String,
    pub wg_peer: String,
    /// An OpenVPN client's common name.
    pub ovpn_cn: String,
}

/// The routes, in a fixed order.
pub fn route_mix(ids: &RouteIds) -> Vec<String> {
    let name = &ids.router;
    let host = &ids.station_host;
    let mac = &ids.station_mac;
    let key = pct_encode(&ids.wg_key);
    let peer = &ids.wg_peer;
    let cn = &ids.ovpn_cn;
    let site = &ids.site;
    let port = &ids.wan_port;
    let mut v: Vec<String> = [
        "/health",
        "/api/health",
        "/api/openwrt",
        "/api/performance",
        "/api/logs",
        "/api/pppoe_interfaces",
        "/api/organization",
        "/api/sites",
        "/api/mikrotik/devices",
        "/api/mikrotik/interfaces",
        "/api/mikrotik/users/active",
        "/api/vpn/status",
        "/api/vpn/clients",
        "/api/vpn/clients/connected",
        "/api/vpn/statistics/usage",
        "/api/vpn/health",
        "/api/bandwidth/usage/real-time",
        "/api/bandwidth/usage/peak",
        "/api/bandwidth/monitoring/top-users",
        "/api/bandwidth/monitoring/network-summary",
        "/api/bandwidth/monitoring/alerts",
        "/api/bandwidth/monitoring/quality",
        "/api/bandwidth/health",
        "/api/metrics/summary",
        "/api/metrics/health",
        "/api/metrics/peers",
        "/api/metrics/peers/active",
        "/api/metrics/bandwidth",
        "/peers",
        "/server-info",
        "/metrics",
        "/api/openapi.json",
        "/api/export",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for w in ["15m", "1h", "1d", "7d"] {
        v.push(format!("/api/gateways?duration={w}"));
        v.push(format!("/api/gateways?duration={w}&site_id={site}"));
        v.push(format!(
            "/api/gateway/{name}/port/{port}/traffic?duration={w}"
        ));
        v.push(format!("/api/fleet?duration={w}"));
        v.push(format!("/api/fleet?duration={w}&site={site}"));
    }
    v.extend([
        format!("/api/gateway/{name}/ports"),
        format!("/api/mikrotik/devices/{name}/currentstatus"),
        format!(
            "/api/mikrotik/devices/status?identities={}",
            ids.identities.join(",")
        ),
        format!("/api/mikrotik/users/{host}/stats"),
        format!("/api/mikrotik/users/{mac}/stats"),
        format!("/api/vpn/clients/{cn}/details"),
        format!("/api/metrics/peer/{key}"),
        format!("/api/metrics/peer/{key}/bandwidth"),
        format!("/api/metrics/peer/{key}/history"),
        format!("/peer/{peer}"),
        format!("/peer/{peer}/metrics"),
        format!("/api/routers/{name}"),
        format!("/api/routers/{}", ids.router_id),
    ]);
    v
}

/// The API family of a route (its path, with or without a query): the replaced tool it comes
/// from (`../shared/api/`), or `collector` for the collector's own routes.
pub fn group(route: &str) -> &'static str {
    let path = route.split('?').next().unwrap_or(route);
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/api/mikrotik") {
        "isp: mikrotik"
    } else if under("/api/vpn") {
        "isp: vpn"
    } else if under("/api/bandwidth") {
        "isp: bandwidth"
    } else if under("/api/metrics") || under("/peers") || under("/peer") || path == "/server-info" {
        "wireguard manager"
    } else if under("/api/gateways")
        || under("/api/gateway")
        || path == "/health"
        || path == "/api/organization"
        || path == "/api/sites"
    {
        "gateway wan stats"
    } else if [
        "/api/health",
        "/api/performance",
        "/api/logs",
        "/api/pppoe_interfaces",
        "/api/export",
    ]
    .contains(&path)
    {
        "routeros monitor"
    } else if path == "/api/openwrt" {
        "openwrt router stats"
    } else {
        "collector"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> RouteIds {
        RouteIds {
            router: "ap-1".into(),
            router_id: 2,
            site: "s".into(),
            wan_port: "wan".into(),
            identities: vec!["ap-1".into(), "ap-2".into()],
            station_host: "h".into(),
            station_mac: "02:00:00:00:00:01".into(),
            wg_key: "a+b/c=".into(),
            wg_peer: "p".into(),
            ovpn_cn: "c".into(),
        }
    }

    #[test]
    fn ids_are_filled_in_and_the_key_is_encoded() {
        let v = route_mix(&ids());
        assert!(v.contains(&"/api/metrics/peer/a%2Bb%2Fc%3D".to_string()));
        assert!(v.contains(&"/api/gateway/ap-1/port/wan/traffic?duration=7d".to_string()));
        assert!(v.contains(&"/api/mikrotik/devices/status?identities=ap-1,ap-2".to_string()));
        assert!(v.contains(&"/api/routers/2".to_string()));
        assert_eq!(v.len(), 66);
    }

    #[test]
    fn every_route_has_its_family() {
        assert_eq!(group("/api/mikrotik/users/h/stats"), "isp: mikrotik");
        assert_eq!(group("/api/vpn/status"), "isp: vpn");
        assert_eq!(group("/api/bandwidth/usage/peak"), "isp: bandwidth");
        assert_eq!(group("/peer/p/metrics"), "wireguard manager");
        assert_eq!(group("/peers"), "wireguard manager");
        assert_eq!(group("/api/gateways?duration=1d"), "gateway wan stats");
        assert_eq!(group("/health"), "gateway wan stats");
        assert_eq!(group("/api/export"), "routeros monitor");
        assert_eq!(group("/api/openwrt"), "openwrt router stats");
        assert_eq!(group("/api/fleet?duration=1h"), "collector");
        assert_eq!(group("/metrics"), "collector");
        // A prefix alone is not a family: /peersx is not under /peers.
        assert_eq!(group("/peersx"), "collector");
    }
}
