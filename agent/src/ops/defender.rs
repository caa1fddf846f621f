//! Microsoft Defender Antivirus as the scan engine `Defender` of a VirusScanSchedule: its
//! status from WMI (`ROOT\Microsoft\Windows\Defender`, MSFT_MpComputerStatus — engine and
//! signature versions, when the signatures were updated, whether real-time protection is on:
//! the resident check), signature updates and custom scans through `MpCmdRun.exe`, whose
//! report of detected threats becomes the detections.
//!
//! Defender updates its signatures from the sources the host is configured with (WSUS,
//! Microsoft Update, a file share) and quarantines into its own store: a schedule with engine
//! Defender names neither a mirror, a source directory nor a quarantine directory (admission
//! refuses them). Without `Quarantine` in its actions the scan only reports
//! (`-DisableRemediation`). The conversions are here on every platform, so that they are tested
//! without Windows; the calls are Windows only.

#![cfg_attr(not(windows), allow(dead_code))]

use jiff::Timestamp;
use serde::Deserialize;
use unyo_crds::virusscan::{DetectionAction, VirusScanScheduleSpec};

/// The query of the Defender status.
pub const STATUS_QUERY: &str = "SELECT AMEngineVersion, AMProductVersion, AntivirusSignatureVersion, AntivirusSignatureLastUpdated, RealTimeProtectionEnabled, AntivirusEnabled FROM MSFT_MpComputerStatus";

/// The WMI namespace of Defender.
pub const NAMESPACE: &str = r"ROOT\Microsoft\Windows\Defender";

/// MSFT_MpComputerStatus, the properties read.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerStatus {
    /// Antimalware engine version, e.g. `1.1.24090.11`.
    #[serde(rename = "AMEngineVersion")]
    pub am_engine_version: Option<String>,
    /// Antimalware client (platform) version.
    #[serde(rename = "AMProductVersion")]
    pub am_product_version: Option<String>,
    /// Antivirus signature version, e.g. `1.419.211.0`.
    pub antivirus_signature_version: Option<String>,
    /// When the signatures were last updated (CIM datetime).
    pub antivirus_signature_last_updated: Option<String>,
    /// Whether real-time protection is on.
    pub real_time_protection_enabled: Option<bool>,
    /// Whether the antivirus is enabled.
    pub antivirus_enabled: Option<bool>,
}

/// What the status says: engine (`Microsoft Defender <engine> (platform <client>)`), signature
/// version and time, and whether the resident scanner runs (real-time protection on and the
/// antivirus enabled).
pub fn status(
    rows: &[ComputerStatus],
) -> Result<(String, Option<String>, Option<Timestamp>, bool), String> {
    let s = rows
        .first()
        .ok_or("MSFT_MpComputerStatus: no instance (Microsoft Defender is not installed)")?;
    let engine = match (&s.am_engine_version, &s.am_product_version) {
        (Some(e), Some(p)) => format!("Microsoft Defender {e} (platform {p})"),
        (Some(e), None) => format!("Microsoft Defender {e}"),
        _ => "Microsoft Defender".to_string(),
    };
    let time = s
        .antivirus_signature_last_updated
        .as_deref()
        .and_then(crate::facts::wmi::cim_datetime);
    let resident =
        s.real_time_protection_enabled == Some(true) && s.antivirus_enabled != Some(false);
    Ok((
        engine,
        s.antivirus_signature_version.clone(),
        time,
        resident,
    ))
}

/// The arguments of `MpCmdRun.exe` for a custom scan of `path`: remediation by Defender only
/// when the schedule's actions include Quarantine.
pub fn scan_args(spec: &VirusScanScheduleSpec, path: &str) -> Vec<String> {
    let mut args = ["-Scan", "-ScanType", "3", "-File", path]
        .map(String::from)
        .to_vec();
    if !spec.actions.contains(&DetectionAction::Quarantine) {
        args.push("-DisableRemediation".into());
    }
    args
}

