//! Recent station traffic: per-minute sums of every station's last three hours, kept in memory
//! as reports are committed, so the fleet-wide monitoring windows
//! (`/api/bandwidth/monitoring/top-users` and `/network-summary`, `minutes` 1 to 180) are
//! answered without reading millions of rows.
//!
//! - Windows: `minutes` ending now start on the minute boundary at or before `now - minutes`
//!   ([`window_start`]): minutes `N - minutes ..= N` (N the current minute). The SQL path of
//!   those routes uses the same start, so both give the same answer.
//! - Layout: one column per minute (a ring of [`SLOTS`]: the current minute and the 181 before
//!   it), each holding every station's cumulative download and upload bytes up to the end of
//!   that minute, modulo 2^48 (12 bytes for both). A window's bytes are the difference of two
//!   columns: ranking 200,000 stations reads two columns, a few MB, whatever the window.
//!   2^48 bytes in a window is 26 GB/s for three hours; samples of 2^36 bytes or more (68 GB in
//!   one report) are absurd: windows holding one are read from the database instead.
//! - Peaks (`max_*_bps`): per station and for the fleet, the suffix maxima (minute, rate), each
//!   rate greater than every rate after it: the peak since minute `s` is the first entry at or
//!   after `s`. Typically a handful of entries per station.
//! - Memory: 182 x 12 bytes of sums per station plus its key and peak entries and the
//!   columns' growth slack ([`RecentStations::heap_bytes`]): measured by apibench at 10,000
//!   routers x 20 stations, 654 MB, 3.3 KB per station (65 MB per 1,000 routers). A station is
//!   dropped once its newest sample is older than any window.
//! - Updated by the database writer after each commit ([`RecentStations::apply`], from
//!   `Store::ingest`), with every stored station sample (the rows the rollups count).
//!   Samples stamped after the current minute (a router clock ahead) count in the current
//!   minute; samples older than the ring are ignored (no window reaches them).
//! - After a start: the collector takes a read snapshot of the database before its writer
//!   commits anything, then rebuilds the index from that snapshot's raw station rows in the
//!   background ([`RecentStations::rebuild`]), newest minutes first, while the writer adds what
//!   it commits. Until the rebuild reached a window's first minute ([`RecentStations::serves`])
//!   the routes read the database as before. Raw rows are taken as complete from the oldest
//!   stored raw station sample on (retention deletes them by time for the whole fleet).

use std::collections::HashMap;
use std::sync::RwLock;

use routerstats_shared::model::MacAddr;
use rusqlite::{params, Connection};

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// The longest window, minutes (the routes' `minutes` bound).
pub const WINDOW_MINUTES_MAX: i64 = 180;
/// Minute columns: the current minute, the 180 a longest window may start at, and the one
/// before (the cumulative sums a window starts from).
pub const SLOTS: usize = WINDOW_MINUTES_MAX as usize + 2;
/// Sums are kept modulo 2^48.
const MASK48: u64 = (1 << 48) - 1;
/// A sample delta at or above this is absurd (see the module doc).
const ABSURD_BYTES: u64 = 1 << 36;
/// Minutes the rebuild reads per step (newest first).
const REBUILD_STEP_MINUTES: i64 = 10;

/// The first millisecond of the window of `minutes` ending at `now_ms`: the minute boundary at
/// or before `now_ms - minutes` minutes.
pub fn window_start(now_ms: i64, minutes: i64) -> i64 {
    minute_of(now_ms.saturating_sub(minutes.saturating_mul(MINUTE_MS))).saturating_mul(MINUTE_MS)
}

fn minute_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS)
}

fn slot(minute: i64) -> usize {
    // rem_euclid is in 0..SLOTS.
    usize::try_from(minute.rem_euclid(SLOTS as i64)).unwrap_or(0)
}

/// One stored station sample, as the rollups count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationSample {
    pub router_id: i64,
    pub mac: MacAddr,
    pub ts_ms: i64,
    /// Bytes to the station (`tx_delta`, 0 when unknown).
    pub download: u64,
    /// Bytes from the station (`rx_delta`).
    pub upload: u64,
    /// Rates (`tx_bps`, `rx_bps`).
    pub download_bps: Option<u64>,
    pub upload_bps: Option<u64>,
}

/// Cumulative (download, upload) bytes of one station up to the end of one minute, mod 2^48.
#[derive(Debug, Clone, Copy, Default)]
struct Cum {
    down_lo: u32,
    up_lo: u32,
    down_hi: u16,
    up_hi: u16,
}

