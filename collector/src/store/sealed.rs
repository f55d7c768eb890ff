//! Sealed raw samples: closed hours of the raw sample tables moved into compressed blocks
//! (`raw_blocks`, one per router, table and hour; codec in [`super::blocks`]), and the
//! read-only virtual tables `<table>_all` that serve rows and blocks as one table.
//!
//! - Hot window: rows of the current hour and of the [`HOT_CLOSED_HOURS`] closed hours before
//!   it stay rows, and so does every hour at or after the hour of a router's newest report
//!   (`routers.last_report_ms`): "newest report" reads, the ingest's previous-sample lookups and
//!   fleet-wide windows of up to an hour read the row tables unchanged.
//! - Sealing ([`Store::seal_step`]): the database writer seals older hours after its commits,
//!   a bounded number of (router, hour) groups per step, each in its own transaction that writes
//!   the blocks, their keys in `raw_block_keys` and deletes the sealed rows. Rows that arrive
//!   later for a sealed hour (a spool replayed after an outage) are merged into the hour's
//!   block the next time that hour is found (the work list is rebuilt once per hour).
//!   Databases from before migration 9 are sealed the same way, a few groups per step.
//! - Reading: `<table>_all` (an eponymous virtual table, registered on every connection by
//!   [`register`]) has the columns of `<table>` and yields its rows plus the decoded rows of its
//!   blocks, in primary-key order. It uses `router_id =`, the key column `=` (MAC, public key,
//!   common name: through `raw_block_keys`) and `ts_ms` ranges to pick the blocks; without a
//!   router or key it decodes every block of the table in the time range. `station_samples`
//!   has no index by MAC (schema 20): the ingest lists the (hour, MAC, router) of its rows in
//!   `raw_block_keys` too (bulk writers run [`super::schema::station_keys_backfill`]), and a lookup by MAC
//!   alone reads the rows of the listed routers' hours by primary key
//!   ([`SealedTable::hot_keys`]). A block that does not
//!   decode is logged and skipped (the other blocks are served).
//! - Storage of a block (schema 18, [`write_block`]): a block larger than a leaf page's share
//!   keeps its head in `raw_blocks.data`, cut where the head's overflow pages are full, and its
//!   end in `raw_block_tails` (records that stay in leaf pages); readers append the tails in
//!   `part` order ([`read_block`]). Blocks stored before, and small ones, have no tails.
//! - Retention deletes a block (and its tails) once all of its hour is older than `raw_days`.
//! - `reports` (schema 11) is a sealed table like the samples (`reports_all`); the
//!   `(router, boot_id, seq)` key only sees the rows, so the ingest looks a report of a sealed
//!   hour up in the (boot_id, seq) runs kept beside that hour's block (`report_seq_runs`,
//!   schema 16: no decode, and a corrupt block still answers; [`sealed_report_exists`]). It
//!   does so only for a report made before the end of the router's newest sealed `reports`
//!   hour, which the writer keeps per router ([`sealed_reports_before`] when it first meets
//!   the router, raised as it seals): a report of the hot window costs no lookup there.
//! - `station_rollup_5m` (schema 11) is sealed with each (router, hour) group into a block of its
//!   own ([`STATION_5M_TBL`]), read fleet-wide by [`for_each_sealed_station_5m`].

use std::collections::{BTreeSet, VecDeque};
use std::ffi::c_int;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::vtab::{
    eponymous_only_module, Context, Filters, IndexConstraintOp, IndexInfo, VTab, VTabConnection,
    VTabCursor,
};
use rusqlite::{ffi, params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::blocks::{cmp_value, BlockColumns, BlockError};
use super::{Store, StoreError};

/// One hour in milliseconds: the span of a block.
pub const HOUR_MS: i64 = 3_600_000;

/// Closed hours kept as rows before the current one (besides a router's newest hour).
pub const HOT_CLOSED_HOURS: i64 = 2;

/// (router, hour) groups sealed per [`Store::seal_step`] at most.
pub const SEAL_GROUPS_PER_STEP: usize = 4;

/// Time budget of one [`Store::seal_step`] (it stops after the group that passes it).
const SEAL_STEP_BUDGET: Duration = Duration::from_millis(20);

/// Routers whose hours are listed per step while the work list is being rebuilt.
const SCAN_ROUTERS_PER_STEP: usize = 64;

/// A raw table stored in blocks.
#[derive(Debug, Clone, Copy)]
pub struct SealedTable {
    /// The row table (the virtual table is `<name>_all`).
    pub name: &'static str,
    /// Columns naming one series of a router (its primary key after `ts_ms`).
    pub series: &'static [&'static str],
    /// The column looked up across routers (`raw_block_keys.key`), if any.
    pub key: Option<&'static str>,
    /// The columns that make a row unique within a router, when not `ts_ms` and the series
    /// columns (`reports`: `boot_id`, `seq`): late rows merged into a block are dropped when
    /// the block has a row with the same values (the first stored wins).
    pub unique: &'static [&'static str],
    /// Whether `raw_block_keys` also lists the keys of the row table's hours (schema 20:
    /// written by the ingest for `station_samples`, which has no index by key), so a lookup by
    /// key finds its rows through the (router, hour) pairs there.
    pub hot_keys: bool,
}

/// The sealed tables; `raw_blocks.tbl` is the index in this list (never reorder it).
pub const SEALED: &[SealedTable] = &[
    SealedTable {
        name: "interface_samples",
        series: &["name"],
        key: None,
        unique: &[],
        hot_keys: false,
    },
    SealedTable {
        name: "station_samples",
        series: &["iface", "mac"],
        key: Some("mac"),
        unique: &[],
        hot_keys: true,
    },
    SealedTable {
        name: "station_link_samples",
        series: &["iface", "mac", "link_id"],
        key: Some("mac"),
        unique: &[],
        hot_keys: false,
    },
    SealedTable {
        name: "wg_peer_samples",
        series: &["iface", "public_key"],
        key: Some("public_key"),
        unique: &[],
        hot_keys: false,
    },
    SealedTable {
        name: "ovpn_client_samples",
        series: &["instance", "common_name", "real_address"],
        key: Some("common_name"),
        unique: &[],
        hot_keys: false,
    },
    SealedTable {
        name: "probe_samples",
        series: &["target"],
        key: None,
        unique: &[],
        hot_keys: false,
    },
    // One row per report (the report's system figures and counts): one series per router, in
    // time order; a report is unique by its agent boot and sequence number.
    SealedTable {
        name: "reports",
        series: &[],
        key: None,
        unique: &["boot_id", "seq"],
        hot_keys: false,
    },
];

/// Lists (hour ?1, table ?2, key ?3, router ?4) in `raw_block_keys` unless it is there: by
/// sealing for a block's keys, and by the ingest for the station rows of a hot hour.
pub(crate) const INSERT_KEY_SQL: &str =
    "INSERT OR IGNORE INTO raw_block_keys (hour_ms, tbl, key, router_id) VALUES (?1, ?2, ?3, ?4)";

/// `raw_block_keys.tbl` of `station_samples` (its index in [`SEALED`]).
pub const STATION_TBL: i64 = 1;

/// `raw_blocks.tbl` of `reports` (its index in [`SEALED`]).
pub const REPORTS_TBL: i64 = 6;

/// `raw_blocks.tbl` of the blocks of `station_rollup_5m` (not a row table of [`SEALED`]: its
/// key leads with the bucket, and it is read fleet-wide only, by
/// [`for_each_sealed_station_5m`]). One block per router and hour, sealed with the hour's
/// samples; `raw_block_keys` has one entry (`key` '') per block, so a fleet read of an hour
/// finds its routers in one range.
pub const STATION_5M_TBL: i64 = 7;

/// The columns of a `station_rollup_5m` block, in order (the table's, without `router_id`).
const STATION_5M_COLUMNS: [&str; 7] = [
    "mac",
    "bucket_start_ms",
    "rx_bytes",
    "tx_bytes",
    "max_rx_bps",
    "max_tx_bps",
    "samples",
];

/// Five-minute buckets of an hour.
const BUCKETS_PER_HOUR: i64 = HOUR_MS / super::ingest::BUCKET_5M_MS;

fn station_5m_columns() -> Result<BlockColumns, StoreError> {
    BlockColumns::with_time(
        STATION_5M_COLUMNS.map(String::from).to_vec(),
        "bucket_start_ms",
        &["mac"],
    )
    .ok_or_else(|| StoreError::InvalidInput("station_rollup_5m block columns".into()))
}

/// The `IN (...)` list of an hour's bucket starts, as parameters `?2` to `?13`.
fn bucket_params() -> String {
    (0..BUCKETS_PER_HOUR)
        .map(|i| format!("?{}", i + 2))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One (MAC, 5-minute bucket) of a sealed `station_rollup_5m` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station5m {
    pub mac: String,
    pub bucket_start_ms: i64,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    pub max_rx_bps: Option<i64>,
    pub max_tx_bps: Option<i64>,
    pub samples: i64,
}

impl Station5m {
    fn from_row(r: &[Value]) -> Option<Station5m> {
        let int = |v: &Value| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        };
        Some(Station5m {
            mac: match r.first()? {
                Value::Text(t) => t.clone(),
                _ => return None,
            },
            bucket_start_ms: int(r.get(1)?)?,
            rx_bytes: int(r.get(2)?)?,
            tx_bytes: int(r.get(3)?)?,
            max_rx_bps: int(r.get(4)?),
            max_tx_bps: int(r.get(5)?),
            samples: int(r.get(6)?)?,
        })
    }

    fn row(&self) -> Vec<Value> {
        let opt = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
        vec![
            Value::Text(self.mac.clone()),
            Value::Integer(self.bucket_start_ms),
            Value::Integer(self.rx_bytes),
            Value::Integer(self.tx_bytes),
            opt(self.max_rx_bps),
            opt(self.max_tx_bps),
            Value::Integer(self.samples),
        ]
    }

    /// Adds `o` (the same MAC and bucket) as the API sums buckets: sums, and the larger peak.
    fn add(&mut self, o: &Station5m) {
        self.rx_bytes = self.rx_bytes.saturating_add(o.rx_bytes);
        self.tx_bytes = self.tx_bytes.saturating_add(o.tx_bytes);
        self.max_rx_bps = self.max_rx_bps.max(o.max_rx_bps);
        self.max_tx_bps = self.max_tx_bps.max(o.max_tx_bps);
        self.samples = self.samples.saturating_add(o.samples);
    }
}

