//! routerstats collector: enrolls routers, ingests their reports over mutual TLS into SQLite and
//! serves the HTTP API.

pub mod pki;
pub mod store;