impl Cum {
    fn get(self) -> [u64; 2] {
        [
            u64::from(self.down_hi) << 32 | u64::from(self.down_lo),
            u64::from(self.up_hi) << 32 | u64::from(self.up_lo),
        ]
    }

    fn add(&mut self, v: [u64; 2]) {
        let [d, u] = self.get();
        let (d, u) = (d.wrapping_add(v[0]) & MASK48, u.wrapping_add(v[1]) & MASK48);
        // Truncations on purpose: the low 32 and next 16 bits.
        *self = Cum {
            down_lo: d as u32,
            up_lo: u as u32,
            down_hi: (d >> 32) as u16,
            up_hi: (u >> 32) as u16,
        };
    }
}

/// Bytes between two cumulative values (mod 2^48).
fn diff(end: [u64; 2], start: [u64; 2]) -> [u64; 2] {
    [
        end[0].wrapping_sub(start[0]) & MASK48,
        end[1].wrapping_sub(start[1]) & MASK48,
    ]
}

/// Suffix maxima: (minute, rate) with minutes ascending and rates strictly descending; each
/// rate is the highest of every sample at or after its minute.
#[derive(Debug, Clone, Default)]
struct Peaks(Vec<(i64, u64)>);

impl Peaks {
    fn insert(&mut self, minute: i64, v: u64) {
        let at = self.0.partition_point(|e| e.0 < minute);
        if self.0.get(at).is_some_and(|e| e.1 >= v) {
            return; // a rate as high at or after this minute
        }
        // Entries at or before `minute` with a rate not above `v` are no maxima any more: they
        // are contiguous and end at `at` (or at `at + 1` when one is at `minute` itself).
        let end = if self.0.get(at).is_some_and(|e| e.0 == minute) {
            at + 1
        } else {
            at
        };
        let begin = self.0[..end].partition_point(|e| e.1 > v);
        self.0.splice(begin..end, [(minute, v)]);
    }

    /// The highest rate at or after `minute`.
    fn since(&self, minute: i64) -> Option<u64> {
        let at = self.0.partition_point(|e| e.0 < minute);
        self.0.get(at).map(|e| e.1)
    }

    fn drop_before(&mut self, minute: i64) {
        let at = self.0.partition_point(|e| e.0 < minute);
        self.0.drain(..at);
    }
}

#[derive(Debug, Clone)]
struct Station {
    router_id: i64,
    mac: MacAddr,
    mac_id: u32,
    /// The newest minute with a sample.
    last_minute: i64,
    /// Download, upload.
    peaks: [Peaks; 2],
}

#[derive(Debug, Default)]
struct Inner {
    /// The newest minute held (columns hold `head - SLOTS + 1 ..= head`); None while empty.
    head: Option<i64>,
    /// Column of minute m at `slot(m)`, one entry per station.
    cols: Vec<Vec<Cum>>,
    stations: Vec<Station>,
    by_key: super::FastMap<(i64, MacAddr), u32>,
    /// MAC -> (dense id, stations with it).
    macs: super::FastMap<MacAddr, (u32, u32)>,
    free_mac_ids: Vec<u32>,
    /// MAC of each dense id (stale for free ids).
    mac_list: Vec<MacAddr>,
    fleet_peaks: [Peaks; 2],
    /// Every sample of this minute on is in the index (None: not yet known).
    complete_from: Option<i64>,
    /// The newest minute with an absurd sample.
    absurd: Option<i64>,
}

/// The in-memory index of recent station traffic (see the module doc). Shared by the writer
/// (updates) and the API (reads).
#[derive(Debug, Default)]
pub struct RecentStations {
    inner: RwLock<Inner>,
    /// The rebuild after the start finished.
    rebuilt: std::sync::atomic::AtomicBool,
    /// Stop the rebuild (shutdown).
    cancel: std::sync::atomic::AtomicBool,
}

/// A window's totals of one station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationWindow {
    pub router_id: i64,
    pub mac: MacAddr,
    pub download: i64,
    pub upload: i64,
    pub max_download_bps: Option<i64>,
    pub max_upload_bps: Option<i64>,
}

/// What the top users are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    Total,
    Download,
    Upload,
}

/// The top MACs of a window: each MAC's stations (one per device it was seen on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopMacs {
    /// MACs seen in the window.
    pub total: usize,
    /// Largest first, ties by MAC; stations by router id.
    pub top: Vec<Vec<StationWindow>>,
}

