//! Test harness: one real control plane (etcd + kube-apiserver, built from Go modules by
//! `hack/envtest/build.sh`) per test binary, the unyo.dev CRDs installed with real `kubectl`
//! server-side apply, and a fresh namespace per test.
//!
//! The control plane is started by `hack/control-plane.sh up --owner-pid <this process>`, whose
//! watchdog stops etcd and kube-apiserver when the test process ends, however it ends.

pub mod apf;
pub mod aptlab;
pub mod postgres;
pub mod prometheus;
pub mod wine;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// A running control plane with the unyo.dev CRDs installed.
#[derive(Debug)]
pub struct ControlPlane {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl built with the control plane (same minor version as the server).
    pub kubectl: PathBuf,
    /// The repository root.
    pub repo: PathBuf,
}

static CONTROL_PLANE: OnceLock<std::result::Result<ControlPlane, String>> = OnceLock::new();

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn start() -> Result<ControlPlane> {
    let repo = repo_root();
    let build = Command::new(repo.join("hack/envtest/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running hack/envtest/build.sh")?;
    if !build.status.success() {
        bail!("building the control plane failed: {}", output_text(&build));
    }
    let bin = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());
    let up = Command::new(repo.join("hack/control-plane.sh"))
        .args(["up", "--owner-pid", &std::process::id().to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running hack/control-plane.sh up")?;
    let stdout = String::from_utf8_lossy(&up.stdout);
    let Some(kubeconfig) = stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("export KUBECONFIG="))
    else {
        bail!("control-plane.sh up did not print the kubeconfig: {stdout}");
    };
    let cp = ControlPlane {
        kubeconfig: PathBuf::from(kubeconfig),
        kubectl: bin.join("kubectl"),
        repo,
    };
    cp.install_crds()?;
    Ok(cp)
}

/// The control plane of this test binary, started on first use.
pub fn control_plane() -> Result<&'static ControlPlane> {
    CONTROL_PLANE
        .get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("control plane unavailable: {e}"))
}

impl ControlPlane {
    /// Applies the unyo.dev CRDs (manifests/crds) with real kubectl and waits until they are
    /// served.
    pub fn install_crds(&self) -> Result<()> {
        let crds = self.repo.join("manifests/crds");
        let crds = crds.to_string_lossy();
        self.kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--field-manager=unyo-tests",
                "-f",
                &crds,
            ],
            None,
        )?;
        self.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                &crds,
            ],
            None,
        )?;
        Ok(())
    }

    /// Applies files of the sample fleet (`manifests/samples/<file>`), server-side.
    pub fn apply_samples(&self, files: &[&str]) -> Result<()> {
        for f in files {
            let file = self.repo.join("manifests/samples").join(f);
            self.kubectl_ok(
                &["apply", "--server-side", "-f", &file.to_string_lossy()],
                None,
            )?;
        }
        Ok(())
    }

    /// A kubectl command against this control plane.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl with `args`, feeding `stdin` when given.
    pub fn run_kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        use std::io::Write;
        let mut cmd = self.kubectl();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .context("writing kubectl's stdin")?;
        }
        child.wait_with_output().context("waiting for kubectl")
    }

    /// Runs kubectl and fails unless it succeeds; returns its standard output.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run_kubectl(args, stdin)?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), output_text(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl, expects it to fail, and returns its combined output.
    pub fn kubectl_err(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run_kubectl(args, stdin)?;
        if out.status.success() {
            bail!(
                "kubectl {} succeeded but should have failed: {}",
                args.join(" "),
                output_text(&out)
            );
        }
        Ok(output_text(&out))
    }

    /// A kube client with admin rights.
    pub async fn client(&self) -> Result<kube::Client> {
        Ok(unyo_crds::client::connect(Some(&self.kubeconfig)).await?)
    }

    /// Creates a namespace of its own for one test, named `<prefix>-<unique suffix>`.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "{prefix}-{:x}{:x}",
            nanos & 0xfffff,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("unyo.dev/test".to_string(), prefix.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }
}

