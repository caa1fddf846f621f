//! A Kubernetes client for the unyo binaries, from an explicit kubeconfig or the usual places
//! (`KUBECONFIG`, `~/.kube/config`, in-cluster service account).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Errors of building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// No usable configuration was found.
    #[error("no Kubernetes configuration found (set --kubeconfig or KUBECONFIG): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

/// Builds a client from `kubeconfig` when given, else from the environment.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    Ok(Client::try_from(config(kubeconfig).await?)?)
}

/// The configuration from `kubeconfig` when given, else from the environment.
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, ClientError> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => Config::infer().await?,
    })
}

/// A kind the API server does not serve, or that this client may not list.
#[derive(Debug, thiserror::Error)]
#[error(
    "listing {kind}: {source} (are the unyo.dev CRDs installed, and may this identity list them?)"
)]
pub struct NotServed {
    /// The kind.
    pub kind: String,
    /// Cause.
    pub source: kube::Error,
}

async fn probe<K>(client: &Client, namespace: Option<&str>) -> Result<(), NotServed>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let api: kube::Api<K> = match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    api.list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|source| NotServed {
            kind: K::kind(&K::DynamicType::default()).to_string(),
            source,
        })
}

/// Lists each of the eight kinds once, in `namespace` or across all namespaces, so that a missing
/// CRD or a missing permission is reported at start-up rather than on first use.
pub async fn check_served(client: &Client, namespace: Option<&str>) -> Result<(), NotServed> {
    use crate::*;
    probe::<Server>(client, namespace).await?;
    probe::<MonitoringPolicy>(client, namespace).await?;
    probe::<PatchBaseline>(client, namespace).await?;
    probe::<BackupPlan>(client, namespace).await?;
    probe::<VirusScanSchedule>(client, namespace).await?;
    probe::<OperationCalendar>(client, namespace).await?;
    probe::<ChangeRecord>(client, namespace).await?;
    probe::<Incident>(client, namespace).await?;
    Ok(())
}
