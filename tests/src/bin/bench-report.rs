//! Building a month's report at fleet scale (hack/bench-report.sh): N Servers with their facts
//! and operations' status, N/2 Incidents and N ChangeRecords in the month, a PatchBaseline and a
//! BackupPlan, all created through the API server; then the release `unyo report monthly` is
//! timed for JSON, PDF and Excel, beside the floor no report can beat: reading the same records
//! from the same API server (one LIST per kind, as the report does).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "bench";
const MONTH: &str = "2025-12";

struct Args {
    kubeconfig: PathBuf,
    unyo: PathBuf,
    servers: usize,
    out: PathBuf,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        kubeconfig: PathBuf::new(),
        unyo: PathBuf::new(),
        servers: 10,
        out: PathBuf::from("bench-report.json"),
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--kubeconfig" => a.kubeconfig = v.into(),
            "--unyo" => a.unyo = v.into(),
            "--servers" => a.servers = v.parse()?,
            "--json" => a.out = v.into(),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

/// A whole document: `spec` with its `status`.
fn whole(mut spec: Value, status: Value) -> Value {
    spec["status"] = status;
    spec
}

/// A Server with a ledger, 300 observed packages and the operations' status of a busy host.
fn server(i: usize) -> Value {
    let name = format!("srv{i:04}");
    let spec = json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Server", "metadata": {"name": name},
        "spec": {"hostname": name, "role": "AP", "environment": "Production", "os": {"name": "Debian GNU/Linux", "version": "12"},
                 "hardware": {"vendor": "Fujitsu", "model": "PRIMERGY", "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "addresses": ["10.0.0.1/24"]}]},
                 "software": (0..20).map(|k| json!({"name": format!("pkg{k}"), "version": "1.0"})).collect::<Vec<_>>()}});
    let packages: Vec<Value> = (0..300)
        .map(|k| json!({"name": format!("pkg{k}"), "version": "1.0-1"}))
        .collect();
    let status = json!({
        "observed": {"hostname": name, "packages": packages},
        "drift": [{"path": "software[name=pkg1].version", "expected": "1.0", "observed": "1.1", "since": "2025-12-10T00:00:00Z"}],
        "operations": {
            "backups": [{"plan": "daily", "generations": 5,
                "lastFull": {"rule": "full", "type": "Full", "result": "Succeeded", "startedAt": "2025-12-06T10:00:00Z"},
                "lastDifferential": {"rule": "diff", "type": "Differential", "result": if i.is_multiple_of(50) { "Failed" } else { "Succeeded" }, "startedAt": "2025-12-30T10:00:00Z"},
                "lastVerification": {"at": "2025-12-06T11:00:00Z", "result": "Succeeded"}, "offsiteCopyAt": "2025-12-30T12:00:00Z"}],
            "antivirus": {"signatureVersion": "27480", "signatureTime": "2025-12-30T00:00:00Z",
                "lastScan": {"schedule": "daily", "startedAt": "2025-12-30T17:00:00Z", "filesScanned": 120000, "detections": 0, "result": "Succeeded"}},
            "patches": [{"baseline": "production", "counts": {"installed": 3, "installedPendingReboot": 0, "missing": 1, "rejected": 0, "notApplicable": 0, "failed": 0},
                "patches": [{"package": "openssl", "version": "3.0.17", "state": "Installed", "installedAt": "2025-12-12T01:00:00Z"}]}]
        }
    });
    whole(spec, status)
}

fn incident(i: usize) -> Value {
    let day = 1 + i % 28;
    let spec = json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Incident", "metadata": {"name": format!("inc{i:05}")},
        "spec": {"type": "Monitoring", "fingerprint": format!("fp{i}"), "title": format!("srv{:04} http check", i * 2),
                 "severity": if i.is_multiple_of(3) { "Critical" } else { "Warning" }, "servers": [format!("srv{:04}", i * 2)],
                 "occurredAt": format!("2025-12-{day:02}T01:00:00Z"), "state": "Resolved", "cause": "ワーカー枯渇",
                 "actions": ["再起動した"], "prevention": "監視を追加する"}});
    let status =
        json!({"phase": "Recovered", "recoveredAt": format!("2025-12-{day:02}T02:30:00Z")});
    whole(spec, status)
}

fn change(i: usize) -> Value {
    let day = 1 + i % 28;
    let spec = json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "ChangeRecord", "metadata": {"name": format!("chg{i:05}")},
        "spec": {"origin": "Drift", "category": "Software", "classification": "Minor", "server": format!("srv{i:04}"),
                 "paths": [{"path": "software[name=pkg1].version"}], "recordedAt": format!("2025-12-{day:02}T00:00:00Z")}});
    let status = json!({"phase": "Resolved", "resolution": "LedgerUpdated", "resolvedAt": format!("2025-12-{day:02}T06:00:00Z")});
    whole(spec, status)
}

