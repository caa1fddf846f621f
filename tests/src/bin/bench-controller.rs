//! The controller's scale benchmark for one fleet size (`hack/bench-controller.sh` runs it once
//! per size, each against a fresh control plane).
//!
//! 1. N Servers in one namespace, each with the facts its ledger expects and a Lease that a
//!    simulated agent renews every 60 s; the release controller, with the RBAC it ships with,
//!    reconciles them until every Server is in sync and connected.
//! 2. Steady state: the controller's requests by verb (from the API server's API Priority and
//!    Fairness counts of FlowSchemas that match only the controller), Server writes, the
//!    controller's CPU.
//! 3. Burst: every Server drifts at once (one status write each); the time until every
//!    ChangeRecord exists, the latency of each from its status write, and records per second
//!    beside the rate at which this client creates ChangeRecords directly (the limit).
//! 4. Peak RSS of the controller and of kube-apiserver, and kube-apiserver's CPU.
//!
//! Usage: bench-controller --kubeconfig F --kubectl K --controller BIN --apiserver-pid P
//!        --servers N [--steady-secs 180] [--packages 300] [--json FILE]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use unyo_crds::{ChangeRecord, Server};
use unyo_tests::{ControlPlane, Running, apf, in_sync_and_connected, renew_agent_lease, repo_root};

/// Requests the driver keeps in flight (writes, creates).
const CONCURRENCY: usize = 32;
/// The heartbeat of the simulated agents.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// The FlowSchemas that count the controller's requests.
const ACCOUNT: &str = "unyo-bench-controller";
/// The identity of the simulated agents: a ServiceAccount allowed what agents do to Servers and
/// Leases. Like real agents (and unlike the admin, whom API Priority and Fairness exempts), its
/// requests are queued and shared fairly with the controller's when the API server is busy. All
/// simulated agents share it; each real agent has its own.
const AGENTS_RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: bench-agents, namespace: unyo-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bench-agents}
rules:
  - apiGroups: ["unyo.dev"]
    resources: [servers/status]
    verbs: [get, patch]
  - apiGroups: ["coordination.k8s.io"]
    resources: [leases]
    verbs: [get, create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-agents}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-agents}
subjects: [{kind: ServiceAccount, name: bench-agents, namespace: unyo-system}]
"#;

struct Args {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    controller: PathBuf,
    apiserver_pid: u32,
    servers: usize,
    steady: Duration,
    packages: usize,
    json: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        m.insert(k.trim_start_matches("--").to_string(), v);
    }
    let get = |k: &str| {
        m.get(k)
            .cloned()
            .with_context(|| format!("--{k} is required"))
    };
    Ok(Args {
        kubeconfig: get("kubeconfig")?.into(),
        kubectl: get("kubectl")?.into(),
        controller: get("controller")?.into(),
        apiserver_pid: get("apiserver-pid")?.parse()?,
        servers: get("servers")?.parse()?,
        steady: Duration::from_secs(m.get("steady-secs").map_or(Ok(180), |s| s.parse())?),
        packages: m.get("packages").map_or(Ok(300), |s| s.parse())?,
        json: m.get("json").map(PathBuf::from),
    })
}

/// CPU seconds (user + system) and peak RSS (bytes) of process `pid`.
fn usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks / clock_ticks(), hwm_kb * 1024))
}

/// Resident memory (bytes) of process `pid` now.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn ledger(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"unyo.dev/role": "db", "unyo.dev/environment": "production"}},
        "spec": {
            "hostname": name, "role": "DB", "environment": "Production",
            "os": {"name": "Debian GNU/Linux", "version": "12", "architecture": "x86_64"},
            "hardware": {"cpu": {"sockets": 2, "cores": 16, "threads": 32}, "memory": "128Gi",
                         "disks": [{"name": "sda", "kind": "Physical", "size": "960Gi"}],
                         "nics": [{"name": "eth0", "mac": "52:54:00:10:01:31", "addresses": ["10.10.1.31/24"]}]},
            "software": [{"name": "postgresql-15", "version": "15.10-0+deb12u1"},
                         {"name": "openssh-server", "version": "1:9.2p1-2+deb12u5"}],
        },
    })
}

