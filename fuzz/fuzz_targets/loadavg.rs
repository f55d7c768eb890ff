//! Fuzzes the agent's parser of /proc/loadavg: any bytes, read as the agent reads them (lossy
//! UTF-8), must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerstats_agent::sources;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sources::loadavg::parse(&text);
});
