//! The spool: encoded report frames waiting for the collector's ack, oldest first.
//!
//! Bounded by a number of reports and a number of bytes; when a new report would exceed either
//! bound the oldest reports are dropped and counted, so the next report can tell the collector
//! how many it will never see. Entries are keyed by `(boot_id, seq)` (what an `Ack` names) and
//! carry a local insertion id, so a connection can remember how far it has sent.
//!
//! The spool lives in RAM. With a file configured it is also saved atomically (a temporary
//! file renamed over it) whenever the session asks, and reloaded on start. Each record is
//! checked on its own: a damaged record is skipped (and counted as dropped, so the collector
//! hears of it) and the others are kept; a damaged file is also copied to `<file>.corrupt` with a
//! warning. A file that is not a spool at all is renamed there and the agent starts empty.
//!
//! File format (version 2): `RSSPOOL2`, a u32 record count and the first 4 bytes of its
//! SHA-256; then per record the marker `RSR2`, a u32 body length, the body (16 bytes boot id,
//! u64 seq, the frame) and the first 8 bytes of the SHA-256 of length and body. Integers are big
//! endian. After a damaged record the reader looks for the next marker whose record checks out.
//! Version 1 files (one checksum over the whole file) are still read.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use routerstats_shared::frame::{FrameHeader, HEADER_LEN};
use routerstats_shared::MAX_FRAME_LEN;

use super::tls::sha256;
use super::write_atomic;

const MAGIC_V1: &[u8; 8] = b"RSSPOOL1";
const MAGIC: &[u8; 8] = b"RSSPOOL2";
const RECORD: &[u8; 4] = b"RSR2";
/// Boot id and seq before the frame in a record body.
const RECORD_HEAD: usize = 24;

/// Where and how much to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// At most this many reports are kept (at least one is always kept).
    pub max_reports: usize,
    /// At most this many bytes of frames are kept (a single larger frame is still kept alone).
    pub max_bytes: usize,
    /// Persist the spool here (best on tmpfs, e.g. /tmp, to spare the flash); RAM only when None.
    pub file: Option<PathBuf>,
}

impl Default for SpoolConfig {
    /// 1000 reports (8 h at 30 s) or 4 MiB, whichever comes first; RAM only.
    fn default() -> Self {
        SpoolConfig {
            max_reports: 1000,
            max_bytes: 4 * 1024 * 1024,
            file: None,
        }
    }
}

/// One spooled report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    /// Local insertion order, increasing; not persisted (reassigned on reload).
    pub id: u64,
    pub boot_id: [u8; 16],
    pub seq: u64,
    /// The whole encoded frame (header and payload), ready to write.
    pub frame: Vec<u8>,
}

/// Why the spool file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("corrupt spool file: {0}")]
    Corrupt(&'static str),
}

/// The bounded spool (see module doc).
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    entries: VecDeque<SpoolEntry>,
    bytes: usize,
    next_id: u64,
    dropped_total: u64,
    dropped_pending: u64,
}

impl Spool {
    /// An empty spool; does not touch the file.
    pub fn new(cfg: SpoolConfig) -> Self {
        Spool {
            cfg,
            entries: VecDeque::new(),
            bytes: 0,
            next_id: 0,
            dropped_total: 0,
            dropped_pending: 0,
        }
    }

