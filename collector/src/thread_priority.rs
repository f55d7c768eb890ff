//! Thread priorities (Linux keeps a nice value per thread). The database writer is the
//! ingest's critical path and runs at the process's own priority; the collector's other busy
//! threads run at a higher nice value, so that on a contended CPU the writer is not kept
//! waiting behind them: the network runtime (`network_nice`), the API's read threads
//! (`api_read_nice`) and the alert evaluator. Elsewhere than on Linux this does nothing.

/// Sets the calling thread's nice value to `nice` (a higher value is a lower priority; 0 and
/// below leave the thread as it is). An unprivileged thread cannot go below the value it has.
pub fn set_this_thread_nice(nice: i32) -> std::io::Result<()> {
    if nice <= 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), nice)?;
    }
    Ok(())
}

/// The calling thread's nice value (0 where not known).
pub fn this_thread_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_the_nice_value_asked_and_others_keep_theirs() {
        let before = this_thread_nice();
        let want = (before + 2).min(19);
        let got = std::thread::spawn(move || {
            set_this_thread_nice(want).unwrap();
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(got, want);
        assert_eq!(
            this_thread_nice(),
            before,
            "only the calling thread changes"
        );
        // 0 leaves the thread as it is.
        let kept = std::thread::spawn(move || {
            set_this_thread_nice(0).unwrap();
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(kept, before);
    }
}