fn facts(name: &str, os_version: &str, packages: usize) -> serde_json::Value {
    let mut pkgs = vec![
        json!({"name": "postgresql-15", "version": "15.10-0+deb12u1", "architecture": "amd64"}),
        json!({"name": "openssh-server", "version": "1:9.2p1-2+deb12u5", "architecture": "amd64"}),
    ];
    for i in 0..packages.saturating_sub(2) {
        pkgs.push(json!({"name": format!("lib-package-{i:04}"), "version": format!("2.{i}.1-3+deb12u1"), "architecture": "amd64"}));
    }
    json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
        "status": {"observed": {
            "observedAt": "2026-11-30T00:00:00Z",
            "hostname": name,
            "os": {"name": "Debian GNU/Linux", "version": os_version, "id": "debian", "architecture": "x86_64"},
            "cpu": {"sockets": 2, "cores": 16, "threads": 32},
            "memoryBytes": 137_438_953_472u64,
            "disks": [{"name": "sda", "sizeBytes": 1_030_792_151_040u64}],
            "nics": [{"name": "eth0", "mac": "52:54:00:10:01:31", "addresses": ["10.10.1.31/24"]}],
            "packages": pkgs,
        }},
    })
}

fn name(i: usize) -> String {
    format!("srv{i:05}")
}

/// The agent of Server `i` reports its facts (OS version `os`, `packages` packages), as agents
/// do: server-side apply of the status as `unyo-agent`.
async fn report(agents: &Api<Server>, i: usize, os: &str, packages: usize) -> Result<()> {
    agents
        .patch_status(
            &name(i),
            &PatchParams::apply("unyo-agent").force(),
            &Patch::Apply(&facts(&name(i), os, packages)),
        )
        .await?;
    Ok(())
}

/// Renews Lease `i` as its agent does (held for three heartbeats).
async fn renew(leases: &Api<Lease>, i: usize) -> Result<()> {
    renew_agent_lease(leases, &name(i), 180).await
}

/// Runs `n` requests made by `f`, CONCURRENCY at a time.
async fn each<F, Fut>(n: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    futures::stream::iter((0..n).map(f))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The simulated agents: every Lease renewed once per heartbeat, spread over it.
fn heartbeats(leases: Api<Lease>, n: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let gap = HEARTBEAT.div_f64(n.max(1) as f64);
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for i in (0..n).cycle() {
            tick.tick().await;
            let l = leases.clone();
            tokio::spawn(async move {
                if let Err(e) = renew(&l, i).await {
                    eprintln!("renewing lease {i}: {e:#}");
                }
            });
        }
    })
}

