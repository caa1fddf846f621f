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
