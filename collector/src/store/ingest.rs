//! Ingest of report batches: one IMMEDIATE transaction per batch.
//!
//! Per report: the `reports` row (dedup on `(router_id, boot_id, seq)`; a duplicate writes
//! nothing else), raw samples with deltas and rates against the previous sample of the same
//! counter, rollup contributions (summed in memory, then UPSERTed once per bucket: with the
//! batch, or, with a rollup hold, together with later batches; see [`Held`]), and, when the
//! report is the router's newest, the current-state tables
//! (`wireless_interfaces`, `leases`, `source_status`, `wg_interfaces`) and the router's facts.
//!
//! The previous samples live in an in-memory cache per router ([`RouterCache`]); a router not in
//! the cache is loaded from the samples of its last stored report (one query per table). The
//! cache is only trusted while this `Store` is the only writer of samples; it is dropped whenever
//! a batch fails, so it never holds rolled-back state.
//!
//! "Newest" means: the first report of a router, a report of another agent boot (agents send
//! spooled reports in order, so a new boot comes after the old one), or a later `seq` of the same
//! boot. An older `seq` arriving late is stored, without deltas, and changes no current state.

use super::{FastMap as HashMap, FastSet as HashSet};
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use routerstats_shared::model::{
    DhcpLease, MacAddr, Report, SourceState, SourceStatus, StationLink, StationLinkStats,
    WanAddress, WgInterface, WifiLink, WirelessInterface,
};

use super::delta::{pair_delta, station_reassociated, PairDelta, PrevSample, SampleOrigin, Width};
use super::{sat, sat_opt, IngestItem, IngestOutcome, Store, StoreError};

/// Length of a 5-minute rollup bucket.
pub const BUCKET_5M_MS: i64 = 5 * 60 * 1000;
/// Length of a 1-hour rollup bucket.
pub const BUCKET_1H_MS: i64 = 60 * 60 * 1000;
/// Cache entries of counters not seen for this many reports are dropped.
const CACHE_KEEP_REPORTS: u64 = 360;
/// How often (in reports of a router) the cache is pruned.
const CACHE_PRUNE_EVERY: u64 = 128;

/// The start of the bucket of length `len` (> 0) holding `ts_ms`.
pub fn bucket_start(ts_ms: i64, len: i64) -> i64 {
    ts_ms.div_euclid(len.max(1)).saturating_mul(len.max(1))
}

/// Previous samples and current state of one router, as last written.
#[derive(Debug, Default)]
pub(crate) struct RouterCache {
    /// The router's newest stored report.
    last: Option<SampleOrigin>,
    ifaces: HashMap<String, PrevSample>,
    /// interface -> station MAC -> previous samples.
    stations: HashMap<String, HashMap<MacAddr, StationPrev>>,
    /// interface -> peer public key -> previous sample.
    wg: HashMap<String, HashMap<String, PrevSample>>,
    /// instance -> (common name, real address) -> previous sample.
    ovpn: HashMap<String, HashMap<(String, String), PrevSample>>,
    /// The current-state rows as written (None: unknown, compare with the database).
    wireless: Option<Vec<WirelessInterface>>,
    leases: Option<Vec<DhcpLease>>,
    sources: Option<Vec<SourceStatus>>,
    wg_ifaces: Option<Vec<WgIfaceRow>>,
    wg_peers: Option<Vec<WgPeerRow>>,
    wan: Option<Vec<WanAddress>>,
    /// Whether `ovpn_instance_sessions` has rows of this router, as last written (None:
    /// unknown).
    ovpn_sessions: Option<bool>,
    reports_since_prune: u64,
    /// The station MACs listed in `raw_block_keys` for this router's newest hour of station
    /// rows (schema 20: lookups by MAC go through those entries).
    station_keys: StationKeys,
    /// Every sealed `reports` block of this router is of an hour before this (`i64::MIN`:
    /// none; None: unknown). A report made at or after it cannot be in a sealed hour: its
    /// duplicate check needs only the `reports` key, not the sealed hour's runs. Raised by
    /// sealing ([`RouterCache::sealed_hour`]); retention only deletes blocks.
    sealed_reports_before: Option<i64>,
}

/// A station's previous sample: its byte counters, and its airtime counters (rx/tx duration,
/// microseconds) from the newest sample that had them.
#[derive(Debug, Clone, Copy)]
struct StationPrev {
    bytes: PrevSample,
    airtime: Option<PrevSample>,
}

/// MACs whose (hour, MAC, router) entry is in `raw_block_keys`, for one hour.
#[derive(Debug, Default)]
struct StationKeys {
    /// The hour (None: nothing listed yet).
    hour: Option<i64>,
    macs: HashSet<MacAddr>,
}

impl StationKeys {
    /// Whether the entry of `mac` at `ts` may be missing: not known as listed.
    fn needs(&self, mac: &MacAddr, ts: i64) -> bool {
        self.hour != Some(super::sealed::floor_hour(ts)) || !self.macs.contains(mac)
    }

    /// Notes the entry of `mac` at `ts` as listed (older hours than the newest are not kept:
    /// a late row costs one `INSERT OR IGNORE`).
    fn listed(&mut self, mac: MacAddr, ts: i64) {
        let hour = super::sealed::floor_hour(ts);
        match self.hour {
            Some(h) if h > hour => return,
            Some(h) if h == hour => {}
            _ => {
                self.hour = Some(hour);
                self.macs.clear();
            }
        }
        self.macs.insert(mac);
    }
}

/// The stored part of a WireGuard interface (a `wg_interfaces` row without router and time).
#[derive(Debug, Clone, PartialEq, Eq)]
struct WgIfaceRow {
    name: String,
    public_key: Option<String>,
    listen_port: Option<u16>,
    fwmark: Option<u32>,
    peers: i64,
}

/// A `wg_peers` row without its router: a peer of the newest report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WgPeerRow {
    iface: String,
    public_key: String,
    name: Option<String>,
}

impl WgPeerRow {
    /// The peers of a report, each (interface, key) once: the first occurrence, as in
    /// `wg_peer_samples` (its insert keeps the first row of a key).
    fn of_report(ifaces: &[WgInterface]) -> Vec<WgPeerRow> {
        let mut seen: HashSet<(&str, &str)> = HashSet::default();
        let mut out = Vec::new();
        for wif in ifaces {
            for p in &wif.peers {
                if seen.insert((wif.name.as_str(), p.public_key.as_str())) {
                    out.push(WgPeerRow {
                        iface: wif.name.clone(),
                        public_key: p.public_key.clone(),
                        name: p.name.clone(),
                    });
                }
            }
        }
        out
    }
}

impl WgIfaceRow {
    fn of(w: &WgInterface) -> Self {
        WgIfaceRow {
            name: w.name.clone(),
            public_key: w.public_key.clone(),
            listen_port: w.listen_port,
            fwmark: w.fwmark,
            peers: i64::try_from(w.peers.len()).unwrap_or(i64::MAX),
        }
    }
}

impl RouterCache {
    /// Sealing wrote this router's blocks of the hour starting at `hour_ms`.
    pub(super) fn sealed_hour(&mut self, hour_ms: i64) {
        if let Some(b) = &mut self.sealed_reports_before {
            *b = (*b).max(hour_ms.saturating_add(super::sealed::HOUR_MS));
        }
    }

    /// Whether a report made at `ts_ms` may be in one of this router's sealed hours.
    fn may_be_sealed(&self, ts_ms: i64) -> bool {
        // Hours start at multiples of an hour: an hour before `b` ends by `b`.
        self.sealed_reports_before.is_none_or(|b| ts_ms < b)
    }

    fn clear_samples(&mut self) {
        self.ifaces.clear();
        self.stations.clear();
        self.wg.clear();
        self.ovpn.clear();
    }

    /// Drops counters not seen in the last [`CACHE_KEEP_REPORTS`] reports.
    fn prune(&mut self, seq: u64) {
        self.reports_since_prune += 1;
        if self.reports_since_prune < CACHE_PRUNE_EVERY {
            return;
        }
        self.reports_since_prune = 0;
        let keep = |p: &PrevSample| p.origin.seq.saturating_add(CACHE_KEEP_REPORTS) >= seq;
        self.ifaces.retain(|_, p| keep(p));
        for m in self.stations.values_mut() {
            m.retain(|_, p| {
                if p.airtime.as_ref().is_some_and(|a| !keep(a)) {
                    p.airtime = None;
                }
                keep(&p.bytes)
            });
        }
        self.stations.retain(|_, m| !m.is_empty());
        for m in self.wg.values_mut() {
            m.retain(|_, p| keep(p));
        }
        self.wg.retain(|_, m| !m.is_empty());
        for m in self.ovpn.values_mut() {
            m.retain(|_, p| keep(p));
        }
        self.ovpn.retain(|_, m| !m.is_empty());
    }
}

/// Stores `value` under the string key `key` without allocating when the key exists.
fn remember<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
    } else {
        map.insert(key.to_string(), value);
    }
}

/// The inner map under `key`, created when missing (allocates the key only then).
fn inner<'m, K, V>(
    map: &'m mut HashMap<String, HashMap<K, V>>,
    key: &str,
) -> Option<&'m mut HashMap<K, V>> {
    if !map.contains_key(key) {
        map.insert(key.to_string(), HashMap::default());
    }
    map.get_mut(key)
}

/// Inserts `value` under `key` in the inner map under `outer`, created when missing (one
/// lookup of `outer` when it exists; allocates it only when it does not).
fn insert_inner<K: Eq + Hash, V>(
    map: &mut HashMap<String, HashMap<K, V>>,
    outer: &str,
    key: K,
    value: V,
) {
    match map.get_mut(outer) {
        Some(m) => {
            m.insert(key, value);
        }
        None => {
            let mut m = HashMap::default();
            m.insert(key, value);
            map.insert(outer.to_string(), m);
        }
    }
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// Loads a router's cache from its last stored report.
fn load_router_cache(tx: &Transaction<'_>, router_id: i64) -> Result<RouterCache, StoreError> {
    let row = tx
        .prepare_cached("SELECT last_boot_id, last_seq, last_report_ms FROM routers WHERE id = ?1")?
        .query_row([router_id], |r| {
            Ok((
                r.get::<_, Option<Vec<u8>>>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .optional()?;
    let Some((boot, seq, ts)) = row else {
        return Err(StoreError::NotFound(format!("router {router_id}")));
    };
    let mut cache = RouterCache {
        sealed_reports_before: Some(super::sealed::sealed_reports_before(tx, router_id)?),
        ..RouterCache::default()
    };
    let (Some(boot), Some(seq), Some(ts_ms)) = (boot, to_u64(seq), ts) else {
        return Ok(cache);
    };
    let Ok(boot_id) = <[u8; 16]>::try_from(boot.as_slice()) else {
        return Ok(cache);
    };
    let origin = SampleOrigin {
        boot_id,
        seq,
        ts_ms,
    };
    cache.last = Some(origin);
    let prev = |rx: Option<i64>, tx: Option<i64>, session: Option<i64>| PrevSample {
        origin,
        rx: to_u64(rx),
        tx: to_u64(tx),
        session: to_u64(session),
    };

    let mut st = tx.prepare_cached("SELECT name, rx_bytes, tx_bytes FROM interface_samples WHERE router_id = ?1 AND ts_ms = ?2")?;
    let mut rows = st.query(params![router_id, ts_ms])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        cache.ifaces.insert(name, prev(r.get(1)?, r.get(2)?, None));
    }

    let mut st = tx.prepare_cached(
        "SELECT iface, mac, rx_bytes, tx_bytes, connected_s, rx_duration_us, tx_duration_us \
         FROM station_samples WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut rows = st.query(params![router_id, ts_ms])?;
    while let Some(r) = rows.next()? {
        let iface: String = r.get(0)?;
        let mac: String = r.get(1)?;
        let Ok(mac) = mac.parse::<MacAddr>() else {
            continue;
        };
        let bytes = prev(r.get(2)?, r.get(3)?, r.get(4)?);
        let a = prev(r.get(5)?, r.get(6)?, r.get(4)?);
        let airtime = (a.rx.is_some() || a.tx.is_some()).then_some(a);
        insert_inner(
            &mut cache.stations,
            &iface,
            mac,
            StationPrev { bytes, airtime },
        );
    }

    let mut st =
        tx.prepare_cached("SELECT iface, public_key, rx_bytes, tx_bytes FROM wg_peer_samples WHERE router_id = ?1 AND ts_ms = ?2")?;
    let mut rows = st.query(params![router_id, ts_ms])?;
    while let Some(r) = rows.next()? {
        let iface: String = r.get(0)?;
        let key: String = r.get(1)?;
        let p = prev(r.get(2)?, r.get(3)?, None);
        insert_inner(&mut cache.wg, &iface, key, p);
    }

    let mut st = tx.prepare_cached(
        "SELECT instance, common_name, real_address, rx_bytes, tx_bytes, connected_since \
         FROM ovpn_client_samples WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut rows = st.query(params![router_id, ts_ms])?;
    while let Some(r) = rows.next()? {
        let instance: String = r.get(0)?;
        let key: (String, String) = (r.get(1)?, r.get(2)?);
        let p = prev(r.get(3)?, r.get(4)?, r.get(5)?);
        insert_inner(&mut cache.ovpn, &instance, key, p);
    }
    Ok(cache)
}

/// Sums and maxima of one rollup bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Acc {
    rx: u64,
    tx: u64,
    max_rx: Option<u64>,
    max_tx: Option<u64>,
    samples: u64,
}

impl Acc {
    /// Adds another bucket's sums and maxima.
    fn merge(&mut self, o: &Acc) {
        self.rx = self.rx.saturating_add(o.rx);
        self.tx = self.tx.saturating_add(o.tx);
        self.max_rx = self.max_rx.max(o.max_rx);
        self.max_tx = self.max_tx.max(o.max_tx);
        self.samples = self.samples.saturating_add(o.samples);
    }

    fn add(&mut self, d: &PairDelta) {
        self.rx = self.rx.saturating_add(d.rx_delta.unwrap_or(0));
        self.tx = self.tx.saturating_add(d.tx_delta.unwrap_or(0));
        self.max_rx = self.max_rx.max(d.rx_bps);
        self.max_tx = self.max_tx.max(d.tx_bps);
        self.samples += 1;
    }
}

/// Rollup contributions summed in memory (keys owned, looked up without allocating when
/// present): the batch's, and those the writer holds across batches ([`Held`]), UPSERTed by
/// [`Rollups::write`].
///
/// Interfaces and stations are summed per 5 minutes only: their hourly rows are the sums of
/// the 5-minute ones ([`hourly`]), made when written, so each sample costs one map entry.
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    /// (5-minute bucket, router) -> interface -> sums
    if_5m: HashMap<(i64, i64), HashMap<String, Acc>>,
    /// (5-minute bucket, router, mac)
    st_5m: HashMap<(i64, i64, MacAddr), Acc>,
    /// (bucket, router) -> interface -> public key -> sums
    wg_1h: HashMap<(i64, i64), HashMap<String, HashMap<String, Acc>>>,
    /// (bucket, router, instance, common name, real address, connected since or -1)
    ovpn_1h: HashMap<OvpnKey, OvpnAcc>,
    /// `fleet_totals_1s` contributions.
    fleet: super::fleetagg::FleetSeconds,
    /// `probe_rollup_5m` / `_1h` contributions.
    probes: super::probe_rollup::ProbeRollups,
    /// Reports whose contributions are in here.
    reports: u64,
    /// The lowest `reports.id` among them.
    min_report_id: Option<i64>,
    /// The earliest report time among them.
    min_ts_ms: Option<i64>,
    /// Router -> the latest report time among them.
    latest: HashMap<i64, i64>,
    /// The station samples of the current batch, for the in-memory index of recent traffic
    /// (`super::recent`; None when the store feeds none). Taken after the commit.
    recent: Option<Vec<super::recent::StationSample>>,
    /// One of them may share its `(router_id, ts_ms)`, and so its raw rows, with a report whose
    /// sums were written already (the rebuild would count those rows twice): it is earlier
    /// than its router's newest report, or at the same time while that one's sums are written.
    out_of_order: bool,
}

/// Key of an `ovpn_rollup_1h` row.
type OvpnKey = (i64, i64, String, String, String, i64);

/// Sums of one `ovpn_rollup_1h` bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct OvpnAcc {
    rx: u64,
    tx: u64,
    last_ts_ms: i64,
    samples: u64,
}

impl OvpnAcc {
    fn add(&mut self, ts_ms: i64, d: &PairDelta) {
        self.rx = self.rx.saturating_add(d.rx_delta.unwrap_or(0));
        self.tx = self.tx.saturating_add(d.tx_delta.unwrap_or(0));
        self.last_ts_ms = if self.samples == 0 {
            ts_ms
        } else {
            self.last_ts_ms.max(ts_ms)
        };
        self.samples += 1;
    }
}

/// The sums of one report's stored station samples (their deltas, how many deltas are known
/// and how many rows), added to the fleet's per-second sums (`super::fleetagg`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StationReportTotals {
    rx: u64,
    tx: u64,
    rx_deltas: u64,
    tx_deltas: u64,
    stations: u64,
    /// Station samples not stored: the router already has one of that station at that time.
    kept_first: usize,
}

impl StationReportTotals {
    fn add(&mut self, d: &PairDelta) {
        self.rx = self.rx.saturating_add(d.rx_delta.unwrap_or(0));
        self.tx = self.tx.saturating_add(d.tx_delta.unwrap_or(0));
        self.rx_deltas += u64::from(d.rx_delta.is_some());
        self.tx_deltas += u64::from(d.tx_delta.is_some());
        self.stations += 1;
    }

    /// Adds these sums to the fleet's second of `ts_ms`, when any station sample was stored.
    fn add_to_fleet(&self, fleet: &mut super::fleetagg::FleetSeconds, ts_ms: i64) {
        if self.stations > 0 {
            let [rx, tx, rxn, txn] = [self.rx, self.tx, self.rx_deltas, self.tx_deltas].map(sat);
            fleet.add_stations(ts_ms, rx, tx, rxn, txn);
        }
    }
}

/// `max({c}, excluded.{c})` of two nullable values in SQL, NULL only when both are.
pub(super) fn max_nullable(c: &str) -> String {
    format!(
        "CASE WHEN excluded.{c} IS NULL THEN {c} WHEN {c} IS NULL THEN excluded.{c} \
         ELSE max({c}, excluded.{c}) END"
    )
}

/// `{c} + excluded.{c}`, saturating at `i64::MAX` (SQLite would turn an overflow into a REAL).
pub(super) fn sat_sum(c: &str) -> String {
    format!(
        "CASE WHEN {c} > 9223372036854775807 - excluded.{c} THEN 9223372036854775807 \
         ELSE {c} + excluded.{c} END"
    )
}

fn upsert_sql(table: &str, key_cols: &str) -> String {
    let max_rx = max_nullable("max_rx_bps");
    let max_tx = max_nullable("max_tx_bps");
    let [rx, tx, n] = ["rx_bytes", "tx_bytes", "samples"].map(sat_sum);
    let n_keys = key_cols.split(',').count();
    let placeholders: Vec<String> = (1..=n_keys + 5).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {table} ({key_cols}, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples) VALUES ({}) \
         ON CONFLICT({key_cols}) DO UPDATE SET rx_bytes = {rx}, tx_bytes = {tx}, max_rx_bps = {max_rx}, \
         max_tx_bps = {max_tx}, samples = {n}",
        placeholders.join(", ")
    )
}

/// An `upsert_sql` statement's parameters after the key: the sums and maxima of `a`.
fn acc_params(a: &Acc) -> (i64, i64, Option<i64>, Option<i64>, i64) {
    (
        sat(a.rx),
        sat(a.tx),
        sat_opt(a.max_rx),
        sat_opt(a.max_tx),
        sat(a.samples),
    )
}

/// UPSERTs interface sums keyed (bucket, router, interface) into `table`.
fn upsert_interface_rows<'a>(
    tx: &Transaction<'_>,
    table: &str,
    rows: impl Iterator<Item = ((i64, i64, &'a str), &'a Acc)>,
) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(&upsert_sql(table, "bucket_start_ms, router_id, name"))?;
    for ((bucket, router, name), a) in rows {
        let (rx, txb, mrx, mtx, n) = acc_params(a);
        st.execute(params![bucket, router, name, rx, txb, mrx, mtx, n])?;
    }
    Ok(())
}

