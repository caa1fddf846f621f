//! `unyo backup restore`: restores a generation of a BackupPlan on a host through its agent, or
//! prints the exact restic commands with `--dry-run`.
//!
//! The request is the Server annotation `unyo.dev/restore=<plan>:<generation>:<id>:<target>`;
//! the agent restores the latest snapshot of the generation-th newest generation (1 = newest)
//! into the target directory on the host and answers with a `RestoreSucceeded` or
//! `RestoreFailed` Event naming the request id.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use unyo_crds::{BackupPlan, Server};

/// The exact restic commands the agent runs for a restore of `generation` into `target`.
pub fn dry_run(plan_name: &str, plan: &BackupPlan, generation: usize, target: &str) -> Vec<String> {
    let r = &plan.spec.repositories.primary;
    let base = format!(
        "restic -r {} --password-file {}",
        r.location, r.password_file
    );
    if generation <= 1 {
        // The latest snapshot of the plan belongs to its newest generation.
        vec![format!(
            "{base} restore latest --tag unyo-plan={plan_name} --target {target}"
        )]
    } else {
        vec![
            format!("{base} snapshots --tag unyo-plan={plan_name},unyo-type=Full"),
            format!(
                "# take the unyo-generation tag G of the {generation}. newest full listed above, then:"
            ),
            format!(
                "{base} restore latest --tag unyo-plan={plan_name},unyo-generation=G --target {target}"
            ),
        ]
    }
}

/// Asks the agent of `server` to restore and waits for its answer; returns the agent's message.
pub async fn request(
    client: Client,
    namespace: &str,
    server: &str,
    plan: &str,
    generation: usize,
    target: &str,
    timeout: Duration,
) -> Result<String> {
    if !target.starts_with('/') {
        bail!("--target must be an absolute path on the host, got {target:?}");
    }
    let plans: Api<BackupPlan> = Api::namespaced(client.clone(), namespace);
    plans
        .get_opt(plan)
        .await?
        .with_context(|| format!("BackupPlan {namespace}/{plan} does not exist"))?;
    let id = format!("r{}", jiff::Timestamp::now().as_millisecond());
    let value = format!("{plan}:{generation}:{id}:{target}");
    let servers: Api<Server> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {
        (unyo_crds::names::annotations::RESTORE): value
    }}});
    servers
        .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Server {namespace}/{server}"))?;
    let events: Api<Event> = Api::namespaced(client, namespace);
    // The agent's answer is awaited on a watch of the Server's Events.
    let config = watcher::Config::default().fields(&format!("involvedObject.name={server}"));
    let answer = watcher(events, config).applied_objects().try_filter(|e| {
        futures::future::ready(
            e.message
                .as_deref()
                .is_some_and(|m| m.starts_with(&format!("request {id}:"))),
        )
    });
    futures::pin_mut!(answer);
    match tokio::time::timeout(timeout, answer.try_next()).await {
        Ok(Ok(Some(e))) => {
            let message = e.message.clone().unwrap_or_default();
            match e.reason.as_deref() {
                Some("RestoreSucceeded") => Ok(message),
                _ => bail!("{message}"),
            }
        }
        Ok(Ok(None)) => bail!("the watch of Events ended without an answer (request {id})"),
        Ok(Err(e)) => bail!("watching Events: {e}"),
        Err(_) => bail!("no answer from the agent of {server} within {timeout:?} (request {id})"),
    }
}
