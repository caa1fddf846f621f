//! End to end, hostile custom resources against a host policy: unyo-agent with the identity of
//! `unyo agent bootstrap`, a real kube-apiserver, real restic and ClamAV on a simulated host
//! beneath `--root`. Each hostile case must fail safe — nothing of it runs — and be reported on
//! the Server's status with the field and the rule that refused it.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use unyo_crds::Server;
use unyo_crds::server::{CheckState, Refusal, RequestState};
use unyo_tests::{ControlPlane, control_plane};

mod common;
use common::{prepare, signatures, wait_server};

const POLICY: &str = "\
backup:
  repositories: [/backup]
  passwordFiles: [/etc/unyo]
  sources: [/srv/data]
  restoreTargets: [/restore]
antivirus:
  actions: [Delete]
  quarantineDirs: [/var/lib/unyo/quarantine]
  signatureDirectories: [/srv/clamav]
logs:
  files: [/var/log]
";

fn refusals(s: &Server) -> Vec<Refusal> {
    s.status
        .as_ref()
        .and_then(|st| st.operations.as_ref())
        .map(|o| o.refusals.clone())
        .unwrap_or_default()
}

fn refused(s: &Server, name: &str, field: &str, rule: &str) -> bool {
    refusals(s)
        .iter()
        .any(|r| r.name == name && r.field == field && r.rule == rule)
}

/// A server that counts every connection it accepts (and answers nothing useful).
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heard = Arc::new(AtomicUsize::new(0));
    let count = heard.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, heard)
}

fn apply(cp: &ControlPlane, ns: &str, yaml: &str) {
    let yaml = yaml.replace("NS", ns);
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&yaml))
        .unwrap();
}

fn annotate(cp: &ControlPlane, ns: &str, kv: &str) {
    cp.kubectl_ok(
        &["annotate", "--overwrite", "server", "db01", "-n", ns, kv],
        None,
    )
    .unwrap();
}

