//! The parts of the API benchmark that other benchmarks reuse (`bench-ingest` reads the API
//! with the same routes while it ingests): the GET route mix and a minimal HTTP client.

pub mod client;
pub mod routes;
