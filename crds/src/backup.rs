//! `BackupPlan`: what is backed up where and when, how many generations are kept (R8, R9, R16).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// Sources, repositories, full and differential rules on the calendar, generations kept,
/// write-protected snapshots and media labels for the selected servers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "BackupPlan",
    namespaced,
    status = "BackupPlanStatus",
    shortname = "bp",
    category = "unyo",
    doc = "Backup sources, repositories, full/differential rules, generations and media labels for selected servers.",
    printcolumn(
        name = "Generations",
        type_ = "integer",
        json_path = ".spec.retention.generations",
        description = "Generations kept"
    ),
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.media.informationClass",
        description = "Information class of the media"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "integer",
        json_path = ".status.healthyServers",
        description = "Servers whose last runs succeeded"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Settings are valid"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.rules.exists(r, r.type == 'Full')").message("at least one rule must be of type Full (a differential needs a full to refer to)").field_path(".rules").reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct BackupPlanSpec {
    /// Servers (in this namespace) the plan applies to, by label.
    #[serde(default)]
    pub selector: LabelSelector,
    /// What is backed up.
    #[schemars(length(min = 1, max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sources: Vec<BackupSource>,
    /// Where backups go: a primary repository and a secondary copy (二重化媒体).
    pub repositories: BackupRepositories,
    /// Full and differential rules, each on its own schedule.
    #[schemars(length(min = 1, max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub rules: Vec<BackupRule>,
    /// How many generations are kept (a generation is a full backup with its differentials).
    #[serde(default)]
    pub retention: Retention,
    /// Write-protected snapshots taken at times the union names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_snapshot: Option<ProtectedSnapshot>,
    /// Take a full backup when a Server is annotated `unyo.dev/backup-now` (e.g. before and
    /// after a version-up); default true.
    #[serde(default = "default_true")]
    pub full_on_request: bool,
    /// Label of the media, with the information class of the data they hold (R16).
    pub media: MediaLabel,
    /// Verification after runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<BackupVerification>,
}

/// A backup source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'PostgreSQL' || has(self.postgresql)").message("a source of type PostgreSQL needs postgresql").field_path(".postgresql").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.type == 'PostgreSQL' || (has(self.paths) && size(self.paths) > 0)").message("a source of type Files needs at least one path").field_path(".paths").reason(Reason::FieldValueRequired))]
pub struct BackupSource {
    /// Name of the source, e.g. `db-data` or `report-data`.
    #[schemars(length(min = 1, max = 63), pattern(NAME_PATTERN))]
    pub name: String,
    /// Files (default: the paths are backed up as they are) or PostgreSQL (a base backup as the
    /// full, the archived WAL as the journal; see `postgresql`).
    #[serde(default, rename = "type")]
    pub source_type: SourceType,
    /// Absolute paths backed up (for PostgreSQL: none needed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 1024), pattern(r"^/")))]
    pub paths: Vec<String>,
    /// The PostgreSQL cluster of a source of type PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresSource>,
    /// Glob patterns excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 1024)))]
    pub excludes: Vec<String>,
    /// Command run before the backup (e.g. a database dump or putting the DB in backup mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub pre_command: Vec<String>,
    /// Command run after the backup, whatever its result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub post_command: Vec<String>,
    /// How long each of these commands may run before it is stopped (and, for a pre-command,
    /// the run fails), e.g. `5m`; default 10m, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub command_timeout: Option<String>,
}

/// What a source is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SourceType {
    /// Files and directories, backed up as they are.
    #[default]
    Files,
    /// A PostgreSQL cluster: a base backup (`pg_basebackup`) as each full, and the WAL its
    /// `archive_command` leaves in `walSpool` shipped into the plan's repositories as the
    /// journal, so that it can be restored to any time (`unyo backup restore --to-time`).
    PostgreSQL,
}

