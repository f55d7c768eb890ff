//! `bench-agent-size`: bytes per encoded report for a realistic router, next to the bytes of
//! the same data as the shell CGI scripts print it and as JSON.
//!
//! It also prints the steady state: the same router 30 s later (counters grown, see
//! [`steady_state_later`]) sent as a `ReportPatch` of its payload against the previous one, as
//! the agent does on a connection after its first report.
//!
//! Flags: `--seed N` (default 1) varies the generated numbers.

use std::process::ExitCode;

use routerstats_bench::gen::{steady_state_later, RouterText, Shape};
use routerstats_bench::{flag, flags};
use routerstats_shared::frame::HEADER_LEN;
use routerstats_shared::{codec, patch, Message, Report, MAX_FRAME_LEN};

fn frame_len(r: &Report) -> usize {
    Message::Report(Box::new(r.clone()))
        .to_frame()
        .map(|f| f.len())
        .unwrap_or(0)
}

fn json_len(r: &Report) -> usize {
    serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0)
}

/// Bytes of `data` after `gzip -9` (None when gzip is not installed).
fn gzip_len(data: &[u8]) -> Option<usize> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout.len())
}

fn pct(a: usize, b: usize) -> String {
    format!("{:.1}%", a as f64 * 100.0 / b.max(1) as f64)
}

const USAGE: &str = "bench-agent-size: bytes per encoded report against the CGI scripts and JSON (see BENCHMARKS.md).

Usage: bench-agent-size [--seed N]
  --seed N     varies the generated numbers (default 1)
  -h, --help   print this help";

