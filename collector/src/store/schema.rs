//! Schema migrations: `MIGRATIONS[i]` brings the database from version `i` to `i + 1`
//! (`PRAGMA user_version` holds the version).
//!
//! Layout:
//! - `routers`, `tokens`, `api_keys`: the registry. Times in Unix seconds except `*_ms`.
//! - `reports`: one row per stored report, `UNIQUE(router_id, boot_id, seq)` deduplicates.
//! - Raw samples (`interface_samples`, `station_samples`, `wg_peer_samples`,
//!   `ovpn_client_samples`): `WITHOUT ROWID`, clustered by `(router_id, ts_ms, key...)` so one
//!   report's rows sit together, "router X between t1 and t2", "router X, interface/peer/client
//!   K between t1 and t2" (a router has few of those; K is filtered inside the key) and "latest of
//!   router X" are range scans, and retention deletes one range per router. Stations are many and
//!   roam between routers, so `station_samples` also has `(mac, ts_ms)`. No other secondary
//!   indexes: with many routers per batch, every index keyed by router or MAC dirties one page per
//!   router per commit, and that write amplification is what limits ingest. `ts_ms` is the
//!   agent's report time. Two stored reports of one router with the very same `ts_ms` keep only
//!   the first one's samples.
//! - Deltas are `NULL` when there is no usable previous sample (first sample, counter reset,
//!   new agent boot); rates (`*_bps`) are bits per second, `NULL` when the delta is.
//! - Rollups (`interface_rollup_5m`, `interface_rollup_1h`, `station_rollup_1h`,
//!   `wg_rollup_1h`): sums of deltas, maxima of rates and sample counts per bucket
//!   (`bucket_start_ms` is a multiple of the bucket length), UPSERTed in the ingest transaction.
//!   Clustered by `(bucket_start_ms, router_id, key)`: the open buckets are one small hot region,
//!   and the per-key index (`(router_id, name, ...)`, `(mac, ...)`, `(public_key, ...)`) is only
//!   written when a bucket row is created.
//! - Fleet-window summaries (version 3): `station_report_totals` (station deltas summed per
//!   report, raw retention; dropped in version 21), `ovpn_rollup_1h` (OpenVPN deltas per hour
//!   and session) and `station_fleet_1h` (`station_rollup_1h` summed over the fleet per hour), and
//!   `station_rollup_5m` (raw retention); see `MIGRATION_3`.
//! - Current state, replaced from the newest report of each router: `wireless_interfaces`,
//!   `leases`, `source_status`, `wg_interfaces` (version 4) (their `updated_ms` is the report
//!   time when the row last changed). They reference `routers` with `ON DELETE CASCADE`.
//! - Version 5: MLD links of wireless interfaces, station airtime, per-link station samples
//!   (`station_link_samples`); see `MIGRATION_5`.
//! - Alerts (version 6): `alerts`, `alert_silences`, `alert_deliveries`; see `MIGRATION_6`.
//! - `actions` (version 7): the fleet actions sent to routers, their state and result (the
//!   audit trail of every write; see `crate::actions`).
//! - Version 8: `probe_samples` (raw: one row per report and probed target, raw retention),
//!   `wan_addresses` (current state) and `alert_pending` (alert conditions waiting out their
//!   for-duration, so a restart does not restart the wait); see `MIGRATION_8`.
//! - Version 9: sealed raw samples. Closed hours of the raw sample tables (interface, station,
//!   station link, WireGuard, OpenVPN and probe samples) older than the hot window move into
//!   `raw_blocks` (one compressed block per router, table and hour; `store::blocks`,
//!   `store::sealed`), with `raw_block_keys` (MAC / public key / common name -> router and hour)
//!   for lookups across routers. The row tables keep the hot window (the current hour, the two
//!   closed hours before it and every router's newest hour); readers of older samples read
//!   `<table>_all`. `reports`, `station_report_totals` and `station_rollup_5m` stay rows
//!   (`reports` and `station_rollup_5m` are sealed from version 11 on; `station_report_totals`
//!   is dropped in version 21).
//! - Version 10: fleet-wide aggregates kept at ingest (`ovpn_rollup_1d`, `fleet_totals_1s`);
//!   see `MIGRATION_10` and `super::fleetagg`.
//! - Version 11: no table changes; `reports` (`tbl` 6) and `station_rollup_5m` (`tbl` 7) are
//!   sealed too and new blocks are zstd (format byte 2); see `MIGRATION_11`.
//! - Version 12: `ovpn_client_names` (router, common name -> newest sample time) and
//!   `ovpn_instance_sessions` (router, OpenVPN instance -> sessions of the newest report), kept
//!   at ingest for `/api/vpn/clients` and `/api/vpn/health`; see `super::vpnstate`.
//! - Version 13: per-router station peak rates per 5 minutes (`station_peak_5m`) for the
//!   fleet-wide bandwidth alerts; see `MIGRATION_13` and `super::station_peaks`.
//! - Version 14: `rollup_flushed`, the highest `reports.id` whose rollup contributions are in
//!   the rollup tables (the writer holds rollup sums in memory across batches; see
//!   `MIGRATION_14` and `super::ingest`).
//! - Version 15: `wg_peers`, the WireGuard peers of each router's newest report (current
//!   state, kept at ingest like `wg_interfaces`), indexed by public key and by name, so a peer is
//!   found without visiting every router; see `MIGRATION_15`.
//! - Version 16: `report_seq_runs`, the (boot_id, seq) runs of each sealed `reports` block, so a
//!   retransmit into a sealed hour is found without decoding the block (and also when the block
//!   is corrupt); see `MIGRATION_16` and `super::sealed`.
//! - Version 17: the newest sample values of each `wg_peers` row (`ts_ms`, handshake, counters,
//!   rates), kept at ingest, for the fleet-wide WireGuard summary; see `super::wg_latest`.
//! - Version 18: new blocks are format byte 3 (`super::blocks`), and the end of a block too
//!   large for its leaf page goes to `raw_block_tails`; see `MIGRATION_18`.
//! - Version 19: per-router probe rollups (`probe_rollup_5m`, `probe_rollup_1h`) kept at ingest,
//!   complete from `probe_rollup_start.start_ms` on; see `super::probe_rollup`.
//! - Version 20: `station_samples` loses its index by MAC (`station_samples_mac`); the writer
//!   lists each (hour, MAC, router) in `raw_block_keys` instead, and lookups by MAC go through
//!   it (`store::sealed`); see `MIGRATION_20`.
//! - Version 21: `station_report_totals` goes (the fleet's per-second sums come from the
//!   ingest's own sums and, rebuilt, from the station rows); see `MIGRATION_21`.

