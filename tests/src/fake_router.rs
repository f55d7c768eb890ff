//! A fake OpenWrt router root built from the project's own fixtures (`agent/fixtures`), for the
//! end-to-end tests and the demo.
//!
//! The root holds /proc and /etc files, a dnsmasq lease file, OpenVPN status files, and `iw`,
//! `wg` and `df` commands as shell scripts that print captured output. [`FakeRouter::tick`]
//! advances the traffic counters (interfaces, stations, WireGuard peers, uptime, CPU) so that
//! rates and charts have something to show.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The project's own fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/fixtures")
}

/// A fake router root on disk.
#[derive(Debug, Clone)]
pub struct FakeRouter {
    pub root: PathBuf,
    pub hostname: String,
}

fn copy(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to).map(|_| ()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("copy {} -> {}: {e}", from.display(), to.display()),
        )
    })
}

fn write_script(path: &Path, body: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, body)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// A small deterministic number from a name, so routers differ but runs repeat.
fn seed(name: &str) -> u64 {
    name.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    }) % 7
        + 1
}

impl FakeRouter {
    /// Builds a fake root at `root` for a router called `hostname`.
    pub fn create(root: &Path, hostname: &str) -> io::Result<FakeRouter> {
        let fx = fixtures_dir();
        let r = FakeRouter {
            root: root.to_path_buf(),
            hostname: hostname.to_string(),
        };
        for d in [
            "proc/net",
            "proc/sys/kernel",
            "etc/config",
            "tmp",
            "var/run/openvpn",
            "bin",
            "data/iw",
            "data/wg",
        ] {
            fs::create_dir_all(root.join(d))?;
        }
        for f in ["meminfo", "stat", "loadavg", "uptime"] {
            copy(&fx.join("proc").join(f), &root.join("proc").join(f))?;
        }
        copy(&fx.join("proc/net-dev"), &root.join("proc/net/dev"))?;
        // The default route leaves by the PPPoE link of net/dev, with no gateway address (as a
        // point-to-point route is listed): its peer would be the probe target, but this machine
        // has no `pppoe-wan`, so the agent's probes send nothing and its WAN list stays empty.
        fs::write(
            root.join("proc/net/route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             pppoe-wan\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
        )?;
        fs::write(
            root.join("proc/sys/kernel/hostname"),
            format!("{hostname}\n"),
        )?;
        fs::write(root.join("proc/sys/kernel/osrelease"), "5.15.150\n")?;
        copy(&fx.join("etc/board.json"), &root.join("etc/board.json"))?;
        copy(
            &fx.join("etc/openwrt_release"),
            &root.join("etc/openwrt_release"),
        )?;
        copy(&fx.join("uci/network"), &root.join("etc/config/network"))?;
        copy(&fx.join("dhcp/dhcp.leases"), &root.join("tmp/dhcp.leases"))?;
        // A server instance and a client instance, as a router running both would have.
        for f in ["server.status", "client.status"] {
            copy(
                &fx.join("openvpn").join(f),
                &root.join("var/run/openvpn").join(f),
            )?;
        }
        for entry in fs::read_dir(fx.join("iw"))? {
            let p = entry?.path();
            if p.is_file() {
                copy(
                    &p,
                    &root.join("data/iw").join(p.file_name().unwrap_or_default()),
                )?;
            }
        }
        copy(
            &fx.join("wg/wg-show-all-dump.txt"),
            &root.join("data/wg/dump.txt"),
        )?;
        write_script(
            &root.join("bin/iw"),
            "#!/bin/sh\nd=\"$(dirname \"$0\")/../data/iw\"\ncase \"$*\" in\n  dev) exec cat \"$d/iw-dev.txt\" ;;\n  \"dev \"*\" station dump\") set -- $*; f=\"$d/station-dump-$2.txt\"; [ -f \"$f\" ] && exec cat \"$f\"; exit 0 ;;\n  *) echo \"fake iw: unsupported: $*\" >&2; exit 1 ;;\nesac\n",
        )?;
        // `wg`: the dump, plus what the WireGuard actions run (`show <if> public-key|listen-port`,
        // `set <if> peer K allowed-ips A` / `... remove`, which keep the dump in step); every
        // call is appended to data/wg/calls.log.
        write_script(
            &root.join("bin/wg"),
            "#!/bin/sh\nd=\"$(dirname \"$0\")/../data/wg\"\necho \"$*\" >> \"$d/calls.log\"\ncase \"$*\" in\n  \"show all dump\") exec cat \"$d/dump.txt\" ;;\n  \"show \"*\" public-key\") awk -v i=\"$2\" 'NF == 5 && $1 == i { print $3; exit }' \"$d/dump.txt\" ;;\n  \"show \"*\" listen-port\") awk -v i=\"$2\" 'NF == 5 && $1 == i { print $4; exit }' \"$d/dump.txt\" ;;\n  \"set \"*\" peer \"*\" allowed-ips \"*) printf '%s\\t%s\\t(none)\\t(none)\\t%s\\t0\\t0\\t0\\toff\\n' \"$2\" \"$4\" \"$6\" >> \"$d/dump.txt\" ;;\n  \"set \"*\" peer \"*\" remove\") grep -v -F \"$4\" \"$d/dump.txt\" > \"$d/dump.new\"; mv \"$d/dump.new\" \"$d/dump.txt\" ;;\n  *) echo \"fake wg: unsupported: $*\" >&2; exit 1 ;;\nesac\n",
        )?;
        // `sysupgrade -b FILE`: an archive of the root's etc/config (and etc/openvpn when there
        // is one: the openvpn package lists it for backups), as OpenWrt's would hold.
        write_script(
            &root.join("bin/sysupgrade"),
            "#!/bin/sh\n[ \"$1\" = -b ] && [ -n \"$2\" ] || { echo \"fake sysupgrade: unsupported: $*\" >&2; exit 1; }\ncd \"$(dirname \"$0\")/..\" || exit 1\nif [ -d etc/openvpn ]; then exec tar -czf \"$2\" etc/config etc/openvpn; fi\nexec tar -czf \"$2\" etc/config\n",
        )?;
        // `ifup`: records the interfaces it was asked to restart in data/ifup.log.
        write_script(
            &root.join("bin/ifup"),
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/../data/ifup.log\"\n",
        )?;
        // `tc` and `nft` (limits, anti-sharing): stand-ins that record their arguments (and the
        // script `nft -f` reads) in data/tc.log and data/nft.log; tests/tests/limits.rs runs the
        // real ones in a network namespace instead.
        write_script(
            &root.join("bin/tc"),
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/../data/tc.log\"\n",
        )?;
        write_script(
            &root.join("bin/nft"),
            "#!/bin/sh\nlog=\"$(dirname \"$0\")/../data/nft.log\"\necho \"$*\" >> \"$log\"\n[ \"$1\" = -f ] && cat \"$2\" >> \"$log\"\nexit 0\n",
        )?;
        r.add_isp_packages()?;
        write_script(
            &root.join("bin/df"),
            "#!/bin/sh\necho 'Filesystem           1K-blocks      Used Available Use% Mounted on'\necho '/dev/root                 4352      4352         0 100% /rom'\necho 'overlayfs:/overlay      102400     23120     79280  23% /'\necho '/dev/mtdblock6          102400     23120     79280  23% /overlay'\n",
        )?;
        Ok(r)
    }

    /// What the ISP action families need: UCI `dhcp`, openNDS's `opennds` and rp-pppoe-server's
    /// `pppoe` configs, pppd's secrets files (with the comment lines OpenWrt ships), and the
    /// init scripts `network`, `dnsmasq`, `opennds`, `pppoe-server` as stand-ins that append
    /// `<script> <verb>` to data/init.log (a router's real ones restart daemons). `bin/ndsctl` is
    /// a stand-in too (openNDS is not in Debian): it appends its argument vector, one argument
    /// per tab, to data/ndsctl.log. Removing `etc/init.d/opennds` or `etc/init.d/pppoe-server`
    /// makes a router without that package.
    pub fn add_isp_packages(&self) -> io::Result<()> {
        let root = &self.root;
        for d in ["etc/init.d", "etc/ppp"] {
            fs::create_dir_all(root.join(d))?;
        }
        fs::write(
            root.join("etc/config/dhcp"),
            "config dnsmasq\n\toption domainneeded '1'\n\toption leasefile '/tmp/dhcp.leases'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n\toption start '100'\n\toption limit '150'\n\toption leasetime '12h'\n\nconfig dhcp 'wan'\n\toption interface 'wan'\n\toption ignore '1'\n",
        )?;
        fs::write(
            root.join("etc/config/opennds"),
            "config opennds 'setup'\n\toption enabled '0'\n\toption gatewayinterface 'br-lan'\n\toption gatewayname 'openNDS'\n\toption maxclients '250'\n\toption authidletimeout '120'\n",
        )?;
        fs::write(
            root.join("etc/config/pppoe"),
            "#config pppoe_server\n#\toption interface eth1\n",
        )?;
        fs::write(
            root.join("etc/ppp/chap-secrets"),
            "# Secrets for authentication using CHAP\n# client\tserver\tsecret\tIP addresses\n",
        )?;
        fs::write(
            root.join("etc/ppp/pap-secrets"),
            "# Secrets for authentication using PAP\n# client\tserver\tsecret\tIP addresses\n",
        )?;
        for name in ["network", "dnsmasq", "opennds", "pppoe-server"] {
            write_script(
                &root.join("etc/init.d").join(name),
                &format!(
                    "#!/bin/sh\necho \"{name} $*\" >> \"$(dirname \"$0\")/../../data/init.log\"\n"
                ),
            )?;
        }
        write_script(
            &root.join("bin/ndsctl"),
            "#!/bin/sh\n# Stand-in for openNDS's ndsctl (not in Debian): records its argument vector.\nout=\"$(dirname \"$0\")/../data/ndsctl.log\"\nfirst=1\nfor a in \"$@\"; do\n  if [ $first = 1 ]; then first=0; else printf '\\t' >> \"$out\"; fi\n  printf '%s' \"$a\" >> \"$out\"\ndone\necho >> \"$out\"\necho \"ndsctl: $1 done\"\n",
        )
    }

    /// The agent flags that point it at this root.
    pub fn agent_args(&self) -> Vec<String> {
        let p = |rel: &str| self.root.join(rel).display().to_string();
        vec![
            "--proc-root".into(),
            p("proc"),
            "--etc-root".into(),
            p("etc"),
            "--iw".into(),
            p("bin/iw"),
            "--wg".into(),
            p("bin/wg"),
            "--df".into(),
            p("bin/df"),
            "--lease-file".into(),
            p("tmp/dhcp.leases"),
            "--openvpn-status".into(),
            p("var/run/openvpn"),
            "--disk".into(),
            "/overlay".into(),
        ]
    }

    /// Writes `etc/config/routerstats` for this root (an agent `--config` file). With a `uci`
    /// binary, every action family is allowed and the actions run against this root's
    /// `etc/config` with that `uci`, this root's `wg`, `ifup`, `tc` and `nft`; without one, none
    /// is allowed.
    pub fn write_agent_config(&self, uci: Option<&Path>) -> io::Result<PathBuf> {
        let p = |rel: &str| self.root.join(rel).display().to_string();
        let mut text = String::from("config agent 'main'\n");
        if let Some(uci) = uci {
            text.push_str(&format!(
                "\tlist allow_actions 'wireguard'\n\tlist allow_actions 'backup'\n\tlist allow_actions 'status'\n\tlist allow_actions 'hotspot'\n\tlist allow_actions 'pppoe'\n\tlist allow_actions 'bridge'\n\toption uci '{}'\n\toption uci_confdir '{}'\n\toption uci_savedir '{}'\n\toption ifup '{}'\n\toption sysupgrade '{}'\n\toption backup_dir '{}'\n\toption ndsctl '{}'\n",
                uci.display(),
                p("etc/config"),
                p("tmp/uci"),
                p("bin/ifup"),
                p("bin/sysupgrade"),
                p("tmp"),
                p("bin/ndsctl")
            ));
            // The OpenVPN family is allowed too, pointed inside the fake root, where no OpenVPN
            // server is installed: its routes answer with that reason (tests/tests/openvpn.rs
            // runs a real server).
            text.push_str(&format!(
                "\tlist allow_actions 'openvpn'\n\toption openvpn_config '{}'\n\toption easyrsa_pki '{}'\n\toption easyrsa '{}'\n\toption logread '{}'\n",
                p("etc/openvpn/server.conf"),
                p("etc/easy-rsa/pki"),
                p("bin/easyrsa"),
                p("bin/logread")
            ));
            text.push_str(&format!(
                "\tlist allow_actions 'limits'\n\tlist allow_actions 'anti_sharing'\n\toption tc '{}'\n\toption nft '{}'\n",
                p("bin/tc"),
                p("bin/nft")
            ));
        }
        let path = self.root.join("etc/config/routerstats");
        fs::write(&path, text)?;
        Ok(path)
    }

    /// Advances counters as if `secs` seconds of traffic had passed.
    pub fn tick(&self, secs: u64) -> io::Result<()> {
        let k = seed(&self.hostname) * secs.max(1);
        self.edit("proc/net/dev", |line, _| tick_net_dev(line, k))?;
        self.edit("proc/uptime", |line, i| {
            if i == 0 {
                add_to_words(line, &[(0, secs)])
            } else {
                line.to_string()
            }
        })?;
        self.edit("proc/stat", |line, _| {
            if line.starts_with("cpu") {
                add_to_words(line, &[(1, 30 * k), (3, 10 * k), (4, 60 * secs)])
            } else {
                line.to_string()
            }
        })?;
        for entry in fs::read_dir(self.root.join("data/iw"))? {
            let p = entry?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("station-dump"))
            {
                let rel = p.strip_prefix(&self.root).unwrap_or(&p).to_path_buf();
                self.edit(&rel.to_string_lossy(), |line, _| {
                    tick_station_line(line, k, secs)
                })?;
            }
        }
        self.edit("data/wg/dump.txt", |line, _| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != 9 {
                return line.to_string();
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let bump = |s: &str, by: u64| {
                s.parse::<u64>()
                    .map(|v| (v + by).to_string())
                    .unwrap_or_else(|_| s.to_string())
            };
            let handshake = if f[5] == "0" {
                "0".to_string()
            } else {
                now.saturating_sub(20).to_string()
            };
            let rx = if f[5] == "0" {
                f[6].to_string()
            } else {
                bump(f[6], 3000 * k)
            };
            let tx = if f[5] == "0" {
                f[7].to_string()
            } else {
                bump(f[7], 9000 * k)
            };
            [f[0], f[1], f[2], f[3], f[4], &handshake, &rx, &tx, f[8]].join("\t")
        })
    }

