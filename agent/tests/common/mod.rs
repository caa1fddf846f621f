//! What the agent's end-to-end tests share: a simulated Debian host, free ports, and waiting
//! for the Server `db01` to reach a state.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::Api;
use kube::runtime::wait::await_condition;
use unyo_crds::Server;
use unyo_tests::{ControlPlane, Running};

/// Writes the files of a simulated Debian host beneath `root`.
pub fn fake_host(root: &Path, hostname: &str) {
    let files: &[(&str, &str)] = &[
        ("etc/hostname", hostname),
        (
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        ),
        ("etc/debian_version", "12.7"),
        ("etc/timezone", "Asia/Tokyo"),
        ("proc/sys/kernel/osrelease", "6.1.0-25-amd64"),
        ("proc/sys/kernel/arch", "x86_64"),
        (
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6430\nphysical id\t: 0\ncpu cores\t: 2\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6430\nphysical id\t: 0\ncpu cores\t: 2\n\n",
        ),
        (
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree:         8000000 kB\nMemAvailable:   12000000 kB\n",
        ),
        ("proc/stat", "cpu  1 2 3 4 5 6 7 0 0 0\nbtime 1764000000\n"),
        (
            "proc/mounts",
            "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
        ),
        ("sys/block/sda/size", "1875385008"),
        ("sys/block/sda/device/model", "PERC H755"),
        ("sys/block/loop0/size", "0"),
        ("sys/class/net/eth0/address", "52:54:00:12:34:56"),
        (
            "proc/net/if_inet6",
            "fe80000000000000505400fffe123456 02 40 20 80     eth0\n",
        ),
        (
            "var/lib/dpkg/status",
            "Package: postgresql-15\nStatus: install ok installed\nArchitecture: amd64\nVersion: 15.8-0+deb12u1\n\nPackage: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.14-1~deb12u2\n\nPackage: removed-one\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n",
        ),
        (
            "var/log/app.log",
            "startup FATAL in the past, before the agent\n",
        ),
    ];
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    // /proc/meminfo and /proc/stat in the kernel's full layout, with this host's own values.
    let replace_line = |text: String, key: &str, line: &str| {
        text.lines()
            .map(|l| if l.starts_with(key) { line } else { l })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    std::fs::write(
        root.join("proc/meminfo"),
        replace_line(meminfo, "MemTotal:", "MemTotal:       16384000 kB"),
    )
    .unwrap();
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    std::fs::write(
        root.join("proc/stat"),
        replace_line(stat, "btime ", "btime 1764000000"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/available"), "").unwrap();
}

pub fn free_port() -> u16 {
    unyo_tests::free_port().unwrap()
}

/// A ClamAV signature database in `dir`: an MD5 signature of the file `sample`, named `name`
/// (made with Debian's sigtool).
pub fn signatures(sample: &Path, dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let md5 = std::process::Command::new("sigtool")
        .arg("--md5")
        .arg(sample)
        .output()
        .expect("sigtool (Debian package clamav)");
    let line = String::from_utf8_lossy(&md5.stdout).trim().to_string();
    let (hash_size, _) = line.rsplit_once(':').unwrap();
    std::fs::write(dir.join("unyo.hdb"), format!("{hash_size}:{name}\n")).unwrap();
}

/// Waits up to `secs` for Server db01 to satisfy `cond`; panics with its status and the agent's
/// log otherwise.
pub async fn wait_server(
    api: &Api<Server>,
    what: &str,
    secs: u64,
    agent: &Running,
    cond: impl Fn(&Server) -> bool,
) -> Server {
    let r = tokio::time::timeout(
        Duration::from_secs(secs),
        await_condition(api.clone(), "db01", move |s: Option<&Server>| {
            s.is_some_and(&cond)
        }),
    )
    .await;
    match r {
        Ok(Ok(Some(s))) => s,
        other => {
            let now = api.get("db01").await.ok().and_then(|s| s.status);
            panic!(
                "{what} did not happen ({other:?})\nstatus: {now:#?}\nagent log:\n{}",
                agent.log()
            )
        }
    }
}

/// A host of an end-to-end test: its work directory, simulated root, the agent's kubeconfig,
/// the Servers of its namespace.
pub struct Host {
    pub work: PathBuf,
    pub root: PathBuf,
    pub kubeconfig: PathBuf,
    pub servers: Api<Server>,
    pub ns: String,
}

/// A namespace with Server db01 and the sample calendar, a simulated host, the agent's
/// identity from `unyo agent bootstrap`, and the host policy `policy`.
pub async fn prepare(cp: &'static ControlPlane, prefix: &str, policy: &str) -> Host {
    let ns = cp.namespace(prefix).await.unwrap();
    let client = cp.client().await.unwrap();
    for (file, from) in [
        ("servers/db01.yaml", "namespace: mie"),
        ("calendar.yaml", "namespace: mie"),
    ] {
        let yaml =
            std::fs::read_to_string(unyo_tests::repo_root().join("manifests/samples").join(file))
                .unwrap()
                .replace(from, &format!("namespace: {ns}"));
        cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&yaml))
            .unwrap();
    }
    let work = std::env::temp_dir().join(format!("unyo-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let root = work.join("root");
    fake_host(&root, "db01");
    let kubeconfig = work.join("agent.kubeconfig");
    unyo_cli::bootstrap::run(&unyo_cli::bootstrap::Bootstrap {
        server: "db01",
        namespace: &ns,
        out: &kubeconfig,
        kubeconfig: Some(&cp.kubeconfig),
        server_url: None,
        token_seconds: 3600,
        rotate: false,
    })
    .await
    .unwrap();
    std::fs::write(work.join("agent.yaml"), policy).unwrap();
    Host {
        work,
        root,
        kubeconfig,
        servers: Api::namespaced(client, &ns),
        ns,
    }
}

impl Host {
    /// Starts the agent of this host.
    pub fn spawn(&self) -> Running {
        self.spawn_with(&[])
    }

    /// Starts the agent of this host with `extra` arguments.
    pub fn spawn_with(&self, extra: &[&str]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-agent"));
        cmd.args(["--server", "db01", "-n", &self.ns, "--kubeconfig"])
            .arg(&self.kubeconfig)
            .arg("--host-policy")
            .arg(self.work.join("agent.yaml"))
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(self.work.join("state"))
            .args(["--heartbeat", "1s", "--facts-interval", "2s"])
            .args(extra)
            .env("RUST_LOG", "info,unyo_agent=debug");
        Running::spawn(cmd, &format!("agent-{}", self.ns)).unwrap()
    }
}
