//! Counter deltas and rates with 32-bit wrap and reset detection (pure functions).
//!
//! A delta is only computed between two samples of the same counter from the same agent boot,
//! in report order. A counter that went down is either a 32-bit wrap (the previous value fits
//! 32 bits and the wrapped delta is plausible, below 2^31) or a reset (reboot, interface
//! re-creation, re-association): a reset yields no delta, never a negative or huge bogus one.

/// 2^32: where a 32-bit counter wraps.
const WRAP_32: u64 = 1 << 32;
/// A wrapped delta at or above this is not plausible (more likely a reset).
const MAX_WRAPPED_DELTA: u64 = 1 << 31;

/// Whether a counter can be a 32-bit counter that wraps at 2^32.
///
/// `/proc/net/dev` on 32-bit kernels and older nl80211 station byte counters are 32-bit;
/// WireGuard and OpenVPN counters are always 64-bit, so a decrease there is always a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    MayWrap32,
    Only64,
}

/// The delta from `prev` to `new` of one counter, or None for a reset.
pub fn counter_delta(prev: u64, new: u64, width: Width) -> Option<u64> {
    if new >= prev {
        return Some(new - prev);
    }
    if width == Width::MayWrap32 && prev < WRAP_32 {
        // new < prev < 2^32, so this cannot overflow or underflow.
        let wrapped = new + (WRAP_32 - prev);
        if wrapped < MAX_WRAPPED_DELTA {
            return Some(wrapped);
        }
    }
    None
}

/// Where a previous sample came from: its agent boot and report sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleOrigin {
    pub boot_id: [u8; 16],
    pub seq: u64,
    pub ts_ms: i64,
}

/// Whether two samples of one counter may be subtracted: same boot, `cur` strictly after `prev`.
pub fn continuous(prev: &SampleOrigin, cur: &SampleOrigin) -> bool {
    prev.boot_id == cur.boot_id && cur.seq > prev.seq
}

/// Bits per second for `delta_bytes` over `dt_ms`, None when the interval is not positive.
pub fn rate_bps(delta_bytes: u64, dt_ms: i64) -> Option<u64> {
    if dt_ms <= 0 {
        return None;
    }
    let bits = u128::from(delta_bytes) * 8 * 1000;
    let rate = bits / (dt_ms as u128);
    Some(u64::try_from(rate).unwrap_or(u64::MAX))
}

/// Whether a station re-associated between two samples, so its counters restarted from zero.
///
/// True when its connected time went down, or is shorter than the time between the samples
/// (with 2 s of slack for the agent reading the station dump at a slightly different moment).
pub fn station_reassociated(
    prev_connected_s: Option<u64>,
    prev_ts_ms: i64,
    cur_connected_s: Option<u64>,
    cur_ts_ms: i64,
) -> bool {
    let Some(cur) = cur_connected_s else {
        return false;
    };
    if let Some(prev) = prev_connected_s {
        if cur < prev {
            return true;
        }
    }
    let elapsed_ms = cur_ts_ms.saturating_sub(prev_ts_ms);
    let connected_ms = i64::try_from(cur.saturating_mul(1000)).unwrap_or(i64::MAX);
    connected_ms.saturating_add(2000) < elapsed_ms
}

/// The result of comparing one sample's rx/tx counters with the previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairDelta {
    pub rx_delta: Option<u64>,
    pub tx_delta: Option<u64>,
    pub rx_bps: Option<u64>,
    pub tx_bps: Option<u64>,
}

/// The previous sample of an rx/tx counter pair, as kept by the ingest cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrevSample {
    pub origin: SampleOrigin,
    pub rx: Option<u64>,
    pub tx: Option<u64>,
    /// Source-specific session marker: a station's connected time, an OpenVPN client's
    /// connected-since time.
    pub session: Option<u64>,
}

