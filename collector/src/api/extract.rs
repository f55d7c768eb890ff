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

/// A query-string rejection as `400 invalid query string: ...`.
pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
}
