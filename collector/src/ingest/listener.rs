//! The ingest listener: TLS 1.3 with optional client certificates, enrollment and reports.
//!
//! One accept loop hands each connection to its own task. Until its first frame a connection is
//! unauthenticated: it holds a slot of the small pre-auth pool ([`PreAuthPool`]: its own
//! cap, a per-address cap, eviction of the biggest address's oldest slot when full), must finish
//! the TLS handshake and send its first frame within `preauth_timeout`, and may send frames of
//! at most [`MAX_PREAUTH_FRAME_LEN`] bytes. A router whose `Hello` is accepted moves to the
//! routers' pool (`max_connections`, a semaphore) and may send frames up to `max_frame`. Failed
//! enrollments are budgeted per address ([`EnrollLimiter`]) and summarized in the log.
//! A connection gets a read timeout; a bad frame, an idle peer or a protocol violation closes
//! that connection only (logged with the reason, and answered with an `Error` frame where that
//! makes sense).
//!
//! - First message `EnrollRequest` (any connection): enrollment through [`Control`], answer, close.
//! - First message `Hello` (client certificate required): the certificate fingerprint is looked
//!   up; unknown or revoked -> `Error{Revoked}`. Then `HelloAck`, and `Report`s go to the one
//!   database writer, whose acks come back after commit; `RenewRequest` is answered in place.
//!   Fleet actions ([`crate::actions::Hub`]) for the router are written on the same connection
//!   (`Action`), and its `ActionResult`s are stored before anything else is done with them.
//! - Anything else -> `Error{Protocol}` and close.
//!
//! A frame reader task per connection turns the read half into events, so waiting for a frame
//! never blocks sending acks or reacting to revocation and shutdown.
//!
//! The reader keeps the payload of the last report of its connection: a `ReportPatch` frame is
//! applied to it ([`routerstats_shared::patch`]) and the result is handled exactly like a
//! `Report` payload (same decode, dedup, writer and ack). A patch with no report before it on
//! the connection, or one that does not apply, is a bad frame like any other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerstats_shared::io::{read_frame_capped, write_message, IoError};
use routerstats_shared::message::{ErrorCode, ErrorMsg, Hello, HelloAck};
use routerstats_shared::{patch, FrameError, Message, MessageKind, MAX_PREAUTH_FRAME_LEN};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWriteExt, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::clock::{now_ms, unix_now};
use crate::ingest::control::Control;
use crate::ingest::guard::{EnrollLimiter, PreAuthPool, PreAuthSlot, Refusal};
use crate::ingest::revocation::{ConnGuard, OpenConns};
use crate::ingest::writer::{DbHealth, IngestJob, WriterReply};
use crate::pki::{cert_facts, cert_fingerprint, Pki};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The rustls server configuration: TLS 1.3 only, ring provider, chain `[leaf, CA]`, client
/// certificates from our CA optional (a certificate from another CA fails the handshake).
pub fn tls_server_config(pki: &Pki) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain(), pki.server_key())?;
    Ok(Arc::new(config))
}

/// Limits of the ingest listener.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub handshake_timeout: Duration,
    pub read_timeout: Duration,
    pub max_frame: u32,
    pub max_connections: usize,
    /// From accept to the first frame.
    pub preauth_timeout: Duration,
}

/// Everything a connection task needs.
pub struct IngestCtx {
    pub settings: IngestSettings,
    pub acceptor: TlsAcceptor,
    pub writer: mpsc::Sender<IngestJob>,
    pub control: Control,
    pub conns: OpenConns,
    pub health: Arc<DbHealth>,
    /// The routers' pool (authenticated connections).
    pub permits: Arc<Semaphore>,
    /// Connections that have not authenticated yet.
    pub preauth: Arc<PreAuthPool>,
    /// Failed enrollments per address.
    pub enroll_limiter: Arc<EnrollLimiter>,
    /// Bad frames from unauthenticated peers, logged once a second.
    pub preauth_log: std::sync::Mutex<Throttle>,
    pub shutdown: watch::Receiver<bool>,
    pub actions: crate::actions::Hub,
}

impl IngestCtx {
    /// Open ingest connections right now (routers and unauthenticated ones).
    pub fn active_connections(&self) -> usize {
        self.router_connections() + self.preauth.open()
    }

