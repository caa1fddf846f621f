//! The unyo.dev API against a real kube-apiserver: CRDs install and are Established, the sample
//! fleet applies and reads back, `kubectl get unyo` and `kubectl explain` work, and every
//! validation rule rejects a bad object with the field and the reason.

use anyhow::{Context, Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::{Value, json};
use unyo_tests::{control_plane, subset_mismatch};

#[tokio::test]
async fn every_crd_is_established_with_names_category_and_status() -> Result<()> {
    let cp = control_plane()?;
    let api: Api<CustomResourceDefinition> = Api::all(cp.client().await?);
    let generated = unyo_crds::crdgen::all_crds();
    assert_eq!(generated.len(), 8);
    for want in generated {
        let name = want.metadata.name.clone().unwrap_or_default();
        let got = api.get(&name).await.with_context(|| name.clone())?;
        let conditions = got
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        ensure!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} is not Established: {conditions:?}"
        );
        ensure!(got.spec.group == "unyo.dev", "{name} group");
        ensure!(got.spec.scope == "Namespaced", "{name} scope");
        let names = &got.spec.names;
        ensure!(
            names.categories.as_deref().unwrap_or_default() == ["unyo".to_string()],
            "{name} categories"
        );
        ensure!(
            !names.short_names.as_deref().unwrap_or_default().is_empty(),
            "{name} has no short name"
        );
        let version = &got.spec.versions[0];
        ensure!(version.name == "v1alpha1" && version.served && version.storage);
        ensure!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        ensure!(
            columns.contains(&"Age".to_string()),
            "{name} columns {columns:?}"
        );
    }
    Ok(())
}

fn yaml_docs(path: &std::path::Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_saphyr::from_multiple::<Value>(&text).with_context(|| path.display().to_string())
}

/// The sample fleet: server-side dry run, then for real; each object reads back with every field
/// of the file unchanged; `kubectl get unyo -n mie` lists all eight kinds.
#[tokio::test]
async fn sample_fleet_applies_and_reads_back_equal() -> Result<()> {
    let cp = control_plane()?;
    let samples = cp.repo.join("manifests/samples");
    let ns_file = samples.join("namespace.yaml");
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", &ns_file.to_string_lossy()],
        None,
    )?;
    let kustomization = yaml_docs(&samples.join("kustomization.yaml"))?;
    let files: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .context("kustomization resources")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    ensure!(files.len() >= 16, "kustomization lists {}", files.len());
    // Every sample file is in the kustomization.
    let mut on_disk = Vec::new();
    for entry in walk(&samples)? {
        let rel = entry.strip_prefix(&samples)?.to_string_lossy().into_owned();
        if rel != "kustomization.yaml" {
            on_disk.push(rel);
        }
    }
    on_disk.sort();
    let mut listed = files.clone();
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "kustomization.yaml and the sample files differ"
    );

    for file in &files {
        let path = samples.join(file).to_string_lossy().into_owned();
        let dry = cp.kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=unyo-tests",
                "-f",
                &path,
            ],
            None,
        )?;
        ensure!(dry.contains("(server dry run)"), "{file}: {dry}");
    }
    let applied = cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=unyo-tests",
            "-k",
            &samples.to_string_lossy(),
        ],
        None,
    )?;
    let mut kinds_seen = std::collections::BTreeSet::new();
    for file in &files {
        for doc in yaml_docs(&samples.join(file))? {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            if kind == "Namespace" {
                continue;
            }
            ensure!(
                applied.contains(&format!("{}.unyo.dev/{name}", kind.to_lowercase())),
                "{kind}/{name} not applied: {applied}"
            );
            let back: Value = serde_json::from_str(&cp.kubectl_ok(
                &[
                    "get",
                    &format!("{}.unyo.dev", kind.to_lowercase()),
                    name,
                    "-n",
                    "mie",
                    "-o",
                    "json",
                ],
                None,
            )?)?;
            if let Some(diff) = subset_mismatch(&doc["spec"], &back["spec"], "spec") {
                anyhow::bail!("{kind}/{name} read back differently: {diff}");
            }
            ensure!(
                subset_mismatch(&doc["metadata"]["labels"], &back["metadata"]["labels"], "")
                    .is_none()
            );
            kinds_seen.insert(kind);
        }
    }
    assert_eq!(
        kinds_seen.len(),
        8,
        "samples cover every kind: {kinds_seen:?}"
    );

    // Schema defaults were applied by the API server.
    let db: Value = serde_json::from_str(&cp.kubectl_ok(
        &[
            "get",
            "monitoringpolicy",
            "database",
            "-n",
            "mie",
            "-o",
            "json",
        ],
        None,
    )?)?;
    assert_eq!(db["spec"]["interval"], json!("60s"));
    assert_eq!(db["spec"]["notifications"][0]["onRecovery"], json!(true));

    let listing = cp.kubectl_ok(&["get", "unyo", "-n", "mie"], None)?;
    for resource in [
        "server.unyo.dev/db01",
        "server.unyo.dev/stg-db01",
        "monitoringpolicy.unyo.dev/baseline",
        "patchbaseline.unyo.dev/production",
        "backupplan.unyo.dev/db-and-reports",
        "virusscanschedule.unyo.dev/daily",
        "operationcalendar.unyo.dev/mie-operations",
        "changerecord.unyo.dev/db01-postgresql-15-11",
        "incident.unyo.dev/inquiry-2026-11-21-report-delay",
    ] {
        ensure!(
            listing.contains(resource),
            "kubectl get unyo lacks {resource}:\n{listing}"
        );
    }
    // Printer columns show the ledger at a glance.
    let servers = cp.kubectl_ok(&["get", "servers", "-n", "mie"], None)?;
    let header = servers.lines().next().unwrap_or_default();
    for col in ["ROLE", "ENV", "OS", "INSYNC", "AGENT", "AGE"] {
        ensure!(header.contains(col), "server columns: {header}");
    }
    ensure!(
        servers
            .lines()
            .any(|l| l.starts_with("stg-db01") && l.contains("Staging") && l.contains("DB"))
    );
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

