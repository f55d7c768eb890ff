//! TODO: parser for openwrt_release (being written).
