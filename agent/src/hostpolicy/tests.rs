#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use unyo_crds::backup::BackupPlan;
use unyo_crds::virusscan::VirusScanSchedule;

fn sample<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/samples/").to_string() + file;
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .map(serde_saphyr::from_str::<serde_json::Value>)
        .filter_map(Result::ok)
        .find(|v| v["kind"] == kind)
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap()
}

fn sample_policy() -> HostPolicy {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/host/agent.yaml");
    HostPolicy::load(Path::new(path), Path::new("/var/lib/unyo-agent"), false).unwrap()
}

fn rules(refusals: &[Refusal]) -> Vec<(&str, &str)> {
    refusals
        .iter()
        .map(|r| (r.field.as_str(), r.rule.as_str()))
        .collect()
}

#[test]
fn the_sample_policy_allows_the_sample_fleet() {
    let policy = sample_policy();
    let plan: BackupPlan = sample("backup.yaml", "BackupPlan");
    assert_eq!(
        policy.judge_backup("db-and-reports", &plan.spec, Path::new("/")),
        vec![]
    );
    let scan: VirusScanSchedule = sample("virusscan.yaml", "VirusScanSchedule");
    assert_eq!(
        policy.judge_scan("daily", &scan.spec, Path::new("/")),
        vec![]
    );
}

#[test]
fn without_a_file_nothing_outside_the_state_directory() {
    let policy = HostPolicy::load(
        Path::new("/nonexistent/agent.yaml"),
        Path::new("/var/lib/unyo-agent"),
        true,
    )
    .unwrap();
    let plan: BackupPlan = sample("backup.yaml", "BackupPlan");
    let refused = policy.judge_backup("db", &plan.spec, Path::new("/"));
    let r = rules(&refused);
    assert!(
        r.contains(&("spec.repositories.primary.location", "backup.repositories")),
        "{r:?}"
    );
    assert!(
        r.contains(&(
            "spec.repositories.secondary.location",
            "backup.repositories"
        )),
        "{r:?}"
    );
    assert!(
        r.contains(&("spec.sources[1].paths[0]", "backup.sources")),
        "{r:?}"
    );
    assert!(
        r.contains(&("spec.sources[0].postgresql.walSpool", "backup.sources")),
        "{r:?}"
    );
    assert!(
        r.contains(&("spec.sources[0].postgresql.osUser", "backup.osUsers")),
        "{r:?}"
    );
    let mut with_command = plan.spec.clone();
    with_command.sources[1].pre_command = vec!["/usr/local/sbin/pg-backup-start".into()];
    let r = policy.judge_backup("db", &with_command, Path::new("/"));
    assert!(
        rules(&r).contains(&("spec.sources[1].preCommand", "backup.commands")),
        "{r:?}"
    );
    let mut own = plan.spec.clone();
    own.repositories.primary.location = "/var/lib/unyo-agent/backups/db".into();
    own.repositories.secondary = None;
    let r = policy.judge_backup("db", &own, Path::new("/"));
    assert!(
        !r.iter()
            .any(|x| x.field.starts_with("spec.repositories.primary.location")),
        "{r:?}"
    );
    assert!(
        policy
            .judge_restore(Path::new("/"), "/var/lib/unyo-agent/restore/x")
            .is_none()
    );
    assert!(policy.judge_restore(Path::new("/"), "/").is_some());
    assert!(!policy.patches.install && !policy.patches.reboot);
}

#[test]
fn hostile_paths_and_locations_are_refused() {
    let policy = sample_policy();
    let root = Path::new("/");
    for p in [
        "/",
        "/etc",
        "/srv/backup/primary/../../../etc",
        "relative",
        "/srv/backup/primaryX",
    ] {
        assert!(!policy.repository_allowed(root, p), "{p}");
    }
    assert!(policy.repository_allowed(root, "/srv/backup/primary/db01"));
    assert!(policy.repository_allowed(root, "sftp:backup01:/srv/backup/secondary/x"));
    for l in [
        "sftp:backup01:/srv/backup/secondaryX",
        "sftp:backup01:/srv/backup/secondary/../../x",
        "sftp:evil:/srv",
        "-o=x",
        "rest:https://evil/",
    ] {
        assert!(!policy.repository_allowed(root, l), "{l}");
    }
    let refused = policy.judge_restore(root, "/").unwrap();
    assert_eq!(refused.rule, "backup.restoreTargets");
    assert!(policy.judge_restore(root, "/etc").is_some());
    assert!(
        policy
            .judge_restore(root, "/var/tmp/unyo-restore/../../../etc")
            .is_some()
    );
    assert!(
        policy
            .judge_restore(root, "/var/tmp/unyo-restore/r1")
            .is_none()
    );
}

