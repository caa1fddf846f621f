//! `unyo backup restore`: restores a generation of a BackupPlan on a host through its agent, or
//! prints the exact restic commands with `--dry-run`.
//!
//! The request is the Server annotation `unyo.dev/restore=<plan>:<generation>:<id>:<target>`;
//! the agent restores the latest snapshot of the generation-th newest generation (1 = newest),
//! or, with `verified` (the default), the verified snapshot of the newest generation whose last
//! verification succeeded, into the target directory on the host, if the host policy allows the target, and answers in
//! the Server's `status.operations.requests` — which only that host's agent may write (Events,
//! which any agent may create, are not trusted).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use unyo_crds::backup::{GenerationView, SnapshotVerification, choose_verified};
use unyo_crds::server::{RequestResult, RequestState};
use unyo_crds::{BackupPlan, Server};

/// The exact restic commands the agent runs for a restore of `generation` (1 = newest; none:
/// the newest whose last verification succeeded, judged here from the Server's `verified`)
/// into `target`.
pub fn dry_run(
    plan_name: &str,
    plan: &BackupPlan,
    what: &What,
    verified: &[SnapshotVerification],
    target: &str,
) -> Vec<String> {
    let r = &plan.spec.repositories.primary;
    let base = format!(
        "restic -r {} --password-file {}",
        r.location, r.password_file
    );
    let generation = match what {
        What::Generation(g) => *g,
        What::ToTime { at, source } => {
            return to_time_dry_run(&base, plan_name, plan, *at, source.as_deref(), target);
        }
    };
    match generation {
        None => verified_dry_run(&base, plan_name, verified, target),
        // The latest snapshot of the plan belongs to its newest generation.
        Some(n) if n <= 1 => vec![format!(
            "{base} restore latest --tag unyo-plan={plan_name} --target {target}"
        )],
        Some(n) => vec![
            format!("{base} snapshots --tag unyo-plan={plan_name},unyo-type=Full"),
            format!("# take the unyo-generation tag G of the {n}. newest full listed above, then:"),
            format!(
                "{base} restore latest --tag unyo-plan={plan_name},unyo-generation=G --target {target}"
            ),
        ],
    }
}

/// What a restore restores.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// A generation (1 = newest); none: the newest whose last verification succeeded.
    Generation(Option<usize>),
    /// A PostgreSQL source (none: the plan's only one) to a point in time.
    ToTime {
        /// The time.
        at: jiff::Timestamp,
        /// The source.
        source: Option<String>,
    },
}

impl What {
    /// The generation part of the request annotation: `N`, `verified` or `@<unix microseconds>[@source]`.
    fn request(&self) -> String {
        match self {
            What::Generation(Some(n)) => n.to_string(),
            What::Generation(None) => "verified".into(),
            What::ToTime { at, source: None } => format!("@{}", at.as_microsecond()),
            What::ToTime {
                at,
                source: Some(s),
            } => format!("@{}@{s}", at.as_microsecond()),
        }
    }
}

/// Every step of a restore of a PostgreSQL source to `at`, as the agent takes it.
fn to_time_dry_run(
    base: &str,
    plan_name: &str,
    plan: &BackupPlan,
    at: jiff::Timestamp,
    source: Option<&str>,
    target: &str,
) -> Vec<String> {
    use unyo_crds::backup::SourceType;
    let pg: Vec<&unyo_crds::backup::BackupSource> = plan
        .spec
        .sources
        .iter()
        .filter(|s| s.source_type == SourceType::PostgreSQL && source.is_none_or(|n| n == s.name))
        .collect();
    let [s] = pg.as_slice() else {
        return vec![format!(
            "# BackupPlan {plan_name} has {} PostgreSQL source(s) matching; name one with --source",
            pg.len()
        )];
    };
    let (name, work) = (&s.name, format!("{target}.unyo-restore"));
    let user = s.postgresql.as_ref().map_or("postgres", |p| p.os_user());
    let mut steps = vec![
        format!("# 1. the newest base backup of source {name} taken before {at} (B), and the WAL shipped since it began (W…):"),
        format!("{base} snapshots --tag unyo-plan={plan_name},unyo-pg={name}"),
        format!("{base} snapshots --tag unyo-plan={plan_name},unyo-wal={name}"),
        format!("#    refused when no WAL was shipped at or after {at} (the journal would not reach it)"),
        format!("# 2. the base backup into {target} ({target} must not exist):"),
        format!("{base} restore B --target {work}/base"),
        format!("mv {work}/base/…/data {target}    # the directory holding backup_label"),
        "# 3. the journal, every WAL snapshot since the base backup began:".to_string(),
        format!("{base} restore W --target {work}/wal-N    # each, then its WAL files into {target}/unyo-wal/"),
        "# 4. no gap: every segment from backup_label's START WAL file to the newest is there (else the restore fails naming the missing segment)".to_string(),
        format!("# 5. recovery settings, appended to {target}/postgresql.auto.conf (archiving off: the restored cluster never archives into the live spool):"),
    ];
    steps.extend(unyo_crds::backup::recovery_settings(target, at));
    steps.extend([
        format!("touch {target}/recovery.signal; chmod 700 {target}; chown -R {user}: {target}; rm -rf {work}"),
        format!("# 6. start it: pg_ctl -D {target} start — PostgreSQL replays the journal to {at} and promotes"),
    ]);
    steps
}

