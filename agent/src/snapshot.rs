//! `routerstats-agent snapshot`: one collection, printed as JSON or as a summary a person reads.

use std::fmt::Write as _;
use std::time::Duration;

use routerstats_shared::{Message, Report, SourceState};

use crate::collect::ReportBuilder;
use crate::config::AgentConfig;

/// How long `snapshot` waits between its two /proc/stat samples to report CPU busy share.
pub const CPU_SAMPLE: Duration = Duration::from_millis(250);

/// Collects one report, sampling /proc/stat twice so CPU busy share is filled in.
pub fn take(cfg: AgentConfig) -> Report {
    let mut c = ReportBuilder::new(cfg);
    c.prime_cpu();
    std::thread::sleep(CPU_SAMPLE);
    let mut r = c.collect();
    r.seq = 1;
    r
}

/// Why a snapshot could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("report does not fit in a frame: {0}")]
    Frame(#[from] routerstats_shared::FrameError),
}

/// Renders a report: pretty JSON, or a summary with the encoded frame size.
pub fn render(report: &Report, json: bool) -> Result<String, RenderError> {
    if json {
        return Ok(serde_json::to_string_pretty(report)?);
    }
    let frame = Message::Report(Box::new(report.clone())).to_request_frame()?;
    let r = &report.router;
    let mut s = String::new();
    let _ = writeln!(s, "router     {} ({})", r.hostname, r.model.as_deref().unwrap_or("unknown model"));
    if let Some(rel) = &r.release {
        let _ = writeln!(s, "release    {}", rel.description.as_deref().or(rel.release.as_deref()).unwrap_or("?"));
    }
    if let Some(sys) = &report.system {
        let _ = writeln!(
            s,
            "system     up {}s, load {:.2} {:.2} {:.2}, cpu {}, mem {}/{} kB available",
            sys.uptime_s,
            sys.load[0],
            sys.load[1],
            sys.load[2],
            sys.cpu_busy_permille.map(|p| format!("{:.1}%", p as f32 / 10.0)).unwrap_or_else(|| "?".into()),
            sys.mem_available_kb,
            sys.mem_total_kb
        );
        for d in &sys.disks {
            let _ = writeln!(s, "disk       {} {}/{} bytes used", d.mount, d.used_bytes, d.total_bytes);
        }
    }
    let peers: usize = report.wireguard.iter().map(|w| w.peers.len()).sum();
    let clients: usize = report.openvpn.iter().map(|o| o.clients.len()).sum();
    let _ = writeln!(
        s,
        "counts     {} interfaces, {} wireless, {} stations, {} leases, {} wireguard peers, {} openvpn clients",
        report.interfaces.len(),
        report.wireless.len(),
        report.stations.len(),
        report.leases.len(),
        peers,
        clients
    );
    for src in &report.sources {
        let name = if src.name.is_empty() { String::new() } else { format!(" {}", src.name) };
        let state = match &src.state {
            SourceState::Ok => "ok".to_string(),
            SourceState::Partial { skipped, first_error } => format!("partial: {skipped} skipped ({first_error})"),
            SourceState::Error(e) => format!("error: {e}"),
            SourceState::ToolMissing(t) => format!("tool missing: {t}"),
            SourceState::Disabled => "disabled".into(),
        };
        let _ = writeln!(s, "source     {}{name}: {state}", src.kind.as_str());
    }
    let _ = write!(s, "frame      {} bytes", frame.len());
    Ok(s)
}