impl ControlPlane {
    /// A kubeconfig with a token of the controller's ServiceAccount, bound to the ClusterRole of
    /// `manifests/controller/rbac.yaml` (applied on first use): tests that run the controller
    /// with it prove that the RBAC it ships with is enough.
    pub async fn controller_kubeconfig(&self) -> Result<PathBuf> {
        static APPLIED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        APPLIED
            .get_or_init(|| {
                let rbac = self.repo.join("manifests/controller/rbac.yaml");
                self.kubectl_ok(
                    &[
                        "apply",
                        "--server-side",
                        "--field-manager=unyo-tests",
                        "-f",
                        &rbac.to_string_lossy(),
                    ],
                    None,
                )
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("applying the controller's RBAC: {e}"))?;
        self.token_kubeconfig("unyo-system", "unyo-controller")
            .await
    }

    /// The API server's URL, `https://127.0.0.1:<port>` (no trailing slash).
    pub fn server_url(&self) -> Result<String> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .context("reading the control plane's kubeconfig")?;
        let url = kc
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .context("the control plane's kubeconfig names no server")?;
        Ok(url.trim_end_matches('/').to_string())
    }

    /// Restarts `which` (`apiserver` or `etcd`) of this control plane: stopped with SIGTERM and
    /// started again on the same port with the same state.
    pub fn restart(&self, which: &str) -> Result<()> {
        let dir = self
            .kubeconfig
            .parent()
            .context("the kubeconfig has no directory")?;
        let out = Command::new(self.repo.join("hack/control-plane.sh"))
            .args(["restart", which, "--dir"])
            .arg(dir)
            .output()
            .context("running hack/control-plane.sh restart")?;
        if !out.status.success() {
            bail!("restarting {which}: {}", output_text(&out));
        }
        Ok(())
    }

    /// Lets the controller read Secrets in `namespace` (notification URLs and credentials), as
    /// an operator binds it per fleet namespace.
    pub fn bind_controller_secrets(&self, namespace: &str) -> Result<()> {
        self.kubectl_ok(
            &[
                "create",
                "rolebinding",
                "unyo-controller-secrets",
                "-n",
                namespace,
                "--clusterrole=unyo-controller-secrets",
                "--serviceaccount=unyo-system:unyo-controller",
            ],
            None,
        )
        .map(|_| ())
    }

    /// A kubeconfig with a token (one hour) of ServiceAccount `namespace/name`.
    pub async fn token_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let sas: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let token = sas
            .create_token_request(
                name,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec![],
                        expiration_seconds: Some(3600),
                        bound_object_ref: None,
                    },
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("requesting a token for {namespace}/{name}"))?
            .status
            .context("no token")?
            .token;
        let admin = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let cluster = admin
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .context("the admin kubeconfig has no cluster")?;
        let mut c = serde_json::json!({ "server": cluster.server });
        if let Some(data) = cluster.certificate_authority_data {
            c["certificate-authority-data"] = data.into();
        }
        if let Some(file) = cluster.certificate_authority {
            c["certificate-authority"] = file.into();
        }
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": c}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
            "current-context": name,
        });
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "{name}-{}-{}.kubeconfig",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, serde_saphyr::to_string(&config)?)?;
        Ok(path)
    }
}

/// Renews the Lease of `server`'s agent the way the agent does: server-side apply as
/// `unyo-agent`, labelled `unyo.dev/agent-of` (the controller watches only such Leases), held
/// for `seconds` from now.
pub async fn renew_agent_lease(
    leases: &Api<k8s_openapi::api::coordination::v1::Lease>,
    server: &str,
    seconds: i32,
) -> Result<()> {
    let name = unyo_crds::names::agent_lease_name(server);
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "labels": {
            (unyo_crds::names::labels::AGENT_OF): server,
            (unyo_crds::names::labels::MANAGED_BY): unyo_crds::names::labels::MANAGED_BY_UNYO}},
        "spec": {"holderIdentity": server, "leaseDurationSeconds": seconds,
                 "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
    });
    leases
        .patch(
            &name,
            &kube::api::PatchParams::apply("unyo-agent").force(),
            &kube::api::Patch::Apply(&lease),
        )
        .await
        .with_context(|| format!("renewing Lease {name}"))?;
    Ok(())
}

