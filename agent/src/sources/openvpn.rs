//! OpenVPN status files (`--status FILE` or the management `status N` output): server files in
//! `--status-version` 1, 2 and 3, and the `OpenVPN STATISTICS` file of a client or static-key
//! instance, parsed into an [`OvpnInstance`] named after the file.
//!
//! Tolerance rules (each one has a test):
//! - Columns are mapped by the names in the `HEADER` rows (v2/v3) or the column header lines (v1),
//!   never by position, so the columns OpenVPN 2.3 to 2.6 added (Virtual IPv6 Address, Client ID,
//!   Peer ID, Data Channel Cipher) are found wherever they sit; unknown columns are ignored. A
//!   header cell that glues known names together (`UsernameClient ID`) is split into them.
//! - v3 lines are split at tabs. A line without tabs, or whose tab-separated fields do not match
//!   its header (tabs turned into spaces, mixed tabs and spaces), is split at runs of whitespace
//!   and the words are fitted to the header columns by type: numbers, IPv4 / IPv6 virtual
//!   addresses (an empty one may have vanished with the spaces), dates of two
//!   (`2021-10-10 11:48:04`) or five (`Thu Apr 30 13:55:38 2020`) words, a common name of one or
//!   more words. A line that fits no way is skipped with the reason.
//! - Times come from the `(time_t)` columns and `TIME`'s last field when present; otherwise the
//!   date text is parsed, as UTC (OpenVPN prints local time, which the file does not name).
//! - `UNDEF` or empty usernames, real addresses and ciphers become `None`; real addresses are
//!   kept as printed (`udp6:` prefixes, IPv4-mapped IPv6, no port). Common names are kept as
//!   printed, `UNDEF` included, and duplicates stay separate clients.
//! - Routing virtual addresses are kept as printed (an IP, a network or a MAC); OpenVPN prints
//!   them in lower case, so a trailing upper-case `C` is the cached flag: stripped, sets `cached`.
//! - v1 client lists print no virtual address: it is taken from the routing table when exactly one
//!   uncached host route of that address family has the client's common name and real address.
//! - A file without `END` was cut off mid-write: a skip entry says so, and a last line without
//!   its newline is skipped as incomplete even when it happens to parse.
//! - `GLOBAL_STATS` rows (the `GLOBAL STATS` section in v1) fill [`OvpnGlobalStats`]:
//!   `Max bcast/mcast queue length` and, since OpenVPN 2.6, `dco_enabled`. Other global rows,
//!   unknown `name,number` counters of a statistics file and `HEADER` rows of tables the model
//!   has no place for are listed as unused ([`Parsed::unused`]); any other line that cannot be
//!   used is skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use routerstats_shared::{
    OvpnClient, OvpnFormat, OvpnGlobalStats, OvpnInstance, OvpnRoute, OvpnStatistics,
};

use super::{read_text, ParseError, Parsed, SourceError};

/// Reads and parses one status file; the instance is named after the file stem.
pub fn read(path: &Path) -> Result<Parsed<OvpnInstance>, SourceError> {
    let text = read_text(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parse(&text, &name)?)
}

/// Reads and parses every status file, keeping each file's own result.
pub fn read_all(paths: &[PathBuf]) -> Vec<(PathBuf, Result<Parsed<OvpnInstance>, SourceError>)> {
    paths.iter().map(|p| (p.clone(), read(p))).collect()
}

/// Parses one status file of any supported format (detected from its text) as instance `name`.
pub fn parse(text: &str, name: &str) -> Result<Parsed<OvpnInstance>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let lines = split_lines(text);
    let format = detect(&lines).ok_or_else(|| {
        ParseError::Invalid(
            "not an OpenVPN status file: no client list, statistics or v2/v3 rows".into(),
        )
    })?;
    let mut out = Parsed::new(OvpnInstance {
        name: name.to_string(),
        format,
        statistics: (format == OvpnFormat::ClientStatistics).then(OvpnStatistics::default),
        ..OvpnInstance::default()
    });
    let mut state = State::default();
    let mut saw_end = false;
    for line in &lines {
        let t = line.text.trim();
        if t.is_empty() {
            continue;
        }
        if saw_end {
            out.skip(line.no, format!("text after END: {}", show(t)));
            continue;
        }
        if !line.complete && t != "END" {
            out.skip(
                line.no,
                format!("incomplete last line (file cut off mid-write): {}", show(t)),
            );
            continue;
        }
        saw_end = match format {
            OvpnFormat::V1 => v1_line(&mut state, &mut out, line.no, t),
            OvpnFormat::V2 | OvpnFormat::V3 => tagged_line(&mut state, &mut out, line.no, t),
            OvpnFormat::ClientStatistics => statistics_line(&mut out, line.no, t),
        };
    }
    if !saw_end {
        out.skip(0, "no END line: the file was cut off mid-write");
    }
    if format == OvpnFormat::V1 {
        fill_v1_virtual_addresses(&mut out.value);
    }
    if !saw_end && !has_data(&out.value) {
        let why = out
            .skipped
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(ParseError::Invalid(format!(
            "no usable OpenVPN status data ({why})"
        )));
    }
    Ok(out)
}

/// One input line: 1-based number, text without its line ending, whether its newline was there.
struct Line<'a> {
    no: usize,
    text: &'a str,
    complete: bool,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, complete, next) = match rest.split_once('\n') {
            Some((line, next)) => (line, true, next),
            None => (rest, false, ""),
        };
        out.push(Line {
            no: out.len() + 1,
            text: line.strip_suffix('\r').unwrap_or(line),
            complete,
        });
        rest = next;
    }
    out
}

/// Row tags of `--status-version` 2 and 3 (END alone says nothing about the format).
const TAGS: &[&str] = &[
    "TITLE",
    "TIME",
    "HEADER",
    "CLIENT_LIST",
    "ROUTING_TABLE",
    "GLOBAL_STATS",
];

