//! `/proc/stat`: the aggregate `cpu` line (jiffies spent in each state since boot), and the
//! CPU busy share between two samples.
//!
//! The line is `cpu  user nice system idle iowait irq softirq steal guest guest_nice`; old
//! kernels print fewer columns (missing ones count as 0). `guest` and `guest_nice` are already
//! included in `user` and `nice`, so they are not read. Per-CPU lines (`cpu0`, ...) and the other
//! lines are not needed and are passed over.

use std::path::Path;

use super::{read_text, ParseError, Parsed, SourceError};

/// Cumulative jiffies per CPU state, summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// All jiffies, in u128 so no sum of u64 counters can overflow.
    fn total(&self) -> u128 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .map(|&v| u128::from(v))
        .sum()
    }

    /// Jiffies spent not working: idle plus waiting for I/O.
    fn resting(&self) -> u128 {
        u128::from(self.idle) + u128::from(self.iowait)
    }
}

/// Fewest columns a usable `cpu` line has (user, nice, system, idle: every kernel prints these).
const MIN_FIELDS: usize = 4;

/// Parses the text of `/proc/stat`, returning the aggregate `cpu` line. Columns after the first
/// non-numeric one are dropped (and noted); fewer than four numbers is an error.
pub fn parse(text: &str) -> Result<Parsed<CpuTimes>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let Some((idx, line)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.split_whitespace().next() == Some("cpu"))
    else {
        return Err(ParseError::Invalid("no aggregate \"cpu\" line".to_string()));
    };
    let mut out = Parsed::new(CpuTimes::default());
    let mut fields = [0u64; 8];
    let mut count = 0usize;
    for tok in line.split_whitespace().skip(1).take(fields.len()) {
        match tok.parse::<u64>() {
            Ok(v) => {
                if let Some(slot) = fields.get_mut(count) {
                    *slot = v;
                }
                count += 1;
            }
            Err(_) => {
                let tok: String = tok.chars().take(40).collect();
                out.skip(
                    idx + 1,
                    format!("cpu column {} is not a number: {tok:?}", count + 1),
                );
                break;
            }
        }
    }
    if count < MIN_FIELDS {
        return Err(ParseError::Invalid(format!(
            "cpu line has {count} usable columns, needs at least {MIN_FIELDS}"
        )));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
    out.value = CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    };
    Ok(out)
}

/// Reads and parses a `/proc/stat` file (the caller joins the configured /proc root).
pub fn read(path: &Path) -> Result<Parsed<CpuTimes>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

