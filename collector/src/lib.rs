//! routerstats collector: enrolls routers, ingests their reports over mutual TLS into SQLite and
//! serves the HTTP API.
//!
//! [`serve`] starts everything from a [`config::Config`]; the `routerstats-collector` binary
//! (src/main.rs) is a thin CLI over this library.

pub mod actions;
pub mod alerts;
pub(crate) mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod duration;
pub(crate) mod http_server;
pub(crate) mod ingest;
pub mod pki;
pub mod remote_write;
pub mod server;
pub mod store;
pub mod thread_priority;

/// The `/metrics` exposition (its options and selectors), for the benchmarks.
pub use api::prometheus;
pub use config::Config;
pub use server::{serve, ServeError, ServeHandle};

#[cfg(test)]
mod net_tests;
