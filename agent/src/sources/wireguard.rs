//! TODO: parser for wireguard (being written).
