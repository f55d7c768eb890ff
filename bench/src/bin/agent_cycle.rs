//! `bench-agent-cycle`: CPU time and memory of the agent's collection cycle.
//!
//! Part 1 runs the agent library's `ReportBuilder` in this process over a fake router root (the
//! realistic router of `bench-agent-size`, written into a root made by the tests' fake_router,
//! whose `iw`, `wg` and `df` are shell scripts): one cycle, then `--cycles N` more (default
//! 10,000), each also encoding its report frame as the agent does. It prints CPU time (this
//! process, and the tool processes it ran) and VmRSS/VmHWM along the way, to show whether memory
//! grows.
//!
//! Part 2 (`--run-secs S`, default 20; 0 skips it) runs the real `routerstats-agent` binary
//! against a real collector for S seconds at a 100 ms interval and samples its VmRSS/VmHWM
//! from /proc: the memory of the whole agent process (TLS, runtime, spool), not only the cycle.
//! Both binaries are looked up next to this one (`--agent-bin`, `--collector-bin` override).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use routerstats_agent::collect::ReportBuilder;
use routerstats_agent::config::AgentConfig;
use routerstats_bench::cproc::{collector_bin, CollectorProc};
use routerstats_bench::gen::{RouterText, Shape};
use routerstats_bench::sys::{self, ms};
use routerstats_bench::{flag, flags};
use routerstats_shared::Message;
use routerstats_tests::fake_router::FakeRouter;

fn config_for(root: &std::path::Path) -> AgentConfig {
    let p = |rel: &str| root.join(rel);
    AgentConfig {
        proc_root: p("proc"),
        etc_root: p("etc"),
        iw: p("bin/iw").display().to_string(),
        wg: p("bin/wg").display().to_string(),
        df: p("bin/df").display().to_string(),
        lease_files: vec![p("tmp/dhcp.leases")],
        openvpn_status: vec![p("var/run/openvpn")],
        disks: vec!["/overlay".into()],
        ..AgentConfig::default()
    }
}

fn cycle(c: &mut ReportBuilder) -> usize {
    let report = c.collect();
    Message::Report(Box::new(report))
        .to_frame()
        .map(|f| f.len())
        .unwrap_or(0)
}

