//! TODO: parser for proc_stat (being written).
