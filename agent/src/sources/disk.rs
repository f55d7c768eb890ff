//! Disk usage of mount points, from `df -k` output (the agent has no libc binding for
//! `statvfs`, and every OpenWrt image ships busybox `df`).
//!
//! Busybox prints `Filesystem 1K-blocks Used Available Use% Mounted on`, GNU `df -P` prints
//! `1024-blocks ... Capacity`. A filesystem name too long for its column (`overlayfs:/overlay`
//! on some busybox builds, `/dev/mapper/...` in GNU df without `-P`) is printed alone and its
//! figures wrap onto the next line. Mount points may contain spaces.

use std::path::Path;
use std::process::Command;

use routerstats_shared::DiskUsage;

use super::{ParseError, Parsed, ReadError, SourceError, MAX_INPUT_BYTES};

/// Parses `df` output. Sizes are in the unit the header names (`1K-blocks`, `1024-blocks`,
/// `512-blocks`, ...; 1 KiB when there is no header). Rows without usable figures are skipped.
pub fn parse_df(text: &str) -> Result<Parsed<Vec<DiskUsage>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut out = Parsed::new(Vec::new());
    let mut block: u64 = 1024;
    // A line holding only a filesystem name, waiting for its figures on the next line.
    let mut pending: Option<usize> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if raw.trim_start().starts_with("Filesystem") {
            match raw.split_whitespace().nth(1).and_then(block_size) {
                Some(b) => block = b,
                None => out.skip(line_no, "header names no block size; assuming 1K blocks"),
            }
            continue;
        }
        match figures(raw) {
            Some(row) => {
                if row.filesystem.is_empty() && pending.take().is_none() {
                    out.skip(line_no, "figures without a filesystem name");
                    continue;
                }
                if let Some(p) = pending.take() {
                    out.skip(p, "filesystem name without figures");
                }
                if row.mount.is_empty() {
                    out.skip(line_no, "no mount point");
                    continue;
                }
                match (row.used, row.blocks.checked_mul(block)) {
                    (Some(used), Some(total_bytes)) => out.value.push(DiskUsage {
                        mount: row.mount.to_string(),
                        total_bytes,
                        used_bytes: used.saturating_mul(block),
                    }),
                    (None, _) => out.skip(line_no, format!("{}: no usage figures", row.mount)),
                    (_, None) => out.skip(line_no, format!("{}: size out of range", row.mount)),
                }
            }
            None => {
                if let Some(p) = pending.replace(line_no) {
                    out.skip(p, "filesystem name without figures");
                }
            }
        }
    }
    if let Some(p) = pending {
        out.skip(p, "filesystem name without figures");
    }
    if out.value.is_empty() {
        return Err(out.nothing_usable("no usable df rows"));
    }
    Ok(out)
}

/// Bytes per block from a header column such as `1K-blocks`, `1024-blocks`, `512-blocks`, `1M-blocks`.
fn block_size(col: &str) -> Option<u64> {
    let unit = col.strip_suffix("-blocks")?;
    let (digits, mult) = match unit.chars().last()? {
        'k' | 'K' => (unit.get(..unit.len() - 1)?, 1024),
        'M' => (unit.get(..unit.len() - 1)?, 1024 * 1024),
        _ => (unit, 1),
    };
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|&b| b > 0)
}

/// The parts of one row: everything before the figures, the figures, everything after them.
struct Row<'a> {
    filesystem: &'a str,
    blocks: u64,
    /// None when df printed `-` (no meaningful figure).
    used: Option<u64>,
    mount: &'a str,
}

/// Finds `blocks used available use%` in a line; None when the line has no such run.
fn figures(line: &str) -> Option<Row<'_>> {
    // Byte offset of each token: `split_whitespace` yields subslices of `line`.
    let toks: Vec<(usize, &str)> = line
        .split_whitespace()
        .map(|t| (t.as_ptr() as usize - line.as_ptr() as usize, t))
        .collect();
    let number = |t: &str| t.parse::<u64>().ok();
    let percent = |t: &str| t == "-" || t.strip_suffix('%').is_some_and(|n| number(n).is_some());
    for w in toks.windows(4) {
        let [(start, blocks), (_, used), (_, avail), (pct_at, pct)] = w else {
            continue;
        };
        let used_ok = *used == "-" || number(used).is_some();
        let avail_ok = *avail == "-" || number(avail).is_some();
        if let (Some(blocks), true, true, true) = (number(blocks), used_ok, avail_ok, percent(pct))
        {
            return Some(Row {
                filesystem: line.get(..*start).unwrap_or("").trim(),
                blocks,
                used: number(used),
                mount: line.get(pct_at + pct.len()..).unwrap_or("").trim(),
            });
        }
    }
    None
}

