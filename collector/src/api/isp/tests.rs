//! Unit tests of the `isp` group: parameter checks, formatting, window arithmetic, user
//! resolution and window totals over a store filled through the real ingest, and the query
//! plans of every query (no full scan of a sample or rollup table).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::Query;
use axum::http::StatusCode;
use rusqlite::Connection;

use routerstats_shared::model::{DhcpLease, MacAddr, Report, Station, StationLinkStats};

use super::bandwidth::window_counters;
use super::devices::StationRow;
use super::*;
use crate::api::times::iso_ms_opt as iso_ms;
use crate::api::times::{date_ms, plain_datetime_s, routeros_uptime};
use crate::store::{CertInfo, IngestItem, NewToken, Store};

fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, IspError> {
    let q = Ok(Query(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ));
    Params::parse(q, allowed)
}

#[test]
fn params_check_names_bounds_and_types() {
    let p = params(
        &[("minutes", "30"), ("sort_by", "Download")],
        &["minutes", "sort_by", "limit"],
    )
    .unwrap();
    assert_eq!(p.int("minutes", 60, 1, 180).unwrap(), 30);
    assert_eq!(p.int("limit", 20, 1, 100).unwrap(), 20);
    assert_eq!(
        p.choice("sort_by", &["total", "download", "upload"], "total")
            .unwrap(),
        "download"
    );

    // Unknown names (cache busters, misspellings) are ignored, as on the other groups.
    let p = params(&[("minute", "5"), ("_", "123")], &["minutes"]).unwrap();
    assert_eq!(p.int("minutes", 60, 1, 180).unwrap(), 60);
    // Text is checked as the OpenAPI pattern states it: before trimming, so U+0085 (white
    // space and a control character) is a 400, not an empty (absent) filter; blanks are absent.
    let p = params(
        &[("device", "\u{85}"), ("username", " \t")],
        &["device", "username"],
    )
    .unwrap();
    assert!(p.text("device").is_err());
    assert!(p.text("username").is_err());
    let p = params(&[("device", "  ")], &["device"]).unwrap();
    assert_eq!(p.text("device").unwrap(), None);
    // ... also repeated: only the accepted names must be unique.
    params(&[("_", "1"), ("_", "2"), ("minutes", "5")], &["minutes"]).unwrap();
    let e = params(&[("minutes", "5"), ("minutes", "6")], &["minutes"]).unwrap_err();
    assert!(e.message.contains("more than once"), "{}", e.message);

    let p = params(
        &[
            ("minutes", "181"),
            ("limit", "abc"),
            ("days", "0"),
            ("t", "NaN"),
        ],
        &["minutes", "limit", "days", "t"],
    )
    .unwrap();
    let e = p.int("minutes", 30, 1, 180).unwrap_err();
    assert_eq!(e.message, "minutes must be from 1 to 180, got 181");
    let e = p.int("limit", 20, 1, 100).unwrap_err();
    assert!(
        e.message.contains("must be an integer") && e.message.contains("abc"),
        "{}",
        e.message
    );
    assert!(p.int("days", 7, 1, 90).is_err());
    assert!(p.positive_number("t", 50.0, 100_000.0).is_err());
    for bad in ["0", "-1", "inf", "100001", "", "1e400"] {
        let p = params(&[("threshold", bad)], &["threshold"]).unwrap();
        assert!(
            p.positive_number("threshold", 50.0, 100_000.0).is_err(),
            "{bad}"
        );
    }
    let p = params(&[("threshold", "0.5")], &["threshold"]).unwrap();
    assert_eq!(
        p.positive_number("threshold", 50.0, 100_000.0).unwrap(),
        0.5
    );
    let p = params(&[("sort_by", "rx")], &["sort_by"]).unwrap();
    assert!(p
        .choice("sort_by", &["total", "download", "upload"], "total")
        .is_err());

    let long = "x".repeat(MAX_TEXT_CHARS + 1);
    let p = params(
        &[("username", long.as_str()), ("device", "  ")],
        &["username", "device"],
    )
    .unwrap();
    assert!(p.text("username").is_err());
    assert_eq!(p.text("device").unwrap(), None);
}

