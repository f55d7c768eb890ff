//! Changing UCI configuration for actions: every change goes through the `uci` CLI (`set`,
//! `add_list`, `delete`, then `commit`), so OpenWrt's own code writes the files; a failed step
//! reverts the uncommitted changes of every config the change touches, so nothing is
//! half-applied. Files are read with the agent's own UCI parser.

use std::path::PathBuf;

use super::tools;
use super::ActionConfig;
use crate::uci::{self, Section};

/// The `-c`/`-t` flags for the configured directories, then `rest`.
fn args<'a>(cfg: &ActionConfig, dirs: &'a (String, String), rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = Vec::new();
    if cfg.uci_confdir.is_some() {
        v.extend(["-c", dirs.0.as_str()]);
    }
    if cfg.uci_savedir.is_some() {
        v.extend(["-t", dirs.1.as_str()]);
    }
    v.extend_from_slice(rest);
    v
}

fn dirs(cfg: &ActionConfig) -> (String, String) {
    let s = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    (s(&cfg.uci_confdir), s(&cfg.uci_savedir))
}

/// Runs `steps` (each a `uci` argument vector), then `uci commit <config>` for every config in
/// `configs`; on a failure runs `uci revert <config>` for each and returns what ran and why it
/// stopped. The returned log lists the commands (no secrets pass through here).
pub fn change(
    cfg: &ActionConfig,
    configs: &[&str],
    steps: &[Vec<String>],
) -> Result<String, String> {
    let dirs = dirs(cfg);
    let mut log = String::new();
    let commits: Vec<Vec<String>> = configs
        .iter()
        .map(|c| vec!["commit".to_string(), c.to_string()])
        .collect();
    for step in steps.iter().chain(commits.iter()) {
        let rest: Vec<&str> = step.iter().map(String::as_str).collect();
        log.push_str("uci ");
        log.push_str(&rest.join(" "));
        log.push('\n');
        if let Err(e) = tools::run(&cfg.uci, &args(cfg, &dirs, &rest)) {
            for c in configs {
                let _ = tools::run(&cfg.uci, &args(cfg, &dirs, &["revert", c]));
            }
            return Err(format!("{log}{e}; uncommitted changes reverted"));
        }
    }
    Ok(log)
}

/// The sections of `/etc/config/<name>` (or of `uci_confdir`).
pub fn read(cfg: &ActionConfig, name: &str) -> Result<Vec<Section>, String> {
    let path = cfg.config_file(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let parsed = uci::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parsed.value)
}

/// The `uci` reference of `sections[i]`: `<config>.<name>`, or `<config>.@<type>[n]` for an
/// anonymous section (n counts the sections of its type before it).
pub fn reference(config: &str, sections: &[Section], i: usize) -> String {
    let s = &sections[i];
    match &s.name {
        Some(n) => format!("{config}.{n}"),
        None => {
            let n = sections[..i].iter().filter(|x| x.kind == s.kind).count();
            format!("{config}.@{}[{n}]", s.kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_named_and_anonymous_sections() {
        let secs = uci::parse("config device\n\toption name 'a'\n\nconfig interface 'lan'\n\nconfig device\n\toption name 'b'\n")
            .unwrap()
            .value;
        assert_eq!(reference("network", &secs, 0), "network.@device[0]");
        assert_eq!(reference("network", &secs, 1), "network.lan");
        assert_eq!(reference("network", &secs, 2), "network.@device[1]");
    }
}
