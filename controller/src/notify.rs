//! Delivering notifications of Incidents: a JSON POST to a webhook (https unless the route
//! allows http; redirects never followed), or an e-mail through an SMTP relay (STARTTLS unless
//! the route says otherwise; authentication and a private CA from a Secret). Webhook URLs and
//! SMTP credentials are read from Secrets by the notifier ([`Target`]) and never written
//! anywhere; what a failure says is a short class of error, never a URL or a remote's text
//! beyond one bounded line. Retries and their backoff are the notifier's; this sends once,
//! within a timeout.

use std::time::Duration;

use jiff::Timestamp;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use unyo_crds::common::Severity;
use unyo_crds::monitoring::{EmailTarget, SmtpTls};

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
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum Error {
    /// The webhook could not be reached or refused the notification.
    #[error("webhook: {0}")]
    Webhook(String),
    /// The e-mail could not be built or sent.
    #[error("e-mail: {0}")]
    Email(String),
}

/// Where a notification goes, with what the route's Secrets hold.
#[derive(Clone)]
pub enum Target {
    /// A webhook: the URL (from its Secret), a name for it in messages, whether http is allowed.
    Webhook {
        /// The URL.
        url: String,
        /// `secret/key`, what messages say instead of the URL.
        shown: String,
        /// Whether a plain http URL is allowed.
        insecure_http: bool,
    },
    /// An e-mail relay.
    Email {
        /// The route's target.
        target: EmailTarget,
        /// User name and password, when the route names a credentials Secret with them.
        credentials: Option<(String, String)>,
        /// PEM of the CA to trust for the relay, when the Secret holds `ca.crt`.
        ca: Option<Vec<u8>>,
    },
}

/// The longest text of a remote's answer kept.
const MAX_REMOTE: usize = 160;

fn bounded(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(MAX_REMOTE).collect();
    if line.chars().count() > MAX_REMOTE {
        out.push('…');
    }
    out
}

/// Why a request failed, as a class: never the URL or resolver details.
fn webhook_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_builder() {
        "not a usable URL".into()
    } else {
        "the request failed".into()
    }
}

/// Whether `url` may be sent to: https, or http when the route allows it.
pub fn check_url(url: &str, insecure_http: bool) -> Result<(), String> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        Ok(())
    } else if lower.starts_with("http://") {
        if insecure_http {
            Ok(())
        } else {
            Err("the URL is http:// and the route does not set insecureHttp".into())
        }
    } else {
        Err("the URL must start with https:// (or http:// with insecureHttp)".into())
    }
}

async fn post(
    url: &str,
    shown: &str,
    insecure_http: bool,
    notice: &Notice,
) -> Result<String, Error> {
    check_url(url, insecure_http).map_err(|e| Error::Webhook(format!("{shown}: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!insecure_http)
        .user_agent(concat!("unyo-controller/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Webhook(webhook_failure(&e)))?;
    let resp = client
        .post(url)
        .header("Idempotency-Key", &notice.idempotency_key)
        .json(notice)
        .send()
        .await
        .map_err(|e| Error::Webhook(format!("{shown}: {}", webhook_failure(&e))))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(Error::Webhook(format!(
            "{shown} answered {status}; redirects are not followed"
        )));
    }
    if !status.is_success() {
        return Err(Error::Webhook(format!("{shown} answered {status}")));
    }
    Ok(format!("POST {shown}: {status}"))
}

fn message(e: &EmailTarget, notice: &Notice) -> Result<Message, Error> {
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
    builder
        .body(notice.body())
        .map_err(|x| Error::Email(x.to_string()))
}

/// Why sending failed, as a class, with the relay's answer (bounded) when it gave one.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        format!("the relay answered {code}: {}", bounded(&e.to_string()))
    } else if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_tls() {
        "TLS with the relay failed (certificate or STARTTLS)".into()
    } else {
        "could not talk to the relay".into()
    }
}

async fn mail(
    e: &EmailTarget,
    credentials: Option<&(String, String)>,
    ca: Option<&[u8]>,
    notice: &Notice,
) -> Result<String, Error> {
    let message = message(e, notice)?;
    let (host, port) = match e.smtp.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| Error::Email(format!("smtp {}: bad port", e.smtp)))?,
        ),
        None => (e.smtp.clone(), 25),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .timeout(Some(Duration::from_secs(15)));
    if e.tls != SmtpTls::None {
        let mut params = TlsParameters::builder(host);
        if let Some(pem) = ca {
            let cert = Certificate::from_pem(pem)
                .map_err(|x| Error::Email(format!("ca.crt: {}", bounded(&x.to_string()))))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|x| Error::Email(format!("TLS settings: {}", bounded(&x.to_string()))))?;
        builder = builder.tls(match e.tls {
            SmtpTls::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let resp = builder
        .build()
        .send(message)
        .await
        .map_err(|x| Error::Email(format!("{}: {}", e.smtp, smtp_failure(&x))))?;
    Ok(format!(
        "SMTP {}: {} {}",
        e.smtp,
        resp.code(),
        bounded(&resp.message().collect::<Vec<_>>().join(" "))
    ))
}

/// Sends `notice` to `target`; returns what the receiver said.
pub async fn deliver(target: &Target, notice: &Notice) -> Result<String, Error> {
    match target {
        Target::Webhook {
            url,
            shown,
            insecure_http,
        } => post(url, shown, *insecure_http, notice).await,
        Target::Email {
            target,
            credentials,
            ca,
        } => mail(target, credentials.as_ref(), ca.as_deref(), notice).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_unless_the_route_allows_http() {
        assert!(check_url("https://hooks.example/x", false).is_ok());
        assert!(check_url("http://hooks.example/x", false).is_err());
        assert!(check_url("http://hooks.example/x", true).is_ok());
        assert!(check_url("file:///etc/passwd", true).is_err());
        assert!(check_url("gopher://x", true).is_err());
    }

    #[test]
    fn remote_text_is_one_bounded_line() {
        let long = format!("{}\nsecond line", "x".repeat(500));
        let b = bounded(&long);
        assert!(b.chars().count() <= MAX_REMOTE + 1);
        assert!(!b.contains("second"));
    }
}