/// A window's totals of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetWindow {
    /// Router id -> (download, upload, stations seen).
    pub per_router: HashMap<i64, (i64, i64, usize)>,
    pub download: i64,
    pub upload: i64,
    /// Distinct MACs seen.
    pub active_users: usize,
    pub max_download_bps: Option<i64>,
    pub max_upload_bps: Option<i64>,
}

/// What a rebuild read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildStats {
    pub rows: u64,
    /// The first minute covered (Unix ms).
    pub complete_from_ms: i64,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Column bounds of a window: (station seen at or after `first`, cumulative columns `before`
/// and `end`), or None when the columns do not reach back that far.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: i64,
    before: usize,
    end: usize,
}

impl Inner {
    /// Moves the ring to `minute` (columns of new minutes start at the previous head's sums)
    /// and drops stations no window can show any more.
    fn advance(&mut self, minute: i64) {
        let Some(head) = self.head else {
            self.head = Some(minute);
            self.cols = vec![vec![Cum::default(); self.stations.len()]; SLOTS];
            return;
        };
        if minute <= head {
            return;
        }
        let steps = usize::try_from(minute - head).unwrap_or(SLOTS).min(SLOTS);
        let from = slot(head);
        for k in 1..=steps {
            let to = slot(head + k as i64);
            if to != from {
                let (src, dst) = if from < to {
                    let (a, b) = self.cols.split_at_mut(to);
                    (&a[from], &mut b[0])
                } else {
                    let (a, b) = self.cols.split_at_mut(from);
                    (&b[0], &mut a[to])
                };
                dst.copy_from_slice(src);
            }
        }
        self.head = Some(minute);
        let oldest = minute - (SLOTS as i64 - 1);
        for p in &mut self.fleet_peaks {
            p.drop_before(oldest);
        }
        let mut i = 0;
        while i < self.stations.len() {
            if self.stations[i].last_minute < oldest + 1 {
                self.remove(i);
            } else {
                for p in &mut self.stations[i].peaks {
                    p.drop_before(oldest);
                }
                i += 1;
            }
        }
    }

    fn remove(&mut self, i: usize) {
        let s = self.stations.swap_remove(i);
        for c in &mut self.cols {
            c.swap_remove(i);
        }
        self.by_key.remove(&(s.router_id, s.mac));
        if let Some(moved) = self.stations.get(i) {
            self.by_key
                .insert((moved.router_id, moved.mac), u32::try_from(i).unwrap_or(0));
        }
        if let Some(e) = self.macs.get_mut(&s.mac) {
            e.1 -= 1;
            if e.1 == 0 {
                self.free_mac_ids.push(e.0);
                self.macs.remove(&s.mac);
            }
        }
    }

    fn station(&mut self, router_id: i64, mac: MacAddr, minute: i64) -> usize {
        if let Some(&i) = self.by_key.get(&(router_id, mac)) {
            return i as usize;
        }
        let e = self.macs.entry(mac).or_insert_with(|| {
            let id = self.free_mac_ids.pop().unwrap_or_else(|| {
                self.mac_list.push(mac);
                u32::try_from(self.mac_list.len() - 1).unwrap_or(u32::MAX)
            });
            (id, 0)
        });
        e.1 += 1;
        let id = e.0;
        if let Some(m) = self.mac_list.get_mut(id as usize) {
            *m = mac;
        }
        let i = self.stations.len();
        self.stations.push(Station {
            router_id,
            mac,
            mac_id: id,
            last_minute: minute,
            peaks: Default::default(),
        });
        for c in &mut self.cols {
            c.push(Cum::default());
        }
        self.by_key
            .insert((router_id, mac), u32::try_from(i).unwrap_or(u32::MAX));
        i
    }

    /// Adds bytes of `minute` to station `i` (every column from that minute on).
    fn add_bytes(&mut self, i: usize, minute: i64, bytes: [u64; 2]) {
        let Some(head) = self.head else { return };
        if bytes == [0, 0] {
            return;
        }
        for m in minute..=head {
            if let Some(c) = self.cols[slot(m)].get_mut(i) {
                c.add(bytes);
            }
        }
    }

    /// Records one sample's presence, rates and absurdity (not its bytes); returns its station
    /// and minute, or None when no window can reach it.
    fn note(&mut self, s: &StationSample) -> Option<(usize, i64)> {
        let absurd = s.download >= ABSURD_BYTES || s.upload >= ABSURD_BYTES;
        self.note_minute(
            (s.router_id, s.mac),
            minute_of(s.ts_ms),
            [s.download_bps, s.upload_bps],
            absurd,
        )
    }

