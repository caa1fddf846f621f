//! Taking one sample of a check: CPU, memory and disk usage against thresholds; a service or a
//! process running; new log lines matching a pattern; a TCP connect, an HTTP GET or a ping
//! answering; the clock's offset from an NTP server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regex::Regex;
use unyo_crds::common::{Severity, parse_duration};
use unyo_crds::monitoring::{Check, CheckKind};
use unyo_crds::server::CheckState;

use super::logtail::LogTail;
use super::tracker::{Sample, level};
use crate::facts::Collector;

/// Default time limit of one probe.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A check ready to be sampled, with what it keeps between samples.
pub struct Probe {
    check: Check,
    host: Collector,
    http: reqwest::Client,
    system: sysinfo::System,
    tail: Option<(LogTail, Regex)>,
    timeout: Duration,
    /// Why the check cannot run at all (a bad pattern or duration), reported as Unknown.
    broken: Option<String>,
}

fn unknown(message: impl Into<String>) -> Sample {
    Sample {
        state: CheckState::Unknown,
        value: None,
        message: message.into(),
    }
}

fn ok(value: Option<f64>, message: impl Into<String>) -> Sample {
    Sample {
        state: CheckState::OK,
        value,
        message: message.into(),
    }
}

impl Probe {
    /// Prepares `check` for the host beneath `host`'s root.
    pub fn new(check: &Check, host: &Collector, http: reqwest::Client) -> Self {
        let mut broken = None;
        let timeout = match check.timeout.as_deref().map(parse_duration) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                broken = Some(format!("timeout: {e}"));
                DEFAULT_TIMEOUT
            }
            None => DEFAULT_TIMEOUT,
        };
        let tail = match (check.kind, &check.path, &check.pattern) {
            (CheckKind::LogPattern, Some(path), Some(pattern)) => match Regex::new(pattern) {
                Ok(re) => Some((LogTail::new(host.path(path)), re)),
                Err(e) => {
                    broken = Some(format!("pattern: {e}"));
                    None
                }
            },
            _ => None,
        };
        Probe {
            check: check.clone(),
            host: host.clone(),
            http,
            system: sysinfo::System::new(),
            tail,
            timeout,
            broken,
        }
    }

    /// The state a failed check without thresholds takes (its severity; default Critical).
    fn failed(&self, message: impl Into<String>) -> Sample {
        let state = match self.check.severity.unwrap_or(Severity::Critical) {
            Severity::Critical => CheckState::Critical,
            Severity::Warning | Severity::Info => CheckState::Warning,
        };
        Sample {
            state,
            value: None,
            message: message.into(),
        }
    }

    fn thresholded(&self, value: f64, what: &str) -> Sample {
        Sample {
            state: level(value, self.check.warning, self.check.critical),
            value: Some(value),
            message: format!("{what} {value:.1}"),
        }
    }

    /// Takes one sample.
    pub async fn sample(&mut self) -> Sample {
        if let Some(reason) = &self.broken {
            return unknown(reason.clone());
        }
        match self.check.kind {
            CheckKind::Cpu => self.cpu().await,
            CheckKind::Memory => self.memory(),
            CheckKind::Disk => self.disk(),
            CheckKind::Service => self.service().await,
            CheckKind::Process => self.process(),
            CheckKind::LogPattern => self.log_pattern().await,
            CheckKind::Tcp => self.tcp().await,
            CheckKind::Http => self.http().await,
            CheckKind::Ping => self.ping().await,
            CheckKind::TimeSync => self.time_sync().await,
            // Judged from this agent's scan results (see `antivirus`), not by a probe.
            CheckKind::Antivirus => unknown("no scan results to judge"),
        }
    }

    async fn cpu(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(500)))
            .await;
        self.system.refresh_cpu_usage();
        self.thresholded(f64::from(self.system.global_cpu_usage()), "CPU usage %")
    }

    fn memory(&mut self) -> Sample {
        self.system.refresh_memory();
        let total = self.system.total_memory();
        if total == 0 {
            return unknown("total memory is not known");
        }
        let used = total.saturating_sub(self.system.available_memory());
        self.thresholded(used as f64 * 100.0 / total as f64, "memory used %")
    }

    fn disk(&self) -> Sample {
        let path = self.check.path.as_deref().unwrap_or("/");
        match rustix::fs::statvfs(self.host.path(path)) {
            Ok(st) => {
                let used = st.f_blocks.saturating_sub(st.f_bfree);
                let usable = used + st.f_bavail;
                if usable == 0 {
                    return unknown(format!("{path}: the filesystem reports no blocks"));
                }
                // As df(1) computes Use%: used over what non-root users could have.
                let pct = used as f64 * 100.0 / usable as f64;
                let mut s = self.thresholded(pct, &format!("{path} used %"));
                s.message = format!("{path} {pct:.1}% used");
                s
            }
            Err(e) => unknown(format!("{path}: {e}")),
        }
    }

    async fn service(&self) -> Sample {
        let Some(unit) = self.check.service.clone() else {
            return unknown("no service named");
        };
        if !self.host.is_live() || !self.host.path("/run/systemd/system").is_dir() {
            return unknown("systemd is not running on this host (no /run/systemd/system)");
        }
        let status = tokio::process::Command::new("systemctl")
            .args(["is-active", "--quiet", "--", &unit])
            .status()
            .await;
        match status {
            Ok(s) if s.success() => ok(None, format!("{unit} is active")),
            Ok(_) => self.failed(format!("{unit} is not active")),
            Err(e) => unknown(format!("running systemctl: {e}")),
        }
    }

    fn process(&mut self) -> Sample {
        let Some(name) = self.check.process.clone() else {
            return unknown("no process named");
        };
        self.system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::All,
            true,
            sysinfo::ProcessRefreshKind::nothing(),
        );
        let count = self
            .system
            .processes()
            .values()
            .filter(|p| p.name().to_string_lossy() == name.as_str())
            .count();
        if count > 0 {
            ok(Some(count as f64), format!("{count} {name} running"))
        } else {
            self.failed(format!("no {name} process is running"))
        }
    }

    async fn log_pattern(&mut self) -> Sample {
        let path = self.check.path.clone().unwrap_or_default();
        let Some((mut tail, re)) = self.tail.take() else {
            return unknown("a LogPattern check needs path and pattern");
        };
        // Reading is file I/O: off the async workers.
        let (tail_back, read) = match tokio::task::spawn_blocking(move || {
            let read = tail.new_lines();
            (tail, read)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => return unknown(format!("{path}: the read did not finish: {e}")),
        };
        self.tail = Some((tail_back, re));
        let Some((_, re)) = self.tail.as_ref() else {
            return unknown("a LogPattern check needs path and pattern");
        };
        match read {
            Ok(lines) => {
                let matched: Vec<&String> = lines.iter().filter(|l| re.is_match(l)).collect();
                match matched.last() {
                    None => ok(Some(0.0), format!("no new line of {path} matches")),
                    Some(last) => {
                        let mut s = self.failed(format!(
                            "{} new line(s) of {path} match, the last: {}",
                            matched.len(),
                            last.chars().take(300).collect::<String>()
                        ));
                        s.value = Some(matched.len() as f64);
                        s
                    }
                }
            }
            Err(e) => unknown(format!("{path}: {e}")),
        }
    }

    async fn tcp(&self) -> Sample {
        let (Some(host), Some(port)) = (self.check.host.clone(), self.check.port) else {
            return unknown("a Tcp check needs host and port");
        };
        let started = Instant::now();
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_)) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                ok(Some(ms), format!("{host}:{port} accepted in {ms:.1} ms"))
            }
            Ok(Err(e)) => self.failed(format!("{host}:{port}: {e}")),
            Err(_) => self.failed(format!("{host}:{port}: no answer in {:?}", self.timeout)),
        }
    }

    async fn http(&self) -> Sample {
        let Some(url) = self.check.url.clone() else {
            return unknown("an Http check needs url");
        };
        let expect = self.check.expect_status.unwrap_or(200);
        let started = Instant::now();
        match self.http.get(&url).timeout(self.timeout).send().await {
            Ok(resp) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let status = resp.status().as_u16();
                if status == expect {
                    ok(Some(ms), format!("GET {url}: {status} in {ms:.1} ms"))
                } else {
                    let mut s = self.failed(format!("GET {url}: {status}, expected {expect}"));
                    s.value = Some(ms);
                    s
                }
            }
            Err(e) => self.failed(format!("GET {url}: {e}")),
        }
    }

    async fn ping(&self) -> Sample {
        let Some(host) = self.check.host.clone() else {
            return unknown("a Ping check needs host");
        };
        let wait = self.timeout.as_secs().max(1).to_string();
        let out = tokio::process::Command::new("ping")
            .args(["-n", "-c", "1", "-W", &wait, "--", &host])
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let ms = text
                    .split("time=")
                    .nth(1)
                    .and_then(|t| t.split_whitespace().next())
                    .and_then(|t| t.parse::<f64>().ok());
                ok(ms, format!("{host} answers"))
            }
            Ok(_) => self.failed(format!("{host} does not answer")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                unknown("ping is not installed (Debian package iputils-ping)")
            }
            Err(e) => unknown(format!("running ping: {e}")),
        }
    }

    async fn time_sync(&self) -> Sample {
        let offset = match &self.check.host {
            Some(host) => sntp_offset(host, self.check.port.unwrap_or(123), self.timeout).await,
            None => local_offset(&self.host).await,
        };
        match offset {
            Ok((secs, source)) => {
                let mut s = self.thresholded(secs.abs(), "clock offset s");
                s.value = Some(secs);
                s.message = format!("clock offset {secs:+.6} s from {source}");
                s
            }
            Err(e) => unknown(e),
        }
    }
}

