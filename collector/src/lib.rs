//! routerstats collector library.

pub mod store;