/// Runs `<df> -k <mounts...>` and parses its output. `df` exits non-zero when one of the
/// mounts does not exist but still prints the others: those rows are kept, and the failure is
/// noted as a skip.
pub fn read(df: &str, mounts: &[&str]) -> Result<Parsed<Vec<DiskUsage>>, SourceError> {
    let args: Vec<&str> = std::iter::once("-k")
        .chain(mounts.iter().copied())
        .collect();
    let cmd = || {
        std::iter::once(df)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let output = match Command::new(df).args(&args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::ToolMissing(df.to_string()).into());
        }
        Err(err) => return Err(ReadError::Spawn { cmd: cmd(), err }.into()),
    };
    let mut stdout = output.stdout;
    stdout.truncate(usize::try_from(MAX_INPUT_BYTES).unwrap_or(usize::MAX));
    let text = String::from_utf8_lossy(&stdout);
    if output.status.success() {
        return Ok(parse_df(&text)?);
    }
    let stderr: String = String::from_utf8_lossy(&output.stderr)
        .trim()
        .chars()
        .take(300)
        .collect();
    match parse_df(&text) {
        Ok(mut parsed) => {
            parsed.skip(
                0,
                format!("{} exited with {}: {stderr}", cmd(), output.status),
            );
            Ok(parsed)
        }
        Err(_) => Err(ReadError::Failed {
            cmd: cmd(),
            status: output.status.to_string(),
            stderr,
        }
        .into()),
    }
}

