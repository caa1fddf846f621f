//! End to end: unyo-agent with the least-privilege kubeconfig of `unyo agent bootstrap`, a
//! simulated host beneath `--root`, a real kube-apiserver reached through a TCP proxy the test
//! can cut, and real probe targets on 127.0.0.1.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use unyo_crds::Server;
use unyo_crds::server::{CheckResult, CheckState};
use unyo_tests::{Running, control_plane};

mod common;
use common::{fake_host, free_port, signatures, wait_server};

/// A TCP proxy to the API server that the test can cut and restore on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut p = Proxy {
            port,
            upstream,
            task: None,
        };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it.
    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// A port that accepts connections and answers HTTP 200, until the task is aborted.
async fn http_ok_server(port: u16) -> JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut s, _)) = listener.accept().await {
            conns.spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    })
}

/// A real NTP server on 127.0.0.1: chronyd serving its local clock, not touching the system
/// clock (-x), in the foreground (-d).
fn chronyd(dir: &Path, port: u16) -> Running {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\ncmdport 0\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\npidfile {}\n",
            dir.join("chronyd.pid").display()
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/chronyd", "/sbin/chronyd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chronyd");
    let mut cmd = Command::new(bin);
    cmd.args(["-x", "-d", "-f"]).arg(&conf);
    Running::spawn(cmd, "chronyd").expect("chronyd (Debian package chrony) is needed")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check<'a>(s: &'a Server, name: &str) -> Option<&'a CheckResult> {
    s.status.as_ref()?.checks.iter().find(|c| c.check == name)
}

async fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn agent_reports_facts_checks_heartbeat_and_survives_an_outage() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("agent").await.unwrap();
    let client = cp.client().await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let db01 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/servers/db01.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&db01))
        .unwrap();

    let work = std::env::temp_dir().join(format!("unyo-agent-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (root, state) = (work.join("root"), work.join("state"));
    fake_host(&root, "db01");

    // The API server through a proxy, so that the test can take it away.
    let url = cp.server_url().unwrap();
    let upstream = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let mut proxy = Proxy::start(upstream).await;
    let agent_kc = work.join("agent.kubeconfig");
    let proxy_url = format!("https://127.0.0.1:{}", proxy.port);
    unyo_cli::bootstrap::run(&unyo_cli::bootstrap::Bootstrap {
        server: "db01",
        namespace: &ns,
        out: &agent_kc,
        kubeconfig: Some(&cp.kubeconfig),
        server_url: Some(&proxy_url),
        token_seconds: 3600,
        rotate: false,
    })
    .await
    .unwrap();

    let (tcp_port, http_port, metrics_port) = (free_port(), free_port(), free_port());
    let (ntp_port, silent_ntp_port) = (free_udp_port(), free_udp_port());
    let ntp = chronyd(&work.join("chrony"), ntp_port);
    let mut tcp = Some(http_ok_server(tcp_port).await);
    let http = http_ok_server(http_port).await;
    let policy = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {{name: probes, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  interval: 1s
  checks:
    - {{name: port, kind: Tcp, host: 127.0.0.1, port: {tcp_port}, timeout: 1s}}
    - {{name: web, kind: Http, url: "http://127.0.0.1:{http_port}/", timeout: 2s}}
    - {{name: app-log, kind: LogPattern, path: /var/log/app.log, pattern: "FATAL|PANIC"}}
    - {{name: root-disk, kind: Disk, path: /, warning: 99.9, critical: 100}}
    - {{name: agent-process, kind: Process, process: unyo-agent}}
    - {{name: postgres, kind: Service, service: postgresql.service}}
    - {{name: clock, kind: TimeSync, host: 127.0.0.1, port: {ntp_port}, warning: 0.5, critical: 2}}
    - {{name: no-ntp, kind: TimeSync, host: 127.0.0.1, port: {silent_ntp_port}, timeout: 1s, warning: 0.5}}
    - {{name: loopback, kind: Ping, host: 127.0.0.1, timeout: 2s}}
    - {{name: cpu, kind: Cpu, warning: 99, critical: 100}}
    - {{name: memory, kind: Memory, warning: 99, critical: 100}}
    - {{name: antivirus, kind: Antivirus}}
---
apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {{name: web-only, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: web}}}}
  checks:
    - {{name: nginx, kind: Service, service: nginx.service}}
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&policy))
        .unwrap();

    // The host allows exactly what this test asks of it.
    let host_policy = work.join("agent.yaml");
    std::fs::write(
        &host_policy,
        "backup:\n  repositories: [/backup]\n  passwordFiles: [/etc/unyo]\n  sources: [/var/lib/postgresql]\n  restoreTargets: [/restore]\nantivirus:\n  actions: [Quarantine]\n  quarantineDirs: [/var/lib/unyo/quarantine]\n  signatureDirectories: [/srv/clamav]\nlogs:\n  files: [/var/log]\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-agent"));
    cmd.args(["--server", "db01", "-n", &ns, "--kubeconfig"])
        .arg(&agent_kc)
        .arg("--host-policy")
        .arg(&host_policy)
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(&state)
        .args(["--heartbeat", "1s", "--facts-interval", "1s"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("RUST_LOG", "info,unyo_agent=debug");
    let agent = Running::spawn(cmd, &format!("agent-{ns}")).unwrap();

    // Facts of the simulated host.
    let s = wait_server(&servers, "facts reported", 60, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.observed.as_ref())
            .is_some()
    })
    .await;
    let facts = s.status.unwrap().observed.unwrap();
    assert_eq!(facts.hostname.as_deref(), Some("db01"));
    let os = facts.os.unwrap();
    assert_eq!(
        (
            os.name.as_deref(),
            os.version.as_deref(),
            os.id.as_deref(),
            os.build.as_deref()
        ),
        (
            Some("Debian GNU/Linux"),
            Some("12"),
            Some("debian"),
            Some("12.7")
        )
    );
    assert_eq!(os.kernel.as_deref(), Some("6.1.0-25-amd64"));
    assert_eq!(os.architecture.as_deref(), Some("x86_64"));
    let cpu = facts.cpu.unwrap();
    assert_eq!(
        (cpu.sockets, cpu.cores, cpu.threads),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(cpu.model.as_deref(), Some("Intel(R) Xeon(R) Gold 6430"));
    assert_eq!(facts.memory_bytes, Some(16_384_000 * 1024));
    assert_eq!(facts.disks.len(), 1, "loop devices are not disks");
    assert_eq!(facts.disks[0].size_bytes, Some(1_875_385_008 * 512));
    assert_eq!(facts.disks[0].model.as_deref(), Some("PERC H755"));
    assert_eq!(facts.filesystems.len(), 1, "{:?}", facts.filesystems);
    assert!(facts.filesystems[0].size_bytes.unwrap() > 0);
    assert_eq!(facts.nics[0].mac.as_deref(), Some("52:54:00:12:34:56"));
    assert_eq!(facts.nics[0].addresses, ["fe80::5054:ff:fe12:3456/64"]);
    let pkgs: Vec<(String, String)> = facts
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(
        pkgs,
        [
            ("openssl".to_string(), "3.0.14-1~deb12u2".to_string()),
            ("postgresql-15".to_string(), "15.8-0+deb12u1".to_string())
        ]
    );
    assert_eq!(
        facts.time_sync.unwrap().time_zone.as_deref(),
        Some("Asia/Tokyo")
    );
    assert_eq!(facts.boot_time.unwrap().0.as_second(), 1_764_000_000);
    let unknown: Vec<&str> = facts.unknown.iter().map(|u| u.fact.as_str()).collect();
    assert!(unknown.contains(&"services"), "{unknown:?}");
    assert!(facts.unknown.iter().all(|u| !u.reason.is_empty()));

    // Every check of the selecting policy, none of the other.
    let s = wait_server(&servers, "all checks reported", 60, &agent, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.checks.len() == 12
                && st
                    .checks
                    .iter()
                    .find(|c| c.check == "clock")
                    .is_some_and(|c| c.state == CheckState::OK)
        })
    })
    .await;
    let state_of = |name: &str| check(&s, name).map(|c| c.state);
    assert_eq!(state_of("port"), Some(CheckState::OK));
    assert_eq!(state_of("web"), Some(CheckState::OK));
    assert_eq!(
        state_of("app-log"),
        Some(CheckState::OK),
        "history before the agent is not matched"
    );
    assert_eq!(state_of("root-disk"), Some(CheckState::OK));
    assert_eq!(state_of("agent-process"), Some(CheckState::OK));
    assert_eq!(state_of("postgres"), Some(CheckState::Unknown));
    assert!(check(&s, "nginx").is_none());
    let clock = check(&s, "clock").unwrap();
    assert!(
        clock.value.unwrap().abs() < 0.5,
        "offset from a server on the same clock: {clock:?}"
    );
    assert!(
        clock
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("NTP server 127.0.0.1:{ntp_port}"))
    );
    assert_eq!(state_of("no-ntp"), Some(CheckState::Unknown));
    assert!(
        check(&s, "no-ntp")
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("no answer")
    );
    assert_eq!(state_of("loopback"), Some(CheckState::OK));
    assert_eq!(
        state_of("antivirus"),
        Some(CheckState::Unknown),
        "no scan yet"
    );
    for usage in ["cpu", "memory"] {
        let c = check(&s, usage).unwrap();
        assert_ne!(c.state, CheckState::Unknown, "{c:?}");
        assert!((0.0..=100.0).contains(&c.value.unwrap()), "{c:?}");
    }
    assert!(
        check(&s, "postgres")
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("systemd is not running")
    );

    // The heartbeat renews the Lease; the Server is not written for it, and unchanged facts
    // are not written again.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let renew = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.clone())
            .map(|t| t.0)
    };
    // Every write of the Server in the meantime is watched: each must have had something to
    // say — a check changed state (the CPU check can, on a loaded machine) or the facts changed
    // (the coarse usage of the real filesystem beneath the simulated root can, on a busy disk);
    // the heartbeat itself never writes the Server, and unchanged facts are not written again.
    let watched = watch_writes(&servers, "db01", Duration::from_secs(3));
    let r1 = renew(&leases.get("unyo-agent-db01").await.unwrap()).unwrap();
    let writes = watched.await.unwrap();
    let lease = leases.get("unyo-agent-db01").await.unwrap();
    assert!(renew(&lease).unwrap() > r1, "the lease was not renewed");
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("db01"));
    let said = |s: &Server| {
        let st = s.status.clone().unwrap_or_default();
        let states: Vec<(String, CheckState)> = st
            .checks
            .iter()
            .map(|c| (c.check.clone(), c.state))
            .collect();
        let mut facts = st.observed.unwrap_or_default();
        facts.observed_at = None;
        facts.hash = None;
        (states, facts)
    };
    for pair in writes.windows(2) {
        assert_ne!(
            said(&pair[1]),
            said(&pair[0]),
            "the Server was written with nothing to say (resourceVersion {:?})",
            pair[1].metadata.resource_version
        );
    }

    // A changed fact is written.
    std::fs::write(root.join("etc/debian_version"), "12.8").unwrap();
    wait_server(&servers, "changed fact", 30, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.observed.as_ref())
            .and_then(|o| o.os.as_ref())
            .and_then(|o| o.build.as_deref())
            == Some("12.8")
    })
    .await;

    // A matching log line and a closed port turn their checks Critical, with Events.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("var/log/app.log"))
            .unwrap();
        writeln!(f, "2026-11-24 db FATAL: could not write block").unwrap();
    }
    if let Some(t) = tcp.take() {
        t.abort();
    }
    wait_server(&servers, "log and port Critical", 30, &agent, |s| {
        check(s, "port").is_some_and(|c| c.state == CheckState::Critical)
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let find_event = |evs: &[Event], check: &str, reason: &str| {
        evs.iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with(&format!("probes/{check}:")))
            })
            .cloned()
    };
    // The log check is Critical for one sample (the next finds no new line): wait for its Event.
    let mut evs = Vec::new();
    for _ in 0..80 {
        evs = events.list(&ListParams::default()).await.unwrap().items;
        if find_event(&evs, "app-log", "CheckCritical").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fatal = find_event(&evs, "app-log", "CheckCritical").expect("an Event for the log line");
    assert!(fatal.message.unwrap().contains("could not write block"));
    assert_eq!(fatal.type_.as_deref(), Some("Warning"));
    assert_eq!(fatal.involved_object.name.as_deref(), Some("db01"));
    assert!(fatal.involved_object.uid.is_some());
    assert!(find_event(&evs, "port", "CheckCritical").is_some());

    // Metrics of the check values and states.
    let m = http_get(metrics_port, "/metrics").await;
    assert!(
        m.contains(r#"unyo_agent_check_state{policy="probes",check="port",state="Critical"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"unyo_agent_check_value{policy="probes",check="root-disk"}"#),
        "{m}"
    );

    // A virus scan with real ClamAV, asked for now through the annotation; the signature
    // database is built at test time (an MD5 signature of a test file) in the source directory.
    let infected = root.join("srv/www/upload.php");
    std::fs::create_dir_all(infected.parent().unwrap()).unwrap();
    std::fs::write(&infected, b"<?php /* unyo test virus body */ ?>\n").unwrap();
    std::fs::create_dir_all(root.join("srv/backup")).unwrap();
    std::fs::copy(&infected, root.join("srv/backup/upload.php")).unwrap();
    signatures(&infected, &root.join("srv/clamav"), "Unyo.Test.Upload");
    let calendar = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/calendar.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&calendar))
        .unwrap();
    let vss = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {{name: daily, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  schedule: {{calendar: mie-operations, at: "12:30"}}
  paths: [/srv]
  exclusions: [/srv/backup, /srv/clamav]
  residentCheck: false
  signatures: {{maxAge: 24h, sourceDirectory: /srv/clamav}}
  actions: [Quarantine, Notify]
  quarantineDir: /var/lib/unyo/quarantine
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&vss))
        .unwrap();
    cp.kubectl_ok(
        &[
            "annotate",
            "server",
            "db01",
            "-n",
            &ns,
            "unyo.dev/scan-now=test-1",
        ],
        None,
    )
    .unwrap();
    let s = wait_server(&servers, "a scan reported", 60, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.antivirus.as_ref())
            .is_some_and(|a| a.last_scan.is_some())
    })
    .await;
    let av = s.status.unwrap().operations.unwrap().antivirus.unwrap();
    let run = av.last_scan.clone().unwrap();
    assert_eq!(format!("{:?}", run.result), "Succeeded", "{run:?}");
    assert_eq!(run.schedule, "daily");
    assert_eq!(run.detections, 1, "the excluded copy is not scanned");
    assert_eq!(av.detections.len(), 1);
    assert_eq!(av.detections[0].path, "/srv/www/upload.php");
    assert_eq!(av.detections[0].signature, "Unyo.Test.Upload.UNOFFICIAL");
    assert!(av.detections[0].actions[0].starts_with("Quarantine: "));
    assert_eq!(av.signature_version.as_deref(), Some("unyo.hdb"));
    assert!(av.signature_time.is_some());
    assert!(av.engine_version.as_deref().unwrap().starts_with("ClamAV "));
    assert!(!infected.exists(), "the infected file was not quarantined");
    assert!(root.join("srv/backup/upload.php").exists());
    let quarantined = std::fs::read_dir(root.join("var/lib/unyo/quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 2, "the file and its metadata");
    let mut detected = false;
    for _ in 0..40 {
        let evs = events.list(&ListParams::default()).await.unwrap().items;
        if evs.iter().any(|e| {
            e.reason.as_deref() == Some("VirusDetected")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("/srv/www/upload.php"))
        }) {
            detected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(detected, "no VirusDetected Event");
    // The same annotation value does not scan again; a new one does, and finds nothing now.
    cp.kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "server",
            "db01",
            "-n",
            &ns,
            "unyo.dev/scan-now=test-2",
        ],
        None,
    )
    .unwrap();
    wait_server(&servers, "a clean second scan", 60, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.antivirus.as_ref())
            .and_then(|a| a.last_scan.as_ref())
            .is_some_and(|r| r.detections == 0 && r.started_at.0 >= run.started_at.0)
    })
    .await;

    // A full backup on request with real restic, copied to the secondary repository.
    std::fs::create_dir_all(root.join("var/lib/postgresql")).unwrap();
    std::fs::write(root.join("var/lib/postgresql/base.dat"), vec![7u8; 300_000]).unwrap();
    std::fs::create_dir_all(root.join("etc/unyo")).unwrap();
    std::fs::write(
        root.join("etc/unyo/backup.pass"),
        "correct horse battery staple\n",
    )
    .unwrap();
    let plan = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: db, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: pgdata, paths: [/var/lib/postgresql]}}]
  repositories:
    primary: {{location: /backup/primary, passwordFile: /etc/unyo/backup.pass}}
    secondary: {{location: /backup/secondary, passwordFile: /etc/unyo/backup.pass, offsite: true}}
  rules:
    - {{name: weekly-full, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}
    - {{name: daily-diff, type: Differential, schedule: {{calendar: mie-operations, at: "19:30", days: BusinessDays}}}}
  media: {{informationClass: ClassI, label: DB-weekly}}
  verification: {{checkAfterRun: true}}
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&plan))
        .unwrap();
    cp.kubectl_ok(
        &[
            "annotate",
            "server",
            "db01",
            "-n",
            &ns,
            "unyo.dev/backup-now=before-version-up",
        ],
        None,
    )
    .unwrap();
    let s = wait_server(&servers, "a backup reported", 90, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .is_some_and(|o| o.backups.iter().any(|b| b.last_full.is_some()))
    })
    .await;
    let b = s.status.unwrap().operations.unwrap().backups[0].clone();
    assert_eq!(b.plan, "db");
    let full = b.last_full.unwrap();
    assert_eq!(format!("{:?}", full.result), "Succeeded", "{full:?}");
    assert_eq!(full.rule, "on-request");
    assert_eq!(full.copied, Some(true));
    // The secondary is marked off site: the copy's age is the run's.
    assert_eq!(b.offsite_copy_at.as_ref(), Some(&full.started_at));
    assert!(full.bytes_added.unwrap() > 0);
    assert_eq!(b.generations, Some(1));
    assert_eq!(
        format!("{:?}", b.last_verification.unwrap().result),
        "Succeeded"
    );
    // The snapshot is really in both repositories, with the plan's tags.
    for repo in ["primary", "secondary"] {
        let out = Command::new("restic")
            .arg("-r")
            .arg(root.join("backup").join(repo))
            .arg("--password-file")
            .arg(root.join("etc/unyo/backup.pass"))
            .args(["--no-cache", "snapshots", "--json"])
            .output()
            .unwrap();
        let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tags = snaps[0]["tags"].to_string();
        assert!(
            tags.contains("unyo-plan=db")
                && tags.contains("unyo-type=Full")
                && tags.contains("unyo-class=ClassI"),
            "{repo}: {tags}"
        );
    }

    // A restore of the newest generation through the agent (what `unyo backup restore` does),
    // compared byte for byte; a generation that does not exist is a clear failure.
    let answer = unyo_cli::backup::request(
        client.clone(),
        &ns,
        "db01",
        "db",
        &unyo_cli::backup::What::Generation(Some(1)),
        "/restore/one",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(answer.contains("into /restore/one"), "{answer}");
    assert_eq!(
        std::fs::read(
            root.join("restore/one").join(
                root.join("var/lib/postgresql/base.dat")
                    .strip_prefix("/")
                    .unwrap()
            )
        )
        .unwrap(),
        vec![7u8; 300_000]
    );
    let err = unyo_cli::backup::request(
        client.clone(),
        &ns,
        "db01",
        "db",
        &unyo_cli::backup::What::Generation(Some(9)),
        "/restore/nine",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("generation 9 does not exist"), "{err}");
    // By default the newest generation whose last verification succeeded (here the check
    // after the run), and the agent says so.
    let answer = unyo_cli::backup::request(
        client.clone(),
        &ns,
        "db01",
        "db",
        &unyo_cli::backup::What::Generation(None),
        "/restore/verified",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        answer.contains("is the newest whose last verification succeeded (CheckAfterRun"),
        "{answer}"
    );
    let plan_obj = Api::<unyo_crds::BackupPlan>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .unwrap();
    assert_eq!(
        unyo_cli::backup::dry_run(
            "db",
            &plan_obj,
            &unyo_cli::backup::What::Generation(Some(1)),
            &[],
            "/srv/restore"
        ),
        [
            "restic -r /backup/primary --password-file /etc/unyo/backup.pass restore latest --tag unyo-plan=db --target /srv/restore"
        ]
    );

    // The Antivirus check follows the scans: clean now (the second scan found nothing).
    wait_server(
        &servers,
        "the Antivirus check OK after the clean scan",
        30,
        &agent,
        |s| check(s, "antivirus").is_some_and(|c| c.state == CheckState::OK),
    )
    .await;

    // Outage: the API server is unreachable; the port comes back meanwhile.
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back_at = jiff::Timestamp::now();
    tcp = Some(http_ok_server(tcp_port).await);
    let journal = state.join("journal.jsonl");
    let mut journaled = false;
    for _ in 0..40 {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("\"check\":\"port\"") && l.contains("\"state\":\"OK\""))
        {
            journaled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(journaled, "no journal entry while offline\n{}", agent.log());
    let offline = servers.get("db01").await.unwrap();
    assert_eq!(
        check(&offline, "port").unwrap().state,
        CheckState::Critical,
        "nothing can have reached the API server"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restored_at = jiff::Timestamp::now();
    proxy.restore().await;

    // Back online: the transition arrives with its original time, and so does its Event.
    let s = wait_server(&servers, "port OK after the outage", 90, &agent, |s| {
        check(s, "port").is_some_and(|c| c.state == CheckState::OK)
    })
    .await;
    let since = check(&s, "port").unwrap().since.0;
    assert!(
        since >= jiff::Timestamp::from_second(back_at.as_second()).unwrap() && since < restored_at,
        "since {since} is not the time of the transition ({back_at}..{restored_at})"
    );
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    // (The port's first OK, at start-up, has an Event of its own.)
    let oks: Vec<i64> = evs
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("CheckOK")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("probes/port:"))
        })
        .filter_map(|e| e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .collect();
    assert!(
        oks.contains(&since.as_second()),
        "no Event dated {since} for the offline transition: {oks:?}"
    );
    // The journal is emptied right after the delivery the status shows.
    let mut journal_left = String::new();
    for _ in 0..20 {
        journal_left = std::fs::read_to_string(&journal).unwrap();
        if journal_left.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        journal_left.trim().is_empty(),
        "journal not emptied: {journal_left}"
    );
    assert!(
        agent.log().contains("cannot report to the API server"),
        "{}",
        agent.log()
    );

    drop(agent);
    drop(ntp);
    http.abort();
    if let Some(t) = tcp {
        t.abort();
    }
    std::fs::remove_dir_all(&work).unwrap();
}

/// Every version of Server `name` seen during `window` (the first as it was at the start).
fn watch_writes(servers: &Api<Server>, name: &str, window: Duration) -> JoinHandle<Vec<Server>> {
    use futures::StreamExt;
    let config = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = kube::runtime::watcher(servers.clone(), config);
    tokio::spawn(async move {
        let mut seen: Vec<Server> = Vec::new();
        let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(stream));
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                next = stream.next() => match next {
                    Some(Ok(s)) => {
                        if seen.last().is_none_or(|l| l.metadata.resource_version != s.metadata.resource_version) {
                            seen.push(s);
                        }
                    }
                    Some(Err(_)) => continue,
                    None => break,
                }
            }
        }
        seen
    })
}
