//! Benchmark of the collector's HTTP API on a generated fleet.
//!
//! Generates what the store would hold for `--routers` routers with 20 wireless clients each
//! after 7 days of 30-second reports: raw reports and samples for the last `--raw-hours`,
//! 5-minute and 1-hour rollups for the full 7 days, current leases / wireless interfaces /
//! WireGuard interfaces (`wg0`) / source status / WAN addresses, and with every raw report the
//! agent's active probes in its default shape (its default gateways, IPv4 and IPv6 over
//! `pppoe-wan`, 3 echo requests each; see [`probe_gateways`]). The rows are written directly with rusqlite, in big transactions, into a
//! database created (and migrated) by `Store::open`. Then the real server is started in-process
//! (`server::serve`) and every GET route is requested sequentially over one keep-alive HTTP/1.1
//! connection; p50/p99/max latency per route is printed.
//!
//! Usage: `routerstats-apibench [--routers N] [--raw-hours H] [--days D] [--requests R]
//! [--dir PATH] [--keep] [--reuse] [--cache-max-age SECS] [--only ROUTE,ROUTE] [--seal]`
//!
//! `--reuse` serves an existing database in `--dir` instead of generating one, and keeps `--dir`
//! at the end (like `--keep`) so the database can be reused again. The "first"
//! column is the warm-up request: for the cached fleet-wide routes it is the uncached (cold)
//! computation; `--cache-max-age 0` disables the response cache so every request is uncached.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use routerstats_apibench::client::Client;
use routerstats_collector::config::Config;
use routerstats_collector::pki::tokens::{create_api_key, Role};
// The golden test (`mod golden`, `use super::*`) uses these too.
#[cfg(test)]
use routerstats_apibench::client::pct_encode;
use routerstats_apibench::routes::{route_mix, RouteIds};
use routerstats_collector::store::Store;
use rusqlite::{params, Connection};
#[cfg(test)]
use std::net::{SocketAddr, TcpStream};

const STEP_MS: i64 = 30_000;
const STATIONS: usize = 20;
const WG_PEERS: usize = 3;
const OVPN_CLIENTS: usize = 2;
const SITES: usize = 50;
/// (name, kind, mean rx bytes/s, mean tx bytes/s)
const IFACES: &[(&str, &str, i64, i64)] = &[
    ("pppoe-wan", "pppoe", 400_000, 60_000),
    ("eth0", "ethernet", 420_000, 70_000),
    ("br-lan", "bridge", 60_000, 380_000),
    ("wlan0", "wifi", 30_000, 250_000),
    ("wlan1", "wifi", 20_000, 120_000),
];
const TARGET_MS: f64 = 50.0;

#[cfg(test)]
mod golden;