/// The Antivirus check, from this host's scan results: the last scan failed or found something
/// (the check's severity), signatures older than 24 hours (Warning), no scan yet (Unknown), else
/// OK.
pub fn antivirus(
    check: &Check,
    state: Option<unyo_crds::virusscan::HostAntivirus>,
    now: jiff::Timestamp,
) -> Sample {
    let failed = |message: String| Sample {
        state: match check.severity.unwrap_or(Severity::Critical) {
            Severity::Critical => CheckState::Critical,
            Severity::Warning | Severity::Info => CheckState::Warning,
        },
        value: None,
        message,
    };
    let Some(av) = state else {
        return unknown("no virus scan has run on this host yet (VirusScanSchedule)");
    };
    let Some(last) = av.last_scan.as_ref() else {
        return unknown("no virus scan has run on this host yet (VirusScanSchedule)");
    };
    if last.result == unyo_crds::backup::RunResult::Failed {
        return failed(format!(
            "the last scan failed: {}",
            last.message.clone().unwrap_or_default()
        ));
    }
    if !av.detections.is_empty() {
        let mut s = failed(format!(
            "{} detection(s) in the last scan, e.g. {} in {}",
            av.detections.len(),
            av.detections[0].signature,
            av.detections[0].path
        ));
        s.value = Some(av.detections.len() as f64);
        return s;
    }
    let age_h = av
        .signature_time
        .as_ref()
        .map(|t| now.duration_since(t.0).as_secs_f64() / 3600.0);
    match age_h {
        Some(h) if h <= 24.0 => ok(Some(h), format!("last scan clean; signatures {h:.1} h old")),
        Some(h) => Sample {
            state: CheckState::Warning,
            value: Some(h),
            message: format!("signatures are {h:.1} h old"),
        },
        None => unknown("the signature time is not known"),
    }
}