    /// [`Inner::note`] of samples of one station and minute (their highest rates).
    fn note_minute(
        &mut self,
        key: (i64, MacAddr),
        minute: i64,
        rates: [Option<u64>; 2],
        absurd: bool,
    ) -> Option<(usize, i64)> {
        let head = self.head?;
        let minute = minute.min(head);
        if minute <= head - SLOTS as i64 + 1 {
            return None;
        }
        let i = self.station(key.0, key.1, minute);
        let st = &mut self.stations[i];
        st.last_minute = st.last_minute.max(minute);
        for (d, v) in rates.into_iter().enumerate() {
            if let Some(v) = v {
                st.peaks[d].insert(minute, v);
                self.fleet_peaks[d].insert(minute, v);
            }
        }
        if absurd {
            self.absurd = Some(self.absurd.map_or(minute, |a| a.max(minute)));
        }
        Some((i, minute))
    }

    fn span(&self, start_ms: i64, now_ms: i64) -> Option<Span> {
        let head = self.head?;
        let first = minute_of(start_ms);
        let oldest = head - SLOTS as i64 + 1;
        let end = minute_of(now_ms).min(head);
        if first - 1 < oldest || end < oldest {
            return None;
        }
        Some(Span {
            first,
            before: slot((first - 1).min(end)),
            end: slot(end),
        })
    }

    fn serves(&self, start_ms: i64, now_ms: i64) -> bool {
        let first = minute_of(start_ms);
        self.complete_from.is_some_and(|c| first >= c)
            && self.absurd.is_none_or(|a| a < first)
            && self.span(start_ms, now_ms).is_some()
    }

    /// (station, download, upload) of every station seen in the window.
    fn window(&self, sp: Span) -> impl Iterator<Item = (usize, [u64; 2])> + '_ {
        let (before, end) = (&self.cols[sp.before], &self.cols[sp.end]);
        self.stations
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.last_minute >= sp.first)
            .map(move |(i, _)| (i, diff(end[i].get(), before[i].get())))
    }

    fn station_window(&self, i: usize, bytes: [u64; 2], first: i64) -> StationWindow {
        let s = &self.stations[i];
        StationWindow {
            router_id: s.router_id,
            mac: s.mac,
            download: to_i64(bytes[0]),
            upload: to_i64(bytes[1]),
            max_download_bps: s.peaks[0].since(first).map(to_i64),
            max_upload_bps: s.peaks[1].since(first).map(to_i64),
        }
    }
}

impl RecentStations {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds committed samples (the writer, after each commit); `now_ms` is the wall clock.
    pub fn apply(&self, samples: &[StationSample], now_ms: i64) {
        let mut g = self.write();
        g.advance(minute_of(now_ms));
        for s in samples {
            if let Some((i, minute)) = g.note(s) {
                g.add_bytes(i, minute, [s.download, s.upload]);
            }
        }
    }

    /// Whether the window `[start_ms, now_ms]` (start on a minute boundary) is answered here.
    pub fn serves(&self, start_ms: i64, now_ms: i64) -> bool {
        self.read().serves(start_ms, now_ms)
    }

