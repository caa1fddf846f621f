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

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
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

use crate::conditions::ready;
use crate::context::{Context, namespace_summary};
use crate::error::Error;
use crate::stores::{Kinds, in_namespace, namespace_trigger, shared_in};
use unyo_crds::names::reasons;

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
    incidents: &[Arc<Incident>],
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
            .installed()
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

/// What the PatchBaseline loop decides from.
pub struct Inputs<'a> {
    /// The baseline.
    pub baseline: &'a PatchBaseline,
    /// Servers of its namespace.
    pub servers: &'a [Arc<Server>],
    /// OperationCalendars of its namespace.
    pub calendars: &'a [OperationCalendar],
    /// PatchBaselines of its namespace (the staging baseline among them).
    pub baselines: &'a [PatchBaseline],
    /// Incidents of its namespace (open ones hold staging evidence).
    pub incidents: &'a [Arc<Incident>],
}

/// What the PatchBaseline loop does with one baseline.
#[derive(Debug, Default)]
pub struct Decision {
    /// The status to write, when it differs.
    pub status: Option<PatchBaselineStatus>,
    /// Candidates that just turned Apply (an Event each).
    pub approved: Vec<PatchCandidate>,
    /// When an approval or a soak falls due.
    pub wake: Option<Timestamp>,
}

/// The baseline's settings as judged: a problem holds every patch.
struct Settings<'a> {
    problem: Option<(&'static str, String)>,
    selected: Vec<&'a Server>,
    staging: Option<(Vec<&'a Server>, String, SignedDuration)>,
}

fn selected<'a>(b: &PatchBaseline, servers: &'a [Arc<Server>]) -> Result<Vec<&'a Server>, String> {
    let mut out = Vec::new();
    for s in servers {
        if selects(&b.spec.selector, s.labels()).map_err(|e| e.to_string())? {
            out.push(s.as_ref());
        }
    }
    Ok(out)
}

fn window_problem(i: &Inputs) -> Option<(&'static str, String)> {
    let w = i.baseline.spec.maintenance_window.as_ref()?;
    let cal = i
        .calendars
        .iter()
        .find(|c| c.name_any() == w.schedule.calendar)
        .map(|c| &c.spec);
    let e = check_window(w, cal).err()?;
    Some((
        if cal.is_none() {
            reasons::CALENDAR_NOT_FOUND
        } else {
            reasons::INVALID_WINDOW
        },
        e,
    ))
}

type Staging<'a> = (Vec<&'a Server>, String, SignedDuration);

fn staging<'a>(i: &Inputs<'a>) -> Result<Option<Staging<'a>>, (&'static str, String)> {
    let Some(p) = &i.baseline.spec.promotion else {
        return Ok(None);
    };
    if p.staging_baseline == i.baseline.name_any() {
        return Err((
            reasons::INVALID_STAGING_BASELINE,
            "spec.promotion.stagingBaseline: a baseline cannot be its own staging baseline".into(),
        ));
    }
    let Some(sb) = i
        .baselines
        .iter()
        .find(|x| x.name_any() == p.staging_baseline)
    else {
        return Err((
            "StagingBaselineNotFound",
            format!(
                "spec.promotion.stagingBaseline: PatchBaseline {} does not exist in {}; every patch is held",
                p.staging_baseline,
                i.baseline.namespace().unwrap_or_default()
            ),
        ));
    };
    let soak = parse_duration(&p.soak)
        .map_err(|e| e.to_string())
        .and_then(|d| SignedDuration::try_from(d).map_err(|e| e.to_string()))
        .map_err(|e| {
            (
                reasons::INVALID_SETTINGS,
                format!("spec.promotion.soak: {e}"),
            )
        })?;
    let hosts = i
        .servers
        .iter()
        .filter(|s| selects(&sb.spec.selector, s.labels()).unwrap_or(false))
        .map(|s| s.as_ref())
        .collect();
    Ok(Some((hosts, sb.name_any(), soak)))
}

