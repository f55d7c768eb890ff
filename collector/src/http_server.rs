//! Serving the HTTP API with limits: a connection cap, a per-address cap and a header timeout.
//!
//! `axum::serve` has none of these, so the API is served here with hyper's HTTP/1 connection
//! builder (the same one axum uses):
//!
//! - at most `max_connections` open connections, held in the same fair pool as the ingest
//!   listener's unauthenticated connections ([`PreAuthPool`]): while it is at least half full an
//!   address (IPv4, or IPv6 /64) holds at most `per_address` (more are closed at once), and
//!   when it is full a newcomer takes the oldest connection of the address holding the most, if
//!   that address holds more than the newcomer's; otherwise the newcomer is closed at once. So
//!   a flood from a few dozen addresses cannot keep another client out;
//! - `header_timeout` to send a request's headers, counted from the connection's start and,
//!   on a keep-alive connection, from the end of the previous response: slow headers
//!   (slowloris) and idle keep-alive connections are closed after it; connections accepted
//!   while fewer than an eighth of the slots are free get at most 1 s, so a flood of idle
//!   connections turns over quickly.
//!
//! Every answer gets `X-Content-Type-Options: nosniff` ([`nosniff`]). Each request gets the
//! client address as axum's `ConnectInfo<SocketAddr>` (the rate limiter reads it). On shutdown,
//! open connections finish their current request and close.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::ingest::guard::{PreAuthPool, Refusal};
use crate::ingest::listener::wait_true;

/// The header (and idle keep-alive) timeout of connections accepted while the API is nearly full.
pub const PRESSED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Limits of the API listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub per_address: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` turns true; then stops accepting and waits for
/// open connections to finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let pool = PreAuthPool::new(limits.max_connections, limits.per_address);
    let live = Arc::new(());
    let mut refused: u64 = 0;
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = wait_true(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match pool.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                drop(tcp);
                refused += 1;
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    let why = match why {
                        Refusal::PerAddress => "too many API connections from this address",
                        Refusal::Full => "the API is at its connection cap",
                    };
                    tracing::warn!(%peer, refused, "{why}; closed the new one");
                    refused = 0;
                    last_log = Some(std::time::Instant::now());
                }
                continue;
            }
        };
        // Under pressure (less than an eighth of the slots free), new connections get at most
        // PRESSED_HEADER_TIMEOUT: a flood of idle connections then turns over quickly.
        let pressed = pool.open() * 8 > limits.max_connections.max(1) * 7;
        let header_timeout = if pressed {
            limits.header_timeout.min(PRESSED_HEADER_TIMEOUT)
        } else {
            limits.header_timeout
        };
        let live = live.clone();
        let app = app.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _live = live;
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = slot.evicted() => {
                    tracing::debug!(%peer, "API connection evicted to make room for another address");
                    return;
                }
                _ = wait_true(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    // Wait (bounded by the caller) until every connection task has ended.
    while Arc::strong_count(&live) > 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Adds `X-Content-Type-Options: nosniff` to every answer that does not set it already (the JSON
/// routes did not; the dashboard did), so a browser never sniffs a JSON body as HTML.
pub async fn nosniff(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut()
        .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(axum::http::HeaderValue::from_static("nosniff"));
    resp
}

/// Raises the soft limit of open files to the hard limit and returns (soft, hard) after.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim = want;
        }
    }
    // rlim_t is u64 on Linux; the cast keeps other targets compiling.
    #[allow(clippy::unnecessary_cast)]
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}
