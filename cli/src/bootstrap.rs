//! `unyo agent bootstrap`: the least-privilege identity of one host's agent — a ServiceAccount,
//! a Role that allows exactly what the agent does, a RoleBinding, the Lease it renews — and a
//! kubeconfig with a token for it.
//!
//! Everything is applied server-side with the field manager `unyo-cli` under deterministic
//! names (`unyo-agent-<server>`), so running it again updates rather than duplicates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use unyo_crds::Server;
use unyo_crds::names::{agent_lease_name, label_value, labels};

const FIELD_MANAGER: &str = "unyo-cli";

/// What `bootstrap` needs.
pub struct Bootstrap<'a> {
    /// The Server (host) name.
    pub server: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Where to write the agent's kubeconfig.
    pub out: &'a Path,
    /// The admin kubeconfig used to create everything (default: the usual places).
    pub kubeconfig: Option<&'a Path>,
    /// The API server URL the host reaches, when it differs from the admin kubeconfig's.
    pub server_url: Option<&'a str>,
    /// Lifetime of the token, in seconds (the agent renews it at 80 % of it).
    pub token_seconds: i64,
    /// Replace the ServiceAccount first, which revokes every token issued to it before.
    pub rotate: bool,
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        non_resource_urls: None,
    }
}

/// The rules of a host's Role: its own Server and status, its own Lease, a new token for its
/// own ServiceAccount, the policies and calendars of the namespace, and Events. Nothing else —
/// no Secrets.
pub fn agent_rules(server: &str) -> Vec<PolicyRule> {
    let lease = agent_lease_name(server);
    vec![
        rule(&[""], &["serviceaccounts/token"], &["create"], &[&lease]),
        rule(
            &["unyo.dev"],
            &["servers"],
            &["get", "list", "watch"],
            &[server],
        ),
        rule(
            &["unyo.dev"],
            &["servers/status"],
            &["get", "patch"],
            &[server],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "update"],
            &[&lease],
        ),
        rule(
            &["unyo.dev"],
            &[
                "monitoringpolicies",
                "patchbaselines",
                "backupplans",
                "virusscanschedules",
                "operationcalendars",
            ],
            &["get", "list", "watch"],
            &[],
        ),
        rule(&[""], &["events"], &["create"], &[]),
    ]
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(
            [
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_UNYO.to_string(),
                ),
                (
                    labels::AGENT_OF.to_string(),
                    label_value(name.trim_start_matches("unyo-agent-")),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

/// The cluster URL and CA data (base64) of the admin kubeconfig's current context.
fn cluster_of(kubeconfig: Option<&Path>) -> Result<(String, Option<String>)> {
    let kc = match kubeconfig {
        Some(p) => Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            Kubeconfig::read().context("reading the kubeconfig (KUBECONFIG or ~/.kube/config)")?
        }
    };
    let context_name = kc
        .current_context
        .clone()
        .context("the kubeconfig has no current-context")?;
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .with_context(|| format!("the kubeconfig has no context {context_name:?}"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .with_context(|| format!("the kubeconfig has no cluster {cluster_name:?}"))?;
    let url = cluster.server.context("the cluster has no server URL")?;
    let ca = match (
        cluster.certificate_authority_data,
        cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(data),
        (None, Some(file)) => {
            let pem =
                std::fs::read(&file).with_context(|| format!("reading the CA file {file}"))?;
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        (None, None) => None,
    };
    Ok((url, ca))
}

/// Creates (or updates) the agent's identity and writes its kubeconfig; returns a summary.
pub async fn run(b: &Bootstrap<'_>) -> Result<String> {
    let client: Client = unyo_crds::client::connect(b.kubeconfig).await?;
    let (admin_url, ca) = cluster_of(b.kubeconfig)?;
    let url = b.server_url.map(str::to_string).unwrap_or(admin_url);
    let ns = b.namespace;
    let name = agent_lease_name(b.server);

    let servers: Api<Server> = Api::namespaced(client.clone(), ns);
    if servers.get_opt(b.server).await?.is_none() {
        bail!(
            "Server {ns}/{} does not exist: apply its ledger first",
            b.server
        );
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    if b.rotate {
        revoke(&client, ns, &name).await?;
    }

    let sa = ServiceAccount {
        metadata: meta(&name, ns),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .patch(&name, &pp, &Patch::Apply(&sa))
        .await
        .context("applying the ServiceAccount")?;
    let role = Role {
        metadata: meta(&name, ns),
        rules: Some(agent_rules(b.server)),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .patch(&name, &pp, &Patch::Apply(&role))
        .await
        .context("applying the Role")?;
    let binding = RoleBinding {
        metadata: meta(&name, ns),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: Some(ns.to_string()),
            api_group: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(&name, &pp, &Patch::Apply(&binding))
        .await
        .context("applying the RoleBinding")?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    if leases.get_opt(&name).await?.is_none() {
        let lease = Lease {
            metadata: meta(&name, ns),
            spec: None,
        };
        leases
            .create(&PostParams::default(), &lease)
            .await
            .context("creating the Lease")?;
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(b.token_seconds),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client, ns)
        .create_token_request(&name, &PostParams::default(), &request)
        .await
        .context("requesting a token for the ServiceAccount")?;
    let status = token
        .status
        .context("the token request returned no token")?;

    let mut cluster = serde_json::json!({ "server": url });
    if let Some(ca) = ca {
        cluster["certificate-authority-data"] = ca.into();
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "unyo", "cluster": cluster }],
        "users": [{ "name": name, "user": { "token": status.token } }],
        "contexts": [{ "name": name, "context": { "cluster": "unyo", "user": name, "namespace": ns } }],
        "current-context": name,
    });
    write_private(b.out, &serde_saphyr::to_string(&config)?)?;
    Ok(format!(
        "ServiceAccount, Role, RoleBinding and Lease {ns}/{name} applied\n\
         kubeconfig for {ns}/{server} written to {out} (token valid until {until}; the agent renews it)\n\
         {rotated}run on the host: unyo-agent --server {server} -n {ns} --kubeconfig {out}",
        rotated = if b.rotate {
            "every earlier token of this agent is revoked\n"
        } else {
            ""
        },
        server = b.server,
        out = b.out.display(),
        until = status.expiration_timestamp.0,
    ))
}

/// Deletes the ServiceAccount `name` and waits until it is gone: every token issued to it is
/// bound to its uid, so none is accepted any more once a new one takes its place.
async fn revoke(client: &Client, ns: &str, name: &str) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let Some(old) = sas.get_opt(name).await? else {
        return Ok(());
    };
    let uid = old.metadata.uid.clone();
    sas.delete(name, &Default::default())
        .await
        .context("deleting the ServiceAccount to revoke its tokens")?;
    for _ in 0..100 {
        match sas.get_opt(name).await? {
            Some(sa) if sa.metadata.uid == uid => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => return Ok(()),
        }
    }
    bail!("ServiceAccount {ns}/{name} was not deleted within 10 s")
}

/// Writes `text` to `path` readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The default output path: `unyo-agent-<server>.kubeconfig` in the current directory.
pub fn default_out(server: &str) -> PathBuf {
    PathBuf::from(format!("unyo-agent-{server}.kubeconfig"))
}
