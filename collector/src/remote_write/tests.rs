//! Tests of the remote-write output, against Debian's real `prometheus`
//! (`--web.enable-remote-write-receiver`) on loopback; `scripts/test` installs it.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::wire::{Label, Sample};
use super::*;
use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};

#[test]
fn config_from_the_file_table() {
    let v: toml::Value = toml::from_str(
        "url = \"http://127.0.0.1:9090/api/v1/write\"\ninterval = \"15s\"\nexclude = [\"routerstats_station_\"]\n\
         batch_samples = 500\nmax_pending_samples = 1000\nretry_max = 60",
    )
    .unwrap();
    let c = RemoteWriteConfig::from_value(v).unwrap();
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!(c.retry_max, Duration::from_secs(60));
    assert_eq!((c.batch_samples, c.max_pending_samples), (500, 1000));
    assert!(c.sends("routerstats_router_up"));
    assert!(!c.sends("routerstats_station_signal_dbm"));
    let only = RemoteWriteConfig {
        families: vec![
            "routerstats_router_".into(),
            "routerstats_wireguard_".into(),
        ],
        ..RemoteWriteConfig::default()
    };
    assert!(only.sends("routerstats_wireguard_peer_receive_bytes_total"));
    assert!(!only.sends("routerstats_interface_receive_bytes_total"));
    for bad in [
        "url = \"ftp://x/y\"",
        "url = \"not a url\"",
        "interval = \"0s\"",
        "interval = \"soon\"",
        "batch_samples = 0",
        "batch_samples = 10\nmax_pending_samples = 5",
        "retry_base = 10\nretry_max = 1",
        "uri = \"http://x\"",
    ] {
        let v: toml::Value = toml::from_str(bad).unwrap();
        assert!(RemoteWriteConfig::from_value(v).is_err(), "{bad}");
    }
}

fn series(n: usize) -> Vec<TimeSeries> {
    (0..n)
        .map(|i| TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: format!("m{i}"),
            }],
            samples: vec![Sample {
                value: i as f64,
                timestamp: 1,
            }],
        })
        .collect()
}

#[test]
fn queue_batches_and_drops_the_oldest_when_full() {
    let mut q = Queue::default();
    q.push(series(5), 2, 6);
    assert_eq!(q.samples(), 5);
    assert_eq!(q.front().unwrap().len(), 2);
    q.push(series(4), 2, 6);
    // 9 samples in batches 2,2,1,2,2: the two oldest go to get to 6 or fewer.
    assert_eq!(q.samples(), 5);
    assert_eq!(q.dropped, 4);
    assert_eq!(q.front().unwrap()[0].labels[0].value, "m4");
    q.done();
    q.done();
    q.done();
    assert_eq!((q.samples(), q.front()), (0, None));
    q.done();
    assert_eq!(q.samples(), 0);
}

