//! The registry service: certificate lookups, enrollment and renewal against the database.
//!
//! These requests are rare compared to reports, but they must not wait behind (or fail with) the
//! report writer, so they run on their own thread with their own [`Store`] connection. Connection
//! tasks talk to it through [`Control`], a cheap cloneable handle; each request carries a oneshot
//! for its answer. The answers are ready-made protocol messages.

use std::str::FromStr;
use std::sync::Arc;

use routerstats_shared::message::{
    EnrollRequest, EnrollResponse, ErrorCode, ErrorMsg, RenewResponse,
};
use routerstats_shared::token::EnrollToken;
use tokio::sync::{mpsc, oneshot};

use crate::clock::unix_now;
use crate::pki::tokens::sha256;
use crate::pki::{Pki, SignedCert};
use crate::store::{CertInfo, EnrollError, RouterRow, Store, StoreError};

/// Longest hostname kept from an enrollment request.
const MAX_HOSTNAME_LEN: usize = 253;

enum Request {
    Lookup {
        fingerprint: String,
        reply: oneshot::Sender<Result<Option<RouterRow>, String>>,
    },
    Enroll {
        req: EnrollRequest,
        reply: oneshot::Sender<Result<EnrollResponse, ErrorMsg>>,
    },
    Renew {
        router_id: i64,
        router_name: String,
        csr_pem: String,
        reply: oneshot::Sender<Result<RenewResponse, ErrorMsg>>,
    },
}

/// Handle on the registry thread.
#[derive(Clone)]
pub struct Control {
    tx: mpsc::Sender<Request>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorMsg {
    ErrorMsg {
        code,
        message: message.into(),
    }
}

fn unavailable() -> ErrorMsg {
    err(
        ErrorCode::Unavailable,
        "collector is shutting down; try again later",
    )
}

impl Control {
    /// Starts the registry thread with its own store connection.
    pub fn spawn(store: Store, pki: Arc<Pki>, client_cert_days: u32) -> std::io::Result<Control> {
        let (tx, mut rx) = mpsc::channel::<Request>(256);
        std::thread::Builder::new()
            .name("db-registry".into())
            .spawn(move || {
                let mut svc = Service {
                    store,
                    pki,
                    client_cert_days,
                };
                while let Some(req) = rx.blocking_recv() {
                    svc.handle(req);
                }
                tracing::debug!("registry thread stopped");
            })?;
        Ok(Control { tx })
    }

    /// The router owning a certificate fingerprint (revoked ones included).
    pub async fn lookup(&self, fingerprint: &str) -> Result<Option<RouterRow>, String> {
        let (reply, rx) = oneshot::channel();
        let req = Request::Lookup {
            fingerprint: fingerprint.to_string(),
            reply,
        };
        if self.tx.send(req).await.is_err() {
            return Err("registry is shut down".into());
        }
        rx.await
            .map_err(|_| "registry dropped the request".to_string())?
    }

    /// Enrolls a router; the error is the message to send back.
    pub async fn enroll(&self, req: EnrollRequest) -> Result<EnrollResponse, ErrorMsg> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Enroll { req, reply }).await.is_err() {
            return Err(unavailable());
        }
        rx.await.unwrap_or_else(|_| Err(unavailable()))
    }

    /// Issues a fresh certificate to an enrolled router and records its fingerprint.
    pub async fn renew(
        &self,
        router_id: i64,
        router_name: &str,
        csr_pem: String,
    ) -> Result<RenewResponse, ErrorMsg> {
        let (reply, rx) = oneshot::channel();
        let req = Request::Renew {
            router_id,
            router_name: router_name.to_string(),
            csr_pem,
            reply,
        };
        if self.tx.send(req).await.is_err() {
            return Err(unavailable());
        }
        rx.await.unwrap_or_else(|_| Err(unavailable()))
    }
}

struct Service {
    store: Store,
    pki: Arc<Pki>,
    client_cert_days: u32,
}

impl Service {
    fn handle(&mut self, req: Request) {
        match req {
            Request::Lookup { fingerprint, reply } => {
                let r = self.store.router_by_fingerprint(&fingerprint).map_err(|e| {
                    tracing::error!(error = %e, "certificate lookup failed");
                    e.to_string()
                });
                let _ = reply.send(r);
            }
            Request::Enroll { req, reply } => {
                let _ = reply.send(self.enroll(req));
            }
            Request::Renew {
                router_id,
                router_name,
                csr_pem,
                reply,
            } => {
                let _ = reply.send(self.renew(router_id, &router_name, &csr_pem));
            }
        }
    }