/// Seals `router`'s `station_rollup_5m` rows of `hour` into its block (merged with the rows of
/// an existing block: late rows of a sealed hour are added to the bucket's sums), in the
/// caller's transaction. Returns the rows moved; `None` when the existing block does not
/// decode (the rows then stay rows, and the error is logged).
fn seal_station_5m(
    tx: &Connection,
    cols: &BlockColumns,
    router: i64,
    hour: i64,
) -> Result<Option<u64>, StoreError> {
    let mut args = vec![router];
    args.extend((0..BUCKETS_PER_HOUR).map(|i| hour + i * super::ingest::BUCKET_5M_MS));
    let sql = format!(
        "SELECT {} FROM station_rollup_5m WHERE router_id = ?1 AND bucket_start_ms IN ({})",
        STATION_5M_COLUMNS.join(", "),
        bucket_params()
    );
    let new: Vec<Station5m> = {
        let mut q = tx.prepare_cached(&sql)?;
        let rows = q.query_map(params_from_iter(args.iter()), |r| {
            (0..STATION_5M_COLUMNS.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            out.push(Station5m::from_row(&r).ok_or_else(|| {
                StoreError::InvalidInput(format!("station_rollup_5m row of router {router}: {r:?}"))
            })?);
        }
        out
    };
    if new.is_empty() {
        return Ok(Some(0));
    }
    let moved = new.len() as u64;
    let old = read_block(tx, router, STATION_5M_TBL, hour)?;
    let mut all: Vec<Station5m> = match old.map(|b| cols.decode(&b)) {
        None => Vec::new(),
        Some(Ok(rows)) => rows.iter().filter_map(|r| Station5m::from_row(r)).collect(),
        Some(Err(e)) => {
            tracing::error!(router_id = router, table = "station_rollup_5m", hour_ms = hour, error = %e, "sealed block does not decode; its hour's new rows stay rows");
            return Ok(None);
        }
    };
    let mut at: std::collections::HashMap<(String, i64), usize> = all
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.mac.clone(), r.bucket_start_ms), i))
        .collect();
    for r in new {
        match at.get(&(r.mac.clone(), r.bucket_start_ms)) {
            Some(&i) => all[i].add(&r),
            None => {
                at.insert((r.mac.clone(), r.bucket_start_ms), all.len());
                all.push(r);
            }
        }
    }
    let count = all.len() as i64;
    let blob = cols
        .encode(all.iter().map(Station5m::row).collect())
        .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    write_block(tx, router, STATION_5M_TBL, hour, count, &blob)?;
    tx.prepare_cached("INSERT OR IGNORE INTO raw_block_keys (hour_ms, tbl, key, router_id) VALUES (?1, ?2, '', ?3)")?
        .execute(params![hour, STATION_5M_TBL, router])?;
    let del = format!(
        "DELETE FROM station_rollup_5m WHERE router_id = ?1 AND bucket_start_ms IN ({})",
        bucket_params()
    );
    tx.prepare_cached(&del)?
        .execute(params_from_iter(args.iter()))?;
    Ok(Some(moved))
}

/// Calls `f` with every sealed `station_rollup_5m` row of a bucket in `[lo, hi]` and its
/// router, of every router (the hours' routers from `raw_block_keys`, then one block each) or
/// of `router` only (its blocks by primary key). A block that does not decode is logged and
/// skipped. Rows of the same (router, MAC, bucket) may also be rows of `station_rollup_5m` (a
/// late report of a sealed hour, not merged yet): readers add them up.
pub fn for_each_sealed_station_5m(
    conn: &Connection,
    lo: i64,
    hi: i64,
    router: Option<i64>,
    mut f: impl FnMut(i64, Station5m),
) -> rusqlite::Result<()> {
    if lo > hi {
        return Ok(());
    }
    let cols = match station_5m_columns() {
        Ok(c) => c,
        Err(e) => return Err(rusqlite::Error::ModuleError(e.to_string())),
    };
    let first_hour = floor_hour(lo.max(i64::MIN + HOUR_MS));
    let at: Vec<(i64, i64)> = match router {
        None => conn
            .prepare_cached(
                "SELECT hour_ms, router_id FROM raw_block_keys WHERE hour_ms BETWEEN ?1 AND ?2 AND tbl = ?3 AND key = ''",
            )?
            .query_map(params![first_hour, hi, STATION_5M_TBL], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?,
        Some(id) => conn
            .prepare_cached(
                "SELECT hour_ms, router_id FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms BETWEEN ?3 AND ?4",
            )?
            .query_map(params![id, STATION_5M_TBL, first_hour, hi], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?,
    };
    for (hour, router) in at {
        let Some(data) = read_block(conn, router, STATION_5M_TBL, hour)? else {
            continue;
        };
        match cols.decode(&data) {
            Ok(rows) => {
                for r in rows.iter().filter_map(|r| Station5m::from_row(r)) {
                    if (lo..=hi).contains(&r.bucket_start_ms) {
                        f(router, r);
                    }
                }
            }
            Err(e) => log_corrupt("station_rollup_5m", router, hour, &e),
        }
    }
    Ok(())
}

pub(crate) fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Adds the router ids present in `table` (whose key starts with `router_id`) to `ids`, by
/// skipping along the key: a few seeks per router.
pub(crate) fn router_ids_in(
    conn: &Connection,
    table: &str,
    ids: &mut BTreeSet<i64>,
) -> rusqlite::Result<()> {
    let sql = format!(
        "WITH RECURSIVE r(id) AS (SELECT min(router_id) FROM {table} \
         UNION ALL SELECT (SELECT min(router_id) FROM {table} WHERE router_id > r.id) FROM r \
         WHERE r.id IS NOT NULL) SELECT id FROM r WHERE id IS NOT NULL"
    );
    let mut st = conn.prepare_cached(&sql)?;
    for id in st.query_map([], |r| r.get::<_, i64>(0))? {
        ids.insert(id?);
    }
    Ok(())
}

/// The source a read of one router's samples of `table` in `[lo_ms, hi_ms]` needs: the row
/// table itself when that router has no block of the table in any hour the range touches (the
/// usual case for a window inside the hot window), so the read is a plain SQL range of the
/// primary key (SQLite's own `min()`, sums and grouping, nothing materialized), else the
/// virtual table `<table>_all` (rows and blocks). One indexed probe of `raw_blocks`.
pub fn router_source(
    conn: &Connection,
    table: &'static str,
    router_id: i64,
    lo_ms: i64,
    hi_ms: i64,
) -> rusqlite::Result<std::borrow::Cow<'static, str>> {
    let Some(tbl) = SEALED.iter().position(|t| t.name == table) else {
        return Ok(table.into());
    };
    let sealed: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 \
             AND hour_ms BETWEEN ?3 AND ?4)",
        )?
        .query_row(
            params![
                router_id,
                tbl as i64,
                floor_hour(lo_ms.max(i64::MIN + HOUR_MS)),
                hi_ms
            ],
            |r| r.get(0),
        )?;
    Ok(if sealed {
        format!("{table}_all").into()
    } else {
        table.into()
    })
}

/// A read transaction for a [`router_source`] check and the read it picks (so both see the
/// same sealed state), unless the caller already holds one (then None: theirs serves).
pub fn read_snapshot(conn: &Connection) -> rusqlite::Result<Option<rusqlite::Transaction<'_>>> {
    if conn.is_autocommit() {
        conn.unchecked_transaction().map(Some)
    } else {
        Ok(None)
    }
}

/// The first hour of the hot window at `now_ms`: hours before it may be sealed.
pub fn hot_start(now_ms: i64) -> i64 {
    floor_hour(now_ms) - HOT_CLOSED_HOURS * HOUR_MS
}

/// A table's columns (in order) and declared types.
fn table_info(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
    let rows = st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The block columns of a sealed table: its columns without `router_id`.
fn block_columns(
    conn: &Connection,
    t: &SealedTable,
) -> Result<(Vec<(String, String)>, BlockColumns), StoreError> {
    let info = table_info(conn, t.name)?;
    let names: Vec<String> = info
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "router_id")
        .collect();
    let cols = BlockColumns::new(names, t.series)
        .ok_or_else(|| StoreError::InvalidInput(format!("{} lacks its key columns", t.name)))?;
    Ok((info, cols))
}

/// Bytes of a record of `raw_blocks` or `raw_block_tails` besides its data (header and key
/// integers), an upper estimate: the split below leaves room for a misestimate either way.
const BLOCK_RECORD_OVERHEAD: usize = 24;

/// How many bytes the head of a split block leaves beyond whole overflow pages: SQLite keeps
/// such a small rest in the leaf cell instead of starting another overflow page.
const HEAD_LEAF_REST: usize = 100;

/// Bytes of a block kept in `raw_blocks.data`; the rest goes to `raw_block_tails`. Both tables
/// are `WITHOUT ROWID` b-trees: a record of up to `max_local` bytes stays in its leaf page,
/// a larger one keeps `min_local` (plus a rest below `max_local - min_local`) there and the
/// remainder in whole overflow pages, the last one partly empty. A block of about 2 KB thus took
/// 4.6 KB of pages, one of 34 KB about 2 KB of slack. The head is cut where its overflow pages
/// are full; the tail (up to a page) goes in records small enough to stay in leaf pages.
fn head_len(len: usize, page_size: usize) -> usize {
    let usable = page_size.max(512);
    let max_local = (usable - 12) * 64 / 255 - 23;
    let min_local = (usable - 12) * 32 / 255 - 23;
    if len + BLOCK_RECORD_OVERHEAD <= max_local {
        return len;
    }
    let over = usable - 4;
    let base = min_local + HEAD_LEAF_REST - BLOCK_RECORD_OVERHEAD;
    let pages = len.saturating_sub(base) / over;
    (base + pages * over).min(len)
}

/// Bytes of one `raw_block_tails` record's data (it stays in its leaf page).
fn tail_chunk(page_size: usize) -> usize {
    let usable = page_size.max(512);
    (usable - 12) * 64 / 255 - 23 - 2 * BLOCK_RECORD_OVERHEAD
}

fn page_size(conn: &Connection) -> rusqlite::Result<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT page_size FROM pragma_page_size()")?
        .query_row([], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(4096))
}

/// Stores block `blob` of (`router`, `tbl`, `hour`) holding `rows` rows, replacing the one
/// there: its head in `raw_blocks`, the rest (if any) in `raw_block_tails` (see [`head_len`]).
fn write_block(
    conn: &Connection,
    router: i64,
    tbl: i64,
    hour: i64,
    rows: i64,
    blob: &[u8],
) -> rusqlite::Result<()> {
    let ps = page_size(conn)?;
    write_block_parts(
        conn,
        (router, tbl, hour),
        rows,
        blob,
        head_len(blob.len(), ps),
        tail_chunk(ps),
    )
}

