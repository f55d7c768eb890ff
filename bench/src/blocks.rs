//! What a block layout of the raw samples would store: a measurement, not the store.
//!
//! Reads the raw rows the collector stored (every column of `reports` and the four sample
//! tables), cuts them per router, table and hour, and encodes each block column by column:
//! rows in series order (the table's key columns, then time), per value a type tag, integers as
//! the zigzag varint of their difference from a prediction (the previous row's value of the same
//! series; for a `*_delta` column, the difference of the series' counter; for a `*_bps` column,
//! the rate of the stored delta over the series' interval, the collector's own formula), text as
//! an index into the block's dictionary, reals as their 8 bytes. The block is then
//! deflate-compressed (`flate2`, level 9) and written as one BLOB row per block into a
//! `WITHOUT ROWID` table `(router_id, tbl, hour_ms)` of a scratch SQLite database, whose pages
//! `dbstat` counts: the bytes such a layout would really take in SQLite, for the same values.
//! Every value is decoded back and compared, so the figure is of a lossless encoding.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::Connection;

/// A raw table and the columns naming one series in it (besides `router_id`).
pub const TABLES: &[(&str, &[&str])] = &[
    ("reports", &[]),
    ("interface_samples", &["name"]),
    ("station_samples", &["iface", "mac"]),
    ("wg_peer_samples", &["iface", "public_key"]),
    (
        "ovpn_client_samples",
        &["instance", "common_name", "real_address"],
    ),
    ("station_link_samples", &["iface", "mac", "link_id"]),
];

const HOUR_MS: i64 = 3_600_000;

/// Bytes of the block layout.
#[derive(Debug, Clone, Default)]
pub struct BlockFigures {
    pub blocks: u64,
    /// Encoded bytes before compression, after, and SQLite pages of the block table.
    pub encoded: u64,
    pub compressed: u64,
    pub pages: u64,
    /// Per table: compressed bytes.
    pub per_table: Vec<(String, u64)>,
    pub values: u64,
}

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("block of {table} did not decode to its rows")]
    RoundTrip { table: String },
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(inp: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *inp.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// How column `i` is predicted from the row before it in the same series.
#[derive(Debug, Clone, Copy)]
enum Predict {
    /// The previous value of the column.
    Previous,
    /// Counter column `c`'s difference (a `*_delta` column).
    CounterDiff(usize),
    /// The rate of delta column `d` over the time column's difference (a `*_bps` column).
    Rate(usize),
}

fn predictors(cols: &[String]) -> Vec<Predict> {
    let find = |n: &str| cols.iter().position(|c| c == n);
    cols.iter()
        .map(|c| {
            if let Some(dir) = c.strip_suffix("_delta") {
                if let Some(i) = find(&format!("{dir}_bytes")) {
                    return Predict::CounterDiff(i);
                }
            }
            if let Some(dir) = c.strip_suffix("_bps") {
                if let Some(i) = find(&format!("{dir}_delta")) {
                    return Predict::Rate(i);
                }
            }
            Predict::Previous
        })
        .collect()
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// The predicted integer of `col` in `row` given the series' previous row.
fn predicted(p: Predict, col: usize, row: &[Value], prev: Option<&[Value]>, ts: usize) -> i64 {
    let Some(prev) = prev else { return 0 };
    match p {
        Predict::Previous => int(&prev[col]).unwrap_or(0),
        Predict::CounterDiff(c) => match (int(&row[c]), int(&prev[c])) {
            (Some(a), Some(b)) => a.wrapping_sub(b),
            _ => 0,
        },
        Predict::Rate(d) => match (int(&row[d]), int(&row[ts]), int(&prev[ts])) {
            (Some(delta), Some(t1), Some(t0)) if t1 > t0 && delta >= 0 => {
                let r = (delta as u128 * 8000) / (t1 - t0) as u128;
                i64::try_from(r).unwrap_or(i64::MAX)
            }
            _ => 0,
        },
    }
}

/// Encodes `rows` (series order) column by column.
fn encode(rows: &[Vec<Value>], series: &[bool], pred: &[Predict], ts: usize) -> Vec<u8> {
    let ncols = pred.len();
    let mut out = Vec::new();
    put_varint(&mut out, rows.len() as u64);
    // series starts as a bitmap-ish byte stream
    for &s in series {
        out.push(u8::from(s));
    }
    for (col, &p) in pred.iter().enumerate().take(ncols) {
        let mut tags = Vec::with_capacity(rows.len());
        let mut vals = Vec::new();
        let mut dict: HashMap<&[u8], u64> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let prev = if series[i] {
                None
            } else {
                Some(rows[i - 1].as_slice())
            };
            match &row[col] {
                Value::Null => tags.push(0),
                Value::Integer(v) => {
                    tags.push(1);
                    put_varint(
                        &mut vals,
                        zigzag(v.wrapping_sub(predicted(p, col, row, prev, ts))),
                    );
                }
                Value::Real(f) => {
                    tags.push(2);
                    vals.extend_from_slice(&f.to_le_bytes());
                }
                Value::Text(t) => {
                    tags.push(3);
                    text_value(&mut vals, &mut dict, t.as_bytes());
                }
                Value::Blob(b) => {
                    tags.push(4);
                    text_value(&mut vals, &mut dict, b);
                }
            }
        }
        out.extend_from_slice(&tags);
        put_varint(&mut out, vals.len() as u64);
        out.extend_from_slice(&vals);
    }
    out
}

fn text_value<'a>(vals: &mut Vec<u8>, dict: &mut HashMap<&'a [u8], u64>, t: &'a [u8]) {
    let n = dict.len() as u64;
    match dict.get(t) {
        Some(&i) => put_varint(vals, i + 1),
        None => {
            dict.insert(t, n);
            put_varint(vals, 0);
            put_varint(vals, t.len() as u64);
            vals.extend_from_slice(t);
        }
    }
}

