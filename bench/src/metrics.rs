//! Size and time of `GET /metrics` and of a remote-write snapshot on a stored fleet (the
//! database `bench-storage --dir D` leaves behind): the default scrape, each option and
//! selector, the gzip the route negotiates, and the snapshot the remote-write output pushes.
//!
//! Every figure is computed in this process with the collector's own code
//! (`routerstats_collector::prometheus::render_selected`, `remote_write::snapshot`), not
//! over HTTP and not from the response cache: it is the work one uncached scrape costs. Wall and
//! CPU time are both printed, with the load average, since wall time on a loaded machine says
//! little.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use routerstats_collector::prometheus::{render_selected, MetricsQuery};
use routerstats_collector::remote_write::{snapshot, wire, RemoteWriteConfig};
use rusqlite::Connection;

use crate::sys::cpu_self;

/// The scrapes measured: a label and the query string of `GET /metrics` (collector defaults).
pub const SCRAPES: &[(&str, &str)] = &[
    ("default (no per-station series)", ""),
    ("?stations=true (every family)", "stations=true"),
    (
        "?families=routerstats_router_ (per router only)",
        "families=routerstats_router_",
    ),
    (
        "?exclude=wireguard_ (no exporter copies)",
        "exclude=wireguard_",
    ),
    ("?shard=0/4 (a quarter of the fleet)", "shard=0/4"),
    ("?shard=0/4&stations=true", "shard=0/4&stations=true"),
    (
        "?families=routerstats_station_&shard=0/4",
        "families=routerstats_station_&shard=0/4",
    ),
    (
        "?router=<one router>&stations=true",
        "router={first}&stations=true",
    ),
];

/// One measured scrape or snapshot.
#[derive(Debug, Clone)]
pub struct Figure {
    pub what: String,
    pub series: usize,
    pub bytes: usize,
    /// gzip level 1 (what the route's compression layer uses) of the body; 0 when not measured.
    pub gzip_bytes: usize,
    pub wall: Duration,
    pub cpu: Duration,
    pub gzip_cpu: Duration,
}

/// The 1-minute load average (NaN when /proc is not readable).
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Parses `k=v&k=v` into the route's query (no percent-decoding: the benchmark's own strings).
pub fn query(qs: &str) -> MetricsQuery {
    let mut q = MetricsQuery {
        families: None,
        exclude: None,
        stations: None,
        shard: None,
        router: None,
        site: None,
    };
    for (k, v) in qs.split('&').filter_map(|p| p.split_once('=')) {
        let v = Some(v.to_string());
        match k {
            "families" => q.families = v,
            "exclude" => q.exclude = v,
            "stations" => q.stations = v,
            "shard" => q.shard = v,
            "router" => q.router = v,
            "site" => q.site = v,
            _ => {}
        }
    }
    q
}

fn gzip(body: &[u8]) -> (usize, Duration) {
    let c = cpu_self();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let out = e.write_all(body).and_then(|_| e.finish()).map(|v| v.len());
    (out.unwrap_or(0), cpu_self().saturating_sub(c))
}

/// Measures one scrape with query string `qs` at `now_ms`.
pub fn scrape(conn: &Connection, what: &str, qs: &str, now_ms: i64) -> Result<Figure, String> {
    let (filter, select) = query(qs).resolve(false)?;
    let (t, c) = (Instant::now(), cpu_self());
    let text = render_selected(conn, now_ms, &filter, &select).map_err(|e| e.message)?;
    let (wall, cpu) = (t.elapsed(), cpu_self().saturating_sub(c));
    let (gzip_bytes, gzip_cpu) = gzip(text.as_bytes());
    Ok(Figure {
        what: format!("/metrics {what}"),
        series: text.lines().filter(|l| !l.starts_with('#')).count(),
        bytes: text.len(),
        gzip_bytes,
        wall,
        cpu,
        gzip_cpu,
    })
}

