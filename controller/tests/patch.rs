//! End to end, staging first: the controller binary (with its shipped RBAC), one unyo-agent per
//! host (each with the kubeconfig of `unyo agent bootstrap` and a host root of its own), a real
//! kube-apiserver, and real apt and dpkg working on local file repositories built by the test.
//! The machine running the test is never upgraded: apt and dpkg only touch the host roots.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use unyo_crds::Server;
use unyo_crds::patch::{Judgement, PatchBaseline, PatchCandidate, PatchState};
use unyo_tests::aptlab::{self, Archive, Deb};
use unyo_tests::{ControlPlane, Running, control_plane, wait_for as wait, workspace_binary};

mod common;

fn server_in(ns: &str, name: &str, env: &str) -> String {
    common::server_yaml(ns, name).replace(
        "unyo.dev/environment: production",
        &format!("unyo.dev/environment: {env}"),
    )
}

/// Starts the agent of `server` on the host beneath `root`.
fn agent(cp: &ControlPlane, ns: &str, server: &str, work: &Path, root: &Path) -> Running {
    let unyo = workspace_binary("unyo-cli", "unyo").unwrap();
    let kc = work.join(format!("{server}.kubeconfig"));
    let out = Command::new(unyo)
        .args(["agent", "bootstrap", server, "-n", ns, "--out"])
        .arg(&kc)
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The simulated hosts allow patch installs (staging installs in its window), no reboot.
    let policy = work.join(format!("{server}-agent.yaml"));
    std::fs::write(&policy, "patches: {install: true, reboot: false}\n").unwrap();
    let mut cmd = Command::new(workspace_binary("unyo-agent", "unyo-agent").unwrap());
    cmd.args(["--server", server, "-n", ns, "--kubeconfig"])
        .arg(&kc)
        .arg("--host-policy")
        .arg(&policy)
        .arg("--root")
        .arg(root)
        .arg("--state-dir")
        .arg(work.join(format!("{server}-state")))
        .args(["--heartbeat", "2s", "--facts-interval", "5s"])
        .env("RUST_LOG", "info,unyo_agent=debug");
    Running::spawn(cmd, &format!("agent-{server}-{ns}")).unwrap()
}

fn candidate<'a>(b: &'a PatchBaseline, package: &str) -> Option<&'a PatchCandidate> {
    b.status
        .as_ref()?
        .candidates
        .iter()
        .find(|c| c.package == package)
}

fn condition(s: &Server, type_: &str) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn patch_state(s: &Server, baseline: &str, package: &str) -> Option<(PatchState, String)> {
    s.status
        .as_ref()?
        .operations
        .as_ref()?
        .patches
        .iter()
        .find(|p| p.baseline == baseline)?
        .patches
        .iter()
        .find(|p| p.package == package)
        .map(|p| (p.state, p.version.clone()))
}

