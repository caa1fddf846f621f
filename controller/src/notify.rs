//! Delivering notifications of Incidents: a JSON POST to a webhook, or an e-mail through an
//! SMTP relay (plain SMTP on the relay's port, as the union's internal relays take it).
//! Retries and their backoff are the notifier's; this sends once, within a timeout.

use std::time::Duration;

use jiff::Timestamp;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use unyo_crds::common::Severity;
use unyo_crds::monitoring::NotificationRoute;

/// What a notification says.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// The Incident.
    pub incident: String,
    /// Its namespace.
    pub namespace: String,
    /// The server.
    pub server: String,
    /// The MonitoringPolicy (or `agent`).
    pub policy: String,
    /// The check (or `heartbeat`).
    pub check: String,
    /// Severity.
    pub severity: Severity,
    /// True when the problem started (or recurred), false when it recovered.
    pub firing: bool,
    /// What was seen.
    pub message: String,
    /// When it occurred.
    pub occurred_at: Timestamp,
    /// When it recovered.
    pub recovered_at: Option<Timestamp>,
    /// The same for every attempt to deliver this notification, and different for every other:
    /// `<incident uid>/<route>/<event>`. Receivers drop what they have seen.
    pub idempotency_key: String,
}

impl Notice {
    fn subject(&self) -> String {
        format!(
            "[{}] {} {}/{} on {}",
            if self.firing {
                format!("{:?}", self.severity)
            } else {
                "Recovered".into()
            },
            self.incident,
            self.policy,
            self.check,
            self.server
        )
    }

    fn body(&self) -> String {
        let mut b = format!(
            "Incident {ns}/{incident}\nServer: {server}\nCheck: {policy}/{check}\nSeverity: {sev:?}\nOccurred: {occ}\n",
            ns = self.namespace,
            incident = self.incident,
            server = self.server,
            policy = self.policy,
            check = self.check,
            sev = self.severity,
            occ = self.occurred_at,
        );
        if let Some(r) = self.recovered_at {
            b.push_str(&format!("Recovered: {r}\n"));
        }
        b.push_str(&format!("\n{}\n", self.message));
        b
    }
}

/// A failed delivery.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The webhook could not be reached or refused the notification.
    #[error("webhook: {0}")]
    Webhook(String),
    /// The e-mail could not be built or sent.
    #[error("e-mail: {0}")]
    Email(String),
    /// The route has neither target.
    #[error("route {0} has no webhook or email")]
    NoTarget(String),
}

/// Sends `notice` along `route`; returns what the receiver said.
pub async fn deliver(route: &NotificationRoute, notice: &Notice) -> Result<String, Error> {
    if let Some(w) = &route.webhook {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("unyo-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Webhook(e.to_string()))?;
        let resp = client
            .post(&w.url)
            .header("Idempotency-Key", &notice.idempotency_key)
            .json(notice)
            .send()
            .await
            .map_err(|e| Error::Webhook(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::Webhook(format!("{} answered {status}", w.url)));
        }
        return Ok(format!("POST {}: {status}", w.url));
    }
    if let Some(e) = &route.email {
        let prefix = e
            .subject_prefix
            .clone()
            .map(|p| format!("{p} "))
            .unwrap_or_default();
        let mut builder = Message::builder()
            .from(
                e.from
                    .parse()
                    .map_err(|x| Error::Email(format!("from {}: {x}", e.from)))?,
            )
            .subject(format!("{prefix}{}", notice.subject()))
            .message_id(Some(format!(
                "<{}@unyo.dev>",
                notice.idempotency_key.replace(['/', '<', '>', '@'], ".")
            )))
            .header(ContentType::TEXT_PLAIN);
        for to in &e.to {
            builder = builder.to(to
                .parse()
                .map_err(|x| Error::Email(format!("to {to}: {x}")))?);
        }
        let message = builder
            .body(notice.body())
            .map_err(|x| Error::Email(x.to_string()))?;
        let (host, port) = match e.smtp.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| Error::Email(format!("smtp {}: bad port", e.smtp)))?,
            ),
            None => (e.smtp.clone(), 25),
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let resp = transport
            .send(message)
            .await
            .map_err(|x| Error::Email(x.to_string()))?;
        return Ok(format!(
            "SMTP {}: {} {}",
            e.smtp,
            resp.code(),
            resp.message().collect::<Vec<_>>().join(" ")
        ));
    }
    Err(Error::NoTarget(route.name.clone()))
}