/// The share of time the CPUs were busy between two samples, in per mille (rounded to
/// nearest). Busy is everything except idle and iowait. None when no jiffies elapsed or the
/// counters went backwards (a reboot, or a counter reset between samples).
///
/// Idle and iowait are compared as one sum: on tickless kernels iowait alone can step back
/// slightly while the time moves to idle, which is not a reset.
pub fn busy_permille(prev: &CpuTimes, cur: &CpuTimes) -> Option<u16> {
    let total = cur.total().checked_sub(prev.total())?;
    let resting = cur.resting().checked_sub(prev.resting())?;
    if total == 0 {
        return None;
    }
    let busy = total.checked_sub(resting)?;
    let permille = (busy * 1000 + total / 2) / total;
    u16::try_from(permille).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::own_fixture;
    use proptest::prelude::*;

    fn sample(name: &str) -> CpuTimes {
        let p = parse(&own_fixture(name)).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        p.value
    }

    #[test]
    fn aggregate_line_of_own_fixture() {
        assert_eq!(
            sample("proc/stat"),
            CpuTimes {
                user: 5_337_739,
                nice: 841,
                system: 3_515_660,
                idle: 118_545_107,
                iowait: 159_973,
                irq: 0,
                softirq: 3_275_634,
                steal: 0,
            }
        );
    }

    #[test]
    fn busy_between_two_fixture_samples() {
        // Deltas: user 120, system 85, idle 1650, iowait 5, softirq 141 -> 346 busy of 2001.
        let (a, b) = (sample("proc/stat"), sample("proc/stat.2"));
        assert_eq!(busy_permille(&a, &b), Some(173));
        // Reversed order: counters went backwards.
        assert_eq!(busy_permille(&b, &a), None);
        // Same sample twice: nothing elapsed.
        assert_eq!(busy_permille(&a, &a), None);
    }

    #[test]
    fn busy_extremes_and_iowait_shift() {
        let base = CpuTimes {
            user: 10,
            idle: 10,
            ..Default::default()
        };
        let all_busy = CpuTimes {
            user: 110,
            idle: 10,
            ..Default::default()
        };
        assert_eq!(busy_permille(&base, &all_busy), Some(1000));
        let all_idle = CpuTimes {
            user: 10,
            idle: 110,
            ..Default::default()
        };
        assert_eq!(busy_permille(&base, &all_idle), Some(0));
        // iowait steps back by 2 while idle gains 102: 100 jiffies elapsed, all resting.
        let a = CpuTimes {
            idle: 100,
            iowait: 5,
            ..Default::default()
        };
        let b = CpuTimes {
            idle: 202,
            iowait: 3,
            ..Default::default()
        };
        assert_eq!(busy_permille(&a, &b), Some(0));
        // Busy counter reset while total still grows: resting grew more than total.
        let a = CpuTimes {
            user: 500,
            idle: 100,
            ..Default::default()
        };
        let b = CpuTimes {
            user: 0,
            idle: 700,
            ..Default::default()
        };
        assert_eq!(busy_permille(&a, &b), None);
        let max = CpuTimes {
            user: u64::MAX,
            nice: u64::MAX,
            system: u64::MAX,
            ..Default::default()
        };
        assert_eq!(busy_permille(&CpuTimes::default(), &max), Some(1000));
    }

    #[test]
    fn short_lines_default_missing_columns() {
        let p = parse("cpu  1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            p.value,
            CpuTimes {
                user: 1,
                nice: 2,
                system: 3,
                idle: 4,
                ..Default::default()
            }
        );
        let p = parse("cpu 1 2 3 4 5 6 7\n").unwrap();
        assert_eq!((p.value.softirq, p.value.steal), (7, 0));
    }

    #[test]
    fn garbage_column_ends_the_line_with_a_note() {
        let p = parse("intr 5\ncpu 1 2 3 4 5 x 7 8\n").unwrap();
        assert_eq!(p.value.iowait, 5);
        assert_eq!(p.value.irq, 0);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 2);
    }

    #[test]
    fn unusable_inputs_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert!(matches!(
            parse("cpu0 1 2 3 4\nintr 1\n"),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(parse("cpu 1 2 3\n"), Err(ParseError::Invalid(_))));
        assert!(matches!(
            parse("cpu 1 2 -3 4\n"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc");
        assert_eq!(read(&dir.join("stat.2")).unwrap().value.user, 5_337_859);
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    fn times() -> impl Strategy<Value = CpuTimes> {
        proptest::array::uniform8(any::<u64>()).prop_map(
            |[user, nice, system, idle, iowait, irq, softirq, steal]| CpuTimes {
                user,
                nice,
                system,
                idle,
                iowait,
                irq,
                softirq,
                steal,
            },
        )
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn cpu_like_text_never_panics(s in "cpu[ 0-9a-z-]{0,120}\n?") {
            let _ = parse(&s);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..600) {
            let text = own_fixture("proc/stat");
            if let Some(prefix) = text.get(..cut.min(text.len())) {
                let _ = parse(prefix);
            }
        }

        #[test]
        fn busy_is_at_most_1000(a in times(), b in times()) {
            if let Some(p) = busy_permille(&a, &b) {
                prop_assert!(p <= 1000);
            }
        }
    }
}