    fn edit(&self, rel: &str, f: impl Fn(&str, usize) -> String) -> io::Result<()> {
        let path = self.root.join(rel);
        let text = fs::read_to_string(&path)?;
        let mut out: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| f(l, i) + "\n")
            .collect();
        if !text.ends_with('\n') {
            out.pop();
        }
        let tmp = path.with_extension("tick-tmp");
        fs::write(&tmp, out)?;
        fs::rename(tmp, path)
    }
}

/// Adds to whitespace-separated numeric words (by index), keeping the rest of the line.
fn add_to_words(line: &str, adds: &[(usize, u64)]) -> String {
    let words: Vec<String> = line
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| match adds.iter().find(|(j, _)| *j == i) {
            Some((_, by)) => match w.split_once('.') {
                Some((int, frac)) => int
                    .parse::<u64>()
                    .map(|v| format!("{}.{frac}", v + by))
                    .unwrap_or_else(|_| w.to_string()),
                None => w
                    .parse::<u64>()
                    .map(|v| (v + by).to_string())
                    .unwrap_or_else(|_| w.to_string()),
            },
            None => w.to_string(),
        })
        .collect();
    words.join(" ")
}

fn tick_net_dev(line: &str, k: u64) -> String {
    let Some((name, rest)) = line.rsplit_once(':') else {
        return line.to_string();
    };
    let nums: Vec<&str> = rest.split_whitespace().collect();
    if nums.len() != 16 || nums.iter().any(|n| n.parse::<u64>().is_err()) {
        return line.to_string();
    }
    let iface = name.trim();
    let weight = match iface {
        "lo" => 0,
        n if n.starts_with("pppoe") || n == "wan" || n.starts_with("eth") => 40,
        n if n.starts_with("br-") || n.starts_with("wlan") => 25,
        _ => 5,
    };
    let adds = [
        (0usize, 50_000 * weight * k),
        (1, 40 * weight * k),
        (8, 12_000 * weight * k),
        (9, 20 * weight * k),
    ];
    let mut out = format!("{name}:");
    for (i, n) in nums.iter().enumerate() {
        let v: u64 = n.parse().unwrap_or(0);
        let by = adds
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, b)| *b)
            .unwrap_or(0);
        out.push_str(&format!(" {}", v + by));
    }
    out
}

