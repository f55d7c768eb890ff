//! Schema migrations: `MIGRATIONS[i]` brings the database from version `i` to `i + 1`
//! (`PRAGMA user_version` holds the version).
//!
//! Layout:
//! - `routers`, `tokens`, `api_keys`: the registry. Times in Unix seconds except `*_ms`.
//! - `reports`: one row per stored report, `UNIQUE(router_id, boot_id, seq)` deduplicates.
//! - Raw samples (`interface_samples`, `station_samples`, `wg_peer_samples`,
//!   `ovpn_client_samples`): `WITHOUT ROWID`, clustered by `(router_id, ts_ms, key...)` so one
//!   report appends in one place, "router X between t1 and t2" and "latest of router X" are range
//!   scans, and retention deletes a range per router. Each has one secondary index for the
//!   per-key history: `(router_id, name, ts_ms)`, `(mac, ts_ms)`, `(public_key, ts_ms)`,
//!   `(common_name, ts_ms)`. `ts_ms` is the agent's report time. Two stored reports of one
//!   router with the very same `ts_ms` keep only the first one's samples.
//! - Deltas are `NULL` when there is no usable previous sample (first sample, counter reset,
//!   new agent boot); rates (`*_bps`) are bits per second, `NULL` when the delta is.
//! - Rollups (`interface_rollup_5m`, `interface_rollup_1h`, `station_rollup_1h`,
//!   `wg_rollup_1h`): sums of deltas and maxima of rates per bucket (`bucket_start_ms` is a
//!   multiple of the bucket length), updated in the ingest transaction.
//! - Current state, replaced from the newest report of each router: `wireless_interfaces`,
//!   `leases`, `source_status` (their `updated_ms` is the report time when the row last changed).

/// The migrations, in order.
pub const MIGRATIONS: &[&str] = &[MIGRATION_1];

/// The schema version this collector writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATION_1: &str = r#"
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    secret_hash   BLOB NOT NULL CHECK (length(secret_hash) = 32),
    name          TEXT NOT NULL,
    site          TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    max_uses      INTEGER NOT NULL CHECK (max_uses >= 0),
    uses          INTEGER NOT NULL DEFAULT 0,
    last_used_at  INTEGER
);