/// The migrations, in order.
pub const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
    MIGRATION_8,
    MIGRATION_9,
    MIGRATION_10,
    MIGRATION_11,
    super::vpnstate::MIGRATION_12,
    MIGRATION_13,
    MIGRATION_14,
    MIGRATION_15,
    MIGRATION_16,
    super::wg_latest::MIGRATION_17,
    MIGRATION_18,
    super::probe_rollup::MIGRATION_19,
    MIGRATION_20,
    MIGRATION_21,
];

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

CREATE TABLE interface_rollup_5m (
    router_id        INTEGER NOT NULL,
    name             TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, name)
) WITHOUT ROWID;
CREATE INDEX interface_rollup_5m_key ON interface_rollup_5m(router_id, name, bucket_start_ms);

CREATE TABLE interface_rollup_1h (
    router_id        INTEGER NOT NULL,
    name             TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, name)
) WITHOUT ROWID;
CREATE INDEX interface_rollup_1h_key ON interface_rollup_1h(router_id, name, bucket_start_ms);

CREATE TABLE station_rollup_1h (
    mac              TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, mac)
) WITHOUT ROWID;
CREATE INDEX station_rollup_1h_mac ON station_rollup_1h(mac, bucket_start_ms);

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
    PRIMARY KEY (bucket_start_ms, router_id, iface, public_key)
) WITHOUT ROWID;
CREATE INDEX wg_rollup_1h_key ON wg_rollup_1h(public_key, bucket_start_ms);

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

/// Version 2, for the API: users (client hosts) are looked up by their lease hostname,
/// case-insensitively, and OpenVPN clients by common name across routers (few rows per report,
/// so the index costs little at ingest).
const MIGRATION_2: &str = r#"
CREATE INDEX leases_hostname ON leases(hostname COLLATE NOCASE) WHERE hostname IS NOT NULL;
CREATE INDEX ovpn_client_samples_cn ON ovpn_client_samples(common_name, ts_ms);
"#;

/// Version 3, for the fleet-wide API windows (filled at ingest in the batch's transaction,
/// deleted by retention like the tables they summarize):
/// - `station_report_totals`: per stored report, the sums of its stations' deltas and how many
///   deltas are known (`rx_deltas`/`tx_deltas`, i.e. non-NULL) and how many station rows it
///   stored. A raw-level table (`ts_ms` is the report time, raw retention), clustered like the
///   raw samples: one row per report instead of one per station for fleet rate series.
/// - `ovpn_rollup_1h`: OpenVPN client deltas per hour and session (`router_id`, `instance`,
///   `common_name`, `real_address`, `connected_since`, which is -1 when the agent did not
///   report it), with the newest sample time `last_ts_ms`; 1-hour rollup retention.
/// - `station_rollup_5m`: like `station_rollup_1h` per 5 minutes, for the sub-hour parts of
///   fleet-wide windows; kept as long as the raw samples (no per-MAC index).
/// - `station_fleet_1h`: the whole fleet's `station_rollup_1h` per hour: sums of bytes and
///   samples, maxima of rates, and `stations`, its number of `station_rollup_1h` rows (one per
///   router and MAC); 1-hour rollup retention.
///
/// Both are filled from the raw samples already stored when the migration runs (summed as
/// floating point there, so that no sum can overflow: exact below 2^53 bytes, saturating).
const MIGRATION_3: &str = r#"
CREATE TABLE station_report_totals (
    router_id   INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    rx_bytes    INTEGER NOT NULL,
    tx_bytes    INTEGER NOT NULL,
    rx_deltas   INTEGER NOT NULL,
    tx_deltas   INTEGER NOT NULL,
    stations    INTEGER NOT NULL,
    PRIMARY KEY (router_id, ts_ms)
) WITHOUT ROWID;

CREATE TABLE ovpn_rollup_1h (
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    instance         TEXT NOT NULL,
    common_name      TEXT NOT NULL,
    real_address     TEXT NOT NULL,
    connected_since  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    last_ts_ms       INTEGER NOT NULL,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, instance, common_name, real_address, connected_since)
) WITHOUT ROWID;

CREATE TABLE station_rollup_5m (
    mac              TEXT NOT NULL,
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, mac)
) WITHOUT ROWID;

CREATE TABLE station_fleet_1h (
    bucket_start_ms  INTEGER PRIMARY KEY NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    max_rx_bps       INTEGER,
    max_tx_bps       INTEGER,
    samples          INTEGER NOT NULL,
    stations         INTEGER NOT NULL
);

