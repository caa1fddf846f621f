//! Faults against the real control plane: a stalled leader. Two replicas of the controller
//! binary with leader election, each reaching the API server through its own TLS proxy that
//! logs every write with the time it forwarded it; the leader's proxy then holds its Lease
//! updates for 20 s. At no instant may both replicas write.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use unyo_crds::Server;
use unyo_tests::{ControlPlane, Running, control_plane};

mod common;
use common::server_yaml;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy to the API server on a free port, logging writes to `log`, stalling Lease updates
/// while `flag` exists.
fn proxy(
    cp: &ControlPlane,
    tls: &(PathBuf, PathBuf, PathBuf),
    flag: &Path,
    log: &Path,
) -> (u16, Running) {
    let kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let url = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let upstream = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stall_proxy.py"
    ))
    .args([port.to_string(), upstream])
    .args([&tls.1, &tls.2, flag, log]);
    let running = Running::spawn(cmd, &format!("proxy-{port}")).unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (port, running)
}

/// The controller's kubeconfig, pointed at the proxy on `port`.
fn through(kubeconfig: &Path, port: u16, ca: &Path, out: &Path) {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let cluster = &mut kc["clusters"][0]["cluster"];
    cluster["server"] = format!("https://127.0.0.1:{port}").into();
    cluster
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    cluster["certificate-authority"] = ca.display().to_string().into();
    std::fs::write(out, kc.to_string()).unwrap();
}

fn replica(name: &str, kubeconfig: &Path, ns: &str) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-controller"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "--leader-elect"])
        .env("POD_NAME", name)
        .env("RUST_LOG", "info,unyo_controller=debug");
    Running::spawn(cmd, &format!("{name}-{ns}")).unwrap()
}

/// The times of the writes a proxy forwarded, other than Lease updates.
fn writes(log: &Path) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("/leases/"))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("unyo-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn a_stalled_leader_never_writes_beside_the_new_one() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("stall").await.unwrap();
    let client = cp.client().await.unwrap();
    let work = std::env::temp_dir().join(format!("unyo-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let tls = unyo_tests::tls_files(&work).unwrap();
    let flag = work.join("stall");
    let (log_a, log_b) = (work.join("writes-a.log"), work.join("writes-b.log"));
    let (port_a, _proxy_a) = proxy(cp, &tls, &flag, &log_a);
    let (port_b, _proxy_b) = proxy(cp, &tls, &work.join("never"), &log_b);
    let kubeconfig = cp.controller_kubeconfig().await.unwrap();
    let (kc_a, kc_b) = (work.join("a.kubeconfig"), work.join("b.kubeconfig"));
    through(&kubeconfig, port_a, &tls.0, &kc_a);
    through(&kubeconfig, port_b, &tls.0, &kc_b);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&server_yaml(&ns, "s1")),
    )
    .unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "unyo-system");

    // A leads (through the proxy that will stall it); B waits.
    let mut a = replica("replica-a", &kc_a, &ns);
    let mut led = false;
    for _ in 0..120 {
        if holder(&leases).await.as_deref() == Some("replica-a") && !writes(&log_a).is_empty() {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(led, "replica A did not lead\n{}", a.log());
    let b = replica("replica-b", &kc_b, &ns);

    // Steady work for the leader: a spec change every 300 ms (each a status write).
    let load = {
        let servers = servers.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let p = serde_json::json!({"spec": {"description": format!("change {n}")}});
                let _ = servers
                    .patch("s1", &PatchParams::default(), &Patch::Merge(&p))
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::write(&flag, "").unwrap();

    // B takes over and reconciles; A stops and exits.
    let mut took = false;
    for _ in 0..240 {
        if holder(&leases).await.as_deref() == Some("replica-b") && !writes(&log_b).is_empty() {
            took = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        took,
        "replica B did not take over\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    load.abort();
    assert!(!a.alive(), "the stalled leader still runs\n{}", a.log());
    assert!(a.log().contains("lost leadership"), "{}", a.log());

    // At no instant did both write: every write of A left before B's first.
    let (wa, wb) = (writes(&log_a), writes(&log_b));
    let last_a = wa.iter().cloned().fold(f64::MIN, f64::max);
    let first_b = wb.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        last_a < first_b,
        "A wrote at {last_a}, after B's first write at {first_b}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // B's reconciles are current: the Server's last spec change is observed.
    let mut current = false;
    for _ in 0..60 {
        let s = servers.get("s1").await.unwrap();
        let observed = s.status.as_ref().and_then(|st| st.observed_generation);
        if observed == s.metadata.generation {
            current = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        current,
        "B did not reconcile the latest change\n{}",
        b.log()
    );
    println!(
        "stalled leader: A's last write at {last_a:.3}, B's first at {first_b:.3} ({:.1} s later); A wrote {} times, B {}",
        first_b - last_a,
        wa.len(),
        wb.len()
    );
    drop(b);
    let _ = std::fs::remove_dir_all(&work);
}
