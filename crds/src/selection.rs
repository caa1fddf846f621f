//! Which policies apply to which servers: label selectors over Servers in the same namespace,
//! evaluated the same way by the agent (to know its checks) and the controller (to report
//! matched servers).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use kube::{Resource, ResourceExt};

use crate::{BackupPlan, MonitoringPolicy, Server, VirusScanSchedule};

/// A selector that cannot be evaluated.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("spec.selector: {0}")]
pub struct SelectorError(pub String);

/// Whether `selector` selects an object with `labels`. An empty selector selects everything.
pub fn selects(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let parsed = Selector::try_from(selector.clone()).map_err(|e| SelectorError(e.to_string()))?;
    Ok(parsed.matches(labels))
}

/// The objects of `server`'s namespace whose selector selects it, in name order. Objects with
/// a selector that cannot be evaluated are left out (the controller reports them with
/// Ready=False).
fn selecting<'a, K: Resource>(
    server: &Server,
    objects: &'a [K],
    selector: impl Fn(&K) -> &LabelSelector,
) -> Vec<&'a K> {
    let mut out: Vec<&K> = objects
        .iter()
        .filter(|o| o.meta().namespace == server.meta().namespace)
        .filter(|o| selects(selector(o), server.labels()).unwrap_or(false))
        .collect();
    out.sort_by_key(|o| o.meta().name.clone());
    out
}

/// The MonitoringPolicies that select `server`, in name order.
pub fn monitoring_policies_for<'a>(
    server: &Server,
    policies: &'a [MonitoringPolicy],
) -> Vec<&'a MonitoringPolicy> {
    selecting(server, policies, |p| &p.spec.selector)
}

/// The VirusScanSchedules that select `server`, in name order.
pub fn virus_scan_schedules_for<'a>(
    server: &Server,
    schedules: &'a [VirusScanSchedule],
) -> Vec<&'a VirusScanSchedule> {
    selecting(server, schedules, |s| &s.spec.selector)
}

/// The BackupPlans that select `server`, in name order.
pub fn backup_plans_for<'a>(server: &Server, plans: &'a [BackupPlan]) -> Vec<&'a BackupPlan> {
    selecting(server, plans, |p| &p.spec.selector)
}

/// The PatchBaselines that select `server`, in name order.
pub fn patch_baselines_for<'a>(
    server: &Server,
    baselines: &'a [crate::PatchBaseline],
) -> Vec<&'a crate::PatchBaseline> {
    selecting(server, baselines, |b| &b.spec.selector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let db = labels(&[("unyo.dev/role", "db"), ("env", "production")]);
        assert!(selects(&LabelSelector::default(), &db).unwrap());
        let by_role = LabelSelector {
            match_labels: Some(labels(&[("unyo.dev/role", "db")])),
            ..Default::default()
        };
        assert!(selects(&by_role, &db).unwrap());
        assert!(!selects(&by_role, &labels(&[("unyo.dev/role", "web")])).unwrap());
        let not_staging = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "NotIn".into(),
                values: Some(vec!["staging".into()]),
            }]),
            ..Default::default()
        };
        assert!(selects(&not_staging, &db).unwrap());
        assert!(!selects(&not_staging, &labels(&[("env", "staging")])).unwrap());
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let err = selects(&bad, &db).unwrap_err().to_string();
        assert!(err.starts_with("spec.selector: "), "{err}");
    }
}