CREATE TABLE routers (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE COLLATE NOCASE,
    site               TEXT,
    hostname           TEXT NOT NULL,
    model              TEXT,
    board              TEXT,
    release            TEXT,
    revision           TEXT,
    target             TEXT,
    kernel             TEXT,
    agent_version      TEXT,
    arch               TEXT,
    cert_fingerprint   TEXT NOT NULL UNIQUE,
    cert_not_after     INTEGER NOT NULL,
    enrolled_at        INTEGER NOT NULL,
    token_id           TEXT REFERENCES tokens(id) ON DELETE SET NULL,
    revoked_at         INTEGER,
    last_seen_ms       INTEGER,
    uptime_s           INTEGER,
    last_report_id     INTEGER,
    last_boot_id       BLOB,
    last_seq           INTEGER,
    last_report_ms     INTEGER
);
CREATE INDEX routers_revoked ON routers(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX routers_token ON routers(token_id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    key_hash    BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    role        TEXT NOT NULL CHECK (role IN ('read', 'admin')),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE reports (
    id                    INTEGER PRIMARY KEY,
    router_id             INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    boot_id               BLOB NOT NULL,
    seq                   INTEGER NOT NULL,
    ts_ms                 INTEGER NOT NULL,
    received_ms           INTEGER NOT NULL,
    dropped_reports       INTEGER NOT NULL,
    uptime_s              INTEGER,
    load1                 REAL,
    load5                 REAL,
    load15                REAL,
    cpu_permille          INTEGER,
    mem_total_kb          INTEGER,
    mem_available_kb      INTEGER,
    mem_available_derived INTEGER,
    disk_mount            TEXT,
    disk_used_bytes       INTEGER,
    disk_total_bytes      INTEGER,
    interface_count       INTEGER NOT NULL,
    station_count         INTEGER NOT NULL,
    lease_count           INTEGER NOT NULL,
    wg_peer_count         INTEGER NOT NULL,
    ovpn_client_count     INTEGER NOT NULL,
    UNIQUE (router_id, boot_id, seq)
);
CREATE INDEX reports_router_ts ON reports(router_id, ts_ms);

CREATE TABLE interface_samples (
    router_id   INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rx_bytes    INTEGER NOT NULL,
    rx_packets  INTEGER NOT NULL,
    rx_errs     INTEGER NOT NULL,
    rx_drop     INTEGER NOT NULL,
    tx_bytes    INTEGER NOT NULL,
    tx_packets  INTEGER NOT NULL,
    tx_errs     INTEGER NOT NULL,
    tx_drop     INTEGER NOT NULL,
    rx_delta    INTEGER,
    tx_delta    INTEGER,
    rx_bps      INTEGER,
    tx_bps      INTEGER,
    PRIMARY KEY (router_id, ts_ms, name)
) WITHOUT ROWID;
CREATE INDEX interface_samples_key ON interface_samples(router_id, name, ts_ms);

CREATE TABLE station_samples (
    router_id             INTEGER NOT NULL,
    ts_ms                 INTEGER NOT NULL,
    iface                 TEXT NOT NULL,
    mac                   TEXT NOT NULL,
    ssid                  TEXT,
    signal_dbm            INTEGER,
    signal_avg_dbm        INTEGER,
    rx_bytes              INTEGER,
    tx_bytes              INTEGER,
    rx_packets            INTEGER,
    tx_packets            INTEGER,
    rx_delta              INTEGER,
    tx_delta              INTEGER,
    rx_bps                INTEGER,
    tx_bps                INTEGER,
    tx_retries            INTEGER,
    tx_failed             INTEGER,
    inactive_ms           INTEGER,
    connected_s           INTEGER,
    tx_bitrate_kbps       INTEGER,
    rx_bitrate_kbps       INTEGER,
    expected_throughput_kbps INTEGER,
    PRIMARY KEY (router_id, ts_ms, iface, mac)
) WITHOUT ROWID;
CREATE INDEX station_samples_mac ON station_samples(mac, ts_ms);

CREATE TABLE wg_peer_samples (
    router_id         INTEGER NOT NULL,
    ts_ms             INTEGER NOT NULL,
    iface             TEXT NOT NULL,
    public_key        TEXT NOT NULL,
    name              TEXT,
    endpoint          TEXT,
    allowed_ips       TEXT NOT NULL,
    latest_handshake  INTEGER,
    rx_bytes          INTEGER NOT NULL,
    tx_bytes          INTEGER NOT NULL,
    rx_delta          INTEGER,
    tx_delta          INTEGER,
    rx_bps            INTEGER,
    tx_bps            INTEGER,
    PRIMARY KEY (router_id, ts_ms, iface, public_key)
) WITHOUT ROWID;
CREATE INDEX wg_peer_samples_key ON wg_peer_samples(public_key, ts_ms);

CREATE TABLE ovpn_client_samples (
    router_id         INTEGER NOT NULL,
    ts_ms             INTEGER NOT NULL,
    instance          TEXT NOT NULL,
    common_name       TEXT NOT NULL,
    real_address      TEXT NOT NULL,
    virtual_address   TEXT,
    virtual_ipv6      TEXT,
    rx_bytes          INTEGER NOT NULL,
    tx_bytes          INTEGER NOT NULL,
    rx_delta          INTEGER,
    tx_delta          INTEGER,
    rx_bps            INTEGER,
    tx_bps            INTEGER,
    connected_since   INTEGER,
    username          TEXT,
    cipher            TEXT,
    PRIMARY KEY (router_id, ts_ms, instance, common_name, real_address)
) WITHOUT ROWID;
CREATE INDEX ovpn_client_samples_cn ON ovpn_client_samples(common_name, ts_ms);

CREATE TABLE interface_rollup_5m (
    router_id        INTEGER NOT NULL,
    name             TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (router_id, name, bucket_start_ms)
) WITHOUT ROWID;
CREATE INDEX interface_rollup_5m_bucket ON interface_rollup_5m(bucket_start_ms);

CREATE TABLE interface_rollup_1h (
    router_id        INTEGER NOT NULL,
    name             TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (router_id, name, bucket_start_ms)
) WITHOUT ROWID;
CREATE INDEX interface_rollup_1h_bucket ON interface_rollup_1h(bucket_start_ms);

CREATE TABLE station_rollup_1h (
    mac              TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (mac, bucket_start_ms, router_id)
) WITHOUT ROWID;
CREATE INDEX station_rollup_1h_bucket ON station_rollup_1h(bucket_start_ms, router_id);

CREATE TABLE wg_rollup_1h (
    public_key       TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    iface            TEXT NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (public_key, bucket_start_ms, router_id, iface)
) WITHOUT ROWID;
CREATE INDEX wg_rollup_1h_bucket ON wg_rollup_1h(bucket_start_ms, router_id);

CREATE TABLE wireless_interfaces (
    router_id    INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    phy          INTEGER,
    ifindex      INTEGER,
    addr         TEXT,
    type         TEXT NOT NULL,
    ssid         TEXT,
    channel      INTEGER,
    freq_mhz     INTEGER,
    width_mhz    INTEGER,
    center1_mhz  INTEGER,
    center2_mhz  INTEGER,
    txpower_dbm  REAL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (router_id, name)
) WITHOUT ROWID;

CREATE TABLE leases (
    router_id   INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    ip          TEXT NOT NULL,
    mac         TEXT,
    hostname    TEXT,
    client_id   TEXT,
    iaid        INTEGER,
    expires     INTEGER,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (router_id, ip)
) WITHOUT ROWID;
CREATE INDEX leases_mac ON leases(mac);

CREATE TABLE source_status (
    router_id    INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('ok', 'partial', 'error', 'tool_missing', 'disabled')),
    skipped      INTEGER,
    detail       TEXT,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (router_id, kind, name)
) WITHOUT ROWID;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        let tables: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        let mut expected = vec![
            "api_keys",
            "interface_rollup_1h",
            "interface_rollup_5m",
            "interface_samples",
            "leases",
            "ovpn_client_samples",
            "reports",
            "routers",
            "source_status",
            "station_rollup_1h",
            "station_samples",
            "tokens",
            "wg_peer_samples",
            "wg_rollup_1h",
            "wireless_interfaces",
        ];
        expected.sort_unstable();
        assert_eq!(tables, expected);
        assert_eq!(SCHEMA_VERSION, 1);
    }
}
