//! Patch compliance: the `PatchCompliant` condition of each Server a PatchBaseline selects
//! (judged here, written by the Server loop), and the PatchBaseline loop, which judges every
//! candidate patch Apply or Hold — approval rules and lists, and for a production baseline the
//! staging evidence (installed on a server of the staging baseline for the soak period, no open
//! Incident against it) — and writes compliance per server. The agents install only what is
//! judged Apply, so a Hold here is what keeps a patch off production.
//!
//! Driven by watches of PatchBaselines, Servers (their scans and patch states), Incidents and
//! OperationCalendars, and by a requeue when an approval or a soak falls due.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use unyo_crds::common::parse_duration;
use unyo_crds::incident::IncidentState;
use unyo_crds::patch::{
    HostPatchState, Judgement, PatchBaseline, PatchBaselineStatus, PatchCandidate, PatchScan,
    PatchState, ServerCompliance,
};
use unyo_crds::patching::{
    Candidate, StagingHost, approval, check_window, compliance, staging_judgement, version_cmp,
};
use unyo_crds::selection::{patch_baselines_for, selects};
use unyo_crds::{Incident, OperationCalendar, Server};

use crate::conditions::condition;
use crate::context::Context;

fn operations(server: &Server) -> Option<&unyo_crds::server::OperationResults> {
    server.status.as_ref()?.operations.as_ref()
}

fn host_state<'a>(server: &'a Server, baseline: &str) -> Option<&'a HostPatchState> {
    operations(server)?
        .patches
        .iter()
        .find(|p| p.baseline == baseline)
}

fn scan(server: &Server) -> Option<&PatchScan> {
    operations(server)?.patch_scan.as_ref()
}

/// Judges `server` under `baseline`: (compliant, reason, message).
pub fn health(server: &Server, baseline: &PatchBaseline) -> (Option<bool>, &'static str, String) {
    let name = baseline.name_any();
    if let Some(s) = scan(server).filter(|s| !s.succeeded) {
        return (
            Some(false),
            "ScanFailed",
            format!(
                "baseline {name}: the last patch scan failed: {}",
                s.message.clone().unwrap_or_default()
            ),
        );
    }
    let Some(state) = host_state(server, &name) else {
        return (
            None,
            "NotScanned",
            format!("baseline {name}: no patch scan reported yet"),
        );
    };
    let (ok, reason, message) = compliance(state, baseline.spec.compliance_level);
    (Some(ok), reason, message)
}

/// The PatchCompliant judgement of a server under every baseline selecting it (the first
/// non-compliant one decides), or None when no baseline selects it.
pub fn server_health(
    server: &Server,
    baselines: &[PatchBaseline],
) -> Option<(Option<bool>, &'static str, String)> {
    let all: Vec<_> = patch_baselines_for(server, baselines)
        .into_iter()
        .map(|b| health(server, b))
        .collect();
    all.iter()
        .find(|h| h.0 == Some(false))
        .or(all.iter().find(|h| h.0.is_none()))
        .or(all.first())
        .cloned()
}

/// Failure of one reconcile.
#[derive(thiserror::Error, Debug)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    source: kube::Error,
}

