//! Faults the agent must ride out, against the real control plane: an API server that refuses
//! every Event while a check flaps — the status still arrives, the refused Events are dropped
//! and counted, not the delivery.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use unyo_crds::server::CheckState;
use unyo_tests::control_plane;

mod common;

/// The slow package's postinst: a duration no other process on the machine is likely to sleep
/// (the test looks for it among all processes).
const POSTINST_SLEEP: &str = "sleep 301.75";
use common::{free_port, prepare, wait_server};

async fn metrics(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn refused_events_are_dropped_and_counted_while_status_arrives() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "quota", "logs:\n  files: [/var/log]\n").await;
    let ns = h.ns.as_str();
    // The API server refuses every Event of this namespace. (A ResourceQuota on
    // `count/events` would not do: the API server's quota ignores Events.) A
    // ValidatingAdmissionPolicy denies them, as a quota or an admission webhook would.
    let policy = format!("unyo-test-no-events-{ns}");
    cp.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [events]}}]
  validations: [{{expression: "false", message: "no Events in this namespace (test)"}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  validationActions: [Deny]
  matchResources: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}}}
"#
        )),
    )
    .unwrap();
    // Until the policy is in force (it is compiled and synced asynchronously).
    let probe = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{generateName: probe-, namespace: {ns}}}\ninvolvedObject: {{kind: Server, name: db01, namespace: {ns}}}\nreason: Probe\nmessage: probe\n"
    );
    let mut denied = false;
    for _ in 0..100 {
        if cp
            .run_kubectl(&["create", "-f", "-"], Some(&probe))
            .is_ok_and(|o| !o.status.success())
        {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(denied, "the admission policy never denied an Event");
    let _ = cp.run_kubectl(&["delete", "events", "--all", "-n", ns], None);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&format!(
            "apiVersion: unyo.dev/v1alpha1\nkind: MonitoringPolicy\nmetadata: {{name: logs, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{unyo.dev/role: db}}}}\n  interval: 1s\n  checks:\n    - {{name: app, kind: LogPattern, path: /var/log/app.log, pattern: FATAL}}\n"
        )),
    )
    .unwrap();
    let port = free_port();
    let agent = h.spawn_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    wait_server(&h.servers, "the log check runs", 60, &agent, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.checks.iter().any(|c| c.check == "app"))
    })
    .await;
    // The check flaps: each line is Critical for one sample, then OK again.
    for n in 1..=5 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(h.root.join("var/log/app.log"))
            .unwrap();
        writeln!(f, "FATAL number {n}").unwrap();
        drop(f);
        wait_server(
            &h.servers,
            &format!("transition {n} in the status"),
            30,
            &agent,
            |s| {
                s.status.as_ref().is_some_and(|st| {
                    st.checks.iter().any(|c| {
                        c.check == "app"
                            && c.state == CheckState::Critical
                            && c.message
                                .as_deref()
                                .is_some_and(|m| m.contains(&format!("FATAL number {n}")))
                    })
                })
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let text = metrics(port).await;
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("unyo_agent_events_dropped_total{"))
        .filter(|l| !l.contains("journal_full"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        dropped >= 8.0,
        "{dropped} Events counted as dropped\n{text}"
    );
    let evs = cp
        .kubectl_ok(&["get", "events", "-n", ns, "-o", "name"], None)
        .unwrap();
    assert!(
        evs.lines().count() <= 1,
        "the quota lets one Event in: {evs}"
    );
    // Nothing waits: the journal is empty, the delivery did not stall behind the Events.
    let journal = std::fs::read_to_string(h.work.join("state/journal.jsonl")).unwrap_or_default();
    assert!(journal.trim().is_empty(), "{journal}");
    drop(agent);
    let _ = cp.run_kubectl(
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            &policy,
        ],
        None,
    );
    std::fs::remove_dir_all(&h.work).unwrap();
}

/// The pid of a running `restic backup` whose command line mentions `repo`.
fn restic_backup(repo: &std::path::Path) -> Option<u32> {
    let repo = repo.display().to_string();
    processes(|cmd| cmd.starts_with("restic ") && cmd.contains(" backup ") && cmd.contains(&repo))
        .into_iter()
        .next()
}