/// The clock's offset from the NTP server `host:port` (SNTP, RFC 4330), in seconds.
async fn sntp_offset(host: &str, port: u16, timeout: Duration) -> Result<(f64, String), String> {
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = Udp(tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("binding a UDP socket: {e}"))?);
    let context = sntpc::NtpContext::new(sntpc::StdTimestampGen::default());
    let result = tokio::time::timeout(timeout, sntpc::get_time(addr, &socket, context))
        .await
        .map_err(|_| format!("NTP server {addr}: no answer in {timeout:?}"))?
        .map_err(|e| format!("NTP server {addr}: {e:?}"))?;
    Ok((result.offset as f64 / 1e6, format!("NTP server {addr}")))
}

/// The offset the host's own chrony reports.
async fn local_offset(host: &Collector) -> Result<(f64, String), String> {
    if !host.is_live() {
        return Err(
            "set host to an NTP server: the local time daemon is not asked beneath --root".into(),
        );
    }
    let out = tokio::process::Command::new("chronyc")
        .args(["-c", "tracking"])
        .output()
        .await
        .map_err(|_| "no time source: set host to an NTP server, or run chrony".to_string())?;
    if !out.status.success() {
        return Err(format!(
            "no time source: set host to an NTP server (chronyc: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    crate::facts::parse_chrony_tracking(&text)
        .map(|(_, offset, source)| (offset, source))
        .ok_or_else(|| "chronyc tracking gave no offset".to_string())
}

/// A tokio UDP socket for the SNTP client.
struct Udp(tokio::net::UdpSocket);

impl sntpc::NtpUdpSocket for Udp {
    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> sntpc::Result<usize> {
        self.0
            .send_to(buf, addr)
            .await
            .map_err(|_| sntpc::Error::Network)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        self.0
            .recv_from(buf)
            .await
            .map_err(|_| sntpc::Error::Network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use unyo_crds::virusscan::{Detection, HostAntivirus, ScanRun};

    fn state(result: &str, detections: usize, signature_age_h: i64) -> HostAntivirus {
        let now = jiff::Timestamp::now();
        HostAntivirus {
            engine_version: Some("ClamAV 1.4.6".into()),
            signature_version: Some("unyo.hdb".into()),
            signature_time: Some(Time(
                now - jiff::SignedDuration::from_hours(signature_age_h),
            )),
            resident_running: None,
            last_scan: Some(ScanRun {
                schedule: "daily".into(),
                started_at: Time(now),
                finished_at: Some(Time(now)),
                files_scanned: 10,
                detections: detections as u32,
                result: serde_json::from_value(serde_json::json!(result)).unwrap(),
                message: Some("m".into()),
            }),
            detections: (0..detections)
                .map(|_| Detection {
                    host: "h".into(),
                    path: "/srv/x".into(),
                    signature: "Sig".into(),
                    actions: vec![],
                    at: Time(now),
                })
                .collect(),
        }
    }

    #[test]
    fn antivirus_check_from_scan_results() {
        let check: Check =
            serde_json::from_value(serde_json::json!({"name": "av", "kind": "Antivirus"})).unwrap();
        let now = jiff::Timestamp::now();
        assert_eq!(antivirus(&check, None, now).state, CheckState::Unknown);
        assert_eq!(
            antivirus(&check, Some(state("Succeeded", 0, 2)), now).state,
            CheckState::OK
        );
        assert_eq!(
            antivirus(&check, Some(state("Succeeded", 1, 2)), now).state,
            CheckState::Critical
        );
        assert_eq!(
            antivirus(&check, Some(state("Failed", 0, 2)), now).state,
            CheckState::Critical
        );
        assert_eq!(
            antivirus(&check, Some(state("Succeeded", 0, 30)), now).state,
            CheckState::Warning
        );
        let warn: Check = serde_json::from_value(
            serde_json::json!({"name": "av", "kind": "Antivirus", "severity": "Warning"}),
        )
        .unwrap();
        assert_eq!(
            antivirus(&warn, Some(state("Succeeded", 1, 2)), now).state,
            CheckState::Warning
        );
    }
}