INSERT INTO station_rollup_5m (mac, bucket_start_ms, router_id, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples)
SELECT mac, (ts_ms / 300000) * 300000, router_id, CAST(total(rx_delta) AS INTEGER), CAST(total(tx_delta) AS INTEGER),
       max(rx_bps), max(tx_bps), count(*)
FROM station_samples WHERE ts_ms >= 0 GROUP BY 2, router_id, mac;

INSERT INTO station_fleet_1h (bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples, stations)
SELECT bucket_start_ms, CAST(total(rx_bytes) AS INTEGER), CAST(total(tx_bytes) AS INTEGER), max(max_rx_bps),
       max(max_tx_bps), CAST(total(samples) AS INTEGER), count(*)
FROM station_rollup_1h GROUP BY bucket_start_ms;

INSERT INTO station_report_totals (router_id, ts_ms, rx_bytes, tx_bytes, rx_deltas, tx_deltas, stations)
SELECT router_id, ts_ms, CAST(total(rx_delta) AS INTEGER), CAST(total(tx_delta) AS INTEGER), count(rx_delta),
       count(tx_delta), count(*)
FROM station_samples GROUP BY router_id, ts_ms;

INSERT INTO ovpn_rollup_1h (bucket_start_ms, router_id, instance, common_name, real_address,
    connected_since, rx_bytes, tx_bytes, last_ts_ms, samples)
SELECT (ts_ms / 3600000) * 3600000, router_id, instance, common_name, real_address,
       coalesce(connected_since, -1), CAST(total(rx_delta) AS INTEGER), CAST(total(tx_delta) AS INTEGER),
       max(ts_ms), count(*)
FROM ovpn_client_samples WHERE ts_ms >= 0
GROUP BY 1, router_id, instance, common_name, real_address, coalesce(connected_since, -1);
"#;

/// Version 4: `wg_interfaces`, the current WireGuard interfaces of each router (the interface
/// part of the agent's `WgInterface`: public key, listen port, fwmark and the number of peers;
/// the private key is never sent). Replaced from the newest report like `wireless_interfaces`.
/// Empty after the migration until each router reports again (no older table holds the keys).
const MIGRATION_4: &str = r#"
CREATE TABLE wg_interfaces (
    router_id    INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    public_key   TEXT,
    listen_port  INTEGER,
    fwmark       INTEGER,
    peers        INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (router_id, name)
) WITHOUT ROWID;
"#;

/// Version 5: Wi-Fi 7 multi-link devices and airtime.
/// - `wireless_interfaces.links`: the links of a multi-link (MLD) interface as a JSON array of
///   `{link_id, addr, channel, freq_mhz, width_mhz, center1_mhz, center2_mhz, txpower_dbm}`
///   (current state, a handful of entries), NULL for a single-link interface.
/// - `station_samples`: airtime counters `tx_duration_us`/`rx_duration_us` (microseconds since
///   association, as the driver reports them), their per-report deltas `tx_airtime_us`/
///   `rx_airtime_us` (NULL like the byte deltas: first sample, re-association, counter reset),
///   `airtime_permille` (their sum over the report interval: the station's share of airtime in
///   per mille, above 1000 for a multi-link station using several radios), `airtime_weight`,
///   and `mesh_gate` (mesh peers: connected to a gate, 0/1).
/// - `station_link_samples`: the per-link figures of multi-link stations (one row per link of
///   a station in a report), clustered like `station_samples`; raw retention.
///
/// Rows stored before the migration have NULL in the new columns.
const MIGRATION_5: &str = r#"
ALTER TABLE wireless_interfaces ADD COLUMN links TEXT;
ALTER TABLE station_samples ADD COLUMN tx_duration_us INTEGER;
ALTER TABLE station_samples ADD COLUMN rx_duration_us INTEGER;
ALTER TABLE station_samples ADD COLUMN tx_airtime_us INTEGER;
ALTER TABLE station_samples ADD COLUMN rx_airtime_us INTEGER;
ALTER TABLE station_samples ADD COLUMN airtime_permille INTEGER;
ALTER TABLE station_samples ADD COLUMN airtime_weight INTEGER;
ALTER TABLE station_samples ADD COLUMN mesh_gate INTEGER;

CREATE TABLE station_link_samples (
    router_id        INTEGER NOT NULL,
    ts_ms            INTEGER NOT NULL,
    iface            TEXT NOT NULL,
    mac              TEXT NOT NULL,
    link_id          INTEGER NOT NULL,
    addr             TEXT,
    signal_dbm       INTEGER,
    rx_bytes         INTEGER,
    tx_bytes         INTEGER,
    tx_retries       INTEGER,
    tx_failed        INTEGER,
    tx_bitrate_kbps  INTEGER,
    rx_bitrate_kbps  INTEGER,
    tx_duration_us   INTEGER,
    rx_duration_us   INTEGER,
    PRIMARY KEY (router_id, ts_ms, iface, mac, link_id)
) WITHOUT ROWID;
"#;