    /// Authenticated router connections right now.
    pub fn router_connections(&self) -> usize {
        self.settings
            .max_connections
            .saturating_sub(self.permits.available_permits())
    }
}

/// Logs at most one line per second for a repeated event, with the count since the last line.
#[derive(Default)]
pub struct Throttle {
    count: u64,
    last: Option<Instant>,
}

impl Throttle {
    /// Counts one event; Some(count) when a line is due.
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last = Some(Instant::now());
            return Some(std::mem::take(&mut self.count));
        }
        None
    }
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accepts connections until shutdown.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<IngestCtx>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut refused = Throttle::default();
    let mut summary = tokio::time::interval(Duration::from_secs(5));
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            _ = wait_true(&mut shutdown) => break,
            r = listener.accept() => r,
            _ = summary.tick() => {
                if let Some(line) = ctx.enroll_limiter.take_summary(std::time::Instant::now()) {
                    tracing::warn!("{line}");
                }
                continue;
            }
        };
        match accepted {
            Ok((tcp, peer)) => match ctx.preauth.admit(peer.ip()) {
                Ok(slot) => {
                    tokio::spawn(serve_connection(ctx.clone(), tcp, peer, slot));
                }
                Err(why) => {
                    drop(tcp);
                    if let Some(n) = refused.hit() {
                        let why = match why {
                            Refusal::PerAddress => {
                                "this address holds too many unauthenticated connections"
                            }
                            Refusal::Full => "the unauthenticated connection pool is full",
                        };
                        tracing::warn!(%peer, refused = n, "{why}; closed the new connection");
                    }
                }
            },
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %e, "accepting an ingest connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!("ingest accept loop stopped");
}

/// Retry hints (seconds) sent with `Error{Unavailable}`: a restarting collector is back in
/// seconds; a full router pool or a failing disk takes longer.
const SHUTDOWN_RETRY_S: u64 = 2;
const CAP_RETRY_S: u64 = 10;
const DB_RETRY_S: u64 = 5;

/// What the frame reader saw.
enum Inbound {
    Msg(Message),
    Closed,
    Idle,
    Failed(IoError),
}

/// The last report payload of one connection, which a `ReportPatch` is relative to, with its
/// kind: a patch of a version 1 report payload (old agents) is a version 1 payload too.
#[derive(Debug, Default)]
pub(crate) struct ReportBase {
    prev: Option<(MessageKind, Vec<u8>)>,
}

impl ReportBase {
    /// Decodes one frame; a `ReportPatch` is applied to the previous report payload and comes
    /// back as a `Message::Report`. Every report payload becomes the base of the next patch.
    pub(crate) fn decode(
        &mut self,
        kind: MessageKind,
        payload: Vec<u8>,
        max_frame: u32,
    ) -> Result<Message, FrameError> {
        let (kind, payload) = if kind == MessageKind::ReportPatch {
            let bad = |reason: String| FrameError::BadPayload { kind, reason };
            let (base_kind, base) = self.prev.as_ref().ok_or_else(|| {
                bad("a ReportPatch needs a full Report before it on the same connection".into())
            })?;
            let full = patch::apply(base, &payload, max_frame).map_err(|e| bad(e.to_string()))?;
            (*base_kind, full)
        } else {
            (kind, payload)
        };
        let msg = Message::decode_payload(kind, &payload)?;
        if kind.is_full_report() {
            self.prev = Some((kind, payload));
        }
        Ok(msg)
    }
}

/// Reads frames into events. Until `authed` is set, frames over [`MAX_PREAUTH_FRAME_LEN`] are
/// refused after their header.
async fn read_frames<R: AsyncRead + Unpin>(
    mut rd: R,
    tx: mpsc::Sender<Inbound>,
    read_timeout: Duration,
    max_frame: u32,
    authed: Arc<AtomicBool>,
) {
    let mut base = ReportBase::default();
    let cap = || {
        if authed.load(Ordering::Acquire) {
            max_frame
        } else {
            max_frame.min(MAX_PREAUTH_FRAME_LEN)
        }
    };
    loop {
        let ev = match tokio::time::timeout(read_timeout, read_frame_capped(&mut rd, cap)).await {
            Err(_) => Inbound::Idle,
            Ok(Ok((kind, payload))) => match base.decode(kind, payload, max_frame) {
                Ok(m) => Inbound::Msg(m),
                Err(e) => Inbound::Failed(IoError::Frame(e)),
            },
            Ok(Err(IoError::Closed)) => Inbound::Closed,
            Ok(Err(e)) => Inbound::Failed(e),
        };
        let last = !matches!(ev, Inbound::Msg(_));
        if tx.send(ev).await.is_err() || last {
            return;
        }
    }
}

