//! The identities unyo ships, against a real API server: the controller's ClusterRole is no
//! wider than what it uses, the agent's Role has no Secrets and no one else's token, and the
//! people's roles write what docs/security.md says.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unyo_tests::{ControlPlane, control_plane};

/// `kubectl auth can-i` as `who` (a ServiceAccount `ns:name` or a user), in `ns`.
fn can(cp: &ControlPlane, who: &str, verb: &str, what: &str, ns: &str) -> bool {
    let user = match who.split_once(':') {
        Some((sa_ns, sa)) => format!("system:serviceaccount:{sa_ns}:{sa}"),
        None => who.to_string(),
    };
    let out = cp
        .run_kubectl(
            &["auth", "can-i", verb, what, "-n", ns, "--as", &user],
            None,
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[tokio::test]
async fn the_controller_may_not_touch_leases_beyond_its_own() {
    let cp = control_plane().unwrap();
    let kubeconfig = cp.controller_kubeconfig().await.unwrap();
    let ctl = "unyo-system:unyo-controller";
    assert!(!can(cp, ctl, "update", "leases", "kube-system"));
    assert!(!can(cp, ctl, "create", "leases", "kube-system"));
    assert!(!can(cp, ctl, "update", "leases", "default"));
    assert!(
        can(cp, ctl, "list", "leases", "default"),
        "agents' heartbeats are read"
    );
    assert!(can(
        cp,
        ctl,
        "update",
        "leases/unyo-controller",
        "unyo-system"
    ));
    assert!(!can(cp, ctl, "update", "leases/other", "unyo-system"));
    // Really refused by the API server, with the controller's own token.
    cp.kubectl_ok(
        &["apply", "-f", "-"],
        Some("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: unyo-probe, namespace: kube-system}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(&cp.kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "annotate",
            "lease",
            "unyo-probe",
            "-n",
            "kube-system",
            "x=y",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("forbidden"), "{err}");
    // Secrets: only in namespaces that bind unyo-controller-secrets to it.
    let ns = cp.namespace("rbac").await.unwrap();
    assert!(!can(cp, ctl, "get", "secrets", &ns));
    cp.bind_controller_secrets(&ns).unwrap();
    assert!(can(cp, ctl, "get", "secrets", &ns));
    assert!(!can(cp, ctl, "list", "secrets", &ns), "get by name only");
}

#[tokio::test]
async fn an_agent_reads_no_secret_and_renews_only_its_own_token() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("rbac-agent").await.unwrap();
    let server = std::fs::read_to_string(cp_path("manifests/samples/servers/db01.yaml"))
        .unwrap()
        .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&server))
        .unwrap();
    let out =
        std::env::temp_dir().join(format!("unyo-rbac-agent-{}.kubeconfig", std::process::id()));
    unyo_cli::bootstrap::run(&unyo_cli::bootstrap::Bootstrap {
        server: "db01",
        namespace: &ns,
        out: &out,
        kubeconfig: Some(&cp.kubeconfig),
        server_url: None,
        token_seconds: 3600,
        rotate: false,
    })
    .await
    .unwrap();
    let agent = format!("{ns}:unyo-agent-db01");
    assert!(!can(cp, &agent, "get", "secrets", &ns));
    assert!(!can(cp, &agent, "list", "secrets", &ns));
    let can_token = |sa: &str| {
        let user = format!("system:serviceaccount:{ns}:unyo-agent-db01");
        let out = cp
            .run_kubectl(
                &[
                    "auth",
                    "can-i",
                    "create",
                    &format!("serviceaccounts/{sa}"),
                    "--subresource=token",
                    "-n",
                    &ns,
                    "--as",
                    &user,
                ],
                None,
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can_token("unyo-agent-db01"));
    assert!(!can_token("unyo-agent-db02"));
    assert!(!can_token("default"));
    assert!(!can(cp, &agent, "patch", "servers/db02", &ns));
    let _ = std::fs::remove_file(&out);
}

fn cp_path(p: &str) -> std::path::PathBuf {
    unyo_tests::repo_root().join(p)
}

#[tokio::test]
async fn shipped_roles_write_what_they_say() {
    let cp = control_plane().unwrap();
    let roles = unyo_tests::repo_root().join("manifests/rbac/roles.yaml");
    cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=unyo-tests",
            "-f",
            &roles.to_string_lossy(),
        ],
        None,
    )
    .unwrap();
    let ns = cp.namespace("roles").await.unwrap();
    for (role, user) in [
        ("unyo-operator", "op"),
        ("unyo-approver", "ap"),
        ("unyo-viewer", "vi"),
        ("unyo-reporter", "re"),
    ] {
        cp.kubectl_ok(
            &[
                "create",
                "rolebinding",
                role,
                "-n",
                &ns,
                &format!("--clusterrole={role}"),
                &format!("--user={user}"),
            ],
            None,
        )
        .unwrap();
    }
    assert!(can(cp, "op", "create", "backupplans.unyo.dev", &ns));
    assert!(can(cp, "op", "patch", "servers.unyo.dev", &ns));
    assert!(!can(cp, "op", "patch", "patchbaselines.unyo.dev", &ns));
    assert!(can(cp, "ap", "patch", "patchbaselines.unyo.dev", &ns));
    assert!(can(cp, "ap", "patch", "changerecords.unyo.dev", &ns));
    assert!(!can(cp, "ap", "create", "backupplans.unyo.dev", &ns));
    assert!(can(cp, "vi", "list", "incidents.unyo.dev", &ns));
    assert!(!can(cp, "vi", "patch", "incidents.unyo.dev", &ns));
    assert!(can(cp, "re", "list", "incidents.unyo.dev", &ns));
    assert!(can(cp, "re", "patch", "configmaps", &ns));
    assert!(!can(cp, "re", "patch", "servers.unyo.dev", &ns));
    assert!(!can(cp, "re", "delete", "configmaps", &ns));
    for user in ["op", "ap", "vi", "re"] {
        assert!(
            !can(cp, user, "get", "secrets", &ns),
            "{user} reads Secrets"
        );
        let status = cp
            .run_kubectl(
                &[
                    "auth",
                    "can-i",
                    "patch",
                    "servers.unyo.dev",
                    "--subresource=status",
                    "-n",
                    &ns,
                    "--as",
                    user,
                ],
                None,
            )
            .unwrap();
        assert!(
            String::from_utf8_lossy(&status.stdout).trim() == "no",
            "{user} writes status"
        );
    }
    assert!(
        !can(cp, "op", "create", "backupplans.unyo.dev", "default"),
        "bound per namespace"
    );
}
