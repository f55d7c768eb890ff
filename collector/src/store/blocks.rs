//! The block codec of sealed raw samples: the rows of one router, raw table and hour as one
//! compressed BLOB (see `schema::MIGRATION_9` and [`super::sealed`]).
//!
//! Rows are put in series order (the table's series key columns, then time) and encoded column
//! by column. Integers are stored as their difference from a prediction: the table's (the
//! previous row's value of the same series; for a `*_delta` column the difference of its
//! counter `*_bytes`; for a `*_bps` column the rate of its delta over the series' interval,
//! the collector's own formula) and, since schema 18, per column whichever of that, no
//! prediction (a gauge) or the linear extrapolation of the two previous values (a constant
//! step) needs the fewest bits; text and blobs are an index into the column's dictionary,
//! reals their 8 bytes.
//!
//! Blob layout: a format byte, then
//! - [`FORMAT_BITS`] (schema 18, what [`BlockColumns::encode`] writes): a varint length and a
//!   zstd frame of varint rows, varint columns, one series-start byte per row and per column
//!   its tag (one byte when every row has the same type, else [`MIXED_TAGS`] and one per row),
//!   for integers a flags byte (predictor, unsigned, form) and either a varint length and the
//!   residuals as varints or one bit length per residual, then a varint length and the
//!   column's other values; after the frame, raw, the bits below the leading one of the
//!   residuals in bit-length form (near random: compressing them would only blur the frame's
//!   statistics). A series' first value is predicted by the first value of the series before
//!   it (the same time, the same key prefix).
//! - [`FORMAT_ZSTD`] (schema 11-15) or [`FORMAT_DEFLATE`] (before): a zstd frame or a raw
//!   deflate stream of varint rows, varint columns, one series-start byte per row, and per
//!   column the row tags, a varint length and the column's values (integers as the zigzag
//!   varint of the residual from the table's prediction). Still decoded; never written.
//!
//! A block stores the columns the table had when it was sealed; a block with fewer columns
//! than the table (a column added later) decodes with NULL in the missing trailing columns.
//! Decoding never panics: a corrupt blob is a [`BlockError`].

use std::collections::HashMap;
use std::io::{Read, Write};

use rusqlite::types::Value;

/// Format byte of a deflate-compressed block (blocks sealed before schema 11).
pub const FORMAT_DEFLATE: u8 = 1;

/// Format byte of a zstd-compressed block (one zstd frame, no dictionary).
pub const FORMAT_ZSTD: u8 = 2;

/// Format byte of a block of schema 18: a varint length, a zstd frame of the block's structure
/// (row count, series starts, per column its tags (once when constant), its predictor and its
/// integer residuals as varints or as bit lengths, then its text/blob/real values), then the
/// bits below the leading one of the residuals in bit-length form, packed raw (they are close
/// to random and would only blur the frame's literal statistics). See the module doc.
pub const FORMAT_BITS: u8 = 3;

/// Tag byte of a column whose values do not all have the same type (the row tags follow).
const MIXED_TAGS: u8 = 0xff;

/// Predictors a column of a [`FORMAT_BITS`] block may pick (the one with the fewest bits):
/// the table's ([`Predict`]), none (the value itself), or the linear extrapolation of the
/// column's two previous values in the series (constant steps such as time and uptime).
const PREDICT_TABLE: u8 = 0;
const PREDICT_NONE: u8 = 1;
const PREDICT_LINEAR: u8 = 2;
/// Flag of the predictor byte: residuals stored as they are (none negative), not zigzagged
/// (but for the first row of each series, predicted from the series before).
const INT_UNSIGNED: u8 = 0x10;
/// Flag of the predictor byte: residuals as bit lengths plus raw low bits (else varints).
const INT_BITS: u8 = 0x20;

/// zstd level of new blocks. Sealing is off the acknowledgement path and a block is written
/// once and read many times; on the blocks of `bench-storage` level 15 writes 3% fewer bytes
/// than deflate level 6 (levels 3-12 about the same as deflate), level 19 2% fewer than 15 at
/// 2.5x its CPU (see BENCHMARKS.md, stored bytes). In [`FORMAT_BITS`] the incompressible low
/// bits stay out of the frame, and level 19 saves 0.1% of the blob bytes over 15.
const ZSTD_LEVEL: i32 = 15;