fn part1(root: &std::path::Path, cycles: u64) -> Result<(), String> {
    let mut c = ReportBuilder::new(config_for(root));
    c.prime_cpu();
    let m0 = sys::mem_self();
    let (s0, k0, w0) = (sys::cpu_self(), sys::cpu_children(), Instant::now());
    let frame = cycle(&mut c);
    let (s1, k1, w1) = (sys::cpu_self(), sys::cpu_children(), w0.elapsed());
    let m1 = sys::mem_self();
    let report = c.collect();
    println!(
        "one cycle: {} stations, {} leases, {} WireGuard interfaces, {} OpenVPN instances, {} interfaces -> {frame} byte frame",
        report.stations.len(),
        report.leases.len(),
        report.wireguard.len(),
        report.openvpn.len(),
        report.interfaces.len()
    );
    println!(
        "  wall {}, CPU in the agent {}, CPU in the tools it ran (iw x3, wg, df: shell scripts here) {}",
        ms(w1),
        ms(s1 - s0),
        ms(k1 - k0)
    );
    println!(
        "  VmRSS {} kB before, {} kB after; VmHWM {} kB",
        m0.rss_kb, m1.rss_kb, m1.hwm_kb
    );
    drop(report);

    if cycles == 0 {
        return Ok(());
    }
    println!();
    println!("{cycles} cycles:");
    let (s0, k0, w0) = (sys::cpu_self(), sys::cpu_children(), Instant::now());
    let checkpoints = 10u64;
    let mut rss = Vec::new();
    let mut bytes = 0usize;
    for i in 1..=cycles {
        bytes += cycle(&mut c);
        if i % (cycles / checkpoints).max(1) == 0 {
            let m = sys::mem_self();
            rss.push((i, m.rss_kb));
        }
    }
    let (s1, k1, wall) = (sys::cpu_self(), sys::cpu_children(), w0.elapsed());
    let m = sys::mem_self();
    let per = |d: Duration| d / cycles.max(1) as u32;
    println!(
        "  wall {:.1} s; per cycle: wall {}, agent CPU {}, tools CPU {}",
        wall.as_secs_f64(),
        ms(per(wall)),
        ms(per(s1 - s0)),
        ms(per(k1 - k0))
    );
    println!(
        "  frames: {} bytes on average",
        bytes / cycles.max(1) as usize
    );
    let line: Vec<String> = rss.iter().map(|(i, kb)| format!("{i}:{kb}")).collect();
    println!("  VmRSS kB at cycle: {}", line.join(" "));
    let first = rss.first().map(|r| r.1).unwrap_or(0);
    let last = rss.last().map(|r| r.1).unwrap_or(0);
    println!(
        "  steady VmRSS {} kB (growth {} kB from cycle {} to {cycles}); VmHWM {} kB",
        m.rss_kb,
        last as i64 - first as i64,
        rss.first().map(|r| r.0).unwrap_or(0),
        m.hwm_kb
    );
    println!("  (this benchmark binary also links the collector and test harness; the agent's own figure is part 2)");
    Ok(())
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn part2(
    dir: &std::path::Path,
    router: &FakeRouter,
    agent_bin: PathBuf,
    collector: PathBuf,
    secs: u64,
) -> Result<(), String> {
    if !agent_bin.exists() {
        return Err(format!(
            "{} is missing: build it (see BENCHMARKS.md) or pass --agent-bin",
            agent_bin.display()
        ));
    }
    let col = CollectorProc::start(&collector, &dir.join("collector/data"), "", "warn")
        .map_err(|e| e.to_string())?;
    let token = col.token("bench-agent", 1).map_err(|e| e.to_string())?;
    let identity = dir.join("identity");
    let base = |c: &mut Command| {
        c.args(["--config", "/dev/null"])
            .args(router.agent_args())
            .arg("--config-dir")
            .arg(&identity);
    };
    let mut enroll = Command::new(&agent_bin);
    base(&mut enroll);
    let out = enroll
        .args([
            "--collector",
            &col.ingest.to_string(),
            "--token",
            &token,
            "enroll",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut run = Command::new(&agent_bin);
    base(&mut run);
    let mut child = run
        .args([
            "--collector",
            &col.ingest.to_string(),
            "--interval",
            "100ms",
            "--initial-delay",
            "0",
            "run",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().to_string();
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(secs)));
        if let Ok(m) = sys::mem_of(&pid) {
            samples.push((start.elapsed().as_secs(), m));
        }
    }
    let cpu = sys::cpu_of(child.id()).unwrap_or_default();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    let stored = {
        let db = rusqlite::Connection::open(col.data_dir.join("routerstats.db"))
            .map_err(|e| e.to_string())?;
        db.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())?
    };
    println!();
    println!(
        "the real agent binary ({}), `run` at a 100 ms interval for {secs} s against a real collector:",
        agent_bin.display()
    );
    println!(
        "  {stored} reports stored; agent CPU {} in all ({} per stored report)",
        ms(cpu),
        ms(cpu / stored.max(1) as u32)
    );
    let line: Vec<String> = samples
        .iter()
        .map(|(t, m)| format!("{t}s:{}", m.rss_kb))
        .collect();
    println!("  VmRSS kB over time: {}", line.join(" "));
    if let (Some(first), Some(last)) = (samples.get(samples.len() / 4), samples.last()) {
        println!(
            "  steady VmRSS {} kB (change {} kB since {} s); VmHWM {} kB; target <= 4096 kB: {}",
            last.1.rss_kb,
            last.1.rss_kb as i64 - first.1.rss_kb as i64,
            first.0,
            last.1.hwm_kb,
            if last.1.rss_kb <= 4096 {
                "met"
            } else {
                "missed on this build"
            }
        );
    }
    Ok(())
}

const USAGE: &str =
    "bench-agent-cycle: CPU time and memory of the agent's collection cycle (see BENCHMARKS.md).

Usage: bench-agent-cycle [--cycles N] [--run-secs S] [--agent-bin PATH] [--collector-bin PATH]
  --cycles N           in-process cycles after the first (default 10000)
  --run-secs S         run the real agent binary for S seconds (default 20; 0 skips it)
  --agent-bin PATH     agent binary (default: routerstats-agent next to this one)
  --collector-bin PATH collector binary (default: routerstats-collector next to this one)
  -h, --help           print this help";

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let f = flags(USAGE).map_err(|e| e.to_string())?;
        let cycles: u64 = flag(&f, "cycles", 10_000)?;
        let run_secs: u64 = flag(&f, "run-secs", 20)?;
        let agent_bin: PathBuf = flag(&f, "agent-bin", sibling("routerstats-agent"))?;
        let collector_flag: Option<PathBuf> = f
            .iter()
            .find(|(n, _)| n == "collector-bin")
            .map(|(_, v)| PathBuf::from(v));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let router = FakeRouter::create(&dir.path().join("root"), "bench-router")
            .map_err(|e| e.to_string())?;
        RouterText::generate(Shape::REALISTIC, 1)
            .write_root(&router.root)
            .map_err(|e| e.to_string())?;
        println!(
            "machine: {} cores; agent library built for {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            std::env::consts::ARCH
        );
        part1(&router.root, cycles)?;
        if run_secs > 0 {
            let collector = collector_bin(collector_flag).map_err(|e| e.to_string())?;
            part2(dir.path(), &router, agent_bin, collector, run_secs)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
