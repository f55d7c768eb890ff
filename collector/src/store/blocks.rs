//! The block codec of sealed raw samples: the rows of one router, raw table and hour as one
//! compressed BLOB (see `schema::MIGRATION_9` and [`super::sealed`]).
//!
//! Rows are put in series order (the table's series key columns, then time) and encoded column
//! by column: per value a type tag, integers as the zigzag varint of their difference from a
//! prediction (the previous row's value of the same series; for a `*_delta` column the
//! difference of its counter `*_bytes`; for a `*_bps` column the rate of its delta over the
//! series' interval, the collector's own formula), text and blobs as an index into the block's
//! dictionary, reals as their 8 bytes. The encoded bytes are then compressed (zstd since
//! schema 11, deflate before).
//!
//! Blob layout: a format byte, then the compressed stream ([`FORMAT_ZSTD`]: a zstd frame, what
//! [`BlockColumns::encode`] writes; [`FORMAT_DEFLATE`]: a raw deflate stream, what blocks
//! sealed before schema 11 hold, still decoded) of: varint rows, varint columns, one
//! series-start byte per row, and per column the row tags, a varint length and the column's
//! values. A block stores the columns the table had when it was sealed; a
//! block with fewer columns than the table (a column added later) decodes with NULL in the
//! missing trailing columns. Decoding never panics: a corrupt blob is a [`BlockError`].

use std::collections::HashMap;
use std::io::{Read, Write};

use rusqlite::types::Value;

/// Format byte of a deflate-compressed block (blocks sealed before schema 11).
pub const FORMAT_DEFLATE: u8 = 1;

/// Format byte of a zstd-compressed block (one zstd frame, no dictionary).
pub const FORMAT_ZSTD: u8 = 2;

/// zstd level of new blocks. Sealing is off the acknowledgement path and a block is written
/// once and read many times; on the blocks of `bench-storage` level 15 writes 3% fewer bytes
/// than deflate level 6 (levels 3-12 about the same as deflate), level 19 2% fewer than 15 at
/// 2.5x its CPU (see BENCHMARKS.md, stored bytes).
const ZSTD_LEVEL: i32 = 15;

/// Largest decoded block accepted (a guard against a corrupt or hostile blob).
const MAX_DECODED: u64 = 256 * 1024 * 1024;

/// Why a block could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block is empty")]
    Empty,
    #[error("unknown block format {0}")]
    Format(u8),
    #[error("block does not decompress: {0}")]
    Decompress(std::io::Error),
    #[error("block compression failed: {0}")]
    Compress(std::io::Error),
    #[error("block is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("block has {found} columns, the table only {table}")]
    Columns { found: usize, table: usize },
    #[error("row has {found} values, the table {table} columns")]
    RowWidth { found: usize, table: usize },
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

fn get_varint(inp: &[u8], pos: &mut usize) -> Result<u64, BlockError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *inp
            .get(*pos)
            .ok_or(BlockError::Corrupt("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(BlockError::Corrupt("overlong varint"))
}

fn get_len(inp: &[u8], pos: &mut usize) -> Result<usize, BlockError> {
    let v = get_varint(inp, pos)?;
    usize::try_from(v)
        .ok()
        .filter(|&n| n <= inp.len())
        .ok_or(BlockError::Corrupt("length beyond the block"))
}

fn take<'a>(inp: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], BlockError> {
    let end = pos
        .checked_add(n)
        .ok_or(BlockError::Corrupt("length overflow"))?;
    let s = inp
        .get(*pos..end)
        .ok_or(BlockError::Corrupt("truncated block"))?;
    *pos = end;
    Ok(s)
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

/// Predictors of `cols` (`ts`: the time column); a column only depends on columns before it
/// (decoding order).
fn predictors(cols: &[String], ts: usize) -> Vec<Predict> {
    let find = |n: &str, before: usize| cols[..before].iter().position(|c| c == n);
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            if let Some(dir) = c.strip_suffix("_delta") {
                if let Some(j) = find(&format!("{dir}_bytes"), i) {
                    return Predict::CounterDiff(j);
                }
            }
            if let Some(dir) = c.strip_suffix("_bps") {
                if let Some(j) = find(&format!("{dir}_delta"), i).filter(|_| ts < i) {
                    return Predict::Rate(j);
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
                let r = (delta as u128 * 8000) / (t1.abs_diff(t0)) as u128;
                i64::try_from(r).unwrap_or(i64::MAX)
            }
            _ => 0,
        },
    }
}