    /// A spool reloaded from its file when one is configured and present. Never fails: problems
    /// are returned as warnings (a corrupt file is renamed aside first).
    pub fn open(cfg: SpoolConfig) -> (Self, Vec<String>) {
        let mut spool = Spool::new(cfg);
        let mut warnings = Vec::new();
        let Some(path) = spool.cfg.file.clone() else {
            return (spool, warnings);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (spool, warnings),
            Err(e) => {
                warnings.push(format!(
                    "cannot read spool file {}: {e}; starting empty",
                    path.display()
                ));
                return (spool, warnings);
            }
        };
        match decode(&bytes) {
            Ok((entries, lost)) => {
                let kept = entries.len();
                for (boot_id, seq, frame) in entries {
                    spool.push(boot_id, seq, frame);
                }
                let over_capacity = spool.dropped_pending;
                if lost > 0 {
                    let aside = corrupt_path(&path);
                    let copied = match std::fs::copy(&path, &aside) {
                        Ok(_) => format!("a copy is in {}", aside.display()),
                        Err(ce) => format!("could not copy it aside: {ce}"),
                    };
                    spool.note_dropped(lost);
                    warnings.push(format!(
                        "spool file {} had {lost} damaged records: skipped and counted as dropped, {kept} kept; {copied}",
                        path.display()
                    ));
                }
                if over_capacity > 0 {
                    warnings.push(format!(
                        "spool file {} held more than the spool's capacity: dropped {} oldest reports",
                        path.display(),
                        over_capacity
                    ));
                }
            }
            Err(e) => {
                let aside = corrupt_path(&path);
                let moved = match std::fs::rename(&path, &aside) {
                    Ok(()) => format!("moved to {}", aside.display()),
                    Err(re) => format!("could not move it aside: {re}"),
                };
                warnings.push(format!(
                    "{} ({e}): {moved}; starting with an empty spool",
                    path.display()
                ));
            }
        }
        (spool, warnings)
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    /// Appends a report frame; drops the oldest reports while over a bound. Returns how many
    /// were dropped by this push.
    pub fn push(&mut self, boot_id: [u8; 16], seq: u64, frame: Vec<u8>) -> u64 {
        self.bytes = self.bytes.saturating_add(frame.len());
        self.entries.push_back(SpoolEntry {
            id: self.next_id,
            boot_id,
            seq,
            frame,
        });
        self.next_id = self.next_id.saturating_add(1);
        let mut dropped = 0;
        while self.entries.len() > 1
            && (self.entries.len() > self.cfg.max_reports.max(1) || self.bytes > self.cfg.max_bytes)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes = self.bytes.saturating_sub(old.frame.len());
                dropped += 1;
            }
        }
        self.note_dropped(dropped);
        dropped
    }

    /// Counts reports lost outside the spool (e.g. one too large to encode).
    pub fn note_dropped(&mut self, n: u64) {
        self.dropped_total = self.dropped_total.saturating_add(n);
        self.dropped_pending = self.dropped_pending.saturating_add(n);
    }

    /// Drops counted since the previous call: the `dropped_reports` of the next report.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_pending)
    }

    /// Drops counted since the last `take_dropped`, without taking them.
    pub fn pending_dropped(&self) -> u64 {
        self.dropped_pending
    }

    /// Every drop since the spool was created (including drops while reloading).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Removes the acked report; false when it is not (or no longer) spooled.
    pub fn ack(&mut self, boot_id: [u8; 16], seq: u64) -> bool {
        match self
            .entries
            .iter()
            .position(|e| e.seq == seq && e.boot_id == boot_id)
        {
            Some(i) => {
                if let Some(e) = self.entries.remove(i) {
                    self.bytes = self.bytes.saturating_sub(e.frame.len());
                }
                true
            }
            None => false,
        }
    }

    /// The oldest entry whose id is at least `from_id`: what to send next on a connection that
    /// has sent everything before `from_id`.
    pub fn next_unsent(&self, from_id: u64) -> Option<&SpoolEntry> {
        let i = self.entries.partition_point(|e| e.id < from_id);
        self.entries.get(i)
    }

    /// Whether any entry with an id below `from_id` (already sent) is still waiting for its ack.
    pub fn has_sent_unacked(&self, from_id: u64) -> bool {
        self.entries.front().is_some_and(|e| e.id < from_id)
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &SpoolEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of frames held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The file image of the spool (see module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes + self.entries.len() * 40 + 16);
        out.extend_from_slice(MAGIC);
        let count = u32::try_from(self.entries.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes();
        out.extend_from_slice(&count);
        out.extend_from_slice(&sha256(&count)[..4]);
        let mut body = Vec::new();
        for e in self.entries.iter() {
            body.clear();
            body.extend_from_slice(&e.boot_id);
            body.extend_from_slice(&e.seq.to_be_bytes());
            body.extend_from_slice(&e.frame);
            let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes();
            out.extend_from_slice(RECORD);
            out.extend_from_slice(&len);
            out.extend_from_slice(&body);
            out.extend_from_slice(&record_check(&len, &body));
        }
        out
    }

    /// Saves the spool to its file, if one is configured.
    pub fn save(&self) -> Result<(), SpoolError> {
        match &self.cfg.file {
            Some(path) => save_image(path, &self.encode()),
            None => Ok(()),
        }
    }
}

