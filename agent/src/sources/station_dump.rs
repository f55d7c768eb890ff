//! TODO: parser for station_dump (being written).