fn snapshots(repo: &std::path::Path, password: &std::path::Path) -> usize {
    let out = std::process::Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(password)
        .args(["--no-cache", "--no-lock", "snapshots", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .map(|v| v.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_agent_killed_mid_backup_reports_it_interrupted_and_runs_nothing_twice() {
    use unyo_crds::backup::RunResult;
    use unyo_crds::server::RequestState;
    let cp = control_plane().unwrap();
    let policy = "backup:\n  repositories: [/backup]\n  passwordFiles: [/etc/unyo]\n  sources: [/srv/data]\n";
    let h = prepare(cp, "kill-agent", policy).await;
    let ns = h.ns.clone();
    let (data, repo, pass) = (
        h.root.join("srv/data"),
        h.root.join("backup/db"),
        h.root.join("etc/unyo/backup.pass"),
    );
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(pass.parent().unwrap()).unwrap();
    std::fs::write(&pass, "correct horse\n").unwrap();
    std::fs::write(data.join("small.csv"), "1,2,3\n").unwrap();
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&format!(r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: db, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: data, paths: [/srv/data]}}]
  repositories: {{primary: {{location: /backup/db, passwordFile: /etc/unyo/backup.pass}}}}
  rules: [{{name: weekly, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}]
  media: {{informationClass: ClassI}}
  verification: {{checkAfterRun: false}}
"#)),
    )
    .unwrap();
    let annotate = |v: &str| {
        cp.kubectl_ok(
            &[
                "annotate",
                "--overwrite",
                "server",
                "db01",
                "-n",
                &ns,
                &format!("unyo.dev/backup-now={v}"),
            ],
            None,
        )
        .unwrap();
    };
    let answer = |v: &'static str| {
        let servers = h.servers.clone();
        async move {
            unyo_cli::backup::await_answer(
                &servers,
                "db01",
                "unyo.dev/backup-now",
                v,
                Duration::from_secs(180),
            )
            .await
            .unwrap()
        }
    };
    let agent = h.spawn();
    annotate("first");
    assert_eq!(
        answer("first").await.result,
        RequestState::Succeeded,
        "{}",
        agent.log()
    );
    assert_eq!(snapshots(&repo, &pass), 1);

    // Enough data for a backup that takes a while, then kill -9 while restic runs (and restic
    // with it, as systemd's control group would).
    let out = std::process::Command::new("head")
        .args(["-c", "600M", "/dev/urandom"])
        .stdout(std::fs::File::create(data.join("big.bin")).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    annotate("second");
    let mut restic = None;
    for _ in 0..200 {
        restic = restic_backup(&repo);
        if restic.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restic = restic.expect("restic backup never ran");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(agent); // SIGKILL
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &restic.to_string()])
        .status();
    // A kill during a journal append leaves a torn last line.
    let mut j = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(h.work.join("state/journal.jsonl"))
        .unwrap();
    write!(j, "{{\"policy\":\"torn").unwrap();
    drop(j);

    // Started again: the run and the request are reported interrupted, the history stays, and
    // the request is not run a second time.
    let agent = h.spawn();
    let s = wait_server(&h.servers, "the interruption reported", 60, &agent, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .is_some_and(|o| {
                o.requests
                    .iter()
                    .any(|r| r.value == "second" && r.result == RequestState::Interrupted)
                    && o.backups.iter().any(|b| {
                        b.last_full
                            .as_ref()
                            .is_some_and(|f| f.result == RunResult::Interrupted)
                    })
            })
    })
    .await;
    let b = &s
        .status
        .as_ref()
        .unwrap()
        .operations
        .as_ref()
        .unwrap()
        .backups[0];
    assert_eq!(
        b.generations,
        Some(1),
        "the earlier backup is still counted: {b:?}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        restic_backup(&repo).is_none(),
        "the interrupted request ran again"
    );
    assert_eq!(snapshots(&repo, &pass), 1, "a second snapshot appeared");
    for f in ["host-backups", "requests", "facts", "checks"] {
        let path = h.work.join(format!("state/{f}.json"));
        if path.exists() {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(v["kind"], f, "{f}");
        }
    }
    // A new request runs, past the lock the killed restic left.
    std::fs::remove_file(data.join("big.bin")).unwrap();
    annotate("third");
    assert_eq!(
        answer("third").await.result,
        RequestState::Succeeded,
        "{}",
        agent.log()
    );
    assert_eq!(snapshots(&repo, &pass), 2);
    drop(agent);
    std::fs::remove_dir_all(&h.work).unwrap();
}