/// Measures one remote-write snapshot (computed, parsed, cut in batches and encoded as the
/// output sends them: protobuf + snappy).
pub fn remote_write(
    conn: &Connection,
    what: &str,
    cfg: &RemoteWriteConfig,
    now_ms: i64,
) -> Result<Figure, String> {
    let (t, c) = (Instant::now(), cpu_self());
    let series = snapshot(conn, cfg, now_ms)?;
    let bytes: usize = series
        .chunks(cfg.batch_samples)
        .map(|b| wire::encode(b.to_vec()).len())
        .sum();
    Ok(Figure {
        what: format!(
            "remote-write snapshot, {what} ({} samples per request)",
            cfg.batch_samples
        ),
        series: series.len(),
        bytes,
        gzip_bytes: 0,
        wall: t.elapsed(),
        cpu: cpu_self().saturating_sub(c),
        gzip_cpu: Duration::ZERO,
    })
}

/// Every scrape of [`SCRAPES`] and two remote-write snapshots on the database at `db`,
/// printed as they finish (with the load average) and returned.
pub fn run(db: &Path) -> Result<Vec<Figure>, String> {
    // The `<table>_all` virtual tables (`reports_all`, ...) on this connection, as the
    // collector's own connections have them.
    routerstats_collector::store::install_raw_tables();
    let conn = Connection::open(db).map_err(|e| format!("{}: {e}", db.display()))?;
    let (now, routers, first): (i64, i64, String) = conn
        .query_row(
            "SELECT coalesce(max(last_report_ms), 0), count(*), coalesce(min(name), '') FROM routers",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(|e| e.to_string())?;
    println!(
        "/metrics on {routers} routers ({}), load average {:.1} at start",
        db.display(),
        load1()
    );
    // A first pass warms SQLite's page cache, as the scrapes of a running collector find it.
    scrape(&conn, "warm-up", "stations=true", now)?;
    let mut out = Vec::new();
    for (what, qs) in SCRAPES {
        let qs = qs.replace("{first}", &first);
        let f = scrape(&conn, what, &qs, now)?;
        print_figure(&f);
        out.push(f);
    }
    for (what, cfg) in [
        (
            "every family (the output's default)",
            RemoteWriteConfig::default(),
        ),
        (
            "exclude = [\"routerstats_station_\"]",
            RemoteWriteConfig {
                exclude: vec!["routerstats_station_".into()],
                ..RemoteWriteConfig::default()
            },
        ),
    ] {
        let f = remote_write(&conn, what, &cfg, now)?;
        print_figure(&f);
        out.push(f);
    }
    Ok(out)
}

/// One line per figure.
pub fn print_figure(f: &Figure) {
    let gz = if f.gzip_bytes > 0 {
        format!(
            ", gzip -1 {} bytes in {:.0} ms CPU",
            f.gzip_bytes,
            f.gzip_cpu.as_secs_f64() * 1e3
        )
    } else {
        String::new()
    };
    println!(
        "{}: {} series, {} bytes{gz}; {:.0} ms wall, {:.0} ms CPU (load {:.1})",
        f.what,
        f.series,
        f.bytes,
        f.wall.as_secs_f64() * 1e3,
        f.cpu.as_secs_f64() * 1e3,
        load1()
    );
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's query strings are valid queries of the route.
    #[test]
    fn every_scrape_query_is_accepted() {
        for (what, qs) in SCRAPES {
            let qs = qs.replace("{first}", "bench-00000");
            assert!(query(&qs).resolve(false).is_ok(), "{what}: {qs}");
        }
        assert_eq!(
            query("stations=true&shard=0/4").shard.as_deref(),
            Some("0/4")
        );
    }

    /// On a small stored fleet the default scrape is smaller than the full one and the figures
    /// add up (series counted, bytes measured, gzip smaller).
    #[test]
    fn figures_on_a_small_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("storage.db");
        crate::storage::run(&db, 3, 2, false).unwrap();
        let figs = run(&db).unwrap();
        assert_eq!(figs.len(), SCRAPES.len() + 2);
        let (default, all) = (&figs[0], &figs[1]);
        assert!(
            default.series > 0 && default.series < all.series,
            "{figs:?}"
        );
        assert!(default.gzip_bytes > 0 && default.gzip_bytes < default.bytes);
        let rw_all = &figs[SCRAPES.len()];
        assert_eq!(rw_all.series, all.series, "the output sends every family");
        assert_eq!(figs[SCRAPES.len() + 1].series, default.series);
    }
}
