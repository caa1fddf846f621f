//! The `unyo` binary as operators and CI run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn unyo(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_unyo"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting unyo: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn samples_pass_check() {
    let out = unyo(&["check", "manifests/samples"], None);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = text(&out);
    assert!(stdout.contains("Server/db01: ok"), "{stdout}");
    assert!(
        stdout.contains("19 valid, 0 invalid, 2 skipped"),
        "{stdout}"
    );
}

#[test]
fn invalid_manifest_fails_check_naming_the_field() {
    let doc = r#"
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: broken, namespace: mie}
spec:
  sources: [{name: db, paths: [/var/lib/postgresql]}]
  repositories: {primary: {location: /backup/a, passwordFile: /etc/unyo/a.pass}}
  rules: [{name: daily, type: Differential, schedule: {calendar: ops, at: "19:30"}}]
  media: {informationClass: ClassI}
"#;
    let out = unyo(&["check", "-"], Some(doc));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = text(&out);
    assert!(
        stdout.contains("BackupPlan/broken: spec.rules: at least one rule must be of type Full"),
        "{stdout}"
    );
    assert!(stdout.contains("0 valid, 1 invalid"), "{stdout}");
}

#[test]
fn unreadable_path_exits_2() {
    let out = unyo(&["check", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn crds_prints_every_kind() {
    let out = unyo(&["crds"], None);
    assert!(out.status.success());
    let stdout = text(&out);
    assert_eq!(stdout.matches("kind: CustomResourceDefinition").count(), 8);
    assert!(stdout.contains("name: servers.unyo.dev"));
}

#[test]
fn every_binary_answers_help() {
    let out = unyo(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out);
    assert!(help.contains("check") && help.contains("crds"), "{help}");
}
