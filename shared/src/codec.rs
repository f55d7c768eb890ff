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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(decode::<u32>(&bytes), Err(CodecError::TrailingBytes(1))));
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }
}