fn settings<'a>(i: &Inputs<'a>) -> Settings<'a> {
    let (selected, mut problem) = match selected(i.baseline, i.servers) {
        Ok(list) => (list, None),
        Err(e) => (vec![], Some((reasons::INVALID_SELECTOR, e))),
    };
    problem = problem.or_else(|| window_problem(i));
    let staging = match staging(i) {
        Ok(s) => s,
        Err(p) => {
            problem = problem.or(Some(p));
            None
        }
    };
    Settings {
        problem,
        selected,
        staging,
    }
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Every candidate judged Apply or Hold, and when a judgement next changes by itself.
fn judge(i: &Inputs, s: &Settings, now: Timestamp) -> (Vec<PatchCandidate>, Option<Timestamp>) {
    let b = i.baseline;
    let mut wake = None;
    let mut candidates = Vec::new();
    for (c, mut needed_by) in gather(b, &s.selected).into_values() {
        needed_by.sort();
        let (mut ok, mut reason, due) = approval(&b.spec, &c, now);
        wake = earliest(wake, due);
        let mut evidence = vec![];
        if let Some((why, message)) = &s.problem {
            ok = false;
            reason = format!("held: {why}: {message}");
        } else if let (true, Some((hosts, staging_name, soak))) = (ok, &s.staging) {
            let hosts: Vec<StagingHost> = hosts
                .iter()
                .map(|h| staging_host(h, staging_name, &c.package, i.incidents))
                .collect();
            let (ev, staged, why, soak_due) = staging_judgement(&c.version, &hosts, *soak, now);
            evidence = ev;
            wake = earliest(wake, soak_due);
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
    (candidates, wake)
}

/// Compliance per selected server, and the counts.
fn compliance_of(b: &PatchBaseline, selected: &[&Server], status: &mut PatchBaselineStatus) {
    let name = b.name_any();
    let (mut compliant, mut non_compliant) = (0u32, 0u32);
    for s in selected {
        let (judged, reason, _) = health(s, b);
        let ok = judged == Some(true);
        if ok {
            compliant = compliant.saturating_add(1);
        } else {
            non_compliant = non_compliant.saturating_add(1);
        }
        status.servers.push(ServerCompliance {
            server: s.name_any(),
            compliant: ok,
            reason: reason.to_string(),
            counts: host_state(s, &name)
                .map(|h| h.counts.clone())
                .unwrap_or_default(),
        });
    }
    status.compliant_servers = Some(compliant);
    status.non_compliant_servers = Some(non_compliant);
}

/// The whole judgement of one baseline at `now`.
pub fn decide(i: &Inputs, now: Timestamp) -> Decision {
    let b = i.baseline;
    let prev = b.status.clone().unwrap_or_default();
    let generation = b.meta().generation;
    let s = settings(i);
    let (candidates, wake) = judge(i, &s, now);
    let mut status = PatchBaselineStatus {
        observed_generation: generation,
        candidates,
        ..Default::default()
    };
    compliance_of(b, &s.selected, &mut status);
    let apply = status
        .candidates
        .iter()
        .filter(|c| c.judgement == Judgement::Apply)
        .count();
    let (ok, reason, message) = match s.problem {
        Some((reason, message)) => (false, reason, message),
        None => (
            true,
            reasons::EVALUATED,
            format!(
                "{} of {} server(s) compliant; {apply} patch(es) to apply, {} held",
                status.compliant_servers.unwrap_or(0),
                s.selected.len(),
                status.candidates.len() - apply
            ),
        ),
    };
    status.conditions = ready(&prev.conditions, ok, reason, message, generation, now);
    unyo_crds::limits::Bounded::bound(&mut status);
    let approved = status
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
        .cloned()
        .collect();
    let changed = prev != status;
    Decision {
        status: changed.then_some(status),
        approved: if changed { approved } else { vec![] },
        wake,
    }
}

#[tracing::instrument(skip_all, fields(namespace = b.namespace().unwrap_or_default(), baseline = b.name_any()))]
async fn reconcile(b: Arc<PatchBaseline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = b.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let st = &ctx.stores;
    let servers = shared_in(&st.servers, &ns);
    let (calendars, baselines) = (
        in_namespace(&st.calendars, &ns),
        in_namespace(&st.baselines, &ns),
    );
    let incidents = shared_in(&st.incidents, &ns);
    let inputs = Inputs {
        baseline: &b,
        servers: &servers,
        calendars: &calendars,
        baselines: &baselines,
        incidents: &incidents,
    };
    let d = decide(&inputs, now);
    if let Some(status) = &d.status {
        ctx.apply_status(b.as_ref(), status).await?;
    }
    for c in d.approved {
        tracing::info!(package = %c.package, version = %c.version, reason = %c.reason, "patch approved");
        ctx.emit(
            Event {
                type_: EventType::Normal,
                reason: "PatchApproved".into(),
                note: Some(format!("{}={}: {}", c.package, c.version, c.reason)),
                action: "Approve".into(),
                secondary: None,
            },
            b.object_ref(&()),
        );
    }
    Ok(ctx.requeue_at(d.wake, now))
}

/// Runs the PatchBaseline loop until shutdown. Any change in a namespace may change every
/// baseline there (staging evidence crosses baselines), so each maps to all of them.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.baselines.clone();
    let controller = namespace_summary(kinds.baselines.subscribe(), store.clone(), kinds)
        .watches_shared_stream(kinds.incidents.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.baselines.subscribe(), namespace_trigger(&store));
    crate::context::run_loop(controller, ctx, "PatchBaseline", reconcile)
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
            Arc::new(incident("open-one", "InProgress")),
            Arc::new(incident("done", "Closed")),
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

    fn inputs<'a>(
        b: &'a PatchBaseline,
        servers: &'a [Arc<Server>],
        baselines: &'a [PatchBaseline],
    ) -> Inputs<'a> {
        Inputs {
            baseline: b,
            servers,
            calendars: &[],
            baselines,
            incidents: &[],
        }
    }

    #[test]
    fn decide_approves_after_the_rule_and_writes_once() {
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let b = baseline(
            "prod",
            "production",
            json!({"approvalRules": [{"classification": "Security", "approveAfterDays": 7}]}),
        );
        let db01 = Arc::new(server(
            "db01",
            "production",
            json!({"patchScan": {"succeeded": true, "available": [update("alpha", "1.0", "1.1")]}}),
        ));
        let servers = vec![db01];
        let d = decide(&inputs(&b, &servers, std::slice::from_ref(&b)), now);
        let st = d.status.clone().unwrap();
        assert_eq!(st.candidates.len(), 1);
        assert_eq!(
            st.candidates[0].judgement,
            Judgement::Apply,
            "{}",
            st.candidates[0].reason
        );
        assert_eq!(d.approved.len(), 1);
        assert_eq!(st.conditions[0].reason, "Evaluated");
        // Stored and decided again: no write, no second PatchApproved.
        let mut b2 = b.clone();
        b2.status = Some(st);
        let again = decide(&inputs(&b2, &servers, std::slice::from_ref(&b2)), now);
        assert!(again.status.is_none() && again.approved.is_empty());
        // Four days after release it is held until the seventh, and the loop wakes then.
        let early: Timestamp = "2026-11-14T00:00:00Z".parse().unwrap();
        let d = decide(&inputs(&b, &servers, std::slice::from_ref(&b)), early);
        let c = &d.status.unwrap().candidates[0];
        assert_eq!(c.judgement, Judgement::Hold);
        assert_eq!(d.wake, Some("2026-11-17T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn windows_updates_are_judged_by_kb_like_packages() {
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let b = baseline(
            "prod",
            "production",
            json!({"approvalRules": [{"classification": "Security", "severities": ["Critical", "Important"], "approveAfterDays": 3}],
                   "rejectedPatches": ["KB5044099"]}),
        );
        // As the Windows agent reports a WUA search: KB, WUA revision, no installed version.
        let kb = |id: &str, severity: &str, class: &str| {
            json!({"package": id, "installedVersion": "", "version": "1", "classification": class,
                   "severity": severity, "releasedAt": "2026-11-10T17:00:00Z",
                   "archive": "WSUS/Security Updates"})
        };
        let ad01 = Arc::new(server(
            "ad01",
            "production",
            json!({"patchScan": {"succeeded": true, "available": [
                kb("KB5044277", "Important", "Security"),
                kb("KB5044099", "Important", "Security"),
                kb("KB5043050", "Low", "Security"),
                kb("KB890830", "Unspecified", "Bugfix")]}}),
        ));
        let d = decide(&inputs(&b, &[ad01], std::slice::from_ref(&b)), now);
        let st = d.status.unwrap();
        let judged: Vec<(&str, &str, Judgement)> = st
            .candidates
            .iter()
            .map(|c| (c.package.as_str(), c.version.as_str(), c.judgement))
            .collect();
        assert_eq!(
            judged,
            [
                ("KB5043050", "1", Judgement::Hold),
                ("KB5044099", "1", Judgement::Hold),
                ("KB5044277", "1", Judgement::Apply),
                ("KB890830", "1", Judgement::Hold),
            ]
        );
        let cu = &st.candidates[2];
        assert_eq!(cu.needed_by, ["ad01"]);
        assert!(
            st.candidates[1].reason.contains("rejected"),
            "{}",
            st.candidates[1].reason
        );
    }

    #[test]
    fn decide_holds_everything_when_the_staging_baseline_is_missing() {
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let b = baseline(
            "prod",
            "production",
            json!({"approvedPatches": ["alpha"], "promotion": {"stagingBaseline": "stg", "soak": "7d"}}),
        );
        let servers = vec![Arc::new(server(
            "db01",
            "production",
            json!({"patchScan": {"succeeded": true, "available": [update("alpha", "1.0", "1.1")]}}),
        ))];
        let d = decide(&inputs(&b, &servers, std::slice::from_ref(&b)), now);
        let st = d.status.unwrap();
        assert_eq!(st.conditions[0].status, "False");
        assert_eq!(st.conditions[0].reason, "StagingBaselineNotFound");
        assert!(
            st.conditions[0]
                .message
                .contains("spec.promotion.stagingBaseline")
        );
        assert_eq!(st.candidates[0].judgement, Judgement::Hold);
        assert!(d.approved.is_empty());
    }
}