/// Version 6, the alert subsystem (`crate::alerts`), written by its own connection, never by
/// the ingest writer:
/// - `alerts`: one row per alert, `state` firing then resolved, with `started_ms`/`ended_ms`
///   (collector clock) and the triggering `values` (JSON). At most one firing row per
///   `(rule, router_id, subject)` (deduplication, enforced by a partial unique index).
///   `router` and `site` are copied so history outlives a deleted router.
/// - `alert_silences`: optional `rule`, `router`, `site` matchers (all given ones must match),
///   active from `starts_ms` until `expires_ms`.
/// - `alert_deliveries`: the delivery queue (bounded by the collector), one row per alert
///   event and receiver, with its attempts and next attempt time; deleted once delivered or
///   given up.
const MIGRATION_6: &str = r#"
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    rule        TEXT NOT NULL,
    router_id   INTEGER NOT NULL,
    router      TEXT NOT NULL,
    site        TEXT,
    subject     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary     TEXT NOT NULL,
    "values"    TEXT NOT NULL,
    silenced    INTEGER NOT NULL DEFAULT 0,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    updated_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_firing ON alerts(rule, router_id, subject) WHERE state = 'firing';
CREATE INDEX alerts_started ON alerts(started_ms);
CREATE INDEX alerts_router ON alerts(router_id, started_ms);

CREATE TABLE alert_silences (
    id          INTEGER PRIMARY KEY,
    rule        TEXT,
    router      TEXT COLLATE NOCASE,
    site        TEXT,
    comment     TEXT NOT NULL,
    created_by  TEXT,
    created_ms  INTEGER NOT NULL,
    starts_ms   INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);

CREATE TABLE alert_deliveries (
    id               INTEGER PRIMARY KEY,
    alert_id         INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    event            TEXT NOT NULL CHECK (event IN ('firing', 'resolved')),
    receiver         TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_attempt_ms);
"#;

/// Version 7: `actions`, one row per fleet action: its typed parameters as JSON (`params`, the
/// serde form of `ActionKind`), who asked, the idempotency key (unique per caller), the times
/// (Unix seconds), the state (`queued` -> `sent` -> `done` | `failed` | `refused`, or `expired`
/// when the deadline passed first) and the router's answer (`output` bounded by the agent,
/// `result` the typed detail as JSON). Never holds a private key.
const MIGRATION_7: &str = r#"
CREATE TABLE actions (
    id               INTEGER PRIMARY KEY,
    router_id        INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL,
    idempotency_key  TEXT,
    requested_by     TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    deadline         INTEGER NOT NULL,
    sent_at          INTEGER,
    finished_at      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'done', 'failed', 'expired', 'refused')),
    result           TEXT,
    output           TEXT
);
CREATE UNIQUE INDEX actions_idempotency ON actions(requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX actions_open ON actions(router_id, state) WHERE state IN ('queued', 'sent');
CREATE INDEX actions_router ON actions(router_id, id);
"#;

/// Active ICMP probes and WAN addresses (agents since model version 3). `target` is the probed
/// address as text, `role` `gateway` or `target`; RTTs in microseconds, NULL without replies.
/// `alert_pending`: the alert engine's pending conditions (since when each has held).
const MIGRATION_8: &str = r#"
CREATE TABLE probe_samples (
    router_id   INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    target      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('gateway', 'target')),
    name        TEXT NOT NULL,
    sent        INTEGER NOT NULL CHECK (sent >= 0),
    received    INTEGER NOT NULL CHECK (received >= 0),
    rtt_min_us  INTEGER,
    rtt_avg_us  INTEGER,
    rtt_max_us  INTEGER,
    PRIMARY KEY (router_id, ts_ms, target)
) WITHOUT ROWID;
CREATE TABLE wan_addresses (
    router_id   INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    device      TEXT NOT NULL,
    addr        TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (router_id, device, addr)
) WITHOUT ROWID;
CREATE TABLE alert_pending (
    rule        TEXT NOT NULL,
    router_id   INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    since_ms    INTEGER NOT NULL,
    PRIMARY KEY (rule, router_id, subject)
) WITHOUT ROWID;
"#;

/// Version 9: sealed raw samples (see `store::sealed`; the rows stay in their tables until the
/// database writer seals them, a few router-hours at a time).
/// - `raw_blocks`: one block per router, sealed table (`tbl`, the index in
///   `store::sealed::SEALED`: 0 interface, 1 station, 2 station link, 3 WireGuard peer,
///   4 OpenVPN client, 5 probe samples; since version 11 also 6 reports and 7
///   `station_rollup_5m`) and hour (`hour_ms`, a multiple of one hour), with the
///   number of rows it holds; `data` is the block codec's output (`store::blocks`). Deleted by
///   retention once all of its hour is older than `raw_days`.
/// - `raw_block_keys`: the keys in each block of the tables looked up across routers (station
///   and station link samples: `mac`; WireGuard: `public_key`; OpenVPN: `common_name`),
///   clustered by hour so retention deletes one range, with an index by key (one range per
///   key lookup; the distinct keys of a table in order, for listing OpenVPN common names).
const MIGRATION_9: &str = r#"
CREATE TABLE raw_blocks (
    router_id  INTEGER NOT NULL,
    tbl        INTEGER NOT NULL,
    hour_ms    INTEGER NOT NULL,
    rows       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (router_id, tbl, hour_ms)
) WITHOUT ROWID;
CREATE TABLE raw_block_keys (
    hour_ms    INTEGER NOT NULL,
    tbl        INTEGER NOT NULL,
    key        TEXT NOT NULL,
    router_id  INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, tbl, key, router_id)
) WITHOUT ROWID;
CREATE INDEX raw_block_keys_key ON raw_block_keys(tbl, key);
"#;