/// Hourly sums from 5-minute ones: each `(bucket, router, what)` key's sums merged into those
/// of `(hour of bucket, router, what)`.
fn hourly<'a, W: Eq + Hash>(
    five_minutes: impl Iterator<Item = ((i64, i64, W), &'a Acc)>,
) -> HashMap<(i64, i64, W), Acc> {
    let mut hours: HashMap<(i64, i64, W), Acc> = HashMap::default();
    for ((bucket, router, what), a) in five_minutes {
        hours
            .entry((bucket_start(bucket, BUCKET_1H_MS), router, what))
            .or_default()
            .merge(a);
    }
    hours
}

/// The value under the string key `key`, created when missing (allocates the key only then).
fn slot<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> Option<&'m mut V> {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key)
}

impl Rollups {
    fn is_empty(&self) -> bool {
        self.reports == 0
    }

    /// A stored report of `router_id` (its row `report_id`, made at `ts_ms`; `last_ts_ms` of
    /// the router's newest report before it) whose contributions follow.
    fn add_report(&mut self, router_id: i64, report_id: i64, ts_ms: i64, last_ts_ms: Option<i64>) {
        self.reports += 1;
        self.min_report_id = Some(self.min_report_id.map_or(report_id, |m| m.min(report_id)));
        self.min_ts_ms = Some(self.min_ts_ms.map_or(ts_ms, |m| m.min(ts_ms)));
        let latest = self.latest.entry(router_id).or_insert(i64::MIN);
        self.out_of_order |= last_ts_ms.is_some_and(|l| ts_ms < l || (ts_ms == l && *latest < l));
        *latest = (*latest).max(ts_ms);
    }

    fn add_interface(&mut self, router_id: i64, name: &str, ts_ms: i64, d: &PairDelta) {
        let by_name = self
            .if_5m
            .entry((bucket_start(ts_ms, BUCKET_5M_MS), router_id))
            .or_default();
        if let Some(a) = slot(by_name, name) {
            a.add(d);
        }
    }

    fn add_station(&mut self, router_id: i64, mac: MacAddr, ts_ms: i64, d: &PairDelta) {
        self.st_5m
            .entry((bucket_start(ts_ms, BUCKET_5M_MS), router_id, mac))
            .or_default()
            .add(d);
    }

    /// Keeps a stored station sample for the recent-traffic index, when one is fed.
    fn note_recent(&mut self, router_id: i64, mac: MacAddr, ts_ms: i64, d: &PairDelta) {
        if let Some(v) = &mut self.recent {
            v.push(super::recent::StationSample {
                router_id,
                mac,
                ts_ms,
                download: d.tx_delta.unwrap_or(0),
                upload: d.rx_delta.unwrap_or(0),
                download_bps: d.tx_bps,
                upload_bps: d.rx_bps,
            });
        }
    }

    fn add_wg(&mut self, router_id: i64, iface: &str, key: &str, ts_ms: i64, d: &PairDelta) {
        let by_iface = self
            .wg_1h
            .entry((bucket_start(ts_ms, BUCKET_1H_MS), router_id))
            .or_default();
        if let Some(a) = slot(by_iface, iface).and_then(|m| slot(m, key)) {
            a.add(d);
        }
    }

    /// An OpenVPN client sample: `session` is (instance, common name, real address, connected
    /// since or -1).
    fn add_ovpn(
        &mut self,
        router_id: i64,
        session: (&str, &str, &str, i64),
        ts_ms: i64,
        d: &PairDelta,
    ) {
        let (inst, cn, real, since) = session;
        let key = (
            bucket_start(ts_ms, BUCKET_1H_MS),
            router_id,
            inst.to_string(),
            cn.to_string(),
            real.to_string(),
            since,
        );
        self.ovpn_1h.entry(key).or_default().add(ts_ms, d);
    }

    /// UPSERTs every sum into its rollup table (and the fleet aggregates), in `tx`.
    fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let if_5m = || {
            self.if_5m.iter().flat_map(|((bucket, router), by_name)| {
                by_name
                    .iter()
                    .map(move |(name, a)| ((*bucket, *router, name.as_str()), a))
            })
        };
        let if_1h = hourly(if_5m());
        upsert_interface_rows(tx, "interface_rollup_5m", if_5m())?;
        upsert_interface_rows(
            tx,
            "interface_rollup_1h",
            if_1h.iter().map(|(key, a)| (*key, a)),
        )?;
        let mut st = tx.prepare_cached(&upsert_sql(
            "station_rollup_5m",
            "bucket_start_ms, router_id, mac",
        ))?;
        let mut mac_buf = MacText::default();
        for ((bucket, router, mac), a) in &self.st_5m {
            let (rx, txb, mrx, mtx, n) = acc_params(a);
            st.execute(params![
                bucket,
                router,
                mac_buf.format(mac),
                rx,
                txb,
                mrx,
                mtx,
                n
            ])?;
        }
        super::station_peaks::flush(
            tx,
            self.st_5m
                .iter()
                .map(|((b, router, _), a)| (*b, *router, sat_opt(a.max_rx.max(a.max_tx)))),
        )?;
        // The station rows return their new sample count: equal to these sums', the row is
        // new (an existing row has at least one sample), which `station_fleet_1h` counts.
        let mut st = tx.prepare_cached(&format!(
            "{} RETURNING samples",
            upsert_sql("station_rollup_1h", "bucket_start_ms, router_id, mac")
        ))?;
        let st_1h = hourly(
            self.st_5m
                .iter()
                .map(|((bucket, router, mac), a)| ((*bucket, *router, *mac), a)),
        );
        let mut fleet: HashMap<i64, (Acc, u64)> = HashMap::default();
        for ((bucket, router, mac), a) in &st_1h {
            let (rx, txb, mrx, mtx, n) = acc_params(a);
            let total: i64 = st.query_row(
                params![bucket, router, mac_buf.format(mac), rx, txb, mrx, mtx, n],
                |r| r.get(0),
            )?;
            let f = fleet.entry(*bucket).or_default();
            f.0.merge(a);
            f.1 += u64::from(total == n);
        }
        super::fleetagg::flush_station_hours(
            tx,
            fleet.iter().map(|(bucket, (a, new_rows))| {
                let (rx, txb, mrx, mtx, n) = acc_params(a);
                (*bucket, [rx, txb, n, sat(*new_rows)], [mrx, mtx])
            }),
        )?;
        let mut st = tx.prepare_cached(&upsert_sql(
            "wg_rollup_1h",
            "bucket_start_ms, router_id, iface, public_key",
        ))?;
        for ((bucket, router), by_iface) in &self.wg_1h {
            for (iface, by_key) in by_iface {
                for (key, a) in by_key {
                    let (rx, txb, mrx, mtx, n) = acc_params(a);
                    st.execute(params![bucket, router, iface, key, rx, txb, mrx, mtx, n])?;
                }
            }
        }
        let hours = || {
            self.ovpn_1h
                .iter()
                .map(|((b, r, inst, cn, real, since), a)| {
                    (
                        (*b, *r, inst.as_str(), cn.as_str(), real.as_str(), *since),
                        (sat(a.rx), sat(a.tx), a.last_ts_ms, sat(a.samples)),
                    )
                })
        };
        super::fleetagg::flush_ovpn_hours(tx, "ovpn_rollup_1h", hours())?;
        super::fleetagg::flush_ovpn_days(tx, hours())?;
        super::vpnstate::flush_client_names(
            tx,
            self.ovpn_1h
                .iter()
                .map(|((_, router, _, cn, ..), a)| (*router, cn.as_str(), a.last_ts_ms)),
        )?;
        self.fleet.flush(tx)?;
        self.probes.write(tx)?;
        Ok(())
    }
}

/// Rollup sums the database writer holds in memory across batches, and when it writes them.
///
/// Each batch's raw rows are written and committed (then acked) as they come; their rollup
/// contributions are added here and UPSERTed together (in the transaction of a later batch, or
/// of [`Store::flush_rollups`]) when the hold time has passed, the wall clock entered another
/// 5-minute bucket, a reader asked for them, the sums grew past [`HELD_ROWS_MAX`] rows, or
/// before sealing and retention. The same transaction moves the mark in `rollup_flushed` to the
/// highest `reports.id`, so the reports above the mark are exactly those whose contributions
/// are only in memory. Whenever the sums are not known (a new `Store`: after a restart or a
/// crash; a failed batch, whose contributions were added before it rolled back) they are
/// rebuilt from the raw rows of those reports ([`replay`]) before they are used.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// How long sums may be held; zero writes them with every batch.
    hold: Duration,
    /// None: not known, rebuilt from the raw rows before use.
    sums: Option<Rollups>,
    /// `rollup_flushed.report_id`, as last read or written.
    mark: i64,
    /// When the oldest held contribution was committed, and its wall-clock 5-minute bucket.
    since: Option<(Instant, i64)>,
    /// Write the sums with the next batch (a reader is waiting or reading).
    flush_next: bool,
    /// This is the collector's writer ([`Store::set_rollup_hold`] was called): unknown sums
    /// are rebuilt from the raw rows. Other stores (tests, tools that load databases in bulk
    /// and set the mark themselves, [`mark_rollups_written`]) start from empty sums.
    rebuild: bool,
}

/// Held sums are written once they cover this many rollup rows (memory bound: about 100 bytes
/// each).
pub const HELD_ROWS_MAX: usize = 500_000;

impl Rollups {
    /// Rows the sums would write at most (an upper bound of the memory they and the hourly
    /// sums made when they are written use, in rows).
    fn rows(&self) -> usize {
        let interfaces: usize = self.if_5m.values().map(HashMap::len).sum();
        2 * (interfaces + self.st_5m.len())
            + self
                .wg_1h
                .values()
                .flat_map(HashMap::values)
                .map(HashMap::len)
                .sum::<usize>()
            + self.ovpn_1h.len()
            + self.probes.rows()
    }
}

/// The wall clock's 5-minute bucket.
fn wall_bucket() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    bucket_start(now, BUCKET_5M_MS)
}

impl Held {
    /// Whether the held sums (after a batch added to them) are to be written now.
    fn due(&self, sums: &Rollups) -> bool {
        if sums.is_empty() {
            return false;
        }
        self.hold.is_zero()
            || self.flush_next
            || sums.out_of_order
            || sums.min_report_id.is_some_and(|id| id <= self.mark)
            || self
                .since
                .is_some_and(|(t, b)| t.elapsed() >= self.hold || b != wall_bucket())
            || sums.rows() > HELD_ROWS_MAX
    }

    /// The sums, rebuilt from the raw rows when they are not known.
    fn sums(&mut self, tx: &Transaction<'_>) -> Result<&mut Rollups, StoreError> {
        if self.sums.is_none() {
            let mark: i64 =
                tx.query_row("SELECT report_id FROM rollup_flushed", [], |r| r.get(0))?;
            let sums = if self.rebuild {
                replay(tx, mark)?
            } else {
                Rollups::default()
            };
            if !sums.is_empty() {
                tracing::info!(
                    reports = sums.reports,
                    rows = sums.rows(),
                    "rebuilt the rollup sums of reports not yet in the rollup tables from their raw rows"
                );
                self.since = Some((Instant::now(), wall_bucket()));
            }
            self.mark = mark;
            self.sums = Some(sums);
        }
        Ok(self.sums.get_or_insert_with(Rollups::default))
    }

    /// Writes the sums if [`Held::due`] (or `force`), moving the mark, in `tx`. Returns whether
    /// it wrote: the caller then calls [`Held::written`] once `tx` committed.
    fn write_if_due(&mut self, tx: &Transaction<'_>, force: bool) -> Result<bool, StoreError> {
        self.sums(tx)?;
        let Some(sums) = self.sums.as_ref().filter(|s| !s.is_empty()) else {
            return Ok(false);
        };
        if !force && !self.due(sums) {
            return Ok(false);
        }
        tracing::debug!(
            reports = sums.reports,
            rows = sums.rows(),
            forced = force,
            reader = self.flush_next,
            out_of_order = sums.out_of_order,
            "writing held rollup sums"
        );
        sums.write(tx)?;
        self.mark = tx.query_row(
            "UPDATE rollup_flushed SET report_id = (SELECT coalesce(max(id), 0) FROM reports) \
             RETURNING report_id",
            [],
            |r| r.get(0),
        )?;
        Ok(true)
    }

    /// After a commit: `wrote` (the sums are in the tables now) or not (they are held).
    fn committed(&mut self, wrote: bool) {
        if wrote {
            self.sums = Some(Rollups::default());
            self.since = None;
            self.flush_next = false;
        } else if self.since.is_none() && self.sums.as_ref().is_some_and(|s| !s.is_empty()) {
            self.since = Some((Instant::now(), wall_bucket()));
        }
    }

    /// A transaction that may have added to the sums rolled back: rebuild them before use.
    fn forget(&mut self) {
        self.sums = None;
    }

    /// Whether some reports' rollup contributions may not be in the tables (held, or not known).
    fn pending(&self) -> bool {
        self.sums.as_ref().is_none_or(|s| !s.is_empty())
    }
}

/// Records that every stored report's rollup sums are in the rollup tables (for tools that
/// write reports and their rollups in bulk, without [`Store::ingest`]), so the collector's
/// writer has none to rebuild.
pub fn mark_rollups_written(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE rollup_flushed SET report_id = (SELECT coalesce(max(id), 0) FROM reports)",
        [],
    )?;
    Ok(())
}