/// The format of the first line that tells.
fn detect(lines: &[Line<'_>]) -> Option<OvpnFormat> {
    lines.iter().find_map(|line| {
        let t = line.text.trim();
        if matches!(t, "OpenVPN CLIENT LIST" | "ROUTING TABLE" | "GLOBAL STATS")
            || starts_with_ci(t, "Common Name,")
        {
            return Some(OvpnFormat::V1);
        }
        if t == "OpenVPN STATISTICS" || t.starts_with("TUN/TAP ") || t.starts_with("TCP/UDP ") {
            return Some(OvpnFormat::ClientStatistics);
        }
        let (tag, rest) = split_tag(t);
        if !TAGS.contains(&tag) {
            return None;
        }
        match rest.chars().next() {
            Some(',') => Some(OvpnFormat::V2),
            Some(c) if c.is_whitespace() => Some(OvpnFormat::V3),
            _ => None,
        }
    })
}

/// Splits a leading run of `A-Z` and `_` (a v2/v3 row tag) from the rest of the line.
fn split_tag(t: &str) -> (&str, &str) {
    let len = t
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
        .count();
    // The counted bytes are ASCII, so `len` is a char boundary.
    (t.get(..len).unwrap_or(""), t.get(len..).unwrap_or(""))
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn has_data(inst: &OvpnInstance) -> bool {
    let stats = inst
        .statistics
        .as_ref()
        .is_some_and(|s| *s != OvpnStatistics::default());
    inst.updated.is_some()
        || inst.title.is_some()
        || !inst.clients.is_empty()
        || !inst.routes.is_empty()
        || stats
}

/// Parser state carried from line to line.
#[derive(Default)]
struct State {
    /// v1 only: which block the lines belong to.
    section: Section,
    client_cols: Option<Vec<Col>>,
    route_cols: Option<Vec<Col>>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Section {
    #[default]
    Start,
    Clients,
    Routes,
    Global,
}

/// Which table a row belongs to (the virtual address column means a different thing in each).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Table {
    Clients,
    Routes,
}

/// Handles one `--status-version 1` line; true on `END`.
fn v1_line(st: &mut State, out: &mut Parsed<OvpnInstance>, no: usize, t: &str) -> bool {
    match t {
        "END" => return true,
        "OpenVPN CLIENT LIST" => st.section = Section::Clients,
        "ROUTING TABLE" => st.section = Section::Routes,
        "GLOBAL STATS" => st.section = Section::Global,
        // Only before the column header, so a client named `Updated` stays a client.
        _ if st.client_cols.is_none() && starts_with_ci(t, "Updated,") => {
            set_updated(out, no, t.get("Updated,".len()..).unwrap_or(""))
        }
        _ => {
            let fields: Vec<&str> = t.split(',').map(str::trim).collect();
            let first = fields.first().copied().unwrap_or("");
            if st.section == Section::Start && first.eq_ignore_ascii_case("Common Name") {
                st.section = Section::Clients;
            }
            match st.section {
                Section::Start => {
                    out.skip(no, format!("line before OpenVPN CLIENT LIST: {}", show(t)))
                }
                Section::Global => match t.rsplit_once(',') {
                    Some((name, value)) => global_stat(out, no, name.trim(), value.trim()),
                    None => out.skip(no, format!("not a name,value line: {}", show(t))),
                },
                Section::Clients
                    if st.client_cols.is_none() && first.eq_ignore_ascii_case("Common Name") =>
                {
                    st.client_cols = Some(header_cells(&fields));
                }
                Section::Routes
                    if st.route_cols.is_none() && first.eq_ignore_ascii_case("Virtual Address") =>
                {
                    st.route_cols = Some(header_cells(&fields));
                }
                Section::Clients => table_row(
                    out,
                    no,
                    Table::Clients,
                    st.client_cols.as_deref(),
                    &fields,
                    false,
                ),
                Section::Routes => table_row(
                    out,
                    no,
                    Table::Routes,
                    st.route_cols.as_deref(),
                    &fields,
                    false,
                ),
            }
        }
    }
    false
}

/// Handles one `--status-version` 2 or 3 line (comma, tab or whitespace separated); true on `END`.
fn tagged_line(st: &mut State, out: &mut Parsed<OvpnInstance>, no: usize, t: &str) -> bool {
    let (tag, rest) = split_tag(t);
    let mut chars = rest.chars();
    let sep = chars.next();
    let body = chars.as_str();
    // `words` lines (no tab or comma after the tag) keep no empty fields: fit them by type.
    let (fields, words): (Vec<&str>, bool) = match sep {
        None => (Vec::new(), false),
        Some(',') => (body.split(',').map(str::trim).collect(), false),
        Some('\t') => (body.split('\t').map(str::trim).collect(), false),
        Some(c) if c.is_whitespace() => (body.split_whitespace().collect(), true),
        Some(_) => {
            out.skip(no, format!("unknown line: {}", show(t)));
            return false;
        }
    };
    let tabs = sep == Some('\t');
    match tag {
        "END" if sep.is_none() => return true,
        "TITLE" => {
            let title = body.trim();
            if !title.is_empty() {
                out.value.title = Some(title.to_string());
            }
        }
        "TIME" => set_time(out, no, &fields),
        "HEADER" => {
            let table = fields.first().copied().unwrap_or("");
            let cells = fields.get(1..).unwrap_or(&[]);
            let cols = if words {
                header_words(&cells.join(" "))
            } else {
                header_cells(cells)
            };
            match table {
                "CLIENT_LIST" => st.client_cols = Some(cols),
                "ROUTING_TABLE" => st.route_cols = Some(cols),
                // A table this model has no place for.
                other => out.unused(no, format!("HEADER of table {}", show(other))),
            }
        }
        "CLIENT_LIST" | "ROUTING_TABLE" => {
            let (table, cols) = match tag {
                "CLIENT_LIST" => (Table::Clients, st.client_cols.as_deref()),
                _ => (Table::Routes, st.route_cols.as_deref()),
            };
            if words {
                words_row(out, no, table, cols, &fields);
            } else {
                table_row(out, no, table, cols, &fields, tabs);
            }
        }
        "GLOBAL_STATS" => match fields.split_last() {
            // Whitespace-collapsed rows: the name is every word but the last.
            Some((value, name)) if !name.is_empty() => {
                let name = if words {
                    name.join(" ")
                } else {
                    name.join(",")
                };
                global_stat(out, no, name.trim(), value)
            }
            _ => out.skip(no, format!("GLOBAL_STATS without a value: {}", show(t))),
        },
        _ => out.skip(no, format!("unknown line: {}", show(t))),
    }
    false
}

/// Handles one `OpenVPN STATISTICS` line; true on `END`.
fn statistics_line(out: &mut Parsed<OvpnInstance>, no: usize, t: &str) -> bool {
    if t == "END" {
        return true;
    }
    if t == "OpenVPN STATISTICS" {
        return false;
    }
    let Some((key, value)) = t.split_once(',') else {
        out.skip(no, format!("not a name,value line: {}", show(t)));
        return false;
    };
    let (key, value) = (key.trim(), value.trim());
    if key.eq_ignore_ascii_case("Updated") {
        set_updated(out, no, value);
        return false;
    }
    let stats = out
        .value
        .statistics
        .get_or_insert_with(OvpnStatistics::default);
    let slot = match key.to_ascii_lowercase().as_str() {
        "tun/tap read bytes" => Some(&mut stats.tun_read_bytes),
        "tun/tap write bytes" => Some(&mut stats.tun_write_bytes),
        "tcp/udp read bytes" => Some(&mut stats.link_read_bytes),
        "tcp/udp write bytes" => Some(&mut stats.link_write_bytes),
        "auth read bytes" => Some(&mut stats.auth_read_bytes),
        "pre-compress bytes" => Some(&mut stats.pre_compress_bytes),
        "post-compress bytes" => Some(&mut stats.post_compress_bytes),
        "pre-decompress bytes" => Some(&mut stats.pre_decompress_bytes),
        "post-decompress bytes" => Some(&mut stats.post_decompress_bytes),
        _ => None,
    };
    match (slot, digits(value)) {
        (Some(slot), Some(n)) => *slot = Some(n),
        (Some(_), None) => out.skip(no, format!("{key}: not a number: {}", show(value))),
        (None, Some(_)) => out.unused(no, format!("counter {}", show(key))),
        (None, None) => out.skip(no, format!("unknown line: {}", show(t))),
    }
    false
}

/// One `GLOBAL_STATS` row: `name` and its `value`.
fn global_stat(out: &mut Parsed<OvpnInstance>, no: usize, name: &str, value: &str) {
    let global = out
        .value
        .global
        .get_or_insert_with(OvpnGlobalStats::default);
    if name.eq_ignore_ascii_case("Max bcast/mcast queue length") {
        match digits(value) {
            Some(n) => global.max_bcast_mcast_queue_len = Some(n),
            None => out.skip(no, format!("{}: not a number: {}", show(name), show(value))),
        }
    } else if name.eq_ignore_ascii_case("dco_enabled") {
        match value {
            "0" => global.dco_enabled = Some(false),
            "1" => global.dco_enabled = Some(true),
            _ => out.skip(no, format!("dco_enabled: not 0 or 1: {}", show(value))),
        }
    } else {
        out.unused(no, format!("GLOBAL_STATS {}", show(name)));
    }
}

/// `Updated,<date>` of v1 and statistics files.
fn set_updated(out: &mut Parsed<OvpnInstance>, no: usize, date: &str) {
    match parse_date(date) {
        Some(t) => out.value.updated = Some(t),
        None => out.skip(no, format!("Updated: not a date: {}", show(date))),
    }
}

/// `TIME,<date>,<time_t>`: the time_t when it is a number, else the date text.
fn set_time(out: &mut Parsed<OvpnInstance>, no: usize, fields: &[&str]) {
    let time_t = match fields {
        [.., last] if fields.len() >= 2 => digits(last),
        _ => None,
    };
    let all_but_last = fields.get(..fields.len().saturating_sub(1)).unwrap_or(&[]);
    let updated = time_t
        .or_else(|| parse_date(&all_but_last.join(" ")))
        .or_else(|| parse_date(&fields.join(" ")));
    match updated {
        Some(t) => out.value.updated = Some(t),
        None => out.skip(
            no,
            format!("TIME: no time_t or date in {}", show(&fields.join(" "))),
        ),
    }
}

/// A column this parser knows by name; anything else is [`Col::Other`] and ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    CommonName,
    RealAddress,
    VirtualAddress,
    VirtualIpv6,
    BytesReceived,
    BytesSent,
    ConnectedSince,
    ConnectedSinceT,
    Username,
    ClientId,
    PeerId,
    Cipher,
    LastRef,
    LastRefT,
    Other,
}

/// Column names as OpenVPN prints them in header lines.
const NAMES: &[(&str, Col)] = &[
    ("Common Name", Col::CommonName),
    ("Real Address", Col::RealAddress),
    ("Virtual Address", Col::VirtualAddress),
    ("Virtual IPv6 Address", Col::VirtualIpv6),
    ("Bytes Received", Col::BytesReceived),
    ("Bytes Sent", Col::BytesSent),
    ("Connected Since", Col::ConnectedSince),
    ("Connected Since (time_t)", Col::ConnectedSinceT),
    ("Username", Col::Username),
    ("Client ID", Col::ClientId),
    ("Peer ID", Col::PeerId),
    ("Data Channel Cipher", Col::Cipher),
    ("Last Ref", Col::LastRef),
    ("Last Ref (time_t)", Col::LastRefT),
];

impl Col {
    fn label(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("column")
    }
}

/// Columns of a header split at its separator: one per cell, except that a cell made of several
/// known names (glued, or joined by spaces where a tab was lost) yields each of them.
fn header_cells(cells: &[&str]) -> Vec<Col> {
    cells
        .iter()
        .flat_map(|cell| scan_names(cell, true).unwrap_or_else(|| vec![Col::Other]))
        .collect()
}

/// Columns of a header whose separators became spaces: known names matched longest first,
/// any other word is one unknown column.
fn header_words(text: &str) -> Vec<Col> {
    scan_names(text, false).unwrap_or_default()
}

/// Reads known column names off the front of `s`. With `strict`, text that is not a known name
/// makes the whole scan fail; otherwise each such word becomes [`Col::Other`].
fn scan_names(s: &str, strict: bool) -> Option<Vec<Col>> {
    let mut cols = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        match known_prefix(rest) {
            Some((col, len)) => {
                cols.push(col);
                rest = rest.get(len..).unwrap_or("").trim_start();
            }
            None if strict => return None,
            None => {
                cols.push(Col::Other);
                rest = rest
                    .split_once(char::is_whitespace)
                    .map(|(_, r)| r)
                    .unwrap_or("")
                    .trim_start();
            }
        }
    }
    Some(cols)
}