/// [`write_block`] with the head's length and the tail records' size given.
fn write_block_parts(
    conn: &Connection,
    (router, tbl, hour): (i64, i64, i64),
    rows: i64,
    blob: &[u8],
    head: usize,
    chunk: usize,
) -> rusqlite::Result<()> {
    let (head, tail) = blob.split_at(head.min(blob.len()));
    conn.prepare_cached("INSERT OR REPLACE INTO raw_blocks (router_id, tbl, hour_ms, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![router, tbl, hour, rows, head])?;
    conn.prepare_cached(
        "DELETE FROM raw_block_tails WHERE router_id = ?1 AND tbl = ?2 AND hour_ms = ?3",
    )?
    .execute(params![router, tbl, hour])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO raw_block_tails (router_id, tbl, hour_ms, part, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (part, chunk) in tail.chunks(chunk.max(1)).enumerate() {
        ins.execute(params![router, tbl, hour, part as i64, chunk])?;
    }
    Ok(())
}

/// Appends the tail of block (`router`, `tbl`, `hour`) to its head `data` (nothing for a
/// block stored whole).
fn append_tail(
    conn: &Connection,
    router: i64,
    tbl: i64,
    hour: i64,
    data: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT data FROM raw_block_tails WHERE router_id = ?1 AND tbl = ?2 AND hour_ms = ?3 ORDER BY part",
    )?;
    let mut rows = st.query(params![router, tbl, hour])?;
    while let Some(r) = rows.next()? {
        data.extend_from_slice(&r.get::<_, Vec<u8>>(0)?);
    }
    Ok(())
}

/// The whole block (`router`, `tbl`, `hour`), if there is one.
fn read_block(
    conn: &Connection,
    router: i64,
    tbl: i64,
    hour: i64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    let head: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT data FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms = ?3",
        )?
        .query_row(params![router, tbl, hour], |r| r.get(0))
        .optional()?;
    let Some(mut data) = head else {
        return Ok(None);
    };
    append_tail(conn, router, tbl, hour, &mut data)?;
    Ok(Some(data))
}

/// What one [`Store::seal_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealStats {
    /// (router, hour) groups sealed.
    pub groups: u64,
    /// Rows of the [`SEALED`] tables moved into blocks (not counting `station_rollup_5m`).
    pub rows: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Groups left as rows because their existing block does not decode.
    pub skipped: u64,
    /// Whether more work is waiting (call again soon).
    pub more: bool,
}

/// The writer's sealing work list (kept in the [`Store`]).
#[derive(Debug, Default)]
pub struct SealState {
    /// The hot window start the work list was built for.
    built_for: Option<i64>,
    /// Routers still to be listed: (id, seal hours before this).
    scan: VecDeque<(i64, i64)>,
    /// (router, hour) groups to seal.
    pending: VecDeque<(i64, i64)>,
    cols: Option<Vec<BlockColumns>>,
}

impl Store {
    /// Seals up to [`SEAL_GROUPS_PER_STEP`] closed (router, hour) groups older than the hot
    /// window at `now_ms`, each in its own transaction. Cheap when there is nothing to do.
    pub fn seal_step(&mut self, now_ms: i64) -> Result<SealStats, StoreError> {
        // Held rollup sums are rebuilt from row tables: write them before their rows move.
        self.flush_rollups_before(hot_start(now_ms))?;
        self.seal_groups(
            hot_start(now_ms),
            SEAL_GROUPS_PER_STEP,
            Some(SEAL_STEP_BUDGET),
        )
    }

    /// Seals everything sealable at `now_ms` (tests, benchmarks, a one-off after an upgrade).
    pub fn seal_all(&mut self, now_ms: i64) -> Result<SealStats, StoreError> {
        self.seal_all_before(hot_start(now_ms))
    }

    /// Seals every hour that starts before `before_ms` (rounded down to an hour), except each
    /// router's newest hour (tests and benchmarks: a hot window of any size).
    pub fn seal_all_before(&mut self, before_ms: i64) -> Result<SealStats, StoreError> {
        self.flush_rollups_before(before_ms)?;
        let mut total = SealStats::default();
        self.seal = SealState::default();
        loop {
            let s = self.seal_groups(floor_hour(before_ms), usize::MAX, None)?;
            total.groups += s.groups;
            total.rows += s.rows;
            total.blocks += s.blocks;
            total.skipped += s.skipped;
            if !s.more {
                return Ok(total);
            }
        }
    }

    /// Seals at most `max` (router, hour) groups of the hours that start before `before_ms`
    /// (rounded down to an hour), except each router's newest hour: part of the work, as the
    /// writer leaves it between two steps (tests and benchmarks of a half-done upgrade).
    pub fn seal_some_before(
        &mut self,
        before_ms: i64,
        max: usize,
    ) -> Result<SealStats, StoreError> {
        self.flush_rollups_before(before_ms)?;
        self.seal_groups(floor_hour(before_ms), max, None)
    }

    fn seal_groups(
        &mut self,
        hot_start: i64,
        max: usize,
        budget: Option<Duration>,
    ) -> Result<SealStats, StoreError> {
        let started = Instant::now();
        let st = &mut self.seal;
        if st.cols.is_none() {
            let cols = SEALED
                .iter()
                .map(|t| block_columns(&self.conn, t).map(|c| c.1))
                .collect::<Result<Vec<_>, _>>()?;
            st.cols = Some(cols);
        }
        if st.pending.is_empty() && st.scan.is_empty() && st.built_for != Some(hot_start) {
            let mut q = self.conn.prepare_cached("SELECT id, last_report_ms FROM routers WHERE last_report_ms IS NOT NULL ORDER BY id")?;
            let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            for r in rows {
                let (id, last) = r?;
                st.scan.push_back((id, hot_start.min(floor_hour(last))));
            }
            st.built_for = Some(hot_start);
        }
        let mut scanned = 0;
        while st.pending.len() < max.min(64) && scanned < SCAN_ROUTERS_PER_STEP {
            let Some((id, before)) = st.scan.pop_front() else {
                break;
            };
            scanned += 1;
            let mut hours = BTreeSet::new();
            for t in SEALED {
                let sql = format!(
                    "SELECT min(ts_ms) FROM {} WHERE router_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
                    t.name
                );
                let mut q = self.conn.prepare_cached(&sql)?;
                let mut from = i64::MIN;
                while let Some(ts) =
                    q.query_row(params![id, from, before], |r| r.get::<_, Option<i64>>(0))?
                {
                    let h = floor_hour(ts);
                    hours.insert(h);
                    from = h + HOUR_MS;
                }
            }
            st.pending.extend(hours.into_iter().map(|h| (id, h)));
        }
        let mut stats = SealStats::default();
        let station_5m = station_5m_columns()?;
        while (stats.groups + stats.skipped) < max as u64 {
            let Some((id, hour)) = self.seal.pending.pop_front() else {
                break;
            };
            let cols = self
                .seal
                .cols
                .as_ref()
                .map(|c| c.to_vec())
                .unwrap_or_default();
            match seal_group(&mut self.conn, &cols, &station_5m, id, hour)? {
                Some((rows, blocks)) => {
                    // The ingest's duplicate check looks reports of this hour up in the block.
                    if let Some(rc) = self.cache.get_mut(&id) {
                        rc.sealed_hour(hour);
                    }
                    stats.groups += 1;
                    stats.rows += rows;
                    stats.blocks += blocks;
                }
                None => stats.skipped += 1,
            }
            if budget.is_some_and(|b| started.elapsed() >= b) {
                break;
            }
        }
        stats.more = !self.seal.pending.is_empty() || !self.seal.scan.is_empty();
        Ok(stats)
    }

    /// Deletes the blocks whose hour ended at or before `raw_cut` (retention); returns the
    /// number of sealed rows they held: (reports, samples).
    pub(crate) fn delete_old_blocks(
        &mut self,
        router_id: i64,
        raw_cut: i64,
    ) -> Result<(u64, u64), StoreError> {
        let last_hour = raw_cut.saturating_sub(HOUR_MS);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut reports, mut samples) = (0u64, 0u64);
        for tbl in (0..SEALED.len() as i64).chain([STATION_5M_TBL]) {
            let rows = if tbl == REPORTS_TBL {
                &mut reports
            } else {
                &mut samples
            };
            *rows += tx
                .prepare_cached("SELECT coalesce(sum(rows), 0) FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms <= ?3")?
                .query_row(params![router_id, tbl, last_hour], |r| r.get::<_, i64>(0))? as u64;
            tx.prepare_cached(
                "DELETE FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms <= ?3",
            )?
            .execute(params![router_id, tbl, last_hour])?;
            tx.prepare_cached(
                "DELETE FROM raw_block_tails WHERE router_id = ?1 AND tbl = ?2 AND hour_ms <= ?3",
            )?
            .execute(params![router_id, tbl, last_hour])?;
        }
        tx.prepare_cached("DELETE FROM report_seq_runs WHERE router_id = ?1 AND hour_ms <= ?2")?
            .execute(params![router_id, last_hour])?;
        tx.commit()?;
        Ok((reports, samples))
    }

    /// Deletes the block keys of hours that ended at or before `raw_cut`.
    pub(crate) fn delete_old_block_keys(&mut self, raw_cut: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM raw_block_keys WHERE hour_ms <= ?1")?
            .execute([raw_cut.saturating_sub(HOUR_MS)])?;
        Ok(())
    }
}

/// Seals one router's hour in every sealed table, in one transaction. `None` when a block of
/// the hour exists but does not decode (the rows then stay rows, and the error is logged).
fn seal_group(
    conn: &mut Connection,
    cols: &[BlockColumns],
    station_5m: &BlockColumns,
    router: i64,
    hour: i64,
) -> Result<Option<(u64, u64)>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut moved, mut blocks) = (0u64, 0u64);
    for (tbl, (t, c)) in SEALED.iter().zip(cols).enumerate() {
        let list = c
            .names()
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {list} FROM {} WHERE router_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            t.name
        );
        let mut rows: Vec<Vec<Value>> = {
            let mut q = tx.prepare_cached(&sql)?;
            let n = c.names().len();
            let r = q.query_map(params![router, hour, hour + HOUR_MS], |r| {
                (0..n)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            r.collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            continue;
        }
        moved += rows.len() as u64;
        let old = read_block(&tx, router, tbl as i64, hour)?;
        if let Some(old) = old {
            match c.decode(&old) {
                Ok(mut sealed) => {
                    // The block's rows win over late rows with the same key (first stored wins).
                    let unique: Vec<usize> = if t.unique.is_empty() {
                        std::iter::once(c.ts())
                            .chain(
                                t.series
                                    .iter()
                                    .filter_map(|s| c.names().iter().position(|n| n == s)),
                            )
                            .collect()
                    } else {
                        t.unique
                            .iter()
                            .filter_map(|s| c.names().iter().position(|n| n == s))
                            .collect()
                    };
                    let key = |r: &Vec<Value>| {
                        let k: Vec<&Value> = unique.iter().map(|&i| &r[i]).collect();
                        format!("{k:?}")
                    };
                    let have: std::collections::HashSet<String> = sealed.iter().map(key).collect();
                    rows.retain(|r| !have.contains(&key(r)));
                    sealed.append(&mut rows);
                    rows = sealed;
                }
                Err(e) => {
                    tracing::error!(router_id = router, table = t.name, hour_ms = hour, error = %e, "sealed block does not decode; its hour's new rows stay rows");
                    return Ok(None);
                }
            }
        }
        let count = rows.len() as i64;
        let keys: BTreeSet<String> = match t.key.and_then(|k| c.names().iter().position(|n| n == k))
        {
            Some(i) => rows
                .iter()
                .filter_map(|r| match &r[i] {
                    Value::Text(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            None => BTreeSet::new(),
        };
        if tbl as i64 == REPORTS_TBL {
            let pos = |n: &str| c.names().iter().position(|x| x == n);
            if let (Some(b), Some(s)) = (pos("boot_id"), pos("seq")) {
                write_report_runs(&tx, router, hour, &rows, b, s)?;
            }
        }
        let blob = c
            .encode(rows)
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        write_block(&tx, router, tbl as i64, hour, count, &blob)?;
        let mut ins = tx.prepare_cached(INSERT_KEY_SQL)?;
        for k in keys {
            ins.execute(params![hour, tbl as i64, k, router])?;
        }
        drop(ins);
        let del = format!(
            "DELETE FROM {} WHERE router_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            t.name
        );
        tx.prepare_cached(&del)?
            .execute(params![router, hour, hour + HOUR_MS])?;
        blocks += 1;
    }
    match seal_station_5m(&tx, station_5m, router, hour)? {
        // Rows of the rollup are not counted in `moved` (rows of the `SEALED` tables).
        Some(n) if n > 0 => blocks += 1,
        Some(_) => {}
        None => return Ok(None),
    }
    tx.commit()?;
    Ok(Some((moved, blocks)))
}

/// Registers the `<table>_all` virtual tables on every SQLite connection this process opens
/// from now on (an SQLite auto-extension; idempotent). [`Store::open`] and the API's read pool
/// call it, so every connection of the collector has them.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `auto_register` neither opens nor closes a connection and does not touch the
        // list of auto-extensions.
        if let Err(e) = unsafe { rusqlite::auto_extension::register_auto_extension(auto_register) }
        {
            tracing::error!(error = %e, "cannot register the raw-sample virtual tables");
        }
    });
}

