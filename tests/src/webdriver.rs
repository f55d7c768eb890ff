//! A minimal W3C WebDriver client for the browser tests: starts `chromedriver` on a free loopback
//! port and drives headless Chromium over plain HTTP/1.1 with JSON bodies (no crate needed).
//!
//! Covers what the dashboard tests use: new session (fresh profile, headless flags), navigate,
//! find elements by CSS, click, clear, send keys, text, attributes/properties, execute script,
//! window size, screenshots (base64 PNG, decoded here) and delete session. Errors are
//! [`WdError`] values; nothing here panics on what the driver answers.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::free_port;

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Something went wrong talking to the driver.
#[derive(Debug)]
pub enum WdError {
    /// chromedriver or Chromium is not installed.
    NotInstalled(String),
    Io(std::io::Error),
    /// The driver answered with a WebDriver error (`error` code and message).
    Driver {
        status: u16,
        error: String,
        message: String,
    },
    /// The answer was not the HTTP/JSON expected.
    Protocol(String),
    /// A wait ran out.
    Timeout(String),
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WdError::NotInstalled(m) => write!(f, "not installed: {m}"),
            WdError::Io(e) => write!(f, "i/o: {e}"),
            WdError::Driver {
                status,
                error,
                message,
            } => write!(f, "webdriver {status} {error}: {message}"),
            WdError::Protocol(m) => write!(f, "protocol: {m}"),
            WdError::Timeout(m) => write!(f, "timed out: {m}"),
        }
    }
}

impl std::error::Error for WdError {}

impl From<std::io::Error> for WdError {
    fn from(e: std::io::Error) -> Self {
        WdError::Io(e)
    }
}

pub type WdResult<T> = Result<T, WdError>;

fn find_program(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    extra.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Paths of `chromedriver` and the Chromium binary, or why they are missing.
pub fn find_browser() -> WdResult<(PathBuf, PathBuf)> {
    let driver =
        find_program(&["chromedriver"], &["/usr/lib/chromium/chromedriver"]).ok_or_else(|| {
            WdError::NotInstalled("chromedriver (run scripts/install-browser)".into())
        })?;
    let browser = find_program(
        &["chromium", "chromium-browser"],
        &["/usr/lib/chromium/chromium"],
    )
    .ok_or_else(|| WdError::NotInstalled("chromium (run scripts/install-browser)".into()))?;
    Ok((driver, browser))
}

/// One HTTP/1.1 exchange with a JSON body; returns (status, body as JSON or Null).
fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> WdResult<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    if body.is_some() {
        req.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    s.write_all(req.as_bytes())?;
    // Read until the header end, then exactly Content-Length bytes (the driver may keep the
    // connection open), or the chunks, or (neither given) until the connection closes.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(WdError::Protocol(format!(
                "connection closed before the header end ({} bytes)",
                buf.len()
            )));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buf.get(..split).unwrap_or_default()).into_owned();
    let mut raw = buf.get(split + 4..).unwrap_or_default().to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| WdError::Protocol(format!("bad status line: {:?}", head.lines().next())))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let body_bytes = if chunked {
        while !raw.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        dechunk(&raw)?
    } else if let Some(len) = length {
        while raw.len() < len {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(WdError::Protocol(format!(
                    "body cut at {} of {len} bytes",
                    raw.len()
                )));
            }
            raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        raw.truncate(len);
        raw
    } else {
        s.read_to_end(&mut raw)?;
        raw
    };
    let value = if body_bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body_bytes)
            .map_err(|e| WdError::Protocol(format!("bad JSON ({e}) from {method} {path}")))?
    };
    Ok((status, value))
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut raw: &[u8]) -> WdResult<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| WdError::Protocol("truncated chunk size".into()))?;
        let size_text =
            String::from_utf8_lossy(raw.get(..line_end).unwrap_or_default()).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| WdError::Protocol(format!("bad chunk size {size_text:?}")))?;
        raw = raw.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        let chunk = raw
            .get(..size)
            .ok_or_else(|| WdError::Protocol("truncated chunk".into()))?;
        out.extend_from_slice(chunk);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(text: &str) -> WdResult<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = val(c).ok_or_else(|| WdError::Protocol(format!("bad base64 byte {c:#x}")))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