/// How the agent reaches a PostgreSQL cluster and its archived WAL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSource {
    /// The directory of its Unix socket (or a host name), given to `pg_basebackup -h`; default
    /// `/var/run/postgresql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub host: Option<String>,
    /// Its port; default 5432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// The database role with the REPLICATION attribute; default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub user: Option<String>,
    /// The operating-system user `pg_basebackup` runs as (peer authentication), and who owns a
    /// restored data directory; default `postgres`. The host policy must list it
    /// (`backup.osUsers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub os_user: Option<String>,
    /// The directory the cluster's `archive_command` copies each finished WAL segment into
    /// (e.g. `test ! -f /var/lib/unyo/wal/db/%f && cp %p /var/lib/unyo/wal/db/%f`); the agent
    /// ships what it finds there into the plan's repositories and removes what it shipped.
    #[schemars(length(min = 1, max = 1024), pattern(r"^/"))]
    pub wal_spool: String,
    /// How often the spool is shipped, e.g. `1m` (the default): at most this much of the journal
    /// is only on the database host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub ship_every: Option<String>,
}

impl PostgresSource {
    /// The OS user `pg_basebackup` runs as and a restored data directory belongs to.
    pub fn os_user(&self) -> &str {
        self.os_user.as_deref().unwrap_or("postgres")
    }
}

/// The lines a restore to `at` appends to the restored cluster's `postgresql.auto.conf`, its
/// journal in `<data_dir>/unyo-wal`: recover to `at`, promote there, and never archive into the
/// live cluster's spool. (The agent writes them; `unyo backup restore --dry-run` prints them.)
pub fn recovery_settings(data_dir: &str, at: jiff::Timestamp) -> [String; 4] {
    // PostgreSQL's own form of a time with its zone, in UTC.
    let when = at.strftime("%Y-%m-%d %H:%M:%S%.6f+00");
    [
        format!("restore_command = 'cp \"{data_dir}/unyo-wal/%f\" \"%p\"'"),
        format!("recovery_target_time = '{when}'"),
        "recovery_target_action = 'promote'".to_string(),
        "archive_mode = 'off'".to_string(),
    ]
}

/// Primary and secondary repositories.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.secondary) || self.secondary.location != self.primary.location").message("the secondary repository must differ from the primary").field_path(".secondary.location").reason(Reason::FieldValueInvalid))]
pub struct BackupRepositories {
    /// Primary repository.
    pub primary: BackupRepository,
    /// Secondary repository every run is copied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<BackupRepository>,
    /// How old the newest backup held off site (in a repository marked `offsite`) may be before
    /// BackupHealthy turns False with NotCopiedOffsite, e.g. `2d` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub offsite_max_age: Option<String>,
}

/// A backup repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepository {
    /// Repository location as restic understands it, e.g. `/backup/primary` or `sftp:backup01:/srv/restic`.
    #[schemars(length(min = 1, max = 1024))]
    pub location: String,
    /// Path of a file on the host that holds the repository password. The password itself never
    /// appears in a custom resource.
    #[schemars(length(min = 1, max = 1024), pattern(r"^/"))]
    pub password_file: String,
    /// Whether this repository is kept off site (遠隔地保管): the age of the newest backup it
    /// holds is reported and judged against `offsiteMaxAge`.
    #[serde(default)]
    pub offsite: bool,
    /// Never create or write this (local) repository unless its path is on a mounted
    /// filesystem other than `/` — a backup disk that is not mounted must not fill the root disk.
    #[serde(default)]
    pub require_mount: bool,
}

/// A backup rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRule {
    /// Name of the rule, e.g. `weekly-full`.
    #[schemars(length(min = 1, max = 63), pattern(NAME_PATTERN))]
    pub name: String,
    /// Full or Differential (changes since the last full).
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    /// When the rule runs.
    pub schedule: Schedule,
    /// Sources the rule covers (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), extend("x-kubernetes-list-type" = "set"))]
    pub sources: Vec<String>,
}

/// Full or differential.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackupType {
    Full,
    Differential,
}

/// Retention by generations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Generations kept (at least 1, default 5). The newest good generation is never deleted.
    #[serde(default = "default_generations")]
    #[schemars(range(min = 1, max = 1000))]
    pub generations: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            generations: default_generations(),
        }
    }
}

fn default_generations() -> u32 {
    5
}