/// A real Prometheus with the remote-write receiver on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's `prometheus` (apt-get install prometheus; scripts/test installs it)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if p.get("/-/ready").is_some_and(|(s, _)| s == 200) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("prometheus did not become ready on port {port}");
    }

    fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let r = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
                .await
                .ok()?;
            let s = r.status().as_u16();
            Some((s, r.text().await.ok()?))
        })
    }

    /// Every `routerstats_*` and `wireguard_*` (the exporter names) series at `time_s` as (name, sorted labels) -> value.
    fn query_all(&self, time_s: f64) -> BTreeMap<(String, Vec<(String, String)>), f64> {
        let (status, body) = self
            .get(&format!(
                "/api/v1/query?query=%7B__name__%3D~%22(routerstats%7Cwireguard)_.%2B%22%7D&time={time_s}"
            ))
            .expect("query");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut out = BTreeMap::new();
        for r in v["data"]["result"].as_array().unwrap() {
            let mut labels: Vec<(String, String)> = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            labels.sort();
            let name = labels
                .iter()
                .find(|(k, _)| k == "__name__")
                .unwrap()
                .1
                .clone();
            labels.retain(|(k, _)| k != "__name__");
            let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            out.insert((name, labels), value);
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exposition's series as (name, sorted non-empty labels) -> value.
fn exposition(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    wire::parse_exposition(text)
        .unwrap()
        .into_iter()
        .map(|p| {
            let mut l: Vec<(String, String)> = p
                .labels
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            l.sort();
            ((p.name, l), p.value)
        })
        .collect()
}

/// Pushed through the running output into a real Prometheus, every series PromQL returns has
/// the value `/metrics` serves, and none is missing; an excluded family is not sent; a batch the
/// receiver refuses (too old) is `Refused`, a closed port is `Retry`.
#[test]
fn prometheus_answers_what_the_api_serves() {
    let prom = Prometheus::start();
    let (_dir, mut store) = open_temp();
    let now = crate::clock::now_ms();
    for (i, name) in ["ap-one", "ap-two"].into_iter().enumerate() {
        let id = enrolled_router(&mut store, name).id;
        for seq in 1..=2u64 {
            let ts = now - 60_000 + seq as i64 * 30_000;
            let r = rich_report([i as u8 + 1; 16], seq, ts as u64, seq * 1000 + i as u64);
            ingest_one(&mut store, id, ts, &r);
        }
    }
    let path = store.path().to_path_buf();
    drop(store);

    let cfg = RemoteWriteConfig {
        url: Some(prom.write_url()),
        interval: Duration::from_millis(300),
        exclude: vec!["routerstats_station_".into()],
        batch_samples: 7,
        ..RemoteWriteConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt
        .block_on(async { RemoteWrite::spawn(cfg.clone(), &path) })
        .expect("url set");
    // What the route serves for the same database (it does not change while the output runs).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let served =
        exposition(&crate::api::prometheus::render_fleet(&conn, crate::clock::now_ms()).unwrap());
    let expected: BTreeMap<_, _> = served
        .iter()
        .filter(|((name, _), _)| cfg.sends(name))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    // The output's snapshots land in Prometheus, a batch of 7 at a time: wait until a whole
    // snapshot is there (a loaded machine may be between batches at any moment).
    let t = Instant::now();
    let got = loop {
        let q = prom.query_all(crate::clock::now_ms() as f64 / 1000.0);
        if q.len() >= expected.len() {
            break q;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "nothing arrived: {q:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let pending = out.queue.lock().unwrap().samples();
    rt.block_on(out.shutdown(Duration::from_secs(2)));
    assert!(pending <= cfg.max_pending_samples);

    assert!(
        expected.len() > 20 && expected.len() < served.len(),
        "{}",
        expected.len()
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in &expected {
        assert_eq!(got[k], *v, "{k:?}");
    }
    assert!(got
        .keys()
        .any(|(n, _)| n == "routerstats_interface_receive_bytes_total"));
    assert!(!got
        .keys()
        .any(|(n, _)| n.starts_with("routerstats_station_")));

    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut old = series(1);
        old[0].samples[0].timestamp = 1_000;
        match send(&client, &cfg, &prom.write_url(), old).await {
            SendOutcome::Refused(why) => assert!(why.starts_with("400"), "{why}"),
            other => panic!("{other:?}"),
        }
        let closed = format!("http://127.0.0.1:{}/api/v1/write", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        assert!(matches!(
            send(&client, &cfg, &closed, series(1)).await,
            SendOutcome::Retry(_)
        ));
    });
}

/// The output's snapshot (the `/metrics` text) reads only `routers`, `reports` and the newest
/// raw samples, which every commit writes in full: it needs no gate for the rollup sums the
/// writer holds in memory (`rollup_hold`). With sums held and after they are written, every
/// family gives the same text (and the rollup tables did change in between).
#[test]
fn the_snapshot_does_not_depend_on_held_rollup_sums() {
    let now = 1_700_000_000_000i64;
    let (dir, mut store, router) = crate::store::testutil::store_holding_rollups(5, now);
    let path = dir.path().join("routerstats.db");
    ingest_one(
        &mut store,
        router,
        now - 30_000,
        &rich_report([5; 16], 2, (now - 30_000) as u64, 3),
    );
    assert!(store.rollups_pending());
    let read = rusqlite::Connection::open(&path).unwrap();
    let rollups = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT (SELECT total(samples) FROM interface_rollup_1h) + (SELECT total(samples) FROM ovpn_rollup_1h) \
             + (SELECT total(samples) FROM station_rollup_1h) + (SELECT total(samples) FROM wg_rollup_1h)",
            [],
            |r| r.get::<_, f64>(0),
        )
        .unwrap() as i64
    };
    let cfg = RemoteWriteConfig::default();
    let held = (super::exposition(&read, now, &cfg).unwrap(), rollups(&read));
    store.flush_rollups().unwrap();
    assert!(!store.rollups_pending());
    let written = (super::exposition(&read, now, &cfg).unwrap(), rollups(&read));
    assert!(
        written.1 > held.1,
        "sums were held: {} then {}",
        held.1,
        written.1
    );
    assert!(held.0.contains("routerstats_openvpn_"), "{}", held.0);
    assert_eq!(held.0, written.0);
}