/// Decodes what [`encode`] wrote (to prove the encoding loses nothing).
fn decode(buf: &[u8], ncols: usize, pred: &[Predict], ts: usize) -> Option<Vec<Vec<Value>>> {
    let mut pos = 0;
    let n = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
    let series: Vec<bool> = buf.get(pos..pos + n)?.iter().map(|&b| b == 1).collect();
    pos += n;
    let mut rows = vec![vec![Value::Null; ncols]; n];
    // Columns are decoded in order; predictions read columns of the same row, so decode the
    // columns they depend on first: counters and deltas come before their delta/rate columns in
    // every table (checked by the round trip).
    for col in 0..ncols {
        let tags = buf.get(pos..pos + n)?.to_vec();
        pos += n;
        let len = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
        let vals = buf.get(pos..pos + len)?;
        pos += len;
        let mut vp = 0;
        let mut dict: Vec<Vec<u8>> = Vec::new();
        for i in 0..n {
            let v = match tags[i] {
                0 => Value::Null,
                1 => {
                    let r = unzigzag(get_varint(vals, &mut vp)?);
                    let (head, tail) = rows.split_at_mut(i);
                    let row = &tail[0];
                    let prev = if series[i] {
                        None
                    } else {
                        head.last().map(Vec::as_slice)
                    };
                    Value::Integer(r.wrapping_add(predicted(pred[col], col, row, prev, ts)))
                }
                2 => {
                    let b: [u8; 8] = vals.get(vp..vp + 8)?.try_into().ok()?;
                    vp += 8;
                    Value::Real(f64::from_le_bytes(b))
                }
                t @ (3 | 4) => {
                    let k = get_varint(vals, &mut vp)?;
                    let bytes = if k == 0 {
                        let l = usize::try_from(get_varint(vals, &mut vp)?).ok()?;
                        let b = vals.get(vp..vp + l)?.to_vec();
                        vp += l;
                        dict.push(b.clone());
                        b
                    } else {
                        dict.get(usize::try_from(k - 1).ok()?)?.clone()
                    };
                    if t == 3 {
                        Value::Text(String::from_utf8(bytes).ok()?)
                    } else {
                        Value::Blob(bytes)
                    }
                }
                _ => return None,
            };
            rows[i][col] = v;
        }
    }
    Some(rows)
}

