//! The agent binary on a fake router root: `snapshot`, `parse`, and its exit codes.

use std::process::Command;

use routerstats_tests::{bin_path, fake_router::FakeRouter};
use serde_json::Value;

fn agent() -> Command {
    Command::new(bin_path("routerstats-agent"))
}

#[test]
fn snapshot_json_on_a_fake_root_is_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let router = FakeRouter::create(dir.path(), "ap-kitchen").unwrap();
    let out = agent()
        .args(router.agent_args())
        .args(["--config", "/dev/null", "snapshot", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(r["router"]["hostname"], "ap-kitchen");
    assert_eq!(r["router"]["model"], "D-Link DIR-878 A1");
    assert_eq!(r["router"]["release"]["release"], "23.05.3");
    assert_eq!(r["router"]["kernel"], "5.15.150");
    let sys = &r["system"];
    assert_eq!(sys["mem_total_kb"], 122560);
    assert!(sys["uptime_s"].as_u64().unwrap() > 0);
    assert_eq!(sys["disks"][0]["mount"], "/overlay");

    // Every source read fine: no error, no missing tool.
    for s in r["sources"].as_array().unwrap() {
        assert_eq!(s["state"], "Ok", "source {s}");
    }
    // Wireless: three interfaces from `iw dev`; stations read for both APs and the mesh point.
    assert_eq!(r["wireless"].as_array().unwrap().len(), 3);
    let stations = r["stations"].as_array().unwrap();
    assert_eq!(stations.len(), 6);
    for iface in ["wlan0", "wlan1", "mesh0"] {
        assert!(
            stations.iter().any(|s| s["interface"] == iface),
            "no station on {iface}"
        );
    }
    assert_eq!(r["leases"].as_array().unwrap().len(), 10);
    let peers: usize = r["wireguard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["peers"].as_array().unwrap().len())
        .sum();
    assert_eq!(peers, 6);
    // Peer names come from /etc/config/network descriptions.
    assert!(r["wireguard"][0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"].is_string()));
    let ovpn = r["openvpn"].as_array().unwrap();
    assert_eq!(ovpn.len(), 2);
    // Interfaces are classified, a long unpadded pppoe name included.
    let ifs = r["interfaces"].as_array().unwrap();
    let kind_of = |n: &str| {
        ifs.iter()
            .find(|i| i["name"] == n)
            .map(|i| i["kind"].clone())
    };
    assert_eq!(kind_of("pppoe-wan"), Some(Value::from("Pppoe")));
    assert_eq!(kind_of("wlan0"), Some(Value::from("Wifi")));
    assert_eq!(kind_of("wg0"), Some(Value::from("Wireguard")));
    assert_eq!(kind_of("br-lan"), Some(Value::from("Bridge")));
    assert!(
        ifs.iter().find(|i| i["name"] == "pppoe-wan").unwrap()["rx_bytes"]
            .as_u64()
            .unwrap()
            > u32::MAX as u64
    );
}

#[test]
fn snapshot_never_contains_a_wireguard_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let router = FakeRouter::create(dir.path(), "ap").unwrap();
    let dump = std::fs::read_to_string(dir.path().join("data/wg/dump.txt")).unwrap();
    // Interface lines have 5 fields; the second is the private key.
    let private_keys: Vec<String> = dump
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() == 5)
        .map(|f| f[1].to_string())
        .collect();
    assert!(!private_keys.is_empty(), "fixture has interface lines");
    let json = agent()
        .args(router.agent_args())
        .args(["--config", "/dev/null", "snapshot", "--json"])
        .output()
        .unwrap();
    let text = agent()
        .args(router.agent_args())
        .args(["--config", "/dev/null", "snapshot"])
        .output()
        .unwrap();
    assert!(json.status.success() && text.status.success());
    for key in &private_keys {
        assert!(!String::from_utf8_lossy(&json.stdout).contains(key.as_str()));
        assert!(!String::from_utf8_lossy(&text.stdout).contains(key.as_str()));
    }
}

#[test]
fn missing_tools_and_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent()
        .args(["--config", "/dev/null", "--proc-root"])
        .arg(dir.path())
        .args(["--etc-root"])
        .arg(dir.path())
        .args([
            "--iw",
            "/nonexistent/iw",
            "--wg",
            "/nonexistent/wg",
            "--lease-file",
            "/nonexistent/leases",
            "snapshot",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources = r["sources"].as_array().unwrap();
    let state_of = |kind: &str| {
        sources
            .iter()
            .find(|s| s["kind"] == kind)
            .map(|s| s["state"].clone())
            .unwrap()
    };
    assert_eq!(
        state_of("IwDev"),
        serde_json::json!({"ToolMissing": "/nonexistent/iw"})
    );
    assert_eq!(
        state_of("WireGuard"),
        serde_json::json!({"ToolMissing": "/nonexistent/wg"})
    );
    assert!(state_of("DhcpLeases")["Error"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/leases"));
    assert!(state_of("NetDev")["Error"].is_string());
}

#[test]
fn parse_prints_json_and_exit_codes_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("leases");
    std::fs::write(
        &leases,
        "0 00:11:22:33:44:55 192.168.1.10 phone *\nnot a lease line\n",
    )
    .unwrap();
    let out = agent()
        .args(["parse", "leases"])
        .arg(&leases)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value"][0]["hostname"], "phone");
    assert_eq!(v["value"][0]["expires"], Value::Null);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);

    // Unknown kind: usage error, before the file is looked at.
    assert_eq!(
        agent()
            .args(["parse", "bogus", "/nonexistent"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    // Missing file: failure with the path in the message.
    let out = agent()
        .args(["parse", "leases", "/nonexistent/file"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"));
    // Nothing usable: failure.
    std::fs::write(&leases, "garbage\n").unwrap();
    assert_eq!(
        agent()
            .args(["parse", "leases"])
            .arg(&leases)
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    // Bad flag value: usage error naming the setting.
    let out = agent()
        .args(["--interval", "soon", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interval"));
    // Help lists every parse kind.
    let help = agent().args(["parse", "--help"]).output().unwrap();
    assert!(help.status.success());
    for kind in [
        "iw-dev",
        "station-dump",
        "leases",
        "wg-dump",
        "openvpn",
        "net-dev",
        "meminfo",
    ] {
        assert!(String::from_utf8_lossy(&help.stdout).contains(kind));
    }
}

#[test]
fn every_shared_fixture_parses_through_the_cli_without_a_crash() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let mut checked = 0;
    for (dir, kind) in [
        ("wg", "wg-dump"),
        ("openvpn", "openvpn"),
        ("dhcp", "leases"),
        ("iw", "station-dump"),
    ] {
        for entry in std::fs::read_dir(base.join(dir)).expect("../shared/fixtures present") {
            let path = entry.unwrap().path();
            let out = agent().args(["parse", kind]).arg(&path).output().unwrap();
            // 0 (parsed) or 1 (nothing usable, with a message) — never a crash signal or 101 panic.
            assert!(
                matches!(out.status.code(), Some(0) | Some(1)),
                "{}: {:?}",
                path.display(),
                out.status
            );
            if out.status.code() == Some(0) {
                let _: Value = serde_json::from_slice(&out.stdout).unwrap();
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} fixtures");
}
