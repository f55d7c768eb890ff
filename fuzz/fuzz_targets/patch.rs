//! Fuzzes the `ReportPatch` payload: `patch::apply` on an arbitrary base and patch must never
//! panic and never return more than its limit; and for two arbitrary payloads, the patch
//! `encode` makes must apply back to the new one. The first two bytes give the base's length
//! (taken from the rest of the input), the third the mode.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerstats_shared::patch;

fuzz_target!(|data: &[u8]| {
    let [a, b, mode, rest @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (base, tail) = rest.split_at(split);
    if mode % 2 == 0 {
        // An untrusted patch against a base: an error or a bounded result, never a panic.
        let limit = 1 + u32::from(*mode) * 64;
        if let Ok(out) = patch::apply(base, tail, limit) {
            assert!(out.len() <= limit as usize, "{} > {limit}", out.len());
        }
    } else {
        // What the agent sends: encode, then apply, gives the new payload back.
        let p = patch::encode(base, tail);
        let out = patch::apply(base, &p, routerstats_shared::MAX_FRAME_LEN)
            .expect("a patch made by encode applies");
        assert_eq!(out, tail);
    }
});