/// The statement that fills `fleet_totals_1s` (per second of report time) from the station
/// sums of `$stations` (a SELECT of `s` (the second), `rx`, `tx`, `rxn`, `txn` and zeros for
/// the probe columns) and the `probe_samples` rows; sums as floating point, exact below 2^53
/// bytes: [`MIGRATION_10`] (from `station_report_totals`) and [`fleet_aggregates_backfill`]
/// (from `station_samples`, schema 21).
macro_rules! fleet_seconds_backfill_sql {
    ($stations:expr) => {
        concat!(
            "
INSERT INTO fleet_totals_1s (second, rx_bytes, tx_bytes, rx_deltas, tx_deltas, probes, probe_sent,
    probe_received, probe_rtt_weighted, probe_rtt_received, probe_rtt_max_us)
SELECT s, CAST(total(rx) AS INTEGER), CAST(total(tx) AS INTEGER), CAST(total(rxn) AS INTEGER),
       CAST(total(txn) AS INTEGER), CAST(total(n) AS INTEGER), CAST(total(sent) AS INTEGER),
       CAST(total(recv) AS INTEGER), CAST(total(w) AS INTEGER), CAST(total(wr) AS INTEGER), max(mx)
FROM (
",
            $stations,
            "
    UNION ALL
    SELECT (ts_ms - ((ts_ms % 1000) + 1000) % 1000) / 1000, 0, 0, 0, 0, 1, sent, received,
           coalesce(rtt_avg_us * received, 0), CASE WHEN rtt_avg_us IS NOT NULL THEN received ELSE 0 END,
           rtt_max_us
    FROM probe_samples
)
GROUP BY s;
"
        )
    };
}

/// Version 10 (after version 9, the block layout of raw samples), fleet-wide aggregates kept at
/// ingest (see `super::fleetagg`):
/// - `fleet_totals_1s`: per second of report time (`second` = `ts_ms` floored to whole
///   seconds), the sums over the whole fleet of the `station_report_totals` rows (station
///   deltas and how many are known) and of the `probe_samples` rows made in it (`probes` rows:
///   requests sent, replies received, `rtt_avg_us * received` and `received` of the rows with
///   an average, largest `rtt_max_us`); raw retention. Fleet-wide rate series and probe figures
///   read at most one row per second, however many routers report.
/// - `ovpn_rollup_1d`: `ovpn_rollup_1h` summed per UTC day (same key and columns,
///   `bucket_start_ms` a multiple of a day); 1-hour rollup retention (a day goes once it ended
///   by the cutoff). Backfilled from the hourly rows (floor division, so a bucket before 1970
///   lands in its own day like at ingest; sums as floating point, exact below 2^53 bytes).
pub(super) const MIGRATION_10: &str = concat!(
    r#"
CREATE TABLE ovpn_rollup_1d (
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    instance         TEXT NOT NULL,
    common_name      TEXT NOT NULL,
    real_address     TEXT NOT NULL,
    connected_since  INTEGER NOT NULL,
    rx_bytes         INTEGER NOT NULL,
    tx_bytes         INTEGER NOT NULL,
    last_ts_ms       INTEGER NOT NULL,
    samples          INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id, instance, common_name, real_address, connected_since)
) WITHOUT ROWID;

CREATE TABLE fleet_totals_1s (
    second              INTEGER PRIMARY KEY NOT NULL,
    rx_bytes            INTEGER NOT NULL,
    tx_bytes            INTEGER NOT NULL,
    rx_deltas           INTEGER NOT NULL,
    tx_deltas           INTEGER NOT NULL,
    probes              INTEGER NOT NULL,
    probe_sent          INTEGER NOT NULL,
    probe_received      INTEGER NOT NULL,
    probe_rtt_weighted  INTEGER NOT NULL,
    probe_rtt_received  INTEGER NOT NULL,
    probe_rtt_max_us    INTEGER
);

INSERT INTO ovpn_rollup_1d (bucket_start_ms, router_id, instance, common_name, real_address,
    connected_since, rx_bytes, tx_bytes, last_ts_ms, samples)
SELECT bucket_start_ms - ((bucket_start_ms % 86400000) + 86400000) % 86400000, router_id, instance,
       common_name, real_address, connected_since, CAST(total(rx_bytes) AS INTEGER),
       CAST(total(tx_bytes) AS INTEGER), max(last_ts_ms),
       CAST(total(samples) AS INTEGER)
FROM ovpn_rollup_1h
GROUP BY 1, router_id, instance, common_name, real_address, connected_since;
"#,
    fleet_seconds_backfill_sql!(
        "    SELECT (ts_ms - ((ts_ms % 1000) + 1000) % 1000) / 1000 AS s, rx_bytes AS rx, tx_bytes AS tx,
           rx_deltas AS rxn, tx_deltas AS txn, 0 AS n, 0 AS sent, 0 AS recv, 0 AS w, 0 AS wr, NULL AS mx
    FROM station_report_totals"
    )
);

/// Version 11 (after version 10): no table changes, a new version so that a collector from
/// before it refuses the database instead of misreading it (the writer keeps sealing the same
/// way, lazily, a few router-hours per step; nothing is converted here, so it takes no time on a
/// database of any size):
/// - `reports` rows are sealed into `raw_blocks` like the sample tables (`tbl` 6, read through
///   `reports_all`; a retransmit of a report of a sealed hour is found in its block).
/// - `station_rollup_5m` rows are sealed per router and hour (`tbl` 7, one `raw_block_keys`
///   entry with `key` '' per block; read by `store::sealed::for_each_sealed_station_5m`).
/// - New blocks are zstd-compressed (format byte 2); blocks sealed before keep deflate (format
///   byte 1) and still decode.
const MIGRATION_11: &str = "-- version 11: see the comment of MIGRATION_11 in schema.rs";