/// The threats `MpCmdRun.exe -Scan` lists: (signature, path) for each resource of each
/// `Threat :` block (`file : C:\…`; other resource kinds keep their kind as a prefix).
pub fn parse_threats(stdout: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut threat: Option<String> = None;
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Threat" => threat = Some(value.to_string()),
            "Resources" => {}
            _ if line.starts_with([' ', '\t']) && !value.is_empty() => {
                if let Some(t) = &threat {
                    let path = if key.eq_ignore_ascii_case("file") {
                        value.to_string()
                    } else {
                        format!("{key}:{value}")
                    };
                    out.push((t.clone(), path));
                }
            }
            _ => {}
        }
    }
    out
}

/// What an `MpCmdRun.exe -Scan` exit code means: 0 no threat, 2 threats found (listed in its
/// output); any other code is a failed scan.
pub fn scan_exit(code: Option<i32>) -> Result<bool, String> {
    match code {
        Some(0) => Ok(false),
        Some(2) => Ok(true),
        Some(c) => Err(format!("MpCmdRun.exe ended with exit code {c}")),
        None => Err("MpCmdRun.exe was stopped".into()),
    }
}

/// Microsoft Defender of this host.
pub struct Defender {
    /// `MpCmdRun.exe`.
    pub mpcmdrun: std::path::PathBuf,
}

impl Defender {
    /// Defender where Windows installs it (`%ProgramFiles%\Windows Defender\MpCmdRun.exe`).
    pub fn installed() -> Self {
        let programs =
            std::env::var_os("ProgramFiles").unwrap_or_else(|| r"C:\Program Files".into());
        Defender {
            mpcmdrun: std::path::Path::new(&programs)
                .join("Windows Defender")
                .join("MpCmdRun.exe"),
        }
    }
}

#[cfg(windows)]
mod engine {
    use std::process::Command;

    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use unyo_crds::backup::RunResult;
    use unyo_crds::virusscan::{Detection, DetectionAction, HostAntivirus, ScanRun};

    use super::{Defender, NAMESPACE, STATUS_QUERY, parse_threats, scan_args, scan_exit, status};
    use crate::facts::Collector;
    use crate::ops::scans::{Engine, ScanJob};

    fn read_status() -> Result<Vec<super::ComputerStatus>, String> {
        let con = wmi::WMIConnection::with_namespace_path(NAMESPACE)
            .map_err(|e| format!("WMI {NAMESPACE}: {e}"))?;
        con.raw_query(STATUS_QUERY)
            .map_err(|e| format!("MSFT_MpComputerStatus: {e}"))
    }

    impl Defender {
        fn run(&self, args: &[String]) -> Result<(Option<i32>, String), String> {
            let out = Command::new(&self.mpcmdrun)
                .args(args)
                .output()
                .map_err(|e| format!("{}: {e}", self.mpcmdrun.display()))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok((out.status.code(), text))
        }

        /// Scans every path; the threats found, or why a scan failed.
        fn scan_paths(&self, job: &ScanJob) -> Result<Vec<(String, String)>, String> {
            let mut found = Vec::new();
            for path in &job.spec.paths {
                let (code, text) = self.run(&scan_args(&job.spec, path))?;
                if scan_exit(code)? {
                    found.extend(parse_threats(&text));
                }
            }
            Ok(found)
        }
    }