/// The restore of the newest verified generation, as the Server's status shows the
/// verifications (the agent judges again against the generations the repository holds).
fn verified_dry_run(
    base: &str,
    plan_name: &str,
    verified: &[SnapshotVerification],
    target: &str,
) -> Vec<String> {
    let mut ids: Vec<&str> = verified.iter().map(|v| v.generation.as_str()).collect();
    // Generation ids are `g<milliseconds>`: newest first by number.
    ids.sort_by_key(|g| std::cmp::Reverse(g.trim_start_matches('g').parse::<i64>().unwrap_or(0)));
    ids.dedup();
    let views: Vec<GenerationView<'_>> = ids
        .iter()
        .map(|id| GenerationView {
            id,
            snapshots: verified
                .iter()
                .filter(|v| v.generation == *id)
                .map(|v| v.snapshot.as_str())
                .collect(),
        })
        .collect();
    let mut out = vec![format!("{base} snapshots --tag unyo-plan={plan_name}")];
    match choose_verified(&views, verified) {
        Ok((v, _, passed_over)) => {
            for p in passed_over {
                out.push(format!("# passed over: {p}"));
            }
            out.push(format!(
                "# generation {}: its last verification succeeded ({:?} at {})",
                v.generation, v.method, v.at.0
            ));
            out.push(format!("{base} restore {} --target {target}", v.snapshot));
        }
        Err(passed_over) => {
            out.push(format!(
                "# no generation has a successful last verification in the Server's status ({}); name one with --generation N",
                passed_over.join("; ")
            ));
        }
    }
    out
}

/// Asks the agent of `server` to restore and waits for its answer; returns the agent's message.
pub async fn request(
    client: Client,
    namespace: &str,
    server: &str,
    plan: &str,
    what: &What,
    target: &str,
    timeout: Duration,
) -> Result<String> {
    if !target.starts_with('/') {
        bail!("--target must be an absolute path on the host, got {target:?}");
    }
    let plans: Api<BackupPlan> = Api::namespaced(client.clone(), namespace);
    plans
        .get_opt(plan)
        .await?
        .with_context(|| format!("BackupPlan {namespace}/{plan} does not exist"))?;
    let id = format!("r{}", jiff::Timestamp::now().as_millisecond());
    let value = format!("{plan}:{}:{id}:{target}", what.request());
    let servers: Api<Server> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {
        (RESTORE): value
    }}});
    servers
        .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Server {namespace}/{server}"))?;
    let answer = await_answer(&servers, server, RESTORE, &value, timeout).await?;
    match answer.result {
        RequestState::Succeeded => Ok(answer.message.unwrap_or_default()),
        state => bail!("{state:?}: {}", answer.message.unwrap_or_default()),
    }
}

use unyo_crds::names::annotations::{BACKUP_NOW, RESTORE};

/// Asks the agent of `server` for a full backup now and waits for its answer.
pub async fn now(
    client: Client,
    namespace: &str,
    server: &str,
    reason: &str,
    timeout: Duration,
) -> Result<String> {
    let value = format!("{reason}:r{}", jiff::Timestamp::now().as_millisecond());
    let servers: Api<Server> = Api::namespaced(client, namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {(BACKUP_NOW): value}}});
    servers
        .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Server {namespace}/{server}"))?;
    let answer = await_answer(&servers, server, BACKUP_NOW, &value, timeout).await?;
    match answer.result {
        RequestState::Succeeded => Ok(answer.message.unwrap_or_default()),
        state => bail!("{state:?}: {}", answer.message.unwrap_or_default()),
    }
}

/// Waits until the agent of `server` has answered the request `value` of `annotation` in the
/// Server's status (not Running).
pub async fn await_answer(
    servers: &Api<Server>,
    server: &str,
    annotation: &str,
    value: &str,
    timeout: Duration,
) -> Result<RequestResult> {
    let config = watcher::Config::default().fields(&format!("metadata.name={server}"));
    let find = |s: &Server| {
        s.status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.requests.iter().find(|r| r.annotation == annotation))
            .filter(|r| r.value == value && r.result != RequestState::Running)
            .cloned()
    };
    let answers = watcher(servers.clone(), config)
        .applied_objects()
        .try_filter_map(|s| futures::future::ready(Ok(find(&s))));
    futures::pin_mut!(answers);
    match tokio::time::timeout(timeout, answers.try_next()).await {
        Ok(Ok(Some(a))) => Ok(a),
        Ok(Ok(None)) => bail!("the watch of Server {server} ended without an answer"),
        Ok(Err(e)) => bail!("watching Server {server}: {e}"),
        Err(_) => {
            bail!("no answer from the agent of {server} within {timeout:?} ({annotation}={value})")
        }
    }
}
