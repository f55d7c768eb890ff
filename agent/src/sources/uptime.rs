//! TODO: parser for uptime (being written).