fn ready(b: &PatchBaseline) -> Option<(String, String, String)> {
    b.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A window that is closed now: an hour starting 12 hours from now (Tokyo time).
fn closed_window() -> String {
    let later = Timestamp::now().in_tz("Asia/Tokyo").unwrap() + jiff::Span::new().hours(12);
    format!(
        "{{schedule: {{calendar: ops, at: \"{}\"}}, duration: 1h}}",
        later.strftime("%H:%M")
    )
}

const OPEN_WINDOW: &str = "{schedule: {calendar: ops, cron: \"* * * * *\"}, duration: 1h}";

fn lab(work: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let deb = Deb::new;
    let shared = Some(("/usr/share/common/shared.txt", "beta's"));
    let archives = vec![
        Archive {
            dir: "security",
            origin: "Debian",
            label: "Debian-Security",
            suite: "bookworm-security",
            date: aptlab::days_ago(10),
            debs: vec![
                deb("alpha", "1.0"),
                Deb {
                    urgency: Some("high"),
                    ..deb("alpha", "1.1")
                },
            ],
        },
        Archive {
            dir: "updates",
            origin: "Debian",
            label: "Debian",
            suite: "bookworm-updates",
            date: aptlab::days_ago(1),
            debs: vec![
                Deb {
                    file: shared,
                    ..deb("beta", "1.0")
                },
                Deb {
                    file: shared,
                    ..deb("beta", "2.0")
                },
                deb("delta", "1.0"),
                deb("delta", "1.1"),
                deb("gamma", "1.0"),
                // Ships a file beta owns: its install fails in dpkg.
                Deb {
                    file: Some(("/usr/share/common/shared.txt", "gamma's")),
                    ..deb("gamma", "2.0")
                },
            ],
        },
    ];
    let dirs = aptlab::build_archives(work, &archives).unwrap();
    let old = [
        ("security", "alpha"),
        ("updates", "beta"),
        ("updates", "delta"),
        ("updates", "gamma"),
    ]
    .iter()
    .map(|(d, p)| aptlab::deb_file(work, d, p, "1.0"))
    .collect();
    (dirs, old)
}

#[tokio::test]
async fn staging_first_promotion_installs_in_the_window_and_reports() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("patch").await.unwrap();
    let client = cp.client().await.unwrap();
    let machine_before = std::fs::read("/var/lib/dpkg/status").unwrap_or_default();
    let work = std::env::temp_dir().join(format!("unyo-patch-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (dirs, old) = lab(&work);
    let sources: Vec<String> = dirs.iter().map(|d| aptlab::source_line(d)).collect();
    let roots: Vec<PathBuf> = ["stg01", "prd01", "prd02"]
        .iter()
        .map(|h| work.join(format!("{h}-root")))
        .collect();
    aptlab::host_root(&roots[0], &sources, &old).unwrap();
    aptlab::host_root(&roots[1], &sources, &old).unwrap();
    // prd02 also lists a source that cannot be reached.
    let mut broken = sources.clone();
    broken.push("deb [trusted=yes] http://127.0.0.1:9/debian bookworm main".into());
    aptlab::host_root(&roots[2], &broken, &old).unwrap();

    let mut objects = String::new();
    for (name, env) in [
        ("stg01", "staging"),
        ("prd01", "production"),
        ("prd02", "production"),
    ] {
        objects.push_str(&server_in(&ns, name, env));
        objects.push_str("\n---\n");
    }
    objects.push_str(&format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: OperationCalendar
metadata: {{name: ops, namespace: {ns}}}
spec:
  timeZone: Asia/Tokyo
  businessHours: {{start: "08:00", end: "19:00"}}
---
apiVersion: unyo.dev/v1alpha1
kind: Incident
metadata: {{name: stg01-app-down, namespace: {ns}}}
spec:
  type: Inquiry
  title: application on stg01 does not answer
  severity: Critical
  servers: [stg01]
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: staging, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/environment: staging}}}}
  operation: Install
  approvalRules:
    - {{classification: Security, approveAfterDays: 7}}
    - {{classification: Bugfix, approveAfterDays: 7}}
  approvedPatches: ["gamma=2.0"]
  rejectedPatches: ["beta=2.0"]
  maintenanceWindow: {OPEN_WINDOW}
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: production, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/environment: production}}}}
  operation: Install
  approvalRules:
    - {{classification: Security, approveAfterDays: 0}}
  promotion: {{stagingBaseline: staging, soak: 20s}}
  maintenanceWindow: {closed}
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: orphan, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/environment: nowhere}}}}
  approvalRules: [{{classification: Any}}]
  promotion: {{stagingBaseline: no-such-baseline}}
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: no-calendar, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/environment: nowhere}}}}
  operation: Install
  maintenanceWindow: {{schedule: {{calendar: missing, at: "02:00"}}, duration: 2h}}
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: too-long, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/environment: nowhere}}}}
  operation: Install
  maintenanceWindow: {{schedule: {{calendar: ops, at: "02:00"}}, duration: 8d}}