/// Waits up to `secs` for `cond` to hold for the object `name`; on time-out, panics with `what`,
/// the object as it is, and the logs of the processes the test started.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    secs: u64,
    logs: &[&Running],
    cond: impl Fn(&K) -> bool,
) -> K
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        kube::runtime::wait::await_condition(api.clone(), name, move |o: Option<&K>| {
            o.is_some_and(&cond)
        }),
    )
    .await;
    match r {
        Ok(Ok(Some(o))) => o,
        other => panic!(
            "{name}: {what} did not happen ({other:?})\nnow: {:#?}\nlogs:\n{}",
            api.get_opt(name).await.ok().flatten(),
            logs.iter()
                .map(|l| l.log())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        ),
    }
}

/// A binary of this workspace, built first if needed (`cargo build -p package --bin bin`), for
/// tests of one crate that run another crate's binary.
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    workspace_binary_for(package, bin, None)
}

/// [`workspace_binary`] for another target (`--target`), e.g. `x86_64-pc-windows-gnu`: the path
/// of the file cargo writes, whose name has the target's suffix (`.exe`).
pub fn workspace_binary_for(package: &str, bin: &str, target: Option<&str>) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "--locked", "-p", package, "--bin", bin])
        .args(target.iter().flat_map(|t| ["--target", t]))
        .current_dir(repo_root())
        .status()
        .with_context(|| format!("building {bin}"))?;
    anyhow::ensure!(status.success(), "building {bin} failed");
    let dir = match target {
        Some(t) => target_dir().join(t).join("debug"),
        None => target_dir().join("debug"),
    };
    let windows = target.is_some_and(|t| t.contains("windows"));
    Ok(dir.join(if windows {
        format!("{bin}.exe")
    } else {
        bin.to_string()
    }))
}

/// cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A Go command built from one of the wrapper modules under hack/ (helm, kstatus, oci) by
/// `hack/go-tool.sh MODULE PACKAGE [NAME]`, which caches it; the path of the binary.
pub fn go_tool(module: &str, package: &str, name: Option<&str>) -> Result<PathBuf> {
    let mut cmd = Command::new(repo_root().join("hack/go-tool.sh"));
    cmd.args([module, package]).args(name);
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running hack/go-tool.sh {module}"))?;
    anyhow::ensure!(
        out.status.success(),
        "hack/go-tool.sh {module} {package} failed"
    );
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The shell commands of the README's block marked `<!-- test: NAME -->` (the next ```sh fence
/// after the marker), so that tests run exactly what the README tells users to run.
pub fn readme_block(name: &str) -> Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let marker = format!("<!-- test: {name} -->");
    let after = readme
        .split_once(&marker)
        .with_context(|| format!("README.md has no {marker}"))?
        .1;
    let body = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .with_context(|| format!("no ```sh block after {marker}"))?
        .0;
    Ok(body.to_string())
}

/// A process a test started; it is killed (and reaped) when this is dropped, also when the test
/// fails. Its standard output and error go to a log file.
#[derive(Debug)]
pub struct Running {
    child: std::process::Child,
    log: PathBuf,
}