#[tokio::test]
async fn kubectl_explain_teaches_every_kind() -> Result<()> {
    let cp = control_plane()?;
    let server = cp.kubectl_ok(&["explain", "server.spec"], None)?;
    for text in [
        "hostname",
        "Host name of the server as the ledger records it",
        "Production or Staging",
        "drift",
    ] {
        ensure!(
            server.contains(text),
            "explain server.spec lacks {text:?}:\n{server}"
        );
    }
    for (field, text) in [
        ("backupplan.spec.retention.generations", "Generations kept"),
        ("operationcalendar.spec.closures", "year-end closure"),
        (
            "monitoringpolicy.spec.checks.warning",
            "Must be below critical.",
        ),
        (
            "virusscanschedule.spec.signatures.maxAge",
            "Oldest signatures allowed",
        ),
        ("patchbaseline.spec.promotion.soak", "no open Incident"),
        (
            "changerecord.spec.classification",
            "Minor, Major or Emergency",
        ),
        ("incident.spec.state", "Owned by people"),
        ("server.status.conditions", "lastTransitionTime"),
    ] {
        // kubectl wraps descriptions; compare with whitespace runs collapsed.
        let out = cp.kubectl_ok(&["explain", field], None)?;
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        ensure!(
            flat.contains(text),
            "explain {field} lacks {text:?}:\n{out}"
        );
    }
    Ok(())
}

/// One invalid object: the kind, a valid base, how it is broken, and what the error must say.
struct Case {
    what: &'static str,
    object: Value,
    expect: &'static [&'static str],
}

fn obj(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "unyo.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn schedule() -> Value {
    json!({"calendar": "ops", "at": "19:30", "days": "BusinessDays"})
}

fn server_spec() -> Value {
    json!({"hostname": "web01", "role": "Web", "os": {"name": "Debian GNU/Linux", "version": "12"}})
}

fn check(kind: &str) -> Value {
    json!({"name": "c", "kind": kind})
}

fn policy(check: Value) -> Value {
    obj("MonitoringPolicy", "mp", json!({"checks": [check]}))
}

fn backup_spec() -> Value {
    json!({
        "sources": [{"name": "db", "paths": ["/var/lib/postgresql"]}],
        "repositories": {"primary": {"location": "/backup/a", "passwordFile": "/etc/unyo/a.pass"}},
        "rules": [{"name": "full", "type": "Full", "schedule": schedule()}],
        "media": {"informationClass": "ClassI"}
    })
}

