//! TODO: parser for board (being written).