/// The columns of one raw table as a block stores them: every column but `router_id`, with
/// the series key and the time column located.
#[derive(Debug, Clone)]
pub struct BlockColumns {
    names: Vec<String>,
    pred: Vec<Predict>,
    series: Vec<usize>,
    ts: usize,
}

impl BlockColumns {
    /// `names`: the stored columns in order (not `router_id`); `series`: the columns naming one
    /// series (besides the router). `ts_ms` must be among `names`.
    pub fn new(names: Vec<String>, series: &[&str]) -> Option<BlockColumns> {
        Self::with_time(names, "ts_ms", series)
    }

    /// [`BlockColumns::new`] with another time column (`bucket_start_ms` of a rollup).
    pub fn with_time(names: Vec<String>, time: &str, series: &[&str]) -> Option<BlockColumns> {
        let ts = names.iter().position(|c| c == time)?;
        let series = series
            .iter()
            .map(|k| names.iter().position(|c| c == k))
            .collect::<Option<Vec<_>>>()?;
        Some(BlockColumns {
            pred: predictors(&names, ts),
            names,
            series,
            ts,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Index of the time column.
    pub fn ts(&self) -> usize {
        self.ts
    }

    /// Sorts rows into series order (series key, then time).
    fn sort(&self, rows: &mut [Vec<Value>]) {
        rows.sort_by(|a, b| {
            for &k in self.series.iter().chain(std::iter::once(&self.ts)) {
                let o = cmp_value(&a[k], &b[k]);
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }

    /// Encodes and compresses `rows` (any order; each row has every column of `names`).
    pub fn encode(&self, mut rows: Vec<Vec<Value>>) -> Result<Vec<u8>, BlockError> {
        if let Some(r) = rows.iter().find(|r| r.len() != self.names.len()) {
            return Err(BlockError::RowWidth {
                found: r.len(),
                table: self.names.len(),
            });
        }
        self.sort(&mut rows);
        let raw = self.encode_sorted(&rows);
        compress(FORMAT_ZSTD, &raw)
    }

    fn encode_sorted(&self, rows: &[Vec<Value>]) -> Vec<u8> {
        let series: Vec<bool> = (0..rows.len())
            .map(|i| i == 0 || self.series.iter().any(|&k| rows[i][k] != rows[i - 1][k]))
            .collect();
        let mut out = Vec::new();
        put_varint(&mut out, rows.len() as u64);
        put_varint(&mut out, self.names.len() as u64);
        out.extend(series.iter().map(|&s| u8::from(s)));
        for (col, &p) in self.pred.iter().enumerate() {
            let mut tags = Vec::with_capacity(rows.len());
            let mut vals = Vec::new();
            let mut dict: HashMap<&[u8], u64> = HashMap::new();
            for (i, row) in rows.iter().enumerate() {
                let prev = (!series[i]).then(|| rows[i - 1].as_slice());
                match &row[col] {
                    Value::Null => tags.push(0),
                    Value::Integer(v) => {
                        tags.push(1);
                        let d = v.wrapping_sub(predicted(p, col, row, prev, self.ts));
                        put_varint(&mut vals, zigzag(d));
                    }
                    Value::Real(f) => {
                        tags.push(2);
                        vals.extend_from_slice(&f.to_le_bytes());
                    }
                    Value::Text(t) => {
                        tags.push(3);
                        dict_value(&mut vals, &mut dict, t.as_bytes());
                    }
                    Value::Blob(b) => {
                        tags.push(4);
                        dict_value(&mut vals, &mut dict, b);
                    }
                }
            }
            out.extend_from_slice(&tags);
            put_varint(&mut out, vals.len() as u64);
            out.extend_from_slice(&vals);
        }
        out
    }

    /// Decodes a block into rows (series order), each with every column of `names` (NULL in
    /// columns the block does not have).
    pub fn decode(&self, blob: &[u8]) -> Result<Vec<Vec<Value>>, BlockError> {
        self.decode_raw(&decompress(blob, MAX_DECODED)?)
    }

    fn decode_raw(&self, buf: &[u8]) -> Result<Vec<Vec<Value>>, BlockError> {
        let mut pos = 0;
        let n = get_len(buf, &mut pos)?;
        let ncols = usize::try_from(get_varint(buf, &mut pos)?).unwrap_or(usize::MAX);
        if ncols > self.names.len() {
            return Err(BlockError::Columns {
                found: ncols,
                table: self.names.len(),
            });
        }
        if ncols <= self.ts {
            return Err(BlockError::Corrupt("block without its time column"));
        }
        if n.saturating_mul(ncols.saturating_add(1)) > buf.len() {
            return Err(BlockError::Corrupt("more rows than the block has bytes"));
        }
        let series: Vec<bool> = take(buf, &mut pos, n)?.iter().map(|&b| b == 1).collect();
        if series.first() == Some(&false) {
            return Err(BlockError::Corrupt("first row continues a series"));
        }
        let mut rows = vec![vec![Value::Null; self.names.len()]; n];
        for col in 0..ncols {
            let tags = take(buf, &mut pos, n)?;
            let len = get_len(buf, &mut pos)?;
            let vals = take(buf, &mut pos, len)?;
            let mut vp = 0;
            let mut dict: Vec<&[u8]> = Vec::new();
            for i in 0..n {
                let v = match tags[i] {
                    0 => Value::Null,
                    1 => {
                        let r = unzigzag(get_varint(vals, &mut vp)?);
                        let (head, tail) = rows.split_at(i);
                        let prev = (!series[i]).then(|| head[i - 1].as_slice());
                        let p = predicted(self.pred[col], col, &tail[0], prev, self.ts);
                        Value::Integer(r.wrapping_add(p))
                    }
                    2 => {
                        let b = take(vals, &mut vp, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        Value::Real(f64::from_le_bytes(a))
                    }
                    t @ (3 | 4) => {
                        let k = get_varint(vals, &mut vp)?;
                        let bytes = if k == 0 {
                            let l = get_len(vals, &mut vp)?;
                            let b = take(vals, &mut vp, l)?;
                            dict.push(b);
                            b
                        } else {
                            let idx = usize::try_from(k - 1).unwrap_or(usize::MAX);
                            dict.get(idx)
                                .copied()
                                .ok_or(BlockError::Corrupt("dictionary index"))?
                        };
                        if t == 3 {
                            Value::Text(
                                String::from_utf8(bytes.to_vec())
                                    .map_err(|_| BlockError::Corrupt("text is not UTF-8"))?,
                            )
                        } else {
                            Value::Blob(bytes.to_vec())
                        }
                    }
                    _ => return Err(BlockError::Corrupt("unknown value tag")),
                };
                rows[i][col] = v;
            }
            if vp != vals.len() {
                return Err(BlockError::Corrupt("trailing column bytes"));
            }
        }
        if pos != buf.len() {
            return Err(BlockError::Corrupt("trailing block bytes"));
        }
        Ok(rows)
    }
}

/// `raw` compressed in `format`, behind its format byte.
fn compress(format: u8, raw: &[u8]) -> Result<Vec<u8>, BlockError> {
    match format {
        FORMAT_DEFLATE => {
            let mut e = flate2::write::DeflateEncoder::new(
                vec![FORMAT_DEFLATE],
                flate2::Compression::new(6),
            );
            e.write_all(raw).map_err(BlockError::Compress)?;
            e.finish().map_err(BlockError::Compress)
        }
        FORMAT_ZSTD => {
            let mut out = vec![FORMAT_ZSTD];
            let mut e = zstd::stream::write::Encoder::new(&mut out, ZSTD_LEVEL)
                .map_err(BlockError::Compress)?;
            // The decoded size in the frame header (what a reader could allocate up front).
            e.set_pledged_src_size(Some(raw.len() as u64))
                .map_err(BlockError::Compress)?;
            e.include_contentsize(true).map_err(BlockError::Compress)?;
            e.include_checksum(false).map_err(BlockError::Compress)?;
            e.write_all(raw).map_err(BlockError::Compress)?;
            e.finish().map_err(BlockError::Compress)?;
            Ok(out)
        }
        other => Err(BlockError::Format(other)),
    }
}

/// The encoded bytes of a blob of any known format; more than `max` of them is an error.
fn decompress(blob: &[u8], max: u64) -> Result<Vec<u8>, BlockError> {
    let (&format, body) = blob.split_first().ok_or(BlockError::Empty)?;
    let mut raw = Vec::new();
    match format {
        FORMAT_DEFLATE => flate2::read::DeflateDecoder::new(body)
            .take(max.saturating_add(1))
            .read_to_end(&mut raw),
        FORMAT_ZSTD => zstd::stream::read::Decoder::with_buffer(body)
            .map_err(BlockError::Decompress)?
            .single_frame()
            .take(max.saturating_add(1))
            .read_to_end(&mut raw),
        other => return Err(BlockError::Format(other)),
    }
    .map_err(BlockError::Decompress)?;
    if raw.len() as u64 > max {
        return Err(BlockError::Corrupt("decodes to more than a block may hold"));
    }
    Ok(raw)
}

fn dict_value<'a>(vals: &mut Vec<u8>, dict: &mut HashMap<&'a [u8], u64>, t: &'a [u8]) {
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

/// SQLite's ordering of values (NULL < numbers < text < blob; text compared as bytes, which is
/// the BINARY collation of every key column).
pub fn cmp_value(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => {
            (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal)
        }
        (Value::Real(x), Value::Integer(y)) => {
            x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal)
        }
        (Value::Real(x), Value::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> BlockColumns {
        let names = [
            "ts_ms", "iface", "mac", "rx_bytes", "rx_delta", "rx_bps", "load", "ssid", "blob",
        ]
        .map(String::from)
        .to_vec();
        BlockColumns::new(names, &["iface", "mac"]).unwrap()
    }

    fn rows() -> Vec<Vec<Value>> {
        let mut rows = Vec::new();
        for (m, mac) in ["aa:bb", "cc:dd", "ee:ff"].iter().enumerate() {
            let mut bytes = 1_000i64 * m as i64;
            for t in 0..40i64 {
                let delta = if t == 0 {
                    None
                } else {
                    Some(100 + t * 7 + m as i64)
                };
                bytes += delta.unwrap_or(0);
                rows.push(vec![
                    Value::Integer(1_700_000_000_000 + t * 30_000),
                    Value::Text("phy0-ap0".into()),
                    Value::Text(mac.to_string()),
                    Value::Integer(bytes),
                    delta.map_or(Value::Null, Value::Integer),
                    delta.map_or(Value::Null, |d| Value::Integer(d * 8000 / 30_000)),
                    Value::Real(0.25 * t as f64),
                    if t % 3 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("ssid-{}", t % 2))
                    },
                    Value::Blob(vec![t as u8, 0xff]),
                ]);
            }
        }
        rows.push(vec![
            Value::Integer(i64::MIN),
            Value::Text("x".into()),
            Value::Text("".into()),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Integer(-5),
            Value::Real(f64::NAN),
            Value::Text("é".into()),
            Value::Null,
        ]);
        rows
    }

    fn same(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
        // NaN != NaN: compare bit patterns of reals.
        let key = |v: &Value| match v {
            Value::Real(f) => format!("R{}", f.to_bits()),
            o => format!("{o:?}"),
        };
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.iter().map(key).eq(y.iter().map(key)))
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 300, -300, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let mut p = 0;
            assert_eq!(unzigzag(get_varint(&b, &mut p).unwrap()), v);
            assert_eq!(p, b.len());
        }
        assert!(get_varint(&[0x80], &mut 0).is_err());
        assert!(get_varint(&[0xff; 11], &mut 0).is_err());
    }

    #[test]
    fn blocks_round_trip_in_series_order() {
        let c = cols();
        let mut want = rows();
        want.reverse();
        let blob = c.encode(want.clone()).unwrap();
        let got = c.decode(&blob).unwrap();
        c.sort(&mut want);
        assert!(same(&got, &want), "{got:?}");
        // Predicted counters compress: far fewer bytes than values.
        assert!(blob.len() < 121 * 9, "{}", blob.len());
        assert!(c
            .encode(vec![])
            .is_ok_and(|b| c.decode(&b).unwrap().is_empty()));
    }

    #[test]
    fn new_blocks_are_zstd_and_deflate_blocks_still_decode() {
        let c = cols();
        let mut want = rows();
        c.sort(&mut want);
        let blob = c.encode(rows()).unwrap();
        assert_eq!(blob[0], FORMAT_ZSTD);
        // A block sealed before schema 11: the same encoding, deflated.
        let old = compress(FORMAT_DEFLATE, &c.encode_sorted(&want)).unwrap();
        assert_eq!(old[0], FORMAT_DEFLATE);
        assert!(same(&c.decode(&old).unwrap(), &want));
        assert!(same(&c.decode(&blob).unwrap(), &want));
        assert!(matches!(compress(7, b"x"), Err(BlockError::Format(7))));
    }

    #[test]
    fn time_after_the_rate_columns_still_round_trips() {
        let names = ["rx_bytes", "rx_delta", "rx_bps", "ts_ms", "mac"]
            .map(String::from)
            .to_vec();
        let c = BlockColumns::new(names, &["mac"]).unwrap();
        let rows: Vec<Vec<Value>> = (0..10i64)
            .map(|t| {
                vec![
                    Value::Integer(t * 1000),
                    Value::Integer(1000),
                    Value::Integer(266),
                    Value::Integer(t * 30_000),
                    Value::Text("m".into()),
                ]
            })
            .collect();
        assert_eq!(c.decode(&c.encode(rows.clone()).unwrap()).unwrap(), rows);
    }

    #[test]
    fn a_block_of_fewer_columns_decodes_with_nulls() {
        let c = cols();
        let narrow = BlockColumns::new(c.names()[..4].to_vec(), &["iface", "mac"]).unwrap();
        let rows: Vec<Vec<Value>> = rows().into_iter().map(|r| r[..4].to_vec()).collect();
        let got = c.decode(&narrow.encode(rows).unwrap()).unwrap();
        assert!(got
            .iter()
            .all(|r| r.len() == 9 && r[4..].iter().all(|v| *v == Value::Null)));
        assert!(matches!(
            narrow.decode(&c.encode(vec![]).unwrap()),
            Err(BlockError::Columns { found: 9, table: 4 })
        ));
        assert!(matches!(
            c.encode(vec![vec![Value::Null]]),
            Err(BlockError::RowWidth { .. })
        ));
    }

    #[test]
    fn garbage_and_truncated_blocks_are_errors_not_panics() {
        let c = cols();
        assert!(matches!(c.decode(&[]), Err(BlockError::Empty)));
        assert!(matches!(c.decode(&[9, 1, 2]), Err(BlockError::Format(9))));
        let mut sorted = rows();
        c.sort(&mut sorted);
        let deflated = compress(FORMAT_DEFLATE, &c.encode_sorted(&sorted)).unwrap();
        for blob in [deflated, c.encode(rows()).unwrap()] {
            for cut in [1, 2, 5, blob.len() / 2, blob.len() - 1] {
                assert!(
                    c.decode(&blob[..cut]).is_err(),
                    "cut at {cut} of {}",
                    blob[0]
                );
            }
            // Every single-byte change decodes to an error or to some rows, never a panic.
            for i in 1..blob.len() {
                let mut b = blob.clone();
                b[i] ^= 0x5a;
                let _ = c.decode(&b);
            }
        }
        // Valid deflate and zstd streams around garbage payloads, and garbage right after the
        // zstd format byte.
        let mut seed = 0x1234_5678u64;
        for len in 0..300 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let mut e = flate2::write::DeflateEncoder::new(
                vec![FORMAT_DEFLATE],
                flate2::Compression::fast(),
            );
            e.write_all(&payload).unwrap();
            let _ = c.decode(&e.finish().unwrap());
            let _ = c.decode(&compress(FORMAT_ZSTD, &payload).unwrap());
            let mut raw = vec![FORMAT_ZSTD];
            raw.extend_from_slice(&payload);
            assert!(c.decode(&raw).is_err());
        }
        // A stream that decodes to more than a block may hold is an error.
        let zeros = vec![0u8; 5_000];
        for format in [FORMAT_ZSTD, FORMAT_DEFLATE] {
            let blob = compress(format, &zeros).unwrap();
            assert!(matches!(
                decompress(&blob, 4_999),
                Err(BlockError::Corrupt(_))
            ));
            assert_eq!(decompress(&blob, 5_000).unwrap(), zeros);
        }
        // A length far beyond the block is refused before allocating.
        let mut raw = Vec::new();
        put_varint(&mut raw, u64::MAX / 2);
        assert!(c.decode_raw(&raw).is_err());
    }
}