"#,
        closed = closed_window()
    ));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&objects))
        .unwrap();

    let ctl = common::controller(cp, &ns, "controller-patch", &[]).await;
    let stg = agent(cp, &ns, "stg01", &work, &roots[0]);
    let prd = agent(cp, &ns, "prd01", &work, &roots[1]);
    let prd2 = agent(cp, &ns, "prd02", &work, &roots[2]);
    let logs = [&ctl, &stg, &prd, &prd2];
    let baselines: Api<PatchBaseline> = Api::namespaced(client.clone(), &ns);
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);

    // Bad input: clear conditions, everything held.
    let b = wait(
        &baselines,
        "orphan",
        "StagingBaselineNotFound",
        60,
        &logs,
        |b| ready(b).is_some_and(|r| r.1 == "StagingBaselineNotFound"),
    )
    .await;
    let r = ready(&b).unwrap();
    assert_eq!(r.0, "False");
    assert!(
        r.2.contains(
            "spec.promotion.stagingBaseline: PatchBaseline no-such-baseline does not exist"
        ),
        "{r:?}"
    );
    let b = wait(
        &baselines,
        "no-calendar",
        "CalendarNotFound",
        30,
        &logs,
        |b| ready(b).is_some(),
    )
    .await;
    let r = ready(&b).unwrap();
    assert_eq!(
        (r.0.as_str(), r.1.as_str()),
        ("False", "CalendarNotFound"),
        "{r:?}"
    );
    assert!(
        r.2.contains(
            "spec.maintenanceWindow.schedule.calendar: OperationCalendar missing does not exist"
        ),
        "{r:?}"
    );
    let b = wait(&baselines, "too-long", "InvalidWindow", 30, &logs, |b| {
        ready(b).is_some()
    })
    .await;
    let r = ready(&b).unwrap();
    assert_eq!(
        (r.0.as_str(), r.1.as_str()),
        ("False", "InvalidWindow"),
        "{r:?}"
    );
    assert!(
        r.2.contains("spec.maintenanceWindow.duration: 8d must be more than 0 and at most 7d"),
        "{r:?}"
    );

    // Staging: the security patch released 10 days ago passes its 7-day rule; the bugfix
    // released yesterday waits; the rejected one is held; the explicitly approved one fails.
    let b = wait(
        &baselines,
        "staging",
        "staging judgements",
        90,
        &logs,
        |b| candidate(b, "alpha").is_some() && candidate(b, "delta").is_some(),
    )
    .await;
    let alpha = candidate(&b, "alpha").unwrap();
    assert_eq!(
        (alpha.version.as_str(), alpha.judgement),
        ("1.1", Judgement::Apply),
        "{alpha:?}"
    );
    assert!(
        alpha
            .reason
            .contains("spec.approvalRules[0] (Security, after 7d)"),
        "{alpha:?}"
    );
    assert_eq!(format!("{:?}", alpha.severity), "Some(Important)");
    let delta = candidate(&b, "delta").unwrap();
    assert_eq!(delta.judgement, Judgement::Hold);
    assert!(delta.reason.contains("approved on"), "{delta:?}");
    let beta = candidate(&b, "beta").unwrap();
    assert_eq!(beta.judgement, Judgement::Hold);
    assert!(beta.reason.contains("rejected"), "{beta:?}");

    let s = wait(&servers, "stg01", "staging installs", 120, &logs, |s| {
        patch_state(s, "staging", "alpha").is_some_and(|p| p.0 == PatchState::Installed)
            && patch_state(s, "staging", "gamma").is_some_and(|p| p.0 == PatchState::Failed)
    })
    .await;
    assert_eq!(
        aptlab::installed_version(&roots[0], "alpha").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        aptlab::installed_version(&roots[0], "gamma").as_deref(),
        Some("1.0")
    );
    assert_eq!(
        aptlab::installed_version(&roots[0], "beta").as_deref(),
        Some("1.0"),
        "rejected"
    );
    assert_eq!(
        aptlab::installed_version(&roots[0], "delta").as_deref(),
        Some("1.0"),
        "not approved yet"
    );
    assert_eq!(
        patch_state(&s, "staging", "beta").unwrap().0,
        PatchState::Rejected
    );
    let s = wait(&servers, "stg01", "PatchCompliant False", 30, &logs, |s| {
        condition(s, "PatchCompliant").is_some_and(|c| c.1 == "InstallFailed")
    })
    .await;
    let c = condition(&s, "PatchCompliant").unwrap();
    assert!(c.2.contains("gamma=2.0"), "{c:?}");

    // Production waits: the soak runs, and stg01 has an open Incident.
    let b = wait(
        &baselines,
        "production",
        "held on staging evidence",
        90,
        &logs,
        |b| {
            candidate(b, "alpha").is_some_and(|c| {
                c.reason.contains("open incident(s) stg01-app-down") && c.needed_by.len() == 2
            })
        },
    )
    .await;
    let alpha = candidate(&b, "alpha").unwrap();
    assert_eq!(alpha.judgement, Judgement::Hold);
    assert_eq!(
        alpha.needed_by,
        vec!["prd01".to_string(), "prd02".to_string()]
    );
    let ev = &alpha.staging[0];
    assert_eq!(
        (ev.server.as_str(), ev.installed_version.as_deref()),
        ("stg01", Some("1.1"))
    );
    assert!(!ev.sufficient && ev.installed_at.is_some());
    assert_eq!(
        aptlab::installed_version(&roots[1], "alpha").as_deref(),
        Some("1.0")
    );

    // The incident is closed: after the soak, production approves.
    let incidents: Api<unyo_crds::Incident> = Api::namespaced(client.clone(), &ns);
    incidents
        .patch(
            "stg01-app-down",
            &PatchParams::apply("people").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "unyo.dev/v1alpha1", "kind": "Incident",
                "spec": {"type": "Inquiry", "title": "application on stg01 does not answer",
                         "severity": "Critical", "servers": ["stg01"], "state": "Closed"}
            })),
        )
        .await
        .unwrap();
    let b = wait(&baselines, "production", "alpha approved", 90, &logs, |b| {
        candidate(b, "alpha").is_some_and(|c| c.judgement == Judgement::Apply)
    })
    .await;
    let alpha = candidate(&b, "alpha").unwrap();
    assert!(alpha.reason.contains("installed on stg01 for"), "{alpha:?}");
    assert!(alpha.staging[0].sufficient);
    // gamma failed on staging and is no security patch: held in production.
    assert!(candidate(&b, "gamma").is_none_or(|c| c.judgement == Judgement::Hold));

    // Approved, but the window is closed: Missing, nothing installed.
    let s = wait(
        &servers,
        "prd01",
        "Missing outside the window",
        60,
        &logs,
        |s| patch_state(s, "production", "alpha").is_some_and(|p| p.0 == PatchState::Missing),
    )
    .await;
    let message = s
        .status
        .as_ref()
        .unwrap()
        .operations
        .as_ref()
        .unwrap()
        .patches[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("waits for the maintenance window"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        aptlab::installed_version(&roots[1], "alpha").as_deref(),
        Some("1.0")
    );
    let s = wait(&servers, "prd01", "MissingPatches", 30, &logs, |s| {
        condition(s, "PatchCompliant").is_some_and(|c| c.1 == "MissingPatches")
    })
    .await;
    assert!(
        condition(&s, "PatchCompliant")
            .unwrap()
            .2
            .contains("alpha=1.1")
    );

    // The report, from the real CLI.
    let unyo = workspace_binary("unyo-cli", "unyo").unwrap();
    let md = Command::new(&unyo)
        .args(["patch", "report", "-n", &ns, "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .output()
        .unwrap();
    assert!(md.status.success(), "{md:?}");
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("## PatchBaseline production (Install)"), "{md}");
    assert!(
        md.contains("| **Apply** | alpha | 1.1 | Security | Important |"),
        "{md}"
    );
    assert!(md.contains("| prd01, prd02 | stg01: 1.1 since"), "{md}");
    assert!(md.contains("(sufficient: yes)"), "{md}");
    assert!(md.contains("| Hold | delta | 1.1 | Bugfix |"), "{md}");
    let json = Command::new(&unyo)
        .args([
            "patch",
            "report",
            "-n",
            &ns,
            "--baseline",
            "production",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&cp.kubeconfig)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["baselines"].as_array().unwrap().len(), 1);
    let alpha_json = report["baselines"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["package"] == "alpha")
        .unwrap();
    assert_eq!(alpha_json["judgement"], "Apply");

    // The window opens: prd01 installs; prd02, whose scan failed, installs nothing.
    baselines
        .patch(
            "production",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"maintenanceWindow": {
                "schedule": {"calendar": "ops", "cron": "* * * * *", "at": null}, "duration": "1h"}}})),
        )
        .await
        .unwrap();
    let s = wait(
        &servers,
        "prd01",
        "installed in the window",
        120,
        &logs,
        |s| patch_state(s, "production", "alpha") == Some((PatchState::Installed, "1.1".into())),
    )
    .await;
    assert_eq!(
        aptlab::installed_version(&roots[1], "alpha").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        aptlab::installed_version(&roots[1], "delta").as_deref(),
        Some("1.0")
    );
    let s = if condition(&s, "PatchCompliant").is_some_and(|c| c.0 == "True") {
        s
    } else {
        wait(&servers, "prd01", "PatchCompliant True", 30, &logs, |s| {
            condition(s, "PatchCompliant").is_some_and(|c| c.0 == "True")
        })
        .await
    };
    assert_eq!(condition(&s, "PatchCompliant").unwrap().1, "Compliant");
    let s = wait(&servers, "prd02", "ScanFailed", 30, &logs, |s| {
        condition(s, "PatchCompliant").is_some_and(|c| c.1 == "ScanFailed")
    })
    .await;
    assert!(
        condition(&s, "PatchCompliant")
            .unwrap()
            .2
            .contains("127.0.0.1:9")
    );
    assert_eq!(
        aptlab::installed_version(&roots[2], "alpha").as_deref(),
        Some("1.0")
    );
    let b = wait(
        &baselines,
        "production",
        "compliance per server",
        30,
        &logs,
        |b| {
            b.status
                .as_ref()
                .is_some_and(|s| s.compliant_servers == Some(1))
        },
    )
    .await;
    let st = b.status.unwrap();
    assert_eq!(st.non_compliant_servers, Some(1));
    let prd01 = st.servers.iter().find(|s| s.server == "prd01").unwrap();
    assert!(prd01.compliant && prd01.counts.installed == 1);
    assert_eq!(prd01.reason, "Compliant");
    let prd02 = st.servers.iter().find(|s| s.server == "prd02").unwrap();
    assert_eq!(
        (prd02.compliant, prd02.reason.as_str()),
        (false, "ScanFailed")
    );

    // Each install result is an Event from the agent.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let all = events.list(&Default::default()).await.unwrap().items;
    let said = |reason: &str, server: &str, text: &str| {
        all.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.involved_object.name.as_deref() == Some(server)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        })
    };
    assert!(said("PatchFailed", "stg01", "gamma=2.0"), "{all:#?}");
    assert!(said("PatchInstalled", "stg01", "alpha=1.1"), "{all:#?}");
    assert!(said("PatchInstalled", "prd01", "alpha=1.1"), "{all:#?}");
    // The controller's approvals are Events of the baseline.
    assert!(
        said("PatchApproved", "production", "alpha=1.1: approved by"),
        "{all:#?}"
    );
    assert!(!said("PatchApproved", "production", "delta"), "{all:#?}");

    // prd02's source is fixed and a scan asked for: it scans, then installs in the open window.
    std::fs::write(
        roots[2].join("etc/apt/sources.list"),
        sources.join("\n") + "\n",
    )
    .unwrap();
    cp.kubectl_ok(
        &[
            "annotate",
            "server",
            "prd02",
            "-n",
            &ns,
            "unyo.dev/patch-scan-now=source-fixed",
        ],
        None,
    )
    .unwrap();
    let s = wait(
        &servers,
        "prd02",
        "rescanned and installed",
        120,
        &logs,
        |s| {
            patch_state(s, "production", "alpha") == Some((PatchState::Installed, "1.1".into()))
                && condition(s, "PatchCompliant").is_some_and(|c| c.0 == "True")
        },
    )
    .await;
    assert!(
        s.status
            .unwrap()
            .operations
            .unwrap()
            .patch_scan
            .unwrap()
            .succeeded
    );
    assert_eq!(
        aptlab::installed_version(&roots[2], "alpha").as_deref(),
        Some("1.1")
    );

    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").unwrap_or_default(),
        machine_before,
        "the machine running the test changed"
    );
    drop((ctl, stg, prd, prd2));
    let _ = std::fs::remove_dir_all(&work);
}
