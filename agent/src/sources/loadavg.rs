//! TODO: parser for loadavg (being written).
