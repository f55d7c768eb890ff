//! `fake-router`: builds and advances fake OpenWrt router roots for the demo.
//!
//! `fake-router create ROOT HOSTNAME` builds a root; `fake-router tick ROOT SECS` advances its
//! counters; `fake-router args ROOT` prints the agent flags for it, one per line;
//! `fake-router config ROOT [UCI]` writes the root's agent config file (every action family
//! allowed when a `uci` binary is given) and prints its path.

use std::path::Path;
use std::process::ExitCode;

use routerstats_tests::fake_router::FakeRouter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hostname_of = |root: &str| {
        std::fs::read_to_string(Path::new(root).join("proc/sys/kernel/hostname"))
            .map(|s| s.trim().to_string())
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", root, hostname] => FakeRouter::create(Path::new(root), hostname).map(|_| ()),
        ["tick", root, secs] => match secs.parse::<u64>() {
            Ok(s) => hostname_of(root).and_then(|h| {
                FakeRouter {
                    root: root.into(),
                    hostname: h,
                }
                .tick(s)
            }),
            Err(_) => {
                eprintln!("error: SECS must be a whole number");
                return ExitCode::from(2);
            }
        },
        ["args", root] => hostname_of(root).map(|h| {
            for a in (FakeRouter {
                root: root.into(),
                hostname: h,
            })
            .agent_args()
            {
                println!("{a}");
            }
        }),
        ["config", root, rest @ ..] if rest.len() <= 1 => hostname_of(root).and_then(|h| {
            let r = FakeRouter {
                root: root.into(),
                hostname: h,
            };
            r.write_agent_config(rest.first().map(Path::new))
                .map(|p| println!("{}", p.display()))
        }),
        _ => {
            eprintln!("usage: fake-router create ROOT HOSTNAME | tick ROOT SECS | args ROOT | config ROOT [UCI]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
