//! `routerstats-agent`: command-line front end. Parses flags and calls the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use routerstats_agent::config::{AgentConfig, ConfigError};
use routerstats_agent::{cli_uplink, collect, json, parse_cmd, snapshot};

const USAGE: &str = "\
routerstats-agent: collects OpenWrt router statistics and pushes them to a routerstats collector

Usage: routerstats-agent [OPTIONS] <COMMAND>

Commands:
  snapshot [--json]        Collect once and print the report that would be sent
  parse <KIND> <FILE>      Run one parser on a captured file ('-' for stdin) and print JSON
  enroll --collector HOST:PORT --token-file FILE [--name NAME] [--force]
                           Join the fleet: generate a key, get a certificate from the collector.
                           FILE holds the token (`-`: read it from standard input); or
                           --token TOKEN, which shows the token in the process list
  run                      Collect every interval and push reports to the collector
  version                  Print the agent version

Options (override the `config agent` section of /etc/config/routerstats):
  -c, --config FILE        UCI config file [default: /etc/config/routerstats]
      --collector HOST:PORT
      --config-dir DIR     Key, certificate and CA [default: /etc/routerstats]
      --interval SECS      Seconds between reports, or with s/m/h [default: 30]
      --initial-delay SECS Delay before the first report [default: random, up to the interval]
      --spool-size N       Reports kept while the collector is unreachable [default: 1000]
      --spool-file FILE    Keep the spool in a file across restarts
      --proc-root DIR      [default: /proc]
      --etc-root DIR       board.json, openwrt_release, config/network [default: /etc]
      --iw CMD             [default: iw]
      --wg CMD             [default: wg]
      --df CMD             [default: df]
      --lease-file FILE    dnsmasq lease file, repeatable [default: /tmp/dhcp.leases]
      --openvpn-status PATH  Status file or directory, repeatable [default: /var/run]
      --disk MOUNT         Mount point to report, repeatable [default: /overlay and /]
      --disable SOURCE     wifi, dhcp, wireguard, openvpn, system or interfaces; repeatable
  -h, --help               Print help

Exit codes: 0 success, 1 failure (the message says why), 2 usage error (also a malformed
token or a bad config value), 3 enroll: the collector refused the token (unknown, expired,
already used, or for another CA): a new token is needed.";

/// What the command line asked for.
struct Cli {
    config_file: Option<PathBuf>,
    settings: Vec<(String, String)>,
    lists: Vec<(String, Vec<String>)>,
    command: Vec<String>,
    json: bool,
    token: Option<String>,
    token_file: Option<PathBuf>,
    name: Option<String>,
    force: bool,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, lexopt::Error> {
    use lexopt::prelude::*;
    let mut p =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("routerstats-agent")).chain(args));
    let mut cli = Cli {
        config_file: None,
        settings: Vec::new(),
        lists: Vec::new(),
        command: Vec::new(),
        json: false,
        token: None,
        token_file: None,
        name: None,
        force: false,
    };
    let push_list = |lists: &mut Vec<(String, Vec<String>)>, key: &str, v: String| match lists
        .iter_mut()
        .find(|(k, _)| k == key)
    {
        Some((_, vs)) => vs.push(v),
        None => lists.push((key.to_string(), vec![v])),
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") if cli.command.first().is_some_and(|c| c == "parse") => {
                cli.command.push("--help".into());
            }
            Short('h') | Long("help") => {
                cli.command = vec!["help".into()];
                return Ok(cli);
            }
            Short('c') | Long("config") => cli.config_file = Some(p.value()?.into()),
            Long("json") => cli.json = true,
            Long("force") => cli.force = true,
            Long("token") => cli.token = Some(p.value()?.string()?),
            Long("token-file") => cli.token_file = Some(p.value()?.into()),
            Long("name") => cli.name = Some(p.value()?.string()?),
            Long(
                key @ ("collector" | "config-dir" | "interval" | "initial-delay" | "spool-size"
                | "spool-file" | "proc-root" | "etc-root" | "iw" | "wg" | "df"),
            ) => {
                let key = key.replace('-', "_");
                cli.settings.push((key, p.value()?.string()?));
            }
            Long("lease-file") => push_list(&mut cli.lists, "lease_file", p.value()?.string()?),
            Long("openvpn-status") => {
                push_list(&mut cli.lists, "openvpn_status", p.value()?.string()?)
            }
            Long("disk") => push_list(&mut cli.lists, "disk", p.value()?.string()?),
            Long("disable") => {
                let src = p.value()?.string()?;
                cli.settings.push((src, "0".into()));
            }
            Value(v) => cli.command.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(cli)
}

/// Every command, `version` included, parses the whole configuration first: OpenWrt's runner
/// (`packaging/files/usr/libexec/routerstats-agent-run`) uses `version` as its config check.
fn build_config(cli: &Cli) -> Result<AgentConfig, ConfigError> {
    let mut cfg = AgentConfig::load(cli.config_file.as_deref())?;
    for (k, v) in &cli.settings {
        cfg.set(k, v)?;
    }
    for (k, vs) in &cli.lists {
        cfg.set_list(k, vs.clone())?;
    }
    Ok(cfg)
}

/// Prints to stdout; a reader that went away (`| head`) ends the output quietly instead of a panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|_| stdout.flush());
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}\n\nRun `routerstats-agent --help` for usage.");
    ExitCode::from(2)
}

fn failure(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = match parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let command: Vec<&str> = cli.command.iter().map(String::as_str).collect();
    if let ["help"] | [] = command.as_slice() {
        out(USAGE);
        return if command.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let cfg = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    match command.as_slice() {
        ["version"] => {
            out(&format!("routerstats-agent {}", collect::AGENT_VERSION));
            ExitCode::SUCCESS
        }
        ["snapshot"] => {
            let report = snapshot::take(cfg);
            match snapshot::render(&report, cli.json) {
                Ok(text) => {
                    out(&text);
                    ExitCode::SUCCESS
                }
                Err(e) => failure(e),
            }
        }
        ["parse", "--help"] | ["parse"] => {
            let mut help = String::from("Usage: routerstats-agent parse <KIND> <FILE>\n\nKinds:");
            for (k, d) in parse_cmd::KINDS {
                help.push_str(&format!("\n  {k:<16} {d}"));
            }
            out(&help);
            if command.len() == 1 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        ["parse", kind, _] if !parse_cmd::KINDS.iter().any(|(k, _)| k == kind) => {
            usage_error(parse_cmd::ParseCmdError::UnknownKind(kind.to_string()))
        }
        ["parse", kind, file] => {
            let text = if *file == "-" {
                let mut buf = Vec::new();
                if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
                    return failure(format!("cannot read standard input: {e}"));
                }
                String::from_utf8_lossy(&buf).into_owned()
            } else {
                match std::fs::read(file) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(e) => return failure(format!("cannot read {file}: {e}")),
                }
            };
            match parse_cmd::parse_text(kind, &text, file) {
                Ok(v) => {
                    out(&json::to_string_pretty(&v));
                    ExitCode::SUCCESS
                }
                Err(e @ parse_cmd::ParseCmdError::UnknownKind(_)) => usage_error(e),
                Err(e) => failure(e),
            }
        }
        ["enroll"] => match cli_uplink::token_argument(cli.token, cli.token_file.as_deref()) {
            Ok(token) => cli_uplink::enroll(cfg, token, cli.name, cli.force),
            Err(e) => usage_error(e),
        },
        ["run"] => cli_uplink::run(cfg),
        [other, ..] => usage_error(format!("unknown command or arguments: {other:?}")),
        [] => usage_error("no command"),
    }
}
