//! Payload encoding: the only module that names bincode.
//!
//! bincode 2.0.1 is pinned and unmaintained (RUSTSEC-2025-0141); keeping every use behind
//! [`encode`] and [`decode`] means the wire format can move to another encoding by changing this
//! file and bumping [`crate::PROTOCOL_VERSION`].
//!
//! The configuration is bincode's `standard()`: little endian with variable-length integers, so
//! counters that are usually small cost one byte, and a decode limit equal to the frame limit so a
//! hostile length prefix inside a payload cannot make the decoder allocate more than a frame.

use serde::{de::DeserializeOwned, Serialize};

use crate::frame::MAX_FRAME_LEN;

/// Why a payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode payload: {0}")]
    Encode(String),
    #[error("malformed payload: {0}")]
    Decode(String),
    #[error("payload has {0} trailing bytes after the message")]
    TrailingBytes(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_FRAME_LEN as usize }>()
}

/// Encodes a value into a payload.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a payload that must contain exactly one value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Reads bincode `standard()` values by hand, for payloads whose serde-derived decoder costs
/// too much code on a router (see `action::ActionKind`'s decoder; packaging/README.md, Size):
/// unsigned integers as varints (`< 251`: one byte; `251`/`252`/`253`: a little-endian
/// u16/u32/u64 follows), strings as a varint length and UTF-8 bytes, `Option` as a `0`/`1` byte
/// then the value, enum variants as a varint u32 index. Tests compare it with [`encode`].
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.bytes.len() {
            return Err(CodecError::Decode(format!(
                "{n} bytes wanted, {} left",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// A varint of at most 64 bits.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(1)?[0];
        let le = |s: &[u8]| s.iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
        Ok(match b {
            0..=250 => u64::from(b),
            251 => le(self.take(2)?),
            252 => le(self.take(4)?),
            253 => le(self.take(8)?),
            _ => return Err(CodecError::Decode(format!("bad varint tag {b}"))),
        })
    }

    /// A varint of at most 32 bits (also an enum variant index). As bincode, refuses the 64-bit
    /// form (tag `253`) even for a value that would fit.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        if self.bytes.first() == Some(&253) {
            return Err(CodecError::Decode(
                "a 64-bit varint where a u32 was expected".into(),
            ));
        }
        let v = self.u64()?;
        u32::try_from(v).map_err(|_| CodecError::Decode(format!("{v} does not fit in a u32")))
    }

    /// An `i64`: a zigzagged varint.
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let v = self.u64()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A fixed-size byte array: its bytes, no length.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A byte string (`Vec<u8>`): a varint length, then the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, CodecError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::Decode(e.to_string()))
    }

    pub fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            t => Err(CodecError::Decode(format!("bad Option tag {t}"))),
        }
    }

    /// A `bool`: one byte, `0` or `1`.
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(CodecError::Decode(format!("bad bool byte {t}"))),
        }
    }

    /// Ends the read: every byte must have been used.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }
}

/// Writes bincode `standard()` values by hand, the mirror of [`Reader`], for the payloads an
/// agent sends ([`crate::encode`]): serde's derived encoders instantiated for bincode cost the
/// agent ~30 KB of code on MIPS (packaging/README.md, Size). Unsigned integers as varints (`< 251`:
/// one byte; else `251`/`252`/`253` and the value as a little-endian u16/u32/u64), signed ones
/// zigzagged first, `u8` and `bool` as one byte, floats as their little-endian bits, lengths as
/// varints. Tests compare every message with [`encode`].
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    /// Any unsigned integer (u16, u32, u64, usize, an enum variant index) as a varint.
    #[inline(never)]
    pub fn u64(&mut self, v: u64) {
        if v < 251 {
            self.out.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            self.out.push(251);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.out.push(252);
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            self.out.push(253);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// An `i64`, zigzagged (0, -1, 1, -2... -> 0, 1, 2, 3...) then as a varint.
    pub fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    /// An `i32`, zigzagged in 32 bits then as a varint.
    pub fn i32(&mut self, v: i32) {
        self.u64(u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    pub fn f32(&mut self, v: f32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Bytes as they are, without a length (fixed-size arrays, the inside of a string).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// A string: its length in bytes as a varint, then its UTF-8 bytes.
    #[inline(never)]
    pub fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.raw(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_reads_what_encode_writes() {
        for v in [
            0u64,
            250,
            251,
            300,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let b = encode(&v).unwrap();
            let mut r = Reader::new(&b);
            assert_eq!(r.u64().unwrap(), v);
            r.finish().unwrap();
        }
        let b = encode(&(u32::MAX as u64 + 1)).unwrap();
        assert!(Reader::new(&b).u32().is_err());
        for s in [None, Some(String::new()), Some("é".repeat(300))] {
            let b = encode(&s).unwrap();
            let mut r = Reader::new(&b);
            assert_eq!(r.opt_string().unwrap(), s);
            r.finish().unwrap();
        }
        assert!(Reader::new(&[5, b'a']).string().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).string().is_err());
        assert!(Reader::new(&[2]).opt_string().is_err());
        assert!(Reader::new(&[254]).u64().is_err());
        assert!(Reader::new(&[1, 2]).finish().is_err());
    }

    #[test]
    fn small_counters_cost_one_byte() {
        assert_eq!(encode(&5u64).unwrap().len(), 1);
        assert_eq!(encode(&300u64).unwrap().len(), 3);
        assert_eq!(encode(&u64::MAX).unwrap().len(), 9);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }
}