/// The longest known name `s` starts with, if it ends at whitespace, at the end, or where
/// another known name starts right away (`UsernameClient ID`).
fn known_prefix(s: &str) -> Option<(Col, usize)> {
    let starts_with_name = |t: &str| NAMES.iter().any(|(n, _)| starts_with_ci(t, n));
    NAMES
        .iter()
        .filter(|(name, _)| {
            starts_with_ci(s, name) && {
                let after = s.get(name.len()..).unwrap_or("");
                after.is_empty()
                    || after.starts_with(char::is_whitespace)
                    || starts_with_name(after)
            }
        })
        .max_by_key(|(name, _)| name.len())
        .map(|(name, col)| (*col, name.len()))
}

/// A row split at its separator. Tab-separated rows (`may_fit_words`) that do not match their
/// header are retried as whitespace-separated words.
fn table_row(
    out: &mut Parsed<OvpnInstance>,
    no: usize,
    table: Table,
    cols: Option<&[Col]>,
    fields: &[&str],
    may_fit_words: bool,
) {
    let Some(cols) = cols else {
        out.skip(
            no,
            format!("{} row before its column header", table_name(table)),
        );
        return;
    };
    let direct = if fields.len() == cols.len() {
        let values: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        record(table, cols, &values)
    } else if fields.len() < cols.len() {
        Err(format!(
            "incomplete row: {} of {} fields",
            fields.len(),
            cols.len()
        ))
    } else {
        Err(format!(
            "{} fields but the header has {}",
            fields.len(),
            cols.len()
        ))
    };
    let result = match direct {
        Err(e) if may_fit_words => {
            let words: Vec<&str> = fields.iter().flat_map(|f| f.split_whitespace()).collect();
            fit_words(table, cols, &words)
                .and_then(|v| record(table, cols, &v))
                .map_err(|_| e)
        }
        other => other,
    };
    keep(out, no, result);
}

/// A row whose separators became spaces: fitted to the header by type.
fn words_row(
    out: &mut Parsed<OvpnInstance>,
    no: usize,
    table: Table,
    cols: Option<&[Col]>,
    words: &[&str],
) {
    let Some(cols) = cols else {
        out.skip(
            no,
            format!("{} row before its column header", table_name(table)),
        );
        return;
    };
    let result = fit_words(table, cols, words).and_then(|v| record(table, cols, &v));
    keep(out, no, result);
}

/// A parsed row, one of either table.
enum Record {
    Client(OvpnClient),
    Route(OvpnRoute),
}

fn keep(out: &mut Parsed<OvpnInstance>, no: usize, result: Result<Record, String>) {
    match result {
        Ok(Record::Client(c)) => out.value.clients.push(c),
        Ok(Record::Route(r)) => out.value.routes.push(r),
        Err(reason) => out.skip(no, reason),
    }
}

fn table_name(table: Table) -> &'static str {
    match table {
        Table::Clients => "client list",
        Table::Routes => "routing table",
    }
}

fn record(table: Table, cols: &[Col], values: &[String]) -> Result<Record, String> {
    match table {
        Table::Clients => client_from(cols, values).map(Record::Client),
        Table::Routes => route_from(cols, values).map(Record::Route),
    }
}

fn client_from(cols: &[Col], values: &[String]) -> Result<OvpnClient, String> {
    let mut c = OvpnClient::default();
    let (mut since, mut since_t) = ("", "");
    for (&col, value) in cols.iter().zip(values) {
        let v = value.trim();
        match col {
            Col::CommonName => c.common_name = v.to_string(),
            Col::RealAddress => c.real_address = opt_text(v),
            Col::VirtualAddress => c.virtual_address = opt_ip(col, v)?,
            Col::VirtualIpv6 => c.virtual_ipv6 = opt_ip(col, v)?,
            Col::BytesReceived => c.bytes_received = number(col, v)?,
            Col::BytesSent => c.bytes_sent = number(col, v)?,
            Col::ConnectedSince => since = v,
            Col::ConnectedSinceT => since_t = v,
            Col::Username => c.username = opt_text(v),
            Col::ClientId => c.client_id = opt_number(col, v)?,
            Col::PeerId => c.peer_id = opt_number(col, v)?,
            Col::Cipher => c.cipher = opt_text(v),
            Col::LastRef | Col::LastRefT | Col::Other => {}
        }
    }
    c.connected_since = pick_time(Col::ConnectedSince, since, since_t)?;
    Ok(c)
}

fn route_from(cols: &[Col], values: &[String]) -> Result<OvpnRoute, String> {
    let mut r = OvpnRoute::default();
    let (mut last, mut last_t) = ("", "");
    for (&col, value) in cols.iter().zip(values) {
        let v = value.trim();
        match col {
            Col::VirtualAddress => {
                let (addr, cached) = strip_cached(v);
                r.virtual_address = addr.to_string();
                r.cached = cached;
            }
            Col::CommonName => r.common_name = v.to_string(),
            Col::RealAddress => r.real_address = opt_text(v),
            Col::LastRef => last = v,
            Col::LastRefT => last_t = v,
            _ => {}
        }
    }
    if r.virtual_address.is_empty() {
        return Err("routing table row without a virtual address".into());
    }
    r.last_ref = pick_time(Col::LastRef, last, last_t)?;
    Ok(r)
}

/// Splits the cached flag off a routing virtual address: `10.8.0.6C` is `10.8.0.6`, cached.
fn strip_cached(v: &str) -> (&str, bool) {
    match v.strip_suffix('C') {
        Some(addr) if !addr.is_empty() => (addr, true),
        _ => (v, false),
    }
}

/// Text of a column, `None` when empty or `UNDEF`.
fn opt_text(v: &str) -> Option<String> {
    (!v.is_empty() && v != "UNDEF").then(|| v.to_string())
}

fn opt_ip(col: Col, v: &str) -> Result<Option<IpAddr>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{}: not an IP address: {}", col.label(), show(v)))
}

fn number(col: Col, v: &str) -> Result<u64, String> {
    digits(v).ok_or_else(|| format!("{}: not a number: {}", col.label(), show(v)))
}

fn opt_number(col: Col, v: &str) -> Result<Option<u64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    number(col, v).map(Some)
}

/// A time from its `(time_t)` column when that is a number, else from its date text.
fn pick_time(col: Col, text: &str, time_t: &str) -> Result<Option<u64>, String> {
    if let Some(t) = digits(time_t) {
        return Ok(Some(t));
    }
    if !text.is_empty() {
        return parse_date(text)
            .map(Some)
            .ok_or_else(|| format!("{}: not a date: {}", col.label(), show(text)));
    }
    if !time_t.is_empty() {
        return Err(format!(
            "{} (time_t): not a number: {}",
            col.label(),
            show(time_t)
        ));
    }
    Ok(None)
}

/// A plain unsigned decimal (no sign, no spaces) that fits in u64.
fn digits(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// How many words a column may take when a row's separators were lost, and which words fit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// One or more words (a common name with spaces).
    Words,
    /// Exactly one word of any kind.
    One,
    /// One unsigned number.
    Num,
    /// One IPv4 address, or nothing (the empty virtual address of an IPv6-only client).
    OptV4,
    /// One IPv6 address, or nothing.
    OptV6,
    /// A date of two (`2021-10-10 11:48:04`) or five (`Thu Apr 30 13:55:38 2020`) words.
    Date,
}

fn shape(table: Table, col: Col) -> Shape {
    match col {
        Col::CommonName => Shape::Words,
        Col::VirtualAddress if table == Table::Clients => Shape::OptV4,
        Col::VirtualIpv6 => Shape::OptV6,
        Col::BytesReceived
        | Col::BytesSent
        | Col::ConnectedSinceT
        | Col::LastRefT
        | Col::ClientId
        | Col::PeerId => Shape::Num,
        Col::ConnectedSince | Col::LastRef => Shape::Date,
        Col::RealAddress | Col::VirtualAddress | Col::Username | Col::Cipher | Col::Other => {
            Shape::One
        }
    }
}

/// Word counts to try for a shape, most likely first.
fn widths(shape: Shape) -> &'static [usize] {
    match shape {
        Shape::Words => &[1, 2, 3, 4, 5, 6, 7, 8],
        Shape::One | Shape::Num => &[1],
        Shape::OptV4 | Shape::OptV6 => &[1, 0],
        Shape::Date => &[2, 5],
    }
}