/// Usage of the filesystem holding one path, via `df`.
pub fn usage(mount: &Path) -> Result<DiskUsage, SourceError> {
    let path = mount.to_string_lossy();
    let mut parsed = read("df", &[path.as_ref()])?;
    if parsed.value.is_empty() {
        return Err(ParseError::Invalid(format!("df printed no row for {path}")).into());
    }
    Ok(parsed.value.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUSYBOX: &str = "\
Filesystem           1K-blocks      Used Available Use% Mounted on
/dev/root                 4608      4608         0 100% /rom
tmpfs                    61280       236     61044   0% /tmp
/dev/mtdblock7            8832      1460      7372  17% /overlay
overlayfs:/overlay        8832      1460      7372  17% /
tmpfs                      512         0       512   0% /dev
";

    const GNU_P: &str = "\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/sda2         30832548 12345678  16900000      43% /
/dev/sdb1       5860533168 10000000 5850533168       1% /srv/my media
";

    const WRAPPED: &str = "\
Filesystem                        1K-blocks     Used Available Use% Mounted on
/dev/mapper/vg--routerstats--very--long-root
                                   30832548 12345678  16900000  43% /
overlayfs:/overlay
                                       8832     1460      7372  17% /overlay
tmpfs                                 61280      236     61044   1% /tmp
";

    fn kib(v: u64) -> u64 {
        v * 1024
    }

    #[test]
    fn busybox_output() {
        let p = parse_df(BUSYBOX).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let mounts: Vec<&str> = p.value.iter().map(|d| d.mount.as_str()).collect();
        assert_eq!(mounts, ["/rom", "/tmp", "/overlay", "/", "/dev"]);
        assert_eq!(
            p.value[2],
            DiskUsage {
                mount: "/overlay".into(),
                total_bytes: kib(8832),
                used_bytes: kib(1460)
            }
        );
        assert_eq!(p.value[0].used_bytes, p.value[0].total_bytes);
    }

    #[test]
    fn gnu_posix_output_with_spaces_in_mount_and_large_sizes() {
        let p = parse_df(GNU_P).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.value[1].mount, "/srv/my media");
        assert_eq!(p.value[1].total_bytes, kib(5_860_533_168));
        assert!(p.value[1].total_bytes > u64::from(u32::MAX));
        assert_eq!(p.value[0].used_bytes, kib(12_345_678));
    }

    #[test]
    fn long_filesystem_names_wrap_onto_the_next_line() {
        let p = parse_df(WRAPPED).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let got: Vec<(&str, u64)> = p
            .value
            .iter()
            .map(|d| (d.mount.as_str(), d.total_bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("/", kib(30_832_548)),
                ("/overlay", kib(8832)),
                ("/tmp", kib(61_280))
            ]
        );
    }

    #[test]
    fn header_block_sizes() {
        let p = parse_df(
            "Filesystem 512-blocks Used Available Capacity Mounted on\n/dev/sda1 100 50 50 50% /\n",
        )
        .unwrap();
        assert_eq!(
            (p.value[0].total_bytes, p.value[0].used_bytes),
            (51_200, 25_600)
        );
        assert_eq!(block_size("1M-blocks"), Some(1 << 20));
        assert_eq!(block_size("4k-blocks"), Some(4096));
        assert_eq!(block_size("0-blocks"), None);
        assert_eq!(block_size("Size"), None);
        assert_eq!(block_size("K-blocks"), None);
        // No header: 1 KiB blocks, as `-k` asks for.
        assert_eq!(
            parse_df("tmpfs 10 1 9 10% /tmp").unwrap().value[0].total_bytes,
            10_240
        );
    }

    #[test]
    fn odd_rows_are_skipped_with_reasons() {
        let text = "\
Filesystem 1K-blocks Used Available Use% Mounted on
orphan-name-line
tmpfs 10 1 9 10% /tmp
proc 0 - - - /proc
                    5 1 4 20% /x
tmpfs 10 1 9 10%
huge 18446744073709551615 0 0 0% /big
tail-name-line
";
        let p = parse_df(text).unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].mount, "/tmp");
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 7, 8], "{:?}", p.skipped);
    }

    #[test]
    fn unusable_output_is_an_error() {
        assert_eq!(parse_df(""), Err(ParseError::Empty));
        assert!(matches!(
            parse_df("Filesystem 1K-blocks Used Available Use% Mounted on\n"),
            Err(ParseError::Invalid(_))
        ));
        let human = "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 30G 12G 16G 43% /\n";
        assert!(matches!(parse_df(human), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn read_runs_df() {
        let p = read("df", &["/"]).unwrap();
        assert_eq!(p.value.len(), 1, "{p:?}");
        assert!(p.value[0].total_bytes > 0);
        assert!(p.value[0].used_bytes <= p.value[0].total_bytes);
        assert_eq!(usage(Path::new("/")).unwrap().mount, p.value[0].mount);
    }

    #[test]
    fn read_keeps_rows_when_one_mount_is_missing() {
        let p = read("df", &["/", "/nonexistent-routerstats-mount"]).unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.skipped.len(), 1);
        assert!(
            p.skipped[0]
                .reason
                .contains("nonexistent-routerstats-mount"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn read_errors() {
        let err = read("/nonexistent/routerstats-df", &["/"]).unwrap_err();
        assert!(
            matches!(err, SourceError::Read(ReadError::ToolMissing(_))),
            "{err:?}"
        );
        let err = read("false", &["/"]).unwrap_err();
        assert!(
            matches!(err, SourceError::Read(ReadError::Failed { .. })),
            "{err:?}"
        );
        // Succeeds but prints nothing usable.
        let err = read("true", &[]).unwrap_err();
        assert!(
            matches!(err, SourceError::Parse(ParseError::Empty)),
            "{err:?}"
        );
        assert!(usage(Path::new("/nonexistent-routerstats-mount")).is_err());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse_df(&s);
        }

        #[test]
        fn dflike_text_never_panics(s in "([ a-z/0-9%-]{0,40}\n){0,8}") {
            if let Ok(p) = parse_df(&s) {
                for d in &p.value {
                    prop_assert!(!d.mount.is_empty());
                }
            }
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..400) {
            for text in [BUSYBOX, GNU_P, WRAPPED] {
                if let Some(prefix) = text.get(..cut.min(text.len())) {
                    let _ = parse_df(prefix);
                }
            }
        }
    }
}
