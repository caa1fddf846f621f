//! The MonitoringPolicy loop: each policy's status shows the servers its selector matches and
//! how many of its checks fire on them by severity, and Ready=False with the reason when the
//! selector or a setting cannot be used.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use unyo_crds::common::parse_duration;
use unyo_crds::monitoring::{FiringCounts, MonitoringPolicy, MonitoringPolicyStatus};
use unyo_crds::selection::selects;
use unyo_crds::server::{CheckState, Server};

use crate::conditions::ready;
use crate::context::{Context, namespace_summary};
use crate::error::Error;
use crate::stores::{Kinds, shared_in};
use unyo_crds::names::reasons;

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
    servers: &[Arc<Server>],
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
    status.conditions = ready(
        &prev.conditions,
        ok,
        if ok {
            reasons::EVALUATED
        } else if issues[0].starts_with("spec.selector") {
            reasons::INVALID_SELECTOR
        } else {
            reasons::INVALID_SETTINGS
        },
        if ok {
            format!("selects {} server(s)", status.matched_servers.unwrap_or(0))
        } else {
            issues.join("; ")
        },
        generation,
        now,
    );
    unyo_crds::limits::Bounded::bound(&mut status);
    status
}

#[tracing::instrument(skip_all, fields(namespace = p.namespace().unwrap_or_default(), policy = p.name_any()))]
async fn reconcile(p: Arc<MonitoringPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_default();
    let servers = shared_in(&ctx.stores.servers, &ns);
    let status = desired_status(&p, &servers, ctx.clock.now());
    if p.status.as_ref() != Some(&status) {
        ctx.apply_status(p.as_ref(), &status).await?;
    }
    Ok(Action::await_change())
}

/// Runs the MonitoringPolicy loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let controller = namespace_summary(
        kinds.policies.subscribe(),
        ctx.stores.policies.clone(),
        kinds,
    );
    crate::context::run_loop(controller, ctx, "MonitoringPolicy", reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::samples::sample;

    #[test]
    fn status_counts_firing_checks_and_names_bad_settings() {
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let p: MonitoringPolicy = sample("monitoring.yaml");
        let mut db01: Server = sample("servers/db01.yaml");
        db01.status = serde_json::from_value(serde_json::json!({"checks": [
            {"policy": "baseline", "check": "cpu", "state": "Warning", "since": "2026-12-01T00:00:00Z"},
            {"policy": "baseline", "check": "root-disk", "state": "Critical", "since": "2026-12-01T00:00:00Z"},
            {"policy": "other", "check": "x", "state": "Critical", "since": "2026-12-01T00:00:00Z"}]}))
        .unwrap();
        let servers = vec![Arc::new(db01)];
        let st = desired_status(&p, &servers, now);
        assert_eq!(st.matched_servers, Some(1));
        let firing = st.firing.unwrap();
        assert_eq!((firing.warning, firing.critical), (1, 1));
        assert_eq!(st.conditions[0].status, "True");
        let mut bad = p.clone();
        bad.spec.interval = "soon".into();
        let c = &desired_status(&bad, &servers, now).conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidSettings")
        );
        assert!(c.message.starts_with("spec.interval"), "{}", c.message);
    }
}