fn scan_spec() -> Value {
    json!({
        "schedule": {"calendar": "ops", "at": "12:30"},
        "paths": ["/srv"],
        "signatures": {"maxAge": "24h"},
        "actions": ["Quarantine", "Notify"],
        "quarantineDir": "/var/lib/unyo/quarantine"
    })
}

fn calendar_spec() -> Value {
    json!({"businessHours": {"start": "08:00", "end": "19:00"}})
}

fn planned_change() -> Value {
    json!({
        "origin": "Planned", "category": "Software", "classification": "Minor", "server": "db01",
        "plan": {"summary": "update", "window": {"start": "2026-12-17T19:30:00+09:00", "end": "2026-12-17T22:30:00+09:00"}}
    })
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = base.pointer_mut(pointer) {
        *slot = value;
    } else if let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(Value::Object(map)) = base.pointer_mut(parent)
    {
        map.insert(key.to_string(), value);
    }
    base
}

fn backup_with(pointer: &str, value: Value) -> Value {
    obj("BackupPlan", "bp", with(backup_spec(), pointer, value))
}

fn scan_with(pointer: &str, value: Value) -> Value {
    obj("VirusScanSchedule", "v", with(scan_spec(), pointer, value))
}

/// A valid Defender schedule, `pointer` set to `value`.
fn defender_with(pointer: &str, value: Value) -> Value {
    let spec = json!({
        "engine": "Defender",
        "schedule": {"calendar": "ops", "at": "12:30"},
        "paths": ["C:\\Users"],
        "signatures": {"maxAge": "24h"},
        "actions": ["Quarantine", "Notify"]
    });
    obj("VirusScanSchedule", "d", with(spec, pointer, value))
}

fn calendar_with(pointer: &str, value: Value) -> Value {
    obj(
        "OperationCalendar",
        "o",
        with(calendar_spec(), pointer, value),
    )
}

fn server_with(pointer: &str, value: Value) -> Value {
    obj("Server", "s", with(server_spec(), pointer, value))
}

fn change_with(pointer: &str, value: Value) -> Value {
    obj("ChangeRecord", "c", with(planned_change(), pointer, value))
}