/// The rollup contributions of the reports above `mark` (`rollup_flushed.report_id`), read from
/// their raw rows, which hold exactly what ingest added (a sample row's deltas and rates; one
/// contribution per row written). The rows are still in the row tables: the held sums are
/// written before any sealing.
fn replay(tx: &Transaction<'_>, mark: i64) -> Result<Rollups, StoreError> {
    let mut sums = Rollups::default();
    let keys: Vec<(i64, i64, i64)> = tx
        .prepare("SELECT id, router_id, ts_ms FROM reports WHERE id > ?1 ORDER BY id")?
        .query_map([mark], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::default();
    let pair = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<PairDelta> {
        Ok(PairDelta {
            rx_delta: to_u64(r.get(i)?),
            tx_delta: to_u64(r.get(i + 1)?),
            rx_bps: to_u64(r.get(i + 2)?),
            tx_bps: to_u64(r.get(i + 3)?),
        })
    };
    let mut ifaces = tx.prepare(
        "SELECT name, rx_delta, tx_delta, rx_bps, tx_bps FROM interface_samples \
         WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut stations = tx.prepare(
        "SELECT mac, rx_delta, tx_delta, rx_bps, tx_bps FROM station_samples \
         WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut wg = tx.prepare(
        "SELECT iface, public_key, rx_delta, tx_delta, rx_bps, tx_bps FROM wg_peer_samples \
         WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut ovpn = tx.prepare(
        "SELECT instance, common_name, real_address, coalesce(connected_since, -1), rx_delta, \
         tx_delta, rx_bps, tx_bps FROM ovpn_client_samples WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    let mut probes = tx.prepare(
        "SELECT sent, received, rtt_avg_us, rtt_max_us FROM probe_samples \
         WHERE router_id = ?1 AND ts_ms = ?2",
    )?;
    for (id, rid, ts) in keys {
        sums.add_report(rid, id, ts, None);
        // Two reports of a router at the same time share their rows: read them once.
        if !seen.insert((rid, ts)) {
            continue;
        }
        let mut rows = ifaces.query(params![rid, ts])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            sums.add_interface(rid, &name, ts, &pair(r, 1)?);
        }
        // The report's station sums for the fleet's seconds: those of its stored rows, as the
        // ingest added them.
        let mut totals = StationReportTotals::default();
        let mut rows = stations.query(params![rid, ts])?;
        while let Some(r) = rows.next()? {
            let d = pair(r, 1)?;
            totals.add(&d);
            let mac: String = r.get(0)?;
            let Ok(mac) = mac.parse::<MacAddr>() else {
                tracing::warn!(
                    router_id = rid,
                    ts_ms = ts,
                    mac,
                    "unreadable MAC in station_samples; left out of the rebuilt rollups"
                );
                continue;
            };
            sums.add_station(rid, mac, ts, &d);
        }
        totals.add_to_fleet(&mut sums.fleet, ts);
        let mut rows = wg.query(params![rid, ts])?;
        while let Some(r) = rows.next()? {
            let (iface, key): (String, String) = (r.get(0)?, r.get(1)?);
            sums.add_wg(rid, &iface, &key, ts, &pair(r, 2)?);
        }
        let mut rows = ovpn.query(params![rid, ts])?;
        while let Some(r) = rows.next()? {
            let (inst, cn, real, since): (String, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            sums.add_ovpn(rid, (&inst, &cn, &real, since), ts, &pair(r, 4)?);
        }
        let mut rows = probes.query(params![rid, ts])?;
        while let Some(r) = rows.next()? {
            let (sent, received, avg, max) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            sums.fleet.add_probe(ts, sent, received, avg, max);
            sums.probes.add(rid, ts, (sent, received), avg, max);
        }
    }
    Ok(sums)
}

/// Formats MAC addresses as `aa:bb:cc:dd:ee:ff` without allocating.
#[derive(Debug, Default)]
struct MacText([u8; 17]);

impl MacText {
    fn format(&mut self, mac: &MacAddr) -> &str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in mac.0.iter().enumerate() {
            let at = i * 3;
            if let Some(slot) = self.0.get_mut(at..at + 2) {
                slot.copy_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
            if let Some(colon) = self.0.get_mut(at + 2) {
                *colon = b':';
            }
        }
        std::str::from_utf8(&self.0).unwrap_or("00:00:00:00:00:00")
    }
}

impl Store {
    /// Stores a batch of reports in one transaction and returns one outcome per item, in order.
    ///
    /// A report whose `(router_id, boot_id, seq)` is already stored (earlier, or earlier in the
    /// same batch) is [`IngestOutcome::Duplicate`] and writes nothing. When this returns Ok, the
    /// batch is committed durably and every item may be acked. An unknown `router_id` fails
    /// the whole batch with [`StoreError::NotFound`].
    pub fn ingest(&mut self, batch: &[IngestItem<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let result = ingest_batch(
            &mut self.conn,
            &mut self.cache,
            &mut self.held,
            self.recent.as_deref(),
            batch,
        );
        if result.is_err() {
            // The transaction rolled back: cached state may describe rows that do not exist,
            // and the held rollup sums may hold contributions of rows that do not exist.
            self.cache.clear();
            self.held.forget();
        }
        result
    }

    /// How long the rollup sums of committed reports may be held in memory before they are
    /// written to the rollup tables (see [`Held`]); zero (the default) writes them with every
    /// batch.
    pub fn set_rollup_hold(&mut self, hold: Duration) {
        self.held.hold = hold;
        self.held.rebuild = true;
    }

    /// Whether rollup sums may be held across batches (a non-zero hold).
    pub fn holds_rollups(&self) -> bool {
        !self.held.hold.is_zero()
    }

    /// Whether some committed reports' rollup contributions may not be in the rollup tables
    /// yet (held in memory, or not known since the store was opened or a batch failed).
    pub fn rollups_pending(&self) -> bool {
        self.held.pending()
    }

    /// Writes the held rollup sums with the next batch (a reader is active).
    pub fn flush_rollups_next_batch(&mut self) {
        self.held.flush_next = true;
    }

    /// Writes the held rollup sums when one of them comes from a report made before `ts_ms`
    /// (raw rows before it are sealed or deleted next; the sums are rebuilt from them) or they
    /// are not known.
    pub(super) fn flush_rollups_before(&mut self, ts_ms: i64) -> Result<(), StoreError> {
        let known_later = self
            .held
            .sums
            .as_ref()
            .is_some_and(|s| s.min_ts_ms.is_none_or(|t| t >= ts_ms));
        if !known_later {
            self.flush_rollups()?;
        }
        Ok(())
    }

    /// Writes the held rollup sums if their time has come ([`Held`]: the hold passed, the wall
    /// clock entered another 5-minute bucket, ...), in its own transaction. Returns whether
    /// anything was written.
    pub fn flush_due_rollups(&mut self) -> Result<bool, StoreError> {
        let due = self.held.sums.as_ref().is_none_or(|s| self.held.due(s));
        if due {
            self.flush_rollups()
        } else {
            Ok(false)
        }
    }

    /// Writes every held rollup sum now, in its own transaction (rebuilding them from the raw
    /// rows first when they are not known). Returns whether anything was written.
    pub fn flush_rollups(&mut self) -> Result<bool, StoreError> {
        if !self.held.pending() {
            return Ok(false);
        }
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let wrote = self.held.write_if_due(&tx, true)?;
            tx.commit()?;
            Ok(wrote)
        })();
        match result {
            Ok(wrote) => {
                self.held.committed(true);
                Ok(wrote)
            }
            Err(e) => {
                self.held.forget();
                Err(e)
            }
        }
    }
}

