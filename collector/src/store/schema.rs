//! Schema migrations: `MIGRATIONS[i]` brings the database from version `i` to `i + 1`.

/// The schema version this collector writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migrations, in order.
pub const MIGRATIONS: &[&str] = &[""];
