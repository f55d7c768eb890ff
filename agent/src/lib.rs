//! routerstats agent library: source parsers, report collection, and the uplink to the collector.
//! The binary in `main.rs` only parses flags and calls into here.

pub mod actions;
pub mod cli_uplink;
pub mod clock;
pub mod collect;
pub mod config;
pub mod json;
pub mod parse_cmd;
pub mod probes;
pub mod snapshot;
pub mod sources;
pub mod uci;
pub mod uplink;

#[cfg(test)]
pub(crate) mod testutil;
