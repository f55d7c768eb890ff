//! The action journal: recent action ids with their results, kept in a small file in the agent's
//! state directory so a redelivered action is answered, not run again, across restarts.
//!
//! One line per action: `<id> <deadline> started` before it runs, then `<id> <deadline> <hex of
//! the encoded ActionResult frame>` once it ended. The file is rewritten whole (temp file, fsync,
//! rename) on every change; entries whose deadline is more than [`KEEP_AFTER_DEADLINE`] seconds
//! past (by the collector's clock, which deadlines are in) are dropped (the collector never sends an action after its deadline), and at most
//! [`MAX_ENTRIES`] are kept. A damaged line is skipped with a warning, never a panic.
//!
//! In memory the entries are a `Vec` sorted by id ([`Entries`]): a few hundred at most, and a
//! `BTreeMap` of them cost 9 KB of code on mips_24kc (packaging/README.md, Size).

use std::io::Write;
use std::path::PathBuf;

use routerstats_shared::token::hex;

/// Entries kept at most (the oldest ids go first).
pub const MAX_ENTRIES: usize = 512;
/// Seconds an entry is kept after its action's deadline.
pub const KEEP_AFTER_DEADLINE: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Started,
    Finished(Vec<u8>),
}

/// What the journal knows about an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recall {
    Unknown,
    Started,
    Result(Vec<u8>),
}

/// Entries by id, ascending: `(id, (deadline, entry))`.
#[derive(Debug, Default)]
struct Entries(Vec<(i64, (u64, Entry))>);

impl Entries {
    fn insert(&mut self, id: i64, e: (u64, Entry)) {
        match self.0.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) => self.0[i].1 = e,
            Err(i) => self.0.insert(i, (id, e)),
        }
    }

    fn get(&self, id: &i64) -> Option<&(u64, Entry)> {
        let i = self.0.binary_search_by_key(id, |(k, _)| *k).ok()?;
        Some(&self.0[i].1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The journal file and its entries.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    entries: Entries,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses journal text; the second value counts damaged lines.
fn parse(text: &str) -> (Entries, usize) {
    let mut out = Entries::default();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = line.split_whitespace();
        let parsed = (|| {
            let id: i64 = w.next()?.parse().ok()?;
            let deadline: u64 = w.next()?.parse().ok()?;
            let entry = match w.next()? {
                "started" => Entry::Started,
                h => Entry::Finished(unhex(h)?),
            };
            Some((id, (deadline, entry)))
        })();
        match parsed {
            Some((id, e)) => {
                out.insert(id, e);
            }
            None => bad += 1,
        }
    }
    (out, bad)
}

impl Journal {
    /// Loads the journal (a missing file is an empty journal); the warning tells about a
    /// damaged or unreadable file.
    pub fn open(path: PathBuf) -> (Journal, Option<String>) {
        let (entries, warning) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (entries, bad) = parse(&text);
                (
                    entries,
                    (bad > 0).then(|| {
                        format!(
                            "action journal {}: {bad} damaged lines skipped",
                            path.display()
                        )
                    }),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Entries::default(), None),
            Err(e) => (
                Entries::default(),
                Some(format!(
                    "cannot read the action journal {}: {e}",
                    path.display()
                )),
            ),
        };
        (Journal { path, entries }, warning)
    }

    pub fn recall(&self, id: i64) -> Recall {
        match self.entries.get(&id) {
            None => Recall::Unknown,
            Some((_, Entry::Started)) => Recall::Started,
            Some((_, Entry::Finished(f))) => Recall::Result(f.clone()),
        }
    }

    /// Records that an action is about to run (durably, before it runs). `now` is the
    /// collector's clock, the one deadlines are in.
    pub fn started(&mut self, id: i64, deadline: u64, now: u64) -> std::io::Result<()> {
        self.entries.insert(id, (deadline, Entry::Started));
        self.save(now)
    }

    /// Records an action's result frame.
    pub fn finished(
        &mut self,
        id: i64,
        deadline: u64,
        frame: &[u8],
        now: u64,
    ) -> std::io::Result<()> {
        self.entries
            .insert(id, (deadline, Entry::Finished(frame.to_vec())));
        self.save(now)
    }

    fn prune(&mut self, now: u64) {
        let v = &mut self.entries.0;
        v.retain(|(_, (deadline, _))| deadline.saturating_add(KEEP_AFTER_DEADLINE) > now);
        // The oldest ids go first.
        let extra = v.len().saturating_sub(MAX_ENTRIES);
        v.drain(..extra);
    }

    fn save(&mut self, now: u64) -> std::io::Result<()> {
        self.prune(now);
        let mut text = String::new();
        for (id, (deadline, e)) in &self.entries.0 {
            let v = match e {
                Entry::Started => "started".to_string(),
                Entry::Finished(f) => hex(f),
            };
            text.push_str(&format!("{id} {deadline} {v}\n"));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_prune_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let now = 1_000_000;
        let far = now + 1000;
        let (mut j, w) = Journal::open(path.clone());
        assert!(w.is_none());
        j.started(1, far, now).unwrap();
        j.finished(2, far, &[1, 2, 255], now).unwrap();
        j.finished(3, 10, &[9], now).unwrap(); // long past its deadline: pruned
        let (j, _) = Journal::open(path.clone());
        assert_eq!(j.recall(1), Recall::Started);
        assert_eq!(j.recall(2), Recall::Result(vec![1, 2, 255]));
        assert_eq!(j.recall(3), Recall::Unknown);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage line\n7 x started\n8 1 zz\n");
        std::fs::write(&path, text).unwrap();
        let (j, w) = Journal::open(path);
        assert!(w.unwrap().contains("3 damaged lines"));
        assert_eq!(j.recall(2), Recall::Result(vec![1, 2, 255]));
    }

    #[test]
    fn bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path().join("j"));
        let far = 2_000_000;
        for id in 0..(MAX_ENTRIES as i64 + 10) {
            j.entries.insert(id, (far, Entry::Started));
        }
        j.finished(100_000, far, &[1], 1_000_000).unwrap();
        assert_eq!(j.entries.len(), MAX_ENTRIES);
        assert_eq!(j.recall(0), Recall::Unknown);
    }
}