unsafe extern "C" fn auto_register(
    db: *mut ffi::sqlite3,
    err: *mut *mut std::ffi::c_char,
    _: *const ffi::sqlite3_api_routines,
) -> c_int {
    fn init(c: Connection) -> rusqlite::Result<()> {
        register(&c)
    }
    // SAFETY: called by SQLite with the connection being opened.
    unsafe { rusqlite::auto_extension::init_auto_extension(db, err, init) }
}

/// Registers the `<table>_all` virtual tables on `conn` (every connection that reads raw
/// samples beyond the hot window needs them; see [`install`]).
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    for (i, t) in SEALED.iter().enumerate() {
        conn.create_module(
            format!("{}_all", t.name).as_str(),
            eponymous_only_module::<AllTab>(),
            Some(i),
        )?;
    }
    Ok(())
}

/// The virtual table `<table>_all`.
#[repr(C)]
struct AllTab {
    /// Base class, must be first.
    base: ffi::sqlite3_vtab,
    /// The connection this table lives in (borrowed: never closed here), for the nested reads
    /// of rows and blocks; its statement cache lasts as long as the table.
    conn: Connection,
    tbl: usize,
    /// The table's columns in order.
    names: Vec<String>,
    cols: BlockColumns,
    router_col: usize,
    ts_col: usize,
    key_col: Option<usize>,
    /// Primary-key order: router, time, series columns (indexes into `names`).
    order: Vec<usize>,
}

/// The code of a usable constraint passed from `best_index` to `filter` (`idx_str`):
/// `r` router =, `k` key =, and for `ts_ms`: `=`, `>`, `g` (>=), `<`, `l` (<=).
fn ts_code(op: IndexConstraintOp) -> Option<char> {
    use IndexConstraintOp as C;
    Some(match op {
        C::SQLITE_INDEX_CONSTRAINT_EQ => '=',
        C::SQLITE_INDEX_CONSTRAINT_GT => '>',
        C::SQLITE_INDEX_CONSTRAINT_GE => 'g',
        C::SQLITE_INDEX_CONSTRAINT_LT => '<',
        C::SQLITE_INDEX_CONSTRAINT_LE => 'l',
        _ => return None,
    })
}

fn sql_of(code: char, names: &[String], t: &AllTab) -> String {
    let col = match code {
        'r' => &names[t.router_col],
        'k' => &names[t.key_col.unwrap_or(t.router_col)],
        _ => &names[t.ts_col],
    };
    let op = match code {
        'r' | 'k' | '=' => "=",
        '>' => ">",
        'g' => ">=",
        '<' => "<",
        _ => "<=",
    };
    format!("\"{col}\" {op} ?")
}

unsafe impl<'vtab> VTab<'vtab> for AllTab {
    type Aux = usize;
    type Cursor = AllCursor<'vtab>;

