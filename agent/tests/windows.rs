//! The Windows agent, cross-compiled for x86_64-pc-windows-gnu and run under Wine 8 (a fresh
//! prefix set to Windows Server 2008 R2): its facts come through Wine's real WMI provider, and
//! what Wine does not provide is reported as unknown with the reason; then, installed and started
//! as a Windows service (Wine's service control manager) as ad01 of the sample fleet, it reports
//! into the real API server and the controller opens drift for the ledger's
//! KB5044277 that the host lacks (and, the ledger being strict about patches, for Wine's one
//! hotfix KB1234567 that the ledger does not declare). No Windows ran here: see docs/agent.md.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use serde_json::Value;
use unyo_crds::server::Server;
use unyo_tests::wine::{Prefix, agent_exe};
use unyo_tests::{Running, control_plane, stdout_of, workspace_binary};

/// Installs "software" the way an installer registers it: an Uninstall key.
fn register(prefix: &Prefix, key: &str, name: &str, version: &str) {
    let path = format!(r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\{key}");
    for (value, data) in [("DisplayName", name), ("DisplayVersion", version)] {
        stdout_of(
            prefix
                .command("reg")
                .args(["add", &path, "/v", value, "/d", data, "/f"]),
        )
        .unwrap();
    }
}

#[test]
fn facts_under_wine_come_from_wmi() {
    let exe = agent_exe().unwrap();
    let prefix = Prefix::new("facts").unwrap();
    register(&prefix, "7-Zip", "7-Zip 23.01 (x64)", "23.01");
    let out = stdout_of(
        prefix
            .command(&exe)
            .arg("--print-facts")
            .env("TZ", "Asia/Tokyo"),
    )
    .unwrap();
    let f: Value = serde_json::from_str(&out).unwrap();
    let os = &f["os"];
    assert_eq!(os["id"], "windows");
    assert!(
        os["name"]
            .as_str()
            .unwrap()
            .contains("Windows Server 2008 R2"),
        "{os}"
    );
    assert_eq!(os["architecture"], "x86_64");
    assert!(f["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(f["cpu"]["cores"].as_u64().unwrap() >= 1);
    assert!(f["cpu"]["threads"].as_u64().unwrap() >= f["cpu"]["cores"].as_u64().unwrap());
    // Wine reports this machine's memory and network interfaces.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let reported = f["memoryBytes"].as_u64().unwrap();
    assert!(
        reported.abs_diff(kib * 1024) < kib * 1024 / 20,
        "{reported} vs {kib} KiB"
    );
    let nics = f["nics"].as_array().unwrap();
    assert!(
        nics.iter()
            .any(|n| n["mac"].as_str().is_some_and(|m| m.len() == 17)),
        "{nics:?}"
    );
    assert!(f["disks"].as_array().is_some_and(|d| !d.is_empty()));
    let has = |list: &str, key: &str, value: &str| {
        f[list]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v[key] == value))
    };
    assert!(has("filesystems", "mountPoint", "C:"));
    assert!(has("services", "name", "RpcSs"));
    assert_eq!(f["patches"][0]["id"], "KB1234567", "Wine's one hotfix");
    // What this agent does not read on Windows yet, with the reason.
    let unknown: Vec<&str> = f["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["fact"].as_str().unwrap())
        .collect();
    assert_eq!(unknown, ["devices", "timeSync.synchronized"]);
    assert!(
        f["unknown"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("w32tm")
    );
    // Installed software from the registry, the zone by its IANA name.
    assert_eq!(
        f["packages"],
        serde_json::json!([{"name": "7-Zip 23.01 (x64)", "version": "23.01"}])
    );
    assert_eq!(f["timeSync"]["timeZone"], "Asia/Tokyo");
}

#[tokio::test(flavor = "multi_thread")]
async fn ad01_under_wine_reports_and_a_missing_kb_is_drift() {
    let cp = control_plane().unwrap();
    cp.apply_samples(&["namespace.yaml", "servers/ad01.yaml"])
        .unwrap();
    let exe = agent_exe().unwrap();
    let prefix = Prefix::new("ad01").unwrap();
    // The role the ledger declares, registered as Windows registers it.
    register(
        &prefix,
        "ADDS",
        "Active Directory Domain Services",
        "10.0.17763",
    );
    let kubeconfig = prefix.dir.join("ad01.kubeconfig");
    let unyo = workspace_binary("unyo-cli", "unyo").unwrap();
    stdout_of(
        Command::new(unyo)
            .args(["agent", "bootstrap", "ad01", "-n", "mie", "--out"])
            .arg(&kubeconfig)
            .env("KUBECONFIG", &cp.kubeconfig),
    )
    .unwrap();
    let state = prefix.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Installed and started as a Windows service, as docs/agent.md says.
    let mut install = prefix.command(&exe);
    install
        .args(["service", "install", "--server", "ad01", "-n", "mie"])
        .args(["--heartbeat", "5s", "--facts-interval", "10s"])
        .arg("--kubeconfig")
        .arg(Prefix::windows_path(&kubeconfig))
        .arg("--state-dir")
        .arg(Prefix::windows_path(&state));
    assert!(
        stdout_of(&mut install)
            .unwrap()
            .contains("installed the service unyo-agent")
    );
    let log = || std::fs::read_to_string(state.join("unyo-agent.log")).unwrap_or_default();
    let started = prefix
        .command("net")
        .args(["start", "unyo-agent"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&started.stdout);
    // Wine's service control manager starts automatic services as soon as it runs, so the
    // service may be running before `net start` asks.
    assert!(
        said.contains("started successfully") || said.contains("already running"),
        "{said}\nlog:\n{}",
        log()
    );
    let controller = workspace_binary("unyo-controller", "unyo-controller").unwrap();
    let mut ctl = Command::new(controller);
    ctl.arg("--kubeconfig")
        .arg(cp.controller_kubeconfig().await.unwrap())
        .args(["-n", "mie"]);
    let _ctl = Running::spawn(ctl, "controller-ad01").unwrap();

    let servers: Api<Server> = Api::namespaced(cp.client().await.unwrap(), "mie");
    let start = Instant::now();
    let (drift, record) = loop {
        let s = servers.get("ad01").await.unwrap();
        let st = s.status.clone().unwrap_or_default();
        let paths: Vec<String> = st.drift.iter().map(|d| d.path.clone()).collect();
        if paths.iter().any(|p| p == "patches[id=KB5044277]")
            && let Some(record) = st.change_record
        {
            break (st.drift, record);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no KB drift on ad01 after {:?}: {paths:?}\nagent:\n{}",
            start.elapsed(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let kb = drift
        .iter()
        .find(|d| d.path == "patches[id=KB5044277]")
        .unwrap();
    assert_eq!(
        (kb.expected.as_deref(), kb.observed.as_deref()),
        (Some("KB5044277"), None)
    );
    let extra = drift
        .iter()
        .find(|d| d.path == "patches[id=KB1234567]")
        .unwrap();
    assert_eq!(extra.observed.as_deref(), Some("KB1234567"));
    assert!(
        drift.iter().any(|d| d.path == "os.name"),
        "Server 2008 R2 is not the ledger's 2019"
    );
    assert!(
        !drift.iter().any(|d| d.path.starts_with("software")),
        "the declared software is installed: {drift:?}"
    );
    assert!(record.starts_with("ad01-drift-"), "{record}");
    let s = servers.get("ad01").await.unwrap();
    let observed = s.status.unwrap().observed.unwrap();
    assert_eq!(observed.os.as_ref().unwrap().id.as_deref(), Some("windows"));
    assert!(
        observed
            .installed()
            .iter()
            .any(|p| p.name == "Active Directory Domain Services"),
        "the registered software is reported, so no software drift is a match"
    );
    let running = stdout_of(prefix.command("sc").args(["query", "unyo-agent"])).unwrap();
    assert!(running.contains("RUNNING"), "{running}");
    // Stopped through the service control protocol, then removed.
    let stopped = stdout_of(prefix.command("net").args(["stop", "unyo-agent"])).unwrap();
    assert!(stopped.contains("stopped successfully"), "{stopped}");
    assert!(log().contains("shutting down"), "{}", log());
    let removed = stdout_of(prefix.command(&exe).args(["service", "uninstall"])).unwrap();
    assert!(removed.contains("removed the service unyo-agent"));
    let query = prefix
        .command("sc")
        .args(["query", "unyo-agent"])
        .output()
        .unwrap();
    assert!(!query.status.success(), "the service is gone");
}
