//! Binary patches of one encoded payload against another (`ReportPatch` frames).
//!
//! On one ingest connection the agent may send a report as a patch of its encoded payload
//! against the payload of the previous report frame sent on the same connection; the collector
//! applies it to the payload it reconstructed last and decodes the result like a full `Report`.
//! Both sides work on encoded bytes only: nothing here knows the report model.
//!
//! Format: `varint(new_len)` followed by operations. The patch keeps a cursor into the base.
//! Each operation starts with a tag byte whose low two bits are the opcode:
//!
//! | op | tag bits 2.. | meaning |
//! |---|---|---|
//! | 0 `copy+replace` | bits 2-4: `r - 1` (1..=8), bits 5-7: `c` (7 = `7 + varint`) | copy `c` base bytes, then `r` literal bytes follow; the cursor moves `c + r` |
//! | 1 `copy` | `n` (63 = `63 + varint`) | copy `n` base bytes; the cursor moves `n` |
//! | 2 `insert` | `n` (63 = `63 + varint`), then `n` literal bytes | the cursor does not move |
//! | 3 `seek` | zigzag delta (63 = `63 + varint`) | move the cursor |
//!
//! Varints are LEB128 (7 bits per byte, at most 10 bytes). Counters that change in place cost a
//! tag byte plus their changed bytes; shifts (a varint that grew, a new station) are found by a
//! small local search and, failing that, an 8-byte hash of the base.
//!
//! [`apply`] checks every length against the base, the announced size and a caller's limit
//! (at most [`MAX_FRAME_LEN`]): a malformed patch is a [`PatchError`], never a panic.

use crate::frame::MAX_FRAME_LEN;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("patch is truncated")]
    Truncated,
    #[error("patch announces {len} bytes, more than the limit of {max}")]
    TooLarge { len: u64, max: u32 },
    #[error("patch reads base bytes {start}..{end} of a {base_len}-byte base")]
    OutOfBase {
        start: u64,
        end: u64,
        base_len: usize,
    },
    #[error("patch writes more than the {0} bytes it announced")]
    Overrun(usize),
    #[error("patch produced {got} bytes, it announced {want}")]
    LengthMismatch { got: usize, want: usize },
    #[error("malformed varint in patch")]
    BadVarint,
}

/// Matching bytes needed to accept a resynchronisation point.
const SYNC: usize = 4;
/// How far (in bytes) the local search looks for a resynchronisation point.
const WINDOW: usize = 32;
/// Key length of the base hash used when the local search fails.
const KEY: usize = 8;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A tag whose opcode leaves 6 bits for `n`; larger values continue as a varint.
fn put_op(out: &mut Vec<u8>, op: u8, n: u64) {
    if n < 63 {
        out.push(op | ((n as u8) << 2));
    } else {
        out.push(op | (63 << 2));
        put_varint(out, n - 63);
    }
}

struct Encoder<'a> {
    base: &'a [u8],
    out: Vec<u8>,
    /// Base bytes to copy before `lit`.
    copy: usize,
    /// Literal bytes replacing as many base bytes, after `copy`.
    lit: Vec<u8>,
    /// Base positions by a hash of the [`KEY`] bytes there (first one wins), built on demand.
    index: Option<Vec<u32>>,
}