#[test]
fn symbolic_links_are_judged_where_they_lead() {
    let root = std::env::temp_dir().join(format!("unyo-hostpolicy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("var/tmp/unyo-restore")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::os::unix::fs::symlink(root.join("etc"), root.join("var/tmp/unyo-restore/etc")).unwrap();
    let policy = sample_policy();
    let refused = policy.judge_restore(&root, "/var/tmp/unyo-restore/etc/cron.d");
    assert_eq!(
        refused.map(|r| r.rule),
        Some("backup.restoreTargets".to_string())
    );
    assert!(
        policy
            .judge_restore(&root, "/var/tmp/unyo-restore/new/dir")
            .is_none()
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn mirrors_need_https_unless_listed_as_http() {
    let mut policy = sample_policy();
    let mut scan: VirusScanSchedule = sample("virusscan.yaml", "VirusScanSchedule");
    scan.spec.signatures.mirror_url = Some("http://ops01.mie.example.lg.jp/clamav".into());
    let r = policy.judge_scan("daily", &scan.spec, Path::new("/"));
    assert_eq!(
        rules(&r),
        [("spec.signatures.mirrorUrl", "antivirus.mirrors")]
    );
    scan.spec.signatures.mirror_url = Some("https://evil.example/clamav".into());
    assert_eq!(
        policy.judge_scan("daily", &scan.spec, Path::new("/")).len(),
        1
    );
    policy
        .antivirus
        .mirrors
        .push("http://127.0.0.1:8080/".into());
    scan.spec.signatures.mirror_url = Some("http://127.0.0.1:8080/sigs".into());
    assert_eq!(
        policy.judge_scan("daily", &scan.spec, Path::new("/")),
        vec![]
    );
}

#[test]
fn quarantine_in_root_and_unlisted_actions_are_refused() {
    let policy = sample_policy();
    let mut scan: VirusScanSchedule = sample("virusscan.yaml", "VirusScanSchedule");
    scan.spec.quarantine_dir = Some("/".into());
    scan.spec.actions = vec![DetectionAction::Quarantine, DetectionAction::Delete];
    let r = policy.judge_scan("daily", &scan.spec, Path::new("/"));
    assert_eq!(
        rules(&r),
        [
            ("spec.actions[1]", "antivirus.actions"),
            ("spec.quarantineDir", "antivirus.quarantineDirs")
        ]
    );
}

#[test]
fn invalid_or_unsafe_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("unyo-hostpolicy-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.yaml");
    std::fs::write(&file, "backup:\n  restoreTargets: [/]\n").unwrap();
    let e = HostPolicy::load(&file, &dir, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("backup.restoreTargets"), "{e}");
    std::fs::write(&file, "backup:\n  repositorys: [/srv]\n").unwrap();
    let e = HostPolicy::load(&file, &dir, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("repositorys"), "{e}");
    std::fs::write(&file, "logs:\n  files: [../etc]\n").unwrap();
    assert!(HostPolicy::load(&file, &dir, false).is_err());
    // Not root's (tests do not run as root, or it is writable by others).
    std::fs::write(&file, "patches: {install: true}\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = HostPolicy::load(&file, &dir, true).unwrap_err().to_string();
    assert!(
        e.contains("does not use a policy others could have changed"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_and_reboot_need_the_host_to_allow_them() {
    let mut policy = HostPolicy::defaults(Path::new("/var/lib/unyo-agent"));
    let baselines = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/patch-baselines.yaml"
    ))
    .unwrap();
    let b: unyo_crds::PatchBaseline = baselines
        .split("\n---")
        .map(serde_saphyr::from_str::<serde_json::Value>)
        .filter_map(Result::ok)
        .filter(|v| v["kind"] == "PatchBaseline")
        .map(|v| serde_json::from_value::<unyo_crds::PatchBaseline>(v).unwrap())
        .find(|b| b.spec.operation == PatchOperation::Install)
        .unwrap();
    let mut job = PatchJob {
        name: "b".into(),
        spec: b.spec.clone(),
        approved: vec![],
        calendar: None,
    };
    job.spec.reboot = RebootPolicy::RebootIfNeeded;
    assert_eq!(
        rules(&policy.judge_patches(&job)),
        [
            ("spec.operation", "patches.install"),
            ("spec.reboot", "patches.reboot")
        ]
    );
    policy.patches.install = true;
    assert_eq!(
        rules(&policy.judge_patches(&job)),
        [("spec.reboot", "patches.reboot")]
    );
    policy.patches.reboot = true;
    assert!(policy.judge_patches(&job).is_empty());
}

#[test]
fn defender_paths_must_be_plain_drive_paths_and_engines_their_platform() {
    let policy = sample_policy();
    let mut scan: VirusScanSchedule = sample("virusscan-windows.yaml", "VirusScanSchedule");
    scan.spec.paths = vec![
        r"C:\Users".into(),
        r#"C:\x" -DisableRemediation"#.into(),
        "-Scan".into(),
        r"D:\*".into(),
        "C:\\a\nb".into(),
        "/srv".into(),
    ];
    let r = policy.judge_scan("daily-windows", &scan.spec, Path::new("/"));
    let fields: Vec<&str> = r.iter().map(|x| x.field.as_str()).collect();
    // On Linux the Defender engine itself is refused too (the platform's engine is ClamAV).
    let mut expect = vec![
        "spec.paths[1]",
        "spec.paths[2]",
        "spec.paths[3]",
        "spec.paths[4]",
        "spec.paths[5]",
    ];
    if cfg!(unix) {
        expect.push("spec.engine");
    }
    assert_eq!(fields, expect, "{r:?}");
    assert!(drive_path(r"C:\Users\Public"));
    assert!(!drive_path("C:"));
    assert!(!drive_path(""));
}
