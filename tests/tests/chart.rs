//! The Helm chart (charts/unyo, Helm built from its Go module) and the container images
//! (hack/image.sh): `helm lint`; the default values render the objects of the kustomize base
//! and the roles for people; non-default values render what they say and the real API server
//! accepts every object in a server-side dry run; wrong values fail naming the field; and the
//! README's "Install on a cluster" runs as written — images built without a container engine,
//! pushed to a registry on 127.0.0.1 (crane), `helm install` into the real API server —, after
//! which the controller binary taken back from that registry runs under the Deployment's
//! arguments as user 65532 in the image's own file system and reconciles with the chart's RBAC.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use serde_json::Value;
use unyo_crds::server::Server;
use unyo_tests::{
    ControlPlane, Running, control_plane, free_port, go_tool, readme_block, repo_root, stdout_of,
    workspace_binary,
};

/// Tests that write to the API server's cluster-wide objects take turns.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn helm() -> PathBuf {
    go_tool("helm", "helm.sh/helm/v3/cmd/helm", None).unwrap()
}

fn crane() -> PathBuf {
    go_tool(
        "oci",
        "github.com/google/go-containerregistry/cmd/crane",
        Some("crane"),
    )
    .unwrap()
}

fn chart() -> String {
    repo_root()
        .join("charts/unyo")
        .to_string_lossy()
        .into_owned()
}

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/chart")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|v| v.is_object())
        .collect()
}

fn render(extra: &[&str]) -> String {
    stdout_of(
        Command::new(helm())
            .args(["template", "unyo", &chart(), "-n", "unyo-system"])
            .args(extra),
    )
    .unwrap()
}

fn key(o: &Value) -> String {
    let m = &o["metadata"];
    format!(
        "{}/{}/{}",
        o["kind"].as_str().unwrap(),
        m["namespace"].as_str().unwrap_or(""),
        m["name"].as_str().unwrap()
    )
}

/// `o` without the labels only Helm adds (chart, instance, version, managed-by).
fn without_helm_labels(mut o: Value) -> Value {
    for at in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(map) = o.pointer_mut(at).and_then(Value::as_object_mut) {
            map.retain(|k, _| {
                !k.starts_with("helm.sh/")
                    && ![
                        "app.kubernetes.io/instance",
                        "app.kubernetes.io/version",
                        "app.kubernetes.io/managed-by",
                    ]
                    .contains(&k.as_str())
            });
        }
    }
    o
}

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| (key(&o), without_helm_labels(o)))
        .collect()
}

#[test]
fn the_chart_lints_and_renders_what_kustomize_renders() {
    let cp = control_plane().unwrap();
    for values in [None, Some(fixture("custom-values.yaml"))] {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict", &chart()]);
        if let Some(v) = &values {
            cmd.args(["-f", v]);
        }
        stdout_of(&mut cmd).unwrap();
    }
    let chart_objects = by_key(docs(&render(&[])));
    let kustomized = cp
        .kubectl_ok(
            &[
                "kustomize",
                repo_root().join("manifests/controller").to_str().unwrap(),
            ],
            None,
        )
        .unwrap();
    let roles = std::fs::read_to_string(repo_root().join("manifests/rbac/roles.yaml")).unwrap();
    let mut base = docs(&kustomized);
    base.extend(docs(&roles));
    // The chart leaves the namespace to `helm install --create-namespace`.
    base.retain(|o| o["kind"] != "Namespace");
    let base = by_key(base);
    assert_eq!(
        chart_objects.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (k, o) in &base {
        assert_eq!(
            &chart_objects[k], o,
            "{k} differs between chart and kustomize"
        );
    }
    // The chart's copies of the alert rules, the dashboard and the roles are the manifests'.
    for (copy, original) in [
        ("files/alerts.yaml", "manifests/observability/alerts.yaml"),
        (
            "files/grafana-dashboard.json",
            "manifests/observability/grafana-dashboard.json",
        ),
        ("files/roles.yaml", "manifests/rbac/roles.yaml"),
    ] {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(&repo_root().join("charts/unyo").join(copy)),
            read(&repo_root().join(original)),
            "charts/unyo/{copy} is stale: cp {original} charts/unyo/{copy}"
        );
    }
}