async fn serve_connection(
    ctx: Arc<IngestCtx>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: PreAuthSlot,
) {
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + ctx.settings.preauth_timeout;
    let handshake = tokio::time::timeout(
        ctx.settings
            .handshake_timeout
            .min(ctx.settings.preauth_timeout),
        ctx.acceptor.accept(tcp),
    );
    let tls = tokio::select! {
        r = handshake => match r {
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out; closing");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed; closing");
                return;
            }
            Ok(Ok(s)) => s,
        },
        _ = slot.evicted() => {
            tracing::debug!(%peer, "unauthenticated connection evicted to make room; closing");
            return;
        }
    };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let (rd, wr) = tokio::io::split(tls);
    let (in_tx, in_rx) = mpsc::channel(4);
    let authed = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_frames(
        rd,
        in_tx,
        ctx.settings.read_timeout,
        ctx.settings.max_frame,
        authed.clone(),
    ));
    let shutdown = ctx.shutdown.clone();
    let mut conn = Conn {
        ctx,
        peer,
        wr,
        inbound: in_rx,
        client_cert,
        shutdown,
        router: None,
        preauth: Some(slot),
        deadline,
        authed,
        _permit: None,
    };
    conn.run().await;
    reader.abort();
    let _ = reader.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.wr.shutdown()).await;
}

struct Conn {
    ctx: Arc<IngestCtx>,
    peer: SocketAddr,
    wr: WriteHalf<TlsStream<TcpStream>>,
    inbound: mpsc::Receiver<Inbound>,
    client_cert: Option<Vec<u8>>,
    shutdown: watch::Receiver<bool>,
    /// Set after a successful Hello.
    router: Option<(i64, String)>,
    /// Held until the connection authenticates (or ends, for an enrollment).
    preauth: Option<PreAuthSlot>,
    /// When the first frame must have arrived.
    deadline: tokio::time::Instant,
    /// Lifts the reader's frame cap once the router is known.
    authed: Arc<AtomicBool>,
    /// The router's slot, after Hello.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Conn {
    fn router_id(&self) -> i64 {
        self.router.as_ref().map(|r| r.0).unwrap_or(0)
    }

    fn router_name(&self) -> &str {
        self.router.as_ref().map(|r| r.1.as_str()).unwrap_or("-")
    }