fn cases() -> Vec<Case> {
    let mut bad_rules = backup_spec();
    bad_rules["rules"][0]["type"] = json!("Differential");
    vec![
        Case {
            what: "a files source without paths",
            object: backup_with("/sources/0", json!({"name": "db"})),
            expect: &[
                "spec.sources[0].paths",
                "a source of type Files needs at least one path",
            ],
        },
        Case {
            what: "a PostgreSQL source without its cluster",
            object: backup_with("/sources/0", json!({"name": "db", "type": "PostgreSQL"})),
            expect: &[
                "spec.sources[0].postgresql",
                "a source of type PostgreSQL needs postgresql",
            ],
        },
        Case {
            what: "a PostgreSQL source on a port that cannot be",
            object: backup_with(
                "/sources/0",
                json!({"name": "db", "type": "PostgreSQL", "postgresql": {"walSpool": "/var/lib/unyo/wal", "port": 70000}}),
            ),
            expect: &[
                "spec.sources[0].postgresql.port",
                "should be less than or equal to 65535",
            ],
        },
        Case {
            what: "an unknown missedRuns",
            object: backup_with("/rules/0/schedule/missedRuns", json!("Sometimes")),
            expect: &[
                "spec.rules[0].schedule.missedRuns",
                "Unsupported value: \"Sometimes\"",
            ],
        },
        Case {
            what: "schedule with both at and cron",
            object: backup_with("/rules/0/schedule/cron", json!("30 19 * * *")),
            expect: &[
                "spec.rules[0].schedule",
                "exactly one of at or cron must be set",
            ],
        },
        Case {
            what: "schedule with neither at nor cron",
            object: scan_with("/schedule", json!({"calendar": "ops"})),
            expect: &["spec.schedule", "exactly one of at or cron must be set"],
        },
        Case {
            what: "time of day out of range",
            object: backup_with("/rules/0/schedule/at", json!("25:00")),
            expect: &["spec.rules[0].schedule.at", "should match"],
        },
        Case {
            what: "unknown day selector",
            object: backup_with("/rules/0/schedule/days", json!("Weekdays")),
            expect: &[
                "spec.rules[0].schedule.days",
                "Unsupported value: \"Weekdays\"",
            ],
        },
        Case {
            what: "warning threshold not below critical",
            object: policy(json!({"name": "cpu", "kind": "Cpu", "warning": 95, "critical": 90})),
            expect: &[
                "spec.checks[0].warning",
                "the warning threshold must be below the critical threshold",
            ],
        },
        Case {
            what: "threshold check without thresholds",
            object: policy(check("Memory")),
            expect: &[
                "spec.checks[0].critical",
                "needs a warning or critical threshold",
            ],
        },
        Case {
            what: "percentage over 100",
            object: policy(json!({"name": "d", "kind": "Disk", "path": "/", "critical": 120})),
            expect: &["spec.checks[0].critical", "at most 100"],
        },
        Case {
            what: "disk check without path",
            object: policy(json!({"name": "d", "kind": "Disk", "critical": 90})),
            expect: &["spec.checks[0].path", "a Disk check needs path"],
        },
        Case {
            what: "service check without service",
            object: policy(check("Service")),
            expect: &["spec.checks[0].service", "a Service check needs service"],
        },
        Case {
            what: "tcp check without port",
            object: policy(json!({"name": "t", "kind": "Tcp", "host": "db01"})),
            expect: &["spec.checks[0].port", "a Tcp check needs port"],
        },
        Case {
            what: "log check without pattern",
            object: policy(json!({"name": "l", "kind": "LogPattern", "path": "/var/log/syslog"})),
            expect: &["spec.checks[0].pattern", "needs path and pattern"],
        },
        Case {
            what: "bad duration",
            object: policy(
                json!({"name": "cpu", "kind": "Cpu", "critical": 90, "for": "5 minutes"}),
            ),
            expect: &["spec.checks[0].for", "should match"],
        },
        Case {
            what: "unknown check kind",
            object: policy(check("Snmp")),
            expect: &["spec.checks[0].kind", "Unsupported value: \"Snmp\""],
        },
        Case {
            what: "route with webhook and email",
            object: obj(
                "MonitoringPolicy",
                "mp",
                json!({"checks": [check("Antivirus")], "notifications": [{
                "name": "r", "webhook": {"urlSecret": {"name": "hooks", "key": "url"}},
                "email": {"to": ["a@example.jp"], "from": "u@example.jp", "smtp": "mail:25"}}]}),
            ),
            expect: &[
                "spec.notifications[0]",
                "set exactly one of webhook or email",
            ],
        },
        Case {
            what: "webhook url inline instead of in a Secret",
            object: obj(
                "MonitoringPolicy",
                "mp",
                json!({"checks": [check("Antivirus")], "notifications": [{
                "name": "r", "webhook": {"url": "https://x.example/h?token=t"}}]}),
            ),
            expect: &["unknown field", "spec.notifications[0].webhook.url"],
        },
        Case {
            what: "webhook without its Secret",
            object: obj(
                "MonitoringPolicy",
                "mp",
                json!({"checks": [check("Antivirus")], "notifications": [{
                "name": "r", "webhook": {"insecureHttp": true}}]}),
            ),
            expect: &["spec.notifications[0].webhook.urlSecret", "Required value"],
        },
        Case {
            what: "zero generations",
            object: backup_with("/retention", json!({"generations": 0})),
            expect: &[
                "spec.retention.generations",
                "should be greater than or equal to 1",
            ],
        },
        Case {
            what: "no full rule",
            object: obj("BackupPlan", "bp", bad_rules),
            expect: &["spec.rules", "at least one rule must be of type Full"],
        },
        Case {
            what: "secondary equals primary",
            object: backup_with(
                "/repositories/secondary",
                json!({"location": "/backup/a", "passwordFile": "/etc/unyo/b.pass"}),
            ),
            expect: &[
                "spec.repositories.secondary.location",
                "must differ from the primary",
            ],
        },
        Case {
            what: "relative password file",
            object: backup_with("/repositories/primary/passwordFile", json!("a.pass")),
            expect: &["spec.repositories.primary.passwordFile", "should match"],
        },
        Case {
            what: "missing information class",
            object: backup_with("/media", json!({"label": "x"})),
            expect: &["spec.media.informationClass", "Required value"],
        },
        Case {
            what: "planned window ends before it starts",
            object: change_with("/plan/window/end", json!("2026-12-17T18:00:00+09:00")),
            expect: &["spec.plan.window.end", "window end must be after its start"],
        },
        Case {
            what: "planned change without plan",
            object: obj(
                "ChangeRecord",
                "c",
                json!({"origin": "Planned", "category": "OS", "classification": "Major"}),
            ),
            expect: &["spec.plan", "a Planned change needs spec.plan"],
        },
        Case {
            what: "drift change without paths",
            object: obj(
                "ChangeRecord",
                "c",
                json!({"origin": "Drift", "category": "OS", "classification": "Major", "server": "db01"}),
            ),
            expect: &[
                "spec.paths",
                "a Drift change names spec.server and at least one entry in spec.paths",
            ],
        },
        Case {
            what: "deadline before recorded time",
            object: obj(
                "ChangeRecord",
                "c",
                with(
                    with(
                        planned_change(),
                        "/recordedAt",
                        json!("2026-11-20T10:00:00Z"),
                    ),
                    "/deadline",
                    json!("2026-11-19T10:00:00Z"),
                ),
            ),
            expect: &["spec.deadline", "must not be before spec.recordedAt"],
        },
        Case {
            what: "unknown classification",
            object: change_with("/classification", json!("Huge")),
            expect: &["spec.classification", "Unsupported value: \"Huge\""],
        },
        Case {
            what: "business hours ending before they start",
            object: calendar_with("/businessHours/end", json!("07:00")),
            expect: &[
                "spec.businessHours.end",
                "businessHours.end must be after businessHours.start",
            ],
        },
        Case {
            what: "closure with from but no to",
            object: calendar_with("/closures", json!([{"name": "ye", "from": "12-29"}])),
            expect: &["spec.closures[0]", "from needs to"],
        },
        Case {
            what: "closure both recurring and one-off",
            object: calendar_with(
                "/closures",
                json!([{"name": "ye", "from": "12-29", "to": "01-03", "startDate": "2026-05-01", "endDate": "2026-05-02"}]),
            ),
            expect: &[
                "spec.closures[0]",
                "set either from and to (recurring) or startDate and endDate (one-off)",
            ],
        },
        Case {
            what: "one-off closure ending before it starts",
            object: calendar_with(
                "/closures",
                json!([{"name": "x", "startDate": "2026-05-02", "endDate": "2026-05-01"}]),
            ),
            expect: &[
                "spec.closures[0].endDate",
                "endDate must not be before startDate",
            ],
        },
        Case {
            what: "bad month-day",
            object: calendar_with(
                "/closures",
                json!([{"name": "x", "from": "13-01", "to": "01-03"}]),
            ),
            expect: &["spec.closures[0].from", "should match"],
        },
        Case {
            what: "month-day that does not exist",
            object: calendar_with(
                "/closures",
                json!([{"name": "x", "from": "02-30", "to": "03-01"}]),
            ),
            expect: &["spec.closures[0].from", "should match"],
        },
        Case {
            what: "date that does not exist",
            object: calendar_with("/extraWorkdays", json!(["2026-04-31"])),
            expect: &["spec.extraWorkdays[0]", "should match"],
        },
        Case {
            what: "window with equal start and end",
            object: calendar_with(
                "/windows",
                json!([{"name": "w", "start": "09:00", "end": "09:00"}]),
            ),
            expect: &["spec.windows[0].end", "end must differ from its start"],
        },
        Case {
            what: "bad MAC address",
            object: server_with(
                "/hardware",
                json!({"nics": [{"name": "eth0", "mac": "52:54:00:zz:00:01"}]}),
            ),
            expect: &["spec.hardware.nics[0].mac", "should match"],
        },
        Case {
            what: "address that is not an IP",
            object: server_with(
                "/hardware",
                json!({"nics": [{"name": "eth0", "addresses": ["10.1.2.300"]}]}),
            ),
            expect: &[
                "spec.hardware.nics[0].addresses",
                "every address must be an IP address",
            ],
        },
        Case {
            what: "unknown role",
            object: server_with("/role", json!("Mail")),
            expect: &["spec.role", "Unsupported value: \"Mail\""],
        },
        Case {
            what: "upper-case host name",
            object: server_with("/hostname", json!("WEB01")),
            expect: &["spec.hostname", "should match"],
        },
        Case {
            what: "missing OS",
            object: obj("Server", "s", json!({"hostname": "web01", "role": "Web"})),
            expect: &["spec.os", "Required value"],
        },
        Case {
            what: "duplicate software entries",
            object: server_with(
                "/software",
                json!([{"name": "a", "version": "1"}, {"name": "a", "version": "2"}]),
            ),
            expect: &["spec.software[1]", "Duplicate value"],
        },
        Case {
            what: "scan only on business days",
            object: scan_with("/schedule/days", json!("BusinessDays")),
            expect: &["spec.schedule", "scans must run at least daily"],
        },
        Case {
            what: "weekly scan cron",
            object: scan_with("/schedule", json!({"calendar": "ops", "cron": "0 3 * * 1"})),
            expect: &["spec.schedule", "scans must run at least daily"],
        },
        Case {
            what: "quarantine without a directory",
            object: scan_with("/quarantineDir", Value::Null),
            expect: &[
                "spec.quarantineDir",
                "the Quarantine action needs quarantineDir",
            ],
        },
        Case {
            what: "a drive path for ClamAV",
            object: scan_with("/paths", json!(["C:\\Users"])),
            expect: &["spec.paths", "a drive path (C:"],
        },
        Case {
            what: "a Linux path for Defender",
            object: defender_with("/paths", json!(["/srv"])),
            expect: &["spec.paths", "/… for ClamAV"],
        },
        Case {
            what: "a quarantine directory for Defender",
            object: defender_with("/quarantineDir", json!("/var/lib/unyo/quarantine")),
            expect: &["spec.engine", "quarantines into its own store"],
        },
        Case {
            what: "a signature mirror for Defender",
            object: defender_with("/signatures/mirrorUrl", json!("https://ops01/clamav")),
            expect: &["spec.engine", "from the host's configured sources"],
        },
        Case {
            what: "Delete by Defender",
            object: defender_with("/actions", json!(["Delete", "Notify"])),
            expect: &["spec.engine", "actions only Quarantine and Notify"],
        },
        Case {
            what: "delete before quarantine",
            object: scan_with("/actions", json!(["Delete", "Quarantine"])),
            expect: &["spec.actions", "Quarantine and Rename must come before it"],
        },
        Case {
            what: "install without a window",
            object: obj("PatchBaseline", "p", json!({"operation": "Install"})),
            expect: &[
                "spec.maintenanceWindow",
                "operation Install needs a maintenanceWindow",
            ],
        },
        Case {
            what: "patch approved and rejected",
            object: obj(
                "PatchBaseline",
                "p",
                json!({"approvedPatches": ["openssl"], "rejectedPatches": ["openssl"]}),
            ),
            expect: &[
                "spec.rejectedPatches",
                "a patch cannot be both approved and rejected",
            ],
        },
        Case {
            what: "soak that is not a duration",
            object: obj(
                "PatchBaseline",
                "p",
                json!({"promotion": {"stagingBaseline": "staging", "soak": "7 days"}}),
            ),
            expect: &["spec.promotion.soak", "should match"],
        },
        Case {
            what: "approval delay over a year",
            object: obj(
                "PatchBaseline",
                "p",
                json!({"approvalRules": [{"classification": "Security", "approveAfterDays": 400}]}),
            ),
            expect: &[
                "spec.approvalRules[0].approveAfterDays",
                "should be less than or equal to 365",
            ],
        },
        Case {
            what: "monitoring incident without fingerprint",
            object: obj(
                "Incident",
                "i",
                json!({"type": "Monitoring", "title": "cpu", "severity": "Critical"}),
            ),
            expect: &[
                "spec.fingerprint",
                "a Monitoring incident needs spec.fingerprint",
            ],
        },
        Case {
            what: "unknown incident state",
            object: obj(
                "Incident",
                "i",
                json!({"type": "Inquiry", "title": "q", "severity": "Info", "state": "Parked"}),
            ),
            expect: &["spec.state", "Unsupported value: \"Parked\""],
        },
    ]
}