/// Every patch the selected servers offer, have or lack under `baseline`, with the servers that
/// need it, plus the versions the baseline approves by name and version.
fn gather(
    baseline: &PatchBaseline,
    servers: &[&Server],
) -> BTreeMap<(String, String), (Candidate, Vec<String>)> {
    let name = baseline.name_any();
    let mut out: BTreeMap<(String, String), (Candidate, Vec<String>)> = BTreeMap::new();
    let mut add = |c: Candidate, needed_by: Option<&str>| {
        let entry = out
            .entry((c.package.clone(), c.version.clone()))
            .or_insert_with(|| (c.clone(), vec![]));
        let known = &mut entry.0;
        known.classification = known.classification.or(c.classification);
        known.severity = known.severity.or(c.severity);
        known.released_at = known.released_at.or(c.released_at);
        if let Some(s) = needed_by
            && !entry.1.iter().any(|n| n == s)
        {
            entry.1.push(s.to_string());
        }
    };
    for s in servers {
        let server = s.name_any();
        for u in scan(s).map(|s| s.available.as_slice()).unwrap_or_default() {
            add(
                Candidate {
                    package: u.package.clone(),
                    version: u.version.clone(),
                    classification: Some(u.classification),
                    severity: u.severity,
                    released_at: u.released_at.as_ref().map(|t| t.0),
                },
                Some(&server),
            );
        }
        for p in host_state(s, &name)
            .map(|h| h.patches.as_slice())
            .unwrap_or_default()
        {
            if p.state == PatchState::NotApplicable {
                continue;
            }
            let lacks = matches!(p.state, PatchState::Missing | PatchState::Failed);
            add(
                Candidate {
                    package: p.package.clone(),
                    version: p.version.clone(),
                    classification: p.classification,
                    severity: p.severity,
                    released_at: p.released_at.as_ref().map(|t| t.0),
                },
                lacks.then_some(server.as_str()),
            );
        }
    }
    for entry in &baseline.spec.approved_patches {
        if let Some((package, version)) = entry.split_once('=') {
            add(
                Candidate {
                    package: package.into(),
                    version: version.into(),
                    classification: None,
                    severity: None,
                    released_at: None,
                },
                None,
            );
        }
    }
    out
}

/// What a staging server has of `package` under the staging baseline (the agent's Installed
/// entry with its install time, else the version its facts report, without a time).
fn staging_host(
    server: &Server,
    staging: &str,
    package: &str,
    incidents: &[Incident],
) -> StagingHost {
    let name = server.name_any();
    let from_state = host_state(server, staging).and_then(|h| {
        h.patches
            .iter()
            .find(|p| {
                p.package == package
                    && matches!(
                        p.state,
                        PatchState::Installed | PatchState::InstalledPendingReboot
                    )
            })
            .map(|p| (p.version.clone(), p.installed_at.as_ref().map(|t| t.0)))
    });
    let from_facts = || {
        server
            .status
            .as_ref()?
            .observed
            .as_ref()?
            .packages
            .iter()
            .find(|p| p.name == package)
            .map(|p| (p.version.clone(), None))
    };
    StagingHost {
        installed: from_state.or_else(from_facts),
        open_incidents: incidents
            .iter()
            .filter(|i| {
                matches!(i.spec.state, IncidentState::New | IncidentState::InProgress)
                    && i.spec.servers.contains(&name)
            })
            .map(|i| i.name_any())
            .collect(),
        server: name,
    }
}