    impl Engine for Defender {
        fn scan(&self, job: &ScanJob, _host: &Collector, server: &str) -> HostAntivirus {
            let started = Timestamp::now();
            match self.run(&["-SignatureUpdate".to_string()]) {
                Ok((Some(0), _)) => {}
                Ok((code, _)) => tracing::warn!(?code, "Defender signature update failed"),
                Err(e) => tracing::warn!(error = %e, "Defender signature update failed"),
            }
            let scanned = self.scan_paths(job);
            let state = read_status().and_then(|rows| status(&rows));
            let remedied = job.spec.actions.contains(&DetectionAction::Quarantine);
            let actions = if remedied {
                vec!["Quarantine: remediated by Microsoft Defender".to_string()]
            } else {
                vec!["Notify".to_string()]
            };
            let found = scanned.as_ref().map(Vec::as_slice).unwrap_or_default();
            let mut message = match &scanned {
                Ok(f) => format!("{} threat(s) found by Microsoft Defender", f.len()),
                Err(e) => e.clone(),
            };
            if let Err(e) = &state {
                message = format!("{message}; status not read: {e}");
            }
            let run = ScanRun {
                schedule: job.name.clone(),
                started_at: Time(started),
                finished_at: Some(Time(Timestamp::now())),
                files_scanned: 0,
                detections: u32::try_from(found.len()).unwrap_or(u32::MAX),
                result: if scanned.is_ok() {
                    RunResult::Succeeded
                } else {
                    RunResult::Failed
                },
                message: Some(message),
            };
            let (engine, version, time, resident) = match state {
                Ok((e, v, t, r)) => (Some(e), v, t, Some(r)),
                Err(_) => (None, None, None, None),
            };
            HostAntivirus {
                engine_version: engine,
                signature_version: version,
                signature_time: time.map(Time),
                resident_running: if job.spec.resident_check {
                    resident
                } else {
                    None
                },
                last_scan: Some(run),
                detections: found
                    .iter()
                    .take(unyo_crds::limits::DETECTIONS)
                    .map(|(signature, path)| Detection {
                        host: server.to_string(),
                        path: path.clone(),
                        signature: signature.clone(),
                        actions: actions.clone(),
                        at: Time(started),
                    })
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(actions: &str) -> VirusScanScheduleSpec {
        serde_json::from_value(serde_json::json!({
            "engine": "Defender",
            "schedule": {"calendar": "ops", "days": "AllDays", "at": "02:00"},
            "paths": ["C:\\Users"],
            "signatures": {"maxAge": "24h"},
            "actions": serde_json::from_str::<serde_json::Value>(actions).unwrap(),
        }))
        .unwrap()
    }

    #[test]
    fn the_status_gives_engine_signatures_and_the_resident_check() {
        let rows: Vec<ComputerStatus> =
            serde_json::from_str(include_str!("fixtures/mp-computer-status.json")).unwrap();
        let (engine, version, time, resident) = status(&rows).unwrap();
        assert_eq!(
            engine,
            "Microsoft Defender 1.1.24090.11 (platform 4.18.24090.11)"
        );
        assert_eq!(version.as_deref(), Some("1.419.211.0"));
        assert_eq!(time.unwrap().to_string(), "2024-10-10T23:30:00Z");
        assert!(resident);
        let mut off = rows.clone();
        off[0].real_time_protection_enabled = Some(false);
        assert!(!status(&off).unwrap().3);
        off[0].real_time_protection_enabled = None;
        assert!(!status(&off).unwrap().3, "unknown is not running");
        let err = status(&[]).unwrap_err();
        assert!(err.contains("not installed"), "{err}");
    }

    #[test]
    fn threats_are_read_from_the_scan_report() {
        let found = parse_threats(include_str!("fixtures/mpcmdrun-scan-threats.txt"));
        assert_eq!(
            found,
            vec![
                (
                    "Virus:DOS/EICAR_Test_File".to_string(),
                    r"C:\Users\Public\eicar.com".to_string()
                ),
                (
                    "Virus:DOS/EICAR_Test_File".to_string(),
                    r"C:\Users\Public\eicar copy.txt".to_string()
                ),
                (
                    "Trojan:Win32/Wacatac.B!ml".to_string(),
                    r"process:pid:4242,ProcessStart:1".to_string()
                ),
            ]
        );
        assert!(parse_threats("Scan starting...\nScan finished.\n").is_empty());
        assert!(parse_threats("Resources : 1 total\n    file : C:\\x\n").is_empty());
    }

    #[test]
    fn remediation_only_with_quarantine_and_exit_codes() {
        let report_only = scan_args(&spec(r#"["Notify"]"#), r"C:\Users");
        assert_eq!(
            report_only,
            [
                "-Scan",
                "-ScanType",
                "3",
                "-File",
                r"C:\Users",
                "-DisableRemediation"
            ]
        );
        let remedy = scan_args(&spec(r#"["Quarantine", "Notify"]"#), r"C:\Users");
        assert!(!remedy.iter().any(|a| a == "-DisableRemediation"));
        assert_eq!(scan_exit(Some(0)), Ok(false));
        assert_eq!(scan_exit(Some(2)), Ok(true));
        assert!(
            scan_exit(Some(-2147024894))
                .unwrap_err()
                .contains("-2147024894")
        );
        assert!(scan_exit(None).is_err());
    }
}
