//! Delivery of alert events to the configured receivers, from the queue in SQLite
//! (`alert_deliveries`), on a tokio task of its own: a receiver that is down, slow or answers an
//! error gets retries with exponential backoff (`retry_base` doubled per attempt up to
//! `retry_max`, `max_attempts` in all) and never holds up ingest, the API or the other queued
//! deliveries (each attempt is a task of its own, bounded by `send_timeout`).
//!
//! Bodies (documented in docs/alerts.md):
//! - `webhook`: [`webhook_body`] as JSON; with a `secret`, `X-Routerstats-Signature:
//!   sha256=<hex HMAC-SHA256(secret, raw body)>`; also `X-Routerstats-Event` and
//!   `X-Routerstats-Delivery` (the queue id: the same id on a retry).
//! - `slack`: `{"text": ...}` (Slack and Mattermost incoming webhooks).
//! - `alertmanager`: `POST {url}/api/v2/alerts` with one alert (labels, annotations, `startsAt`,
//!   `endsAt` when resolved). Alertmanager resolves an alert it has not heard of for its
//!   `resolve_timeout`, so every firing alert is sent again every [`ALERTMANAGER_RESEND`].
//! - `email`: a plain-text mail over SMTP (STARTTLS required by default) via lettre.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::config::{AlertsConfig, EmailReceiver, Receiver, ReceiverKind};
use super::state::{get_alert, AlertRow, ALERT_COLUMNS};