    async fn send(&mut self, msg: &Message) -> Result<(), ()> {
        match tokio::time::timeout(
            self.ctx.settings.read_timeout,
            write_message(&mut self.wr, msg),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::info!(peer = %self.peer, router = self.router_name(), error = %e, "write failed; closing");
                Err(())
            }
            Err(_) => {
                tracing::info!(peer = %self.peer, router = self.router_name(), "peer does not read; closing");
                Err(())
            }
        }
    }

    async fn send_msg_error(&mut self, e: ErrorMsg) {
        let _ = self.send(&Message::Error(e)).await;
    }

    async fn send_error(&mut self, code: ErrorCode, message: impl Into<String>) {
        let _ = self
            .send(&Message::Error(ErrorMsg {
                code,
                message: message.into(),
            }))
            .await;
    }

    /// Turns a reader event into a message, or logs why the connection ends.
    async fn on_event(&mut self, ev: Option<Inbound>) -> Option<Message> {
        let (peer, router) = (self.peer, self.router_name().to_string());
        match ev {
            Some(Inbound::Msg(m)) => Some(m),
            Some(Inbound::Closed) | None => {
                tracing::debug!(%peer, %router, "connection closed by peer");
                None
            }
            Some(Inbound::Idle) => {
                let secs = self.ctx.settings.read_timeout.as_secs();
                tracing::info!(%peer, %router, timeout_s = secs, "closing idle connection");
                None
            }
            Some(Inbound::Failed(e)) => {
                if self.router.is_some() {
                    tracing::warn!(%peer, %router, reason = %e, "closing connection after a bad frame");
                } else if let Some(n) = self
                    .ctx
                    .preauth_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .hit()
                {
                    // Unauthenticated peers can send bad frames as fast as they connect: one
                    // line a second, with the count.
                    tracing::warn!(%peer, reason = %e, bad_frames = n, "closing unauthenticated connections after bad frames");
                }
                if matches!(e, IoError::Frame(_)) {
                    self.send_error(ErrorCode::Protocol, e.to_string()).await;
                }
                None
            }
        }
    }

    /// The next message, unless the connection ends or the collector shuts down.
    async fn next_message(&mut self) -> Option<Message> {
        let ev = tokio::select! {
            ev = self.inbound.recv() => ev,
            _ = wait_true(&mut self.shutdown) => {
                self.send_msg_error(ErrorMsg::unavailable_retry("collector is shutting down", SHUTDOWN_RETRY_S)).await;
                return None;
            }
        };
        self.on_event(ev).await
    }

    /// The first message, within the pre-auth deadline and unless evicted.
    async fn first_message(&mut self) -> Option<Message> {
        let peer = self.peer;
        let slot = self.preauth.take()?;
        let got = tokio::select! {
            m = tokio::time::timeout_at(self.deadline, self.next_message()) => m,
            _ = slot.evicted() => {
                tracing::debug!(%peer, "unauthenticated connection evicted to make room; closing");
                return None;
            }
        };
        self.preauth = Some(slot);
        match got {
            Ok(m) => m,
            Err(_) => {
                tracing::debug!(%peer, timeout_s = self.ctx.settings.preauth_timeout.as_secs_f64(), "no first frame in time; closing");
                None
            }
        }
    }

    async fn enroll(&mut self, req: routerstats_shared::message::EnrollRequest) {
        let (peer, limiter) = (self.peer, self.ctx.enroll_limiter.clone());
        if let Err(retry) = limiter.check(peer.ip(), std::time::Instant::now()) {
            self.send_msg_error(ErrorMsg::unavailable_retry(
                "too many failed enrollments from this address",
                retry,
            ))
            .await;
            return;
        }
        let hostname: String = req
            .hostname
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        let reply = match self.ctx.control.enroll(req).await {
            Ok(resp) => Message::EnrollResponse(resp),
            Err(e) => {
                if limiter.failed(peer.ip(), std::time::Instant::now()) {
                    tracing::warn!(%peer, %hostname, code = ?e.code, reason = %e.message, "enrollment refused (further failures from this address are summarized)");
                }
                Message::Error(e)
            }
        };
        let _ = self.send(&reply).await;
    }

    async fn run(&mut self) {
        let Some(first) = self.first_message().await else {
            return;
        };
        match first {
            Message::EnrollRequest(req) => self.enroll(req).await,
            Message::Hello(hello) => self.ingest(hello).await,
            other => {
                let why = if self.client_cert.is_none() {
                    "a connection without a client certificate may only send EnrollRequest"
                } else {
                    "the first message must be Hello"
                };
                tracing::warn!(peer = %self.peer, kind = ?other.kind(), "{why}; closing");
                self.send_error(
                    ErrorCode::Protocol,
                    format!("unexpected {:?}: {why}", other.kind()),
                )
                .await;
            }
        }
    }

    async fn ingest(&mut self, hello: Hello) {
        let peer = self.peer;
        let Some(der) = self.client_cert.clone() else {
            tracing::warn!(%peer, "Hello without a client certificate; closing");
            self.send_error(
                ErrorCode::Protocol,
                "Hello requires a client certificate: enroll this router first",
            )
            .await;
            return;
        };
        let fingerprint = cert_fingerprint(&der);
        let row = match self.ctx.control.lookup(&fingerprint).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                tracing::warn!(%peer, %fingerprint, "unknown client certificate; closing");
                self.send_error(
                    ErrorCode::Revoked,
                    "this certificate is not registered (the router was removed or re-enrolled); enroll again",
                )
                .await;
                return;
            }
            Err(e) => {
                self.send_error(
                    ErrorCode::Unavailable,
                    format!("collector database unavailable: {e}"),
                )
                .await;
                return;
            }
        };
        if row.revoked_at.is_some() {
            tracing::warn!(%peer, router = %row.name, "revoked router tried to connect; closing");
            self.send_error(
                ErrorCode::Revoked,
                format!("router {} was revoked", row.name),
            )
            .await;
            return;
        }
        let Ok(permit) = self.ctx.permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, router = %row.name, max_connections = self.ctx.settings.max_connections, "router connection cap reached; refusing");
            self.send_msg_error(ErrorMsg::unavailable_retry(
                "the collector is at its router connection cap",
                CAP_RETRY_S,
            ))
            .await;
            return;
        };
        self._permit = Some(permit);
        self.preauth = None;
        self.authed.store(true, Ordering::Release);
        let mut guard = self.ctx.conns.register(row.id);
        self.ctx.conns.note_addr(row.id, self.peer.ip());
        self.router = Some((row.id, row.name.clone()));
        let now = unix_now();
        let (not_before, not_after) = match cert_facts(&der) {
            Ok(f) => (f.not_before, f.not_after),
            Err(_) => (now, row.cert_not_after),
        };
        let lifetime = (not_after - not_before).max(1);
        let ack = HelloAck {
            router_id: row.id,
            router_name: row.name.clone(),
            server_time: u64::try_from(now).unwrap_or(0),
            cert_not_after: u64::try_from(not_after).unwrap_or(0),
            renew_now: not_after - now < lifetime / 3,
        };
        if self.send(&Message::HelloAck(ack)).await.is_err() {
            return;
        }
        tracing::info!(
            %peer,
            router_id = row.id,
            router = %row.name,
            agent_version = %hello.agent_version,
            spooled = hello.spooled,
            "router connected"
        );
        let mut actions = match self.ctx.actions.connect(row.id, peer.ip()).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(%peer, router = %row.name, error = %e, "cannot load the router's actions; none sent on this connection");
                None
            }
        };
        self.ingest_loop(&mut guard, actions.as_mut().map(|c| &mut c.rx))
            .await;
        if let Some(c) = actions {
            self.ctx.actions.disconnect(row.id, c.conn);
        }
    }

    async fn revoked_close(&mut self) {
        tracing::info!(peer = %self.peer, router = self.router_name(), "router revoked; closing its connection");
        self.send_error(
            ErrorCode::Revoked,
            format!("router {} was revoked", self.router_name()),
        )
        .await;
    }

    async fn ingest_loop(
        &mut self,
        guard: &mut ConnGuard,
        mut actions: Option<&mut mpsc::UnboundedReceiver<routerstats_shared::action::Action>>,
    ) {
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let router_id = self.router_id();
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = guard.revoked() => {
                    self.revoked_close().await;
                    return;
                }
                _ = wait_true(&mut shutdown) => {
                    self.send_msg_error(ErrorMsg::unavailable_retry("collector is shutting down", SHUTDOWN_RETRY_S)).await;
                    return;
                }
                Some(action) = async { actions.as_mut()?.recv().await }, if actions.is_some() => {
                    tracing::info!(peer = %self.peer, router = self.router_name(), action = action.id, kind = action.kind.name(), "sending an action");
                    if self.send(&Message::Action(action)).await.is_err() {
                        return;
                    }
                }
                Some(reply) = ack_rx.recv() => match reply {
                    WriterReply::Ack(ack) => {
                        if self.send(&Message::Ack(ack)).await.is_err() {
                            return;
                        }
                    }
                    WriterReply::Rejected(e) => {
                        let _ = self.send(&Message::Error(e)).await;
                        return;
                    }
                },
                ev = self.inbound.recv() => {
                    let Some(msg) = self.on_event(ev).await else { return };
                    match msg {
                        Message::Report(report) => {
                            if self.ctx.health.is_failing() {
                                let why = self.ctx.health.last_error().unwrap_or_default();
                                tracing::warn!(peer = %self.peer, router = self.router_name(), "refusing a report while the database fails");
                                self.send_msg_error(ErrorMsg::unavailable_retry(
                                    format!("collector database unavailable ({why}); keep the report spooled"),
                                    DB_RETRY_S,
                                ))
                                .await;
                                return;
                            }
                            let job = IngestJob { router_id, received_at_ms: now_ms(), report, reply: ack_tx.clone() };
                            // Wait for room in the writer queue (backpressure), but stay revocable.
                            tokio::select! {
                                biased;
                                _ = guard.revoked() => {
                                    self.revoked_close().await;
                                    return;
                                }
                                sent = self.ctx.writer.send(job) => if sent.is_err() {
                                    self.send_msg_error(ErrorMsg::unavailable_retry("collector is shutting down", SHUTDOWN_RETRY_S)).await;
                                    return;
                                }
                            }
                        }
                        Message::ActionResult(result) => {
                            let (id, state) = (result.id, result.state.as_str());
                            match self.ctx.actions.finish(router_id, result).await {
                                Ok(Some(_)) => tracing::info!(peer = %self.peer, router = self.router_name(), action = id, state, "action finished"),
                                Ok(None) => tracing::debug!(peer = %self.peer, router = self.router_name(), action = id, "duplicate or unknown action result ignored"),
                                Err(e) => tracing::warn!(peer = %self.peer, router = self.router_name(), action = id, error = %e, "cannot store an action result; the agent answers again on its next connection"),
                            }
                        }
                        Message::RenewRequest(req) => {
                            let name = self.router_name().to_string();
                            let reply = match self.ctx.control.renew(router_id, &name, req.csr_pem).await {
                                Ok(resp) => Message::RenewResponse(resp),
                                Err(e) => {
                                    tracing::warn!(peer = %self.peer, router = %name, reason = %e.message, "renewal refused");
                                    let _ = self.send(&Message::Error(e)).await;
                                    return;
                                }
                            };
                            if self.send(&reply).await.is_err() {
                                return;
                            }
                        }
                        other => {
                            tracing::warn!(peer = %self.peer, router = self.router_name(), kind = ?other.kind(), "unexpected message on an ingest connection; closing");
                            self.send_error(
                                ErrorCode::Protocol,
                                format!("unexpected {:?} on an ingest connection (expected Report or RenewRequest)", other.kind()),
                            )
                            .await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerstats_shared::{codec, Report, MAX_FRAME_LEN};

    /// A current-model report payload without wireless, station or OpenVPN entries.
    fn payload(seq: u64) -> Vec<u8> {
        let mut r = Report {
            seq,
            boot_id: [9; 16],
            ..Default::default()
        };
        r.router.hostname = "old-agent".into();
        codec::encode(&r).unwrap()
    }

    /// The same report as a version 1 agent encodes it: the current bytes without the two
    /// trailing empty lists (probes, WAN addresses: one length byte each) the v1 model lacks
    /// (the conversion of the other types is tested in `routerstats_shared::model_v1`).
    fn v1_payload(seq: u64) -> Vec<u8> {
        let mut p = payload(seq);
        assert_eq!(p.split_off(p.len() - 2), [0, 0]);
        p
    }

    #[test]
    fn patches_of_old_agents_apply_to_their_version_1_reports() {
        let mut base = ReportBase::default();
        let first = base
            .decode(MessageKind::ReportV1, v1_payload(1), MAX_FRAME_LEN)
            .unwrap();
        assert!(matches!(first, Message::Report(r) if r.seq == 1));
        let p = patch::encode(&v1_payload(1), &v1_payload(2));
        let second = base
            .decode(MessageKind::ReportPatch, p, MAX_FRAME_LEN)
            .unwrap();
        assert!(
            matches!(second, Message::Report(r) if r.seq == 2 && r.router.hostname == "old-agent")
        );
        // The base stays a version 1 payload: a patch on it is decoded as one.
        assert!(matches!(base.prev, Some((MessageKind::ReportV1, _))));
        let third = base
            .decode(MessageKind::Report, payload(3), MAX_FRAME_LEN)
            .unwrap();
        assert!(matches!(third, Message::Report(r) if r.seq == 3));
        assert!(matches!(base.prev, Some((MessageKind::Report, _))));
    }
}