struct Opts {
    routers: usize,
    raw_hours: f64,
    days: i64,
    requests: usize,
    dir: PathBuf,
    keep: bool,
    reuse: bool,
    /// `api_cache_max_age` of the served collector (None: the default).
    cache_max_age: Option<Duration>,
    /// Only routes equal to one of these (all when empty).
    only: Vec<String>,
    seal: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        routers: 1000,
        raw_hours: 2.0,
        days: 7,
        requests: 30,
        dir: std::env::temp_dir().join(format!("routerstats-apibench-{}", std::process::id())),
        keep: false,
        reuse: false,
        cache_max_age: None,
        only: Vec::new(),
        seal: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--routers" => o.routers = val().parse().expect("--routers"),
            "--raw-hours" => o.raw_hours = val().parse().expect("--raw-hours"),
            "--days" => o.days = val().parse().expect("--days"),
            "--requests" => o.requests = val().parse().expect("--requests"),
            "--dir" => o.dir = PathBuf::from(val()),
            "--keep" => o.keep = true,
            "--seal" => o.seal = true,
            "--reuse" => o.reuse = true,
            "--only" => o.only = val().split(',').map(str::to_string).collect(),
            "--cache-max-age" => {
                o.cache_max_age = Some(Duration::from_secs(
                    val().parse().expect("--cache-max-age (seconds)"),
                ))
            }
            "-h" | "--help" => {
                println!(
                    "routerstats-apibench [--routers 1000] [--raw-hours 2] [--days 7] [--requests 30] [--dir PATH] [--keep] [--reuse] [--cache-max-age SECS] [--only ROUTE,ROUTE] [--seal]\n\
                     --keep: leave --dir in place at the end\n\
                     --reuse: serve the database already in --dir instead of generating one (generated when there is none; the fleet size is the database's); implies --keep\n\
                     --seal: before measuring, seal every raw hour outside the hot window into blocks (what the collector's writer does a few router-hours at a time; prints the time it took)"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn router_name(r: usize) -> String {
    format!("ap-{r:04}")
}
fn site_name(r: usize) -> String {
    format!("site-{:02}", r % SITES)
}
fn station_mac(r: usize, s: usize) -> String {
    format!(
        "02:{:02x}:{:02x}:00:00:{:02x}",
        (r >> 8) & 0xff,
        r & 0xff,
        s
    )
}
fn station_host(r: usize, s: usize) -> String {
    format!("host-{r:04}-{s:02}")
}
fn wg_key(r: usize, p: usize) -> String {
    // 32 bytes base64 = 43 chars + '='; include '+' and '/' to exercise percent-encoding.
    let body = format!("{r:04}{p:02}PeerKey+/abcdefghijklmnopqrstuvwxyzABCDEFG");
    // 43 base64 characters, the last one with its two low bits zero ('A'), then '='.
    format!("{}A=", &body[..42])
}
/// Router `r`'s `wg0` public key (each router its own, like a real fleet).
fn wg_server_key(r: usize) -> String {
    let body = format!("{r:04}ServerKey+/abcdefghijklmnopqrstuvwxyzABCDEFGH");
    format!("{}A=", &body[..42])
}
fn wg_name(r: usize, p: usize) -> String {
    format!("peer-{r:04}-{p}")
}
fn ovpn_cn(r: usize, c: usize) -> String {
    format!("client-{r:04}-{c}")
}

/// Per-router counters carried across generated samples.
struct Gen {
    rng: Rng,
    /// The probe samples' own stream (see `generate`).
    probe_rng: Rng,
}

/// The targets the agent probes by default (`probe_gateway` on, no `probe_target`): the
/// router's default gateways, here an IPv4 and an IPv6 (link-local) next hop over the PPPoE
/// link, each `(target, role, name)` as `probe_samples` stores them.
fn probe_gateways(r: usize) -> [(String, &'static str, &'static str); 2] {
    [
        (
            format!("100.{}.{}.1", 64 + (r / 256) % 64, r % 256),
            "gateway",
            "pppoe-wan",
        ),
        ("fe80::1".to_string(), "gateway", "pppoe-wan"),
    ]
}

/// The router's WAN addresses (`wan_addresses`: device, address with prefix length).
fn wan_addrs(r: usize) -> [(&'static str, String); 2] {
    [
        (
            "pppoe-wan",
            format!("198.18.{}.{}/32", (r / 250) % 256, r % 250 + 1),
        ),
        (
            "pppoe-wan",
            format!(
                "{}/64",
                std::net::Ipv6Addr::new(0x2001, 0xdb8, r as u16, 0, 0, 0, 0, 1)
            ),
        ),
    ]
}

/// Echo requests per probed target per report (the agent's default `probe_count`).
const PROBE_COUNT: i64 = 3;

fn generate(store: &Store, o: &Opts, now: i64) -> rusqlite::Result<()> {
    let conn = store.connection();
    // Bulk load: no fsync, a 1 GiB page cache, no foreign-key lookup per row (the generated
    // rows reference generated routers), and the secondary indexes built once at the end.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY; \
         PRAGMA foreign_keys = OFF;",
    )?;
    let indexes = drop_indexes(conn)?;
    // No WAL during the load (each page is written once, not to the WAL and again at the
    // checkpoint); back to WAL at the end. Needs this to be the only connection: when it is not,
    // the load simply runs in WAL mode.
    let mode: String = conn.query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))?;
    if mode != "off" {
        eprintln!("  journal_mode stays {mode} during the load");
    }
    let mut g = Gen {
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        probe_rng: Rng(0xD1B5_4A32_D192_ED03),
    };
    let raw_steps = ((o.raw_hours * 3_600_000.0) / STEP_MS as f64).round() as i64;
    // The newest report of every router is a few seconds old (router r reports at offset r*30/N s).
    let last_ts = |r: usize| now - 2_000 - (r as i64 * STEP_MS) / o.routers as i64;
    let first_raw = |r: usize| last_ts(r) - (raw_steps - 1) * STEP_MS;
    let start_ms = now - o.days * 86_400_000;

    // Routers and current state.
    let t = Instant::now();
    conn.execute_batch("BEGIN")?;
    {
        let mut ins = conn.prepare(
            "INSERT INTO routers (id, name, site, hostname, model, board, release, revision, target, kernel, \
             agent_version, arch, cert_fingerprint, cert_not_after, enrolled_at, last_seen_ms, uptime_s, \
             last_boot_id, last_seq, last_report_ms) \
             VALUES (?1, ?2, ?3, ?4, 'GL.iNet GL-MT6000', 'glinet,gl-mt6000', '24.10.0', 'r28427-6df0e3d02a', \
             'mediatek/filogic', '6.6.73', '0.1.0', 'aarch64_cortex-a53', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?8)",
        )?;
        let mut wifi = conn.prepare(
            "INSERT INTO wireless_interfaces (router_id, name, phy, ifindex, addr, type, ssid, channel, freq_mhz, \
             width_mhz, center1_mhz, txpower_dbm, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'AP', 'HomeNet', ?6, ?7, \
             ?8, ?9, 20.0, ?10)",
        )?;
        let mut lease = conn.prepare(
            "INSERT INTO leases (router_id, ip, mac, hostname, client_id, iaid, expires, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, ?6)",
        )?;
        let mut src = conn.prepare(
            "INSERT INTO source_status (router_id, kind, name, state, skipped, detail, updated_ms) \
             VALUES (?1, ?2, ?3, 'ok', NULL, NULL, ?4)",
        )?;
        let mut wgif = conn.prepare(
            "INSERT INTO wg_interfaces (router_id, name, public_key, listen_port, fwmark, peers, updated_ms) \
             VALUES (?1, 'wg0', ?2, 51820, NULL, ?3, ?4)",
        )?;
        let mut wan = conn.prepare(
            "INSERT INTO wan_addresses (router_id, device, addr, updated_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for r in 0..o.routers {
            let id = r as i64 + 1;
            let last = last_ts(r);
            let steps = raw_steps;
            ins.execute(params![
                id,
                router_name(r),
                site_name(r),
                format!("OpenWrt-{r:04}"),
                format!("{:064x}", r),
                now / 1000 + 90 * 86_400,
                start_ms / 1000 - 86_400,
                last,
                o.days * 86_400 + 3_600,
                vec![r as u8; 16],
                steps,
            ])?;
            for (i, (name, ch, freq, width, c1)) in
                [("wlan0", 36, 5180, 80, 5210), ("wlan1", 6, 2437, 20, 2437)]
                    .iter()
                    .enumerate()
            {
                wifi.execute(params![
                    id,
                    name,
                    i as i64,
                    10 + i as i64,
                    format!(
                        "94:83:c4:{:02x}:{:02x}:{:02x}",
                        (r >> 8) & 0xff,
                        r & 0xff,
                        i
                    ),
                    ch,
                    freq,
                    width,
                    c1,
                    last
                ])?;
            }
            for s in 0..STATIONS {
                lease.execute(params![
                    id,
                    format!("192.168.1.{}", 100 + s),
                    station_mac(r, s),
                    station_host(r, s),
                    now / 1000 + 43_200,
                    last
                ])?;
            }
            for (kind, name) in [
                ("interfaces", "proc"),
                ("wireless", "iw"),
                ("leases", "dnsmasq"),
                ("wireguard", "wg"),
                ("openvpn", "server"),
                ("system", "proc"),
            ] {
                src.execute(params![id, kind, name, last])?;
            }
            wgif.execute(params![id, wg_server_key(r), WG_PEERS as i64, last])?;
            for (device, addr) in wan_addrs(r) {
                wan.execute(params![id, device, addr, first_raw(r)])?;
            }
        }
    }
    conn.execute_batch("COMMIT")?;
    eprintln!(
        "  routers + current state: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Raw reports and samples, one transaction per ~10 minutes of reports.
    let t = Instant::now();
    let mut rows: u64 = 0;
    let chunk = 20;
    let mut step = 0;
    let mut report_id: i64 = 0;
    while step < raw_steps {
        conn.execute_batch("BEGIN")?;
        {
            let mut rep = conn.prepare_cached(
                "INSERT INTO reports (id, router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, uptime_s, \
                 load1, load5, load15, cpu_permille, mem_total_kb, mem_available_kb, mem_available_derived, \
                 disk_mount, disk_used_bytes, disk_total_bytes, interface_count, station_count, lease_count, \
                 wg_peer_count, ovpn_client_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, \
                 1048576, ?12, 0, '/overlay', ?13, 104857600, ?14, ?15, ?16, ?17, ?18)",
            )?;
            let mut ifs = conn.prepare_cached(
                "INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, \
                 rx_drop, tx_bytes, tx_packets, tx_errs, tx_drop, rx_delta, tx_delta, rx_bps, tx_bps) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?8, 0, 0, ?9, ?10, ?11, ?12)",
            )?;
            let mut sta = conn.prepare_cached(
                "INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, signal_dbm, signal_avg_dbm, \
                 rx_bytes, tx_bytes, rx_packets, tx_packets, rx_delta, tx_delta, rx_bps, tx_bps, tx_retries, \
                 tx_failed, inactive_ms, connected_s, tx_bitrate_kbps, rx_bitrate_kbps, expected_throughput_kbps) \
                 VALUES (?1, ?2, ?3, ?4, 'HomeNet', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 3, 0, 40, ?15, \
                 866700, 780000, 500000)",
            )?;
            let mut wg = conn.prepare_cached(
                "INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, name, endpoint, allowed_ips, \
                 latest_handshake, rx_bytes, tx_bytes, rx_delta, tx_delta, rx_bps, tx_bps) \
                 VALUES (?1, ?2, 'wg0', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut ovpn = conn.prepare_cached(
                "INSERT INTO ovpn_client_samples (router_id, ts_ms, instance, common_name, real_address, \
                 virtual_address, virtual_ipv6, rx_bytes, tx_bytes, rx_delta, tx_delta, rx_bps, tx_bps, \
                 connected_since, username, cipher) VALUES (?1, ?2, 'server', ?3, ?4, ?5, NULL, ?6, ?7, ?8, \
                 ?9, ?10, ?11, ?12, NULL, 'AES-256-GCM')",
            )?;
            let mut probe = conn.prepare_cached(
                "INSERT INTO probe_samples (router_id, ts_ms, target, role, name, sent, received, \
                 rtt_min_us, rtt_avg_us, rtt_max_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let end = (step + chunk).min(raw_steps);
            for k in step..end {
                for r in 0..o.routers {
                    let id = r as i64 + 1;
                    let ts = first_raw(r) + k * STEP_MS;
                    let first = k == 0;
                    let elapsed_s = (ts - start_ms) / 1000;
                    report_id += 1;
                    let seq = k + 1;
                    let load = g.rng.range(5, 150) as f64 / 100.0;
                    rep.execute(params![
                        report_id,
                        id,
                        vec![r as u8; 16],
                        seq,
                        ts,
                        ts + 40,
                        o.days * 86_400 + elapsed_s,
                        load,
                        load * 0.9,
                        load * 0.8,
                        g.rng.range(20, 600),
                        g.rng.range(300_000, 700_000),
                        g.rng.range(10_000_000, 30_000_000),
                        IFACES.len() as i64,
                        STATIONS as i64,
                        STATIONS as i64,
                        WG_PEERS as i64,
                        OVPN_CLIENTS as i64,
                    ])?;
                    for (name, kind, rx_rate, tx_rate) in IFACES {
                        let rxd = g.rng.range(rx_rate * 15, rx_rate * 45);
                        let txd = g.rng.range(tx_rate * 15, tx_rate * 45);
                        let rxc = rx_rate * elapsed_s;
                        let txc = tx_rate * elapsed_s;
                        let (d_rx, d_tx, b_rx, b_tx) = if first {
                            (None, None, None, None)
                        } else {
                            (Some(rxd), Some(txd), Some(rxd * 8 / 30), Some(txd * 8 / 30))
                        };
                        ifs.execute(params![
                            id,
                            ts,
                            name,
                            kind,
                            rxc,
                            rxc / 900,
                            txc,
                            txc / 900,
                            d_rx,
                            d_tx,
                            b_rx,
                            b_tx
                        ])?;
                        rows += 1;
                    }
                    for s in 0..STATIONS {
                        let rxd = g.rng.range(1_000, 1_500_000);
                        let txd = g.rng.range(5_000, 6_000_000);
                        let iface = if s % 3 == 0 { "wlan1" } else { "wlan0" };
                        let (d_rx, d_tx, b_rx, b_tx) = if first {
                            (None, None, None, None)
                        } else {
                            (Some(rxd), Some(txd), Some(rxd * 8 / 30), Some(txd * 8 / 30))
                        };
                        let sig = -40 - g.rng.range(0, 40);
                        sta.execute(params![
                            id,
                            ts,
                            iface,
                            station_mac(r, s),
                            sig,
                            sig + 1,
                            (k + 1) * 700_000,
                            (k + 1) * 3_000_000,
                            (k + 1) * 900,
                            (k + 1) * 2_500,
                            d_rx,
                            d_tx,
                            b_rx,
                            b_tx,
                            3_600 + k * 30
                        ])?;
                        rows += 1;
                    }
                    for p in 0..WG_PEERS {
                        let rxd = g.rng.range(100, 400_000);
                        let txd = g.rng.range(100, 900_000);
                        let (d_rx, d_tx, b_rx, b_tx) = if first {
                            (None, None, None, None)
                        } else {
                            (Some(rxd), Some(txd), Some(rxd * 8 / 30), Some(txd * 8 / 30))
                        };
                        wg.execute(params![
                            id,
                            ts,
                            wg_key(r, p),
                            wg_name(r, p),
                            format!("203.0.113.{}:51820", p + 1),
                            format!("10.{}.{}.{}/32", r / 250, r % 250, p + 2),
                            ts / 1000 - 30,
                            (k + 1) * 200_000,
                            (k + 1) * 450_000,
                            d_rx,
                            d_tx,
                            b_rx,
                            b_tx
                        ])?;
                        rows += 1;
                    }
                    // Probes draw from their own generator, so the other rows are the same
                    // as without them.
                    for (target, role, name) in probe_gateways(r) {
                        let roll = g.probe_rng.range(0, 1000);
                        // Mostly all replies; 1% one lost, 0.2% the link down (none back).
                        let received = match roll {
                            0..=1 => 0,
                            2..=11 => PROBE_COUNT - 1,
                            _ => PROBE_COUNT,
                        };
                        let (min, avg, max) = if received == 0 {
                            (None, None, None)
                        } else {
                            let min = g.probe_rng.range(2_000, 12_000);
                            let avg = min + g.probe_rng.range(0, 3_000);
                            let max = avg + g.probe_rng.range(0, 20_000);
                            (Some(min), Some(avg), Some(max))
                        };
                        probe.execute(params![
                            id,
                            ts,
                            target,
                            role,
                            name,
                            PROBE_COUNT,
                            received,
                            min,
                            avg,
                            max
                        ])?;
                        rows += 1;
                    }
                    for c in 0..OVPN_CLIENTS {
                        let rxd = g.rng.range(100, 300_000);
                        let txd = g.rng.range(100, 700_000);
                        let (d_rx, d_tx, b_rx, b_tx) = if first {
                            (None, None, None, None)
                        } else {
                            (Some(rxd), Some(txd), Some(rxd * 8 / 30), Some(txd * 8 / 30))
                        };
                        ovpn.execute(params![
                            id,
                            ts,
                            ovpn_cn(r, c),
                            format!("198.51.100.{}:{}", c + 1, 40000 + r),
                            format!("10.8.{}.{}", r % 250, c + 2),
                            (k + 1) * 150_000,
                            (k + 1) * 350_000,
                            d_rx,
                            d_tx,
                            b_rx,
                            b_tx,
                            first_raw(r) / 1000
                        ])?;
                        rows += 1;
                    }
                }
            }
            step = end;
        }
        conn.execute_batch("COMMIT")?;
    }
    eprintln!(
        "  raw: {} reports, {rows} sample rows in {:.1} s",
        report_id,
        t.elapsed().as_secs_f64()
    );

    // Rollups over the whole window, in clustered-key order (bucket, router, key).
    let t = Instant::now();
    let mut n5 = 0u64;
    let mut n1 = 0u64;
    let b5_first = (start_ms / 300_000) * 300_000;
    let b5_last = (now / 300_000) * 300_000;
    let mut b = b5_first;
    while b <= b5_last {
        conn.execute_batch("BEGIN")?;
        {
            let mut ins = conn.prepare_cached(
                "INSERT INTO interface_rollup_5m (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, \
                 max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 10)",
            )?;
            let mut sta5 = conn.prepare_cached(
                "INSERT INTO station_rollup_5m (mac, bucket_start_ms, router_id, rx_bytes, tx_bytes, \
                 max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 10)",
            )?;
            // 12 buckets (one hour) per transaction.
            for _ in 0..12 {
                if b > b5_last {
                    break;
                }
                // Station buckets only where there are raw samples (they are kept as long).
                if b + 300_000 > first_raw(0) {
                    for r in 0..o.routers {
                        for s in 0..STATIONS {
                            let rx = g.rng.range(10_000, 15_000_000);
                            let tx = g.rng.range(50_000, 60_000_000);
                            sta5.execute(params![
                                station_mac(r, s),
                                b,
                                r as i64 + 1,
                                rx,
                                tx,
                                rx * 8 / 300 * 3,
                                tx * 8 / 300 * 3
                            ])?;
                            n5 += 1;
                        }
                    }
                }
                for r in 0..o.routers {
                    for (name, _, rx_rate, tx_rate) in IFACES {
                        let rx = g.rng.range(rx_rate * 150, rx_rate * 450);
                        let tx = g.rng.range(tx_rate * 150, tx_rate * 450);
                        ins.execute(params![
                            r as i64 + 1,
                            name,
                            b,
                            rx,
                            tx,
                            rx * 8 / 300 * 2,
                            tx * 8 / 300 * 2
                        ])?;
                        n5 += 1;
                    }
                }
                b += 300_000;
            }
        }
        conn.execute_batch("COMMIT")?;
    }
    eprintln!(
        "  interface_rollup_5m (and station_rollup_5m over the raw window): {n5} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let b1_first = (start_ms / 3_600_000) * 3_600_000;
    let b1_last = (now / 3_600_000) * 3_600_000;
    let mut b = b1_first;
    while b <= b1_last {
        conn.execute_batch("BEGIN")?;
        {
            let mut ifr = conn.prepare_cached(
                "INSERT INTO interface_rollup_1h (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, \
                 max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 120)",
            )?;
            let mut str_ = conn.prepare_cached(
                "INSERT INTO station_rollup_1h (mac, bucket_start_ms, router_id, rx_bytes, tx_bytes, \
                 max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 120)",
            )?;
            let mut wgr = conn.prepare_cached(
                "INSERT INTO wg_rollup_1h (public_key, bucket_start_ms, router_id, iface, rx_bytes, tx_bytes, \
                 max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, 'wg0', ?4, ?5, ?6, ?7, 120)",
            )?;
            let mut ovr = conn.prepare_cached(
                "INSERT INTO ovpn_rollup_1h (bucket_start_ms, router_id, instance, common_name, real_address, \
                 connected_since, rx_bytes, tx_bytes, last_ts_ms, samples) \
                 VALUES (?1, ?2, 'server', ?3, ?4, ?5, ?6, ?7, ?8, 120)",
            )?;
            let mut sfl = conn.prepare_cached(
                "INSERT INTO station_fleet_1h (bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, \
                 samples, stations) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            // (rx, tx, max rx bps, max tx bps) of this hour's station rows.
            let mut fleet = (0i64, 0i64, 0i64, 0i64);
            for r in 0..o.routers {
                let id = r as i64 + 1;
                for c in 0..OVPN_CLIENTS {
                    let rx = g.rng.range(10_000, 36_000_000);
                    let tx = g.rng.range(10_000, 84_000_000);
                    ovr.execute(params![
                        b,
                        id,
                        ovpn_cn(r, c),
                        format!("198.51.100.{}:{}", c + 1, 40000 + r),
                        first_raw(r) / 1000,
                        rx,
                        tx,
                        (b + 3_570_000).min(last_ts(r))
                    ])?;
                    n1 += 1;
                }
                for (name, _, rx_rate, tx_rate) in IFACES {
                    let rx = g.rng.range(rx_rate * 1800, rx_rate * 5400);
                    let tx = g.rng.range(tx_rate * 1800, tx_rate * 5400);
                    ifr.execute(params![
                        id,
                        name,
                        b,
                        rx,
                        tx,
                        rx * 8 / 3600 * 3,
                        tx * 8 / 3600 * 3
                    ])?;
                    n1 += 1;
                }
                for s in 0..STATIONS {
                    let rx = g.rng.range(100_000, 180_000_000);
                    let tx = g.rng.range(500_000, 720_000_000);
                    str_.execute(params![
                        station_mac(r, s),
                        b,
                        id,
                        rx,
                        tx,
                        rx * 8 / 3600 * 3,
                        tx * 8 / 3600 * 3
                    ])?;
                    fleet = (
                        fleet.0 + rx,
                        fleet.1 + tx,
                        fleet.2.max(rx * 8 / 3600 * 3),
                        fleet.3.max(tx * 8 / 3600 * 3),
                    );
                    n1 += 1;
                }
                for p in 0..WG_PEERS {
                    let rx = g.rng.range(10_000, 48_000_000);
                    let tx = g.rng.range(10_000, 108_000_000);
                    wgr.execute(params![
                        wg_key(r, p),
                        b,
                        id,
                        rx,
                        tx,
                        rx * 8 / 3600 * 3,
                        tx * 8 / 3600 * 3
                    ])?;
                    n1 += 1;
                }
            }
            let stations = (o.routers * STATIONS) as i64;
            sfl.execute(params![
                b,
                fleet.0,
                fleet.1,
                fleet.2,
                fleet.3,
                stations * 120,
                stations
            ])?;
            n1 += 1;
            b += 3_600_000;
        }
        conn.execute_batch("COMMIT")?;
    }
    eprintln!(
        "  1-hour rollups (interface, station, wg, ovpn, fleet stations): {n1} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The fleet-wide aggregates of schema version 10 (`ovpn_rollup_1d`), summed from the rollup
    // rows above by the migration's own backfill statements, as ingest keeps them.
    let t = Instant::now();
    conn.execute_batch(routerstats_collector::store::schema::fleet_aggregates_backfill())?;
    eprintln!(
        "  fleet aggregates (ovpn_rollup_1d from ovpn_rollup_1h): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Schema version 12's OpenVPN names per router, from `ovpn_rollup_1d` like its migration.
    let t = Instant::now();
    conn.execute_batch(routerstats_collector::store::vpnstate::backfill())?;
    eprintln!(
        "  OpenVPN client names (ovpn_client_names from ovpn_rollup_1d): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The per-router station peaks of migration 13 (`station_peak_5m`), from the 5-minute
    // station rows above by the migration's own backfill statement, as ingest keeps them.
    let t = Instant::now();
    conn.execute_batch(routerstats_collector::store::schema::station_peaks_backfill())?;
    eprintln!(
        "  station peaks (station_peak_5m from station_rollup_5m): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The per-router probe rollups of schema 17 (`probe_rollup_5m`/`_1h`, complete from the
    // start), summed from the raw probe rows above, as ingest keeps them.
    let t = Instant::now();
    conn.execute_batch(routerstats_collector::store::probe_rollup::backfill())?;
    eprintln!(
        "  probe rollups (probe_rollup_5m/_1h from probe_samples): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The newest report's WireGuard peers (`wg_peers`, schema 15), as ingest keeps them, by the
    // migration's own backfill statement.
    let t = Instant::now();
    conn.execute_batch(routerstats_collector::store::schema::wg_peers_backfill())?;
    // And their newest values (`store::wg_latest`), as ingest keeps them.
    conn.execute_batch(routerstats_collector::store::wg_latest::backfill())?;
    // The (hour, MAC, router) of the station rows, which lookups by MAC go through (schema 20),
    // as the ingest lists them.
    conn.execute_batch(routerstats_collector::store::schema::station_keys_backfill())?;
    eprintln!(
        "  current WireGuard peers (wg_peers and their values from the newest samples): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    // Index builds sort every row: let the sorter spill to temporary files (not memory: the
    // biggest index is GBs at 10,000 routers) and use a helper thread.
    conn.execute_batch("PRAGMA temp_store = FILE; PRAGMA threads = 2;")?;
    for sql in &indexes {
        conn.execute_batch(sql)?;
    }
    eprintln!(
        "  {} secondary indexes built: {:.1} s",
        indexes.len(),
        t.elapsed().as_secs_f64()
    );
    conn.execute(
        "UPDATE routers SET last_report_id = (SELECT max(id) FROM reports WHERE reports.router_id = routers.id)",
        [],
    )?;
    // The rollups above hold every generated report: nothing for the collector to rebuild.
    routerstats_collector::store::mark_rollups_written(conn)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        eprintln!("  warning: journal_mode is {mode}, not wal, after the load");
    }
    let t = Instant::now();
    conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    eprintln!("  ANALYZE + checkpoint: {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Drops every explicitly created index (the schema's `CREATE INDEX` statements, kept in
/// `sqlite_master`) and returns their SQL, so a bulk load writes each table's rows only and the
/// indexes are built once afterwards from sorted data (the same definitions, so the database
/// ends up with the schema `Store::open` made). Inserting in clustered-key order still leaves
/// every secondary index in random order (e.g. `station_rollup_1h_mac` gets 200,000 insertion
/// points per hour at 10,000 routers), which is what made a 10,000-router load slow.
fn drop_indexes(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
    )?;
    let found = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (name, _) in &found {
        conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }
    Ok(found.into_iter().map(|(_, sql)| sql).collect())
}

/// Generation takes minutes and a reused database is older still: moves each router's
/// `last_seen_ms` (only that) to now, staggered like the generated reports, so the fleet is
/// online (heard from within 5 minutes) while the routes are measured. Done before every
/// route's batch. The reports and samples keep their times (`last_report_ms` still names the
/// newest report).
fn refresh_last_seen(conn: &Connection, routers: usize) {
    conn.execute(
        "UPDATE routers SET last_seen_ms = ?1 - 2000 - ((id - 1) * ?2) / ?3",
        params![now_ms(), STEP_MS, routers.max(1) as i64],
    )
    .expect("refresh last_seen_ms");
}

/// A runtime and the real collector served on it from `config`.
fn start_server(
    config: Config,
) -> (
    tokio::runtime::Runtime,
    routerstats_collector::server::ServeHandle,
) {
    let rss_before = rss_kib();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(routerstats_collector::server::serve(config))
        .expect("serve");
    // The monitoring routes read the database until the collector's recent station traffic
    // index is rebuilt (in the background after a start): measure them once it is.
    let t = Instant::now();
    while !handle.recent_rebuilt() && t.elapsed() < Duration::from_secs(900) {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "recent station traffic index rebuilt {:.1} s after the start (CPU time so far {} s, load average {})",
        t.elapsed().as_secs_f64(),
        cpu_seconds().map_or("?".to_string(), |c| format!("{c:.1}")),
        loadavg()
    );
    let (stations, bytes) = handle.recent_memory();
    println!(
        "recent station traffic index: {stations} stations, {:.1} MB on the heap (from its containers' capacities; {} bytes per station); process VmRSS {} -> {} MB over the start and the rebuild (SQLite caches and freed buffers included)",
        bytes as f64 / 1e6,
        bytes / stations.max(1),
        rss_before.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        rss_kib().map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
    );
    (rt, handle)
}

/// This process's resident set (`VmRSS` in `/proc/self/status`), KiB; None elsewhere.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time (user + system, all threads) this process has used so far, seconds, from
/// `/proc/self/stat` (USER_HZ = 100 ticks per second, fixed by the Linux ABI); None elsewhere.
/// Load on a shared machine stretches wall time far more than CPU time.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name
    // (field 3, the state, is index 0).
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The route mix on the generated fleet: ids of the middle router.
fn routes(o: &Opts) -> Vec<String> {
    let r = o.routers / 2;
    route_mix(&RouteIds {
        router: router_name(r),
        router_id: r as i64 + 1,
        site: site_name(r),
        wan_port: "pppoe-wan".to_string(),
        identities: (0..10)
            .map(|i| router_name((r + i * 7) % o.routers))
            .collect(),
        station_host: station_host(r, 3),
        station_mac: station_mac(r, 4),
        wg_key: wg_key(r, 1),
        wg_peer: wg_name(r, 1),
        ovpn_cn: ovpn_cn(r, 0),
    })
}

struct Row {
    route: String,
    status: u16,
    p50: f64,
    p99: f64,
    max: f64,
    first: f64,
    bytes: usize,
    err: String,
}

fn main() {
    let mut o = parse_opts();
    println!(
        "routerstats-apibench: {} routers x {STATIONS} wireless clients, {} days at 30 s, raw samples for the last {} h",
        o.routers, o.days, o.raw_hours
    );
    println!(
        "cpus: {}, load average at start: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        loadavg()
    );
    let now = now_ms();
    let reuse = o.reuse && o.dir.join(routerstats_collector::config::DB_FILE).exists();
    if !reuse {
        let _ = std::fs::remove_dir_all(&o.dir);
    }
    routerstats_collector::server::prepare_data_dir(&o.dir).expect("data dir");
    let mut config = Config {
        data_dir: o.dir.clone(),
        ingest_listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.retention_interval = Duration::from_secs(86_400);
    // This benchmark times the API alone: its reads keep the normal priority (the collector's
    // default lowers them so that ingest goes first), so figures stay comparable across builds.
    config.api_read_nice = 0;
    if let Some(age) = o.cache_max_age {
        config.api_cache_max_age = age;
    }
    println!(
        "API response cache max age: {} s (0: disabled)",
        config.api_cache_max_age.as_secs()
    );
    let db_path = config.db_path();

    // Generate.
    let t = Instant::now();
    let mut store = Store::open(&db_path).expect("open store");
    if reuse {
        println!(
            "reusing {} (generated earlier: its newest reports are as old as that run)",
            db_path.display()
        );
        // The fleet size is the reused database's, whatever --routers says: the route ids
        // (router n/2...) and the staggered last_seen_ms refresh follow it.
        let n: i64 = store
            .connection()
            .query_row("SELECT count(*) FROM routers", [], |r| r.get(0))
            .expect("count routers");
        if n <= 0 {
            eprintln!("{} holds no routers: nothing to reuse", db_path.display());
            std::process::exit(2);
        }
        if n as usize != o.routers {
            println!(
                "reused database has {n} routers (not --routers {}): using {n}",
                o.routers
            );
            o.routers = n as usize;
        }
    } else {
        generate(&store, &o, now).expect("generate");
    }
    if o.seal {
        let t = Instant::now();
        let s = store.seal_all(now_ms()).expect("seal");
        println!(
            "sealed {} router-hours ({} rows into {} blocks, {} left as rows) in {:.1} s (load {})",
            s.groups,
            s.rows,
            s.blocks,
            s.skipped,
            t.elapsed().as_secs_f64(),
            loadavg()
        );
    }
    let mut route_list = routes(&o);
    if !o.only.is_empty() {
        route_list.retain(|r| o.only.contains(r));
        // A path not in the table (another query of a listed route, e.g. a page size) too.
        for r in &o.only {
            if r.starts_with('/') && !route_list.contains(r) {
                route_list.push(r.to_string());
            }
        }
    }
    // serve() uses the default rate limit (20/s, burst 100 per key): one admin key per route keeps
    // each route's batch inside the burst.
    let keys: Vec<String> = route_list
        .iter()
        .enumerate()
        .map(|(i, _)| {
            create_api_key(&store, Role::Admin, &format!("bench-{i}"), now / 1000)
                .expect("api key")
                .key
        })
        .collect();
    refresh_last_seen(store.connection(), o.routers);
    drop(store);
    let gen_s = t.elapsed().as_secs_f64();
    let db_bytes = dir_size(&o.dir);
    println!(
        "generation: {gen_s:.1} s, database {:.0} MiB ({}); CPU time so far {} s, load average {}",
        db_bytes as f64 / 1_048_576.0,
        db_path.display(),
        cpu_seconds().map_or("?".to_string(), |c| format!("{c:.1}")),
        loadavg()
    );
    {
        let c = Connection::open(&db_path).unwrap();
        for t in [
            "reports",
            "interface_samples",
            "station_samples",
            "wg_peer_samples",
            "ovpn_client_samples",
            "interface_rollup_5m",
            "interface_rollup_1h",
            "station_rollup_1h",
            "wg_rollup_1h",
            "ovpn_rollup_1h",
            "station_fleet_1h",
            "ovpn_rollup_1d",
            "station_rollup_5m",
            "leases",
            "wg_interfaces",
            "wg_peers",
        ] {
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap();
            println!("  {t:<22} {n:>10} rows");
        }
    }
    assert!(
        o.requests >= 1 && o.requests <= 90,
        "--requests must be in 1..=90 (rate-limit burst)"
    );

    let (rt, handle) = start_server(config);
    let addr = handle.api_addr();
    println!(
        "collector API on {addr}; {} requests per route, sequential, one keep-alive connection",
        o.requests
    );
    println!("load average before requests: {}", loadavg());

    let mut client = Client::connect(addr).expect("connect");
    let mut rows = Vec::new();
    let seen = Connection::open(&db_path).expect("open database");
    let _ = seen.busy_timeout(Duration::from_secs(10));
    for (route, key) in route_list.iter().zip(&keys) {
        refresh_last_seen(&seen, o.routers);
        let mut times = Vec::new();
        let mut status = 0;
        let mut bytes = 0;
        let mut err = String::new();
        // One warm-up request (statement cache, page cache), not counted in p50/p99/max but
        // reported as "first": with the response cache it is the uncached (cold) computation.
        let t = Instant::now();
        let _ = client.get(route, key);
        let first = t.elapsed().as_secs_f64() * 1000.0;
        // CPU time of the whole process (server and client) over the timed requests: on a
        // loaded machine it stretches far less than wall time.
        let cpu_before = cpu_seconds();
        for _ in 0..o.requests {
            let t = Instant::now();
            match client.get(route, key) {
                Ok((s, n, snippet)) => {
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                    status = s;
                    bytes = n;
                    if s >= 400 {
                        err = snippet;
                    }
                }
                Err(e) => {
                    err = e.to_string();
                    client = Client::connect(addr).expect("reconnect");
                }
            }
        }
        let cpu_ms = cpu_before
            .zip(cpu_seconds())
            .map(|(a, b)| (b - a) * 1000.0 / o.requests as f64);
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let row = Row {
            route: route.clone(),
            status,
            p50: percentile(&times, 50.0),
            p99: percentile(&times, 99.0),
            max: times.last().copied().unwrap_or(f64::NAN),
            first,
            bytes,
            err,
        };
        eprintln!(
            "  {:<62} {:>4} p50 {:>8.2} p99 {:>8.2} first {:>8.2} cpu/req {}",
            row.route,
            row.status,
            row.p50,
            row.p99,
            row.first,
            cpu_ms.map_or("?".to_string(), |c| format!("{c:.1} ms"))
        );
        rows.push(row);
    }
    let load_end = loadavg();
    rt.block_on(handle.shutdown());

    println!();
    println!(
        "| route | status | p50 ms | p99 ms | max ms | first ms | bytes | p99 <= {TARGET_MS} ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|:---:|");
    let mut misses = 0;
    for r in &rows {
        let ok = r.p99 <= TARGET_MS;
        if !ok {
            misses += 1;
        }
        println!(
            "| `{}` | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.route,
            r.status,
            r.p50,
            r.p99,
            r.max,
            r.first,
            r.bytes,
            if ok { "yes" } else { "**no**" }
        );
    }
    println!();
    println!(
        "{} routes, {misses} miss p99 <= {TARGET_MS} ms; load average at end: {load_end}",
        rows.len()
    );
    for r in rows.iter().filter(|r| !r.err.is_empty()) {
        println!("  {} -> {}: {}", r.route, r.status, r.err);
    }
    // `--reuse` keeps the directory too: deleting it would destroy the database it reuses.
    if !o.keep && !o.reuse {
        let _ = std::fs::remove_dir_all(&o.dir);
    } else {
        println!("kept {}", o.dir.display());
    }
}