fn accepts(shape: Shape, span: &[&str]) -> bool {
    match (shape, span) {
        (Shape::OptV4 | Shape::OptV6, []) => true,
        (Shape::Num, [w]) => digits(w).is_some(),
        (Shape::OptV4, [w]) => w.parse::<Ipv4Addr>().is_ok(),
        (Shape::OptV6, [w]) => w.parse::<Ipv6Addr>().is_ok(),
        (Shape::Date, _) => parse_date(&span.join(" ")).is_some(),
        (Shape::One, [_]) => true,
        (Shape::Words, _) => !span.is_empty(),
        _ => false,
    }
}

/// Most columns and words a whitespace-separated row may have to be fitted (a bound on work).
const MAX_FIT_COLS: usize = 32;
const MAX_FIT_WORDS: usize = 64;

/// Assigns every word, in order, to the header columns so that each column gets a span its
/// shape accepts; the first assignment in preference order wins. Returns one value per column.
fn fit_words(table: Table, cols: &[Col], words: &[&str]) -> Result<Vec<String>, String> {
    let fail = || {
        format!(
            "cannot fit {} words to the {} header columns",
            words.len(),
            cols.len()
        )
    };
    if cols.len() > MAX_FIT_COLS || words.len() > MAX_FIT_WORDS {
        return Err(fail());
    }
    let shapes: Vec<Shape> = cols.iter().map(|&c| shape(table, c)).collect();
    let fewest: usize = shapes
        .iter()
        .map(|&s| widths(s).iter().min().copied().unwrap_or(0))
        .sum();
    let most: usize = shapes
        .iter()
        .map(|&s| widths(s).iter().max().copied().unwrap_or(0))
        .sum();
    if words.len() < fewest || words.len() > most {
        return Err(fail());
    }
    let mut fit = Fit {
        shapes: &shapes,
        words,
        dead: vec![false; (shapes.len() + 1) * (words.len() + 1)],
        taken: vec![0; shapes.len()],
    };
    if !fit.search(0, 0) {
        return Err(fail());
    }
    let mut values = Vec::with_capacity(cols.len());
    let mut at = 0;
    for &n in &fit.taken {
        values.push(words.get(at..at + n).ok_or_else(fail)?.join(" "));
        at += n;
    }
    Ok(values)
}

/// Depth-first search over (column, word) positions, remembering positions that lead nowhere.
struct Fit<'a> {
    shapes: &'a [Shape],
    words: &'a [&'a str],
    dead: Vec<bool>,
    taken: Vec<usize>,
}

impl Fit<'_> {
    fn search(&mut self, col: usize, word: usize) -> bool {
        let Some(&shape) = self.shapes.get(col) else {
            return word == self.words.len();
        };
        let key = col * (self.words.len() + 1) + word;
        if self.dead.get(key).copied().unwrap_or(true) {
            return false;
        }
        for &n in widths(shape) {
            let Some(span) = self.words.get(word..word + n) else {
                continue;
            };
            if accepts(shape, span) && self.search(col + 1, word + n) {
                if let Some(t) = self.taken.get_mut(col) {
                    *t = n;
                }
                return true;
            }
        }
        if let Some(d) = self.dead.get_mut(key) {
            *d = true;
        }
        false
    }
}

/// v1 client lists print no virtual address; take it from the routing table when exactly one
/// uncached host route per address family has the client's common name and real address.
fn fill_v1_virtual_addresses(inst: &mut OvpnInstance) {
    let routes = &inst.routes;
    for c in inst.clients.iter_mut() {
        let Some(real) = c.real_address.as_deref() else {
            continue;
        };
        let hosts: Vec<IpAddr> = routes
            .iter()
            .filter(|r| {
                !r.cached
                    && r.common_name == c.common_name
                    && r.real_address.as_deref() == Some(real)
            })
            .filter_map(|r| r.virtual_address.parse::<IpAddr>().ok())
            .collect();
        let only = |want_v4: bool| {
            let mut of_family = hosts.iter().filter(|a| a.is_ipv4() == want_v4);
            match (of_family.next(), of_family.next()) {
                (Some(a), None) => Some(*a),
                _ => None,
            }
        };
        if c.virtual_address.is_none() {
            c.virtual_address = only(true);
        }
        if c.virtual_ipv6.is_none() {
            c.virtual_ipv6 = only(false);
        }
    }
}

/// Parses OpenVPN's date text as UTC: `Thu Apr 30 13:55:38 2020` (ctime style, day may be
/// space-padded) or `2021-10-10 11:48:04`.
fn parse_date(s: &str) -> Option<u64> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let (year, month, day, hms) = match words.as_slice() {
        [weekday, month, day, hms, year] => {
            if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            (digits(year)?, month_number(month)?, digits(day)?, *hms)
        }
        [ymd, hms] => {
            let mut parts = ymd.split('-');
            let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || y.len() != 4 {
                return None;
            }
            (digits(y)?, digits(m)?, digits(d)?, *hms)
        }
        _ => return None,
    };
    let mut parts = hms.split(':');
    let (h, m, sec) = (
        digits(parts.next()?)?,
        digits(parts.next()?)?,
        digits(parts.next()?)?,
    );
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year as i64, month as i64, day as i64)).ok()?;
    Some(days * 86_400 + h * 3_600 + m * 60 + sec)
}