/// How often firing alerts are sent again to Alertmanager receivers.
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);
/// Attempts in flight at most.
const MAX_IN_FLIGHT: usize = 64;
/// The signature header of the generic webhook.
pub const SIGNATURE_HEADER: &str = "X-Routerstats-Signature";

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("receiver answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("smtp: {0}")]
    Smtp(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The generic webhook's JSON body for one event (`"firing"` or `"resolved"`).
pub fn webhook_body(alert: &AlertRow, event: &str, now_ms: i64) -> Value {
    json!({
        "version": 1,
        "event": event,
        "sent_at": rfc3339(now_ms),
        "alert": {
            "id": alert.id,
            "rule": alert.rule,
            "state": alert.state,
            "severity": alert.severity,
            "router": alert.router,
            "router_id": alert.router_id,
            "site": alert.site,
            "subject": alert.subject,
            "summary": alert.summary,
            "values": alert.values,
            "started_at": rfc3339(alert.started_ms),
            "ended_at": alert.ended_ms.map(rfc3339),
            "started_ms": alert.started_ms,
            "ended_ms": alert.ended_ms,
        }
    })
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// One line of text for chat and mail subjects.
pub fn headline(alert: &AlertRow, event: &str) -> String {
    let tag = if event == "resolved" {
        "RESOLVED"
    } else {
        "FIRING"
    };
    format!(
        "[{tag}] {} {}: {}",
        alert.severity, alert.rule, alert.summary
    )
}

fn text_body(alert: &AlertRow, event: &str) -> String {
    let mut s = format!(
        "{}\n\nrouter: {}\nsite: {}\nrule: {}\nsubject: {}\nstarted: {}\n",
        headline(alert, event),
        alert.router,
        alert.site.as_deref().unwrap_or("-"),
        alert.rule,
        if alert.subject.is_empty() {
            "-"
        } else {
            &alert.subject
        },
        rfc3339(alert.started_ms),
    );
    if let Some(e) = alert.ended_ms {
        s.push_str(&format!("resolved: {}\n", rfc3339(e)));
    }
    s.push_str(&format!("values: {}\n", alert.values));
    s
}

/// Alertmanager's `postableAlert` for one alert.
pub fn alertmanager_alert(alert: &AlertRow) -> Value {
    let mut labels = json!({
        "alertname": alert.rule,
        "router": alert.router,
        "severity": alert.severity,
        "source": "routerstats",
    });
    if let Some(site) = &alert.site {
        labels["site"] = json!(site);
    }
    if !alert.subject.is_empty() {
        labels["subject"] = json!(alert.subject);
    }
    let mut a = json!({
        "labels": labels,
        "annotations": {"summary": alert.summary, "values": alert.values.to_string()},
        "startsAt": rfc3339(alert.started_ms),
    });
    if let Some(e) = alert.ended_ms {
        a["endsAt"] = json!(rfc3339(e));
    }
    a
}

/// Sends to HTTP and SMTP receivers.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    timeout: Duration,
}

async fn check(resp: reqwest::Response) -> Result<(), SendError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(SendError::Status {
        status: status.as_u16(),
        body: body.chars().take(200).collect(),
    })
}

impl Sender {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("routerstats-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Sender { http, timeout }
    }

    /// One attempt to deliver `event` of `alert` to `r` (delivery id `id`).
    pub async fn send(
        &self,
        r: &Receiver,
        alert: &AlertRow,
        event: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<(), SendError> {
        let fut = async {
            match &r.kind {
                ReceiverKind::Webhook { url, secret } => {
                    let body =
                        serde_json::to_vec(&webhook_body(alert, event, now_ms)).unwrap_or_default();
                    let mut req = self
                        .http
                        .post(url)
                        .header("content-type", "application/json")
                        .header("X-Routerstats-Event", event)
                        .header("X-Routerstats-Delivery", id.to_string());
                    if let Some(s) = secret {
                        req = req.header(SIGNATURE_HEADER, signature(s, &body));
                    }
                    check(req.body(body).send().await?).await
                }
                ReceiverKind::Slack { url } => {
                    let text = format!(
                        "{}\n{} · {}",
                        headline(alert, event),
                        alert.router,
                        alert.values
                    );
                    check(
                        self.http
                            .post(url)
                            .json(&json!({ "text": text }))
                            .send()
                            .await?,
                    )
                    .await
                }
                ReceiverKind::Alertmanager { url } => {
                    self.post_alertmanager(url, std::slice::from_ref(alert))
                        .await
                }
                ReceiverKind::Email(e) => send_mail(e, alert, event, self.timeout).await,
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(self.timeout)),
        }
    }

    /// Posts alerts to Alertmanager's `/api/v2/alerts`.
    pub async fn post_alertmanager(
        &self,
        base: &str,
        alerts: &[AlertRow],
    ) -> Result<(), SendError> {
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        let body: Vec<Value> = alerts.iter().map(alertmanager_alert).collect();
        check(self.http.post(url).json(&body).send().await?).await
    }
}

async fn send_mail(
    e: &EmailReceiver,
    alert: &AlertRow,
    event: &str,
    timeout: Duration,
) -> Result<(), SendError> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let smtp = |m: &dyn std::fmt::Display| SendError::Smtp(m.to_string());
    let mut msg = Message::builder()
        .from(e.from.parse().map_err(|x| smtp(&x))?)
        .subject(headline(alert, event))
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        msg = msg.to(to.parse().map_err(|x| smtp(&x))?);
    }
    let msg = msg.body(text_body(alert, event)).map_err(|x| smtp(&x))?;
    let tls = || -> Result<TlsParameters, SendError> {
        let mut b = TlsParameters::builder(e.smtp_host.clone());
        if let Some(ca) = &e.ca_file {
            let pem =
                std::fs::read(ca).map_err(|x| SendError::Smtp(format!("{}: {x}", ca.display())))?;
            b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|x| smtp(&x))?);
        }
        b.build_rustls().map_err(|x| smtp(&x))
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.smtp_host.as_str())
        .port(e.smtp_port)
        .timeout(Some(timeout));
    t = match e.security.as_str() {
        "none" => t.tls(Tls::None),
        "tls" => t.tls(Tls::Wrapper(tls()?)),
        _ => t.tls(Tls::Required(tls()?)),
    };
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    t.build().send(msg).await.map_err(|x| smtp(&x))?;
    Ok(())
}

/// A queued delivery.
#[derive(Debug, Clone)]
struct Due {
    id: i64,
    alert_id: i64,
    event: String,
    receiver: String,
    attempts: i64,
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(cfg: &AlertsConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(30)).unwrap_or(u32::MAX);
    cfg.retry_base.saturating_mul(factor).min(cfg.retry_max)
}

