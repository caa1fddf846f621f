//! The Windows agent, cross-compiled for x86_64-pc-windows-gnu and run under Wine 8 (a fresh
//! prefix set to Windows Server 2008 R2): its facts come through Wine's real WMI provider, and
//! what Wine does not provide is reported as unknown with the reason; then, installed and started
//! as a Windows service (Wine's service control manager) as ad01 of the sample fleet, it reports
//! into the real API server and the controller opens drift for the ledger's
//! KB5044277 that the host lacks (and, the ledger being strict about patches, for Wine's one
//! hotfix KB1234567 that the ledger does not declare); its operations follow the sample
//! PatchBaselines and VirusScanSchedules (Wine's WUA answers "not implemented", Wine has no
//! Defender: both reported with the reason) and it keeps its Lease fresh. No Windows ran here:
//! see docs/agent.md.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use serde_json::Value;
use unyo_crds::server::{Server, ServerStatus};
use unyo_tests::wine::{Prefix, agent_exe};
use unyo_tests::{ControlPlane, Running, control_plane, stdout_of, workspace_binary};

/// ad01's kubeconfig from `unyo agent bootstrap`, and its state directory, in `prefix`.
fn bootstrap_ad01(cp: &ControlPlane, prefix: &Prefix) -> (std::path::PathBuf, std::path::PathBuf) {
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
    (kubeconfig, state)
}

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
    // Wine has no w32tm: the clock's sync state is unknown, with the reason.
    let unknown: Vec<&str> = f["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["fact"].as_str().unwrap())
        .collect();
    assert_eq!(unknown, ["timeSync.synchronized"]);
    let why = f["unknown"][0]["reason"].as_str().unwrap();
    assert!(why.starts_with("w32tm.exe: "), "{why}");
    assert!(f["timeSync"].get("synchronized").is_none());
    // Wine's Plug and Play entities include no USB device: listed, and empty.
    assert_eq!(f["devices"], serde_json::json!([]));
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
    cp.apply_samples(&[
        "namespace.yaml",
        "servers/ad01.yaml",
        "calendar.yaml",
        "patch-baselines.yaml",
        "virusscan.yaml",
        "virusscan-windows.yaml",
    ])
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
    let (kubeconfig, state) = bootstrap_ad01(cp, &prefix);
    // The host lets Defender quarantine what it finds (the sample schedule's action).
    let policy = prefix.dir.join("agent.yaml");
    std::fs::write(&policy, "antivirus:\n  actions: [Quarantine]\n").unwrap();
    // Installed and started as a Windows service, as docs/agent.md says.
    let mut install = prefix.command(&exe);
    install
        .args(["service", "install", "--server", "ad01", "-n", "mie"])
        .args(["--heartbeat", "5s", "--facts-interval", "10s"])
        .arg("--kubeconfig")
        .arg(Prefix::windows_path(&kubeconfig))
        .arg("--state-dir")
        .arg(Prefix::windows_path(&state))
        .arg("--host-policy")
        .arg(Prefix::windows_path(&policy));
    assert!(
        stdout_of(&mut install)
            .unwrap()
            .contains("installed the service unyo-agent")
    );
    let log = || std::fs::read_to_string(state.join("unyo-agent.log")).unwrap_or_default();
    // Under Wine a service process lives only as long as the process that started it (a Wine
    // artefact: on Windows a service is independent of who started it), so `net start` runs
    // in a command shell that stays until the test ends.
    let mut starter = prefix.command("cmd");
    starter.args(["/c", "net start unyo-agent & ping -n 3600 127.0.0.1 >NUL"]);
    let starter = Running::spawn(starter, "net-start-ad01").unwrap();
    let begun = Instant::now();
    let said = loop {
        let said = starter.log();
        if said.contains("started successfully") || said.contains("already running") {
            break said;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(60),
            "{said}\nlog:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Wine's service control manager starts automatic services as soon as it runs, so the
    // service may be running before `net start` asks.
    assert!(!said.contains("error"), "{said}");
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
    operations_under_wine(cp, &servers, &log).await;
    // The service keeps its Lease fresh (5 s beats) all along.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cp.client().await.unwrap(), "mie");
    let renewed = leases
        .get("unyo-agent-ad01")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time;
    let age = jiff::Timestamp::now().duration_since(renewed.unwrap().0);
    assert!(
        age < jiff::SignedDuration::from_secs(15),
        "last renewal {age:?} ago\n{}",
        log()
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

/// The Server's status once `done` holds for it, within a minute.
async fn status_when(
    servers: &Api<Server>,
    what: &str,
    log: &dyn Fn() -> String,
    done: impl Fn(&ServerStatus) -> bool,
) -> ServerStatus {
    let start = Instant::now();
    loop {
        let st = servers
            .get("ad01")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if done(&st) {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not after a minute\nstatus: {}\nagent:\n{}",
            serde_json::to_string(&st.operations).unwrap(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The Windows operations follow their custom resources under Wine (the agent run as a service): the production
/// PatchBaseline's scan goes to the Windows Update Agent, which Wine does not implement (the
/// scan fails with WUA's error, nothing is installed); the Defender schedule runs on request and
/// fails for want of MpCmdRun.exe, its status unread (Wine has no Defender). The ClamAV schedule
/// does not select ad01, and nothing is refused.
async fn operations_under_wine(cp: &ControlPlane, servers: &Api<Server>, log: &dyn Fn() -> String) {
    let st = status_when(servers, "a Windows Update scan", log, |st| {
        st.operations
            .as_ref()
            .is_some_and(|o| o.patch_scan.is_some())
    })
    .await;
    let ops = st.operations.unwrap();
    let scan = ops.patch_scan.unwrap();
    assert!(!scan.succeeded);
    let said = scan.message.unwrap_or_default();
    assert!(
        said.starts_with("Windows Update Agent: search:") && said.contains("0x80004001"),
        "Wine's WUA search is not implemented: {said}"
    );
    let baselines: Vec<&str> = ops.patches.iter().map(|p| p.baseline.as_str()).collect();
    assert_eq!(baselines, ["production"]);
    assert!(ops.refusals.is_empty(), "{:?}", ops.refusals);
    cp.kubectl_ok(
        &[
            "annotate",
            "server",
            "ad01",
            "-n",
            "mie",
            "unyo.dev/scan-now=wine-1",
        ],
        None,
    )
    .unwrap();
    let st = status_when(servers, "a Defender scan", log, |st| {
        st.operations
            .as_ref()
            .and_then(|o| o.antivirus.as_ref())
            .is_some_and(|a| a.last_scan.is_some())
    })
    .await;
    let av = st.operations.unwrap().antivirus.unwrap();
    let run = av.last_scan.unwrap();
    assert_eq!(run.schedule, "daily-windows");
    assert_eq!(run.result, unyo_crds::backup::RunResult::Failed);
    let said = run.message.unwrap_or_default();
    assert!(
        said.contains("MpCmdRun.exe") && said.contains(r"ROOT\Microsoft\Windows\Defender"),
        "no Defender under Wine, said with the reasons: {said}"
    );
    assert_eq!(av.engine_version, None);
    assert_eq!(av.resident_running, None, "unknown, not claimed off or on");
}
