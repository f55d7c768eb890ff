//! How reports travel from a router's TLS connection into SQLite.
//!
//! - [`listener`]: the TLS listener and one task per connection (enrollment, `Hello`, reports,
//!   renewals), with its caps and timeouts.
//! - [`control`]: the registry service on its own thread: certificate lookups, enrollment and
//!   renewal against the database.
//! - [`writer`]: the one database writer that batches reports from every connection and acks them
//!   after commit.
//! - [`revocation`]: closing the open connections of revoked routers.
//! - [`guard`]: limits before authentication: the pre-auth connection pool (per address, with
//!   eviction) and the failed-enrollment budget per address.
//!
//! The SQL that stores a report lives in [`crate::store`]; this module only moves frames.

pub mod control;
pub mod guard;
pub mod listener;
pub mod revocation;
pub mod writer;
