//! `bench-ingest`: the collector's sustained ingest rate with durable commits, against plain
//! SQLite, and its memory per connected idle agent.
//!
//! Starts the real collector binary on loopback, enrolls `--agents N` simulated routers through
//! the real enrollment path (default 1,000), then
//! 1. opens one idle mutual-TLS connection per router (after `Hello`) and reads the collector's
//!    VmRSS before and after: memory per connected idle agent;
//! 2. has every router send reports with 20 stations as fast as acks come back (`--window W`
//!    unacked per connection, default 4) for `--secs S` (default 20) after `--warmup S`
//!    (default 5): acked reports per second (an ack is sent only after the SQLite commit,
//!    `synchronous=FULL`), ack latency, collector CPU per report;
//!    Then (unless `--api-load false`) drives the fleet again while `--api-clients C` clients
//!    (default 2) read the API benchmark's GET route mix (`routerstats_apibench::routes`, ids
//!    taken from what the simulated agents sent, one API key per route made with the CLI):
//!    both ingest rates, API requests/s and p50/p99 per route group;
//! 3. after stopping the collector, inserts the same rows with plain rusqlite in transactions
//!    of the collector's mean batch sizes (and of 512): the raw SQLite rate, and the ratios, in
//!    reports/s and in CPU per report (the collector's database writer thread against the
//!    inserting thread), which a loaded machine distorts less.
//!
//! 4. restarts the collector on the same data twice and drives the fleet again, alert rules off
//!    (`[alerts] enabled = false`) then every rule on with thresholds every router crosses,
//!    evaluated every second: both rates, their ratio and the evaluation times
//!    (`--alert-rules false` skips this).
//!
//! `--dir PATH` puts the data there (default: the system temp dir; its file system is printed,
//! because fsync on tmpfs is free). The baseline grows one database as the collector's grew and
//! measures the same windows: before each window it inserts, unmeasured, as many reports as the
//! collector had acked before that window began, then measures as many as it acked in it
//! (with 20,000 distinct stations the `station_samples_mac` index outgrows the page cache, so
//! the cost per report depends on the database's size). `--raw-reports R` instead measures R
//! reports on a fresh database, against both windows.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use routerstats_apibench::routes::{group, route_mix, RouteIds};
use routerstats_bench::apiload::{self, LoadStats, Pace, Target};
use routerstats_bench::cproc::{collector_bin, fs_type, CollectorProc};
use routerstats_bench::gen::{RouterText, Shape};
use routerstats_bench::sim::{self, ReportMaker};
use routerstats_bench::sys::{self, ms, percentile};
use routerstats_bench::{flag, flags, rawsql};
use tokio::time::Instant;

struct Opts {
    agents: usize,
    secs: u64,
    warmup: u64,
    window: usize,
    raw_reports: Option<u64>,
    dir: Option<PathBuf>,
    collector: Option<PathBuf>,
    /// Also measure ingest with alert rules off and all on.
    alert_rules: bool,
    /// Also measure ingest while the API route mix is read, by this many clients.
    api_load: bool,
    api_clients: usize,
    /// Requests per second per API client (None: unpaced).
    api_rps: Option<f64>,
    /// The collector's `batch_max` (None: its default).
    batch_max: Option<usize>,
    /// The collector's `rollup_hold`, e.g. `0s` (None: its default).
    rollup_hold: Option<String>,
    /// The collector's `rollup_read_lag`, e.g. `0s` (None: its default).
    rollup_read_lag: Option<String>,
    /// The collector's `api_read_nice` (None: its default).
    api_read_nice: Option<i32>,
    /// The collector's `network_nice` (None: its default).
    network_nice: Option<i32>,
}

