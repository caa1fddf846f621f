//! The MonitoringPolicy loop: each policy's status shows the servers its selector matches and
//! how many of its checks fire on them by severity, and Ready=False with the reason when the
//! selector or a setting cannot be used.

use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use unyo_crds::common::parse_duration;
use unyo_crds::monitoring::{FiringCounts, MonitoringPolicy, MonitoringPolicyStatus};
use unyo_crds::selection::selects;
use unyo_crds::server::{CheckState, Server};

use crate::conditions::condition;
use crate::context::Context;

/// At most this many server names are listed in status.
const MAX_LISTED: usize = 100;

/// What makes a policy unusable, naming the field.
pub fn problems(p: &MonitoringPolicy) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = parse_duration(&p.spec.interval) {
        out.push(format!("spec.interval: {e}"));
    }
    if let Some(w) = &p.spec.reopen_window
        && let Err(e) = parse_duration(w)
    {
        out.push(format!("spec.reopenWindow: {e}"));
    }
    for (i, c) in p.spec.checks.iter().enumerate() {
        if let Some(pattern) = &c.pattern
            && let Err(e) = regex::Regex::new(pattern)
        {
            out.push(format!("spec.checks[{i}].pattern: {e}"));
        }
        for (field, value) in [("for", &c.for_duration), ("timeout", &c.timeout)] {
            if let Some(v) = value
                && let Err(e) = parse_duration(v)
            {
                out.push(format!("spec.checks[{i}].{field}: {e}"));
            }
        }
    }
    out
}

/// The status of `p` over the `servers` of its namespace.
pub fn desired_status(
    p: &MonitoringPolicy,
    servers: &[Server],
    now: jiff::Timestamp,
) -> MonitoringPolicyStatus {
    let generation = p.meta().generation;
    let prev = p.status.clone().unwrap_or_default();
    let mut status = MonitoringPolicyStatus {
        observed_generation: generation,
        ..Default::default()
    };
    let policy = p.name_any();
    let mut matched = Vec::new();
    let mut selector_error = None;
    for s in servers {
        match selects(&p.spec.selector, s.labels()) {
            Ok(true) => matched.push(s),
            Ok(false) => {}
            Err(e) => {
                selector_error = Some(e.to_string());
                break;
            }
        }
    }
    let mut issues = problems(p);
    if let Some(e) = selector_error {
        issues.insert(0, e);
        matched.clear();
    }
    let mut firing = FiringCounts::default();
    for s in &matched {
        for c in s
            .status
            .iter()
            .flat_map(|st| st.checks.iter())
            .filter(|c| c.policy == policy)
        {
            match c.state {
                CheckState::Warning => firing.warning += 1,
                CheckState::Critical => firing.critical += 1,
                _ => {}
            }
        }
    }
    let mut names: Vec<String> = matched.iter().map(|s| s.name_any()).collect();
    names.sort();
    status.matched_servers = Some(names.len() as u32);
    status.servers = names.into_iter().take(MAX_LISTED).collect();
    status.firing = Some(firing);
    let ok = issues.is_empty();
    status.conditions = vec![condition(
        &prev.conditions,
        "Ready",
        ok,
        if ok {
            "Evaluated"
        } else if issues[0].starts_with("spec.selector") {
            "InvalidSelector"
        } else {
            "InvalidSettings"
        },
        if ok {
            format!("selects {} server(s)", status.matched_servers.unwrap_or(0))
        } else {
            issues.join("; ")
        },
        generation,
        now,
    )];
    status
}

/// Failure of one reconcile.
#[derive(thiserror::Error, Debug)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    source: kube::Error,
}

#[tracing::instrument(skip_all, fields(namespace = p.namespace().unwrap_or_default(), policy = p.name_any()))]
async fn reconcile(p: Arc<MonitoringPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("MonitoringPolicy");
    let ns = p.namespace().unwrap_or_default();
    let servers: Api<Server> = Api::namespaced(ctx.client.clone(), &ns);
    let servers = servers
        .list(&ListParams::default())
        .await
        .map_err(|source| Error {
            what: "listing Servers".into(),
            source,
        })?
        .items;
    let status = desired_status(&p, &servers, ctx.clock.now());
    if p.status.as_ref() != Some(&status) {
        ctx.apply_status::<MonitoringPolicy>(&ns, &p.name_any(), &status)
            .await
            .map_err(|source| Error {
                what: "writing the MonitoringPolicy status".into(),
                source,
            })?;
    }
    Ok(Action::await_change())
}

fn error_policy(_p: Arc<MonitoringPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("MonitoringPolicy");
    tracing::warn!(%error, "policy reconcile failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the MonitoringPolicy controller until shutdown.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    crate::context::run_namespace_summary(
        ctx,
        namespace,
        "MonitoringPolicy",
        reconcile,
        error_policy,
    )
    .await;
}
