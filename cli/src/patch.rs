//! `unyo patch report`: the apply/hold report the procurement spec asks for (R11) — per
//! candidate patch of every PatchBaseline in a namespace, the staging evidence, the servers that
//! need it and the judgement with its reason, as the controller concluded them — in Markdown for
//! people or JSON for tools.

use anyhow::{Context, Result};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use unyo_crds::PatchBaseline;
use unyo_crds::patch::{Judgement, PatchCandidate, ServerCompliance};

/// The report of one namespace.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Namespace.
    pub namespace: String,
    /// When the report was made.
    pub generated_at: Timestamp,
    /// Every baseline, in name order.
    pub baselines: Vec<BaselineReport>,
}

/// One baseline's part of the report.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineReport {
    /// PatchBaseline name.
    pub name: String,
    /// Scan or Install.
    pub operation: String,
    /// The staging baseline production waits for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_baseline: Option<String>,
    /// The soak period, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    /// Ready condition: status, reason, message.
    pub ready: (String, String, String),
    /// Whether the controller has evaluated the current spec.
    pub up_to_date: bool,
    /// Compliance per server.
    pub servers: Vec<ServerCompliance>,
    /// Candidates with their judgement.
    pub candidates: Vec<PatchCandidate>,
}

/// Reads the baselines of `namespace` (only `only` when given) into a report.
pub async fn report(client: Client, namespace: &str, only: Option<&str>) -> Result<Report> {
    let api: Api<PatchBaseline> = Api::namespaced(client, namespace);
    let mut list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing PatchBaselines in {namespace}"))?
        .items;
    if let Some(name) = only {
        list.retain(|b| b.name_any() == name);
        if list.is_empty() {
            anyhow::bail!("PatchBaseline {name} does not exist in {namespace}");
        }
    }
    list.sort_by_key(|b| b.name_any());
    Ok(Report {
        namespace: namespace.to_string(),
        generated_at: Timestamp::now(),
        baselines: list.iter().map(baseline_report).collect(),
    })
}

