//! `unyo agent bootstrap` against a real kube-apiserver with RBAC: the kubeconfig it writes
//! allows exactly what an agent does, for its own host only.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use unyo_tests::control_plane;

fn sample(name: &str, ns: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../manifests/samples/servers/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"))
}

#[tokio::test]
async fn bootstrap_grants_least_privilege() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("bootstrap").await.unwrap();
    for server in ["db01", "web01"] {
        cp.kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&sample(server, &ns)),
        )
        .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("unyo-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("db01.kubeconfig");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_unyo"))
            .args(["agent", "bootstrap", "db01", "-n", &ns, "--out"])
            .arg(&out)
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(["--token-ttl", "1h"])
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains(&format!("unyo-agent --server db01 -n {ns} --kubeconfig")),
        "{stdout}"
    );
    // Running it again updates in place.
    assert!(run().status.success());
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let names = cp
        .kubectl_ok(
            &[
                "get",
                "serviceaccount,role,rolebinding,lease",
                "-n",
                &ns,
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    for kind in [
        "serviceaccount",
        "role.rbac.authorization.k8s.io",
        "rolebinding.rbac.authorization.k8s.io",
        "lease.coordination.k8s.io",
    ] {
        assert_eq!(
            names
                .lines()
                .filter(|l| *l == format!("{kind}/unyo-agent-db01"))
                .count(),
            1,
            "{kind}: {names}"
        );
    }

    // kubectl with the agent's kubeconfig, asking the API server's authorizer.
    let can = |verb: &str, resource: &str| {
        let o = cp
            .kubectl()
            .env("KUBECONFIG", &out)
            .args(["auth", "can-i", verb, resource, "-n", &ns])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim() == "yes"
    };
    let allowed = [
        ("get", "servers.unyo.dev/db01"),
        ("watch", "servers.unyo.dev/db01"),
        ("patch", "servers.unyo.dev/db01 --subresource=status"),
        ("update", "leases.coordination.k8s.io/unyo-agent-db01"),
        ("list", "monitoringpolicies.unyo.dev"),
        ("watch", "operationcalendars.unyo.dev"),
        ("list", "backupplans.unyo.dev"),
        ("list", "virusscanschedules.unyo.dev"),
        ("list", "patchbaselines.unyo.dev"),
        ("create", "events"),
    ];
    let denied = [
        ("get", "servers.unyo.dev/web01"),
        ("list", "servers.unyo.dev"),
        ("patch", "servers.unyo.dev/db01"),
        ("patch", "servers.unyo.dev/web01 --subresource=status"),
        ("delete", "servers.unyo.dev/db01"),
        ("update", "leases.coordination.k8s.io/unyo-agent-web01"),
        ("create", "leases.coordination.k8s.io"),
        ("create", "monitoringpolicies.unyo.dev"),
        ("update", "operationcalendars.unyo.dev/x"),
        ("get", "secrets"),
        ("list", "changerecords.unyo.dev"),
        ("create", "incidents.unyo.dev"),
        ("delete", "events"),
    ];
    for (verb, what) in allowed {
        let mut parts = what.split(' ');
        let resource = parts.next().unwrap();
        let o = cp
            .kubectl()
            .env("KUBECONFIG", &out)
            .args(["auth", "can-i", verb, resource, "-n", &ns])
            .args(parts)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "yes",
            "{verb} {what}"
        );
    }
    for (verb, what) in denied {
        let mut parts = what.split(' ');
        let resource = parts.next().unwrap();
        let o = cp
            .kubectl()
            .env("KUBECONFIG", &out)
            .args(["auth", "can-i", verb, resource, "-n", &ns])
            .args(parts)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "no",
            "{verb} {what}"
        );
    }
    assert!(!can("get", "servers.unyo.dev/web01"));
    // And a real read with the token: its own Server, not another's.
    let own = cp
        .kubectl()
        .env("KUBECONFIG", &out)
        .args(["get", "server", "db01", "-n", &ns, "-o", "name"])
        .output()
        .unwrap();
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = cp
        .kubectl()
        .env("KUBECONFIG", &out)
        .args(["get", "server", "web01", "-n", &ns])
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("Forbidden"));

    // A host whose Server does not exist is refused with a clear message.
    let missing = Command::new(env!("CARGO_BIN_EXE_unyo"))
        .args(["agent", "bootstrap", "nosuch", "-n", &ns, "--out"])
        .arg(dir.join("x"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("does not exist: apply its ledger first")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
