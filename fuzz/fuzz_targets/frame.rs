//! Fuzzes the frame decoder, `Message::from_frame`. The first byte picks the mode: even, the
//! rest is decoded as it is (header checks included); odd, the second byte picks a message kind
//! and the rest becomes the payload behind a valid header, so the payload decoders of every
//! kind are reached too. Nothing may panic, and whatever decodes must encode again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerstats_shared::message::frame_bytes;
use routerstats_shared::{Message, MessageKind, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let decoded = if mode % 2 == 0 {
        Message::from_frame(rest, MAX_FRAME_LEN)
    } else {
        let Some((&kind, payload)) = rest.split_first() else {
            return;
        };
        let kind = MessageKind::ALL[usize::from(kind) % MessageKind::ALL.len()];
        let Ok(frame) = frame_bytes(kind, payload) else {
            return;
        };
        Message::from_frame(&frame, MAX_FRAME_LEN)
    };
    if let Ok((msg, _)) = decoded {
        // A decoded message encodes again (it fit in a frame once).
        assert!(
            msg.to_frame().is_ok(),
            "{:?} decoded but does not encode",
            msg.kind()
        );
    }
});