    fn enroll(&mut self, req: EnrollRequest) -> Result<EnrollResponse, ErrorMsg> {
        let token = EnrollToken::from_str(&req.token).map_err(|e| {
            err(
                ErrorCode::InvalidToken,
                format!("malformed enrollment token: {e}"),
            )
        })?;
        if token.ca_hash != self.pki.ca_hash() {
            return Err(err(
                ErrorCode::InvalidToken,
                "the token was issued by another collector (its CA hash does not match)",
            ));
        }
        Pki::check_csr(&req.csr_pem).map_err(|e| err(ErrorCode::BadCsr, e.to_string()))?;
        // The store normalises the requested name (and suffixes it when taken).
        let requested = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let hostname: String = req
            .hostname
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_HOSTNAME_LEN)
            .collect();
        let mut signed: Option<SignedCert> = None;
        let (pki, days, csr) = (&self.pki, self.client_cert_days, &req.csr_pem);
        let result = self.store.enroll(
            &token.id,
            &sha256(&token.secret),
            requested,
            &hostname,
            unix_now(),
            |name| {
                let cert = pki
                    .sign_client_csr(csr, name, days)
                    .map_err(|e| e.to_string())?;
                let info = CertInfo {
                    fingerprint: cert.fingerprint.clone(),
                    not_after: cert.not_after,
                };
                signed = Some(cert);
                Ok(info)
            },
        );
        match result {
            Ok(row) => {
                let cert =
                    signed.ok_or_else(|| err(ErrorCode::Internal, "certificate was not issued"))?;
                tracing::info!(router_id = row.id, router = %row.name, hostname = %hostname, token = %token.id, "router enrolled");
                Ok(EnrollResponse {
                    router_id: row.id,
                    router_name: row.name,
                    cert_pem: cert.cert_pem,
                    ca_pem: self.pki.ca_pem().to_string(),
                })
            }
            Err(e) => {
                let msg = enroll_error(e);
                // The listener logs the first failure of an address and summarizes the rest.
                tracing::debug!(token = %token.id, hostname = %hostname, code = ?msg.code, reason = %msg.message, "enrollment refused");
                Err(msg)
            }
        }
    }

    fn renew(
        &mut self,
        router_id: i64,
        router_name: &str,
        csr_pem: &str,
    ) -> Result<RenewResponse, ErrorMsg> {
        // The router may have been renamed or revoked since it connected.
        let current = self.store.router(&router_id.to_string()).map_err(|e| {
            tracing::error!(router_id, error = %e, "router lookup for renewal failed");
            err(
                ErrorCode::Internal,
                "cannot read the router record; try again later",
            )
        })?;
        let name = match current {
            Some(row) if row.revoked_at.is_some() => {
                return Err(err(
                    ErrorCode::Revoked,
                    format!("router {} was revoked", row.name),
                ))
            }
            Some(row) if row.id == router_id => row.name,
            _ => router_name.to_string(),
        };
        let cert = self
            .pki
            .sign_client_csr(csr_pem, &name, self.client_cert_days)
            .map_err(|e| err(ErrorCode::BadCsr, e.to_string()))?;
        self.store
            .update_router_cert(router_id, &cert.fingerprint, cert.not_after)
            .map_err(|e| {
                tracing::error!(router_id, error = %e, "recording a renewed certificate failed");
                err(
                    ErrorCode::Internal,
                    format!("cannot record the new certificate: {e}"),
                )
            })?;
        tracing::info!(router_id, router = %name, not_after = cert.not_after, "certificate renewed");
        Ok(RenewResponse {
            cert_pem: cert.cert_pem,
        })
    }
}

fn enroll_error(e: EnrollError) -> ErrorMsg {
    match e {
        EnrollError::Unknown => err(
            ErrorCode::InvalidToken,
            "unknown enrollment token (or wrong secret)",
        ),
        EnrollError::Expired => err(
            ErrorCode::ExpiredToken,
            "the enrollment token has expired; create a new one",
        ),
        EnrollError::Used => err(
            ErrorCode::UsedToken,
            "the enrollment token was already used; create a new one",
        ),
        EnrollError::Sign(m) => err(ErrorCode::BadCsr, m),
        EnrollError::Store(StoreError::NameTaken(n)) => err(
            ErrorCode::Protocol,
            format!("router name {n:?} is already taken; choose another name"),
        ),
        EnrollError::Store(StoreError::InvalidInput(m)) => err(ErrorCode::Protocol, m),
        EnrollError::Store(other) => {
            tracing::error!(error = %other, "enrollment failed in the database");
            err(
                ErrorCode::Internal,
                "the collector could not store the enrollment; try again later",
            )
        }
    }
}