/// Slot of `key` (8 bytes) in an index of `2^bits` slots.
fn slot(key: &[u8], bits: u32) -> usize {
    let mut k = [0u8; KEY];
    k.copy_from_slice(key.get(..KEY).unwrap_or(&[0; KEY]));
    (u64::from_le_bytes(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

impl Encoder<'_> {
    fn flush(&mut self) {
        if self.lit.is_empty() {
            if self.copy > 0 {
                put_op(&mut self.out, 1, self.copy as u64);
            }
        } else {
            let mut c = self.copy;
            for chunk in self.lit.chunks(8) {
                let r = (chunk.len() - 1) as u8;
                let cb = c.min(7) as u8;
                self.out.push((cb << 5) | (r << 2));
                if c >= 7 {
                    put_varint(&mut self.out, (c - 7) as u64);
                }
                self.out.extend_from_slice(chunk);
                c = 0;
            }
            self.lit.clear();
        }
        self.copy = 0;
    }

    fn copy_byte(&mut self) {
        if !self.lit.is_empty() {
            self.flush();
        }
        self.copy += 1;
    }

    fn insert(&mut self, bytes: &[u8]) {
        self.flush();
        put_op(&mut self.out, 2, bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    fn seek(&mut self, delta: i64) {
        self.flush();
        put_op(&mut self.out, 3, ((delta << 1) ^ (delta >> 63)) as u64);
    }

    /// Where in the base the [`KEY`] bytes `key` also occur (one occurrence, if any).
    fn lookup(&mut self, key: &[u8]) -> Option<usize> {
        let base = self.base;
        let bits = (base.len().max(2) * 2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(4, 24);
        let index = self.index.get_or_insert_with(|| {
            let mut t = vec![u32::MAX; 1 << bits];
            for (p, w) in base.windows(KEY).enumerate() {
                if let Some(s) = t.get_mut(slot(w, bits)) {
                    if *s == u32::MAX {
                        *s = u32::try_from(p).unwrap_or(u32::MAX);
                    }
                }
            }
            t
        });
        let p = usize::try_from(*index.get(slot(key, bits))?).ok()?;
        (base.get(p..p.checked_add(KEY)?) == Some(key)).then_some(p)
    }
}

/// Whether `base[i..]` and `new[j..]` agree on the next [`SYNC`] bytes (or both end together).
fn synced(base: &[u8], i: usize, new: &[u8], j: usize) -> bool {
    let (Some(b), Some(n)) = (base.get(i..), new.get(j..)) else {
        return false;
    };
    if b.len() >= SYNC && n.len() >= SYNC {
        b[..SYNC] == n[..SYNC]
    } else {
        b == n
    }
}

/// Encodes `new` as a patch against `base`. `apply(base, &encode(base, new), _) == new`.
pub fn encode(base: &[u8], new: &[u8]) -> Vec<u8> {
    let mut e = Encoder {
        base,
        out: Vec::new(),
        copy: 0,
        lit: Vec::new(),
        index: None,
    };
    put_varint(&mut e.out, new.len() as u64);
    let (mut i, mut j) = (0usize, 0usize);
    // After a failed shift search, the next one waits a few bytes: unrelated data would cost
    // O(WINDOW^2) per byte otherwise.
    let mut search_from = 0usize;
    while let Some(&nb) = new.get(j) {
        if base.get(i) == Some(&nb) {
            e.copy_byte();
            i += 1;
            j += 1;
            continue;
        }
        // Still aligned if a replacement of up to WINDOW bytes gets back in step.
        if i < base.len() && (1..=WINDOW).any(|r| synced(base, i + r, new, j + r)) {
            e.lit.push(nb);
            i += 1;
            j += 1;
            continue;
        }
        // A shift: `a` base bytes dropped and `b` new bytes inserted, cheapest first.
        let mut best: Option<(usize, usize, usize)> = None;
        for b in (0..=WINDOW).filter(|_| j >= search_from) {
            for a in 0..=WINDOW {
                let cost = a.min(b) + if b > a { b - a + 2 } else { 2 };
                if best.is_some_and(|x| x.0 <= cost) || (a == b) {
                    continue;
                }
                if synced(base, i + a, new, j + b) && i + a <= base.len() {
                    best = Some((cost, a, b));
                }
            }
        }
        if let Some((_, a, b)) = best {
            let common = a.min(b);
            e.lit
                .extend_from_slice(new.get(j..j + common).unwrap_or_default());
            if b > a {
                e.insert(new.get(j + common..j + b).unwrap_or_default());
            } else {
                e.seek((a - b) as i64);
            }
            i += a;
            j += b;
            continue;
        }
        if let Some(p) = new.get(j..j + KEY).and_then(|k| e.lookup(k)) {
            e.seek(p as i64 - i as i64);
            i = p;
            continue;
        }
        if j >= search_from {
            search_from = j + WINDOW / 4;
        }
        e.lit.push(nb);
        i += 1;
        j += 1;
    }
    e.flush();
    e.out
}

struct Reader<'a> {
    p: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, PatchError> {
        let b = *self.p.get(self.pos).ok_or(PatchError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, PatchError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(PatchError::BadVarint);
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PatchError::BadVarint)
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8], PatchError> {
        let n = usize::try_from(n).map_err(|_| PatchError::Truncated)?;
        let end = self.pos.checked_add(n).ok_or(PatchError::Truncated)?;
        let s = self.p.get(self.pos..end).ok_or(PatchError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// The 6-bit operand of a tag, continued by a varint at 63.
    fn operand(&mut self, tag: u8) -> Result<u64, PatchError> {
        let n = u64::from(tag >> 2);
        if n == 63 {
            self.varint()?.checked_add(63).ok_or(PatchError::BadVarint)
        } else {
            Ok(n)
        }
    }
}

/// Applies a patch made by [`encode`] to `base`. The result may be at most `max_len` bytes
/// (capped at [`MAX_FRAME_LEN`]).
pub fn apply(base: &[u8], patch: &[u8], max_len: u32) -> Result<Vec<u8>, PatchError> {
    let max = max_len.min(MAX_FRAME_LEN);
    let mut r = Reader { p: patch, pos: 0 };
    let want = r.varint()?;
    if want > u64::from(max) {
        return Err(PatchError::TooLarge { len: want, max });
    }
    let want = want as usize;
    let mut out = Vec::with_capacity(want);
    let mut cursor = 0u64;
    let push = |out: &mut Vec<u8>, s: &[u8]| {
        if out.len() + s.len() > want {
            return Err(PatchError::Overrun(want));
        }
        out.extend_from_slice(s);
        Ok(())
    };
    let from_base = |cursor: u64, n: u64| -> Result<&[u8], PatchError> {
        if n == 0 {
            return Ok(&[]);
        }
        let end = cursor.saturating_add(n);
        let oob = PatchError::OutOfBase {
            start: cursor,
            end,
            base_len: base.len(),
        };
        let (Ok(s), Ok(e)) = (usize::try_from(cursor), usize::try_from(end)) else {
            return Err(oob);
        };
        base.get(s..e).ok_or(oob)
    };
    while r.pos < patch.len() {
        let tag = r.byte()?;
        match tag & 3 {
            0 => {
                let mut c = u64::from(tag >> 5);
                if c == 7 {
                    c = r.varint()?.checked_add(7).ok_or(PatchError::BadVarint)?;
                }
                let n = u64::from((tag >> 2) & 7) + 1;
                push(&mut out, from_base(cursor, c)?)?;
                push(&mut out, r.bytes(n)?)?;
                cursor = cursor.saturating_add(c).saturating_add(n);
            }
            1 => {
                let n = r.operand(tag)?;
                push(&mut out, from_base(cursor, n)?)?;
                cursor = cursor.saturating_add(n);
            }
            2 => {
                let n = r.operand(tag)?;
                push(&mut out, r.bytes(n)?)?;
            }
            _ => {
                let z = r.operand(tag)?;
                let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
                let to = i128::from(cursor) + i128::from(delta);
                if to < 0 || to > base.len() as i128 {
                    let end = u64::try_from(to.max(0)).unwrap_or(u64::MAX);
                    return Err(PatchError::OutOfBase {
                        start: cursor,
                        end,
                        base_len: base.len(),
                    });
                }
                cursor = to as u64;
            }
        }
    }
    if out.len() != want {
        return Err(PatchError::LengthMismatch {
            got: out.len(),
            want,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(base: &[u8], new: &[u8]) -> usize {
        let p = encode(base, new);
        assert_eq!(apply(base, &p, MAX_FRAME_LEN).unwrap(), new);
        p.len()
    }

    #[test]
    fn identical_payload_is_a_few_bytes() {
        let base: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert!(round_trip(&base, &base) <= 5);
        assert_eq!(round_trip(&[], &[]), 1);
        round_trip(&base, &[]);
        round_trip(&[], &base);
    }

    #[test]
    fn scattered_counter_changes_cost_their_bytes_plus_a_tag() {
        let base: Vec<u8> = (0..4000u32).map(|i| (i * 13 % 253) as u8).collect();
        let mut new = base.clone();
        for k in (100..3900).step_by(40) {
            new[k] ^= 0x55;
            new[k + 1] ^= 0x11;
        }
        // 95 changes of 2 bytes: at most a tag, a copy varint and the two bytes each.
        assert!(round_trip(&base, &new) <= 95 * 4 + 8);
    }

    #[test]
    fn shifts_and_insertions_resync() {
        let base: Vec<u8> = (0..3000u32)
            .map(|i| (i * 31 % 241) as u8 ^ (i / 241) as u8)
            .collect();
        let mut new = base.clone();
        new.splice(500..503, [1, 2, 3, 4, 5, 6, 7]); // a varint that grew
        new.drain(1000..1004); // one that shrank
        let station: Vec<u8> = (0..130u8).map(|b| b.wrapping_mul(3)).collect();
        new.splice(2000..2000, station.iter().copied()); // a new station
        new.drain(2500..2630); // a station gone
        let n = round_trip(&base, &new);
        assert!(n < 130 + 60, "{n}");
    }

    #[test]
    fn result_over_the_limit_is_refused() {
        let mut p = Vec::new();
        put_varint(&mut p, u64::from(MAX_FRAME_LEN) + 1);
        assert!(matches!(
            apply(&[], &p, u32::MAX),
            Err(PatchError::TooLarge { .. })
        ));
        let p = encode(&[], &[9u8; 100]);
        assert!(matches!(
            apply(&[], &p, 99),
            Err(PatchError::TooLarge { len: 100, max: 99 })
        ));
    }

    #[test]
    fn malformed_patches_are_typed_errors() {
        assert_eq!(
            apply(b"abc", &[], MAX_FRAME_LEN),
            Err(PatchError::Truncated)
        );
        // copy 5 from a 3-byte base
        assert!(matches!(
            apply(b"abc", &[5, 1 | (5 << 2)], MAX_FRAME_LEN),
            Err(PatchError::OutOfBase { .. })
        ));
        // insert 3 bytes with 1 present
        assert_eq!(
            apply(b"", &[3, 2 | (3 << 2), 1], MAX_FRAME_LEN),
            Err(PatchError::Truncated)
        );
        // writes more than announced
        assert_eq!(
            apply(b"abc", &[1, 1 | (3 << 2)], MAX_FRAME_LEN),
            Err(PatchError::Overrun(1))
        );
        // fewer than announced
        assert!(matches!(
            apply(b"abc", &[3, 1 | (2 << 2)], MAX_FRAME_LEN),
            Err(PatchError::LengthMismatch { got: 2, want: 3 })
        ));
        // seek before the base
        assert!(matches!(
            apply(b"abc", &[0, 3 | (1 << 2)], MAX_FRAME_LEN),
            Err(PatchError::OutOfBase { .. })
        ));
        // overlong varint
        assert_eq!(
            apply(b"", &[0xff; 11], MAX_FRAME_LEN),
            Err(PatchError::BadVarint)
        );
    }

    fn similar() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec((0usize..600, 0u8..4, any::<u8>(), 0usize..20), 0..30),
        )
            .prop_map(|(base, edits)| {
                let mut new = base.clone();
                for (at, kind, b, n) in edits {
                    let at = at.min(new.len());
                    match kind {
                        0 => new.insert(at, b),
                        1 => {
                            let end = (at + n).min(new.len());
                            new.drain(at..end);
                        }
                        2 => new.splice(at..at, vec![b; n]).for_each(drop),
                        _ => {
                            if let Some(x) = new.get_mut(at) {
                                *x ^= b | 1;
                            }
                        }
                    }
                }
                (base, new)
            })
    }

    proptest! {
        #[test]
        fn apply_inverts_encode_on_similar_payloads((base, new) in similar()) {
            let p = encode(&base, &new);
            prop_assert_eq!(apply(&base, &p, MAX_FRAME_LEN).unwrap(), new);
        }

        #[test]
        fn apply_inverts_encode_on_random_payloads(
            base in proptest::collection::vec(any::<u8>(), 0..300),
            new in proptest::collection::vec(0u8..4, 0..300),
        ) {
            let p = encode(&base, &new);
            prop_assert_eq!(apply(&base, &p, MAX_FRAME_LEN).unwrap(), new);
        }

        #[test]
        fn random_patches_never_panic(
            base in proptest::collection::vec(any::<u8>(), 0..200),
            patch in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(out) = apply(&base, &patch, 4096) {
                prop_assert!(out.len() <= 4096);
            }
        }

        #[test]
        fn truncated_patches_are_errors((base, new) in similar(), cut in any::<prop::sample::Index>()) {
            let p = encode(&base, &new);
            let cut = cut.index(p.len());
            // A cut patch either fails or (when the cut op was redundant) yields `new` exactly;
            // never anything else.
            if let Ok(out) = apply(&base, &p[..cut], MAX_FRAME_LEN) {
                prop_assert_eq!(out, new);
            }
        }
    }
}