#[tokio::test]
async fn hostile_resources_fail_safe_and_are_reported() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "hostile", POLICY).await;
    let agent = h.spawn();
    let (root, ns) = (&h.root, h.ns.as_str());
    let (mirror_port, mirror_heard) = counting_server().await;

    // Files of the host: data to back up, a password file, a victim, a test virus.
    std::fs::create_dir_all(root.join("srv/data")).unwrap();
    std::fs::write(root.join("srv/data/ledger.csv"), "1,2,3\n").unwrap();
    std::fs::create_dir_all(root.join("etc/unyo")).unwrap();
    std::fs::write(root.join("etc/unyo/backup.pass"), "correct horse\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:$y$secret:19000::::::\n").unwrap();
    std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    std::fs::write(root.join("proc/sys/kernel/ostype"), "Linux\n").unwrap();
    let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$UNYO-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\n";
    let sample = h.work.join("eicar.sample");
    std::fs::write(&sample, eicar).unwrap();
    signatures(&sample, &root.join("srv/clamav"), "Unyo.Test.Eicar");
    // The infected file is named so that clamscan's output line reads `.../x` and then the
    // victim's path; a link in the scanned tree points at an infected file outside it.
    let hostile_dir = root
        .join("srv/www")
        .join(format!("x\n{}", root.join("etc").display()));
    std::fs::create_dir_all(&hostile_dir).unwrap();
    std::fs::write(hostile_dir.join("passwd"), eicar).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(root.join("outside/keep.bin"), eicar).unwrap();
    std::os::unix::fs::symlink(root.join("outside/keep.bin"), root.join("srv/www/link.bin"))
        .unwrap();
    // A FIFO and a device node in the allowed log directory.
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    let fifo = root.join("var/log/fifo.log");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let zero = root.join("var/log/zero.log");
    assert!(
        Command::new("mknod")
            .arg(&zero)
            .args(["c", "1", "5"])
            .status()
            .unwrap()
            .success()
    );
    let root_mode = std::fs::metadata(root).unwrap().permissions().mode();

    apply(
        cp,
        ns,
        &format!(
            r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: good, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: data, paths: [/srv/data]}}]
  repositories: {{primary: {{location: /backup/good, passwordFile: /etc/unyo/backup.pass}}}}
  rules: [{{name: weekly, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}]
  media: {{informationClass: ClassI}}
---
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: exfil, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: all, paths: [/]}}]
  repositories: {{primary: {{location: /tmp/attacker-repo, passwordFile: /proc/sys/kernel/ostype}}}}
  rules: [{{name: weekly, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}]
  media: {{informationClass: ClassI}}
---
apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {{name: daily, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  schedule: {{calendar: mie-operations, at: "12:30"}}
  paths: [/srv/www]
  residentCheck: false
  signatures: {{maxAge: 24h, sourceDirectory: /srv/clamav}}
  actions: [Delete, Notify]
---
apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {{name: http-mirror, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  schedule: {{calendar: mie-operations, at: "12:30"}}
  paths: [/]
  residentCheck: false
  signatures: {{maxAge: 24h, mirrorUrl: "http://127.0.0.1:{mirror_port}/"}}
  actions: [Notify]
---
apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {{name: root-quarantine, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  schedule: {{calendar: mie-operations, at: "12:30"}}
  paths: [/]
  residentCheck: false
  signatures: {{maxAge: 24h}}
  actions: [Quarantine]
  quarantineDir: /
---
apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {{name: logs, namespace: NS}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  interval: 1s
  checks:
    - {{name: shadow, kind: LogPattern, path: /etc/shadow, pattern: "root"}}
    - {{name: dev-zero, kind: LogPattern, path: /dev/zero, pattern: "x"}}
    - {{name: fifo, kind: LogPattern, path: /var/log/fifo.log, pattern: "x"}}
    - {{name: zero-node, kind: LogPattern, path: /var/log/zero.log, pattern: "x"}}
"#
        ),
    );

    // Every hostile field is refused, with its rule, on the Server's status.
    let expected = [
        (
            "exfil",
            "spec.repositories.primary.location",
            "backup.repositories",
        ),
        (
            "exfil",
            "spec.repositories.primary.passwordFile",
            "backup.passwordFiles",
        ),
        ("exfil", "spec.sources[0].paths[0]", "backup.sources"),
        (
            "http-mirror",
            "spec.signatures.mirrorUrl",
            "antivirus.mirrors",
        ),
        ("root-quarantine", "spec.actions[0]", "antivirus.actions"),
        (
            "root-quarantine",
            "spec.quarantineDir",
            "antivirus.quarantineDirs",
        ),
        ("logs", "spec.checks[0].path", "logs.files"),
        ("logs", "spec.checks[1].path", "logs.files"),
    ];
    let s = wait_server(&h.servers, "every refusal reported", 60, &agent, |s| {
        expected.iter().all(|(n, f, r)| refused(s, n, f, r))
    })
    .await;
    assert_eq!(refusals(&s).len(), expected.len(), "{:#?}", refusals(&s));
    assert!(
        refusals(&s)
            .iter()
            .all(|r| r.name != "good" && r.name != "daily")
    );

    // The log checks it runs read only regular files and never block.
    let s = wait_server(
        &h.servers,
        "the FIFO and the device are Unknown",
        60,
        &agent,
        |s| {
            ["fifo", "zero-node"].iter().all(|n| {
                s.status.as_ref().is_some_and(|st| {
                    st.checks.iter().any(|c| {
                        c.check == *n
                            && c.state == CheckState::Unknown
                            && c.message
                                .as_deref()
                                .is_some_and(|m| m.contains("not a regular file"))
                    })
                })
            })
        },
    )
    .await;
    let checks: Vec<&str> = s
        .status
        .as_ref()
        .unwrap()
        .checks
        .iter()
        .map(|c| c.check.as_str())
        .collect();
    assert!(
        !checks.contains(&"shadow") && !checks.contains(&"dev-zero"),
        "{checks:?}"
    );

    // A full backup on request runs the allowed plan only: no repository appears where the
    // refused one pointed.
    annotate(cp, ns, "unyo.dev/backup-now=hostile-1");
    let servers = h.servers.clone();
    let answer = unyo_cli::backup::await_answer(
        &servers,
        "db01",
        "unyo.dev/backup-now",
        "hostile-1",
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert_eq!(
        answer.result,
        RequestState::Succeeded,
        "{answer:?}\n{}",
        agent.log()
    );
    assert!(answer.message.unwrap().contains("good"));
    assert!(root.join("backup/good/config").exists());
    assert!(
        !root.join("tmp/attacker-repo").exists(),
        "a refused repository was created"
    );

    // Restores into `/` and outside the allowed targets are refused; nothing is written.
    for (target, id) in [
        ("/", "r-root"),
        ("/etc/cron.d", "r-cron"),
        ("/restore/../etc", "r-dots"),
    ] {
        let value = format!("good:1:{id}:{target}");
        annotate(cp, ns, &format!("unyo.dev/restore={value}"));
        let a = unyo_cli::backup::await_answer(
            &servers,
            "db01",
            "unyo.dev/restore",
            &value,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(a.result, RequestState::Refused, "{target}: {a:?}");
        assert!(a.message.unwrap().contains("backup.restoreTargets"));
    }
    assert!(!root.join("srv/data/srv").exists() && !root.join("etc/cron.d").exists());
    assert!(!root.join("etc/srv").exists());
    // An allowed target restores, through the CLI that trusts only the status.
    let ok = unyo_cli::backup::request(
        cp.client().await.unwrap(),
        ns,
        "db01",
        "good",
        &unyo_cli::backup::What::Generation(Some(1)),
        "/restore/one",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(ok.contains("into /restore/one"), "{ok}");
    let restored = root
        .join("restore/one")
        .join(root.join("srv/data/ledger.csv").strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "1,2,3\n");

    // A real clamscan: the hostile file is deleted under its true name, its victim, the link
    // and the file the link points at are untouched.
    annotate(cp, ns, "unyo.dev/scan-now=hostile-1");
    let s = wait_server(&h.servers, "a scan reported", 90, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.antivirus.as_ref())
            .is_some_and(|a| a.last_scan.is_some())
    })
    .await;
    let av = s.status.unwrap().operations.unwrap().antivirus.unwrap();
    let scanned = unyo_cli::backup::await_answer(
        &servers,
        "db01",
        "unyo.dev/scan-now",
        "hostile-1",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(scanned.result, RequestState::Succeeded, "{scanned:?}");
    assert!(scanned.message.unwrap().starts_with("daily: "));
    assert_eq!(av.detections.len(), 1, "{:#?}", av.detections);
    assert!(
        av.detections[0].path.contains("/x\n"),
        "{:?}",
        av.detections[0].path
    );
    assert!(
        av.detections[0].actions[0].starts_with("Delete: "),
        "{:?}",
        av.detections[0].actions
    );
    assert!(!hostile_dir.join("passwd").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/bash\n"
    );
    assert!(root.join("outside/keep.bin").exists());
    assert!(std::fs::symlink_metadata(root.join("srv/www/link.bin")).is_ok());

    // Nothing reached the http mirror, and `/` kept its mode.
    assert_eq!(mirror_heard.load(Ordering::SeqCst), 0);
    assert_eq!(
        std::fs::metadata(root).unwrap().permissions().mode(),
        root_mode
    );

    // Each refusal is also an Event naming its rule.
    let events: Api<Event> = Api::namespaced(cp.client().await.unwrap(), ns);
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    let said: Vec<String> = evs
        .iter()
        .filter(|e| e.reason.as_deref() == Some("RefusedByHostPolicy"))
        .filter_map(|e| e.message.clone())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("rule backup.repositories")),
        "{said:#?}"
    );

    // The administrator allows the mirror and reloads the policy (SIGHUP): that refusal goes.
    let policy = POLICY.replace(
        "  signatureDirectories: [/srv/clamav]\n",
        &format!("  signatureDirectories: [/srv/clamav]\n  mirrors: [\"http://127.0.0.1:{mirror_port}/\"]\n"),
    );
    std::fs::write(h.work.join("agent.yaml"), &policy).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &agent.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_server(&h.servers, "the mirror refusal lifted", 30, &agent, |s| {
        !refused(
            s,
            "http-mirror",
            "spec.signatures.mirrorUrl",
            "antivirus.mirrors",
        ) && refused(s, "exfil", "spec.sources[0].paths[0]", "backup.sources")
    })
    .await;

    drop(agent);
    std::fs::remove_dir_all(&h.work).unwrap();
}

/// A ServiceAccount token signed with the control plane's signing key, as the API server would
/// issue it, but with the lifetime the test chooses (TokenRequest allows no less than 10 min).
fn mint(key: &Path, claims: &serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signed.as_bytes())
        .unwrap();
    let out = openssl.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{signed}.{}", b64(&out.stdout))
}

/// Whether the API server accepts `token` (a read of Server db01 with it).
fn accepted(cp: &ControlPlane, kubeconfig: &Path, ns: &str, token: &str) -> Result<(), String> {
    let out = Command::new(&cp.kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--token", token, "get", "server", "db01", "-n", ns])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_and_the_agent_renews_before_then() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let cp = control_plane().unwrap();
    let h = prepare(cp, "identity", "").await;
    let client = cp.client().await.unwrap();
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &h.ns)
        .get("unyo-agent-db01")
        .await
        .unwrap();
    let url = cp.server_url().unwrap();
    let issuer = format!("{}/", url.trim_end_matches('/'));
    let now = jiff::Timestamp::now().as_second();
    let exp = now + 15;
    let subject = format!("system:serviceaccount:{}:unyo-agent-db01", h.ns);
    let token = mint(
        &cp.kubeconfig.parent().unwrap().join("sa.key"),
        &serde_json::json!({
            "aud": [issuer], "iss": issuer, "iat": now, "nbf": now, "exp": exp,
            "jti": format!("unyo-test-{now}"), "sub": subject,
            "kubernetes.io": {"namespace": h.ns, "serviceaccount": {"name": "unyo-agent-db01", "uid": sa.metadata.uid}},
        }),
    );
    accepted(cp, &h.kubeconfig, &h.ns, &token).expect("the minted token is valid now");
    // The agent starts with the 15-second token in its kubeconfig.
    let text = std::fs::read_to_string(&h.kubeconfig).unwrap();
    let mut config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    config["users"][0]["user"]["token"] = token.clone().into();
    std::fs::write(&h.kubeconfig, serde_json::to_string(&config).unwrap()).unwrap();
    let agent = h.spawn();

    // Well after the token expired — past the minute of clock skew the API server allows on
    // `exp` and its 10 s cache of authentications — the agent still renews its Lease: it
    // renewed its token in time.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &h.ns);
    let mut renewed_at = 0;
    for _ in 0..240 {
        let lease = leases.get("unyo-agent-db01").await.unwrap();
        renewed_at = lease
            .spec
            .and_then(|s| s.renew_time)
            .map(|t| t.0.as_second())
            .unwrap_or(0);
        if renewed_at > exp + 75 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        renewed_at > exp + 12,
        "the Lease stopped at {renewed_at} (token expired at {exp})\n{}",
        agent.log()
    );
    assert!(agent.log().contains("token renewed"), "{}", agent.log());
    let err = accepted(cp, &h.kubeconfig, &h.ns, &token).unwrap_err();
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    let current = std::fs::read_to_string(h.work.join("state/token")).unwrap();
    assert_ne!(current.trim(), token);
    accepted(cp, &h.kubeconfig, &h.ns, current.trim()).expect("the renewed token works");
    let mode = std::fs::metadata(h.work.join("state/token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Bootstrap with --rotate revokes every token issued before, the renewed one included.
    let rotated = h.work.join("rotated.kubeconfig");
    unyo_cli::bootstrap::run(&unyo_cli::bootstrap::Bootstrap {
        server: "db01",
        namespace: &h.ns,
        out: &rotated,
        kubeconfig: Some(&cp.kubeconfig),
        server_url: None,
        token_seconds: 3600,
        rotate: true,
    })
    .await
    .unwrap();
    let mut refused = Err(String::new());
    for _ in 0..40 {
        refused = accepted(cp, &h.kubeconfig, &h.ns, current.trim());
        if refused.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(refused.unwrap_err().contains("Unauthorized"));
    let out = Command::new(&cp.kubectl)
        .arg("--kubeconfig")
        .arg(&rotated)
        .args(["get", "server", "db01", "-n", &h.ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
    std::fs::remove_dir_all(&h.work).unwrap();
}

/// A host with more installed packages than a status lists reports as many as it may, says the
/// list was cut (an unknown fact, so that no drift is judged on packages), and the API server
/// takes the status.
#[tokio::test]
async fn a_host_with_more_packages_than_a_status_lists_reports_them_cut() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "many-packages", "{}\n").await;
    let total = unyo_crds::limits::PACKAGES + 250;
    let dpkg: String = (0..total)
        .map(|i| format!("Package: pkg-{i:05}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}\n\n"))
        .collect();
    std::fs::write(h.root.join("var/lib/dpkg/status"), dpkg).unwrap();
    let agent = h.spawn();
    let server = wait_server(&h.servers, "the facts arrive", 60, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.observed.as_ref())
            .is_some_and(|o| !o.packages.is_empty())
    })
    .await;
    let observed = server.status.unwrap().observed.unwrap();
    assert_eq!(observed.packages.len(), unyo_crds::limits::PACKAGES);
    let cut = observed.unknown.iter().find(|u| u.fact == "packages");
    let reason = cut.map(|u| u.reason.clone()).unwrap_or_default();
    assert!(
        reason.contains(&format!("{total} found")),
        "{:?}",
        observed.unknown
    );
}