/// Unwraps a WebDriver answer: `value` on 2xx, [`WdError::Driver`] otherwise.
fn unwrap_value(status: u16, body: Value) -> WdResult<Value> {
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Err(WdError::Driver {
        status,
        error: field("error"),
        message: field("message"),
    })
}

/// A running chromedriver, stopped on drop.
pub struct ChromeDriver {
    pub addr: SocketAddr,
    pub browser: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port, logging to `dir/chromedriver.log`, and waits
    /// until it reports ready.
    pub fn start(dir: &Path) -> WdResult<ChromeDriver> {
        let (driver, browser) = find_browser()?;
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join("chromedriver.log");
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut d = ChromeDriver {
            addr,
            browser,
            child: Some(child),
            log,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, body)) = http_json(addr, "GET", "/status", None, Duration::from_secs(5))
            {
                if body.pointer("/value/ready").and_then(Value::as_bool) == Some(true) {
                    return Ok(d);
                }
            }
            if let Some(c) = d.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(WdError::Protocol(format!(
                        "chromedriver exited early ({status})"
                    )));
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                d.stop();
                return Err(WdError::Timeout("chromedriver /status".into()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless Chromium session with a fresh profile in `profile_dir`.
    pub fn new_session(&self, profile_dir: &Path, width: u32, height: u32) -> WdResult<Session> {
        std::fs::create_dir_all(profile_dir)?;
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--no-proxy-server".into(),
            "--hide-scrollbars".into(),
            "--lang=en-US".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile_dir.display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": { "binary": self.browser.display().to_string(), "args": args }
                }
            }
        });
        let (status, body) = http_json(
            self.addr,
            "POST",
            "/session",
            Some(&caps),
            Duration::from_secs(60),
        )?;
        let value = unwrap_value(status, body)?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| WdError::Protocol(format!("no sessionId in {value}")))?
            .to_string();
        Ok(Session {
            addr: self.addr,
            id,
            open: true,
        })
    }

    /// The driver's log so far (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all.get(all.len().saturating_sub(lines)..)
            .unwrap_or_default()
            .join("\n")
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An element reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

