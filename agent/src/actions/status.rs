//! The status action: the router's system state read now (uptime, OpenWrt release, CPU busy over
//! a quarter second, memory), with the agent's own parsers. A source that cannot be read is
//! `None` and named in the output; the action itself always succeeds.

use std::time::Duration;

use routerstats_shared::action::ActionDetail;

use super::ActionConfig;
use crate::sources::{meminfo, openwrt_release, proc_stat, uptime};

fn take<T>(missing: &mut Vec<String>, name: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            missing.push(format!("{name}: {e}"));
            None
        }
    }
}

/// Reads the state; the output lists the sources that could not be read.
pub fn read(cfg: &ActionConfig) -> (String, Option<ActionDetail>) {
    let mut missing = Vec::new();
    let proc = |rel: &str| cfg.proc_root.join(rel);
    let uptime_s = take(
        &mut missing,
        "uptime",
        uptime::read(&proc("uptime"))
            .map(|p| p.value)
            .map_err(|e| e.to_string()),
    );
    let release = take(
        &mut missing,
        "openwrt_release",
        openwrt_release::read(&cfg.etc_root.join("openwrt_release"))
            .map(|p| p.value.release)
            .map_err(|e| e.to_string()),
    )
    .flatten();
    let mem = take(
        &mut missing,
        "meminfo",
        meminfo::read(&proc("meminfo"))
            .map(|p| p.value)
            .map_err(|e| e.to_string()),
    );
    let cpu = take(
        &mut missing,
        "stat",
        proc_stat::read(&proc("stat"))
            .and_then(|a| {
                std::thread::sleep(Duration::from_millis(250));
                proc_stat::read(&proc("stat")).map(|b| proc_stat::busy_permille(&a.value, &b.value))
            })
            .map_err(|e| e.to_string()),
    )
    .flatten();
    let output = if missing.is_empty() {
        "status read\n".to_string()
    } else {
        format!("not read: {}\n", missing.join("; "))
    };
    let detail = ActionDetail::Status {
        uptime_s,
        release,
        cpu_permille: cpu,
        mem_total_kb: mem.as_ref().map(|m| m.total_kb),
        mem_available_kb: mem.as_ref().map(|m| m.available_kb),
    };
    (output, Some(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_root_and_names_what_is_missing() {
        let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let dir = tempfile::tempdir().unwrap();
        for f in ["uptime", "meminfo", "stat"] {
            std::fs::copy(fx.join("proc").join(f), dir.path().join(f)).unwrap();
        }
        let mut cfg = super::super::tests_cfg(dir.path());
        cfg.proc_root = dir.path().to_path_buf();
        cfg.etc_root = dir.path().join("no-etc");
        let (out, detail) = read(&cfg);
        let Some(ActionDetail::Status {
            uptime_s,
            release,
            mem_total_kb,
            ..
        }) = detail
        else {
            panic!()
        };
        assert!(uptime_s.is_some_and(|u| u > 0) && mem_total_kb.is_some_and(|m| m > 0));
        assert!(release.is_none());
        assert!(out.contains("openwrt_release"), "{out}");
    }
}
