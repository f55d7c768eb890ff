//! routerstats collector: enrolls routers, ingests their reports over mutual TLS into SQLite and
//! serves the HTTP API.

pub mod config;
pub mod duration;
pub mod pki;
pub mod store;
pub mod tokens;