/// A browser session, deleted on drop.
pub struct Session {
    addr: SocketAddr,
    pub id: String,
    open: bool,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        let full = format!("/session/{}{path}", self.id);
        let (status, answer) = http_json(
            self.addr,
            method,
            &full,
            body.as_ref(),
            Duration::from_secs(60),
        )?;
        unwrap_value(status, answer)
    }

    pub fn navigate(&self, url: &str) -> WdResult<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    pub fn current_url(&self) -> WdResult<String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn set_window_size(&self, width: u32, height: u32) -> WdResult<()> {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .map(drop)
    }

    fn element_of(v: &Value) -> WdResult<Element> {
        v.get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .map(|s| Element(s.to_string()))
            .ok_or_else(|| WdError::Protocol(format!("not an element: {v}")))
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> WdResult<Element> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Self::element_of(&v)
    }

    /// Every element matching a CSS selector (possibly none).
    pub fn find_all(&self, css: &str) -> WdResult<Vec<Element>> {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v.as_array()
            .map(|a| a.iter().map(Self::element_of).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    pub fn click(&self, el: &Element) -> WdResult<()> {
        self.call("POST", &format!("/element/{}/click", el.0), Some(json!({})))
            .map(drop)
    }

    /// The text of the open `alert`/`confirm` dialog (an error when none is open).
    pub fn alert_text(&self) -> WdResult<String> {
        Ok(self
            .call("GET", "/alert/text", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Accepts (OK) the open `alert`/`confirm` dialog.
    pub fn accept_alert(&self) -> WdResult<()> {
        self.call("POST", "/alert/accept", Some(json!({})))
            .map(drop)
    }

    pub fn clear(&self, el: &Element) -> WdResult<()> {
        self.call("POST", &format!("/element/{}/clear", el.0), Some(json!({})))
            .map(drop)
    }

    pub fn send_keys(&self, el: &Element, text: &str) -> WdResult<()> {
        self.call(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// The element's rendered text.
    pub fn text(&self, el: &Element) -> WdResult<String> {
        Ok(self
            .call("GET", &format!("/element/{}/text", el.0), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn attribute(&self, el: &Element, name: &str) -> WdResult<Option<String>> {
        Ok(self
            .call("GET", &format!("/element/{}/attribute/{name}", el.0), None)?
            .as_str()
            .map(str::to_string))
    }

    pub fn is_displayed(&self, el: &Element) -> WdResult<bool> {
        Ok(self
            .call("GET", &format!("/element/{}/displayed", el.0), None)?
            .as_bool()
            .unwrap_or(false))
    }

    /// Moves the mouse pointer over the centre of `el` (W3C actions: a real pointer move, so
    /// hover handlers and CSS :hover see it), then releases the input state.
    pub fn hover(&self, el: &Element) -> WdResult<()> {
        let origin = json!({ ELEMENT_KEY: el.0 });
        self.call(
            "POST",
            "/actions",
            Some(json!({ "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [{ "type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": 0 }]
            }]})),
        )?;
        self.call("DELETE", "/actions", None).map(drop)
    }

    /// Runs a synchronous script (`return ...;`) with JSON arguments and returns its result.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> WdResult<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// A screenshot of the viewport as PNG bytes.
    pub fn screenshot(&self) -> WdResult<Vec<u8>> {
        let v = self.call("GET", "/screenshot", None)?;
        base64_decode(
            v.as_str()
                .ok_or_else(|| WdError::Protocol("screenshot is not a string".into()))?,
        )
    }

    /// A full-page screenshot (the window grown to the document height, then restored).
    pub fn full_screenshot(&self, width: u32, max_height: u32) -> WdResult<Vec<u8>> {
        let h = self
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )?
            .as_u64()
            .unwrap_or(900)
            .clamp(300, u64::from(max_height)) as u32;
        let before = self.call("GET", "/window/rect", None)?;
        self.set_window_size(width, h + 120)?;
        std::thread::sleep(Duration::from_millis(300));
        let png = self.screenshot();
        let (w0, h0) = (
            before.get("width").and_then(Value::as_u64),
            before.get("height").and_then(Value::as_u64),
        );
        if let (Some(w0), Some(h0)) = (w0, h0) {
            self.set_window_size(w0 as u32, h0 as u32)?;
        }
        png
    }

    /// Polls `check` every 100 ms until it returns Some, or fails after `timeout`.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Session) -> WdResult<Option<T>>,
    ) -> WdResult<T> {
        let start = Instant::now();
        let mut last_err = None;
        loop {
            match check(self) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e @ WdError::Io(_)) => return Err(e),
                Err(e) => last_err = Some(e),
            }
            if start.elapsed() > timeout {
                let detail = last_err
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(WdError::Timeout(format!(
                    "{what} after {timeout:?}{detail}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends the session (closes the browser).
    pub fn delete(&mut self) -> WdResult<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        let (status, body) = http_json(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
            Duration::from_secs(30),
        )?;
        unwrap_value(status, body).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a*b").is_err());
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"10\r\nshort").is_err());
    }

    #[test]
    fn driver_errors_carry_code_and_message() {
        let e = unwrap_value(
            404,
            json!({"value": {"error": "no such element", "message": "gone"}}),
        )
        .unwrap_err();
        assert!(
            matches!(e, WdError::Driver { status: 404, ref error, .. } if error == "no such element"),
            "{e}"
        );
        assert_eq!(unwrap_value(200, json!({"value": 3})).unwrap(), json!(3));
    }
}