    /// Whether the rebuild after the start finished (see [`Self::rebuild`]).
    pub fn rebuilt(&self) -> bool {
        self.rebuilt.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops a running rebuild after its current step (the collector shuts down).
    pub fn cancel_rebuild(&self) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stations tracked (for the memory figure).
    pub fn stations(&self) -> usize {
        self.read().stations.len()
    }

    /// Bytes the index holds on the heap, from its containers' capacities (hash maps counted
    /// at their bucket count, one control byte per bucket): what apibench prints as the
    /// index's memory, next to the process's resident-set growth.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        fn map_bytes<K, V, S>(m: &HashMap<K, V, S>) -> usize {
            let buckets = if m.capacity() == 0 {
                0
            } else {
                (m.capacity() * 8 / 7).next_power_of_two()
            };
            buckets * (size_of::<(K, V)>() + 1)
        }
        let g = self.read();
        let cols = g.cols.capacity() * size_of::<Vec<Cum>>()
            + g.cols
                .iter()
                .map(|c| c.capacity() * size_of::<Cum>())
                .sum::<usize>();
        let stations = g.stations.capacity() * size_of::<Station>()
            + g.stations
                .iter()
                .flat_map(|st| st.peaks.iter())
                .map(|p| p.0.capacity() * size_of::<(i64, u64)>())
                .sum::<usize>();
        cols + stations
            + map_bytes(&g.by_key)
            + map_bytes(&g.macs)
            + g.free_mac_ids.capacity() * size_of::<u32>()
            + g.mac_list.capacity() * size_of::<MacAddr>()
    }

    /// The fleet's totals over `[start_ms, now_ms]`, or None when not [`Self::serves`].
    pub fn fleet(&self, start_ms: i64, now_ms: i64) -> Option<FleetWindow> {
        let g = self.read();
        if !g.serves(start_ms, now_ms) {
            return None;
        }
        let sp = g.span(start_ms, now_ms)?;
        let mut f = FleetWindow::default();
        let mut seen = vec![false; g.mac_list.len()];
        let (mut down, mut up) = (0u64, 0u64);
        for (i, [d, u]) in g.window(sp) {
            let s = &g.stations[i];
            let r = f.per_router.entry(s.router_id).or_default();
            r.0 = r.0.saturating_add(to_i64(d));
            r.1 = r.1.saturating_add(to_i64(u));
            r.2 += 1;
            down = down.saturating_add(d);
            up = up.saturating_add(u);
            if let Some(x) = seen.get_mut(s.mac_id as usize) {
                f.active_users += usize::from(!*x);
                *x = true;
            }
        }
        f.download = to_i64(down);
        f.upload = to_i64(up);
        f.max_download_bps = g.fleet_peaks[0].since(sp.first).map(to_i64);
        f.max_upload_bps = g.fleet_peaks[1].since(sp.first).map(to_i64);
        Some(f)
    }

    /// The `limit` MACs with the most traffic over `[start_ms, now_ms]` (their bytes summed over
    /// the devices they were seen on), or None when not [`Self::serves`].
    pub fn top(&self, start_ms: i64, now_ms: i64, by: RankBy, limit: usize) -> Option<TopMacs> {
        let g = self.read();
        if !g.serves(start_ms, now_ms) {
            return None;
        }
        let sp = g.span(start_ms, now_ms)?;
        // Per MAC id: (download, upload, seen).
        let mut per = vec![(0u64, 0u64, false); g.mac_list.len()];
        let mut stations = Vec::new();
        for (i, b) in g.window(sp) {
            stations.push((i, b));
            if let Some(p) = per.get_mut(g.stations[i].mac_id as usize) {
                p.0 = p.0.saturating_add(b[0]);
                p.1 = p.1.saturating_add(b[1]);
                p.2 = true;
            }
        }
        let key = |p: &(u64, u64, bool)| match by {
            RankBy::Download => p.0,
            RankBy::Upload => p.1,
            RankBy::Total => p.0.saturating_add(p.1),
        };
        let mut ranked: Vec<(u64, MacAddr, u32)> = per
            .iter()
            .enumerate()
            .filter(|(_, p)| p.2)
            .filter_map(|(id, p)| {
                let id = u32::try_from(id).ok()?;
                Some((key(p), *g.mac_list.get(id as usize)?, id))
            })
            .collect();
        let total = ranked.len();
        let order = |a: &(u64, MacAddr, u32), b: &(u64, MacAddr, u32)| {
            b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0))
        };
        if limit < ranked.len() && limit > 0 {
            ranked.select_nth_unstable_by(limit - 1, order);
            ranked.truncate(limit);
        }
        ranked.truncate(limit);
        ranked.sort_unstable_by(order);
        let pos: HashMap<u32, usize> = ranked.iter().enumerate().map(|(k, r)| (r.2, k)).collect();
        let mut top: Vec<Vec<StationWindow>> = vec![Vec::new(); ranked.len()];
        for (i, b) in stations {
            if let Some(&k) = pos.get(&g.stations[i].mac_id) {
                top[k].push(g.station_window(i, b, sp.first));
            }
        }
        for t in &mut top {
            t.sort_by_key(|s| s.router_id);
        }
        Some(TopMacs { total, top })
    }

    /// Every station seen over `[start_ms, now_ms]` (tests and checks), or None when not
    /// [`Self::serves`].
    pub fn stations_in(&self, start_ms: i64, now_ms: i64) -> Option<Vec<StationWindow>> {
        let g = self.read();
        if !g.serves(start_ms, now_ms) {
            return None;
        }
        let sp = g.span(start_ms, now_ms)?;
        Some(
            g.window(sp)
                .map(|(i, b)| g.station_window(i, b, sp.first))
                .collect(),
        )
    }

    /// Rebuilds the minutes before the writer's first commit from the raw station rows of `c`
    /// (a read transaction opened before that commit, so every row is either in it or applied
    /// by the writer, never both), newest first; each step makes the windows from its first
    /// minute on served. `now_ms` is the wall clock at the start.
    pub fn rebuild(&self, c: &Connection, now_ms: i64) -> rusqlite::Result<RebuildStats> {
        let oldest = {
            let mut g = self.write();
            g.advance(minute_of(now_ms));
            g.head.unwrap_or(minute_of(now_ms)) - SLOTS as i64 + 2
        };
        let floor = raw_floor_minute(c, oldest * MINUTE_MS)?.max(oldest);
        let mut stats = RebuildStats::default();
        let mut hi = i64::MAX;
        let mut lo = minute_of(now_ms) - REBUILD_STEP_MINUTES + 1;
        loop {
            let lo_c = lo.max(floor);
            let lo_ms = lo_c.saturating_mul(MINUTE_MS);
            let hi_ms = hi.saturating_mul(MINUTE_MS);
            let mut st = c.prepare_cached(REBUILD_SQL)?;
            let mut rows = st.query(params![lo_ms, hi_ms])?;
            // Station -> its minutes, ascending (rows come by router and time).
            let mut step: HashMap<(i64, MacAddr), Vec<MinuteAcc>> = HashMap::new();
            while let Some(r) = rows.next()? {
                stats.rows += 1;
                let mac: String = r.get(1)?;
                let Ok(mac) = mac.parse::<MacAddr>() else {
                    continue; // ingest stores formatted MACs only
                };
                let u = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
                let minute = minute_of(r.get(2)?);
                let (up, down) = (u(r.get(3)?).unwrap_or(0), u(r.get(4)?).unwrap_or(0));
                let rates = [u(r.get(6)?), u(r.get(5)?)];
                let v = step.entry((r.get(0)?, mac)).or_default();
                if v.last().is_none_or(|l| l.minute != minute) {
                    v.push(MinuteAcc {
                        minute,
                        ..MinuteAcc::default()
                    });
                }
                if let Some(e) = v.last_mut() {
                    e.bytes = [e.bytes[0].wrapping_add(down), e.bytes[1].wrapping_add(up)];
                    e.rates = [e.rates[0].max(rates[0]), e.rates[1].max(rates[1])];
                    e.absurd |= down >= ABSURD_BYTES || up >= ABSURD_BYTES;
                }
            }
            let mut g = self.write();
            let Some(head) = g.head else { break };
            for (key, mut minutes) in step {
                minutes.sort_by_key(|m| m.minute);
                let mut at = None;
                for m in &minutes {
                    at = g.note_minute(key, m.minute, m.rates, m.absurd).or(at);
                }
                let Some((i, _)) = at else { continue };
                let mut run = [0u64; 2];
                let mut next = minutes.iter().peekable();
                let first = next.peek().map_or(head, |m| m.minute.min(head));
                for m in first..=head {
                    while let Some(e) = next.next_if(|e| e.minute.min(head) <= m) {
                        run = [
                            run[0].wrapping_add(e.bytes[0]),
                            run[1].wrapping_add(e.bytes[1]),
                        ];
                    }
                    if m > head - SLOTS as i64 && run != [0, 0] {
                        if let Some(c) = g.cols[slot(m)].get_mut(i) {
                            c.add(run);
                        }
                    }
                }
            }
            g.complete_from = Some(lo_c);
            drop(g);
            stats.complete_from_ms = lo_c * MINUTE_MS;
            if lo_c <= floor || self.cancel.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            hi = lo_c;
            lo = lo_c - REBUILD_STEP_MINUTES;
        }
        self.rebuilt
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(stats)
    }
}