fn baseline_report(b: &PatchBaseline) -> BaselineReport {
    let status = b.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == unyo_crds::names::conditions::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_else(|| {
            (
                "Unknown".into(),
                "NotEvaluated".into(),
                "the controller has not evaluated this baseline".into(),
            )
        });
    BaselineReport {
        name: b.name_any(),
        operation: format!("{:?}", b.spec.operation),
        staging_baseline: b
            .spec
            .promotion
            .as_ref()
            .map(|p| p.staging_baseline.clone()),
        soak: b.spec.promotion.as_ref().map(|p| p.soak.clone()),
        ready,
        up_to_date: status.observed_generation == b.metadata.generation,
        servers: status.servers,
        candidates: status.candidates,
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn date(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.as_ref()
        .map(|t| t.0.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "–".into())
}

fn evidence(c: &PatchCandidate) -> String {
    if c.staging.is_empty() {
        return "–".into();
    }
    c.staging
        .iter()
        .map(|e| {
            let installed = match (&e.installed_version, &e.installed_at) {
                (Some(v), Some(t)) => format!("{v} since {}", t.0.strftime("%Y-%m-%d %H:%M")),
                (Some(v), None) => format!("{v} (install time unknown)"),
                (None, _) => "not installed".into(),
            };
            let incidents = if e.open_incidents.is_empty() {
                "no open incident".to_string()
            } else {
                format!("open incident(s) {}", e.open_incidents.join(", "))
            };
            let mark = if e.sufficient { "yes" } else { "no" };
            format!(
                "{}: {installed}, {incidents} (sufficient: {mark})",
                e.server
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "# Patch report: namespace {}\n\nGenerated {} UTC. Judgements are the controller's; \
         agents install only patches judged **Apply**, and only in their maintenance window.\n",
        r.namespace,
        r.generated_at.strftime("%Y-%m-%d %H:%M")
    );
    if r.baselines.is_empty() {
        out.push_str("\nNo PatchBaseline in this namespace.\n");
    }
    for b in &r.baselines {
        let apply = b
            .candidates
            .iter()
            .filter(|c| c.judgement == Judgement::Apply)
            .count();
        out.push_str(&format!(
            "\n## PatchBaseline {} ({})\n\n",
            b.name, b.operation
        ));
        if let (Some(s), Some(soak)) = (&b.staging_baseline, &b.soak) {
            out.push_str(&format!(
                "Staging first: approves only what PatchBaseline {s} has run for {soak} with no open Incident.\n\n"
            ));
        }
        out.push_str(&format!(
            "Ready: {} ({}): {}{}\n\n{} candidate patch(es): {apply} to apply, {} held.\n",
            b.ready.0,
            b.ready.1,
            cell(&b.ready.2),
            if b.up_to_date {
                ""
            } else {
                " (the latest change of the baseline is not evaluated yet)"
            },
            b.candidates.len(),
            b.candidates.len() - apply
        ));
        if !b.candidates.is_empty() {
            out.push_str(
                "\n| Judgement | Package | Version | Classification | Severity | Released | Needed by | Staging evidence | Reason |\n\
                 |---|---|---|---|---|---|---|---|---|\n",
            );
            for c in &b.candidates {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    match c.judgement {
                        Judgement::Apply => "**Apply**",
                        Judgement::Hold => "Hold",
                    },
                    cell(&c.package),
                    cell(&c.version),
                    c.classification
                        .map_or("–".to_string(), |k| format!("{k:?}")),
                    c.severity.map_or("–".to_string(), |s| format!("{s:?}")),
                    date(&c.released_at),
                    if c.needed_by.is_empty() {
                        "–".to_string()
                    } else {
                        c.needed_by.join(", ")
                    },
                    cell(&evidence(c)),
                    cell(&c.reason),
                ));
            }
        }
        if !b.servers.is_empty() {
            out.push_str(
                "\n| Server | Compliant | Installed | Pending reboot | Missing | Failed | Rejected | Not applicable |\n\
                 |---|---|---|---|---|---|---|---|\n",
            );
            for s in &b.servers {
                let n = &s.counts;
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    s.server,
                    match (s.compliant, s.reason.as_str()) {
                        (true, _) => "yes".to_string(),
                        (false, "") => "**no**".to_string(),
                        (false, reason) => format!("**no** ({reason})"),
                    },
                    n.installed,
                    n.installed_pending_reboot,
                    n.missing,
                    n.failed,
                    n.rejected,
                    n.not_applicable
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use unyo_crds::patch::{PatchClassification, PatchCounts, StagingEvidence};

    #[test]
    fn markdown_shows_judgement_evidence_and_escapes_cells() {
        let r = Report {
            namespace: "mie".into(),
            generated_at: "2026-11-24T09:00:00Z".parse().unwrap(),
            baselines: vec![BaselineReport {
                name: "production".into(),
                operation: "Install".into(),
                staging_baseline: Some("staging".into()),
                soak: Some("7d".into()),
                ready: ("True".into(), "Evaluated".into(), "1 of 2 compliant".into()),
                up_to_date: true,
                servers: vec![ServerCompliance {
                    server: "db01".into(),
                    compliant: false,
                    reason: "MissingPatches".into(),
                    counts: PatchCounts {
                        missing: 1,
                        ..Default::default()
                    },
                }],
                candidates: vec![PatchCandidate {
                    package: "openssl".into(),
                    version: "3.0.15-1".into(),
                    classification: Some(PatchClassification::Security),
                    severity: None,
                    released_at: None,
                    judgement: Judgement::Apply,
                    reason: "approved | staged".into(),
                    needed_by: vec!["db01".into()],
                    staging: vec![StagingEvidence {
                        server: "stg01".into(),
                        installed_version: Some("3.0.15-1".into()),
                        installed_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            "2026-11-14T01:00:00Z".parse().unwrap(),
                        )),
                        open_incidents: vec![],
                        sufficient: true,
                    }],
                }],
            }],
        };
        let md = markdown(&r);
        assert!(
            md.contains("| **Apply** | openssl | 3.0.15-1 | Security |"),
            "{md}"
        );
        assert!(
            md.contains(
                "stg01: 3.0.15-1 since 2026-11-14 01:00, no open incident (sufficient: yes)"
            ),
            "{md}"
        );
        assert!(md.contains("approved \\| staged"), "{md}");
        assert!(
            md.contains("| db01 | **no** (MissingPatches) | 0 | 0 | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("1 candidate patch(es): 1 to apply, 0 held."),
            "{md}"
        );
    }
}
