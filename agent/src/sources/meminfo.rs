//! TODO: parser for meminfo (being written).
