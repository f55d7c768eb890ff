//! A minimal keep-alive HTTP/1.1 client for the benchmarks: one blocking connection, `GET`s
//! with an API key, bodies by length or chunked, reconnecting when the server closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Minimal keep-alive HTTP/1.1 client.
pub struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client {
            addr,
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// (status, body length, the body's first 160 bytes)
    pub fn get(&mut self, path: &str, key: &str) -> std::io::Result<(u16, usize, String)> {
        let (status, _, body) = self.get_full(path, key)?;
        let snippet = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
        Ok((status, body.len(), snippet))
    }

    /// (status, content type, body)
    pub fn get_full(&mut self, path: &str, key: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {key}\r\nConnection: keep-alive\r\n\r\n",
            self.addr
        );
        self.writer.write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len: Option<usize> = None;
        let mut content_type = String::new();
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => len = v.parse().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                "content-type" => content_type = v,
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut buf = vec![0; n + 2];
                self.reader.read_exact(&mut buf)?;
                body.extend_from_slice(&buf[..n]);
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            self.reader.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            *self = Client::connect(self.addr)?;
        }
        Ok((status, content_type, body))
    }
}

/// `s` percent-encoded for a URL path segment or query value (unreserved characters kept).
pub fn pct_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}