#[tracing::instrument(skip_all, fields(namespace = b.namespace().unwrap_or_default(), baseline = b.name_any()))]
async fn reconcile(b: Arc<PatchBaseline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("PatchBaseline");
    let ns = b.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let err = |what: &str| {
        let what = what.to_string();
        move |source| Error { what, source }
    };
    let lp = ListParams::default();
    let servers = Api::<Server>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err("listing Servers"))?
        .items;
    let calendars = Api::<OperationCalendar>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err("listing OperationCalendars"))?
        .items;
    let baselines = Api::<PatchBaseline>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err("listing PatchBaselines"))?
        .items;
    let incidents = Api::<Incident>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err("listing Incidents"))?
        .items;
    let prev = b.status.clone().unwrap_or_default();
    let generation = b.meta().generation;
    let name = b.name_any();

    // Settings: an error holds every patch.
    let mut problem: Option<(&'static str, String)> = None;
    let selected: Vec<&Server> = match servers
        .iter()
        .map(|s| selects(&b.spec.selector, s.labels()).map(|ok| ok.then_some(s)))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(list) => list.into_iter().flatten().collect(),
        Err(e) => {
            problem = Some(("InvalidSelector", e.to_string()));
            vec![]
        }
    };
    if let Some(w) = &b.spec.maintenance_window {
        let cal = calendars
            .iter()
            .find(|c| c.name_any() == w.schedule.calendar)
            .map(|c| &c.spec);
        if let Err(e) = check_window(w, cal)
            && problem.is_none()
        {
            let reason = if cal.is_none() {
                "CalendarNotFound"
            } else {
                "InvalidWindow"
            };
            problem = Some((reason, e));
        }
    }
    let mut staging: Option<(Vec<&Server>, String, SignedDuration)> = None;
    if let Some(p) = &b.spec.promotion {
        let soak = parse_duration(&p.soak)
            .map_err(|e| format!("spec.promotion.soak: {e}"))
            .and_then(|d| {
                SignedDuration::try_from(d).map_err(|e| format!("spec.promotion.soak: {e}"))
            });
        match (
            baselines
                .iter()
                .find(|x| x.name_any() == p.staging_baseline),
            soak,
        ) {
            _ if p.staging_baseline == name => {
                problem = problem.or(Some((
                    "InvalidStagingBaseline",
                    "spec.promotion.stagingBaseline: a baseline cannot be its own staging baseline"
                        .into(),
                )));
            }
            (None, _) => {
                problem = problem.or(Some((
                    "StagingBaselineNotFound",
                    format!(
                        "spec.promotion.stagingBaseline: PatchBaseline {} does not exist in {ns}; every patch is held",
                        p.staging_baseline
                    ),
                )));
            }
            (Some(_), Err(e)) => problem = problem.or(Some(("InvalidSettings", e))),
            (Some(sb), Ok(soak)) => {
                let hosts = servers
                    .iter()
                    .filter(|s| selects(&sb.spec.selector, s.labels()).unwrap_or(false))
                    .collect();
                staging = Some((hosts, sb.name_any(), soak));
            }
        }
    }

    // Candidates and their judgement.
    let mut wake: Option<Timestamp> = None;
    let mut candidates = Vec::new();
    for ((_, _), (c, mut needed_by)) in gather(&b, &selected) {
        needed_by.sort();
        let (mut ok, mut reason, due) = approval(&b.spec, &c, now);
        let mut evidence = vec![];
        if let Some(d) = due {
            wake = Some(wake.map_or(d, |w| w.min(d)));
        }
        if let Some((why, message)) = &problem {
            ok = false;
            reason = format!("held: {why}: {message}");
        } else if let (true, Some((hosts, staging_name, soak))) = (ok, &staging) {
            let hosts: Vec<StagingHost> = hosts
                .iter()
                .map(|s| staging_host(s, staging_name, &c.package, &incidents))
                .collect();
            let (ev, staged, why, soak_due) = staging_judgement(&c.version, &hosts, *soak, now);
            evidence = ev;
            if let Some(d) = soak_due {
                wake = Some(wake.map_or(d, |w| w.min(d)));
            }
            ok = staged;
            reason = format!("{reason}; staging {staging_name}: {why}");
        }
        candidates.push(PatchCandidate {
            package: c.package,
            version: c.version,
            classification: c.classification,
            severity: c.severity,
            released_at: c.released_at.map(Time),
            judgement: if ok {
                Judgement::Apply
            } else {
                Judgement::Hold
            },
            reason,
            needed_by,
            staging: evidence,
        });
    }
    candidates.sort_by(|a, b| {
        a.package
            .cmp(&b.package)
            .then(version_cmp(&a.version, &b.version))
    });

    let mut status = PatchBaselineStatus {
        observed_generation: generation,
        candidates,
        ..Default::default()
    };
    let (mut compliant, mut non_compliant) = (0, 0);
    for s in &selected {
        let state = host_state(s, &name);
        let (judged, reason, _) = health(s, &b);
        let ok = judged == Some(true);
        if ok {
            compliant += 1;
        } else {
            non_compliant += 1;
        }
        status.servers.push(ServerCompliance {
            server: s.name_any(),
            compliant: ok,
            reason: reason.to_string(),
            counts: state.map(|h| h.counts.clone()).unwrap_or_default(),
        });
    }
    status.compliant_servers = Some(compliant);
    status.non_compliant_servers = Some(non_compliant);
    let apply = status
        .candidates
        .iter()
        .filter(|c| c.judgement == Judgement::Apply)
        .count();
    let (ok, reason, message) = match problem {
        Some((reason, message)) => (false, reason, message),
        None => (
            true,
            "Evaluated",
            format!(
                "{compliant} of {} server(s) compliant; {apply} patch(es) to apply, {} held",
                selected.len(),
                status.candidates.len() - apply
            ),
        ),
    };
    status.conditions = vec![condition(
        &prev.conditions,
        "Ready",
        ok,
        reason,
        message,
        generation,
        now,
    )];
    if prev != status {
        let approved: Vec<&PatchCandidate> = status
            .candidates
            .iter()
            .filter(|c| {
                c.judgement == Judgement::Apply
                    && !prev.candidates.iter().any(|p| {
                        p.package == c.package
                            && p.version == c.version
                            && p.judgement == Judgement::Apply
                    })
            })
            .collect();
        ctx.apply_status::<PatchBaseline>(&ns, &name, &status)
            .await
            .map_err(err("writing the PatchBaseline status"))?;
        for c in approved {
            tracing::info!(package = %c.package, version = %c.version, reason = %c.reason, "patch approved");
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: EventType::Normal,
                        reason: "PatchApproved".into(),
                        note: Some(format!("{}={}: {}", c.package, c.version, c.reason)),
                        action: "Approve".into(),
                        secondary: None,
                    },
                    &b.object_ref(&()),
                )
                .await;
        }
    }
    Ok(ctx.requeue_at(wake, now))
}