/// Creates the objects (whole documents, status included), 16 at a time.
async fn create(client: &kube::Client, objects: Vec<Value>) -> Result<()> {
    futures::stream::iter(objects)
        .map(|doc| unyo_tests::create_with_status(client, NS, "bench", doc))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Seconds to read every kind the report reads, one LIST each, all at once and typed, as the
/// report reads them (the floor); the best of three, as the report runs on a warm API server.
async fn list_floor(client: &kube::Client) -> Result<f64> {
    use unyo_crds::*;
    async fn list<K>(client: &kube::Client) -> Result<usize>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Ok(Api::<K>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await?
            .items
            .len())
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        tokio::try_join!(
            list::<Server>(client),
            list::<Incident>(client),
            list::<ChangeRecord>(client),
            list::<PatchBaseline>(client),
            list::<BackupPlan>(client),
            list::<VirusScanSchedule>(client),
            list::<MonitoringPolicy>(client),
            list::<OperationCalendar>(client),
        )?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds `unyo report monthly` takes for `format`, and the file's size.
fn report(a: &Args, format: &str, dir: &std::path::Path) -> Result<(f64, u64, PathBuf)> {
    let out = dir.join(format!("monthly.{format}"));
    let t = Instant::now();
    let st = Command::new(&a.unyo)
        .args([
            "report",
            "monthly",
            "-n",
            NS,
            "--month",
            MONTH,
            "--format",
            format,
            "--now",
            "2026-01-05T09:00:00+09:00",
            "--out",
        ])
        .arg(&out)
        .env("KUBECONFIG", &a.kubeconfig)
        .status()?;
    if !st.success() {
        bail!("unyo report monthly --format {format} failed");
    }
    Ok((
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&out)?.len(),
        out,
    ))
}

/// Seconds to lay out, as PDF, the operating statistics of `n` servers (every measurement with a
/// daily chart, as a month read from Prometheus gives them) — in process, since the command
/// line takes them from Prometheus only — and the pages it gives.
fn statistics_pdf(n: usize, dir: &std::path::Path) -> Result<(f64, u64)> {
    use unyo_report::stats::{MEASUREMENTS, Measurement, ServerStatistics, Statistics};
    let servers = (0..n)
        .map(|i| ServerStatistics {
            server: format!("srv{i:04}"),
            measurements: MEASUREMENTS
                .iter()
                .map(|q| Measurement {
                    key: q.key.to_string(),
                    samples: 744,
                    average: 31.5,
                    p95: 72.0,
                    maximum: 93.25,
                    series: (0..31)
                        .map(|d| Some(f64::from((d * 7 + i as u32) % 90)))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let inputs = unyo_report::monthly::Inputs {
        namespace: NS.into(),
        statistics: Statistics {
            source: Some("http://prometheus:9090".into()),
            step_seconds: 3600,
            errors: vec![],
            servers,
        },
        ..Default::default()
    };
    let t = Instant::now();
    let report = unyo_report::monthly::build(&inputs, MONTH, "2026-01-05T00:00:00Z".parse()?)?;
    let doc = unyo_report::monthly::document(&report, unyo_report::Lang::Ja);
    let pdf = unyo_report::render::render(&doc, unyo_report::render::Format::Pdf, &[])?;
    let secs = t.elapsed().as_secs_f64();
    let path = dir.join("statistics.pdf");
    std::fs::write(&path, pdf)?;
    Ok((secs, pages(&path)))
}

fn pages(pdf: &std::path::Path) -> u64 {
    Command::new("pdfinfo")
        .arg(pdf)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pages:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let client = unyo_crds::client::connect(Some(&a.kubeconfig)).await?;
    let calendar =
        std::fs::read_to_string(unyo_tests::repo_root().join("tests/fixtures/report/month.yaml"))?;
    let first: Value = serde_saphyr::from_multiple::<Value>(&calendar)?
        .into_iter()
        .next()
        .context("fixture")?;
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
    )
    .await?;
    unyo_tests::create_with_status(&client, NS, "bench", first).await?;
    let t = Instant::now();
    create(&client, (0..a.servers).map(server).collect()).await?;
    create(&client, (0..a.servers / 2).map(incident).collect()).await?;
    create(&client, (0..a.servers).map(change).collect()).await?;
    let setup = t.elapsed().as_secs_f64();
    eprintln!(
        "bench-report: {} Servers, {} Incidents, {} ChangeRecords in {setup:.1}s",
        a.servers,
        a.servers / 2,
        a.servers
    );
    let floor = list_floor(&client).await?;
    let dir = std::env::temp_dir().join(format!("unyo-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (json_s, json_b, _) = report(&a, "json", &dir)?;
    let (pdf_s, pdf_b, pdf) = report(&a, "pdf", &dir)?;
    let (xlsx_s, xlsx_b, _) = report(&a, "xlsx", &dir)?;
    let (stats_s, stats_pages) = statistics_pdf(a.servers, &dir)?;
    let row = json!({"servers": a.servers, "statistics_pdf_secs": stats_s, "statistics_pdf_pages": stats_pages, "setup_secs": setup, "list_floor_secs": floor,
        "json_secs": json_s, "json_bytes": json_b, "pdf_secs": pdf_s, "pdf_bytes": pdf_b, "pdf_pages": pages(&pdf),
        "xlsx_secs": xlsx_s, "xlsx_bytes": xlsx_b});
    std::fs::write(&a.out, serde_json::to_vec_pretty(&row)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