fn main() -> ExitCode {
    let f = match flags(USAGE) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let seed: u64 = match flag(&f, "seed", 1) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let shape = Shape::REALISTIC;
    let text = RouterText::generate(shape, seed);
    let report = match text.parse_report() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };

    println!(
        "realistic router: {} stations over {} SSIDs, {} leases, {} WireGuard peers, {} OpenVPN clients, {} interfaces",
        report.stations.len(),
        report
            .wireless
            .iter()
            .filter_map(|w| w.ssid.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        report.leases.len(),
        report.wireguard.iter().map(|w| w.peers.len()).sum::<usize>(),
        report.openvpn.iter().map(|o| o.clients.len()).sum::<usize>(),
        report.interfaces.len()
    );
    println!();
    println!("input text the agent parses (bytes)");
    let dumps: usize = text.station_dumps.iter().map(|d| d.2.len()).sum();
    let inputs = [
        ("iw dev", text.iw_dev.len()),
        ("station dumps", dumps),
        ("dhcp.leases", text.leases.len()),
        ("wg show all dump", text.wg_dump.len()),
        ("openvpn status", text.openvpn_status.len()),
        ("/proc/net/dev", text.net_dev.len()),
        (
            "/proc + /etc + df",
            text.proc_uptime.len()
                + text.meminfo.len()
                + text.stat.len()
                + text.loadavg.len()
                + text.board_json.len()
                + text.openwrt_release.len()
                + text.df.len(),
        ),
    ];
    for (name, n) in inputs {
        println!("  {name:<22} {n:>7}");
    }
    println!(
        "  {:<22} {:>7}",
        "total",
        inputs.iter().map(|i| i.1).sum::<usize>()
    );

    let (info, dhcp) = text.cgi_output();
    let cgi = info.len() + dhcp.len();
    let frame = frame_len(&report);
    let json = json_len(&report);
    let subset = RouterText::cgi_equivalent(&report);
    let sub_frame = frame_len(&subset);
    let sub_json = json_len(&subset);

    // Marginal cost of one station: the same router with and without its stations.
    let no_sta = Report {
        stations: Vec::new(),
        ..report.clone()
    };
    let per_station = (frame - frame_len(&no_sta)) as f64 / report.stations.len().max(1) as f64;
    let per_station_json = (json - json_len(&no_sta)) as f64 / report.stations.len().max(1) as f64;

    println!();
    println!(
        "the CGI scripts (info.cgi: iw dev + station dumps + uptime; dhcp.cgi: cat dhcp.leases)"
    );
    println!("  info.cgi body          {:>7}", info.len());
    println!("  dhcp.cgi body          {:>7}", dhcp.len());
    println!("  total                  {cgi:>7}   (100%)");
    println!();
    println!("routerstats report (bincode frame, 8-byte header included)");
    println!(
        "  full report            {frame:>7}   {} of the CGI bytes   (target <= 10%: {})",
        pct(frame, cgi),
        if frame * 10 <= cgi { "met" } else { "MISSED" }
    );
    println!(
        "  same data as the CGI   {sub_frame:>7}   {} of the CGI bytes",
        pct(sub_frame, cgi)
    );
    println!("  per station            {per_station:>7.1}");
    let payload = |r: &Report| {
        Message::Report(Box::new(r.clone()))
            .encode_payload()
            .unwrap_or_default()
    };
    let later = steady_state_later(&report, 30, seed);
    let (p1, p2) = (payload(&report), payload(&later));
    let started = std::time::Instant::now();
    let diff = patch::encode(&p1, &p2);
    let took = started.elapsed();
    let ok = patch::apply(&p1, &diff, MAX_FRAME_LEN).is_ok_and(|back| back == p2);
    let patch_frame = HEADER_LEN + diff.len();
    println!();
    println!("steady state: the next report 30 s later on the same connection (counters grown)");
    println!(
        "  full report frame      {:>7}   {} of the CGI bytes",
        HEADER_LEN + p2.len(),
        pct(HEADER_LEN + p2.len(), cgi)
    );
    println!(
        "  ReportPatch frame      {patch_frame:>7}   {} of the CGI bytes   (target <= 10%: {}; {} of the full frame; encoded in {:.2} ms; applies back: {ok})",
        pct(patch_frame, cgi),
        if patch_frame * 10 <= cgi { "met" } else { "MISSED" },
        pct(patch_frame, HEADER_LEN + p2.len()),
        took.as_secs_f64() * 1000.0
    );
    let prefix = p1.iter().zip(&p2).take_while(|(a, b)| a == b).count();
    let suffix = p1[prefix..]
        .iter()
        .rev()
        .zip(p2[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let middle = p2.len() - prefix - suffix;
    let changed = if p1.len() == p2.len() {
        format!(
            "{} bytes differ",
            p1.iter().zip(&p2).filter(|(a, b)| a != b).count()
        )
    } else {
        format!(
            "lengths differ ({} -> {}): no byte-for-byte XOR",
            p1.len(),
            p2.len()
        )
    };
    println!(
        "  for comparison: common prefix/suffix only would send {middle} bytes of {}; {changed}",
        p2.len()
    );
    println!();
    println!("where the frame's bytes go (bincode, varint integers)");
    let enc = |len: Result<Vec<u8>, routerstats_shared::codec::CodecError>| {
        len.map(|v| v.len()).unwrap_or(0)
    };
    let sections = [
        ("stations", enc(codec::encode(&report.stations))),
        ("leases", enc(codec::encode(&report.leases))),
        ("wireguard", enc(codec::encode(&report.wireguard))),
        ("openvpn", enc(codec::encode(&report.openvpn))),
        ("interfaces", enc(codec::encode(&report.interfaces))),
        ("wireless (iw dev)", enc(codec::encode(&report.wireless))),
        ("source statuses", enc(codec::encode(&report.sources))),
        ("router facts", enc(codec::encode(&report.router))),
        ("system", enc(codec::encode(&report.system))),
    ];
    for (name, n) in sections {
        println!("  {name:<22} {n:>7}   {}", pct(n, frame));
    }
    if let Some(one) = report.stations.first() {
        let f = |v: Result<Vec<u8>, routerstats_shared::codec::CodecError>| enc(v);
        println!(
            "  one station: {} bytes = MAC 6 + interface name {} + link stats {} + times/flags/links {}",
            f(codec::encode(one)),
            f(codec::encode(&one.interface)),
            f(codec::encode(&one.stats)),
            f(codec::encode(one)).saturating_sub(6 + f(codec::encode(&one.interface)) + f(codec::encode(&one.stats)))
        );
    }
    if let Some(gz) = gzip_len(
        &Message::Report(Box::new(report.clone()))
            .to_frame()
            .unwrap_or_default(),
    ) {
        println!("  the frame through `gzip -9` (not done by the agent; an estimate of what compression would give): {gz} bytes, {} of the CGI bytes", pct(gz, cgi));
    }
    if let Some(gz) = gzip_len((info.clone() + &dhcp).as_bytes()) {
        println!("  the CGI bodies through `gzip -9`, for comparison: {gz} bytes");
    }
    println!();
    println!("the same report as JSON (serde_json, compact)");
    println!(
        "  full report            {json:>7}   {} of the CGI bytes; the frame is {} of it",
        pct(json, cgi),
        pct(frame, json)
    );
    println!(
        "  same data as the CGI   {sub_json:>7}   {} of the CGI bytes",
        pct(sub_json, cgi)
    );
    println!("  per station            {per_station_json:>7.1}");
    println!();
    println!("note: the full report also carries WireGuard, OpenVPN, interface counters, memory, load, disk and");
    println!(
        "per-source status, none of which the CGI scripts send. TLS 1.3 adds 22 bytes per record."
    );
    ExitCode::SUCCESS
}
