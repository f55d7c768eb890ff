//! routerstats agent library: source parsers, report collection, and the uplink to the collector.
//! The binary in `main.rs` only parses flags and calls into here.

pub mod config;
pub mod sources;
pub mod uci;

#[cfg(test)]
pub(crate) mod testutil;