impl Opts {
    /// The collector config every run of this benchmark starts from.
    fn base_toml(&self) -> String {
        let mut t = format!("max_connections = {}\n", (self.agents * 2 + 256).max(4096));
        if let Some(b) = self.batch_max {
            t.push_str(&format!("batch_max = {b}\n"));
        }
        if let Some(h) = &self.rollup_hold {
            t.push_str(&format!("rollup_hold = {h:?}\n"));
        }
        if let Some(l) = &self.rollup_read_lag {
            t.push_str(&format!("rollup_read_lag = {l:?}\n"));
        }
        if let Some(n) = self.api_read_nice {
            t.push_str(&format!("api_read_nice = {n}\n"));
        }
        if let Some(n) = self.network_nice {
            t.push_str(&format!("network_nice = {n}\n"));
        }
        t
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Mean and count of the writer's "batch committed" debug lines.
fn batch_sizes(log: &str) -> (f64, usize) {
    let plain = strip_ansi(log);
    let sizes: Vec<u64> = plain
        .lines()
        .filter(|l| l.contains("batch committed"))
        .filter_map(|l| l.split("reports=").nth(1))
        .filter_map(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse().ok())
        .collect();
    let n = sizes.len();
    (sizes.iter().sum::<u64>() as f64 / n.max(1) as f64, n)
}

/// What driving the fleet measured.
struct Driven {
    stats: Vec<sim::DriveStats>,
    /// The load generator's CPU time over the whole drive.
    bench_cpu: Duration,
    /// The collector's CPU time inside the measuring window.
    col_cpu: Duration,
    /// Its database writer thread's CPU time inside the window (None: no such thread found).
    writer_cpu: Option<Duration>,
    /// The collector's CPU time inside the window by thread name (live threads only).
    threads_cpu: Vec<(String, Duration)>,
    /// What the API clients measured, when the API was read during the drive.
    api: Option<LoadStats>,
}

/// The API read during a drive: the routes with their keys, and how the clients read them.
struct ApiPlan {
    targets: Arc<Vec<Target>>,
    pace: Pace,
}

/// Connects every agent (boot ids from `boot_base`) and has each send reports as fast as acks
/// come back for `o.warmup + o.secs` seconds; with `api`, the API is read all that time too.
async fn drive_fleet(
    col: &CollectorProc,
    agents: &[sim::SimAgent],
    template: &routerstats_shared::model::Report,
    o: &Opts,
    boot_base: u64,
    api: Option<&ApiPlan>,
) -> Result<Driven, String> {
    let mut conns = Vec::with_capacity(agents.len());
    for (i, a) in agents.iter().enumerate() {
        let boot = sim::boot_id(boot_base + i as u64);
        conns.push((
            sim::connect(col.ingest, a, boot)
                .await
                .map_err(|e| format!("connection {i}: {e}"))?,
            boot,
        ));
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(o.warmup);
    let stop_at = measure_from + Duration::from_secs(o.secs);
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, (conn, boot)) in conns.into_iter().enumerate() {
        let maker = ReportMaker::new(sim::own_macs(template, i), boot);
        tasks.push(tokio::spawn(sim::drive(
            conn,
            maker,
            o.window,
            None,
            measure_from,
            stop_at,
        )));
    }
    let load = api.map(|a| {
        apiload::start(
            col.api,
            a.targets.clone(),
            a.pace,
            measure_from.into_std(),
            stop_at.into_std(),
        )
    });
    let pid = col.pid();
    let cpu_probe = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        let c0 = sys::cpu_of(pid).unwrap_or_default();
        let w0 = sys::cpu_of_thread(pid, "db-writer");
        let t0 = sys::cpu_by_thread_name(pid);
        tokio::time::sleep_until(stop_at).await;
        let w1 = sys::cpu_of_thread(pid, "db-writer");
        let t1 = sys::cpu_by_thread_name(pid);
        let writer = w0.zip(w1).map(|(a, b)| b.saturating_sub(a));
        let threads: Vec<(String, Duration)> = t1
            .into_iter()
            .map(|(name, c)| {
                let before = t0.get(&name).copied().unwrap_or_default();
                (name, c.saturating_sub(before))
            })
            .collect();
        (
            sys::cpu_of(pid).unwrap_or_default().saturating_sub(c0),
            writer,
            threads,
        )
    });
    let bench_cpu0 = sys::cpu_self();
    let mut stats = Vec::with_capacity(tasks.len());
    for t in tasks {
        stats.push(t.await.map_err(|e| e.to_string())?);
    }
    let bench_cpu = sys::cpu_self() - bench_cpu0;
    let (col_cpu, writer_cpu, threads_cpu) = cpu_probe.await.map_err(|e| e.to_string())?;
    let api = match load {
        Some(l) => Some(
            tokio::task::spawn_blocking(move || l.join())
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    Ok(Driven {
        stats,
        bench_cpu,
        col_cpu,
        writer_cpu,
        threads_cpu,
        api,
    })
}

/// Route ids from what the simulated agents send: the middle router (its name, id and site),
/// every 7th router after it, the template report's WAN interface, a station's MAC and a lease's
/// hostname, and WireGuard peers and OpenVPN clients when the template has any (the ingest
/// shape has none: those routes then ask for an unknown peer or client).
fn route_ids(
    db: &Path,
    agents: &[sim::SimAgent],
    template: &routerstats_shared::model::Report,
) -> Result<RouteIds, String> {
    let n = agents.len().max(1);
    let r = agents.len() / 2;
    let name = agents.get(r).map(|a| a.name.clone()).unwrap_or_default();
    let (router_id, site): (i64, Option<String>) = rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT id, site FROM routers WHERE name = ?1",
                [&name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .map_err(|e| format!("router {name:?} in the database: {e}"))?;
    let wan = template
        .interfaces
        .iter()
        .find(|i| i.name == "pppoe-wan")
        .or_else(|| template.interfaces.first())
        .map(|i| i.name.clone())
        .unwrap_or_else(|| "wan".into());
    let own = sim::own_macs(template, r);
    let station_mac = own
        .stations
        .get(4)
        .or_else(|| template.stations.first())
        .map(|s| s.mac.to_string())
        .unwrap_or_else(|| "02:00:00:00:00:00".into());
    let station_host = own
        .leases
        .iter()
        .filter_map(|l| l.hostname.clone())
        .nth(3)
        .unwrap_or_else(|| station_mac.clone());
    let peer = template.wireguard.iter().flat_map(|w| &w.peers).next();
    let ovpn = template.openvpn.iter().flat_map(|o| &o.clients).next();
    Ok(RouteIds {
        router: name,
        router_id,
        site: site.unwrap_or_else(|| "none".into()),
        wan_port: wan,
        identities: (0..10)
            .filter_map(|i| agents.get((r + i * 7) % n).map(|a| a.name.clone()))
            .collect(),
        station_host,
        station_mac,
        // Without peers: a well-formed key no router has (32 zero bytes), so the routes answer
        // "unknown peer" rather than "malformed key".
        wg_key: peer
            .map(|p| p.public_key.clone())
            .unwrap_or_else(|| format!("{}=", "A".repeat(43))),
        wg_peer: peer
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| "not-sent".into()),
        ovpn_cn: ovpn
            .map(|c| c.common_name.clone())
            .unwrap_or_else(|| "not-sent".into()),
    })
}

/// The API benchmark's routes with one admin key each (made through the collector's CLI, as
/// `routerstats-apibench` makes one per route: the per-key rate limit).
fn api_plan(col: &CollectorProc, ids: &RouteIds, pace: Pace) -> Result<ApiPlan, String> {
    let targets = route_mix(ids)
        .into_iter()
        .enumerate()
        .map(|(i, route)| {
            let key = col
                .api_key("admin", &format!("bench-ingest-{i}"))
                .map_err(|e| e.to_string())?;
            Ok(Target { route, key })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ApiPlan {
        targets: Arc::new(targets),
        pace,
    })
}

/// Prints what the API clients measured: per route group and in all.
fn print_api(stats: &LoadStats, plan: &ApiPlan, secs: u64) {
    let routes_in = |g: &str| plan.targets.iter().filter(|t| group(&t.route) == g).count();
    println!(
        "  API read meanwhile: {} clients, one request at a time each ({}), over the {} routes of the API benchmark: {} requests in {secs} s ({:.1} requests/s), {} failed below HTTP{}",
        plan.pace.clients,
        plan.pace
            .per_client_rps
            .map(|r| format!("{r} requests/s each"))
            .unwrap_or_else(|| "the next as soon as the last is answered".into()),
        plan.targets.len(),
        stats.requests,
        stats.requests as f64 / secs.max(1) as f64,
        stats.io_errors,
        stats
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!("  | route group | routes | requests | p50 | p99 | max | statuses |");
    println!("  |---|---:|---:|---:|---:|---:|---|");
    for (g, s) in &stats.groups {
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        println!(
            "  | {g} | {} | {} | {} | {} | {} | {} |",
            routes_in(g),
            s.latencies.len(),
            percentile(&s.latencies, 0.5).map(ms).unwrap_or_default(),
            percentile(&s.latencies, 0.99).map(ms).unwrap_or_default(),
            s.latencies.last().copied().map(ms).unwrap_or_default(),
            statuses.join(", ")
        );
    }
    // The slowest routes, by p99: which route makes a group slow.
    let mut slow: Vec<(&String, &Vec<Duration>)> = stats.routes.iter().collect();
    slow.sort_by_key(|(_, l)| std::cmp::Reverse(percentile(l, 0.99)));
    println!("  slowest routes by p99: route, requests, p50 / p99 / max");
    for (route, l) in slow.iter().take(8) {
        println!(
            "    {route}: {}, {} / {} / {}",
            l.len(),
            percentile(l, 0.5).map(ms).unwrap_or_default(),
            percentile(l, 0.99).map(ms).unwrap_or_default(),
            l.last().copied().map(ms).unwrap_or_default()
        );
    }
    let limited = stats.with_status(429);
    if limited > 0 {
        println!("  ({limited} answers were 429: a rate limit, not the database, refused them)");
    }
}

/// What one drive measured, for the summary.
struct Measured {
    rate: f64,
    mean_batch: f64,
    col_us: f64,
    writer_us: Option<f64>,
}

/// Prints one drive's ingest figures (section 2 and its API-load twin).
fn print_drive(label: &str, d: &Driven, o: &Opts, log: &str) -> Measured {
    let (acked, lat, errors) = sim::merge(&d.stats);
    let rate = acked as f64 / o.secs.max(1) as f64;
    let (mean_batch, batches) = batch_sizes(log);
    let per_report = |c: Duration| c.as_secs_f64() * 1e6 / acked.max(1) as f64;
    println!(
        "  {label}: {acked} reports acked in {} s: {rate:.0} reports/s (target >= 5,000: {}); load average {}",
        o.secs,
        if rate >= 5000.0 { "met" } else { "MISSED" },
        sys::loadavg()
    );
    println!(
        "    ack latency p50 {}, p99 {}, max {}; writer: {batches} transactions, {mean_batch:.1} reports per transaction",
        percentile(&lat, 0.5).map(ms).unwrap_or_default(),
        percentile(&lat, 0.99).map(ms).unwrap_or_default(),
        lat.last().copied().map(ms).unwrap_or_default()
    );
    println!(
        "    collector CPU {:.1} s in the window ({:.0} us per report), of it the database writer thread {} ; load generator CPU {:.1} s (all share the {} cores)",
        d.col_cpu.as_secs_f64(),
        per_report(d.col_cpu),
        d.writer_cpu
            .map(|w| format!("{:.1} s ({:.0} us per report)", w.as_secs_f64(), per_report(w)))
            .unwrap_or_else(|| "unknown".into()),
        d.bench_cpu.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let threads: Vec<String> = d
        .threads_cpu
        .iter()
        .filter(|(_, c)| !c.is_zero())
        .map(|(name, c)| format!("{name} {:.0} us", per_report(*c)))
        .collect();
    println!(
        "    collector CPU per report by thread name (live threads): {}",
        threads.join(", ")
    );
    if !errors.is_empty() {
        println!(
            "    {} connections ended early; first: {}",
            errors.len(),
            errors.first().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    Measured {
        rate,
        mean_batch,
        col_us: per_report(d.col_cpu),
        writer_us: d.writer_cpu.map(per_report),
    }
}

async fn bench(o: Opts) -> Result<(), String> {
    let want_fds = (o.agents as u64) * 2 + 512;
    let (soft0, hard0) = sys::nofile_limit();
    let soft = sys::raise_nofile(want_fds);
    println!(
        "open-file limit: soft {soft0} / hard {hard0} at start, soft {soft} now (this run needs about {want_fds})"
    );
    if soft < want_fds {
        return Err(format!(
            "the open-file limit {soft} is too low for {} agents: raise `ulimit -n` (hard limit {hard0})",
            o.agents
        ));
    }
    let parent = match &o.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let bin = collector_bin(o.collector.clone()).map_err(|e| e.to_string())?;
    let toml = o.base_toml();
    let mut col = CollectorProc::start(
        &bin,
        &parent.path().join("data"),
        &toml,
        "warn,routerstats_collector::ingest::writer=debug",
    )
    .map_err(|e| e.to_string())?;
    println!(
        "collector {} (pid {}), data on {} ({}), rollup_hold {}, rollup_read_lag {}, api_read_nice {}, network_nice {}",
        bin.display(),
        col.pid(),
        col.data_dir.display(),
        fs_type(&col.data_dir),
        o.rollup_hold.as_deref().unwrap_or("default (10s)"),
        o.rollup_read_lag.as_deref().unwrap_or("default (1s)"),
        o.api_read_nice
            .map(|n| n.to_string())
            .unwrap_or_else(|| "default (10)".into()),
        o.network_nice
            .map(|n| n.to_string())
            .unwrap_or_else(|| "default (5)".into())
    );

    // Enrollment through the real path.
    // One site for the fleet: the API's site-filtered routes then have a site to filter on.
    let token = col
        .token_at_site("bench", o.agents, Some("bench-site"))
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let agents = sim::enroll_fleet(
        col.ingest,
        &token,
        &parent.path().join("agents"),
        "bench",
        o.agents,
        8,
    )
    .await
    .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    println!(
        "enrolled {} routers in {:.1} s ({:.0} enrollments/s)",
        agents.len(),
        took.as_secs_f64(),
        agents.len() as f64 / took.as_secs_f64()
    );

    // 1. Memory per connected idle agent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm = (agents.len() / 10).max(1);
    let mut idle = Vec::with_capacity(agents.len());
    let rss0 = col.mem();
    let mut rss_warm = rss0;
    for (i, a) in agents.iter().enumerate() {
        idle.push(
            sim::connect(col.ingest, a, sim::boot_id(i as u64))
                .await
                .map_err(|e| format!("idle connection {i}: {e}"))?,
        );
        if i + 1 == warm {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_warm = col.mem();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_all = col.mem();
    let n_idle = idle.len();
    let per_all = (rss_all.rss_kb as f64 - rss0.rss_kb as f64) / n_idle.max(1) as f64;
    let per_rest = (rss_all.rss_kb as f64 - rss_warm.rss_kb as f64)
        / n_idle.saturating_sub(warm).max(1) as f64;
    println!();
    println!("memory per connected idle agent ({n_idle} mutual-TLS connections after Hello, no reports):");
    println!(
        "  collector VmRSS {} kB before, {} kB after the first {warm}, {} kB with all connected",
        rss0.rss_kb, rss_warm.rss_kb, rss_all.rss_kb
    );
    println!(
        "  {per_all:.1} kB per connection over all of them, {per_rest:.1} kB per connection after the first {warm} (target <= 64 KB: {})",
        if per_all <= 64.0 { "met" } else { "MISSED" }
    );
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Sustained ingest, without the API read and then with it.
    let template = RouterText::generate(Shape::INGEST, 7)
        .parse_report()
        .map_err(|e| e.to_string())?;
    let frame_len = routerstats_shared::Message::Report(Box::new(template.clone()))
        .to_frame()
        .map(|f| f.len())
        .unwrap_or(0);
    println!();
    println!(
        "sustained ingest: {} agents, {} stations + {} interfaces per report ({frame_len} byte frame), window {} unacked per agent, {} s after {} s of warm-up",
        agents.len(),
        template.stations.len(),
        template.interfaces.len(),
        o.window,
        o.secs,
        o.warmup
    );
    let quiet = drive_fleet(&col, &agents, &template, &o, 1_000_000, None).await?;
    let log_quiet = col.log();
    let m_quiet = print_drive("without API load", &quiet, &o, &log_quiet);
    let mut loaded = None;
    if o.api_load {
        let ids = route_ids(&col.data_dir.join("routerstats.db"), &agents, &template)?;
        let pace = Pace {
            clients: o.api_clients,
            per_client_rps: o.api_rps,
        };
        let plan = api_plan(&col, &ids, pace)?;
        let d = drive_fleet(&col, &agents, &template, &o, 1_500_000, Some(&plan)).await?;
        let log = col.log();
        let m = print_drive(
            "with API load   ",
            &d,
            &o,
            log.get(log_quiet.len()..).unwrap_or(""),
        );
        if let Some(a) = &d.api {
            print_api(a, &plan, o.secs);
        }
        if template.wireguard.is_empty() && template.openvpn.is_empty() {
            println!("  (the simulated agents send no WireGuard peers or OpenVPN clients: the routes naming one ask for an unknown one)");
        }
        loaded = Some((m, d));
    }
    let total_acked: u64 = quiet
        .stats
        .iter()
        .chain(loaded.iter().flat_map(|(_, d)| d.stats.iter()))
        .map(|s| s.acked)
        .sum();
    let (stored, station_rows): (i64, i64) = {
        let db = rusqlite::Connection::open(col.data_dir.join("routerstats.db"))
            .map_err(|e| e.to_string())?;
        let count = |sql: &str| {
            db.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(|e| e.to_string())
        };
        (
            count("SELECT COUNT(*) FROM reports")?,
            count("SELECT COUNT(*) FROM station_samples")?,
        )
    };
    let mem = col.mem();
    col.kill();
    println!(
        "  durable: {stored} reports rows in the database, {total_acked} acked in all (every ack followed its commit: {})",
        if stored as u64 >= total_acked { "yes" } else { "NO" }
    );
    // Every report's station samples are rows (none dropped as a duplicate of another
    // report's): the work the baseline below repeats.
    let want_rows = stored.saturating_mul(template.stations.len() as i64);
    println!(
        "  station samples: {station_rows} rows for {stored} reports of {} stations ({})",
        template.stations.len(),
        if station_rows == want_rows {
            "all stored".to_string()
        } else {
            format!("{} MISSING", want_rows - station_rows)
        }
    );
    println!(
        "  collector VmRSS {} kB at the end, VmHWM {} kB",
        mem.rss_kb, mem.hwm_kb
    );

    // 3. Plain SQLite with the same rows, at the batch sizes the collector used, on a database
    //    that grows as the collector's did: each measuring window's baseline starts after as
    //    many reports as the collector had stored when that window began.
    let phase = |stats: &[sim::DriveStats]| {
        let before: u64 = stats.iter().map(|s| s.acked_before_window).sum();
        let window: u64 = stats.iter().map(|s| s.acked_in_window).sum();
        let all: u64 = stats.iter().map(|s| s.acked).sum();
        (before, window, all.saturating_sub(before + window))
    };
    let segments: Vec<rawsql::Segment> = match o.raw_reports {
        Some(r) => vec![rawsql::Segment {
            skip: 0,
            measure: r,
        }],
        None => {
            let (w1, a1, d1) = phase(&quiet.stats);
            let mut v = vec![rawsql::Segment {
                skip: w1,
                measure: a1.max(1),
            }];
            if let Some((_, d)) = &loaded {
                let (w2, a2, _) = phase(&d.stats);
                v.push(rawsql::Segment {
                    skip: d1 + w2,
                    measure: a2.max(1),
                });
            }
            v
        }
    };
    println!();
    println!(
        "plain rusqlite baseline: the same rows, same schema and writer settings, no TLS/decoding/deltas/rollups; {}; load average {}",
        if o.raw_reports.is_some() {
            format!("{} reports on a fresh database", segments[0].measure)
        } else {
            format!(
                "measured over {} (after {} unmeasured: the database the collector's windows started on)",
                segments.iter().map(|g| g.measure.to_string()).collect::<Vec<_>>().join(" then "),
                segments.iter().map(|g| g.skip.to_string()).collect::<Vec<_>>().join(" then "),
            )
        },
        sys::loadavg()
    );
    let batch_of = |m: &Measured| m.mean_batch.round().max(1.0) as usize;
    let mut batches = vec![batch_of(&m_quiet)];
    if let Some((m, _)) = &loaded {
        batches.push(batch_of(m));
    }
    batches.push(512);
    batches.dedup();
    // Per batch size, one run per segment (the first: without the API's window, the second:
    // with it).
    let mut raw: Vec<(usize, Vec<rawsql::RawRun>)> = Vec::new();
    for batch in batches {
        if raw.iter().any(|(b, _)| *b == batch) {
            continue;
        }
        let path = parent.path().join(format!("raw-{batch}.db"));
        let runs = rawsql::run_segments(&path, &template, o.agents, &segments, batch)
            .map_err(|e| e.to_string())?;
        let figures: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{:.0} reports/s ({} transactions), {:.0} us CPU per report",
                    r.per_second(),
                    r.reports.div_ceil(batch as u64),
                    r.cpu_us_per_report()
                )
            })
            .collect();
        println!("  batch {batch:>4}: {}", figures.join("; then "));
        raw.push((batch, runs));
    }
    // The baseline of a window: its segment (the last one when `--raw-reports` made one).
    let raw_at = |m: &Measured, seg: usize| {
        raw.iter()
            .find(|(b, _)| *b == batch_of(m))
            .and_then(|(_, runs)| runs.get(seg).or(runs.last()).copied())
    };
    println!("collector against plain SQLite at the same batch size and database size (same process run):");
    let summary = |label: &str, m: &Measured, seg: usize| {
        let Some(r) = raw_at(m, seg) else {
            return;
        };
        let ratio = m.rate / r.per_second() * 100.0;
        println!(
            "  {label}: {:.0} vs {:.0} reports/s at batch {}: {ratio:.0}% (target >= 95%: {}); CPU per report: plain SQLite {:.0} us, collector writer thread {}, whole collector {:.0} us",
            m.rate,
            r.per_second(),
            batch_of(m),
            if ratio >= 95.0 { "met" } else { "MISSED" },
            r.cpu_us_per_report(),
            m.writer_us
                .map(|w| format!("{w:.0} us (plain SQLite / writer: {:.0}%)", r.cpu_us_per_report() / w.max(1e-9) * 100.0))
                .unwrap_or_else(|| "unknown".into()),
            m.col_us,
        );
    };
    summary("without API load", &m_quiet, 0);
    if let Some((m, _)) = &loaded {
        summary("with API load   ", m, 1);
        println!(
            "  ingest with the API read: {:.0}% of the rate without (the second run starts on a larger database)",
            m.rate / m_quiet.rate.max(1.0) * 100.0
        );
    }

    // 4. Alert rules off vs all on, same fleet and data directory.
    if o.alert_rules {
        alert_rules(&bin, &col.data_dir, &agents, &template, &o).await?;
    }
    Ok(())
}

/// Every rule on, with thresholds every simulated router crosses and no for-duration: the worst
/// case (thousands of alerts fire in the first evaluation). `[alerts]` comes before it.
const ALL_RULES: &str = r#"
[alerts.fleet]
cpu_percent = 1
cpu_for = "0s"
memory_percent = 1
memory_for = "0s"
disk_percent = 1
disk_for = "0s"
clients_max = 1
clients_min = 1000
clients_for = "0s"
station_mbps = 0.000001
wan_mbps = 0.000001
rate_for = "0s"
wg_handshake_age = "1m"
ovpn_client_gone = true
"#;

/// `took_us` of the evaluator's "alerts evaluated" debug lines.
fn eval_times(log: &str) -> Vec<u64> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("alerts evaluated"))
        .filter_map(|l| l.split("took_us=").nth(1))
        .filter_map(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Restarts the collector on the same data twice, alert rules off then all on, drives the fleet
/// each time and prints both rates and their ratio.
async fn alert_rules(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
    agents: &[sim::SimAgent],
    template: &routerstats_shared::model::Report,
    o: &Opts,
) -> Result<(), String> {
    println!();
    println!(
        "alert rules: the collector restarted on the same data: rules off, then every rule on with thresholds every router crosses, evaluated every 15 s (the default), then every 1 s"
    );
    let base = o.base_toml();
    let mut rates = Vec::new();
    let every = |s: &str| format!("[alerts]\neval_interval = \"{s}\"\n{ALL_RULES}");
    let runs = [
        (
            "off             ",
            "[alerts]\nenabled = false\n".to_string(),
        ),
        ("on, every 15 s  ", every("15s")),
        ("on, every 1 s   ", every("1s")),
    ];
    for (i, (label, extra)) in runs.into_iter().enumerate() {
        let mut col = CollectorProc::start(
            bin,
            data_dir,
            &format!("{base}{extra}"),
            "warn,routerstats_collector::alerts=debug",
        )
        .map_err(|e| e.to_string())?;
        let d = drive_fleet(
            &col,
            agents,
            template,
            o,
            2_000_000 + 1_000_000 * i as u64,
            None,
        )
        .await?;
        let (acked, lat, _) = sim::merge(&d.stats);
        let rate = acked as f64 / o.secs.max(1) as f64;
        let evals = eval_times(&col.log());
        let alerts: i64 = rusqlite::Connection::open(col.data_dir.join("routerstats.db"))
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM alerts WHERE state = 'firing'",
                    [],
                    |r| r.get(0),
                )
            })
            .map_err(|e| e.to_string())?;
        col.kill();
        let mean = evals.iter().sum::<u64>() as f64 / evals.len().max(1) as f64;
        println!(
            "  rules {label}: {rate:.0} reports/s, ack p99 {}, collector CPU {:.0} us per report; {} evaluations (mean {:.1} ms, max {:.1} ms), {alerts} alerts firing",
            percentile(&lat, 0.99).map(ms).unwrap_or_default(),
            d.col_cpu.as_secs_f64() * 1e6 / acked.max(1) as f64,
            evals.len(),
            mean / 1000.0,
            evals.iter().max().copied().unwrap_or(0) as f64 / 1000.0,
        );
        rates.push(rate);
    }
    println!(
        "  ingest with all rules on: {:.0}% (every 15 s), {:.0}% (every 1 s) of the rate with rules off (each run starts on a larger database than the one before)",
        rates[1] / rates[0].max(1.0) * 100.0,
        rates[2] / rates[0].max(1.0) * 100.0
    );
    Ok(())
}

const USAGE: &str = "bench-ingest: the collector's durable ingest rate against plain SQLite, and memory per idle
connected agent (see BENCHMARKS.md).

Usage: bench-ingest [--agents N] [--secs S] [--warmup S] [--window W] [--api-load BOOL] [--api-clients C]
                    [--api-rps R] [--batch-max N] [--rollup-hold D] [--rollup-read-lag D] [--api-read-nice N]
                    [--network-nice N] [--alert-rules BOOL] [--raw-reports R] [--dir PATH] [--collector-bin PATH]
  --agents N           simulated routers (default 1000)
  --secs S             measuring window (default 20)
  --warmup S           warm-up before it (default 5)
  --window W           unacked reports per connection (default 4)
  --api-load BOOL      drive the fleet a second time while C clients read the API benchmark's
                       route mix, and print both rates and the API latencies (default true)
  --api-clients C      API clients, one request at a time each (default 2)
  --api-rps R          requests per second per API client (default: none, the next request as
                       soon as the last is answered, as routerstats-apibench does)
  --batch-max N        the collector's batch_max (default: its default, 2048)
  --rollup-hold D      the collector's rollup_hold, e.g. 0s (default: its default, 10s)
  --rollup-read-lag D  the collector's rollup_read_lag, e.g. 0s (default: its default, 1s)
  --api-read-nice N    the collector's api_read_nice, 0 to 19 (default: its default, 10)
  --network-nice N     the collector's network_nice, 0 to 19 (default: its default, 5)
  --alert-rules BOOL   also measure ingest with alert rules off and all on (default true)
  --raw-reports R      the plain-SQLite baseline measures R reports on a fresh database (default: the
                       collector's windows, on a database grown as the collector's was)
  --dir PATH           where the collector's data dir is made (default: a temp dir)
  --collector-bin PATH collector binary (default: routerstats-collector next to this one)
  -h, --help           print this help";

/// The nice value given as `--name N` (0 to 19), if given.
fn nice_flag(f: &[(String, String)], name: &str) -> Result<Option<i32>, String> {
    f.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| match v.parse::<i32>() {
            Ok(n) if (0..=19).contains(&n) => Ok(n),
            _ => Err(format!("--{name}: {v:?} (0 to 19)")),
        })
        .transpose()
}

fn main() -> ExitCode {
    let parse = || -> Result<Opts, String> {
        let f = flags(USAGE).map_err(|e| e.to_string())?;
        Ok(Opts {
            agents: flag(&f, "agents", 1000usize)?.max(1),
            secs: flag(&f, "secs", 20u64)?.max(1),
            warmup: flag(&f, "warmup", 5u64)?,
            window: flag(&f, "window", 4usize)?.max(1),
            raw_reports: f
                .iter()
                .find(|(n, _)| n == "raw-reports")
                .map(|(_, v)| v.parse().map_err(|_| format!("--raw-reports: {v:?}")))
                .transpose()?,
            dir: f
                .iter()
                .find(|(n, _)| n == "dir")
                .map(|(_, v)| PathBuf::from(v)),
            collector: f
                .iter()
                .find(|(n, _)| n == "collector-bin")
                .map(|(_, v)| PathBuf::from(v)),
            alert_rules: flag(&f, "alert-rules", true)?,
            api_load: flag(&f, "api-load", true)?,
            api_clients: flag(&f, "api-clients", 2usize)?.max(1),
            api_rps: f
                .iter()
                .find(|(n, _)| n == "api-rps")
                .map(|(_, v)| match v.parse::<f64>() {
                    Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
                    _ => Err(format!(
                        "--api-rps: {v:?} (a positive number of requests per second)"
                    )),
                })
                .transpose()?,
            batch_max: f
                .iter()
                .find(|(n, _)| n == "batch-max")
                .map(|(_, v)| v.parse().map_err(|_| format!("--batch-max: {v:?}")))
                .transpose()?,
            rollup_hold: f
                .iter()
                .find(|(n, _)| n == "rollup-hold")
                .map(|(_, v)| v.clone()),
            rollup_read_lag: f
                .iter()
                .find(|(n, _)| n == "rollup-read-lag")
                .map(|(_, v)| v.clone()),
            api_read_nice: nice_flag(&f, "api-read-nice")?,
            network_nice: nice_flag(&f, "network-nice")?,
        })
    };
    routerstats_bench::run_async(parse(), bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_are_read_with_or_without_colour() {
        let log = "2026 DEBUG routerstats_collector::ingest::writer: batch committed reports=12 duplicates=0 took_ms=3\n\
                   2026 \u{1b}[34mDEBUG\u{1b}[0m batch committed \u{1b}[3mreports\u{1b}[0m\u{1b}[2m=\u{1b}[0m4 x\n\
                   2026 INFO router connected\n";
        assert_eq!(batch_sizes(log), (8.0, 2));
    }
}
