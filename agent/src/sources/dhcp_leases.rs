//! TODO: parser for dhcp_leases (being written).