/// Writes an encoded spool image atomically (for callers that encode under a lock and write
/// outside it).
pub fn save_image(path: &Path, image: &[u8]) -> Result<(), SpoolError> {
    write_atomic(path, image, 0o600).map_err(|err| SpoolError::Io {
        path: path.to_path_buf(),
        err,
    })
}

fn corrupt_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".corrupt");
    path.with_file_name(name)
}

/// One spooled entry as stored: boot id, seq, frame.
type Entry = ([u8; 16], u64, Vec<u8>);
type Decoded = Vec<Entry>;

/// First 8 bytes of the SHA-256 of a record's length and body.
fn record_check(len: &[u8; 4], body: &[u8]) -> [u8; 8] {
    let mut both = Vec::with_capacity(4 + body.len());
    both.extend_from_slice(len);
    both.extend_from_slice(body);
    let d = sha256(&both);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The record starting at `at` (at its marker), if it checks out: (entry, bytes it spans).
fn record_at(bytes: &[u8], at: usize) -> Option<(Entry, usize)> {
    let rest = bytes.get(at..)?;
    if rest.get(..4)? != RECORD.as_slice() {
        return None;
    }
    let len: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
    let n = u32::from_be_bytes(len) as usize;
    if n < RECORD_HEAD + HEADER_LEN || n > RECORD_HEAD + HEADER_LEN + MAX_FRAME_LEN as usize {
        return None;
    }
    let body = rest.get(8..8 + n)?;
    if rest.get(8 + n..16 + n)? != record_check(&len, body).as_slice() {
        return None;
    }
    let boot_id: [u8; 16] = body.get(..16)?.try_into().ok()?;
    let seq = u64::from_be_bytes(body.get(16..24)?.try_into().ok()?);
    let frame = body.get(RECORD_HEAD..)?;
    match FrameHeader::parse(frame, MAX_FRAME_LEN) {
        Ok(h) if h.kind.is_full_report() && h.len as usize + HEADER_LEN == frame.len() => {}
        _ => return None,
    }
    Some(((boot_id, seq, frame.to_vec()), 16 + n))
}

/// Parses a spool file image: the records that check out, and how many were lost (damaged or
/// missing, judged by the record count when that is intact, else one per damaged stretch).
/// Err only for a file that is not a spool file (or a damaged version 1 file).
pub fn decode(bytes: &[u8]) -> Result<(Decoded, u64), SpoolError> {
    match bytes.get(..MAGIC.len()) {
        Some(m) if m == MAGIC_V1.as_slice() => return decode_v1(bytes).map(|d| (d, 0)),
        Some(m) if m == MAGIC.as_slice() => {}
        _ => return Err(SpoolError::Corrupt("not a spool file")),
    }
    let count = bytes.get(8..12).and_then(|c| {
        let c: [u8; 4] = c.try_into().ok()?;
        (bytes.get(12..16)? == &sha256(&c)[..4]).then(|| u64::from(u32::from_be_bytes(c)))
    });
    let mut out = Vec::new();
    let mut stretches = 0u64;
    let mut at = 16;
    let mut in_damage = false;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Some((entry, span)) => {
                out.push(entry);
                at += span;
                in_damage = false;
            }
            None => {
                if !in_damage {
                    stretches += 1;
                    in_damage = true;
                }
                at += 1;
            }
        }
    }
    let lost = match count {
        Some(c) => c.saturating_sub(out.len() as u64),
        None => stretches.max(1),
    };
    Ok((out, lost))
}

