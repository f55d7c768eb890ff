//! The API over a fleet fed by real agents: the harness works and authentication is enforced.

use routerstats_tests::harness::Fleet;

#[test]
fn fleet_fixture_serves_health_and_enforces_keys() {
    let mut fleet = Fleet::start(&[("ap-one", "home"), ("ap-two", "office")], 3);
    fleet.stop_agents();
    let (status, body) = fleet.get_as("/health", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(fleet.collector.stored_seqs("ap-one").len() >= 3);
    assert!(fleet.collector.stored_seqs("ap-two").len() >= 3);
    let (s, body) = fleet.get("/no/such/route");
    assert_eq!(s, 404, "{body}");
}