fn ingest_batch(
    conn: &mut Connection,
    cache: &mut HashMap<i64, RouterCache>,
    held: &mut Held,
    recent: Option<&super::recent::RecentStations>,
    batch: &[IngestItem<'_>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rollups = held.sums(&tx)?;
    rollups.recent = recent.map(|_| Vec::new());
    let mut outcomes = Vec::with_capacity(batch.len());
    for (i, item) in batch.iter().enumerate() {
        if let Some(next) = batch.get(i + 1) {
            prefetch_stations(next.report);
        }
        let rc = match cache.entry(item.router_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(load_router_cache(&tx, item.router_id)?),
        };
        outcomes.push(ingest_one(&tx, rc, item, rollups)?);
    }
    let wrote = held.write_if_due(&tx, false)?;
    tx.commit()?;
    feed_recent(held, recent);
    held.committed(wrote);
    Ok(outcomes)
}

/// Asks the CPU to start loading a report's stations, the next report's while this one is
/// written: they were decoded on a network thread, so each one's first read is a cache miss
/// otherwise (about 2 us per report of 20 stations, measured with perf on the writer). A hint:
/// nothing is read, and other architectures skip it.
#[inline]
fn prefetch_stations(report: &Report) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = report.stations.as_ptr().cast::<i8>();
        let len = std::mem::size_of_val(report.stations.as_slice());
        for off in (0..len).step_by(64) {
            // SAFETY: SSE is part of every x86_64 CPU, and a prefetch reads nothing into the
            // program and never faults, whatever the address (this one is inside the stations'
            // allocation).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = report;
}

/// After a commit: hands the batch's station samples to the recent-traffic index.
fn feed_recent(held: &mut Held, recent: Option<&super::recent::RecentStations>) {
    let samples = held.sums.as_mut().and_then(|s| s.recent.take());
    if let (Some(index), Some(samples)) = (recent, samples) {
        index.apply(&samples, crate::clock::now_ms());
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts the `reports` row; None when it is a duplicate (`may_be_sealed`: its hour may be in
/// a sealed block of the router, which the `reports` key does not see).
fn insert_report(
    tx: &Transaction<'_>,
    item: &IngestItem<'_>,
    ts_ms: i64,
    may_be_sealed: bool,
) -> Result<Option<i64>, StoreError> {
    let r = item.report;
    let sys = r.system.as_ref();
    let disk = sys.and_then(|s| s.disks.first());
    let load = |i: usize| sys.and_then(|s| s.load.get(i).copied());
    let wg_peers: usize = r.wireguard.iter().map(|w| w.peers.len()).sum();
    let ovpn_clients: usize = r.openvpn.iter().map(|o| o.clients.len()).sum();
    // The UNIQUE key only sees the rows: a report of a sealed hour is looked up in its block.
    if may_be_sealed
        && super::sealed::sealed_report_exists(tx, item.router_id, &r.boot_id, sat(r.seq), ts_ms)?
    {
        return Ok(None);
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO reports (router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, uptime_s, \
         load1, load5, load15, cpu_permille, mem_total_kb, mem_available_kb, mem_available_derived, \
         disk_mount, disk_used_bytes, disk_total_bytes, interface_count, station_count, lease_count, \
         wg_peer_count, ovpn_client_count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) \
         ON CONFLICT (router_id, boot_id, seq) DO NOTHING",
    )?;
    let n = st.execute(params![
        item.router_id,
        &r.boot_id[..],
        sat(r.seq),
        ts_ms,
        item.received_at_ms,
        sat(r.dropped_reports),
        sys.map(|s| sat(s.uptime_s)),
        load(0),
        load(1),
        load(2),
        sys.and_then(|s| s.cpu_busy_permille),
        sys.map(|s| sat(s.mem_total_kb)),
        sys.map(|s| sat(s.mem_available_kb)),
        sys.map(|s| s.mem_available_derived),
        disk.map(|d| d.mount.as_str()),
        disk.map(|d| sat(d.used_bytes)),
        disk.map(|d| sat(d.total_bytes)),
        count(r.interfaces.len()),
        count(r.stations.len()),
        count(r.leases.len()),
        count(wg_peers),
        count(ovpn_clients),
    ])?;
    Ok((n > 0).then(|| tx.last_insert_rowid()))
}

/// Sum of a counter over the links of an MLO station (None when no link has it).
fn sum_links(links: &[StationLink], f: impl Fn(&StationLinkStats) -> Option<u64>) -> Option<u64> {
    links
        .iter()
        .filter_map(|l| f(&l.stats))
        .fold(None, |acc, v| Some(acc.unwrap_or(0).saturating_add(v)))
}

/// The first link value of an MLO station.
fn first_link<T>(links: &[StationLink], f: impl Fn(&StationLinkStats) -> Option<T>) -> Option<T> {
    links.iter().find_map(|l| f(&l.stats))
}

/// Where the report being stored stands: its router, time, origin and whether it is the newest.
#[derive(Debug, Clone, Copy)]
struct ReportStep {
    rid: i64,
    ts: i64,
    cur: SampleOrigin,
    is_newest: bool,
}

/// Stores one report: its row, then one step per part of it, all in the caller's transaction.
fn ingest_one(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    item: &IngestItem<'_>,
    rollups: &mut Rollups,
) -> Result<IngestOutcome, StoreError> {
    let r = item.report;
    let rid = item.router_id;
    let ts = sat(r.timestamp_ms);
    let cur = SampleOrigin {
        boot_id: r.boot_id,
        seq: r.seq,
        ts_ms: ts,
    };
    let Some(report_id) = insert_report(tx, item, ts, rc.may_be_sealed(ts))? else {
        return Ok(IngestOutcome::Duplicate);
    };
    rollups.add_report(rid, report_id, ts, rc.last.map(|l| l.ts_ms));
    let is_newest = rc
        .last
        .is_none_or(|l| l.boot_id != cur.boot_id || cur.seq > l.seq);
    if is_newest && rc.last.is_some_and(|l| l.boot_id != cur.boot_id) {
        rc.clear_samples();
    }
    let s = ReportStep {
        rid,
        ts,
        cur,
        is_newest,
    };
    let kept_first = ingest_interfaces(tx, rc, r, s, rollups)?;
    let station_totals = ingest_stations(tx, rc, r, s, rollups)?;
    if kept_first + station_totals.kept_first > 0 {
        // Another report of this router (another boot or sequence number) has the same time:
        // the samples stored first stay, and this report's are not stored.
        tracing::warn!(
            router_id = rid,
            seq = r.seq,
            ts_ms = ts,
            interfaces = kept_first,
            stations = station_totals.kept_first,
            "some of this report's samples have the router, time and interface or station of stored ones (another report with the same time); the first stored stay, these were not stored"
        );
    }
    station_totals.add_to_fleet(&mut rollups.fleet, ts);
    ingest_wg_peers(tx, rc, r, s, rollups)?;
    ingest_ovpn_clients(tx, rc, r, s, rollups)?;
    if is_newest {
        // Routers without OpenVPN skip the statements once their rows are known to be gone.
        let no_clients = r.openvpn.iter().all(|i| i.clients.is_empty());
        if !(no_clients && rc.ovpn_sessions == Some(false)) {
            let rows = super::vpnstate::set_instance_sessions(tx, rid, ts)?;
            rc.ovpn_sessions = Some(rows > 0);
        }
    }
    ingest_probes(tx, r, s, rollups)?;
    if is_newest {
        make_current(tx, rc, item, s, report_id)?;
    } else {
        touch_last_seen(tx, item)?;
    }
    Ok(IngestOutcome::Stored)
}

/// Interface counter samples, their deltas and rollups; returns how many were not stored
/// because the router already has a sample of that interface at that time.
fn ingest_interfaces(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    r: &Report,
    s: ReportStep,
    rollups: &mut Rollups,
) -> Result<usize, StoreError> {
    let ReportStep {
        rid,
        ts,
        cur,
        is_newest,
    } = s;
    let mut st = tx.prepare_cached(
        "INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, \
         tx_bytes, tx_packets, tx_errs, tx_drop, rx_delta, tx_delta, rx_bps, tx_bps) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING",
    )?;
    let mut kept_first = 0;
    for i in &r.interfaces {
        let (rx, txb) = (Some(i.rx_bytes), Some(i.tx_bytes));
        let d = pair_delta(
            rc.ifaces.get(i.name.as_str()),
            &cur,
            rx,
            txb,
            Width::MayWrap32,
            false,
        );
        let n = st.execute(params![
            rid,
            ts,
            i.name,
            i.kind.as_str(),
            sat(i.rx_bytes),
            sat(i.rx_packets),
            sat(i.rx_errs),
            sat(i.rx_drop),
            sat(i.tx_bytes),
            sat(i.tx_packets),
            sat(i.tx_errs),
            sat(i.tx_drop),
            sat_opt(d.rx_delta),
            sat_opt(d.tx_delta),
            sat_opt(d.rx_bps),
            sat_opt(d.tx_bps),
        ])?;
        if n > 0 {
            rollups.add_interface(rid, &i.name, ts, &d);
        } else {
            kept_first += 1;
        }
        if is_newest {
            remember(
                &mut rc.ifaces,
                &i.name,
                PrevSample {
                    origin: cur,
                    rx,
                    tx: txb,
                    session: None,
                },
            );
        }
    }
    Ok(kept_first)
}

/// Station samples (with their MLO link samples), deltas and rollups; returns the station totals.
fn ingest_stations(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    r: &Report,
    s: ReportStep,
    rollups: &mut Rollups,
) -> Result<StationReportTotals, StoreError> {
    let ReportStep {
        rid,
        ts,
        cur,
        is_newest,
    } = s;
    let mut st = tx.prepare_cached(
        "INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, signal_dbm, signal_avg_dbm, rx_bytes, \
         tx_bytes, rx_packets, tx_packets, rx_delta, tx_delta, rx_bps, tx_bps, tx_retries, tx_failed, inactive_ms, \
         connected_s, tx_bitrate_kbps, rx_bitrate_kbps, expected_throughput_kbps, tx_duration_us, rx_duration_us, \
         tx_airtime_us, rx_airtime_us, airtime_permille, airtime_weight, mesh_gate) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, \
         ?23, ?24, ?25, ?26, ?27, ?28, ?29) \
         ON CONFLICT DO NOTHING",
    )?;
    let mut link_st = tx.prepare_cached(
        "INSERT INTO station_link_samples (router_id, ts_ms, iface, mac, link_id, addr, signal_dbm, rx_bytes, \
         tx_bytes, tx_retries, tx_failed, tx_bitrate_kbps, rx_bitrate_kbps, tx_duration_us, rx_duration_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT DO NOTHING",
    )?;
    let mut mac_buf = MacText::default();
    let mut station_totals = StationReportTotals::default();
    for sta in &r.stations {
        let s = &sta.stats;
        let l = &sta.links;
        let rx = s.rx_bytes.or_else(|| sum_links(l, |x| x.rx_bytes));
        let txb = s.tx_bytes.or_else(|| sum_links(l, |x| x.tx_bytes));
        let known = rc
            .stations
            .get(sta.interface.as_str())
            .and_then(|m| m.get(&sta.mac))
            .copied();
        let prev = known.as_ref().map(|k| &k.bytes);
        let reset = prev
            .is_some_and(|p| station_reassociated(p.session, p.origin.ts_ms, sta.connected_s, ts));
        let d = pair_delta(prev, &cur, rx, txb, Width::MayWrap32, reset);
        // Airtime: the station's own counters, else the sums over its links (MLO).
        let rx_dur = s
            .rx_duration_us
            .or_else(|| sum_links(l, |x| x.rx_duration_us));
        let tx_dur = s
            .tx_duration_us
            .or_else(|| sum_links(l, |x| x.tx_duration_us));
        let prev_air = known.as_ref().and_then(|k| k.airtime.as_ref());
        let air_reset = prev_air
            .is_some_and(|p| station_reassociated(p.session, p.origin.ts_ms, sta.connected_s, ts));
        let air = pair_delta(prev_air, &cur, rx_dur, tx_dur, Width::Only64, air_reset);
        // Microseconds of airtime per millisecond of report interval: per mille.
        let air_permille = match (air.tx_delta, air.rx_delta, prev_air) {
            (None, None, _) | (_, _, None) => None,
            (t, r, Some(p)) => u64::try_from(ts.saturating_sub(p.origin.ts_ms))
                .ok()
                .filter(|dt| *dt > 0)
                .map(|dt| t.unwrap_or(0).saturating_add(r.unwrap_or(0)) / dt),
        };
        let ssid = r
            .wireless
            .iter()
            .find(|w| w.name == sta.interface)
            .and_then(|w| w.ssid.as_deref());
        let signal = s.signal.as_ref().map(|x| x.dbm).or_else(|| {
            l.iter()
                .filter_map(|x| x.stats.signal.as_ref())
                .map(|x| x.dbm)
                .max()
        });
        let signal_avg = s.signal_avg.as_ref().map(|x| x.dbm).or_else(|| {
            l.iter()
                .filter_map(|x| x.stats.signal_avg.as_ref())
                .map(|x| x.dbm)
                .max()
        });
        let n = st.execute(params![
            rid,
            ts,
            sta.interface,
            mac_buf.format(&sta.mac),
            ssid,
            signal,
            signal_avg,
            sat_opt(rx),
            sat_opt(txb),
            sat_opt(s.rx_packets.or_else(|| sum_links(l, |x| x.rx_packets))),
            sat_opt(s.tx_packets.or_else(|| sum_links(l, |x| x.tx_packets))),
            sat_opt(d.rx_delta),
            sat_opt(d.tx_delta),
            sat_opt(d.rx_bps),
            sat_opt(d.tx_bps),
            sat_opt(s.tx_retries.or_else(|| sum_links(l, |x| x.tx_retries))),
            sat_opt(s.tx_failed.or_else(|| sum_links(l, |x| x.tx_failed))),
            sat_opt(
                s.inactive_ms
                    .or_else(|| l.iter().filter_map(|x| x.stats.inactive_ms).min())
            ),
            sat_opt(sta.connected_s),
            s.tx_bitrate
                .as_ref()
                .map(|b| b.kbps)
                .or_else(|| first_link(l, |x| x.tx_bitrate.as_ref().map(|b| b.kbps))),
            s.rx_bitrate
                .as_ref()
                .map(|b| b.kbps)
                .or_else(|| first_link(l, |x| x.rx_bitrate.as_ref().map(|b| b.kbps))),
            s.expected_throughput_kbps
                .or_else(|| first_link(l, |x| x.expected_throughput_kbps)),
            sat_opt(tx_dur),
            sat_opt(rx_dur),
            sat_opt(air.tx_delta),
            sat_opt(air.rx_delta),
            sat_opt(air_permille),
            s.airtime_weight
                .or_else(|| first_link(l, |x| x.airtime_weight)),
            sta.mesh.as_ref().and_then(|m| m.connected_to_gate),
        ])?;
        if n > 0 {
            for link in l {
                let ls = &link.stats;
                link_st.execute(params![
                    rid,
                    ts,
                    sta.interface,
                    mac_buf.format(&sta.mac),
                    link.link_id,
                    link.addr.map(|a| a.to_string()),
                    ls.signal.as_ref().map(|x| x.dbm),
                    sat_opt(ls.rx_bytes),
                    sat_opt(ls.tx_bytes),
                    sat_opt(ls.tx_retries),
                    sat_opt(ls.tx_failed),
                    ls.tx_bitrate.as_ref().map(|b| b.kbps),
                    ls.rx_bitrate.as_ref().map(|b| b.kbps),
                    sat_opt(ls.tx_duration_us),
                    sat_opt(ls.rx_duration_us),
                ])?;
            }
            rollups.add_station(rid, sta.mac, ts, &d);
            rollups.note_recent(rid, sta.mac, ts, &d);
            station_totals.add(&d);
            if rc.station_keys.needs(&sta.mac, ts) {
                tx.prepare_cached(super::sealed::INSERT_KEY_SQL)?
                    .execute(params![
                        super::sealed::floor_hour(ts),
                        super::sealed::STATION_TBL,
                        mac_buf.format(&sta.mac),
                        rid
                    ])?;
                rc.station_keys.listed(sta.mac, ts);
            }
        } else {
            station_totals.kept_first += 1;
        }
        if is_newest {
            let bytes = PrevSample {
                origin: cur,
                rx,
                tx: txb,
                session: sta.connected_s,
            };
            // A sample without airtime counters keeps the previous ones.
            let airtime = if rx_dur.is_some() || tx_dur.is_some() {
                Some(PrevSample {
                    origin: cur,
                    rx: rx_dur,
                    tx: tx_dur,
                    session: sta.connected_s,
                })
            } else {
                known.and_then(|k| k.airtime)
            };
            insert_inner(
                &mut rc.stations,
                &sta.interface,
                sta.mac,
                StationPrev { bytes, airtime },
            );
        }
    }
    Ok(station_totals)
}

/// WireGuard peer samples, their deltas and rollups.
fn ingest_wg_peers(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    r: &Report,
    s: ReportStep,
    rollups: &mut Rollups,
) -> Result<(), StoreError> {
    let ReportStep {
        rid,
        ts,
        cur,
        is_newest,
    } = s;
    let mut st = tx.prepare_cached(
        "INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, name, endpoint, allowed_ips, \
         latest_handshake, rx_bytes, tx_bytes, rx_delta, tx_delta, rx_bps, tx_bps) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
    )?;
    for wif in &r.wireguard {
        for p in &wif.peers {
            let (rx, txb) = (Some(p.rx_bytes), Some(p.tx_bytes));
            let prev = rc
                .wg
                .get(wif.name.as_str())
                .and_then(|m| m.get(p.public_key.as_str()));
            let d = pair_delta(prev, &cur, rx, txb, Width::Only64, false);
            let allowed: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
            let n = st.execute(params![
                rid,
                ts,
                wif.name,
                p.public_key,
                p.name,
                p.endpoint.map(|e| e.to_string()),
                allowed.join(","),
                sat_opt(p.latest_handshake),
                sat(p.rx_bytes),
                sat(p.tx_bytes),
                sat_opt(d.rx_delta),
                sat_opt(d.tx_delta),
                sat_opt(d.rx_bps),
                sat_opt(d.tx_bps),
            ])?;
            if n > 0 {
                rollups.add_wg(rid, &wif.name, &p.public_key, ts, &d);
            }
            if is_newest {
                if let Some(m) = inner(&mut rc.wg, &wif.name) {
                    remember(
                        m,
                        &p.public_key,
                        PrevSample {
                            origin: cur,
                            rx,
                            tx: txb,
                            session: None,
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

/// OpenVPN client samples (rx = received by the server from the client), deltas and rollups.
fn ingest_ovpn_clients(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    r: &Report,
    s: ReportStep,
    rollups: &mut Rollups,
) -> Result<(), StoreError> {
    let ReportStep {
        rid,
        ts,
        cur,
        is_newest,
    } = s;
    let mut st = tx.prepare_cached(
        "INSERT INTO ovpn_client_samples (router_id, ts_ms, instance, common_name, real_address, virtual_address, \
         virtual_ipv6, rx_bytes, tx_bytes, rx_delta, tx_delta, rx_bps, tx_bps, connected_since, username, cipher) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING",
    )?;
    for inst in &r.openvpn {
        for c in &inst.clients {
            let key = (
                c.common_name.clone(),
                c.real_address.clone().unwrap_or_default(),
            );
            let (rx, txb) = (Some(c.bytes_received), Some(c.bytes_sent));
            let prev = rc.ovpn.get(inst.name.as_str()).and_then(|m| m.get(&key));
            let new_session = prev.is_some_and(|p| {
                p.session.is_some() && c.connected_since.is_some() && p.session != c.connected_since
            });
            let d = pair_delta(prev, &cur, rx, txb, Width::Only64, new_session);
            let n = st.execute(params![
                rid,
                ts,
                inst.name,
                key.0,
                key.1,
                c.virtual_address.map(|a| a.to_string()),
                c.virtual_ipv6.map(|a| a.to_string()),
                sat(c.bytes_received),
                sat(c.bytes_sent),
                sat_opt(d.rx_delta),
                sat_opt(d.tx_delta),
                sat_opt(d.rx_bps),
                sat_opt(d.tx_bps),
                sat_opt(c.connected_since),
                c.username,
                c.cipher,
            ])?;
            if n > 0 {
                let session = (
                    inst.name.as_str(),
                    c.common_name.as_str(),
                    c.real_address.as_deref().unwrap_or(""),
                    c.connected_since.map_or(-1, sat),
                );
                rollups.add_ovpn(rid, session, ts, &d);
            }
            if is_newest {
                let p = PrevSample {
                    origin: cur,
                    rx,
                    tx: txb,
                    session: c.connected_since,
                };
                insert_inner(&mut rc.ovpn, &inst.name, key, p);
            }
        }
    }
    Ok(())
}

/// The newest report becomes the current state: wireless, leases, sources, WireGuard interfaces, facts.
fn make_current(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    item: &IngestItem<'_>,
    s: ReportStep,
    report_id: i64,
) -> Result<(), StoreError> {
    let r = item.report;
    let ReportStep { rid, ts, cur, .. } = s;
    sync_wireless(tx, rc, rid, ts, &r.wireless)?;
    sync_leases(tx, rc, rid, ts, &r.leases)?;
    sync_sources(tx, rc, rid, ts, &r.sources)?;
    sync_wg_interfaces(tx, rc, rid, ts, &r.wireguard)?;
    sync_wg_peers(tx, rc, rid, &r.wireguard)?;
    // `wg_peers` now holds exactly this report's peers: none, nothing to refresh.
    if r.wireguard.iter().any(|w| !w.peers.is_empty()) {
        super::wg_latest::refresh(tx, rid, ts)?;
    }
    sync_wan(tx, rc, rid, ts, &r.wan)?;
    update_facts(tx, item, report_id, ts)?;
    rc.last = Some(cur);
    rc.prune(cur.seq);
    Ok(())
}

/// One `probe_samples` row per probed target (a second report with the same time keeps the
/// first one's rows, as for the other samples).
fn ingest_probes(
    tx: &Transaction<'_>,
    r: &Report,
    s: ReportStep,
    rollups: &mut Rollups,
) -> Result<(), StoreError> {
    for p in &r.probes {
        let inserted = tx.prepare_cached(
            "INSERT OR IGNORE INTO probe_samples (router_id, ts_ms, target, role, name, sent, received, \
             rtt_min_us, rtt_avg_us, rtt_max_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            s.rid,
            s.ts,
            p.target.to_string(),
            p.role.as_str(),
            p.name,
            p.sent,
            p.received,
            p.rtt_min_us,
            p.rtt_avg_us,
            p.rtt_max_us,
        ])?;
        if inserted > 0 {
            rollups
                .fleet
                .add_probe(s.ts, p.sent, p.received, p.rtt_avg_us, p.rtt_max_us);
            rollups.probes.add(
                s.rid,
                s.ts,
                (p.sent, p.received),
                p.rtt_avg_us,
                p.rtt_max_us,
            );
        }
    }
    Ok(())
}

/// The router's WAN addresses, replaced from its newest report (`updated_ms`: when each address
/// first appeared).
fn sync_wan(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ts: i64,
    new: &[WanAddress],
) -> Result<(), StoreError> {
    sync_current(
        &mut rc.wan,
        new,
        |w| (w.device.clone(), w.addr.to_string()),
        || {
            let mut st =
                tx.prepare_cached("SELECT device, addr FROM wan_addresses WHERE router_id = ?1")?;
            let rows = st.query_map([rid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        },
        |w| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO wan_addresses (router_id, device, addr, updated_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![rid, w.device, w.addr.to_string(), ts])?;
            Ok(())
        },
        |(device, addr)| {
            tx.prepare_cached(
                "DELETE FROM wan_addresses WHERE router_id = ?1 AND device = ?2 AND addr = ?3",
            )?
            .execute(params![rid, device, addr])?;
            Ok(())
        },
    )
}

/// An older report only moves the router's last-seen time.
fn touch_last_seen(tx: &Transaction<'_>, item: &IngestItem<'_>) -> Result<(), StoreError> {
    let rid = item.router_id;
    tx.prepare_cached(
        "UPDATE routers SET last_seen_ms = max(coalesce(last_seen_ms, ?2), ?2) WHERE id = ?1",
    )?
    .execute(params![rid, item.received_at_ms])?;
    Ok(())
}

fn update_facts(
    tx: &Transaction<'_>,
    item: &IngestItem<'_>,
    report_id: i64,
    ts_ms: i64,
) -> Result<(), StoreError> {
    let r = item.report;
    let f = &r.router;
    let rel = f.release.as_ref();
    tx.prepare_cached(
        "UPDATE routers SET hostname = coalesce(nullif(?2, ''), hostname), model = ?3, board = ?4, release = ?5, \
         revision = ?6, target = ?7, kernel = ?8, agent_version = nullif(?9, ''), arch = nullif(?10, ''), \
         uptime_s = ?11, last_report_id = ?12, last_boot_id = ?13, last_seq = ?14, last_report_ms = ?15, \
         last_seen_ms = max(coalesce(last_seen_ms, ?16), ?16) WHERE id = ?1",
    )?
    .execute(params![
        item.router_id,
        f.hostname,
        f.model,
        f.board,
        rel.and_then(|x| x.release.as_deref()),
        rel.and_then(|x| x.revision.as_deref()),
        rel.and_then(|x| x.target.as_deref()),
        f.kernel,
        f.agent_version,
        f.arch,
        r.system.as_ref().map(|s| sat(s.uptime_s)),
        report_id,
        &r.boot_id[..],
        sat(r.seq),
        ts_ms,
        item.received_at_ms,
    ])?;
    Ok(())
}

/// Brings a current-state table in line with `new`, writing only rows that changed.
///
/// With a cached copy of what was last written, the diff is computed in memory; without one
/// (cold cache), rows whose key is gone are deleted using the keys in the database and every
/// row is upserted (the upsert keeps `updated_ms` of rows whose content did not change).
fn sync_current<T, K>(
    cached: &mut Option<Vec<T>>,
    new: &[T],
    key: impl Fn(&T) -> K,
    db_keys: impl FnOnce() -> Result<Vec<K>, StoreError>,
    mut upsert: impl FnMut(&T) -> Result<(), StoreError>,
    mut delete: impl FnMut(&K) -> Result<(), StoreError>,
) -> Result<(), StoreError>
where
    T: PartialEq + Clone,
    K: Eq + Hash,
{
    // The common case (nothing changed) costs one comparison, no key allocations.
    if cached.as_deref() == Some(new) {
        return Ok(());
    }
    let new_keys: HashSet<K> = new.iter().map(&key).collect();
    match cached.as_deref() {
        Some(old) => {
            let old_by_key: HashMap<K, &T> = old.iter().map(|t| (key(t), t)).collect();
            for t in new {
                if old_by_key.get(&key(t)).is_none_or(|o| *o != t) {
                    upsert(t)?;
                }
            }
            for k in old_by_key.keys().filter(|k| !new_keys.contains(*k)) {
                delete(k)?;
            }
        }
        None => {
            for k in db_keys()?.iter().filter(|k| !new_keys.contains(*k)) {
                delete(k)?;
            }
            for t in new {
                upsert(t)?;
            }
        }
    }
    *cached = Some(new.to_vec());
    Ok(())
}

fn string_keys(tx: &Transaction<'_>, sql: &str, router_id: i64) -> Result<Vec<String>, StoreError> {
    let mut st = tx.prepare_cached(sql)?;
    let rows = st.query_map([router_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn sync_wireless(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ts: i64,
    new: &[WirelessInterface],
) -> Result<(), StoreError> {
    if rc.wireless.as_deref() == Some(new) {
        return Ok(());
    }
    let upsert_sql = "INSERT INTO wireless_interfaces (router_id, name, phy, ifindex, addr, type, ssid, channel, \
         freq_mhz, width_mhz, center1_mhz, center2_mhz, txpower_dbm, links, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
         ON CONFLICT (router_id, name) DO UPDATE SET \
         (phy, ifindex, addr, type, ssid, channel, freq_mhz, width_mhz, center1_mhz, center2_mhz, txpower_dbm, links, updated_ms) = \
         (excluded.phy, excluded.ifindex, excluded.addr, excluded.type, excluded.ssid, excluded.channel, \
         excluded.freq_mhz, excluded.width_mhz, excluded.center1_mhz, excluded.center2_mhz, excluded.txpower_dbm, \
         excluded.links, \
         CASE WHEN (phy, ifindex, addr, type, ssid, channel, freq_mhz, width_mhz, center1_mhz, center2_mhz, txpower_dbm, links) \
         IS (excluded.phy, excluded.ifindex, excluded.addr, excluded.type, excluded.ssid, excluded.channel, \
         excluded.freq_mhz, excluded.width_mhz, excluded.center1_mhz, excluded.center2_mhz, excluded.txpower_dbm, \
         excluded.links) \
         THEN updated_ms ELSE excluded.updated_ms END)";
    sync_current(
        &mut rc.wireless,
        new,
        |w| w.name.clone(),
        || {
            string_keys(
                tx,
                "SELECT name FROM wireless_interfaces WHERE router_id = ?1",
                rid,
            )
        },
        |w| {
            tx.prepare_cached(upsert_sql)?.execute(params![
                rid,
                w.name,
                w.phy,
                w.ifindex,
                w.addr.map(|a| a.to_string()),
                w.iftype.as_str(),
                w.ssid,
                w.channel,
                w.freq_mhz,
                w.width_mhz,
                w.center1_mhz,
                w.center2_mhz,
                w.txpower_dbm,
                links_json(&w.links),
                ts,
            ])?;
            Ok(())
        },
        |name| {
            tx.prepare_cached(
                "DELETE FROM wireless_interfaces WHERE router_id = ?1 AND name = ?2",
            )?
            .execute(params![rid, name])?;
            Ok(())
        },
    )
}

/// The `wireless_interfaces.links` JSON of an MLD interface's links (None without links).
fn links_json(links: &[WifiLink]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    serde_json::to_string(links).ok()
}

/// Reads a `wireless_interfaces.links` value back: no links for NULL, and for a malformed value
/// (the collector never writes one).
pub fn wifi_links(json: Option<String>) -> Vec<WifiLink> {
    json.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn sync_leases(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ts: i64,
    new: &[DhcpLease],
) -> Result<(), StoreError> {
    let upsert_sql = "INSERT INTO leases (router_id, ip, mac, hostname, client_id, iaid, expires, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (router_id, ip) DO UPDATE SET (mac, hostname, client_id, iaid, expires, updated_ms) = \
         (excluded.mac, excluded.hostname, excluded.client_id, excluded.iaid, excluded.expires, \
         CASE WHEN (mac, hostname, client_id, iaid, expires) IS \
         (excluded.mac, excluded.hostname, excluded.client_id, excluded.iaid, excluded.expires) \
         THEN updated_ms ELSE excluded.updated_ms END)";
    sync_current(
        &mut rc.leases,
        new,
        |l| l.ip.to_string(),
        || string_keys(tx, "SELECT ip FROM leases WHERE router_id = ?1", rid),
        |l| {
            tx.prepare_cached(upsert_sql)?.execute(params![
                rid,
                l.ip.to_string(),
                l.mac.map(|m| m.to_string()),
                l.hostname,
                l.client_id,
                l.iaid,
                sat_opt(l.expires),
                ts,
            ])?;
            Ok(())
        },
        |ip| {
            tx.prepare_cached("DELETE FROM leases WHERE router_id = ?1 AND ip = ?2")?
                .execute(params![rid, ip])?;
            Ok(())
        },
    )
}

fn sync_wg_interfaces(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ts: i64,
    new: &[WgInterface],
) -> Result<(), StoreError> {
    let new: Vec<WgIfaceRow> = new.iter().map(WgIfaceRow::of).collect();
    let upsert_sql = "INSERT INTO wg_interfaces (router_id, name, public_key, listen_port, fwmark, peers, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (router_id, name) DO UPDATE SET (public_key, listen_port, fwmark, peers, updated_ms) = \
         (excluded.public_key, excluded.listen_port, excluded.fwmark, excluded.peers, \
         CASE WHEN (public_key, listen_port, fwmark, peers) IS \
         (excluded.public_key, excluded.listen_port, excluded.fwmark, excluded.peers) \
         THEN updated_ms ELSE excluded.updated_ms END)";
    sync_current(
        &mut rc.wg_ifaces,
        &new,
        |w| w.name.clone(),
        || {
            string_keys(
                tx,
                "SELECT name FROM wg_interfaces WHERE router_id = ?1",
                rid,
            )
        },
        |w| {
            tx.prepare_cached(upsert_sql)?.execute(params![
                rid,
                w.name,
                w.public_key,
                w.listen_port,
                w.fwmark,
                w.peers,
                ts,
            ])?;
            Ok(())
        },
        |name| {
            tx.prepare_cached("DELETE FROM wg_interfaces WHERE router_id = ?1 AND name = ?2")?
                .execute(params![rid, name])?;
            Ok(())
        },
    )
}

/// `wg_peers` follows the newest report's peers (rows are added, renamed or deleted only when
/// the peer set or a peer's name changes; their value columns are rewritten for every newest
/// report by `super::wg_latest::refresh`). Known gap: a newer report with the very same `ts_ms` as the previous one
/// replaces the set, while `wg_peer_samples` keeps the first report's rows at that time, so a
/// peer only the first one had is not found by key or name until the router's next report
/// (the readers join the samples, so nothing wrong is shown).
fn sync_wg_peers(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ifaces: &[WgInterface],
) -> Result<(), StoreError> {
    let new = WgPeerRow::of_report(ifaces);
    sync_current(
        &mut rc.wg_peers,
        &new,
        |p| (p.iface.clone(), p.public_key.clone()),
        || {
            let mut st =
                tx.prepare_cached("SELECT iface, public_key FROM wg_peers WHERE router_id = ?1")?;
            let rows = st.query_map([rid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        },
        |p| {
            tx.prepare_cached(
                "INSERT INTO wg_peers (router_id, iface, public_key, name) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (router_id, iface, public_key) DO UPDATE SET name = excluded.name",
            )?
            .execute(params![rid, p.iface, p.public_key, p.name])?;
            Ok(())
        },
        |(iface, key)| {
            tx.prepare_cached(
                "DELETE FROM wg_peers WHERE router_id = ?1 AND iface = ?2 AND public_key = ?3",
            )?
            .execute(params![rid, iface, key])?;
            Ok(())
        },
    )
}

/// `(state, skipped, detail)` columns of a source state.
fn source_columns(s: &SourceState) -> (&'static str, Option<u32>, Option<&str>) {
    match s {
        SourceState::Ok => ("ok", None, None),
        SourceState::Partial {
            skipped,
            first_error,
        } => ("partial", Some(*skipped), Some(first_error.as_str())),
        SourceState::Error(e) => ("error", None, Some(e.as_str())),
        SourceState::ToolMissing(t) => ("tool_missing", None, Some(t.as_str())),
        SourceState::Disabled => ("disabled", None, None),
    }
}

fn sync_sources(
    tx: &Transaction<'_>,
    rc: &mut RouterCache,
    rid: i64,
    ts: i64,
    new: &[SourceStatus],
) -> Result<(), StoreError> {
    let upsert_sql =
        "INSERT INTO source_status (router_id, kind, name, state, skipped, detail, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (router_id, kind, name) DO UPDATE SET (state, skipped, detail, updated_ms) = \
         (excluded.state, excluded.skipped, excluded.detail, \
         CASE WHEN (state, skipped, detail) IS (excluded.state, excluded.skipped, excluded.detail) \
         THEN updated_ms ELSE excluded.updated_ms END)";
    sync_current(
        &mut rc.sources,
        new,
        |s| (s.kind.as_str().to_string(), s.name.clone()),
        || {
            let mut st =
                tx.prepare_cached("SELECT kind, name FROM source_status WHERE router_id = ?1")?;
            let rows = st.query_map([rid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        },
        |s| {
            let (state, skipped, detail) = source_columns(&s.state);
            tx.prepare_cached(upsert_sql)?.execute(params![
                rid,
                s.kind.as_str(),
                s.name,
                state,
                skipped,
                detail,
                ts
            ])?;
            Ok(())
        },
        |(kind, name)| {
            tx.prepare_cached(
                "DELETE FROM source_status WHERE router_id = ?1 AND kind = ?2 AND name = ?3",
            )?
            .execute(params![rid, kind, name])?;
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, mac, mld_interface, open_temp, rich_report};
    use routerstats_shared::model::{NetInterface, Report, SourceKind};

    const BOOT_A: [u8; 16] = [0xaa; 16];
    const BOOT_B: [u8; 16] = [0xbb; 16];
    /// 2023-11-14T22:13:20Z, on a 1-hour boundary.
    const T0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;

    fn one(store: &mut Store, router_id: i64, report: &Report) -> IngestOutcome {
        let out = store
            .ingest(&[IngestItem {
                router_id,
                received_at_ms: 42,
                report,
            }])
            .unwrap();
        assert_eq!(out.len(), 1);
        out[0]
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn i64_query(store: &Store, sql: &str) -> Option<i64> {
        store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Two reports of a router with the same time (another sequence number): the samples
    /// stored first stay, the second report is stored (its `reports` row) and a warning says
    /// which of its samples were not.
    #[test]
    fn samples_at_a_stored_time_keep_the_first_and_say_so() {
        use crate::api::log_capture::{log_ring, LogCapture, LOG_CAPACITY};
        use tracing_subscriber::layer::SubscriberExt;
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw1");
        let first = rich_report(BOOT_A, 1, T0, 1000);
        let same_time = rich_report(BOOT_A, 7_777, T0, 5000);
        assert_eq!(one(&mut store, r.id, &first), IngestOutcome::Stored);
        let subscriber = tracing_subscriber::registry().with(LogCapture);
        let out =
            tracing::subscriber::with_default(subscriber, || one(&mut store, r.id, &same_time));
        assert_eq!(out, IngestOutcome::Stored);
        assert_eq!(count(&store, "reports"), 2);
        assert_eq!(
            count(&store, "station_samples"),
            first.stations.len() as i64
        );
        assert_eq!(
            i64_query(&store, "SELECT max(rx_bytes) FROM interface_samples"),
            first.interfaces.iter().map(|i| i.rx_bytes as i64).max()
        );
        let line = log_ring()
            .recent(LOG_CAPACITY, 1)
            .into_iter()
            .find(|l| l.message.contains("seq=7777"))
            .expect("a warning for the report");
        assert_eq!(line.level, "WARN");
        assert!(
            line.message
                .contains(&format!("stations={}", first.stations.len())),
            "{}",
            line.message
        );
        assert!(
            line.message
                .contains(&format!("interfaces={}", first.interfaces.len())),
            "{}",
            line.message
        );
    }

    /// Schema 20: the ingest lists each (hour, MAC, router) of its station rows in
    /// `raw_block_keys` once: not again for later reports of the hour, again in a new hour,
    /// and for a late report of an earlier hour; a lookup by MAC finds the rows through them.
    #[test]
    fn station_rows_are_listed_by_mac_once_per_hour() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw1");
        let keys = |store: &Store| -> Vec<(i64, String)> {
            store
                .connection()
                .prepare("SELECT hour_ms, key FROM raw_block_keys WHERE tbl = 1 AND router_id = ?1 ORDER BY 1, 2")
                .unwrap()
                .query_map([r.id], |x| Ok((x.get(0)?, x.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let h = 3_600_000i64;
        let t0 = T0 as i64;
        let first = rich_report(BOOT_A, 1, T0 + 1, 1000);
        let macs: Vec<String> = {
            let mut m: Vec<String> = first.stations.iter().map(|s| s.mac.to_string()).collect();
            m.sort();
            m.dedup();
            m
        };
        assert!(!macs.is_empty());
        one(&mut store, r.id, &first);
        let hour0: Vec<(i64, String)> = macs.iter().map(|m| (t0, m.clone())).collect();
        assert_eq!(keys(&store), hour0);
        // Later in the hour: nothing new.
        one(&mut store, r.id, &rich_report(BOOT_A, 2, T0 + 30_000, 2000));
        assert_eq!(keys(&store), hour0);
        // The next hour, then a late report of the first hour after its entries went.
        one(
            &mut store,
            r.id,
            &rich_report(BOOT_A, 3, T0 + 3_600_000, 3000),
        );
        let mut both = hour0.clone();
        both.extend(macs.iter().map(|m| (t0 + h, m.clone())));
        assert_eq!(keys(&store), both);
        store
            .connection()
            .execute("DELETE FROM raw_block_keys WHERE hour_ms = ?1", [t0])
            .unwrap();
        one(&mut store, r.id, &rich_report(BOOT_A, 4, T0 + 60_000, 1500));
        assert_eq!(keys(&store), both);
        // Found by MAC alone, in both hours.
        let found: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM station_samples_all WHERE mac = ?1",
                [&macs[0]],
                |x| x.get(0),
            )
            .unwrap();
        let per_report = first
            .stations
            .iter()
            .filter(|s| s.mac.to_string() == macs[0])
            .count() as i64;
        assert_eq!(found, 4 * per_report);
    }

    const ALL_TABLES: &[&str] = &[
        "reports",
        "interface_samples",
        "station_samples",
        "station_link_samples",
        "wg_peer_samples",
        "ovpn_client_samples",
        "interface_rollup_5m",
        "interface_rollup_1h",
        "station_rollup_1h",
        "wg_rollup_1h",
        "ovpn_rollup_1h",
        "station_fleet_1h",
        "station_rollup_5m",
        "wireless_interfaces",
        "leases",
        "source_status",
        "wg_interfaces",
    ];

    #[test]
    fn probes_are_samples_and_wan_addresses_current_state() {
        use routerstats_shared::{ProbeResult, ProbeRole};
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let probe = |target: &str, sent: u32, received: u32, avg: Option<u32>| ProbeResult {
            role: ProbeRole::Gateway,
            target: target.parse().unwrap(),
            name: "eth0.2".into(),
            sent,
            received,
            rtt_min_us: avg.map(|a| a / 2),
            rtt_avg_us: avg,
            rtt_max_us: avg.map(|a| a * 2),
        };
        let wan = |a: &str| WanAddress {
            device: "eth0.2".into(),
            addr: a.parse().unwrap(),
        };
        let mut first = Report {
            seq: 1,
            boot_id: BOOT_A,
            timestamp_ms: T0,
            ..Default::default()
        };
        first.probes = vec![
            probe("192.0.2.1", 4, 4, Some(10_000)),
            probe("192.0.2.53", 4, 0, None),
        ];
        first.wan = vec![wan("203.0.113.7/24"), wan("2001:db8::7/64")];
        assert_eq!(one(&mut store, r.id, &first), IngestOutcome::Stored);
        let mut second = Report {
            seq: 2,
            boot_id: BOOT_A,
            timestamp_ms: T0 + 30_000,
            ..Default::default()
        };
        second.probes = vec![probe("192.0.2.1", 4, 2, Some(40_000))];
        second.wan = vec![wan("203.0.113.9/24"), wan("2001:db8::7/64")];
        assert_eq!(one(&mut store, r.id, &second), IngestOutcome::Stored);
        assert_eq!(count(&store, "probe_samples"), 3);
        let f = crate::api::fleet::probe_figures(store.connection(), Some(r.id), 0, i64::MAX)
            .unwrap()[&r.id];
        // 12 sent, 6 received; latency weighted by replies: (4 x 10 ms + 2 x 40 ms) / 6 = 20 ms.
        assert_eq!((f.sent, f.received, f.loss_percent()), (12, 6, Some(50.0)));
        assert_eq!((f.latency_ms, f.max_latency_ms), (Some(20.0), Some(80.0)));
        let later =
            crate::api::fleet::probe_figures(store.connection(), None, (T0 + 1) as i64, i64::MAX)
                .unwrap();
        assert_eq!(later[&r.id].loss_percent(), Some(50.0));
        assert_eq!(later[&r.id].latency_ms, Some(40.0));
        let w = &crate::api::fleet::wan_addresses(store.connection(), Some(r.id)).unwrap()[&r.id];
        let addrs: Vec<&str> = w.iter().map(|a| a.addr.as_str()).collect();
        assert_eq!(addrs, ["203.0.113.9/24", "2001:db8::7/64"]);
        assert_eq!(
            (w[0].ip(), w[0].is_ipv4(), w[1].is_ipv4()),
            ("203.0.113.9", true, false)
        );
        // The kept address keeps the time it first appeared.
        assert_eq!(
            i64_query(
                &store,
                "SELECT updated_ms FROM wan_addresses WHERE addr LIKE '2001%'"
            ),
            Some(T0 as i64)
        );
        // A report of an older agent (no probes, no WAN) empties the WAN state.
        let third = Report {
            seq: 3,
            boot_id: BOOT_A,
            timestamp_ms: T0 + 60_000,
            ..Default::default()
        };
        one(&mut store, r.id, &third);
        assert_eq!(count(&store, "wan_addresses"), 0);
    }

    #[test]
    fn rich_report_fills_every_table() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        assert_eq!(
            one(&mut store, r.id, &rich_report(BOOT_A, 1, T0, 1000)),
            IngestOutcome::Stored
        );
        for table in ALL_TABLES {
            assert!(count(&store, table) > 0, "{table} is empty");
        }
        assert_eq!(count(&store, "interface_samples"), 2);
        assert_eq!(count(&store, "station_samples"), 2);
        assert_eq!(count(&store, "leases"), 2);
        assert_eq!(count(&store, "source_status"), 3);

        let c = store.connection();
        let (uptime, load5, disk, stations, wg, ovpn): (i64, f64, String, i64, i64, i64) = c
            .query_row(
                "SELECT uptime_s, load5, disk_mount, station_count, wg_peer_count, ovpn_client_count FROM reports",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(
            (uptime, load5, disk.as_str(), stations, wg, ovpn),
            (3630, 0.5, "/overlay", 2, 1, 1)
        );

        // First sample: counters stored, no deltas.
        let (rx, delta): (i64, Option<i64>) = c
            .query_row(
                "SELECT rx_bytes, rx_delta FROM interface_samples WHERE name = 'eth0'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rx, delta), (1_000_000, None));

        // The MLO station's counters are the sums over its links; ssid comes from iw dev.
        let (rx, ssid, signal, bitrate): (i64, String, i64, i64) = c
            .query_row(
                "SELECT rx_bytes, ssid, signal_dbm, tx_bitrate_kbps FROM station_samples WHERE mac = ?1",
                [mac(2).to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (rx, ssid.as_str(), signal, bitrate),
            (20_000, "lab", -55, 1_200_000)
        );

        let (endpoint, allowed): (String, String) = c
            .query_row(
                "SELECT endpoint, allowed_ips FROM wg_peer_samples",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (endpoint.as_str(), allowed.as_str()),
            ("198.51.100.7:40000", "10.70.0.2/32,fd70::2/128")
        );
        let (cn, real, vaddr): (String, String, String) = c
            .query_row(
                "SELECT common_name, real_address, virtual_address FROM ovpn_client_samples",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (cn.as_str(), real.as_str(), vaddr.as_str()),
            ("alice", "203.0.113.5:51000", "10.8.0.6")
        );
        let (state, skipped, detail): (String, i64, String) = c
            .query_row(
                "SELECT state, skipped, detail FROM source_status WHERE kind = 'openvpn'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (state.as_str(), skipped, detail.as_str()),
            ("partial", 1, "bad row")
        );
        let (ssid, freq, txp): (String, i64, f64) = c
            .query_row(
                "SELECT ssid, freq_mhz, txpower_dbm FROM wireless_interfaces",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((ssid.as_str(), freq, txp), ("lab", 5180, 23.0));

        // Router facts.
        let row = store.router("gw").unwrap().unwrap();
        assert_eq!(row.hostname, "gw-lab");
        assert_eq!(row.model.as_deref(), Some("GL.iNet GL-MT6000"));
        assert_eq!(row.release.as_deref(), Some("23.05.3"));
        assert_eq!(row.target.as_deref(), Some("mediatek/filogic"));
        assert_eq!(row.kernel.as_deref(), Some("5.15.150"));
        assert_eq!(row.agent_version.as_deref(), Some("0.1.0"));
        assert_eq!(row.arch.as_deref(), Some("aarch64"));
        assert_eq!(row.uptime_s, Some(3630));
        assert_eq!(row.last_seen_ms, Some(42));
        assert_eq!(row.last_report_ms, Some(T0 as i64));
    }

    #[test]
    fn duplicates_within_and_across_batches() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let a1 = rich_report(BOOT_A, 1, T0, 1000);
        let a2 = rich_report(BOOT_A, 2, T0 + 30_000, 2000);
        // Same (boot, seq) as a1 but different content: still a duplicate.
        let a1_again = rich_report(BOOT_A, 1, T0 + 99_000, 9999);
        let b1 = rich_report(BOOT_B, 1, T0 + 60_000, 10);
        let item = |report| IngestItem {
            router_id: r.id,
            received_at_ms: 1,
            report,
        };
        let out = store
            .ingest(&[item(&a1), item(&a2), item(&a1_again), item(&a2)])
            .unwrap();
        use IngestOutcome::{Duplicate, Stored};
        assert_eq!(out, vec![Stored, Stored, Duplicate, Duplicate]);
        let before: Vec<i64> = ALL_TABLES.iter().map(|t| count(&store, t)).collect();
        let rollup_before = i64_query(&store, "SELECT sum(rx_bytes) FROM interface_rollup_5m");

        let out = store
            .ingest(&[item(&a2), item(&b1), item(&a1), item(&b1)])
            .unwrap();
        assert_eq!(out, vec![Duplicate, Stored, Duplicate, Duplicate]);
        assert_eq!(count(&store, "reports"), 3);
        // Only b1 added raw rows; the duplicates changed nothing.
        assert_eq!(count(&store, "interface_samples"), before[1] + 2);
        assert_eq!(
            i64_query(&store, "SELECT sum(rx_bytes) FROM interface_rollup_5m"),
            rollup_before
        );
        // b1 is a new boot: stored without deltas.
        let sql = format!(
            "SELECT count(*) FROM interface_samples WHERE ts_ms = {} AND rx_delta IS NULL",
            T0 + 60_000
        );
        assert_eq!(i64_query(&store, &sql), Some(2));
    }

    /// The rich report plus Wi-Fi 7 / airtime facts: an MLD interface with two links, airtime
    /// counters on station 1 and on the links of the MLO station 2, a mesh gate flag.
    fn airtime_report(seq: u64, ts: u64, c: u64) -> Report {
        use routerstats_shared::model::MeshPeer;
        let mut r = rich_report(BOOT_A, seq, ts, c);
        r.wireless.push(mld_interface());
        let s1 = &mut r.stations[0];
        s1.stats.tx_duration_us = Some(c * 1_000);
        s1.stats.rx_duration_us = Some(c * 100);
        s1.stats.airtime_weight = Some(256);
        s1.mesh = Some(MeshPeer {
            connected_to_gate: Some(true),
            ..MeshPeer::default()
        });
        for (i, l) in r.stations[1].links.iter_mut().enumerate() {
            l.stats.tx_duration_us = Some(c * 10 * (i as u64 + 1));
            l.stats.rx_duration_us = Some(c * (i as u64 + 1));
        }
        r
    }

    #[test]
    fn mld_links_airtime_and_per_link_samples_are_stored() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &airtime_report(1, T0, 1000));
        one(&mut store, r.id, &airtime_report(2, T0 + 30_000, 1300));
        let conn = store.connection();
        let links: String = conn
            .query_row(
                "SELECT links FROM wireless_interfaces WHERE name = 'ap-mld0'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&links).unwrap();
        assert_eq!(v[0]["link_id"], 1);
        assert_eq!(
            (v[1]["width_mhz"].as_i64(), v[1]["txpower_dbm"].as_f64()),
            (Some(320), Some(21.5))
        );
        assert_eq!(v[1]["addr"], mac(0x62).to_string());
        let single: Option<String> = conn
            .query_row(
                "SELECT links FROM wireless_interfaces WHERE name = 'phy0-ap0'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(single, None);
        let airtime = |m: u8, ts: u64| -> [Option<i64>; 6] {
            conn.query_row(
                "SELECT tx_duration_us, rx_duration_us, tx_airtime_us, rx_airtime_us, airtime_weight, mesh_gate \
                 FROM station_samples WHERE mac = ?1 AND ts_ms = ?2",
                params![mac(m).to_string(), ts as i64],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]),
            )
            .unwrap()
        };
        // First sample: counters, no per-report airtime yet.
        assert_eq!(
            airtime(1, T0),
            [
                Some(1_000_000),
                Some(100_000),
                None,
                None,
                Some(256),
                Some(1)
            ]
        );
        // Second: 300 * 1000 us sent and 300 * 100 us received in this cycle.
        assert_eq!(
            airtime(1, T0 + 30_000),
            [
                Some(1_300_000),
                Some(130_000),
                Some(300_000),
                Some(30_000),
                Some(256),
                Some(1)
            ]
        );
        // 330 ms of airtime in 30 s: 11 per mille.
        let permille = |m: u8, ts: u64| -> Option<i64> {
            conn.query_row(
                "SELECT airtime_permille FROM station_samples WHERE mac = ?1 AND ts_ms = ?2",
                params![mac(m).to_string(), ts as i64],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            (permille(1, T0), permille(1, T0 + 30_000)),
            (None, Some(11))
        );
        // The MLO station: sums over its links (10c + 20c, c + 2c).
        assert_eq!(
            airtime(2, T0 + 30_000)[..4],
            [Some(39_000), Some(3_900), Some(9_000), Some(900)]
        );
        type LinkRow = (i64, Option<i64>, Option<i64>, Option<i64>);
        let per_link: Vec<LinkRow> = conn
            .prepare("SELECT link_id, tx_duration_us, rx_bytes, tx_bitrate_kbps FROM station_link_samples WHERE mac = ?1 AND ts_ms = ?2 ORDER BY link_id")
            .unwrap()
            .query_map(params![mac(2).to_string(), (T0 + 30_000) as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(per_link.len(), 2);
        assert_eq!(
            (per_link[0].0, per_link[0].1, per_link[1].0, per_link[1].1),
            (0, Some(13_000), 1, Some(26_000))
        );
        assert_eq!(
            (per_link[0].3, per_link[1].3),
            (Some(1_200_000), Some(600_000))
        );
        // A station without links has no link rows.
        assert_eq!(
            i64_query(
                &store,
                &format!(
                    "SELECT count(*) FROM station_link_samples WHERE mac = '{}'",
                    mac(1)
                )
            ),
            Some(0)
        );
    }

    #[test]
    fn airtime_deltas_survive_a_cold_cache() {
        let (dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &airtime_report(1, T0, 1000));
        drop(store);
        let mut store = Store::open(&dir.path().join("routerstats.db")).unwrap();
        one(&mut store, r.id, &airtime_report(2, T0 + 30_000, 1100));
        let q = format!(
            "SELECT tx_airtime_us FROM station_samples WHERE mac = '{}' AND ts_ms = {}",
            mac(1),
            T0 + 30_000
        );
        assert_eq!(i64_query(&store, &q), Some(100_000));
    }

    #[test]
    fn a_sample_without_airtime_counters_keeps_the_previous_ones_for_the_next() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &airtime_report(1, T0, 1000));
        // The second report's first station has byte counters but no airtime counters.
        let mut second = airtime_report(2, T0 + 30_000, 1100);
        second.stations[0].stats.tx_duration_us = None;
        second.stations[0].stats.rx_duration_us = None;
        one(&mut store, r.id, &second);
        one(&mut store, r.id, &airtime_report(3, T0 + 60_000, 1300));
        let q = |ts: u64| {
            format!(
                "SELECT tx_airtime_us FROM station_samples WHERE mac = '{}' AND ts_ms = {ts}",
                mac(1)
            )
        };
        assert_eq!(i64_query(&store, &q(T0 + 30_000)), None);
        // Against the first report's counters (1,000 -> 1,300 ms), not unknown.
        assert_eq!(i64_query(&store, &q(T0 + 60_000)), Some(300_000));
        // The byte deltas went on from the second report.
        let rx_delta = format!(
            "SELECT rx_delta FROM station_samples WHERE mac = '{}' AND ts_ms = {}",
            mac(1),
            T0 + 60_000
        );
        assert!(i64_query(&store, &rx_delta).is_some_and(|d| d > 0));
    }

    #[test]
    fn deltas_rates_and_boot_change() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &rich_report(BOOT_A, 1, T0, 1000));
        one(&mut store, r.id, &rich_report(BOOT_A, 2, T0 + 30_000, 1300));
        let q = |store: &Store,
                 table: &str,
                 key: &str,
                 ts: u64|
         -> (Option<i64>, Option<i64>, Option<i64>, Option<i64>) {
            store
                .connection()
                .query_row(
                    &format!("SELECT rx_delta, tx_delta, rx_bps, tx_bps FROM {table} WHERE {key} AND ts_ms = ?1"),
                    [ts as i64],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap()
        };
        // eth0: rx = c*1000, tx = c*500 -> deltas 300_000 / 150_000 over 30 s.
        assert_eq!(
            q(&store, "interface_samples", "name = 'eth0'", T0 + 30_000),
            (Some(300_000), Some(150_000), Some(80_000), Some(40_000))
        );
        // station 1: rx = c*10, tx = c*20.
        let m1 = format!("mac = '{}'", mac(1));
        assert_eq!(
            q(&store, "station_samples", &m1, T0 + 30_000),
            (Some(3000), Some(6000), Some(800), Some(1600))
        );
        // MLO station sums both links.
        let m2 = format!("mac = '{}'", mac(2));
        assert_eq!(q(&store, "station_samples", &m2, T0 + 30_000).0, Some(6000));
        assert_eq!(
            q(&store, "wg_peer_samples", "1 = 1", T0 + 30_000).0,
            Some(12_000)
        );
        assert_eq!(
            q(&store, "ovpn_client_samples", "1 = 1", T0 + 30_000),
            (Some(18_000), Some(27_000), Some(4800), Some(7200))
        );

        // A new agent boot: counters went up, but nothing is subtracted across boots.
        one(&mut store, r.id, &rich_report(BOOT_B, 1, T0 + 60_000, 5000));
        assert_eq!(
            q(&store, "interface_samples", "name = 'eth0'", T0 + 60_000),
            (None, None, None, None)
        );
        assert_eq!(
            q(&store, "station_samples", &m1, T0 + 60_000),
            (None, None, None, None)
        );
        // ...and the next report of the new boot has deltas again.
        one(&mut store, r.id, &rich_report(BOOT_B, 2, T0 + 90_000, 5010));
        assert_eq!(
            q(&store, "interface_samples", "name = 'eth0'", T0 + 90_000).0,
            Some(10_000)
        );
    }

    fn iface_report(seq: u64, ts: u64, rx: u64, tx: u64) -> Report {
        Report {
            seq,
            boot_id: BOOT_A,
            timestamp_ms: ts,
            interfaces: vec![NetInterface {
                name: "eth1".into(),
                rx_bytes: rx,
                tx_bytes: tx,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn wrap_and_reset_of_interface_counters() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let near_wrap = (1u64 << 32) - 1000;
        one(&mut store, r.id, &iface_report(1, T0, near_wrap, 5_000_000));
        // rx wrapped at 2^32 (+1500), tx went down from a small value: a reset.
        one(&mut store, r.id, &iface_report(2, T0 + 1000, 500, 20));
        one(&mut store, r.id, &iface_report(3, T0 + 2000, 1500, 220));
        let rows: Vec<(Option<i64>, Option<i64>)> = {
            let mut st = store
                .connection()
                .prepare("SELECT rx_delta, tx_delta FROM interface_samples ORDER BY ts_ms")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            rows,
            vec![(None, None), (Some(1500), None), (Some(1000), Some(200))]
        );
        // The rollup holds the sum of the known deltas.
        assert_eq!(
            i64_query(&store, "SELECT rx_bytes FROM interface_rollup_1h"),
            Some(2500)
        );
        assert_eq!(
            i64_query(&store, "SELECT tx_bytes FROM interface_rollup_1h"),
            Some(200)
        );
        assert_eq!(
            i64_query(&store, "SELECT samples FROM interface_rollup_1h"),
            Some(3)
        );
        assert_eq!(
            i64_query(&store, "SELECT max_rx_bps FROM interface_rollup_1h"),
            Some(12_000)
        );
    }

    #[test]
    fn late_report_is_stored_without_deltas_and_changes_no_current_state() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &iface_report(1, T0, 100, 100));
        one(&mut store, r.id, &iface_report(3, T0 + 2000, 300, 300));
        let mut late = iface_report(2, T0 + 1000, 200, 200);
        late.router.hostname = "stale-name".into();
        assert_eq!(one(&mut store, r.id, &late), IngestOutcome::Stored);
        assert_eq!(
            i64_query(
                &store,
                &format!(
                    "SELECT rx_delta FROM interface_samples WHERE ts_ms = {}",
                    T0 + 1000
                )
            ),
            None
        );
        let row = store.router("gw").unwrap().unwrap();
        assert_eq!(row.last_report_ms, Some((T0 + 2000) as i64));
        assert_ne!(row.hostname, "stale-name");
        // The next report still subtracts from seq 3, not from the late seq 2.
        one(&mut store, r.id, &iface_report(4, T0 + 3000, 450, 450));
        assert_eq!(
            i64_query(
                &store,
                &format!(
                    "SELECT rx_delta FROM interface_samples WHERE ts_ms = {}",
                    T0 + 3000
                )
            ),
            Some(150)
        );
    }

    #[test]
    fn cold_cache_continues_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routerstats.db");
        let router_id = {
            let mut store = Store::open(&path).unwrap();
            let r = enrolled_router(&mut store, "gw");
            one(&mut store, r.id, &rich_report(BOOT_A, 1, T0, 1000));
            r.id
        };
        let mut store = Store::open(&path).unwrap();
        assert!(store.cache.is_empty());
        one(
            &mut store,
            router_id,
            &rich_report(BOOT_A, 2, T0 + 30_000, 1100),
        );
        let q = |sql: &str| i64_query(&store, sql);
        assert_eq!(q("SELECT rx_delta FROM interface_samples WHERE name = 'eth0' AND rx_delta IS NOT NULL"), Some(100_000));
        assert_eq!(
            q(&format!(
                "SELECT rx_delta FROM station_samples WHERE mac = '{}' AND rx_delta IS NOT NULL",
                mac(1)
            )),
            Some(1000)
        );
        assert_eq!(
            q("SELECT rx_delta FROM wg_peer_samples WHERE rx_delta IS NOT NULL"),
            Some(4000)
        );
        assert_eq!(
            q("SELECT rx_delta FROM ovpn_client_samples WHERE rx_delta IS NOT NULL"),
            Some(6000)
        );
        // Current state is unchanged, so updated_ms keeps the first report's time.
        assert_eq!(q("SELECT max(updated_ms) FROM leases"), Some(T0 as i64));
        assert_eq!(
            q("SELECT max(updated_ms) FROM source_status"),
            Some(T0 as i64)
        );
        assert_eq!(
            q("SELECT max(updated_ms) FROM wireless_interfaces"),
            Some(T0 as i64)
        );
    }

    #[test]
    fn station_reassociation_and_new_ovpn_session_reset_deltas() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &rich_report(BOOT_A, 1, T0, 1000));
        let mut next = rich_report(BOOT_A, 2, T0 + 30_000, 1100);
        // Station 1 re-associated 5 s ago; its counters happen to be higher than before.
        next.stations[0].connected_s = Some(5);
        next.openvpn[0].clients[0].connected_since = Some(1_700_000_500);
        one(&mut store, r.id, &next);
        let q = |sql: String| i64_query(&store, &sql);
        let ts = T0 + 30_000;
        assert_eq!(
            q(format!(
                "SELECT rx_delta FROM station_samples WHERE mac = '{}' AND ts_ms = {ts}",
                mac(1)
            )),
            None
        );
        assert_eq!(
            q(format!(
                "SELECT rx_delta FROM station_samples WHERE mac = '{}' AND ts_ms = {ts}",
                mac(2)
            )),
            Some(2000)
        );
        assert_eq!(
            q(format!(
                "SELECT rx_delta FROM ovpn_client_samples WHERE ts_ms = {ts}"
            )),
            None
        );
    }

    #[test]
    fn rollups_equal_sums_of_raw_deltas() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let other = enrolled_router(&mut store, "ap");
        // 2.5 hours of reports every 70 s, in batches of 7, for two routers, with one reset.
        let mut reports = Vec::new();
        let mut c = 1000;
        for seq in 1..=130u64 {
            c = if seq == 60 { 10 } else { c + seq * 3 };
            reports.push(rich_report(BOOT_A, seq, T0 + 1234 + seq * 70_000, c));
        }
        for chunk in reports.chunks(7) {
            let batch: Vec<IngestItem<'_>> = chunk
                .iter()
                .flat_map(|rep| {
                    [
                        IngestItem {
                            router_id: r.id,
                            received_at_ms: 0,
                            report: rep,
                        },
                        IngestItem {
                            router_id: other.id,
                            received_at_ms: 0,
                            report: rep,
                        },
                    ]
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        // Every rollup row equals the aggregate of its raw rows, and vice versa.
        let checks = [
            (
                "interface_rollup_5m",
                "interface_samples",
                "router_id, name",
                300_000,
            ),
            (
                "interface_rollup_1h",
                "interface_samples",
                "router_id, name",
                3_600_000,
            ),
            (
                "station_rollup_1h",
                "station_samples",
                "mac, router_id",
                3_600_000,
            ),
            (
                "station_rollup_5m",
                "station_samples",
                "mac, router_id",
                300_000,
            ),
            (
                "wg_rollup_1h",
                "wg_peer_samples",
                "public_key, router_id, iface",
                3_600_000,
            ),
        ];
        for (rollup, raw, keys, len) in checks {
            let from_raw = format!(
                "SELECT {keys}, (ts_ms / {len}) * {len}, coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0), \
                 max(rx_bps), max(tx_bps), count(*) FROM {raw} GROUP BY {keys}, ts_ms / {len}"
            );
            let from_rollup = format!("SELECT {keys}, bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples FROM {rollup}");
            let diff = |a: &str, b: &str| {
                i64_query(&store, &format!("SELECT count(*) FROM ({a} EXCEPT {b})"))
            };
            assert_eq!(
                diff(&from_raw, &from_rollup),
                Some(0),
                "{rollup}: raw rows missing from the rollup"
            );
            assert_eq!(
                diff(&from_rollup, &from_raw),
                Some(0),
                "{rollup}: rollup rows not matching raw rows"
            );
            let rows = count(&store, rollup);
            let total =
                i64_query(&store, &format!("SELECT sum(rx_bytes) FROM {rollup}")).unwrap_or(0);
            assert!(
                rows > 2 && total > 0,
                "{rollup}: {rows} rows, {total} bytes"
            );
        }
        // The version-3 summaries equal the aggregates of their raw rows, as written at ingest
        // and as the migration computes them from the raw rows.
        // (`station_report_totals`, dropped in version 21, is left out of the backfill.)
        let summaries = [
            (
                "SELECT (ts_ms / 3600000) * 3600000, router_id, instance, common_name, real_address, \
                 coalesce(connected_since, -1), coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0), max(ts_ms), \
                 count(*) FROM ovpn_client_samples GROUP BY 1, 2, 3, 4, 5, 6",
                "SELECT bucket_start_ms, router_id, instance, common_name, real_address, connected_since, \
                 rx_bytes, tx_bytes, last_ts_ms, samples FROM ovpn_rollup_1h",
                "ovpn_rollup_1h",
            ),
            (
                "SELECT bucket_start_ms, sum(rx_bytes), sum(tx_bytes), max(max_rx_bps), max(max_tx_bps), \
                 sum(samples), count(*) FROM station_rollup_1h GROUP BY bucket_start_ms",
                "SELECT bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples, stations \
                 FROM station_fleet_1h",
                "station_fleet_1h",
            ),
        ];
        let backfill: String = super::super::schema::MIGRATIONS
            .get(2)
            .and_then(|m| m.find("INSERT INTO station_rollup_5m").map(|i| &m[i..]))
            .unwrap()
            .split_inclusive(';')
            .filter(|st| !st.contains("INSERT INTO station_report_totals"))
            .collect();
        assert_eq!(backfill.matches("INSERT INTO").count(), 3, "{backfill}");
        for pass in ["ingest", "migration"] {
            if pass == "migration" {
                store
                    .connection()
                    .execute_batch(&format!(
                        "DELETE FROM ovpn_rollup_1h; DELETE FROM station_fleet_1h; \
                         DELETE FROM station_rollup_5m; {backfill}"
                    ))
                    .unwrap();
            }
            for (from_raw, from_table, table) in summaries {
                let diff = |a: &str, b: &str| {
                    i64_query(&store, &format!("SELECT count(*) FROM ({a} EXCEPT {b})"))
                };
                assert_eq!(diff(from_raw, from_table), Some(0), "{table} ({pass})");
                assert_eq!(diff(from_table, from_raw), Some(0), "{table} ({pass})");
                let rows = count(&store, table);
                let total =
                    i64_query(&store, &format!("SELECT sum(rx_bytes) FROM {table}")).unwrap_or(0);
                assert!(
                    rows > 2 && total > 0,
                    "{table} ({pass}): {rows} rows, {total} bytes"
                );
            }
        }
        // The reset at seq 60 left one sample per counter without a delta.
        let sql = "SELECT count(*) FROM interface_samples WHERE rx_delta IS NULL";
        assert_eq!(i64_query(&store, sql), Some(2 * 2 * 2));
        assert_eq!(
            i64_query(
                &store,
                "SELECT count(*) FROM interface_rollup_5m WHERE bucket_start_ms % 300000 != 0"
            ),
            Some(0)
        );
    }

    #[test]
    fn current_state_follows_the_newest_report() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        one(&mut store, r.id, &rich_report(BOOT_A, 1, T0, 1000));
        let mut next = rich_report(BOOT_A, 2, T0 + 30_000, 1100);
        next.leases.remove(1);
        next.leases[0].hostname = Some("renamed".into());
        next.sources[0].state = SourceState::Error("iw failed".into());
        next.sources.pop();
        next.wireless[0].channel = Some(44);
        one(&mut store, r.id, &next);
        let c = store.connection();
        let (host, updated): (String, i64) = c
            .query_row("SELECT hostname, updated_ms FROM leases", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((host.as_str(), updated), ("renamed", (T0 + 30_000) as i64));
        assert_eq!(count(&store, "leases"), 1);
        assert_eq!(count(&store, "source_status"), 2);
        let (state, updated): (String, i64) = c
            .query_row(
                "SELECT state, updated_ms FROM source_status WHERE kind = ?1",
                [SourceKind::StationDump.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((state.as_str(), updated), ("error", (T0 + 30_000) as i64));
        let unchanged: i64 = c
            .query_row(
                "SELECT updated_ms FROM source_status WHERE kind = 'openvpn'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unchanged, T0 as i64);
        assert_eq!(
            i64_query(&store, "SELECT channel FROM wireless_interfaces"),
            Some(44)
        );
        // An empty report empties the current state.
        let empty = Report {
            seq: 3,
            boot_id: BOOT_A,
            timestamp_ms: T0 + 60_000,
            ..Default::default()
        };
        one(&mut store, r.id, &empty);
        for t in [
            "leases",
            "source_status",
            "wireless_interfaces",
            "wg_interfaces",
        ] {
            assert_eq!(count(&store, t), 0, "{t}");
        }
    }

    /// `(name, public_key, listen_port, fwmark, peers, updated_ms)` of a router's WireGuard
    /// interfaces, by name.
    type WgIfaceDbRow = (String, Option<String>, Option<i64>, Option<i64>, i64, i64);

    fn wg_ifaces(store: &Store, router_id: i64) -> Vec<WgIfaceDbRow> {
        let mut st = store
            .connection()
            .prepare(
                "SELECT name, public_key, listen_port, fwmark, peers, updated_ms FROM wg_interfaces \
                 WHERE router_id = ?1 ORDER BY name",
            )
            .unwrap();
        let rows = st
            .query_map([router_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// `(iface, public_key, name)` of a router's `wg_peers` rows, in key order.
    fn wg_peer_rows(store: &Store, router_id: i64) -> Vec<(String, String, Option<String>)> {
        let mut st = store
            .connection()
            .prepare(
                "SELECT iface, public_key, name FROM wg_peers WHERE router_id = ?1 \
                 ORDER BY iface, public_key",
            )
            .unwrap();
        let rows = st
            .query_map([router_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// The same rows as the newest samples of the router (what `wg_peers` stands for).
    fn newest_peer_samples(store: &Store, router_id: i64) -> Vec<(String, String, Option<String>)> {
        let mut st = store
            .connection()
            .prepare(
                "SELECT w.iface, w.public_key, w.name FROM routers r JOIN wg_peer_samples w \
                 ON w.router_id = r.id AND w.ts_ms = r.last_report_ms WHERE r.id = ?1 \
                 ORDER BY w.iface, w.public_key",
            )
            .unwrap();
        let rows = st
            .query_map([router_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn wireguard_peers_are_current_state() {
        use routerstats_shared::model::WgPeer;
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let other = enrolled_router(&mut store, "ap");
        let row =
            |k: &str, n: Option<&str>| ("wg0".to_string(), k.to_string(), n.map(String::from));
        let mut first = rich_report(BOOT_A, 1, T0, 1000);
        let mut laptop: WgPeer = first.wireguard[0].peers[0].clone();
        laptop.public_key = "PEERKEY2=".into();
        laptop.name = None;
        first.wireguard[0].peers.push(laptop.clone());
        // The same key twice on one interface: the first occurrence counts, as in the samples.
        let mut dup = laptop.clone();
        dup.name = Some("shadow".into());
        first.wireguard[0].peers.push(dup);
        one(&mut store, r.id, &first);
        one(&mut store, other.id, &rich_report(BOOT_B, 1, T0, 1000));
        let expect = vec![row("PEERKEY1=", Some("phone")), row("PEERKEY2=", None)];
        assert_eq!(wg_peer_rows(&store, r.id), expect);
        assert_eq!(newest_peer_samples(&store, r.id), expect);
        assert_eq!(
            wg_peer_rows(&store, other.id),
            vec![row("PEERKEY1=", Some("phone"))]
        );

        // Renamed and removed peers follow the newest report.
        let mut second = rich_report(BOOT_A, 2, T0 + 30_000, 1100);
        second.wireguard[0].peers[0].name = Some("phone-2".into());
        one(&mut store, r.id, &second);
        let expect = vec![row("PEERKEY1=", Some("phone-2"))];
        assert_eq!(wg_peer_rows(&store, r.id), expect);
        assert_eq!(newest_peer_samples(&store, r.id), expect);

        // A late (older) report changes nothing.
        let mut late = rich_report(BOOT_A, 0, T0 - 30_000, 900);
        late.wireguard[0].peers.push(laptop.clone());
        one(&mut store, r.id, &late);
        assert_eq!(wg_peer_rows(&store, r.id), expect);

        // A cold cache still removes peers that are gone and adds new ones.
        store.cache.clear();
        let mut third = rich_report(BOOT_A, 3, T0 + 60_000, 1200);
        third.wireguard[0].peers = vec![laptop];
        one(&mut store, r.id, &third);
        let expect = vec![row("PEERKEY2=", None)];
        assert_eq!(wg_peer_rows(&store, r.id), expect);
        assert_eq!(newest_peer_samples(&store, r.id), expect);

        // No WireGuard at all empties them; deleting a router deletes its rows.
        let mut fourth = rich_report(BOOT_A, 4, T0 + 90_000, 1300);
        fourth.wireguard.clear();
        one(&mut store, r.id, &fourth);
        assert!(wg_peer_rows(&store, r.id).is_empty());
        store
            .connection()
            .execute("DELETE FROM routers WHERE id = ?1", [other.id])
            .unwrap();
        assert_eq!(count(&store, "wg_peers"), 0);
    }

    #[test]
    fn wireguard_interfaces_are_current_state() {
        use routerstats_shared::model::WgInterface;
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let other = enrolled_router(&mut store, "ap");
        let mut first = rich_report(BOOT_A, 1, T0, 1000);
        first.wireguard.push(WgInterface {
            name: "wg1".into(),
            public_key: None,
            listen_port: None,
            fwmark: Some(0xca6c),
            peers: Vec::new(),
        });
        one(&mut store, r.id, &first);
        one(&mut store, other.id, &rich_report(BOOT_B, 1, T0, 1000));
        let t0 = T0 as i64;
        assert_eq!(
            wg_ifaces(&store, r.id),
            vec![
                (
                    "wg0".into(),
                    Some("SERVERKEY=".into()),
                    Some(51820),
                    None,
                    1,
                    t0
                ),
                ("wg1".into(), None, None, Some(0xca6c), 0, t0),
            ]
        );
        // Nothing of the agent's private key reaches the table: only these columns exist.
        let cols: Vec<String> = {
            let c = store.connection();
            let mut st = c
                .prepare("SELECT name FROM pragma_table_info('wg_interfaces')")
                .unwrap();
            let v = st.query_map([], |r| r.get(0)).unwrap();
            v.collect::<Result<_, _>>().unwrap()
        };
        assert!(!cols.iter().any(|c| c.contains("private")), "{cols:?}");

        // A later report without wg1 removes it; a changed port updates wg0's row and time, an
        // unchanged report keeps it.
        let mut second = rich_report(BOOT_A, 2, T0 + 30_000, 1100);
        second.wireguard[0].listen_port = Some(51821);
        one(&mut store, r.id, &second);
        let t1 = t0 + 30_000;
        assert_eq!(
            wg_ifaces(&store, r.id),
            vec![(
                "wg0".into(),
                Some("SERVERKEY=".into()),
                Some(51821),
                None,
                1,
                t1
            )]
        );
        let mut third = rich_report(BOOT_A, 3, T0 + 60_000, 1200);
        third.wireguard[0].listen_port = Some(51821);
        one(&mut store, r.id, &third);
        assert_eq!(wg_ifaces(&store, r.id)[0].5, t1);
        // A late (older) report changes nothing.
        let mut late = rich_report(BOOT_A, 0, T0 - 30_000, 900);
        late.wireguard.clear();
        one(&mut store, r.id, &late);
        assert_eq!(wg_ifaces(&store, r.id).len(), 1);

        // A cold cache (new Store on the same file) still removes interfaces that are gone.
        store.cache.clear();
        let mut fourth = rich_report(BOOT_A, 4, T0 + 90_000, 1300);
        fourth.wireguard.clear();
        one(&mut store, r.id, &fourth);
        assert!(wg_ifaces(&store, r.id).is_empty());
        assert_eq!(wg_ifaces(&store, other.id).len(), 1);

        // Deleting a router deletes its interfaces (foreign key, ON DELETE CASCADE); a revoked
        // router keeps them until deleted (the API leaves revoked routers out).
        store.revoke_router("ap", 1).unwrap();
        assert_eq!(wg_ifaces(&store, other.id).len(), 1);
        store
            .connection()
            .execute("DELETE FROM routers WHERE id = ?1", [other.id])
            .unwrap();
        assert_eq!(count(&store, "wg_interfaces"), 0);
    }

    #[test]
    fn unknown_router_fails_the_batch_and_writes_nothing() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let rep = rich_report(BOOT_A, 1, T0, 1000);
        let batch = [
            IngestItem {
                router_id: r.id,
                received_at_ms: 0,
                report: &rep,
            },
            IngestItem {
                router_id: 9999,
                received_at_ms: 0,
                report: &rep,
            },
        ];
        assert!(matches!(store.ingest(&batch), Err(StoreError::NotFound(_))));
        assert_eq!(count(&store, "reports"), 0);
        assert!(store.cache.is_empty());
        // The same report is accepted afterwards (the failed batch left no trace).
        assert_eq!(one(&mut store, r.id, &rep), IngestOutcome::Stored);
        assert!(store.ingest(&[]).unwrap().is_empty());
    }

    #[test]
    fn mac_text_matches_display() {
        let mut buf = MacText::default();
        for m in [
            MacAddr([0; 6]),
            MacAddr([0xff; 6]),
            MacAddr([0x0a, 0xb0, 0x12, 0xc3, 0x4d, 0xe5]),
        ] {
            assert_eq!(buf.format(&m), m.to_string());
        }
    }

    #[test]
    fn absurd_values_do_not_fail_ingest() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let mut rep = rich_report(BOOT_A, u64::MAX, u64::MAX, u64::MAX / 2000);
        rep.interfaces[0].rx_bytes = u64::MAX;
        rep.dropped_reports = u64::MAX;
        if let Some(s) = rep.system.as_mut() {
            s.load = [f32::NAN, f32::INFINITY, -1.0];
            s.uptime_s = u64::MAX;
        }
        let peer = rep.wireguard[0].peers[0].clone();
        rep.wireguard[0].peers.push(peer);
        let lease = rep.leases[0].clone();
        rep.leases.push(lease);
        rep.router.hostname = String::new();
        assert_eq!(one(&mut store, r.id, &rep), IngestOutcome::Stored);
        assert_eq!(
            i64_query(&store, "SELECT max(rx_bytes) FROM interface_samples"),
            Some(i64::MAX)
        );
        // Counter jumps of 2^63 in one bucket, across batches: the rollup saturates, stays an integer.
        for (seq, rx) in [(1u64, 0u64), (2, 1 << 63), (3, u64::MAX)] {
            let mut rep = iface_report(seq, T0 + seq * 1000, rx, 0);
            rep.boot_id = [0xcc; 16];
            one(&mut store, r.id, &rep);
        }
        let (kind, sum): (String, i64) = store
            .connection()
            .query_row(
                "SELECT typeof(rx_bytes), rx_bytes FROM interface_rollup_1h WHERE name = 'eth1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), sum), ("integer", i64::MAX));
        // An empty hostname keeps the enrolled one.
        assert_eq!(store.router("gw").unwrap().unwrap().hostname, "OpenWrt");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp, rich_report};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any counters, names, sequence numbers and times are stored (or recognised as
        /// duplicates), never an error, and deltas are never negative.
        #[test]
        fn ingest_accepts_any_values(
            steps in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>(), 0u8..3), 1..6),
            name in any::<String>(),
            mac_byte in any::<u8>(),
        ) {
            let (_dir, mut store) = open_temp();
            let r = enrolled_router(&mut store, "gw");
            let reports: Vec<_> = steps
                .iter()
                .map(|&(seq, ts, c, boot)| {
                    let mut rep = rich_report([boot; 16], seq, ts, c / 1000);
                    rep.interfaces[0].name = name.clone();
                    rep.interfaces[1].rx_bytes = c;
                    rep.stations[0].mac.0[5] = mac_byte;
                    rep.stations[0].interface = name.clone();
                    rep.wireguard[0].peers[0].public_key = name.clone();
                    rep.openvpn[0].clients[0].common_name = name.clone();
                    rep.sources[0].name = name.clone();
                    rep
                })
                .collect();
            let batch: Vec<IngestItem<'_>> =
                reports.iter().map(|report| IngestItem { router_id: r.id, received_at_ms: 1, report }).collect();
            let out = store.ingest(&batch).unwrap();
            prop_assert_eq!(out.len(), reports.len());
            prop_assert!(out.contains(&IngestOutcome::Stored));
            let negative: i64 = store
                .connection()
                .query_row(
                    "SELECT (SELECT count(*) FROM interface_samples WHERE rx_delta < 0 OR tx_delta < 0) + \
                     (SELECT count(*) FROM station_samples WHERE rx_delta < 0 OR tx_delta < 0) + \
                     (SELECT count(*) FROM interface_rollup_1h WHERE rx_bytes < 0 OR tx_bytes < 0)",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            prop_assert_eq!(negative, 0);
        }
    }
}

#[cfg(test)]
mod bench {
    //! Throughput check, run with
    //! `cargo test --profile release-fast -p routerstats-collector store::ingest::bench -- --ignored --nocapture`.

    use super::*;
    use crate::store::testutil::{enrolled_router, mac, open_temp, rich_report};
    use routerstats_shared::model::{NetInterface, Report, Station};

    /// A report with 20 stations and 6 interfaces.
    fn bench_report(seq: u64) -> Report {
        let mut r = rich_report(
            [3; 16],
            seq,
            1_700_000_000_000 + seq * 30_000,
            1000 + seq * 10,
        );
        let template = r.stations.first().cloned().unwrap_or_default();
        r.stations = (0..20u8)
            .map(|i| Station {
                mac: mac(i),
                connected_s: Some(seq * 30),
                ..template.clone()
            })
            .collect();
        for i in 0..4 {
            r.interfaces.push(NetInterface {
                name: format!("lan{i}"),
                rx_bytes: seq * 1000,
                tx_bytes: seq * 2000,
                ..Default::default()
            });
        }
        r
    }

    /// Ingests 20,000 reports from `routers` routers, `per_router` reports of each per batch.
    fn run(routers: usize, per_router: usize) {
        let (_dir, mut store) = open_temp();
        let ids: Vec<i64> = (0..routers)
            .map(|i| enrolled_router(&mut store, &format!("r{i}")).id)
            .collect();
        let rounds = 20_000 / routers as u64;
        let reports: Vec<Report> = (1..=rounds).map(bench_report).collect();
        let start = std::time::Instant::now();
        for chunk in reports.chunks(per_router) {
            let batch: Vec<IngestItem<'_>> = ids
                .iter()
                .flat_map(|&router_id| {
                    chunk.iter().map(move |report| IngestItem {
                        router_id,
                        received_at_ms: 0,
                        report,
                    })
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let total = rounds * routers as u64;
        println!(
            "{routers} routers x {per_router} reports per batch: {total} reports (20 stations, 6 interfaces) in {secs:.2} s = {:.0} reports/s",
            total as f64 / secs
        );
        let n: i64 = store
            .connection()
            .query_row("SELECT count(*) FROM station_samples", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, total as i64 * 20);
    }

    #[test]
    #[ignore = "benchmark; run in an optimized profile"]
    fn ingest_throughput() {
        run(100, 1);
        run(100, 5);
        run(10, 50);
    }
}

/// Rollup sums held across batches ([`Held`]): after crashes (a `Store` dropped without writing
/// them) and a failed batch, the rollup tables end up exactly as when every batch writes them.
#[cfg(test)]
mod held_tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp, rich_report};
    use routerstats_shared::model::{ProbeResult, ProbeRole};

    const T0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;
    const HOLD: Duration = Duration::from_secs(3600);

    /// Every table the rollup sums are written to, and the state kept beside them.
    const TABLES: [&str; 13] = [
        "interface_rollup_5m",
        "interface_rollup_1h",
        "station_rollup_5m",
        "station_rollup_1h",
        "station_fleet_1h",
        "wg_rollup_1h",
        "ovpn_rollup_1h",
        "ovpn_rollup_1d",
        "fleet_totals_1s",
        "station_peak_5m",
        "ovpn_client_names",
        "probe_rollup_5m",
        "probe_rollup_1h",
    ];

    /// Every row of `table`, as text, sorted.
    fn dump(store: &Store, table: &str) -> Vec<String> {
        let mut st = store
            .connection()
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap();
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        rows
    }

    fn assert_same_rollups(held: &Store, reference: &Store, what: &str) {
        for table in TABLES {
            let (a, b) = (dump(held, table), dump(reference, table));
            assert!(!b.is_empty(), "{what}: {table} is empty in the reference");
            assert_eq!(a, b, "{what}: {table}");
        }
    }

    fn probe(received: u32) -> ProbeResult {
        ProbeResult {
            role: ProbeRole::Gateway,
            target: "192.0.2.1".parse().unwrap(),
            name: "wan".into(),
            sent: 4,
            received,
            rtt_min_us: Some(900),
            rtt_avg_us: (received > 0).then_some(1000),
            rtt_max_us: Some(2000),
        }
    }

    /// Batches of 3 routers x 4 reports, every 40 s for about 2.4 hours (crossing hour and
    /// 5-minute buckets), with a counter reset, probes, and one late report of another boot
    /// whose time is before the router's newest.
    fn batches(ids: [i64; 3]) -> Vec<Vec<(i64, Report)>> {
        let mut c = 1000;
        let mut out = Vec::new();
        for chunk in 0..54u64 {
            let mut batch = Vec::new();
            for k in 0..4 {
                let seq = chunk * 4 + k + 1;
                c = if seq == 90 { 7 } else { c + seq * 13 };
                for (i, id) in ids.iter().enumerate() {
                    let ts = T0 + 500 + seq * 40_000 + i as u64 * 7_000;
                    let mut r = rich_report([i as u8 + 1; 16], seq, ts, c + i as u64);
                    r.probes = vec![probe(if seq % 9 == 0 { 0 } else { 4 })];
                    batch.push((*id, r));
                }
            }
            if chunk == 30 {
                batch.push((ids[1], rich_report([9; 16], 1, T0 + 600_000, 5)));
            }
            // Another boot at the time of the router's newest report: in this batch, and in
            // the next one (after that report's sums were written, chunk 9).
            let newest = T0 + 500 + (chunk * 4 + 4) * 40_000 + 14_000;
            if chunk == 8 || chunk == 16 {
                batch.push((ids[2], rich_report([8; 16], chunk, newest, 3)));
            }
            if chunk == 9 || chunk == 21 {
                // First in its batch: right after that router's newest report.
                let prev = T0 + 500 + (chunk * 4) * 40_000 + 14_000;
                batch.insert(0, (ids[2], rich_report([8; 16], chunk, prev, 3)));
            }
            out.push(batch);
        }
        out
    }

    fn ingest(store: &mut Store, batch: &[(i64, Report)]) -> Result<(), StoreError> {
        let items: Vec<IngestItem<'_>> = batch
            .iter()
            .map(|(router_id, report)| IngestItem {
                router_id: *router_id,
                received_at_ms: 0,
                report,
            })
            .collect();
        store.ingest(&items).map(|_| ())
    }

    fn rx_sum(store: &Store) -> i64 {
        store
            .connection()
            .query_row(
                "SELECT coalesce(sum(rx_bytes), 0) FROM interface_rollup_5m",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn held_sums_are_rebuilt_after_crashes_and_failed_batches() {
        let (_dir_ref, mut reference) = open_temp();
        let (dir, mut held) = open_temp();
        let path = held.path().to_path_buf();
        let mut ids = [0; 3];
        for (i, name) in ["gw", "ap1", "ap2"].iter().enumerate() {
            ids[i] = enrolled_router(&mut reference, name).id;
            assert_eq!(enrolled_router(&mut held, name).id, ids[i]);
        }
        held.set_rollup_hold(HOLD);
        let all = batches(ids);
        for b in &all {
            ingest(&mut reference, b).unwrap();
        }

        // Part 1: some batches, a flush in the middle, more batches held, then a crash.
        for (i, b) in all[..12].iter().enumerate() {
            ingest(&mut held, b).unwrap();
            // Written after batches 6 and 9 (batch 10 has a report at the time of one in 9).
            if i == 5 || i == 8 {
                assert!(held.flush_rollups().unwrap());
                assert!(!held.rollups_pending());
            }
        }
        assert!(held.rollups_pending());
        let written = rx_sum(&held);
        assert!(written > 0, "the flush after batch 6 wrote sums");
        drop(held);

        // Part 2: a new store (as after a restart) ingests on: its first batch rebuilds the
        // sums of batches 7-12 from their raw rows. A failed batch (unknown router) in
        // between drops the sums, which the next batch rebuilds again. Then another crash.
        let mut held = Store::open(&path).unwrap();
        held.set_rollup_hold(HOLD);
        for (i, b) in all[12..40].iter().enumerate() {
            ingest(&mut held, b).unwrap();
            if i == 3 {
                let mut bad = b.clone();
                bad.truncate(2);
                for (id, r) in &mut bad {
                    *id = 999;
                    r.seq += 10_000;
                }
                assert!(ingest(&mut held, &bad).is_err());
                assert!(
                    held.rollups_pending(),
                    "the sums are not known after a failed batch"
                );
            }
        }
        assert!(held.rollups_pending());
        drop(held);

        // Part 3: the writer's start: rebuild and write; then the rest, sealed at the end
        // (sealing writes held sums first: they are rebuilt from row tables).
        let mut held = Store::open(&path).unwrap();
        held.set_rollup_hold(HOLD);
        assert!(held.flush_rollups().unwrap(), "unwritten sums were rebuilt");
        assert!(!held.rollups_pending());
        assert!(rx_sum(&held) > written);
        for b in &all[40..] {
            ingest(&mut held, b).unwrap();
        }
        assert!(held.rollups_pending());
        let far = (T0 + 30 * 3_600_000) as i64;
        held.seal_all(far).unwrap();
        reference.seal_all(far).unwrap();
        assert!(!held.rollups_pending(), "sealing wrote the held sums first");
        assert_same_rollups(
            &held,
            &reference,
            "after crashes, a failed batch and sealing",
        );
        drop(dir);
    }

    /// While sums are held, the rollup tables lag the raw rows; a hold of zero writes them with
    /// every batch, and the wall clock's 5-minute bucket or a reader's request writes them.
    #[test]
    fn hold_policy() {
        let (_dir, mut store) = open_temp();
        let id = enrolled_router(&mut store, "gw").id;
        let all = batches([id, id, id]);
        // hold 0: written with the batch.
        ingest(&mut store, &all[0][..3]).unwrap();
        assert!(!store.rollups_pending());
        assert!(rx_sum(&store) >= 0);
        store.set_rollup_hold(HOLD);
        let before = dump(&store, "interface_rollup_5m");
        ingest(&mut store, &all[1][..3]).unwrap();
        assert!(store.rollups_pending());
        assert_eq!(
            dump(&store, "interface_rollup_5m"),
            before,
            "held, not written"
        );
        store.flush_rollups_next_batch();
        ingest(&mut store, &all[2][..3]).unwrap();
        assert!(!store.rollups_pending(), "a reader's request wrote them");
        assert_ne!(dump(&store, "interface_rollup_5m"), before);
        // Nothing held: nothing to write.
        assert!(!store.flush_rollups().unwrap());
    }
}
