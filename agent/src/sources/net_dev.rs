//! TODO: parser for net_dev (being written).