/// A server-side dry run of `manifests` (YAML or JSON) on the real API server.
fn dry_run(cp: &ControlPlane, manifests: &str) {
    cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            // The README test may have installed the release already (helm owns its fields):
            // a dry run changes nothing, so it may take them over to validate every object.
            "--force-conflicts",
            "--field-manager=helm-test",
            "-f",
            "-",
        ],
        Some(manifests),
    )
    .unwrap();
}

fn ensure_namespace(cp: &ControlPlane, ns: &str) {
    let doc = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#);
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&doc))
        .unwrap();
}

#[test]
fn default_and_custom_values_pass_a_server_side_dry_run() {
    let cp = control_plane().unwrap();
    let _turn = CLUSTER.blocking_lock();
    ensure_namespace(cp, "unyo-system");
    ensure_namespace(cp, "mie");
    dry_run(cp, &render(&["--include-crds"]));

    let custom = docs(&render(&["-f", &fixture("custom-values.yaml")]));
    let find = |kind: &str, name: &str| {
        custom
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let d = find("Deployment", "unyo-controller");
    assert_eq!(d["spec"]["replicas"], 3);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        "registry.example.org/unyo/unyo-controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["imagePullPolicy"], "Always");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "--leader-elect",
        "--leader-election-namespace=unyo-system",
        "--leader-election-name=unyo-controller-mie",
        "--agent-grace=90s",
        "--namespace=mie",
        "--log-format=text",
        "--now=2026-12-01T00:00:00Z",
    ] {
        assert!(args.contains(&want), "{want} missing from {args:?}");
    }
    assert_eq!(
        find("Role", "unyo-controller-election")["rules"][1]["resourceNames"][0],
        "unyo-controller-mie"
    );
    let binding = find("RoleBinding", "unyo-controller-secrets");
    assert_eq!(binding["metadata"]["namespace"], "mie");
    assert!(
        !custom
            .iter()
            .any(|o| o["metadata"]["name"] == "unyo-operator"),
        "roles.create false renders no roles for people"
    );
    let sm = find("ServiceMonitor", "unyo-controller");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    let dashboard = find("ConfigMap", "unyo-controller-dashboard");
    let json: Value =
        serde_json::from_str(dashboard["data"]["unyo-fleet.json"].as_str().unwrap()).unwrap();
    assert!(json["panels"].as_array().is_some_and(|p| !p.is_empty()));

    // The PrometheusRule carries the alert rules promtool accepts (its CRD is not served here).
    let rule = find("PrometheusRule", "unyo-controller");
    let rules_file = std::env::temp_dir().join(format!("unyo-rule-{}.json", std::process::id()));
    std::fs::write(&rules_file, rule["spec"].to_string()).unwrap();
    let promtool = unyo_tests::prometheus::bin_dir().unwrap().join("promtool");
    let checked = stdout_of(
        Command::new(promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules_file),
    );
    std::fs::remove_file(&rules_file).ok();
    assert!(checked.unwrap().contains("SUCCESS"));

    let served: Vec<Value> = custom
        .into_iter()
        .filter(|o| {
            !o["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com/")
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": served});
    dry_run(cp, &list.to_string());
}

#[test]
fn wrong_values_fail_naming_the_field() {
    for (file, fields) in [
        ("wrong-type.yaml", &["/replicas"][..]),
        (
            "unknown-field.yaml",
            &["'replica' not allowed", "/controller/agentGrace"][..],
        ),
    ] {
        let out = Command::new(helm())
            .args(["template", "unyo", &chart(), "-f", &fixture(file)])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{file} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        for f in fields {
            assert!(err.contains(f), "{file}: {f} not named in: {err}");
        }
    }
}

/// The image configuration of an OCI layout directory (its only manifest).
fn image_config(layout: &Path) -> Value {
    let read =
        |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let blob = |digest: &Value| {
        layout
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(layout.join("index.json"));
    let manifest = read(blob(&index["manifests"][0]["digest"]));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    read(blob(&manifest["config"]["digest"]))
}

/// ENTRYPOINT, USER and the label titles of each stage of the Containerfile.
fn containerfile_stage(stage: &str) -> (String, String, String) {
    let text = std::fs::read_to_string(repo_root().join("Containerfile")).unwrap();
    let body = text
        .split("\nFROM ")
        .find(|s| s.lines().next().unwrap().ends_with(&format!(" AS {stage}")))
        .unwrap();
    let value = |prefix: &str| {
        body.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_string()
    };
    (
        value("ENTRYPOINT "),
        value("USER "),
        value("LABEL org.opencontainers.image.title="),
    )
}

fn check_images(out: &Path) {
    for (name, binary) in [("unyo-controller", "unyo-controller"), ("unyo", "unyo")] {
        let layout = out.join(format!("{name}-0.1.0"));
        assert!(out.join(format!("{name}-0.1.0.oci.tar")).is_file());
        let config = image_config(&layout);
        let c = &config["config"];
        let entrypoint = format!("/usr/bin/{binary}");
        assert_eq!(c["Entrypoint"], serde_json::json!([entrypoint]));
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(c["Labels"]["org.opencontainers.image.title"], name);
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], "0.1.0");
        assert_eq!(
            c["Labels"]["org.opencontainers.image.licenses"],
            "Apache-2.0"
        );
        assert_eq!(
            (config["os"].as_str(), config["architecture"].as_str()),
            (Some("linux"), Some("amd64"))
        );
        let (entry, user, title) = containerfile_stage(name);
        assert_eq!(
            entry,
            format!(r#"["{entrypoint}"]"#),
            "Containerfile {name}"
        );
        assert_eq!(user, "65532:65532", "Containerfile {name}");
        assert!(
            title.starts_with(&format!("{name} ")),
            "Containerfile {name}: {title}"
        );
    }
}

/// The image's file system, as the registry serves it, unpacked into a new directory.
fn pull_rootfs(reference: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tar = dir.with_extension("tar");
    stdout_of(Command::new(crane()).arg("export").arg(reference).arg(&tar)).unwrap();
    stdout_of(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(dir)).unwrap();
    std::fs::remove_file(tar).ok();
}

/// Runs the controller found in `rootfs` as user 65532, chrooted there, with the arguments the
/// Deployment gives it (its metrics on a free port) and a token of the chart's ServiceAccount.
async fn run_as_deployed(cp: &ControlPlane, rootfs: &Path, deployment: &Value) -> Running {
    let kubeconfig = cp
        .token_kubeconfig("unyo-system", "unyo-controller")
        .await
        .unwrap();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    // A CA named by path must be found at that path inside the image.
    let config: Value = serde_saphyr::from_str(&text).unwrap();
    if let Some(ca) = config.pointer("/clusters/0/cluster/certificate-authority") {
        let ca = Path::new(ca.as_str().unwrap());
        let inside = rootfs.join(ca.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(ca, inside).unwrap();
    }
    std::fs::write(rootfs.join("tmp/kubeconfig"), text).unwrap();
    stdout_of(Command::new("chmod").args(["-R", "a+rX"]).arg(rootfs)).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let port = free_port().unwrap();
    let args = container["args"].as_array().unwrap().iter().map(|a| {
        let a = a.as_str().unwrap();
        if a.starts_with("--metrics-addr=") {
            format!("--metrics-addr=127.0.0.1:{port}")
        } else {
            a.to_string()
        }
    });
    let entrypoint = "/usr/bin/unyo-controller";
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg("--userspec=65532:65532")
        .arg(rootfs)
        .arg(entrypoint)
        .args(args)
        .args(["--kubeconfig", "/tmp/kubeconfig"])
        .env_clear()
        .env("POD_NAMESPACE", "unyo-system")
        .env("POD_NAME", "unyo-controller-test");
    Running::spawn(cmd, "controller-from-image").unwrap()
}

#[tokio::test]
async fn install_on_a_cluster_as_the_readme_says() {
    let cp = control_plane().unwrap();
    let _turn = CLUSTER.lock().await;
    let controller = workspace_binary("unyo-controller", "unyo-controller").unwrap();
    workspace_binary("unyo-cli", "unyo").unwrap();
    let port = free_port().unwrap();
    let registry = format!("127.0.0.1:{port}");
    let mut serve = Command::new(crane());
    serve.args(["registry", "serve", "--address", &registry]);
    let _registry = Running::spawn(serve, "registry").unwrap();
    let path = [
        helm().parent().unwrap(),
        crane().parent().unwrap(),
        cp.kubectl.parent().unwrap(),
    ]
    .iter()
    .map(|p| p.to_string_lossy().into_owned())
    .chain(std::env::var("PATH").ok())
    .collect::<Vec<_>>()
    .join(":");
    let block = readme_block("install-cluster").unwrap();
    let out = stdout_of(
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .current_dir(repo_root())
            .env("PATH", path)
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("REGISTRY", &registry)
            // The images take the debug binaries the tests built rather than a release build.
            .env("UNYO_BINARIES", controller.parent().unwrap()),
    )
    .unwrap();
    assert!(out.contains("unyo-controller"), "{out}");

    check_images(&unyo_tests::target_dir().join("images"));

    let deployment: Value = serde_json::from_str(
        &cp.kubectl_ok(
            &[
                "get",
                "deployment",
                "unyo-controller",
                "-n",
                "unyo-system",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap(),
    )
    .unwrap();
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(image, format!("{registry}/unyo-controller:0.1.0"));
    let status = cp
        .kubectl_ok(
            &[
                "get",
                "secret",
                "-n",
                "unyo-system",
                "-l",
                "owner=helm",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    assert!(status.contains("sh.helm.release.v1.unyo.v1"), "{status}");

    // The image the Deployment names, from the registry, runs as the chart deploys it.
    let rootfs = std::env::temp_dir().join(format!("unyo-image-{}", std::process::id()));
    pull_rootfs(image, &rootfs);
    let ns = cp.namespace("install").await.unwrap();
    let ledger = std::fs::read_to_string(repo_root().join("manifests/samples/servers/db01.yaml"))
        .unwrap()
        .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&ledger))
        .unwrap();
    let mut ctl = run_as_deployed(cp, &rootfs, &deployment).await;
    let servers: Api<Server> = Api::namespaced(cp.client().await.unwrap(), &ns);
    let start = Instant::now();
    let reconciled = loop {
        let s = servers.get("db01").await.unwrap();
        let ready = s
            .status
            .iter()
            .flat_map(|st| st.conditions.iter())
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Reconciled");
        if ready || start.elapsed() > Duration::from_secs(60) || !ctl.alive() {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log = ctl.log();
    drop(ctl);
    std::fs::remove_dir_all(&rootfs).ok();
    assert!(
        reconciled,
        "the controller from the image did not reconcile db01:\n{log}"
    );
    let cli = pull_and_keep(&registry);
    let version = stdout_of(
        Command::new("/usr/sbin/chroot")
            .args(["--userspec=65532:65532"])
            .arg(&cli)
            .args(["/usr/bin/unyo", "--version"]),
    );
    std::fs::remove_dir_all(&cli).ok();
    assert_eq!(version.unwrap().trim(), "unyo 0.1.0");
}

/// The `unyo` image pushed by the README (it carries the report fonts), unpacked; its path.
fn pull_and_keep(registry: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unyo-cli-image-{}", std::process::id()));
    pull_rootfs(&format!("{registry}/unyo:0.1.0"), &dir);
    assert!(
        dir.join("usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
            .is_file(),
        "the report font is in the image"
    );
    dir
}