/// Pids of the processes (other than this one) whose command line, its arguments joined by
/// spaces, satisfies `matches`.
fn processes(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (pid != std::process::id() && matches(&cmd)).then_some(pid)
        })
        .collect()
}

/// Pids of the processes whose command line mentions `text`.
fn processes_with(text: &str) -> Vec<u32> {
    processes(|cmd| cmd.contains(text))
}

#[tokio::test]
async fn an_agent_killed_mid_install_reports_it_interrupted_and_does_not_retry_in_the_window() {
    use unyo_crds::patch::PatchState;
    use unyo_tests::aptlab::{self, Archive, Deb};
    let cp = control_plane().unwrap();
    let h = prepare(cp, "kill-apt", "patches: {install: true, reboot: false}\n").await;
    let ns = h.ns.clone();
    // A repository with an update whose postinst takes long, and a host that has the old one.
    let lab = h.work.join("lab");
    let archives = vec![Archive {
        dir: "security",
        origin: "Debian",
        label: "Debian-Security",
        suite: "bookworm-security",
        date: aptlab::days_ago(10),
        debs: vec![
            Deb::new("slowpkg", "1.0"),
            Deb {
                postinst: Some("#!/bin/sh\nsleep 301.75\n"),
                ..Deb::new("slowpkg", "1.1")
            },
        ],
    }];
    let dirs = aptlab::build_archives(&lab, &archives).unwrap();
    let sources: Vec<String> = dirs.iter().map(|d| aptlab::source_line(d)).collect();
    aptlab::host_root(
        &h.root,
        &sources,
        &[aptlab::deb_file(&lab, "security", "slowpkg", "1.0")],
    )
    .unwrap();
    // A baseline whose daily window opened five minutes ago, its candidate approved (as the
    // controller judges it).
    let opened = (jiff::Timestamp::now().in_tz("Asia/Tokyo").unwrap()
        - jiff::Span::new().minutes(5))
    .strftime("%H:%M")
    .to_string();
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&format!(
            r#"apiVersion: unyo.dev/v1alpha1
kind: OperationCalendar
metadata: {{name: ops, namespace: {ns}}}
spec:
  timeZone: Asia/Tokyo
  businessHours: {{start: "08:00", end: "19:00"}}
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {{name: now, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  operation: Install
  approvedPatches: [slowpkg]
  maintenanceWindow: {{schedule: {{calendar: ops, at: "{opened}"}}, duration: 2h}}
"#
        )),
    )
    .unwrap();
    cp.kubectl_ok(
        &["patch", "patchbaseline", "now", "-n", &ns, "--subresource=status", "--type=merge", "-p",
          r#"{"status":{"candidates":[{"package":"slowpkg","version":"1.1","classification":"Security","judgement":"Apply","reason":"approved explicitly"}]}}"#],
        None,
    )
    .unwrap();
    let agent = h.spawn();
    // apt runs the install; the agent is killed with it (and apt, dpkg and the script, as
    // systemd's control group would be).
    let root = h.root.display().to_string();
    let mut running = false;
    for _ in 0..600 {
        if !processes_with(POSTINST_SLEEP).is_empty() {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "the install never ran\n{}", agent.log());
    drop(agent);
    for pid in processes_with(&root)
        .into_iter()
        .chain(processes_with(POSTINST_SLEEP))
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    eprintln!(
        "dpkg after the kill: {:?}",
        aptlab::installed_version(&h.root, "slowpkg")
    );

    // Started again: the install is reported interrupted and not tried again in this window.
    let agent = h.spawn();
    let s = wait_server(
        &h.servers,
        "the install reported interrupted",
        90,
        &agent,
        |s| {
            s.status
                .as_ref()
                .and_then(|st| st.operations.as_ref())
                .is_some_and(|o| {
                    o.patches.iter().flat_map(|b| b.patches.iter()).any(|p| {
                        p.package == "slowpkg"
                            && p.state == PatchState::Failed
                            && p.message
                                .as_deref()
                                .is_some_and(|m| m.contains("interrupted"))
                    })
                })
        },
    )
    .await;
    let state = &s
        .status
        .as_ref()
        .unwrap()
        .operations
        .as_ref()
        .unwrap()
        .patches[0];
    assert_eq!(state.baseline, "now");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        processes_with(POSTINST_SLEEP).is_empty(),
        "the install ran again in the same window\n{}",
        agent.log()
    );
    drop(agent);
    for pid in processes_with(&root) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    std::fs::remove_dir_all(&h.work).unwrap();
}