/// Write-protected snapshots.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedSnapshot {
    /// When a protected snapshot is taken.
    pub schedule: Schedule,
    /// How long each protected snapshot is kept locked, e.g. `30d`.
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub keep_for: String,
}

/// Label of backup media.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaLabel {
    /// Information class of the data (情報資産分類): ClassI (personal data), ClassII, ClassIII or ClassIV.
    pub information_class: InformationClass,
    /// Free label written to each snapshot's tags and the media ledger, e.g. `DB-週次`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub label: Option<String>,
}

/// Information class of an information asset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum InformationClass {
    ClassI,
    ClassII,
    ClassIII,
    ClassIV,
}

/// Verification of backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerification {
    /// Run a repository check after each run (default true).
    #[serde(default = "default_true")]
    pub check_after_run: bool,
    /// When a sample is test-restored and compared byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_restore: Option<Schedule>,
}

/// Backup health of the selected servers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupPlanStatus {
    /// Servers whose last runs succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_servers: Option<u32>,
    /// Per server: last full, last differential, generations held, next run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["server"]))]
    pub servers: Vec<ServerBackupSummary>,
    /// The metadata.generation the controller last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (false with a reason for an invalid setting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Backup state of one server under a plan.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBackupSummary {
    /// Server name.
    pub server: String,
    /// Last full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full: Option<BackupRun>,
    /// Last differential backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_differential: Option<BackupRun>,
    /// Generations held in the primary repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generations: Option<u32>,
    /// Next scheduled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Time>,
}

/// One backup run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRun {
    /// Rule that ran.
    pub rule: String,
    /// Full or Differential.
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    /// Succeeded or Failed.
    pub result: RunResult,
    /// When it started.
    pub started_at: Time,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Snapshot ID in the primary repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Whether the copy to the secondary repository succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<bool>,
    /// Bytes added to the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
    /// What went wrong, for a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Result of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunResult {
    /// It finished and did what it should.
    Succeeded,
    /// It finished with an error.
    Failed,
    /// It never finished: the agent stopped during it (killed, the host restarted); reported
    /// when the agent starts again, and not run again by itself.
    Interrupted,
}

/// Backup state of one host under one plan, written by its agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostBackup {
    /// BackupPlan name.
    pub plan: String,
    /// Last full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full: Option<BackupRun>,
    /// Last differential backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_differential: Option<BackupRun>,
    /// Generations held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generations: Option<u32>,
    /// Last verification (repository check or test restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<Verification>,
    /// When the newest backup held off site was taken (a run copied to, or made in, a
    /// repository marked `offsite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsite_copy_at: Option<Time>,
    /// The latest verifications of single snapshots (a repository check after the run that
    /// made it, or a test restore from it), newest first; a restore without a generation picks
    /// the newest generation whose last verification here succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::VERIFIED))]
    pub verified: Vec<SnapshotVerification>,
    /// The journal (archived WAL) of each PostgreSQL source, as last shipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::JOURNALS))]
    pub journals: Vec<JournalShipment>,
    /// The pre- and post-commands of the last run, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::COMMANDS))]
    pub commands: Vec<CommandResult>,
}

/// The last shipment of a PostgreSQL source's archived WAL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalShipment {
    /// The source.
    pub source: String,
    /// Succeeded or Failed.
    pub result: RunResult,
    /// When it ran.
    pub at: Time,
    /// When WAL was last shipped (the journal reaches at least this far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<Time>,
    /// The newest segment shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<String>,
    /// What was shipped, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The verification of one snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotVerification {
    /// The snapshot (short id, primary repository).
    pub snapshot: String,
    /// Its generation (tag `unyo-generation`).
    pub generation: String,
    /// CheckAfterRun or TestRestore.
    pub method: VerificationMethod,
    /// When it ran.
    pub at: Time,
    /// Succeeded or Failed.
    pub result: RunResult,
}

/// How a snapshot was verified.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum VerificationMethod {
    /// `restic check` right after the run that made it.
    CheckAfterRun,
    /// A sample restored from it and compared byte for byte with the host's files.
    TestRestore,
}