    fn connect(
        db: &mut VTabConnection,
        aux: Option<&usize>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let tbl = aux.copied().unwrap_or(0);
        let t = SEALED
            .get(tbl)
            .ok_or_else(|| rusqlite::Error::ModuleError("unknown sealed table".into()))?;
        // SAFETY: the handle is the connection this virtual table lives in; the borrowed
        // `Connection` does not close it and only runs nested read statements.
        let handle = unsafe { db.handle() };
        let conn = unsafe { Connection::from_handle(handle) }?;
        let (info, cols) =
            block_columns(&conn, t).map_err(|e| rusqlite::Error::ModuleError(e.to_string()))?;
        let names: Vec<String> = info.iter().map(|(n, _)| n.clone()).collect();
        let pos = |n: &str| names.iter().position(|c| c == n);
        let router_col =
            pos("router_id").ok_or_else(|| rusqlite::Error::ModuleError("no router_id".into()))?;
        let ts_col = pos("ts_ms").ok_or_else(|| rusqlite::Error::ModuleError("no ts_ms".into()))?;
        let key_col = t.key.and_then(pos);
        let order = [router_col, ts_col]
            .into_iter()
            .chain(t.series.iter().filter_map(|s| pos(s)))
            .collect();
        let decl = info
            .iter()
            .map(|(n, ty)| format!("\"{n}\" {ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok((
            format!("CREATE TABLE x({decl})"),
            AllTab {
                base: ffi::sqlite3_vtab::default(),
                conn,
                tbl,
                names,
                cols,
                router_col,
                ts_col,
                key_col,
                order,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let eq =
            |op: &IndexConstraintOp| matches!(op, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ);
        let mut used: Vec<(usize, char)> = Vec::new();
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() {
                continue;
            }
            let col = c.column() as usize;
            let op = c.operator();
            let code = if col == self.router_col && eq(&op) {
                'r'
            } else if Some(col) == self.key_col && eq(&op) {
                'k'
            } else if col == self.ts_col {
                match ts_code(op) {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                continue;
            };
            if used.iter().any(|(_, u)| *u == code) {
                continue;
            }
            used.push((i, code));
        }
        let mut cost = 1e7;
        let mut codes = String::new();
        for (n, (i, code)) in used.iter().enumerate() {
            let mut u = info.constraint_usage(*i);
            u.set_argv_index(n as c_int + 1);
            u.set_omit(false);
            codes.push(*code);
            cost /= match code {
                'r' => 1000.0,
                'k' => 500.0,
                '=' => 100.0,
                _ => 4.0,
            };
        }
        info.set_idx_str(&codes);
        info.set_estimated_cost(cost);
        info.set_estimated_rows(cost as i64);
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<AllCursor<'vtab>> {
        Ok(AllCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            tab: self,
            rows: Vec::new(),
            i: 0,
            routers: VecDeque::new(),
            codes: Vec::new(),
            args: Vec::new(),
            base_rowid: 0,
        })
    }
}

/// A cursor of `<table>_all`: the matching rows, materialized by `filter`.
#[repr(C)]
struct AllCursor<'vtab> {
    /// Base class, must be first.
    base: ffi::sqlite3_vtab_cursor,
    tab: &'vtab AllTab,
    rows: Vec<Vec<Value>>,
    i: usize,
    /// Without a router or key constraint: the routers still to read, one at a time (so a
    /// fleet-wide scan holds one router's rows in memory, not the fleet's), with the
    /// constraints to read them with.
    routers: VecDeque<i64>,
    codes: Vec<char>,
    args: Vec<Value>,
    /// Rows yielded before the current batch (a unique rowid).
    base_rowid: i64,
}

/// The `ts_ms` range `[lo, hi]` the integer/real constraints allow (others do not narrow).
fn ts_range(codes: &[char], args: &[Value]) -> (i64, i64) {
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    for (c, v) in codes.iter().zip(args) {
        let (f, fl, ce) = match v {
            Value::Integer(i) => (*i as f64, *i, *i),
            Value::Real(r) if r.is_finite() => (*r, r.floor() as i64, r.ceil() as i64),
            _ => continue,
        };
        let _ = f;
        match c {
            '=' => {
                lo = lo.max(ce);
                hi = hi.min(fl);
            }
            '>' => lo = lo.max(fl.saturating_add(1)),
            'g' => lo = lo.max(ce),
            '<' => hi = hi.min(ce.saturating_sub(1)),
            'l' => hi = hi.min(fl),
            _ => {}
        }
    }
    (lo, hi)
}

/// The (router, hour) pairs `raw_block_keys` lists for `key` in table `tbl` whose hours touch
/// `[lo, hi]`.
fn key_pairs(
    conn: &Connection,
    tbl: usize,
    key: &str,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    let lo_h = floor_hour(lo.max(i64::MIN + HOUR_MS));
    conn.prepare_cached(
        "SELECT router_id, hour_ms FROM raw_block_keys WHERE tbl = ?1 AND key = ?2 \
         AND hour_ms BETWEEN ?3 AND ?4",
    )?
    .query_map(params![tbl as i64, key, lo_h, hi], |x| {
        Ok((x.get(0)?, x.get(1)?))
    })?
    .collect()
}

impl AllCursor<'_> {
    fn load(&mut self, codes: &[char], args: &[Value]) -> Result<(), StoreError> {
        let t = self.tab;
        // Nested statements on the same connection read the same snapshot as the statement
        // using this cursor.
        let conn = &t.conn;
        let mut out: Vec<Vec<Value>> = Vec::new();
        // Rows.
        let list = t
            .names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {list} FROM main.\"{}\" WHERE 1", SEALED[t.tbl].name);
        for &c in codes {
            sql.push_str(" AND ");
            sql.push_str(&sql_of(c, &t.names, t));
        }
        let n = t.names.len();
        let (lo, hi) = ts_range(codes, args);
        // The parameter sets to read the row table with: the constraints as given, or, for a
        // key alone where the row table has no index by key, one primary-key range per
        // (router, hour) pair that `raw_block_keys` lists for the key.
        let key_only = codes.contains(&'k') && !codes.contains(&'r');
        let reads: Vec<Vec<Value>> = if SEALED[t.tbl].hot_keys && key_only {
            sql.push_str(" AND router_id = ? AND ts_ms >= ? AND ts_ms <= ?");
            let key = codes.iter().position(|&c| c == 'k').map(|i| &args[i]);
            match key {
                Some(Value::Text(k)) if lo <= hi => key_pairs(conn, t.tbl, k, lo, hi)?
                    .into_iter()
                    .map(|(r, h)| {
                        let mut a = args.to_vec();
                        a.push(Value::Integer(r));
                        a.push(Value::Integer(h.max(lo)));
                        a.push(Value::Integer(h.saturating_add(HOUR_MS - 1).min(hi)));
                        a
                    })
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            vec![args.to_vec()]
        };
        if !reads.is_empty() {
            let mut st = conn.prepare_cached(&sql)?;
            for a in &reads {
                let rows = st.query_map(params_from_iter(a.iter()), |r| {
                    (0..n)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?;
                for r in rows {
                    out.push(r?);
                }
            }
        }
        // Blocks.
        if lo <= hi {
            let find = |code: char| codes.iter().position(|&c| c == code).map(|i| &args[i]);
            let router = match find('r') {
                Some(Value::Integer(r)) => Some(*r),
                Some(Value::Null) => return self.finish(out),
                _ => None,
            };
            let key = match find('k') {
                Some(Value::Text(k)) => Some(k.clone()),
                Some(Value::Null) => return self.finish(out),
                _ => None,
            };
            let (lo_h, hi_h) = (floor_hour(lo.max(i64::MIN + HOUR_MS)), hi);
            let tbl = t.tbl as i64;
            let mut found: Vec<(i64, i64, Vec<u8>)> = Vec::new();
            if let Some(r) = router {
                let mut st = conn.prepare_cached("SELECT hour_ms, data FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms BETWEEN ?3 AND ?4")?;
                let rows = st.query_map(params![r, tbl, lo_h, hi_h], |x| {
                    Ok((r, x.get(0)?, x.get(1)?))
                })?;
                for x in rows {
                    found.push(x?);
                }
            } else if let (Some(k), Some(_)) = (&key, t.key_col) {
                let at = key_pairs(conn, t.tbl, k, lo, hi)?;
                let mut blk = conn.prepare_cached("SELECT data FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2 AND hour_ms = ?3")?;
                for (r, h) in at {
                    if let Some(d) = blk.query_row(params![r, tbl, h], |x| x.get(0)).optional()? {
                        found.push((r, h, d));
                    }
                }
            } else {
                let mut st = conn.prepare_cached("SELECT router_id, hour_ms, data FROM raw_blocks WHERE tbl = ?1 AND hour_ms BETWEEN ?2 AND ?3")?;
                let rows = st.query_map(params![tbl, lo_h, hi_h], |x| {
                    Ok((x.get(0)?, x.get(1)?, x.get(2)?))
                })?;
                for x in rows {
                    found.push(x?);
                }
            }
            for (r, h, data) in found.iter_mut() {
                append_tail(conn, *r, tbl, *h, data)?;
            }
            let ts_in_block = t.cols.ts();
            let key_in_block = t.key_col.map(|k| if k > t.router_col { k - 1 } else { k });
            for (r, h, data) in found {
                let rows = match t.cols.decode(&data) {
                    Ok(rows) => rows,
                    Err(e) => {
                        log_corrupt(SEALED[t.tbl].name, r, h, &e);
                        continue;
                    }
                };
                for mut row in rows {
                    let ts = match row[ts_in_block] {
                        Value::Integer(v) => v,
                        _ => continue,
                    };
                    if ts < lo || ts > hi {
                        continue;
                    }
                    if let (Some(k), Some(ki)) = (&key, key_in_block) {
                        if !matches!(&row[ki], Value::Text(s) if s == k) {
                            continue;
                        }
                    }
                    row.insert(t.router_col, Value::Integer(r));
                    out.push(row);
                }
            }
        }
        self.finish(out)
    }

    /// Loads the next router that has matching rows (or none are left).
    fn advance(&mut self) -> Result<(), StoreError> {
        self.base_rowid += self.rows.len() as i64;
        self.rows.clear();
        self.i = 0;
        while let Some(r) = self.routers.pop_front() {
            let (codes, mut args) = (self.codes.clone(), self.args.clone());
            args.push(Value::Integer(r));
            self.load(&codes, &args)?;
            if !self.rows.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Router ids with rows or blocks of this table, ascending (skipping along the leading
    /// `router_id` of the row table's and the block table's keys).
    fn router_ids(&self) -> Result<Vec<i64>, StoreError> {
        let t = self.tab;
        let mut ids = BTreeSet::new();
        let table = format!("main.\"{}\"", SEALED[t.tbl].name);
        for table in [table.as_str(), "main.raw_blocks"] {
            router_ids_in(&t.conn, table, &mut ids)?;
        }
        Ok(ids.into_iter().collect())
    }

    fn finish(&mut self, mut out: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let order = &self.tab.order;
        out.sort_by(|a, b| {
            for &k in order {
                let o = cmp_value(&a[k], &b[k]);
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        self.rows = out;
        self.i = 0;
        Ok(())
    }
}

/// The end of the newest hour of `router`'s sealed `reports` blocks (`i64::MIN` without any):
/// a report made at or after it is in no sealed hour (see [`sealed_report_exists`]).
pub(crate) fn sealed_reports_before(conn: &Connection, router: i64) -> Result<i64, StoreError> {
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(hour_ms) FROM raw_blocks WHERE router_id = ?1 AND tbl = ?2")?
        .query_row(params![router, REPORTS_TBL], |r| r.get(0))?;
    Ok(newest.map_or(i64::MIN, |h| h.saturating_add(HOUR_MS)))
}

/// Whether (router ?1, hour ?2) has a run holding report (boot ?3, seq ?4): 1 or 0, NULL
/// when the hour has no runs.
const RUN_LOOKUP_SQL: &str = "SELECT max(boot_id = ?3 AND seq_lo <= ?4 AND seq_hi >= ?4) \
     FROM report_seq_runs WHERE router_id = ?1 AND hour_ms = ?2";

/// Whether report (`boot_id`, `seq`) of `router`, made at `ts_ms`, is stored in the sealed
/// `reports` block of its hour: a retransmit of a report whose hour was sealed since it was
/// first stored (an agent replaying its spool after a lost acknowledgement and a long outage).
/// One primary-key range of `report_seq_runs` (the block's (boot_id, seq) runs, written with
/// it): no decode, and a corrupt block still answers. Only a block sealed before those runs
/// existed (schema 16) is decoded; if it does not decode either, nothing can tell, so the
/// report is stored (it is then readable again as a row, but the rollups may count it twice)
/// and the error is logged.
pub(crate) fn sealed_report_exists(
    conn: &Connection,
    router: i64,
    boot_id: &[u8],
    seq: i64,
    ts_ms: i64,
) -> Result<bool, StoreError> {
    let hour = floor_hour(ts_ms);
    // NULL when the hour has no runs (no block, or one sealed before the runs were kept).
    let found: Option<bool> = conn
        .prepare_cached(RUN_LOOKUP_SQL)?
        .query_row(params![router, hour, boot_id, seq], |r| r.get(0))?;
    if let Some(found) = found {
        return Ok(found);
    }
    let Some(data) = read_block(conn, router, REPORTS_TBL, hour)? else {
        return Ok(false);
    };
    let (_, cols) = block_columns(conn, &SEALED[REPORTS_TBL as usize])?;
    let pos = |n: &str| cols.names().iter().position(|c| c == n);
    let (Some(b), Some(s)) = (pos("boot_id"), pos("seq")) else {
        return Ok(false);
    };
    match cols.decode(&data) {
        Ok(rows) => Ok(rows.iter().any(|r| {
            matches!(&r[b], Value::Blob(x) if x.as_slice() == boot_id)
                && r[s] == Value::Integer(seq)
        })),
        Err(e) => {
            tracing::error!(router_id = router, hour_ms = hour, seq, error = %e,
                "sealed reports block without sequence runs does not decode: a report of its hour is stored, though it may be a retransmit (its rollups may count twice)");
            Ok(false)
        }
    }
}

/// Rewrites the (boot_id, seq) runs of the `reports` block of (`router`, `hour`) from the
/// block's rows (`boot`, `seq`: their column positions), in the sealing transaction.
fn write_report_runs(
    tx: &Connection,
    router: i64,
    hour: i64,
    rows: &[Vec<Value>],
    boot: usize,
    seq: usize,
) -> Result<(), StoreError> {
    let mut pairs: Vec<(&[u8], i64)> = rows
        .iter()
        .filter_map(|r| match (&r[boot], &r[seq]) {
            (Value::Blob(b), Value::Integer(s)) => Some((b.as_slice(), *s)),
            _ => None,
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    tx.prepare_cached("DELETE FROM report_seq_runs WHERE router_id = ?1 AND hour_ms = ?2")?
        .execute(params![router, hour])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO report_seq_runs (router_id, hour_ms, boot_id, seq_lo, seq_hi) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut i = 0;
    while i < pairs.len() {
        let (b, lo) = pairs[i];
        let mut hi = lo;
        while i + 1 < pairs.len() && pairs[i + 1].0 == b && pairs[i + 1].1 == hi.saturating_add(1) {
            i += 1;
            hi = pairs[i].1;
        }
        ins.execute(params![router, hour, b, lo, hi])?;
        i += 1;
    }
    Ok(())
}

fn log_corrupt(table: &str, router: i64, hour: i64, e: &BlockError) {
    tracing::error!(table, router_id = router, hour_ms = hour, error = %e, "sealed block does not decode; skipped");
}

unsafe impl VTabCursor for AllCursor<'_> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let codes: Vec<char> = idx_str.unwrap_or("").chars().collect();
        let vals: Vec<Value> = (0..args.len())
            .map(|i| args.get::<Value>(i))
            .collect::<rusqlite::Result<_>>()?;
        if vals.len() != codes.len() {
            return Err(rusqlite::Error::ModuleError(
                "constraint count mismatch".into(),
            ));
        }
        self.rows.clear();
        self.i = 0;
        self.base_rowid = 0;
        self.routers.clear();
        let result = if codes.contains(&'r') || codes.contains(&'k') {
            self.load(&codes, &vals)
        } else {
            // Router by router: the routers with rows or blocks of this table.
            self.codes = codes.into_iter().chain(['r']).collect();
            self.args = vals;
            self.router_ids().and_then(|ids| {
                self.routers = ids.into();
                self.advance()
            })
        };
        result.map_err(|e| match e {
            StoreError::Sqlite(e) => e,
            e => rusqlite::Error::ModuleError(e.to_string()),
        })
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.i += 1;
        if self.i >= self.rows.len() && !self.routers.is_empty() {
            self.advance().map_err(|e| match e {
                StoreError::Sqlite(e) => e,
                e => rusqlite::Error::ModuleError(e.to_string()),
            })?;
        }
        Ok(())
    }

    fn eof(&self) -> bool {
        self.i >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let v = self
            .rows
            .get(self.i)
            .and_then(|r| r.get(i as usize))
            .unwrap_or(&Value::Null);
        ctx.set_result(v)
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.base_rowid + self.i as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp, rich_report};
    use crate::store::{IngestItem, Retention};

    /// An hour boundary: 2023-11-15T00:00:00Z.
    const T0: i64 = 1_700_006_400_000;
    const STEP: i64 = 300_000;

    /// Two routers reporting every 5 minutes for 6 hours (a third one stops after 2 hours).
    fn filled() -> (tempfile::TempDir, Store, Vec<i64>) {
        let (dir, mut store) = open_temp();
        let ids: Vec<i64> = ["a", "b", "c"]
            .iter()
            .map(|n| enrolled_router(&mut store, n).id)
            .collect();
        for i in 0..72i64 {
            let ts = T0 + i * STEP + 1_234;
            let reports: Vec<_> = ids
                .iter()
                .enumerate()
                .filter(|(k, _)| *k < 2 || i < 24)
                .map(|(k, _)| {
                    rich_report(
                        [k as u8 + 1; 16],
                        2 * i as u64 + 2,
                        ts as u64,
                        (i as u64 + 1) * (k as u64 + 3),
                    )
                })
                .collect();
            let items: Vec<IngestItem<'_>> = reports
                .iter()
                .zip(&ids)
                .map(|(r, &id)| IngestItem {
                    router_id: id,
                    received_at_ms: ts,
                    report: r,
                })
                .collect();
            store.ingest(&items).unwrap();
        }
        (dir, store, ids)
    }

    fn dump(c: &Connection, sql: &str, p: &[Value]) -> Vec<String> {
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        let rows = st
            .query_map(params_from_iter(p.iter()), |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get::<_, Value>(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Queries of the shapes the API uses (router, key and time constraints, joins, aggregates).
    fn answers(c: &Connection, ids: &[i64]) -> Vec<Vec<String>> {
        let mac = Value::Text(crate::store::testutil::mac(1).to_string());
        let (r, from, to) = (
            Value::Integer(ids[0]),
            Value::Integer(T0 + 1_800_000),
            Value::Integer(T0 + 4 * 3_600_000),
        );
        let mut out = Vec::new();
        for t in SEALED {
            let all = format!("{}_all", t.name);
            out.push(dump(
                c,
                &format!("SELECT * FROM {all} ORDER BY 1, 2, 3, 4, 5"),
                &[],
            ));
            out.push(dump(
                c,
                &format!("SELECT * FROM {all} WHERE router_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3"),
                &[r.clone(), from.clone(), to.clone()],
            ));
            out.push(dump(c, &format!("SELECT count(*), min(ts_ms), max(ts_ms) FROM {all} WHERE ts_ms > ?1 AND ts_ms <= ?2"), &[from.clone(), to.clone()]));
            out.push(dump(c, &format!("SELECT r.id, count(*) FROM routers r CROSS JOIN {all} s ON s.router_id = r.id AND s.ts_ms BETWEEN ?1 AND ?2 GROUP BY r.id"), &[from.clone(), to.clone()]));
            out.push(dump(
                c,
                &format!("SELECT * FROM {all} WHERE ts_ms = ?1"),
                &[Value::Integer(T0 + 12 * STEP + 1_234)],
            ));
            if let Some(k) = t.key {
                out.push(dump(
                    c,
                    &format!("SELECT * FROM {all} WHERE {k} = ?1 AND ts_ms >= ?2"),
                    &[mac.clone(), from.clone()],
                ));
                out.push(dump(c, &format!("SELECT router_id, ts_ms FROM {all} WHERE {k} = ?1 ORDER BY ts_ms DESC LIMIT 1"), std::slice::from_ref(&mac)));
                out.push(dump(c, &format!("SELECT EXISTS (SELECT 1 FROM {all} WHERE {k} = ?1), EXISTS (SELECT 1 FROM {all} WHERE {k} = 'nobody')"), std::slice::from_ref(&mac)));
            }
        }
        for (lo, hi) in [
            (i64::MIN, i64::MAX),
            (T0 + 1_800_000, T0 + 2 * 3_600_000 - STEP),
            (T0 + 3_600_000 + 600_000, T0 + 3_600_000 + 600_000),
            (T0 + 5 * 3_600_000, T0 + 9 * 3_600_000),
        ] {
            out.push(station_5m(c, lo, hi));
        }
        out
    }

    /// The station 5-minute buckets in `[lo, hi]`, rows and sealed blocks, summed per
    /// (router, MAC, bucket) as the API does.
    fn station_5m(c: &Connection, lo: i64, hi: i64) -> Vec<String> {
        let mut by: std::collections::BTreeMap<(i64, String, i64), Station5m> = Default::default();
        let mut add = |router: i64, s: Station5m| {
            let k = (router, s.mac.clone(), s.bucket_start_ms);
            match by.get_mut(&k) {
                Some(t) => t.add(&s),
                None => {
                    by.insert(k, s);
                }
            }
        };
        let mut st = c
            .prepare(
                "SELECT router_id, mac, bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, \
                 max_tx_bps, samples FROM station_rollup_5m WHERE bucket_start_ms BETWEEN ?1 AND ?2",
            )
            .unwrap();
        let rows: Vec<(i64, Vec<Value>)> = st
            .query_map([lo, hi], |r| {
                Ok((
                    r.get(0)?,
                    (1..8)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<_>>()?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (router, row) in rows {
            add(router, Station5m::from_row(&row).unwrap());
        }
        for_each_sealed_station_5m(c, lo, hi, None, &mut add).unwrap();
        by.iter().map(|(k, v)| format!("{k:?} {v:?}")).collect()
    }

    /// Rows left in the sealed tables.
    fn row_count(c: &Connection) -> i64 {
        SEALED
            .iter()
            .map(|t| {
                let sql = format!("SELECT count(*) FROM {}", t.name);
                c.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap()
            })
            .sum()
    }

    #[test]
    fn sealed_hours_answer_like_rows_and_retention_deletes_blocks() {
        let (_dir, mut store, ids) = filled();
        let c = store.connection();
        // With everything still rows, `<table>_all` is the table.
        for t in SEALED {
            assert_eq!(
                dump(
                    c,
                    &format!("SELECT * FROM {} ORDER BY 1, 2, 3, 4, 5", t.name),
                    &[]
                ),
                dump(
                    c,
                    &format!("SELECT * FROM {}_all ORDER BY 1, 2, 3, 4, 5", t.name),
                    &[]
                ),
                "{}",
                t.name
            );
        }
        let before = answers(c, &ids);
        assert!(before.iter().filter(|a| !a.is_empty()).count() > 30);
        let rows_before = row_count(c);

        let now = T0 + 6 * 3_600_000;
        let s = store.seal_all(now).unwrap();
        // Hours 0-3 of a and b (4 and 5 are hot); router c's newest hour (1) stays rows.
        assert_eq!(s.groups, 2 * 4 + 1, "{s:?}");
        assert_eq!(s.skipped, 0);
        let c = store.connection();
        let sealed: i64 = c
            .query_row(
                "SELECT coalesce(sum(rows), 0) FROM raw_blocks WHERE tbl != ?1",
                [STATION_5M_TBL],
                |r| r.get(0),
            )
            .unwrap();
        let rows_after = row_count(c);
        assert_eq!(s.rows as i64, sealed);
        assert_eq!(rows_after + sealed, rows_before);
        assert!(
            sealed > rows_after,
            "most rows sealed: {sealed} of {rows_before}"
        );
        assert_eq!(answers(c, &ids), before, "sealed answers differ");
        // Blocks split into a head and tail records answer the same: these blocks are too
        // small to be split (under a leaf page's 1,002 bytes), so split every one of them at
        // 10 bytes into tails of 7: `answers` reads them by router, by key and fleet-wide, and
        // the checks below read them too (the 5-minute rollup, the retransmit lookup and the
        // merge of a late report, retention).
        let all: Vec<(i64, i64, i64, i64, Vec<u8>)> = c
            .prepare("SELECT router_id, tbl, hour_ms, rows, data FROM raw_blocks")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for (r, t, h, n, data) in &all {
            write_block_parts(c, (*r, *t, *h), *n, data, 10, 7).unwrap();
        }
        let split: i64 = c
            .query_row(
                "SELECT count(DISTINCT router_id || '/' || tbl || '/' || hour_ms) FROM raw_block_tails",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(split as usize, all.len(), "every block split");
        assert_eq!(answers(c, &ids), before, "answers of split blocks differ");
        // The 5-minute station rollup of the sealed hours is in blocks too.
        let (blocks_5m, rows_5m): (i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM raw_blocks WHERE tbl = ?1), \
                 (SELECT count(*) FROM station_rollup_5m WHERE bucket_start_ms < ?2)",
                params![STATION_5M_TBL, T0 + 4 * 3_600_000],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (blocks_5m, rows_5m > 0),
            (2 * 4 + 1, true),
            "router c's newest hour stays"
        );
        assert!(station_5m(c, T0, T0 + 3_600_000).len() >= 2 * 12);
        // Nothing left to seal; the newest report is still rows.
        assert_eq!(store.seal_all(now).unwrap().groups, 0);
        let last: i64 = store.connection().query_row("SELECT count(*) FROM station_samples s JOIN routers r ON r.id = s.router_id AND s.ts_ms = r.last_report_ms", [], |r| r.get(0)).unwrap();
        assert!(last > 0);

        // A late report for a sealed hour is merged into that hour's block.
        let late = rich_report([1; 16], 5, (T0 + 3 * 60_000) as u64, 7);
        store
            .ingest(&[IngestItem {
                router_id: ids[0],
                received_at_ms: now,
                report: &late,
            }])
            .unwrap();
        let with_late = answers(store.connection(), &ids);
        store.seal_step(now).unwrap();
        let s = store.seal_all(now).unwrap();
        assert_eq!(s.groups, 1, "{s:?}");
        assert_eq!(answers(store.connection(), &ids), with_late);

        // Retention deletes whole blocks older than raw_days (and their keys).
        let policy = Retention {
            raw_days: 1,
            ..Retention::default()
        };
        let stats = store
            .apply_retention(T0 + 86_400_000 + 2 * 3_600_000, &policy)
            .unwrap();
        let c = store.connection();
        let hours: Vec<i64> = c
            .prepare("SELECT DISTINCT hour_ms FROM raw_blocks ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            hours,
            vec![T0 + 2 * 3_600_000, T0 + 3 * 3_600_000],
            "blocks of hours 0 and 1 deleted"
        );
        let run_hours: Vec<i64> = c
            .prepare("SELECT DISTINCT hour_ms FROM report_seq_runs ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(run_hours, hours, "the runs go with their blocks");
        let keys: i64 = c
            .query_row(
                "SELECT count(*) FROM raw_block_keys WHERE hour_ms < ?1",
                [T0 + 2 * 3_600_000],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(keys, 0);
        let tails: i64 = c
            .query_row(
                "SELECT count(*) FROM raw_block_tails WHERE hour_ms < ?1",
                [T0 + 2 * 3_600_000],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tails, 0, "tails of the deleted blocks");
        assert!(stats.samples > 0);
    }

    /// A retransmit of a report whose hour was sealed since (its `reports` row is in a block,
    /// so the UNIQUE key no longer sees it) is a duplicate: nothing is stored twice, no rollup
    /// counts it again; a new report of the same hour is stored and merged into the block.
    /// The writer that sealed the hour knows it (its router caches were loaded before), and so
    /// does one started on the sealed database.
    #[test]
    fn a_retransmit_into_a_sealed_hour_is_a_duplicate() {
        use crate::store::IngestOutcome;
        let (dir, mut store, ids) = filled();
        let now = T0 + 6 * 3_600_000;
        store.seal_all(now).unwrap();
        let c = store.connection();
        let sealed_reports: i64 = c
            .query_row(
                "SELECT sum(rows) FROM raw_blocks WHERE tbl = ?1",
                [REPORTS_TBL],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sealed_reports >= 2 * 48, "{sealed_reports}");
        let snapshot = |c: &Connection| {
            [
                "SELECT count(*), sum(seq), sum(uptime_s) FROM reports_all",
                "SELECT count(*), sum(rx_bytes) FROM station_samples_all",
                "SELECT count(*), sum(rx_bytes), sum(samples) FROM station_rollup_1h",
                "SELECT count(*), sum(rx_bytes), sum(samples) FROM station_rollup_5m",
                "SELECT count(*), sum(rx_bytes) FROM interface_rollup_1h",
                "SELECT count(*) FROM reports",
            ]
            .map(|q| dump(c, q, &[]))
        };
        let before = snapshot(c);
        // Router a's report of hour 1 (i = 14), exactly as first sent.
        let i = 14i64;
        let ts = T0 + i * STEP + 1_234;
        assert!(ts < hot_start(now));
        let again = rich_report([1; 16], 2 * i as u64 + 2, ts as u64, (i as u64 + 1) * 3);
        let item = IngestItem {
            router_id: ids[0],
            received_at_ms: now,
            report: &again,
        };
        assert_eq!(
            store.ingest(&[item]).unwrap(),
            vec![IngestOutcome::Duplicate]
        );
        assert_eq!(snapshot(store.connection()), before, "stored twice");
        // A new sequence number in the sealed hour is stored (as a row, merged later).
        let new = rich_report([1; 16], 2 * i as u64 + 3, ts as u64 + 1, (i as u64 + 1) * 3);
        let outcomes = store
            .ingest(&[IngestItem {
                router_id: ids[0],
                received_at_ms: now,
                report: &new,
            }])
            .unwrap();
        assert_eq!(outcomes, vec![IngestOutcome::Stored]);
        // Once merged into the block, its retransmit is a duplicate too.
        store.seal_all(now).unwrap();
        let merged = snapshot(store.connection());
        assert_ne!(merged, before);
        let outcomes = store
            .ingest(&[
                item,
                IngestItem {
                    router_id: ids[0],
                    received_at_ms: now,
                    report: &new,
                },
            ])
            .unwrap();
        assert_eq!(
            outcomes,
            vec![IngestOutcome::Duplicate, IngestOutcome::Duplicate]
        );
        assert_eq!(snapshot(store.connection()), merged);
        // A writer started on the sealed database: its router caches start from the blocks.
        drop(store);
        let mut store = Store::open(&dir.path().join("routerstats.db")).unwrap();
        assert_eq!(
            store.ingest(&[item]).unwrap(),
            vec![IngestOutcome::Duplicate]
        );
        assert_eq!(snapshot(store.connection()), merged);
        // A block sealed before the runs were kept (schema 16) is decoded instead.
        store
            .connection()
            .execute("DELETE FROM report_seq_runs", [])
            .unwrap();
        assert_eq!(
            store.ingest(&[item]).unwrap(),
            vec![IngestOutcome::Duplicate]
        );
        assert_eq!(snapshot(store.connection()), merged);
    }

    /// Consecutive sequence numbers of one boot make one run; a gap or another boot starts a
    /// new one; repeated pairs count once.
    #[test]
    fn report_runs_are_consecutive_sequence_numbers_per_boot() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE report_seq_runs (router_id INTEGER, hour_ms INTEGER, boot_id BLOB, \
             seq_lo INTEGER, seq_hi INTEGER, PRIMARY KEY (router_id, hour_ms, boot_id, seq_lo)) WITHOUT ROWID",
        )
        .unwrap();
        let row = |b: u8, s: i64| vec![Value::Blob(vec![b; 16]), Value::Integer(s)];
        let rows: Vec<Vec<Value>> = [(1, 7), (1, 5), (1, 6), (2, 8), (1, 9), (1, 9), (2, 9)]
            .iter()
            .map(|&(b, s)| row(b, s))
            .collect();
        write_report_runs(&c, 3, T0, &rows, 0, 1).unwrap();
        let runs = dump(
            &c,
            "SELECT hex(substr(boot_id, 1, 1)) || '|' || seq_lo || '|' || seq_hi FROM report_seq_runs ORDER BY boot_id, seq_lo",
            &[],
        );
        assert_eq!(
            runs,
            [
                r#"Text("01|5|7")"#,
                r#"Text("01|9|9")"#,
                r#"Text("02|8|9")"#
            ]
        );
        for (boot, seq, stored) in [
            (1, 4, false),
            (1, 5, true),
            (1, 8, false),
            (2, 9, true),
            (3, 5, false),
        ] {
            let found: bool = c
                .query_row(
                    RUN_LOOKUP_SQL,
                    params![3, T0, vec![boot as u8; 16], seq],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(found, stored, "{boot} {seq}");
        }
    }

    /// A corrupt `reports` block: a retransmit of a report it holds is still a duplicate (the
    /// block's (boot_id, seq) runs are kept beside it, so no decode is needed), nothing is
    /// counted twice in the rollups, and a new report of that hour is stored.
    #[test]
    fn a_retransmit_into_a_corrupt_sealed_hour_is_still_a_duplicate() {
        use crate::store::IngestOutcome;
        let (_dir, mut store, ids) = filled();
        let now = T0 + 6 * 3_600_000;
        store.seal_all(now).unwrap();
        let i = 14i64;
        let ts = T0 + i * STEP + 1_234;
        let rollups = |c: &Connection| {
            [
                "SELECT count(*), sum(rx_bytes), sum(samples) FROM station_rollup_1h",
                "SELECT count(*), sum(rx_bytes), sum(samples) FROM station_rollup_5m",
                "SELECT count(*), sum(rx_bytes) FROM interface_rollup_1h",
                "SELECT count(*), sum(rx_bytes) FROM wg_rollup_1h",
                "SELECT count(*) FROM reports",
            ]
            .map(|q| dump(c, q, &[]))
        };
        // Router a's sequence numbers step by 2: one run per report; router b's hour 1 too.
        let runs: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM report_seq_runs WHERE router_id = ?1 AND hour_ms = ?2",
                params![ids[0], floor_hour(ts)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(runs, 12);
        let before = rollups(store.connection());
        for garbage in [&b"\x01\xff"[..], b"", b"\x02zstd?"] {
            store
                .connection()
                .execute(
                    "UPDATE raw_blocks SET data = ?4 WHERE router_id = ?1 AND tbl = ?2 AND hour_ms = ?3",
                    params![ids[0], REPORTS_TBL, floor_hour(ts), garbage],
                )
                .unwrap();
            let again = rich_report([1; 16], 2 * i as u64 + 2, ts as u64, (i as u64 + 1) * 3);
            let outcomes = store
                .ingest(&[IngestItem {
                    router_id: ids[0],
                    received_at_ms: now,
                    report: &again,
                }])
                .unwrap();
            assert_eq!(outcomes, vec![IngestOutcome::Duplicate], "{garbage:?}");
            store.flush_rollups_before(i64::MAX).unwrap();
            assert_eq!(rollups(store.connection()), before, "counted twice");
        }
        // Another boot's report, and a sequence number between two stored ones (never
        // stored): both new, both stored.
        let other_boot = rich_report([9; 16], 2 * i as u64 + 2, ts as u64 + 5, 1);
        let between = rich_report([1; 16], 2 * i as u64 + 3, ts as u64 + 7, 1);
        let outcomes = store
            .ingest(&[
                IngestItem {
                    router_id: ids[0],
                    received_at_ms: now,
                    report: &other_boot,
                },
                IngestItem {
                    router_id: ids[0],
                    received_at_ms: now,
                    report: &between,
                },
            ])
            .unwrap();
        assert_eq!(outcomes, vec![IngestOutcome::Stored, IngestOutcome::Stored]);
    }

    /// A router silent for longer than the hot window: its report before the newest is only in
    /// a sealed `reports` block, and the fleet's report interval still finds it.
    #[test]
    fn the_interval_of_a_router_back_after_hours_reads_its_sealed_reports() {
        let (_dir, mut store, ids) = filled();
        // Router c reported every 5 minutes for 2 hours; it comes back at hour 6.
        let ts = T0 + 6 * 3_600_000 + 1_234;
        let r = rich_report([3; 16], 2 * 24 + 2, ts as u64, 25 * 5);
        store
            .ingest(&[IngestItem {
                router_id: ids[2],
                received_at_ms: ts,
                report: &r,
            }])
            .unwrap();
        let interval = |c: &Connection| {
            crate::api::fleet::load_routers(c)
                .unwrap()
                .into_iter()
                .find(|r| r.id == ids[2])
                .unwrap()
                .interval_ms
        };
        let before = interval(store.connection());
        assert_eq!(before, Some(ts - (T0 + 23 * STEP + 1_234)));
        store.seal_all(T0 + 9 * 3_600_000).unwrap();
        let rows: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM reports WHERE router_id = ?1",
                [ids[2]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1, "only the newest report is a row");
        assert_eq!(interval(store.connection()), before);
    }

    /// `(first ts at or after lo, sample count, sum of rx bytes)` of a router's station
    /// samples in `[lo, hi]`, read from the source [`router_source`] picks.
    fn window_of(c: &Connection, id: i64, lo: i64, hi: i64) -> (String, Option<i64>, i64, i64) {
        let src = router_source(c, "station_samples", id, lo, hi).unwrap();
        let (first, n, sum) = c
            .query_row(
                &format!(
                    "SELECT min(ts_ms), count(*), coalesce(sum(rx_bytes), 0) FROM {src} \
                     WHERE router_id = ?1 AND ts_ms >= ?2 AND ts_ms <= ?3"
                ),
                params![id, lo, hi],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        (src.into_owned(), first, n, sum)
    }

    #[test]
    fn a_router_window_reads_rows_unless_it_touches_a_sealed_hour() {
        let (_dir, mut store, ids) = filled();
        let windows: Vec<(i64, i64)> = (0..12)
            .map(|k| (T0 + k * 1_800_000 + 1_000, T0 + k * 1_800_000 + 3_600_000))
            .chain([(T0 - 3_600_000, i64::MAX), (T0 + 5 * 3_600_000, i64::MAX)])
            .collect();
        let read = |c: &Connection| -> Vec<(String, Option<i64>, i64, i64)> {
            ids.iter()
                .flat_map(|&id| windows.iter().map(move |&(lo, hi)| (id, lo, hi)))
                .map(|(id, lo, hi)| window_of(c, id, lo, hi))
                .collect()
        };
        let before = read(store.connection());
        assert!(before.iter().all(|(src, ..)| src == "station_samples"));
        assert!(
            before
                .iter()
                .filter(|(_, first, ..)| first.is_some())
                .count()
                > 20
        );
        store.seal_all(T0 + 6 * 3_600_000).unwrap();
        let after = read(store.connection());
        let strip = |v: &[(String, Option<i64>, i64, i64)]| -> Vec<(Option<i64>, i64, i64)> {
            v.iter().map(|(_, f, n, s)| (*f, *n, *s)).collect()
        };
        assert_eq!(
            strip(&after),
            strip(&before),
            "same figures from rows and blocks"
        );
        // Router a: hours 0-3 sealed. A window in hour 4 or later reads the rows only; one
        // that touches hours 0-3 (or starts before them) reads rows and blocks.
        let a = ids[0];
        assert_eq!(
            window_of(store.connection(), a, T0 + 4 * 3_600_000, i64::MAX).0,
            "station_samples"
        );
        assert_eq!(
            window_of(store.connection(), a, T0 + 3 * 3_600_000 + 1, i64::MAX).0,
            "station_samples_all"
        );
        assert_eq!(
            window_of(store.connection(), a, T0 - 3_600_000, T0 - 1).0,
            "station_samples"
        );
        assert_eq!(
            window_of(store.connection(), a, T0 - 3_600_000, T0).0,
            "station_samples_all"
        );
        // A table that is not sealed is read as it is; `reports` is sealed too (schema 11).
        assert_eq!(
            router_source(store.connection(), "wg_peers", a, 0, i64::MAX).unwrap(),
            "wg_peers"
        );
        assert_eq!(
            router_source(store.connection(), "reports", a, 0, i64::MAX).unwrap(),
            "reports_all"
        );
    }

    #[test]
    fn a_corrupt_block_is_an_error_and_the_other_blocks_are_served() {
        let (_dir, mut store, ids) = filled();
        store.seal_all(T0 + 6 * 3_600_000).unwrap();
        let c = store.connection();
        let count = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT count(*) FROM station_samples_all WHERE router_id = ?1",
                [ids[0]],
                |r| r.get(0),
            )
            .unwrap()
        };
        let all = count(c);
        let bad: i64 = c
            .query_row(
                "SELECT rows FROM raw_blocks WHERE router_id = ?1 AND tbl = 1 AND hour_ms = ?2",
                params![ids[0], T0],
                |r| r.get(0),
            )
            .unwrap();
        for garbage in [&b"\x01\xff\x00\x13"[..], b"", b"\x07zstd?", b"\x01"] {
            c.execute(
                "UPDATE raw_blocks SET data = ?3 WHERE router_id = ?1 AND tbl = 1 AND hour_ms = ?2",
                params![ids[0], T0, garbage],
            )
            .unwrap();
            let cols = block_columns(c, &SEALED[1]).unwrap().1;
            assert!(cols.decode(garbage).is_err());
            assert_eq!(count(c), all - bad, "the other blocks are still served");
        }
        // Late rows for the corrupt hour stay rows (the block is not overwritten).
        let late = rich_report([1; 16], 5, (T0 + 3 * 60_000) as u64, 7);
        store
            .ingest(&[IngestItem {
                router_id: ids[0],
                received_at_ms: T0,
                report: &late,
            }])
            .unwrap();
        let s = store.seal_all(T0 + 6 * 3_600_000).unwrap();
        assert_eq!((s.groups, s.skipped), (0, 1), "{s:?}");
        let c = store.connection();
        assert!(count(c) > all - bad);
    }

    /// The upgrade of a schema-10 database (samples sealed, `reports` and `station_rollup_5m`
    /// still rows): the writer seals those rows a few router-hours per step, and every answer
    /// is the same before, at each step of the way, and after.
    #[test]
    fn answers_are_the_same_while_a_schema_10_upgrade_is_half_done() {
        let (_dir, mut store, ids) = filled();
        let now = T0 + 6 * 3_600_000;
        store.seal_all(now).unwrap();
        let sealed = answers(store.connection(), &ids);
        let reports_rows = |c: &Connection| -> (i64, i64) {
            c.query_row(
                "SELECT (SELECT count(*) FROM reports WHERE ts_ms < ?1), \
                 (SELECT count(*) FROM raw_blocks WHERE tbl IN (?2, ?3))",
                params![hot_start(now), REPORTS_TBL, STATION_5M_TBL],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let groups = store.rebuild_schema10_layout().unwrap();
        assert_eq!(groups, 2 * 4 + 1, "routers a, b: hours 0-3; c: hour 0");
        let (rows, blocks) = reports_rows(store.connection());
        assert!(
            rows >= 2 * 36 && blocks == 0,
            "{rows} rows, {blocks} blocks"
        );
        assert_eq!(
            answers(store.connection(), &ids),
            sealed,
            "schema-10 layout"
        );
        let mut steps = 0;
        loop {
            let s = store.seal_some_before(hot_start(now), 2).unwrap();
            steps += 1;
            assert_eq!(
                answers(store.connection(), &ids),
                sealed,
                "after step {steps}: {s:?}"
            );
            if !s.more {
                break;
            }
            assert!(s.groups > 0, "{s:?}");
        }
        assert!(steps >= 3, "{steps} steps");
        let (rows, blocks) = reports_rows(store.connection());
        assert_eq!(rows, 12, "only router c's newest hour stays rows");
        assert!(blocks >= 2 * groups as i64, "{blocks}");
        // The sequence runs came back with the blocks.
        let runs: i64 = store
            .connection()
            .query_row(
                "SELECT count(DISTINCT hour_ms) FROM report_seq_runs",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(runs, 4);
    }

    #[test]
    fn sealing_is_bounded_per_step_and_resumes() {
        let (_dir, mut store, _) = filled();
        let now = T0 + 6 * 3_600_000;
        let mut steps = 0;
        let mut groups = 0;
        loop {
            let s = store.seal_step(now).unwrap();
            assert!(s.groups <= SEAL_GROUPS_PER_STEP as u64);
            groups += s.groups;
            steps += 1;
            if !s.more {
                break;
            }
        }
        assert_eq!(groups, 9);
        assert!(steps >= 2);
        // The work list is built once per hour: a step in the same hour finds nothing new.
        assert_eq!(store.seal_step(now).unwrap(), SealStats::default());
    }

    /// The database writer seals a database's old hours by itself (as after an upgrade), in
    /// steps between (and without) batches.
    #[test]
    fn the_writer_seals_old_hours_lazily() {
        use crate::ingest::writer::{Writer, WriterConfig};
        let (dir, mut store) = open_temp();
        let id = enrolled_router(&mut store, "w").id;
        let now = crate::clock::now_ms();
        for i in 0..72i64 {
            let ts = now - 6 * 3_600_000 + i * STEP;
            let r = rich_report([3; 16], i as u64 + 1, ts as u64, i as u64 + 1);
            store
                .ingest(&[IngestItem {
                    router_id: id,
                    received_at_ms: ts,
                    report: &r,
                }])
                .unwrap();
        }
        let cfg = WriterConfig::new(
            16,
            Duration::from_millis(5),
            Retention::default(),
            Duration::from_secs(3600),
        );
        let writer = Writer::spawn(store, cfg).unwrap();
        let reader = Connection::open(dir.path().join("routerstats.db")).unwrap();
        let sealable = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT count(*) FROM station_samples WHERE ts_ms < ?1",
                [hot_start(crate::clock::now_ms())],
                |r| r.get(0),
            )
            .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sealable(&reader) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(sealable(&reader), 0, "old hours still rows");
        let blocks: i64 = reader
            .query_row("SELECT count(*) FROM raw_blocks WHERE tbl = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(blocks >= 3, "{blocks}");
        writer.join(Duration::from_secs(5));
    }

    /// The head of a split block ends where its overflow pages are full, whatever the record's
    /// exact overhead; a tail record and a block stored whole stay in their leaf page.
    #[test]
    fn block_heads_fill_their_overflow_pages() {
        for page in [1024usize, 4096, 65536] {
            let usable = page;
            let max_local = (usable - 12) * 64 / 255 - 23;
            let min_local = (usable - 12) * 32 / 255 - 23;
            assert!(tail_chunk(page) + 2 * BLOCK_RECORD_OVERHEAD <= max_local);
            for len in (0..300_000).step_by(97) {
                let head = head_len(len, page);
                assert!(head <= len);
                if len + BLOCK_RECORD_OVERHEAD <= max_local {
                    assert_eq!(head, len);
                    continue;
                }
                // Any record overhead from 8 to 40 bytes: SQLite keeps the rest beyond whole
                // overflow pages in the leaf (no partly used overflow page).
                for ovh in 8..=40 {
                    let p = head + ovh;
                    if p > max_local {
                        let k = min_local + (p - min_local) % (usable - 4);
                        assert!(k <= max_local, "page {page} len {len} ovh {ovh}");
                    }
                }
                // The tail is less than an overflow page plus a leaf's worth.
                assert!(len - head < usable + max_local, "page {page} len {len}");
            }
        }
    }

    /// A large block is stored as a head and tail records, read back whole, replaced by a
    /// smaller one without stale tails, and deleted with its tails by retention; the head's
    /// overflow pages are full (dbstat).
    #[test]
    fn split_blocks_read_back_whole_and_leave_no_partial_overflow_page() {
        let (_dir, mut store) = open_temp();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let conn = store.connection();
        let sizes = [100usize, 1_500, 2_900, 4_700, 9_000, 34_567];
        let blobs: Vec<Vec<u8>> = sizes.iter().map(|&n| bytes(n)).collect();
        for (i, b) in blobs.iter().enumerate() {
            write_block(conn, 7, 1, i as i64 * HOUR_MS, 1, b).unwrap();
        }
        for (i, b) in blobs.iter().enumerate() {
            assert_eq!(
                read_block(conn, 7, 1, i as i64 * HOUR_MS).unwrap().as_ref(),
                Some(b)
            );
        }
        assert_eq!(read_block(conn, 7, 1, 99 * HOUR_MS).unwrap(), None);
        let tails: i64 = conn
            .query_row("SELECT count(*) FROM raw_block_tails", [], |r| r.get(0))
            .unwrap();
        assert!(tails >= 5, "{tails}");
        let (unused, pages): (i64, i64) = conn
            .query_row(
                "SELECT coalesce(sum(unused), 0), count(*) FROM dbstat WHERE name = 'raw_blocks' AND pagetype = 'overflow'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(pages >= 8, "{pages}");
        assert_eq!(unused, 0, "partly used overflow pages");
        // Replaced by a small block: its old tails go.
        write_block(conn, 7, 1, 5 * HOUR_MS, 1, &blobs[0]).unwrap();
        assert_eq!(
            read_block(conn, 7, 1, 5 * HOUR_MS).unwrap().as_ref(),
            Some(&blobs[0])
        );
        // Retention deletes blocks and tails of the hours before the cut.
        store.delete_old_blocks(7, 3 * HOUR_MS).unwrap();
        let conn = store.connection();
        let left: Vec<i64> = conn
            .prepare("SELECT DISTINCT hour_ms FROM raw_block_tails ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(left.iter().all(|&h| h >= 3 * HOUR_MS), "{left:?}");
        assert_eq!(
            read_block(conn, 7, 1, 4 * HOUR_MS).unwrap().as_ref(),
            Some(&blobs[4])
        );
        // A tail that is not there any more is a decode error of the block, not a panic.
        conn.execute(
            "DELETE FROM raw_block_tails WHERE hour_ms = ?1",
            [4 * HOUR_MS],
        )
        .unwrap();
        let cut = read_block(conn, 7, 1, 4 * HOUR_MS).unwrap().unwrap();
        assert!(cut.len() < blobs[4].len());
    }
}
