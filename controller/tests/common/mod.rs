//! What the controller's end-to-end tests share: the controller binary with its shipped RBAC,
//! and Servers made from the sample ledger.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::process::Command;

use unyo_tests::{ControlPlane, Running};

/// The controller binary, with the identity of manifests/controller/rbac.yaml.
pub async fn controller(cp: &ControlPlane, ns: &str, name: &str, extra: &[&str]) -> Running {
    let kubeconfig = cp.controller_kubeconfig().await.unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-controller"));
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["-n", ns])
        .args(extra)
        .env("RUST_LOG", "info,unyo_controller=debug");
    Running::spawn(cmd, &format!("{name}-{ns}")).unwrap()
}

/// The sample db01 ledger as Server `name` in `ns`.
pub fn server_yaml(ns: &str, name: &str) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/servers/db01.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"))
    .replace("name: db01", &format!("name: {name}"))
    .replace("hostname: db01", &format!("hostname: {name}"))
}