use crate::clock::now_ms;

/// Records the outcome of one attempt: delivered or given up (deleted), or the next attempt.
fn record(
    c: &Connection,
    cfg: &AlertsConfig,
    d: &Due,
    result: Result<(), String>,
    fatal: bool,
) -> rusqlite::Result<()> {
    let attempts = d.attempts + 1;
    match result {
        Ok(()) => {
            tracing::info!(receiver = %d.receiver, alert = d.alert_id, event = %d.event, "alert delivered");
            c.execute("DELETE FROM alert_deliveries WHERE id = ?1", [d.id])?;
        }
        Err(e) if fatal || attempts >= i64::from(cfg.max_attempts) => {
            tracing::warn!(receiver = %d.receiver, alert = d.alert_id, attempts, error = %e, "alert delivery given up");
            c.execute("DELETE FROM alert_deliveries WHERE id = ?1", [d.id])?;
        }
        Err(e) => {
            let delay = backoff(cfg, (attempts - 1).clamp(0, 64) as u32).as_millis() as i64;
            tracing::warn!(receiver = %d.receiver, alert = d.alert_id, attempts, retry_in_ms = delay, error = %e, "alert delivery failed; will retry");
            c.execute(
                "UPDATE alert_deliveries SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE id = ?1",
                params![d.id, attempts, now_ms() + delay, e],
            )?;
        }
    }
    Ok(())
}

/// The delivery worker: its own database connection, the receivers and the sender.
pub struct Deliverer {
    cfg: AlertsConfig,
    db: Db,
    sender: Sender,
    in_flight: Arc<tokio::sync::Semaphore>,
}

type Db = Arc<Mutex<crate::store::Store>>;

async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> rusqlite::Result<T> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let c = db.lock().unwrap_or_else(|e| e.into_inner());
        f(c.connection())
    })
    .await
    .unwrap_or_else(|e| Err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
}

