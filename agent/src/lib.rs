//! routerstats agent library: source parsers, report collection, and the uplink to the collector.
//! The binary in `main.rs` only parses flags and calls into here.

pub mod sources;
pub mod uplink;

#[cfg(test)]
pub(crate) mod testutil;