impl Running {
    /// Starts `cmd` with its output in a log file named after `name`.
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Running> {
        let dir = std::env::temp_dir().join("unyo-tests");
        std::fs::create_dir_all(&dir).context("creating the log directory")?;
        let log = dir.join(format!("{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).context("creating the log file")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("opening the log file")?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Running { child, log })
    }

    /// What the process has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Server's host matches its ledger and its agent reports: InSync and AgentConnected
/// both True. (Ready says only that the controller reconciled the Server.)
pub fn in_sync_and_connected(s: &unyo_crds::server::Server) -> bool {
    let is_true = |t: &str| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True")
        })
    };
    is_true(unyo_crds::names::conditions::IN_SYNC)
        && is_true(unyo_crds::names::conditions::AGENT_CONNECTED)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The API resource of a unyo.dev kind, named as its CRD names it (for dynamic requests).
pub fn unyo_resource(kind: &str) -> Result<kube::discovery::ApiResource> {
    let crd = unyo_crds::crdgen::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .with_context(|| format!("no unyo.dev kind {kind}"))?;
    Ok(kube::discovery::ApiResource {
        group: crd.spec.group.clone(),
        version: unyo_crds::VERSION.into(),
        api_version: format!("{}/{}", crd.spec.group, unyo_crds::VERSION),
        kind: kind.into(),
        plural: crd.spec.names.plural.clone(),
    })
}

/// Creates a unyo.dev object in `namespace` from a whole document (`apiVersion`, `kind`,
/// `metadata`, `spec` and, if any, `status`): the object first, then its status through the
/// status subresource, both by server-side apply as `manager` (as the controller and the agents
/// write status).
pub async fn create_with_status(
    client: &kube::Client,
    namespace: &str,
    manager: &str,
    mut doc: serde_json::Value,
) -> Result<()> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let kind = doc["kind"]
        .as_str()
        .context("a document without kind")?
        .to_string();
    let name = doc["metadata"]["name"]
        .as_str()
        .context("a document without a name")?
        .to_string();
    let status = doc.as_object_mut().and_then(|o| o.remove("status"));
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &unyo_resource(&kind)?);
    let pp = PatchParams::apply(manager).force();
    api.patch(&name, &pp, &Patch::Apply(&doc))
        .await
        .with_context(|| format!("{kind}/{name}"))?;
    if let Some(status) = status {
        let body =
            serde_json::json!({"apiVersion": doc["apiVersion"], "kind": kind, "status": status});
        api.patch_status(&name, &pp, &Patch::Apply(&body))
            .await
            .with_context(|| format!("{kind}/{name} status"))?;
    }
    Ok(())
}

/// Runs `cmd` to its end; its standard output, or an error with its standard error when it
/// fails.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `cmd` with `input` on its standard input; its output, whatever its exit status.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> Result<Output> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    child
        .stdin
        .take()
        .context("no standard input")?
        .write_all(input)?;
    Ok(child.wait_with_output()?)
}

/// Whether every field of `expected` is present in `actual` with an equal value (objects are
/// compared key by key, recursively; arrays and scalars must be equal element by element).
/// Returns the path of the first difference.
pub fn subset_mismatch(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, ev)| match a.get(k) {
            Some(av) => subset_mismatch(ev, av, &format!("{path}.{k}")),
            None => Some(format!("{path}.{k}: missing")),
        }),
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!("{path}: {} items, read back {}", e.len(), a.len()));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| subset_mismatch(ev, av, &format!("{path}[{i}]")))
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        (e, a) if e == a => None,
        (e, a) => Some(format!("{path}: expected {e}, read back {a}")),
    }
}

/// A CA, and a certificate for 127.0.0.1 it issued, made with openssl in `dir`: the paths of
/// the CA certificate, the certificate and its key.
pub fn tls_files(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", output_text(&out));
        }
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=unyo test CA",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])?;
    Ok((
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    ))
}

#[cfg(test)]
mod tests {
    use super::subset_mismatch;
    use serde_json::json;

    #[test]
    fn subset_reports_first_difference() {
        let a = json!({"spec": {"a": 1, "b": [1, 2], "extra": true}});
        assert_eq!(
            subset_mismatch(&json!({"spec": {"a": 1, "b": [1, 2]}}), &a, ""),
            None
        );
        assert_eq!(
            subset_mismatch(&json!({"spec": {"a": 2}}), &a, "").as_deref(),
            Some(".spec.a: expected 2, read back 1")
        );
        assert_eq!(
            subset_mismatch(&json!({"spec": {"c": 1}}), &a, "").as_deref(),
            Some(".spec.c: missing")
        );
        assert!(subset_mismatch(&json!({"spec": {"b": [1]}}), &a, "").is_some());
        assert_eq!(subset_mismatch(&json!(1.0), &json!(1), ""), None);
    }
}