/// Version 18: `raw_block_tails`, and a new version so that a collector
/// from before it refuses the database instead of skipping the blocks it cannot read.
/// - `raw_block_tails`: the end of a block too large for its leaf page, in records that stay in
///   leaf pages (`part` 0, 1, ... in order); `raw_blocks.data` keeps the head, cut where its
///   overflow pages are full (see `super::sealed`; a block of about 2 KB took 4.6 KB of pages
///   as one record). Blocks stored before keep their one record (no tail rows).
/// - New blocks are format byte 3 (`super::blocks::FORMAT_BITS`: per column the cheapest
///   predictor, integer residuals as varints or as bit lengths plus raw low bits, type tags
///   once per column when constant); blocks of formats 1 (deflate) and 2 (zstd) keep their
///   bytes and still decode, so nothing is converted here (instant at any size); a block is
///   re-encoded only when late rows are merged into it.
const MIGRATION_18: &str = r#"
CREATE TABLE raw_block_tails (
    router_id  INTEGER NOT NULL,
    tbl        INTEGER NOT NULL,
    hour_ms    INTEGER NOT NULL,
    part       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (router_id, tbl, hour_ms, part)
) WITHOUT ROWID;
"#;

/// The (hour, MAC, router) of every `station_samples` row, listed in `raw_block_keys` (hours
/// rounded down, also below zero, as `sealed::floor_hour`): migration 20 and
/// [`station_keys_backfill`] (bulk writers).
macro_rules! list_station_keys_sql {
    () => {
        "INSERT OR IGNORE INTO raw_block_keys (hour_ms, tbl, key, router_id)
SELECT DISTINCT (ts_ms / 3600000 - (ts_ms < 0 AND ts_ms % 3600000 != 0)) * 3600000, 1, mac, router_id
FROM station_samples"
    };
}

/// Version 20: the index `station_samples_mac` goes. With 20 stations per router each of a
/// batch's station rows was an insert at its own place in it (20,000 MACs at 1,000 routers):
/// most of the database writer's time, and of its page cache, went into that index (plain
/// SQLite inserting the benchmark's rows: 210-311 us per report with it, 86-98 without).
/// The database writer lists each (hour, MAC, router) of the rows it inserts in
/// `raw_block_keys` instead, as sealing does for blocks, remembering per router the current
/// hour's MACs so that it writes one entry per station and hour and looks nothing up otherwise
/// (`super::ingest`; a trigger did the same for 15-20 us more per report); a lookup by MAC
/// reads the listed routers' hours by primary key (`super::sealed`, `station_samples_all`).
/// Writers of rows that bypass the ingest (the API benchmark's generator) run
/// [`station_keys_backfill`]. The rows already stored are listed here (one pass over
/// the hot window).
const MIGRATION_20: &str = concat!(
    "DROP INDEX station_samples_mac;\n",
    list_station_keys_sql!(),
    ";\n"
);

/// Version 14: `rollup_flushed`, one row, the
/// highest `reports.id` whose contributions to the rollup tables (`interface_rollup_*`,
/// `station_rollup_*`, `station_fleet_1h`, `wg_rollup_1h`, `ovpn_rollup_1h`/`_1d`,
/// `fleet_totals_1s`) have been written. The database writer may hold the sums of later reports
/// in memory (`super::ingest`); after a crash it rebuilds them from the raw rows of the reports
/// above this mark. Every report of an existing database is counted already: the mark starts
/// at the highest id (one primary-key lookup, instant at any size).
const MIGRATION_14: &str = r#"
CREATE TABLE rollup_flushed (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    report_id  INTEGER NOT NULL
);
INSERT INTO rollup_flushed (id, report_id) VALUES (1, coalesce((SELECT max(id) FROM reports), 0));
"#;

/// Version 15: `wg_peers`, the peers (interface, public key, name) of each router's newest
/// report: current state, replaced at ingest from the newest report like `wg_interfaces`
/// (`store::ingest`), so it changes only when a router's peer set or a peer's name changes.
/// The per-peer routes (`/api/metrics/peer/{key}`, `/peer/{name}`) find a key's or a name's
/// routers through its indexes (`wg_peers_key`, and `wg_peers_name` over named peers) and then
/// read each occurrence's newest sample by the primary key of `wg_peer_samples`, instead of
/// visiting the newest samples of every router. Backfilled from the newest samples (one
/// primary-key range per router: seconds at 10,000 routers).
pub(super) const MIGRATION_15: &str = r#"
CREATE TABLE wg_peers (
    router_id   INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
    iface       TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    name        TEXT,
    PRIMARY KEY (router_id, iface, public_key)
) WITHOUT ROWID;
CREATE INDEX wg_peers_key ON wg_peers(public_key);
CREATE INDEX wg_peers_name ON wg_peers(name) WHERE name IS NOT NULL;

INSERT INTO wg_peers (router_id, iface, public_key, name)
SELECT w.router_id, w.iface, w.public_key, w.name
FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms;
"#;

/// Version 16: `report_seq_runs`, per sealed `reports` block (router, hour), its reports as runs
/// of consecutive sequence numbers per agent boot (`seq_lo..=seq_hi`; one run per boot and hour
/// for an agent that lost nothing). Written with the block by the sealing (rewritten when late
/// rows are merged into it), deleted with it by retention. The ingest's duplicate lookup for a
/// report of a sealed hour reads these runs instead of decoding the block, so a corrupt block
/// cannot make a retransmit count twice (`super::sealed::sealed_report_exists`). Blocks sealed
/// before this version have no runs: their lookups decode the block as before, until retention
/// deletes them (nothing is converted here, so it takes no time on a database of any size).
const MIGRATION_16: &str = r#"
CREATE TABLE report_seq_runs (
    router_id  INTEGER NOT NULL,
    hour_ms    INTEGER NOT NULL,
    boot_id    BLOB NOT NULL,
    seq_lo     INTEGER NOT NULL,
    seq_hi     INTEGER NOT NULL,
    PRIMARY KEY (router_id, hour_ms, boot_id, seq_lo)
) WITHOUT ROWID;
"#;

