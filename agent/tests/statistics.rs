//! The operating statistics of spec 4.1(4) end to end: a real agent exposes its host's
//! measurements, a real Prometheus scrapes it for two minutes while the host serves web
//! requests (lines appended to an access log) and burns some CPU, and the report's range queries
//! over that window give the figures the host had.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{free_port, prepare};
use unyo_tests::control_plane;
use unyo_tests::prometheus::Prometheus;

/// How long Prometheus scrapes, and how often.
const WINDOW: Duration = Duration::from_secs(120);
const SCRAPE: Duration = Duration::from_secs(2);
/// Requests written to the access log per second.
const REQUESTS_PER_SECOND: u64 = 10;

fn mem_usage_percent_now() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    100.0 * (1.0 - kb("MemAvailable:") / kb("MemTotal:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_a_real_agent_and_the_report_reads_the_window() {
    let cp = control_plane().unwrap();
    cp.install_crds().unwrap();
    let h = prepare(cp, "stats", "{}\n").await;
    // The kernel's own counters: this host's /proc and /sys stand beneath the agent's root.
    for d in ["proc", "sys"] {
        std::fs::remove_dir_all(h.root.join(d)).unwrap();
        std::os::unix::fs::symlink(format!("/{d}"), h.root.join(d)).unwrap();
    }
    let log = h.work.join("access.log");
    std::fs::write(&log, "before the agent\n").unwrap();
    let port = free_port();
    let _agent = h.spawn_with(&[
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")], SCRAPE).unwrap();

    let from = jiff::Timestamp::now();
    let started = Instant::now();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut written = 0u64;
    while started.elapsed() < WINDOW {
        let due = (started.elapsed().as_secs_f64() * REQUESTS_PER_SECOND as f64) as u64;
        while written < due {
            writeln!(f, "127.0.0.1 - - \"GET /kyufu/{written} HTTP/1.1\" 200 512").unwrap();
            written += 1;
        }
        // Some CPU work in the second half of the window.
        if started.elapsed() > WINDOW / 2 {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_millis(150) {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            std::hint::black_box(x);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to = jiff::Timestamp::now();
    let mem_now = mem_usage_percent_now();

    let stats = unyo_cli::report::statistics(&prom.url, &h.ns, from, to, 4)
        .await
        .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let db01 = stats
        .servers
        .iter()
        .find(|s| s.server == "db01")
        .unwrap_or_else(|| panic!("no db01 in {stats:#?}"));
    let m = |key: &str| {
        db01.measurements
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("no {key} in {db01:#?}"))
    };
    eprintln!("step {} s; {db01:#?}", stats.step_seconds);

    let cpu = m("cpu_usage");
    assert!(
        cpu.samples >= 10
            && cpu.maximum > 0.0
            && cpu.maximum <= 100.0
            && cpu.average <= cpu.p95
            && cpu.p95 <= cpu.maximum,
        "{cpu:?}"
    );
    let mem = m("memory_usage");
    assert!(
        (mem.average - mem_now).abs() < 10.0,
        "memory {mem:?}, /proc/meminfo now {mem_now:.1}"
    );
    let disk = m("disk_usage");
    assert!(disk.maximum > 0.0 && disk.maximum <= 100.0, "{disk:?}");
    // 10 requests a second were written; the rate over the window says so (the first and last
    // points see a partial rate window).
    let web = m("web_requests");
    assert!(
        (web.p95 - REQUESTS_PER_SECOND as f64).abs() <= 2.0,
        "{web:?}"
    );
    assert!(web.series.iter().flatten().count() >= 3, "{web:?}");

    // The command line's monthly report carries the same section, read from the same Prometheus.
    let month = from
        .to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap())
        .strftime("%Y-%m")
        .to_string();
    let out = unyo_tests::stdout_of(
        std::process::Command::new(unyo_tests::workspace_binary("unyo-cli", "unyo").unwrap())
            .args([
                "report",
                "monthly",
                "-n",
                &h.ns,
                "--month",
                &month,
                "--format",
                "json",
                "--prometheus",
                &prom.url,
            ])
            .env("KUBECONFIG", &cp.kubeconfig),
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let servers = report["statistics"]["servers"].as_array().unwrap();
    assert!(
        servers.iter().any(|s| s["server"] == "db01"
            && s["measurements"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["key"] == "web_requests")),
        "{report:#}"
    );
}

/// The metric names an expression reads (`unyo_…`, without a histogram's `_bucket`).
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("unyo_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].trim_end_matches("_bucket").to_string());
        rest = &tail[end..];
    }
    out
}

/// The families a scrape describes (`# TYPE` lines; counters also by their `_total` samples).
fn families(scrape: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split_whitespace();
            let (name, kind) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            let counter = kind == "counter" && !name.ends_with("_total");
            out.insert(if counter {
                format!("{name}_total")
            } else {
                name.to_string()
            });
        }
    }
    out
}

fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    let bin = unyo_tests::prometheus::bin_dir().unwrap().join("promtool");
    let out = unyo_tests::output_with_stdin(
        std::process::Command::new(bin).args(args),
        stdin.unwrap_or("").as_bytes(),
    )
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The alert rules and the Grafana dashboard (manifests/observability) read only documented
/// metrics, and every family the real controller and agent expose is documented; promtool
/// accepts the rules and both scrapes; a real Prometheus scraping both evaluates every rule
/// without an error.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_dashboard_read_what_the_controller_and_agent_expose() {
    let cp = control_plane().unwrap();
    cp.install_crds().unwrap();
    let h = prepare(cp, "observe", "{}\n").await;
    let log = h.work.join("access.log");
    std::fs::write(&log, "").unwrap();
    let (agent_port, ctl_port) = (free_port(), free_port());
    let _agent = h.spawn_with(&[
        "--metrics-addr",
        &format!("127.0.0.1:{agent_port}"),
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let mut ctl = std::process::Command::new(
        unyo_tests::workspace_binary("unyo-controller", "unyo-controller").unwrap(),
    );
    ctl.arg("--kubeconfig").arg(&cp.kubeconfig).args([
        "-n",
        &h.ns,
        "--metrics-addr",
        &format!("127.0.0.1:{ctl_port}"),
    ]);
    let _controller = unyo_tests::Running::spawn(ctl, &format!("controller-{}", h.ns)).unwrap();
    let dir = unyo_tests::repo_root().join("manifests/observability");
    let rules = dir.join("alerts.yaml");
    let out = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(out.contains("SUCCESS: 14 rules found"), "{out}");
    let prom = Prometheus::start_with_rules(
        &[
            format!("127.0.0.1:{agent_port}"),
            format!("127.0.0.1:{ctl_port}"),
        ],
        SCRAPE,
        Some(&rules),
    )
    .unwrap();

    // Scrapes, once the controller's stores hold the namespace (its calendar's report gauges).
    let scrape = |port: u16| {
        unyo_tests::stdout_of(
            std::process::Command::new("curl")
                .args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")]),
        )
        .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (agent, controller) = loop {
        let (a, c) = (scrape(agent_port), scrape(ctl_port));
        if a.contains("unyo_host_cpu_seconds")
            && c.contains("unyo_controller_monthly_report_written{")
            && c.contains("AgentConnected")
        {
            break (a, c);
        }
        assert!(Instant::now() < deadline, "metrics incomplete:\n{a}\n{c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (who, text) in [("agent", &agent), ("controller", &controller)] {
        let lint = promtool(&["check", "metrics"], Some(text));
        eprintln!(
            "promtool check metrics ({who}): {}",
            if lint.trim().is_empty() {
                "no problems"
            } else {
                lint.trim()
            }
        );
    }

    // Every family a scrape has is documented, and every metric the rules and the dashboard
    // read is documented (families with no series yet, such as errors, are absent from a
    // scrape; docs/agent.md and docs/controller.md list them all).
    let documented: std::collections::BTreeSet<String> = ["docs/agent.md", "docs/controller.md"]
        .iter()
        .flat_map(|d| names_in(&std::fs::read_to_string(unyo_tests::repo_root().join(d)).unwrap()))
        .collect();
    let exposed: std::collections::BTreeSet<String> = families(&agent)
        .union(&families(&controller))
        .cloned()
        .collect();
    let undocumented: Vec<&String> = exposed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "exposed but not in the docs: {undocumented:?}"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap())
            .unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let rules_doc: serde_json::Value = serde_saphyr::from_str(&rules_text).unwrap();
    for g in rules_doc["groups"].as_array().unwrap() {
        exprs.extend(
            g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["expr"].as_str().unwrap().to_string()),
        );
    }
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    for e in &exprs {
        for name in names_in(e) {
            assert!(
                documented.contains(&name),
                "{name} (in {e}) is neither exposed nor documented"
            );
        }
    }

    // The real Prometheus evaluates every rule without an error.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = unyo_tests::stdout_of(
            std::process::Command::new("curl")
                .args(["-fsS", &format!("{}/api/v1/rules", prom.url)]),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rules: Vec<&serde_json::Value> = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        if rules.len() == 14 && evaluated {
            for r in &rules {
                assert_eq!(r["health"], "ok", "{r:#}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