impl Deliverer {
    /// Opens its own connection to the database at `path`.
    pub fn open(cfg: AlertsConfig, path: &Path) -> Result<Self, crate::store::StoreError> {
        let store = crate::store::Store::open(path)?;
        let sender = Sender::new(cfg.send_timeout);
        Ok(Deliverer {
            cfg,
            db: Arc::new(Mutex::new(store)),
            sender,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Runs until `stop` fires: delivers what is due, then waits for `wake` or the next due time.
    pub async fn run(self, wake: Arc<Notify>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_resend = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.round(&wake).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "alert delivery round failed");
                    Duration::from_secs(5)
                }
            };
            if last_resend.elapsed() >= ALERTMANAGER_RESEND {
                last_resend = tokio::time::Instant::now();
                self.resend_firing().await;
            }
            let wait = next.min(ALERTMANAGER_RESEND);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Starts an attempt for every due delivery, each on a task of its own (a slow receiver
    /// holds up nothing else), and returns the time until the next one is due. A delivery taken
    /// is leased (its next attempt moved past the send timeout) so it is not taken twice, and is
    /// retried after the lease if the collector stops mid-attempt.
    pub async fn round(&self, wake: &Arc<Notify>) -> rusqlite::Result<Duration> {
        let now = now_ms();
        let lease = now + self.cfg.send_timeout.as_millis() as i64 + 1000;
        let free = self.in_flight.available_permits() as i64;
        let due: Vec<(Due, Option<AlertRow>)> = blocking(&self.db, move |c| {
            let tx = c.unchecked_transaction()?;
            let rows: Vec<Due> = tx
                .prepare_cached(
                    "SELECT id, alert_id, event, receiver, attempts FROM alert_deliveries \
                     WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
                )?
                .query_map(params![now, free], |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        alert_id: r.get(1)?,
                        event: r.get(2)?,
                        receiver: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for d in rows {
                tx.prepare_cached(
                    "UPDATE alert_deliveries SET next_attempt_ms = ?2 WHERE id = ?1",
                )?
                .execute(params![d.id, lease])?;
                let alert = get_alert(&tx, d.alert_id)?;
                out.push((d, alert));
            }
            tx.commit()?;
            Ok(out)
        })
        .await?;
        for (d, alert) in due {
            let receiver = self
                .cfg
                .receivers
                .iter()
                .find(|r| r.name == d.receiver)
                .cloned();
            let (sender, db, cfg, wake) = (
                self.sender.clone(),
                self.db.clone(),
                self.cfg.clone(),
                wake.clone(),
            );
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let result = match (&receiver, &alert) {
                    (Some(r), Some(a)) => sender
                        .send(r, a, &d.event, d.id, now)
                        .await
                        .map_err(|e| e.to_string()),
                    (None, _) => Err("receiver no longer configured".to_string()),
                    (_, None) => Err("alert no longer stored".to_string()),
                };
                let fatal = receiver.is_none() || alert.is_none();
                if let Err(e) = blocking(&db, move |c| record(c, &cfg, &d, result, fatal)).await {
                    tracing::warn!(error = %e, "cannot record an alert delivery attempt");
                }
                wake.notify_one();
            });
        }
        blocking(&self.db, |c| {
            let next: Option<i64> = c.query_row(
                "SELECT min(next_attempt_ms) FROM alert_deliveries",
                [],
                |r| r.get(0),
            )?;
            Ok(match next {
                Some(t) => Duration::from_millis((t - now_ms()).clamp(0, 3_600_000) as u64),
                None => Duration::from_secs(3600),
            })
        })
        .await
    }

    /// Sends every firing, unsilenced alert to the Alertmanager receivers again.
    pub async fn resend_firing(&self) {
        let ams: Vec<String> = self
            .cfg
            .receivers
            .iter()
            .filter_map(|r| match &r.kind {
                ReceiverKind::Alertmanager { url } => Some(url.clone()),
                _ => None,
            })
            .collect();
        if ams.is_empty() {
            return;
        }
        let firing = blocking(&self.db, |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' AND silenced = 0 ORDER BY id LIMIT 10000"
            ))?;
            let rows = st.query_map([], AlertRow::from_row)?.collect::<Result<Vec<_>, _>>();
            rows
        })
        .await;
        let Ok(firing) = firing else { return };
        if firing.is_empty() {
            return;
        }
        for url in ams {
            if let Err(e) = self.sender.post_alertmanager(&url, &firing).await {
                tracing::warn!(url, error = %e, "cannot resend firing alerts to Alertmanager");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertRow {
        AlertRow {
            id: 3,
            rule: "cpu".into(),
            router_id: 1,
            router: "r1".into(),
            site: Some("north".into()),
            subject: String::new(),
            severity: "warning".into(),
            state: "firing".into(),
            summary: "r1 CPU at 95.0% (above 90%)".into(),
            values: json!({"cpu_percent": 95.0}),
            silenced: false,
            started_ms: 1_700_000_000_000,
            ended_ms: None,
            updated_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bodies_carry_the_alert() {
        let b = webhook_body(&alert(), "firing", 1_700_000_001_000);
        assert_eq!(b["version"], 1);
        assert_eq!(b["alert"]["started_at"], "2023-11-14T22:13:20Z");
        assert_eq!(b["alert"]["ended_at"], Value::Null);
        assert_eq!(b["alert"]["values"]["cpu_percent"], 95.0);
        let mut resolved = alert();
        resolved.ended_ms = Some(1_700_000_060_000);
        let am = alertmanager_alert(&resolved);
        assert_eq!(am["labels"]["alertname"], "cpu");
        assert_eq!(am["labels"]["site"], "north");
        assert_eq!(am["endsAt"], "2023-11-14T22:14:20Z");
        assert!(headline(&resolved, "resolved").starts_with("[RESOLVED] warning cpu"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = AlertsConfig::default();
        assert_eq!(backoff(&cfg, 0), Duration::from_secs(5));
        assert_eq!(backoff(&cfg, 3), Duration::from_secs(40));
        assert_eq!(backoff(&cfg, 40), Duration::from_secs(600));
    }
}
