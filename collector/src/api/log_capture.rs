//! Log capture: the tracing layer [`LogCapture`] (installed by the CLI next to the console
//! output) copies every log event into an in-memory ring ([`log_ring`]) that `/api/logs`
//! ([`super::monitor`]) reads and clears.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;

use super::times::iso_ms;
use crate::clock::now_ms;

/// Log lines kept in memory.
pub const LOG_CAPACITY: usize = 1000;
/// Longest kept log line (characters); longer ones are cut.
pub const LOG_LINE_MAX_CHARS: usize = 2000;

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// RFC 3339 UTC.
    pub timestamp: String,
    pub timestamp_ms: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message followed by its fields as `key=value`.
    pub message: String,
    #[serde(skip)]
    severity: u8,
}

/// The in-memory ring of recent log lines.
#[derive(Debug)]
pub struct LogRing {
    lines: Mutex<VecDeque<LogLine>>,
    capacity: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        LogRing {
            lines: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, line: LogLine) {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while l.len() >= self.capacity {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// The newest `count` lines at `min_severity` or more severe, oldest first.
    pub fn recent(&self, count: usize, min_severity: u8) -> Vec<LogLine> {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<LogLine> = l
            .iter()
            .rev()
            .filter(|x| x.severity >= min_severity)
            .take(count)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Empties the ring; returns how many lines it held.
    pub fn clear(&self) -> usize {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let n = l.len();
        l.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

static LOG_RING: LazyLock<LogRing> = LazyLock::new(|| LogRing::new(LOG_CAPACITY));

/// The process-wide ring that [`LogCapture`] fills and `/api/logs` reads.
pub fn log_ring() -> &'static LogRing {
    &LOG_RING
}

/// Severity rank: higher is more severe (TRACE 1 .. ERROR 5).
pub(crate) fn severity(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 5,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 2,
        tracing::Level::TRACE => 1,
    }
}

/// Parses `?level=` (case-insensitive; `warning` is accepted for `warn`).
pub(crate) fn parse_level(s: &str) -> Option<u8> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Some(5),
        "warn" | "warning" => Some(4),
        "info" => Some(3),
        "debug" => Some(2),
        "trace" => Some(1),
        _ => None,
    }
}

/// Collects an event's message and fields as text.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl tracing::field::Visit for EventText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Cuts `s` to at most `max` characters.
fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// A tracing layer copying every event that passes the subscriber's filter into [`log_ring`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LogCapture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let mut text = EventText::default();
        event.record(&mut text);
        let ts = now_ms();
        log_ring().push(LogLine {
            timestamp: iso_ms(ts),
            timestamp_ms: ts,
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: truncate_chars(
                format!("{}{}", text.message, text.fields),
                LOG_LINE_MAX_CHARS,
            ),
            severity: severity(meta.level()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest_and_filters_levels() {
        let ring = LogRing::new(3);
        for (i, lvl) in [
            tracing::Level::INFO,
            tracing::Level::ERROR,
            tracing::Level::DEBUG,
            tracing::Level::WARN,
        ]
        .iter()
        .enumerate()
        {
            ring.push(LogLine {
                timestamp: iso_ms(i as i64),
                timestamp_ms: i as i64,
                level: lvl.to_string(),
                target: "t".into(),
                message: format!("m{i}"),
                severity: severity(lvl),
            });
        }
        assert_eq!(ring.len(), 3);
        let all: Vec<String> = ring.recent(10, 1).into_iter().map(|l| l.message).collect();
        assert_eq!(all, ["m1", "m2", "m3"]);
        let warn: Vec<String> = ring
            .recent(10, parse_level("WARNING").unwrap())
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(warn, ["m1", "m3"]);
        assert_eq!(
            ring.recent(1, 1).first().map(|l| l.message.as_str()),
            Some("m3")
        );
        assert_eq!(ring.clear(), 3);
        assert!(ring.is_empty());
        assert_eq!(parse_level("loud"), None);
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        let s = "é".repeat(LOG_LINE_MAX_CHARS + 10);
        let cut = truncate_chars(s, LOG_LINE_MAX_CHARS);
        assert_eq!(cut.chars().count(), LOG_LINE_MAX_CHARS + 1);
        assert_eq!(truncate_chars("short".into(), 10), "short");
    }
}