/// Waits until `count` objects of the store satisfy `ok`, at most `limit`.
async fn until<K>(
    store: &kube::runtime::reflector::Store<K>,
    count: usize,
    limit: Duration,
    what: &str,
    ok: impl Fn(&K) -> bool,
) -> Result<Duration>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let start = Instant::now();
    loop {
        let have = store.state().iter().filter(|o| ok(o)).count();
        if have >= count {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{what}: {have} of {count} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(serde::Serialize, Debug, Default)]
struct Row {
    servers: usize,
    packages_per_server: usize,
    setup_secs: f64,
    initial_reconcile_secs: f64,
    steady_secs: f64,
    steady_requests_per_sec_beyond_watches: f64,
    steady_lists: f64,
    steady_gets: f64,
    steady_writes: f64,
    steady_watches: f64,
    steady_server_writes: f64,
    steady_controller_cpu_percent: f64,
    burst_secs_until_all_records: f64,
    burst_p50_secs: f64,
    burst_p99_secs: f64,
    burst_records_per_sec: f64,
    burst_drift_writes_per_sec: f64,
    burst_settled_secs: f64,
    burst_controller_cpu_percent: f64,
    direct_creates_per_sec: f64,
    burst_controller_requests: f64,
    controller_rss_steady_mb: f64,
    controller_peak_rss_mb: f64,
    apiserver_peak_rss_mb: f64,
    apiserver_cpu_percent: f64,
}

/// One benchmark run: setup, the controller, steady state, burst, direct creates.
async fn run(a: &Args, row: &mut Row) -> Result<()> {
    let cp = ControlPlane {
        kubeconfig: a.kubeconfig.clone(),
        kubectl: a.kubectl.clone(),
        repo: repo_root(),
    };
    cp.install_crds()?;
    let client = cp.client().await?;
    let controller_kubeconfig = cp.controller_kubeconfig().await?;
    apf::account(&client, ACCOUNT, "unyo-system", "unyo-controller").await?;
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(AGENTS_RBAC))?;
    let agents_client = unyo_crds::client::connect(Some(
        &cp.token_kubeconfig("unyo-system", "bench-agents").await?,
    ))
    .await?;
    let (api_cpu0, _) = usage(a.apiserver_pid)?;
    let run_start = Instant::now();
    let ns = cp.namespace("bench").await?;
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let agents: Api<Server> = Api::namespaced(agents_client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(agents_client.clone(), &ns);
    let n = a.servers;

    let t = Instant::now();
    let pp = PostParams::default();
    each(n, |i| {
        let (servers, agents, ns, pp) = (&servers, &agents, &ns, &pp);
        async move {
            let s: Server = serde_json::from_value(ledger(ns, &name(i)))?;
            servers.create(pp, &s).await?;
            report(agents, i, "12", a.packages).await
        }
    })
    .await?;
    each(n, |i| {
        let leases = &leases;
        async move { renew(leases, i).await }
    })
    .await?;
    row.setup_secs = t.elapsed().as_secs_f64();
    eprintln!("bench: {n} Servers and Leases in {:.1}s", row.setup_secs);
    let beats = heartbeats(leases.clone(), n);

    let (server_store, w) = kube::runtime::reflector::store::<Server>();
    tokio::spawn(
        watcher(servers.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(w)
            .for_each(|_| async {}),
    );
    let port = unyo_tests::free_port()?;
    let mut cmd = Command::new(&a.controller);
    cmd.arg("--kubeconfig")
        .arg(&controller_kubeconfig)
        .args(["-n", &ns, "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_CONTROLLER_LOG").unwrap_or("warn".into()),
        );
    let mut ctl = Running::spawn(cmd, &format!("bench-controller-{n}"))?;
    let pid = ctl.pid();
    row.initial_reconcile_secs = until(
        &server_store,
        n,
        Duration::from_secs(1800),
        "Servers in sync and connected",
        in_sync_and_connected,
    )
    .await?
    .as_secs_f64();
    eprintln!(
        "bench: all {n} Servers in sync and connected after {:.1}s",
        row.initial_reconcile_secs
    );
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Steady state.
    let (c0, cpu0) = (apf::scrape(&client, ACCOUNT).await?, usage(pid)?.0);
    let t = Instant::now();
    tokio::time::sleep(a.steady).await;
    let (c1, cpu1) = (apf::scrape(&client, ACCOUNT).await?, usage(pid)?.0);
    let secs = t.elapsed().as_secs_f64();
    let d = c1.since(&c0);
    row.steady_secs = secs;
    row.steady_requests_per_sec_beyond_watches = d.beyond_watches() / secs;
    (row.steady_lists, row.steady_gets) = (d.class("list"), d.class("get"));
    (row.steady_writes, row.steady_watches) = (d.class("write"), d.class("watch"));
    row.steady_server_writes = d.server_writes;
    row.steady_controller_cpu_percent = 100.0 * (cpu1 - cpu0) / secs;
    row.controller_rss_steady_mb = rss(pid)? as f64 / 1048576.0;
    eprintln!("bench: steady state {d:?}");
    if !ctl.alive() {
        bail!("the controller exited:\n{}", ctl.log());
    }

    let (cpu_b0, tb) = (usage(pid)?.0, Instant::now());
    burst(a, row, &client, &agents, &ns).await?;
    row.burst_controller_cpu_percent =
        100.0 * (usage(pid)?.0 - cpu_b0) / tb.elapsed().as_secs_f64();
    let t = Instant::now();
    until(
        &server_store,
        n,
        Duration::from_secs(1800),
        "Servers naming their records",
        |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.change_record.is_some())
        },
    )
    .await?;
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), &ns);
    loop {
        let list = records.list(&Default::default()).await?.items;
        if list.iter().filter(|r| r.status.is_some()).count() >= n {
            break;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("the ChangeRecords did not all get a status");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    row.burst_settled_secs = row.burst_secs_until_all_records + t.elapsed().as_secs_f64();
    eprintln!(
        "bench: every status written {:.1}s after the burst began",
        row.burst_settled_secs
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c2 = apf::scrape(&client, ACCOUNT).await?;
    row.burst_controller_requests = c2.since(&c1).beyond_watches();
    row.direct_creates_per_sec = direct(&client, &cp, n).await?;

    row.controller_peak_rss_mb = usage(pid)?.1 as f64 / 1048576.0;
    let (api_cpu1, api_hwm) = usage(a.apiserver_pid)?;
    row.apiserver_peak_rss_mb = api_hwm as f64 / 1048576.0;
    row.apiserver_cpu_percent = 100.0 * (api_cpu1 - api_cpu0) / run_start.elapsed().as_secs_f64();
    beats.abort();
    drop(ctl);
    Ok(())
}

/// Every Server drifts at once; returns when every ChangeRecord exists.
async fn burst(
    a: &Args,
    row: &mut Row,
    client: &kube::Client,
    servers: &Api<Server>,
    ns: &str,
) -> Result<()> {
    let n = a.servers;
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), ns);
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let s2 = seen.clone();
    let watch = tokio::spawn(
        watcher(records, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |r| {
                if let Ok(r) = r
                    && let Some(server) = r.spec.server.clone()
                {
                    let mut m = s2.lock().unwrap_or_else(|e| e.into_inner());
                    m.entry(server).or_insert_with(Instant::now);
                }
                async {}
            }),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    each(n, |i| {
        let written = written.clone();
        async move {
            report(servers, i, "13", a.packages).await?;
            written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name(i), Instant::now());
            Ok(())
        }
    })
    .await?;
    row.burst_drift_writes_per_sec = n as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "bench: {n} drift writes in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let limit = Duration::from_secs(1800);
    loop {
        let have = seen.lock().unwrap_or_else(|e| e.into_inner()).len();
        if have >= n {
            break;
        }
        if start.elapsed() > limit {
            bail!("only {have} of {n} ChangeRecords after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let written = written.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let last = seen.values().max().copied().unwrap_or(start);
    let mut lat: Vec<f64> = written
        .iter()
        .filter_map(|(s, w)| {
            seen.get(s)
                .map(|r| r.saturating_duration_since(*w).as_secs_f64())
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    row.burst_secs_until_all_records = last.duration_since(start).as_secs_f64();
    row.burst_p50_secs = percentile(&lat, 0.50);
    row.burst_p99_secs = percentile(&lat, 0.99);
    row.burst_records_per_sec = n as f64 / row.burst_secs_until_all_records;
    Ok(())
}

/// The limit: the rate at which this client creates the same number of ChangeRecords directly.
async fn direct(client: &kube::Client, cp: &ControlPlane, n: usize) -> Result<f64> {
    let ns = cp.namespace("bench-direct").await?;
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let start = Instant::now();
    each(n, |i| {
        let (records, pp) = (&records, &pp);
        async move {
            let r: ChangeRecord = serde_json::from_value(json!({
                "apiVersion": "unyo.dev/v1alpha1", "kind": "ChangeRecord",
                "metadata": {"name": format!("{}-drift-0123456789", name(i)),
                             "labels": {"unyo.dev/server": name(i), "unyo.dev/origin": "Drift"}},
                "spec": {"origin": "Drift", "title": format!("{}: 1 ledger path(s) drifted: os.version", name(i)),
                         "category": "OS", "classification": "Major", "server": name(i),
                         "paths": [{"path": "os.version", "expected": "12", "observed": "13"}],
                         "requester": "unyo-controller (drift detection)"},
            }))?;
            records.create(pp, &r).await?;
            Ok(())
        }
    })
    .await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let mut row = Row {
        servers: a.servers,
        packages_per_server: a.packages,
        ..Default::default()
    };
    run(&a, &mut row).await?;
    let text = serde_json::to_string_pretty(&row)?;
    println!("{text}");
    if let Some(path) = &a.json {
        std::fs::write(path, text)?;
    }
    Ok(())
}