fn error_policy(_b: Arc<PatchBaseline>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("PatchBaseline");
    tracing::warn!(%error, "patch baseline reconcile failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the PatchBaseline controller until shutdown.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let baselines: Api<PatchBaseline> = crate::context::api(&client, &namespace);
    let servers: Api<Server> = crate::context::api(&client, &namespace);
    let incidents: Api<Incident> = crate::context::api(&client, &namespace);
    let calendars: Api<OperationCalendar> = crate::context::api(&client, &namespace);
    let controller = Controller::new(baselines, watcher::Config::default());
    let store = controller.store();
    // Any change in a namespace may change every baseline there (staging evidence crosses
    // baselines), so each maps to all of them.
    let all_in = move |ns: Option<String>| {
        store
            .state()
            .iter()
            .filter(|b| b.namespace() == ns)
            .map(|b| ObjectRef::from_obj(b.as_ref()))
            .collect::<Vec<_>>()
    };
    let (a, b2, c) = (all_in.clone(), all_in.clone(), all_in.clone());
    controller
        .watches(servers, watcher::Config::default(), move |s: Server| {
            a(s.namespace())
        })
        .watches(incidents, watcher::Config::default(), move |i: Incident| {
            b2(i.namespace())
        })
        .watches(
            calendars,
            watcher::Config::default(),
            move |o: OperationCalendar| c(o.namespace()),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "patch baseline reconcile");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(name: &str, env: &str, operations: serde_json::Value) -> Server {
        serde_json::from_value(json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name, "namespace": "mie", "labels": {"env": env}},
            "spec": {"hostname": name, "role": "DB", "os": {"name": "Debian GNU/Linux", "version": "12"}},
            "status": {"operations": operations,
                       "observed": {"packages": [{"name": "alpha", "version": "1.0"}]}},
        }))
        .unwrap()
    }

    fn baseline(name: &str, env: &str, extra: serde_json::Value) -> PatchBaseline {
        let mut spec = json!({"selector": {"matchLabels": {"env": env}}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "PatchBaseline",
            "metadata": {"name": name, "namespace": "mie"}, "spec": spec,
        }))
        .unwrap()
    }

    fn update(package: &str, from: &str, to: &str) -> serde_json::Value {
        json!({"package": package, "installedVersion": from, "version": to,
               "classification": "Security", "releasedAt": "2026-11-10T00:00:00Z"})
    }

    #[test]
    fn candidates_come_from_scans_patch_states_and_explicit_versions() {
        let b = baseline(
            "prod",
            "production",
            json!({"approvedPatches": ["tzdata=2026a", "curl"]}),
        );
        let db01 = server(
            "db01",
            "production",
            json!({"patchScan": {"succeeded": true, "available": [update("alpha", "1.0", "1.1")]},
                   "patches": [{"baseline": "prod", "patches": [
                       {"package": "beta", "version": "2.0", "state": "Failed"},
                       {"package": "gamma", "version": "3.0", "state": "Installed"},
                       {"package": "zeta", "version": "1.0", "state": "NotApplicable"}]}]}),
        );
        let ap01 = server(
            "ap01",
            "production",
            json!({"patchScan": {"succeeded": true, "available": [update("alpha", "1.0", "1.1")]}}),
        );
        let all = gather(&b, &[&db01, &ap01]);
        let keys: Vec<(&str, &str)> = all.keys().map(|(p, v)| (p.as_str(), v.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                ("alpha", "1.1"),
                ("beta", "2.0"),
                ("gamma", "3.0"),
                ("tzdata", "2026a")
            ]
        );
        let (alpha, needed) = &all[&("alpha".to_string(), "1.1".to_string())];
        assert_eq!(
            alpha.classification,
            Some(unyo_crds::patch::PatchClassification::Security)
        );
        assert_eq!(needed, &vec!["db01".to_string(), "ap01".to_string()]);
        assert_eq!(
            all[&("beta".to_string(), "2.0".to_string())].1,
            vec!["db01".to_string()]
        );
        assert!(all[&("gamma".to_string(), "3.0".to_string())].1.is_empty());
    }

    #[test]
    fn staging_evidence_from_the_staging_state_or_facts_and_open_incidents() {
        let stg = server(
            "stg01",
            "staging",
            json!({"patches": [{"baseline": "stg", "patches": [
                {"package": "beta", "version": "2.0", "state": "InstalledPendingReboot",
                 "installedAt": "2026-11-20T00:00:00Z"}]}]}),
        );
        let incident = |name: &str, state: &str| -> Incident {
            serde_json::from_value(json!({
                "apiVersion": "unyo.dev/v1alpha1", "kind": "Incident",
                "metadata": {"name": name, "namespace": "mie"},
                "spec": {"type": "Inquiry", "title": "t", "severity": "Warning",
                         "servers": ["stg01"], "state": state}}))
            .unwrap()
        };
        let incidents = vec![
            incident("open-one", "InProgress"),
            incident("done", "Closed"),
        ];
        let h = staging_host(&stg, "stg", "beta", &incidents);
        assert_eq!(
            h.installed,
            Some((
                "2.0".to_string(),
                Some("2026-11-20T00:00:00Z".parse().unwrap())
            ))
        );
        assert_eq!(h.open_incidents, vec!["open-one".to_string()]);
        // A package only in the facts: its version, without an install time.
        let h = staging_host(&stg, "stg", "alpha", &[]);
        assert_eq!(h.installed, Some(("1.0".to_string(), None)));
        assert!(h.open_incidents.is_empty());
    }

    #[test]
    fn patch_compliant_judgement_per_server() {
        let b = vec![baseline(
            "prod",
            "production",
            json!({"complianceLevel": "Important"}),
        )];
        let never = server("db01", "production", json!({}));
        assert_eq!(server_health(&never, &b).unwrap().1, "NotScanned");
        let failed = server(
            "db01",
            "production",
            json!({"patchScan": {"succeeded": false, "message": "apt-get update could not read http://127.0.0.1:9"}}),
        );
        let (ok, reason, msg) = server_health(&failed, &b).unwrap();
        assert_eq!((ok, reason), (Some(false), "ScanFailed"));
        assert!(msg.contains("127.0.0.1:9"), "{msg}");
        let low_missing = server(
            "db01",
            "production",
            json!({"patchScan": {"succeeded": true},
                   "patches": [{"baseline": "prod", "patches": [
                       {"package": "a", "version": "2", "state": "Missing", "severity": "Low"}]}]}),
        );
        assert_eq!(server_health(&low_missing, &b).unwrap().1, "Compliant");
        let other = baseline("web", "web", json!({}));
        assert!(server_health(&low_missing, &[other]).is_none());
    }
}
