//! TODO: parser for openvpn (being written).