impl HostBackup {
    /// Records a verification of `snapshot` (newest first, at most [`crate::limits::VERIFIED`]).
    pub fn record_verification(&mut self, v: SnapshotVerification) {
        self.verified.insert(0, v);
        self.verified.truncate(crate::limits::VERIFIED);
    }
}

/// One pre- or post-command of a backup run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// The source it belongs to.
    pub source: String,
    /// Pre or Post.
    pub phase: CommandPhase,
    /// The program (the first element of the command).
    pub program: String,
    /// Its exit code; none when it could not start, was killed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether it was stopped at the source's `commandTimeout`.
    #[serde(default)]
    pub timed_out: bool,
    /// How long it ran, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// The end of its output (standard output and error), at most 512 bytes; or why it could
    /// not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// When a command runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CommandPhase {
    /// Before the backup; a failure fails the run, which then copies nothing.
    Pre,
    /// After the backup, whatever its result (and after a failed pre-command).
    Post,
}

/// Result of a verification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// When it ran.
    pub at: Time,
    /// Succeeded or Failed.
    pub result: RunResult,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A generation as a restore sees it: its id and the snapshots it holds.
pub struct GenerationView<'a> {
    /// Its id (tag `unyo-generation`).
    pub id: &'a str,
    /// Short ids of its snapshots.
    pub snapshots: Vec<&'a str>,
}

/// The restore "of the most reliable backup" (R9): of `generations` (newest first), the newest
/// whose last verification in `verified` (newest first) succeeded, with that verification and
/// its place (1 = newest); else why none qualifies. Each generation passed over is said why.
pub fn choose_verified<'a>(
    generations: &[GenerationView<'_>],
    verified: &'a [SnapshotVerification],
) -> Result<(&'a SnapshotVerification, usize, Vec<String>), Vec<String>> {
    let mut passed_over = Vec::new();
    for (n, g) in generations.iter().enumerate() {
        let last = verified
            .iter()
            .find(|v| v.generation == g.id && g.snapshots.contains(&v.snapshot.as_str()));
        match last {
            Some(v) if v.result == RunResult::Succeeded => return Ok((v, n + 1, passed_over)),
            Some(v) => passed_over.push(format!(
                "generation {} failed its last verification ({:?} of {} at {})",
                g.id, v.method, v.snapshot, v.at.0
            )),
            None => passed_over.push(format!("generation {} was never verified", g.id)),
        }
    }
    Err(passed_over)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(snapshot: &str, generation: &str, result: RunResult, at: &str) -> SnapshotVerification {
        SnapshotVerification {
            snapshot: snapshot.into(),
            generation: generation.into(),
            method: VerificationMethod::TestRestore,
            at: Time(at.parse().unwrap()),
            result,
        }
    }

    #[test]
    fn the_newest_generation_whose_last_verification_succeeded_is_chosen() {
        let gens = [
            GenerationView {
                id: "g3",
                snapshots: vec!["c1", "c2"],
            },
            GenerationView {
                id: "g2",
                snapshots: vec!["b1"],
            },
            GenerationView {
                id: "g1",
                snapshots: vec!["a1"],
            },
        ];
        // Newest first: g2 passed, then failed (its last verification failed); g1 passed; g3
        // was never verified; a verification of a snapshot no longer held does not count.
        let verified = [
            v("b1", "g2", RunResult::Failed, "2026-11-29T22:00:00Z"),
            v("gone", "g3", RunResult::Succeeded, "2026-11-29T21:00:00Z"),
            v("b1", "g2", RunResult::Succeeded, "2026-11-28T22:00:00Z"),
            v("a1", "g1", RunResult::Succeeded, "2026-11-21T22:00:00Z"),
        ];
        let (chosen, place, passed) = choose_verified(&gens, &verified).unwrap();
        assert_eq!((chosen.snapshot.as_str(), place), ("a1", 3));
        assert_eq!(passed.len(), 2);
        assert_eq!(passed[0], "generation g3 was never verified");
        assert!(
            passed[1].starts_with("generation g2 failed its last verification"),
            "{}",
            passed[1]
        );
        let none = choose_verified(&gens[..2], &verified).unwrap_err();
        assert_eq!(none.len(), 2);
    }
}
