//! The monthly report, incident reports and the ledger export on a fixture month
//! (tests/fixtures/report): the figures computed offline and through the real API server and
//! the `unyo` binary agree with tests/fixtures/report/expected.json; the PDF is read back with
//! pdftotext (Japanese headings and the same figures) and page 1 is kept as a PNG; the workbooks
//! are read back with openpyxl.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use unyo_crds::{ChangeRecord, Incident, OperationCalendar, Server};
use unyo_report::monthly::{self, Inputs};
use unyo_tests::{
    control_plane, create_with_status, go_tool, repo_root, stdout_of, subset_mismatch,
    workspace_binary,
};

fn fixture_docs() -> Vec<Value> {
    let text =
        std::fs::read_to_string(repo_root().join("tests/fixtures/report/month.yaml")).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

fn expected() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("tests/fixtures/report/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn of_kind<K: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> Vec<K> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect()
}

/// A time after the month, so that everything in it has happened.
fn after_the_month() -> jiff::Timestamp {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

#[test]
fn the_fixture_month_gives_the_expected_figures() {
    let docs = fixture_docs();
    let inputs = Inputs {
        namespace: "fixture".into(),
        calendar: of_kind::<OperationCalendar>(&docs, "OperationCalendar")
            .into_iter()
            .next(),
        servers: of_kind::<Server>(&docs, "Server"),
        incidents: of_kind::<Incident>(&docs, "Incident"),
        changes: of_kind::<ChangeRecord>(&docs, "ChangeRecord"),
        ..Inputs::default()
    };
    let report = monthly::build(&inputs, "2025-12", after_the_month()).unwrap();
    let got = serde_json::to_value(&report).unwrap();
    if let Some(diff) = subset_mismatch(&expected(), &got, "") {
        panic!("{diff}\n{}", serde_json::to_string_pretty(&got).unwrap());
    }
    let service = report.incidents.service.availability.unwrap();
    assert!(
        (service - (1.0 - 11700.0 / 792000.0)).abs() < 1e-12,
        "{service}"
    );
    // Without Prometheus the statistics say so, in both languages, and list nothing.
    assert!(report.statistics.source.is_none() && report.statistics.servers.is_empty());
    for lang in [unyo_report::Lang::Ja, unyo_report::Lang::En] {
        let md = unyo_report::render::markdown::render(&monthly::document(&report, lang));
        assert!(md.contains(lang.t("no_statistics")), "{md}");
    }
    // Every label of the Japanese document comes from the table (no key shows through).
    let doc = monthly::document(&report, unyo_report::Lang::Ja);
    for s in &doc.sections {
        let labels = std::iter::once(&s.heading)
            .chain(s.figures.iter().map(|f| &f.label))
            .chain(
                s.tables
                    .iter()
                    .flat_map(|t| std::iter::once(&t.title).chain(&t.columns)),
            );
        for l in labels {
            assert!(
                !l.contains('?') && !l.is_ascii() || ["OS", "CPU", "ID"].contains(&l.as_str()),
                "untranslated label {l:?}"
            );
        }
    }
}

/// Creates the fixture's objects in `ns`, each status through the status subresource, as the
/// controller and the agents write them.
async fn create_fixture(ns: &str) {
    let client = control_plane().unwrap().client().await.unwrap();
    for doc in fixture_docs() {
        create_with_status(&client, ns, "report-fixture", doc)
            .await
            .unwrap();
    }
}

fn unyo(args: &[&str]) -> String {
    let bin = workspace_binary("unyo-cli", "unyo").unwrap();
    let cp = control_plane().unwrap();
    stdout_of(
        Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &cp.kubeconfig),
    )
    .unwrap()
}

/// `unyo report monthly -n NS` with `args`.
fn monthly(ns: &str, args: &[&str]) -> String {
    unyo(&[&["report", "monthly", "-n", ns], args].concat())
}

fn pdftotext(pdf: &Path) -> String {
    stdout_of(Command::new("pdftotext").arg("-layout").arg(pdf).arg("-")).unwrap()
}

/// Runs Debian's python3 with openpyxl on a workbook: the script prints JSON.
fn openpyxl(script: &str, file: &Path) -> Value {
    let out = stdout_of(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(file),
    )
    .unwrap();
    serde_json::from_str(&out).unwrap()
}

const SHEETS_AS_JSON: &str = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
print(json.dumps({ws.title: [[c for c in row] for row in ws.iter_rows(values_only=True)] for ws in wb.worksheets}, default=str))
"#;

/// A namespace holding the fixture month, and a temporary directory for the files.
async fn fixture_namespace(prefix: &str) -> (&'static unyo_tests::ControlPlane, String, PathBuf) {
    let cp = control_plane().unwrap();
    cp.install_crds().unwrap();
    let ns = cp.namespace(prefix).await.unwrap();
    create_fixture(&ns).await;
    (cp, ns, tempdir())
}

fn artifacts() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_union_receives_the_month_as_json_pdf_and_excel() {
    let (cp, ns, tmp) = fixture_namespace("report").await;

    let json: Value = serde_json::from_str(&monthly(
        &ns,
        &[
            "--month",
            "2025-12",
            "--format",
            "json",
            "--now",
            "2026-01-05T09:00:00+09:00",
        ],
    ))
    .unwrap();
    if let Some(diff) = subset_mismatch(&expected(), &json, "") {
        panic!("{diff}\n{json:#}");
    }

    let pdf = tmp.join("monthly.pdf");
    let printed = monthly(
        &ns,
        &[
            "--month",
            "2025-12",
            "--format",
            "pdf",
            "--out",
            pdf.to_str().unwrap(),
            "--record",
        ],
    );
    assert_eq!(printed.trim(), pdf.display().to_string());
    let text = pdftotext(&pdf);
    for heading in [
        "運用・保守管理業務報告書(月次)",
        "監視状況",
        "インシデント管理・障害窓口運用状況",
        "問題管理状況",
        "変更管理状況",
        "パッチ適用状況",
        "バックアップ状況",
        "ウイルス対策状況",
        "稼働統計",
        "保守作業実施状況",
    ] {
        assert!(
            text.contains(heading),
            "{heading} missing from the PDF:\n{text}"
        );
    }
    // The same figures: due date, business days, MTTR 201 min, service availability 98.52 %,
    // service downtime 735 min, the problem and the detection.
    for figure in [
        "2026-01-14",
        "98.52%",
        "735",
        "201",
        "PRB-1",
        "/srv/upload/eicar.com",
    ] {
        assert!(
            text.contains(figure),
            "{figure} missing from the PDF:\n{text}"
        );
    }
    let png = artifacts().join("monthly-report-page1");
    let st = Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf)
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success());
    let png = png.with_extension("png");
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "page 1 as PNG: {}",
        png.display()
    );
    eprintln!("page 1 of the monthly report: {}", png.display());

    // The writing is recorded for the controller's metrics.
    let cm = cp
        .kubectl_ok(
            &[
                "get",
                "configmap",
                "-n",
                &ns,
                "unyo-report-monthly-2025-12",
                "-o",
                "jsonpath={.metadata.labels.unyo\\.dev/month} {.data.sha256}",
            ],
            None,
        )
        .unwrap();
    assert!(cm.starts_with("2025-12 ") && cm.len() == 8 + 64, "{cm}");

    // The CronJob's way: only on the first business day after the month (Monday 5 January
    // 2026, after the year-end closure), into a directory.
    let dir = tmp.join("reports");
    std::fs::create_dir_all(&dir).unwrap();
    let on = |now: &str| {
        let out = dir.to_str().unwrap();
        monthly(
            &ns,
            &[
                "--if-first-business-day",
                "--format",
                "pdf",
                "--out",
                out,
                "--now",
                now,
            ],
        )
    };
    let said = on("2026-01-06T07:00:00+09:00");
    assert!(
        said.contains("not the first business day after 2025-12 (2026-01-05); nothing written"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let said = on("2026-01-05T07:00:00+09:00");
    let file = dir.join(format!("monthly-{ns}-2025-12.pdf"));
    assert_eq!(said.trim(), file.display().to_string());
    assert!(pdftotext(&file).contains("2026-01-14"));
    // The CronJob of the docs is accepted by the API server as it stands (server-side dry run).
    let cronjob = std::fs::read_to_string(repo_root().join("manifests/report/cronjob.yaml"))
        .unwrap()
        .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&cronjob))
        .unwrap();

    // English from the same code.
    let en = monthly(
        &ns,
        &["--month", "2025-12", "--format", "markdown", "--lang", "en"],
    );
    assert!(
        en.contains("## 3. Incident management")
            && en.contains("**Due date (7th business day after month end)**: 2026-01-14"),
        "{en}"
    );

    let xlsx = tmp.join("monthly.xlsx");
    monthly(
        &ns,
        &[
            "--month",
            "2025-12",
            "--format",
            "xlsx",
            "--out",
            xlsx.to_str().unwrap(),
        ],
    );
    let sheets = openpyxl(SHEETS_AS_JSON, &xlsx);
    let summary = sheets["概要"].as_array().unwrap();
    let figure = |label: &str| {
        summary
            .iter()
            .find(|r| r[1] == label)
            .map(|r| r[2].clone())
            .unwrap_or_else(|| panic!("{label} not in {summary:?}"))
    };
    assert_eq!(figure("提出期限(月末から7営業日)"), "2026-01-14");
    assert_eq!(figure("発生件数"), "5");
    let per_server = sheets["稼働率(業務時間)"].as_array().unwrap();
    assert_eq!(
        per_server[3],
        serde_json::json!(["web01", 645, 165, 98.75]),
        "{per_server:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_reports_and_the_ledger_export() {
    let (_, ns, tmp) = fixture_namespace("ledger").await;

    let md = unyo(&[
        "report",
        "incident",
        "inc-web-down",
        "-n",
        &ns,
        "--format",
        "markdown",
    ]);
    for want in [
        "# インシデント報告書",
        "**停止時間(分)**: 90",
        "**影響拠点**: 本庁",
        "**原因**: Apache のワーカー枯渇",
        "MaxRequestWorkers を見直した",
        "**再発防止策**: 同時接続数の監視を追加する",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    let docx = tmp.join("incident.docx");
    unyo(&[
        "report",
        "incident",
        "inc-web-down",
        "-n",
        &ns,
        "--format",
        "docx",
        "--out",
        docx.to_str().unwrap(),
    ]);
    let xml = unzip(&docx, "word/document.xml");
    assert!(
        xml.contains("Apache のワーカー枯渇") && xml.contains("インシデント報告書"),
        "{xml}"
    );
    let pdf = tmp.join("incident.pdf");
    unyo(&[
        "report",
        "incident",
        "inc-web-down",
        "-n",
        &ns,
        "--format",
        "pdf",
        "--out",
        pdf.to_str().unwrap(),
    ]);
    assert!(pdftotext(&pdf).contains("再発防止策"));

    let a: Value = serde_json::from_str(&unyo(&[
        "report",
        "incidents",
        "-n",
        &ns,
        "--from",
        "2025-11-01",
        "--to",
        "2026-01-01",
        "--format",
        "json",
    ]))
    .unwrap();
    let want = serde_json::json!({"total": 6, "recovered": 5, "byMonth": {"2025-11": 1, "2025-12": 5}, "bySeverity": {"Critical": 4, "Warning": 1, "Info": 1}, "byCause": {"Software": 2, "none": 4}});
    assert!(subset_mismatch(&want, &a, "").is_none(), "{a:#}");

    let xlsx = tmp.join("ledger.xlsx");
    unyo(&[
        "ledger",
        "export",
        "-n",
        &ns,
        "--format",
        "xlsx",
        "--out",
        xlsx.to_str().unwrap(),
    ]);
    let sheets = openpyxl(SHEETS_AS_JSON, &xlsx);
    let servers = sheets["サーバ"].as_array().unwrap();
    assert_eq!(servers.len(), 4, "a header and 3 servers: {servers:?}");
    let web01 = servers.iter().find(|r| r[0] == "web01").unwrap();
    let header = servers[0].as_array().unwrap();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} not in {header:?}"))
    };
    assert_eq!(web01[col("ホスト名")], "web01");
    assert_eq!(web01[col("メーカー")], "Fujitsu");
    assert_eq!(web01[col("シリアル番号")], "MJ0001");
    assert_eq!(web01[col("MACアドレス")], "52:54:00:10:01:11");
    assert_eq!(web01[col("設置場所")], "津データセンター ラックA");
    assert!(
        web01[col("現在の差異")]
            .as_str()
            .unwrap()
            .contains("software[name=openssl].version: 3.0.15-1~deb12u1 → 3.0.17-1~deb12u2")
    );
    let software = sheets["ソフトウェア"].as_array().unwrap();
    let openssl = software.iter().find(|r| r[1] == "openssl").unwrap();
    assert!(
        openssl[4].as_str().unwrap().contains("3.0.17"),
        "{openssl:?}"
    );
    let apache = software.iter().find(|r| r[1] == "apache2").unwrap();
    assert!(apache[4].is_null() || apache[4] == "", "{apache:?}");
    assert_eq!(sheets["接続機器"].as_array().unwrap()[1][1], "ups1");

    let csv = unyo(&[
        "ledger", "export", "-n", &ns, "--format", "csv", "--lang", "en",
    ]);
    assert!(csv.starts_with("Servers\nServer,Hostname,Role"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("web01,web01,Web,Production")),
        "{csv}"
    );
}