/// Largest decoded block accepted (a guard against a corrupt or hostile blob).
const MAX_DECODED: u64 = 256 * 1024 * 1024;

/// Most values (rows x table columns) a [`FORMAT_BITS`] block may decode to: a constant column
/// costs a few bytes whatever the row count, so the decoded size alone does not bound the
/// rows. An hour of 1,000 stations at 10 s is 360,000 rows of 30 columns: 11 million values.
const MAX_CELLS: usize = 1 << 25;

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
        self.encode_bits(&rows, ZSTD_LEVEL)
    }

    /// The encoding of [`FORMAT_DEFLATE`] and [`FORMAT_ZSTD`] blocks (before schema 18), kept
    /// for the tests that prove such blocks still decode.
    #[cfg(test)]
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

    /// Whether row `i` starts a series (the first row, or series key columns differ from the
    /// row before).
    fn series_starts(&self, rows: &[Vec<Value>]) -> Vec<bool> {
        (0..rows.len())
            .map(|i| i == 0 || self.series.iter().any(|&k| rows[i][k] != rows[i - 1][k]))
            .collect()
    }

    /// The integer predicted for `col` of row `i` by predictor `mode` (rows before `i` and the
    /// columns before `col` of row `i` are final; `first[i]`: the first row of `i`'s series).
    /// A series' first value is predicted by the first value of the series before it.
    fn predict_mode(
        &self,
        mode: u8,
        col: usize,
        rows: &[Vec<Value>],
        first: &[usize],
        i: usize,
    ) -> i64 {
        if first[i] == i {
            return match i.checked_sub(1) {
                Some(p) => int(&rows[first[p]][col]).unwrap_or(0),
                None => 0,
            };
        }
        let prev = &rows[i - 1];
        match mode {
            PREDICT_NONE => 0,
            PREDICT_LINEAR => {
                let Some(p) = int(&prev[col]) else {
                    return 0;
                };
                match (i - 1 > first[i]).then(|| int(&rows[i - 2][col])).flatten() {
                    Some(pp) => p.wrapping_add(p.wrapping_sub(pp)),
                    None => p,
                }
            }
            _ => predicted(self.pred[col], col, &rows[i], Some(prev), self.ts),
        }
    }

    /// `first[i]`: the index of the first row of row `i`'s series.
    fn series_firsts(&self, rows: &[Vec<Value>]) -> Vec<usize> {
        let starts = self.series_starts(rows);
        let mut first = Vec::with_capacity(rows.len());
        for (i, &s) in starts.iter().enumerate() {
            first.push(if s { i } else { first[i - 1] });
        }
        first
    }

    /// [`FORMAT_BITS`]: the encoding of sorted `rows` at zstd `level`.
    fn encode_bits(&self, rows: &[Vec<Value>], level: i32) -> Result<Vec<u8>, BlockError> {
        let first = self.series_firsts(rows);
        let mut head = Vec::new();
        put_varint(&mut head, rows.len() as u64);
        put_varint(&mut head, self.names.len() as u64);
        head.extend((0..rows.len()).map(|i| u8::from(first[i] == i)));
        let mut bits = BitWriter::default();
        for col in 0..self.names.len() {
            let tags: Vec<u8> = rows.iter().map(|r| tag(&r[col])).collect();
            match tags.first() {
                Some(&t) if tags.iter().all(|&x| x == t) => head.push(t),
                _ => {
                    head.push(MIXED_TAGS);
                    head.extend_from_slice(&tags);
                }
            }
            let ints: Vec<(usize, i64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| int(&r[col]).map(|v| (i, v)))
                .collect();
            if !ints.is_empty() {
                self.encode_ints(col, rows, &first, &ints, &mut head, &mut bits)?;
            }
            let mut vals = Vec::new();
            let mut dict: HashMap<&[u8], u64> = HashMap::new();
            for row in rows {
                match &row[col] {
                    Value::Real(f) => vals.extend_from_slice(&f.to_le_bytes()),
                    Value::Text(t) => dict_value(&mut vals, &mut dict, t.as_bytes()),
                    Value::Blob(b) => dict_value(&mut vals, &mut dict, b),
                    Value::Null | Value::Integer(_) => {}
                }
            }
            put_varint(&mut head, vals.len() as u64);
            head.extend_from_slice(&vals);
        }
        let z = zstd_frame(&head, level)?;
        let mut out = vec![FORMAT_BITS];
        put_varint(&mut out, z.len() as u64);
        out.extend_from_slice(&z);
        out.extend_from_slice(&bits.finish());
        Ok(out)
    }

    /// The integers `ints` (row, value) of column `col`: the predictor with the fewest residual
    /// bits, residuals unsigned when none is negative, then either varints (in the zstd frame)
    /// or bit lengths (in the frame) and the bits below the leading one (raw), whichever a
    /// quick zstd pass finds smaller.
    fn encode_ints(
        &self,
        col: usize,
        rows: &[Vec<Value>],
        first: &[usize],
        ints: &[(usize, i64)],
        head: &mut Vec<u8>,
        bits: &mut BitWriter,
    ) -> Result<(), BlockError> {
        let residuals = |mode: u8| -> Vec<i64> {
            ints.iter()
                .map(|&(i, v)| v.wrapping_sub(self.predict_mode(mode, col, rows, first, i)))
                .collect()
        };
        let cost = |r: &[i64]| -> u64 { r.iter().map(|&d| u64::from(bit_len(zigzag(d)))).sum() };
        let (mode, res) = [PREDICT_TABLE, PREDICT_NONE, PREDICT_LINEAR]
            .into_iter()
            .map(|m| (m, residuals(m)))
            .min_by_key(|(_, r)| cost(r))
            .ok_or(BlockError::Corrupt("no predictor"))?;
        // A series' first residual (from the series before) is always zigzagged.
        let starts: Vec<bool> = ints.iter().map(|&(i, _)| first[i] == i).collect();
        let unsigned = res.iter().zip(&starts).all(|(&d, &s)| s || d >= 0);
        let words: Vec<u64> = res
            .iter()
            .zip(&starts)
            .map(|(&d, &s)| if unsigned && !s { d as u64 } else { zigzag(d) })
            .collect();
        let mut var = Vec::new();
        for &w in &words {
            put_varint(&mut var, w);
        }
        let lens: Vec<u8> = words.iter().map(|&w| bit_len(w)).collect();
        let low_bytes: usize = lens
            .iter()
            .map(|&l| usize::from(l.saturating_sub(1)))
            .sum::<usize>()
            / 8;
        let as_bits = zstd_frame(&lens, 1)?.len() + low_bytes < zstd_frame(&var, 1)?.len();
        head.push(
            mode | if unsigned { INT_UNSIGNED } else { 0 } | if as_bits { INT_BITS } else { 0 },
        );
        if as_bits {
            head.extend_from_slice(&lens);
            for (&w, &l) in words.iter().zip(&lens) {
                if l > 1 {
                    bits.put(w, l - 1);
                }
            }
        } else {
            put_varint(head, var.len() as u64);
            head.extend_from_slice(&var);
        }
        Ok(())
    }

    /// Decodes a [`FORMAT_BITS`] block (`body`: the bytes after the format byte).
    fn decode_bits(&self, body: &[u8]) -> Result<Vec<Vec<Value>>, BlockError> {
        let mut pos = 0;
        let zlen = get_len(body, &mut pos)?;
        let frame = take(body, &mut pos, zlen)?;
        let head = unzstd(frame, MAX_DECODED)?;
        let mut bits = BitReader::new(&body[pos..]);
        let buf = head.as_slice();
        let mut pos = 0;
        let (n, ncols) = self.counts(buf, &mut pos)?;
        if n.saturating_mul(self.names.len()) > MAX_CELLS {
            return Err(BlockError::Corrupt("more values than a block may hold"));
        }
        let mut first: Vec<usize> = Vec::with_capacity(n);
        for (i, &b) in take(buf, &mut pos, n)?.iter().enumerate() {
            match (b, i) {
                (1, _) => first.push(i),
                (0, 1..) => first.push(first[i - 1]),
                _ => return Err(BlockError::Corrupt("bad series start")),
            }
        }
        let mut rows = vec![vec![Value::Null; self.names.len()]; n];
        for col in 0..ncols {
            let t = *take(buf, &mut pos, 1)?
                .first()
                .ok_or(BlockError::Corrupt("truncated block"))?;
            let tags: Vec<u8> = if t == MIXED_TAGS {
                take(buf, &mut pos, n)?.to_vec()
            } else {
                vec![t; n]
            };
            if tags.iter().any(|&t| t > 4) {
                return Err(BlockError::Corrupt("unknown value tag"));
            }
            if tags.contains(&1) {
                let flags = take(buf, &mut pos, 1)?[0];
                let mode = flags & !(INT_UNSIGNED | INT_BITS);
                if mode > PREDICT_LINEAR {
                    return Err(BlockError::Corrupt("unknown predictor"));
                }
                let unsigned = flags & INT_UNSIGNED != 0;
                let ints = tags.iter().filter(|&&t| t == 1).count();
                let words: Vec<u64> = if flags & INT_BITS != 0 {
                    take(buf, &mut pos, ints)?
                        .iter()
                        .map(|&len| match len {
                            0 => Ok(0),
                            1..=64 => Ok((1u64 << (len - 1)) | bits.get(len - 1)?),
                            _ => Err(BlockError::Corrupt("bit length above 64")),
                        })
                        .collect::<Result<_, _>>()?
                } else {
                    let len = get_len(buf, &mut pos)?;
                    let var = take(buf, &mut pos, len)?;
                    let mut vp = 0;
                    let w = (0..ints)
                        .map(|_| get_varint(var, &mut vp))
                        .collect::<Result<Vec<_>, _>>()?;
                    if vp != var.len() {
                        return Err(BlockError::Corrupt("trailing column bytes"));
                    }
                    w
                };
                let mut words = words.into_iter();
                for i in 0..n {
                    if tags[i] != 1 {
                        continue;
                    }
                    let w = words.next().ok_or(BlockError::Corrupt("missing value"))?;
                    let d = if unsigned && first[i] != i {
                        w as i64
                    } else {
                        unzigzag(w)
                    };
                    let p = self.predict_mode(mode, col, &rows, &first, i);
                    rows[i][col] = Value::Integer(d.wrapping_add(p));
                }
            }
            let len = get_len(buf, &mut pos)?;
            let vals = take(buf, &mut pos, len)?;
            let mut vp = 0;
            let mut dict: Vec<&[u8]> = Vec::new();
            for i in 0..n {
                let v = match tags[i] {
                    t @ 2..=4 => other_value(t, vals, &mut vp, &mut dict)?,
                    _ => continue,
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
        bits.end()?;
        Ok(rows)
    }

    /// Decodes a block into rows (series order), each with every column of `names` (NULL in
    /// columns the block does not have).
    pub fn decode(&self, blob: &[u8]) -> Result<Vec<Vec<Value>>, BlockError> {
        if let Some((&FORMAT_BITS, body)) = blob.split_first() {
            return self.decode_bits(body);
        }
        self.decode_raw(&decompress(blob, MAX_DECODED)?)
    }

    /// A block's row and column counts (the start of every format), checked against the table.
    fn counts(&self, buf: &[u8], pos: &mut usize) -> Result<(usize, usize), BlockError> {
        let n = get_len(buf, pos)?;
        let ncols = usize::try_from(get_varint(buf, pos)?).unwrap_or(usize::MAX);
        if ncols > self.names.len() {
            return Err(BlockError::Columns {
                found: ncols,
                table: self.names.len(),
            });
        }
        if ncols <= self.ts {
            return Err(BlockError::Corrupt("block without its time column"));
        }
        Ok((n, ncols))
    }

    fn decode_raw(&self, buf: &[u8]) -> Result<Vec<Vec<Value>>, BlockError> {
        let mut pos = 0;
        let (n, ncols) = self.counts(buf, &mut pos)?;
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
                    t @ 2..=4 => other_value(t, vals, &mut vp, &mut dict)?,
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

/// `raw` compressed in `format`, behind its format byte (the blocks sealed before schema 18;
/// only the tests still write them).
#[cfg(test)]
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
            out.extend_from_slice(&zstd_frame(raw, ZSTD_LEVEL)?);
            Ok(out)
        }
        other => Err(BlockError::Format(other)),
    }
}

/// One zstd frame of `raw` at `level`, with its decoded size and without a checksum.
fn zstd_frame(raw: &[u8], level: i32) -> Result<Vec<u8>, BlockError> {
    let mut out = Vec::new();
    let mut e = zstd::stream::write::Encoder::new(&mut out, level).map_err(BlockError::Compress)?;
    // The decoded size in the frame header (what a reader could allocate up front).
    e.set_pledged_src_size(Some(raw.len() as u64))
        .map_err(BlockError::Compress)?;
    e.include_contentsize(true).map_err(BlockError::Compress)?;
    e.include_checksum(false).map_err(BlockError::Compress)?;
    e.write_all(raw).map_err(BlockError::Compress)?;
    e.finish().map_err(BlockError::Compress)?;
    Ok(out)
}

/// The bytes of one zstd frame; more than `max` of them is an error.
fn unzstd(frame: &[u8], max: u64) -> Result<Vec<u8>, BlockError> {
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(BlockError::Decompress)?
        .single_frame()
        .take(max.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(BlockError::Decompress)?;
    if raw.len() as u64 > max {
        return Err(BlockError::Corrupt("decodes to more than a block may hold"));
    }
    Ok(raw)
}

/// The encoded bytes of a blob of any known format; more than `max` of them is an error.
fn decompress(blob: &[u8], max: u64) -> Result<Vec<u8>, BlockError> {
    let (&format, body) = blob.split_first().ok_or(BlockError::Empty)?;
    let mut raw = Vec::new();
    match format {
        FORMAT_DEFLATE => flate2::read::DeflateDecoder::new(body)
            .take(max.saturating_add(1))
            .read_to_end(&mut raw)
            .map_err(BlockError::Decompress)?,
        FORMAT_ZSTD => return unzstd(body, max),
        other => return Err(BlockError::Format(other)),
    };
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

/// The value tag of a block (0 NULL, 1 integer, 2 real, 3 text, 4 blob).
fn tag(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Integer(_) => 1,
        Value::Real(_) => 2,
        Value::Text(_) => 3,
        Value::Blob(_) => 4,
    }
}

/// Bits of `z` up to its leading one (0 for 0).
fn bit_len(z: u64) -> u8 {
    (64 - z.leading_zeros()) as u8
}

/// The next dictionary-coded text or blob of a column (`0, len, bytes` adds an entry, `k`
/// is entry `k - 1`).
fn dict_get<'a>(
    vals: &'a [u8],
    vp: &mut usize,
    dict: &mut Vec<&'a [u8]>,
) -> Result<&'a [u8], BlockError> {
    let k = get_varint(vals, vp)?;
    if k == 0 {
        let l = get_len(vals, vp)?;
        let b = take(vals, vp, l)?;
        dict.push(b);
        Ok(b)
    } else {
        let idx = usize::try_from(k - 1).unwrap_or(usize::MAX);
        dict.get(idx)
            .copied()
            .ok_or(BlockError::Corrupt("dictionary index"))
    }
}

