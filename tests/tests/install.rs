//! The README's "Install on a host", run as written: the package and the agent's identity made on
//! an operator's machine (this one, against the real API server); the package installed with the
//! real apt-get and dpkg, the kubeconfig and /etc/default/unyo-agent written, as root on "the host"
//! — a copy-on-write overlay of this machine's root in a mount namespace of its own, so nothing
//! outside the overlay changes; then the Server's first facts and AgentConnected, with the
//! controller running. No systemd runs as PID 1 here, so `systemctl restart unyo-agent` is the
//! one command answered by the test: it starts the installed unit's ExecStart with its
//! EnvironmentFile and ConditionPathExists, as systemd would.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use unyo_tests::{Running, control_plane, readme_block, repo_root, stdout_of, workspace_binary};

/// What `systemctl` does on the overlay host: `restart|start unyo-agent` runs the unit as systemd
/// would (its condition, environment file and ExecStart, in the background, the pid kept in
/// /var/log/unyo-agent.test.pid); every other call is reported and ignored.
const SYSTEMCTL: &str = r#"#!/bin/bash
set -euo pipefail
unit=/lib/systemd/system/unyo-agent.service
case "$1 ${2%.service}" in
  "restart unyo-agent"|"start unyo-agent")
    [ -e "$(sed -n 's/^ConditionPathExists=//p' "$unit")" ] || { echo "condition failed" >&2; exit 0; }
    set -a; . "$(sed -n 's/^EnvironmentFile=//p' "$unit")"; set +a
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    eval "nohup $exec_start >/var/log/unyo-agent.test.log 2>&1 &"
    echo $! >/var/log/unyo-agent.test.pid ;;
  *) echo "systemctl (test): ignoring $*" >&2 ;;
esac
"#;

/// The overlay host: a directory with upper/work/merged, removed (after its agent is stopped)
/// when dropped.
struct Host {
    dir: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = std::env::temp_dir().join(format!("unyo-host-{}", std::process::id()));
        for d in [
            "upper/root/unyo-install",
            "upper/usr/local/sbin",
            "work",
            "merged",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let fake = dir.join("upper/usr/local/sbin/systemctl");
        std::fs::write(&fake, SYSTEMCTL).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&fake, mode).unwrap();
        Host { dir }
    }

    /// Where files put into the host's /root/unyo-install go.
    fn inbox(&self) -> PathBuf {
        self.dir.join("upper/root/unyo-install")
    }

    /// A file as the host sees it, when the host wrote it (the overlay's upper layer).
    fn written(&self, path: &str) -> PathBuf {
        self.dir.join("upper").join(path.trim_start_matches('/'))
    }

    /// Runs `script` as root on the host, in /root/unyo-install.
    fn run(&self, script: &str) -> String {
        let d = self.dir.display();
        let setup = format!(
            "mount -t overlay overlay -o lowerdir=/,upperdir={d}/upper,workdir={d}/work {d}/merged \
             && for m in proc sys dev; do mount --rbind /$m {d}/merged/$m; done \
             && exec chroot {d}/merged /bin/bash -euo pipefail -c \"cd /root/unyo-install && $0\""
        );
        stdout_of(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "bash", "-c", &setup])
                .arg(script)
                .env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .env("HOME", "/root")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.written("/var/log/unyo-agent.test.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_with(dirs: &[&Path]) -> String {
    dirs.iter()
        .map(|d| d.to_string_lossy().into_owned())
        .chain(std::env::var("PATH").ok())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn install_on_a_host_as_the_readme_says() {
    let cp = control_plane().unwrap();
    cp.apply_samples(&["namespace.yaml", "servers/db01.yaml"])
        .unwrap();
    let agent = workspace_binary("unyo-agent", "unyo-agent").unwrap();
    workspace_binary("unyo-cli", "unyo").unwrap();
    let controller = workspace_binary("unyo-controller", "unyo-controller").unwrap();
    let bin = agent.parent().unwrap();
    // A README block run on the operator's machine (this one).
    let operator = |block: &str| {
        stdout_of(
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &readme_block(block).unwrap()])
                .current_dir(repo_root())
                .env("PATH", path_with(&[bin, cp.kubectl.parent().unwrap()]))
                .env("KUBECONFIG", &cp.kubeconfig)
                .env("UNYO_BINARIES", bin),
        )
    };

    // On the operator's machine.
    let printed = operator("install-host-operator").unwrap();
    let deb = PathBuf::from(printed.lines().next().unwrap().trim());
    assert!(deb.ends_with("unyo-agent_0.1.0_amd64.deb"), "{printed}");
    let kubeconfig = repo_root().join("db01.kubeconfig");
    let host = Host::new();
    std::fs::copy(
        repo_root().join(&deb),
        host.inbox().join("unyo-agent_0.1.0_amd64.deb"),
    )
    .unwrap();
    std::fs::rename(&kubeconfig, host.inbox().join("db01.kubeconfig"))
        .or_else(|_| std::fs::copy(&kubeconfig, host.inbox().join("db01.kubeconfig")).map(|_| ()))
        .unwrap();
    let _ = std::fs::remove_file(&kubeconfig);

    // On the host, as root.
    let mut ctl_cmd = Command::new(&controller);
    ctl_cmd
        .arg("--kubeconfig")
        .arg(cp.controller_kubeconfig().await.unwrap())
        .args(["-n", "mie"]);
    let _ctl = Running::spawn(ctl_cmd, "install-controller").unwrap();
    host.run(&readme_block("install-host").unwrap());
    let installed = stdout_of(Command::new("dpkg-query").args([
        &format!("--admindir={}", host.written("/var/lib/dpkg").display()),
        "-W",
        "-f=${Status} ${Version}",
        "unyo-agent",
    ]))
    .unwrap();
    assert_eq!(installed, "install ok installed 0.1.0");
    let meta = std::fs::metadata(host.written("/etc/unyo/kubeconfig")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let default = std::fs::read_to_string(host.written("/etc/default/unyo-agent")).unwrap();
    assert!(default.contains("\nUNYO_SERVER=db01\n") && default.contains("\nUNYO_NAMESPACE=mie\n"));
    let written = std::fs::read(host.written("/etc/unyo/kubeconfig")).unwrap();
    assert_ne!(
        std::fs::read("/etc/unyo/kubeconfig").ok(),
        Some(written),
        "nothing was written outside the overlay"
    );

    // Back on the operator's machine: the first facts.
    let shown = operator("install-host-check");
    let log =
        std::fs::read_to_string(host.written("/var/log/unyo-agent.test.log")).unwrap_or_default();
    let shown = shown.unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{log}"));
    assert!(shown.contains("condition met"), "{shown}");
    assert!(shown.contains("db01"), "{shown}");
    let hostname = cp
        .kubectl_ok(
            &[
                "get",
                "server",
                "db01",
                "-n",
                "mie",
                "-o",
                "jsonpath={.status.observed.hostname}",
            ],
            None,
        )
        .unwrap();
    let this = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        hostname.trim(),
        this.trim(),
        "the facts are this machine's, read in the overlay"
    );
}