#[test]
fn times_and_units_format_like_the_middleware() {
    assert_eq!(iso_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
    assert_eq!(
        iso_ms(1_763_877_123_456).as_deref(),
        Some("2025-11-23T05:52:03.456Z")
    );
    assert_eq!(
        plain_datetime_s(1_715_500_931).as_deref(),
        Some("2024-05-12 08:02:11")
    );
    assert_eq!(date_ms(1_715_500_931_000).as_deref(), Some("2024-05-12"));
    assert_eq!(iso_ms(i64::MAX), None);
    assert_eq!(plain_datetime_s(i64::MAX), None);
    assert_eq!(routeros_uptime(0), "0s");
    assert_eq!(
        routeros_uptime(2 * 604_800 + 3 * 86_400 + 4 * 3600 + 15 * 60),
        "2w3d4h15m"
    );
    assert_eq!(routeros_uptime(61), "1m1s");
    assert_eq!(mib(1_048_576 * 3 / 2), 1.5);
    assert_eq!(mbps(12_345_678.0), 12.346);
    assert_eq!(kbps_to_mbps(Some(866_700)), Some(866.7));
    assert_eq!(kbps_to_mbps(Some(1_250)), Some(1.3));
    assert_eq!(kbps_to_mbps(None), None);
}

#[test]
fn windows_split_at_the_next_hour() {
    let h = 3_600_000;
    // 10:20 .. 12:30: raw 10:20..11:00, rollups from 11:00.
    assert_eq!(
        split_window(10 * h + h / 3, 12 * h + h / 2),
        (11 * h, 11 * h)
    );
    // Inside one hour: all raw, up to now.
    assert_eq!(
        split_window(12 * h + 60_000, 12 * h + 120_000),
        (12 * h + 120_001, 13 * h)
    );
    // Starting on the hour: no raw part.
    assert_eq!(split_window(12 * h, 12 * h + 120_000), (12 * h, 12 * h));
}

fn row(ts_ms: i64, connected_s: i64, packets: i64, retries: i64, failed: i64) -> StationRow {
    StationRow {
        ts_ms,
        connected_s: Some(connected_s),
        tx_packets: Some(packets),
        tx_retries: Some(retries),
        tx_failed: Some(failed),
        ..Default::default()
    }
}

#[test]
fn window_counters_follow_one_association() {
    let first = row(0, 1000, 100, 10, 1);
    let last = row(600_000, 1600, 300, 30, 4);
    assert_eq!(
        window_counters(Some(&first), &last, 3_600_000),
        Some((200, 20, 3))
    );
    // Re-associated 100 s ago, inside the window: its counters since association count.
    let fresh = row(600_000, 100, 50, 5, 0);
    assert_eq!(
        window_counters(Some(&first), &fresh, 3_600_000),
        Some((50, 5, 0))
    );
    // Associated long before the window but missing from the first snapshot: unknown.
    assert_eq!(window_counters(None, &last, 60_000), None);
    // Counters went down within the same association: unknown.
    let odd = row(600_000, 1600, 90, 30, 4);
    assert_eq!(window_counters(Some(&first), &odd, 3_600_000), None);
    assert_eq!(window_counters(None, &StationRow::default(), 60_000), None);
}

const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

/// A report with two stations whose counters grow by `k` per report, and a lease for the first.
fn report(seq: u64, ts: i64, k: u64, lease_host: &str) -> Report {
    let sta = |m: u8, mult: u64| Station {
        mac: mac(m),
        interface: "wlan0".into(),
        connected_s: Some(seq * 60 + 10),
        stats: StationLinkStats {
            rx_bytes: Some(seq * k * mult),
            tx_bytes: Some(seq * k * mult * 3),
            tx_packets: Some(seq * 100),
            tx_retries: Some(seq * 10),
            tx_failed: Some(seq),
            ..Default::default()
        },
        ..Default::default()
    };
    Report {
        seq,
        boot_id: [7; 16],
        timestamp_ms: u64::try_from(ts).unwrap(),
        stations: vec![sta(1, 1), sta(2, 2)],
        leases: vec![DhcpLease {
            expires: None,
            mac: Some(mac(1)),
            ip: "192.168.1.10".parse().unwrap(),
            hostname: Some(lease_host.into()),
            client_id: None,
            iaid: None,
        }],
        ..Default::default()
    }
}

/// A store with routers `a` and `b` reporting every minute for three hours; returns the read
/// connection and the router ids.
fn filled() -> (tempfile::TempDir, Connection, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routerstats.db");
    let mut store = Store::open(&path).unwrap();
    let ids: Vec<i64> = ["a", "b"].map(|name| enroll(&mut store, name)).to_vec();
    for seq in 1..=180u64 {
        let ts = T0 + i64::try_from(seq).unwrap() * 60_000;
        let ra = report(seq, ts, 1000, "Laptop-A");
        let rb = report(seq, ts + 7000, 5000, "laptop-a-wired");
        let batch = [
            IngestItem {
                router_id: ids[0],
                received_at_ms: ts,
                report: &ra,
            },
            IngestItem {
                router_id: ids[1],
                received_at_ms: ts,
                report: &rb,
            },
        ];
        store.ingest(&batch).unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    (dir, conn, ids[0], ids[1])
}

/// Enrolls a router called `name`; returns its id.
fn enroll(store: &mut Store, name: &str) -> i64 {
    let tok = NewToken {
        id: format!("tok-{name}"),
        secret_hash: [1; 32],
        name: name.into(),
        site: None,
        created_at: 0,
        expires_at: i64::MAX / 2,
        max_uses: 1,
    };
    store.insert_token(&tok).unwrap();
    store
        .enroll(&tok.id, &[1; 32], None, name, 1, |_| {
            Ok(CertInfo {
                fingerprint: format!("fp-{name}"),
                not_after: i64::MAX / 2,
            })
        })
        .unwrap()
        .id
}

#[test]
fn mld_links_airtime_and_station_links_reach_the_api_rows() {
    use routerstats_shared::model::StationLink;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routerstats.db");
    let mut store = Store::open(&path).unwrap();
    let id = enroll(&mut store, "w7");
    let mld = crate::store::testutil::mld_interface();
    let at = |seq: u64| {
        let mut r = report(seq, T0 + i64::try_from(seq).unwrap() * 60_000, 1000, "host");
        r.wireless = vec![mld.clone()];
        for s in &mut r.stations {
            s.interface = "ap-mld0".into();
            s.stats.tx_duration_us = Some(seq * 600_000);
            s.stats.airtime_weight = Some(256);
        }
        r.stations[1].links = (1..=2u8)
            .map(|l| StationLink {
                link_id: l,
                addr: Some(mac(0x10 + l)),
                stats: StationLinkStats {
                    tx_bytes: Some(seq * 100 * u64::from(l)),
                    tx_duration_us: Some(seq * 300_000),
                    ..Default::default()
                },
            })
            .collect();
        r
    };
    for seq in 1..=2 {
        let r = at(seq);
        crate::store::testutil::ingest_one(&mut store, id, 0, &r);
    }
    let c = Connection::open(&path).unwrap();
    let rows = super::devices::stations_at(&c, id, T0 + 120_000).unwrap();
    assert_eq!(rows.len(), 2);
    // 600 ms of transmit airtime in the 60 s interval: 10 per mille.
    assert_eq!(
        (
            rows[0].tx_airtime_us,
            rows[0].airtime_permille,
            rows[0].airtime_weight
        ),
        (Some(600_000), Some(10), Some(256))
    );
    assert!(rows[0].links.is_empty());
    let links = &rows[1].links;
    assert_eq!(links.len(), 2);
    assert_eq!(
        (
            links[1].link_id,
            links[1].addr.clone(),
            links[1].bytes_downloaded,
            links[1].tx_duration_us
        ),
        (2, Some(mac(0x12).to_string()), Some(400), Some(600_000))
    );
    let user = super::devices::active_user(&rows[1], "w7", LeaseInfo::default(), true);
    let json = serde_json::to_value(&user).unwrap();
    assert_eq!(json["links"][0]["link_id"], 1);
    assert_eq!(json["airtime_permille"], 10);
    let wifi = super::devices::wireless_in(&c, (id - 1, id)).unwrap();
    let w = &wifi[&id]["ap-mld0"];
    assert_eq!((w.channel, w.width_mhz), (None, None));
    let widths: Vec<_> = w
        .links
        .iter()
        .map(|l| (l.link_id, l.frequency_mhz, l.width_mhz))
        .collect();
    assert_eq!(
        widths,
        [(1, Some(5180), Some(160)), (2, Some(6135), Some(320))]
    );
    assert_eq!(w.links[1].txpower_dbm, Some(21.5));
}

fn raw_sum(c: &Connection, sql_where: &str) -> (i64, i64) {
    c.query_row(
        &format!("SELECT coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0) FROM station_samples WHERE {sql_where}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn window_totals_equal_raw_sums() {
    let (_dir, c, a, b) = filled();
    let now = T0 + 180 * 60_000 + 7000;
    let m1 = mac(1).to_string();
    for minutes in [5, 30, 61, 95, 180, 600] {
        let start = now - minutes * 60_000;
        let fleet = station_totals(&c, Scope::Fleet, start, now).unwrap();
        let (rx, tx) = raw_sum(&c, &format!("ts_ms >= {start} AND ts_ms <= {now}"));
        assert_eq!(
            fleet.iter().map(|t| t.upload_bytes).sum::<i64>(),
            rx,
            "{minutes} min"
        );
        assert_eq!(
            fleet.iter().map(|t| t.download_bytes).sum::<i64>(),
            tx,
            "{minutes} min"
        );
        assert!(tx > 0);

        let one = station_totals(&c, Scope::Router(b), start, now).unwrap();
        let (rx, tx) = raw_sum(
            &c,
            &format!("router_id = {b} AND ts_ms >= {start} AND ts_ms <= {now}"),
        );
        assert_eq!(
            (
                one.iter().map(|t| t.upload_bytes).sum::<i64>(),
                one.iter().map(|t| t.download_bytes).sum::<i64>()
            ),
            (rx, tx)
        );
        assert!(one.iter().all(|t| t.router_id == b));

        let macs = vec![m1.clone()];
        let by_mac = station_totals(&c, Scope::Macs(&macs, Some(a)), start, now).unwrap();
        let (rx, tx) = raw_sum(
            &c,
            &format!("router_id = {a} AND mac = '{m1}' AND ts_ms >= {start} AND ts_ms <= {now}"),
        );
        assert_eq!(by_mac.len(), 1);
        assert_eq!((by_mac[0].upload_bytes, by_mac[0].download_bytes), (rx, tx));
    }
    // Station 1 on router a: +1000 rx, +3000 tx per minute.
    let macs = vec![m1];
    let t = station_totals(&c, Scope::Macs(&macs, Some(a)), now - 10 * 60_000, now).unwrap();
    assert_eq!((t[0].upload_bytes, t[0].download_bytes), (10_000, 30_000));
    assert!(
        station_totals(&c, Scope::Fleet, now + 60_000, now + 120_000)
            .unwrap()
            .is_empty()
    );
}

/// A store filled through the real ingest: two routers reporting `rich_report`s (two
/// stations, one OpenVPN client whose session changes after 600 reports) every 90 s for 27
/// hours from `T0 + 1234 ms`; router 2 pauses for a stretch.
fn rich_filled() -> (tempfile::TempDir, Connection) {
    use crate::store::testutil::{enrolled_router, rich_report};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routerstats.db");
    let mut store = Store::open(&path).unwrap();
    let ids = [
        enrolled_router(&mut store, "r1").id,
        enrolled_router(&mut store, "r2").id,
    ];
    let mut reports = Vec::new();
    for seq in 1..=1080u64 {
        let ts = u64::try_from(T0 + 1234).unwrap() + seq * 90_000;
        for (i, id) in ids.iter().enumerate() {
            if i == 1 && (200..260).contains(&seq) {
                continue;
            }
            let mut r = rich_report(
                [i as u8 + 1; 16],
                seq,
                ts + i as u64 * 7_000,
                seq * (i as u64 + 3) + seq * seq % 97,
            );
            if seq > 600 {
                for c in r.openvpn.iter_mut().flat_map(|o| o.clients.iter_mut()) {
                    c.connected_since = Some(1_700_100_000);
                }
            }
            reports.push((*id, r));
        }
    }
    for chunk in reports.chunks(40) {
        let batch: Vec<IngestItem<'_>> = chunk
            .iter()
            .map(|(id, r)| IngestItem {
                router_id: *id,
                received_at_ms: 0,
                report: r,
            })
            .collect();
        store.ingest(&batch).unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    (dir, conn)
}

/// The fleet rate series from `fleet_totals_1s` and the VPN usage from `ovpn_rollup_1h` and
/// `ovpn_rollup_1d` (raw samples for the first partial hour) equal the straightforward
/// queries over the raw samples.
#[test]
fn fleet_series_and_vpn_usage_equal_raw_queries() {
    let (_dir, c) = rich_filled();
    let old_series = "SELECT (s.ts_ms - ?1) / ?2 AS b, sum(coalesce(s.tx_delta, 0)), sum(coalesce(s.rx_delta, 0)), \
         count(s.tx_delta) + count(s.rx_delta) FROM station_samples s WHERE s.ts_ms >= ?1 AND s.ts_ms <= ?3 GROUP BY b";
    let old_usage = "SELECT router_id, common_name, ts_ms / 86400000, connected_since, instance, real_address, \
         coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0), max(ts_ms) FROM ovpn_client_samples \
         WHERE ts_ms >= ?1 AND ts_ms <= ?2 GROUP BY 1, 2, 3, 4, 5, 6";
    type Key = (i64, String, i64, Option<i64>, String, String);
    let mut sessions = BTreeSet::new();
    let mut checked = 0;
    for offset_min in [0, 1, 59, 60, 61, 137, 600, 1000, 1619] {
        let now = T0 + 1234 + 90_000 + offset_min * 60_000 + 500;
        // Rate series of 1 to 60 minutes (`fleet_totals_1s` counts whole seconds: the route
        // starts the fleet-wide window on a whole second).
        for minutes in [1, 7, 30, 60] {
            let start = crate::store::bucket_start(now - minutes * 60_000, 1000);
            let step = (minutes * 1000).max(60_000);
            let mut new: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
            for (b, tx, rx, n) in bandwidth::fleet_raw_series(&c, start, now, step).unwrap() {
                let e = new.entry(b).or_default();
                *e = (e.0 + tx, e.1 + rx, e.2 + n);
            }
            let mut st = c.prepare(old_series).unwrap();
            let old: BTreeMap<i64, (i64, i64, i64)> = st
                .query_map(rusqlite::params![start, step, now], |r| {
                    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(new, old, "{minutes} min at +{offset_min} min");
            checked += old.len();
        }
    }
    // VPN usage over 1, 2 and 3 days (the data spans two UTC midnights: hourly buckets up to
    // the first whole day, `ovpn_rollup_1d` from it on), summed per session and day, at times
    // after the last sample (the current hour's and day's buckets hold every sample of that
    // hour and day, so the raw query has to see all of them too).
    let last: i64 = c
        .query_row("SELECT max(ts_ms) FROM ovpn_client_samples", [], |r| {
            r.get(0)
        })
        .unwrap();
    for offset_min in [0, 1, 17, 59, 60, 61, 89] {
        let now = last + offset_min * 60_000 + 300;
        for days in [1, 2, 3] {
            let start = now - days * 86_400_000;
            let mut new: BTreeMap<Key, (i64, i64, i64)> = BTreeMap::new();
            for (router, cn, day, since, inst, real, rx, tx, last) in
                vpn::usage_rows(&c, start, now, (0, i64::MAX)).unwrap()
            {
                let e = new.entry((router, cn, day, since, inst, real)).or_default();
                e.0 += rx;
                e.1 += tx;
                e.2 = e.2.max(last);
            }
            let mut st = c.prepare(old_usage).unwrap();
            let old: BTreeMap<Key, (i64, i64, i64)> = st
                .query_map(rusqlite::params![start, now], |r| {
                    Ok((
                        (
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ),
                        (r.get(6)?, r.get(7)?, r.get(8)?),
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(new, old, "{days} d at +{offset_min} min");
            sessions.extend(old.keys().map(|k| k.3));
        }
    }
    assert!(checked > 100, "{checked}");
    assert_eq!(sessions.len(), 2, "two OpenVPN sessions: {sessions:?}");
    // Fleet station totals (raw edge, 5-minute and hourly rollups) equal station_totals'.
    for offset_min in [0, 1, 4, 17, 59, 60, 61, 89] {
        let now = last + offset_min * 60_000 + 300;
        for minutes in [1, 3, 7, 30, 61, 95, 180] {
            let start = now - minutes * 60_000;
            let key = |t: &StationTotal| (t.router_id, t.mac.clone());
            let mut new = bandwidth::fleet_station_totals(&c, start, now).unwrap();
            new.sort_by_key(key);
            let mut old = station_totals(&c, Scope::Fleet, start, now).unwrap();
            old.sort_by_key(key);
            assert_eq!(new, old, "{minutes} min at +{offset_min} min");
            assert!(minutes <= offset_min + 1 || old.iter().any(|t| t.download_bytes > 0));
        }
    }
    // Fleet peak hours from `station_fleet_1h` equal the grouped `station_rollup_1h`.
    let old_peak =
        "SELECT bucket_start_ms, sum(tx_bytes), sum(rx_bytes), max(max_tx_bps), max(max_rx_bps), \
         count(*) FROM station_rollup_1h WHERE bucket_start_ms >= ?1 AND bucket_start_ms <= ?2 \
         GROUP BY bucket_start_ms ORDER BY bucket_start_ms";
    for hours in [1, 5, 24] {
        let first = last - last.rem_euclid(3_600_000) - (hours - 1) * 3_600_000;
        let mut st = c.prepare(old_peak).unwrap();
        let old: Vec<bandwidth::PeakRow> = st
            .query_map(rusqlite::params![first, last], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut new = bandwidth::peak_fleet_rows(&c, first, last);
        new.sort_unstable();
        assert_eq!(new, old, "{hours} h");
        assert_eq!(old.len(), usize::try_from(hours).unwrap());
        assert!(old.iter().all(|h| h.1 > 0 && h.5 >= 2), "{old:?}");
    }
}

/// The alert candidates found through `station_peak_5m` (index seeks per 5-minute bucket, then
/// the devices' stations) are exactly the stations of the MACs that `fleet_station_totals`
/// shows at or over the threshold, with the same totals on every device they were seen on
/// (the two routers share their stations' MACs), for windows of 1 to 180 minutes at several
/// times and thresholds from below the lowest to above the highest peak of the window.
#[test]
fn alert_candidates_equal_the_fleet_stations_over_the_threshold() {
    let (_dir, c) = rich_filled();
    let last: i64 = c
        .query_row("SELECT max(ts_ms) FROM station_samples", [], |r| r.get(0))
        .unwrap();
    let key = |t: &StationTotal| (t.router_id, t.mac.clone());
    let (mut compared, mut empty, mut roaming) = (0, 0, 0);
    for offset_min in [-600, -61, -7, 0, 1, 4, 59, 61, 179] {
        let now = last + offset_min * 60_000 + 300;
        for minutes in [1, 3, 7, 30, 61, 95, 180] {
            let start = now - minutes * 60_000;
            let fleet = bandwidth::fleet_station_totals(&c, start, now).unwrap();
            let mut peaks: Vec<i64> = fleet
                .iter()
                .flat_map(|t| [t.max_download_bps, t.max_upload_bps])
                .flatten()
                .collect();
            peaks.sort_unstable();
            let mut thresholds = vec![1];
            if let (Some(lo), Some(hi)) = (peaks.first(), peaks.last()) {
                thresholds.extend([*lo, peaks[peaks.len() / 2], *hi, hi + 1]);
            }
            for min_bps in thresholds {
                let reached = |t: &StationTotal| {
                    t.max_download_bps.is_some_and(|p| p >= min_bps)
                        || t.max_upload_bps.is_some_and(|p| p >= min_bps)
                };
                let macs: BTreeSet<&str> = fleet
                    .iter()
                    .filter(|&t| reached(t))
                    .map(|t| t.mac.as_str())
                    .collect();
                let mut old: Vec<StationTotal> = fleet
                    .iter()
                    .filter(|t| macs.contains(t.mac.as_str()))
                    .cloned()
                    .collect();
                old.sort_by_key(key);
                let mut new = bandwidth::alert_station_totals(&c, start, now, min_bps)
                    .unwrap()
                    .expect("two routers are under the limit");
                new.sort_by_key(key);
                assert_eq!(
                    new, old,
                    "{minutes} min at {offset_min:+} min, {min_bps} bit/s"
                );
                compared += old.len();
                empty += usize::from(old.is_empty());
                roaming += usize::from(old.iter().any(|t| t.router_id != old[0].router_id));
            }
        }
    }
    assert!(
        compared > 200 && empty > 20 && roaming > 20,
        "{compared} {empty} {roaming}"
    );
}

/// The alert candidates and the fleet totals read the same figures once the older hours are
/// sealed (raw samples and 5-minute buckets in blocks) as they did from rows.
#[test]
fn alert_candidates_are_the_same_after_sealing() {
    let (dir, c) = rich_filled();
    let last: i64 = c
        .query_row("SELECT max(ts_ms) FROM station_samples", [], |r| r.get(0))
        .unwrap();
    let key = |t: &StationTotal| (t.router_id, t.mac.clone());
    let sorted = |mut v: Vec<StationTotal>| {
        v.sort_by_key(key);
        v
    };
    let mut cases = Vec::new();
    for offset_min in [-600, -301, -125, -61] {
        let now = last + offset_min * 60_000 + 300;
        for minutes in [7, 61, 180] {
            let start = now - minutes * 60_000;
            let fleet = sorted(bandwidth::fleet_station_totals(&c, start, now).unwrap());
            let min_bps = fleet
                .iter()
                .filter_map(|t| t.max_download_bps)
                .max()
                .unwrap_or(1);
            let alert = bandwidth::alert_station_totals(&c, start, now, min_bps)
                .unwrap()
                .map(sorted);
            cases.push((start, now, min_bps, fleet, alert));
        }
    }
    let mut store = Store::open(&dir.path().join("routerstats.db")).unwrap();
    let sealed = store.seal_all_before(last - 2 * 3_600_000).unwrap();
    assert!(sealed.groups > 0, "{sealed:?}");
    let blocks: i64 = c
        .query_row("SELECT count(*) FROM raw_blocks WHERE tbl = 7", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(blocks > 0, "5-minute station buckets were sealed");
    for (start, now, min_bps, fleet, alert) in cases {
        assert!(!fleet.is_empty());
        assert_eq!(
            sorted(bandwidth::fleet_station_totals(&c, start, now).unwrap()),
            fleet,
            "fleet {start}..{now}"
        );
        let after = bandwidth::alert_station_totals(&c, start, now, min_bps)
            .unwrap()
            .map(sorted);
        assert!(after.as_ref().is_some_and(|v| !v.is_empty()));
        assert_eq!(after, alert, "alerts {start}..{now} at {min_bps}");
    }
}

#[test]
fn users_resolve_by_hostname_or_mac() {
    let (_dir, c, a, b) = filled();
    let m1 = mac(1).to_string();
    let u = resolve_user(&c, "LAPTOP-a").unwrap();
    assert_eq!(
        (u.username.as_str(), u.macs.clone(), u.ip.as_deref()),
        ("Laptop-A", vec![m1.clone()], Some("192.168.1.10"))
    );
    let u = resolve_user(&c, &m1.to_uppercase()).unwrap();
    assert_eq!(u.macs, vec![m1.clone()]);
    let u = resolve_user(&c, &mac(2).to_string()).unwrap();
    assert_eq!((u.username, u.hostname), (mac(2).to_string(), None));
    for unknown in ["nobody", "02:00:00:00:00:09"] {
        let e = resolve_user(&c, unknown).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND, "{unknown}");
        assert!(e.message.contains("unknown user"), "{}", e.message);
    }
    // The lease of the router the station is on wins.
    assert_eq!(
        lease_for_mac(&c, &m1, Some(a)).unwrap().hostname.as_deref(),
        Some("Laptop-A")
    );
    assert_eq!(
        lease_for_mac(&c, &m1, Some(b)).unwrap().hostname.as_deref(),
        Some("laptop-a-wired")
    );
    assert_eq!(
        lease_for_mac(&c, &mac(2).to_string(), Some(a)).unwrap(),
        LeaseInfo::default()
    );
    // The lease book of a page's stations answers like it (a MAC without a lease: the default).
    let m2 = mac(2).to_string();
    let page = LeaseBook::for_page(&c, (i64::MIN, i64::MAX)).unwrap();
    assert!(page.by_mac.contains_key(&m1), "{:?}", page.by_mac.keys());
    // So does the book of a user's MACs (user stats: one read for all their sessions).
    let user = LeaseBook::for_macs(&c, &[m1.clone(), m2.clone()]).unwrap();
    for (m, r) in [(&m1, Some(a)), (&m1, Some(b)), (&m1, None), (&m2, Some(a))] {
        let want = lease_for_mac(&c, m, r).unwrap();
        assert_eq!(page.get(m, r), want, "{m} {r:?}");
        assert_eq!(user.get(m, r), want, "{m} {r:?}");
    }
    let e = router_by_name(&c, "nope").unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (StatusCode::NOT_FOUND, "unknown device \"nope\"")
    );
    assert_eq!(router_by_name(&c, "A").unwrap().id, a);
}

/// Tables whose full scan would grow with history.
const BIG_TABLES: [&str; 13] = [
    "station_samples",
    "station_peak_5m",
    "station_link_samples",
    "ovpn_client_samples",
    "interface_samples",
    "wg_peer_samples",
    "station_rollup_1h",
    "ovpn_rollup_1h",
    "station_rollup_5m",
    "interface_rollup_1h",
    "interface_rollup_5m",
    "reports",
    "leases",
];

#[test]
fn no_query_scans_a_growing_table() {
    let (_dir, c, _, _) = filled();
    let mut all = queries();
    all.extend(devices::queries());
    all.extend(vpn::queries());
    all.extend(bandwidth::queries());
    let mut failures = Vec::new();
    for (name, sql) in &all {
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = st.parameter_count();
        let args: Vec<rusqlite::types::Value> =
            (0..n).map(|_| rusqlite::types::Value::Integer(1)).collect();
        let details: Vec<String> = st
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if std::env::var_os("ISP_PRINT_PLANS").is_some() {
            eprintln!("{name}:\n  {}", details.join("\n  "));
        }
        for d in &details {
            let scanned = d
                .strip_prefix("SCAN ")
                .map(|rest| rest.split_whitespace().next().unwrap_or(""));
            // `<table>_all` (rows + sealed blocks) always shows as a virtual table "scan"; its
            // index string names the constraints it uses: `r` router, `k` key (store::sealed).
            let keyed_vtab = d
                .split_once("VIRTUAL TABLE INDEX ")
                .and_then(|(_, i)| i.split_once(':'))
                .is_some_and(|(_, codes)| codes.contains('r') || codes.contains('k'));
            if let Some(t) = scanned.filter(|_| !keyed_vtab) {
                // A scan of an alias is a scan of the table behind it; `routers` is small.
                let table = match t {
                    "s" => "station_samples",
                    "l" => "station_link_samples",
                    "o" => "ovpn_client_samples",
                    "u" => "station_rollup_1h",
                    "p" => "reports",
                    other => other,
                };
                if BIG_TABLES.contains(&table) {
                    failures.push(format!("{name}: {d}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
}

/// `EXPLAIN QUERY PLAN` details of `sql`, every parameter bound to 1.
fn plan_details(c: &Connection, sql: &str) -> Vec<String> {
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let args: Vec<rusqlite::types::Value> = (0..st.parameter_count())
        .map(|_| rusqlite::types::Value::Integer(1))
        .collect();
    st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A user's or a VPN client's current sessions are found through the MAC / common-name index
/// (its own samples), not by visiting every router's newest report: at 10,000 routers that was
/// 200,000 station rows (20,000 OpenVPN rows) per request. Routers are looked up by key only.
#[test]
fn per_user_and_per_client_lookups_do_not_visit_every_router() {
    let (_dir, c, _, _) = filled();
    let mut all = devices::queries();
    all.extend(vpn::queries());
    all.extend(queries());
    for (name, index) in [
        // Only the routers whose hours since the oldest newest report of a connected router
        // list the MAC (schema 20: `raw_block_keys`, no index by MAC on the row table), each
        // read at its newest report by primary key: not every report a station of many
        // routers (or of one router for hours) was in.
        (
            "user_now",
            "SEARCH raw_block_keys USING COVERING INDEX raw_block_keys_key (tbl=? AND key=? AND hour_ms>?)",
        ),
        (
            "user_now",
            "SEARCH s USING PRIMARY KEY (router_id=? AND ts_ms=?)",
        ),
        (
            "client_connected",
            "SEARCH o USING INDEX ovpn_client_samples_cn (common_name=?",
        ),
        (
            "router_by_id",
            "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)",
        ),
    ] {
        let (_, sql) = all.iter().find(|(n, _)| *n == name).unwrap();
        let plan = plan_details(&c, sql);
        assert!(
            plan.iter().any(|d| d.starts_with(index)),
            "{name}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN")),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn openapi_lists_every_route() {
    let doc = <Doc as utoipa::OpenApi>::openapi();
    let json = serde_json::to_value(&doc).unwrap();
    let paths = json["paths"].as_object().unwrap();
    // 29 documented routes (8 of them the OpenVPN server and client routes), the 6 deprecated
    // aliases and the 9 hotspot, PPPoE and bridge writes (uci_writes).
    assert_eq!(paths.len(), 44, "{:?}", paths.keys().collect::<Vec<_>>());
    for p in [
        "/api/mikrotik/devices",
        "/api/mikrotik/devices/status",
        "/api/mikrotik/devices/{name}/currentstatus",
        "/api/mikrotik/devices/{name}/config",
        "/api/mikrotik/users/{name}/stats",
        "/api/mikrotik/users/active",
        "/api/mikrotik/interfaces",
        "/api/mikrotik/health",
        "/api/vpn/statistics/usage",
        "/api/vpn/server/logs",
        "/api/vpn/clients/{name}/disconnect",
        "/api/bandwidth/monitoring/quality",
        "/api/mikrotik/hotspot/authorize",
        "/api/mikrotik/network/setup",
    ] {
        assert!(paths.contains_key(p), "{p}");
        assert!(paths[p]["get"].get("deprecated").is_none(), "{p}");
    }
    // Each alias: the same operation, deprecated, under its own operation id.
    for (old, new) in ALIASES {
        let a = &paths[*old]["get"];
        let n = &paths[*new]["get"];
        assert_eq!(a["deprecated"], true, "{old}");
        assert_eq!(
            a["operationId"].as_str().unwrap(),
            format!("{}_deprecated_alias", n["operationId"].as_str().unwrap())
        );
        assert_eq!(a["responses"], n["responses"], "{old}");
        assert_eq!(a["parameters"], n["parameters"], "{old}");
    }
    if std::env::var_os("ISP_PRINT_OPENAPI").is_some() {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&json["paths"]["/api/mikrotik/devices"])
                .unwrap_or_default()
        );
        eprintln!(
            "{:?}",
            json["components"]["schemas"]
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>())
        );
    }
    let mut ids: Vec<&str> = paths
        .values()
        .filter_map(|p| p["get"]["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 32, "{ids:?}");
    assert!(ids.iter().all(|i| i.starts_with("isp_")), "{ids:?}");
    assert!(ids.contains(&"isp_users_name_stats"), "{ids:?}");
    let schemas = json["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas.contains_key("isp.ErrorEnvelope"),
        "{:?}",
        schemas.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn errors_use_the_envelope() {
    use axum::response::IntoResponse;
    let resp = IspError::from(crate::api::ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing API key",
    ))
    .into_response();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["success"], false);
    assert_eq!(v["error"], "missing API key");
    assert!(
        v["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{v}"
    );
    let resp = IspError::not_found("unknown device \"x\"").into_response();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().get("www-authenticate").is_none());
}

/// The OpenAPI document declares the bounds, enums and patterns the group's parameters enforce,
/// and every route the statuses the group answers (405, 429 with `Retry-After`).
#[test]
fn openapi_declares_bounds_enums_patterns_and_statuses() {
    let (doc, _) = crate::api::openapi::build();
    let json = serde_json::to_value(&doc).unwrap();
    let param = |path: &str, name: &str| -> serde_json::Value {
        json["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{path} {name}"))
    };
    let schema = |path: &str, name: &str| param(path, name)["schema"].clone();
    let minutes = schema("/api/bandwidth/usage/real-time", "minutes");
    assert_eq!(
        (minutes["minimum"].as_i64(), minutes["maximum"].as_i64()),
        (Some(1), Some(1440)),
        "{minutes}"
    );
    let m = schema("/api/bandwidth/monitoring/top-users", "minutes");
    assert_eq!(m["maximum"].as_i64(), Some(180), "{m}");
    assert_eq!(
        schema("/api/bandwidth/usage/peak", "hours")["maximum"].as_i64(),
        Some(168)
    );
    assert_eq!(
        schema("/api/vpn/statistics/usage", "days")["maximum"].as_i64(),
        Some(90)
    );
    assert_eq!(
        schema("/api/bandwidth/monitoring/top-users", "limit")["maximum"].as_i64(),
        Some(100)
    );
    let t = schema("/api/bandwidth/monitoring/alerts", "threshold");
    assert_eq!(
        (t["exclusiveMinimum"].as_f64(), t["maximum"].as_f64()),
        (Some(0.0), Some(100000.0)),
        "{t}"
    );
    // sort_by: an enum, the very values the parser accepts.
    let sort = schema("/api/bandwidth/monitoring/top-users", "sort_by");
    let reference = sort["$ref"]
        .as_str()
        .or_else(|| sort["oneOf"][0]["$ref"].as_str())
        .or_else(|| sort["allOf"][0]["$ref"].as_str())
        .unwrap_or_else(|| panic!("{sort}"));
    let name = reference.rsplit('/').next().unwrap();
    let values: Vec<&str> = json["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(values, super::bandwidth::SORT_BY);
    // Text and names: lengths and a pattern without control characters.
    for (path, name) in [
        ("/api/mikrotik/devices/{name}/currentstatus", "name"),
        ("/api/mikrotik/users/{name}/stats", "name"),
        ("/api/vpn/clients/{name}/details", "name"),
        ("/api/mikrotik/interfaces", "device"),
        ("/api/bandwidth/usage/real-time", "username"),
        ("/api/mikrotik/devices/status", "identities"),
    ] {
        let s = schema(path, name);
        assert!(s["maxLength"].as_u64().is_some(), "{path} {name}: {s}");
        let pattern = s["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} {name}: {s}"));
        assert!(
            pattern.contains("\\u0000-\\u001F"),
            "{path} {name}: {pattern}"
        );
    }
    assert_eq!(
        param("/api/mikrotik/devices/status", "identities")["required"],
        true
    );
    // Every operation on the group's paths (documented here or by another group) declares 405
    // and 429 in the group's shapes; 429 with its header.
    let mut seen = 0;
    for (path, item) in json["paths"].as_object().unwrap() {
        if !is_group_path(path) {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            seen += 1;
            let r = &op["responses"];
            if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
                assert!(
                    r["400"].is_object(),
                    "{method} {path}: parameters but no 400"
                );
            }
            let body = |code: &str| {
                r[code]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .map(String::from)
            };
            assert_eq!(
                body("405").as_deref(),
                Some("#/components/schemas/isp.ErrorEnvelope"),
                "{method} {path}"
            );
            assert_eq!(
                body("429").as_deref(),
                Some("#/components/schemas/isp.RateLimitEnvelope"),
                "{method} {path}"
            );
            assert!(
                r["429"]["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
            for (code, answer) in r.as_object().unwrap() {
                if code.starts_with('4') {
                    assert!(
                        answer["content"]["application/json"].is_object(),
                        "{method} {path} {code}: a body"
                    );
                }
            }
        }
    }
    // 21 documented GETs, 6 aliases, and the POSTs of backups and device status.
    assert!(seen >= 30, "{seen}");
    let rl = &json["components"]["schemas"]["isp.RateLimitEnvelope"];
    assert_eq!(rl["properties"]["retry_after"]["type"], "string", "{rl}");
}