/// The next real (tag 2: 8 bytes), text (3) or blob (4, both through the column's dictionary)
/// of a column's values.
fn other_value<'a>(
    tag: u8,
    vals: &'a [u8],
    vp: &mut usize,
    dict: &mut Vec<&'a [u8]>,
) -> Result<Value, BlockError> {
    Ok(match tag {
        2 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(take(vals, vp, 8)?);
            Value::Real(f64::from_le_bytes(a))
        }
        3 => Value::Text(
            String::from_utf8(dict_get(vals, vp, dict)?.to_vec())
                .map_err(|_| BlockError::Corrupt("text is not UTF-8"))?,
        ),
        _ => Value::Blob(dict_get(vals, vp, dict)?.to_vec()),
    })
}

/// Bits packed least significant first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `len` (at most 63) bits of `v`.
    fn put(&mut self, v: u64, len: u8) {
        let mut v = v & ((1u64 << len) - 1);
        let mut len = u32::from(len);
        while len > 0 {
            let k = len.min(64 - self.n).min(32);
            self.acc |= (v & ((1u64 << k) - 1)) << self.n;
            self.n += k;
            v >>= k;
            len -= k;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    inp: &'a [u8],
    /// Bits consumed.
    at: usize,
}

impl<'a> BitReader<'a> {
    fn new(inp: &'a [u8]) -> BitReader<'a> {
        BitReader { inp, at: 0 }
    }

    /// The next `len` (at most 63) bits.
    fn get(&mut self, len: u8) -> Result<u64, BlockError> {
        let len = usize::from(len);
        if self.at + len > self.inp.len() * 8 {
            return Err(BlockError::Corrupt("truncated residual bits"));
        }
        let (mut v, mut got) = (0u64, 0);
        while got < len {
            let off = self.at % 8;
            let k = (8 - off).min(len - got);
            let b = u64::from(self.inp[self.at / 8] >> off) & ((1u64 << k) - 1);
            v |= b << got;
            got += k;
            self.at += k;
        }
        Ok(v)
    }

    /// Every byte read, and the padding bits of the last one zero.
    fn end(&self) -> Result<(), BlockError> {
        let pad_ok = self.at.is_multiple_of(8) || self.inp[self.at / 8] >> (self.at % 8) == 0;
        if self.inp.len() != self.at.div_ceil(8) || !pad_ok {
            return Err(BlockError::Corrupt("trailing residual bits"));
        }
        Ok(())
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
    fn new_blocks_are_bits_and_zstd_and_deflate_blocks_still_decode() {
        let c = cols();
        let mut want = rows();
        c.sort(&mut want);
        let blob = c.encode(rows()).unwrap();
        assert_eq!(blob[0], FORMAT_BITS);
        // Blocks sealed before schema 18 (zstd) and before schema 11 (deflate): the row
        // encoding of those versions.
        let zstd = compress(FORMAT_ZSTD, &c.encode_sorted(&want)).unwrap();
        let old = compress(FORMAT_DEFLATE, &c.encode_sorted(&want)).unwrap();
        assert_eq!((zstd[0], old[0]), (FORMAT_ZSTD, FORMAT_DEFLATE));
        assert!(same(&c.decode(&old).unwrap(), &want));
        assert!(same(&c.decode(&zstd).unwrap(), &want));
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
        let zstd = compress(FORMAT_ZSTD, &c.encode_sorted(&sorted)).unwrap();
        for blob in [deflated, zstd, c.encode(rows()).unwrap()] {
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

    /// Rows of a station-like table: `series` series of `per` rows, counters moved by
    /// pseudo-random steps of mixed sizes, a constant time step, a gauge, a NULL now and then.
    fn generated(series: usize, per: usize, seed: u64) -> Vec<Vec<Value>> {
        let mut x = seed;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m.max(1)
        };
        let mut rows = Vec::new();
        for s in 0..series {
            let mut bytes = next(1 << 40) as i64;
            for t in 0..per as i64 {
                let step = if next(2) == 0 {
                    100_000 + next(800_000)
                } else {
                    next(8_000)
                } as i64;
                let delta = (t > 0).then_some(step);
                bytes += delta.unwrap_or(0);
                rows.push(vec![
                    Value::Integer(1_767_225_600_000 + t * 30_000 + (s as i64 % 3)),
                    Value::Text(format!("phy{}-ap0", s % 2)),
                    Value::Text(format!("02:00:00:00:{:02x}:{:02x}", s / 256, s % 256)),
                    Value::Integer(bytes),
                    delta.map_or(Value::Null, Value::Integer),
                    delta.map_or(Value::Null, |d| Value::Integer(d * 8000 / 30_000)),
                    if t % 10 == 0 {
                        Value::Null
                    } else {
                        Value::Real((t / 20) as f64 / 4.0)
                    },
                    Value::Text(format!("ssid-{}", s % 2)),
                    Value::Integer(-(next(90) as i64)),
                ]);
            }
        }
        rows
    }

    /// Round trip of one set of rows through every block format that decodes.
    fn round_trips(c: &BlockColumns, rows: Vec<Vec<Value>>) {
        let mut want = rows.clone();
        c.sort(&mut want);
        let blob = c.encode(rows).unwrap();
        assert_eq!(blob[0], FORMAT_BITS);
        let got = c.decode(&blob).unwrap();
        assert!(same(&got, &want), "{got:?}\nwant {want:?}");
    }

    #[test]
    fn bits_blocks_round_trip_generated_and_adversarial_rows() {
        let c = cols();
        // Generated: many series, and one series of one row.
        round_trips(&c, generated(25, 120, 7));
        round_trips(&c, generated(1, 1, 8));
        round_trips(&c, generated(300, 2, 9));
        // Empty block.
        let empty = c.encode(vec![]).unwrap();
        assert!(c.decode(&empty).unwrap().is_empty());
        // Every column NULL but the time, and one row only.
        let mut nulls = vec![Value::Null; 9];
        nulls[0] = Value::Integer(0);
        round_trips(&c, vec![nulls.clone()]);
        round_trips(&c, vec![nulls.clone(), nulls.clone()]);
        // i64 extremes in one series (residuals wrap), in every integer column, and values
        // that alternate between them (64-bit residuals, the widest bit length).
        let ext = [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            1,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX,
        ];
        let rows: Vec<Vec<Value>> = ext
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                vec![
                    Value::Integer(if t % 2 == 0 {
                        v
                    } else {
                        v.wrapping_add(1).wrapping_neg()
                    }),
                    Value::Text("if".into()),
                    Value::Text("m".into()),
                    Value::Integer(v),
                    Value::Integer(v.wrapping_neg()),
                    Value::Integer(v),
                    Value::Real([f64::NAN, -0.0, f64::INFINITY][t % 3]),
                    Value::Integer(v / 3),
                    Value::Integer(v),
                ]
            })
            .collect();
        round_trips(&c, rows);
        // All residuals non-negative and huge (unsigned residuals of 63 and 64 bits).
        let rows: Vec<Vec<Value>> = [0, i64::MAX, i64::MAX, 0, i64::MAX]
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                let mut r = nulls.clone();
                r[0] = Value::Integer(t as i64);
                r[3] = Value::Integer(v);
                r
            })
            .collect();
        round_trips(&c, rows);
        // Text dictionary: repeated, empty and non-ASCII strings, blobs, mixed types in one
        // column (text, integer, blob, real, NULL) and the same bytes as text and blob.
        let words = ["", "é", "ssid", "ssid", "", "日本", "ssid"];
        let rows: Vec<Vec<Value>> = words
            .iter()
            .enumerate()
            .map(|(t, w)| {
                let mixed = match t % 5 {
                    0 => Value::Text(w.to_string()),
                    1 => Value::Integer(t as i64 * 1_000_000_007),
                    2 => Value::Blob(w.as_bytes().to_vec()),
                    3 => Value::Real(t as f64),
                    _ => Value::Null,
                };
                vec![
                    Value::Integer(t as i64),
                    Value::Text(w.to_string()),
                    Value::Text("mac".into()),
                    mixed.clone(),
                    mixed,
                    Value::Null,
                    Value::Null,
                    Value::Text(w.to_string()),
                    Value::Blob(w.as_bytes().to_vec()),
                ]
            })
            .collect();
        round_trips(&c, rows);
        round_trips(&c, super::tests::rows());
    }

    /// Deterministic bytes, not time: the per-column choices make a block of counters and a
    /// constant time step smaller than the row encoding of schema 11-15.
    #[test]
    fn bits_blocks_are_smaller_than_zstd_row_blocks() {
        let c = cols();
        let mut rows = generated(20, 120, 11);
        let bits = c.encode(rows.clone()).unwrap();
        c.sort(&mut rows);
        let old = compress(FORMAT_ZSTD, &c.encode_sorted(&rows)).unwrap();
        assert!(bits.len() < old.len(), "{} vs {}", bits.len(), old.len());
    }

    /// A head of one row and one integer column in `flags` with bit length `len`, wrapped as a
    /// format-3 block with `tail` as its raw bits.
    fn crafted(c: &BlockColumns, flags: u8, len: u8, tail: &[u8]) -> Vec<u8> {
        let mut head = Vec::new();
        put_varint(&mut head, 1);
        put_varint(&mut head, c.names().len() as u64);
        head.push(1);
        // ts_ms: one integer
        head.extend_from_slice(&[1, flags, len, 0]);
        for _ in 1..c.names().len() {
            head.extend_from_slice(&[0, 0]);
        }
        let z = zstd_frame(&head, 1).unwrap();
        let mut out = vec![FORMAT_BITS];
        put_varint(&mut out, z.len() as u64);
        out.extend_from_slice(&z);
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn corrupt_bits_blocks_are_typed_errors() {
        let c = cols();
        // The crafted block decodes when it is right: ts = 1 (bit length 1, no low bits).
        let ok = crafted(&c, PREDICT_TABLE | INT_BITS, 1, &[]);
        let rows = c.decode(&ok).unwrap();
        assert_eq!(rows[0][0], Value::Integer(-1), "zigzag 1 is -1");
        let unsigned = crafted(&c, PREDICT_TABLE | INT_BITS | INT_UNSIGNED, 3, &[0b10]);
        // A series' first residual is zigzagged even in an unsigned column: 6 is 3.
        assert_eq!(c.decode(&unsigned).unwrap()[0][0], Value::Integer(3));
        let corrupt = |b: Vec<u8>| matches!(c.decode(&b), Err(BlockError::Corrupt(_)));
        assert!(corrupt(crafted(&c, INT_BITS, 65, &[0; 8])), "bit length");
        assert!(corrupt(crafted(&c, 3 | INT_BITS, 1, &[])), "predictor");
        assert!(corrupt(crafted(&c, INT_BITS, 9, &[])), "missing low bits");
        assert!(corrupt(crafted(&c, INT_BITS, 1, &[0])), "trailing bits");
        assert!(
            corrupt(crafted(&c, INT_BITS, 2, &[0b10])),
            "padding bits set"
        );
        // A frame length beyond the blob, and a frame that is not zstd.
        let mut b = ok.clone();
        b[1] = 0x7f;
        assert!(c.decode(&b).is_err());
        assert!(c.decode(&[FORMAT_BITS, 3, 1, 2, 3]).is_err());
        assert!(c.decode(&[FORMAT_BITS]).is_err());
        // Every truncation and every single-byte change of a real block: an error or some
        // rows, never a panic; truncations are always errors.
        let blob = c.encode(generated(4, 30, 3)).unwrap();
        for cut in 0..blob.len() {
            assert!(c.decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        for i in 1..blob.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] ^= x;
                let _ = c.decode(&b);
            }
        }
        // A head that decodes to more rows than its bytes, or a first row continuing a series.
        let mut head = Vec::new();
        put_varint(&mut head, u64::MAX / 2);
        let z = zstd_frame(&head, 1).unwrap();
        let mut b = vec![FORMAT_BITS];
        put_varint(&mut b, z.len() as u64);
        b.extend_from_slice(&z);
        assert!(matches!(c.decode(&b), Err(BlockError::Corrupt(_))));
        // Many rows in few bytes (a bomb of constant columns) are refused before allocating.
        let mut head = Vec::new();
        put_varint(&mut head, 50_000_000);
        put_varint(&mut head, 9);
        head.resize(head.len() + 50_000_000, 1);
        let z = zstd_frame(&head, 1).unwrap();
        let mut b = vec![FORMAT_BITS];
        put_varint(&mut b, z.len() as u64);
        b.extend_from_slice(&z);
        assert!(matches!(c.decode(&b), Err(BlockError::Corrupt(_))));
        let mut bad = crafted(&c, INT_BITS, 1, &[]);
        let z = unzstd(&bad[2..], 1 << 20).unwrap();
        let mut head = z.clone();
        head[2] = 0;
        let z = zstd_frame(&head, 1).unwrap();
        bad.truncate(1);
        put_varint(&mut bad, z.len() as u64);
        bad.extend_from_slice(&z);
        assert!(matches!(c.decode(&bad), Err(BlockError::Corrupt(_))));
    }

    #[test]
    fn bit_writer_and_reader_round_trip() {
        let mut w = BitWriter::default();
        let vals: Vec<(u64, u8)> = (0..200u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), (i % 64) as u8))
            .collect();
        for &(v, l) in &vals {
            w.put(v, l);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, l) in &vals {
            let mask = if l == 0 { 0 } else { (1u64 << l) - 1 };
            assert_eq!(r.get(l).unwrap(), v & mask);
        }
        r.end().unwrap();
        assert!(r.get(8).is_err());
    }
}
