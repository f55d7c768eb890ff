//! What the benchmarks read about processes: memory from `/proc/<pid>/status`, CPU time from
//! `getrusage` and `/proc/<pid>/stat`, and the open-file limit (raised with `setrlimit`).
//!
//! The three libc calls are declared here directly (the C library is linked anyway); their
//! structures are the Linux ones for 64-bit targets.

use std::time::Duration;

/// Memory figures of a process, in kB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    /// Resident set size now.
    pub rss_kb: u64,
    /// Peak resident set size ("high water mark").
    pub hwm_kb: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid` ("self" for this process).
pub fn mem_of(pid: &str) -> std::io::Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    })
}

/// This process's memory.
pub fn mem_self() -> Mem {
    mem_of("self").unwrap_or_default()
}

/// User plus system CPU time of `pid` from `/proc/<pid>/stat` (clock ticks, assumed 100 Hz:
/// 10 ms resolution).
pub fn cpu_of(pid: u32) -> std::io::Result<Duration> {
    Ok(stat_cpu(&std::fs::read_to_string(format!(
        "/proc/{pid}/stat"
    ))?))
}

/// CPU time of the threads of `pid` named `name` (`/proc/<pid>/task/*/comm`), like
/// [`cpu_of`]; None when no thread has that name.
pub fn cpu_of_thread(pid: u32, name: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut found = None;
    for t in tasks.filter_map(|t| t.ok()) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            found = Some(found.unwrap_or(Duration::ZERO) + stat_cpu(&stat));
        }
    }
    found
}

/// CPU time of the live threads of `pid` by thread name (`/proc/<pid>/task/*/comm`; threads that
/// already exited are not counted), like [`cpu_of`].
pub fn cpu_by_thread_name(pid: u32) -> std::collections::BTreeMap<String, Duration> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.filter_map(|t| t.ok()) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        *out.entry(comm.trim_end().to_string())
            .or_insert(Duration::ZERO) += stat_cpu(&stat);
    }
    out
}

/// utime + stime of a `/proc/.../stat` line.
fn stat_cpu(text: &str) -> Duration {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[repr(C)]
#[derive(Default)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    rest: [i64; 14],
}

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    fn prlimit(pid: i32, resource: i32, new: *const Rlimit, old: *mut Rlimit) -> i32;
}

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;
const RLIMIT_NOFILE: i32 = 7;

fn rusage(who: i32) -> Duration {
    let mut u = Rusage::default();
    // SAFETY: `u` is a properly sized and aligned `struct rusage` for 64-bit Linux.
    let rc = unsafe { getrusage(who, &mut u) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let us = |t: &Timeval| (t.sec.max(0) as u64) * 1_000_000 + t.usec.max(0) as u64;
    Duration::from_micros(us(&u.utime) + us(&u.stime))
}

/// CPU time (user + system) this process has used, with microsecond resolution.
pub fn cpu_self() -> Duration {
    rusage(RUSAGE_SELF)
}

/// CPU time (user + system) the calling thread has used, with microsecond resolution.
pub fn cpu_this_thread() -> Duration {
    rusage(RUSAGE_THREAD)
}

/// The load averages over 1, 5 and 15 minutes (`/proc/loadavg`), as printed there.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time (user + system) of this process's children that have been waited for.
pub fn cpu_children() -> Duration {
    rusage(RUSAGE_CHILDREN)
}

/// Peak resident set size (kB) of the largest child process waited for so far (`ru_maxrss`).
pub fn children_maxrss_kb() -> u64 {
    let mut u = Rusage::default();
    // SAFETY: `u` is a properly sized and aligned `struct rusage` for 64-bit Linux.
    let rc = unsafe { getrusage(RUSAGE_CHILDREN, &mut u) };
    if rc != 0 {
        return 0;
    }
    u.rest.first().map(|v| (*v).max(0) as u64).unwrap_or(0)
}

/// The open-file limit: (soft, hard).
pub fn nofile_limit() -> (u64, u64) {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: `r` is a properly sized `struct rlimit`.
    let rc = unsafe { getrlimit(RLIMIT_NOFILE, &mut r) };
    if rc != 0 {
        return (0, 0);
    }
    (r.cur, r.max)
}

/// Raises the soft open-file limit to at least `want` (up to the hard limit; as root the hard
/// limit is raised too when needed). Returns the soft limit in force afterwards. Child processes
/// inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let (cur, max) = nofile_limit();
    if cur >= want {
        return cur;
    }
    let try_set = |cur: u64, max: u64| {
        let r = Rlimit { cur, max };
        // SAFETY: `r` is a properly sized `struct rlimit`.
        unsafe { setrlimit(RLIMIT_NOFILE, &r) == 0 }
    };
    if !(want > max && try_set(want, want)) {
        try_set(want.min(max), max);
    }
    nofile_limit().0
}

/// Sets the open-file limit (soft and hard) of another process; true when it worked.
pub fn set_nofile_of(pid: u32, limit: u64) -> bool {
    let r = Rlimit {
        cur: limit,
        max: limit,
    };
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: `r` is a properly sized `struct rlimit`; the old value is not asked for.
    unsafe { prlimit(pid, RLIMIT_NOFILE, &r, std::ptr::null_mut()) == 0 }
}

/// Open file descriptors of a process (entries of /proc/<pid>/fd); 0 if it cannot be read.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Percentile (0.0..=1.0) of sorted values; None when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted.get(idx).copied()
}

/// Milliseconds with one decimal, for printing.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_and_cpu_are_readable() {
        let m = mem_self();
        assert!(m.rss_kb > 0 && m.hwm_kb >= m.rss_kb, "{m:?}");
        let before = cpu_self();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_self() > before);
        assert!(cpu_of(std::process::id()).is_ok());
    }

    #[test]
    fn a_named_thread_has_its_own_cpu_time() {
        let (spun_tx, spun_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("bench-spin".into())
            .spawn(move || {
                let start = cpu_this_thread();
                let mut x = 0u64;
                while cpu_this_thread() - start < Duration::from_millis(60) {
                    x = x.wrapping_add(std::hint::black_box(x) | 1);
                }
                let _ = spun_tx.send(());
                let _ = end_rx.recv();
                x
            })
            .unwrap();
        spun_rx.recv().unwrap();
        let spun = cpu_of_thread(std::process::id(), "bench-spin");
        end_tx.send(()).unwrap();
        assert!(t.join().unwrap() > 0);
        // /proc counts in 10 ms ticks: 60 ms of spinning shows as at least 40 ms.
        assert!(
            spun.is_some_and(|d| d >= Duration::from_millis(40)),
            "{spun:?}"
        );
        assert_eq!(cpu_of_thread(std::process::id(), "no-such-thread"), None);
        assert_eq!(loadavg().split(' ').count(), 3);
    }

    #[test]
    fn nofile_limit_can_be_read_and_kept() {
        let (soft, hard) = nofile_limit();
        assert!(soft > 0 && hard >= soft);
        assert_eq!(raise_nofile(soft), soft);
    }

    #[test]
    fn percentiles_pick_from_sorted_values() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_millis(51)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
