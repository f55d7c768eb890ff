//! Turning axum's extractor rejections into the API's 400 answers: the one home for every route
//! group's "the query string or the path did not parse" step.
//!
//! Two wordings exist and are kept as each route group has always answered (clients and the
//! golden dump of every answer see them): `bad query: ...` / `bad path: ...` ([`query`],
//! [`path`], [`query_rejected`]: dashboard, WireGuard manager, fleet actions, backups, device
//! status) and `invalid query string: ...` ([`bad_query`]: monitor, gateways, alerts, series).
//! The ISP group answers in its own error shape (`isp::IspError`).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};

use super::ApiError;

/// A query-string rejection as `400 bad query: ...`.
pub(crate) fn query_rejected(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", e.body_text()))
}

/// The parsed query string, or `400 bad query: ...`.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(query_rejected)
}

/// The parsed path parameter(s), or `400 bad path: ...`.
pub(crate) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

/// `#[serde(deserialize_with = ...)]` for an optional integer field: takes a JSON integer and
/// also a number with a zero fraction (`385.0`, which JSON Schema calls an integer too), so a
/// client that writes its integers as floats is not refused; in a query string, the text of such
/// a number. Out of range or fractional is an error.
pub(crate) fn opt_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    use serde::Deserialize;
    /// A JSON number, or the text of one (a query string's value).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(serde_json::Number),
        Text(String),
    }
    let n = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Number(n)) => n,
        Some(Raw::Text(t)) => t
            .trim()
            .parse::<serde_json::Number>()
            .map_err(|_| D::Error::custom(format!("{t:?} is not an integer")))?,
    };
    let out_of_range = || D::Error::custom(format!("{n} is out of range"));
    if let Some(v) = n.as_u64() {
        return T::try_from(v).map(Some).map_err(|_| out_of_range());
    }
    if let Some(v) = n.as_i64() {
        return T::try_from(v).map(Some).map_err(|_| out_of_range());
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            T::try_from(f as i64).map(Some).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!("{n} is not an integer"))),
    }
}

/// A query-string rejection as `400 invalid query string: ...`.
pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
}
