//! The monthly report laid out as a document in one language.

use super::MonthlyReport;
use crate::Lang;
use crate::charts::sparkline;
use crate::doc::{Chart, Document, Section, count_rows};
use crate::time::{minutes, number, percent};

/// The report as a document in `lang`.
pub fn document(r: &MonthlyReport, lang: Lang) -> Document {
    Document {
        title: lang.t("monthly_title").to_string(),
        subtitle: format!(
            "{} {} / {} {}",
            lang.t("namespace"),
            r.namespace,
            lang.t("month"),
            r.month
        ),
        lang,
        sections: vec![
            summary(r, lang),
            monitoring(r, lang),
            incidents(r, lang),
            problems(r, lang),
            changes(r, lang),
            patches(r, lang),
            backups(r, lang),
            virus(r, lang),
            statistics(r, lang),
            maintenance(r, lang),
        ],
    }
}

fn summary(r: &MonthlyReport, t: Lang) -> Section {
    let s = &r.summary;
    let mut sec = Section::new(t.t("summary"));
    sec.figure(
        t.t("period"),
        format!("{} – {} ({})", s.period_start, s.period_end, s.time_zone),
    )
    .figure(t.t("fleet"), s.servers)
    .figure(
        t.t("business_days"),
        s.business_days
            .map_or_else(|| t.t("none").to_string(), |d| d.to_string()),
    )
    .figure(
        t.t("due_date"),
        s.due_date
            .clone()
            .unwrap_or_else(|| t.t("none").to_string()),
    )
    .figure(
        t.t("calendar"),
        s.calendar
            .clone()
            .unwrap_or_else(|| t.t("none").to_string()),
    )
    .figure(t.t("generated_at"), &r.generated_at);
    sec.table(
        t.t("environment"),
        &[t.t("environment"), t.t("count")],
        count_rows(t, &s.servers_by_environment),
    );
    sec.table(
        t.t("role"),
        &[t.t("role"), t.t("count")],
        count_rows(t, &s.servers_by_role),
    );
    sec
}

