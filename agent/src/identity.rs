//! The agent's identity: a short-lived ServiceAccount token that the agent renews itself.
//!
//! `unyo agent bootstrap` writes a kubeconfig with a token of the agent's own ServiceAccount
//! (24 h by default). The agent keeps the newest token it has in its state directory (`token`,
//! mode 0600), sends it on every request, and well before it expires (at 80 % of its lifetime)
//! asks the API server for a new one for the same ServiceAccount with the same lifetime — the
//! only TokenRequest its Role allows. Re-running bootstrap with `--rotate` replaces the
//! ServiceAccount, which revokes every token issued before.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use http::HeaderValue;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;

/// The claims of a ServiceAccount token the agent needs.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Claims {
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
}

impl Claims {
    /// The ServiceAccount's namespace and name.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let mut parts = self
            .sub
            .strip_prefix("system:serviceaccount:")?
            .splitn(2, ':');
        Some((parts.next()?, parts.next()?))
    }

    /// When to ask for the next token: at 80 % of this one's lifetime.
    pub fn renew_at(&self) -> i64 {
        let life = self.exp.saturating_sub(self.iat).max(0);
        self.iat.saturating_add(life.saturating_mul(4) / 5)
    }
}

/// The claims of a JWT (not verified: the API server verifies; the agent only schedules).
pub fn claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The token the agent sends, shared with the client's header layer.
#[derive(Clone)]
pub struct Identity {
    token: Arc<RwLock<String>>,
    file: PathBuf,
}

impl Identity {
    fn current(&self) -> String {
        self.token.read().map(|t| t.clone()).unwrap_or_default()
    }

    fn replace(&self, token: String) -> anyhow::Result<()> {
        crate::state::write_atomic(&self.file, token.as_bytes())
            .with_context(|| format!("writing {}", self.file.display()))?;
        if let Ok(mut t) = self.token.write() {
            *t = token;
        }
        Ok(())
    }
}

/// The newer of two tokens (by expiry); an unreadable one loses.
fn newer(a: Option<String>, b: Option<String>) -> Option<String> {
    let exp = |t: &Option<String>| t.as_deref().and_then(claims).map(|c| c.exp);
    match (exp(&a), exp(&b)) {
        (Some(x), Some(y)) if y > x => b,
        (Some(_), _) => a,
        (None, Some(_)) => b,
        (None, None) => a.or(b),
    }
}

/// A client from `kubeconfig` (or the environment) that sends the newest token known — the
/// kubeconfig's or the one renewed into `state_dir/token` — and the identity to renew.
pub async fn connect(
    kubeconfig: Option<&Path>,
    state_dir: &Path,
) -> anyhow::Result<(Client, Option<Identity>)> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("reading kubeconfig {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no Kubernetes configuration found")?,
    };
    let from_config = config
        .auth_info
        .token
        .as_ref()
        .map(|t| secrecy::ExposeSecret::expose_secret(t).to_string());
    if from_config.as_deref().and_then(claims).is_none() {
        // Not a ServiceAccount token (e.g. a client certificate): nothing to renew.
        return Ok((Client::try_from(config)?, None));
    }
    let file = state_dir.join("token");
    let saved = std::fs::read_to_string(&file)
        .ok()
        .map(|t| t.trim().to_string());
    let token = newer(saved, from_config).unwrap_or_default();
    config.auth_info.token = None;
    config.auth_info.token_file = None;
    let identity = Identity {
        token: Arc::new(RwLock::new(token.clone())),
        file,
    };
    identity.replace(token)?;
    let shared = identity.token.clone();
    let bearer = move |_: &http::Request<kube::client::Body>| {
        let t = shared.read().ok()?;
        HeaderValue::from_str(&format!("Bearer {}", *t))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
    };
    let layer = tower_http::set_header::SetRequestHeaderLayer::overriding(
        http::header::AUTHORIZATION,
        bearer,
    );
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build();
    Ok((client, Some(identity)))
}

async fn renew_once(client: &Client, identity: &Identity) -> anyhow::Result<Claims> {
    let Some(c) = claims(&identity.current()) else {
        bail!("the current token is not a ServiceAccount token");
    };
    let Some((ns, name)) = c.service_account() else {
        bail!("the token's subject {} is not a ServiceAccount", c.sub);
    };
    let lifetime = c.exp.saturating_sub(c.iat).max(600);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(lifetime),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {ns}/{name}"))?;
    let token = answer
        .status
        .map(|s| s.token)
        .context("the TokenRequest returned no token")?;
    let fresh = claims(&token).context("the new token has no claims")?;
    identity.replace(token)?;
    Ok(fresh)
}

/// Renews the token at 80 % of each token's lifetime, until shutdown; a failed renewal is
/// retried every 30 s (the old token stays in use until it expires).
pub async fn run_renewal(client: Client, identity: Identity) {
    loop {
        let Some(c) = claims(&identity.current()) else {
            tracing::error!("the token has no readable claims; it is not renewed");
            return std::future::pending().await;
        };
        let wait = c
            .renew_at()
            .saturating_sub(Timestamp::now().as_second())
            .max(0);
        tracing::debug!(expires = c.exp, renew_in_s = wait, "next token renewal");
        tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(0))).await;
        match renew_once(&client, &identity).await {
            Ok(fresh) => tracing::info!(expires = fresh.exp, "token renewed"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "token renewal failed; retrying in 30s");
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn jwt(iat: i64, exp: i64) -> String {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "RS256"})),
            enc(
                serde_json::json!({"iat": iat, "exp": exp, "sub": "system:serviceaccount:mie:unyo-agent-db01"})
            )
        )
    }

    #[test]
    fn renews_at_four_fifths_of_the_lifetime() {
        let c = claims(&jwt(1000, 1000 + 86_400)).unwrap();
        assert_eq!(c.renew_at(), 1000 + 69_120);
        assert_eq!(c.service_account(), Some(("mie", "unyo-agent-db01")));
        assert!(claims("not-a-jwt").is_none());
        let odd = claims(&jwt(i64::MAX, i64::MIN)).unwrap();
        assert_eq!(odd.renew_at(), i64::MAX);
    }

    #[test]
    fn the_newer_token_wins() {
        let (old, new) = (jwt(0, 100), jwt(50, 200));
        assert_eq!(
            newer(Some(old.clone()), Some(new.clone())),
            Some(new.clone())
        );
        assert_eq!(
            newer(Some(new.clone()), Some(old.clone())),
            Some(new.clone())
        );
        assert_eq!(newer(Some("garbage".into()), Some(old.clone())), Some(old));
    }
}