/// The statement of [`MIGRATION_20`] that lists the (hour, MAC, router) of every
/// `station_samples` row in `raw_block_keys` (lookups by MAC go through them), for a database
/// whose samples were written around the ingest (the API benchmark's generator; the ingest lists
/// its own). Adds only what is missing.
pub fn station_keys_backfill() -> &'static str {
    list_station_keys_sql!()
}

/// The statement of [`MIGRATION_15`] that fills `wg_peers` from the newest samples, for a
/// database whose samples were written directly (the API benchmark's generator). Run on an
/// empty `wg_peers`.
pub fn wg_peers_backfill() -> &'static str {
    MIGRATION_15
        .find("INSERT INTO")
        .map_or("", |i| &MIGRATION_15[i..])
}

/// The statements that fill [`MIGRATION_10`]'s tables from the rows they summarize, for a
/// database whose rows were written directly (the API benchmark's generator) and for tests. Run
/// on empty version-10 tables. `ovpn_rollup_1d` as the migration fills it; `fleet_totals_1s`
/// from the station rows ([`FLEET_SECONDS_BACKFILL`]: the migration read
/// `station_report_totals`, which version 21 dropped).
pub fn fleet_aggregates_backfill() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let ovpn = MIGRATION_10
            .find("INSERT INTO ovpn_rollup_1d")
            .zip(MIGRATION_10.find("INSERT INTO fleet_totals_1s"))
            .map_or("", |(a, b)| &MIGRATION_10[a..b]);
        format!("{ovpn}{FLEET_SECONDS_BACKFILL}")
    });
    &SQL
}

/// `fleet_totals_1s` from the rows it sums, as [`MIGRATION_10`] fills it, reading the station
/// rows instead of their per-report sums (`station_report_totals`, dropped by version 21).
const FLEET_SECONDS_BACKFILL: &str = fleet_seconds_backfill_sql!(
    "    SELECT (ts_ms - ((ts_ms % 1000) + 1000) % 1000) / 1000 AS s, coalesce(rx_delta, 0) AS rx,
           coalesce(tx_delta, 0) AS tx, rx_delta IS NOT NULL AS rxn, tx_delta IS NOT NULL AS txn,
           0 AS n, 0 AS sent, 0 AS recv, 0 AS w, 0 AS wr, NULL AS mx
    FROM station_samples"
);

/// Version 21: `station_report_totals` goes. Its rows (one per report: the sums of the report's
/// stored station deltas) fed only `fleet_totals_1s`, which the database writer keeps from the
/// same sums in memory (`super::fleetagg`); a rebuild after a crash sums the report's station
/// rows, which it reads anyway (`super::ingest`). One insert per report at its own place in a
/// table clustered by router (a page per router per commit) is saved.
const MIGRATION_21: &str = "DROP TABLE station_report_totals;";

/// Per 5-minute bucket and router, the highest station rate in either direction (the largest
/// `max_rx_bps`/`max_tx_bps` of its `station_rollup_5m` rows; no row without any), kept at ingest
/// by `super::station_peaks`, with an index to find a bucket's routers at or over a rate.
/// Backfilled from `station_rollup_5m` over the 4 hours (`station_peaks::KEEP_MS`) before its
/// newest bucket: one range of the rollup's primary key, grouped in key order (no sort).
pub(super) const MIGRATION_13: &str = r#"
CREATE TABLE station_peak_5m (
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    peak_bps         INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, router_id)
) WITHOUT ROWID;
CREATE INDEX station_peak_5m_peak ON station_peak_5m(bucket_start_ms, peak_bps);

INSERT INTO station_peak_5m (bucket_start_ms, router_id, peak_bps)
SELECT bucket_start_ms, router_id, max(max(coalesce(max_rx_bps, -1), coalesce(max_tx_bps, -1))) AS p
FROM station_rollup_5m
WHERE bucket_start_ms >= (SELECT max(bucket_start_ms) FROM station_rollup_5m) - 14400000
GROUP BY bucket_start_ms, router_id
HAVING p >= 0;
"#;