fn monitoring(r: &MonthlyReport, t: Lang) -> Section {
    let m = &r.monitoring;
    let mut sec = Section::new(t.t("monitoring"));
    for (sev, secs) in &m.firing_seconds {
        sec.figure(
            &format!("{} {}", t.t("firing_time"), t.value(sev)),
            number(minutes(*secs)),
        );
    }
    let rows = m
        .policies
        .iter()
        .map(|p| {
            vec![
                p.name.clone().into(),
                p.checks.into(),
                p.servers.into(),
                p.firing_warning.into(),
                p.firing_critical.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("policy"),
        &[
            t.t("policy"),
            t.t("check"),
            t.t("servers"),
            t.t("Warning"),
            t.t("Critical"),
        ],
        rows,
    );
    sec.table(
        t.t("check"),
        &[t.t("check"), t.t("count")],
        count_rows(t, &m.firings_by_check),
    );
    let rows = m
        .checks_not_ok
        .iter()
        .map(|c| {
            vec![
                c.server.clone().into(),
                c.policy.clone().into(),
                c.check.clone().into(),
                t.value(&c.state).into(),
                c.since.clone().into(),
            ]
        })
        .collect();
    sec.table(
        t.t("checks_not_ok"),
        &[
            t.t("server"),
            t.t("policy"),
            t.t("check"),
            t.t("state"),
            t.t("occurred_at"),
        ],
        rows,
    );
    sec
}

fn incidents(r: &MonthlyReport, t: Lang) -> Section {
    let i = &r.incidents;
    let mut sec = Section::new(t.t("incidents"));
    sec.figure(t.t("opened"), i.opened)
        .figure(t.t("recovered"), i.recovered)
        .figure(t.t("Closed"), i.closed)
        .figure(t.t("open_at_end"), i.open_at_month_end)
        .figure(
            t.t("mttr"),
            i.mttr_seconds
                .map_or_else(|| t.t("none").to_string(), |s| number(minutes(s))),
        )
        .figure(
            &format!("{} {}", t.t("service"), t.t("downtime")),
            number(minutes(i.service.downtime_seconds)),
        )
        .figure(
            &format!("{} {}", t.t("service"), t.t("availability")),
            i.service
                .availability
                .map_or_else(|| t.t("none").to_string(), percent),
        );
    sec.table(
        t.t("by_type"),
        &[t.t("type"), t.t("count")],
        count_rows(t, &i.by_type),
    );
    sec.table(
        t.t("by_severity"),
        &[t.t("severity"), t.t("count")],
        count_rows(t, &i.by_severity),
    );
    sec.table(
        t.t("by_server"),
        &[t.t("server"), t.t("count")],
        count_rows(t, &i.by_server),
    );
    let rows = i
        .per_server
        .iter()
        .map(|a| {
            vec![
                a.server.clone().into(),
                minutes(a.downtime_seconds).into(),
                minutes(a.business_downtime_seconds).into(),
                a.availability.map(|x| (x * 10000.0).round() / 100.0).into(),
            ]
        })
        .collect();
    sec.table(
        t.t("availability"),
        &[
            t.t("server"),
            t.t("downtime"),
            t.t("business_downtime"),
            &format!("{} (%)", t.t("availability")),
        ],
        rows,
    );
    let rows = i
        .list
        .iter()
        .map(|x| {
            vec![
                x.name.clone().into(),
                x.title.clone().into(),
                t.value(&x.incident_type).into(),
                t.value(&x.severity).into(),
                x.servers.join(", ").into(),
                x.occurred_at.clone().into(),
                x.recovered_at.clone().into(),
                minutes(x.downtime_seconds).into(),
                t.value(&x.state).into(),
                x.cause.clone().into(),
                x.actions.join(" / ").into(),
                x.prevention.clone().into(),
            ]
        })
        .collect();
    sec.table(
        t.t("incidents_list"),
        &[
            t.t("id"),
            t.t("title"),
            t.t("type"),
            t.t("severity"),
            t.t("servers"),
            t.t("occurred_at"),
            t.t("recovered_at"),
            t.t("downtime"),
            t.t("state"),
            t.t("cause"),
            t.t("actions"),
            t.t("prevention"),
        ],
        rows,
    );
    sec
}

fn problems(r: &MonthlyReport, t: Lang) -> Section {
    let mut sec = Section::new(t.t("problems"));
    let rows = r
        .problems
        .iter()
        .map(|p| {
            vec![
                p.id.clone().into(),
                t.value(&p.category).into(),
                t.yes_no(p.known_error).into(),
                p.incidents.join(", ").into(),
                p.workaround.clone().into(),
                p.permanent_fix.clone().into(),
            ]
        })
        .collect();
    sec.table(
        t.t("problems"),
        &[
            t.t("id"),
            t.t("category"),
            t.t("known_error"),
            t.t("incident"),
            t.t("workaround"),
            t.t("prevention"),
        ],
        rows,
    );
    sec
}

fn changes(r: &MonthlyReport, t: Lang) -> Section {
    let c = &r.changes;
    let mut sec = Section::new(t.t("changes"));
    sec.figure(t.t("drift_opened"), c.drift_opened)
        .figure(t.t("drift_resolved"), c.drift_resolved)
        .figure(t.t("Release"), c.releases)
        .figure(t.t("lead_time_violated"), c.lead_time_violations);
    sec.table(
        t.t("by_resolution"),
        &[t.t("result"), t.t("count")],
        count_rows(t, &c.by_resolution),
    );
    let rows = c
        .planned
        .iter()
        .map(|p| {
            vec![
                p.name.clone().into(),
                p.title.clone().into(),
                t.value(&p.category).into(),
                t.value(&p.classification).into(),
                p.servers.join(", ").into(),
                format!("{} – {}", p.window_start, p.window_end).into(),
                t.value(&p.phase).into(),
                p.reviews.join(", ").into(),
                t.yes_no(p.lead_time_violated).into(),
            ]
        })
        .collect();
    sec.table(
        t.t("planned_changes"),
        &[
            t.t("id"),
            t.t("title"),
            t.t("category"),
            t.t("classification"),
            t.t("servers"),
            t.t("window"),
            t.t("phase"),
            t.t("reviews"),
            t.t("lead_time_violated"),
        ],
        rows,
    );
    sec
}

fn patches(r: &MonthlyReport, t: Lang) -> Section {
    let p = &r.patches;
    let mut sec = Section::new(t.t("patches"));
    sec.figure(t.t("patches_installed"), p.installed.len())
        .figure(t.t("patches_failed"), p.failed.len());
    let rows = p
        .baselines
        .iter()
        .map(|b| {
            vec![
                b.name.clone().into(),
                b.compliant.into(),
                b.non_compliant.into(),
                b.apply.into(),
                b.hold.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("baseline"),
        &[
            t.t("baseline"),
            t.t("compliant"),
            t.t("non_compliant"),
            t.t("Apply"),
            t.t("Hold"),
        ],
        rows,
    );
    let rows = p
        .judgements
        .iter()
        .map(|j| {
            vec![
                j.baseline.clone().into(),
                j.package.clone().into(),
                j.version.clone().into(),
                t.value(&j.judgement).into(),
                j.reason.clone().into(),
                j.servers.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("judgement"),
        &[
            t.t("baseline"),
            t.t("package"),
            t.t("version"),
            t.t("judgement"),
            t.t("hold_reason"),
            t.t("servers"),
        ],
        rows,
    );
    let rows = p
        .servers
        .iter()
        .map(|s| {
            vec![
                s.server.clone().into(),
                s.baseline.clone().into(),
                t.yes_no(s.compliant).into(),
                s.installed.into(),
                s.missing.into(),
                s.failed.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("compliance"),
        &[
            t.t("server"),
            t.t("baseline"),
            t.t("compliant"),
            t.t("installed"),
            t.t("missing"),
            t.t("failed"),
        ],
        rows,
    );
    for (title, list) in [
        ("patches_installed", &p.installed),
        ("patches_failed", &p.failed),
    ] {
        let rows = list
            .iter()
            .map(|e| {
                vec![
                    e.server.clone().into(),
                    e.package.clone().into(),
                    e.version.clone().into(),
                    e.at.clone().into(),
                    e.message.clone().into(),
                ]
            })
            .collect();
        sec.table(
            t.t(title),
            &[
                t.t("server"),
                t.t("package"),
                t.t("version"),
                t.t("installed_at"),
                t.t("message"),
            ],
            rows,
        );
    }
    sec
}

fn backups(r: &MonthlyReport, t: Lang) -> Section {
    let b = &r.backups;
    let mut sec = Section::new(t.t("backups"));
    sec.figure(t.t("backups_runs"), b.runs_in_month)
        .figure(t.t("backups_failed"), b.failures_in_month);
    let rows = b
        .rows
        .iter()
        .map(|x| {
            vec![
                x.server.clone().into(),
                x.plan.clone().into(),
                x.last_full_at.clone().into(),
                t.value(&x.last_full_result).into(),
                x.generations.into(),
                x.last_verification_at.clone().into(),
                t.value(&x.last_verification_result).into(),
                x.offsite_copy_age_hours.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("backups"),
        &[
            t.t("server"),
            t.t("plan"),
            t.t("last_full"),
            t.t("result"),
            t.t("generations"),
            t.t("last_verification"),
            t.t("verification"),
            t.t("offsite_age"),
        ],
        rows,
    );
    sec
}

fn virus(r: &MonthlyReport, t: Lang) -> Section {
    let x = &r.virus;
    let mut sec = Section::new(t.t("virus"));
    sec.figure(t.t("detections"), x.detections.len());
    let rows = x
        .schedules
        .iter()
        .map(|s| {
            vec![
                s.name.clone().into(),
                s.stale_hosts.join(", ").into(),
                s.missed_hosts.join(", ").into(),
                s.detections.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("virus"),
        &[
            t.t("name"),
            t.t("stale_hosts"),
            t.t("missed_hosts"),
            t.t("detections"),
        ],
        rows,
    );
    let rows = x
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.server.clone().into(),
                h.last_scan_at.clone().into(),
                t.value(&h.last_scan_result).into(),
                (h.files_scanned as f64).into(),
                h.signature_version.clone().into(),
                h.signature_age_hours.into(),
            ]
        })
        .collect();
    sec.table(
        t.t("last_scan"),
        &[
            t.t("server"),
            t.t("last_scan"),
            t.t("result"),
            t.t("files_scanned"),
            t.t("signature"),
            t.t("signature_age"),
        ],
        rows,
    );
    let rows = x
        .detections
        .iter()
        .map(|d| {
            vec![
                d.host.clone().into(),
                d.path.clone().into(),
                d.signature.clone().into(),
                d.actions.join(", ").into(),
                d.at.clone().into(),
            ]
        })
        .collect();
    sec.table(
        t.t("detections"),
        &[
            t.t("server"),
            t.t("path"),
            t.t("signature"),
            t.t("actions"),
            t.t("occurred_at"),
        ],
        rows,
    );
    sec
}

fn statistics(r: &MonthlyReport, t: Lang) -> Section {
    let s = &r.statistics;
    let mut sec = Section::new(t.t("statistics"));
    let Some(source) = &s.source else {
        sec.notes.push(t.t("no_statistics").to_string());
        return sec;
    };
    sec.figure(t.t("statistics_source"), source);
    sec.notes.extend(s.errors.iter().cloned());
    let mut rows = Vec::new();
    for srv in &s.servers {
        for m in &srv.measurements {
            rows.push(vec![
                srv.server.clone().into(),
                t.t(&m.key).into(),
                m.average.into(),
                m.p95.into(),
                m.maximum.into(),
            ]);
            let ceiling = if m.key.ends_with("usage") || m.key == "service_up" {
                100.0
            } else {
                0.0
            };
            sec.charts.push(Chart {
                caption: format!("{} {} ({})", srv.server, t.t(&m.key), t.t("chart_note")),
                svg: sparkline(&m.series, ceiling),
            });
        }
    }
    sec.table(
        t.t("statistics"),
        &[
            t.t("server"),
            t.t("metric"),
            t.t("average"),
            t.t("p95"),
            t.t("maximum"),
        ],
        rows,
    );
    sec
}

fn maintenance(r: &MonthlyReport, t: Lang) -> Section {
    let m = &r.maintenance;
    let mut sec = Section::new(t.t("maintenance"));
    sec.figure(t.t("patches_installed"), m.patches_installed)
        .figure(t.t("changes_implemented"), m.changes_implemented.len());
    let rows = m
        .changes_implemented
        .iter()
        .map(|c| {
            vec![
                c.name.clone().into(),
                c.title.clone().into(),
                t.value(&c.category).into(),
                c.at.clone().into(),
            ]
        })
        .collect();
    sec.table(
        t.t("changes_implemented"),
        &[t.t("id"), t.t("title"), t.t("category"), t.t("finished_at")],
        rows,
    );
    sec
}