/// One station's samples of one minute, summed (rebuild).
#[derive(Debug, Clone, Copy, Default)]
struct MinuteAcc {
    minute: i64,
    /// Download, upload.
    bytes: [u64; 2],
    rates: [Option<u64>; 2],
    absurd: bool,
}

/// Raw station rows of every device with `ts_ms` in `[?1, ?2)`.
const REBUILD_SQL: &str = "SELECT s.router_id, s.mac, s.ts_ms, s.rx_delta, s.tx_delta, \
     s.rx_bps, s.tx_bps FROM routers r CROSS JOIN station_samples_all s ON s.router_id = r.id \
     AND s.ts_ms >= ?1 AND s.ts_ms < ?2";

/// The first minute from which raw station rows are complete, if after `from_ms`: the minute
/// after the fleet's oldest raw station sample (rows or sealed blocks); `i64::MIN` when raw
/// rows reach back before `from_ms`.
fn raw_floor_minute(c: &Connection, from_ms: i64) -> rusqlite::Result<i64> {
    let routers: Vec<i64> = c
        .prepare("SELECT id FROM routers")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut rows = c.prepare("SELECT min(ts_ms) FROM station_samples WHERE router_id = ?1")?;
    let mut blocks =
        c.prepare("SELECT min(hour_ms) FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2")?;
    let tbl = super::sealed::SEALED
        .iter()
        .position(|t| t.name == "station_samples")
        .unwrap_or(1) as i64;
    let mut oldest: Option<i64> = None;
    let mut oldest_block: Option<i64> = None;
    for id in routers {
        let r: Option<i64> = rows.query_row([id], |r| r.get(0))?;
        let b: Option<i64> = blocks.query_row(params![id, tbl], |r| r.get(0))?;
        oldest = oldest.min(r).or(oldest).or(r);
        if let Some(b) = b {
            oldest_block = Some(oldest_block.map_or(b, |o| o.min(b)));
        }
    }
    if let Some(b) = oldest_block {
        if b < from_ms - super::sealed::HOUR_MS {
            return Ok(i64::MIN);
        }
        // The oldest block's hour may start before its first sample: read it.
        let first: Option<i64> = c.query_row(
            "SELECT min(ts_ms) FROM station_samples_all WHERE ts_ms >= ?1 AND ts_ms < ?2",
            params![b, b + super::sealed::HOUR_MS],
            |r| r.get(0),
        )?;
        oldest = match (oldest, first) {
            (Some(a), Some(f)) => Some(a.min(f)),
            (a, f) => a.or(f),
        };
    }
    Ok(match oldest {
        Some(t) if t < from_ms => i64::MIN,
        Some(t) => minute_of(t) + 1,
        None => i64::MIN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no `rand` in the collector).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn peaks_are_the_maxima_since_any_minute() {
        let mut g = Lcg(7);
        for _ in 0..200 {
            let mut p = Peaks::default();
            let mut all = Vec::new();
            for _ in 0..g.next(40) {
                // Out of order and repeated minutes, like late reports.
                let (m, v) = (i64::try_from(g.next(30)).unwrap(), g.next(100));
                p.insert(m, v);
                all.push((m, v));
            }
            for from in -1..32 {
                let want = all.iter().filter(|e| e.0 >= from).map(|e| e.1).max();
                assert_eq!(p.since(from), want, "{all:?} since {from}");
            }
            assert!(p.0.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1));
            p.drop_before(10);
            for from in 10..32 {
                let want = all.iter().filter(|e| e.0 >= from).map(|e| e.1).max();
                assert_eq!(p.since(from), want);
            }
        }
    }

    #[test]
    fn sums_keep_48_bits_and_wrap() {
        let mut c = Cum::default();
        c.add([(1 << 48) - 5, 3]);
        let before = c.get();
        assert_eq!(before, [(1 << 48) - 5, 3]);
        c.add([10, 1 << 40]);
        assert_eq!(c.get(), [5, 3 + (1 << 40)]);
        assert_eq!(diff(c.get(), before), [10, 1 << 40]);
    }

    fn sample(router_id: i64, m: u8, ts_ms: i64, down: u64, up: u64, bps: u64) -> StationSample {
        StationSample {
            router_id,
            mac: MacAddr([2, 0, 0, 0, 0, m]),
            ts_ms,
            download: down,
            upload: up,
            download_bps: Some(bps),
            upload_bps: None,
        }
    }

    /// The heap figure counts every station's minute columns: it grows by at least
    /// SLOTS x 12 bytes per station, and by at most twice that (the columns' growth slack)
    /// plus a kilobyte of key, map and peak entries.
    #[test]
    fn heap_bytes_count_the_minute_columns_of_every_station() {
        let r = RecentStations::new();
        let now = 1_767_227_833_500;
        let empty = r.heap_bytes();
        let samples: Vec<StationSample> = (0..200)
            .map(|i| StationSample {
                mac: MacAddr([2, 0, 0, 0, (i / 256) as u8, (i % 256) as u8]),
                ..sample(1 + i64::from(i % 10), 0, now, 1_000, 100, 5_000)
            })
            .collect();
        r.apply(&samples, now);
        assert_eq!(r.stations(), 200);
        let per_station = (r.heap_bytes() - empty) / 200;
        assert!(per_station >= SLOTS * 12, "{per_station} bytes per station");
        assert!(
            per_station <= 2 * SLOTS * 12 + 1024,
            "{per_station} bytes per station"
        );
    }

    #[test]
    fn windows_sum_whole_minutes_and_drop_what_no_window_reaches() {
        let r = RecentStations::new();
        let now = 1_767_227_833_500; // 00:37:13.5
        let head = minute_of(now);
        // One sample per minute for four hours, the newest one now; station 2 left 3 h ago.
        let samples: Vec<StationSample> = (0..240)
            .map(|k| sample(1, 1, now - k * MINUTE_MS, 10 + k as u64, 1, 100 + k as u64))
            .chain([sample(1, 2, now - 200 * MINUTE_MS, 5, 5, 7)])
            .collect();
        r.apply(&samples, now);
        assert!(!r.serves(window_start(now, 30), now), "cold until rebuilt");
        r.write().complete_from = Some(i64::MIN);
        for minutes in [1, 2, 30, 180] {
            let start = window_start(now, minutes);
            assert_eq!(start % MINUTE_MS, 0);
            let got = r.stations_in(start, now).unwrap();
            assert_eq!(got.len(), 1, "station 2 is too old");
            // Minutes head - minutes ..= head hold samples k = 0 ..= minutes.
            let want: u64 = (0..=minutes as u64).map(|k| 10 + k).sum();
            assert_eq!(got[0].download, want as i64, "{minutes}");
            assert_eq!(got[0].upload, minutes + 1);
            assert_eq!(got[0].max_download_bps, Some(100 + minutes));
            assert_eq!(got[0].max_upload_bps, None);
        }
        assert_eq!(r.stations(), 1, "dropped: {:?}", r.read().head);
        // The ring moves with the clock: an hour later the last hour is empty.
        r.apply(&[], now + 60 * MINUTE_MS);
        let later = now + 60 * MINUTE_MS;
        let got = r.stations_in(window_start(later, 30), later).unwrap();
        assert!(got.is_empty(), "{got:?}");
        let got = r.stations_in(window_start(later, 90), later).unwrap();
        assert_eq!(got[0].download, (0..=30).map(|k| 10 + k).sum::<i64>());
        assert_eq!(head + 60, r.read().head.unwrap());
        // A window reaching before the ring is not served.
        assert!(r.stations_in(window_start(later, 200), later).is_none());
    }

    #[test]
    fn an_absurd_sample_sends_its_windows_to_the_database() {
        let r = RecentStations::new();
        let now = 1_767_227_833_500;
        r.apply(&[sample(1, 1, now - 10 * MINUTE_MS, 1 << 40, 0, 1)], now);
        r.write().complete_from = Some(i64::MIN);
        assert!(!r.serves(window_start(now, 30), now));
        assert!(r.serves(window_start(now, 5), now));
    }

    #[test]
    fn top_ranks_macs_over_their_devices_ties_by_mac() {
        let r = RecentStations::new();
        let now = 1_767_227_833_500;
        r.apply(
            &[
                sample(1, 1, now, 100, 0, 1),
                sample(2, 1, now, 50, 0, 9), // the same MAC on another device
                sample(1, 2, now, 150, 10, 2),
                sample(2, 3, now, 150, 10, 3),
                sample(3, 4, now, 0, 0, 4),
            ],
            now,
        );
        r.write().complete_from = Some(i64::MIN);
        let start = window_start(now, 5);
        let t = r.top(start, now, RankBy::Download, 3).unwrap();
        assert_eq!(t.total, 4);
        let macs: Vec<u8> = t.top.iter().map(|s| s[0].mac.0[5]).collect();
        assert_eq!(macs, [1, 2, 3]);
        assert_eq!(t.top[0].len(), 2);
        assert_eq!(t.top[0][1].max_download_bps, Some(9));
        let t = r.top(start, now, RankBy::Upload, 100).unwrap();
        let macs: Vec<u8> = t.top.iter().map(|s| s[0].mac.0[5]).collect();
        assert_eq!(macs, [2, 3, 1, 4]);
        let f = r.fleet(start, now).unwrap();
        assert_eq!((f.download, f.upload, f.active_users), (450, 20, 4));
        assert_eq!(f.per_router[&2], (200, 10, 2));
        assert_eq!(f.max_download_bps, Some(9));
    }
}
