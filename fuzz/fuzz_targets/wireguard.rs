//! Fuzzes the agent's parser of wg show all dump, wg show <if> dump and wg show: any bytes, read as the agent reads them (lossy
//! UTF-8), must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerstats_agent::sources;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sources::wireguard::parse(&text, "wg0");
    let _ = sources::wireguard::parse_interface_dump(&text, "wg0");
    let _ = sources::wireguard::parse_dump(&text);
    let _ = sources::wireguard::parse_show(&text, 1_763_877_123);
});