fn month_number(name: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u64 + 1)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    // A match rather than `is_multiple_of`, which needs Rust 1.87 (the workspace allows 1.85).
    let leap = matches!(
        (year % 400, year % 100, year % 4),
        (0, _, _) | (1.., 1.., 0)
    );
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A value quoted for a skip reason, shortened.
fn show(v: &str) -> String {
    const MAX: usize = 60;
    if v.chars().count() <= MAX {
        format!("{v:?}")
    } else {
        format!("{:?}...", v.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixture, shared_fixtures_in};
    use proptest::prelude::*;

    fn ok(text: &str) -> Parsed<OvpnInstance> {
        parse(text, "t").unwrap_or_else(|e| panic!("parse failed: {e}"))
    }

    fn own(file: &str) -> Parsed<OvpnInstance> {
        let p = parse(&own_fixture(&format!("openvpn/{file}")), "own")
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        p
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn skipped_text(p: &Parsed<OvpnInstance>) -> String {
        p.skipped
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    // ---- own fixtures -------------------------------------------------------------------------

    #[test]
    fn v2_server_with_ipv6_only_and_duplicate_cn() {
        let p = own("server.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::V2);
        assert_eq!(v.updated, Some(1_715_506_867));
        assert!(v
            .title
            .as_deref()
            .unwrap()
            .starts_with("OpenVPN 2.6.8 mips-openwrt"));
        assert_eq!(v.clients.len(), 4);

        let anna = &v.clients[0];
        assert_eq!(anna.common_name, "laptop-anna");
        assert_eq!(anna.real_address.as_deref(), Some("203.0.113.45:40123"));
        assert_eq!(anna.virtual_address, ip("10.8.0.2"));
        assert_eq!(anna.virtual_ipv6, ip("fd42:8::1000"));
        assert_eq!(
            (anna.bytes_received, anna.bytes_sent),
            (1_848_213, 23_909_112)
        );
        assert_eq!(anna.connected_since, Some(1_715_500_931));
        assert_eq!(anna.username.as_deref(), Some("anna"));
        assert_eq!((anna.client_id, anna.peer_id), (Some(3), Some(0)));
        assert_eq!(anna.cipher.as_deref(), Some("AES-256-GCM"));

        let ben = &v.clients[1];
        assert_eq!(
            ben.real_address.as_deref(),
            Some("udp6:[2001:db8:42::17]:55003")
        );
        assert_eq!(ben.virtual_address, None, "IPv6-only client");
        assert_eq!(ben.virtual_ipv6, ip("fd42:8::1001"));
        assert_eq!(ben.username, None, "UNDEF username");
        assert_eq!(ben.cipher.as_deref(), Some("CHACHA20-POLY1305"));

        assert_eq!(
            v.clients[2].real_address.as_deref(),
            Some("tcp4-server:198.51.100.7:33018")
        );
        assert_eq!(v.clients[2].virtual_ipv6, None);

        // Same common name twice: two clients, not merged.
        let second = &v.clients[3];
        assert_eq!(second.common_name, "laptop-anna");
        assert_eq!(second.real_address.as_deref(), Some("::ffff:192.0.2.80"));
        assert_eq!(second.virtual_address, ip("10.8.0.10"));
        assert_eq!((second.bytes_received, second.client_id), (5120, Some(7)));

        assert_eq!(v.routes.len(), 7);
        let cached: Vec<_> = v.routes.iter().filter(|r| r.cached).collect();
        assert_eq!(cached.len(), 1);
        assert_eq!(cached[0].virtual_address, "192.168.50.23");
        assert_eq!(cached[0].last_ref, Some(1_715_506_784));
        assert_eq!(v.routes[4].virtual_address, "192.168.50.0/24");
        assert_eq!(v.routes[1].virtual_address, "fd42:8::1000");
        assert_eq!(v.routes[0].last_ref, Some(1_715_506_865));
        assert_eq!(
            v.routes[0].real_address.as_deref(),
            Some("203.0.113.45:40123")
        );
        assert_eq!(v.statistics, None);
        assert_eq!(p.state(), routerstats_shared::SourceState::Ok);
    }

    #[test]
    fn v3_tabs_with_ctime_dates_and_empty_columns() {
        let p = own("server-v3.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::V3);
        assert_eq!(v.updated, Some(1_709_490_045));
        assert_eq!(v.clients.len(), 3);
        assert_eq!(v.clients[0].virtual_ipv6, None);
        assert_eq!(v.clients[0].cipher, None, "2.4 prints no cipher column");
        assert_eq!(v.clients[1].username.as_deref(), Some("kitchen"));
        assert_eq!(v.clients[1].connected_since, Some(1_709_488_742));
        let pending = &v.clients[2];
        assert_eq!(
            pending.common_name, "UNDEF",
            "common names are kept as printed"
        );
        assert_eq!(
            (pending.virtual_address, pending.virtual_ipv6),
            (None, None)
        );
        assert_eq!((pending.client_id, pending.peer_id), (Some(5), Some(2)));
        assert_eq!(v.routes.len(), 3);
        assert_eq!(v.routes[2].virtual_address, "fd00:9::3");
    }

    #[test]
    fn v3_mixed_tabs_spaces_and_glued_header() {
        let p = own("server-v3-mixed.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::V3);
        assert_eq!(v.updated, Some(1_698_909_300), "TIME with spaces");
        assert_eq!(v.clients.len(), 4);
        let north = &v.clients[0];
        // `UsernameClient ID` was split, so the cipher is still found by name.
        assert_eq!(
            (north.username.as_deref(), north.client_id),
            (None, Some(0))
        );
        assert_eq!(north.cipher.as_deref(), Some("AES-256-GCM"));
        let south = &v.clients[1];
        assert_eq!(south.common_name, "gw-south");
        assert_eq!(south.virtual_address, ip("10.20.0.3"));
        assert_eq!(south.virtual_ipv6, ip("fd20::3"));
        assert_eq!((south.bytes_received, south.bytes_sent), (5500, 6600));
        assert_eq!(south.connected_since, Some(1_698_906_600));
        assert_eq!(south.client_id, Some(1));
        // The IPv6-only client lost its empty virtual address column with the spaces.
        let cam = &v.clients[2];
        assert_eq!(
            cam.real_address.as_deref(),
            Some("udp6:[2001:db8:7::9]:40001")
        );
        assert_eq!(cam.virtual_address, None);
        assert_eq!(cam.virtual_ipv6, ip("fd20::9"));
        assert_eq!((cam.bytes_received, cam.bytes_sent), (1200, 3400));
        assert_eq!(cam.username.as_deref(), Some("cam"));
        assert_eq!(cam.cipher.as_deref(), Some("CHACHA20-POLY1305"));
        // Tabs with padding spaces around the values.
        let east = &v.clients[3];
        assert_eq!(east.common_name, "gw-east");
        assert_eq!((east.bytes_received, east.bytes_sent), (100, 200));
        assert_eq!(east.cipher.as_deref(), Some("AES-128-GCM"));

        assert_eq!(v.routes.len(), 3);
        assert_eq!(v.routes[1].virtual_address, "10.20.0.3");
        assert_eq!(
            v.routes[1].last_ref,
            Some(1_698_909_299),
            "five-word date in a spaced row"
        );
        assert_eq!(v.routes[2].virtual_address, "172.16.5.77");
        assert!(v.routes[2].cached);
    }

    #[test]
    fn v3_fully_space_collapsed() {
        let p = own("server-v3-spaces.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::V3);
        assert!(v.title.as_deref().unwrap().starts_with("OpenVPN 2.6.8"));
        assert_eq!(v.updated, Some(1_724_169_764));
        assert_eq!(v.clients.len(), 2);
        assert_eq!(
            v.clients[0].real_address.as_deref(),
            Some("udp4:192.0.2.201:1194")
        );
        assert_eq!(
            (v.clients[0].bytes_received, v.clients[0].bytes_sent),
            (9912, 18823)
        );
        assert_eq!(v.clients[0].client_id, Some(11));
        assert_eq!(v.clients[1].virtual_address, None);
        assert_eq!(v.clients[1].virtual_ipv6, ip("fd30::5"));
        assert_eq!(v.clients[1].connected_since, Some(1_724_169_599));
        assert_eq!(v.clients[1].peer_id, Some(1));
        assert_eq!(v.routes.len(), 1);
        assert_eq!(v.routes[0].last_ref, Some(1_724_169_760));
    }

    #[test]
    fn v2_cut_mid_row_keeps_complete_rows() {
        let p = own("server-v2-truncated.status");
        assert_eq!(p.value.clients.len(), 1);
        assert_eq!(p.value.clients[0].common_name, "laptop-anna");
        let skips = skipped_text(&p);
        assert!(skips.contains("line 5: incomplete last line"), "{skips}");
        assert!(skips.contains("no END"), "{skips}");
        assert_eq!(p.skipped.len(), 2);
    }

    #[test]
    fn v1_server_with_routes_tap_macs_and_cached_rows() {
        let p = own("server-v1.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::V1);
        assert_eq!(v.updated, Some(1_707_599_133));
        assert_eq!(v.clients.len(), 4);
        let (a, b) = (&v.clients[0], &v.clients[1]);
        assert_eq!(
            (a.common_name.as_str(), b.common_name.as_str()),
            ("vpn-laptop", "vpn-laptop")
        );
        assert_eq!(a.connected_since, Some(1_707_594_242));
        // Virtual addresses come from the routing table, matched by name and real address.
        assert_eq!(a.virtual_address, ip("10.8.0.14"));
        assert_eq!(b.virtual_address, ip("10.8.0.18"));
        assert_eq!(v.clients[2].common_name, "UNDEF");
        assert_eq!(v.clients[2].virtual_address, None);
        let tap = &v.clients[3];
        assert_eq!(tap.real_address.as_deref(), Some("::ffff:192.0.2.150"));
        assert_eq!(tap.connected_since, Some(1_707_463_800), "space-padded day");
        assert_eq!(tap.virtual_address, None, "a MAC is not a virtual IP");
        assert_eq!(v.routes.len(), 5);
        assert_eq!(v.routes[2].virtual_address, "10.66.1.5");
        assert!(v.routes[2].cached);
        assert_eq!(v.routes[3].virtual_address, "2a:91:0c:4e:7f:13");
        assert!(!v.routes[3].cached);
        assert_eq!(
            v.routes[4].virtual_address, "6e:22:b1:90:0a:3c",
            "lower-case c stays"
        );
        assert!(v.routes[4].cached);
        assert_eq!(v.routes[4].last_ref, Some(1_707_598_089));
    }

    #[test]
    fn client_statistics() {
        let p = own("client.status");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let v = &p.value;
        assert_eq!(v.format, OvpnFormat::ClientStatistics);
        assert_eq!(v.updated, Some(1_705_298_402));
        assert!(v.clients.is_empty() && v.routes.is_empty());
        let s = v.statistics.as_ref().unwrap();
        assert_eq!(s.tun_read_bytes, Some(48_213_377));
        assert_eq!(s.tun_write_bytes, Some(190_233_871));
        assert_eq!(s.link_read_bytes, Some(201_877_654));
        assert_eq!(s.link_write_bytes, Some(55_120_983));
        assert_eq!(s.auth_read_bytes, Some(190_298_112));
        assert_eq!(s.pre_compress_bytes, Some(0));
        assert_eq!(s.post_decompress_bytes, Some(0));
    }

    // ---- single quirks, inline --------------------------------------------------------------

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let text = "TIME,x,1700000000\n\
            HEADER,CLIENT_LIST,Bytes Sent,Data Channel Cipher,Common Name,Some Future Column,Bytes Received\n\
            CLIENT_LIST,7,AES-256-GCM,zed,whatever,9\n\
            END\n";
        let p = ok(text);
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        let c = &p.value.clients[0];
        assert_eq!(
            (c.common_name.as_str(), c.bytes_sent, c.bytes_received),
            ("zed", 7, 9)
        );
        assert_eq!(c.cipher.as_deref(), Some("AES-256-GCM"));
        assert_eq!(c.connected_since, None);
        assert_eq!(p.value.updated, Some(1_700_000_000));
    }

    #[test]
    fn time_t_is_preferred_over_date_text() {
        // The date text is local time (an hour off UTC here); time_t is authoritative.
        let text = "TIME,Tue Mar 21 10:39:14 2017,1490089154\n\
            HEADER,CLIENT_LIST,Common Name,Connected Since,Connected Since (time_t)\n\
            CLIENT_LIST,a,Thu Mar 16 17:09:03 2017,1489680543\n\
            CLIENT_LIST,b,Thu Mar 16 17:09:03 2017,\n\
            END\n";
        let p = ok(text);
        assert_eq!(p.value.updated, Some(1_490_089_154));
        assert_eq!(p.value.clients[0].connected_since, Some(1_489_680_543));
        assert_eq!(
            p.value.clients[1].connected_since,
            Some(1_489_684_143),
            "fallback to text"
        );
    }

    #[test]
    fn bad_values_skip_only_their_row() {
        let text = "HEADER,CLIENT_LIST,Common Name,Virtual Address,Bytes Received\n\
            CLIENT_LIST,a,10.0.0.2,12\n\
            CLIENT_LIST,b,10.0.0.3,-5\n\
            CLIENT_LIST,c,not-an-ip,1\n\
            CLIENT_LIST,d,10.0.0.5\n\
            CLIENT_LIST,e,10.0.0.6,1,extra\n\
            END\n";
        let p = ok(text);
        assert_eq!(p.value.clients.len(), 1);
        let reasons: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].starts_with("line 3: Bytes Received: not a number"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("line 4: Virtual Address: not an IP"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("incomplete row: 2 of 3"), "{reasons:?}");
        assert!(
            reasons[3].contains("4 fields but the header has 3"),
            "{reasons:?}"
        );
    }

    #[test]
    fn v1_client_named_updated_is_a_client() {
        let p = ok("OpenVPN CLIENT LIST\nUpdated,Thu Jun 18 08:12:15 2015\n\
            Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
            Updated,1.2.3.4:5,1,2,Thu Jun 18 04:23:03 2015\nEND\n");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
        assert_eq!(p.value.updated, Some(1_434_615_135));
        assert_eq!(p.value.clients[0].common_name, "Updated");
        assert_eq!(p.value.clients[0].connected_since, Some(1_434_601_383));
    }

    #[test]
    fn rows_before_their_header_are_skipped() {
        let p = ok("CLIENT_LIST,a,1.2.3.4:5\nEND\n");
        assert!(p.value.clients.is_empty());
        assert!(p.skipped[0].reason.contains("before its column header"));
    }

    #[test]
    fn last_line_without_newline_is_incomplete_even_if_it_parses() {
        let text = "HEADER,CLIENT_LIST,Common Name,Data Channel Cipher\n\
            CLIENT_LIST,a,AES-256-GCM\n\
            CLIENT_LIST,b,AES-256-G";
        let p = ok(text);
        assert_eq!(p.value.clients.len(), 1);
        assert_eq!(p.skipped.len(), 2);
        assert_eq!(p.skipped[0].line, 3);
        // A final END without its newline is fine.
        let p = ok("OpenVPN CLIENT LIST\nUpdated,2022-04-17 00:33:28\nEND");
        assert!(p.skipped.is_empty(), "{}", skipped_text(&p));
    }

    #[test]
    fn text_after_end_is_reported() {
        let p = ok("OpenVPN STATISTICS\nTUN/TAP read bytes,5\nEND\ngarbage\n");
        assert_eq!(p.value.statistics.as_ref().unwrap().tun_read_bytes, Some(5));
        assert_eq!(p.skipped.len(), 1);
        assert!(p.skipped[0].reason.contains("after END"));
    }

    #[test]
    fn statistics_unknown_counters_ignored_bad_values_skipped() {
        let p = ok(
            "OpenVPN STATISTICS\nUpdated,2022-05-05 14:01:12\nSome new counter,5\n\
            TCP/UDP read bytes,lots\nnonsense\nEND\n",
        );
        assert_eq!(p.value.updated, Some(1_651_759_272));
        assert_eq!(p.malformed().count(), 2, "{}", skipped_text(&p));
        assert_eq!(
            p.skipped[0].to_string(),
            "line 3: not used: counter \"Some new counter\""
        );
        assert_eq!(p.value.statistics.as_ref().unwrap().link_read_bytes, None);
    }

    #[test]
    fn global_stats_rows_in_every_format() {
        let v2 = own("server.status");
        assert_eq!(
            v2.value.global,
            Some(OvpnGlobalStats {
                max_bcast_mcast_queue_len: Some(1),
                dco_enabled: Some(false)
            })
        );
        let v3 = ok("TITLE\tx\nTIME\t2024-05-12 09:41:07\t1715506867\nGLOBAL_STATS\tMax bcast/mcast queue length\t7\n\
                     GLOBAL_STATS\tdco_enabled\t1\nEND\n");
        assert_eq!(
            v3.value.global,
            Some(OvpnGlobalStats {
                max_bcast_mcast_queue_len: Some(7),
                dco_enabled: Some(true)
            })
        );
        let words = ok("TITLE x\nTIME 2024-05-12 09:41:07 1715506867\nGLOBAL_STATS Max bcast/mcast queue length 3\nEND\n");
        assert_eq!(
            words.value.global.unwrap().max_bcast_mcast_queue_len,
            Some(3)
        );
        let v1 = ok("OpenVPN CLIENT LIST\nUpdated,2024-05-12 09:41:07\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
                     ROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\nGLOBAL STATS\n\
                     Max bcast/mcast queue length,2\ndco_enabled,1\nEND\n");
        assert_eq!(
            v1.value.global,
            Some(OvpnGlobalStats {
                max_bcast_mcast_queue_len: Some(2),
                dco_enabled: Some(true)
            })
        );
        // Unknown rows are listed as unused, bad values skipped; neither loses the rest.
        let p = parse(
            "TITLE,x\nGLOBAL_STATS,Some future stat,5\nGLOBAL_STATS,dco_enabled,yes\n\
             GLOBAL_STATS,Max bcast/mcast queue length,-1\nGLOBAL_STATS\nHEADER,FUTURE_TABLE,a,b\nEND\n",
            "srv",
        )
        .unwrap();
        assert_eq!(
            skipped_text(&p),
            "line 2: not used: GLOBAL_STATS \"Some future stat\" | line 3: dco_enabled: not 0 or 1: \"yes\" | \
             line 4: \"Max bcast/mcast queue length\": not a number: \"-1\" | line 5: GLOBAL_STATS without a value: \"GLOBAL_STATS\" | \
             line 6: not used: HEADER of table \"FUTURE_TABLE\""
        );
        assert_eq!(p.value.global, Some(OvpnGlobalStats::default()));
    }

    #[test]
    fn cached_flag() {
        assert_eq!(strip_cached("10.8.0.6C"), ("10.8.0.6", true));
        assert_eq!(strip_cached("10.8.0.6"), ("10.8.0.6", false));
        assert_eq!(
            strip_cached("aa:bb:cc:dd:ee:fc"),
            ("aa:bb:cc:dd:ee:fc", false)
        );
        assert_eq!(strip_cached("C"), ("C", false));
    }

    #[test]
    fn header_names_glued_or_space_joined() {
        use Col::*;
        assert_eq!(
            header_cells(&["UsernameClient ID", "Peer ID"]),
            vec![Username, ClientId, PeerId]
        );
        assert_eq!(
            header_cells(&[
                "Connected Since   Connected Since (time_t)",
                "Whatever Else"
            ]),
            vec![ConnectedSince, ConnectedSinceT, Other]
        );
        assert_eq!(
            header_words("Common Name Peer ID Data Channel Cipher Last Ref (time_t) Novel"),
            vec![CommonName, PeerId, Cipher, LastRefT, Other]
        );
        // A name that merely starts like a known one is not split.
        assert_eq!(header_cells(&["Usernames"]), vec![Other]);
    }

    #[test]
    fn word_fitting_prefers_types_and_reports_failure() {
        use Col::*;
        let cols = [
            CommonName,
            RealAddress,
            VirtualAddress,
            VirtualIpv6,
            BytesReceived,
            ConnectedSince,
        ];
        let fit = |s: &str| {
            fit_words(
                Table::Clients,
                &cols,
                &s.split_whitespace().collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            fit("my laptop 1.2.3.4:5 fd00::2 77 Thu Apr 30 13:55:38 2020").unwrap(),
            vec![
                "my laptop",
                "1.2.3.4:5",
                "",
                "fd00::2",
                "77",
                "Thu Apr 30 13:55:38 2020"
            ]
        );
        assert_eq!(
            fit("x 1.2.3.4:5 10.0.0.2 9 2020-04-30 13:55:38").unwrap(),
            vec!["x", "1.2.3.4:5", "10.0.0.2", "", "9", "2020-04-30 13:55:38"]
        );
        assert!(fit("x 1.2.3.4:5 10.0.0.2 nine 2020-04-30 13:55:38").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("Thu Jan  1 00:00:00 1970"), Some(0));
        assert_eq!(parse_date("Thu Apr 30 13:55:38 2020"), Some(1_588_254_938));
        assert_eq!(parse_date("2021-10-10 11:48:04"), Some(1_633_866_484));
        assert_eq!(parse_date("2024-02-29 12:00:00"), Some(1_709_208_000));
        assert_eq!(parse_date("2000-03-01 00:00:00"), Some(951_868_800));
        assert_eq!(parse_date("2023-02-29 12:00:00"), None, "not a leap year");
        assert_eq!(
            parse_date("2000-02-29 00:00:00"),
            Some(951_782_400),
            "leap: divisible by 400"
        );
        assert_eq!(
            parse_date("2100-02-29 00:00:00"),
            None,
            "not leap: divisible by 100"
        );
        assert_eq!(parse_date("2100-02-28 00:00:00"), Some(4_107_456_000));
        assert_eq!(parse_date("Thu Jun 18 04:"), None);
        assert_eq!(parse_date("2021-13-10 11:48:04"), None);
        assert_eq!(parse_date("2021-10-10 24:00:00"), None);
        assert_eq!(parse_date("1969-12-31 23:59:59"), None);
        assert_eq!(parse_date("Thu Foo 30 13:55:38 2020"), None);
        assert_eq!(parse_date("+2021-10-10 11:48:04"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn empty_and_foreign_text_are_errors() {
        assert_eq!(parse("", "x").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(" \n\t\n", "x").unwrap_err(), ParseError::Empty);
        assert!(matches!(
            parse("hello world\n", "x"),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse("OpenVPN CLIENT LIST\nUpd", "x"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn read_names_instance_after_file_stem() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("office.status");
        std::fs::write(&good, own_fixture("openvpn/client.status")).unwrap();
        let empty = dir.path().join("empty.status");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.status");

        let p = read(&good).unwrap();
        assert_eq!(p.value.name, "office");
        assert_eq!(p.value.format, OvpnFormat::ClientStatistics);

        let all = read_all(&[good.clone(), empty.clone(), missing.clone()]);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].0, good);
        assert!(all[0].1.is_ok());
        assert!(matches!(
            all[1].1,
            Err(SourceError::Parse(ParseError::Empty))
        ));
        assert!(matches!(all[2].1, Err(SourceError::Read(_))));
    }

    // ---- shared real-world fixtures ---------------------------------------------------------

    /// What a shared fixture must parse to: format, client and route counts, whether a skip is
    /// expected, and file-specific spot checks.
    struct Expect {
        format: OvpnFormat,
        clients: usize,
        routes: usize,
        skips: bool,
        check: fn(&OvpnInstance),
    }

    fn expectation(file: &str) -> Expect {
        let e = |format, clients, routes, skips, check| Expect {
            format,
            clients,
            routes,
            skips,
            check,
        };
        match file {
            "issue-openvpn889-mgmt-status3-ovpn2.7dev-udp6-prefix-SPACES-TRUNCATED.txt" => {
                e(OvpnFormat::V3, 2, 0, true, |v| {
                    let c = &v.clients[0];
                    assert_eq!(c.common_name, "cron2-freebsd-tc-amd64");
                    assert_eq!(
                        c.real_address.as_deref(),
                        Some("udp6:[2001:608:4:0:c56c:9345:deeb:fa45]:55296")
                    );
                    assert_eq!(c.virtual_address, ip("10.204.2.6"));
                    assert_eq!(c.virtual_ipv6, ip("fd00:abcd:204:2::1000"));
                    assert_eq!((c.bytes_received, c.bytes_sent), (27_413, 25_963));
                    assert_eq!(c.connected_since, Some(1_761_904_592));
                    assert_eq!(c.username.as_deref(), Some("MyTokenUser"));
                    assert_eq!((c.client_id, c.peer_id), (Some(47), Some(1)));
                    assert_eq!(c.cipher.as_deref(), Some("AES-256-GCM"));
                    assert_eq!(
                        v.clients[1].real_address.as_deref(),
                        Some("udp6:194.97.140.5:17399")
                    );
                    assert_eq!(v.clients[1].connected_since, Some(1_761_902_679));
                })
            }
            "kumina-client-v1-statistics.txt" => {
                e(OvpnFormat::ClientStatistics, 0, 0, false, |v| {
                    assert_eq!(v.updated, Some(1_490_092_749));
                    let s = v.statistics.as_ref().unwrap();
                    assert_eq!(s.tun_read_bytes, Some(153_789_941));
                    assert_eq!(s.link_write_bytes, Some(197_558_969));
                    assert_eq!(s.post_decompress_bytes, Some(216_965_355));
                })
            }
            "kumina-server-v2-ovpn2.3.2-redacted-dupe-row.txt" => {
                e(OvpnFormat::V2, 6, 6, false, |v| {
                    kumina_checks(v);
                    let dupes = v
                        .clients
                        .iter()
                        .filter(|c| c.common_name == "redacted1")
                        .count();
                    assert_eq!(dupes, 2, "duplicate rows are kept");
                })
            }
            "kumina-server-v3-ovpn2.3.2-redacted.txt" => {
                e(OvpnFormat::V3, 5, 5, false, kumina_checks)
            }
            "netdata-static-key-client-statistics-zero.txt" => {
                e(OvpnFormat::ClientStatistics, 0, 0, false, |v| {
                    assert_eq!(v.updated, Some(1_651_759_272));
                    let s = v.statistics.as_ref().unwrap();
                    assert_eq!(s.tun_read_bytes, Some(0));
                    assert_eq!(s.auth_read_bytes, Some(0));
                    assert_eq!(s.pre_compress_bytes, None);
                })
            }
            "netdata-v1-ovpn2.5-iso-dates.txt" => e(OvpnFormat::V1, 2, 2, false, |v| {
                assert_eq!(v.updated, Some(1_650_155_608));
                let c = &v.clients[0];
                assert_eq!(c.common_name, "gofle");
                assert_eq!((c.bytes_received, c.bytes_sent), (19_265, 261_631));
                assert_eq!(c.connected_since, Some(1_650_155_599));
                assert_eq!(c.virtual_address, ip("10.8.0.2"));
                assert_eq!(v.routes[0].last_ref, Some(1_650_155_607));
            }),
            "netdata-v3-ovpn2.5.5-MANGLED-mixed-tabs-spaces-ipv6.txt" => {
                e(OvpnFormat::V3, 2, 2, false, |v| {
                    assert_eq!(v.updated, Some(1_648_716_809));
                    let g = &v.clients[0];
                    assert_eq!((g.common_name.as_str(), g.virtual_ipv6), ("gofle", None));
                    assert_eq!(g.connected_since, Some(1_648_716_799));
                    assert_eq!(g.username, None);
                    assert_eq!((g.client_id, g.peer_id), (Some(0), Some(0)));
                    assert_eq!(g.cipher.as_deref(), Some("AES-128-GCM"));
                    let b = &v.clients[1];
                    assert_eq!(b.common_name, "client_bsd2");
                    assert_eq!(b.virtual_address, ip("10.8.0.3"));
                    assert_eq!(b.virtual_ipv6, ip("2001:db8:85a3::8a2e:370:7334"));
                    assert_eq!((b.bytes_received, b.bytes_sent), (2752, 3545));
                    assert_eq!(b.connected_since, Some(1_650_131_307));
                    assert_eq!(b.client_id, Some(624));
                    assert_eq!(b.cipher.as_deref(), Some("AES-128-GCM"));
                    assert_eq!(v.routes[1].virtual_address, "10.8.0.3");
                    assert_eq!(v.routes[1].last_ref, Some(1_650_131_307));
                })
            }
            "patrickjahns-v1-dup-cn-undef-mapped-v6-noport.txt" => {
                e(OvpnFormat::V1, 5, 0, false, |v| {
                    assert_eq!(v.updated, Some(1_591_347_785));
                    assert_eq!(v.clients[0].real_address.as_deref(), Some("::ffff:1.1.1.1"));
                    assert_eq!(
                        v.clients
                            .iter()
                            .filter(|c| c.common_name == "bar_bar")
                            .count(),
                        2
                    );
                    assert_eq!(
                        v.clients
                            .iter()
                            .filter(|c| c.common_name == "UNDEF")
                            .count(),
                        2
                    );
                    assert_eq!(v.clients[1].connected_since, Some(1_591_192_804));
                    assert_eq!(v.clients[4].bytes_sent, 8830);
                })
            }
            "patrickjahns-v1-routing.txt" => e(OvpnFormat::V1, 4, 4, false, |v| {
                assert_eq!(v.updated, Some(1_587_672_871));
                let c = &v.clients[2];
                assert_eq!(c.common_name, "user3@test.de");
                assert_eq!((c.bytes_received, c.bytes_sent), (19_602_844, 23_599_532));
                assert_eq!(c.connected_since, Some(1_587_559_365));
                // Same name and real address in both tables: the route gives the virtual IP.
                assert_eq!(c.virtual_address, ip("10.240.37.214"));
                // user1's route names another port (redacted file): no guess.
                assert_eq!(v.clients[0].virtual_address, None);
                assert_eq!(v.routes[3].virtual_address, "10.240.37.214");
            }),
            "patrickjahns-v2-ovpn2.4.4.txt" => e(OvpnFormat::V2, 2, 2, false, patrickjahns_checks),
            "patrickjahns-v3-ovpn2.4.4.txt" => e(OvpnFormat::V3, 2, 2, false, patrickjahns_checks),
            "tonyseek-v1-iroute-ipv6-tap-mac-cached-routes.txt" => {
                e(OvpnFormat::V1, 5, 10, false, |v| {
                    assert_eq!(v.updated, Some(1_434_615_135));
                    assert_eq!(v.clients[4].connected_since, Some(1_508_444_059));
                    assert_eq!(v.clients[0].virtual_address, ip("192.168.255.134"));
                    assert_eq!(v.clients[1].virtual_address, ip("192.168.255.135"));
                    assert_eq!(
                        v.clients[2].virtual_address,
                        ip("192.168.255.126"),
                        "cached rows ignored"
                    );
                    assert_eq!(
                        v.clients[3].virtual_ipv6, None,
                        "an iroute network is not a host"
                    );
                    let cached: Vec<&str> = v
                        .routes
                        .iter()
                        .filter(|r| r.cached)
                        .map(|r| r.virtual_address.as_str())
                        .collect();
                    assert_eq!(
                        cached,
                        ["192.168.255.126", "192.168.255.16", "192.168.255.1"]
                    );
                    assert_eq!(v.routes[2].virtual_address, "2001:db8::1000/124");
                    assert_eq!(v.routes[6].virtual_address, "22:1d:63:bf:62:38");
                    assert_eq!(v.routes[6].last_ref, Some(1_508_444_059));
                    assert!(v.routes.iter().all(|r| r.last_ref.is_some()));
                })
            }
            "tonyseek-v1-truncated-midwrite.txt" => e(OvpnFormat::V1, 0, 0, true, |v| {
                assert_eq!(v.updated, Some(1_434_615_135));
            }),
            other => panic!("no expectations written for new shared fixture {other}"),
        }
    }

    fn kumina_checks(v: &OvpnInstance) {
        assert!(v
            .title
            .as_deref()
            .unwrap()
            .starts_with("OpenVPN 2.3.2 x86_64"));
        assert_eq!(v.updated, Some(1_490_089_154));
        let c = &v.clients[3];
        assert_eq!(c.common_name, "redacted4");
        assert_eq!(
            (c.bytes_received, c.bytes_sent),
            (24_289_622_392, 70_914_674_697)
        );
        assert_eq!(c.connected_since, Some(1_489_745_789));
        assert_eq!(c.real_address.as_deref(), Some("0.0.0.0:52335"));
        assert_eq!(c.username, None);
        assert_eq!(
            (c.client_id, c.peer_id, c.cipher.as_deref()),
            (None, None, None)
        );
        assert_eq!(v.routes[3].last_ref, Some(1_490_089_153));
        assert!(v.routes.iter().all(|r| !r.cached));
    }

    fn patrickjahns_checks(v: &OvpnInstance) {
        assert_eq!(v.updated, Some(1_588_254_944));
        let c = &v.clients[0];
        assert_eq!(c.common_name, "test@localhost");
        assert_eq!(c.virtual_address, ip("10.80.0.65"));
        assert_eq!(c.virtual_ipv6, None);
        assert_eq!((c.bytes_received, c.bytes_sent), (3860, 3688));
        assert_eq!(c.connected_since, Some(1_588_254_938));
        assert_eq!(c.username.as_deref(), Some("test@localhost"));
        assert_eq!(
            (c.client_id, c.peer_id, c.cipher.as_deref()),
            (Some(0), Some(0), None)
        );
        assert_eq!(v.clients[1].client_id, Some(1));
        assert_eq!(v.routes[1].virtual_address, "10.68.0.25");
        assert_eq!(v.routes[1].last_ref, Some(1_588_254_942));
    }

    #[test]
    fn every_shared_fixture() {
        let fixtures = shared_fixtures_in("openvpn");
        assert!(
            fixtures.len() >= 13,
            "expected the 13 known files, got {}",
            fixtures.len()
        );
        for (file, text) in &fixtures {
            let want = expectation(file);
            let stem = file.strip_suffix(".txt").unwrap_or(file);
            let p = parse(text, stem).unwrap_or_else(|e| panic!("{file}: {e}"));
            let v = &p.value;
            assert_eq!(v.name, stem);
            assert_eq!(v.format, want.format, "{file}");
            assert_eq!(
                v.clients.len(),
                want.clients,
                "{file}: {}",
                skipped_text(&p)
            );
            assert_eq!(v.routes.len(), want.routes, "{file}");
            assert_eq!(
                !p.skipped.is_empty(),
                want.skips,
                "{file}: {}",
                skipped_text(&p)
            );
            if file.contains("TRUNCATED") || file.contains("truncated") {
                assert!(
                    p.skipped.iter().any(|s| s.reason.contains("no END")),
                    "{file}: {}",
                    skipped_text(&p)
                );
            }
            // Every file with a GLOBAL_STATS row (GLOBAL STATS section) has its queue length.
            let queue_len = text
                .lines()
                .find(|l| l.contains("Max bcast/mcast queue length"))
                .and_then(|l| l.rsplit([',', '\t', ' ']).next())
                .map(|n| n.trim().parse::<u64>().unwrap());
            if queue_len.is_some() {
                assert_eq!(
                    v.global.as_ref().and_then(|g| g.max_bcast_mcast_queue_len),
                    queue_len,
                    "{file}: {}",
                    skipped_text(&p)
                );
            }
            (want.check)(v);
        }
    }

    #[test]
    fn shared_truncated_row_is_skipped_with_its_reason() {
        let text = shared_fixture("openvpn/tonyseek-v1-truncated-midwrite.txt");
        let p = ok(&text);
        assert_eq!(p.skipped.len(), 2, "{}", skipped_text(&p));
        assert_eq!(p.skipped[0].line, 4);
        assert!(p.skipped[0].reason.contains("Connected Since: not a date"));
    }

    // ---- never panic ------------------------------------------------------------------------

    fn all_fixture_texts() -> Vec<String> {
        let own = [
            "server.status",
            "server-v3.status",
            "server-v3-mixed.status",
            "server-v3-spaces.status",
            "server-v2-truncated.status",
            "server-v1.status",
            "client.status",
        ];
        let mut texts: Vec<String> = own
            .iter()
            .map(|f| own_fixture(&format!("openvpn/{f}")))
            .collect();
        texts.extend(shared_fixtures_in("openvpn").into_iter().map(|(_, t)| t));
        texts
    }

    proptest! {
        #[test]
        fn generated_global_stats_rows_parse(
            n in any::<u64>(), dco in any::<bool>(), sep in prop::sample::select(vec![",", "\t", " "]),
        ) {
            let text = format!(
                "TITLE{sep}x\nGLOBAL_STATS{sep}Max bcast/mcast queue length{sep}{n}\nGLOBAL_STATS{sep}dco_enabled{sep}{}\nEND\n",
                u8::from(dco)
            );
            let p = parse(&text, "srv").unwrap();
            prop_assert_eq!(p.skipped.len(), 0);
            prop_assert_eq!(
                p.value.global,
                Some(OvpnGlobalStats { max_bcast_mcast_queue_len: Some(n), dco_enabled: Some(dco) })
            );
        }

        #[test]
        fn random_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s, "x");
        }

        #[test]
        fn random_status_like_lines_never_panic(
            lines in prop::collection::vec(
                "(TITLE|TIME|HEADER|CLIENT_LIST|ROUTING_TABLE|GLOBAL_STATS|END|OpenVPN CLIENT LIST|\
                 ROUTING TABLE|Updated|Common Name|Virtual Address|OpenVPN STATISTICS|TUN/TAP read bytes)\
                 [,\t ]{0,2}((Common Name|Virtual IPv6 Address|Connected Since|Bytes Sent|UNDEF|10\\.8\\.0\\.[0-9]C?|\
                 fd00::[0-9]|[0-9]{1,25}|2020-0[1-9]-1[0-9] 1[0-9]:[0-5][0-9]:[0-5][0-9]|Thu Apr 30 13:55:38 2020|\
                 [ -~]{0,8})[,\t ]{1,3}){0,14}",
                0..12,
            ),
            newline_at_end in any::<bool>(),
        ) {
            let mut text = lines.join("\n");
            if newline_at_end {
                text.push('\n');
            }
            let _ = parse(&text, "x");
        }

        #[test]
        fn truncated_fixtures_never_panic_and_report_the_cut(
            which in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let texts = all_fixture_texts();
            let text = which.get(&texts);
            let chars: Vec<char> = text.chars().collect();
            let end = cut.index(chars.len() + 1);
            let prefix: String = chars[..end].iter().collect();
            if let Ok(p) = parse(&prefix, "x") {
                if !prefix.contains("\nEND") {
                    prop_assert!(!p.skipped.is_empty(), "cut at {} kept no note: {:?}", end, prefix);
                }
            }
        }

        #[test]
        fn mangled_fixtures_never_panic(
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            insert in "[\t ,\nC:0-9]{0,4}",
        ) {
            let texts = all_fixture_texts();
            let text = which.get(&texts);
            let chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            let mangled: String =
                chars[..i].iter().copied().chain(insert.chars()).chain(chars[i..].iter().copied()).collect();
            let _ = parse(&mangled, "x");
        }
    }
}
