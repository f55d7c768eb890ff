//! TODO: parser for iw_dev (being written).