/// The statement of [`MIGRATION_13`] that fills `station_peak_5m` from `station_rollup_5m`,
/// for a database whose rollup rows were written directly (the API benchmark's generator) and
/// for tests. Run on an empty table.
pub fn station_peaks_backfill() -> &'static str {
    MIGRATION_13
        .find("INSERT INTO")
        .map_or("", |i| &MIGRATION_13[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut expected = vec![
            "alert_deliveries",
            "alert_pending",
            "probe_samples",
            "probe_rollup_1h",
            "probe_rollup_5m",
            "probe_rollup_start",
            "raw_blocks",
            "raw_block_keys",
            "raw_block_tails",
            "wan_addresses",
            "alert_silences",
            "alerts",
            "actions",
            "api_keys",
            "interface_rollup_1h",
            "interface_rollup_5m",
            "interface_samples",
            "leases",
            "ovpn_client_samples",
            "ovpn_client_names",
            "ovpn_instance_sessions",
            "fleet_totals_1s",
            "ovpn_rollup_1d",
            "ovpn_rollup_1h",
            "reports",
            "report_seq_runs",
            "rollup_flushed",
            "routers",
            "source_status",
            "station_fleet_1h",
            "station_link_samples",
            "station_peak_5m",
            "station_rollup_1h",
            "station_rollup_5m",
            "station_samples",
            "tokens",
            "wg_interfaces",
            "wg_peer_samples",
            "wg_peers",
            "wg_rollup_1h",
            "wireless_interfaces",
        ];
        expected.sort_unstable();
        assert_eq!(tables, expected);
        assert_eq!(SCHEMA_VERSION, 21);
    }

    /// Version 21 drops `station_report_totals` and nothing else: the fleet's seconds it fed
    /// stay as they were.
    #[test]
    fn migration_21_drops_the_per_report_station_totals_only() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in &MIGRATIONS[..20] {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at) \
             VALUES (1, 'a', 'a', 'f1', 0, 0); \
             INSERT INTO station_report_totals (router_id, ts_ms, rx_bytes, tx_bytes, rx_deltas, tx_deltas, stations) \
             VALUES (1, 30000, 5, 7, 1, 1, 2); \
             INSERT INTO fleet_totals_1s (second, rx_bytes, tx_bytes, rx_deltas, tx_deltas, probes, probe_sent, \
             probe_received, probe_rtt_weighted, probe_rtt_received) VALUES (30, 5, 7, 1, 1, 0, 0, 0, 0, 0);",
        )
        .unwrap();
        let objects = |conn: &rusqlite::Connection| -> Vec<String> {
            conn.prepare("SELECT name FROM sqlite_master ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let mut before = objects(&conn);
        conn.execute_batch(MIGRATION_21).unwrap();
        before.retain(|n| n != "station_report_totals");
        assert_eq!(objects(&conn), before);
        let fleet: (i64, i64, i64) = conn
            .query_row(
                "SELECT second, rx_bytes, tx_bytes FROM fleet_totals_1s",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(fleet, (30, 5, 7));
    }

    /// Version 20: the MAC index goes, the stored station rows' (hour, MAC, router) are listed
    /// in `raw_block_keys` (hours rounded down, also before 1970), and a lookup by MAC still
    /// finds the rows.
    #[test]
    fn migration_20_lists_station_keys_instead_of_an_index() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in &MIGRATIONS[..19] {
            conn.execute_batch(m).unwrap();
        }
        let h = 3_600_000i64;
        conn.execute_batch(&format!(
            "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at) \
             VALUES (1, 'a', 'a', 'f1', 0, 0), (2, 'b', 'b', 'f2', 0, 0); \
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid) VALUES \
             (1, {t1}, 'wlan0', 'aa:00:00:00:00:01', 's'), (1, {t2}, 'wlan0', 'aa:00:00:00:00:01', 's'), \
             (1, {t3}, 'wlan0', 'aa:00:00:00:00:01', 's'), (2, {t3}, 'wlan1', 'aa:00:00:00:00:02', 's');",
            t1 = 400 * h + 5,
            t2 = 400 * h + 60_000,
            t3 = 401 * h + 1,
        ))
        .unwrap();
        conn.execute_batch(MIGRATION_20).unwrap();
        let keys = |conn: &rusqlite::Connection| -> Vec<(i64, String, i64)> {
            conn.prepare(
                "SELECT hour_ms, key, router_id FROM raw_block_keys WHERE tbl = 1 ORDER BY 1, 2, 3",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let a = "aa:00:00:00:00:01".to_string();
        let b = "aa:00:00:00:00:02".to_string();
        assert_eq!(
            keys(&conn),
            vec![
                (400 * h, a.clone(), 1),
                (401 * h, a.clone(), 1),
                (401 * h, b.clone(), 2)
            ]
        );
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'station_samples_mac'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
        // Rows written around the ingest are listed by `station_keys_backfill`: a new hour
        // (and one before 1970) once, a known one not again.
        conn.execute_batch(&format!(
            "INSERT INTO station_samples (router_id, ts_ms, iface, mac) VALUES \
             (2, {t4}, 'wlan1', 'aa:00:00:00:00:02'), (2, {t5}, 'wlan1', 'aa:00:00:00:00:02'), \
             (1, -1, 'wlan0', 'aa:00:00:00:00:01');",
            t4 = 401 * h + 30_000,
            t5 = 402 * h,
        ))
        .unwrap();
        assert_eq!(keys(&conn).len(), 3);
        conn.execute_batch(station_keys_backfill()).unwrap();
        assert_eq!(
            keys(&conn),
            vec![
                (-h, a.clone(), 1),
                (400 * h, a.clone(), 1),
                (401 * h, a.clone(), 1),
                (401 * h, b.clone(), 2),
                (402 * h, b.clone(), 2)
            ]
        );
        // Found by MAC through the keys (the virtual table reads their hours by primary key).
        crate::store::sealed::register(&conn).unwrap();
        let found: Vec<(i64, i64)> = conn
            .prepare(
                "SELECT router_id, ts_ms FROM station_samples_all WHERE mac = ?1 ORDER BY ts_ms",
            )
            .unwrap()
            .query_map([&b], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            found,
            vec![(2, 401 * h + 1), (2, 401 * h + 30_000), (2, 402 * h)]
        );
        let in_hour: i64 = conn
            .query_row(
                "SELECT count(*) FROM station_samples_all WHERE mac = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
                rusqlite::params![a, 400 * h + 10, 401 * h + 2],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_hour, 2);
    }
}
