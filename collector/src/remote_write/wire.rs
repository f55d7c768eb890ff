//! The Prometheus remote-write 1.0 wire format: a `WriteRequest` protobuf message
//! (`prometheus/prompb/remote.proto` and `types.proto`: `WriteRequest.timeseries = 1`,
//! `TimeSeries.labels = 1`, `TimeSeries.samples = 2`, `Label.name = 1`, `Label.value = 2`,
//! `Sample.value = 1` (double), `Sample.timestamp = 2` (int64 ms)), compressed with snappy's
//! block format (not the framed one), POSTed with the headers in [`HEADERS`].
//!
//! Also the reader of the collector's own text exposition (`/metrics`), so the series pushed are
//! the ones the API serves, computed in one place (`crate::api::prometheus`).

/// Request headers the protocol requires.
pub const HEADERS: [(&str, &str); 4] = [
    ("content-encoding", "snappy"),
    ("content-type", "application/x-protobuf"),
    ("x-prometheus-remote-write-version", "0.1.0"),
    (
        "user-agent",
        concat!("routerstats-collector/", env!("CARGO_PKG_VERSION")),
    ),
];

/// `prometheus.WriteRequest` (only the fields remote write 1.0 senders fill).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, `__name__` among them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a Unix time in milliseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One series of the exposition: metric name, labels in exposition order, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Point {
    /// The protocol's series: `__name__` plus the labels, sorted by name (empty values left
    /// out: in Prometheus an empty label is the same as no label), one sample at `ts_ms`.
    pub fn to_series(&self, ts_ms: i64) -> TimeSeries {
        self.clone().into_series(ts_ms)
    }

    /// [`Point::to_series`] without copying the strings.
    pub fn into_series(self, ts_ms: i64) -> TimeSeries {
        let mut labels: Vec<Label> = Vec::with_capacity(self.labels.len() + 1);
        labels.push(Label {
            name: "__name__".into(),
            value: self.name,
        });
        labels.extend(
            self.labels
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, value)| Label { name, value }),
        );
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        TimeSeries {
            labels,
            samples: vec![Sample {
                value: self.value,
                timestamp: ts_ms,
            }],
        }
    }
}

/// A line of the exposition that is not a valid sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exposition line {line}: {reason}")]
pub struct ExpositionError {
    pub line: usize,
    pub reason: &'static str,
}

/// Reads the text exposition (format 0.0.4 as `crate::api::prometheus` writes it: no
/// timestamps, label values escaped with `\\`, `\"` and `\n`). Comment lines are skipped.
pub fn parse_exposition(text: &str) -> Result<Vec<Point>, ExpositionError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|reason| ExpositionError {
            line: i + 1,
            reason,
        })?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Point, &'static str> {
    let name_end = line
        .find(['{', ' '])
        .ok_or("no value after the metric name")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name");
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find("=\"").ok_or("label without =\"")?;
            let key = r[..eq].trim_start_matches(',');
            if key.is_empty() {
                return Err("empty label name");
            }
            // Most values have no escapes: take them as one slice.
            let body = &r[eq + 2..];
            if let Some(q) = body
                .find(['"', '\\'])
                .filter(|&q| body.as_bytes()[q] == b'"')
            {
                labels.push((key.to_string(), body[..q].to_string()));
                r = &body[q + 1..];
                continue;
            }
            let mut value = String::new();
            let mut chars = r[eq + 2..].char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value"),
                    Some((j, '"')) => break eq + 2 + j + 1,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => return Err("bad escape in a label value"),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            r = &r[end..];
        }
    }
    let value = rest.trim();
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| "value is not a number")?,
    };
    Ok(Point {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The request body: `series` encoded and snappy-compressed.
pub fn encode(series: Vec<TimeSeries>) -> Vec<u8> {
    let req = WriteRequest { timeseries: series };
    let raw = prost::Message::encode_to_vec(&req);
    // The block encoder fails only on inputs over ~4 GiB; batches are far smaller.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse_with_escapes() {
        let text = "# HELP a_total x\n# TYPE a_total counter\n\
                    a_total{router=\"ap-1\",ssid=\"caf\\\"\\\\e\\n\",mac=\"\"} 12\n\
                    b 0.25\nc{x=\"}{ \"} NaN\n";
        let p = parse_exposition(text).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "a_total");
        assert_eq!(
            p[0].labels,
            vec![
                ("router".into(), "ap-1".into()),
                ("ssid".into(), "caf\"\\e\n".into()),
                ("mac".into(), String::new())
            ]
        );
        assert_eq!(p[0].value, 12.0);
        assert_eq!((p[1].name.as_str(), p[1].value), ("b", 0.25));
        assert_eq!(p[2].labels, vec![("x".into(), "}{ ".into())]);
        assert!(p[2].value.is_nan());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "x",
            "x{a=\"1\" 2",
            "x{a=\"\\q\"} 1",
            "x 1.2.3",
            "{a=\"1\"} 1",
            "x{=\"1\"} 1",
            "x{a} 1",
        ] {
            let e = parse_exposition(bad).unwrap_err();
            assert_eq!(e.line, 1, "{bad}");
        }
    }

    /// The body is snappy block format over the protobuf message, labels sorted by name and
    /// empty ones left out; it decodes back to the same series.
    #[test]
    fn request_body_round_trips() {
        let p = Point {
            name: "routerstats_router_up".into(),
            labels: vec![
                ("site".into(), String::new()),
                ("router".into(), "ap-1".into()),
            ],
            value: 1.0,
        };
        let ts = p.to_series(1_700_000_000_123);
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["__name__", "router"]);
        let body = encode(vec![ts.clone()]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let back: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(back.timeseries, vec![ts]);
        // Field 1 (timeseries), length-delimited: the protobuf tag byte 0x0a comes first.
        assert_eq!(raw[0], 0x0a);
    }
}
