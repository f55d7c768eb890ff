//! Fuzzes the agent's parser of iw dev <if> station dump / station get: any bytes, read as the agent reads them (lossy
//! UTF-8), must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerstats_agent::sources;
use routerstats_shared::MacAddr;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sources::station_dump::parse(&text, "wlan0");
    let _ = sources::station_dump::parse_station_get(&text, "wlan0", MacAddr([2, 0, 0, 0, 0, 1]));
});
