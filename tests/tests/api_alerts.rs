//! `GET /api/alerts` and the silences API over a real collector whose rules fire from what real
//! agents reported: a router stops reporting (offline fires), filters and paging, silences
//! (admin only, validated, marking the firing alert), and the router reporting again (resolved).

use std::time::Duration;

use routerstats_tests::harness::{wait_for, Fleet, FAST_ALERTS};
use serde_json::Value;

fn alerts(fleet: &Fleet, query: &str) -> Value {
    let (s, body) = fleet.get(&format!("/api/alerts{query}"));
    assert_eq!(s, 200, "{body}");
    body
}

#[test]
fn offline_alert_history_filters_and_silences() {
    let mut fleet = Fleet::start_with_config(
        &[("edge-a", "north"), ("edge-b", "south")],
        2,
        Some(FAST_ALERTS),
    );
    let (s, body) = fleet.get_as("/api/alerts", None);
    assert_eq!(s, 401, "{body}");
    fleet.stop_agents();
    let firing = wait_for(Duration::from_secs(30), "two offline alerts", || {
        let b = alerts(&fleet, "?state=firing&rule=offline");
        (b["total"] == 2).then_some(b)
    });
    let a = &firing["alerts"][0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["severity"], "critical");
    assert!(a["values"]["silent_s"].as_i64().unwrap() >= 2, "{a}");
    assert!(a["ended_ms"].is_null());

    // Filters and paging.
    let b = alerts(&fleet, "?router=EDGE-A");
    assert_eq!(b["total"], 1);
    assert_eq!(b["alerts"][0]["router"], "edge-a");
    assert_eq!(b["alerts"][0]["site"], "north");
    assert_eq!(
        alerts(&fleet, "?site=south")["alerts"][0]["router"],
        "edge-b"
    );
    let page = alerts(&fleet, "?limit=1&offset=1");
    assert_eq!(
        (
            page["total"].as_i64(),
            page["alerts"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    assert_eq!(page["limit"], 1);
    assert_eq!(
        alerts(&fleet, "?since=4102444800")["total"],
        0,
        "2100-01-01: nothing yet"
    );
    assert_eq!(alerts(&fleet, "?since=2000-01-01T00:00:00Z")["total"], 2);
    for bad in [
        "?state=burning",
        "?rule=nope",
        "?since=yesterday",
        "?limit=x",
    ] {
        let (s, body) = fleet.get(&format!("/api/alerts{bad}"));
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }

    // Silences: admin only, validated.
    let new = r#"{"router": "edge-a", "comment": "maintenance", "duration": "2h"}"#;
    let read_key = fleet.read_key.clone();
    let admin_key = fleet.admin_key.clone();
    let (s, _) = fleet.send_as("POST", "/api/alerts/silences", Some(&read_key), Some(new));
    assert_eq!(s, 403);
    for bad in [
        r#"{"comment": "everything"}"#,
        r#"{"rule": "nope", "comment": "x"}"#,
        r#"{"router": "a", "comment": ""}"#,
        r#"{"router": "a", "comment": "x", "duration": "-1h"}"#,
        r#"{"router": "a", "comment": "x", "expires_at": 1}"#,
        r#"{"router": "a", "comment": "x", "colour": "red"}"#,
        "not json",
    ] {
        let (s, body) = fleet.send_as("POST", "/api/alerts/silences", Some(&admin_key), Some(bad));
        assert_eq!(s, 400, "{bad}: {body}");
    }
    let (s, silence) = fleet.send_as("POST", "/api/alerts/silences", Some(&admin_key), Some(new));
    assert_eq!(s, 201, "{silence}");
    assert_eq!(silence["router"], "edge-a");
    assert_eq!(silence["active"], true);
    let ms = silence["expires_ms"].as_i64().unwrap() - silence["starts_ms"].as_i64().unwrap();
    assert_eq!(ms, 2 * 3600 * 1000);
    // The firing alert it matches is marked silenced; the other is not.
    let b = alerts(&fleet, "?state=firing");
    for a in b["alerts"].as_array().unwrap() {
        assert_eq!(a["silenced"], a["router"] == "edge-a", "{a}");
    }
    let (s, list) = fleet.get("/api/alerts/silences");
    assert_eq!(s, 200);
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
    let id = silence["id"].as_i64().unwrap();
    let (s, _) = fleet.send_as(
        "DELETE",
        &format!("/api/alerts/silences/{id}"),
        Some(&read_key),
        None,
    );
    assert_eq!(s, 403);
    let (s, _) = fleet.send_as(
        "DELETE",
        &format!("/api/alerts/silences/{id}"),
        Some(&admin_key),
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = fleet.send_as(
        "DELETE",
        &format!("/api/alerts/silences/{id}"),
        Some(&admin_key),
        None,
    );
    assert_eq!(s, 404);
    let (s, _) = fleet.send_as("DELETE", "/api/alerts/silences/abc", Some(&admin_key), None);
    assert_eq!(s, 400);
    assert_eq!(
        fleet.get("/api/alerts/silences").1["silences"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        fleet.get("/api/alerts/silences?expired=true").1["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Back online: the offline alerts resolve with an end time.
    fleet.restart_agents();
    let b = wait_for(Duration::from_secs(30), "offline alerts resolved", || {
        let b = alerts(&fleet, "?state=resolved&rule=offline");
        (b["total"] == 2).then_some(b)
    });
    for a in b["alerts"].as_array().unwrap() {
        assert!(
            a["ended_ms"].as_i64().unwrap() >= a["started_ms"].as_i64().unwrap(),
            "{a}"
        );
    }
    assert_eq!(alerts(&fleet, "?state=firing")["total"], 0);
}
