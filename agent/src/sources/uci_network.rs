//! TODO: parser for uci_network (being written).