fn deflate(data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data)?;
    e.finish()
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// Encodes the raw tables of `src` into blocks stored in a scratch database at `scratch`.
pub fn measure(src: &Connection, scratch: &Path) -> Result<BlockFigures, BlockError> {
    let dst = Connection::open(scratch)?;
    dst.execute_batch(
        "CREATE TABLE blocks (router_id INTEGER NOT NULL, tbl INTEGER NOT NULL, hour_ms INTEGER NOT NULL, \
         data BLOB NOT NULL, PRIMARY KEY (router_id, tbl, hour_ms)) WITHOUT ROWID; BEGIN;",
    )?;
    let mut f = BlockFigures::default();
    for (t_no, (table, key)) in TABLES.iter().enumerate() {
        let cols: Vec<String> = src
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        // router_id and the hour are the block's key; every other column is in the block.
        let cols: Vec<String> = cols.into_iter().filter(|c| c != "router_id").collect();
        let ts = cols.iter().position(|c| c == "ts_ms").unwrap_or(0);
        let pred = predictors(&cols);
        let key_idx: Vec<usize> = key
            .iter()
            .filter_map(|k| cols.iter().position(|c| c == k))
            .collect();
        let order: Vec<String> = key
            .iter()
            .map(|k| format!("\"{k}\""))
            .chain(["ts_ms".into()])
            .collect();
        let sql = format!(
            "SELECT router_id, {} FROM \"{table}\" ORDER BY router_id, ts_ms / {HOUR_MS}, {}",
            cols.iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            order.join(", ")
        );
        let mut st = src.prepare(&sql)?;
        let mut rows = st.query([])?;
        let mut cur: Option<(i64, i64)> = None;
        let mut block: Vec<Vec<Value>> = Vec::new();
        let mut compressed_table = 0u64;
        let flush = |id: (i64, i64),
                     block: &mut Vec<Vec<Value>>,
                     f: &mut BlockFigures|
         -> Result<u64, BlockError> {
            let series: Vec<bool> = (0..block.len())
                .map(|i| i == 0 || key_idx.iter().any(|&k| block[i][k] != block[i - 1][k]))
                .collect();
            let enc = encode(block, &series, &pred, ts);
            let z = deflate(&enc)?;
            let back = decode(&inflate(&z)?, cols.len(), &pred, ts);
            if back.as_ref() != Some(block) {
                return Err(BlockError::RoundTrip {
                    table: table.to_string(),
                });
            }
            dst.execute(
                "INSERT INTO blocks VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id.0, t_no as i64, id.1 * HOUR_MS, z],
            )?;
            f.blocks += 1;
            f.encoded += enc.len() as u64;
            f.compressed += z.len() as u64;
            f.values += block
                .iter()
                .map(|r| r.iter().filter(|v| **v != Value::Null).count() as u64 + 1)
                .sum::<u64>();
            block.clear();
            Ok(z.len() as u64)
        };
        while let Some(r) = rows.next()? {
            let router: i64 = r.get(0)?;
            let vals: Vec<Value> = (1..=cols.len())
                .map(|i| r.get(i))
                .collect::<Result<_, _>>()?;
            let hour = int(&vals[ts]).unwrap_or(0).div_euclid(HOUR_MS);
            if cur.is_some_and(|c| c != (router, hour)) {
                if let Some(c) = cur {
                    compressed_table += flush(c, &mut block, &mut f)?;
                }
            }
            cur = Some((router, hour));
            block.push(vals);
        }
        if let (Some(c), false) = (cur, block.is_empty()) {
            compressed_table += flush(c, &mut block, &mut f)?;
        }
        f.per_table.push((table.to_string(), compressed_table));
    }
    dst.execute_batch("COMMIT")?;
    f.pages = dst
        .query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name = 'blocks'",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )?
        .unwrap_or(0) as u64;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 300, -300, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let mut p = 0;
            assert_eq!(unzigzag(get_varint(&b, &mut p).unwrap()), v);
            assert_eq!(p, b.len());
        }
        assert_eq!(get_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn blocks_round_trip_a_stored_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        crate::storage::run(&db, 2, 6).unwrap();
        let src = Connection::open(&db).unwrap();
        let f = measure(&src, &dir.path().join("blocks.db")).unwrap();
        assert!(f.blocks >= 2 * 5, "{f:?}");
        assert!(f.compressed < f.encoded && f.pages > 0, "{f:?}");
    }
}