fn unzip(file: &Path, member: &str) -> String {
    let script =
        "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())";
    stdout_of(
        Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(file)
            .arg(member),
    )
    .unwrap()
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "unyo-report-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Installs `kubectl unyo` as users do: the archive and manifest of hack/krew.sh, checked by
/// krew's validate-krew-manifest and installed by the real krew (built from its Go module) into
/// a KREW_ROOT of the test's own; the directory of the installed plugin.
fn krew_install(tmp: &Path) -> PathBuf {
    let unyo = workspace_binary("unyo-cli", "unyo").unwrap();
    let out = tmp.join("krew-out");
    let manifest = stdout_of(
        Command::new(repo_root().join("hack/krew.sh"))
            .arg("--out")
            .arg(&out)
            .env("UNYO_BINARIES", unyo.parent().unwrap()),
    )
    .unwrap();
    let manifest = manifest.trim();
    let validate = go_tool(
        "krew",
        "sigs.k8s.io/krew/cmd/validate-krew-manifest",
        Some("validate-krew-manifest"),
    )
    .unwrap();
    stdout_of(Command::new(validate).args(["-skip-install", "-manifest", manifest])).unwrap();
    let krew = go_tool("krew", "sigs.k8s.io/krew/cmd/krew", Some("kubectl-krew")).unwrap();
    let archive = out.join("kubectl-unyo_v0.1.0_linux_amd64.tar.gz");
    let root = tmp.join("krew-root");
    stdout_of(
        Command::new(krew)
            .arg("install")
            .arg(format!("--manifest={manifest}"))
            .arg(format!("--archive={}", archive.display()))
            .env("KREW_ROOT", &root),
    )
    .unwrap();
    assert!(
        root.join("bin/kubectl-unyo").exists(),
        "krew linked the plugin"
    );
    let license = std::fs::read_dir(root.join("store/unyo/v0.1.0")).unwrap();
    assert!(license.flatten().any(|e| e.file_name() == "LICENSE"));
    root.join("bin")
}

/// `unyo` installed by krew as `kubectl-unyo` is kubectl's plugin: kubectl lists it, and
/// `kubectl unyo …` runs the same commands against the same API server.
#[tokio::test(flavor = "multi_thread")]
async fn unyo_is_a_kubectl_plugin() {
    let (cp, ns, tmp) = fixture_namespace("plugin").await;
    let bin = krew_install(&tmp);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        stdout_of(
            Command::new(&cp.kubectl)
                .args(args)
                .env("PATH", &path)
                .env("KUBECONFIG", &cp.kubeconfig),
        )
        .unwrap()
    };
    let list = kubectl(&["plugin", "list"]);
    assert!(list.contains("kubectl-unyo"), "{list}");
    let help = kubectl(&["unyo", "report", "--help"]);
    assert!(help.contains("Usage: kubectl unyo report"), "{help}");
    let json: Value = serde_json::from_str(&kubectl(&[
        "unyo",
        "report",
        "incidents",
        "-n",
        &ns,
        "--from",
        "2025-12-01",
        "--to",
        "2026-01-01",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["total"], 5, "{json:#}");
}