/// Deltas and rates of an rx/tx counter pair.
///
/// `prev` is the previous sample (None when there is none); `reset` is an extra,
/// source-specific reset signal (re-association, a new OpenVPN session). A direction whose
/// counter is missing in either sample has no delta.
pub fn pair_delta(
    prev: Option<&PrevSample>,
    cur: &SampleOrigin,
    rx: Option<u64>,
    tx: Option<u64>,
    width: Width,
    reset: bool,
) -> PairDelta {
    let Some(prev) = prev else {
        return PairDelta::default();
    };
    if reset || !continuous(&prev.origin, cur) {
        return PairDelta::default();
    }
    let delta = |p: Option<u64>, c: Option<u64>| counter_delta(p?, c?, width);
    let rx_delta = delta(prev.rx, rx);
    let tx_delta = delta(prev.tx, tx);
    let dt = cur.ts_ms.saturating_sub(prev.origin.ts_ms);
    PairDelta {
        rx_delta,
        tx_delta,
        rx_bps: rx_delta.and_then(|d| rate_bps(d, dt)),
        tx_bps: tx_delta.and_then(|d| rate_bps(d, dt)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT_A: [u8; 16] = [1; 16];
    const BOOT_B: [u8; 16] = [2; 16];

    fn origin(boot_id: [u8; 16], seq: u64, ts_ms: i64) -> SampleOrigin {
        SampleOrigin {
            boot_id,
            seq,
            ts_ms,
        }
    }

    #[test]
    fn increasing_counter_gives_plain_delta() {
        assert_eq!(counter_delta(100, 250, Width::MayWrap32), Some(150));
        assert_eq!(counter_delta(100, 100, Width::Only64), Some(0));
        assert_eq!(counter_delta(0, u64::MAX, Width::Only64), Some(u64::MAX));
    }

    #[test]
    fn thirty_two_bit_wrap_is_recognised() {
        let prev = WRAP_32 - 1000;
        assert_eq!(counter_delta(prev, 500, Width::MayWrap32), Some(1500));
        // Largest plausible wrapped delta.
        assert_eq!(
            counter_delta(WRAP_32 - 1, MAX_WRAPPED_DELTA - 2, Width::MayWrap32),
            Some(MAX_WRAPPED_DELTA - 1)
        );
        // Not plausible: the wrapped delta would be 2^31 or more.
        assert_eq!(
            counter_delta(WRAP_32 - 1, MAX_WRAPPED_DELTA - 1, Width::MayWrap32),
            None
        );
        // 64-bit counters never wrap at 2^32.
        assert_eq!(counter_delta(prev, 500, Width::Only64), None);
    }

    #[test]
    fn decrease_is_a_reset() {
        // Small previous value: a wrapped delta would be close to 2^32.
        assert_eq!(counter_delta(5_000_000, 1_000, Width::MayWrap32), None);
        // Previous value above 32 bits cannot be a 32-bit wrap.
        assert_eq!(counter_delta(WRAP_32 + 10, 5, Width::MayWrap32), None);
        assert_eq!(counter_delta(u64::MAX, 0, Width::MayWrap32), None);
    }

    #[test]
    fn rate_in_bits_per_second() {
        assert_eq!(rate_bps(1000, 1000), Some(8000));
        assert_eq!(rate_bps(1000, 30_000), Some(266));
        assert_eq!(rate_bps(1000, 0), None);
        assert_eq!(rate_bps(1000, -5), None);
        assert_eq!(rate_bps(u64::MAX, 1), Some(u64::MAX));
    }

    fn prev(o: SampleOrigin, rx: u64, tx: u64) -> PrevSample {
        PrevSample {
            origin: o,
            rx: Some(rx),
            tx: Some(tx),
            session: None,
        }
    }

    #[test]
    fn pair_delta_needs_same_boot_and_later_seq() {
        let p = prev(origin(BOOT_A, 7, 10_000), 1000, 2000);
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 8, 40_000),
            Some(4000),
            Some(2600),
            Width::MayWrap32,
            false,
        );
        assert_eq!(
            d,
            PairDelta {
                rx_delta: Some(3000),
                tx_delta: Some(600),
                rx_bps: Some(800),
                tx_bps: Some(160)
            }
        );

        // Boot change: no delta even though the counters went up.
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_B, 8, 40_000),
            Some(4000),
            Some(2600),
            Width::MayWrap32,
            false,
        );
        assert_eq!(d, PairDelta::default());
        // Older or same seq (out of order): no delta.
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 7, 40_000),
            Some(4000),
            Some(2600),
            Width::MayWrap32,
            false,
        );
        assert_eq!(d, PairDelta::default());
        // No previous sample.
        assert_eq!(
            pair_delta(
                None,
                &origin(BOOT_A, 1, 0),
                Some(1),
                Some(1),
                Width::Only64,
                false
            ),
            PairDelta::default()
        );
        // Source-specific reset.
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 8, 40_000),
            Some(4000),
            Some(2600),
            Width::MayWrap32,
            true,
        );
        assert_eq!(d, PairDelta::default());
    }

    #[test]
    fn pair_delta_resets_and_wraps_each_direction_independently() {
        let p = prev(origin(BOOT_A, 1, 0), WRAP_32 - 10, 900);
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 2, 1000),
            Some(10),
            Some(100),
            Width::MayWrap32,
            false,
        );
        assert_eq!(d.rx_delta, Some(20));
        assert_eq!(d.rx_bps, Some(160));
        assert_eq!(d.tx_delta, None);
        assert_eq!(d.tx_bps, None);
        // Clock went backwards: delta kept, rate unknown.
        let p = prev(origin(BOOT_A, 1, 0), 10, 10);
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 2, -5),
            Some(20),
            Some(20),
            Width::Only64,
            false,
        );
        assert_eq!((d.rx_delta, d.rx_bps), (Some(10), None));
        // A counter missing on either side gives no delta for that direction only.
        let p = PrevSample {
            origin: origin(BOOT_A, 1, 0),
            rx: None,
            tx: Some(5),
            session: None,
        };
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 2, 1000),
            Some(10),
            Some(7),
            Width::Only64,
            false,
        );
        assert_eq!((d.rx_delta, d.tx_delta), (None, Some(2)));
        let d = pair_delta(
            Some(&p),
            &origin(BOOT_A, 2, 1000),
            Some(10),
            None,
            Width::Only64,
            false,
        );
        assert_eq!((d.rx_delta, d.tx_delta), (None, None));
    }

    #[test]
    fn reassociation_detection() {
        // Connected time went down.
        assert!(station_reassociated(Some(300), 0, Some(20), 30_000));
        // Connected for 10 s but 60 s passed since the previous sample.
        assert!(station_reassociated(Some(5), 0, Some(10), 60_000));
        // Steady association.
        assert!(!station_reassociated(Some(300), 0, Some(330), 30_000));
        // Slack for slightly different read times.
        assert!(!station_reassociated(Some(0), 0, Some(29), 30_500));
        // Unknown connected time: cannot tell.
        assert!(!station_reassociated(Some(300), 0, None, 30_000));
        assert!(!station_reassociated(None, 0, Some(u64::MAX), 30_000));
    }

    proptest::proptest! {
        #[test]
        fn delta_is_exact_or_bounded(prev in proptest::num::u64::ANY, new in proptest::num::u64::ANY, wrap in proptest::bool::ANY) {
            let width = if wrap { Width::MayWrap32 } else { Width::Only64 };
            match counter_delta(prev, new, width) {
                Some(d) if new >= prev => proptest::prop_assert_eq!(d, new - prev),
                // A decrease only yields a delta for a plausible 32-bit wrap.
                Some(d) => {
                    proptest::prop_assert!(wrap && prev < WRAP_32 && d < MAX_WRAPPED_DELTA);
                    proptest::prop_assert_eq!(u64::from((new as u32).wrapping_sub(prev as u32)), d);
                }
                None => proptest::prop_assert!(new < prev),
            }
        }

        #[test]
        fn small_counters_wrap_consistently(prev in 0u64..WRAP_32, step in 0u64..MAX_WRAPPED_DELTA) {
            // A 32-bit counter advancing by less than 2^31 always yields exactly that step.
            let new = (prev + step) % WRAP_32;
            proptest::prop_assert_eq!(counter_delta(prev, new, Width::MayWrap32), Some(step));
        }
    }
}
