//! A Wi-Fi 7 router end to end: the real agent reads a fake `iw` printing a multi-link (MLD)
//! interface with two links and a station dump with airtime counters and per-link sections
//! (agent/fixtures/iw/iw-dev-mld.txt, station-dump-airtime.txt), reports over real mTLS, and the
//! collector's APIs show every link, the airtime and the per-link station figures.

use std::path::Path;
use std::time::Duration;

use routerstats_tests::harness::{wait_for, Fleet};
use serde_json::Value;

const ROUTER: &str = "ap-attic";
/// Stations of the airtime fixture: a single-link one and a multi-link one (links 1 and 2).
const SINGLE: &str = "8a:3f:10:22:01:01";
const MULTI: &str = "8a:3f:10:22:01:02";

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("wifi7-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn data(fleet: &Fleet, path: &str) -> Value {
    let (status, body) = fleet.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].clone()
}

#[test]
fn mld_links_airtime_and_station_links_reach_the_api() {
    let mut fleet = Fleet::start(&[(ROUTER, "home")], 1);
    let root = fleet.routers[0].router.root.clone();
    let iw = root.join("data/iw");
    // The router becomes a Wi-Fi 7 AP: `iw dev` prints the MLD fixture, `ap-mld0` has stations,
    // and /proc/net/dev has its counters.
    let mld = std::fs::read_to_string(iw.join("iw-dev-mld.txt")).unwrap();
    write_atomic(&iw.join("iw-dev.txt"), &mld);
    let dump = std::fs::read_to_string(iw.join("station-dump-airtime.txt")).unwrap();
    write_atomic(
        &iw.join("station-dump-ap-mld0.txt"),
        &dump.replace("(on phy1-ap0)", "(on ap-mld0)"),
    );
    let net_dev = root.join("proc/net/dev");
    let text = std::fs::read_to_string(&net_dev).unwrap();
    write_atomic(
        &net_dev,
        &format!("{text}ap-mld0: 73302911 91022 0 0 0 0 0 0 804455102 590331 0 0 0 0 0 0\n"),
    );
    let db = fleet.collector.db();
    // Two reports with the new station dump: the second has airtime deltas.
    wait_for(
        Duration::from_secs(60),
        "airtime deltas of the MLD stations",
        || {
            let n: i64 = db
            .query_row(
                "SELECT count(*) FROM station_samples WHERE iface = 'ap-mld0' AND tx_airtime_us IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
            (n >= 2).then_some(())
        },
    );
    fleet.stop_agents();

    let ifaces = data(&fleet, &format!("/api/mikrotik/interfaces?device={ROUTER}"));
    let list = ifaces["interfaces"].as_array().unwrap();
    let mld = list
        .iter()
        .find(|i| i["name"] == "ap-mld0")
        .expect("ap-mld0 in /api/interfaces");
    let w = &mld["wireless"];
    assert_eq!(
        (w["mode"].as_str(), w["ssid"].as_str()),
        (Some("AP"), Some("Attic Wi-Fi 7"))
    );
    assert!(w["width_mhz"].is_null(), "{w}");
    let links: Vec<(i64, i64, i64)> = w["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["link_id"].as_i64().unwrap(),
                l["frequency_mhz"].as_i64().unwrap_or(0),
                l["width_mhz"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(links, [(1, 5180, 160), (2, 6135, 320), (0, 0, 0)]);
    assert_eq!(w["links"][1]["txpower_dbm"].as_f64(), Some(21.5));
    assert_eq!(w["links"][0]["addr"], "02:1c:55:40:01:24");

    let users = data(
        &fleet,
        &format!("/api/mikrotik/users/active?device={ROUTER}"),
    );
    let users = users["active_users"].as_array().unwrap();
    let user = |mac: &str| {
        users
            .iter()
            .find(|u| u["mac_address"] == mac)
            .unwrap_or_else(|| panic!("{mac} active"))
    };
    let single = user(SINGLE);
    assert_eq!(single["interface"], "ap-mld0");
    assert_eq!(single["airtime_weight"], 256);
    // The fake router's counters do not move airtime: the deltas are there, and zero.
    assert_eq!(
        (
            single["tx_airtime_us"].as_i64(),
            single["airtime_permille"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(single["links"], Value::Array(vec![]));
    let multi = user(MULTI);
    let per_link: Vec<(i64, i64, i64)> = multi["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["link_id"].as_i64().unwrap(),
                l["tx_bitrate_kbps"].as_i64().unwrap(),
                l["tx_duration_us"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_link, [(1, 2_882_400, 4000), (2, 5_764_700, 1100)]);
    assert_eq!(multi["links"][0]["addr"], "8a:3f:10:22:11:02");
    assert_eq!(multi["airtime_weight"], 512);
}