#[tokio::test]
async fn every_validation_rule_rejects_bad_input_naming_field_and_reason() -> Result<()> {
    let cp = control_plane()?;
    let ns = cp.namespace("validation").await?;
    let mut failures = Vec::new();
    for case in cases() {
        let mut object = case.object.clone();
        object["metadata"]["namespace"] = json!(ns);
        let out = cp.kubectl_err(
            &["create", "--dry-run=server", "-f", "-"],
            Some(&object.to_string()),
        )?;
        let missing: Vec<_> = case.expect.iter().filter(|e| !out.contains(**e)).collect();
        if !missing.is_empty() {
            failures.push(format!("{}: error lacks {missing:?}:\n{out}", case.what));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

/// The valid bases of the table above are accepted, so each rejection is caused by its breakage.
#[tokio::test]
async fn valid_bases_of_the_rejection_cases_are_accepted() -> Result<()> {
    let cp = control_plane()?;
    let ns = cp.namespace("bases").await?;
    for (i, mut object) in [
        obj("BackupPlan", "bp", backup_spec()),
        obj("VirusScanSchedule", "v", scan_spec()),
        defender_with("/residentCheck", json!(true)),
        policy(json!({"name": "cpu", "kind": "Cpu", "warning": 80, "critical": 90, "for": "5m"})),
        obj("ChangeRecord", "c", planned_change()),
        obj("OperationCalendar", "o", calendar_spec()),
        obj("Server", "s", server_spec()),
        obj("PatchBaseline", "p", json!({"promotion": {"stagingBaseline": "staging"}})),
        obj("Incident", "i", json!({"type": "Monitoring", "fingerprint": "f", "title": "cpu", "severity": "Critical"})),
    ]
    .into_iter()
    .enumerate()
    {
        object["metadata"]["namespace"] = json!(ns);
        let out = cp.kubectl_ok(&["create", "-f", "-"], Some(&object.to_string()))?;
        ensure!(out.contains("created"), "base {i}: {out}");
    }
    Ok(())
}

#[tokio::test]
async fn immutable_fields_cannot_change() -> Result<()> {
    let cp = control_plane()?;
    let ns = cp.namespace("immutable").await?;
    let mut change = obj("ChangeRecord", "c", planned_change());
    change["metadata"]["namespace"] = json!(ns);
    cp.kubectl_ok(&["create", "-f", "-"], Some(&change.to_string()))?;
    change["spec"]["origin"] = json!("Drift");
    change["spec"]["paths"] = json!([{"path": "os.version"}]);
    let out = cp.kubectl_err(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&change.to_string()),
    )?;
    ensure!(
        out.contains("spec.origin") && out.contains("spec.origin is immutable"),
        "{out}"
    );

    let mut incident = obj(
        "Incident",
        "i",
        json!({"type": "Monitoring", "fingerprint": "a", "title": "t", "severity": "Critical"}),
    );
    incident["metadata"]["namespace"] = json!(ns);
    cp.kubectl_ok(&["create", "-f", "-"], Some(&incident.to_string()))?;
    incident["spec"]["fingerprint"] = json!("b");
    let out = cp.kubectl_err(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&incident.to_string()),
    )?;
    ensure!(out.contains("spec.fingerprint is immutable"), "{out}");
    Ok(())
}

#[tokio::test]
async fn controller_manifests_are_accepted() -> Result<()> {
    let cp = control_plane()?;
    // The namespace, identity and role for real (as the controller tests use them), then the
    // whole kustomize base as a server-side dry run.
    let base = cp.repo.join("manifests/controller");
    cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=unyo-tests",
            "-f",
            &base.join("rbac.yaml").to_string_lossy(),
        ],
        None,
    )?;
    let out = cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=unyo-tests",
            "--dry-run=server",
            "-k",
            &base.to_string_lossy(),
        ],
        None,
    )?;
    ensure!(
        out.contains("deployment.apps/unyo-controller serverside-applied (server dry run)"),
        "{out}"
    );
    ensure!(
        out.contains("clusterrole.rbac.authorization.k8s.io/unyo-controller"),
        "{out}"
    );
    Ok(())
}