fn tick_station_line(line: &str, k: u64, secs: u64) -> String {
    let trimmed = line.trim_start();
    let by = if trimmed.starts_with("rx bytes:") {
        20_000 * k
    } else if trimmed.starts_with("tx bytes:") {
        90_000 * k
    } else if trimmed.starts_with("rx packets:") || trimmed.starts_with("tx packets:") {
        60 * k
    } else if trimmed.starts_with("connected time:") {
        secs
    } else {
        return line.to_string();
    };
    // "\trx bytes:\t1234" -> bump the first number after the colon.
    let Some((key, value)) = line.split_once(':') else {
        return line.to_string();
    };
    let v = value.trim();
    let (num, unit) = v.split_once(' ').unwrap_or((v, ""));
    match num.parse::<u64>() {
        Ok(n) if unit.is_empty() => format!("{key}:\t{}", n + by),
        Ok(n) => format!("{key}:\t{} {unit}", n + by),
        Err(_) => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_tick_adds_bytes_and_keeps_shape() {
        let line = "pppoe-wan:48318382117 100 0 0 0 0 0 0 2000 50 0 0 0 0 0 0";
        let out = tick_net_dev(line, 1);
        let nums: Vec<u64> = out
            .split_once(':')
            .unwrap()
            .1
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(nums.len(), 16);
        assert_eq!(nums[0], 48318382117 + 50_000 * 40);
        assert_eq!(nums[8], 2000 + 12_000 * 40);
        assert_eq!(tick_net_dev("Inter-|   Receive", 1), "Inter-|   Receive");
    }

    #[test]
    fn station_tick_bumps_counters() {
        assert_eq!(
            tick_station_line("\trx bytes:\t100", 1, 5),
            "\trx bytes:\t20100"
        );
        assert_eq!(
            tick_station_line("\tconnected time:\t10 seconds", 1, 5),
            "\tconnected time:\t15 seconds"
        );
        assert_eq!(
            tick_station_line("\tsignal:  \t-41 dBm", 1, 5),
            "\tsignal:  \t-41 dBm"
        );
    }

    #[test]
    fn uptime_tick_keeps_fraction() {
        assert_eq!(add_to_words("100.25 80.00", &[(0, 5)]), "105.25 80.00");
    }
}
