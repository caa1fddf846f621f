//! The agent's Debian package (hack/package-deb.sh): lintian finds no error, its systemd unit
//! passes `systemd-analyze verify`, and it installs, upgrades (keeping a changed host policy)
//! and purges cleanly beneath a test root with the real dpkg.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use unyo_tests::{aptlab, repo_root, stdout_of, workspace_binary};

fn package(version: &str, out: &Path) -> PathBuf {
    let agent = workspace_binary("unyo-agent", "unyo-agent").unwrap();
    let printed = stdout_of(Command::new(repo_root().join("hack/package-deb.sh")).args([
        "--binary",
        agent.to_str().unwrap(),
        "--version",
        version,
        "--out",
        out.to_str().unwrap(),
    ]))
    .unwrap();
    PathBuf::from(printed.trim())
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    stdout_of(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--force-confold",
            ])
            .args(args),
    )
    .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `systemd-analyze verify` of the installed unit beneath `root` (with this machine's own units
/// and /bin/kill copied there): its exit status and what it said.
fn verify(root: &Path) -> (bool, String) {
    let units = root.join("lib/systemd/system");
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap().flatten() {
        let to = units.join(entry.file_name());
        if !to.exists() && entry.path().is_file() {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("/lib/systemd/system/unyo-agent.service")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("unyo-agent"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.status.success(), said)
}

#[test]
fn the_agent_package_lints_installs_upgrades_and_purges() {
    let work = std::env::temp_dir().join(format!("unyo-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (v1, v2) = (
        package("0.1.0", &work.join("out")),
        package("0.1.1", &work.join("out")),
    );
    assert!(
        v1.ends_with("unyo-agent_0.1.0_amd64.deb"),
        "{}",
        v1.display()
    );

    let lint = Command::new("lintian")
        .args(["--fail-on", "error"])
        .arg(&v1)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&lint.stdout);
    assert!(
        lint.status.success() && !said.lines().any(|l| l.starts_with("E:")),
        "lintian:\n{said}"
    );

    let root = work.join("root");
    aptlab::host_root(&root, &[], &[]).unwrap();
    dpkg(&root, &["-i", v1.to_str().unwrap()]);
    for (path, want) in [
        ("etc/unyo/agent.yaml", 0o600),
        ("var/lib/unyo-agent", 0o700),
        ("usr/bin/unyo-agent", 0o755),
        ("lib/systemd/system/unyo-agent.service", 0o644),
    ] {
        assert_eq!(mode(&root.join(path)), want, "{path}");
    }
    let version =
        stdout_of(Command::new(root.join("usr/bin/unyo-agent")).arg("--version")).unwrap();
    assert!(version.starts_with("unyo-agent "), "{version}");
    let (ok, said) = verify(&root);
    assert!(ok && said.is_empty(), "systemd-analyze verify:\n{said}");

    // An upgrade keeps the host's own policy and what the agent kept.
    std::fs::write(
        root.join("etc/unyo/agent.yaml"),
        "patches: {install: true}\n",
    )
    .unwrap();
    std::fs::write(root.join("var/lib/unyo-agent/journal.json"), "[]").unwrap();
    std::fs::write(root.join("etc/unyo/kubeconfig"), "apiVersion: v1\n").unwrap();
    dpkg(&root, &["-i", v2.to_str().unwrap()]);
    let status = stdout_of(
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Version} ${db:Status-Status}", "unyo-agent"]),
    )
    .unwrap();
    assert_eq!(status, "0.1.1 installed");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/unyo/agent.yaml")).unwrap(),
        "patches: {install: true}\n"
    );
    assert!(root.join("var/lib/unyo-agent/journal.json").exists());

    // Purge removes everything the package and the agent put there.
    dpkg(&root, &["--purge", "unyo-agent"]);
    for gone in [
        "usr/bin/unyo-agent",
        "lib/systemd/system/unyo-agent.service",
        "etc/default/unyo-agent",
        "etc/unyo",
        "var/lib/unyo-agent",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is left after purge");
    }

    // The check is not blind: a unit whose program is missing fails verification.
    let broken = work.join("broken");
    std::fs::create_dir_all(broken.join("lib/systemd/system")).unwrap();
    std::fs::copy(
        repo_root().join("packaging/deb/unyo-agent.service"),
        broken.join("lib/systemd/system/unyo-agent.service"),
    )
    .unwrap();
    let (ok, said) = verify(&broken);
    assert!(
        !ok && said.contains("/usr/bin/unyo-agent is not executable"),
        "{said}"
    );
    std::fs::remove_dir_all(&work).unwrap();
}
