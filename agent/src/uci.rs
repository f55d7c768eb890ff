//! A small parser for OpenWrt's UCI configuration syntax (`/etc/config/*`).
//!
//! ```text
//! config agent 'main'
//!     option collector 'collector.example.net:7443'
//!     list lease_file '/tmp/dhcp.leases'
//! ```
//!
//! Values may be single-quoted, double-quoted or bare; `#` starts a comment outside quotes.
//! Lines that cannot be understood are reported in `Parsed::skipped`, never a panic.

use crate::sources::{ParseError, Parsed};

/// One `config <type> ['name']` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    /// `option` values in file order (a repeated option keeps the last value in [`Section::option`]).
    pub options: Vec<(String, String)>,
    /// `list` values in file order.
    pub lists: Vec<(String, String)>,
}

impl Section {
    /// The last value of an option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list (and of a same-named option, which UCI also allows).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.lists
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Splits a UCI line into words, honouring quotes and stopping at a comment.
fn words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' | '"' => loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated quote"),
                    }
                },
                '\\' => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        out.push(word);
    }
    Ok(out)
}

/// Parses UCI text into sections.
pub fn parse(text: &str) -> Result<Parsed<Vec<Section>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut parsed = Parsed::new(Vec::<Section>::new());
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let w = match words(line) {
            Ok(w) => w,
            Err(e) => {
                parsed.skip(n, e);
                continue;
            }
        };
        match w.as_slice() {
            [] => {}
            [kw, kind, rest @ ..] if kw == "config" && rest.len() <= 1 => {
                parsed.value.push(Section {
                    kind: kind.clone(),
                    name: rest.first().cloned(),
                    ..Default::default()
                });
            }
            [kw, key, value] if kw == "option" || kw == "list" => match parsed.value.last_mut() {
                Some(s) if kw == "option" => s.options.push((key.clone(), value.clone())),
                Some(s) => s.lists.push((key.clone(), value.clone())),
                None => parsed.skip(n, format!("{kw} outside a config section")),
            },
            [kw, ..] if kw == "package" => {}
            _ => parsed.skip(n, "not a config/option/list line"),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_options_lists_and_quotes() {
        let text = "# comment\nconfig agent 'main'\n\toption collector \"c.example:7443\" # trailing\n\toption interval 30\n\tlist lease_file '/tmp/dhcp.leases'\n\tlist lease_file /tmp/other leases\n\nconfig wireguard_wg0\n\toption description \"Alice's laptop\"\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 2);
        let main = &p.value[0];
        assert_eq!(main.kind, "agent");
        assert_eq!(main.name.as_deref(), Some("main"));
        assert_eq!(main.option("collector"), Some("c.example:7443"));
        assert_eq!(main.option("interval"), Some("30"));
        assert_eq!(main.list("lease_file"), vec!["/tmp/dhcp.leases"]);
        // `list lease_file /tmp/other leases` has 4 words: skipped, not misread.
        assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
        assert_eq!(p.value[1].name, None);
        assert_eq!(p.value[1].option("description"), Some("Alice's laptop"));
    }

    #[test]
    fn bad_lines_are_skipped_with_reasons() {
        let p =
            parse("option x y\nconfig a 'b'\noption k 'unterminated\nweird line here\n").unwrap();
        let reasons: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            vec![
                "line 1: option outside a config section",
                "line 3: unterminated quote",
                "line 4: not a config/option/list line",
            ]
        );
        assert_eq!(parse("  \n"), Err(ParseError::Empty));
    }
}
