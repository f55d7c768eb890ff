//! `bench-flood`: many connected agents plus connections that never finish their TLS handshake.
//!
//! Starts the real collector binary, enrolls `--agents N` simulated routers (default 2,000),
//! opens `--stalled M` TCP connections (default 500) that send the first five bytes of a TLS
//! record and then nothing (each reopened as soon as the collector's handshake timeout closes
//! it), then connects every router and has each send a report every `--interval-ms` (default
//! 5000: 400 reports/s from 2,000 routers) for `--secs S` (default 30). Prints the connect times, the ack rate against the offered
//! rate, ack latency, errors, how often the stalled connections were cut, and the collector's
//! memory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use routerstats_bench::cproc::{collector_bin, CollectorProc};
use routerstats_bench::gen::{RouterText, Shape};
use routerstats_bench::sim::{self, ReportMaker};
use routerstats_bench::sys::{self, ms, percentile};
use routerstats_bench::{flag, flags};
use tokio::sync::Semaphore;
use tokio::time::Instant;

struct Opts {
    agents: usize,
    stalled: usize,
    secs: u64,
    interval: Duration,
    dir: Option<PathBuf>,
    collector: Option<PathBuf>,
}

async fn bench(o: Opts) -> Result<(), String> {
    let want = (o.agents + o.stalled) as u64 * 2 + 512;
    let (soft0, hard0) = sys::nofile_limit();
    let soft = sys::raise_nofile(want);
    println!("open-file limit: soft {soft0} / hard {hard0} at start, soft {soft} now (this run needs about {want})");
    if soft < want {
        return Err(format!(
            "the open-file limit {soft} is too low: raise `ulimit -n` (hard limit {hard0})"
        ));
    }
    let parent = match &o.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let bin = collector_bin(o.collector.clone()).map_err(|e| e.to_string())?;
    let toml = format!(
        "max_connections = {}\n",
        (o.agents + o.stalled + 256).max(4096)
    );
    let col = CollectorProc::start(&bin, &parent.path().join("data"), &toml, "warn")
        .map_err(|e| e.to_string())?;
    let token = col.token("flood", o.agents).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let agents = sim::enroll_fleet(
        col.ingest,
        &token,
        &parent.path().join("agents"),
        "flood",
        o.agents,
        8,
    )
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "enrolled {} routers in {:.1} s",
        agents.len(),
        t.elapsed().as_secs_f64()
    );
    let rss_before = col.mem();

    // The stalled handshakes hold their connections for the whole run.
    let end_all = Instant::now() + Duration::from_secs(o.secs + 120);
    let cuts = Arc::new(AtomicU64::new(0));
    let stalled: Vec<_> = (0..o.stalled)
        .map(|_| tokio::spawn(sim::stalled_handshake(col.ingest, end_all, cuts.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Connect every router while the stalled connections are open.
    let permits = Arc::new(Semaphore::new(64));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(agents.len());
    for (i, a) in agents.iter().cloned().enumerate() {
        let permits = permits.clone();
        let addr = col.ingest;
        tasks.push(tokio::spawn(async move {
            let _p = permits.acquire_owned().await;
            let boot = sim::boot_id(i as u64);
            let t0 = Instant::now();
            sim::connect(addr, &a, boot)
                .await
                .map(|c| (c, boot, t0.elapsed()))
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    let mut connect_times = Vec::with_capacity(tasks.len());
    let mut connect_errors = Vec::new();
    for t in tasks {
        match t.await.map_err(|e| e.to_string())? {
            Ok((c, boot, d)) => {
                connect_times.push(d);
                conns.push((c, boot));
            }
            Err(e) => connect_errors.push(e),
        }
    }
    connect_times.sort();
    println!(
        "connected {} of {} routers in {:.1} s with {} stalled handshakes open; connect+handshake+Hello p50 {}, p99 {}, max {}; {} failed{}",
        conns.len(),
        agents.len(),
        t.elapsed().as_secs_f64(),
        o.stalled,
        percentile(&connect_times, 0.5).map(ms).unwrap_or_default(),
        percentile(&connect_times, 0.99).map(ms).unwrap_or_default(),
        connect_times.last().copied().map(ms).unwrap_or_default(),
        connect_errors.len(),
        connect_errors.first().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );

    let template = RouterText::generate(Shape::INGEST, 11)
        .parse_report()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    // Spread the first reports over one interval so the fleet does not report in lockstep.
    let measure_from = start + o.interval * 2;
    let stop_at = measure_from + Duration::from_secs(o.secs);
    let n = conns.len().max(1);
    let mut drives = Vec::with_capacity(conns.len());
    for (i, (conn, boot)) in conns.into_iter().enumerate() {
        let maker = ReportMaker::new(template.clone(), boot);
        let offset = o.interval.mul_f64(i as f64 / n as f64);
        let interval = o.interval;
        drives.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            sim::drive(conn, maker, 4, Some(interval), measure_from, stop_at).await
        }));
    }
    let pid = col.pid();
    let cpu0 = sys::cpu_of(pid).unwrap_or_default();
    let mut stats = Vec::with_capacity(drives.len());
    for d in drives {
        stats.push(d.await.map_err(|e| e.to_string())?);
    }
    let cpu = sys::cpu_of(pid).unwrap_or_default().saturating_sub(cpu0);
    let mem = col.mem();
    let (acked, lat, errors) = sim::merge(&stats);
    let offered = stats.len() as f64 / o.interval.as_secs_f64();
    let rate = acked as f64 / o.secs as f64;
    for s in &stalled {
        s.abort();
    }
    let stalled_cuts = cuts.load(Ordering::Relaxed);
    println!();
    println!(
        "{} routers reporting every {} ms for {} s, {} stalled handshakes held open:",
        stats.len(),
        o.interval.as_millis(),
        o.secs,
        o.stalled
    );
    println!(
        "  acked {acked} reports: {rate:.0} reports/s against {offered:.0} offered ({:.1}%)",
        rate * 100.0 / offered.max(1e-9)
    );
    println!(
        "  ack latency p50 {}, p99 {}, max {}",
        percentile(&lat, 0.5).map(ms).unwrap_or_default(),
        percentile(&lat, 0.99).map(ms).unwrap_or_default(),
        lat.last().copied().map(ms).unwrap_or_default()
    );
    println!(
        "  routers whose connection failed during the run: {}{}",
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!("  stalled connections closed by the collector's handshake timeout (and reopened): {stalled_cuts}");
    println!(
        "  collector: CPU {:.1} s during the run, VmRSS {} kB before the connections, {} kB at the end, VmHWM {} kB",
        cpu.as_secs_f64(),
        rss_before.rss_kb,
        mem.rss_kb,
        mem.hwm_kb
    );
    Ok(())
}

const USAGE: &str = "bench-flood: many connected agents plus connections that never finish their TLS handshake
(see BENCHMARKS.md).

Usage: bench-flood [--agents N] [--stalled M] [--interval-ms MS] [--secs S] [--dir PATH] [--collector-bin PATH]
  --agents N           simulated routers (default 2000)
  --stalled M          stalled TLS handshakes held open (default 500)
  --interval-ms MS     report interval of each router (default 5000)
  --secs S             measuring window (default 30)
  --dir PATH           where the collector's data dir is made (default: a temp dir)
  --collector-bin PATH collector binary (default: routerstats-collector next to this one)
  -h, --help           print this help";

fn main() -> ExitCode {
    let parse = || -> Result<Opts, String> {
        let f = flags(USAGE).map_err(|e| e.to_string())?;
        Ok(Opts {
            agents: flag(&f, "agents", 2000usize)?.max(1),
            stalled: flag(&f, "stalled", 500usize)?,
            secs: flag(&f, "secs", 30u64)?.max(1),
            interval: Duration::from_millis(flag(&f, "interval-ms", 5000u64)?.max(1)),
            dir: f
                .iter()
                .find(|(n, _)| n == "dir")
                .map(|(_, v)| PathBuf::from(v)),
            collector: f
                .iter()
                .find(|(n, _)| n == "collector-bin")
                .map(|(_, v)| PathBuf::from(v)),
        })
    };
    routerstats_bench::run_async(parse(), bench)
}