/// Parses a version 1 image (one checksum over everything: any damage loses it all).
fn decode_v1(bytes: &[u8]) -> Result<Decoded, SpoolError> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or(SpoolError::Corrupt("too short"))?;
    let (body, digest) = (
        bytes.get(..body_len).unwrap_or_default(),
        bytes.get(body_len..).unwrap_or_default(),
    );
    if body.get(..MAGIC_V1.len()) != Some(MAGIC_V1.as_slice()) {
        return Err(SpoolError::Corrupt("not a spool file"));
    }
    if sha256(body).as_slice() != digest {
        return Err(SpoolError::Corrupt("checksum mismatch"));
    }
    let mut r = Reader(body.get(MAGIC_V1.len()..).unwrap_or_default());
    let count = u32::from_be_bytes(r.array()?);
    let mut out = Vec::new();
    for _ in 0..count {
        let boot_id: [u8; 16] = r.array()?;
        let seq = u64::from_be_bytes(r.array()?);
        let len = u32::from_be_bytes(r.array()?) as usize;
        if len > HEADER_LEN + MAX_FRAME_LEN as usize {
            return Err(SpoolError::Corrupt("oversized entry"));
        }
        let frame = r.take(len)?.to_vec();
        match FrameHeader::parse(&frame, MAX_FRAME_LEN) {
            Ok(h) if h.kind.is_full_report() && h.len as usize + HEADER_LEN == frame.len() => {}
            _ => return Err(SpoolError::Corrupt("entry is not a report frame")),
        }
        out.push((boot_id, seq, frame));
    }
    if !r.0.is_empty() {
        return Err(SpoolError::Corrupt("trailing bytes"));
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SpoolError> {
        let head = self.0.get(..n).ok_or(SpoolError::Corrupt("truncated"))?;
        self.0 = self.0.get(n..).unwrap_or_default();
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SpoolError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use routerstats_shared::{Message, Report};

    const BOOT: [u8; 16] = [9; 16];

    fn frame(seq: u64) -> Vec<u8> {
        let r = Report {
            seq,
            boot_id: BOOT,
            timestamp_ms: 1_700_000_000_000 + seq,
            ..Default::default()
        };
        Message::Report(Box::new(r)).to_frame().unwrap()
    }

    fn cfg(max_reports: usize) -> SpoolConfig {
        SpoolConfig {
            max_reports,
            ..SpoolConfig::default()
        }
    }

    fn seqs(s: &Spool) -> Vec<u64> {
        s.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn push_ack_and_order() {
        let mut s = Spool::new(cfg(10));
        for seq in 1..=4 {
            assert_eq!(s.push(BOOT, seq, frame(seq)), 0);
        }
        assert_eq!(seqs(&s), vec![1, 2, 3, 4]);
        assert!(s.ack(BOOT, 2));
        assert!(!s.ack(BOOT, 2), "second ack of the same report");
        assert!(!s.ack([1; 16], 3), "other boot id");
        assert_eq!(seqs(&s), vec![1, 3, 4]);
        let total: usize = s.iter().map(|e| e.frame.len()).sum();
        assert_eq!(s.bytes(), total);
    }

    #[test]
    fn overflow_drops_oldest_and_counts() {
        let mut s = Spool::new(cfg(3));
        for seq in 1..=3 {
            s.push(BOOT, seq, frame(seq));
        }
        assert_eq!(s.push(BOOT, 4, frame(4)), 1);
        assert_eq!(s.push(BOOT, 5, frame(5)), 1);
        assert_eq!(seqs(&s), vec![3, 4, 5]);
        assert_eq!(s.take_dropped(), 2);
        assert_eq!(s.take_dropped(), 0, "take resets the pending count");
        assert_eq!(s.dropped_total(), 2);
    }

    #[test]
    fn byte_bound_drops_oldest_but_keeps_the_newest() {
        let one = frame(1).len();
        let mut s = Spool::new(SpoolConfig {
            max_reports: 100,
            max_bytes: one * 2,
            file: None,
        });
        s.push(BOOT, 1, frame(1));
        s.push(BOOT, 2, frame(2));
        assert_eq!(s.push(BOOT, 3, frame(3)), 1);
        assert_eq!(seqs(&s), vec![2, 3]);
        let mut tiny = Spool::new(SpoolConfig {
            max_reports: 100,
            max_bytes: 1,
            file: None,
        });
        tiny.push(BOOT, 1, frame(1));
        assert_eq!(tiny.push(BOOT, 2, frame(2)), 1);
        assert_eq!(
            seqs(&tiny),
            vec![2],
            "a frame larger than the bound is kept alone"
        );
    }

    #[test]
    fn next_unsent_walks_in_order_across_acks() {
        let mut s = Spool::new(cfg(10));
        for seq in 1..=3 {
            s.push(BOOT, seq, frame(seq));
        }
        let first = s.next_unsent(0).unwrap();
        assert_eq!(first.seq, 1);
        let after_first = first.id + 1;
        assert!(s.has_sent_unacked(after_first));
        assert_eq!(s.next_unsent(after_first).unwrap().seq, 2);
        s.ack(BOOT, 1);
        assert!(!s.has_sent_unacked(after_first));
        s.ack(BOOT, 2);
        assert_eq!(s.next_unsent(after_first).unwrap().seq, 3);
        assert_eq!(s.next_unsent(u64::MAX), None);
        // A new connection starts over from 0 and resends what is left.
        assert_eq!(s.next_unsent(0).unwrap().seq, 3);
    }

    #[test]
    fn file_round_trip_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spool.bin");
        let config = SpoolConfig {
            file: Some(file.clone()),
            ..cfg(10)
        };
        let (mut s, warnings) = Spool::open(config.clone());
        assert!(
            warnings.is_empty() && s.is_empty(),
            "missing file means empty spool"
        );
        for seq in 1..=3 {
            s.push(BOOT, seq, frame(seq));
        }
        s.ack(BOOT, 1);
        s.save().unwrap();
        let (back, warnings) = Spool::open(config);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(seqs(&back), vec![2, 3]);
        assert_eq!(
            back.iter().map(|e| e.frame.clone()).collect::<Vec<_>>(),
            vec![frame(2), frame(3)]
        );
        assert_eq!(back.bytes(), s.bytes());
    }

    /// A spool file holding reports 1..=n, in a temp dir.
    fn saved_spool(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spool.bin");
        let mut s = Spool::new(SpoolConfig {
            file: Some(file.clone()),
            ..cfg(10)
        });
        for seq in 1..=n {
            s.push(BOOT, seq, frame(seq));
        }
        s.save().unwrap();
        (dir, file)
    }

    #[test]
    fn reload_into_a_smaller_spool_counts_drops() {
        let (_dir, file) = saved_spool(5);
        let (mut small, warnings) = Spool::open(SpoolConfig {
            file: Some(file),
            ..cfg(2)
        });
        assert_eq!(seqs(&small), vec![4, 5]);
        assert_eq!(warnings.len(), 1);
        assert_eq!(small.take_dropped(), 3);
    }

    #[test]
    fn not_a_spool_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spool.bin");
        std::fs::write(&file, b"RSSPOOLX something else").unwrap();
        let (back, warnings) = Spool::open(SpoolConfig {
            file: Some(file.clone()),
            ..cfg(10)
        });
        assert!(back.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not a spool file"), "{warnings:?}");
        assert!(!file.exists());
        assert!(dir.path().join("spool.bin.corrupt").exists());
        // The spool keeps working and saving after that.
        let mut back = back;
        back.push(BOOT, 7, frame(7));
        back.save().unwrap();
        let reopened = Spool::open(SpoolConfig {
            file: Some(file),
            ..cfg(10)
        });
        assert_eq!(seqs(&reopened.0), vec![7]);
    }

    #[test]
    fn one_corrupt_byte_loses_one_record_not_the_spool() {
        let (dir, file) = saved_spool(5);
        let good = std::fs::read(&file).unwrap();
        // A byte inside each record in turn: that record goes, the four others stay.
        let record_len = (good.len() - 16) / 5;
        for victim in 0..5usize {
            let mut bytes = good.clone();
            bytes[16 + victim * record_len + record_len / 2] ^= 0x40;
            std::fs::write(&file, &bytes).unwrap();
            let (mut back, warnings) = Spool::open(SpoolConfig {
                file: Some(file.clone()),
                ..cfg(10)
            });
            let expect: Vec<u64> = (1..=5).filter(|s| *s != victim as u64 + 1).collect();
            assert_eq!(seqs(&back), expect, "victim {victim}");
            assert_eq!(back.take_dropped(), 1, "counted as dropped");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("1 damaged records"), "{warnings:?}");
            assert_eq!(
                std::fs::read(dir.path().join("spool.bin.corrupt")).unwrap(),
                bytes
            );
        }
        // A damaged count: the records still come back; the loss is judged by damaged stretches.
        let mut bytes = good.clone();
        bytes[9] ^= 1;
        let (entries, lost) = decode(&bytes).unwrap();
        assert_eq!((entries.len(), lost), (5, 1));
        // A cut file keeps what is whole.
        let (entries, lost) = decode(&good[..good.len() - record_len / 2]).unwrap();
        assert_eq!((entries.len(), lost), (4, 1));
    }

    #[test]
    fn version_1_files_are_still_read() {
        let mut body = MAGIC_V1.to_vec();
        body.extend_from_slice(&2u32.to_be_bytes());
        for seq in [3u64, 4] {
            let f = frame(seq);
            body.extend_from_slice(&BOOT);
            body.extend_from_slice(&seq.to_be_bytes());
            body.extend_from_slice(&(f.len() as u32).to_be_bytes());
            body.extend_from_slice(&f);
        }
        let digest = sha256(&body);
        body.extend_from_slice(&digest);
        let (entries, lost) = decode(&body).unwrap();
        assert_eq!(lost, 0);
        assert_eq!(entries.iter().map(|e| e.1).collect::<Vec<_>>(), vec![3, 4]);
        body[20] ^= 1;
        assert!(matches!(
            decode(&body),
            Err(SpoolError::Corrupt("checksum mismatch"))
        ));
    }

    #[test]
    fn spooled_version_1_reports_survive_an_upgrade() {
        // A spool image written by an agent that sent the version 1 model (kind ReportV1).
        let payload = Message::Report(Box::default()).encode_payload().unwrap();
        let old = routerstats_shared::message::frame_bytes(
            routerstats_shared::MessageKind::ReportV1,
            &payload,
        )
        .unwrap();
        let mut s = Spool::new(cfg(10));
        s.push(BOOT, 1, old.clone());
        s.push(BOOT, 2, frame(2));
        let (back, lost) = decode(&s.encode()).unwrap();
        assert_eq!((back.len(), lost), (2, 0));
        assert_eq!(back[0].2, old);
    }

    #[test]
    fn decode_rejects_damage_with_reasons() {
        let mut s = Spool::new(cfg(10));
        s.push(BOOT, 1, frame(1));
        let good = s.encode();
        assert_eq!(decode(&good).unwrap().0.len(), 1);
        assert!(matches!(
            decode(b"short"),
            Err(SpoolError::Corrupt("not a spool file"))
        ));
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        assert!(matches!(
            decode(&wrong_magic),
            Err(SpoolError::Corrupt("not a spool file"))
        ));
        // A well-checksummed record whose frame is not a report frame is skipped.
        let mut image = MAGIC.to_vec();
        image.extend_from_slice(&1u32.to_be_bytes());
        image.extend_from_slice(&sha256(&1u32.to_be_bytes())[..4]);
        let mut body = BOOT.to_vec();
        body.extend_from_slice(&1u64.to_be_bytes());
        body.extend_from_slice(b"abcdefghij");
        let len = (body.len() as u32).to_be_bytes();
        image.extend_from_slice(RECORD);
        image.extend_from_slice(&len);
        image.extend_from_slice(&body);
        image.extend_from_slice(&record_check(&len, &body));
        assert_eq!(decode(&image).unwrap(), (Vec::new(), 1));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncated_images_lose_only_the_cut_records(cut in 0usize..2000) {
            let mut s = Spool::new(cfg(10));
            for seq in 1..=3 { s.push(BOOT, seq, frame(seq)); }
            let image = s.encode();
            let cut = cut.min(image.len() - 1);
            match decode(&image[..cut]) {
                Err(_) => prop_assert!(cut < MAGIC.len()),
                // The record count was cut too: nothing kept, and at least one loss reported.
                Ok((entries, lost)) if cut < 16 => prop_assert!(entries.is_empty() && lost >= 1),
                Ok((entries, lost)) => {
                    prop_assert!(entries.len() < 3);
                    prop_assert_eq!(entries.len() as u64 + lost, 3);
                    let expect: Vec<u64> = (1..=entries.len() as u64).collect();
                    prop_assert_eq!(entries.iter().map(|e| e.1).collect::<Vec<_>>(), expect);
                }
            }
        }

        #[test]
        fn any_flipped_byte_keeps_the_other_records(at in 0usize..2000, bit in 0u8..8) {
            let mut s = Spool::new(cfg(10));
            for seq in 1..=4 { s.push(BOOT, seq, frame(seq)); }
            let mut image = s.encode();
            let at = at % image.len();
            image[at] ^= 1 << bit;
            match decode(&image) {
                Err(_) => prop_assert!(at < MAGIC.len()),
                Ok((entries, lost)) => {
                    prop_assert!(entries.len() >= 3, "{} kept", entries.len());
                    prop_assert!(entries.len() as u64 + lost >= 4);
                }
            }
        }
    }
}
